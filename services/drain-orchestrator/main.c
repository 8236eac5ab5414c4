/* drain-orchestrator - the drain of a site or an edge (DESIGN.md §4, issue #5).
 *
 *   sipdrain.drain.commands --> inbox --> drains row (+ drain.started or
 *                                          drain.rejected, cancel)
 *   a drain holds its target (sites / edges.drained_by) from its start until
 *   drain.resume (drain.resumed: edge.resume to the running edges); edges
 *   started meanwhile come up drained (issue #13)
 *   every TICK_MS, for each open drain, one transaction:
 *     edges + agents of the scope --> drain_fsm --> outbox:
 *       edge.drain / edge.shutdown / edge.resume   (sipdrain.edge.control)
 *       agent.logout graceful_shutdown_logout      (sipdrain.agent.commands)
 *       drain.progress / drain.completed / drain.cancelled (sipdrain.drain.events)
 *     and the drains row (phase, time per phase), drain_agents (logouts sent)
 *
 * One instance is active: the one holding a PostgreSQL advisory lock on a
 * session of its own. The others poll for the lock every LOCK_POLL_MS and
 * take over when the active one dies (its session ends, the lock is free):
 * the drain resumes from its row. Only the active instance consumes
 * commands. An active instance that loses its lock session (PostgreSQL
 * restarted or unreachable) stops with exit 1 so its supervisor starts it
 * again as a standby: two active instances would each send commands.
 *
 * Wiring only: drain_fsm decides, orch_db does the SQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drain_fsm.h"
#include "orch_db.h"
#include "sipdrain/cfg.h"
#include "sipdrain/event.h"
#include "sipdrain/http.h"
#include "sipdrain/inbox.h"
#include "sipdrain/kafka.h"
#include "sipdrain/log.h"
#include "sipdrain/loop.h"
#include "sipdrain/outbox.h"
#include "sipdrain/pg.h"
#include "sipdrain/service.h"
#include "sipdrain/topic.h"

#define SERVICE       "drain-orchestrator"
#define CONSUMER_NAME "drain-orchestrator" /* inbox.consumer */
#define LOCK_POLL_MS  1000
#define DRAINS_MAX    64
#define AGENTS_MAX    4096
#define SERVICE_ID    3019 /* drain.start.service_id: the T-Library private request */
#define STOP_BUDGET_S 5    /* closing Kafka and PostgreSQL after "stopped" */

struct orch_cfg {
    char *pg_dsn;
    char *brokers;
    char *instance;
    char *topic_prefix;
    char *http_addr;
    long tick_ms;
    int log_level;
};

#define F(field) offsetof(struct orch_cfg, field)
static const struct sd_cfg_item cfg_items[] = {
    {"SIPDRAIN_PG_DSN", SD_CFG_STRING, F(pg_dsn), 0, 0, NULL, NULL, true,
     "PostgreSQL connection string (libpq)"},
    {"SIPDRAIN_KAFKA_BROKERS", SD_CFG_STRING, F(brokers), 0, 0, NULL, NULL, true,
     "Kafka bootstrap servers, e.g. 127.0.0.1:9092"},
    {"SIPDRAIN_INSTANCE_ID", SD_CFG_STRING, F(instance), 0, 0, NULL, NULL, false,
     "this instance's name, unique and stable (owner of its outbox rows); default: the host name"},
    {"SIPDRAIN_TOPIC_PREFIX", SD_CFG_STRING, F(topic_prefix), 0, 0, NULL, NULL, false,
     "prefix of every topic and consumer group name; default: none"},
    {"SIPDRAIN_DRAIN_TICK_MS", SD_CFG_INT, F(tick_ms), 50, 5000, NULL, "250", false,
     "how often each open drain looks at its edges and agents (ms)"},
    {"SIPDRAIN_HTTP_ADDR", SD_CFG_STRING, F(http_addr), 0, 0, NULL, NULL, false,
     "host:port of /healthz, /readyz (200 only for the active instance) and /metrics; unset: none"},
    {"SIPDRAIN_LOG_LEVEL", SD_CFG_ENUM, F(log_level), 0, 0, "debug|info|warn|error", "info", false,
     "least severe log level written"},
};
#undef F
#define CFG_COUNT (sizeof(cfg_items) / sizeof(cfg_items[0]))

struct svc {
    struct orch_cfg cfg;
    char source[SD_EVENT_SOURCE_MAX];
    struct sd_loop *loop;
    struct sd_pg *pg, *tick_pg, *lock_pg, *relay_pg;
    struct sd_kafka_consumer *kc;
    struct sd_outbox_relay *relay;
    struct sd_inbox_consumer *ic;
    bool leader;
    unsigned lock_generation;
    bool tick_failing;
    int exit_code;
    struct sd_http *http;
    /* What a drain remembers between ticks and is not stored: what was
     * sent to which edge when, the last progress report. After a restart
     * it starts empty: the edges get their command once more (harmless). */
    struct drain memo[DRAINS_MAX];
    /* scratch for one drain's view (one drain at a time, one thread) */
    struct drain_edge_view edges[DRAIN_EDGES_MAX];
    struct drain_agent_view agents[AGENTS_MAX];
    struct drain_actions out;
};

/* --- events ----------------------------------------------------------------- */

static int add_event(struct svc *s, struct sd_pg *pg, const char *topic, const char *key,
                     const char *type, json_t *data, struct sd_err *err)
{
    struct sd_event ev;
    int rc;

    if (sd_event_init(&ev, s->source, type, data, err) < 0)
        return -1;
    rc = sd_outbox_add(pg, sd_topic(topic), key, &ev, err);
    sd_event_clear(&ev);
    return rc;
}

static const char *scope_name(const struct drain *d)
{
    return d->scope == DRAIN_SCOPE_SITE ? "site" : "edge";
}

