/* edge_register.c - REGISTER (digest-authenticated; checked and stored by
 * the bus thread, answered when it says so) and OPTIONS.
 *
 * A REGISTER's way (issue #14):
 *   no Authorization for our realm  401, two challenges: SHA-256 then MD5
 *                                   (RFC 8760's order), qop="auth", a
 *                                   fresh nonce; nothing is kept
 *   a nonce not ours, or malformed  401, a new challenge
 *   a nonce too old or replayed     401, a new challenge with stale=true
 *   username other than the DN      403
 *   nonce fine                      the bus thread reads the DN's HA1 and
 *                                   checks the response: 403 when the DN has
 *                                   no credentials or the response is
 *                                   wrong (nothing stored), else stored, 200
 * Agent phones place no calls through the edge (agent-originated calls are
 * started by the edge itself, on call.originate), so REGISTER is the one
 * request a phone authenticates.
 */
#include "edge_sip_int.h"

#include <sofia-sip/msg_addr.h>

static void refuse_register(struct edge_sip *e, nua_handle_t *nh, int status, const char *phrase,
                            int retry_after_s);

const char *const edge_auth_outcome_names[EDGE_AUTH_OUTCOME_COUNT] = {
    "challenged", "stale", "accepted", "bad_password", "no_credentials", "wrong_user", "malformed",
};

/* "ip:port" of where the current request came from ("?" when unknown). */
static void request_source(struct edge_sip *e, char *out, size_t size)
{
    msg_t *msg = nua_current_request(e->nua);
    su_addrinfo_t *ai = msg != NULL ? msg_addrinfo(msg) : NULL;
    su_sockaddr_t const *su = ai != NULL ? (su_sockaddr_t const *)ai->ai_addr : NULL;
    char ip[64];

    snprintf(out, size, "?");
    if (su == NULL || su_inet_ntop(su->su_family, SU_ADDR(su), ip, sizeof(ip)) == NULL)
        return;
    snprintf(out, size, su->su_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, ntohs(su->su_port));
}

/* The flow of the current request (edge_flow.h): its connection's far
 * end as a hop URI, or "" when it came over UDP. TCP and TLS both read as
 * TCP at the socket; the Via says which (a client that lies about it only
 * makes calls to itself fail). */
static void request_flow(struct edge_sip *e, const sip_t *sip, char *out, size_t size)
{
    msg_t *msg = nua_current_request(e->nua);
    su_addrinfo_t *ai = msg != NULL ? msg_addrinfo(msg) : NULL;
    su_sockaddr_t const *su = ai != NULL ? (su_sockaddr_t const *)ai->ai_addr : NULL;
    const char *proto = sip->sip_via != NULL ? sip->sip_via->v_protocol : NULL;
    char ip[64];

    out[0] = '\0';
    if (su == NULL || ai->ai_protocol != IPPROTO_TCP ||
        su_inet_ntop(su->su_family, SU_ADDR(su), ip, sizeof(ip)) == NULL)
        return;
    if (edge_flow_hop(out, size, ip, ntohs(su->su_port), su->su_family == AF_INET6,
                      proto != NULL && strcasecmp(proto, "SIP/2.0/TLS") == 0) < 0)
        out[0] = '\0';
}

nua_handle_t *edge_register_phone_handle(struct edge_sip *e, void *magic, const char *dn,
                                         const char *contact, const char *to, const char *from)
{
    const char *hop = edge_flows_get(e->flows, dn, contact, sd_mono_ms());

    nua_handle_t *nh = nua_handle(e->nua, magic, NUTAG_URL(contact), SIPTAG_TO_STR(to),
                                  TAG_IF(from != NULL, SIPTAG_FROM_STR(from)), TAG_END());

    /* a handle's parameter (nua_handle's tags are only its requests'
     * headers): the next hop of every request of its dialog, ACK included */
    if (nh != NULL && hop != NULL)
        nua_set_hparams(nh, NUTAG_PROXY(hop), TAG_END());
    return nh;
}

/* A parameter of a Digest credential, unquoted into out; -1 when absent,
 * empty or too long. */
static int auth_param(const sip_authorization_t *au, const char *name, char *out, size_t size)
{
    char key[32];
    const char *v;
    size_t len;

    snprintf(key, sizeof(key), "%s=", name);
    v = msg_params_find(au->au_params, key);
    if (v == NULL)
        return -1;
    len = strlen(v);
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        v++;
        len -= 2;
    }
    if (len == 0 || len >= size || memchr(v, '"', len) != NULL || memchr(v, '\\', len) != NULL)
        return -1;
    memcpy(out, v, len);
    out[len] = '\0';
    return 0;
}

static void count_auth(struct edge_sip *e, enum edge_auth_outcome o)
{
    e->auth_outcomes[o]++;
}

/* 401 with a fresh nonce, one challenge per algorithm offered, in the
 * order configured (RFC 8760 §2.4: the most preferred first; by default
 * SHA-256, then MD5 for phones that know no better). */
