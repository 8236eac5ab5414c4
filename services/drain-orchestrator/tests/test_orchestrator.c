/* test_orchestrator - build/bin/drain-orchestrator with the real services
 * around it: agent-state, two sip-edge processes of site2 (and one of site1,
 * so that the peer rule lets site2 drain), PostgreSQL and Kafka of
 * tests/scripts. Each test has its own database and topic prefix;
 * agents are rows as agent-state leaves them; every event read is checked
 * against schemas/events. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sipdrain/event.h"
#include "support.h"

#define WAIT_MS 60000

struct env {
    char dsn[512], prefix[64];
    char commands[160], events[160], agent_events[160], control[160], call_events[160];
    char env_dsn[600], env_brokers[300], env_prefix[120];
};

struct proc {
    pid_t pid;
    int port; /* an edge's SIP port */
    char log[256];
    char env_dsn[600]; /* SIPDRAIN_PG_DSN, as the program's own role */
};

/* A database and topics of the test's own; sites site1 and site2, peers */
static void env_setup_alone(struct env *e)
{
    char role_dsn[512];

    memset(e, 0, sizeof(*e));
    sdt_db_create(e->dsn, sizeof(e->dsn));
    sdt_prefix_create(e->prefix, sizeof(e->prefix));
    snprintf(e->commands, sizeof(e->commands), "%ssipdrain.drain.commands", e->prefix);
    snprintf(e->events, sizeof(e->events), "%ssipdrain.drain.events", e->prefix);
    snprintf(e->agent_events, sizeof(e->agent_events), "%ssipdrain.agent.events", e->prefix);
    snprintf(e->control, sizeof(e->control), "%ssipdrain.edge.control", e->prefix);
    snprintf(e->call_events, sizeof(e->call_events), "%ssipdrain.call.events", e->prefix);
    /* drainctl's (the services get theirs in start()) */
    sdt_dsn_as(e->dsn, "sipdrain_drainctl", role_dsn, sizeof(role_dsn));
    snprintf(e->env_dsn, sizeof(e->env_dsn), "SIPDRAIN_PG_DSN=%s", role_dsn);
    snprintf(e->env_brokers, sizeof(e->env_brokers), "SIPDRAIN_KAFKA_BROKERS=%s", sdt_brokers());
    snprintf(e->env_prefix, sizeof(e->env_prefix), "SIPDRAIN_TOPIC_PREFIX=%s", e->prefix);
    sdt_pg_run(e->dsn, "INSERT INTO sites (site_id, peer) VALUES ('site1', 'site2'),"
                       " ('site2', 'site1')");
}

static void edge_start_at(struct env *e, struct proc *p, const char *id, const char *site,
                          int http_port);
/* Settings every edge started from now on gets too (NULL-ended; a test
 * sets it, e.g. route points): reset by env_setup_alone's caller. */
static const char *edge_more[4];

/* An edge of site1 for the whole test (env_setup starts it): the peer rule
 * lets a drain of site2 start only while an edge of site1 takes calls. The
 * suite's fini stops it, also after a failed assertion. */
static struct proc peer_edge;

/* env_setup_alone, and edge-1a of site1 taking calls */
static void env_setup(struct env *e)
{
    env_setup_alone(e);
    edge_start_at(e, &peer_edge, "edge-1a", "site1", 0);
}

/* Starts bin (in SIPDRAIN_BIN_DIR) with the env's settings plus extra. */
static void start(struct env *e, struct proc *p, const char *bin, const char *name,
                  const char *const *extra)
{
    char path[1024], role_dsn[512];
    const char *dir = getenv("SIPDRAIN_BIN_DIR");
    const char *envp[16];
    size_t n = 0;

    cr_assert_not_null(dir, "SIPDRAIN_BIN_DIR unset (set by CTest)");
    snprintf(path, sizeof(path), "%s/%s", dir, bin);
    snprintf(p->log, sizeof(p->log), "/tmp/sipdrain-orch-%.12s-%s.log", e->prefix + 2, name);
    unlink(p->log);
    /* each program logs in as its own role (migration 0005) */
    sdt_dsn_as(e->dsn,
               !strcmp(bin, "sip-edge")      ? "sipdrain_edge"
               : !strcmp(bin, "agent-state") ? "sipdrain_agent_state"
                                             : "sipdrain_orchestrator",
               role_dsn, sizeof(role_dsn));
    snprintf(p->env_dsn, sizeof(p->env_dsn), "SIPDRAIN_PG_DSN=%s", role_dsn);
    envp[n++] = p->env_dsn;
    envp[n++] = e->env_brokers;
    envp[n++] = e->env_prefix;
    envp[n++] = "SIPDRAIN_LOG_LEVEL=info";
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 15; i++)
        envp[n++] = extra[i];
    envp[n] = NULL;
    p->pid = sdt_spawn(path, NULL, envp, p->log);
}

static void wait_log(struct proc *p, const char *text)
{
    int64_t deadline = sd_mono_ms() + WAIT_MS;
    int status;

    while (!sdt_file_has(p->log, text)) {
        cr_assert_eq(waitpid(p->pid, &status, WNOHANG), 0, "exited early (%s)", p->log);
        cr_assert_lt(sd_mono_ms(), deadline, "no \"%s\" in %s", text, p->log);
        usleep(50000);
    }
}

/* An edge of site that has its edge.control partitions and its edges row;
 * /healthz, /readyz and /metrics on http_port unless 0. */
static void edge_start_at(struct env *e, struct proc *p, const char *id, const char *site,
                          int http_port)
{
    static char envs[2][4][128];
    static int which;
    const char *extra[10];
    char sql[256];
    int64_t deadline = sd_mono_ms() + WAIT_MS;

    which = !which;
    snprintf(envs[which][0], 128, "SIPDRAIN_EDGE_ID=%s", id);
    p->port = sdt_free_port();
    snprintf(envs[which][1], 128, "SIPDRAIN_SIP_URL=sip:127.0.0.1:%d", p->port);
    snprintf(envs[which][2], 128, "SIPDRAIN_SITE=%s", site);
    snprintf(envs[which][3], 128, "SIPDRAIN_HTTP_ADDR=127.0.0.1:%d", http_port);
    extra[0] = envs[which][0];
    extra[1] = envs[which][1];
    extra[2] = envs[which][2];
    /* the phones are Debian 12's SIPp: MD5 challenges alone (edge_harness.c) */
    extra[3] = "SIPDRAIN_SIP_AUTH_ALGORITHMS=MD5";
    {
        size_t n = 4;
        if (http_port > 0)
            extra[n++] = envs[which][3];
        for (size_t i = 0; edge_more[i] != NULL && n < 9; i++)
            extra[n++] = edge_more[i];
        extra[n] = NULL;
    }
    start(e, p, "sip-edge", id, extra);
    wait_log(p, "partitions assigned");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM edges WHERE edge_id = '%s'", id);
    while (sdt_pg_scalar(e->dsn, sql) != 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "edge %s never wrote its row", id);
        usleep(50000);
    }
}

static void edge_start_http(struct env *e, struct proc *p, const char *id, int http_port)
{
    edge_start_at(e, p, id, "site2", http_port);
}

static void edge_start(struct env *e, struct proc *p, const char *id)
{
    edge_start_http(e, p, id, 0);
}

static void peer_edge_stop(void)
{
    if (peer_edge.pid > 0) {
        kill(peer_edge.pid, SIGTERM);
        (void)sdt_wait(peer_edge.pid, WAIT_MS);
        peer_edge.pid = 0;
    }
}

TestSuite(orchestrator, .fini = peer_edge_stop);

