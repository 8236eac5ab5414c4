/* outbox.c - transactional outbox and its relay (see sipdrain/outbox.h).
 *
 * The relay keeps a set of row ids it has handed to librdkafka and not yet
 * heard back about (in flight). A delivery report either deletes the row
 * (batched DELETE) or just forgets it, so a later scan produces it again.
 * Deleting rather than marking keeps the table small and costs PostgreSQL
 * no new row version (measured: a third of an UPDATE's work).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sipdrain/log.h"
#include "sipdrain/outbox.h"

#define RELAY_BATCH        500
#define RELAY_MAX_INFLIGHT 20000
#define RELAY_TICK_MS      100
#define RELAY_RETRY_MS     250
#define RELAY_RESCAN_MS    1000
#define RELAY_MAX_HEADERS  16

struct sd_outbox_relay {
    struct sd_pg *pg;
    struct sd_kafka_producer *prod;
    unsigned listen_generation;
    unsigned prod_generation; /* the producer instance its in-flight ids went to */
    /* in-flight ids: open addressing, 0 = empty, -1 = deleted */
    int64_t *slots;
    size_t nslots, inflight;
    /* delivered, not yet marked sent */
    int64_t *acked;
    size_t nacked, acked_cap;
    unsigned long sent;
    int scan_wanted, full_scan_wanted;
    int64_t hwm; /* highest id produced */
    int64_t last_full_scan_ms;
    struct sd_loop *loop;
    int pg_fd, timer;
    int failing; /* the last run failed (logged once) */
};

/* --- writing rows ------------------------------------------------------ */

static char outbox_owner[SD_OUTBOX_OWNER_MAX + 1] = "sipdrain";
/* The transaction that already carries a NOTIFY (see sd_outbox_add_raw). */
static const struct sd_pg *notified_pg;
static unsigned long notified_txn;
/* "sipdrain_outbox:<owner>": each relay is woken by its own owner's rows only. */
static char outbox_channel[SD_OUTBOX_OWNER_MAX + 17] = "sipdrain_outbox:sipdrain";

void sd_outbox_set_owner(const char *owner)
{
    if (owner == NULL || owner[0] == '\0')
        owner = "sipdrain";
    if (strlen(owner) > SD_OUTBOX_OWNER_MAX || strchr(owner, '"') != NULL)
        sd_log_warn("outbox owner shortened", "owner=\"%s\" max=%d", owner, SD_OUTBOX_OWNER_MAX);
    snprintf(outbox_owner, sizeof(outbox_owner), "%s", owner);
    for (char *p = outbox_owner; *p != '\0'; p++) {
        if (*p == '"')
            *p = '_';
    }
    snprintf(outbox_channel, sizeof(outbox_channel), "sipdrain_outbox:%s", outbox_owner);
}

const char *sd_outbox_owner(void)
{
    return outbox_owner;
}

int sd_outbox_add_raw(struct sd_pg *pg, const char *topic, const void *key, size_t key_len,
                      const void *value, size_t len, const struct sd_kafka_header *headers,
                      size_t n_headers, struct sd_err *err)
{
    json_t *hdrs = json_object(); /* new */
    char *hdrs_text = NULL, *key_text = NULL;
    const char *values[6];
    int lengths[6] = {0, 0, (int)len, 0, 0, 0};
    int formats[6] = {0, 0, 1, 0, 0, 0};
    PGresult *res;
    int rc = -1;

    for (size_t i = 0; hdrs != NULL && i < n_headers; i++)
        json_object_set_new(hdrs, headers[i].name, json_string(headers[i].value));
    hdrs_text = hdrs ? json_dumps(hdrs, JSON_COMPACT) : NULL;
    if (hdrs_text == NULL) {
        sd_err_set(err, SD_ERR_INVALID, "outbox headers are not valid UTF-8 text");
        goto out;
    }
    if (key != NULL) {
        key_text = strndup(key, key_len);
        if (key_text == NULL) {
            sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
            goto out;
        }
    }
    values[0] = topic;
    values[1] = key_text;
    values[2] = value;
    values[3] = hdrs_text;
    values[4] = outbox_owner;
    values[5] = outbox_channel;
    /* One round trip: the row, and a wake-up for the relay at COMMIT (once
     * per transaction: PostgreSQL folds repeats, but each costs it work). */
    if (sd_pg_txn(pg) != 0 && pg == notified_pg && sd_pg_txn(pg) == notified_txn) {
        res = sd_pg_query(pg,
                          "INSERT INTO outbox (topic, key, payload, headers, owner)"
                          " VALUES ($1, $2, $3, $4::jsonb, $5)",
                          5, values, lengths, formats, err);
    } else {
        res = sd_pg_query(pg,
                          "WITH ins AS (INSERT INTO outbox (topic, key, payload, headers, owner)"
                          " VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING id)"
                          " SELECT pg_notify($6, '') FROM ins",
                          6, values, lengths, formats, err);
        notified_pg = pg;
        notified_txn = sd_pg_txn(pg);
    }
    if (res == NULL)
        goto out;
    PQclear(res);
    rc = 0;
out:
    free(key_text);
    free(hdrs_text);
    json_decref(hdrs);
    return rc;
}

