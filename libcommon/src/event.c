/* event.c - CloudEvents 1.0 structured JSON (see sipdrain/event.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uuid/uuid.h>

#include "sipdrain/event.h"

int64_t sd_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sd_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sd_uuid_v4(char out[SD_EVENT_ID_LEN + 1])
{
    uuid_t u;

    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

int sd_uuid_valid(const char *text)
{
    if (text == NULL || strlen(text) != SD_EVENT_ID_LEN)
        return 0;
    for (int i = 0; i < SD_EVENT_ID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)text[i])) {
            return 0;
        }
    }
    return 1;
}

void sd_time_format_ms(int64_t ms, char out[SD_EVENT_TIME_LEN + 1])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    char tmp[96];

    gmtime_r(&secs, &tm);
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    memcpy(out, tmp, SD_EVENT_TIME_LEN);
    out[SD_EVENT_TIME_LEN] = '\0';
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
int sd_time_parse_rfc3339(const char *s, int64_t *ms_out)
{
    int year, mon, day, hour, min, sec, ms = 0, oh = 0, om = 0, sign = 0;
    const char *p;
    struct tm tm = {0};
    time_t t;

    if (s == NULL || strlen(s) < 20)
        return -1;
    if (digits(s, 4, &year) || s[4] != '-' || digits(s + 5, 2, &mon) || s[7] != '-' ||
        digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &hour) ||
        s[13] != ':' || digits(s + 14, 2, &min) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return -1;
    p = s + 19;
    if (*p == '.') {
        int n = 0;
        p++;
        while (isdigit((unsigned char)*p)) {
            if (n < 3)
                ms = ms * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0)
            return -1;
        for (; n < 3; n++)
            ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    t = timegm(&tm);
    *ms_out = ((int64_t)t - (int64_t)sign * (oh * 3600 + om * 60)) * 1000 + ms;
    return 0;
}

int sd_event_init(struct sd_event *ev, const char *source, const char *type, json_t *data,
                  struct sd_err *err)
{
    memset(ev, 0, sizeof(*ev));
    if (data == NULL)
        data = json_object();
    if (data == NULL || !json_is_object(data)) {
        json_decref(data);
        return sd_err_set(err, SD_ERR_INTERNAL, "event data must be a JSON object");
    }
    if (source == NULL || source[0] == '\0' || strlen(source) >= sizeof(ev->source) ||
        type == NULL || type[0] == '\0' || strlen(type) >= sizeof(ev->type)) {
        json_decref(data);
        return sd_err_set(err, SD_ERR_INTERNAL, "event source and type must be 1..%zu bytes",
                          sizeof(ev->type) - 1);
    }
    sd_uuid_v4(ev->id);
    strcpy(ev->source, source);
    strcpy(ev->type, type);
    ev->time_ms = sd_wall_ms();
    sd_time_format_ms(ev->time_ms, ev->time);
    ev->data = data; /* stolen */
    return 0;
}

char *sd_event_encode(const struct sd_event *ev, size_t *len, struct sd_err *err)
{
    json_t *root;
    char *text;

    /* "O" takes a new reference to data: root owns one, ev keeps its own. */
    root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "specversion", "1.0", "id", ev->id,
                     "source", ev->source, "type", ev->type, "time", ev->time, "datacontenttype",
                     "application/json", "data", ev->data ? ev->data : json_object());
    if (root == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "cannot encode event %s", ev->type);
        return NULL;
    }
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text == NULL) {
        sd_err_set(err, SD_ERR_INTERNAL, "cannot encode event %s", ev->type);
        return NULL;
    }
    if (len != NULL)
        *len = strlen(text);
    return text;
}

/* Copies the string member `name` of root into buf, or explains why not. */
static int get_string(json_t *root, const char *name, char *buf, size_t size, int required,
                      struct sd_err *err)
{
    json_t *v = json_object_get(root, name); /* borrowed */

    if (v == NULL) {
        if (!required) {
            buf[0] = '\0';
            return 0;
        }
        return sd_err_set(err, SD_ERR_INVALID, "missing %s", name);
    }
    if (!json_is_string(v))
        return sd_err_set(err, SD_ERR_INVALID, "%s must be a string", name);
    if (json_string_length(v) == 0)
        return sd_err_set(err, SD_ERR_INVALID, "%s is empty", name);
    if (json_string_length(v) >= size)
        return sd_err_set(err, SD_ERR_INVALID, "%s is longer than %zu bytes", name, size - 1);
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

int sd_event_parse(const void *buf, size_t len, struct sd_event *ev, struct sd_err *err)
{
    char specversion[16], ctype[64];
    json_error_t jerr;
    json_t *root = NULL, *data;
    int rc = -1;

    memset(ev, 0, sizeof(*ev));
    if (buf == NULL || len == 0)
        return sd_err_set(err, SD_ERR_INVALID, "empty message");
    if (len > SD_EVENT_MAX_BYTES)
        return sd_err_set(err, SD_ERR_INVALID, "event is %zu bytes, larger than the %d-byte limit",
                          len, SD_EVENT_MAX_BYTES);
    /* jansson rejects invalid UTF-8 and NUL bytes inside strings. */
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return sd_err_set(err, SD_ERR_INVALID, "invalid JSON at line %d column %d: %s", jerr.line,
                          jerr.column, jerr.text);
    if (!json_is_object(root)) {
        sd_err_set(err, SD_ERR_INVALID, "event is not a JSON object");
        goto out;
    }
    if (get_string(root, "specversion", specversion, sizeof(specversion), 1, err) < 0)
        goto out;
    if (strcmp(specversion, "1.0") != 0) {
        sd_err_set(err, SD_ERR_INVALID, "unsupported specversion \"%s\" (expected 1.0)",
                   specversion);
        goto out;
    }
    if (get_string(root, "id", ev->id, sizeof(ev->id), 1, err) < 0)
        goto out;
    if (!sd_uuid_valid(ev->id)) {
        sd_err_set(err, SD_ERR_INVALID, "id \"%s\" is not a UUID", ev->id);
        goto out;
    }
    if (get_string(root, "source", ev->source, sizeof(ev->source), 1, err) < 0 ||
        get_string(root, "type", ev->type, sizeof(ev->type), 1, err) < 0)
        goto out;
    if (get_string(root, "time", ev->time, sizeof(ev->time), 1, err) < 0)
        goto out;
    if (sd_time_parse_rfc3339(ev->time, &ev->time_ms) < 0) {
        sd_err_set(err, SD_ERR_INVALID, "time \"%s\" is not an RFC 3339 date-time", ev->time);
        goto out;
    }
    if (get_string(root, "datacontenttype", ctype, sizeof(ctype), 0, err) < 0)
        goto out;
    if (ctype[0] != '\0' && strcmp(ctype, "application/json") != 0) {
        sd_err_set(err, SD_ERR_INVALID, "datacontenttype \"%s\" is not application/json", ctype);
        goto out;
    }
    data = json_object_get(root, "data"); /* borrowed */
    if (data == NULL) {
        sd_err_set(err, SD_ERR_INVALID, "missing data");
        goto out;
    }
    if (!json_is_object(data)) {
        sd_err_set(err, SD_ERR_INVALID, "data must be a JSON object");
        goto out;
    }
    ev->data = json_incref(data); /* new: outlives root */
    rc = 0;
out:
    json_decref(root);
    if (rc < 0)
        ev->data = NULL;
    return rc;
}

void sd_event_clear(struct sd_event *ev)
{
    json_decref(ev->data);
    ev->data = NULL;
}
