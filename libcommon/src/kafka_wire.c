/* kafka_wire.c - AlterPartitionReassignments, ElectLeaders, DescribeQuorum
 * and Metadata on a connection of our own (kafka_wire.h says why).
 *
 * Kafka's protocol: every request and answer is a 32-bit big-endian length
 * and that many bytes. A request starts with its header (api key, version,
 * correlation id, client id; "flexible" versions add tagged fields, compact
 * lengths - unsigned varints of length + 1 - and a tag section after every
 * structure); an answer with the correlation id (+ tags when flexible).
 * The schemas: Kafka's the JSON files of clients/src/main/resources/common/message.
 */
#include "sipdrain/kafka_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sipdrain/kafka.h"

#define API_METADATA            3
#define API_SASL_HANDSHAKE      17
#define API_SASL_AUTHENTICATE   36
#define API_ELECT_LEADERS       43
#define API_ALTER_REASSIGNMENTS 45
#define API_DESCRIBE_QUORUM     55

#define CLIENT_ID      "drainctl"
#define FRAME_MAX      (1024 * 1024) /* admin answers are small; more is a lie */
#define SCRAM_ITER_MAX 100000        /* Kafka allows 4096-16384; more is a CPU trap */

struct sd_kwire {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    int32_t correlation;
    int timeout_ms;
    char peer[300];
};

/* --- writing ---------------------------------------------------------------- */

struct wbuf {
    unsigned char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct wbuf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        unsigned char *p;
        while (cap < b->len + n)
            cap *= 2;
        if ((p = realloc(b->p, cap)) == NULL) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_i8(struct wbuf *b, int8_t v)
{
    put(b, &v, 1);
}

static void put_i16(struct wbuf *b, int16_t v)
{
    uint16_t n = htons((uint16_t)v);
    put(b, &n, 2);
}

static void put_i32(struct wbuf *b, int32_t v)
{
    uint32_t n = htonl((uint32_t)v);
    put(b, &n, 4);
}

static void put_uvarint(struct wbuf *b, uint32_t v)
{
    while (v >= 0x80) {
        put_i8(b, (int8_t)((v & 0x7f) | 0x80));
        v >>= 7;
    }
    put_i8(b, (int8_t)v);
}

/* STRING: int16 length. */
static void put_str16(struct wbuf *b, const char *s)
{
    size_t n = strlen(s);
    put_i16(b, (int16_t)n);
    put(b, s, n);
}

/* COMPACT_STRING: uvarint length + 1. */
static void put_compact_str(struct wbuf *b, const char *s)
{
    size_t n = strlen(s);
    put_uvarint(b, (uint32_t)n + 1);
    put(b, s, n);
}

/* A request: size placeholder, header v1 (v2 when flexible: + no tags). */
static void put_header(struct wbuf *b, int16_t api, int16_t version, int32_t correlation,
                       bool flexible)
{
    put_i32(b, 0);
    put_i16(b, api);
    put_i16(b, version);
    put_i32(b, correlation);
    put_str16(b, CLIENT_ID);
    if (flexible)
        put_uvarint(b, 0);
}

/* --- reading: every length checked against what is left --------------------- */

struct rbuf {
    const unsigned char *p;
    size_t len, off;
    bool bad;
};

static const unsigned char *take(struct rbuf *r, size_t n)
{
    const unsigned char *at;

    if (r->bad || n > r->len - r->off) {
        r->bad = true;
        return NULL;
    }
    at = r->p + r->off;
    r->off += n;
    return at;
}

static int16_t get_i16(struct rbuf *r)
{
    const unsigned char *at = take(r, 2);
    return at ? (int16_t)((at[0] << 8) | at[1]) : 0;
}

static int32_t get_i32(struct rbuf *r)
{
    const unsigned char *at = take(r, 4);
    return at ? (int32_t)(((uint32_t)at[0] << 24) | ((uint32_t)at[1] << 16) |
                          ((uint32_t)at[2] << 8) | at[3])
              : 0;
}

static void skip(struct rbuf *r, size_t n)
{
    (void)take(r, n);
}

static uint32_t get_uvarint(struct rbuf *r)
{
    uint32_t v = 0;

    for (int shift = 0; shift <= 28; shift += 7) {
        const unsigned char *at = take(r, 1);
        if (at == NULL)
            return 0;
        v |= (uint32_t)(*at & 0x7f) << shift;
        if (!(*at & 0x80))
            return v;
    }
    r->bad = true; /* more than 5 bytes: not a 32-bit varint */
    return 0;
}

/* An array's count, checked: each element takes at least min_size bytes,
 * so a count larger than what is left is a lie (not a loop of 2^31). */
static size_t checked_count(struct rbuf *r, int64_t n, size_t min_size)
{
    if (n < 0)
        return 0;
    if ((uint64_t)n > (r->len - r->off) / min_size) {
        r->bad = true;
        return 0;
    }
    return (size_t)n;
}

static size_t get_array16(struct rbuf *r, size_t min_size)
{
    return checked_count(r, get_i32(r), min_size);
}

static size_t get_compact_array(struct rbuf *r, size_t min_size)
{
    return checked_count(r, (int64_t)get_uvarint(r) - 1, min_size);
}

/* A string copied into out (truncated to size; "" when null). */
static void copy_out(const unsigned char *at, size_t n, char *out, size_t size)
{
    size_t k = n < size - 1 ? n : size - 1;
    if (at != NULL)
        memcpy(out, at, k);
    out[at != NULL ? k : 0] = '\0';
}

static void get_str16(struct rbuf *r, char *out, size_t size)
{
    int16_t n = get_i16(r);
    copy_out(n > 0 ? take(r, (size_t)n) : NULL, n > 0 ? (size_t)n : 0, out, size);
}

static void get_compact_str(struct rbuf *r, char *out, size_t size)
{
    int64_t n = (int64_t)get_uvarint(r) - 1;
    copy_out(n > 0 ? take(r, (size_t)n) : NULL, n > 0 ? (size_t)n : 0, out, size);
}

/* Tagged fields: none of them is ours to read; skipped by their sizes. */
static void skip_tags(struct rbuf *r)
{
    size_t n = checked_count(r, get_uvarint(r), 2);

    for (size_t i = 0; i < n && !r->bad; i++) {
        (void)get_uvarint(r);
        (void)take(r, get_uvarint(r));
    }
}

/* --- errors ----------------------------------------------------------------- */

const char *sd_kwire_error_name(int code)
{
    static char other[32];

    switch (code) {
    case 0:
        return "NONE";
    case 3:
        return "UNKNOWN_TOPIC_OR_PARTITION";
    case 7:
        return "REQUEST_TIMED_OUT";
    case 29:
        return "TOPIC_AUTHORIZATION_FAILED";
    case 31:
        return "CLUSTER_AUTHORIZATION_FAILED";
    case 33:
        return "UNSUPPORTED_SASL_MECHANISM";
    case 34:
        return "ILLEGAL_SASL_STATE";
    case 35:
        return "UNSUPPORTED_VERSION";
    case 39:
        return "INVALID_REPLICA_ASSIGNMENT";
    case 41:
        return "NOT_CONTROLLER";
    case 42:
        return "INVALID_REQUEST";
    case 58:
        return "SASL_AUTHENTICATION_FAILED";
    case 80:
        return "PREFERRED_LEADER_NOT_AVAILABLE";
    case 83:
        return "ELIGIBLE_LEADERS_NOT_AVAILABLE";
    case 84:
        return "ELECTION_NOT_NEEDED";
    case 85:
        return "NO_REASSIGNMENT_IN_PROGRESS";
    default:
        snprintf(other, sizeof(other), "error %d", code);
        return other;
    }
}

static struct sd_kwire_partition *find_part(struct sd_kwire_partition *parts, size_t n,
                                            const char *topic, int32_t partition)
{
    for (size_t i = 0; i < n; i++) {
        if (parts[i].partition == partition && !strcmp(parts[i].topic, topic))
            return &parts[i];
    }
    return NULL;
}

static void set_answer(struct sd_kwire_partition *p, int16_t error, const char *message)
{
    p->error = error;
    snprintf(p->message, sizeof(p->message), "%s",
             message[0] ? message : sd_kwire_error_name(error));
}

/* Before an answer: every partition "no answer" until the broker gives one. */
static void reset_answers(struct sd_kwire_partition *parts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        parts[i].error = -1;
        snprintf(parts[i].message, sizeof(parts[i].message), "not in the broker's answer");
    }
}