/* The fields every drain.* event of d starts with. */
static json_t *drain_base(const struct drain *d)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s}", "drain_id", d->id, "scope", scope_name(d), "site", d->site);

    if (d->scope == DRAIN_SCOPE_EDGE)
        json_object_set_new(o, "edge", json_string(d->edge));
    return o;
}

static int reject(struct svc *s, struct sd_pg *pg, const struct sd_event *ev, const char *reason,
                  const char *detail, const char *drain_id, struct sd_err *err)
{
    json_t *d = json_pack("{s:s, s:s, s:s, s:s}", "request_id", ev->id, "command", ev->type,
                          "reason", reason, "detail", detail);
    json_t *site = json_object_get(ev->data, "site"), *edge = json_object_get(ev->data, "edge");

    if (json_is_string(site))
        json_object_set(d, "site", site);
    if (json_is_string(edge))
        json_object_set(d, "edge", edge);
    if (drain_id != NULL)
        json_object_set_new(d, "drain_id", json_string(drain_id));
    sd_log_info("command rejected", "type=%s event=%s reason=%s detail=\"%s\"", ev->type, ev->id,
                reason, detail);
    return add_event(s, pg, SD_TOPIC_DRAIN_EVENTS,
                     json_is_string(site)   ? json_string_value(site)
                     : json_is_string(edge) ? json_string_value(edge)
                                            : "-",
                     "drain.rejected", d, err);
}

/* The edge.control command to edge i of the view. */
static int edge_command(struct svc *s, struct sd_pg *pg, const struct orch_drain *od,
                        const struct drain_edge_view *e, const char *type, struct sd_err *err)
{
    json_t *d =
        json_pack("{s:s, s:s, s:s}", "edge", e->id, "site", od->fsm.site, "drain_id", od->fsm.id);

    if (!strcmp(type, "edge.drain")) {
        json_object_set_new(d, "scope", json_string(scope_name(&od->fsm)));
        if (od->reject_code >= 0)
            json_object_set_new(d, "reject_code", json_integer(od->reject_code));
        if (od->sip_timeout_s >= 0)
            json_object_set_new(d, "sip_timeout_s", json_integer(od->sip_timeout_s));
        if (od->retry_after_s >= 0)
            json_object_set_new(d, "retry_after_s", json_integer(od->retry_after_s));
        if (od->fsm.deadline_ms > 0) {
            char at[SD_EVENT_TIME_LEN + 1];
            sd_time_format_ms(od->fsm.deadline_ms, at);
            json_object_set_new(d, "deadline_at", json_string(at));
        }
    }
    sd_log_info("edge command", "drain=%s edge=%s type=%s", od->fsm.id, e->id, type);
    return add_event(s, pg, SD_TOPIC_EDGE_CONTROL, e->id, type, d, err);
}

static json_t *progress_data(const struct orch_drain *od, const struct drain_view *v,
                             const struct drain_counts *c)
{
    const struct drain *d = &od->fsm;
    json_t *o = drain_base(d), *edges = json_array();

    json_object_update_new(
        o,
        json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "phase",
                  drain_phase_name(d->phase), "elapsed_ms", (json_int_t)(v->now_ms - d->started_ms),
                  "calls_left", c->calls_left, "calls_at_start", d->calls_at_start,
                  "agents_logged_in", c->agents_logged_in, "agents_at_start", d->agents_at_start,
                  "agents_in_acw", c->agents_in_acw, "agents_on_call", c->agents_on_call,
                  "byes_pending", c->byes_pending, "nailed_up_left", c->nailed_up_left,
                  "edges_not_stopped", c->edges_not_stopped, "edges_total", c->edges_total));
    json_object_set_new(o, "calls_queued", json_integer(c->calls_queued));
    if (d->deadline_ms > 0)
        json_object_set_new(
            o, "deadline_in_ms",
            json_integer(d->deadline_ms > v->now_ms ? d->deadline_ms - v->now_ms : 0));
    for (size_t i = 0; i < v->n_edges; i++) {
        const struct drain_edge_view *e = &v->edges[i];
        json_array_append_new(edges, json_pack("{s:s, s:s, s:i, s:i}", "edge", e->id, "state",
                                               drain_edge_state_name(e->state), "active_calls",
                                               e->active_calls, "pending_byes", e->pending_byes));
    }
    json_object_set_new(o, "edges", edges);
    return o;
}

static json_t *completed_data(const struct orch_drain *od, const struct drain_view *v,
                              const struct drain_counts *c)
{
    const struct drain *d = &od->fsm;
    json_t *o = drain_base(d), *stopped = json_array(), *phase_ms = json_object();

    for (size_t i = 0; i < v->n_edges; i++) {
        if (drain_edge_stopped(&v->edges[i]))
            json_array_append_new(stopped, json_string(v->edges[i].id));
    }
    for (int p = 0; p < DRAIN_PHASE_COUNT; p++) {
        if (d->phase_ms[p] > 0)
            json_object_set_new(phase_ms, drain_phase_name((enum drain_phase)p),
                                json_integer(d->phase_ms[p]));
    }
    json_object_update_new(
        o, json_pack("{s:b, s:i, s:I, s:i, s:i, s:i, s:o, s:o}", "forced", d->forced, "calls_cut",
                     c->calls_cut, "elapsed_ms", (json_int_t)(v->now_ms - d->started_ms),
                     "agents_logged_out", c->agents_logged_out, "agents_migrated",
                     c->agents_migrated, "byes_retransmitted", c->byes_retransmitted,
                     "edges_stopped", stopped, "phase_ms", phase_ms));
    return o;
}

/* --- one drain ---------------------------------------------------------------- */

static int load_view(struct svc *s, struct sd_pg *pg, const struct orch_drain *od,
                     struct drain_view *v, struct sd_err *err)
{
    size_t ne = 0, na = 0;

