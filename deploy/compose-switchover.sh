#!/usr/bin/env bash
# deploy/compose-switchover.sh - move the PostgreSQL primary of
# deploy/compose.two-sites.yml to the other server, and say what it did
# (issue #18; tests/scripts/pg-switchover.sh is the same for the local
# pair). Run from the folder of docker-compose.yml:
#
#   deploy/compose-switchover.sh postgres postgres-site1
#                  planned, before the maintenance of postgres's site:
#                  (1) wait until postgres-site1 has replayed nearly all the
#                  primary wrote (CATCHUP_BYTES, 1 MiB), (2) stop postgres
#                  (docker stop: SIGINT, a fast shutdown; its clients are
#                  cut and reconnect to the new primary, their DSN names
#                  both; at shutdown it sends its last WAL), (3) check that
#                  postgres-site1 received its final checkpoint - else start
#                  postgres again and fail, nothing lost - (4) promote
#                  postgres-site1. The old primary stays stopped.
#   deploy/compose-switchover.sh --failover postgres-site1
#                  unplanned: the primary's site is gone; promote now.
#                  Commits it had not streamed are lost (the last WAL
#                  position the standby had is printed).
#   deploy/compose-switchover.sh --rejoin postgres
#                  make the stopped old primary (or a server of a site
#                  powered on again) a standby of the current primary: its
#                  data directory is emptied and deploy/postgres/node.sh
#                  copies the primary at start (pg_basebackup: the whole
#                  database over the network; refused unless the other
#                  server is the primary).
#
# COMPOSE is the compose command with its options, default
# "docker compose -f docker-compose.yml -f deploy/compose.two-sites.yml"
# (add -p for a project name); it only finds the two containers. The steps
# go through DOCKER (docker; the engine's own CLI is faster than compose's
# per command, and calls wait on the steps while no primary answers).
# Each step prints one line with its time. Exit 0 when done, 1 when not
# (the reason on stderr).
set -euo pipefail

read -ra compose <<<"${COMPOSE:-docker compose -f docker-compose.yml -f deploy/compose.two-sites.yml}"
CATCHUP_BYTES=${CATCHUP_BYTES:-1048576}
timeout_s=${TIMEOUT_S:-30}
user=${POSTGRES_USER:-sipdrain}
say() { echo "compose-switchover: $*"; }
die() { echo "compose-switchover: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
read -ra docker <<<"${DOCKER:-docker}"
peer_of() { case "$1" in postgres) echo postgres-site1 ;; postgres-site1) echo postgres ;;
    *) die "unknown server $1 (postgres or postgres-site1)" ;; esac; }
declare -A cid=()
for svc in postgres postgres-site1; do
  cid[$svc]=$("${compose[@]}" ps -a -q "$svc" 2>/dev/null | head -1)
  [[ -n "${cid[$svc]}" ]] || die "no container of $svc (COMPOSE: ${compose[*]})"
done
# q SERVICE SQL: one value, as the owner on the server's own socket
q() { "${docker[@]}" exec "${cid[$1]}" psql -U "$user" -d postgres -Atq -c "$2"; }
# offline SERVICE COMMAND: COMMAND in a container of the service's image
# with its (stopped) container's volumes
offline() {
  "${docker[@]}" run --rm --volumes-from "${cid[$1]}" --entrypoint sh \
    "$("${docker[@]}" inspect -f '{{.Config.Image}}' "${cid[$1]}")" -c "$2"
}
within() { # SECONDS COMMAND...: true once COMMAND is, within SECONDS
  local end=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < end)) || return 1; sleep 0.3; done
}

case "${1:-}" in
--failover)
  standby=${2:?usage: $0 --failover SERVICE}
  t0=$(now_ms)
  [[ "$(q "$standby" "select pg_is_in_recovery()")" == t ]] || die "$standby is not a standby"
  lsn=$(q "$standby" "select coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())")
  [[ "$(q "$standby" "select pg_promote(true, $timeout_s)")" == t ]] || die "$standby was not promoted"
  say "$standby promoted without the old primary ($(($(now_ms) - t0)) ms); it had WAL up to $lsn:" \
    "commits the old primary made after that are lost"
  exit 0 ;;
