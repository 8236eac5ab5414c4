/* edge_db.c - see edge_db.h. */
#include "edge_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_fsm.h"

#include "sipdrain/event.h"

int edge_db_register(struct sd_pg *pg, const char *edge_id, const char *dn, const char *contact,
                     int expires_s, int max_contacts, struct sd_err *err)
{
    char expires[16], max[16];
    const char *values[4] = {dn, contact, edge_id, expires};
    const char *trim[2] = {dn, max};

    if (expires_s <= 0)
        return sd_pg_exec(pg, "DELETE FROM registrations WHERE dn = $1 AND contact = $2", 2, values,
                          err) < 0
                   ? -1
                   : 0;
    snprintf(expires, sizeof(expires), "%d", expires_s);
    snprintf(max, sizeof(max), "%d", max_contacts);
    if (sd_pg_begin(pg, err) < 0)
        return -1;
    if (sd_pg_exec(pg,
                   "INSERT INTO registrations (dn, contact, edge_id, expires_at, updated_at)"
                   " VALUES ($1, $2, $3, now() + make_interval(secs => $4::integer), now())"
                   " ON CONFLICT (dn, contact) DO UPDATE SET edge_id = EXCLUDED.edge_id,"
                   " expires_at = EXCLUDED.expires_at, updated_at = now()",
                   4, values, err) < 0 ||
        /* the newest max_contacts stay (the one just stored is the newest) */
        sd_pg_exec(pg,
                   "DELETE FROM registrations WHERE dn = $1 AND contact NOT IN (SELECT contact"
                   " FROM registrations WHERE dn = $1 AND expires_at > now()"
                   " ORDER BY updated_at DESC, contact LIMIT $2::integer)",
                   2, trim, err) < 0 ||
        sd_pg_commit(pg, err) < 0) {
        sd_pg_rollback(pg);
        return -1;
    }
    return 0;
}

int edge_db_registrations_expire(struct sd_pg *pg, long *deleted, struct sd_err *err)
{
    int n = sd_pg_exec(pg, "DELETE FROM registrations WHERE expires_at <= now()", 0, NULL, err);

    if (n < 0)
        return -1;
    *deleted = n;
    return 0;
}