    if (orch_db_edges(pg, &od->fsm, s->edges, DRAIN_EDGES_MAX, &ne, err) < 0)
        return -1;
    if (od->fsm.scope == DRAIN_SCOPE_SITE &&
        orch_db_agents(pg, &od->fsm, s->agents, AGENTS_MAX, &na, err) < 0)
        return -1;
    if (na == AGENTS_MAX || ne == DRAIN_EDGES_MAX)
        sd_log_warn("drain view full: the agents or edges beyond it are not seen this tick",
                    "drain=%s agents=%zu edges=%zu", od->fsm.id, na, ne);
    *v = (struct drain_view){sd_wall_ms(), s->edges, ne, s->agents, na};
    return 0;
}

/* Carries out the core's actions in the open transaction. */
static int carry_out(struct svc *s, struct sd_pg *pg, struct orch_drain *od,
                     const struct drain_view *v, const char *cancel_request, struct sd_err *err)
{
    struct drain_counts c;
    bool save = false;

    drain_fsm_counts(&od->fsm, v, &c);
    for (size_t i = 0; i < s->out.n; i++) {
        const struct drain_action *a = &s->out.a[i];
        int rc = 0;
        switch (a->kind) {
        case DRAIN_DO_EDGE_DRAIN:
            rc = edge_command(s, pg, od, &v->edges[a->arg], "edge.drain", err);
            break;
        case DRAIN_DO_EDGE_SHUTDOWN:
            rc = edge_command(s, pg, od, &v->edges[a->arg], "edge.shutdown", err);
            break;
        case DRAIN_DO_EDGE_RESUME:
            rc = edge_command(s, pg, od, &v->edges[a->arg], "edge.resume", err);
            break;
        case DRAIN_DO_LOGOUT: {
            const char *agent = v->agents[a->arg].id;
            bool send;
            rc = orch_db_logout(pg, od->fsm.id, agent, &send, err);
            if (rc == 0 && send) {
                sd_log_info("agent logout", "drain=%s agent=%s", od->fsm.id, agent);
                rc = add_event(s, pg, SD_TOPIC_AGENT_COMMANDS, agent, "agent.logout",
                               json_pack("{s:s, s:s, s:s}", "agent_id", agent, "reason",
                                         "graceful_shutdown_logout", "drain_id", od->fsm.id),
                               err);
            }
            break;
        }
        case DRAIN_DO_SAVE:
            save = true;
            break;
        case DRAIN_DO_PROGRESS:
            rc = add_event(s, pg, SD_TOPIC_DRAIN_EVENTS, od->fsm.site, "drain.progress",
                           progress_data(od, v, &c), err);
            break;
        case DRAIN_DO_COMPLETED:
            save = true;
            sd_log_info("drain completed", "drain=%s forced=%d calls_cut=%u agents_logged_out=%u",
                        od->fsm.id, od->fsm.forced, c.calls_cut, c.agents_logged_out);
            rc = add_event(s, pg, SD_TOPIC_DRAIN_EVENTS, od->fsm.site, "drain.completed",
                           completed_data(od, v, &c), err);
            break;
        case DRAIN_DO_CANCELLED: {
            json_t *d = drain_base(&od->fsm);
            save = true;
            json_object_update_new(d, json_pack("{s:s, s:I, s:i}", "phase",
                                                drain_phase_name(od->cancelled_in), "elapsed_ms",
                                                (json_int_t)(v->now_ms - od->fsm.started_ms),
                                                "agents_logged_out", c.agents_logged_out));
            if (cancel_request != NULL)
                json_object_set_new(d, "request_id", json_string(cancel_request));
            sd_log_info("drain cancelled", "drain=%s", od->fsm.id);
            rc = add_event(s, pg, SD_TOPIC_DRAIN_EVENTS, od->fsm.site, "drain.cancelled", d, err);
            break;
        }
        }
        if (rc < 0)
            return -1;
    }
    if (od->fsm.phase != DRAIN_COMPLETED && od->fsm.phase != DRAIN_CANCELLED && od->fsm.counted)
        save = true; /* the totals, raised as more calls or agents are seen; cheap */
    return save ? orch_db_drain_save(pg, od, err) : 0;
}

static struct drain *memo_of(struct svc *s, const char *id)
{
    struct drain *free_slot = NULL;

    for (int i = 0; i < DRAINS_MAX; i++) {
        if (!strcmp(s->memo[i].id, id))
            return &s->memo[i];
        if (free_slot == NULL && s->memo[i].id[0] == '\0')
            free_slot = &s->memo[i];
    }
    if (free_slot != NULL)
        snprintf(free_slot->id, sizeof(free_slot->id), "%s", id);
    return free_slot;
}

/* Loaded from the row, the drain gets back what only memory holds. */
static void memo_restore(struct svc *s, struct drain *d)
{
    struct drain *m = memo_of(s, d->id);

    if (m == NULL)
        return;
    memcpy(d->sent, m->sent, sizeof(d->sent));
    d->n_sent = m->n_sent;
    d->progress_ms = m->progress_ms;
    d->progress_hash = m->progress_hash;
}

static void memo_keep(struct svc *s, const struct drain *d)
{
    struct drain *m = memo_of(s, d->id);

    if (m == NULL)
        return;
    if (d->phase == DRAIN_COMPLETED || d->phase == DRAIN_CANCELLED) {
        memset(m, 0, sizeof(*m)); /* the slot is free again */
        return;
    }
    *m = *d;
}

/* One look at one drain, in one transaction. */
static int tick_drain(struct svc *s, const char *id, struct sd_err *err)
{
    struct orch_drain od;
    struct drain_view v;
    bool found;
    enum drain_phase before;

    if (sd_pg_begin(s->tick_pg, err) < 0 ||
        orch_db_drain_load(s->tick_pg, id, &od, &found, err) < 0)
        goto fail;
    if (!found) {
        sd_pg_rollback(s->tick_pg);
        return 0;
    }
    before = od.fsm.phase;
    memo_restore(s, &od.fsm);
    if (load_view(s, s->tick_pg, &od, &v, err) < 0)
        goto fail;
    drain_fsm_step(&od.fsm, &v, &s->out);
    if (carry_out(s, s->tick_pg, &od, &v, NULL, err) < 0 || sd_pg_commit(s->tick_pg, err) < 0)
        goto fail;
    memo_keep(s, &od.fsm);
    if (od.fsm.phase != before)
        sd_log_info("drain phase", "drain=%s from=%s to=%s", id, drain_phase_name(before),
                    drain_phase_name(od.fsm.phase));
    return 0;
fail:
    sd_pg_rollback(s->tick_pg);
    return -1;
}

