/* call_fsm.c - see call_fsm.h. */
#include "call_fsm.h"

#include <string.h>

static const char *const phase_names[CALL_PHASE_COUNT] = {"routing", "queued", "ringing",
                                                          "answered", "ended"};
static const char *const step_names[CALL_OUT_STEP_COUNT] = {"phone", "dest", "connect", "done"};
static const char *const cause_names[CALL_END_CAUSE_COUNT] = {
    "none",      "caller_hangup", "agent_hangup", "busy",
    "no_answer", "cancelled",     "failed",       "drain_deadline"};
static const char *const input_names[CALL_IN_COUNT] = {"route_done", "answer",     "cancel",
                                                       "bye",        "bye_answer", "terminated",
                                                       "cut",        "queued",     "ring_timeout"};
static const char *const action_names[CALL_ACTION_COUNT] = {
    "respond",      "relay_answer", "invite_agent", "invite_dest", "connect_phone",
    "ack_dest",     "bye",          "cancel",       "park",        "report_established",
    "report_ended", "remember_bye", "count_cut",    "free",        "dequeue",
    "requeue"};

const char *call_phase_name(enum call_phase p)
{
    return p < CALL_PHASE_COUNT ? phase_names[p] : "?";
}

const char *call_out_step_name(enum call_out_step s)
{
    return s < CALL_OUT_STEP_COUNT ? step_names[s] : "?";
}

const char *call_end_cause_name(enum call_end_cause c)
{
    return c < CALL_END_CAUSE_COUNT ? cause_names[c] : "?";
}

const char *call_input_name(enum call_input_kind k)
{
    return k < CALL_IN_COUNT ? input_names[k] : "?";
}

const char *call_action_name(enum call_action_kind k)
{
    return k < CALL_ACTION_COUNT ? action_names[k] : "?";
}

enum call_end_cause call_fsm_failure_cause(int status)
{
    if (status == 486 || status == 600 || status == 603)
        return CALL_END_BUSY;
    if (status == 408 || status == 480 || status == 404)
        return CALL_END_NO_ANSWER;
    if (status == 487)
        return CALL_END_CANCELLED;
    return CALL_END_FAILED;
}

void call_fsm_init_inbound(struct call_state *st)
{
    memset(st, 0, sizeof(*st));
    st->phase = CALL_ROUTING;
    st->step = CALL_OUT_DONE;
    st->leg[CALL_LEG_A].open = true;
}

void call_fsm_init_outbound(struct call_state *st)
{
    memset(st, 0, sizeof(*st));
    st->phase = CALL_RINGING;
    st->outbound = true;
    st->step = CALL_OUT_PHONE;
    st->leg[CALL_LEG_B].open = true;
    st->routed = true;
    st->a_final = true;
}

static struct call_action *act(struct call_actions *out, enum call_action_kind kind,
                               enum call_leg_id leg)
{
    static struct call_action overflow;
    struct call_action *a = out->n < CALL_MAX_ACTIONS ? &out->a[out->n++] : &overflow;

    memset(a, 0, sizeof(*a));
    a->kind = kind;
    a->leg = leg;
    return a;
}

/* The one place the phase changes: every move is reported for the log. */
static void set_phase(struct call_state *st, enum call_phase to, struct call_actions *out)
{
    if (st->phase == to)
        return;
    if (out->n_moves < CALL_PHASE_COUNT) {
        out->moves[out->n_moves].from = st->phase;
        out->moves[out->n_moves].to = to;
        out->n_moves++;
    }
    st->phase = to;
}

/* The call is over for the caller and the agent: call.ended once, if owed. */
static void end_call(struct call_state *st, enum call_end_cause cause, int status,
                     struct call_actions *out)
{
    if (st->phase == CALL_ENDED)
        return;
    set_phase(st, CALL_ENDED, out);
    st->cause = cause;
    st->end_status = status;
    if (st->routed && !st->ended_sent) {
        st->ended_sent = true;
        act(out, CALL_DO_REPORT_ENDED, CALL_LEG_A)->status = status;
    }
}

/* The edge starts b, and both legs of an outbound call; only an inbound
 * call's a is the far end's INVITE. */
