/* edge_sip.c - see edge_sip.h. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#include "edge_bus.h"
#include "edge_sdp.h"
#include "edge_sip.h"
#include "sipdrain/event.h"
#include "sipdrain/log.h"
#include "sipdrain/suroot.h"
#include "sipdrain/topic.h"

#define STATUS_EVERY_MS  1000 /* edge.status heartbeat */
#define QUEUE_TICK_MS    100
#define REGISTER_MAX     512 /* REGISTERs waiting for the database at once */
#define REGISTER_DEFAULT 3600
#define REGISTER_MIN     60
#define CONTROL_SEEN_MAX 64 /* edge.control ids remembered (a repeat is ignored) */
#define ROUTE_POINTS_MAX 32
#define DEADLINE_REASON  "SIP;cause=503;text=\"site drain deadline\""
#define DRAIN_REASON     "SIP;cause=503;text=\"site draining\""
#define STOP_REASON      "SIP;cause=503;text=\"edge stopped at once\""

#define SDP_MAX 8192 /* an SDP body the edge rewrites (origin) or builds */

/* The methods the edge serves: calls (relayed in dialog: re-INVITE, ACK,
 * BYE, CANCEL, INFO), OPTIONS and REGISTER. */
#define EDGE_ALLOW "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO"

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
    bool gone;        /* terminated; the handle is destroyed */
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

enum call_phase { CALL_ROUTING, CALL_RINGING, CALL_ANSWERED, CALL_ENDED };

/* An agent-originated call (RFC 3725 Flow IV, see originate_start): what
 * the edge waits for. */
enum out_step {
    OUT_PHONE,   /* the phone's answer to the INVITE without media */
    OUT_DEST,    /* the destination's answer to the INVITE without SDP */
    OUT_CONNECT, /* the phone's answer to the re-INVITE with the destination's offer */
    OUT_DONE     /* connected (or over): ordinary relaying */
};

/* A gateway call bridged to an agent phone (B2BUA, SDP passed through); or
 * an agent-originated call (outbound): b = the agent's phone, a = the
 * destination, both dialogs started by the edge. */
struct edge_call {
    struct edge_call *next;
    struct edge_leg a, b;
    enum call_phase phase;
    bool outbound;
    enum out_step step;
    struct edge_sdp_origin origin; /* outbound: the edge's side of the phone's session */
    char dest_uri[512];            /* outbound: the Request-URI towards the destination */
    unsigned long token;           /* the ROUTE request while routing */
    char call_id[256], agent_id[65], dn[65], caller[257], called[257];
    char *offer; /* the caller's SDP, until the agent leg's INVITE is sent */
    int64_t created_ms, answered_ms;
    bool routed;     /* call.offered is written: call.ended is owed */
    bool ended_sent; /* call.ended is written */
    bool a_final;    /* a final response went to the caller's INVITE */
};

/* A REGISTER answered once the bus thread has stored it. */
struct pending_register {
    unsigned long token;
    nua_handle_t *nh;
    nua_saved_event_t saved[1];
    char contact[512];
    int expires_s;
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
    long consumer_lag, outbox_backlog;   /* from the bus thread (-1: unknown) */
    struct pending_register *registers[REGISTER_MAX];
    unsigned long next_token;
    char control_seen[CONTROL_SEEN_MAX][SD_EVENT_ID_LEN + 1];
    unsigned control_next;
    char route_points[ROUTE_POINTS_MAX][65];
    int n_route_points;
    struct edge_call *calls;
    unsigned long calls_total;
    struct unconfirmed_bye *byes;
    su_timer_t *bye_timer;
    struct nailed *nailed;
    int exit_code;
};

static int signal_pipe[2] = {-1, -1};

static void on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;

    if (write(signal_pipe[1], &b, 1) < 0) {
        /* the pipe is full: enough signals are pending already */
    }
    errno = saved;
}

#define SOFIA_LOG_BURST 3 /* the same line this often a second, then folded */

/* Writes a sofia-sip line, or folds it: the same text more than
 * SOFIA_LOG_BURST times within a second is counted, not written, and the
 * count comes with the next line that differs or the first repeat after
 * the second is over ("repeated=N"). A stack stuck in a loop (a resolver
 * without a route, a peer flooding) then costs a line a second, not
 * gigabytes of log. */
static void sofia_log_line(const char *line)
{
    static char last[1024];
    static int64_t since_ms;
    static unsigned in_window, folded;
    int64_t now = sd_mono_ms();

    if (strcmp(line, last) == 0 && now - since_ms < 1000) {
        if (++in_window > SOFIA_LOG_BURST) {
            folded++;
            return;
        }
    } else {
        if (folded > 0)
            sd_log_info("sofia-sip", "text=\"%s\" repeated=%u", last, folded);
        snprintf(last, sizeof(last), "%s", line);
        since_ms = now;
        in_window = 1;
        folded = 0;
    }
    sd_log_info("sofia-sip", "text=\"%s\"", line);
}

/* sofia-sip's own messages (e.g. "nta: INVITE: Connection refused"), as
 * our log lines instead of raw stderr. They come in pieces: a line is
 * logged when its newline arrives. */
static void on_sofia_log(void *stream, char const *fmt, va_list ap)
{
    static char line[1024];
    size_t len = strlen(line);

    (void)stream;
    vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    len = strlen(line);
    if (len > 0 && (line[len - 1] == '\n' || len == sizeof(line) - 1)) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        for (char *p = line; *p; p++) {
            if (*p == '"')
                *p = '\'';
        }
        sofia_log_line(line);
        line[0] = '\0';
    }
}

/* --- edge.status --------------------------------------------------------- */

static struct edge_load load_now(const struct edge_sip *e)
{
    struct edge_load l = {0, 0, 0};

    for (const struct edge_call *c = e->calls; c != NULL; c = c->next) {
        if (c->phase != CALL_ENDED)
            l.active_calls++;
        l.pending_byes += (unsigned)c->a.bye_pending + (unsigned)c->b.bye_pending;
    }
    for (const struct unconfirmed_bye *u = e->byes; u != NULL; u = u->next)
        l.pending_byes++;
    for (const struct nailed *n = e->nailed; n != NULL; n = n->next) {
        if (n->call == NULL && n->leg.bye_pending)
            l.pending_byes++;
        else if (n->call == NULL)
            l.nailed_up_dialogs++;
    }
    return l;
}

static void send_status_as(struct edge_sip *e, enum edge_state state)
{
    struct edge_load l = load_now(e);
    char started[SD_EVENT_TIME_LEN + 1], bye_at[SD_EVENT_TIME_LEN + 1];
    json_t *d;

    sd_time_format_ms(e->started_ms, started);
    d = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:s}", "edge",
                  e->cfg.edge_id, "site", e->cfg.site, "state", edge_state_name(state),
                  "active_calls", (json_int_t)l.active_calls, "pending_byes",
                  (json_int_t)l.pending_byes, "nailed_up_dialogs", (json_int_t)l.nailed_up_dialogs,
                  "seq", (json_int_t)++e->seq, "started_at", started, "byes_retransmitted",
                  (json_int_t)e->byes_retransmitted, "invites_rejected",
                  (json_int_t)e->invites_rejected, "calls_cut", (json_int_t)e->calls_cut,
                  "registrations", (json_int_t)e->registrations, "sip_url", e->cfg.sip_url);
    if (state != EDGE_ACTIVE && e->fsm.drain.drain_id[0] != '\0')
        json_object_set_new(d, "drain_id", json_string(e->fsm.drain.drain_id));
    if (state == EDGE_BYE_WAIT && e->fsm.bye_until_ms > 0) {
        sd_time_format_ms(e->fsm.bye_until_ms, bye_at);
        json_object_set_new(d, "bye_timeout_at", json_string(bye_at));
    }
    edge_queue_put(e->to_bus, EDGE_MSG_STATUS, 0, d);
}

/* /readyz and /metrics (SIPDRAIN_HTTP_ADDR): ready only while active, so
 * Kubernetes and HTTP-probing load balancers agree with OPTIONS. */
static void publish_health(struct edge_sip *e)
{
    struct edge_load l = load_now(e);
    struct sd_metrics m = {0};
    char labels[256];

    if (e->cfg.http == NULL)
        return;
    sd_http_set_ready(e->cfg.http, e->fsm.state == EDGE_ACTIVE, edge_state_name(e->fsm.state));
    sd_metrics_family(&m, "sipdrain_edge_state", "gauge",
                      "1 for the drain state the edge is in (edges.state), 0 for the others");
    for (int s = 0; s < EDGE_STATE_COUNT; s++) {
        snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\",state=\"%s\"", e->cfg.edge_id,
                 e->cfg.site, edge_state_name((enum edge_state)s));
        sd_metrics_sample(&m, "sipdrain_edge_state", labels, e->fsm.state == (enum edge_state)s);
    }
    snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\"", e->cfg.edge_id, e->cfg.site);
    sd_metrics_family(&m, "sipdrain_edge_calls_active", "gauge", "calls up or being set up");
    sd_metrics_sample(&m, "sipdrain_edge_calls_active", labels, l.active_calls);
    sd_metrics_family(&m, "sipdrain_edge_calls_total", "counter", "calls handled since start");
    sd_metrics_sample(&m, "sipdrain_edge_calls_total", labels, (double)e->calls_total);
    sd_metrics_family(&m, "sipdrain_edge_byes_pending", "gauge",
                      "BYEs sent and not yet confirmed by 200 OK");
    sd_metrics_sample(&m, "sipdrain_edge_byes_pending", labels, l.pending_byes);
    sd_metrics_family(&m, "sipdrain_edge_byes_retransmitted_total", "counter",
                      "BYEs sent again in new transactions while draining");
    sd_metrics_sample(&m, "sipdrain_edge_byes_retransmitted_total", labels,
                      (double)e->byes_retransmitted);
    sd_metrics_family(&m, "sipdrain_edge_nailed_up_dialogs", "gauge", "idle nailed-up dialogs");
    sd_metrics_sample(&m, "sipdrain_edge_nailed_up_dialogs", labels, l.nailed_up_dialogs);
    sd_metrics_family(&m, "sipdrain_edge_calls_cut_total", "counter",
                      "calls ended by the edge at a drain deadline or a forced stop");
    sd_metrics_sample(&m, "sipdrain_edge_calls_cut_total", labels, (double)e->calls_cut);
    sd_metrics_family(&m, "sipdrain_edge_registrations_total", "counter",
                      "REGISTERs stored since start");
    sd_metrics_sample(&m, "sipdrain_edge_registrations_total", labels, (double)e->registrations);
    sd_metrics_family(&m, "sipdrain_edge_invites_rejected_total", "counter",
                      "new INVITEs refused while draining, by SIP status");
    for (int code = 300; code < 700; code++) {
        if (e->rejected_by_code[code] == 0)
            continue;
        snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\",code=\"%d\"", e->cfg.edge_id,
                 e->cfg.site, code);
        sd_metrics_sample(&m, "sipdrain_edge_invites_rejected_total", labels,
                          (double)e->rejected_by_code[code]);
    }
    snprintf(labels, sizeof(labels), "edge=\"%s\",site=\"%s\"", e->cfg.edge_id, e->cfg.site);
    sd_metrics_bus(&m, labels, e->consumer_lag, e->outbox_backlog);
    sd_http_set_metrics(e->cfg.http, m.buf);
    sd_metrics_free(&m);
}