static int64_t on_tick(struct sd_loop *loop, void *arg)
{
    struct svc *s = arg;
    char ids[DRAINS_MAX][DRAIN_ID_SIZE];
    struct sd_err err = {0};
    int n;

    (void)loop;
    n = orch_db_open_drains(s->tick_pg, ids, DRAINS_MAX, &err);
    for (int i = 0; n > 0 && i < n; i++) {
        if (tick_drain(s, ids[i], &err) < 0) {
            n = -1;
            break;
        }
    }
    if (n < 0) {
        if (!s->tick_failing)
            sd_log_warn("drain tick failed, will retry", "reason=\"%s\"", err.text);
        s->tick_failing = true;
        return 1000;
    }
    if (s->tick_failing)
        sd_log_info("drain tick: database back", "%s", "");
    s->tick_failing = false;
    return s->cfg.tick_ms;
}

/* A tick now rather than at the next TICK_MS: a new drain's edge.drain
 * goes out as soon as its row is committed (the command's transaction ends
 * before the loop's next turn). */
static int64_t on_kick(struct sd_loop *loop, void *arg)
{
    on_tick(loop, arg);
    return -1;
}

/* --- commands ----------------------------------------------------------------- */

/* An option: absent -> -1; present and in [lo, hi] -> its value; else -2. */
static int option(json_t *data, const char *key, int lo, int hi)
{
    json_t *v = json_object_get(data, key);

    if (v == NULL)
        return -1;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return -2;
    return (int)json_integer_value(v);
}

static const char *text_or(json_t *data, const char *key, const char *def)
{
    json_t *v = json_object_get(data, key);
    return json_is_string(v) ? json_string_value(v) : def;
}

