/* test_agent_state - build/bin/agent-state against the real PostgreSQL and
 * Kafka of tests/scripts (fixture "stack"). Each test has its own database
 * and topic prefix; commands and call events are produced to Kafka, and the
 * answers are read back from Kafka and the agents table. Every event the
 * service publishes is checked against schemas/events. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sipdrain/event.h"
#include "support.h"

#define WAIT_MS 30000

struct as_env {
    char dsn[512];
    char prefix[64];
    char commands[160], calls[160], events[160], control[160], deadletter[160];
    char env_dsn[600], env_brokers[300], env_prefix[120];
    char log[256];
};

static void topic_name(char *dst, size_t size, const struct as_env *e, const char *base)
{
    snprintf(dst, size, "%s%s", e->prefix, base);
}

/* A database with site1 <-> site2 (peers) and site3 (no peer), and a topic
 * prefix of its own. */
static void env_setup(struct as_env *e)
{
    char as_dsn[512];

    memset(e, 0, sizeof(*e));
    sdt_db_create(e->dsn, sizeof(e->dsn));
    sdt_prefix_create(e->prefix, sizeof(e->prefix));
    topic_name(e->commands, sizeof(e->commands), e, "sipdrain.agent.commands");
    topic_name(e->calls, sizeof(e->calls), e, "sipdrain.call.events");
    topic_name(e->events, sizeof(e->events), e, "sipdrain.agent.events");
    topic_name(e->control, sizeof(e->control), e, "sipdrain.edge.control");
    topic_name(e->deadletter, sizeof(e->deadletter), e, "sipdrain.deadletter");
    /* agent-state logs in as its own role (migration 0005) */
    sdt_dsn_as(e->dsn, "sipdrain_agent_state", as_dsn, sizeof(as_dsn));
    snprintf(e->env_dsn, sizeof(e->env_dsn), "SIPDRAIN_PG_DSN=%s", as_dsn);
    snprintf(e->env_brokers, sizeof(e->env_brokers), "SIPDRAIN_KAFKA_BROKERS=%s", sdt_brokers());
    snprintf(e->env_prefix, sizeof(e->env_prefix), "SIPDRAIN_TOPIC_PREFIX=%s", e->prefix);
    snprintf(e->log, sizeof(e->log), "/tmp/sipdrain-agent-state-%.12s.log", e->prefix + 2);
    sdt_pg_run(e->dsn, "INSERT INTO sites (site_id, peer) VALUES ('site1', 'site2'),"
                       " ('site2', 'site1'), ('site3', NULL)");
}

static pid_t as_start(struct as_env *e, const char *instance)
{
    static char bin[1024], inst[2][128];
    static int which;
    const char *dir = getenv("SIPDRAIN_BIN_DIR");
    const char *env[6];

    cr_assert_not_null(dir, "SIPDRAIN_BIN_DIR unset (set by CTest)");
    snprintf(bin, sizeof(bin), "%s/agent-state", dir);
    which = !which;
    snprintf(inst[which], sizeof(inst[which]), "SIPDRAIN_INSTANCE_ID=%s", instance);
    env[0] = e->env_dsn;
    env[1] = e->env_brokers;
    env[2] = e->env_prefix;
    env[3] = inst[which];
    env[4] = "SIPDRAIN_LOG_LEVEL=info";
    env[5] = NULL;
    return sdt_spawn(bin, NULL, env, e->log);
}

/* SIGTERM: the service stops cleanly (exit 0). */
static void as_stop(pid_t pid)
{
    int status;

    cr_assert_eq(kill(pid, SIGTERM), 0);
    status = sdt_wait(pid, 30000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "agent-state ended with status %d",
              status);
}

static void send_event(const char *topic, const char *key, const char *type, json_t *data, char *id)
{
    sdt_send_event(topic, key, type, data, id);
}

static void command(struct as_env *e, const char *agent, const char *type, json_t *data, char *id)
{
    json_object_set_new(data, "agent_id", json_string(agent));
    send_event(e->commands, agent, type, data, id);
}

static void login(struct as_env *e, const char *agent, const char *dn, const char *site,
                  const char *mode, int acw_timeout_s, bool workspace, char *id)
{
    command(e, agent, "agent.login",
            json_pack("{s:s, s:s, s:s, s:o, s:b}", "dn", dn, "site", site, "work_mode", mode,
                      "acw_timeout_s",
                      acw_timeout_s < 0 ? json_null() : json_integer(acw_timeout_s), "workspace",
                      workspace),
            id);
}

static void call_event(struct as_env *e, const char *agent, const char *type, const char *call,
                       int answered)
{
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "call_id", call, "agent_id", agent,
                          "dn", "2000", "edge", "edge-1a", "site", "site1", "direction", "inbound");
    if (!strcmp(type, "call.ended")) {
        json_object_set_new(d, "answered", json_boolean(answered));
        json_object_set_new(d, "duration_ms", json_integer(answered ? 1000 : 0));
        json_object_set_new(d, "end_cause", json_string(answered ? "caller_hangup" : "cancelled"));
    }
    send_event(e->calls, agent, type, d, NULL);
}

/* The published events, parsed: types[i] and data[i] (new references). */
struct evs {
    struct sdt_msgs msgs;
    size_t n;
    char type[256][SD_EVENT_TYPE_MAX];
    json_t *data[256];
};

/* Reads topic until want events arrived (or WAIT_MS); every one must pass
 * its schema. */
static struct evs *read_events(const char *topic, size_t want, int timeout_ms)
{
    struct evs *r = calloc(1, sizeof(*r));
    struct sd_err err = {0};

