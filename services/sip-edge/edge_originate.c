/* edge_originate.c - agent-originated calls (call.originate, RFC 3725 Flow IV). */
#include "edge_sip_int.h"

static void originate_refuse(struct edge_sip *e, json_t *d, const char *error_reason,
                             const char *rejected_reason, int code, const char *detail);
static bool dest_uri(const struct edge_sip *e, const char *dest, char *out, size_t size);
static void originate_start(struct edge_sip *e, json_t *d, const char *contact, const char *uri);

/* Refuses call.originate with call.rejected, which frees the agent
 * agent-state reserved for the call; agent-state answers the desktop's
 * agent.make_call with EventError from its error_reason, detail and
 * request_id (only agent-state writes agent events: issue #15). */
static void originate_refuse(struct edge_sip *e, json_t *d, const char *error_reason,
                             const char *rejected_reason, int code, const char *detail)
{
    const char *agent = json_string_value(json_object_get(d, "agent_id"));
    const char *call = json_string_value(json_object_get(d, "call_id"));
    json_t *rej;

    rej = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:O?, s:O?, s:s, s:s, s:O?}", "call_id",
                    call, "edge", e->cfg.edge_id, "site", e->cfg.site, "direction", "outbound",
                    "reject_code", code, "reason", rejected_reason, "agent_id", agent, "dn",
                    json_object_get(d, "dn"), "called", json_object_get(d, "destination"),
                    "error_reason", error_reason, "detail", detail, "request_id",
                    json_object_get(d, "request_id"));
    if (!strcmp(rejected_reason, "draining") && e->fsm.drain.drain_id[0] != '\0')
        json_object_set_new(rej, "drain_id", json_string(e->fsm.drain.drain_id));
    sd_log_info("call.originate refused", "agent=%s call=%s reason=%s detail=\"%s\"", agent, call,
                error_reason, detail);
    edge_sip_publish(e, SD_TOPIC_CALL_EVENTS, agent, "call.rejected", rej);
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
    edge_sip_uri_hostport(e->cfg.outbound_proxy, host, sizeof(host));
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
 * while the destination rings. call_fsm takes the call through the steps;
 * the SIP of steps 2 and 3 is below. */
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
    call_fsm_init_outbound(&c->st);
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
    edge_call_agent_to(e, c->dn, contact, to, sizeof(to));
    snprintf(from, sizeof(from), "<%s>", uri); /* the phone shows whom it is calling */
    c->b.nh = edge_register_phone_handle(e, &c->b, c->dn, contact, to, from);
    if (c->b.nh == NULL || edge_sdp_no_media(&c->origin, sdp, sizeof(sdp)) < 0) {
        if (c->b.nh != NULL)
            nua_handle_destroy(c->b.nh);
        free(c);
        originate_refuse(e, d, "originate_failed", "failed", 503, "SIP handle not created");
        return;
    }
    edge_call_link(e, c);
    edge_call_report(e, c, "offered", NULL, 0);
    nua_invite(c->b.nh, SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp),
               TAG_END());
    sd_log_info("outbound call: calling the agent's phone", "call=%s agent=%s contact=%s to=%s",
                c->call_id, c->agent_id, contact, uri);
    edge_sip_load_changed(e);
}

/* Step 2: the destination, without SDP, through the outbound proxy; the
 * edge ACKs its 200 itself (with the phone's answer), so no auto-ACK. */
bool edge_originate_dest(struct edge_sip *e, struct edge_call *c)
{
    char from[600], to[600], route[600], host[256];

    edge_sip_uri_hostport(e->cfg.sip_url, host, sizeof(host));
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

/* What an answer during the set-up carries for call_fsm: the destination's
 * 2xx (step 2) is usable with a plausible SDP offer, given the edge's o=
 * line for the phone's session (into buf, *sdp); the phone's answer to
 * that offer (step 3) with any body. */
bool edge_originate_answer_sdp(struct edge_call *c, enum call_leg_id leg, const sip_t *sip,
                               char *buf, size_t size, const char **sdp)
{
    const sip_payload_t *pl = sip ? sip->sip_payload : NULL;
    int status = sip && sip->sip_status ? sip->sip_status->st_status : 0;

    *sdp = NULL;
    if (status < 200 || status >= 300)
        return false;
    if (c->st.step == CALL_OUT_DEST && leg == CALL_LEG_A) {
        if (pl == NULL || !edge_sdp_plausible(pl->pl_data, pl->pl_len, true) ||
            edge_sdp_reorigin(pl->pl_data, pl->pl_len, &c->origin, true, buf, size) < 0) {
            sd_log_warn("outbound call: the destination answered without a usable SDP offer",
                        "call=%s", c->call_id);
            return false;
        }
        *sdp = buf;
        return true;
    }
    if (c->st.step == CALL_OUT_CONNECT && leg == CALL_LEG_B) {
        if (pl == NULL)
            sd_log_warn("outbound call: the agent's phone refused the destination's media",
                        "call=%s status=%d", c->call_id, status);
        return pl != NULL;
    }
    return false;
}

/* Step 3: the phone gets the destination's offer (sdp) by re-INVITE. */
void edge_originate_connect(struct edge_call *c, const char *sdp)
{
    nua_invite(c->b.nh, SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp),
               TAG_END());
}

/* The ACK of the destination's 2xx: with the phone's answer (step 3 done),
 * or empty when the call is given up. Later re-INVITEs: NUA ACKs them. */
void edge_originate_ack(struct edge_call *c, const sip_t *answer)
{
    const sip_payload_t *pl = answer ? answer->sip_payload : NULL;
    const char *ct =
        pl && answer->sip_content_type ? answer->sip_content_type->c_type : "application/sdp";

    if (c->a.nh == NULL || c->a.gone)
        return;
    if (pl != NULL)
        nua_ack(c->a.nh, SIPTAG_CONTENT_TYPE_STR(ct), SIPTAG_PAYLOAD(pl), TAG_END());
    else
        nua_ack(c->a.nh, TAG_END());
    nua_set_hparams(c->a.nh, NUTAG_AUTOACK(1), TAG_END());
}

/* call.originate from agent-state (the bus thread added the phone's
 * contact at this edge: "" = none, null = the database is away). */
void edge_originate_on_control(struct edge_sip *e, json_t *d)
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