static void challenge(struct edge_sip *e, nua_handle_t *nh, bool stale)
{
    char nonce[EDGE_AUTH_NONCE_MAX], ch[EDGE_AUTH_ALG_COUNT][512];

    edge_auth_nonce(&e->auth, sd_wall_ms() / 1000, nonce);
    for (int i = 0; i < EDGE_AUTH_ALG_COUNT; i++)
        snprintf(ch[i], sizeof(ch[i]),
                 "Digest realm=\"%s\", nonce=\"%s\", algorithm=%s, qop=\"auth\"%s", e->cfg.realm,
                 nonce, edge_auth_alg_name(e->cfg.algs[i < e->cfg.n_algs ? i : 0]),
                 stale ? ", stale=true" : "");
    count_auth(e, stale ? EDGE_AUTH_STALE : EDGE_AUTH_CHALLENGED);
    nua_respond(nh, SIP_401_UNAUTHORIZED, NUTAG_WITH_THIS(e->nua),
                SIPTAG_WWW_AUTHENTICATE_STR(ch[0]),
                TAG_IF(e->cfg.n_algs > 1, SIPTAG_WWW_AUTHENTICATE_STR(ch[1])), TAG_END());
    nua_handle_destroy(nh);
}

static bool offered(const struct edge_sip *e, enum edge_auth_alg alg)
{
    for (int i = 0; i < e->cfg.n_algs; i++) {
        if (e->cfg.algs[i] == alg)
            return true;
    }
    return false;
}

/* The Digest credentials for our realm, or NULL. */
static const sip_authorization_t *our_credentials(const struct edge_sip *e, const sip_t *sip)
{
    char realm[256];

    for (const sip_authorization_t *au = sip->sip_authorization; au != NULL; au = au->au_next) {
        if (au->au_scheme != NULL && strcasecmp(au->au_scheme, "Digest") == 0 &&
            auth_param(au, "realm", realm, sizeof(realm)) == 0 && strcmp(realm, e->cfg.realm) == 0)
            return au;
    }
    return NULL;
}

/* Checks what the SIP thread can check of a REGISTER's credentials (the
 * nonce, its count, the username); fills auth for the bus thread. true:
 * go on; false: answered here. */
static bool authenticate(struct edge_sip *e, nua_handle_t *nh, const sip_t *sip, const char *dn,
                         json_t **auth)
{
    const sip_authorization_t *au = our_credentials(e, sip);
    char user[72], nonce[EDGE_AUTH_NONCE_MAX + 8], nc[16], cnonce[136], uri[520], response[72],
        qop[16], alg_text[24], from[80];
    enum edge_auth_alg alg;
    enum edge_nonce_verdict v;

    if (au == NULL) {
        challenge(e, nh, false);
        return false;
    }
    request_source(e, from, sizeof(from));
    if (auth_param(au, "algorithm", alg_text, sizeof(alg_text)) < 0)
        alg_text[0] = '\0';
    if (auth_param(au, "username", user, sizeof(user)) < 0 ||
        auth_param(au, "nonce", nonce, sizeof(nonce)) < 0 ||
        auth_param(au, "uri", uri, sizeof(uri)) < 0 ||
        auth_param(au, "response", response, sizeof(response)) < 0 ||
        auth_param(au, "qop", qop, sizeof(qop)) < 0 || strcasecmp(qop, "auth") != 0 ||
        auth_param(au, "nc", nc, sizeof(nc)) < 0 ||
        auth_param(au, "cnonce", cnonce, sizeof(cnonce)) < 0 ||
        edge_auth_alg_parse(alg_text[0] ? alg_text : NULL, &alg) < 0 || !offered(e, alg)) {
        /* qop=auth is required (RFC 2069's digest without it has no
         * nonce count: no replay check); an algorithm not offered is
         * refused like any other malformed answer */
        sd_log_info("REGISTER credentials malformed: challenged again", "dn=%s from=%s", dn, from);
        count_auth(e, EDGE_AUTH_MALFORMED);
        challenge(e, nh, false);
        return false;
    }
    v = edge_auth_check(&e->auth, nonce, nc, sd_wall_ms() / 1000);
    if (v != EDGE_NONCE_OK) {
        if (v == EDGE_NONCE_BAD)
            sd_log_info("REGISTER nonce not ours: challenged again", "dn=%s from=%s", dn, from);
        challenge(e, nh, v == EDGE_NONCE_STALE);
        return false;
    }
    if (strcmp(user, dn) != 0) {
        int family = 0;
        unsigned char addr[16];
        sd_log_info("REGISTER refused", "dn=%s from=%s why=\"username is not the DN\"", dn, from);
        count_auth(e, EDGE_AUTH_WRONG_USER);
        if (edge_guard_current_source(e, &family, addr))
            edge_guard_auth_failed(e, family, addr);
        refuse_register(e, nh, 403, "Forbidden", 0);
        return false;
    }
    *auth = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "algorithm", edge_auth_alg_name(alg),
                      "nonce", nonce, "nc", nc, "cnonce", cnonce, "uri", uri, "response", response);
    if (*auth == NULL) { /* out of memory: answered, never left hanging */
        refuse_register(e, nh, 500, "Out of memory", 0);
        return false;
    }
    return true;
}

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
    json_t *auth = NULL;
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
    if (!authenticate(e, nh, sip, dn, &auth))
        return;
    if (m->m_expires != NULL)
        expires = atoi(m->m_expires);
    else if (sip->sip_expires != NULL)
        expires = (int)sip->sip_expires->ex_delta;
    if (expires > 0 && expires < REGISTER_MIN)
        expires = REGISTER_MIN;
    for (slot = 0; slot < REGISTER_MAX && e->registers[slot] != NULL; slot++)
        ;
    if (slot == REGISTER_MAX) {
        json_decref(auth);
        refuse_register(e, nh, 503, "Busy, retry", 5);
        return;
    }
    pr = calloc(1, sizeof(*pr));
    uri = url_as_string(e->home, m->m_url);
    if (pr == NULL || uri == NULL) {
        free(pr);
        su_free(e->home, uri);
        json_decref(auth);
        refuse_register(e, nh, 500, "Out of memory", 0);
        return;
    }
    pr->token = ++e->next_token;
    pr->nh = nh;
    pr->expires_s = expires;
    snprintf(pr->dn, sizeof(pr->dn), "%s", dn);
    request_source(e, pr->from, sizeof(pr->from));
    if (!edge_guard_current_source(e, &pr->from_family, pr->from_addr))
        pr->from_family = 0;
    request_flow(e, sip, pr->hop, sizeof(pr->hop));
    /* over TCP or TLS the phone's calls come back over its connection,
     * which sofia-sip closes after 30 idle minutes (nta's TPTAG_IDLE): a
     * phone that registered for longer must refresh before that */
    if (pr->hop[0] != '\0' && expires > FLOW_MAX_EXPIRES)
        pr->expires_s = expires = FLOW_MAX_EXPIRES;
    snprintf(pr->contact, sizeof(pr->contact), "%s", uri);
    nua_save_event(e->nua, pr->saved);
    e->registers[slot] = pr;
    edge_queue_put(e->to_bus, EDGE_MSG_REGISTER, pr->token,
                   json_pack("{s:s, s:s, s:i, s:o}", "dn", dn, "contact", uri, "expires_s", expires,
                             "auth", auth));
    su_free(e->home, uri);
}

