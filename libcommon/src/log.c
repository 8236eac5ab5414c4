/* log.c - key=value log lines (see sipdrain/log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sipdrain/event.h"
#include "sipdrain/log.h"

static char log_service[64] = "sipdrain";
static char log_instance[64];
static enum sd_log_level log_min = SD_LOG_INFO;
static int log_fd = STDERR_FILENO;

static const char *const level_names[SD_LOG_LEVEL_COUNT] = {
    [SD_LOG_DEBUG] = "debug",
    [SD_LOG_INFO] = "info",
    [SD_LOG_WARN] = "warn",
    [SD_LOG_ERROR] = "error",
};

void sd_log_init(const char *service, const char *instance, enum sd_log_level min_level)
{
    snprintf(log_service, sizeof(log_service), "%s", service ? service : "sipdrain");
    snprintf(log_instance, sizeof(log_instance), "%s", instance ? instance : "");
    log_min = min_level;
}

void sd_log_set_level(enum sd_log_level min_level)
{
    log_min = min_level;
}

void sd_log_set_fd(int fd)
{
    log_fd = fd < 0 ? STDERR_FILENO : fd;
}

const char *sd_log_level_name(enum sd_log_level level)
{
    if ((unsigned)level >= SD_LOG_LEVEL_COUNT)
        return "unknown";
    return level_names[level];
}

int sd_log_level_parse(const char *text, enum sd_log_level *out)
{
    for (int i = 0; i < SD_LOG_LEVEL_COUNT; i++) {
        if (text != NULL && strcmp(text, level_names[i]) == 0) {
            *out = (enum sd_log_level)i;
            return 0;
        }
    }
    return -1;
}

int sd_log_enabled(enum sd_log_level level)
{
    return level >= log_min;
}

/* Appends s quoted, escaping what would break a line or a key=value parser. */
static size_t append_quoted(char *buf, size_t size, size_t pos, const char *s)
{
    static const char hex[] = "0123456789abcdef";

#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (pos + 1 < size)                                                                        \
            buf[pos] = (c);                                                                        \
        pos++;                                                                                     \
    } while (0)
    PUT('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            PUT('\\');
            PUT((char)c);
        } else if (c == '\n') {
            PUT('\\');
            PUT('n');
        } else if (c < 0x20 || c == 0x7f) {
            PUT('\\');
            PUT('x');
            PUT(hex[c >> 4]);
            PUT(hex[c & 15]);
        } else {
            PUT((char)c);
        }
    }
    PUT('"');
#undef PUT
    return pos;
}

size_t sd_log_format(char *buf, size_t size, enum sd_log_level level, const char *msg,
                     const char *kv)
{
    char ts[SD_EVENT_TIME_LEN + 1];
    size_t pos;
    int n;

    sd_time_format_ms(sd_wall_ms(), ts);
    n = snprintf(buf, size, "ts=%s lvl=%s svc=%s", ts, sd_log_level_name(level), log_service);
    pos = n > 0 ? (size_t)n : 0;
    if (log_instance[0] != '\0' && pos < size) {
        n = snprintf(buf + pos, size - pos, " inst=%s", log_instance);
        pos += n > 0 ? (size_t)n : 0;
    }
    if (pos + 5 < size) {
        memcpy(buf + pos, " msg=", 5);
        pos += 5;
    }
    pos = append_quoted(buf, size, pos, msg ? msg : "");
    if (kv != NULL && kv[0] != '\0' && pos + 1 < size) {
        n = snprintf(buf + pos, size - pos, " %s", kv);
        pos += n > 0 ? (size_t)n : 0;
    }
    if (pos >= size)
        pos = size - 1;
    buf[pos] = '\0';
    return pos;
}

void sd_log(enum sd_log_level level, const char *msg, const char *kv_fmt, ...)
{
    char kv[2048] = "";
    char line[4096];
    size_t len;
    va_list ap;

    if (level < log_min)
        return;
    if (kv_fmt != NULL && kv_fmt[0] != '\0') {
        va_start(ap, kv_fmt);
        vsnprintf(kv, sizeof(kv), kv_fmt, ap);
        va_end(ap);
    }
    len = sd_log_format(line, sizeof(line) - 1, level, msg, kv);
    line[len++] = '\n';
    /* One write per line: lines from several threads never interleave. */
    if (write(log_fd, line, len) < 0) {
        /* Nowhere left to report it. */
    }
}