static void send_status(struct edge_sip *e)
{
    send_status_as(e, e->fsm.state);
    publish_health(e);
}

static void on_status_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
    (void)t;
    (void)arg;
    send_status(magic);
}

/* Publishes one event through the bus thread's outbox. */
static void publish(struct edge_sip *e, const char *topic, const char *key, const char *type,
                    json_t *data)
{
    edge_queue_put(
        e->to_bus, EDGE_MSG_EVENT, 0,
        json_pack("{s:s, s:s, s:s, s:o}", "topic", topic, "key", key, "type", type, "data", data));
}

/* --- the drain ---------------------------------------------------------- */

static void arm_fsm_timer(struct edge_sip *e);
static void cut_calls(struct edge_sip *e, const char *reason);
static void give_up_byes(struct edge_sip *e);
static void end_nailed_up(struct edge_sip *e);
static bool nailed_connect(struct edge_sip *e, struct edge_call *c);
static void nailed_release(struct edge_sip *e, struct edge_call *c, bool park);
static void nailed_free(struct edge_sip *e, struct nailed *n);
static void nailed_unlink(struct edge_sip *e, struct nailed *n);
static void call_unlink(struct edge_sip *e, struct edge_call *c);
static void call_new(struct edge_sip *e, nua_handle_t *nh, const sip_t *sip);
static void on_out_answer(struct edge_sip *e, struct edge_leg *l, int status, const sip_t *sip);

/* Feeds one input to edge_fsm and carries out what it asks. */
static void fsm_input(struct edge_sip *e, struct edge_input *in, const char *cause)
{
    struct edge_actions out;
    enum edge_state before = e->fsm.state;

    in->now_ms = sd_wall_ms();
    in->load = load_now(e);
    edge_fsm_step(&e->fsm, in, &out);
    if (out.note != NULL)
        sd_log_info("drain input ignored", "input=%s cause=%s why=\"%s\"",
                    edge_input_name(in->kind), cause, out.note);
    if (before != e->fsm.state)
        sd_log_info("edge state changed", "from=%s to=%s input=%s cause=%s drain=%s",
                    edge_state_name(before), edge_state_name(e->fsm.state),
                    edge_input_name(in->kind), cause,
                    e->fsm.drain.drain_id[0] ? e->fsm.drain.drain_id : "-");
    for (size_t i = 0; i < out.n; i++) {
        switch (out.a[i]) {
        case EDGE_DO_CUT_CALLS: /* the deadline, or a forced stop (second SIGTERM, force) */
            cut_calls(e, e->fsm.state == EDGE_STOPPING ? STOP_REASON : DEADLINE_REASON);
            break;
        case EDGE_DO_RETRANSMIT_BYES_STOP:
            give_up_byes(e);
            break;
        case EDGE_DO_END_NAILED_UP:
            end_nailed_up(e);
            break;
        case EDGE_DO_SHUTDOWN:
            sd_log_info("shutting SIP down", "%s", "");
            nua_shutdown(e->nua);
            break;
        case EDGE_DO_EMIT_STATUS:
            /* One edge.status per phase entered, the last one as it is now. */
            for (size_t k = 0; k + 1 < out.n_passed; k++)
                send_status_as(e, out.passed[k]);
            send_status(e);
            break;
        case EDGE_DO_EXIT:
            e->exit_code = 0;
            su_root_break(e->root);
            break;
        default:
            break;
        }
    }
    arm_fsm_timer(e);
}

static void on_fsm_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
    struct edge_input in = {.kind = EDGE_IN_TICK};

    (void)t;
    (void)arg;
    fsm_input(magic, &in, "timer");
}

static void arm_fsm_timer(struct edge_sip *e)
{
    int64_t due = edge_fsm_due(&e->fsm), now = sd_wall_ms();

    su_timer_reset(e->fsm_timer);
    if (due > 0)
        su_timer_set_interval(e->fsm_timer, on_fsm_timer, NULL,
                              (su_duration_t)(due > now ? due - now : 0));
}

/* --- requests ----------------------------------------------------------- */

/* "Reason: SIP;cause=503;text="..."" (RFC 3326) for a refusal while draining. */
static void reason_text(char *buf, size_t size, int status, const struct edge_sip *e)
{
    snprintf(buf, size, "SIP;cause=%d;text=\"edge %s is draining\"", status, e->cfg.edge_id);
}

static void on_options(struct edge_sip *e, nua_handle_t *nh)
{
    struct edge_verdict v = edge_fsm_options(&e->fsm);
    char retry[16];

    snprintf(retry, sizeof(retry), "%d", v.retry_after_s);
    nua_respond(nh, v.status, sip_status_phrase(v.status), NUTAG_WITH_THIS(e->nua),
                TAG_IF(v.kind != EDGE_ACCEPT && v.retry_after_s > 0, SIPTAG_RETRY_AFTER_STR(retry)),
                TAG_END());
    nua_handle_destroy(nh);
}

static void refuse_register(struct edge_sip *e, nua_handle_t *nh, int status, const char *phrase,
                            int retry_after_s)
{
    char retry[16];

    snprintf(retry, sizeof(retry), "%d", retry_after_s);
    nua_respond(nh, status, phrase, NUTAG_WITH_THIS(e->nua),
                TAG_IF(retry_after_s > 0, SIPTAG_RETRY_AFTER_STR(retry)), TAG_END());
    nua_handle_destroy(nh);
}

/* REGISTER from an agent's phone: the DN is the To user; stored by the bus
 * thread, answered when it says so. Refused (503) unless active, so phones
 * register at another edge. */
static void on_register(struct edge_sip *e, nua_handle_t *nh, const sip_t *sip)
{
    struct edge_verdict v = edge_fsm_register(&e->fsm);
    struct pending_register *pr;
    const sip_contact_t *m = sip ? sip->sip_contact : NULL;
    const char *dn = sip && sip->sip_to ? sip->sip_to->a_url->url_user : NULL;
    char *uri;
    int expires = REGISTER_DEFAULT, slot;

    if (v.kind != EDGE_ACCEPT) {
        refuse_register(e, nh, v.status, sip_status_phrase(v.status), v.retry_after_s);
        return;
    }
    if (dn == NULL || dn[0] == '\0' || strlen(dn) > 64 || m == NULL || m->m_url->url_host == NULL) {
        refuse_register(e, nh, 400, "Missing DN or Contact", 0);
        return;
    }
    if (!e->cfg.allow_contact_names && !host_is_ip_address(m->m_url->url_host)) {
        /* Calls to this phone would make the edge resolve a name the
         * network chose (SIPDRAIN_ALLOW_CONTACT_NAMES). */
        sd_log_info("REGISTER refused", "dn=%s why=\"Contact host is not an IP address\"", dn);
        refuse_register(e, nh, 400, "Contact host must be an IP address", 0);
        return;
    }
    if (m->m_expires != NULL)
        expires = atoi(m->m_expires);
    else if (sip->sip_expires != NULL)
        expires = (int)sip->sip_expires->ex_delta;
    if (expires > 0 && expires < REGISTER_MIN)
        expires = REGISTER_MIN;
    for (slot = 0; slot < REGISTER_MAX && e->registers[slot] != NULL; slot++)
        ;
    if (slot == REGISTER_MAX) {
        refuse_register(e, nh, 503, "Busy, retry", 5);
        return;
    }
    pr = calloc(1, sizeof(*pr));
    uri = url_as_string(e->home, m->m_url);
    if (pr == NULL || uri == NULL) {
        free(pr);
        su_free(e->home, uri);
        refuse_register(e, nh, 500, "Out of memory", 0);
        return;
    }
    pr->token = ++e->next_token;
    pr->nh = nh;
    pr->expires_s = expires;
    snprintf(pr->contact, sizeof(pr->contact), "%s", uri);
    nua_save_event(e->nua, pr->saved);
    e->registers[slot] = pr;
    edge_queue_put(e->to_bus, EDGE_MSG_REGISTER, pr->token,
                   json_pack("{s:s, s:s, s:i}", "dn", dn, "contact", uri, "expires_s", expires));
    su_free(e->home, uri);
}

static void on_register_done(struct edge_sip *e, const struct edge_msg *m)
{
    char contact[600];

    for (int i = 0; i < REGISTER_MAX; i++) {
        struct pending_register *pr = e->registers[i];
        if (pr == NULL || pr->token != m->token)
            continue;
        if (json_is_true(json_object_get(m->data, "ok"))) {
            snprintf(contact, sizeof(contact), "<%s>;expires=%d", pr->contact, pr->expires_s);
            nua_respond(pr->nh, SIP_200_OK, NUTAG_WITH_SAVED(pr->saved),
                        TAG_IF(pr->expires_s > 0, SIPTAG_CONTACT_STR(contact)), TAG_END());
            if (pr->expires_s > 0)
                e->registrations++;
        } else {
            nua_respond(pr->nh, 500, "Registration Not Stored", NUTAG_WITH_SAVED(pr->saved),
                        SIPTAG_RETRY_AFTER_STR(EDGE_DB_RETRY_AFTER), TAG_END());
        }
        nua_destroy_event(pr->saved);
        nua_handle_destroy(pr->nh);
        free(pr);
        e->registers[i] = NULL;
        return;
    }
}

/* A new INVITE. While draining: the configured refusal (DESIGN.md §4),
 * counted in edge.status.invites_rejected rather than published one by one,
 * so a storm of retries cannot flood the bus. */
static void on_invite(struct edge_sip *e, nua_handle_t *nh, const sip_t *sip)
{
    struct edge_verdict v = edge_fsm_invite(&e->fsm);
    char retry[16], reason[160];

    snprintf(retry, sizeof(retry), "%d", v.retry_after_s);
    if (v.kind == EDGE_ACCEPT) {
        call_new(e, nh, sip);
        return;
    }
    e->invites_rejected++;
    e->rejected_by_code[v.kind == EDGE_REDIRECT ? 302 : v.status % 700]++;
    reason_text(reason, sizeof(reason), v.kind == EDGE_REDIRECT ? 302 : v.status, e);
    sd_log_debug("INVITE refused while draining", "status=%d call=%s", v.status,
                 sip && sip->sip_call_id ? sip->sip_call_id->i_id : "-");
    if (v.kind == EDGE_REDIRECT)
        nua_respond(nh, 302, "Moved Temporarily", SIPTAG_CONTACT_STR(e->cfg.peer_site_uri),
                    SIPTAG_REASON_STR(reason),
                    TAG_IF(v.retry_after_s > 0, SIPTAG_RETRY_AFTER_STR(retry)), TAG_END());
    else
        nua_respond(nh, v.status, sip_status_phrase(v.status), SIPTAG_REASON_STR(reason),
                    TAG_IF(v.retry_after_s > 0, SIPTAG_RETRY_AFTER_STR(retry)), TAG_END());
    /* Nothing more to do with it: the transaction layer absorbs the ACK
     * (and answers a retransmitted INVITE again) without the handle. */
    nua_handle_destroy(nh);
}

