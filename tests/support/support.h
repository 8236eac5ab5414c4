/* support.h - helpers for the integration tests: a private database and
 * private topics per test, reading a topic back, running the bus worker.
 * The servers themselves are the real ones started by tests/scripts. */
#ifndef SIPDRAIN_TEST_SUPPORT_H
#define SIPDRAIN_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "sipdrain/pg.h"

/* SIPDRAIN_PG_DSN / SIPDRAIN_KAFKA_BROKERS (from tests/scripts/with-stack.sh). */
/* The SIP password of every four-digit test DN (credentials made by
 * sdt_db_create; SIPp phones get it as -ap). */
#define SDT_PHONE_PASSWORD "sipdrain-phone"

const char *sdt_pg_dsn(void);
const char *sdt_brokers(void);
/* The librdkafka settings of a Kafka user of the local stack (kafka-up.sh):
 * "$SIPDRAIN_KAFKA_CLIENTS/<user>.properties". Programs started by
 * sdt_spawn() log in as their own user (sip-edge as sipdrain-edge, ...,
 * drainctl as sipdrain-operator, test tools as sipdrain-admin) unless env
 * sets SIPDRAIN_KAFKA_PROPERTIES; the test itself is sipdrain-admin. */
const char *sdt_kafka_props(const char *user);
/* The test's own Kafka clients log in as user from now on (NULL: back to
 * sipdrain-admin): to act as a program would, e.g. forge an event with a
 * login that may write the topic. */
void sdt_kafka_as(const char *user);
/* A librdkafka conf with bootstrap.servers and the test's login set. */
rd_kafka_conf_t *sdt_kafka_conf(void);
const char *sdt_source_dir(void);

/* Creates a fresh database with every migration applied; its DSN in dsn. */
void sdt_db_create(char *dsn, size_t size);
/* A topic named "t.<random>.<base>" with `partitions` partitions. */
void sdt_topic_create(char *name, size_t size, const char *base, int partitions);

/* Reads topic from the beginning until `want` messages arrived or
 * timeout_ms passed; returns the messages (caller frees with sdt_msgs_free). */
struct sdt_msg {
    char *key, *value; /* NUL-terminated copies */
    size_t key_len, len;
    int32_t partition;
    int64_t offset;
    rd_kafka_headers_t *headers; /* detached from the message, may be NULL */
};
struct sdt_msgs {
    size_t n;
    struct sdt_msg *m;
};
/* A header of msg copied into buf; -1 when absent. */
int sdt_header(const struct sdt_msg *msg, const char *name, char *buf, size_t size);
struct sdt_msgs sdt_consume(const char *topic, size_t want, int timeout_ms);
void sdt_msgs_free(struct sdt_msgs *msgs);
/* How many messages topic holds (sum over partitions of high - low
 * watermark): "nothing more was published" without waiting out a read. */
long sdt_topic_count(const char *topic);

/* Produces raw values (key = "k<i>") and waits for every delivery report. */
void sdt_produce_raw(const char *topic, const void *const *values, const size_t *lens, size_t n);
/* Produces n valid CloudEvents of type test.ping with data {"seq": i}. */
void sdt_produce_pings(const char *topic, size_t n, size_t first_seq);

/* Produces values with the given keys (keys[i] NULL = no key) and waits
 * for every delivery report. */
void sdt_produce_keyed(const char *topic, const char *const *keys, const void *const *values,
                       const size_t *lens, size_t n);

/* Produces one CloudEvent of type with data (stolen) from source
 * "test/producer" to topic, keyed by key; its id goes to id (37 bytes, may be
 * NULL). */
void sdt_send_event(const char *topic, const char *key, const char *type, json_t *data, char *id);
/* The same from source ("<service>/<instance>"): edges take edge.drain,
 * edge.resume and edge.shutdown only from drain-orchestrator/..., and
 * call.originate only from agent-state/... */