void edge_register_on_done(struct edge_sip *e, const struct edge_msg *m)
{
    char contact[600];

    for (int i = 0; i < REGISTER_MAX; i++) {
        struct pending_register *pr = e->registers[i];
        if (pr == NULL || pr->token != m->token)
            continue;
        const char *verdict = json_string_value(json_object_get(m->data, "verdict"));
        if (verdict != NULL && !strcmp(verdict, "ok")) {
            snprintf(contact, sizeof(contact), "<%s>;expires=%d", pr->contact, pr->expires_s);
            nua_respond(pr->nh, SIP_200_OK, NUTAG_WITH_SAVED(pr->saved),
                        TAG_IF(pr->expires_s > 0, SIPTAG_CONTACT_STR(contact)), TAG_END());
            count_auth(e, EDGE_AUTH_ACCEPTED);
            if (pr->expires_s > 0)
                e->registrations++;
            /* calls to this Contact: over this connection, or (UDP, or
             * un-registered) straight to it */
            if (pr->hop[0] != '\0' && pr->expires_s > 0) {
                if (edge_flows_set(e->flows, pr->dn, pr->contact, pr->hop,
                                   sd_mono_ms() + (int64_t)pr->expires_s * 1000, sd_mono_ms()) < 0)
                    sd_log_warn("phone connection not remembered: calls go to its Contact",
                                "dn=%s contact=%s flows=%zu", pr->dn, pr->contact,
                                edge_flows_count(e->flows));
            } else {
                edge_flows_remove(e->flows, pr->dn, pr->contact);
            }
        } else if (verdict != NULL &&
                   (!strcmp(verdict, "bad_password") || !strcmp(verdict, "no_credentials"))) {
            /* the same answer for both: a prober learns nothing of which
             * DNs exist */
            bool none = !strcmp(verdict, "no_credentials");
            sd_log_info("REGISTER refused", "dn=%s from=%s why=%s", pr->dn, pr->from, verdict);
            count_auth(e, none ? EDGE_AUTH_NO_CREDENTIALS : EDGE_AUTH_BAD_PASSWORD);
            edge_guard_auth_failed(e, pr->from_family, pr->from_addr);
            nua_respond(pr->nh, SIP_403_FORBIDDEN, NUTAG_WITH_SAVED(pr->saved), TAG_END());
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
