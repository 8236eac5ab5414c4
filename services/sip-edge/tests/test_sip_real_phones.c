/* test_sip_real_phones - build/bin/sip-edge with a real SIP phone, baresip
 * (baresip_phone.h), on one side of the call and a SIPp scenario of
 * tests/e2e/sipp/ on the other, against the real Kafka and PostgreSQL of
 * tests/scripts. Each test asserts from the phone's own output (its call
 * lines and its SIP trace), from SIPp's checks (tests/e2e/sipp/README.md,
 * "What the scenarios check in SDP": the SDP baresip sent arrived) and
 * from the calls rows. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "baresip_phone.h"
#include "edge_harness.h"
#include "sipdrain/event.h"
#include "support.h"

/* The real agent-state of this test's database and topics. */
static pid_t agent_state_start(const struct edge_env *e, char *log, size_t size)
{
    static char env[4][600];
    const char *envp[] = {env[0],
                          env[1],
                          env[2],
                          env[3],
                          "SIPDRAIN_INSTANCE_ID=as-real-phones",
                          "SIPDRAIN_LOG_LEVEL=info",
                          NULL};
    char bin[1024];
    const char *dir = getenv("SIPDRAIN_BIN_DIR");

    cr_assert_not_null(dir);
    snprintf(bin, sizeof(bin), "%s/agent-state", dir);
    snprintf(env[0], sizeof(env[0]), "SIPDRAIN_PG_DSN=%s", e->as_dsn);
    snprintf(env[1], sizeof(env[1]), "SIPDRAIN_KAFKA_BROKERS=%s", sdt_brokers());
    snprintf(env[2], sizeof(env[2]), "SIPDRAIN_TOPIC_PREFIX=%s", e->prefix);
    snprintf(env[3], sizeof(env[3]), "SIPDRAIN_SITE=site2");
    snprintf(log, size, "/tmp/sipdrain-agent-state-%.12s.log", e->prefix + 2);
    unlink(log);
    return sdt_spawn(bin, NULL, envp, log);
}

/* Waits until the agents row of agent matches cond (SQL). */
static void wait_agent(const struct edge_env *e, const char *agent, const char *cond)
{
    char sql[512];
    int64_t deadline = sd_mono_ms() + WAIT_MS;

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM agents WHERE agent_id = '%s' AND %s", agent,
             cond);
    while (sdt_pg_scalar(e->dsn, sql) != 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "agent %s never had %s", agent, cond);
        usleep(50000);
    }
}

/* The agent desktop's login through agent-state: auto_in, so Ready at once
 * and again after each call. */
static void agent_login(const struct edge_env *e, const char *agent, const char *dn)
{
    char topic[160];

    snprintf(topic, sizeof(topic), "%ssipdrain.agent.commands", e->prefix);
    sdt_send_event(topic, agent, "agent.login",
                   json_pack("{s:s, s:s, s:s, s:s, s:n, s:b}", "agent_id", agent, "dn", dn, "site",
                             "site2", "work_mode", "auto_in", "acw_timeout_s", "workspace", 0),
                   NULL);
    wait_agent(e, agent, "state = 'ready'");
}

/* The edge stored the phone's REGISTER (dn -> a contact on its SIP port). */
static void wait_registered(const struct edge_env *e, const struct baresip *b, const char *dn)
{
    char sql[256];
    int64_t deadline = sd_mono_ms() + WAIT_MS;

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM registrations WHERE dn = '%s' AND contact LIKE '%%:%d%%'", dn,
             b->sip_port);
    while (sdt_pg_scalar(e->dsn, sql) < 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "baresip %s never registered (%s)", dn, b->log);
        usleep(50000);
    }
}

/* A token of this test for what one side puts in its SDP's s= line: name
 * and the test's random topic suffix. */
static void token(char *buf, size_t size, const struct edge_env *e, const char *name)
{
    snprintf(buf, size, "%s-%.12s", name, e->prefix + 2);
}

/* baresip with the DN's password registers (its own words: "registered
 * successfully", after the edge's 401); with a wrong one it is refused
 * (403, in its own output) and the edge stores nothing for it. */
