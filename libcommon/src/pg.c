/* pg.c - PostgreSQL connection that heals itself (see sipdrain/pg.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sipdrain/event.h"
#include "sipdrain/log.h"
#include "sipdrain/pg.h"

#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 5000
#define PG_PREPARED_MAX   128

struct sd_pg {
    char *dsn;
    char app[64];
    PGconn *conn;
    int64_t next_attempt_ms; /* monotonic; no reconnect before this */
    int backoff_ms;
    unsigned generation;
    int was_up; /* for logging "lost" once */
    /* Statements prepared on this connection (cleared on reconnect): the
     * server parses and plans each one once, not on every call. */
    char *prepared[PG_PREPARED_MAX];
    int nprepared;
    unsigned prepared_generation;
    unsigned prepared_epoch; /* part of every name: bumped when the cache is dropped */
    unsigned long txn;       /* BEGINs so far */
    /* sd_pg_begin_lazy / sd_pg_commit_next: BEGIN and COMMIT still to go
     * out with the next statement, and the outcome of a COMMIT that did
     * (commit_state 1 done, -1 failed with commit_err; 0 none). */
    int begin_pending, commit_pending, commit_state;
    struct sd_err commit_err;
};

struct sd_pg *sd_pg_new(const char *dsn, const char *application_name)
{
    struct sd_pg *pg = calloc(1, sizeof(*pg));

    if (pg == NULL)
        return NULL;
    pg->dsn = strdup(dsn ? dsn : "");
    if (pg->dsn == NULL) {
        free(pg);
        return NULL;
    }
    snprintf(pg->app, sizeof(pg->app), "%s", application_name ? application_name : "sipdrain");
    pg->backoff_ms = PG_BACKOFF_MIN_MS;
    return pg;
}

static void prepared_clear(struct sd_pg *pg)
{
    for (int i = 0; i < pg->nprepared; i++)
        free(pg->prepared[i]);
    pg->nprepared = 0;
    pg->prepared_epoch++;
}

void sd_pg_free(struct sd_pg *pg)
{
    if (pg == NULL)
        return;
    prepared_clear(pg);
    if (pg->conn != NULL)
        PQfinish(pg->conn);
    free(pg->dsn);
    free(pg);
}

PGconn *sd_pg_conn(struct sd_pg *pg)
{
    return pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK ? pg->conn : NULL;
}

unsigned sd_pg_generation(const struct sd_pg *pg)
{
    return pg->generation;
}

/* Drops the connection and schedules the next attempt after the back-off. */
static void pg_mark_down(struct sd_pg *pg, const char *why)
{
    if (pg->was_up) {
        sd_log_warn("postgresql connection lost", "app=%s reason=\"%s\"", pg->app, why);
        pg->was_up = 0;
    }
    if (pg->conn != NULL) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    pg->next_attempt_ms = sd_mono_ms() + pg->backoff_ms;
    pg->backoff_ms =
        pg->backoff_ms * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS : pg->backoff_ms * 2;
}

static void strip_newlines(char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\n' || *s == '\r')
            *s = ' ';
    }
}

/* The server's notices (e.g. "FATAL: terminating connection due to
 * administrator command" at a restart) as our log lines, not raw stderr. */
static void on_notice(void *arg, const char *message)
{
    struct sd_pg *pg = arg;
    char text[SD_ERR_TEXT_MAX];

    snprintf(text, sizeof(text), "%s", message);
    strip_newlines(text);
    sd_log_info("postgresql notice", "app=%s text=\"%s\"", pg->app, text);
}

int sd_pg_ensure(struct sd_pg *pg, struct sd_err *err)
{
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *vals[] = {pg->dsn, pg->app, "5", NULL};
    char why[SD_ERR_TEXT_MAX];

    if (pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK)
        return 0;
    if (pg->conn != NULL)
        pg_mark_down(pg, "connection broken");
    if (sd_mono_ms() < pg->next_attempt_ms)
        return sd_err_set(err, SD_ERR_TRANSIENT, "postgresql is unreachable (retrying)");
    /* expand_dbname=1: "dbname" may hold a whole DSN or URI. */
    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (pg->conn == NULL || PQstatus(pg->conn) != CONNECTION_OK) {
        snprintf(why, sizeof(why), "%s", pg->conn ? PQerrorMessage(pg->conn) : "out of memory");
        strip_newlines(why);
        pg_mark_down(pg, why);
        return sd_err_set(err, SD_ERR_TRANSIENT, "cannot connect to postgresql: %s", why);
    }
    PQsetNoticeProcessor(pg->conn, on_notice, pg);
    pg->backoff_ms = PG_BACKOFF_MIN_MS;
    pg->generation++;
    if (pg->generation > 1)
        sd_log_info("postgresql reconnected", "app=%s generation=%u", pg->app, pg->generation);
    pg->was_up = 1;
    return 0;
}

