#!/usr/bin/env bash
# tools/demo.sh - the one-command demo (make demo, issue #6): two sites, a
# real SIP load balancer, agents, a steady stream of calls, and the drain of
# site2 with drainctl's live progress, then a report. Exit 0 only if no
# call was lost.
#
#   site1: edge-1a, edge-1b        site2: edge-2a, edge-2b
#   Kamailio (deploy/kamailio/kamailio.cfg) in front of all four: OPTIONS
#   probing, 503 failover. A SIPp gateway calls route point 7000 through it.
#   40 agents (AGENTS = 20 per site) log in through agent-state: timed
#   ACW, untimed ACW, no ACW (auto_in / manual_in), nailed-up and workspace agents; each
#   site's phones are one SIPp (tests/e2e/sipp/phones_uas.xml) registered
#   per DN (phones_register.xml).
#   One site2 agent (agent-2-19, DN 2019) has a phone that never answers a
#   BYE (tests/e2e/sipp/phone_ignore_bye.xml); it stays Not Ready, so it
#   gets no route-point call, only one direct call on edge-2a placed just
#   before the drain and hung up during it: edge-2a sends its BYE again
#   until graceful-shutdown-sip-timeout, and site2's edges stop only then.
#   After WARMUP_S the operator drains site2:
#     drainctl drain start --site site2 --sip-timeout SIP_TIMEOUT_S --wait
#
# Env: RATE (calls/s, 2), HOLD_MS (4000), DURATION_S (40), WARMUP_S (10),
# SIP_TIMEOUT_S (4), SIPDRAIN_BIN_DIR / SIPDRAIN_TEST_BIN_DIR (build/bin,
# build/tests: the binaries to run, e.g. build-asan's), AGENTS (per site,
# 20; 19..999), AGENT_MODES (the work modes dealt out in turn: "acw acw
# acw acw auto_in auto_in auto_in manual_in manual_in manual_in"), DRAIN
# (1; 0 = the same run without the drain, for bench/drain.sh's peer),
# DRAIN_DEADLINE_S (none; the drain's --deadline: calls still up then are
# cut, e.g. those a SIPp caller gave up on without a BYE under overload),
# KEEP=1 (keep the database and logs). Logs: .run/demo/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
RATE=${RATE:-2}
HOLD_MS=${HOLD_MS:-4000}
DURATION_S=${DURATION_S:-40}
WARMUP_S=${WARMUP_S:-10}
SIP_TIMEOUT_S=${SIP_TIMEOUT_S:-4}
AGENTS=${AGENTS:-20}
# the SIP password of every demo DN (sipdrain-passwd below; SIPp's -ap)
PHONE_PASSWORD=sipdrain-demo
bin=${SIPDRAIN_BIN_DIR:-build/bin}
tbin=${SIPDRAIN_TEST_BIN_DIR:-build/tests}
for b in "$bin"/sipdrain-migrate "$bin"/sipdrain-passwd "$bin"/agent-state \
    "$bin"/drain-orchestrator "$bin"/sip-edge "$bin"/drainctl "$bin"/sipdrain-kafka-init \
    "$tbin"/bus_worker; do
    [ -x "$b" ] || { echo "demo: $b missing: run make (or make demo)" >&2; exit 2; }
done
DRAIN=${DRAIN:-1}
read -r -a modes <<<"${AGENT_MODES:-acw acw acw acw auto_in auto_in auto_in manual_in manual_in manual_in}"
for m in "${modes[@]}"; do
    case "$m" in acw | auto_in | manual_in) ;; *)
        echo "demo: AGENT_MODES: '$m' is not a work mode (acw, auto_in, manual_in)" >&2
        exit 2
        ;;
    esac
done
if ! [[ "$AGENTS" =~ ^[0-9]+$ ]] || [ "$AGENTS" -lt 19 ] || [ "$AGENTS" -gt 999 ]; then
    echo "demo: AGENTS must be 19..999 (agents per site; DN 2019 is the BYE-ignoring phone)" >&2
    exit 2
fi
MODULES=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)/kamailio/modules
logs=.run/demo
rm -rf "$logs"
mkdir -p "$logs"
say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
now_ms() { date +%s%3N; }

pids=()
cleanup() {
    local p
    # a second SIGTERM stops an edge at once (the first one drains it)
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 1 30); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -z "${KEEP:-}" ] && [ -n "${dsn:-}" ]; then
        psql "$SIPDRAIN_PG_DSN" -qAt -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# free_port VAR
