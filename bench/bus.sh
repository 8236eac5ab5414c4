#!/usr/bin/env bash
# bench/bus.sh - the event bus end to end, on the real servers:
#
#   outbox row COMMITted -> relay -> Kafka -> consumer (inbox + effect) -> COMMIT
#
# Two runs, each in a fresh database and topic (6 partitions):
#   max     N events as fast as PRODUCERS producers (each its own service instance,
#           outbox owner and relay) can write them, BATCH events per transaction,
#           applied by CONSUMERS consumers sharing the topic's partitions (one group)
#   steady  RATE events/s on a fixed schedule for SECONDS seconds, one per transaction
# Latency is the effect row's clock_timestamp() (PostgreSQL, at the consumer's
# INSERT, just before its COMMIT) minus the event's own CloudEvents `time`
# (set by the producer just before its INSERT into the outbox): one machine,
# one clock, millisecond resolution. Throughput is events / (last effect -
# first event time).
# The peer, in the same run and alternating with it: Kafka alone (the same
# events produced straight to the topic and consumed with no database, no
# outbox, no inbox), i.e. what the broker gives on this machine, so the price
# of the transactional guarantees is visible side by side.
# Goal (issue #2, 2 cores): >= 5,000 events/s sustained; p99 < 50 ms at 1,000 events/s.
# It prints numbers; it is a benchmark, not a test.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
. bench/lib.sh
N=${N:-60000}
BATCH=${BATCH:-10}
PRODUCERS=${PRODUCERS:-2}
CONSUMERS=${CONSUMERS:-2}
RATE=${RATE:-1000}
SECONDS_STEADY=${SECONDS_STEADY:-10}
REPEAT=${REPEAT:-3}
worker=build/tests/bus_worker
[ -x "$worker" ] || { echo "bench: $worker missing: run make" >&2; exit 1; }
eval "$(tests/scripts/stack-up.sh)"
# Kafka: the workers log in as the stack's admin (kafka-up.sh).
export SIPDRAIN_KAFKA_PROPERTIES=$SIPDRAIN_KAFKA_CLIENTS/sipdrain-admin.properties
psql_admin() { psql "$SIPDRAIN_PG_DSN" -v ON_ERROR_STOP=1 -qAt "$@"; }
# Never leave a worker behind, whatever happens to this script.
trap 'jobs -p | xargs -r kill 2>/dev/null' EXIT

# run NAME EVENTS RATE BATCH PRODUCERS CONSUMERS -> prints one result line
run() {
    local name=$1 n=$2 rate=$3 batch=$4 np=$5 nc=$6 id db dsn topic cpids=() pids=() k
    id=$(date +%s%N | tail -c 9)
    db="bench_${name}_$id"
    topic="bench.$id.$name"
    psql_admin -c "CREATE DATABASE $db" >/dev/null
    dsn="${SIPDRAIN_PG_DSN%/*}/$db"
    SIPDRAIN_PG_DSN=$dsn SIPDRAIN_LOG_LEVEL=warn build/bin/sipdrain-migrate >/dev/null
    "$worker" topic "$SIPDRAIN_KAFKA_BROKERS" "$topic" 6
    # Consumer first; the producer sends one warm-up event (seq -1) through
    # the whole path and waits for its effect before it starts measuring.
    # The consumers share the partitions; this script stops them (SIGTERM)
    # once the table holds every effect.
    for k in $(seq 1 "$nc"); do
        SIPDRAIN_TEST_OWNER="bench/consumer-$k" \
            "$worker" consume "$dsn" "$SIPDRAIN_KAFKA_BROKERS" "$topic" "$topic.g" $((n + np)) \
            >".run/bench-$name-consumer-$k.out" 2>".run/bench-$name-consumer-$k.log" &
        cpids+=($!)
    done
    until psql "$dsn" -qAt -c "SELECT 1 FROM test_effects LIMIT 0" >/dev/null 2>&1; do sleep 0.1; done
    for k in $(seq 1 "$np"); do
        SIPDRAIN_TEST_OWNER="bench/producer-$k" SIPDRAIN_TEST_WARMUP=1 \
        SIPDRAIN_TEST_RATE=$((rate / np)) SIPDRAIN_TEST_BATCH=$batch \
            "$worker" produce "$dsn" "$SIPDRAIN_KAFKA_BROKERS" "$topic" $((n / np)) \
            >".run/bench-$name-producer-$k.out" 2>".run/bench-$name-producer-$k.log" &
        pids+=($!)
    done
    for k in "${pids[@]}"; do
        wait "$k" || { echo "bench: a producer failed, see .run/bench-$name-producer-*.log" >&2; return 1; }
    done
    for _ in $(seq 1 600); do
        [ "$(psql "$dsn" -qAt -c "SELECT count(*) FROM test_effects WHERE seq >= 0")" -ge "$n" ] && break
        sleep 1
    done
    kill "${cpids[@]}" 2>/dev/null || true
    for k in "${cpids[@]}"; do
        wait "$k" || { echo "bench: a consumer failed, see .run/bench-$name-consumer-*.log" >&2; return 1; }
    done
    psql "$dsn" -qAt -F ' ' -c "
      WITH lat AS (
        SELECT extract(epoch FROM applied_at - created_at) * 1000 AS ms, created_at, applied_at
        FROM test_effects WHERE seq >= 0)
      SELECT count(*),
             round((count(*) / extract(epoch FROM max(applied_at) - min(created_at)))::numeric, 0),
             round(percentile_cont(0.50) WITHIN GROUP (ORDER BY ms)::numeric, 1),
             round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
             round(max(ms)::numeric, 1)
      FROM lat" | {
        read -r count eps p50 p99 max
        printf '%-8s %8s %10s %12s %10s %10s %10s\n' "$name" "$count" "$eps" \
            "$([ "$rate" = 0 ] && echo unlimited || echo "$rate/s")" "$p50" "$p99" "$max"
    }
    [ -n "${KEEP:-}" ] && echo "kept database $db" || psql_admin -c "DROP DATABASE $db" >/dev/null
}