static bool leg_is_uac(const struct call_state *st, enum call_leg_id leg)
{
    return leg == CALL_LEG_B || st->outbound;
}

/* BYE on leg, unless it has no dialog or its BYE is out already; the
 * action, to add to, or NULL. */
static struct call_action *bye(struct call_state *st, enum call_leg_id leg, const char *reason,
                               struct call_actions *out)
{
    struct call_leg_state *l = &st->leg[leg];
    struct call_action *a;

    if (!l->open || l->bye_pending)
        return NULL;
    l->bye_pending = true;
    a = act(out, CALL_DO_BYE, leg);
    a->reason = reason;
    return a;
}

/* Ends what leg has: BYE once answered, CANCEL while the edge's INVITE
 * rings, else the final answer status to the caller's INVITE. */
static void end_leg(struct call_state *st, enum call_leg_id leg, const char *reason, int status,
                    struct call_actions *out)
{
    struct call_leg_state *l = &st->leg[leg];
    struct call_action *a;

    if (!l->open)
        return;
    if (l->answered) {
        bye(st, leg, reason, out);
    } else if (leg_is_uac(st, leg)) {
        act(out, CALL_DO_CANCEL, leg);
    } else if (!st->a_final) {
        st->a_final = true;
        a = act(out, CALL_DO_RESPOND, leg);
        a->status = status;
        a->reason = reason;
    }
}

/* b was the agent's nailed-up dialog: it leaves the call, parked again or
 * (park false) as it is. */
static void park(struct call_state *st, bool again, struct call_actions *out)
{
    struct call_action *a = act(out, CALL_DO_PARK, CALL_LEG_B);

    a->park = again;
    a->bye_pending = st->leg[CALL_LEG_B].bye_pending;
    st->leg[CALL_LEG_B].nailed = false;
    st->leg[CALL_LEG_B].open = false;
    st->leg[CALL_LEG_B].bye_pending = false;
}

/* The other side of a leg that ended: parked if it is the agent's nailed-up
 * dialog, else ended. */
static void end_other(struct call_state *st, enum call_leg_id leg, struct call_actions *out)
{
    enum call_leg_id o = leg == CALL_LEG_A ? CALL_LEG_B : CALL_LEG_A;

    if (o == CALL_LEG_B && st->leg[o].nailed && st->leg[o].answered)
        park(st, true, out);
    else
        end_leg(st, o, NULL, 480, out);
}

/* Asks the bus thread, once, to take a waiting call out of the queue. */
static void dequeue(struct call_state *st, struct call_actions *out)
{
    if (st->dequeue_sent)
        return;
    st->dequeue_sent = true;
    act(out, CALL_DO_DEQUEUE, CALL_LEG_A);
}

static void on_route_done(struct call_state *st, const struct call_input *in,
                          struct call_actions *out)
{
    struct call_action *a;
    bool answered_already = st->a_final;

    if (st->phase != CALL_ROUTING && st->phase != CALL_QUEUED) {
        out->note = "not routing";
        return;
    }
    set_phase(st, CALL_RINGING, out);
    st->dequeue_sent = false;
    if (in->status != 0) {
        st->a_final = true;
        if (st->leg[CALL_LEG_A].open && !answered_already)
            act(out, CALL_DO_RESPOND, CALL_LEG_A)->status = in->status;
        end_call(st, CALL_END_FAILED, in->status, out);
        return;
    }
    st->routed = true;
    if (st->cancelled || !st->leg[CALL_LEG_A].open) { /* the caller gave up meanwhile */
        end_call(st, CALL_END_CANCELLED, 487, out);
        return;
    }
    st->leg[CALL_LEG_B].open = true;
    st->leg[CALL_LEG_B].nailed = in->nailed_idle;
    a = act(out, CALL_DO_INVITE_AGENT, CALL_LEG_B);
    a->park = in->nailed_idle;
}

/* No Ready agent: the call waits (issue #16). The caller hears 182 Queued;
 * a caller gone meanwhile is taken out again at once. */
