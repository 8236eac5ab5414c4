/* test_sip_tls.c - SIP over TLS (issue #14), against the real sip-edge, a
 * real phone (baresip) and the openssl command line, with a certificate
 * authority the test makes (tests/scripts/test-ca.sh):
 *   - baresip registers over TLS with its password and takes a call, whose
 *     INVITE, ACK and BYE come back over the connection it registered on;
 *     with a wrong password it is refused and nothing is stored;
 *   - one edge serves UDP, TCP and TLS at once, and its certificate
 *     verifies with the CA (and not with another);
 *   - SIPDRAIN_TLS_VERIFY=all refuses a client without a certificate;
 *   - TLS 1.1 is refused even where OpenSSL's configuration allows it
 *     (tools/sofia-sip/0004), which a plain openssl server shows it does;
 *   - bad certificate settings stop the edge at start (exit 2). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "baresip_phone.h"
#include "edge_harness.h"
#include "support.h"

static char ca_dir[64];

static void make_ca(void)
{
    char cmd[512];

    snprintf(ca_dir, sizeof(ca_dir), "/tmp/sipdrain-tls-ca-XXXXXX");
    cr_assert_not_null(mkdtemp(ca_dir));
    snprintf(cmd, sizeof(cmd), "%s/tests/scripts/test-ca.sh %s", sdt_source_dir(), ca_dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    edge_tls_dir = ca_dir;
}

static void remove_ca(void)
{
    char cmd[128];

    edge_tls_dir = NULL;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", ca_dir);
    cr_expect_eq(system(cmd), 0);
}

/* Runs a shell command; its output (stdout and stderr) into out. Returns
 * its exit status. */
static int run(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t size, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    FILE *p;
    size_t n = 0, got;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
    p = popen(cmd, "r");
    cr_assert_not_null(p, "%s", cmd);
    while (n + 1 < size && (got = fread(out + n, 1, size - n - 1, p)) > 0)
        n += got;
    out[n] = '\0';
    return pclose(p);
}

/* An OPTIONS through openssl s_client to the edge's TLS port, verifying
 * its certificate against cafile for IP 127.0.0.1; the whole output in
 * out. Extra s_client options in opts (e.g. a client certificate). */
static void tls_options(char *out, size_t size, int port, const char *cafile, const char *opts)
{
    run(out, size,
        "printf 'OPTIONS sip:127.0.0.1:%d SIP/2.0\\r\\n"
        "Via: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKtls1;rport\\r\\n"
        "From: <sip:probe@127.0.0.1>;tag=t1\\r\\nTo: <sip:127.0.0.1:%d>\\r\\n"
        "Call-ID: tls-options-1\\r\\nCSeq: 1 OPTIONS\\r\\nMax-Forwards: 70\\r\\n"
        "Content-Length: 0\\r\\n\\r\\n' |"
        " timeout 5 openssl s_client -connect 127.0.0.1:%d -CAfile %s -verify_return_error"
        " -verify_ip 127.0.0.1 -ign_eof %s",
        port, port, port, cafile, opts != NULL ? opts : "");
}

/* An OPTIONS over a TCP connection of its own: the status line of the
 * answer, or "" (none within 5 s). */
static void tcp_options(char *status, size_t size, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char req[512], buf[2048];
    ssize_t got;
    int len;

    status[0] = '\0';
    cr_assert(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "TCP connect to %d", port);
    len = snprintf(req, sizeof(req),
                   "OPTIONS sip:127.0.0.1:%d SIP/2.0\r\n"
                   "Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKtcp1;rport\r\n"
                   "From: <sip:probe@127.0.0.1>;tag=t1\r\nTo: <sip:127.0.0.1:%d>\r\n"
                   "Call-ID: tcp-options-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n",
                   port, port);
    cr_assert_eq(write(fd, req, (size_t)len), len);
    got = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (got <= 0)
        return;
    buf[got] = '\0';
    snprintf(status, size, "%.*s", (int)strcspn(buf, "\r\n"), buf);
}

/* The source port of the connection baresip registered on: its trace says
 * "TLS 127.0.0.1:<port> -> 127.0.0.1:<edge's TLS port>" and REGISTER on
 * the next line. 0 when there is none. */
static int register_connection_port(const struct baresip *b, int tls_port)
{
    FILE *f = fopen(b->log, "r");
    char line[512], arrow[64];
    int port = 0, candidate = 0;

    cr_assert_not_null(f, "%s", b->log);
    snprintf(arrow, sizeof(arrow), " -> 127.0.0.1:%d", tls_port);
    while (port == 0 && fgets(line, sizeof(line), f) != NULL) {
        if (candidate > 0 && strncmp(line, "REGISTER ", 9) == 0)
            port = candidate;
        candidate = 0;
        if (strstr(line, arrow) != NULL)
            sscanf(line, "TLS 127.0.0.1:%d ->", &candidate);
    }
    fclose(f);
    return port;
}

