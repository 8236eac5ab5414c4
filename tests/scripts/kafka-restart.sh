#!/usr/bin/env bash
# Restart the private Kafka on the same ports, keeping its data and topics
# (used by reconnect tests). stdout: the env line from kafka-up.sh.
set -euo pipefail

script_dir=$(cd "$(dirname "$0")" && pwd)
"$script_dir/kafka-down.sh"
exec "$script_dir/kafka-up.sh"
