/* edge_sip_int.h - what the files of sip-edge's SIP thread share: the
 * state of the edge (struct edge_sip), its calls, their legs, nailed-up
 * dialogs, unconfirmed BYEs, and each file's functions for the others.
 * Private to edge_sip.c, edge_status.c, edge_register.c, edge_call.c,
 * edge_bye.c, edge_nailed.c and edge_originate.c; everything here runs on
 * the su_root thread (edge_sip.h says what the rest of the process sees).
 */
#ifndef SIPDRAIN_EDGE_SIP_INT_H
#define SIPDRAIN_EDGE_SIP_INT_H

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include <arpa/inet.h>

struct edge_sip;
struct edge_leg;
#define NUA_MAGIC_T     struct edge_sip
#define NUA_HMAGIC_T    struct edge_leg
#define SU_ROOT_MAGIC_T struct edge_sip

#include <sofia-sip/hostdomain.h>
#include <sofia-sip/nua.h>
#include <sofia-sip/nta_tag.h>
#include <sofia-sip/nua_tag.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_tag_io.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>

#include "call_fsm.h"
#include "edge_auth.h"
#include "edge_bus.h"
#include "edge_fast.h"
#include "edge_flood.h"
#include "edge_flow.h"
#include "edge_peers.h"
#include "edge_sdp.h"
#include "edge_sip.h"
#include "sipdrain/event.h"
#include "sipdrain/log.h"
#include "sipdrain/suroot.h"
#include "sipdrain/topic.h"

#define STATUS_EVERY_MS  1000 /* edge.status heartbeat */
#define QUEUE_TICK_MS    100
#define REGISTER_MAX     512   /* REGISTERs waiting for the database at once */
#define EDGE_FLOWS_MAX   65536 /* phones' TCP/TLS connections remembered (edge_flow.h) */
#define REGISTER_DEFAULT 3600
#define REGISTER_MIN     60
#define FLOW_MAX_EXPIRES 900 /* s, over TCP/TLS: half of nta's 30 min connection idle timeout */
#define CONTROL_SEEN_MAX 64  /* edge.control ids remembered (a repeat is ignored) */
#define ROUTE_POINTS_MAX 32
#define DEADLINE_REASON  "SIP;cause=503;text=\"site drain deadline\""
#define DRAIN_REASON     "SIP;cause=503;text=\"site draining\""
#define STOP_REASON      "SIP;cause=503;text=\"edge stopped at once\""

#define SDP_MAX 8192 /* an SDP body the edge rewrites (origin) or builds */

/* The methods the edge serves: calls (relayed in dialog: re-INVITE, ACK,
 * BYE, CANCEL, INFO), OPTIONS and REGISTER. */
#define EDGE_ALLOW "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO"

#define EDGE_MAX_MESSAGE (64u << 10) /* the largest SIP message taken (nta: 413) */

#define UDP_BUFFER_BYTES (4u << 20) /* SIP socket buffers (see nua_create) */

#define BYE_RETRY_MS 2000 /* bye_wait: a new BYE transaction this often per dialog */

/* A BYE the far end never confirmed (its transaction timed out): sent
 * again, in new transactions, while the edge is in bye_wait (DESIGN.md §4;
 * RFC 3261 lets a UA give up after Timer F, the edge deliberately does not
 * until graceful-shutdown-sip-timeout). */
struct unconfirmed_bye;

/* One side of a bridged call: a = the gateway's (caller's) dialog, b = the
 * agent phone's. The handle's magic points here (for a BYE retransmission
 * handle: retry is set and call is NULL). */
struct nailed;

struct edge_leg {
    struct edge_call *call;
    struct unconfirmed_bye *retry;
    struct nailed *nailed;          /* the agent's standing dialog (also while a call uses it) */
    struct edge_sdp_origin *origin; /* set: SDP sent on this leg carries the edge's o= line */
    char sip_call_id[256];          /* the dialog's SIP Call-ID */
    char target[512];               /* the far end's Contact (remote target) */
    char route[1024];               /* the dialog's route set, as a Route value ("" = none) */
    char bye_reason[160];           /* the Reason our BYE carried ("" = none) */
    nua_handle_t *nh;
    bool is_a;
    bool gone; /* terminated; the handle is destroyed */
    /* A nailed-up dialog's own leg only (a call's legs: call_fsm's state). */
    bool bye_pending; /* our BYE is waiting for its answer */
    bool answered_up; /* a 2xx went through on this leg's INVITE */
    bool reinvite_in; /* a re-INVITE received here waits for the other side's answer */
};

