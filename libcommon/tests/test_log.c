/* log: one key=value line per event, levels, service/instance context. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sipdrain/log.h"

static size_t capture(char *buf, size_t size, void (*fn)(void))
{
    int fds[2];
    ssize_t n;

    cr_assert_eq(pipe(fds), 0);
    sd_log_set_fd(fds[1]);
    fn();
    sd_log_set_fd(-1);
    close(fds[1]);
    n = read(fds[0], buf, size - 1);
    close(fds[0]);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

static void log_two_levels(void)
{
    sd_log_init("sip-edge", "edge-2a", SD_LOG_INFO);
    sd_log_debug("hidden", "call=%s", "c1");
    sd_log_info("drain started", "site=%s calls=%d", "site2", 3);
}

Test(log, line_has_context_message_and_pairs_and_level_filters)
{
    char buf[1024];

    capture(buf, sizeof(buf), log_two_levels);
    cr_expect(strstr(buf, "hidden") == NULL, "debug must be filtered at info: %s", buf);
    cr_expect(strstr(buf, "lvl=info svc=sip-edge inst=edge-2a msg=\"drain started\" site=site2 "
                          "calls=3\n") != NULL,
              "%s", buf);
    cr_expect(strncmp(buf, "ts=", 3) == 0);
    cr_expect_eq(strchr(buf, '\n'), buf + strlen(buf) - 1, "exactly one line");
}

static void log_hostile_message(void)
{
    sd_log_init("agent-state", NULL, SD_LOG_DEBUG);
    sd_log_warn("bad \"quote\"\nnext\x01", NULL);
}

Test(log, message_is_escaped_to_stay_on_one_line)
{
    char buf[1024];

    capture(buf, sizeof(buf), log_hostile_message);
    cr_expect(strstr(buf, "lvl=warn svc=agent-state msg=\"bad \\\"quote\\\"\\nnext\\x01\"\n") !=
                  NULL,
              "%s", buf);
    cr_expect(strstr(buf, "inst=") == NULL);
}

static void log_hostile_values(void)
{
    sd_log_init("drain-orchestrator", NULL, SD_LOG_DEBUG);
    /* a requested_by that tries to end the line and forge another, one
     * that forges a pair, a value already between the format's quotes, a
     * plain one and numbers */
    sd_log_info("drain requested", "by=%s also=%s reason=\"%s\" site=%s n=%d size=%zu c=%c",
                "ops\nts=2026-12-06T00:00:00.000Z lvl=error msg=\"FORGED LINE\"", "x lvl=error",
                "a \"quoted\" \\ one\r", "site2", -7, (size_t)42, '\n');
}

/* Reads the key=value pairs of one line back (quoted values unescaped) and
 * returns the value of key in out, or false. */
static bool pair_of(const char *line, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);

    for (const char *p = line; *p;) {
        const char *k = p, *eq = strchr(p, '=');
        size_t n = 0;
        bool found;

        if (eq == NULL)
            return false;
        found = (size_t)(eq - k) == klen && strncmp(k, key, klen) == 0;
        p = eq + 1;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                char c = *p;
                if (c == '\\' && p[1] == 'n')
                    c = '\n', p++;
                else if (c == '\\' && p[1] == 'x' && p[2] && p[3]) {
                    char hex[3] = {p[2], p[3], 0};
                    c = (char)strtol(hex, NULL, 16);
                    p += 3;
                } else if (c == '\\' && p[1])
                    c = *++p;
                if (found && n + 1 < size)
                    out[n++] = c;
            }
            if (*p == '"')
                p++;
        } else {
            for (; *p && *p != ' ' && *p != '\n'; p++)
                if (found && n + 1 < size)
                    out[n++] = *p;
        }
        if (found) {
            out[n] = '\0';
            return true;
        }
        while (*p == ' ')
            p++;
        if (*p == '\n')
            return false;
    }
    return false;
}

/* Values from the network or from events cannot forge a line or a pair:
 * one line comes out, and parsing it back gives every value as it was. */
Test(log, hostile_values_stay_in_their_pair_and_read_back_unchanged)
{
    char buf[2048], v[512];

    capture(buf, sizeof(buf), log_hostile_values);
    cr_expect_eq(strchr(buf, '\n'), buf + strlen(buf) - 1, "exactly one line: %s", buf);
    cr_expect(strstr(buf, "lvl=error") == NULL || strstr(buf, "lvl=error") > strstr(buf, "by="),
              "%s", buf);
    cr_assert(pair_of(buf, "lvl", v, sizeof(v)));
    cr_expect_str_eq(v, "info", "the line's own level: %s", buf);
    cr_assert(pair_of(buf, "by", v, sizeof(v)), "%s", buf);
    cr_expect_str_eq(v, "ops\nts=2026-12-06T00:00:00.000Z lvl=error msg=\"FORGED LINE\"");
    cr_assert(pair_of(buf, "also", v, sizeof(v)), "%s", buf);
    cr_expect_str_eq(v, "x lvl=error");
    cr_assert(pair_of(buf, "reason", v, sizeof(v)), "%s", buf);
    cr_expect_str_eq(v, "a \"quoted\" \\ one\r");
    cr_expect(strstr(buf, " site=site2 n=-7 size=42 ") != NULL, "plain values as they are: %s",
              buf);
    cr_assert(pair_of(buf, "c", v, sizeof(v)), "%s", buf);
    cr_expect_str_eq(v, "\n");
}

Test(log, level_names_parse_both_ways)
{
    enum sd_log_level l;

    for (int i = 0; i < SD_LOG_LEVEL_COUNT; i++) {
        cr_assert_eq(sd_log_level_parse(sd_log_level_name((enum sd_log_level)i), &l), 0);
        cr_expect_eq((int)l, i);
    }
    cr_expect_eq(sd_log_level_parse("loud", &l), -1);
}
