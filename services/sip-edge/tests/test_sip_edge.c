/* test_sip_edge - build/bin/sip-edge against real SIP peers (SIPp scenarios
 * of tests/e2e/sipp/), the real Kafka and PostgreSQL of tests/scripts.
 * Each test has its own database, topic prefix and loopback ports; it
 * asserts the SIP answers (SIPp's exit status: every check of the scenario
 * held) and the edges / registrations rows and edge.status events. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>

#include "edge_auth.h"
#include "edge_harness.h"
#include "sipdrain/event.h"
#include "support.h"

Test(sip_edge, site_drain_refuses_invites_options_and_register_then_stops_on_shutdown,
     .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    const char *keys[] = {"retry_after", "45", NULL};
    char states[256][16];
    size_t n;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    cr_expect_eq(sdt_sipp("options_200", p.port, "2001", NULL), 0, "OPTIONS while active");
    cr_expect_eq(sdt_sipp("register_ok", p.port, "2001", NULL), 0, "REGISTER while active");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM registrations WHERE dn = '2001'"
                                      " AND edge_id = 'edge-2a' AND expires_at > now()"),
                 1);
    wait_edge_state(&e, "edge-2a", "active");

    drain(&e, "edge-2a", DRAIN_A, "site", json_pack("{s:i}", "retry_after_s", 45));
    wait_edge_state(&e, "edge-2a", "drained"); /* no calls: the BYE wait has nothing to wait for */
    cr_expect_eq(sdt_sipp("options_503", p.port, "2001", NULL), 0, "OPTIONS while draining");
    cr_expect_eq(sdt_sipp("invite_refused_503", p.port, "2001", keys), 0,
                 "INVITE while draining: 503, Retry-After 45, Reason");
    cr_expect_eq(sdt_sipp("register_refused", p.port, "2002", keys), 0, "REGISTER while draining");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM registrations WHERE dn = '2002'"), 0);

    /* A repeated edge.drain changes nothing; edge.shutdown of that drain stops it. */
    drain(&e, "edge-2a", DRAIN_A, "site", NULL);
    control(&e, "edge-2a", "edge.shutdown", json_pack("{s:s}", "drain_id", DRAIN_A));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0, "sip-edge exit code (%s)", p.log);
    wait_edge_state(&e, "edge-2a", "stopped");
    n = statuses(&e, "edge-2a", states, 256);
    cr_expect_geq(n, 3, "edge.status events: %zu", n);
    cr_expect_str_eq(states[0], "active");
    /* Each phase is reported, also those a drain without calls passes in one step. */
    cr_expect(has_state(states, n, "draining"));
    cr_expect(has_state(states, n, "bye_wait"));
    cr_expect(has_state(states, n, "drained"));
    cr_expect(has_state(states, n, "stopping"));
    cr_expect_str_eq(states[n - 1], "stopped", "the last edge.status is %s", states[n - 1]);
    cr_expect(sdt_file_has(p.log, "repeated edge.drain ignored"));
}

/* A draining edge refuses a new INVITE before sofia-sip parses it (issue
 * #17; edge_fast.h, tools/sofia-sip/0006): statelessly, from the datagram,
 * with the refusal's headers and the request's own; a retransmission gets
 * the very same answer and counts again; the ACK of it gets nothing. */
Test(sip_edge, a_draining_edge_refuses_invites_statelessly_before_the_stack, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    static char addr[64];
    const char *extra[] = {addr, NULL};
    char invite[1024], ack[1024], a1[4096] = "", a2[4096] = "", tag[64] = "", body[16384];
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int http = sdt_free_port(), me, u = udp_socket_on("127.0.0.1", 2000, &me);
    ssize_t n1, n2, n3;
    int64_t deadline;

    snprintf(addr, sizeof(addr), "SIPDRAIN_HTTP_ADDR=127.0.0.1:%d", http);
    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    drain(&e, "edge-2a", DRAIN_A, "site", json_pack("{s:i}", "retry_after_s", 45));
    wait_edge_state(&e, "edge-2a", "drained");
    to.sin_port = htons((uint16_t)p.port);
    snprintf(invite, sizeof(invite),
             "INVITE sip:2001@127.0.0.1:%d SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:%d;rport;branch=z9hG4bK-fast-1\r\n"
             "From: <sip:gw@127.0.0.1:%d>;tag=gw-1\r\n"
             "To: <sip:2001@127.0.0.1:%d>\r\n"
             "Call-ID: fast-1@test\r\n"
             "CSeq: 7 INVITE\r\n"
             "Contact: <sip:gw@127.0.0.1:%d>\r\n"
             "Max-Forwards: 70\r\n"
             "Content-Length: 0\r\n\r\n",
             p.port, me, me, p.port, me);
    cr_assert_gt(sendto(u, invite, strlen(invite), 0, (struct sockaddr *)&to, sizeof(to)), 0);
    n1 = recv(u, a1, sizeof(a1) - 1, 0);
    cr_assert_gt(n1, 0, "no answer to the INVITE");
    a1[n1] = '\0';
    cr_assert_gt(sendto(u, invite, strlen(invite), 0, (struct sockaddr *)&to, sizeof(to)), 0);
    n2 = recv(u, a2, sizeof(a2) - 1, 0);
    cr_assert_gt(n2, 0, "no answer to the retransmitted INVITE");
    a2[n2] = '\0';
    cr_expect_str_eq(a2, a1, "a retransmission gets the same answer");
    cr_expect(strncmp(a1, "SIP/2.0 503 Service Unavailable\r\n", 33) == 0, "%s", a1);
    {
        char via[160];
        snprintf(via, sizeof(via),
                 "\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;rport=%d;branch=z9hG4bK-fast-1;"
                 "received=127.0.0.1\r\n",
                 me, me);
        cr_expect(strstr(a1, via) != NULL, "Via %s in %s", via, a1);
    }
    cr_expect(strstr(a1, "\r\nFrom: <sip:gw@127.0.0.1:") != NULL, "%s", a1);
    cr_expect(strstr(a1, "\r\nCall-ID: fast-1@test\r\nCSeq: 7 INVITE\r\n") != NULL, "%s", a1);
    cr_expect(strstr(a1, "\r\nRetry-After: 45\r\n") != NULL, "%s", a1);
    cr_expect(strstr(a1, "\r\nReason: SIP;cause=503;text=\"edge edge-2a is draining\"\r\n") != NULL,
              "%s", a1);
    cr_expect(strstr(a1, "\r\nContent-Length: 0\r\n\r\n") != NULL, "%s", a1);
    {
        const char *t = strstr(a1, ";tag=sdf");
        cr_assert_not_null(t, "the stateless path's To tag: %s", a1);
        snprintf(tag, sizeof(tag), "%.*s", (int)strcspn(t + 5, "\r"), t + 5);
    }
    /* its ACK: nothing comes back, and the edge keeps no transaction */
    snprintf(ack, sizeof(ack),
             "ACK sip:2001@127.0.0.1:%d SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:%d;rport;branch=z9hG4bK-fast-1\r\n"
             "From: <sip:gw@127.0.0.1:%d>;tag=gw-1\r\n"
             "To: <sip:2001@127.0.0.1:%d>;tag=%s\r\n"
             "Call-ID: fast-1@test\r\n"
             "CSeq: 7 ACK\r\n"
             "Max-Forwards: 70\r\n"
             "Content-Length: 0\r\n\r\n",
             p.port, me, me, p.port, tag);
    cr_assert_gt(sendto(u, ack, strlen(ack), 0, (struct sockaddr *)&to, sizeof(to)), 0);
    n3 = recv(u, a2, sizeof(a2) - 1, 0);
    cr_expect_lt(n3, 0, "an answer to the ACK: %.*s", (int)(n3 > 0 ? n3 : 0), a2);
    close(u);
    /* both INVITEs counted, as the stack's refusals are */
    deadline = sd_mono_ms() + WAIT_MS;
    while (sdt_http_get(http, "/metrics", body, sizeof(body)) != 200 ||
           strstr(body, "sipdrain_edge_invites_rejected_total{edge=\"edge-2a\",site=\"site2\","
                        "code=\"503\"} 2\n") == NULL) {
        cr_assert_lt(sd_mono_ms(), deadline, "not 2 rejections counted: %s", body);
        usleep(100000);
    }
    control(&e, "edge-2a", "edge.shutdown", json_pack("{s:s}", "drain_id", DRAIN_A));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* A drained edge reads up to 32 datagrams at once and answers refusals
 * before the SIP stack sees them (tools/sofia-sip/0007): a burst that
 * mixes INVITEs (refused there) with OPTIONS (answered by the stack) and a
 * datagram that is not SIP must still get every answer, once, in its own
 * dialog - those behind the first the stack takes wait for it in the
 * buffers. The edge is stopped (SIGSTOP) while the burst is sent, so it
 * finds all of it queued; the burst fits one read (25 datagrams), so no
 * later datagram wakes the edge for what is left. (The first version of
 * 0007 left the datagrams behind the STUN-like one unanswered here.) */
Test(sip_edge, a_burst_of_refusals_and_stack_requests_read_at_once_gets_every_answer,
     .timeout = 120)
{
    enum { N = 24 };
    struct edge_env e;
    struct edge_proc p;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int me, u = udp_socket_on("127.0.0.1", 3000, &me);
    int answers[N] = {0};
    char m[1024], a[4096];

    env_setup(&e);
    edge_start(&e, &p, "edge-2m", NULL);
    drain(&e, "edge-2m", DRAIN_A, "site", NULL);
    wait_edge_state(&e, "edge-2m", "drained");
    to.sin_port = htons((uint16_t)p.port);
    cr_assert_eq(kill(p.pid, SIGSTOP), 0);
    for (int i = 0; i < N; i++) {
        const char *method = i % 3 == 1 ? "OPTIONS" : "INVITE";
        int n = snprintf(m, sizeof(m),
                         "%s sip:2001@127.0.0.1:%d SIP/2.0\r\n"
                         "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-burst-%d\r\n"
                         "From: <sip:gw@127.0.0.1:%d>;tag=gw-%d\r\n"
                         "To: <sip:2001@127.0.0.1:%d>\r\n"
                         "Call-ID: burst-%d@test\r\n"
                         "CSeq: %d %s\r\n"
                         "Contact: <sip:gw@127.0.0.1:%d>\r\n"
                         "Max-Forwards: 70\r\n"
                         "Content-Length: 0\r\n\r\n",
                         method, p.port, me, i, me, i, p.port, i, 100 + i, method, me);
        cr_assert_eq(sendto(u, m, (size_t)n, 0, (struct sockaddr *)&to, sizeof(to)), n);
        if (i == N / 2) /* STUN's first byte, too short: sofia-sip refuses it */
            cr_assert_gt(sendto(u, "\x01\x02junk", 6, 0, (struct sockaddr *)&to, sizeof(to)), 0);
    }
    cr_assert_eq(kill(p.pid, SIGCONT), 0);
    for (int got = 0; got < N; got++) {
        ssize_t n = recv(u, a, sizeof(a) - 1, 0);
        int i, cseq;
        char method[16];
        const char *c;

        cr_assert_gt(n, 0, "%d of %d answers, then none within 3 s", got, N);
        a[n] = '\0';
        c = strstr(a, "\r\nCall-ID: burst-");
        cr_assert_not_null(c, "%s", a);
        cr_assert_eq(sscanf(c, "\r\nCall-ID: burst-%d@test", &i), 1, "%s", a);
        cr_assert(i >= 0 && i < N, "%s", a);
        answers[i]++;
        cr_assert_eq(answers[i], 1, "a second answer to burst-%d: %s", i, a);
        cr_assert(strncmp(a, "SIP/2.0 503 ", 12) == 0, "%s", a);
        c = strstr(a, "\r\nCSeq: ");
        cr_assert_not_null(c, "%s", a);
        cr_assert_eq(sscanf(c, "\r\nCSeq: %d %15s", &cseq, method), 2, "%s", a);
        cr_expect_eq(cseq, 100 + i, "%s", a);
        cr_expect_str_eq(method, i % 3 == 1 ? "OPTIONS" : "INVITE", "%s", a);
        snprintf(m, sizeof(m), ";branch=z9hG4bK-burst-%d", i);
        c = strstr(a, m);
        cr_expect(c != NULL && !isdigit((unsigned char)c[strlen(m)]), "the request's own Via: %s",
                  a);
        snprintf(m, sizeof(m), "\r\nFrom: <sip:gw@127.0.0.1:%d>;tag=gw-%d\r\n", me, i);
        cr_expect(strstr(a, m) != NULL, "the request's own From: %s", a);
        /* the refusals come from the stateless path, OPTIONS from the stack */
        cr_expect_eq(strstr(a, ";tag=sdf") != NULL, i % 3 != 1, "%s", a);
    }
    cr_expect_lt(recv(u, a, sizeof(a) - 1, 0), 0, "an answer too many");
    close(u);
    control(&e, "edge-2m", "edge.shutdown", json_pack("{s:s}", "drain_id", DRAIN_A));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* SIPDRAIN_HTTP_ADDR: /healthz, /readyz (503 unless active: Kubernetes and
 * HTTP-probing load balancers agree with OPTIONS), /metrics. */
Test(sip_edge, readyz_and_metrics_follow_the_drain, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    static char addr[64];
    const char *extra[] = {addr, NULL};
    const char *keys[] = {"retry_after", "30", NULL};
    char body[16384];
    int port = sdt_free_port();
    int64_t deadline;

    snprintf(addr, sizeof(addr), "SIPDRAIN_HTTP_ADDR=127.0.0.1:%d", port);
    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    cr_expect_eq(sdt_http_get(port, "/healthz", body, sizeof(body)), 200);
    cr_expect_eq(sdt_http_get(port, "/readyz", body, sizeof(body)), 200, "%s", body);
    cr_expect_eq(sdt_http_get(port, "/metrics", body, sizeof(body)), 200);
    cr_expect(strstr(body, "# TYPE sipdrain_edge_state gauge") != NULL, "%s", body);
    cr_expect(strstr(body, "sipdrain_edge_state{edge=\"edge-2a\",site=\"site2\",state=\"active\"}"
                           " 1\n") != NULL,
              "%s", body);
    cr_expect_eq(sdt_http_get(port, "/nothing", body, sizeof(body)), 404);

    drain(&e, "edge-2a", DRAIN_A, "site", NULL);
    wait_edge_state(&e, "edge-2a", "drained");
    cr_expect_eq(sdt_sipp("invite_refused_503", p.port, "2001", keys), 0);
    deadline = sd_mono_ms() + WAIT_MS; /* metrics follow within a second */
    while (sdt_http_get(port, "/metrics", body, sizeof(body)) != 200 ||
           strstr(body, "sipdrain_edge_invites_rejected_total{edge=\"edge-2a\",site=\"site2\","
                        "code=\"503\"} 1\n") == NULL) {
        cr_assert_lt(sd_mono_ms(), deadline, "no rejection counted: %s", body);
        usleep(100000);
    }
    cr_expect(strstr(body, "state=\"drained\"} 1\n") != NULL, "%s", body);
    cr_expect_eq(sdt_http_get(port, "/readyz", body, sizeof(body)), 503);
    cr_expect_str_eq(body, "drained\n");
    cr_expect_eq(sdt_http_get(port, "/healthz", body, sizeof(body)), 200, "alive while draining");
    deadline = sd_mono_ms() + WAIT_MS; /* the bus thread's figures, once all is consumed and sent */
    while (sdt_http_get(port, "/metrics", body, sizeof(body)) != 200 ||
           strstr(body, "sipdrain_consumer_lag{edge=\"edge-2a\",site=\"site2\"} 0\n") == NULL ||
           strstr(body, "sipdrain_outbox_backlog{edge=\"edge-2a\",site=\"site2\"} 0\n") == NULL) {
        cr_assert_lt(sd_mono_ms(), deadline, "no lag / backlog 0 in /metrics: %s", body);
        usleep(200000);
    }
    control(&e, "edge-2a", "edge.shutdown", json_pack("{s:s}", "drain_id", DRAIN_A));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
    cr_expect_eq(sdt_http_get(port, "/healthz", body, sizeof(body)), -1, "gone with the edge");
}

Test(sip_edge, a_drain_with_reject_code_302_redirects_to_the_peer_site, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    const char *extra[] = {"SIPDRAIN_PEER_SITE_URI=sip:site1.example.com:5060", NULL};
    const char *keys[] = {"peer_uri", "sip:site1.example.com:5060", NULL};

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    drain(&e, "edge-2a", DRAIN_A, "site", json_pack("{s:i}", "reject_code", 302));
    wait_edge_state(&e, "edge-2a", "drained");
    cr_expect_eq(sdt_sipp("invite_refused_302", p.port, "2001", keys), 0,
                 "INVITE while draining with reject_code 302");
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

Test(sip_edge, sigterm_drains_only_that_edge_and_exits_0, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc a, b;

    env_setup(&e);
    edge_start(&e, &a, "edge-2a", NULL);
    edge_start(&e, &b, "edge-2b", NULL);
    cr_assert_eq(kill(a.pid, SIGTERM), 0);
    cr_expect_eq(edge_exit_code(&a, WAIT_MS), 0, "edge-2a after SIGTERM (%s)", a.log);
    wait_edge_state(&e, "edge-2a", "stopped");
    cr_expect_eq(sdt_sipp("options_200", b.port, "2001", NULL), 0, "edge-2b still active");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM edges WHERE edge_id = 'edge-2b'"
                                      " AND state = 'active'"),
                 1);
    kill(b.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&b, WAIT_MS), 0);
}

