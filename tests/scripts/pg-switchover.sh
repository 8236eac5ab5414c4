#!/usr/bin/env bash
# pg-switchover.sh - move the PostgreSQL primary of the pair that
# tests/scripts/pg-pair-up.sh started to the other site, and say what it did
# (issue #18). Three uses:
#
#   pg-switchover.sh              planned switchover, before a site's
#                                 maintenance: (1) wait until the standby has
#                                 replayed nearly all the primary wrote (within
#                                 CATCHUP_BYTES, 1 MiB: writers never let it be 0),
#                                 (2) stop the primary (fast: its clients are
#                                 cut and reconnect to the new one; at shutdown
#                                 it sends its last WAL to the standby), (3)
#                                 check the standby has the old primary's final
#                                 checkpoint - else start the old primary
#                                 again and fail, nothing lost - (4) promote the
#                                 standby, (5) make the old primary a standby of
#                                 the new one (--no-rejoin: leave it stopped).
#                                 Nothing committed is lost.
#   pg-switchover.sh --failover   unplanned: the primary is gone (its site lost
#                                 power); promote the standby now. Commits the
#                                 standby had not received are lost: it prints
#                                 the last WAL position it had.
#   pg-switchover.sh --rejoin S   make site S (a stopped old primary, e.g. the
#                                 site that lost power, back again) a standby of
#                                 the current primary: it follows the new
#                                 timeline, rewound with pg_rewind first when it
#                                 had written past the fork point.
#
# Each step prints one line with how long it took. Exit 0 when done, 1 when
# not (the reason on stderr; a planned switchover that cannot be completed
# leaves the old primary running). --timeout S bounds each wait (30 s).
set -euo pipefail

mode=switchover rejoin=1 rejoin_site="" timeout_s=30
# Step 1 waits until the standby is this close; step 3 makes sure it has
# everything (writers keep the gap from ever being exactly 0).
CATCHUP_BYTES=${CATCHUP_BYTES:-1048576}
while (($#)); do
  case "$1" in
    --failover) mode=failover; shift ;;
    --rejoin) mode=rejoin; rejoin_site=${2:?}; shift 2 ;;
    --no-rejoin) rejoin=0; shift ;;
    --timeout) timeout_s=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--no-rejoin] [--timeout S] | --failover | --rejoin site1|site2" >&2; exit 2 ;;
  esac
done

script_dir=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$script_dir/../.." rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))
PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
[[ -n "$PGBIN" ]] || { echo "pg-switchover: PostgreSQL binaries not found" >&2; exit 1; }
say() { echo "pg-switchover: $*"; }
die() { echo "pg-switchover: $*" >&2; exit 1; }
as_pg() {
  if [[ "$(id -u)" == 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
now_ms() { date +%s%3N; }
data_of() { echo "$(readlink -f "$REPO/.run/pg-$1")/data"; }
port_of() { cat "$REPO/.run/pg-$1/port"; }
q() { # SITE SQL
  psql -X -qAt "postgresql://postgres@127.0.0.1:$(port_of "$1")/postgres?connect_timeout=5" -c "$2" 2>/dev/null
}
running() { as_pg "$PGBIN/pg_ctl" -D "$(data_of "$1")" status >/dev/null 2>&1; }
other() { [[ "$1" == site1 ]] && echo site2 || echo site1; }
# wait_for SECONDS CMD...: until CMD succeeds; 1 on timeout
wait_for() {
  local until=$(($(date +%s) + $1))
  shift
  while ! "$@"; do
    (($(date +%s) < until)) || return 1
    sleep 0.1
  done
}

for s in site1 site2; do
  [[ -e "$REPO/.run/pg-$s" ]] || die "no .run/pg-$s: start the pair first (tests/scripts/pg-pair-up.sh)"
done

primary="" standby=""
for s in site1 site2; do
  running "$s" || continue
  case "$(q "$s" 'select pg_is_in_recovery()')" in
    f) primary="$primary${primary:+ }$s" ;;
    t) standby="$standby${standby:+ }$s" ;;
  esac
done

# start_following SITE PORT: SITE's (stopped) server set up as a standby of
# 127.0.0.1:PORT, on whatever timeline that one is, and started.
start_following() {
  local site=$1 port=$2 data
  data=$(data_of "$site")
  as_pg touch "$data/standby.signal"
  as_pg sed -i '/^primary_conninfo/d; /^recovery_target_timeline/d' "$data/postgresql.auto.conf"
  printf "primary_conninfo = 'host=127.0.0.1 port=%s user=postgres application_name=%s'\nrecovery_target_timeline = 'latest'\n" \
    "$port" "pg-$site" | as_pg tee -a "$data/postgresql.auto.conf" >/dev/null
  "$script_dir/pg-up.sh" --name "pg-$site" --durable >/dev/null 2>"$REPO/.run/pg-$site/rejoin.log" ||
    { cat "$REPO/.run/pg-$site/rejoin.log" >&2; return 1; }
}

# Makes SITE (stopped) a standby of the primary on 127.0.0.1:PORT and starts it.
make_standby() {
  local site=$1 port=$2 data t0
  data=$(data_of "$site")
  t0=$(now_ms)
  start_following "$site" "$port" || return 1
  if ! wait_for 15 streams "$site"; then
    # It wrote past the point where the new primary's timeline forked (a
    # kill -9'd primary): rewind it to the new primary's history first.
    say "pg-$site does not follow the new timeline: pg_rewind from the primary"
    as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    as_pg "$PGBIN/pg_rewind" --target-pgdata="$data" \
      --source-server="host=127.0.0.1 port=$port user=postgres dbname=postgres" >&2 ||
      return 1
    start_following "$site" "$port" || return 1
    wait_for "$timeout_s" streams "$site" || return 1
  fi
  say "pg-$site is a standby of 127.0.0.1:$port, streaming ($(($(now_ms) - t0)) ms)"
}
streams() { [[ "$(q "$1" "select status from pg_stat_wal_receiver")" == streaming ]]; }
is_primary() { [[ "$(q "$1" 'select pg_is_in_recovery()')" == f ]]; }

case "$mode" in
  rejoin)
    [[ "$rejoin_site" == site1 || "$rejoin_site" == site2 ]] || die "--rejoin site1 or site2"
    p=$(other "$rejoin_site")
    [[ " $primary " == *" $p "* ]] || die "pg-$p is not a running primary: nothing to follow"
    if running "$rejoin_site"; then
      [[ " $standby " == *" $rejoin_site "* ]] && { say "pg-$rejoin_site is already a standby"; exit 0; }
      say "stopping pg-$rejoin_site, a stale primary"
      as_pg "$PGBIN/pg_ctl" -D "$(data_of "$rejoin_site")" -m fast -w stop >/dev/null
    fi
    make_standby "$rejoin_site" "$(port_of "$p")" || die "pg-$rejoin_site could not be made a standby"
    exit 0
    ;;
  failover)
    [[ -n "$primary" ]] && die "pg-$primary is running as the primary: use a planned switchover"
    [[ -n "$standby" && "$standby" != *" "* ]] || die "no running standby to promote"
    s=$standby
    t0=$(now_ms)
    lsn=$(q "$s" "select coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())")
    as_pg "$PGBIN/pg_ctl" -D "$(data_of "$s")" -w -t "$timeout_s" promote >/dev/null ||
      die "pg_ctl promote of pg-$s failed"
    wait_for "$timeout_s" is_primary "$s" || die "pg-$s still in recovery"
    say "pg-$s promoted to primary without the old one ($(($(now_ms) - t0)) ms); it had WAL up to $lsn:" \
      "commits the old primary made after that are lost"
    exit 0
    ;;
