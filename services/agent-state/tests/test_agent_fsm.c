/* agent_fsm: the pure agent state machine - every state x input pair, refusal
 * order, drain refusals, graceful logout and migration, after-call rules, the
 * ACW timer, a day in the life, and the name tables. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "agent_fsm.h"

/* Never 0: acw_until_ms 0 means "no ACW timer". */
#define NOW   1700000000000LL
#define DN    "2017"
#define SITE  "site2"
#define PEER  "site1"
#define CALL  "c1"
#define OTHER "c9"
#define NEWC  "c2"

#define LEN(arr) (sizeof(arr) / sizeof((arr)[0]))

/* ---- helpers ------------------------------------------------------------ */

/* Agents are compared with memcmp, so they are always built from memset(0)
 * (padding included) and copied with memcpy. */
static void copy_agent(struct agent *dst, const struct agent *src)
{
    memcpy(dst, src, sizeof(*dst));
}

static bool same_agent(const struct agent *x, const struct agent *y)
{
    return memcmp(x, y, sizeof(*x)) == 0;
}

/* Field by field equality: clearing a string field only writes its first
 * byte, so the bytes after the terminator do not count. */
static void clear_string_tail(char *s, size_t size)
{
    size_t n = strlen(s);

    memset(s + n, 0, size - n);
}

static bool same_agent_values(const struct agent *x, const struct agent *y)
{
    struct agent cx, cy;

    copy_agent(&cx, x);
    copy_agent(&cy, y);
    clear_string_tail(cx.dn, sizeof(cx.dn));
    clear_string_tail(cy.dn, sizeof(cy.dn));
    clear_string_tail(cx.site, sizeof(cx.site));
    clear_string_tail(cy.site, sizeof(cy.site));
    clear_string_tail(cx.call_id, sizeof(cx.call_id));
    clear_string_tail(cy.call_id, sizeof(cy.call_id));
    return same_agent(&cx, &cy);
}

/* A logged-in agent at SITE on DN, not on a call, not draining. Timed ACW
 * is due at NOW; READY has been ready for a minute. */
static void make_agent(struct agent *a, enum agent_state st, enum agent_work_mode mode,
                       int32_t acw_timeout_s)
{
    memset(a, 0, sizeof(*a));
    strcpy(a->dn, DN);
    strcpy(a->site, SITE);
    a->state = st;
    a->work_mode = mode;
    a->acw_timeout_s = acw_timeout_s;
    if (st == AGENT_ACW && acw_timeout_s >= 0)
        a->acw_until_ms = NOW;
    if (st == AGENT_READY)
        a->ready_since_ms = NOW - 60000;
}

static void put_on_call(struct agent *a, const char *call_id)
{
    strcpy(a->call_id, call_id);
}

/* Everything the shell could look up, all "fine": known agent, known site,
 * registered phone, no drain, no dn conflict; call id CALL. */
static struct agent_input input(enum agent_input_kind kind)
{
    struct agent_input in;

    memset(&in, 0, sizeof(in));
    in.kind = kind;
    in.now_ms = NOW;
    in.known = true;
    in.site_draining = false;
    in.dn = DN;
    in.site = SITE;
    in.work_mode = AGENT_MODE_MANUAL_IN;
    in.acw_timeout_s = 30;
    in.site_known = true;
    in.registered = true;
    in.new_call_id = NEWC;
    in.call_id = CALL;
    in.answered = true;
    return in;
}

/* A refused command: returns 0, *a unchanged, exactly one EMIT_ERROR with
 * the given reason whose snapshot is the unchanged agent. */
static void expect_refused(const struct agent *before, const struct agent *after, int rc,
                           const struct agent_actions *out, enum agent_error err)
{
    cr_expect_eq(rc, 0, "refusal returned %d", rc);
    cr_expect(same_agent(after, before), "refusal changed the agent");
    cr_assert_eq(out->n, 1, "refusal gave %zu actions", out->n);
    cr_expect_eq(out->a[0].kind, AGENT_EMIT_ERROR, "action %s, not EventError",
                 agent_action_name(out->a[0].kind));
    cr_expect_eq(out->a[0].error, err, "error %s, expected %s", agent_error_name(out->a[0].error),
                 agent_error_name(err));
    cr_expect(same_agent(&out->a[0].snap, before), "EventError snapshot is not the agent");
}

/* An ignored input: returns 0, *a unchanged, no action, a note for the log. */
static void expect_ignored(const struct agent *before, const struct agent *after, int rc,
                           const struct agent_actions *out)
{
    cr_expect_eq(rc, 0, "ignored input returned %d", rc);
    cr_expect(same_agent(after, before), "ignored input changed the agent");
    cr_expect_eq(out->n, 0, "ignored input gave %zu actions", out->n);
    cr_expect_not_null(out->note, "ignored input without a note");
}

/* One action of the given kind and cause whose snapshot is *a. */
static void expect_one(const struct agent *a, const struct agent_actions *out,
                       enum agent_action_kind kind, enum agent_cause cause)
{
    cr_assert_eq(out->n, 1, "%zu actions, expected 1", out->n);
    cr_expect_eq(out->a[0].kind, kind, "action %s, expected %s", agent_action_name(out->a[0].kind),
                 agent_action_name(kind));
    cr_expect_eq(out->a[0].cause, cause, "cause %s, expected %s", agent_cause_name(out->a[0].cause),
                 agent_cause_name(cause));
    cr_expect(same_agent(&out->a[0].snap, a), "snapshot is not the resulting agent");
}

/* ---- the state x input matrix ----------------------------------------- */

enum fx_state { FX_LOGGED_OUT, FX_READY, FX_NOT_READY, FX_ACW_TIMED, FX_ACW_UNTIMED, FX_COUNT };

static const char *const fx_names[FX_COUNT] = {"logged_out", "ready", "not_ready", "acw(timed)",
                                               "acw(untimed)"};

/* The fully specified agent behind each matrix state. The work modes differ
 * so that an answered call.ended visibly moves READY (to acw) and NOT_READY
 * (to ready). Timed ACW is due exactly at NOW. */
static const struct {
    enum agent_state state;
    enum agent_work_mode mode;
    int32_t acw_timeout_s;
} fixtures[FX_COUNT] = {
    [FX_LOGGED_OUT] = {AGENT_LOGGED_OUT, AGENT_MODE_MANUAL_IN, 30},
    [FX_READY] = {AGENT_READY, AGENT_MODE_ACW, 30},
    [FX_NOT_READY] = {AGENT_NOT_READY, AGENT_MODE_AUTO_IN, 30},
    [FX_ACW_TIMED] = {AGENT_ACW, AGENT_MODE_ACW, 30},
    [FX_ACW_UNTIMED] = {AGENT_ACW, AGENT_MODE_ACW, -1},
};

#define ACT_NONE      (-1)
#define ACT_LOGIN     AGENT_EMIT_LOGIN
#define ACT_LOGOUT    AGENT_EMIT_LOGOUT
#define ACT_READY     AGENT_EMIT_READY
#define ACT_NOT_READY AGENT_EMIT_NOT_READY
#define ACT_ERROR     AGENT_EMIT_ERROR
#define ACT_ORIGINATE AGENT_ORIGINATE

struct fsm_row {
    enum fx_state from;
    bool on_call; /* the agent is on call CALL */
    enum agent_input_kind input;
    int rc;
    int action; /* enum agent_action_kind of the first action, or ACT_NONE */
    enum agent_error error;
    enum agent_cause cause;
    enum agent_state to;
    bool on_call_after;
};

#define ROW(from, call, in, rc, act, err, cause, to, call_after)                                   \
    {                                                                                              \
        FX_##from, call, AGENT_IN_##in, rc, ACT_##act, AGENT_ERR_##err, AGENT_CAUSE_##cause,       \
            AGENT_##to, call_after                                                                 \
    }

/* Every input runs with: call id CALL (the agent's call when on one), new call
 * id NEWC, answered=true, login of DN at SITE in the fixture's work mode,
 * nothing draining, everything known and registered. */
