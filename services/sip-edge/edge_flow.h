/* edge_flow.h - the connections agent phones registered over (TCP, TLS).
 *
 * A phone behind NAT or a firewall, or one that listens on no port at all,
 * cannot be reached by a new connection from the edge. So a call to a phone
 * that registered over TCP or TLS goes back over the connection its
 * REGISTER came in on (RFC 5626's "flow"; what SBCs call connection
 * reuse). The table maps the registered Contact to that connection's far
 * end as a URI ("sip:192.0.2.7:50312;transport=tls"); the call's NUA handle
 * takes it as its next hop (NUTAG_PROXY), for the INVITE, the ACK and the
 * BYE alike, and sofia-sip's tport sends over the open connection of that
 * peer. Only the edge that holds the connection has the flow: another edge
 * (or this one after the connection closed) sends to the Contact itself.
 *
 * Pure: strings in, strings out, no I/O; times are the caller's (ms). */
#ifndef SIPDRAIN_EDGE_FLOW_H
#define SIPDRAIN_EDGE_FLOW_H

#include <stddef.h>
#include <stdint.h>

#define EDGE_FLOW_HOP_MAX 80 /* "sip:[v6]:port;transport=tls" */

struct edge_flows;

/* A table for at most max flows; NULL when out of memory. */
struct edge_flows *edge_flows_new(size_t max);
void edge_flows_free(struct edge_flows *t);

/* Flows are per DN and Contact: a phone that registered some other DN's
 * Contact (its credentials are its own DN's) gets that DN's calls, never
 * the other phone's. */

/* dn's contact is reached over hop until expires_ms (a new REGISTER of the
 * same Contact replaces it). Expired flows are dropped on the way. 0, or -1
 * when the table is full or hop too long (calls then go to the Contact). */
int edge_flows_set(struct edge_flows *t, const char *dn, const char *contact, const char *hop,
                   int64_t expires_ms, int64_t now_ms);

/* dn's Contact un-registered (Expires: 0). */
void edge_flows_remove(struct edge_flows *t, const char *dn, const char *contact);

/* The hop of dn's contact, or NULL (none, or expired). Valid until the
 * table changes. */
const char *edge_flows_get(const struct edge_flows *t, const char *dn, const char *contact,
                           int64_t now_ms);

/* Live and expired flows held (/metrics, tests). */
size_t edge_flows_count(const struct edge_flows *t);

/* The hop URI of a connection: "sip:<ip>:<port>;transport=<tcp|tls>", with
 * the address in brackets for IPv6 (ip has none). 0, or -1 when too long. */
int edge_flow_hop(char *out, size_t size, const char *ip, unsigned port, int ipv6, int tls);

#endif
