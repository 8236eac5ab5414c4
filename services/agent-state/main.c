/* agent-state - agent sessions, work modes, after-call work, agent events
 * (DESIGN.md §1-§4, issue #3).
 *
 *   sipdrain.agent.commands --+                      +--> sipdrain.agent.events
 *   sipdrain.call.events -----+--> inbox --> agent_fsm --> outbox
 *                                   (one transaction)    +--> sipdrain.edge.control
 *                                                             (call.originate)
 *   ACW timer: agents.acw_until in PostgreSQL, polled every ACW_TICK_MS; each
 *   expiry is one transaction that re-checks the row under its lock, so
 *   several instances (and a restart) fire it exactly once.
 *
 * Wiring only: agent_fsm decides, agent_db and agent_bus do the I/O.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_bus.h"
#include "agent_db.h"
#include "agent_fsm.h"
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

#define SERVICE       "agent-state"
#define ACW_TICK_MS   250 /* how late a timed ACW may end, at most */
#define ACW_BATCH     64
#define CONSUMER_NAME "agent-state" /* inbox.consumer */
#define STOP_BUDGET_S 5             /* closing Kafka and PostgreSQL after "stopped" */

struct agent_state_cfg {
    char *pg_dsn;
    char *brokers;
    char *instance;
    char *topic_prefix;
    char *http_addr;
    int log_level;
};

static const struct sd_cfg_item cfg_items[] = {
    {"SIPDRAIN_PG_DSN", SD_CFG_STRING, offsetof(struct agent_state_cfg, pg_dsn), 0, 0, NULL, NULL,
     true, "PostgreSQL connection string (libpq), e.g. host=/run/pg dbname=sipdrain"},
    {"SIPDRAIN_KAFKA_BROKERS", SD_CFG_STRING, offsetof(struct agent_state_cfg, brokers), 0, 0, NULL,
     NULL, true, "Kafka bootstrap servers, e.g. 127.0.0.1:9092"},
    {"SIPDRAIN_INSTANCE_ID", SD_CFG_STRING, offsetof(struct agent_state_cfg, instance), 0, 0, NULL,
     NULL, false,
     "this instance's name, stable across restarts and unique (owner of its outbox rows); "
     "default: the host name"},
    {"SIPDRAIN_TOPIC_PREFIX", SD_CFG_STRING, offsetof(struct agent_state_cfg, topic_prefix), 0, 0,
     NULL, NULL, false,
     "prefix of every topic and consumer group name (several environments on one broker); "
     "default: none"},
    {"SIPDRAIN_HTTP_ADDR", SD_CFG_STRING, offsetof(struct agent_state_cfg, http_addr), 0, 0, NULL,
     NULL, false,
     "host:port of /healthz, /readyz (503 while PostgreSQL is away) and /metrics; unset: none"},
    {"SIPDRAIN_LOG_LEVEL", SD_CFG_ENUM, offsetof(struct agent_state_cfg, log_level), 0, 0,
     "debug|info|warn|error", "info", false, "least severe log level written"},
};
#define CFG_COUNT (sizeof(cfg_items) / sizeof(cfg_items[0]))

struct svc {
    struct agent_state_cfg cfg;
    char source[SD_EVENT_SOURCE_MAX]; /* "agent-state/<instance>" */
    struct sd_loop *loop;
    struct sd_pg *pg, *relay_pg, *timer_pg; /* consumer, outbox relay, ACW timer */
    struct sd_kafka_consumer *kc;
    struct sd_outbox_relay *relay;
    struct sd_inbox_consumer *ic;
    bool timer_failing; /* log the ACW timer's database trouble once */
    struct sd_http *http;
};

