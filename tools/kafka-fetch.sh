#!/usr/bin/env bash
# Fetch the Apache Kafka broker jars (kafka_2.13 + runtime deps) from Maven
# Central through Maven, into a per-user cache, so tests can run a real
# single-node KRaft broker without a Kafka tarball or Docker.
#
# Layout: ${SIPDRAIN_CACHE:-~/.cache/sipdrain}/kafka-<version>/
#   libs/       the jars
#   classpath   colon-separated absolute paths of every jar in libs/
#   .complete   marker written last; when present nothing is done (no mvn)
# The Maven local repository lives in ${SIPDRAIN_CACHE}/m2 (not ~/.m2).
# Prints the cache dir on stdout; progress goes to stderr.
set -euo pipefail

KAFKA_VERSION=3.9.1
SCALA_VERSION=2.13   # informational: tools/kafka/pom.xml pins kafka_2.13

here=$(cd "$(dirname "$0")" && pwd)
pom="$here/kafka/pom.xml"
cache="${SIPDRAIN_CACHE:-$HOME/.cache/sipdrain}"
dest="$cache/kafka-$KAFKA_VERSION"

# Fast path: already fetched, never touch the network or start Maven.
if [[ -f "$dest/.complete" ]]; then
  echo "$dest"
  exit 0
fi

for tool in mvn java; do
  if ! command -v "$tool" >/dev/null; then
    echo "kafka-fetch: '$tool' not found on PATH (need Maven and a JDK 17; apt-get install maven openjdk-17-jdk-headless)" >&2
    exit 1
  fi
done
[[ -f "$pom" ]] || { echo "kafka-fetch: missing $pom" >&2; exit 1; }

mkdir -p "$cache"
# Serialise concurrent fetches (e.g. two test runners starting at once).
exec 9>"$cache/.kafka-$KAFKA_VERSION.lock"
flock 9
if [[ -f "$dest/.complete" ]]; then   # another process finished while we waited
  echo "$dest"
  exit 0
fi

echo "kafka-fetch: fetching Apache Kafka $KAFKA_VERSION (Scala $SCALA_VERSION) from Maven Central into $dest" >&2
rm -rf "$dest"                        # drop any half-finished earlier attempt
mkdir -p "$dest/libs"
start=$SECONDS
# Maven's output goes to stderr so stdout stays just the cache dir; the sed
# strips the stray ANSI resets Debian's Maven 3.8 prints even with -B.
mvn -B -q -f "$pom" \
  -Dmaven.repo.local="$cache/m2" \
  -Dkafka.version="$KAFKA_VERSION" \
  dependency:copy-dependencies \
  -DincludeScope=runtime \
  -DoutputDirectory="$dest/libs" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2

broker_jar="$dest/libs/kafka_$SCALA_VERSION-$KAFKA_VERSION.jar"
if [[ ! -f "$broker_jar" ]]; then
  echo "kafka-fetch: Maven finished but $broker_jar is missing" >&2
  exit 1
fi

# Absolute, sorted, colon-separated: read by kafka-up.sh as java -cp.
find "$dest/libs" -maxdepth 1 -name '*.jar' | LC_ALL=C sort | paste -sd: - >"$dest/classpath"
njars=$(find "$dest/libs" -maxdepth 1 -name '*.jar' | wc -l)

printf 'kafka %s scala %s jars %s fetched %s\n' "$KAFKA_VERSION" "$SCALA_VERSION" "$njars" "$(date -u +%FT%TZ)" >"$dest/.complete"
echo "kafka-fetch: $njars jars in $((SECONDS - start)) s" >&2
echo "$dest"
