/* inbox.c - consume with exactly-once effects (see sipdrain/inbox.h). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sipdrain/fault.h"
#include "sipdrain/inbox.h"
#include "sipdrain/log.h"
#include "sipdrain/outbox.h"

#define INBOX_BATCH        500
#define INBOX_TICK_MS      100
#define INBOX_RETRY_MIN_MS 100
#define INBOX_RETRY_MAX_MS 2000
/* Messages applied in one transaction at most: only what is already queued
 * is batched, so at low rates a batch is one message and adds no latency. */
#define INBOX_TX_MAX 64

struct sd_inbox_consumer {
    struct sd_pg *pg;
    struct sd_kafka_consumer *kc;
    char name[128];
    char deadletter[128];
    sd_inbox_handler *handler;
    void *arg;
    /* taken from Kafka, not yet finished; held back by a transient error */
    rd_kafka_message_t *batch[INBOX_TX_MAX];
    int nbatch;
    int retry_ms;
    struct sd_inbox_stats stats;
    struct sd_loop *loop;
    int timer;
};

int sd_inbox_claim(struct sd_pg *pg, const char *consumer, const char *event_id, struct sd_err *err)
{
    const char *values[2] = {consumer, event_id};
    int n = sd_pg_exec(pg,
                       "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)"
                       " ON CONFLICT DO NOTHING",
                       2, values, err);

    return n < 0 ? -1 : n == 1;
}

struct sd_inbox_consumer *sd_inbox_consumer_new(struct sd_pg *pg, struct sd_kafka_consumer *kc,
                                                const char *name, const char *deadletter_topic,
                                                sd_inbox_handler *handler, void *arg)
{
    struct sd_inbox_consumer *ic = calloc(1, sizeof(*ic));

    if (ic == NULL)
        return NULL;
    ic->pg = pg;
    ic->kc = kc;
    snprintf(ic->name, sizeof(ic->name), "%s", name);
    snprintf(ic->deadletter, sizeof(ic->deadletter), "%s",
             deadletter_topic ? deadletter_topic : SD_TOPIC_DEADLETTER);
    ic->handler = handler;
    ic->arg = arg;
    return ic;
}

/* The dead-letter record of m (schemas/README.md): raw key and value, the
 * reason and the origin in headers, through the outbox. Inside the caller's
 * transaction. */
static int add_deadletter(struct sd_pg *pg, const rd_kafka_message_t *m, const char *consumer,
                          const char *topic, const char *reason, struct sd_err *err)
{
    char partition[16], offset[32];
    struct sd_kafka_header hdrs[5] = {
        {"sipdrain.reason", reason},
        {"sipdrain.source_topic", rd_kafka_topic_name(m->rkt)},
        {"sipdrain.source_partition", partition},
        {"sipdrain.source_offset", offset},
        {"sipdrain.consumer", consumer},
    };

    snprintf(partition, sizeof(partition), "%d", (int)m->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)m->offset);
    return sd_outbox_add_raw(pg, topic ? topic : SD_TOPIC_DEADLETTER, m->key, m->key_len,
                             m->payload ? m->payload : "", m->len, hdrs, 5, err);
}

int sd_inbox_deadletter(struct sd_pg *pg, const rd_kafka_message_t *m, const char *consumer,
                        const char *topic, const char *reason, struct sd_err *err)
{
    if (sd_pg_begin(pg, err) < 0)
        return -1;
    if (add_deadletter(pg, m, consumer, topic, reason, err) < 0 || sd_pg_commit(pg, err) < 0) {
        sd_pg_rollback(pg);
        return -1;
    }
    sd_log_warn("message dead-lettered",
                "consumer=%s topic=%s partition=%d offset=%lld reason=\"%s\"", consumer,
                rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, reason);
    return 0;
}

/* Writes the raw message and the reason to the dead-letter topic through the
 * outbox, so it is as durable as any effect. With an event id, the inbox row
 * is claimed in the same transaction: the same bad event is recorded once. */
static int deadletter(struct sd_inbox_consumer *ic, const rd_kafka_message_t *m, const char *reason,
                      const char *event_id, struct sd_err *err)
{
    int claimed = 1;

    if (sd_pg_begin(ic->pg, err) < 0)
        return -1;
    if (event_id != NULL && (claimed = sd_inbox_claim(ic->pg, ic->name, event_id, err)) < 0)
        goto fail;
    if (claimed && add_deadletter(ic->pg, m, ic->name, ic->deadletter, reason, err) < 0)
        goto fail;
    if (sd_pg_commit(ic->pg, err) < 0)
        goto fail;
    if (claimed) {
        ic->stats.deadlettered++;
        sd_log_warn("message dead-lettered",
                    "consumer=%s topic=%s partition=%d offset=%lld "
                    "reason=\"%s\"",
                    ic->name, rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset,
                    reason);
    } else {
        ic->stats.duplicates++;
    }
    return 0;
fail:
    sd_pg_rollback(ic->pg);
    return -1;
}

