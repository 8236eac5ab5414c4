/* sip-edge - one SIP edge of a site: agent phones register here, gateway
 * calls come in here, and a drain refuses new calls here (DESIGN.md §1-§5,
 * issue #4).
 *
 * Two threads, so the SIP thread never waits on PostgreSQL or Kafka:
 *   SIP thread  su_root + sofia-sip NUA (edge_sip.c), the drain state
 *               machine (edge_fsm.c), edge.status every second and on change
 *   bus thread  sd_loop (edge_bus.c): PostgreSQL (blocking libpq on its own
 *               connections), the outbox relay, the edge.control consumer
 * They exchange messages through two queues with wake-up pipes
 * (edge_queue.c). Chosen over libpq's async API inside su_root because the
 * outbox relay and the inbox pieces of libcommon are blocking by design and
 * already proven; the queue is the only shared state.
 *
 * Wiring only.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "edge_bus.h"
#include "edge_db.h"
#include "edge_queue.h"
#include "edge_sip.h"
#include "edge_tls.h"
#include "sipdrain/cfg.h"
#include "sipdrain/http.h"
#include "sipdrain/event.h"
#include "sipdrain/kafka.h"
#include "sipdrain/log.h"
#include "sipdrain/service.h"
#include "sipdrain/outbox.h"
#include "sipdrain/topic.h"

#define SERVICE      "sip-edge"
#define HOLD_WAIT_MS 30000 /* PostgreSQL must answer the hold question by then */
/* After "stopped": the last edge.status (edge_bus_stop waits 5 s for the
 * outbox) and closing Kafka and PostgreSQL, at most this long in all. */
#define STOP_BUDGET_S 10

struct sip_edge_cfg {
    char *site;
    char *edge_id;
    char *sip_url;
    char *tls_cert, *tls_key, *tls_ca;
    int tls_verify;
    char *brokers;
    char *pg_dsn;
    long reject_code;
    long sip_timeout_s;
    long retry_after_s;
    char *peer_site_uri;
    char *route_points;
    long queue_max_wait_s, queue_max_calls, ring_timeout_s, route_db_wait_s;
    char *outbound_proxy;
    char *http_addr;
    char *topic_prefix;
    long sip_t1_ms;
    long sip_nice;
    bool allow_contact_names;
    char *trusted_peers;
    long flood_rate, flood_burst, flood_ban_s, auth_failures_max, auth_failures_window_s;
    char *realm;
    char *auth_algorithms;
    long nonce_lifetime_s;
    long max_contacts;
    int log_level;
};

