#!/usr/bin/env bash
# bench/drain.sh - drain propagation (issue #6): from the operator's command
# to every edge of the site refusing new calls, over many drains.
#
#   drain    drainctl drain start --site site2 -> drain-orchestrator ->
#            edge.drain to each edge -> the edge refuses (state draining or
#            drained in its log); then drainctl drain cancel and the edges
#            resume before the next round
#   peer     the same edge.drain sent straight to sipdrain.edge.control (one
#            Kafka produce per edge, no orchestrator): what Kafka and the edges
#            alone take; then edge.resume
# Both run alternately in one run, on the same two edges of site2 (no calls,
# no agents), ROUNDS times each. The time is taken from just before the
# command is sent (drainctl started, or the first produce) to the later of
# the two edges' "edge state changed" log lines (the same clock); p50 / p99 /
# max in ms. Goal: drain p99 < 100 ms. It prints numbers; not a test.
# Round 0 of each is a warm-up and not counted: the orchestrator's first
# drain also pays for its producer's first contact with edge.control
# (measured: ~800 ms once, ~35 ms after).
#
# Then bench/drain_rate.sh: the largest steady call rate at which a site
# drain loses no call, beside the same runs without a drain (about 5 min).
#
# Env: ROUNDS (30), PARTS ("propagation rate"; either alone). Logs:
# .run/bench-drain/ and .run/bench-drain-rate/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
PARTS=${PARTS:-propagation rate}
case " $PARTS " in *" propagation "*) ;; *) exec bench/drain_rate.sh ;; esac
. bench/lib.sh
ROUNDS=${ROUNDS:-30}
logs=.run/bench-drain
rm -rf "$logs"
mkdir -p "$logs"
for b in build/bin/sip-edge build/bin/drain-orchestrator build/bin/drainctl build/tests/bus_worker; do
    [ -x "$b" ] || { echo "bench: $b missing: run make" >&2; exit 1; }
done
eval "$(tests/scripts/stack-up.sh)"
# Kafka logins (kafka-up.sh): this script's tools are the admin; each
# program started below logs in as its own user.
kc=$SIPDRAIN_KAFKA_CLIENTS
export SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-admin.properties
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$SIPDRAIN_PG_DSN" -qAt -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
now_ms() { date +%s%3N; }

db=bench_drain_$(date +%s)
prefix="bench.drain.$(date +%s)."
psql "$SIPDRAIN_PG_DSN" -qAt -c "CREATE DATABASE $db" >/dev/null
dsn="${SIPDRAIN_PG_DSN%/*}/$db"
SIPDRAIN_PG_DSN=$dsn build/bin/sipdrain-migrate --dir schemas/sql >/dev/null 2>&1
SIPDRAIN_PG_DSN=$dsn build/bin/sipdrain-migrate --dir deploy/sql >/dev/null 2>&1
pg_login_roles "$dsn"
orch_dsn=$(dsn_as sipdrain_orchestrator "$dsn")
edge_dsn=$(dsn_as sipdrain_edge "$dsn")
# An agent on a call (no agent-state here to end it) holds each drain open
# until it is cancelled; otherwise it would complete and stop the edges.
psql "$dsn" -qAt -c "INSERT INTO agents (agent_id, dn, site, state, call_id, version)
                      VALUES ('hold', '2999', 'site2', 'ready', 'hold-call', 1)" >/dev/null
SIPDRAIN_TOPIC_PREFIX=$prefix SIPDRAIN_LOG_LEVEL=warn build/bin/sipdrain-kafka-init
export SIPDRAIN_PG_DSN=$dsn SIPDRAIN_TOPIC_PREFIX=$prefix SIPDRAIN_LOG_LEVEL=info
SIPDRAIN_INSTANCE_ID=orch-1 SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-orchestrator.properties \
    SIPDRAIN_PG_DSN=$orch_dsn \
    build/bin/drain-orchestrator >"$logs/orch.log" 2>&1 &
pids+=($!)
# edge-1a of site1 only takes calls: the peer rule lets site2 drain only
# while an edge of its peer does
for e in edge-1a edge-2a edge-2b; do
    port=$((20000 + RANDOM % 12768)) # below the ephemeral range
    site=site${e:5:1}
    SIPDRAIN_EDGE_ID=$e SIPDRAIN_SITE=$site SIPDRAIN_SIP_URL="sip:127.0.0.1:$port" \
    SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-edge.properties SIPDRAIN_PG_DSN=$edge_dsn \
        build/bin/sip-edge >"$logs/$e.log" 2>&1 &
    pids+=($!)
