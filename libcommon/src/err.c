/* err.c - error values (see sipdrain/err.h). */
#include <stdarg.h>
#include <stdio.h>

#include "sipdrain/err.h"

int sd_err_set(struct sd_err *err, enum sd_err_code code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return -1;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return -1;
}

void sd_err_clear(struct sd_err *err)
{
    err->code = SD_OK;
    err->text[0] = '\0';
}

const char *sd_err_code_name(enum sd_err_code code)
{
    static const char *const names[SD_ERR_CODE_COUNT] = {
        [SD_OK] = "ok",
        [SD_ERR_INVALID] = "invalid",
        [SD_ERR_TRANSIENT] = "transient",
        [SD_ERR_CONFIG] = "config",
        [SD_ERR_INTERNAL] = "internal",
    };
    if ((unsigned)code >= SD_ERR_CODE_COUNT)
        return "unknown";
    return names[code];
}