static struct fsm_row matrix_rows[] = {
    /* logged out, not on a call */
    ROW(LOGGED_OUT, 0, LOGIN, 1, LOGIN, NONE, NONE, NOT_READY, 0),
    ROW(LOGGED_OUT, 0, LOGOUT, 0, ERROR, NOT_LOGGED_IN, NONE, LOGGED_OUT, 0),
    ROW(LOGGED_OUT, 0, READY, 0, ERROR, NOT_LOGGED_IN, NONE, LOGGED_OUT, 0),
    ROW(LOGGED_OUT, 0, NOT_READY, 0, ERROR, NOT_LOGGED_IN, NONE, LOGGED_OUT, 0),
    ROW(LOGGED_OUT, 0, ACW_COMPLETE, 0, ERROR, NOT_LOGGED_IN, NONE, LOGGED_OUT, 0),
    ROW(LOGGED_OUT, 0, MAKE_CALL, 0, ERROR, NOT_LOGGED_IN, NONE, LOGGED_OUT, 0),
    ROW(LOGGED_OUT, 0, CALL_OFFERED, 0, NONE, NONE, NONE, LOGGED_OUT, 0),
    ROW(LOGGED_OUT, 0, CALL_ESTABLISHED, 0, NONE, NONE, NONE, LOGGED_OUT, 0),
    ROW(LOGGED_OUT, 0, CALL_ENDED, 0, NONE, NONE, NONE, LOGGED_OUT, 0),
    ROW(LOGGED_OUT, 0, CALL_REJECTED, 0, NONE, NONE, NONE, LOGGED_OUT, 0),
    ROW(LOGGED_OUT, 0, ACW_TIMER, 0, NONE, NONE, NONE, LOGGED_OUT, 0),
    /* logged out, on a call (a stale call id: login clears it) */
    ROW(LOGGED_OUT, 1, LOGIN, 1, LOGIN, NONE, NONE, NOT_READY, 0),
    ROW(LOGGED_OUT, 1, LOGOUT, 0, ERROR, NOT_LOGGED_IN, NONE, LOGGED_OUT, 1),
    ROW(LOGGED_OUT, 1, READY, 0, ERROR, NOT_LOGGED_IN, NONE, LOGGED_OUT, 1),
    ROW(LOGGED_OUT, 1, NOT_READY, 0, ERROR, NOT_LOGGED_IN, NONE, LOGGED_OUT, 1),
    ROW(LOGGED_OUT, 1, ACW_COMPLETE, 0, ERROR, NOT_LOGGED_IN, NONE, LOGGED_OUT, 1),
    ROW(LOGGED_OUT, 1, MAKE_CALL, 0, ERROR, NOT_LOGGED_IN, NONE, LOGGED_OUT, 1),
    ROW(LOGGED_OUT, 1, CALL_OFFERED, 0, NONE, NONE, NONE, LOGGED_OUT, 1),
    ROW(LOGGED_OUT, 1, CALL_ESTABLISHED, 0, NONE, NONE, NONE, LOGGED_OUT, 1),
    ROW(LOGGED_OUT, 1, CALL_ENDED, 0, NONE, NONE, NONE, LOGGED_OUT, 1),
    ROW(LOGGED_OUT, 1, CALL_REJECTED, 0, NONE, NONE, NONE, LOGGED_OUT, 1),
    ROW(LOGGED_OUT, 1, ACW_TIMER, 0, NONE, NONE, NONE, LOGGED_OUT, 1),
    /* ready (work mode acw, 30 s), not on a call */
    ROW(READY, 0, LOGIN, 0, ERROR, ALREADY_LOGGED_IN, NONE, READY, 0),
    ROW(READY, 0, LOGOUT, 1, LOGOUT, NONE, NONE, LOGGED_OUT, 0),
    ROW(READY, 0, READY, 0, READY, NONE, AGENT_REQUEST, READY, 0),
    ROW(READY, 0, NOT_READY, 1, NOT_READY, NONE, AGENT_REQUEST, NOT_READY, 0),
    ROW(READY, 0, ACW_COMPLETE, 0, ERROR, INVALID_STATE, NONE, READY, 0),
    ROW(READY, 0, MAKE_CALL, 1, ORIGINATE, NONE, NONE, READY, 1),
    ROW(READY, 0, CALL_OFFERED, 1, NONE, NONE, NONE, READY, 1),
    ROW(READY, 0, CALL_ESTABLISHED, 1, NONE, NONE, NONE, READY, 1),
    ROW(READY, 0, CALL_ENDED, 1, NOT_READY, NONE, AFTER_CALL, ACW, 0),
    ROW(READY, 0, CALL_REJECTED, 0, NONE, NONE, NONE, READY, 0),
    ROW(READY, 0, ACW_TIMER, 0, NONE, NONE, NONE, READY, 0),
    /* ready, on a call */
    ROW(READY, 1, LOGIN, 0, ERROR, ALREADY_LOGGED_IN, NONE, READY, 1),
    ROW(READY, 1, LOGOUT, 0, ERROR, ON_CALL, NONE, READY, 1),
    ROW(READY, 1, READY, 0, ERROR, ON_CALL, NONE, READY, 1),
    ROW(READY, 1, NOT_READY, 0, ERROR, ON_CALL, NONE, READY, 1),
    ROW(READY, 1, ACW_COMPLETE, 0, ERROR, INVALID_STATE, NONE, READY, 1),
    ROW(READY, 1, MAKE_CALL, 0, ERROR, ON_CALL, NONE, READY, 1),
    ROW(READY, 1, CALL_OFFERED, 0, NONE, NONE, NONE, READY, 1),
    ROW(READY, 1, CALL_ESTABLISHED, 0, NONE, NONE, NONE, READY, 1),
    ROW(READY, 1, CALL_ENDED, 1, NOT_READY, NONE, AFTER_CALL, ACW, 0),
    ROW(READY, 1, CALL_REJECTED, 1, NONE, NONE, NONE, READY, 0),
    ROW(READY, 1, ACW_TIMER, 0, NONE, NONE, NONE, READY, 1),
    /* not ready (work mode auto_in), not on a call */
    ROW(NOT_READY, 0, LOGIN, 0, ERROR, ALREADY_LOGGED_IN, NONE, NOT_READY, 0),
    ROW(NOT_READY, 0, LOGOUT, 1, LOGOUT, NONE, NONE, LOGGED_OUT, 0),
    ROW(NOT_READY, 0, READY, 1, READY, NONE, AGENT_REQUEST, READY, 0),
    ROW(NOT_READY, 0, NOT_READY, 0, NOT_READY, NONE, AGENT_REQUEST, NOT_READY, 0),
    ROW(NOT_READY, 0, ACW_COMPLETE, 0, ERROR, INVALID_STATE, NONE, NOT_READY, 0),
    ROW(NOT_READY, 0, MAKE_CALL, 1, ORIGINATE, NONE, NONE, NOT_READY, 1),
    ROW(NOT_READY, 0, CALL_OFFERED, 1, NONE, NONE, NONE, NOT_READY, 1),
    ROW(NOT_READY, 0, CALL_ESTABLISHED, 1, NONE, NONE, NONE, NOT_READY, 1),
    ROW(NOT_READY, 0, CALL_ENDED, 1, READY, NONE, AFTER_CALL, READY, 0),
    ROW(NOT_READY, 0, CALL_REJECTED, 0, NONE, NONE, NONE, NOT_READY, 0),
    ROW(NOT_READY, 0, ACW_TIMER, 0, NONE, NONE, NONE, NOT_READY, 0),
    /* not ready, on a call */
    ROW(NOT_READY, 1, LOGIN, 0, ERROR, ALREADY_LOGGED_IN, NONE, NOT_READY, 1),
    ROW(NOT_READY, 1, LOGOUT, 0, ERROR, ON_CALL, NONE, NOT_READY, 1),
    ROW(NOT_READY, 1, READY, 0, ERROR, ON_CALL, NONE, NOT_READY, 1),
    ROW(NOT_READY, 1, NOT_READY, 0, ERROR, ON_CALL, NONE, NOT_READY, 1),
    ROW(NOT_READY, 1, ACW_COMPLETE, 0, ERROR, INVALID_STATE, NONE, NOT_READY, 1),
    ROW(NOT_READY, 1, MAKE_CALL, 0, ERROR, ON_CALL, NONE, NOT_READY, 1),
    ROW(NOT_READY, 1, CALL_OFFERED, 0, NONE, NONE, NONE, NOT_READY, 1),
    ROW(NOT_READY, 1, CALL_ESTABLISHED, 0, NONE, NONE, NONE, NOT_READY, 1),
    ROW(NOT_READY, 1, CALL_ENDED, 1, READY, NONE, AFTER_CALL, READY, 0),
    ROW(NOT_READY, 1, CALL_REJECTED, 1, NONE, NONE, NONE, NOT_READY, 0),
    ROW(NOT_READY, 1, ACW_TIMER, 0, NONE, NONE, NONE, NOT_READY, 1),
    /* timed ACW (30 s, due at NOW), not on a call */
    ROW(ACW_TIMED, 0, LOGIN, 0, ERROR, ALREADY_LOGGED_IN, NONE, ACW, 0),
    ROW(ACW_TIMED, 0, LOGOUT, 1, LOGOUT, NONE, NONE, LOGGED_OUT, 0),
    ROW(ACW_TIMED, 0, READY, 1, READY, NONE, AGENT_REQUEST, READY, 0),
    ROW(ACW_TIMED, 0, NOT_READY, 1, NOT_READY, NONE, AGENT_REQUEST, NOT_READY, 0),
    ROW(ACW_TIMED, 0, ACW_COMPLETE, 1, READY, NONE, ACW_COMPLETE, READY, 0),
    ROW(ACW_TIMED, 0, MAKE_CALL, 1, ORIGINATE, NONE, NONE, ACW, 1),
    ROW(ACW_TIMED, 0, CALL_OFFERED, 1, NONE, NONE, NONE, ACW, 1),
    ROW(ACW_TIMED, 0, CALL_ESTABLISHED, 1, NONE, NONE, NONE, ACW, 1),
    ROW(ACW_TIMED, 0, CALL_ENDED, 1, NOT_READY, NONE, AFTER_CALL, ACW, 0),
    ROW(ACW_TIMED, 0, CALL_REJECTED, 0, NONE, NONE, NONE, ACW, 0),
    ROW(ACW_TIMED, 0, ACW_TIMER, 1, READY, NONE, ACW_TIMEOUT, READY, 0),
    /* timed ACW, on a call */
    ROW(ACW_TIMED, 1, LOGIN, 0, ERROR, ALREADY_LOGGED_IN, NONE, ACW, 1),
    ROW(ACW_TIMED, 1, LOGOUT, 0, ERROR, ON_CALL, NONE, ACW, 1),
    ROW(ACW_TIMED, 1, READY, 0, ERROR, ON_CALL, NONE, ACW, 1),
    ROW(ACW_TIMED, 1, NOT_READY, 0, ERROR, ON_CALL, NONE, ACW, 1),
    ROW(ACW_TIMED, 1, ACW_COMPLETE, 1, READY, NONE, ACW_COMPLETE, READY, 1),
    ROW(ACW_TIMED, 1, MAKE_CALL, 0, ERROR, ON_CALL, NONE, ACW, 1),
    ROW(ACW_TIMED, 1, CALL_OFFERED, 0, NONE, NONE, NONE, ACW, 1),
    ROW(ACW_TIMED, 1, CALL_ESTABLISHED, 0, NONE, NONE, NONE, ACW, 1),
    ROW(ACW_TIMED, 1, CALL_ENDED, 1, NOT_READY, NONE, AFTER_CALL, ACW, 0),
    ROW(ACW_TIMED, 1, CALL_REJECTED, 1, NONE, NONE, NONE, ACW, 0),
    ROW(ACW_TIMED, 1, ACW_TIMER, 1, READY, NONE, ACW_TIMEOUT, READY, 1),
    /* untimed ACW, not on a call */
    ROW(ACW_UNTIMED, 0, LOGIN, 0, ERROR, ALREADY_LOGGED_IN, NONE, ACW, 0),
    ROW(ACW_UNTIMED, 0, LOGOUT, 1, LOGOUT, NONE, NONE, LOGGED_OUT, 0),
    ROW(ACW_UNTIMED, 0, READY, 1, READY, NONE, AGENT_REQUEST, READY, 0),
    ROW(ACW_UNTIMED, 0, NOT_READY, 1, NOT_READY, NONE, AGENT_REQUEST, NOT_READY, 0),
    ROW(ACW_UNTIMED, 0, ACW_COMPLETE, 1, READY, NONE, ACW_COMPLETE, READY, 0),
    ROW(ACW_UNTIMED, 0, MAKE_CALL, 1, ORIGINATE, NONE, NONE, ACW, 1),
    ROW(ACW_UNTIMED, 0, CALL_OFFERED, 1, NONE, NONE, NONE, ACW, 1),
    ROW(ACW_UNTIMED, 0, CALL_ESTABLISHED, 1, NONE, NONE, NONE, ACW, 1),
    ROW(ACW_UNTIMED, 0, CALL_ENDED, 1, NOT_READY, NONE, AFTER_CALL, ACW, 0),
    ROW(ACW_UNTIMED, 0, CALL_REJECTED, 0, NONE, NONE, NONE, ACW, 0),
    ROW(ACW_UNTIMED, 0, ACW_TIMER, 0, NONE, NONE, NONE, ACW, 0),
    /* untimed ACW, on a call */
    ROW(ACW_UNTIMED, 1, LOGIN, 0, ERROR, ALREADY_LOGGED_IN, NONE, ACW, 1),
    ROW(ACW_UNTIMED, 1, LOGOUT, 0, ERROR, ON_CALL, NONE, ACW, 1),
    ROW(ACW_UNTIMED, 1, READY, 0, ERROR, ON_CALL, NONE, ACW, 1),
    ROW(ACW_UNTIMED, 1, NOT_READY, 0, ERROR, ON_CALL, NONE, ACW, 1),
    ROW(ACW_UNTIMED, 1, ACW_COMPLETE, 1, READY, NONE, ACW_COMPLETE, READY, 1),
    ROW(ACW_UNTIMED, 1, MAKE_CALL, 0, ERROR, ON_CALL, NONE, ACW, 1),
    ROW(ACW_UNTIMED, 1, CALL_OFFERED, 0, NONE, NONE, NONE, ACW, 1),
    ROW(ACW_UNTIMED, 1, CALL_ESTABLISHED, 0, NONE, NONE, NONE, ACW, 1),
    ROW(ACW_UNTIMED, 1, CALL_ENDED, 1, NOT_READY, NONE, AFTER_CALL, ACW, 0),
    ROW(ACW_UNTIMED, 1, CALL_REJECTED, 1, NONE, NONE, NONE, ACW, 0),
    ROW(ACW_UNTIMED, 1, ACW_TIMER, 0, NONE, NONE, NONE, ACW, 1),
};

