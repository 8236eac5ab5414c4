/* orch_db.c - see orch_db.h. Parameters are always bound; times cross the
 * wire as milliseconds since the epoch. */
#include "orch_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define MS(col) "(extract(epoch from " col ") * 1000)::bigint"

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

static int int_or(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : -1;
}

int orch_db_try_lock(struct sd_pg *pg, bool *got, struct sd_err *err)
{
    PGresult *res =
        sd_pg_query(pg, "SELECT pg_try_advisory_lock(hashtext('sipdrain/drain-orchestrator'))", 0,
                    NULL, NULL, NULL, err);

    if (res == NULL)
        return -1;
    *got = bool_value(res, 0, 0);
    PQclear(res);
    return 0;
}

int orch_db_adopt_outbox(struct sd_pg *pg, const char *owner, int *n, struct sd_err *err)
{
    const char *values[1] = {owner};

    *n = sd_pg_exec(pg,
                    "UPDATE outbox SET owner = $1 WHERE owner LIKE 'drain-orchestrator/%'"
                    " AND owner <> $1 AND failed_at IS NULL",
                    1, values, err);
    return *n < 0 ? -1 : 0;
}

int orch_db_open_drains(struct sd_pg *pg, char ids[][DRAIN_ID_SIZE], int max, struct sd_err *err)
{
    PGresult *res =
        sd_pg_query(pg, "SELECT drain_id FROM drains WHERE ended_at IS NULL ORDER BY started_at", 0,
                    NULL, NULL, NULL, err);
    int n;

    if (res == NULL)
        return -1;
    n = PQntuples(res) < max ? PQntuples(res) : max;
    for (int i = 0; i < n; i++)
        copy_value(ids[i], DRAIN_ID_SIZE, res, i, 0);
    PQclear(res);
    return n;
}

int orch_db_drain_load(struct sd_pg *pg, const char *id, struct orch_drain *d, bool *found,
                       struct sd_err *err)
{
    const char *values[1] = {id};
    PGresult *res = sd_pg_query(
        pg,
        "SELECT scope, target, site, phase, " MS("started_at") ", " MS(
            "deadline_at") ", forced, " MS("phase_since") ", phase_ms::text, calls_at_start, "
                                                          "agents_at_start,"
                                                          " coalesce(request_id::text, ''), "
                                                          "options::text, coalesce(requested_by, "
                                                          "'')"
                                                          " FROM drains WHERE drain_id = $1",
        1, values, NULL, NULL, err);
    json_t *phase_ms, *options;
    char scope[16], target[DRAIN_NAME_SIZE], site[DRAIN_NAME_SIZE], phase[32];

    if (res == NULL)
        return -1;
    *found = PQntuples(res) > 0;
    if (!*found) {
        PQclear(res);
        return 0;
    }
    copy_value(scope, sizeof(scope), res, 0, 0);
    copy_value(target, sizeof(target), res, 0, 1);
    copy_value(site, sizeof(site), res, 0, 2);
    copy_value(phase, sizeof(phase), res, 0, 3);
    memset(d, 0, sizeof(*d));
    drain_fsm_init(&d->fsm, id, !strcmp(scope, "edge") ? DRAIN_SCOPE_EDGE : DRAIN_SCOPE_SITE, site,
                   !strcmp(scope, "edge") ? target : NULL, ll_value(res, 0, 4),
                   ll_value(res, 0, 5));
    if (drain_phase_parse(phase, &d->fsm.phase) < 0)
        d->fsm.phase = DRAIN_REFUSING;
    d->fsm.forced = bool_value(res, 0, 6);
    d->fsm.phase_since_ms = ll_value(res, 0, 7);
    phase_ms = json_loads(PQgetvalue(res, 0, 8), 0, NULL);
    for (int p = 0; p < DRAIN_PHASE_COUNT; p++) {
        json_t *v = json_object_get(phase_ms, drain_phase_name((enum drain_phase)p));
        d->fsm.phase_ms[p] = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
    }
    json_decref(phase_ms);
    if (!PQgetisnull(res, 0, 9)) {
        d->fsm.counted = true;
        d->fsm.calls_at_start = (uint32_t)ll_value(res, 0, 9);
        d->fsm.agents_at_start = (uint32_t)ll_value(res, 0, 10);
    }
    copy_value(d->request_id, sizeof(d->request_id), res, 0, 11);
    options = json_loads(PQgetvalue(res, 0, 12), 0, NULL);
    d->reject_code = int_or(options, "reject_code");
    d->sip_timeout_s = int_or(options, "sip_timeout_s");
    d->retry_after_s = int_or(options, "retry_after_s");
    d->deadline_s = int_or(options, "deadline_s");
    snprintf(d->reason, sizeof(d->reason), "%s",
             json_is_string(json_object_get(options, "reason"))
                 ? json_string_value(json_object_get(options, "reason"))
                 : "");
    json_decref(options);
    copy_value(d->requested_by, sizeof(d->requested_by), res, 0, 13);
    PQclear(res);
    return 0;
}

