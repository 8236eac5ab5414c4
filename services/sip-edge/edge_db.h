/* edge_db.h - sip-edge's rows in PostgreSQL (registrations, edges). Runs on
 * the bus thread only; each call is one statement in the caller's
 * transaction (or its own). 0 or -1 with err. */
#ifndef SIPDRAIN_EDGE_DB_H
#define SIPDRAIN_EDGE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sipdrain/err.h"
#include "sipdrain/pg.h"

/* REGISTER: dn -> contact at this edge for expires_s seconds; 0 removes it.
 * A dn keeps at most max_contacts live contacts: storing one more removes
 * the oldest (a phone that restarted on another port replaces itself). */
int edge_db_register(struct sd_pg *pg, const char *edge_id, const char *dn, const char *contact,
                     int expires_s, int max_contacts, struct sd_err *err) SD_MUST_CHECK;

/* Deletes the registrations that have expired; *deleted says how many. */
int edge_db_registrations_expire(struct sd_pg *pg, long *deleted, struct sd_err *err) SD_MUST_CHECK;

/* The HA1 of dn in realm for algorithm ("MD5", "SHA-256"); "" when dn has
 * no credentials there. */
int edge_db_credentials(struct sd_pg *pg, const char *dn, const char *realm, const char *algorithm,
                        char *ha1, size_t size, struct sd_err *err) SD_MUST_CHECK;

/* What an edges row says besides its ids (edge.status). */
struct edge_db_status {
    const char *state;
    long active_calls, pending_byes, nailed_up_dialogs, calls_cut, byes_retransmitted;
    bool held;
};

/* The edges row: state, counts and heartbeat time (now). */
int edge_db_heartbeat(struct sd_pg *pg, const char *edge_id, const char *site,
                      const struct edge_db_status *st, struct sd_err *err) SD_MUST_CHECK;

/* The drain that holds this edge at start-up: a drain of the edge itself
 * (edges.drained_by) before one of its site (sites.drained_by), whether
 * still in progress or over; *found false when neither holds it. Fills
 * hold's id, scope and options (-1 where the drain gave none). */
struct edge_drain;
int edge_db_hold(struct sd_pg *pg, const char *edge_id, const char *site, struct edge_drain *hold,
                 bool *found, struct sd_err *err) SD_MUST_CHECK;

/* The live Contact of dn registered at this edge ("" when none). */
int edge_db_contact(struct sd_pg *pg, const char *edge_id, const char *dn, char *contact,
                    size_t size, struct sd_err *err) SD_MUST_CHECK;

/* The agent logged in with nailed_up on dn ("" when none). */
int edge_db_nailed_agent(struct sd_pg *pg, const char *dn, char *agent_id, size_t size,
                         struct sd_err *err) SD_MUST_CHECK;

/* Routing a new inbound call (inside the caller's transaction). */
struct edge_route {
    /* in */
    const char *call_id, *dn, *site, *edge_id;
    bool route_point;  /* dn is a route point: the longest-idle Ready agent of site */
    bool behind_queue; /* route point: no agent while calls wait at the site (issue #16) */
    /* out */
    char call_id_used[256]; /* call_id, or call_id~edge~ms when a row of that id exists
                             * (the same SIP call routed again, e.g. after a failover) */
    int status;             /* 0 = routed; else the SIP status to answer (404, 480, 486) */
    const char *reason;     /* call.rejected.reason when status != 0 */
    char agent_id[65], agent_dn[65];
    char contact[512];
};

/* Reserves the agent (agents.call_id, so no other edge picks it: FOR UPDATE
 * SKIP LOCKED for a route point), finds its phone's live registration and
 * inserts the calls row. r->status != 0 says why not; the caller then rolls
 * back (the reservation with it). */
int edge_db_route(struct sd_pg *pg, struct edge_route *r, struct sd_err *err) SD_MUST_CHECK;

/* A call routed again after a failed try: did that try commit after all?
 * (A connection that broke during the COMMIT leaves it unknown.) 1 when its
 * calls row (this edge's, still offered) and its agent's reservation are
 * there: r comes out as edge_db_route left it then; 0 when not; -1 on error. */
int edge_db_routed_before(struct sd_pg *pg, struct edge_route *r, struct sd_err *err) SD_MUST_CHECK;

/* edge_db_route for up to EDGE_ROUTE_BATCH_MAX calls at once (inside the
 * caller's transaction): one statement reserves the agents of the calls to
 * DNs and inserts their calls rows, one more those of the route points
 * (agents paired with calls in order: the first call gets the longest-idle
 * agent). Each r[i] comes out as edge_db_route leaves it, but a refused
 * call has reserved nothing here: the transaction holds the routed ones
 * only, and commits as it is. */
#define EDGE_ROUTE_BATCH_MAX 64
int edge_db_route_batch(struct sd_pg *pg, struct edge_route *r, size_t n,
                        struct sd_err *err) SD_MUST_CHECK;

