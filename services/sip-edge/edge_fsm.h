/* edge_fsm.h - the drain state machine of one sip-edge: pure, no I/O.
 *
 * DESIGN.md §4, as states (edges.state, edge.status.state):
 *
 *   active --(edge.drain | SIGTERM)--> draining
 *   draining --(no calls and no nailed-up dialogs left)--> bye_wait
 *            graceful-shutdown-sip-timeout runs; unconfirmed BYEs are sent
 *            again in new transactions
 *   bye_wait --(timeout over, or no BYE left unconfirmed)--> drained (site
 *            drain: wait for edge.shutdown) | stopping (edge drain, SIGTERM)
 *   drained --(edge.shutdown)--> stopping --(nua_r_shutdown)--> stopped, exit 0
 *   draining / bye_wait / drained --(edge.resume of that drain)--> active
 *   deadline (deadline_at of the drain): every remaining call is BYE'd on
 *            both legs with Reason, then the same path
 *   a second SIGTERM, or edge.shutdown with force: cut what remains, stop
 *   start-up under a hold (the site or this edge drained, issue #13): the
 *            edge starts in drained, held, with the drain that holds it, and
 *            stays there until edge.resume of that drain
 *
 * The shell (edge_sip.c) feeds inputs with the time, carries out the
 * actions, and arms one timer for edge_fsm_due(). What a new request gets
 * in each state is decided here too (edge_fsm_verdict).
 */
#ifndef SIPDRAIN_EDGE_FSM_H
#define SIPDRAIN_EDGE_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EDGE_DRAIN_ID_SIZE 37 /* a UUID + NUL */

enum edge_state {
    EDGE_ACTIVE,
    EDGE_DRAINING,
    EDGE_BYE_WAIT,
    EDGE_DRAINED,
    EDGE_STOPPING,
    EDGE_STOPPED,
    EDGE_STATE_COUNT
};

/* The edge's own settings (DESIGN.md §5), the defaults of every drain. */
struct edge_config {
    int reject_code;   /* SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE, 300-699 */
    int sip_timeout_s; /* SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT */
    int retry_after_s; /* SIPDRAIN_RETRY_AFTER; 0 = no Retry-After header */
};

/* One drain as edge.drain gives it; -1 = not given (the edge's own value). */
struct edge_drain {
    char drain_id[EDGE_DRAIN_ID_SIZE]; /* "" for SIGTERM's own drain */
    bool site_scope;                   /* false: this edge only (or SIGTERM) */
    int reject_code;
    int sip_timeout_s;
    int retry_after_s;
    int64_t deadline_ms; /* 0 = none */
};

struct edge_fsm {
    enum edge_state state;
    struct edge_config cfg;
    struct edge_drain drain; /* valid unless active */
    bool self_stop;          /* SIGTERM: stop at the end instead of waiting for edge.shutdown */
    bool held;               /* started under a hold; until resumed (edge.status.held) */
    bool deadline_passed;
    int64_t bye_until_ms; /* bye_wait: when graceful-shutdown-sip-timeout ends */
    int sigterms;
};

/* What the shell knows about its calls, given with every input. */
struct edge_load {
    unsigned active_calls;      /* customer calls in progress */
    unsigned nailed_up_dialogs; /* standing agent dialogs still up */
    unsigned pending_byes;      /* BYEs sent and not yet answered */
};

enum edge_input_kind {
    EDGE_IN_DRAIN,         /* edge.drain */
    EDGE_IN_RESUME,        /* edge.resume */
    EDGE_IN_SHUTDOWN,      /* edge.shutdown */
    EDGE_IN_SIGTERM,       /* SIGTERM (or SIGINT) */
    EDGE_IN_LOAD,          /* calls, dialogs or pending BYEs changed */
    EDGE_IN_TICK,          /* the timer for edge_fsm_due() fired */
    EDGE_IN_SHUTDOWN_DONE, /* nua_r_shutdown */
    EDGE_IN_COUNT
};

struct edge_input {
    enum edge_input_kind kind;
    int64_t now_ms;
    struct edge_load load;
    struct edge_drain drain; /* EDGE_IN_DRAIN; drain_id also for RESUME / SHUTDOWN */
    bool force;              /* EDGE_IN_SHUTDOWN */
};

enum edge_action_kind {
    EDGE_DO_END_NAILED_UP, /* BYE (with Reason) every nailed-up dialog without a customer call */
    EDGE_DO_CUT_CALLS,     /* BYE both legs of every call (deadline / forced stop) */
    EDGE_DO_RETRANSMIT_BYES_STOP, /* give up on unconfirmed BYEs */
    EDGE_DO_SHUTDOWN,             /* nua_shutdown() */
    EDGE_DO_EXIT,                 /* stopped: leave the loop, exit 0 */
    EDGE_DO_EMIT_STATUS,          /* the state changed: edge.status now */
    EDGE_ACTION_COUNT
};

#define EDGE_MAX_ACTIONS 6

struct edge_actions {
    size_t n;
    enum edge_action_kind a[EDGE_MAX_ACTIONS];
    /* Every state entered during the step, in order (one step may pass
     * through several, e.g. draining -> bye_wait -> drained with no calls):
     * edge.status reports each phase (DESIGN.md §4). */
    size_t n_passed;
    enum edge_state passed[EDGE_STATE_COUNT];
    const char *note; /* why an input changed nothing, for the log; NULL otherwise */
};

void edge_fsm_init(struct edge_fsm *st, const struct edge_config *cfg);
/* The edge starts while hold (a drain of its site or of itself, in progress
 * or over) holds it: drained and held, refusing what a drained edge refuses,
 * until edge.resume of hold's drain_id. A fresh process has no calls, so
 * nothing is left to drain. */
void edge_fsm_init_held(struct edge_fsm *st, const struct edge_config *cfg,
                        const struct edge_drain *hold);
/* Applies in; returns 1 when the state changed, 0 when not. */
int edge_fsm_step(struct edge_fsm *st, const struct edge_input *in, struct edge_actions *out);
/* When the shell must deliver EDGE_IN_TICK next (absolute ms), 0 = never. */
int64_t edge_fsm_due(const struct edge_fsm *st);

/* What a new request gets in the current state. */
enum edge_verdict_kind { EDGE_ACCEPT, EDGE_REJECT, EDGE_REDIRECT };
struct edge_verdict {
    enum edge_verdict_kind kind;
    int status;        /* EDGE_REJECT / EDGE_REDIRECT: the SIP status (302 for a redirect) */
    int retry_after_s; /* 0 = no Retry-After */
};
/* A new INVITE (no To tag): the drain's reject_code, 300-302 as a redirect. */
struct edge_verdict edge_fsm_invite(const struct edge_fsm *st);
/* OPTIONS: 200 while active, 503 otherwise (load balancers take the edge out). */
struct edge_verdict edge_fsm_options(const struct edge_fsm *st);
/* REGISTER and call.originate: refused (503) unless active. */
struct edge_verdict edge_fsm_register(const struct edge_fsm *st);

/* Whether unconfirmed BYEs are being sent again now (bye_wait). */
bool edge_fsm_retransmitting(const struct edge_fsm *st);

const char *edge_state_name(enum edge_state s);
const char *edge_input_name(enum edge_input_kind k);
const char *edge_action_name(enum edge_action_kind k);

#endif
