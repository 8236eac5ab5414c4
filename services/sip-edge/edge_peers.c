/* edge_peers.c - see edge_peers.h. */
#include "edge_peers.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* One "addr[/prefix]" entry of len bytes at s into n. */
static int parse_entry(const char *s, size_t len, struct edge_net *n)
{
    char text[64], *slash, *end;
    long prefix;

    if (len == 0 || len >= sizeof(text))
        return -1;
    memcpy(text, s, len);
    text[len] = '\0';
    slash = strchr(text, '/');
    if (slash != NULL)
        *slash = '\0';
    memset(n, 0, sizeof(*n));
    if (inet_pton(AF_INET, text, n->addr) == 1) {
        n->family = AF_INET;
        n->prefix = 32;
    } else if (inet_pton(AF_INET6, text, n->addr) == 1) {
        n->family = AF_INET6;
        n->prefix = 128;
    } else {
        return -1;
    }
    if (slash != NULL) {
        if (slash[1] < '0' || slash[1] > '9')
            return -1;
        prefix = strtol(slash + 1, &end, 10);
        if (*end != '\0' || prefix < 0 || prefix > n->prefix)
            return -1;
        n->prefix = (int)prefix;
    }
    return 0;
}

int edge_peers_parse(const char *list, struct edge_peers *p, char *why, size_t why_size)
{
    memset(p, 0, sizeof(*p));
    for (const char *s = list != NULL ? list : ""; *s != '\0';) {
        size_t len;
        s += strspn(s, ", \t");
        len = strcspn(s, ", \t");
        if (len == 0)
            break;
        if (p->n == EDGE_PEERS_MAX) {
            snprintf(why, why_size, "more than %d networks", EDGE_PEERS_MAX);
            return -1;
        }
        if (parse_entry(s, len, &p->net[p->n]) < 0) {
            snprintf(why, why_size,
                     "'%.*s' is not an address or network (e.g. 10.0.0.0/8, 192.0.2.7,"
                     " fd00::/8)",
                     (int)(len > 60 ? 60 : len), s);
            return -1;
        }
        p->n++;
        s += len;
    }
    return 0;
}

/* Whether the first bits of a and b are equal. */
static bool same_prefix(const unsigned char *a, const unsigned char *b, int bits)
{
    int bytes = bits / 8, rest = bits % 8;

    if (memcmp(a, b, (size_t)bytes) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((a[bytes] ^ b[bytes]) & (unsigned char)(0xff << (8 - rest))) == 0;
}

bool edge_peers_trusted(const struct edge_peers *p, int family, const void *addr)
{
    static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const unsigned char *a = addr;

    if (family == AF_INET6 && memcmp(a, v4_mapped, sizeof(v4_mapped)) == 0) {
        family = AF_INET;
        a += 12;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (p->net[i].family == family && same_prefix(p->net[i].addr, a, p->net[i].prefix))
            return true;
    }
    return false;
}