    cr_assert(want <= 256);
    r->msgs = sdt_consume(topic, want, timeout_ms);
    for (size_t i = 0; i < r->msgs.n; i++) {
        struct sd_event ev;
        cr_assert_eq(sd_event_parse(r->msgs.m[i].value, r->msgs.m[i].len, &ev, &err), 0, "%s",
                     err.text);
        snprintf(r->type[i], sizeof(r->type[i]), "%s", ev.type);
        r->data[i] = json_incref(ev.data);
        sd_event_clear(&ev);
    }
    r->n = r->msgs.n;
    if (r->n > 0)
        cr_expect_eq(sdt_validate_events(&r->msgs), 0, "an event failed its schema (see stderr)");
    return r;
}

static void evs_free(struct evs *r)
{
    for (size_t i = 0; i < r->n; i++)
        json_decref(r->data[i]);
    sdt_msgs_free(&r->msgs);
    free(r);
}

static const char *str(json_t *data, const char *key)
{
    json_t *v = json_object_get(data, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

static const char *ext(json_t *data, const char *key)
{
    return str(json_object_get(data, "extensions"), key);
}

/* The event answering request id (data.request_id), or -1. */
static int find_answer(const struct evs *r, const char *request_id)
{
    for (size_t i = 0; i < r->n; i++) {
        if (!strcmp(str(r->data[i], "request_id"), request_id))
            return (int)i;
    }
    return -1;
}

/* The index of the nth (0-based) event of type for agent, or -1. */
static int find_nth(const struct evs *r, const char *type, const char *agent, int nth)
{
    for (size_t i = 0; i < r->n; i++) {
        if (!strcmp(r->type[i], type) && !strcmp(str(r->data[i], "agent_id"), agent) && nth-- == 0)
            return (int)i;
    }
    return -1;
}

static void expect_agent_row(struct as_env *e, const char *agent, const char *where,
                             long expect_count)
{
    char sql[512];

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM agents WHERE agent_id = '%s' AND %s", agent,
             where);
    cr_expect_eq(sdt_pg_scalar(e->dsn, sql), expect_count, "agents row of %s: %s", agent, where);
}

/* Waits until the agent's row matches where (effects without an event). */
static void wait_row(struct as_env *e, const char *agent, const char *where)
{
    char sql[512];
    int64_t deadline = sd_mono_ms() + WAIT_MS;

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM agents WHERE agent_id = '%s' AND %s", agent,
             where);
    while (sdt_pg_scalar(e->dsn, sql) != 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "agents row of %s never matched %s", agent, where);
        usleep(50000);
    }
}

/* Waits for the first n events (commands and call events travel on two
 * topics: a call event is sent only once the login it needs is done). */
static void wait_events(struct as_env *e, size_t n)
{
    struct evs *r = read_events(e->events, n, WAIT_MS);

    cr_assert_eq(r->n, n, "got %zu events, want %zu", r->n, n);
    evs_free(r);
}

Test(agent_state, login_ready_not_ready_logout_each_answered_by_its_event, .timeout = 120)
{
    struct as_env e;
    char id_login[40], id_ready[40], id_again[40], id_nr[40], id_out[40];
    struct evs *r;
    pid_t pid;
    int i;

    env_setup(&e);
    pid = as_start(&e, "as-0");
    login(&e, "a1", "2001", "site1", "manual_in", 30, false, id_login);
    command(&e, "a1", "agent.ready", json_object(), id_ready);
    command(&e, "a1", "agent.ready", json_object(), id_again); /* answered, changes nothing */
    command(&e, "a1", "agent.not_ready", json_pack("{s:s}", "reason", "lunch"), id_nr);
    command(&e, "a1", "agent.logout", json_object(), id_out);
    r = read_events(e.events, 5, WAIT_MS);
    cr_assert_eq(r->n, 5, "got %zu events", r->n);

    i = find_answer(r, id_login);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(r->type[i], "EventAgentLogin");
    cr_expect_str_eq(str(r->data[i], "state"), "not_ready");
    cr_expect_str_eq(str(r->data[i], "dn"), "2001");
    cr_expect_str_eq(str(r->data[i], "site"), "site1");
    cr_expect_eq(json_integer_value(json_object_get(r->data[i], "acw_timeout_s")), 30);
    cr_expect_eq(json_integer_value(json_object_get(r->data[i], "version")), 1);

    i = find_answer(r, id_ready);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(r->type[i], "EventAgentReady");
    cr_expect_str_eq(str(r->data[i], "cause"), "agent_request");
    cr_expect_eq(json_integer_value(json_object_get(r->data[i], "version")), 2);
    i = find_answer(r, id_again);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(r->type[i], "EventAgentReady");
    cr_expect_eq(json_integer_value(json_object_get(r->data[i], "version")), 2,
                 "a Ready that changed nothing claims a new version");

    i = find_answer(r, id_nr);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(r->type[i], "EventAgentNotReady");
    cr_expect_str_eq(ext(r->data[i], "ReasonCode"), "lunch");

    i = find_answer(r, id_out);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(r->type[i], "EventAgentLogout");
    cr_expect_str_eq(str(r->data[i], "state"), "logged_out");
    cr_expect_eq(json_integer_value(json_object_get(r->data[i], "version")), 4);
    /* Same key, one producer: in order on one partition. */
    cr_expect_lt(find_nth(r, "EventAgentLogin", "a1", 0), find_nth(r, "EventAgentLogout", "a1", 0));
    evs_free(r);
    expect_agent_row(&e, "a1", "state = 'logged_out' AND version = 4 AND dn = '2001'", 1);
    as_stop(pid);
}

