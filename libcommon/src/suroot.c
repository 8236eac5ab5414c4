/* suroot.c - fd + timer watches in sofia-sip's su_root (see sipdrain/suroot.h). */
#include <stdlib.h>

#include "sipdrain/suroot.h"

struct sd_suroot_watch {
    su_root_t *root;
    su_wait_t wait;
    int index; /* from su_root_register, for su_root_deregister */
    su_timer_t *timer;
    sd_suroot_cb *cb;
    void *arg;
};

static int on_readable(su_root_magic_t *magic, su_wait_t *wait, su_wakeup_arg_t *arg)
{
    struct sd_suroot_watch *w = (struct sd_suroot_watch *)arg;

    (void)magic;
    (void)wait;
    w->cb(w->arg);
    return 0;
}

static void on_tick(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
    struct sd_suroot_watch *w = (struct sd_suroot_watch *)arg;

    (void)magic;
    (void)t;
    w->cb(w->arg);
}

struct sd_suroot_watch *sd_suroot_watch_new(su_root_t *root, int fd, int tick_ms, sd_suroot_cb *cb,
                                            void *arg)
{
    struct sd_suroot_watch *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->root = root;
    w->cb = cb;
    w->arg = arg;
    w->index = -1;
    if (su_wait_create(&w->wait, fd, SU_WAIT_IN) < 0)
        goto fail;
    w->index = su_root_register(root, &w->wait, on_readable, (su_wakeup_arg_t *)w, su_pri_normal);
    if (w->index < 0)
        goto fail;
    w->timer = su_timer_create(su_root_task(root), tick_ms);
    if (w->timer == NULL ||
        su_timer_set_interval(w->timer, on_tick, (su_timer_arg_t *)w, tick_ms) < 0)
        goto fail;
    return w;
fail:
    sd_suroot_watch_free(w);
    return NULL;
}

void sd_suroot_watch_free(struct sd_suroot_watch *w)
{
    if (w == NULL)
        return;
    if (w->timer != NULL)
        su_timer_destroy(w->timer);
    if (w->index >= 0)
        su_root_deregister(w->root, w->index);
    else
        su_wait_destroy(&w->wait);
    free(w);
}