static int exit_code(pid_t pid, int timeout_ms)
{
    int status = sdt_wait(pid, timeout_ms);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The events of topic, parsed, once `type` is among them (or WAIT_MS);
 * until_type NULL: those there now. */
struct evs {
    size_t n;
    char type[512][SD_EVENT_TYPE_MAX];
    json_t *data[512];
};

static void evs_read(const char *topic, const char *until_type, struct evs *r)
{
    int64_t deadline = sd_mono_ms() + WAIT_MS;
    struct sd_err err = {0};

    for (;;) {
        long count = sdt_topic_count(topic);
        struct sdt_msgs m =
            count > 0 ? sdt_consume(topic, (size_t)count, 10000) : (struct sdt_msgs){0, NULL};
        bool found = false;

        memset(r, 0, sizeof(*r));
        for (size_t i = 0; i < m.n && i < 512; i++) {
            struct sd_event ev;
            cr_assert_eq(sd_event_parse(m.m[i].value, m.m[i].len, &ev, &err), 0, "%s", err.text);
            snprintf(r->type[i], sizeof(r->type[i]), "%s", ev.type);
            r->data[i] = json_incref(ev.data);
            found = found || (until_type != NULL && !strcmp(ev.type, until_type));
            sd_event_clear(&ev);
            r->n++;
        }
        if (found || until_type == NULL || sd_mono_ms() > deadline) {
            if (m.n > 0)
                cr_expect_eq(sdt_validate_events(&m), 0, "an event of %s failed its schema", topic);
            sdt_msgs_free(&m);
            cr_assert(found || until_type == NULL, "no %s on %s within %d ms", until_type, topic,
                      WAIT_MS);
            return;
        }
        sdt_msgs_free(&m);
        for (size_t i = 0; i < r->n; i++)
            json_decref(r->data[i]);
        usleep(250000);
    }
}

static void evs_free(struct evs *r)
{
    for (size_t i = 0; i < r->n; i++)
        json_decref(r->data[i]);
}

static const char *str(json_t *d, const char *key)
{
    json_t *v = json_object_get(d, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

static int find(const struct evs *r, const char *type, const char *agent)
{
    for (size_t i = 0; i < r->n; i++) {
        if (!strcmp(r->type[i], type) &&
            (agent == NULL || !strcmp(str(r->data[i], "agent_id"), agent)))
            return (int)i;
    }
    return -1;
}

/* How many events of type (for agent, unless NULL) r holds. */
static int count_of(const struct evs *r, const char *type, const char *agent)
{
    int n = 0;

    for (size_t i = 0; i < r->n; i++)
        n += !strcmp(r->type[i], type) &&
             (agent == NULL || !strcmp(str(r->data[i], "agent_id"), agent));
    return n;
}

/* Agents of site2 as agent-state leaves them after a login (and a call). */
static void agents_setup(struct env *e)
{
    sdt_pg_run(e->dsn,
               "INSERT INTO agents (agent_id, dn, site, state, work_mode, acw_timeout_s, acw_until,"
               " workspace, ready_since, version) VALUES"
               " ('a-ready', '2001', 'site2', 'ready', 'manual_in', NULL, NULL, false, now(), 1),"
               " ('a-acw', '2002', 'site2', 'acw', 'acw', 4, now() + interval '4 seconds', false,"
               "  NULL, 2),"
               " ('a-ws', '2003', 'site2', 'not_ready', 'manual_in', NULL, NULL, true, NULL, 1)");
}

static void drain_start(struct env *e, json_t *data, char *id)
{
    sdt_send_event(e->commands, "site2", "drain.start", data, id);
}

Test(orchestrator, a_site_drain_logs_agents_out_by_the_rules_and_completes_when_the_edges_stop,
     .timeout = 240)
{
    struct env e;
    struct proc as, orch, edge_a, edge_b;
    struct evs drains, agents;
    char request[SD_EVENT_ID_LEN + 1];
    const char *inst[] = {"SIPDRAIN_INSTANCE_ID=orch-1", NULL};
    const char *as_inst[] = {"SIPDRAIN_INSTANCE_ID=as-1", NULL};
    int i_started, i_completed, i_ready, i_logout;
    json_t *done;

    env_setup(&e);
    agents_setup(&e);
    start(&e, &as, "agent-state", "agent-state", as_inst);
    edge_start(&e, &edge_a, "edge-2a");
    edge_start(&e, &edge_b, "edge-2b");
    start(&e, &orch, "drain-orchestrator", "orch-1", inst);
    wait_log(&orch, "active: holding the orchestrator lock");
    wait_log(&orch, "partitions assigned");
    drain_start(&e,
                json_pack("{s:s, s:i, s:s, s:s}", "site", "site2", "sip_timeout_s", 1,
                          "requested_by", "test", "reason", "CHG-1"),
                request);

    evs_read(e.events, "drain.completed", &drains);
    i_started = find(&drains, "drain.started", NULL);
    i_completed = find(&drains, "drain.completed", NULL);
    cr_assert_geq(i_started, 0, "no drain.started");
    cr_expect_str_eq(str(drains.data[i_started], "request_id"), request);
    cr_expect_eq(json_array_size(json_object_get(drains.data[i_started], "edges")), 2);
    cr_expect_lt(i_started, i_completed);
    cr_expect_geq(find(&drains, "drain.progress", NULL), 0, "no drain.progress");
    done = drains.data[i_completed];
    cr_expect(json_is_false(json_object_get(done, "forced")));
    cr_expect_eq(json_integer_value(json_object_get(done, "agents_logged_out")), 3);
    cr_expect_eq(json_integer_value(json_object_get(done, "agents_migrated")), 1);
    cr_expect_eq(json_array_size(json_object_get(done, "edges_stopped")), 2);
    cr_expect(json_is_integer(json_object_get(json_object_get(done, "phase_ms"), "wait_agents")),
              "the drain waited for the ACW agent");

    /* agent-state's side: each agent logged out once, with the drain's reason;
     * the ACW agent only after its ACW ended (EventAgentReady acw_timeout) */
    evs_read(e.agent_events, "EventAgentLogout", &agents);
    for (size_t k = 0; k < 3; k++) {
        static const char *const ids[] = {"a-ready", "a-acw", "a-ws"};
        int at = find(&agents, "EventAgentLogout", ids[k]);
        cr_expect_eq(count_of(&agents, "EventAgentLogout", ids[k]), 1, "%s logged out once",
                     ids[k]);
        cr_assert_geq(at, 0, "%s not logged out", ids[k]);
        cr_expect_str_eq(str(json_object_get(agents.data[at], "extensions"), "ReasonCode"),
                         "graceful_shutdown_logout", "%s", ids[k]);
    }
    i_ready = find(&agents, "EventAgentReady", "a-acw");
    i_logout = find(&agents, "EventAgentLogout", "a-acw");
    cr_expect(i_ready >= 0 && i_ready < i_logout, "a-acw: ready (ACW over) before the logout");
    cr_expect_geq(find(&agents, "EventAgentLogin", "a-ws"), 0, "a-ws logged in at site1");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM agents WHERE agent_id = 'a-ws'"
                                      " AND site = 'site1' AND state <> 'logged_out'"),
                 1);
    evs_free(&agents);
    evs_free(&drains);

    cr_expect_eq(exit_code(edge_a.pid, WAIT_MS), 0, "edge-2a exit (%s)", edge_a.log);
    cr_expect_eq(exit_code(edge_b.pid, WAIT_MS), 0, "edge-2b exit (%s)", edge_b.log);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drains WHERE ended_at IS NOT NULL"
                                      " AND result = 'completed' AND phase = 'completed'"),
                 1);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM agents WHERE drain"), 0,
                 "drain flags cleared");
    kill(orch.pid, SIGTERM);
    cr_expect_eq(exit_code(orch.pid, WAIT_MS), 0);
    kill(as.pid, SIGTERM);
    cr_expect_eq(exit_code(as.pid, WAIT_MS), 0);
}

/* --- commands that cannot be carried out, and repeats -------------------------- */

/* The drain.rejected answering request (its reason), once it is there. */
static const char *rejected_reason(struct env *e, const char *request, struct evs *r)
{
    int64_t deadline = sd_mono_ms() + WAIT_MS;

    for (;;) {
        evs_read(e->events, "drain.rejected", r);
        for (size_t i = 0; i < r->n; i++) {
            if (!strcmp(r->type[i], "drain.rejected") &&
                !strcmp(str(r->data[i], "request_id"), request))
                return str(r->data[i], "reason");
        }
        cr_assert_lt(sd_mono_ms(), deadline, "no drain.rejected for %s", request);
        evs_free(r);
        usleep(250000);
    }
}

/* An orchestrator instance; http_port > 0: with SIPDRAIN_HTTP_ADDR on it. */
static void orch_up_http(struct env *e, struct proc *p, const char *name, int http_port)
{
    static char inst[2][64], http[2][64];
    static int which;
    const char *extra[3] = {NULL, NULL, NULL};

    which = !which;
    snprintf(inst[which], sizeof(inst[which]), "SIPDRAIN_INSTANCE_ID=%s", name);
    snprintf(http[which], sizeof(http[which]), "SIPDRAIN_HTTP_ADDR=127.0.0.1:%d", http_port);
    extra[0] = inst[which];
    if (http_port > 0)
        extra[1] = http[which];
    start(e, p, "drain-orchestrator", name, extra);
}

static void orch_up(struct env *e, struct proc *p, const char *name)
{
    orch_up_http(e, p, name, 0);
}

/* GETs path until it answers want (the first refresh takes up to a second). */
static void wait_http(int port, const char *path, int want, char *body, size_t size)
{
    int64_t deadline = sd_mono_ms() + WAIT_MS;
    int got;

    while ((got = sdt_http_get(port, path, body, size)) != want) {
        cr_assert_lt(sd_mono_ms(), deadline, "%s on port %d: %d, want %d (%s)", path, port, got,
                     want, body);
        usleep(100000);
    }
}

Test(orchestrator, bad_or_conflicting_commands_get_drain_rejected_with_the_reason, .timeout = 180)
{
    struct env e;
    struct proc orch;
    struct evs r;
    char req[9][SD_EVENT_ID_LEN + 1];
    int started = 0;
    static const char *const want[] = {
        "unknown_site",         "bad_options",       "bad_options",
        "unknown_edge",         "bad_options",       "drain_in_progress",
        "no_drain_in_progress", "drain_id_mismatch", "peer_site_draining"};

    env_setup(&e);
    /* an agent on a call holds a drain of site2 open (no agent-state here) */
    sdt_pg_run(e.dsn, "INSERT INTO agents (agent_id, dn, site, state, call_id, version) VALUES"
                      " ('busy', '2001', 'site2', 'ready', 'c-1', 1)");
    orch_up(&e, &orch, "orch-1");
    wait_log(&orch, "partitions assigned");
    drain_start(&e, json_pack("{s:s}", "site", "site9"), req[0]);
    drain_start(&e, json_pack("{s:s, s:i}", "site", "site2", "reject_code", 200), req[1]);
    drain_start(&e, json_pack("{s:s, s:s}", "site", "site2", "edge", "edge-2a"), req[2]);
    drain_start(&e, json_pack("{s:s}", "edge", "edge-9z"), req[3]);
    drain_start(&e, json_pack("{s:s, s:i}", "site", "site2", "service_id", 42), req[4]);
    /* T-Library's private request id is accepted */
    drain_start(
        &e, json_pack("{s:s, s:i, s:i}", "site", "site2", "deadline_s", 600, "service_id", 3019),
        NULL);
    evs_read(e.events, "drain.started", &r);
    evs_free(&r);
    drain_start(&e, json_pack("{s:s, s:i}", "site", "site2", "deadline_s", 900), req[5]);
    sdt_send_event(e.commands, "site1", "drain.cancel", json_pack("{s:s}", "site", "site1"),
                   req[6]);
    sdt_send_event(e.commands, "site2", "drain.cancel",
                   json_pack("{s:s, s:s}", "site", "site2", "drain_id",
                             "00000000-0000-4000-8000-000000000000"),
                   req[7]);
    /* site1's peer is site2, which drains */
    sdt_send_event(e.commands, "site1", "drain.start", json_pack("{s:s}", "site", "site1"), req[8]);
    for (size_t i = 0; i < 9; i++) {
        cr_expect_str_eq(rejected_reason(&e, req[i], &r), want[i], "command %zu", i);
        evs_free(&r);
    }
    /* the same start again: the drain goes on, announced again */
    drain_start(
        &e, json_pack("{s:s, s:i, s:i}", "site", "site2", "deadline_s", 600, "service_id", 3019),
        req[0]);
    for (int64_t deadline = sd_mono_ms() + WAIT_MS; started < 2;) {
        started = 0;
        evs_read(e.events, "drain.started", &r);
        for (size_t i = 0; i < r.n; i++)
            started += !strcmp(r.type[i], "drain.started");
        evs_free(&r);
        cr_assert_lt(sd_mono_ms(), deadline, "the repeated start was not re-announced");
        usleep(250000);
    }
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drains"), 1, "still one drain");
    kill(orch.pid, SIGTERM);
    cr_expect_eq(exit_code(orch.pid, WAIT_MS), 0);
}

