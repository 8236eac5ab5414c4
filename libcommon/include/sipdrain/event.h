/* event.h - CloudEvents 1.0, structured JSON mode (DESIGN.md §2).
 *
 *   {"specversion":"1.0","id":"<uuid>","source":"sip-edge/edge-2a",
 *    "type":"call.ended","time":"2026-11-26T06:40:00.123Z",
 *    "datacontenttype":"application/json","data":{...}}
 *
 * sd_event_parse() validates the envelope and returns the reason as text when
 * it is not valid: that text goes into the dead-letter record. The payload of
 * each type is checked by its consumer (schemas/events/ describes them).
 */
#ifndef SIPDRAIN_EVENT_H
#define SIPDRAIN_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sipdrain/err.h"

#define SD_EVENT_ID_LEN     36
#define SD_EVENT_SOURCE_MAX 128
#define SD_EVENT_TYPE_MAX   64
#define SD_EVENT_TIME_LEN   24 /* 2026-11-26T06:40:00.123Z */
/* Larger messages are refused (dead-lettered): no event of ours comes close. */
#define SD_EVENT_MAX_BYTES (256 * 1024)

struct sd_event {
    char id[SD_EVENT_ID_LEN + 1];
    char source[SD_EVENT_SOURCE_MAX];
    char type[SD_EVENT_TYPE_MAX];
    char time[40];   /* as received; ours are SD_EVENT_TIME_LEN long */
    int64_t time_ms; /* milliseconds since the epoch, from `time` */
    json_t *data;    /* new reference, a JSON object; released by sd_event_clear */
};

/* Fills ev with a fresh UUID id, the current time, source and type. Takes
 * ownership of data (a JSON object; NULL means {}). */
int sd_event_init(struct sd_event *ev, const char *source, const char *type, json_t *data,
                  struct sd_err *err) SD_MUST_CHECK;

/* Encodes ev as compact JSON; returns a malloc'ed, NUL-terminated string
 * (free() it) and its length in *len, or NULL with err set. */
char *sd_event_encode(const struct sd_event *ev, size_t *len, struct sd_err *err) SD_MUST_CHECK;

/* Parses and validates buf[0..len). On success ev owns a new reference to
 * data. On failure err->code is SD_ERR_INVALID and err->text the reason,
 * e.g. "missing specversion", "invalid JSON at line 1 column 12: ...". */
int sd_event_parse(const void *buf, size_t len, struct sd_event *ev,
                   struct sd_err *err) SD_MUST_CHECK;

void sd_event_clear(struct sd_event *ev);

/* Random (version 4) UUID in lowercase 8-4-4-4-12 form. */
void sd_uuid_v4(char out[SD_EVENT_ID_LEN + 1]);
int sd_uuid_valid(const char *text);

/* RFC 3339 UTC with milliseconds. */
void sd_time_format_ms(int64_t ms_since_epoch, char out[SD_EVENT_TIME_LEN + 1]);
/* Accepts any RFC 3339 date-time (offset or Z, 0-9 fraction digits). */
int sd_time_parse_rfc3339(const char *text, int64_t *ms_since_epoch) SD_MUST_CHECK;

/* Wall clock and monotonic clock in milliseconds. */
int64_t sd_wall_ms(void);
int64_t sd_mono_ms(void);

#endif
