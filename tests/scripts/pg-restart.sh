#!/usr/bin/env bash
# Restart the private PostgreSQL cluster (fast shutdown, then start again on
# the same port, keeping data); used by reconnect tests. The port stays the
# same because it lives in the cluster's sipdrain.conf (see pg-up.sh).
# stdout: the same env line as pg-up.sh.
set -euo pipefail

script_dir=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$script_dir/../.." rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))
link="$REPO/.run/pg"

say() { echo "pg-restart: $*" >&2; }
die() { say "$*"; exit 1; }

# Run a server-side tool as the cluster owner (PostgreSQL refuses root).
as_pg() {
  if [[ "$(id -u)" == 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

[[ -L "$link" || -d "$link" ]] || die "no cluster at $link; run pg-up.sh first"
run=$(readlink -f "$link")
data="$run/data"
logf="$run/log"
[[ -f "$data/PG_VERSION" ]] || die "no cluster in $data; run pg-up.sh first"
PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
[[ -n "$PGBIN" && -x "$PGBIN/pg_ctl" ]] || die "PostgreSQL server binaries not found"

say "restarting PostgreSQL ($data)"
if ! as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 -l "$logf" restart >&2; then
  echo "---- last 30 lines of $logf ----" >&2
  tail -n 30 "$logf" >&2 || true
  echo "----" >&2
  die "PostgreSQL failed to restart"
fi
cat "$run/env"
