/* edge_sip.h - sip-edge's SIP thread: sofia-sip NUA on su_root, the drain
 * state machine (edge_fsm) it drives, and edge.status.
 *
 * Everything here runs on the su_root thread. What needs PostgreSQL or
 * Kafka is a message to the bus thread (edge_bus.h); what the bus thread
 * learns (REGISTER stored, edge.control commands) comes back as messages.
 */
#ifndef SIPDRAIN_EDGE_SIP_H
#define SIPDRAIN_EDGE_SIP_H

#include <stdbool.h>

#include "edge_auth.h"
#include "edge_fsm.h"
#include "edge_flood.h"
#include "edge_peers.h"
#include "edge_queue.h"
#include "edge_tls.h"
#include "sipdrain/err.h"
#include "sipdrain/http.h"

struct edge_sip_config {
    const char *edge_id;
    const char *site;
    /* SIPDRAIN_SIP_URL: where NUA listens; sip_url the plain URL (UDP and
     * TCP) if there is one, else the TLS one; tls_url the TLS one when
     * both are given (edge_tls.h), else NULL */
    const char *sip_url, *tls_url;
    const char *tls_dir;             /* tport_tls's folder (edge_tls_prepare), or NULL */
    enum edge_tls_verify tls_policy; /* SIPDRAIN_TLS_VERIFY */
    const char *peer_site_uri;       /* SIPDRAIN_PEER_SITE_URI: Contact of a 302 while draining */
    const char *route_points;        /* SIPDRAIN_ROUTE_POINTS: comma-separated DNs, may be NULL */
    const char *outbound_proxy; /* SIPDRAIN_OUTBOUND_PROXY: agent-originated calls, may be NULL */
    struct sd_http *http;       /* SIPDRAIN_HTTP_ADDR's server, or NULL */
    const char *source;         /* "sip-edge/<edge id>" */
    int sip_t1_ms;              /* SIPDRAIN_SIP_T1_MS: RFC 3261 T1 (Timer F = 64 x T1) */
    bool allow_contact_names; /* SIPDRAIN_ALLOW_CONTACT_NAMES: host names in Contact/Record-Route */
    struct edge_peers trusted;      /* SIPDRAIN_TRUSTED_PEERS: who may place calls */
    struct edge_flood_config flood; /* SIPDRAIN_FLOOD_*, SIPDRAIN_AUTH_FAILURES_*: per source */
    const char *realm; /* SIPDRAIN_SIP_REALM: the digest realm of REGISTER challenges */
    /* SIPDRAIN_SIP_AUTH_ALGORITHMS: what challenges offer, in this order */
    enum edge_auth_alg algs[EDGE_AUTH_ALG_COUNT];
    int n_algs;
    int nonce_lifetime_s;     /* SIPDRAIN_SIP_NONCE_LIFETIME: then stale=true */
    struct edge_config drain; /* reject code, BYE timeout, Retry-After */
    /* SIPDRAIN_QUEUE_MAX_WAIT: route-point calls wait this long for an agent
     * (0: refused at once, 480 no_agent); SIPDRAIN_RING_TIMEOUT: seconds an
     * agent's phone rings with a route-point call before it goes back to
     * the queue. */
    int queue_max_wait_s, ring_timeout_s;
    /* The drain that holds this edge at start-up (its site or itself stays
     * drained until resumed), or NULL: the edge starts active. */
    const struct edge_drain *hold;
};

struct edge_sip;

struct edge_sip *edge_sip_new(const struct edge_sip_config *cfg, struct edge_queue *to_bus,
                              struct edge_queue *to_sip, struct sd_err *err) SD_MUST_CHECK;
/* Runs su_root until the edge has stopped. SIGTERM / SIGINT drain this edge
 * (DESIGN.md §4, as Kubernetes' preStop expects); a second one stops it at
 * once. Returns the exit status for main (0 after a drain). */
int edge_sip_run(struct edge_sip *e);
void edge_sip_free(struct edge_sip *e);

#endif
