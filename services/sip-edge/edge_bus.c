/* edge_bus.c - see edge_bus.h. Everything here runs on the bus thread,
 * except edge_bus_start / edge_bus_stop and the outbox relay, which runs on
 * a thread of its own (relay_run). */
#include "edge_bus.h"

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "edge_auth.h"
#include "edge_db.h"
#include "sipdrain/event.h"
#include "sipdrain/inbox.h"
#include "sipdrain/kafka.h"
#include "sipdrain/log.h"
#include "sipdrain/loop.h"
#include "sipdrain/outbox.h"
#include "sipdrain/pg.h"
#include "sipdrain/topic.h"

#define BUS_TICK_MS    100 /* Kafka's wake-up pipe fires on an edge only */
#define BUS_RETRY_MS   500 /* the database was away: try the held messages again */
#define ROUTE_RETRY_MS 250 /* ... and the calls waiting for it to route them */
/* Control events older than this before the edge started are history (a
 * drain long over, a call the agent gave up on): skipped. The orchestrator
 * sends edge.drain again to an edge that reports active during a drain. */
#define CONTROL_STALE_MS    30000
#define FLUSH_BATCH         256   /* held messages written in one transaction */
#define FLUSH_DELAY_MS      5     /* events wait this long for others to share the commit */
#define EXPIRE_EVERY_MS     60000 /* expired registrations deleted this often */
#define QUEUE_POLL_MS       200   /* while calls wait here: agents looked for this often */
#define QUEUE_TAKE_MAX      32    /* calls offered (or refused) per transaction at most */
#define QUEUE_GIVE_MAX      64    /* agents given to waiting calls per transaction at most */
#define QUEUE_RETRY_AFTER_S 30    /* Retry-After of a queue refusal (queue_timeout, queue_full) */

struct edge_bus {
    char *pg_dsn, *brokers, *edge_id, *site, *source, *realm;
    int max_contacts;
    int queue_max_wait_s, queue_max_calls;
    int route_db_wait_ms;
    /* New calls the database was away for, oldest first: tried again every
     * ROUTE_RETRY_MS for up to route_db_wait_ms since their INVITE came (a
     * switchover leaves no primary for a few seconds), then refused. */
    struct edge_msg *db_waiting, *db_waiting_tail;
    int route_timer;
    bool stopping;      /* EDGE_MSG_STOP taken: no call waits any more */
    long waiting;       /* this edge's rows in waiting_calls, as far as it knows */
    bool queue_cleared; /* the rows of this edge's previous run are deleted */
    int queue_timer;    /* the poll, while waiting > 0 */
    char group[160];
    struct edge_queue *to_bus, *to_sip;
    struct sd_loop *loop;
    struct sd_pg *pg, *relay_pg;
    struct sd_kafka_consumer *kc;
    pthread_t thread;
    /* The outbox relay (its own connection, producer and loop) runs on a
     * thread of its own: its reads of the outbox and deletes of what Kafka
     * has acknowledged would otherwise hold up the next INVITE's route on
     * the bus thread (issue #17: INVITE -> 200 p99). Stopped by an
     * EDGE_MSG_STOP on relay_ctl, after the last held message is written. */
    struct sd_outbox_relay *relay;
    struct sd_loop *relay_loop;
    pthread_t relay_thread;
    bool relay_running;
    struct edge_queue *relay_ctl;
    int64_t started_ms;
    int64_t stats_ms; /* last EDGE_MSG_BUS_STATS */
    /* Messages taken from to_bus and not yet written, oldest first. While
     * the database is away, a newer STATUS replaces a held one. */
    struct edge_msg *held, *held_tail;
    int retry_timer;
    bool db_failing;
};

/* --- what the SIP thread sends ------------------------------------------ */

static void db_trouble(struct edge_bus *b, const struct sd_err *err)
{
    if (!b->db_failing)
        sd_log_warn("database unavailable: holding events, retrying", "reason=\"%s\"", err->text);
    b->db_failing = true;
}

static void db_fine(struct edge_bus *b)
{
    if (b->db_failing)
        sd_log_info("database back: held events written", "%s", "");
    b->db_failing = false;
}

/* One event in the open transaction. */
static int add_event(struct edge_bus *b, const char *topic, const char *key, const char *type,
                     json_t *data, struct sd_err *err)
{
    struct sd_event ev;
    int rc;

    if (sd_event_init(&ev, b->source, type, json_incref(data), err) < 0)
        return -1;
    rc = sd_outbox_add(b->pg, sd_topic(topic), key, &ev, err);
    sd_event_clear(&ev);
    return rc;
}

/* What one transaction of held messages writes together (issue #17): the
 * events in one statement, in order (SD_OUTBOX_MANY_MAX at a time), and
 * the calls rows' updates in one more. A call's second update in the
 * batch first sends those before it, so each applies in order. */
struct write_batch {
    struct sd_event evs[SD_OUTBOX_MANY_MAX];
    struct sd_outbox_item items[SD_OUTBOX_MANY_MAX];
    size_t nev;
    const char *ids[FLUSH_BATCH], *states[FLUSH_BATCH], *causes[FLUSH_BATCH];
    size_t nup;
};

static void batch_clear(struct write_batch *wb)
{
    for (size_t i = 0; i < wb->nev; i++)
        sd_event_clear(&wb->evs[i]);
    wb->nev = wb->nup = 0;
}

static int batch_events(struct edge_bus *b, struct write_batch *wb, struct sd_err *err)
{
    int rc = sd_outbox_add_many(b->pg, wb->items, wb->nev, err);

    for (size_t i = 0; i < wb->nev; i++)
        sd_event_clear(&wb->evs[i]);
    wb->nev = 0;
    return rc;
}

static int batch_updates(struct edge_bus *b, struct write_batch *wb, struct sd_err *err)
{
    int rc = wb->nup == 0
                 ? 0
                 : edge_db_call_update_many(b->pg, wb->ids, wb->states, wb->causes, wb->nup, err);

    wb->nup = 0;
    return rc;
}

/* The batch's statements not sent yet, the transaction's last: its COMMIT
 * goes out with the events (one round trip, sd_pg_commit_next). */
static int batch_finish(struct edge_bus *b, struct write_batch *wb, struct sd_err *err)
{
    if (batch_updates(b, wb, err) < 0)
        return -1;
    sd_pg_commit_next(b->pg);
    return batch_events(b, wb, err);
}

/* One event (data borrowed; key must live until the batch is finished). */
static int batch_event(struct edge_bus *b, struct write_batch *wb, const char *topic,
                       const char *key, const char *type, json_t *data, struct sd_err *err)
{
    if (wb->nev == SD_OUTBOX_MANY_MAX && batch_events(b, wb, err) < 0)
        return -1;
    if (sd_event_init(&wb->evs[wb->nev], b->source, type, json_incref(data), err) < 0)
        return -1;
    wb->items[wb->nev] = (struct sd_outbox_item){sd_topic(topic), key, &wb->evs[wb->nev]};
    wb->nev++;
    return 0;
}

static int batch_update(struct edge_bus *b, struct write_batch *wb, const char *call_id,
                        const char *state, const char *end_cause, struct sd_err *err)
{
    for (size_t i = 0; i < wb->nup; i++) {
        if (strcmp(wb->ids[i], call_id) == 0) {
            if (batch_updates(b, wb, err) < 0)
                return -1;
            break;
        }
    }
    wb->ids[wb->nup] = call_id;
    wb->states[wb->nup] = state;
    wb->causes[wb->nup] = end_cause;
    wb->nup++;
    return 0;
}

/* A JSON string of s; bytes that are not UTF-8 (a caller's From, a
 * Call-ID: they come from the network) must not cost the call its event. */
static json_t *text(const char *s)
{
    json_t *j = json_string(s);

    return j != NULL ? j : json_string("(not UTF-8)");
}

