#!/usr/bin/env bash
# Start a private single-node Apache Kafka (KRaft: broker+controller in one
# JVM, no ZooKeeper) on two free loopback ports, and create the sipdrain
# topics (6 partitions, replication 1) idempotently.
#
# Authentication and authorisation are on, as in production (issue #15):
# the broker listener takes SASL_PLAINTEXT with SCRAM-SHA-512 (plaintext is
# acceptable on loopback only), the controller listener SASL_PLAINTEXT with
# PLAIN, and the StandardAuthorizer refuses everything no ACL allows. Users
# (one password file each in secrets/, made once, mode 600):
#   sipdrain-controller  the controller quorum (PLAIN)          super user
#   sipdrain-broker      the broker's own inter-broker login    super user
#   sipdrain-admin       topics, ACLs, users: tools and tests    super user
#   sipdrain-edge, sipdrain-agent-state, sipdrain-orchestrator,
#   sipdrain-operator (drainctl), sipdrain-desktop (agent desktops)
# The programs' ACLs are made per topic prefix by sipdrain-kafka-init (the
# table is in libcommon/src/kafka_acl.c). clients/<user>.properties holds a
# user's librdkafka settings (SIPDRAIN_KAFKA_PROPERTIES), and
# clients/<user>.java.properties the same for Java clients (--config of
# Kafka's console tools). A changed password file is applied at the next
# start; a data directory made before authentication is reformatted.
#
# State lives in $REPO/.run/kafka/: server.properties, log4j.properties,
# data/, log (JVM stdout+stderr; log.prev = the previous start's), pid,
# ports ("<broker> <controller>"), cluster-id, secrets/, clients/, env.
# Ports, data and passwords are reused on the next start.
#
# stdout: two lines, `export SIPDRAIN_KAFKA_BROKERS=127.0.0.1:<port>` and
# `export SIPDRAIN_KAFKA_CLIENTS=<the clients directory>` (also written to
# .run/kafka/env); progress goes to stderr.
# Safe to call twice: a running broker is reused (topics are still ensured).
set -euo pipefail

TOPICS=(
  sipdrain.drain.commands
  sipdrain.drain.events
  sipdrain.edge.control
  sipdrain.edge.status
  sipdrain.call.events
  sipdrain.agent.commands
  sipdrain.agent.events
  sipdrain.deadletter
)
START_TIMEOUT_S=60
SUPER_USERS=(sipdrain-controller sipdrain-broker sipdrain-admin)
PROGRAM_USERS=(sipdrain-edge sipdrain-agent-state sipdrain-orchestrator sipdrain-operator sipdrain-desktop)
# Bumped when the listeners' security changes: older data is reformatted.
AUTH_LAYOUT=1

script_dir=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$script_dir/../.." rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))
run="$REPO/.run/kafka"
data="$run/data"
log="$run/log"

say() { echo "kafka-up: $*" >&2; }
die() { say "$*"; exit 1; }
show_log() {
  if [[ -f "$log" ]]; then
    echo "---- last 40 lines of $log ----" >&2
    tail -n 40 "$log" >&2
    echo "----" >&2
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

# Ports recorded by the other sipdrain servers (e.g. a stopped PostgreSQL
# that will come back on its port) are never picked.
reserved_ports() {
  cat "$REPO/.run/pg/port" "$REPO/.run/kafka/ports" 2>/dev/null | tr ' ' '\n' || true
}

# Pick a random free loopback port in 20000-40000 not in "$@" nor reserved.
pick_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 20001))
    if [[ " $* $(reserved_ports | tr '\n' ' ') " == *" $p "* ]]; then continue; fi
    port_busy "$p" || { echo "$p"; return 0; }
  done
  die "no free loopback port found in 20000-40000"
}

# pid of our broker if it is alive (guards against a recycled pid).
running_pid() {
  local pid
  [[ -f "$run/pid" ]] || return 1
  pid=$(<"$run/pid")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $run/server.properties" || return 1
  echo "$pid"
}

