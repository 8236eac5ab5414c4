#!/usr/bin/env bash
# Install what sipdrain's build and tests need, idempotently:
#   1. Debian packages (only the missing ones; no apt-get at all when none is)
#   2. sofia-sip with sipdrain's patches (tools/sofia-sip-build.sh: built once,
#      cached per user, installed when the installed library is not that one)
#   3. the Apache Kafka broker jars (tools/kafka-fetch.sh, cached per user)
# Prints one summary line on stdout; progress goes to stderr.
#   tools/deps.sh --build-only   only what building needs (deploy/Dockerfile)
set -euo pipefail

BUILD_ONLY=0
[[ "${1:-}" == "--build-only" ]] && BUILD_ONLY=1

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  librdkafka-dev libjansson-dev libpq-dev libcriterion-dev uuid-dev
  libmicrohttpd-dev  # /healthz, /readyz, /metrics
  libssl-dev  # digest authentication's hashes (sip-edge), SIP over TLS
  postgresql sip-tester python3-jsonschema python3-yaml
  clang-format valgrind procps
  kamailio  # the load balancer (deploy/kamailio) and the peers of bench/edge.sh
  kamailio-postgres-modules  # bench/edge.sh's same-work peer (bench/kamailio/router.cfg: db_postgres)
  docker-compose  # validates docker-compose.yml (no Docker engine is needed for that)
  baresip  # a real SIP phone in the suite (services/sip-edge/tests/test_sip_real_phones.c)
  openssl ca-certificates  # the TLS tests' CA and s_client (tests/scripts/test-ca.sh); the edge's default CA file
)
# kafka-fetch.sh and KafkaAdmin.java need Maven and a full JDK (javac for
# single-file source launch); only asked for when they are not on PATH, so
# a JDK/Maven installed some other way is left alone.
command -v mvn >/dev/null || PACKAGES+=(maven)
command -v javac >/dev/null || PACKAGES+=(openjdk-17-jdk-headless)
if ((BUILD_ONLY)); then
  PACKAGES=(
    build-essential cmake ninja-build pkg-config
    librdkafka-dev libjansson-dev libpq-dev libcriterion-dev uuid-dev
    libmicrohttpd-dev libssl-dev
  )
fi
# libsofia-sip-ua-dev (and libsofia-sip-ua0) are not in these lists: Debian's
# build crashes on one TCP packet; tools/sofia-sip-build.sh installs ours.

here=$(cd "$(dirname "$0")" && pwd)

installed() {
  # (pattern match: a multi-arch package prints one status per architecture)
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed"* ]]
}

# True if apt knows an installable version of every package given.
have_candidates() {
  local p
  for p in "$@"; do
    apt-cache policy "$p" 2>/dev/null | grep 'Candidate: [^(]' >/dev/null || return 1
  done
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  pkg_summary="all present (${#PACKAGES[@]} packages)"
else
  if [[ "$(id -u)" != 0 ]]; then
    echo "deps: missing packages; run:" >&2
    echo "sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Refresh the package lists only when apt does not know a missing package
  # (fresh image with empty lists); otherwise install straight away and
  # retry once after an update (stale lists give 404s).
  updated=0
  if ! have_candidates "${missing[@]}"; then
    echo "deps: apt-get update" >&2
    apt-get update >&2
    updated=1
  fi
  echo "deps: installing ${missing[*]}" >&2
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    ((updated)) && exit 1
    echo "deps: install failed; retrying after apt-get update" >&2
    apt-get update >&2
    apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
  pkg_summary="installed ${#missing[@]} of ${#PACKAGES[@]} packages (${missing[*]})"
fi

# sofia-sip, patched: "built" when sofia-sip-build.sh wrote its .complete
# marker during this run (a build takes minutes), "cached" when it was there,
# "installed" when it is installed but this user has no cache of it.
t0=$(date +%s)
sofia_dir=$("$here/sofia-sip-build.sh")
sofia_ver=${sofia_dir##*/sofia-sip-}
if [[ ! -f "$sofia_dir/.complete" ]]; then
  sofia_state=installed
elif (($(stat -c %Y "$sofia_dir/.complete") > t0)); then
  sofia_state=built
else
  sofia_state=cached
fi

if ((BUILD_ONLY)); then
  echo "deps: $pkg_summary, sofia-sip $sofia_ver $sofia_state (build only)"
  exit 0
fi

# Kafka jars: "fetched" when kafka-fetch.sh wrote its .complete marker during
# this run (a fetch takes tens of seconds), "cached" when it was already there.
t0=$(date +%s)
kafka_dir=$("$here/kafka-fetch.sh")
kafka_ver=${kafka_dir##*/kafka-}
if (($(stat -c %Y "$kafka_dir/.complete") > t0)); then
  kafka_state=fetched
else
  kafka_state=cached
fi

echo "deps: $pkg_summary, sofia-sip $sofia_ver $sofia_state, kafka $kafka_ver $kafka_state"