int sd_outbox_add(struct sd_pg *pg, const char *topic, const char *key, const struct sd_event *ev,
                  struct sd_err *err)
{
    size_t len = 0;
    char *text = sd_event_encode(ev, &len, err);
    int rc;

    if (text == NULL)
        return -1;
    rc = sd_outbox_add_raw(pg, topic, key, key ? strlen(key) : 0, text, len, NULL, 0, err);
    free(text);
    return rc;
}

int sd_outbox_add_many(struct sd_pg *pg, const struct sd_outbox_item *items, size_t n,
                       struct sd_err *err)
{
    /* 3 parameters a row ($topic, $key, $payload) + owner + channel. */
    const char *values[SD_OUTBOX_MANY_MAX * 3 + 2];
    int lengths[SD_OUTBOX_MANY_MAX * 3 + 2] = {0};
    int formats[SD_OUTBOX_MANY_MAX * 3 + 2] = {0};
    char *texts[SD_OUTBOX_MANY_MAX] = {NULL};
    char sql[SD_OUTBOX_MANY_MAX * 40 + 256];
    int owner_param = (int)n * 3 + 1, pos, rc = -1;
    PGresult *res;

    if (n == 0)
        return 0;
    if (n > SD_OUTBOX_MANY_MAX)
        return sd_err_set(err, SD_ERR_INTERNAL, "sd_outbox_add_many: %zu rows, at most %d", n,
                          SD_OUTBOX_MANY_MAX);
    pos = snprintf(sql, sizeof(sql),
                   "WITH ins AS (INSERT INTO outbox (topic, key, payload, owner) VALUES ");
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        texts[i] = sd_event_encode(items[i].ev, &len, err);
        if (texts[i] == NULL)
            goto out;
        values[i * 3] = items[i].topic;
        values[i * 3 + 1] = items[i].key;
        values[i * 3 + 2] = texts[i];
        lengths[i * 3 + 2] = (int)len;
        formats[i * 3 + 2] = 1;
        pos += snprintf(sql + pos, sizeof(sql) - (size_t)pos, "%s($%zu, $%zu, $%zu, $%d)",
                        i ? ", " : "", i * 3 + 1, i * 3 + 2, i * 3 + 3, owner_param);
    }
    values[n * 3] = outbox_owner;
    values[n * 3 + 1] = outbox_channel;
    snprintf(sql + pos, sizeof(sql) - (size_t)pos,
             " RETURNING 1) SELECT pg_notify($%d, '') WHERE EXISTS (SELECT 1 FROM ins)",
             owner_param + 1);
    res = sd_pg_query(pg, sql, (int)n * 3 + 2, values, lengths, formats, err);
    if (res == NULL)
        goto out;
    PQclear(res);
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    return rc;
}

/* --- the in-flight set --------------------------------------------------- */

static size_t slot_of(const struct sd_outbox_relay *r, int64_t id)
{
    return (size_t)((uint64_t)id * 11400714819323198485ULL) & (r->nslots - 1);
}

static int inflight_has(const struct sd_outbox_relay *r, int64_t id)
{
    for (size_t i = slot_of(r, id), n = 0; n < r->nslots; i = (i + 1) & (r->nslots - 1), n++) {
        if (r->slots[i] == id)
            return 1;
        if (r->slots[i] == 0)
            return 0;
    }
    return 0;
}

