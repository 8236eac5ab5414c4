#!/usr/bin/env bash
# bench/agent_state.sh - agent-state end to end, on the real servers:
#
#   command produced to Kafka -> agent-state (inbox claim, agents row FOR
#   UPDATE, agent_fsm, row UPDATE, outbox row, COMMIT) -> relay -> Kafka
#   -> the load generator reads the answer (matched by data.request_id)
#
# build/tests/agent_load logs AGENTS agents in first (not measured), then
# sends agent.ready / agent.not_ready in turn (agent j % AGENTS):
#   max     N commands as fast as it can produce them
#   steady  RATE commands/s on a fixed schedule for SECONDS_STEADY seconds,
#           after 2 s on the same schedule that are not measured: the step from
#           idle to load costs the first ~100 ms of answers 50-150 ms (Kafka
#           alone shows a smaller step too), and p99 should describe the
#           steady state
# Latency = answer arrival - command send, both on the generator's clock.
# Throughput = answers / (last answer - first send).
# INSTANCES agent-state processes share the partitions (one consumer group).
#
# The peer, in the same run and alternating with it: "echo", which answers
# each command straight from Kafka (consume -> produce, no database, no
# inbox, no outbox): the price of the guarantees is visible side by side.
# Goal (issue #3, 2 cores): >= 3,000 commands/s sustained; p99 < 100 ms at
# 1,000 commands/s. It prints numbers; it is a benchmark, not a test.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. bench/lib.sh
AGENTS=${AGENTS:-2000}
N=${N:-30000}
RATE=${RATE:-1000}
SECONDS_STEADY=${SECONDS_STEADY:-10}
INSTANCES=${INSTANCES:-2}
REPEAT=${REPEAT:-3}
load=build/tests/agent_load
worker=build/tests/bus_worker
for b in "$load" "$worker" build/bin/agent-state; do
    [ -x "$b" ] || { echo "bench: $b missing: run make" >&2; exit 1; }
done
eval "$(tests/scripts/stack-up.sh)"
# Kafka logins (kafka-up.sh): this script's tools are the admin; each
# program started below logs in as its own user.
kc=$SIPDRAIN_KAFKA_CLIENTS
export SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-admin.properties
psql_admin() { psql "$SIPDRAIN_PG_DSN" -v ON_ERROR_STOP=1 -qAt "$@"; }
trap 'jobs -p | xargs -r kill 2>/dev/null' EXIT

# topics PREFIX: the topics (6 partitions each) and the ACLs
topics() {
    SIPDRAIN_TOPIC_PREFIX=$1 SIPDRAIN_LOG_LEVEL=warn build/bin/sipdrain-kafka-init
}

# row NAME RATE LINE -> one result line from agent_load's output
row() {
    local name=$1 rate=$2 kv
    kv=$3
    val() { echo "$kv" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    printf '%-8s %8s %8s %12s %10s %10s %10s\n' "$name" "$(val answered)" "$(val commands_per_s)" \
        "$([ "$rate" = 0 ] && echo unlimited || echo "$rate/s")" "$(val p50_ms)" "$(val p99_ms)" \
        "$(val max_ms)"
}

# run NAME N RATE -> agent-state
run() {
    local name=$1 n=$2 rate=$3 id db dsn prefix pids=() k out
    id=$(date +%s%N | tail -c 9)
    db="bench_as_${name}_$id"
    prefix="bench.$id."
    psql_admin -c "CREATE DATABASE $db" >/dev/null
    dsn="${SIPDRAIN_PG_DSN%/*}/$db"
    SIPDRAIN_PG_DSN=$dsn SIPDRAIN_LOG_LEVEL=warn build/bin/sipdrain-migrate >/dev/null
    pg_login_roles "$dsn"
    psql "$dsn" -qAt -c "INSERT INTO sites (site_id, peer) VALUES ('site1', NULL)"
    topics "$prefix"
    for k in $(seq 1 "$INSTANCES"); do
        SIPDRAIN_PG_DSN=$(dsn_as sipdrain_agent_state "$dsn") SIPDRAIN_TOPIC_PREFIX=$prefix \
        SIPDRAIN_INSTANCE_ID="bench-$k" \
        SIPDRAIN_LOG_LEVEL=warn SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-agent-state.properties \
        build/bin/agent-state 2>>".run/bench-as-$name.log" &
        pids+=($!)
    done
    out=$("$load" load "$SIPDRAIN_KAFKA_BROKERS" "$prefix" "$AGENTS" "$n" "$rate" \
        2>>".run/bench-as-$name.log") || { echo "bench: $name failed, see .run/bench-as-$name.log" >&2; return 1; }
    kill "${pids[@]}"
    wait "${pids[@]}" || true
    row "$name" "$rate" "$out"
    [ -n "${KEEP:-}" ] && echo "kept database $db" || psql_admin -c "DROP DATABASE $db" >/dev/null
}

# peer NAME N RATE -> Kafka alone (echo)
peer() {
    local name=$1 n=$2 rate=$3 prefix epid out
    prefix="bench.$(date +%s%N | tail -c 9)."
    topics "$prefix"
    "$load" echo "$SIPDRAIN_KAFKA_BROKERS" "$prefix" 2>>".run/bench-as-$name.log" &
    epid=$!
    out=$("$load" load "$SIPDRAIN_KAFKA_BROKERS" "$prefix" "$AGENTS" "$n" "$rate" \
        2>>".run/bench-as-$name.log") || { echo "bench: $name failed, see .run/bench-as-$name.log" >&2; return 1; }
    kill "$epid"
    wait "$epid" || true
    row "$name" "$rate" "$out"
}

echo "agent-state benchmark: $(nproc) cores, $INSTANCES instances, $AGENTS agents, $(psql --version | head -1)"
echo "rows: max/steady = agent-state (inbox -> agents row -> outbox -> Kafka); k-* = Kafka alone (echo)"
printf '%-8s %8s %8s %12s %10s %10s %10s\n' run answers cmds/s offered p50_ms p99_ms max_ms
# An unmeasured run first: the broker's JVM and PostgreSQL's caches warm up.
run warmup 5000 0 >/dev/null
results=$(mktemp)
for r in $(seq 1 "$REPEAT"); do
    run max "$N" 0 | tee -a "$results"
    run steady $((RATE * SECONDS_STEADY)) "$RATE" | tee -a "$results"
    peer k-max "$N" 0 | tee -a "$results"
    peer k-steady $((RATE * SECONDS_STEADY)) "$RATE" | tee -a "$results"
done
echo "max commands/s:        agent-state $(summary "$results" max 3); kafka alone $(summary "$results" k-max 3)"
echo "steady p50 ms:         agent-state $(summary "$results" steady 5); kafka alone $(summary "$results" k-steady 5)"
echo "steady p99 ms:         agent-state $(summary "$results" steady 6); kafka alone $(summary "$results" k-steady 6)"
rm -f "$results"
echo "goal:                  max >= 3000 commands/s; steady p99 < 100 ms at $RATE commands/s"