static void matrix_agent(struct agent *a, const struct fsm_row *r)
{
    make_agent(a, fixtures[r->from].state, fixtures[r->from].mode, fixtures[r->from].acw_timeout_s);
    if (r->on_call)
        put_on_call(a, CALL);
}

Test(agent_fsm, matrix_has_all_110_state_call_input_combinations_once)
{
    int seen[FX_COUNT][2][AGENT_IN_COUNT];

    memset(seen, 0, sizeof(seen));
    cr_assert_eq(FX_COUNT * 2 * AGENT_IN_COUNT, 110);
    cr_expect_eq(LEN(matrix_rows), 110, "matrix has %zu rows", LEN(matrix_rows));
    for (size_t i = 0; i < LEN(matrix_rows); i++) {
        const struct fsm_row *r = &matrix_rows[i];

        cr_assert((unsigned)r->from < FX_COUNT && (unsigned)r->input < AGENT_IN_COUNT);
        seen[r->from][r->on_call][r->input]++;
    }
    for (int s = 0; s < FX_COUNT; s++) {
        for (int c = 0; c < 2; c++) {
            for (int k = 0; k < AGENT_IN_COUNT; k++)
                cr_expect_eq(seen[s][c][k], 1, "%s %s x %s appears %d times", fx_names[s],
                             c ? "on a call" : "idle", agent_input_name(k), seen[s][c][k]);
        }
    }
}

ParameterizedTestParameters(agent_fsm, every_state_and_input_gives_the_specified_outcome)
{
    return cr_make_param_array(struct fsm_row, matrix_rows, LEN(matrix_rows));
}

ParameterizedTest(struct fsm_row *r, agent_fsm, every_state_and_input_gives_the_specified_outcome)
{
    struct agent a, before;
    struct agent_input in;
    struct agent_actions out;
    char what[128];
    int rc;

    snprintf(what, sizeof(what), "%s%s x %s", fx_names[r->from], r->on_call ? "+call" : "",
             agent_input_name(r->input));
    matrix_agent(&a, r);
    copy_agent(&before, &a);
    in = input(r->input);
    in.work_mode = fixtures[r->from].mode;
    rc = agent_fsm_step(&a, &in, &out);

    cr_expect_eq(rc, r->rc, "%s: returned %d, expected %d", what, rc, r->rc);
    cr_expect_eq(a.state, r->to, "%s: state %s, expected %s", what, agent_state_name(a.state),
                 agent_state_name(r->to));
    cr_expect_eq(a.call_id[0] != '\0', r->on_call_after, "%s: call_id \"%s\"", what, a.call_id);
    if (r->action == ACT_NONE) {
        cr_expect_eq(out.n, 0, "%s: %zu actions, expected none", what, out.n);
        /* Ignored inputs say why - except a repeated call.offered /
         * call.established of the agent's own call, which is no news. */
        if (rc == 0 && !(r->on_call && (r->input == AGENT_IN_CALL_OFFERED ||
                                        r->input == AGENT_IN_CALL_ESTABLISHED)))
            cr_expect_not_null(out.note, "%s: ignored without a note", what);
    } else {
        cr_assert_eq(out.n, 1, "%s: %zu actions, expected 1", what, out.n);
        cr_expect_eq(out.a[0].kind, r->action, "%s: action %s, expected %s", what,
                     agent_action_name(out.a[0].kind),
                     agent_action_name((enum agent_action_kind)r->action));
        cr_expect_eq(out.a[0].error, r->error, "%s: error %s, expected %s", what,
                     agent_error_name(out.a[0].error), agent_error_name(r->error));
        cr_expect_eq(out.a[0].cause, r->cause, "%s: cause %s, expected %s", what,
                     agent_cause_name(out.a[0].cause), agent_cause_name(r->cause));
        cr_expect_eq(out.a[0].reason, AGENT_REASON_NONE, "%s: reason %s", what,
                     agent_reason_name(out.a[0].reason));
        if (r->action == AGENT_EMIT_ERROR)
            cr_expect(same_agent(&out.a[0].snap, &before), "%s: error snapshot changed", what);
        else
            cr_expect(same_agent(&out.a[0].snap, &a), "%s: snapshot is not the agent", what);
    }
    if (rc == 0)
        cr_expect(same_agent(&a, &before), "%s: returned 0 but changed the agent", what);

    /* Timer and ready_since bookkeeping of whatever state it ended in. */
    if (a.state != AGENT_ACW)
        cr_expect_eq(a.acw_until_ms, 0, "%s: acw_until %lld outside ACW", what,
                     (long long)a.acw_until_ms);
    if (a.state == AGENT_NOT_READY || a.state == AGENT_LOGGED_OUT || a.state == AGENT_ACW)
        cr_expect_eq(a.ready_since_ms, 0, "%s: ready_since %lld when not ready", what,
                     (long long)a.ready_since_ms);
    if (a.state == AGENT_READY)
        cr_expect_eq(a.ready_since_ms, before.state == AGENT_READY ? before.ready_since_ms : NOW,
                     "%s: ready_since %lld", what, (long long)a.ready_since_ms);
    if (rc == 1 && r->input == AGENT_IN_CALL_ENDED && a.state == AGENT_ACW)
        cr_expect_eq(a.acw_until_ms, a.acw_timeout_s >= 0 ? NOW + a.acw_timeout_s * 1000LL : 0,
                     "%s: acw_until %lld", what, (long long)a.acw_until_ms);
}

/* ---- login ------------------------------------------------------------- */

Test(agent_fsm, login_copies_the_command_and_starts_not_ready_for_manual_in)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_LOGIN);
    struct agent_actions out;

    memset(&a, 0, sizeof(a));
    in.known = true;
    in.work_mode = AGENT_MODE_MANUAL_IN;
    in.acw_timeout_s = 45;
    in.workspace = true;
    in.nailed_up = true;
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_str_eq(a.dn, DN);
    cr_expect_str_eq(a.site, SITE);
    cr_expect_eq(a.work_mode, AGENT_MODE_MANUAL_IN);
    cr_expect_eq(a.acw_timeout_s, 45);
    cr_expect(a.workspace);
    cr_expect(a.nailed_up);
    cr_expect_not(a.drain);
    cr_expect_str_eq(a.call_id, "");
    cr_expect_eq(a.acw_until_ms, 0);
    cr_expect_eq(a.state, AGENT_NOT_READY);
    cr_expect_eq(a.ready_since_ms, 0);
    expect_one(&a, &out, AGENT_EMIT_LOGIN, AGENT_CAUSE_NONE);
    cr_expect_eq(out.a[0].reason, AGENT_REASON_NONE);
}

Test(agent_fsm, login_in_auto_in_is_ready_at_once_with_ready_since_now)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_LOGIN);
    struct agent_actions out;

    memset(&a, 0, sizeof(a));
    in.work_mode = AGENT_MODE_AUTO_IN;
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_READY);
    cr_expect_eq(a.ready_since_ms, NOW);
    expect_one(&a, &out, AGENT_EMIT_LOGIN, AGENT_CAUSE_NONE);
}

Test(agent_fsm, login_in_acw_mode_starts_not_ready_with_untimed_setting_kept)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_LOGIN);
    struct agent_actions out;

    memset(&a, 0, sizeof(a));
    in.work_mode = AGENT_MODE_ACW;
    in.acw_timeout_s = -1;
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_NOT_READY);
    cr_expect_eq(a.ready_since_ms, 0);
    cr_expect_eq(a.work_mode, AGENT_MODE_ACW);
    cr_expect_eq(a.acw_timeout_s, -1);
    cr_expect_eq(agent_fsm_due(&a), 0);
}

Test(agent_fsm, login_of_a_new_agent_with_known_false_succeeds)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_LOGIN);
    struct agent_actions out;

    memset(&a, 0, sizeof(a));
    in.known = false;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_NOT_READY);
    expect_one(&a, &out, AGENT_EMIT_LOGIN, AGENT_CAUSE_NONE);
}