static void inflight_add(struct sd_outbox_relay *r, int64_t id)
{
    for (size_t i = slot_of(r, id);; i = (i + 1) & (r->nslots - 1)) {
        if (r->slots[i] <= 0) {
            r->slots[i] = id;
            r->inflight++;
            return;
        }
    }
}

static void inflight_del(struct sd_outbox_relay *r, int64_t id)
{
    for (size_t i = slot_of(r, id), n = 0; n < r->nslots; i = (i + 1) & (r->nslots - 1), n++) {
        if (r->slots[i] == id) {
            r->slots[i] = -1;
            r->inflight--;
            if (r->inflight == 0) /* clear tombstones while it is cheap */
                memset(r->slots, 0, r->nslots * sizeof(*r->slots));
            return;
        }
        if (r->slots[i] == 0)
            return;
    }
}

/* --- relay --------------------------------------------------------------- */

static void on_delivery(void *msg_opaque, const struct sd_err *derr, void *arg)
{
    struct sd_outbox_relay *r = arg;
    int64_t id = (int64_t)(intptr_t)msg_opaque;

    inflight_del(r, id);
    if (derr != NULL) {
        sd_log_warn("outbox row not delivered, will publish again", "outbox_id=%lld reason=\"%s\"",
                    (long long)id, derr->text);
        r->full_scan_wanted = 1;
        return;
    }
    if (r->nacked == r->acked_cap) {
        size_t cap = r->acked_cap ? r->acked_cap * 2 : 1024;
        int64_t *grown = realloc(r->acked, cap * sizeof(*grown));
        if (grown == NULL) {
            /* Not marked now: published again after a restart; consumers dedupe. */
            return;
        }
        r->acked = grown;
        r->acked_cap = cap;
    }
    r->acked[r->nacked++] = id;
}

struct sd_outbox_relay *sd_outbox_relay_new(struct sd_pg *pg, const char *brokers,
                                            const char *client_id, struct sd_err *err)
{
    struct sd_outbox_relay *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    r->pg = pg;
    r->pg_fd = -1;
    r->scan_wanted = 1;
    r->full_scan_wanted = 1;
    r->nslots = 65536; /* power of two, > 2 x RELAY_MAX_INFLIGHT */
    r->slots = calloc(r->nslots, sizeof(*r->slots));
    if (r->slots == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        goto fail;
    }
    r->prod = sd_kafka_producer_new(brokers, client_id, on_delivery, r, err);
    if (r->prod == NULL)
        goto fail;
    return r;
fail:
    sd_outbox_relay_free(r);
    return NULL;
}

/* Deletes delivered rows, in one statement. */
static int delete_sent(struct sd_outbox_relay *r, struct sd_err *err)
{
    size_t cap = r->nacked * 21 + 3, pos = 0;
    char *arr;
    const char *values[1];
    int n;

    if (r->nacked == 0)
        return 0;
    arr = malloc(cap);
    if (arr == NULL)
        return sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
    arr[pos++] = '{';
    for (size_t i = 0; i < r->nacked; i++)
        pos +=
            (size_t)snprintf(arr + pos, cap - pos, "%s%lld", i ? "," : "", (long long)r->acked[i]);
    arr[pos++] = '}';
    arr[pos] = '\0';
    values[0] = arr;
    n = sd_pg_exec(r->pg, "DELETE FROM outbox WHERE id = ANY($1::bigint[])", 1, values, err);
    free(arr);
    if (n < 0)
        return -1;
    r->sent += r->nacked;
    r->nacked = 0;
    return 0;
}

/* (Re)issues LISTEN after every reconnect and swaps the fd in the loop. */
static int ensure_listen(struct sd_outbox_relay *r, struct sd_err *err);
static void on_pg_readable(struct sd_loop *loop, int fd, short revents, void *arg);

