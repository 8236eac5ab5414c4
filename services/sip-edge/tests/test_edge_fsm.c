/* edge_fsm: the pure drain state machine of a sip-edge - every state x input
 * pair, the site / edge / SIGTERM drain paths, the deadline, the timer (due),
 * resume, repeated and replacing drains, drain options over the config, the
 * verdicts for new requests in every state, and the state names. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "edge_fsm.h"

#define NOW 1700000000000LL
#define D1  "5d1c2a4e-0b7f-4c8e-9a31-6f2d8e4b7c10"
#define D2  "a9e3f7b2-41c6-4d05-8e2a-3b7c9d1f0e65"

#define LEN(arr) (sizeof(arr) / sizeof((arr)[0]))
#define A(kind)  (1u << EDGE_DO_##kind)

/* The edge's own settings: 503, a 32 s BYE wait, Retry-After 30. */
static const struct edge_config CFG = {503, 32, 30};
#define CFG_TIMEOUT_MS (32 * 1000LL)

/* Actions that must never show up unless a row / test asks for them. */
#define DANGER (A(END_NAILED_UP) | A(CUT_CALLS) | A(SHUTDOWN) | A(EXIT))

/* ---- helpers ------------------------------------------------------------ */

/* A drain as edge.drain gives it with nothing but id and scope: every option
 * -1 (the edge's own value), no deadline. */
static struct edge_drain drain_of(const char *id, bool site_scope)
{
    struct edge_drain d;

    memset(&d, 0, sizeof(d));
    snprintf(d.drain_id, sizeof(d.drain_id), "%s", id);
    d.site_scope = site_scope;
    d.reject_code = -1;
    d.sip_timeout_s = -1;
    d.retry_after_s = -1;
    d.deadline_ms = 0;
    return d;
}

static struct edge_load load_of(unsigned calls, unsigned nailed, unsigned byes)
{
    struct edge_load l;

    memset(&l, 0, sizeof(l));
    l.active_calls = calls;
    l.nailed_up_dialogs = nailed;
    l.pending_byes = byes;
    return l;
}

static struct edge_input input(enum edge_input_kind kind, int64_t now, struct edge_load load)
{
    struct edge_input in;

    memset(&in, 0, sizeof(in));
    in.kind = kind;
    in.now_ms = now;
    in.load = load;
    return in;
}

static struct edge_input drain_input(const struct edge_drain *d, int64_t now, struct edge_load load)
{
    struct edge_input in = input(EDGE_IN_DRAIN, now, load);

    in.drain = *d;
    return in;
}

/* RESUME / SHUTDOWN: only drain_id of the drain counts. */
static struct edge_input id_input(enum edge_input_kind kind, const char *id, int64_t now,
                                  struct edge_load load)
{
    struct edge_input in = input(kind, now, load);

    snprintf(in.drain.drain_id, sizeof(in.drain.drain_id), "%s", id);
    return in;
}

static struct edge_input shutdown_input(const char *id, bool force, int64_t now,
                                        struct edge_load load)
{
    struct edge_input in = id_input(EDGE_IN_SHUTDOWN, id, now, load);

    in.force = force;
    return in;
}

static unsigned mask_of(const struct edge_actions *out)
{
    unsigned m = 0;

    for (size_t i = 0; i < out->n && i < EDGE_MAX_ACTIONS; i++) {
        if ((unsigned)out->a[i] < EDGE_ACTION_COUNT)
            m |= 1u << out->a[i];
    }
    return m;
}

static size_t count_of(const struct edge_actions *out, enum edge_action_kind k)
{
    size_t c = 0;

    for (size_t i = 0; i < out->n && i < EDGE_MAX_ACTIONS; i++)
        c += out->a[i] == k;
    return c;
}

static size_t bits(unsigned m)
{
    size_t c = 0;

    for (; m; m &= m - 1)
        c++;
    return c;
}

/* "a,b,c" of the action kinds in m, for messages. */
static const char *mask_text(unsigned m, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (int k = 0; k < EDGE_ACTION_COUNT; k++) {
        if (m & (1u << k)) {
            int w = snprintf(buf + used, size - used, "%s%s", used ? "," : "",
                             edge_action_name((enum edge_action_kind)k));

            if (w < 0 || (size_t)w >= size - used)
                break;
            used += (size_t)w;
        }
    }
    return buf;
}

static bool same_drain(const struct edge_drain *x, const struct edge_drain *y)
{
    return strcmp(x->drain_id, y->drain_id) == 0 && x->site_scope == y->site_scope &&
           x->reject_code == y->reject_code && x->sip_timeout_s == y->sip_timeout_s &&
           x->retry_after_s == y->retry_after_s && x->deadline_ms == y->deadline_ms;
}

/* edge_fsm_step with the rules that hold for every step: returns 0 or 1; no
 * action twice; a change of state returns 1 with exactly one EMIT_STATUS;
 * returning 0 leaves state and drain alone; a note only when nothing
 * happened. out starts with stale content that the step must replace. */
static int step(struct edge_fsm *f, const struct edge_input *in, struct edge_actions *out)
{
    enum edge_state from = f->state;
    struct edge_drain drain_before = f->drain;
    char what[96];
    int rc;

    snprintf(what, sizeof(what), "%s x %s", edge_state_name(from), edge_input_name(in->kind));
    memset(out, 0, sizeof(*out));
    out->n = EDGE_MAX_ACTIONS;
    for (size_t i = 0; i < EDGE_MAX_ACTIONS; i++)
        out->a[i] = EDGE_DO_EXIT;
    out->note = "stale note";

    rc = edge_fsm_step(f, in, out);

    cr_expect(rc == 0 || rc == 1, "%s: returned %d", what, rc);
    cr_assert_leq(out->n, EDGE_MAX_ACTIONS, "%s: %zu actions", what, out->n);
    for (int k = 0; k < EDGE_ACTION_COUNT; k++)
        cr_expect_leq(count_of(out, (enum edge_action_kind)k), 1, "%s: %s given %zu times", what,
                      edge_action_name((enum edge_action_kind)k),
                      count_of(out, (enum edge_action_kind)k));
    if (f->state != from) {
        cr_expect_eq(rc, 1, "%s: moved to %s but returned %d", what, edge_state_name(f->state), rc);
        cr_expect_eq(count_of(out, EDGE_DO_EMIT_STATUS), 1, "%s -> %s: %zu emit_status", what,
                     edge_state_name(f->state), count_of(out, EDGE_DO_EMIT_STATUS));
    }
    if (rc == 0) {
        cr_expect_eq(f->state, from, "%s: returned 0 but moved to %s", what,
                     edge_state_name(f->state));
        cr_expect(same_drain(&f->drain, &drain_before), "%s: returned 0 but changed the drain",
                  what);
    }
    if (out->note != NULL) {
        cr_expect_eq(rc, 0, "%s: note \"%s\" but returned %d", what, out->note, rc);
        cr_expect_eq(out->n, 0, "%s: note \"%s\" with %zu actions", what, out->note, out->n);
    }
    return rc;
}

/* Exactly the actions in want (each once). */
static void expect_actions(const struct edge_actions *out, unsigned want, const char *what)
{
    char got_s[128], want_s[128];

    cr_expect_eq(mask_of(out), want, "%s: actions [%s], expected [%s]", what,
                 mask_text(mask_of(out), got_s, sizeof(got_s)),
                 mask_text(want, want_s, sizeof(want_s)));
    cr_expect_eq(out->n, bits(want), "%s: %zu actions, expected %zu", what, out->n, bits(want));
}

/* At least the actions in want. */
static void expect_has(const struct edge_actions *out, unsigned want, const char *what)
{
    char got_s[128], want_s[128];

    cr_expect_eq(mask_of(out) & want, want, "%s: actions [%s], expected at least [%s]", what,
                 mask_text(mask_of(out), got_s, sizeof(got_s)),
                 mask_text(want, want_s, sizeof(want_s)));
}

/* An input that changes nothing: 0, no action, a note, same state. */
static void expect_ignored(const struct edge_fsm *f, enum edge_state was, int rc,
                           const struct edge_actions *out, const char *what)
{
    cr_expect_eq(rc, 0, "%s: returned %d", what, rc);
    cr_expect_eq(out->n, 0, "%s: %zu actions", what, out->n);
    cr_expect_not_null(out->note, "%s: ignored without a note", what);
    cr_expect_eq(f->state, was, "%s: state %s, expected %s", what, edge_state_name(f->state),
                 edge_state_name(was));
}

/* LOAD / TICK with nothing to do: 0, no action, no note. */
static void expect_idle(const struct edge_fsm *f, enum edge_state was, int rc,
                        const struct edge_actions *out, const char *what)
{
    cr_expect_eq(rc, 0, "%s: returned %d", what, rc);
    cr_expect_eq(out->n, 0, "%s: %zu actions", what, out->n);
    cr_expect_null(out->note, "%s: note \"%s\" for nothing to do", what,
                   out->note ? out->note : "");
    cr_expect_eq(f->state, was, "%s: state %s, expected %s", what, edge_state_name(f->state),
                 edge_state_name(was));
}

