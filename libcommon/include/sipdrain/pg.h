/* pg.h - PostgreSQL through libpq: parameterised queries only.
 *
 * A struct sd_pg is one connection that heals itself: when the server goes
 * away the failing call returns SD_ERR_TRANSIENT, and the next call that
 * finds the connection broken reconnects, no more often than the back-off
 * (100 ms doubling to 5 s) allows. Callers retry their whole transaction.
 *
 * These calls block; services on sofia-sip's loop keep them off the SIP
 * thread (see sip-edge's notes).
 */
#ifndef SIPDRAIN_PG_H
#define SIPDRAIN_PG_H

#include <libpq-fe.h>

#include "sipdrain/err.h"

struct sd_pg;

/* Copies dsn; does not connect yet. */
struct sd_pg *sd_pg_new(const char *dsn, const char *application_name);
void sd_pg_free(struct sd_pg *pg);

/* Makes sure the connection is up: reconnects when it is broken and the
 * back-off allows. SD_ERR_TRANSIENT when it is still down. */
int sd_pg_ensure(struct sd_pg *pg, struct sd_err *err) SD_MUST_CHECK;
/* sd_pg_ensure, retried for up to timeout_ms: for start-up. */
int sd_pg_connect_wait(struct sd_pg *pg, int timeout_ms, struct sd_err *err) SD_MUST_CHECK;

/* Runs one statement. values[i] are text unless formats[i] == 1 (binary,
 * lengths[i] bytes); lengths/formats may be NULL. Returns a new PGresult
 * (PQclear it) whose status is TUPLES_OK or COMMAND_OK, or NULL with err:
 * SD_ERR_TRANSIENT when the connection failed (retry later), SD_ERR_INVALID
 * for an SQL error. */
PGresult *sd_pg_query(struct sd_pg *pg, const char *sql, int n, const char *const *values,
                      const int *lengths, const int *formats, struct sd_err *err) SD_MUST_CHECK;
/* As sd_pg_query for text parameters, returning the affected row count. */
int sd_pg_exec(struct sd_pg *pg, const char *sql, int n, const char *const *values,
               struct sd_err *err) SD_MUST_CHECK;

int sd_pg_begin(struct sd_pg *pg, struct sd_err *err) SD_MUST_CHECK;
int sd_pg_commit(struct sd_pg *pg, struct sd_err *err) SD_MUST_CHECK;
/* Round trips saved on a hot transaction whose statements all go through
 * sd_pg_query / sd_pg_exec (not through sd_pg_conn): sd_pg_begin_lazy opens
 * it without a round trip of its own - BEGIN goes out with the first
 * statement, in one libpq pipeline. sd_pg_commit_next says the next
 * statement is the transaction's last: COMMIT goes out with it, and
 * sd_pg_commit then only reports the COMMIT's outcome (a statement that
 * fails aborts the COMMIT: sd_pg_rollback as ever). Without a statement
 * after them, sd_pg_commit does what is left. The semantics are
 * sd_pg_begin's and sd_pg_commit's; only the round trips differ. */
int sd_pg_begin_lazy(struct sd_pg *pg, struct sd_err *err) SD_MUST_CHECK;
void sd_pg_commit_next(struct sd_pg *pg);
/* Identifies the open transaction (changes at every sd_pg_begin); 0 when
 * no transaction block is open. */
unsigned long sd_pg_txn(const struct sd_pg *pg);
/* Never fails from the caller's view: a broken connection has no transaction. */
void sd_pg_rollback(struct sd_pg *pg);

/* The live connection (for PQsocket / PQnotifies), or NULL. */
PGconn *sd_pg_conn(struct sd_pg *pg);
/* Incremented on every successful (re)connect: a caller that needs session
 * state (LISTEN) sets it up again when this changes. */
unsigned sd_pg_generation(const struct sd_pg *pg);

/* A PostgreSQL array literal of items, for a text[] parameter: {"a","b"},
 * each element quoted with its " and \ escaped; a NULL item is NULL. A new
 * string (free it), or NULL when out of memory. */
char *sd_pg_text_array(const char *const *items, size_t n);

/* Applies dir/NNNN_*.sql in name order, each once, in its own transaction,
 * recorded in schema_migrations (version, checksum). An applied file whose
 * checksum changed is an error. Returns how many were applied, or -1. */
int sd_pg_migrate(struct sd_pg *pg, const char *dir, struct sd_err *err) SD_MUST_CHECK;

#endif