int sd_pg_connect_wait(struct sd_pg *pg, int timeout_ms, struct sd_err *err)
{
    int64_t deadline = sd_mono_ms() + timeout_ms;
    struct timespec ts;

    for (;;) {
        if (sd_pg_ensure(pg, err) == 0)
            return 0;
        if (sd_mono_ms() >= deadline)
            return -1;
        ts.tv_sec = 0;
        ts.tv_nsec = 50 * 1000000L;
        nanosleep(&ts, NULL);
    }
}

/* Transient: the connection broke, or the server says try again later. */
static int sqlstate_transient(const char *state)
{
    if (state == NULL)
        return 1; /* no SQLSTATE: the connection failed */
    return strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
           strncmp(state, "57P", 3) == 0 || strcmp(state, "40001") == 0 ||
           strcmp(state, "40P01") == 0;
}

/* Only plain DML is prepared; everything else (DDL, LISTEN, BEGIN) goes
 * through PQexecParams as it is. */
static int preparable(const char *sql)
{
    return !strncmp(sql, "SELECT", 6) || !strncmp(sql, "INSERT", 6) || !strncmp(sql, "UPDATE", 6) ||
           !strncmp(sql, "DELETE", 6) || !strncmp(sql, "WITH", 4);
}

/* Returns the name of sql's prepared statement ("sd<epoch>_<N>"), preparing it on
 * first use, or NULL to run it unprepared (cache full, not DML). *res is
 * set when PQprepare itself failed (the caller reports it). */
static const char *prepared_name(struct sd_pg *pg, const char *sql, int n, char *name, size_t size,
                                 PGresult **res)
{
    *res = NULL;
    if (pg->prepared_generation != pg->generation) {
        prepared_clear(pg);
        pg->prepared_generation = pg->generation;
    }
    if (!preparable(sql))
        return NULL;
    for (int i = 0; i < pg->nprepared; i++) {
        if (strcmp(pg->prepared[i], sql) == 0) {
            snprintf(name, size, "sd%u_%d", pg->prepared_epoch, i);
            return name;
        }
    }
    if (pg->nprepared == PG_PREPARED_MAX)
        return NULL;
    snprintf(name, size, "sd%u_%d", pg->prepared_epoch, pg->nprepared);
    *res = PQprepare(pg->conn, name, sql, n, NULL);
    if (*res == NULL || PQresultStatus(*res) != PGRES_COMMAND_OK)
        return NULL;
    PQclear(*res);
    *res = NULL;
    if ((pg->prepared[pg->nprepared] = strdup(sql)) == NULL)
        return NULL; /* prepared, but unnamed to us: harmless */
    pg->nprepared++;
    return name;
}

/* res when it is a success; otherwise NULL and err says why (transient
 * when the connection failed or the server says try again), res cleared. */
static PGresult *checked(struct sd_pg *pg, PGresult *res, struct sd_err *err)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    const char *state;
    char msg[SD_ERR_TEXT_MAX];

    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return res;
    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(msg, sizeof(msg), "%s",
             res && st != PGRES_PIPELINE_ABORTED ? PQresultErrorMessage(res)
                                                 : PQerrorMessage(pg->conn));
    strip_newlines(msg);
    if (PQstatus(pg->conn) != CONNECTION_OK || sqlstate_transient(state)) {
        sd_err_set(err, SD_ERR_TRANSIENT, "postgresql: %s", msg);
        if (PQstatus(pg->conn) != CONNECTION_OK)
            pg_mark_down(pg, msg);
    } else {
        sd_err_set(err, SD_ERR_INVALID, "postgresql: %s (SQLSTATE %s)", msg,
                   state ? state : "none");
    }
    PQclear(res);
    return NULL;
}

