#!/usr/bin/env bash
# deploy/secrets.sh [DIR] - the PostgreSQL and Kafka secrets
# docker-compose.yml reads (issue #15): run once before the first
# `docker compose up`. DIR defaults to $SIPDRAIN_SECRETS_DIR or
# deploy/secrets (kept out of git).
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
#   pg_<p>_dsn_two_sites  the owner's and each program's DSN naming both
#                       servers of deploy/compose.two-sites.yml
#                       (PG_HOSTS_TWO_SITES) with target_session_attrs=
#                       read-write: the client follows the primary
#
# Kafka (SASL/SCRAM-SHA-512 over TLS, ACLs: README, Security):
#   kafka_ca            the CA that signed the broker's certificate (made
#                       here, kafka_ca.key beside it: keep it, or replace
#                       both with your own CA's certificate and key)
#   kafka_tls           the brokers' key and certificate (PEM), for the
#                       names kafka, kafka-site1, kafka-witness (the
#                       two-sites layout's nodes) and localhost, signed by
#                       kafka_ca; a certificate lacking one is made again
#   kafka_jaas          the broker's JAAS file: the PLAIN logins of the
#                       controller, the broker itself and the admin
#   kafka_admin_client  the admin's Java client settings (the tools in the
#                       Kafka container: users, health check)
#   kafka_desktop_client  an agent desktop's Java client settings
#   kafka_users         "<user> <password>" of the programs' SCRAM users,
#                       set by the kafka-users step
#   kafka_<p>_properties  librdkafka settings (SIPDRAIN_KAFKA_PROPERTIES)
#                       of edge, agent_state, orchestrator, operator
#                       (drainctl) and admin (sipdrain-kafka-init)
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
hosts_two_sites=${PG_HOSTS_TWO_SITES:-postgres:5432,postgres-site1:5432}
# the broker certificate's names: docker-compose.yml's node and
# deploy/compose.two-sites.yml's two more (KAFKA_TLS_NAMES: others, e.g.
# deploy/kubernetes/stores-two-sites.yaml's pod names)
kafka_names=${KAFKA_TLS_NAMES:-kafka kafka-site1 kafka-witness localhost}

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
# deploy/compose.two-sites.yml: both servers, whichever is primary
# (rewritten each time from the password files)
for p in owner $programs; do
    if [[ $p == owner ]]; then cred="$owner:$(cat "$dir/pg_owner_password")"; else
        cred="sipdrain_$p:$(cat "$dir/pg_${p}_password")"; fi
    printf '%s\n' "postgresql://$cred@$hosts_two_sites/$db?target_session_attrs=read-write" \
        >"$dir/pg_${p}_dsn_two_sites.new"
    chmod 0444 "$dir/pg_${p}_dsn_two_sites.new"
    mv "$dir/pg_${p}_dsn_two_sites.new" "$dir/pg_${p}_dsn_two_sites"
done
# rebuilt from the password files each time (a rotated one goes in)
for p in $programs; do
    echo "sipdrain_$p $(cat "$dir/pg_${p}_password")"
done >"$dir/pg_role_passwords.new"
chmod 0444 "$dir/pg_role_passwords.new"
mv "$dir/pg_role_passwords.new" "$dir/pg_role_passwords"

# --- Kafka ------------------------------------------------------------------
kafka_users="edge agent_state orchestrator operator desktop"
for u in controller broker admin $kafka_users; do
    keep "$dir/kafka_${u}_password" "$(password)"
done
kpw() { cat "$dir/kafka_$1_password"; }
kname() { echo "sipdrain-${1//_/-}"; }