static void on_queued(struct call_state *st, struct call_actions *out)
{
    if (st->phase != CALL_ROUTING) {
        out->note = "queued, but not routing";
        return;
    }
    set_phase(st, CALL_QUEUED, out);
    if (st->cancelled || !st->leg[CALL_LEG_A].open || st->a_final)
        dequeue(st, out);
    else
        act(out, CALL_DO_RESPOND, CALL_LEG_A)->status = 182;
}

/* The agent's phone rang too long: CANCEL it; its 487 sends the call back
 * to the queue (on_agent_answer). */
static void on_ring_timeout(struct call_state *st, struct call_actions *out)
{
    if (st->phase != CALL_RINGING || !st->queue_on || !st->leg[CALL_LEG_B].open ||
        st->leg[CALL_LEG_B].answered || st->ring_timeout) {
        out->note = "ring timeout, but nothing rings";
        return;
    }
    st->ring_timeout = true;
    act(out, CALL_DO_CANCEL, CALL_LEG_B);
}

/* A queue_on call's agent refused or rang out while the caller still
 * waits: this offer ends (call.ended for it frees the agent, cause
 * no_answer after a ring timeout) and the call waits in the queue again. */
static void requeue(struct call_state *st, const struct call_input *in, struct call_actions *out)
{
    st->cause = st->ring_timeout ? CALL_END_NO_ANSWER : call_fsm_failure_cause(in->status);
    st->end_status = in->status;
    if (st->routed && !st->ended_sent) {
        st->ended_sent = true;
        struct call_action *a = act(out, CALL_DO_REPORT_ENDED, CALL_LEG_A);
        a->status = in->status;
        a->reason = call_end_cause_name(st->cause); /* st->cause is reset below */
    }
    if (st->leg[CALL_LEG_B].nailed)
        park(st, false, out); /* a refused re-INVITE leaves it parked */
    memset(&st->leg[CALL_LEG_B], 0, sizeof(st->leg[CALL_LEG_B]));
    st->routed = st->ended_sent = st->ring_timeout = false;
    st->cause = CALL_END_NONE;
    st->end_status = 0;
    set_phase(st, CALL_QUEUED, out);
    act(out, CALL_DO_REQUEUE, CALL_LEG_B);
}

/* The agent's phone answers the edge's INVITE of an inbound call. */
static void on_agent_answer(struct call_state *st, const struct call_input *in,
                            struct call_actions *out)
{
    if (in->status < 101)
        return;
    if (st->phase == CALL_ENDED || !st->leg[CALL_LEG_A].open) {
        /* answered after the caller was gone */
        if (in->status >= 200 && st->leg[CALL_LEG_B].nailed)
            park(st, in->status < 300, out);
        else if (in->status >= 200 && in->status < 300) {
            st->leg[CALL_LEG_B].answered = true;
            bye(st, CALL_LEG_B, NULL, out);
        }
        return;
    }
    if (st->phase != CALL_RINGING) {
        out->note = "an answer outside ringing";
        return;
    }
    if (in->status < 200) {
        act(out, CALL_DO_RELAY_ANSWER, CALL_LEG_A)->status = in->status;
        return;
    }
    st->a_final = true;
    if (in->status < 300) {
        st->leg[CALL_LEG_A].answered = st->leg[CALL_LEG_B].answered = true;
        set_phase(st, CALL_ANSWERED, out);
        act(out, CALL_DO_RELAY_ANSWER, CALL_LEG_A)->status = in->status;
        act(out, CALL_DO_REPORT_ESTABLISHED, CALL_LEG_A);
        return;
    }
    if (st->queue_on && !st->cancelled) {
        st->a_final = false; /* the caller waits on */
        requeue(st, in, out);
        return;
    }
    act(out, CALL_DO_RESPOND, CALL_LEG_A)->status = in->status == 408 ? 480 : in->status;
    end_call(st, call_fsm_failure_cause(in->status), in->status, out);
    if (st->leg[CALL_LEG_B].nailed)
        park(st, false, out); /* a refused re-INVITE leaves it parked */
}

/* The steps of an agent-originated call (call_fsm.h). */
static void on_out_answer(struct call_state *st, const struct call_input *in,
                          struct call_actions *out)
{
    struct call_action *a;