/* A call.* event's data, from the SIP thread's copy of the call. */
static json_t *call_event_data(struct edge_bus *b, const struct edge_call_msg *c)
{
    json_t *d = json_pack("{s:o, s:o, s:o, s:s, s:s, s:s, s:o, s:o}", "call_id", text(c->call_id),
                          "agent_id", text(c->agent_id), "dn", text(c->dn), "edge", b->edge_id,
                          "site", b->site, "direction", c->outbound ? "outbound" : "inbound",
                          "caller", text(c->caller), "called", text(c->called));

    if (d == NULL || strcmp(c->state, "ended") != 0)
        return d;
    if (c->route_point[0] != '\0')
        json_object_set_new(d, "route_point", text(c->route_point));
    json_object_set_new(d, "answered", json_boolean(c->answered));
    json_object_set_new(d, "duration_ms", json_integer((json_int_t)c->duration_ms));
    json_object_set_new(d, "end_cause", json_string(c->end_cause));
    if (c->sip_status != 0)
        json_object_set_new(d, "sip_status", json_integer(c->sip_status));
    return d;
}

/* One held message into the batch (the open transaction). */
static int write_one(struct edge_bus *b, struct write_batch *wb, struct edge_msg *m,
                     struct sd_err *err)
{
    json_t *d = m->data;

    if (m->kind == EDGE_MSG_STATUS) {
        struct edge_db_status st = {
            json_string_value(json_object_get(d, "state")),
            (long)json_integer_value(json_object_get(d, "active_calls")),
            (long)json_integer_value(json_object_get(d, "pending_byes")),
            (long)json_integer_value(json_object_get(d, "nailed_up_dialogs")),
            (long)json_integer_value(json_object_get(d, "calls_cut")),
            (long)json_integer_value(json_object_get(d, "byes_retransmitted")),
            json_is_true(json_object_get(d, "held")),
        };
        if (edge_db_heartbeat(b->pg, b->edge_id, b->site, &st, err) < 0 ||
            batch_event(b, wb, SD_TOPIC_EDGE_STATUS, b->edge_id, "edge.status", d, err) < 0)
            return -1;
    } else if (m->kind == EDGE_MSG_CALL) {
        const struct edge_call_msg *c = m->call;
        bool ended = !strcmp(c->state, "ended");
        int rc = !strcmp(c->state, "offered")
                     ? edge_db_call_insert(b->pg, c->call_id, b->edge_id, b->site, c->agent_id,
                                           c->outbound ? "outbound" : "inbound", err)
                     : batch_update(b, wb, c->call_id, c->state, ended ? c->end_cause : NULL, err);

        if (rc < 0)
            return -1;
        /* A call handed to the peer site has no agent here: its calls row
         * only (the peer's edge reports it as its own call). */
        if (c->agent_id[0] != '\0') {
            json_t *data = call_event_data(b, c);
            rc = batch_event(b, wb, SD_TOPIC_CALL_EVENTS, c->agent_id,
                             ended                              ? "call.ended"
                             : !strcmp(c->state, "established") ? "call.established"
                                                                : "call.offered",
                             data, err);
            json_decref(data);
            if (rc < 0)
                return -1;
        }
    } else if (batch_event(b, wb, json_string_value(json_object_get(d, "topic")),
                           json_string_value(json_object_get(d, "key")),
                           json_string_value(json_object_get(d, "type")),
                           json_object_get(d, "data"), err) < 0) {
        return -1;
    }
    return 0;
}

/* Writes one held message in a transaction of its own. 0: done (or given
 * up for good); -1: transient, keep it. */
static int write_msg(struct edge_bus *b, struct edge_msg *m, struct sd_err *err)
{
    static struct write_batch wb; /* bus thread only; large */

    if (sd_pg_begin(b->pg, err) == 0 && write_one(b, &wb, m, err) == 0 &&
        batch_finish(b, &wb, err) == 0 && sd_pg_commit(b->pg, err) == 0)
        return 0;
    batch_clear(&wb);
    sd_pg_rollback(b->pg);
    if (err->code == SD_ERR_TRANSIENT)
        return -1;
    /* Refused by the database for good (a bug, or the site missing from
     * `sites`): say so and drop it rather than block everything after it. */
    sd_log_error("event not written", "kind=%s reason=\"%s\"", edge_msg_kind_name(m->kind),
                 err->text);
    return 0;
}

/* m put at the end of the list head..tail. */
static void msg_append(struct edge_msg **head, struct edge_msg **tail, struct edge_msg *m)
{
    m->next = NULL;
    if (*tail != NULL)
        (*tail)->next = m;
    else
        *head = m;
    *tail = m;
}

static void hold(struct edge_bus *b, struct edge_msg *m)
{
    /* While the database is away statuses pile up: only the newest matters
     * then. Otherwise each one is written (every phase is reported). */
    if (m->kind == EDGE_MSG_STATUS && b->db_failing) {
        for (struct edge_msg *h = b->held; h != NULL; h = h->next) {
            if (h->kind == EDGE_MSG_STATUS) { /* the newer snapshot wins */
                json_decref(h->data);
                h->data = m->data;
                m->data = NULL;
                edge_msg_free(m);
                return;
            }
        }
    }
    msg_append(&b->held, &b->held_tail, m);
}

static int64_t on_retry(struct sd_loop *loop, void *arg);

static void drop_first_held(struct edge_bus *b)
{
    struct edge_msg *m = b->held;

    b->held = m->next;
    if (b->held == NULL)
        b->held_tail = NULL;
    edge_msg_free(m);
}

static void retry_later(struct edge_bus *b, const struct sd_err *err)
{
    db_trouble(b, err);
    if (b->retry_timer <= 0)
        b->retry_timer = sd_loop_add_timer(b->loop, BUS_RETRY_MS, on_retry, b);
}

/* Writes the held messages in order, up to FLUSH_BATCH in one transaction
 * (under load a call's events and the statuses share one commit and the
 * round trips of BEGIN/COMMIT: measured the bus thread's largest cost).
 * Stops at the first transient failure and tries again later. A message
 * the database refuses for good spoils its batch: that batch is then
 * written one message per transaction, so only the bad one is dropped. */
static void flush_held(struct edge_bus *b)
{
    struct sd_err err = {0};

    static struct write_batch wb; /* bus thread only; large */

    while (b->held != NULL) {
        struct edge_msg *m;
        size_t n = 0;
        int rc = sd_pg_begin_lazy(b->pg, &err); /* BEGIN goes with the first statement */

        for (m = b->held; rc == 0 && m != NULL && n < FLUSH_BATCH; m = m->next, n++)
            rc = write_one(b, &wb, m, &err);
        if (rc == 0)
            rc = batch_finish(b, &wb, &err);
        if (rc == 0)
            rc = sd_pg_commit(b->pg, &err);
        if (rc == 0) {
            while (n-- > 0)
                drop_first_held(b);
            continue;
        }
        batch_clear(&wb);
        sd_pg_rollback(b->pg);
        if (err.code == SD_ERR_TRANSIENT) {
            retry_later(b, &err);
            return;
        }
        for (; n > 0 && b->held != NULL; n--) {
            if (write_msg(b, b->held, &err) < 0) {
                retry_later(b, &err);
                return;
            }
            drop_first_held(b);
        }
    }
    db_fine(b);
}

static int64_t on_retry(struct sd_loop *loop, void *arg)
{
    struct edge_bus *b = arg;

    (void)loop;
    b->retry_timer = 0;
    flush_held(b);
    return -1;
}

/* A phone registering here whose agent is logged in with nailed_up (an
 * agent logged in before this edge started, or whose phone moved here
 * from another edge) gets its standing dialog too; the SIP thread ignores
 * it when the dialog is open already (a refresh). */
static void nailed_on_register(struct edge_bus *b, json_t *d)
{
    struct sd_err err = {0};
    char agent[65];
    const char *dn = json_string_value(json_object_get(d, "dn"));

    if (edge_db_nailed_agent(b->pg, dn, agent, sizeof(agent), &err) < 0) {
        sd_log_warn("nailed-up check skipped: database unavailable", "dn=%s reason=\"%s\"", dn,
                    err.text);
        return;
    }
    if (agent[0] != '\0')
        edge_queue_put(b->to_sip, EDGE_MSG_NAILED, 0,
                       json_pack("{s:s, s:s, s:s, s:s}", "op", "up", "agent_id", agent, "dn", dn,
                                 "contact", json_string_value(json_object_get(d, "contact"))));
}

/* The digest response of a REGISTER (data.auth, checked for its nonce by
 * the SIP thread) against the DN's HA1: "ok", "no_credentials",
 * "bad_password", or "db" (err). */
