/* Servers restarted in the middle of a run: both sides reconnect and
 * nothing is lost (DESIGN.md §3: restarting Kafka or PostgreSQL loses
 * nothing). A producer writes through the outbox at a steady pace while a
 * consumer applies through the inbox; the server is restarted once a part
 * has gone through. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sipdrain/event.h"
#include "support.h"

#define EVENTS 400

struct outcome {
    int producer_status, consumer_status;
    long pending, effects, distinct_seqs;
    long applied_at_restart; /* effects committed when the restart began */
};

/* Runs producer and consumer across one restart of a server; returns what
 * the database says afterwards. */
static struct outcome run_with_restart(const char *restart_script)
{
    struct outcome o;
    char dsn[512], topic[128], group[160], count[16];
    pid_t producer, consumer;
    int64_t deadline;

    sdt_db_create(dsn, sizeof(dsn));
    sdt_topic_create(topic, sizeof(topic), "restart", 3);
    snprintf(group, sizeof(group), "%s.group", topic);
    snprintf(count, sizeof(count), "%d", EVENTS);
    {
        const char *args[] = {"consume", dsn, sdt_brokers(), topic, group, count, NULL};
        consumer = sdt_worker_start(args, NULL, "/tmp/sd-restart-consumer.out");
    }
    {
        const char *args[] = {"produce", dsn, sdt_brokers(), topic, count, NULL};
        const char *env[] = {"SIPDRAIN_TEST_PACE_MS=20", NULL};
        producer = sdt_worker_start(args, env, "/tmp/sd-restart-producer.out");
    }
    /* Restart once about a quarter has been applied: the rest crosses it. */
    deadline = sd_mono_ms() + 60000;
    for (;;) {
        long applied = sdt_pg_scalar(dsn, "SELECT count(*) FROM information_schema.tables"
                                          " WHERE table_name = 'test_effects'") == 1
                           ? sdt_pg_scalar(dsn, "SELECT count(*) FROM test_effects")
                           : 0;
        if (applied >= EVENTS / 4) {
            o.applied_at_restart = applied;
            break;
        }
        cr_assert(sd_mono_ms() < deadline, "only %ld applied before the restart", applied);
        usleep(100000);
    }
    cr_assert_eq(sdt_script(restart_script), 0, "%s failed", restart_script);

    o.producer_status = sdt_wait(producer, 240000);
    o.consumer_status = sdt_wait(consumer, 240000);
    o.pending = sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE failed_at IS NULL");
    o.effects = sdt_pg_scalar(dsn, "SELECT count(*) FROM test_effects");
    o.distinct_seqs = sdt_pg_scalar(dsn, "SELECT count(DISTINCT seq) FROM test_effects");
    return o;
}

static void expect_nothing_lost(const struct outcome *o)
{
    cr_expect(WIFEXITED(o->producer_status) && WEXITSTATUS(o->producer_status) == 0,
              "producer status %d", o->producer_status);
    cr_expect(WIFEXITED(o->consumer_status) && WEXITSTATUS(o->consumer_status) == 0,
              "consumer status %d", o->consumer_status);
    cr_expect_eq(o->pending, 0, "every outbox row published");
    cr_expect_eq(o->effects, EVENTS, "every event applied exactly once");
    cr_expect_eq(o->distinct_seqs, EVENTS);
}

Test(restart, postgresql_restarted_mid_run_loses_nothing, .timeout = 400)
{
    struct outcome o = run_with_restart("tests/scripts/pg-restart.sh");

    cr_expect_lt(o.applied_at_restart, EVENTS, "the restart came in the middle of the run");
    expect_nothing_lost(&o);
}

Test(restart, kafka_broker_restarted_mid_run_loses_nothing, .timeout = 400)
{
    struct outcome o = run_with_restart("tests/scripts/kafka-restart.sh");

    cr_expect_lt(o.applied_at_restart, EVENTS, "the restart came in the middle of the run");
    expect_nothing_lost(&o);
}