Test(agent_state, timed_acw_after_a_call_ends_in_ready_with_cause_acw_timeout, .timeout = 120)
{
    struct as_env e;
    struct evs *r;
    pid_t pid;
    int i;

    env_setup(&e);
    pid = as_start(&e, "as-0");
    login(&e, "a1", "2001", "site1", "acw", 2, false, NULL);
    command(&e, "a1", "agent.ready", json_object(), NULL);
    wait_events(&e, 2);
    call_event(&e, "a1", "call.offered", "call-1", 0);
    call_event(&e, "a1", "call.established", "call-1", 0);
    wait_row(&e, "a1", "call_id = 'call-1' AND state = 'ready'");
    /* While on the call: logout is refused (on_call). */
    command(&e, "a1", "agent.logout", json_object(), NULL);
    wait_events(&e, 3);
    call_event(&e, "a1", "call.ended", "call-1", 1);
    r = read_events(e.events, 5, WAIT_MS);
    cr_assert_eq(r->n, 5, "got %zu events", r->n);
    cr_expect_str_eq(r->type[2], "EventError");
    cr_expect_str_eq(str(r->data[2], "reason"), "on_call");
    cr_expect_str_eq(r->type[3], "EventAgentNotReady");
    cr_expect_str_eq(str(r->data[3], "state"), "acw");
    cr_expect_str_eq(str(r->data[3], "cause"), "after_call");
    cr_expect_str_eq(str(r->data[3], "call_id"), "call-1");
    cr_expect_eq(json_integer_value(
                     json_object_get(json_object_get(r->data[3], "extensions"), "WrapUpTime")),
                 2);
    cr_expect_neq(str(r->data[3], "acw_until")[0], '\0', "acw_until missing for timed ACW");
    i = 4;
    cr_expect_str_eq(r->type[i], "EventAgentReady");
    cr_expect_str_eq(str(r->data[i], "cause"), "acw_timeout");
    evs_free(r);
    expect_agent_row(&e, "a1", "state = 'ready' AND call_id IS NULL AND acw_until IS NULL", 1);
    as_stop(pid);
}

Test(agent_state, untimed_acw_waits_for_acw_complete, .timeout = 120)
{
    struct as_env e;
    char id_done[40];
    struct evs *r;
    pid_t pid;
    int i;

    env_setup(&e);
    pid = as_start(&e, "as-0");
    login(&e, "a1", "2001", "site1", "acw", -1, false, NULL);
    wait_events(&e, 1);
    call_event(&e, "a1", "call.offered", "call-1", 0);
    call_event(&e, "a1", "call.ended", "call-1", 1);
    r = read_events(e.events, 2, WAIT_MS);
    cr_assert_eq(r->n, 2);
    cr_expect_str_eq(r->type[1], "EventAgentNotReady");
    cr_expect_str_eq(str(r->data[1], "state"), "acw");
    cr_expect_str_eq(ext(r->data[1], "WrapUpTime"), "untimed");
    cr_expect_null(json_object_get(r->data[1], "acw_until"));
    evs_free(r);
    /* Untimed: nothing happens by itself (well past any ACW tick). */
    r = read_events(e.events, 3, 2500);
    cr_expect_eq(r->n, 2, "an event came by itself in untimed ACW");
    evs_free(r);
    command(&e, "a1", "agent.acw_complete", json_object(), id_done);
    r = read_events(e.events, 3, WAIT_MS);
    cr_assert_eq(r->n, 3);
    i = find_answer(r, id_done);
    cr_assert_eq(i, 2);
    cr_expect_str_eq(r->type[i], "EventAgentReady");
    cr_expect_str_eq(str(r->data[i], "cause"), "acw_complete");
    evs_free(r);
    as_stop(pid);
}

Test(agent_state, after_call_rules_for_auto_in_and_manual_in_and_unanswered_calls, .timeout = 120)
{
    struct as_env e;
    struct evs *r;
    pid_t pid;
    int i;

    env_setup(&e);
    pid = as_start(&e, "as-0");
    login(&e, "auto", "2001", "site1", "auto_in", 10, false, NULL);
    login(&e, "manual", "2002", "site1", "manual_in", 10, false, NULL);
    wait_events(&e, 2);
    call_event(&e, "auto", "call.offered", "c-auto", 0);
    call_event(&e, "auto", "call.ended", "c-auto", 1);
    call_event(&e, "manual", "call.offered", "c-manual-1", 0);
    call_event(&e, "manual", "call.ended", "c-manual-1", 0); /* unanswered: no event */
    call_event(&e, "manual", "call.offered", "c-manual-2", 0);
    call_event(&e, "manual", "call.ended", "c-manual-2", 1);
    r = read_events(e.events, 4, WAIT_MS);
    cr_assert_eq(r->n, 4, "got %zu", r->n);
    i = find_nth(r, "EventAgentLogin", "auto", 0);
    cr_expect_str_eq(str(r->data[i], "state"), "ready", "auto_in logs in Ready");
    i = find_nth(r, "EventAgentReady", "auto", 0);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(str(r->data[i], "cause"), "after_call");
    i = find_nth(r, "EventAgentNotReady", "manual", 0);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(str(r->data[i], "cause"), "after_call");
    cr_expect_str_eq(str(r->data[i], "call_id"), "c-manual-2");
    cr_expect_eq(find_nth(r, "EventAgentNotReady", "manual", 1), -1);
    evs_free(r);
    r = read_events(e.events, 5, 1500);
    cr_expect_eq(r->n, 4, "the unanswered call produced an event");
    evs_free(r);
    expect_agent_row(&e, "manual", "state = 'not_ready' AND call_id IS NULL", 1);
    expect_agent_row(&e, "auto", "state = 'ready' AND ready_since IS NOT NULL", 1);
    as_stop(pid);
}

/* Issue #16: a route-point call a Ready agent did not take (call.ended with
 * route_point, unanswered, end_cause no_answer) sets it NotReady, cause
 * no_answer; the same without route_point (a direct call) and a caller's
 * CANCEL change nothing; the queue's own events (call.queued,
 * call.dequeued) are no agent's business: skipped, not dead-lettered. */
