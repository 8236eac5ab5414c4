/* edge_fast.c - see edge_fast.h. */
#include "edge_fast.h"

#include <stdbool.h>
#include <string.h>

#define FAST_MAX_VIAS   16
#define FAST_TAG_PREFIX "sdf" /* this path's To tags: sdf + 16 hex digits */

struct span {
    const char *p;
    size_t n;
};

struct request {
    bool invite; /* else ACK */
    struct span via[FAST_MAX_VIAS];
    size_t nvia;
    struct span from, to, call_id, cseq;
    int nfrom, nto, ncall_id, ncseq;
};

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool same_ci(struct span s, const char *word)
{
    size_t n = strlen(word);

    if (s.n != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (lower(s.p[i]) != word[i])
            return false;
    }
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static struct span trim(const char *p, const char *e)
{
    while (p < e && is_space(*p))
        p++;
    while (e > p && is_space(e[-1]))
        e--;
    return (struct span){p, (size_t)(e - p)};
}

static bool starts(const char *p, size_t n, const char *word)
{
    size_t w = strlen(word);

    return n >= w && memcmp(p, word, w) == 0;
}

/* The first CRLF in [p, e), or NULL (buffers are not NUL-terminated:
 * no str* function may look at them). */
static const char *find_crlf(const char *p, const char *e)
{
    while (p < e) {
        const char *cr = memchr(p, '\r', (size_t)(e - p));
        if (cr == NULL || cr + 1 >= e)
            return NULL;
        if (cr[1] == '\n')
            return cr;
        p = cr + 1;
    }
    return NULL;
}

/* The request line and the headers this path copies; false when anything
 * about them is not the plain case. */
static bool parse(const char *buf, size_t len, struct request *rq)
{
    const char *end = NULL, *p, *eol;

    memset(rq, 0, sizeof(*rq));
    for (size_t i = 0; i + 3 < len; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            end = buf + i + 2; /* the head, up to and with its last line's CRLF */
            break;
        }
    }
    if (end == NULL || memchr(buf, '\0', (size_t)(end - buf)) != NULL)
        return false;
    eol = find_crlf(buf, end);
    if (eol == NULL)
        return false;
    if (starts(buf, (size_t)(eol - buf), "INVITE "))
        rq->invite = true;
    else if (!starts(buf, (size_t)(eol - buf), "ACK "))
        return false;
    if (eol - buf < 8 || memcmp(eol - 8, " SIP/2.0", 8) != 0)
        return false;
    for (p = eol + 2; p < end; p = eol + 2) {
        const char *colon;
        struct span name, value;

        eol = find_crlf(p, end);
        if (eol == NULL || memchr(p, '\n', (size_t)(eol - p)) != NULL ||
            memchr(p, '\r', (size_t)(eol - p)) != NULL)
            return false;
        if (eol == p)
            break;
        if (is_space(*p))
            return false; /* a folded line: the stack unfolds it */
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL)
            return false;
        name = trim(p, colon);
        value = trim(colon + 1, eol);
        if (same_ci(name, "via") || same_ci(name, "v")) {
            if (rq->nvia == FAST_MAX_VIAS)
                return false;
            rq->via[rq->nvia++] = value;
        } else if (same_ci(name, "from") || same_ci(name, "f")) {
            rq->from = value;
            rq->nfrom++;
        } else if (same_ci(name, "to") || same_ci(name, "t")) {
            rq->to = value;
            rq->nto++;
        } else if (same_ci(name, "call-id") || same_ci(name, "i")) {
            rq->call_id = value;
            rq->ncall_id++;
        } else if (same_ci(name, "cseq")) {
            rq->cseq = value;
            rq->ncseq++;
        }
    }
    return rq->nvia > 0 && rq->nfrom == 1 && rq->nto == 1 && rq->ncall_id == 1 && rq->ncseq == 1 &&
           rq->call_id.n > 0;
}

/* Where a name-addr's header parameters start: after its <...> when it
 * has one, after the URI otherwise (a quoted display name is skipped);
 * NULL when it does not parse. */
static const char *header_params(struct span v)
{
    const char *p = v.p, *e = v.p + v.n;

    for (; p < e; p++) {
        if (*p == '"') {
            for (p++; p < e && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < e)
                    p++;
            }
            if (p == e)
                return NULL;
        } else if (*p == '<') {
            const char *gt = memchr(p, '>', (size_t)(e - p));
            return gt != NULL ? gt + 1 : NULL;
        }
    }
    /* no <...>: the URI runs up to the first ';' (its parameters would be
     * the header's) */
    p = memchr(v.p, ';', v.n);
    return p != NULL ? p : e;
}

/* The value of header parameter name in v (e.g. a To's or From's tag);
 * false when there is none (or v does not parse). */