static int ensure_listen(struct sd_outbox_relay *r, struct sd_err *err)
{
    PGconn *conn;

    if (sd_pg_ensure(r->pg, err) < 0)
        return -1;
    if (r->listen_generation == sd_pg_generation(r->pg))
        return 0;
    char listen[sizeof(outbox_channel) + 16];

    snprintf(listen, sizeof(listen), "LISTEN \"%s\"", outbox_channel);
    /* The outbox is a queue: a few live rows over many dead ones until
     * autovacuum passes. A prepared statement's generic plan, made while
     * the table looked empty, scans all of them for every batch (measured:
     * 0.85 ms a scan at 1,500 calls/s, issue #17); a plan made for each
     * run sees the table as it is and takes the id index. */
    if (sd_pg_exec(r->pg, "SET plan_cache_mode = force_custom_plan", 0, NULL, err) < 0 ||
        sd_pg_exec(r->pg, listen, 0, NULL, err) < 0)
        return -1;
    r->listen_generation = sd_pg_generation(r->pg);
    r->full_scan_wanted = 1; /* notifications may have been missed while away */
    conn = sd_pg_conn(r->pg);
    if (r->loop != NULL) {
        if (r->pg_fd >= 0)
            sd_loop_del_fd(r->loop, r->pg_fd);
        r->pg_fd = conn ? PQsocket(conn) : -1;
        if (r->pg_fd >= 0 && sd_loop_add_fd(r->loop, r->pg_fd, POLLIN, on_pg_readable, r) < 0)
            r->pg_fd = -1;
    }
    return 0;
}

static void consume_notifies(struct sd_outbox_relay *r)
{
    PGconn *conn = sd_pg_conn(r->pg);
    PGnotify *n;

    if (conn == NULL)
        return;
    if (!PQconsumeInput(conn)) {
        r->scan_wanted = 1;
        return;
    }
    while ((n = PQnotifies(conn)) != NULL) {
        r->scan_wanted = 1;
        PQfreemem(n);
    }
}

/* Parses the headers column ({"name":"value"}) into hdrs; returns the count. */
static size_t parse_headers(const char *text, json_t **root, struct sd_kafka_header *hdrs)
{
    const char *name;
    json_t *v;
    size_t n = 0;

    *root = json_loads(text, 0, NULL); /* new */
    if (*root == NULL || !json_is_object(*root))
        return 0;
    json_object_foreach(*root, name, v)
    {
        if (n < RELAY_MAX_HEADERS && json_is_string(v))
            hdrs[n++] = (struct sd_kafka_header){name, json_string_value(v)};
    }
    return n;
}

/* Marks a row Kafka refused for good (failed_at + error), keeping it for an operator. */
static int set_aside(struct sd_outbox_relay *r, int64_t id, const char *why, struct sd_err *err)
{
    char idtext[32];
    const char *values[2] = {idtext, why};

    snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
    return sd_pg_exec(r->pg,
                      "UPDATE outbox SET failed_at = clock_timestamp(), error = $2 WHERE id = $1",
                      2, values, err) < 0
               ? -1
               : 0;
}

/* The in-flight ids as a PostgreSQL array literal (malloc'ed). */
static char *inflight_array(const struct sd_outbox_relay *r)
{
    size_t cap = r->inflight * 21 + 3, pos = 0;
    char *arr = malloc(cap);

    if (arr == NULL)
        return NULL;
    arr[pos++] = '{';
    for (size_t i = 0; i < r->nslots; i++) {
        if (r->slots[i] > 0)
            pos += (size_t)snprintf(arr + pos, cap - pos, "%s%lld", pos > 1 ? "," : "",
                                    (long long)r->slots[i]);
    }
    arr[pos++] = '}';
    arr[pos] = '\0';
    return arr;
}

/* Produces unsent rows. The quick scan (every wake-up) takes this owner's
 * rows above the highest id produced so far, so it never rereads what is
 * in flight. The full scan (every second, and after a failed delivery)
 * takes every unsent row not in flight: a row whose transaction committed
 * after a higher id's did, a row to send again, an orphan. Returns 1 if
 * more rows are waiting, 0 if not, -1 on error. */