Test(sip_real_phones, baresip_registers_with_its_password_and_is_refused_with_a_wrong_one,
     .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    struct baresip good, bad;
    struct baresip_opts o = {.user = "2001", .auto_answer = true, .name = "goodpw"};
    struct baresip_opts w = {
        .user = "2002", .auto_answer = true, .name = "badpw", .password = "not-the-password"};

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    o.registrar_port = w.registrar_port = p.port;
    baresip_start(&good, &o);
    wait_registered(&e, &good, "2001");
    cr_expect(baresip_wait(&good, BARESIP_REGISTERED, 1, WAIT_MS), "%s", good.log);
    cr_expect(baresip_count(&good, "SIP/2.0 401 Unauthorized") >= 1,
              "baresip was not challenged (%s)", good.log);
    baresip_start(&bad, &w);
    cr_assert(baresip_wait(&bad, "403 Forbidden", 1, WAIT_MS),
              "baresip with a wrong password: no 403 (%s)", bad.log);
    cr_expect_eq(baresip_count(&bad, BARESIP_REGISTERED), 0, "%s", bad.log);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM registrations WHERE dn = '2002'"), 0);
    cr_expect(sdt_file_has(p.log, "dn=2002 from=127.0.0.1:"), "%s", p.log);
    baresip_stop(&good, 5000);
    baresip_stop(&bad, 5000);
    kill(p.pid, SIGKILL);
}

/* A SIPp gateway calls DN 2001 through the edge; the agent's phone is
 * baresip, registered as 2001 and auto-answering, its agent logged in
 * through agent-state. The call is answered and hung up by the gateway;
 * then, with a second call in progress, the site is drained: the call
 * finishes normally, and the edge stops (exit 0) on edge.shutdown. */
