/* test_sip_bye - the edge's BYE wait (DESIGN.md §4, issue 12) against
 * strict SIPp peers: every BYE the edge sends, the first and each one sent
 * again in a new transaction, must be a request within its dialog (RFC 3261
 * §12.2.1.1, §15.1.1: Call-ID, the edge's tag in From, the far end's tag in
 * To, the dialog's remote target and route set, a CSeq above any the edge
 * sent in it), and the wait ends at graceful-shutdown-sip-timeout, exit 0
 * within 1 s, whatever transaction is in flight.
 *
 * The peers are tests/e2e/sipp/phone_bye_strict.xml (an agent phone) and
 * gateway_call_bye_strict.xml (a caller): they check every BYE datagram
 * (retransmissions and new transactions alike, hence -nr) and log when each
 * arrived (README.md there, "Strict BYE checks").
 *
 * These are the tests the fixed edge must pass; the edge before the fix
 * fails all four. It sends the BYEs of a new transaction OUTSIDE the
 * dialog: no To tag and CSeq 1001, below the INVITE's (sofia-sip starts
 * near 1001384000), on the caller leg also a new From tag; the peers'
 * checks of those BYEs fail (the two ..._gets_it_again_in_the_dialog_...
 * tests and a_silent_phone_past_timer_f_...). And with its first BYE
 * transaction still in flight at the timeout it stops only at Timer F
 * (a_silent_phone_inside_timer_f_...: exit 32.5 s into a 4 s wait, BYEs
 * until 31.5 s). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edge_harness.h"
#include "sipdrain/event.h"
#include "support.h"

/* --- SIPp peers with their own log files ----------------------------------- */

/* A SIPp run of a strict scenario: -nr (every datagram reaches the
 * scenario), its error, log and message files kept for the assertions. */
struct peer {
    pid_t pid;
    int port;
    char err[160], log[160], msg[160], out[160];
    char remote[32], sf[600], port_s[16], cp_s[16], tmo_s[16];
};

/* Starts scenario (tests/e2e/sipp/<scenario>.xml) towards the edge at
 * 127.0.0.1:remote_port as dn, bounded by timeout_s; a phone (phone_*)
 * gets the same file as out-of-call scenario. keys: "name", "value" pairs,
 * NULL-ended. */
static void peer_start(struct peer *s, const char *scenario, int remote_port, const char *dn,
                       int timeout_s, const char *const *keys)
{
    const char *av[48];
    size_t n = 0;

    memset(s, 0, sizeof(*s));
    s->port = sdt_free_port();
    snprintf(s->remote, sizeof(s->remote), "127.0.0.1:%d", remote_port);
    snprintf(s->sf, sizeof(s->sf), "%s/tests/e2e/sipp/%s.xml", sdt_source_dir(), scenario);
    snprintf(s->port_s, sizeof(s->port_s), "%d", s->port);
    snprintf(s->cp_s, sizeof(s->cp_s), "%d", sdt_free_port());
    snprintf(s->tmo_s, sizeof(s->tmo_s), "%ds", timeout_s);
    snprintf(s->err, sizeof(s->err), "/tmp/sipdrain-bye-%s-%d.err", scenario, s->port);
    snprintf(s->log, sizeof(s->log), "/tmp/sipdrain-bye-%s-%d.log", scenario, s->port);
    snprintf(s->msg, sizeof(s->msg), "/tmp/sipdrain-bye-%s-%d.msg", scenario, s->port);
    snprintf(s->out, sizeof(s->out), "/tmp/sipdrain-bye-%s-%d.out", scenario, s->port);
    unlink(s->err);
    unlink(s->log);
    unlink(s->msg);
    unlink(s->out);
    av[n++] = s->remote;
    av[n++] = "-sf";
    av[n++] = s->sf;
    if (strncmp(scenario, "phone_", 6) == 0) {
        av[n++] = "-oocsf";
        av[n++] = s->sf;
    }
    av[n++] = "-p";
    av[n++] = s->port_s;
    av[n++] = "-cp";
    av[n++] = s->cp_s;
    av[n++] = "-m";
    av[n++] = "1";
    av[n++] = "-i";
    av[n++] = "127.0.0.1";
    av[n++] = "-t";
    av[n++] = "u1";
    av[n++] = "-s";
    av[n++] = dn;
    av[n++] = "-ap"; /* the password of every test DN (sdt_db_create) */
    av[n++] = SDT_PHONE_PASSWORD;
    av[n++] = "-timeout";
    av[n++] = s->tmo_s;
    av[n++] = "-timeout_error";
    av[n++] = "-nostdin";
    av[n++] = "-nr";
    av[n++] = "-trace_err";
    av[n++] = "-error_file";
    av[n++] = s->err;
    av[n++] = "-trace_logs";
    av[n++] = "-log_file";
    av[n++] = s->log;
    av[n++] = "-trace_msg";
    av[n++] = "-message_file";
    av[n++] = s->msg;
    for (size_t i = 0; keys != NULL && keys[i] != NULL && keys[i + 1] != NULL && n < 44; i += 2) {
        av[n++] = "-key";
        av[n++] = keys[i];
        av[n++] = keys[i + 1];
    }
    av[n] = NULL;
    s->pid = sdt_spawn("/usr/bin/sipp", av, NULL, s->out);
}

