/* edge_peers.h - the networks whose hosts may place calls through the edge
 * (SIPDRAIN_TRUSTED_PEERS: gateways and the load balancer; issue #14).
 *
 * A list of CIDR blocks, IPv4 and IPv6 ("127.0.0.0/8, 10.1.2.0/24,
 * fd00::/8"; a bare address is one host). Parsed once at start-up; asked
 * for every new request that is not REGISTER or OPTIONS. No I/O, no
 * malloc: a fixed table.
 */
#ifndef SIPDRAIN_EDGE_PEERS_H
#define SIPDRAIN_EDGE_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EDGE_PEERS_MAX 64

struct edge_net {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network byte order; v4 in the first 4 */
    int prefix;             /* bits */
};

struct edge_peers {
    size_t n;
    struct edge_net net[EDGE_PEERS_MAX];
};

/* Parses list into p. 0, or -1 with why (for the exit-2 message) naming
 * the entry that is wrong. An empty list trusts nobody. */
int edge_peers_parse(const char *list, struct edge_peers *p, char *why, size_t why_size);
/* Whether addr (family AF_INET: 4 bytes, AF_INET6: 16; an IPv4-mapped IPv6
 * address counts as its IPv4 one) is inside one of p's networks. */
bool edge_peers_trusted(const struct edge_peers *p, int family, const void *addr);

#endif