/* --- calls (B2BUA) ------------------------------------------------------- */

static void load_changed(struct edge_sip *e)
{
    struct edge_input in = {.kind = EDGE_IN_LOAD};

    if (e->fsm.state != EDGE_ACTIVE)
        fsm_input(e, &in, "calls");
}

static void user_or_uri(char *dst, size_t size, const url_t *url)
{
    if (url != NULL && url->url_user != NULL && url->url_user[0] != '\0')
        snprintf(dst, size, "%s", url->url_user);
    else if (url != NULL && url->url_host != NULL)
        snprintf(dst, size, "%s", url->url_host);
    else
        snprintf(dst, size, "unknown");
}

/* Writes call.offered (outbound: the calls row inserted), call.established
 * or call.ended with the calls row (bus thread). */
static void call_report(struct edge_sip *e, struct edge_call *c, const char *state,
                        const char *end_cause, int sip_status)
{
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "call_id", c->call_id,
                          "agent_id", c->agent_id, "dn", c->dn, "edge", e->cfg.edge_id, "site",
                          e->cfg.site, "direction", c->outbound ? "outbound" : "inbound", "caller",
                          c->caller, "called", c->called);
    const char *type = !strcmp(state, "ended")     ? "call.ended"
                       : !strcmp(state, "offered") ? "call.offered"
                                                   : "call.established";

    if (!strcmp(state, "ended")) {
        bool answered = c->answered_ms > 0;
        json_object_set_new(d, "answered", json_boolean(answered));
        json_object_set_new(
            d, "duration_ms",
            json_integer(answered ? (json_int_t)(sd_wall_ms() - c->answered_ms) : 0));
        json_object_set_new(d, "end_cause", json_string(end_cause));
        if (!answered && sip_status >= 300 && sip_status <= 699)
            json_object_set_new(d, "sip_status", json_integer(sip_status));
        c->ended_sent = true;
    }
    edge_queue_put(e->to_bus, EDGE_MSG_CALL, 0,
                   json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s, s:o}", "call_id", c->call_id, "state",
                             state, "end_cause", end_cause, "agent_id", c->agent_id, "direction",
                             c->outbound ? "outbound" : "inbound", "type", type, "data", d));
}

/* The call is over for the caller and the agent (events written once). */
static void call_end(struct edge_sip *e, struct edge_call *c, const char *cause, int sip_status)
{
    if (c->phase == CALL_ENDED)
        return;
    c->phase = CALL_ENDED;
    if (c->routed && !c->ended_sent)
        call_report(e, c, "ended", cause, sip_status);
    sd_log_info("call ended", "call=%s agent=%s cause=%s sip_status=%d", c->call_id,
                c->agent_id[0] ? c->agent_id : "-", cause, sip_status);
}

/* Frees the call once neither leg has a dialog left. */
static void call_maybe_free(struct edge_sip *e, struct edge_call *c)
{
    if ((c->a.nh != NULL && !c->a.gone) || (c->b.nh != NULL && !c->b.gone) ||
        c->phase == CALL_ROUTING)
        return;
    call_unlink(e, c);
    load_changed(e);
}