Test(sip_edge, resume_makes_a_draining_edge_active_again, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    drain(&e, "edge-2a", DRAIN_A, "site", NULL);
    wait_edge_state(&e, "edge-2a", "drained");
    cr_expect_eq(sdt_sipp("options_503", p.port, "2001", NULL), 0);
    /* Another drain's resume is ignored; this drain's is obeyed. */
    control(&e, "edge-2a", "edge.resume",
            json_pack("{s:s}", "drain_id", "00000000-0000-4000-8000-000000000000"));
    control(&e, "edge-2a", "edge.resume", json_pack("{s:s}", "drain_id", DRAIN_A));
    wait_edge_state(&e, "edge-2a", "active");
    cr_expect_eq(sdt_sipp("options_200", p.port, "2001", NULL), 0);
    cr_expect(sdt_file_has(p.log, "edge.resume of another drain ignored"));
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

Test(sip_edge, call_originate_while_draining_is_refused_with_the_reason_for_agent_state,
     .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdt_msgs m;
    struct sd_err err = {0};

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    drain(&e, "edge-2a", DRAIN_A, "site", NULL);
    wait_edge_state(&e, "edge-2a", "drained");
    control(&e, "edge-2a", "call.originate",
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "agent_id", "a2001", "dn", "2001", "destination",
                      "+4930123", "call_id", "c0ffee00-1111-4222-8333-444455556666", "request_id",
                      "b0f3e2b6-08b3-40c0-ae47-3d68601ab49f"));
    /* call.rejected frees the agent and says why, for agent-state's
     * EventError: the edge writes no agent events (issue #15's ACLs). */
    m = sdt_consume(e.call_events, 1, WAIT_MS);
    cr_assert_eq(m.n, 1);
    {
        struct sd_event ev;
        cr_assert_eq(sd_event_parse(m.m[0].value, m.m[0].len, &ev, &err), 0);
        cr_expect_str_eq(ev.type, "call.rejected");
        cr_expect_str_eq(field(ev.data, "reason"), "draining");
        cr_expect_str_eq(field(ev.data, "direction"), "outbound");
        cr_expect_str_eq(field(ev.data, "error_reason"), "graceful_shutdown");
        cr_expect_str_eq(field(ev.data, "request_id"), "b0f3e2b6-08b3-40c0-ae47-3d68601ab49f");
        cr_expect_str_eq(field(ev.data, "detail"), "the edge is draining");
        sd_event_clear(&ev);
    }
    cr_expect_eq(sdt_validate_events(&m), 0);
    sdt_msgs_free(&m);
    cr_expect_eq(sdt_topic_count(e.agent_events), 0, "the edge wrote an agent event");
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

Test(sip_edge, bad_control_events_are_dead_lettered_and_the_edge_carries_on, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdt_msgs d;
    char reason[512];
    const char *raw = "{\"not\": \"an event\"";
    size_t len = strlen(raw);
    const char *keys[] = {"edge-2a"};

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    sdt_produce_keyed(e.control, keys, (const void *const *)&raw, &len, 1);
    control(&e, "edge-2a", "edge.drain",
            json_pack("{s:s, s:s, s:i}", "drain_id", DRAIN_A, "scope", "site", "reject_code", 200));
    control(&e, "edge-2a", "edge.explode", json_object());
    d = sdt_consume(e.deadletter, 3, WAIT_MS);
    cr_assert_eq(d.n, 3, "dead letters: %zu", d.n);
    cr_assert_eq(sdt_header(&d.m[1], "sipdrain.reason", reason, sizeof(reason)), 0);
    cr_expect(strstr(reason, "reject_code") != NULL, "reason: %s", reason);
    cr_assert_eq(sdt_header(&d.m[2], "sipdrain.reason", reason, sizeof(reason)), 0);
    cr_expect(strstr(reason, "unknown_type: edge.explode") != NULL, "reason: %s", reason);
    sdt_msgs_free(&d);
    /* Still active: the bad drain was not applied. */
    cr_expect_eq(sdt_sipp("options_200", p.port, "2001", NULL), 0);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* Issue #15: commands from a service that may write edge.control but does
 * not send that command - a forged edge.drain with 603 (which stops gateway
 * failover) and edge.shutdown force from agent-state, a call.originate
 * from the orchestrator (toll fraud) - are dead-lettered with the reason,
 * and nothing changes: the edge stays active, places no call, keeps
 * running. The same edge.drain from the orchestrator is then applied. */
Test(sip_edge, commands_from_the_wrong_service_are_dead_lettered_and_change_nothing, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdt_msgs d;
    char reason[512];
    const char *want[] = {
        "wrong_source: edge.drain is taken from drain-orchestrator/*, not from agent-state/as-1",
        "wrong_source: edge.shutdown is taken from drain-orchestrator/*, not from agent-state/as-1",
        "wrong_source: call.originate is taken from agent-state/*, not from "
        "drain-orchestrator/orch-1"};
    const char *forged_call = "6f1f7c9e-3b7a-4d52-9a55-0d4f7f0e7c11";

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    /* Each sent as the Kafka user that may write edge.control: the ACLs
     * let it through, the edge's source check stops it. */
    sdt_kafka_as("sipdrain-agent-state");
    sdt_send_event_from("agent-state/as-1", e.control, "edge-2a", "edge.drain",
                        json_pack("{s:s, s:s, s:s, s:s, s:i}", "edge", "edge-2a", "site", "site2",
                                  "drain_id", DRAIN_A, "scope", "site", "reject_code", 603),
                        NULL);
    sdt_send_event_from("agent-state/as-1", e.control, "edge-2a", "edge.shutdown",
                        json_pack("{s:s, s:s, s:s, s:b}", "edge", "edge-2a", "site", "site2",
                                  "drain_id", DRAIN_A, "force", 1),
                        NULL);
    sdt_kafka_as("sipdrain-orchestrator");
    sdt_send_event_from("drain-orchestrator/orch-1", e.control, "edge-2a", "call.originate",
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "edge", "edge-2a", "site",
                                  "site2", "agent_id", "a1", "dn", "2001", "destination",
                                  "900442071234567", "call_id", forged_call, "request_id",
                                  "b0f3e2b6-08b3-40c0-ae47-3d68601ab49f"),
                        NULL);
    sdt_kafka_as(NULL);
    d = sdt_consume(e.deadletter, 3, WAIT_MS);
    cr_assert_eq(d.n, 3, "dead letters: %zu", d.n);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(sdt_header(&d.m[i], "sipdrain.reason", reason, sizeof(reason)), 0);
        cr_expect_str_eq(reason, want[i], "dead letter %zu", i);
    }
    sdt_msgs_free(&d);
    /* nothing changed: OPTIONS 200 (not draining), still running, no call */
    cr_expect_eq(sdt_sipp("options_200", p.port, "2001", NULL), 0, "still active");
    cr_expect_eq(waitpid(p.pid, NULL, WNOHANG), 0, "still running");
    cr_expect(!sdt_file_has(p.log, "msg=\"control event\""), "no command applied (%s)", p.log);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls"), 0, "no call placed");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM edges WHERE edge_id = 'edge-2a'"
                                      " AND state = 'active'"),
                 1, "its row says active");
    /* the orchestrator's own edge.drain is applied */
    drain(&e, "edge-2a", DRAIN_A, "site", json_pack("{s:i}", "reject_code", 603));
    wait_edge_state(&e, "edge-2a", "drained");
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

