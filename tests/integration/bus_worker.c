/* bus_worker - the producing / consuming process of the bus integration
 * tests and of bench/bus.sh. It is built from libcommon exactly as a service
 * is: outbox rows written in transactions and relayed; an inbox consumer
 * whose effect is a row in test_effects.
 *
 *   bus_worker produce DSN BROKERS TOPIC N    N events through the outbox, then relay
 *   bus_worker relay   DSN BROKERS            relay until nothing is unsent
 *   bus_worker topic   BROKERS NAME PARTITIONS create a topic (benchmarks; replication
 *                                             $SIPDRAIN_KAFKA_REPLICATION, 1 by default)
 *   bus_worker dump    BROKERS TOPIC          every message on TOPIC now, one value a line
 *   bus_worker send    BROKERS TOPIC KEY VALUE one message, delivery awaited (bench/drain.sh)
 *                                             (tests/e2e/migration.sh)
 *   bus_worker rawproduce BROKERS TOPIC N     the peer of bench/bus.sh: Kafka alone,
 *   bus_worker rawconsume BROKERS TOPIC GROUP N  no outbox, no inbox, no database
 *   bus_worker consume DSN BROKERS TOPIC GROUP N [DEADLETTER_TOPIC]
 *                                             apply until N distinct effects (and
 *                                             $SIPDRAIN_TEST_EXPECT_DLQ dead letters)
 *
 * SIPDRAIN_CRASHPOINT picks a point to die at (sipdrain/fault.h);
 * SIPDRAIN_TEST_PACE_MS slows produce down so a server can be restarted
 * in the middle; SIPDRAIN_TEST_RATE (events/s, on a fixed schedule),
 * SIPDRAIN_TEST_BATCH (events per transaction), SIPDRAIN_TEST_WARMUP and
 * SIPDRAIN_TEST_OWNER shape it for bench/bus.sh. Prints one summary line on stdout. Exit 0 done, 3 timeout.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sipdrain/event.h"
#include "sipdrain/fault.h"
#include "sipdrain/inbox.h"
#include "sipdrain/kafka.h"
#include "sipdrain/log.h"
#include "sipdrain/loop.h"
#include "sipdrain/outbox.h"
#include "sipdrain/pg.h"

#define WORKER_TIMEOUT_MS 120000

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long env_long(const char *name, long def)
{
    const char *v = getenv(name);
    return v ? strtol(v, NULL, 10) : def;
}

/* Counts rows not yet sent; -1 when the database is away. */
static long unsent(struct sd_pg *pg)
{
    struct sd_err err;
    PGresult *res = sd_pg_query(pg, "SELECT count(*) FROM outbox WHERE failed_at IS NULL", 0, NULL,
                                NULL, NULL, &err);
    long n;

    if (res == NULL)
        return -1;
    n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

/* Runs the relay until every row is sent and acknowledged. */
static int relay_until_empty(struct sd_pg *pg, struct sd_outbox_relay *relay, int64_t deadline)
{
    struct sd_err err;

    while (sd_mono_ms() < deadline) {
        int more = sd_outbox_relay_run(relay, &err);
        if (more == 0 && sd_outbox_relay_inflight(relay) == 0 && unsent(pg) == 0)
            return 0;
        sleep_ms(more == 1 ? 0 : 5);
    }
    return -1;
}

/* One event (seq -1) through the whole path before measuring: the producer
 * has its producer id and topic metadata, and the consumer (which must count
 * it) has joined its group. bench/bus.sh leaves seq -1 out of its figures. */
static int warm_up(struct sd_pg *pg, struct sd_pg *rpg, struct sd_outbox_relay *relay,
                   const char *topic, int64_t deadline)
{
    struct sd_event ev;
    struct sd_err err = {0};
    PGresult *res;

    if (sd_event_init(&ev, "test/bus-worker", "test.ping", json_pack("{s:i}", "seq", -1), &err) < 0)
        return -1;
    if (sd_pg_begin(pg, &err) < 0 || sd_outbox_add(pg, topic, "warm-up", &ev, &err) < 0 ||
        sd_pg_commit(pg, &err) < 0) {
        sd_event_clear(&ev);
        fprintf(stderr, "warm-up: %s\n", err.text);
        return -1;
    }
    sd_event_clear(&ev);
    if (relay_until_empty(rpg, relay, deadline) < 0)
        return -1;
    while (sd_mono_ms() < deadline) {
        long n = 0;
        res = sd_pg_query(pg, "SELECT count(*) FROM test_effects WHERE seq = -1", 0, NULL, NULL,
                          NULL, &err);
        if (res != NULL) {
            n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
            PQclear(res);
        }
        if (n > 0)
            return 0;
        sleep_ms(20);
    }
    return -1;
}

static int do_produce(const char *dsn, const char *brokers, const char *topic, long n)
{
    struct sd_pg *pg = sd_pg_new(dsn, "bus-worker"), *rpg = sd_pg_new(dsn, "bus-worker-relay");
    int64_t deadline = sd_mono_ms() + WORKER_TIMEOUT_MS;
    long pace = env_long("SIPDRAIN_TEST_PACE_MS", 0), retries = 0;
    long rate = env_long("SIPDRAIN_TEST_RATE", 0), batch = env_long("SIPDRAIN_TEST_BATCH", 1);
    int64_t start = sd_mono_ms();

    if (batch < 1)
        batch = 1;
    struct sd_outbox_relay *relay;
    struct sd_err err = {0};
    int rc = 3;

    relay = sd_outbox_relay_new(rpg, brokers, "bus-worker", &err);
    if (relay == NULL) {
        fprintf(stderr, "relay: %s\n", err.text);
        return 1;
    }
    if (env_long("SIPDRAIN_TEST_WARMUP", 0) && warm_up(pg, rpg, relay, topic, deadline) < 0)
        goto out;
    start = sd_mono_ms();
    for (long i = 0; i < n;) {
        long in_tx = 0;
        if (sd_mono_ms() > deadline)
            goto out;
        if (sd_pg_begin(pg, &err) < 0)
            goto retry;
        {
            /* The transaction's events in one statement (sd_outbox_add_many). */
            struct sd_event evs[SD_OUTBOX_MANY_MAX];
            struct sd_outbox_item items[SD_OUTBOX_MANY_MAX];
            char keys[SD_OUTBOX_MANY_MAX][32];
            int added;

            for (; in_tx < batch && in_tx < SD_OUTBOX_MANY_MAX && i + in_tx < n; in_tx++) {
                if (sd_event_init(&evs[in_tx], "test/bus-worker", "test.ping",
                                  json_pack("{s:I}", "seq", (json_int_t)(i + in_tx)), &err) < 0) {
                    for (long k = 0; k < in_tx; k++)
                        sd_event_clear(&evs[k]);
                    goto out;
                }
                snprintf(keys[in_tx], sizeof(keys[in_tx]), "agent-%ld", (i + in_tx) % 97);
                items[in_tx] = (struct sd_outbox_item){topic, keys[in_tx], &evs[in_tx]};
            }
            added = sd_outbox_add_many(pg, items, (size_t)in_tx, &err);
            for (long k = 0; k < in_tx; k++)
                sd_event_clear(&evs[k]);
            if (added < 0)
                goto retry;
        }
        if (sd_pg_commit(pg, &err) < 0)
            goto retry;
        sd_crashpoint("after_commit_before_publish");
        i += in_tx;
        sd_outbox_relay_run(relay, &err);
        if (pace > 0)
            sleep_ms(pace);
        if (rate > 0) {
            /* Fixed schedule: event i is due at start + i / rate. */
            int64_t due = start + (int64_t)i * 1000 / rate;
            while (sd_mono_ms() < due) {
                sd_outbox_relay_run(relay, &err);
                sleep_ms(1);
            }
        }
        continue;
    retry:
        /* The database went away: the transaction is gone, write it again. */
        sd_pg_rollback(pg);
        retries++;
        sleep_ms(50);
    }
    if (relay_until_empty(rpg, relay, deadline) == 0)
        rc = 0;
out:
    printf("produced=%ld sent=%lu retries=%ld\n", n, sd_outbox_relay_sent(relay), retries);
    fflush(stdout);
    sd_outbox_relay_free(relay);
    sd_pg_free(pg);
    sd_pg_free(rpg);
    return rc;
}

static int do_relay(const char *dsn, const char *brokers)
{
    struct sd_pg *pg = sd_pg_new(dsn, "bus-worker-relay");
    struct sd_err err = {0};
    struct sd_outbox_relay *relay = sd_outbox_relay_new(pg, brokers, "bus-worker", &err);
    int rc;

    if (relay == NULL) {
        fprintf(stderr, "relay: %s\n", err.text);
        return 1;
    }
    rc = relay_until_empty(pg, relay, sd_mono_ms() + WORKER_TIMEOUT_MS) == 0 ? 0 : 3;
    printf("sent=%lu\n", sd_outbox_relay_sent(relay));
    fflush(stdout);
    sd_outbox_relay_free(relay);
    sd_pg_free(pg);
    return rc;
}

static long delay_us;

/* The effect: one row per applied event. No unique constraint on purpose:
 * a duplicate application would show as a second row. */
static int apply_ping(struct sd_pg *pg, const struct sd_event *ev, const rd_kafka_message_t *m,
                      void *arg, struct sd_err *err)
{
    json_t *seq = json_object_get(ev->data, "seq"); /* borrowed */
    json_t *fail = json_object_get(ev->data, "fail");
    char seqtext[32], created[32];
    const char *values[3] = {ev->id, seqtext, created};

    (void)m;
    (void)arg;
    if (delay_us > 0) /* SIPDRAIN_TEST_APPLY_DELAY_US: an effect that takes time */
        usleep((useconds_t)delay_us);
    if (json_is_string(fail))
        return sd_err_set(err, SD_ERR_INVALID, "handler refused: %s", json_string_value(fail));
    if (!json_is_integer(seq))
        return sd_err_set(err, SD_ERR_INVALID, "data.seq must be an integer");
    snprintf(seqtext, sizeof(seqtext), "%lld", (long long)json_integer_value(seq));
    snprintf(created, sizeof(created), "%.3f", (double)ev->time_ms / 1000.0);
    if (sd_pg_exec(pg,
                   "INSERT INTO test_effects (event_id, seq, created_at)"
                   " VALUES ($1, $2, to_timestamp($3))",
                   3, values, err) < 0)
        return -1;
    return 0;
}

struct consume_ctx {
    struct sd_pg *pg;
    struct sd_inbox_consumer *ic;
    long want, want_dlq, before;
    int64_t deadline;
    int rc;
};

/* Done when the effects of N distinct events exist: those found at start
 * (a previous run's) plus those applied since (the inbox counts only first
 * applications). Counting in memory keeps the check off the database. */
static int64_t check_done(struct sd_loop *loop, void *arg)
{
    struct consume_ctx *c = arg;
    const struct sd_inbox_stats *st = sd_inbox_consumer_stats(c->ic);

    if (sd_mono_ms() > c->deadline) {
        c->rc = 3;
        sd_loop_stop(loop);
        return -1;
    }
    long have = c->before + (long)st->applied;

    if (have >= c->want && (long)st->deadlettered >= c->want_dlq && unsent(c->pg) == 0) {
        c->rc = 0;
        sd_loop_stop(loop);
        return -1;
    }
    return 100;
}

/* SIGTERM/SIGINT: stop and print the summary (bench/bus.sh ends its
 * consumers this way once the table holds every effect). */
static void on_signal(struct sd_loop *loop, int signo, int count, void *arg)
{
    struct consume_ctx *c = arg;

    (void)signo;
    (void)count;
    c->rc = 0;
    sd_loop_stop(loop);
}

static int do_consume(const char *dsn, const char *brokers, const char *topic, const char *group,
                      long n, const char *dlq)
{
    struct sd_pg *pg = sd_pg_new(dsn, "bus-worker"), *rpg = sd_pg_new(dsn, "bus-worker-relay"),
                 *cpg = sd_pg_new(dsn, "bus-worker-check");
    struct consume_ctx ctx = {.pg = cpg,
                              .want = n,
                              .want_dlq = env_long("SIPDRAIN_TEST_EXPECT_DLQ", 0),
                              .deadline = sd_mono_ms() + WORKER_TIMEOUT_MS,
                              .rc = 3};
    PGresult *res;
    const char *topics[1] = {topic};
    struct sd_loop *loop = sd_loop_new();
    struct sd_kafka_consumer *kc = NULL;

    delay_us = env_long("SIPDRAIN_TEST_APPLY_DELAY_US", 0);
    struct sd_outbox_relay *relay = NULL;
    struct sd_err err = {0};
    const struct sd_inbox_stats *st;

    /* Several consumers may start together: one creates the table. */
    if (sd_pg_connect_wait(pg, 30000, &err) < 0 || sd_pg_begin(pg, &err) < 0 ||
        sd_pg_exec(pg, "SELECT pg_advisory_xact_lock(4242)", 0, NULL, &err) < 0 ||
        sd_pg_exec(pg,
                   "CREATE TABLE IF NOT EXISTS test_effects (event_id text NOT NULL,"
                   " seq bigint NOT NULL, created_at timestamptz NOT NULL,"
                   " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())",
                   0, NULL, &err) < 0 ||
        sd_pg_commit(pg, &err) < 0)
        goto fail;
    res = sd_pg_query(pg, "SELECT count(DISTINCT event_id) FROM test_effects", 0, NULL, NULL, NULL,
                      &err);
    if (res == NULL)
        goto fail;
    ctx.before = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    kc = sd_kafka_consumer_new(brokers, group, "bus-worker", topics, 1, SD_KAFKA_FETCH_BATCHED,
                               &err);
    if (kc == NULL)
        goto fail;
    relay = sd_outbox_relay_new(rpg, brokers, "bus-worker", &err);
    if (relay == NULL)
        goto fail;
    ctx.ic = sd_inbox_consumer_new(pg, kc, group, dlq, apply_ping, NULL);
    if (sd_inbox_consumer_attach(ctx.ic, loop) < 0 || sd_outbox_relay_attach(relay, loop) < 0 ||
        sd_loop_add_timer(loop, 100, check_done, &ctx) < 0 ||
        sd_loop_watch_signals(loop, on_signal, &ctx) < 0) {
        sd_err_set(&err, SD_ERR_INTERNAL, "loop registration failed");
        goto fail;
    }
    sd_loop_run(loop);
    st = sd_inbox_consumer_stats(ctx.ic);
    printf("applied=%lu duplicates=%lu deadlettered=%lu retries=%lu batches=%lu\n", st->applied,
           st->duplicates, st->deadlettered, st->retries, st->batches);
    fflush(stdout);
    goto out;
fail:
    fprintf(stderr, "consume: %s\n", err.text);
    ctx.rc = 1;
out:
    sd_inbox_consumer_free(ctx.ic);
    sd_outbox_relay_free(relay);
    sd_kafka_consumer_free(kc);
    sd_loop_free(loop);
    sd_pg_free(pg);
    sd_pg_free(rpg);
    sd_pg_free(cpg);
    return ctx.rc;
}

/* --- the peer: Kafka alone ---------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Produces n test.ping events straight to Kafka, at SIPDRAIN_TEST_RATE (0 =
 * as fast as possible). With SIPDRAIN_TEST_WARMUP it first sends seq -1
 * until SIPDRAIN_TEST_READY_FILE exists (the consumer has joined). */
static int raw_send(struct sd_kafka_producer *p, const char *topic, long seq)
{
    struct sd_err err = {0};
    struct sd_event ev;
    char key[32], *text;
    size_t len;

    if (sd_event_init(&ev, "test/bus-worker", "test.ping",
                      json_pack("{s:I}", "seq", (json_int_t)seq), &err) < 0)
        return -1;
    text = sd_event_encode(&ev, &len, &err);
    sd_event_clear(&ev);
    if (text == NULL)
        return -1;
    snprintf(key, sizeof(key), "agent-%ld", (seq < 0 ? 0 : seq) % 97);
    while (sd_kafka_produce(p, topic, key, strlen(key), text, len, NULL, 0, NULL, &err) < 0) {
        sd_kafka_producer_poll(p); /* local queue full: let deliveries drain */
        sleep_ms(1);
    }
    free(text);
    sd_kafka_producer_poll(p);
    return 0;
}

static int do_rawproduce(const char *brokers, const char *topic, long n)
{
    struct sd_err err = {0};
    struct sd_kafka_producer *p =
        sd_kafka_producer_new(brokers, "bus-worker-raw", NULL, NULL, &err);
    const char *ready = getenv("SIPDRAIN_TEST_READY_FILE");
    long rate = env_long("SIPDRAIN_TEST_RATE", 0), i;
    int64_t start, deadline = sd_mono_ms() + WORKER_TIMEOUT_MS;

    if (p == NULL) {
        fprintf(stderr, "rawproduce: %s\n", err.text);
        return 1;
    }
    /* Warm-up: seq -1 until the consumer has joined and seen one. */
    while (env_long("SIPDRAIN_TEST_WARMUP", 0) && ready != NULL && access(ready, F_OK) != 0 &&
           sd_mono_ms() < deadline) {
        raw_send(p, topic, -1);
        sd_kafka_producer_flush(p, 5000);
        sleep_ms(100);
    }
    start = sd_mono_ms();
    for (i = 0; i < n && sd_mono_ms() < deadline; i++) {
        if (raw_send(p, topic, i) < 0)
            break;
        while (rate > 0 && sd_mono_ms() < start + (int64_t)(i + 1) * 1000 / rate) {
            sd_kafka_producer_poll(p);
            sleep_ms(1);
        }
    }
    sd_kafka_producer_free(p); /* flushes */
    printf("produced=%ld\n", i);
    return i == n ? 0 : 3;
}

/* Consumes until n events with seq >= 0 arrived; prints the same figures as
 * bench/bus.sh computes for the bus: count, events/s (last arrival - first
 * event time), and p50/p99/max of arrival - event time, in ms. */
static int do_rawconsume(const char *brokers, const char *topic, const char *group, long n)
{
    struct sd_err err = {0};
    const char *topics[1] = {topic};
    const char *ready = getenv("SIPDRAIN_TEST_READY_FILE");
    struct sd_kafka_consumer *c = sd_kafka_consumer_new(brokers, group, "bus-worker-raw", topics, 1,
                                                        SD_KAFKA_FETCH_BATCHED, &err);
    int64_t *lat = calloc((size_t)n + 1, sizeof(*lat));
    int64_t first = 0, last = 0, deadline = sd_mono_ms() + WORKER_TIMEOUT_MS;
    long got = 0;

    if (c == NULL || lat == NULL) {
        fprintf(stderr, "rawconsume: %s\n", err.text);
        return 1;
    }
    while (got < n && sd_mono_ms() < deadline) {
        rd_kafka_message_t *m = sd_kafka_consumer_poll(c);
        struct sd_event ev;
        json_int_t seq;

        if (m == NULL) {
            struct pollfd pfd = {sd_kafka_consumer_fd(c), POLLIN, 0};
            poll(&pfd, 1, 100);
            continue;
        }
        if (sd_event_parse(m->payload, m->len, &ev, &err) == 0) {
            int64_t now = sd_wall_ms();
            seq = json_integer_value(json_object_get(ev.data, "seq"));
            if (seq < 0 && ready != NULL) {
                FILE *f = fopen(ready, "w");
                if (f != NULL)
                    fclose(f);
            } else if (seq >= 0) {
                if (got == 0 || ev.time_ms < first)
                    first = ev.time_ms;
                last = now;
                lat[got++] = now - ev.time_ms;
            }
            sd_event_clear(&ev);
        }
        rd_kafka_message_destroy(m);
    }
    qsort(lat, (size_t)got, sizeof(*lat), cmp_i64);
    if (got > 0)
        printf("%ld %.0f %lld %lld %lld\n", got,
               (double)got * 1000.0 / (double)(last > first ? last - first : 1),
               (long long)lat[(got - 1) / 2], (long long)lat[(got * 99 - 1) / 100],
               (long long)lat[got - 1]);
    free(lat);
    sd_kafka_consumer_free(c);
    return got == n ? 0 : 3;
}

/* Prints every message of topic up to its current end, one value a line. */
static int do_dump(const char *brokers, const char *topic)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_partition_list_t *parts;
    int64_t remaining = 0, deadline = sd_mono_ms() + 30000;

    struct sd_err err = {0};

    if (sd_kafka_conf_apply(conf, &err) < 0) {
        fprintf(stderr, "dump: %s\n", err.text);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "group.id", "bus-worker-dump", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
        (rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr))) == NULL) {
        fprintf(stderr, "dump: %s\n", errstr);
        return 1;
    }
    rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1) {
        fprintf(stderr, "dump: no metadata for %s\n", topic);
        return 1;
    }
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int64_t lo = 0, hi = 0;
        int32_t p = md->topics[0].partitions[i].id;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "dump: no watermarks for %s[%d]\n", topic, p);
            return 1;
        }
        remaining += hi - lo;
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = lo;
    }
    rd_kafka_assign(rk, parts);
    while (remaining > 0 && sd_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            printf("%.*s\n", (int)m->len, (const char *)m->payload);
            remaining--;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return remaining > 0 ? 3 : 0;
}

