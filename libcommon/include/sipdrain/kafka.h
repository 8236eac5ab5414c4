/* kafka.h - librdkafka producer and consumer the sipdrain way.
 *
 * Producer: idempotent (enable.idempotence, acks=all), delivery reports go to
 * the callback given at creation. Consumer: a consumer group whose offsets
 * are stored only when the caller says the effect is committed
 * (enable.auto.offset.store=false; auto-commit then commits what was stored).
 *
 * Neither ever blocks the caller's loop: each has a wake-up fd (a pipe that
 * librdkafka writes when its queue goes from empty to non-empty). Register it
 * in su_root or sd_loop, and when it is readable call *_poll(), which drains
 * the pipe and serves everything queued. Also call *_poll() from a timer
 * (about every 100 ms): the pipe fires only on the empty -> non-empty edge.
 * Only sd_kafka_producer_flush() and sd_kafka_consumer_free() block: call them
 * at shutdown, never on the SIP thread.
 */
#ifndef SIPDRAIN_KAFKA_H
#define SIPDRAIN_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "sipdrain/err.h"

#define SD_TOPIC_DEADLETTER "sipdrain.deadletter"

struct sd_kafka_producer;
struct sd_kafka_consumer;

/* The operator's librdkafka properties (issue #15: SASL, TLS), from the
 * file SIPDRAIN_KAFKA_PROPERTIES names - `key=value` lines, '#' comments -
 * applied to every client after sipdrain's own settings: e.g.
 *
 *     security.protocol=SASL_SSL
 *     sasl.mechanism=SCRAM-SHA-512
 *     sasl.username=sip-edge
 *     sasl.password=...
 *     ssl.ca.location=/run/secrets/kafka-ca.pem
 *
 * The file holds secrets: keep it a Docker or Kubernetes secret. A key
 * librdkafka does not know, a value it refuses, or one of sipdrain's own
 * settings (bootstrap.servers, group.id, client.id, enable.idempotence,
 * acks, enable.auto.offset.store, enable.auto.commit, auto.offset.reset) is
 * an error naming the file, line and key; no message shows the value of a
 * password, secret or key. path NULL or "": none. */
int sd_kafka_properties_load(const char *path, struct sd_err *err) SD_MUST_CHECK;
/* For a program's start-up: loads $SIPDRAIN_KAFKA_PROPERTIES, or prints
 * the error and exits 2. */
void sd_kafka_properties_load_or_exit(const char *program);
size_t sd_kafka_properties_count(void);
/* A loaded property's value (the last line naming key), NULL when the file
 * does not set it: for clients librdkafka does not make (kafka_wire.h). */
const char *sd_kafka_property(const char *key);
/* Applies the loaded properties to conf (the library's clients do). */
int sd_kafka_conf_apply(rd_kafka_conf_t *conf, struct sd_err *err) SD_MUST_CHECK;

struct sd_kafka_header {
    const char *name;
    const char *value; /* NUL-terminated */
};

/* err == NULL: delivered. Runs inside sd_kafka_producer_poll(). */
typedef void sd_kafka_dr_cb(void *msg_opaque, const struct sd_err *err, void *arg);

struct sd_kafka_producer *sd_kafka_producer_new(const char *brokers, const char *client_id,
                                                sd_kafka_dr_cb *cb, void *cb_arg,
                                                struct sd_err *err) SD_MUST_CHECK;
/* Copies key and value. SD_ERR_TRANSIENT when the local queue is full. */
int sd_kafka_produce(struct sd_kafka_producer *p, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t len,
                     const struct sd_kafka_header *headers, size_t n_headers, void *msg_opaque,
                     struct sd_err *err) SD_MUST_CHECK;
int sd_kafka_producer_fd(const struct sd_kafka_producer *p);
/* Serves delivery reports without blocking; returns how many events it served. */
int sd_kafka_producer_poll(struct sd_kafka_producer *p);
/* Instances opened so far: a new one replaces an instance librdkafka
 * stopped for good (a fatal error of the idempotent producer, e.g. its PID
 * refused); the old one's messages are reported failed, their owners send
 * them again. A change tells an owner to forget what it had in flight. */
unsigned sd_kafka_producer_generation(const struct sd_kafka_producer *p);
/* For tests: makes the instance fail as on a fatal error (librdkafka's
 * rd_kafka_test_fatal_error). 0 when it did. */
