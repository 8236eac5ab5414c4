#!/usr/bin/env bash
# Stop the local test stack (Kafka, then PostgreSQL). `--purge` is passed to
# both and also removes .run/env. Both are attempted even if one fails.
set -euo pipefail

for arg in "$@"; do
  case "$arg" in
    --purge) ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
  esac
done

script_dir=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$script_dir/../.." rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))

rc=0
"$script_dir/kafka-down.sh" "$@" || rc=1
"$script_dir/pg-down.sh" "$@" || rc=1
if [[ " $* " == *" --purge "* ]]; then
  rm -f "$REPO/.run/env"
  rmdir "$REPO/.run" 2>/dev/null || true   # only if nothing else lives there
fi
exit "$rc"