/* Everything a BYE within the dialog needs (RFC 3261 §12.2.1.1), taken
 * from the BYE that went unanswered: Call-ID, From with the edge's tag,
 * To with the far end's tag, its CSeq; and the dialog's route set and
 * remote target, kept on the leg since the dialog was set up. */
struct unconfirmed_bye {
    struct unconfirmed_bye *next;
    struct edge_leg leg; /* magic of the retransmission's handle */
    char call_ref[256];  /* sipdrain call id, for the log */
    char leg_name[8];    /* "caller" / "agent" */
    char call_id[256], from[512], to[512], target[512], route[1024], reason[160];
    uint32_t cseq;         /* the last CSeq sent in the dialog */
    nua_handle_t *nh;      /* the transaction in flight, or NULL */
    unsigned transactions; /* BYE transactions so far, the first one included */
};

/* A nailed-up connection (DESIGN.md §4): a standing dialog from the edge
 * to a nailed_up agent's phone, opened at login, parked (inactive SDP)
 * between calls. A customer call is connected through it by re-INVITE with
 * the caller's SDP, and the dialog is parked again when the call ends. The
 * handle's magic is `leg` while idle, the call's b leg while a call uses it. */
struct nailed {
    struct nailed *next;
    struct edge_leg leg;
    struct edge_sdp_origin origin; /* the edge's side of the standing session */
    char agent_id[65], dn[65];
    bool up;                /* the phone answered the edge's INVITE */
    bool ending;            /* BYE once no customer call is on it (drain, logout) */
    struct edge_call *call; /* the customer call connected through it */
};

/* A gateway call bridged to an agent phone (B2BUA, SDP passed through); or
 * an agent-originated call (outbound): b = the agent's phone, a = the
 * destination, both dialogs started by the edge. */
#define EDGE_TOKEN_BUCKETS 4096 /* a power of two */

struct edge_call {
    struct edge_call *next, **pprev; /* e->calls: unlinked in O(1) */
    struct edge_call *token_next;    /* e->by_token's chain (token != 0) */
    struct edge_leg a, b;
    struct call_state st;          /* phase, outbound step, legs, end cause: call_fsm decides */
    bool outbound;                 /* = st.outbound */
    struct edge_sdp_origin origin; /* outbound: the edge's side of the phone's session */
    char dest_uri[512];            /* outbound: the Request-URI towards the destination */
    unsigned long token;           /* the ROUTE request while routing */
    char call_id[256], agent_id[65], dn[65], caller[257], called[257];
    char contact[512];  /* the agent's phone (its registration), once routed */
    char queue_id[256]; /* the call's id in waiting_calls: its first call_id (SIP Call-ID) */
    bool route_point;   /* called a route point (SIPDRAIN_ROUTE_POINTS) */
    int offers;         /* agents it was offered to so far (queue_on) */
    bool to_peer;       /* asked to go to the peer site (a site drain) */
    int64_t ring_ms;    /* when the agent's phone was INVITEd (the ring timeout) */
    char *offer;        /* the caller's SDP, until the agent leg's INVITE is sent */
    int64_t created_ms, answered_ms;
    int depth;    /* edge_call_input calls under way on this call */
    bool free_me; /* call_fsm said free: done when the outermost input returns */
};

/* What an input to a call comes with, besides call_fsm's own input: the
 * SIP message it came in (answers relay its body), how to refuse a caller
 * the database could not route, an SDP the shell prepared. */
struct call_ctx {
    const sip_t *sip;
    bool db_away;    /* ROUTE_DONE: refused because the database is away */
    bool quiet;      /* do not tell edge_fsm (the caller does, once) */
    const char *sdp; /* CONNECT_PHONE: the destination's offer with the edge's o= line */
};

/* A REGISTER answered once the bus thread has checked its credentials and
 * stored it. */
struct pending_register {
    unsigned long token;
    nua_handle_t *nh;
    nua_saved_event_t saved[1];
    char contact[512];
    char dn[65], from[80]; /* for the log */
    int from_family;       /* the source, for the flood limits (0: unknown) */
    unsigned char from_addr[16];
    int expires_s;
    char hop[EDGE_FLOW_HOP_MAX]; /* its TCP/TLS connection (edge_flow.h), "" over UDP */
};