/* Unlinks and frees c (its handles are gone); the caller tells edge_fsm. */
static void call_unlink(struct edge_sip *e, struct edge_call *c)
{
    for (struct edge_call **pp = &e->calls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    free(c->offer);
    free(c);
}

static struct edge_call *call_by_token(struct edge_sip *e, unsigned long token)
{
    for (struct edge_call *c = e->calls; c != NULL; c = c->next) {
        if (c->phase == CALL_ROUTING && c->token == token)
            return c;
    }
    return NULL;
}

static struct edge_leg *other_leg(struct edge_leg *l)
{
    return l->is_a ? &l->call->b : &l->call->a;
}

/* Sends BYE on a leg that has a dialog (with Reason when given). */
static void leg_bye(struct edge_leg *l, const char *reason)
{
    if (l->nh == NULL || l->gone || l->bye_pending)
        return;
    l->bye_pending = true;
    snprintf(l->bye_reason, sizeof(l->bye_reason), "%s", reason != NULL ? reason : "");
    nua_bye(l->nh, TAG_IF(reason != NULL, SIPTAG_REASON_STR(reason)), TAG_END());
}

static const char *phrase_of(int status);

/* The edge starts the agent leg of every call and both legs of an
 * outbound one; only an inbound call's caller leg is its UAS side. */
static bool leg_is_uac(const struct edge_leg *l)
{
    return !l->is_a || l->call == NULL || l->call->outbound;
}

/* Ends what leg l has: BYE once answered, CANCEL while the edge's INVITE
 * rings, else the final answer `status` to the caller's INVITE. */
static void leg_end(struct edge_leg *l, const char *reason, int status)
{
    if (l->nh == NULL || l->gone)
        return;
    if (l->answered_up)
        leg_bye(l, reason);
    else if (leg_is_uac(l))
        nua_cancel(l->nh, TAG_END());
    else if (!l->call->a_final) {
        l->call->a_final = true;
        nua_respond(l->nh, status, phrase_of(status),
                    TAG_IF(reason != NULL, SIPTAG_REASON_STR(reason)), TAG_END());
    }
}

/* The SDP to send on leg `to`: pl as it is, or, when `to` is a dialog of
 * the edge's own that carries several parties' offers (nailed-up, the
 * phone of an outbound call), with the edge's o= line (edge_sdp.h). NULL
 * when there is no body. */
static const char *sdp_toward(struct edge_leg *to, const sip_payload_t *pl, bool bump, char *buf,
                              size_t size)
{
    if (pl == NULL || pl->pl_len == 0)
        return NULL;
    if (to->origin != NULL &&
        edge_sdp_reorigin(pl->pl_data, pl->pl_len, to->origin, bump, buf, size) == 0)
        return buf;
    snprintf(buf, size, "%.*s", (int)pl->pl_len, pl->pl_data);
    return buf;
}

#define ROUTE_SET_MAX 16 /* Record-Route entries kept per dialog */

/* The route set of a dialog as a Route header value: the Record-Route
 * entries of the request that set it up, in order, on the UAS side; of
 * the 2xx answer, reversed, on the UAC side (RFC 3261 §12.1.1, §12.1.2).
 * "" when there is none, or when it does not fit (then the BYE goes
 * straight to the remote target, as before the route set was kept). */
static void route_set(char *out, size_t size, const sip_record_route_t *rr, bool reverse)
{
    const sip_record_route_t *hop[ROUTE_SET_MAX];
    size_t n = 0, len = 0;
    char uri[512];

    out[0] = '\0';
    for (; rr != NULL; rr = rr->r_next) {
        if (n == ROUTE_SET_MAX)
            return;
        hop[n++] = rr;
    }
    for (size_t i = 0; i < n; i++) {
        const sip_record_route_t *h = hop[reverse ? n - 1 - i : i];
        int w;
        if (url_e(uri, (int)sizeof(uri), h->r_url) < 0)
            goto too_long;
        w = snprintf(out + len, size - len, "%s<%s>", i > 0 ? ", " : "", uri);
        if (w < 0 || (size_t)w >= size - len)
            goto too_long;
        len += (size_t)w;
        for (size_t k = 0; h->r_params != NULL && h->r_params[k] != NULL; k++) {
            w = snprintf(out + len, size - len, ";%s", h->r_params[k]);
            if (w < 0 || (size_t)w >= size - len)
                goto too_long;
            len += (size_t)w;
        }
    }
    return;
too_long:
    out[0] = '\0';
}

/* The dialog of leg l as the message that set it up tells it: Call-ID,
 * the far end's Contact (remote target) and the route set. uac: sip is
 * the 2xx answer to the edge's INVITE; else the INVITE the edge got. */
static void note_dialog(struct edge_leg *l, const sip_t *sip, bool uac)
{
    if (sip == NULL)
        return;
    if (sip->sip_call_id != NULL)
        snprintf(l->sip_call_id, sizeof(l->sip_call_id), "%s", sip->sip_call_id->i_id);
    if (sip->sip_contact != NULL)
        url_e(l->target, (int)sizeof(l->target), sip->sip_contact->m_url);
    route_set(l->route, sizeof(l->route), sip->sip_record_route, uac);
}

/* A target refresh (RFC 3261 §12.2): a re-INVITE in the dialog, or a 2xx
 * to one, with a Contact gives the dialog its new remote target. */
static void note_target(struct edge_leg *l, const sip_t *sip)
{
    if (l != NULL && l->retry == NULL && sip != NULL && sip->sip_contact != NULL &&
        sip->sip_cseq != NULL && sip->sip_cseq->cs_method == sip_method_invite)
        url_e(l->target, (int)sizeof(l->target), sip->sip_contact->m_url);
}

static void uri_hostport(const char *uri, char *out, size_t size);

/* The To of a request the edge sends to an agent's phone: the agent's DN
 * at the edge's own address, i.e. the phone's address of record (it
 * registered sip:DN@<edge>); the phone's Contact is the Request-URI. */
static void agent_to(const struct edge_sip *e, const char *dn, char *out, size_t size)
{
    char host[256];

    uri_hostport(e->cfg.sip_url, host, sizeof(host));
    snprintf(out, size, "<sip:%s@%s>", dn, host);
}

static bool is_route_point(const struct edge_sip *e, const char *dn)
{
    for (int i = 0; i < e->n_route_points; i++) {
        if (!strcmp(e->route_points[i], dn))
            return true;
    }
    return false;
}

/* Whether every host a dialog set up by this request would send to (its
 * Contact, its Record-Route entries) is an IP address, not a name. */
static bool names_are_ip(const sip_t *sip)
{
    if (sip->sip_contact != NULL && sip->sip_contact->m_url->url_host != NULL &&
        !host_is_ip_address(sip->sip_contact->m_url->url_host))
        return false;
    for (const sip_record_route_t *r = sip->sip_record_route; r != NULL; r = r->r_next) {
        if (r->r_url->url_host == NULL || !host_is_ip_address(r->r_url->url_host))
            return false;
    }
    return true;
}

/* A new INVITE accepted by the drain verdict: hold it (NUA has sent 100
 * Trying) while the bus thread picks the agent. */
static void call_new(struct edge_sip *e, nua_handle_t *nh, const sip_t *sip)
{
    struct edge_call *c;
    const char *dn = sip->sip_request->rq_url->url_user;

    if (dn == NULL || dn[0] == '\0' || strlen(dn) > 64) {
        nua_respond(nh, 404, "Not Found", TAG_END());
        return;
    }
    if (!e->cfg.allow_contact_names && !names_are_ip(sip)) {
        /* In-dialog requests (a BYE) would go to that name: the edge does
         * not resolve names the network sent it. */
        nua_respond(nh, 400, "Contact and Record-Route hosts must be IP addresses", TAG_END());
        return;
    }
    if (sip->sip_payload == NULL || sip->sip_payload->pl_len == 0) {
        /* A late offer would need the ACK's SDP relayed: not done (yet). */
        nua_respond(nh, 488, "SDP Offer Required", TAG_END());
        return;
    }
    /* The edge passes SDP through without parsing it, but a body that is
     * not SDP at all (no version, origin or media line) is refused with
     * 400 rather than sent on to an agent's phone. */
    if (!edge_sdp_plausible(sip->sip_payload->pl_data, sip->sip_payload->pl_len, true)) {
        nua_respond(nh, 400, "Malformed SDP", TAG_END());
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL ||
        (c->offer = strndup(sip->sip_payload->pl_data, sip->sip_payload->pl_len)) == NULL) {
        free(c);
        nua_respond(nh, 500, "Out of Memory", TAG_END());
        return;
    }
    c->a.call = c->b.call = c;
    c->a.is_a = true;
    c->a.nh = nh;
    note_dialog(&c->a, sip, false);
    nua_handle_bind(nh, &c->a);
    c->phase = CALL_ROUTING;
    c->created_ms = sd_wall_ms();
    c->token = ++e->next_token;
    snprintf(c->call_id, sizeof(c->call_id), "%.200s",
             sip->sip_call_id ? sip->sip_call_id->i_id : "no-call-id");
    user_or_uri(c->caller, sizeof(c->caller), sip->sip_from ? sip->sip_from->a_url : NULL);
    snprintf(c->called, sizeof(c->called), "%s", dn);
    c->next = e->calls;
    e->calls = c;
    e->calls_total++;
    edge_queue_put(e->to_bus, EDGE_MSG_ROUTE, c->token,
                   json_pack("{s:s, s:s, s:b, s:s, s:s}", "call_id", c->call_id, "dn", dn,
                             "route_point", is_route_point(e, dn), "caller", c->caller, "called",
                             c->called));
}

/* The bus thread's answer: the agent and its phone, or why not. */
static void on_route_done(struct edge_sip *e, const struct edge_msg *m)
{
    struct edge_call *c = call_by_token(e, m->token);
    json_t *d = m->data;
    int status = (int)json_integer_value(json_object_get(d, "status"));
    char to[600];

    if (c == NULL)
        return;
    if (json_is_string(json_object_get(d, "call_id")) &&
        json_string_value(json_object_get(d, "call_id"))[0] != '\0')
        snprintf(c->call_id, sizeof(c->call_id), "%s",
                 json_string_value(json_object_get(d, "call_id")));
    c->phase = CALL_RINGING;
    if (status != 0) {
        /* the database was away (edge_bus.c): the caller may try another
         * edge at once */
        const char *why = json_string_value(json_object_get(d, "reason"));
        bool db_away = why != NULL && strcmp(why, "database_unavailable") == 0;
        c->a_final = true;
        if (!c->a.gone)
            nua_respond(
                c->a.nh, status, sip_status_phrase(status),
                TAG_IF(status == 480, SIPTAG_RETRY_AFTER_STR("30")),
                TAG_IF(db_away, SIPTAG_RETRY_AFTER_STR(EDGE_DB_RETRY_AFTER)),
                TAG_IF(db_away, SIPTAG_REASON_STR("SIP;cause=503;text=\"database unavailable\"")),
                TAG_END());
        call_end(e, c, "failed", status);
        call_maybe_free(e, c);
        return;
    }
    c->routed = true;
    snprintf(c->agent_id, sizeof(c->agent_id), "%s",
             json_string_value(json_object_get(d, "agent_id")));
    snprintf(c->dn, sizeof(c->dn), "%s", json_string_value(json_object_get(d, "dn")));
    if (c->a.gone) { /* the caller gave up while the agent was being picked */
        call_end(e, c, "cancelled", 487);
        call_maybe_free(e, c);
        return;
    }
    if (nailed_connect(e, c)) {
        free(c->offer);
        c->offer = NULL;
        return;
    }
    agent_to(e, c->dn, to, sizeof(to));
    c->b.nh = nua_handle(e->nua, &c->b, NUTAG_URL(json_string_value(json_object_get(d, "contact"))),
                         SIPTAG_TO_STR(to), TAG_END());
    if (c->b.nh == NULL) {
        c->a_final = true;
        nua_respond(c->a.nh, 500, "Internal Server Error", TAG_END());
        call_end(e, c, "failed", 500);
        return;
    }
    nua_invite(c->b.nh, SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(c->offer),
               TAG_END());
    free(c->offer);
    c->offer = NULL;
}

/* The reason phrase to send on: a callback's phrase lives in a message
 * that is freed before NUA sends our response, so only static text. */
static const char *phrase_of(int status)
{
    const char *p = sip_status_phrase(status);
    return p != NULL ? p : "Unknown";
}

static const char *failure_cause(int status)
{
    if (status == 486 || status == 600 || status == 603)
        return "busy";
    if (status == 408 || status == 480 || status == 404)
        return "no_answer";
    if (status == 487)
        return "cancelled";
    return "failed";
}

/* The final answer to a relayed re-INVITE goes back to the side that sent it. */
static void relay_answer(struct edge_leg *asker, int status, const sip_t *sip)
{
    const sip_payload_t *pl = sip ? sip->sip_payload : NULL;
    const char *ct = pl && sip->sip_content_type ? sip->sip_content_type->c_type : NULL;
    char buf[SDP_MAX];
    const char *body = sdp_toward(asker, pl, true, buf, sizeof(buf));

    if (status < 200 || asker->gone)
        return;
    asker->reinvite_in = false;
    nua_respond(asker->nh, status, phrase_of(status), TAG_IF(ct, SIPTAG_CONTENT_TYPE_STR(ct)),
                TAG_IF(body, SIPTAG_PAYLOAD_STR(body)), TAG_END());
}

/* The agent phone answers the edge's INVITE (or a relayed re-INVITE). */
static void on_b_invite_answer(struct edge_sip *e, struct edge_leg *b, int status,
                               const char *phrase, const sip_t *sip)
{
    struct edge_call *c = b->call;
    const sip_payload_t *pl = sip ? sip->sip_payload : NULL;
    const char *ct = pl && sip->sip_content_type ? sip->sip_content_type->c_type : NULL;

    (void)phrase; /* freed before our response goes out: phrase_of() instead */
    if (status < 101)
        return;
    if (c->a.reinvite_in) { /* the answer to a re-INVITE relayed from the caller */
        relay_answer(&c->a, status, sip);
        return;
    }
    if (c->outbound)
        return; /* set up by on_out_answer; nothing else is asked of the phone */
    if (c->a.gone || c->phase == CALL_ENDED) {
        if (status >= 200 && b->nailed != NULL)
            nailed_release(e, c, status < 300);
        else if (status >= 200 && status < 300)
            leg_bye(b, NULL); /* answered too late: the caller is gone */
        return;
    }
    if (status < 200) {
        nua_respond(c->a.nh, status, phrase_of(status), TAG_IF(ct, SIPTAG_CONTENT_TYPE_STR(ct)),
                    TAG_IF(pl, SIPTAG_PAYLOAD(pl)), TAG_END());
        return;
    }
    c->a_final = true;
    if (status < 300) {
        note_dialog(b, sip, true);
        c->phase = CALL_ANSWERED;
        c->answered_ms = sd_wall_ms();
        b->answered_up = c->a.answered_up = true;
        nua_respond(c->a.nh, status, phrase_of(status), TAG_IF(ct, SIPTAG_CONTENT_TYPE_STR(ct)),
                    TAG_IF(pl, SIPTAG_PAYLOAD(pl)), TAG_END());
        call_report(e, c, "established", NULL, 0);
        sd_log_info("call established", "call=%s agent=%s", c->call_id, c->agent_id);
        return;
    }
    nua_respond(c->a.nh, status == 408 ? 480 : status, phrase_of(status == 408 ? 480 : status),
                TAG_END());
    call_end(e, c, failure_cause(status), status);
    nailed_release(e, c, false); /* a refused re-INVITE leaves it parked */
}

/* A re-INVITE (hold, codec change) from either side: sent on to the
 * other, and its final answer relayed back (relay_answer). */
static void on_reinvite(struct edge_sip *e, struct edge_leg *l, const sip_t *sip)
{
    struct edge_leg *o = other_leg(l);
    const sip_payload_t *pl = sip->sip_payload;
    const char *ct = pl && sip->sip_content_type ? sip->sip_content_type->c_type : NULL;
    char buf[SDP_MAX];
    const char *body;

    (void)e;
    if (o->nh == NULL || o->gone || o->reinvite_in || l->call->phase != CALL_ANSWERED) {
        nua_respond(l->nh, 491, "Request Pending", TAG_END());
        return;
    }
    l->reinvite_in = true;
    body = sdp_toward(o, pl, true, buf, sizeof(buf));
    nua_invite(o->nh, TAG_IF(ct, SIPTAG_CONTENT_TYPE_STR(ct)),
               TAG_IF(body, SIPTAG_PAYLOAD_STR(body)), TAG_END());
}

/* BYE from one side: BYE the other (unless it is gone). */
static void on_bye(struct edge_sip *e, struct edge_leg *l)
{
    struct edge_call *c = l->call;
    struct edge_leg *o = other_leg(l);

    call_end(e, c, l->is_a ? "caller_hangup" : "agent_hangup", 0);
    if (o->nailed != NULL && o->answered_up)
        nailed_release(e, c, true); /* park the agent's standing dialog */
    else
        leg_end(o, NULL, 480);
    load_changed(e);
}

static void on_cancel(struct edge_sip *e, struct edge_leg *a)
{
    struct edge_call *c = a->call;

    c->a_final = true; /* NUA answered the INVITE 487 */
    if (c->b.nh != NULL && !c->b.gone)
        nua_cancel(c->b.nh, TAG_END());
    if (c->phase != CALL_ROUTING)
        call_end(e, c, "cancelled", 487);
}

/* The call a leg belongs to, for the log. */
static void leg_ref(const struct edge_leg *l, char *out, size_t size)
{
    if (l->call != NULL)
        snprintf(out, size, "%s", l->call->call_id);
    else
        snprintf(out, size, "nailed-up:%s", l->nailed ? l->nailed->agent_id : "?");
}

static const char *leg_name(const struct edge_leg *l)
{
    return l->is_a ? "caller" : "agent";
}

/* Keeps the dialog of a BYE the far end did not confirm, to send it again
 * in new transactions during bye_wait. Its identifiers come from `sip`,
 * the answer to that BYE: the far end's, or the one the transaction layer
 * makes from our own request on a timeout or a transport error
 * (NTATAG_TIMEOUT_408), so From, To (both tags), Call-ID and CSeq are
 * exactly those of the BYE that went out. 481: the far end knows no such
 * dialog, which is as good as a 200. */
static void remember_unconfirmed(struct edge_sip *e, struct edge_leg *l, int status,
                                 const sip_t *sip)
{
    struct unconfirmed_bye *u;
    char *from = NULL, *to = NULL, ref[256];

    leg_ref(l, ref, sizeof(ref));
    if (status == 481)
        return;
    if (sip == NULL || sip->sip_from == NULL || sip->sip_to == NULL || sip->sip_cseq == NULL ||
        sip->sip_call_id == NULL || sip->sip_from->a_tag == NULL || sip->sip_to->a_tag == NULL ||
        l->target[0] == '\0') {
        sd_log_warn("BYE unconfirmed and cannot be sent again: its dialog is not known",
                    "call=%s leg=%s status=%d", ref, leg_name(l), status);
        return;
    }
    u = calloc(1, sizeof(*u));
    from = sip_header_as_string(e->home, (const sip_header_t *)sip->sip_from);
    to = sip_header_as_string(e->home, (const sip_header_t *)sip->sip_to);
    if (u == NULL || from == NULL || to == NULL) {
        free(u);
        su_free(e->home, from);
        su_free(e->home, to);
        sd_log_warn("BYE unconfirmed and cannot be sent again: out of memory",
                    "call=%s leg=%s status=%d", ref, leg_name(l), status);
        return;
    }
    u->leg.retry = u;
    u->leg.is_a = l->is_a;
    snprintf(u->call_ref, sizeof(u->call_ref), "%s", ref);
    snprintf(u->leg_name, sizeof(u->leg_name), "%s", leg_name(l));
    snprintf(u->call_id, sizeof(u->call_id), "%s", sip->sip_call_id->i_id);
    snprintf(u->from, sizeof(u->from), "%s", from);
    snprintf(u->to, sizeof(u->to), "%s", to);
    snprintf(u->target, sizeof(u->target), "%s", l->target);
    snprintf(u->route, sizeof(u->route), "%s", l->route);
    snprintf(u->reason, sizeof(u->reason), "%s", l->bye_reason);
    u->cseq = sip->sip_cseq->cs_seq;
    u->transactions = 1;
    su_free(e->home, from);
    su_free(e->home, to);
    u->next = e->byes;
    e->byes = u;
    sd_log_info("BYE unconfirmed: will be sent again in the dialog while the edge drains",
                "call=%s leg=%s status=%d call_id=%s cseq=%u target=%s route=\"%s\"", u->call_ref,
                u->leg_name, status, u->call_id, (unsigned)u->cseq, u->target, u->route);
}

static void on_r_bye(struct edge_sip *e, struct edge_leg *l, int status, const sip_t *sip)
{
    if (status < 200)
        return;
    l->bye_pending = false;
    if (status >= 300) {
        sd_log_warn("BYE not confirmed", "call=%s leg=%s status=%d", l->call->call_id, leg_name(l),
                    status);
        remember_unconfirmed(e, l, status, sip);
    }
    load_changed(e);
}

static void unconfirmed_free(struct unconfirmed_bye *u)
{
    if (u->nh != NULL) {
        nua_handle_bind(u->nh, NULL);
        nua_handle_destroy(u->nh);
    }
    free(u);
}

/* bye_wait: one new BYE transaction per unconfirmed dialog whose last one
 * is over: the same Call-ID, From and To (both tags), route set and
 * remote target, CSeq one above the last one sent. */
static void on_bye_timer(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
    struct edge_sip *e = magic;
    char cseq[32];

    (void)t;
    (void)arg;
    if (!edge_fsm_retransmitting(&e->fsm))
        return;
    for (struct unconfirmed_bye *u = e->byes; u != NULL; u = u->next) {
        if (u->nh != NULL)
            continue; /* the last one is still trying */
        u->nh = nua_handle(e->nua, &u->leg, SIPTAG_CALL_ID_STR(u->call_id),
                           SIPTAG_FROM_STR(u->from), SIPTAG_TO_STR(u->to), TAG_END());
        if (u->nh == NULL)
            continue;
        snprintf(cseq, sizeof(cseq), "%u BYE", (unsigned)++u->cseq);
        nua_method(u->nh, NUTAG_METHOD("BYE"), NUTAG_URL(u->target), SIPTAG_CSEQ_STR(cseq),
                   TAG_IF(u->route[0] != '\0', SIPTAG_ROUTE_STR(u->route)),
                   TAG_IF(u->reason[0] != '\0', SIPTAG_REASON_STR(u->reason)), TAG_END());
        u->transactions++;
        e->byes_retransmitted++;
        sd_log_info("BYE sent again", "call=%s leg=%s call_id=%s cseq=%u target=%s transaction=%u",
                    u->call_ref, u->leg_name, u->call_id, (unsigned)u->cseq, u->target,
                    u->transactions);
    }
}

/* The answer to a BYE sent again: 2xx (or 481) ends the matter; any other
 * final answer, or none, leaves it for the next transaction. */
static void on_retry_answer(struct edge_sip *e, struct unconfirmed_bye *u, int status)
{
    struct unconfirmed_bye **pp;

    if (status < 200)
        return;
    nua_handle_bind(u->nh, NULL);
    nua_handle_destroy(u->nh);
    u->nh = NULL;
    if (status >= 300 && status != 481) {
        sd_log_info("BYE sent again not confirmed", "call=%s leg=%s cseq=%u status=%d", u->call_ref,
                    u->leg_name, (unsigned)u->cseq, status);
        return;
    }
    sd_log_info("BYE confirmed", "call=%s leg=%s status=%d cseq=%u transactions=%u", u->call_ref,
                u->leg_name, status, (unsigned)u->cseq, u->transactions);
    for (pp = &e->byes; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    }
    free(u);
    load_changed(e);
}

/* Gives up waiting for the answer to a leg's first BYE: its handle is
 * destroyed, so the transaction no longer holds the SIP shutdown (NUA
 * would wait for it up to Timer F, 32 s). */
static void leg_give_up_bye(struct edge_leg *l)
{
    char ref[256];

    leg_ref(l, ref, sizeof(ref));
    sd_log_warn("BYE never confirmed, given up", "call=%s leg=%s bye_transactions=1 answered=0",
                ref, leg_name(l));
    l->bye_pending = false;
    l->gone = true;
    nua_handle_bind(l->nh, NULL);
    nua_handle_destroy(l->nh);
}

/* The BYE timeout is over, or the edge stops (or the drain was cancelled):
 * no more BYE transactions. Stopping or at the timeout, the ones still in
 * flight are abandoned too, so the edge stops within a second of the
 * timeout whatever is in flight (the transport may still retransmit an
 * abandoned one until the process exits). Every dialog is logged with the
 * BYE transactions it got, none of them answered. */
static void give_up_byes(struct edge_sip *e)
{
    struct unconfirmed_bye *u;
    bool stopping = e->fsm.state != EDGE_ACTIVE;

    while ((u = e->byes) != NULL) {
        e->byes = u->next;
        sd_log_warn("BYE never confirmed, given up",
                    "call=%s leg=%s call_id=%s bye_transactions=%u answered=0 target=%s",
                    u->call_ref, u->leg_name, u->call_id, u->transactions, u->target);
        unconfirmed_free(u);
    }
    if (!stopping)
        return; /* a cancelled drain: first BYEs in flight get their answers */
    for (struct edge_call *c = e->calls, *next; c != NULL; c = next) {
        next = c->next;
        if (c->a.bye_pending && !c->a.gone && c->a.nh != NULL)
            leg_give_up_bye(&c->a);
        if (c->b.bye_pending && !c->b.gone && c->b.nh != NULL && c->b.nailed == NULL)
            leg_give_up_bye(&c->b);
        if (c->phase == CALL_ENDED && (c->a.nh == NULL || c->a.gone) &&
            (c->b.nh == NULL || c->b.gone))
            call_unlink(e, c);
    }
    for (struct nailed *n = e->nailed, *next; n != NULL; n = next) {
        next = n->next;
        if (n->call == NULL && n->leg.bye_pending && !n->leg.gone) {
            leg_give_up_bye(&n->leg);
            nailed_unlink(e, n);
        }
    }
}

static void on_terminated(struct edge_sip *e, struct edge_leg *l)
{
    struct edge_call *c = l->call;
    struct edge_leg *o = other_leg(l);

    if (l->gone)
        return;
    l->gone = true;
    l->bye_pending = false;
    nua_handle_bind(l->nh, NULL);
    nua_handle_destroy(l->nh);
    if (l->nailed != NULL) /* the agent's standing dialog ended with it */
        nailed_release(e, c, false);
    if (c->phase != CALL_ENDED && c->phase != CALL_ROUTING) {
        /* A leg ended without BYE (e.g. the agent's INVITE timed out). */
        if (o->nailed != NULL && o->answered_up)
            nailed_release(e, c, true);
        else
            leg_end(o, NULL, 480);
        call_end(e, c, l->is_a ? "caller_hangup" : "failed", 0);
    }
    call_maybe_free(e, c);
}

/* The drain deadline, or a forced stop: end every call, both legs, saying why. */
static void cut_calls(struct edge_sip *e, const char *reason)
{
    unsigned long before = e->calls_cut;

    for (struct edge_call *c = e->calls; c != NULL; c = c->next) {
        if (c->phase == CALL_ENDED)
            continue;
        leg_end(&c->a, reason, 503);
        leg_end(&c->b, reason, 503);
        e->calls_cut++;
        call_end(e, c, "drain_deadline", 0);
    }
    if (e->calls_cut > before)
        sd_log_warn("calls cut", "calls=%lu why=%s", e->calls_cut - before,
                    strcmp(reason, STOP_REASON) == 0 ? "forced_stop" : "drain_deadline");
    load_changed(e);
}

/* --- nailed-up dialogs ------------------------------------------------------ */

/* The parked session; its o= line becomes the dialog's own (edge_sdp.h). */
static const char PARK_SDP[] = "v=0\r\no=sipdrain 1 1 IN IP4 0.0.0.0\r\ns=sipdrain-park\r\n"
                               "c=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=inactive\r\n";

/* PARK_SDP with n's origin (version one up unless repeating an answer). */
static const char *park_sdp(struct nailed *n, bool bump, char *buf, size_t size)
{
    if (edge_sdp_reorigin(PARK_SDP, sizeof(PARK_SDP) - 1, &n->origin, bump, buf, size) < 0)
        snprintf(buf, size, "%s", PARK_SDP);
    return buf;
}

static struct nailed *nailed_of(struct edge_sip *e, const char *agent_id)
{
    for (struct nailed *n = e->nailed; n != NULL; n = n->next) {
        if (!strcmp(n->agent_id, agent_id))
            return n;
    }
    return NULL;
}

/* Unlinks and frees n; its handle is already destroyed (or is NUA's to destroy). */
static void nailed_free(struct edge_sip *e, struct nailed *n)
{
    nailed_unlink(e, n);
    load_changed(e);
}

/* nailed_free without telling edge_fsm (the caller does). */
static void nailed_unlink(struct edge_sip *e, struct nailed *n)
{
    for (struct nailed **pp = &e->nailed; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == n) {
            *pp = n->next;
            break;
        }
    }
    sd_log_info("nailed-up dialog closed", "agent=%s dn=%s", n->agent_id, n->dn);
    free(n);
}

