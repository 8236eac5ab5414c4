/* baresip_phone.h - a real SIP phone for the integration tests: baresip
 * 1.x (Debian's, installed by tools/deps.sh) started headless with a
 * private config folder, driven by commands on its stdin, and asserted from
 * its own output.
 *
 * The config (baresip_start writes it): SIP on 127.0.0.1:<sip_port> (UDP
 * and TCP; baresip also binds TCP <sip_port>+1 for TLS), no audio device
 * (aubridge as player and source: a loop inside the process), PCMU/PCMA
 * only, no video, no control sockets, one RTP port (<rtp_port>, RTCP on
 * the next one) so that the SDP it sends is known in advance
 * ("m=audio <rtp_port> ..."), and one account: sip:<user>@127.0.0.1 with
 * the given registrar and answer mode. -s: every SIP message it sends or
 * receives is in its output too (SDP bodies included).
 *
 * Lines of baresip 1.0.0's output the tests look for (see BARESIP_*):
 *   "<user>@127.0.0.1: Call established: <peer URI>"
 *   "<aor>: Call with <peer URI> terminated (duration: N secs)"
 *   "call: answering call on line 1 from <peer URI> with 200"  (auto answer)
 *   "call: connecting to '<URI>'.."                             (/dial)
 *   "All 1 useragent registered successfully! (N ms)"           (REGISTER 200)
 *   "reg: sip:<user>@...: 403 Forbidden"                         (credentials refused)
 * A later test can pause it (kill(b->pid, SIGSTOP), SIGCONT) to play a
 * phone that stops answering. */
#ifndef SIPDRAIN_BARESIP_PHONE_H
#define SIPDRAIN_BARESIP_PHONE_H

#include <stdbool.h>
#include <sys/types.h>

#define BARESIP_ESTABLISHED "Call established: "
#define BARESIP_TERMINATED  " terminated (duration: "
#define BARESIP_ANSWERING   "call: answering call on line 1 from "
#define BARESIP_REGISTERED  "useragent registered successfully"

struct baresip_opts {
    const char *user;   /* the account's user part (a DN), e.g. "2001" */
    int registrar_port; /* > 0: REGISTER at 127.0.0.1:<port> (regint 60); 0: none */
    bool auto_answer;   /* answermode=auto (else manual) */
    const char *name;   /* names the folder and the log, e.g. "agent" */
    /* Optional (NULL: loopback): a network namespace to run in, the address
     * there it listens on, and the registrar's address (the edge's, as the
     * phone reaches it). */
    const char *netns, *addr, *registrar_host;
    /* The account's SIP password (auth_pass); NULL: the test DNs' own
     * (SDT_PHONE_PASSWORD). */
    const char *password;
    /* > 0: REGISTER over TLS at 127.0.0.1:<port> instead (the account's
     * ;transport=tls), trusting the CAs of tls_ca (sip_cafile). baresip
     * 1.0 does not refuse a server whose certificate fails: a test checks
     * the edge's certificate with openssl s_client. */
    int registrar_tls_port;
    const char *tls_ca;
    int regint; /* seconds it registers for (regint); 0: 60 */
};

struct baresip {
    pid_t pid;
    int stdin_fd; /* write end of its stdin: commands */
    int sip_port, rtp_port;
    char dir[128]; /* its config folder (-f) */
    char log[160]; /* its stdout and stderr */
};

/* Writes the config to a fresh folder and starts baresip (killed with the
 * test process if the test dies); waits until it says "baresip is ready".
 * Fails the test when it cannot start. */
void baresip_start(struct baresip *b, const struct baresip_opts *o);
/* Sends one command line, e.g. "/dial sip:2001@127.0.0.1:5070", "/hangup". */
void baresip_command(struct baresip *b, const char *command);
/* How many lines of its output contain text. */
int baresip_count(const struct baresip *b, const char *text);
/* Waits until at least n lines of its output contain text; false on timeout. */
bool baresip_wait(const struct baresip *b, const char *text, int n, int timeout_ms);
/* "/quit", then waits for it to exit (SIGKILL after timeout_ms); returns its
 * exit code (-1 when it had to be killed or died of a signal). Its folder
 * is removed, the log kept. A registered baresip un-REGISTERs first and
 * waits for the answer: stop it while its registrar still answers. */
int baresip_stop(struct baresip *b, int timeout_ms);

#endif
