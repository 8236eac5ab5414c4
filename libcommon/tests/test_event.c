/* event: CloudEvents 1.0 build / encode / parse / validate. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "sipdrain/event.h"

#define VALID_ID "3f1c6a9e-2b7d-4c1e-9a55-0d6f1e2a7b90"

static int parse_text(const char *text, struct sd_event *ev, struct sd_err *err)
{
    return sd_event_parse(text, strlen(text), ev, err);
}

Test(event, init_encode_parse_round_trip)
{
    struct sd_event ev, back;
    struct sd_err err = {0};
    size_t len;
    char *text;

    cr_assert_eq(sd_event_init(&ev, "sip-edge/edge-2a", "call.ended",
                               json_pack("{s:s, s:s}", "call_id", "c-1", "cause", "bye"), &err),
                 0, "%s", err.text);
    cr_expect(sd_uuid_valid(ev.id));
    cr_expect_eq(strlen(ev.time), SD_EVENT_TIME_LEN);
    text = sd_event_encode(&ev, &len, &err);
    cr_assert_not_null(text, "%s", err.text);
    cr_expect(strstr(text, "\"specversion\":\"1.0\"") != NULL, "%s", text);
    cr_expect(strstr(text, "\"datacontenttype\":\"application/json\"") != NULL, "%s", text);
    cr_assert_eq(sd_event_parse(text, len, &back, &err), 0, "%s", err.text);
    cr_expect_str_eq(back.id, ev.id);
    cr_expect_str_eq(back.type, "call.ended");
    cr_expect_str_eq(back.source, "sip-edge/edge-2a");
    cr_expect_eq(back.time_ms, ev.time_ms);
    cr_expect_str_eq(json_string_value(json_object_get(back.data, "call_id")), "c-1");
    free(text);
    sd_event_clear(&ev);
    sd_event_clear(&back);
}

Test(event, uuids_are_v4_and_distinct)
{
    char a[37], b[37];

    sd_uuid_v4(a);
    sd_uuid_v4(b);
    cr_expect(sd_uuid_valid(a));
    cr_expect_eq(a[14], '4', "version nibble");
    cr_expect_str_neq(a, b);
    cr_expect_not(sd_uuid_valid("not-a-uuid"));
    cr_expect_not(sd_uuid_valid("3f1c6a9e-2b7d-4c1e-9a55-0d6f1e2a7b9g"));
}

Test(event, time_formats_rfc3339_ms_and_parses_offsets)
{
    char t[SD_EVENT_TIME_LEN + 1];
    int64_t ms;

    sd_time_format_ms(1795675200123LL, t);
    cr_expect_str_eq(t, "2026-11-26T06:40:00.123Z");
    cr_assert_eq(sd_time_parse_rfc3339(t, &ms), 0);
    cr_expect_eq(ms, 1795675200123LL);
    cr_assert_eq(sd_time_parse_rfc3339("2026-11-26T07:40:00.123+01:00", &ms), 0);
    cr_expect_eq(ms, 1795675200123LL);
    cr_assert_eq(sd_time_parse_rfc3339("2026-11-26T06:40:00Z", &ms), 0);
    cr_expect_eq(ms, 1795675200000LL);
    cr_expect_eq(sd_time_parse_rfc3339("2026-11-26 04:00:00Z", &ms), -1);
    cr_expect_eq(sd_time_parse_rfc3339("2026-13-26T04:00:00Z", &ms), -1);
    cr_expect_eq(sd_time_parse_rfc3339("2026-11-26T04:00:00", &ms), -1);
}

/* Arrays, not pointers: Criterion copies parameters into a new process. */
struct bad_case {
    char text[320];
    char reason[80];
};

