/* sipdrain-passwd - sets, removes and lists agent phones' SIP credentials
 * (table sip_credentials, issue #14).
 *
 *   sipdrain-passwd set DN      the password from stdin (one line), or asked
 *                               twice without echo on a terminal
 *   sipdrain-passwd import      "DN password" lines from stdin, one
 *                               transaction (a site's phones at once)
 *   sipdrain-passwd delete DN
 *   sipdrain-passwd list
 *
 * Settings: SIPDRAIN_PG_DSN, SIPDRAIN_SIP_REALM (the edges' realm).
 *
 * Why a tool of its own and not a drainctl verb: drainctl talks to Kafka
 * only, and a credential must not travel on a bus that every service
 * reads; an HA1 is as good as the password within its realm. This tool
 * writes PostgreSQL, where the edges read credentials, and needs the
 * database rights that go with that (as kamctl does for Kamailio). The
 * password never leaves the process: only HA1 (MD5 and SHA-256) is
 * stored, and nothing here prints one. The password is never taken from
 * the command line (ps would show it to every user of the machine).
 *
 * Exit 0 done, 1 the database refused or is unreachable, 2 bad usage or
 * configuration (e.g. a password shorter than PASSWORD_MIN).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "edge_auth.h"
#include "sipdrain/cfg.h"
#include "sipdrain/log.h"
#include "sipdrain/pg.h"

#define TOOL         "sipdrain-passwd"
#define PASSWORD_MIN 8
#define PASSWORD_MAX 128
#define DN_MAX       64

struct passwd_cfg {
    char *pg_dsn;
    char *realm;
};

static const struct sd_cfg_item items[] = {
    {"SIPDRAIN_PG_DSN", SD_CFG_STRING, offsetof(struct passwd_cfg, pg_dsn), 0, 0, NULL, NULL, true,
     "PostgreSQL connection string (libpq)"},
    {"SIPDRAIN_SIP_REALM", SD_CFG_STRING, offsetof(struct passwd_cfg, realm), 0, 0, NULL,
     "sipdrain", false, "the digest realm of the edges (the same at every edge of both sites)"},
};
#define N_ITEMS (sizeof(items) / sizeof(items[0]))

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s set DN | delete DN | list\n\n"
            "  set DN     store DN's credentials (HA1, MD5 and SHA-256) in the realm;\n"
            "             the password comes from stdin, one line (asked twice, without\n"
            "             echo, on a terminal); at least %d characters\n"
            "  delete DN  remove DN's credentials in the realm (its phones then get 403)\n"
            "  list       the DNs that have credentials, per realm (never an HA1)\n\n"
            "settings (environment):\n",
            TOOL, PASSWORD_MIN);
    fflush(f);
    sd_cfg_usage(items, N_ITEMS, 1);
}

/* A DN as REGISTER takes it: 1-64 of [A-Za-z0-9._+-]. */
static int dn_valid(const char *dn)
{
    size_t n = strlen(dn);

    return n > 0 && n <= DN_MAX &&
           strspn(dn, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._+-") == n;
}

/* One line of stdin into buf, without its line end; echo off on a tty. */
static int read_line(const char *prompt, char *buf, size_t size)
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO);
    int ok;

    if (tty) {
        fprintf(stderr, "%s", prompt);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    ok = fgets(buf, (int)size, stdin) != NULL;
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!ok)
        return -1;
    if (strchr(buf, '\n') == NULL && !feof(stdin))
        return -2; /* longer than the buffer */
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

static int read_password(char *pw, size_t size)
{
    char again[PASSWORD_MAX + 2];
    int rc = read_line("password: ", pw, size);

    if (rc == -2 || (rc == 0 && strlen(pw) > PASSWORD_MAX)) {
        fprintf(stderr, "%s: the password is longer than %d characters\n", TOOL, PASSWORD_MAX);
        return -1;
    }
    if (rc < 0) {
        fprintf(stderr, "%s: no password on stdin\n", TOOL);
        return -1;
    }
    if (strlen(pw) < PASSWORD_MIN) {
        fprintf(stderr, "%s: the password must have at least %d characters\n", TOOL, PASSWORD_MIN);
        return -1;
    }
    if (isatty(STDIN_FILENO)) {
        if (read_line("again: ", again, sizeof(again)) < 0 || strcmp(again, pw) != 0) {
            fprintf(stderr, "%s: the passwords differ\n", TOOL);
            return -1;
        }
    }
    return 0;
}

