/* edge_flood.c - see edge_flood.h. */
#include "edge_flood.h"

#include <string.h>
#include <sys/socket.h>

void edge_flood_init(struct edge_flood *f, const struct edge_flood_config *cfg)
{
    memset(f, 0, sizeof(*f));
    f->cfg = *cfg;
}

static size_t addr_len(int family)
{
    return family == AF_INET ? 4 : 16;
}

static bool banned(const struct edge_flood_source *s, int64_t now_ms)
{
    return s->banned_until_ms > now_ms;
}

/* FNV-1a over the address: where the source's probe run starts. */
static size_t home_of(int family, const unsigned char *addr)
{
    uint32_t h = 2166136261u ^ (uint32_t)family;

    for (size_t i = 0; i < addr_len(family); i++)
        h = (h ^ addr[i]) * 16777619u;
    return h % EDGE_FLOOD_SOURCES;
}

/* The source's slot within its probe run of EDGE_FLOOD_PROBE slots: its
 * own, or a new one (a free slot, else the one seen least recently that
 * is not banned, else NULL: every slot of the run is banned). A request
 * costs at most EDGE_FLOOD_PROBE comparisons, flood or not. */
static struct edge_flood_source *slot_of(struct edge_flood *f, int family, const void *addr,
                                         int64_t now_ms)
{
    struct edge_flood_source *free_slot = NULL, *oldest = NULL;
    size_t len = addr_len(family), home = home_of(family, addr);

    for (size_t k = 0; k < EDGE_FLOOD_PROBE; k++) {
        struct edge_flood_source *s = &f->src[(home + k) % EDGE_FLOOD_SOURCES];
        if (s->family == family && memcmp(s->addr, addr, len) == 0)
            return s;
        if (s->family == 0) {
            if (free_slot == NULL)
                free_slot = s;
        } else if (!banned(s, now_ms) && (oldest == NULL || s->seen_ms < oldest->seen_ms)) {
            oldest = s;
        }
    }
    if (free_slot == NULL)
        free_slot = oldest;
    if (free_slot == NULL)
        return NULL;
    memset(free_slot, 0, sizeof(*free_slot));
    free_slot->family = family;
    memcpy(free_slot->addr, addr, len);
    free_slot->tokens = f->cfg.burst;
    free_slot->tokens_at_ms = now_ms;
    free_slot->window_from_ms = now_ms;
    return free_slot;
}

static void ban(struct edge_flood *f, struct edge_flood_source *s, int64_t now_ms)
{
    s->banned_until_ms = now_ms + (int64_t)f->cfg.ban_s * 1000;
    s->failures = 0;
    s->window_from_ms = now_ms;
}

enum edge_flood_verdict edge_flood_request(struct edge_flood *f, int family, const void *addr,
                                           int64_t now_ms)
{
    struct edge_flood_source *s = slot_of(f, family, addr, now_ms);

    if (s == NULL)
        return EDGE_FLOOD_BANNED; /* a table of banned sources only: none is let in */
    s->seen_ms = now_ms;
    if (banned(s, now_ms))
        return EDGE_FLOOD_BANNED;
    if (s->banned_until_ms != 0) { /* a ban just over: a full bucket */
        s->banned_until_ms = 0;
        s->tokens = f->cfg.burst;
        s->tokens_at_ms = now_ms;
    }
    s->tokens += (double)(now_ms - s->tokens_at_ms) * f->cfg.rate / 1000.0;
    if (s->tokens > f->cfg.burst)
        s->tokens = f->cfg.burst;
    s->tokens_at_ms = now_ms;
    if (s->tokens < 1.0) {
        ban(f, s, now_ms);
        return EDGE_FLOOD_BANNED_NOW;
    }
    s->tokens -= 1.0;
    return EDGE_FLOOD_PASS;
}

bool edge_flood_auth_failed(struct edge_flood *f, int family, const void *addr, int64_t now_ms)
{
    struct edge_flood_source *s = slot_of(f, family, addr, now_ms);

    if (s == NULL || banned(s, now_ms))
        return false;
    s->seen_ms = now_ms;
    if (now_ms - s->window_from_ms > (int64_t)f->cfg.window_s * 1000) {
        s->window_from_ms = now_ms;
        s->failures = 0;
    }
    if (++s->failures < f->cfg.max_failures)
        return false;
    ban(f, s, now_ms);
    return true;
}

size_t edge_flood_banned(const struct edge_flood *f, int64_t now_ms)
{
    size_t n = 0;

    for (size_t i = 0; i < EDGE_FLOOD_SOURCES; i++)
        n += f->src[i].family != 0 && banned(&f->src[i], now_ms);
    return n;
}