void sdt_send_event_from(const char *source, const char *topic, const char *key, const char *type,
                         json_t *data, char *id);

/* A loopback port free for both UDP and TCP right now, outside the kernel's
 * ephemeral range; never the same one twice in a process. */
int sdt_free_port(void);

/* Can port be bound on 127.0.0.1 right now (UDP, and TCP too when tcp)? */
bool sdt_port_free(int port, bool tcp);

/* Runs SIPp (/usr/bin/sipp) once: scenario tests/e2e/sipp/<scenario>.xml
 * against 127.0.0.1:remote_port over UDP, user (-s) service, one call,
 * bounded by a 20 s timeout; keys are "name", "value" pairs, NULL-ended.
 * Returns SIPp's exit status (0 = every check in the scenario held). */
int sdt_sipp(const char *scenario, int remote_port, const char *service, const char *const *keys);

/* Where sdt_sipp* send to instead of 127.0.0.1 (NULL: 127.0.0.1), e.g. an
 * edge listening on the host's end of a test's own network namespace. */
extern const char *sdt_sipp_remote_host;

/* As sdt_sipp, in the background (a phone waiting for its call): returns the
 * pid; sdt_sipp_wait gives its exit status. */
pid_t sdt_sipp_start(const char *scenario, int remote_port, const char *service,
                     const char *const *keys);
int sdt_sipp_wait(pid_t pid, int timeout_ms);
/* As sdt_sipp_start, SIPp bound to local_port (a peer the edge is told
 * about before SIPp starts, e.g. the outbound proxy). */
pid_t sdt_sipp_start_on(const char *scenario, int local_port, int remote_port, const char *service,
                        const char *const *keys);

/* A fresh random topic prefix "t.<random>." with the topics of DESIGN.md §2
 * and the dead-letter topic created under it (6 partitions each), and the
 * ACL table for it (sd_kafka_init, as sipdrain-kafka-init), for services
 * started with SIPDRAIN_TOPIC_PREFIX. */
void sdt_prefix_create(char *prefix, size_t size);

/* Runs path with args (argv[0] = path) and env entries "K=V" added; stdout
 * and stderr go to out_path (NULL = inherited). Returns the pid. */
pid_t sdt_spawn(const char *path, const char *const *args, const char *const *env,
                const char *out_path);

/* GET http://127.0.0.1:port<path>: the status code (-1 when nothing
 * answered), the body in body (NUL-terminated, cut to size). */
int sdt_http_get(int port, const char *path, char *body, size_t size);

/* Does some line of the file at path contain text? (false when there is no file) */
bool sdt_file_has(const char *path, const char *text);
/* The number (from 1) of the first line of path holding text; 0: none. */
int sdt_file_line(const char *path, const char *text);

/* Runs sql (no result needed) on dsn; fails the test on error. */
void sdt_pg_run(const char *dsn, const char *sql);
/* dsn with its user replaced by role (migration 0005's sipdrain_edge,
 * sipdrain_agent_state, sipdrain_orchestrator, sipdrain_drainctl,
 * sipdrain_passwd): each program under test logs in as its own role, so a
 * grant it lacks fails the suite. */
void sdt_dsn_as(const char *dsn, const char *role, char *out, size_t size);

/* Checks every message value against schemas/events with
 * tests/schema/validate.py; returns its exit status (0 = all valid). */
int sdt_validate_events(const struct sdt_msgs *msgs);

/* Runs the bus worker with args; env entries "K=V" are added. Returns the pid. */
pid_t sdt_worker_start(const char *const *args, const char *const *env, const char *out_path);
/* Waits for pid; returns its wait status. */
int sdt_wait(pid_t pid, int timeout_ms);

/* One integer from a query on dsn (e.g. "SELECT count(*) FROM outbox"). */
long sdt_pg_scalar(const char *dsn, const char *sql);

/* Runs a shell command from the source tree (tests/scripts/...); returns exit code. */
int sdt_script(const char *cmd);

#endif
