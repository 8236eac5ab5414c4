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

static void run_with_restart(const char *restart_script)
{
    char dsn[512], topic[128], group[160], count[16];
    pid_t producer, consumer;
    int64_t deadline;
    int status;

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
        if (applied >= EVENTS / 4)
            break;
        cr_assert(sd_mono_ms() < deadline, "only %ld applied before the restart", applied);
        usleep(100000);
    }
    cr_assert_eq(sdt_script(restart_script), 0, "%s failed", restart_script);

    status = sdt_wait(producer, 240000);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "producer status %d", status);
    status = sdt_wait(consumer, 240000);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "consumer status %d", status);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM outbox WHERE failed_at IS NULL"), 0,
                 "every outbox row published");
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM test_effects"), EVENTS,
                 "every event applied exactly once");
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(DISTINCT seq) FROM test_effects"), EVENTS);
}

Test(restart, postgresql_restarted_mid_run_loses_nothing, .timeout = 400)
{
    run_with_restart("tests/scripts/pg-restart.sh");
}

Test(restart, kafka_broker_restarted_mid_run_loses_nothing, .timeout = 400)
{
    run_with_restart("tests/scripts/kafka-restart.sh");
}