static const char *check_credentials(struct edge_bus *b, const char *dn, json_t *auth,
                                     struct sd_err *err)
{
    char ha1[EDGE_AUTH_HEX_MAX + 1], expected[EDGE_AUTH_HEX_MAX];
    const char *alg_name = json_string_value(json_object_get(auth, "algorithm"));
    const char *nonce = json_string_value(json_object_get(auth, "nonce"));
    const char *nc = json_string_value(json_object_get(auth, "nc"));
    const char *cnonce = json_string_value(json_object_get(auth, "cnonce"));
    const char *uri = json_string_value(json_object_get(auth, "uri"));
    const char *response = json_string_value(json_object_get(auth, "response"));
    enum edge_auth_alg alg;

    /* the SIP thread sends all of them, and no other algorithm */
    if (alg_name == NULL || nonce == NULL || nc == NULL || cnonce == NULL || uri == NULL ||
        response == NULL || edge_auth_alg_parse(alg_name, &alg) < 0)
        return "bad_password";
    if (edge_db_credentials(b->pg, dn, b->realm, edge_auth_alg_name(alg), ha1, sizeof(ha1), err) <
        0)
        return "db";
    if (ha1[0] == '\0')
        return "no_credentials";
    edge_auth_response(alg, ha1, nonce, nc, cnonce, "REGISTER", uri, expected);
    memset(ha1, 0, sizeof(ha1));
    return edge_auth_equal(expected, response) ? "ok" : "bad_password";
}

/* REGISTER: the credentials checked, then written and answered, never held
 * (the phone retries). The answer's verdict: "ok" (stored),
 * "no_credentials" / "bad_password" (403, nothing stored), "db" (500). */
static void do_register(struct edge_bus *b, struct edge_msg *m)
{
    json_t *d = m->data;
    const char *dn = json_string_value(json_object_get(d, "dn"));
    struct sd_err err = {0};
    const char *verdict = check_credentials(b, dn, json_object_get(d, "auth"), &err);

    if (!strcmp(verdict, "ok") &&
        edge_db_register(b->pg, b->edge_id, dn, json_string_value(json_object_get(d, "contact")),
                         (int)json_integer_value(json_object_get(d, "expires_s")), b->max_contacts,
                         &err) < 0)
        verdict = "db";
    if (!strcmp(verdict, "db"))
        sd_log_warn("registration not stored", "dn=%s reason=\"%s\"", dn, err.text);
    edge_queue_put(b->to_sip, EDGE_MSG_REGISTER_DONE, m->token,
                   json_pack("{s:s, s:s}", "verdict", verdict, "reason", err.text));
    if (!strcmp(verdict, "ok") && json_integer_value(json_object_get(d, "expires_s")) > 0)
        nailed_on_register(b, d);
}

/* Expired registrations, deleted every EXPIRE_EVERY_MS by every edge (one
 * indexed statement; the edges do not need to agree who does it). */
static int64_t on_expire(struct sd_loop *loop, void *arg)
{
    struct edge_bus *b = arg;
    struct sd_err err = {0};
    long n = 0;

    (void)loop;
    if (edge_db_registrations_expire(b->pg, &n, &err) < 0)
        sd_log_warn("expired registrations not deleted", "reason=\"%s\"", err.text);
    else if (n > 0)
        sd_log_info("expired registrations deleted", "count=%ld", n);
    /* the waiting calls of edges silent for a minute (their callers are
     * gone; such an edge may never come back to remove them) */
    n = 0;
    if (b->queue_max_wait_s > 0 && edge_db_queue_clear(b->pg, "", b->site, &n, &err) == 0 && n > 0)
        sd_log_warn("waiting calls of dead edges removed", "calls=%ld", n);
    return EXPIRE_EVERY_MS;
}

/* --- the site's queue (issue #16) ----------------------------------------
 *
 * A route-point call that finds no Ready agent (or finds calls waiting
 * already: it must not overtake them) waits: a waiting_calls row and
 * call.queued in one transaction, then QUEUED to the SIP thread (182).
 * While this edge holds waiting calls it polls every QUEUE_POLL_MS (at
 * once again while there is more to do): calls past their deadline are
 * refused (queue_timeout); the site's oldest waiting calls, whichever edge
 * holds them, are given the longest-idle Ready agents in one statement
 * (edge_db_queue_give: one giver per site at a time, so the first caller in
 * is the first served across the edges); then this edge offers its own
 * calls that were given an agent (the rows go, the calls rows, call.
 * dequeued and call.offered come, in one transaction) and the SIP thread
 * gets their ROUTE_DONEs. A first version let each edge serve only its own
 * call, and only when it was the site's oldest: with calls spread over two
 * edges the turns alternated at the poll's pace, and at 400 calls/s the
 * queue grew until it was full (bench/drain_rate.sh). */

static int64_t on_queue_poll(struct sd_loop *loop, void *arg);

static void queue_poll_soon(struct edge_bus *b)
{
    if (b->waiting > 0 && b->queue_timer <= 0)
        b->queue_timer = sd_loop_add_timer(b->loop, QUEUE_POLL_MS, on_queue_poll, b);
}

/* The rows this edge left in a previous run go before it queues anything:
 * their callers went with that process. */
static int queue_clear(struct edge_bus *b, struct sd_err *err)
{
    long n = 0;

    if (b->queue_cleared || b->queue_max_wait_s <= 0)
        return 0;
    if (edge_db_queue_clear(b->pg, b->edge_id, b->site, &n, err) < 0)
        return -1;
    if (n > 0)
        sd_log_warn("waiting calls of this edge's previous run (or of dead edges) removed",
                    "calls=%ld", n);
    b->queue_cleared = true;
    return 0;
}

static void route_done(struct edge_bus *b, unsigned long token, const struct edge_route *r,
                       const char *caller, const char *called)
{
    edge_queue_put(b->to_sip, EDGE_MSG_ROUTE_DONE, token,
                   json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?}", "status", r->status,
                             "reason", r->reason ? r->reason : "", "call_id", r->call_id_used,
                             "agent_id", r->agent_id, "dn", r->agent_dn, "contact", r->contact,
                             "caller", caller, "called", called));
}

/* call.queued / call.dequeued in the open transaction. */
static int queue_event(struct edge_bus *b, const char *type, const char *call_id,
                       const char *route_point, const char *caller, const char *called,
                       json_t *extra, struct sd_err *err)
{
    json_t *ev =
        json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?}", "call_id", call_id, "edge", b->edge_id,
                  "site", b->site, "route_point", route_point, "caller", caller, "called", called);
    int rc;

    if (extra != NULL)
        json_object_update(ev, extra);
    rc = add_event(b, SD_TOPIC_CALL_EVENTS, route_point, type, ev, err);
    json_decref(ev);
    json_decref(extra);
    return rc;
}

/* No agent for a new route-point call (r: 480, in the open transaction):
 * 1 = it waits (committed, QUEUED sent), 0 = the site's queue is full
 * (the caller rolls back), -1 = the database failed. */
static int queue_call(struct edge_bus *b, struct edge_msg *m, struct edge_route *r,
                      struct sd_err *err)
{
    json_t *d = m->data;
    struct edge_wait w = {
        .edge_id = b->edge_id,
        .site = b->site,
        .call_id = r->call_id,
        .route_point = r->dn,
        .caller = json_string_value(json_object_get(d, "caller")),
        .called = json_string_value(json_object_get(d, "called")),
        .token = m->token,
        .queued_at_ms = json_integer_value(json_object_get(d, "queued_at_ms")),
        .max_wait_s = b->queue_max_wait_s,
    };
    bool full = false;

    if (w.queued_at_ms <= 0)
        w.queued_at_ms = sd_wall_ms();
    if (edge_db_queue(b->pg, &w, b->queue_max_calls, &full, err) < 0)
        return -1;
    if (full)
        return 0;
    if (queue_event(b, "call.queued", w.call_id, w.route_point, w.caller, w.called,
                    json_pack("{s:i}", "max_wait_s", b->queue_max_wait_s), err) < 0 ||
        sd_pg_commit(b->pg, err) < 0)
        return -1;
    b->waiting++;
    queue_poll_soon(b);
    sd_log_info("call waits for an agent", "call=%s route_point=%s", w.call_id, w.route_point);
    edge_queue_put(b->to_sip, EDGE_MSG_QUEUED, m->token, json_pack("{s:s}", "call_id", w.call_id));
    return 1;
}