static bool header_param(struct span v, const char *name, struct span *out)
{
    const char *p = header_params(v), *e = v.p + v.n;

    if (p == NULL)
        return false;
    while (p < e) {
        const char *semi, *eq;
        struct span n;

        if (*p != ';') {
            if (is_space(*p)) {
                p++;
                continue;
            }
            return false;
        }
        p++;
        semi = memchr(p, ';', (size_t)(e - p));
        if (semi == NULL)
            semi = e;
        eq = memchr(p, '=', (size_t)(semi - p));
        n = trim(p, eq != NULL ? eq : semi);
        if (same_ci(n, name)) {
            *out = eq != NULL ? trim(eq + 1, semi) : (struct span){semi, 0};
            return out->n > 0;
        }
        p = semi;
    }
    return false;
}

/* The top Via's first value: "SIP/2.0/UDP host[:port];params". */
struct via {
    struct span value;  /* the whole first value */
    struct span host;   /* sent-by host (brackets of an IPv6 address kept) */
    int port;           /* sent-by port, 0 when none */
    struct span branch; /* n == 0: none */
    bool rport, rport_valued, received;
    const char *rport_end; /* just after "rport" when it has no value */
};

static bool top_via(struct span line, struct via *v)
{
    const char *p = line.p, *e, *comma;

    memset(v, 0, sizeof(*v));
    if (memchr(line.p, '"', line.n) != NULL)
        return false;
    comma = memchr(line.p, ',', line.n);
    v->value = trim(line.p, comma != NULL ? comma : line.p + line.n);
    p = v->value.p;
    e = v->value.p + v->value.n;
    if ((size_t)(e - p) < 11 || lower(p[0]) != 's' || lower(p[1]) != 'i' || lower(p[2]) != 'p')
        return false;
    {
        struct span proto = {p, 11};
        if (!same_ci(proto, "sip/2.0/udp"))
            return false;
    }
    p += 11;
    if (p == e || !is_space(*p))
        return false;
    while (p < e && is_space(*p))
        p++;
    /* sent-by */
    {
        const char *s = p;
        if (p < e && *p == '[') {
            const char *rb = memchr(p, ']', (size_t)(e - p));
            if (rb == NULL)
                return false;
            p = rb + 1;
        } else {
            while (p < e && *p != ':' && *p != ';' && !is_space(*p))
                p++;
        }
        v->host = (struct span){s, (size_t)(p - s)};
        if (v->host.n == 0)
            return false;
        if (p < e && *p == ':') {
            int port = 0;
            for (p++; p < e && *p >= '0' && *p <= '9'; p++) {
                port = port * 10 + (*p - '0');
                if (port > 65535)
                    return false;
            }
            if (port == 0)
                return false;
            v->port = port;
        }
    }
    /* parameters */
    while (p < e) {
        const char *semi, *eq;
        struct span n;

        if (is_space(*p)) {
            p++;
            continue;
        }
        if (*p != ';')
            return false;
        p++;
        semi = memchr(p, ';', (size_t)(e - p));
        if (semi == NULL)
            semi = e;
        eq = memchr(p, '=', (size_t)(semi - p));
        n = trim(p, eq != NULL ? eq : semi);
        if (same_ci(n, "branch") && eq != NULL) {
            v->branch = trim(eq + 1, semi);
        } else if (same_ci(n, "rport")) {
            v->rport = true;
            v->rport_valued = eq != NULL;
            if (eq == NULL)
                v->rport_end = n.p + n.n;
        } else if (same_ci(n, "received")) {
            v->received = true;
        }
        p = semi;
    }
    return v->branch.n > 0;
}

/* FNV-1a, 64 bits, over what identifies the request's transaction. */
static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h ^ 0xff; /* a separator between fields */
}

/* This path's To tag for the request: "sdf" + 16 hex digits. */
static void make_tag(char tag[20], uint64_t key, struct span call_id, struct span from_tag,
                     struct span branch)
{
    uint64_t h = 14695981039346656037ULL ^ key;

    h = fnv(h, call_id.p, call_id.n);
    h = fnv(h, from_tag.p, from_tag.n);
    h = fnv(h, branch.p, branch.n);
    memcpy(tag, FAST_TAG_PREFIX, 3);
    for (int i = 15; i >= 0; i--, h >>= 4)
        tag[3 + i] = "0123456789abcdef"[h & 15];
    tag[19] = '\0';
}

struct out {
    char *p;
    size_t size, n;
    bool full;
};

static void put(struct out *o, const char *p, size_t n)
{
    if (o->full || n >= o->size - o->n) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->n, p, n);
    o->n += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_span(struct out *o, struct span s)
{
    put(o, s.p, s.n);
}

