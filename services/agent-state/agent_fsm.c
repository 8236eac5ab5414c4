/* agent_fsm.c - see agent_fsm.h. Standard headers only: no I/O, no clock,
 * no allocation. */
#include "agent_fsm.h"

#include <string.h>

static const char *const state_names[AGENT_STATE_COUNT] = {"logged_out", "ready", "not_ready",
                                                           "acw"};
static const char *const mode_names[AGENT_MODE_COUNT] = {"manual_in", "auto_in", "acw"};
static const char *const input_names[AGENT_IN_COUNT] = {
    "agent.login",        "agent.logout",    "agent.ready",  "agent.not_ready",
    "agent.acw_complete", "agent.make_call", "call.offered", "call.established",
    "call.ended",         "call.rejected",   "acw_timer"};
static const char *const action_names[AGENT_ACTION_COUNT] = {
    "EventAgentLogin",    "EventAgentLogout", "EventAgentReady",
    "EventAgentNotReady", "EventError",       "call.originate"};
static const char *const cause_names[AGENT_CAUSE_COUNT] = {
    "", "agent_request", "acw_timeout", "acw_complete", "after_call", "no_answer"};
static const char *const error_names[AGENT_ERR_COUNT] = {"",
                                                         "graceful_shutdown",
                                                         "unknown_agent",
                                                         "unknown_site",
                                                         "not_logged_in",
                                                         "already_logged_in",
                                                         "dn_in_use",
                                                         "invalid_state",
                                                         "on_call",
                                                         "not_registered",
                                                         "originate_failed",
                                                         "internal_error"};
static const char *const reason_names[AGENT_REASON_COUNT] = {"", "graceful_shutdown_logout",
                                                             "graceful_migration_login"};

#define NAME(table, i, count) ((unsigned)(i) < (count) ? (table)[i] : "?")

const char *agent_state_name(enum agent_state s)
{
    return NAME(state_names, s, AGENT_STATE_COUNT);
}
const char *agent_work_mode_name(enum agent_work_mode m)
{
    return NAME(mode_names, m, AGENT_MODE_COUNT);
}
const char *agent_input_name(enum agent_input_kind k)
{
    return NAME(input_names, k, AGENT_IN_COUNT);
}
const char *agent_action_name(enum agent_action_kind k)
{
    return NAME(action_names, k, AGENT_ACTION_COUNT);
}
const char *agent_cause_name(enum agent_cause c)
{
    return NAME(cause_names, c, AGENT_CAUSE_COUNT);
}
const char *agent_error_name(enum agent_error e)
{
    return NAME(error_names, e, AGENT_ERR_COUNT);
}
const char *agent_reason_name(enum agent_reason r)
{
    return NAME(reason_names, r, AGENT_REASON_COUNT);
}

static int parse_name(const char *const *names, int count, const char *name)
{
    for (int i = 0; name != NULL && i < count; i++) {
        if (strcmp(names[i], name) == 0)
            return i;
    }
    return -1;
}

int agent_error_parse(const char *name)
{
    return parse_name(error_names, AGENT_ERR_COUNT, name);
}

int agent_state_parse(const char *name)
{
    return parse_name(state_names, AGENT_STATE_COUNT, name);
}

int agent_work_mode_parse(const char *name)
{
    return parse_name(mode_names, AGENT_MODE_COUNT, name);
}