/* EventError.detail: what a person at the desktop (or in the log) reads. */
static void error_detail(char *buf, size_t size, enum agent_error e, const char *agent_id,
                         const struct agent *a, const struct agent_cmd *cmd)
{
    if (cmd != NULL && cmd->kind == AGENT_IN_CALL_REJECTED && cmd->detail[0] != '\0') {
        snprintf(buf, size, "%s", cmd->detail); /* the edge's, refusing call.originate */
        return;
    }
    switch (e) {
    case AGENT_ERR_GRACEFUL_SHUTDOWN:
        snprintf(buf, size, "site %s is draining: no new calls or logins",
                 cmd && cmd->kind == AGENT_IN_LOGIN ? cmd->site : a->site);
        break;
    case AGENT_ERR_UNKNOWN_AGENT:
        snprintf(buf, size, "agent %s has never logged in", agent_id);
        break;
    case AGENT_ERR_UNKNOWN_SITE:
        snprintf(buf, size, "site %s is not in the sites table", cmd ? cmd->site : "");
        break;
    case AGENT_ERR_NOT_LOGGED_IN:
        snprintf(buf, size, "agent %s is logged out", agent_id);
        break;
    case AGENT_ERR_ALREADY_LOGGED_IN:
        snprintf(buf, size, "agent %s is already logged in at %s on dn %s", agent_id, a->site,
                 a->dn);
        break;
    case AGENT_ERR_DN_IN_USE:
        snprintf(buf, size, "another agent is logged in on dn %s", cmd ? cmd->dn : a->dn);
        break;
    case AGENT_ERR_INVALID_STATE:
        snprintf(buf, size, "agent %s is %s, not in after-call work", agent_id,
                 agent_state_name(a->state));
        break;
    case AGENT_ERR_ON_CALL:
        snprintf(buf, size, "agent %s is on call %s", agent_id, a->call_id);
        break;
    case AGENT_ERR_NOT_REGISTERED:
        snprintf(buf, size, "no phone is registered for dn %s", a->dn);
        break;
    default:
        buf[0] = '\0';
        break;
    }
}

/* Fills in what the input needs beyond the agent's row. */
static int gather_facts(struct sd_pg *pg, const char *agent_id, const struct agent *a,
                        const struct agent_cmd *cmd, struct agent_input *in, char *peer, char *edge,
                        char *call_id, struct sd_err *err)
{
    bool free_to_call = in->known && a->state != AGENT_LOGGED_OUT && !in->site_draining &&
                        !a->drain && a->call_id[0] == '\0';

    switch (in->kind) {
    case AGENT_IN_LOGIN:
        in->dn = cmd->dn;
        in->site = cmd->site;
        in->work_mode = cmd->work_mode;
        in->acw_timeout_s = cmd->acw_timeout_s;
        in->workspace = cmd->workspace;
        in->nailed_up = cmd->nailed_up;
        return agent_db_login_facts(pg, agent_id, cmd->site, cmd->dn, &in->site_known,
                                    &in->site_draining, &in->dn_in_use, err);
    case AGENT_IN_LOGOUT:
        in->graceful = strcmp(cmd->reason, "graceful_shutdown_logout") == 0;
        if (!in->graceful || !a->workspace || a->state == AGENT_LOGGED_OUT)
            return 0;
        in->peer_site = peer;
        return agent_db_peer_facts(pg, agent_id, a->site, a->dn, peer, &in->peer_draining,
                                   &in->dn_in_use, err);
    case AGENT_IN_MAKE_CALL:
        if (!free_to_call)
            return 0; /* refused before the registration matters */
        if (agent_db_registration(pg, a->dn, edge, err) < 0)
            return -1;
        in->registered = edge[0] != '\0';
        sd_uuid_v4(call_id);
        in->new_call_id = call_id;
        return 0;
    case AGENT_IN_CALL_OFFERED:
    case AGENT_IN_CALL_ESTABLISHED:
    case AGENT_IN_CALL_ENDED:
    case AGENT_IN_CALL_REJECTED:
        in->call_id = cmd->call_id;
        in->answered = cmd->answered;
        in->not_taken = cmd->not_taken;
        in->originate_error = cmd->originate_error;
        return 0;
    default:
        return 0;
    }
}

static void log_outcome(const char *agent_id, const struct agent *before, const struct agent *a,
                        const struct agent_input *in, const struct agent_actions *out,
                        const struct agent_cmd *cmd, long long version)
{
    const char *request = cmd && cmd->is_command ? cmd->request_id : "-";

    for (size_t i = 0; i < out->n; i++) {
        const struct agent_action *act = &out->a[i];
        if (act->kind == AGENT_EMIT_ERROR)
            sd_log_info("command refused", "agent=%s command=%s reason=%s request=%s", agent_id,
                        agent_input_name(in->kind), agent_error_name(act->error), request);
        else if (act->kind == AGENT_ORIGINATE)
            sd_log_info("call originated", "agent=%s call=%s request=%s", agent_id,
                        act->snap.call_id, request);
    }
    if (out->note != NULL)
        sd_log_info("input ignored", "agent=%s input=%s call=%s why=\"%s\"", agent_id,
                    agent_input_name(in->kind), in->call_id ? in->call_id : "-", out->note);
    if (before->state != a->state || strcmp(before->site, a->site) != 0)
        sd_log_info("agent state changed",
                    "agent=%s from=%s to=%s site=%s input=%s request=%s version=%lld", agent_id,
                    agent_state_name(before->state), agent_state_name(a->state), a->site,
                    agent_input_name(in->kind), request, version);
}

