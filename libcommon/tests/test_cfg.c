/* cfg: table-driven loader - defaults, file, environment, ranges, errors. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sipdrain/cfg.h"

struct tcfg {
    char *site;
    long reject_code;
    long timeout;
    bool workspace;
    int level;
};

static const struct sd_cfg_item items[] = {
    {"SIPDRAIN_SITE", SD_CFG_STRING, offsetof(struct tcfg, site), 0, 0, NULL, NULL, true,
     "site id"},
    {"SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE", SD_CFG_INT, offsetof(struct tcfg, reject_code), 300, 699,
     NULL, "503", false, "reject code"},
    {"SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT", SD_CFG_INT, offsetof(struct tcfg, timeout), 0, 3600,
     NULL, "32", false, "seconds"},
    {"SIPDRAIN_TEST_WORKSPACE", SD_CFG_BOOL, offsetof(struct tcfg, workspace), 0, 0, NULL, "false",
     false, "flag"},
    {"SIPDRAIN_LOG_LEVEL", SD_CFG_ENUM, offsetof(struct tcfg, level), 0, 0, "debug|info|warn|error",
     "info", false, "level"},
};
#define N (sizeof(items) / sizeof(items[0]))

static void clean_env(void)
{
    for (size_t i = 0; i < N; i++)
        unsetenv(items[i].name);
    unsetenv("SIPDRAIN_SITE_FILE");
}

static char *write_file(const char *text)
{
    static char path[64];
    int fd;

    strcpy(path, "/tmp/sd-cfg-XXXXXX");
    fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

TestSuite(cfg, .init = clean_env);

Test(cfg, defaults_apply_when_nothing_is_set)
{
    struct tcfg c = {0};
    struct sd_err err = {0};

    setenv("SIPDRAIN_SITE", "site1", 1);
    cr_assert_eq(sd_cfg_load(items, N, &c, NULL, &err), 0, "%s", err.text);
    cr_expect_str_eq(c.site, "site1");
    cr_expect_eq(c.reject_code, 503);
    cr_expect_eq(c.timeout, 32);
    cr_expect_eq(c.workspace, false);
    cr_expect_eq(c.level, 1);
    sd_cfg_free(items, N, &c);
    cr_expect_null(c.site);
}

Test(cfg, missing_required_key_names_the_variable)
{
    struct tcfg c = {0};
    struct sd_err err = {0};

    cr_assert_eq(sd_cfg_load(items, N, &c, NULL, &err), -1);
    cr_expect_eq(err.code, SD_ERR_CONFIG);
    cr_expect(strstr(err.text, "SIPDRAIN_SITE is required") != NULL, "%s", err.text);
    sd_cfg_free(items, N, &c);
}

Test(cfg, out_of_range_names_variable_and_range)
{
    struct tcfg c = {0};
    struct sd_err err = {0};

    setenv("SIPDRAIN_SITE", "site1", 1);
    setenv("SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE", "200", 1);
    cr_assert_eq(sd_cfg_load(items, N, &c, NULL, &err), -1);
    cr_expect(strstr(err.text, "SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE=200 is out of range") != NULL,
              "%s", err.text);
    cr_expect(strstr(err.text, "300..699") != NULL, "%s", err.text);
    sd_cfg_free(items, N, &c);
}

Test(cfg, not_an_integer_is_refused)
{
    struct tcfg c = {0};
    struct sd_err err = {0};

    setenv("SIPDRAIN_SITE", "site1", 1);
    setenv("SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT", "32s", 1);
    cr_assert_eq(sd_cfg_load(items, N, &c, NULL, &err), -1);
    cr_expect(strstr(err.text, "is not an integer") != NULL, "%s", err.text);
    sd_cfg_free(items, N, &c);
}

Test(cfg, bad_enum_and_bool_are_refused)
{
    struct tcfg c = {0};
    struct sd_err err = {0};

    setenv("SIPDRAIN_SITE", "site1", 1);
    setenv("SIPDRAIN_LOG_LEVEL", "verbose", 1);
    cr_assert_eq(sd_cfg_load(items, N, &c, NULL, &err), -1);
    cr_expect(strstr(err.text, "debug|info|warn|error") != NULL, "%s", err.text);
    unsetenv("SIPDRAIN_LOG_LEVEL");
    setenv("SIPDRAIN_TEST_WORKSPACE", "maybe", 1);
    cr_assert_eq(sd_cfg_load(items, N, &c, NULL, &err), -1);
    cr_expect(strstr(err.text, "not a boolean") != NULL, "%s", err.text);
    sd_cfg_free(items, N, &c);
}

Test(cfg, file_sets_values_and_environment_overrides_it)
{
    struct tcfg c = {0};
    struct sd_err err = {0};
    char *path = write_file("# edge config\nSIPDRAIN_SITE = site2\n"
                            "shutdown-sip-reject-code = 603\n"
                            "SIPDRAIN_TEST_WORKSPACE=yes\n"
                            "graceful-shutdown-sip-timeout=\"10\"\n");

    setenv("SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE", "302", 1);
    cr_assert_eq(sd_cfg_load(items, N, &c, path, &err), 0, "%s", err.text);
    cr_expect_str_eq(c.site, "site2");
    cr_expect_eq(c.reject_code, 302, "environment wins over the file");
    cr_expect_eq(c.timeout, 10);
    cr_expect_eq(c.workspace, true);
    sd_cfg_free(items, N, &c);
    unlink(path);
}

Test(cfg, unknown_key_in_file_is_an_error_with_line_number)
{
    struct tcfg c = {0};
    struct sd_err err = {0};
    char *path = write_file("SIPDRAIN_SITE=site2\nSIPDRAIN_STIE=oops\n");

    cr_assert_eq(sd_cfg_load(items, N, &c, path, &err), -1);
    cr_expect(strstr(err.text, ":2: unknown setting SIPDRAIN_STIE") != NULL, "%s", err.text);
    sd_cfg_free(items, N, &c);
    unlink(path);
}

Test(cfg, missing_file_is_an_error)
{
    struct tcfg c = {0};
    struct sd_err err = {0};

    cr_assert_eq(sd_cfg_load(items, N, &c, "/nonexistent/sipdrain.conf", &err), -1);
    cr_expect(strstr(err.text, "cannot read config file") != NULL, "%s", err.text);
}

Test(cfg, load_or_exit_exits_2_with_the_message)
{
    int fds[2], status;
    char buf[512] = "";
    pid_t pid;

    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        struct tcfg c = {0};
        dup2(fds[1], 2);
        unsetenv("SIPDRAIN_CONFIG");
        setenv("SIPDRAIN_SITE", "site1", 1);
        setenv("SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE", "700", 1);
        sd_cfg_load_or_exit("sip-edge", items, N, &c);
        _exit(0);
    }
    close(fds[1]);
    cr_assert(read(fds[0], buf, sizeof(buf) - 1) > 0);
    waitpid(pid, &status, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    cr_expect(strstr(buf, "sip-edge: configuration error: SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE=700") !=
                  NULL,
              "%s", buf);
}

/* NAME_FILE (Docker secrets): the value is the file's content less its line
 * end; both NAME and NAME_FILE, an unreadable file, an empty one and a
 * non-string setting's _FILE are refused, and no message shows the value. */