/* A waiting call's agent did not answer: it waits again, in its old place. */
static void do_requeue(struct edge_bus *b, struct edge_msg *m)
{
    json_t *d = m->data;
    struct edge_wait w = {
        .edge_id = b->edge_id,
        .site = b->site,
        .call_id = json_string_value(json_object_get(d, "call_id")),
        .route_point = json_string_value(json_object_get(d, "dn")),
        .caller = json_string_value(json_object_get(d, "caller")),
        .called = json_string_value(json_object_get(d, "called")),
        .token = m->token,
        .queued_at_ms = json_integer_value(json_object_get(d, "queued_at_ms")),
        .max_wait_s = b->queue_max_wait_s,
        .offers = (int)json_integer_value(json_object_get(d, "offers")),
    };
    struct sd_err err = {0};
    bool full = false;

    if (sd_pg_begin(b->pg, &err) < 0 || edge_db_queue(b->pg, &w, 0, &full, &err) < 0 ||
        queue_event(b, "call.queued", w.call_id, w.route_point, w.caller, w.called,
                    json_pack("{s:i, s:i}", "max_wait_s", b->queue_max_wait_s, "offers", w.offers),
                    &err) < 0 ||
        sd_pg_commit(b->pg, &err) < 0) {
        struct edge_route r = {.status = 503, .reason = "database_unavailable"};
        sd_pg_rollback(b->pg);
        sd_log_warn("call not queued again: database unavailable", "call=%s reason=\"%s\"",
                    w.call_id, err.text);
        snprintf(r.call_id_used, sizeof(r.call_id_used), "%s", w.call_id);
        route_done(b, m->token, &r, w.caller, w.called);
        return;
    }
    b->waiting++;
    queue_poll_soon(b);
}

/* The caller of a waiting call is gone (CANCEL, its transaction over, a
 * cut): its row goes, and the SIP thread hears 487 for it. Not waiting any
 * more (given an agent, or refused, on the way to the SIP thread): nothing
 * to do, that answer ends the call there. */
static void do_dequeue(struct edge_bus *b, struct edge_msg *m)
{
    struct edge_waiting w;
    struct sd_err err = {0};
    const char *peer = json_string_value(json_object_get(m->data, "peer_uri"));
    struct edge_route r = {.status = 487, .reason = "cancelled"};
    json_t *extra;
    bool found = false;

    if (sd_pg_begin(b->pg, &err) < 0 ||
        edge_db_dequeue(b->pg, b->edge_id, m->token, &w, &found, &err) < 0)
        goto fail;
    if (!found) {
        sd_pg_rollback(b->pg);
        return; /* offered or refused already: that answer is on its way */
    }
    if (peer != NULL) {
        /* a site drain: to the peer site's route point, a calls row of its own */
        r = (struct edge_route){.call_id = w.call_id, .edge_id = b->edge_id, .site = b->site};
        if (edge_db_call_insert_peer(b->pg, &r, &err) < 0)
            goto fail;
        snprintf(r.contact, sizeof(r.contact), "%s", peer);
    } else {
        snprintf(r.call_id_used, sizeof(r.call_id_used), "%s", w.call_id);
    }
    extra = json_pack("{s:s, s:I}", "reason", peer != NULL ? "peer_site" : "cancelled", "wait_ms",
                      (json_int_t)w.wait_ms);
    if (peer != NULL) {
        json_object_set_new(extra, "peer_uri", json_string(peer));
        json_object_set_new(extra, "offered_call_id", json_string(r.call_id_used));
    }
    if (queue_event(b, "call.dequeued", w.call_id, w.route_point, w.caller, w.called, extra, &err) <
            0 ||
        sd_pg_commit(b->pg, &err) < 0)
        goto fail;
    b->waiting--;
    sd_log_info(peer != NULL ? "waiting call sent to the peer site" : "waiting call gone",
                "call=%s wait_ms=%ld target=%s", w.call_id, w.wait_ms, peer != NULL ? peer : "-");
    route_done(b, m->token, &r, w.caller, w.called);
    return;
fail:
    /* The row stays until its deadline; the poll then refuses it, and the
     * SIP thread ends the call with that answer. */
    sd_pg_rollback(b->pg);
    sd_log_warn("waiting call not taken out: database unavailable", "reason=\"%s\"", err.text);
}

/* Refuses this edge's calls past their deadline (480 queue_timeout). */
static int queue_expire(struct edge_bus *b, struct sd_err *err)
{
    struct edge_waiting gone[QUEUE_TAKE_MAX];
    size_t n = 0;

    if (sd_pg_begin(b->pg, err) < 0 ||
        edge_db_queue_expire(b->pg, b->edge_id, gone, QUEUE_TAKE_MAX, &n, err) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        json_t *ev =
            json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:s, s:s}", "call_id", gone[i].call_id,
                      "edge", b->edge_id, "site", b->site, "direction", "inbound", "reject_code",
                      480, "reason", "queue_timeout", "retry_after_s", QUEUE_RETRY_AFTER_S,
                      "caller", gone[i].caller, "called", gone[i].called);
        int rc = queue_event(b, "call.dequeued", gone[i].call_id, gone[i].route_point,
                             gone[i].caller, gone[i].called,
                             json_pack("{s:s, s:I}", "reason", "queue_timeout", "wait_ms",
                                       (json_int_t)gone[i].wait_ms),
                             err);
        if (rc == 0)
            rc = add_event(b, SD_TOPIC_CALL_EVENTS, gone[i].route_point, "call.rejected", ev, err);
        json_decref(ev);
        if (rc < 0)
            goto fail;
    }
    if (sd_pg_commit(b->pg, err) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        struct edge_route r = {.status = 480, .reason = "queue_timeout"};
        snprintf(r.call_id_used, sizeof(r.call_id_used), "%s", gone[i].call_id);
        sd_log_info("call not routed", "call=%s dn=%s status=480 reason=queue_timeout wait_ms=%ld",
                    gone[i].call_id, gone[i].route_point, gone[i].wait_ms);
        route_done(b, gone[i].token, &r, gone[i].caller, gone[i].called);
    }
    b->waiting -= (long)n;
    return 0;
fail:
    sd_pg_rollback(b->pg);
    return -1;
}

/* Offers this edge's waiting calls that were given an agent (by any edge's
 * edge_db_queue_give): their rows out, then for each a calls row,
 * call.dequeued and call.offered, in one transaction; then each call's
 * ROUTE_DONE. Returns how many, or -1 (the database failed: the rows stay,
 * taken next time). */
static int queue_take(struct edge_bus *b, struct sd_err *err)
{
    struct edge_given g[QUEUE_TAKE_MAX];
    struct edge_route r[QUEUE_TAKE_MAX];
    size_t n = 0;

    if (sd_pg_begin(b->pg, err) < 0 ||
        edge_db_queue_take(b->pg, b->edge_id, g, QUEUE_TAKE_MAX, &n, err) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        json_t *ev;
        r[i] = (struct edge_route){.call_id = g[i].w.call_id,
                                   .dn = g[i].w.route_point,
                                   .site = b->site,
                                   .edge_id = b->edge_id,
                                   .route_point = true};
        snprintf(r[i].agent_id, sizeof(r[i].agent_id), "%s", g[i].agent_id);
        snprintf(r[i].agent_dn, sizeof(r[i].agent_dn), "%s", g[i].agent_dn);
        snprintf(r[i].contact, sizeof(r[i].contact), "%s", g[i].contact);
        if (edge_db_call_insert_routed(b->pg, &r[i], err) < 0)
            goto fail;
        ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "call_id",
                       r[i].call_id_used, "agent_id", r[i].agent_id, "dn", r[i].agent_dn, "edge",
                       b->edge_id, "site", b->site, "direction", "inbound", "caller", g[i].w.caller,
                       "called", g[i].w.called, "route_point", g[i].w.route_point);
        if (queue_event(b, "call.dequeued", g[i].w.call_id, g[i].w.route_point, g[i].w.caller,
                        g[i].w.called,
                        json_pack("{s:s, s:I, s:s, s:s}", "reason", "offered", "wait_ms",
                                  (json_int_t)g[i].w.wait_ms, "agent_id", r[i].agent_id,
                                  "offered_call_id", r[i].call_id_used),
                        err) < 0 ||
            add_event(b, SD_TOPIC_CALL_EVENTS, r[i].agent_id, "call.offered", ev, err) < 0) {
            json_decref(ev);
            goto fail;
        }
        json_decref(ev);
    }
    if (sd_pg_commit(b->pg, err) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        sd_log_info("call routed", "call=%s agent=%s dn=%s contact=%s wait_ms=%ld",
                    r[i].call_id_used, r[i].agent_id, r[i].agent_dn, r[i].contact, g[i].w.wait_ms);
        route_done(b, g[i].w.token, &r[i], g[i].w.caller, g[i].w.called);
    }
    b->waiting -= (long)n;
    return (int)n;
