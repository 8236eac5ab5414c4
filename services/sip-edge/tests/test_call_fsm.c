/* test_call_fsm - the life of one call (call_fsm.h), no I/O: every phase of
 * an inbound call against every input, row for row, then the steps of an
 * agent-originated call and the paths that free a call. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

#include "call_fsm.h"

#define A CALL_LEG_A
#define B CALL_LEG_B

/* A call in phase p, as it is when it gets there the usual way:
 *   routing:  the caller's INVITE, the agent being picked;
 *   queued:   a route-point call waiting in the site's queue (182 sent);
 *   ringing:  the agent's phone INVITEd (not nailed-up);
 *   answered: both legs answered, call.established written;
 *   ended:    the caller's BYE came (its dialog closes next), the agent's
 *             BYE is out. */
static void in_phase(struct call_state *st, enum call_phase p)
{
    call_fsm_init_inbound(st);
    if (p == CALL_ROUTING)
        return;
    if (p == CALL_QUEUED) { /* a route-point call waiting for an agent (182 sent) */
        st->queue_on = true;
        st->phase = CALL_QUEUED;
        return;
    }
    st->phase = CALL_RINGING;
    st->routed = true;
    st->leg[B].open = true;
    if (p == CALL_RINGING)
        return;
    st->phase = CALL_ANSWERED;
    st->a_final = true;
    st->leg[A].answered = st->leg[B].answered = true;
    if (p == CALL_ANSWERED)
        return;
    st->phase = CALL_ENDED;
    st->ended_sent = true;
    st->cause = CALL_END_CALLER_HANGUP;
    st->leg[B].bye_pending = true;
}

/* One row: a call in `phase` gets `input` (leg, status); the actions are
 * `want` (kind:leg[:status], space separated) and it ends in `after`. */
struct row {
    enum call_phase phase;
    enum call_input_kind input;
    enum call_leg_id leg;
    int status;
    char want[96]; /* inline: a pointer would not survive Criterion's test process */
    enum call_phase after;
};

/* The actions as text: "kind:leg" ("a"/"b"), with ":status" when it has one. */
static void actions_text(const struct call_actions *out, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < out->n && len < size; i++) {
        const struct call_action *a = &out->a[i];
        len += (size_t)snprintf(buf + len, size - len, "%s%s:%s", i ? " " : "",
                                call_action_name(a->kind), a->leg == A ? "a" : "b");
        if (a->status != 0 && len < size)
            len += (size_t)snprintf(buf + len, size - len, ":%d", a->status);
    }
}