/* Applies one message. 0: finished (store its offset); -1: transient, keep it. */
static int process(struct sd_inbox_consumer *ic, const rd_kafka_message_t *m, struct sd_err *err)
{
    struct sd_event ev;
    struct sd_err herr = {0};
    int claimed, rc = -1;

    if (sd_event_parse(m->payload, m->len, &ev, err) < 0) {
        char reason[SD_ERR_TEXT_MAX];
        snprintf(reason, sizeof(reason), "%s", err->text);
        return deadletter(ic, m, reason, NULL, err);
    }
    if (sd_pg_begin(ic->pg, err) < 0)
        goto out;
    claimed = sd_inbox_claim(ic->pg, ic->name, ev.id, err);
    if (claimed < 0) {
        sd_pg_rollback(ic->pg);
        goto out;
    }
    if (claimed == 0) {
        sd_pg_rollback(ic->pg);
        ic->stats.duplicates++;
        sd_log_debug("duplicate event skipped", "consumer=%s event=%s", ic->name, ev.id);
        rc = 0;
        goto out;
    }
    if (ic->handler(ic->pg, &ev, m, ic->arg, &herr) < 0) {
        sd_pg_rollback(ic->pg);
        if (herr.code == SD_ERR_TRANSIENT) {
            *err = herr;
            goto out;
        }
        rc = deadletter(ic, m, herr.text, ev.id, err);
        goto out;
    }
    if (sd_pg_commit(ic->pg, err) < 0)
        goto out;
    sd_crashpoint("after_commit_before_store");
    ic->stats.applied++;
    ic->stats.batches++;
    rc = 0;
out:
    sd_event_clear(&ev);
    return rc;
}

/* One by one, each in its own transaction: the slow path for a batch with
 * bad input or a failing handler. Returns how many finished from the front. */
static int apply_each(struct sd_inbox_consumer *ic, struct sd_err *err)
{
    for (int i = 0; i < ic->nbatch; i++) {
        if (process(ic, ic->batch[i], err) < 0)
            return i;
    }
    return ic->nbatch;
}

/* Applies the whole batch in one transaction: one statement claims every
 * event id, then each new event's handler runs. Anything unusual (an event
 * that does not parse, a handler error) rolls back and takes the one by one
 * path, which dead-letters or holds back precisely. Returns how many
 * messages finished from the front of the batch. */
