/* edge_db.h - sip-edge's rows in PostgreSQL (registrations, edges). Runs on
 * the bus thread only; each call is one statement in the caller's
 * transaction (or its own). 0 or -1 with err. */
#ifndef SIPDRAIN_EDGE_DB_H
#define SIPDRAIN_EDGE_DB_H

#include "sipdrain/err.h"
#include "sipdrain/pg.h"

/* REGISTER: dn -> contact at this edge for expires_s seconds; 0 removes it. */
int edge_db_register(struct sd_pg *pg, const char *edge_id, const char *dn, const char *contact,
                     int expires_s, struct sd_err *err) SD_MUST_CHECK;

/* The edges row: state, counts and heartbeat time (now). */
int edge_db_heartbeat(struct sd_pg *pg, const char *edge_id, const char *site, const char *state,
                      long active_calls, long pending_byes, struct sd_err *err) SD_MUST_CHECK;

#endif