Test(sip_real_phones, baresip_as_the_agent_phone_answers_a_call_and_one_through_a_site_drain,
     .timeout = 240)
{
    struct edge_env e;
    struct edge_proc p;
    struct baresip phone;
    struct sdp_keys sk;
    struct baresip_opts o = {.user = "2001", .auto_answer = true, .name = "agent"};
    const char *hold_short[] = {"hold_ms", "1000", NULL};
    const char *hold_long[] = {"hold_ms", "4000", NULL};
    const char *refused[] = {"retry_after", "30", NULL};
    char as_log[256], m_line[64], gw1[64], gw2[64], seen[80];
    pid_t as, gateway;
    int status;

    env_setup(&e);
    token(gw1, sizeof(gw1), &e, "gw1");
    token(gw2, sizeof(gw2), &e, "gw2");
    edge_start(&e, &p, "edge-2a", NULL);
    as = agent_state_start(&e, as_log, sizeof(as_log));
    agent_login(&e, "a1", "2001");
    o.registrar_port = p.port;
    baresip_start(&phone, &o);
    wait_registered(&e, &phone, "2001");
    cr_expect(baresip_wait(&phone, BARESIP_REGISTERED, 1, WAIT_MS),
              "baresip does not say it registered (%s)", phone.log);

    /* 1. A call answered by the phone itself; the gateway hangs up. The
     * gateway checks that the phone's SDP (its RTP port) reached it. */
    snprintf(m_line, sizeof(m_line), "m=audio %d", phone.rtp_port);
    cr_expect_eq(sdt_sipp("gateway_call", p.port, "2001", sdp_keys(&sk, gw1, m_line, hold_short)),
                 0, "the gateway: 200 with baresip's SDP (%s), BYE answered (%s)", m_line,
                 phone.log);
    cr_expect(baresip_wait(&phone, BARESIP_ANSWERING, 1, WAIT_MS), "baresip did not answer (%s)",
              phone.log);
    cr_expect(baresip_wait(&phone, BARESIP_ESTABLISHED, 1, WAIT_MS),
              "baresip: no \"Call established\" (%s)", phone.log);
    cr_expect(baresip_wait(&phone, BARESIP_TERMINATED, 1, WAIT_MS),
              "baresip: no \"Call ... terminated\" (%s)", phone.log);
    /* The gateway's SDP reached the phone: its session name is in the
     * INVITE baresip traced. */
    snprintf(seen, sizeof(seen), "s=%s\r", gw1);
    cr_expect_eq(baresip_count(&phone, seen), 1, "the gateway's offer in baresip's trace");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE agent_id = 'a1'"
                                      " AND state = 'ended' AND answered_at IS NOT NULL"
                                      " AND end_cause = 'caller_hangup'"),
                 1, "the first call's row");
    wait_agent(&e, "a1", "state = 'ready'"); /* agent-state: auto_in, Ready again */

    /* 2. A call in progress when the site drains: it goes on until the
     * gateway hangs up, a new call is refused meanwhile. */
    gateway = sdt_sipp_start("gateway_call", p.port, "2001", sdp_keys(&sk, gw2, m_line, hold_long));
    wait_established(&e, 1);
    drain(&e, "edge-2a", DRAIN_A, "site", NULL);
    wait_edge_state(&e, "edge-2a", "draining");
    cr_expect_eq(sdt_sipp("invite_refused_503", p.port, "2001", refused), 0,
                 "a new call while draining");
    cr_expect_eq(sdt_sipp_wait(gateway, WAIT_MS), 0, "the call in progress was disturbed");
    cr_expect(baresip_wait(&phone, BARESIP_ESTABLISHED, 2, WAIT_MS),
              "baresip: no second \"Call established\" (%s)", phone.log);
    cr_expect(baresip_wait(&phone, BARESIP_TERMINATED, 2, WAIT_MS),
              "baresip: no second \"Call ... terminated\" (%s)", phone.log);
    snprintf(seen, sizeof(seen), "s=%s\r", gw2);
    cr_expect_eq(baresip_count(&phone, seen), 1, "the second offer in baresip's trace");
    cr_expect_eq(baresip_count(&phone, BARESIP_ESTABLISHED), 2, "baresip: one call too many");
    wait_edge_state(&e, "edge-2a", "drained");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE agent_id = 'a1'"
                                      " AND state = 'ended' AND answered_at IS NOT NULL"
                                      " AND end_cause = 'caller_hangup'"),
                 2, "both calls answered and hung up by the caller");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls"), 2, "one call row too many");
    /* The phone goes first: its /quit un-REGISTERs, which the drained edge
     * refuses at once (with no registrar left baresip would wait out the
     * transaction, 32 s). */
    cr_expect_eq(baresip_stop(&phone, 10000), 0, "baresip's exit (%s)", phone.log);
    control(&e, "edge-2a", "edge.shutdown", json_pack("{s:s}", "drain_id", DRAIN_A));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0, "edge exit (%s)", p.log);
    cr_assert_eq(kill(as, SIGTERM), 0);
    status = sdt_wait(as, WAIT_MS);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "agent-state exit (%s)", as_log);
}

/* baresip calls DN 2001 through the edge (a gateway-side caller, not
 * registered), a SIPp phone registered as 2001 answers; baresip hangs up.
 * The phone checks that baresip's SDP (its RTP port) reached it; baresip's
 * trace shows the phone's answer. */
Test(sip_real_phones, baresip_as_the_caller_reaches_the_agent_through_the_edge_and_hangs_up,
     .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct baresip caller;
    struct sdp_keys sk;
    const struct baresip_opts o = {.user = "9001", .name = "caller"};
    char m_line[64], dial[128], ph[64], seen[80];
    pid_t phone;

    env_setup(&e);
    token(ph, sizeof(ph), &e, "phone");
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    baresip_start(&caller, &o);
    snprintf(m_line, sizeof(m_line), "m=audio %d", caller.rtp_port);
    phone = phone_start(&e, &p, "phone_answer", "2001", sdp_keys(&sk, ph, m_line, NULL));
    snprintf(dial, sizeof(dial), "/dial sip:2001@127.0.0.1:%d", p.port);
    baresip_command(&caller, dial);
    cr_assert(baresip_wait(&caller, BARESIP_ESTABLISHED, 1, WAIT_MS),
              "baresip: no \"Call established\" (%s)", caller.log);
    snprintf(seen, sizeof(seen), "s=%s\r", ph);
    cr_expect_eq(baresip_count(&caller, seen), 1, "the phone's answer in baresip's trace (%s)",
                 caller.log);
    wait_established(&e, 1);
    sleep(1);
    baresip_command(&caller, "/hangup");
    cr_expect(baresip_wait(&caller, BARESIP_TERMINATED, 1, WAIT_MS),
              "baresip: no \"Call ... terminated\" (%s)", caller.log);
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0,
                 "the phone: INVITE with baresip's SDP (%s), BYE from the edge", m_line);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE agent_id = 'a1'"
                                      " AND state = 'ended' AND answered_at IS NOT NULL"
                                      " AND end_cause = 'caller_hangup'"),
                 1, "the call's row");
    cr_expect_eq(baresip_stop(&caller, 10000), 0, "baresip's exit (%s)", caller.log);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* Issue #16 with a real caller: baresip dials route point 7000 while no
 * agent is Ready. It hears 182 Queued (its own trace), waits, and is
 * connected to the agent who becomes Ready 2 s later; the phone gets
 * baresip's SDP, baresip the phone's; call.dequeued says how long it
 * waited. */
