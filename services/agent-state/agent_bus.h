/* agent_bus.h - agent-state's events: commands and call events in, agent
 * events and call.originate out (schemas/events/).
 *
 * A tolerant reader (schemas/README.md, decision 13): the fields agent-state
 * needs are checked for presence, type and range, unknown fields are
 * ignored. What fails the checks is dead-lettered with the reason.
 */
#ifndef SIPDRAIN_AGENT_BUS_H
#define SIPDRAIN_AGENT_BUS_H

#include <jansson.h>

#include "agent_fsm.h"
#include "sipdrain/err.h"
#include "sipdrain/event.h"

#define AGENT_DEST_SIZE 256

/* One incoming event, checked. The strings are copies. */
struct agent_cmd {
    enum agent_input_kind kind;
    const char *type; /* ev->type, borrowed */
    char agent_id[AGENT_ID_SIZE];
    char request_id[SD_EVENT_ID_LEN + 1]; /* the event id (commands only) */
    bool is_command;                      /* agent.* (answered with EventError) */
    /* agent.login */
    char dn[AGENT_ID_SIZE], site[AGENT_ID_SIZE];
    enum agent_work_mode work_mode;
    int32_t acw_timeout_s;
    bool workspace, nailed_up;
    /* agent.login / agent.logout / agent.not_ready: extensions.ReasonCode */
    char reason[AGENT_ID_SIZE];
    char drain_id[SD_EVENT_ID_LEN + 1]; /* agent.logout from the orchestrator */
    /* agent.make_call */
    char destination[AGENT_DEST_SIZE];
    /* call.* */
    char call_id[AGENT_CALL_SIZE];
    bool answered;
    bool not_taken; /* call.ended: a route-point call the agent's phone did not take */
    /* call.rejected of call.originate: error_reason, detail; request_id
     * above is then the agent.make_call's */
    enum agent_error originate_error;
    char detail[256];
    char edge[AGENT_ID_SIZE]; /* the refusing edge */
};

/* Fills cmd from ev. Returns 1 when the event is for agent-state, 0 when it
 * is valid but not about an agent (call.rejected for an unknown DN), -1 with
 * SD_ERR_INVALID and the reason ("unknown_type: ..." / "invalid_data: ...")
 * when it must be dead-lettered. */
int agent_bus_parse(const struct sd_event *ev, struct agent_cmd *cmd, struct sd_err *err);

/* The data of the event for one action (a new reference). cmd is the
 * command that caused it, or NULL for what agent-state raises itself (ACW
 * expiry). version is agents.version after the change (0 = unknown agent,
 * left out). For AGENT_ORIGINATE, edge is the edge holding the
 * registration. detail: EventError's text (may be NULL). */
json_t *agent_bus_data(const char *agent_id, const struct agent_action *act,
                       const struct agent_cmd *cmd, long long version, const char *edge,
                       const char *detail);

/* The CloudEvents type of an action ("EventAgentLogin", ... "call.originate"). */
const char *agent_bus_type(const struct agent_action *act);

#endif