/* Every phase x every input (inbound). */
static struct row rows[] = {
    /* routing: the agent is being picked */
    {CALL_ROUTING, CALL_IN_ROUTE_DONE, A, 0, "invite_agent:b", CALL_RINGING},
    {CALL_ROUTING, CALL_IN_ANSWER, B, 200, "", CALL_ROUTING},
    {CALL_ROUTING, CALL_IN_CANCEL, A, 0, "", CALL_ROUTING},
    {CALL_ROUTING, CALL_IN_BYE, A, 0, "", CALL_ENDED},
    {CALL_ROUTING, CALL_IN_BYE_ANSWER, A, 408, "remember_bye:a:408", CALL_ROUTING},
    {CALL_ROUTING, CALL_IN_TERMINATED, A, 0, "", CALL_ROUTING},
    {CALL_ROUTING, CALL_IN_CUT, A, 0, "respond:a:503 count_cut:a", CALL_ENDED},
    {CALL_ROUTING, CALL_IN_QUEUED, A, 0, "respond:a:182", CALL_QUEUED},
    {CALL_ROUTING, CALL_IN_RING_TIMEOUT, B, 0, "", CALL_ROUTING},
    /* queued: waiting for an agent; never freed before the bus thread answers */
    {CALL_QUEUED, CALL_IN_ROUTE_DONE, A, 0, "invite_agent:b", CALL_RINGING},
    {CALL_QUEUED, CALL_IN_ANSWER, B, 200, "", CALL_QUEUED},
    {CALL_QUEUED, CALL_IN_CANCEL, A, 0, "dequeue:a", CALL_QUEUED},
    {CALL_QUEUED, CALL_IN_BYE, A, 0, "dequeue:a", CALL_QUEUED},
    {CALL_QUEUED, CALL_IN_BYE_ANSWER, A, 408, "remember_bye:a:408", CALL_QUEUED},
    {CALL_QUEUED, CALL_IN_TERMINATED, A, 0, "dequeue:a", CALL_QUEUED},
    {CALL_QUEUED, CALL_IN_CUT, A, 0, "respond:a:503 dequeue:a count_cut:a", CALL_QUEUED},
    {CALL_QUEUED, CALL_IN_QUEUED, A, 0, "", CALL_QUEUED},
    {CALL_QUEUED, CALL_IN_RING_TIMEOUT, B, 0, "", CALL_QUEUED},
    /* ringing: the agent's phone is INVITEd */
    {CALL_RINGING, CALL_IN_ROUTE_DONE, A, 0, "", CALL_RINGING},
    {CALL_RINGING, CALL_IN_ANSWER, B, 200, "relay_answer:a:200 report_established:a",
     CALL_ANSWERED},
    {CALL_RINGING, CALL_IN_CANCEL, A, 0, "cancel:b report_ended:a:487", CALL_ENDED},
    {CALL_RINGING, CALL_IN_BYE, A, 0, "report_ended:a cancel:b", CALL_ENDED},
    {CALL_RINGING, CALL_IN_BYE_ANSWER, B, 408, "remember_bye:b:408", CALL_RINGING},
    {CALL_RINGING, CALL_IN_TERMINATED, B, 0, "respond:a:480 report_ended:a", CALL_ENDED},
    {CALL_RINGING, CALL_IN_CUT, A, 0, "respond:a:503 cancel:b count_cut:a report_ended:a",
     CALL_ENDED},
    {CALL_RINGING, CALL_IN_QUEUED, A, 0, "", CALL_RINGING},
    {CALL_RINGING, CALL_IN_RING_TIMEOUT, B, 0, "", CALL_RINGING}, /* not queue_on */
    /* answered: both legs up */
    {CALL_ANSWERED, CALL_IN_ROUTE_DONE, A, 0, "", CALL_ANSWERED},
    {CALL_ANSWERED, CALL_IN_ANSWER, B, 200, "", CALL_ANSWERED},
    {CALL_ANSWERED, CALL_IN_CANCEL, A, 0, "", CALL_ANSWERED},
    {CALL_ANSWERED, CALL_IN_BYE, A, 0, "report_ended:a bye:b", CALL_ENDED},
    {CALL_ANSWERED, CALL_IN_BYE_ANSWER, B, 408, "remember_bye:b:408", CALL_ANSWERED},
    {CALL_ANSWERED, CALL_IN_TERMINATED, A, 0, "bye:b report_ended:a", CALL_ENDED},
    {CALL_ANSWERED, CALL_IN_CUT, A, 0, "bye:a bye:b count_cut:a report_ended:a", CALL_ENDED},
    {CALL_ANSWERED, CALL_IN_QUEUED, A, 0, "", CALL_ANSWERED},
    {CALL_ANSWERED, CALL_IN_RING_TIMEOUT, B, 0, "", CALL_ANSWERED},
    /* ended: the caller hung up, the agent's BYE is out */
    {CALL_ENDED, CALL_IN_ROUTE_DONE, A, 0, "", CALL_ENDED},
    {CALL_ENDED, CALL_IN_ANSWER, B, 200, "", CALL_ENDED},
    {CALL_ENDED, CALL_IN_CANCEL, A, 0, "", CALL_ENDED},
    {CALL_ENDED, CALL_IN_BYE, B, 0, "bye:a", CALL_ENDED},
    {CALL_ENDED, CALL_IN_BYE_ANSWER, B, 408, "remember_bye:b:408", CALL_ENDED},
    {CALL_ENDED, CALL_IN_TERMINATED, A, 0, "", CALL_ENDED},
    {CALL_ENDED, CALL_IN_CUT, A, 0, "", CALL_ENDED},
    {CALL_ENDED, CALL_IN_QUEUED, A, 0, "", CALL_ENDED},
    {CALL_ENDED, CALL_IN_RING_TIMEOUT, B, 0, "", CALL_ENDED},
};

