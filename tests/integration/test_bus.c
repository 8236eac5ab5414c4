/* The bus against the real servers: Kafka round trip, migrations, malformed
 * events dead-lettered, outbox and inbox across SIGKILL. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sipdrain/event.h"
#include "sipdrain/kafka.h"
#include "sipdrain/outbox.h"
#include "sipdrain/pg.h"
#include "support.h"

static void dr_count(void *opaque, const struct sd_err *err, void *arg)
{
    int *counts = arg;

    counts[err ? 1 : 0]++;
    counts[2] += (int)(intptr_t)opaque;
}

Test(kafka, round_trip_through_the_broker_keeps_key_value_headers)
{
    char topic[128], value[64], hv[64];
    int counts[3] = {0, 0, 0};
    struct sd_err err = {0};
    struct sd_kafka_header h[1] = {{"sipdrain.test", "yes"}};
    struct sd_kafka_producer *p;
    struct sdt_msgs got;
    int seen[100] = {0};

    sdt_topic_create(topic, sizeof(topic), "roundtrip", 3);
    p = sd_kafka_producer_new(sdt_brokers(), "test-roundtrip", dr_count, counts, &err);
    cr_assert_not_null(p, "%s", err.text);
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof(key), "agent-%d", i % 7);
        snprintf(value, sizeof(value), "value-%d", i);
        cr_assert_eq(sd_kafka_produce(p, topic, key, strlen(key), value, strlen(value), h, 1,
                                      (void *)(intptr_t)1, &err),
                     0, "%s", err.text);
    }
    cr_assert_eq(sd_kafka_producer_flush(p, 30000), 0);
    sd_kafka_producer_poll(p);
    cr_expect_eq(counts[0], 100, "delivery reports ok");
    cr_expect_eq(counts[1], 0, "delivery reports failed");
    cr_expect_eq(counts[2], 100, "msg opaque passed through");
    sd_kafka_producer_free(p);

    got = sdt_consume(topic, 100, 30000);
    cr_assert_eq(got.n, 100);
    for (size_t i = 0; i < got.n; i++) {
        int n = atoi(got.m[i].value + strlen("value-"));
        cr_assert(n >= 0 && n < 100);
        seen[n]++;
        cr_expect_eq(strncmp(got.m[i].key, "agent-", 6), 0);
        cr_expect_eq(atoi(got.m[i].key + 6), n % 7, "key travels with its value");
        cr_expect_eq(sdt_header(&got.m[i], "sipdrain.test", hv, sizeof(hv)), 0);
        cr_expect_str_eq(hv, "yes");
    }
    for (int i = 0; i < 100; i++)
        cr_expect_eq(seen[i], 1, "value-%d seen %d times", i, seen[i]);
    sdt_msgs_free(&got);
}

Test(pg, migrations_apply_once_in_order_and_an_edited_one_is_an_error)
{
    char dsn[512], dir[] = "/tmp/sd-mig-XXXXXX", path[600], cmd[1024];
    struct sd_err err = {0};
    struct sd_pg *pg;
    FILE *f;

    sdt_db_create(dsn, sizeof(dsn)); /* applies schemas/sql */
    snprintf(cmd, sizeof(cmd), "test $(ls '%s'/schemas/sql/*.sql | wc -l) -eq %ld",
             sdt_source_dir(), sdt_pg_scalar(dsn, "SELECT count(*) FROM schema_migrations"));
    cr_expect_eq(system(cmd), 0, "one schema_migrations row per file of schemas/sql");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cmd, sizeof(cmd), "cp '%s'/schemas/sql/*.sql %s/", sdt_source_dir(), dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/9999_extra.sql", dir);
    f = fopen(path, "w");
    fputs("CREATE TABLE extra (id int);\nINSERT INTO extra VALUES (1), (2);\n", f);
    fclose(f);

    pg = sd_pg_new(dsn, "test");
    cr_expect_eq(sd_pg_migrate(pg, dir, &err), 1, "only the new one: %s", err.text);
    cr_expect_eq(sd_pg_migrate(pg, dir, &err), 0, "nothing the second time: %s", err.text);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM extra"), 2, "applied exactly once");
    f = fopen(path, "a");
    fputs("-- edited\n", f);
    fclose(f);
    cr_expect_eq(sd_pg_migrate(pg, dir, &err), -1);
    cr_expect(strstr(err.text, "9999_extra.sql was edited after it was applied") != NULL, "%s",
              err.text);
    sd_pg_free(pg);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

