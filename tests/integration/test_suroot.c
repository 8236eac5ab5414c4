/* libcommon's Kafka producer and consumer inside sofia-sip's su_root, as
 * sip-edge runs them: wake-up fds registered with su_root_register, a
 * su_timer tick, every callback on the su_root thread, and no step of the
 * loop ever blocked on Kafka. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>

#include "sipdrain/event.h"
#include "sipdrain/kafka.h"
#include "sipdrain/suroot.h"
#include "support.h"

#define N 200

struct ctx {
    struct sd_kafka_producer *p;
    struct sd_kafka_consumer *c;
    int delivered, failed, received;
    int seen[N];
};

static void on_dr(void *opaque, const struct sd_err *err, void *arg)
{
    struct ctx *x = arg;

    (void)opaque;
    if (err)
        x->failed++;
    else
        x->delivered++;
}

static void producer_ready(void *arg)
{
    sd_kafka_producer_poll(((struct ctx *)arg)->p);
}

static void consumer_ready(void *arg)
{
    struct ctx *x = arg;
    rd_kafka_message_t *m;
    struct sd_err err;

    while ((m = sd_kafka_consumer_poll(x->c)) != NULL) {
        int i = atoi((const char *)m->payload);
        if (i >= 0 && i < N && x->seen[i]++ == 0)
            x->received++;
        cr_expect_eq(sd_kafka_consumer_store(x->c, m, &err), 0, "%s", err.text);
        rd_kafka_message_destroy(m);
    }
}

Test(suroot, producer_and_consumer_run_inside_su_root_without_blocking_it, .timeout = 120)
{
    char topic[128], value[16];
    struct ctx x = {0};
    struct sd_err err = {0};
    const char *topics[1] = {topic};
    struct sd_suroot_watch *pw, *cw;
    su_root_t *root;
    int64_t deadline, longest = 0;

    sdt_topic_create(topic, sizeof(topic), "suroot", 3);
    cr_assert_eq(su_init(), 0);
    root = su_root_create(NULL);
    cr_assert_not_null(root);
    x.p = sd_kafka_producer_new(sdt_brokers(), "test-suroot", on_dr, &x, &err);
    cr_assert_not_null(x.p, "%s", err.text);
    x.c = sd_kafka_consumer_new(sdt_brokers(), topic, "test-suroot", topics, 1,
                                SD_KAFKA_FETCH_PROMPT, &err);
    cr_assert_not_null(x.c, "%s", err.text);
    pw = sd_suroot_watch_new(root, sd_kafka_producer_fd(x.p), 100, producer_ready, &x);
    cw = sd_suroot_watch_new(root, sd_kafka_consumer_fd(x.c), 100, consumer_ready, &x);
    cr_assert(pw != NULL && cw != NULL);

    for (int i = 0; i < N; i++) {
        snprintf(value, sizeof(value), "%d", i);
        cr_assert_eq(sd_kafka_produce(x.p, topic, value, strlen(value), value, strlen(value), NULL,
                                      0, NULL, &err),
                     0, "%s", err.text);
    }
    deadline = sd_mono_ms() + 60000;
    while ((x.delivered < N || x.received < N) && sd_mono_ms() < deadline) {
        int64_t t0 = sd_mono_ms(), took;
        su_root_step(root, 50);
        took = sd_mono_ms() - t0;
        if (took > longest)
            longest = took;
    }
    cr_expect_eq(x.delivered, N, "delivery reports served from su_root");
    cr_expect_eq(x.failed, 0);
    cr_expect_eq(x.received, N, "messages consumed from su_root");
    /* A step waits at most its 50 ms timeout; Kafka never holds it longer. */
    cr_expect_lt(longest, 500, "longest su_root step %lld ms", (long long)longest);

    sd_suroot_watch_free(pw);
    sd_suroot_watch_free(cw);
    sd_kafka_consumer_free(x.c);
    sd_kafka_producer_free(x.p);
    su_root_destroy(root);
    su_deinit();
}
