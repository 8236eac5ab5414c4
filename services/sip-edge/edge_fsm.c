/* edge_fsm.c - see edge_fsm.h. Standard headers only. */
#include "edge_fsm.h"

#include <string.h>

static const char *const state_names[EDGE_STATE_COUNT] = {"active",  "draining", "bye_wait",
                                                          "drained", "stopping", "stopped"};
static const char *const input_names[EDGE_IN_COUNT] = {
    "edge.drain", "edge.resume", "edge.shutdown", "SIGTERM", "load", "tick", "shutdown_done"};
static const char *const action_names[EDGE_ACTION_COUNT] = {
    "end_nailed_up", "cut_calls", "retransmit_byes_stop", "shutdown", "exit", "emit_status"};

const char *edge_state_name(enum edge_state s)
{
    return (unsigned)s < EDGE_STATE_COUNT ? state_names[s] : "?";
}

const char *edge_input_name(enum edge_input_kind k)
{
    return (unsigned)k < EDGE_IN_COUNT ? input_names[k] : "?";
}

const char *edge_action_name(enum edge_action_kind k)
{
    return (unsigned)k < EDGE_ACTION_COUNT ? action_names[k] : "?";
}

/* No drain: every option "not given" (the edge's own values apply). */
static void clear_drain(struct edge_drain *d)
{
    memset(d, 0, sizeof(*d));
    d->reject_code = d->sip_timeout_s = d->retry_after_s = -1;
}

void edge_fsm_init(struct edge_fsm *st, const struct edge_config *cfg)
{
    memset(st, 0, sizeof(*st));
    st->state = EDGE_ACTIVE;
    st->cfg = *cfg;
    clear_drain(&st->drain);
}

void edge_fsm_init_held(struct edge_fsm *st, const struct edge_config *cfg,
                        const struct edge_drain *hold)
{
    edge_fsm_init(st, cfg);
    st->state = EDGE_DRAINED;
    st->drain = *hold;
    st->drain.deadline_ms = 0; /* no call to cut: the deadline was the drain's business */
    st->held = true;
}

static void act(struct edge_actions *out, enum edge_action_kind k)
{
    for (size_t i = 0; i < out->n; i++) {
        if (out->a[i] == k)
            return; /* each action once per step */
    }
    if (out->n < EDGE_MAX_ACTIONS)
        out->a[out->n++] = k;
}

static bool draining_like(enum edge_state s)
{
    return s == EDGE_DRAINING || s == EDGE_BYE_WAIT || s == EDGE_DRAINED;
}

static int value_or(int v, int def)
{
    return v >= 0 ? v : def;
}

/* Moves to s; every change is reported in edge.status. */
static int go(struct edge_fsm *st, enum edge_state s, struct edge_actions *out)
{
    if (st->state == s)
        return 0;
    st->state = s;
    act(out, EDGE_DO_EMIT_STATUS);
    if (out->n_passed < EDGE_STATE_COUNT)
        out->passed[out->n_passed++] = s;
    return 1;
}

static int stop_now(struct edge_fsm *st, struct edge_actions *out)
{
    if (st->state == EDGE_STOPPING || st->state == EDGE_STOPPED) {
        out->note = "already stopping";
        return 0;
    }
    act(out, EDGE_DO_CUT_CALLS);
    act(out, EDGE_DO_RETRANSMIT_BYES_STOP);
    act(out, EDGE_DO_SHUTDOWN);
    return go(st, EDGE_STOPPING, out);
}

/* The end of the BYE wait: a site drain waits for edge.shutdown, an edge
 * drain or SIGTERM's own stops by itself. */
static int bye_wait_over(struct edge_fsm *st, struct edge_actions *out)
{
    act(out, EDGE_DO_RETRANSMIT_BYES_STOP);
    st->bye_until_ms = 0;
    if (st->drain.site_scope && !st->self_stop)
        return go(st, EDGE_DRAINED, out);
    act(out, EDGE_DO_SHUTDOWN);
    return go(st, EDGE_STOPPING, out);
}

/* Moves a drain forward as far as the load allows. */
static int advance(struct edge_fsm *st, const struct edge_input *in, struct edge_actions *out)
{
    int changed = 0;

    if (st->state == EDGE_DRAINING && in->load.active_calls == 0 &&
        in->load.nailed_up_dialogs == 0) {
        int timeout = value_or(st->drain.sip_timeout_s, st->cfg.sip_timeout_s);
        st->bye_until_ms = in->now_ms + (int64_t)timeout * 1000;
        changed = go(st, EDGE_BYE_WAIT, out);
    }
    if (st->state == EDGE_BYE_WAIT &&
        (in->load.pending_byes == 0 || in->now_ms >= st->bye_until_ms))
        changed |= bye_wait_over(st, out);
    return changed;
}

static int on_drain(struct edge_fsm *st, const struct edge_input *in, struct edge_actions *out)
{
    if (st->state == EDGE_STOPPING || st->state == EDGE_STOPPED) {
        out->note = "already stopping";
        return 0;
    }
    if (draining_like(st->state)) {
        if (strcmp(st->drain.drain_id, in->drain.drain_id) == 0) {
            out->note = "repeated edge.drain ignored";
            return 0;
        }
        /* Another drain takes over (e.g. a site drain after an edge drain):
         * its id and options from now on; the state goes on. */
        st->drain = in->drain;
        act(out, EDGE_DO_EMIT_STATUS);
        advance(st, in, out);
        return 1;
    }
    st->drain = in->drain;
    st->deadline_passed = false;
    act(out, EDGE_DO_END_NAILED_UP);
    go(st, EDGE_DRAINING, out);
    advance(st, in, out);
    return 1;
}

