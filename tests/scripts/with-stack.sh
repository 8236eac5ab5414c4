#!/usr/bin/env bash
# Runs a command with the addresses of the private PostgreSQL and Kafka that
# tests/scripts/stack-up.sh started (from .run/pg/env and .run/kafka/env).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
for f in "$repo/.run/pg/env" "$repo/.run/kafka/env"; do
    if [ ! -f "$f" ]; then
        echo "with-stack: $f missing: start the servers with tests/scripts/stack-up.sh" >&2
        exit 1
    fi
    # shellcheck disable=SC1090
    . "$f"
done
# CTest sets these; defaults let you run a test binary by hand.
export SIPDRAIN_SOURCE_DIR=${SIPDRAIN_SOURCE_DIR:-$repo}
export SIPDRAIN_TEST_BIN_DIR=${SIPDRAIN_TEST_BIN_DIR:-$repo/build/tests}
exec "$@"