Test(agent_state, a_route_point_call_not_taken_sets_the_agent_not_ready_no_answer, .timeout = 120)
{
    struct as_env e;
    struct evs *r;
    json_t *d;
    pid_t pid;
    int i;

    env_setup(&e);
    pid = as_start(&e, "as-0");
    login(&e, "rona", "2001", "site1", "auto_in", 10, false, NULL);
    login(&e, "direct", "2002", "site1", "auto_in", 10, false, NULL);
    wait_events(&e, 2);
    send_event(e.calls, "7000", "call.queued",
               json_pack("{s:s, s:s, s:s, s:s, s:i}", "call_id", "q-1", "edge", "edge-1a", "site",
                         "site1", "route_point", "7000", "max_wait_s", 120),
               NULL);
    call_event(&e, "rona", "call.offered", "c-rona", 0);
    d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:s, s:i, s:s}", "call_id", "c-rona",
                  "agent_id", "rona", "dn", "2001", "edge", "edge-1a", "site", "site1", "direction",
                  "inbound", "answered", 0, "duration_ms", 0, "end_cause", "no_answer",
                  "sip_status", 487, "route_point", "7000");
    send_event(e.calls, "rona", "call.ended", d, NULL);
    call_event(&e, "direct", "call.offered", "c-direct", 0);
    call_event(&e, "direct", "call.ended", "c-direct", 0); /* a caller's CANCEL */
    r = read_events(e.events, 3, WAIT_MS);
    cr_assert_eq(r->n, 3, "got %zu", r->n);
    i = find_nth(r, "EventAgentNotReady", "rona", 0);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(str(r->data[i], "cause"), "no_answer");
    evs_free(r);
    r = read_events(e.events, 4, 1500);
    cr_expect_eq(r->n, 3, "the direct call's end changed nothing");
    evs_free(r);
    expect_agent_row(&e, "rona", "state = 'not_ready' AND call_id IS NULL", 1);
    expect_agent_row(&e, "direct", "state = 'ready' AND call_id IS NULL", 1);
    {
        struct sdt_msgs dl = sdt_consume(e.deadletter, 1, 1500);
        cr_expect_eq(dl.n, 0, "call.queued skipped, not dead-lettered");
        sdt_msgs_free(&dl);
    }
    as_stop(pid);
}

Test(agent_state, timed_acw_expiring_while_down_fires_once_after_restart, .timeout = 180)
{
    struct as_env e;
    struct evs *r;
    pid_t pid;

    env_setup(&e);
    pid = as_start(&e, "as-0");
    login(&e, "a1", "2001", "site1", "acw", 2, false, NULL);
    wait_events(&e, 1);
    call_event(&e, "a1", "call.offered", "call-1", 0);
    call_event(&e, "a1", "call.ended", "call-1", 1);
    r = read_events(e.events, 2, WAIT_MS);
    cr_assert_eq(r->n, 2);
    cr_expect_str_eq(str(r->data[1], "state"), "acw");
    evs_free(r);
    /* Down before the ACW ends (killed: no clean shutdown), up after. */
    cr_assert_eq(kill(pid, SIGKILL), 0);
    sdt_wait(pid, 10000);
    expect_agent_row(&e, "a1", "state = 'acw'", 1);
    sleep(3);
    expect_agent_row(&e, "a1", "state = 'acw' AND acw_until < now()", 1);
    pid = as_start(&e, "as-0");
    r = read_events(e.events, 3, WAIT_MS);
    cr_assert_eq(r->n, 3);
    cr_expect_str_eq(r->type[2], "EventAgentReady");
    cr_expect_str_eq(str(r->data[2], "cause"), "acw_timeout");
    evs_free(r);
    /* Once: a second restart adds nothing. */
    as_stop(pid);
    pid = as_start(&e, "as-0");
    r = read_events(e.events, 4, 3000);
    cr_expect_eq(r->n, 3, "the ACW expiry was published %zu times", r->n - 2);
    evs_free(r);
    expect_agent_row(&e, "a1", "state = 'ready' AND version = 4", 1);
    as_stop(pid);
}

Test(agent_state, draining_site_refuses_ready_make_call_and_login_with_graceful_shutdown,
     .timeout = 120)
{
    struct as_env e;
    char id_ready[40], id_call[40], id_login[40], id_nr[40], id_flag[40];
    struct evs *r;
    pid_t pid;
    int i;

    env_setup(&e);
    pid = as_start(&e, "as-0");
    login(&e, "a1", "2001", "site2", "manual_in", 10, false, NULL);
    login(&e, "a3", "2003", "site1", "manual_in", 10, false, NULL);
    r = read_events(e.events, 2, WAIT_MS);
    cr_assert_eq(r->n, 2);
    evs_free(r);
    sdt_pg_run(e.dsn, "INSERT INTO registrations (dn, contact, edge_id, expires_at) VALUES"
                      " ('2001', 'sip:2001@127.0.0.1:5070', 'edge-2a', now() + interval '1 hour')");
    sdt_pg_run(e.dsn, "INSERT INTO drains (drain_id, scope, target, site, phase) VALUES"
                      " (gen_random_uuid(), 'site', 'site2', 'site2', 'wait_calls')");
    command(&e, "a1", "agent.ready", json_object(), id_ready);
    command(&e, "a1", "agent.make_call", json_pack("{s:s}", "destination", "+4930123"), id_call);
    command(&e, "a1", "agent.not_ready", json_object(), id_nr); /* still allowed */
    login(&e, "a2", "2002", "site2", "manual_in", 10, false, id_login);
    /* The agent's own drain flag, at a site without a drain row. */
    sdt_pg_run(e.dsn, "UPDATE agents SET drain = true WHERE agent_id = 'a3'");
    command(&e, "a3", "agent.ready", json_object(), id_flag);
    r = read_events(e.events, 7, WAIT_MS);
    cr_assert_eq(r->n, 7, "got %zu", r->n);
    const char *refused[] = {id_ready, id_call, id_login, id_flag};
    for (size_t k = 0; k < 4; k++) {
        i = find_answer(r, refused[k]);
        cr_assert_geq(i, 0);
        cr_expect_str_eq(r->type[i], "EventError");
        cr_expect_str_eq(str(r->data[i], "reason"), "graceful_shutdown");
    }
    i = find_answer(r, id_call);
    cr_expect_str_eq(str(r->data[i], "command"), "agent.make_call");
    i = find_answer(r, id_nr);
    cr_expect_str_eq(r->type[i], "EventAgentNotReady");
    evs_free(r);
    /* No call was attempted. */
    r = read_events(e.control, 1, 1500);
    cr_expect_eq(r->n, 0, "call.originate sent for a draining site");
    evs_free(r);
    expect_agent_row(&e, "a2", "true", 0);
    as_stop(pid);
}