Test(orchestrator, cancel_resumes_the_edges_clears_the_flags_and_logs_nobody_else_out,
     .timeout = 180)
{
    struct env e;
    struct proc orch, edge_a;
    struct evs r;
    char cancel[SD_EVENT_ID_LEN + 1];
    int64_t deadline;

    env_setup(&e);
    sdt_pg_run(e.dsn, "INSERT INTO agents (agent_id, dn, site, state, call_id, version) VALUES"
                      " ('busy', '2001', 'site2', 'ready', 'c-1', 1)");
    edge_start(&e, &edge_a, "edge-2a");
    orch_up(&e, &orch, "orch-1");
    wait_log(&orch, "partitions assigned");
    drain_start(&e, json_pack("{s:s, s:i}", "site", "site2", "sip_timeout_s", 1), NULL);
    deadline = sd_mono_ms() + WAIT_MS;
    while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM edges WHERE state = 'drained'") != 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "the edge never drained");
        usleep(100000);
    }
    /* the orchestrator sees that at its next tick (every 250 ms): then the
     * drain waits for the agent on its call */
    while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drains WHERE phase = 'wait_agents'") != 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "the drain never waited for the agent");
        usleep(50000);
    }
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM agents WHERE drain"), 1);
    sdt_send_event(e.commands, "site2", "drain.cancel",
                   json_pack("{s:s, s:s}", "site", "site2", "reason", "rollback"), cancel);
    evs_read(e.events, "drain.cancelled", &r);
    for (size_t i = 0; i < r.n; i++) {
        if (!strcmp(r.type[i], "drain.cancelled")) {
            cr_expect_str_eq(str(r.data[i], "request_id"), cancel);
            cr_expect_str_eq(str(r.data[i], "phase"), "wait_agents", "the phase it was in");
        }
    }
    evs_free(&r);
    deadline = sd_mono_ms() + WAIT_MS;
    while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM edges WHERE state = 'active'"
                                " AND site = 'site2'") != 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "the edge did not resume");
        usleep(100000);
    }
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM agents WHERE drain"), 0);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drains WHERE result = 'cancelled'"
                                      " AND ended_at IS NOT NULL"),
                 1);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drain_agents"), 0, "no logout");
    kill(edge_a.pid, SIGTERM);
    cr_expect_eq(exit_code(edge_a.pid, WAIT_MS), 0);
    kill(orch.pid, SIGTERM);
    cr_expect_eq(exit_code(orch.pid, WAIT_MS), 0);
}

Test(orchestrator, an_edge_drain_stops_that_edge_only_and_leaves_the_agents, .timeout = 180)
{
    struct env e;
    struct proc orch, edge_a, edge_b;
    struct evs r;
    int at;

    env_setup(&e);
    agents_setup(&e);
    edge_start(&e, &edge_a, "edge-2a");
    edge_start(&e, &edge_b, "edge-2b");
    orch_up(&e, &orch, "orch-1");
    wait_log(&orch, "partitions assigned");
    sdt_send_event(e.commands, "edge-2a", "drain.start",
                   json_pack("{s:s, s:i}", "edge", "edge-2a", "sip_timeout_s", 1), NULL);
    evs_read(e.events, "drain.completed", &r);
    at = find(&r, "drain.completed", NULL);
    cr_expect_str_eq(str(r.data[at], "scope"), "edge");
    cr_expect_str_eq(str(r.data[at], "edge"), "edge-2a");
    cr_expect_eq(json_integer_value(json_object_get(r.data[at], "agents_logged_out")), 0);
    evs_free(&r);
    cr_expect_eq(exit_code(edge_a.pid, WAIT_MS), 0, "edge-2a stopped by its drain");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM edges WHERE edge_id = 'edge-2b'"
                                      " AND state = 'active'"),
                 1, "edge-2b untouched");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM agents WHERE state <> 'logged_out'"
                                      " AND NOT drain"),
                 3, "agents stay, no drain flag");
    kill(edge_b.pid, SIGTERM);
    cr_expect_eq(exit_code(edge_b.pid, WAIT_MS), 0);
    kill(orch.pid, SIGTERM);
    cr_expect_eq(exit_code(orch.pid, WAIT_MS), 0);
}

Test(orchestrator, the_deadline_logs_out_without_waiting_for_acw_and_the_drain_is_forced,
     .timeout = 180)
{
    struct env e;
    struct proc as, orch;
    struct evs r;
    const char *as_inst[] = {"SIPDRAIN_INSTANCE_ID=as-1", NULL};
    int at;

    env_setup(&e);
    sdt_pg_run(e.dsn, "INSERT INTO agents (agent_id, dn, site, state, work_mode, acw_timeout_s,"
                      " acw_until, version) VALUES ('long-acw', '2001', 'site2', 'acw', 'acw',"
                      " 300, now() + interval '300 seconds', 1)");
    start(&e, &as, "agent-state", "agent-state", as_inst);
    wait_log(&as, "partitions assigned");
    orch_up(&e, &orch, "orch-1");
    wait_log(&orch, "partitions assigned");
    drain_start(&e, json_pack("{s:s, s:i}", "site", "site2", "deadline_s", 3), NULL);
    evs_read(e.events, "drain.completed", &r);
    at = find(&r, "drain.completed", NULL);
    cr_expect(json_is_true(json_object_get(r.data[at], "forced")));
    cr_expect_eq(json_integer_value(json_object_get(r.data[at], "agents_logged_out")), 1);
    cr_expect_geq(json_integer_value(json_object_get(r.data[at], "elapsed_ms")), 3000);
    cr_expect_lt(json_integer_value(json_object_get(r.data[at], "elapsed_ms")), 30000,
                 "not the 300 s of ACW");
    evs_free(&r);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drains WHERE result = 'forced'"), 1);
    kill(orch.pid, SIGTERM);
    cr_expect_eq(exit_code(orch.pid, WAIT_MS), 0);
    kill(as.pid, SIGTERM);
    cr_expect_eq(exit_code(as.pid, WAIT_MS), 0);
}

/* Two orchestrators (orch-1 active, orch-2 standby; http ports may be 0),
 * agent-state and edge-2a, and a site2 drain under way: a-ready and a-ws
 * logged out, a-acw still in its 8 s of ACW. For the hand-over tests. */
static void drain_under_way_with_a_standby(struct env *e, struct proc *as, struct proc *one,
                                           struct proc *two, struct proc *edge_a, int http_one,
                                           int http_two)
{
    const char *as_inst[] = {"SIPDRAIN_INSTANCE_ID=as-1", NULL};
    int64_t deadline;

    env_setup(e);
    agents_setup(e);
    sdt_pg_run(e->dsn, "UPDATE agents SET acw_until = now() + interval '8 seconds'"
                       " WHERE agent_id = 'a-acw'");
    start(e, as, "agent-state", "agent-state", as_inst);
    edge_start(e, edge_a, "edge-2a");
    orch_up_http(e, one, "orch-1", http_one);
    wait_log(one, "partitions assigned");
    orch_up_http(e, two, "orch-2", http_two);
    wait_log(two, "standby until the orchestrator lock is free");
    drain_start(e, json_pack("{s:s, s:i}", "site", "site2", "sip_timeout_s", 1), NULL);
    deadline = sd_mono_ms() + WAIT_MS;
    while (sdt_pg_scalar(e->dsn, "SELECT count(*) FROM drain_agents") < 2) {
        cr_assert_lt(sd_mono_ms(), deadline, "no logouts");
        usleep(100000);
    }
}

/* After a hand-over: orch-2 completed the drain, each of the three agents
 * was logged out exactly once, the edge stopped; then the rest stops. */
static void standby_completed_the_drain(struct env *e, struct proc *as, struct proc *two,
                                        struct proc *edge_a)
{
    struct evs drains, agents;

    evs_read(e->events, "drain.completed", &drains);
    evs_read(e->agent_events, "EventAgentLogout", &agents);
    cr_expect_eq(count_of(&agents, "EventAgentLogout", "a-ready"), 1);
    cr_expect_eq(count_of(&agents, "EventAgentLogout", "a-ws"), 1);
    cr_expect_eq(count_of(&agents, "EventAgentLogout", "a-acw"), 1);
    cr_expect_eq(sdt_pg_scalar(e->dsn, "SELECT count(*) FROM drain_agents WHERE logouts_sent = 1"),
                 3, "one agent.logout each");
    cr_expect(sdt_file_has(two->log, "drain completed"), "orch-2 completed it (%s)", two->log);
    evs_free(&agents);
    evs_free(&drains);
    cr_expect_eq(exit_code(edge_a->pid, WAIT_MS), 0, "the edge (%s)", edge_a->log);
    kill(two->pid, SIGTERM);
    cr_expect_eq(exit_code(two->pid, WAIT_MS), 0);
    kill(as->pid, SIGTERM);
    cr_expect_eq(exit_code(as->pid, WAIT_MS), 0, "agent-state (%s)", as->log);
}

/* The active orchestrator dies mid-drain: the standby takes the lock within
 * seconds and finishes the drain from its row; nobody is logged out twice. */