done
for f in orch edge-1a edge-2a edge-2b; do
    for _ in $(seq 1 150); do grep -q "partitions assigned" "$logs/$f.log" && break; sleep 0.2; done
done
sleep 1

# last_change EDGE STATE-REGEX SINCE_MS -> ms of the edge's last state change
# to one of those states at or after SINCE_MS, or nothing
last_change() {
    local ts
    ts=$({ grep "msg=\"edge state changed\"" "$logs/$1.log" || true; } |
        { grep -E "to=($2) " || true; } | tail -1 | sed 's/^ts=\([^ ]*\) .*/\1/')
    [ -n "$ts" ] || return 0
    ts=$(date -d "$ts" +%s%3N)
    if [ "$ts" -ge "$3" ]; then echo "$ts"; fi
}

# wait_edges STATE-REGEX SINCE_MS -> ms of the later edge's change (or fail)
wait_edges() {
    local a b
    for _ in $(seq 1 300); do
        a=$(last_change edge-2a "$1" "$2")
        b=$(last_change edge-2b "$1" "$2")
        if [ -n "$a" ] && [ -n "$b" ]; then
            echo $((a > b ? a : b))
            return 0
        fi
        sleep 0.02
    done
    echo "bench: the edges did not reach $1 (see $logs)" >&2
    return 1
}

event() { # TYPE DATA-JSON
    printf '{"specversion":"1.0","id":"%s","source":"drain-orchestrator/bench","type":"%s","time":"%s","datacontenttype":"application/json","data":%s}' \
        "$(cat /proc/sys/kernel/random/uuid)" "$1" "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$2"
}

ctl_dsn=$(dsn_as sipdrain_drainctl "$dsn") # drainctl's own role, worked out once
results=$(mktemp)
record() { [ "$r" -gt 0 ] && echo "$1 $2" >>"$results" || true; }
for r in $(seq 0 "$ROUNDS"); do
    # the drain, through the orchestrator
    t0=$(now_ms)
    SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-operator.properties SIPDRAIN_PG_DSN=$ctl_dsn \
        build/bin/drainctl drain start --site site2 >>"$logs/drainctl.log" 2>&1
    t1=$(wait_edges "draining|bye_wait|drained" "$t0")
    record drain $((t1 - t0))
    SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-operator.properties SIPDRAIN_PG_DSN=$ctl_dsn \
        build/bin/drainctl drain cancel --site site2 >>"$logs/drainctl.log" 2>&1
    wait_edges active "$t1" >/dev/null
    sleep 0.3
    # the peer: edge.drain straight to the edges
    id=$(cat /proc/sys/kernel/random/uuid)
    t0=$(now_ms)
    for e in edge-2a edge-2b; do
        build/tests/bus_worker send "$SIPDRAIN_KAFKA_BROKERS" "${prefix}sipdrain.edge.control" "$e" \
            "$(event edge.drain "{\"edge\":\"$e\",\"site\":\"site2\",\"drain_id\":\"$id\",\"scope\":\"site\"}")"
    done
    t1=$(wait_edges "draining|bye_wait|drained" "$t0")
    record peer $((t1 - t0))
    for e in edge-2a edge-2b; do
        build/tests/bus_worker send "$SIPDRAIN_KAFKA_BROKERS" "${prefix}sipdrain.edge.control" "$e" \
            "$(event edge.resume "{\"edge\":\"$e\",\"site\":\"site2\",\"drain_id\":\"$id\"}")"
    done
    wait_edges active "$t1" >/dev/null
    sleep 0.3
done
pct() { # NAME PERCENT
    awk -v n="$1" '$1 == n { print $2 }' "$results" | sort -n |
        awk -v p="$2" '{ v[NR] = $1 } END { i = int((NR * p + 99) / 100); if (i < 1) i = 1; print v[i] }'
}
echo "drain propagation, command -> every edge of site2 refusing, $ROUNDS drains each, ms:"
printf '  %-38s p50 %5s   p99 %5s   max %5s\n' "drainctl -> orchestrator -> edges:" \
    "$(pct drain 50)" "$(pct drain 99)" "$(pct drain 100)"
printf '  %-38s p50 %5s   p99 %5s   max %5s\n' "peer: edge.drain straight to the edges:" \
    "$(pct peer 50)" "$(pct peer 99)" "$(pct peer 100)"
echo "  goal: drain p99 < 100 ms (the peer has no orchestrator and no drainctl start-up)"
cp "$results" "$logs/rounds.txt"
rm -f "$results"
case " $PARTS " in
*" rate "*)
    cleanup
    pids=()
    echo
    bench/drain_rate.sh
    ;;
esac