Test(pg, sql_errors_are_invalid_not_transient_and_params_are_bound)
{
    char dsn[512];
    struct sd_err err = {0};
    struct sd_pg *pg;
    const char *evil[1] = {"x'); DROP TABLE agents; --"};
    PGresult *res;

    sdt_db_create(dsn, sizeof(dsn));
    pg = sd_pg_new(dsn, "test");
    cr_expect_null(sd_pg_query(pg, "SELECT nonsense FROM nowhere", 0, NULL, NULL, NULL, &err));
    cr_expect_eq(err.code, SD_ERR_INVALID, "%s", err.text);
    cr_expect(strstr(err.text, "42P01") != NULL, "%s", err.text);
    res = sd_pg_query(pg, "SELECT $1::text", 1, evil, NULL, NULL, &err);
    cr_assert_not_null(res, "%s", err.text);
    cr_expect_str_eq(PQgetvalue(res, 0, 0), evil[0]);
    PQclear(res);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM pg_tables WHERE tablename = 'agents'"),
                 1);
    sd_pg_free(pg);
}

Test(pg, unreachable_server_is_transient_and_backs_off)
{
    struct sd_err err = {0};
    struct sd_pg *pg = sd_pg_new("postgresql://postgres@127.0.0.1:1/none", "test");

    cr_expect_eq(sd_pg_ensure(pg, &err), -1);
    cr_expect_eq(err.code, SD_ERR_TRANSIENT);
    cr_expect(strstr(err.text, "cannot connect") != NULL, "%s", err.text);
    cr_expect_eq(sd_pg_ensure(pg, &err), -1);
    cr_expect(strstr(err.text, "retrying") != NULL, "second try waits for the back-off: %s",
              err.text);
    sd_pg_free(pg);
}

/* Reads a worker's one-line summary "k=v k=v". */
static long summary_value(const char *path, const char *key)
{
    char buf[512] = "", pat[64];
    FILE *f = fopen(path, "r");
    const char *p;

    cr_assert_not_null(f, "%s", path);
    if (fgets(buf, sizeof(buf), f) == NULL)
        buf[0] = '\0';
    fclose(f);
    snprintf(pat, sizeof(pat), "%s=", key);
    p = strstr(buf, pat);
    cr_assert_not_null(p, "%s not in \"%s\"", key, buf);
    return strtol(p + strlen(pat), NULL, 10);
}