/* A phone peer, once the edge has stored its registration. */
static void phone_peer_start(struct edge_env *e, struct peer *s, const struct edge_proc *p,
                             const char *dn, int timeout_s, const char *const *keys)
{
    char sql[256];
    int64_t deadline = sd_mono_ms() + WAIT_MS;

    peer_start(s, "phone_bye_strict", p->port, dn, timeout_s, keys);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM registrations WHERE dn = '%s'", dn);
    while (sdt_pg_scalar(e->dsn, sql) < 1) {
        cr_assert_lt(sd_mono_ms(), deadline, "phone %s never registered (%s)", dn, s->err);
        usleep(50000);
    }
}

/* Waits for pid; returns its exit code (-1 on a signal) and when it was
 * seen gone (wall clock, polled every 5 ms); -2 when it still ran after
 * timeout_ms (then it is killed, at_wall_ms is that moment). */
static int exit_wait(pid_t pid, int timeout_ms, int64_t *at_wall_ms)
{
    int64_t deadline = sd_mono_ms() + timeout_ms;
    int status = 0;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            *at_wall_ms = sd_wall_ms();
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        cr_assert_eq(r, 0, "waitpid %d", (int)pid);
        if (sd_mono_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            *at_wall_ms = sd_wall_ms();
            return -2;
        }
        usleep(5000);
    }
}

static bool has_text(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);

    for (size_t i = 0; i + k <= n; i++) {
        if (memcmp(s + i, needle, k) == 0)
            return true;
    }
    return false;
}

/* The entries of SIPp's error file that say what failed (checks,
 * unexpected messages, timeouts), for the assertion messages. SIPp 3.6.1
 * writes its entries without line ends between them, each behind a
 * "date<TAB>time<TAB>epoch: " stamp: the stamps are cut, the entries
 * joined by " | ", everything cut to size. */
static const char *err_excerpt(const char *path, char *buf, size_t size)
{
    static char text[65536];
    FILE *f = fopen(path, "r");
    size_t len, pos = 0;
    char *tab = NULL;

    buf[0] = '\0';
    if (f == NULL)
        return "(no error file)";
    len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[len] = '\0';
    for (tab = strchr(text, '\t'); tab != NULL && pos + 4 < size;) {
        char *time_end = strchr(tab + 1, '\t');
        char *body = time_end != NULL ? strstr(time_end, ": ") : NULL;
        char *next;
        size_t n;

        if (body == NULL)
            break;
        body += 2;
        next = strchr(body, '\t'); /* the next stamp's first tab, after its date */
        n = next == NULL                  ? strlen(body)
            : (size_t)(next - body) >= 10 ? (size_t)(next - body) - 10
                                          : 0;
        tab = next;
        if (!has_text(body, n, "ailed") && !has_text(body, n, "check_it") &&
            !has_text(body, n, "nexpected") && !has_text(body, n, "timed out"))
            continue;
        for (size_t i = 0; i < n && pos + 4 < size; i++)
            buf[pos++] = (body[i] == '\r' || body[i] == '\n') ? ' ' : body[i];
        buf[pos++] = ' ';
        buf[pos++] = '|';
        buf[pos++] = ' ';
    }
    buf[pos] = '\0';
    return buf;
}