Test(orchestrator, the_standby_finishes_a_drain_when_the_active_one_is_killed, .timeout = 240)
{
    struct env e;
    struct proc as, one, two, edge_a;
    int64_t killed_ms;
    int http_one = sdt_free_port(), http_two = sdt_free_port();
    char body[8192];

    drain_under_way_with_a_standby(&e, &as, &one, &two, &edge_a, http_one, http_two);
    /* /readyz: only the active instance is ready */
    wait_http(http_one, "/readyz", 200, body, sizeof(body));
    wait_http(http_two, "/readyz", 503, body, sizeof(body));
    cr_expect(strncmp(body, "standby", 7) == 0, "%s", body);
    cr_assert_eq(kill(one.pid, SIGKILL), 0);
    killed_ms = sd_mono_ms();
    sdt_wait(one.pid, 10000);
    wait_log(&two, "active: holding the orchestrator lock");
    cr_expect_lt(sd_mono_ms() - killed_ms, 5000, "the standby took over within 5 s");
    wait_http(http_two, "/readyz", 200, body, sizeof(body));
    {
        /* /readyz and /metrics are handed over one after the other: wait */
        int64_t until = sd_mono_ms() + WAIT_MS;
        while (sdt_http_get(http_two, "/metrics", body, sizeof(body)) != 200 ||
               strstr(body, "sipdrain_orchestrator_active 1\n") == NULL) {
            cr_assert_lt(sd_mono_ms(), until, "orch-2 never reported active: %s", body);
            usleep(100000);
        }
    }
    standby_completed_the_drain(&e, &as, &two, &edge_a);
}

/* Issue #16: calls wait at site2's route point (no agent there) when site2
 * is drained, and the active orchestrator is killed right after the drain
 * starts: the standby finishes the drain; the edge hands each waiting call
 * to site1's route point (SIPDRAIN_PEER_SITE_URI), where an agent answers
 * it; no call is refused or lost, none is offered twice, and drain.progress
 * counts the waiting calls among calls_left. */
Test(orchestrator, calls_waiting_at_a_drained_site_are_answered_at_the_peer_site_across_a_failover,
     .timeout = 240)
{
    struct env e;
    struct proc one, two, edge_a;
    struct evs drains, calls;
    char peer_uri[96], sql[160];
    const char *phone_keys[] = {"sdp_token", "phone-q", "sdp_expect", "s=gw-q", NULL};
    const char *gw_keys[] = {"hold_ms",    "300",       "sdp_token", "gw-q",
                             "sdp_expect", "s=phone-q", NULL};
    pid_t phone[2], gw[2];
    int64_t deadline;
    long max_left = 0;

    edge_more[0] = "SIPDRAIN_ROUTE_POINTS=7000";
    edge_more[1] = NULL;
    env_setup(&e); /* edge-1a of site1, route point 7000 */
    sdt_pg_run(e.dsn, "INSERT INTO agents (agent_id, dn, site, state, work_mode, ready_since,"
                      " version) VALUES ('b1', '1001', 'site1', 'ready', 'manual_in',"
                      " now() - interval '20 seconds', 1), ('b2', '1002', 'site1', 'ready',"
                      " 'manual_in', now() - interval '10 seconds', 1)");
    for (int k = 0; k < 2; k++) {
        phone[k] =
            sdt_sipp_start("phone_answer", peer_edge.port, k == 0 ? "1001" : "1002", phone_keys);
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM registrations WHERE dn = '%s'",
                 k == 0 ? "1001" : "1002");
        deadline = sd_mono_ms() + WAIT_MS;
        while (sdt_pg_scalar(e.dsn, sql) < 1) {
            cr_assert_lt(sd_mono_ms(), deadline, "phone %d never registered", k + 1);
            usleep(50000);
        }
    }
    snprintf(peer_uri, sizeof(peer_uri), "SIPDRAIN_PEER_SITE_URI=sip:127.0.0.1:%d", peer_edge.port);
    edge_more[1] = peer_uri;
    edge_more[2] = NULL;
    edge_start(&e, &edge_a, "edge-2a");
    edge_more[0] = NULL;
    orch_up(&e, &one, "orch-1");
    wait_log(&one, "partitions assigned");
    orch_up(&e, &two, "orch-2");
    wait_log(&two, "standby until the orchestrator lock is free");
    for (int k = 0; k < 2; k++) {
        gw[k] = sdt_sipp_start("gateway_queued_call", edge_a.port, "7000", gw_keys);
        deadline = sd_mono_ms() + WAIT_MS;
        while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM waiting_calls") < k + 1) {
            cr_assert_lt(sd_mono_ms(), deadline, "call %d never waited", k + 1);
            usleep(50000);
        }
    }
    /* the edge counts its waiting calls as calls in progress */
    deadline = sd_mono_ms() + WAIT_MS;
    while (sdt_pg_scalar(e.dsn, "SELECT active_calls FROM edges WHERE edge_id = 'edge-2a'") != 2) {
        cr_assert_lt(sd_mono_ms(), deadline, "edge-2a never reported its 2 waiting calls");
        usleep(50000);
    }
    drain_start(&e, json_pack("{s:s, s:i}", "site", "site2", "sip_timeout_s", 1), NULL);
    deadline = sd_mono_ms() + WAIT_MS;
    while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drains") < 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "the drain never started");
        usleep(20000);
    }
    cr_assert_eq(kill(one.pid, SIGKILL), 0);
    sdt_wait(one.pid, 10000);
    wait_log(&two, "active: holding the orchestrator lock");
    for (int k = 0; k < 2; k++) {
        cr_expect_eq(sdt_sipp_wait(gw[k], WAIT_MS), 0,
                     "call %d: queued at site2, answered at site1 on the same dialog", k + 1);
        cr_expect_eq(sdt_sipp_wait(phone[k], WAIT_MS), 0, "site1 phone %d", k + 1);
    }
    evs_read(e.events, "drain.completed", &drains);
    for (size_t i = 0; i < drains.n; i++) {
        long left = (long)json_integer_value(json_object_get(drains.data[i], "calls_left"));
        if (strcmp(drains.type[i], "drain.progress") != 0)
            continue;
        max_left = left > max_left ? left : max_left;
        cr_expect_leq(json_integer_value(json_object_get(drains.data[i], "calls_queued")), left);
    }
    cr_expect_eq(max_left, 2, "the two waiting calls were calls left of the drain");
    cr_expect(sdt_file_has(two.log, "drain completed"), "orch-2 completed it (%s)", two.log);
    evs_free(&drains);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE edge_id = 'edge-1a'"
                                      " AND answered_at IS NOT NULL"),
                 2, "both answered at site1");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE edge_id = 'edge-1a'"), 2,
                 "none offered twice");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM waiting_calls"), 0);
    evs_read(e.call_events, NULL, &calls);
    cr_expect_eq(count_of(&calls, "call.rejected", NULL), 0, "no call refused");
    evs_free(&calls);
    cr_expect_eq(exit_code(edge_a.pid, WAIT_MS), 0, "edge-2a stopped by the drain (%s)",
                 edge_a.log);
    kill(two.pid, SIGTERM);
    cr_expect_eq(exit_code(two.pid, WAIT_MS), 0);
}

/* PostgreSQL restarted mid-drain: the active instance's lock session is
 * gone with it, so it exits 1 (DESIGN: never two active); the standby takes
 * the lock once PostgreSQL is back and finishes the drain from its row.
 * agent-state and the edge ride the restart out; nobody is logged out twice. */
Test(orchestrator, a_postgresql_restart_mid_drain_hands_the_drain_to_the_standby, .timeout = 240)
{
    struct env e;
    struct proc as, one, two, edge_a;

    drain_under_way_with_a_standby(&e, &as, &one, &two, &edge_a, 0, 0);
    cr_assert_eq(sdt_script("tests/scripts/pg-restart.sh >/dev/null 2>&1"), 0);
    cr_expect_eq(exit_code(one.pid, WAIT_MS), 1, "orch-1 with its lock session gone (%s)", one.log);
    wait_log(&two, "active: holding the orchestrator lock");
    standby_completed_the_drain(&e, &as, &two, &edge_a);
}

/* The logout table's "on a call" and "untimed ACW" rows against
 * agent-state: a call is waited for; after it, agent-state applies the work
 * mode (timed ACW: NotReady/ACW, then Ready at the timeout, then the logout;
 * manual_in: NotReady, then the logout; untimed ACW: the logout at once).
 * Untimed ACW without a call: logged out at once. The calls end by
 * call.ended as an edge sends it. */