Test(inbox, malformed_events_are_deadlettered_with_reason_and_the_consumer_carries_on)
{
    char dsn[512], topic[128], dlq[128], group[160], reason[512], src[160];
    size_t big_len = 1024 * 1024;
    char *big = malloc(big_len);
    struct sd_event ev;
    struct sd_err err = {0};
    char *valid[3];
    size_t valid_len[3];
    const void *values[9];
    size_t lens[9];
    struct sdt_msgs dead;
    int status;
    pid_t pid;
    /* What each bad message must be dead-lettered for. */
    static const char *const want[6] = {
        "invalid JSON", "data must be a JSON object",        "missing specversion",
        "invalid JSON", "larger than the 262144-byte limit", "handler refused: poison",
    };
    int found[6] = {0};

    sdt_db_create(dsn, sizeof(dsn));
    sdt_topic_create(topic, sizeof(topic), "in", 3);
    sdt_topic_create(dlq, sizeof(dlq), "deadletter", 1);
    snprintf(group, sizeof(group), "%s.group", topic);
    for (int i = 0; i < 3; i++) {
        json_t *data = i == 2 ? json_pack("{s:I, s:s}", "seq", (json_int_t)i, "fail", "poison")
                              : json_pack("{s:I}", "seq", (json_int_t)i);
        cr_assert_eq(sd_event_init(&ev, "test/src", "test.ping", data, &err), 0);
        valid[i] = sd_event_encode(&ev, &valid_len[i], &err);
        sd_event_clear(&ev);
    }
    memset(big, 'x', big_len);
    values[0] = valid[0];
    lens[0] = valid_len[0];
    values[1] = valid[1];
    lens[1] = valid_len[1] / 2; /* truncated JSON */
    values[2] = "{\"specversion\":\"1.0\",\"id\":\"3f1c6a9e-2b7d-4c1e-9a55-0d6f1e2a7b90\","
                "\"source\":\"s\",\"type\":\"test.ping\",\"time\":\"2026-11-26T06:40:00.000Z\","
                "\"data\":[1]}"; /* wrong type for data */
    values[3] = "{\"id\":\"3f1c6a9e-2b7d-4c1e-9a55-0d6f1e2a7b91\",\"source\":\"s\","
                "\"type\":\"test.ping\",\"time\":\"2026-11-26T06:40:00.000Z\",\"data\":{}}";
    values[4] = "{\"specversion\":\"1.0\",\"id\":\"\xc3\x28\"}"; /* invalid UTF-8 */
    values[5] = big;                                             /* 1 MiB */
    values[6] = valid[2];                                        /* handler refuses it */
    values[7] = valid[1];                                        /* valid, after the bad ones */
    lens[2] = strlen(values[2]);
    lens[3] = strlen(values[3]);
    lens[4] = strlen(values[4]);
    lens[5] = big_len;
    lens[6] = valid_len[2];
    lens[7] = valid_len[1];
    sdt_produce_raw(topic, values, lens, 8);

    {
        const char *args[] = {"consume", dsn, sdt_brokers(), topic, group, "2", dlq, NULL};
        const char *env[] = {"SIPDRAIN_TEST_EXPECT_DLQ=6", NULL};
        pid = sdt_worker_start(args, env, "/tmp/sd-dlq-worker.out");
    }
    status = sdt_wait(pid, 120000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker status %d", status);
    cr_expect_eq(summary_value("/tmp/sd-dlq-worker.out", "applied"), 2);
    cr_expect_eq(summary_value("/tmp/sd-dlq-worker.out", "deadlettered"), 6);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM test_effects"), 2,
                 "both valid events applied, once each");
    cr_expect_eq(
        sdt_pg_scalar(dsn, "SELECT count(DISTINCT seq) FROM test_effects WHERE seq IN (0, 1)"), 2);

    dead = sdt_consume(dlq, 6, 60000);
    cr_assert_eq(dead.n, 6, "dead-letter records: %zu", dead.n);
    for (size_t i = 0; i < dead.n; i++) {
        cr_assert_eq(sdt_header(&dead.m[i], "sipdrain.reason", reason, sizeof(reason)), 0);
        cr_expect_eq(sdt_header(&dead.m[i], "sipdrain.source_topic", src, sizeof(src)), 0);
        cr_expect_str_eq(src, topic);
        cr_expect_eq(sdt_header(&dead.m[i], "sipdrain.consumer", src, sizeof(src)), 0);
        cr_expect_str_eq(src, group);
        for (int w = 0; w < 6; w++) {
            if (!found[w] && strstr(reason, want[w]) != NULL) {
                found[w] = 1;
                break;
            }
        }
        if (dead.m[i].len == big_len)
            cr_expect_eq(memcmp(dead.m[i].value, big, big_len), 0, "raw 1 MiB kept unchanged");
        if (dead.m[i].len == lens[4])
            cr_expect_eq(memcmp(dead.m[i].value, values[4], lens[4]), 0, "raw bytes unchanged");
    }
    for (int w = 0; w < 6; w++)
        cr_expect(found[w], "no dead letter with reason \"%s\"", want[w]);
    sdt_msgs_free(&dead);
    for (int i = 0; i < 3; i++)
        free(valid[i]);
    free(big);
}

Test(outbox, rows_committed_before_a_sigkill_are_all_published_after_restart)
{
    char dsn[512], topic[128];
    long committed, unsent_before;
    struct sdt_msgs got;
    int status;
    pid_t pid;

    sdt_db_create(dsn, sizeof(dsn));
    sdt_topic_create(topic, sizeof(topic), "outbox", 6);
    {
        const char *args[] = {"produce", dsn, sdt_brokers(), topic, "300", NULL};
        const char *env[] = {"SIPDRAIN_CRASHPOINT=after_commit_before_publish:150", NULL};
        pid = sdt_worker_start(args, env, NULL);
    }
    status = sdt_wait(pid, 120000);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "worker status %d", status);
    /* Rows are deleted once delivered: the sequence counts the commits. */
    committed = sdt_pg_scalar(dsn, "SELECT last_value FROM outbox_id_seq");
    unsent_before = sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE failed_at IS NULL");
    cr_expect_eq(committed, 150, "killed right after the 150th COMMIT");
    cr_expect_geq(unsent_before, 1, "the last committed row was never published");
    cr_expect_leq(unsent_before, 150);

    {
        const char *args[] = {"relay", dsn, sdt_brokers(), NULL};
        pid = sdt_worker_start(args, NULL, NULL);
    }
    status = sdt_wait(pid, 120000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "relay status %d", status);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE failed_at IS NULL"), 0);

    /* Every committed row is on the topic (at least once; ids say which). */
    got = sdt_consume(topic, 1000, 15000);
    cr_expect_geq(got.n, 150);
    {
        int seen[150] = {0}, distinct = 0;
        for (size_t i = 0; i < got.n; i++) {
            struct sd_event ev;
            struct sd_err err = {0};
            cr_assert_eq(sd_event_parse(got.m[i].value, got.m[i].len, &ev, &err), 0, "%s",
                         err.text);
            json_int_t seq = json_integer_value(json_object_get(ev.data, "seq"));
            cr_assert(seq >= 0 && seq < 150, "seq %lld was never committed", (long long)seq);
            if (seen[seq]++ == 0)
                distinct++;
            sd_event_clear(&ev);
        }
        cr_expect_eq(distinct, 150, "every committed row published");
    }
    sdt_msgs_free(&got);
}

