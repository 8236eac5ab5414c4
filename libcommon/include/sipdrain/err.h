/* err.h - error value carried back to the caller.
 *
 * Every fallible libcommon function returns 0 / -1 (or a count / -1) and
 * fills a caller-owned struct sd_err. The text is written for people: it is
 * what ends up in a log line and in a dead-letter record's reason.
 */
#ifndef SIPDRAIN_ERR_H
#define SIPDRAIN_ERR_H

#define SD_ERR_TEXT_MAX 512

enum sd_err_code {
    SD_OK = 0,
    SD_ERR_INVALID,   /* bad input: will never succeed, dead-letter or refuse it */
    SD_ERR_TRANSIENT, /* a server went away or timed out: retry later */
    SD_ERR_CONFIG,    /* bad configuration: exit 2 at start-up */
    SD_ERR_INTERNAL,  /* a bug or out of memory */
    SD_ERR_CODE_COUNT
};

struct sd_err {
    enum sd_err_code code;
    char text[SD_ERR_TEXT_MAX];
};

#define SD_MUST_CHECK   __attribute__((warn_unused_result))
#define SD_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Set code and text; returns -1 so callers can `return sd_err_set(...)`. */
int sd_err_set(struct sd_err *err, enum sd_err_code code, const char *fmt, ...) SD_PRINTF(3, 4);
void sd_err_clear(struct sd_err *err);
const char *sd_err_code_name(enum sd_err_code code);

#endif