Test(agent_state, graceful_logout_migrates_workspace_agents_to_the_peer_site, .timeout = 120)
{
    struct as_env e;
    char id_ws[40], id_plain[40], id_nopeer[40];
    const char *drain = "c2d6a7e1-5f3b-4b8e-9d0a-6e4f2b1c8a93";
    struct evs *r;
    pid_t pid;
    int i;

    env_setup(&e);
    pid = as_start(&e, "as-0");
    login(&e, "ws", "2001", "site2", "auto_in", 10, true, NULL);
    login(&e, "plain", "2002", "site2", "manual_in", 10, false, NULL);
    login(&e, "lonely", "2003", "site3", "manual_in", 10, true, NULL);
    command(&e, "ws", "agent.logout",
            json_pack("{s:s, s:s}", "reason", "graceful_shutdown_logout", "drain_id", drain),
            id_ws);
    command(&e, "plain", "agent.logout",
            json_pack("{s:s, s:s}", "reason", "graceful_shutdown_logout", "drain_id", drain),
            id_plain);
    command(&e, "lonely", "agent.logout", json_pack("{s:s}", "reason", "graceful_shutdown_logout"),
            id_nopeer);
    r = read_events(e.events, 7, WAIT_MS);
    cr_assert_eq(r->n, 7, "got %zu", r->n);
    /* The workspace agent: logout at site2, then login at site1. */
    i = find_answer(r, id_ws);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(r->type[i], "EventAgentLogout");
    cr_expect_str_eq(str(r->data[i], "site"), "site2");
    cr_expect_str_eq(str(r->data[i], "drain_id"), drain);
    cr_expect_str_eq(ext(r->data[i], "ReasonCode"), "graceful_shutdown_logout");
    cr_expect_str_eq(r->type[i + 1], "EventAgentLogin");
    cr_expect_str_eq(str(r->data[i + 1], "agent_id"), "ws");
    cr_expect_str_eq(str(r->data[i + 1], "site"), "site1");
    cr_expect_str_eq(str(r->data[i + 1], "dn"), "2001");
    cr_expect_str_eq(str(r->data[i + 1], "work_mode"), "auto_in");
    cr_expect_str_eq(str(r->data[i + 1], "migrated_from"), "site2");
    cr_expect_str_eq(ext(r->data[i + 1], "ReasonCode"), "graceful_migration_login");
    cr_expect_null(json_object_get(r->data[i + 1], "request_id"));
    cr_expect_lt(json_integer_value(json_object_get(r->data[i], "version")),
                 json_integer_value(json_object_get(r->data[i + 1], "version")));
    /* Not workspace, or no peer: logged out only. */
    i = find_answer(r, id_plain);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(ext(r->data[i], "ReasonCode"), "graceful_shutdown_logout");
    cr_expect_eq(find_nth(r, "EventAgentLogin", "plain", 1), -1);
    i = find_answer(r, id_nopeer);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(r->type[i], "EventAgentLogout");
    cr_expect_eq(find_nth(r, "EventAgentLogin", "lonely", 1), -1);
    evs_free(r);
    expect_agent_row(&e, "ws", "site = 'site1' AND state = 'ready' AND NOT drain", 1);
    expect_agent_row(&e, "plain", "site = 'site2' AND state = 'logged_out'", 1);
    as_stop(pid);
}

