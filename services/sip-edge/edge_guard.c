/* edge_guard.c - what the edge refuses before sofia-sip keeps anything for
 * a request (the nta request filter of tools/sofia-sip/0003; issue #14):
 *
 *   in a dialog (To tag)           nta's dialogs decide (none: 481)
 *   REGISTER, OPTIONS              anyone: phones authenticate (edge_register.c),
 *                                  load balancers probe
 *   ACK, CANCEL                    nta's transactions decide
 *   anything else (INVITE, ...)    only from SIPDRAIN_TRUSTED_PEERS; else
 *                                  403, answered statelessly: no
 *                                  transaction, so the 403 is sent again
 *                                  only when the request is (no
 *                                  amplification), and nothing is kept
 *
 * Before all that, a source outside SIPDRAIN_TRUSTED_PEERS is held to the
 * flood limits (edge_flood.h: a request rate, failed authentications);
 * once banned, its requests are dropped unanswered until the ban ends.
 *
 * Refusals are counted (/metrics) and logged at most once a minute per
 * source address, with how many there were since; a ban is logged once.
 */
#include "edge_sip_int.h"

#include <sofia-sip/msg_addr.h>

#define LOG_EVERY_MS 60000

/* The source address of msg: family and 4 or 16 bytes; false if unknown. */
static bool source_of(msg_t *msg, int *family, unsigned char addr[16])
{
    su_addrinfo_t *ai = msg_addrinfo(msg);
    su_sockaddr_t const *su = ai != NULL ? (su_sockaddr_t const *)ai->ai_addr : NULL;

    if (su == NULL)
        return false;
    *family = su->su_family;
    if (su->su_family == AF_INET)
        memcpy(addr, &su->su_sin.sin_addr, 4);
    else if (su->su_family == AF_INET6)
        memcpy(addr, &su->su_sin6.sin6_addr, 16);
    else
        return false;
    return true;
}

/* Logs a refusal unless this source had a line within LOG_EVERY_MS; the
 * next line says how many went unlogged. */
static void log_refusal(struct edge_sip *e, int family, const unsigned char addr[16],
                        const char *method, const char *why)
{
    struct edge_guard_source *slot = NULL, *oldest = NULL;
    int64_t now = sd_mono_ms();
    size_t alen = family == AF_INET ? 4 : 16;
    char ip[64] = "?";

    for (size_t i = 0; i < EDGE_GUARD_SOURCES; i++) {
        struct edge_guard_source *s = &e->guard_sources[i];
        if (s->family == family && memcmp(s->addr, addr, alen) == 0) {
            slot = s;
            break;
        }
        if (oldest == NULL || s->logged_ms < oldest->logged_ms)
            oldest = s;
    }
    if (slot == NULL) {
        slot = oldest;
        memset(slot, 0, sizeof(*slot));
        slot->family = family;
        memcpy(slot->addr, addr, alen);
        slot->logged_ms = now - LOG_EVERY_MS;
    }
    if (now - slot->logged_ms < LOG_EVERY_MS) {
        slot->unlogged++;
        return;
    }
    inet_ntop(family, addr, ip, sizeof(ip));
    sd_log_warn("request refused", "from=%s method=%s why=\"%s\" unlogged_before=%lu", ip, method,
                why, slot->unlogged);
    slot->logged_ms = now;
    slot->unlogged = 0;
}

bool edge_guard_current_source(struct edge_sip *e, int *family, unsigned char addr[16])
{
    msg_t *msg = nua_current_request(e->nua);

    return msg != NULL && source_of(msg, family, addr);
}

/* A source was just banned: one line (the ban is the news, not each
 * request it drops). */
static void log_ban(struct edge_sip *e, int family, const unsigned char addr[16], const char *why)
{
    char ip[64] = "?";

    e->bans++;
    inet_ntop(family, addr, ip, sizeof(ip));
    sd_log_warn("source banned: its requests are dropped unanswered", "from=%s why=%s for_s=%d", ip,
                why, e->flood.cfg.ban_s);
}

void edge_guard_auth_failed(struct edge_sip *e, int family, const unsigned char addr[16])
{
    if (family == 0 || edge_peers_trusted(&e->cfg.trusted, family, addr))
        return;
    if (edge_flood_auth_failed(&e->flood, family, addr, sd_mono_ms()))
        log_ban(e, family, addr, "failed_authentications");
}

int edge_guard_filter(void *magic, msg_t *msg, sip_t const *sip, char const **phrase)
{
    struct edge_sip *e = magic;
    sip_method_t m = sip->sip_request->rq_method;
    unsigned char addr[16];
    int family;
    bool known = source_of(msg, &family, addr);

    if (known && edge_peers_trusted(&e->cfg.trusted, family, addr))
        return 0;
    if (known) {
        switch (edge_flood_request(&e->flood, family, addr, sd_mono_ms())) {
        case EDGE_FLOOD_BANNED_NOW:
            log_ban(e, family, addr, "request_rate");
            e->refused_flood++;
            return -1;
        case EDGE_FLOOD_BANNED:
            e->refused_flood++;
            return -1;
        case EDGE_FLOOD_PASS:
            break;
        }
    }
    if (sip->sip_to != NULL && sip->sip_to->a_tag != NULL)
        return 0;
    if (m == sip_method_register || m == sip_method_options || m == sip_method_ack ||
        m == sip_method_cancel)
        return 0;
    e->refused_untrusted++;
    if (known)
        log_refusal(e, family, addr, sip->sip_request->rq_method_name,
                    "not from SIPDRAIN_TRUSTED_PEERS");
    *phrase = "Forbidden";
    return 403;
}
