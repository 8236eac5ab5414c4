/* drain_fsm.c - see drain_fsm.h. */
#include "drain_fsm.h"

#include <stdio.h>
#include <string.h>

static const char *const PHASE_NAMES[DRAIN_PHASE_COUNT] = {"refusing",  "wait_calls", "wait_agents",
                                                           "wait_byes", "stopping",   "forcing",
                                                           "completed", "cancelled"};

static const char *const EDGE_STATE_NAMES[DRAIN_EDGE_STATE_COUNT] = {
    "active", "draining", "bye_wait", "drained", "stopping", "stopped"};

static const char *const VERDICT_NAMES[DRAIN_AGENT_VERDICT_COUNT] = {"done", "logout", "wait_call",
                                                                     "wait_acw", "wait_logout"};

const char *drain_phase_name(enum drain_phase p)
{
    return (unsigned)p < DRAIN_PHASE_COUNT ? PHASE_NAMES[p] : "?";
}

int drain_phase_parse(const char *name, enum drain_phase *out)
{
    for (int i = 0; name != NULL && i < DRAIN_PHASE_COUNT; i++) {
        if (!strcmp(name, PHASE_NAMES[i])) {
            *out = (enum drain_phase)i;
            return 0;
        }
    }
    return -1;
}

const char *drain_edge_state_name(enum drain_edge_state s)
{
    return (unsigned)s < DRAIN_EDGE_STATE_COUNT ? EDGE_STATE_NAMES[s] : "?";
}

int drain_edge_state_parse(const char *name, enum drain_edge_state *out)
{
    for (int i = 0; name != NULL && i < DRAIN_EDGE_STATE_COUNT; i++) {
        if (!strcmp(name, EDGE_STATE_NAMES[i])) {
            *out = (enum drain_edge_state)i;
            return 0;
        }
    }
    return -1;
}

const char *drain_agent_verdict_name(enum drain_agent_verdict v)
{
    return (unsigned)v < DRAIN_AGENT_VERDICT_COUNT ? VERDICT_NAMES[v] : "?";
}

enum drain_agent_verdict drain_agent_rule(const struct drain_agent_view *a, bool forcing,
                                          int64_t now_ms)
{
    if (a->state == DRAIN_AGENT_LOGGED_OUT)
        return DRAIN_AGENT_DONE;
    if (a->on_call)
        return DRAIN_AGENT_WAIT_CALL; /* agent-state refuses a logout on a call anyway */
    if (a->state == DRAIN_AGENT_ACW && a->acw_timed && !forcing)
        return DRAIN_AGENT_WAIT_ACW;
    if (a->logout_sent_ms > 0 && now_ms - a->logout_sent_ms < DRAIN_LOGOUT_RETRY_MS)
        return DRAIN_AGENT_WAIT_LOGOUT;
    return DRAIN_AGENT_LOGOUT;
}

bool drain_edge_live(const struct drain_edge_view *e, int64_t now_ms)
{
    return now_ms - e->heartbeat_ms < DRAIN_EDGE_GONE_MS;
}

bool drain_edge_stopped(const struct drain_edge_view *e)
{
    return e->state == DRAIN_EDGE_STOPPED || e->held;
}

void drain_fsm_init(struct drain *d, const char *id, enum drain_scope scope, const char *site,
                    const char *edge, int64_t started_ms, int64_t deadline_ms)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    d->scope = scope;
    snprintf(d->site, sizeof(d->site), "%s", site);
    snprintf(d->edge, sizeof(d->edge), "%s", edge != NULL ? edge : "");
    d->phase = DRAIN_REFUSING;
    d->started_ms = started_ms;
    d->phase_since_ms = started_ms;
    d->deadline_ms = deadline_ms;
}

static void act(struct drain_actions *out, enum drain_action_kind kind, size_t arg)
{
    if (out->n < DRAIN_ACTIONS_MAX)
        out->a[out->n++] = (struct drain_action){kind, arg};
}

/* What this drain remembers of what it sent an edge (a slot per edge id). */
static int64_t *sent_slot(struct drain *d, const char *edge, bool shutdown)
{
    size_t i;

    for (i = 0; i < d->n_sent; i++) {
        if (!strcmp(d->sent[i].id, edge))
            break;
    }
    if (i == d->n_sent) {
        if (d->n_sent == DRAIN_EDGES_MAX)
            return NULL;
        memset(&d->sent[i], 0, sizeof(d->sent[i]));
        snprintf(d->sent[i].id, sizeof(d->sent[i].id), "%s", edge);
        d->n_sent++;
    }
    return shutdown ? &d->sent[i].shutdown_sent_ms : &d->sent[i].drain_sent_ms;
}

