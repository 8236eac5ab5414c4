/* edge_nailed.c - nailed-up dialogs: a standing dialog to a nailed_up agent's
 * phone, calls connected through it by re-INVITE. */
#include "edge_sip_int.h"

static struct nailed *nailed_of(struct edge_sip *e, const char *agent_id);
static void nailed_free(struct edge_sip *e, struct nailed *n);
static void nailed_open(struct edge_sip *e, json_t *d);
static void nailed_close(struct nailed *n, const char *reason);
static void nailed_bye(struct nailed *n, const char *reason);

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
    edge_nailed_unlink(e, n);
    edge_sip_load_changed(e);
}

/* nailed_free without telling edge_fsm (the caller does). */
void edge_nailed_unlink(struct edge_sip *e, struct nailed *n)
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
    edge_call_agent_to(e, dn, contact, to, sizeof(to));
    n->leg.nh = edge_register_phone_handle(e, &n->leg, dn, contact, to, NULL);
    if (n->leg.nh == NULL) {
        free(n);
        return;
    }
    n->next = e->nailed;
    e->nailed = n;
    nua_invite(n->leg.nh, SIPTAG_CONTENT_TYPE_STR("application/sdp"),
               SIPTAG_PAYLOAD_STR(park_sdp(n, true, sdp, sizeof(sdp))), TAG_END());
    sd_log_info("nailed-up dialog opening", "agent=%s dn=%s contact=%s", agent, dn, contact);
    edge_sip_load_changed(e);
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
        nailed_bye(n, reason);
}

void edge_nailed_end_all(struct edge_sip *e)
{
    for (struct nailed *n = e->nailed; n != NULL; n = n->next)
        nailed_close(n, DRAIN_REASON);
    edge_sip_load_changed(e);
}

void edge_nailed_on_msg(struct edge_sip *e, json_t *d)
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

/* The customer call through n is over (call_fsm's PARK): n goes back to
 * idle, parked again (or ended, when a drain or a logout asked for it
 * meanwhile). park false: the call's re-INVITE failed and the dialog is
 * still parked. bye_pending: the edge's BYE is out on it (a cut). The
 * caller (edge_call_input) tells edge_fsm of the load. */
void edge_nailed_release(struct edge_sip *e, struct edge_call *c, bool park, bool bye_pending)
{
    struct nailed *n = c->b.nailed;
    char sdp[256];

    if (n == NULL)
        return;
    n->call = NULL;
    c->b.nailed = NULL;
    if (c->b.gone) { /* the phone ended the dialog itself */
        edge_nailed_unlink(e, n);
        return;
    }
    nua_handle_bind(n->leg.nh, &n->leg);
    n->leg.bye_pending = bye_pending;
    c->b.nh = NULL;
    c->b.gone = true;
    if (n->ending || e->fsm.state != EDGE_ACTIVE)
        nailed_close(n, DRAIN_REASON);
    else if (park)
        nua_invite(n->leg.nh, SIPTAG_CONTENT_TYPE_STR("application/sdp"),
                   SIPTAG_PAYLOAD_STR(park_sdp(n, true, sdp, sizeof(sdp))), TAG_END());
}

/* Whether agent_id has a nailed-up dialog here that can take a call now. */
bool edge_nailed_idle(struct edge_sip *e, const char *agent_id)
{
    struct nailed *n = nailed_of(e, agent_id);

    return n != NULL && n->up && n->call == NULL && !n->ending && !n->leg.bye_pending;
}

/* BYE on n's own dialog, once. */
static void nailed_bye(struct nailed *n, const char *reason)
{
    if (n->leg.nh == NULL || n->leg.gone || n->leg.bye_pending)
        return;
    n->leg.bye_pending = true;
    edge_call_send_bye(&n->leg, reason);
}

/* Connects call c to the agent through its nailed-up dialog, if it has an
 * idle one: a re-INVITE with the caller's SDP. */
bool edge_nailed_connect(struct edge_sip *e, struct edge_call *c)
{
    struct nailed *n = nailed_of(e, c->agent_id);
    char sdp[SDP_MAX];

    if (!edge_nailed_idle(e, c->agent_id))
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
void edge_nailed_on_event(struct edge_sip *e, struct nailed *n, nua_event_t event, int status,
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
            edge_call_note_dialog(&n->leg, sip, true);
            n->leg.answered_up = true;
            sd_log_info("nailed-up dialog open", "agent=%s dn=%s", n->agent_id, n->dn);
            if (n->ending)
                nailed_bye(n, DRAIN_REASON);
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
                edge_bye_remember(e, &n->leg, status, sip);
            edge_sip_load_changed(e);
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