/* What became of REGISTERs' credentials (/metrics). */
enum edge_auth_outcome {
    EDGE_AUTH_CHALLENGED,     /* 401: no credentials for our realm, or a nonce not ours */
    EDGE_AUTH_STALE,          /* 401 stale=true: a nonce too old or replayed */
    EDGE_AUTH_ACCEPTED,       /* 200 */
    EDGE_AUTH_BAD_PASSWORD,   /* 403 */
    EDGE_AUTH_NO_CREDENTIALS, /* 403: the DN has none */
    EDGE_AUTH_WRONG_USER,     /* 403: username is not the DN */
    EDGE_AUTH_MALFORMED,      /* 401: credentials without qop=auth, nc, cnonce, ... */
    EDGE_AUTH_OUTCOME_COUNT
};
extern const char *const edge_auth_outcome_names[EDGE_AUTH_OUTCOME_COUNT];

/* A source address the guard refused requests from (edge_guard.c). */
#define EDGE_GUARD_SOURCES 256
struct edge_guard_source {
    int family;
    unsigned char addr[16];
    int64_t logged_ms;      /* its last log line */
    unsigned long unlogged; /* refusals since */
};

struct edge_sip {
    struct edge_sip_config cfg;
    su_home_t home[1];
    su_root_t *root;
    nua_t *nua;
    struct edge_queue *to_bus, *to_sip;
    struct sd_suroot_watch *queue_watch, *signal_watch;
    su_timer_t *status_timer, *fsm_timer;
    struct edge_fsm fsm;
    int64_t started_ms;
    long seq;
    /* counters reported in edge.status */
    unsigned long invites_rejected, byes_retransmitted, calls_cut, registrations;
    unsigned long rejected_by_code[700]; /* INVITEs refused while draining, by status */
    uint64_t fast_tag_key;               /* keys edge_fast's To tags (random) */
    int fast_reason_status;              /* fast_reason is this status's Reason */
    char fast_reason[160];
    long consumer_lag, outbox_backlog; /* from the bus thread (-1: unknown) */
    struct pending_register *registers[REGISTER_MAX];
    struct edge_auth auth; /* nonces: the secret, the counts seen */
    unsigned long auth_outcomes[EDGE_AUTH_OUTCOME_COUNT];
    unsigned long refused_untrusted; /* requests from outside SIPDRAIN_TRUSTED_PEERS */
    unsigned long refused_flood;     /* requests of banned sources, dropped */
    unsigned long bans;              /* sources banned since start */
    struct edge_flood flood;
    struct edge_flows *flows; /* phones' TCP/TLS connections (edge_flow.h) */
    struct edge_guard_source guard_sources[EDGE_GUARD_SOURCES];
    unsigned long next_token;
    char control_seen[CONTROL_SEEN_MAX][SD_EVENT_ID_LEN + 1];
    unsigned control_next;
    char route_points[ROUTE_POINTS_MAX][65];
    int n_route_points;
    struct edge_call *calls;
    /* calls by token (the bus thread's answers name the call by it): a
     * lookup per answer must not walk every call at thousands a second */
    struct edge_call *by_token[EDGE_TOKEN_BUCKETS];
    unsigned long calls_total;
    int64_t ring_check_ms;                  /* last edge_call_ring_check */
    long queue_site_calls, queue_oldest_ms; /* the site's queue (bus stats; -1: unknown) */
    struct unconfirmed_bye *byes;
    su_timer_t *bye_timer;
    struct nailed *nailed;
    int exit_code;
};

/* edge_sip.c: set-up, on_nua, the drain */
void edge_sip_load_changed(struct edge_sip *e);
void edge_sip_publish(struct edge_sip *e, const char *topic, const char *key, const char *type,
                      json_t *data);
void edge_sip_uri_hostport(const char *uri, char *out, size_t size);

/* edge_status.c: edge.status, /readyz, /metrics */
struct edge_load edge_status_load(const struct edge_sip *e);
void edge_status_send_as(struct edge_sip *e, enum edge_state state);
void edge_status_send(struct edge_sip *e);
void edge_status_on_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg);

/* edge_guard.c: the request filter (nta_request_filter_f) */
int edge_guard_filter(void *magic, msg_t *msg, sip_t const *sip, char const **phrase);
/* The current request's source (nua_current_request); false if unknown. */
bool edge_guard_current_source(struct edge_sip *e, int *family, unsigned char addr[16]);
/* A failed authentication from the source (family 0: unknown): counts
 * towards its ban. */
