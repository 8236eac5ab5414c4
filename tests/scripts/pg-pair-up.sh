#!/usr/bin/env bash
# pg-pair-up.sh - PostgreSQL over both sites on loopback (issue #18): a
# primary and a hot standby streaming from it, each a pg-up.sh --durable
# cluster of its own:
#   .run/pg-site2   the primary when the pair is first made (--primary site1
#                   makes site1 the first primary instead)
#   .run/pg-site1   pg_basebackup'd from it: a standby
# Later calls start whatever is down and leave the roles as they are (after
# tests/scripts/pg-switchover.sh the standby is site2). Two primaries (a
# standby promoted while the other was away, e.g. the unplanned failover of
# the power-off test) are refused: the stale one must be made a standby
# first (pg-switchover.sh --rejoin).
#
# stdout: one line, the multi-host DSN every service uses, and .run/pg-pair/env:
#   export SIPDRAIN_PG_DSN=postgresql://postgres@127.0.0.1:<site1>,127.0.0.1:<site2>/sipdrain?target_session_attrs=read-write
# libpq tries the hosts in order and keeps the one that accepts writes, so a
# client reconnecting after a switchover finds the new primary by itself.
set -euo pipefail

first=site2
while (($#)); do
  case "$1" in
    --primary) first=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--primary site1|site2]" >&2; exit 2 ;;
  esac
done
[[ "$first" == site1 || "$first" == site2 ]] || { echo "pg-pair-up: --primary site1 or site2" >&2; exit 2; }
second=$([[ "$first" == site1 ]] && echo site2 || echo site1)

script_dir=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$script_dir/../.." rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))
say() { echo "pg-pair-up: $*" >&2; }
die() { say "$*"; exit 1; }

port_of() { cat "$REPO/.run/pg-$1/port" 2>/dev/null; }
in_recovery() { psql -X -qAt "postgresql://postgres@127.0.0.1:$(port_of "$1")/postgres?connect_timeout=5" \
  -c 'select pg_is_in_recovery()' 2>/dev/null; }

if [[ ! -e "$REPO/.run/pg-site1" && ! -e "$REPO/.run/pg-site2" ]]; then
  say "making the pair: primary $first, standby $second"
  "$script_dir/pg-up.sh" --name "pg-$first" --durable >/dev/null
  "$script_dir/pg-up.sh" --name "pg-$second" --durable --standby-of "$(port_of "$first")" >/dev/null
else
  # Whichever is the primary first, so a standby finds it when it starts.
  for s in site1 site2; do
    [[ -f "$REPO/.run/pg-$s/data/standby.signal" ]] || "$script_dir/pg-up.sh" --name "pg-$s" --durable >/dev/null
  done
  for s in site1 site2; do
    [[ -f "$REPO/.run/pg-$s/data/standby.signal" ]] && "$script_dir/pg-up.sh" --name "pg-$s" --durable >/dev/null
  done
fi

r1=$(in_recovery site1) || die "pg-site1 does not answer"
r2=$(in_recovery site2) || die "pg-site2 does not answer"
case "$r1$r2" in
  tf) say "primary site2 (127.0.0.1:$(port_of site2)), standby site1 (127.0.0.1:$(port_of site1))" ;;
  ft) say "primary site1 (127.0.0.1:$(port_of site1)), standby site2 (127.0.0.1:$(port_of site2))" ;;
  ff) die "both site1 and site2 are primaries (a failover while one was away): make the stale one a standby (pg-switchover.sh --rejoin SITE)" ;;
  *) die "no primary (site1 in recovery: $r1, site2: $r2): promote one (pg-switchover.sh)" ;;
esac

mkdir -p "$REPO/.run/pg-pair"
echo "export SIPDRAIN_PG_DSN=postgresql://postgres@127.0.0.1:$(port_of site1),127.0.0.1:$(port_of site2)/sipdrain?target_session_attrs=read-write" |
  tee "$REPO/.run/pg-pair/env"
