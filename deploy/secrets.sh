#!/usr/bin/env bash
# deploy/secrets.sh [DIR] - the PostgreSQL secrets docker-compose.yml reads
# (issue #15): run once before the first `docker compose up`. DIR defaults
# to $SIPDRAIN_SECRETS_DIR or deploy/secrets (kept out of git).
#
# A file that exists is kept, so running it again changes nothing; delete a
# file and run it again to rotate that secret (then `docker compose up -d`
# re-runs migrate, which sets the role passwords again, and re-creates the
# services whose secret changed; the owner's password is set only when the
# database is first created: change it with ALTER ROLE too).
#
#   pg_owner_password   the owner's (POSTGRES_PASSWORD_FILE of postgres)
#   pg_owner_dsn        the owner's DSN: migrate only
#   pg_role_passwords   "<role> <password>" per program role (migration
#                       0005), for sipdrain-migrate --role-passwords
#   pg_<program>_dsn    each program's DSN, as its own role: edge,
#                       agent_state, orchestrator, drainctl, passwd
#
# Files are 0444 inside a 0700 folder: the containers read them as other
# users (postgres, nobody) through compose's bind mounts, and nobody else on
# the host can reach them.
set -euo pipefail

dir=${1:-${SIPDRAIN_SECRETS_DIR:-$(cd "$(dirname "$0")" && pwd)/secrets}}
programs="edge agent_state orchestrator drainctl passwd"
host=${PG_HOST:-postgres:5432}
db=${PG_DB:-sipdrain}
owner=${PG_OWNER:-sipdrain}

mkdir -p "$dir"
chmod 700 "$dir"
umask 022

# a password of 32 letters and digits (no character a DSN would need to escape)
password() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32; }

# keep FILE CONTENT: writes FILE unless it exists
keep() {
    [[ -s "$1" ]] && return 0
    printf '%s\n' "$2" >"$1.new"
    chmod 0444 "$1.new"
    mv "$1.new" "$1"
    echo "secrets.sh: wrote $1"
}

keep "$dir/pg_owner_password" "$(password)"
keep "$dir/pg_owner_dsn" "postgresql://$owner:$(cat "$dir/pg_owner_password")@$host/$db"
for p in $programs; do
    keep "$dir/pg_${p}_password" "$(password)"
    keep "$dir/pg_${p}_dsn" "postgresql://sipdrain_$p:$(cat "$dir/pg_${p}_password")@$host/$db"
done
# rebuilt from the password files each time (a rotated one goes in)
for p in $programs; do
    echo "sipdrain_$p $(cat "$dir/pg_${p}_password")"
done >"$dir/pg_role_passwords.new"
chmod 0444 "$dir/pg_role_passwords.new"
mv "$dir/pg_role_passwords.new" "$dir/pg_role_passwords"
echo "secrets.sh: PostgreSQL secrets in $dir"
