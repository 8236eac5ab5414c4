/* agent_bus.c - see agent_bus.h. */
#include "agent_bus.h"

#include <string.h>

/* --- checking what comes in ------------------------------------------- */

static const struct {
    const char *type;
    enum agent_input_kind kind;
    bool command;
} types[] = {
    {"agent.login", AGENT_IN_LOGIN, true},
    {"agent.logout", AGENT_IN_LOGOUT, true},
    {"agent.ready", AGENT_IN_READY, true},
    {"agent.not_ready", AGENT_IN_NOT_READY, true},
    {"agent.acw_complete", AGENT_IN_ACW_COMPLETE, true},
    {"agent.make_call", AGENT_IN_MAKE_CALL, true},
    {"call.offered", AGENT_IN_CALL_OFFERED, false},
    {"call.established", AGENT_IN_CALL_ESTABLISHED, false},
    {"call.ended", AGENT_IN_CALL_ENDED, false},
    {"call.rejected", AGENT_IN_CALL_REJECTED, false},
};

enum text_kind {
    TEXT_ID,
    TEXT_AGENT_ID,
    TEXT_DN,
    TEXT_REASON,
    TEXT_PRINTABLE,
    TEXT_UUID,
    TEXT_LINE
};

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The patterns of cloudevent.schema.json#/$defs, by hand. */
static bool text_ok(enum text_kind kind, const char *s, size_t len)
{
    const char *more = kind == TEXT_AGENT_ID ? "._@-"
                       : kind == TEXT_DN     ? "+*#._-"
                       : kind == TEXT_REASON ? "_.:-"
                                             : "._-";

    if (kind == TEXT_UUID)
        return sd_uuid_valid(s);
    if (kind == TEXT_LINE) { /* free text for people: no control characters */
        for (size_t i = 0; i < len; i++) {
            if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
                return false;
        }
        return len > 0;
    }
    if (kind == TEXT_PRINTABLE) {
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '!' || s[i] > '~')
                return false;
        }
        return len > 0;
    }
    if (len == 0 || len > 64)
        return false;
    if (!is_alnum(s[0]) && !(kind == TEXT_DN && strchr("+*#", s[0]) != NULL))
        return false;
    for (size_t i = 1; i < len; i++) {
        if (!is_alnum(s[i]) && strchr(more, s[i]) == NULL)
            return false;
    }
    return true;
}

/* Copies data.<key> into dst. 1: copied; 0: absent (or null) and optional;
 * -1: missing, not a string, or not of the kind (err says which). */
static int get_text(json_t *data, const char *key, bool required, enum text_kind kind, char *dst,
                    size_t size, struct sd_err *err)
{
    json_t *v = json_object_get(data, key); /* borrowed */
    const char *s;
    size_t len;

    if (v == NULL || json_is_null(v)) {
        if (required)
            return sd_err_set(err, SD_ERR_INVALID, "invalid_data: data.%s: missing", key);
        return 0;
    }
    if (!json_is_string(v))
        return sd_err_set(err, SD_ERR_INVALID, "invalid_data: data.%s: not a string", key);
    s = json_string_value(v);
    len = json_string_length(v);
    if (len >= size || strlen(s) != len || !text_ok(kind, s, len))
        return sd_err_set(err, SD_ERR_INVALID, "invalid_data: data.%s: \"%.64s\" is not a valid %s",
                          key, s,
                          kind == TEXT_UUID        ? "uuid"
                          : kind == TEXT_DN        ? "dn"
                          : kind == TEXT_REASON    ? "reason token"
                          : kind == TEXT_PRINTABLE ? "value (printable ASCII, no spaces)"
                          : kind == TEXT_LINE      ? "text (no control characters)"
                          : kind == TEXT_AGENT_ID  ? "agent id"
                                                   : "id");
    memcpy(dst, s, len + 1);
    return 1;
}

/* data.<key> as a boolean; absent = def. */
static int get_bool(json_t *data, const char *key, bool required, bool def, bool *out,
                    struct sd_err *err)
{
    json_t *v = json_object_get(data, key);

