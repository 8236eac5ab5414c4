/* loop.c - a small poll(2) loop (see sipdrain/loop.h).
 *
 * Linear arrays on purpose: a service has a handful of fds (Kafka wake-up
 * pipes, a PostgreSQL LISTEN socket, the signal pipe) and timers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sipdrain/event.h"
#include "sipdrain/loop.h"

#define LOOP_MAX_FDS    32
#define LOOP_MAX_TIMERS 64

struct loop_fd {
    int fd;
    short events;
    sd_loop_fd_cb *cb;
    void *arg;
};

struct loop_timer {
    int id; /* 0 = free slot */
    int64_t due_ms;
    sd_loop_timer_cb *cb;
    void *arg;
};

struct sd_loop {
    struct loop_fd fds[LOOP_MAX_FDS];
    int nfds;
    struct loop_timer timers[LOOP_MAX_TIMERS];
    int next_timer_id;
    int stop;
    sd_loop_signal_cb *sig_cb;
    void *sig_arg;
    int sig_count;
};

static int signal_pipe[2] = {-1, -1};

static void on_signal(int signo)
{
    unsigned char b = (unsigned char)signo;
    int saved = errno;

    if (write(signal_pipe[1], &b, 1) < 0) {
        /* pipe full: enough signals are pending already */
    }
    errno = saved;
}

struct sd_loop *sd_loop_new(void)
{
    struct sd_loop *loop = calloc(1, sizeof(*loop));

    if (loop != NULL)
        loop->next_timer_id = 1;
    return loop;
}

void sd_loop_free(struct sd_loop *loop)
{
    free(loop);
}

int sd_loop_add_fd(struct sd_loop *loop, int fd, short events, sd_loop_fd_cb *cb, void *arg)
{
    for (int i = 0; i < loop->nfds; i++) {
        if (loop->fds[i].fd == fd) {
            loop->fds[i] = (struct loop_fd){fd, events, cb, arg};
            return 0;
        }
    }
    if (loop->nfds == LOOP_MAX_FDS)
        return -1;
    loop->fds[loop->nfds++] = (struct loop_fd){fd, events, cb, arg};
    return 0;
}

void sd_loop_del_fd(struct sd_loop *loop, int fd)
{
    for (int i = 0; i < loop->nfds; i++) {
        if (loop->fds[i].fd == fd) {
            loop->fds[i] = loop->fds[--loop->nfds];
            return;
        }
    }
}

int sd_loop_add_timer(struct sd_loop *loop, int64_t delay_ms, sd_loop_timer_cb *cb, void *arg)
{
    for (int i = 0; i < LOOP_MAX_TIMERS; i++) {
        if (loop->timers[i].id == 0) {
            int id = loop->next_timer_id++;
            loop->timers[i] = (struct loop_timer){id, sd_mono_ms() + delay_ms, cb, arg};
            return id;
        }
    }
    return -1;
}

void sd_loop_del_timer(struct sd_loop *loop, int id)
{
    for (int i = 0; i < LOOP_MAX_TIMERS; i++) {
        if (loop->timers[i].id == id && id != 0)
            loop->timers[i].id = 0;
    }
}

static void on_signal_pipe(struct sd_loop *loop, int fd, short revents, void *arg)
{
    unsigned char b[16];
    ssize_t n;

    (void)revents;
    (void)arg;
    while ((n = read(fd, b, sizeof(b))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            loop->sig_count++;
            if (loop->sig_cb != NULL)
                loop->sig_cb(loop, b[i], loop->sig_count, loop->sig_arg);
        }
    }
}

int sd_loop_watch_signals(struct sd_loop *loop, sd_loop_signal_cb *cb, void *arg)
{
    struct sigaction sa;

    if (signal_pipe[0] < 0) {
        if (pipe(signal_pipe) < 0)
            return -1;
        for (int i = 0; i < 2; i++) {
            fcntl(signal_pipe[i], F_SETFL, O_NONBLOCK);
            fcntl(signal_pipe[i], F_SETFD, FD_CLOEXEC);
        }
    }
    loop->sig_cb = cb;
    loop->sig_arg = arg;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return sd_loop_add_fd(loop, signal_pipe[0], POLLIN, on_signal_pipe, NULL);
}

/* Runs due timers; returns ms until the next one (or -1 if none). */
static int64_t run_timers(struct sd_loop *loop)
{
    int64_t now = sd_mono_ms(), next = -1;

    for (int i = 0; i < LOOP_MAX_TIMERS; i++) {
        struct loop_timer *t = &loop->timers[i];
        int id = t->id;
        if (id == 0)
            continue;
        if (t->due_ms <= now) {
            int64_t again = t->cb(loop, t->arg);
            /* The callback may have deleted or replaced this slot. */
            if (t->id != id)
                continue;
            if (again < 0) {
                t->id = 0;
                continue;
            }
            t->due_ms = sd_mono_ms() + again;
        }
        if (next < 0 || t->due_ms - now < next)
            next = t->due_ms - now;
    }
    return next < 0 ? -1 : next;
}

int sd_loop_run_once(struct sd_loop *loop, int max_wait_ms)
{
    struct pollfd pfds[LOOP_MAX_FDS];
    struct loop_fd copy[LOOP_MAX_FDS];
    int64_t next = run_timers(loop);
    int wait = max_wait_ms, n, nfds;

    if (next >= 0 && (wait < 0 || next < wait))
        wait = (int)next;
    nfds = loop->nfds;
    memcpy(copy, loop->fds, sizeof(copy[0]) * (size_t)nfds);
    for (int i = 0; i < nfds; i++)
        pfds[i] = (struct pollfd){.fd = copy[i].fd, .events = copy[i].events};
    n = poll(pfds, (nfds_t)nfds, wait);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < nfds && n > 0; i++) {
        if (pfds[i].revents == 0)
            continue;
        n--;
        /* Skip an fd a previous callback of this turn removed. */
        for (int j = 0; j < loop->nfds; j++) {
            if (loop->fds[j].fd == copy[i].fd && loop->fds[j].cb == copy[i].cb) {
                copy[i].cb(loop, copy[i].fd, pfds[i].revents, copy[i].arg);
                break;
            }
        }
    }
    run_timers(loop);
    return 0;
}

int sd_loop_run(struct sd_loop *loop)
{
    loop->stop = 0;
    while (!loop->stop) {
        if (sd_loop_run_once(loop, -1) < 0)
            return -1;
    }
    return 0;
}

void sd_loop_stop(struct sd_loop *loop)
{
    loop->stop = 1;
}
