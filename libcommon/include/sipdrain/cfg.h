/* cfg.h - table-driven configuration loader.
 *
 * A service describes its settings once, as a table of struct sd_cfg_item
 * (name, type, range, default, required), and sd_cfg_load() fills a struct
 * from an optional file overridden by the environment. Names are the
 * environment variables of DESIGN.md §5 (SIPDRAIN_*). In the file a setting
 * may also be spelled the way contact-centre operators know it:
 * SIPDRAIN_SHUTDOWN_SIP_REJECT_CODE is also `shutdown-sip-reject-code`.
 *
 *     # /etc/sipdrain/edge.conf
 *     SIPDRAIN_SITE=site2
 *     shutdown-sip-reject-code = 503
 *
 * A string setting can come from a file instead: NAME_FILE=/run/secrets/x
 * in the environment sets NAME to that file's content, less trailing line
 * ends (Docker secrets, Kubernetes Secrets as files; e.g.
 * SIPDRAIN_PG_DSN_FILE). Setting both NAME and NAME_FILE is an error.
 *
 * A bad value is an error naming the variable and the accepted range;
 * sd_cfg_load_or_exit() prints it and exits 2.
 */
#ifndef SIPDRAIN_CFG_H
#define SIPDRAIN_CFG_H

#include <stdbool.h>
#include <stddef.h>

#include "sipdrain/err.h"

#define SD_CFG_FILE_MAX 4096 /* the largest NAME_FILE content */

enum sd_cfg_type {
    SD_CFG_STRING, /* char * (owned by the struct; sd_cfg_free releases it) */
    SD_CFG_INT,    /* long, within [min, max] */
    SD_CFG_BOOL,   /* bool: true/false, yes/no, on/off, 1/0 */
    SD_CFG_ENUM,   /* int: index into the '|'-separated `choices` */
    SD_CFG_TYPE_COUNT
};

struct sd_cfg_item {
    const char *name; /* environment variable, e.g. "SIPDRAIN_RETRY_AFTER" */
    enum sd_cfg_type type;
    size_t offset;       /* offsetof(struct your_cfg, field) */
    long min, max;       /* SD_CFG_INT only */
    const char *choices; /* SD_CFG_ENUM only, e.g. "debug|info|warn|error" */
    const char *def;     /* default as text; NULL = no default */
    bool required;       /* must be set (file or environment) when there is no default */
    const char *help;
};

/* Loads items into dst: defaults, then `file` (may be NULL; a missing file
 * named explicitly is an error), then the environment. On error dst may be
 * partly filled: call sd_cfg_free() either way. */
int sd_cfg_load(const struct sd_cfg_item *items, size_t n, void *dst, const char *file,
                struct sd_err *err) SD_MUST_CHECK;

/* As sd_cfg_load with file = $SIPDRAIN_CONFIG; prints the error to stderr and
 * exits 2 on failure. For a service's start-up. */
void sd_cfg_load_or_exit(const char *service, const struct sd_cfg_item *items, size_t n, void *dst);

void sd_cfg_free(const struct sd_cfg_item *items, size_t n, void *dst);

/* One text setting outside a table (a CLI's): NAME, or the content of the
 * file NAME_FILE names. *value: malloc'ed, NULL when neither is set. -1 on
 * an unreadable or empty file, or both set. */
int sd_cfg_getenv(const char *name, char **value, struct sd_err *err) SD_MUST_CHECK;

/* Writes "NAME (type, range, default) help" lines, for --help. */
void sd_cfg_usage(const struct sd_cfg_item *items, size_t n, int fd);

const char *sd_cfg_type_name(enum sd_cfg_type type);

#endif
