#!/usr/bin/env bash
# tests/e2e/migration.sh - the demo as a test (issue #6), shorter and
# smaller: tools/demo.sh runs two sites behind Kamailio, agents through
# agent-state, a SIPp gateway, and drains site2 with drainctl; then this
# script checks what the demo's report only summarises, from the database
# and the Kafka events:
#   1. the gateway lost no call (the demo's own exit status);
#   2. every call begun at site2 was answered and ended by a hang-up (none
#      was cut, none failed);
#   3. every call begun after site2's edges refused calls landed on site1;
#   4. every site2 agent was logged out exactly once (EventAgentLogout on
#      sipdrain.agent.events) with graceful_shutdown_logout;
#   5. no site2 agent was logged out before its call ended, nor a timed-ACW
#      agent before its ACW ran out;
#   6. the workspace agents of site2 are logged in at site1;
#   7. edge-2a and edge-2b stopped and exited 0;
#   8. the phone of DN 2019, which never answers BYE, got its BYE again and
#      again (the demo's direct call on edge-2a, hung up during the drain);
#      edge-2a waited for that BYE's 200 until graceful-shutdown-sip-timeout,
#      and edge-2a and edge-2b exited 0 only after that.
# Uses the stack of tests/scripts (started by the demo if needed).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
fail=0
check() { # description, then the command whose success is the check
    local what=$1
    shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}

if ! KEEP=1 RATE=${RATE:-2} HOLD_MS=${HOLD_MS:-3000} DURATION_S=${DURATION_S:-20} \
    WARMUP_S=${WARMUP_S:-6} SIP_TIMEOUT_S=${SIP_TIMEOUT_S:-3} tools/demo.sh >.run/demo.out 2>&1; then
    tail -40 .run/demo.out
    echo "FAIL the demo lost calls or its drain did not complete (.run/demo.out)"
    exit 1
fi
echo "ok   1. the demo: no call lost (gateway), the drain completed"
# shellcheck disable=SC1091
. .run/demo/env
q() { psql "$demo_dsn" -qAt -c "$1"; }
zero() { [ "$(q "$1")" = 0 ]; }
equals() { [ "$(q "$1")" = "$2" ]; }

check "2. site2's calls were all answered and ended by a hang-up" \
    zero "SELECT count(*) FROM calls WHERE site = 'site2' AND (answered_at IS NULL
          OR ended_at IS NULL OR end_cause NOT IN ('caller_hangup', 'agent_hangup'))"
check "2. (and there were some)" [ "$(q "SELECT count(*) FROM calls WHERE site = 'site2'")" -gt 0 ]
check "3. calls begun after site2 refused calls all landed on site1" \
    zero "SELECT count(*) FROM calls c, drains d WHERE c.site = 'site2'
          AND c.created_at > d.started_at + make_interval(secs =>
              coalesce((d.phase_ms->>'refusing')::int, 0) / 1000.0 + 0.5)"
check "3. and some did (the gateway kept calling)" \
    [ "$(q "SELECT count(*) FROM calls c, drains d WHERE c.site = 'site1'
             AND c.created_at > d.started_at")" -gt 0 ]

events=$(mktemp)
SIPDRAIN_KAFKA_PROPERTIES=$demo_kafka_admin \
    ${SIPDRAIN_TEST_BIN_DIR:-build/tests}/bus_worker dump "$demo_brokers" "${demo_prefix}sipdrain.agent.events" >"$events"