# Wait for metadata and ensure the topics, in one JVM. If a broker pid is
# given, give up as soon as that broker dies instead of waiting the timeout.
ensure_topics() {
  local bootstrap=$1 broker_pid=${2:-} apid rc=0
  java -Dlog4j.configuration="file:$run/admin-log4j.properties" -cp "$CP" \
    "$script_dir/KafkaAdmin.java" --config "$run/clients/sipdrain-admin.java.properties" \
    --scram "$run/secrets" --skip sipdrain-controller \
    "$bootstrap" "$START_TIMEOUT_S" "${TOPICS[@]}" </dev/null >&2 &
  apid=$!
  while kill -0 "$apid" 2>/dev/null; do
    if [[ -n "$broker_pid" ]] && ! kill -0 "$broker_pid" 2>/dev/null; then
      kill "$apid" 2>/dev/null || true
      wait "$apid" 2>/dev/null || true
      say "broker process $broker_pid exited during startup"
      return 1
    fi
    sleep 0.5
  done
  wait "$apid" || rc=$?
  return "$rc"
}

emit_env() {
  printf 'export SIPDRAIN_KAFKA_BROKERS=127.0.0.1:%s\nexport SIPDRAIN_KAFKA_CLIENTS=%s\n' \
    "$1" "$run/clients" | tee "$run/env"
}

pw() { cat "$run/secrets/$1"; }

