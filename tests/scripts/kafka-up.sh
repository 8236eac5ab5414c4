#!/usr/bin/env bash
# Start a private single-node Apache Kafka (KRaft: broker+controller in one
# JVM, no ZooKeeper) on two free loopback ports, and create the sipdrain
# topics (6 partitions, replication 1) idempotently.
#
# --cluster: three such nodes instead, the two-data-centre layout of issue
# #18 on loopback: node 1 in rack site1, node 2 in site2, node 3 in
# "witness" (a third location). Each node is a broker and a controller, so
# the KRaft quorum (3 voters) survives the loss of any one location; topics
# get replication 3 (one replica per rack: Kafka places replicas rack-aware)
# and min.insync.replicas 2, so with producers' acks=all an event is on two
# locations before it counts as written, and a whole site can go. State in
# $REPO/.run/kafka-cluster/ (node1/ node2/ node3/ each with the files a
# single node keeps in .run/kafka/; secrets/, clients/, cluster-id, env
# shared). A node that is down is started, the others are reused: this is
# how a powered-off site's broker comes back. stdout as below, with the
# three brokers in SIPDRAIN_KAFKA_BROKERS, and
# `export SIPDRAIN_KAFKA_REPLICATION=3` (for sipdrain-kafka-init).
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

cluster=0
for arg in "$@"; do
  case "$arg" in
    --cluster) cluster=1 ;;
    *) echo "usage: $0 [--cluster]" >&2; exit 2 ;;
  esac
done

script_dir=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$script_dir/../.." rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))
if ((cluster)); then
  run="$REPO/.run/kafka-cluster"
  NODES=(1 2 3)
  RACKS=(site1 site2 witness) # node i is in RACKS[i-1]
  REPLICATION=3
  MIN_ISR=2
else
  run="$REPO/.run/kafka"
  NODES=(1)
  RACKS=("")
  REPLICATION=1
  MIN_ISR=1
fi
# A node's own files: server.properties, data/, log, pid, ports.
node_dir() { if ((cluster)); then echo "$run/node$1"; else echo "$run"; fi; }

say() { echo "kafka-up: $*" >&2; }
die() { say "$*"; exit 1; }
show_log() { # NODE
  local log
  log="$(node_dir "$1")/log"
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
  cat "$REPO"/.run/pg*/port "$REPO"/.run/pg*/*/port "$REPO/.run/kafka/ports" \
    "$REPO"/.run/kafka-cluster/node*/ports 2>/dev/null | tr ' ' '\n' || true
}

# Pick a random free loopback port in 20000-32767 not in "$@" nor reserved:
# below the kernel's ephemeral range (32768-60999), where any process's
# outgoing connection may hold the port while the node is down, and its
# restart on the recorded port fails (EADDRINUSE). Tests use 10000-19999.
pick_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12768))
    if [[ " $* $(reserved_ports | tr '\n' ' ') " == *" $p "* ]]; then continue; fi
    port_busy "$p" || { echo "$p"; return 0; }
  done
  die "no free loopback port found in 20000-32767"
}

# running_pid NODE: pid of that node if it is alive (guards against a
# recycled pid).
running_pid() {
  local pid dir
  dir=$(node_dir "$1")
  [[ -f "$dir/pid" ]] || return 1
  pid=$(<"$dir/pid")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $dir/server.properties" || return 1
  echo "$pid"
}

# Wait for metadata and ensure the topics, in one JVM. If broker pids are
# given, give up as soon as one of them dies instead of waiting the timeout.
ensure_topics() {
  local bootstrap=$1 apid rc=0 p
  shift
  java -Dlog4j.configuration="file:$run/admin-log4j.properties" -cp "$CP" \
    "$script_dir/KafkaAdmin.java" --config "$run/clients/sipdrain-admin.java.properties" \
    --scram "$run/secrets" --skip sipdrain-controller \
    "$bootstrap" "$START_TIMEOUT_S" "${TOPICS[@]}" </dev/null >&2 &
  apid=$!
  while kill -0 "$apid" 2>/dev/null; do
    for p in "$@"; do
      if ! kill -0 "$p" 2>/dev/null; then
        kill "$apid" 2>/dev/null || true
        wait "$apid" 2>/dev/null || true
        say "broker process $p exited during startup"
        return 1
      fi
    done
    sleep 0.5
  done
  wait "$apid" || rc=$?
  return "$rc"
}