Test(sip_edge, malformed_sip_gets_no_crash_and_the_edge_keeps_serving, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    const char *garbage[] = {
        "HELLO WORLD\r\n\r\n",
        "OPTIONS sip:2001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:2001@127.0.0.1>\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n", /* no Call-ID */
        "INVITE sip:2001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKy\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: x1\r\n"
        "Content-Length: 0\r\n\r\n", /* no CSeq */
    };
    int s = socket(AF_INET, SOCK_DGRAM, 0);

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    to.sin_port = htons((uint16_t)p.port);
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
        sendto(s, garbage[i], strlen(garbage[i]), 0, (struct sockaddr *)&to, sizeof(to));
    /* A 64 KiB header, over TCP (a UDP datagram cannot hold it). */
    {
        static char big[70000];
        int t = socket(AF_INET, SOCK_STREAM, 0);
        int n = snprintf(big, sizeof(big),
                         "OPTIONS sip:2001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP "
                         "127.0.0.1:9;branch=z9hG4bKz\r\nX-Big: ");
        memset(big + n, 'a', 65536);
        memcpy(big + n + 65536, "\r\n\r\n", 4);
        cr_assert_eq(connect(t, (struct sockaddr *)&to, sizeof(to)), 0);
        send(t, big, (size_t)n + 65536 + 4, MSG_NOSIGNAL);
        usleep(200000);
        close(t);
    }
    /* An INVITE whose body is not SDP: 400. */
    {
        const char *bad_sdp = "INVITE sip:2001@127.0.0.1 SIP/2.0\r\n"
                              "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKsdp1;rport\r\n"
                              "From: <sip:gw@127.0.0.1>;tag=9\r\nTo: <sip:2001@127.0.0.1>\r\n"
                              "Call-ID: bad-sdp-1\r\nCSeq: 1 INVITE\r\n"
                              "Contact: <sip:gw@127.0.0.1:%d>\r\n"
                              "Content-Type: application/sdp\r\nContent-Length: 12\r\n\r\n"
                              "hello world!";
        struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(me);
        struct timeval tv = {2, 0};
        char msg[1024], reply[4096];
        int u = socket(AF_INET, SOCK_DGRAM, 0), got_400 = 0;

        bind(u, (struct sockaddr *)&me, sizeof(me));
        getsockname(u, (struct sockaddr *)&me, &len);
        setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        snprintf(msg, sizeof(msg), bad_sdp, ntohs(me.sin_port), ntohs(me.sin_port));
        sendto(u, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof(to));
        for (int i = 0; i < 3 && !got_400; i++) {
            ssize_t n = recv(u, reply, sizeof(reply) - 1, 0);
            if (n <= 0)
                break;
            reply[n] = '\0';
            got_400 = strncmp(reply, "SIP/2.0 400", 11) == 0;
        }
        close(u);
        cr_expect(got_400, "an INVITE with a body that is not SDP was not refused with 400");
    }
    close(s);
    usleep(300000);
    cr_expect_eq(sdt_sipp("options_200", p.port, "2001", NULL), 0, "the edge stopped serving");
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* One edge per container or pod (docker compose --scale): without
 * SIPDRAIN_EDGE_ID the edge is named after its host. */
/* Out of a dialog, the methods the edge does not serve get 405 with an
 * Allow naming exactly what it handles (NUA alone answered MESSAGE 200
 * and listed MESSAGE, SUBSCRIBE, NOTIFY, REFER, PRACK and UPDATE). A PRACK
 * out of a dialog gets 481 from the transaction layer. */
Test(sip_edge, methods_the_edge_does_not_serve_get_405_with_exactly_its_allow, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    char gw[64];
    pid_t phone;

    env_setup(&e);
    snprintf(gw, sizeof(gw), "gw-%.12s", e.prefix + 2);
    edge_start(&e, &p, "edge-2a", NULL);
    cr_expect_eq(sdt_sipp("methods_405", p.port, "2001", NULL), 0,
                 "MESSAGE, SUBSCRIBE, NOTIFY, PUBLISH, REFER, UPDATE: each 405 with the"
                 " edge's Allow (see /tmp/sipdrain-sipp-methods_405-*.err)");
    cr_expect_eq(sdt_sipp("options_200", p.port, "2001", NULL), 0, "OPTIONS still answered");
    /* In a call's dialog: UPDATE and MESSAGE, which the edge does not relay,
     * get 405 with the same Allow, and the call goes on to its BYE. */
    agent_ready(&e, "a1", "2001", 10);
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_expect_eq(
        sdt_sipp("gateway_call_in_dialog_405", p.port, "2001", sdp_keys(&sk, gw, "v=0", NULL)), 0,
        "in the dialog: not 405 with the edge's Allow (see"
        " /tmp/sipdrain-sipp-gateway_call_in_dialog_405-*.err)");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0, "the phone's call, its BYE");
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* --- names from the network are never resolved ---------------------------- */

/* A stand-in DNS server on 127.0.0.77:53: it answers every query NXDOMAIN
 * (so a lookup fails fast) and keeps the names asked for. */
struct dns_spy {
    int fd;
    pthread_t thread;
    pthread_mutex_t lock;
    char names[2048];
    volatile bool stop;
};

static void *dns_spy_run(void *arg)
{
    struct dns_spy *d = arg;
    unsigned char q[512];
    struct sockaddr_in from;
    socklen_t len;

    while (!d->stop) {
        char name[256] = "";
        size_t o = 12, n = 0;
        ssize_t got;

        len = sizeof(from);
        got = recvfrom(d->fd, q, sizeof(q), 0, (struct sockaddr *)&from, &len);
        if (got < 12)
            continue;
        while (o < (size_t)got && q[o] != 0 && n + q[o] + 2 < sizeof(name)) {
            memcpy(name + n, q + o + 1, q[o]);
            n += q[o];
            name[n++] = '.';
            o += (size_t)q[o] + 1;
        }
        name[n] = '\0';
        pthread_mutex_lock(&d->lock);
        if (strlen(d->names) + n + 2 < sizeof(d->names)) {
            strcat(d->names, name);
            strcat(d->names, " ");
        }
        pthread_mutex_unlock(&d->lock);
        q[2] = 0x81; /* a response, recursion desired */
        q[3] = 0x83; /* recursion available, NXDOMAIN */
        sendto(d->fd, q, (size_t)got, 0, (struct sockaddr *)&from, len);
    }
    return NULL;
}

static void dns_spy_start(struct dns_spy *d)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    struct timeval tv = {0, 200000};

    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->lock, NULL);
    inet_pton(AF_INET, "127.0.0.77", &a.sin_addr);
    d->fd = socket(AF_INET, SOCK_DGRAM, 0);
    setsockopt(d->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    cr_assert_eq(bind(d->fd, (struct sockaddr *)&a, sizeof(a)), 0,
                 "cannot bind 127.0.0.77:53 for the stand-in resolver (the test needs root)");
    cr_assert_eq(pthread_create(&d->thread, NULL, dns_spy_run, d), 0);
}

static void dns_spy_names(struct dns_spy *d, char *out, size_t size)
{
    pthread_mutex_lock(&d->lock);
    snprintf(out, size, "%s", d->names);
    pthread_mutex_unlock(&d->lock);
}

static void dns_spy_stop(struct dns_spy *d)
{
    d->stop = true;
    pthread_join(d->thread, NULL);
    close(d->fd);
}

/* Sends one request over UDP from a socket of its own; returns the status
 * of the first final response that comes back to that socket (0: none
 * within 2 s). %d in req is the socket's port. */
static int udp_request(int edge_port, const char *req, char *reply, size_t size)
{
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)edge_port)};
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(me);
    struct timeval tv = {2, 0};
    char msg[2048];
    int u = socket(AF_INET, SOCK_DGRAM, 0), status = 0;

    bind(u, (struct sockaddr *)&me, sizeof(me));
    getsockname(u, (struct sockaddr *)&me, &len);
    setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    snprintf(msg, sizeof(msg), req, ntohs(me.sin_port));
    sendto(u, msg, strlen(msg), 0, (struct sockaddr *)&to, sizeof(to));
    for (int i = 0; i < 4 && status < 200; i++) {
        ssize_t n = recv(u, reply, size - 1, 0);
        if (n <= 0)
            break;
        reply[n] = '\0';
        if (strncmp(reply, "SIP/2.0 ", 8) == 0)
            status = atoi(reply + 8);
    }
    close(u);
    return status;
}

/* Point 4 of issue 12: a REGISTER whose Contact is a name is refused and
 * nothing is stored; an INVITE whose Contact or Record-Route is a name is
 * refused; requests whose Via names a host are answered at the address and
 * port they came from; and none of it makes the edge ask DNS (a stand-in
 * resolver on 127.0.0.77, which the edge's /etc/resolv.conf names, counts
 * the questions; a lookup of probe.sipdrain.invalid made just before the
 * edge starts proves the counting works). */
Test(sip_edge, names_in_received_messages_are_never_resolved, .timeout = 120)
{
    static const char conf[] = "nameserver 127.0.0.77\noptions timeout:1 attempts:1\n";
    static const struct {
        const char *what, *req;
        int want;
    } cases[] = {
        {"OPTIONS, Via host a name, no rport",
         "OPTIONS sip:2001@127.0.0.1 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP host129.example.invalid:%d;branch=z9hG4bKdns1\r\n"
         "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: dns-1\r\n"
         "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
         200},
        {"OPTIONS, Via host a name with rport",
         "OPTIONS sip:2001@127.0.0.1 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP via-rport.example.invalid:%d;branch=z9hG4bKdns2;rport\r\n"
         "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: dns-2\r\n"
         "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
         200},
        {"OPTIONS, Via with maddr a name",
         "OPTIONS sip:2001@127.0.0.1 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKdns7;rport;maddr=maddr.example.invalid\r\n"
         "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: dns-7\r\n"
         "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
         200},
        {"REGISTER, Contact host a name",
         "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKdns3;rport\r\n"
         "From: <sip:2001@127.0.0.1>;tag=1\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: dns-3\r\n"
         "CSeq: 1 REGISTER\r\nContact: <sip:2001@phone.attacker.invalid>\r\nExpires: 3600\r\n"
         "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
         400},
        {"INVITE, Contact host a name",
         "INVITE sip:2001@127.0.0.1 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKdns4;rport\r\n"
         "From: <sip:gw@127.0.0.1>;tag=1\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: dns-4\r\n"
         "CSeq: 1 INVITE\r\nContact: <sip:gw@gateway.attacker.invalid>\r\nMax-Forwards: 70\r\n"
         "Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n",
         400},
        {"INVITE, Record-Route host a name",
         "INVITE sip:2001@127.0.0.1 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKdns5;rport\r\n"
         "Record-Route: <sip:proxy.attacker.invalid;lr>\r\n"
         "From: <sip:gw@127.0.0.1>;tag=1\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: dns-5\r\n"
         "CSeq: 1 INVITE\r\nContact: <sip:gw@127.0.0.1>\r\nMax-Forwards: 70\r\n"
         "Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n",
         400},
        /* A call to the DN whose REGISTER named a host: no phone for it
         * (an edge that had stored the name would look it up now). */
        {"INVITE to the DN, a well-formed call",
         "INVITE sip:2001@127.0.0.1 SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKdns6;rport\r\n"
         "From: <sip:gw@127.0.0.1>;tag=1\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: dns-6\r\n"
         "CSeq: 1 INVITE\r\nContact: <sip:gw@127.0.0.1>\r\nMax-Forwards: 70\r\n"
         "Content-Type: application/sdp\r\nContent-Length: 65\r\n\r\n"
         "v=0\r\no=gw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n",
         480},
    };
    struct edge_env e;
    struct edge_proc p;
    struct dns_spy d;
    char path[] = "/tmp/sipdrain-resolv-XXXXXX", names[2048], reply[4096];
    int fd = mkstemp(path);

    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, conf, sizeof(conf) - 1), (ssize_t)(sizeof(conf) - 1));
    close(fd);
    env_setup(&e);
    agent_ready(&e, "a1", "2001", 10);
    dns_spy_start(&d);
    edge_resolv_conf = path;
    edge_start(&e, &p, "edge-2a", NULL);
    edge_resolv_conf = NULL;
    dns_spy_names(&d, names, sizeof(names));
    cr_assert(strstr(names, "probe.sipdrain.invalid.") != NULL,
              "the stand-in resolver saw no probe: the test cannot count (%s)", names);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int status = udp_request(p.port, cases[i].req, reply, sizeof(reply));
        cr_expect_eq(status, cases[i].want,
                     "%s: answered %d at the sender's address, want %d (0: no answer came back)",
                     cases[i].what, status, cases[i].want);
        if (cases[i].want == 400)
            cr_expect(strstr(reply, "must be") != NULL || strstr(reply, "must be") != NULL,
                      "%s: the 400 does not say why: %.80s", cases[i].what, reply);
    }
    usleep(1500000); /* anything the edge would look up has been asked by now */
    dns_spy_names(&d, names, sizeof(names));
    for (char *probe; (probe = strstr(names, "probe.sipdrain.invalid. ")) != NULL;)
        memmove(probe, probe + 24, strlen(probe + 24) + 1); /* getent's A and AAAA */
    cr_expect_str_eq(names, "", "the edge asked DNS about names the network sent it: %s", names);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM registrations"), 0,
                 "the REGISTER with a name in Contact was stored");
    dns_spy_stop(&d);
    unlink(path);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* sofia-sip's lines of one shape (digits aside) more than three times a
 * second are folded into one line with a count: a flood of garbage from
 * 50 source ports writes a handful of lines, and every datagram is still
 * accounted for (lines written + the counts = datagrams sent). */