/* --- AlterPartitionReassignments v0 (flexible) ------------------------------ */

/* The topics of parts, each once, in their first order: a request groups
 * partitions by topic. */
static bool first_of_topic(const struct sd_kwire_partition *parts, size_t i)
{
    for (size_t k = 0; k < i; k++) {
        if (!strcmp(parts[k].topic, parts[i].topic))
            return false;
    }
    return true;
}

static size_t count_topic(const struct sd_kwire_partition *parts, size_t n, const char *topic)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += !strcmp(parts[i].topic, topic);
    return c;
}

static size_t count_topics(const struct sd_kwire_partition *parts, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += first_of_topic(parts, i);
    return c;
}

static void reassign_body(struct wbuf *b, const struct sd_kwire_partition *parts, size_t n,
                          int timeout_ms)
{
    put_i32(b, timeout_ms);
    put_uvarint(b, (uint32_t)count_topics(parts, n) + 1);
    for (size_t i = 0; i < n; i++) {
        if (!first_of_topic(parts, i))
            continue;
        put_compact_str(b, parts[i].topic);
        put_uvarint(b, (uint32_t)count_topic(parts, n, parts[i].topic) + 1);
        for (size_t k = i; k < n; k++) {
            if (strcmp(parts[k].topic, parts[i].topic) != 0)
                continue;
            put_i32(b, parts[k].partition);
            put_uvarint(b, (uint32_t)parts[k].n_replicas + 1);
            for (int r = 0; r < parts[k].n_replicas; r++)
                put_i32(b, parts[k].replicas[r]);
            put_uvarint(b, 0); /* partition's tags */
        }
        put_uvarint(b, 0); /* topic's tags */
    }
    put_uvarint(b, 0);
}