Test(agent_state, make_call_originates_at_the_registering_edge_or_says_why_not, .timeout = 120)
{
    struct as_env e;
    char id_call[40], id_again[40], id_unreg[40];
    struct evs *r, *c;
    pid_t pid;
    int i;

    env_setup(&e);
    pid = as_start(&e, "as-0");
    sdt_pg_run(e.dsn, "INSERT INTO registrations (dn, contact, edge_id, expires_at) VALUES"
                      " ('2001', 'sip:2001@127.0.0.1:5070', 'edge-1b', now() + interval '1 hour'),"
                      " ('2002', 'sip:2002@127.0.0.1:5071', 'edge-1a', now() - interval '1 s')");
    login(&e, "a1", "2001", "site1", "manual_in", 10, false, NULL);
    login(&e, "a2", "2002", "site1", "manual_in", 10, false, NULL);
    command(&e, "a1", "agent.make_call", json_pack("{s:s}", "destination", "+4930123456"), id_call);
    command(&e, "a1", "agent.make_call", json_pack("{s:s}", "destination", "+4930123456"),
            id_again);
    command(&e, "a2", "agent.make_call", json_pack("{s:s}", "destination", "sip:x@example.com"),
            id_unreg);
    c = read_events(e.control, 1, WAIT_MS);
    cr_assert_eq(c->n, 1);
    cr_expect_str_eq(c->type[0], "call.originate");
    cr_expect_str_eq(c->msgs.m[0].key, "edge-1b");
    cr_expect_str_eq(str(c->data[0], "edge"), "edge-1b");
    cr_expect_str_eq(str(c->data[0], "dn"), "2001");
    cr_expect_str_eq(str(c->data[0], "destination"), "+4930123456");
    cr_expect_str_eq(str(c->data[0], "request_id"), id_call);
    cr_expect(sd_uuid_valid(str(c->data[0], "call_id")));
    r = read_events(e.events, 4, WAIT_MS);
    cr_assert_eq(r->n, 4);
    i = find_answer(r, id_again); /* reserved by the first call */
    cr_assert_geq(i, 0);
    cr_expect_str_eq(str(r->data[i], "reason"), "on_call");
    i = find_answer(r, id_unreg);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(str(r->data[i], "reason"), "not_registered");
    evs_free(r);
    /* The edge's call.rejected of that call releases the agent, and its
     * reason answers the make_call: EventError from agent-state, the only
     * writer of agent events. */
    send_event(e.calls, "a1", "call.rejected",
               json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s}", "call_id",
                         str(c->data[0], "call_id"), "agent_id", "a1", "edge", "edge-1b", "site",
                         "site1", "direction", "outbound", "reject_code", 503, "reason", "draining",
                         "error_reason", "graceful_shutdown", "detail", "the edge is draining",
                         "request_id", id_call),
               NULL);
    wait_row(&e, "a1", "call_id IS NULL");
    r = read_events(e.events, 5, WAIT_MS);
    cr_assert_eq(r->n, 5);
    i = find_answer(r, id_call);
    cr_assert_geq(i, 0, "no answer to the make_call the edge refused");
    cr_expect_str_eq(r->type[i], "EventError");
    cr_expect_str_eq(str(r->data[i], "command"), "call.originate");
    cr_expect_str_eq(str(r->data[i], "reason"), "graceful_shutdown");
    cr_expect_str_eq(str(r->data[i], "detail"), "the edge is draining");
    cr_expect_str_eq(str(r->data[i], "edge"), "edge-1b");
    cr_expect_str_eq(str(r->data[i], "call_id"), str(c->data[0], "call_id"));
    evs_free(r);
    evs_free(c);
    command(&e, "a1", "agent.logout", json_object(), id_call);
    r = read_events(e.events, 6, WAIT_MS);
    cr_assert_eq(r->n, 6);
    cr_expect_str_eq(r->type[find_answer(r, id_call)], "EventAgentLogout");
    evs_free(r);
    as_stop(pid);
}

Test(agent_state, bad_input_is_answered_or_dead_lettered_and_the_service_carries_on, .timeout = 120)
{
    struct as_env e;
    char id_unknown[40], id_site[40], id_state[40], id_after[40], reason[512];
    const char *bad[] = {
        "{not json",
        "{\"specversion\":\"1.0\",\"id\":\"8d0c8e63-3b5e-4a59-9f3e-1c6a0c7d9e10\",\"source\":"
        "\"t/x\",\"type\":\"agent.dance\",\"time\":\"2026-11-26T06:40:00.123Z\","
        "\"datacontenttype\":\"application/json\",\"data\":{\"agent_id\":\"a1\"}}",
        "{\"specversion\":\"1.0\",\"id\":\"8d0c8e63-3b5e-4a59-9f3e-1c6a0c7d9e11\",\"source\":"
        "\"t/x\",\"type\":\"agent.ready\",\"time\":\"2026-11-26T06:40:00.123Z\","
        "\"datacontenttype\":\"application/json\",\"data\":{}}",
        "{\"specversion\":\"1.0\",\"id\":\"8d0c8e63-3b5e-4a59-9f3e-1c6a0c7d9e12\",\"source\":"
        "\"t/x\",\"type\":\"agent.login\",\"time\":\"2026-11-26T06:40:00.123Z\","
        "\"datacontenttype\":\"application/json\",\"data\":{\"agent_id\":\"a1\",\"dn\":\"2001\","
        "\"site\":\"site1\",\"work_mode\":\"acw\",\"acw_timeout_s\":\"thirty\"}}",
    };
    const char *expect[] = {"invalid JSON", "unknown_type: agent.dance",
                            "invalid_data: data.agent_id: missing",
                            "invalid_data: data.acw_timeout_s"};
    size_t lens[4];
    struct evs *r;
    struct sdt_msgs d;
    pid_t pid;
    int i, status;

    env_setup(&e);
    pid = as_start(&e, "as-0");
    for (size_t k = 0; k < 4; k++)
        lens[k] = strlen(bad[k]);
    sdt_produce_raw(e.commands, (const void *const *)bad, lens, 4);
    command(&e, "ghost", "agent.ready", json_object(), id_unknown);
    login(&e, "a1", "2001", "nowhere", "manual_in", 10, false, id_site);
    login(&e, "a2", "2002", "site1", "manual_in", 10, false, NULL);
    command(&e, "a2", "agent.acw_complete", json_object(), id_state);
    d = sdt_consume(e.deadletter, 4, WAIT_MS);
    cr_assert_eq(d.n, 4, "dead letters: %zu", d.n);
    for (size_t k = 0; k < 4; k++) {
        bool found = false;
        for (size_t j = 0; j < 4; j++) {
            cr_assert_eq(sdt_header(&d.m[j], "sipdrain.reason", reason, sizeof(reason)), 0);
            if (strstr(reason, expect[k]) != NULL) {
                found = true;
                cr_expect_str_eq(d.m[j].value, bad[k], "the raw message is kept");
            }
        }
        cr_expect(found, "no dead letter with reason \"%s\"", expect[k]);
    }
    sdt_msgs_free(&d);
    r = read_events(e.events, 4, WAIT_MS);
    cr_assert_eq(r->n, 4);
    i = find_answer(r, id_unknown);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(str(r->data[i], "reason"), "unknown_agent");
    cr_expect_null(json_object_get(r->data[i], "version"));
    i = find_answer(r, id_site);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(str(r->data[i], "reason"), "unknown_site");
    i = find_answer(r, id_state);
    cr_assert_geq(i, 0);
    cr_expect_str_eq(str(r->data[i], "reason"), "invalid_state");
    cr_expect_str_eq(str(r->data[i], "state"), "not_ready");
    evs_free(r);
    cr_expect_eq(waitpid(pid, &status, WNOHANG), 0, "agent-state exited on bad input");
    command(&e, "a2", "agent.ready", json_object(), id_after);
    r = read_events(e.events, 5, WAIT_MS);
    cr_assert_eq(r->n, 5);
    cr_expect_str_eq(r->type[find_answer(r, id_after)], "EventAgentReady");
    evs_free(r);
    as_stop(pid);
}