Test(sip_real_phones, baresip_as_the_caller_waits_in_the_queue_then_reaches_the_agent,
     .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct baresip caller;
    struct sdp_keys sk;
    struct call_events ce;
    const struct baresip_opts o = {.user = "9002", .name = "caller"};
    const char *extra[] = {"SIPDRAIN_ROUTE_POINTS=7000", "SIPDRAIN_QUEUE_MAX_WAIT=60", NULL};
    char m_line[64], dial[128], ph[64], seen[80];
    int64_t deadline;
    long waited = -1;
    pid_t phone;

    env_setup(&e);
    token(ph, sizeof(ph), &e, "phone");
    edge_start(&e, &p, "edge-2a", extra);
    baresip_start(&caller, &o);
    snprintf(m_line, sizeof(m_line), "m=audio %d", caller.rtp_port);
    phone = phone_start(&e, &p, "phone_answer", "2001", sdp_keys(&sk, ph, m_line, NULL));
    snprintf(dial, sizeof(dial), "/dial sip:7000@127.0.0.1:%d", p.port);
    baresip_command(&caller, dial);
    cr_expect(baresip_wait(&caller, "SIP/2.0 182 Queued", 1, WAIT_MS),
              "baresip: no 182 Queued in its trace (%s)", caller.log);
    deadline = sd_mono_ms() + WAIT_MS;
    while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM waiting_calls") != 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "the call never waited");
        usleep(50000);
    }
    sleep(2);
    cr_expect_eq(baresip_count(&caller, BARESIP_ESTABLISHED), 0, "established before an agent");
    agent_ready(&e, "a1", "2001", 1);
    cr_assert(baresip_wait(&caller, BARESIP_ESTABLISHED, 1, WAIT_MS),
              "baresip: no \"Call established\" (%s)", caller.log);
    snprintf(seen, sizeof(seen), "s=%s\r", ph);
    cr_expect_eq(baresip_count(&caller, seen), 1, "the phone's answer in baresip's trace (%s)",
                 caller.log);
    wait_established(&e, 1);
    sleep(1);
    baresip_command(&caller, "/hangup");
    cr_expect(baresip_wait(&caller, BARESIP_TERMINATED, 1, WAIT_MS),
              "baresip: no \"Call ... terminated\" (%s)", caller.log);
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0,
                 "the phone: INVITE with baresip's SDP (%s), BYE from the edge", m_line);
    call_events_read(&e, &ce, 5); /* queued, dequeued, offered, established, ended */
    for (size_t i = 0; i < ce.n; i++) {
        if (!strcmp(ce.type[i], "call.dequeued"))
            waited = (long)json_integer_value(json_object_get(ce.data[i], "wait_ms"));
    }
    cr_expect_geq(waited, 2000, "call.dequeued: waited %ld ms", waited);
    call_events_free(&ce);
    cr_expect_eq(baresip_stop(&caller, 10000), 0, "baresip's exit (%s)", caller.log);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* The number after "key=" on the first line of file holding text; -1 if none. */
static long log_number(const char *file, const char *text, const char *key)
{
    FILE *f = fopen(file, "r");
    char line[2048];
    long v = -1;

    if (f == NULL)
        return -1;
    while (v < 0 && fgets(line, sizeof(line), f) != NULL) {
        const char *k;
        if (strstr(line, text) != NULL && (k = strstr(line, key)) != NULL)
            v = atol(k + strlen(key));
    }
    fclose(f);
    return v;
}