static int announce(struct svc *s, struct sd_pg *pg, const struct orch_drain *od,
                    const char *request_id, struct sd_err *err)
{
    json_t *d = drain_base(&od->fsm), *edges = json_array();
    char at[SD_EVENT_TIME_LEN + 1];
    size_t n = 0;

    if (orch_db_edges(pg, &od->fsm, s->edges, DRAIN_EDGES_MAX, &n, err) < 0) {
        json_decref(d);
        json_decref(edges);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        json_array_append_new(edges, json_string(s->edges[i].id));
    sd_time_format_ms(od->fsm.started_ms, at);
    json_object_set_new(d, "started_at", json_string(at));
    json_object_set_new(d, "edges", edges);
    json_object_set_new(d, "request_id", json_string(request_id));
    if (od->reject_code >= 0)
        json_object_set_new(d, "reject_code", json_integer(od->reject_code));
    if (od->sip_timeout_s >= 0)
        json_object_set_new(d, "sip_timeout_s", json_integer(od->sip_timeout_s));
    if (od->retry_after_s >= 0)
        json_object_set_new(d, "retry_after_s", json_integer(od->retry_after_s));
    if (od->deadline_s >= 0) {
        json_object_set_new(d, "deadline_s", json_integer(od->deadline_s));
        sd_time_format_ms(od->fsm.deadline_ms, at);
        json_object_set_new(d, "deadline_at", json_string(at));
    }
    if (od->requested_by[0] != '\0')
        json_object_set_new(d, "requested_by", json_string(od->requested_by));
    if (od->reason[0] != '\0')
        json_object_set_new(d, "reason", json_string(od->reason));
    return add_event(s, pg, SD_TOPIC_DRAIN_EVENTS, od->fsm.site, "drain.started", d, err);
}

/* A site named by a command: it must be in sites (else drain.rejected
 * unknown_site and *ok false); its peer ("" none) and whether a drain of
 * the peer runs. -1 on a database error. */
static int site_target(struct svc *s, struct sd_pg *pg, const struct sd_event *ev, const char *site,
                       char *peer, bool *peer_draining, bool *ok, struct sd_err *err)
{
    char detail[256];
    bool exists;

    *ok = false;
    if (orch_db_site(pg, site, &exists, peer, DRAIN_NAME_SIZE, peer_draining, err) < 0)
        return -1;
    if (!exists) {
        snprintf(detail, sizeof(detail), "site %s is not in the sites table", site);
        return reject(s, pg, ev, "unknown_site", detail, NULL, err);
    }
    *ok = true;
    return 0;
}

/* An edge named by a command: it must have reported (else unknown_edge),
 * and its site must not be held - the edge follows its site (else
 * site_drained). Its site in edge_site; *ok false when rejected. */
static int edge_target(struct svc *s, struct sd_pg *pg, const struct sd_event *ev, const char *edge,
                       char *edge_site, bool *ok, struct sd_err *err)
{
    struct orch_hold hold;
    char detail[256];

    *ok = false;
    if (orch_db_edge_site(pg, edge, edge_site, DRAIN_NAME_SIZE, err) < 0)
        return -1;
    if (edge_site[0] == '\0') {
        snprintf(detail, sizeof(detail), "edge %s has never reported (not in edges)", edge);
        return reject(s, pg, ev, "unknown_edge", detail, NULL, err);
    }
    if (orch_db_hold(pg, "site", edge_site, &hold, err) < 0)
        return -1;
    if (hold.held) {
        snprintf(detail, sizeof(detail),
                 "site %s of edge %s is %s (drain %s): the edge follows its site", edge_site, edge,
                 hold.drain_open ? "draining" : "drained", hold.drain_id);
        return reject(s, pg, ev, "site_drained", detail, hold.drain_id, err);
    }
    *ok = true;
    return 0;
}

/* The peer rule: no drain may leave the pair of sites without an edge
 * taking calls. A site drain needs an edge of the peer site taking calls;
 * an edge drain needs another edge of its site taking calls, or one of the
 * peer site (scaling in one edge of several stays allowed). A site without
 * a peer has no rule. *ok false when rejected: peer_site_draining /
 * peer_site_drained when the peer's edges are out because of a drain of
 * the peer, peer_site_no_edge when the peer's edges are simply not there
 * (stopped, dead, not started). */
static int peer_rule(struct svc *s, struct sd_pg *pg, const struct sd_event *ev, const char *site,
                     const char *edge, bool *ok, struct sd_err *err)
{
    struct orch_hold hold;
    char peer[DRAIN_NAME_SIZE], id[DRAIN_ID_SIZE], detail[512], what[192];
    bool exists, peer_draining, found;
    int others = 0, at_peer;

    *ok = false;
    if (orch_db_site(pg, site, &exists, peer, sizeof(peer), &peer_draining, err) < 0)
        return -1;
    if (edge != NULL && orch_db_edges_taking_calls(pg, site, edge, &others, err) < 0)
        return -1;
    if (peer[0] == '\0' || others > 0) {
        *ok = true;
        return 0;
    }
    if (orch_db_edges_taking_calls(pg, peer, "", &at_peer, err) < 0)
        return -1;
    if (at_peer > 0) {
        *ok = true;
        return 0;
    }
    if (edge != NULL)
        snprintf(what, sizeof(what), "edge %s is the last edge of site %s taking calls", edge,
                 site);
    else
        snprintf(what, sizeof(what), "site %s is to drain", site);
    if (peer_draining) {
        snprintf(detail, sizeof(detail),
                 "%s and the peer site %s is draining: no edge of either would take calls", what,
                 peer);
        if (orch_db_open_drain_of(pg, "site", peer, id, &found, err) < 0)
            return -1;
        return reject(s, pg, ev, "peer_site_draining", detail, found ? id : NULL, err);
    }
    if (orch_db_hold(pg, "site", peer, &hold, err) < 0)
        return -1;
    if (hold.held) {
        snprintf(detail, sizeof(detail),
                 "%s and the peer site %s stays drained (drainctl resume --site %s first): no edge"
                 " of either would take calls",
                 what, peer, peer);
        return reject(s, pg, ev, "peer_site_drained", detail, hold.drain_id, err);
    }
    snprintf(detail, sizeof(detail),
             "%s and no edge of the peer site %s takes calls (none active with a heartbeat in the"
             " last %d s): no edge of either would take calls",
             what, peer, DRAIN_EDGE_LIVE_MS / 1000);
    return reject(s, pg, ev, "peer_site_no_edge", detail, NULL, err);
}

static int on_start(struct svc *s, struct sd_pg *pg, const struct sd_event *ev, struct sd_err *err)
{
    json_t *data = ev->data;
    const char *site = text_or(data, "site", NULL), *edge = text_or(data, "edge", NULL);
    struct orch_drain od, open;
    struct orch_hold hold;
    char id[DRAIN_ID_SIZE], peer[DRAIN_NAME_SIZE], edge_site[DRAIN_NAME_SIZE], detail[256];
    bool exists, peer_draining, found, ok = false;

    memset(&od, 0, sizeof(od));
    od.reject_code = option(data, "reject_code", 300, 699);
    od.sip_timeout_s = option(data, "sip_timeout_s", 0, 3600);
    od.retry_after_s = option(data, "retry_after_s", 0, 86400);
    od.deadline_s = option(data, "deadline_s", 1, 604800);
    if ((site == NULL) == (edge == NULL))
        return reject(s, pg, ev, "bad_options", "name exactly one of site and edge", NULL, err);
    if (od.reject_code == -2 || od.sip_timeout_s == -2 || od.retry_after_s == -2 ||
        od.deadline_s == -2)
        return reject(s, pg, ev, "bad_options",
                      "reject_code 300-699, sip_timeout_s 0-3600, retry_after_s 0-86400,"
                      " deadline_s 1-604800",
                      NULL, err);
    if (json_object_get(data, "service_id") != NULL &&
        option(data, "service_id", SERVICE_ID, SERVICE_ID) != SERVICE_ID)
        return reject(s, pg, ev, "bad_options", "service_id must be 3019 when given", NULL, err);
    snprintf(od.requested_by, sizeof(od.requested_by), "%s", text_or(data, "requested_by", ""));
    snprintf(od.reason, sizeof(od.reason), "%s", text_or(data, "reason", ""));
    if (site != NULL) {
        if (site_target(s, pg, ev, site, peer, &peer_draining, &ok, err) < 0)
            return -1;
        if (!ok)
            return 0; /* rejected */
        if (peer_draining) {
            snprintf(detail, sizeof(detail),
                     "the peer site %s is draining: its agents and calls have nowhere to go", peer);
            if (orch_db_open_drain_of(pg, "site", peer, id, &found, err) < 0)
                return -1;
            return reject(s, pg, ev, "peer_site_draining", detail, found ? id : NULL, err);
        }
        if (peer[0] != '\0' && orch_db_hold(pg, "site", peer, &hold, err) < 0)
            return -1;
        if (peer[0] != '\0' && hold.held) {
            snprintf(detail, sizeof(detail),
                     "the peer site %s stays drained (drainctl resume --site %s first): draining"
                     " both would refuse every call",
                     peer, peer);
            return reject(s, pg, ev, "peer_site_drained", detail, hold.drain_id, err);
        }
    } else {
        if (edge_target(s, pg, ev, edge, edge_site, &ok, err) < 0)
            return -1;
        if (!ok)
            return 0; /* rejected */
        site = edge_site;
    }
    if (orch_db_open_drain_of(pg, edge ? "edge" : "site", edge ? edge : site, id, &found, err) < 0)
        return -1;
    if (found) {
        if (orch_db_drain_load(pg, id, &open, &exists, err) < 0)
            return -1;
        if (exists && open.reject_code == od.reject_code &&
            open.sip_timeout_s == od.sip_timeout_s && open.retry_after_s == od.retry_after_s &&
            open.deadline_s == od.deadline_s) {
            sd_log_info("repeated drain.start: the drain goes on", "drain=%s event=%s", id, ev->id);
            return announce(s, pg, &open, ev->id, err);
        }
        snprintf(detail, sizeof(detail), "drain %s of %s is in progress with other options", id,
                 edge ? edge : site);
        return reject(s, pg, ev, "drain_in_progress", detail, id, err);
    }
    if (orch_db_hold(pg, edge ? "edge" : "site", edge ? edge : site, &hold, err) < 0)
        return -1;
    if (hold.held) {
        snprintf(detail, sizeof(detail),
                 "%s stays drained from drain %s (drainctl resume --%s %s, then drain again)",
                 edge ? edge : site, hold.drain_id, edge ? "edge" : "site", edge ? edge : site);
        return reject(s, pg, ev, "already_drained", detail, hold.drain_id, err);
    }
    if (peer_rule(s, pg, ev, site, edge, &ok, err) < 0)
        return -1;
    if (!ok)
        return 0; /* rejected */
    sd_uuid_v4(id);
    drain_fsm_init(&od.fsm, id, edge ? DRAIN_SCOPE_EDGE : DRAIN_SCOPE_SITE, site, edge, 0, 0);
    snprintf(od.request_id, sizeof(od.request_id), "%s", ev->id);
    if (orch_db_drain_insert(pg, &od, err) < 0)
        return -1;
    sd_log_info("drain started", "drain=%s scope=%s target=%s deadline_s=%d requested_by=\"%s\"",
                id, edge ? "edge" : "site", edge ? edge : site, od.deadline_s, od.requested_by);
    if (sd_loop_add_timer(s->loop, 0, on_kick, s) < 0)
        sd_log_warn("drain started: the first look waits for the next tick", "drain=%s", id);
    return announce(s, pg, &od, ev->id, err);
}

static int on_cancel(struct svc *s, struct sd_pg *pg, const struct sd_event *ev, struct sd_err *err)
{
    json_t *data = ev->data;
    const char *site = text_or(data, "site", NULL), *edge = text_or(data, "edge", NULL);
    const char *want = text_or(data, "drain_id", NULL);
    struct orch_drain od;
    struct drain_view v;
    char id[DRAIN_ID_SIZE], detail[256];
    bool found;

    if ((site == NULL) == (edge == NULL))
        return reject(s, pg, ev, "bad_options", "name exactly one of site and edge", NULL, err);
    if (orch_db_open_drain_of(pg, edge ? "edge" : "site", edge ? edge : site, id, &found, err) < 0)
        return -1;
    if (!found) {
        snprintf(detail, sizeof(detail), "no drain of %s is in progress", edge ? edge : site);
        return reject(s, pg, ev, "no_drain_in_progress", detail, NULL, err);
    }
    if (want != NULL && strcmp(want, id) != 0) {
        snprintf(detail, sizeof(detail), "the drain in progress is %s, not %s", id, want);
        return reject(s, pg, ev, "drain_id_mismatch", detail, id, err);
    }
    if (orch_db_drain_load(pg, id, &od, &found, err) < 0 || load_view(s, pg, &od, &v, err) < 0)
        return -1;
    od.cancelled_in = od.fsm.phase;
    if (!drain_fsm_cancel(&od.fsm, &v, &s->out))
        return 0;
    if (carry_out(s, pg, &od, &v, ev->id, err) < 0)
        return -1;
    memo_keep(s, &od.fsm);
    return 0;
}

/* drain.resume: lifts the hold a finished drain left on a site or an edge.
 * The target's running edges get edge.resume of the holding drain (an edge
 * of the site held by a drain of its own ignores it and stays drained);
 * edges that start later find no hold and come up active. Refused while
 * the drain still runs (drain.cancel is for that), for an edge whose site
 * is held (the edge follows its site), and when nothing holds the target. */
static int on_resume(struct svc *s, struct sd_pg *pg, const struct sd_event *ev, struct sd_err *err)
{
    json_t *data = ev->data, *d, *resumed, *still;
    const char *site = text_or(data, "site", NULL), *edge = text_or(data, "edge", NULL);
    const char *scope = edge ? "edge" : "site", *target = edge ? edge : site;
    struct orch_hold hold;
    struct orch_edge_ref refs[DRAIN_EDGES_MAX];
    char peer[DRAIN_NAME_SIZE], edge_site[DRAIN_NAME_SIZE], detail[256], at[SD_EVENT_TIME_LEN + 1];
    bool peer_draining, ok = false;
    size_t n = 0;

    if ((site == NULL) == (edge == NULL))
        return reject(s, pg, ev, "bad_options", "name exactly one of site and edge", NULL, err);
    if (site != NULL ? site_target(s, pg, ev, site, peer, &peer_draining, &ok, err) < 0
                     : edge_target(s, pg, ev, edge, edge_site, &ok, err) < 0)
        return -1;
    if (!ok)
        return 0; /* rejected */
    if (orch_db_hold(pg, scope, target, &hold, err) < 0)
        return -1;
    if (!hold.held) {
        snprintf(detail, sizeof(detail), "no drain holds %s: it takes calls", target);
        return reject(s, pg, ev, "not_drained", detail, NULL, err);
    }
    if (hold.drain_open) {
        snprintf(detail, sizeof(detail),
                 "drain %s of %s is still running: drainctl drain cancel --%s %s ends it",
                 hold.drain_id, target, scope, target);
        return reject(s, pg, ev, "drain_in_progress", detail, hold.drain_id, err);
    }
    if (orch_db_hold_clear(pg, scope, target, err) < 0 ||
        orch_db_site_edges(pg, scope, target, refs, DRAIN_EDGES_MAX, &n, err) < 0)
        return -1;
    resumed = json_array();
    still = json_array();
    for (size_t i = 0; i < n; i++) {
        if (edge == NULL && refs[i].own_hold) {
            json_array_append_new(still, json_string(refs[i].id));
            continue;
        }
        json_array_append_new(resumed, json_string(refs[i].id));
        sd_log_info("edge command", "drain=%s edge=%s type=edge.resume", hold.drain_id, refs[i].id);
        if (add_event(s, pg, SD_TOPIC_EDGE_CONTROL, refs[i].id, "edge.resume",
                      json_pack("{s:s, s:s, s:s}", "edge", refs[i].id, "site", hold.site,
                                "drain_id", hold.drain_id),
                      err) < 0) {
            json_decref(resumed);
            json_decref(still);
            return -1;
        }
    }
    sd_time_format_ms(hold.since_ms, at);
    d = json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:s}", "drain_id", hold.drain_id, "scope", scope,
                  "site", hold.site, "edges", resumed, "edges_still_held", still, "held_since", at,
                  "request_id", ev->id);
    if (edge != NULL)
        json_object_set_new(d, "edge", json_string(edge));
    if (json_is_string(json_object_get(data, "requested_by")))
        json_object_set(d, "requested_by", json_object_get(data, "requested_by"));
    if (json_is_string(json_object_get(data, "reason")))
        json_object_set(d, "reason", json_object_get(data, "reason"));
    sd_log_info("resumed",
                "drain=%s scope=%s target=%s edges=%zu still_held=%zu requested_by=\"%s\"",
                hold.drain_id, scope, target, json_array_size(resumed), json_array_size(still),
                text_or(data, "requested_by", ""));
    return add_event(s, pg, SD_TOPIC_DRAIN_EVENTS, hold.site, "drain.resumed", d, err);
}

