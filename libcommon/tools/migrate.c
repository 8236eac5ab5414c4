/* sipdrain-migrate - applies the schemas/sql migrations to SIPDRAIN_PG_DSN, each once.
 *
 *   SIPDRAIN_PG_DSN=postgresql://... sipdrain-migrate [--dir schemas/sql]
 *
 * Exit 0 when the database is up to date, 1 when a migration failed (or an
 * applied one was edited), 2 on bad configuration.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

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

int main(int argc, char **argv)
{
    struct migrate_cfg cfg = {0};
    struct sd_err err = {0};
    struct sd_pg *pg = NULL;
    const char *dir;
    int applied, rc = 1;

    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: sipdrain-migrate [--dir DIR]\n\nsettings (environment):\n");
        fflush(stdout);
        sd_cfg_usage(items, N_ITEMS, 1);
        return 0;
    }
    sd_cfg_load_or_exit("sipdrain-migrate", items, N_ITEMS, &cfg);
    sd_log_init("sipdrain-migrate", NULL, (enum sd_log_level)cfg.log_level);
    dir = cfg.dir;
    if (argc == 3 && !strcmp(argv[1], "--dir")) {
        dir = argv[2];
    } else if (argc != 1) {
        fprintf(stderr, "usage: sipdrain-migrate [--dir DIR]\n");
        rc = 2;
        goto out;
    }
    pg = sd_pg_new(cfg.pg_dsn, "sipdrain-migrate");
    if (pg == NULL || sd_pg_connect_wait(pg, 30000, &err) < 0) {
        sd_log_error("cannot connect to postgresql", "reason=\"%s\"", err.text);
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