# shellcheck source=tools/free-port.sh
. tools/free-port.sh

# --- servers, database, topics ----------------------------------------------
say "starting PostgreSQL and Kafka (tests/scripts/stack-up.sh)"
eval "$(tests/scripts/stack-up.sh)"
db=demo_$(date +%s)
prefix="demo.$(date +%s)."
psql "$SIPDRAIN_PG_DSN" -qAt -c "CREATE DATABASE $db" >/dev/null
dsn="${SIPDRAIN_PG_DSN%/*}/$db"
SIPDRAIN_PG_DSN=$dsn "$bin"/sipdrain-migrate --dir schemas/sql >"$logs/migrate.log" 2>&1
SIPDRAIN_PG_DSN=$dsn "$bin"/sipdrain-migrate --dir deploy/sql >>"$logs/migrate.log" 2>&1
# Each program logs in as its own role (migration 0005), as in production;
# the local cluster trusts 127.0.0.1, so LOGIN is all the roles lack here.
for r in sipdrain_edge sipdrain_agent_state sipdrain_orchestrator sipdrain_drainctl sipdrain_passwd; do
    psql "$dsn" -qAt -c "ALTER ROLE $r LOGIN" >/dev/null
done
# dsn_as ROLE: this run's database, logged in as ROLE
dsn_as() { sed -E "s#^postgresql://([^@/]*@)?#postgresql://$1@#" <<<"$dsn"; }
# Every agent phone authenticates (README, Security): the operator's tool
# stores each DN's credentials; the SIPp phones answer challenges with -ap.
for s in 1 2; do seq -f "$s%03g $PHONE_PASSWORD" 1 "$AGENTS"; done |
    SIPDRAIN_PG_DSN=$(dsn_as sipdrain_passwd) "$bin"/sipdrain-passwd import >"$logs/passwd.log"
# Kafka: every program logs in as its own user (kafka-up.sh made them); the
# topics and the ACL table for this run's prefix, as in production.
kc=$SIPDRAIN_KAFKA_CLIENTS
SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-admin.properties SIPDRAIN_TOPIC_PREFIX=$prefix \
    "$bin"/sipdrain-kafka-init >"$logs/kafka-init.log" 2>&1
export SIPDRAIN_PG_DSN=$dsn SIPDRAIN_TOPIC_PREFIX=$prefix SIPDRAIN_LOG_LEVEL=info
# for tests/e2e/migration.sh, which checks a run (KEEP=1 keeps the database)
printf 'demo_dsn=%q\ndemo_prefix=%q\ndemo_brokers=%q\ndemo_kafka_admin=%q\n' "$dsn" "$prefix" \
    "$SIPDRAIN_KAFKA_BROKERS" "$kc/sipdrain-admin.properties" \
    >"$logs/env"

# --- services -------------------------------------------------------------------
say "starting agent-state, two orchestrators, four edges, Kamailio"
SIPDRAIN_INSTANCE_ID=as-1 SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-agent-state.properties \
    SIPDRAIN_PG_DSN=$(dsn_as sipdrain_agent_state) \
    "$bin"/agent-state >"$logs/agent-state.log" 2>&1 &
pids+=($!)
for o in orch-1 orch-2; do
    SIPDRAIN_INSTANCE_ID=$o SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-orchestrator.properties \
        SIPDRAIN_PG_DSN=$(dsn_as sipdrain_orchestrator) \
        "$bin"/drain-orchestrator >"$logs/$o.log" 2>&1 &
    pids+=($!)
done
free_port lb_port
free_port uas1
free_port uas2
declare -A edge_port
: >"$logs/dispatcher.list"
# The edges challenge REGISTERs with MD5 alone: Debian 12's SIPp (the demo's
# phones) fails on a SHA-256 challenge instead of skipping it (README, Security)
for e in edge-1a edge-1b edge-2a edge-2b; do
    free_port p
    edge_port[$e]=$p
    site=site${e:5:1}
    peer=site$((3 - ${e:5:1}))
    SIPDRAIN_EDGE_ID=$e SIPDRAIN_SITE=$site SIPDRAIN_SIP_URL="sip:127.0.0.1:$p" \
    SIPDRAIN_ROUTE_POINTS=7000 SIPDRAIN_GRACEFUL_SHUTDOWN_SIP_TIMEOUT=$SIP_TIMEOUT_S \
    SIPDRAIN_PEER_SITE_URI="sip:127.0.0.1:$lb_port" SIPDRAIN_LOG_LEVEL=info \
    SIPDRAIN_SIP_AUTH_ALGORITHMS=MD5 SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-edge.properties \
    SIPDRAIN_PG_DSN=$(dsn_as sipdrain_edge) \
        "$bin"/sip-edge >"$logs/$e.log" 2>&1 &
    pids+=($!)
    echo "1 sip:127.0.0.1:$p 0 0 site=$site" >>"$logs/dispatcher.list"
    : "$peer"
