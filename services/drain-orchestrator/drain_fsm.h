/* drain_fsm.h - one drain of a site or an edge: pure, no I/O, time as input.
 *
 * The shell (the orchestrator's main loop) loads what it needs from
 * PostgreSQL several times a second - the edges of the scope with their
 * last edge.status, the agents of the site - and calls drain_fsm_step()
 * with that view and the time. The core decides what to send (edge.drain,
 * edge.shutdown, edge.resume, agent.logout), when the phase changes and when
 * to report; the shell sends it and stores the drain (drains.phase, the
 * logouts sent) in the transaction of the events.
 *
 * Phases (drains.phase, drain_phase in schemas/events):
 *
 *   refusing    edge.drain sent; until every live edge of the scope reports
 *               draining (or later). Edges that report active get edge.drain
 *               again (an edge that appears during the drain, one that missed
 *               the command) at most every DRAIN_RESEND_MS.
 *   wait_calls  calls still up on the scope's edges; agents are logged out by
 *               the rules meanwhile (drain_agent_rule)
 *   wait_agents site drain: no calls left, agents still logged in (timed ACW)
 *   wait_byes   every edge runs its graceful-shutdown-sip-timeout; until each
 *               reports drained (or stopping / stopped)
 *   stopping    edge.shutdown sent to the drained edges; until all stopped
 *   forcing     the deadline passed: the edges BYE what remains themselves
 *               (they know deadline_at from edge.drain); every agent still in
 *               is logged out without waiting for its ACW; then wait_byes
 *   completed / cancelled: terminal
 *
 * An edge whose heartbeat is older than DRAIN_EDGE_GONE_MS is gone (its
 * process died, and its calls with it): it no longer holds the drain back,
 * and it is not counted as stopped.
 *
 * An edge that reports held started again under a hold (its supervisor
 * restarted it: compose's restart policy, a Kubernetes Deployment) and
 * refuses until resumed: it counts as stopped and gets no edge.shutdown,
 * which would only make it exit and start again held.
 */
#ifndef SIPDRAIN_DRAIN_FSM_H
#define SIPDRAIN_DRAIN_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DRAIN_ID_SIZE         37 /* a UUID + NUL */
#define DRAIN_NAME_SIZE       65 /* agent, site, edge ids: 1-64 chars + NUL */
#define DRAIN_EDGES_MAX       64
#define DRAIN_RESEND_MS       2000 /* edge.drain / edge.shutdown again to an edge that ignores it */
#define DRAIN_LOGOUT_RETRY_MS 10000 /* agent.logout again when agent-state did not act */
#define DRAIN_EDGE_GONE_MS    15000 /* no edge.status for this long: the edge is gone */
#define DRAIN_EDGE_LIVE_MS    5000  /* an active edge heard from this recently takes calls */
#define DRAIN_PROGRESS_MIN_MS 200   /* drain.progress at most this often on changes */
#define DRAIN_PROGRESS_MAX_MS 1000  /* and at least this often */

enum drain_phase {
    DRAIN_REFUSING,
    DRAIN_WAIT_CALLS,
    DRAIN_WAIT_AGENTS,
    DRAIN_WAIT_BYES,
    DRAIN_STOPPING,
    DRAIN_FORCING,
    DRAIN_COMPLETED,
    DRAIN_CANCELLED,
    DRAIN_PHASE_COUNT
};

enum drain_scope { DRAIN_SCOPE_SITE, DRAIN_SCOPE_EDGE };

/* edges.state (edge.status.state). */
enum drain_edge_state {
    DRAIN_EDGE_ACTIVE,
    DRAIN_EDGE_DRAINING,
    DRAIN_EDGE_BYE_WAIT,
    DRAIN_EDGE_DRAINED,
    DRAIN_EDGE_STOPPING,
    DRAIN_EDGE_STOPPED,
    DRAIN_EDGE_STATE_COUNT
};

/* agents.state. */
enum drain_agent_state {
    DRAIN_AGENT_LOGGED_OUT,
    DRAIN_AGENT_READY,
    DRAIN_AGENT_NOT_READY,
    DRAIN_AGENT_ACW,
    DRAIN_AGENT_STATE_COUNT
};

/* One edge of the scope as the shell found it (edges row). */
struct drain_edge_view {
    char id[DRAIN_NAME_SIZE];
    enum drain_edge_state state;
    int64_t heartbeat_ms; /* last edge.status */
    uint32_t active_calls, pending_byes, nailed_up;
    uint32_t queued; /* of active_calls, those waiting for an agent (waiting_calls) */
    uint32_t calls_cut, byes_retransmitted; /* the edge's counters (edge.status) */
    bool held; /* started again under the drain's hold (edges.held): as good as stopped */
};

/* One agent of the site (agents row) and what this drain did to it. */
struct drain_agent_view {
    char id[DRAIN_NAME_SIZE];
    enum drain_agent_state state;
    bool on_call;           /* agents.call_id set */
    bool acw_timed;         /* state acw with acw_until set */
    bool workspace;         /* logged in again at the peer site after the logout */
    int64_t logout_sent_ms; /* 0 = this drain sent no agent.logout yet */
};

struct drain_view {
    int64_t now_ms;
    const struct drain_edge_view *edges;
    size_t n_edges;
    const struct drain_agent_view *agents; /* site drain only; NULL / 0 for an edge drain */
    size_t n_agents;
};