/* Reaches target from a fresh edge through real inputs, all at NOW, with the
 * drain d (which must be a site drain to get past bye_wait):
 *   drain with 2 calls and a nailed-up dialog -> draining
 *   load: no calls, 1 pending BYE             -> bye_wait (until NOW + timeout)
 *   load: nothing pending                     -> drained
 *   edge.shutdown of d                        -> stopping
 *   shutdown_done                             -> stopped */
static void reach(struct edge_fsm *f, enum edge_state target, const struct edge_drain *d)
{
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(f, &CFG);
    cr_assert_eq(f->state, EDGE_ACTIVE, "setup: init gave %s", edge_state_name(f->state));
    if (target == EDGE_ACTIVE)
        return;
    in = drain_input(d, NOW, load_of(2, 1, 0));
    step(f, &in, &out);
    cr_assert_eq(f->state, EDGE_DRAINING, "setup: drain gave %s", edge_state_name(f->state));
    if (target == EDGE_DRAINING)
        return;
    in = input(EDGE_IN_LOAD, NOW, load_of(0, 0, 1));
    step(f, &in, &out);
    cr_assert_eq(f->state, EDGE_BYE_WAIT, "setup: calls gone gave %s", edge_state_name(f->state));
    if (target == EDGE_BYE_WAIT)
        return;
    in = input(EDGE_IN_LOAD, NOW, load_of(0, 0, 0));
    step(f, &in, &out);
    cr_assert_eq(f->state, EDGE_DRAINED, "setup: BYEs answered gave %s", edge_state_name(f->state));
    if (target == EDGE_DRAINED)
        return;
    in = shutdown_input(d->drain_id, false, NOW, load_of(0, 0, 0));
    step(f, &in, &out);
    cr_assert_eq(f->state, EDGE_STOPPING, "setup: edge.shutdown gave %s",
                 edge_state_name(f->state));
    if (target == EDGE_STOPPING)
        return;
    in = input(EDGE_IN_SHUTDOWN_DONE, NOW, load_of(0, 0, 0));
    step(f, &in, &out);
    cr_assert_eq(f->state, EDGE_STOPPED, "setup: shutdown_done gave %s", edge_state_name(f->state));
}

/* The same with the site drain D1 and all options from the config. */
static void reach_site(struct edge_fsm *f, enum edge_state target)
{
    struct edge_drain d = drain_of(D1, true);

    reach(f, target, &d);
}

/* ---- the state x input matrix ----------------------------------------- */

enum row_id { ID_SAME, ID_OTHER }; /* D1 (the fixture's drain) or D2 */
enum row_note { NOTE_NO, NOTE_YES, NOTE_ANY };

struct fsm_row {
    enum edge_state from; /* reached by reach_site() */
    enum edge_input_kind input;
    enum row_id id; /* drain_id of the input; DRAIN gives a site drain */
    unsigned calls; /* load of the input: active calls ... */
    unsigned byes;  /* ... and pending BYEs (never nailed-up dialogs) */
    int64_t after;  /* now = NOW + after (bye_wait runs until NOW + 32000) */
    int rc;
    enum edge_state to;
    unsigned want; /* actions that must be there; 0: none at all */
    enum row_note note;
};

#define ROW(from, in, id, calls, byes, after, rc, to, want, note)                                  \
    {                                                                                              \
        EDGE_##from, EDGE_IN_##in, ID_##id, calls, byes, after, rc, EDGE_##to, want, NOTE_##note   \
    }

#define NONE      0u
#define START     (A(END_NAILED_UP) | A(EMIT_STATUS))
#define BACK      (A(RETRANSMIT_BYES_STOP) | A(EMIT_STATUS))
#define STOP      (A(SHUTDOWN) | A(EMIT_STATUS))
#define MOVED     A(EMIT_STATUS)
#define EXITED    (A(EXIT) | A(EMIT_STATUS))
#define WAIT_OVER (A(RETRANSMIT_BYES_STOP) | A(EMIT_STATUS))

/* SHUTDOWN is not forced here (forced: its own test). SIGTERM is the first. */
static struct fsm_row matrix_rows[] = {
    /* active */
    ROW(ACTIVE, DRAIN, SAME, 2, 0, 0, 1, DRAINING, START, NO),
    ROW(ACTIVE, RESUME, SAME, 0, 0, 0, 0, ACTIVE, NONE, YES),
    ROW(ACTIVE, SHUTDOWN, SAME, 0, 0, 0, 0, ACTIVE, NONE, YES),
    ROW(ACTIVE, SIGTERM, SAME, 1, 0, 0, 1, DRAINING, START, NO),
    ROW(ACTIVE, LOAD, SAME, 3, 0, 1000, 0, ACTIVE, NONE, NO),
    ROW(ACTIVE, TICK, SAME, 0, 0, 1000, 0, ACTIVE, NONE, NO),
    ROW(ACTIVE, SHUTDOWN_DONE, SAME, 0, 0, 0, 0, ACTIVE, NONE, YES),
    /* draining (site drain D1, 2 calls) */
    ROW(DRAINING, DRAIN, SAME, 2, 0, 0, 0, DRAINING, NONE, YES),
    ROW(DRAINING, RESUME, SAME, 2, 0, 0, 1, ACTIVE, BACK, NO),
    ROW(DRAINING, SHUTDOWN, SAME, 2, 0, 0, 0, DRAINING, NONE, YES),
    ROW(DRAINING, SIGTERM, SAME, 2, 0, 0, 0, DRAINING, NONE, ANY), /* sets self_stop */
    ROW(DRAINING, LOAD, SAME, 0, 1, 1000, 1, BYE_WAIT, MOVED, NO),
    ROW(DRAINING, TICK, SAME, 2, 0, 1000, 0, DRAINING, NONE, NO),
    ROW(DRAINING, SHUTDOWN_DONE, SAME, 2, 0, 0, 0, DRAINING, NONE, YES),
    /* bye_wait (1 pending BYE, until NOW + 32000) */
    ROW(BYE_WAIT, DRAIN, SAME, 0, 1, 0, 0, BYE_WAIT, NONE, YES),
    ROW(BYE_WAIT, RESUME, SAME, 0, 1, 0, 1, ACTIVE, BACK, NO),
    ROW(BYE_WAIT, SHUTDOWN, SAME, 0, 1, 0, 0, BYE_WAIT, NONE, YES),
    ROW(BYE_WAIT, SIGTERM, SAME, 0, 1, 0, 0, BYE_WAIT, NONE, ANY), /* sets self_stop */
    ROW(BYE_WAIT, LOAD, SAME, 0, 1, 1000, 0, BYE_WAIT, NONE, NO),
    ROW(BYE_WAIT, TICK, SAME, 0, 1, 32000, 1, DRAINED, WAIT_OVER, NO),
    ROW(BYE_WAIT, SHUTDOWN_DONE, SAME, 0, 1, 0, 0, BYE_WAIT, NONE, YES),
    /* drained (site drain D1 waits for edge.shutdown) */
    ROW(DRAINED, DRAIN, SAME, 0, 0, 0, 0, DRAINED, NONE, YES),
    ROW(DRAINED, RESUME, SAME, 0, 0, 0, 1, ACTIVE, BACK, NO),
    ROW(DRAINED, SHUTDOWN, SAME, 0, 0, 0, 1, STOPPING, STOP, NO),
    ROW(DRAINED, SIGTERM, SAME, 0, 0, 0, 1, STOPPING, STOP, NO),
    ROW(DRAINED, LOAD, SAME, 0, 0, 1000, 0, DRAINED, NONE, NO),
    ROW(DRAINED, TICK, SAME, 0, 0, 1000, 0, DRAINED, NONE, NO),
    ROW(DRAINED, SHUTDOWN_DONE, SAME, 0, 0, 0, 0, DRAINED, NONE, YES),
    /* stopping */
    ROW(STOPPING, DRAIN, OTHER, 0, 0, 0, 0, STOPPING, NONE, YES),
    ROW(STOPPING, RESUME, SAME, 0, 0, 0, 0, STOPPING, NONE, YES),
    ROW(STOPPING, SHUTDOWN, SAME, 0, 0, 0, 0, STOPPING, NONE, YES),
    ROW(STOPPING, SIGTERM, SAME, 0, 0, 0, 0, STOPPING, NONE, YES),
    ROW(STOPPING, LOAD, SAME, 0, 0, 1000, 0, STOPPING, NONE, NO),
    ROW(STOPPING, TICK, SAME, 0, 0, 1000, 0, STOPPING, NONE, NO),
    ROW(STOPPING, SHUTDOWN_DONE, SAME, 0, 0, 0, 1, STOPPED, EXITED, NO),
    /* stopped */
    ROW(STOPPED, DRAIN, OTHER, 0, 0, 0, 0, STOPPED, NONE, YES),
    ROW(STOPPED, RESUME, SAME, 0, 0, 0, 0, STOPPED, NONE, YES),
    ROW(STOPPED, SHUTDOWN, SAME, 0, 0, 0, 0, STOPPED, NONE, YES),
    ROW(STOPPED, SIGTERM, SAME, 0, 0, 0, 0, STOPPED, NONE, YES),
    ROW(STOPPED, LOAD, SAME, 0, 0, 1000, 0, STOPPED, NONE, NO),
    ROW(STOPPED, TICK, SAME, 0, 0, 1000, 0, STOPPED, NONE, NO),
    ROW(STOPPED, SHUTDOWN_DONE, SAME, 0, 0, 0, 0, STOPPED, NONE, YES),
};