static int publish(struct sd_outbox_relay *r, int full, struct sd_err *err)
{
    char limit[32], orphan_s[16], hwm[32];
    const char *values[4] = {limit, outbox_owner, orphan_s, hwm};
    char *arr = NULL;
    PGresult *res;
    int rows, produced = 0, more = 0;

    if (r->inflight >= RELAY_MAX_INFLIGHT)
        return 1;
    snprintf(limit, sizeof(limit), "%d", RELAY_BATCH);
    snprintf(orphan_s, sizeof(orphan_s), "%d", SD_OUTBOX_ORPHAN_S);
    snprintf(hwm, sizeof(hwm), "%lld", (long long)r->hwm);
    if (full) {
        arr = inflight_array(r);
        if (arr == NULL)
            return sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        values[3] = arr;
        res = sd_pg_query(r->pg,
                          "SELECT id, topic, key, payload, headers::text FROM outbox"
                          " WHERE failed_at IS NULL AND (owner = $2 OR"
                          " (split_part(owner, '/', 1) = split_part($2, '/', 1) AND created_at <"
                          " clock_timestamp() - make_interval(secs => $3)))"
                          " AND NOT (id = ANY($4::bigint[])) ORDER BY id LIMIT $1",
                          4, values, NULL, NULL, err);
        free(arr);
    } else {
        res =
            sd_pg_query(r->pg,
                        "SELECT id, topic, key, payload, headers::text FROM outbox"
                        " WHERE failed_at IS NULL AND owner = $2 AND id > $3 ORDER BY id LIMIT $1",
                        3, (const char *const[]){limit, outbox_owner, hwm}, NULL, NULL, err);
    }
    if (res == NULL)
        return -1;
    rows = PQntuples(res);
    for (int i = 0; i < rows; i++) {
        struct sd_kafka_header hdrs[RELAY_MAX_HEADERS];
        int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        const char *key = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
        unsigned char *payload;
        json_t *hroot = NULL;
        size_t len = 0, nh;
        struct sd_err perr;
        int rc;

        if (inflight_has(r, id))
            continue;
        payload = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 3), &len);
        if (payload == NULL) {
            more = 1;
            break;
        }
        nh = parse_headers(PQgetvalue(res, i, 4), &hroot, hdrs);
        rc = sd_kafka_produce(r->prod, PQgetvalue(res, i, 1), key, key ? strlen(key) : 0, payload,
                              len, hdrs, nh, (void *)(intptr_t)id, &perr);
        PQfreemem(payload);
        json_decref(hroot);
        if (rc < 0 && perr.code == SD_ERR_TRANSIENT) {
            more = 1; /* queue full: serve delivery reports, then go on */
            break;
        }
        if (rc < 0) {
            /* Kafka will never take it: set it aside so it does not block the rest. */
            sd_log_error("outbox row refused by kafka, set aside", "outbox_id=%lld reason=\"%s\"",
                         (long long)id, perr.text);
            if (set_aside(r, id, perr.text, err) < 0) {
                more = -1;
                break;
            }
            continue;
        }
        inflight_add(r, id);
        if (id > r->hwm)
            r->hwm = id;
        produced++;
    }
    if (more == 0 && rows == RELAY_BATCH)
        more = 1;
    PQclear(res);
    return more;
}

int sd_outbox_relay_run(struct sd_outbox_relay *r, struct sd_err *err)
{
    int64_t now = sd_mono_ms();
    int more = 0;

    sd_kafka_producer_poll(r->prod);
    if (sd_kafka_producer_generation(r->prod) != r->prod_generation) {
        /* a new producer instance: the old one's messages will never be
         * reported; their rows go again (consumers dedupe by event id) */
        if (r->prod_generation != 0 && r->inflight > 0)
            sd_log_warn("outbox rows in flight on a producer that stopped: publishing them again",
                        "count=%zu", r->inflight);
        memset(r->slots, 0, r->nslots * sizeof(*r->slots));
        r->inflight = 0;
        r->prod_generation = sd_kafka_producer_generation(r->prod);
        r->full_scan_wanted = 1;
    }
    if (ensure_listen(r, err) < 0)
        return -1;
    if (delete_sent(r, err) < 0)
        return -1;
    consume_notifies(r);
    if (now - r->last_full_scan_ms >= RELAY_RESCAN_MS)
        r->full_scan_wanted = 1;
    if (r->scan_wanted || r->full_scan_wanted) {
        int full = r->full_scan_wanted;
        r->scan_wanted = r->full_scan_wanted = 0;
        if (full)
            r->last_full_scan_ms = now;
        more = publish(r, full, err);
        if (more < 0) {
            r->full_scan_wanted = 1;
            return -1;
        }
        if (more)
            r->scan_wanted = 1;
    }
    return more;
}