static int on_resume(struct edge_fsm *st, const struct edge_input *in, struct edge_actions *out)
{
    if (!draining_like(st->state)) {
        out->note = st->state == EDGE_ACTIVE ? "not draining" : "already stopping";
        return 0;
    }
    if (st->self_stop || strcmp(st->drain.drain_id, in->drain.drain_id) != 0) {
        out->note = "edge.resume of another drain ignored";
        return 0;
    }
    act(out, EDGE_DO_RETRANSMIT_BYES_STOP);
    clear_drain(&st->drain);
    st->bye_until_ms = 0;
    st->deadline_passed = false;
    st->held = false;
    return go(st, EDGE_ACTIVE, out);
}

static int on_shutdown(struct edge_fsm *st, const struct edge_input *in, struct edge_actions *out)
{
    if (in->force)
        return stop_now(st, out);
    if (st->state != EDGE_DRAINED) {
        out->note = "edge.shutdown before the drain is over ignored";
        return 0;
    }
    if (strcmp(st->drain.drain_id, in->drain.drain_id) != 0) {
        out->note = "edge.shutdown of another drain ignored";
        return 0;
    }
    act(out, EDGE_DO_SHUTDOWN);
    return go(st, EDGE_STOPPING, out);
}

static int on_sigterm(struct edge_fsm *st, const struct edge_input *in, struct edge_actions *out)
{
    st->sigterms++;
    if (st->state == EDGE_STOPPING || st->state == EDGE_STOPPED) {
        out->note = "already stopping";
        return 0;
    }
    if (st->sigterms > 1)
        return stop_now(st, out);
    st->self_stop = true;
    if (st->state == EDGE_DRAINED)
        return bye_wait_over(st, out); /* only edge.shutdown was awaited */
    if (st->state != EDGE_ACTIVE)
        return 0; /* the drain goes on and ends in a stop */
    clear_drain(&st->drain);
    act(out, EDGE_DO_END_NAILED_UP);
    go(st, EDGE_DRAINING, out);
    advance(st, in, out);
    return 1;
}

static int on_tick(struct edge_fsm *st, const struct edge_input *in, struct edge_actions *out)
{
    int changed = 0;

    if (draining_like(st->state) && st->drain.deadline_ms > 0 && !st->deadline_passed &&
        in->now_ms >= st->drain.deadline_ms) {
        st->deadline_passed = true;
        act(out, EDGE_DO_CUT_CALLS);
        act(out, EDGE_DO_EMIT_STATUS);
        changed = 1;
    }
    return advance(st, in, out) | changed;
}

int edge_fsm_step(struct edge_fsm *st, const struct edge_input *in, struct edge_actions *out)
{
    out->n = 0;
    out->n_passed = 0;
    out->note = NULL;
    switch (in->kind) {
    case EDGE_IN_DRAIN:
        return on_drain(st, in, out);
    case EDGE_IN_RESUME:
        return on_resume(st, in, out);
    case EDGE_IN_SHUTDOWN:
        return on_shutdown(st, in, out);
    case EDGE_IN_SIGTERM:
        return on_sigterm(st, in, out);
    case EDGE_IN_LOAD:
    case EDGE_IN_TICK:
        return on_tick(st, in, out);
    case EDGE_IN_SHUTDOWN_DONE:
        if (st->state != EDGE_STOPPING) {
            out->note = "shutdown done while not stopping";
            return 0;
        }
        act(out, EDGE_DO_EXIT);
        return go(st, EDGE_STOPPED, out);
    default:
        out->note = "unknown input";
        return 0;
    }
}

int64_t edge_fsm_due(const struct edge_fsm *st)
{
    int64_t due = 0;

    if (st->state == EDGE_BYE_WAIT)
        due = st->bye_until_ms;
    if (draining_like(st->state) && st->drain.deadline_ms > 0 && !st->deadline_passed &&
        (due == 0 || st->drain.deadline_ms < due))
        due = st->drain.deadline_ms;
    return due;
}

bool edge_fsm_retransmitting(const struct edge_fsm *st)
{
    return st->state == EDGE_BYE_WAIT;
}

struct edge_verdict edge_fsm_invite(const struct edge_fsm *st)
{
    struct edge_verdict v = {EDGE_ACCEPT, 0, 0};
    int code;

    if (st->state == EDGE_ACTIVE)
        return v;
    code = value_or(st->drain.reject_code, st->cfg.reject_code);
    v.retry_after_s = value_or(st->drain.retry_after_s, st->cfg.retry_after_s);
    if (code >= 300 && code <= 302) {
        v.kind = EDGE_REDIRECT;
        v.status = 302;
    } else {
        v.kind = EDGE_REJECT;
        v.status = code;
    }
    return v;
}

struct edge_verdict edge_fsm_options(const struct edge_fsm *st)
{
    struct edge_verdict v = {EDGE_ACCEPT, 200, 0};

    if (st->state != EDGE_ACTIVE) {
        v.kind = EDGE_REJECT;
        v.status = 503;
        v.retry_after_s = value_or(st->drain.retry_after_s, st->cfg.retry_after_s);
    }
    return v;
}

struct edge_verdict edge_fsm_register(const struct edge_fsm *st)
{
    return edge_fsm_options(st);
}