Test(edge_fsm, matrix_has_all_42_state_input_combinations_once)
{
    int seen[EDGE_STATE_COUNT][EDGE_IN_COUNT];

    memset(seen, 0, sizeof(seen));
    cr_assert_eq(EDGE_STATE_COUNT * EDGE_IN_COUNT, 42);
    cr_expect_eq(LEN(matrix_rows), 42, "matrix has %zu rows", LEN(matrix_rows));
    for (size_t i = 0; i < LEN(matrix_rows); i++) {
        const struct fsm_row *r = &matrix_rows[i];

        cr_assert((unsigned)r->from < EDGE_STATE_COUNT && (unsigned)r->input < EDGE_IN_COUNT);
        seen[r->from][r->input]++;
    }
    for (int s = 0; s < EDGE_STATE_COUNT; s++) {
        for (int k = 0; k < EDGE_IN_COUNT; k++)
            cr_expect_eq(seen[s][k], 1, "%s x %s appears %d times",
                         edge_state_name((enum edge_state)s),
                         edge_input_name((enum edge_input_kind)k), seen[s][k]);
    }
}

ParameterizedTestParameters(edge_fsm, every_state_and_input_gives_the_specified_outcome)
{
    return cr_make_param_array(struct fsm_row, matrix_rows, LEN(matrix_rows));
}

ParameterizedTest(struct fsm_row *r, edge_fsm, every_state_and_input_gives_the_specified_outcome)
{
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;
    const char *id = r->id == ID_SAME ? D1 : D2;
    int64_t now = NOW + r->after;
    char what[96], got_s[128], want_s[128];
    int rc;

    snprintf(what, sizeof(what), "%s x %s", edge_state_name(r->from), edge_input_name(r->input));
    reach_site(&f, r->from);
    if (r->input == EDGE_IN_DRAIN) {
        struct edge_drain d = drain_of(id, true);

        in = drain_input(&d, now, load_of(r->calls, 0, r->byes));
    } else {
        in = id_input(r->input, id, now, load_of(r->calls, 0, r->byes));
    }
    rc = step(&f, &in, &out);

    cr_expect_eq(rc, r->rc, "%s: returned %d, expected %d", what, rc, r->rc);
    cr_expect_eq(f.state, r->to, "%s: state %s, expected %s", what, edge_state_name(f.state),
                 edge_state_name(r->to));
    if (r->want == NONE)
        cr_expect_eq(out.n, 0, "%s: %zu actions [%s], expected none", what, out.n,
                     mask_text(mask_of(&out), got_s, sizeof(got_s)));
    else
        expect_has(&out, r->want, what);
    cr_expect_eq(mask_of(&out) & DANGER & ~r->want, 0, "%s: unexpected [%s]", what,
                 mask_text(mask_of(&out) & DANGER & ~r->want, want_s, sizeof(want_s)));
    if (r->note == NOTE_YES)
        cr_expect_not_null(out.note, "%s: changed nothing but gave no note", what);
    else if (r->note == NOTE_NO)
        cr_expect_null(out.note, "%s: note \"%s\"", what, out.note ? out.note : "");
    cr_expect_eq(edge_fsm_retransmitting(&f), f.state == EDGE_BYE_WAIT, "%s: retransmitting %d",
                 what, edge_fsm_retransmitting(&f));
}

/* ---- drain lifecycles --------------------------------------------------- */

Test(edge_fsm, site_drain_lifecycle_from_active_to_stopped)
{
    const int64_t t1 = NOW + 45000;
    const int64_t until = t1 + CFG_TIMEOUT_MS;
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, true);
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(&f, &CFG);
    cr_expect_eq(f.state, EDGE_ACTIVE);
    cr_expect_eq(edge_fsm_due(&f), 0);

    in = drain_input(&d, NOW, load_of(2, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_DRAINING);
    cr_expect_str_eq(f.drain.drain_id, D1);
    cr_expect(f.drain.site_scope);
    expect_actions(&out, A(END_NAILED_UP) | A(EMIT_STATUS), "drain with 2 calls");
    cr_expect_null(out.note);
    cr_expect_eq(edge_fsm_due(&f), 0);
    cr_expect_not(edge_fsm_retransmitting(&f));

    in = input(EDGE_IN_LOAD, NOW + 20000, load_of(1, 0, 0));
    expect_idle(&f, EDGE_DRAINING, step(&f, &in, &out), &out, "one call left");

    in = input(EDGE_IN_LOAD, t1, load_of(0, 0, 1));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_BYE_WAIT);
    expect_actions(&out, A(EMIT_STATUS), "calls over, 1 BYE pending");
    cr_expect_eq(f.bye_until_ms, until, "bye_until %lld, expected %lld", (long long)f.bye_until_ms,
                 (long long)until);
    cr_expect_eq(edge_fsm_due(&f), until);
    cr_expect(edge_fsm_retransmitting(&f));

    in = input(EDGE_IN_TICK, until - 1, load_of(0, 0, 1));
    expect_idle(&f, EDGE_BYE_WAIT, step(&f, &in, &out), &out, "tick 1 ms early");
    cr_expect_eq(edge_fsm_due(&f), until);

    in = input(EDGE_IN_TICK, until, load_of(0, 0, 1));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_DRAINED);
    expect_actions(&out, A(RETRANSMIT_BYES_STOP) | A(EMIT_STATUS), "tick at bye_until");
    cr_expect_eq(edge_fsm_due(&f), 0);
    cr_expect_not(edge_fsm_retransmitting(&f));

    in = input(EDGE_IN_TICK, until + 60000, load_of(0, 0, 0));
    expect_idle(&f, EDGE_DRAINED, step(&f, &in, &out), &out, "drained waits for edge.shutdown");

    in = shutdown_input(D1, false, until + 120000, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_STOPPING);
    expect_actions(&out, A(SHUTDOWN) | A(EMIT_STATUS), "edge.shutdown");

    in = input(EDGE_IN_SHUTDOWN_DONE, until + 121000, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPED);
    expect_actions(&out, A(EXIT) | A(EMIT_STATUS), "shutdown_done");
    cr_expect_eq(edge_fsm_due(&f), 0);
}

Test(edge_fsm, draining_waits_for_nailed_up_dialogs_as_well_as_calls)
{
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, true);
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(&f, &CFG);
    in = drain_input(&d, NOW, load_of(0, 2, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_DRAINING);
    expect_actions(&out, A(END_NAILED_UP) | A(EMIT_STATUS), "drain with 2 nailed-up dialogs");

    in = input(EDGE_IN_LOAD, NOW + 1000, load_of(0, 1, 0));
    expect_idle(&f, EDGE_DRAINING, step(&f, &in, &out), &out, "one dialog left");

    in = input(EDGE_IN_LOAD, NOW + 2000, load_of(0, 0, 3));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_BYE_WAIT);
    cr_expect_eq(f.bye_until_ms, NOW + 2000 + CFG_TIMEOUT_MS);
}

Test(edge_fsm, site_drain_without_calls_or_byes_is_drained_in_one_step)
{
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, true);
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(&f, &CFG);
    in = drain_input(&d, NOW, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_DRAINED);
    expect_actions(&out, A(END_NAILED_UP) | A(RETRANSMIT_BYES_STOP) | A(EMIT_STATUS),
                   "idle site drain");
    cr_expect_str_eq(f.drain.drain_id, D1);
}

Test(edge_fsm, site_drain_without_calls_but_pending_byes_waits_in_bye_wait)
{
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, true);
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(&f, &CFG);
    in = drain_input(&d, NOW, load_of(0, 0, 2));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_BYE_WAIT);
    expect_actions(&out, A(END_NAILED_UP) | A(EMIT_STATUS), "drain with 2 BYEs pending");
    cr_expect_eq(f.bye_until_ms, NOW + CFG_TIMEOUT_MS);
    cr_expect_eq(edge_fsm_due(&f), NOW + CFG_TIMEOUT_MS);

    in = input(EDGE_IN_LOAD, NOW + 500, load_of(0, 0, 1));
    expect_idle(&f, EDGE_BYE_WAIT, step(&f, &in, &out), &out, "one BYE answered");

    in = input(EDGE_IN_LOAD, NOW + 900, load_of(0, 0, 0));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_DRAINED);
    expect_actions(&out, A(RETRANSMIT_BYES_STOP) | A(EMIT_STATUS), "last BYE answered");
    cr_expect_eq(edge_fsm_due(&f), 0);
}

