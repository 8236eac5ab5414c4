/* kafka.c - librdkafka producer and consumer (see sipdrain/kafka.h).
 *
 * Thread notes: librdkafka runs its own threads, but every callback we
 * register (delivery reports, rebalance, errors, logs) is served from
 * rd_kafka_poll()/rd_kafka_consumer_poll(), which we only call from the
 * owner's loop thread. The wake-up pipe is the only thing librdkafka's
 * threads touch, and it is theirs to write.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sipdrain/event.h"
#include "sipdrain/kafka.h"
#include "sipdrain/log.h"

#define PRODUCER_REOPEN_MS 5000

struct sd_kafka_producer {
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    int pipe[2];
    sd_kafka_dr_cb *cb;
    void *cb_arg;
    char *brokers, *client_id; /* to open a new instance after a fatal error */
    int fatal;                 /* librdkafka stopped this instance for good */
    int64_t opened_ms;         /* when this instance was opened */
    unsigned generation;       /* instances opened so far */
};

struct sd_kafka_consumer {
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    int pipe[2];
    int assigned;
    char group[128];
};

/* --- shared ------------------------------------------------------------ */

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, struct sd_err *err)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return sd_err_set(err, SD_ERR_CONFIG, "kafka config %s=%s: %s", name, value, errstr);
    return 0;
}

/* --- the operator's librdkafka properties ------------------------------- */

#define PROPS_MAX 64

static struct {
    char *key, *value;
} props[PROPS_MAX];
static size_t n_props;

/* What sipdrain sets itself, for its guarantees (an idempotent producer
 * with acks=all, offsets stored only once an effect is committed, the
 * group and client ids its logs and tests name, the brokers of
 * SIPDRAIN_KAFKA_BROKERS): not the operator's to change. */
static const char *const owned[] = {"bootstrap.servers",
                                    "metadata.broker.list",
                                    "group.id",
                                    "client.id",
                                    "enable.idempotence",
                                    "acks",
                                    "request.required.acks",
                                    "enable.auto.offset.store",
                                    "enable.auto.commit",
                                    "auto.offset.reset"};

/* A value never shown in a message (librdkafka's refusal quotes it). */
static bool secret_key(const char *key)
{
    return strstr(key, "password") != NULL || strstr(key, "secret") != NULL ||
           strstr(key, ".key") != NULL || strstr(key, "jaas") != NULL;
}

static void props_clear(void)
{
    for (size_t i = 0; i < n_props; i++) {
        explicit_bzero(props[i].value, strlen(props[i].value));
        free(props[i].key);
        free(props[i].value);
    }
    n_props = 0;
}