unsigned char *sd_kwire_reassign_encode(const struct sd_kwire_partition *parts, size_t n,
                                        int timeout_ms, size_t *len)
{
    struct wbuf b = {0};

    reassign_body(&b, parts, n, timeout_ms);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

int sd_kwire_reassign_decode(const unsigned char *body, size_t len,
                             struct sd_kwire_partition *parts, size_t n, struct sd_err *err)
{
    struct rbuf r = {body, len, 0, false};
    char message[160], topic[256];
    int16_t error;
    size_t topics;

    reset_answers(parts, n);
    (void)get_i32(&r); /* throttle_time_ms */
    error = get_i16(&r);
    get_compact_str(&r, message, sizeof(message));
    /* the broker's text for a refused login is the request's dump: only a short one helps */
    if (!r.bad && error != 0)
        return sd_err_set(
            err, SD_ERR_TRANSIENT, "reassignment refused: %s%s%s", sd_kwire_error_name(error),
            message[0] && strlen(message) < 100 ? ": " : "", strlen(message) < 100 ? message : "");
    topics = get_compact_array(&r, 3);
    for (size_t t = 0; t < topics && !r.bad; t++) {
        size_t np;
        get_compact_str(&r, topic, sizeof(topic));
        np = get_compact_array(&r, 8);
        for (size_t i = 0; i < np && !r.bad; i++) {
            int32_t partition = get_i32(&r);
            struct sd_kwire_partition *p;
            error = get_i16(&r);
            get_compact_str(&r, message, sizeof(message));
            skip_tags(&r);
            if (!r.bad && (p = find_part(parts, n, topic, partition)) != NULL)
                set_answer(p, error, message);
        }
        skip_tags(&r);
    }
    skip_tags(&r);
    if (r.bad || r.off != r.len)
        return sd_err_set(err, SD_ERR_TRANSIENT,
                          "reassignment: the broker's answer is malformed (%zu bytes)", len);
    return 0;
}

/* --- ElectLeaders v1 -------------------------------------------------------- */

static void elect_body(struct wbuf *b, const struct sd_kwire_partition *parts, size_t n,
                       int timeout_ms)
{
    put_i8(b, 0); /* election_type: PREFERRED */
    put_i32(b, (int32_t)count_topics(parts, n));
    for (size_t i = 0; i < n; i++) {
        if (!first_of_topic(parts, i))
            continue;
        put_str16(b, parts[i].topic);
        put_i32(b, (int32_t)count_topic(parts, n, parts[i].topic));
        for (size_t k = i; k < n; k++) {
            if (!strcmp(parts[k].topic, parts[i].topic))
                put_i32(b, parts[k].partition);
        }
    }
    put_i32(b, timeout_ms);
}

unsigned char *sd_kwire_elect_encode(const struct sd_kwire_partition *parts, size_t n,
                                     int timeout_ms, size_t *len)
{
    struct wbuf b = {0};

    elect_body(&b, parts, n, timeout_ms);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

int sd_kwire_elect_decode(const unsigned char *body, size_t len, struct sd_kwire_partition *parts,
                          size_t n, struct sd_err *err)
{
    struct rbuf r = {body, len, 0, false};
    char message[160], topic[256];
    int16_t error;
    size_t topics;

    reset_answers(parts, n);
    (void)get_i32(&r); /* throttle_time_ms */
    error = get_i16(&r);
    if (!r.bad && error != 0)
        return sd_err_set(err, SD_ERR_TRANSIENT, "election refused: %s",
                          sd_kwire_error_name(error));
    topics = get_array16(&r, 6);
    for (size_t t = 0; t < topics && !r.bad; t++) {
        size_t np;
        get_str16(&r, topic, sizeof(topic));
        np = get_array16(&r, 8);
        for (size_t i = 0; i < np && !r.bad; i++) {
            int32_t partition = get_i32(&r);
            struct sd_kwire_partition *p;
            error = get_i16(&r);
            get_str16(&r, message, sizeof(message));
            if (!r.bad && (p = find_part(parts, n, topic, partition)) != NULL)
                set_answer(p, error, message);
        }
    }
    if (r.bad || r.off != r.len)
        return sd_err_set(err, SD_ERR_TRANSIENT,
                          "election: the broker's answer is malformed (%zu bytes)", len);
    return 0;
}

/* --- DescribeQuorum v0 (flexible): the KRaft quorum's leader ------------------ */

static void quorum_body(struct wbuf *b)
{
    put_uvarint(b, 2); /* one topic */
    put_compact_str(b, "__cluster_metadata");
    put_uvarint(b, 2); /* one partition */
    put_i32(b, 0);
    put_uvarint(b, 0);
    put_uvarint(b, 0);
    put_uvarint(b, 0);
}

/* A voter or an observer: replica_id, log_end_offset, tags. */
static void skip_replicas(struct rbuf *r, int32_t *ids, int *n_ids, int max)
{
    size_t n = get_compact_array(r, 13);

    for (size_t i = 0; i < n && !r->bad; i++) {
        int32_t id = get_i32(r);
        skip(r, 8);
        skip_tags(r);
        if (ids != NULL && *n_ids < max)
            ids[(*n_ids)++] = id;
    }
}

int sd_kwire_quorum_decode(const unsigned char *body, size_t len, int32_t *leader, int32_t *voters,
                           int *n_voters, int max_voters, struct sd_err *err)
{
    struct rbuf r = {body, len, 0, false};
    int16_t error = get_i16(&r);
    size_t topics;
    bool found = false;

    *n_voters = 0;
    *leader = -1;
    if (!r.bad && error != 0)
        return sd_err_set(err, SD_ERR_TRANSIENT, "quorum: %s", sd_kwire_error_name(error));
    topics = get_compact_array(&r, 3);
    for (size_t t = 0; t < topics && !r.bad; t++) {
        char topic[64];
        size_t np;
        get_compact_str(&r, topic, sizeof(topic));
        np = get_compact_array(&r, 25);
        for (size_t i = 0; i < np && !r.bad; i++) {
            int32_t partition = get_i32(&r), id;
            error = get_i16(&r);
            id = get_i32(&r);
            skip(&r, 4 + 8); /* leader_epoch, high_watermark */
            bool ours = !strcmp(topic, "__cluster_metadata") && partition == 0;
            skip_replicas(&r, ours ? voters : NULL, n_voters, max_voters);
            skip_replicas(&r, NULL, NULL, 0);
            skip_tags(&r);
            if (ours && !r.bad) {
                if (error != 0)
                    return sd_err_set(err, SD_ERR_TRANSIENT, "quorum: %s",
                                      sd_kwire_error_name(error));
                *leader = id;
                found = true;
            }
        }
        skip_tags(&r);
    }
    skip_tags(&r);
    if (r.bad || r.off != r.len || !found)
        return sd_err_set(err, SD_ERR_TRANSIENT,
                          "quorum: the broker's answer is malformed (%zu bytes)", len);
    return 0;
}

/* --- Metadata v1: one broker's own view of the leaders ---------------------- */

/* The topics of parts, each once (v1: a null array would ask for all). */
static void metadata_body(struct wbuf *b, const struct sd_kwire_partition *parts, size_t n)
{
    put_i32(b, (int32_t)count_topics(parts, n));
    for (size_t i = 0; i < n; i++) {
        if (first_of_topic(parts, i))
            put_str16(b, parts[i].topic);
    }
}

unsigned char *sd_kwire_leaders_encode(const struct sd_kwire_partition *parts, size_t n,
                                       size_t *len)
{
    struct wbuf b = {0};

    metadata_body(&b, parts, n);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* An INT32 array: its count checked, the values skipped. */
static void skip_ids(struct rbuf *r)
{
    skip(r, 4 * get_array16(r, 4));
}

int sd_kwire_leaders_decode(const unsigned char *body, size_t len, struct sd_kwire_partition *parts,
                            size_t n, struct sd_err *err)
{
    struct rbuf r = {body, len, 0, false};
    char topic[256];
    size_t brokers, topics;

    for (size_t i = 0; i < n; i++)
        parts[i].leader = -1;
    brokers = get_array16(&r, 12); /* node_id, host, port, rack */
    for (size_t i = 0; i < brokers && !r.bad; i++) {
        skip(&r, 4);
        skip(&r, (size_t)(uint16_t)get_i16(&r));
        skip(&r, 4);
        int16_t rack = get_i16(&r); /* nullable: -1 */
        skip(&r, rack > 0 ? (size_t)rack : 0);
    }
    (void)get_i32(&r); /* controller_id: any broker, under KRaft */
    topics = get_array16(&r, 9);
    for (size_t t = 0; t < topics && !r.bad; t++) {
        size_t np;
        (void)get_i16(&r); /* the topic's error: its partitions are then not listed */
        get_str16(&r, topic, sizeof(topic));
        skip(&r, 1); /* is_internal */
        np = get_array16(&r, 18);
        for (size_t i = 0; i < np && !r.bad; i++) {
            struct sd_kwire_partition *p;
            (void)get_i16(&r); /* LEADER_NOT_AVAILABLE comes with leader -1 */
            int32_t partition = get_i32(&r), leader = get_i32(&r);
            skip_ids(&r); /* replicas */
            skip_ids(&r); /* in-sync replicas */
            if (!r.bad && (p = find_part(parts, n, topic, partition)) != NULL)
                p->leader = leader;
        }
    }
    if (r.bad || r.off != r.len)
        return sd_err_set(err, SD_ERR_TRANSIENT,
                          "metadata: the broker's answer is malformed (%zu bytes)", len);
    return 0;
}

/* --- the connection --------------------------------------------------------- */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static const char *tls_reason(void)
{
    static char text[256];
    unsigned long e = ERR_get_error();

    if (e == 0)
        return "connection closed";
    ERR_error_string_n(e, text, sizeof(text));
    ERR_clear_error();
    return text;
}

/* Waits until fd is readable (or writable) before the deadline. */
static int wait_fd(int fd, bool out, long deadline)
{
    struct pollfd pfd = {.fd = fd, .events = out ? POLLOUT : POLLIN};
    int left;

    for (;;) {
        left = (int)(deadline - now_ms());
        if (left <= 0)
            return -1;
        int rc = poll(&pfd, 1, left);
        if (rc > 0)
            return 0;
        if (rc == 0 || errno != EINTR)
            return -1;
    }
}

/* Every byte written or read before the deadline; -1 (err set) else. The
 * socket is non-blocking; TLS says which way it waits. */
static int io_all(struct sd_kwire *kw, bool writing, void *buf, size_t n, long deadline,
                  struct sd_err *err)
{
    unsigned char *p = buf;

    while (n > 0) {
        ssize_t got;
        bool want_out = writing;

        if (kw->ssl != NULL) {
            int rc = writing ? SSL_write(kw->ssl, p, (int)n) : SSL_read(kw->ssl, p, (int)n);
            if (rc > 0) {
                got = rc;
            } else {
                int e = SSL_get_error(kw->ssl, rc);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    return sd_err_set(err, SD_ERR_TRANSIENT, "%s: TLS: %s", kw->peer, tls_reason());
                want_out = e == SSL_ERROR_WANT_WRITE;
                got = -1;
                errno = EAGAIN;
            }
        } else {
            got = writing ? send(kw->fd, p, n, MSG_NOSIGNAL) : recv(kw->fd, p, n, 0);
            if (got == 0)
                return sd_err_set(err, SD_ERR_TRANSIENT, "%s: the broker closed the connection",
                                  kw->peer);
        }
        if (got > 0) {
            p += got, n -= (size_t)got;
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return sd_err_set(err, SD_ERR_TRANSIENT, "%s: %s", kw->peer, strerror(errno));
        if (wait_fd(kw->fd, want_out, deadline) < 0)
            return sd_err_set(err, SD_ERR_TRANSIENT, "%s: no answer in %d ms", kw->peer,
                              kw->timeout_ms);
    }
    return 0;
}

/* One request (b: header + body, its size still 0) and its answer: the body
 * after the response header, malloc'ed, in *body / *len. */
static int call(struct sd_kwire *kw, struct wbuf *b, bool flexible_answer, int wait_ms,
                unsigned char **body, size_t *len, struct sd_err *err)
{
    long deadline = now_ms() + wait_ms;
    uint32_t size = htonl((uint32_t)(b->len - 4)), n;
    int32_t correlation = kw->correlation++;
    unsigned char *frame;
    struct rbuf r;

    if (b->oom)
        return sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
    memcpy(b->p, &size, 4);
    if (io_all(kw, true, b->p, b->len, deadline, err) < 0 ||
        io_all(kw, false, &n, 4, deadline, err) < 0)
        return -1;
    n = ntohl(n);
    if (n < 4 || n > FRAME_MAX)
        return sd_err_set(err, SD_ERR_TRANSIENT, "%s: an answer of %u bytes: not Kafka's", kw->peer,
                          n);
    if ((frame = malloc(n)) == NULL)
        return sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
    if (io_all(kw, false, frame, n, deadline, err) < 0) {
        free(frame);
        return -1;
    }
    r = (struct rbuf){frame, n, 0, false};
    if (get_i32(&r) != correlation) {
        free(frame);
        return sd_err_set(err, SD_ERR_TRANSIENT, "%s: an answer to another request", kw->peer);
    }
    if (flexible_answer)
        skip_tags(&r);
    if (r.bad) {
        free(frame);
        return sd_err_set(err, SD_ERR_TRANSIENT, "%s: a malformed answer header", kw->peer);
    }
    memmove(frame, frame + r.off, n - r.off);
    *body = frame;
    *len = n - r.off;
    return 0;
}

/* --- SASL --------------------------------------------------------------------- */

static int sasl_handshake(struct sd_kwire *kw, const char *mech, struct sd_err *err)
{
    struct wbuf b = {0};
    unsigned char *body = NULL;
    size_t len = 0;
    struct rbuf r;
    int16_t error;
    int rc;

    put_header(&b, API_SASL_HANDSHAKE, 1, kw->correlation, false);
    put_str16(&b, mech);
    rc = call(kw, &b, false, kw->timeout_ms, &body, &len, err);
    free(b.p);
    if (rc < 0)
        return -1;
    r = (struct rbuf){body, len, 0, false};
    error = get_i16(&r);
    if (r.bad || error != 0) {
        char enabled[256] = "", one[64];
        size_t n = r.bad ? 0 : get_array16(&r, 2);
        for (size_t i = 0; i < n && !r.bad; i++) {
            get_str16(&r, one, sizeof(one));
            if (strlen(enabled) + strlen(one) + 3 < sizeof(enabled))
                strcat(strcat(enabled, i ? ", " : ""), one);
        }
        free(body);
        return sd_err_set(err, SD_ERR_CONFIG, "%s: SASL %s refused: %s (the broker's: %s)",
                          kw->peer, mech, sd_kwire_error_name(error), enabled);
    }
    free(body);
    return 0;
}

/* One SaslAuthenticate v1 round: bytes out, the server's bytes back
 * (NUL-terminated, malloc'ed). */
static int sasl_round(struct sd_kwire *kw, const void *out, size_t out_len, char **in,
                      struct sd_err *err)
{
    struct wbuf b = {0};
    unsigned char *body = NULL;
    size_t len = 0;
    struct rbuf r;
    char message[200];
    int16_t error;
    int32_t n;
    const unsigned char *bytes;
    int rc;

    put_header(&b, API_SASL_AUTHENTICATE, 1, kw->correlation, false);
    put_i32(&b, (int32_t)out_len);
    put(&b, out, out_len);
    rc = call(kw, &b, false, kw->timeout_ms, &body, &len, err);
    if (b.p != NULL)
        explicit_bzero(b.p, b.len);
    free(b.p);
    if (rc < 0)
        return -1;
    r = (struct rbuf){body, len, 0, false};
    error = get_i16(&r);
    get_str16(&r, message, sizeof(message));
    n = get_i32(&r);
    bytes = n > 0 ? take(&r, (size_t)n) : NULL;
    if (r.bad) {
        free(body);
        return sd_err_set(err, SD_ERR_TRANSIENT, "%s: a malformed SASL answer", kw->peer);
    }
    if (error != 0) {
        free(body);
        return sd_err_set(err, SD_ERR_TRANSIENT, "%s: login refused: %s%s%s", kw->peer,
                          sd_kwire_error_name(error), message[0] ? ": " : "", message);
    }
    if ((*in = malloc((size_t)(n > 0 ? n : 0) + 1)) == NULL) {
        free(body);
        return sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
    }
    if (bytes != NULL)
        memcpy(*in, bytes, (size_t)n);
    (*in)[n > 0 ? n : 0] = '\0';
    free(body);
    return 0;
}

static int b64_encode(const unsigned char *in, size_t n, char *out, size_t size)
{
    if (size < 4 * ((n + 2) / 3) + 1)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return 0;
}

/* Base64 decoded into out; the length, or -1 when it is not base64. */
static int b64_decode(const char *in, size_t n, unsigned char *out, size_t size)
{
    int len, pad = 0;

    if (n == 0 || n % 4 != 0 || size < n / 4 * 3)
        return -1;
    len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (len < 0)
        return -1;
    pad = (in[n - 1] == '=') + (in[n - 2] == '=');
    return len - pad;
}

/* The value of "k=" in a SCRAM message (its attributes are comma-separated). */
static bool scram_attr(const char *msg, char key, char *out, size_t size)
{
    for (const char *p = msg; p != NULL && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (p[0] == key && p[1] == '=') {
            size_t n = strcspn(p + 2, ",");
            if (n >= size)
                return false;
            memcpy(out, p + 2, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

int sd_kwire_scram_final(const char *mech, const char *password, const char *client_first_bare,
                         const char *server_first, char *client_final, size_t size,
                         char *server_signature, size_t sig_size, struct sd_err *err)
{
    const EVP_MD *md = !strcmp(mech, "SCRAM-SHA-256")   ? EVP_sha256()
                       : !strcmp(mech, "SCRAM-SHA-512") ? EVP_sha512()
                                                        : NULL;
    char nonce[256], salt_b64[256], iter_text[16], cnonce[256], *end, *auth = NULL;
    char without_proof[300], proof_b64[128];
    unsigned char salt[192], salted[EVP_MAX_MD_SIZE], client_key[EVP_MAX_MD_SIZE],
        stored_key[EVP_MAX_MD_SIZE], client_sig[EVP_MAX_MD_SIZE], server_key[EVP_MAX_MD_SIZE],
        server_sig[EVP_MAX_MD_SIZE];
    unsigned int hlen = 0, klen = 0;
    int salt_len, rc = -1;
    long iterations;
    size_t auth_len;

    if (md == NULL)
        return sd_err_set(err, SD_ERR_CONFIG, "SASL mechanism %s: not SCRAM-SHA-256/512", mech);
    hlen = (unsigned int)EVP_MD_get_size(md);
    if (scram_attr(server_first, 'e', nonce, sizeof(nonce)))
        return sd_err_set(err, SD_ERR_TRANSIENT, "SCRAM: the server says %s", nonce);
    if (!scram_attr(client_first_bare, 'r', cnonce, sizeof(cnonce)) ||
        !scram_attr(server_first, 'r', nonce, sizeof(nonce)) ||
        !scram_attr(server_first, 's', salt_b64, sizeof(salt_b64)) ||
        !scram_attr(server_first, 'i', iter_text, sizeof(iter_text)))
        return sd_err_set(err, SD_ERR_TRANSIENT, "SCRAM: a malformed server-first message");
    /* the server's nonce extends ours; anything else is another session */
    if (strncmp(nonce, cnonce, strlen(cnonce)) != 0 || strlen(nonce) <= strlen(cnonce))
        return sd_err_set(err, SD_ERR_TRANSIENT, "SCRAM: the server's nonce is not ours");
    iterations = strtol(iter_text, &end, 10);
    if (*end != '\0' || iterations < 1 || iterations > SCRAM_ITER_MAX)
        return sd_err_set(err, SD_ERR_TRANSIENT, "SCRAM: %s iterations refused (1-%d)", iter_text,
                          SCRAM_ITER_MAX);
    salt_len = b64_decode(salt_b64, strlen(salt_b64), salt, sizeof(salt));
    if (salt_len <= 0)
        return sd_err_set(err, SD_ERR_TRANSIENT, "SCRAM: the salt is not base64");
    snprintf(without_proof, sizeof(without_proof), "c=biws,r=%s", nonce);
    auth_len = strlen(client_first_bare) + strlen(server_first) + strlen(without_proof) + 3;
    if ((auth = malloc(auth_len)) == NULL)
        return sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
    snprintf(auth, auth_len, "%s,%s,%s", client_first_bare, server_first, without_proof);

    if (!PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, salt_len, (int)iterations, md,
                           (int)hlen, salted) ||
        !HMAC(md, salted, (int)hlen, (const unsigned char *)"Client Key", 10, client_key, &klen) ||
        !EVP_Digest(client_key, hlen, stored_key, NULL, md, NULL) ||
        !HMAC(md, stored_key, (int)hlen, (const unsigned char *)auth, strlen(auth), client_sig,
              &klen) ||
        !HMAC(md, salted, (int)hlen, (const unsigned char *)"Server Key", 10, server_key, &klen) ||
        !HMAC(md, server_key, (int)hlen, (const unsigned char *)auth, strlen(auth), server_sig,
              &klen)) {
        sd_err_set(err, SD_ERR_INTERNAL, "SCRAM: %s", tls_reason());
        goto out;
    }
    for (unsigned int i = 0; i < hlen; i++)
        client_key[i] ^= client_sig[i]; /* the proof */
    if (b64_encode(client_key, hlen, proof_b64, sizeof(proof_b64)) < 0 ||
        b64_encode(server_sig, hlen, server_signature, sig_size) < 0 ||
        (size_t)snprintf(client_final, size, "%s,p=%s", without_proof, proof_b64) >= size) {
        sd_err_set(err, SD_ERR_INTERNAL, "SCRAM: message too long");
        goto out;
    }
    rc = 0;
out:
    explicit_bzero(salted, sizeof(salted));
    explicit_bzero(client_key, sizeof(client_key));
    explicit_bzero(stored_key, sizeof(stored_key));
    explicit_bzero(server_key, sizeof(server_key));
    free(auth);
    return rc;
}

/* SCRAM's saslname: ',' and '=' escaped. */
static void scram_name(const char *user, char *out, size_t size)
{
    size_t k = 0;

    for (const char *c = user; *c && k + 4 < size; c++) {
        if (*c == ',' || *c == '=') {
            memcpy(out + k, *c == ',' ? "=2C" : "=3D", 3);
            k += 3;
        } else {
            out[k++] = *c;
        }
    }
    out[k] = '\0';
}

static int sasl_scram(struct sd_kwire *kw, const char *mech, const char *user, const char *password,
                      struct sd_err *err)
{
    unsigned char raw[24];
    char cnonce[64], name[256], first[400], final[600], sig[128], got_sig[128];
    char *server_first = NULL, *server_final = NULL;
    int rc = -1;

    if (RAND_bytes(raw, sizeof(raw)) != 1 || b64_encode(raw, sizeof(raw), cnonce, sizeof(cnonce)))
        return sd_err_set(err, SD_ERR_INTERNAL, "SCRAM: no random nonce");
    scram_name(user, name, sizeof(name));
    snprintf(first, sizeof(first), "n,,n=%s,r=%s", name, cnonce);
    if (sasl_round(kw, first, strlen(first), &server_first, err) < 0 ||
        sd_kwire_scram_final(mech, password, first + 3, server_first, final, sizeof(final), sig,
                             sizeof(sig), err) < 0 ||
        sasl_round(kw, final, strlen(final), &server_final, err) < 0)
        goto out;
    if (scram_attr(server_final, 'e', got_sig, sizeof(got_sig))) {
        sd_err_set(err, SD_ERR_TRANSIENT, "%s: login refused: %s", kw->peer, got_sig);
        goto out;
    }
    /* the server proves it knows the password too: else it is not ours */
    if (!scram_attr(server_final, 'v', got_sig, sizeof(got_sig)) || strcmp(got_sig, sig) != 0) {
        sd_err_set(err, SD_ERR_TRANSIENT, "%s: SCRAM: the server's signature is wrong", kw->peer);
        goto out;
    }
    rc = 0;
out:
    explicit_bzero(final, sizeof(final));
    free(server_first);
    free(server_final);
    return rc;
}

static int sasl_plain(struct sd_kwire *kw, const char *user, const char *password,
                      struct sd_err *err)
{
    size_t nu = strlen(user), np = strlen(password);
    char msg[600], *in = NULL;
    int rc;

    if (nu + np + 2 > sizeof(msg))
        return sd_err_set(err, SD_ERR_CONFIG, "SASL PLAIN: user or password too long");
    msg[0] = '\0';
    memcpy(msg + 1, user, nu);
    msg[1 + nu] = '\0';
    memcpy(msg + 2 + nu, password, np);
    rc = sasl_round(kw, msg, nu + np + 2, &in, err);
    explicit_bzero(msg, sizeof(msg));
    free(in);
    return rc;
}

/* --- opening ---------------------------------------------------------------- */

static const char *prop(const char *key, const char *fallback)
{
    const char *v = sd_kafka_property(key);
    return v != NULL ? v : fallback;
}

static int tls_start(struct sd_kwire *kw, const char *host, long deadline, struct sd_err *err)
{
    const char *ca = prop("ssl.ca.location", NULL), *cert = prop("ssl.certificate.location", NULL),
               *key = prop("ssl.key.location", NULL);
    bool verify = strcasecmp(prop("enable.ssl.certificate.verification", "true"), "false") != 0;
    bool check_name = strcasecmp(prop("ssl.endpoint.identification.algorithm", "https"), "none");
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;

    if ((kw->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
        !SSL_CTX_set_min_proto_version(kw->ctx, TLS1_2_VERSION))
        return sd_err_set(err, SD_ERR_INTERNAL, "TLS: %s", tls_reason());
    if (ca != NULL ? !SSL_CTX_load_verify_locations(kw->ctx, ca, NULL)
                   : !SSL_CTX_set_default_verify_paths(kw->ctx))
        return sd_err_set(err, SD_ERR_CONFIG, "ssl.ca.location %s: %s", ca ? ca : "(system)",
                          tls_reason());
    if (cert != NULL && (!SSL_CTX_use_certificate_chain_file(kw->ctx, cert) || key == NULL ||
                         !SSL_CTX_use_PrivateKey_file(kw->ctx, key, SSL_FILETYPE_PEM)))
        return sd_err_set(err, SD_ERR_CONFIG, "ssl.certificate.location / ssl.key.location: %s",
                          key == NULL ? "a certificate without its key" : tls_reason());
    SSL_CTX_set_verify(kw->ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if ((kw->ssl = SSL_new(kw->ctx)) == NULL || !SSL_set_fd(kw->ssl, kw->fd))
        return sd_err_set(err, SD_ERR_INTERNAL, "TLS: %s", tls_reason());
    if (!is_ip)
        SSL_set_tlsext_host_name(kw->ssl, host);
    if (verify && check_name &&
        !(is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(kw->ssl), host)
                : SSL_set1_host(kw->ssl, host)))
        return sd_err_set(err, SD_ERR_INTERNAL, "TLS: %s", tls_reason());
    for (;;) {
        int rc = SSL_connect(kw->ssl), e;
        if (rc == 1)
            return 0;
        e = SSL_get_error(kw->ssl, rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            long v = SSL_get_verify_result(kw->ssl);
            return sd_err_set(err, SD_ERR_TRANSIENT, "%s: TLS handshake: %s", kw->peer,
                              v != X509_V_OK ? X509_verify_cert_error_string(v) : tls_reason());
        }
        if (wait_fd(kw->fd, e == SSL_ERROR_WANT_WRITE, deadline) < 0)
            return sd_err_set(err, SD_ERR_TRANSIENT, "%s: TLS handshake: no answer", kw->peer);
    }
}

static int tcp_connect(struct sd_kwire *kw, const char *host, int port, long deadline,
                       struct sd_err *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL, *a;
    char service[16];
    int rc, last = 0;

    snprintf(service, sizeof(service), "%d", port);
    if ((rc = getaddrinfo(host, service, &hints, &ai)) != 0)
        return sd_err_set(err, SD_ERR_TRANSIENT, "%s: %s", kw->peer, gai_strerror(rc));
    for (a = ai; a != NULL; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
        socklen_t len = sizeof(last);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 ||
            (errno == EINPROGRESS && wait_fd(fd, true, deadline) == 0 &&
             getsockopt(fd, SOL_SOCKET, SO_ERROR, &last, &len) == 0 && last == 0)) {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            kw->fd = fd;
            freeaddrinfo(ai);
            return 0;
        }
        if (last == 0)
            last = errno == EINPROGRESS ? ETIMEDOUT : errno;
        close(fd);
    }
    freeaddrinfo(ai);
    return sd_err_set(err, SD_ERR_TRANSIENT, "%s: %s", kw->peer, strerror(last ? last : ETIMEDOUT));
}

struct sd_kwire *sd_kwire_open(const char *host, int port, int timeout_ms, struct sd_err *err)
{
    const char *protocol = prop("security.protocol", "plaintext");
    const char *mech = prop("sasl.mechanism", prop("sasl.mechanisms", "GSSAPI"));
    const char *user = prop("sasl.username", ""), *password = prop("sasl.password", "");
    bool tls = !strcasecmp(protocol, "ssl") || !strcasecmp(protocol, "sasl_ssl");
    bool sasl = !strcasecmp(protocol, "sasl_plaintext") || !strcasecmp(protocol, "sasl_ssl");
    long deadline = now_ms() + timeout_ms;
    struct sd_kwire *kw;

    if (!tls && !sasl && strcasecmp(protocol, "plaintext") != 0) {
        sd_err_set(err, SD_ERR_CONFIG, "security.protocol %s: not known", protocol);
        return NULL;
    }
    if (sasl && strcmp(mech, "PLAIN") != 0 && strncmp(mech, "SCRAM-SHA-", 10) != 0) {
        sd_err_set(err, SD_ERR_CONFIG,
                   "sasl.mechanism %s: the leader move speaks PLAIN and SCRAM-SHA-256/512", mech);
        return NULL;
    }
    if ((kw = calloc(1, sizeof(*kw))) == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    kw->fd = -1;
    kw->correlation = 1;
    kw->timeout_ms = timeout_ms;
    snprintf(kw->peer, sizeof(kw->peer), "broker %s:%d", host, port);
    if (tcp_connect(kw, host, port, deadline, err) < 0 ||
        (tls && tls_start(kw, host, deadline, err) < 0) ||
        (sasl && sasl_handshake(kw, mech, err) < 0) ||
        (sasl && (!strcmp(mech, "PLAIN") ? sasl_plain(kw, user, password, err)
                                         : sasl_scram(kw, mech, user, password, err)) < 0)) {
        sd_kwire_close(kw);
        return NULL;
    }
    return kw;
}

void sd_kwire_close(struct sd_kwire *kw)
{
    if (kw == NULL)
        return;
    if (kw->ssl != NULL) {
        SSL_shutdown(kw->ssl);
        SSL_free(kw->ssl);
    }
    SSL_CTX_free(kw->ctx);
    if (kw->fd >= 0)
        close(kw->fd);
    free(kw);
}

/* --- the requests ------------------------------------------------------------ */

typedef int (*parts_decoder)(const unsigned char *, size_t, struct sd_kwire_partition *, size_t,
                             struct sd_err *);

/* A request about parts (b: its header and body) sent, its answer decoded
 * into them. */
static int exchange(struct sd_kwire *kw, struct wbuf *b, bool flexible, int wait_ms,
                    parts_decoder decode, struct sd_kwire_partition *parts, size_t n,
                    struct sd_err *err)
{
    unsigned char *body = NULL;
    size_t len = 0;
    int rc = call(kw, b, flexible, wait_ms, &body, &len, err);

    free(b->p);
    if (rc == 0)
        rc = decode(body, len, parts, n, err);
    free(body);
    return rc;
}

int sd_kwire_reassign(struct sd_kwire *kw, struct sd_kwire_partition *parts, size_t n,
                      int timeout_ms, struct sd_err *err)
{
    struct wbuf b = {0};

    put_header(&b, API_ALTER_REASSIGNMENTS, 0, kw->correlation, true);
    reassign_body(&b, parts, n, timeout_ms);
    return exchange(kw, &b, true, timeout_ms + kw->timeout_ms, sd_kwire_reassign_decode, parts, n,
                    err);
}

int sd_kwire_elect_preferred(struct sd_kwire *kw, struct sd_kwire_partition *parts, size_t n,
                             int timeout_ms, struct sd_err *err)
{
    struct wbuf b = {0};

    put_header(&b, API_ELECT_LEADERS, 1, kw->correlation, false);
    elect_body(&b, parts, n, timeout_ms);
    return exchange(kw, &b, false, timeout_ms + kw->timeout_ms, sd_kwire_elect_decode, parts, n,
                    err);
}

int sd_kwire_leaders(struct sd_kwire *kw, struct sd_kwire_partition *parts, size_t n,
                     struct sd_err *err)
{
    struct wbuf b = {0};

    put_header(&b, API_METADATA, 1, kw->correlation, false);
    metadata_body(&b, parts, n);
    return exchange(kw, &b, false, kw->timeout_ms, sd_kwire_leaders_decode, parts, n, err);
}

int sd_kwire_quorum(struct sd_kwire *kw, int32_t *leader, int32_t *voters, int *n_voters,
                    int max_voters, struct sd_err *err)
{
    struct wbuf b = {0};
    unsigned char *body = NULL;
    size_t len = 0;
    int rc;

    put_header(&b, API_DESCRIBE_QUORUM, 0, kw->correlation, true);
    quorum_body(&b);
    rc = call(kw, &b, true, kw->timeout_ms, &body, &len, err);
    free(b.p);
    if (rc == 0)
        rc = sd_kwire_quorum_decode(body, len, leader, voters, n_voters, max_voters, err);
    free(body);
    return rc;
}