fail:
    sd_pg_rollback(b->pg);
    return -1;
}

/* While this edge holds waiting calls: refuse those past their deadline,
 * give the site's waiting calls the Ready agents (any edge may; one at a
 * time), offer this edge's calls that have one. Again at once while there
 * is more to do, else after QUEUE_POLL_MS. */
static int64_t on_queue_poll(struct sd_loop *loop, void *arg)
{
    struct edge_bus *b = arg;
    struct sd_err err = {0};
    long given = 0;
    int taken = 0;

    (void)loop;
    if (queue_expire(b, &err) < 0 ||
        edge_db_queue_give(b->pg, b->site, QUEUE_GIVE_MAX, &given, &err) < 0 ||
        (taken = queue_take(b, &err)) < 0)
        sd_log_warn("queue not served: database unavailable", "reason=\"%s\"", err.text);
    if (b->waiting > 0)
        return taken == QUEUE_TAKE_MAX || given == QUEUE_GIVE_MAX ? 1 : QUEUE_POLL_MS;
    b->waiting = 0;
    b->queue_timer = 0;
    return -1;
}

/* --- new calls --------------------------------------------------------- */

static void route_fill(struct edge_bus *b, const struct edge_msg *m, struct edge_route *r)
{
    json_t *d = m->data;

    *r = (struct edge_route){
        .call_id = json_string_value(json_object_get(d, "call_id")),
        .dn = json_string_value(json_object_get(d, "dn")),
        .site = b->site,
        .edge_id = b->edge_id,
        .route_point = json_is_true(json_object_get(d, "route_point")),
    };
    r->behind_queue = r->route_point && b->queue_max_wait_s > 0;
}

static const char *msg_str(const struct edge_msg *m, const char *key)
{
    return json_string_value(json_object_get(m->data, key));
}

/* call.offered's data for a routed call. */
static json_t *offered_data(struct edge_bus *b, const struct edge_msg *m,
                            const struct edge_route *r)
{
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?}", "call_id", r->call_id_used,
                           "agent_id", r->agent_id, "dn", r->agent_dn, "edge", b->edge_id, "site",
                           b->site, "direction", "inbound", "caller", msg_str(m, "caller"),
                           "called", msg_str(m, "called"));

    if (ev != NULL && r->route_point)
        json_object_set_new(ev, "route_point", json_string(r->dn));
    return ev;
}

/* Routed and committed: the SIP thread offers the call to the phone. */
static void route_routed(struct edge_bus *b, struct edge_msg *m, const struct edge_route *r)
{
    sd_log_info("call routed", "call=%s agent=%s dn=%s contact=%s", r->call_id_used, r->agent_id,
                r->agent_dn, r->contact);
    route_done(b, m->token, r, msg_str(m, "caller"), msg_str(m, "called"));
}

/* Refused (r->status, nothing of it in the database): the SIP thread
 * answers, and m becomes its call.rejected, held like any event: it must
 * not be lost. */
static void route_refused(struct edge_bus *b, struct edge_msg *m, const struct edge_route *r)
{
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s?, s:s?}", "call_id", r->call_id_used,
                           "edge", b->edge_id, "site", b->site, "direction", "inbound",
                           "reject_code", r->status, "reason", r->reason, "caller",
                           msg_str(m, "caller"), "called", msg_str(m, "called"));
    json_t *rejected;

    if (r->agent_id[0] != '\0') {
        json_object_set_new(ev, "agent_id", json_string(r->agent_id));
        json_object_set_new(ev, "dn", json_string(r->agent_dn));
    }
    if (r->status == 480)
        json_object_set_new(ev, "retry_after_s", json_integer(QUEUE_RETRY_AFTER_S));
    rejected = json_pack("{s:s, s:s, s:s, s:o}", "topic", SD_TOPIC_CALL_EVENTS, "key",
                         r->agent_id[0] ? r->agent_id : r->dn, "type", "call.rejected", "data", ev);
    sd_log_info("call not routed", "call=%s dn=%s status=%d reason=%s", r->call_id_used, r->dn,
                r->status, r->reason);
    route_done(b, m->token, r, msg_str(m, "caller"), msg_str(m, "called"));
    json_decref(m->data); /* r points into it: replaced last */
    m->data = rejected;
    m->kind = EDGE_MSG_EVENT;
}

/* The database failed (rolled back): 503, and m becomes its call.rejected,
 * which waits with the held events for the database. */
static void route_failed(struct edge_bus *b, struct edge_msg *m, const struct edge_route *r,
                         const struct sd_err *err)
{
    json_t *ev;

    if (err->code == SD_ERR_TRANSIENT && !b->stopping &&
        sd_mono_ms() - m->taken_ms < b->route_db_wait_ms) {
        if (!m->db_waited)
            sd_log_warn("call waits for the database", "call=%s wait_ms=%d reason=\"%s\"",
                        r->call_id ? r->call_id : "-", b->route_db_wait_ms, err->text);
        m->db_wait = m->db_waited = true; /* flush_routes keeps it */
        return;
    }

    sd_log_warn("call not routed: database unavailable", "call=%s reason=\"%s\"",
                r->call_id ? r->call_id : "-", err->text);
    edge_queue_put(b->to_sip, EDGE_MSG_ROUTE_DONE, m->token,
                   json_pack("{s:i, s:s}", "status", 503, "reason", "database_unavailable"));
    ev = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:s?, s:s?}", "call_id",
                   r->call_id ? r->call_id : "-", "edge", b->edge_id, "site", b->site, "direction",
                   "inbound", "reject_code", 503, "reason", "failed", "retry_after_s",
                   EDGE_DB_RETRY_AFTER_S, "caller", msg_str(m, "caller"), "called",
                   msg_str(m, "called"));
    ev = json_pack("{s:s, s:s, s:s, s:o}", "topic", SD_TOPIC_CALL_EVENTS, "key",
                   r->dn ? r->dn : "-", "type", "call.rejected", "data", ev);
    json_decref(m->data); /* r points into it: nothing of r is used after this */
    m->data = ev;
    m->kind = EDGE_MSG_EVENT;
}

/* A new inbound call: reserve the agent, find the phone, insert the calls
 * row and call.offered in one transaction; or wait at a route point; or
 * call.rejected saying why. Answered at once (never held: the caller is
 * waiting). */
static void do_route(struct edge_bus *b, struct edge_msg *m)
{
    struct edge_route r;
    struct sd_err err = {0};
    json_t *ev;

    route_fill(b, m, &r);
    if (queue_clear(b, &err) < 0 || sd_pg_begin_lazy(b->pg, &err) < 0 ||
        edge_db_route(b->pg, &r, &err) < 0)
        goto fail;
    if (r.status == 480 && r.behind_queue) {
        int rc = queue_call(b, m, &r, &err);
        if (rc < 0)
            goto fail;
        if (rc > 0)
            return;              /* it waits: QUEUED sent */
        r.reason = "queue_full"; /* rolled back; refused below */
    }
    if (r.status != 0) {
        sd_pg_rollback(b->pg); /* the reservation, if any, with it */
        route_refused(b, m, &r);
        return;
    }
    ev = offered_data(b, m, &r);
    sd_pg_commit_next(b->pg); /* with the event's row */
    if (add_event(b, SD_TOPIC_CALL_EVENTS, r.agent_id, "call.offered", ev, &err) < 0) {
        json_decref(ev);
        goto fail;
    }
    json_decref(ev);
    if (sd_pg_commit(b->pg, &err) < 0)
        goto fail;
    route_routed(b, m, &r);
    return;
fail:
    sd_pg_rollback(b->pg);
    route_failed(b, m, &r, &err);
}

/* Several new calls that came together (issue #17: under load the SIP
 * thread hands over INVITEs faster than one transaction each can route
 * them): one transaction, one statement reserving their agents and
 * inserting their calls rows, one writing their call.offered. A route-point
 * call that finds no agent goes on alone through do_route (it may wait). A
 * batch the database refuses for good (not a broken connection) is routed
 * again one call at a time, so only a bad call fails. */