Test(sip_edge, a_flood_of_one_sofia_line_is_folded_into_a_count, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    const char garbage[] = "HELLO WORLD\r\n\r\n";
    char line[2048];
    long written = 0, folded = 0, sent = 0;
    FILE *f;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    to.sin_port = htons((uint16_t)p.port);
    for (int k = 0; k < 50; k++) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        for (int i = 0; i < 4; i++, sent++)
            sendto(s, garbage, sizeof(garbage) - 1, 0, (struct sockaddr *)&to, sizeof(to));
        close(s);
    }
    usleep(2500000); /* the count comes out once its second is over */
    f = fopen(p.log, "r");
    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *rep;
        if (strstr(line, "msg=\"sofia-sip\"") == NULL || strstr(line, "received garbage") == NULL)
            continue;
        if ((rep = strstr(line, "repeated=")) != NULL)
            folded += atol(rep + 9);
        else
            written++;
    }
    fclose(f);
    cr_expect_leq(written, 9, "%ld lines written for %ld datagrams: not folded", written, sent);
    cr_expect_eq(written + folded, sent, "written %ld + folded %ld != %ld datagrams sent", written,
                 folded, sent);
    cr_expect_eq(sdt_sipp("options_200", p.port, "2001", NULL), 0, "the edge stopped serving");
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* The value of the first header line `name` of msg ("" when absent). */
static void header_value(const char *msg, const char *name, char *out, size_t size)
{
    char key[64];
    const char *h;

    snprintf(key, sizeof(key), "\r\n%s:", name);
    out[0] = '\0';
    if ((h = strstr(msg, key)) == NULL)
        return;
    h += strlen(key);
    h += strspn(h, " \t");
    snprintf(out, size, "%.*s", (int)strcspn(h, "\r\n"), h);
}

/* The INVITE the edge sends to a phone names the agent in To as a
 * well-formed URI: the DN at the edge (the phone's address of record),
 * one '@'; it was <sip:2001@2001@127.0.0.1:port>, built from the Contact.
 * A phone made of a UDP socket registers, gets the INVITE, checks it and
 * answers 486. */
