#!/usr/bin/env bash
# Start the whole local test stack: private PostgreSQL (pg-up.sh) and Kafka
# (kafka-up.sh). stdout: their two export lines, also written to .run/env so
# tests can `. .run/env`. Progress goes to stderr.
set -euo pipefail

script_dir=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$script_dir/../.." rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))

pg_line=$("$script_dir/pg-up.sh")
kafka_line=$("$script_dir/kafka-up.sh")

mkdir -p "$REPO/.run"
printf '%s\n%s\n' "$pg_line" "$kafka_line" | tee "$REPO/.run/env"
