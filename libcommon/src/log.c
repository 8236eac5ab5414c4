/* log.c - key=value log lines (see sipdrain/log.h). */
#include <stdarg.h>
#include <stdbool.h>
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

/* Appends one string value: as it is when it is a plain token (no space,
 * quote, backslash, '=' or control character: what a key=value parser
 * reads back unchanged), else escaped, and in quotes unless the format
 * already put it between quotes (in_quotes). Values come from the network
 * and from events: a line end or a pair in one must not forge a log line
 * or a field (issue #15). */
static size_t append_value(char *buf, size_t size, size_t pos, const char *s, bool in_quotes)
{
    bool plain = s[0] != '\0';

    for (const unsigned char *p = (const unsigned char *)s; *p && plain; p++)
        plain = *p > 0x20 && *p != 0x7f && *p != '"' && *p != '\\' && *p != '=';
    if (plain) {
        int n = snprintf(buf + pos, pos < size ? size - pos : 0, "%s", s);
        return pos + (n > 0 ? (size_t)n : 0);
    }
    if (!in_quotes)
        return append_quoted(buf, size, pos, s);
    /* between the format's own quotes: escaped, without quotes of ours */
    {
        char tmp[1024];
        size_t len = append_quoted(tmp, sizeof(tmp), 0, s);

        if (len >= sizeof(tmp))
            len = sizeof(tmp) - 1;
        tmp[len] = '\0';
        if (len >= 2) {
            tmp[len - 1] = '\0'; /* the closing quote */
            len = (size_t)snprintf(buf + pos, pos < size ? size - pos : 0, "%s", tmp + 1);
            return pos + len;
        }
        return pos;
    }
}

/* vsnprintf for the key=value part, with every %s value passed through
 * append_value. The other conversions (numbers, %c, %p) cannot break a
 * line and are formatted as they are. The format is the caller's own
 * literal, checked by the compiler (SD_PRINTF). */
static void format_pairs(char *buf, size_t size, const char *fmt, va_list ap)
{
    size_t pos = 0;
    bool in_quotes = false;

    buf[0] = '\0';
    for (const char *f = fmt; *f != '\0' && pos + 1 < size;) {
        char spec[32], piece[1024];
        const char *start = f;
        int width = -1, prec = -1, longs = 0, n;
        bool size_t_arg = false, star_w = false, star_p = false;

        if (*f != '%') {
            if (*f == '"')
                in_quotes = !in_quotes;
            buf[pos++] = *f++;
            buf[pos] = '\0';
            continue;
        }
        f++;
        if (*f == '%') {
            buf[pos++] = '%';
            buf[pos] = '\0';
            f++;
            continue;
        }
        f += strspn(f, "-+ #0");
        if (*f == '*') {
            star_w = true;
            f++;
        } else {
            f += strspn(f, "0123456789");
        }
        if (*f == '.') {
            f++;
            if (*f == '*') {
                star_p = true;
                f++;
            } else {
                f += strspn(f, "0123456789");
            }
        }
        for (; *f == 'h' || *f == 'l' || *f == 'z' || *f == 'j' || *f == 't' || *f == 'L'; f++) {
            if (*f == 'l')
                longs++;
            else if (*f == 'z' || *f == 'j' || *f == 't')
                size_t_arg = true;
        }
        if (*f == '\0' || (size_t)(f - start + 1) >= sizeof(spec))
            break; /* not a format this code knows: stop, never guess */
        memcpy(spec, start, (size_t)(f - start + 1));
        spec[f - start + 1] = '\0';
        if (star_w)
            width = va_arg(ap, int);
        if (star_p)
            prec = va_arg(ap, int);
        switch (*f) {
        case 's': {
            const char *v = va_arg(ap, const char *);
            char value[1024];

            if (star_w && star_p)
                snprintf(value, sizeof(value), spec, width, prec, v ? v : "(null)");
            else if (star_w || star_p)
                snprintf(value, sizeof(value), spec, star_w ? width : prec, v ? v : "(null)");
            else
                snprintf(value, sizeof(value), spec, v ? v : "(null)");
            pos = append_value(buf, size, pos, value, in_quotes);
            n = -1;
            break;
        }
        case 'c': {
            char one[2] = {(char)va_arg(ap, int), '\0'};

            pos = append_value(buf, size, pos, one, in_quotes);
            n = -1;
            break;
        }
        case 'd':
        case 'i':
        case 'u':
        case 'x':
        case 'X':
        case 'o':
            if (size_t_arg)
                n = snprintf(piece, sizeof(piece), spec, va_arg(ap, size_t));
            else if (longs >= 2)
                n = snprintf(piece, sizeof(piece), spec, va_arg(ap, long long));
            else if (longs == 1)
                n = snprintf(piece, sizeof(piece), spec, va_arg(ap, long));
            else if (star_w || star_p)
                n = snprintf(piece, sizeof(piece), spec, star_w ? width : prec, va_arg(ap, int));
            else
                n = snprintf(piece, sizeof(piece), spec, va_arg(ap, int));
            break;
        case 'f':
        case 'e':
        case 'g':
        case 'a':
        case 'F':
        case 'E':
        case 'G':
        case 'A':
            if (star_w || star_p)
                n = snprintf(piece, sizeof(piece), spec, star_w ? width : prec, va_arg(ap, double));
            else
                n = snprintf(piece, sizeof(piece), spec, va_arg(ap, double));
            break;
        case 'p':
            n = snprintf(piece, sizeof(piece), spec, va_arg(ap, void *));
            break;
        default:
            n = -2; /* unknown conversion: stop */
            break;
        }
        if (n == -2)
            break;
        if (n >= 0)
            pos += (size_t)snprintf(buf + pos, size - pos, "%s", piece);
        if (pos >= size)
            pos = size - 1;
        buf[pos] = '\0';
        f++;
    }
    if (pos >= size)
        pos = size - 1;
    buf[pos] = '\0';
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
        format_pairs(kv, sizeof(kv), kv_fmt, ap);
        va_end(ap);
    }
    len = sd_log_format(line, sizeof(line) - 1, level, msg, kv);
    line[len++] = '\n';
    /* One write per line: lines from several threads never interleave. */
    if (write(log_fd, line, len) < 0) {
        /* Nowhere left to report it. */
    }
}