static void route_batch(struct edge_bus *b, struct edge_msg **ms, size_t n)
{
    struct edge_route r[EDGE_ROUTE_BATCH_MAX];
    struct sd_event evs[EDGE_ROUTE_BATCH_MAX];
    struct sd_outbox_item items[EDGE_ROUTE_BATCH_MAX];
    size_t nev = 0;
    struct sd_err err = {0};
    int rc;

    if (n == 1) {
        do_route(b, ms[0]);
        return;
    }
    for (size_t i = 0; i < n; i++)
        route_fill(b, ms[i], &r[i]);
    /* Two round trips: BEGIN with the routing statement, COMMIT with the
     * outbox rows (sd_pg_begin_lazy, sd_pg_commit_next). */
    rc = queue_clear(b, &err) < 0 || sd_pg_begin_lazy(b->pg, &err) < 0 ||
                 edge_db_route_batch(b->pg, r, n, &err) < 0
             ? -1
             : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (r[i].status != 0)
            continue;
        if (sd_event_init(&evs[nev], b->source, "call.offered", offered_data(b, ms[i], &r[i]),
                          &err) < 0) {
            rc = -1;
            break;
        }
        items[nev] =
            (struct sd_outbox_item){sd_topic(SD_TOPIC_CALL_EVENTS), r[i].agent_id, &evs[nev]};
        nev++;
    }
    if (rc == 0) {
        sd_pg_commit_next(b->pg);
        rc = sd_outbox_add_many(b->pg, items, nev, &err) < 0 || sd_pg_commit(b->pg, &err) < 0 ? -1
                                                                                              : 0;
    }
    for (size_t k = 0; k < nev; k++)
        sd_event_clear(&evs[k]);
    if (rc < 0) {
        sd_pg_rollback(b->pg);
        if (err.code != SD_ERR_TRANSIENT) {
            sd_log_warn("calls not routed together: routing them one by one",
                        "calls=%zu reason=\"%s\"", n, err.text);
            for (size_t i = 0; i < n; i++)
                do_route(b, ms[i]);
            return;
        }
        for (size_t i = 0; i < n; i++)
            route_failed(b, ms[i], &r[i], &err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (r[i].status == 0)
            route_routed(b, ms[i], &r[i]);
        else if (r[i].status == 480 && r[i].behind_queue)
            do_route(b, ms[i]);
        else
            route_refused(b, ms[i], &r[i]);
    }
}

static int64_t on_route_retry(struct sd_loop *loop, void *arg);

/* Routes the ROUTE messages taken so far, and holds their call.rejected;
 * those the database was away for wait (route_failed). */
/* A route message after its try: its call.rejected held, or back to wait
 * for the database, or done. */
static void route_after(struct edge_bus *b, struct edge_msg *m)
{
    if (m->kind == EDGE_MSG_EVENT) {
        hold(b, m);
    } else if (m->kind == EDGE_MSG_ROUTE && m->db_wait) {
        msg_append(&b->db_waiting, &b->db_waiting_tail, m);
    } else {
        edge_msg_free(m);
    }
}

static void flush_routes(struct edge_bus *b, struct edge_msg **ms, size_t *n)
{
    if (*n == 0)
        return;
    route_batch(b, ms, *n);
    for (size_t i = 0; i < *n; i++)
        route_after(b, ms[i]);
    *n = 0;
    if (b->db_waiting != NULL && b->route_timer <= 0)
        b->route_timer = sd_loop_add_timer(b->loop, ROUTE_RETRY_MS, on_route_retry, b);
}

/* A call tried again: if its last try failed at the COMMIT (the connection
 * broke before the answer), the COMMIT may have gone through - its agent
 * reserved, its calls row and call.offered written. Routing it afresh would
 * then find its own agent busy (486 for a DN) or reserve a second one (a
 * route point). So it is routed as that try left it. True when m is done
 * with (routed, or waiting on: the database is still away). */
static bool routed_before(struct edge_bus *b, struct edge_msg *m)
{
    struct edge_route r;
    struct sd_err err = {0};
    int rc;

    route_fill(b, m, &r);
    rc = edge_db_routed_before(b->pg, &r, &err);
    if (rc == 0)
        return false;
    if (rc < 0) {
        route_failed(b, m, &r, &err);
    } else {
        sd_log_warn("call routed by a try whose COMMIT went unanswered: kept as it is",
                    "call=%s agent=%s", r.call_id_used, r.agent_id);
        route_routed(b, m, &r);
    }
    route_after(b, m);
    return true;
}

/* The calls waiting for the database, tried again (in order, together);
 * those it is still away for wait on, until their time is up. */
static void route_waiting(struct edge_bus *b)
{
    struct edge_msg *m = b->db_waiting, *ms[EDGE_ROUTE_BATCH_MAX];
    size_t n = 0;

    b->db_waiting = b->db_waiting_tail = NULL;
    while (m != NULL) {
        struct edge_msg *next = m->next;
        m->next = NULL;
        m->db_wait = false; /* route_failed sets it again if it must wait on */
        if (routed_before(b, m)) {
            m = next;
            continue;
        }
        ms[n++] = m;
        if (n == EDGE_ROUTE_BATCH_MAX)
            flush_routes(b, ms, &n);
        m = next;
    }
    flush_routes(b, ms, &n);
    /* (routed_before may have put calls back to wait with none flushed) */
    if (b->db_waiting != NULL && b->route_timer <= 0)
        b->route_timer = sd_loop_add_timer(b->loop, ROUTE_RETRY_MS, on_route_retry, b);
}

static int64_t on_route_retry(struct sd_loop *loop, void *arg)
{
    struct edge_bus *b = arg;

    (void)loop;
    b->route_timer = 0;
    route_waiting(b);
    return -1;
}

static void drain_all(struct edge_bus *b, int timeout_ms);

static void on_to_bus(struct sd_loop *loop, int fd, short revents, void *arg)
{
    struct edge_bus *b = arg;
    struct edge_msg *m, *routes[EDGE_ROUTE_BATCH_MAX];
    size_t nroutes = 0;

    (void)fd;
    (void)revents;
    while ((m = edge_queue_take(b->to_bus)) != NULL) {
        /* New calls are routed together, after what came with them: in
         * order with anything that reads or changes registrations or the
         * queue (events and statuses are held and written later anyway). */
        if (m->kind == EDGE_MSG_ROUTE) {
            m->taken_ms = sd_mono_ms();
            routes[nroutes++] = m;
            if (nroutes == EDGE_ROUTE_BATCH_MAX)
                flush_routes(b, routes, &nroutes);
            continue;
        }
        if (m->kind != EDGE_MSG_STATUS && m->kind != EDGE_MSG_EVENT && m->kind != EDGE_MSG_CALL)
            flush_routes(b, routes, &nroutes);
        switch (m->kind) {
        case EDGE_MSG_REGISTER:
            do_register(b, m);
            edge_msg_free(m);
            break;
        case EDGE_MSG_QUEUE:
            do_requeue(b, m);
            edge_msg_free(m);
            break;
        case EDGE_MSG_DEQUEUE:
            do_dequeue(b, m);
            edge_msg_free(m);
            break;
        case EDGE_MSG_STATUS:
        case EDGE_MSG_EVENT:
        case EDGE_MSG_CALL:
            hold(b, m);
            break;
        case EDGE_MSG_STOP: {
            int timeout_ms = (int)m->token;
            edge_msg_free(m);
            b->stopping = true;
            route_waiting(b); /* routed now, or refused: none waits */
            flush_held(b);
            drain_all(b, timeout_ms);
            sd_loop_stop(loop);
            return;
        }
        default:
            edge_msg_free(m);
            break;
        }
    }
    flush_routes(b, routes, &nroutes);
    /* Events are written FLUSH_DELAY_MS later, together with what comes
     * meanwhile (one transaction); a retry already scheduled covers them. */
    if (b->held != NULL && b->retry_timer <= 0)
        b->retry_timer = sd_loop_add_timer(b->loop, FLUSH_DELAY_MS, on_retry, b);
}

/* --- edge.control ----------------------------------------------------- */