#define F(field) offsetof(struct sip_edge_cfg, field)
static const struct sd_cfg_item cfg_items[] = {
    {"SIPDRAIN_SITE", SD_CFG_STRING, F(site), 0, 0, NULL, NULL, true,
     "the site this edge belongs to (sites.site_id), e.g. site2"},
    {"SIPDRAIN_EDGE_ID", SD_CFG_STRING, F(edge_id), 0, 0, NULL, NULL, false,
     "this edge's id, unique and stable across restarts, e.g. edge-2a; default: the host name"},
    {"SIPDRAIN_SIP_URL", SD_CFG_STRING, F(sip_url), 0, 0, NULL, "sip:127.0.0.1:5060", false,
     "where the edge listens for SIP: a sip: URL (UDP and TCP) and/or a TLS one (sips:, or"
     " ;transport=tls), comma-separated, e.g. sip:0.0.0.0:5060,sips:0.0.0.0:5061"},
    {"SIPDRAIN_TLS_CERT", SD_CFG_STRING, F(tls_cert), 0, 0, NULL, NULL, false,
     "PEM file: the edge's TLS certificate, then its intermediates (needed with a TLS URL)"},
    {"SIPDRAIN_TLS_KEY", SD_CFG_STRING, F(tls_key), 0, 0, NULL, NULL, false,
     "PEM file: the certificate's private key, unencrypted (needed with a TLS URL); keep it"
     " readable by the edge only"},
    {"SIPDRAIN_TLS_CA", SD_CFG_STRING, F(tls_ca), 0, 0, NULL, "/etc/ssl/certs/ca-certificates.crt",
     false, "PEM file: the CAs peers' certificates are verified against"},
    {"SIPDRAIN_TLS_VERIFY", SD_CFG_ENUM, F(tls_verify), 0, 0, "none|servers|all", "servers", false,
     "TLS peers verified against SIPDRAIN_TLS_CA: servers (those the edge connects to: chain"
     " and host name), all (clients too: each phone and gateway must present a certificate),"
     " none (a lab only)"},
    {"SIPDRAIN_KAFKA_BROKERS", SD_CFG_STRING, F(brokers), 0, 0, NULL, NULL, true,
     "Kafka bootstrap servers, e.g. 127.0.0.1:9092"},
    {"SIPDRAIN_PG_DSN", SD_CFG_STRING, F(pg_dsn), 0, 0, NULL, NULL, true,
     "PostgreSQL connection string (libpq)"},
    {"SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE", SD_CFG_INT, F(reject_code), 300, 699, NULL, "503", false,
     "status for new INVITEs while draining: 503 fails over; 300-302 redirect (302) to "
     "SIPDRAIN_PEER_SITE_URI; 6xx (e.g. 603) stops failover"},
    {"SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT", SD_CFG_INT, F(sip_timeout_s), 0, 3600, NULL, "32",
     false, "seconds unconfirmed BYEs are sent again once no call is left (64 x T1)"},
    {"SIPDRAIN_RETRY_AFTER", SD_CFG_INT, F(retry_after_s), 0, 86400, NULL, "30", false,
     "Retry-After seconds on refusals while draining (0 = no header)"},
    {"SIPDRAIN_PEER_SITE_URI", SD_CFG_STRING, F(peer_site_uri), 0, 0, NULL, NULL, false,
     "SIP URI of the peer site, the Contact of a 302 while draining, e.g. sip:site1.example.com"},
    {"SIPDRAIN_ROUTE_POINTS", SD_CFG_STRING, F(route_points), 0, 0, NULL, NULL, false,
     "comma-separated DNs that go to the longest-idle Ready agent"},
    {"SIPDRAIN_QUEUE_MAX_WAIT", SD_CFG_INT, F(queue_max_wait_s), 0, 3600, NULL, "120", false,
     "seconds a route-point call waits for a Ready agent (182 Queued, first come first served"
     " across the site's edges), then 480 queue_timeout; 0 = no queue: 480 no_agent at once"},
    {"SIPDRAIN_QUEUE_MAX_CALLS", SD_CFG_INT, F(queue_max_calls), 1, 100000, NULL, "1000", false,
     "calls a site holds waiting at most (all its edges; give each the same value); more are"
     " refused at once with 480 queue_full"},
    {"SIPDRAIN_ROUTE_DB_WAIT", SD_CFG_INT, F(route_db_wait_s), 0, 30, NULL, "8", false,
     "seconds a new call waits (after its 100 Trying) while PostgreSQL has no primary to"
     " route it, e.g. during a switchover, tried again every 250 ms; then 503 with"
     " Retry-After; 0 = 503 at once"},
    {"SIPDRAIN_RING_TIMEOUT", SD_CFG_INT, F(ring_timeout_s), 1, 600, NULL, "20", false,
     "seconds an agent's phone rings with a route-point call; then the call goes back to the"
     " queue (ahead of later calls) and the agent is set NotReady (no_answer)"},
    {"SIPDRAIN_OUTBOUND_PROXY", SD_CFG_STRING, F(outbound_proxy), 0, 0, NULL, NULL, false,
     "where agent-originated calls go (sip: URI of the first hop; unset: call.originate is "
     "refused)"},
    {"SIPDRAIN_HTTP_ADDR", SD_CFG_STRING, F(http_addr), 0, 0, NULL, NULL, false,
     "host:port of /healthz, /readyz (503 unless active) and /metrics, e.g. 0.0.0.0:8080;"
     " unset: none"},
    {"SIPDRAIN_SIP_T1_MS", SD_CFG_INT, F(sip_t1_ms), 50, 5000, NULL, "500", false,
     "RFC 3261 T1 in ms (transaction timers; Timer F = 64 x T1); shorter only for tests"},
    {"SIPDRAIN_SIP_NICE", SD_CFG_INT, F(sip_nice), -20, 0, NULL, "-10", false,
     "nice value of the SIP thread alone (the bus thread, the outbox relay and librdkafka"
     " stay at the process's): on a host whose cores are busy (PostgreSQL, Kafka, other"
     " edges) it keeps the SIP socket from queueing; raising it needs CAP_SYS_NICE or a"
     " nice rlimit, without either the edge runs at normal priority and says so; 0: leave"
     " it"},
    {"SIPDRAIN_ALLOW_CONTACT_NAMES", SD_CFG_BOOL, F(allow_contact_names), 0, 0, NULL, "false",
     false,
     "accept host names (not only IP addresses) in phones' and callers' Contact and"
     " Record-Route; a risk: the edge then resolves names that the network sent it"},
    {"SIPDRAIN_TRUSTED_PEERS", SD_CFG_STRING, F(trusted_peers), 0, 0, NULL, "127.0.0.0/8,::1",
     false,
     "networks that may place calls (INVITE and every other new request but REGISTER and"
     " OPTIONS): gateways and the load balancer, comma-separated CIDR, e.g."
     " 10.0.5.0/24,192.0.2.7; others get 403, answered statelessly"},
    {"SIPDRAIN_FLOOD_RATE", SD_CFG_INT, F(flood_rate), 1, 100000, NULL, "50", false,
     "requests a second one source outside SIPDRAIN_TRUSTED_PEERS may send (a NAT of many"
     " phones is one source); more bans it for SIPDRAIN_FLOOD_BAN seconds"},
    {"SIPDRAIN_FLOOD_BURST", SD_CFG_INT, F(flood_burst), 1, 100000, NULL, "200", false,
     "requests such a source may send at once before SIPDRAIN_FLOOD_RATE holds"},
    {"SIPDRAIN_AUTH_FAILURES_MAX", SD_CFG_INT, F(auth_failures_max), 1, 10000, NULL, "10", false,
     "failed REGISTER authentications (403) from one source within"
     " SIPDRAIN_AUTH_FAILURES_WINDOW that ban it"},
    {"SIPDRAIN_AUTH_FAILURES_WINDOW", SD_CFG_INT, F(auth_failures_window_s), 1, 86400, NULL, "60",
     false, "seconds in which SIPDRAIN_AUTH_FAILURES_MAX failures ban a source"},
    {"SIPDRAIN_FLOOD_BAN", SD_CFG_INT, F(flood_ban_s), 1, 86400, NULL, "60", false,
     "seconds a banned source's requests are dropped unanswered"},
    {"SIPDRAIN_SIP_REALM", SD_CFG_STRING, F(realm), 0, 0, NULL, "sipdrain", false,
     "the digest realm of REGISTER challenges; the same at every edge of both sites (the"
     " credentials set with sipdrain-passwd are per realm)"},
    {"SIPDRAIN_SIP_AUTH_ALGORITHMS", SD_CFG_STRING, F(auth_algorithms), 0, 0, NULL, "SHA-256,MD5",
     false,
     "digest algorithms REGISTER challenges offer, most preferred first (RFC 8760): SHA-256,"
     " MD5 or both; MD5 alone for phones that fail on a SHA-256 challenge instead of skipping"
     " it (baresip 1.0 and SIPp 3.6, Debian 12's)"},
    {"SIPDRAIN_SIP_NONCE_LIFETIME", SD_CFG_INT, F(nonce_lifetime_s), 10, 3600, NULL, "300", false,
     "seconds a REGISTER challenge's nonce is good for; then the phone gets stale=true"},
    {"SIPDRAIN_SIP_MAX_CONTACTS", SD_CFG_INT, F(max_contacts), 1, 10, NULL, "1", false,
     "live contacts kept per DN; a new one replaces the oldest (a phone that restarted on"
     " another port)"},
    {"SIPDRAIN_TOPIC_PREFIX", SD_CFG_STRING, F(topic_prefix), 0, 0, NULL, NULL, false,
     "prefix of every topic and consumer group name; default: none"},
    {"SIPDRAIN_LOG_LEVEL", SD_CFG_ENUM, F(log_level), 0, 0, "debug|info|warn|error", "info", false,
     "least severe log level written"},
};
#undef F
#define CFG_COUNT (sizeof(cfg_items) / sizeof(cfg_items[0]))