    if (v == NULL) {
        if (required)
            return sd_err_set(err, SD_ERR_INVALID, "invalid_data: data.%s: missing", key);
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return sd_err_set(err, SD_ERR_INVALID, "invalid_data: data.%s: not a boolean", key);
    *out = json_is_true(v);
    return 1;
}

static int parse_login(json_t *data, struct agent_cmd *cmd, struct sd_err *err)
{
    char mode[16];
    json_t *acw = json_object_get(data, "acw_timeout_s");
    int m;

    if (get_text(data, "dn", true, TEXT_DN, cmd->dn, sizeof(cmd->dn), err) < 0 ||
        get_text(data, "site", true, TEXT_ID, cmd->site, sizeof(cmd->site), err) < 0 ||
        get_text(data, "work_mode", true, TEXT_REASON, mode, sizeof(mode), err) < 0 ||
        get_bool(data, "workspace", false, false, &cmd->workspace, err) < 0 ||
        get_bool(data, "nailed_up", false, false, &cmd->nailed_up, err) < 0)
        return -1;
    m = agent_work_mode_parse(mode);
    if (m < 0)
        return sd_err_set(err, SD_ERR_INVALID,
                          "invalid_data: data.work_mode: \"%s\" is not manual_in, auto_in or acw",
                          mode);
    cmd->work_mode = (enum agent_work_mode)m;
    cmd->acw_timeout_s = -1;
    if (acw != NULL && !json_is_null(acw)) {
        if (!json_is_integer(acw) || json_integer_value(acw) < 0 || json_integer_value(acw) > 86400)
            return sd_err_set(err, SD_ERR_INVALID,
                              "invalid_data: data.acw_timeout_s: must be an integer 0-86400 or "
                              "null (untimed)");
        cmd->acw_timeout_s = (int32_t)json_integer_value(acw);
    }
    return 0;
}

/* call.rejected of a call.originate (direction outbound) says why, for the
 * EventError agent-state answers the desktop with: error_reason, detail and
 * the agent.make_call's request_id. */
static int parse_originate_refusal(json_t *data, struct agent_cmd *cmd, struct sd_err *err)
{
    char reason[AGENT_ID_SIZE];
    int has = get_text(data, "error_reason", false, TEXT_REASON, reason, sizeof(reason), err);

    if (has <= 0)
        return has;
    if (strcmp(json_string_value(json_object_get(data, "direction")) ?: "", "outbound") != 0)
        return sd_err_set(err, SD_ERR_INVALID,
                          "invalid_data: data.error_reason: only for direction outbound");
    cmd->originate_error = agent_error_parse(reason);
    if ((int)cmd->originate_error <= 0)
        return sd_err_set(err, SD_ERR_INVALID, "invalid_data: data.error_reason: \"%s\" unknown",
                          reason);
    if (get_text(data, "edge", true, TEXT_ID, cmd->edge, sizeof(cmd->edge), err) < 0 ||
        get_text(data, "detail", false, TEXT_LINE, cmd->detail, sizeof(cmd->detail), err) < 0 ||
        get_text(data, "request_id", false, TEXT_UUID, cmd->request_id, sizeof(cmd->request_id),
                 err) < 0)
        return -1;
    return 1;
}

int agent_bus_parse(const struct sd_event *ev, struct agent_cmd *cmd, struct sd_err *err)
{
    json_t *data = ev->data; /* borrowed */
    size_t i;

    memset(cmd, 0, sizeof(*cmd));
    cmd->acw_timeout_s = -1;
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(ev->type, types[i].type) == 0)
            break;
    }
    if (i == sizeof(types) / sizeof(types[0]) &&
        (!strcmp(ev->type, "call.queued") || !strcmp(ev->type, "call.dequeued")))
        return 0; /* the queue's events: keyed by route point, no agent's business */
    if (i == sizeof(types) / sizeof(types[0]))
        return sd_err_set(err, SD_ERR_INVALID, "unknown_type: %s", ev->type);
    cmd->kind = types[i].kind;
    cmd->type = types[i].type;
    cmd->is_command = types[i].command;
    memcpy(cmd->request_id, ev->id, sizeof(cmd->request_id));
    if (cmd->kind == AGENT_IN_CALL_REJECTED) {
        /* Keyed by the called DN when no agent was known: nothing for us. */
        int has = get_text(data, "agent_id", false, TEXT_AGENT_ID, cmd->agent_id,
                           sizeof(cmd->agent_id), err);
        if (has < 0)
            return -1;
        if (get_text(data, "call_id", true, TEXT_PRINTABLE, cmd->call_id, sizeof(cmd->call_id),
                     err) < 0)
            return -1;
        if (parse_originate_refusal(data, cmd, err) < 0)
            return -1;
        return has;
    }
    if (get_text(data, "agent_id", true, TEXT_AGENT_ID, cmd->agent_id, sizeof(cmd->agent_id), err) <
        0)
        return -1;
    switch (cmd->kind) {
    case AGENT_IN_LOGIN:
        if (parse_login(data, cmd, err) < 0 ||
            get_text(data, "reason", false, TEXT_REASON, cmd->reason, sizeof(cmd->reason), err) < 0)
            return -1;
        break;
    case AGENT_IN_LOGOUT:
        if (get_text(data, "reason", false, TEXT_REASON, cmd->reason, sizeof(cmd->reason), err) <
                0 ||
            get_text(data, "drain_id", false, TEXT_UUID, cmd->drain_id, sizeof(cmd->drain_id),
                     err) < 0)
            return -1;
        break;
    case AGENT_IN_NOT_READY:
        if (get_text(data, "reason", false, TEXT_REASON, cmd->reason, sizeof(cmd->reason), err) < 0)
            return -1;
        break;
    case AGENT_IN_MAKE_CALL:
        if (get_text(data, "destination", true, TEXT_PRINTABLE, cmd->destination,
                     sizeof(cmd->destination), err) < 0)
            return -1;
        break;
    case AGENT_IN_CALL_OFFERED:
    case AGENT_IN_CALL_ESTABLISHED:
        if (get_text(data, "call_id", true, TEXT_PRINTABLE, cmd->call_id, sizeof(cmd->call_id),
                     err) < 0)
            return -1;
        break;
    case AGENT_IN_CALL_ENDED:
        if (get_text(data, "call_id", true, TEXT_PRINTABLE, cmd->call_id, sizeof(cmd->call_id),
                     err) < 0 ||
            get_bool(data, "answered", true, false, &cmd->answered, err) < 0)
            return -1;
        {
            /* route_point and end_cause: the schema checks them; only
             * whether the agent did not take a route-point call matters */
            const char *cause = json_string_value(json_object_get(data, "end_cause"));
            cmd->not_taken =
                !cmd->answered && json_is_string(json_object_get(data, "route_point")) &&
                cause != NULL &&
                (!strcmp(cause, "no_answer") || !strcmp(cause, "busy") || !strcmp(cause, "failed"));
        }
        break;
    default:
        break;
    }
    return 1;
}

