#!/usr/bin/env bash
# Stop the private PostgreSQL cluster started by pg-up.sh (fast shutdown).
# Data and port are kept unless --purge is given, which removes .run/pg (and
# the /tmp directory it points to, see pg-up.sh). Safe when nothing runs.
# The databases of test, demo and benchmark runs are dropped first (keep them
# with SIPDRAIN_KEEP_DATABASES=1).
set -euo pipefail

# --name NAME: the cluster of pg-up.sh --name NAME (.run/NAME).
purge=0 name=pg
while (($#)); do
  case "$1" in
    --purge) purge=1; shift ;;
    --name) name=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--name NAME] [--purge]" >&2; exit 2 ;;
  esac
done
[[ "$name" =~ ^pg[a-z0-9-]*$ ]] || { echo "pg-down: --name must look like pg-site1" >&2; exit 2; }

script_dir=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$script_dir/../.." rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))
link="$REPO/.run/$name"

say() { echo "pg-down: $*" >&2; }

# Run a server-side tool as the cluster owner (PostgreSQL refuses root).
as_pg() {
  if [[ "$(id -u)" == 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

run=""
[[ -L "$link" || -d "$link" ]] && run=$(readlink -f "$link")
data="${run:+$run/data}"
PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)

if [[ -n "$data" && -f "$data/PG_VERSION" && -n "$PGBIN" ]] \
  && as_pg "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  # The runs' own databases (tests: t_*, demo: demo_*, benchmarks: bench_*)
  # go first: every test makes one, and a cluster kept from run to run would
  # otherwise grow by gigabytes. Best effort; SIPDRAIN_KEEP_DATABASES=1 keeps
  # them.
  if ((!purge)) && [[ -z "${SIPDRAIN_KEEP_DATABASES:-}" ]] && [[ -f "$run/env" ]]; then
    dsn=$(sed -n 's/^export SIPDRAIN_PG_DSN=//p' "$run/env")
    admin="${dsn%/*}/postgres"
    drops=$(psql "$admin" -qAt -c "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE);', datname)
                FROM pg_database WHERE datname ~ '^(t|demo|bench)_[a-z0-9_]+$'" 2>/dev/null) || drops=
    if [[ -n "$drops" ]]; then
      if psql "$admin" -q -v ON_ERROR_STOP=0 <<<"$drops" >/dev/null 2>&1; then
        say "dropped $(grep -c . <<<"$drops") databases of test, demo and benchmark runs"
      else
        say "could not drop every database of the runs (kept)"
      fi
    fi
  fi
  say "stopping PostgreSQL ($data)"
  as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >&2
else
  say "not running"
fi

if ((purge)); then
  [[ -n "$run" && "$run" != "$link" ]] && rm -rf "$run"   # the /tmp fallback dir
  rm -rf "$link"
  say "purged $link"
fi
