/* event_samples - builds events with libcommon's encoder (sd_event_init +
 * sd_event_encode) and prints one per line, so tests/schema/validate.py can
 * check the C encoder's real output against schemas/events/. */
#include <stdio.h>
#include <stdlib.h>

#include "sipdrain/event.h"

static void emit(const char *source, const char *type, json_t *data)
{
    struct sd_event ev;
    struct sd_err err = {0};
    char *text;

    if (data == NULL || sd_event_init(&ev, source, type, data, &err) < 0) {
        fprintf(stderr, "event_samples: %s: %s\n", type, err.text);
        exit(1);
    }
    text = sd_event_encode(&ev, NULL, &err);
    if (text == NULL) {
        fprintf(stderr, "event_samples: %s: %s\n", type, err.text);
        exit(1);
    }
    puts(text);
    free(text);
    sd_event_clear(&ev);
}

int main(void)
{
    char drain[SD_EVENT_ID_LEN + 1], req[SD_EVENT_ID_LEN + 1];

    sd_uuid_v4(drain);
    sd_uuid_v4(req);
    emit("drainctl/ops", "drain.start",
         json_pack("{s:s, s:i, s:i, s:s}", "site", "site2", "reject_code", 503, "sip_timeout_s", 32,
                   "requested_by", "ops"));
    emit("drainctl/ops", "drain.start", json_pack("{s:s}", "edge", "edge-2a"));
    emit("drain-orchestrator/orch-1", "edge.drain",
         json_pack("{s:s, s:s, s:s, s:s, s:i}", "edge", "edge-2a", "site", "site2", "drain_id",
                   drain, "scope", "site", "reject_code", 503));
    emit("agent-state/agent-state-0", "agent.login",
         json_pack("{s:s, s:s, s:s, s:s, s:n, s:b, s:b}", "agent_id", "a2017", "dn", "2017", "site",
                   "site2", "work_mode", "acw", "acw_timeout_s", "workspace", 1, "nailed_up", 0));
    emit("drain-orchestrator/orch-1", "agent.logout",
         json_pack("{s:s, s:s, s:s}", "agent_id", "a2017", "reason", "graceful_shutdown_logout",
                   "drain_id", drain));
    emit("agent-state/agent-state-0", "EventAgentLogout",
         json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s}}", "agent_id", "a2017", "dn", "2017", "site",
                   "site2", "state", "logged_out", "work_mode", "acw", "extensions", "ReasonCode",
                   "graceful_shutdown_logout"));
    emit("agent-state/agent-state-0", "EventError",
         json_pack("{s:s, s:s, s:s, s:s, s:{}}", "agent_id", "a2017", "request_id", req, "command",
                   "agent.make_call", "reason", "graceful_shutdown", "extensions"));
    return 0;
}
