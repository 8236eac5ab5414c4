/* call_fsm.h - the life of one call at the edge: pure, no I/O.
 *
 * A call has two legs: a = the caller's dialog (a gateway's INVITE; for an
 * agent-originated call, the destination's), b = the agent's phone (a new
 * INVITE, or a re-INVITE through the agent's nailed-up dialog). Phases:
 *
 *   routing --(route done: an agent)--> ringing --(2xx on b)--> answered
 *   routing --(route done: none, status)--> ended (the caller gets status)
 *   routing --(queued: no Ready agent)--> queued --(route done)--> as routing
 *   ringing --(b refuses or rings out, queue_on)--> queued (issue #16)
 *   ringing --(b refuses, CANCEL, a leg ends)--> ended
 *   answered --(BYE on a leg, a leg ends, cut)--> ended
 *
 * An agent-originated call starts ringing with the phone's INVITE (RFC 3725
 * Flow IV, edge_originate.c) and goes through its steps: phone answers ->
 * destination INVITEd without SDP -> destination answers with its offer ->
 * phone re-INVITEd with it -> phone answers (its answer goes in the ACK to
 * the destination) -> answered.
 *
 * The shell (edge_call.c, edge_originate.c) feeds inputs, carries out the
 * actions in order, and logs every transition the step reports. It keeps
 * what is not a decision: handles, SDP bodies, headers, the events' data.
 */
#ifndef SIPDRAIN_CALL_FSM_H
#define SIPDRAIN_CALL_FSM_H

#include <stdbool.h>
#include <stddef.h>

/* queued: a route-point call waits in the site's queue (waiting_calls) for
 * a Ready agent; the caller has had 182 Queued. Like routing, it waits for
 * the bus thread's answer (an agent, or a refusal), which always comes:
 * the call is never freed before it. */
enum call_phase {
    CALL_ROUTING,
    CALL_QUEUED,
    CALL_RINGING,
    CALL_ANSWERED,
    CALL_ENDED,
    CALL_PHASE_COUNT
};

/* Where an agent-originated call is (RFC 3725 Flow IV); inbound: done. */
enum call_out_step {
    CALL_OUT_PHONE,   /* waiting for the phone's answer to the INVITE without media */
    CALL_OUT_DEST,    /* waiting for the destination's answer to the INVITE without SDP */
    CALL_OUT_CONNECT, /* waiting for the phone's answer to the re-INVITE with the offer */
    CALL_OUT_DONE,    /* connected or over: ordinary relaying */
    CALL_OUT_STEP_COUNT
};

enum call_leg_id { CALL_LEG_A, CALL_LEG_B, CALL_LEG_COUNT };

/* Why a call ended (calls.end_cause, call.ended's end_cause). */
enum call_end_cause {
    CALL_END_NONE,
    CALL_END_CALLER_HANGUP,
    CALL_END_AGENT_HANGUP,
    CALL_END_BUSY,
    CALL_END_NO_ANSWER,
    CALL_END_CANCELLED,
    CALL_END_FAILED,
    CALL_END_DRAIN_DEADLINE,
    CALL_END_CAUSE_COUNT
};

struct call_leg_state {
    bool open;        /* has a dialog (or a transaction setting one up) */
    bool answered;    /* a 2xx went through on this leg's INVITE */
    bool bye_pending; /* the edge's BYE waits for its answer */
    bool nailed;      /* b: the agent's nailed-up dialog carries the call */
};

struct call_state {
    enum call_phase phase;
    bool outbound;
    enum call_out_step step;
    struct call_leg_state leg[CALL_LEG_COUNT];
    bool routed;     /* call.offered is written: call.ended is owed */
    bool ended_sent; /* call.ended is written */
    bool a_final;    /* the caller's INVITE has had its final answer */
    bool cancelled;  /* the caller's CANCEL came while the agent was being picked */
    /* A route-point call with queueing on (SIPDRAIN_QUEUE_MAX_WAIT > 0): it
     * may wait for an agent, and an agent who refuses it or lets it ring out
     * (ring timeout) does not end it: it goes back to the queue. */
    bool queue_on;
    bool dequeue_sent; /* the bus thread was asked to take it out of the queue */
    bool ring_timeout; /* the edge CANCELled b because it rang too long */
    enum call_end_cause cause;
    int end_status;         /* the SIP status that ended it (unanswered), else 0 */
    const char *cut_reason; /* CUT's reason, for the BYEs of a set-up it interrupted */
};