/* Prints "applied=N" of instance inst from its "stopped" log line; -1 if absent. */
static long applied_by(const char *log, const char *inst)
{
    char line[2048], tag[64];
    long applied = -1;
    FILE *f = fopen(log, "r");

    snprintf(tag, sizeof(tag), "inst=%s ", inst);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        const char *p = strstr(line, "applied=");
        if (strstr(line, tag) != NULL && strstr(line, "\"stopped\"") != NULL && p != NULL)
            applied = strtol(p + 8, NULL, 10);
    }
    if (f != NULL)
        fclose(f);
    return applied;
}

Test(agent_state, two_instances_share_10000_commands_through_a_rebalance_exactly_once,
     .timeout = 300)
{
    enum { AGENTS = 2000, PER_AGENT = 5, N = AGENTS * PER_AGENT };
    static const char *const types[PER_AGENT] = {"agent.login", "agent.ready", "agent.not_ready",
                                                 "agent.ready", "agent.logout"};
    static char ids[N][SD_EVENT_ID_LEN + 1];
    struct as_env e;
    char **keys = calloc(N, sizeof(*keys));
    const void **values = calloc(N, sizeof(*values));
    size_t *lens = calloc(N, sizeof(*lens)), seen = 0;
    struct sdt_msgs out;
    struct sd_err err = {0};
    pid_t a, b;
    long applied_a, applied_b;

    env_setup(&e);
    /* Command k of agent i at position k * AGENTS + i: each agent's five
     * commands are spread over the whole burst. */
    for (int k = 0; k < PER_AGENT; k++) {
        for (int i = 0; i < AGENTS; i++) {
            size_t n = (size_t)k * AGENTS + (size_t)i;
            char agent[16], dn[16];
            json_t *d;
            struct sd_event ev;

            snprintf(agent, sizeof(agent), "r%04d", i);
            snprintf(dn, sizeof(dn), "5%04d", i);
            d = k == 0 ? json_pack("{s:s, s:s, s:s, s:s}", "agent_id", agent, "dn", dn, "site",
                                   "site1", "work_mode", "manual_in")
                       : json_pack("{s:s}", "agent_id", agent);
            cr_assert_eq(sd_event_init(&ev, "test/desktop", types[k], d, &err), 0);
            values[n] = sd_event_encode(&ev, &lens[n], &err);
            memcpy(ids[n], ev.id, sizeof(ids[n]));
            sd_event_clear(&ev);
            keys[n] = strdup(agent);
        }
    }
    a = as_start(&e, "as-a");
    sdt_produce_keyed(e.commands, (const char *const *)keys, values, lens, N / 2);
    /* The second instance joins while the first is in the middle of it; the
     * second half is sent once it has partitions, so it surely gets work. */
    while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM inbox") < N / 5)
        usleep(20000);
    b = as_start(&e, "as-b");
    {
        int64_t deadline = sd_mono_ms() + WAIT_MS;
        char line[2048];
        bool assigned = false;
        while (!assigned && sd_mono_ms() < deadline) {
            FILE *f = fopen(e.log, "r");
            while (f != NULL && fgets(line, sizeof(line), f) != NULL)
                assigned |= strstr(line, "inst=as-b ") && strstr(line, "partitions assigned");
            if (f != NULL)
                fclose(f);
            usleep(50000);
        }
        cr_assert(assigned, "instance b never got partitions");
    }
    sdt_produce_keyed(e.commands, (const char *const *)keys + N / 2, values + N / 2, lens + N / 2,
                      N - N / 2);
    out = sdt_consume(e.events, N, 120000);
    cr_assert_eq(out.n, N, "%zu events for %d commands", out.n, N);
    as_stop(a);
    as_stop(b);
    /* Both stopped cleanly, their outboxes drained: nothing more comes. */
    cr_expect_eq(sdt_topic_count(e.events), N, "events published: %ld", sdt_topic_count(e.events));
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM outbox"), 0);
    /* Every command answered once: each event's request_id is a command id,
     * and no id twice. */
    {
        char *seen_ids = calloc(N, 1);
        for (size_t m = 0; m < out.n; m++) {
            struct sd_event ev;
            const char *req;
            size_t lo = 0;
            cr_assert_eq(sd_event_parse(out.m[m].value, out.m[m].len, &ev, &err), 0);
            req = json_string_value(json_object_get(ev.data, "request_id"));
            cr_assert_not_null(req, "event without request_id: %s", out.m[m].value);
            for (lo = 0; lo < N && strcmp(ids[lo], req) != 0; lo++)
                ;
            cr_assert_lt(lo, N, "request_id %s is not one of the commands", req);
            cr_expect_eq(seen_ids[lo], 0, "command %s answered twice", req);
            cr_expect_str_neq(ev.type, "EventError", "refused: %s", out.m[m].value);
            seen_ids[lo] = 1;
            seen++;
            sd_event_clear(&ev);
        }
        free(seen_ids);
    }
    cr_expect_eq(seen, N);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM inbox"), N);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM agents"
                                      " WHERE state = 'logged_out' AND version = 5"),
                 AGENTS);
    applied_a = applied_by(e.log, "as-a");
    applied_b = applied_by(e.log, "as-b");
    cr_expect_gt(applied_a, 0, "instance a applied nothing");
    cr_expect_gt(applied_b, 0, "instance b applied nothing (no rebalance?)");
    cr_expect_eq(applied_a + applied_b, N, "a %ld + b %ld", applied_a, applied_b);
    sdt_msgs_free(&out);
    for (size_t n = 0; n < N; n++) {
        free(keys[n]);
        free((void *)values[n]);
    }
    free(keys);
    free(values);
    free(lens);
}

