#!/usr/bin/env bash
# tests/e2e/ha-stores.sh - issue #18's stores spread over two sites and a
# witness, against the real servers, on loopback:
#   Kafka: tests/scripts/kafka-up.sh --cluster (node 1 site1, node 2 site2,
#          node 3 witness; each a broker and a KRaft controller)
#   PostgreSQL: tests/scripts/pg-pair-up.sh (primary site2, standby site1),
#          every client on the multi-host DSN with target_session_attrs
# and bus_worker (libcommon's outbox and relay, as the services use them)
# writing events through PostgreSQL to Kafka the whole time:
#   1. the layout: racks, replication 3 one replica per rack, ISR 3,
#      min.insync.replicas 2; the standby streams;
#      drainctl stores --site site2 says site2 holds the primary and leaders;
#   2. unplanned: kill -9 site2's broker and PostgreSQL (the primary) while
#      events are written, promote site1's standby (--failover): the writer
#      finishes, the events written after the failover are all in Kafka; what
#      was lost is counted and printed;
#   3. site2 powered on again: its broker is back in every ISR, its
#      PostgreSQL rejoins as site1's standby (pg_rewind if it needs one).
# The planned way (drain, switchover, leaders moved, power-off) with the
# services running is tests/e2e/site-power-off.sh.
# Its own servers in .run/kafka-cluster and .run/pg-site1|2, removed at the
# end: it runs beside the test stack.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
bin=${SIPDRAIN_TEST_BIN_DIR:-build/tests}
sbin=${SIPDRAIN_BIN_DIR:-build/bin}
# shellcheck source=tests/e2e/ha-lib.sh
. tests/e2e/ha-lib.sh
keep() { [ -n "${KEEP:-}" ]; }
trap 'keep || ha_cleanup' EXIT
ha_cleanup

echo "== starting three Kafka nodes and a PostgreSQL pair"
ha_up ha
echo "   brokers $brokers"
echo "   dsn     $dsn"

# --- 1. the layout --------------------------------------------------------
t2="t.ha.$$.unplanned"
"$bin/bus_worker" topic "$brokers" "$t2" 6
layout=$(describe sipdrain.call.events "$t2")
check "1. three brokers, in racks site1 / site2 / witness" \
    [ "$(grep '^broker ' <<<"$layout" | sort | tr '\n' ' ')" = "broker 1 site1 broker 2 site2 broker 3 witness " ]
check "1. a KRaft quorum leader is elected" grep -q '^quorum-leader [123]$' <<<"$layout"
check "1. every partition: replicas on all three brokers (one per rack), all in sync" \
    [ "$(grep '^partition ' <<<"$layout" | grep -vc 'replicas=[123],[123],[123] isr=[123],[123],[123]$')" = 0 ]
check "1. (12 partitions described)" [ "$(grep -c '^partition ' <<<"$layout")" = 12 ]
check "1. min.insync.replicas 2 on both topics" [ "$(grep -c '^min.insync.replicas .* 2$' <<<"$layout")" = 2 ]
check "1. site2 is the primary, site1 a streaming standby" \
    [ "$(sq site2 'select pg_is_in_recovery()')/$(sq site1 'select status from pg_stat_wal_receiver')" = f/streaming ]

# The programs' ACLs (the operator's among them), as in production.
check "1. sipdrain-kafka-init made the topics' ACLs" "$sbin/sipdrain-kafka-init" >.run/ha-kafka-init.log 2>&1
stores() { # SITE: drainctl stores as the operator (least privilege), its output to
    local rc=0 # .run/ha-stores-SITE.out; its exit status
    SIPDRAIN_KAFKA_PROPERTIES="$SIPDRAIN_KAFKA_CLIENTS/sipdrain-operator.properties" \
        "$sbin/drainctl" stores --site "$1" >".run/ha-stores-$1.out" 2>&1 || rc=$?
    sed 's/^/   | /' ".run/ha-stores-$1.out"
    return "$rc"
}
rc=0
stores site2 || rc=$?
check "1. drainctl stores --site site2: site2 holds things (exit 1, not 0)" [ "$rc" = 1 ]
check "1. it names the PostgreSQL primary in site2" grep -q '^site2 holds the PostgreSQL primary' .run/ha-stores-site2.out
check "1. it names site2's partition leaders" grep -q "^site2's brokers lead partitions" .run/ha-stores-site2.out

# --- 2. unplanned: site2 (the primary) loses power ----------------------------
# (The planned way - drain, switchover, leaders moved, then the power-off -
# is tests/e2e/site-power-off.sh, with the services running.)
echo "== unplanned: 600 events written while site2 dies; site1's standby promoted"
SIPDRAIN_TEST_PACE_MS=25 "$bin/bus_worker" produce "$dsn" "$brokers" "$t2" 600 >.run/ha-produce2.out 2>.run/ha-produce2.err &
wpid=$!
sleep 3
t_kill=$(now_ms)
kill_stores site2 2
sleep 2 # the time an operator (or a watchdog) takes to see it; shorter is better
fo_rc=0
tests/scripts/pg-switchover.sh --failover >.run/ha-failover.out 2>&1 || fo_rc=$?
cat .run/ha-failover.out
t_up=$(now_ms)
check "2. site1 promoted (pg-switchover.sh --failover), $((t_up - t_kill)) ms after site2 died" [ "$fo_rc" = 0 ]
wrc=0
wait "$wpid" || wrc=$?
echo "   writer: $(cat .run/ha-produce2.out), done $(($(now_ms) - t_kill)) ms after the kill"
check "2. the writer finished (exit $wrc)" [ "$wrc" = 0 ]
check "2. site2's broker leads nothing any more" wait_led_elsewhere 2 "$t2"
got=$(dump "$t2" | grep -o '"seq":[0-9]*' | cut -d: -f2 | sort -n -u)
n2=$(grep -c . <<<"$got" || true)
lost=$((600 - n2))
echo "   lost in the unplanned failover: $lost of 600 events (committed on site2, neither streamed to site1 nor relayed)"
check "2. the events written after the failover are all there (seq 500..599)" \
    [ "$(awk '$1 >= 500' <<<"$got" | grep -c .)" = 100 ]
check "2. at most the replication lag was lost (lost $lost <= 40 events, 1 s of writing)" [ "$lost" -le 40 ]

# --- 3. site2 powered on again ----------------------------------------------------
echo "== site2 powered on: its broker catches up, its PostgreSQL rejoins as the standby"
tests/scripts/kafka-up.sh --cluster >/dev/null 2>>.run/ha-kafka-up.log
tests/scripts/pg-switchover.sh --rejoin site2 >.run/ha-rejoin.out 2>&1 || true
cat .run/ha-rejoin.out
back=0
for _ in $(seq 1 60); do
    if [ "$(describe "$t2" | grep '^partition ' | grep -vc 'isr=[123],[123],[123]$')" = 0 ]; then back=1; break; fi
    sleep 1
done
check "3. site2's broker is back in every ISR of $t2" [ "$back" = 1 ]
check "3. site2 rejoined as site1's standby" [ "$(sq site2 'select status from pg_stat_wal_receiver')" = streaming ]

if [ "$fail" = 0 ]; then echo "PASS ha-stores"; else echo "FAIL ha-stores"; fi
exit "$fail"