# bootstrap: every node's broker listener, comma-separated.
bootstrap() {
  local i b out=""
  for i in "${NODES[@]}"; do
    read -r b _ <"$(node_dir "$i")/ports"
    out="$out${out:+,}127.0.0.1:$b"
  done
  echo "$out"
}

emit_env() {
  {
    printf 'export SIPDRAIN_KAFKA_BROKERS=%s\nexport SIPDRAIN_KAFKA_CLIENTS=%s\n' \
      "$(bootstrap)" "$run/clients"
    if ((cluster)); then printf 'export SIPDRAIN_KAFKA_REPLICATION=%s\n' "$REPLICATION"; fi
  } | tee "$run/env"
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
for i in "${NODES[@]}"; do
  if pid=$(running_pid "$i") && [[ "$(cat "$run/auth-layout" 2>/dev/null)" != "$AUTH_LAYOUT" ]]; then
    say "node $i (pid $pid) runs without SASL and ACLs: stopping it"
    kill -TERM "$pid" 2>/dev/null || true
    for ((k = 0; k < 60; k++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
down=()
pids=()
for i in "${NODES[@]}"; do
  if pid=$(running_pid "$i"); then
    pids+=("$pid")
  else
    down+=("$i")
    rm -f "$(node_dir "$i")/pid"
  fi
done
if ((${#down[@]} == 0)); then
  say "already running (pid ${pids[*]}) on $(bootstrap)"
  if ! ensure_topics "$(bootstrap)" "${pids[@]}"; then
    for i in "${NODES[@]}"; do show_log "$i"; done
    die "running broker does not answer"
  fi
  emit_env
  exit 0
fi

# --- ports: reuse each node's recorded pair when both are still free ---
# (a node's pair never changes while others of its cluster run: the quorum
# knows it by that address)
for i in "${down[@]}"; do
  dir=$(node_dir "$i")
  mkdir -p "$dir"
  bport="" cport=""
  if [[ -f "$dir/ports" ]]; then
    read -r bport cport <"$dir/ports" || true
    if [[ ! "$bport" =~ ^[0-9]+$ || ! "$cport" =~ ^[0-9]+$ ]] || port_busy "$bport" || port_busy "$cport"; then
      say "node $i: recorded ports ${bport:-?}/${cport:-?} not usable; picking new ones"
      bport="" cport=""
    fi
  fi
  if [[ -z "$bport" ]]; then
    rm -f "$dir/ports" # do not let our old pair block the pick
    bport=$(pick_port)
    cport=$(pick_port "$bport")
    echo "$bport $cport" >"$dir/ports"
  fi
done
voters=""
for i in "${NODES[@]}"; do
  read -r _ c <"$(node_dir "$i")/ports"
  voters="$voters${voters:+,}$i@127.0.0.1:$c"
done

# --- configuration (rewritten every start: ports may have changed) ------
write_config() { # NODE
  local i=$1 dir bport cport rack
  dir=$(node_dir "$i")
  read -r bport cport <"$dir/ports"
  rack=${RACKS[$((i - 1))]}
  (umask 077 && cat >"$dir/server.properties" <<EOF
# Generated by tests/scripts/kafka-up.sh$( ((cluster)) && echo " --cluster: node $i of 3, rack $rack" || echo ": single-node KRaft for local tests").
# Holds passwords (mode 600).
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
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
log.dirs=$dir/data
num.partitions=6
# Topics made without a replication factor (tests/scripts/KafkaAdmin.java)
# get this one; with acks=all a write counts once min.insync.replicas have it.
default.replication.factor=$REPLICATION
min.insync.replicas=$MIN_ISR
offsets.topic.replication.factor=$REPLICATION
transaction.state.log.replication.factor=$REPLICATION
transaction.state.log.min.isr=$MIN_ISR
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
message.max.bytes=4194304
replica.fetch.max.bytes=4194304
log.retention.hours=24
EOF
  )
  if ((cluster)); then
    (umask 077 && cat >>"$dir/server.properties" <<EOF
# Two data centres and a witness: one replica of each partition per rack.
broker.rack=$rack
# Leadership stays where an operator (drainctl, issue #18) puts it: no
# automatic move back to the preferred replica of a site being drained.
auto.leader.rebalance.enable=false
# A follower this far behind leaves the ISR (a site cut off by the network).
replica.lag.time.max.ms=10000
EOF
    )
  fi
}
for i in "${down[@]}"; do write_config "$i"; done

# Everything to the console (=> the node's log) at INFO, like the stock
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
if [[ "$(cat "$run/auth-layout" 2>/dev/null)" != "$AUTH_LAYOUT" ]]; then
  for i in "${NODES[@]}"; do
    data="$(node_dir "$i")/data"
    if [[ -f "$data/meta.properties" ]]; then
      say "the data in $data predates SASL and ACLs: reformatting (its topics are lost)"
      rm -rf "$data"
    fi
  done
fi
if [[ ! -s "$run/cluster-id" ]]; then
  java -cp "$CP" -Dlog4j.configuration="file:$run/admin-log4j.properties" \
    kafka.tools.StorageTool random-uuid >"$run/cluster-id"
fi
cluster_id=$(<"$run/cluster-id")
for i in "${down[@]}"; do
  dir=$(node_dir "$i")
  data="$dir/data"
  [[ -f "$data/meta.properties" ]] && continue
  rm -rf "$data" # anything without meta.properties is junk
  say "formatting $data (cluster id $cluster_id)"
  # Static quorum (controller.quorum.voters), so no --standalone here.
  java -cp "$CP" -Dlog4j.configuration="file:$run/admin-log4j.properties" \
    kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
    --add-scram "SCRAM-SHA-512=[name=sipdrain-broker,password=$(pw sipdrain-broker)]" \
    --add-scram "SCRAM-SHA-512=[name=sipdrain-admin,password=$(pw sipdrain-admin)]" >&2 \
    || die "kafka-storage format failed"
done
echo "$AUTH_LAYOUT" >"$run/auth-layout"

# --- start ---------------------------------------------------------------
# Every partition keeps segment files open: a long-lived local stack (the
# topics of every test run) ran out of file descriptors at the default limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for i in "${down[@]}"; do
  dir=$(node_dir "$i")
  log="$dir/log"
  read -r bport cport <"$dir/ports"
  say "starting Kafka$( ((cluster)) && echo " node $i (${RACKS[$((i - 1))]})") on 127.0.0.1:$bport (controller 127.0.0.1:$cport), log $log"
  # setsid+nohup: detached from our process group and terminal; all fds
  # redirected so callers doing $(kafka-up.sh) do not wait for the JVM.
  [[ -f "$log" ]] && mv -f "$log" "$log.prev" # keep the previous run's log
  # 1 GiB: a long-lived local stack collects the topics of every test run
  # (thousands of partitions); 512 MiB ran out of heap after ~18,000.
  setsid nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$run/log4j.properties" \
    -cp "$CP" kafka.Kafka "$dir/server.properties" </dev/null >"$log" 2>&1 &
  echo "$!" >"$dir/pid"
done
pids=()
for i in "${NODES[@]}"; do pids+=("$(<"$(node_dir "$i")/pid")"); done

if ! ensure_topics "$(bootstrap)" "${pids[@]}"; then
  for i in "${down[@]}"; do
    show_log "$i"
    pid=$(<"$(node_dir "$i")/pid")
    if kill -0 "$pid" 2>/dev/null; then
      say "stopping the node that failed to come up (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      for ((k = 0; k < 20; k++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(node_dir "$i")/pid"
  done
  die "Kafka failed to start (see above; full logs in $(node_dir "${down[0]}")/log)"
fi
emit_env