Test(agent_fsm, login_clears_leftovers_of_a_previous_session)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_LOGIN);
    struct agent_actions out;

    make_agent(&a, AGENT_LOGGED_OUT, AGENT_MODE_ACW, 10);
    strcpy(a.site, PEER);
    strcpy(a.dn, "9999");
    put_on_call(&a, "stale");
    a.workspace = true;
    a.nailed_up = true;
    a.drain = true; /* left by a drain logout: the spec's login ignores it */
    in.work_mode = AGENT_MODE_AUTO_IN;
    in.acw_timeout_s = 20;
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_str_eq(a.dn, DN);
    cr_expect_str_eq(a.site, SITE);
    cr_expect_eq(a.work_mode, AGENT_MODE_AUTO_IN);
    cr_expect_eq(a.acw_timeout_s, 20);
    cr_expect_not(a.workspace);
    cr_expect_not(a.nailed_up);
    cr_expect_not(a.drain);
    cr_expect_str_eq(a.call_id, "");
    cr_expect_eq(a.state, AGENT_READY);
    cr_expect_eq(a.ready_since_ms, NOW);
}

Test(agent_fsm, login_refuses_unknown_site_before_everything_else)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_LOGIN);
    struct agent_actions out;

    make_agent(&a, AGENT_READY, AGENT_MODE_MANUAL_IN, 30);
    copy_agent(&before, &a);
    in.site_known = false;
    in.site_draining = true;
    in.dn_in_use = true;
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_UNKNOWN_SITE);
}

Test(agent_fsm, login_refuses_already_logged_in_before_draining_and_dn_in_use)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_LOGIN);
    struct agent_actions out;

    make_agent(&a, AGENT_NOT_READY, AGENT_MODE_MANUAL_IN, 30);
    copy_agent(&before, &a);
    in.site_draining = true;
    in.dn_in_use = true;
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_ALREADY_LOGGED_IN);
}

Test(agent_fsm, login_at_a_draining_site_is_refused_before_dn_in_use)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_LOGIN);
    struct agent_actions out;

    memset(&a, 0, sizeof(a));
    copy_agent(&before, &a);
    in.known = false;
    in.site_draining = true;
    in.dn_in_use = true;
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_GRACEFUL_SHUTDOWN);
}

Test(agent_fsm, login_on_a_dn_in_use_is_refused)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_LOGIN);
    struct agent_actions out;

    memset(&a, 0, sizeof(a));
    copy_agent(&before, &a);
    in.known = false;
    in.dn_in_use = true;
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_DN_IN_USE);
}

/* ---- refusal order of the other commands -------------------------------- */

/* An unknown agent is all zero (logged out): UNKNOWN_AGENT comes before
 * NOT_LOGGED_IN and before any drain / registration check. */
Test(agent_fsm, unknown_agent_is_refused_first_by_every_command_but_login)
{
    static const enum agent_input_kind cmds[] = {AGENT_IN_LOGOUT, AGENT_IN_READY,
                                                 AGENT_IN_NOT_READY, AGENT_IN_ACW_COMPLETE,
                                                 AGENT_IN_MAKE_CALL};

    for (size_t i = 0; i < LEN(cmds); i++) {
        struct agent a, before;
        struct agent_input in = input(cmds[i]);
        struct agent_actions out;

        memset(&a, 0, sizeof(a));
        copy_agent(&before, &a);
        in.known = false;
        in.site_draining = true;
        in.registered = false;
        cr_expect_eq(agent_fsm_step(&a, &in, &out), 0, "%s", agent_input_name(cmds[i]));
        cr_assert_eq(out.n, 1, "%s", agent_input_name(cmds[i]));
        cr_expect_eq(out.a[0].kind, AGENT_EMIT_ERROR, "%s", agent_input_name(cmds[i]));
        cr_expect_eq(out.a[0].error, AGENT_ERR_UNKNOWN_AGENT, "%s: %s", agent_input_name(cmds[i]),
                     agent_error_name(out.a[0].error));
        cr_expect(same_agent(&a, &before));
        cr_expect(same_agent(&out.a[0].snap, &before));
    }
}

/* NOT_LOGGED_IN comes before draining, on a call, invalid state and
 * registration. */
Test(agent_fsm, logged_out_is_refused_before_draining_on_call_and_registration)
{
    static const enum agent_input_kind cmds[] = {AGENT_IN_LOGOUT, AGENT_IN_READY,
                                                 AGENT_IN_NOT_READY, AGENT_IN_ACW_COMPLETE,
                                                 AGENT_IN_MAKE_CALL};

    for (size_t i = 0; i < LEN(cmds); i++) {
        struct agent a, before;
        struct agent_input in = input(cmds[i]);
        struct agent_actions out;
        int rc;

        make_agent(&a, AGENT_LOGGED_OUT, AGENT_MODE_MANUAL_IN, 30);
        put_on_call(&a, CALL);
        a.drain = true;
        copy_agent(&before, &a);
        in.site_draining = true;
        in.registered = false;
        rc = agent_fsm_step(&a, &in, &out);
        cr_expect_eq(out.n == 1 ? out.a[0].error : AGENT_ERR_NONE, AGENT_ERR_NOT_LOGGED_IN, "%s",
                     agent_input_name(cmds[i]));
        expect_refused(&before, &a, rc, &out, AGENT_ERR_NOT_LOGGED_IN);
    }
}

Test(agent_fsm, ready_while_draining_and_on_a_call_is_refused_graceful_shutdown_first)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_READY);
    struct agent_actions out;

    make_agent(&a, AGENT_NOT_READY, AGENT_MODE_MANUAL_IN, 30);
    put_on_call(&a, CALL);
    copy_agent(&before, &a);
    in.site_draining = true;
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_GRACEFUL_SHUTDOWN);
}

Test(agent_fsm, ready_when_already_ready_but_draining_is_refused)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_READY);
    struct agent_actions out;

    make_agent(&a, AGENT_READY, AGENT_MODE_AUTO_IN, 30);
    a.drain = true;
    copy_agent(&before, &a);
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_GRACEFUL_SHUTDOWN);
}

Test(agent_fsm, ready_when_already_ready_repeats_the_event_and_keeps_ready_since)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_READY);
    struct agent_actions out;

    make_agent(&a, AGENT_READY, AGENT_MODE_MANUAL_IN, 30);
    copy_agent(&before, &a);
    in.now_ms = NOW + 5000;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 0);
    cr_expect(same_agent(&a, &before));
    cr_expect_eq(a.ready_since_ms, NOW - 60000);
    expect_one(&a, &out, AGENT_EMIT_READY, AGENT_CAUSE_AGENT_REQUEST);
}

Test(agent_fsm, ready_from_acw_stops_the_acw_timer)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_READY);
    struct agent_actions out;

    make_agent(&a, AGENT_ACW, AGENT_MODE_ACW, 30);
    a.acw_until_ms = NOW + 20000;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_READY);
    cr_expect_eq(a.ready_since_ms, NOW);
    cr_expect_eq(a.acw_until_ms, 0);
    cr_expect_eq(agent_fsm_due(&a), 0);
    expect_one(&a, &out, AGENT_EMIT_READY, AGENT_CAUSE_AGENT_REQUEST);
}

Test(agent_fsm, not_ready_on_a_call_while_draining_is_refused_on_call)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_NOT_READY);
    struct agent_actions out;

    make_agent(&a, AGENT_READY, AGENT_MODE_MANUAL_IN, 30);
    put_on_call(&a, CALL);
    a.drain = true;
    copy_agent(&before, &a);
    in.site_draining = true;
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_ON_CALL);
}

Test(agent_fsm, not_ready_when_already_not_ready_repeats_the_event_unchanged)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_NOT_READY);
    struct agent_actions out;

    make_agent(&a, AGENT_NOT_READY, AGENT_MODE_MANUAL_IN, 30);
    copy_agent(&before, &a);
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 0);
    cr_expect(same_agent(&a, &before));
    expect_one(&a, &out, AGENT_EMIT_NOT_READY, AGENT_CAUSE_AGENT_REQUEST);
}

Test(agent_fsm, not_ready_from_acw_stops_the_acw_timer)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_NOT_READY);
    struct agent_actions out;

    make_agent(&a, AGENT_ACW, AGENT_MODE_ACW, 30);
    a.acw_until_ms = NOW + 20000;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_NOT_READY);
    cr_expect_eq(a.ready_since_ms, 0);
    cr_expect_eq(a.acw_until_ms, 0);
    expect_one(&a, &out, AGENT_EMIT_NOT_READY, AGENT_CAUSE_AGENT_REQUEST);
}

Test(agent_fsm, acw_complete_outside_acw_is_refused_invalid_state_even_while_draining)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_ACW_COMPLETE);
    struct agent_actions out;

    make_agent(&a, AGENT_READY, AGENT_MODE_ACW, 30);
    a.drain = true;
    copy_agent(&before, &a);
    in.site_draining = true;
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_INVALID_STATE);
}

Test(agent_fsm, acw_complete_on_a_call_is_ready_and_keeps_the_call)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_ACW_COMPLETE);
    struct agent_actions out;

    make_agent(&a, AGENT_ACW, AGENT_MODE_ACW, 30);
    a.acw_until_ms = NOW + 20000;
    put_on_call(&a, CALL);
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_READY);
    cr_expect_eq(a.ready_since_ms, NOW);
    cr_expect_eq(a.acw_until_ms, 0);
    cr_expect_str_eq(a.call_id, CALL);
    expect_one(&a, &out, AGENT_EMIT_READY, AGENT_CAUSE_ACW_COMPLETE);
}

Test(agent_fsm, make_call_while_draining_and_on_a_call_unregistered_is_refused_graceful_shutdown)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_MAKE_CALL);
    struct agent_actions out;

    make_agent(&a, AGENT_NOT_READY, AGENT_MODE_MANUAL_IN, 30);
    put_on_call(&a, CALL);
    copy_agent(&before, &a);
    in.site_draining = true;
    in.registered = false;
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_GRACEFUL_SHUTDOWN);
}

Test(agent_fsm, make_call_on_a_call_unregistered_is_refused_on_call)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_MAKE_CALL);
    struct agent_actions out;

    make_agent(&a, AGENT_NOT_READY, AGENT_MODE_MANUAL_IN, 30);
    put_on_call(&a, CALL);
    copy_agent(&before, &a);
    in.registered = false;
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_ON_CALL);
}

Test(agent_fsm, make_call_without_registration_is_refused_not_registered)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_MAKE_CALL);
    struct agent_actions out;

    make_agent(&a, AGENT_NOT_READY, AGENT_MODE_MANUAL_IN, 30);
    copy_agent(&before, &a);
    in.registered = false;
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_NOT_REGISTERED);
}