Test(sip_tls, baresip_registers_over_tls_and_its_calls_come_back_over_that_connection,
     .init = make_ca, .fini = remove_ca, .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct baresip phone, bad;
    struct sdp_keys sk;
    const char *hold[] = {"hold_ms", "1000", NULL};
    char cafile[128], m_line[64], text[160];
    /* it asks for an hour; over TLS the edge grants 900 s (FLOW_MAX_EXPIRES) */
    struct baresip_opts o = {
        .user = "2001", .auto_answer = true, .name = "tls-agent", .regint = 3600};
    struct baresip_opts w = {
        .user = "2002", .auto_answer = true, .name = "tls-badpw", .password = "not-the-password"};
    int64_t deadline;
    int conn;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    cr_expect(sdt_file_has(p.log, "tls_url=sips:127.0.0.1:"), "%s", p.log);
    agent_ready(&e, "a1", "2001", 5);
    snprintf(cafile, sizeof(cafile), "%s/ca.pem", ca_dir);
    o.registrar_tls_port = w.registrar_tls_port = p.tls_port;
    o.tls_ca = w.tls_ca = cafile;
    baresip_start(&phone, &o);
    cr_assert(baresip_wait(&phone, BARESIP_REGISTERED, 1, WAIT_MS), "%s", phone.log);
    cr_expect(baresip_count(&phone, "SIP/2.0 401 Unauthorized") >= 1, "not challenged (%s)",
              phone.log);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM registrations WHERE dn = '2001'"
                                      " AND contact LIKE '%transport=tls%'"),
                 1, "the TLS contact is stored");
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM registrations WHERE dn = '2001'"
                                      " AND expires_at < now() + interval '901 seconds'"
                                      " AND expires_at > now() + interval '800 seconds'"),
                 1, "registered for 900 s, not the hour it asked for");
    cr_expect_geq(baresip_count(&phone, "transport=tls>;expires=900"), 1, "the 200's Contact (%s)",
                  phone.log);
    conn = register_connection_port(&phone, p.tls_port);
    cr_assert_gt(conn, 0, "no REGISTER over TLS in %s", phone.log);

    /* a gateway's call over UDP; the edge reaches the phone over TLS */
    snprintf(m_line, sizeof(m_line), "m=audio %d", phone.rtp_port);
    cr_expect_eq(sdt_sipp("gateway_call", p.port, "2001", sdp_keys(&sk, "gw-tls", m_line, hold)), 0,
                 "the gateway: 200 with baresip's SDP, BYE answered (%s)", phone.log);
    cr_expect(baresip_wait(&phone, BARESIP_ESTABLISHED, 1, WAIT_MS), "%s", phone.log);
    cr_expect(baresip_wait(&phone, BARESIP_TERMINATED, 1, WAIT_MS), "%s", phone.log);
    /* every request of the call came over the connection the phone
     * registered on, none over a new one (baresip listens for TLS too, at
     * sip_port + 1, without a certificate: a connection there fails) */
    snprintf(text, sizeof(text), "TLS 127.0.0.1:%d -> 127.0.0.1:%d", p.tls_port, conn);
    cr_expect_geq(baresip_count(&phone, text), 4, "the 200s, INVITE, ACK, BYE over %d (%s)", conn,
                  phone.log);
    cr_expect_eq(baresip_count(&phone, "INVITE sip:2001"), 1, "%s", phone.log);
    cr_expect_eq(baresip_count(&phone, "tls: accept error"), 0,
                 "the edge opened a connection of its own to the phone (%s)", phone.log);
    /* the row is written by the edge's bus thread, a moment after the BYE */
    deadline = sd_mono_ms() + WAIT_MS;
    while (sdt_pg_scalar(e.dsn, "SELECT count(*) FROM calls WHERE agent_id = 'a1'"
                                " AND state = 'ended' AND answered_at IS NOT NULL") != 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "the call's row: not ended and answered");
        usleep(50000);
    }

    /* a wrong password over TLS: 403, nothing stored */
    baresip_start(&bad, &w);
    cr_assert(baresip_wait(&bad, "403 Forbidden", 1, WAIT_MS), "no 403 (%s)", bad.log);
    cr_expect_eq(baresip_count(&bad, BARESIP_REGISTERED), 0, "%s", bad.log);
    cr_expect_eq(sdt_pg_scalar(e.dsn, "SELECT count(*) FROM registrations WHERE dn = '2002'"), 0);
    cr_log_info("sip_tls: baresip registered over TLS from port %d; the call's requests came back "
                "over it; the wrong password got 403",
                conn);
    baresip_stop(&phone, 5000);
    baresip_stop(&bad, 5000);
    kill(p.pid, SIGKILL);
}