Test(edge_fsm, edge_scope_drain_stops_by_itself_after_the_bye_wait)
{
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, false);
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(&f, &CFG);
    in = drain_input(&d, NOW, load_of(1, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_DRAINING);

    in = input(EDGE_IN_LOAD, NOW + 1000, load_of(0, 0, 1));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_BYE_WAIT);

    in = input(EDGE_IN_TICK, NOW + 1000 + CFG_TIMEOUT_MS, load_of(0, 0, 1));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING, "edge drain ended in %s", edge_state_name(f.state));
    expect_actions(&out, A(RETRANSMIT_BYES_STOP) | A(SHUTDOWN) | A(EMIT_STATUS),
                   "edge drain, BYE wait over");

    in = input(EDGE_IN_SHUTDOWN_DONE, NOW + 40000, load_of(0, 0, 0));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPED);
    expect_actions(&out, A(EXIT) | A(EMIT_STATUS), "shutdown_done");
}

Test(edge_fsm, edge_scope_drain_without_calls_stops_in_one_step)
{
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, false);
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(&f, &CFG);
    in = drain_input(&d, NOW, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING);
    expect_actions(&out, A(END_NAILED_UP) | A(RETRANSMIT_BYES_STOP) | A(SHUTDOWN) | A(EMIT_STATUS),
                   "idle edge drain");
}

/* ---- SIGTERM ------------------------------------------------------------ */

Test(edge_fsm, sigterm_in_active_starts_its_own_edge_drain)
{
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(&f, &CFG);
    in = input(EDGE_IN_SIGTERM, NOW, load_of(3, 1, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_DRAINING);
    expect_actions(&out, A(END_NAILED_UP) | A(EMIT_STATUS), "SIGTERM with calls");
    cr_expect_str_eq(f.drain.drain_id, "");
    cr_expect_not(f.drain.site_scope);
    cr_expect_eq(f.drain.reject_code, -1);
    cr_expect_eq(f.drain.sip_timeout_s, -1);
    cr_expect_eq(f.drain.retry_after_s, -1);
    cr_expect_eq(f.drain.deadline_ms, 0);

    in = input(EDGE_IN_LOAD, NOW + 5000, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING, "SIGTERM drain ended in %s", edge_state_name(f.state));
    expect_actions(&out, A(RETRANSMIT_BYES_STOP) | A(SHUTDOWN) | A(EMIT_STATUS), "calls over");
}

Test(edge_fsm, sigterm_in_active_without_calls_goes_straight_to_stopping)
{
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(&f, &CFG);
    in = input(EDGE_IN_SIGTERM, NOW, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING);
    expect_has(&out, A(SHUTDOWN) | A(EMIT_STATUS), "idle SIGTERM");
    cr_expect_eq(mask_of(&out) & A(CUT_CALLS), 0, "idle SIGTERM cut calls");
}

Test(edge_fsm, second_sigterm_cuts_the_calls_and_stops_at_once)
{
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(&f, &CFG);
    in = input(EDGE_IN_SIGTERM, NOW, load_of(4, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_DRAINING);

    in = input(EDGE_IN_SIGTERM, NOW + 1000, load_of(4, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING);
    expect_actions(&out, A(CUT_CALLS) | A(RETRANSMIT_BYES_STOP) | A(SHUTDOWN) | A(EMIT_STATUS),
                   "second SIGTERM");
}

Test(edge_fsm, second_sigterm_during_a_site_drain_stops_at_once)
{
    static const enum edge_state from[] = {EDGE_DRAINING, EDGE_BYE_WAIT};

    for (size_t i = 0; i < LEN(from); i++) {
        struct edge_fsm f;
        struct edge_input in;
        struct edge_actions out;
        const char *what = edge_state_name(from[i]);
        unsigned calls = from[i] == EDGE_DRAINING ? 2 : 0;

        /* both SIGTERMs while the site drain D1 is in from[i] */
        reach_site(&f, from[i]);
        in = input(EDGE_IN_SIGTERM, NOW, load_of(calls, 0, 1));
        cr_expect_eq(step(&f, &in, &out), 0, "%s: first SIGTERM", what);
        cr_assert_eq(f.state, from[i]);
        in = input(EDGE_IN_SIGTERM, NOW + 1000, load_of(calls, 0, 1));
        cr_expect_eq(step(&f, &in, &out), 1, "%s: second SIGTERM", what);
        cr_expect_eq(f.state, EDGE_STOPPING, "%s: second SIGTERM gave %s", what,
                     edge_state_name(f.state));
        expect_actions(&out, A(CUT_CALLS) | A(RETRANSMIT_BYES_STOP) | A(SHUTDOWN) | A(EMIT_STATUS),
                       what);
    }
}

Test(edge_fsm, sigterm_during_a_site_drain_makes_it_stop_instead_of_drained)
{
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;

    reach_site(&f, EDGE_DRAINING);
    in = input(EDGE_IN_SIGTERM, NOW + 1000, load_of(2, 0, 0));
    cr_expect_eq(step(&f, &in, &out), 0);
    cr_expect_eq(f.state, EDGE_DRAINING);
    cr_expect_eq(out.n, 0, "SIGTERM while draining gave %zu actions", out.n);
    cr_expect(f.self_stop);
    cr_expect_str_eq(f.drain.drain_id, D1, "the site drain is still the drain");

    in = input(EDGE_IN_LOAD, NOW + 2000, load_of(0, 0, 1));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_BYE_WAIT);

    in = input(EDGE_IN_LOAD, NOW + 3000, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING, "site drain after SIGTERM ended in %s",
                 edge_state_name(f.state));
    expect_actions(&out, A(RETRANSMIT_BYES_STOP) | A(SHUTDOWN) | A(EMIT_STATUS), "BYEs answered");
}

Test(edge_fsm, sigterm_in_bye_wait_of_a_site_drain_stops_when_the_timeout_ends)
{
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;

    reach_site(&f, EDGE_BYE_WAIT);
    in = input(EDGE_IN_SIGTERM, NOW + 1000, load_of(0, 0, 1));
    cr_expect_eq(step(&f, &in, &out), 0);
    cr_expect_eq(f.state, EDGE_BYE_WAIT);
    cr_expect(f.self_stop);

    in = input(EDGE_IN_TICK, NOW + CFG_TIMEOUT_MS, load_of(0, 0, 1));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING);
    expect_actions(&out, A(RETRANSMIT_BYES_STOP) | A(SHUTDOWN) | A(EMIT_STATUS),
                   "BYE wait over after SIGTERM");
}

Test(edge_fsm, sigterm_in_drained_stops_without_waiting_for_edge_shutdown)
{
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;

    reach_site(&f, EDGE_DRAINED);
    in = input(EDGE_IN_SIGTERM, NOW + 1000, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING);
    expect_has(&out, A(SHUTDOWN) | A(EMIT_STATUS), "SIGTERM in drained");
    cr_expect_eq(mask_of(&out) & (A(CUT_CALLS) | A(EXIT) | A(END_NAILED_UP)), 0,
                 "SIGTERM in drained did more than stop");
}

Test(edge_fsm, sigterm_when_already_stopping_is_ignored_with_a_note)
{
    static const enum edge_state from[] = {EDGE_STOPPING, EDGE_STOPPED};

    for (size_t i = 0; i < LEN(from); i++) {
        struct edge_fsm f;
        struct edge_input in;
        struct edge_actions out;

        reach_site(&f, from[i]);
        for (int n = 1; n <= 2; n++) {
            char what[64];

            snprintf(what, sizeof(what), "SIGTERM #%d in %s", n, edge_state_name(from[i]));
            in = input(EDGE_IN_SIGTERM, NOW + 1000 * n, load_of(0, 0, 0));
            expect_ignored(&f, from[i], step(&f, &in, &out), &out, what);
        }
    }
}

/* ---- edge.shutdown ------------------------------------------------------ */

Test(edge_fsm, forced_shutdown_cuts_and_stops_from_every_state_before_stopping)
{
    static const enum edge_state from[] = {EDGE_ACTIVE, EDGE_DRAINING, EDGE_BYE_WAIT, EDGE_DRAINED};

    for (size_t i = 0; i < LEN(from); i++) {
        struct edge_fsm f;
        struct edge_input in;
        struct edge_actions out;
        const char *what = edge_state_name(from[i]);

        reach_site(&f, from[i]);
        in = shutdown_input(D2, true, NOW + 1000, load_of(5, 1, 2));
        cr_expect_eq(step(&f, &in, &out), 1, "forced shutdown in %s", what);
        cr_expect_eq(f.state, EDGE_STOPPING, "forced shutdown in %s gave %s", what,
                     edge_state_name(f.state));
        expect_actions(&out, A(CUT_CALLS) | A(RETRANSMIT_BYES_STOP) | A(SHUTDOWN) | A(EMIT_STATUS),
                       what);
        cr_expect_null(out.note);
    }
}

Test(edge_fsm, forced_shutdown_when_already_stopping_is_ignored_with_a_note)
{
    static const enum edge_state from[] = {EDGE_STOPPING, EDGE_STOPPED};

    for (size_t i = 0; i < LEN(from); i++) {
        struct edge_fsm f;
        struct edge_input in;
        struct edge_actions out;
        char what[64];

        snprintf(what, sizeof(what), "forced shutdown in %s", edge_state_name(from[i]));
        reach_site(&f, from[i]);
        in = shutdown_input(D1, true, NOW + 1000, load_of(0, 0, 0));
        expect_ignored(&f, from[i], step(&f, &in, &out), &out, what);
    }
}

Test(edge_fsm, unforced_shutdown_needs_drained_and_the_same_drain)
{
    static const enum edge_state early[] = {EDGE_ACTIVE, EDGE_DRAINING, EDGE_BYE_WAIT};
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;

    for (size_t i = 0; i < LEN(early); i++) {
        char what[64];

        snprintf(what, sizeof(what), "edge.shutdown of D1 in %s", edge_state_name(early[i]));
        reach_site(&f, early[i]);
        in = shutdown_input(D1, false, NOW + 1000, load_of(1, 0, 1));
        expect_ignored(&f, early[i], step(&f, &in, &out), &out, what);
    }

    reach_site(&f, EDGE_DRAINED);
    in = shutdown_input(D2, false, NOW + 1000, load_of(0, 0, 0));
    expect_ignored(&f, EDGE_DRAINED, step(&f, &in, &out), &out, "edge.shutdown of D2");
    in = shutdown_input("", false, NOW + 1000, load_of(0, 0, 0));
    expect_ignored(&f, EDGE_DRAINED, step(&f, &in, &out), &out, "edge.shutdown without id");

    in = shutdown_input(D1, false, NOW + 2000, load_of(0, 0, 0));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING);
    expect_actions(&out, A(SHUTDOWN) | A(EMIT_STATUS), "edge.shutdown of D1 in drained");
}

