/* loop: timers fire in order, fds dispatch, signals arrive on the loop. */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include "sipdrain/event.h"
#include "sipdrain/loop.h"

struct counter {
    int fired;
    int64_t at[8];
    int repeat;
};

static int64_t count_timer(struct sd_loop *loop, void *arg)
{
    struct counter *c = arg;

    (void)loop;
    c->at[c->fired++ & 7] = sd_mono_ms();
    return c->fired < c->repeat ? 10 : -1;
}

static int64_t stop_timer(struct sd_loop *loop, void *arg)
{
    (void)arg;
    sd_loop_stop(loop);
    return -1;
}

Test(loop, timer_repeats_until_it_returns_minus_one)
{
    struct sd_loop *loop = sd_loop_new();
    struct counter c = {.repeat = 3};

    cr_assert(sd_loop_add_timer(loop, 5, count_timer, &c) > 0);
    cr_assert(sd_loop_add_timer(loop, 200, stop_timer, NULL) > 0);
    cr_assert_eq(sd_loop_run(loop), 0);
    cr_expect_eq(c.fired, 3);
    cr_expect_geq(c.at[1] - c.at[0], 9, "period respected");
    sd_loop_free(loop);
}

Test(loop, deleted_timer_never_fires)
{
    struct sd_loop *loop = sd_loop_new();
    struct counter c = {.repeat = 1};
    int id = sd_loop_add_timer(loop, 5, count_timer, &c);

    cr_assert(id > 0);
    sd_loop_del_timer(loop, id);
    cr_assert(sd_loop_add_timer(loop, 50, stop_timer, NULL) > 0);
    sd_loop_run(loop);
    cr_expect_eq(c.fired, 0);
    sd_loop_free(loop);
}

static void on_fd(struct sd_loop *loop, int fd, short revents, void *arg)
{
    char b;

    cr_expect(revents & POLLIN);
    cr_expect_eq(read(fd, &b, 1), 1);
    *(char *)arg = b;
    sd_loop_stop(loop);
}

Test(loop, readable_fd_calls_its_callback)
{
    struct sd_loop *loop = sd_loop_new();
    int fds[2];
    char got = 0;

    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(sd_loop_add_fd(loop, fds[0], POLLIN, on_fd, &got), 0);
    cr_assert_eq(write(fds[1], "x", 1), 1);
    sd_loop_run(loop);
    cr_expect_eq(got, 'x');
    sd_loop_free(loop);
}

static void on_sig(struct sd_loop *loop, int signo, int count, void *arg)
{
    int *seen = arg;

    seen[0] = signo;
    seen[1] = count;
    sd_loop_stop(loop);
}

Test(loop, sigterm_is_delivered_on_the_loop_with_a_count)
{
    struct sd_loop *loop = sd_loop_new();
    int seen[2] = {0, 0};

    cr_assert_eq(sd_loop_watch_signals(loop, on_sig, seen), 0);
    kill(getpid(), SIGTERM);
    sd_loop_run(loop);
    cr_expect_eq(seen[0], SIGTERM);
    cr_expect_eq(seen[1], 1);
    sd_loop_free(loop);
}