/* The next result of a pipeline and the NULL that ends it. */
static PGresult *pipeline_result(PGconn *conn)
{
    PGresult *res = PQgetResult(conn), *more;

    if (res == NULL)
        return NULL;
    while ((more = PQgetResult(conn)) != NULL) /* a command has one result here */
        PQclear(more);
    return res;
}

/* One round trip for the statement and the BEGIN and/or COMMIT pending
 * (libpq's pipeline mode: all sent, one Sync, the results read in order).
 * Returns the statement's result as PQexec would, or a failed BEGIN's;
 * the COMMIT's outcome goes to pg->commit_state / commit_err. */
static PGresult *pipelined(struct sd_pg *pg, const char *stmt, const char *sql, int n,
                           const char *const *values, const int *lengths, const int *formats)
{
    PGconn *conn = pg->conn;
    int begin = pg->begin_pending, commit = pg->commit_pending, sent;
    PGresult *res = NULL, *r, *commit_res = NULL;
    ExecStatusType st;

    pg->begin_pending = pg->commit_pending = 0;
    if (!PQenterPipelineMode(conn))
        return NULL;
    sent = (!begin || PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0)) &&
           (stmt != NULL ? PQsendQueryPrepared(conn, stmt, n, values, lengths, formats, 0)
                         : PQsendQueryParams(conn, sql, n, NULL, values, lengths, formats, 0)) &&
           (!commit || PQsendQueryParams(conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0)) &&
           PQpipelineSync(conn);
    if (sent && begin) {
        r = pipeline_result(conn);
        if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK)
            res = r; /* the statement was not run: report why */
        else
            PQclear(r);
    }
    if (sent) {
        r = pipeline_result(conn);
        if (res == NULL)
            res = r;
        else
            PQclear(r);
    }
    if (sent && commit)
        commit_res = pipeline_result(conn);
    while (sent && (r = PQgetResult(conn)) != NULL) { /* up to and including the Sync */
        st = PQresultStatus(r);
        PQclear(r);
        if (st == PGRES_PIPELINE_SYNC)
            break;
    }
    if (!PQexitPipelineMode(conn)) {
        /* Results left unread: only a broken connection does that. Nothing
         * of this transaction can be trusted; the caller retries it. */
        PQclear(res);
        PQclear(commit_res);
        pg_mark_down(pg, "a pipeline did not complete");
        return NULL;
    }
    st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (commit && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)) {
        /* The statement's success is the caller's; the COMMIT's, sd_pg_commit's. */
        pg->commit_err = (struct sd_err){0};
        commit_res = checked(pg, commit_res, &pg->commit_err);
        pg->commit_state = commit_res != NULL ? 1 : -1;
    }
    PQclear(commit_res);
    return res;
}

PGresult *sd_pg_query(struct sd_pg *pg, const char *sql, int n, const char *const *values,
                      const int *lengths, const int *formats, struct sd_err *err)
{
    PGresult *res;
    char name[32];
    const char *stmt;

    if (sd_pg_ensure(pg, err) < 0)
        return NULL;
    stmt = prepared_name(pg, sql, n, name, sizeof(name), &res);
    if ((pg->begin_pending || pg->commit_pending) && (stmt != NULL || res == NULL)) {
        res = pipelined(pg, stmt, sql, n, values, lengths, formats);
        /* A plan outdated by a schema change: in a transaction, so retry it. */
        if (stmt != NULL && res != NULL && PQresultStatus(res) == PGRES_FATAL_ERROR &&
            PQresultErrorField(res, PG_DIAG_SQLSTATE) != NULL &&
            strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE), "0A000") == 0) {
            prepared_clear(pg);
            PQclear(res);
            return sd_err_set(err, SD_ERR_TRANSIENT,
                              "postgresql: prepared statements outdated by a schema change; "
                              "retry the transaction"),
                   NULL;
        }
    } else if (stmt != NULL) {
        res = PQexecPrepared(pg->conn, stmt, n, values, lengths, formats, 0);
        /* A migration applied while we run changed a table under a prepared
         * statement ("cached plan must not change result type"): forget
         * them all and run this one afresh. Outside a transaction only: in
         * one, the error has already aborted it and the caller retries. */
        if (res != NULL && PQresultStatus(res) == PGRES_FATAL_ERROR &&
            PQresultErrorField(res, PG_DIAG_SQLSTATE) != NULL &&
            strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE), "0A000") == 0) {
            prepared_clear(pg); /* new names from now on: no clash with the old */
            if (PQtransactionStatus(pg->conn) == PQTRANS_IDLE) {
                PQclear(PQexec(pg->conn, "DEALLOCATE ALL"));
                PQclear(res);
                res = PQexecParams(pg->conn, sql, n, NULL, values, lengths, formats, 0);
            } else {
                PQclear(res);
                return sd_err_set(err, SD_ERR_TRANSIENT,
                                  "postgresql: prepared statements outdated by a schema change; "
                                  "retry the transaction"),
                       NULL;
            }
        }
    } else if (res == NULL) {
        res = PQexecParams(pg->conn, sql, n, NULL, values, lengths, formats, 0);
    }
    return checked(pg, res, err);
}

