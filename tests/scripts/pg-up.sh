#!/usr/bin/env bash
# Start a private PostgreSQL cluster for sipdrain tests on a free loopback
# port, create database `sipdrain`, and apply the migrations with
# build/bin/sipdrain-migrate (when built).
#
# State lives in $REPO/.run/pg/: data/ (the cluster), log (server log),
# port, env, and the unix socket. Data and port are reused on the next start.
#
# Running as root: PostgreSQL refuses to run as root, so initdb/pg_ctl run as
# the `postgres` system user (runuser) and .run/pg is owned by it. If that user
# cannot reach $REPO/.run/pg (e.g. the repo is under a 0700 mktemp dir), or the
# socket path would exceed the 107-byte unix socket limit, the state lives in
# /tmp/sipdrain-pg-<hash of repo path>/ instead and $REPO/.run/pg is a symlink
# to it (the server itself is only ever given the real /tmp path).
#
# stdout: exactly one line, `export SIPDRAIN_PG_DSN=postgresql://postgres@127.0.0.1:<port>/sipdrain`
# (also written to .run/pg/env); progress goes to stderr.
# Safe to call twice: a running cluster is reused (migrations still applied).
#
# For tests/scripts/pg-pair-up.sh (issue #18: a primary in one site, a
# streaming standby in the other):
#   --name NAME        state in .run/NAME instead of .run/pg
#   --durable          fsync and synchronous_commit on (a kill -9 loses no
#                      commit), WAL kept for a standby that falls behind
#   --standby-of PORT  a new cluster is not made by initdb but copied from
#                      the server on 127.0.0.1:PORT (pg_basebackup -R): a hot
#                      standby streaming from it; no database is created and
#                      no migration applied (it is read-only; they come from
#                      the primary). An existing one starts as it was left
#                      (standby, or primary if it was promoted).
set -euo pipefail

DB=sipdrain
name=pg durable=0 standby_of=""
while (($#)); do
  case "$1" in
    --name) name=${2:?}; shift 2 ;;
    --durable) durable=1; shift ;;
    --standby-of) standby_of=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--name NAME] [--durable] [--standby-of PORT]" >&2; exit 2 ;;
  esac
done
[[ "$name" =~ ^pg[a-z0-9-]*$ ]] || { echo "pg-up: --name must look like pg-site1" >&2; exit 2; }

script_dir=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$script_dir/../.." rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))
link="$REPO/.run/$name"

say() { echo "pg-up: $*" >&2; }
die() { say "$*"; exit 1; }

# Newest installed server major version.
PGBIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)
[[ -n "$PGBIN" && -x "$PGBIN/pg_ctl" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql (run tools/deps.sh)"
pg_major=$(basename "$(dirname "$PGBIN")")

is_root=0
[[ "$(id -u)" == 0 ]] && is_root=1
if ((is_root)) && ! getent passwd postgres >/dev/null; then
  die "running as root but there is no 'postgres' user (install the postgresql package)"
fi

# Run a server-side tool as the cluster owner (from / so an unreadable cwd
# does not matter).
as_pg() {
  if ((is_root)); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_busy() {
  # shellcheck disable=SC2016  # $1 is expanded by the inner bash
  timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null && return 0
  if command -v ss >/dev/null; then
    [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]] && return 0
  fi
  return 1
}

# Pick a random free loopback port in 20000-32767, avoiding the ports the
# other sipdrain servers recorded (they may come back on them). Below the
# kernel's ephemeral range (32768-60999): there any process's outgoing
# connection may hold the port while the server is down, and its restart on
# it fails (EADDRINUSE). The tests' own ports are 10000-19999.
pick_port() {
  local p i reserved
  reserved=" $(cat "$REPO/.run/kafka/ports" "$REPO"/.run/kafka-cluster/node*/ports \
    "$REPO"/.run/pg*/port 2>/dev/null | tr '\n' ' ') "
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12768))
    [[ "$reserved" == *" $p "* ]] && continue
    port_busy "$p" || { echo "$p"; return 0; }
  done
  die "no free loopback port found in 20000-32767"
}

# Unix socket paths are limited to 107 bytes: "<dir>/.s.PGSQL.<port>".
socket_ok() { (($(printf '%s' "$1/.s.PGSQL.40000" | wc -c) <= 107)); }

# True if the cluster owner can create files in $1 (this needs search
# permission on every parent directory too).
owner_can_use() {
  if ((is_root)); then
    runuser -u postgres -- test -w "$1" -a -x "$1"
  else
    [[ -w "$1" && -x "$1" ]]
  fi
}

# --- choose the state directory ($run) ----------------------------------
mkdir -p "$REPO/.run"
if [[ -L "$link" || -d "$link" ]]; then
  run=$(readlink -f "$link")
  mkdir -p "$run"
else
  run="$link"
  mkdir -p "$run"
  chmod 700 "$run"
  ((is_root)) && chown postgres: "$run"
  if ! owner_can_use "$run" || ! socket_ok "$run"; then
    run="/tmp/sipdrain-$name-$(printf '%s' "$REPO" | sha256sum | cut -c1-12)"
    say "$link is not usable by the server (permissions or socket path length); using $run (symlinked)"
    rmdir "$link"
    mkdir -p "$run"
    chmod 700 "$run"
    ((is_root)) && chown postgres: "$run"
    ln -s "$run" "$link"
  fi
