/* edge_flood.h - floods are bounded per source address (issue #14, point
 * 3; Kamailio's pike and a fail2ban rule in one):
 *
 *   requests   each source has a bucket of `burst` requests, refilled at
 *              `rate` a second; a request that finds it empty bans the
 *              source
 *   failures   `max_failures` failed authentications within `window_s`
 *              ban the source
 *   a ban      every request of the source is dropped, unanswered, for
 *              `ban_s` seconds (answers would feed the flood)
 *
 * Trusted peers (SIPDRAIN_TRUSTED_PEERS: gateways, the load balancer) are
 * not asked about: a load balancer sends every call of a site from one
 * address. A fixed hash table of sources: a source takes one of 16 slots
 * from its hash on; when they are taken, the one seen least recently that
 * is not banned makes room (a flood of spoofed addresses cannot push a
 * banned one out; when all 16 are banned, the newcomer counts as banned).
 * No I/O, no clock (now_ms comes in), no malloc.
 */
#ifndef SIPDRAIN_EDGE_FLOOD_H
#define SIPDRAIN_EDGE_FLOOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EDGE_FLOOD_SOURCES 4096
#define EDGE_FLOOD_PROBE   16 /* slots a source may take, from its hash on */

struct edge_flood_config {
    int rate;         /* requests a second, per source */
    int burst;        /* requests at once, per source */
    int max_failures; /* failed authentications within window_s: a ban */
    int window_s;
    int ban_s;
};

struct edge_flood_source {
    int family; /* 0 = a free slot */
    unsigned char addr[16];
    int64_t seen_ms;
    int64_t tokens_at_ms; /* when tokens was last topped up */
    double tokens;
    int64_t window_from_ms; /* the failures' window */
    int failures;
    int64_t banned_until_ms; /* 0 = not banned */
};

struct edge_flood {
    struct edge_flood_config cfg;
    struct edge_flood_source src[EDGE_FLOOD_SOURCES];
};

enum edge_flood_verdict {
    EDGE_FLOOD_PASS,
    EDGE_FLOOD_BANNED_NOW, /* this request began a ban: log it */
    EDGE_FLOOD_BANNED,     /* dropped, the ban goes on */
};

void edge_flood_init(struct edge_flood *f, const struct edge_flood_config *cfg);
/* A request from the source (family AF_INET: 4 bytes, AF_INET6: 16). */
enum edge_flood_verdict edge_flood_request(struct edge_flood *f, int family, const void *addr,
                                           int64_t now_ms);
/* A failed authentication of the source: true when it began a ban. */
bool edge_flood_auth_failed(struct edge_flood *f, int family, const void *addr, int64_t now_ms);
/* Sources banned at now_ms (/metrics). */
size_t edge_flood_banned(const struct edge_flood *f, int64_t now_ms);

#endif