ParameterizedTestParameters(call_fsm, every_phase_gets_every_input)
{
    return cr_make_param_array(struct row, rows, sizeof(rows) / sizeof(rows[0]));
}

ParameterizedTest(struct row *r, call_fsm, every_phase_gets_every_input)
{
    struct call_state st;
    struct call_input in = {.kind = r->input, .leg = r->leg, .status = r->status, .reason = "r"};
    struct call_actions out;
    char got[512];

    in_phase(&st, r->phase);
    call_fsm_step(&st, &in, &out);
    actions_text(&out, got, sizeof(got));
    cr_expect_str_eq(got, r->want, "%s + %s: actions", call_phase_name(r->phase),
                     call_input_name(r->input));
    cr_expect_eq(st.phase, r->after, "%s + %s: phase %s, want %s", call_phase_name(r->phase),
                 call_input_name(r->input), call_phase_name(st.phase), call_phase_name(r->after));
    cr_expect_eq(out.n_moves, r->phase != r->after ? 1u : 0u,
                 "%s + %s: every phase change is reported once", call_phase_name(r->phase),
                 call_input_name(r->input));
}

static void step(struct call_state *st, enum call_input_kind kind, enum call_leg_id leg, int status,
                 char *got, size_t size)
{
    struct call_input in = {.kind = kind, .leg = leg, .status = status, .usable_sdp = true};
    struct call_actions out;

    call_fsm_step(st, &in, &out);
    actions_text(&out, got, size);
}

Test(call_fsm, no_agent_answers_the_caller_with_the_refusal_and_reports_nothing)
{
    struct call_state st;
    char got[256];

    call_fsm_init_inbound(&st);
    step(&st, CALL_IN_ROUTE_DONE, A, 480, got, sizeof(got));
    cr_expect_str_eq(got, "respond:a:480"); /* never routed: no call.ended owed */
    cr_expect_eq(st.phase, CALL_ENDED);
    cr_expect_eq(st.cause, CALL_END_FAILED);
    step(&st, CALL_IN_TERMINATED, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "free:a");
}

Test(call_fsm, a_cancel_while_routing_ends_the_call_once_the_agent_is_picked)
{
    struct call_state st;
    char got[256];

    call_fsm_init_inbound(&st);
    step(&st, CALL_IN_CANCEL, A, 0, got, sizeof(got));
    step(&st, CALL_IN_TERMINATED, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "", "routing: not freed before the bus thread answers");
    step(&st, CALL_IN_ROUTE_DONE, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "report_ended:a:487 free:a");
    cr_expect_eq(st.cause, CALL_END_CANCELLED);
}

Test(call_fsm, the_agent_refusing_relays_480_for_a_timeout_and_frees_when_the_legs_close)
{
    struct call_state st;
    char got[256];

    in_phase(&st, CALL_RINGING);
    step(&st, CALL_IN_ANSWER, B, 180, got, sizeof(got));
    cr_expect_str_eq(got, "relay_answer:a:180");
    step(&st, CALL_IN_ANSWER, B, 408, got, sizeof(got));
    cr_expect_str_eq(got, "respond:a:480 report_ended:a:408");
    cr_expect_eq(st.cause, CALL_END_NO_ANSWER);
    step(&st, CALL_IN_TERMINATED, B, 0, got, sizeof(got));
    cr_expect_str_eq(got, "");
    step(&st, CALL_IN_TERMINATED, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "free:a");
}

