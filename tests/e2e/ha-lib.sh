# tests/e2e/ha-lib.sh - sourced by the test of issue #18
# (site-power-off.sh): Kafka over three nodes and a PostgreSQL pair on
# loopback, and what those tests do with them. Needs repo, bin (test
# binaries) and sbin (programs) set, and the working directory at repo.

fail=0
check() { # description, then the command whose success is the check
    local what=$1
    shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
now_ms() { date +%s%3N; }

# Removes the cluster and the pair (their data too).
ha_cleanup() {
    tests/scripts/kafka-down.sh --cluster --purge >/dev/null 2>&1 || true
    for s in site1 site2; do tests/scripts/pg-down.sh --name "pg-$s" --purge >/dev/null 2>&1 || true; done
    rm -rf .run/pg-pair
}

# ha_up TAG: three Kafka nodes (racks site1, site2, witness) and the pair
# (primary site2, standby site1); exports their addresses and sets
# brokers, dsn and kafka_dir. Logs in .run/TAG-*.log.
ha_up() {
    mkdir -p .run # a fresh clone has none until a server script makes it
    eval "$(tests/scripts/kafka-up.sh --cluster 2>".run/$1-kafka-up.log")"
    eval "$(tests/scripts/pg-pair-up.sh 2>".run/$1-pg-up.log")"
    export SIPDRAIN_KAFKA_PROPERTIES="$SIPDRAIN_KAFKA_CLIENTS/sipdrain-admin.properties"
    brokers=$SIPDRAIN_KAFKA_BROKERS
    dsn=$SIPDRAIN_PG_DSN
    kafka_dir=$(tools/kafka-fetch.sh)
}

kafka_admin() { # KafkaAdmin.java as the admin, with the cluster's log settings
    java -Dlog4j.configuration="file:.run/kafka-cluster/admin-log4j.properties" -cp "$(<"$kafka_dir/classpath")" \
        tests/scripts/KafkaAdmin.java --config "$SIPDRAIN_KAFKA_CLIENTS/sipdrain-admin.java.properties" \
        "$brokers" 60 "$@" </dev/null
}
describe() { kafka_admin --describe "$@"; }
sq() { # SITE SQL: on that site's server, whatever its role
    psql -X -qAt "postgresql://postgres@127.0.0.1:$(cat ".run/pg-$1/port")/sipdrain?connect_timeout=5" -c "$2" 2>/dev/null
}
kill_stores() { # SITE NODE: kill -9 its Kafka node and every process of its PostgreSQL
    local pm
    kill -9 "$(cat ".run/kafka-cluster/node$2/pid")" 2>/dev/null || true
    pm=$(head -1 "$(readlink -f ".run/pg-$1")/data/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pm" ]; then
        pkill -9 -P "$pm" 2>/dev/null || true
        kill -9 "$pm" 2>/dev/null || true
    fi
}
# dump TOPIC: every event in it (bus_worker dump, bounded: librdkafka 2.0's
# watermark query can hang on a leader that died under it)
dump() { timeout 90 "$bin/bus_worker" dump "$brokers" "$1" 2>>.run/ha-dump.log; }
# led_elsewhere NODE TOPIC: no partition of TOPIC is led by NODE (or by nobody)
led_elsewhere() { ! describe "$2" | grep -q "^partition .* leader=\($1\|-1\) "; }
leads_none() { ! grep -q "^partition .* leader=$1 " <<<"$2"; } # NODE DESCRIPTION
wait_led_elsewhere() { # NODE TOPIC: up to 60 s (the broker's session timeout is 9 s)
    local i
    for i in $(seq 1 60); do led_elsewhere "$1" "$2" && return 0; sleep 1; done
    return 1
}
# every topic of ours (default prefix) and __consumer_offsets
our_topics="sipdrain.drain.commands sipdrain.drain.events sipdrain.edge.control sipdrain.edge.status
    sipdrain.call.events sipdrain.agent.commands sipdrain.agent.events sipdrain.deadletter
    __consumer_offsets"

# free_port VAR
# shellcheck source=tools/free-port.sh
. tools/free-port.sh
