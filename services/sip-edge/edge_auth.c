/* edge_auth.c - see edge_auth.h. */
#include "edge_auth.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define NONCE_MAC_HEX    32 /* 128 bits of the HMAC */
#define NONCE_FUTURE_S   5  /* a nonce "issued" later than now by more: not ours */
#define NONCE_ISSUE_HEX  16
#define NONCE_SERIAL_HEX 8
#define NONCE_HEAD_HEX   (NONCE_ISSUE_HEX + NONCE_SERIAL_HEX)

static const char *const alg_names[EDGE_AUTH_ALG_COUNT] = {"MD5", "SHA-256"};

const char *edge_auth_alg_name(enum edge_auth_alg alg)
{
    return alg < EDGE_AUTH_ALG_COUNT ? alg_names[alg] : "?";
}

int edge_auth_alg_parse(const char *s, enum edge_auth_alg *alg)
{
    if (s == NULL || s[0] == '\0') {
        *alg = EDGE_AUTH_MD5;
        return 0;
    }
    for (int i = 0; i < EDGE_AUTH_ALG_COUNT; i++) {
        if (strcasecmp(s, alg_names[i]) == 0) {
            *alg = (enum edge_auth_alg)i;
            return 0;
        }
    }
    return -1;
}

int edge_auth_algs_parse(const char *list, enum edge_auth_alg algs[EDGE_AUTH_ALG_COUNT], int *n)
{
    char name[16];
    enum edge_auth_alg alg;

    *n = 0;
    for (const char *p = list != NULL ? list : ""; *p != '\0';) {
        size_t len;
        p += strspn(p, ", ");
        len = strcspn(p, ", ");
        if (len == 0)
            break;
        if (len >= sizeof(name) || *n == EDGE_AUTH_ALG_COUNT)
            return -1;
        memcpy(name, p, len);
        name[len] = '\0';
        if (edge_auth_alg_parse(name, &alg) < 0)
            return -1;
        for (int i = 0; i < *n; i++) {
            if (algs[i] == alg)
                return -1;
        }
        algs[(*n)++] = alg;
        p += len;
    }
    return *n > 0 ? 0 : -1;
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* H(p[0] ":" p[1] ":" ... p[n-1]) in hex; "" if libcrypto fails (no
 * response then equals it: edge_auth_equal wants equal lengths). */
static void hash_joined(enum edge_auth_alg alg, const char *const *p, size_t n,
                        char out[EDGE_AUTH_HEX_MAX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL &&
             EVP_DigestInit_ex(ctx, alg == EDGE_AUTH_SHA256 ? EVP_sha256() : EVP_md5(), NULL);

    for (size_t i = 0; ok && i < n; i++) {
        if (i > 0)
            ok = EVP_DigestUpdate(ctx, ":", 1);
        if (ok)
            ok = EVP_DigestUpdate(ctx, p[i], strlen(p[i]));
    }
    if (ok)
        ok = EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    if (!ok || len * 2 >= EDGE_AUTH_HEX_MAX) {
        out[0] = '\0';
        return;
    }
    to_hex(md, len, out);
}

void edge_auth_ha1(enum edge_auth_alg alg, const char *user, const char *realm,
                   const char *password, char out[EDGE_AUTH_HEX_MAX])
{
    const char *p[3] = {user, realm, password};

    hash_joined(alg, p, 3, out);
}

void edge_auth_response(enum edge_auth_alg alg, const char *ha1, const char *nonce, const char *nc,
                        const char *cnonce, const char *method, const char *uri,
                        char out[EDGE_AUTH_HEX_MAX])
{
    char ha2[EDGE_AUTH_HEX_MAX];
    const char *a2[2] = {method, uri};
    const char *kd[6] = {ha1, nonce, nc, cnonce, "auth", ha2};

    hash_joined(alg, a2, 2, ha2);
    hash_joined(alg, kd, 6, out);
}

bool edge_auth_equal(const char *a, const char *b)
{
    size_t n = strlen(a);
    unsigned char diff = 0;

    if (n == 0 || n != strlen(b))
        return false;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

/* The MAC part of a nonce issued at issued_s with serial (hex,
 * NONCE_MAC_HEX). */
static void nonce_mac(const unsigned char secret[EDGE_AUTH_SECRET_LEN], int64_t issued_s,
                      uint32_t serial, char out[NONCE_MAC_HEX + 1])
{
    unsigned char msg[12], md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    for (int i = 0; i < 8; i++)
        msg[i] = (unsigned char)((uint64_t)issued_s >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        msg[8 + i] = (unsigned char)(serial >> (24 - 8 * i));
    if (HMAC(EVP_sha256(), secret, EDGE_AUTH_SECRET_LEN, msg, sizeof(msg), md, &len) == NULL ||
        len < NONCE_MAC_HEX / 2) {
        memset(out, 'x', NONCE_MAC_HEX); /* matches no hex digit: no nonce passes */
        out[NONCE_MAC_HEX] = '\0';
        return;
    }
    to_hex(md, NONCE_MAC_HEX / 2, out);
}

void edge_auth_nonce(struct edge_auth *a, int64_t now_s, char out[EDGE_AUTH_NONCE_MAX])
{
    char mac[NONCE_MAC_HEX + 1];
    uint32_t serial = ++a->serial;

    nonce_mac(a->secret, now_s, serial, mac);
    snprintf(out, EDGE_AUTH_NONCE_MAX, "%016llx%08lx.%s", (unsigned long long)now_s,
             (unsigned long)serial, mac);
}

const char *edge_nonce_verdict_name(enum edge_nonce_verdict v)
{
    switch (v) {
    case EDGE_NONCE_OK:
        return "ok";
    case EDGE_NONCE_STALE:
        return "stale";
    case EDGE_NONCE_BAD:
        return "bad";
    }
    return "?";
}

void edge_auth_init(struct edge_auth *a, const unsigned char secret[EDGE_AUTH_SECRET_LEN],
                    int lifetime_s)
{
    memset(a, 0, sizeof(*a));
    memcpy(a->secret, secret, EDGE_AUTH_SECRET_LEN);
    a->lifetime_s = lifetime_s;
    a->forgotten_upto_s = -1;
}

/* n hex digits of s as a number; -1 unless all n are hex digits. */
static int64_t hex_value(const char *s, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    return v > INT64_MAX ? -1 : (int64_t)v;
}

/* Remembers a nonce first answered now: a free slot or one whose nonce is
 * past its lifetime; else the oldest, and every nonce issued up to it is
 * stale from now on. */
static void seen_add(struct edge_auth *a, const char *nonce, int64_t issued_s, uint32_t nc,
                     int64_t now_s)
{
    struct edge_auth_seen *slot = NULL;

    for (size_t i = 0; i < EDGE_AUTH_SEEN_MAX; i++) {
        struct edge_auth_seen *s = &a->seen[i];
        if (s->nonce[0] == '\0' || now_s - s->issued_s > a->lifetime_s) {
            slot = s;
            break;
        }
        if (slot == NULL || s->issued_s < slot->issued_s)
            slot = s;
    }
    if (slot->nonce[0] != '\0' && now_s - slot->issued_s <= a->lifetime_s &&
        slot->issued_s > a->forgotten_upto_s)
        a->forgotten_upto_s = slot->issued_s;
    snprintf(slot->nonce, sizeof(slot->nonce), "%s", nonce);
    slot->issued_s = issued_s;
    slot->nc = nc;
}

enum edge_nonce_verdict edge_auth_check(struct edge_auth *a, const char *nonce, const char *nc,
                                        int64_t now_s)
{
    char mac[NONCE_MAC_HEX + 1];
    int64_t issued, serial, count;

    if (nonce == NULL || strlen(nonce) != NONCE_HEAD_HEX + 1 + NONCE_MAC_HEX ||
        nonce[NONCE_HEAD_HEX] != '.')
        return EDGE_NONCE_BAD;
    issued = hex_value(nonce, NONCE_ISSUE_HEX);
    serial = hex_value(nonce + NONCE_ISSUE_HEX, NONCE_SERIAL_HEX);
    if (issued < 0 || serial < 0)
        return EDGE_NONCE_BAD;
    nonce_mac(a->secret, issued, (uint32_t)serial, mac);
    if (!edge_auth_equal(mac, nonce + NONCE_HEAD_HEX + 1) || issued > now_s + NONCE_FUTURE_S)
        return EDGE_NONCE_BAD;
    if (nc == NULL || strlen(nc) != 8 || (count = hex_value(nc, 8)) <= 0)
        return EDGE_NONCE_BAD;
    if (now_s - issued > a->lifetime_s)
        return EDGE_NONCE_STALE;
    for (size_t i = 0; i < EDGE_AUTH_SEEN_MAX; i++) {
        struct edge_auth_seen *s = &a->seen[i];
        if (s->issued_s != issued || strcmp(s->nonce, nonce) != 0)
            continue;
        if ((uint32_t)count <= s->nc)
            return EDGE_NONCE_STALE; /* replayed */
        s->nc = (uint32_t)count;
        return EDGE_NONCE_OK;
    }
    if (issued <= a->forgotten_upto_s)
        return EDGE_NONCE_STALE;
    seen_add(a, nonce, issued, (uint32_t)count, now_s);
    return EDGE_NONCE_OK;
}
