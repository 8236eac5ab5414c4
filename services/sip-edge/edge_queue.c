/* edge_queue.c - see edge_queue.h. */
#include "edge_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct edge_queue {
    pthread_mutex_t lock;
    struct edge_msg *head, *tail;
    size_t length;
    int pipe[2];
};

static const char *const kind_names[EDGE_MSG_KIND_COUNT] = {
    [EDGE_MSG_REGISTER] = "register",
    [EDGE_MSG_STATUS] = "status",
    [EDGE_MSG_EVENT] = "event",
    [EDGE_MSG_ROUTE] = "route",
    [EDGE_MSG_QUEUE] = "queue",
    [EDGE_MSG_DEQUEUE] = "dequeue",
    [EDGE_MSG_CALL] = "call",
    [EDGE_MSG_STOP] = "stop",
    [EDGE_MSG_REGISTER_DONE] = "register_done",
    [EDGE_MSG_ROUTE_DONE] = "route_done",
    [EDGE_MSG_QUEUED] = "queued",
    [EDGE_MSG_CONTROL] = "control",
    [EDGE_MSG_NAILED] = "nailed",
    [EDGE_MSG_BUS_STATS] = "bus_stats",
};

const char *edge_msg_kind_name(enum edge_msg_kind k)
{
    return (unsigned)k < EDGE_MSG_KIND_COUNT ? kind_names[k] : "?";
}

struct edge_queue *edge_queue_new(void)
{
    struct edge_queue *q = calloc(1, sizeof(*q));

    if (q == NULL)
        return NULL;
    if (pipe(q->pipe) < 0) {
        free(q);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(q->pipe[i], F_SETFL, fcntl(q->pipe[i], F_GETFL) | O_NONBLOCK);
        fcntl(q->pipe[i], F_SETFD, FD_CLOEXEC);
    }
    pthread_mutex_init(&q->lock, NULL);
    return q;
}

void edge_msg_free(struct edge_msg *m)
{
    if (m == NULL)
        return;
    json_decref(m->data);
    free(m->call);
    free(m);
}

void edge_queue_free(struct edge_queue *q)
{
    struct edge_msg *m;

    if (q == NULL)
        return;
    while ((m = q->head) != NULL) {
        q->head = m->next;
        edge_msg_free(m);
    }
    close(q->pipe[0]);
    close(q->pipe[1]);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static void put(struct edge_queue *q, struct edge_msg *m)
{
    int was_empty;

    pthread_mutex_lock(&q->lock);
    was_empty = q->head == NULL;
    if (q->tail != NULL)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->length++;
    pthread_mutex_unlock(&q->lock);
    if (was_empty) {
        ssize_t w;
        do
            w = write(q->pipe[1], "x", 1);
        while (w < 0 && errno == EINTR);
        /* EAGAIN: the pipe is full of wake-ups already, which is enough. */
    }
}

int edge_queue_put(struct edge_queue *q, enum edge_msg_kind kind, unsigned long token, json_t *data)
{
    struct edge_msg *m = calloc(1, sizeof(*m));

    if (m == NULL) {
        json_decref(data);
        return -1;
    }
    m->kind = kind;
    m->token = token;
    m->data = data;
    put(q, m);
    return 0;
}

int edge_queue_put_call(struct edge_queue *q, const struct edge_call_msg *call)
{
    struct edge_msg *m = calloc(1, sizeof(*m));

    if (m == NULL || (m->call = malloc(sizeof(*m->call))) == NULL) {
        free(m);
        return -1;
    }
    *m->call = *call;
    m->kind = EDGE_MSG_CALL;
    put(q, m);
    return 0;
}

struct edge_msg *edge_queue_take(struct edge_queue *q)
{
    struct edge_msg *m;

    pthread_mutex_lock(&q->lock);
    m = q->head;
    if (m != NULL) {
        q->head = m->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->length--;
        m->next = NULL;
    } else {
        /* Empty: swallow the wake-ups, under the lock, so a put that
         * follows writes a fresh one. */
        char buf[64];
        while (read(q->pipe[0], buf, sizeof(buf)) > 0)
            ;
    }
    pthread_mutex_unlock(&q->lock);
    return m;
}

int edge_queue_fd(const struct edge_queue *q)
{
    return q->pipe[0];
}

size_t edge_queue_length(struct edge_queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->lock);
    n = q->length;
    pthread_mutex_unlock(&q->lock);
    return n;
}
