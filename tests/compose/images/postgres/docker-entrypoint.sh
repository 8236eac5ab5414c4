#!/bin/bash
# The stand-in's entry point (see Dockerfile): the official image's
# behaviour for `postgres` as the command, anything else run as given.
set -euo pipefail

if [[ "${1:-}" != postgres ]]; then
    exec "$@"
fi

# As root: own the data and socket directories, then run as postgres
# (setpriv, from util-linux, does what gosu does in the official image).
if [[ "$(id -u)" == 0 ]]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

# POSTGRES_PASSWORD_FILE (Docker secrets), as the official image: the
# file's content; not both
if [[ -n "${POSTGRES_PASSWORD_FILE:-}" ]]; then
    if [[ -n "${POSTGRES_PASSWORD:-}" ]]; then
        echo "stand-in postgres: both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set" >&2
        exit 1
    fi
    POSTGRES_PASSWORD=$(<"$POSTGRES_PASSWORD_FILE")
fi
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}

# First start only: an empty PGDATA gets a cluster, the user and database.
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
        echo "stand-in postgres: POSTGRES_PASSWORD is not set (the official image refuses too)" >&2
        exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >&2
    rm -f "$pwfile"
    # the official image's POSTGRES_HOST_AUTH_METHOD default: every address
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [[ "$POSTGRES_DB" != postgres ]]; then
        # a server on the socket only, for the database, then stopped
        pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >&2
        psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q \
            -c "CREATE DATABASE \"$POSTGRES_DB\"" >&2
        pg_ctl -D "$PGDATA" -w -m fast stop >&2
    fi
    echo "stand-in postgres: initialised $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)" >&2
fi

exec "$@" -c listen_addresses='*'