/* --- building what goes out ------------------------------------------- */

const char *agent_bus_type(const struct agent_action *act)
{
    return agent_action_name(act->kind);
}

static void set_time(json_t *o, const char *key, int64_t ms)
{
    char text[SD_EVENT_TIME_LEN + 1];

    sd_time_format_ms(ms, text);
    json_object_set_new(o, key, json_string(text));
}

/* extensions: the core's ReasonCode, else the command's reason token;
 * WrapUpTime when entering ACW. */
static json_t *extensions(const struct agent_action *act, const struct agent_cmd *cmd)
{
    json_t *ext = json_object();

    if (act->reason != AGENT_REASON_NONE)
        json_object_set_new(ext, "ReasonCode", json_string(agent_reason_name(act->reason)));
    else if (cmd != NULL && cmd->reason[0] != '\0' && act->kind != AGENT_EMIT_ERROR &&
             (act->kind == AGENT_EMIT_LOGIN || act->kind == AGENT_EMIT_LOGOUT ||
              act->kind == AGENT_EMIT_NOT_READY))
        json_object_set_new(ext, "ReasonCode", json_string(cmd->reason));
    if (act->kind == AGENT_EMIT_NOT_READY && act->snap.state == AGENT_ACW)
        json_object_set_new(ext, "WrapUpTime",
                            act->snap.acw_timeout_s >= 0 ? json_integer(act->snap.acw_timeout_s)
                                                         : json_string("untimed"));
    return ext;
}