# A password per user, made once; the clients' settings, rewritten each start.
make_credentials() {
  local u
  (umask 077 && mkdir -p "$run/secrets" "$run/clients")
  for u in "${SUPER_USERS[@]}" "${PROGRAM_USERS[@]}"; do
    if [[ ! -s "$run/secrets/$u" ]]; then
      (umask 077 && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$run/secrets/$u")
    fi
    [[ "$u" == sipdrain-controller || "$u" == sipdrain-broker ]] && continue
    (umask 077 && cat >"$run/clients/$u.properties" <<EOF
# librdkafka settings of Kafka user $u (SIPDRAIN_KAFKA_PROPERTIES), by kafka-up.sh
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.username=$u
sasl.password=$(pw "$u")
EOF
    )
    (umask 077 && cat >"$run/clients/$u.java.properties" <<EOF
# Java client settings of Kafka user $u (--config), by kafka-up.sh
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$u" password="$(pw "$u")";
EOF
    )
  done
}

# --- broker jars ---------------------------------------------------------
kafka_dir=$("$REPO/tools/kafka-fetch.sh")   # no-op (no mvn) when cached
[[ -s "$kafka_dir/classpath" ]] || die "no classpath file in $kafka_dir"
CP=$(<"$kafka_dir/classpath")
command -v java >/dev/null || die "java not found on PATH"

mkdir -p "$run"
make_credentials
# Quiet client-side logging for KafkaAdmin (errors only, to stderr).
cat >"$run/admin-log4j.properties" <<'EOF'
log4j.rootLogger=ERROR, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF

# --- already running? --------------------------------------------------
if pid=$(running_pid) && [[ "$(cat "$run/auth-layout" 2>/dev/null)" != "$AUTH_LAYOUT" ]]; then
  say "broker (pid $pid) runs without SASL and ACLs: stopping it"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
fi
if pid=$(running_pid); then
  read -r bport _ <"$run/ports"
  say "broker already running (pid $pid) on 127.0.0.1:$bport"
  if ! ensure_topics "127.0.0.1:$bport" "$pid"; then
    show_log
    die "running broker does not answer"
  fi
  emit_env "$bport"
  exit 0
fi
rm -f "$run/pid"

# --- ports: reuse the recorded pair when both are still free ------------
bport="" cport=""
if [[ -f "$run/ports" ]]; then
  read -r bport cport <"$run/ports" || true
  if [[ ! "$bport" =~ ^[0-9]+$ || ! "$cport" =~ ^[0-9]+$ ]] || port_busy "$bport" || port_busy "$cport"; then
    say "recorded ports ${bport:-?}/${cport:-?} not usable; picking new ones"
    bport="" cport=""
  fi
fi
if [[ -z "$bport" ]]; then
  rm -f "$run/ports"               # do not let our old pair block the pick
  bport=$(pick_port)
  cport=$(pick_port "$bport")
  echo "$bport $cport" >"$run/ports"
fi

# --- configuration (rewritten every start: ports may have changed) ------
(umask 077 && cat >"$run/server.properties" <<EOF
# Generated by tests/scripts/kafka-up.sh: single-node KRaft for local tests.
# Holds passwords (mode 600).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=BROKER://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=BROKER://127.0.0.1:$bport
controller.listener.names=CONTROLLER
inter.broker.listener.name=BROKER
listener.security.protocol.map=BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
# Clients and the broker itself: SCRAM-SHA-512 (users kept in the metadata log).
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.broker.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="sipdrain-broker" password="$(pw sipdrain-broker)";
# The controller quorum: PLAIN (SCRAM lives in the metadata log it serves).
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="sipdrain-controller" password="$(pw sipdrain-controller)" user_sipdrain-controller="$(pw sipdrain-controller)";
# No ACL, no access; super users: the cluster's own logins and the admin.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:sipdrain-controller;User:sipdrain-broker;User:sipdrain-admin
log.dirs=$data
num.partitions=6
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
message.max.bytes=4194304
replica.fetch.max.bytes=4194304
log.retention.hours=24
EOF
)

# Everything to the console (=> .run/kafka/log) at INFO, like the stock
# distribution's server log, so AppInfoParser's "Kafka version" line shows.
cat >"$run/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
# Per-request and per-partition state chatter is not useful here.
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
EOF

# --- format the storage once -------------------------------------------
if [[ -f "$data/meta.properties" && "$(cat "$run/auth-layout" 2>/dev/null)" != "$AUTH_LAYOUT" ]]; then
  say "the data in $data predates SASL and ACLs: reformatting (its topics are lost)"
  rm -rf "$data"
fi
if [[ ! -f "$data/meta.properties" ]]; then
  rm -rf "$data"                    # anything without meta.properties is junk
  if [[ ! -s "$run/cluster-id" ]]; then
    java -cp "$CP" -Dlog4j.configuration="file:$run/admin-log4j.properties" \
      kafka.tools.StorageTool random-uuid >"$run/cluster-id"
  fi
  cluster_id=$(<"$run/cluster-id")
  say "formatting $data (cluster id $cluster_id)"
  # Static quorum (controller.quorum.voters), so no --standalone here.
  java -cp "$CP" -Dlog4j.configuration="file:$run/admin-log4j.properties" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$run/server.properties" \
    --add-scram "SCRAM-SHA-512=[name=sipdrain-broker,password=$(pw sipdrain-broker)]" \
    --add-scram "SCRAM-SHA-512=[name=sipdrain-admin,password=$(pw sipdrain-admin)]" >&2 \
    || die "kafka-storage format failed"
  echo "$AUTH_LAYOUT" >"$run/auth-layout"
fi

# --- start ---------------------------------------------------------------
say "starting Kafka on 127.0.0.1:$bport (controller 127.0.0.1:$cport), log $log"
# setsid+nohup: detached from our process group and terminal; all fds
# redirected so callers doing $(kafka-up.sh) do not wait for the JVM.
[[ -f "$log" ]] && mv -f "$log" "$log.prev"   # keep the previous run's log
# Every partition keeps segment files open: a long-lived local stack (the
# topics of every test run) ran out of file descriptors at the default limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# 1 GiB: a long-lived local stack collects the topics of every test run
# (thousands of partitions); 512 MiB ran out of heap after ~18,000.
setsid nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
  -Dlog4j.configuration="file:$run/log4j.properties" \
  -cp "$CP" kafka.Kafka "$run/server.properties" </dev/null >"$log" 2>&1 &
pid=$!
echo "$pid" >"$run/pid"

if ! ensure_topics "127.0.0.1:$bport" "$pid"; then
  show_log
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping the broker that failed to come up (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$run/pid"
  die "Kafka failed to start (see above; full log in $log)"
fi
emit_env "$bport"
