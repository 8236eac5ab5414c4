/* log: one key=value line per event, levels, service/instance context. */
#include <criterion/criterion.h>
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

Test(log, level_names_parse_both_ways)
{
    enum sd_log_level l;

    for (int i = 0; i < SD_LOG_LEVEL_COUNT; i++) {
        cr_assert_eq(sd_log_level_parse(sd_log_level_name((enum sd_log_level)i), &l), 0);
        cr_expect_eq((int)l, i);
    }
    cr_expect_eq(sd_log_level_parse("loud", &l), -1);
}