/* Who may send an edge each command (issue #15): the CloudEvents source
 * names the sending service, "<service>/<instance>". Kafka's ACLs let only
 * the orchestrator and agent-state write edge.control; this check keeps
 * each to its own commands - agent-state cannot drain or stop an edge, the
 * orchestrator cannot place a call - and catches a command written by hand
 * with the wrong tool. NULL: a type with no rule (unknown types are
 * refused anyway). */
static const char *rightful_source(const char *type)
{
    if (!strcmp(type, "edge.drain") || !strcmp(type, "edge.resume") ||
        !strcmp(type, "edge.shutdown"))
        return "drain-orchestrator/";
    if (!strcmp(type, "call.originate"))
        return "agent-state/";
    return NULL;
}

/* Checks what the SIP thread relies on; the reason text otherwise. */
static const char *check_control(const struct sd_event *ev)
{
    json_t *d = ev->data;
    const char *id = json_string_value(json_object_get(d, "drain_id"));

    if (!strcmp(ev->type, "edge.drain") || !strcmp(ev->type, "edge.resume") ||
        !strcmp(ev->type, "edge.shutdown")) {
        json_t *v;
        if (id == NULL || !sd_uuid_valid(id))
            return "invalid_data: data.drain_id: missing or not a uuid";
        if (strcmp(ev->type, "edge.drain") != 0)
            return NULL;
        v = json_object_get(d, "scope");
        if (!json_is_string(v) || (strcmp(json_string_value(v), "site") != 0 &&
                                   strcmp(json_string_value(v), "edge") != 0))
            return "invalid_data: data.scope: must be site or edge";
        v = json_object_get(d, "reject_code");
        if (v != NULL &&
            (!json_is_integer(v) || json_integer_value(v) < 300 || json_integer_value(v) > 699))
            return "invalid_data: data.reject_code: must be an integer 300-699";
        v = json_object_get(d, "sip_timeout_s");
        if (v != NULL &&
            (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 3600))
            return "invalid_data: data.sip_timeout_s: must be an integer 0-3600";
        v = json_object_get(d, "retry_after_s");
        if (v != NULL &&
            (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 86400))
            return "invalid_data: data.retry_after_s: must be an integer 0-86400";
        v = json_object_get(d, "deadline_at");
        if (v != NULL) {
            int64_t ms;
            if (!json_is_string(v) || sd_time_parse_rfc3339(json_string_value(v), &ms) < 0)
                return "invalid_data: data.deadline_at: not an RFC 3339 time";
        }
        return NULL;
    }
    if (!strcmp(ev->type, "call.originate")) {
        static const char *const need[] = {"agent_id", "dn", "destination", "call_id",
                                           "request_id"};
        for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
            if (!json_is_string(json_object_get(d, need[i])))
                return "invalid_data: call.originate needs agent_id, dn, destination, call_id "
                       "and request_id";
        }
        return NULL;
    }
    return "unknown_type";
}

/* One message of edge.control: ours and valid -> the SIP thread; someone
 * else's -> skipped; bad -> dead letter. The offset is stored either way. */
/* sipdrain.agent.events: a login of a nailed_up agent whose phone is
 * registered here opens the standing dialog (the SIP thread calls the
 * phone); a logout closes it. Malformed agent events are agent-state's
 * business (its consumers would all dead-letter the same record): skipped
 * with a log line. */
static void agent_event_one(struct edge_bus *b, rd_kafka_message_t *m)
{
    struct sd_event ev;
    struct sd_err err = {0};
    const char *agent, *dn, *site;
    bool login;

    if (sd_event_parse(m->payload, m->len, &ev, &err) < 0) {
        sd_log_warn("agent event skipped", "offset=%lld reason=\"%s\"", (long long)m->offset,
                    err.text);
        return;
    }
    login = !strcmp(ev.type, "EventAgentLogin");
    agent = json_string_value(json_object_get(ev.data, "agent_id"));
    dn = json_string_value(json_object_get(ev.data, "dn"));
    site = json_string_value(json_object_get(ev.data, "site"));
    if (ev.time_ms < b->started_ms - CONTROL_STALE_MS || agent == NULL ||
        (!login && strcmp(ev.type, "EventAgentLogout") != 0))
        goto out;
    if (login) {
        char contact[512];
        if (!json_is_true(json_object_get(ev.data, "nailed_up")) || dn == NULL || site == NULL ||
            strcmp(site, b->site) != 0)
            goto out;
        if (edge_db_contact(b->pg, b->edge_id, dn, contact, sizeof(contact), &err) < 0) {
            sd_log_warn("nailed-up login not served: database unavailable",
                        "agent=%s reason=\"%s\"", agent, err.text);
            goto out;
        }
        if (contact[0] == '\0')
            goto out; /* the phone is registered at another edge */
        edge_queue_put(b->to_sip, EDGE_MSG_NAILED, 0,
                       json_pack("{s:s, s:s, s:s, s:s}", "op", "up", "agent_id", agent, "dn", dn,
                                 "contact", contact));
    } else {
        edge_queue_put(b->to_sip, EDGE_MSG_NAILED, 0,
                       json_pack("{s:s, s:s}", "op", "down", "agent_id", agent));
    }
out:
    sd_event_clear(&ev);
}

static void control_one(struct edge_bus *b, rd_kafka_message_t *m)
{
    struct sd_event ev;
    struct sd_err err = {0};
    char reason[SD_ERR_TEXT_MAX];
    const char *why, *want;

    if (m->key == NULL || m->key_len != strlen(b->edge_id) ||
        memcmp(m->key, b->edge_id, m->key_len) != 0)
        goto store;
    if (sd_event_parse(m->payload, m->len, &ev, &err) < 0) {
        snprintf(reason, sizeof(reason), "%s", err.text);
        goto bad;
    }
    why = check_control(&ev);
    if (why != NULL) {
        snprintf(reason, sizeof(reason), "%s%s%s", why, !strcmp(why, "unknown_type") ? ": " : "",
                 !strcmp(why, "unknown_type") ? ev.type : "");
        sd_event_clear(&ev);
        goto bad;
    }
    want = rightful_source(ev.type);
    if (want != NULL && strncmp(ev.source, want, strlen(want)) != 0) {
        snprintf(reason, sizeof(reason), "wrong_source: %s is taken from %s*, not from %s", ev.type,
                 want, ev.source);
        sd_event_clear(&ev);
        goto bad;
    }
    if (ev.time_ms < b->started_ms - CONTROL_STALE_MS) {
        sd_log_info("stale control event skipped", "type=%s event=%s time=%s", ev.type, ev.id,
                    ev.time);
        sd_event_clear(&ev);
        goto store;
    }
    sd_log_info("control event", "type=%s event=%s", ev.type, ev.id);
    if (!strcmp(ev.type, "call.originate")) {
        /* The SIP thread calls the phone where it registered at this edge:
         * "" = not registered here, null = the database is away. */
        char contact[512];
        const char *dn = json_string_value(json_object_get(ev.data, "dn"));
        if (edge_db_contact(b->pg, b->edge_id, dn, contact, sizeof(contact), &err) < 0) {
            sd_log_warn("call.originate: contact not looked up", "dn=%s reason=\"%s\"", dn,
                        err.text);
            json_object_set_new(ev.data, "contact", json_null());
        } else {
            json_object_set_new(ev.data, "contact", json_string(contact));
        }
    }
    edge_queue_put(b->to_sip, EDGE_MSG_CONTROL, 0,
                   json_pack("{s:s, s:s, s:O}", "type", ev.type, "id", ev.id, "data", ev.data));
    sd_event_clear(&ev);
    goto store;
bad:
    if (sd_inbox_deadletter(b->pg, m, b->source, sd_topic(SD_TOPIC_DEADLETTER), reason, &err) < 0)
        /* Without the database the record cannot be kept; the command is
         * unusable anyway, and holding it back would hold back the drain
         * commands behind it. The log keeps it. */
        sd_log_error("bad control event not dead-lettered (database away)",
                     "reason=\"%s\" offset=%lld value=\"%.*s\"", reason, (long long)m->offset,
                     (int)(m->len > 1024 ? 1024 : m->len), (const char *)m->payload);
store:
    if (sd_kafka_consumer_store(b->kc, m, &err) < 0)
        sd_log_info("offset not stored", "reason=\"%s\"", err.text);
}