void edge_guard_auth_failed(struct edge_sip *e, int family, const unsigned char addr[16]);

/* edge_register.c: REGISTER and OPTIONS */
void edge_register_on_options(struct edge_sip *e, nua_handle_t *nh);
/* A NUA handle for requests to the phone of DN dn at contact (To: to,
 * From: from unless NULL): over the connection it registered on, when this
 * edge holds one (edge_flow.h). */
nua_handle_t *edge_register_phone_handle(struct edge_sip *e, void *magic, const char *dn,
                                         const char *contact, const char *to, const char *from);
void edge_register_on_request(struct edge_sip *e, nua_handle_t *nh, const sip_t *sip);
void edge_register_on_done(struct edge_sip *e, const struct edge_msg *m);

/* edge_call.c: calls (B2BUA), as call_fsm decides them */
void edge_call_on_invite(struct edge_sip *e, nua_handle_t *nh, const sip_t *sip);
void edge_call_on_route_done(struct edge_sip *e, const struct edge_msg *m);
void edge_call_on_queued(struct edge_sip *e, const struct edge_msg *m);
/* A site drain (issue #16): every call waiting here goes to the peer site's
 * route point (SIPDRAIN_PEER_SITE_URI), bridged as any other call. Also
 * for a call that starts to wait while the site drains. */
void edge_call_queue_to_peer(struct edge_sip *e);
/* Phones that rang longer than SIPDRAIN_RING_TIMEOUT for a queue_on call:
 * CANCELled, the call back to the queue. At most every 100 ms. */
void edge_call_ring_check(struct edge_sip *e);
void edge_call_on_event(struct edge_sip *e, struct edge_leg *l, nua_event_t event, int status,
                        const sip_t *sip, tagi_t tags[]);
/* tport's datagram filter (TPTAG_DGRAM_FILTER): a draining edge's
 * stateless refusals (edge_fast.h). */
int edge_call_fast_filter(void *magic, su_socket_t s, void const *data, size_t len,
                          su_sockaddr_t const *from, socklen_t fromlen);
/* Adds c (calloc'ed, its token set if it has one) to e's calls. */
void edge_call_link(struct edge_sip *e, struct edge_call *c);
void edge_call_input(struct edge_sip *e, struct edge_call *c, const struct call_input *in,
                     const struct call_ctx *ctx);
void edge_call_report(struct edge_sip *e, struct edge_call *c, const char *state,
                      const char *end_cause, int sip_status);
void edge_call_send_bye(struct edge_leg *l, const char *reason);
void edge_call_note_dialog(struct edge_leg *l, const sip_t *sip, bool uac);
void edge_call_note_target(struct edge_leg *l, const sip_t *sip);
void edge_call_agent_to(const struct edge_sip *e, const char *dn, const char *contact, char *out,
                        size_t size);
const char *edge_call_phrase(int status);
void edge_call_cut_all(struct edge_sip *e, const char *reason);

/* edge_bye.c: the BYE wait */
void edge_bye_remember(struct edge_sip *e, struct edge_leg *l, int status, const sip_t *sip);
void edge_bye_on_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg);
void edge_bye_on_retry_answer(struct edge_sip *e, struct unconfirmed_bye *u, int status);
void edge_bye_give_up_all(struct edge_sip *e);

/* edge_nailed.c: nailed-up dialogs */
void edge_nailed_unlink(struct edge_sip *e, struct nailed *n);
void edge_nailed_end_all(struct edge_sip *e);
void edge_nailed_on_msg(struct edge_sip *e, json_t *d);
void edge_nailed_release(struct edge_sip *e, struct edge_call *c, bool park, bool bye_pending);
bool edge_nailed_idle(struct edge_sip *e, const char *agent_id);
bool edge_nailed_connect(struct edge_sip *e, struct edge_call *c);
void edge_nailed_on_event(struct edge_sip *e, struct nailed *n, nua_event_t event, int status,
                          const sip_t *sip, tagi_t tags[]);

/* edge_originate.c: agent-originated calls */
bool edge_originate_dest(struct edge_sip *e, struct edge_call *c);
void edge_originate_connect(struct edge_call *c, const char *sdp);
void edge_originate_ack(struct edge_call *c, const sip_t *answer);
bool edge_originate_answer_sdp(struct edge_call *c, enum call_leg_id leg, const sip_t *sip,
                               char *buf, size_t size, const char **sdp);
void edge_originate_on_control(struct edge_sip *e, json_t *d);

#endif
