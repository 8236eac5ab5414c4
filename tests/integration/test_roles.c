/* test_roles - migration 0005's roles against the real PostgreSQL (issue
 * #15, point 4): each program's role cannot touch what another program
 * owns - the edge cannot end a drain or lift a hold, drainctl cannot write
 * anything, nobody but sipdrain-passwd reads or writes credentials - and
 * none can create a table. That the grants are enough is the rest of the
 * suite: every service under test logs in as its own role (sdt_dsn_as). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sipdrain/pg.h"
#include "support.h"

struct check {
    const char *role, *sql;
    bool allowed;
};

static const struct check checks[] = {
    /* sip-edge: its calls and registrations, not the drains */
    {"sipdrain_edge", "SELECT count(*) FROM drains", true},
    {"sipdrain_edge", "UPDATE drains SET phase = 'completed'", false},
    {"sipdrain_edge", "UPDATE sites SET drained_by = NULL", false},
    {"sipdrain_edge", "DELETE FROM agents", false},
    {"sipdrain_edge",
     "INSERT INTO drain_agents (drain_id, agent_id, logout_sent_at)"
     " VALUES (gen_random_uuid(), 'a', now())",
     false},
    {"sipdrain_edge",
     "INSERT INTO sip_credentials (dn, realm, algorithm, ha1) VALUES"
     " ('2001', 'r', 'MD5', '00000000000000000000000000000000')",
     false},
    {"sipdrain_edge", "INSERT INTO inbox (consumer, event_id) VALUES ('x', gen_random_uuid())",
     false},
    /* the queue (migration 0006): the edge's; agent-state does not touch it */
    {"sipdrain_agent_state", "DELETE FROM waiting_calls", false},
    /* agent-state: agents, not calls, edges or credentials */
    {"sipdrain_agent_state", "SELECT count(*) FROM agents", true},
    {"sipdrain_agent_state", "UPDATE drains SET phase = 'completed'", false},
    {"sipdrain_agent_state", "UPDATE edges SET state = 'active'", false},
    {"sipdrain_agent_state", "DELETE FROM calls", false},
    {"sipdrain_agent_state", "SELECT count(*) FROM sip_credentials", false},
    {"sipdrain_agent_state", "DELETE FROM registrations", false},
    /* drain-orchestrator: drains, not calls, registrations or credentials */
    {"sipdrain_orchestrator", "SELECT count(*) FROM drains", true},
    {"sipdrain_orchestrator", "DELETE FROM calls", false},
    {"sipdrain_orchestrator", "DELETE FROM agents", false},
    {"sipdrain_orchestrator", "DELETE FROM registrations", false},
    {"sipdrain_orchestrator", "SELECT count(*) FROM sip_credentials", false},
    /* drainctl reads drains, edges and agents; writes nothing */
    {"sipdrain_drainctl", "SELECT count(*) FROM drains", true},
    {"sipdrain_drainctl", "UPDATE drains SET phase = 'completed'", false},
    {"sipdrain_drainctl", "INSERT INTO outbox (owner, topic, payload) VALUES ('x', 't', 'p')",
     false},
    {"sipdrain_drainctl", "SELECT count(*) FROM sip_credentials", false},
    {"sipdrain_drainctl", "DELETE FROM waiting_calls", false},
    /* sipdrain-passwd: credentials only */
    {"sipdrain_passwd", "SELECT count(*) FROM sip_credentials", true},
    {"sipdrain_passwd", "SELECT count(*) FROM agents", false},
    {"sipdrain_passwd", "UPDATE edges SET state = 'active'", false},
    /* nobody creates tables */
    {"sipdrain_edge", "CREATE TABLE mine (x int)", false},
    {"sipdrain_orchestrator", "CREATE TABLE mine (x int)", false},
};

Test(roles, each_program_role_is_refused_what_another_program_owns, .timeout = 120)
{
    char dsn[512], as[512];
    size_t wrong = 0;

    sdt_db_create(dsn, sizeof(dsn));
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        const struct check *c = &checks[i];
        struct sd_err err = {0};
        struct sd_pg *pg;
        int rc;

        sdt_dsn_as(dsn, c->role, as, sizeof(as));
        pg = sd_pg_new(as, "test_roles");
        rc = sd_pg_exec(pg, c->sql, 0, NULL, &err);
        if (c->allowed) {
            cr_expect_geq(rc, 0, "%s: %s: %s", c->role, c->sql, err.text);
            wrong += rc < 0;
        } else {
            cr_expect_lt(rc, 0, "%s may: %s", c->role, c->sql);
            cr_expect(rc >= 0 || strstr(err.text, "permission denied") != NULL, "%s: %s: %s",
                      c->role, c->sql, err.text);
            wrong += rc >= 0 || strstr(err.text, "permission denied") == NULL;
        }
        sd_pg_free(pg);
    }
    cr_log_info("%zu checks, %zu wrong", sizeof(checks) / sizeof(checks[0]), wrong);
}

/* sipdrain-migrate --role-passwords: each listed program role gets LOGIN
 * and a SCRAM-SHA-256 verifier (never the password itself); a line naming
 * any other role is refused (exit 1) and changes nothing. */
Test(roles, migrate_sets_the_program_roles_passwords_as_scram_verifiers, .timeout = 120)
{
    char dsn[512], bin[1024], path[64], log[64], envv[600];
    const char *args[] = {"--role-passwords", path, NULL};
    const char *env[2] = {envv, NULL};
    FILE *f;

    sdt_db_create(dsn, sizeof(dsn));
    snprintf(bin, sizeof(bin), "%s/sipdrain-migrate", getenv("SIPDRAIN_BIN_DIR"));
    snprintf(envv, sizeof(envv), "SIPDRAIN_PG_DSN=%s", dsn);
    snprintf(path, sizeof(path), "/tmp/sd-role-pw-%d", (int)getpid());
    snprintf(log, sizeof(log), "/tmp/sd-role-pw-%d.log", (int)getpid());
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("# role password\nsipdrain_drainctl correct horse battery\n", f);
    fclose(f);
    cr_expect_eq(WEXITSTATUS(sdt_wait(sdt_spawn(bin, args, env, log), 30000)), 0, "%s", log);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM pg_authid WHERE rolname ="
                                    " 'sipdrain_drainctl' AND rolcanlogin AND"
                                    " rolpassword LIKE 'SCRAM-SHA-256$%'"),
                 1, "a verifier, and LOGIN");
    cr_expect(sdt_file_has(log, "role password set") && !sdt_file_has(log, "horse"), "%s", log);

    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("postgres owned\n", f);
    fclose(f);
    cr_expect_eq(WEXITSTATUS(sdt_wait(sdt_spawn(bin, args, env, log), 30000)), 1, "%s", log);
    cr_expect(sdt_file_has(log, "not a program role"), "%s", log);
    cr_expect_eq(sdt_pg_scalar(dsn, "SELECT count(*) FROM pg_authid WHERE rolname = 'postgres'"
                                    " AND rolpassword IS NOT NULL"),
                 0, "postgres untouched");
    unlink(path);
    unlink(log);
}