static void usage(void)
{
    printf("sip-edge - a SIP edge of a sipdrain site (sofia-sip)\n\n"
           "Listens on SIPDRAIN_SIP_URL (UDP and TCP; TLS too when it names a sips: URL):\n"
           "agent phones REGISTER (digest-authenticated), trusted gateways send\n"
           "calls, load balancers send OPTIONS (200 active, 503 draining). Drains on\n"
           "edge.drain (sipdrain.edge.control) or SIGTERM; a second SIGTERM stops at once.\n\n"
           "Settings (environment, or KEY=value lines in the file $SIPDRAIN_CONFIG):\n");
    fflush(stdout);
    sd_cfg_usage(cfg_items, CFG_COUNT, 1);
}

static void die_config(const char *name, const char *what)
{
    fprintf(stderr, "sip-edge: %s: %s\n", name, what);
    exit(2);
}

/* Checks what the table cannot: ids, URIs, the redirect's target. */
static void check_config(const struct sip_edge_cfg *c, enum edge_auth_alg *algs, int *n_algs,
                         struct edge_peers *trusted, struct edge_listen *listen)
{
    char why[400];

    if (edge_peers_parse(c->trusted_peers, trusted, why, sizeof(why)) < 0)
        die_config("SIPDRAIN_TRUSTED_PEERS", why);
    if (edge_auth_algs_parse(c->auth_algorithms, algs, n_algs) < 0)
        die_config("SIPDRAIN_SIP_AUTH_ALGORITHMS",
                   "must name SHA-256, MD5 or both, comma-separated, each once (e.g. SHA-256,MD5)");
    if (edge_listen_parse(c->sip_url, listen, why, sizeof(why)) < 0) {
        char what[600];

        snprintf(what, sizeof(what),
                 "%s; give a sip: URL, a TLS one or both, e.g. "
                 "sip:0.0.0.0:5060,sips:0.0.0.0:5061",
                 why);
        die_config("SIPDRAIN_SIP_URL", what);
    }
    if (listen->tls[0] != '\0' && (c->tls_cert == NULL || c->tls_key == NULL))
        die_config(c->tls_cert == NULL ? "SIPDRAIN_TLS_CERT" : "SIPDRAIN_TLS_KEY",
                   "needed with a TLS URL in SIPDRAIN_SIP_URL");
    if (listen->tls[0] != '\0') {
        struct edge_tls_files files = {c->tls_cert, c->tls_key, c->tls_ca};

        if (edge_tls_check(&files, why, sizeof(why)) < 0)
            die_config("SIPDRAIN_TLS_CERT, SIPDRAIN_TLS_KEY, SIPDRAIN_TLS_CA", why);
    }
    if (listen->tls[0] == '\0' && (c->tls_cert != NULL || c->tls_key != NULL))
        die_config(c->tls_cert != NULL ? "SIPDRAIN_TLS_CERT" : "SIPDRAIN_TLS_KEY",
                   "set, but SIPDRAIN_SIP_URL has no TLS URL (sips: or ;transport=tls)");
    if (c->peer_site_uri != NULL && strncmp(c->peer_site_uri, "sip:", 4) != 0 &&
        strncmp(c->peer_site_uri, "sips:", 5) != 0)
        die_config("SIPDRAIN_PEER_SITE_URI", "must be a sip: or sips: URI");
    if (c->outbound_proxy != NULL && strncmp(c->outbound_proxy, "sip:", 4) != 0)
        die_config("SIPDRAIN_OUTBOUND_PROXY", "must be a sip: URI, e.g. sip:10.0.0.5:5060");
    if (c->outbound_proxy != NULL && strpbrk(c->outbound_proxy, "<>\" \t") != NULL)
        die_config("SIPDRAIN_OUTBOUND_PROXY", "must be a bare sip: URI (no <>, quotes or spaces)");
    if (c->http_addr != NULL && !sd_http_addr_valid(c->http_addr))
        die_config("SIPDRAIN_HTTP_ADDR", "must be host:port, e.g. 0.0.0.0:8080");
    if (c->realm[0] == '\0' || strlen(c->realm) > 128 || strpbrk(c->realm, "\"\\\r\n") != NULL)
        die_config("SIPDRAIN_SIP_REALM",
                   "must be 1-128 characters, without quotes, backslashes or line ends");
    if (c->reject_code >= 300 && c->reject_code <= 302 && c->peer_site_uri == NULL)
        die_config("SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE",
                   "300-302 redirects to the peer site: set SIPDRAIN_PEER_SITE_URI too");
}