done
kamailio -f deploy/kamailio/kamailio.cfg -L "$MODULES" -l "udp:127.0.0.1:$lb_port" \
    -A "DISPATCHER_LIST=\"$repo/$logs/dispatcher.list\"" -A "CTL_SOCKET=\"unix:$repo/$logs/kamailio.ctl\"" \
    -m 256 -w "$logs" -DD -E >"$logs/kamailio.log" 2>&1 &
pids+=($!)
for e in edge-1a edge-1b edge-2a edge-2b; do
    for _ in $(seq 1 100); do
        grep -q "partitions assigned" "$logs/$e.log" && break
        sleep 0.2
    done
done

# --- agents and their phones --------------------------------------------------
say "$((2 * AGENTS)) agents log in; their phones register"
{
    for s in 1 2; do
        for i in $(seq 1 "$AGENTS"); do
            a="agent-$s-$(printf %02d "$i")"
            dn="$s$(printf %03d "$i")"
            mode=${modes[$(((i - 1) % ${#modes[@]}))]}
            # the BYE-ignoring phone's agent stays Not Ready: manual_in
            [ "$a" = agent-2-19 ] && mode=manual_in
            acw=null
            [ "$mode" = acw ] && acw=$([ $((i % 4)) = 1 ] && echo null || echo 3)
            workspace=false
            nailed=false
            [ $((i % 5)) = 0 ] && workspace=true
            [ $((i % 7)) = 0 ] && nailed=true
            id=$(cat /proc/sys/kernel/random/uuid)
            printf '%s|{"specversion":"1.0","id":"%s","source":"demo","type":"agent.login","time":"%s","datacontenttype":"application/json","data":{"agent_id":"%s","dn":"%s","site":"site%s","work_mode":"%s","acw_timeout_s":%s,"workspace":%s,"nailed_up":%s}}\n' \
                "$a" "$id" "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$a" "$dn" "$s" "$mode" "$acw" \
                "$workspace" "$nailed"
        done
    done
} >"$logs/logins.txt"
for s in 1 2; do
    uas=$([ "$s" = 1 ] && echo "$uas1" || echo "$uas2")
    free_port cp
    sipp -sf tests/e2e/sipp/phones_uas.xml -i 127.0.0.1 -p "$uas" -cp "$cp" -t u1 -m 100000 \
        -key sdp_token "phones-site$s" \
        -timeout $((DURATION_S + 120))s -nostdin -trace_stat -stf "$logs/phones-site$s.csv" \
        >"$logs/phones-site$s.out" 2>&1 &
    pids+=($!)
    # DN 2019's phone is the one that ignores BYE (below)
    { echo SEQUENTIAL; seq -f "$s%03g" 1 "$AGENTS" | grep -vx 2019; } >"$logs/dns-site$s.csv"
    free_port rp
    free_port rcp
    sipp "127.0.0.1:${edge_port[edge-${s}a]}" -sf tests/e2e/sipp/phones_register.xml \
        -inf "$logs/dns-site$s.csv" -key contact_port "$uas" -i 127.0.0.1 -p "$rp" -cp "$rcp" \
        -t u1 -m $(($(wc -l <"$logs/dns-site$s.csv") - 1)) -r 200 -ap "$PHONE_PASSWORD" \
        -timeout 60s -timeout_error \
        -nostdin -default_behaviors all,-bye \
        >"$logs/register-site$s.out" 2>&1 ||
        { echo "demo: the phones of site$s did not register" >&2; exit 1; }
done
# The phone of agent-2-19 answers one call and never answers its BYE: it
# succeeds (exit 0) once it has received BYE_COUNT of them, none answered.
BYE_COUNT=3
free_port ibp
free_port ibcp
sipp "127.0.0.1:${edge_port[edge-2a]}" -sf tests/e2e/sipp/phone_ignore_bye.xml \
    -oocsf tests/e2e/sipp/phone_ignore_bye.xml -m 1 -i 127.0.0.1 -p "$ibp" -cp "$ibcp" -t u1 \
    -timeout $((DURATION_S + 120))s -timeout_error -nostdin -s 2019 -ap "$PHONE_PASSWORD" \
    -nr -key min_byes "$BYE_COUNT" \
    -key sdp_token phone-2019 -key sdp_expect s=gateway-2019 \
    -trace_logs -log_file "$logs/phone-2019.log" -trace_err -error_file "$logs/phone-2019.err" \
    >"$logs/phone-2019.out" 2>&1 &
bye_phone=$!
pids+=($bye_phone)
for _ in $(seq 1 100); do
    grep -q "registered at" "$logs/phone-2019.log" 2>/dev/null && break
    sleep 0.1
done
grep -q "registered at" "$logs/phone-2019.log" 2>/dev/null ||
    { echo "demo: the phone of DN 2019 did not register ($logs/phone-2019.*)" >&2; exit 1; }
# The agents' desktops: one Kafka producer (Kafka's console producer, one
# JVM) fed through a FIFO with agent commands, "key|event" per line.
mkfifo "$logs/desk.fifo"
java -cp "$(cat "${SIPDRAIN_CACHE:-$HOME/.cache/sipdrain}/kafka-3.9.1/classpath")" \
    kafka.tools.ConsoleProducer --bootstrap-server "$SIPDRAIN_KAFKA_BROKERS" \
    --producer.config "$kc/sipdrain-desktop.java.properties" \
    --topic "${prefix}sipdrain.agent.commands" --property parse.key=true \
    --property key.separator='|' <"$logs/desk.fifo" >"$logs/producer.log" 2>&1 &
pids+=($!)
exec 3>"$logs/desk.fifo"
cat "$logs/logins.txt" >&3
# command AGENT TYPE: one agent command on the desk producer
command() {
    printf '%s|{"specversion":"1.0","id":"%s","source":"demo/desk","type":"%s","time":"%s","datacontenttype":"application/json","data":{"agent_id":"%s"}}\n' \
        "$1" "$(cat /proc/sys/kernel/random/uuid)" "$2" "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$1" >&3
}
# Agents who wrap up by hand: a manual_in agent presses Ready after a call,
# an agent in untimed ACW presses "ACW complete" (a draining site refuses
# Ready: agent-state answers EventError graceful_shutdown, as it should).
desk() {
    local end=$(( $(date +%s) + DURATION_S + 90 )) a s
    while [ "$(date +%s)" -lt "$end" ]; do
        psql "$dsn" -qAt -F ' ' -c "SELECT agent_id, state FROM agents WHERE call_id IS NULL
            AND agent_id <> 'agent-2-19' AND (state = 'not_ready' OR (state = 'acw' AND acw_until IS NULL))" 2>/dev/null |
            while read -r a s; do
                [ "$s" = not_ready ] && command "$a" agent.ready
                [ "$s" = acw ] && command "$a" agent.acw_complete
            done
        sleep 1
    done
}
for _ in $(seq 1 300); do
    [ "$(psql "$dsn" -qAt -c "SELECT count(*) FROM agents WHERE state <> 'logged_out'")" = $((2 * AGENTS)) ] && break
    sleep 0.2
done
echo "  agents logged in: $(psql "$dsn" -qAt -c "SELECT count(*) FROM agents WHERE state <> 'logged_out'")" >&2
desk &
pids+=($!)

# --- calls and the drain -------------------------------------------------------------
calls=$((RATE * DURATION_S))
say "a gateway calls route point 7000 through Kamailio: $RATE calls/s of ${HOLD_MS} ms, $calls calls"
echo -e "SEQUENTIAL\n7000" >"$logs/route.csv"
free_port gp
free_port gcp
sipp "127.0.0.1:$lb_port" -sf bench/sipp/caller.xml -inf "$logs/route.csv" -d "$HOLD_MS" \
    -i 127.0.0.1 -p "$gp" -cp "$gcp" -t u1 -r "$RATE" -m "$calls" -recv_timeout 150000 \
    -timeout $((DURATION_S + 200))s -nostdin -trace_stat -stf "$logs/gateway.csv" -fd 1 \
    >"$logs/gateway.out" 2>&1 &
gw=$!
pids+=($gw)
sleep $((WARMUP_S - 1))
say "a direct call to DN 2019 on edge-2a (its phone never answers BYE)"
free_port dp
free_port dcp
sipp "127.0.0.1:${edge_port[edge-2a]}" -sf tests/e2e/sipp/gateway_call.xml -m 1 -s 2019 \
    -key hold_ms 2500 -key sdp_token gateway-2019 -key sdp_expect s=phone-2019 \
    -i 127.0.0.1 -p "$dp" -cp "$dcp" -t u1 -timeout 30s -timeout_error -nostdin \
    -trace_err -error_file "$logs/direct-call.err" >"$logs/direct-call.out" 2>&1 &
direct=$!
pids+=($direct)
sleep 1
drain_t0=$(now_ms)
set +e
if [ "$DRAIN" = 1 ]; then
    say "the operator drains site2"
    SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-operator.properties SIPDRAIN_PG_DSN=$(dsn_as sipdrain_drainctl) \
        "$bin"/drainctl drain start --site site2 \
        --sip-timeout "$SIP_TIMEOUT_S" ${DRAIN_DEADLINE_S:+--deadline "$DRAIN_DEADLINE_S"} \
        --reason "demo" --wait
    drain_rc=$?
else
    say "no drain (DRAIN=0)"
    drain_rc=0
fi
drain_s=$(( ($(now_ms) - drain_t0) / 1000 ))
say "the calls go on at site1 until the gateway is done"
wait "$gw"
gw_rc=$?
wait "$direct"
direct_rc=$?
# The phone is done once it has its BYEs; the edges stopped after the BYE
# timeout, so a few seconds more would not bring it another one.
for _ in $(seq 1 50); do
    kill -0 "$bye_phone" 2>/dev/null || break
    sleep 0.1
done
kill "$bye_phone" 2>/dev/null || true
wait "$bye_phone"
bye_phone_rc=$?
set -e
printf 'demo_sip_timeout_s=%q\ndemo_direct_rc=%q\ndemo_bye_phone_rc=%q\ndemo_bye_count=%q\n' \
    "$SIP_TIMEOUT_S" "$direct_rc" "$bye_phone_rc" "$BYE_COUNT" >>"$logs/env"

# --- report ---------------------------------------------------------------------------
stat() { # column of the last line of the gateway's -trace_stat file
    awk -F';' -v want="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == want) c = i; next }
        NF > 10 { v = $c } END { print v + 0 }' "$logs/gateway.csv"
}
ok=$(stat 'SuccessfulCall(C)')
failed=$(stat 'FailedCall(C)')
unexpected=$(stat 'FailedUnexpectedMessage(C)')
timeouts=$(($(stat 'FailedTimeoutOnRecv(C)') + $(stat 'FailedMaxUDPRetrans(C)')))
retrans=$(stat 'Retransmissions(C)')
printf 'demo_calls=%q\ndemo_ok=%q\ndemo_failed=%q\ndemo_unexpected=%q\ndemo_timeouts=%q\ndemo_retrans=%q\ndemo_drain_rc=%q\n' \
    "$calls" "$ok" "$failed" "$unexpected" "$timeouts" "$retrans" "$drain_rc" >>"$logs/env"
q() { psql "$dsn" -qAt -c "$1"; }
say "report"
echo "gateway: $calls calls placed, $ok completed, $failed failed (SIPp exit $gw_rc)"
echo "  failed: $unexpected by an error response, $timeouts by a timeout; retransmissions: $retrans"
echo "calls per site (calls table):"
q "SELECT '  ' || site || ': ' || count(*) || ' offered, '
     || count(*) FILTER (WHERE end_cause IN ('caller_hangup', 'agent_hangup')) || ' completed, '
     || count(*) FILTER (WHERE end_cause IN ('no_answer', 'busy', 'failed')) || ' failed, '
     || count(*) FILTER (WHERE end_cause = 'drain_deadline') || ' cut, '
     || count(*) FILTER (WHERE end_cause = 'cancelled') || ' cancelled by the caller, '
     || count(*) FILTER (WHERE ended_at IS NULL) || ' still on'
   FROM calls GROUP BY site ORDER BY site"
# The queue at route point 7000 (issue #16), from the edges' own events:
# call.queued, and call.dequeued with how long each call waited.
SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-admin.properties \
    "$tbin"/bus_worker dump "$SIPDRAIN_KAFKA_BROKERS" "${prefix}sipdrain.call.events" 2>/dev/null \
    >"$logs/call-events.jsonl" || true
queued=$(grep -c '"type":"call.queued"' "$logs/call-events.jsonl" || true)
grep '"type":"call.dequeued"' "$logs/call-events.jsonl" |
    sed -n 's/.*"reason":"\([a-z_]*\)".*"wait_ms":\([0-9]*\).*/\1 \2/p; s/.*"wait_ms":\([0-9]*\).*"reason":"\([a-z_]*\)".*/\2 \1/p' \
    >"$logs/waits.txt" || true
echo "queue at route point 7000 (call.queued / call.dequeued events):"
echo "  calls that waited: ${queued:-0} (182 Queued)"
awk '{ n[$1]++ } END { printf "  left the queue: offered to an agent %d, sent to the peer site %d, timed out %d, cancelled %d\n",
        n["offered"], n["peer_site"], n["queue_timeout"], n["cancelled"] }' "$logs/waits.txt"
sort -n -k2 "$logs/waits.txt" | awk '{ w[NR] = $2 } END {
        if (NR == 0) { print "  waits: none"; exit }
        p50 = w[int((NR - 1) * 0.50) + 1]; p99 = w[int((NR - 1) * 0.99) + 1]
        printf "  waits (ms): p50 %d, p99 %d, max %d over %d calls\n", p50, p99, w[NR], NR }'
echo "the direct call to DN 2019 (its phone never answers BYE): SIPp exit $direct_rc"
byes=$(grep -c "BYE #" "$logs/phone-2019.log" 2>/dev/null || true)
echo "  BYEs the phone received, none answered: ${byes:-0} (SIPp exit $bye_phone_rc)"
echo "calls begun on site2 before the drain, all ended normally:"
q "SELECT '  ' || count(*) || ' calls, ' || count(*) FILTER (WHERE end_cause NOT IN
     ('caller_hangup', 'agent_hangup')) || ' ended otherwise' FROM calls
   WHERE site = 'site2' AND answered_at IS NOT NULL"
echo "agents:"
q "SELECT '  logged out by the drain: ' || count(*) FROM drain_agents"
# agent-state's own word for it: its EventAgentLogout events and their reason
SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-admin.properties \
    "$tbin"/bus_worker dump "$SIPDRAIN_KAFKA_BROKERS" "${prefix}sipdrain.agent.events" 2>/dev/null |
    grep '"type":"EventAgentLogout"' | grep -o '"ReasonCode":"[^"]*"' | cut -d'"' -f4 | sort | uniq -c |
    awk '{ printf "  EventAgentLogout with reason %s: %d\n", $2, $1 }' || true
q "SELECT '  now at site1 (workspace agents migrated): ' || count(*) FROM agents
   WHERE agent_id LIKE 'agent-2-%' AND site = 'site1' AND state <> 'logged_out'"
q "SELECT '  still logged in at site2: ' || count(*) FROM agents WHERE site = 'site2'
   AND state <> 'logged_out'"
echo "edges:"
q "SELECT '  ' || edge_id || ': ' || state || ', BYEs sent again in new transactions '
     || byes_retransmitted FROM edges ORDER BY edge_id"
for e in edge-2a edge-2b; do
    awk -v e="$e" '/msg="edge state changed"/ && /to=bye_wait/ { split($1, t, "T"); b = t[2] }
        /msg="edge state changed"/ && /from=bye_wait/ { split($1, t, "T"); d = t[2] }
        /msg="stopped"/ { split($1, t, "T"); s = t[2]; x = $0; sub(/.*exit=/, "", x) }
        END { printf "  %s: BYE wait %s .. %s, stopped %s, exit %s\n", e, b, d, s, x }' "$logs/$e.log"
done
echo "drain (drains row):"
q "SELECT '  ' || coalesce(result, phase) || ' in ' || $drain_s || ' s; phases (ms): ' || phase_ms::text
   FROM drains"
if [ "$failed" = 0 ] && [ "$ok" = "$calls" ] && [ "$drain_rc" = 0 ] && [ "$direct_rc" = 0 ]; then
    say "no call lost"
    exit 0
fi
say "calls were lost or the drain did not complete (drainctl exit $drain_rc); logs in $logs"
exit 1
