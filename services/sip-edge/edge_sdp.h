/* edge_sdp.h - the little SDP text handling the edge does (pure, no I/O).
 * The edge passes SDP through untouched, except where one dialog of its own
 * carries offers from several parties (a nailed-up dialog, the agent's leg
 * of an agent-originated call): there RFC 3264 §8 wants one origin for the
 * whole session, its version one up with every new offer, so the o= line
 * of what is relayed is replaced by the edge's. */
#ifndef SIPDRAIN_EDGE_SDP_H
#define SIPDRAIN_EDGE_SDP_H

#include <stdbool.h>
#include <stddef.h>

/* The origin the edge presents in one dialog (RFC 4566 o=): username
 * "sipdrain", session id, version, address 0.0.0.0. */
struct edge_sdp_origin {
    unsigned long sess_id;
    unsigned long version; /* of the last SDP sent in the dialog */
};

/* A body that can be SDP at all: "v=0" first, an o= line and, when
 * need_media, at least one m= line. len bytes of body, not terminated. */
bool edge_sdp_plausible(const char *body, size_t len, bool need_media);

/* An SDP session description without any media (RFC 3725 Flow IV's
 * "offer1, no media"), for origin o (o->version is used as is). */
int edge_sdp_no_media(const struct edge_sdp_origin *o, char *out, size_t size);

/* body (len bytes) with its o= line replaced by o's. bump: a new offer or
 * a changed answer, so the version goes one up first (stored in o); false
 * for an answer that repeats the last SDP (RFC 3264 §8: same version).
 * Line endings are kept. -1 when body has no o= line or out is too small;
 * out is then "" and o unchanged. */
int edge_sdp_reorigin(const char *body, size_t len, struct edge_sdp_origin *o, bool bump, char *out,
                      size_t size);

#endif