/* A nailed_up agent logged in with its phone registered here: call the
 * phone, parked. Not while the edge drains. */
static void nailed_open(struct edge_sip *e, json_t *d)
{
    const char *agent = json_string_value(json_object_get(d, "agent_id"));
    const char *dn = json_string_value(json_object_get(d, "dn"));
    const char *contact = json_string_value(json_object_get(d, "contact"));
    struct nailed *n;
    char to[600], sdp[256];

    if (agent == NULL || dn == NULL || contact == NULL || strncmp(contact, "sip:", 4) != 0)
        return;
    if (nailed_of(e, agent) != NULL)
        return; /* open already (a registration refresh, a repeated login) */
    if (e->fsm.state != EDGE_ACTIVE) {
        sd_log_info("nailed-up dialog not opened", "agent=%s why=\"the edge drains\"", agent);
        return;
    }
    n = calloc(1, sizeof(*n));
    if (n == NULL)
        return;
    n->leg.nailed = n;
    n->leg.origin = &n->origin;
    n->origin.sess_id = (unsigned long)sd_wall_ms();
    snprintf(n->agent_id, sizeof(n->agent_id), "%s", agent);
    snprintf(n->dn, sizeof(n->dn), "%s", dn);
    agent_to(e, dn, to, sizeof(to));
    n->leg.nh = nua_handle(e->nua, &n->leg, NUTAG_URL(contact), SIPTAG_TO_STR(to), TAG_END());
    if (n->leg.nh == NULL) {
        free(n);
        return;
    }
    n->next = e->nailed;
    e->nailed = n;
    nua_invite(n->leg.nh, SIPTAG_CONTENT_TYPE_STR("application/sdp"),
               SIPTAG_PAYLOAD_STR(park_sdp(n, true, sdp, sizeof(sdp))), TAG_END());
    sd_log_info("nailed-up dialog opening", "agent=%s dn=%s contact=%s", agent, dn, contact);
    load_changed(e);
}