Test(call_fsm, a_nailed_up_agent_is_parked_again_when_the_caller_hangs_up)
{
    struct call_state st;
    struct call_input in = {.kind = CALL_IN_ROUTE_DONE, .nailed_idle = true};
    struct call_actions out;
    char got[256];

    call_fsm_init_inbound(&st);
    call_fsm_step(&st, &in, &out);
    cr_assert_eq(out.n, 1);
    cr_expect_eq(out.a[0].kind, CALL_DO_INVITE_AGENT);
    cr_expect(out.a[0].park, "through the nailed-up dialog");
    step(&st, CALL_IN_ANSWER, B, 200, got, sizeof(got));
    step(&st, CALL_IN_BYE, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "report_ended:a park:b");
    cr_expect(!st.leg[B].open, "the standing dialog left the call");
    step(&st, CALL_IN_TERMINATED, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "free:a");
}

Test(call_fsm, a_bye_not_confirmed_is_remembered_and_the_call_freed_once_both_legs_close)
{
    struct call_state st;
    char got[256];

    in_phase(&st, CALL_ANSWERED);
    step(&st, CALL_IN_BYE, A, 0, got, sizeof(got));
    step(&st, CALL_IN_TERMINATED, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "");
    step(&st, CALL_IN_BYE_ANSWER, B, 408, got, sizeof(got));
    cr_expect_str_eq(got, "remember_bye:b:408");
    cr_expect(!st.leg[B].bye_pending);
    step(&st, CALL_IN_TERMINATED, B, 0, got, sizeof(got));
    cr_expect_str_eq(got, "free:a");
}

/* --- queueing (issue #16) ------------------------------------------------ */

/* A route-point call with queueing on, waiting (182 sent). */
static void queued_call(struct call_state *st)
{
    char got[256];

    call_fsm_init_inbound(st);
    st->queue_on = true;
    step(st, CALL_IN_QUEUED, A, 0, got, sizeof(got));
    cr_assert_str_eq(got, "respond:a:182");
}

Test(call_fsm, a_queued_call_rings_out_goes_back_to_the_queue_then_is_answered)
{
    struct call_state st;
    struct call_input in = {.kind = CALL_IN_ANSWER, .leg = B, .status = 487};
    struct call_actions out;
    char got[256];

    queued_call(&st);
    step(&st, CALL_IN_ROUTE_DONE, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "invite_agent:b");
    step(&st, CALL_IN_RING_TIMEOUT, B, 0, got, sizeof(got));
    cr_expect_str_eq(got, "cancel:b");
    step(&st, CALL_IN_RING_TIMEOUT, B, 0, got, sizeof(got));
    cr_expect_str_eq(got, "", "one CANCEL");
    call_fsm_step(&st, &in, &out);
    actions_text(&out, got, sizeof(got));
    cr_expect_str_eq(got, "report_ended:a:487 requeue:b", "the offer ends, the call waits again");
    cr_expect_str_eq(out.a[0].reason, "no_answer", "the offer rang out: no_answer, not cancelled");
    cr_expect_eq(st.phase, CALL_QUEUED);
    cr_expect(!st.routed && !st.ended_sent && !st.a_final, "a new offer owes its own events");
    cr_expect(!st.leg[B].open);
    step(&st, CALL_IN_TERMINATED, B, 0, got, sizeof(got));
    cr_expect_str_eq(got, "", "the old phone leg's end changes nothing");
    step(&st, CALL_IN_ROUTE_DONE, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "invite_agent:b", "the next agent");
    step(&st, CALL_IN_ANSWER, B, 200, got, sizeof(got));
    cr_expect_str_eq(got, "relay_answer:a:200 report_established:a");
    cr_expect_eq(st.phase, CALL_ANSWERED);
}

Test(call_fsm, a_queued_call_refused_by_the_agent_goes_back_to_the_queue_saying_busy)
{
    struct call_state st;
    struct call_input in = {.kind = CALL_IN_ANSWER, .leg = B, .status = 486};
    struct call_actions out;
    char got[256];

    queued_call(&st);
    step(&st, CALL_IN_ROUTE_DONE, A, 0, got, sizeof(got));
    call_fsm_step(&st, &in, &out);
    actions_text(&out, got, sizeof(got));
    cr_expect_str_eq(got, "report_ended:a:486 requeue:b");
    cr_expect_str_eq(out.a[0].reason, "busy");
}

