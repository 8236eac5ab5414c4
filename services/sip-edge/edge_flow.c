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
    char contact[]; /* the registered Contact URI */
};

struct edge_flows {
    struct flow *buckets[BUCKETS];
    size_t count, max;
};

static unsigned bucket_of(const char *contact)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (const unsigned char *p = (const unsigned char *)contact; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % BUCKETS;
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

int edge_flows_set(struct edge_flows *t, const char *contact, const char *hop, int64_t expires_ms,
                   int64_t now_ms)
{
    struct flow **at = &t->buckets[bucket_of(contact)], *f;
    size_t len = strlen(contact);

    if (strlen(hop) >= EDGE_FLOW_HOP_MAX)
        return -1;
    while (*at != NULL) {
        if (strcmp((*at)->contact, contact) == 0 || (*at)->expires_ms <= now_ms)
            drop(t, at);
        else
            at = &(*at)->next;
    }
    if (t->count >= t->max || (f = malloc(sizeof(*f) + len + 1)) == NULL)
        return -1;
    f->expires_ms = expires_ms;
    snprintf(f->hop, sizeof(f->hop), "%s", hop);
    memcpy(f->contact, contact, len + 1);
    f->next = t->buckets[bucket_of(contact)];
    t->buckets[bucket_of(contact)] = f;
    t->count++;
    return 0;
}

void edge_flows_remove(struct edge_flows *t, const char *contact)
{
    for (struct flow **at = &t->buckets[bucket_of(contact)]; *at != NULL; at = &(*at)->next) {
        if (strcmp((*at)->contact, contact) == 0) {
            drop(t, at);
            return;
        }
    }
}

const char *edge_flows_get(const struct edge_flows *t, const char *contact, int64_t now_ms)
{
    for (const struct flow *f = t->buckets[bucket_of(contact)]; f != NULL; f = f->next) {
        if (strcmp(f->contact, contact) == 0)
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