    if (in->status < 200)
        return; /* ringing: the agent is connected already and hears silence */
    if (st->step == CALL_OUT_PHONE && in->leg == CALL_LEG_B) {
        if (in->status >= 300) {
            st->step = CALL_OUT_DONE;
            end_call(st, call_fsm_failure_cause(in->status), in->status, out);
            return;
        }
        st->leg[CALL_LEG_B].answered = true;
        if (st->phase == CALL_ENDED) {
            st->step = CALL_OUT_DONE;
            bye(st, CALL_LEG_B, NULL, out);
            return;
        }
        st->step = CALL_OUT_DEST;
        st->leg[CALL_LEG_A].open = true;
        act(out, CALL_DO_INVITE_DEST, CALL_LEG_A);
        return;
    }
    if (st->step == CALL_OUT_DEST && in->leg == CALL_LEG_A) {
        if (in->status >= 300) {
            struct call_action *b;
            st->step = CALL_OUT_DONE;
            end_call(st, call_fsm_failure_cause(in->status), in->status, out);
            if ((b = bye(st, CALL_LEG_B, NULL, out)) != NULL)
                b->status = in->status; /* the Reason says what the destination answered */
            return;
        }
        st->leg[CALL_LEG_A].answered = true;
        if (st->phase == CALL_ENDED || !st->leg[CALL_LEG_B].open ||
            st->leg[CALL_LEG_B].bye_pending) {
            st->step = CALL_OUT_DONE; /* the agent hung up meanwhile */
            act(out, CALL_DO_ACK_DEST, CALL_LEG_A);
            bye(st, CALL_LEG_A, NULL, out);
            return;
        }
        if (!in->usable_sdp) {
            st->step = CALL_OUT_DONE;
            act(out, CALL_DO_ACK_DEST, CALL_LEG_A);
            end_call(st, CALL_END_FAILED, 0, out);
            bye(st, CALL_LEG_A, "SIP;cause=488;text=\"no usable SDP offer in the 200\"", out);
            bye(st, CALL_LEG_B, NULL, out);
            return;
        }
        st->step = CALL_OUT_CONNECT;
        act(out, CALL_DO_CONNECT_PHONE, CALL_LEG_B);
        return;
    }
    if (st->step == CALL_OUT_CONNECT && in->leg == CALL_LEG_B) {
        st->step = CALL_OUT_DONE;
        if (in->status >= 300 || !in->usable_sdp) {
            act(out, CALL_DO_ACK_DEST, CALL_LEG_A);
            end_call(st, CALL_END_FAILED, in->status >= 300 ? in->status : 0, out);
            bye(st, CALL_LEG_A, "SIP;cause=488;text=\"the agent's phone refused the media\"", out);
            bye(st, CALL_LEG_B, NULL, out);
            return;
        }
        a = act(out, CALL_DO_ACK_DEST, CALL_LEG_A);
        a->with_body = true;
        if (st->phase == CALL_ENDED) { /* cut meanwhile */
            bye(st, CALL_LEG_A, st->cut_reason, out);
            bye(st, CALL_LEG_B, st->cut_reason, out);
            return;
        }
        set_phase(st, CALL_ANSWERED, out);
        act(out, CALL_DO_REPORT_ESTABLISHED, CALL_LEG_A);
        return;
    }
    out->note = "an answer the outbound call does not wait for";
}

static void on_cancel(struct call_state *st, struct call_actions *out)
{
    if (st->phase == CALL_ANSWERED || st->phase == CALL_ENDED) {
        out->note = "CANCEL after the INVITE was answered: no effect";
        return;
    }
    st->a_final = true; /* the transaction layer answered the INVITE 487 */
    if (st->phase == CALL_ROUTING || st->phase == CALL_QUEUED) {
        st->cancelled = true; /* seen when the agent is picked */
        if (st->phase == CALL_QUEUED)
            dequeue(st, out);
        return;
    }
    if (st->leg[CALL_LEG_B].open && !st->leg[CALL_LEG_B].answered)
        act(out, CALL_DO_CANCEL, CALL_LEG_B);
    end_call(st, CALL_END_CANCELLED, 487, out);
}

