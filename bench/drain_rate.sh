#!/usr/bin/env bash
# bench/drain_rate.sh - the largest steady call rate at which the drain of a
# site loses no call on this machine (issue #6; bench/drain.sh runs it after
# its propagation figure, PARTS=rate runs only this).
#
# Each round is the demo (tools/demo.sh: two sites of two edges behind
# Kamailio, agent-state, two orchestrators, agents whose phones are SIPp, a
# SIPp gateway calling route point 7000 through Kamailio at RATE calls/s)
# at one rate, run twice side by side:
#   drain   site2 is drained with drainctl while the calls go on
#   peer    the same run without the drain (DRAIN=0): what the two sites
#           carry with no call lost when nothing drains
# A run loses no call when the gateway's SIPp counts every call it placed as
# successful (answered, held, hung up with a 200) and, for drain, the drain
# completed. Route-point calls that find every agent busy wait in the site's
# queue (issue #16; 182 Queued, up to SIPDRAIN_QUEUE_MAX_WAIT): each run
# says how many waited and how long (p99, max, from call.dequeued). The
# rates climb (RATES) until both have lost calls; a failed rate says why:
# error responses (queue_timeout / queue_full = the agent pool could not
# take the calls in time; no_agent = queueing off) or timeouts.
# It prints numbers; it is not a test.
#
# A run that overloads the machine makes SIPp give calls up without a BYE
# (an answer it did not expect in time); the drain then waits for those
# answered calls until its deadline, DRAIN_DEADLINE_S (90), cuts them: they
# count as lost.
# Env: RATES ("100 200 300 400 500"), AGENTS (per site, 999), HOLD_MS
# (1000), DURATION_S (20), AGENT_MODES (auto_in: an agent is Ready again as
# soon as its call ends, so the pool carries AGENTS / hold calls/s per site).
# Logs: .run/bench-drain-rate/<drain|peer>-<rate>/ (the demo's logs).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
RATES=${RATES:-"100 200 300 400 500"}
AGENTS=${AGENTS:-999}
HOLD_MS=${HOLD_MS:-1000}
DURATION_S=${DURATION_S:-20}
AGENT_MODES=${AGENT_MODES:-auto_in}
DRAIN_DEADLINE_S=${DRAIN_DEADLINE_S:-90}
logs=.run/bench-drain-rate
rm -rf "$logs"
mkdir -p "$logs"
for b in build/bin/sip-edge build/bin/drain-orchestrator build/bin/drainctl build/bin/agent-state \
    build/tests/bus_worker; do
    [ -x "$b" ] || { echo "bench: $b missing: run make" >&2; exit 1; }
done

# run MODE RATE -> one line "ok|lost <details>"; the demo's logs are kept
run() {
    local mode=$1 rate=$2 rc no_agent refusals waits
    set +e
    DRAIN=$([ "$mode" = drain ] && echo 1 || echo 0) KEEP=1 RATE=$rate HOLD_MS=$HOLD_MS \
        DURATION_S=$DURATION_S WARMUP_S=8 SIP_TIMEOUT_S=3 AGENTS=$AGENTS AGENT_MODES=$AGENT_MODES \
        DRAIN_DEADLINE_S=$DRAIN_DEADLINE_S \
        tools/demo.sh >"$logs/$mode-$rate.out" 2>&1
    rc=$?
    set -e
    cp -r .run/demo "$logs/$mode-$rate"
    if ! [ -f "$logs/$mode-$rate/env" ] || ! grep -q demo_ok "$logs/$mode-$rate/env"; then
        echo "lost (the demo did not get as far as its report, exit $rc: $logs/$mode-$rate.out)"
        return
    fi
    # shellcheck disable=SC1091
    . "$logs/$mode-$rate/env"
    no_agent=$(grep -c '"reason":"no_agent"' "$logs/$mode-$rate/call-events.jsonl" || true)
    refusals=$(grep '"type":"call.rejected"' "$logs/$mode-$rate/call-events.jsonl" |
        grep -o '"reason":"queue_[a-z]*"' | sort | uniq -c | awk '{ printf "%s%s %d", n++ ? ", " : "", $2, $1 }' |
        tr -d '"' | sed 's/reason://g' || true)
    waits=$(sort -n -k2 "$logs/$mode-$rate/waits.txt" 2>/dev/null | awk '{ w[NR] = $2 } END {
        if (NR == 0) { print "none waited"; exit }
        printf "%d waited, p99 %.1f s, max %.1f s", NR, w[int((NR - 1) * 0.99) + 1] / 1000, w[NR] / 1000 }')
    psql "${demo_dsn%/*}/postgres" -qAt -c "DROP DATABASE IF EXISTS ${demo_dsn##*/}" >/dev/null 2>&1 || true
    if [ "$rc" = 0 ]; then
        printf 'ok   %s of %s completed; %s\n' "$demo_ok" "$demo_calls" "$waits"
    else
        printf 'lost %s of %s failed (%s error responses%s, %s timeouts; %s)%s\n' \
            "$demo_failed" "$demo_calls" "$demo_unexpected" \
            "$([ -z "$refusals" ] || echo ": $refusals")$([ "$no_agent" = 0 ] || echo ", no_agent $no_agent")" \
            "$demo_timeouts" "$waits" \
            "$([ "$demo_drain_rc" = 0 ] || echo ", drain not completed (drainctl exit $demo_drain_rc)")"
    fi
}

echo "largest steady call rate with no call lost: calls of $HOLD_MS ms through Kamailio to 2 sites"
echo "x 2 edges, $AGENTS $AGENT_MODES agents per site, $DURATION_S s of calls per run (logs: $logs)"
printf '  %-7s %-72s %s\n' "calls/s" "drain of site2 during the calls" "peer: no drain"
best_drain=0
best_peer=0
drain_lost=0
peer_lost=0
for r in $RATES; do
    d="-"
    p="-"
    if [ "$drain_lost" = 0 ]; then
        d=$(run drain "$r")
        case "$d" in ok*) best_drain=$r ;; *) drain_lost=1 ;; esac
    fi
    if [ "$peer_lost" = 0 ]; then
        p=$(run peer "$r")
        case "$p" in ok*) best_peer=$r ;; *) peer_lost=1 ;; esac
    fi
    printf '  %-7s %-72s %s\n' "$r" "$d" "$p"
    [ "$drain_lost" = 1 ] && [ "$peer_lost" = 1 ] && break
done
echo "  largest rate with no call lost: drain $best_drain calls/s, peer (no drain) $best_peer calls/s"
echo "  (of the rates tried: RATES=\"$RATES\"; the true limit lies below the next rate tried)"