Test(edge_fsm, shutdown_done_only_counts_in_stopping)
{
    for (int s = 0; s < EDGE_STATE_COUNT; s++) {
        struct edge_fsm f;
        struct edge_input in = input(EDGE_IN_SHUTDOWN_DONE, NOW + 1000, load_of(0, 0, 0));
        struct edge_actions out;
        const char *what = edge_state_name((enum edge_state)s);

        reach_site(&f, (enum edge_state)s);
        if (s == EDGE_STOPPING) {
            cr_expect_eq(step(&f, &in, &out), 1);
            cr_expect_eq(f.state, EDGE_STOPPED);
            expect_actions(&out, A(EXIT) | A(EMIT_STATUS), what);
        } else {
            expect_ignored(&f, (enum edge_state)s, step(&f, &in, &out), &out, what);
        }
    }
}

/* ---- deadline ----------------------------------------------------------- */

Test(edge_fsm, deadline_cuts_the_calls_once)
{
    const int64_t deadline = NOW + 60000;
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, true);
    struct edge_input in;
    struct edge_actions out;

    d.deadline_ms = deadline;
    reach(&f, EDGE_DRAINING, &d);
    cr_expect_eq(edge_fsm_due(&f), deadline);

    in = input(EDGE_IN_TICK, deadline - 1, load_of(2, 0, 0));
    expect_idle(&f, EDGE_DRAINING, step(&f, &in, &out), &out, "tick 1 ms before the deadline");
    cr_expect_not(f.deadline_passed);

    in = input(EDGE_IN_TICK, deadline, load_of(2, 0, 0));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_DRAINING);
    expect_actions(&out, A(CUT_CALLS) | A(EMIT_STATUS), "tick at the deadline");
    cr_expect(f.deadline_passed);
    cr_expect_eq(edge_fsm_due(&f), 0);

    in = input(EDGE_IN_TICK, deadline + 1000, load_of(2, 0, 0));
    expect_idle(&f, EDGE_DRAINING, step(&f, &in, &out), &out, "tick after the deadline");
    cr_expect_eq(mask_of(&out) & A(CUT_CALLS), 0, "calls cut twice");

    in = input(EDGE_IN_LOAD, deadline + 2000, load_of(0, 0, 2));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_BYE_WAIT, "after the cut, the same path: %s",
                 edge_state_name(f.state));
    cr_expect_eq(mask_of(&out) & A(CUT_CALLS), 0, "calls cut again on load");
    cr_expect_eq(edge_fsm_due(&f), deadline + 2000 + CFG_TIMEOUT_MS);
}

Test(edge_fsm, deadline_tick_also_advances_with_the_load)
{
    const int64_t deadline = NOW + 60000;
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, true);
    struct edge_input in;
    struct edge_actions out;

    d.deadline_ms = deadline;
    reach(&f, EDGE_DRAINING, &d);
    in = input(EDGE_IN_TICK, deadline + 5, load_of(0, 0, 2));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_BYE_WAIT);
    expect_actions(&out, A(CUT_CALLS) | A(EMIT_STATUS), "deadline with calls already over");
    cr_expect(f.deadline_passed);
    cr_expect_eq(f.bye_until_ms, deadline + 5 + CFG_TIMEOUT_MS);
}

Test(edge_fsm, deadline_in_bye_wait_and_drained_cuts_what_remains)
{
    static const enum edge_state from[] = {EDGE_BYE_WAIT, EDGE_DRAINED};

    for (size_t i = 0; i < LEN(from); i++) {
        const int64_t deadline = NOW + 10000; /* before bye_until */
        struct edge_fsm f;
        struct edge_drain d = drain_of(D1, true);
        struct edge_input in;
        struct edge_actions out;
        unsigned byes = from[i] == EDGE_BYE_WAIT ? 1 : 0;
        const char *what = edge_state_name(from[i]);

        d.deadline_ms = deadline;
        reach(&f, from[i], &d);
        in = input(EDGE_IN_TICK, deadline, load_of(0, 0, byes));
        cr_expect_eq(step(&f, &in, &out), 1, "%s: deadline tick", what);
        cr_expect_eq(f.state, from[i], "%s: deadline moved to %s", what, edge_state_name(f.state));
        expect_actions(&out, A(CUT_CALLS) | A(EMIT_STATUS), what);
        cr_expect(f.deadline_passed, "%s", what);

        in = input(EDGE_IN_TICK, deadline + 1, load_of(0, 0, byes));
        expect_idle(&f, from[i], step(&f, &in, &out), &out, what);
    }
}

Test(edge_fsm, no_deadline_means_no_cut)
{
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;

    reach_site(&f, EDGE_DRAINING);
    in = input(EDGE_IN_TICK, NOW + 86400000LL, load_of(2, 0, 0));
    expect_idle(&f, EDGE_DRAINING, step(&f, &in, &out), &out, "tick a day later");
    cr_expect_not(f.deadline_passed);
}

/* ---- due ---------------------------------------------------------------- */

Test(edge_fsm, due_is_zero_when_nothing_is_timed)
{
    for (int s = 0; s < EDGE_STATE_COUNT; s++) {
        struct edge_fsm f;

        reach_site(&f, (enum edge_state)s);
        cr_expect_eq(edge_fsm_due(&f), s == EDGE_BYE_WAIT ? NOW + CFG_TIMEOUT_MS : 0,
                     "%s: due %lld", edge_state_name((enum edge_state)s),
                     (long long)edge_fsm_due(&f));
    }
}