static int handle(struct sd_pg *pg, const struct sd_event *ev, const rd_kafka_message_t *m,
                  void *arg, struct sd_err *err)
{
    (void)m;
    if (!strcmp(ev->type, "drain.start"))
        return on_start(arg, pg, ev, err);
    if (!strcmp(ev->type, "drain.cancel"))
        return on_cancel(arg, pg, ev, err);
    if (!strcmp(ev->type, "drain.resume"))
        return on_resume(arg, pg, ev, err);
    sd_err_set(err, SD_ERR_INVALID, "unknown_type: %s", ev->type);
    return -1;
}

/* --- leadership ------------------------------------------------------------------ */

static int become_leader(struct svc *s, struct sd_err *err)
{
    const char *topics[1] = {sd_topic(SD_TOPIC_DRAIN_COMMANDS)};

    s->kc = sd_kafka_consumer_new(s->cfg.brokers, sd_topic(SERVICE), s->source, topics, 1,
                                  SD_KAFKA_FETCH_PROMPT, err);
    if (s->kc == NULL)
        return -1;
    s->ic = sd_inbox_consumer_new(s->pg, s->kc, CONSUMER_NAME, sd_topic(SD_TOPIC_DEADLETTER),
                                  handle, s);
    if (s->ic == NULL || sd_inbox_consumer_attach(s->ic, s->loop) < 0 ||
        sd_loop_add_timer(s->loop, 0, on_tick, s) < 0) {
        sd_err_set(err, SD_ERR_INTERNAL, "event loop set-up failed");
        return -1;
    }
    s->leader = true;
    s->lock_generation = sd_pg_generation(s->lock_pg);
    {
        int adopted = 0;
        if (orch_db_adopt_outbox(s->pg, sd_outbox_owner(), &adopted, err) < 0)
            return -1;
        if (adopted > 0)
            sd_log_info("took over the unpublished events of an earlier active instance", "rows=%d",
                        adopted);
    }
    sd_log_info("active: holding the orchestrator lock", "consumes=%s group=%s", topics[0],
                sd_topic(SERVICE));
    return 0;
}

