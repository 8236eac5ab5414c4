/* edge_auth.h - SIP digest authentication of agent phones (RFC 3261 §22,
 * RFC 7616 for the algorithms, RFC 8760 for SHA-256 in SIP): HA1 and
 * responses, nonces bound to the edge's secret, nonce counts.
 *
 * No I/O, no clock, no malloc: the secret, the time and the table come from
 * the caller (the SIP thread); libcrypto only computes hashes. What a
 * phone's credentials are (HA1 per realm and algorithm) lives in PostgreSQL
 * (table sip_credentials); the response is checked where the HA1 is read.
 *
 * A nonce is "<issued, 16 hex><serial, 8 hex>.<HMAC-SHA-256(secret,
 * issued and serial), 32 hex>": an edge can tell its own nonces and their
 * age without keeping one byte per challenge (a REGISTER flood gets
 * challenges, never state), and no two challenges carry the same nonce
 * (two phones challenged within one second would otherwise share one, and
 * the second one's first count would look like a replay). A nonce is
 * remembered only once a phone answers with it, with the highest nonce
 * count seen: a count that does not rise is a replay.
 */
#ifndef SIPDRAIN_EDGE_AUTH_H
#define SIPDRAIN_EDGE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum edge_auth_alg { EDGE_AUTH_MD5, EDGE_AUTH_SHA256, EDGE_AUTH_ALG_COUNT };

struct edge_auth;

#define EDGE_AUTH_HEX_MAX    65 /* a SHA-256 digest in hex, and its NUL */
#define EDGE_AUTH_NONCE_MAX  58 /* 16 + 8 + 1 + 32 hex, and its NUL */
#define EDGE_AUTH_SECRET_LEN 32
#define EDGE_AUTH_SEEN_MAX   8192 /* nonces answered within their lifetime */

/* "MD5", "SHA-256": as in the algorithm parameter and sip_credentials. */
const char *edge_auth_alg_name(enum edge_auth_alg alg);
/* The algorithm parameter of an Authorization (absent: MD5, RFC 2617);
 * -1 for anything else (the "-sess" variants included). */
int edge_auth_alg_parse(const char *s, enum edge_auth_alg *alg);

/* A list such as "SHA-256,MD5" (SIPDRAIN_SIP_AUTH_ALGORITHMS): the
 * algorithms challenges offer, in that order. 0 with *n set; -1 for an
 * empty list, an unknown name or one named twice. */
int edge_auth_algs_parse(const char *list, enum edge_auth_alg algs[EDGE_AUTH_ALG_COUNT], int *n);

/* HA1 = H(username ":" realm ":" password), lowercase hex. */
void edge_auth_ha1(enum edge_auth_alg alg, const char *user, const char *realm,
                   const char *password, char out[EDGE_AUTH_HEX_MAX]);
/* The expected response for qop=auth: H(HA1 ":" nonce ":" nc ":" cnonce
 * ":" qop ":" H(method ":" uri)). */
void edge_auth_response(enum edge_auth_alg alg, const char *ha1, const char *nonce, const char *nc,
                        const char *cnonce, const char *method, const char *uri,
                        char out[EDGE_AUTH_HEX_MAX]);
/* Compares two hex digests in time that does not depend on where they
 * differ; false when their lengths differ. */
bool edge_auth_equal(const char *a, const char *b);

/* A new nonce, issued at now_s (the next serial number of a's). */
void edge_auth_nonce(struct edge_auth *a, int64_t now_s, char out[EDGE_AUTH_NONCE_MAX]);

enum edge_nonce_verdict {
    EDGE_NONCE_OK,    /* ours, within its lifetime, count rising */
    EDGE_NONCE_STALE, /* ours but too old, replayed, or forgotten: challenge again, stale=true */
    EDGE_NONCE_BAD,   /* not ours (or not a nonce): challenge again, not stale */
};
const char *edge_nonce_verdict_name(enum edge_nonce_verdict v);

struct edge_auth_seen {
    char nonce[EDGE_AUTH_NONCE_MAX];
    int64_t issued_s;
    uint32_t nc; /* the highest count seen */
};

/* The nonces phones answered with, and the secret. Fixed size: when every
 * slot holds a nonce still within its lifetime, the oldest one is
 * forgotten and every nonce issued up to then counts as stale (a phone
 * just gets a new challenge), so a forgotten nonce can never be replayed. */
struct edge_auth {
    unsigned char secret[EDGE_AUTH_SECRET_LEN];
    int lifetime_s;
    uint32_t serial;          /* of the last nonce made */
    int64_t forgotten_upto_s; /* nonces issued at or before this are stale unless seen */
    struct edge_auth_seen seen[EDGE_AUTH_SEEN_MAX];
};

void edge_auth_init(struct edge_auth *a, const unsigned char secret[EDGE_AUTH_SECRET_LEN],
                    int lifetime_s);
/* Checks a nonce and its count (nc: the 8 hex digits of the header) at
 * now_s, and remembers the count when OK. */
enum edge_nonce_verdict edge_auth_check(struct edge_auth *a, const char *nonce, const char *nc,
                                        int64_t now_s);

#endif
