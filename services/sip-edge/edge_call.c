/* edge_call.c - calls: a gateway's INVITE bridged to an agent's phone (B2BUA,
 * SDP passed through), its legs, re-INVITEs, CANCEL, BYE, the events of a
 * call, cuts. */
#include "edge_sip_int.h"

static void reason_text(char *buf, size_t size, int status, const struct edge_sip *e);
static void user_or_uri(char *dst, size_t size, const url_t *url);
static void call_maybe_free(struct edge_sip *e, struct edge_call *c);
static struct edge_call *call_by_token(struct edge_sip *e, unsigned long token);
static bool leg_is_uac(const struct edge_leg *l);
static const char *sdp_toward(struct edge_leg *to, const sip_payload_t *pl, bool bump, char *buf,
                              size_t size);
static void route_set(char *out, size_t size, const sip_record_route_t *rr, bool reverse);
static bool is_route_point(const struct edge_sip *e, const char *dn);
static bool names_are_ip(const sip_t *sip);
static void call_new(struct edge_sip *e, nua_handle_t *nh, const sip_t *sip);

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
void edge_call_report(struct edge_sip *e, struct edge_call *c, const char *state,
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
void edge_call_end(struct edge_sip *e, struct edge_call *c, const char *cause, int sip_status)
{
    if (c->phase == CALL_ENDED)
        return;
    c->phase = CALL_ENDED;
    if (c->routed && !c->ended_sent)
        edge_call_report(e, c, "ended", cause, sip_status);
    sd_log_info("call ended", "call=%s agent=%s cause=%s sip_status=%d", c->call_id,
                c->agent_id[0] ? c->agent_id : "-", cause, sip_status);
}

/* Frees the call once neither leg has a dialog left. */
static void call_maybe_free(struct edge_sip *e, struct edge_call *c)
{
    if ((c->a.nh != NULL && !c->a.gone) || (c->b.nh != NULL && !c->b.gone) ||
        c->phase == CALL_ROUTING)
        return;
    edge_call_unlink(e, c);
    edge_sip_load_changed(e);
}

/* Unlinks and frees c (its handles are gone); the caller tells edge_fsm. */
void edge_call_unlink(struct edge_sip *e, struct edge_call *c)
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

struct edge_leg *edge_call_other_leg(struct edge_leg *l)
{
    return l->is_a ? &l->call->b : &l->call->a;
}

/* Sends BYE on a leg that has a dialog (with Reason when given). */
void edge_call_leg_bye(struct edge_leg *l, const char *reason)
{
    if (l->nh == NULL || l->gone || l->bye_pending)
        return;
    l->bye_pending = true;
    snprintf(l->bye_reason, sizeof(l->bye_reason), "%s", reason != NULL ? reason : "");
    nua_bye(l->nh, TAG_IF(reason != NULL, SIPTAG_REASON_STR(reason)), TAG_END());
}

const char *edge_call_phrase(int status);

/* The edge starts the agent leg of every call and both legs of an
 * outbound one; only an inbound call's caller leg is its UAS side. */
static bool leg_is_uac(const struct edge_leg *l)
{
    return !l->is_a || l->call == NULL || l->call->outbound;
}

/* Ends what leg l has: BYE once answered, CANCEL while the edge's INVITE
 * rings, else the final answer `status` to the caller's INVITE. */
void edge_call_leg_end(struct edge_leg *l, const char *reason, int status)
{
    if (l->nh == NULL || l->gone)
        return;
    if (l->answered_up)
        edge_call_leg_bye(l, reason);
    else if (leg_is_uac(l))
        nua_cancel(l->nh, TAG_END());
    else if (!l->call->a_final) {
        l->call->a_final = true;
        nua_respond(l->nh, status, edge_call_phrase(status),
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
 * registered sip:DN@<edge>); the phone's Contact is the Request-URI. */
void edge_call_agent_to(const struct edge_sip *e, const char *dn, char *out, size_t size)
{
    char host[256];

    edge_sip_uri_hostport(e->cfg.sip_url, host, sizeof(host));
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
    edge_call_note_dialog(&c->a, sip, false);
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
void edge_call_on_route_done(struct edge_sip *e, const struct edge_msg *m)
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
        edge_call_end(e, c, "failed", status);
        call_maybe_free(e, c);
        return;
    }
    c->routed = true;
    snprintf(c->agent_id, sizeof(c->agent_id), "%s",
             json_string_value(json_object_get(d, "agent_id")));
    snprintf(c->dn, sizeof(c->dn), "%s", json_string_value(json_object_get(d, "dn")));
    if (c->a.gone) { /* the caller gave up while the agent was being picked */
        edge_call_end(e, c, "cancelled", 487);
        call_maybe_free(e, c);
        return;
    }
    if (edge_nailed_connect(e, c)) {
        free(c->offer);
        c->offer = NULL;
        return;
    }
    edge_call_agent_to(e, c->dn, to, sizeof(to));
    c->b.nh = nua_handle(e->nua, &c->b, NUTAG_URL(json_string_value(json_object_get(d, "contact"))),
                         SIPTAG_TO_STR(to), TAG_END());
    if (c->b.nh == NULL) {
        c->a_final = true;
        nua_respond(c->a.nh, 500, "Internal Server Error", TAG_END());
        edge_call_end(e, c, "failed", 500);
        return;
    }
    nua_invite(c->b.nh, SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(c->offer),
               TAG_END());
    free(c->offer);
    c->offer = NULL;
}

/* The reason phrase to send on: a callback's phrase lives in a message
 * that is freed before NUA sends our response, so only static text. */
const char *edge_call_phrase(int status)
{
    const char *p = sip_status_phrase(status);
    return p != NULL ? p : "Unknown";
}

const char *edge_call_failure_cause(int status)
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
void edge_call_relay_answer(struct edge_leg *asker, int status, const sip_t *sip)
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

/* The agent phone answers the edge's INVITE (or a relayed re-INVITE). */
void edge_call_on_agent_answer(struct edge_sip *e, struct edge_leg *b, int status,
                               const char *phrase, const sip_t *sip)
{
    struct edge_call *c = b->call;
    const sip_payload_t *pl = sip ? sip->sip_payload : NULL;
    const char *ct = pl && sip->sip_content_type ? sip->sip_content_type->c_type : NULL;

    (void)phrase; /* freed before our response goes out: edge_call_phrase() instead */
    if (status < 101)
        return;
    if (c->a.reinvite_in) { /* the answer to a re-INVITE relayed from the caller */
        edge_call_relay_answer(&c->a, status, sip);
        return;
    }
    if (c->outbound)
        return; /* set up by on_out_answer; nothing else is asked of the phone */
    if (c->a.gone || c->phase == CALL_ENDED) {
        if (status >= 200 && b->nailed != NULL)
            edge_nailed_release(e, c, status < 300);
        else if (status >= 200 && status < 300)
            edge_call_leg_bye(b, NULL); /* answered too late: the caller is gone */
        return;
    }
    if (status < 200) {
        nua_respond(c->a.nh, status, edge_call_phrase(status),
                    TAG_IF(ct, SIPTAG_CONTENT_TYPE_STR(ct)), TAG_IF(pl, SIPTAG_PAYLOAD(pl)),
                    TAG_END());
        return;
    }
    c->a_final = true;
    if (status < 300) {
        edge_call_note_dialog(b, sip, true);
        c->phase = CALL_ANSWERED;
        c->answered_ms = sd_wall_ms();
        b->answered_up = c->a.answered_up = true;
        nua_respond(c->a.nh, status, edge_call_phrase(status),
                    TAG_IF(ct, SIPTAG_CONTENT_TYPE_STR(ct)), TAG_IF(pl, SIPTAG_PAYLOAD(pl)),
                    TAG_END());
        edge_call_report(e, c, "established", NULL, 0);
        sd_log_info("call established", "call=%s agent=%s", c->call_id, c->agent_id);
        return;
    }
    nua_respond(c->a.nh, status == 408 ? 480 : status,
                edge_call_phrase(status == 408 ? 480 : status), TAG_END());
    edge_call_end(e, c, edge_call_failure_cause(status), status);
    edge_nailed_release(e, c, false); /* a refused re-INVITE leaves it parked */
}

/* A re-INVITE (hold, codec change) from either side: sent on to the
 * other, and its final answer relayed back (relay_answer). */
void edge_call_on_reinvite(struct edge_sip *e, struct edge_leg *l, const sip_t *sip)
{
    struct edge_leg *o = edge_call_other_leg(l);
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
void edge_call_on_bye(struct edge_sip *e, struct edge_leg *l)
{
    struct edge_call *c = l->call;
    struct edge_leg *o = edge_call_other_leg(l);

    edge_call_end(e, c, l->is_a ? "caller_hangup" : "agent_hangup", 0);
    if (o->nailed != NULL && o->answered_up)
        edge_nailed_release(e, c, true); /* park the agent's standing dialog */
    else
        edge_call_leg_end(o, NULL, 480);
    edge_sip_load_changed(e);
}

void edge_call_on_cancel(struct edge_sip *e, struct edge_leg *a)
{
    struct edge_call *c = a->call;

    c->a_final = true; /* NUA answered the INVITE 487 */
    if (c->b.nh != NULL && !c->b.gone)
        nua_cancel(c->b.nh, TAG_END());
    if (c->phase != CALL_ROUTING)
        edge_call_end(e, c, "cancelled", 487);
}

void edge_call_on_terminated(struct edge_sip *e, struct edge_leg *l)
{
    struct edge_call *c = l->call;
    struct edge_leg *o = edge_call_other_leg(l);

    if (l->gone)
        return;
    l->gone = true;
    l->bye_pending = false;
    nua_handle_bind(l->nh, NULL);
    nua_handle_destroy(l->nh);
    if (l->nailed != NULL) /* the agent's standing dialog ended with it */
        edge_nailed_release(e, c, false);
    if (c->phase != CALL_ENDED && c->phase != CALL_ROUTING) {
        /* A leg ended without BYE (e.g. the agent's INVITE timed out). */
        if (o->nailed != NULL && o->answered_up)
            edge_nailed_release(e, c, true);
        else
            edge_call_leg_end(o, NULL, 480);
        edge_call_end(e, c, l->is_a ? "caller_hangup" : "failed", 0);
    }
    call_maybe_free(e, c);
}

/* The drain deadline, or a forced stop: end every call, both legs, saying why. */
void edge_call_cut_all(struct edge_sip *e, const char *reason)
{
    unsigned long before = e->calls_cut;

    for (struct edge_call *c = e->calls; c != NULL; c = c->next) {
        if (c->phase == CALL_ENDED)
            continue;
        edge_call_leg_end(&c->a, reason, 503);
        edge_call_leg_end(&c->b, reason, 503);
        e->calls_cut++;
        edge_call_end(e, c, "drain_deadline", 0);
    }
    if (e->calls_cut > before)
        sd_log_warn("calls cut", "calls=%lu why=%s", e->calls_cut - before,
                    strcmp(reason, STOP_REASON) == 0 ? "forced_stop" : "drain_deadline");
    edge_sip_load_changed(e);
}