if [[ ! -s "$dir/kafka_ca" ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$dir/kafka_ca.key" 2>/dev/null
    chmod 0400 "$dir/kafka_ca.key"
    openssl req -x509 -new -key "$dir/kafka_ca.key" -out "$dir/kafka_ca.new" -days 3650 \
        -subj "/CN=sipdrain Kafka CA" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    chmod 0444 "$dir/kafka_ca.new"
    mv "$dir/kafka_ca.new" "$dir/kafka_ca"
    rm -f "$dir/kafka_tls"
    echo "secrets.sh: wrote $dir/kafka_ca (and kafka_ca.key)"
fi
# a certificate from before the two-sites layout lacks its names: made again
if [[ -s "$dir/kafka_tls" ]]; then
    sans=$(openssl x509 -in "$dir/kafka_tls" -noout -ext subjectAltName 2>/dev/null || true)
    for n in $kafka_names; do
        if [[ "$sans" != *"DNS:$n"* ]]; then
            echo "secrets.sh: $dir/kafka_tls lacks the name $n: made again"
            rm -f "$dir/kafka_tls"
            break
        fi
    done
fi
if [[ ! -s "$dir/kafka_tls" ]]; then
    tmp=$(mktemp -d)
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/key" 2>/dev/null
    openssl req -new -key "$tmp/key" -out "$tmp/csr" -subj "/CN=kafka"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' \
        "$(for n in $kafka_names; do printf 'DNS:%s,' "$n"; done | sed 's/,$//')" >"$tmp/ext"
    openssl x509 -req -in "$tmp/csr" -CA "$dir/kafka_ca" -CAkey "$dir/kafka_ca.key" \
        -CAcreateserial -CAserial "$tmp/srl" -out "$tmp/crt" -days 825 -extfile "$tmp/ext" 2>/dev/null
    cat "$tmp/key" "$tmp/crt" >"$dir/kafka_tls.new"
    rm -rf "$tmp"
    chmod 0444 "$dir/kafka_tls.new"
    mv "$dir/kafka_tls.new" "$dir/kafka_tls"
    echo "secrets.sh: wrote $dir/kafka_tls"
fi

# rewrite FILE CONTENT: the files derived from the passwords, each time
rewrite() {
    printf '%s\n' "$2" >"$1.new"
    chmod 0444 "$1.new"
    mv "$1.new" "$1"
}
plain() { printf 'org.apache.kafka.common.security.plain.PlainLoginModule required username="%s" password="%s"' "$1" "$2"; }
rewrite "$dir/kafka_jaas" "// the broker's logins (KAFKA_OPTS java.security.auth.login.config)
internal.KafkaServer {
  $(plain sipdrain-broker "$(kpw broker)")
    user_sipdrain-broker=\"$(kpw broker)\"
    user_sipdrain-admin=\"$(kpw admin)\";
  org.apache.kafka.common.security.scram.ScramLoginModule required;
};
controller.KafkaServer {
  $(plain sipdrain-controller "$(kpw controller)")
    user_sipdrain-controller=\"$(kpw controller)\";
};"
java_client() {
    printf 'security.protocol=SASL_SSL\nsasl.mechanism=%s\nsasl.jaas.config=%s;\n' "$1" "$2"
    printf 'ssl.truststore.type=PEM\nssl.truststore.location=/run/secrets/kafka_ca\n'
}
rewrite "$dir/kafka_admin_client" "$(java_client PLAIN "$(plain sipdrain-admin "$(kpw admin)")")"
rewrite "$dir/kafka_desktop_client" "$(java_client SCRAM-SHA-512 \
    "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"sipdrain-desktop\" password=\"$(kpw desktop)\"")"
rewrite "$dir/kafka_users" "$(for u in $kafka_users; do echo "$(kname "$u") $(kpw "$u")"; done)"
for u in admin $kafka_users; do
    [[ "$u" == desktop ]] && continue
    mech=SCRAM-SHA-512
    [[ "$u" == admin ]] && mech=PLAIN
    rewrite "$dir/kafka_${u}_properties" "security.protocol=SASL_SSL
sasl.mechanism=$mech
sasl.username=$(kname "$u")
sasl.password=$(kpw "$u")
ssl.ca.location=/run/secrets/kafka_ca"
done
echo "secrets.sh: PostgreSQL and Kafka secrets in $dir"