Test(orchestrator, agents_on_a_call_are_logged_out_only_after_the_call_and_their_acw,
     .timeout = 180)
{
    struct env e;
    struct proc as, orch;
    struct evs agents, drains;
    char calls[160];
    const char *as_inst[] = {"SIPDRAIN_INSTANCE_ID=as-1", NULL};
    const char *ids[3] = {"call-acw", "call-manual", "call-untimed"};
    int64_t ended_ms;

    env_setup(&e);
    snprintf(calls, sizeof(calls), "%ssipdrain.call.events", e.prefix);
    sdt_pg_run(e.dsn, "INSERT INTO agents (agent_id, dn, site, state, work_mode, acw_timeout_s,"
                      " call_id, version) VALUES"
                      " ('call-acw', '2001', 'site2', 'ready', 'acw', 3, 'c-1', 1),"
                      " ('call-manual', '2002', 'site2', 'not_ready', 'manual_in', NULL, 'c-2', 1),"
                      " ('call-untimed', '2003', 'site2', 'ready', 'acw', NULL, 'c-3', 1),"
                      " ('untimed', '2004', 'site2', 'acw', 'acw', NULL, NULL, 1)");
    start(&e, &as, "agent-state", "agent-state", as_inst);
    wait_log(&as, "partitions assigned");
    orch_up(&e, &orch, "orch-1");
    wait_log(&orch, "partitions assigned");
    drain_start(&e, json_pack("{s:s}", "site", "site2"), NULL);
    evs_read(e.events, "drain.started", &drains);
    evs_free(&drains);
    sleep(2); /* the drain runs; three agents are on their calls */
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drain_agents"), 1,
                 "during the calls only the agent in untimed ACW is logged out");
    cr_expect_eq(
        sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drain_agents WHERE agent_id = 'untimed'"), 1);
    ended_ms = sd_wall_ms();
    for (int i = 0; i < 3; i++) {
        char call[8], dn[8];
        snprintf(call, sizeof(call), "c-%d", i + 1);
        snprintf(dn, sizeof(dn), "200%d", i + 1);
        sdt_send_event(calls, ids[i], "call.ended",
                       json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:s}", "call_id", call,
                                 "agent_id", ids[i], "dn", dn, "edge", "edge-2a", "site", "site2",
                                 "direction", "inbound", "answered", 1, "duration_ms", 60000,
                                 "end_cause", "caller_hangup"),
                       NULL);
    }
    evs_read(e.events, "drain.completed", &drains);
    cr_expect_eq(json_integer_value(json_object_get(
                     drains.data[find(&drains, "drain.completed", NULL)], "agents_logged_out")),
                 4);
    evs_free(&drains);
    evs_read(e.agent_events, "EventAgentLogout", &agents);
    {
        int after_call = find(&agents, "EventAgentNotReady", "call-acw");
        int ready = find(&agents, "EventAgentReady", "call-acw");
        int out = find(&agents, "EventAgentLogout", "call-acw");
        cr_expect(after_call >= 0 && ready > after_call && out > ready,
                  "call-acw: NotReady (ACW) %d, Ready %d, Logout %d", after_call, ready, out);
        after_call = find(&agents, "EventAgentNotReady", "call-manual");
        out = find(&agents, "EventAgentLogout", "call-manual");
        cr_expect(after_call >= 0 && out > after_call, "call-manual: NotReady %d, Logout %d",
                  after_call, out);
    }
    {
        int after_call = find(&agents, "EventAgentNotReady", "call-untimed");
        int out = find(&agents, "EventAgentLogout", "call-untimed");
        cr_expect(after_call >= 0 && out > after_call, "call-untimed: ACW %d, Logout %d",
                  after_call, out);
        cr_expect_lt(find(&agents, "EventAgentReady", "call-untimed"), 0,
                     "untimed ACW is not waited for");
    }
    for (int i = 0; i < 3; i++)
        cr_expect_eq(count_of(&agents, "EventAgentLogout", ids[i]), 1, "%s", ids[i]);
    cr_expect_eq(count_of(&agents, "EventAgentLogout", "untimed"), 1);
    evs_free(&agents);
    {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM drain_agents WHERE agent_id = 'call-acw' AND"
                 " logout_sent_at >= to_timestamp(%lld / 1000.0) + interval '3 seconds'",
                 (long long)ended_ms);
        cr_expect_eq(sdt_pg_scalar(e.dsn, sql), 1, "the ACW agent's logout after its 3 s ACW");
    }
    kill(orch.pid, SIGTERM);
    cr_expect_eq(exit_code(orch.pid, WAIT_MS), 0);
    kill(as.pid, SIGTERM);
    cr_expect_eq(exit_code(as.pid, WAIT_MS), 0);
}

/* --- drainctl ----------------------------------------------------------------- */

/* Runs drainctl with args; its output (stdout and stderr) goes to out. */
static int drainctl(struct env *e, const char *const *args, const char *out, int timeout_ms)
{
    char path[1024];
    const char *dir = getenv("SIPDRAIN_BIN_DIR");
    const char *envp[4] = {e->env_brokers, e->env_prefix, e->env_dsn, NULL};
    pid_t pid;

    snprintf(path, sizeof(path), "%s/drainctl", dir);
    unlink(out);
    pid = sdt_spawn(path, args, envp, out);
    return exit_code(pid, timeout_ms);
}

Test(orchestrator, drainctl_drain_start_wait_shows_progress_and_exits_0_when_the_drain_completes,
     .timeout = 240)
{
    struct env e;
    struct proc as, orch, edge_a;
    const char *as_inst[] = {"SIPDRAIN_INSTANCE_ID=as-1", NULL};
    const char *start_args[] = {"drain",         "start", "--site", "site2",
                                "--sip-timeout", "1",     "--wait", NULL};
    const char *bad_args[] = {"drain", "start", "--site", "site9", NULL};
    const char *agents_args[] = {"agents", "--site", "site2", "--json", NULL};
    const char *status_args[] = {"drain", "status", NULL};
    const char *status_site_args[] = {"drain", "status", "--site", "site2", NULL};
    char out[256];

    env_setup(&e);
    agents_setup(&e);
    start(&e, &as, "agent-state", "agent-state", as_inst);
    edge_start(&e, &edge_a, "edge-2a");
    orch_up(&e, &orch, "orch-1");
    wait_log(&orch, "partitions assigned");
    snprintf(out, sizeof(out), "/tmp/sipdrain-drainctl-%.12s.out", e.prefix + 2);

    cr_expect_eq(drainctl(&e, agents_args, out, WAIT_MS), 0);
    cr_expect(sdt_file_has(out, "\"agent_id\":\"a-acw\""), "agents --json (%s)", out);

    cr_expect_eq(drainctl(&e, start_args, out, 120000), 0, "drainctl exit (%s)", out);
    cr_expect(sdt_file_has(out, "drain.start sent"), "%s", out);
    cr_expect(sdt_file_has(out, "started (edges: 1)"), "%s", out);
    cr_expect(sdt_file_has(out, "phase=wait_agents"), "progress lines (%s)", out);
    cr_expect(sdt_file_has(out, "completed: 3 agents logged out (1 at the peer site)"), "%s", out);
    /* issue #18: before "completed", where site2's stores lead (the test
     * stack: one PostgreSQL of no site, one broker without a rack) */
    cr_expect_gt(sdt_file_line(out, "the stores, before site2 is powered off"), 0, "%s", out);
    cr_expect_lt(sdt_file_line(out, "the stores, before site2 is powered off"),
                 sdt_file_line(out, "completed: 3 agents"), "the stores after completed (%s)", out);
    cr_expect(sdt_file_has(out, "primary"), "PostgreSQL's primary listed (%s)", out);
    cr_expect(sdt_file_has(out, "leads "), "the broker and what it leads (%s)", out);
    cr_expect(sdt_file_has(out, "a broker's rack is unknown"), "%s", out);

    cr_expect_eq(drainctl(&e, status_args, out, WAIT_MS), 0);
    cr_expect(sdt_file_has(out, "completed"), "drain status (%s)", out);
    cr_expect(!sdt_file_has(out, "the stores"), "drain status without --site (%s)", out);
    cr_expect_eq(drainctl(&e, status_site_args, out, WAIT_MS), 0);
    cr_expect(sdt_file_has(out, "completed"), "drain status --site site2 (%s)", out);
    cr_expect(sdt_file_has(out, "the stores, before site2 is powered off"), "%s", out);
    cr_expect(sdt_file_has(out, "a broker's rack is unknown"), "%s", out);

    cr_expect_eq(drainctl(&e, bad_args, out, WAIT_MS), 1, "a rejected drain exits 1");
    cr_expect(sdt_file_has(out, "rejected: unknown_site"), "%s", out);

    cr_expect_eq(exit_code(edge_a.pid, WAIT_MS), 0);
    kill(orch.pid, SIGTERM);
    cr_expect_eq(exit_code(orch.pid, WAIT_MS), 0);
    kill(as.pid, SIGTERM);
    cr_expect_eq(exit_code(as.pid, WAIT_MS), 0);
}

/* --- the progress counts ------------------------------------------------------ */

/* Returns once edge has just written its edges row (its edge.status, once
 * a second): the next one is about a second away. */
static void just_after_a_heartbeat(struct env *e, const char *edge)
{
    char sql[256];
    int64_t deadline = sd_mono_ms() + WAIT_MS;
    long first;

    snprintf(sql, sizeof(sql),
             "SELECT (extract(epoch from last_heartbeat) * 1000)::bigint FROM edges"
             " WHERE edge_id = '%s'",
             edge);
    first = sdt_pg_scalar(e->dsn, sql);
    while (sdt_pg_scalar(e->dsn, sql) == first) {
        cr_assert_lt(sd_mono_ms(), deadline, "edge %s stopped reporting", edge);
        usleep(10000);
    }
}

/* Every "calls_left=X/Y" and "agents_logged_in=X/Y" of drainctl's progress
 * lines has X <= Y; how many lines said calls_left=1/1. */
static int drainctl_lines_honest(const char *path, int *lines)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    int one_of_one = 0;

    *lines = 0;
    cr_assert_not_null(f, "%s", path);
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *c = strstr(line, " calls_left="), *a = strstr(line, " agents_logged_in=");
        long left, total;
        if (c == NULL)
            continue;
        (*lines)++;
        cr_assert_eq(sscanf(c, " calls_left=%ld/%ld", &left, &total), 2, "%s", line);
        cr_expect_leq(left, total, "drainctl: %s", line);
        one_of_one += left == 1 && total == 1;
        cr_assert_not_null(a, "%s", line);
        cr_assert_eq(sscanf(a, " agents_logged_in=%ld/%ld", &left, &total), 2, "%s", line);
        cr_expect_leq(left, total, "drainctl: %s", line);
    }
    fclose(f);
    return one_of_one;
}

/* Issue #12: a call answered less than a second before the drain starts is
 * not in its edge's last edge.status, so the first look at the edges counts
 * no call; the edge's next report has it. Every drain.progress and every
 * line of drainctl must still show calls_left at most its total (1/1, not
 * 1/0). The call is a real one (SIPp gateway -> sip-edge -> SIPp phone),
 * placed just after the edge reported, and the drain.start sent as soon as
 * the call is established. */