Test(sip_edge, the_to_of_an_invite_to_a_phone_is_the_dn_at_the_edge, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    struct sockaddr_in me = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in edge = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(me);
    struct timeval tv = {5, 0};
    char msg[2048], in[4096], to[512], want[128], via[512], from[512], callid[256], cseq[64];
    int phone = socket(AF_INET, SOCK_DGRAM, 0), port;
    const char *hold[] = {"hold_ms", "200", NULL};
    struct sdp_keys sk;
    ssize_t n;
    pid_t gw;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    edge.sin_port = htons((uint16_t)p.port);
    cr_assert_eq(bind(phone, (struct sockaddr *)&me, sizeof(me)), 0);
    getsockname(phone, (struct sockaddr *)&me, &len);
    setsockopt(phone, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    port = ntohs(me.sin_port);
    for (int cseq_n = 1; cseq_n <= 2; cseq_n++) {
        /* the first REGISTER is challenged (401, MD5 in this suite), the
         * second answers the challenge (edge_auth's digest: the RFCs'
         * examples check it in test_edge_auth) */
        char authz[512] = "", nonce[128] = "", ha1[EDGE_AUTH_HEX_MAX], resp[EDGE_AUTH_HEX_MAX],
             uri[64];
        const char *nv;
        if (cseq_n == 2) {
            nv = strstr(in, "nonce=\"");
            cr_assert_not_null(nv, "no nonce in %s", in);
            snprintf(nonce, sizeof(nonce), "%.*s", (int)strcspn(nv + 7, "\""), nv + 7);
            snprintf(uri, sizeof(uri), "sip:127.0.0.1:%d", p.port);
            edge_auth_ha1(EDGE_AUTH_MD5, "2001", "sipdrain", SDT_PHONE_PASSWORD, ha1);
            edge_auth_response(EDGE_AUTH_MD5, ha1, nonce, "00000001", "c1", "REGISTER", uri, resp);
            snprintf(authz, sizeof(authz),
                     "Authorization: Digest username=\"2001\", realm=\"sipdrain\", nonce=\"%s\","
                     " uri=\"%s\", response=\"%s\", algorithm=MD5, qop=auth, nc=00000001,"
                     " cnonce=\"c1\"\r\n",
                     nonce, uri, resp);
        }
        snprintf(msg, sizeof(msg),
                 "REGISTER sip:127.0.0.1:%d SIP/2.0\r\n"
                 "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKreg%d;rport\r\n"
                 "From: <sip:2001@127.0.0.1:%d>;tag=r1\r\nTo: <sip:2001@127.0.0.1:%d>\r\n"
                 "Call-ID: to-reg-1\r\nCSeq: %d REGISTER\r\nContact: <sip:2001@127.0.0.1:%d>\r\n"
                 "%sExpires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                 p.port, port, cseq_n, p.port, p.port, cseq_n, port, authz);
        sendto(phone, msg, strlen(msg), 0, (struct sockaddr *)&edge, sizeof(edge));
        n = recv(phone, in, sizeof(in) - 1, 0);
        cr_assert_gt(n, 0, "no answer to the REGISTER");
        in[n] = '\0';
        cr_assert(strncmp(in, cseq_n == 1 ? "SIP/2.0 401" : "SIP/2.0 200", 11) == 0,
                  "REGISTER %d: %.40s", cseq_n, in);
    }
    gw = sdt_sipp_start("gateway_call", p.port, "2001", sdp_keys(&sk, "gw-to", "v=0", hold));
    do { /* the edge's INVITE (a retransmitted 200 to the REGISTER aside) */
        n = recv(phone, in, sizeof(in) - 1, 0);
        cr_assert_gt(n, 0, "the phone got no INVITE");
        in[n] = '\0';
    } while (strncmp(in, "INVITE ", 7) != 0);
    header_value(in, "To", to, sizeof(to));
    snprintf(want, sizeof(want), "<sip:2001@127.0.0.1:%d>", p.port);
    cr_expect_str_eq(to, want, "the To of the INVITE to the phone");
    cr_expect_eq(strchr(to, '@'), strrchr(to, '@'), "more than one @ in %s", to);
    header_value(in, "Via", via, sizeof(via));
    header_value(in, "From", from, sizeof(from));
    header_value(in, "Call-ID", callid, sizeof(callid));
    header_value(in, "CSeq", cseq, sizeof(cseq));
    snprintf(msg, sizeof(msg),
             "SIP/2.0 486 Busy Here\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=ph1\r\nCall-ID: %s\r\n"
             "CSeq: %s\r\nContent-Length: 0\r\n\r\n",
             via, from, to, callid, cseq);
    sendto(phone, msg, strlen(msg), 0, (struct sockaddr *)&edge, sizeof(edge));
    sdt_sipp_wait(gw, WAIT_MS); /* the gateway's scenario wants a 200: its verdict is not ours */
    close(phone);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

Test(sip_edge, the_edge_id_defaults_to_the_host_name, .timeout = 60)
{
    struct edge_env e;
    char bin[1024], log[256], host[256] = "", sql[512], url[64], dsn[600], brokers[300],
                              prefix[120];
    const char *env[6];
    int64_t deadline;
    pid_t pid;

    cr_assert_null(getenv("SIPDRAIN_EDGE_ID"), "the test's own environment sets it");
    env_setup(&e);
    cr_assert_eq(gethostname(host, sizeof(host)), 0);
    snprintf(bin, sizeof(bin), "%s/sip-edge", getenv("SIPDRAIN_BIN_DIR"));
    snprintf(log, sizeof(log), "/tmp/sipdrain-edge-%.12s-host.log", e.prefix + 2);
    snprintf(url, sizeof(url), "SIPDRAIN_SIP_URL=sip:127.0.0.1:%d", sdt_free_port());
    snprintf(dsn, sizeof(dsn), "SIPDRAIN_PG_DSN=%s", e.edge_dsn);
    snprintf(brokers, sizeof(brokers), "SIPDRAIN_KAFKA_BROKERS=%s", sdt_brokers());
    snprintf(prefix, sizeof(prefix), "SIPDRAIN_TOPIC_PREFIX=%s", e.prefix);
    env[0] = dsn;
    env[1] = brokers;
    env[2] = prefix;
    env[3] = "SIPDRAIN_SITE=site2";
    env[4] = url;
    env[5] = NULL; /* no SIPDRAIN_EDGE_ID */
    unlink(log);
    pid = sdt_spawn(bin, NULL, env, log);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM edges WHERE edge_id = '%s'", host);
    deadline = sd_mono_ms() + WAIT_MS;
    while (sdt_pg_scalar(e.dsn, sql) != 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "no edges row named %s (%s)", host, log);
        usleep(100000);
    }
    kill(pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&(struct edge_proc){.pid = pid}, WAIT_MS), 0);
}

/* nice values of pid's threads named comm (the SIP thread is named as the
 * process, "sip-edge"): how many, and the last one's in *nice. */
static int thread_nice(pid_t pid, const char *comm, int *nice)
{
    char dir[64], path[600], buf[1024];
    struct dirent *d;
    DIR *tasks;
    int found = 0;

    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    tasks = opendir(dir);
    if (tasks == NULL)
        return 0;
    while ((d = readdir(tasks)) != NULL) {
        FILE *f;
        char *rp, *save = NULL;
        int field = 2;

        if (d->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s/comm", dir, d->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        buf[0] = '\0';
        if (fgets(buf, sizeof(buf), f) != NULL)
            buf[strcspn(buf, "\n")] = '\0';
        fclose(f);
        if (strcmp(buf, comm) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s/stat", dir, d->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        rp = fgets(buf, sizeof(buf), f) != NULL ? strrchr(buf, ')') : NULL;
        fclose(f);
        /* after "(comm)": field 3 (state) ... field 19 (nice) */
        for (char *t = rp ? strtok_r(rp + 1, " ", &save) : NULL; t != NULL;
             t = strtok_r(NULL, " ", &save))
            if (++field == 19) {
                *nice = atoi(t);
                found++;
                break;
            }
    }
    closedir(tasks);
    return found;
}

/* SIPDRAIN_SIP_NICE (default -10) is the SIP thread's alone: the bus
 * thread and the outbox relay keep the process's priority; 0 leaves all.
 * Without the right to raise it (not root, no CAP_SYS_NICE) the edge runs
 * on at normal priority and says so. */
Test(sip_edge, the_sip_thread_alone_runs_at_SIPDRAIN_SIP_NICE, .timeout = 90)
{
    struct edge_env e;
    struct edge_proc p, q;
    const char *keep[] = {"SIPDRAIN_SIP_NICE=0", NULL};
    int sip = 99, bus = 99, relay = 99;
    bool raised;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    for (int64_t deadline = sd_mono_ms() + 5000;
         !(raised = sdt_file_has(p.log, "SIP thread priority raised")) &&
         !sdt_file_has(p.log, "SIP thread at normal priority") && sd_mono_ms() < deadline;)
        usleep(50000);
    cr_expect(raised || sdt_file_has(p.log, "SIP thread at normal priority"),
              "the edge says which (%s)", p.log);
    if (geteuid() == 0)
        cr_expect(raised, "root may raise it (%s)", p.log);
    cr_expect_eq(thread_nice(p.pid, "sip-edge", &sip), 1, "one SIP thread");
    cr_expect_eq(sip, raised ? -10 : 0, "the SIP thread's nice");
    cr_expect_eq(thread_nice(p.pid, "edge-bus", &bus), 1, "one bus thread");
    cr_expect_eq(bus, 0, "the bus thread's nice");
    cr_expect_eq(thread_nice(p.pid, "edge-relay", &relay), 1, "one outbox relay thread");
    cr_expect_eq(relay, 0, "the outbox relay thread's nice");

    edge_start(&e, &q, "edge-2b", keep);
    cr_expect_eq(thread_nice(q.pid, "sip-edge", &sip), 1);
    cr_expect_eq(sip, 0, "SIPDRAIN_SIP_NICE=0: the SIP thread's nice");
    cr_expect_not(sdt_file_has(q.log, "SIP thread priority raised") ||
                      sdt_file_has(q.log, "SIP thread at normal priority"),
                  "nothing to say (%s)", q.log);
    kill(p.pid, SIGTERM);
    kill(q.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
    cr_expect_eq(edge_exit_code(&q, WAIT_MS), 0);
}

Test(sip_edge, invalid_configuration_exits_2_naming_the_variable, .timeout = 60)
{
    char bin[1024], out[] = "/tmp/sipdrain-edge-config-XXXXXX";
    const char *dir = getenv("SIPDRAIN_BIN_DIR");
    const char *cases[][3] = {
        {"SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE=200", NULL, "SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE"},
        {"SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE=302", NULL, "SIPDRAIN_PEER_SITE_URI"},
        {"SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT=-1", NULL,
         "SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT"},
        {"SIPDRAIN_SIP_URL=http://x", NULL, "SIPDRAIN_SIP_URL"},
        {"SIPDRAIN_HTTP_ADDR=8080", NULL, "SIPDRAIN_HTTP_ADDR"},
        {"SIPDRAIN_EDGE_ID=edge 2a", NULL, "SIPDRAIN_EDGE_ID"},
        {"SIPDRAIN_OUTBOUND_PROXY=tel:+49", NULL, "SIPDRAIN_OUTBOUND_PROXY"},
        {"SIPDRAIN_TRUSTED_PEERS=10.0.0.0/33", NULL, "SIPDRAIN_TRUSTED_PEERS"},
        {"SIPDRAIN_TRUSTED_PEERS=gw.example.com", NULL, "SIPDRAIN_TRUSTED_PEERS"},
        {"SIPDRAIN_SIP_AUTH_ALGORITHMS=SHA-512", NULL, "SIPDRAIN_SIP_AUTH_ALGORITHMS"},
        {"SIPDRAIN_SIP_REALM=a\"b", NULL, "SIPDRAIN_SIP_REALM"},
        {"SIPDRAIN_SIP_NICE=5", NULL, "SIPDRAIN_SIP_NICE"},
        {"SIPDRAIN_SIP_NICE=-21", NULL, "SIPDRAIN_SIP_NICE"},
    };
    int fd = mkstemp(out);

    cr_assert(fd >= 0);
    close(fd);
    snprintf(bin, sizeof(bin), "%s/sip-edge", dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *env[] = {"SIPDRAIN_SITE=site2",
                             "SIPDRAIN_EDGE_ID=edge-2a",
                             "SIPDRAIN_PG_DSN=postgresql://127.0.0.1:1/x",
                             "SIPDRAIN_KAFKA_BROKERS=127.0.0.1:1",
                             cases[i][0],
                             NULL};
        pid_t pid;
        int status;

        unlink(out);
        pid = sdt_spawn(bin, NULL, env, out);
        status = sdt_wait(pid, 10000);
        cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s: status %d", cases[i][0],
                  status);
        cr_expect(sdt_file_has(out, cases[i][2]), "%s: the message does not name %s", cases[i][0],
                  cases[i][2]);
    }
    unlink(out);
}

/* Once it has said "stopped", an edge is gone within its stop budget (10 s)
 * even when Kafka never answers: librdkafka's own close and flush took 15 s
 * here (and 120 s under compose, the broker's name no longer resolving),
 * past compose's and Kubernetes' grace periods. Its events stay in the
 * outbox. */
Test(sip_edge, a_stop_ends_within_its_budget_when_kafka_never_answers, .timeout = 90)
{
    struct edge_env e;
    char bin[1024], out[] = "/tmp/sipdrain-edge-nokafka-XXXXXX", url[64], dsn[600];
    const char *dir = getenv("SIPDRAIN_BIN_DIR");
    int fd = mkstemp(out), status;
    int64_t deadline, stopped_at, exited_at;
    pid_t pid;

    cr_assert(fd >= 0);
    close(fd);
    env_setup(&e);
    snprintf(bin, sizeof(bin), "%s/sip-edge", dir);
    snprintf(url, sizeof(url), "SIPDRAIN_SIP_URL=sip:127.0.0.1:%d", sdt_free_port());
    snprintf(dsn, sizeof(dsn), "SIPDRAIN_PG_DSN=%s", e.edge_dsn);
    {
        /* a port nobody listens on: every connection refused, nothing sent */
        const char *env[] = {"SIPDRAIN_SITE=site2",
                             "SIPDRAIN_EDGE_ID=edge-2a",
                             dsn,
                             "SIPDRAIN_KAFKA_BROKERS=127.0.0.1:1",
                             url,
                             NULL};
        unlink(out);
        pid = sdt_spawn(bin, NULL, env, out);
    }
    deadline = sd_mono_ms() + 30000;
    while (!sdt_file_has(out, "listening")) {
        cr_assert_lt(sd_mono_ms(), deadline, "the edge never listened (%s)", out);
        usleep(50000);
    }
    usleep(1500000); /* a few edge.status rows wait in the outbox */
    kill(pid, SIGTERM);
    deadline = sd_mono_ms() + 30000;
    while (!sdt_file_has(out, "msg=\"stopped\"")) {
        cr_assert_lt(sd_mono_ms(), deadline, "no \"stopped\" (%s)", out);
        usleep(20000);
    }
    stopped_at = sd_mono_ms();
    status = sdt_wait(pid, 30000);
    exited_at = sd_mono_ms();
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d (%s)", status, out);
    cr_expect_leq(exited_at - stopped_at, 12000, "exited %lld ms after \"stopped\" (%s)",
                  (long long)(exited_at - stopped_at), out);
    cr_expect(sdt_file_has(out, "the stop took too long"), "no line says why (%s)", out);
    cr_expect_gt(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM outbox"), 0,
                 "the unsent edge.status rows stay in the outbox");
    unlink(out);
}

/* --- calls --------------------------------------------------------------- */

Test(sip_edge, an_inbound_call_reaches_the_agent_with_sdp_both_ways_and_ends_cleanly,
     .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    struct call_events ce;
    const char *hold[] = {"hold_ms", "300", NULL};
    pid_t phone;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_expect_eq(
        sdt_sipp("gateway_call", p.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", hold)), 0,
        "the gateway's call (200 with the phone's SDP, BYE answered)");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0,
                 "the phone (INVITE with the gateway's SDP, BYE from the edge)");
    call_events_read(&e, &ce, 3);
    expect_answered_call_events(&ce, "the call");
    cr_expect_str_eq(field(ce.data[0], "agent_id"), "a1");
    cr_expect_str_eq(field(ce.data[2], "end_cause"), "caller_hangup");
    cr_expect(json_is_true(json_object_get(ce.data[2], "answered")));
    call_events_free(&ce);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE agent_id = 'a1'"
                                      " AND state = 'ended' AND answered_at IS NOT NULL"
                                      " AND end_cause = 'caller_hangup'"),
                 1);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* Calls the edge cannot route: the SIP answer (SIPp accepts 404, 480 or
 * 486; which one is asserted from call.rejected's reject_code, the status
 * the edge answered with) and the reason, with nothing reserved. */
Test(sip_edge, unroutable_calls_get_404_480_or_486_and_call_rejected_says_why, .timeout = 180)
{
    static const struct {
        const char *dn, *reason;
        int code;
    } want[] = {{"2999", "unknown_dn", 404},
                {"2002", "agent_not_available", 480},
                {"2003", "agent_busy", 486},
                {"2004", "not_registered", 480}};
    const size_t n = sizeof(want) / sizeof(want[0]);
    struct edge_env e;
    struct edge_proc p;
    struct call_events ce;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    sdt_pg_run(e.dsn, "INSERT INTO agents (agent_id, dn, site, state, call_id) VALUES"
                      " ('a2', '2002', 'site2', 'logged_out', NULL),"
                      " ('a3', '2003', 'site2', 'ready', 'another-call'),"
                      " ('a4', '2004', 'site2', 'ready', NULL)");
    sdt_pg_run(e.dsn, "INSERT INTO registrations (dn, contact, edge_id, expires_at) VALUES"
                      " ('2002', 'sip:2002@127.0.0.1:9', 'edge-2a', now() + interval '1 hour'),"
                      " ('2003', 'sip:2003@127.0.0.1:9', 'edge-2a', now() + interval '1 hour')");
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(sdt_sipp("invite_refused_4xx", p.port, want[i].dn, NULL), 0, "DN %s",
                     want[i].dn);
    call_events_read(&e, &ce, n);
    cr_assert_eq(ce.n, n, "call events: %zu", ce.n);
    for (size_t i = 0; i < n; i++) { /* keyed by agent or DN: any order across partitions */
        json_t *d = NULL;
        for (size_t k = 0; k < ce.n; k++) {
            if (!strcmp(ce.type[k], "call.rejected") &&
                !strcmp(field(ce.data[k], "called"), want[i].dn))
                d = ce.data[k];
        }
        cr_assert_not_null(d, "no call.rejected for DN %s", want[i].dn);
        cr_expect_str_eq(field(d, "reason"), want[i].reason, "DN %s", want[i].dn);
        cr_expect_eq(json_integer_value(json_object_get(d, "reject_code")), want[i].code, "DN %s",
                     want[i].dn);
    }
    call_events_free(&ce);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls"), 0, "no calls row");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM agents WHERE call_id IS NOT NULL"
                                      " AND call_id <> 'another-call'"),
                 0, "nothing reserved");
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* PostgreSQL stopped under a running edge: a new call waits
 * SIPDRAIN_ROUTE_DB_WAIT (2 s here) for it, then gets 503 with Retry-After
 * and a Reason (the caller fails over to another edge), and its
 * call.rejected waits for the database with the other held events. With
 * PostgreSQL back, the same process routes calls again. */
Test(sip_edge, with_postgresql_away_calls_get_503_and_the_edge_routes_again_once_it_is_back,
     .timeout = 240)
{
    const char *wait2[] = {"SIPDRAIN_ROUTE_DB_WAIT=2", NULL};
    int64_t t0, waited;
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    struct call_events ce;
    const char *retry[] = {"retry_after", "5", NULL};
    const char *hold[] = {"hold_ms", "300", NULL};
    json_t *rejected = NULL;
    int64_t deadline;
    int status;
    pid_t phone;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", wait2);
    agent_ready(&e, "a1", "2001", 10);
    cr_assert_eq(sdt_script("SIPDRAIN_KEEP_DATABASES=1 tests/scripts/pg-down.sh >/dev/null 2>&1"),
                 0);
    t0 = sd_mono_ms();
    cr_expect_eq(sdt_sipp("invite_refused_503", p.port, "2001", retry), 0,
                 "503 with Retry-After 5 and Reason cause=503 (%s)", p.log);
    waited = sd_mono_ms() - t0;
    cr_expect(waited >= 2000 && waited < 6000, "the 503 after the 2 s wait, not %lld ms",
              (long long)waited);
    cr_expect(sdt_file_has(p.log, "call waits for the database"), "%s", p.log);
    cr_expect_eq(waitpid(p.pid, &status, WNOHANG), 0, "the edge exited with its database away");
    cr_assert_eq(sdt_script("tests/scripts/pg-up.sh >/dev/null 2>&1"), 0);
    deadline = sd_mono_ms() + WAIT_MS;
    while (!sdt_file_has(p.log, "database back")) {
        cr_assert_lt(sd_mono_ms(), deadline, "the edge never wrote its held events (%s)", p.log);
        usleep(100000);
    }
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_expect_eq(
        sdt_sipp("gateway_call", p.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", hold)), 0,
        "a call once the database is back");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0);
    call_events_read(&e, &ce, 4);
    cr_assert_eq(ce.n, 4, "call events: %zu (call.rejected, then offered, established, ended)",
                 ce.n);
    for (size_t k = 0; k < ce.n; k++) {
        if (!strcmp(ce.type[k], "call.rejected"))
            rejected = ce.data[k];
    }
    cr_assert_not_null(rejected, "no call.rejected for the call refused without a database");
    cr_expect_str_eq(field(rejected, "reason"), "failed");
    cr_expect_eq(json_integer_value(json_object_get(rejected, "reject_code")), 503);
    cr_expect_eq(json_integer_value(json_object_get(rejected, "retry_after_s")), 5);
    call_events_free(&ce);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE agent_id = 'a1'"
                                      " AND state = 'ended' AND end_cause = 'caller_hangup'"),
                 1);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* A switchover leaves PostgreSQL without a primary for a few seconds: a
 * call that comes then waits for it (SIPDRAIN_ROUTE_DB_WAIT, default 8 s;
 * its 100 Trying keeps the caller from sending it again) and is answered
 * once the database is back, not refused (issue #18: no call lost to a
 * planned switchover). Here PostgreSQL is stopped and started again under
 * the waiting call. */