Test(inbox, events_are_applied_exactly_once_across_a_sigkill_before_offset_store)
{
    char dsn[512], topic[128], group[160];
    int status;
    pid_t pid;

    sdt_db_create(dsn, sizeof(dsn));
    sdt_topic_create(topic, sizeof(topic), "inbox", 3);
    snprintf(group, sizeof(group), "%s.group", topic);
    sdt_produce_pings(topic, 500, 0);
    {
        const char *args[] = {"consume", dsn, sdt_brokers(), topic, group, "500", NULL};
        const char *env[] = {"SIPDRAIN_CRASHPOINT=after_commit_before_store:200", NULL};
        pid = sdt_worker_start(args, env, NULL);
    }
    status = sdt_wait(pid, 120000);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "worker status %d", status);
    {
        /* Killed at the 200th effect's pass, after its batch's COMMIT. */
        long before = sdt_pg_scalar(dsn, "SELECT count(*) FROM test_effects");
        cr_expect(before >= 200 && before < 500, "%ld effects committed before the kill", before);
    }
    {
        const char *args[] = {"consume", dsn, sdt_brokers(), topic, group, "500", NULL};
        pid = sdt_worker_start(args, NULL, "/tmp/sd-inbox-worker.out");
    }
    status = sdt_wait(pid, 120000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker status %d", status);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM test_effects"), 500,
                 "each of the 500 events applied exactly once");
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(DISTINCT seq) FROM test_effects"), 500);
    cr_expect_geq(summary_value("/tmp/sd-inbox-worker.out", "duplicates"), 1,
                  "the event whose offset was not stored came again and was skipped");
}

/* Runs one relay of `owner` over dsn until `leave` rows are pending (or 60 s). */
static void relay_until_idle(const char *dsn, const char *owner, long leave)
{
    struct sd_err err = {0};
    struct sd_pg *pg = sd_pg_new(dsn, "test-relay");
    struct sd_outbox_relay *r;
    int64_t deadline = sd_mono_ms() + 60000;

    sd_outbox_set_owner(owner);
    r = sd_outbox_relay_new(pg, sdt_brokers(), "test-relay", &err);
    cr_assert_not_null(r, "%s", err.text);
    while (sd_mono_ms() < deadline) {
        int more = sd_outbox_relay_run(r, &err);
        if (more == 0 && sd_outbox_relay_inflight(r) == 0 &&
            sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE failed_at IS NULL") == leave)
            break;
        usleep(5000);
    }
    sd_outbox_relay_free(r);
    sd_pg_free(pg);
}

/* Writes one raw row for owner in its own transaction. */
static void add_row(const char *dsn, const char *owner, const char *topic, const void *value,
                    size_t len)
{
    struct sd_err err = {0};
    struct sd_pg *pg = sd_pg_new(dsn, "test-writer");

    sd_outbox_set_owner(owner);
    cr_assert_eq(sd_pg_begin(pg, &err), 0, "%s", err.text);
    cr_assert_eq(sd_outbox_add_raw(pg, topic, "k", 1, value, len, NULL, 0, &err), 0, "%s",
                 err.text);
    cr_assert_eq(sd_pg_commit(pg, &err), 0, "%s", err.text);
    sd_pg_free(pg);
}

Test(outbox, a_row_kafka_refuses_for_good_is_set_aside_and_blocks_nothing)
{
    char dsn[512], topic[128];
    size_t big_len = 5 * 1024 * 1024; /* over the 4 MiB the producer and broker allow */
    char *big = malloc(big_len);
    struct sdt_msgs got;

    cr_assert_not_null(big);
    memset(big, 'x', big_len);
    sdt_db_create(dsn, sizeof(dsn));
    sdt_topic_create(topic, sizeof(topic), "refused", 1);
    add_row(dsn, "test/refused", topic, "before", 6);
    add_row(dsn, "test/refused", topic, big, big_len);
    add_row(dsn, "test/refused", topic, "after", 5);
    relay_until_idle(dsn, "test/refused", 0);

    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox"), 1, "delivered rows deleted");
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL"
                                    " AND error LIKE '%too large%' AND length(payload) = 5242880"),
                 1, "the refused row is kept, with its reason");
    got = sdt_consume(topic, 2, 30000);
    cr_assert_eq(got.n, 2);
    cr_expect_str_eq(got.m[0].value, "before");
    cr_expect_str_eq(got.m[1].value, "after", "the row after it was not blocked");
    sdt_msgs_free(&got);
    free(big);
}