Test(cfg, a_string_setting_comes_from_the_file_named_by_its_file_variable)
{
    struct tcfg c = {0};
    struct sd_err err = {0};
    char secret[64];

    snprintf(secret, sizeof(secret), "%s", write_file("s3cr3t-site\r\n"));
    setenv("SIPDRAIN_SITE_FILE", secret, 1);
    cr_assert_eq(sd_cfg_load(items, N, &c, NULL, &err), 0, "%s", err.text);
    cr_expect_str_eq(c.site, "s3cr3t-site", "the file's content, less its line end");
    sd_cfg_free(items, N, &c);

    setenv("SIPDRAIN_SITE", "site2", 1);
    cr_expect_eq(sd_cfg_load(items, N, &c, NULL, &err), -1);
    cr_expect(strstr(err.text, "SIPDRAIN_SITE and SIPDRAIN_SITE_FILE are both set") != NULL, "%s",
              err.text);
    sd_cfg_free(items, N, &c);
    unsetenv("SIPDRAIN_SITE");

    setenv("SIPDRAIN_SITE_FILE", "/nonexistent/secret", 1);
    cr_expect_eq(sd_cfg_load(items, N, &c, NULL, &err), -1);
    cr_expect(strstr(err.text, "SIPDRAIN_SITE_FILE: cannot read /nonexistent/secret") != NULL, "%s",
              err.text);
    sd_cfg_free(items, N, &c);

    unlink(secret);
    snprintf(secret, sizeof(secret), "%s", write_file("\n"));
    setenv("SIPDRAIN_SITE_FILE", secret, 1);
    cr_expect_eq(sd_cfg_load(items, N, &c, NULL, &err), -1);
    cr_expect(strstr(err.text, "SIPDRAIN_SITE is empty (from the file") != NULL, "%s", err.text);
    sd_cfg_free(items, N, &c);
    unlink(secret);
    unsetenv("SIPDRAIN_SITE_FILE");

    /* an integer setting has no _FILE: the variable is not looked at */
    setenv("SIPDRAIN_SITE", "site2", 1);
    setenv("SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE_FILE", "/nonexistent", 1);
    cr_expect_eq(sd_cfg_load(items, N, &c, NULL, &err), 0, "%s", err.text);
    cr_expect_eq(c.reject_code, 503);
    unsetenv("SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE_FILE");
    sd_cfg_free(items, N, &c);
}

/* sd_cfg_getenv, for a CLI's settings: NAME, NAME_FILE, neither, both */
Test(cfg, a_cli_setting_comes_from_its_variable_or_its_file)
{
    struct sd_err err = {0};
    char *v = NULL, path[64];

    unsetenv("SIPDRAIN_PG_DSN");
    unsetenv("SIPDRAIN_PG_DSN_FILE");
    cr_assert_eq(sd_cfg_getenv("SIPDRAIN_PG_DSN", &v, &err), 0);
    cr_expect_null(v, "neither set");
    setenv("SIPDRAIN_PG_DSN", "postgresql://a@b/c", 1);
    cr_assert_eq(sd_cfg_getenv("SIPDRAIN_PG_DSN", &v, &err), 0, "%s", err.text);
    cr_expect_str_eq(v, "postgresql://a@b/c");
    free(v);
    snprintf(path, sizeof(path), "%s", write_file("postgresql://role:pw@host/db\n"));
    setenv("SIPDRAIN_PG_DSN_FILE", path, 1);
    cr_expect_eq(sd_cfg_getenv("SIPDRAIN_PG_DSN", &v, &err), -1, "both set");
    cr_expect(strstr(err.text, "both set") != NULL, "%s", err.text);
    unsetenv("SIPDRAIN_PG_DSN");
    cr_assert_eq(sd_cfg_getenv("SIPDRAIN_PG_DSN", &v, &err), 0, "%s", err.text);
    cr_expect_str_eq(v, "postgresql://role:pw@host/db", "the file, less its line end");
    free(v);
    unsetenv("SIPDRAIN_PG_DSN_FILE");
    unlink(path);
}