Test(call_fsm, a_call_without_queueing_still_ends_when_the_agent_refuses)
{
    struct call_state st;
    char got[256];

    in_phase(&st, CALL_RINGING);
    step(&st, CALL_IN_RING_TIMEOUT, B, 0, got, sizeof(got));
    cr_expect_str_eq(got, "", "no ring timeout without queueing");
    step(&st, CALL_IN_ANSWER, B, 486, got, sizeof(got));
    cr_expect_str_eq(got, "respond:a:486 report_ended:a:486");
    cr_expect_eq(st.phase, CALL_ENDED);
}

Test(call_fsm, a_cancel_while_queued_dequeues_once_and_frees_on_the_bus_answer)
{
    struct call_state st;
    char got[256];

    queued_call(&st);
    step(&st, CALL_IN_CANCEL, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "dequeue:a");
    step(&st, CALL_IN_TERMINATED, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "", "asked once; not freed before the bus thread answers");
    step(&st, CALL_IN_ROUTE_DONE, A, 487, got, sizeof(got));
    cr_expect_str_eq(got, "free:a", "the caller had its 487 already: no second answer");
    cr_expect_eq(st.phase, CALL_ENDED);
}

Test(call_fsm, an_agent_picked_as_the_caller_cancels_is_released)
{
    struct call_state st;
    char got[256];

    queued_call(&st);
    step(&st, CALL_IN_CANCEL, A, 0, got, sizeof(got));
    step(&st, CALL_IN_TERMINATED, A, 0, got, sizeof(got));
    step(&st, CALL_IN_ROUTE_DONE, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "report_ended:a:487 free:a", "call.ended frees the agent");
    cr_expect_eq(st.cause, CALL_END_CANCELLED);
}

Test(call_fsm, a_queue_timeout_answers_the_caller_480)
{
    struct call_state st;
    char got[256];

    queued_call(&st);
    step(&st, CALL_IN_ROUTE_DONE, A, 480, got, sizeof(got));
    cr_expect_str_eq(got, "respond:a:480", "never offered: no call.ended owed");
    cr_expect_eq(st.phase, CALL_ENDED);
    step(&st, CALL_IN_TERMINATED, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "free:a");
}

Test(call_fsm, the_caller_cancelling_while_a_queued_call_rings_ends_it)
{
    struct call_state st;
    char got[256];

    queued_call(&st);
    step(&st, CALL_IN_ROUTE_DONE, A, 0, got, sizeof(got));
    step(&st, CALL_IN_CANCEL, A, 0, got, sizeof(got));
    cr_expect_str_eq(got, "cancel:b report_ended:a:487");
    step(&st, CALL_IN_ANSWER, B, 487, got, sizeof(got));
    cr_expect_str_eq(got, "", "no requeue once the caller is gone");
    cr_expect_eq(st.phase, CALL_ENDED);
}

/* Outbound (RFC 3725 Flow IV): each step against the answers it waits for. */
Test(call_fsm, an_outbound_call_goes_phone_destination_connect_answered)
{
    struct call_state st;
    char got[256];

    call_fsm_init_outbound(&st);
    step(&st, CALL_IN_ANSWER, B, 180, got, sizeof(got));
    cr_expect_str_eq(got, "");
    step(&st, CALL_IN_ANSWER, B, 200, got, sizeof(got));
    cr_expect_str_eq(got, "invite_dest:a");
    cr_expect_eq(st.step, CALL_OUT_DEST);
    step(&st, CALL_IN_ANSWER, A, 200, got, sizeof(got));
    cr_expect_str_eq(got, "connect_phone:b");
    cr_expect_eq(st.step, CALL_OUT_CONNECT);
    step(&st, CALL_IN_ANSWER, B, 200, got, sizeof(got));
    cr_expect_str_eq(got, "ack_dest:a report_established:a");
    cr_expect_eq(st.phase, CALL_ANSWERED);
    cr_expect_eq(st.step, CALL_OUT_DONE);
    step(&st, CALL_IN_BYE, B, 0, got, sizeof(got));
    cr_expect_str_eq(got, "report_ended:a bye:a");
    cr_expect_eq(st.cause, CALL_END_AGENT_HANGUP);
}