Test(agent_state, postgresql_restart_mid_stream_loses_and_doubles_nothing, .timeout = 300)
{
    enum { AGENTS = 200, PER_AGENT = 3, N = AGENTS * PER_AGENT };
    static const char *const types[PER_AGENT] = {"agent.login", "agent.ready", "agent.not_ready"};
    struct as_env e;
    pid_t as, sender;
    int status;
    int64_t deadline;

    env_setup(&e);
    as = as_start(&e, "as-0");
    /* A paced sender (its own process): about 3 s of commands. */
    sender = fork();
    cr_assert(sender >= 0);
    if (sender == 0) {
        for (int k = 0; k < PER_AGENT; k++) {
            for (int i = 0; i < AGENTS; i++) {
                char agent[16], dn[16];
                snprintf(agent, sizeof(agent), "p%03d", i);
                snprintf(dn, sizeof(dn), "8%03d", i);
                command(&e, agent, types[k],
                        k == 0 ? json_pack("{s:s, s:s, s:s}", "dn", dn, "site", "site1",
                                           "work_mode", "manual_in")
                               : json_object(),
                        NULL);
                usleep(5000);
            }
        }
        _exit(0);
    }
    deadline = sd_mono_ms() + 60000;
    while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM inbox") < N / 6) {
        cr_assert_lt(sd_mono_ms(), deadline, "commands are not being applied");
        usleep(50000);
    }
    cr_assert_eq(sdt_script("tests/scripts/pg-restart.sh >/dev/null"), 0);
    status = sdt_wait(sender, 120000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    deadline = sd_mono_ms() + 120000;
    while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM inbox") < N) {
        cr_assert_lt(sd_mono_ms(), deadline, "not every command applied after the restart");
        usleep(100000);
    }
    cr_expect_eq(waitpid(as, &status, WNOHANG), 0, "agent-state exited when PostgreSQL restarted");
    as_stop(as);
    cr_expect_eq(sdt_topic_count(e.events), N, "events: %ld for %d commands",
                 sdt_topic_count(e.events), N);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM agents"
                                      " WHERE state = 'not_ready' AND version = 3"),
                 AGENTS);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM outbox"), 0);
}

/* SIPDRAIN_HTTP_ADDR: /readyz while PostgreSQL answers, /metrics with the
 * agents by site and state and the inbox counters. */
Test(agent_state, metrics_count_agents_by_state_and_applied_events, .timeout = 120)
{
    struct as_env e;
    static char bin[1024], http[64];
    const char *dir = getenv("SIPDRAIN_BIN_DIR");
    const char *env[7];
    char body[16384];
    int port = sdt_free_port();
    int64_t deadline;
    pid_t pid;

    env_setup(&e);
    snprintf(bin, sizeof(bin), "%s/agent-state", dir);
    snprintf(http, sizeof(http), "SIPDRAIN_HTTP_ADDR=127.0.0.1:%d", port);
    env[0] = e.env_dsn;
    env[1] = e.env_brokers;
    env[2] = e.env_prefix;
    env[3] = "SIPDRAIN_INSTANCE_ID=as-http";
    env[4] = http;
    env[5] = "SIPDRAIN_LOG_LEVEL=info";
    env[6] = NULL;
    pid = sdt_spawn(bin, NULL, env, e.log);
    login(&e, "a1", "1001", "site1", "auto_in", -1, false, NULL);
    wait_events(&e, 1);
    deadline = sd_mono_ms() + WAIT_MS;
    while (sdt_http_get(port, "/metrics", body, sizeof(body)) != 200 ||
           strstr(body, "sipdrain_agents{site=\"site1\",state=\"ready\"} 1\n") == NULL) {
        cr_assert_lt(sd_mono_ms(), deadline, "no ready agent in /metrics: %s", body);
        usleep(100000);
    }
    cr_expect(strstr(body, "sipdrain_events_applied_total 1\n") != NULL, "%s", body);
    cr_expect(strstr(body, "# TYPE sipdrain_outbox_backlog gauge") != NULL, "%s", body);
    deadline = sd_mono_ms() + WAIT_MS; /* the login consumed: nothing left behind */
    while (sdt_http_get(port, "/metrics", body, sizeof(body)) != 200 ||
           strstr(body, "sipdrain_consumer_lag 0\n") == NULL) {
        cr_assert_lt(sd_mono_ms(), deadline, "no consumer lag 0 in /metrics: %s", body);
        usleep(100000);
    }
    cr_expect_eq(sdt_http_get(port, "/readyz", body, sizeof(body)), 200, "%s", body);
    cr_expect_eq(sdt_http_get(port, "/healthz", body, sizeof(body)), 200, "%s", body);
    as_stop(pid);
}