/* Stores dn's HA1s within the caller's transaction. */
static int store(struct sd_pg *pg, const char *realm, const char *dn, const char *password,
                 struct sd_err *err)
{
    char ha1[EDGE_AUTH_ALG_COUNT][EDGE_AUTH_HEX_MAX];
    int rc = 0;

    for (int a = 0; a < EDGE_AUTH_ALG_COUNT; a++)
        edge_auth_ha1((enum edge_auth_alg)a, dn, realm, password, ha1[a]);
    for (int a = 0; a < EDGE_AUTH_ALG_COUNT && rc == 0; a++) {
        const char *v[4] = {dn, realm, edge_auth_alg_name((enum edge_auth_alg)a), ha1[a]};
        if (ha1[a][0] == '\0') {
            sd_err_set(err, SD_ERR_INTERNAL, "libcrypto could not hash the password");
            rc = -1;
        } else if (sd_pg_exec(pg,
                              "INSERT INTO sip_credentials (dn, realm, algorithm, ha1) VALUES ($1,"
                              " $2, $3, $4) ON CONFLICT (dn, realm, algorithm) DO UPDATE SET"
                              " ha1 = EXCLUDED.ha1, updated_at = now()",
                              4, v, err) < 0) {
            rc = -1;
        }
    }
    memset(ha1, 0, sizeof(ha1));
    return rc;
}

static int cmd_set(struct sd_pg *pg, const char *realm, const char *dn, const char *password)
{
    struct sd_err err = {0};

    if (sd_pg_begin(pg, &err) < 0 || store(pg, realm, dn, password, &err) < 0 ||
        sd_pg_commit(pg, &err) < 0) {
        sd_pg_rollback(pg);
        fprintf(stderr, "%s: not stored: %s\n", TOOL, err.text);
        return 1;
    }
    printf("credentials set: dn %s, realm %s (MD5, SHA-256)\n", dn, realm);
    return 0;
}

/* "DN password" lines from stdin, all in one transaction. A wrong line
 * stores nothing and names its number (never its password). */
static int cmd_import(struct sd_pg *pg, const char *realm)
{
    struct sd_err err = {0};
    char line[DN_MAX + PASSWORD_MAX + 8];
    int lineno = 0, n = 0, bad = 0;

    if (sd_pg_begin(pg, &err) < 0)
        goto fail;
    while (fgets(line, sizeof(line), stdin) != NULL) {
        char *dn, *pw;
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(stdin)) {
            sd_err_set(&err, SD_ERR_INVALID, "line %d is too long", lineno);
            bad = 1;
            goto fail;
        }
        line[strcspn(line, "\r\n")] = '\0';
        dn = line + strspn(line, " \t");
        if (*dn == '\0' || *dn == '#')
            continue;
        pw = dn + strcspn(dn, " \t");
        if (*pw != '\0')
            *pw++ = '\0';
        pw += strspn(pw, " \t");
        if (!dn_valid(dn) || strlen(pw) < PASSWORD_MIN || strlen(pw) > PASSWORD_MAX) {
            sd_err_set(&err, SD_ERR_INVALID,
                       "line %d: want \"DN password\" (DN 1-%d of A-Z a-z 0-9 . _ + -,"
                       " password %d-%d characters)",
                       lineno, DN_MAX, PASSWORD_MIN, PASSWORD_MAX);
            bad = 1;
            goto fail;
        }
        if (store(pg, realm, dn, pw, &err) < 0)
            goto fail;
        n++;
    }
    memset(line, 0, sizeof(line));
    if (sd_pg_commit(pg, &err) < 0)
        goto fail;
    printf("credentials set: %d DN%s, realm %s (MD5, SHA-256)\n", n, n == 1 ? "" : "s", realm);
    return 0;