/* The drain (drains row) plus what the core remembers between steps. */
struct drain {
    char id[DRAIN_ID_SIZE];
    enum drain_scope scope;
    char site[DRAIN_NAME_SIZE];
    char edge[DRAIN_NAME_SIZE]; /* the edge of an edge drain, "" for a site drain */
    enum drain_phase phase;
    int64_t started_ms;
    int64_t deadline_ms; /* 0 = none */
    int64_t phase_since_ms;
    int64_t phase_ms[DRAIN_PHASE_COUNT]; /* time spent in each phase so far */
    bool forced;
    bool counted; /* calls_at_start / agents_at_start taken (first step) */
    /* The totals drain.progress measures calls_left and agents_logged_in
     * against (its calls_at_start, agents_at_start): what the first step
     * saw, raised whenever a step sees more at once, never lowered. The
     * edges report their calls once a second, so the first look can miss
     * a call answered just before the start (counted at the edge's next
     * report), and an edge takes calls until edge.drain reaches it; a
     * total fixed at the first look then showed calls_left=1/0 (issue
     * #12). So the counts left never exceed their totals. */
    uint32_t calls_at_start, agents_at_start;
    /* not stored: after a restart the commands go out again (edges ignore
     * a repeated edge.drain / edge.shutdown) */
    struct {
        char id[DRAIN_NAME_SIZE];
        int64_t drain_sent_ms, shutdown_sent_ms;
    } sent[DRAIN_EDGES_MAX];
    size_t n_sent;
    int64_t progress_ms;    /* last drain.progress */
    uint64_t progress_hash; /* what it said */
};

/* What one agent needs now (DESIGN.md §4, the logout rules; a drain applies
 * them once every edge of the site refuses new calls, from wait_calls on):
 *   not on a call, not in ACW             -> LOGOUT at once
 *   not on a call, timed ACW              -> WAIT_ACW (agent-state's expiry makes it
 *                                            ready, then LOGOUT)
 *   on a call (any work mode)             -> WAIT_CALL (after it agent-state applies
 *                                            the work mode: ACW, ready or not ready,
 *                                            and the rule is asked again)
 *   untimed ACW, not on a call            -> LOGOUT at once
 *   logged out                            -> DONE
 * forcing (the deadline passed): ACW is not waited for. A logout already
 * sent is WAIT_LOGOUT until agent-state acts (sent again after
 * DRAIN_LOGOUT_RETRY_MS: agent-state answers a repeat with EventError). */
enum drain_agent_verdict {
    DRAIN_AGENT_DONE,
    DRAIN_AGENT_LOGOUT,
    DRAIN_AGENT_WAIT_CALL,
    DRAIN_AGENT_WAIT_ACW,
    DRAIN_AGENT_WAIT_LOGOUT,
    DRAIN_AGENT_VERDICT_COUNT
};

enum drain_agent_verdict drain_agent_rule(const struct drain_agent_view *a, bool forcing,
                                          int64_t now_ms);

enum drain_action_kind {
    DRAIN_DO_EDGE_DRAIN,    /* arg: edge index in the view */
    DRAIN_DO_EDGE_SHUTDOWN, /* arg: edge index */
    DRAIN_DO_EDGE_RESUME,   /* arg: edge index */
    DRAIN_DO_LOGOUT,        /* arg: agent index */
    DRAIN_DO_SAVE,          /* the phase (or forced) changed: store the drain */
    DRAIN_DO_PROGRESS,      /* drain.progress with drain_fsm_counts() */
    DRAIN_DO_COMPLETED,     /* drain.completed; the drain is over */
    DRAIN_DO_CANCELLED,     /* drain.cancelled, agents' drain flags cleared */
};

struct drain_action {
    enum drain_action_kind kind;
    size_t arg;
};

#define DRAIN_ACTIONS_MAX (3 * DRAIN_EDGES_MAX + 4096 + 8)

struct drain_actions {
    struct drain_action a[DRAIN_ACTIONS_MAX];
    size_t n;
    size_t logouts_skipped; /* more agents to log out than fit: next step */
};

/* The figures of drain.progress / drain.completed, from a view. */
struct drain_counts {
    uint32_t edges_total, edges_live, edges_not_stopped, edges_stopped;
    uint32_t calls_left, byes_pending, nailed_up_left, calls_cut, byes_retransmitted;
    uint32_t calls_queued; /* of calls_left, waiting for an agent (issue #16) */
    uint32_t agents_logged_in, agents_in_acw, agents_on_call, agents_logged_out;
    uint32_t agents_migrated;
};

void drain_fsm_init(struct drain *d, const char *id, enum drain_scope scope, const char *site,
                    const char *edge, int64_t started_ms, int64_t deadline_ms);

/* One look at the world: what to send, and the phase. */
void drain_fsm_step(struct drain *d, const struct drain_view *v, struct drain_actions *out);

/* drain.cancel: edge.resume to every edge not stopped, then cancelled. A
 * drain already over is left alone (returns false). */
bool drain_fsm_cancel(struct drain *d, const struct drain_view *v, struct drain_actions *out);

void drain_fsm_counts(const struct drain *d, const struct drain_view *v, struct drain_counts *c);

/* Is this edge still part of the drain (heartbeat recent enough)? */
/* Stopped, or started again held: nothing more to wait for. */
bool drain_edge_stopped(const struct drain_edge_view *e);
bool drain_edge_live(const struct drain_edge_view *e, int64_t now_ms);

const char *drain_phase_name(enum drain_phase p);
int drain_phase_parse(const char *name, enum drain_phase *out);
const char *drain_edge_state_name(enum drain_edge_state s);
int drain_edge_state_parse(const char *name, enum drain_edge_state *out);
const char *drain_agent_verdict_name(enum drain_agent_verdict v);

#endif