Test(agent_fsm, make_call_reserves_the_agent_with_the_new_call_id_and_originates)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_MAKE_CALL);
    struct agent_actions out;

    make_agent(&a, AGENT_READY, AGENT_MODE_MANUAL_IN, 30);
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_str_eq(a.call_id, NEWC);
    cr_expect_eq(a.state, AGENT_READY);
    cr_expect_eq(a.ready_since_ms, NOW - 60000);
    expect_one(&a, &out, AGENT_ORIGINATE, AGENT_CAUSE_NONE);
    cr_expect_str_eq(out.a[0].snap.call_id, NEWC);
}

Test(agent_fsm, make_call_then_rejected_releases_the_reservation)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_MAKE_CALL);
    struct agent_actions out;

    make_agent(&a, AGENT_NOT_READY, AGENT_MODE_MANUAL_IN, 30);
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    in = input(AGENT_IN_CALL_REJECTED);
    in.call_id = NEWC;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_str_eq(a.call_id, "");
    cr_expect_eq(a.state, AGENT_NOT_READY);
    cr_expect_eq(out.n, 0);
}

/* The edge refused the call.originate: the reservation goes, and the
 * desktop gets EventError with the edge's reason (the edge writes no agent
 * events); a refusal of another call answers nothing. */
Test(agent_fsm, an_originate_refused_by_the_edge_is_answered_with_event_error)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_MAKE_CALL);
    struct agent_actions out;

    make_agent(&a, AGENT_READY, AGENT_MODE_MANUAL_IN, 30);
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    in = input(AGENT_IN_CALL_REJECTED);
    in.call_id = CALL; /* not the agent's */
    in.originate_error = AGENT_ERR_ORIGINATE_FAILED;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 0);
    cr_expect_eq(out.n, 0, "a refusal of another call answered");
    cr_expect_str_eq(a.call_id, NEWC);
    in.call_id = NEWC;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_str_eq(a.call_id, "");
    cr_expect_eq(a.state, AGENT_READY);
    cr_assert_eq(out.n, 1);
    cr_expect_eq(out.a[0].kind, AGENT_EMIT_ERROR);
    cr_expect_eq(out.a[0].error, AGENT_ERR_ORIGINATE_FAILED);
    cr_expect_str_eq(agent_error_name(out.a[0].error), "originate_failed");
    cr_expect_eq(agent_error_parse("internal_error"), AGENT_ERR_INTERNAL_ERROR);
    cr_expect_eq(agent_error_parse("nonsense"), -1);
}

/* ---- drain -------------------------------------------------------------- */

/* Both ways a drain reaches the core: the site drain (input) and the
 * orchestrator's flag on the agent row. */
static void set_drain(struct agent *a, struct agent_input *in, int how)
{
    if (how == 0)
        in->site_draining = true;
    else
        a->drain = true;
}

static const char *const drain_how[] = {"site_draining", "agent drain flag"};

Test(agent_fsm, ready_is_refused_graceful_shutdown_while_draining_either_way)
{
    static const enum agent_state from[] = {AGENT_NOT_READY, AGENT_ACW};

    for (int how = 0; how < 2; how++) {
        for (size_t i = 0; i < LEN(from); i++) {
            struct agent a, before;
            struct agent_input in = input(AGENT_IN_READY);
            struct agent_actions out;
            int rc;

            make_agent(&a, from[i], AGENT_MODE_ACW, 30);
            set_drain(&a, &in, how);
            copy_agent(&before, &a);
            rc = agent_fsm_step(&a, &in, &out);
            cr_expect_eq(out.n == 1 ? out.a[0].error : AGENT_ERR_NONE, AGENT_ERR_GRACEFUL_SHUTDOWN,
                         "%s from %s", drain_how[how], agent_state_name(from[i]));
            expect_refused(&before, &a, rc, &out, AGENT_ERR_GRACEFUL_SHUTDOWN);
        }
    }
}

Test(agent_fsm, make_call_is_refused_graceful_shutdown_while_draining_either_way)
{
    for (int how = 0; how < 2; how++) {
        struct agent a, before;
        struct agent_input in = input(AGENT_IN_MAKE_CALL);
        struct agent_actions out;
        int rc;

        make_agent(&a, AGENT_NOT_READY, AGENT_MODE_MANUAL_IN, 30);
        set_drain(&a, &in, how);
        copy_agent(&before, &a);
        rc = agent_fsm_step(&a, &in, &out);
        cr_expect_eq(out.n == 1 ? out.a[0].error : AGENT_ERR_NONE, AGENT_ERR_GRACEFUL_SHUTDOWN,
                     "%s", drain_how[how]);
        expect_refused(&before, &a, rc, &out, AGENT_ERR_GRACEFUL_SHUTDOWN);
    }
}

Test(agent_fsm, login_is_refused_graceful_shutdown_when_the_site_drains)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_LOGIN);
    struct agent_actions out;

    memset(&a, 0, sizeof(a));
    copy_agent(&before, &a);
    in.known = false;
    in.site_draining = true;
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_GRACEFUL_SHUTDOWN);
}

Test(agent_fsm, not_ready_is_allowed_while_draining_either_way)
{
    for (int how = 0; how < 2; how++) {
        struct agent a;
        struct agent_input in = input(AGENT_IN_NOT_READY);
        struct agent_actions out;

        make_agent(&a, AGENT_READY, AGENT_MODE_MANUAL_IN, 30);
        set_drain(&a, &in, how);
        cr_expect_eq(agent_fsm_step(&a, &in, &out), 1, "%s", drain_how[how]);
        cr_expect_eq(a.state, AGENT_NOT_READY, "%s", drain_how[how]);
        expect_one(&a, &out, AGENT_EMIT_NOT_READY, AGENT_CAUSE_AGENT_REQUEST);
    }
}

Test(agent_fsm, logout_is_allowed_while_draining_either_way_and_keeps_the_drain_flag)
{
    for (int how = 0; how < 2; how++) {
        struct agent a;
        struct agent_input in = input(AGENT_IN_LOGOUT);
        struct agent_actions out;

        make_agent(&a, AGENT_READY, AGENT_MODE_MANUAL_IN, 30);
        set_drain(&a, &in, how);
        cr_expect_eq(agent_fsm_step(&a, &in, &out), 1, "%s", drain_how[how]);
        cr_expect_eq(a.state, AGENT_LOGGED_OUT, "%s", drain_how[how]);
        cr_expect_eq(a.drain, how == 1, "%s: drain flag changed", drain_how[how]);
        expect_one(&a, &out, AGENT_EMIT_LOGOUT, AGENT_CAUSE_NONE);
    }
}

Test(agent_fsm, acw_complete_is_allowed_while_draining_either_way)
{
    for (int how = 0; how < 2; how++) {
        struct agent a;
        struct agent_input in = input(AGENT_IN_ACW_COMPLETE);
        struct agent_actions out;

        make_agent(&a, AGENT_ACW, AGENT_MODE_ACW, -1);
        set_drain(&a, &in, how);
        cr_expect_eq(agent_fsm_step(&a, &in, &out), 1, "%s", drain_how[how]);
        cr_expect_eq(a.state, AGENT_READY, "%s", drain_how[how]);
        cr_expect_eq(a.ready_since_ms, NOW);
        expect_one(&a, &out, AGENT_EMIT_READY, AGENT_CAUSE_ACW_COMPLETE);
    }
}

Test(agent_fsm, acw_timer_still_expires_while_draining)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_ACW_TIMER);
    struct agent_actions out;

    make_agent(&a, AGENT_ACW, AGENT_MODE_ACW, 30);
    a.drain = true;
    in.site_draining = true;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_READY);
    expect_one(&a, &out, AGENT_EMIT_READY, AGENT_CAUSE_ACW_TIMEOUT);
}

/* ---- logout and graceful migration ------------------------------------- */

Test(agent_fsm, logout_clears_timers_and_emits_logout_with_no_reason)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_LOGOUT);
    struct agent_actions out;

    make_agent(&a, AGENT_ACW, AGENT_MODE_ACW, 30);
    a.acw_until_ms = NOW + 10000;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_LOGGED_OUT);
    cr_expect_eq(a.acw_until_ms, 0);
    cr_expect_eq(a.ready_since_ms, 0);
    cr_expect_str_eq(a.site, SITE);
    expect_one(&a, &out, AGENT_EMIT_LOGOUT, AGENT_CAUSE_NONE);
    cr_expect_eq(out.a[0].reason, AGENT_REASON_NONE);
}

static void graceful_workspace_logout(struct agent *a, struct agent_input *in,
                                      enum agent_work_mode mode, enum agent_state st)
{
    make_agent(a, st, mode, 25);
    a->workspace = true;
    a->nailed_up = true;
    a->drain = true;
    *in = input(AGENT_IN_LOGOUT);
    in->graceful = true;
    in->peer_site = PEER;
    in->site_draining = true;
}

static void expect_migrated(const struct agent *a, const struct agent_actions *out,
                            enum agent_state st, int64_t ready_since)
{
    cr_assert_eq(out->n, 2, "%zu actions, expected logout + login", out->n);
    cr_expect_null(out->note);

    cr_expect_eq(out->a[0].kind, AGENT_EMIT_LOGOUT);
    cr_expect_eq(out->a[0].reason, AGENT_REASON_GRACEFUL_SHUTDOWN_LOGOUT);
    cr_expect_str_eq(out->a[0].snap.site, SITE);
    cr_expect_eq(out->a[0].snap.state, AGENT_LOGGED_OUT);
    cr_expect(out->a[0].snap.drain, "logout snapshot lost the drain flag");

    cr_expect_eq(out->a[1].kind, AGENT_EMIT_LOGIN);
    cr_expect_eq(out->a[1].reason, AGENT_REASON_GRACEFUL_MIGRATION_LOGIN);
    cr_expect_str_eq(out->a[1].migrated_from, SITE);
    cr_expect_str_eq(out->a[1].snap.site, PEER);
    cr_expect(same_agent(&out->a[1].snap, a), "login snapshot is not the migrated agent");

    cr_expect_str_eq(a->site, PEER);
    cr_expect_str_eq(a->dn, DN);
    cr_expect_eq(a->acw_timeout_s, 25);
    cr_expect(a->workspace);
    cr_expect_not(a->drain);
    cr_expect_str_eq(a->call_id, "");
    cr_expect_eq(a->acw_until_ms, 0);
    cr_expect_eq(a->state, st, "state %s", agent_state_name(a->state));
    cr_expect_eq(a->ready_since_ms, ready_since);
}

