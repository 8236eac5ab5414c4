#!/usr/bin/env bash
# tests/e2e/site-power-off.sh - issue #18, point 4: a drained site is
# powered off, and the other goes on. Against the real servers on loopback:
#
#   stores    Kafka: three nodes (racks site1, site2, witness; RF 3,
#             min.insync.replicas 2); PostgreSQL: primary pg-site2, standby
#             pg-site1 (tests/e2e/ha-lib.sh: kafka-up.sh --cluster,
#             pg-pair-up.sh); every program on all three brokers and the
#             multi-host DSN (target_session_attrs=read-write), each as its
#             own PostgreSQL role and Kafka user
#   site1     agent-state as-1, drain-orchestrator orch-1, edges edge-1a
#             and edge-1b, AGENTS agents (auto_in) and their phones (one
#             SIPp UAS, registered at edge-1a)
#   site2     as-2, orch-2, edge-2a, AGENTS agents and their phones
#   outside   Kamailio (deploy/kamailio/kamailio.cfg) in front of the three
#             edges, and a SIPp gateway calling route point 7000 through it
#             at RATE calls/s for GATEWAY_S seconds, the whole test long
#
# Then, as README's runbook says, with calls flowing:
#   1. drainctl drain start --site site2 --wait: completed; before that it
#      names what of the stores leads in site2 (the primary, leaders)
#   2. pg-switchover.sh (primary -> pg-site1); drainctl stores --site
#      site2 --move-leaders: every leader moved (Kafka's view: none on
#      broker 2), exit 0
#   3. every event in our topics is read (ids kept); then kill -9 of every
#      process of site2: as-2, orch-2, edge-2a (if the drain left it
#      running), its Kafka node, its PostgreSQL
#   4. site1 alone: an agent logs out and in again (agent-state, Kafka,
#      the new primary); a second drain, of edge-1b, is accepted and
#      completes; the gateway's calls go on through edge-1a
#   5. the gateway's calls: every one completed, none failed - not even
#      while the switchover left PostgreSQL without a primary (a new call
#      waits for it, SIPDRAIN_ROUTE_DB_WAIT); every event read before the
#      power-off is still there
#   6. unplanned (UNPLANNED=1, the default): site2 powered on, rejoined and
#      resumed, then kill -9 of everything in site1 - the primary's site -
#      without a switchover; REACT_S (3) later pg-switchover.sh --failover
#      promotes site2's standby: calls wait or fail only until then, site2
#      routes again, what was lost is counted
# Prints calls per site before and after the power-off, the events counted
# and the switchover's timings. Exit 0 only when every check held.
#
# Env: RATE (2), HOLD_MS (1500), GATEWAY_S (75), AGENTS (6 per site),
# SIPDRAIN_BIN_DIR / SIPDRAIN_TEST_BIN_DIR, KEEP=1 (leave the servers and
# .run/power-off). Its own servers (.run/kafka-cluster, .run/pg-site1|2):
# it runs beside the test stack.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
bin=${SIPDRAIN_TEST_BIN_DIR:-build/tests}
sbin=${SIPDRAIN_BIN_DIR:-build/bin}
RATE=${RATE:-2}
HOLD_MS=${HOLD_MS:-1500}
GATEWAY_S=${GATEWAY_S:-75}
AGENTS=${AGENTS:-6}
REACT_S=${REACT_S:-3} # unplanned: seconds from the loss of site1 to the promotion
PHONE_PASSWORD=sipdrain-power-off
MODULES=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)/kamailio/modules
# shellcheck source=tests/e2e/ha-lib.sh
. tests/e2e/ha-lib.sh
logs=.run/power-off