/* librdkafka's idempotent producer stops for good on a fatal error (in the
 * compose test: its PID refused while a three-node cluster's ACLs settled):
 * every later produce failed with _FATAL, and the relay set each row aside
 * - 112 drain events and edge commands never sent. Now a new producer
 * instance takes over and the rows go: none set aside, every one in the
 * topic. */
Test(outbox, a_producer_stopped_by_a_fatal_error_is_replaced_and_no_row_is_set_aside)
{
    char dsn[512], topic[128];
    struct sd_err err = {0};
    struct sd_pg *pg;
    struct sd_outbox_relay *r;
    struct sdt_msgs got;
    int64_t deadline;
    char value[16];
    unsigned gen;

    sdt_db_create(dsn, sizeof(dsn));
    sdt_topic_create(topic, sizeof(topic), "fatal", 1);
    for (int i = 0; i < 3; i++) {
        snprintf(value, sizeof(value), "before-%d", i);
        add_row(dsn, "test/fatal", topic, value, strlen(value));
    }
    pg = sd_pg_new(dsn, "test-relay");
    sd_outbox_set_owner("test/fatal");
    r = sd_outbox_relay_new(pg, sdt_brokers(), "test-relay", &err);
    cr_assert_not_null(r, "%s", err.text);
    deadline = sd_mono_ms() + 60000;
    while (sd_mono_ms() < deadline &&
           sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE failed_at IS NULL") > 0) {
        cr_assert_geq(sd_outbox_relay_run(r, &err), 0, "%s", err.text);
        usleep(5000);
    }
    gen = sd_kafka_producer_generation(sd_outbox_relay_producer(r));
    cr_assert_eq(sd_kafka_producer_test_fatal(sd_outbox_relay_producer(r), "test: fatal"), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(value, sizeof(value), "after-%d", i);
        add_row(dsn, "test/fatal", topic, value, strlen(value));
    }
    sd_outbox_set_owner("test/fatal");
    deadline = sd_mono_ms() + 60000;
    while (sd_mono_ms() < deadline &&
           sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE failed_at IS NULL") > 0) {
        cr_assert_geq(sd_outbox_relay_run(r, &err), 0, "%s", err.text);
        usleep(5000);
    }
    cr_expect_gt(sd_kafka_producer_generation(sd_outbox_relay_producer(r)), gen,
                 "a new producer instance");
    sd_outbox_relay_free(r);
    sd_pg_free(pg);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL"), 0,
                 "no row set aside");
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox"), 0, "every row delivered");
    got = sdt_consume(topic, 6, 30000);
    cr_assert_eq(got.n, 6, "the three rows before the fatal error and the three after");
    for (int i = 0; i < 3; i++) {
        snprintf(value, sizeof(value), "before-%d", i);
        cr_expect_str_eq(got.m[i].value, value);
        snprintf(value, sizeof(value), "after-%d", i);
        cr_expect_str_eq(got.m[3 + i].value, value);
    }
    sdt_msgs_free(&got);
}