Test(agent_fsm, graceful_logout_of_workspace_agent_logs_in_at_the_peer_site)
{
    struct agent a;
    struct agent_input in;
    struct agent_actions out;

    graceful_workspace_logout(&a, &in, AGENT_MODE_MANUAL_IN, AGENT_READY);
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.work_mode, AGENT_MODE_MANUAL_IN);
    expect_migrated(&a, &out, AGENT_NOT_READY, 0);
}

Test(agent_fsm, migrated_auto_in_agent_is_ready_at_the_peer_site)
{
    struct agent a;
    struct agent_input in;
    struct agent_actions out;

    graceful_workspace_logout(&a, &in, AGENT_MODE_AUTO_IN, AGENT_NOT_READY);
    in.now_ms = NOW + 777;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.work_mode, AGENT_MODE_AUTO_IN);
    expect_migrated(&a, &out, AGENT_READY, NOW + 777);
}

Test(agent_fsm, migrated_acw_mode_agent_leaves_acw_and_is_not_ready_at_the_peer_site)
{
    struct agent a;
    struct agent_input in;
    struct agent_actions out;

    graceful_workspace_logout(&a, &in, AGENT_MODE_ACW, AGENT_ACW);
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.work_mode, AGENT_MODE_ACW);
    expect_migrated(&a, &out, AGENT_NOT_READY, 0);
}

/* Graceful + workspace, but the peer login cannot happen: logout only, with a
 * note, and the agent stays logged out at its own site. */
static void expect_not_migrated(const struct agent *a, int rc, const struct agent_actions *out,
                                const char *why)
{
    cr_expect_eq(rc, 1, "%s", why);
    cr_assert_eq(out->n, 1, "%s: %zu actions", why, out->n);
    cr_expect_eq(out->a[0].kind, AGENT_EMIT_LOGOUT, "%s", why);
    cr_expect_eq(out->a[0].reason, AGENT_REASON_GRACEFUL_SHUTDOWN_LOGOUT, "%s", why);
    cr_expect_not_null(out->note, "%s: no note", why);
    cr_expect(same_agent(&out->a[0].snap, a), "%s", why);
    cr_expect_eq(a->state, AGENT_LOGGED_OUT, "%s", why);
    cr_expect_str_eq(a->site, SITE, "%s", why);
    cr_expect(a->drain, "%s: drain flag changed", why);
}

Test(agent_fsm, graceful_logout_without_a_peer_site_does_not_migrate)
{
    struct agent a;
    struct agent_input in;
    struct agent_actions out;

    graceful_workspace_logout(&a, &in, AGENT_MODE_MANUAL_IN, AGENT_READY);
    in.peer_site = NULL;
    expect_not_migrated(&a, agent_fsm_step(&a, &in, &out), &out, "peer NULL");
}

Test(agent_fsm, graceful_logout_with_an_empty_peer_site_does_not_migrate)
{
    struct agent a;
    struct agent_input in;
    struct agent_actions out;

    graceful_workspace_logout(&a, &in, AGENT_MODE_MANUAL_IN, AGENT_READY);
    in.peer_site = "";
    expect_not_migrated(&a, agent_fsm_step(&a, &in, &out), &out, "peer \"\"");
}

Test(agent_fsm, graceful_logout_with_the_own_site_as_peer_does_not_migrate)
{
    struct agent a;
    struct agent_input in;
    struct agent_actions out;

    graceful_workspace_logout(&a, &in, AGENT_MODE_MANUAL_IN, AGENT_READY);
    in.peer_site = SITE;
    expect_not_migrated(&a, agent_fsm_step(&a, &in, &out), &out, "peer == own site");
}

Test(agent_fsm, graceful_logout_with_a_draining_peer_does_not_migrate)
{
    struct agent a;
    struct agent_input in;
    struct agent_actions out;

    graceful_workspace_logout(&a, &in, AGENT_MODE_MANUAL_IN, AGENT_READY);
    in.peer_draining = true;
    expect_not_migrated(&a, agent_fsm_step(&a, &in, &out), &out, "peer draining");
}

Test(agent_fsm, graceful_logout_with_the_dn_in_use_does_not_migrate)
{
    struct agent a;
    struct agent_input in;
    struct agent_actions out;

    graceful_workspace_logout(&a, &in, AGENT_MODE_MANUAL_IN, AGENT_READY);
    in.dn_in_use = true;
    expect_not_migrated(&a, agent_fsm_step(&a, &in, &out), &out, "dn in use");
}

Test(agent_fsm, non_graceful_logout_of_workspace_agent_never_migrates)
{
    struct agent a;
    struct agent_input in;
    struct agent_actions out;

    graceful_workspace_logout(&a, &in, AGENT_MODE_AUTO_IN, AGENT_READY);
    in.graceful = false;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_assert_eq(out.n, 1);
    cr_expect_eq(out.a[0].kind, AGENT_EMIT_LOGOUT);
    cr_expect_eq(out.a[0].reason, AGENT_REASON_NONE);
    cr_expect_eq(a.state, AGENT_LOGGED_OUT);
    cr_expect_str_eq(a.site, SITE);
}

Test(agent_fsm, graceful_logout_of_non_workspace_agent_never_migrates)
{
    struct agent a;
    struct agent_input in;
    struct agent_actions out;

    graceful_workspace_logout(&a, &in, AGENT_MODE_AUTO_IN, AGENT_READY);
    a.workspace = false;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_assert_eq(out.n, 1);
    cr_expect_eq(out.a[0].kind, AGENT_EMIT_LOGOUT);
    cr_expect_eq(out.a[0].reason, AGENT_REASON_GRACEFUL_SHUTDOWN_LOGOUT);
    cr_expect(same_agent(&out.a[0].snap, &a));
    cr_expect_eq(a.state, AGENT_LOGGED_OUT);
    cr_expect_str_eq(a.site, SITE);
}

Test(agent_fsm, graceful_logout_on_a_call_is_refused_and_does_not_migrate)
{
    struct agent a, before;
    struct agent_input in;
    struct agent_actions out;

    graceful_workspace_logout(&a, &in, AGENT_MODE_MANUAL_IN, AGENT_READY);
    put_on_call(&a, CALL);
    copy_agent(&before, &a);
    expect_refused(&before, &a, agent_fsm_step(&a, &in, &out), &out, AGENT_ERR_ON_CALL);
}

/* ---- call events ------------------------------------------------------- */

Test(agent_fsm, call_start_events_for_an_agent_not_logged_in_are_ignored_with_a_note)
{
    static const enum agent_input_kind kinds[] = {AGENT_IN_CALL_OFFERED, AGENT_IN_CALL_ESTABLISHED,
                                                  AGENT_IN_CALL_ENDED, AGENT_IN_CALL_REJECTED};

    for (size_t i = 0; i < LEN(kinds); i++) {
        struct agent a, before;
        struct agent_input in = input(kinds[i]);
        struct agent_actions out;

        memset(&a, 0, sizeof(a));
        copy_agent(&before, &a);
        in.known = false;
        expect_ignored(&before, &a, agent_fsm_step(&a, &in, &out), &out);
    }
}

Test(agent_fsm, call_offered_or_established_while_on_another_call_is_ignored_with_a_note)
{
    static const enum agent_input_kind kinds[] = {AGENT_IN_CALL_OFFERED, AGENT_IN_CALL_ESTABLISHED};

    for (size_t i = 0; i < LEN(kinds); i++) {
        struct agent a, before;
        struct agent_input in = input(kinds[i]);
        struct agent_actions out;

        make_agent(&a, AGENT_READY, AGENT_MODE_MANUAL_IN, 30);
        put_on_call(&a, CALL);
        copy_agent(&before, &a);
        in.call_id = OTHER;
        expect_ignored(&before, &a, agent_fsm_step(&a, &in, &out), &out);
    }
}

Test(agent_fsm, call_established_without_an_offer_sets_the_call_and_keeps_the_state)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_CALL_ESTABLISHED);
    struct agent_actions out;

    make_agent(&a, AGENT_ACW, AGENT_MODE_ACW, 30);
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_str_eq(a.call_id, CALL);
    cr_expect_eq(a.state, AGENT_ACW);
    cr_expect_eq(a.acw_until_ms, NOW);
    cr_expect_eq(out.n, 0);
}

Test(agent_fsm, call_ended_of_another_call_is_ignored_with_a_note)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_CALL_ENDED);
    struct agent_actions out;

    make_agent(&a, AGENT_READY, AGENT_MODE_ACW, 30);
    put_on_call(&a, CALL);
    copy_agent(&before, &a);
    in.call_id = OTHER;
    expect_ignored(&before, &a, agent_fsm_step(&a, &in, &out), &out);
}

Test(agent_fsm, call_rejected_of_another_call_or_when_idle_is_ignored_with_a_note)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_CALL_REJECTED);
    struct agent_actions out;

    make_agent(&a, AGENT_READY, AGENT_MODE_ACW, 30);
    put_on_call(&a, CALL);
    copy_agent(&before, &a);
    in.call_id = OTHER;
    expect_ignored(&before, &a, agent_fsm_step(&a, &in, &out), &out);

    make_agent(&a, AGENT_READY, AGENT_MODE_ACW, 30);
    copy_agent(&before, &a);
    in.call_id = CALL;
    expect_ignored(&before, &a, agent_fsm_step(&a, &in, &out), &out);
}

Test(agent_fsm, unanswered_call_leaves_the_state_it_found)
{
    static const enum agent_state from[] = {AGENT_READY, AGENT_NOT_READY, AGENT_ACW};
    static const enum agent_work_mode modes[] = {AGENT_MODE_MANUAL_IN, AGENT_MODE_AUTO_IN,
                                                 AGENT_MODE_ACW};

    for (size_t i = 0; i < LEN(from); i++) {
        for (size_t m = 0; m < LEN(modes); m++) {
            struct agent a, before;
            struct agent_input in = input(AGENT_IN_CALL_OFFERED);
            struct agent_actions out;

            make_agent(&a, from[i], modes[m], 30);
            copy_agent(&before, &a);
            cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
            in = input(AGENT_IN_CALL_ENDED);
            in.answered = false;
            in.now_ms = NOW + 15000;
            cr_expect_eq(agent_fsm_step(&a, &in, &out), 1, "from %s", agent_state_name(from[i]));
            cr_expect_eq(out.n, 0, "from %s", agent_state_name(from[i]));
            cr_expect(same_agent_values(&a, &before), "from %s in %s: not back to the state before",
                      agent_state_name(from[i]), agent_work_mode_name(modes[m]));
        }
    }
}