Test(sip_tls, one_edge_serves_udp_tcp_and_tls_and_its_certificate_verifies_with_the_ca,
     .init = make_ca, .fini = remove_ca, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    char out[16384], status[128], cafile[128], other[128];

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", NULL);
    snprintf(cafile, sizeof(cafile), "%s/ca.pem", ca_dir);
    snprintf(other, sizeof(other), "%s/other-ca.pem", ca_dir);
    cr_expect_eq(sdt_sipp("options_200", p.port, "2001", NULL), 0, "OPTIONS over UDP");
    tcp_options(status, sizeof(status), p.port);
    cr_expect_str_eq(status, "SIP/2.0 200 OK", "OPTIONS over TCP");
    tls_options(out, sizeof(out), p.tls_port, cafile, NULL);
    cr_expect(strstr(out, "Verify return code: 0 (ok)") != NULL, "%s", out);
    cr_expect(strstr(out, "SIP/2.0 200 OK") != NULL, "OPTIONS over TLS: %s", out);
    cr_expect(strstr(out, "New, TLSv1.3, Cipher is TLS_") != NULL, "%s", out);
    /* the check can fail: another CA does not verify the edge */
    tls_options(out, sizeof(out), p.tls_port, other, NULL);
    cr_expect(strstr(out, "Verify return code: 0 (ok)") == NULL, "verified with another CA: %s",
              out);
    cr_expect(strstr(out, "SIP/2.0 200 OK") == NULL, "%s", out);
    kill(p.pid, SIGKILL);
}

/* SIPDRAIN_TLS_VERIFY=all: a client must present a certificate of the
 * CA. s_client without one is refused; with one (the test CA's edge
 * certificate, which is also for client authentication) it gets 200. */
Test(sip_tls, verify_all_refuses_a_client_without_a_certificate, .init = make_ca, .fini = remove_ca,
     .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    const char *extra[] = {"SIPDRAIN_TLS_VERIFY=all", NULL};
    char out[16384], cafile[128], client[300];

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    snprintf(cafile, sizeof(cafile), "%s/ca.pem", ca_dir);
    tls_options(out, sizeof(out), p.tls_port, cafile, NULL);
    cr_expect(strstr(out, "SIP/2.0 200 OK") == NULL, "no client certificate, yet: %s", out);
    snprintf(client, sizeof(client), "-cert %s/edge.pem -key %s/edge.key", ca_dir, ca_dir);
    tls_options(out, sizeof(out), p.tls_port, cafile, client);
    cr_expect(strstr(out, "SIP/2.0 200 OK") != NULL, "with the CA's client certificate: %s", out);
    kill(p.pid, SIGKILL);
}

/* OpenSSL's configuration may allow TLS 1.0 (a host's, an image's):
 * the edge still refuses anything below TLS 1.2. A plain openssl server
 * under the same configuration takes TLS 1.1: the refusal is the edge's. */
Test(sip_tls, tls_1_1_is_refused_even_where_openssl_allows_it, .init = make_ca, .fini = remove_ca,
     .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    char conf[128], conf_env[160], out[16384];
    const char *extra[] = {conf_env, NULL};
    int port = sdt_free_port();
    FILE *f;

    snprintf(conf, sizeof(conf), "%s/weak.cnf", ca_dir);
    f = fopen(conf, "w");
    cr_assert_not_null(f);
    fputs("openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n"
          "[ssl_sect]\nsystem_default = system_default_sect\n[system_default_sect]\n"
          "MinProtocol = TLSv1\nCipherString = DEFAULT@SECLEVEL=0\n",
          f);
    fclose(f);
    snprintf(conf_env, sizeof(conf_env), "OPENSSL_CONF=%s", conf);
    /* the control: openssl's own server under that configuration */
    run(out, sizeof(out),
        "OPENSSL_CONF=%s timeout 10 openssl s_server -accept 127.0.0.1:%d -cert %s/edge.pem"
        " -key %s/edge.key -quiet >/dev/null 2>&1 & sleep 1;"
        " echo | OPENSSL_CONF=%s timeout 5 openssl s_client -connect 127.0.0.1:%d -tls1_1;"
        " kill %%1",
        conf, port, ca_dir, ca_dir, conf, port);
    /* s_client says "Protocol : TLSv1.1" even when the handshake failed;
     * a cipher says it did not */
    cr_assert(strstr(out, "Protocol  : TLSv1.1") != NULL && strstr(out, "Cipher is (NONE)") == NULL,
              "the control: openssl s_server did not take TLS 1.1: %s", out);

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    run(out, sizeof(out),
        "echo | OPENSSL_CONF=%s timeout 5 openssl s_client -connect 127.0.0.1:%d -tls1_1", conf,
        p.tls_port);
    cr_expect(strstr(out, "Cipher is (NONE)") != NULL, "the edge took TLS 1.1: %s", out);
    cr_expect(strstr(out, "alert protocol version") != NULL, "%s", out);
    run(out, sizeof(out),
        "echo | OPENSSL_CONF=%s timeout 5 openssl s_client -connect 127.0.0.1:%d -tls1_2", conf,
        p.tls_port);
    cr_expect(strstr(out, "New, TLSv1.2, Cipher is ECDHE-") != NULL, "TLS 1.2: %s", out);
    kill(p.pid, SIGKILL);
}