/* What a strict peer's log says about the BYEs it got: datagrams (each
 * logged with its arrival, before its checks), those that passed every
 * check, those of a new transaction that passed, and whether one was
 * answered 200. */
struct bye_log {
    int byes, ok, new_ok;
    bool answered;
    double first_ms, last_ms;
};

static void bye_log_read(const char *path, struct bye_log *b)
{
    FILE *f = fopen(path, "r");
    char line[2048];

    memset(b, 0, sizeof(*b));
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *at = strstr(line, " at_ms=");
        if (strstr(line, ": BYE #") == NULL)
            continue;
        if (at != NULL) {
            double ms = strtod(at + 7, NULL);
            if (b->byes++ == 0)
                b->first_ms = ms;
            b->last_ms = ms;
        } else if (strstr(line, " ok txn=") != NULL) {
            b->ok++;
            if (strstr(line, " ok txn=new ") != NULL)
                b->new_ok++;
        } else if (strstr(line, " answered 200") != NULL) {
            b->answered = true;
        }
    }
    fclose(f);
}

/* Wall time of the edge's first log line that has both texts (its ts=). */
static int64_t edge_log_ms(const char *path, const char *a, const char *b)
{
    FILE *f = fopen(path, "r");
    char line[4096], ts[64];
    int64_t ms = -1;

    if (f == NULL)
        return -1;
    while (ms < 0 && fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, a) == NULL || strstr(line, b) == NULL ||
            sscanf(line, "ts=%63s", ts) != 1 || sd_time_parse_rfc3339(ts, &ms) != 0)
            ms = -1;
    }
    fclose(f);
    return ms;
}

/* Does some line of the edge's log have both texts? */
static bool edge_log_has(const char *path, const char *a, const char *b)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    bool found = false;

    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, a) != NULL && strstr(line, b) != NULL;
    fclose(f);
    return found;
}

/* A gateway call the gateway itself hangs up (gateway_call.xml); the edge
 * then BYEs the phone. */
static void call_hung_up_by_the_caller(const struct edge_proc *p)
{
    const char *hold[] = {"hold_ms", "200", NULL};
    struct sdp_keys sk;

    /* phone_bye_strict's answer is the session "phone-answer" */
    cr_assert_eq(
        sdt_sipp("gateway_call", p->port, "2001", sdp_keys(&sk, "gw-bye", "s=phone-answer", hold)),
        0, "the gateway's call (answered, its BYE answered 200)");
}

/* --- the phone leg --------------------------------------------------------- */

/* T1 100 ms: the first BYE transaction has 7 datagrams and times out
 * (Timer F) after 6.4 s; the phone leaves 9 datagrams unanswered, so the
 * one it answers belongs to a BYE the edge sent again in a new transaction,
 * which must be in the dialog. Fails on the old edge (the phone's checks
 * of the new transaction: no To tag). */