/* Issue #16: a route-point call a Ready agent did not take (rang out,
 * refused, failed at the phone) went to the next agent; this one is set
 * NotReady, cause no_answer, so the queue does not ring it again. */
Test(agent_fsm, a_route_point_call_not_taken_sets_a_ready_agent_not_ready_no_answer)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_CALL_OFFERED);
    struct agent_actions out;

    make_agent(&a, AGENT_READY, AGENT_MODE_AUTO_IN, 30);
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    in = input(AGENT_IN_CALL_ENDED);
    in.answered = false;
    in.not_taken = true;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_NOT_READY);
    cr_expect_str_eq(a.call_id, "", "free for the next call once Ready again");
    cr_assert_eq(out.n, 1);
    cr_expect_eq(out.a[0].kind, AGENT_EMIT_NOT_READY);
    cr_expect_str_eq(agent_cause_name(out.a[0].cause), "no_answer");
}

Test(agent_fsm, a_route_point_call_not_taken_leaves_a_not_ready_agent_as_it_is)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_CALL_OFFERED);
    struct agent_actions out;

    make_agent(&a, AGENT_NOT_READY, AGENT_MODE_MANUAL_IN, 30);
    copy_agent(&before, &a);
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    in = input(AGENT_IN_CALL_ENDED);
    in.answered = false;
    in.not_taken = true;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(out.n, 0);
    cr_expect(same_agent_values(&a, &before));
}

Test(agent_fsm, unanswered_call_ended_when_not_on_a_call_changes_nothing)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_CALL_ENDED);
    struct agent_actions out;

    make_agent(&a, AGENT_NOT_READY, AGENT_MODE_ACW, 30);
    copy_agent(&before, &a);
    in.answered = false;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 0);
    cr_expect_eq(out.n, 0);
    cr_expect(same_agent(&a, &before));
}

/* ---- after-call rules -------------------------------------------------- */

static void end_answered_call(struct agent *a, enum agent_state st, enum agent_work_mode mode,
                              int32_t acw_timeout_s, int64_t now, struct agent_actions *out)
{
    struct agent_input in = input(AGENT_IN_CALL_ENDED);

    make_agent(a, st, mode, acw_timeout_s);
    put_on_call(a, CALL);
    in.now_ms = now;
    cr_expect_eq(agent_fsm_step(a, &in, out), 1);
    cr_expect_str_eq(a->call_id, "");
}

Test(agent_fsm, answered_call_in_acw_mode_starts_a_timed_acw)
{
    struct agent a;
    struct agent_actions out;

    end_answered_call(&a, AGENT_READY, AGENT_MODE_ACW, 30, NOW + 1000, &out);
    cr_expect_eq(a.state, AGENT_ACW);
    cr_expect_eq(a.ready_since_ms, 0);
    cr_expect_eq(a.acw_until_ms, NOW + 1000 + 30000);
    cr_expect_eq(agent_fsm_due(&a), NOW + 1000 + 30000);
    expect_one(&a, &out, AGENT_EMIT_NOT_READY, AGENT_CAUSE_AFTER_CALL);
    cr_expect_eq(out.a[0].snap.state, AGENT_ACW);
}

Test(agent_fsm, answered_call_in_acw_mode_with_no_timeout_starts_an_untimed_acw)
{
    struct agent a;
    struct agent_input in;
    struct agent_actions out;

    end_answered_call(&a, AGENT_READY, AGENT_MODE_ACW, -1, NOW, &out);
    cr_expect_eq(a.state, AGENT_ACW);
    cr_expect_eq(a.ready_since_ms, 0);
    cr_expect_eq(a.acw_until_ms, 0);
    cr_expect_eq(agent_fsm_due(&a), 0);
    expect_one(&a, &out, AGENT_EMIT_NOT_READY, AGENT_CAUSE_AFTER_CALL);
    cr_expect_eq(out.a[0].snap.state, AGENT_ACW);

    /* No timer ever ends it; the agent does. */
    in = input(AGENT_IN_ACW_TIMER);
    in.now_ms = NOW + 86400000LL;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 0);
    cr_expect_eq(a.state, AGENT_ACW);
    cr_expect_not_null(out.note);
    in = input(AGENT_IN_ACW_COMPLETE);
    in.now_ms = NOW + 90000;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_READY);
    cr_expect_eq(a.ready_since_ms, NOW + 90000);
    expect_one(&a, &out, AGENT_EMIT_READY, AGENT_CAUSE_ACW_COMPLETE);
}

Test(agent_fsm, answered_call_with_acw_timeout_zero_is_due_at_once)
{
    struct agent a;
    struct agent_input in;
    struct agent_actions out;

    end_answered_call(&a, AGENT_NOT_READY, AGENT_MODE_ACW, 0, NOW, &out);
    cr_expect_eq(a.state, AGENT_ACW);
    cr_expect_eq(a.acw_until_ms, NOW);
    cr_expect_eq(agent_fsm_due(&a), NOW);
    expect_one(&a, &out, AGENT_EMIT_NOT_READY, AGENT_CAUSE_AFTER_CALL);
    in = input(AGENT_IN_ACW_TIMER);
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_READY);
    expect_one(&a, &out, AGENT_EMIT_READY, AGENT_CAUSE_ACW_TIMEOUT);
}

Test(agent_fsm, answered_call_in_auto_in_is_ready_with_cause_after_call)
{
    struct agent a;
    struct agent_actions out;

    end_answered_call(&a, AGENT_NOT_READY, AGENT_MODE_AUTO_IN, 30, NOW + 2000, &out);
    cr_expect_eq(a.state, AGENT_READY);
    cr_expect_eq(a.ready_since_ms, NOW + 2000);
    cr_expect_eq(a.acw_until_ms, 0);
    expect_one(&a, &out, AGENT_EMIT_READY, AGENT_CAUSE_AFTER_CALL);
}

Test(agent_fsm, answered_call_in_manual_in_is_not_ready_with_cause_after_call)
{
    struct agent a;
    struct agent_actions out;

    end_answered_call(&a, AGENT_READY, AGENT_MODE_MANUAL_IN, 30, NOW, &out);
    cr_expect_eq(a.state, AGENT_NOT_READY);
    cr_expect_eq(a.ready_since_ms, 0);
    cr_expect_eq(a.acw_until_ms, 0);
    expect_one(&a, &out, AGENT_EMIT_NOT_READY, AGENT_CAUSE_AFTER_CALL);
}

/* Whatever the state the call found, and whether or not a drain runs, the
 * work mode alone decides. */
Test(agent_fsm, after_call_rules_apply_from_every_state_and_while_draining)
{
    static const enum agent_state from[] = {AGENT_READY, AGENT_NOT_READY, AGENT_ACW};
    static const struct {
        enum agent_work_mode mode;
        int32_t acw_timeout_s;
        enum agent_state to;
        enum agent_action_kind act;
        int64_t acw_until;
        int64_t ready_since;
    } modes[] = {
        {AGENT_MODE_MANUAL_IN, 30, AGENT_NOT_READY, AGENT_EMIT_NOT_READY, 0, 0},
        {AGENT_MODE_AUTO_IN, 30, AGENT_READY, AGENT_EMIT_READY, 0, NOW + 5000},
        {AGENT_MODE_ACW, 30, AGENT_ACW, AGENT_EMIT_NOT_READY, NOW + 35000, 0},
        {AGENT_MODE_ACW, -1, AGENT_ACW, AGENT_EMIT_NOT_READY, 0, 0},
    };

    for (int drain = 0; drain < 3; drain++) {
        for (size_t i = 0; i < LEN(from); i++) {
            for (size_t m = 0; m < LEN(modes); m++) {
                struct agent a;
                struct agent_input in = input(AGENT_IN_CALL_ENDED);
                struct agent_actions out;
                int rc;

                make_agent(&a, from[i], modes[m].mode, modes[m].acw_timeout_s);
                put_on_call(&a, CALL);
                if (drain == 1)
                    in.site_draining = true;
                if (drain == 2)
                    a.drain = true;
                in.now_ms = NOW + 5000;
                rc = agent_fsm_step(&a, &in, &out);
                cr_expect_eq(rc, 1);
                cr_expect_eq(a.state, modes[m].to, "%s, %s/%d, drain %d: state %s",
                             agent_state_name(from[i]), agent_work_mode_name(modes[m].mode),
                             modes[m].acw_timeout_s, drain, agent_state_name(a.state));
                cr_expect_eq(a.acw_until_ms, modes[m].acw_until, "%s, %s/%d, drain %d",
                             agent_state_name(from[i]), agent_work_mode_name(modes[m].mode),
                             modes[m].acw_timeout_s, drain);
                cr_expect_eq(a.ready_since_ms, modes[m].ready_since, "%s, %s/%d, drain %d",
                             agent_state_name(from[i]), agent_work_mode_name(modes[m].mode),
                             modes[m].acw_timeout_s, drain);
                cr_expect_str_eq(a.call_id, "");
                expect_one(&a, &out, modes[m].act, AGENT_CAUSE_AFTER_CALL);
            }
        }
    }
}

/* ---- ACW timer --------------------------------------------------------- */

Test(agent_fsm, timed_acw_expires_to_ready_with_cause_acw_timeout)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_ACW_TIMER);
    struct agent_actions out;

    make_agent(&a, AGENT_ACW, AGENT_MODE_ACW, 30);
    a.acw_until_ms = NOW + 30000;
    in.now_ms = NOW + 30000;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_READY);
    cr_expect_eq(a.ready_since_ms, NOW + 30000);
    cr_expect_eq(a.acw_until_ms, 0);
    cr_expect_eq(agent_fsm_due(&a), 0);
    expect_one(&a, &out, AGENT_EMIT_READY, AGENT_CAUSE_ACW_TIMEOUT);
}

Test(agent_fsm, late_acw_timer_is_ready_since_the_time_it_fired)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_ACW_TIMER);
    struct agent_actions out;

    make_agent(&a, AGENT_ACW, AGENT_MODE_ACW, 30);
    a.acw_until_ms = NOW + 30000;
    in.now_ms = NOW + 42000;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_READY);
    cr_expect_eq(a.ready_since_ms, NOW + 42000);
}