/* Ends n with BYE (Reason given), now or, with a customer call on it,
 * when that call is over. */
static void nailed_close(struct nailed *n, const char *reason)
{
    n->ending = true;
    if (n->call != NULL || n->leg.gone)
        return;
    if (!n->up)
        nua_cancel(n->leg.nh, TAG_END());
    else
        leg_bye(&n->leg, reason);
}

static void end_nailed_up(struct edge_sip *e)
{
    for (struct nailed *n = e->nailed; n != NULL; n = n->next)
        nailed_close(n, DRAIN_REASON);
    load_changed(e);
}

static void on_nailed_msg(struct edge_sip *e, json_t *d)
{
    const char *op = json_string_value(json_object_get(d, "op"));
    struct nailed *n;

    if (op != NULL && !strcmp(op, "up")) {
        nailed_open(e, d);
    } else if (op != NULL && !strcmp(op, "down")) {
        n = nailed_of(e, json_string_value(json_object_get(d, "agent_id")));
        if (n != NULL)
            nailed_close(n, "SIP;cause=200;text=\"agent logged out\"");
    }
}

/* The customer call through n is over: n goes back to idle, parked again
 * (or ended, when a drain or a logout asked for it meanwhile). park false:
 * the call's re-INVITE failed and the dialog is still parked. */
static void nailed_release(struct edge_sip *e, struct edge_call *c, bool park)
{
    struct nailed *n = c->b.nailed;
    char sdp[256];

    if (n == NULL)
        return;
    n->call = NULL;
    c->b.nailed = NULL;
    if (c->b.gone) { /* the phone ended the dialog itself */
        nailed_free(e, n);
        return;
    }
    nua_handle_bind(n->leg.nh, &n->leg);
    n->leg.bye_pending = c->b.bye_pending;
    c->b.nh = NULL;
    c->b.gone = true;
    c->b.bye_pending = false;
    if (n->ending || e->fsm.state != EDGE_ACTIVE)
        nailed_close(n, DRAIN_REASON);
    else if (park)
        nua_invite(n->leg.nh, SIPTAG_CONTENT_TYPE_STR("application/sdp"),
                   SIPTAG_PAYLOAD_STR(park_sdp(n, true, sdp, sizeof(sdp))), TAG_END());
    load_changed(e);
}

/* Connects call c to the agent through its nailed-up dialog, if it has an
 * idle one: a re-INVITE with the caller's SDP. */
static bool nailed_connect(struct edge_sip *e, struct edge_call *c)
{
    struct nailed *n = nailed_of(e, c->agent_id);
    char sdp[SDP_MAX];

    if (n == NULL || !n->up || n->call != NULL || n->ending || n->leg.bye_pending)
        return false;
    n->call = c;
    c->b.nailed = n;
    c->b.origin = &n->origin;
    c->b.nh = n->leg.nh;
    snprintf(c->b.sip_call_id, sizeof(c->b.sip_call_id), "%s", n->leg.sip_call_id);
    snprintf(c->b.target, sizeof(c->b.target), "%s", n->leg.target);
    snprintf(c->b.route, sizeof(c->b.route), "%s", n->leg.route);
    nua_handle_bind(c->b.nh, &c->b);
    if (edge_sdp_reorigin(c->offer, strlen(c->offer), &n->origin, true, sdp, sizeof(sdp)) < 0)
        snprintf(sdp, sizeof(sdp), "%s", c->offer); /* checked plausible: cannot happen */
    nua_invite(c->b.nh, SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp),
               TAG_END());
    sd_log_info("call connected through the nailed-up dialog", "call=%s agent=%s", c->call_id,
                c->agent_id);
    return true;
}

/* Events of an idle nailed-up dialog. */
static void on_nailed_event(struct edge_sip *e, struct nailed *n, nua_event_t event, int status,
                            const sip_t *sip, tagi_t tags[])
{
    int state = nua_callstate_init;
    char sdp[256];

    switch (event) {
    case nua_r_invite:
        if (status < 200)
            break;
        if (status >= 300) {
            sd_log_warn("nailed-up INVITE refused", "agent=%s status=%d", n->agent_id, status);
            break; /* the first one failed: nua_i_state terminated follows */
        }
        if (!n->up) {
            n->up = true;
            note_dialog(&n->leg, sip, true);
            n->leg.answered_up = true;
            sd_log_info("nailed-up dialog open", "agent=%s dn=%s", n->agent_id, n->dn);
            if (n->ending)
                leg_bye(&n->leg, DRAIN_REASON);
        }
        break;
    case nua_i_invite: /* the phone refreshes the session: stay parked */
        nua_respond(n->leg.nh, SIP_200_OK, SIPTAG_CONTENT_TYPE_STR("application/sdp"),
                    SIPTAG_PAYLOAD_STR(park_sdp(n, false, sdp, sizeof(sdp))), TAG_END());
        break;
    case nua_r_bye:
        if (status >= 200) {
            n->leg.bye_pending = false;
            if (status >= 300)
                remember_unconfirmed(e, &n->leg, status, sip);
            load_changed(e);
        }
        break;
    case nua_i_state:
        tl_gets(tags, NUTAG_CALLSTATE_REF(state), TAG_END());
        if (state == nua_callstate_terminated) {
            nua_handle_bind(n->leg.nh, NULL);
            nua_handle_destroy(n->leg.nh);
            nailed_free(e, n);
        }
        break;
    default:
        break;
    }
}

static void on_nua(nua_event_t event, int status, char const *phrase, nua_t *nua,
                   struct edge_sip *e, nua_handle_t *nh, struct edge_leg *leg, sip_t const *sip,
                   tagi_t tags[])
{
    (void)nua;
    if (leg != NULL &&
        ((event == nua_r_invite && status >= 200 && status < 300) || event == nua_i_invite))
        note_target(leg, sip);
    if (leg != NULL && leg->call == NULL && leg->nailed != NULL) {
        on_nailed_event(e, leg->nailed, event, status, sip, tags);
        return;
    }
    switch (event) {
    case nua_i_options:
        on_options(e, nh);
        break;
    case nua_i_register:
        on_register(e, nh, sip);
        break;
    case nua_i_invite:
        if (leg != NULL)
            on_reinvite(e, leg, sip);
        else
            on_invite(e, nh, sip);
        break;
    case nua_r_invite:
        if (leg != NULL && leg->call != NULL && leg->call->outbound && leg->call->step != OUT_DONE)
            on_out_answer(e, leg, status, sip);
        else if (leg != NULL && !leg->is_a)
            on_b_invite_answer(e, leg, status, phrase, sip);
        else if (leg != NULL && leg->is_a && leg->call->b.reinvite_in)
            relay_answer(&leg->call->b, status, sip); /* the agent's re-INVITE */
        break;
    case nua_i_cancel:
        if (leg != NULL && leg->is_a)
            on_cancel(e, leg);
        break;
    case nua_i_bye:
        if (leg != NULL)
            on_bye(e, leg);
        break;
    case nua_r_bye:
        if (leg != NULL && leg->call != NULL)
            on_r_bye(e, leg, status, sip);
        break;
    case nua_r_method:
        if (leg != NULL && leg->retry != NULL)
            on_retry_answer(e, leg->retry, status);
        break;
    case nua_i_info:
        if (leg != NULL && other_leg(leg)->nh != NULL && !other_leg(leg)->gone)
            nua_info(other_leg(leg)->nh,
                     TAG_IF(sip->sip_content_type, SIPTAG_CONTENT_TYPE(sip->sip_content_type)),
                     TAG_IF(sip->sip_payload, SIPTAG_PAYLOAD(sip->sip_payload)), TAG_END());
        break;
    case nua_i_state: {
        int state = nua_callstate_init;
        tl_gets(tags, NUTAG_CALLSTATE_REF(state), TAG_END());
        if (state == nua_callstate_terminated) {
            if (leg != NULL && leg->call != NULL)
                on_terminated(e, leg);
            else if (leg != NULL)
                break; /* a BYE retransmission's handle: freed with its answer */
            else
                nua_handle_destroy(nh);
        }
        break;
    }
    case nua_r_shutdown:
        if (status >= 200) {
            struct edge_input in = {.kind = EDGE_IN_SHUTDOWN_DONE};
            sd_log_info("SIP shut down", "status=%d phrase=\"%s\"", status, phrase);
            fsm_input(e, &in, "nua_r_shutdown");
        }
        break;
    case nua_i_error:
        sd_log_warn("SIP stack error", "status=%d phrase=\"%s\"", status, phrase);
        break;
    default:
        /* Requests the edge does not serve get NUA's own answers; handles
         * it created for them are ours to free. */
        if (status == 0 && nh != NULL && leg == NULL && event >= nua_i_chat &&
            event <= nua_i_update)
            nua_handle_destroy(nh);
        break;
    }
}

/* --- edge.control -------------------------------------------------------- */

static bool control_seen(struct edge_sip *e, const char *id)
{
    for (unsigned i = 0; i < CONTROL_SEEN_MAX; i++) {
        if (strcmp(e->control_seen[i], id) == 0)
            return true;
    }
    snprintf(e->control_seen[e->control_next], sizeof(e->control_seen[0]), "%s", id);
    e->control_next = (e->control_next + 1) % CONTROL_SEEN_MAX;
    return false;
}