esac

# --- planned switchover --------------------------------------------------
[[ -n "$primary" && "$primary" != *" "* ]] || die "want one running primary, found: ${primary:-none}"
[[ -n "$standby" && "$standby" != *" "* ]] || die "want one running standby, found: ${standby:-none}"
t_all=$(now_ms)
say "primary pg-$primary (127.0.0.1:$(port_of "$primary")) -> pg-$standby (127.0.0.1:$(port_of "$standby"))"

# 1. caught up
t0=$(now_ms)
caught_up() {
  local at
  at=$(q "$standby" "select pg_last_wal_replay_lsn()") || return 1
  [[ -n "$at" ]] || return 1
  lag=$(q "$primary" "select pg_wal_lsn_diff(pg_current_wal_lsn(), '$at')") || return 1
  ((${lag%.*} <= CATCHUP_BYTES))
}
lag=?
wait_for "$timeout_s" caught_up || die "the standby is still $lag bytes behind after $timeout_s s: not switching"
say "1. standby caught up ($(($(now_ms) - t0)) ms)"

# 2. stop the primary
t0=$(now_ms)
as_pg "$PGBIN/pg_ctl" -D "$(data_of "$primary")" -m fast -w -t "$timeout_s" stop >/dev/null ||
  die "pg_ctl stop of pg-$primary failed"
say "2. pg-$primary stopped ($(($(now_ms) - t0)) ms)"

# 3. the standby has everything, up to the old primary's shutdown checkpoint
t0=$(now_ms)
ckpt=$(as_pg "$PGBIN/pg_controldata" "$(data_of "$primary")" | sed -n 's/^Latest checkpoint location: *//p')
has_all() { [[ "$(q "$standby" "select pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '$ckpt') > 0")" == t ]]; }
if ! wait_for "$timeout_s" has_all; then
  say "the standby did not receive the old primary's final checkpoint $ckpt: starting pg-$primary again"
  "$script_dir/pg-up.sh" --name "pg-$primary" --durable >/dev/null || true
  die "switchover abandoned; pg-$primary is the primary again, nothing lost"
fi
say "3. pg-$standby has all of pg-$primary's WAL, to its final checkpoint $ckpt ($(($(now_ms) - t0)) ms)"

# 4. promote
t0=$(now_ms)
as_pg "$PGBIN/pg_ctl" -D "$(data_of "$standby")" -w -t "$timeout_s" promote >/dev/null ||
  die "pg_ctl promote of pg-$standby failed"
wait_for "$timeout_s" is_primary "$standby" || die "pg-$standby still in recovery"
say "4. pg-$standby promoted: the primary now ($(($(now_ms) - t0)) ms)"

# 5. the old primary follows the new one
if ((rejoin)); then
  make_standby "$primary" "$(port_of "$standby")" || die "pg-$primary could not be made a standby (it is stopped)"
else
  say "5. pg-$primary left stopped (--no-rejoin)"
fi
say "switchover done in $(($(now_ms) - t_all)) ms: primary pg-$standby"
