/* edge_flow.c - see edge_flow.h. A chained hash table; each flow one
 * allocation (its Contact inline). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_flow.h"

#define BUCKETS 4096

struct flow {
    struct flow *next;
    int64_t expires_ms;
    char hop[EDGE_FLOW_HOP_MAX];
    char key[]; /* the DN, '\n', the registered Contact URI */
};

struct edge_flows {
    struct flow *buckets[BUCKETS];
    size_t count, max;
};

static uint32_t hash_in(uint32_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static unsigned bucket_of(const char *dn, const char *contact)
{
    /* FNV-1a of "<dn>\n<contact>" (neither holds a line end) */
    return hash_in(hash_in(hash_in(2166136261u, dn), "\n"), contact) % BUCKETS;
}

/* Is f the flow of dn's contact? */
static bool same(const struct flow *f, const char *dn, const char *contact)
{
    size_t n = strlen(dn);

    return strncmp(f->key, dn, n) == 0 && f->key[n] == '\n' && strcmp(f->key + n + 1, contact) == 0;
}

struct edge_flows *edge_flows_new(size_t max)
{
    struct edge_flows *t = calloc(1, sizeof(*t));

    if (t != NULL)
        t->max = max;
    return t;
}

void edge_flows_free(struct edge_flows *t)
{
    if (t == NULL)
        return;
    for (size_t b = 0; b < BUCKETS; b++) {
        for (struct flow *f = t->buckets[b], *next; f != NULL; f = next) {
            next = f->next;
            free(f);
        }
    }
    free(t);
}

/* Unlinks *at and frees it. */
static void drop(struct edge_flows *t, struct flow **at)
{
    struct flow *f = *at;

    *at = f->next;
    free(f);
    t->count--;
}

int edge_flows_set(struct edge_flows *t, const char *dn, const char *contact, const char *hop,
                   int64_t expires_ms, int64_t now_ms)
{
    unsigned b = bucket_of(dn, contact);
    struct flow **at = &t->buckets[b], *f;
    size_t dn_len = strlen(dn), len = strlen(contact);

    if (strlen(hop) >= EDGE_FLOW_HOP_MAX || strchr(dn, '\n') != NULL)
        return -1;
    while (*at != NULL) {
        if (same(*at, dn, contact) || (*at)->expires_ms <= now_ms)
            drop(t, at);
        else
            at = &(*at)->next;
    }
    if (t->count >= t->max || (f = malloc(sizeof(*f) + dn_len + 1 + len + 1)) == NULL)
        return -1;
    f->expires_ms = expires_ms;
    snprintf(f->hop, sizeof(f->hop), "%s", hop);
    memcpy(f->key, dn, dn_len);
    f->key[dn_len] = '\n';
    memcpy(f->key + dn_len + 1, contact, len + 1);
    f->next = t->buckets[b];
    t->buckets[b] = f;
    t->count++;
    return 0;
}

void edge_flows_remove(struct edge_flows *t, const char *dn, const char *contact)
{
    for (struct flow **at = &t->buckets[bucket_of(dn, contact)]; *at != NULL; at = &(*at)->next) {
        if (same(*at, dn, contact)) {
            drop(t, at);
            return;
        }
    }
}

const char *edge_flows_get(const struct edge_flows *t, const char *dn, const char *contact,
                           int64_t now_ms)
{
    for (const struct flow *f = t->buckets[bucket_of(dn, contact)]; f != NULL; f = f->next) {
        if (same(f, dn, contact))
            return f->expires_ms > now_ms ? f->hop : NULL;
    }
    return NULL;
}

size_t edge_flows_count(const struct edge_flows *t)
{
    return t->count;
}

int edge_flow_hop(char *out, size_t size, const char *ip, unsigned port, int ipv6, int tls)
{
    int n = snprintf(out, size, ipv6 ? "sip:[%s]:%u;transport=%s" : "sip:%s:%u;transport=%s", ip,
                     port, tls ? "tls" : "tcp");

    return n > 0 && (size_t)n < size ? 0 : -1;
}