/* v in decimal (no printf on this path: it is a refusal's largest cost
 * after the system calls) */
static void put_int(struct out *o, int v)
{
    char d[12];
    size_t i = sizeof(d);
    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;

    do
        d[--i] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        d[--i] = '-';
    put(o, d + i, sizeof(d) - i);
}

/* CSeq "<number> <method>" for method (INVITE, ACK). */
void edge_fast_ip4(char ip[16], const unsigned char addr[4])
{
    for (int i = 0; i < 4; i++) {
        unsigned v = addr[i];
        if (v >= 100)
            *ip++ = (char)('0' + v / 100);
        if (v >= 10)
            *ip++ = (char)('0' + v / 10 % 10);
        *ip++ = (char)('0' + v % 10);
        *ip++ = i < 3 ? '.' : '\0';
    }
}

static bool cseq_is(struct span cseq, const char *method)
{
    const char *p = cseq.p, *e = cseq.p + cseq.n;

    if (p == e || *p < '0' || *p > '9')
        return false;
    while (p < e && *p >= '0' && *p <= '9')
        p++;
    if (p == e || !is_space(*p))
        return false;
    while (p < e && is_space(*p))
        p++;
    return (size_t)(e - p) == strlen(method) && memcmp(p, method, (size_t)(e - p)) == 0;
}

enum edge_fast_verdict edge_fast_check(const char *buf, size_t len,
                                       const struct edge_fast_refusal *r, char *out, size_t size,
                                       size_t *out_len)
{
    struct request rq;
    struct via v;
    struct span from_tag, to_tag;
    char tag[20];
    struct out o = {out, size, 0, false};

    if (buf == NULL || len < 32 || !parse(buf, len, &rq) || !top_via(rq.via[0], &v) ||
        !header_param(rq.from, "tag", &from_tag))
        return EDGE_FAST_PASS;
    make_tag(tag, r->tag_key, rq.call_id, from_tag, v.branch);
    if (!rq.invite) {
        /* the ACK of a refusal from here: its To tag is the one made for it */
        if (cseq_is(rq.cseq, "ACK") && header_param(rq.to, "tag", &to_tag) &&
            to_tag.n == strlen(tag) && memcmp(to_tag.p, tag, to_tag.n) == 0)
            return EDGE_FAST_DROP;
        return EDGE_FAST_PASS;
    }
    /* an initial INVITE only: a To tag means a request within a dialog */
    if (!cseq_is(rq.cseq, "INVITE") || header_param(rq.to, "tag", &to_tag) ||
        header_params(rq.to) == NULL)
        return EDGE_FAST_PASS;
    puts_(&o, "SIP/2.0 ");
    put_int(&o, r->status);
    puts_(&o, " ");
    puts_(&o, r->phrase);
    puts_(&o, "\r\nVia: ");
    /* the top Via as RFC 3261 18.2.1 and RFC 3581 want it answered:
     * rport filled in, received added when needed */
    if (v.rport && !v.rport_valued) {
        put(&o, v.value.p, (size_t)(v.rport_end - v.value.p));
        puts_(&o, "=");
        put_int(&o, r->src_port);
        put(&o, v.rport_end, (size_t)(v.value.p + v.value.n - v.rport_end));
    } else {
        put_span(&o, v.value);
    }
    if (!v.received &&
        (v.rport || v.host.n != strlen(r->src_ip) || memcmp(v.host.p, r->src_ip, v.host.n) != 0)) {
        puts_(&o, ";received=");
        puts_(&o, r->src_ip);
    }
    put(&o, v.value.p + v.value.n, (size_t)(rq.via[0].p + rq.via[0].n - (v.value.p + v.value.n)));
    for (size_t i = 1; i < rq.nvia; i++) {
        puts_(&o, "\r\nVia: ");
        put_span(&o, rq.via[i]);
    }
    puts_(&o, "\r\nFrom: ");
    put_span(&o, rq.from);
    puts_(&o, "\r\nTo: ");
    put_span(&o, rq.to);
    puts_(&o, ";tag=");
    puts_(&o, tag);
    puts_(&o, "\r\nCall-ID: ");
    put_span(&o, rq.call_id);
    puts_(&o, "\r\nCSeq: ");
    put_span(&o, rq.cseq);
    if (r->retry_after_s > 0) {
        puts_(&o, "\r\nRetry-After: ");
        put_int(&o, r->retry_after_s);
    }
    if (r->reason != NULL) {
        puts_(&o, "\r\nReason: ");
        puts_(&o, r->reason);
    }
    puts_(&o, "\r\nContent-Length: 0\r\n\r\n");
    if (o.full)
        return EDGE_FAST_PASS;
    *out_len = o.n;
    return EDGE_FAST_ANSWER;
}