/* kind to edge i, unless it was sent less than DRAIN_RESEND_MS ago. */
static void to_edge(struct drain *d, const struct drain_view *v, size_t i,
                    enum drain_action_kind kind, struct drain_actions *out)
{
    int64_t *at = sent_slot(d, v->edges[i].id, kind == DRAIN_DO_EDGE_SHUTDOWN);

    if (at == NULL || (*at > 0 && v->now_ms - *at < DRAIN_RESEND_MS))
        return;
    *at = v->now_ms;
    act(out, kind, i);
}

static void go(struct drain *d, enum drain_phase to, int64_t now_ms, struct drain_actions *out)
{
    if (d->phase == to)
        return;
    d->phase_ms[d->phase] += now_ms - d->phase_since_ms;
    d->phase = to;
    d->phase_since_ms = now_ms;
    act(out, DRAIN_DO_SAVE, 0);
}

void drain_fsm_counts(const struct drain *d, const struct drain_view *v, struct drain_counts *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < v->n_edges; i++) {
        const struct drain_edge_view *e = &v->edges[i];
        bool live = drain_edge_live(e, v->now_ms);
        c->edges_total++;
        c->calls_cut += e->calls_cut;
        c->byes_retransmitted += e->byes_retransmitted;
        if (drain_edge_stopped(e)) {
            c->edges_stopped++;
            continue;
        }
        if (!live)
            continue;
        c->edges_live++;
        c->edges_not_stopped++;
        c->calls_left += e->active_calls;
        c->calls_queued += e->queued;
        c->byes_pending += e->pending_byes;
        c->nailed_up_left += e->nailed_up;
    }
    if (d->scope != DRAIN_SCOPE_SITE)
        return;
    for (size_t i = 0; i < v->n_agents; i++) {
        const struct drain_agent_view *a = &v->agents[i];
        if (a->state == DRAIN_AGENT_LOGGED_OUT) {
            if (a->logout_sent_ms > 0) {
                c->agents_logged_out++;
                c->agents_migrated += a->workspace;
            }
            continue;
        }
        c->agents_logged_in++;
        c->agents_in_acw += a->state == DRAIN_AGENT_ACW;
        c->agents_on_call += a->on_call;
    }
}

/* The totals (see struct drain): taken at the first step, raised to what
 * a later step sees when that is more. */
static void raise_totals(struct drain *d, const struct drain_counts *c)
{
    if (!d->counted || c->calls_left > d->calls_at_start)
        d->calls_at_start = c->calls_left;
    if (!d->counted || c->agents_logged_in > d->agents_at_start)
        d->agents_at_start = c->agents_logged_in;
    d->counted = true;
}