echo "bus benchmark: $(nproc) cores, kafka $(basename "$(ls -d "${SIPDRAIN_CACHE:-$HOME/.cache/sipdrain}"/kafka-* | head -1)"), $(psql --version | head -1)"
echo "rows: max/steady = the bus (outbox -> relay -> Kafka -> inbox -> COMMIT); k-* = Kafka alone"
printf '%-8s %8s %10s %12s %10s %10s %10s\n' run events events/s offered p50_ms p99_ms max_ms
# An unmeasured run first: the broker's JVM compiles its hot paths (the first
# run after a start is markedly slower) and PostgreSQL warms its caches.
run warmup 10000 0 "$BATCH" "$PRODUCERS" "$CONSUMERS" >/dev/null
# peer NAME EVENTS RATE -> one result line for Kafka alone
peer() {
    local name=$1 n=$2 rate=$3 topic ready line cpid
    topic="bench.$(date +%s%N | tail -c 9).$name"
    ready=$(mktemp -u)
    "$worker" topic "$SIPDRAIN_KAFKA_BROKERS" "$topic" 6
    SIPDRAIN_TEST_READY_FILE=$ready "$worker" rawconsume "$SIPDRAIN_KAFKA_BROKERS" "$topic" \
        "$topic.g" "$n" >".run/bench-$name.out" 2>".run/bench-$name.log" &
    cpid=$!
    SIPDRAIN_TEST_READY_FILE=$ready SIPDRAIN_TEST_WARMUP=1 SIPDRAIN_TEST_RATE=$rate \
        "$worker" rawproduce "$SIPDRAIN_KAFKA_BROKERS" "$topic" "$n" >/dev/null 2>>".run/bench-$name.log"
    wait "$cpid" || { echo "bench: $name failed, see .run/bench-$name.log" >&2; return 1; }
    rm -f "$ready"
    read -r count eps p50 p99 max <".run/bench-$name.out"
    printf '%-8s %8s %10s %12s %10s %10s %10s\n' "$name" "$count" "$eps" \
        "$([ "$rate" = 0 ] && echo unlimited || echo "$rate/s")" "$p50" "$p99" "$max"
}

# Runs alternate (max, steady, max, ...) so drift on a shared machine hits both;
# the summary gives the median and the spread.
results=$(mktemp)
for r in $(seq 1 "$REPEAT"); do
    run max "$N" 0 "$BATCH" "$PRODUCERS" "$CONSUMERS" | tee -a "$results"
    run steady $((RATE * SECONDS_STEADY)) "$RATE" 1 1 1 | tee -a "$results"
    peer k-max "$N" 0 | tee -a "$results"
    peer k-steady $((RATE * SECONDS_STEADY)) "$RATE" | tee -a "$results"
done
echo "max events/s:      bus $(summary "$results" max 3); kafka alone $(summary "$results" k-max 3)"
echo "steady p99 ms:     bus $(summary "$results" steady 6); kafka alone $(summary "$results" k-steady 6)"
rm -f "$results"
echo "goal:              max >= 5000 events/s; steady p99 < 50 ms at 1000 events/s"
echo "setup: $PRODUCERS producers x $BATCH events per transaction, $CONSUMERS consumers (one group), 6 partitions"
