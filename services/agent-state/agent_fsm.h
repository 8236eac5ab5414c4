/* agent_fsm.h - the agent state machine of agent-state: pure, no I/O.
 *
 * One agent, one input, a list of actions out. The shell (main.c,
 * agent_db.c, agent_bus.c) loads the agent's row, looks up what the input
 * needs (is the site draining, is the phone registered, ...), calls
 * agent_fsm_step(), then writes the row and the actions' events in one
 * transaction. Time is an input (now_ms), so tests fast-forward ACW.
 *
 * States are agents.state of DESIGN.md §3. Being on a call is not a state of
 * its own: agents.call_id is set from call.offered (or agent.make_call, which
 * reserves the agent) until call.ended / call.rejected of that call, and the
 * state stays what it was. That is how an unanswered call "returns the agent
 * to the state it had before the offer" (schemas/README.md, decision 10).
 *
 *   login ---------------> not_ready (ready for work mode auto_in)
 *   ready / not_ready <--> each other on agent.ready / agent.not_ready
 *   answered call ends --> acw (work mode acw; timed or untimed)
 *                          ready (auto_in), not_ready (manual_in)
 *   acw --(ACW expiry | agent.acw_complete | agent.ready)--> ready
 *   any logged-in state, not on a call --(agent.logout)--> logged_out
 *      graceful_shutdown_logout + workspace + a peer site: at once logged in
 *      again at the peer site (graceful_migration_login)
 *
 * Refusals (an EventError action, nothing changes) are listed with each
 * input in agent_fsm.c; a draining site refuses agent.ready, agent.make_call
 * and agent.login with AGENT_ERR_GRACEFUL_SHUTDOWN.
 */
#ifndef SIPDRAIN_AGENT_FSM_H
#define SIPDRAIN_AGENT_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_ID_SIZE   65  /* 1-64 chars + NUL (schemas: agent_id, site_id, dn) */
#define AGENT_CALL_SIZE 256 /* call_id: 1-255 chars + NUL */

enum agent_state { AGENT_LOGGED_OUT, AGENT_READY, AGENT_NOT_READY, AGENT_ACW, AGENT_STATE_COUNT };

enum agent_work_mode { AGENT_MODE_MANUAL_IN, AGENT_MODE_AUTO_IN, AGENT_MODE_ACW, AGENT_MODE_COUNT };

/* One agents row, as the core sees it. */
struct agent {
    char dn[AGENT_ID_SIZE];
    char site[AGENT_ID_SIZE];
    enum agent_state state;
    enum agent_work_mode work_mode;
    int32_t acw_timeout_s;         /* -1 = untimed ACW (NULL in the table) */
    int64_t acw_until_ms;          /* 0 = no ACW timer running */
    char call_id[AGENT_CALL_SIZE]; /* "" = not on a call */
    bool workspace;
    bool nailed_up;
    int64_t ready_since_ms; /* 0 = not ready */
    bool drain;             /* the orchestrator's drain flag (agents.drain) */
};

enum agent_input_kind {
    AGENT_IN_LOGIN,
    AGENT_IN_LOGOUT,
    AGENT_IN_READY,
    AGENT_IN_NOT_READY,
    AGENT_IN_ACW_COMPLETE,
    AGENT_IN_MAKE_CALL,
    AGENT_IN_CALL_OFFERED,
    AGENT_IN_CALL_ESTABLISHED,
    AGENT_IN_CALL_ENDED,
    AGENT_IN_CALL_REJECTED,
    AGENT_IN_ACW_TIMER, /* the shell found acw_until <= now */
    AGENT_IN_COUNT
};

/* EventError.reason (the schema's enum, in its order). */
enum agent_error {
    AGENT_ERR_NONE,
    AGENT_ERR_GRACEFUL_SHUTDOWN,
    AGENT_ERR_UNKNOWN_AGENT,
    AGENT_ERR_UNKNOWN_SITE,
    AGENT_ERR_NOT_LOGGED_IN,
    AGENT_ERR_ALREADY_LOGGED_IN,
    AGENT_ERR_DN_IN_USE,
    AGENT_ERR_INVALID_STATE,
    AGENT_ERR_ON_CALL,
    AGENT_ERR_NOT_REGISTERED,
    AGENT_ERR_ORIGINATE_FAILED, /* the edge could not start call.originate */
    AGENT_ERR_INTERNAL_ERROR,   /* the edge's database or bus failed */
    AGENT_ERR_COUNT
};

/* What happened plus what the shell looked up for it. Strings are borrowed
 * for the duration of the call; fields an input does not use are ignored. */
struct agent_input {
    enum agent_input_kind kind;
    int64_t now_ms;
    bool known; /* the agent has a row; false: *a is all zero (logged out) */
    /* A site drain is in progress for the site concerned: the agent's site,
     * or for AGENT_IN_LOGIN the site named in the command. */
    bool site_draining;