Test(outbox, rows_of_an_owner_gone_for_good_are_taken_over_by_its_service_after_a_minute)
{
    char dsn[512], topic[128], sql[512];
    struct sdt_msgs got;

    sdt_db_create(dsn, sizeof(dsn));
    sdt_topic_create(topic, sizeof(topic), "orphans", 1);
    add_row(dsn, "sip-edge/edge-gone", topic, "orphan", 6);
    add_row(dsn, "sip-edge/edge-alive", topic, "recent", 6);
    add_row(dsn, "agent-state/as-gone", topic, "not mine", 8);
    /* Age the edge-gone and as-gone rows past SD_OUTBOX_ORPHAN_S; the
     * edge-alive one is recent. */
    snprintf(sql, sizeof(sql),
             "WITH u AS (UPDATE outbox SET created_at = now() - interval '%d seconds'"
             " WHERE owner LIKE '%%-gone' RETURNING 1) SELECT count(*) FROM u",
             SD_OUTBOX_ORPHAN_S + 5);
    cr_assert_eq(sdt_pg_scalar(dsn, sql), 2);

    relay_until_idle(dsn, "sip-edge/other", 2); /* none of the rows is its own */
    cr_expect_eq(
        sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE owner = 'sip-edge/edge-gone'"), 0,
        "the orphan was published and deleted");
    cr_expect_eq(
        sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE owner = 'sip-edge/edge-alive'"), 1,
        "a live owner's recent row is left to its own relay");
    cr_expect_eq(
        sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE owner = 'agent-state/as-gone'"), 1,
        "another service's orphan is left to that service (its Kafka identity)");
    got = sdt_consume(topic, 2, 5000);
    cr_assert_eq(got.n, 1, "published: only the orphan (%zu messages)", got.n);
    cr_expect_str_eq(got.m[0].value, "orphan");
    sdt_msgs_free(&got);
}

Test(inbox, a_second_consumer_joining_mid_burst_shares_the_work_and_nothing_is_lost_or_doubled,
     .timeout = 240)
{
    char dsn[512], topic[128], group[160];
    const long n = 3000;
    int64_t deadline;
    pid_t a, b;
    int status;

    sdt_db_create(dsn, sizeof(dsn));
    sdt_topic_create(topic, sizeof(topic), "rebalance", 6);
    snprintf(group, sizeof(group), "%s.group", topic);
    sdt_produce_pings(topic, (size_t)n, 0);
    {
        /* Each consumer only stops on SIGTERM: neither sees all n itself. */
        const char *args[] = {"consume", dsn, sdt_brokers(), topic, group, "1000000", NULL};
        /* 2 ms per effect: the burst lasts long enough for b to join. */
        const char *env_a[] = {"SIPDRAIN_TEST_OWNER=test/consumer-a",
                               "SIPDRAIN_TEST_APPLY_DELAY_US=2000", NULL};
        const char *env_b[] = {"SIPDRAIN_TEST_OWNER=test/consumer-b",
                               "SIPDRAIN_TEST_APPLY_DELAY_US=2000", NULL};
        a = sdt_worker_start(args, env_a, "/tmp/sd-rebalance-a.out");
        deadline = sd_mono_ms() + 60000;
        while (sdt_pg_scalar(
                   dsn, "SELECT count(*) FROM pg_tables WHERE tablename = 'test_effects'") == 0 ||
               sdt_pg_scalar(dsn, "SELECT count(*) FROM test_effects") < 200) {
            cr_assert(sd_mono_ms() < deadline, "consumer a never got going");
            usleep(20000);
        }
        b = sdt_worker_start(args, env_b, "/tmp/sd-rebalance-b.out");
    }
    deadline = sd_mono_ms() + 120000;
    while (sdt_pg_scalar(dsn, "SELECT count(*) FROM test_effects") < n && sd_mono_ms() < deadline)
        usleep(100000);
    sleep(2); /* room for a late duplicate to show */
    kill(a, SIGTERM);
    kill(b, SIGTERM);
    status = sdt_wait(a, 30000);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "consumer a status %d", status);
    status = sdt_wait(b, 30000);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "consumer b status %d", status);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM test_effects"), n,
                 "every event applied exactly once across the rebalance");
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(DISTINCT seq) FROM test_effects"), n);
    cr_expect_gt(summary_value("/tmp/sd-rebalance-b.out", "applied"), 0,
                 "the second consumer took partitions and applied some");
}