ParameterizedTestParameters(event, malformed_events_give_their_reason)
{
    static struct bad_case cases[] = {
        {"{\"specversion\":\"1.0\",\"id\":", "invalid JSON at line 1"},
        {"[1,2,3]", "event is not a JSON object"},
        {"{\"id\":\"" VALID_ID "\",\"source\":\"s\",\"type\":\"t\",\"time\":"
         "\"2026-11-26T04:00:00.000Z\",\"data\":{}}",
         "missing specversion"},
        {"{\"specversion\":1.0,\"id\":\"" VALID_ID "\",\"source\":\"s\",\"type\":\"t\",\"time\":"
         "\"2026-11-26T04:00:00.000Z\",\"data\":{}}",
         "specversion must be a string"},
        {"{\"specversion\":\"0.3\",\"id\":\"" VALID_ID
         "\",\"source\":\"s\",\"type\":\"t\",\"time\":"
         "\"2026-11-26T04:00:00.000Z\",\"data\":{}}",
         "unsupported specversion \"0.3\""},
        {"{\"specversion\":\"1.0\",\"id\":\"42\",\"source\":\"s\",\"type\":\"t\",\"time\":"
         "\"2026-11-26T04:00:00.000Z\",\"data\":{}}",
         "id \"42\" is not a UUID"},
        {"{\"specversion\":\"1.0\",\"id\":\"" VALID_ID "\",\"source\":\"s\",\"type\":7,\"time\":"
         "\"2026-11-26T04:00:00.000Z\",\"data\":{}}",
         "type must be a string"},
        {"{\"specversion\":\"1.0\",\"id\":\"" VALID_ID "\",\"source\":\"\",\"type\":\"t\",\"time\":"
         "\"2026-11-26T04:00:00.000Z\",\"data\":{}}",
         "source is empty"},
        {"{\"specversion\":\"1.0\",\"id\":\"" VALID_ID
         "\",\"source\":\"s\",\"type\":\"t\",\"time\":"
         "\"yesterday\",\"data\":{}}",
         "time \"yesterday\" is not an RFC 3339 date-time"},
        {"{\"specversion\":\"1.0\",\"id\":\"" VALID_ID
         "\",\"source\":\"s\",\"type\":\"t\",\"time\":"
         "\"2026-11-26T04:00:00.000Z\",\"data\":\"x\"}",
         "data must be a JSON object"},
        {"{\"specversion\":\"1.0\",\"id\":\"" VALID_ID
         "\",\"source\":\"s\",\"type\":\"t\",\"time\":"
         "\"2026-11-26T04:00:00.000Z\"}",
         "missing data"},
        {"{\"specversion\":\"1.0\",\"id\":\"" VALID_ID
         "\",\"source\":\"s\",\"type\":\"t\",\"time\":"
         "\"2026-11-26T04:00:00.000Z\",\"datacontenttype\":\"text/xml\",\"data\":{}}",
         "datacontenttype \"text/xml\" is not application/json"},
        {"{\"specversion\":\"1.0\",\"specversion\":\"1.0\"}", "duplicate object key"},
        {"{\"specversion\":\"1.0\",\"id\":\"" VALID_ID "\",\"source\":\"s\xff\",\"type\":\"t\"}",
         "invalid JSON"},
    };
    return cr_make_param_array(struct bad_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct bad_case *c, event, malformed_events_give_their_reason)
{
    struct sd_event ev;
    struct sd_err err = {0};

    cr_assert_eq(parse_text(c->text, &ev, &err), -1, "accepted: %s", c->text);
    cr_expect_eq(err.code, SD_ERR_INVALID);
    cr_expect(strstr(err.text, c->reason) != NULL, "reason \"%s\" lacks \"%s\"", err.text,
              c->reason);
    cr_expect_null(ev.data);
}

Test(event, one_mebibyte_payload_is_refused_by_size)
{
    size_t len = 1024 * 1024;
    char *big = malloc(len);
    struct sd_event ev;
    struct sd_err err = {0};

    cr_assert_not_null(big);
    memset(big, 'a', len);
    cr_assert_eq(sd_event_parse(big, len, &ev, &err), -1);
    cr_expect(strstr(err.text, "larger than the 262144-byte limit") != NULL, "%s", err.text);
    free(big);
}

Test(event, empty_message_is_refused)
{
    struct sd_event ev;
    struct sd_err err = {0};

    cr_assert_eq(sd_event_parse("", 0, &ev, &err), -1);
    cr_expect_str_eq(err.text, "empty message");
}