/* Runs the relay from the loop; logs when it starts failing and when it
 * recovers, not on every attempt (a database that is away for a minute must
 * not flood the log). */
static void relay_run_logged(struct sd_outbox_relay *r)
{
    struct sd_err err = {0};

    if (sd_outbox_relay_run(r, &err) < 0) {
        if (!r->failing)
            sd_log_warn("outbox relay paused, retrying", "owner=%s reason=\"%s\"", outbox_owner,
                        err.text);
        r->failing = 1;
    } else if (r->failing) {
        sd_log_info("outbox relay resumed", "owner=%s", outbox_owner);
        r->failing = 0;
    }
}

static void on_pg_readable(struct sd_loop *loop, int fd, short revents, void *arg)
{
    (void)loop;
    (void)fd;
    (void)revents;
    relay_run_logged(arg);
}

static void on_producer_readable(struct sd_loop *loop, int fd, short revents, void *arg)
{
    (void)loop;
    (void)fd;
    (void)revents;
    relay_run_logged(arg);
}

static int64_t on_relay_tick(struct sd_loop *loop, void *arg)
{
    struct sd_outbox_relay *r = arg;

    (void)loop;
    relay_run_logged(r);
    if (r->failing)
        return RELAY_RETRY_MS;
    return r->scan_wanted ? 1 : RELAY_TICK_MS;
}

int sd_outbox_relay_attach(struct sd_outbox_relay *r, struct sd_loop *loop)
{
    r->loop = loop;
    r->listen_generation = 0; /* registers the PostgreSQL fd on the next run */
    if (sd_loop_add_fd(loop, sd_kafka_producer_fd(r->prod), POLLIN, on_producer_readable, r) < 0)
        return -1;
    r->timer = sd_loop_add_timer(loop, 0, on_relay_tick, r);
    return r->timer < 0 ? -1 : 0;
}

unsigned long sd_outbox_relay_sent(const struct sd_outbox_relay *r)
{
    return r->sent;
}

size_t sd_outbox_relay_inflight(const struct sd_outbox_relay *r)
{
    return r->inflight;
}

struct sd_kafka_producer *sd_outbox_relay_producer(struct sd_outbox_relay *r)
{
    return r->prod;
}

void sd_outbox_relay_drain(struct sd_outbox_relay *r, int timeout_ms)
{
    struct sd_err err = {0};
    int64_t deadline = sd_mono_ms() + timeout_ms;

    /* Everything this owner still has, not only what a notification has
     * announced: a row committed just before the stop may not have had its
     * NOTIFY read yet, and would wait for the next start. */
    r->full_scan_wanted = 1;
    while (sd_mono_ms() < deadline) {
        int more = sd_outbox_relay_run(r, &err);
        if (more < 0 || (more == 0 && r->inflight == 0))
            break;
        poll(NULL, 0, more ? 0 : 10);
    }
    timeout_ms = deadline > sd_mono_ms() ? (int)(deadline - sd_mono_ms()) : 0;
    if (sd_kafka_producer_flush(r->prod, timeout_ms) < 0)
        sd_log_warn("outbox relay stopped with rows in flight", "count=%zu", r->inflight);
    sd_kafka_producer_poll(r->prod);
    if (delete_sent(r, &err) < 0)
        sd_log_warn("outbox relay could not mark rows sent", "reason=\"%s\"", err.text);
}

void sd_outbox_relay_free(struct sd_outbox_relay *r)
{
    if (r == NULL)
        return;
    if (r->loop != NULL) {
        if (r->pg_fd >= 0)
            sd_loop_del_fd(r->loop, r->pg_fd);
        if (r->prod != NULL)
            sd_loop_del_fd(r->loop, sd_kafka_producer_fd(r->prod));
        if (r->timer > 0)
            sd_loop_del_timer(r->loop, r->timer);
    }
    sd_kafka_producer_free(r->prod);
    free(r->slots);
    free(r->acked);
    free(r);
}

int sd_outbox_backlog(struct sd_pg *pg, long *rows, struct sd_err *err)
{
    const char *values[1] = {outbox_owner};
    PGresult *res =
        sd_pg_query(pg, "SELECT count(*) FROM outbox WHERE owner = $1 AND failed_at IS NULL", 1,
                    values, NULL, NULL, err);

    if (res == NULL)
        return -1;
    *rows = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}