static int apply_batch(struct sd_inbox_consumer *ic, struct sd_err *err)
{
    struct sd_event evs[INBOX_TX_MAX];
    char ids[INBOX_TX_MAX * (SD_EVENT_ID_LEN + 1) + 3];
    const char *values[2] = {ic->name, ids};
    int fresh[INBOX_TX_MAX] = {0};
    int n = ic->nbatch, parsed = 0, applied = 0, rc = 0;
    struct sd_err herr = {0};
    PGresult *res = NULL;
    size_t pos = 0;

    if (n == 1)
        return process(ic, ic->batch[0], err) < 0 ? 0 : 1;
    for (; parsed < n; parsed++) {
        const rd_kafka_message_t *m = ic->batch[parsed];
        if (sd_event_parse(m->payload, m->len, &evs[parsed], err) < 0)
            goto slow;
    }
    ids[pos++] = '{';
    for (int i = 0; i < n; i++)
        pos += (size_t)snprintf(ids + pos, sizeof(ids) - pos, "%s%s", i ? "," : "", evs[i].id);
    ids[pos++] = '}';
    ids[pos] = '\0';
    if (sd_pg_begin(ic->pg, err) < 0)
        goto out;
    res = sd_pg_query(ic->pg,
                      "INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::text[])"
                      " ON CONFLICT DO NOTHING RETURNING event_id",
                      2, values, NULL, NULL, err);
    if (res == NULL)
        goto rollback;
    /* Mark the first message of each newly claimed id. */
    for (int r = 0; r < PQntuples(res); r++) {
        for (int i = 0; i < n; i++) {
            if (strcmp(evs[i].id, PQgetvalue(res, r, 0)) == 0) {
                fresh[i] = 1;
                break;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (!fresh[i])
            continue;
        if (ic->handler(ic->pg, &evs[i], ic->batch[i], ic->arg, &herr) < 0) {
            sd_pg_rollback(ic->pg);
            goto slow;
        }
        applied++;
    }
    if (sd_pg_commit(ic->pg, err) < 0)
        goto rollback;
    for (int i = 0; i < applied; i++)
        sd_crashpoint("after_commit_before_store");
    ic->stats.applied += (unsigned long)applied;
    ic->stats.duplicates += (unsigned long)(n - applied);
    ic->stats.batches++;
    rc = n;
    goto out;
rollback:
    sd_pg_rollback(ic->pg);
    rc = 0;
    goto out;
slow:
    for (int i = 0; i < parsed; i++)
        sd_event_clear(&evs[i]);
    parsed = 0;
    PQclear(res);
    return apply_each(ic, err);
out:
    for (int i = 0; i < parsed; i++)
        sd_event_clear(&evs[i]);
    PQclear(res);
    return rc;
}

int sd_inbox_consumer_run(struct sd_inbox_consumer *ic, int max, int *retry_ms)
{
    struct sd_err err = {0};
    int done = 0;

    *retry_ms = 0;
    while (done < max) {
        rd_kafka_message_t *m;
        int finished;

        while (ic->nbatch < INBOX_TX_MAX && (m = sd_kafka_consumer_poll(ic->kc)) != NULL)
            ic->batch[ic->nbatch++] = m;
        if (ic->nbatch == 0)
            break;
        finished = apply_batch(ic, &err);
        for (int i = 0; i < finished; i++) {
            struct sd_err serr;
            if (sd_kafka_consumer_store(ic->kc, ic->batch[i], &serr) < 0)
                sd_log_info("offset not stored", "consumer=%s reason=\"%s\"", ic->name, serr.text);
            rd_kafka_message_destroy(ic->batch[i]);
        }
        memmove(ic->batch, ic->batch + finished,
                (size_t)(ic->nbatch - finished) * sizeof(ic->batch[0]));
        ic->nbatch -= finished;
        done += finished;
        if (ic->nbatch > 0) {
            ic->stats.retries++;
            ic->retry_ms = ic->retry_ms ? ic->retry_ms * 2 : INBOX_RETRY_MIN_MS;
            if (ic->retry_ms > INBOX_RETRY_MAX_MS)
                ic->retry_ms = INBOX_RETRY_MAX_MS;
            *retry_ms = ic->retry_ms;
            sd_log_warn("messages held back, will retry",
                        "consumer=%s count=%d retry_ms=%d reason=\"%s\"", ic->name, ic->nbatch,
                        ic->retry_ms, err.text);
            break;
        }
        ic->retry_ms = 0;
    }
    return done;
}

static int64_t run_from_loop(struct sd_inbox_consumer *ic)
{
    int retry_ms = 0;
    int n = sd_inbox_consumer_run(ic, INBOX_BATCH, &retry_ms);

    if (retry_ms > 0)
        return retry_ms;
    return n >= INBOX_BATCH ? 0 : INBOX_TICK_MS; /* batches may overshoot max */
}

static int64_t on_tick(struct sd_loop *loop, void *arg)
{
    (void)loop;
    return run_from_loop(arg);
}

static void on_readable(struct sd_loop *loop, int fd, short revents, void *arg)
{
    struct sd_inbox_consumer *ic = arg;

    (void)fd;
    (void)revents;
    if (ic->retry_ms > 0)
        return; /* held back: the retry timer owns the batch */
    if (run_from_loop(ic) == 0) {
        sd_loop_del_timer(loop, ic->timer);
        ic->timer = sd_loop_add_timer(loop, 0, on_tick, ic);
    }
}

int sd_inbox_consumer_attach(struct sd_inbox_consumer *ic, struct sd_loop *loop)
{
    ic->loop = loop;
    if (sd_loop_add_fd(loop, sd_kafka_consumer_fd(ic->kc), POLLIN, on_readable, ic) < 0)
        return -1;
    ic->timer = sd_loop_add_timer(loop, 0, on_tick, ic);
    return ic->timer < 0 ? -1 : 0;
}

const struct sd_inbox_stats *sd_inbox_consumer_stats(const struct sd_inbox_consumer *ic)
{
    return &ic->stats;
}

void sd_inbox_consumer_free(struct sd_inbox_consumer *ic)
{
    if (ic == NULL)
        return;
    if (ic->loop != NULL) {
        sd_loop_del_fd(ic->loop, sd_kafka_consumer_fd(ic->kc));
        sd_loop_del_timer(ic->loop, ic->timer);
    }
    for (int i = 0; i < ic->nbatch; i++)
        rd_kafka_message_destroy(ic->batch[i]);
    free(ic);
}
