/* edge_db.c - see edge_db.h. */
#include "edge_db.h"

#include <stdio.h>

int edge_db_register(struct sd_pg *pg, const char *edge_id, const char *dn, const char *contact,
                     int expires_s, struct sd_err *err)
{
    char expires[16];
    const char *values[4] = {dn, contact, edge_id, expires};

    if (expires_s <= 0)
        return sd_pg_exec(pg, "DELETE FROM registrations WHERE dn = $1 AND contact = $2", 2, values,
                          err) < 0
                   ? -1
                   : 0;
    snprintf(expires, sizeof(expires), "%d", expires_s);
    return sd_pg_exec(pg,
                      "INSERT INTO registrations (dn, contact, edge_id, expires_at, updated_at)"
                      " VALUES ($1, $2, $3, now() + make_interval(secs => $4::integer), now())"
                      " ON CONFLICT (dn, contact) DO UPDATE SET edge_id = EXCLUDED.edge_id,"
                      " expires_at = EXCLUDED.expires_at, updated_at = now()",
                      4, values, err) < 0
               ? -1
               : 0;
}

int edge_db_heartbeat(struct sd_pg *pg, const char *edge_id, const char *site, const char *state,
                      long active_calls, long pending_byes, struct sd_err *err)
{
    char calls[24], byes[24];
    const char *values[5] = {edge_id, site, state, calls, byes};

    snprintf(calls, sizeof(calls), "%ld", active_calls);
    snprintf(byes, sizeof(byes), "%ld", pending_byes);
    return sd_pg_exec(pg,
                      "INSERT INTO edges (edge_id, site, state, active_calls, pending_byes,"
                      " last_heartbeat) VALUES ($1, $2, $3, $4::integer, $5::integer, now())"
                      " ON CONFLICT (edge_id) DO UPDATE SET site = EXCLUDED.site,"
                      " state = EXCLUDED.state, active_calls = EXCLUDED.active_calls,"
                      " pending_byes = EXCLUDED.pending_byes, last_heartbeat = now()",
                      5, values, err) < 0
               ? -1
               : 0;
}