Test(call_fsm, a_busy_destination_ends_the_call_and_byes_the_phone_saying_why)
{
    struct call_state st;
    char got[256];

    call_fsm_init_outbound(&st);
    step(&st, CALL_IN_ANSWER, B, 200, got, sizeof(got));
    step(&st, CALL_IN_ANSWER, A, 486, got, sizeof(got));
    cr_expect_str_eq(got, "report_ended:a:486 bye:b:486");
    cr_expect_eq(st.cause, CALL_END_BUSY);
}

Test(call_fsm, a_destination_without_usable_sdp_is_acked_and_both_legs_byed)
{
    struct call_state st;
    struct call_input in = {.kind = CALL_IN_ANSWER, .leg = A, .status = 200, .usable_sdp = false};
    struct call_actions out;
    char got[256];

    call_fsm_init_outbound(&st);
    step(&st, CALL_IN_ANSWER, B, 200, got, sizeof(got));
    call_fsm_step(&st, &in, &out);
    actions_text(&out, got, sizeof(got));
    cr_expect_str_eq(got, "ack_dest:a report_ended:a bye:a bye:b");
    cr_expect_eq(st.cause, CALL_END_FAILED);
}

Test(call_fsm, the_phone_not_answering_ends_an_outbound_call_before_the_destination_is_called)
{
    struct call_state st;
    char got[256];

    call_fsm_init_outbound(&st);
    step(&st, CALL_IN_ANSWER, B, 480, got, sizeof(got));
    cr_expect_str_eq(got, "report_ended:a:480");
    step(&st, CALL_IN_TERMINATED, B, 0, got, sizeof(got));
    cr_expect_str_eq(got, "free:a");
}

Test(call_fsm, a_cut_while_the_destination_rings_cancels_it_and_byes_the_phone)
{
    struct call_state st;
    struct call_input cut = {.kind = CALL_IN_CUT, .reason = "deadline"};
    struct call_actions out;
    char got[256];

    call_fsm_init_outbound(&st);
    step(&st, CALL_IN_ANSWER, B, 200, got, sizeof(got));
    call_fsm_step(&st, &cut, &out);
    actions_text(&out, got, sizeof(got));
    cr_expect_str_eq(got, "cancel:a bye:b count_cut:a report_ended:a");
    cr_expect_str_eq(out.a[1].reason, "deadline");
}

Test(call_fsm, failure_causes_and_names)
{
    cr_expect_eq(call_fsm_failure_cause(486), CALL_END_BUSY);
    cr_expect_eq(call_fsm_failure_cause(603), CALL_END_BUSY);
    cr_expect_eq(call_fsm_failure_cause(408), CALL_END_NO_ANSWER);
    cr_expect_eq(call_fsm_failure_cause(487), CALL_END_CANCELLED);
    cr_expect_eq(call_fsm_failure_cause(500), CALL_END_FAILED);
    for (int p = 0; p < CALL_PHASE_COUNT; p++)
        cr_expect_str_neq(call_phase_name((enum call_phase)p), "?");
    for (int k = 0; k < CALL_IN_COUNT; k++)
        cr_expect_str_neq(call_input_name((enum call_input_kind)k), "?");
    for (int k = 0; k < CALL_ACTION_COUNT; k++)
        cr_expect_str_neq(call_action_name((enum call_action_kind)k), "?");
    for (int c = 0; c < CALL_END_CAUSE_COUNT; c++)
        cr_expect_str_neq(call_end_cause_name((enum call_end_cause)c), "?");
    cr_expect_str_eq(call_end_cause_name(CALL_END_DRAIN_DEADLINE), "drain_deadline");
}