/* One input for one agent, inside the caller's transaction: load and lock
 * the row, decide, save, and write the events to the outbox. cmd NULL =
 * the ACW timer. */
static int apply(struct svc *s, struct sd_pg *pg, const char *agent_id, const struct agent_cmd *cmd,
                 struct sd_err *err)
{
    struct agent a, before;
    struct agent_input in;
    struct agent_actions out;
    struct sd_event evs[AGENT_MAX_ACTIONS];
    struct sd_outbox_item items[AGENT_MAX_ACTIONS];
    char peer[AGENT_ID_SIZE] = "", edge[AGENT_ID_SIZE] = "", call_id[SD_EVENT_ID_LEN + 1] = "";
    char detail[256];
    long long version = 0, next;
    bool draining;
    int changed, bumps = 0, rc = -1;
    size_t nev = 0;

    if (agent_db_load(pg, agent_id, &a, &version, &draining, err) < 0)
        return -1;
    memset(&in, 0, sizeof(in));
    in.kind = cmd ? cmd->kind : AGENT_IN_ACW_TIMER;
    in.now_ms = sd_wall_ms();
    in.known = version > 0;
    in.site_draining = draining;
    if (cmd != NULL && gather_facts(pg, agent_id, &a, cmd, &in, peer, edge, call_id, err) < 0)
        return -1;
    before = a;
    changed = agent_fsm_step(&a, &in, &out);
    for (size_t i = 0; i < out.n; i++) {
        if (out.a[i].kind != AGENT_EMIT_ERROR && out.a[i].kind != AGENT_ORIGINATE)
            bumps++;
    }
    if (changed && agent_db_save(pg, agent_id, &a, bumps ? bumps : 1, &version, err) < 0)
        return -1;
    /* Each state event shows the version its snapshot had: with two of
     * them (drain logout + peer login) the logout has the one before. An
     * event that changed nothing (Ready when Ready, EventError) shows the
     * row's version as it is. */
    next = changed ? version - (bumps ? bumps : 1) : version;
    for (nev = 0; nev < out.n; nev++) {
        const struct agent_action *act = &out.a[nev];
        bool to_edge = act->kind == AGENT_ORIGINATE;
        long long ev_version = version;

        if (changed && act->kind != AGENT_EMIT_ERROR && act->kind != AGENT_ORIGINATE)
            ev_version = ++next;
        error_detail(detail, sizeof(detail), act->error, agent_id, &act->snap, cmd);
        if (sd_event_init(&evs[nev], s->source, agent_bus_type(act),
                          agent_bus_data(agent_id, act, cmd, ev_version, edge, detail), err) < 0)
            goto out;
        items[nev] = (struct sd_outbox_item){to_edge ? sd_topic(SD_TOPIC_EDGE_CONTROL)
                                                     : sd_topic(SD_TOPIC_AGENT_EVENTS),
                                             to_edge ? edge : agent_id, &evs[nev]};
    }
    if (nev > 0 && sd_outbox_add_many(pg, items, nev, err) < 0)
        goto out;
    log_outcome(agent_id, &before, &a, &in, &out, cmd, version);
    rc = 0;
out:
    for (size_t i = 0; i < nev; i++)
        sd_event_clear(&evs[i]);
    return rc;
}

/* The inbox handler: runs inside the inbox's transaction. An event that
 * fails the checks is dead-lettered (SD_ERR_INVALID with the reason). */
static int handle(struct sd_pg *pg, const struct sd_event *ev, const rd_kafka_message_t *m,
                  void *arg, struct sd_err *err)
{
    struct agent_cmd cmd;
    int rc;

    (void)m;
    rc = agent_bus_parse(ev, &cmd, err);
    if (rc <= 0)
        return rc;
    if (apply(arg, pg, cmd.agent_id, &cmd, err) < 0) {
        if (err->code != SD_ERR_TRANSIENT)
            sd_log_error("event could not be applied", "agent=%s type=%s event=%s reason=\"%s\"",
                         cmd.agent_id, ev->type, ev->id, err->text);
        return -1;
    }
    return 0;
}

