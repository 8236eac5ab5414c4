/* outbox.h - the transactional outbox (DESIGN.md §3).
 *
 * A service writes the events its state change causes with sd_outbox_add()
 * inside its own transaction: they commit or roll back with the change. The
 * relay publishes committed rows to Kafka and deletes each one on its
 * delivery report, so a crash between COMMIT and publish loses nothing
 * (rows are published again after a restart: consumers dedupe by event id).
 *
 * The relay has its own PostgreSQL connection, LISTENs on
 * "sipdrain_outbox:<owner>" (sd_outbox_add NOTIFYs it at COMMIT) and
 * rescans every second as well.
 */
#ifndef SIPDRAIN_OUTBOX_H
#define SIPDRAIN_OUTBOX_H

#include <stddef.h>

#include "sipdrain/err.h"
#include "sipdrain/event.h"
#include "sipdrain/kafka.h"
#include "sipdrain/loop.h"
#include "sipdrain/pg.h"

struct sd_outbox_relay;

/* The owner of the rows this process writes: its service instance, stable
 * across restarts (e.g. "sip-edge/edge-2a"), so a restarted instance's relay
 * publishes what it left behind. Call once at start; default "sipdrain".
 * A relay publishes its owner's rows in id order, and any row of the same
 * service (the owner's part before '/') left unsent for SD_OUTBOX_ORPHAN_S
 * seconds (an instance gone for good; with Kafka away that long a row may
 * be published twice: consumers dedupe by event id). Never another
 * service's rows: they go out under that service's Kafka identity, which
 * alone may write their topics. */
#define SD_OUTBOX_ORPHAN_S 60
/* PostgreSQL channel names stop at 63 bytes: "sipdrain_outbox:" + owner. */
#define SD_OUTBOX_OWNER_MAX 47
void sd_outbox_set_owner(const char *owner);
const char *sd_outbox_owner(void);

/* Adds ev for topic/key to the caller's open transaction. */
int sd_outbox_add(struct sd_pg *pg, const char *topic, const char *key, const struct sd_event *ev,
                  struct sd_err *err) SD_MUST_CHECK;
/* Adds several events in one statement (one round trip instead of n), to the
 * caller's open transaction. Rows keep the order of items. */
struct sd_outbox_item {
    const char *topic;
    const char *key; /* may be NULL */
    const struct sd_event *ev;
};
#define SD_OUTBOX_MANY_MAX 64
int sd_outbox_add_many(struct sd_pg *pg, const struct sd_outbox_item *items, size_t n,
                       struct sd_err *err) SD_MUST_CHECK;
/* Adds raw bytes with Kafka headers (dead-letter records). */
int sd_outbox_add_raw(struct sd_pg *pg, const char *topic, const void *key, size_t key_len,
                      const void *value, size_t len, const struct sd_kafka_header *headers,
                      size_t n_headers, struct sd_err *err) SD_MUST_CHECK;

/* pg must be a connection of the relay's own. */
struct sd_outbox_relay *sd_outbox_relay_new(struct sd_pg *pg, const char *brokers,
                                            const char *client_id,
                                            struct sd_err *err) SD_MUST_CHECK;
/* One pass: serve delivery reports, delete delivered rows, publish pending ones. Returns
 * 1 when more rows are waiting (call again soon), 0 when caught up, -1 on a
 * (transient) error, logged. */
int sd_outbox_relay_run(struct sd_outbox_relay *r, struct sd_err *err);
/* Registers the relay's fds and timers in loop. */
int sd_outbox_relay_attach(struct sd_outbox_relay *r, struct sd_loop *loop) SD_MUST_CHECK;
/* Rows published and acknowledged since start; rows waiting for a report. */
unsigned long sd_outbox_relay_sent(const struct sd_outbox_relay *r);
size_t sd_outbox_relay_inflight(const struct sd_outbox_relay *r);
/* The relay's producer (tests: sd_kafka_producer_test_fatal). */
struct sd_kafka_producer *sd_outbox_relay_producer(struct sd_outbox_relay *r);
/* At a stop: publishes every row this owner still has (a full scan, not
 * only what notifications announced), flushes the producer and marks what
 * was delivered; blocks up to timeout_ms in all. */
void sd_outbox_relay_drain(struct sd_outbox_relay *r, int timeout_ms);
void sd_outbox_relay_free(struct sd_outbox_relay *r);
/* Rows of this owner not published yet (for /metrics). */
int sd_outbox_backlog(struct sd_pg *pg, long *rows, struct sd_err *err) SD_MUST_CHECK;

#endif