/* A network namespace of the test's own, joined to the host by a veth
 * pair (10.231.N.1 here, 10.231.N.2 there): a phone in it is reached
 * through a link the test can cut. A datagram sent while the namespace's
 * end is down is dropped without a word to the sender (no ICMP, no error):
 * the lost packets of a flaky network, unlike a closed port. */
struct lossy_link {
    char ns[32], veth[16], peer[16], host_ip[20], ns_ip[20];
};

static struct lossy_link link_of_test;

static void run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    rc = system(cmd);
    cr_assert_eq(rc, 0, "%s: exit %d", cmd, rc);
}

static void lossy_link_create(struct lossy_link *l)
{
    int n = (int)(getpid() % 250) + 1;

    snprintf(l->ns, sizeof(l->ns), "sipdrain-bye-%d", (int)getpid());
    snprintf(l->veth, sizeof(l->veth), "sdb%dh", (int)(getpid() % 100000));
    snprintf(l->peer, sizeof(l->peer), "sdb%dn", (int)(getpid() % 100000));
    snprintf(l->host_ip, sizeof(l->host_ip), "10.231.%d.1", n);
    snprintf(l->ns_ip, sizeof(l->ns_ip), "10.231.%d.2", n);
    run("ip netns add %s", l->ns);
    run("ip link add %s type veth peer name %s", l->veth, l->peer);
    run("ip link set %s netns %s", l->peer, l->ns);
    run("ip addr add %s/30 dev %s && ip link set %s up", l->host_ip, l->veth, l->veth);
    run("ip netns exec %s sh -c 'ip addr add %s/30 dev %s && ip link set %s up"
        " && ip link set lo up'",
        l->ns, l->ns_ip, l->peer, l->peer);
    /* The host knows the phone's link address for good: with its end down,
     * a lookup would fail in seconds and report the host unreachable (an
     * error, not a silence). tc's netem and classifiers are not in this
     * kernel; a link down is. */
    run("ip neigh replace %s lladdr $(ip netns exec %s cat /sys/class/net/%s/address) dev %s"
        " nud permanent",
        l->ns_ip, l->ns, l->peer, l->veth);
}

static void lossy_link_set(const struct lossy_link *l, bool up)
{
    run("ip netns exec %s ip link set %s %s", l->ns, l->peer, up ? "up" : "down");
}

