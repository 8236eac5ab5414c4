/* log.h - one key=value line per event on stderr.
 *
 *   ts=2026-11-26T06:40:00.123Z lvl=info svc=sip-edge inst=edge-2a msg="drain started" site=site2
 *
 * sd_log() takes the message (quoted and escaped for you) and an optional
 * printf format of extra key=value pairs that the caller spells itself. Each
 * %s (and %c) value is written as it is when it is a plain token, else
 * escaped and quoted (escaped only where the format quotes it already:
 * reason=\"%s\"), so no value can end the line or forge a pair. A line
 * is written with one write(2), so lines from several threads never mix.
 */
#ifndef SIPDRAIN_LOG_H
#define SIPDRAIN_LOG_H

#include "sipdrain/err.h"

enum sd_log_level { SD_LOG_DEBUG, SD_LOG_INFO, SD_LOG_WARN, SD_LOG_ERROR, SD_LOG_LEVEL_COUNT };

/* service and instance are copied; instance may be NULL. */
void sd_log_init(const char *service, const char *instance, enum sd_log_level min_level);
void sd_log_set_level(enum sd_log_level min_level);
/* Write lines to fd instead of stderr (tests); -1 restores stderr. */
void sd_log_set_fd(int fd);
const char *sd_log_level_name(enum sd_log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 on anything else. */
int sd_log_level_parse(const char *text, enum sd_log_level *out) SD_MUST_CHECK;
int sd_log_enabled(enum sd_log_level level);

void sd_log(enum sd_log_level level, const char *msg, const char *kv_fmt, ...) SD_PRINTF(3, 4);

/* Formats one line into buf (no newline); returns its length. For tests and sd_log. */
size_t sd_log_format(char *buf, size_t size, enum sd_log_level level, const char *msg,
                     const char *kv);

#define sd_log_debug(msg, ...) sd_log(SD_LOG_DEBUG, msg, __VA_ARGS__)
#define sd_log_info(msg, ...)  sd_log(SD_LOG_INFO, msg, __VA_ARGS__)
#define sd_log_warn(msg, ...)  sd_log(SD_LOG_WARN, msg, __VA_ARGS__)
#define sd_log_error(msg, ...) sd_log(SD_LOG_ERROR, msg, __VA_ARGS__)

#endif