/* Ends the timed ACWs that are due, each in its own transaction. */
static int64_t on_acw_timer(struct sd_loop *loop, void *arg)
{
    struct svc *s = arg;
    char ids[ACW_BATCH][AGENT_ID_SIZE];
    struct sd_err err = {0};
    int n;

    (void)loop;
    n = agent_db_acw_due(s->timer_pg, sd_wall_ms(), ids, ACW_BATCH, &err);
    for (int i = 0; i < n; i++) {
        if (sd_pg_begin(s->timer_pg, &err) < 0 || apply(s, s->timer_pg, ids[i], NULL, &err) < 0 ||
            sd_pg_commit(s->timer_pg, &err) < 0) {
            sd_pg_rollback(s->timer_pg);
            n = -1;
            break;
        }
    }
    if (n < 0) {
        if (!s->timer_failing)
            sd_log_warn("ACW timer: database unavailable, will retry", "reason=\"%s\"", err.text);
        s->timer_failing = true;
        return 1000;
    }
    if (s->timer_failing)
        sd_log_info("ACW timer: database back", "%s", "");
    s->timer_failing = false;
    return n == ACW_BATCH ? 0 : ACW_TICK_MS;
}

/* /readyz and /metrics (SIPDRAIN_HTTP_ADDR), refreshed every second. */
static int64_t on_health(struct sd_loop *loop, void *arg)
{
    struct svc *s = arg;
    struct sd_metrics m = {0};
    struct sd_err err = {0};
    const struct sd_inbox_stats *st = sd_inbox_consumer_stats(s->ic);
    PGresult *res;
    char labels[160];
    long backlog = 0;

    (void)loop;
    res = sd_pg_query(s->timer_pg,
                      "SELECT site, state, count(*), count(*) FILTER (WHERE call_id IS NOT NULL)"
                      " FROM agents GROUP BY 1, 2 ORDER BY 1, 2",
                      0, NULL, NULL, NULL, &err);
    sd_http_set_ready(s->http, res != NULL, "database unavailable");
    sd_metrics_family(&m, "sipdrain_agents", "gauge", "agents by site and state (agents table)");
    for (int i = 0; res != NULL && i < PQntuples(res); i++) {
        snprintf(labels, sizeof(labels), "site=\"%s\",state=\"%s\"", PQgetvalue(res, i, 0),
                 PQgetvalue(res, i, 1));
        sd_metrics_sample(&m, "sipdrain_agents", labels, strtod(PQgetvalue(res, i, 2), NULL));
    }
    sd_metrics_family(&m, "sipdrain_agents_on_call", "gauge",
                      "agents on a call, by site and state");
    for (int i = 0; res != NULL && i < PQntuples(res); i++) {
        snprintf(labels, sizeof(labels), "site=\"%s\",state=\"%s\"", PQgetvalue(res, i, 0),
                 PQgetvalue(res, i, 1));
        sd_metrics_sample(&m, "sipdrain_agents_on_call", labels,
                          strtod(PQgetvalue(res, i, 3), NULL));
    }
    PQclear(res);
    sd_metrics_family(&m, "sipdrain_events_applied_total", "counter",
                      "commands and call events applied (inbox)");
    sd_metrics_sample(&m, "sipdrain_events_applied_total", NULL, (double)st->applied);
    sd_metrics_family(&m, "sipdrain_events_duplicate_total", "counter",
                      "redelivered events skipped (inbox)");
    sd_metrics_sample(&m, "sipdrain_events_duplicate_total", NULL, (double)st->duplicates);
    sd_metrics_family(&m, "sipdrain_events_deadlettered_total", "counter",
                      "malformed events sent to sipdrain.deadletter");
    sd_metrics_sample(&m, "sipdrain_events_deadlettered_total", NULL, (double)st->deadlettered);
    sd_metrics_bus(&m, NULL, s->kc != NULL ? sd_kafka_consumer_lag(s->kc) : -1,
                   sd_outbox_backlog(s->timer_pg, &backlog, &err) == 0 ? backlog : -1);
    sd_http_set_metrics(s->http, m.buf);
    sd_metrics_free(&m);
    return 1000;
}

static void on_signal(struct sd_loop *loop, int signo, int count, void *arg)
{
    (void)arg;
    sd_log_info("stopping", "signal=%d count=%d", signo, count);
    if (count > 1)
        _exit(1); /* a second signal: stop now */
    sd_loop_stop(loop);
}