static int64_t on_lock(struct sd_loop *loop, void *arg)
{
    struct svc *s = arg;
    struct sd_err err = {0};
    bool got = false;

    if (!s->leader) {
        if (orch_db_try_lock(s->lock_pg, &got, &err) < 0 || !got)
            return LOCK_POLL_MS; /* standby */
        if (become_leader(s, &err) < 0) {
            sd_log_error("cannot become active", "reason=\"%s\"", err.text);
            s->exit_code = 1;
            sd_loop_stop(loop);
            return -1;
        }
        return LOCK_POLL_MS;
    }
    /* Active: the lock lives as long as its session. */
    if (orch_db_try_lock(s->lock_pg, &got, &err) < 0 ||
        sd_pg_generation(s->lock_pg) != s->lock_generation) {
        sd_log_error("lost the orchestrator lock (its PostgreSQL session ended): stopping so a"
                     " supervisor starts this instance again as a standby",
                     "reason=\"%s\"", err.text[0] ? err.text : "reconnected");
        s->exit_code = 1;
        sd_loop_stop(loop);
        return -1;
    }
    /* pg_try_advisory_lock counts: give back the one just taken */
    if (got &&
        sd_pg_exec(s->lock_pg, "SELECT pg_advisory_unlock(hashtext('sipdrain/drain-orchestrator'))",
                   0, NULL, &err) < 0)
        sd_log_warn("lock check", "reason=\"%s\"", err.text);
    return LOCK_POLL_MS;
}

/* /readyz (the active instance only: a standby answers 503 "standby") and
 * /metrics, refreshed every second. */