/* The calls row of a waiting call offered to the agent it was given
 * (r->agent_id, already reserved); r->call_id_used as for edge_db_route. */
int edge_db_call_insert_routed(struct sd_pg *pg, struct edge_route *r,
                               struct sd_err *err) SD_MUST_CHECK;

/* The calls row of a waiting call handed to the peer site (a site drain):
 * no agent (agent_id NULL); r->call_id_used as for edge_db_route. */
int edge_db_call_insert_peer(struct sd_pg *pg, struct edge_route *r,
                             struct sd_err *err) SD_MUST_CHECK;

/* The calls row of a call the edge starts itself (agent-originated:
 * direction "outbound"), state "offered". */
int edge_db_call_insert(struct sd_pg *pg, const char *call_id, const char *edge_id,
                        const char *site, const char *agent_id, const char *direction,
                        struct sd_err *err) SD_MUST_CHECK;

/* The calls row as the call goes on: state "established" (answered_at) or
 * "ended" (ended_at, end_cause). */
int edge_db_call_update(struct sd_pg *pg, const char *call_id, const char *state,
                        const char *end_cause, struct sd_err *err) SD_MUST_CHECK;

/* edge_db_call_update for n calls in one statement; a call_id must not
 * appear twice (one of its updates would be lost). */
int edge_db_call_update_many(struct sd_pg *pg, const char *const *call_ids,
                             const char *const *states, const char *const *end_causes, size_t n,
                             struct sd_err *err) SD_MUST_CHECK;

/* --- the site's queue (waiting_calls, issue #16) ------------------------ */

/* A call waiting at this edge, as the queue's statements return it. */
struct edge_waiting {
    unsigned long token;
    char call_id[256], route_point[65], caller[257], called[257];
    long wait_ms; /* since it came (queued_at) */
    int offers;
};

/* What a new waiting row holds. */
struct edge_wait {
    const char *edge_id, *site, *call_id, *route_point, *caller, *called;
    unsigned long token;
    int64_t queued_at_ms; /* when the INVITE came (wall clock): the queue's order */
    int max_wait_s;       /* deadline = queued_at + max_wait_s */
    int offers;
};

/* The call waits (in the caller's transaction): a waiting_calls row, unless
 * max_calls > 0 and the site has that many live waiting calls already
 * (*full; nothing written). A site's live waiting calls are those within
 * their deadline at an edge that is alive (heartbeat within 5 s). */
int edge_db_queue(struct sd_pg *pg, const struct edge_wait *w, int max_calls, bool *full,
                  struct sd_err *err) SD_MUST_CHECK;

/* Takes this edge's calls past their deadline that no agent was given to
 * out (at most max, into out; *n of them), in the caller's transaction. */
int edge_db_queue_expire(struct sd_pg *pg, const char *edge_id, struct edge_waiting *out,
                         size_t max, size_t *n, struct sd_err *err) SD_MUST_CHECK;

/* Takes this edge's waiting call of token out (the caller is gone, or the
 * call goes to the peer site); an agent given to it is released. *found
 * false when it was not waiting (offered or expired already). */
int edge_db_dequeue(struct sd_pg *pg, const char *edge_id, unsigned long token,
                    struct edge_waiting *w, bool *found, struct sd_err *err) SD_MUST_CHECK;

/* Every row of this edge (its start: the callers it held are gone), and
 * of edges silent for a minute, at this edge's site; agents given to them
 * are released. *n: the rows. */
int edge_db_queue_clear(struct sd_pg *pg, const char *edge_id, const char *site, long *n,
                        struct sd_err *err) SD_MUST_CHECK;

/* Gives the site's oldest live waiting calls, not given yet, the
 * longest-idle Ready agents whose phones are registered, pair by pair (at
 * most max pairs), whichever edge holds the calls: each agent is reserved
 * (agents.call_id) and the row marked (agent_id, given_at). One such
 * transaction at a time per site (a transaction-level advisory lock; when
 * another edge holds it, *given is 0 and nothing is done: that edge does
 * the work). First releases what was given to calls of edges silent for 5
 * s (dead: their rows will never be taken). Its own transaction. */
int edge_db_queue_give(struct sd_pg *pg, const char *site, int max, long *given,
                       struct sd_err *err) SD_MUST_CHECK;

/* A call of this edge given an agent, as edge_db_queue_take returns it. */
struct edge_given {
    struct edge_waiting w;
    char agent_id[65], agent_dn[65], contact[512]; /* contact "": no live registration */
};

/* Takes this edge's rows that were given an agent out (at most max, into
 * out; *n of them), in the caller's transaction. */
int edge_db_queue_take(struct sd_pg *pg, const char *edge_id, struct edge_given *out, size_t max,
                       size_t *n, struct sd_err *err) SD_MUST_CHECK;

/* The site's live waiting calls and how long (ms) its oldest has waited
 * (0 when none). */
int edge_db_queue_stats(struct sd_pg *pg, const char *site, long *calls, long *oldest_ms,
                        struct sd_err *err) SD_MUST_CHECK;

#endif
