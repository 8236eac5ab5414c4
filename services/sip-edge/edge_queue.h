/* edge_queue.h - messages between sip-edge's two threads.
 *
 * The SIP thread (su_root, NUA) never waits on PostgreSQL or Kafka: what
 * needs them goes to the bus thread (sd_loop: database, outbox relay,
 * edge.control consumer) as a message, and answers come back the same way.
 * A queue is a mutex-protected list plus a pipe that becomes readable when
 * the list goes from empty to non-empty; the reader drains both.
 */
#ifndef SIPDRAIN_EDGE_QUEUE_H
#define SIPDRAIN_EDGE_QUEUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

enum edge_msg_kind {
    /* SIP thread -> bus thread */
    EDGE_MSG_REGISTER, /* data: {dn, contact, expires_s}; answered by REGISTER_DONE */
    EDGE_MSG_STATUS,   /* data: the edge.status payload */
    EDGE_MSG_EVENT,    /* data: {topic, key, type, data}: one event through the outbox */
    EDGE_MSG_ROUTE,    /* data: {call_id, dn, route_point, caller, called, queued_at_ms};
                     * answered by ROUTE_DONE, or QUEUED and a ROUTE_DONE later */
    EDGE_MSG_QUEUE,    /* data: {call_id, dn, caller, called, queued_at_ms, offers}: the call
                     * waits again (its agent did not answer); a ROUTE_DONE later */
    EDGE_MSG_DEQUEUE,  /* data: {call_id}: the caller of a waiting call is gone */
    EDGE_MSG_CALL,     /* call (no data): calls row + call.* */
    EDGE_MSG_STOP,     /* finish and end the bus thread */
    /* bus thread -> SIP thread */
    EDGE_MSG_REGISTER_DONE, /* data: {ok, reason} */
    EDGE_MSG_ROUTE_DONE,    /* data: {status, reason, call_id, agent_id, dn, contact} */
    EDGE_MSG_QUEUED,        /* data: {call_id}: no Ready agent, the call waits (issue #16) */
    EDGE_MSG_CONTROL,       /* data: {type, data, id}: an edge.control event for this edge */
    EDGE_MSG_NAILED,        /* data: {op: up|down, agent_id, dn?, contact?}: a nailed-up dialog */
    EDGE_MSG_BUS_STATS,     /* data: {consumer_lag, outbox_backlog, queue_calls, queue_oldest_ms}
                             * (-1: unknown), every second */
    EDGE_MSG_KIND_COUNT
};

/* EDGE_MSG_CALL's body: what the bus thread needs for a call's calls row
 * and its call.* event, copied from the call. A plain struct, not JSON:
 * the SIP thread is the edge's bottleneck, and the event's JSON is built
 * on the bus thread, which writes it anyway (issue #17). */
struct edge_call_msg {
    char call_id[256], agent_id[65], dn[65], caller[257], called[257];
    char state[16];        /* offered (outbound only), established, ended */
    char end_cause[32];    /* ended: why */
    char route_point[257]; /* ended, an inbound route-point call: it; else "" */
    bool outbound, answered;
    long long duration_ms; /* ended: from the answer, 0 if unanswered */
    int sip_status;        /* ended unanswered: the final status (300-699), else 0 */
};

struct edge_msg {
    enum edge_msg_kind kind;
    unsigned long token;        /* pairs an answer with its request */
    json_t *data;               /* owned by whoever holds the message */
    struct edge_call_msg *call; /* EDGE_MSG_CALL: owned likewise (data is NULL) */
    struct edge_msg *next;
    /* EDGE_MSG_ROUTE, the bus thread's: when it first took it, and whether
     * it waits to be tried again (the database was away) */
    int64_t taken_ms;
    bool db_wait, db_waited; /* to be tried again; has waited (said once) */
};

struct edge_queue;

struct edge_queue *edge_queue_new(void);
void edge_queue_free(struct edge_queue *q);
/* Takes ownership of data (also on failure). Returns 0 or -1 (out of memory). */
int edge_queue_put(struct edge_queue *q, enum edge_msg_kind kind, unsigned long token,
                   json_t *data);
/* An EDGE_MSG_CALL with a copy of call. Returns 0 or -1 (out of memory). */
int edge_queue_put_call(struct edge_queue *q, const struct edge_call_msg *call);
/* The oldest message or NULL; free it with edge_msg_free. Drains the pipe
 * when the queue is empty. */
struct edge_msg *edge_queue_take(struct edge_queue *q);
void edge_msg_free(struct edge_msg *m);
/* Readable when messages are waiting. */
int edge_queue_fd(const struct edge_queue *q);
size_t edge_queue_length(struct edge_queue *q);
const char *edge_msg_kind_name(enum edge_msg_kind k);

#endif