Test(agent_fsm, acw_timer_before_acw_until_is_ignored)
{
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_ACW_TIMER);
    struct agent_actions out;

    make_agent(&a, AGENT_ACW, AGENT_MODE_ACW, 30);
    a.acw_until_ms = NOW + 30000;
    copy_agent(&before, &a);
    in.now_ms = NOW + 29999;
    expect_ignored(&before, &a, agent_fsm_step(&a, &in, &out), &out);
}

Test(agent_fsm, stale_acw_timer_outside_acw_or_for_unknown_agent_is_ignored)
{
    static const enum agent_state from[] = {AGENT_LOGGED_OUT, AGENT_READY, AGENT_NOT_READY};
    struct agent a, before;
    struct agent_input in = input(AGENT_IN_ACW_TIMER);
    struct agent_actions out;

    for (size_t i = 0; i < LEN(from); i++) {
        make_agent(&a, from[i], AGENT_MODE_ACW, 30);
        a.acw_until_ms = NOW - 1000; /* a leftover must not matter */
        copy_agent(&before, &a);
        expect_ignored(&before, &a, agent_fsm_step(&a, &in, &out), &out);
    }
    make_agent(&a, AGENT_ACW, AGENT_MODE_ACW, 30);
    copy_agent(&before, &a);
    in.known = false;
    expect_ignored(&before, &a, agent_fsm_step(&a, &in, &out), &out);
}

Test(agent_fsm, due_is_acw_until_in_acw_and_zero_otherwise)
{
    struct agent a;

    make_agent(&a, AGENT_ACW, AGENT_MODE_ACW, 30);
    a.acw_until_ms = NOW + 123;
    cr_expect_eq(agent_fsm_due(&a), NOW + 123);
    a.acw_until_ms = 0;
    cr_expect_eq(agent_fsm_due(&a), 0);
    make_agent(&a, AGENT_READY, AGENT_MODE_ACW, 30);
    a.acw_until_ms = NOW + 123;
    cr_expect_eq(agent_fsm_due(&a), 0);
    memset(&a, 0, sizeof(a));
    cr_expect_eq(agent_fsm_due(&a), 0);
}

Test(agent_fsm, step_resets_the_previous_actions_and_note)
{
    struct agent a;
    struct agent_input in = input(AGENT_IN_CALL_OFFERED);
    struct agent_actions out;

    memset(&out, 0, sizeof(out));
    out.n = 2;
    out.note = "left over";
    make_agent(&a, AGENT_READY, AGENT_MODE_MANUAL_IN, 30);
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(out.n, 0);
    cr_expect_null(out.note);
}

/* ---- a day in the life ------------------------------------------------- */

Test(agent_fsm, day_in_the_life_login_ready_call_acw_timer_logout)
{
    const int64_t t0 = NOW;
    const int64_t end = t0 + 600000;
    struct agent a, before;
    struct agent_input in;
    struct agent_actions out;

    memset(&a, 0, sizeof(a));

    in = input(AGENT_IN_LOGIN);
    in.known = false;
    in.now_ms = t0;
    in.work_mode = AGENT_MODE_ACW;
    in.acw_timeout_s = 30;
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_assert_eq(a.state, AGENT_NOT_READY);
    expect_one(&a, &out, AGENT_EMIT_LOGIN, AGENT_CAUSE_NONE);

    in = input(AGENT_IN_READY);
    in.now_ms = t0 + 1000;
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_assert_eq(a.state, AGENT_READY);
    cr_expect_eq(a.ready_since_ms, t0 + 1000);
    expect_one(&a, &out, AGENT_EMIT_READY, AGENT_CAUSE_AGENT_REQUEST);

    in = input(AGENT_IN_CALL_OFFERED);
    in.now_ms = t0 + 60000;
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_str_eq(a.call_id, CALL);
    cr_expect_eq(a.state, AGENT_READY);
    cr_expect_eq(out.n, 0);

    in = input(AGENT_IN_CALL_ESTABLISHED);
    in.now_ms = t0 + 65000;
    cr_expect_eq(agent_fsm_step(&a, &in, &out), 0);
    cr_expect_str_eq(a.call_id, CALL);
    cr_expect_eq(out.n, 0);

    in = input(AGENT_IN_CALL_ENDED);
    in.now_ms = end;
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_assert_eq(a.state, AGENT_ACW);
    cr_expect_str_eq(a.call_id, "");
    cr_expect_eq(a.acw_until_ms, end + 30000);
    cr_expect_eq(agent_fsm_due(&a), end + 30000);
    expect_one(&a, &out, AGENT_EMIT_NOT_READY, AGENT_CAUSE_AFTER_CALL);

    in = input(AGENT_IN_ACW_TIMER);
    in.now_ms = end + 29999;
    copy_agent(&before, &a);
    expect_ignored(&before, &a, agent_fsm_step(&a, &in, &out), &out);

    in.now_ms = end + 30000;
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_assert_eq(a.state, AGENT_READY);
    cr_expect_eq(a.ready_since_ms, end + 30000);
    cr_expect_eq(agent_fsm_due(&a), 0);
    expect_one(&a, &out, AGENT_EMIT_READY, AGENT_CAUSE_ACW_TIMEOUT);

    in = input(AGENT_IN_LOGOUT);
    in.now_ms = end + 3600000;
    cr_assert_eq(agent_fsm_step(&a, &in, &out), 1);
    cr_expect_eq(a.state, AGENT_LOGGED_OUT);
    cr_expect_eq(a.ready_since_ms, 0);
    expect_one(&a, &out, AGENT_EMIT_LOGOUT, AGENT_CAUSE_NONE);
    cr_expect_eq(out.a[0].reason, AGENT_REASON_NONE);
}

/* ---- names -------------------------------------------------------------- */

Test(agent_fsm, state_and_work_mode_names_are_the_schema_strings_and_round_trip)
{
    static const char *const states[] = {"logged_out", "ready", "not_ready", "acw"};
    static const char *const modes[] = {"manual_in", "auto_in", "acw"};

    cr_assert_eq(LEN(states), AGENT_STATE_COUNT);
    cr_assert_eq(LEN(modes), AGENT_MODE_COUNT);
    for (int i = 0; i < AGENT_STATE_COUNT; i++) {
        cr_expect_str_eq(agent_state_name((enum agent_state)i), states[i]);
        cr_expect_eq(agent_state_parse(states[i]), i, "%s", states[i]);
    }
    for (int i = 0; i < AGENT_MODE_COUNT; i++) {
        cr_expect_str_eq(agent_work_mode_name((enum agent_work_mode)i), modes[i]);
        cr_expect_eq(agent_work_mode_parse(modes[i]), i, "%s", modes[i]);
    }
}

Test(agent_fsm, parse_returns_minus_one_for_unknown_or_null_names)
{
    static const char *const bad[] = {"", "READY", "Ready", "ready ", "busy", "acw_timeout"};

    for (size_t i = 0; i < LEN(bad); i++) {
        cr_expect_eq(agent_state_parse(bad[i]), -1, "state \"%s\"", bad[i]);
        cr_expect_eq(agent_work_mode_parse(bad[i]), -1, "work mode \"%s\"", bad[i]);
    }
    cr_expect_eq(agent_state_parse(NULL), -1);
    cr_expect_eq(agent_work_mode_parse(NULL), -1);
    cr_expect_eq(agent_state_parse("auto_in"), -1);
    cr_expect_eq(agent_work_mode_parse("not_ready"), -1);
}

Test(agent_fsm, error_cause_and_reason_names_are_the_schema_strings)
{
    static const struct {
        enum agent_error e;
        const char *name;
    } errors[] = {
        {AGENT_ERR_GRACEFUL_SHUTDOWN, "graceful_shutdown"},
        {AGENT_ERR_UNKNOWN_AGENT, "unknown_agent"},
        {AGENT_ERR_UNKNOWN_SITE, "unknown_site"},
        {AGENT_ERR_NOT_LOGGED_IN, "not_logged_in"},
        {AGENT_ERR_ALREADY_LOGGED_IN, "already_logged_in"},
        {AGENT_ERR_DN_IN_USE, "dn_in_use"},
        {AGENT_ERR_INVALID_STATE, "invalid_state"},
        {AGENT_ERR_ON_CALL, "on_call"},
        {AGENT_ERR_NOT_REGISTERED, "not_registered"},
        {AGENT_ERR_ORIGINATE_FAILED, "originate_failed"},
        {AGENT_ERR_INTERNAL_ERROR, "internal_error"},
    };
    static const struct {
        enum agent_cause c;
        const char *name;
    } causes[] = {
        {AGENT_CAUSE_AGENT_REQUEST, "agent_request"}, {AGENT_CAUSE_ACW_TIMEOUT, "acw_timeout"},
        {AGENT_CAUSE_ACW_COMPLETE, "acw_complete"},   {AGENT_CAUSE_AFTER_CALL, "after_call"},
        {AGENT_CAUSE_NO_ANSWER, "no_answer"},
    };

    cr_assert_eq(LEN(errors), AGENT_ERR_COUNT - 1);
    for (size_t i = 0; i < LEN(errors); i++)
        cr_expect_str_eq(agent_error_name(errors[i].e), errors[i].name);
    cr_assert_eq(LEN(causes), AGENT_CAUSE_COUNT - 1);
    for (size_t i = 0; i < LEN(causes); i++)
        cr_expect_str_eq(agent_cause_name(causes[i].c), causes[i].name);
    cr_expect_str_eq(agent_reason_name(AGENT_REASON_GRACEFUL_SHUTDOWN_LOGOUT),
                     "graceful_shutdown_logout");
    cr_expect_str_eq(agent_reason_name(AGENT_REASON_GRACEFUL_MIGRATION_LOGIN),
                     "graceful_migration_login");
}

Test(agent_fsm, every_input_and_action_kind_has_a_name)
{
    for (int i = 0; i < AGENT_IN_COUNT; i++) {
        const char *n = agent_input_name((enum agent_input_kind)i);

        cr_expect(n != NULL && n[0] != '\0', "input %d", i);
    }
    for (int i = 0; i < AGENT_ACTION_COUNT; i++) {
        const char *n = agent_action_name((enum agent_action_kind)i);

        cr_expect(n != NULL && n[0] != '\0', "action %d", i);
    }
}
