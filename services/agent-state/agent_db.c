/* agent_db.c - see agent_db.h. Parameters are always bound; times cross
 * the wire as milliseconds since the epoch. */
#include "agent_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy_value(char *dst, size_t size, PGresult *res, int row, int col)
{
    snprintf(dst, size, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

static long long ll_value(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static bool bool_value(PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

int agent_db_load(struct sd_pg *pg, const char *agent_id, struct agent *a, long long *version,
                  bool *site_draining, struct sd_err *err)
{
    const char *values[1] = {agent_id};
    PGresult *res;
    int st, mode;

    memset(a, 0, sizeof(*a));
    a->acw_timeout_s = -1;
    *version = 0;
    *site_draining = false;
    res = sd_pg_query(pg,
                      "SELECT a.dn, a.site, a.state, a.work_mode, a.acw_timeout_s,"
                      " (extract(epoch from a.acw_until) * 1000)::bigint,"
                      " a.call_id, a.workspace, a.nailed_up,"
                      " (extract(epoch from a.ready_since) * 1000)::bigint,"
                      " a.drain, a.version,"
                      " EXISTS (SELECT 1 FROM drains d WHERE d.scope = 'site' AND d.site = a.site"
                      "         AND d.ended_at IS NULL)"
                      " FROM agents a WHERE a.agent_id = $1 FOR UPDATE OF a",
                      1, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    copy_value(a->dn, sizeof(a->dn), res, 0, 0);
    copy_value(a->site, sizeof(a->site), res, 0, 1);
    st = agent_state_parse(PQgetvalue(res, 0, 2));
    mode = agent_work_mode_parse(PQgetvalue(res, 0, 3));
    a->state =
        st < 0 ? AGENT_LOGGED_OUT : (enum agent_state)st; /* the CHECK makes < 0 impossible */
    a->work_mode = mode < 0 ? AGENT_MODE_MANUAL_IN : (enum agent_work_mode)mode;
    a->acw_timeout_s = PQgetisnull(res, 0, 4) ? -1 : (int32_t)ll_value(res, 0, 4);
    a->acw_until_ms = ll_value(res, 0, 5);
    copy_value(a->call_id, sizeof(a->call_id), res, 0, 6);
    a->workspace = bool_value(res, 0, 7);
    a->nailed_up = bool_value(res, 0, 8);
    a->ready_since_ms = ll_value(res, 0, 9);
    a->drain = bool_value(res, 0, 10);
    *version = ll_value(res, 0, 11);
    *site_draining = bool_value(res, 0, 12);
    PQclear(res);
    return 0;
}

int agent_db_save(struct sd_pg *pg, const char *agent_id, const struct agent *a, int bumps,
                  long long *version, struct sd_err *err)
{
    char acw_timeout[16], acw_until[24], ready_since[24], bump[16];
    const char *values[13] = {
        agent_id,
        a->dn,
        a->site,
        agent_state_name(a->state),
        agent_work_mode_name(a->work_mode),
        a->acw_timeout_s >= 0 ? acw_timeout : NULL,
        a->acw_until_ms > 0 ? acw_until : NULL,
        a->call_id[0] != '\0' ? a->call_id : NULL,
        a->workspace ? "t" : "f",
        a->nailed_up ? "t" : "f",
        a->ready_since_ms > 0 ? ready_since : NULL,
        a->drain ? "t" : "f",
        bump,
    };
    PGresult *res;

    snprintf(acw_timeout, sizeof(acw_timeout), "%d", (int)a->acw_timeout_s);
    snprintf(acw_until, sizeof(acw_until), "%lld", (long long)a->acw_until_ms);
    snprintf(ready_since, sizeof(ready_since), "%lld", (long long)a->ready_since_ms);
    snprintf(bump, sizeof(bump), "%d", bumps < 1 ? 1 : bumps);
    res = sd_pg_query(
        pg,
        "INSERT INTO agents (agent_id, dn, site, state, work_mode, acw_timeout_s, acw_until,"
        " call_id, workspace, nailed_up, ready_since, drain, version, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6::integer, to_timestamp($7::bigint / 1000.0), $8,"
        " $9::boolean, $10::boolean, to_timestamp($11::bigint / 1000.0), $12::boolean,"
        " $13::integer, now())"
        " ON CONFLICT (agent_id) DO UPDATE SET dn = EXCLUDED.dn, site = EXCLUDED.site,"
        " state = EXCLUDED.state, work_mode = EXCLUDED.work_mode,"
        " acw_timeout_s = EXCLUDED.acw_timeout_s, acw_until = EXCLUDED.acw_until,"
        " call_id = EXCLUDED.call_id, workspace = EXCLUDED.workspace,"
        " nailed_up = EXCLUDED.nailed_up, ready_since = EXCLUDED.ready_since,"
        " drain = EXCLUDED.drain, version = agents.version + $13::integer, updated_at = now()"
        " RETURNING version",
        13, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    *version = ll_value(res, 0, 0);
    PQclear(res);
    return 0;
}

/* Serialises every decision about one DN until the transaction ends (a
 * login there, a peer-site login), also between agent-state instances. */
static int lock_dn(struct sd_pg *pg, const char *dn, struct sd_err *err)
{
    const char *values[1] = {dn};

    return sd_pg_exec(pg, "SELECT pg_advisory_xact_lock(hashtext('sipdrain.dn:' || $1))", 1, values,
                      err) < 0
               ? -1
               : 0;
}

int agent_db_login_facts(struct sd_pg *pg, const char *agent_id, const char *site, const char *dn,
                         bool *site_known, bool *site_draining, bool *dn_in_use, struct sd_err *err)
{
    const char *values[3] = {site, dn, agent_id};
    PGresult *res;

    if (lock_dn(pg, dn, err) < 0)
        return -1;
    res = sd_pg_query(pg,
                      "SELECT EXISTS (SELECT 1 FROM sites WHERE site_id = $1),"
                      " EXISTS (SELECT 1 FROM drains WHERE scope = 'site' AND site = $1"
                      "         AND ended_at IS NULL),"
                      " EXISTS (SELECT 1 FROM agents WHERE dn = $2 AND agent_id <> $3"
                      "         AND state <> 'logged_out')",
                      3, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    *site_known = bool_value(res, 0, 0);
    *site_draining = bool_value(res, 0, 1);
    *dn_in_use = bool_value(res, 0, 2);
    PQclear(res);
    return 0;
}

int agent_db_peer_facts(struct sd_pg *pg, const char *agent_id, const char *site, const char *dn,
                        char peer[AGENT_ID_SIZE], bool *peer_draining, bool *dn_in_use,
                        struct sd_err *err)
{
    const char *values[3] = {site, dn, agent_id};
    PGresult *res;

    peer[0] = '\0';
    *peer_draining = false;
    *dn_in_use = false;
    if (lock_dn(pg, dn, err) < 0)
        return -1;
    res = sd_pg_query(pg,
                      "SELECT s.peer,"
                      " EXISTS (SELECT 1 FROM drains d WHERE d.scope = 'site' AND d.site = s.peer"
                      "         AND d.ended_at IS NULL),"
                      " EXISTS (SELECT 1 FROM agents WHERE dn = $2 AND agent_id <> $3"
                      "         AND state <> 'logged_out')"
                      " FROM sites s WHERE s.site_id = $1",
                      3, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) > 0) {
        copy_value(peer, AGENT_ID_SIZE, res, 0, 0);
        *peer_draining = bool_value(res, 0, 1);
        *dn_in_use = bool_value(res, 0, 2);
    }
    PQclear(res);
    return 0;
}

int agent_db_registration(struct sd_pg *pg, const char *dn, char edge[AGENT_ID_SIZE],
                          struct sd_err *err)
{
    const char *values[1] = {dn};
    PGresult *res;

    edge[0] = '\0';
    res = sd_pg_query(pg,
                      "SELECT r.edge_id FROM registrations r"
                      " LEFT JOIN edges e ON e.edge_id = r.edge_id"
                      " WHERE r.dn = $1 AND r.expires_at > now()"
                      " ORDER BY (e.state IS NOT DISTINCT FROM 'active') DESC, r.updated_at DESC"
                      " LIMIT 1",
                      1, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) > 0)
        copy_value(edge, AGENT_ID_SIZE, res, 0, 0);
    PQclear(res);
    return 0;
}

int agent_db_acw_due(struct sd_pg *pg, long long now_ms, char (*ids)[AGENT_ID_SIZE], int max,
                     struct sd_err *err)
{
    char now[24], limit[16];
    const char *values[2] = {now, limit};
    PGresult *res;
    int n;

    snprintf(now, sizeof(now), "%lld", now_ms);
    snprintf(limit, sizeof(limit), "%d", max);
    res = sd_pg_query(pg,
                      "SELECT agent_id FROM agents WHERE state = 'acw' AND acw_until IS NOT NULL"
                      " AND acw_until <= to_timestamp($1::bigint / 1000.0)"
                      " ORDER BY acw_until LIMIT $2::integer",
                      2, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    n = PQntuples(res);
    for (int i = 0; i < n; i++)
        copy_value(ids[i], AGENT_ID_SIZE, res, i, 0);
    PQclear(res);
    return n;
}