static void poll_control(struct edge_bus *b)
{
    rd_kafka_message_t *m;

    while ((m = sd_kafka_consumer_poll(b->kc)) != NULL) {
        if (!strcmp(rd_kafka_topic_name(m->rkt), sd_topic(SD_TOPIC_AGENT_EVENTS))) {
            struct sd_err err = {0};
            agent_event_one(b, m);
            if (sd_kafka_consumer_store(b->kc, m, &err) < 0)
                sd_log_info("offset not stored", "reason=\"%s\"", err.text);
        } else {
            control_one(b, m);
        }
        rd_kafka_message_destroy(m);
    }
}

static void on_control(struct sd_loop *loop, int fd, short revents, void *arg)
{
    (void)loop;
    (void)fd;
    (void)revents;
    poll_control(arg);
}

/* For the SIP thread's /metrics, every second: what the bus is behind by. */
static void send_stats(struct edge_bus *b)
{
    struct sd_err err = {0};
    long backlog = -1, queued = -1, oldest_ms = -1;

    if (sd_mono_ms() - b->stats_ms < 1000)
        return;
    b->stats_ms = sd_mono_ms();
    if (sd_outbox_backlog(b->pg, &backlog, &err) < 0)
        backlog = -1;
    if (b->queue_max_wait_s > 0 &&
        edge_db_queue_stats(b->pg, b->site, &queued, &oldest_ms, &err) < 0)
        queued = oldest_ms = -1;
    edge_queue_put(b->to_sip, EDGE_MSG_BUS_STATS, 0,
                   json_pack("{s:I, s:I, s:I, s:I}", "consumer_lag",
                             (json_int_t)sd_kafka_consumer_lag(b->kc), "outbox_backlog",
                             (json_int_t)backlog, "queue_calls", (json_int_t)queued,
                             "queue_oldest_ms", (json_int_t)oldest_ms));
}

static int64_t on_tick(struct sd_loop *loop, void *arg)
{
    struct edge_bus *b = arg;
    struct sd_err err = {0};

    (void)loop;
    if (!b->queue_cleared && queue_clear(b, &err) < 0)
        sd_log_debug("waiting calls of a previous run not removed yet", "reason=\"%s\"", err.text);
    poll_control(arg);
    send_stats(arg);
    return BUS_TICK_MS;
}

/* --- the thread --------------------------------------------------------- */

static void relay_stop(struct edge_bus *b)
{
    if (!b->relay_running)
        return;
    while (edge_queue_put(b->relay_ctl, EDGE_MSG_STOP, 0, NULL) < 0)
        poll(NULL, 0, 10); /* out of memory: the relay must stop before it is driven here */
    pthread_join(b->relay_thread, NULL);
    b->relay_running = false;
}

/* Publishes everything still in the outbox, for up to timeout_ms: the
 * relay's thread stopped first, its relay then driven from here. */
static void drain_all(struct edge_bus *b, int timeout_ms)
{
    relay_stop(b);
    sd_outbox_relay_drain(b->relay, timeout_ms);
}

static void on_relay_ctl(struct sd_loop *loop, int fd, short revents, void *arg)
{
    struct edge_bus *b = arg;
    struct edge_msg *m;

    (void)fd;
    (void)revents;
    while ((m = edge_queue_take(b->relay_ctl)) != NULL) {
        if (m->kind == EDGE_MSG_STOP)
            sd_loop_stop(loop);
        edge_msg_free(m);
    }
}

static void *relay_run(void *arg)
{
    struct edge_bus *b = arg;

    prctl(PR_SET_NAME, "edge-relay");
    sd_loop_run(b->relay_loop);
    return NULL;
}

static void *run(void *arg)
{
    struct edge_bus *b = arg;

    prctl(PR_SET_NAME, "edge-bus"); /* top -H, /proc/PID/task: which thread is busy */
    sd_loop_run(b->loop);
    return NULL;
}

static void bus_free(struct edge_bus *b)
{
    struct edge_msg *m;

    if (b == NULL)
        return;
    while ((m = b->db_waiting) != NULL) { /* only if the thread never ran */
        b->db_waiting = m->next;
        edge_msg_free(m);
    }
    while ((m = b->held) != NULL) {
        b->held = m->next;
        sd_log_warn("event not written at shutdown", "kind=%s", edge_msg_kind_name(m->kind));
        edge_msg_free(m);
    }
    relay_stop(b);
    sd_kafka_consumer_free(b->kc);
    sd_outbox_relay_free(b->relay); /* before its loop: it leaves it */
    sd_loop_free(b->relay_loop);
    edge_queue_free(b->relay_ctl);
    sd_loop_free(b->loop);
    sd_pg_free(b->pg);
    sd_pg_free(b->relay_pg);
    free(b->pg_dsn);
    free(b->brokers);
    free(b->edge_id);
    free(b->site);
    free(b->source);
    free(b->realm);
    free(b);
}

struct edge_bus *edge_bus_start(const struct edge_bus_config *cfg, struct edge_queue *to_bus,
                                struct edge_queue *to_sip, struct sd_err *err)
{
    struct edge_bus *b = calloc(1, sizeof(*b));
    const char *topics[2];
    char group[128];

    if (b == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    b->pg_dsn = strdup(cfg->pg_dsn);
    b->brokers = strdup(cfg->brokers);
    b->edge_id = strdup(cfg->edge_id);
    b->site = strdup(cfg->site);
    b->source = strdup(cfg->source);
    b->realm = strdup(cfg->realm);
    b->max_contacts = cfg->max_contacts;
    b->queue_max_wait_s = cfg->queue_max_wait_s;
    b->queue_max_calls = cfg->queue_max_calls;
    b->route_db_wait_ms = cfg->route_db_wait_s * 1000;
    b->to_bus = to_bus;
    b->to_sip = to_sip;
    b->started_ms = sd_wall_ms();
    b->loop = sd_loop_new();
    b->relay_loop = sd_loop_new();
    b->relay_ctl = edge_queue_new();
    b->pg = sd_pg_new(cfg->pg_dsn, cfg->source);
    b->relay_pg = sd_pg_new(cfg->pg_dsn, cfg->source);
    snprintf(group, sizeof(group), "sip-edge.%s", cfg->edge_id);
    snprintf(b->group, sizeof(b->group), "%s", sd_topic(group));
    topics[0] = sd_topic(SD_TOPIC_EDGE_CONTROL);
    topics[1] = sd_topic(SD_TOPIC_AGENT_EVENTS);
    b->kc = sd_kafka_consumer_new(cfg->brokers, b->group, cfg->source, topics, 2,
                                  SD_KAFKA_FETCH_PROMPT, err);
    if (b->kc == NULL)
        goto fail;
    b->relay = sd_outbox_relay_new(b->relay_pg, cfg->brokers, cfg->source, err);
    if (b->relay == NULL)
        goto fail;
    if (sd_loop_add_fd(b->loop, edge_queue_fd(to_bus), POLLIN, on_to_bus, b) < 0 ||
        sd_loop_add_fd(b->loop, sd_kafka_consumer_fd(b->kc), POLLIN, on_control, b) < 0 ||
        sd_loop_add_timer(b->loop, BUS_TICK_MS, on_tick, b) < 0 ||
        sd_loop_add_timer(b->loop, 0, on_expire, b) < 0 || b->relay_loop == NULL ||
        b->relay_ctl == NULL ||
        sd_loop_add_fd(b->relay_loop, edge_queue_fd(b->relay_ctl), POLLIN, on_relay_ctl, b) < 0 ||
        sd_outbox_relay_attach(b->relay, b->relay_loop) < 0) {
        sd_err_set(err, SD_ERR_INTERNAL, "bus loop set-up failed");
        goto fail;
    }
    if (pthread_create(&b->relay_thread, NULL, relay_run, b) != 0) {
        sd_err_set(err, SD_ERR_INTERNAL, "cannot start the outbox relay thread");
        goto fail;
    }
    b->relay_running = true;
    if (pthread_create(&b->thread, NULL, run, b) != 0) {
        sd_err_set(err, SD_ERR_INTERNAL, "cannot start the bus thread");
        goto fail;
    }
    return b;
fail:
    bus_free(b);
    return NULL;
}

void edge_bus_stop(struct edge_bus *b, int timeout_ms)
{
    if (b == NULL)
        return;
    edge_queue_put(b->to_bus, EDGE_MSG_STOP, (unsigned long)timeout_ms, NULL);
    pthread_join(b->thread, NULL);
    bus_free(b);
}
