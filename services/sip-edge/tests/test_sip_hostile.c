/* test_sip_hostile - build/bin/sip-edge against hostile SIP bytes (issue
 * 12: "no packet kills an edge"). Two parts, each with its own edge,
 * database and topics, loopback only:
 *  - the fuzzer's crash: two requests in one write, the second with a
 *    Content-Length that does not fit sofia-sip's 32-bit sizes, for every
 *    such value, over TCP and UDP: an error response or a closed
 *    connection, never a dead edge;
 *  - a bounded fuzz run (fixed seed) of mutated INVITE / REGISTER /
 *    OPTIONS / BYE over UDP and TCP.
 * After each the edge must still answer OPTIONS on UDP and TCP, stop
 * cleanly on SIGTERM, and (ASan build, make asan) its log must hold no
 * sanitizer report. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "edge_harness.h"
#include "sipdrain/event.h"
#include "support.h"

#define REPLY_MS 5000 /* how long a hostile request may take to be answered */

/* ---- sockets ------------------------------------------------------------ */

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    a.sin_port = htons((uint16_t)port);
    return a;
}

/* A TCP connection to the edge; -1 when it cannot be made. */
static int tcp_open(int port)
{
    struct sockaddr_in to = loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert_geq(fd, 0);
    if (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A UDP socket bound to an ephemeral loopback port; its port in *port. */
static int udp_open(int *port)
{
    struct sockaddr_in me = loopback(0);
    socklen_t len = sizeof(me);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    *port = ntohs(me.sin_port);
    return fd;
}

/* The code of the first status line in buf from lo00 to hi99; 0 if none. */
static int status_in(const char *buf, char lo, char hi)
{
    for (const char *s = buf; (s = strstr(s, "SIP/2.0 ")) != NULL; s += 8) {
        bool line_start = s == buf || s[-1] == '\n';
        if (line_start && s[8] >= lo && s[8] <= hi)
            return atoi(s + 8);
    }
    return 0;
}

/* A final error response (3xx-6xx)? */
static bool has_error_response(const char *buf)
{
    return status_in(buf, '3', '6') != 0;
}

/* Any final response (2xx-6xx)? */
static bool has_final_response(const char *buf)
{
    return status_in(buf, '2', '6') != 0;
}

/* Reads what fd brings into buf (NUL-terminated) until the peer closes it
 * (*closed), done(buf) holds (done may be NULL), or timeout_ms passed.
 * Returns the bytes read. */
static size_t read_replies(int fd, char *buf, size_t size, int timeout_ms,
                           bool (*done)(const char *), bool *closed)
{
    int64_t deadline = sd_mono_ms() + timeout_ms;
    size_t n = 0;

    *closed = false;
    buf[0] = '\0';
    while (n + 1 < size && !(done != NULL && done(buf))) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int64_t left = deadline - sd_mono_ms();
        ssize_t r;

        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        r = recv(fd, buf + n, size - 1 - n, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0) { /* 0: orderly close; ECONNRESET: closed with data unread */
            *closed = true;
            break;
        }
        n += (size_t)r;
        buf[n] = '\0';
    }
    return n;
}

/* Discards whatever is waiting on fd (replies nobody reads). */
static size_t drain_socket(int fd)
{
    char junk[65536];
    size_t n = 0;

    while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
        n++;
    return n;
}

/* ---- the edge ----------------------------------------------------------- */

static bool edge_alive(struct edge_proc *p)
{
    int status;
    return waitpid(p->pid, &status, WNOHANG) == 0;
}

/* A raw OPTIONS over a new TCP connection: the status of its final
 * response, -1 when none came. */
static int tcp_options(int port)
{
    char msg[512], reply[4096];
    int fd = tcp_open(port), status = -1;
    bool closed;
    struct sockaddr_in me;
    socklen_t len = sizeof(me);

    if (fd < 0)
        return -1;
    getsockname(fd, (struct sockaddr *)&me, &len);
    snprintf(msg, sizeof(msg),
             "OPTIONS sip:2001@127.0.0.1:%d SIP/2.0\r\n"
             "Via: SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bKtcpopt%d\r\n"
             "From: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:2001@127.0.0.1:%d>\r\n"
             "Call-ID: tcp-options-%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
             "Content-Length: 0\r\n\r\n",
             port, ntohs(me.sin_port), ntohs(me.sin_port), port, ntohs(me.sin_port));
    if (send(fd, msg, strlen(msg), MSG_NOSIGNAL) == (ssize_t)strlen(msg)) {
        int64_t deadline = sd_mono_ms() + REPLY_MS;
        size_t n = 0;

        while (status < 0 && sd_mono_ms() < deadline) {
            const char *s = reply;
            n += read_replies(fd, reply + n, sizeof(reply) - n, 200, NULL, &closed);
            while ((s = strstr(s, "SIP/2.0 ")) != NULL) { /* skip 1xx */
                if (s[8] >= '2' && s[8] <= '6')
                    status = atoi(s + 8);
                s += 8;
            }
            if (closed || n + 1 >= sizeof(reply))
                break;
        }
    }
    close(fd);
    return status;
}

/* The edge answers OPTIONS 200 on UDP (SIPp) and on TCP. */
static void expect_serving(struct edge_proc *p, const char *after)
{
    cr_expect_eq(sdt_sipp("options_200", p->port, "2001", NULL), 0,
                 "no 200 to OPTIONS over UDP after %s (%s)", after, p->log);
    cr_expect_eq(tcp_options(p->port), 200, "no 200 to OPTIONS over TCP after %s (%s)", after,
                 p->log);
}

/* SIGTERM: the edge drains (no calls) and exits 0; then its log must hold
 * no sanitizer report (only an ASan build writes one: make asan). */
static void stop_and_check_log(struct edge_proc *p)
{
    kill(p->pid, SIGTERM);
    cr_expect_eq(edge_exit_code(p, WAIT_MS), 0, "sip-edge exit code (%s)", p->log);
    cr_expect_not(sdt_file_has(p->log, "Sanitizer"), "a sanitizer report in %s", p->log);
    cr_expect_not(sdt_file_has(p->log, "runtime error"), "a UBSan report in %s", p->log);
}

/* ---- the reproducer ----------------------------------------------------- */

/* The fuzzer's bytes: a valid OPTIONS, then one whose Content-Length is cl,
 * with one body byte. With transport "TCP", via_port 40000 and cl
 * 2147483648 they are the 424 bytes of the issue. */
static int hostile_pair(char *buf, size_t size, const char *transport, int via_port, const char *cl)
{
    static const char req[] = "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n"
                              "Via: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bKc%d\r\n"
                              "From: <sip:b@127.0.0.1>;tag=1\r\n"
                              "To: <sip:a@127.0.0.1>\r\n"
                              "Call-ID: c%d\r\n"
                              "CSeq: 1 OPTIONS\r\n"
                              "Max-Forwards: 70\r\n"
                              "Content-Length: %s\r\n\r\n%s";
    int n = snprintf(buf, size, req, transport, via_port, 1, 1, "0", "");

    n += snprintf(buf + n, size - (size_t)n, req, transport, via_port, 2, 2, cl, "x");
    cr_assert_lt((size_t)n, size);
    return n;
}

struct cl_case {
    char value[24];
};

ParameterizedTestParameters(sip_hostile, huge_content_length_after_a_request)
{
    /* 2^31-1, 2^31, 2^32-1, 2^32, 2^63, -1, and one that fits no integer. */
    static struct cl_case cases[] = {
        {"2147483647"},          {"2147483648"}, {"4294967295"},          {"4294967296"},
        {"9223372036854775808"}, {"-1"},         {"99999999999999999999"}};
    return cr_make_param_array(struct cl_case, cases, sizeof(cases) / sizeof(cases[0]));
}

/* Over TCP the connection gets an error response and is closed. Over UDP
 * the same datagram gets the first request answered, and the second
 * request alone an error response. Either way the edge lives on and
 * answers OPTIONS on both transports. */
ParameterizedTest(struct cl_case *c, sip_hostile, huge_content_length_after_a_request,
                  .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    struct sockaddr_in to;
    char bytes[1024], reply[8192];
    const char *m;
    bool closed;
    int fd, n, uport;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    to = loopback(p.port);

    /* TCP: the issue's bytes, one write. */
    n = hostile_pair(bytes, sizeof(bytes), "TCP", 40000, c->value);
    if (!strcmp(c->value, "2147483648"))
        cr_assert_eq(n, 424, "not the fuzzer's 424 bytes");
    fd = tcp_open(p.port);
    cr_assert_geq(fd, 0, "no TCP connection to the edge (%s)", p.log);
    cr_assert_eq(send(fd, bytes, (size_t)n, MSG_NOSIGNAL), n);
    read_replies(fd, reply, sizeof(reply), REPLY_MS, NULL, &closed);
    close(fd);
    cr_log_info("Content-Length %s over TCP: error response %d, connection %s", c->value,
                status_in(reply, '3', '6'), closed ? "closed" : "left open");
    cr_expect(closed || has_error_response(reply),
              "Content-Length %s over TCP: no error response and the connection left open",
              c->value);
    usleep(200000);
    cr_assert(edge_alive(&p), "sip-edge died on Content-Length %s over TCP (%s)", c->value, p.log);

    /* UDP: the same two requests in one datagram. A datagram is one
     * message (RFC 3261 18.3): the first request is answered, the bytes
     * after its Content-Length are dropped. */
    fd = udp_open(&uport);
    n = hostile_pair(bytes, sizeof(bytes), "UDP", uport, c->value);
    cr_assert_eq(sendto(fd, bytes, (size_t)n, 0, (struct sockaddr *)&to, sizeof(to)), n);
    read_replies(fd, reply, sizeof(reply), REPLY_MS, has_final_response, &closed);
    cr_log_info("Content-Length %s over UDP, both requests: %d", c->value,
                status_in(reply, '2', '6'));
    cr_expect(has_final_response(reply), "Content-Length %s over UDP: no response (got %.40s)",
              c->value, reply);
    usleep(200000);
    cr_assert(edge_alive(&p), "sip-edge died on Content-Length %s over UDP (%s)", c->value, p.log);

    /* UDP: the second request alone, its body cut short by the datagram's end. */
    m = strstr(bytes + 1, "OPTIONS sip:");
    cr_assert_not_null(m);
    cr_assert_eq(sendto(fd, m, strlen(m), 0, (struct sockaddr *)&to, sizeof(to)),
                 (ssize_t)strlen(m));
    read_replies(fd, reply, sizeof(reply), REPLY_MS, has_error_response, &closed);
    close(fd);
    cr_log_info("Content-Length %s over UDP, alone: %d", c->value, status_in(reply, '3', '6'));
    cr_expect(has_error_response(reply),
              "Content-Length %s alone over UDP: no error response (got %.40s)", c->value, reply);
    usleep(200000);
    cr_assert(edge_alive(&p), "sip-edge died on Content-Length %s alone over UDP (%s)", c->value,
              p.log);

    expect_serving(&p, "a huge Content-Length");
    cr_assert(edge_alive(&p), "sip-edge died (%s)", p.log);
    stop_and_check_log(&p);
}

/* ---- the fuzz run ------------------------------------------------------- */

#define FUZZ_SEED     0x5eed0012u
#define FUZZ_MESSAGES 4000
#define FUZZ_MAX_MS   120000 /* the sending phase stops here whatever the count */
#define FUZZ_MSG_MAX  8192

/* splitmix64: the same sequence on every machine for one seed. */
static uint64_t fuzz_state;

static uint64_t fuzz_next(void)
{
    uint64_t z = (fuzz_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* A number in [0, n). */
static size_t fuzz_below(size_t n)
{
    return n == 0 ? 0 : (size_t)(fuzz_next() % n);
}

enum fuzz_method { FUZZ_INVITE, FUZZ_REGISTER, FUZZ_OPTIONS, FUZZ_BYE, FUZZ_METHOD_COUNT };

/* A valid request of method m (before mutation); Via names transport and
 * port (;rport: UDP replies come back to the sender). Contacts point at the
 * discard port, so whatever the edge sends them is refused at once. */
static size_t fuzz_template(char *buf, size_t size, enum fuzz_method m, const char *transport,
                            int via_port, unsigned seq)
{
    static const char sdp[] = "v=0\r\no=gw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                              "t=0 0\r\nm=audio 9 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
                              "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
    int n = 0;

    switch (m) {
    case FUZZ_INVITE:
        n = snprintf(buf, size,
                     "INVITE sip:2001@127.0.0.1 SIP/2.0\r\n"
                     "Via: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bKfi%u;rport\r\n"
                     "From: \"Gateway\" <sip:+15550001@127.0.0.1>;tag=fi%u\r\n"
                     "To: <sip:2001@127.0.0.1>\r\nCall-ID: fuzz-invite-%u@127.0.0.1\r\n"
                     "CSeq: 1 INVITE\r\nContact: <sip:gw@127.0.0.1:9>\r\nMax-Forwards: 70\r\n"
                     "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nSupported: timer\r\n"
                     "Session-Expires: 1800\r\nContent-Type: application/sdp\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     transport, via_port, seq, seq, seq, strlen(sdp), sdp);
        break;
    case FUZZ_REGISTER:
        n = snprintf(buf, size,
                     "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
                     "Via: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bKfr%u;rport\r\n"
                     "From: <sip:29%02u@127.0.0.1>;tag=fr%u\r\nTo: <sip:29%02u@127.0.0.1>\r\n"
                     "Call-ID: fuzz-register-%u@127.0.0.1\r\nCSeq: %u REGISTER\r\n"
                     "Contact: <sip:29%02u@127.0.0.1:9;transport=udp>;expires=60\r\n"
                     "Expires: 60\r\nMax-Forwards: 70\r\nUser-Agent: fuzz\r\n"
                     "Content-Length: 0\r\n\r\n",
                     transport, via_port, seq, seq % 100, seq, seq % 100, seq, seq, seq % 100);
        break;
    case FUZZ_OPTIONS:
        n = snprintf(buf, size,
                     "OPTIONS sip:2001@127.0.0.1 SIP/2.0\r\n"
                     "Via: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bKfo%u;rport\r\n"
                     "From: <sip:lb@127.0.0.1>;tag=fo%u\r\nTo: <sip:2001@127.0.0.1>\r\n"
                     "Call-ID: fuzz-options-%u\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                     "Accept: application/sdp\r\nContent-Length: 0\r\n\r\n",
                     transport, via_port, seq, seq, seq);
        break;
    case FUZZ_BYE:
    default:
        n = snprintf(buf, size,
                     "BYE sip:2001@127.0.0.1 SIP/2.0\r\n"
                     "Via: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bKfb%u;rport\r\n"
                     "From: <sip:+15550001@127.0.0.1>;tag=fi%u\r\n"
                     "To: <sip:2001@127.0.0.1>;tag=edge%u\r\n"
                     "Call-ID: fuzz-invite-%u@127.0.0.1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\n"
                     "Reason: Q.850;cause=16\r\nContent-Length: 0\r\n\r\n",
                     transport, via_port, seq, seq, seq, seq);
        break;
    }
    cr_assert(n > 0 && (size_t)n < size);
    return (size_t)n;
}

/* Each template, unmutated, over UDP gets a final response: the fuzz run
 * starts from requests the edge understands. */
static void fuzz_templates_are_answered(int port)
{
    static const char *const names[FUZZ_METHOD_COUNT] = {"INVITE", "REGISTER", "OPTIONS", "BYE"};
    struct sockaddr_in to = loopback(port);
    char msg[FUZZ_MSG_MAX], reply[8192];
    int uport, fd = udp_open(&uport);
    bool closed;

    for (int m = 0; m < FUZZ_METHOD_COUNT; m++) {
        size_t n = fuzz_template(msg, sizeof(msg), (enum fuzz_method)m, "UDP", uport, 90000u + m);
        sendto(fd, msg, n, 0, (struct sockaddr *)&to, sizeof(to));
        read_replies(fd, reply, sizeof(reply), REPLY_MS, has_final_response, &closed);
        cr_expect(has_final_response(reply), "the %s template got no final response", names[m]);
        cr_log_info("template %s: %d", names[m], status_in(reply, '2', '6'));
    }
    close(fd);
}

/* Numbers that have broken SIP stacks (and this one). */
static const char *const fuzz_numbers[] = {
    "0",
    "1",
    "-1",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "99999999999999999999",
    "00000000001",
    "1e9",
    "0x10",
    "",
    " 1",
    "+1",
};

/* Bytes that mean something to a SIP parser. */
static const char *const fuzz_tokens[] = {"\r\n",
                                          "\r\n\r\n",
                                          "\n",
                                          "\r",
                                          " ",
                                          "\t",
                                          ";",
                                          ",",
                                          ":",
                                          "<",
                                          ">",
                                          "\"",
                                          "%",
                                          "%00",
                                          "\\",
                                          "sip:",
                                          "sips:",
                                          "@",
                                          "[::1]",
                                          ";branch=",
                                          ";tag=",
                                          ";rport",
                                          "=",
                                          "\x80\xff",
                                          "\0",
                                          "\r\n ",
                                          "Content-Length: ",
                                          "\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx",
                                          "\r\nCSeq: 1 ACK",
                                          "\r\nContent-Length: 99999999999999999999"};

/* Replaces len bytes at off by the bytes of with (wlen), within max. */
static size_t fuzz_splice(char *b, size_t n, size_t max, size_t off, size_t len, const char *with,
                          size_t wlen)
{
    if (off > n)
        off = n;
    if (len > n - off)
        len = n - off;
    if (n - len + wlen > max)
        return n;
    memmove(b + off + wlen, b + off + len, n - off - len);
    memcpy(b + off, with, wlen);
    return n - len + wlen;
}

/* One mutation of b (n bytes, room for max); returns the new length. */
static size_t fuzz_mutate(char *b, size_t n, size_t max)
{
    size_t off = fuzz_below(n + 1), len;
    char tmp[256];

    switch (fuzz_below(10)) {
    case 0: /* flip a bit */
        if (n > 0)
            b[fuzz_below(n)] ^= (char)(1u << fuzz_below(8));
        return n;
    case 1: /* random bytes */
        len = 1 + fuzz_below(16);
        for (size_t i = 0; i < len; i++)
            tmp[i] = (char)fuzz_below(256);
        return fuzz_splice(b, n, max, off, fuzz_below(2) ? len : 0, tmp, len);
    case 2: /* delete a range */
        return fuzz_splice(b, n, max, off, 1 + fuzz_below(64), "", 0);
    case 3: /* repeat a range */
        len = 1 + fuzz_below(sizeof(tmp) - 1);
        if (len > n - off)
            len = n - off;
        memcpy(tmp, b + off, len);
        return fuzz_splice(b, n, max, fuzz_below(n + 1), 0, tmp, len);
    case 4: { /* a number becomes a hostile one */
        const char *num = fuzz_numbers[fuzz_below(sizeof(fuzz_numbers) / sizeof(fuzz_numbers[0]))];
        size_t at = off;
        while (at < n && (b[at] < '0' || b[at] > '9'))
            at++;
        for (len = 0; at + len < n && b[at + len] >= '0' && b[at + len] <= '9'; len++)
            ;
        return fuzz_splice(b, n, max, at, len, num, strlen(num));
    }
    case 5: { /* the Content-Length value becomes a hostile number */
        const char *num = fuzz_numbers[fuzz_below(sizeof(fuzz_numbers) / sizeof(fuzz_numbers[0]))];
        static const char name[] = "Content-Length: ";
        size_t at = 0;
        while (at + sizeof(name) - 1 <= n && memcmp(b + at, name, sizeof(name) - 1) != 0)
            at++;
        if (at + sizeof(name) - 1 > n)
            return n;
        off = at + sizeof(name) - 1;
        for (len = 0; off + len < n && b[off + len] != '\r'; len++)
            ;
        return fuzz_splice(b, n, max, off, len, num, strlen(num));
    }
    case 6: /* cut short */
        return off;
    case 7: { /* a token */
        size_t i = fuzz_below(sizeof(fuzz_tokens) / sizeof(fuzz_tokens[0]));
        const char *t = fuzz_tokens[i];
        return fuzz_splice(b, n, max, off, fuzz_below(3) == 0 ? 1 : 0, t, t[0] ? strlen(t) : 1);
    }
    case 8: /* one byte replaced by a random one */
        if (n > 0)
            b[fuzz_below(n)] = (char)fuzz_below(256);
        return n;
    default: /* a long run of one byte (a long header, a long number) */
        len = 1 + fuzz_below(sizeof(tmp));
        memset(tmp, fuzz_below(2) ? 'a' : '9', len);
        return fuzz_splice(b, n, max, off, 0, tmp, len);
    }
}

struct fuzz_counts {
    size_t udp, tcp, connections, refused_connects, udp_replies, tcp_replies;
    size_t by_method[FUZZ_METHOD_COUNT];
};

/* One fuzzed message of a random method into b; returns its length. */
static size_t fuzz_message(char *b, size_t max, const char *transport, int via_port, unsigned seq,
                           struct fuzz_counts *k)
{
    enum fuzz_method m = (enum fuzz_method)fuzz_below(FUZZ_METHOD_COUNT);
    size_t n = fuzz_template(b, max, m, transport, via_port, seq);
    size_t mutations = fuzz_below(20) == 0 ? 0 : 1 + fuzz_below(4); /* 1 in 20 left valid */

    k->by_method[m]++;
    for (size_t i = 0; i < mutations; i++)
        n = fuzz_mutate(b, n, max);
    return n;
}

/* Mutated requests as seeded, over UDP (one datagram each) and TCP (1-8
 * per connection, in one write, one write each, or cut at random points),
 * until FUZZ_MESSAGES are sent or FUZZ_MAX_MS passed. Replies are read and
 * dropped as they come. */
static void fuzz_run(int port, struct fuzz_counts *k)
{
    static char msg[FUZZ_MSG_MAX], batch[8 * FUZZ_MSG_MAX];
    struct sockaddr_in to = loopback(port);
    int64_t deadline = sd_mono_ms() + FUZZ_MAX_MS;
    int uport, udp = udp_open(&uport);
    unsigned seq = 0;

    fuzz_state = FUZZ_SEED;
    while (k->udp + k->tcp < FUZZ_MESSAGES && sd_mono_ms() < deadline) {
        if (k->udp <= k->tcp) {
            size_t n = fuzz_message(msg, sizeof(msg), "UDP", uport, seq++, k);
            sendto(udp, msg, n, 0, (struct sockaddr *)&to, sizeof(to));
            k->udp++;
            k->udp_replies += drain_socket(udp);
            usleep(300);
            continue;
        }
        {
            size_t count = 1 + fuzz_below(8), total = 0, off = 0;
            int how = (int)fuzz_below(3); /* 0: one write, 1: one per message, 2: random cuts */
            int fd = tcp_open(port);
            char reply[65536];
            bool closed;

            if (fd < 0) { /* the edge is gone: the test says so */
                k->refused_connects++;
                break;
            }
            k->connections++;
            for (size_t i = 0; i < count; i++) {
                size_t n = fuzz_message(msg, sizeof(msg), "TCP", 40000, seq++, k);
                if (how == 1 && send(fd, msg, n, MSG_NOSIGNAL) < 0)
                    break;
                memcpy(batch + total, msg, n);
                total += n;
                k->tcp++;
            }
            while (how != 1 && off < total) {
                size_t len = how == 0 ? total - off : 1 + fuzz_below(total - off);
                ssize_t w = send(fd, batch + off, len, MSG_NOSIGNAL);
                if (w <= 0)
                    break; /* the edge closed it: fine */
                off += (size_t)w;
                if (how == 2)
                    usleep(1000);
            }
            if (read_replies(fd, reply, sizeof(reply), 20, NULL, &closed) > 0)
                k->tcp_replies++;
            close(fd);
            usleep(300);
        }
    }
    close(udp);
}

Test(sip_hostile, a_bounded_fuzz_run_over_udp_and_tcp_leaves_the_edge_serving, .timeout = 300)
{
    struct edge_env e;
    struct edge_proc p;
    struct fuzz_counts k = {0};
    /* Short SIP timers: the edge's own requests to the fuzzer's contacts
     * (the discard port) end within seconds, not 32. */
    const char *extra[] = {"SIPDRAIN_SIP_T1_MS=100", NULL};
    int64_t t0;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    fuzz_templates_are_answered(p.port);
    t0 = sd_mono_ms();
    fuzz_run(p.port, &k);
    cr_log_info("fuzz: seed %#x, %zu messages (UDP %zu, TCP %zu on %zu connections; INVITE %zu,"
                " REGISTER %zu, OPTIONS %zu, BYE %zu), %zu UDP replies, %zu TCP connections"
                " with replies, %zu refused connects, %lld ms",
                FUZZ_SEED, k.udp + k.tcp, k.udp, k.tcp, k.connections, k.by_method[FUZZ_INVITE],
                k.by_method[FUZZ_REGISTER], k.by_method[FUZZ_OPTIONS], k.by_method[FUZZ_BYE],
                k.udp_replies, k.tcp_replies, k.refused_connects, (long long)(sd_mono_ms() - t0));
    cr_expect_geq(k.udp + k.tcp, FUZZ_MESSAGES / 2, "the fuzz run sent too little (%zu)",
                  k.udp + k.tcp);
    cr_expect_eq(k.refused_connects, 0, "the edge refused TCP connections during the run (%s)",
                 p.log);
    cr_assert(edge_alive(&p), "sip-edge died during the fuzz run (%s)", p.log);
    expect_serving(&p, "the fuzz run");
    cr_assert(edge_alive(&p), "sip-edge died (%s)", p.log);
    stop_and_check_log(&p);
}