int sd_pg_exec(struct sd_pg *pg, const char *sql, int n, const char *const *values,
               struct sd_err *err)
{
    PGresult *res = sd_pg_query(pg, sql, n, values, NULL, NULL, err);
    const char *tuples;
    int count;

    if (res == NULL)
        return -1;
    tuples = PQcmdTuples(res);
    count = (tuples && *tuples) ? atoi(tuples) : 0;
    PQclear(res);
    return count;
}

static void pending_clear(struct sd_pg *pg)
{
    pg->begin_pending = pg->commit_pending = pg->commit_state = 0;
}

int sd_pg_begin(struct sd_pg *pg, struct sd_err *err)
{
    pending_clear(pg);
    if (sd_pg_exec(pg, "BEGIN", 0, NULL, err) < 0)
        return -1;
    pg->txn++;
    return 0;
}

int sd_pg_begin_lazy(struct sd_pg *pg, struct sd_err *err)
{
    pending_clear(pg);
    if (sd_pg_ensure(pg, err) < 0)
        return -1;
    pg->begin_pending = 1;
    pg->txn++;
    return 0;
}

void sd_pg_commit_next(struct sd_pg *pg)
{
    pg->commit_pending = 1;
}

unsigned long sd_pg_txn(const struct sd_pg *pg)
{
    if (pg->begin_pending)
        return pg->txn;
    if (pg->conn == NULL || PQtransactionStatus(pg->conn) != PQTRANS_INTRANS)
        return 0;
    return pg->txn;
}

int sd_pg_commit(struct sd_pg *pg, struct sd_err *err)
{
    int state = pg->commit_state, begin = pg->begin_pending;

    pending_clear(pg);
    if (state == 1)
        return 0;
    if (state == -1) {
        *err = pg->commit_err;
        return -1;
    }
    if (begin)
        return 0; /* a lazy BEGIN and no statement: nothing was ever opened */
    return sd_pg_exec(pg, "COMMIT", 0, NULL, err) < 0 ? -1 : 0;
}

void sd_pg_rollback(struct sd_pg *pg)
{
    struct sd_err ignored;

    pending_clear(pg);
    if (pg->conn == NULL || PQstatus(pg->conn) != CONNECTION_OK)
        return;
    if (PQtransactionStatus(pg->conn) == PQTRANS_IDLE)
        return;
    if (sd_pg_exec(pg, "ROLLBACK", 0, NULL, &ignored) < 0) {
        /* The connection is marked down; its transaction is gone with it. */
    }
}

/* --- migrations ------------------------------------------------------- */

/* FNV-1a 64-bit of the file: enough to notice an edited migration. */
static void checksum_hex(const char *data, size_t len, char out[17])
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)data[i];
        h *= 1099511628211ULL;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)size + 1);
        if (buf != NULL && fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        }
        if (buf != NULL) {
            buf[size] = '\0';
            *len = (size_t)size;
        }
    }
    fclose(f);
    return buf;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Applies one migration file unless already recorded; 1 applied, 0 already, -1 error. */