/* Every TCP and TLS connection of a phone holds a socket: take the hard
 * limit of file descriptors (the soft one is often 1024), as servers do.
 * "listening" says what it is. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Drained stays drained (issue #13): before the edge takes a single
 * request, PostgreSQL says whether its site or the edge itself is held by a
 * drain. It must answer: an edge that came up active in a drained site
 * would take calls there. 0 = not held, 1 = held (hold filled), -1 = no
 * answer within HOLD_WAIT_MS (err). */
static int read_hold(const struct sip_edge_cfg *c, struct edge_drain *hold, struct sd_err *err)
{
    struct sd_pg *pg = sd_pg_new(c->pg_dsn, SERVICE);
    bool found = false;
    int rc = -1;

    if (pg != NULL && sd_pg_connect_wait(pg, HOLD_WAIT_MS, err) == 0 &&
        edge_db_hold(pg, c->edge_id, c->site, hold, &found, err) == 0)
        rc = found ? 1 : 0;
    sd_pg_free(pg);
    return rc;
}

/* The SIP thread (this one: every other thread is started by now and
 * keeps its own priority) runs at SIPDRAIN_SIP_NICE. Measured on 2 cores
 * shared with PostgreSQL, Kafka and SIPp at 1,000 calls/s (issue #17): at
 * nice 0 the SIP socket queued up to 1.4 MB of datagrams and INVITE -> 200
 * took p50 136-368 ms; at -10 the queue stayed near empty, p50 20-32 ms.
 * Linux keeps a nice value per thread: PRIO_PROCESS with 0 is this
 * thread only. */
