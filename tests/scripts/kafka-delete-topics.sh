#!/usr/bin/env bash
# kafka-delete-topics.sh PREFIX...: delete the topics, and the ACLs, whose
# names start with one of the prefixes, on the private Kafka that
# kafka-up.sh started (its admin login). Used by kafka-down.sh (the runs'
# t. / demo. / bench. topics) and by bench/edge.sh (each instance's own, so
# that every instance meets a broker in the same state, not one holding the
# partitions and ACLs of every instance before it). Exit 1 when they could
# not be deleted within a minute. --cluster: on kafka-up.sh --cluster's.
set -euo pipefail

run_name=kafka
if [[ "${1:-}" == --cluster ]]; then
  run_name=kafka-cluster
  shift
fi
(($# > 0)) || { echo "usage: $0 [--cluster] PREFIX..." >&2; exit 2; }
script_dir=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$script_dir/../.." rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))
run="$REPO/.run/$run_name"

[[ -f "$run/env" ]] || { echo "kafka-delete-topics: no $run/env: is Kafka up (kafka-up.sh)?" >&2; exit 1; }
kafka_dir=$("$REPO/tools/kafka-fetch.sh" 2>/dev/null) || kafka_dir=
[[ -s "$kafka_dir/classpath" ]] || { echo "kafka-delete-topics: no Kafka jars (tools/kafka-fetch.sh)" >&2; exit 1; }
command -v java >/dev/null || { echo "kafka-delete-topics: java not found" >&2; exit 1; }
bootstrap=$(sed -n 's/^export SIPDRAIN_KAFKA_BROKERS=//p' "$run/env")
exec timeout 90 java -Dlog4j.configuration="file:$run/admin-log4j.properties" \
  -cp "$(<"$kafka_dir/classpath")" "$script_dir/KafkaAdmin.java" \
  --config "$run/clients/sipdrain-admin.java.properties" \
  "$bootstrap" 60 --delete-prefixed "$@" </dev/null