fail:
    memset(line, 0, sizeof(line));
    sd_pg_rollback(pg);
    fprintf(stderr, "%s: nothing stored: %s\n", TOOL, err.text);
    return bad ? 2 : 1;
}

static int cmd_delete(struct sd_pg *pg, const char *realm, const char *dn)
{
    struct sd_err err = {0};
    const char *v[2] = {dn, realm};
    int n = sd_pg_exec(pg, "DELETE FROM sip_credentials WHERE dn = $1 AND realm = $2", 2, v, &err);

    if (n < 0) {
        fprintf(stderr, "%s: not deleted: %s\n", TOOL, err.text);
        return 1;
    }
    if (n == 0) {
        printf("no credentials for dn %s in realm %s\n", dn, realm);
        return 0;
    }
    printf("credentials deleted: dn %s, realm %s\n", dn, realm);
    return 0;
}

static int cmd_list(struct sd_pg *pg)
{
    struct sd_err err = {0};
    PGresult *res =
        sd_pg_query(pg,
                    "SELECT realm, dn, string_agg(algorithm, ', ' ORDER BY algorithm DESC),"
                    " to_char(max(updated_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                    " FROM sip_credentials GROUP BY realm, dn ORDER BY realm, dn",
                    0, NULL, NULL, NULL, &err);

    if (res == NULL) {
        fprintf(stderr, "%s: %s\n", TOOL, err.text);
        return 1;
    }
    printf("%-16s %-16s %-16s %s\n", "REALM", "DN", "ALGORITHMS", "UPDATED");
    for (int i = 0; i < PQntuples(res); i++)
        printf("%-16s %-16s %-16s %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
               PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
    printf("%d DN%s\n", PQntuples(res), PQntuples(res) == 1 ? "" : "s");
    PQclear(res);
    return 0;
}

int main(int argc, char **argv)
{
    struct passwd_cfg cfg = {0};
    struct sd_err err = {0};
    struct sd_pg *pg = NULL;
    char password[PASSWORD_MAX + 2] = "";
    const char *cmd = argc > 1 ? argv[1] : "";
    int rc = 2;

    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    sd_cfg_load_or_exit(TOOL, items, N_ITEMS, &cfg);
    sd_log_init(TOOL, NULL, SD_LOG_WARN);
    if (!((!strcmp(cmd, "set") || !strcmp(cmd, "delete")) && argc == 3) &&
        !((!strcmp(cmd, "list") || !strcmp(cmd, "import")) && argc == 2)) {
        usage(stderr);
        goto out;
    }
    if (argc == 3 && !dn_valid(argv[2])) {
        fprintf(stderr, "%s: DN must be 1-%d of A-Z a-z 0-9 . _ + -\n", TOOL, DN_MAX);
        goto out;
    }
    if (cfg.realm[0] == '\0' || strpbrk(cfg.realm, "\"\\\r\n") != NULL) {
        fprintf(stderr,
                "%s: SIPDRAIN_SIP_REALM: must be non-empty, without quotes,"
                " backslashes or line ends\n",
                TOOL);
        goto out;
    }
    if (!strcmp(cmd, "set") && read_password(password, sizeof(password)) < 0)
        goto out;
    rc = 1;
    pg = sd_pg_new(cfg.pg_dsn, TOOL);
    if (pg == NULL || sd_pg_connect_wait(pg, 10000, &err) < 0) {
        fprintf(stderr, "%s: cannot connect to postgresql: %s\n", TOOL, err.text);
        goto out;
    }
    if (!strcmp(cmd, "set"))
        rc = cmd_set(pg, cfg.realm, argv[2], password);
    else if (!strcmp(cmd, "import"))
        rc = cmd_import(pg, cfg.realm);
    else if (!strcmp(cmd, "delete"))
        rc = cmd_delete(pg, cfg.realm, argv[2]);
    else
        rc = cmd_list(pg);
out:
    memset(password, 0, sizeof(password));
    sd_pg_free(pg);
    sd_cfg_free(items, N_ITEMS, &cfg);
    return rc;
}
