/* edge_harness.h - what the sip-edge integration tests share: a private
 * database and topic prefix per test, a sip-edge process started from the
 * build, control events, and reading back edge.status, call.* and rows.
 * Everything runs against the real PostgreSQL and Kafka of tests/scripts. */
#ifndef SIPDRAIN_EDGE_HARNESS_H
#define SIPDRAIN_EDGE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "sipdrain/event.h"

#define WAIT_MS 30000

static const char *const DRAIN_A = "5a1f3c2e-7b4d-4e8f-9a0b-1c2d3e4f5a6b";

struct edge_env {
    char dsn[512];      /* the test's database, as its owner (checks, fixtures) */
    char edge_dsn[512]; /* the same as sip-edge's role (sipdrain_edge) */
    char as_dsn[512];   /* the same as agent-state's role (sipdrain_agent_state) */
    char prefix[64];
    char control[160], status[160], agent_events[160], call_events[160], deadletter[160];
};

struct edge_proc {
    pid_t pid;
    int port;     /* its SIP port on 127.0.0.1, UDP and TCP */
    int tls_port; /* its TLS port when edge_tls_dir is set, else 0 */
    char id[32];
    char log[256];
};

/* The call.* events, parsed (types and data, new references). */
struct call_events {
    size_t n;
    char type[64][SD_EVENT_TYPE_MAX];
    json_t *data[64];
};

/* Set by a test that wants the edge run under valgrind (exit 99 on an
 * error or a definite leak). */
extern bool under_valgrind;
/* Set by a test that wants the edge to see this file as /etc/resolv.conf
 * (a mount namespace of its own; needs root): edge_start looks up
 * "probe.sipdrain.invalid" there just before the edge starts. */
extern const char *edge_resolv_conf;
/* Set by a test that wants the edge to listen elsewhere than on 127.0.0.1
 * (e.g. "*": every address, loopback and a test's own network namespace). */
extern const char *edge_sip_host;
/* Set by a test that wants the edge to serve TLS too: a folder made by
 * tests/scripts/test-ca.sh (edge.pem, edge.key, ca.pem); edge_start adds a
 * sips: URL on a port of its own (p->tls_port) and the certificate files. */
extern const char *edge_tls_dir;

/* A UDP socket bound to ip (a loopback address: 127.0.0.1 is a trusted
 * peer of the edge's by default, 127.0.0.2 and up are other hosts) on a
 * port the kernel picks (held from then on), with a receive timeout of
 * rcv_ms; its port in *port. */
int udp_socket_on(const char *ip, int rcv_ms, int *port);
void env_setup(struct edge_env *e);
/* Starts an edge of site2 and waits until it listens and its edge.control
 * consumer has its partitions. extra: "K=V" entries, NULL-ended. */
void edge_start(struct edge_env *e, struct edge_proc *p, const char *id, const char *const *extra);
/* Waits for the edge to exit; returns its exit code (-1 on a signal). */
int edge_exit_code(struct edge_proc *p, int timeout_ms);
void wait_edge_state(struct edge_env *e, const char *id, const char *state);
/* One edge.control command to edge, from the service that rightfully sends
 * it (drain-orchestrator/test, or agent-state/test for call.originate). */
void control(struct edge_env *e, const char *edge, const char *type, json_t *data);
void drain(struct edge_env *e, const char *edge, const char *drain_id, const char *scope,
           json_t *options);
/* The edge.status events of edge, in order, with their states. */
size_t statuses(struct edge_env *e, const char *edge, char states[][16], size_t max);
bool has_state(char states[][16], size_t n, const char *state);
/* An agent logged in (as agent-state leaves the row) on dn at site2. */
void agent_ready(struct edge_env *e, const char *agent, const char *dn, int idle_s);
/* The keys of a SIPp call scenario that sends and checks SDP
 * (tests/e2e/sipp/README.md, "What the scenarios check in SDP"): token, the
 * session name of the SDP it sends (s=<token>); expect, a line the far
 * end's SDP must carry (from the line start to a blank or the line end);
 * then extra "name", "value" pairs (NULL-ended, may be NULL). The array
 * returned lives in k. */
struct sdp_keys {
    const char *v[16];
    char token[64], expect[96];
};
const char *const *sdp_keys(struct sdp_keys *k, const char *token, const char *expect,
                            const char *const *extra);
/* The keys of one SIPp end of a call whose far end is SIPp too: the token
 * "<self>-<this test's random topic suffix>", expecting the line
 * "s=<peer>-<same suffix>", so no SDP of another test or side can pass. */
const char *const *sdp_pair_keys(struct sdp_keys *k, const struct edge_env *e, const char *self,
                                 const char *peer, const char *const *extra);
/* Starts a phone scenario for dn and waits until its REGISTER is stored. */
pid_t phone_start(struct edge_env *e, struct edge_proc *p, const char *scenario, const char *dn,
                  const char *const *keys);
void call_events_read(struct edge_env *e, struct call_events *ce, size_t want);
void call_events_free(struct call_events *ce);
/* A call answered and ended: exactly call.offered, call.established,
 * call.ended, in that order (what: the test's words for the call). */
void expect_answered_call_events(const struct call_events *ce, const char *what);
/* A string member of d, "" when absent. */
const char *field(json_t *d, const char *key);
/* Waits until n calls are established (the calls rows). */
void wait_established(struct edge_env *e, int n);

#endif