--rejoin)
  node=${2:?usage: $0 --rejoin SERVICE}
  peer=$(peer_of "$node")
  t0=$(now_ms)
  [[ "$(q "$peer" "select pg_is_in_recovery()")" == f ]] || die "$peer is not the primary: $node is not emptied"
  "${docker[@]}" stop -t 60 "${cid[$node]}" >/dev/null
  offline "$node" 'rm -rf "$PGDATA"/* "$PGDATA"/.[!.]*' || die "could not empty $node's data directory"
  "${docker[@]}" start "${cid[$node]}" >/dev/null
  streaming() { [[ "$(q "$node" "select status from pg_stat_wal_receiver" 2>/dev/null)" == streaming ]]; }
  within $((timeout_s * 4)) streaming || die "$node did not start streaming from $peer"
  say "$node is a standby of $peer, streaming ($(($(now_ms) - t0)) ms)"
  exit 0 ;;
-*) die "usage: $0 PRIMARY STANDBY | --failover STANDBY | --rejoin SERVICE" ;;
esac

primary=${1:?usage: $0 PRIMARY STANDBY}
standby=${2:?usage: $0 PRIMARY STANDBY}
[[ "$(peer_of "$primary")" == "$standby" ]] || die "$primary and $standby are not the pair"
[[ "$(q "$primary" "select pg_is_in_recovery()")" == f ]] || die "$primary is not the primary"
[[ "$(q "$standby" "select pg_is_in_recovery()")" == t ]] || die "$standby is not a standby"
say "primary $primary -> $standby"

# 1. caught up
t0=$(now_ms)
caught_up() {
  local at lag
  at=$(q "$standby" "select pg_last_wal_replay_lsn()") || return 1
  lag=$(q "$primary" "select pg_wal_lsn_diff(pg_current_wal_lsn(), '$at')") || return 1
  ((${lag%.*} <= CATCHUP_BYTES))
}
within "$timeout_s" caught_up || die "$standby did not catch up within $timeout_s s: nothing changed"
say "1. $standby caught up ($(($(now_ms) - t0)) ms)"

# 2. the primary stopped (SIGINT: fast shutdown, the last WAL sent)
t0=$(now_ms)
"${docker[@]}" stop -t 60 "${cid[$primary]}" >/dev/null || die "could not stop $primary"
say "2. $primary stopped ($(($(now_ms) - t0)) ms)"

# 3. the standby has everything, up to the old primary's shutdown checkpoint
t0=$(now_ms)
# its pg_control file, read by pg_controldata in the standby's container
# (a copy out of the stopped container: faster than a container of its own)
pgdata=$("${docker[@]}" inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "${cid[$primary]}" |
  sed -n 's/^PGDATA=//p')
control=$("${docker[@]}" cp "${cid[$primary]}:${pgdata:-/var/lib/postgresql/data}/global/pg_control" - |
  "${docker[@]}" exec -i "${cid[$standby]}" sh -c 'd=$(mktemp -d) && mkdir "$d/global" &&
    tar -x -C "$d/global" && pg_controldata "$d"; rc=$?; rm -rf "$d"; exit $rc') ||
  die "pg_controldata of $primary failed: $primary stopped, $standby not promoted"
ckpt=$(sed -n 's/^Latest checkpoint location: *//p' <<<"$control")
state=$(sed -n 's/^Database cluster state: *//p' <<<"$control")
has_all() { [[ "$(q "$standby" "select pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '$ckpt') > 0")" == t ]]; }
if [[ "$state" != "shut down" ]] || ! within "$timeout_s" has_all; then
  "${docker[@]}" start "${cid[$primary]}" >/dev/null || true
  die "$standby lacks $primary's final checkpoint $ckpt ($state): $primary started again, nothing changed"
fi
say "3. $standby has all of $primary's WAL, to its final checkpoint $ckpt ($(($(now_ms) - t0)) ms)"

# 4. promoted
t0=$(now_ms)
[[ "$(q "$standby" "select pg_promote(true, $timeout_s)")" == t ]] ||
  die "$standby was not promoted: $primary is stopped; start it again (docker start ${cid[$primary]})"
say "4. $standby promoted: the primary now ($(($(now_ms) - t0)) ms)"
say "$primary stays stopped; after its site's maintenance: $0 --rejoin $primary"