static void raise_sip_priority(int nice_value)
{
    if (nice_value == 0)
        return;
    if (setpriority(PRIO_PROCESS, 0, nice_value) == 0) {
        sd_log_info("SIP thread priority raised", "nice=%d", nice_value);
        return;
    }
    sd_log_info("SIP thread at normal priority",
                "nice_wanted=%d reason=\"%s\" fix=\"grant"
                " CAP_SYS_NICE or a nice rlimit of %d, or set SIPDRAIN_SIP_NICE=0\"",
                nice_value, strerror(errno), 20 - nice_value);
}

int main(int argc, char **argv)
{
    struct sip_edge_cfg c;
    struct edge_queue *to_bus = NULL, *to_sip = NULL;
    struct edge_bus *bus = NULL;
    struct edge_sip *sip = NULL;
    struct sd_http *http = NULL;
    struct sd_err err = {0};
    struct edge_drain hold;
    char source[SD_EVENT_SOURCE_MAX];
    enum edge_auth_alg algs[EDGE_AUTH_ALG_COUNT];
    struct edge_peers trusted;
    struct edge_listen listen;
    char tls_dir[256] = "";
    int rc = 1, held, n_algs = 0;

    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage();
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "sip-edge: unexpected argument %s (try --help)\n", argv[1]);
        return 2;
    }
    /* sofia-sip allocates and frees each message's parts by the dozen:
     * glibc would give freed memory back to the kernel and fault it in
     * again for the next call (measured: ~5 % of the SIP thread in page
     * faults at 1,500 calls/s, issue #17). Keep up to 64 MiB of it. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 8 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    memset(&c, 0, sizeof(c));
    sd_cfg_load_or_exit(SERVICE, cfg_items, CFG_COUNT, &c);
    check_config(&c, algs, &n_algs, &trusted, &listen);
    raise_fd_limit();
    /* the edge id, by default the host name (one edge per container or
     * pod); the topic prefix, the log, the outbox owner */
    sd_service_init(SERVICE, "SIPDRAIN_EDGE_ID", &c.edge_id, c.topic_prefix, c.log_level, source,
                    sizeof(source));
    sd_kafka_properties_load_or_exit(SERVICE);
    json_object_seed(0); /* before the second thread: jansson's hash seed */
    held = read_hold(&c, &hold, &err);
    if (held < 0) {
        sd_log_error("cannot learn whether this edge or its site stays drained: not starting",
                     "reason=\"%s\"", err.text);
        sd_cfg_free(cfg_items, CFG_COUNT, &c);
        return 1;
    }
    if (held)
        sd_log_warn("held: starting drained, refusing calls until drainctl resume",
                    "drain=%s scope=%s site=%s", hold.drain_id, hold.site_scope ? "site" : "edge",
                    c.site);
    if (c.http_addr != NULL && (http = sd_http_start(c.http_addr, 10000, &err)) == NULL) {
        fprintf(stderr, "sip-edge: SIPDRAIN_HTTP_ADDR: %s\n", err.text);
        exit(2);
    }
    to_bus = edge_queue_new();
    to_sip = edge_queue_new();
    if (to_bus == NULL || to_sip == NULL) {
        sd_err_set(&err, SD_ERR_INTERNAL, "out of memory");
        goto out;
    }
    {
        struct edge_sip_config sc = {
            .edge_id = c.edge_id,
            .site = c.site,
            .sip_url = listen.plain[0] != '\0' ? listen.plain : listen.tls,
            .tls_url = listen.plain[0] != '\0' && listen.tls[0] != '\0' ? listen.tls : NULL,
            .tls_policy = (enum edge_tls_verify)c.tls_verify,
            .peer_site_uri = c.peer_site_uri,
            .route_points = c.route_points,
            .queue_max_wait_s = (int)c.queue_max_wait_s,
            .ring_timeout_s = (int)c.ring_timeout_s,
            .outbound_proxy = c.outbound_proxy,
            .http = http,
            .sip_t1_ms = (int)c.sip_t1_ms,
            .allow_contact_names = c.allow_contact_names,
            .trusted = trusted,
            .flood = {(int)c.flood_rate, (int)c.flood_burst, (int)c.auth_failures_max,
                      (int)c.auth_failures_window_s, (int)c.flood_ban_s},
            .realm = c.realm,
            .n_algs = n_algs,
            .nonce_lifetime_s = (int)c.nonce_lifetime_s,
            .source = source,
            .drain = {(int)c.reject_code, (int)c.sip_timeout_s, (int)c.retry_after_s},
            .hold = held ? &hold : NULL,
        };
        struct edge_bus_config bc = {c.pg_dsn,
                                     c.brokers,
                                     c.edge_id,
                                     c.site,
                                     source,
                                     c.realm,
                                     (int)c.max_contacts,
                                     (int)c.queue_max_wait_s,
                                     (int)c.queue_max_calls,
                                     (int)c.route_db_wait_s};

        memcpy(sc.algs, algs, sizeof(sc.algs));
        if (listen.tls[0] != '\0') {
            struct edge_tls_files files = {c.tls_cert, c.tls_key, c.tls_ca};

            if (edge_tls_prepare(&files, tls_dir, sizeof(tls_dir), err.text, sizeof(err.text)) < 0)
                goto out;
            sc.tls_dir = tls_dir;
        }
        sip = edge_sip_new(&sc, to_bus, to_sip, &err);
        /* the key's copy goes now: tport_tls has read it (edge_tls.h) */
        edge_tls_remove(tls_dir);
        if (sip == NULL)
            goto out;
        bus = edge_bus_start(&bc, to_bus, to_sip, &err);
        if (bus == NULL)
            goto out;
    }
    raise_sip_priority((int)c.sip_nice);
    rc = edge_sip_run(sip);
    sd_log_info("stopped", "exit=%d", rc);
    sd_service_stop_within(STOP_BUDGET_S, rc);
out:
    if (err.text[0] != '\0')
        sd_log_error("cannot start", "reason=\"%s\"", err.text);
    edge_bus_stop(bus, 5000); /* publishes the last edge.status */
    edge_sip_free(sip);
    sd_http_stop(http);
    edge_queue_free(to_bus);
    edge_queue_free(to_sip);
    sd_cfg_free(cfg_items, CFG_COUNT, &c);
    return rc;
}