Test(edge_fsm, due_is_the_earlier_of_bye_until_and_a_pending_deadline)
{
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, true);
    struct edge_input in;
    struct edge_actions out;

    /* deadline after bye_until: bye_until */
    d.deadline_ms = NOW + CFG_TIMEOUT_MS + 1;
    reach(&f, EDGE_BYE_WAIT, &d);
    cr_expect_eq(edge_fsm_due(&f), NOW + CFG_TIMEOUT_MS);

    /* deadline before bye_until: the deadline */
    d.deadline_ms = NOW + 5000;
    reach(&f, EDGE_BYE_WAIT, &d);
    cr_expect_eq(edge_fsm_due(&f), NOW + 5000);
    /* once passed, bye_until again */
    in = input(EDGE_IN_TICK, NOW + 5000, load_of(0, 0, 1));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_BYE_WAIT);
    cr_expect_eq(edge_fsm_due(&f), NOW + CFG_TIMEOUT_MS);

    /* draining and drained: the pending deadline */
    d.deadline_ms = NOW + 7000;
    reach(&f, EDGE_DRAINING, &d);
    cr_expect_eq(edge_fsm_due(&f), NOW + 7000);
    reach(&f, EDGE_DRAINED, &d);
    cr_expect_eq(edge_fsm_due(&f), NOW + 7000);
    in = input(EDGE_IN_TICK, NOW + 7000, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(edge_fsm_due(&f), 0, "drained after the deadline: due %lld",
                 (long long)edge_fsm_due(&f));

    /* stopping / stopped with a drain that had a deadline: never */
    reach(&f, EDGE_STOPPING, &d);
    cr_expect_eq(edge_fsm_due(&f), 0);
    reach(&f, EDGE_STOPPED, &d);
    cr_expect_eq(edge_fsm_due(&f), 0);

    /* forced stop in the middle of a drain with a deadline */
    reach(&f, EDGE_DRAINING, &d);
    in = shutdown_input(D1, true, NOW + 1000, load_of(2, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(edge_fsm_due(&f), 0);
}

/* ---- resume ------------------------------------------------------------- */

Test(edge_fsm, resume_of_the_drain_goes_back_to_active_and_clears_it)
{
    static const enum edge_state from[] = {EDGE_DRAINING, EDGE_BYE_WAIT, EDGE_DRAINED};

    for (size_t i = 0; i < LEN(from); i++) {
        struct edge_fsm f;
        struct edge_drain d = drain_of(D1, true);
        struct edge_input in;
        struct edge_actions out;
        struct edge_verdict v;
        const char *what = edge_state_name(from[i]);

        d.deadline_ms = NOW + 600000;
        d.reject_code = 480;
        reach(&f, from[i], &d);
        in = id_input(EDGE_IN_RESUME, D1, NOW + 1000, load_of(1, 0, 1));
        cr_expect_eq(step(&f, &in, &out), 1, "%s", what);
        cr_expect_eq(f.state, EDGE_ACTIVE, "%s: resumed to %s", what, edge_state_name(f.state));
        expect_actions(&out, A(RETRANSMIT_BYES_STOP) | A(EMIT_STATUS), what);
        cr_expect_str_eq(f.drain.drain_id, "", "%s: drain not cleared", what);
        cr_expect_eq(f.drain.deadline_ms, 0, "%s: deadline kept", what);
        cr_expect_eq(edge_fsm_due(&f), 0, "%s: still due", what);
        cr_expect_not(edge_fsm_retransmitting(&f), "%s", what);
        v = edge_fsm_invite(&f);
        cr_expect_eq(v.kind, EDGE_ACCEPT, "%s: INVITE after resume", what);

        /* nothing of the old drain is left: a tick at its deadline is idle */
        in = input(EDGE_IN_TICK, NOW + 600000, load_of(0, 0, 0));
        expect_idle(&f, EDGE_ACTIVE, step(&f, &in, &out), &out, what);
    }
}

Test(edge_fsm, resume_of_another_drain_is_ignored)
{
    static const enum edge_state from[] = {EDGE_DRAINING, EDGE_BYE_WAIT, EDGE_DRAINED};

    for (size_t i = 0; i < LEN(from); i++) {
        struct edge_fsm f;
        struct edge_input in;
        struct edge_actions out;
        char what[64];

        snprintf(what, sizeof(what), "edge.resume of D2 in %s", edge_state_name(from[i]));
        reach_site(&f, from[i]);
        in = id_input(EDGE_IN_RESUME, D2, NOW + 1000, load_of(1, 0, 1));
        expect_ignored(&f, from[i], step(&f, &in, &out), &out, what);
        cr_expect_str_eq(f.drain.drain_id, D1, "%s", what);
    }
}

Test(edge_fsm, resume_while_active_says_not_draining)
{
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(&f, &CFG);
    in = id_input(EDGE_IN_RESUME, D1, NOW, load_of(0, 0, 0));
    expect_ignored(&f, EDGE_ACTIVE, step(&f, &in, &out), &out, "resume in active");
    cr_assert_not_null(out.note);
    cr_expect_str_eq(out.note, "not draining");
}

Test(edge_fsm, resume_when_stopping_is_ignored)
{
    static const enum edge_state from[] = {EDGE_STOPPING, EDGE_STOPPED};

    for (size_t i = 0; i < LEN(from); i++) {
        struct edge_fsm f;
        struct edge_input in;
        struct edge_actions out;

        reach_site(&f, from[i]);
        in = id_input(EDGE_IN_RESUME, D1, NOW + 1000, load_of(0, 0, 0));
        expect_ignored(&f, from[i], step(&f, &in, &out), &out, edge_state_name(from[i]));
    }
}

Test(edge_fsm, resume_after_sigterm_is_refused)
{
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;

    /* SIGTERM during the site drain D1 */
    reach_site(&f, EDGE_DRAINING);
    in = input(EDGE_IN_SIGTERM, NOW + 1000, load_of(2, 0, 0));
    step(&f, &in, &out);
    cr_assert_eq(f.state, EDGE_DRAINING);
    in = id_input(EDGE_IN_RESUME, D1, NOW + 2000, load_of(2, 0, 0));
    expect_ignored(&f, EDGE_DRAINING, step(&f, &in, &out), &out, "resume of D1 after SIGTERM");

    /* SIGTERM's own drain, then an edge.drain D1 takes over: still refused */
    edge_fsm_init(&f, &CFG);
    in = input(EDGE_IN_SIGTERM, NOW, load_of(2, 0, 0));
    step(&f, &in, &out);
    cr_assert_eq(f.state, EDGE_DRAINING);
    in = id_input(EDGE_IN_RESUME, "", NOW + 500, load_of(2, 0, 0));
    expect_ignored(&f, EDGE_DRAINING, step(&f, &in, &out), &out, "resume of SIGTERM's drain");
    {
        struct edge_drain d = drain_of(D1, true);

        in = drain_input(&d, NOW + 1000, load_of(2, 0, 0));
    }
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_str_eq(f.drain.drain_id, D1);
    in = id_input(EDGE_IN_RESUME, D1, NOW + 2000, load_of(2, 0, 0));
    expect_ignored(&f, EDGE_DRAINING, step(&f, &in, &out), &out, "resume of D1 after SIGTERM");
}

/* ---- repeated and replacing drains ------------------------------------- */

Test(edge_fsm, repeated_drain_with_the_same_id_is_ignored)
{
    static const enum edge_state from[] = {EDGE_DRAINING, EDGE_BYE_WAIT, EDGE_DRAINED};

    for (size_t i = 0; i < LEN(from); i++) {
        struct edge_fsm f;
        struct edge_drain d = drain_of(D1, false); /* even with other options */
        struct edge_input in;
        struct edge_actions out;
        char what[64];

        snprintf(what, sizeof(what), "edge.drain D1 again in %s", edge_state_name(from[i]));
        reach_site(&f, from[i]);
        d.reject_code = 486;
        in = drain_input(&d, NOW + 1000, load_of(2, 0, 1));
        expect_ignored(&f, from[i], step(&f, &in, &out), &out, what);
        cr_expect(f.drain.site_scope, "%s: options taken over", what);
        cr_expect_eq(f.drain.reject_code, -1, "%s: options taken over", what);
    }
}

Test(edge_fsm, another_drain_takes_over_id_and_options_and_the_state_goes_on)
{
    struct edge_fsm f;
    struct edge_drain d2 = drain_of(D2, true);
    struct edge_input in;
    struct edge_actions out;
    struct edge_verdict v;

    reach_site(&f, EDGE_DRAINING);
    d2.reject_code = 486;
    d2.retry_after_s = 120;
    in = drain_input(&d2, NOW + 1000, load_of(2, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_DRAINING);
    expect_actions(&out, A(EMIT_STATUS), "edge.drain D2 while draining D1");
    cr_expect_str_eq(f.drain.drain_id, D2);
    cr_expect_eq(f.drain.reject_code, 486);
    v = edge_fsm_invite(&f);
    cr_expect_eq(v.kind, EDGE_REJECT);
    cr_expect_eq(v.status, 486);
    cr_expect_eq(v.retry_after_s, 120);

    /* D1 is not the drain any more */
    in = id_input(EDGE_IN_RESUME, D1, NOW + 2000, load_of(2, 0, 0));
    expect_ignored(&f, EDGE_DRAINING, step(&f, &in, &out), &out, "resume of the old drain");
    in = id_input(EDGE_IN_RESUME, D2, NOW + 3000, load_of(2, 0, 0));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_ACTIVE);
}

Test(edge_fsm, another_drain_advances_as_far_as_the_load_allows)
{
    struct edge_fsm f;
    struct edge_drain d2 = drain_of(D2, true);
    struct edge_input in;
    struct edge_actions out;

    reach_site(&f, EDGE_DRAINING);
    in = drain_input(&d2, NOW + 1000, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_DRAINED);
    expect_actions(&out, A(RETRANSMIT_BYES_STOP) | A(EMIT_STATUS), "edge.drain D2, idle");
    cr_expect_str_eq(f.drain.drain_id, D2);

    /* in drained: edge.shutdown must name the new drain */
    in = shutdown_input(D1, false, NOW + 2000, load_of(0, 0, 0));
    expect_ignored(&f, EDGE_DRAINED, step(&f, &in, &out), &out, "edge.shutdown of the old drain");
    in = shutdown_input(D2, false, NOW + 3000, load_of(0, 0, 0));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING);
}

Test(edge_fsm, an_edge_drain_taking_over_a_site_drain_stops_by_itself)
{
    struct edge_fsm f;
    struct edge_drain d2 = drain_of(D2, false);
    struct edge_input in;
    struct edge_actions out;

    reach_site(&f, EDGE_BYE_WAIT);
    in = drain_input(&d2, NOW + 1000, load_of(0, 0, 1));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_BYE_WAIT);
    expect_actions(&out, A(EMIT_STATUS), "edge.drain D2 in bye_wait");

    in = input(EDGE_IN_LOAD, NOW + 2000, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING, "edge drain D2 ended in %s", edge_state_name(f.state));
    expect_has(&out, A(SHUTDOWN) | A(EMIT_STATUS), "BYEs answered");
}

