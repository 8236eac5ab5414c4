/* agent_db.h - agent-state's rows in PostgreSQL (DESIGN.md §3: agents, and
 * what agent-state reads of sites, drains and registrations).
 *
 * Every function runs inside the caller's open transaction; they return 0
 * or -1 with err (SD_ERR_TRANSIENT: the database went away, retry the whole
 * transaction).
 */
#ifndef SIPDRAIN_AGENT_DB_H
#define SIPDRAIN_AGENT_DB_H

#include <stdbool.h>

#include "agent_fsm.h"
#include "sipdrain/err.h"
#include "sipdrain/pg.h"

/* The agent's row, locked (FOR UPDATE) until the transaction ends, and
 * whether a site drain is in progress at its site. *version = 0 and *a all
 * zero (logged out) when there is no row. */
int agent_db_load(struct sd_pg *pg, const char *agent_id, struct agent *a, long long *version,
                  bool *site_draining, struct sd_err *err) SD_MUST_CHECK;

/* Inserts or updates the row; agents.version grows by bumps (>= 1).
 * *version is the new value. */
int agent_db_save(struct sd_pg *pg, const char *agent_id, const struct agent *a, int bumps,
                  long long *version, struct sd_err *err) SD_MUST_CHECK;

/* For agent.login: does site exist, is it draining, is another agent
 * logged in on dn. Takes a transaction-scoped lock on dn first, so two
 * logins on one DN (even on two instances) are decided one after the other. */
int agent_db_login_facts(struct sd_pg *pg, const char *agent_id, const char *site, const char *dn,
                         bool *site_known, bool *site_draining, bool *dn_in_use,
                         struct sd_err *err) SD_MUST_CHECK;

/* For a drain logout: the site's peer (peer[0] = '\0' when none), whether
 * the peer is draining, and whether another agent is logged in on dn. */
int agent_db_peer_facts(struct sd_pg *pg, const char *agent_id, const char *site, const char *dn,
                        char peer[AGENT_ID_SIZE], bool *peer_draining, bool *dn_in_use,
                        struct sd_err *err) SD_MUST_CHECK;

/* For agent.make_call: the edge holding a live registration of dn
 * (edge[0] = '\0' when none), preferring an edge that is active. */
int agent_db_registration(struct sd_pg *pg, const char *dn, char edge[AGENT_ID_SIZE],
                          struct sd_err *err) SD_MUST_CHECK;

/* Up to max agent ids (AGENT_ID_SIZE each, in ids) whose timed ACW is due
 * at now_ms. Runs outside a transaction; each id is then handled in its
 * own (agent_db_load re-checks under the row lock). Returns the count. */
int agent_db_acw_due(struct sd_pg *pg, long long now_ms, char (*ids)[AGENT_ID_SIZE], int max,
                     struct sd_err *err) SD_MUST_CHECK;

#endif