Test(orchestrator, a_call_answered_just_before_the_drain_starts_never_shows_more_left_than_total,
     .timeout = 240)
{
    struct env e;
    struct proc as, orch, edge_a;
    struct evs drains;
    const char *as_inst[] = {"SIPDRAIN_INSTANCE_ID=as-1", NULL};
    /* each side checks the other's SDP arrived (tests/e2e/sipp/README.md) */
    const char *phone_keys[] = {"sdp_token", "phone-orch", "sdp_expect", "s=gw-orch", NULL};
    const char *gateway_keys[] = {"hold_ms",    "3000",         "sdp_token", "gw-orch",
                                  "sdp_expect", "s=phone-orch", NULL};
    const char *watch_args[] = {"watch", NULL};
    const char *watch_env[4] = {e.env_brokers, e.env_prefix, e.env_dsn, NULL};
    char watch_out[256], dir_bin[1024];
    pid_t phone, gateway, watch;
    int64_t placed_ms, answered_ms, deadline;
    long max_left = 0, last_total = -1, first_left = -1;
    int progress = 0, lines, one_of_one;

    env_setup(&e);
    sdt_pg_run(e.dsn, "INSERT INTO agents (agent_id, dn, site, state, work_mode, ready_since,"
                      " version) VALUES ('a1', '2001', 'site2', 'ready', 'manual_in',"
                      " now() - interval '10 seconds', 1)");
    start(&e, &as, "agent-state", "agent-state", as_inst);
    edge_start(&e, &edge_a, "edge-2a");
    orch_up(&e, &orch, "orch-1");
    wait_log(&orch, "partitions assigned");
    wait_log(&as, "partitions assigned");

    /* drainctl follows drain.events from its end: started before the drain */
    snprintf(dir_bin, sizeof(dir_bin), "%s/drainctl", getenv("SIPDRAIN_BIN_DIR"));
    snprintf(watch_out, sizeof(watch_out), "/tmp/sipdrain-drainctl-watch-%.12s.out", e.prefix + 2);
    unlink(watch_out);
    watch = sdt_spawn(dir_bin, watch_args, watch_env, watch_out);
    deadline = sd_mono_ms() + WAIT_MS;
    while (!sdt_file_has(watch_out, "watching")) {
        cr_assert_lt(sd_mono_ms(), deadline, "drainctl watch did not start (%s)", watch_out);
        usleep(50000);
    }

    phone = sdt_sipp_start("phone_answer", edge_a.port, "2001", phone_keys);
    deadline = sd_mono_ms() + WAIT_MS;
    while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM registrations WHERE dn = '2001'") < 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "the phone never registered");
        usleep(50000);
    }
    just_after_a_heartbeat(&e, "edge-2a");
    placed_ms = sd_mono_ms();
    gateway = sdt_sipp_start("gateway_call", edge_a.port, "2001", gateway_keys);
    while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE state = 'established'") < 1) {
        cr_assert_lt(sd_mono_ms() - placed_ms, WAIT_MS, "the call was never established");
        usleep(10000);
    }
    answered_ms = sd_mono_ms();
    drain_start(&e, json_pack("{s:s, s:i}", "site", "site2", "sip_timeout_s", 1), NULL);
    cr_log_info("call placed right after edge-2a's report, established %lld ms later,"
                " drain.start sent at %lld ms",
                (long long)(answered_ms - placed_ms), (long long)(sd_mono_ms() - placed_ms));

    evs_read(e.events, "drain.completed", &drains); /* also validates: calls_left <= total */
    for (size_t i = 0; i < drains.n; i++) {
        json_t *d = drains.data[i];
        long left = (long)json_integer_value(json_object_get(d, "calls_left"));
        long total = (long)json_integer_value(json_object_get(d, "calls_at_start"));
        long in = (long)json_integer_value(json_object_get(d, "agents_logged_in"));
        long in_total = (long)json_integer_value(json_object_get(d, "agents_at_start"));
        if (strcmp(drains.type[i], "drain.progress") != 0)
            continue;
        progress++;
        if (first_left < 0)
            first_left = left;
        cr_expect_leq(left, total, "drain.progress %d: calls_left=%ld/%ld", progress, left, total);
        cr_expect_leq(in, in_total, "drain.progress %d: agents_logged_in=%ld/%ld", progress, in,
                      in_total);
        cr_expect_geq(total, last_total, "the total went down");
        max_left = left > max_left ? left : max_left;
        last_total = total;
    }
    cr_log_info("%d drain.progress; the first said calls_left=%ld", progress, first_left);
    cr_expect_gt(progress, 0);
    cr_expect_eq(max_left, 1, "the call was counted");
    cr_expect_eq(last_total, 1, "calls_at_start: the one call");
    evs_free(&drains);

    cr_expect_eq(sdt_sipp_wait(gateway, WAIT_MS), 0, "the gateway's call, ended by its BYE");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0, "the phone");
    cr_expect_eq(exit_code(edge_a.pid, WAIT_MS), 0, "edge-2a stopped by the drain (%s)",
                 edge_a.log);

    kill(watch, SIGTERM);
    cr_expect_eq(exit_code(watch, WAIT_MS), 0, "drainctl watch (%s)", watch_out);
    one_of_one = drainctl_lines_honest(watch_out, &lines);
    cr_expect_gt(lines, 0, "drainctl showed the progress (%s)", watch_out);
    cr_expect_gt(one_of_one, 0, "drainctl showed calls_left=1/1 (%s)", watch_out);

    kill(orch.pid, SIGTERM);
    cr_expect_eq(exit_code(orch.pid, WAIT_MS), 0);
    kill(as.pid, SIGTERM);
    cr_expect_eq(exit_code(as.pid, WAIT_MS), 0);
}

/* --- drained stays drained (issue #13) ------------------------------------------ */

static long edge_scalar(struct env *e, const char *edge, const char *what)
{
    char sql[256];

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM edges WHERE edge_id = '%s' AND %s", edge,
             what);
    return sdt_pg_scalar(e->dsn, sql);
}

static void wait_edge(struct env *e, const char *edge, const char *what)
{
    int64_t deadline = sd_mono_ms() + WAIT_MS;

    while (edge_scalar(e, edge, what) != 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "edge %s: never %s", edge, what);
        usleep(100000);
    }
}

/* An edge restarted (SIGKILL, then started again with its id, as a
 * supervisor does) while its site drains, and again after the drain
 * completed, comes up refusing: OPTIONS and INVITE 503, held in its row,
 * in /metrics and in drainctl edges. The drain counts it as stopped and
 * completes. Resume while the drain runs is refused; the peer site cannot
 * be drained and the site not drained again while it is held; drainctl
 * resume --wait brings the edge back (OPTIONS 200), and a second resume
 * finds nothing to resume. */
Test(orchestrator, a_drained_site_stays_drained_across_edge_restarts_until_drainctl_resume,
     .timeout = 240)
{
    struct env e;
    struct proc orch, edge_a;
    const char *keys[] = {"retry_after", "30", NULL};
    const char *resume_args[] = {"resume", "--site", "site2", "--wait", NULL};
    const char *resume_edge_args[] = {"resume", "--edge", "edge-2a", NULL};
    const char *peer_args[] = {"drain", "start", "--site", "site1", NULL};
    const char *again_args[] = {"drain", "start", "--site", "site2", NULL};
    const char *edges_args[] = {"edges", "--site", "site2", "--json", NULL};
    char out[256], body[16384];
    int http = sdt_free_port();

    env_setup(&e);
    snprintf(out, sizeof(out), "/tmp/sipdrain-drainctl-%.12s.out", e.prefix + 2);
    /* an agent "on a call" keeps the drain in wait_agents until we free it */
    sdt_pg_run(e.dsn, "INSERT INTO agents (agent_id, dn, site, state, call_id, version) VALUES"
                      " ('busy', '2001', 'site2', 'ready', 'c-1', 1)");
    edge_start(&e, &edge_a, "edge-2a");
    orch_up(&e, &orch, "orch-1");
    wait_log(&orch, "partitions assigned");
    drain_start(&e, json_pack("{s:s, s:i}", "site", "site2", "sip_timeout_s", 1), NULL);
    wait_edge(&e, "edge-2a", "state = 'drained'");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM sites s JOIN drains d ON"
                                      " d.drain_id = s.drained_by WHERE s.site_id = 'site2'"
                                      " AND d.ended_at IS NULL"),
                 1, "the running drain holds site2");

    /* resume while the drain runs: refused, nothing changes */
    cr_expect_eq(drainctl(&e, resume_args, out, WAIT_MS), 1, "resume during the drain (%s)", out);
    cr_expect(sdt_file_has(out, "drain.resume rejected: drain_in_progress"), "%s", out);
    cr_expect_eq(edge_scalar(&e, "edge-2a", "state = 'drained'"), 1);

    /* killed mid-drain and started again: drained at once, held */
    kill(edge_a.pid, SIGKILL);
    sdt_wait(edge_a.pid, WAIT_MS);
    edge_start_http(&e, &edge_a, "edge-2a", http);
    cr_expect(sdt_file_has(edge_a.log, "held: starting drained"), "%s", edge_a.log);
    wait_edge(&e, "edge-2a", "state = 'drained' AND held");
    cr_expect_eq(sdt_sipp("options_503", edge_a.port, "2001", NULL), 0, "OPTIONS of the held edge");
    cr_expect_eq(sdt_sipp("invite_refused_503", edge_a.port, "2001", keys), 0,
                 "INVITE to the held edge: 503, Retry-After, Reason");
    cr_expect_eq(sdt_sipp("register_refused", edge_a.port, "2002", keys), 0);
    cr_expect_eq(sdt_http_get(http, "/readyz", body, sizeof(body)), 503);
    cr_expect_eq(sdt_http_get(http, "/metrics", body, sizeof(body)), 200);
    cr_expect_not_null(strstr(body, "sipdrain_edge_held{edge=\"edge-2a\",site=\"site2\"} 1"), "%s",
                       body);

    /* the agent is free and logged out (as agent-state would): the drain
     * completes, the held edge counting as stopped; no edge.shutdown ends it */
    sdt_pg_run(e.dsn, "UPDATE agents SET call_id = NULL, state = 'logged_out'");
    {
        struct evs r;
        evs_read(e.events, "drain.completed", &r);
        evs_free(&r);
    }
    usleep(1500000);
    cr_expect_eq(waitpid(edge_a.pid, NULL, WNOHANG), 0, "the held edge was stopped");
    cr_expect_eq(edge_scalar(&e, "edge-2a", "state = 'drained' AND held"), 1);

    /* after the drain: started again, still refusing */
    kill(edge_a.pid, SIGTERM);
    cr_expect_eq(exit_code(edge_a.pid, WAIT_MS), 0, "a held edge stops on SIGTERM");
    edge_start(&e, &edge_a, "edge-2a");
    wait_edge(&e, "edge-2a", "state = 'drained' AND held");
    cr_expect_eq(sdt_sipp("invite_refused_503", edge_a.port, "2001", keys), 0,
                 "INVITE after the drain completed");
    cr_expect_eq(drainctl(&e, edges_args, out, WAIT_MS), 0);
    cr_expect(sdt_file_has(out, "\"state\":\"drained\",\"held\":\"held\""), "drainctl edges (%s)",
              out);

    /* while site2 is held: no drain of site1, none of site2 again, no
     * resume of its edge alone */
    cr_expect_eq(drainctl(&e, peer_args, out, WAIT_MS), 1, "%s", out);
    cr_expect(sdt_file_has(out, "rejected: peer_site_drained"), "%s", out);
    cr_expect_eq(drainctl(&e, again_args, out, WAIT_MS), 1, "%s", out);
    cr_expect(sdt_file_has(out, "rejected: already_drained"), "%s", out);
    cr_expect_eq(drainctl(&e, resume_edge_args, out, WAIT_MS), 1, "%s", out);
    cr_expect(sdt_file_has(out, "rejected: site_drained"), "%s", out);

    /* resume: the edge takes calls again */
    cr_expect_eq(drainctl(&e, resume_args, out, WAIT_MS), 0, "resume (%s)", out);
    cr_expect(sdt_file_has(out, "site site2 resumed"), "%s", out);
    cr_expect(sdt_file_has(out, "edge edge-2a active (1 of 1)"), "%s", out);
    wait_edge(&e, "edge-2a", "state = 'active' AND NOT held");
    cr_expect_eq(sdt_sipp("options_200", edge_a.port, "2001", NULL), 0, "OPTIONS after resume");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM sites WHERE drained_by IS NOT NULL"),
                 0);
    cr_expect_eq(drainctl(&e, resume_args, out, WAIT_MS), 1, "%s", out);
    cr_expect(sdt_file_has(out, "rejected: not_drained"), "%s", out);

    /* an edge started now comes up active */
    kill(edge_a.pid, SIGKILL);
    sdt_wait(edge_a.pid, WAIT_MS);
    edge_start(&e, &edge_a, "edge-2a");
    wait_edge(&e, "edge-2a", "state = 'active' AND NOT held");
    kill(edge_a.pid, SIGTERM);
    cr_expect_eq(exit_code(edge_a.pid, WAIT_MS), 0);
    kill(orch.pid, SIGTERM);
    cr_expect_eq(exit_code(orch.pid, WAIT_MS), 0);
}