int sd_kafka_producer_test_fatal(struct sd_kafka_producer *p, const char *reason);
/* Messages produced and not yet reported. */
int sd_kafka_producer_inflight(const struct sd_kafka_producer *p);
/* Blocks until everything is delivered or timeout_ms passes; -1 on timeout. */
int sd_kafka_producer_flush(struct sd_kafka_producer *p, int timeout_ms);
/* Flushes for up to 10 s, then destroys. */
void sd_kafka_producer_free(struct sd_kafka_producer *p);

/* How a consumer's fetches wait at the broker (issue #17). Each fetch is a
 * request the broker serves, busy or idle, so this is mostly broker CPU:
 *   SD_KAFKA_FETCH_BATCHED  a busy stream (agent-state's call events): the
 *       broker answers once 4 KiB are there or 10 ms have passed - fewer,
 *       fuller fetches under load (bench/bus.sh: +25 % events/s), at the
 *       price of 100 empty fetches a second when idle (~9 % of a core of the
 *       broker on the machines of BENCH-NOTES.md);
 *   SD_KAFKA_FETCH_PROMPT   a control stream (the edges' edge.control and
 *       agent.events, the orchestrator's drain commands): the broker answers
 *       as soon as one message is there, else after 500 ms - no added delay
 *       per message, 2 empty fetches a second when idle (librdkafka's
 *       defaults). */
enum sd_kafka_fetch { SD_KAFKA_FETCH_BATCHED, SD_KAFKA_FETCH_PROMPT };

/* Subscribes group_id to topics. Starts at the earliest offset when the
 * group has none. SIPDRAIN_KAFKA_PROPERTIES can still override the fetch
 * settings. */
struct sd_kafka_consumer *sd_kafka_consumer_new(const char *brokers, const char *group_id,
                                                const char *client_id, const char *const *topics,
                                                size_t n_topics, enum sd_kafka_fetch fetch,
                                                struct sd_err *err) SD_MUST_CHECK;
int sd_kafka_consumer_fd(const struct sd_kafka_consumer *c);
/* The next message, without blocking, or NULL when none is ready. Errors and
 * rebalances are logged and handled inside. rd_kafka_message_destroy() it. */
rd_kafka_message_t *sd_kafka_consumer_poll(struct sd_kafka_consumer *c);
/* Marks m done: its offset + 1 will be committed. Call only once the effect
 * of m is durable. */
int sd_kafka_consumer_store(struct sd_kafka_consumer *c, const rd_kafka_message_t *m,
                            struct sd_err *err) SD_MUST_CHECK;
/* Number of partitions currently assigned. */
int sd_kafka_consumer_assigned(const struct sd_kafka_consumer *c);
/* Messages on the assigned partitions not consumed yet (the last known high
 * watermark minus the position; partitions not fetched from yet are left
 * out). Non-blocking: for /metrics. -1 when unknown. */
long sd_kafka_consumer_lag(struct sd_kafka_consumer *c);
/* Commits stored offsets, leaves the group (blocks), destroys. */
void sd_kafka_consumer_free(struct sd_kafka_consumer *c);

/* Creates topics that do not exist yet (admin API; waits up to timeout_ms).
 * For tests and tools; kafka-up.sh creates the real topics. */
int sd_kafka_topics_create(const char *brokers, const char *const *topics, size_t n, int partitions,
                           int timeout_ms, struct sd_err *err) SD_MUST_CHECK;
int sd_kafka_topics_create_replicated(const char *brokers, const char *const *topics, size_t n,
                                      int partitions, int replication, int timeout_ms,
                                      struct sd_err *err) SD_MUST_CHECK;
/* A client for admin requests (the loaded properties applied);
 * rd_kafka_destroy() it. */
rd_kafka_t *sd_kafka_admin_new(const char *brokers, struct sd_err *err);

/* A header value of m (or of a header list), copied into buf
 * (NUL-terminated, cut to size); -1 when absent. */
int sd_kafka_header_get(const rd_kafka_message_t *m, const char *name, char *buf, size_t size);
int sd_kafka_headers_get(const rd_kafka_headers_t *hdrs, const char *name, char *buf, size_t size);

#endif