static void on_bye(struct call_state *st, const struct call_input *in, struct call_actions *out)
{
    if (st->phase == CALL_QUEUED) { /* no dialog yet: as if the caller had CANCELled */
        st->cancelled = true;
        dequeue(st, out);
        return;
    }
    end_call(st, in->leg == CALL_LEG_A ? CALL_END_CALLER_HANGUP : CALL_END_AGENT_HANGUP, 0, out);
    end_other(st, in->leg, out);
}

static void on_bye_answer(struct call_state *st, const struct call_input *in,
                          struct call_actions *out)
{
    if (in->status < 200)
        return;
    st->leg[in->leg].bye_pending = false;
    if (in->status >= 300)
        act(out, CALL_DO_REMEMBER_BYE, in->leg)->status = in->status;
}

static void on_terminated(struct call_state *st, const struct call_input *in,
                          struct call_actions *out)
{
    struct call_leg_state *l = &st->leg[in->leg];

    if (!l->open) {
        out->note = "leg already over";
        return;
    }
    l->open = false;
    l->bye_pending = false;
    if (in->leg == CALL_LEG_B && l->nailed)
        park(st, false, out); /* the agent's standing dialog ended with it */
    if (st->phase == CALL_QUEUED && in->leg == CALL_LEG_A)
        dequeue(st, out); /* the caller is gone: its place in the queue goes too */
    if (st->phase == CALL_RINGING || st->phase == CALL_ANSWERED) {
        end_other(st, in->leg, out);
        end_call(st, in->leg == CALL_LEG_A ? CALL_END_CALLER_HANGUP : CALL_END_FAILED, 0, out);
    }
}

static void on_cut(struct call_state *st, const struct call_input *in, struct call_actions *out)
{
    if (st->phase == CALL_ENDED) {
        out->note = "already ended";
        return;
    }
    st->cut_reason = in->reason;
    if (st->phase == CALL_QUEUED) {
        /* refused now; the call is over once the bus thread has taken it out */
        end_leg(st, CALL_LEG_A, in->reason, 503, out);
        st->cancelled = true;
        dequeue(st, out);
        act(out, CALL_DO_COUNT_CUT, CALL_LEG_A);
        return;
    }
    end_leg(st, CALL_LEG_A, in->reason, 503, out);
    end_leg(st, CALL_LEG_B, in->reason, 503, out);
    act(out, CALL_DO_COUNT_CUT, CALL_LEG_A);
    end_call(st, CALL_END_DRAIN_DEADLINE, 0, out);
}

void call_fsm_step(struct call_state *st, const struct call_input *in, struct call_actions *out)
{
    out->n = 0;
    out->n_moves = 0;
    out->note = NULL;
    switch (in->kind) {
    case CALL_IN_ROUTE_DONE:
        on_route_done(st, in, out);
        break;
    case CALL_IN_ANSWER:
        if (st->outbound && st->step != CALL_OUT_DONE)
            on_out_answer(st, in, out);
        else if (st->outbound)
            out->note = "an answer after the outbound call was set up";
        else if (in->leg == CALL_LEG_B)
            on_agent_answer(st, in, out);
        else
            out->note = "the caller's leg gets no INVITE from the edge";
        break;
    case CALL_IN_CANCEL:
        on_cancel(st, out);
        break;
    case CALL_IN_BYE:
        on_bye(st, in, out);
        break;
    case CALL_IN_BYE_ANSWER:
        on_bye_answer(st, in, out);
        break;
    case CALL_IN_TERMINATED:
        on_terminated(st, in, out);
        break;
    case CALL_IN_CUT:
        on_cut(st, in, out);
        break;
    case CALL_IN_QUEUED:
        on_queued(st, out);
        break;
    case CALL_IN_RING_TIMEOUT:
        on_ring_timeout(st, out);
        break;
    default:
        out->note = "unknown input";
        return;
    }
    if (st->phase != CALL_ROUTING && st->phase != CALL_QUEUED && !st->leg[CALL_LEG_A].open &&
        !st->leg[CALL_LEG_B].open)
        act(out, CALL_DO_FREE, CALL_LEG_A);
}