static void usage(void)
{
    printf("agent-state - agent sessions, work modes and after-call work for sipdrain\n\n"
           "Consumes sipdrain.agent.commands and sipdrain.call.events, keeps the agents table\n"
           "in PostgreSQL and publishes sipdrain.agent.events (and call.originate) through\n"
           "the outbox. Run several instances: they share the partitions (one consumer group).\n\n"
           "Settings (environment, or KEY=value lines in the file $SIPDRAIN_CONFIG):\n");
    fflush(stdout);
    sd_cfg_usage(cfg_items, CFG_COUNT, 1);
}

/* Start-up: configuration problems exit 2 naming the setting. */
static void setup(struct svc *s)
{
    sd_cfg_load_or_exit(SERVICE, cfg_items, CFG_COUNT, &s->cfg);
    sd_service_init(SERVICE, "SIPDRAIN_INSTANCE_ID", &s->cfg.instance, s->cfg.topic_prefix,
                    s->cfg.log_level, s->source, sizeof(s->source));
    sd_kafka_properties_load_or_exit(SERVICE);
}

int main(int argc, char **argv)
{
    struct svc s;
    struct sd_err err = {0};
    const char *topics[2];
    int rc = 1;

    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage();
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "agent-state: unexpected argument %s (try --help)\n", argv[1]);
        return 2;
    }
    memset(&s, 0, sizeof(s));
    setup(&s);
    if (s.cfg.http_addr != NULL && (s.http = sd_http_start(s.cfg.http_addr, 10000, &err)) == NULL) {
        fprintf(stderr, "agent-state: SIPDRAIN_HTTP_ADDR: %s\n", err.text);
        return 2;
    }
    topics[0] = sd_topic(SD_TOPIC_AGENT_COMMANDS);
    topics[1] = sd_topic(SD_TOPIC_CALL_EVENTS);
    s.loop = sd_loop_new();
    s.pg = sd_pg_new(s.cfg.pg_dsn, s.source);
    s.relay_pg = sd_pg_new(s.cfg.pg_dsn, s.source);
    s.timer_pg = sd_pg_new(s.cfg.pg_dsn, s.source);
    s.kc = sd_kafka_consumer_new(s.cfg.brokers, sd_topic(SERVICE), s.source, topics, 2,
                                 SD_KAFKA_FETCH_BATCHED, &err);
    if (s.kc == NULL)
        goto fail;
    s.relay = sd_outbox_relay_new(s.relay_pg, s.cfg.brokers, s.source, &err);
    if (s.relay == NULL)
        goto fail;
    s.ic =
        sd_inbox_consumer_new(s.pg, s.kc, CONSUMER_NAME, sd_topic(SD_TOPIC_DEADLETTER), handle, &s);
    if (s.ic == NULL || sd_inbox_consumer_attach(s.ic, s.loop) < 0 ||
        sd_outbox_relay_attach(s.relay, s.loop) < 0 ||
        sd_loop_add_timer(s.loop, 0, on_acw_timer, &s) < 0 ||
        (s.http != NULL && sd_loop_add_timer(s.loop, 0, on_health, &s) < 0) ||
        sd_loop_watch_signals(s.loop, on_signal, &s) < 0) {
        sd_err_set(&err, SD_ERR_INTERNAL, "event loop set-up failed");
        goto fail;
    }
    sd_log_info("started", "consumes=\"%s %s\" group=%s", topics[0], topics[1], sd_topic(SERVICE));
    sd_loop_run(s.loop);
    sd_outbox_relay_drain(s.relay, 5000);
    {
        const struct sd_inbox_stats *st = sd_inbox_consumer_stats(s.ic);
        sd_log_info("stopped",
                    "applied=%lu duplicates=%lu deadlettered=%lu published=%lu unpublished=%zu",
                    st->applied, st->duplicates, st->deadlettered, sd_outbox_relay_sent(s.relay),
                    sd_outbox_relay_inflight(s.relay));
    }
    rc = 0;
    sd_service_stop_within(STOP_BUDGET_S, rc);
    goto out;
fail:
    sd_log_error("cannot start", "reason=\"%s\"", err.text);
    rc = 1;
out:
    sd_inbox_consumer_free(s.ic);
    sd_kafka_consumer_free(s.kc);
    sd_outbox_relay_free(s.relay);
    sd_pg_free(s.pg);
    sd_pg_free(s.relay_pg);
    sd_pg_free(s.timer_pg);
    sd_loop_free(s.loop);
    sd_http_stop(s.http);
    sd_cfg_free(cfg_items, CFG_COUNT, &s.cfg);
    return rc;
}