static uint64_t counts_hash(const struct drain_counts *c, enum drain_phase p)
{
    const uint32_t f[] = {c->edges_total,   c->edges_not_stopped, c->calls_left,
                          c->byes_pending,  c->nailed_up_left,    c->agents_logged_in,
                          c->agents_in_acw, c->agents_on_call,    c->calls_queued,
                          (uint32_t)p};
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        h ^= f[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Every live edge of the scope reports at least `least`. */
static bool edges_at_least(const struct drain_view *v, enum drain_edge_state least)
{
    for (size_t i = 0; i < v->n_edges; i++) {
        const struct drain_edge_view *e = &v->edges[i];
        if (drain_edge_live(e, v->now_ms) && !drain_edge_stopped(e) && e->state < least)
            return false;
    }
    return true;
}

static void logouts(struct drain *d, const struct drain_view *v, struct drain_actions *out)
{
    bool forcing = d->phase == DRAIN_FORCING;

    for (size_t i = 0; i < v->n_agents; i++) {
        if (drain_agent_rule(&v->agents[i], forcing, v->now_ms) != DRAIN_AGENT_LOGOUT)
            continue;
        if (out->n + 8 >= DRAIN_ACTIONS_MAX) {
            out->logouts_skipped++;
            continue;
        }
        act(out, DRAIN_DO_LOGOUT, i);
    }
}

void drain_fsm_step(struct drain *d, const struct drain_view *v, struct drain_actions *out)
{
    struct drain_counts c;
    uint64_t hash;
    bool phase_changed;
    enum drain_phase before = d->phase;

    out->n = 0;
    out->logouts_skipped = 0;
    if (d->phase == DRAIN_COMPLETED || d->phase == DRAIN_CANCELLED)
        return;
    drain_fsm_counts(d, v, &c);
    raise_totals(d, &c);
    if (d->deadline_ms > 0 && v->now_ms >= d->deadline_ms && !d->forced &&
        d->phase < DRAIN_WAIT_BYES) {
        d->forced = true;
        go(d, DRAIN_FORCING, v->now_ms, out);
    }
    /* The edges: every live one drains; the drained ones stop at the end. */
    for (size_t i = 0; i < v->n_edges; i++) {
        const struct drain_edge_view *e = &v->edges[i];
        if (!drain_edge_live(e, v->now_ms))
            continue;
        if (e->state == DRAIN_EDGE_ACTIVE)
            to_edge(d, v, i, DRAIN_DO_EDGE_DRAIN, out);
        else if (e->state == DRAIN_EDGE_DRAINED && !e->held && d->phase == DRAIN_STOPPING)
            to_edge(d, v, i, DRAIN_DO_EDGE_SHUTDOWN, out);
    }
    /* The phase, as far as the view allows in one step. */
    do {
        phase_changed = false;
        enum drain_phase p = d->phase;
        switch (p) {
        case DRAIN_REFUSING:
            if (edges_at_least(v, DRAIN_EDGE_DRAINING))
                go(d, DRAIN_WAIT_CALLS, v->now_ms, out);
            break;
        case DRAIN_WAIT_CALLS:
            if (c.calls_left == 0 && c.nailed_up_left == 0)
                go(d,
                   d->scope == DRAIN_SCOPE_SITE && c.agents_logged_in > 0 ? DRAIN_WAIT_AGENTS
                                                                          : DRAIN_WAIT_BYES,
                   v->now_ms, out);
            break;
        case DRAIN_WAIT_AGENTS:
            if (c.agents_logged_in == 0)
                go(d, DRAIN_WAIT_BYES, v->now_ms, out);
            break;
        case DRAIN_FORCING:
            if (c.calls_left == 0 && c.agents_logged_in == 0 && c.nailed_up_left == 0)
                go(d, DRAIN_WAIT_BYES, v->now_ms, out);
            break;
        case DRAIN_WAIT_BYES:
            if (edges_at_least(v, DRAIN_EDGE_DRAINED)) {
                go(d, DRAIN_STOPPING, v->now_ms, out);
                for (size_t i = 0; i < v->n_edges; i++) {
                    if (drain_edge_live(&v->edges[i], v->now_ms) &&
                        v->edges[i].state == DRAIN_EDGE_DRAINED && !v->edges[i].held)
                        to_edge(d, v, i, DRAIN_DO_EDGE_SHUTDOWN, out);
                }
            }
            break;
        case DRAIN_STOPPING:
            if (edges_at_least(v, DRAIN_EDGE_STOPPED))
                go(d, DRAIN_COMPLETED, v->now_ms, out);
            break;
        default:
            break;
        }
        phase_changed = d->phase != p;
    } while (phase_changed && d->phase != DRAIN_COMPLETED);
    /* Agents go only once every edge refuses new calls: an agent logged out
     * while an edge still routes to the site would turn a call that could
     * fail over (503) into a 480. */
    if (d->scope == DRAIN_SCOPE_SITE && d->phase != DRAIN_REFUSING)
        logouts(d, v, out);
    hash = counts_hash(&c, d->phase);
    if (d->phase == DRAIN_COMPLETED) {
        act(out, DRAIN_DO_COMPLETED, 0);
    } else if (d->phase != before || d->progress_ms == 0 ||
               v->now_ms - d->progress_ms >= DRAIN_PROGRESS_MAX_MS ||
               (hash != d->progress_hash && v->now_ms - d->progress_ms >= DRAIN_PROGRESS_MIN_MS)) {
        d->progress_ms = v->now_ms;
        d->progress_hash = hash;
        act(out, DRAIN_DO_PROGRESS, 0);
    }
}

bool drain_fsm_cancel(struct drain *d, const struct drain_view *v, struct drain_actions *out)
{
    out->n = 0;
    out->logouts_skipped = 0;
    if (d->phase == DRAIN_COMPLETED || d->phase == DRAIN_CANCELLED)
        return false;
    for (size_t i = 0; i < v->n_edges; i++) {
        if (drain_edge_live(&v->edges[i], v->now_ms) && v->edges[i].state != DRAIN_EDGE_STOPPED &&
            v->edges[i].state != DRAIN_EDGE_STOPPING)
            act(out, DRAIN_DO_EDGE_RESUME, i);
    }
    go(d, DRAIN_CANCELLED, v->now_ms, out);
    act(out, DRAIN_DO_CANCELLED, 0);
    return true;
}