int sd_kafka_properties_load(const char *path, struct sd_err *err)
{
    char line[4096];
    int lineno = 0, rc = -1;
    FILE *f;
    rd_kafka_conf_t *scratch = rd_kafka_conf_new();

    props_clear();
    if (path == NULL || path[0] == '\0') {
        rd_kafka_conf_destroy(scratch);
        return 0;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        rd_kafka_conf_destroy(scratch);
        return sd_err_set(err, SD_ERR_CONFIG, "SIPDRAIN_KAFKA_PROPERTIES: cannot read %s: %s", path,
                          strerror(errno));
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *key = line, *value, *eq, *end, errstr[512];
        bool is_owned = false;

        lineno++;
        while (isspace((unsigned char)*key))
            key++;
        if (*key == '\0' || *key == '#')
            continue;
        eq = strchr(key, '=');
        if (eq == NULL) {
            sd_err_set(err, SD_ERR_CONFIG, "SIPDRAIN_KAFKA_PROPERTIES %s:%d: expected key=value",
                       path, lineno);
            goto out;
        }
        value = eq + 1;
        for (end = eq; end > key && isspace((unsigned char)end[-1]); end--)
            ;
        *end = '\0';
        while (isspace((unsigned char)*value))
            value++;
        for (end = value + strlen(value); end > value && isspace((unsigned char)end[-1]); end--)
            ;
        *end = '\0';
        for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
            is_owned = is_owned || !strcmp(key, owned[i]);
        if (is_owned) {
            sd_err_set(err, SD_ERR_CONFIG,
                       "SIPDRAIN_KAFKA_PROPERTIES %s:%d: %s is sipdrain's own setting (brokers:"
                       " SIPDRAIN_KAFKA_BROKERS)",
                       path, lineno, key);
            goto out;
        }
        if (rd_kafka_conf_set(scratch, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            sd_err_set(err, SD_ERR_CONFIG, "SIPDRAIN_KAFKA_PROPERTIES %s:%d: %s: %s", path, lineno,
                       key, secret_key(key) ? "value refused by librdkafka" : errstr);
            goto out;
        }
        if (n_props == PROPS_MAX) {
            sd_err_set(err, SD_ERR_CONFIG, "SIPDRAIN_KAFKA_PROPERTIES %s: more than %d properties",
                       path, PROPS_MAX);
            goto out;
        }
        props[n_props].key = strdup(key);
        props[n_props].value = strdup(value);
        if (props[n_props].key == NULL || props[n_props].value == NULL) {
            free(props[n_props].key);
            free(props[n_props].value);
            sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
            goto out;
        }
        n_props++;
    }
    rc = 0;
out:
    explicit_bzero(line, sizeof(line));
    fclose(f);
    rd_kafka_conf_destroy(scratch);
    if (rc < 0)
        props_clear();
    return rc;
}

void sd_kafka_properties_load_or_exit(const char *service)
{
    struct sd_err err = {0};

    if (sd_kafka_properties_load(getenv("SIPDRAIN_KAFKA_PROPERTIES"), &err) < 0) {
        fprintf(stderr, "%s: configuration error: %s\n", service, err.text);
        exit(2);
    }
    if (n_props > 0)
        sd_log_info("kafka properties for every client", "file=%s count=%zu",
                    getenv("SIPDRAIN_KAFKA_PROPERTIES"), n_props);
}

size_t sd_kafka_properties_count(void)
{
    return n_props;
}

const char *sd_kafka_property(const char *key)
{
    for (size_t i = n_props; i-- > 0;) {
        if (!strcmp(props[i].key, key))
            return props[i].value;
    }
    return NULL;
}

int sd_kafka_conf_apply(rd_kafka_conf_t *conf, struct sd_err *err)
{
    char errstr[512];

    for (size_t i = 0; i < n_props; i++) {
        if (rd_kafka_conf_set(conf, props[i].key, props[i].value, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK)
            return sd_err_set(err, SD_ERR_CONFIG, "SIPDRAIN_KAFKA_PROPERTIES: %s: %s", props[i].key,
                              secret_key(props[i].key) ? "value refused by librdkafka" : errstr);
    }
    return 0;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    enum sd_log_level lvl = level <= 3 ? SD_LOG_ERROR : level <= 4 ? SD_LOG_WARN : SD_LOG_DEBUG;

    /* Connection failures reach on_error too: say them once. */
    if (strcmp(fac, "FAIL") == 0)
        lvl = SD_LOG_DEBUG;

    sd_log(lvl, buf, "kafka=%s facility=%s", rd_kafka_name(rk), fac);
}

static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    (void)opaque;
    /* Broker down / all brokers down are transient: librdkafka reconnects. */
    sd_log_warn("kafka error", "kafka=%s code=%s reason=\"%s\"", rd_kafka_name(rk),
                rd_kafka_err2name((rd_kafka_resp_err_t)code), reason);
}

static int make_pipe(int p[2], struct sd_err *err)
{
    if (pipe(p) < 0)
        return sd_err_set(err, SD_ERR_INTERNAL, "pipe: %s", strerror(errno));
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

static void drain_pipe(int fd)
{
    char buf[256];

    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

static void close_pipe(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

/* --- producer ---------------------------------------------------------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct sd_kafka_producer *p = opaque;
    struct sd_err err;

    (void)rk;
    if (p->cb == NULL)
        return;
    if (m->err) {
        sd_err_set(&err, SD_ERR_TRANSIENT, "delivery to %s failed: %s", rd_kafka_topic_name(m->rkt),
                   rd_kafka_err2str(m->err));
        p->cb(m->_private, &err, p->cb_arg);
    } else {
        p->cb(m->_private, NULL, p->cb_arg);
    }
}

/* The idempotent producer's fatal errors (a PID refused, a sequence
 * gap) stop the instance for good: every later produce fails with _FATAL.
 * Noted here (this callback runs inside rd_kafka_poll); the next
 * sd_kafka_producer_poll opens a new instance. */
static void on_producer_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    struct sd_kafka_producer *p = opaque;

    on_error(rk, code, reason, NULL);
    if (code == RD_KAFKA_RESP_ERR__FATAL)
        p->fatal = 1;
}

/* A librdkafka instance for p (its settings, callbacks, the wake-up pipe). */
static int producer_open(struct sd_kafka_producer *p, struct sd_err *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];

    if (conf == NULL)
        return sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
    if (conf_set(conf, "bootstrap.servers", p->brokers, err) < 0 ||
        conf_set(conf, "client.id", p->client_id, err) < 0 ||
        conf_set(conf, "enable.idempotence", "true", err) < 0 ||
        conf_set(conf, "acks", "all", err) < 0 ||
        /* Events wait up to 20 ms to share a produce request: the broker's CPU
         * per event is a third lower than at 5 ms (measured at 1,500 calls/s,
         * issue #17), and nothing waits on an event for 20 ms. */
        conf_set(conf, "linger.ms", "20", err) < 0 ||
        /* A dead-letter record keeps the raw message, up to the broker's 4 MiB. */
        conf_set(conf, "message.max.bytes", "4194304", err) < 0 ||
        /* Keep trying through a broker restart; the outbox retries after that. */
        conf_set(conf, "message.timeout.ms", "120000", err) < 0 ||
        conf_set(conf, "reconnect.backoff.max.ms", "1000", err) < 0 ||
        sd_kafka_conf_apply(conf, err) < 0) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_producer_error);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (p->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return sd_err_set(err, SD_ERR_CONFIG, "kafka producer: %s", errstr);
    }
    p->mainq = rd_kafka_queue_get_main(p->rk);
    rd_kafka_queue_io_event_enable(p->mainq, p->pipe[1], "1", 1);
    /* Fires once per empty -> non-empty: make the first poll happen. */
    if (write(p->pipe[1], "1", 1) < 0) {
    }
    p->fatal = 0;
    p->generation++;
    p->opened_ms = sd_mono_ms();
    return 0;
}

/* After a fatal error: the old instance's messages purged - their delivery
 * reports say failed, so their owners (the outbox) send them again - and a
 * new instance opened in its place, on the same pipe. */
static void producer_reopen(struct sd_kafka_producer *p)
{
    char why[512] = "";
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(p->rk, why, sizeof(why));
    struct sd_err err = {0};

    sd_log_error(
        "kafka producer stopped by a fatal error: a new one takes over, its messages go again",
        "kafka=%s code=%s reason=\"%s\"", rd_kafka_name(p->rk), rd_kafka_err2name(code), why);
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0); /* the purged messages' reports */
    rd_kafka_queue_destroy(p->mainq);
    p->mainq = NULL;
    rd_kafka_destroy(p->rk);
    p->rk = NULL;
    if (producer_open(p, &err) < 0) {
        /* only a broken configuration, which opened before: not expected */
        sd_log_error("kafka producer could not be opened again", "reason=\"%s\"", err.text);
        abort();
    }
}