    /* AGENT_IN_LOGIN */
    const char *dn, *site;
    enum agent_work_mode work_mode;
    int32_t acw_timeout_s; /* -1 = untimed */
    bool workspace, nailed_up;
    bool site_known; /* the site is in `sites` */
    /* LOGIN: another agent is logged in on dn. LOGOUT: another agent is
     * logged in on the agent's dn (matters for the peer-site login). */
    bool dn_in_use;

    /* AGENT_IN_LOGOUT */
    bool graceful;         /* reason graceful_shutdown_logout */
    const char *peer_site; /* sites.peer of the agent's site; NULL = none */
    bool peer_draining;    /* a drain is in progress at peer_site */

    /* AGENT_IN_MAKE_CALL */
    bool registered;         /* the agent's dn has a live registration */
    const char *new_call_id; /* the call id agent-state picked */

    /* AGENT_IN_CALL_* */
    const char *call_id;
    bool answered; /* CALL_ENDED */
    /* CALL_ENDED: a route-point call that rang out, was refused or failed
     * at the agent's phone (end_cause no_answer, busy or failed): the edge
     * gave it to the next agent; this one is set NotReady (issue #16). */
    bool not_taken;
    /* CALL_REJECTED of call.originate: why the edge refused it, answered
     * with EventError to the desktop (only agent-state writes agent events). */
    enum agent_error originate_error;
};

enum agent_action_kind {
    AGENT_EMIT_LOGIN,     /* EventAgentLogin */
    AGENT_EMIT_LOGOUT,    /* EventAgentLogout */
    AGENT_EMIT_READY,     /* EventAgentReady */
    AGENT_EMIT_NOT_READY, /* EventAgentNotReady */
    AGENT_EMIT_ERROR,     /* EventError */
    AGENT_ORIGINATE,      /* call.originate to the edge holding the registration */
    AGENT_ACTION_COUNT
};

/* EventAgentReady.cause / EventAgentNotReady.cause */
enum agent_cause {
    AGENT_CAUSE_NONE,
    AGENT_CAUSE_AGENT_REQUEST,
    AGENT_CAUSE_ACW_TIMEOUT,
    AGENT_CAUSE_ACW_COMPLETE,
    AGENT_CAUSE_AFTER_CALL,
    AGENT_CAUSE_NO_ANSWER, /* a route-point call offered to a Ready agent was not taken */
    AGENT_CAUSE_COUNT
};

/* extensions.ReasonCode set by the core itself (a command's own reason token
 * is the shell's business). */
enum agent_reason {
    AGENT_REASON_NONE,
    AGENT_REASON_GRACEFUL_SHUTDOWN_LOGOUT,
    AGENT_REASON_GRACEFUL_MIGRATION_LOGIN,
    AGENT_REASON_COUNT
};

struct agent_action {
    enum agent_action_kind kind;
    enum agent_cause cause;   /* EMIT_READY, EMIT_NOT_READY */
    enum agent_error error;   /* EMIT_ERROR */
    enum agent_reason reason; /* EMIT_LOGIN, EMIT_LOGOUT */
    /* The agent as the event must show it (events are snapshots): a drain
     * logout shows the old site, the peer login right after it the new one.
     * For EMIT_ERROR: the agent, unchanged. */
    struct agent snap;
    char migrated_from[AGENT_ID_SIZE]; /* EMIT_LOGIN with MIGRATION_LOGIN */
};

#define AGENT_MAX_ACTIONS 2

struct agent_actions {
    size_t n;
    struct agent_action a[AGENT_MAX_ACTIONS];
    /* Why an input was ignored (no action, no change), for the log; NULL
     * otherwise. A static string. */
    const char *note;
};

/* Applies in to *a. Returns 1 when *a changed (write it back), 0 when not.
 * out is reset first. Never fails: a refused input yields AGENT_EMIT_ERROR
 * (commands) or nothing plus out->note (call events, stale timers). */
int agent_fsm_step(struct agent *a, const struct agent_input *in, struct agent_actions *out);

/* Next due time of *a's ACW timer in ms, or 0 when none runs. */
int64_t agent_fsm_due(const struct agent *a);

/* Names as in DESIGN.md / schemas (agents.state, work_mode, EventError.reason,
 * EventAgentReady.cause, ...). The parse functions return -1 for an unknown
 * name. */
const char *agent_state_name(enum agent_state s);
const char *agent_work_mode_name(enum agent_work_mode m);
const char *agent_input_name(enum agent_input_kind k);
const char *agent_action_name(enum agent_action_kind k);
const char *agent_cause_name(enum agent_cause c);
const char *agent_error_name(enum agent_error e);
const char *agent_reason_name(enum agent_reason r);
int agent_state_parse(const char *name);
int agent_error_parse(const char *name); /* -1 when unknown */
int agent_work_mode_parse(const char *name);

#endif