Test(pg, a_schema_change_under_a_prepared_statement_is_survived)
{
    char dsn[512];
    struct sd_err err = {0};
    struct sd_pg *pg, *admin;
    PGresult *res;

    sdt_db_create(dsn, sizeof(dsn));
    pg = sd_pg_new(dsn, "test");
    admin = sd_pg_new(dsn, "test-admin");
    cr_assert_geq(sd_pg_exec(admin, "CREATE TABLE shape (a int)", 0, NULL, &err), 0, "%s",
                  err.text);
    cr_assert_geq(sd_pg_exec(admin, "INSERT INTO shape VALUES (1)", 0, NULL, &err), 0, "%s",
                  err.text);
    res = sd_pg_query(pg, "SELECT * FROM shape", 0, NULL, NULL, NULL, &err);
    cr_assert_not_null(res, "%s", err.text);
    cr_expect_eq(PQnfields(res), 1);
    PQclear(res);
    /* A migration while the service runs: the prepared plan is outdated. */
    cr_assert_geq(sd_pg_exec(admin, "ALTER TABLE shape ADD COLUMN b int", 0, NULL, &err), 0, "%s",
                  err.text);
    res = sd_pg_query(pg, "SELECT * FROM shape", 0, NULL, NULL, NULL, &err);
    cr_assert_not_null(res, "outside a transaction it is run afresh: %s", err.text);
    cr_expect_eq(PQnfields(res), 2);
    PQclear(res);
    res = sd_pg_query(pg, "SELECT * FROM shape", 0, NULL, NULL, NULL, &err); /* prepared again */
    cr_assert_not_null(res, "%s", err.text);
    PQclear(res);

    cr_assert_geq(sd_pg_exec(admin, "ALTER TABLE shape ADD COLUMN c int", 0, NULL, &err), 0, "%s",
                  err.text);
    cr_assert_eq(sd_pg_begin(pg, &err), 0, "%s", err.text);
    cr_expect_null(sd_pg_query(pg, "SELECT * FROM shape", 0, NULL, NULL, NULL, &err));
    cr_expect_eq(err.code, SD_ERR_TRANSIENT, "inside a transaction: retry it (%s)", err.text);
    sd_pg_rollback(pg);
    cr_assert_eq(sd_pg_begin(pg, &err), 0, "%s", err.text);
    res = sd_pg_query(pg, "SELECT * FROM shape", 0, NULL, NULL, NULL, &err);
    cr_assert_not_null(res, "the retried transaction works: %s", err.text);
    cr_expect_eq(PQnfields(res), 3);
    PQclear(res);
    sd_pg_rollback(pg);
    sd_pg_free(admin);
    sd_pg_free(pg);
}

/* Frontend Sync messages in a PQtrace file: one per round trip. */
static int syncs_in(FILE *trace)
{
    char line[512];
    int n = 0;

    rewind(trace);
    while (fgets(line, sizeof(line), trace) != NULL)
        n += strstr(line, "\tF\t4\tSync") != NULL;
    return n;
}