/* The sent command's drain.rejected reason, or "" when it was accepted
 * (drain.started with its request_id). */
static const char *answer_to(struct env *e, const char *request, struct evs *r)
{
    int64_t deadline = sd_mono_ms() + WAIT_MS;

    for (;;) {
        evs_read(e->events, NULL, r);
        for (size_t i = 0; i < r->n; i++) {
            if (strcmp(str(r->data[i], "request_id"), request) != 0)
                continue;
            if (!strcmp(r->type[i], "drain.rejected"))
                return str(r->data[i], "reason");
            if (!strcmp(r->type[i], "drain.started"))
                return "";
        }
        cr_assert_lt(sd_mono_ms(), deadline, "no answer to %s", request);
        evs_free(r);
        usleep(250000);
    }
}

/* The peer rule (issue #15): no drain, of a site or of one edge, leaves
 * the pair of sites without an edge taking calls. With no edge of site1,
 * site2 cannot drain, nor its last edge; one edge of two can (scaling in).
 * With site2 draining, site1's last edge cannot drain; with a second edge
 * of site1 up, one of them can. Every refusal leaves the drains table as
 * it was. */
Test(orchestrator, the_peer_rule_keeps_an_edge_taking_calls_in_one_of_the_two_sites, .timeout = 240)
{
    struct env e;
    struct proc orch, edge_2a, edge_2b, edge_1a, edge_1b;
    struct evs r;
    char req[8][SD_EVENT_ID_LEN + 1];
    const char *site1_args[] = {"drain", "start", "--site", "site1", NULL};
    char out[256];
    int64_t deadline;

    env_setup_alone(&e);
    snprintf(out, sizeof(out), "/tmp/sipdrain-drainctl-%.12s.out", e.prefix + 2);
    /* an agent on a call holds a drain of site2 open (no agent-state here) */
    sdt_pg_run(e.dsn, "INSERT INTO agents (agent_id, dn, site, state, call_id, version) VALUES"
                      " ('busy', '2001', 'site2', 'ready', 'c-1', 1)");
    edge_start(&e, &edge_2a, "edge-2a");
    edge_start(&e, &edge_2b, "edge-2b");
    orch_up(&e, &orch, "orch-1");
    wait_log(&orch, "partitions assigned");

    /* no edge of site1: site2 cannot drain */
    drain_start(&e, json_pack("{s:s}", "site", "site2"), req[0]);
    cr_expect_str_eq(answer_to(&e, req[0], &r), "peer_site_no_edge", "site2 with no site1 edge");
    evs_free(&r);
    /* one edge of two can (scaling in), and does */
    sdt_send_event(e.commands, "edge-2a", "drain.start",
                   json_pack("{s:s, s:i}", "edge", "edge-2a", "sip_timeout_s", 1), req[1]);
    cr_expect_str_eq(answer_to(&e, req[1], &r), "", "edge-2a of two");
    evs_free(&r);
    cr_expect_eq(exit_code(edge_2a.pid, WAIT_MS), 0, "edge-2a stopped by its drain");
    /* the last one cannot */
    sdt_send_event(e.commands, "edge-2b", "drain.start", json_pack("{s:s}", "edge", "edge-2b"),
                   req[2]);
    cr_expect_str_eq(answer_to(&e, req[2], &r), "peer_site_no_edge", "edge-2b, the last");
    evs_free(&r);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drains"), 1, "edge-2a's drain only");

    /* an edge of site1 up: site2 drains (the busy agent keeps it open) */
    edge_start_at(&e, &edge_1a, "edge-1a", "site1", 0);
    drain_start(&e, json_pack("{s:s}", "site", "site2"), req[3]);
    cr_expect_str_eq(answer_to(&e, req[3], &r), "", "site2 with edge-1a up");
    evs_free(&r);
    /* site1's last edge cannot drain now; nor can site1 */
    sdt_send_event(e.commands, "edge-1a", "drain.start", json_pack("{s:s}", "edge", "edge-1a"),
                   req[4]);
    cr_expect_str_eq(answer_to(&e, req[4], &r), "peer_site_draining", "edge-1a, site2 draining");
    evs_free(&r);
    cr_expect_eq(drainctl(&e, site1_args, out, WAIT_MS), 1, "%s", out);
    cr_expect(sdt_file_has(out, "rejected: peer_site_draining"), "%s", out);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drains WHERE scope = 'edge'"
                                      " AND target = 'edge-1a'"),
                 0, "no drain of edge-1a");
    /* with edge-1b up too, edge-1a can go */
    edge_start_at(&e, &edge_1b, "edge-1b", "site1", 0);
    deadline = sd_mono_ms() + WAIT_MS;
    while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM edges WHERE site = 'site1'"
                                " AND state = 'active'") != 2) {
        cr_assert_lt(sd_mono_ms(), deadline, "edge-1b never active");
        usleep(100000);
    }
    sdt_send_event(e.commands, "edge-1a", "drain.start",
                   json_pack("{s:s, s:i}", "edge", "edge-1a", "sip_timeout_s", 1), req[5]);
    cr_expect_str_eq(answer_to(&e, req[5], &r), "", "edge-1a of two, site2 draining");
    evs_free(&r);
    cr_expect_eq(exit_code(edge_1a.pid, WAIT_MS), 0, "edge-1a stopped by its drain");
    /* and edge-1b, now the last, cannot */
    sdt_send_event(e.commands, "edge-1b", "drain.start", json_pack("{s:s}", "edge", "edge-1b"),
                   req[6]);
    cr_expect_str_eq(answer_to(&e, req[6], &r), "peer_site_draining", "edge-1b, the last");
    evs_free(&r);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drains"), 3,
                 "edge-2a, site2, edge-1a: nothing else");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM edges WHERE edge_id = 'edge-1b'"
                                      " AND state = 'active'"),
                 1, "edge-1b takes calls");

    kill(edge_1b.pid, SIGTERM);
    cr_expect_eq(exit_code(edge_1b.pid, WAIT_MS), 0);
    kill(edge_2b.pid, SIGKILL);
    sdt_wait(edge_2b.pid, WAIT_MS);
    kill(orch.pid, SIGTERM);
    cr_expect_eq(exit_code(orch.pid, WAIT_MS), 0);
}

/* Issue #15: drainctl believes that a drain ended only when PostgreSQL's
 * drains row says so. A forged drain.completed (and drain.cancelled) for
 * the running drain, sent by anyone who may write drain.events, leaves
 * drainctl drain start --wait waiting and saying why; the real cancel then
 * ends it with exit 1. Without SIPDRAIN_PG_DSN, --wait is refused (exit 2). */