Test(edge_fsm, another_drain_in_drained_is_taken_and_stays_drained)
{
    struct edge_fsm f;
    struct edge_drain d2 = drain_of(D2, true);
    struct edge_input in;
    struct edge_actions out;

    reach_site(&f, EDGE_DRAINED);
    in = drain_input(&d2, NOW + 1000, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_DRAINED);
    expect_actions(&out, A(EMIT_STATUS), "edge.drain D2 in drained");
    cr_expect_str_eq(f.drain.drain_id, D2);
}

Test(edge_fsm, a_new_drain_after_resume_starts_over)
{
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, true);
    struct edge_input in;
    struct edge_actions out;

    reach_site(&f, EDGE_BYE_WAIT);
    in = id_input(EDGE_IN_RESUME, D1, NOW + 1000, load_of(0, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_ACTIVE);

    in = drain_input(&d, NOW + 2000, load_of(1, 0, 0));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_DRAINING);
    expect_actions(&out, A(END_NAILED_UP) | A(EMIT_STATUS), "the same drain id again");
}

Test(edge_fsm, drain_when_stopping_is_ignored)
{
    static const enum edge_state from[] = {EDGE_STOPPING, EDGE_STOPPED};

    for (size_t i = 0; i < LEN(from); i++) {
        struct edge_fsm f;
        struct edge_input in;
        struct edge_actions out;

        for (int same = 0; same <= 1; same++) {
            struct edge_drain d = drain_of(same ? D1 : D2, true);
            char what[64];

            snprintf(what, sizeof(what), "edge.drain %s in %s", same ? "D1" : "D2",
                     edge_state_name(from[i]));
            reach_site(&f, from[i]);
            in = drain_input(&d, NOW + 1000, load_of(0, 0, 0));
            expect_ignored(&f, from[i], step(&f, &in, &out), &out, what);
        }
    }
}

/* ---- drain options over the config ------------------------------------- */

Test(edge_fsm, drain_sip_timeout_overrides_the_config)
{
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, true);
    struct edge_input in;
    struct edge_actions out;

    d.sip_timeout_s = 5;
    reach(&f, EDGE_BYE_WAIT, &d);
    cr_expect_eq(f.bye_until_ms, NOW + 5000);
    cr_expect_eq(edge_fsm_due(&f), NOW + 5000);

    in = input(EDGE_IN_TICK, NOW + 4999, load_of(0, 0, 1));
    expect_idle(&f, EDGE_BYE_WAIT, step(&f, &in, &out), &out, "tick before 5 s");
    in = input(EDGE_IN_TICK, NOW + 5000, load_of(0, 0, 1));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_DRAINED);
}

Test(edge_fsm, drain_sip_timeout_zero_ends_the_bye_wait_at_once)
{
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, true);
    struct edge_input in;
    struct edge_actions out;

    d.sip_timeout_s = 0;
    edge_fsm_init(&f, &CFG);
    in = drain_input(&d, NOW, load_of(0, 0, 3));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_DRAINED);
    expect_has(&out, A(RETRANSMIT_BYES_STOP) | A(EMIT_STATUS), "timeout 0");
}

Test(edge_fsm, drain_sip_timeout_minus_one_uses_the_config)
{
    struct edge_fsm f;
    struct edge_config cfg = CFG;
    struct edge_drain d = drain_of(D1, true);
    struct edge_input in;
    struct edge_actions out;

    cfg.sip_timeout_s = 7;
    edge_fsm_init(&f, &cfg);
    in = drain_input(&d, NOW, load_of(0, 0, 1));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_BYE_WAIT);
    cr_expect_eq(f.bye_until_ms, NOW + 7000);
    cr_expect_eq(edge_fsm_due(&f), NOW + 7000);
}

/* ---- verdicts ----------------------------------------------------------- */

static void expect_verdict(struct edge_verdict v, enum edge_verdict_kind kind, int status,
                           int retry_after_s, const char *what)
{
    cr_expect_eq(v.kind, kind, "%s: verdict kind %d, expected %d", what, v.kind, kind);
    cr_expect_eq(v.status, status, "%s: status %d, expected %d", what, v.status, status);
    cr_expect_eq(v.retry_after_s, retry_after_s, "%s: retry_after %d, expected %d", what,
                 v.retry_after_s, retry_after_s);
}

Test(edge_fsm, verdicts_in_every_state)
{
    for (int s = 0; s < EDGE_STATE_COUNT; s++) {
        struct edge_fsm f;
        char what[64];

        reach_site(&f, (enum edge_state)s);
        if (s == EDGE_ACTIVE) {
            cr_expect_eq(edge_fsm_invite(&f).kind, EDGE_ACCEPT, "INVITE while active");
            cr_expect_eq(edge_fsm_options(&f).kind, EDGE_ACCEPT, "OPTIONS while active");
            cr_expect_eq(edge_fsm_options(&f).status, 200, "OPTIONS while active");
            cr_expect_eq(edge_fsm_register(&f).kind, EDGE_ACCEPT, "REGISTER while active");
            cr_expect_eq(edge_fsm_register(&f).status, 200, "REGISTER while active");
        } else {
            snprintf(what, sizeof(what), "INVITE in %s", edge_state_name((enum edge_state)s));
            expect_verdict(edge_fsm_invite(&f), EDGE_REJECT, 503, 30, what);
            snprintf(what, sizeof(what), "OPTIONS in %s", edge_state_name((enum edge_state)s));
            expect_verdict(edge_fsm_options(&f), EDGE_REJECT, 503, 30, what);
            snprintf(what, sizeof(what), "REGISTER in %s", edge_state_name((enum edge_state)s));
            expect_verdict(edge_fsm_register(&f), EDGE_REJECT, 503, 30, what);
        }
        cr_expect_eq(edge_fsm_retransmitting(&f), s == EDGE_BYE_WAIT, "retransmitting in %s",
                     edge_state_name((enum edge_state)s));
    }
}

Test(edge_fsm, verdicts_follow_the_drain_reject_code_and_retry_after)
{
    static const struct {
        int reject_code, retry_after_s;
        enum edge_verdict_kind kind;
        int status, retry;
    } cases[] = {
        {486, -1, EDGE_REJECT, 486, 30},   {480, 120, EDGE_REJECT, 480, 120},
        {503, 0, EDGE_REJECT, 503, 0},     {300, -1, EDGE_REDIRECT, 302, 30},
        {301, -1, EDGE_REDIRECT, 302, 30}, {302, 0, EDGE_REDIRECT, 302, 0},
        {303, -1, EDGE_REJECT, 303, 30},   {-1, -1, EDGE_REJECT, 503, 30},
        {-1, 0, EDGE_REJECT, 503, 0},      {600, 5, EDGE_REJECT, 600, 5},
    };

    for (size_t i = 0; i < LEN(cases); i++) {
        struct edge_fsm f;
        struct edge_drain d = drain_of(D1, true);
        char what[96];
        int retry = cases[i].retry;

        d.reject_code = cases[i].reject_code;
        d.retry_after_s = cases[i].retry_after_s;
        reach(&f, EDGE_DRAINING, &d);
        snprintf(what, sizeof(what), "INVITE, drain reject %d retry %d", cases[i].reject_code,
                 cases[i].retry_after_s);
        expect_verdict(edge_fsm_invite(&f), cases[i].kind, cases[i].status, retry, what);
        snprintf(what, sizeof(what), "OPTIONS, drain reject %d retry %d", cases[i].reject_code,
                 cases[i].retry_after_s);
        expect_verdict(edge_fsm_options(&f), EDGE_REJECT, 503, retry, what);
        snprintf(what, sizeof(what), "REGISTER, drain reject %d retry %d", cases[i].reject_code,
                 cases[i].retry_after_s);
        expect_verdict(edge_fsm_register(&f), EDGE_REJECT, 503, retry, what);
    }
}