Test(sip_edge, a_call_that_comes_while_postgresql_is_briefly_away_waits_and_is_answered,
     .timeout = 240)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    struct call_events ce;
    const char *hold[] = {"hold_ms", "300", NULL};
    pid_t phone, gw;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_assert_eq(sdt_script("SIPDRAIN_KEEP_DATABASES=1 tests/scripts/pg-down.sh >/dev/null 2>&1"),
                 0);
    gw =
        sdt_sipp_start("gateway_call", p.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", hold));
    cr_assert_eq(sdt_script("tests/scripts/pg-up.sh >/dev/null 2>&1"), 0);
    cr_expect_eq(sdt_sipp_wait(gw, WAIT_MS), 0, "the call, answered once PostgreSQL was back (%s)",
                 p.log);
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0);
    cr_expect(sdt_file_has(p.log, "call waits for the database"), "it did wait (%s)", p.log);
    call_events_read(&e, &ce, 3);
    expect_answered_call_events(&ce, "nothing rejected");
    call_events_free(&ce);
    cr_expect(!sdt_file_has(p.log, "call not routed"), "routed once (%s)", p.log);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* dsn with its host and port replaced by 127.0.0.1:port (the relay's). */
static void dsn_via(const char *dsn, int port, char *out, size_t size, char *up_host, int *up_port)
{
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    size_t len = 0;

    cr_assert_not_null(opts);
    snprintf(up_host, 64, "127.0.0.1");
    *up_port = 5432;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr")) {
            snprintf(up_host, 64, "%s", o->val);
            continue;
        }
        if (!strcmp(o->keyword, "port")) {
            *up_port = atoi(o->val);
            continue;
        }
        cr_assert(strchr(o->val, '\'') == NULL && strchr(o->val, '\\') == NULL);
        len += (size_t)snprintf(out + len, size - len, "%s='%s' ", o->keyword, o->val);
        cr_assert_lt(len, size);
    }
    snprintf(out + len, size - len, "host=127.0.0.1 port=%d", port);
    PQconninfoFree(opts);
}

/* The connection breaks in the middle of a route's COMMIT (a relay in front
 * of PostgreSQL passes the COMMIT on, then closes without its answer: the
 * switchover's fast shutdown can do the same): the COMMIT went through, the
 * edge cannot know it. The call waits and is tried again - and finds its
 * own reservation: it is answered by its agent (a1) - not refused 486 (a
 * DN: agent busy, its own) nor given a second agent (a route point: a2,
 * whose phone never answers) - with one calls row, one reservation and one
 * call.offered. */
static void route_commit_unanswered(const char *called)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    struct call_events ce;
    const char *hold[] = {"hold_ms", "300", NULL};
    static char dsn_env[700];
    const char *extra[] = {dsn_env, "SIPDRAIN_ROUTE_POINTS=7000", NULL};
    char via[600], up_host[64], up_port_s[16], port_s[16], relay_log[128], relay[1024];
    const char *dir = getenv("SIPDRAIN_SOURCE_DIR");
    int port = sdt_free_port(), up_port;
    pid_t relay_pid, phone;

    cr_assert_not_null(dir);
    env_setup(&e);
    dsn_via(e.edge_dsn, port, via, sizeof(via), up_host, &up_port);
    snprintf(dsn_env, sizeof(dsn_env), "SIPDRAIN_PG_DSN=%s", via);
    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(up_port_s, sizeof(up_port_s), "%d", up_port);
    snprintf(relay, sizeof(relay), "%s/tests/support/pg_cut_commit.py", dir);
    snprintf(relay_log, sizeof(relay_log), "/tmp/sipdrain-relay-%.12s.log", e.prefix + 2);
    unlink(relay_log);
    {
        const char *args[] = {port_s, up_host, up_port_s, NULL};
        relay_pid = sdt_spawn(relay, args, NULL, relay_log);
    }
    for (int i = 0; i < 100 && !sdt_file_has(relay_log, "listening"); i++)
        usleep(50 * 1000);
    cr_assert(sdt_file_has(relay_log, "listening"), "the relay (%s)", relay_log);
    edge_start(&e, &p, "edge-2a", extra);
    agent_ready(&e, "a1", "2001", 60); /* the longest idle: a route point's first pick */
    agent_ready(&e, "a2", "2002", 10);
    /* a2's phone: registered, never answering (nothing listens on port 9) */
    sdt_pg_run(e.dsn, "INSERT INTO registrations (dn, contact, edge_id, expires_at) VALUES"
                      " ('2002', 'sip:2002@127.0.0.1:9', 'edge-2a', now() + interval '1 hour')");
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_expect_eq(
        sdt_sipp("gateway_call", p.port, called, sdp_pair_keys(&sk, &e, "gw", "phone", hold)), 0,
        "the call to %s, answered by a1 (%s)", called, p.log);
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0);
    cr_expect(sdt_file_has(relay_log, "cut"), "the relay cut a COMMIT (%s)", relay_log);
    cr_expect(sdt_file_has(p.log, "call routed by a try whose COMMIT went unanswered"),
              "the retry found the committed try (%s)", p.log);
    cr_expect(!sdt_file_has(p.log, "call not routed"), "not refused (%s)", p.log);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls"), 1, "one calls row");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE agent_id = 'a1'"
                                      " AND state = 'ended'"),
                 1);
    /* (agent-state frees the agent on call.ended: not running here) */
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM agents WHERE call_id IS NOT NULL"), 1,
                 "one reservation");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM agents WHERE agent_id = 'a1' AND"
                                      " call_id = (SELECT min(call_id) FROM calls)"),
                 1, "a1's, for the call");
    call_events_read(&e, &ce, 3);
    expect_answered_call_events(&ce, "offered once");
    call_events_free(&ce);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
    kill(relay_pid, SIGKILL);
    sdt_wait(relay_pid, WAIT_MS);
}

Test(sip_edge, a_route_whose_commit_went_unanswered_is_answered_once, .timeout = 240)
{
    route_commit_unanswered("2001");
}

Test(sip_edge, a_route_point_call_whose_commit_went_unanswered_keeps_its_one_agent, .timeout = 240)
{
    route_commit_unanswered("7000");
}

/* Kafka stopped under a running edge: calls go on (routing needs only
 * PostgreSQL), their events wait in the outbox and reach Kafka once the
 * broker is back; the edge.control consumer reconnects, so a drain sent
 * then still reaches the edge. */
Test(sip_edge, with_kafka_away_calls_go_on_and_their_events_and_a_drain_arrive_once_it_is_back,
     .timeout = 240)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    struct call_events ce;
    const char *hold[] = {"hold_ms", "300", NULL};
    pid_t phone;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_assert_eq(sdt_script("SIPDRAIN_KEEP_TOPICS=1 tests/scripts/kafka-down.sh >/dev/null 2>&1"),
                 0);
    cr_expect_eq(
        sdt_sipp("gateway_call", p.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", hold)), 0,
        "a call with Kafka away");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE agent_id = 'a1'"
                                      " AND state = 'ended' AND end_cause = 'caller_hangup'"),
                 1);
    cr_assert_eq(sdt_script("tests/scripts/kafka-up.sh >/dev/null 2>&1"), 0);
    call_events_read(&e, &ce, 3);
    expect_answered_call_events(&ce, "after the broker came back");
    call_events_free(&ce);
    drain(&e, "edge-2a", DRAIN_A, "site", NULL);
    wait_edge_state(&e, "edge-2a", "drained");
    control(&e, "edge-2a", "edge.shutdown", json_pack("{s:s}", "drain_id", DRAIN_A));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0, "edge exit (%s)", p.log);
}

Test(sip_edge, a_route_point_call_goes_to_the_longest_idle_ready_agent, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    struct call_events ce;
    const char *extra[] = {"SIPDRAIN_ROUTE_POINTS=7000,7001", NULL};
    const char *hold[] = {"hold_ms", "200", NULL};
    pid_t older, newer;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    agent_ready(&e, "a-new", "2002", 5);
    agent_ready(&e, "a-old", "2001", 60);
    older =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    newer =
        phone_start(&e, &p, "phone_answer", "2002", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_expect_eq(
        sdt_sipp("gateway_call", p.port, "7000", sdp_pair_keys(&sk, &e, "gw", "phone", hold)), 0);
    cr_expect_eq(sdt_sipp_wait(older, WAIT_MS), 0, "the longest-idle agent's phone");
    call_events_read(&e, &ce, 1);
    cr_assert_geq(ce.n, 1);
    cr_expect_str_eq(field(ce.data[0], "agent_id"), "a-old");
    cr_expect_str_eq(field(ce.data[0], "route_point"), "7000");
    call_events_free(&ce);
    kill(newer, SIGKILL); /* never called: it still waits */
    sdt_wait(newer, 10000);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

Test(sip_edge, a_caller_cancel_reaches_the_ringing_phone, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    const char *ring[] = {"ring_ms", "500", NULL};
    pid_t phone;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    phone =
        phone_start(&e, &p, "phone_no_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_expect_eq(
        sdt_sipp("gateway_cancel", p.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", ring)), 0,
        "the caller's CANCEL");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0, "the phone got the CANCEL");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE state = 'ended'"
                                      " AND end_cause = 'cancelled' AND answered_at IS NULL"),
                 1);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* Waits until sql (a count) gives want; the calls rows are written a few
 * ms after the SIP messages. */
static void expect_count_soon(struct edge_env *e, const char *sql, long want)
{
    int64_t deadline = sd_mono_ms() + 10000;
    long got;

    while ((got = sdt_pg_scalar(e->dsn, sql)) != want && sd_mono_ms() < deadline)
        usleep(50000);
    cr_expect_eq(got, want, "%s", sql);
}

/* RFC 3261 13.3.1.4: a caller that never ACKs the 200 (it vanished, or a
 * proxy lost our 200s) is gone: after 64 x T1 sofia-sip's NUA ends the
 * dialog with a BYE of its own (within the dialog, with a Reason), and the
 * edge ends the call: the phone gets its BYE, the calls row is closed. A
 * caller that does ACK keeps its call past 64 x T1. (A caller that ACKs
 * and then vanishes without a BYE keeps its call up until a drain's
 * deadline cuts it: the edge runs no session timer.) */
Test(sip_edge, a_call_whose_caller_never_acks_the_200_is_ended_after_64_t1, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    const char *extra[] = {"SIPDRAIN_SIP_T1_MS=100", NULL}; /* 64 x T1 = 6.4 s */
    const char *hold[] = {"hold_ms", "9000", NULL};
    pid_t phone;
    int64_t t0, took;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    agent_ready(&e, "a1", "2001", 10);
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    t0 = sd_mono_ms();
    cr_expect_eq(
        sdt_sipp("gateway_no_ack", p.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", NULL)), 0,
        "answered, never ACKed, then BYE'd by the edge within the dialog");
    took = sd_mono_ms() - t0;
    cr_expect_geq(took, 6000, "not before 64 x T1: %lld ms", (long long)took);
    cr_expect_lt(took, 12000, "soon after 64 x T1: %lld ms", (long long)took);
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0, "the phone got its BYE too");
    expect_count_soon(&e,
                      "SELECT count(*) FROM calls WHERE agent_id = 'a1' AND state = 'ended'"
                      " AND ended_at - answered_at BETWEEN interval '6 seconds'"
                      " AND interval '12 seconds'",
                      1);
    /* the same with an ACK: the call lasts its 9 s */
    sdt_pg_run(e.dsn, "UPDATE agents SET call_id = NULL");
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_expect_eq(
        sdt_sipp("gateway_call", p.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", hold)), 0,
        "an ACKed call held past 64 x T1 is the caller's to end");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0);
    expect_count_soon(&e,
                      "SELECT count(*) FROM calls WHERE agent_id = 'a1' AND state = 'ended'"
                      " AND end_cause = 'caller_hangup' AND ended_at - answered_at"
                      " >= interval '9 seconds'",
                      1);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

Test(sip_edge, the_agent_hanging_up_is_relayed_to_the_caller, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    const char *hold[] = {"hold_ms", "300", NULL};
    pid_t phone;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    phone = phone_start(&e, &p, "phone_answer_hangup", "2001",
                        sdp_pair_keys(&sk, &e, "phone", "gw", hold));
    cr_expect_eq(sdt_sipp("gateway_call_remote_bye", p.port, "2001",
                          sdp_pair_keys(&sk, &e, "gw", "phone", NULL)),
                 0);
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE state = 'ended'"
                                      " AND end_cause = 'agent_hangup'"),
                 1);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

Test(sip_edge, a_hold_reinvite_and_an_info_from_the_caller_reach_the_phone_and_back, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    const char *hold[] = {"hold_ms", "200", NULL};
    pid_t phone;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    phone = phone_start(&e, &p, "phone_hold", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_expect_eq(
        sdt_sipp("gateway_hold", p.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", hold)), 0,
        "the gateway: re-INVITE a=sendonly answered a=recvonly, INFO answered 200");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0,
                 "the phone: re-INVITE a=sendonly, INFO Signal=5, then BYE");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE state = 'ended'"
                                      " AND end_cause = 'caller_hangup'"),
                 1);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

Test(sip_edge, the_drain_deadline_byes_both_legs_with_a_reason, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    struct call_events ce;
    char deadline[SD_EVENT_TIME_LEN + 1];
    pid_t phone, gateway;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    gateway = sdt_sipp_start("gateway_call_cut", p.port, "2001",
                             sdp_pair_keys(&sk, &e, "gw", "phone", NULL));
    wait_established(&e, 1);
    sd_time_format_ms(sd_wall_ms() + 2000, deadline);
    drain(&e, "edge-2a", DRAIN_A, "site", json_pack("{s:s}", "deadline_at", deadline));
    cr_expect_eq(sdt_sipp_wait(gateway, WAIT_MS), 0,
                 "the caller: BYE with Reason SIP;cause=503 ... deadline");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0, "the phone: BYE from the edge");
    call_events_read(&e, &ce, 3);
    cr_assert_eq(ce.n, 3, "call events: %zu", ce.n);
    cr_expect_str_eq(ce.type[2], "call.ended");
    cr_expect_str_eq(field(ce.data[2], "end_cause"), "drain_deadline");
    call_events_free(&ce);
    wait_edge_state(&e, "edge-2a", "drained");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE state = 'ended'"
                                      " AND end_cause = 'drain_deadline'"),
                 1);
    control(&e, "edge-2a", "edge.shutdown", json_pack("{s:s}", "drain_id", DRAIN_A));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
    {
        char states[256][16];
        size_t n = statuses(&e, "edge-2a", states, 256);
        struct sdt_msgs m = sdt_consume(e.status, (size_t)sdt_topic_count(e.status), 10000);
        struct sd_err err = {0};
        struct sd_event ev;
        cr_assert_gt(m.n, 0);
        cr_assert_eq(sd_event_parse(m.m[m.n - 1].value, m.m[m.n - 1].len, &ev, &err), 0);
        cr_expect_eq(json_integer_value(json_object_get(ev.data, "calls_cut")), 1,
                     "edge.status calls_cut");
        sd_event_clear(&ev);
        sdt_msgs_free(&m);
        cr_expect_gt(n, 0);
    }
}

