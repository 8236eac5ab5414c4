/* edge_call.c - calls: a gateway's INVITE bridged to an agent's phone
 * (B2BUA, SDP passed through) and agent-originated calls, as call_fsm
 * decides them: this file turns SIP events into its inputs and carries out
 * its actions (respond, INVITE, BYE, CANCEL, report); re-INVITEs and INFO
 * are relayed here without it. */
#include "edge_sip_int.h"

static void call_new(struct edge_sip *e, nua_handle_t *nh, const sip_t *sip);
static bool site_draining(const struct edge_sip *e);
static void to_peer(struct edge_sip *e, struct edge_call *c);
static void route_set(char *out, size_t size, const sip_record_route_t *rr, bool reverse);

/* "Reason: SIP;cause=503;text="..."" (RFC 3326) for a refusal while draining. */
static void reason_text(char *buf, size_t size, int status, const struct edge_sip *e)
{
    snprintf(buf, size, "SIP;cause=%d;text=\"edge %s is draining\"", status, e->cfg.edge_id);
}

/* A new INVITE. While draining: the configured refusal (DESIGN.md §4),
 * counted in edge.status.invites_rejected rather than published one by one,
 * so a storm of retries cannot flood the bus. */
void edge_call_on_invite(struct edge_sip *e, nua_handle_t *nh, const sip_t *sip)
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

/* A datagram before sofia-sip parses it (tools/sofia-sip/0006, issue
 * #17): while the edge refuses new INVITEs with a status, an initial INVITE
 * from a trusted peer gets that refusal here, statelessly (edge_fast.h: no
 * parse, no transaction, no handle), and the ACK of such a refusal is
 * dropped. Everything else - every datagram while the edge takes calls, a
 * redirect, an untrusted source (the guard answers it), anything edge_fast
 * does not fully understand - goes on to the stack as before. A
 * retransmitted INVITE is answered (and counted) again. */