Test(sip_bye, the_phone_ignoring_the_first_bye_transaction_gets_it_again_in_the_dialog_and_confirms,
     .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct peer phone;
    struct bye_log b;
    const char *extra[] = {"SIPDRAIN_SIP_T1_MS=100", "SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT=15",
                           NULL};
    const char *keys[] = {"ignore_byes", "9", "answer", "yes", "quiet_ms", "6000", NULL};
    char why[2048];
    int64_t at;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    agent_ready(&e, "a1", "2001", 10);
    phone_peer_start(&e, &phone, &p, "2001", 60, keys);
    call_hung_up_by_the_caller(&p);
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    cr_expect_eq(exit_wait(phone.pid, 60000, &at), 0,
                 "the phone: every BYE in the dialog, one answered (%s; %s)", phone.log,
                 err_excerpt(phone.err, why, sizeof(why)));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0, "edge exit (%s)", p.log);
    bye_log_read(phone.log, &b);
    cr_expect_geq(b.byes, 10, "BYE datagrams at the phone: %d (%s)", b.byes, phone.log);
    cr_expect_eq(b.ok, b.byes, "BYEs that passed every check: %d of %d (%s)", b.ok, b.byes,
                 phone.err);
    cr_expect_geq(b.new_ok, 1, "no BYE of a new transaction passed the checks (%s)", phone.log);
    cr_expect(b.answered, "the phone answered no BYE (%s)", phone.log);
    cr_expect(sdt_file_has(p.log, "BYE sent again"), "no BYE in a new transaction (%s)", p.log);
    cr_expect(edge_log_has(p.log, "BYE confirmed", "status=200"), "no BYE confirmed (%s)", p.log);
}

/* A silent phone (port open, no answer) and the edge's BYE wait of
 * timeout_s seconds, default T1 (Timer F 32 s): the edge stops sending BYEs
 * and exits 0 within a second of the timeout, whatever transaction is in
 * flight; every BYE is in the dialog; past Timer F (timeout_s > 32) one of
 * them is of a new transaction. The start of the wait is the edge's "edge
 * state changed ... to=bye_wait" log line (SIGTERM with no call left). */
static void silent_phone_bye_wait(int timeout_s)
{
    struct edge_env e;
    struct edge_proc p;
    struct peer phone;
    struct bye_log b;
    char extra_timeout[64];
    const char *extra[] = {extra_timeout, NULL};
    const char *keys[] = {"ignore_byes", "0", "answer", "no", "quiet_ms", "6000", NULL};
    char why[2048];
    int64_t wait_at, exit_at, at, wait_ms = (int64_t)timeout_s * 1000;
    int rc;

    snprintf(extra_timeout, sizeof(extra_timeout), "SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT=%d",
             timeout_s);
    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    agent_ready(&e, "a1", "2001", 10);
    phone_peer_start(&e, &phone, &p, "2001", timeout_s + 50, keys);
    call_hung_up_by_the_caller(&p);
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    rc = exit_wait(p.pid, (int)wait_ms + 40000, &exit_at);
    cr_expect_eq(rc, 0, "edge exit %d (-2: still running %d s after SIGTERM, killed) (%s)", rc,
                 timeout_s + 40, p.log);
    wait_at = edge_log_ms(p.log, "edge state changed", "to=bye_wait");
    cr_assert_gt(wait_at, 0, "no bye_wait in %s", p.log);
    cr_expect_geq(exit_at - wait_at, wait_ms, "the edge stopped %lld ms into the BYE wait (%s)",
                  (long long)(exit_at - wait_at), p.log);
    cr_expect_leq(exit_at - wait_at, wait_ms + 1000,
                  "the edge exited %lld ms into a %d s BYE wait (%s)",
                  (long long)(exit_at - wait_at), timeout_s, p.log);
    cr_expect_eq(exit_wait(phone.pid, 60000, &at), 0, "the phone: every BYE in the dialog (%s; %s)",
                 phone.log, err_excerpt(phone.err, why, sizeof(why)));
    bye_log_read(phone.log, &b);
    cr_expect_geq(b.byes, 2, "BYE datagrams at the phone: %d (%s)", b.byes, phone.log);
    cr_expect_eq(b.ok, b.byes, "BYEs that passed every check: %d of %d (%s)", b.ok, b.byes,
                 phone.log);
    cr_expect_leq(b.last_ms, (double)(wait_at + wait_ms + 500),
                  "a BYE %.0f ms into a %d s BYE wait (%s)", b.last_ms - (double)wait_at, timeout_s,
                  phone.log);
    if (timeout_s > 32) {
        cr_expect_geq(b.new_ok, 1,
                      "no BYE of a new transaction (higher CSeq) passed the checks (%s)",
                      phone.log);
        cr_expect(sdt_file_has(p.log, "BYE sent again"), "no BYE in a new transaction (%s)", p.log);
    }
    fprintf(stderr,
            "sip_bye: %d s BYE wait: edge exited %lld ms after it began; %d BYE datagrams (%d of"
            " a new transaction), the last %.0f ms after it began, %d passed every check\n",
            timeout_s, (long long)(exit_at - wait_at), b.byes, b.new_ok,
            b.last_ms - (double)wait_at, b.ok);
}

