/* test_sip_guard.c - only trusted sources place calls (issue #14, point
 * 2), against a real sip-edge on the patched sofia-sip (its request
 * filter), PostgreSQL and Kafka. The untrusted caller is a UDP socket of
 * the test's on 127.0.0.2 that counts every datagram the edge sends it:
 * a 403 answered statefully would come again and again (Timer G) until
 * an ACK; answered statelessly it comes once per INVITE. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "edge_harness.h"
#include "support.h"

static const char *const only_127_0_0_1[] = {"SIPDRAIN_TRUSTED_PEERS=127.0.0.1/32", NULL};

/* A UDP socket on 127.0.0.2 (another host for the edge). */
static void send_to_edge(int fd, int edge_port, const char *text)
{
    struct sockaddr_in edge = {.sin_family = AF_INET, .sin_port = htons((uint16_t)edge_port)};

    inet_pton(AF_INET, "127.0.0.1", &edge.sin_addr);
    sendto(fd, text, strlen(text), 0, (struct sockaddr *)&edge, sizeof(edge));
}

/* Every datagram that arrives within ms: how many, the first in first. */
static int datagrams(int fd, int ms, char *first, size_t size)
{
    int64_t until = sd_mono_ms() + ms;
    int n = 0;
    char buf[4096];

    first[0] = '\0';
    while (sd_mono_ms() < until) {
        ssize_t got = recv(fd, buf, sizeof(buf) - 1, 0);
        if (got <= 0)
            continue;
        buf[got] = '\0';
        if (n++ == 0)
            snprintf(first, size, "%s", buf);
    }
    return n;
}

static void invite_text(char *out, size_t size, int edge_port, int port, int n)
{
    static const char sdp[] = "v=0\r\no=gw 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\n"
                              "t=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

    snprintf(out, size,
             "INVITE sip:2001@127.0.0.1:%d SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.2:%d;branch=z9hG4bK-untrusted-%d;rport\r\n"
             "From: <sip:caller@127.0.0.2>;tag=u%d\r\nTo: <sip:2001@127.0.0.1:%d>\r\n"
             "Call-ID: untrusted-%d-%d\r\nCSeq: 1 INVITE\r\n"
             "Contact: <sip:caller@127.0.0.2:%d>\r\nMax-Forwards: 70\r\n"
             "Content-Type: application/sdp\r\nContent-Length: %zu\r\n\r\n%s",
             edge_port, port, n, n, edge_port, port, n, port, strlen(sdp), sdp);
}

/* An INVITE from 127.0.0.2: one 403 per INVITE and nothing after it (3 s:
 * a stateful 403 would have come again at 0.5, 1 and 2 s), no calls row,
 * no call event, counted in /metrics, one log line for three of them. A
 * REGISTER from the same host is still served (phones are anywhere). */
Test(sip_guard, an_invite_from_an_untrusted_source_gets_one_stateless_403_and_leaves_nothing,
     .timeout = 90)
{
    struct edge_env e;
    struct edge_proc p;
    char msg[2048], first[4096], body[16384], extra_http[64];
    const char *extra[3];
    int port, fd, http_port = sdt_free_port();

    snprintf(extra_http, sizeof(extra_http), "SIPDRAIN_HTTP_ADDR=127.0.0.1:%d", http_port);
    extra[0] = only_127_0_0_1[0];
    extra[1] = extra_http;
    extra[2] = NULL;
    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    agent_ready(&e, "a1", "2001", 10);
    fd = udp_socket_on("127.0.0.2", 200, &port);
    invite_text(msg, sizeof(msg), p.port, port, 1);
    send_to_edge(fd, p.port, msg);
    cr_expect_eq(datagrams(fd, 3000, first, sizeof(first)), 1, "answers to one INVITE: %s", first);
    cr_expect(strncmp(first, "SIP/2.0 403 ", 12) == 0, "%s", first);
    cr_expect_not_null(strstr(first, "Call-ID: untrusted-"), "%s", first);
    for (int i = 2; i <= 3; i++) {
        invite_text(msg, sizeof(msg), p.port, port, i);
        send_to_edge(fd, p.port, msg);
        cr_expect_eq(datagrams(fd, 1000, first, sizeof(first)), 1, "INVITE %d: %s", i, first);
    }
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls"), 0);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM agents WHERE call_id IS NOT NULL"), 0,
                 "an agent was reserved");
    cr_expect_eq(sdt_topic_count(e.call_events), 0, "call events were written");
    /* a REGISTER from the same host: challenged, not refused */
    snprintf(msg, sizeof(msg),
             "REGISTER sip:127.0.0.1:%d SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.2:%d;branch=z9hG4bK-reg-u;rport\r\n"
             "From: <sip:2001@127.0.0.1>;tag=r\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: reg-u\r\n"
             "CSeq: 1 REGISTER\r\nContact: <sip:2001@127.0.0.2:%d>\r\nMax-Forwards: 70\r\n"
             "Content-Length: 0\r\n\r\n",
             p.port, port, port);
    send_to_edge(fd, p.port, msg);
    datagrams(fd, 1500, first, sizeof(first));
    cr_expect(strncmp(first, "SIP/2.0 401 ", 12) == 0, "REGISTER from 127.0.0.2: %s", first);
    close(fd);
    usleep(1500000); /* the next /metrics snapshot */
    cr_assert_eq(sdt_http_get(http_port, "/metrics", body, sizeof(body)), 200);
    cr_expect_not_null(strstr(body, "sipdrain_edge_requests_refused_total{edge=\"edge-2a\","
                                    "site=\"site2\",why=\"untrusted\"} 3"),
                       "%s", body);
    cr_expect(sdt_file_has(p.log, "msg=\"request refused\" from=127.0.0.2 method=INVITE"), "%s",
              p.log);
    kill(p.pid, SIGKILL);
}

/* The same edge takes the call of a trusted gateway (127.0.0.1). */
Test(sip_guard, an_invite_from_a_trusted_source_is_routed, .timeout = 90)
{
    struct edge_env e;
    struct edge_proc p;
    struct sdp_keys sk;
    const char *hold[] = {"hold_ms", "200", NULL};
    pid_t phone;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", only_127_0_0_1);
    agent_ready(&e, "a1", "2001", 10);
    phone =
        phone_start(&e, &p, "phone_answer", "2001", sdp_pair_keys(&sk, &e, "phone", "gw", NULL));
    cr_expect_eq(
        sdt_sipp("gateway_call", p.port, "2001", sdp_pair_keys(&sk, &e, "gw", "phone", hold)), 0);
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE agent_id = 'a1'"), 1);
    cr_expect_not(sdt_file_has(p.log, "request refused"), "%s", p.log);
    kill(p.pid, SIGKILL);
}