struct sd_kafka_producer *sd_kafka_producer_new(const char *brokers, const char *client_id,
                                                sd_kafka_dr_cb *cb, void *cb_arg,
                                                struct sd_err *err)
{
    struct sd_kafka_producer *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    p->pipe[0] = p->pipe[1] = -1;
    p->cb = cb;
    p->cb_arg = cb_arg;
    p->brokers = strdup(brokers ? brokers : "");
    p->client_id = strdup(client_id ? client_id : "");
    if (p->brokers == NULL || p->client_id == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        goto fail;
    }
    if (make_pipe(p->pipe, err) < 0 || producer_open(p, err) < 0)
        goto fail;
    return p;
fail:
    sd_kafka_producer_free(p);
    return NULL;
}

int sd_kafka_produce(struct sd_kafka_producer *p, const char *topic, const void *key,
                     size_t key_len, const void *value, size_t len,
                     const struct sd_kafka_header *headers, size_t n_headers, void *msg_opaque,
                     struct sd_err *err)
{
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_resp_err_t e;

    if (n_headers > 0) {
        hdrs = rd_kafka_headers_new(n_headers);
        for (size_t i = 0; i < n_headers; i++)
            rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value, -1);
    }
    /* RD_KAFKA_V_HEADERS is a (type, value) pair: no conditional inside the list. */
    if (hdrs != NULL)
        e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
    else
        e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                              RD_KAFKA_V_VALUE((void *)value, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
    if (e) {
        if (hdrs != NULL)
            rd_kafka_headers_destroy(hdrs); /* still ours on failure */
        if (e == RD_KAFKA_RESP_ERR__FATAL) {
            /* the instance's fault, not the message's: a new instance at the
             * next poll (made to come now), and the message waits */
            p->fatal = 1;
            if (write(p->pipe[1], "1", 1) < 0) {
            }
        }
        return sd_err_set(err,
                          e == RD_KAFKA_RESP_ERR__QUEUE_FULL || e == RD_KAFKA_RESP_ERR__FATAL
                              ? SD_ERR_TRANSIENT
                              : SD_ERR_INVALID,
                          "produce to %s: %s", topic, rd_kafka_err2str(e));
    }
    return 0;
}