int main(int argc, char **argv)
{
    sd_log_init("bus-worker", NULL, getenv("SIPDRAIN_KAFKA_DEBUG") ? SD_LOG_DEBUG : SD_LOG_INFO);
    sd_kafka_properties_load_or_exit("bus-worker");
    /* produce and relay are one instance across a crash; consume another.
     * SIPDRAIN_TEST_OWNER names more producers apart (bench/bus.sh). */
    if (getenv("SIPDRAIN_TEST_OWNER") != NULL)
        sd_outbox_set_owner(getenv("SIPDRAIN_TEST_OWNER"));
    else
        sd_outbox_set_owner(argc > 1 && !strcmp(argv[1], "consume") ? "bus-worker/consumer"
                                                                    : "bus-worker/producer");
    if (argc == 6 && !strcmp(argv[1], "produce"))
        return do_produce(argv[2], argv[3], argv[4], strtol(argv[5], NULL, 10));
    if (argc == 5 && !strcmp(argv[1], "topic")) {
        struct sd_err err = {0};
        const char *topics[1] = {argv[3]};
        /* SIPDRAIN_KAFKA_REPLICATION: 3 on kafka-up.sh --cluster (its env). */
        if (sd_kafka_topics_create_replicated(argv[2], topics, 1, (int)strtol(argv[4], NULL, 10),
                                              (int)env_long("SIPDRAIN_KAFKA_REPLICATION", 1), 30000,
                                              &err) < 0) {
            fprintf(stderr, "topic: %s\n", err.text);
            return 1;
        }
        return 0;
    }
    if (argc == 6 && !strcmp(argv[1], "send")) {
        struct sd_err err = {0};
        struct sd_kafka_producer *p =
            sd_kafka_producer_new(argv[2], "bus-worker", NULL, NULL, &err);
        int rc = p != NULL &&
                         sd_kafka_produce(p, argv[3], argv[4], strlen(argv[4]), argv[5],
                                          strlen(argv[5]), NULL, 0, NULL, &err) == 0 &&
                         sd_kafka_producer_flush(p, 10000) == 0
                     ? 0
                     : 1;
        if (rc != 0)
            fprintf(stderr, "send: %s\n", err.text[0] ? err.text : "not delivered");
        sd_kafka_producer_free(p);
        return rc;
    }
    if (argc == 4 && !strcmp(argv[1], "dump"))
        return do_dump(argv[2], argv[3]);
    if (argc == 5 && !strcmp(argv[1], "rawproduce"))
        return do_rawproduce(argv[2], argv[3], strtol(argv[4], NULL, 10));
    if (argc == 6 && !strcmp(argv[1], "rawconsume"))
        return do_rawconsume(argv[2], argv[3], argv[4], strtol(argv[5], NULL, 10));
    if (argc == 4 && !strcmp(argv[1], "relay"))
        return do_relay(argv[2], argv[3]);
    if ((argc == 7 || argc == 8) && !strcmp(argv[1], "consume"))
        return do_consume(argv[2], argv[3], argv[4], argv[5], strtol(argv[6], NULL, 10),
                          argc == 8 ? argv[7] : NULL);
    fprintf(stderr, "usage: bus_worker produce|relay|consume ... (see the source)\n");
    return 2;
}
