/* edge_register.c - REGISTER (stored by the bus thread, answered when it says so) and OPTIONS. */
#include "edge_sip_int.h"

static void refuse_register(struct edge_sip *e, nua_handle_t *nh, int status, const char *phrase,
                            int retry_after_s);

void edge_register_on_options(struct edge_sip *e, nua_handle_t *nh)
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
void edge_register_on_request(struct edge_sip *e, nua_handle_t *nh, const sip_t *sip)
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

void edge_register_on_done(struct edge_sip *e, const struct edge_msg *m)
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