declare -A sup_of site_of
pids=() # supervisors and the other background processes
child() { cat "$logs/$1.pid" 2>/dev/null || true; } # NAME: its running process
stop_all() {
    local p n
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for n in "${!sup_of[@]}"; do kill "$(child "$n")" 2>/dev/null || true; done # an edge's second TERM
    for _ in $(seq 1 30); do
        local alive=0
        for n in "${!sup_of[@]}"; do kill -0 "$(child "$n")" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for n in "${!sup_of[@]}"; do kill -9 "$(child "$n")" 2>/dev/null || true; done
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap 'stop_all; [ -n "${KEEP:-}" ] || ha_cleanup' EXIT
trap 'exit 143' TERM INT
ha_cleanup
rm -rf "$logs"
mkdir -p "$logs"

echo "== stores: three Kafka nodes (site1, site2, witness), primary pg-site2, standby pg-site1"
ha_up power-off
kc=$SIPDRAIN_KAFKA_CLIENTS
"$sbin/sipdrain-kafka-init" >"$logs/kafka-init.log" 2>&1
# The layout (what ha-lib.sh's servers must be for the rest to mean anything)
layout=$(describe sipdrain.call.events sipdrain.agent.commands)
check "0. three brokers, in racks site1 / site2 / witness" \
    [ "$(grep '^broker ' <<<"$layout" | sort | tr '\n' ' ')" = "broker 1 site1 broker 2 site2 broker 3 witness " ]
check "0. a KRaft quorum leader is elected ($(grep '^quorum-leader' <<<"$layout"))" \
    grep -q '^quorum-leader [123]$' <<<"$layout"
check "0. every partition: replicas on all three brokers (one per rack), all in sync ($(grep -c '^partition ' <<<"$layout") partitions)" \
    [ "$(grep '^partition ' <<<"$layout" | grep -vc 'replicas=[123],[123],[123] isr=[123],[123],[123]$')" = 0 ]
check "0. min.insync.replicas 2 on both topics" [ "$(grep -c '^min.insync.replicas .* 2$' <<<"$layout")" = 2 ]
check "0. site2 is the primary, site1 a streaming standby" \
    [ "$(sq site2 'select pg_is_in_recovery()')/$(sq site1 'select status from pg_stat_wal_receiver')" = f/streaming ]
SIPDRAIN_PG_DSN=$dsn "$sbin/sipdrain-migrate" --dir deploy/sql >"$logs/migrate.log" 2>&1
for r in sipdrain_edge sipdrain_agent_state sipdrain_orchestrator sipdrain_drainctl sipdrain_passwd; do
    psql -X "$dsn" -qAt -c "ALTER ROLE $r LOGIN" >/dev/null
done
dsn_as() { sed -E "s#^postgresql://([^@/]*@)?#postgresql://$1@#" <<<"$dsn"; }
for s in 1 2; do seq -f "$s%03g $PHONE_PASSWORD" 1 "$AGENTS"; done |
    SIPDRAIN_PG_DSN=$(dsn_as sipdrain_passwd) "$sbin/sipdrain-passwd" import >"$logs/passwd.log"

# --- the services of both sites ---------------------------------------------
# run NAME SITE PROGRAM [VAR=VALUE...]: a service under a supervisor that
# starts it again a second after it exits, as compose's restart policy (or
# Kubernetes) does in production: an orchestrator that lost its lock exits
# so that it comes back as a standby; a drained edge exits and comes back
# held. Its process id in $logs/NAME.pid, its starts in $logs/supervisor.log.
run() {
    local name=$1 site=$2 prog=$3
    shift 3
    (
        trap 'kill "$(child "$name")" 2>/dev/null; exit 0' TERM
        while :; do
            env "$@" SIPDRAIN_LOG_LEVEL=info "$sbin/$prog" >>"$logs/$name.log" 2>&1 &
            echo $! >"$logs/$name.pid"
            rc=0
            wait $! || rc=$?
            echo "$(date -u +%T) $name exited $rc; started again" >>"$logs/supervisor.log"
            sleep 1
        done
    ) &
    sup_of[$name]=$!
    disown "$!" # its kill -9 at the power-off is no news to this shell
    site_of[$name]=$site
    pids+=($!)
}
free_port lb_port
: >"$logs/dispatcher.list"
declare -A edge_port
start_edge() { # NAME SITE
    local p=${edge_port[$1]:-}
    [ -n "$p" ] || { free_port p; edge_port[$1]=$p; }
    run "$1" "$2" sip-edge SIPDRAIN_EDGE_ID="$1" SIPDRAIN_SITE="$2" SIPDRAIN_SIP_URL="sip:127.0.0.1:$p" \
        SIPDRAIN_ROUTE_POINTS=7000 SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT=2 \
        SIPDRAIN_PEER_SITE_URI="sip:127.0.0.1:$lb_port" SIPDRAIN_SIP_AUTH_ALGORITHMS=MD5 \
        SIPDRAIN_KAFKA_PROPERTIES="$kc/sipdrain-edge.properties" SIPDRAIN_PG_DSN="$(dsn_as sipdrain_edge)"
}
echo "== services: site1 as-1 orch-1 edge-1a edge-1b; site2 as-2 orch-2 edge-2a; Kamailio in front"
for s in 1 2; do
    run "as-$s" "site$s" agent-state SIPDRAIN_INSTANCE_ID="as-$s" \
        SIPDRAIN_KAFKA_PROPERTIES="$kc/sipdrain-agent-state.properties" SIPDRAIN_PG_DSN="$(dsn_as sipdrain_agent_state)"
    run "orch-$s" "site$s" drain-orchestrator SIPDRAIN_INSTANCE_ID="orch-$s" \
        SIPDRAIN_KAFKA_PROPERTIES="$kc/sipdrain-orchestrator.properties" SIPDRAIN_PG_DSN="$(dsn_as sipdrain_orchestrator)"
done
for e in edge-1a edge-1b edge-2a; do
    start_edge "$e" "site${e:5:1}"
    echo "1 sip:127.0.0.1:${edge_port[$e]} 0 0 site=site${e:5:1}" >>"$logs/dispatcher.list"
done
kamailio -f deploy/kamailio/kamailio.cfg -L "$MODULES" -l "udp:127.0.0.1:$lb_port" \
    -A "DISPATCHER_LIST=\"$repo/$logs/dispatcher.list\"" -A "CTL_SOCKET=\"unix:$repo/$logs/kamailio.ctl\"" \
    -m 128 -w "$logs" -DD -E >"$logs/kamailio.log" 2>&1 &
pids+=($!)
for e in edge-1a edge-1b edge-2a; do
    for _ in $(seq 1 150); do grep -q "partitions assigned" "$logs/$e.log" && break; sleep 0.2; done
done
check "0. every edge joined its consumer group" \
    [ "$(grep -l "partitions assigned" "$logs"/edge-*.log | wc -l)" = 3 ]

# --- agents and phones ---------------------------------------------------------
mkfifo "$logs/desk.fifo"
java -cp "$(<"$kafka_dir/classpath")" kafka.tools.ConsoleProducer --bootstrap-server "$brokers" \
    --producer.config "$kc/sipdrain-desktop.java.properties" --topic sipdrain.agent.commands \
    --property parse.key=true --property key.separator='|' <"$logs/desk.fifo" >"$logs/desk.log" 2>&1 &
pids+=($!)
exec 3>"$logs/desk.fifo"
stamp() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
login() { # AGENT DN SITE [WORK_MODE]
    printf '%s|{"specversion":"1.0","id":"%s","source":"power-off/desk","type":"agent.login","time":"%s","datacontenttype":"application/json","data":{"agent_id":"%s","dn":"%s","site":"%s","work_mode":"%s","acw_timeout_s":null,"workspace":false,"nailed_up":false}}\n' \
        "$1" "$(cat /proc/sys/kernel/random/uuid)" "$(stamp)" "$1" "$2" "$3" "${4:-auto_in}" >&3
}
command() { # AGENT TYPE
    printf '%s|{"specversion":"1.0","id":"%s","source":"power-off/desk","type":"%s","time":"%s","datacontenttype":"application/json","data":{"agent_id":"%s"}}\n' \
        "$1" "$(cat /proc/sys/kernel/random/uuid)" "$2" "$(stamp)" "$1" >&3
}
q() { psql -X "$dsn" -qAt -c "$1" 2>/dev/null || true; }
wait_sql_on() { # SITE SQL WANT SECONDS: until SITE's server answers WANT
    local i
    for i in $(seq 1 $(($4 * 5))); do [ "$(sq "$1" "$2")" = "$3" ] && return 0; sleep 0.2; done
    return 1
}
wait_sql() { # SQL WANT SECONDS: until SQL answers WANT
    local i
    for i in $(seq 1 $(($3 * 5))); do [ "$(q "$1")" = "$2" ] && return 0; sleep 0.2; done
    return 1
}
for s in 1 2; do for i in $(seq 1 "$AGENTS"); do login "agent-$s-$(printf %02d "$i")" "$s$(printf %03d "$i")" "site$s"; done; done
check "0. $((2 * AGENTS)) agents logged in (agent-state, through Kafka)" \
    wait_sql "SELECT count(*) FROM agents WHERE state = 'ready'" "$((2 * AGENTS))" 60
# and a supervisor at site1 who takes no calls (manual_in, not ready): the
# agent who logs out and in again after the power-off (an agent on a call
# may not log out: agent-state refuses it, on_call)
login agent-1-99 1099 site1 manual_in
check "0. agent-1-99 logged in, not ready" \
    wait_sql "SELECT state FROM agents WHERE agent_id = 'agent-1-99'" not_ready 30
declare -A uas_of
register_phones() { # N: site N's phones registered at edge-Na, one REGISTER per DN
    local rp rcp
    free_port rp
    free_port rcp
    sipp "127.0.0.1:${edge_port[edge-${1}a]}" -sf tests/e2e/sipp/phones_register.xml \
        -inf "$logs/dns-site$1.csv" -key contact_port "${uas_of[$1]}" -i 127.0.0.1 -p "$rp" -cp "$rcp" \
        -t u1 -m "$AGENTS" -r 50 -ap "$PHONE_PASSWORD" -timeout 60s -timeout_error -nostdin \
        -default_behaviors all,-bye >>"$logs/register-site$1.out" 2>&1
}
for s in 1 2; do
    free_port uas
    uas_of[$s]=$uas
    free_port cp
    sipp -sf tests/e2e/sipp/phones_uas.xml -i 127.0.0.1 -p "$uas" -cp "$cp" -t u1 -m 100000 \
        -key sdp_token "phones-site$s" -timeout 900s -nostdin >"$logs/phones-site$s.out" 2>&1 &
    pids+=($!)
    { echo SEQUENTIAL; seq -f "$s%03g" 1 "$AGENTS"; } >"$logs/dns-site$s.csv"
    check "0. the phones of site$s registered at edge-${s}a" register_phones "$s"
done

# --- the gateway's calls, the whole test long ----------------------------------
calls=$((RATE * GATEWAY_S))
echo "== a gateway calls route point 7000 through Kamailio: $RATE calls/s of $HOLD_MS ms, $calls calls"
echo -e "SEQUENTIAL\n7000" >"$logs/route.csv"
free_port gp
free_port gcp
sipp "127.0.0.1:$lb_port" -sf bench/sipp/caller.xml -inf "$logs/route.csv" -d "$HOLD_MS" \
    -i 127.0.0.1 -p "$gp" -cp "$gcp" -t u1 -r "$RATE" -m "$calls" -recv_timeout 150000 \
    -timeout $((GATEWAY_S + 200))s -nostdin -trace_stat -stf "$logs/gateway.csv" -fd 1 \
    >"$logs/gateway.out" 2>&1 &
gw=$!
pids+=($gw)
t_calls=$(now_ms)
check "0. calls reach both sites before the drain" \
    wait_sql "SELECT count(DISTINCT site) FROM calls WHERE state = 'ended'" 2 30

stat() { # a column of the gateway's last -trace_stat line (written every second)
    awk -F';' -v want="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == want) c = i; next }
        NF > 10 { v = $c } END { print v + 0 }' "$logs/${LOGS_STAT:-gateway}.csv"
}
# --- 1. the drain of site2 -----------------------------------------------------------
operator() { # drainctl as the operator (its Kafka user and PostgreSQL role)
    SIPDRAIN_KAFKA_PROPERTIES="$kc/sipdrain-operator.properties" SIPDRAIN_PG_DSN="$(dsn_as sipdrain_drainctl)" \
        "$sbin/drainctl" "$@"
}
echo "== 1. drainctl drain start --site site2 --wait"
rc=0
operator drain start --site site2 --sip-timeout 2 --reason power-off --wait >"$logs/drain-site2.out" 2>&1 || rc=$?
sed 's/^/   | /' "$logs/drain-site2.out" | grep -v 'progress\|phase=' || true
check "1. the drain of site2 completed (exit $rc)" [ "$rc" = 0 ]
check "1. before completed it names the PostgreSQL primary in site2" \
    grep -q '^site2 holds the PostgreSQL primary' "$logs/drain-site2.out"
check "1. and site2's partition leaders" grep -q "^site2's brokers lead partitions" "$logs/drain-site2.out"
check "1. site2's agents logged out by the drain" \
    wait_sql "SELECT count(*) FROM agents WHERE site = 'site2' AND state <> 'logged_out'" 0 10

# --- 2. the stores leave site2 -----------------------------------------------------
sleep 1.5 # the gateway's statistics of the second before
f_drain=$(stat 'FailedCall(C)')
check "1. no call failed until the switchover ($f_drain)" [ "$f_drain" = 0 ]
echo "== 2. switch PostgreSQL over to site1, move Kafka's leaders off site2"
t0=$(now_ms)
sw_rc=0
tests/scripts/pg-switchover.sh >"$logs/switchover.out" 2>&1 || sw_rc=$?
sed 's/^/   | /' "$logs/switchover.out"
check "2. pg-switchover.sh: primary pg-site1 ($(($(now_ms) - t0)) ms)" [ "$sw_rc" = 0 ]
# drainctl moves the leaders (AlterPartitionReassignments + ElectLeaders,
# spoken by kafka_wire.c) as the admin: the operator's login may not alter
# the cluster. Kafka's own view (the Java admin client) is the judge.
# shellcheck disable=SC2086 # the topic list
led_by_2=$(describe $our_topics | grep -c '^partition .* leader=2 ' || true)
rc=0
SIPDRAIN_KAFKA_ADMIN_PROPERTIES="$kc/sipdrain-admin.properties" \
    operator stores --site site2 --move-leaders >"$logs/move-leaders.out" 2>&1 || rc=$?
sed 's/^/   | /' "$logs/move-leaders.out" | grep -v '^   |   moved '
check "2. drainctl stores --site site2 --move-leaders: every leader moved, nothing of ours leads there (exit $rc)" \
    [ "$rc" = 0 ]
check "2. it moved the $led_by_2 partitions broker 2 led of our topics (and __consumer_offsets')" \
    [ "$(grep -c '^  moved .* from broker 2 to [13]$' "$logs/move-leaders.out")" = "$led_by_2" ]
# shellcheck disable=SC2086
layout=$(describe $our_topics)
check "2. Kafka: no partition led by broker 2, every replica set still the three brokers, all in sync" \
    [ "$(grep '^partition ' <<<"$layout" | grep -c ' leader=2 ')/$(grep '^partition ' <<<"$layout" | grep -vc 'replicas=[123],[123],[123] isr=[123],[123],[123]$')" = 0/0 ]
rc=0
operator stores --site site2 >"$logs/stores-site2.out" 2>&1 || rc=$?
check "2. drainctl stores --site site2, the operator's login: nothing of ours leads there (exit $rc)" [ "$rc" = 0 ]
ql=$(describe sipdrain.call.events | sed -n 's/^quorum-leader //p')
check "2. it names the KRaft quorum leader the Java admin names (node $ql)" \
    grep -q "^  KRaft quorum leader: node $ql (rack " "$logs/stores-site2.out"

# --- 3. power-off of site2 ---------------------------------------------------------
topics="sipdrain.drain.commands sipdrain.drain.events sipdrain.edge.control sipdrain.edge.status
    sipdrain.call.events sipdrain.agent.commands sipdrain.agent.events sipdrain.deadletter"
ids() { # every event id in our topics, one per line, sorted
    local t
    for t in $topics; do dump "$t" | grep -o '"id":"[^"]*"' || true; done | sort -u
}
ids >"$logs/ids-before"
echo "== 3. power-off of site2: kill -9 of as-2 orch-2 edge-2a, its Kafka node, its PostgreSQL"
t_kill=$(now_ms)
calls_before=$(q "SELECT count(*) FROM calls")
for n in "${!site_of[@]}"; do
    if [ "${site_of[$n]}" = site2 ]; then
        kill -9 "${sup_of[$n]}" "$(child "$n")" 2>/dev/null || true
    fi
done
kill_stores site2 2
check "3. the gateway was still calling when site2 went" kill -0 "$gw"
sleep 1.5
f_kill=$(stat 'FailedCall(C)')

# --- 4. site1 alone ------------------------------------------------------------------
echo "== 4. site1 alone: an agent logs out and in; edge-1b drained"
# Up to 60 s: the partitions site2's instances had (agent-state's group)
# wait for their session to time out (10 s) and a rebalance first.
command agent-1-99 agent.logout
check "4. agent-1-99 logged out (agent-state as-1, Kafka without site2, the new primary)" \
    wait_sql "SELECT state FROM agents WHERE agent_id = 'agent-1-99'" logged_out 60
login agent-1-99 1099 site1 manual_in
check "4. agent-1-99 logged in again" \
    wait_sql "SELECT state FROM agents WHERE agent_id = 'agent-1-99'" not_ready 30
rc=0
operator drain start --edge edge-1b --sip-timeout 2 --reason after-power-off --wait >"$logs/drain-edge-1b.out" 2>&1 || rc=$?
sed 's/^/   | /' "$logs/drain-edge-1b.out" | grep -v 'progress\|phase=' || true
check "4. a second drain, of edge-1b, completed (exit $rc)" [ "$rc" = 0 ]
check "4. edge-1b drained and held (restarted by its supervisor)" \
    wait_sql "SELECT state || CASE WHEN held THEN ',held' ELSE '' END FROM edges WHERE edge_id = 'edge-1b'" drained,held 30
t_second=$(now_ms)

# --- 5. what was kept --------------------------------------------------------------
echo "== 5. the gateway's last calls, and the events"
gw_rc=0
wait "$gw" || gw_rc=$?
ok=$(stat 'SuccessfulCall(C)')
failed=$(stat 'FailedCall(C)')
echo "   gateway: $calls calls, $ok completed, $failed failed (SIPp exit $gw_rc)"
q "SELECT '   calls at ' || site || ': ' || count(*) FILTER (WHERE created_at < to_timestamp($t_kill / 1000.0))
     || ' before the power-off, ' || count(*) FILTER (WHERE created_at >= to_timestamp($t_kill / 1000.0))
     || ' after; ' || count(*) FILTER (WHERE end_cause IN ('caller_hangup', 'agent_hangup')) || ' completed'
     || ' (' || count(*) FILTER (WHERE agent_id IS NULL) || ' of them handed to the peer site:'
     || ' its edge answers them too)'
   FROM calls GROUP BY site ORDER BY site"
# While PostgreSQL has no primary (the old one stopped, the standby not yet
# promoted: pg-switchover.sh's steps 2-4, a few seconds) no edge can
# reserve an agent: a call that comes then waits for the new primary
# (SIPDRAIN_ROUTE_DB_WAIT, 8 s) instead of being refused.
sw_s=$(( ($(grep -o 'switchover done in [0-9]*' "$logs/switchover.out" | grep -o '[0-9]*$') + 999) / 1000 ))
waited=$(cat "$logs"/edge-*.log | grep -c 'msg="call waits for the database"' || true)
echo "   calls that waited for the new primary during the switchover (${sw_s} s): $waited"
check "5. no call failed during the switchover ($f_kill)" [ "$f_kill" = 0 ]
check "5. none after the power-off ($((failed - f_kill)))" [ "$failed" = "$f_kill" ]
check "5. every call completed ($ok of $calls)" [ "$ok" = "$calls" ]
check "5. calls went on after the power-off ($(($(q "SELECT count(*) FROM calls") - calls_before)) more)" \
    [ "$(q "SELECT count(*) FROM calls WHERE site = 'site1' AND created_at > to_timestamp($t_second / 1000.0)")" -gt 0 ]
ids >"$logs/ids-after"
missing=$(comm -23 "$logs/ids-before" "$logs/ids-after" | wc -l)
echo "   events: $(wc -l <"$logs/ids-before") read before the power-off, $(wc -l <"$logs/ids-after") after it; missing $missing"
check "5. every event read before the power-off is still there" [ "$missing" = 0 ]
check "5. the switchover said each step" grep -q 'switchover done in' "$logs/switchover.out"
echo "   (${calls} calls over $(((t_second - t_calls) / 1000)) s until the second drain ended)"
echo "   supervisors:"
sed 's/^/     /' "$logs/supervisor.log" 2>/dev/null || true

# --- 6. unplanned: site1, now holding the primary, dies without a switchover ---
# site2 powered on and resumed first; then kill -9 of everything in site1.
# Until someone promotes site2's standby nothing can be written: new calls
# wait (SIPDRAIN_ROUTE_DB_WAIT) and, past that, are refused; what site1 had
# committed and not yet streamed is lost.
if [ "${UNPLANNED:-1}" = 1 ]; then
    echo "== 6. site2 powered on and resumed; then site1 (the primary) dies unplanned"
    tests/scripts/kafka-up.sh --cluster >/dev/null 2>>"$logs/kafka-up.log"
    tests/scripts/pg-switchover.sh --rejoin site2 >"$logs/rejoin-site2.out" 2>&1 || true
    check "6. site2's PostgreSQL streams from site1 again" \
        wait_sql_on site2 "select status from pg_stat_wal_receiver" streaming 30
    for s in as-2 orch-2; do
        run "$s" site2 "$([ "$s" = as-2 ] && echo agent-state || echo drain-orchestrator)" \
            SIPDRAIN_INSTANCE_ID="$s" \
            SIPDRAIN_KAFKA_PROPERTIES="$kc/sipdrain-$([ "$s" = as-2 ] && echo agent-state || echo orchestrator).properties" \
            SIPDRAIN_PG_DSN="$(dsn_as "sipdrain_$([ "$s" = as-2 ] && echo agent_state || echo orchestrator)")"
    done
    start_edge edge-2a site2
    isr_full() { [ "$(describe sipdrain.call.events sipdrain.agent.commands sipdrain.drain.commands |
        grep '^partition ' | grep -vc 'isr=[123],[123],[123]$')" = 0 ]; }
    back=0
    for _ in $(seq 1 60); do isr_full && { back=1; break; }; sleep 1; done
    check "6. site2's broker is back in every ISR" [ "$back" = 1 ]
    rc=0
    operator resume --site site2 --wait >"$logs/resume-site2.out" 2>&1 || rc=$?
    check "6. drainctl resume --site site2: its edge active again (exit $rc)" [ "$rc" = 0 ]
    for i in $(seq 1 "$AGENTS"); do login "agent-2-$(printf %02d "$i")" "2$(printf %03d "$i")" site2; done
    check "6. site2's agents logged in again" \
        wait_sql "SELECT count(*) FROM agents WHERE site = 'site2' AND state = 'ready'" "$AGENTS" 60
    check "6. site2's phones registered again at edge-2a" register_phones 2
    calls2=$((RATE * 60))
    free_port gp
    free_port gcp
    sipp "127.0.0.1:$lb_port" -sf bench/sipp/caller.xml -inf "$logs/route.csv" -d "$HOLD_MS" \
        -i 127.0.0.1 -p "$gp" -cp "$gcp" -t u1 -r "$RATE" -m "$calls2" -recv_timeout 150000 \
        -timeout 300s -nostdin -trace_stat -stf "$logs/gateway2.csv" -fd 1 \
        >"$logs/gateway2.out" 2>&1 &
    gw2=$!
    pids+=($gw2)
    t_g2=$(now_ms)
    check "6. calls reach site2 again" wait_sql \
        "SELECT count(*) > 0 FROM calls WHERE site = 'site2' AND state = 'ended' AND created_at > to_timestamp($t_g2 / 1000.0)" t 40
    t_snap=$(now_ms)
    rows_before=$(q "SELECT count(*) FROM calls WHERE created_at < to_timestamp($t_snap / 1000.0)")
    t_kill2=$(now_ms)
    for n in "${!site_of[@]}"; do
        if [ "${site_of[$n]}" = site1 ]; then
            kill -9 "${sup_of[$n]}" "$(child "$n")" 2>/dev/null || true
        fi
    done
    kill_stores site1 1
    echo "   kill -9 of as-1 orch-1 edge-1a edge-1b, Kafka node 1, PostgreSQL pg-site1 (the primary)"
    sleep "$REACT_S" # an operator (or a watchdog) sees it and promotes site2's standby
    fo_rc=0
    tests/scripts/pg-switchover.sh --failover >"$logs/failover.out" 2>&1 || fo_rc=$?
    sed 's/^/   | /' "$logs/failover.out"
    t_up=$(now_ms)
    check "6. site2 promoted (pg-switchover.sh --failover), $((t_up - t_kill2)) ms after site1 died" [ "$fo_rc" = 0 ]
    sleep 12 # a waiting call's SIPDRAIN_ROUTE_DB_WAIT, and the statistics' second
    f_up=$(LOGS_STAT=gateway2 stat 'FailedCall(C)')
    gw2_rc=0
    wait "$gw2" || gw2_rc=$?
    ok2=$(LOGS_STAT=gateway2 stat 'SuccessfulCall(C)')
    failed2=$(LOGS_STAT=gateway2 stat 'FailedCall(C)')
    rows_after=$(q "SELECT count(*) FROM calls WHERE created_at < to_timestamp($t_snap / 1000.0)")
    first_ms=$(q "SELECT round(extract(epoch FROM min(answered_at)) * 1000) FROM calls
        WHERE site = 'site2' AND created_at > to_timestamp($t_kill2 / 1000.0) AND answered_at IS NOT NULL")
    echo "   gateway: $calls2 calls, $ok2 completed, $failed2 failed (SIPp exit $gw2_rc)"
    echo "   site2 answered its first call $(( ${first_ms%.*} - t_kill2 )) ms after site1 died" \
        "(promotion at +$((t_up - t_kill2)) ms)"
    echo "   calls rows made up to $((t_kill2 - t_snap)) ms before the loss: $rows_before on site1 then," \
        "$rows_after on the promoted standby (lost: $((rows_before - rows_after)), committed on site1, not streamed)"
    lost=$((rows_before - rows_after))
    check "6. the promoted standby lacks at most a second of commits (lost $lost calls rows)" \
        [ "$lost" -ge 0 -a "$lost" -le $((RATE + 1)) ]
    check "6. site2 routes calls after the promotion" [ -n "$first_ms" ]
    echo "   calls failed in the outage: $f_up (those in progress at site1 lose their edge - their BYE"
    echo "   meets a dead one - and new ones wait for a primary, SIPDRAIN_ROUTE_DB_WAIT, or are refused)"
    check "6. no call failed once site2 was promoted ($((failed2 - f_up)) after +$((t_up - t_kill2 + 12000)) ms)" \
        [ "$failed2" = "$f_up" ]
    check "6. every other call completed ($ok2 of $((calls2 - f_up)))" [ "$ok2" = $((calls2 - f_up)) ]
fi

if [ "$fail" = 0 ]; then echo "PASS site-power-off"; else echo "FAIL site-power-off (logs: $logs)"; fi
exit "$fail"