json_t *agent_bus_data(const char *agent_id, const struct agent_action *act,
                       const struct agent_cmd *cmd, long long version, const char *edge,
                       const char *detail)
{
    const struct agent *a = &act->snap;
    /* Commands are answered with their id; agent-state's own events (ACW
     * expiry, after a call, the peer-site login) carry none. */
    bool own =
        cmd == NULL || !cmd->is_command || act->reason == AGENT_REASON_GRACEFUL_MIGRATION_LOGIN;
    json_t *d = json_object();

    if (act->kind == AGENT_ORIGINATE) {
        json_object_set_new(d, "edge", json_string(edge ? edge : ""));
        json_object_set_new(d, "site", json_string(a->site));
        json_object_set_new(d, "agent_id", json_string(agent_id));
        json_object_set_new(d, "dn", json_string(a->dn));
        json_object_set_new(d, "destination", json_string(cmd ? cmd->destination : ""));
        json_object_set_new(d, "call_id", json_string(a->call_id));
        json_object_set_new(d, "request_id", json_string(cmd ? cmd->request_id : ""));
        return d;
    }
    json_object_set_new(d, "agent_id", json_string(agent_id));
    if (act->kind == AGENT_EMIT_ERROR) {
        json_object_set_new(d, "command",
                            json_string(cmd == NULL                           ? ""
                                        : cmd->kind == AGENT_IN_CALL_REJECTED ? "call.originate"
                                                                              : cmd->type));
        json_object_set_new(d, "reason", json_string(agent_error_name(act->error)));
        json_object_set_new(d, "request_id", json_string(cmd ? cmd->request_id : ""));
        if (detail != NULL && detail[0] != '\0')
            json_object_set_new(d, "detail", json_string(detail));
        if (cmd != NULL && cmd->kind == AGENT_IN_CALL_REJECTED) { /* call.originate refused */
            json_object_set_new(d, "edge", json_string(cmd->edge));
            json_object_set_new(d, "call_id", json_string(cmd->call_id));
        }
        if (version > 0) { /* a known agent: its (unchanged) snapshot */
            json_object_set_new(d, "dn", json_string(a->dn));
            json_object_set_new(d, "site", json_string(a->site));
            json_object_set_new(d, "state", json_string(agent_state_name(a->state)));
            if (a->call_id[0] != '\0')
                json_object_set_new(d, "call_id", json_string(a->call_id));
            json_object_set_new(d, "version", json_integer(version));
        }
        json_object_set_new(d, "extensions", extensions(act, cmd));
        return d;
    }
    json_object_set_new(d, "dn", json_string(a->dn));
    json_object_set_new(d, "site", json_string(a->site));
    json_object_set_new(d, "work_mode", json_string(agent_work_mode_name(a->work_mode)));
    json_object_set_new(d, "state", json_string(agent_state_name(a->state)));
    switch (act->kind) {
    case AGENT_EMIT_LOGIN:
        json_object_set_new(d, "acw_timeout_s",
                            a->acw_timeout_s >= 0 ? json_integer(a->acw_timeout_s) : json_null());
        json_object_set_new(d, "workspace", json_boolean(a->workspace));
        json_object_set_new(d, "nailed_up", json_boolean(a->nailed_up));
        if (act->migrated_from[0] != '\0')
            json_object_set_new(d, "migrated_from", json_string(act->migrated_from));
        break;
    case AGENT_EMIT_LOGOUT:
        if (cmd != NULL && cmd->drain_id[0] != '\0')
            json_object_set_new(d, "drain_id", json_string(cmd->drain_id));
        break;
    case AGENT_EMIT_READY:
    case AGENT_EMIT_NOT_READY:
        json_object_set_new(d, "cause", json_string(agent_cause_name(act->cause)));
        if (act->kind == AGENT_EMIT_NOT_READY && a->state == AGENT_ACW && a->acw_until_ms > 0)
            set_time(d, "acw_until", a->acw_until_ms);
        if (cmd != NULL && !cmd->is_command && cmd->call_id[0] != '\0')
            json_object_set_new(d, "call_id", json_string(cmd->call_id));
        break;
    default:
        break;
    }
    if (!own)
        json_object_set_new(d, "request_id", json_string(cmd->request_id));
    if (version > 0)
        json_object_set_new(d, "version", json_integer(version));
    json_object_set_new(d, "extensions", extensions(act, cmd));
    return d;
}
