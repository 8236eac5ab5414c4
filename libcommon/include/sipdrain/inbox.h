/* inbox.h - exactly-once effects on top of at-least-once delivery.
 *
 * For every message of a consumer group:
 *   parse (sipdrain/event.h) -- invalid: dead-letter record through the outbox
 *   BEGIN
 *   INSERT INTO inbox (consumer, event_id) ON CONFLICT DO NOTHING
 *     -- no row inserted: a duplicate, skip it
 *   the handler's effect + its outbox rows
 *   COMMIT
 *   store the offset (only now)
 * A handler error of SD_ERR_INVALID dead-letters the message (with the
 * handler's text as reason); SD_ERR_TRANSIENT (database away) keeps the
 * message and retries it with back-off before consuming anything else.
 */
#ifndef SIPDRAIN_INBOX_H
#define SIPDRAIN_INBOX_H

#include "sipdrain/err.h"
#include "sipdrain/event.h"
#include "sipdrain/kafka.h"
#include "sipdrain/loop.h"
#include "sipdrain/pg.h"

struct sd_inbox_consumer;

/* Runs inside the transaction. Return 0, or -1 with err set. */
typedef int sd_inbox_handler(struct sd_pg *pg, const struct sd_event *ev,
                             const rd_kafka_message_t *m, void *arg, struct sd_err *err);

struct sd_inbox_stats {
    unsigned long applied, duplicates, deadlettered, retries;
    unsigned long batches; /* transactions that applied a batch of messages */
};

/* 1: first time this consumer sees event_id; 0: a duplicate; -1: error. */
int sd_inbox_claim(struct sd_pg *pg, const char *consumer, const char *event_id,
                   struct sd_err *err) SD_MUST_CHECK;

/* Writes the dead-letter record of m (raw bytes, reason and origin headers;
 * schemas/README.md) through the outbox in a transaction of its own, for a
 * consumer that does not use the inbox. topic NULL = SD_TOPIC_DEADLETTER. */
int sd_inbox_deadletter(struct sd_pg *pg, const rd_kafka_message_t *m, const char *consumer,
                        const char *topic, const char *reason, struct sd_err *err) SD_MUST_CHECK;

/* name identifies the consumer in the inbox table (usually the group id).
 * deadletter_topic NULL = SD_TOPIC_DEADLETTER. pg and kc stay the caller's. */
struct sd_inbox_consumer *sd_inbox_consumer_new(struct sd_pg *pg, struct sd_kafka_consumer *kc,
                                                const char *name, const char *deadletter_topic,
                                                sd_inbox_handler *handler, void *arg);
/* Handles up to max messages. Returns how many were finished (applied,
 * skipped or dead-lettered); *retry_ms > 0 when a transient error holds a
 * message back and the caller should call again after that delay. */
int sd_inbox_consumer_run(struct sd_inbox_consumer *ic, int max, int *retry_ms);
int sd_inbox_consumer_attach(struct sd_inbox_consumer *ic, struct sd_loop *loop) SD_MUST_CHECK;
const struct sd_inbox_stats *sd_inbox_consumer_stats(const struct sd_inbox_consumer *ic);
void sd_inbox_consumer_free(struct sd_inbox_consumer *ic);

#endif
