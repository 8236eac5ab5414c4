/* test_kafka_wire.c - the pure pieces of kafka_wire.c: SCRAM against RFC
 * 7677's example, the two requests' layout, the answers' decoding and what
 * a lying or truncated answer gets. The requests themselves go to the real
 * brokers in tests/e2e/site-power-off.sh (drainctl stores --move-leaders)
 * and the compose test (over TLS). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sipdrain/kafka_wire.h"

/* RFC 7677, section 3: user "user", password "pencil". */
#define RFC_FIRST_BARE "n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_FIRST                                                                           \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"

Test(scram, the_rfc_7677_example_gives_its_proof_and_server_signature)
{
    struct sd_err err = {0};
    char final[300], sig[100];

    cr_assert_eq(sd_kwire_scram_final("SCRAM-SHA-256", "pencil", RFC_FIRST_BARE, RFC_SERVER_FIRST,
                                      final, sizeof(final), sig, sizeof(sig), &err),
                 0, "%s", err.text);
    cr_assert_str_eq(final, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                            "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    cr_assert_str_eq(sig, "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

Test(scram, a_wrong_password_gives_another_proof)
{
    struct sd_err err = {0};
    char final[300], sig[100];

    cr_assert_eq(sd_kwire_scram_final("SCRAM-SHA-256", "pencils", RFC_FIRST_BARE, RFC_SERVER_FIRST,
                                      final, sizeof(final), sig, sizeof(sig), &err),
                 0);
    cr_assert(strstr(final, "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=") == NULL);
}

Test(scram, sha_512_gives_a_64_byte_proof)
{
    struct sd_err err = {0};
    char final[300], sig[100];

    cr_assert_eq(sd_kwire_scram_final("SCRAM-SHA-512", "pencil", RFC_FIRST_BARE, RFC_SERVER_FIRST,
                                      final, sizeof(final), sig, sizeof(sig), &err),
                 0, "%s", err.text);
    /* 64 bytes: 88 base64 characters */
    cr_assert_eq(strlen(strstr(final, ",p=") + 3), 88);
    cr_assert_eq(strlen(sig), 88);
}

Test(scram, a_server_that_does_not_extend_our_nonce_is_refused)
{
    struct sd_err err = {0};
    char final[300], sig[100];

    cr_assert_eq(sd_kwire_scram_final("SCRAM-SHA-256", "pencil", RFC_FIRST_BARE,
                                      "r=someoneElsesNonce123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                                      final, sizeof(final), sig, sizeof(sig), &err),
                 -1);
    cr_assert(strstr(err.text, "nonce") != NULL, "%s", err.text);
    /* our nonce exactly, nothing of the server's: a replay of our message */
    cr_assert_eq(sd_kwire_scram_final("SCRAM-SHA-256", "pencil", RFC_FIRST_BARE,
                                      "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                                      final, sizeof(final), sig, sizeof(sig), &err),
                 -1);
}

Test(scram, a_server_asking_for_ten_million_iterations_is_refused_at_once)
{
    struct sd_err err = {0};
    char final[300], sig[100];

    cr_assert_eq(sd_kwire_scram_final("SCRAM-SHA-512", "pencil", RFC_FIRST_BARE,
                                      "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
                                      "i=10000000",
                                      final, sizeof(final), sig, sizeof(sig), &err),
                 -1);
    cr_assert(strstr(err.text, "iterations") != NULL, "%s", err.text);
}

Test(scram, malformed_server_messages_are_refused)
{
    static const char *const bad[] = {
        "",
        "r=rOprNGfwEbeRWgbNEkqOxyz,i=4096",                           /* no salt */
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==",       /* no iterations */
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=not*base64,i=4096",              /* salt */
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=12x", /* iterations */
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
        "e=unknown-user",
    };
    struct sd_err err = {0};
    char final[300], sig[100];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(sd_kwire_scram_final("SCRAM-SHA-256", "pencil", RFC_FIRST_BARE, bad[i], final,
                                          sizeof(final), sig, sizeof(sig), &err),
                     -1, "accepted: \"%s\"", bad[i]);
    cr_assert_eq(sd_kwire_scram_final("SCRAM-SHA-1", "pencil", RFC_FIRST_BARE, RFC_SERVER_FIRST,
                                      final, sizeof(final), sig, sizeof(sig), &err),
                 -1);
}

/* --- a test's own writer and reader of Kafka's encodings ------------------------ */

struct buf {
    unsigned char b[4096];
    size_t n;
};

static void w8(struct buf *b, unsigned v)
{
    b->b[b->n++] = (unsigned char)v;
}
static void w16(struct buf *b, int v)
{
    w8(b, ((unsigned)v >> 8) & 0xff), w8(b, (unsigned)v & 0xff);
}
static void w32(struct buf *b, long v)
{
    for (int s = 24; s >= 0; s -= 8)
        w8(b, ((unsigned long)v >> s) & 0xff);
}
static void wstr16(struct buf *b, const char *s)
{
    w16(b, (int)strlen(s));
    memcpy(b->b + b->n, s, strlen(s));
    b->n += strlen(s);
}
static void wcompact(struct buf *b, const char *s) /* short strings: one-byte varint */
{
    w8(b, (unsigned)strlen(s) + 1);
    memcpy(b->b + b->n, s, strlen(s));
    b->n += strlen(s);
}

static long r32(const unsigned char *p, size_t *off)
{
    long v = ((long)p[*off] << 24) | (p[*off + 1] << 16) | (p[*off + 2] << 8) | p[*off + 3];
    *off += 4;
    return v;
}

static struct sd_kwire_partition parts3[3];

static void init_parts(void)
{
    memset(parts3, 0, sizeof(parts3));
    parts3[0] = (struct sd_kwire_partition){
        .topic = "sipdrain.a", .partition = 0, .replicas = {3, 1, 2}, .n_replicas = 3};
    parts3[1] = (struct sd_kwire_partition){
        .topic = "sipdrain.b", .partition = 4, .replicas = {1, 2, 3}, .n_replicas = 3};
    parts3[2] = (struct sd_kwire_partition){
        .topic = "sipdrain.a", .partition = 2, .replicas = {1, 3, 2}, .n_replicas = 3};
}

typedef int (*parts_decoder)(const unsigned char *, size_t, struct sd_kwire_partition *, size_t,
                             struct sd_err *);

/* How many of an answer's truncations, and of the answer with a byte more,
 * the decoder refuses (all b->n + 1 of them, to pass): each in a copy of its
 * exact size, so ASan sees any over-read. */
static size_t truncations_refused(const struct buf *b, parts_decoder decode)
{
    struct sd_err err = {0};
    unsigned char *copy;
    size_t refused = 0;

    for (size_t n = 0; n < b->n; n++) {
        copy = malloc(n ? n : 1);
        init_parts();
        memcpy(copy, b->b, n);
        refused += decode(copy, n, parts3, 3, &err) == -1;
        free(copy);
    }
    copy = malloc(b->n + 1);
    memcpy(copy, b->b, b->n);
    copy[b->n] = 0;
    refused += decode(copy, b->n + 1, parts3, 3, &err) == -1;
    free(copy);
    return refused;
}

Test(reassign, the_request_groups_partitions_by_topic_in_compact_form)
{
    size_t len = 0, off = 0;
    unsigned char *p;

    init_parts();
    p = sd_kwire_reassign_encode(parts3, 3, 30000, &len);
    cr_assert_not_null(p);
    cr_assert_eq(r32(p, &off), 30000);
    cr_assert_eq(p[off++], 3, "two topics: compact count 3");
    cr_assert_eq(p[off++], 11);
    cr_assert_eq(memcmp(p + off, "sipdrain.a", 10), 0);
    off += 10;
    cr_assert_eq(p[off++], 3, "sipdrain.a has two partitions");
    cr_assert_eq(r32(p, &off), 0);
    cr_assert_eq(p[off++], 4, "three replicas");
    cr_assert_eq(r32(p, &off), 3, "the new leader first");
    cr_assert_eq(r32(p, &off), 1);
    cr_assert_eq(r32(p, &off), 2);
    cr_assert_eq(p[off++], 0, "partition tags");
    cr_assert_eq(r32(p, &off), 2);
    off += 1 + 12 + 1;
    cr_assert_eq(p[off++], 0, "topic tags");
    cr_assert_eq(p[off++], 11);
    cr_assert_eq(memcmp(p + off, "sipdrain.b", 10), 0);
    off += 10;
    cr_assert_eq(p[off++], 2);
    cr_assert_eq(r32(p, &off), 4);
    off += 1 + 12 + 1;
    cr_assert_eq(p[off++], 0);
    cr_assert_eq(p[off++], 0, "the request's tags");
    cr_assert_eq(off, len);
    free(p);
}

/* AlterPartitionReassignments v0's answer: a.0 fine, b.4 refused, a.2 absent. */
static void reassign_answer(struct buf *b)
{
    b->n = 0;
    w32(b, 0); /* throttle */
    w16(b, 0);
    w8(b, 0); /* null message */
    w8(b, 3); /* two topics */
    wcompact(b, "sipdrain.a");
    w8(b, 2);
    w32(b, 0), w16(b, 0), w8(b, 0), w8(b, 0);
    w8(b, 0);
    wcompact(b, "sipdrain.b");
    w8(b, 2);
    w32(b, 4), w16(b, 39), wcompact(b, "replica 9 unknown"), w8(b, 0);
    w8(b, 1);                                     /* one tag on the topic: */
    w8(b, 7), w8(b, 2), w8(b, 0xaa), w8(b, 0xbb); /* tag 7, 2 bytes - skipped */
    w8(b, 0);
}

Test(reassign, the_answer_gives_each_partition_its_own_error)
{
    struct sd_err err = {0};
    struct buf b;

    init_parts();
    reassign_answer(&b);
    cr_assert_eq(sd_kwire_reassign_decode(b.b, b.n, parts3, 3, &err), 0, "%s", err.text);
    cr_assert_eq(parts3[0].error, 0);
    cr_assert_eq(parts3[1].error, 39);
    cr_assert_str_eq(parts3[1].message, "replica 9 unknown");
    cr_assert_eq(parts3[2].error, -1, "not answered: not taken for done");
}

Test(reassign, every_truncation_of_the_answer_is_an_error_not_a_crash)
{
    struct buf b;

    reassign_answer(&b);
    cr_assert_eq(truncations_refused(&b, sd_kwire_reassign_decode), b.n + 1);
}

Test(reassign, a_top_level_refusal_says_why)
{
    struct sd_err err = {0};
    struct buf b = {.n = 0};

    init_parts();
    w32(&b, 0), w16(&b, 31), w8(&b, 0), w8(&b, 1), w8(&b, 0);
    cr_assert_eq(sd_kwire_reassign_decode(b.b, b.n, parts3, 3, &err), -1);
    cr_assert(strstr(err.text, "CLUSTER_AUTHORIZATION_FAILED") != NULL, "%s", err.text);
}

Test(reassign, a_lying_array_count_is_refused_without_looping)
{
    struct sd_err err = {0};
    struct buf b = {.n = 0};

    init_parts();
    w32(&b, 0), w16(&b, 0), w8(&b, 0);
    w8(&b, 0xff), w8(&b, 0xff), w8(&b, 0xff), w8(&b, 0xff), w8(&b, 0x07); /* 2^31 topics */
    cr_assert_eq(sd_kwire_reassign_decode(b.b, b.n, parts3, 3, &err), -1);
    b.n = 7;
    for (int i = 0; i < 6; i++)
        w8(&b, 0xff); /* a varint longer than 5 bytes */
    cr_assert_eq(sd_kwire_reassign_decode(b.b, b.n, parts3, 3, &err), -1);
}

Test(elect, the_request_is_preferred_with_partitions_by_topic)
{
    size_t len = 0, off = 1;
    unsigned char *p;

    init_parts();
    p = sd_kwire_elect_encode(parts3, 3, 20000, &len);
    cr_assert_not_null(p);
    cr_assert_eq(p[0], 0, "PREFERRED");
    cr_assert_eq(r32(p, &off), 2);
    cr_assert_eq(p[off] << 8 | p[off + 1], 10);
    off += 12;
    cr_assert_eq(r32(p, &off), 2);
    cr_assert_eq(r32(p, &off), 0);
    cr_assert_eq(r32(p, &off), 2);
    off += 12;
    cr_assert_eq(r32(p, &off), 1);
    cr_assert_eq(r32(p, &off), 4);
    cr_assert_eq(r32(p, &off), 20000);
    cr_assert_eq(off, len);
    free(p);
}

static void elect_answer(struct buf *b)
{
    b->n = 0;
    w32(b, 0), w16(b, 0);
    w32(b, 2);
    wstr16(b, "sipdrain.a");
    w32(b, 2);
    w32(b, 0), w16(b, 0), w16(b, -1);
    w32(b, 2), w16(b, 84), wstr16(b, "Leader election not needed");
    wstr16(b, "sipdrain.b");
    w32(b, 1);
    w32(b, 4), w16(b, 80), w16(b, -1);
}

Test(elect, the_answer_gives_each_partition_its_own_error)
{
    struct sd_err err = {0};
    struct buf b;

    init_parts();
    elect_answer(&b);
    cr_assert_eq(sd_kwire_elect_decode(b.b, b.n, parts3, 3, &err), 0, "%s", err.text);
    cr_assert_eq(parts3[0].error, 0);
    cr_assert_eq(parts3[2].error, SD_KWIRE_ELECTION_NOT_NEEDED);
    cr_assert_eq(parts3[1].error, SD_KWIRE_PREFERRED_LEADER_NOT_AVAILABLE);
    cr_assert_str_eq(parts3[1].message, "PREFERRED_LEADER_NOT_AVAILABLE");
}

Test(elect, every_truncation_and_extra_byte_is_an_error_not_a_crash)
{
    struct buf b;

    elect_answer(&b);
    cr_assert_eq(truncations_refused(&b, sd_kwire_elect_decode), b.n + 1);
}

/* Metadata v1's answer: two brokers (one with a rack, one without), a
 * topic with two partitions (one without a leader), one partition of a
 * topic not asked about. */
static void metadata_answer(struct buf *b)
{
    b->n = 0;
    w32(b, 2);
    w32(b, 1), wstr16(b, "kafka-site1"), w32(b, 9092), wstr16(b, "site1");
    w32(b, 2), wstr16(b, "kafka"), w32(b, 9092), w16(b, -1);
    w32(b, 2); /* controller */
    w32(b, 2);
    w16(b, 0), wstr16(b, "sipdrain.a"), w8(b, 0);
    w32(b, 2);
    w16(b, 0), w32(b, 2), w32(b, 3), w32(b, 3), w32(b, 3), w32(b, 1), w32(b, 2), w32(b, 1),
        w32(b, 3);
    w16(b, 5), w32(b, 0), w32(b, -1), w32(b, 1), w32(b, 2), w32(b, 0);
    w16(b, 0), wstr16(b, "other"), w8(b, 0);
    w32(b, 1);
    w16(b, 0), w32(b, 4), w32(b, 2), w32(b, 1), w32(b, 2), w32(b, 1), w32(b, 2);
}

Test(leaders, the_request_names_each_topic_once)
{
    size_t len = 0, off = 0;
    unsigned char *p;

    init_parts();
    p = sd_kwire_leaders_encode(parts3, 3, &len);
    cr_assert_not_null(p);
    cr_assert_eq(r32(p, &off), 2, "two topics, not three");
    cr_assert_eq(len, 4 + 2 + strlen("sipdrain.a") + 2 + strlen("sipdrain.b"));
    cr_assert_eq(memcmp(p + off + 2, "sipdrain.a", 10), 0);
    free(p);
}

Test(leaders, the_answer_gives_each_partition_its_leader_as_that_broker_sees_it)
{
    struct sd_err err = {0};
    struct buf b;

    init_parts();
    metadata_answer(&b);
    cr_assert_eq(sd_kwire_leaders_decode(b.b, b.n, parts3, 3, &err), 0, "%s", err.text);
    cr_assert_eq(parts3[2].leader, 3);
    cr_assert_eq(parts3[0].leader, -1, "LEADER_NOT_AVAILABLE: no leader");
    cr_assert_eq(parts3[1].leader, -1, "sipdrain.b 4 not in the answer: no leader known");
}

Test(leaders, every_truncation_and_extra_byte_is_an_error_not_a_crash)
{
    struct buf b;

    metadata_answer(&b);
    cr_assert_eq(truncations_refused(&b, sd_kwire_leaders_decode), b.n + 1);
}

Test(leaders, a_lying_replica_count_is_refused_without_looping)
{
    struct sd_err err = {0};
    struct buf b;

    init_parts();
    metadata_answer(&b);
    b.n -= 4 * 4;        /* the last partition's replicas count and on */
    w32(&b, 0x7fffffff); /* 2^31 replicas */
    w32(&b, 1), w32(&b, 2);
    cr_assert_eq(sd_kwire_leaders_decode(b.b, b.n, parts3, 3, &err), -1);
}

static void w64(struct buf *b, long long v)
{
    w32(b, (long)(v >> 32)), w32(b, (long)(v & 0xffffffff));
}

/* DescribeQuorum v0's answer: leader 2, voters 1 2 3, one observer. */
static void quorum_answer(struct buf *b, int partition_error)
{
    b->n = 0;
    w16(b, 0);
    w8(b, 2);
    wcompact(b, "__cluster_metadata");
    w8(b, 2);
    w32(b, 0), w16(b, partition_error), w32(b, 2), w32(b, 7), w64(b, 1234);
    w8(b, 4);
    for (int id = 1; id <= 3; id++)
        w32(b, id), w64(b, 1234), w8(b, 0);
    w8(b, 2);
    w32(b, 9), w64(b, 1200), w8(b, 0);
    w8(b, 0);
    w8(b, 0);
    w8(b, 0);
}

Test(quorum, the_answer_gives_the_leader_and_its_voters_not_observers)
{
    struct sd_err err = {0};
    struct buf b;
    int32_t leader = 0, voters[8];
    int n = 0;

    quorum_answer(&b, 0);
    cr_assert_eq(sd_kwire_quorum_decode(b.b, b.n, &leader, voters, &n, 8, &err), 0, "%s", err.text);
    cr_assert_eq(leader, 2);
    cr_assert_eq(n, 3);
    cr_assert(voters[0] == 1 && voters[1] == 2 && voters[2] == 3);
    n = 0;
    cr_assert_eq(sd_kwire_quorum_decode(b.b, b.n, &leader, voters, &n, 2, &err), 0);
    cr_assert_eq(n, 2, "no more voters than asked for");
}

Test(quorum, a_partition_error_and_every_truncation_are_errors)
{
    struct sd_err err = {0};
    struct buf b;
    int32_t leader = 0, voters[8];
    int n = 0;

    quorum_answer(&b, 6); /* NOT_LEADER_OR_FOLLOWER */
    cr_assert_eq(sd_kwire_quorum_decode(b.b, b.n, &leader, voters, &n, 8, &err), -1);
    quorum_answer(&b, 0);
    for (size_t k = 0; k < b.n; k++) {
        unsigned char *copy = malloc(k ? k : 1);
        memcpy(copy, b.b, k);
        cr_assert_eq(sd_kwire_quorum_decode(copy, k, &leader, voters, &n, 8, &err), -1, "%zu bytes",
                     k);
        free(copy);
    }
}

Test(kwire, opening_a_port_nobody_listens_on_fails_with_the_reason)
{
    struct sd_err err = {0};

    cr_assert_null(sd_kwire_open("127.0.0.1", 1, 2000, &err));
    cr_assert_eq(err.code, SD_ERR_TRANSIENT);
    cr_assert(strstr(err.text, "127.0.0.1:1") != NULL && strstr(err.text, "refused") != NULL, "%s",
              err.text);
}