Test(sip_edge, a_forced_shutdown_ends_the_calls_and_stops_at_once, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    pid_t phone, gateway;
    int64_t t0;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    gateway = sdt_sipp_start("gateway_call_remote_bye", p.port, "2001",
                             sdp_pair_keys(&sk, &e, "gw", "phone", NULL));
    wait_established(&e, 1);
    t0 = sd_mono_ms();
    control(&e, "edge-2a", "edge.shutdown",
            json_pack("{s:s, s:b}", "drain_id", DRAIN_A, "force", 1));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0, "edge exit (%s)", p.log);
    cr_expect_lt(sd_mono_ms() - t0, 10000, "a forced stop waits for nothing");
    cr_expect_eq(sdt_sipp_wait(gateway, WAIT_MS), 0, "the caller got a BYE");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0, "the phone got a BYE");
    cr_expect(sdt_file_has(p.log, "why=forced_stop"), "the cut (%s)", p.log);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE state = 'ended'"
                                      " AND end_cause = 'drain_deadline'"),
                 1);
}

Test(sip_edge, a_call_begun_before_the_drain_finishes_normally_while_new_ones_are_refused,
     .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    const char *hold[] = {"hold_ms", "4000", NULL};
    const char *keys[] = {"retry_after", "30", NULL};
    pid_t phone, gateway;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    gateway =
        sdt_sipp_start("gateway_call", p.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", hold));
    {
        int64_t deadline = sd_mono_ms() + WAIT_MS;
        while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE state = 'established'") < 1) {
            cr_assert_lt(sd_mono_ms(), deadline, "the call was never established");
            usleep(50000);
        }
    }
    drain(&e, "edge-2a", DRAIN_A, "site", NULL);
    wait_edge_state(&e, "edge-2a", "draining");
    cr_expect_eq(sdt_sipp("options_503", p.port, "2001", NULL), 0);
    cr_expect_eq(sdt_sipp("invite_refused_503", p.port, "2002", keys), 0);
    cr_expect_eq(sdt_sipp_wait(gateway, WAIT_MS), 0, "the call in progress was disturbed");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0);
    wait_edge_state(&e, "edge-2a", "drained");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE state = 'ended'"
                                      " AND end_cause = 'caller_hangup'"),
                 1);
    control(&e, "edge-2a", "edge.shutdown", json_pack("{s:s}", "drain_id", DRAIN_A));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* The BYE wait (BYEs sent again within the dialog until the timeout, the
 * exit within a second of it) is tested against strict peers in
 * test_sip_bye.c. */

Test(sip_edge, a_nailed_up_agent_gets_its_call_by_reinvite_and_the_drain_byes_the_dialog,
     .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    const char *calls[] = {"calls", "1", NULL};
    const char *hold[] = {"hold_ms", "300", NULL};
    int64_t deadline;
    pid_t phone;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    phone =
        phone_start(&e, &p, "phone_nailed", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", calls));
    /* agent-state's login of a nailed_up agent opens the standing dialog. */
    sdt_send_event(e.agent_events, "a1", "EventAgentLogin",
                   json_pack("{s:s, s:s, s:s, s:s, s:s, s:n, s:b, s:b, s:{}}", "agent_id", "a1",
                             "dn", "2001", "site", "site2", "work_mode", "manual_in", "state",
                             "ready", "acw_timeout_s", "workspace", 0, "nailed_up", 1,
                             "extensions"),
                   NULL);
    deadline = sd_mono_ms() + WAIT_MS;
    while (!sdt_file_has(p.log, "nailed-up dialog open")) {
        cr_assert_lt(sd_mono_ms(), deadline, "the nailed-up dialog never opened (%s)", p.log);
        usleep(50000);
    }
    cr_expect_eq(
        sdt_sipp("gateway_call", p.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", hold)), 0,
        "the call through the nailed-up dialog");
    cr_expect(sdt_file_has(p.log, "call connected through the nailed-up dialog"));
    /* The drain ends the (parked) dialog with BYE + Reason; the phone checks it. */
    drain(&e, "edge-2a", DRAIN_A, "site", NULL);
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0,
                 "the phone: park INVITE, customer re-INVITE, park re-INVITE, BYE with Reason");
    wait_edge_state(&e, "edge-2a", "drained");
    cr_expect(sdt_file_has(p.log, "nailed-up dialog closed"));
    control(&e, "edge-2a", "edge.shutdown", json_pack("{s:s}", "drain_id", DRAIN_A));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* --- agent-originated calls ------------------------------------------------ */

/* agent-state's call.originate for agent a1 on DN 2001. */
static void originate(struct edge_env *e, const char *edge, const char *call_id,
                      const char *destination)
{
    control(e, edge, "call.originate",
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "agent_id", "a1", "dn", "2001", "destination",
                      destination, "call_id", call_id, "request_id",
                      "b0f3e2b6-08b3-40c0-ae47-3d68601ab49f"));
}

/* Starts an edge whose outbound proxy is a SIPp destination on a port of
 * its own; returns that port. */
static int edge_start_with_proxy(struct edge_env *e, struct edge_proc *p)
{
    static char proxy[64];
    const char *extra[] = {proxy, NULL};
    int port = sdt_free_port();

    snprintf(proxy, sizeof(proxy), "SIPDRAIN_OUTBOUND_PROXY=sip:127.0.0.1:%d", port);
    edge_start(e, p, "edge-2a", extra);
    return port;
}

Test(sip_edge, an_agent_originated_call_connects_phone_and_destination_by_rfc3725_flow_iv,
     .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    struct call_events ce;
    const char *dest_keys[] = {"hold_ms", "300", NULL};
    const char *phone_keys[] = {"dest", "answer", NULL};
    pid_t phone, dest;
    int dest_port;

    env_setup(&e);
    dest_port = edge_start_with_proxy(&e, &p);
    agent_ready(&e, "a1", "2001", 10);
    phone = phone_start(&e, &p, "phone_3pcc", "2001",
                        sdp_pair_keys(&sk, &e, "phone", "dest", phone_keys));
    dest = sdt_sipp_start_on("dest_answer", dest_port, p.port, "4930123456",
                             sdp_pair_keys(&sk, &e, "dest", "phone", dest_keys));
    originate(&e, "edge-2a", "out-0001", "4930123456");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0,
                 "the phone: INVITE without media, re-INVITE with the destination's offer, BYE");
    cr_expect_eq(sdt_sipp_wait(dest, WAIT_MS), 0,
                 "the destination: INVITE without SDP via the proxy, ACK with the phone's answer");
    call_events_read(&e, &ce, 3);
    expect_answered_call_events(&ce, "the call");
    for (size_t i = 0; i < ce.n; i++) {
        cr_expect_str_eq(field(ce.data[i], "call_id"), "out-0001");
        cr_expect_str_eq(field(ce.data[i], "direction"), "outbound");
        cr_expect_str_eq(field(ce.data[i], "called"), "4930123456");
        cr_expect_str_eq(field(ce.data[i], "caller"), "2001");
    }
    cr_expect_str_eq(field(ce.data[2], "end_cause"), "caller_hangup");
    cr_expect(json_is_true(json_object_get(ce.data[2], "answered")));
    call_events_free(&ce);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE call_id = 'out-0001'"
                                      " AND direction = 'outbound' AND agent_id = 'a1'"
                                      " AND state = 'ended' AND answered_at IS NOT NULL"),
                 1);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

Test(sip_edge, a_busy_destination_ends_the_agent_leg_and_the_call_as_busy, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    struct call_events ce;
    const char *phone_keys[] = {"dest", "busy", NULL};
    pid_t phone, dest;
    int dest_port;

    env_setup(&e);
    dest_port = edge_start_with_proxy(&e, &p);
    agent_ready(&e, "a1", "2001", 10);
    phone = phone_start(&e, &p, "phone_3pcc", "2001",
                        sdp_pair_keys(&sk, &e, "phone", "dest", phone_keys));
    dest = sdt_sipp_start_on("dest_busy", dest_port, p.port, "4930123456", NULL);
    originate(&e, "edge-2a", "out-0004", "tel:4930123456");
    cr_expect_eq(sdt_sipp_wait(dest, WAIT_MS), 0, "the destination: INVITE without SDP, 486");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0,
                 "the phone: INVITE without media, then BYE (no re-INVITE)");
    call_events_read(&e, &ce, 2);
    cr_assert_eq(ce.n, 2, "call events: %zu", ce.n);
    cr_expect_str_eq(ce.type[0], "call.offered");
    cr_expect_str_eq(ce.type[1], "call.ended");
    cr_expect_str_eq(field(ce.data[1], "end_cause"), "busy");
    cr_expect_eq(json_integer_value(json_object_get(ce.data[1], "sip_status")), 486);
    cr_expect(json_is_false(json_object_get(ce.data[1], "answered")));
    call_events_free(&ce);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE call_id = 'out-0004'"
                                      " AND state = 'ended' AND end_cause = 'busy'"
                                      " AND answered_at IS NULL"),
                 1);
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* call.originate that cannot be carried out: call.rejected (frees the agent,
 * with the reason agent-state answers the desktop with), and the edge
 * carries on. */
