/* sipdrain-migrate - applies the schemas/sql migrations to SIPDRAIN_PG_DSN, each once.
 *
 *   SIPDRAIN_PG_DSN=postgresql://... sipdrain-migrate [--dir schemas/sql]
 *   SIPDRAIN_PG_DSN=postgresql://... sipdrain-migrate --role-passwords FILE
 *
 * --role-passwords: FILE has "<role> <password>" lines, one per program
 * role of migration 0005 (sipdrain_edge, ...); each role gets LOGIN and
 * that password, sent as a SCRAM-SHA-256 verifier made here (the password
 * itself never reaches the server or its log). For a deployment's secrets
 * (docker-compose.yml's migrate step).
 *
 * Exit 0 when the database is up to date, 1 when a migration failed (or an
 * applied one was edited), 2 on bad configuration.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "sipdrain/cfg.h"
#include "sipdrain/log.h"
#include "sipdrain/pg.h"

struct migrate_cfg {
    char *pg_dsn;
    char *dir;
    int log_level;
};

static const struct sd_cfg_item items[] = {
    {"SIPDRAIN_PG_DSN", SD_CFG_STRING, offsetof(struct migrate_cfg, pg_dsn), 0, 0, NULL, NULL, true,
     "PostgreSQL connection string"},
    {"SIPDRAIN_MIGRATIONS_DIR", SD_CFG_STRING, offsetof(struct migrate_cfg, dir), 0, 0, NULL,
     SIPDRAIN_DEFAULT_MIGRATIONS_DIR, false, "folder of NNNN_*.sql migrations"},
    {"SIPDRAIN_LOG_LEVEL", SD_CFG_ENUM, offsetof(struct migrate_cfg, log_level), 0, 0,
     "debug|info|warn|error", "info", false, "lowest level logged"},
};
#define N_ITEMS (sizeof(items) / sizeof(items[0]))

/* A program role of migration 0005: sipdrain_ and lower-case letters or _ */
static int program_role(const char *role)
{
    if (strncmp(role, "sipdrain_", 9) != 0 || role[9] == '\0')
        return 0;
    for (const char *c = role + 9; *c != '\0'; c++) {
        if (!islower((unsigned char)*c) && *c != '_')
            return 0;
    }
    return 1;
}

static int set_role_passwords(struct sd_pg *pg, const char *path)
{
    PGconn *conn = sd_pg_conn(pg);
    char line[1024];
    int lineno = 0, rc = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        sd_log_error("cannot read the role passwords", "file=%s", path);
        return -1;
    }
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        char *role = line, *pw, *end, *verifier = NULL, *ident = NULL, *lit = NULL, *sql = NULL;
        PGresult *res = NULL;

        lineno++;
        end = line + strlen(line);
        while (end > line && (end[-1] == '\n' || end[-1] == '\r'))
            *--end = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        pw = strchr(line, ' ');
        if (pw == NULL || pw[1] == '\0') {
            sd_log_error("role passwords: expected \"<role> <password>\"", "file=%s line=%d", path,
                         lineno);
            rc = -1;
            break;
        }
        *pw++ = '\0';
        if (!program_role(role)) {
            sd_log_error("role passwords: not a program role (sipdrain_...)", "file=%s line=%d",
                         path, lineno);
            rc = -1;
            break;
        }
        verifier = PQencryptPasswordConn(conn, pw, role, "scram-sha-256");
        ident = PQescapeIdentifier(conn, role, strlen(role));
        lit = verifier != NULL ? PQescapeLiteral(conn, verifier, strlen(verifier)) : NULL;
        if (ident != NULL && lit != NULL &&
            (sql = malloc(strlen(ident) + strlen(lit) + 64)) != NULL) {
            sprintf(sql, "ALTER ROLE %s LOGIN PASSWORD %s", ident, lit);
            res = PQexec(conn, sql);
        }
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
            sd_log_error("role password not set", "role=%s reason=\"%s\"", role,
                         res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
            rc = -1;
        } else {
            sd_log_info("role password set", "role=%s", role);
        }
        PQclear(res);
        free(sql);
        PQfreemem(lit);
        PQfreemem(ident);
        PQfreemem(verifier);
        explicit_bzero(line, sizeof(line));
    }
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    struct migrate_cfg cfg = {0};
    struct sd_err err = {0};
    struct sd_pg *pg = NULL;
    const char *dir;
    int applied, rc = 1;

    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: sipdrain-migrate [--dir DIR | --role-passwords FILE]\n\nsettings"
               " (environment):\n");
        fflush(stdout);
        sd_cfg_usage(items, N_ITEMS, 1);
        return 0;
    }
    sd_cfg_load_or_exit("sipdrain-migrate", items, N_ITEMS, &cfg);
    sd_log_init("sipdrain-migrate", NULL, (enum sd_log_level)cfg.log_level);
    dir = cfg.dir;
    if (argc == 3 && !strcmp(argv[1], "--dir")) {
        dir = argv[2];
    } else if (argc == 3 && !strcmp(argv[1], "--role-passwords")) {
        dir = NULL;
    } else if (argc != 1) {
        fprintf(stderr, "usage: sipdrain-migrate [--dir DIR | --role-passwords FILE]\n");
        rc = 2;
        goto out;
    }
    pg = sd_pg_new(cfg.pg_dsn, "sipdrain-migrate");
    if (pg == NULL || sd_pg_connect_wait(pg, 30000, &err) < 0) {
        sd_log_error("cannot connect to postgresql", "reason=\"%s\"", err.text);
        goto out;
    }
    if (dir == NULL) {
        rc = set_role_passwords(pg, argv[2]) < 0 ? 1 : 0;
        goto out;
    }
    applied = sd_pg_migrate(pg, dir, &err);
    if (applied < 0) {
        sd_log_error("migrations failed", "dir=%s reason=\"%s\"", dir, err.text);
        goto out;
    }
    sd_log_info("database up to date", "dir=%s applied=%d", dir, applied);
    rc = 0;
out:
    sd_pg_free(pg);
    sd_cfg_free(items, N_ITEMS, &cfg);
    return rc;
}