Test(orchestrator, drainctl_believes_a_drain_ended_only_when_postgresql_says_so, .timeout = 180)
{
    struct env e;
    struct proc orch, edge_a;
    struct evs r;
    const char *args[] = {"drain", "start", "--site", "site2", "--wait", NULL};
    char out[256], path[1024], drain_id[SD_EVENT_ID_LEN + 1] = "";
    const char *envp[4];
    pid_t ctl;
    int at;

    env_setup(&e);
    snprintf(out, sizeof(out), "/tmp/sipdrain-drainctl-%.12s.out", e.prefix + 2);
    snprintf(path, sizeof(path), "%s/drainctl", getenv("SIPDRAIN_BIN_DIR"));
    /* an agent on a call holds the drain open (no agent-state here) */
    sdt_pg_run(e.dsn, "INSERT INTO agents (agent_id, dn, site, state, call_id, version) VALUES"
                      " ('busy', '2001', 'site2', 'ready', 'c-1', 1)");
    edge_start(&e, &edge_a, "edge-2a");
    orch_up(&e, &orch, "orch-1");
    wait_log(&orch, "partitions assigned");

    /* no database to confirm from: refused before anything is sent */
    envp[0] = e.env_brokers;
    envp[1] = e.env_prefix;
    envp[2] = "SIPDRAIN_PG_DSN="; /* not the one inherited from the test's environment */
    envp[3] = NULL;
    unlink(out);
    cr_expect_eq(exit_code(sdt_spawn(path, args, envp, out), WAIT_MS), 2, "--wait without PG");
    cr_expect(sdt_file_has(out, "SIPDRAIN_PG_DSN is not set"), "%s", out);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drains"), 0, "nothing sent");

    envp[2] = e.env_dsn;
    envp[3] = NULL;
    unlink(out);
    ctl = sdt_spawn(path, args, envp, out);
    evs_read(e.events, "drain.started", &r);
    at = find(&r, "drain.started", NULL);
    snprintf(drain_id, sizeof(drain_id), "%s", str(r.data[at], "drain_id"));
    evs_free(&r);
    for (int64_t deadline = sd_mono_ms() + WAIT_MS;
         sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drains WHERE phase = 'wait_agents'") != 1;) {
        cr_assert_lt(sd_mono_ms(), deadline, "the drain never waited for the agent");
        usleep(50000);
    }
    /* forged: the drain is said to be over; its row says wait_agents. Sent
     * with the orchestrator's own Kafka login: the only one the ACLs let
     * write drain.events (a stolen password, a bug, a replay). */
    sdt_kafka_as("sipdrain-orchestrator");
    sdt_send_event_from("drain-orchestrator/orch-1", e.events, "site2", "drain.completed",
                        json_pack("{s:s, s:s, s:s, s:b}", "drain_id", drain_id, "scope", "site",
                                  "site", "site2", "forced", 0),
                        NULL);
    sdt_send_event_from("drain-orchestrator/orch-1", e.events, "site2", "drain.cancelled",
                        json_pack("{s:s, s:s, s:s, s:s}", "drain_id", drain_id, "scope", "site",
                                  "site", "site2", "phase", "wait_agents"),
                        NULL);
    sdt_kafka_as(NULL);
    for (int64_t deadline = sd_mono_ms() + WAIT_MS;
         !sdt_file_has(out, "drain.cancelled for drain");) {
        cr_assert_lt(sd_mono_ms(), deadline, "drainctl said nothing of the forged events: %s", out);
        cr_assert_eq(waitpid(ctl, NULL, WNOHANG), 0, "drainctl exited on a forged event (%s)", out);
        usleep(100000);
    }
    cr_expect(sdt_file_has(out, "drain.completed for drain"), "%s", out);
    cr_expect(sdt_file_has(out, "ignored: PostgreSQL has that drain in phase wait_agents"), "%s",
              out);
    cr_expect_eq(waitpid(ctl, NULL, WNOHANG), 0, "drainctl still waits");
    /* the real cancel, the operator's, ends it: exit 1, the drain did not complete */
    sdt_kafka_as("sipdrain-operator");
    sdt_send_event(e.commands, "site2", "drain.cancel", json_pack("{s:s}", "site", "site2"), NULL);
    sdt_kafka_as(NULL);
    cr_expect_eq(exit_code(ctl, WAIT_MS), 1, "%s", out);
    cr_expect(sdt_file_has(out, "cancelled in phase wait_agents"), "%s", out);

    kill(edge_a.pid, SIGTERM);
    cr_expect_eq(exit_code(edge_a.pid, WAIT_MS), 0);
    kill(orch.pid, SIGTERM);
    cr_expect_eq(exit_code(orch.pid, WAIT_MS), 0);
}

/* SIPDRAIN_KAFKA_PROPERTIES (issue #15, librdkafka's security settings from
 * configuration) reaches every program: one of sipdrain's own settings
 * stops the orchestrator at start (exit 2, naming it); drainctl with
 * security.protocol=SSL cannot talk to this SASL_PLAINTEXT broker (exit 3,
 * nothing sent) and with its own login plus a harmless property starts a
 * drain as ever; an edge given a wrong SASL password logs how many
 * properties it took, never the password, and gets nothing from Kafka. */
Test(orchestrator, kafka_properties_reach_every_program_and_no_log_shows_a_secret, .timeout = 180)
{
    struct env e;
    struct proc orch, bad_orch, edge;
    char out[256], env_bad[128], env_ssl[128], env_ok[128], env_sasl[128], sip_url[64];
    char path_bad[64], path_ssl[64], path_ok[64], path_sasl[64];
    const char *bad_extra[] = {env_bad, NULL}, *sasl_extra[8];
    const char *args[] = {"drain", "start", "--site", "site2", NULL};
    const char *envp[5];
    char bin[1024];
    FILE *f;

    env_setup(&e);
    snprintf(out, sizeof(out), "/tmp/sipdrain-drainctl-%.12s.out", e.prefix + 2);
    snprintf(bin, sizeof(bin), "%s/drainctl", getenv("SIPDRAIN_BIN_DIR"));
    snprintf(path_bad, sizeof(path_bad), "/tmp/sd-props-bad-%.12s", e.prefix + 2);
    snprintf(path_ssl, sizeof(path_ssl), "/tmp/sd-props-ssl-%.12s", e.prefix + 2);
    snprintf(path_ok, sizeof(path_ok), "/tmp/sd-props-ok-%.12s", e.prefix + 2);
    snprintf(path_sasl, sizeof(path_sasl), "/tmp/sd-props-sasl-%.12s", e.prefix + 2);
    f = fopen(path_bad, "w");
    fputs("socket.keepalive.enable=true\nacks=0\n", f);
    fclose(f);
    f = fopen(path_ssl, "w");
    fputs("security.protocol=SSL\n", f);
    fclose(f);
    {
        char cmd[1200];
        snprintf(cmd, sizeof(cmd), "cp %s %s && echo socket.keepalive.enable=true >>%s",
                 sdt_kafka_props("sipdrain-operator"), path_ok, path_ok);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
    }
    f = fopen(path_sasl, "w");
    fputs("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
          "sasl.username=sip-edge\nsasl.password=hunter2-never-logged\n",
          f);
    fclose(f);
    snprintf(env_bad, sizeof(env_bad), "SIPDRAIN_KAFKA_PROPERTIES=%s", path_bad);
    snprintf(env_ssl, sizeof(env_ssl), "SIPDRAIN_KAFKA_PROPERTIES=%s", path_ssl);
    snprintf(env_ok, sizeof(env_ok), "SIPDRAIN_KAFKA_PROPERTIES=%s", path_ok);
    snprintf(env_sasl, sizeof(env_sasl), "SIPDRAIN_KAFKA_PROPERTIES=%s", path_sasl);

    /* sipdrain's own setting: exit 2 at start, saying which */
    start(&e, &bad_orch, "drain-orchestrator", "orch-bad", bad_extra);
    cr_expect_eq(exit_code(bad_orch.pid, WAIT_MS), 2);
    cr_expect(sdt_file_has(bad_orch.log, ":2: acks is sipdrain's own setting"), "%s", bad_orch.log);

    orch_up(&e, &orch, "orch-1");
    wait_log(&orch, "partitions assigned");
    /* drainctl over SSL to a SASL_PLAINTEXT listener: no Kafka, nothing sent */
    envp[0] = e.env_brokers;
    envp[1] = e.env_prefix;
    envp[2] = e.env_dsn;
    envp[3] = env_ssl;
    envp[4] = NULL;
    unlink(out);
    cr_expect_eq(exit_code(sdt_spawn(bin, args, envp, out), WAIT_MS), 3,
                 "SSL to SASL_PLAINTEXT (%s)", out);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM drains"), 0, "nothing sent");
    /* the operator's login and a harmless property: the drain starts */
    envp[3] = env_ok;
    unlink(out);
    cr_expect_eq(exit_code(sdt_spawn(bin, args, envp, out), WAIT_MS), 0, "%s", out);
    cr_expect(sdt_file_has(out, "of site site2 started"), "%s", out);

    /* an edge with a wrong SASL password: counted in its log, never shown */
    sasl_extra[0] = "SIPDRAIN_EDGE_ID=edge-2s";
    sasl_extra[1] = "SIPDRAIN_SITE=site2";
    sasl_extra[2] = env_sasl;
    snprintf(sip_url, sizeof(sip_url), "SIPDRAIN_SIP_URL=sip:127.0.0.1:%d", sdt_free_port());
    sasl_extra[3] = sip_url;
    sasl_extra[4] = NULL;
    start(&e, &edge, "sip-edge", "edge-2s", sasl_extra);
    wait_log(&edge, "kafka properties for every client");
    cr_expect(sdt_file_has(edge.log, "count=4"), "%s", edge.log);
    sleep(3); /* its Kafka clients try, and fail, to log in meanwhile */
    cr_expect(!sdt_file_has(edge.log, "hunter2"), "the password in %s", edge.log);
    cr_expect(!sdt_file_has(edge.log, "partitions assigned"), "wrong password let in (%s)",
              edge.log);
    kill(edge.pid, SIGKILL);
    sdt_wait(edge.pid, WAIT_MS);
    kill(orch.pid, SIGTERM);
    cr_expect_eq(exit_code(orch.pid, WAIT_MS), 0);
    unlink(path_bad);
    unlink(path_ssl);
    unlink(path_ok);
    unlink(path_sasl);
}