static int int_or(json_t *d, const char *key, int def)
{
    json_t *v = json_object_get(d, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

/* --- agent-originated calls (call.originate) ------------------------------ */

/* Refuses call.originate: EventError answering agent-state's request, and
 * call.rejected, which frees the agent agent-state reserved for the call. */
static void originate_refuse(struct edge_sip *e, json_t *d, const char *error_reason,
                             const char *rejected_reason, int code, const char *detail)
{
    const char *agent = json_string_value(json_object_get(d, "agent_id"));
    const char *call = json_string_value(json_object_get(d, "call_id"));
    json_t *err, *rej;

    err = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O?, s:s, s:{}}", "agent_id", agent, "command",
                    "call.originate", "reason", error_reason, "detail", detail, "call_id", call,
                    "request_id", json_object_get(d, "request_id"), "edge", e->cfg.edge_id,
                    "extensions");
    rej = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:O?, s:O?}", "call_id", call, "edge",
                    e->cfg.edge_id, "site", e->cfg.site, "direction", "outbound", "reject_code",
                    code, "reason", rejected_reason, "agent_id", agent, "dn",
                    json_object_get(d, "dn"), "called", json_object_get(d, "destination"));
    if (!strcmp(rejected_reason, "draining") && e->fsm.drain.drain_id[0] != '\0')
        json_object_set_new(rej, "drain_id", json_string(e->fsm.drain.drain_id));
    sd_log_info("call.originate refused", "agent=%s call=%s reason=%s detail=\"%s\"", agent, call,
                error_reason, detail);
    publish(e, SD_TOPIC_AGENT_EVENTS, agent, "EventError", err);
    publish(e, SD_TOPIC_CALL_EVENTS, agent, "call.rejected", rej);
}

/* The host[:port] of a sip: URI (up to its parameters). */
static void uri_hostport(const char *uri, char *out, size_t size)
{
    const char *h = strchr(uri, ':') + 1, *at = strchr(h, '@');

    if (at != NULL && at < h + strcspn(h, ";?>"))
        h = at + 1;
    snprintf(out, size, "%.*s", (int)strcspn(h, ";?>"), h);
}

/* The Request-URI for destination: a sip:/sips: URI as given; a number or a
 * tel: URI as sip:<number>@<outbound proxy>;user=phone ('#' escaped), for
 * the proxy to route. false: not something the edge can dial. */
static bool dest_uri(const struct edge_sip *e, const char *dest, char *out, size_t size)
{
    char host[256], num[200];
    size_t n = 0;
    int len;

    if (dest == NULL || dest[0] == '\0' || strpbrk(dest, " \t\r\n<>\"") != NULL)
        return false;
    if (!strncmp(dest, "sip:", 4) || !strncmp(dest, "sips:", 5)) {
        len = snprintf(out, size, "%s", dest);
        return len > 4 && (size_t)len < size;
    }
    if (!strncmp(dest, "tel:", 4))
        dest += 4;
    for (const char *p = dest; *p != '\0' && *p != ';'; p++) {
        if (strchr("+0123456789*#.()-", *p) == NULL || n + 4 >= sizeof(num))
            return false;
        n += (size_t)snprintf(num + n, sizeof(num) - n, *p == '#' ? "%%23" : "%c", *p);
    }
    if (n == 0)
        return false;
    uri_hostport(e->cfg.outbound_proxy, host, sizeof(host));
    len = snprintf(out, size, "sip:%s@%s;user=phone", num, host);
    return len > 0 && (size_t)len < size;
}

/* call.originate accepted: the call, and its first step (RFC 3725 §4.4,
 * Flow IV, the flow the RFC recommends when the far end is a person):
 *   1. INVITE the agent's phone with an SDP offer without media; it
 *      answers (no media either) and is ACKed: the agent is connected;
 *   2. INVITE the destination without SDP, through SIPDRAIN_OUTBOUND_PROXY
 *      (a Route header); its 200 carries its offer;
 *   3. re-INVITE the phone with that offer (the edge's o= line: one
 *      session on the phone's dialog); the phone's answer goes to the
 *      destination in the ACK of step 2.
 * Flow I would give the destination the phone's offer directly, but the
 * phone's 200 would then wait un-ACKed while the destination rings (it
 * gives up after 32 s); Flow IV has no such limit. The agent hears silence
 * while the destination rings. Steps 2 and 3: on_out_answer. */
static void originate_start(struct edge_sip *e, json_t *d, const char *contact, const char *uri)
{
    struct edge_call *c = calloc(1, sizeof(*c));
    char to[600], from[600], sdp[256];

    if (c == NULL) {
        originate_refuse(e, d, "originate_failed", "failed", 503, "out of memory");
        return;
    }
    c->a.call = c->b.call = c;
    c->a.is_a = true;
    c->outbound = true;
    c->step = OUT_PHONE;
    c->phase = CALL_RINGING;
    c->a_final = true; /* no INVITE of anyone's waits for an answer from the edge */
    c->routed = true;
    c->origin.sess_id = (unsigned long)sd_wall_ms();
    c->b.origin = &c->origin;
    c->created_ms = sd_wall_ms();
    snprintf(c->call_id, sizeof(c->call_id), "%s",
             json_string_value(json_object_get(d, "call_id")));
    snprintf(c->agent_id, sizeof(c->agent_id), "%s",
             json_string_value(json_object_get(d, "agent_id")));
    snprintf(c->dn, sizeof(c->dn), "%s", json_string_value(json_object_get(d, "dn")));
    snprintf(c->caller, sizeof(c->caller), "%s", c->dn);
    snprintf(c->called, sizeof(c->called), "%s",
             json_string_value(json_object_get(d, "destination")));
    snprintf(c->dest_uri, sizeof(c->dest_uri), "%s", uri);
    agent_to(e, c->dn, to, sizeof(to));
    snprintf(from, sizeof(from), "<%s>", uri); /* the phone shows whom it is calling */
    c->b.nh = nua_handle(e->nua, &c->b, NUTAG_URL(contact), SIPTAG_TO_STR(to),
                         SIPTAG_FROM_STR(from), TAG_END());
    if (c->b.nh == NULL || edge_sdp_no_media(&c->origin, sdp, sizeof(sdp)) < 0) {
        if (c->b.nh != NULL)
            nua_handle_destroy(c->b.nh);
        free(c);
        originate_refuse(e, d, "originate_failed", "failed", 503, "SIP handle not created");
        return;
    }
    c->next = e->calls;
    e->calls = c;
    e->calls_total++;
    call_report(e, c, "offered", NULL, 0);
    nua_invite(c->b.nh, SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp),
               TAG_END());
    sd_log_info("outbound call: calling the agent's phone", "call=%s agent=%s contact=%s to=%s",
                c->call_id, c->agent_id, contact, uri);
    load_changed(e);
}

/* Step 2: the destination, without SDP, through the outbound proxy; the
 * edge ACKs its 200 itself (with the phone's answer), so no auto-ACK. */
static bool originate_dest(struct edge_sip *e, struct edge_call *c)
{
    char from[600], to[600], route[600], host[256];

    uri_hostport(e->cfg.sip_url, host, sizeof(host));
    snprintf(from, sizeof(from), "<sip:%s@%s>", c->dn, host);
    snprintf(to, sizeof(to), "<%s>", c->dest_uri);
    snprintf(route, sizeof(route), "<%s%s>", e->cfg.outbound_proxy,
             strstr(e->cfg.outbound_proxy, ";lr") != NULL ? "" : ";lr");
    c->a.nh = nua_handle(e->nua, &c->a, NUTAG_URL(c->dest_uri), SIPTAG_TO_STR(to),
                         SIPTAG_FROM_STR(from), TAG_END());
    if (c->a.nh == NULL)
        return false;
    nua_set_hparams(c->a.nh, NUTAG_AUTOACK(0), TAG_END());
    nua_invite(c->a.nh, SIPTAG_ROUTE_STR(route), TAG_END());
    sd_log_info("outbound call: the phone answered, calling the destination", "call=%s uri=%s",
                c->call_id, c->dest_uri);
    return true;
}

/* Final answers while an outbound call is set up (steps of originate_start). */
static void on_out_answer(struct edge_sip *e, struct edge_leg *l, int status, const sip_t *sip)
{
    struct edge_call *c = l->call;
    const sip_payload_t *pl = sip ? sip->sip_payload : NULL;
    const char *ct = pl && sip->sip_content_type ? sip->sip_content_type->c_type : NULL;
    char sdp[SDP_MAX], reason[128];

    if (status < 200)
        return;    /* ringing: the agent is connected already and hears silence */
    if (l->is_a) { /* the destination's answer (step 2) */
        if (status >= 300) {
            c->step = OUT_DONE;
            snprintf(reason, sizeof(reason), "SIP;cause=%d;text=\"destination: %s\"", status,
                     phrase_of(status));
            sd_log_info("outbound call not answered", "call=%s status=%d", c->call_id, status);
            call_end(e, c, failure_cause(status), status);
            leg_end(&c->b, reason, 0);
            return;
        }
        l->answered_up = true;
        note_dialog(l, sip, true);
        if (c->phase == CALL_ENDED || c->b.gone || c->b.bye_pending) {
            c->step = OUT_DONE; /* the agent hung up meanwhile */
            nua_ack(l->nh, TAG_END());
            leg_bye(l, NULL);
            return;
        }
        if (pl == NULL || !edge_sdp_plausible(pl->pl_data, pl->pl_len, true) ||
            edge_sdp_reorigin(pl->pl_data, pl->pl_len, &c->origin, true, sdp, sizeof(sdp)) < 0) {
            c->step = OUT_DONE;
            sd_log_warn("outbound call: the destination answered without a usable SDP offer",
                        "call=%s", c->call_id);
            nua_ack(l->nh, TAG_END());
            call_end(e, c, "failed", 0);
            leg_bye(l, "SIP;cause=488;text=\"no usable SDP offer in the 200\"");
            leg_bye(&c->b, NULL);
            return;
        }
        c->step = OUT_CONNECT;
        nua_invite(c->b.nh, SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp),
                   TAG_END());
        return;
    }
    if (c->step == OUT_PHONE) { /* step 1 */
        if (status >= 300) {
            c->step = OUT_DONE;
            sd_log_info("outbound call: the agent's phone did not answer", "call=%s status=%d",
                        c->call_id, status);
            call_end(e, c, failure_cause(status), status);
            return;
        }
        l->answered_up = true;
        note_dialog(l, sip, true);
        if (c->phase == CALL_ENDED) {
            c->step = OUT_DONE;
            leg_bye(l, NULL);
        } else if (!originate_dest(e, c)) {
            c->step = OUT_DONE;
            call_end(e, c, "failed", 0);
            leg_bye(l, NULL);
        } else {
            c->step = OUT_DEST;
        }
        return;
    }
    /* step 3: the phone's answer to the destination's offer */
    c->step = OUT_DONE;
    if (status >= 300 || pl == NULL) {
        sd_log_warn("outbound call: the agent's phone refused the destination's media",
                    "call=%s status=%d", c->call_id, status);
        nua_ack(c->a.nh, TAG_END());
        call_end(e, c, "failed", status >= 300 ? status : 0);
        leg_bye(&c->a, "SIP;cause=488;text=\"the agent's phone refused the media\"");
        leg_bye(&c->b, NULL);
        return;
    }
    nua_ack(c->a.nh, SIPTAG_CONTENT_TYPE_STR(ct ? ct : "application/sdp"), SIPTAG_PAYLOAD(pl),
            TAG_END());
    nua_set_hparams(c->a.nh, NUTAG_AUTOACK(1), TAG_END()); /* later re-INVITEs: NUA ACKs */
    if (c->phase == CALL_ENDED) {                          /* cut meanwhile */
        leg_bye(&c->a, DEADLINE_REASON);
        leg_bye(&c->b, DEADLINE_REASON);
        return;
    }
    c->phase = CALL_ANSWERED;
    c->answered_ms = sd_wall_ms();
    call_report(e, c, "established", NULL, 0);
    sd_log_info("call established", "call=%s agent=%s direction=outbound", c->call_id, c->agent_id);
}