enum call_input_kind {
    CALL_IN_ROUTE_DONE,   /* the agent is picked (status 0) or not (status: the refusal) */
    CALL_IN_ANSWER,       /* leg: an answer (status) to the edge's INVITE that sets the call up */
    CALL_IN_CANCEL,       /* the caller's CANCEL */
    CALL_IN_BYE,          /* leg: a BYE from the far end */
    CALL_IN_BYE_ANSWER,   /* leg: the answer (status; 408 on a timeout) to the edge's BYE */
    CALL_IN_TERMINATED,   /* leg: its dialog is over without a BYE (its INVITE failed, ...) */
    CALL_IN_CUT,          /* a drain deadline or a forced stop: end it now */
    CALL_IN_QUEUED,       /* no Ready agent: the call waits in the site's queue */
    CALL_IN_RING_TIMEOUT, /* b has rung for the ring timeout without an answer */
    CALL_IN_COUNT
};

struct call_input {
    enum call_input_kind kind;
    enum call_leg_id leg;
    int status;
    bool nailed_idle;   /* ROUTE_DONE: the agent has an idle nailed-up dialog here */
    bool usable_sdp;    /* ANSWER (outbound): the answer carries a usable SDP */
    const char *reason; /* CUT: the Reason header for the BYEs */
};

enum call_action_kind {
    CALL_DO_RESPOND,       /* answer the caller's INVITE with status (reason: its Reason) */
    CALL_DO_RELAY_ANSWER,  /* answer the caller's INVITE with b's answer (status, SDP) */
    CALL_DO_INVITE_AGENT,  /* INVITE b with the caller's offer (nailed: re-INVITE through it) */
    CALL_DO_INVITE_DEST,   /* outbound: INVITE the destination (a), no SDP */
    CALL_DO_CONNECT_PHONE, /* outbound: re-INVITE the phone (b) with the destination's offer */
    CALL_DO_ACK_DEST,      /* outbound: ACK a's 2xx (with_body: b's answer in it) */
    CALL_DO_BYE,           /* BYE leg (reason: its Reason, may be NULL; status: the
                             * destination's refusal, for an outbound call's phone) */
    CALL_DO_CANCEL,        /* CANCEL the edge's INVITE on leg */
    CALL_DO_PARK,          /* b was the nailed-up dialog: park it again (park) or leave it */
    CALL_DO_REPORT_ESTABLISHED, /* call.established */
    CALL_DO_REPORT_ENDED,       /* call.ended with cause and end_status (or, when reason
                                 * is set, with the cause named there and status: an
                                 * offer of a call that goes back to the queue) */
    CALL_DO_REMEMBER_BYE,       /* leg's BYE was not confirmed: keep it for the BYE wait */
    CALL_DO_COUNT_CUT,          /* the call was cut (edge.status calls_cut) */
    CALL_DO_FREE,               /* neither leg has a dialog left: free the call */
    CALL_DO_DEQUEUE,            /* ask the bus thread to take the call out of the queue (it answers
                      * with a route done: a refusal, or the agent it had picked) */
    CALL_DO_REQUEUE,            /* b is over (its handle goes): the call waits in the queue again */
    CALL_ACTION_COUNT
};

struct call_action {
    enum call_action_kind kind;
    enum call_leg_id leg;
    int status;
    const char *reason;
    bool park;        /* INVITE_AGENT: through the nailed-up dialog; PARK: park it again */
    bool bye_pending; /* PARK: the edge's BYE is out on the nailed-up dialog */
    bool with_body;   /* ACK_DEST */
};

#define CALL_MAX_ACTIONS 8

struct call_actions {
    size_t n;
    struct call_action a[CALL_MAX_ACTIONS];
    /* The phase changes of the step, in order, for the log. */
    size_t n_moves;
    struct {
        enum call_phase from, to;
    } moves[CALL_PHASE_COUNT];
    const char *note; /* why an input changed nothing, for the log; NULL otherwise */
};

/* An inbound call: routing, the caller's leg open. */
void call_fsm_init_inbound(struct call_state *st);
/* An agent-originated call: ringing, step phone, the phone's INVITE out
 * (leg b open), call.offered written, no INVITE of anyone's to answer. */
void call_fsm_init_outbound(struct call_state *st);
/* Applies in; the actions to carry out, in order, go to out. */
void call_fsm_step(struct call_state *st, const struct call_input *in, struct call_actions *out);

/* The end cause of an unanswered INVITE's final status. */
enum call_end_cause call_fsm_failure_cause(int status);

const char *call_phase_name(enum call_phase p);
const char *call_out_step_name(enum call_out_step s);
const char *call_end_cause_name(enum call_end_cause c);
const char *call_input_name(enum call_input_kind k);
const char *call_action_name(enum call_action_kind k);

#endif
