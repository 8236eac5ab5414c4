#!/bin/bash
# deploy/postgres/node.sh - the command of both PostgreSQL servers of
# deploy/compose.two-sites.yml (issue #18), run as root by the image's
# entry point (postgres:15, or the test's stand-in: the same contract).
#
# An empty data directory is filled once, before the server starts:
#   - when the peer (SIPDRAIN_PG_PEER, host[:port]) answers as a primary,
#     with a copy of it (pg_basebackup -R: this server starts as its
#     streaming standby) - the first start of the standby, and how a server
#     rejoins after a switchover or a lost site: empty its volume, start it;
#   - otherwise, only on the server that SIPDRAIN_PG_FIRST_PRIMARY=yes names,
#     as the image does (initdb, POSTGRES_USER, POSTGRES_DB); the other waits
#     for the peer (up to SIPDRAIN_PG_CLONE_WAIT s, 300) and exits 1 if it
#     never answers, rather than start a second, empty primary.
# A data directory that holds a cluster is started as it is: as a standby if
# it has standby.signal, as a primary if not - unless the peer answers as a
# primary: then this is a former primary (after a switchover or a failover)
# and it exits 1 rather than be a second one (rejoin it as a standby:
# deploy/compose-switchover.sh --rejoin). Which one is primary changes only
# by deploy/compose-switchover.sh (or pg_promote), never here.
#
# Then the image's own entry point runs postgres with the arguments given
# (cluster_name, hba_file, ...).
set -euo pipefail

peer=${SIPDRAIN_PG_PEER:?SIPDRAIN_PG_PEER (the other server, host[:port]) is not set}
peer_host=${peer%%:*}
peer_port=5432
[[ "$peer" == *:* ]] && peer_port=${peer##*:}
user=${POSTGRES_USER:-postgres}
wait_s=${SIPDRAIN_PG_CLONE_WAIT:-300}
say() { echo "node.sh: $*" >&2; }
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [[ "$(id -u)" != 0 ]]; then
    say "must start as root (the image's entry point drops to postgres)"
    exit 1
fi
PGDATA=${PGDATA:-/var/lib/postgresql/data}
if [[ -n "${POSTGRES_PASSWORD_FILE:-}" ]]; then
    PGPASSWORD=$(<"$POSTGRES_PASSWORD_FILE")
    export PGPASSWORD
fi

# the peer is a primary: it answers and is not in recovery
peer_is_primary() {
    [[ "$(PGCONNECT_TIMEOUT=3 psql -h "$peer_host" -p "$peer_port" -U "$user" -d postgres -Atq \
        -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" == f ]]
}

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    deadline=$((SECONDS + wait_s))
    while :; do
        if peer_is_primary; then
            say "empty $PGDATA: cloning the primary $peer_host:$peer_port (pg_basebackup -R)"
            mkdir -p "$PGDATA"
            chown postgres:postgres "$PGDATA"
            chmod 700 "$PGDATA"
            # -c fast: a checkpoint now, not at the primary's next one
            as_postgres env PGPASSWORD="$PGPASSWORD" pg_basebackup -h "$peer_host" -p "$peer_port" \
                -U "$user" -D "$PGDATA" -R -X stream -c fast
            say "cloned: starting as a standby of $peer_host:$peer_port"
            break
        fi
        if [[ "${SIPDRAIN_PG_FIRST_PRIMARY:-no}" == yes ]]; then
            say "empty $PGDATA and no primary at $peer_host:$peer_port: a new cluster (the first primary)"
            break
        fi
        if ((SECONDS >= deadline)); then
            say "empty $PGDATA and no primary at $peer_host:$peer_port after ${wait_s} s:" \
                "not starting an empty second primary"
            exit 1
        fi
        sleep 2
    done
elif [[ -f "$PGDATA/standby.signal" ]]; then
    say "starting as a standby (standby.signal), following $(grep -o "host=[^ ']*" \
        "$PGDATA/postgresql.auto.conf" 2>/dev/null | tail -1 || echo '?')"
else
    # A primary's data: refuse to be a second primary. After a switchover
    # or a failover the peer is the primary and this server's data is a
    # former primary's (compose `up` or a host's reboot starts it again):
    # clients take the first read-write host they reach, so two primaries
    # would split the writes. It starts only when the peer does not answer
    # as a primary (at a cold start of both, the peer is still down).
    if peer_is_primary; then
        say "this data directory is a primary's, and $peer_host:$peer_port is the primary:" \
            "not starting a second one; make this server a standby of it:" \
            "deploy/compose-switchover.sh --rejoin <this service> (it empties this data directory)"
        sleep 10 # (a restart policy starts it again: not in a tight loop)
        exit 1
    fi
    say "starting as a primary (no standby.signal; $peer_host:$peer_port is not a primary)"
fi
exec docker-entrypoint.sh "$@"