static int migrate_one(struct sd_pg *pg, const char *dir, const char *name, struct sd_err *err)
{
    char path[4096], sum[17];
    const char *params[2];
    PGresult *res = NULL, *multi = NULL;
    char *sql = NULL;
    size_t len = 0;
    int rc = -1;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    sql = read_file(path, &len);
    if (sql == NULL)
        return sd_err_set(err, SD_ERR_CONFIG, "cannot read migration %s: %s", path,
                          strerror(errno));
    checksum_hex(sql, len, sum);
    if (sd_pg_begin(pg, err) < 0)
        goto out;
    /* One runner at a time, even when several services start together. */
    if (sd_pg_exec(pg, "SELECT pg_advisory_xact_lock(727274)", 0, NULL, err) < 0)
        goto out;
    params[0] = name;
    res = sd_pg_query(pg, "SELECT checksum FROM schema_migrations WHERE version = $1", 1, params,
                      NULL, NULL, err);
    if (res == NULL)
        goto out;
    if (PQntuples(res) == 1) {
        if (strcmp(PQgetvalue(res, 0, 0), sum) != 0) {
            sd_err_set(err, SD_ERR_CONFIG,
                       "migration %s was edited after it was applied (checksum %s, recorded %s): "
                       "add a new migration instead",
                       name, sum, PQgetvalue(res, 0, 0));
            goto out;
        }
        rc = 0;
        goto out;
    }
    /* Several statements: the simple query protocol, no parameters. */
    multi = PQexec(sd_pg_conn(pg), sql);
    if (multi == NULL || PQresultStatus(multi) != PGRES_COMMAND_OK) {
        char msg[SD_ERR_TEXT_MAX];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(pg->conn));
        strip_newlines(msg);
        sd_err_set(err, SD_ERR_CONFIG, "migration %s failed: %s", name, msg);
        goto out;
    }
    params[1] = sum;
    if (sd_pg_exec(pg, "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", 2,
                   params, err) < 0)
        goto out;
    if (sd_pg_commit(pg, err) < 0)
        goto out;
    sd_log_info("migration applied", "version=%s checksum=%s", name, sum);
    rc = 1;
out:
    if (rc <= 0)
        sd_pg_rollback(pg);
    PQclear(res);
    PQclear(multi);
    free(sql);
    return rc;
}

int sd_pg_migrate(struct sd_pg *pg, const char *dir, struct sd_err *err)
{
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    DIR *d = NULL;
    int applied = 0, rc = -1;

    if (sd_pg_exec(pg,
                   "CREATE TABLE IF NOT EXISTS schema_migrations ("
                   " version text PRIMARY KEY, checksum text NOT NULL,"
                   " applied_at timestamptz NOT NULL DEFAULT now())",
                   0, NULL, err) < 0)
        return -1;
    d = opendir(dir);
    if (d == NULL)
        return sd_err_set(err, SD_ERR_CONFIG, "cannot open migrations folder %s: %s", dir,
                          strerror(errno));
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".sql") != 0 || de->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **grown = realloc(names, (cap ? cap * 2 : 16) * sizeof(*names));
            if (grown == NULL) {
                sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
                goto out;
            }
            names = grown;
            cap = cap ? cap * 2 : 16;
        }
        if ((names[n] = strdup(de->d_name)) == NULL) {
            sd_err_set(err, SD_ERR_INTERNAL, "out of memory");
            goto out;
        }
        n++;
    }
    qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; i < n; i++) {
        int r = migrate_one(pg, dir, names[i], err);
        if (r < 0)
            goto out;
        applied += r;
    }
    rc = applied;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

char *sd_pg_text_array(const char *const *items, size_t n)
{
    size_t size = 3, pos = 0;
    char *out;

    for (size_t i = 0; i < n; i++)
        size += items[i] ? 2 * strlen(items[i]) + 3 : 5;
    if ((out = malloc(size)) == NULL)
        return NULL;
    out[pos++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            out[pos++] = ',';
        if (items[i] == NULL) {
            memcpy(out + pos, "NULL", 4);
            pos += 4;
            continue;
        }
        out[pos++] = '"';
        for (const char *c = items[i]; *c != '\0'; c++) {
            if (*c == '"' || *c == '\\')
                out[pos++] = '\\';
            out[pos++] = *c;
        }
        out[pos++] = '"';
    }
    out[pos++] = '}';
    out[pos] = '\0';
    return out;
}