/* The descriptors a process holds now. */
static int open_fds(pid_t pid)
{
    char cmd[96], out[64];

    snprintf(cmd, sizeof(cmd), "ls /proc/%d/fd | wc -l", (int)pid);
    run(out, sizeof(out), "%s", cmd);
    return atoi(out);
}

static int connect_to(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert(fd >= 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect to %d", port);
    return fd;
}

/* Has the far end closed fd (EOF or reset)? Does not wait. */
static bool closed_by_peer(int fd)
{
    char buf[4096];
    ssize_t got;

    while ((got = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        ;
    return got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Peers that connect to the TLS port and stay silent, or begin a TLS
 * handshake and never finish it, or begin a SIP message over TCP and never
 * finish it, each hold a socket of the edge. With T1 = 100 ms their time
 * is 64 x T1 = 6.4 s (TPTAG_TIMEOUT; for TLS tools/sofia-sip/0005): then
 * the edge closes them and its descriptors come back down; a real TLS
 * client is served meanwhile. */
Test(sip_tls, silent_and_unfinished_connections_are_closed_after_64_t1, .init = make_ca,
     .fini = remove_ca, .timeout = 120)
{
    struct edge_env e;
    struct edge_proc p;
    const char *extra[] = {"SIPDRAIN_SIP_T1_MS=100", NULL};
    enum { SILENT = 60, HALF = 20, TCP = 20, ALL = SILENT + HALF + TCP };
    int fds[ALL], before, held, after = 0, closed = 0, last;
    int64_t elapsed;
    char partial[160];
    char out[16384], cafile[128];
    int64_t start, deadline;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    snprintf(cafile, sizeof(cafile), "%s/ca.pem", ca_dir);
    before = open_fds(p.pid);
    start = sd_mono_ms();
    for (int i = 0; i < SILENT + HALF; i++) {
        fds[i] = connect_to(p.tls_port);
        /* the first bytes of a ClientHello, and nothing more */
        if (i >= SILENT)
            cr_assert_eq(send(fds[i], "\x16\x03\x01\x00", 4, 0), 4);
    }
    /* over TCP: a request line and a Via, and never the end of the header */
    snprintf(partial, sizeof(partial),
             "OPTIONS sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKp\r\n",
             p.port);
    for (int i = SILENT + HALF; i < ALL; i++) {
        fds[i] = connect_to(p.port);
        cr_assert_eq(send(fds[i], partial, strlen(partial), 0), (ssize_t)strlen(partial));
    }
    usleep(500000);
    held = open_fds(p.pid);
    cr_expect_geq(held, before + ALL, "the edge holds a socket each: %d -> %d", before, held);
    tls_options(out, sizeof(out), p.tls_port, cafile, NULL);
    cr_expect(strstr(out, "SIP/2.0 200 OK") != NULL, "a real client meanwhile: %s", out);
    deadline = start + 20000;
    while (sd_mono_ms() < deadline) {
        closed = 0;
        for (int i = 0; i < ALL; i++)
            closed += closed_by_peer(fds[i]);
        after = open_fds(p.pid);
        if (closed == ALL && after <= before + TCP + 2)
            break;
        usleep(200000);
    }
    elapsed = sd_mono_ms() - start;
    cr_expect_eq(closed, ALL, "connections the edge closed");
    /* the TLS ones are gone; a TCP connection whose message was given up
     * keeps its socket until the peer closes it too (or nta's 30 minutes
     * of idleness: README, Security) */
    cr_expect_leq(after, before + TCP + 2, "descriptors: %d before, %d held, %d after", before,
                  held, after);
    cr_expect_geq(elapsed, 6000, "closed before 64 x T1");
    tls_options(out, sizeof(out), p.tls_port, cafile, NULL);
    cr_expect(strstr(out, "SIP/2.0 200 OK") != NULL, "a real client after: %s", out);
    for (int i = 0; i < ALL; i++)
        close(fds[i]);
    deadline = sd_mono_ms() + 10000;
    while ((last = open_fds(p.pid)) > before + 2 && sd_mono_ms() < deadline)
        usleep(200000);
    cr_expect_leq(last, before + 2, "descriptors once the peers closed too: %d", last);
    cr_log_info("sip_tls: %d silent and %d half-handshake TLS connections, %d unfinished TCP "
                "messages: edge descriptors %d -> %d; all closed by the edge after %lld ms (%d "
                "descriptors left, the TCP ones); %d once the peers closed",
                SILENT, HALF, TCP, before, held, (long long)elapsed, after, last);
    kill(p.pid, SIGKILL);
}

Test(sip_tls, bad_certificate_settings_exit_2_naming_what_is_wrong, .init = make_ca,
     .fini = remove_ca, .timeout = 60)
{
    char bin[1024], out[] = "/tmp/sipdrain-edge-tlsconfig-XXXXXX", url[80];
    char cert[160], key[160], expired[160], wrong[160], ca[160], empty[160];
    const char *dir = getenv("SIPDRAIN_BIN_DIR");
    int fd = mkstemp(out);

    cr_assert(fd >= 0);
    close(fd);
    snprintf(url, sizeof(url), "SIPDRAIN_SIP_URL=sip:127.0.0.1:%d,sips:127.0.0.1:%d",
             sdt_free_port(), sdt_free_port());
    snprintf(cert, sizeof(cert), "SIPDRAIN_TLS_CERT=%s/edge.pem", ca_dir);
    snprintf(key, sizeof(key), "SIPDRAIN_TLS_KEY=%s/edge.key", ca_dir);
    snprintf(expired, sizeof(expired), "SIPDRAIN_TLS_CERT=%s/expired.pem", ca_dir);
    snprintf(wrong, sizeof(wrong), "SIPDRAIN_TLS_KEY=%s/wrong.key", ca_dir);
    snprintf(ca, sizeof(ca), "SIPDRAIN_TLS_CA=%s/ca.pem", ca_dir);
    snprintf(empty, sizeof(empty), "SIPDRAIN_TLS_CA=%s/empty.pem", ca_dir);
    {
        const char *cases[][5] = {
            {url, NULL, NULL, NULL, "SIPDRAIN_TLS_CERT: needed with a TLS URL"},
            {url, cert, NULL, NULL, "SIPDRAIN_TLS_KEY: needed with a TLS URL"},
            {url, expired, key, ca, "the certificate has expired"},
            {url, cert, wrong, ca, "does not belong to the certificate"},
            {url, cert, key, empty, "no PEM certificate in it"},
            {"SIPDRAIN_SIP_URL=sip:127.0.0.1:5060", cert, key, ca,
             "SIPDRAIN_TLS_CERT: set, but SIPDRAIN_SIP_URL has no TLS URL"},
            {"SIPDRAIN_SIP_URL=sip:127.0.0.1:5060,sip:127.0.0.1:5062", NULL, NULL, NULL,
             "more than one sip: URL"},
            {url, cert, key, "SIPDRAIN_TLS_VERIFY=sometimes", "SIPDRAIN_TLS_VERIFY"},
        };

        snprintf(bin, sizeof(bin), "%s/sip-edge", dir);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            const char *env[10] = {"SIPDRAIN_SITE=site2", "SIPDRAIN_EDGE_ID=edge-2a",
                                   "SIPDRAIN_PG_DSN=postgresql://127.0.0.1:1/x",
                                   "SIPDRAIN_KAFKA_BROKERS=127.0.0.1:1"};
            size_t n = 4;
            int status;
            pid_t pid;

            for (int k = 0; k < 4; k++) {
                if (cases[i][k] != NULL)
                    env[n++] = cases[i][k];
            }
            env[n] = NULL;
            unlink(out);
            pid = sdt_spawn(bin, NULL, env, out);
            status = sdt_wait(pid, 10000);
            cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2, "case %zu: status %d", i,
                      status);
            cr_expect(sdt_file_has(out, cases[i][4]), "case %zu: no \"%s\" in %s", i, cases[i][4],
                      out);
        }
    }
    unlink(out);
}