/* call.originate from agent-state (the bus thread added the phone's
 * contact at this edge: "" = none, null = the database is away). */
static void on_originate(struct edge_sip *e, json_t *d)
{
    json_t *contact = json_object_get(d, "contact");
    char uri[512];

    if (e->fsm.state != EDGE_ACTIVE)
        originate_refuse(e, d, "graceful_shutdown", "draining", 503, "the edge is draining");
    else if (e->cfg.outbound_proxy == NULL)
        originate_refuse(e, d, "originate_failed", "failed", 503,
                         "SIPDRAIN_OUTBOUND_PROXY is not set on this edge");
    else if (!json_is_string(contact))
        originate_refuse(e, d, "internal_error", "failed", 503, "the database is unavailable");
    else if (strncmp(json_string_value(contact), "sip:", 4) != 0)
        originate_refuse(e, d, "not_registered", "not_registered", 480,
                         "the agent's phone is not registered at this edge");
    else if (!dest_uri(e, json_string_value(json_object_get(d, "destination")), uri, sizeof(uri)))
        originate_refuse(e, d, "originate_failed", "failed", 484,
                         "the destination is not a number or a sip:/tel: URI");
    else
        originate_start(e, d, json_string_value(contact), uri);
}

static void on_control(struct edge_sip *e, json_t *msg)
{
    const char *type = json_string_value(json_object_get(msg, "type"));
    const char *id = json_string_value(json_object_get(msg, "id"));
    json_t *d = json_object_get(msg, "data");
    struct edge_input in;

    if (type == NULL || id == NULL || control_seen(e, id))
        return;
    if (!strcmp(type, "call.originate")) {
        on_originate(e, d);
        return;
    }
    memset(&in, 0, sizeof(in));
    snprintf(in.drain.drain_id, sizeof(in.drain.drain_id), "%s",
             json_string_value(json_object_get(d, "drain_id")));
    if (!strcmp(type, "edge.drain")) {
        const char *deadline = json_string_value(json_object_get(d, "deadline_at"));
        int64_t ms = 0;
        in.kind = EDGE_IN_DRAIN;
        in.drain.site_scope = !strcmp(json_string_value(json_object_get(d, "scope")), "site");
        in.drain.reject_code = int_or(d, "reject_code", -1);
        in.drain.sip_timeout_s = int_or(d, "sip_timeout_s", -1);
        in.drain.retry_after_s = int_or(d, "retry_after_s", -1);
        if (deadline != NULL && sd_time_parse_rfc3339(deadline, &ms) == 0)
            in.drain.deadline_ms = ms;
    } else if (!strcmp(type, "edge.resume")) {
        in.kind = EDGE_IN_RESUME;
    } else {
        in.kind = EDGE_IN_SHUTDOWN;
        in.force = json_is_true(json_object_get(d, "force"));
    }
    fsm_input(e, &in, type);
}

static void on_queue(void *arg)
{
    struct edge_sip *e = arg;
    struct edge_msg *m;

    while ((m = edge_queue_take(e->to_sip)) != NULL) {
        if (m->kind == EDGE_MSG_REGISTER_DONE)
            on_register_done(e, m);
        else if (m->kind == EDGE_MSG_ROUTE_DONE)
            on_route_done(e, m);
        else if (m->kind == EDGE_MSG_NAILED)
            on_nailed_msg(e, m->data);
        else if (m->kind == EDGE_MSG_CONTROL)
            on_control(e, m->data);
        else if (m->kind == EDGE_MSG_BUS_STATS) {
            e->consumer_lag = (long)json_integer_value(json_object_get(m->data, "consumer_lag"));
            e->outbox_backlog =
                (long)json_integer_value(json_object_get(m->data, "outbox_backlog"));
        }
        edge_msg_free(m);
    }
}

static void on_signal_pipe(void *arg)
{
    struct edge_sip *e = arg;
    unsigned char b;

    while (read(signal_pipe[0], &b, 1) == 1) {
        struct edge_input in = {.kind = EDGE_IN_SIGTERM};
        sd_log_info("signal", "signo=%d count=%d", (int)b, e->fsm.sigterms + 1);
        fsm_input(e, &in, b == SIGINT ? "SIGINT" : "SIGTERM");
    }
}

/* --- set-up --------------------------------------------------------------- */

struct edge_sip *edge_sip_new(const struct edge_sip_config *cfg, struct edge_queue *to_bus,
                              struct edge_queue *to_sip, struct sd_err *err)
{
    struct edge_sip *e = calloc(1, sizeof(*e));
    struct sigaction sa;

    if (e == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    e->cfg = *cfg;
    for (const char *p = cfg->route_points; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, ", ");
        if (len > 0 && len < sizeof(e->route_points[0]) && e->n_route_points < ROUTE_POINTS_MAX)
            snprintf(e->route_points[e->n_route_points++], sizeof(e->route_points[0]), "%.*s",
                     (int)len, p);
        p += len;
        p += strspn(p, ", ");
    }
    e->to_bus = to_bus;
    e->to_sip = to_sip;
    e->exit_code = 1;
    e->consumer_lag = e->outbox_backlog = -1;
    e->started_ms = sd_wall_ms();
    edge_fsm_init(&e->fsm, &cfg->drain);
    su_home_init(e->home);
    su_log_redirect(su_log_default, on_sofia_log, NULL);
    e->root = su_root_create(e);
    if (e->root == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "su_root_create failed");
        goto fail;
    }
    /* NUA's stack runs in this thread, not in a clone thread of its own:
     * every request and event would otherwise cross threads (a message, a
     * wake-up and a context switch each; measured: half the edge's CPU per
     * call). The SIP thread never blocks, so nothing is lost. */
    su_root_threading(e->root, 0);
    e->nua = nua_create(
        e->root, on_nua, e, NUTAG_URL(cfg->sip_url), NUTAG_AUTOANSWER(0),
        NUTAG_MEDIA_ENABLE(0), /* B2BUA: SDP passes through untouched */
        /* A burst (a failover sends another edge's callers here at once)
         * must wait in the socket, not be dropped; the kernel caps this at
         * net.core.rmem_max / wmem_max. */
        TPTAG_UDP_RMEM(UDP_BUFFER_BYTES), TPTAG_UDP_WMEM(UDP_BUFFER_BYTES),
        /* T1 alone does not shorten Timer F in sofia-sip 1.12.11 */
        NTATAG_SIP_T1((unsigned)cfg->sip_t1_ms), NTATAG_SIP_T1X64((unsigned)cfg->sip_t1_ms * 64),
        /* A BYE that times out is reported with a 408 made from the BYE
         * itself (its From, To, Call-ID, CSeq): what a BYE sent again in
         * the same dialog needs (remember_unconfirmed). */
        NTATAG_TIMEOUT_408(1),
        /* Responses go back to the address and port the request came from
         * (RFC 3581 rport, used even when the client did not ask), never to
         * a host named in its Via. */
        NTATAG_SERVER_RPORT(2), NUTAG_APPL_METHOD("OPTIONS"), NUTAG_APPL_METHOD("REGISTER"),
        /* Exactly what the edge handles (NUA's default list names MESSAGE,
         * SUBSCRIBE, NOTIFY, REFER, PRACK and UPDATE, and answered some of
         * them 200 with nothing behind it): every other method gets 405
         * with this Allow, in a dialog or not. */
        SIPTAG_ALLOW_STR(EDGE_ALLOW), SIPTAG_SUPPORTED(NULL), NUTAG_SHUTDOWN_EVENTS(1), TAG_END());
    if (e->nua == NULL) {
        sd_err_set(err, SD_ERR_CONFIG, "SIPDRAIN_SIP_URL: cannot listen on %s", cfg->sip_url);
        goto fail;
    }
    if (pipe(signal_pipe) < 0) {
        sd_err_set(err, SD_ERR_INTERNAL, "pipe: %s", strerror(errno));
        goto fail;
    }
    fcntl(signal_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    e->queue_watch =
        sd_suroot_watch_new(e->root, edge_queue_fd(to_sip), QUEUE_TICK_MS, on_queue, e);
    e->signal_watch = sd_suroot_watch_new(e->root, signal_pipe[0], 1000, on_signal_pipe, e);
    e->status_timer = su_timer_create(su_root_task(e->root), STATUS_EVERY_MS);
    e->fsm_timer = su_timer_create(su_root_task(e->root), 1000);
    e->bye_timer = su_timer_create(su_root_task(e->root), BYE_RETRY_MS);
    if (e->queue_watch == NULL || e->signal_watch == NULL || e->status_timer == NULL ||
        e->fsm_timer == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "su_root set-up failed");
        goto fail;
    }
    su_timer_set_for_ever(e->status_timer, on_status_timer, NULL);
    if (e->bye_timer == NULL)
        goto fail;
    su_timer_set_for_ever(e->bye_timer, on_bye_timer, NULL);
    return e;
fail:
    edge_sip_free(e);
    return NULL;
}

int edge_sip_run(struct edge_sip *e)
{
    sd_log_info("listening", "sip_url=%s state=%s", e->cfg.sip_url, edge_state_name(e->fsm.state));
    send_status(e);
    su_root_run(e->root);
    return e->exit_code;
}

void edge_sip_free(struct edge_sip *e)
{
    if (e == NULL)
        return;
    for (int i = 0; i < REGISTER_MAX; i++) {
        if (e->registers[i] != NULL) {
            nua_destroy_event(e->registers[i]->saved);
            free(e->registers[i]);
        }
    }
    if (e->nua != NULL)
        nua_destroy(e->nua); /* every handle with it */
    while (e->byes != NULL) {
        struct unconfirmed_bye *u = e->byes;
        e->byes = u->next;
        free(u);
    }
    while (e->nailed != NULL) {
        struct nailed *n = e->nailed;
        e->nailed = n->next;
        free(n);
    }
    su_timer_destroy(e->bye_timer);
    su_timer_destroy(e->status_timer);
    su_timer_destroy(e->fsm_timer);
    sd_suroot_watch_free(e->queue_watch);
    sd_suroot_watch_free(e->signal_watch);
    if (e->root != NULL)
        su_root_destroy(e->root);
    su_home_deinit(e->home);
    if (signal_pipe[0] >= 0) {
        close(signal_pipe[0]);
        close(signal_pipe[1]);
        signal_pipe[0] = signal_pipe[1] = -1;
    }
    free(e);
}