int sd_kafka_producer_fd(const struct sd_kafka_producer *p)
{
    return p->pipe[0];
}

int sd_kafka_producer_poll(struct sd_kafka_producer *p)
{
    int n;

    drain_pipe(p->pipe[0]);
    n = rd_kafka_poll(p->rk, 0);
    /* at most one new instance every 5 s: a cause that lasts (a PID
     * refused until the ACLs arrive) must not make a loop of them */
    if (p->fatal && sd_mono_ms() - p->opened_ms >= PRODUCER_REOPEN_MS)
        producer_reopen(p);
    return n;
}

unsigned sd_kafka_producer_generation(const struct sd_kafka_producer *p)
{
    return p->generation;
}

int sd_kafka_producer_test_fatal(struct sd_kafka_producer *p, const char *reason)
{
    return rd_kafka_test_fatal_error(p->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                     reason) == RD_KAFKA_RESP_ERR_NO_ERROR
               ? 0
               : -1;
}

int sd_kafka_producer_inflight(const struct sd_kafka_producer *p)
{
    return rd_kafka_outq_len(p->rk);
}

int sd_kafka_producer_flush(struct sd_kafka_producer *p, int timeout_ms)
{
    return rd_kafka_flush(p->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

void sd_kafka_producer_free(struct sd_kafka_producer *p)
{
    if (p == NULL)
        return;
    if (p->rk != NULL) {
        if (rd_kafka_flush(p->rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            sd_log_warn("kafka producer closed with messages undelivered", "count=%d",
                        rd_kafka_outq_len(p->rk));
        if (p->mainq != NULL)
            rd_kafka_queue_destroy(p->mainq);
        rd_kafka_destroy(p->rk);
    }
    close_pipe(p->pipe);
    free(p->brokers);
    free(p->client_id);
    free(p);
}

/* --- consumer ---------------------------------------------------------- */

/* "topic:partitions ..." of parts, each topic once, in the order met:
 * the log line says which topics an assignment covers (a topic missing
 * from it is one the consumer does not read). */
static void topic_counts(const rd_kafka_topic_partition_list_t *parts, char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (int i = 0; i < parts->cnt && used < size; i++) {
        int n = 0, seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = !strcmp(parts->elems[j].topic, parts->elems[i].topic);
        if (seen)
            continue;
        for (int j = i; j < parts->cnt; j++)
            n += !strcmp(parts->elems[j].topic, parts->elems[i].topic);
        used += (size_t)snprintf(out + used, size - used, "%s%s:%d", used > 0 ? " " : "",
                                 parts->elems[i].topic, n);
    }
}

/* Logs assignments and applies them. No commit here: with auto-commit on,
 * librdkafka itself commits the stored offsets when partitions are revoked,
 * and a synchronous commit would block the caller's loop (the SIP thread in
 * sip-edge). Whatever it misses is redelivered and skipped by the inbox. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct sd_kafka_consumer *c = opaque;

    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        char topics[512];
        c->assigned = parts->cnt;
        topic_counts(parts, topics, sizeof(topics));
        sd_log_info("partitions assigned", "group=%s count=%d topics=\"%s\"", c->group, parts->cnt,
                    topics);
        rd_kafka_assign(rk, parts);
    } else {
        sd_log_info("partitions revoked", "group=%s count=%d", c->group, parts->cnt);
        rd_kafka_assign(rk, NULL);
        c->assigned = 0;
    }
}

struct sd_kafka_consumer *sd_kafka_consumer_new(const char *brokers, const char *group_id,
                                                const char *client_id, const char *const *topics,
                                                size_t n_topics, enum sd_kafka_fetch fetch,
                                                struct sd_err *err)
{
    struct sd_kafka_consumer *c = calloc(1, sizeof(*c));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *subs = NULL;
    rd_kafka_resp_err_t e;
    char errstr[512];

    if (c == NULL || conf == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        goto fail;
    }
    c->pipe[0] = c->pipe[1] = -1;
    snprintf(c->group, sizeof(c->group), "%s", group_id);
    if (conf_set(conf, "bootstrap.servers", brokers, err) < 0 ||
        conf_set(conf, "group.id", group_id, err) < 0 ||
        conf_set(conf, "client.id", client_id, err) < 0 ||
        conf_set(conf, "enable.auto.offset.store", "false", err) < 0 ||
        conf_set(conf, "enable.auto.commit", "true", err) < 0 ||
        conf_set(conf, "auto.commit.interval.ms", "1000", err) < 0 ||
        conf_set(conf, "auto.offset.reset", "earliest", err) < 0 ||
        conf_set(conf, "session.timeout.ms", "10000", err) < 0 ||
        conf_set(conf, "heartbeat.interval.ms", "1000", err) < 0 ||
        /* see enum sd_kafka_fetch */
        conf_set(conf, "fetch.wait.max.ms", fetch == SD_KAFKA_FETCH_BATCHED ? "10" : "500", err) <
            0 ||
        conf_set(conf, "fetch.min.bytes", fetch == SD_KAFKA_FETCH_BATCHED ? "4096" : "1", err) <
            0 ||
        /* A subscribed topic that is not in the broker's metadata when the
         * consumer joins (created a moment later, or just created and not
         * yet propagated, or briefly missing from a metadata answer) is
         * looked for again only at this periodic refresh: librdkafka's
         * default of 5 minutes left an edge started right after its topics
         * were created without sipdrain.agent.events for its whole life
         * (issue #12). The refresh asks the broker about the consumer's few
         * subscribed and assigned topics only (sparse metadata requests),
         * so every 2 s costs one small request per consumer, and a topic
         * that appears is consumed within about 2 s plus a rebalance. A
         * topic that stays missing is reported once ("Subscribed topic not
         * available"; librdkafka silences repeats), not every 2 s. The
         * metadata cache then lives 3 x 2 s (metadata.max.age.ms follows
         * this); producers keep the defaults. */
        conf_set(conf, "topic.metadata.refresh.interval.ms", "2000", err) < 0 ||
        /* librdkafka's own debug contexts, e.g. "fetch,cgrp" (logged at debug) */
        (getenv("SIPDRAIN_KAFKA_DEBUG") &&
         conf_set(conf, "debug", getenv("SIPDRAIN_KAFKA_DEBUG"), err) < 0) ||
        conf_set(conf, "reconnect.backoff.max.ms", "1000", err) < 0 ||
        sd_kafka_conf_apply(conf, err) < 0)
        goto fail;
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (c->rk == NULL) {
        sd_err_set(err, SD_ERR_CONFIG, "kafka consumer: %s", errstr);
        goto fail;
    }
    conf = NULL;
    rd_kafka_poll_set_consumer(c->rk); /* main queue -> consumer queue */
    if (make_pipe(c->pipe, err) < 0)
        goto fail;
    c->queue = rd_kafka_queue_get_consumer(c->rk);
    rd_kafka_queue_io_event_enable(c->queue, c->pipe[1], "1", 1);
    if (write(c->pipe[1], "1", 1) < 0) {
    }
    subs = rd_kafka_topic_partition_list_new((int)n_topics);
    for (size_t i = 0; i < n_topics; i++)
        rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        sd_err_set(err, SD_ERR_CONFIG, "kafka subscribe: %s", rd_kafka_err2str(e));
        goto fail;
    }
    return c;
fail:
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    sd_kafka_consumer_free(c);
    return NULL;
}

int sd_kafka_consumer_fd(const struct sd_kafka_consumer *c)
{
    return c->pipe[0];
}

int sd_kafka_consumer_assigned(const struct sd_kafka_consumer *c)
{
    return c->assigned;
}

long sd_kafka_consumer_lag(struct sd_kafka_consumer *c)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    long lag = 0;

    if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || parts == NULL)
        return -1;
    if (parts->cnt > 0 && rd_kafka_position(c->rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_topic_partition_list_destroy(parts);
        return -1;
    }
    for (int i = 0; i < parts->cnt; i++) {
        int64_t lo = 0, hi = 0;
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        if (p->offset < 0 ||
            rd_kafka_get_watermark_offsets(c->rk, p->topic, p->partition, &lo, &hi) !=
                RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0)
            continue; /* nothing fetched yet on it: unknown, not counted */
        if (hi > p->offset)
            lag += (long)(hi - p->offset);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return lag;
}

rd_kafka_message_t *sd_kafka_consumer_poll(struct sd_kafka_consumer *c)
{
    rd_kafka_message_t *m;

    drain_pipe(c->pipe[0]);
    while ((m = rd_kafka_consumer_poll(c->rk, 0)) != NULL) {
        if (!m->err)
            return m;
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            sd_log_warn("kafka consumer error", "group=%s topic=%s error=\"%s\"", c->group,
                        m->rkt ? rd_kafka_topic_name(m->rkt) : "-", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

int sd_kafka_consumer_store(struct sd_kafka_consumer *c, const rd_kafka_message_t *m,
                            struct sd_err *err)
{
    rd_kafka_resp_err_t e = rd_kafka_offset_store(m->rkt, m->partition, m->offset);

    (void)c;
    if (e) {
        /* _STATE: the partition was revoked meanwhile; its new owner
         * redelivers the message and the inbox skips it. */
        return sd_err_set(err, SD_ERR_TRANSIENT, "offset store %s[%d]@%lld: %s",
                          rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset,
                          rd_kafka_err2str(e));
    }
    return 0;
}

void sd_kafka_consumer_free(struct sd_kafka_consumer *c)
{
    if (c == NULL)
        return;
    if (c->rk != NULL) {
        if (c->queue != NULL)
            rd_kafka_queue_destroy(c->queue);
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
    }
    close_pipe(c->pipe);
    free(c);
}

int sd_kafka_headers_get(const rd_kafka_headers_t *hdrs, const char *name, char *buf, size_t size)
{
    const void *val;
    size_t len;

    if (hdrs == NULL || size == 0 ||
        rd_kafka_header_get_last(hdrs, name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    if (len >= size)
        len = size - 1;
    memcpy(buf, val, len);
    buf[len] = '\0';
    return 0;
}

int sd_kafka_header_get(const rd_kafka_message_t *m, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *hdrs = NULL;

    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    return sd_kafka_headers_get(hdrs, name, buf, size);
}

/* --- admin ------------------------------------------------------------- */

rd_kafka_t *sd_kafka_admin_new(const char *brokers, struct sd_err *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    char errstr[512];

    if (conf == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    if (conf_set(conf, "bootstrap.servers", brokers, err) < 0 ||
        sd_kafka_conf_apply(conf, err) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        sd_err_set(err, SD_ERR_CONFIG, "kafka admin: %s", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

int sd_kafka_topics_create(const char *brokers, const char *const *topics, size_t n, int partitions,
                           int timeout_ms, struct sd_err *err)
{
    return sd_kafka_topics_create_replicated(brokers, topics, n, partitions, 1, timeout_ms, err);
}

int sd_kafka_topics_create_replicated(const char *brokers, const char *const *topics, size_t n,
                                      int partitions, int replication, int timeout_ms,
                                      struct sd_err *err)
{
    rd_kafka_NewTopic_t **nt = calloc(n ? n : 1, sizeof(*nt));
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    rd_kafka_t *rk = NULL;
    char errstr[512];
    int rc = -1;

    if (nt == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        goto out;
    }
    if ((rk = sd_kafka_admin_new(brokers, err)) == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        nt[i] = rd_kafka_NewTopic_new(topics[i], partitions, replication, errstr, sizeof(errstr));
        if (nt[i] == NULL) {
            sd_err_set(err, SD_ERR_INVALID, "topic %s: %s", topics[i], errstr);
            goto out;
        }
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, n, NULL, q);
    ev = rd_kafka_queue_poll(q, timeout_ms);
    if (ev == NULL) {
        sd_err_set(err, SD_ERR_TRANSIENT, "create topics: no answer in %d ms", timeout_ms);
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        sd_err_set(err, SD_ERR_TRANSIENT, "create topics: %s", rd_kafka_event_error_string(ev));
        goto out;
    } else {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t cnt = 0;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
        for (size_t i = 0; i < cnt; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                sd_err_set(err, SD_ERR_TRANSIENT, "create topic %s: %s",
                           rd_kafka_topic_result_name(tr[i]),
                           rd_kafka_topic_result_error_string(tr[i]));
                goto out;
            }
        }
    }
    rc = 0;
out:
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    if (q != NULL)
        rd_kafka_queue_destroy(q);
    for (size_t i = 0; nt != NULL && i < n; i++) {
        if (nt[i] != NULL)
            rd_kafka_NewTopic_destroy(nt[i]);
    }
    free(nt);
    if (rk != NULL)
        rd_kafka_destroy(rk);
    return rc;
}