Test(edge_fsm, verdicts_use_the_config_when_the_drain_gives_nothing)
{
    static const struct {
        int reject_code, retry_after_s;
        enum edge_verdict_kind kind;
        int status;
    } cfgs[] = {
        {480, 10, EDGE_REJECT, 480},
        {301, 0, EDGE_REDIRECT, 302},
        {302, 60, EDGE_REDIRECT, 302},
    };

    for (size_t i = 0; i < LEN(cfgs); i++) {
        struct edge_config cfg = CFG;
        struct edge_fsm f;
        struct edge_input in;
        struct edge_actions out;
        char what[64];

        cfg.reject_code = cfgs[i].reject_code;
        cfg.retry_after_s = cfgs[i].retry_after_s;
        edge_fsm_init(&f, &cfg);
        in = input(EDGE_IN_SIGTERM, NOW, load_of(1, 0, 0)); /* its own drain: all -1 */
        step(&f, &in, &out);
        cr_assert_eq(f.state, EDGE_DRAINING);
        snprintf(what, sizeof(what), "INVITE, config reject %d", cfgs[i].reject_code);
        expect_verdict(edge_fsm_invite(&f), cfgs[i].kind, cfgs[i].status, cfgs[i].retry_after_s,
                       what);
        expect_verdict(edge_fsm_options(&f), EDGE_REJECT, 503, cfgs[i].retry_after_s, "OPTIONS");
    }
}

/* A forced stop straight from active has no drain: the config decides. */
Test(edge_fsm, verdicts_after_a_forced_stop_from_active_use_the_config)
{
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(&f, &CFG);
    in = shutdown_input("", true, NOW, load_of(1, 0, 0));
    cr_assert_eq(step(&f, &in, &out), 1);
    cr_assert_eq(f.state, EDGE_STOPPING);
    expect_verdict(edge_fsm_invite(&f), EDGE_REJECT, 503, 30, "INVITE in stopping, no drain");
    expect_verdict(edge_fsm_options(&f), EDGE_REJECT, 503, 30, "OPTIONS in stopping, no drain");
    expect_verdict(edge_fsm_register(&f), EDGE_REJECT, 503, 30, "REGISTER in stopping, no drain");
}

Test(edge_fsm, retransmitting_only_in_bye_wait)
{
    struct edge_fsm f;
    struct edge_input in;
    struct edge_actions out;

    reach_site(&f, EDGE_BYE_WAIT);
    cr_expect(edge_fsm_retransmitting(&f));
    in = input(EDGE_IN_TICK, NOW + CFG_TIMEOUT_MS, load_of(0, 0, 1));
    step(&f, &in, &out);
    cr_expect_not(edge_fsm_retransmitting(&f));
}

/* ---- names -------------------------------------------------------------- */

Test(edge_fsm, state_names_are_the_schema_strings)
{
    static const char *const names[] = {"active",  "draining", "bye_wait",
                                        "drained", "stopping", "stopped"};

    cr_assert_eq(LEN(names), EDGE_STATE_COUNT);
    for (int i = 0; i < EDGE_STATE_COUNT; i++)
        cr_expect_str_eq(edge_state_name((enum edge_state)i), names[i]);
    cr_expect_str_eq(edge_state_name(EDGE_STATE_COUNT), "?");
    cr_expect_str_eq(edge_state_name((enum edge_state)99), "?");
    cr_expect_str_eq(edge_state_name((enum edge_state) - 1), "?");
}

Test(edge_fsm, step_replaces_stale_actions_and_note)
{
    struct edge_fsm f;
    struct edge_input in = input(EDGE_IN_LOAD, NOW, load_of(1, 0, 0));
    struct edge_actions out;

    edge_fsm_init(&f, &CFG);
    memset(&out, 0, sizeof(out));
    out.n = 2;
    out.a[0] = EDGE_DO_EXIT;
    out.a[1] = EDGE_DO_SHUTDOWN;
    out.note = "left over";
    cr_expect_eq(edge_fsm_step(&f, &in, &out), 0);
    cr_expect_eq(out.n, 0);
    cr_expect_null(out.note);
}

Test(edge_fsm, a_drain_without_calls_lists_every_phase_it_passes_in_order)
{
    struct edge_config cfg = {503, 32, 30};
    struct edge_fsm st;
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init(&st, &cfg);
    memset(&in, 0, sizeof(in));
    in.kind = EDGE_IN_DRAIN;
    in.now_ms = 1700000000000;
    snprintf(in.drain.drain_id, sizeof(in.drain.drain_id), "%s",
             "5a1f3c2e-7b4d-4e8f-9a0b-1c2d3e4f5a6b");
    in.drain.site_scope = true;
    in.drain.reject_code = in.drain.sip_timeout_s = in.drain.retry_after_s = -1;
    cr_assert_eq(edge_fsm_step(&st, &in, &out), 1);
    cr_assert_eq(out.n_passed, 3);
    cr_expect_eq(out.passed[0], EDGE_DRAINING);
    cr_expect_eq(out.passed[1], EDGE_BYE_WAIT);
    cr_expect_eq(out.passed[2], EDGE_DRAINED);
    in.kind = EDGE_IN_LOAD;
    cr_assert_eq(edge_fsm_step(&st, &in, &out), 0);
    cr_expect_eq(out.n_passed, 0, "a step that changes nothing passes no phase");
}

/* ---- start-up under a hold (issue #13) ----------------------------------- */

Test(edge_fsm, an_edge_started_under_a_hold_is_drained_held_and_refuses)
{
    static const bool scopes[] = {true, false};

    for (size_t i = 0; i < LEN(scopes); i++) {
        struct edge_fsm f;
        struct edge_drain d = drain_of(D1, scopes[i]);
        struct edge_input in;
        struct edge_actions out;
        struct edge_verdict v;
        const char *what = scopes[i] ? "site hold" : "edge hold";

        d.reject_code = 480;
        d.retry_after_s = 120;
        d.deadline_ms = NOW - 1000; /* the drain's deadline: nothing to cut here */
        edge_fsm_init_held(&f, &CFG, &d);
        cr_expect_eq(f.state, EDGE_DRAINED, "%s: %s", what, edge_state_name(f.state));
        cr_expect(f.held, "%s", what);
        cr_expect_str_eq(f.drain.drain_id, D1, "%s", what);
        v = edge_fsm_invite(&f);
        cr_expect_eq(v.kind, EDGE_REJECT, "%s: INVITE", what);
        cr_expect_eq(v.status, 480, "%s: the drain's reject code", what);
        cr_expect_eq(v.retry_after_s, 120, "%s: the drain's Retry-After", what);
        cr_expect_eq(edge_fsm_options(&f).status, 503, "%s: OPTIONS", what);
        cr_expect_eq(edge_fsm_register(&f).status, 503, "%s: REGISTER", what);
        cr_expect_eq(edge_fsm_due(&f), 0, "%s: no timer", what);

        /* it stays there: ticks and load change nothing, it never stops by itself */
        in = input(EDGE_IN_TICK, NOW + 3600000, load_of(0, 0, 0));
        expect_idle(&f, EDGE_DRAINED, step(&f, &in, &out), &out, what);
        cr_expect(f.held, "%s", what);
    }
}

Test(edge_fsm, a_held_edge_resumes_only_on_its_drain_and_is_no_longer_held)
{
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, true);
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init_held(&f, &CFG, &d);
    in = id_input(EDGE_IN_RESUME, D2, NOW, load_of(0, 0, 0));
    expect_ignored(&f, EDGE_DRAINED, step(&f, &in, &out), &out, "resume of another drain");
    cr_expect(f.held);
    in = id_input(EDGE_IN_RESUME, D1, NOW + 10, load_of(0, 0, 0));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_ACTIVE);
    cr_expect_not(f.held, "still held after resume");
    expect_actions(&out, A(RETRANSMIT_BYES_STOP) | A(EMIT_STATUS), "resume");
    cr_expect_eq(edge_fsm_invite(&f).kind, EDGE_ACCEPT);
}

Test(edge_fsm, a_held_edge_stops_on_sigterm_or_its_shutdown)
{
    struct edge_fsm f;
    struct edge_drain d = drain_of(D1, false);
    struct edge_input in;
    struct edge_actions out;

    edge_fsm_init_held(&f, &CFG, &d);
    in = input(EDGE_IN_SIGTERM, NOW, load_of(0, 0, 0));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING, "SIGTERM: %s", edge_state_name(f.state));
    cr_expect(out.n > 0);

    edge_fsm_init_held(&f, &CFG, &d);
    in = id_input(EDGE_IN_SHUTDOWN, D2, NOW, load_of(0, 0, 0));
    expect_ignored(&f, EDGE_DRAINED, step(&f, &in, &out), &out, "shutdown of another drain");
    in = id_input(EDGE_IN_SHUTDOWN, D1, NOW, load_of(0, 0, 0));
    cr_expect_eq(step(&f, &in, &out), 1);
    cr_expect_eq(f.state, EDGE_STOPPING, "edge.shutdown: %s", edge_state_name(f.state));
}
