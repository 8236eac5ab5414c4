#!/usr/bin/env bash
# Restart the private Kafka on the same ports, keeping its data and topics
# (used by reconnect tests; the topics stay, SIPDRAIN_KEEP_TOPICS). stdout:
# the env line from kafka-up.sh.
set -euo pipefail

script_dir=$(cd "$(dirname "$0")" && pwd)
SIPDRAIN_KEEP_TOPICS=1 "$script_dir/kafka-down.sh" # the topics of the test that restarts it stay
exec "$script_dir/kafka-up.sh"