/* 4 s: the wait ends inside the first BYE transaction, which must not hold
 * the exit up. Fails on the old edge (it exited at Timer F, 32.5 s). */
Test(sip_bye, a_silent_phone_inside_timer_f_gets_byes_until_the_timeout_then_the_edge_exits_0,
     .timeout = 180)
{
    silent_phone_bye_wait(4);
}

/* 40 s: past Timer F the BYE is sent again in a new transaction, which must
 * be in the dialog, and the wait still ends at 40 s with that transaction
 * in flight. Fails on the old edge (the phone's checks of the new
 * transaction: no To tag, CSeq 1001 below the INVITE's; its exit time is
 * right). */
Test(sip_bye, a_silent_phone_past_timer_f_gets_the_bye_again_in_the_dialog_until_the_timeout,
     .timeout = 240)
{
    silent_phone_bye_wait(40);
}

/* --- the caller leg -------------------------------------------------------- */

/* The agent hangs up; the edge BYEs the caller, which leaves 9 datagrams
 * unanswered (T1 100 ms: the first transaction has 7), so the one it
 * answers belongs to a BYE sent again in a new transaction. Fails on the
 * old edge (the gateway's checks: a new From tag, no To tag). */
Test(sip_bye,
     the_caller_ignoring_the_first_bye_transaction_gets_it_again_in_the_dialog_and_confirms,
     .timeout = 180)
{
    struct edge_env e;
    struct edge_proc p;
    struct peer gw;
    struct bye_log b;
    const char *extra[] = {"SIPDRAIN_SIP_T1_MS=100", "SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT=15",
                           NULL};
    const char *hold[] = {"hold_ms", "300", NULL};
    char hop[64];
    const char *keys[] = {"ignore_byes", "9", "first_hop", hop, NULL};
    struct sdp_keys sk;
    char why[2048];
    int64_t at;
    pid_t phone;

    env_setup(&e);
    edge_start(&e, &p, "edge-2a", extra);
    agent_ready(&e, "a1", "2001", 10);
    snprintf(hop, sizeof(hop), "127.0.0.1:%d", p.port); /* no route set: from the edge */
    /* gateway_call_bye_strict offers the session "gateway-offer" */
    phone = phone_start(&e, &p, "phone_answer_hangup", "2001",
                        sdp_keys(&sk, "phone-bye", "s=gateway-offer", hold));
    peer_start(&gw, "gateway_call_bye_strict", p.port, "2001", 60, keys);
    cr_expect_eq(sdt_sipp_wait(phone, WAIT_MS), 0, "the phone's call and its BYE");
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    cr_expect_eq(exit_wait(gw.pid, 60000, &at), 0,
                 "the gateway: every BYE in the dialog, one answered (%s; %s)", gw.log,
                 err_excerpt(gw.err, why, sizeof(why)));
    cr_expect_eq(edge_exit_code(&p, WAIT_MS), 0, "edge exit (%s)", p.log);
    bye_log_read(gw.log, &b);
    cr_expect_geq(b.byes, 10, "BYE datagrams at the gateway: %d (%s)", b.byes, gw.log);
    cr_expect_eq(b.ok, b.byes, "BYEs that passed every check: %d of %d (%s)", b.ok, b.byes, gw.log);
    cr_expect_geq(b.new_ok, 1, "no BYE of a new transaction passed the checks (%s)", gw.log);
    cr_expect(b.answered, "the gateway answered no BYE (%s)", gw.log);
    cr_expect(edge_log_has(p.log, "BYE confirmed", "status=200"), "no BYE confirmed (%s)", p.log);
}
