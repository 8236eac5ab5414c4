/* loop.h - the small poll(2) loop of the services that do not run sofia-sip.
 *
 * File descriptors and timers, all callbacks on the loop's thread. Kafka
 * (through its wake-up fds) and PostgreSQL (LISTEN socket) join it the same
 * way they join sip-edge's su_root.
 */
#ifndef SIPDRAIN_LOOP_H
#define SIPDRAIN_LOOP_H

#include <stdint.h>

#include "sipdrain/err.h"

struct sd_loop;

typedef void sd_loop_fd_cb(struct sd_loop *loop, int fd, short revents, void *arg);
/* Return the delay in ms until the next run, or -1 to end the timer. */
typedef int64_t sd_loop_timer_cb(struct sd_loop *loop, void *arg);

struct sd_loop *sd_loop_new(void);
void sd_loop_free(struct sd_loop *loop);

/* events: POLLIN / POLLOUT. One registration per fd. */
int sd_loop_add_fd(struct sd_loop *loop, int fd, short events, sd_loop_fd_cb *cb,
                   void *arg) SD_MUST_CHECK;
void sd_loop_del_fd(struct sd_loop *loop, int fd);

/* Runs cb after delay_ms (0 = at the next turn); returns a timer id > 0. */
int sd_loop_add_timer(struct sd_loop *loop, int64_t delay_ms, sd_loop_timer_cb *cb,
                      void *arg) SD_MUST_CHECK;
void sd_loop_del_timer(struct sd_loop *loop, int id);

/* SIGINT/SIGTERM set a flag the loop turns into a call of cb (count = how
 * many signals so far), on the loop's thread. */
typedef void sd_loop_signal_cb(struct sd_loop *loop, int signo, int count, void *arg);
int sd_loop_watch_signals(struct sd_loop *loop, sd_loop_signal_cb *cb, void *arg) SD_MUST_CHECK;

/* Runs until sd_loop_stop(); returns 0. */
int sd_loop_run(struct sd_loop *loop);
/* One turn: waits at most max_wait_ms (-1 = until something happens). */
int sd_loop_run_once(struct sd_loop *loop, int max_wait_ms);
void sd_loop_stop(struct sd_loop *loop);

#endif
