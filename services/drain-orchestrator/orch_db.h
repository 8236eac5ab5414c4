/* orch_db.h - drain-orchestrator's rows in PostgreSQL: drains, drain_agents,
 * and what it reads of edges, agents and sites. Each call is one statement
 * in the caller's transaction (or its own); 0 or -1 with err. */
#ifndef SIPDRAIN_ORCH_DB_H
#define SIPDRAIN_ORCH_DB_H

#include <stdbool.h>
#include <stddef.h>

#include "drain_fsm.h"
#include "sipdrain/err.h"
#include "sipdrain/pg.h"

/* The one active instance holds this session-level advisory lock. */
int orch_db_try_lock(struct sd_pg *pg, bool *got, struct sd_err *err) SD_MUST_CHECK;

/* A new active instance takes over the outbox rows an earlier active one
 * (owner "drain-orchestrator/...") left unpublished when it died: its
 * commands go out now, not after the outbox's minute for orphaned rows.
 * *n = rows taken. */
int orch_db_adopt_outbox(struct sd_pg *pg, const char *owner, int *n,
                         struct sd_err *err) SD_MUST_CHECK;

/* The drains not ended yet (at most max ids). Returns how many, or -1. */
int orch_db_open_drains(struct sd_pg *pg, char ids[][DRAIN_ID_SIZE], int max,
                        struct sd_err *err) SD_MUST_CHECK;

/* A drains row: the core's state and the options edges get. */
struct orch_drain {
    struct drain fsm;
    char request_id[DRAIN_ID_SIZE];
    int reject_code, sip_timeout_s, retry_after_s, deadline_s; /* -1 = not given */
    char requested_by[129], reason[257];
    enum drain_phase cancelled_in; /* the phase a drain.cancel found it in */
};

/* Loads drain id (0 with *found false when there is none). */
int orch_db_drain_load(struct sd_pg *pg, const char *id, struct orch_drain *d, bool *found,
                       struct sd_err *err) SD_MUST_CHECK;
/* Stores phase, forced, time per phase and the counts at start; a terminal
 * phase ends the row (ended_at, result) and clears the site's drain flags. */
int orch_db_drain_save(struct sd_pg *pg, const struct orch_drain *d,
                       struct sd_err *err) SD_MUST_CHECK;

/* The drain open on (scope, target), if any. */
int orch_db_open_drain_of(struct sd_pg *pg, const char *scope, const char *target, char *id,
                          bool *found, struct sd_err *err) SD_MUST_CHECK;
/* Site facts for drain.start: does it exist; its peer ("" none); is a site
 * drain of the peer open. */
int orch_db_site(struct sd_pg *pg, const char *site, bool *exists, char *peer, size_t peer_size,
                 bool *peer_draining, struct sd_err *err) SD_MUST_CHECK;
/* The site of edge ("" when the edge is unknown). */
int orch_db_edge_site(struct sd_pg *pg, const char *edge, char *site, size_t size,
                      struct sd_err *err) SD_MUST_CHECK;
/* How many edges of site take calls now, edge except ("" none): state
 * active in a heartbeat of the last DRAIN_EDGE_LIVE_MS, and neither the
 * edge nor its site held by a drain (a drain holds its target from its
 * start, before the edges have heard of it). The peer rule counts them. */
int orch_db_edges_taking_calls(struct sd_pg *pg, const char *site, const char *except, int *n,
                               struct sd_err *err) SD_MUST_CHECK;
/* Inserts the drains row (phase refusing) and, for a site drain, sets the
 * agents' drain flag (no new calls). started_ms / deadline: from the row. */
int orch_db_drain_insert(struct sd_pg *pg, struct orch_drain *d, struct sd_err *err) SD_MUST_CHECK;

/* The edges of the drain's scope seen since shortly before it started. */
int orch_db_edges(struct sd_pg *pg, const struct drain *d, struct drain_edge_view *out, size_t max,
                  size_t *n, struct sd_err *err) SD_MUST_CHECK;
/* The site's agents logged in, and those this drain logged out (a
 * workspace agent logged in again at the peer site counts as logged out). */
int orch_db_agents(struct sd_pg *pg, const struct drain *d, struct drain_agent_view *out,
                   size_t max, size_t *n, struct sd_err *err) SD_MUST_CHECK;
/* Records a logout this drain sends; *send false when one was recorded in
 * the last DRAIN_LOGOUT_RETRY_MS (another leader, a step repeated). */
int orch_db_logout(struct sd_pg *pg, const char *drain_id, const char *agent_id, bool *send,
                   struct sd_err *err) SD_MUST_CHECK;

/* The hold on a site or an edge (sites / edges.drained_by): the drain that
 * holds it, whether that drain still runs, since when. held false: none. */
struct orch_hold {
    bool held, drain_open;
    char drain_id[DRAIN_ID_SIZE];
    char site[DRAIN_NAME_SIZE]; /* the site of the drain that holds it */
    int64_t since_ms;
};
int orch_db_hold(struct sd_pg *pg, const char *scope, const char *target, struct orch_hold *h,
                 struct sd_err *err) SD_MUST_CHECK;
/* Lets go of the hold on (scope, target). */
int orch_db_hold_clear(struct sd_pg *pg, const char *scope, const char *target,
                       struct sd_err *err) SD_MUST_CHECK;

/* The running edges of (scope, target) - heartbeat in the last
 * DRAIN_EDGE_GONE_MS, not stopped - and whether each has a hold of its own. */
struct orch_edge_ref {
    char id[DRAIN_NAME_SIZE];
    bool own_hold;
};
int orch_db_site_edges(struct sd_pg *pg, const char *scope, const char *target,
                       struct orch_edge_ref *out, size_t max, size_t *n,
                       struct sd_err *err) SD_MUST_CHECK;

#endif