logouts_ok() {
    local a n bad=0
    for a in $(q "SELECT agent_id FROM drain_agents ORDER BY agent_id"); do
        n=$(grep '"type":"EventAgentLogout"' "$events" | grep -c "\"agent_id\":\"$a\"" || true)
        [ "$n" = 1 ] || { echo "     $a: $n EventAgentLogout" >&2; bad=1; }
    done
    [ "$(grep '"type":"EventAgentLogout"' "$events" | grep -c '"ReasonCode":"graceful_shutdown_logout"')" \
        = "$(q "SELECT count(*) FROM drain_agents")" ] || bad=1
    return $bad
}
check "4. 20 site2 agents logged out by the drain" equals "SELECT count(*) FROM drain_agents" 20
check "4. each exactly once, with graceful_shutdown_logout" logouts_ok
check "5. nobody logged out before the end of their call (+ timed ACW)" \
    zero "SELECT count(*) FROM drain_agents da JOIN agents a USING (agent_id)
          JOIN calls c ON c.agent_id = da.agent_id AND c.answered_at IS NOT NULL
          WHERE c.created_at < da.logout_sent_at
          AND da.logout_sent_at < c.ended_at + CASE WHEN a.work_mode = 'acw'
              AND a.acw_timeout_s IS NOT NULL THEN make_interval(secs => a.acw_timeout_s)
              ELSE interval '0' END"
check "6. the workspace agents of site2 are logged in at site1" \
    equals "SELECT count(*) FROM agents WHERE agent_id LIKE 'agent-2-%' AND workspace
            AND site = 'site1' AND state <> 'logged_out'" 4
check "7. edge-2a and edge-2b stopped" \
    equals "SELECT count(*) FROM edges WHERE edge_id IN ('edge-2a', 'edge-2b') AND state = 'stopped'" 2
check "7. and exited 0" grep -q 'msg="stopped" exit=0' .run/demo/edge-2a.log
check "7. (edge-2b)" grep -q 'msg="stopped" exit=0' .run/demo/edge-2b.log

# 8. The edges' logs: ts=... msg="edge state changed" from=bye_wait ...
log_ms() { # FILE, then an awk pattern: the time of its first line, in ms since the epoch
    local ts
    ts=$(awk "/$2/"' { sub(/^ts=/, "", $1); print $1; exit }' "$1")
    [ -n "$ts" ] && date -d "$ts" +%s%3N
}
zero_reports() { ! grep -l -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$@"; }
after_bye_wait() { [ -n "$bye_wait_out" ] && [ -n "$1" ] && [ "$1" -ge "$bye_wait_out" ]; }
check "8. the direct call to the phone that ignores BYE was answered and hung up" \
    [ "$demo_direct_rc" = 0 ]
check "8. that phone got $demo_bye_count BYEs and answered none" [ "$demo_bye_phone_rc" = 0 ]
check "8. (its log shows each)" \
    [ "$(grep -c "BYE #" .run/demo/phone-2019.log)" -ge "$demo_bye_count" ]
bye_wait_in=$(log_ms .run/demo/edge-2a.log 'msg="edge state changed".*to=bye_wait' || true)
bye_wait_out=$(log_ms .run/demo/edge-2a.log 'msg="edge state changed".*from=bye_wait' || true)
stop_a=$(log_ms .run/demo/edge-2a.log 'msg="stopped" exit=0' || true)
stop_b=$(log_ms .run/demo/edge-2b.log 'msg="stopped" exit=0' || true)
echo "     edge-2a BYE wait ${bye_wait_in:-?}..${bye_wait_out:-?} ms; stopped: edge-2a ${stop_a:-?}, edge-2b ${stop_b:-?}"
check "8. edge-2a waited for the BYE's answer until the timeout (${demo_sip_timeout_s} s)" \
    [ $((${bye_wait_out:-0} - ${bye_wait_in:-0})) -ge $((demo_sip_timeout_s * 1000 - 20)) ]
check "8. edge-2a exited 0 only after that" after_bye_wait "$stop_a"
check "8. edge-2b exited 0 only after that" after_bye_wait "$stop_b"
# 9. Under make asan the demo's services are the sanitized build: any report
# in their logs fails the test.
if [ "${SIPDRAIN_SANITIZED:-0}" = 1 ]; then
    check "9. no sanitizer report in the logs of the demo's services" \
        zero_reports .run/demo/agent-state.log .run/demo/orch-*.log .run/demo/edge-*.log
fi
rm -f "$events"
psql "${demo_dsn%/*}/postgres" -qAt -c "DROP DATABASE IF EXISTS ${demo_dsn##*/}" >/dev/null 2>&1 || true
exit $fail