int orch_db_drain_save(struct sd_pg *pg, const struct orch_drain *d, struct sd_err *err)
{
    const struct drain *f = &d->fsm;
    json_t *phase_ms = json_object();
    char since[24], calls[16], agents[16], *ms_text;
    const char *values[8];
    bool over = f->phase == DRAIN_COMPLETED || f->phase == DRAIN_CANCELLED;
    int rc;

    for (int p = 0; p < DRAIN_PHASE_COUNT; p++) {
        if (f->phase_ms[p] > 0)
            json_object_set_new(phase_ms, drain_phase_name((enum drain_phase)p),
                                json_integer(f->phase_ms[p]));
    }
    ms_text = json_dumps(phase_ms, JSON_COMPACT);
    json_decref(phase_ms);
    snprintf(since, sizeof(since), "%lld", (long long)f->phase_since_ms);
    snprintf(calls, sizeof(calls), "%u", f->calls_at_start);
    snprintf(agents, sizeof(agents), "%u", f->agents_at_start);
    values[0] = f->id;
    values[1] = drain_phase_name(f->phase);
    values[2] = f->forced ? "t" : "f";
    values[3] = since;
    values[4] = ms_text != NULL ? ms_text : "{}";
    values[5] = f->counted ? calls : NULL;
    values[6] = f->counted ? agents : NULL;
    values[7] = !over                         ? NULL
                : f->phase == DRAIN_CANCELLED ? "cancelled"
                : f->forced                   ? "forced"
                                              : "completed";
    rc = sd_pg_exec(pg,
                    "UPDATE drains SET phase = $2, forced = $3::boolean,"
                    " phase_since = to_timestamp($4::bigint / 1000.0), phase_ms = $5::jsonb,"
                    " calls_at_start = $6::integer, agents_at_start = $7::integer,"
                    " ended_at = CASE WHEN $8::text IS NULL THEN NULL ELSE now() END,"
                    " result = $8 WHERE drain_id = $1",
                    8, values, err);
    free(ms_text);
    if (rc < 0)
        return -1;
    if (over && f->scope == DRAIN_SCOPE_SITE) {
        values[0] = f->site;
        if (sd_pg_exec(pg, "UPDATE agents SET drain = false WHERE site = $1 AND drain", 1, values,
                       err) < 0)
            return -1;
    }
    /* A cancelled drain lets go of its target; a completed one holds it
     * until drain.resume. */
    if (f->phase == DRAIN_CANCELLED &&
        orch_db_hold_clear(pg, f->scope == DRAIN_SCOPE_SITE ? "site" : "edge",
                           f->scope == DRAIN_SCOPE_SITE ? f->site : f->edge, err) < 0)
        return -1;
    return 0;
}