int edge_call_fast_filter(void *magic, su_socket_t s, void const *data, size_t len,
                          su_sockaddr_t const *from, socklen_t fromlen)
{
    struct edge_sip *e = magic;
    struct edge_verdict v;
    struct edge_fast_refusal r;
    unsigned char addr[16];
    char ip[INET6_ADDRSTRLEN], out[EDGE_FAST_ANSWER_MAX];
    size_t n = 0;

    if (len < 8 || (memcmp(data, "INVITE ", 7) != 0 && memcmp(data, "ACK ", 4) != 0))
        return 0;
    v = edge_fsm_invite(&e->fsm);
    if (v.kind != EDGE_REJECT)
        return 0;
    if (from->su_family == AF_INET)
        memcpy(addr, &from->su_sin.sin_addr, 4);
    else if (from->su_family == AF_INET6)
        memcpy(addr, &from->su_sin6.sin6_addr, 16);
    else
        return 0;
    if (!edge_peers_trusted(&e->cfg.trusted, from->su_family, addr))
        return 0;
    if (from->su_family == AF_INET)
        edge_fast_ip4(ip, addr);
    else if (inet_ntop(AF_INET6, addr, ip, sizeof(ip)) == NULL)
        return 0;
    if (e->fast_reason_status != v.status) { /* the same for every refusal of a drain */
        reason_text(e->fast_reason, sizeof(e->fast_reason), v.status, e);
        e->fast_reason_status = v.status;
    }
    r = (struct edge_fast_refusal){
        .status = v.status,
        .phrase = sip_status_phrase(v.status) ? sip_status_phrase(v.status) : "Refused",
        .retry_after_s = v.retry_after_s,
        .reason = e->fast_reason,
        .tag_key = e->fast_tag_key,
        .src_ip = ip,
        .src_port = ntohs(from->su_port),
    };
    switch (edge_fast_check(data, len, &r, out, sizeof(out), &n)) {
    case EDGE_FAST_ANSWER:
        if (sendto(s, out, n, 0, &from->su_sa, fromlen) < 0)
            sd_log_debug("refusal not sent", "reason=\"%s\"", strerror(errno));
        e->invites_rejected++;
        e->rejected_by_code[v.status % 700]++;
        return 1;
    case EDGE_FAST_DROP:
        return 1;
    case EDGE_FAST_PASS:
        break;
    }
    return 0;
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

/* src into dst, cut to fit (snprintf's "%s" costs a vfprintf a field). */
static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Writes call.offered (outbound: the calls row inserted), call.established
 * or call.ended with the calls row (bus thread). */
void edge_call_report(struct edge_sip *e, struct edge_call *c, const char *state,
                      const char *end_cause, int sip_status)
{
    struct edge_call_msg m = {.outbound = c->outbound};

    copy_str(m.call_id, sizeof(m.call_id), c->call_id);
    copy_str(m.agent_id, sizeof(m.agent_id), c->agent_id);
    copy_str(m.dn, sizeof(m.dn), c->dn);
    copy_str(m.caller, sizeof(m.caller), c->caller);
    copy_str(m.called, sizeof(m.called), c->called);
    copy_str(m.state, sizeof(m.state), state);
    if (!strcmp(state, "ended")) {
        m.answered = c->answered_ms > 0;
        m.duration_ms = m.answered ? (long long)(sd_wall_ms() - c->answered_ms) : 0;
        copy_str(m.end_cause, sizeof(m.end_cause), end_cause ? end_cause : "");
        if (c->route_point && !c->outbound) /* agent-state: an offer not taken */
            copy_str(m.route_point, sizeof(m.route_point), c->called);
        if (!m.answered && sip_status >= 300 && sip_status <= 699)
            m.sip_status = sip_status;
    }
    if (edge_queue_put_call(e->to_bus, &m) < 0)
        sd_log_error("call not reported: out of memory", "call=%s state=%s", c->call_id, state);
}

static struct edge_call **token_bucket(struct edge_sip *e, unsigned long token)
{
    return &e->by_token[token & (EDGE_TOKEN_BUCKETS - 1)];
}

void edge_call_link(struct edge_sip *e, struct edge_call *c)
{
    c->next = e->calls;
    if (c->next != NULL)
        c->next->pprev = &c->next;
    c->pprev = &e->calls;
    e->calls = c;
    e->calls_total++;
    if (c->token != 0) {
        struct edge_call **bucket = token_bucket(e, c->token);
        c->token_next = *bucket;
        *bucket = c;
    }
}

/* Unlinks and frees c (its handles are gone). */
static void call_unlink(struct edge_sip *e, struct edge_call *c)
{
    *c->pprev = c->next;
    if (c->next != NULL)
        c->next->pprev = c->pprev;
    if (c->token != 0) {
        for (struct edge_call **pp = token_bucket(e, c->token); *pp != NULL;
             pp = &(*pp)->token_next) {
            if (*pp == c) {
                *pp = c->token_next;
                break;
            }
        }
    }
    free(c->offer);
    free(c);
}

static struct edge_call *call_by_token(struct edge_sip *e, unsigned long token)
{
    for (struct edge_call *c = *token_bucket(e, token); c != NULL; c = c->token_next) {
        if ((c->st.phase == CALL_ROUTING || c->st.phase == CALL_QUEUED) && c->token == token)
            return c;
    }
    return NULL;
}

static struct edge_leg *other_leg(struct edge_leg *l)
{
    return l->is_a ? &l->call->b : &l->call->a;
}

static struct edge_leg *leg_of(struct edge_call *c, enum call_leg_id id)
{
    return id == CALL_LEG_A ? &c->a : &c->b;
}

static enum call_leg_id id_of(const struct edge_leg *l)
{
    return l->is_a ? CALL_LEG_A : CALL_LEG_B;
}

/* Sends BYE on a leg's dialog (with Reason when given); the caller has
 * checked that no BYE is out already. */
void edge_call_send_bye(struct edge_leg *l, const char *reason)
{
    if (l->nh == NULL || l->gone)
        return;
    snprintf(l->bye_reason, sizeof(l->bye_reason), "%s", reason != NULL ? reason : "");
    nua_bye(l->nh, TAG_IF(reason != NULL, SIPTAG_REASON_STR(reason)), TAG_END());
}

/* The reason phrase to send on: a callback's phrase lives in a message
 * that is freed before NUA sends our response, so only static text. */
const char *edge_call_phrase(int status)
{
    const char *p = sip_status_phrase(status);
    return p != NULL ? p : "Unknown";
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
void edge_call_note_dialog(struct edge_leg *l, const sip_t *sip, bool uac)
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
void edge_call_note_target(struct edge_leg *l, const sip_t *sip)
{
    if (l != NULL && l->retry == NULL && sip != NULL && sip->sip_contact != NULL &&
        sip->sip_cseq != NULL && sip->sip_cseq->cs_method == sip_method_invite)
        url_e(l->target, (int)sizeof(l->target), sip->sip_contact->m_url);
}

/* The To of a request the edge sends to an agent's phone: the agent's DN
 * at the edge's own address, i.e. the phone's address of record (it
 * registered sip:DN@<edge>); the phone's Contact is the Request-URI. An
 * edge listening on every address (sip:*:5060, as in compose) has no one
 * address of its own: then the DN at the phone's host (its Contact's), a
 * well-formed URI all the same. */
void edge_call_agent_to(const struct edge_sip *e, const char *dn, const char *contact, char *out,
                        size_t size)
{
    char host[256];

    edge_sip_uri_hostport(e->cfg.sip_url, host, sizeof(host));
    if ((host[0] == '*' || strncmp(host, "0.0.0.0", 7) == 0 || strncmp(host, "[::]", 4) == 0) &&
        contact != NULL && strncmp(contact, "sip:", 4) == 0)
        edge_sip_uri_hostport(contact, host, sizeof(host));
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

/* INVITEs the agent's phone with the caller's offer: through its idle
 * nailed-up dialog (a re-INVITE), or a new dialog to its registration. */
static bool invite_agent(struct edge_sip *e, struct edge_call *c, bool nailed)
{
    char to[600];

    if (nailed && edge_nailed_connect(e, c))
        goto sent;
    if (c->agent_id[0] == '\0') /* the peer site's route point (a site drain) */
        snprintf(to, sizeof(to), "<%s>", c->contact);
    else
        edge_call_agent_to(e, c->dn, c->contact, to, sizeof(to));
    c->b.nh = edge_register_phone_handle(e, &c->b, c->dn, c->contact, to, NULL);
    if (c->b.nh == NULL)
        return false;
    nua_invite(c->b.nh, SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(c->offer),
               TAG_END());
sent:
    if (!c->st.queue_on) { /* a queued call may go to the next agent: it keeps the offer */
        free(c->offer);
        c->offer = NULL;
    }
    return true;
}

/* Answers the caller's INVITE: status (with Reason when given; a routing
 * refusal says when to try again), or the agent's answer relayed with its
 * SDP (relay). */
static void respond_caller(struct edge_call *c, const struct call_action *a,
                           const struct call_ctx *ctx, bool relay)
{
    const sip_payload_t *pl = relay && ctx->sip ? ctx->sip->sip_payload : NULL;
    const char *ct = pl && ctx->sip->sip_content_type ? ctx->sip->sip_content_type->c_type : NULL;
    bool routing = c->st.routed == false && a->status != 0;

    if (c->a.nh == NULL || c->a.gone)
        return;
    nua_respond(
        c->a.nh, a->status, edge_call_phrase(a->status),
        TAG_IF(a->reason != NULL, SIPTAG_REASON_STR(a->reason)),
        TAG_IF(routing && a->status == 480, SIPTAG_RETRY_AFTER_STR("30")),
        TAG_IF(ctx->db_away, SIPTAG_RETRY_AFTER_STR(EDGE_DB_RETRY_AFTER)),
        TAG_IF(ctx->db_away, SIPTAG_REASON_STR("SIP;cause=503;text=\"database unavailable\"")),
        TAG_IF(ct, SIPTAG_CONTENT_TYPE_STR(ct)), TAG_IF(pl, SIPTAG_PAYLOAD(pl)), TAG_END());
}

/* BYE on a leg; an outbound call's phone hears what the destination said. */
static void bye_leg(struct edge_call *c, const struct call_action *a)
{
    char reason[128];

    if (a->status != 0 && a->reason == NULL) {
        snprintf(reason, sizeof(reason), "SIP;cause=%d;text=\"destination: %s\"", a->status,
                 edge_call_phrase(a->status));
        edge_call_send_bye(leg_of(c, a->leg), reason);
    } else {
        edge_call_send_bye(leg_of(c, a->leg), a->reason);
    }
}

/* The agent's phone did not take the call (call_fsm sent call.ended for
 * that offer): its leg is forgotten - a handle of its own is destroyed, a
 * nailed-up dialog went back to its owner (CALL_DO_PARK) - and the call
 * waits in the queue again, with its first arrival time (issue #16). */
static void requeue(struct edge_sip *e, struct edge_call *c)
{
    struct edge_leg fresh = {.call = c};

    if (c->b.nh != NULL && !c->b.gone && c->b.nailed == NULL) {
        nua_handle_bind(c->b.nh, NULL);
        nua_handle_destroy(c->b.nh);
    }
    c->b = fresh;
    sd_log_info("call back to the queue", "call=%s agent=%s offers=%d", c->call_id, c->agent_id,
                c->offers);
    c->agent_id[0] = c->dn[0] = c->contact[0] = '\0';
    edge_queue_put(e->to_bus, EDGE_MSG_QUEUE, c->token,
                   json_pack("{s:s, s:s, s:s, s:s, s:I, s:i}", "call_id", c->queue_id, "dn",
                             c->called, "caller", c->caller, "called", c->called, "queued_at_ms",
                             (json_int_t)c->created_ms, "offers", c->offers));
    if (site_draining(e))
        to_peer(e, c);
}

static void do_action(struct edge_sip *e, struct edge_call *c, const struct call_action *a,
                      const struct call_ctx *ctx)
{
    struct edge_leg *l = leg_of(c, a->leg);

    switch (a->kind) {
    case CALL_DO_RESPOND:
        respond_caller(c, a, ctx, false);
        break;
    case CALL_DO_RELAY_ANSWER:
        respond_caller(c, a, ctx, true);
        break;
    case CALL_DO_INVITE_AGENT:
        c->ring_ms = sd_mono_ms();
        c->offers++;
        if (!invite_agent(e, c, a->park)) {
            struct call_input fail = {.kind = CALL_IN_ANSWER, .leg = CALL_LEG_B, .status = 500};
            struct call_input gone = {.kind = CALL_IN_TERMINATED, .leg = CALL_LEG_B};
            sd_log_warn("agent INVITE not sent", "call=%s why=\"no SIP handle\"", c->call_id);
            edge_call_input(e, c, &fail, ctx);
            edge_call_input(e, c, &gone, ctx);
        }
        break;
    case CALL_DO_INVITE_DEST:
        if (!edge_originate_dest(e, c)) {
            struct call_input fail = {.kind = CALL_IN_ANSWER, .leg = CALL_LEG_A, .status = 500};
            struct call_input gone = {.kind = CALL_IN_TERMINATED, .leg = CALL_LEG_A};
            edge_call_input(e, c, &fail, ctx);
            edge_call_input(e, c, &gone, ctx);
        }
        break;
    case CALL_DO_CONNECT_PHONE:
        edge_originate_connect(c, ctx->sdp);
        break;
    case CALL_DO_ACK_DEST:
        edge_originate_ack(c, a->with_body ? ctx->sip : NULL);
        break;
    case CALL_DO_BYE:
        bye_leg(c, a);
        break;
    case CALL_DO_CANCEL:
        if (l->nh != NULL && !l->gone)
            nua_cancel(l->nh, TAG_END());
        break;
    case CALL_DO_PARK:
        edge_nailed_release(e, c, a->park, a->bye_pending);
        break;
    case CALL_DO_REPORT_ESTABLISHED:
        c->answered_ms = sd_wall_ms();
        edge_call_report(e, c, "established", NULL, 0);
        sd_log_info("call established", "call=%s agent=%s direction=%s", c->call_id, c->agent_id,
                    c->outbound ? "outbound" : "inbound");
        break;
    case CALL_DO_REPORT_ENDED:
        if (a->reason != NULL) /* an offer of a call that goes back to the queue */
            edge_call_report(e, c, "ended", a->reason, a->status);
        else
            edge_call_report(e, c, "ended", call_end_cause_name(c->st.cause), c->st.end_status);
        break;
    case CALL_DO_REMEMBER_BYE:
        sd_log_warn("BYE not confirmed", "call=%s leg=%s status=%d", c->call_id,
                    l->is_a ? "caller" : "agent", a->status);
        edge_bye_remember(e, l, a->status, ctx->sip);
        break;
    case CALL_DO_COUNT_CUT:
        e->calls_cut++;
        break;
    case CALL_DO_FREE:
        c->free_me = true;
        break;
    case CALL_DO_DEQUEUE:
        edge_queue_put(e->to_bus, EDGE_MSG_DEQUEUE, c->token,
                       json_pack("{s:s}", "call_id", c->queue_id));
        break;
    case CALL_DO_REQUEUE:
        requeue(e, c);
        break;
    default:
        break;
    }
}

/* Feeds one input to c's call_fsm, logs what changed, carries out the
 * actions in order. The call is freed when call_fsm says so, once the
 * outermost input on it returns (an action may feed another); then, unless
 * ctx says quiet, edge_fsm hears of the load. c may be gone afterwards. */
void edge_call_input(struct edge_sip *e, struct edge_call *c, const struct call_input *in,
                     const struct call_ctx *ctx)
{
    struct call_actions out;
    static const struct call_ctx none = {0};

    if (ctx == NULL)
        ctx = &none;
    c->depth++;
    call_fsm_step(&c->st, in, &out);
    if (out.note != NULL)
        sd_log_debug("call input ignored", "call=%s input=%s why=\"%s\"", c->call_id,
                     call_input_name(in->kind), out.note);
    for (size_t i = 0; i < out.n_moves; i++) {
        if (out.moves[i].to == CALL_ENDED)
            sd_log_info("call ended", "call=%s agent=%s from=%s input=%s cause=%s sip_status=%d",
                        c->call_id, c->agent_id[0] ? c->agent_id : "-",
                        call_phase_name(out.moves[i].from), call_input_name(in->kind),
                        call_end_cause_name(c->st.cause), c->st.end_status);
        else
            sd_log_debug("call phase changed", "call=%s from=%s to=%s input=%s", c->call_id,
                         call_phase_name(out.moves[i].from), call_phase_name(out.moves[i].to),
                         call_input_name(in->kind));
    }
    for (size_t i = 0; i < out.n; i++)
        do_action(e, c, &out.a[i], ctx);
    if (--c->depth > 0)
        return;
    if (c->free_me)
        call_unlink(e, c);
    if (!ctx->quiet)
        edge_sip_load_changed(e);
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
    edge_call_note_dialog(&c->a, sip, false);
    nua_handle_bind(nh, &c->a);
    call_fsm_init_inbound(&c->st);
    c->created_ms = sd_wall_ms();
    c->token = ++e->next_token;
    snprintf(c->call_id, sizeof(c->call_id), "%.200s",
             sip->sip_call_id ? sip->sip_call_id->i_id : "no-call-id");
    user_or_uri(c->caller, sizeof(c->caller), sip->sip_from ? sip->sip_from->a_url : NULL);
    snprintf(c->called, sizeof(c->called), "%s", dn);
    snprintf(c->queue_id, sizeof(c->queue_id), "%s", c->call_id);
    c->route_point = is_route_point(e, dn);
    c->st.queue_on = c->route_point && e->cfg.queue_max_wait_s > 0;
    edge_call_link(e, c);
    edge_queue_put(e->to_bus, EDGE_MSG_ROUTE, c->token,
                   json_pack("{s:s, s:s, s:b, s:s, s:s, s:I}", "call_id", c->call_id, "dn", dn,
                             "route_point", c->route_point, "caller", c->caller, "called",
                             c->called, "queued_at_ms", (json_int_t)c->created_ms));
}

/* An agent picked for a call that is no longer here (the edge cut it, or
 * it went while its answer was on the way): its offer ends at once, so
 * call.ended frees the agent (agent-state) and the calls row is closed. */
static void release_orphan(struct edge_sip *e, json_t *d)
{
    struct edge_call *c;

    if (json_integer_value(json_object_get(d, "status")) != 0 ||
        !json_is_string(json_object_get(d, "agent_id")) || (c = calloc(1, sizeof(*c))) == NULL)
        return;
    snprintf(c->call_id, sizeof(c->call_id), "%s",
             json_string_value(json_object_get(d, "call_id")));
    snprintf(c->agent_id, sizeof(c->agent_id), "%s",
             json_string_value(json_object_get(d, "agent_id")));
    snprintf(c->dn, sizeof(c->dn), "%s", json_string_value(json_object_get(d, "dn")));
    snprintf(c->caller, sizeof(c->caller), "%s",
             json_is_string(json_object_get(d, "caller"))
                 ? json_string_value(json_object_get(d, "caller"))
                 : "unknown");
    snprintf(c->called, sizeof(c->called), "%s",
             json_is_string(json_object_get(d, "called"))
                 ? json_string_value(json_object_get(d, "called"))
                 : "unknown");
    sd_log_warn("agent picked for a call that is gone: released", "call=%s agent=%s", c->call_id,
                c->agent_id);
    edge_call_report(e, c, "ended", "cancelled", 487);
    free(c);
}

/* Whether the site this edge belongs to is draining: its waiting calls go
 * to the peer site. */
static bool site_draining(const struct edge_sip *e)
{
    return e->fsm.state != EDGE_ACTIVE && e->fsm.drain.site_scope;
}

/* The peer site's route point for a call to rp: SIPDRAIN_PEER_SITE_URI with
 * rp as its user part (as it is when it names a user already). */
static void peer_target(const struct edge_sip *e, const char *rp, char *out, size_t size)
{
    const char *uri = e->cfg.peer_site_uri;
    size_t scheme = strncmp(uri, "sips:", 5) == 0 ? 5 : 4;

    if (strchr(uri, '@') != NULL)
        snprintf(out, size, "%s", uri);
    else
        snprintf(out, size, "%.*s%s@%s", (int)scheme, uri, rp, uri + scheme);
}

/* Asks the bus thread to hand c (waiting) to the peer site: it takes the
 * call out of the queue and answers with a route done to the peer's URI. */
static void to_peer(struct edge_sip *e, struct edge_call *c)
{
    char target[600];

    if (c->st.phase != CALL_QUEUED || c->st.dequeue_sent || c->to_peer || c->st.cancelled)
        return;
    if (e->cfg.peer_site_uri == NULL) {
        sd_log_warn("waiting call stays: no SIPDRAIN_PEER_SITE_URI to send it to", "call=%s",
                    c->call_id);
        return;
    }
    c->to_peer = true;
    peer_target(e, c->called, target, sizeof(target));
    sd_log_info("waiting call to the peer site", "call=%s target=%s", c->call_id, target);
    edge_queue_put(e->to_bus, EDGE_MSG_DEQUEUE, c->token,
                   json_pack("{s:s, s:s}", "call_id", c->queue_id, "peer_uri", target));
}

void edge_call_queue_to_peer(struct edge_sip *e)
{
    for (struct edge_call *c = e->calls; c != NULL; c = c->next)
        to_peer(e, c);
}

/* A route-point call with no Ready agent waits (issue #16): 182 Queued. */
void edge_call_on_queued(struct edge_sip *e, const struct edge_msg *m)
{
    struct edge_call *c = call_by_token(e, m->token);
    struct call_input in = {.kind = CALL_IN_QUEUED};

    if (c == NULL)
        return; /* cannot be: a call waiting for its route is never freed */
    sd_log_info("call queued", "call=%s route_point=%s", c->call_id, c->called);
    edge_call_input(e, c, &in, NULL);
    if (site_draining(e))
        to_peer(e, c);
}

void edge_call_ring_check(struct edge_sip *e)
{
    int64_t now = sd_mono_ms();
    struct call_input in = {.kind = CALL_IN_RING_TIMEOUT};

    if (e->cfg.ring_timeout_s <= 0 || now - e->ring_check_ms < 100)
        return;
    e->ring_check_ms = now;
    for (struct edge_call *c = e->calls, *next; c != NULL; c = next) {
        next = c->next;
        if (c->st.queue_on && c->st.phase == CALL_RINGING && !c->st.ring_timeout &&
            now - c->ring_ms >= (int64_t)e->cfg.ring_timeout_s * 1000) {
            sd_log_info("agent did not answer in time", "call=%s agent=%s ring_timeout_s=%d",
                        c->call_id, c->agent_id, e->cfg.ring_timeout_s);
            edge_call_input(e, c, &in, NULL);
        }
    }
}

/* The bus thread's answer: the agent and its phone, or why not. */
void edge_call_on_route_done(struct edge_sip *e, const struct edge_msg *m)
{
    struct edge_call *c = call_by_token(e, m->token);
    json_t *d = m->data;
    const char *why = json_string_value(json_object_get(d, "reason"));
    struct call_input in = {.kind = CALL_IN_ROUTE_DONE};
    struct call_ctx ctx = {0};

    if (c == NULL) {
        release_orphan(e, d);
        return;
    }
    if (json_is_string(json_object_get(d, "call_id")) &&
        json_string_value(json_object_get(d, "call_id"))[0] != '\0')
        snprintf(c->call_id, sizeof(c->call_id), "%s",
                 json_string_value(json_object_get(d, "call_id")));
    in.status = (int)json_integer_value(json_object_get(d, "status"));
    /* the database was away (edge_bus.c): the caller may try another edge at once */
    ctx.db_away = in.status != 0 && why != NULL && strcmp(why, "database_unavailable") == 0;
    if (in.status == 0 && json_string_value(json_object_get(d, "agent_id"))[0] == '\0') {
        /* the peer site's route point: its answer, whatever it is, is the
         * caller's (no queue of ours any more, no ring timeout) */
        c->st.queue_on = false;
        c->agent_id[0] = c->dn[0] = '\0';
        snprintf(c->contact, sizeof(c->contact), "%s",
                 json_string_value(json_object_get(d, "contact")));
        sd_log_info("call sent to the peer site", "call=%s target=%s", c->call_id, c->contact);
    } else if (in.status == 0) {
        snprintf(c->agent_id, sizeof(c->agent_id), "%s",
                 json_string_value(json_object_get(d, "agent_id")));
        snprintf(c->dn, sizeof(c->dn), "%s", json_string_value(json_object_get(d, "dn")));
        snprintf(c->contact, sizeof(c->contact), "%s",
                 json_string_value(json_object_get(d, "contact")));
        in.nailed_idle = edge_nailed_idle(e, c->agent_id);
    }
    edge_call_input(e, c, &in, &ctx);
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
    nua_respond(asker->nh, status, edge_call_phrase(status),
                TAG_IF(ct, SIPTAG_CONTENT_TYPE_STR(ct)), TAG_IF(body, SIPTAG_PAYLOAD_STR(body)),
                TAG_END());
}

/* A re-INVITE (hold, codec change) from either side: sent on to the
 * other, and its final answer relayed back (relay_answer). */
static void on_reinvite(struct edge_leg *l, const sip_t *sip)
{
    struct edge_leg *o = other_leg(l);
    const sip_payload_t *pl = sip->sip_payload;
    const char *ct = pl && sip->sip_content_type ? sip->sip_content_type->c_type : NULL;
    char buf[SDP_MAX];
    const char *body;

    if (o->nh == NULL || o->gone || o->reinvite_in || l->call->st.phase != CALL_ANSWERED) {
        nua_respond(l->nh, 491, "Request Pending", TAG_END());
        return;
    }
    l->reinvite_in = true;
    body = sdp_toward(o, pl, true, buf, sizeof(buf));
    nua_invite(o->nh, TAG_IF(ct, SIPTAG_CONTENT_TYPE_STR(ct)),
               TAG_IF(body, SIPTAG_PAYLOAD_STR(body)), TAG_END());
}

/* An answer to an INVITE the edge sent on leg l: a relayed re-INVITE's goes
 * back to its sender; one that sets the call up is call_fsm's input. */
static void on_invite_answer(struct edge_sip *e, struct edge_leg *l, int status, const sip_t *sip)
{
    struct edge_call *c = l->call;
    struct call_input in = {.kind = CALL_IN_ANSWER, .leg = id_of(l), .status = status};
    struct call_ctx ctx = {.sip = sip};
    char sdp[SDP_MAX];

    if (other_leg(l)->reinvite_in) {
        relay_answer(other_leg(l), status, sip);
        return;
    }
    if (status >= 200 && status < 300 && !c->st.leg[in.leg].answered && !c->st.leg[in.leg].nailed)
        edge_call_note_dialog(l, sip, true);
    if (c->outbound)
        in.usable_sdp = edge_originate_answer_sdp(c, in.leg, sip, sdp, sizeof(sdp), &ctx.sdp);
    edge_call_input(e, c, &in, &ctx);
}

/* The leg's dialog is over: its handle goes, and call_fsm hears of it. */
static void on_terminated(struct edge_sip *e, struct edge_leg *l)
{
    struct call_input in = {.kind = CALL_IN_TERMINATED, .leg = id_of(l)};

    if (l->gone)
        return;
    l->gone = true;
    nua_handle_bind(l->nh, NULL);
    nua_handle_destroy(l->nh);
    edge_call_input(e, l->call, &in, NULL);
}

/* NUA's events on a leg of a call (on_nua hands them here). */
void edge_call_on_event(struct edge_sip *e, struct edge_leg *l, nua_event_t event, int status,
                        const sip_t *sip, tagi_t tags[])
{
    struct call_input in = {.leg = id_of(l), .status = status};
    struct call_ctx ctx = {.sip = sip};
    int state = nua_callstate_init;

    switch (event) {
    case nua_i_invite:
        on_reinvite(l, sip);
        break;
    case nua_r_invite:
        on_invite_answer(e, l, status, sip);
        break;
    case nua_i_cancel:
        in.kind = CALL_IN_CANCEL;
        if (l->is_a)
            edge_call_input(e, l->call, &in, &ctx);
        break;
    case nua_i_bye:
        in.kind = CALL_IN_BYE;
        edge_call_input(e, l->call, &in, &ctx);
        break;
    case nua_r_bye:
        in.kind = CALL_IN_BYE_ANSWER;
        edge_call_input(e, l->call, &in, &ctx);
        break;
    case nua_i_info:
        if (other_leg(l)->nh != NULL && !other_leg(l)->gone)
            nua_info(other_leg(l)->nh,
                     TAG_IF(sip->sip_content_type, SIPTAG_CONTENT_TYPE(sip->sip_content_type)),
                     TAG_IF(sip->sip_payload, SIPTAG_PAYLOAD(sip->sip_payload)), TAG_END());
        break;
    case nua_i_state:
        tl_gets(tags, NUTAG_CALLSTATE_REF(state), TAG_END());
        if (state == nua_callstate_terminated)
            on_terminated(e, l);
        break;
    default:
        break;
    }
}

/* The drain deadline, or a forced stop: every call is cut, both legs, with
 * reason; edge_fsm hears of the load once, at the end. */
void edge_call_cut_all(struct edge_sip *e, const char *reason)
{
    unsigned long before = e->calls_cut;
    struct call_input in = {.kind = CALL_IN_CUT, .reason = reason};
    struct call_ctx ctx = {.quiet = true};

    for (struct edge_call *c = e->calls, *next; c != NULL; c = next) {
        next = c->next;
        if (c->st.phase != CALL_ENDED)
            edge_call_input(e, c, &in, &ctx);
    }
    if (e->calls_cut > before)
        sd_log_warn("calls cut", "calls=%lu why=%s", e->calls_cut - before,
                    strcmp(reason, STOP_REASON) == 0 ? "forced_stop" : "drain_deadline");
    edge_sip_load_changed(e);
}