Test(sip_edge, call_originate_for_an_unregistered_phone_or_a_bad_destination_is_refused,
     .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdt_msgs m;
    struct sd_err err = {0};
    const char *want[2] = {"not_registered", "originate_failed"};

    env_setup(&e);
    edge_start_with_proxy(&e, &p);
    originate(&e, "edge-2a", "out-0002", "4930123456"); /* no phone registered */
    m = sdt_consume(e.call_events, 1, WAIT_MS);
    cr_assert_eq(m.n, 1);
    sdt_msgs_free(&m);
    sdt_pg_run(e.dsn, "INSERT INTO registrations (dn, contact, edge_id, expires_at) VALUES"
                      " ('2001', 'sip:2001@127.0.0.1:9', 'edge-2a', now() + interval '1 hour')");
    originate(&e, "edge-2a", "out-0003", "not a number");
    m = sdt_consume(e.call_events, 2, WAIT_MS);
    cr_assert_eq(m.n, 2);
    for (size_t i = 0; i < m.n; i++) {
        struct sd_event ev;
        cr_assert_eq(sd_event_parse(m.m[i].value, m.m[i].len, &ev, &err), 0);
        cr_expect_str_eq(ev.type, "call.rejected");
        cr_expect_str_eq(field(ev.data, "reason"), i == 0 ? "not_registered" : "failed");
        cr_expect_str_eq(field(ev.data, "error_reason"), want[i]);
        cr_expect_str_eq(field(ev.data, "call_id"), i == 0 ? "out-0002" : "out-0003");
        sd_event_clear(&ev);
    }
    cr_expect_eq(sdt_validate_events(&m), 0);
    sdt_msgs_free(&m);
    cr_expect_eq(sdt_topic_count(e.agent_events), 0, "the edge wrote an agent event");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls"), 0);
    cr_expect_eq(sdt_sipp("options_200", p.port, "2001", NULL), 0, "the edge carries on");
    kill(p.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* An agent logged in with nailed_up before this edge started (or whose
 * phone moved here): the phone's REGISTER opens the standing dialog. */
Test(sip_edge, a_nailed_up_agent_logged_in_earlier_gets_its_dialog_when_the_phone_registers,
     .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    const char *calls[] = {"calls", "0", NULL};
    int64_t deadline;
    pid_t phone;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    sdt_pg_run(e.dsn, "INSERT INTO agents (agent_id, dn, site, state, nailed_up) VALUES"
                      " ('a1', '2001', 'site2', 'ready', true)");
    phone =
        phone_start(&e, &p, "phone_nailed", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", calls));
    deadline = sd_mono_ms() + WAIT_MS;
    while (!sdt_file_has(p.log, "nailed-up dialog open")) {
        cr_assert_lt(sd_mono_ms(), deadline, "no nailed-up dialog after the REGISTER (%s)", p.log);
        usleep(50000);
    }
    drain(&e, "edge-2a", DRAIN_A, "site", NULL);
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0, "the phone: park INVITE, then BYE with Reason");
    wait_edge_state(&e, "edge-2a", "drained");
    control(&e, "edge-2a", "edge.shutdown", json_pack("{s:s}", "drain_id", DRAIN_A));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0);
}

/* --- behind Kamailio's dispatcher (deploy/kamailio/kamailio.cfg) ------------- */

struct lb {
    pid_t pid;
    int port;
    char log[256], list[256], dir[64];
};

/* Kamailio as the load balancer in front of edges a and b (in that order:
 * with priority_order the first edge up always gets the call first). */
static void lb_start(struct edge_env *e, struct lb *lb, const struct edge_proc *a,
                     const struct edge_proc *b, int ping_s, bool priority_order)
{
    static char args[24][300];
    const char *argv[24];
    size_t n = 0;
    FILE *f;
    int64_t deadline = sd_mono_ms() + WAIT_MS;

    memset(lb, 0, sizeof(*lb));
    lb->port = sdt_free_port();
    snprintf(lb->dir, sizeof(lb->dir), "/tmp/sipdrain-lb-XXXXXX");
    cr_assert_not_null(mkdtemp(lb->dir));
    snprintf(lb->list, sizeof(lb->list), "%s/dispatcher.list", lb->dir);
    snprintf(lb->log, sizeof(lb->log), "/tmp/sipdrain-lb-%.12s-%d.log", e->prefix + 2, lb->port);
    unlink(lb->log);
    f = fopen(lb->list, "w");
    cr_assert_not_null(f);
    /* priority: a (10) before b (5) */
    fprintf(f, "1 sip:127.0.0.1:%d 0 10\n1 sip:127.0.0.1:%d 0 5\n", a->port, b->port);
    fclose(f);
#define ARG(...) (snprintf(args[n], sizeof(args[n]), __VA_ARGS__), argv[n] = args[n], n++)
    ARG("-f");
    ARG("%s/deploy/kamailio/kamailio.cfg", sdt_source_dir());
    ARG("-L");
    ARG("/usr/lib/x86_64-linux-gnu/kamailio/modules");
    ARG("-l");
    ARG("udp:127.0.0.1:%d", lb->port);
    ARG("-A");
    ARG("DISPATCHER_LIST=\"%s\"", lb->list);
    ARG("-A");
    ARG("PING_INTERVAL=%d", ping_s);
    if (priority_order) {
        ARG("-A");
        ARG("PRIORITY_ORDER");
    }
    ARG("-m");
    ARG("64");
    ARG("-w");
    ARG("%s", lb->dir);
    ARG("-DD");
    ARG("-E");
#undef ARG
    argv[n] = NULL;
    lb->pid = sdt_spawn("/usr/sbin/kamailio", argv, NULL, lb->log);
    while (sdt_sipp("options_200", lb->port, "lb", NULL) != 0) {
        cr_assert_lt(sd_mono_ms(), deadline, "kamailio did not start (%s)", lb->log);
        usleep(200000);
    }
}

static void lb_stop(struct lb *lb)
{
    char cmd[128];

    kill(lb->pid, SIGTERM);
    sdt_wait(lb->pid, 10000);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", lb->dir);
    cr_expect_eq(system(cmd), 0);
}

static int lines_with(const char *path, const char *text)
{
    char line[4096];
    int n = 0;
    FILE *f = fopen(path, "r");

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, text) != NULL;
    if (f != NULL)
        fclose(f);
    return n;
}

/* A draining edge leaves the dispatcher's rotation by itself (OPTIONS 503),
 * and a 503 to an INVITE that raced it fails over to the next edge: the
 * gateway's calls all connect, through the edge that is still active. */
Test(sip_edge, behind_kamailio_a_draining_edge_leaves_rotation_and_503_fails_over, .timeout = 240)
{
    struct edge_env e;
    struct edge_proc a, b;
    struct sdp_keys sk;
    struct lb lb;
    const char *hold[] = {"hold_ms", "200", NULL};
    int64_t deadline;
    pid_t phone;

    env_setup(&e);
    edge_start(&e, &a, "edge-2a", NULL);
    edge_start(&e, &b, "edge-2b", NULL);
    agent_ready(&e, "a1", "2001", 10);
    drain(&e, "edge-2a", DRAIN_A, "site", NULL); /* edge-2a alone, waiting for edge.shutdown */
    wait_edge_state(&e, "edge-2a", "drained");

    /* 1. No probing (PING_INTERVAL 0): the LB offers the call to edge-2a
     *    first, gets 503 and fails over to edge-2b at once. */
    lb_start(&e, &lb, &a, &b, 0, true);
    phone =
        phone_start(&e, &b, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_expect_eq(
        sdt_sipp("gateway_call", lb.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", hold)), 0,
        "the call via the LB");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0, "the phone got it");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE edge_id = 'edge-2b'"
                                      " AND answered_at IS NOT NULL"),
                 1);
    cr_expect_eq(lines_with(lb.log, "refused"), 1, "one 503 failover (%s)", lb.log);
    lb_stop(&lb);

    /* 2. Probing every second: edge-2a answers OPTIONS 503 and leaves the
     *    rotation; the next call goes straight to edge-2b. */
    sdt_pg_run(e.dsn, "UPDATE agents SET call_id = NULL"); /* agent-state's job, not running */
    lb_start(&e, &lb, &a, &b, 1, true);
    deadline = sd_mono_ms() + WAIT_MS;
    while (lines_with(lb.log, "out of rotation") < 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "edge-2a never left the rotation (%s)", lb.log);
        usleep(200000);
    }
    cr_expect_eq(lines_with(lb.log, "out of rotation"), 1, "only edge-2a (%s)", lb.log);
    phone =
        phone_start(&e, &b, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_expect_eq(
        sdt_sipp("gateway_call", lb.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", hold)), 0,
        "the call via the LB");
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0);
    cr_expect_eq(lines_with(lb.log, "refused"), 0, "no 503 needed (%s)", lb.log);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE edge_id = 'edge-2b'"
                                      " AND answered_at IS NOT NULL"),
                 2);
    lb_stop(&lb);
    kill(a.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&a, WAIT_MS), 0);
    kill(b.pid, SIGTERM);
    cr_expect_eq(edge_exit_code(&b, WAIT_MS), 0);
}

/* Under valgrind in the normal build; in the ASan build (valgrind cannot
 * run an ASan binary) the edge's own sanitizers make a leak or an error a
 * non-zero exit instead. */
/* The dialog's route set: behind Kamailio (which record-routes), the agent
 * hangs up and the caller ignores the edge's first BYE transaction; the
 * BYE sent again goes through Kamailio, not straight to the caller's
 * Contact. gateway_call_bye_strict.xml checks every BYE's top Via is
 * Kamailio's (first_hop), besides the dialog's identifiers. */
Test(sip_edge, behind_kamailio_a_bye_sent_again_follows_the_dialogs_route_set, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct lb lb;
    struct sdp_keys sk;
    const char *extra[] = {"SIPDRAIN_SIP_T1_MS=100", "SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT=15",
                           NULL};
    const char *hold[] = {"hold_ms", "300", NULL};
    char hop[64], route[80];
    const char *keys[] = {"ignore_byes", "9", "first_hop", hop, NULL};
    pid_t phone, gw;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    agent_ready(&e, "a1", "2001", 10);
    /* gateway_call_bye_strict offers the session "gateway-offer" */
    phone = phone_start(&e, &p, "phone_answer_hangup", "2001",
                        sdp_keys(&sk, "phone-rr", "s=gateway-offer", hold));
    lb_start(&e, &lb, &p, &p, 0, true);
    snprintf(hop, sizeof(hop), "127.0.0.1:%d", lb.port);
    gw = sdt_sipp_start("gateway_call_bye_strict", lb.port, "2001", keys);
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0, "the phone's call, its hang-up");
    cr_assert_eq(kill(p.pid, SIGTERM), 0); /* the BYE wait: the BYE is sent again */
    cr_expect_eq(sdt_sipp_wait(gw, 60000), 0,
                 "the caller: every BYE in the dialog and through Kamailio (see"
                 " /tmp/sipdrain-sipp-gateway_call_bye_strict-*.err)");
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0, "edge exit (%s)", p.log);
    snprintf(route, sizeof(route), "route=\"<sip:127.0.0.1:%d", lb.port);
    cr_expect(sdt_file_has(p.log, route), "the BYE kept no route set through Kamailio (%s)", p.log);
    cr_expect(sdt_file_has(p.log, "BYE sent again"), "no BYE in a new transaction (%s)", p.log);
    cr_expect(sdt_file_has(p.log, "status=200 cseq="), "no BYE confirmed by 200 (%s)", p.log);
    lb_stop(&lb);
}

Test(sip_edge, under_valgrind_calls_registrations_and_a_drain_leave_no_error_or_leak,
     .timeout = 300)
{
    const char *sanitized = getenv("SIPDRAIN_SANITIZED");

    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    const char *hold[] = {"hold_ms", "300", NULL};
    const char *keys[] = {"retry_after", "30", NULL};
    pid_t phone;

    under_valgrind = sanitized == NULL || strcmp(sanitized, "1") != 0;
    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    agent_ready(&e, "a1", "2001", 10);
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_expect_eq(
        sdt_sipp("gateway_call", p.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", hold)), 0);
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0);
    cr_expect_eq(sdt_sipp("options_200", p.port, "2001", NULL), 0);
    drain(&e, "edge-2a", DRAIN_A, "site", NULL);
    wait_edge_state(&e, "edge-2a", "drained");
    cr_expect_eq(sdt_sipp("invite_refused_503", p.port, "2002", keys), 0);
    control(&e, "edge-2a", "edge.shutdown", json_pack("{s:s}", "drain_id", DRAIN_A));
    cr_expect_eq(edge_exit_code(&p, 120000), 0,
                 "sip-edge under valgrind: 99 = an error or a definite leak (%s)", p.log);
    if (under_valgrind)
        cr_expect(sdt_file_has(p.log, "ERROR SUMMARY: 0 errors"), "valgrind's summary (%s)", p.log);
}