Test(pg, a_lazy_begin_and_a_commit_with_the_last_statement_save_round_trips_not_meaning)
{
    char dsn[512];
    struct sd_err err = {0};
    struct sd_pg *pg;
    FILE *trace;
    const char *one[2] = {"1", "10"}, *two[2] = {"2", "20"}, *three[2] = {"3", "30"};
    const char *dup[2] = {"1", "99"};

    sdt_db_create(dsn, sizeof(dsn));
    pg = sd_pg_new(dsn, "test");
    cr_assert_geq(
        sd_pg_exec(pg, "CREATE TABLE lazy (a int UNIQUE DEFERRABLE INITIALLY DEFERRED, b int)", 0,
                   NULL, &err),
        0, "%s", err.text);
    /* Prepared once, so the transaction below is all there is to count. */
    cr_assert_eq(sd_pg_begin(pg, &err), 0, "%s", err.text);
    cr_assert_geq(sd_pg_exec(pg, "INSERT INTO lazy VALUES ($1::int, $2::int)", 2, one, &err), 0,
                  "%s", err.text);
    sd_pg_rollback(pg);

    trace = tmpfile();
    cr_assert_not_null(trace);
    PQtrace(sd_pg_conn(pg), trace);
    cr_assert_eq(sd_pg_begin_lazy(pg, &err), 0, "%s", err.text);
    cr_expect_neq(sd_pg_txn(pg), 0, "the transaction is open before its first statement");
    cr_assert_eq(sd_pg_exec(pg, "INSERT INTO lazy VALUES ($1::int, $2::int)", 2, one, &err), 1,
                 "%s", err.text);
    sd_pg_commit_next(pg);
    cr_assert_eq(sd_pg_exec(pg, "INSERT INTO lazy VALUES ($1::int, $2::int)", 2, two, &err), 1,
                 "%s", err.text);
    cr_assert_eq(sd_pg_commit(pg, &err), 0, "%s", err.text);
    PQuntrace(sd_pg_conn(pg));
    cr_expect_eq(syncs_in(trace), 2, "BEGIN + INSERT, INSERT + COMMIT: two round trips, not four");
    fclose(trace);
    cr_expect_eq(sd_pg_txn(pg), 0);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM lazy"), 2, "committed: seen elsewhere");

    /* Rolled back after its first statement: nothing stays. */
    cr_assert_eq(sd_pg_begin_lazy(pg, &err), 0, "%s", err.text);
    cr_assert_eq(sd_pg_exec(pg, "INSERT INTO lazy VALUES ($1::int, $2::int)", 2, three, &err), 1,
                 "%s", err.text);
    sd_pg_rollback(pg);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM lazy WHERE a = 3"), 0);

    /* The last statement fails: its COMMIT does not happen, the error is the statement's. */
    cr_assert_eq(sd_pg_begin_lazy(pg, &err), 0, "%s", err.text);
    cr_assert_eq(sd_pg_exec(pg, "INSERT INTO lazy VALUES ($1::int, $2::int)", 2, three, &err), 1,
                 "%s", err.text);
    sd_pg_commit_next(pg);
    cr_expect_lt(sd_pg_exec(pg, "INSERT INTO lazy VALUES (4, 1 / 0)", 0, NULL, &err), 0);
    cr_expect_eq(err.code, SD_ERR_INVALID, "%s", err.text);
    cr_expect(strstr(err.text, "22012") != NULL, "division by zero: %s", err.text);
    sd_pg_rollback(pg);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM lazy WHERE a >= 3"), 0);

    /* The statement is fine, the COMMIT is not (a deferred unique check):
     * sd_pg_commit says so. */
    cr_assert_eq(sd_pg_begin_lazy(pg, &err), 0, "%s", err.text);
    sd_pg_commit_next(pg);
    cr_assert_eq(sd_pg_exec(pg, "INSERT INTO lazy VALUES ($1::int, $2::int)", 2, dup, &err), 1,
                 "%s", err.text);
    err = (struct sd_err){0};
    cr_expect_eq(sd_pg_commit(pg, &err), -1);
    cr_expect_eq(err.code, SD_ERR_INVALID, "%s", err.text);
    cr_expect(strstr(err.text, "23505") != NULL, "unique violation at COMMIT: %s", err.text);
    sd_pg_rollback(pg);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM lazy"), 2);

    /* Opened and closed with no statement between: nothing to do, and the
     * connection is not left in a transaction. */
    cr_assert_eq(sd_pg_begin_lazy(pg, &err), 0, "%s", err.text);
    sd_pg_commit_next(pg);
    cr_expect_eq(sd_pg_commit(pg, &err), 0, "%s", err.text);
    cr_expect_eq(sd_pg_txn(pg), 0);
    cr_expect_eq(sd_pg_exec(pg, "INSERT INTO lazy VALUES ($1::int, $2::int)", 2, three, &err), 1,
                 "%s", err.text);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM lazy"), 3, "autocommit as before");
    sd_pg_free(pg);
}

Test(outbox, several_events_added_in_one_statement_are_published_in_order_with_their_keys)
{
    char dsn[512], topic[128];
    struct sd_event evs[5];
    struct sd_outbox_item items[5];
    const char *keys[5] = {"a1", "a2", NULL, "a4", "a5"};
    struct sd_err err = {0};
    struct sd_pg *pg;
    struct sdt_msgs got;

    sdt_db_create(dsn, sizeof(dsn));
    sdt_topic_create(topic, sizeof(topic), "many", 1);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(
            sd_event_init(&evs[i], "test/many", "test.ping", json_pack("{s:i}", "seq", i), &err),
            0);
        items[i] = (struct sd_outbox_item){topic, keys[i], &evs[i]};
    }
    sd_outbox_set_owner("test/many");
    pg = sd_pg_new(dsn, "test-writer");
    cr_assert_eq(sd_pg_begin(pg, &err), 0, "%s", err.text);
    cr_assert_eq(sd_outbox_add_many(pg, items, 5, &err), 0, "%s", err.text);
    cr_assert_eq(sd_pg_commit(pg, &err), 0, "%s", err.text);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE owner = 'test/many'"), 5);
    sd_pg_free(pg);
    relay_until_idle(dsn, "test/many", 0);

    got = sdt_consume(topic, 5, 30000);
    cr_assert_eq(got.n, 5);
    for (int i = 0; i < 5; i++) {
        struct sd_event back;
        cr_assert_eq(sd_event_parse(got.m[i].value, got.m[i].len, &back, &err), 0, "%s", err.text);
        cr_expect_str_eq(back.id, evs[i].id, "row %d in the order written", i);
        cr_expect_str_eq(got.m[i].key, keys[i] ? keys[i] : "", "row %d's key", i);
        sd_event_clear(&back);
        sd_event_clear(&evs[i]);
    }
    sdt_msgs_free(&got);
}