int edge_db_credentials(struct sd_pg *pg, const char *dn, const char *realm, const char *algorithm,
                        char *ha1, size_t size, struct sd_err *err)
{
    const char *values[3] = {dn, realm, algorithm};
    PGresult *res = sd_pg_query(pg,
                                "SELECT ha1 FROM sip_credentials WHERE dn = $1 AND realm = $2"
                                " AND algorithm = $3",
                                3, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    snprintf(ha1, size, "%s", PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return 0;
}

int edge_db_heartbeat(struct sd_pg *pg, const char *edge_id, const char *site,
                      const struct edge_db_status *st, struct sd_err *err)
{
    char n[5][24];
    const char *values[9] = {edge_id, site, st->state,           n[0], n[1], n[2],
                             n[3],    n[4], st->held ? "t" : "f"};
    const long v[5] = {st->active_calls, st->pending_byes, st->nailed_up_dialogs, st->calls_cut,
                       st->byes_retransmitted};

    for (int i = 0; i < 5; i++)
        snprintf(n[i], sizeof(n[i]), "%ld", v[i]);
    return sd_pg_exec(pg,
                      "INSERT INTO edges (edge_id, site, state, active_calls, pending_byes,"
                      " nailed_up_dialogs, calls_cut, byes_retransmitted, held, last_heartbeat)"
                      " VALUES ($1, $2, $3, $4::integer, $5::integer, $6::integer, $7::integer,"
                      " $8::integer, $9::boolean, now())"
                      " ON CONFLICT (edge_id) DO UPDATE SET site = EXCLUDED.site,"
                      " state = EXCLUDED.state, active_calls = EXCLUDED.active_calls,"
                      " pending_byes = EXCLUDED.pending_byes,"
                      " nailed_up_dialogs = EXCLUDED.nailed_up_dialogs,"
                      " calls_cut = EXCLUDED.calls_cut,"
                      " byes_retransmitted = EXCLUDED.byes_retransmitted, held = EXCLUDED.held,"
                      " last_heartbeat = now()",
                      9, values, err) < 0
               ? -1
               : 0;
}

static void copy_col(char *dst, size_t size, PGresult *res, int row, int col)
{
    snprintf(dst, size, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

/* The phone's live registration, as a column of a statement on agents. */
#define LIVE_CONTACT                                                                               \
    "(SELECT g.contact FROM registrations g WHERE g.dn = agents.dn AND g.expires_at > now()"       \
    " ORDER BY g.updated_at DESC LIMIT 1)"

/* The agent for a route point: the longest-idle Ready agent of the site
 * whose phone is registered, taken with SKIP LOCKED so two edges routing
 * at once never pick the same one. One statement: reserves it and returns
 * its phone's contact. */
/* A site's live waiting call, as a condition on waiting_calls w: within its
 * deadline, at an edge that is alive - its heartbeat (edges.last_heartbeat,
 * every second) under 5 s old: a dead edge's callers are gone, and its
 * rows must not hold the head of the queue for longer. */
#define LIVE_WAITING                                                                               \
    "w.deadline > now() AND EXISTS (SELECT 1 FROM edges x WHERE x.edge_id = w.edge_id"             \
    " AND x.last_heartbeat > now() - interval '5 seconds')"

static int reserve_route_point(struct sd_pg *pg, struct edge_route *r, struct sd_err *err)
{
    const char *values[3] = {r->call_id_used, r->site, r->behind_queue ? "t" : "f"};
    PGresult *res = sd_pg_query(
        pg,
        "UPDATE agents SET call_id = $1, version = version + 1, updated_at = now()"
        " WHERE agent_id = (SELECT a.agent_id FROM agents a"
        "   WHERE a.site = $2 AND a.state = 'ready' AND a.call_id IS NULL AND NOT a.drain"
        "   AND EXISTS (SELECT 1 FROM registrations g WHERE g.dn = a.dn"
        "               AND g.expires_at > now())"
        "   AND NOT ($3::boolean AND EXISTS (SELECT 1 FROM waiting_calls w"
        "            WHERE w.site = $2 AND " LIVE_WAITING "))"
        "   ORDER BY a.ready_since NULLS LAST LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " RETURNING agent_id, dn, " LIVE_CONTACT,
        3, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0) {
        r->status = 480;
        r->reason = "no_agent";
    } else {
        copy_col(r->agent_id, sizeof(r->agent_id), res, 0, 0);
        copy_col(r->agent_dn, sizeof(r->agent_dn), res, 0, 1);
        copy_col(r->contact, sizeof(r->contact), res, 0, 2);
    }
    PQclear(res);
    return 0;
}

static int refusal_reason(struct sd_pg *pg, struct edge_route *r, struct sd_err *err);

/* The agent logged in on dn, if it is free (not on a call) and its phone
 * registered: reserved, with the phone's contact, in one statement. Only
 * when it is not does a second one say why (404, 480, 486). */

static int reserve_dn(struct sd_pg *pg, struct edge_route *r, struct sd_err *err)
{
    const char *values[2] = {r->dn, r->call_id_used};
    PGresult *res = sd_pg_query(
        pg,
        "UPDATE agents SET call_id = $2, version = version + 1, updated_at = now()"
        " WHERE agent_id = (SELECT agent_id FROM agents WHERE dn = $1 AND state <> 'logged_out'"
        "                   LIMIT 1 FOR UPDATE)"
        " AND call_id IS NULL"
        " AND EXISTS (SELECT 1 FROM registrations g WHERE g.dn = $1 AND g.expires_at > now())"
        " RETURNING agent_id, " LIVE_CONTACT,
        2, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    snprintf(r->agent_dn, sizeof(r->agent_dn), "%s", r->dn);
    if (PQntuples(res) > 0) {
        copy_col(r->agent_id, sizeof(r->agent_id), res, 0, 0);
        copy_col(r->contact, sizeof(r->contact), res, 0, 1);
        PQclear(res);
        return 0;
    }
    PQclear(res);
    return refusal_reason(pg, r, err);
}

/* Why the agent on r->dn could not be reserved: 404, or 480 / 486 with the
 * agent. */
static int refusal_reason(struct sd_pg *pg, struct edge_route *r, struct sd_err *err)
{
    const char *values[1] = {r->dn};
    PGresult *res;

    snprintf(r->agent_dn, sizeof(r->agent_dn), "%s", r->dn);
    res = sd_pg_query(pg,
                      "SELECT agent_id, state, call_id IS NOT NULL, EXISTS (SELECT 1 FROM"
                      " registrations g WHERE g.dn = $1 AND g.expires_at > now()) FROM agents"
                      " WHERE dn = $1 ORDER BY state = 'logged_out' LIMIT 1",
                      1, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0) {
        r->status = 404;
        r->reason = "unknown_dn";
        r->agent_dn[0] = '\0';
    } else {
        copy_col(r->agent_id, sizeof(r->agent_id), res, 0, 0);
        r->status = 480;
        if (strcmp(PQgetvalue(res, 0, 1), "logged_out") == 0)
            r->reason = "agent_not_available";
        else if (PQgetvalue(res, 0, 2)[0] == 't' || PQgetvalue(res, 0, 3)[0] == 't') {
            /* on a call - or free again with its phone registered: then
             * it was on a call a moment ago, when the reservation ran */
            r->status = 486;
            r->reason = "agent_busy";
        } else
            r->reason = "not_registered";
    }
    PQclear(res);
    return 0;
}

static int rename_call(struct sd_pg *pg, struct edge_route *r, struct sd_err *err);

/* The calls row; a row of that id already there (the same SIP call routed
 * again, e.g. after a failover between edges) makes it call_id~edge~ms,
 * and the agent's reservation follows. */

static int insert_call(struct sd_pg *pg, struct edge_route *r, struct sd_err *err)
{
    const char *values[4] = {r->call_id_used, r->edge_id, r->site, r->agent_id};
    const char *sql = "INSERT INTO calls (call_id, edge_id, site, agent_id, direction, state)"
                      " VALUES ($1, $2, $3, NULLIF($4, ''), 'inbound', 'offered')"
                      " ON CONFLICT (call_id) DO NOTHING RETURNING 1";
    PGresult *res = sd_pg_query(pg, sql, 4, values, NULL, NULL, err);
    int inserted;

    if (res == NULL)
        return -1;
    inserted = PQntuples(res);
    PQclear(res);
    return inserted > 0 ? 0 : rename_call(pg, r, err);
}

/* A calls row of r->call_id exists already: r's call becomes
 * call_id~edge~ms, in its row and in its agent's reservation. */
static int rename_call(struct sd_pg *pg, struct edge_route *r, struct sd_err *err)
{
    const char *values[4] = {r->call_id_used, r->edge_id, r->site, r->agent_id};
    const char *sql = "INSERT INTO calls (call_id, edge_id, site, agent_id, direction, state)"
                      " VALUES ($1, $2, $3, NULLIF($4, ''), 'inbound', 'offered')";

    snprintf(r->call_id_used, sizeof(r->call_id_used), "%.200s~%s~%lld", r->call_id, r->edge_id,
             (long long)sd_wall_ms());
    values[0] = r->call_id_used;
    if (sd_pg_exec(pg, sql, 4, values, err) < 0)
        return -1;
    values[1] = r->agent_id;
    return sd_pg_exec(pg, "UPDATE agents SET call_id = $1 WHERE agent_id = $2", 2, values, err) < 0
               ? -1
               : 0;
}

int edge_db_route(struct sd_pg *pg, struct edge_route *r, struct sd_err *err)
{
    r->status = 0;
    r->reason = NULL;
    r->agent_id[0] = r->agent_dn[0] = r->contact[0] = '\0';
    snprintf(r->call_id_used, sizeof(r->call_id_used), "%s", r->call_id);
    if ((r->route_point ? reserve_route_point(pg, r, err) : reserve_dn(pg, r, err)) < 0)
        return -1;
    if (r->status != 0)
        return 0;
    return insert_call(pg, r, err);
}

int edge_db_routed_before(struct sd_pg *pg, struct edge_route *r, struct sd_err *err)
{
    /* the row as the first try left it: the same Call-ID, or the renamed
     * call_id~edge~ms of this edge; its agent still reserved for it (found
     * through agents, a table as small as the contact centre: calls holds
     * the history) */
    const char *values[2] = {r->call_id, r->edge_id};
    PGresult *res = sd_pg_query(
        pg,
        "SELECT agents.call_id, agents.agent_id, agents.dn, " LIVE_CONTACT " FROM agents"
        " JOIN calls c ON c.call_id = agents.call_id AND c.agent_id = agents.agent_id"
        " WHERE (agents.call_id = $1 OR starts_with(agents.call_id, $1 || '~' || $2 || '~'))"
        "   AND c.edge_id = $2 AND c.state = 'offered' AND c.direction = 'inbound'"
        " ORDER BY c.created_at DESC LIMIT 1",
        2, values, NULL, NULL, err);
    int found;

    r->status = 0;
    r->reason = NULL;
    if (res == NULL)
        return -1;
    found = PQntuples(res) == 1;
    if (found) {
        copy_col(r->call_id_used, sizeof(r->call_id_used), res, 0, 0);
        copy_col(r->agent_id, sizeof(r->agent_id), res, 0, 1);
        copy_col(r->agent_dn, sizeof(r->agent_dn), res, 0, 2);
        copy_col(r->contact, sizeof(r->contact), res, 0, 3);
    }
    PQclear(res);
    return found;
}

/* One statement reserves the agents of several calls and inserts their
 * calls rows. Its rows: i (1-based position in the batch), agent_id, dn,
 * contact, and whether the calls row went in (false: a row of that Call-ID
 * exists already). Agents on DNs are locked in agent_id order first, so two
 * edges routing overlapping batches never deadlock; a DN asked twice in one
 * batch goes to its first call only (the later one finds the agent busy). */
#define ROUTE_BATCH_INSERT                                                                         \
    " c AS (INSERT INTO calls (call_id, edge_id, site, agent_id, direction, state)"                \
    "   SELECT call_id, $3::text, $4::text, agent_id, 'inbound', 'offered' FROM r ORDER BY i"      \
    "   ON CONFLICT (call_id) DO NOTHING RETURNING call_id)"                                       \
    " SELECT r.i, r.agent_id, r.dn, r.contact, r.call_id IN (SELECT call_id FROM c) FROM r"

#define ROUTE_BATCH_RESERVE                                                                        \
    " r AS (UPDATE agents SET call_id = p.call_id, version = agents.version + 1,"                  \
    "   updated_at = now() FROM p WHERE agents.agent_id = p.agent_id AND agents.call_id IS NULL"   \
    "   RETURNING p.i, p.call_id, agents.agent_id, agents.dn, " LIVE_CONTACT " AS contact),"

static const char route_batch_dn_sql[] =
    "WITH q AS (SELECT * FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q (call_id, dn, "
    "i)),"
    " l AS (SELECT a.agent_id, a.dn FROM agents a WHERE a.dn IN (SELECT dn FROM q)"
    "   AND a.state <> 'logged_out' ORDER BY a.agent_id FOR UPDATE),"
    " p AS (SELECT DISTINCT ON (q.dn) q.i, q.call_id, l.agent_id FROM q JOIN l USING (dn)"
    "   WHERE EXISTS (SELECT 1 FROM registrations g WHERE g.dn = q.dn AND g.expires_at > now())"
    "   ORDER BY q.dn, q.i, l.agent_id)," ROUTE_BATCH_RESERVE ROUTE_BATCH_INSERT;

/* Route points: the site's longest-idle Ready agents, paired in order with
 * the calls in order (SKIP LOCKED, as for one call). */
static const char route_batch_rp_sql[] =
    "WITH q AS (SELECT * FROM unnest($1::text[]) WITH ORDINALITY AS q (call_id, i)),"
    " a0 AS (SELECT a.agent_id, a.ready_since FROM agents a"
    "   WHERE a.site = $4::text AND a.state = 'ready' AND a.call_id IS NULL AND NOT a.drain"
    "   AND EXISTS (SELECT 1 FROM registrations g WHERE g.dn = a.dn AND g.expires_at > now())"
    "   AND NOT ($2::boolean AND EXISTS (SELECT 1 FROM waiting_calls w"
    "            WHERE w.site = $4 AND " LIVE_WAITING "))"
    "   ORDER BY a.ready_since NULLS LAST, a.agent_id LIMIT $5::integer FOR UPDATE SKIP LOCKED),"
    " p AS (SELECT q.i, q.call_id, a.agent_id FROM q JOIN (SELECT agent_id, row_number() OVER"
    "   (ORDER BY ready_since NULLS LAST, agent_id) AS i FROM a0) a USING (i))," ROUTE_BATCH_RESERVE
        ROUTE_BATCH_INSERT;

/* Runs one of the batch statements over the routes in idx (n of them) and
 * fills those it routed; *routed[k] says which. */
static int route_batch_run(struct sd_pg *pg, struct edge_route *r, const size_t *idx, size_t n,
                           bool dn, bool *routed, struct sd_err *err)
{
    const char *ids[EDGE_ROUTE_BATCH_MAX], *dns[EDGE_ROUTE_BATCH_MAX];
    char *ids_text, *dns_text = NULL, limit[16];
    const char *values[5];
    PGresult *res;

    for (size_t k = 0; k < n; k++) {
        ids[k] = r[idx[k]].call_id_used;
        dns[k] = r[idx[k]].dn;
    }
    ids_text = sd_pg_text_array(ids, n);
    if (dn)
        dns_text = sd_pg_text_array(dns, n);
    if (ids_text == NULL || (dn && dns_text == NULL)) {
        free(ids_text);
        free(dns_text);
        return sd_err_set(err, SD_ERR_INTERNAL, "out of memory"), -1;
    }
    snprintf(limit, sizeof(limit), "%zu", n);
    values[0] = ids_text;
    values[1] = dn ? dns_text : (r[idx[0]].behind_queue ? "t" : "f");
    values[2] = r[idx[0]].edge_id;
    values[3] = r[idx[0]].site;
    values[4] = limit;
    res = sd_pg_query(pg, dn ? route_batch_dn_sql : route_batch_rp_sql, dn ? 4 : 5, values, NULL,
                      NULL, err);
    free(ids_text);
    free(dns_text);
    if (res == NULL)
        return -1;
    for (int row = 0; row < PQntuples(res); row++) {
        long i = strtol(PQgetvalue(res, row, 0), NULL, 10) - 1;
        struct edge_route *x;

        if (i < 0 || (size_t)i >= n)
            continue;
        x = &r[idx[i]];
        routed[i] = true;
        copy_col(x->agent_id, sizeof(x->agent_id), res, row, 1);
        copy_col(x->agent_dn, sizeof(x->agent_dn), res, row, 2);
        copy_col(x->contact, sizeof(x->contact), res, row, 3);
        x->status = PQgetvalue(res, row, 4)[0] == 't' ? 0 : -1; /* -1: rename below */
    }
    PQclear(res);
    return 0;
}

int edge_db_route_batch(struct sd_pg *pg, struct edge_route *r, size_t n, struct sd_err *err)
{
    size_t dn_idx[EDGE_ROUTE_BATCH_MAX], rp_idx[EDGE_ROUTE_BATCH_MAX], ndn = 0, nrp = 0;
    bool dn_done[EDGE_ROUTE_BATCH_MAX] = {false}, rp_done[EDGE_ROUTE_BATCH_MAX] = {false};

    if (n > EDGE_ROUTE_BATCH_MAX)
        return sd_err_set(err, SD_ERR_INTERNAL, "edge_db_route_batch: %zu calls, at most %d", n,
                          EDGE_ROUTE_BATCH_MAX),
               -1;
    for (size_t i = 0; i < n; i++) {
        r[i].status = 0;
        r[i].reason = NULL;
        r[i].agent_id[0] = r[i].agent_dn[0] = r[i].contact[0] = '\0';
        snprintf(r[i].call_id_used, sizeof(r[i].call_id_used), "%s", r[i].call_id);
        if (r[i].route_point)
            rp_idx[nrp++] = i;
        else
            dn_idx[ndn++] = i;
    }
    if ((ndn > 0 && route_batch_run(pg, r, dn_idx, ndn, true, dn_done, err) < 0) ||
        (nrp > 0 && route_batch_run(pg, r, rp_idx, nrp, false, rp_done, err) < 0))
        return -1;
    /* The rare cases, one call at a time: why a DN's agent was not free,
     * a Call-ID routed before, no agent for a route point. */
    for (size_t k = 0; k < ndn; k++) {
        struct edge_route *x = &r[dn_idx[k]];
        if (!dn_done[k] && refusal_reason(pg, x, err) < 0)
            return -1;
    }
    for (size_t k = 0; k < nrp; k++) {
        struct edge_route *x = &r[rp_idx[k]];
        if (!rp_done[k]) {
            x->status = 480;
            x->reason = "no_agent";
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (r[i].status < 0) {
            r[i].status = 0;
            if (rename_call(pg, &r[i], err) < 0)
                return -1;
        }
    }
    return 0;
}

int edge_db_call_insert_routed(struct sd_pg *pg, struct edge_route *r, struct sd_err *err)
{
    r->status = 0;
    snprintf(r->call_id_used, sizeof(r->call_id_used), "%s", r->call_id);
    return insert_call(pg, r, err);
}

int edge_db_call_insert_peer(struct sd_pg *pg, struct edge_route *r, struct sd_err *err)
{
    r->agent_id[0] = r->agent_dn[0] = '\0';
    return edge_db_call_insert_routed(pg, r, err);
}

int edge_db_call_insert(struct sd_pg *pg, const char *call_id, const char *edge_id,
                        const char *site, const char *agent_id, const char *direction,
                        struct sd_err *err)
{
    const char *values[5] = {call_id, edge_id, site, agent_id, direction};

    return sd_pg_exec(pg,
                      "INSERT INTO calls (call_id, edge_id, site, agent_id, direction, state)"
                      " VALUES ($1, $2, $3, $4, $5, 'offered')",
                      5, values, err) < 0
               ? -1
               : 0;
}

int edge_db_call_update(struct sd_pg *pg, const char *call_id, const char *state,
                        const char *end_cause, struct sd_err *err)
{
    const char *values[3] = {call_id, state, end_cause};

    return sd_pg_exec(pg,
                      "UPDATE calls SET state = $2,"
                      " answered_at = CASE WHEN $2 = 'established' THEN now() ELSE answered_at END,"
                      " ended_at = CASE WHEN $2 = 'ended' THEN now() ELSE ended_at END,"
                      " end_cause = COALESCE($3, end_cause) WHERE call_id = $1",
                      3, values, err) < 0
               ? -1
               : 0;
}

int edge_db_call_update_many(struct sd_pg *pg, const char *const *call_ids,
                             const char *const *states, const char *const *end_causes, size_t n,
                             struct sd_err *err)
{
    char *arrays[3] = {sd_pg_text_array(call_ids, n), sd_pg_text_array(states, n),
                       sd_pg_text_array(end_causes, n)};
    const char *values[3] = {arrays[0], arrays[1], arrays[2]};
    int rc = -1;

    if (arrays[0] == NULL || arrays[1] == NULL || arrays[2] == NULL)
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
    else
        rc =
            sd_pg_exec(pg,
                       "UPDATE calls SET state = u.state,"
                       " answered_at = CASE WHEN u.state = 'established' THEN now()"
                       "   ELSE calls.answered_at END,"
                       " ended_at = CASE WHEN u.state = 'ended' THEN now() ELSE calls.ended_at END,"
                       " end_cause = COALESCE(u.end_cause, calls.end_cause)"
                       " FROM unnest($1::text[], $2::text[], $3::text[]) AS u (call_id, state,"
                       " end_cause) WHERE calls.call_id = u.call_id",
                       3, values, err) < 0
                ? -1
                : 0;
    for (int i = 0; i < 3; i++)
        free(arrays[i]);
    return rc;
}

int edge_db_contact(struct sd_pg *pg, const char *edge_id, const char *dn, char *contact,
                    size_t size, struct sd_err *err)
{
    const char *values[2] = {dn, edge_id};
    PGresult *res = sd_pg_query(pg,
                                "SELECT contact FROM registrations WHERE dn = $1 AND edge_id = $2"
                                " AND expires_at > now() ORDER BY updated_at DESC LIMIT 1",
                                2, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    snprintf(contact, size, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return 0;
}

int edge_db_nailed_agent(struct sd_pg *pg, const char *dn, char *agent_id, size_t size,
                         struct sd_err *err)
{
    const char *values[1] = {dn};
    PGresult *res = sd_pg_query(pg,
                                "SELECT agent_id FROM agents WHERE dn = $1 AND nailed_up"
                                " AND state <> 'logged_out' LIMIT 1",
                                1, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    snprintf(agent_id, size, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return 0;
}

int edge_db_hold(struct sd_pg *pg, const char *edge_id, const char *site, struct edge_drain *hold,
                 bool *found, struct sd_err *err)
{
    const char *values[2] = {edge_id, site};
    /* the edge's own hold first: resuming the site leaves that edge drained */
    PGresult *res = sd_pg_query(
        pg,
        "SELECT d.drain_id, d.scope = 'site', coalesce((d.options->>'reject_code')::integer, -1),"
        " coalesce((d.options->>'sip_timeout_s')::integer, -1),"
        " coalesce((d.options->>'retry_after_s')::integer, -1)"
        " FROM (SELECT 0 AS k, drained_by FROM edges WHERE edge_id = $1"
        "       UNION ALL SELECT 1, drained_by FROM sites WHERE site_id = $2) h"
        " JOIN drains d ON d.drain_id = h.drained_by ORDER BY h.k LIMIT 1",
        2, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    *found = PQntuples(res) > 0;
    if (*found) {
        memset(hold, 0, sizeof(*hold));
        copy_col(hold->drain_id, sizeof(hold->drain_id), res, 0, 0);
        hold->site_scope = !strcmp(PQgetvalue(res, 0, 1), "t");
        hold->reject_code = atoi(PQgetvalue(res, 0, 2));
        hold->sip_timeout_s = atoi(PQgetvalue(res, 0, 3));
        hold->retry_after_s = atoi(PQgetvalue(res, 0, 4));
    }
    PQclear(res);
    return 0;
}

/* --- the site's queue ---------------------------------------------------- */

#define WAITING_COLUMNS                                                                            \
    "token, call_id, route_point, coalesce(caller, ''), coalesce(called, ''),"                     \
    " greatest(0, (extract(epoch FROM now() - queued_at) * 1000)::bigint), offers"

static void read_waiting(PGresult *res, int row, int col, struct edge_waiting *w)
{
    w->token = strtoul(PQgetvalue(res, row, col), NULL, 10);
    copy_col(w->call_id, sizeof(w->call_id), res, row, col + 1);
    copy_col(w->route_point, sizeof(w->route_point), res, row, col + 2);
    copy_col(w->caller, sizeof(w->caller), res, row, col + 3);
    copy_col(w->called, sizeof(w->called), res, row, col + 4);
    w->wait_ms = atol(PQgetvalue(res, row, col + 5));
    w->offers = atoi(PQgetvalue(res, row, col + 6));
}

int edge_db_queue(struct sd_pg *pg, const struct edge_wait *w, int max_calls, bool *full,
                  struct sd_err *err)
{
    char token[24], at[24], wait[16], max[16], offers[16];
    const char *values[11] = {w->edge_id, w->call_id, w->site,   w->route_point,
                              token,      w->caller,  w->called, at,
                              wait,       max,        offers};
    int n;

    snprintf(token, sizeof(token), "%lu", w->token);
    snprintf(at, sizeof(at), "%lld", (long long)w->queued_at_ms);
    snprintf(wait, sizeof(wait), "%d", w->max_wait_s);
    snprintf(max, sizeof(max), "%d", max_calls);
    snprintf(offers, sizeof(offers), "%d", w->offers);
    n = sd_pg_exec(pg,
                   "INSERT INTO waiting_calls (edge_id, call_id, site, route_point, token, caller,"
                   " called, queued_at, deadline, offers)"
                   " SELECT $1, $2, $3, $4, $5::bigint, $6, $7, to_timestamp($8::bigint / 1000.0),"
                   " to_timestamp($8::bigint / 1000.0) + make_interval(secs => $9::integer),"
                   " $11::integer"
                   " WHERE $10::integer <= 0 OR (SELECT count(*) FROM waiting_calls w"
                   "       WHERE w.site = $3 AND " LIVE_WAITING ") < $10::integer"
                   " ON CONFLICT (edge_id, token) DO UPDATE SET deadline = EXCLUDED.deadline,"
                   " offers = EXCLUDED.offers",
                   11, values, err);
    if (n < 0)
        return -1;
    *full = n == 0;
    return 0;
}

int edge_db_queue_expire(struct sd_pg *pg, const char *edge_id, struct edge_waiting *out,
                         size_t max, size_t *n, struct sd_err *err)
{
    char limit[16];
    const char *values[2] = {edge_id, limit};
    PGresult *res;

    snprintf(limit, sizeof(limit), "%zu", max);
    res = sd_pg_query(
        pg,
        "DELETE FROM waiting_calls WHERE (edge_id, token) IN (SELECT edge_id, token"
        " FROM waiting_calls WHERE edge_id = $1 AND deadline <= now()"
        " AND agent_id IS NULL ORDER BY queued_at LIMIT $2::integer) RETURNING " WAITING_COLUMNS,
        2, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    *n = (size_t)PQntuples(res);
    for (size_t i = 0; i < *n; i++)
        read_waiting(res, (int)i, 0, &out[i]);
    PQclear(res);
    return 0;
}

/* Releases, as a statement's last step, the agents given to the rows a
 * CTE "gone" deleted (agent_id, call_id): they were reserved for calls that
 * will never be offered. */
#define RELEASE_GONE                                                                               \
    " UPDATE agents a SET call_id = NULL, version = a.version + 1, updated_at = now()"             \
    " FROM gone WHERE gone.agent_id IS NOT NULL AND a.agent_id = gone.agent_id"                    \
    " AND a.call_id = gone.call_id"

int edge_db_dequeue(struct sd_pg *pg, const char *edge_id, unsigned long token,
                    struct edge_waiting *w, bool *found, struct sd_err *err)
{
    char t[24];
    const char *values[2] = {edge_id, t};
    PGresult *res;

    snprintf(t, sizeof(t), "%lu", token);
    res = sd_pg_query(pg,
                      "WITH gone AS (DELETE FROM waiting_calls WHERE edge_id = $1"
                      " AND token = $2::bigint RETURNING *), rel AS (" RELEASE_GONE ")"
                      " SELECT " WAITING_COLUMNS " FROM gone",
                      2, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    *found = PQntuples(res) > 0;
    if (*found)
        read_waiting(res, 0, 0, w);
    PQclear(res);
    return 0;
}

int edge_db_queue_clear(struct sd_pg *pg, const char *edge_id, const char *site, long *n,
                        struct sd_err *err)
{
    const char *values[2] = {edge_id, site};
    PGresult *res =
        sd_pg_query(pg,
                    "WITH gone AS (DELETE FROM waiting_calls w WHERE w.edge_id = $1 OR (w.site = $2"
                    " AND NOT EXISTS (SELECT 1 FROM edges x WHERE x.edge_id = w.edge_id"
                    " AND x.last_heartbeat > now() - interval '60 seconds')) RETURNING *),"
                    " rel AS (" RELEASE_GONE ") SELECT count(*) FROM gone",
                    2, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    *n = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

int edge_db_queue_give(struct sd_pg *pg, const char *site, int max, long *given, struct sd_err *err)
{
    char limit[16];
    const char *values[2] = {site, limit};
    PGresult *res;

    snprintf(limit, sizeof(limit), "%d", max);
    *given = 0;
    if (sd_pg_begin(pg, err) < 0)
        return -1;
    /* one giver per site at a time: two would each skip the other's
     * locked rows and could serve a later call first */
    res = sd_pg_query(pg, "SELECT pg_try_advisory_xact_lock(1936, hashtext($1))", 1, values, NULL,
                      NULL, err);
    if (res == NULL)
        goto fail;
    if (PQgetvalue(res, 0, 0)[0] != 't') {
        PQclear(res);
        return sd_pg_commit(pg, err) < 0 ? -1 : 0;
    }
    PQclear(res);
    /* agents given to calls of an edge that went silent: free again */
    if (sd_pg_exec(pg,
                   "WITH gone AS (UPDATE waiting_calls w SET agent_id = NULL, given_at = NULL"
                   " FROM waiting_calls o WHERE o.edge_id = w.edge_id AND o.token = w.token"
                   " AND w.site = $1 AND w.agent_id IS NOT NULL AND NOT EXISTS (SELECT 1"
                   " FROM edges x WHERE x.edge_id = w.edge_id"
                   " AND x.last_heartbeat > now() - interval '5 seconds')"
                   " RETURNING o.agent_id, o.call_id) " RELEASE_GONE,
                   1, values, err) < 0)
        goto fail;
    res = sd_pg_query(
        pg,
        "WITH c0 AS (SELECT w.edge_id, w.token, w.call_id, w.queued_at FROM waiting_calls w"
        "   WHERE w.site = $1 AND w.agent_id IS NULL AND " LIVE_WAITING
        "   ORDER BY w.queued_at, w.edge_id, w.token LIMIT $2::integer FOR UPDATE OF w),"
        " c AS (SELECT c0.*, row_number() OVER (ORDER BY queued_at, edge_id, token) AS n FROM c0),"
        " a0 AS (SELECT a.agent_id, a.ready_since FROM agents a"
        "   WHERE a.site = $1 AND a.state = 'ready' AND a.call_id IS NULL AND NOT a.drain"
        "   AND EXISTS (SELECT 1 FROM registrations g WHERE g.dn = a.dn AND g.expires_at > now())"
        "   AND EXISTS (SELECT 1 FROM c0)"
        "   ORDER BY a.ready_since NULLS LAST, a.agent_id LIMIT $2::integer"
        "   FOR UPDATE SKIP LOCKED),"
        " a AS (SELECT a0.*, row_number() OVER (ORDER BY ready_since NULLS LAST, agent_id) AS n"
        "   FROM a0),"
        " p AS (SELECT c.edge_id, c.token, c.call_id, a.agent_id FROM c JOIN a USING (n)),"
        " r AS (UPDATE agents SET call_id = p.call_id, version = agents.version + 1,"
        "   updated_at = now() FROM p WHERE agents.agent_id = p.agent_id RETURNING 1)"
        " UPDATE waiting_calls w SET agent_id = p.agent_id, given_at = now() FROM p"
        " WHERE w.edge_id = p.edge_id AND w.token = p.token RETURNING 1",
        2, values, NULL, NULL, err);
    if (res == NULL)
        goto fail;
    *given = PQntuples(res);
    PQclear(res);
    return sd_pg_commit(pg, err) < 0 ? -1 : 0;
fail:
    sd_pg_rollback(pg);
    return -1;
}

int edge_db_queue_take(struct sd_pg *pg, const char *edge_id, struct edge_given *out, size_t max,
                       size_t *n, struct sd_err *err)
{
    char limit[16];
    const char *values[2] = {edge_id, limit};
    PGresult *res;

    snprintf(limit, sizeof(limit), "%zu", max);
    res = sd_pg_query(
        pg,
        "DELETE FROM waiting_calls w USING agents a WHERE (w.edge_id, w.token) IN"
        " (SELECT edge_id, token FROM waiting_calls WHERE edge_id = $1 AND agent_id IS NOT NULL"
        "  ORDER BY queued_at LIMIT $2::integer) AND a.agent_id = w.agent_id"
        " RETURNING w.token, w.call_id, w.route_point, coalesce(w.caller, ''),"
        " coalesce(w.called, ''), greatest(0, (extract(epoch FROM now() - w.queued_at) * 1000)"
        "::bigint), w.offers, a.agent_id, a.dn, (SELECT g.contact FROM registrations g"
        " WHERE g.dn = a.dn AND g.expires_at > now() ORDER BY g.updated_at DESC LIMIT 1)",
        2, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    *n = (size_t)PQntuples(res);
    for (size_t i = 0; i < *n; i++) {
        read_waiting(res, (int)i, 0, &out[i].w);
        copy_col(out[i].agent_id, sizeof(out[i].agent_id), res, (int)i, 7);
        copy_col(out[i].agent_dn, sizeof(out[i].agent_dn), res, (int)i, 8);
        copy_col(out[i].contact, sizeof(out[i].contact), res, (int)i, 9);
    }
    PQclear(res);
    return 0;
}

int edge_db_queue_stats(struct sd_pg *pg, const char *site, long *calls, long *oldest_ms,
                        struct sd_err *err)
{
    const char *values[1] = {site};
    PGresult *res = sd_pg_query(
        pg,
        "SELECT count(*), coalesce(greatest(0, (extract(epoch FROM now() - min(w.queued_at))"
        " * 1000)::bigint), 0) FROM waiting_calls w WHERE w.site = $1 AND " LIVE_WAITING,
        1, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    *calls = atol(PQgetvalue(res, 0, 0));
    *oldest_ms = atol(PQgetvalue(res, 0, 1));
    PQclear(res);
    return 0;
}