/* Criterion's fini: the namespace and the veth go, whatever the test did. */
static void lossy_link_delete(void)
{
    char cmd[256];

    if (link_of_test.ns[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "ip link del %s 2>/dev/null; ip netns del %s 2>/dev/null",
             link_of_test.veth, link_of_test.ns);
    if (system(cmd) != 0) {
        /* nothing left to delete */
    }
    link_of_test.ns[0] = '\0';
}

/* Issue 12, point 1, with a real phone: baresip, the agent's phone, in a
 * network namespace of the test's, stops (SIGSTOP) while its call is up and
 * its link goes down, so the edge's BYE (the caller hung up) is lost; past
 * Timer F (T1 100 ms: 6.4 s) the edge sends it again in a new transaction,
 * in the dialog. The link comes back, baresip resumes, answers that BYE
 * 200 and says its call terminated; the edge logs the 200 and stops. (The
 * old edge sent that BYE out of the dialog: a phone answers 481 and keeps
 * its call up. A phone that was only stopped, its link up, would find the
 * first BYE's datagrams waiting in its socket and end the call on them.) */
Test(sip_real_phones,
     baresip_that_lost_the_first_bye_transaction_ends_its_call_on_the_bye_sent_again,
     .fini = lossy_link_delete, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct baresip agent;
    struct sdp_keys sk;
    struct baresip_opts o = {.user = "2001", .auto_answer = true, .name = "agent"};
    const char *extra[] = {"SIPDRAIN_SIP_T1_MS=100", "SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT=30",
                           NULL};
    const char *hold[] = {"hold_ms", "1500", NULL};
    char m_line[64], gw[64];
    int64_t deadline;
    pid_t gateway;

    lossy_link_create(&link_of_test);
    env_setup(&e);
    token(gw, sizeof(gw), &e, "gw");
    /* The edge listens on the host's end of the link only: its Via and
     * Contact are an address the phone reaches; the gateway (SIPp, on
     * loopback) sends there too. */
    edge_sip_host = link_of_test.host_ip;
    edge_start(&e, &p, "edge-2a", extra);
    edge_sip_host = NULL;
    agent_ready(&e, "a1", "2001", 10);
    o.registrar_port = p.port;
    o.netns = link_of_test.ns;
    o.addr = link_of_test.ns_ip;
    o.registrar_host = link_of_test.host_ip;
    baresip_start(&agent, &o);
    wait_registered(&e, &agent, "2001");
    snprintf(m_line, sizeof(m_line), "m=audio %d", agent.rtp_port);
    sdt_sipp_remote_host = link_of_test.host_ip;
    gateway = sdt_sipp_start("gateway_call", p.port, "2001", sdp_keys(&sk, gw, m_line, hold));
    sdt_sipp_remote_host = NULL;
    cr_assert(baresip_wait(&agent, BARESIP_ESTABLISHED, 1, WAIT_MS),
              "baresip: no \"Call established\" (%s)", agent.log);
    cr_assert_eq(kill(agent.pid, SIGSTOP), 0);
    lossy_link_set(&link_of_test, false);
    cr_expect_eq(sdt_sipp_wait(gateway, WAIT_MS), 0, "the gateway's call and its BYE");
    cr_assert_eq(kill(p.pid, SIGTERM), 0); /* the edge drains: its BYE wait begins */
    deadline = sd_mono_ms() + 20000;
    while (!sdt_file_has(p.log, "BYE sent again")) {
        cr_assert_lt(sd_mono_ms(), deadline, "no BYE sent again past Timer F (%s)", p.log);
        usleep(100000);
    }
    lossy_link_set(&link_of_test, true);
    cr_assert_eq(kill(agent.pid, SIGCONT), 0);
    cr_expect(baresip_wait(&agent, BARESIP_TERMINATED, 1, WAIT_MS),
              "baresip: its call did not end (%s)", agent.log);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0, "edge exit (%s)", p.log);
    {
        /* The edge's log: the BYE sent again was confirmed by a 200 (the
         * first BYE's CSeq is below it); baresip's trace: that BYE came in
         * and its 200 went out ("CSeq: N BYE" twice), the first never. */
        long first = log_number(p.log, "BYE unconfirmed", "cseq=");
        long first_status = log_number(p.log, "BYE unconfirmed", "status=");
        long again = log_number(p.log, "BYE confirmed", "cseq=");
        long status = log_number(p.log, "BYE confirmed", "status=");
        char cseq[64], cseq_first[64];
        snprintf(cseq, sizeof(cseq), "CSeq: %ld BYE", again);
        snprintf(cseq_first, sizeof(cseq_first), "CSeq: %ld BYE", first);
        cr_expect_eq(first_status, 408, "the first BYE transaction ended with %ld, not Timer F",
                     first_status);
        cr_expect_eq(status, 200, "the edge's BYE sent again: answered %ld (%s)", status, p.log);
        cr_expect_gt(again, first, "the BYE sent again has CSeq %ld, the first one %ld", again,
                     first);
        cr_expect_geq(baresip_count(&agent, cseq), 2,
                      "baresip's trace has no BYE %s and its 200 (%s)", cseq, agent.log);
        cr_expect_eq(baresip_count(&agent, cseq_first), 0,
                     "baresip got the first BYE (%s): it was not lost (%s)", cseq_first, agent.log);
        fprintf(stderr,
                "sip_real_phones: first BYE CSeq %ld lost (its transaction: %ld); BYE sent again"
                " CSeq %ld answered %ld;"
                " baresip: %d lines with \"%s\", %d with the first; call terminated: %d\n",
                first, first_status, again, status, baresip_count(&agent, cseq), cseq,
                baresip_count(&agent, cseq_first), baresip_count(&agent, BARESIP_TERMINATED));
    }
    baresip_stop(&agent, 3000);
}