/* Copies src into a fixed field, cut to size (the shell validated lengths). */
static void copy(char *dst, size_t size, const char *src)
{
    size_t n = src ? strlen(src) : 0;

    if (n >= size)
        n = size - 1;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static struct agent_action *push(struct agent_actions *out, enum agent_action_kind kind,
                                 const struct agent *a)
{
    struct agent_action *act = &out->a[out->n++];

    memset(act, 0, sizeof(*act));
    act->kind = kind;
    act->snap = *a;
    return act;
}

/* Refuses the command: EventError with the agent as it is. */
static int refuse(const struct agent *a, enum agent_error e, struct agent_actions *out)
{
    push(out, AGENT_EMIT_ERROR, a)->error = e;
    return 0;
}

static int ignore(struct agent_actions *out, const char *why)
{
    out->note = why;
    return 0;
}

static bool on_call(const struct agent *a)
{
    return a->call_id[0] != '\0';
}

static bool draining(const struct agent *a, const struct agent_input *in)
{
    return in->site_draining || a->drain;
}

/* The state right after a login: auto_in agents are Ready at once (they
 * asked to take calls automatically), everyone else starts NotReady. */
static void enter_login_state(struct agent *a, int64_t now)
{
    a->acw_until_ms = 0;
    if (a->work_mode == AGENT_MODE_AUTO_IN) {
        a->state = AGENT_READY;
        a->ready_since_ms = now;
    } else {
        a->state = AGENT_NOT_READY;
        a->ready_since_ms = 0;
    }
}

static void enter_ready(struct agent *a, int64_t now)
{
    a->state = AGENT_READY;
    a->ready_since_ms = now;
    a->acw_until_ms = 0;
}

static void enter_not_ready(struct agent *a)
{
    a->state = AGENT_NOT_READY;
    a->ready_since_ms = 0;
    a->acw_until_ms = 0;
}

/* Refusal order: unknown site, already logged in, draining site, DN taken. */
static int on_login(struct agent *a, const struct agent_input *in, struct agent_actions *out)
{
    if (!in->site_known)
        return refuse(a, AGENT_ERR_UNKNOWN_SITE, out);
    if (a->state != AGENT_LOGGED_OUT)
        return refuse(a, AGENT_ERR_ALREADY_LOGGED_IN, out);
    if (in->site_draining)
        return refuse(a, AGENT_ERR_GRACEFUL_SHUTDOWN, out);
    if (in->dn_in_use)
        return refuse(a, AGENT_ERR_DN_IN_USE, out);
    copy(a->dn, sizeof(a->dn), in->dn);
    copy(a->site, sizeof(a->site), in->site);
    a->work_mode = in->work_mode;
    a->acw_timeout_s = in->acw_timeout_s;
    a->workspace = in->workspace;
    a->nailed_up = in->nailed_up;
    a->drain = false;
    a->call_id[0] = '\0';
    enter_login_state(a, in->now_ms);
    push(out, AGENT_EMIT_LOGIN, a);
    return 1;
}

/* A logout, and for a drain logout of a workspace agent the login at the
 * peer site right after it (same dn, work mode, ACW setting). */
static int on_logout(struct agent *a, const struct agent_input *in, struct agent_actions *out)
{
    char old_site[AGENT_ID_SIZE];
    struct agent_action *act;

    if (!in->known)
        return refuse(a, AGENT_ERR_UNKNOWN_AGENT, out);
    if (a->state == AGENT_LOGGED_OUT)
        return refuse(a, AGENT_ERR_NOT_LOGGED_IN, out);
    if (on_call(a))
        return refuse(a, AGENT_ERR_ON_CALL, out);
    a->state = AGENT_LOGGED_OUT;
    a->acw_until_ms = 0;
    a->ready_since_ms = 0;
    act = push(out, AGENT_EMIT_LOGOUT, a);
    if (in->graceful)
        act->reason = AGENT_REASON_GRACEFUL_SHUTDOWN_LOGOUT;
    if (!in->graceful || !a->workspace)
        return 1;
    if (in->peer_site == NULL || in->peer_site[0] == '\0' || strcmp(in->peer_site, a->site) == 0) {
        out->note = "no peer site: workspace agent not migrated";
        return 1;
    }
    if (in->peer_draining) {
        out->note = "peer site draining: workspace agent not migrated";
        return 1;
    }
    if (in->dn_in_use) {
        out->note = "dn in use at the peer site: workspace agent not migrated";
        return 1;
    }
    copy(old_site, sizeof(old_site), a->site);
    copy(a->site, sizeof(a->site), in->peer_site);
    a->drain = false;
    enter_login_state(a, in->now_ms);
    act = push(out, AGENT_EMIT_LOGIN, a);
    act->reason = AGENT_REASON_GRACEFUL_MIGRATION_LOGIN;
    copy(act->migrated_from, sizeof(act->migrated_from), old_site);
    return 1;
}

/* Refusal order: unknown, logged out, draining, on a call. Ready when Ready
 * already answers EventAgentReady again and changes nothing. */
static int on_ready(struct agent *a, const struct agent_input *in, struct agent_actions *out)
{
    if (!in->known)
        return refuse(a, AGENT_ERR_UNKNOWN_AGENT, out);
    if (a->state == AGENT_LOGGED_OUT)
        return refuse(a, AGENT_ERR_NOT_LOGGED_IN, out);
    if (draining(a, in))
        return refuse(a, AGENT_ERR_GRACEFUL_SHUTDOWN, out);
    if (on_call(a))
        return refuse(a, AGENT_ERR_ON_CALL, out);
    if (a->state == AGENT_READY) {
        push(out, AGENT_EMIT_READY, a)->cause = AGENT_CAUSE_AGENT_REQUEST;
        return 0;
    }
    enter_ready(a, in->now_ms);
    push(out, AGENT_EMIT_READY, a)->cause = AGENT_CAUSE_AGENT_REQUEST;
    return 1;
}

/* NotReady is allowed while draining (it takes no call). */
static int on_not_ready(struct agent *a, const struct agent_input *in, struct agent_actions *out)
{
    if (!in->known)
        return refuse(a, AGENT_ERR_UNKNOWN_AGENT, out);
    if (a->state == AGENT_LOGGED_OUT)
        return refuse(a, AGENT_ERR_NOT_LOGGED_IN, out);
    if (on_call(a))
        return refuse(a, AGENT_ERR_ON_CALL, out);
    if (a->state == AGENT_NOT_READY) {
        push(out, AGENT_EMIT_NOT_READY, a)->cause = AGENT_CAUSE_AGENT_REQUEST;
        return 0;
    }
    enter_not_ready(a);
    push(out, AGENT_EMIT_NOT_READY, a)->cause = AGENT_CAUSE_AGENT_REQUEST;
    return 1;
}

/* Ends ACW early; allowed while draining (the drain logs the agent out
 * sooner) and on a call (an ACW agent may call a customer back). */
static int on_acw_complete(struct agent *a, const struct agent_input *in, struct agent_actions *out)
{
    if (!in->known)
        return refuse(a, AGENT_ERR_UNKNOWN_AGENT, out);
    if (a->state == AGENT_LOGGED_OUT)
        return refuse(a, AGENT_ERR_NOT_LOGGED_IN, out);
    if (a->state != AGENT_ACW)
        return refuse(a, AGENT_ERR_INVALID_STATE, out);
    enter_ready(a, in->now_ms);
    push(out, AGENT_EMIT_READY, a)->cause = AGENT_CAUSE_ACW_COMPLETE;
    return 1;
}

/* The agent is reserved for the call (call_id set) so no inbound call is
 * offered meanwhile; call.offered / call.rejected of that id follow. */
static int on_make_call(struct agent *a, const struct agent_input *in, struct agent_actions *out)
{
    if (!in->known)
        return refuse(a, AGENT_ERR_UNKNOWN_AGENT, out);
    if (a->state == AGENT_LOGGED_OUT)
        return refuse(a, AGENT_ERR_NOT_LOGGED_IN, out);
    if (draining(a, in))
        return refuse(a, AGENT_ERR_GRACEFUL_SHUTDOWN, out);
    if (on_call(a))
        return refuse(a, AGENT_ERR_ON_CALL, out);
    if (!in->registered)
        return refuse(a, AGENT_ERR_NOT_REGISTERED, out);
    copy(a->call_id, sizeof(a->call_id), in->new_call_id);
    push(out, AGENT_ORIGINATE, a);
    return 1;
}

/* call.offered / call.established: facts from an edge, never refused. The
 * agent becomes busy with that call; the state does not change. */
static int on_call_start(struct agent *a, const struct agent_input *in, struct agent_actions *out)
{
    if (!in->known || a->state == AGENT_LOGGED_OUT)
        return ignore(out, "call event for an agent not logged in");
    if (on_call(a)) {
        if (strcmp(a->call_id, in->call_id) != 0)
            return ignore(out, "call event while on another call");
        return 0;
    }
    copy(a->call_id, sizeof(a->call_id), in->call_id);
    return 1;
}

/* The after-call rules of DESIGN.md §4 for an answered call; an unanswered
 * one only frees the agent (it keeps the state it had before the offer),
 * unless it was a route-point call the agent did not take: then the agent
 * is set NotReady, cause no_answer (issue #16). */
static int on_call_ended(struct agent *a, const struct agent_input *in, struct agent_actions *out)
{
    bool was_on_call = on_call(a);

    if (!in->known || a->state == AGENT_LOGGED_OUT)
        return ignore(out, "call event for an agent not logged in");
    if (was_on_call && strcmp(a->call_id, in->call_id) != 0)
        return ignore(out, "call.ended of another call than the agent's");
    a->call_id[0] = '\0';
    if (!in->answered && in->not_taken && a->state == AGENT_READY) {
        /* Redirect on no answer: the next call would ring here again. */
        enter_not_ready(a);
        push(out, AGENT_EMIT_NOT_READY, a)->cause = AGENT_CAUSE_NO_ANSWER;
        return 1;
    }
    if (!in->answered)
        return was_on_call ? 1 : 0;
    switch (a->work_mode) {
    case AGENT_MODE_ACW:
        a->state = AGENT_ACW;
        a->ready_since_ms = 0;
        a->acw_until_ms = a->acw_timeout_s >= 0 ? in->now_ms + (int64_t)a->acw_timeout_s * 1000 : 0;
        push(out, AGENT_EMIT_NOT_READY, a)->cause = AGENT_CAUSE_AFTER_CALL;
        break;
    case AGENT_MODE_AUTO_IN:
        enter_ready(a, in->now_ms);
        push(out, AGENT_EMIT_READY, a)->cause = AGENT_CAUSE_AFTER_CALL;
        break;
    default:
        enter_not_ready(a);
        push(out, AGENT_EMIT_NOT_READY, a)->cause = AGENT_CAUSE_AFTER_CALL;
        break;
    }
    return 1;
}

/* The edge gave up on a call (or refused call.originate): release the
 * reservation when it is this call; a refused call.originate is answered
 * with EventError (the edge's reason) to the desktop that asked. */
static int on_call_rejected(struct agent *a, const struct agent_input *in,
                            struct agent_actions *out)
{
    if (!in->known || a->state == AGENT_LOGGED_OUT)
        return ignore(out, "call event for an agent not logged in");
    if (!on_call(a) || strcmp(a->call_id, in->call_id) != 0)
        return ignore(out, "call.rejected of a call the agent is not on");
    a->call_id[0] = '\0';
    if (in->originate_error != AGENT_ERR_NONE)
        push(out, AGENT_EMIT_ERROR, a)->error = in->originate_error;
    return 1;
}

/* Timed ACW over: Ready (cause acw_timeout, which a drain waits for). A
 * timer that finds the agent elsewhere is stale and does nothing. */
static int on_acw_timer(struct agent *a, const struct agent_input *in, struct agent_actions *out)
{
    if (!in->known || a->state != AGENT_ACW || a->acw_until_ms == 0)
        return ignore(out, "ACW timer for an agent not in timed ACW");
    if (in->now_ms < a->acw_until_ms)
        return ignore(out, "ACW timer before acw_until");
    enter_ready(a, in->now_ms);
    push(out, AGENT_EMIT_READY, a)->cause = AGENT_CAUSE_ACW_TIMEOUT;
    return 1;
}

int agent_fsm_step(struct agent *a, const struct agent_input *in, struct agent_actions *out)
{
    out->n = 0;
    out->note = NULL;
    switch (in->kind) {
    case AGENT_IN_LOGIN:
        return on_login(a, in, out);
    case AGENT_IN_LOGOUT:
        return on_logout(a, in, out);
    case AGENT_IN_READY:
        return on_ready(a, in, out);
    case AGENT_IN_NOT_READY:
        return on_not_ready(a, in, out);
    case AGENT_IN_ACW_COMPLETE:
        return on_acw_complete(a, in, out);
    case AGENT_IN_MAKE_CALL:
        return on_make_call(a, in, out);
    case AGENT_IN_CALL_OFFERED:
    case AGENT_IN_CALL_ESTABLISHED:
        return on_call_start(a, in, out);
    case AGENT_IN_CALL_ENDED:
        return on_call_ended(a, in, out);
    case AGENT_IN_CALL_REJECTED:
        return on_call_rejected(a, in, out);
    case AGENT_IN_ACW_TIMER:
        return on_acw_timer(a, in, out);
    default:
        return ignore(out, "unknown input");
    }
}

int64_t agent_fsm_due(const struct agent *a)
{
    return a->state == AGENT_ACW ? a->acw_until_ms : 0;
}