fi
if ((is_root)) && [[ "$(stat -c %U "$run")" != postgres ]]; then
  die "$run is not owned by the postgres user; remove it (pg-down.sh --purge) and retry"
fi
owner_can_use "$run" || die "the server user cannot write to $run; remove it (pg-down.sh --purge) and retry"

data="$run/data"
logf="$run/log"

# --- a standby: copied from its primary once ----------------------------
if [[ -n "$standby_of" && ! -f "$data/PG_VERSION" ]]; then
  rm -rf "$data"
  say "copying the server on 127.0.0.1:$standby_of into $data (pg_basebackup, a streaming standby)"
  if ! as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$standby_of" -U postgres -D "$data" \
    -X stream -R -c fast --no-sync >"$run/basebackup.log" 2>&1; then
    cat "$run/basebackup.log" >&2
    die "pg_basebackup from 127.0.0.1:$standby_of failed"
  fi
  # It follows whichever server becomes the primary's successor's timeline.
  echo "recovery_target_timeline = 'latest'" >>"$data/postgresql.auto.conf"
fi

# --- initdb once ---------------------------------------------------------
if [[ ! -f "$data/PG_VERSION" ]]; then
  rm -rf "$data"                   # a half-made data dir from an aborted initdb
  locale=C
  if locale -a 2>/dev/null | grep -ix 'c\.utf-\?8' >/dev/null; then locale=C.UTF-8; fi
  say "initdb $data (PostgreSQL $pg_major, locale $locale)"
  # initdb is chatty: keep its output in .run/pg/initdb.log, show it on failure.
  if ! as_pg "$PGBIN/initdb" -D "$data" --nosync -A trust -U postgres --no-instructions \
    -E UTF8 --locale="$locale" >"$run/initdb.log" 2>&1; then
    cat "$run/initdb.log" >&2
    die "initdb failed"
  fi
  # Our settings live in sipdrain.conf (rewritten on every start).
  echo "include_if_exists = 'sipdrain.conf'" >>"$data/postgresql.conf"
fi
[[ "$(<"$data/PG_VERSION")" == "$pg_major" ]] \
  || die "$data was made by PostgreSQL $(<"$data/PG_VERSION"), server is $pg_major; run pg-down.sh --purge"

# --- start unless running ------------------------------------------------
if as_pg "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  port=$(sed -n 4p "$data/postmaster.pid")
  say "already running on 127.0.0.1:$port"
else
  port=""
  if [[ -f "$run/port" ]]; then
    port=$(<"$run/port")
    if [[ ! "$port" =~ ^[0-9]+$ ]] || port_busy "$port"; then
      say "recorded port ${port:-?} is taken; picking a new one"
      port=""
    fi
  fi
  [[ -n "$port" ]] || port=$(pick_port)
  echo "$port" >"$run/port"

  if ((durable)); then
    cat >"$data/sipdrain.conf" <<EOF
# Generated by tests/scripts/pg-up.sh --durable: one of a primary/standby
# pair; a kill -9 loses no commit.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$run'
max_connections = 200
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
max_wal_senders = 10
wal_keep_size = '1GB'
hot_standby = on
wal_log_hints = on
cluster_name = '$name'
EOF
  else
    cat >"$data/sipdrain.conf" <<EOF
# Generated by tests/scripts/pg-up.sh: throwaway test cluster, speed over safety.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$run'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  fi
  ((is_root)) && chown postgres: "$data/sipdrain.conf"

  say "starting PostgreSQL $pg_major on 127.0.0.1:$port (data $data, log $logf)"
  if ! as_pg "$PGBIN/pg_ctl" -D "$data" -w -t 60 -l "$logf" start >&2; then
    echo "---- last 30 lines of $logf ----" >&2
    tail -n 30 "$logf" >&2 || true
    echo "----" >&2
    die "PostgreSQL failed to start"
  fi
fi

dsn="postgresql://postgres@127.0.0.1:$port/$DB"
if [[ "$(PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -qAt -h 127.0.0.1 -p "$port" -U postgres -d postgres \
  -c 'select pg_is_in_recovery()' 2>/dev/null)" == t ]]; then
  say "a standby (read-only): no database created, no migration applied"
  echo "export SIPDRAIN_PG_DSN=$dsn" | tee "$run/env"
  exit 0
fi

# --- database + migrations -------------------------------------------------
psql_() { PGCONNECT_TIMEOUT=10 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
exists=$(psql_ -d postgres -tAc "select 1 from pg_database where datname = '$DB'") \
  || die "cannot connect to 127.0.0.1:$port as postgres"
if [[ "$exists" != 1 ]]; then
  say "creating database $DB"
  # A concurrent pg-up may win the race; only fail if it is still missing.
  psql_ -d postgres -c "create database $DB" >&2 \
    || [[ "$(psql_ -d postgres -tAc "select 1 from pg_database where datname = '$DB'")" == 1 ]] \
    || die "could not create database $DB"
fi

migrate="$REPO/build/bin/sipdrain-migrate"
if [[ -x "$migrate" ]]; then
  say "applying migrations with build/bin/sipdrain-migrate"
  (cd "$REPO" && SIPDRAIN_PG_DSN="$dsn" "$migrate") >&2 || die "sipdrain-migrate failed"
else
  say "build/bin/sipdrain-migrate not built; migrations not applied (run make)"
fi

line="export SIPDRAIN_PG_DSN=$dsn"
echo "$line" >"$run/env"
echo "$line"