static int64_t on_health(struct sd_loop *loop, void *arg)
{
    struct svc *s = arg;
    struct sd_metrics m = {0};
    struct sd_err err = {0};
    PGresult *res = NULL;
    char labels[256];
    long backlog = 0;

    (void)loop;
    sd_http_set_ready(s->http, s->leader && !s->tick_failing,
                      !s->leader ? "standby: another instance holds the orchestrator lock"
                                 : "database unavailable");
    sd_metrics_family(&m, "sipdrain_orchestrator_active", "gauge",
                      "1 for the instance holding the orchestrator lock");
    sd_metrics_sample(&m, "sipdrain_orchestrator_active", NULL, s->leader);
    if (s->leader)
        res = sd_pg_query(s->tick_pg,
                          "SELECT drain_id, scope, target, phase FROM drains"
                          " WHERE ended_at IS NULL ORDER BY started_at",
                          0, NULL, NULL, NULL, &err);
    sd_metrics_family(&m, "sipdrain_drain_phase", "gauge",
                      "1 for the phase each drain in progress is in");
    for (int i = 0; res != NULL && i < PQntuples(res); i++) {
        snprintf(labels, sizeof(labels), "drain_id=\"%s\",scope=\"%s\",target=\"%s\",phase=\"%s\"",
                 PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                 PQgetvalue(res, i, 3));
        sd_metrics_sample(&m, "sipdrain_drain_phase", labels, 1);
    }
    sd_metrics_family(&m, "sipdrain_drains_in_progress", "gauge", "drains not over yet");
    sd_metrics_sample(&m, "sipdrain_drains_in_progress", NULL, res != NULL ? PQntuples(res) : 0);
    PQclear(res);
    /* A standby consumes nothing and writes nothing: no bus gauges. */
    if (s->leader)
        sd_metrics_bus(&m, NULL, s->kc != NULL ? sd_kafka_consumer_lag(s->kc) : -1,
                       sd_outbox_backlog(s->tick_pg, &backlog, &err) == 0 ? backlog : -1);
    sd_http_set_metrics(s->http, m.buf);
    sd_metrics_free(&m);
    return 1000;
}

static void on_signal(struct sd_loop *loop, int signo, int count, void *arg)
{
    (void)arg;
    sd_log_info("stopping", "signal=%d count=%d", signo, count);
    if (count > 1)
        _exit(1);
    sd_loop_stop(loop);
}

static void usage(void)
{
    printf("drain-orchestrator - drains a sipdrain site or edge without losing a call\n\n"
           "Consumes sipdrain.drain.commands (drain.start, drain.cancel, drain.resume); for each\n"
           "drain sends\n"
           "edge.drain / edge.shutdown / edge.resume to the edges, agent.logout\n"
           "(graceful_shutdown_logout) to agent-state by the logout rules, and reports\n"
           "drain.started / drain.progress / drain.completed on sipdrain.drain.events.\n"
           "Run two: one is active (PostgreSQL advisory lock), the other takes over.\n\n"
           "Settings (environment, or KEY=value lines in the file $SIPDRAIN_CONFIG):\n");
    fflush(stdout);
    sd_cfg_usage(cfg_items, CFG_COUNT, 1);
}

static void setup(struct svc *s)
{
    sd_cfg_load_or_exit(SERVICE, cfg_items, CFG_COUNT, &s->cfg);
    sd_service_init(SERVICE, "SIPDRAIN_INSTANCE_ID", &s->cfg.instance, s->cfg.topic_prefix,
                    s->cfg.log_level, s->source, sizeof(s->source));
    sd_kafka_properties_load_or_exit(SERVICE);
}

int main(int argc, char **argv)
{
    static struct svc s; /* large scratch arrays: not on the stack */
    struct sd_err err = {0};

    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage();
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, SERVICE ": unexpected argument %s (try --help)\n", argv[1]);
        return 2;
    }
    setup(&s);
    if (s.cfg.http_addr != NULL && (s.http = sd_http_start(s.cfg.http_addr, 10000, &err)) == NULL) {
        fprintf(stderr, SERVICE ": SIPDRAIN_HTTP_ADDR: %s\n", err.text);
        return 2;
    }
    s.loop = sd_loop_new();
    s.pg = sd_pg_new(s.cfg.pg_dsn, s.source);
    s.tick_pg = sd_pg_new(s.cfg.pg_dsn, s.source);
    s.lock_pg = sd_pg_new(s.cfg.pg_dsn, s.source);
    s.relay_pg = sd_pg_new(s.cfg.pg_dsn, s.source);
    s.relay = sd_outbox_relay_new(s.relay_pg, s.cfg.brokers, s.source, &err);
    if (s.relay == NULL)
        goto fail;
    if (sd_outbox_relay_attach(s.relay, s.loop) < 0 ||
        sd_loop_add_timer(s.loop, 0, on_lock, &s) < 0 ||
        (s.http != NULL && sd_loop_add_timer(s.loop, 0, on_health, &s) < 0) ||
        sd_loop_watch_signals(s.loop, on_signal, &s) < 0) {
        sd_err_set(&err, SD_ERR_INTERNAL, "event loop set-up failed");
        goto fail;
    }
    sd_log_info("started: standby until the orchestrator lock is free", "tick_ms=%ld",
                s.cfg.tick_ms);
    sd_loop_run(s.loop);
    sd_outbox_relay_drain(s.relay, 5000);
    sd_log_info("stopped", "exit=%d published=%lu", s.exit_code, sd_outbox_relay_sent(s.relay));
    sd_service_stop_within(STOP_BUDGET_S, s.exit_code);
    goto out;
fail:
    sd_log_error("cannot start", "reason=\"%s\"", err.text);
    s.exit_code = 1;
out:
    sd_inbox_consumer_free(s.ic);
    sd_kafka_consumer_free(s.kc);
    sd_outbox_relay_free(s.relay);
    sd_pg_free(s.pg);
    sd_pg_free(s.tick_pg);
    sd_pg_free(s.lock_pg);
    sd_pg_free(s.relay_pg);
    sd_loop_free(s.loop);
    sd_http_stop(s.http);
    sd_cfg_free(cfg_items, CFG_COUNT, &s.cfg);
    return s.exit_code;
}