int orch_db_open_drain_of(struct sd_pg *pg, const char *scope, const char *target, char *id,
                          bool *found, struct sd_err *err)
{
    const char *values[2] = {scope, target};
    PGresult *res = sd_pg_query(pg,
                                "SELECT drain_id FROM drains WHERE scope = $1 AND target = $2"
                                " AND ended_at IS NULL",
                                2, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    *found = PQntuples(res) > 0;
    if (*found)
        copy_value(id, DRAIN_ID_SIZE, res, 0, 0);
    PQclear(res);
    return 0;
}

int orch_db_site(struct sd_pg *pg, const char *site, bool *exists, char *peer, size_t peer_size,
                 bool *peer_draining, struct sd_err *err)
{
    const char *values[1] = {site};
    PGresult *res = sd_pg_query(
        pg,
        "SELECT coalesce(s.peer, ''), EXISTS (SELECT 1 FROM drains d WHERE d.scope = 'site'"
        " AND d.target = s.peer AND d.ended_at IS NULL) FROM sites s WHERE s.site_id = $1",
        1, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    *exists = PQntuples(res) > 0;
    peer[0] = '\0';
    *peer_draining = false;
    if (*exists) {
        copy_value(peer, peer_size, res, 0, 0);
        *peer_draining = bool_value(res, 0, 1);
    }
    PQclear(res);
    return 0;
}

int orch_db_edges_taking_calls(struct sd_pg *pg, const char *site, const char *except, int *n,
                               struct sd_err *err)
{
    char live[16];
    const char *values[3] = {site, except, live};
    PGresult *res;

    snprintf(live, sizeof(live), "%d", DRAIN_EDGE_LIVE_MS);
    res = sd_pg_query(pg,
                      "SELECT count(*) FROM edges e JOIN sites s ON s.site_id = e.site"
                      " WHERE e.site = $1 AND e.edge_id <> $2 AND e.state = 'active'"
                      " AND NOT e.held AND e.drained_by IS NULL AND s.drained_by IS NULL"
                      " AND e.last_heartbeat > now() - make_interval(secs => $3::integer / 1000.0)",
                      3, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    *n = (int)ll_value(res, 0, 0);
    PQclear(res);
    return 0;
}

int orch_db_edge_site(struct sd_pg *pg, const char *edge, char *site, size_t size,
                      struct sd_err *err)
{
    const char *values[1] = {edge};
    PGresult *res =
        sd_pg_query(pg, "SELECT site FROM edges WHERE edge_id = $1", 1, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    snprintf(site, size, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return 0;
}

int orch_db_drain_insert(struct sd_pg *pg, struct orch_drain *d, struct sd_err *err)
{
    json_t *options = json_object();
    char deadline[16], *opt_text;
    const char *values[8];
    PGresult *res;
    bool site = d->fsm.scope == DRAIN_SCOPE_SITE;

    if (d->reject_code >= 0)
        json_object_set_new(options, "reject_code", json_integer(d->reject_code));
    if (d->sip_timeout_s >= 0)
        json_object_set_new(options, "sip_timeout_s", json_integer(d->sip_timeout_s));
    if (d->retry_after_s >= 0)
        json_object_set_new(options, "retry_after_s", json_integer(d->retry_after_s));
    if (d->deadline_s >= 0)
        json_object_set_new(options, "deadline_s", json_integer(d->deadline_s));
    if (d->reason[0] != '\0')
        json_object_set_new(options, "reason", json_string(d->reason));
    opt_text = json_dumps(options, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(options);
    snprintf(deadline, sizeof(deadline), "%d", d->deadline_s);
    values[0] = d->fsm.id;
    values[1] = site ? "site" : "edge";
    values[2] = site ? d->fsm.site : d->fsm.edge;
    values[3] = d->fsm.site;
    values[4] = opt_text != NULL ? opt_text : "{}";
    values[5] = d->requested_by[0] ? d->requested_by : NULL;
    values[6] = d->deadline_s >= 0 ? deadline : NULL;
    values[7] = d->request_id[0] ? d->request_id : NULL;
    res = sd_pg_query(pg,
                      "INSERT INTO drains (drain_id, scope, target, site, phase, options,"
                      " requested_by, deadline_at, request_id, phase_since)"
                      " VALUES ($1, $2, $3, $4, 'refusing', $5::jsonb, $6,"
                      " now() + make_interval(secs => $7::integer), $8::uuid, now())"
                      " RETURNING " MS("started_at") ", " MS("deadline_at"),
                      8, values, NULL, NULL, err);
    free(opt_text);
    if (res == NULL)
        return -1;
    d->fsm.started_ms = d->fsm.phase_since_ms = ll_value(res, 0, 0);
    d->fsm.deadline_ms = ll_value(res, 0, 1);
    PQclear(res);
    /* The hold, from the start: an edge that starts while the drain runs
     * comes up drained too, and stays so after it (until drain.resume). */
    if (sd_pg_exec(
            pg,
            site ? "UPDATE sites SET drained_by = $1, drained_since = now() WHERE site_id = $2"
                 : "UPDATE edges SET drained_by = $1, drained_since = now() WHERE edge_id = $2",
            2, (const char *const[]){d->fsm.id, values[2]}, err) < 0)
        return -1;
    if (!site)
        return 0;
    values[0] = d->fsm.site;
    return sd_pg_exec(pg, "UPDATE agents SET drain = true WHERE site = $1", 1, values, err) < 0 ? -1
                                                                                                : 0;
}

int orch_db_edges(struct sd_pg *pg, const struct drain *d, struct drain_edge_view *out, size_t max,
                  size_t *n, struct sd_err *err)
{
    char started[24];
    const char *values[3] = {d->scope == DRAIN_SCOPE_SITE ? "site" : "edge",
                             d->scope == DRAIN_SCOPE_SITE ? d->site : d->edge, started};
    PGresult *res;

    snprintf(started, sizeof(started), "%lld", (long long)(d->started_ms - DRAIN_EDGE_GONE_MS));
    res = sd_pg_query(
        pg,
        "SELECT edge_id, state, " MS(
            "last_heartbeat") ", active_calls, pending_byes,"
                              " nailed_up_dialogs, calls_cut, byes_retransmitted, held,"
                              " (SELECT count(*) FROM waiting_calls w WHERE w.edge_id ="
                              " edges.edge_id) FROM edges"
                              " WHERE (($1 = 'site' AND site = $2) OR ($1 = 'edge' AND edge_id = "
                              "$2))"
                              " AND last_heartbeat >= to_timestamp($3::bigint / 1000.0)"
                              " ORDER BY edge_id",
        3, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    *n = 0;
    for (int i = 0; i < PQntuples(res) && *n < max; i++) {
        struct drain_edge_view *e = &out[*n];
        char state[32];
        memset(e, 0, sizeof(*e));
        copy_value(e->id, sizeof(e->id), res, i, 0);
        copy_value(state, sizeof(state), res, i, 1);
        if (drain_edge_state_parse(state, &e->state) < 0)
            e->state = DRAIN_EDGE_ACTIVE;
        e->heartbeat_ms = ll_value(res, i, 2);
        e->active_calls = (uint32_t)ll_value(res, i, 3);
        e->pending_byes = (uint32_t)ll_value(res, i, 4);
        e->nailed_up = (uint32_t)ll_value(res, i, 5);
        e->calls_cut = (uint32_t)ll_value(res, i, 6);
        e->byes_retransmitted = (uint32_t)ll_value(res, i, 7);
        e->held = bool_value(res, i, 8);
        e->queued = (uint32_t)ll_value(res, i, 9);
        (*n)++;
    }
    PQclear(res);
    return 0;
}

int orch_db_agents(struct sd_pg *pg, const struct drain *d, struct drain_agent_view *out,
                   size_t max, size_t *n, struct sd_err *err)
{
    const char *values[2] = {d->id, d->site};
    PGresult *res = sd_pg_query(
        pg,
        "SELECT a.agent_id, CASE WHEN a.site <> $2 THEN 'logged_out' ELSE a.state END,"
        " a.call_id IS NOT NULL AND a.site = $2, a.state = 'acw' AND a.acw_until IS NOT NULL,"
        " a.workspace, " MS("da.logout_sent_at") " FROM agents a"
                                                 " LEFT JOIN drain_agents da ON da.drain_id = $1 "
                                                 "AND da.agent_id = a.agent_id"
                                                 " WHERE (a.site = $2 AND a.state <> 'logged_out') "
                                                 "OR da.agent_id IS NOT NULL"
                                                 " ORDER BY a.agent_id",
        2, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    *n = 0;
    for (int i = 0; i < PQntuples(res) && *n < max; i++) {
        struct drain_agent_view *a = &out[*n];
        const char *state = PQgetvalue(res, i, 1);
        memset(a, 0, sizeof(*a));
        copy_value(a->id, sizeof(a->id), res, i, 0);
        a->state = !strcmp(state, "ready")       ? DRAIN_AGENT_READY
                   : !strcmp(state, "not_ready") ? DRAIN_AGENT_NOT_READY
                   : !strcmp(state, "acw")       ? DRAIN_AGENT_ACW
                                                 : DRAIN_AGENT_LOGGED_OUT;
        a->on_call = bool_value(res, i, 2);
        a->acw_timed = bool_value(res, i, 3);
        a->workspace = bool_value(res, i, 4);
        a->logout_sent_ms = ll_value(res, i, 5);
        (*n)++;
    }
    PQclear(res);
    return 0;
}

int orch_db_logout(struct sd_pg *pg, const char *drain_id, const char *agent_id, bool *send,
                   struct sd_err *err)
{
    char retry[16];
    const char *values[3] = {drain_id, agent_id, retry};
    int rows;

    snprintf(retry, sizeof(retry), "%d", DRAIN_LOGOUT_RETRY_MS);
    rows = sd_pg_exec(
        pg,
        "INSERT INTO drain_agents (drain_id, agent_id, logout_sent_at)"
        " VALUES ($1, $2, now()) ON CONFLICT (drain_id, agent_id) DO UPDATE"
        " SET logout_sent_at = now(), logouts_sent = drain_agents.logouts_sent + 1"
        " WHERE drain_agents.logout_sent_at"
        "       < now() - make_interval(secs => ($3::integer / 1000.0)::double precision)",
        3, values, err);
    if (rows < 0)
        return -1;
    *send = rows > 0;
    return 0;
}

int orch_db_hold(struct sd_pg *pg, const char *scope, const char *target, struct orch_hold *h,
                 struct sd_err *err)
{
    const char *values[1] = {target};
    PGresult *res = sd_pg_query(
        pg,
        !strcmp(scope, "site") ? "SELECT h.drained_by, d.ended_at IS NULL, " MS(
                                     "h.drained_since") ", d.site"
                                                        " FROM sites h JOIN drains d ON d.drain_id "
                                                        "= h.drained_by WHERE h.site_id = $1"
                               : "SELECT h.drained_by, d.ended_at IS NULL, " MS(
                                     "h.drained_since") ", d.site"
                                                        " FROM edges h JOIN drains d ON d.drain_id "
                                                        "= h.drained_by WHERE h.edge_id = $1",
        1, values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    memset(h, 0, sizeof(*h));
    h->held = PQntuples(res) > 0;
    if (h->held) {
        copy_value(h->drain_id, sizeof(h->drain_id), res, 0, 0);
        h->drain_open = bool_value(res, 0, 1);
        h->since_ms = ll_value(res, 0, 2);
        copy_value(h->site, sizeof(h->site), res, 0, 3);
    }
    PQclear(res);
    return 0;
}

int orch_db_hold_clear(struct sd_pg *pg, const char *scope, const char *target, struct sd_err *err)
{
    const char *values[1] = {target};

    return sd_pg_exec(pg,
                      !strcmp(scope, "site")
                          ? "UPDATE sites SET drained_by = NULL, drained_since = NULL"
                            " WHERE site_id = $1"
                          : "UPDATE edges SET drained_by = NULL, drained_since = NULL"
                            " WHERE edge_id = $1",
                      1, values, err) < 0
               ? -1
               : 0;
}

int orch_db_site_edges(struct sd_pg *pg, const char *scope, const char *target,
                       struct orch_edge_ref *out, size_t max, size_t *n, struct sd_err *err)
{
    char gone[16];
    const char *values[3] = {scope, target, gone};
    PGresult *res;

    snprintf(gone, sizeof(gone), "%d", DRAIN_EDGE_GONE_MS);
    res = sd_pg_query(pg,
                      "SELECT edge_id, drained_by IS NOT NULL FROM edges"
                      " WHERE (($1 = 'site' AND site = $2) OR ($1 = 'edge' AND edge_id = $2))"
                      " AND state <> 'stopped' AND last_heartbeat > now()"
                      "     - make_interval(secs => $3::integer / 1000.0)"
                      " ORDER BY edge_id",
                      3, values, NULL, NULL, err);
    if (res == NULL)
        return -1;
    *n = 0;
    for (int i = 0; i < PQntuples(res) && *n < max; i++) {
        copy_value(out[*n].id, sizeof(out[*n].id), res, i, 0);
        out[*n].own_hold = bool_value(res, i, 1);
        (*n)++;
    }
    PQclear(res);
    return 0;
}
