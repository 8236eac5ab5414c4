#!/usr/bin/env bash
# bench/edge.sh - sip-edge against Kamailio 5.6 (Debian) on the same machine,
# four call-setup systems side by side in one run (issue #17; #4 before):
#
#   call     SIPp caller -> X -> SIPp UAS: INVITE (SDP) / 200 / ACK, HOLD_MS,
#            BYE / 200 (bench/sipp/caller.xml, bench/sipp/uas.xml)
#            X = sip-edge, "edge" (B2BUA: per call an agent reserved in
#                PostgreSQL, the calls row and call.offered / established /
#                ended through the outbox to Kafka)
#              = Kamailio + PostgreSQL, "kpg", the SAME-WORK PEER
#                (bench/kamailio/router.cfg, KPG_CHILDREN workers, sqlops +
#                db_postgres on the project's own schema, a database of its
#                own created like the edge's: the migrations, the same agents
#                and registrations): the initial INVITE's one statement
#                reserves the called DN's agent (logged in, free, phone
#                registered) and inserts the calls row, returning the phone's
#                contact (none: 480); the 200 marks the row established; the
#                BYE ends it and frees the agent in one statement;
#                record-route, relay to the contact (a proxy: one dialog end
#                to end); no events
#              = Kamailio as a plain stateful proxy, "kam", the
#                NO-PERSISTENCE LIMIT (bench/kamailio/proxy.cfg: tm + sl + rr,
#                record_route() + t_relay() to the UAS, no database)
#              = two sip-edges behind the load balancer, "edge2", MORE CORES
#                FOR ONE SITE (issue #17, point 4): two sip-edge processes of
#                site1 on this host (SIPDRAIN_EDGE_ID bench-1 and bench-2,
#                two loopback ports, one database made as the edge's, the
#                same topics) behind Kamailio running the project's own
#                deploy/kamailio/kamailio.cfg unchanged, given its -A
#                defines (DISPATCHER_LIST: a list of the two edges written
#                into the scratch dir, what deploy/kamailio/run.sh keeps
#                from DNS in a container; CTL_SOCKET in the scratch dir;
#                CHILDREN = LB_CHILDREN): round robin, OPTIONS probes each
#                second, record_route(); the caller sends to the balancer,
#                the UAS plays the phones as for the edge. Call ladder only;
#                EDGE2=0 leaves it out
#   reject   SIPp caller -> X answering 503 + Retry-After + Reason, ACK
#            (bench/sipp/reject.xml: tests/e2e/sipp/invite_refused_503.xml's
#            checks, INVITE retransmitted)
#            X = sip-edge in drain mode (edge.drain of the site on
#                sipdrain.edge.control; no database on this path)
#              = Kamailio as a stateless rejector (bench/kamailio/reject.cfg:
#                sl_send_reply 503 with the same headers)
#
# Measure: the highest offered rate with < 0.1 % failed calls. A search is
# a ladder on one fresh instance (new database, topics and edge; a new
# Kamailio, for kpg with a new database): STEP_S seconds of calls at a fixed
# rate (SIPp -r, -rp 1000, -m rate*STEP_S), the next step FACTOR times
# faster, until a step fails;
# the result is the highest passing step. A step fails when
#   - SIPp counts failed calls >= 0.1 % of the step's calls (a wrong or
#     missing answer within RECV_TIMEOUT_MS, e.g. 486/480 from the edge,
#     an INVITE lost in a full socket buffer and never answered); the
#     caller is stopped as soon as that is certain;
#   - retransmissions (SIPp's) reach RETRANS_MAX_PCT % of the step's calls
#     ("retransmissions explode": answers later than T1 = 500 ms);
#   - SIPp did not get the calls out on schedule (created later than
#     STEP_S + 1.5 s: the generator itself was starved);
#   - answers did not keep pace ("falling_behind"): the median INVITE ->
#     final answer of the step's last quarter of calls (by INVITE sent) is
#     more than KEEPUP_MS above that of its first quarter. A system offered
#     more than it sustains queues the excess (the edge in its bus thread,
#     Kamailio in its socket buffer), and a queue growing by less than
#     RECV_TIMEOUT_MS over a STEP_S step fails no call: without this check a
#     5 s step "passed" at up to ~2x the sustainable rate, and the edge's
#     deep queue made its max the most inflated (sessions before 2026-12-07
#     reported such maxima); a sustained rate keeps its queue stationary;
#   - call runs on sip-edge only: its database and Kafka work (calls rows
#     ended, outbox empty) was not done LAG_MAX_MS after the last call: the
#     edge was falling behind, which a longer step would turn into failures
#     (its bus thread routes the next INVITE only after the earlier writes).
#     (kpg does its statements within the SIP transactions: nothing lags.)
# No step follows a failed one on the same instance (a collapsed edge or
# proxy would spoil it); a ladder whose very first step fails starts again,
# lower, on a fresh instance ("|" in the ladder). A warm-up ladder per
# (system, test) first (steps of STEP_S/2 s, doubling from a low rate, not
# reported) finds where the measured ladders start: 0.7 x its result, in
# round r FACTOR^((r-1)/REPEAT) higher, so the rounds sample different
# rungs. Then REPEAT rounds, each in the order edge call, (edge at 0.8 x,
# below), edge2 call, kpg call, kam call, edge reject, kam reject, so drift
# on a shared machine hits all; medians and spreads via summary().
#
# Latency: INVITE -> final answer (200, or the 503 of a rejection) of every
# call, from SIPp's -trace_rtt (rtd "setup" / "reject"): exact p50 and p99
# (nearest rank) per step, of the calls that got their answer. Coarse:
# SIPp writes whole ms, and on the machine this was written on its times
# came in steps of 4 ms (0, 4, 8, ...; the kernel's tick is 4 ms there),
# while SIPp calling the SIPp UAS directly measured 0 for every call. Fine
# for a 50 ms goal, not for telling sub-millisecond answers apart.
# After each round's edge call ladder, one step on a fresh edge at
# round(0.8 x that ladder's max rate): its p99 is the latency goal's.
#
# The call setup of edge, edge2 and kpg, and how this script stands in for
# agent-state:
#   AGENTS agents of site1, all ready, DNs 100001.., each registered with a
#   contact at the one SIPp UAS; the caller takes the called DN from an
#   -inf file (SEQUENTIAL), i.e. each call goes to an agent's own DN (not
#   route point 7000: that picks the longest-idle agent, and agent-state,
#   which frees agents after call.ended, does not run here); edge2's two
#   edges route with the same registrations (a call to a DN takes the
#   phone's contact whichever edge the phone registered with). The edge sets
#   agents.call_id on each call; this script frees agents instead of
#   agent-state: a bounded loop (every 200 ms) clears call_id of agents whose
#   call has ended, and all are cleared between steps (kpg's BYE frees its
#   agent itself; all are cleared between its steps too). With AGENTS >= the
#   calls of a step no DN is called twice in a step anyway.
#
# CPU per call at the highest passing step, from /proc/PID/stat (utime +
# stime) before and after the step: the edge process (both threads, incl.
# librdkafka; for edge2 the balancer - Kamailio main + children, also
# reported alone - plus both edge processes, and the SIP threads of both
# summed), the PostgreSQL backends of its database (edge, edge2 and kpg; not
# this script's own psql sessions, named bench-*: so Kamailio is started
# without PGAPPNAME, which libpq would take as its application_name),
# Kamailio (main + all children); "kafka" = the broker (shared, so also
# whatever else uses it; only the edges' count, the peers write no
# events), "caller" = the SIPp caller in % of one
# core (one thread: near 100 % it, not X, sets the rate), "other" = the
# CPU of every other user-space process (not X, its PostgreSQL backends,
# Kafka or the SIPps; kernel threads left out) in % of one core: another
# job on the machine, noise.
#
# Priority: the edge's SIP thread runs at SIPDRAIN_SIP_NICE, -10 by
# default where allowed (this script runs as root: allowed), so every
# Kamailio here runs at the same nice (nice -n SIP_NICE: all its processes
# handle SIP), and neither side gets more of the machine by priority alone;
# PostgreSQL, Kafka, the SIPps and the edge's other threads stay at 0.
# SIP_NICE=0 runs everything at normal priority.
#
# Kamailio is started with -x tlsf -X tlsf (its TLSF allocator): with
# Debian's default allocator (qm) its stateful proxying cost ~3.5x the CPU
# per call on this machine (~470 vs ~130 us at 3,000 calls/s), which would
# flatter the edge. edge2's balancer gets the same (deploy/kamailio/run.sh
# starts it with the default), so its cost is comparable with kam's.
# Goals (issue #17), printed beside the ratios:
#   - call setup rate: edge >= 1.25 x the same-work peer (kpg);
#   - CPU per call: edge + its PostgreSQL + Kafka <= 0.8 x kpg's Kamailio +
#     its PostgreSQL;
#   - INVITE -> final answer p99 <= 50 ms for the edge at 0.8 x its own max
#     rate;
#   - drain rejections: edge CPU per rejection <= Kamailio's stateless 503
#     (kamailio/edge >= 1.0), not only the rate (edge/kamailio, #4: >= 0.5).
# The stateful proxy's figures stay as the limit without persistence.
# edge2 has no goal: its line in the summary gives its rate, its CPU per
# call (LB + edges + PostgreSQL + Kafka), its p99 and its rate against the
# same round's one edge, with a line saying why: on a 2-core machine the
# whole machine (SIPps, PostgreSQL, Kafka, the LB) is the limit, so a
# second edge adds the balancer's cost and little rate; with more cores
# each edge process brings its own SIP thread. It prints numbers; it is a
# benchmark, not a test.
#
# Env: REPEAT (3), STEP_S (5), FACTOR (1.2), HOLD_MS (100), AGENTS (10000),
# RECV_TIMEOUT_MS (5000), LAG_MAX_MS (500), RETRANS_MAX_PCT (10), KEEPUP_MS (100),
# KAMAILIO_SHM_MB (4096), KAMAILIO_CHILDREN (2: kam), KPG_CHILDREN (8: kpg),
# LB_CHILDREN (2: edge2's balancer, as deploy/kamailio/run.sh), SIP_NICE
# (-10: the edge's SIP thread and every Kamailio, above), EDGE2 (1;
# 0: no edge2 ladders), MAX_STEPS (9), CALL_HISTORY (100000 ended calls in
# each database), KEEP (keep databases and topics), EDGE_BIN (build/bin/sip-edge:
# another build of the edge, e.g. an older commit's, for a before/after;
# edge2's edges too).
# Every step's details: .run/bench-edge-steps.log; logs: .run/bench-edge/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC1091 # followed with shellcheck -x
. bench/lib.sh
REPEAT=${REPEAT:-3}
STEP_S=${STEP_S:-5}
FACTOR=${FACTOR:-1.2}
HOLD_MS=${HOLD_MS:-100}
AGENTS=${AGENTS:-10000}
RECV_TIMEOUT_MS=${RECV_TIMEOUT_MS:-5000}
LAG_MAX_MS=${LAG_MAX_MS:-500}
RETRANS_MAX_PCT=${RETRANS_MAX_PCT:-10}
KEEPUP_MS=${KEEPUP_MS:-100}
KAMAILIO_SHM_MB=${KAMAILIO_SHM_MB:-4096}
KAMAILIO_CHILDREN=${KAMAILIO_CHILDREN:-2}
LB_CHILDREN=${LB_CHILDREN:-2}
EDGE2=${EDGE2:-1}
KPG_CHILDREN=${KPG_CHILDREN:-8}
CALL_HISTORY=${CALL_HISTORY:-100000}
MAX_STEPS=${MAX_STEPS:-9}
SIP_NICE=${SIP_NICE:--10}
KAMAILIO_MODULES=/usr/lib/x86_64-linux-gnu/kamailio/modules
worker=build/tests/bus_worker
EDGE_BIN=${EDGE_BIN:-build/bin/sip-edge}
# the SIP thread is the edge's main thread, named as its file (15 bytes at most)
sip_comm=$(basename "$EDGE_BIN" | cut -c1-15)
for b in "$EDGE_BIN" build/bin/sipdrain-migrate "$worker"; do
    [ -x "$b" ] || { echo "bench: $b missing: run make" >&2; exit 1; }
done
for c in sipp kamailio java; do
    command -v "$c" >/dev/null || { echo "bench: $c missing: run tools/deps.sh" >&2; exit 1; }
done
[ -d "$KAMAILIO_MODULES" ] || { echo "bench: $KAMAILIO_MODULES missing" >&2; exit 1; }
[ -f "$KAMAILIO_MODULES/db_postgres.so" ] ||
    { echo "bench: $KAMAILIO_MODULES/db_postgres.so missing: apt-get install kamailio-postgres-modules" >&2; exit 1; }
eval "$(tests/scripts/stack-up.sh)"
# the topics an interrupted run left (each instance deletes its own)
tests/scripts/kafka-delete-topics.sh bench. >/dev/null 2>&1 || true
# Kafka logins (kafka-up.sh): this script's tools are the admin; each
# program started below logs in as its own user.
kc=$SIPDRAIN_KAFKA_CLIENTS
export SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-admin.properties
export PGAPPNAME=bench-edge # this script's own sessions, left out of the edge's PostgreSQL CPU
psql_admin() { psql "$SIPDRAIN_PG_DSN" -v ON_ERROR_STOP=1 -qAt "$@"; }
logs=.run/bench-edge
rm -rf "$logs"
mkdir -p "$logs"
# SIPp wants its open calls (-l) below the open-file limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
steplog=.run/bench-edge-steps.log
: >"$steplog"
scratch=$(mktemp -d)
hz=$(getconf CLK_TCK)
# kafka_pid: the broker's, read again before every step (a stack restarted
# by another job meanwhile would leave a dead pid and 0 CPU)
kafka_pid=0
# Never leave a server or a generator behind, whatever happens to this script
# (they are all children of this shell; Kamailio's main process ends its own).
cleanup() {
    [ -s "$scratch/caller.pid" ] && kill "$(cat "$scratch/caller.pid")" 2>/dev/null
    jobs -p | xargs -r kill 2>/dev/null || true
    sleep 0.3
    jobs -p | xargs -r kill -9 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT

# --- helpers ------------------------------------------------------------

now_ms() { date +%s%3N; }

# is_edge SYS: a system of sip-edges (edge, edge2): agents freed by this
# script, the lag check, Kafka's CPU counted
is_edge() { case $1 in edge | edge2) return 0 ;; esac; return 1; }

sys_port='' uas_port='' uas_cp='' caller_port='' caller_cp='' probe_port='' probe_cp='' edge_port='' # set by free_port
# free_port VAR
# shellcheck source=tools/free-port.sh
. tools/free-port.sh

# ticks PID... -> utime + stime of those processes (clock ticks), 0 if gone
ticks() {
    local p s=0 t
    for p in "$@"; do
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || t=0
        s=$((s + ${t:-0}))
    done
    echo "$s"
}

# thread_ticks PID COMM -> utime + stime of PID's threads named COMM (the
# edge's SIP thread is its main thread, "sip-edge"; the bus thread is
# "edge-bus", librdkafka's "rdk:...")
thread_ticks() {
    local t s=0 v
    for t in /proc/"$1"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] || continue
        v=$(sed 's/.*) //' "$t/stat" 2>/dev/null | awk '{ print $12 + $13 }') || v=0
        s=$((s + ${v:-0}))
    done
    echo "$s"
}

# proc_ticks FILE: "pid ticks" of every user-space process (kernel threads,
# which also carry loopback UDP work, left out) into FILE
proc_ticks() {
    cat /proc/[0-9]*/stat 2>/dev/null |
        awk '{ pid = $1; sub(/^.*\) /, ""); if (pid != 2 && $2 != 2) print pid, $12 + $13 }' >"$1"
}

# other_ticks BEFORE AFTER PID... -> CPU ticks between the two snapshots of
# the processes not listed (a process that ended in between is missed)
other_ticks() {
    local before=$1 after=$2
    shift 2
    awk -v mine=" $* " '
        FILENAME == ARGV[1] { t0[$1] = $2; next }
        index(mine, " " $1 " ") == 0 { s += $2 - ($1 in t0 ? t0[$1] : 0) }
        END { print s + 0 }' "$before" "$after"
}

# sip_ticks PID... -> utime + stime of those edges' SIP threads (summed)
sip_ticks() {
    local p s=0
    for p in "$@"; do s=$((s + $(thread_ticks "$p" "$sip_comm"))); done
    echo "$s"
}

udp_rcvbuf_errors() { awk '/^Udp:/ { n++; if (n == 2) print $6 }' /proc/net/snmp; }

# pg_pids DSN [all] -> the backends of that database, this script's sessions
# excepted unless "all"
pg_pids() {
    psql "$1" -qAt -c "SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                         AND ('${2:-}' = 'all' OR coalesce(application_name, '') NOT LIKE 'bench%')" \
        2>/dev/null || true
}

# sipp_stat FILE COLUMN... -> the values of those columns (by header name)
# in the last complete line of a SIPp -trace_stat file; times in ms.
sipp_stat() {
    local f=$1
    shift
    awk -F';' -v want="$*" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        NF > 60 { last = $0 }
        END {
            n = split(want, w, " "); split(last, v, ";"); out = ""
            for (k = 1; k <= n; k++) {
                x = (w[k] in col) ? v[col[w[k]]] : ""
                if (x ~ /^[0-9]+:[0-9]+:[0-9]+:[0-9]+$/) { split(x, t, ":"); x = sprintf("%.1f", t[1] * 3600000 + t[2] * 60000 + t[3] * 1000 + t[4] / 1000) }
                if (x == "") x = 0
                out = out (k > 1 ? " " : "") x
            }
            print out
        }' "$f" 2>/dev/null || echo 0
}

# created_by FILE N -> seconds from SIPp's start to the first stat line that
# shows N calls created (resolution: the 1 s of -fd 1); 999 if never
created_by() {
    awk -F';' -v n="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        NF > 60 && $col["TotalCallCreated"] + 0 >= n {
            split($col["StartTime"], a, "\t"); split($col["CurrentTime"], b, "\t")
            printf "%.1f\n", b[3] - a[3]; found = 1; exit
        }
        END { if (!found) print 999 }' "$1"
}

# sipp_probe PORT SCENARIO -> 0 if one request got the scenario's answer
sipp_probe() {
    sipp "127.0.0.1:$1" -sf "tests/e2e/sipp/$2.xml" -m 1 -s 100001 -i 127.0.0.1 \
        -p "$probe_port" -cp "$probe_cp" -t u1 -timeout 2s -timeout_error -nostdin \
        -default_behaviors all,-bye >/dev/null 2>&1
}

# stop PID [SIGNALS]: signals in turn (1 s apart at most), then SIGKILL; waits
stop() {
    local pid=$1 sig
    shift
    for sig in "${@:-TERM}"; do
        kill -"$sig" "$pid" 2>/dev/null || break
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

# --- the systems --------------------------------------------------------
# *_up set: sys_port (where the caller sends), sys_pids (for CPU), sys_pid
# (to stop), and for the edges dsn / db, sip_pids (the sip-edge processes,
# for their SIP threads' CPU), for edge2 lb_pids (the load balancer's
# processes, their share of sys_pids); instance_up empties sip_pids and
# lb_pids first.

# db_up SYS MODE: a fresh database (db, dsn) for one instance, the same for
# the edges and kpg: the project's migrations (sipdrain-migrate), the
# programs' roles able to log in, site1 with AGENTS ready agents, each
# registered with a contact at the SIPp UAS ($uas_port).
db_up() {
    local id
    id=$(date +%s%N | tail -c 9)
    db="bench_${1}_${2}_$id"
    psql_admin -c "CREATE DATABASE $db" >/dev/null
    dsn="${SIPDRAIN_PG_DSN%/*}/$db"
    SIPDRAIN_PG_DSN=$dsn SIPDRAIN_LOG_LEVEL=warn build/bin/sipdrain-migrate >/dev/null
    pg_login_roles "$dsn"
    psql "$dsn" -v ON_ERROR_STOP=1 -qAt >/dev/null <<SQL
INSERT INTO sites (site_id, peer) VALUES ('site1', NULL);
INSERT INTO agents (agent_id, dn, site, state, ready_since)
  SELECT 'b' || g, (100000 + g)::text, 'site1', 'ready', now() - g * interval '1 ms'
  FROM generate_series(1, $AGENTS) g;
INSERT INTO registrations (dn, contact, edge_id, expires_at)
  SELECT (100000 + g)::text, 'sip:' || (100000 + g) || '@127.0.0.1:$uas_port', 'bench-1',
         now() + interval '1 day'
  FROM generate_series(1, $AGENTS) g;
-- The calls of earlier days (CALL_HISTORY rows, ended), analyzed: what a
-- site's database holds. An empty calls table, analyzed or not, makes the
-- planner's prepared (generic) plans scan it sequentially - measured: the
-- edge's batched calls updates read 2.2 million rows for 9,000 calls in one
-- step, and (issue #4) an ANALYZE of the empty table 8.6 million for
-- 2,400 - a cost of a fresh database, not of the edge: in production
-- autovacuum analyzes calls as it grows, and the plans follow.
INSERT INTO calls (call_id, edge_id, site, agent_id, direction, state, created_at, answered_at,
                   ended_at, end_cause)
  SELECT 'history-' || g, 'bench-0', 'site1', 'b' || (1 + g % $AGENTS), 'inbound', 'ended',
         now() - interval '1 day', now() - interval '1 day', now() - interval '1 day', 'caller_hangup'
  FROM generate_series(1, $CALL_HISTORY) g;
ANALYZE agents;
ANALYZE registrations;
ANALYZE calls;
SQL
}

# db_down: drop the instance's database (KEEP: keep it). FORCE: a backend
# of a process just stopped may not have gone yet.
db_down() {
    if [ -n "${KEEP:-}" ]; then
        echo "kept database $db" >&2
    else
        psql_admin -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
    fi
}

# edge_db_up SYS MODE: db_up and the instance's topics (prefix), made by
# sipdrain-kafka-init
prefix=''
edge_db_up() {
    db_up "$1" "$2"
    prefix="bench.${db##*_}."
    SIPDRAIN_TOPIC_PREFIX=$prefix SIPDRAIN_LOG_LEVEL=warn build/bin/sipdrain-kafka-init
}

# edge_proc MODE LOG ID: one sip-edge of site1, SIPDRAIN_EDGE_ID=ID, on a
# fresh loopback port (edge_port) with the instance's database and topics
# (dsn, prefix); edge_pid. In call mode it returns once the edge answers
# OPTIONS 200.
edge_pid=''
edge_proc() {
    local mode=$1 log=$2 id=$3 level
    free_port edge_port
    # warn: a log line per call would cost the edge; info for the drained
    # edge, whose refusals log nothing below debug, to see "partitions assigned".
    level=warn
    [ "$mode" = reject ] && level=info
    SIPDRAIN_PG_DSN=$(dsn_as sipdrain_edge "$dsn") SIPDRAIN_SITE=site1 SIPDRAIN_EDGE_ID=$id \
    SIPDRAIN_SIP_URL="sip:127.0.0.1:$edge_port" SIPDRAIN_TOPIC_PREFIX=$prefix \
    SIPDRAIN_ROUTE_POINTS=7000 SIPDRAIN_LOG_LEVEL=$level SIPDRAIN_SIP_NICE=$SIP_NICE \
    SIPDRAIN_KAFKA_PROPERTIES=$kc/sipdrain-edge.properties "$EDGE_BIN" >"$logs/$log.log" 2>&1 &
    edge_pid=$!
    [ "$mode" = call ] || return 0
    for _ in $(seq 1 30); do
        sipp_probe "$edge_port" options_200 && return 0
        kill -0 "$edge_pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "bench: sip-edge did not answer OPTIONS 200, see $logs/$log.log" >&2
    return 1
}

edge_up() { # MODE (call|reject) NAME
    local mode=$1 name=$2 uuid
    edge_db_up edge "$mode"
    edge_proc "$mode" "$name" bench-1 || return 1
    sys_port=$edge_port sys_pid=$edge_pid sys_pids=$edge_pid sip_pids=$edge_pid
    [ "$mode" = call ] && return 0
    # Drain mode: edge.drain (site scope) once the edge.control consumer has
    # its partitions (it starts at the end of the topic), then wait for
    # OPTIONS 503.
    for _ in $(seq 1 100); do
        grep -qs "partitions assigned" "$logs/$name.log" && break
        kill -0 "$sys_pid" 2>/dev/null || break
        sleep 0.1
    done
    uuid=$(cat /proc/sys/kernel/random/uuid)
    echo "bench-1|{\"specversion\":\"1.0\",\"id\":\"$uuid\",\"source\":\"drain-orchestrator/bench\",\"type\":\"edge.drain\",\"time\":\"$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)\",\"datacontenttype\":\"application/json\",\"data\":{\"edge\":\"bench-1\",\"site\":\"site1\",\"drain_id\":\"$uuid\",\"scope\":\"site\"}}" |
        timeout 60 java -cp "$(cat "${SIPDRAIN_CACHE:-$HOME/.cache/sipdrain}/kafka-3.9.1/classpath")" \
            kafka.tools.ConsoleProducer --bootstrap-server "$SIPDRAIN_KAFKA_BROKERS" \
            --producer.config "$kc/sipdrain-orchestrator.java.properties" \
            --topic "${prefix}sipdrain.edge.control" --property parse.key=true \
            --property key.separator='|' >>"$logs/$name.producer.log" 2>&1 ||
        { echo "bench: edge.drain not sent, see $logs/$name.producer.log" >&2; return 1; }
    for _ in $(seq 1 30); do
        sipp_probe "$sys_port" options_503 && return 0
        kill -0 "$sys_pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "bench: sip-edge did not drain (no OPTIONS 503), see $logs/$name.log" >&2
    return 1
}

# topics_down: delete the instance's topics and ACLs (prefix; KEEP: keep
# them), so that the next instance meets the broker as this one did, not
# holding the partitions and ACLs of every instance before it
topics_down() {
    [ -n "${KEEP:-}" ] && return 0
    tests/scripts/kafka-delete-topics.sh "$prefix" >/dev/null 2>&1 ||
        echo "bench: could not delete the topics $prefix* (kept)" >&2
}

edge_down() {
    stop "$sys_pid" TERM TERM # a second SIGTERM stops at once
    db_down
    topics_down
}

# edge2: two sip-edges of site1 on this host (bench-1 and bench-2: one
# database made by db_up, the same topics) behind Kamailio as the load
# balancer, run with the project's own deploy/kamailio/kamailio.cfg as it
# is, the way tools/demo.sh runs it outside a container. It needs from
# outside only its -A defines: DISPATCHER_LIST (a list of the two edges in
# the instance's scratch dir, written here: what deploy/kamailio/run.sh
# keeps from DNS in a container, and tells Kamailio to reload, which a fixed
# pair needs not), CTL_SOCKET (in the scratch dir: the default
# /tmp/sipdrain-kamailio.ctl is one for the whole host) and CHILDREN
# (LB_CHILDREN, run.sh's default 2); PING_INTERVAL stays 1 s, the
# dispatcher probes both edges with OPTIONS as in production. Round robin
# (algorithm 4) over the edges up; record_route(), so ACK and BYE pass the
# balancer too. -m/-x tlsf/-X tlsf as for the other Kamailios here
# (run.sh starts it with Debian's default allocator). Call mode only.
e1_pid='' e2_pid=''
edge2_up() { # MODE (call) NAME
    local mode=$1 name=$2 dir p1 p2
    [ "$mode" = call ] || { echo "bench: edge2 does calls only" >&2; return 1; }
    dir="$scratch/$name"
    mkdir -p "$dir"
    edge_db_up edge2 "$mode"
    edge_proc call "$name-1" bench-1 || return 1
    e1_pid=$edge_pid p1=$edge_port
    edge_proc call "$name-2" bench-2 || return 1
    e2_pid=$edge_pid p2=$edge_port
    printf '1 sip:127.0.0.1:%s 0 0 edge=bench-1\n1 sip:127.0.0.1:%s 0 0 edge=bench-2\n' "$p1" "$p2" \
        >"$dir/dispatcher.list"
    free_port sys_port
    nice -n "$SIP_NICE" kamailio -f deploy/kamailio/kamailio.cfg -L "$KAMAILIO_MODULES" -l "udp:127.0.0.1:$sys_port" \
        -A "DISPATCHER_LIST=\"$dir/dispatcher.list\"" -A "CTL_SOCKET=\"unix:$dir/kamailio.ctl\"" \
        -A "CHILDREN=$LB_CHILDREN" -m "$KAMAILIO_SHM_MB" -x tlsf -X tlsf -P "$dir/kamailio.pid" \
        -w "$dir" -DD -E >"$logs/$name.lb.log" 2>&1 &
    sys_pid=$!
    # OPTIONS 200: the balancer answers OPTIONS to itself (kamailio.cfg)
    for _ in $(seq 1 50); do
        if [ -s "$dir/kamailio.pid" ] && sipp_probe "$sys_port" options_200; then
            sleep 0.3 # every child forked
            lb_pids="$sys_pid $(pgrep -P "$sys_pid" | tr '\n' ' ')"
            sys_pids="$lb_pids $e1_pid $e2_pid"
            sip_pids="$e1_pid $e2_pid"
            return 0
        fi
        kill -0 "$sys_pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "bench: kamailio (deploy/kamailio/kamailio.cfg) did not answer OPTIONS 200, see $logs/$name.lb.log" >&2
    return 1
}

edge2_down() {
    stop "$sys_pid" TERM
    stop "$e1_pid" TERM TERM
    stop "$e2_pid" TERM TERM
    db_down
    topics_down
}

kam_up() { # MODE (call|reject) NAME
    local mode=$1 name=$2 dir cfg=proxy
    [ "$mode" = reject ] && cfg=reject
    dir="$scratch/$name"
    mkdir -p "$dir"
    free_port sys_port
    nice -n "$SIP_NICE" kamailio -f "bench/kamailio/$cfg.cfg" -L "$KAMAILIO_MODULES" -l "udp:127.0.0.1:$sys_port" \
        -A "UAS=\"sip:127.0.0.1:$uas_port\"" -A "CHILDREN=$KAMAILIO_CHILDREN" \
        -m "$KAMAILIO_SHM_MB" -x tlsf -X tlsf -P "$dir/kamailio.pid" -w "$dir" -DD -E \
        >"$logs/$name.log" 2>&1 &
    sys_pid=$!
    for _ in $(seq 1 50); do
        [ -n "$(ss -Hanu "( sport = :$sys_port )")" ] && [ -s "$dir/kamailio.pid" ] && break
        kill -0 "$sys_pid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 0.3 # every child forked
    sys_pids="$sys_pid $(pgrep -P "$sys_pid" | tr '\n' ' ')"
    [ -n "$(ss -Hanu "( sport = :$sys_port )")" ] && return 0
    echo "bench: kamailio did not start, see $logs/$name.log" >&2
    return 1
}

kam_down() { stop "$sys_pid" TERM; }

# kpg: Kamailio + PostgreSQL, the same-work peer (bench/kamailio/router.cfg)
# on a database of its own made like the edge's; logged in as the edge's
# role (sipdrain_edge: its grants cover the peer's statements). Call mode
# only. env -u PGAPPNAME: else libpq names its sessions bench-edge (this
# script's), and pg_pids would leave them out of the CPU count.
kpg_up() { # MODE (call) NAME
    local mode=$1 name=$2 dir url
    [ "$mode" = call ] || { echo "bench: kpg does calls only" >&2; return 1; }
    dir="$scratch/$name"
    mkdir -p "$dir"
    db_up kpg "$mode"
    # Kamailio's URL: postgres://user[:password]@host[:port]/db, no parameters
    url=$(dsn_as sipdrain_edge "$dsn" | sed -E 's#^postgres(ql)?://#postgres://#; s#\?.*$##')
    free_port sys_port
    env -u PGAPPNAME nice -n "$SIP_NICE" kamailio -f bench/kamailio/router.cfg -L "$KAMAILIO_MODULES" \
        -l "udp:127.0.0.1:$sys_port" -A "DBURL=\"$url\"" -A "CHILDREN=$KPG_CHILDREN" \
        -m "$KAMAILIO_SHM_MB" -x tlsf -X tlsf -P "$dir/kamailio.pid" -w "$dir" -DD -E \
        >"$logs/$name.log" 2>&1 &
    sys_pid=$!
    # OPTIONS 200: a worker answered after a SELECT 1 (router.cfg)
    for _ in $(seq 1 50); do
        if [ -s "$dir/kamailio.pid" ] && sipp_probe "$sys_port" options_200; then
            sleep 0.3 # every child forked and connected
            sys_pids="$sys_pid $(pgrep -P "$sys_pid" | tr '\n' ' ')"
            return 0
        fi
        kill -0 "$sys_pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "bench: kamailio (router.cfg) did not answer OPTIONS 200, see $logs/$name.log" >&2
    return 1
}

kpg_down() {
    stop "$sys_pid" TERM
    db_down
}

# --- one step, one search -----------------------------------------------

# rtt_pcts DIR RTD -> "p50 p99 n": the response times (ms) of RTD in the
# SIPp -trace_rtt files in DIR, exact percentiles (nearest rank: the
# ceil(p/100 x n)-th smallest), whole ms (SIPp may write 200.001); "- - 0"
# without any
rtt_pcts() {
    cat "$1"/*_rtt.csv 2>/dev/null | awk -F';' -v r="$2" '$3 == r { printf "%d\n", $2 }' | sort -n |
        awk 'function rank(p,  k) { k = p * NR / 100; return k == int(k) ? k : int(k) + 1 }
             { v[NR] = $1 }
             END { if (NR == 0) print "- - 0"; else print v[rank(50)], v[rank(99)], NR }'
}

# rtt_trend DIR RTD -> "first last": the median response time (ms) of RTD
# over the first quarter of the calls, in the order their INVITEs were sent
# (the -trace_rtt date is the answer's: sent = date - response time), and
# over the last quarter; "- -" with fewer than 8 calls
rtt_trend() {
    cat "$1"/*_rtt.csv 2>/dev/null | awk -F';' -v r="$2" '$3 == r { printf "%.3f %d\n", $1 - $2, $2 }' | sort -n |
        awk '{ v[NR] = $2 }
             END { q = int(NR / 4); if (q < 2) exit
                   for (i = 1; i <= q; i++) print 1, v[i]
                   for (i = NR - q + 1; i <= NR; i++) print 4, v[i] }' |
        sort -k1,1n -k2,2n |
        awk '{ v[$1, ++n[$1]] = $2 }
             END { if (!n[1]) print "- -"; else print v[1, int((n[1] + 1) / 2)], v[4, int((n[4] + 1) / 2)] }'
}

# step SYS MODE NAME RATE SECONDS -> 0 = passed; sets the global st_* values
step() {
    local sys=$1 mode=$2 name=$3 rate=$4 secs=$5 n stat err cpid runner clpid t0 t1 killed=0
    local s0 p0 k0 g0 u0 s1 p1 k1 g1 u1 pgp allowed sf lag=0 created verdict=pass caller_s mine
    local t0_sip=0 t1_sip=0 l0=0 l1=0
    local open_max rtt_dir rtd=setup st_rtt_n
    n=$((rate * secs))
    allowed=$(( (n - 1) / 1000 )) # failed calls < 0.1 % of n
    stat="$scratch/$name-$rate.csv"
    err="$repo/$logs/$name-$rate.err"
    # SIPp writes its -trace_rtt file (<scenario>_<pid>_rtt.csv) into its
    # working directory: one of its own per step
    rtt_dir="$scratch/rtt-$name-$rate"
    rm -rf "$stat" "$rtt_dir"
    mkdir -p "$rtt_dir"
    clpid=
    if is_edge "$sys" && [ "$mode" = call ]; then
        # Stand-in for agent-state: free the agents of ended calls (bounded loop).
        for _ in $(seq 1 $(( (secs + RECV_TIMEOUT_MS / 1000 + 15) * 5 ))); do
            echo "UPDATE agents a SET call_id = NULL FROM calls c WHERE a.call_id IS NOT NULL
                  AND c.call_id = a.call_id AND c.ended_at IS NOT NULL;"
            sleep 0.2
        done | PGAPPNAME=bench-clearer psql "$dsn" -qAt >/dev/null 2>&1 &
        clpid=$!
    fi
    pgp=
    [ "$sys" != kam ] && pgp=$(pg_pids "$dsn" | tr '\n' ' ')
    if [ "$mode" = call ]; then
        sf=(-sf "$repo/bench/sipp/caller.xml" -inf "$dnfile" -d "$HOLD_MS")
    else
        sf=(-sf "$repo/bench/sipp/reject.xml" -s 7000 -key retry_after 30)
        rtd=reject
    fi
    kafka_pid=$(cat .run/kafka/pid 2>/dev/null || echo 0)
    proc_ticks "$scratch/ticks0"
    # shellcheck disable=SC2086 # pid lists
    { s0=$(ticks $sys_pids); p0=$(ticks $pgp); k0=$(ticks "$kafka_pid"); u0=$(udp_rcvbuf_errors); }
    g0=$(ticks ${uas_pid:-})
    # shellcheck disable=SC2086 # pid lists
    { t0_sip=$(sip_ticks $sip_pids); l0=$(ticks $lb_pids); }
    rm -f "$scratch/caller.pid" "$scratch/caller.times"
    open_max=$((rate * 3 > 1000 ? rate * 3 : 1000))
    [ "$open_max" -gt $(($(ulimit -n) - 2000)) ] && open_max=$(($(ulimit -n) - 2000))
    t0=$(now_ms)
    # -l: 3 s worth of open calls (SIPp's own default is 3 x call length x
    # rate; below the open-file limit), so a slow X shows as failures rather
    # than as a throttled generator (which the created_by check catches
    # too); -buff_size: 4 MiB
    # socket buffers (net.core.rmem_max); -t u1: one UDP socket, so -max_socket
    # does not apply; bounded by -m and -timeout. In a subshell whose `times`
    # gives the caller's CPU exactly. -trace_rtt -rtt_freq 1: every call's
    # INVITE -> final answer time, written as the call ends.
    (
        cd "$rtt_dir"
        sipp "127.0.0.1:$sys_port" "${sf[@]}" -i 127.0.0.1 -p "$caller_port" -cp "$caller_cp" \
            -t u1 -r "$rate" -rp 1000 -m "$n" -l "$open_max" \
            -recv_timeout "$RECV_TIMEOUT_MS" -timeout $((secs + RECV_TIMEOUT_MS / 1000 + 20))s \
            -timeout_error -nostdin -buff_size 4194304 -trace_stat -stf "$stat" -fd 1 \
            -trace_err -error_file "$err" -trace_rtt -rtt_freq 1 >/dev/null 2>&1 &
        echo $! >"$scratch/caller.pid"
        wait $! || true
        times >"$scratch/caller.times"
    ) &
    runner=$!
    for _ in $(seq 1 50); do [ -s "$scratch/caller.pid" ] && break; sleep 0.02; done
    cpid=$(cat "$scratch/caller.pid")
    # Stop the caller as soon as the step has failed for sure.
    while kill -0 "$runner" 2>/dev/null; do
        sleep 0.25
        [ -s "$stat" ] || continue
        read -r st_failed _ <<<"$(sipp_stat "$stat" 'FailedCall(C)')"
        if [ "${st_failed:-0}" -gt "$allowed" ]; then
            killed=1
            kill "$cpid" 2>/dev/null
            break
        fi
    done
    wait "$runner" 2>/dev/null || true
    t1=$(now_ms)
    rm -f "$scratch/caller.pid"
    caller_s=$(awk 'NR == 2 { split($1, a, /[ms]/); split($2, b, /[ms]/); print a[1] * 60 + a[2] + b[1] * 60 + b[2] }' \
        "$scratch/caller.times" 2>/dev/null)
    read -r st_created st_ok st_failed st_retrans st_resp <<<"$(sipp_stat "$stat" \
        TotalCallCreated 'SuccessfulCall(C)' 'FailedCall(C)' 'Retransmissions(C)' \
        "$([ "$mode" = call ] && echo 'ResponseTimesetup(C)' || echo 'ResponseTimereject(C)')")"
    created=$(created_by "$stat" "$n")
    read -r st_p50 st_p99 st_rtt_n <<<"$(rtt_pcts "$rtt_dir" "$rtd")"
    read -r st_first st_last <<<"$(rtt_trend "$rtt_dir" "$rtd")"
    rm -rf "$rtt_dir"
    # The edge: wait (bounded) until its database and Kafka work is done.
    if is_edge "$sys" && [ "$mode" = call ] && [ "$killed" = 0 ]; then
        for _ in $(seq 1 300); do
            [ "$(psql "$dsn" -qAt -c "SELECT (SELECT count(*) FROM calls WHERE ended_at IS NULL)
                   + (SELECT count(*) FROM outbox WHERE failed_at IS NULL)")" = 0 ] && break
            sleep 0.1
        done
        lag=$(($(now_ms) - t1))
    fi
    # shellcheck disable=SC2086 # pid lists
    { s1=$(ticks $sys_pids); p1=$(ticks $pgp); k1=$(ticks "$kafka_pid"); u1=$(udp_rcvbuf_errors); }
    # shellcheck disable=SC2086 # pid lists
    { t1_sip=$(sip_ticks $sip_pids); l1=$(ticks $lb_pids); }
    proc_ticks "$scratch/ticks1"
    mine="$$ $sys_pids $kafka_pid ${uas_pid:-} ${clpid:-}"
    [ "$sys" != kam ] && mine="$mine $(pg_pids "$dsn" all | tr '\n' ' ')"
    g1=$(($(ticks ${uas_pid:-}) - g0)) # the UAS
    st_caller_pct=$(awk -v c="${caller_s:-0}" -v ms=$((t1 - t0)) 'BEGIN { printf "%d", c * 100000 / ms }')
    if [ -n "$clpid" ]; then
        stop "$clpid" TERM
    fi
    if [ "$sys" != kam ] && [ "$mode" = call ]; then
        psql "$dsn" -qAt -c "UPDATE agents SET call_id = NULL WHERE call_id IS NOT NULL" >/dev/null
    fi
    # per call, in microseconds; shares of one core in %
    st_sys_us=$(( (s1 - s0) * 1000000 / hz / n ))
    st_sip_us=-
    [ -n "$sip_pids" ] && st_sip_us=$(( (t1_sip - t0_sip) * 1000000 / hz / n ))
    st_lb_us=-
    [ -n "$lb_pids" ] && st_lb_us=$(( (l1 - l0) * 1000000 / hz / n ))
    st_pg_us=$(( (p1 - p0) * 1000000 / hz / n ))
    st_kafka_us=$(( (k1 - k0) * 1000000 / hz / n ))
    st_uas_pct=$(( g1 * 100 * 1000 / hz / (t1 - t0) ))
    # shellcheck disable=SC2086 # pid lists
    st_other_pct=$(( $(other_ticks "$scratch/ticks0" "$scratch/ticks1" $mine) * 100 * 1000 / hz / (t1 - t0) ))
    if [ "$killed" = 1 ] || [ "$st_failed" -gt "$allowed" ]; then
        verdict="failed_calls"
    elif [ $((st_ok + st_failed)) -lt "$n" ]; then
        verdict="unfinished"
    elif [ $((st_retrans * 100)) -ge $((n * RETRANS_MAX_PCT)) ]; then
        verdict="retransmissions"
    elif awk -v c="$created" -v s="$secs" 'BEGIN { exit !(c > s + 1.5) }'; then
        verdict="late_generator"
    elif [ "$st_first" != - ] && [ $((st_last - st_first)) -gt "$KEEPUP_MS" ]; then
        verdict="falling_behind"
    elif [ "$lag" -gt "$LAG_MAX_MS" ]; then
        verdict="edge_backlog"
    fi
    st_verdict=$verdict
    printf '%-14s rate=%-6s calls=%-6s created=%-6s ok=%-6s failed=%-5s retrans=%-6s resp_ms=%-8s p50_ms=%-5s p99_ms=%-5s q1_q4_p50=%-11s rtt_n=%-6s created_by_s=%-5s lag_ms=%-5s sys_us=%-5s lb_us=%-5s sip_thread_us=%-5s pg_us=%-5s kafka_us=%-5s caller_cpu=%s%% uas_cpu=%s%% other_cpu=%s%% udp_rcvbuf_errors=%s %s\n' \
        "$name" "$rate" "$n" "$st_created" "$st_ok" "$st_failed" "$st_retrans" "$st_resp" \
        "$st_p50" "$st_p99" "$st_first/$st_last" "$st_rtt_n" \
        "$created" "$lag" "$st_sys_us" "$st_lb_us" "$st_sip_us" "$st_pg_us" "$st_kafka_us" "$st_caller_pct" "$st_uas_pct" \
        "$st_other_pct" "$((u1 - u0))" "$verdict" >>"$steplog"
    [ "$verdict" = pass ]
}

# instance_up SYS MODE NAME: fresh ports, the SIPp UAS (call mode; uas_pid)
# and a fresh instance of SYS. instance_down SYS: both stopped.
instance_up() {
    free_port uas_port; free_port uas_cp
    free_port caller_port; free_port caller_cp
    free_port probe_port; free_port probe_cp
    uas_pid='' sip_pids='' lb_pids=''
    if [ "$2" = call ]; then
        sipp -sf bench/sipp/uas.xml -i 127.0.0.1 -p "$uas_port" -cp "$uas_cp" -t u1 \
            -m 10000000 -timeout 900s -nostdin -buff_size 4194304 \
            >"$logs/$3.uas.out" 2>&1 &
        uas_pid=$!
    fi
    "${1}_up" "$2" "$3" || { [ -n "$uas_pid" ] && stop "$uas_pid"; return 1; }
    sleep 1 # let the start-up settle (threads, JIT of nothing, first timers)
}
instance_down() {
    "${1}_down"
    if [ -n "$uas_pid" ]; then stop "$uas_pid"; fi
}

# search SYS MODE NAME START MULT SECONDS -> res (one result line), res_rate,
#   res_fail_caller (the caller's CPU % near the end of the ladder), res_lb
#   (edge2: the load balancer's CPU us per call, part of res's us/call)
#   ladder START, START*MULT, ... (at most MAX_STEPS) on one fresh instance;
#   if its very first step fails, again on a fresh instance from MULT^3
#   lower (at most 3 instances; "|" in the ladder). Run in this shell, not in
#   $(...), so the EXIT trap sees every child.
search() {
    local sys=$1 mode=$2 name=$3 rate=$4 mult=$5 secs=$6 best=0 ladder="" try n
    local b_sys=0 b_pg=0 b_kafka=0 b_resp=0 b_retrans=0 b_gen=0 b_other=0 b_sip=- b_p50=- b_p99=- b_lb=-
    res_fail_caller=0
    for try in 1 2 3; do
        instance_up "$sys" "$mode" "$name" || return 1
        for n in $(seq 1 "$MAX_STEPS"); do
            if step "$sys" "$mode" "$name" "$rate" "$secs"; then
                best=$rate b_sys=$st_sys_us b_pg=$st_pg_us b_kafka=$st_kafka_us b_resp=$st_resp
                b_sip=$st_sip_us b_p50=$st_p50 b_p99=$st_p99 b_lb=$st_lb_us
                b_retrans=$st_retrans b_gen=$st_caller_pct b_other=$st_other_pct
                ladder="$ladder $rate"
            else
                ladder="$ladder ${rate}x($st_verdict, caller $st_caller_pct%)"
                res_fail_caller=$((st_caller_pct > b_gen ? st_caller_pct : b_gen))
                break
            fi
            [ "$n" = "$MAX_STEPS" ] && ladder="$ladder (max steps)"
            rate=$(awk -v r="$rate" -v m="$mult" 'BEGIN { printf "%d", r * m + 0.5 }')
        done
        instance_down "$sys"
        [ "$best" -gt 0 ] && break
        [ "$try" -lt 3 ] && ladder="$ladder |"
        rate=$(awk -v r="$rate" -v m="$mult" 'BEGIN { printf "%d", r / (m * m * m) + 0.5 }')
    done
    is_edge "$sys" || b_kafka=- # the peers write no events: the broker's CPU is not theirs
    [ "$sys" = kam ] && b_pg=-
    res_rate=$best res_lb=$b_lb
    res=$(printf '%-13s %8s %8s %7s %8s %7s %8s %6s %6s %8s %6s %6s  %s' "$name" "$best" "$b_sys" "$b_pg" \
        "$b_kafka" "$b_sip" "$b_resp" "$b_p50" "$b_p99" "$b_retrans" "$b_gen%" "$b_other%" "${ladder# }")
}

# at_rate SYS MODE NAME RATE SECONDS -> res: one step at RATE on a fresh
#   instance (the latency goal's edge at 0.8 x its max): "NAME rate p50 p99
#   mean verdict"
at_rate() {
    local sys=$1 mode=$2 name=$3 rate=$4 secs=$5
    instance_up "$sys" "$mode" "$name" || return 1
    step "$sys" "$mode" "$name" "$rate" "$secs" || true
    instance_down "$sys"
    res=$(printf '%-13s %8s %8s %8s %8s  %s' "$name" "$rate" "$st_p50" "$st_p99" "$st_resp" "$st_verdict")
}

# --- the run ------------------------------------------------------------

dnfile="$scratch/dns.csv"
{ echo SEQUENTIAL; seq 100001 $((100000 + AGENTS)); } >"$dnfile"
t_start=$(date +%s)
echo "edge benchmark: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start;" \
    "$(kamailio -v | head -1 | cut -d' ' -f1-3), $(sipp -v 2>/dev/null | grep -o 'SIPp v[0-9.]*' | head -1)," \
    "$(psql --version | head -1)"
echo "call = SIPp caller -> X -> SIPp UAS (INVITE/200/ACK, ${HOLD_MS} ms, BYE/200); reject = X answers INVITE 503 (+ACK)"
echo "X = edge: sip-edge (B2BUA; agent reserved in PostgreSQL, calls row + 3 events via the outbox to Kafka)"
echo "    kpg:  Kamailio + PostgreSQL, the same-work peer (router.cfg: agent reserved + calls row, answered, ended + agent freed; no events)"
echo "    kam:  Kamailio as a stateful proxy (proxy.cfg: no persistence) / stateless 503 (reject.cfg)"
[ "$EDGE2" != 0 ] &&
    echo "    edge2: 2 sip-edges of site1 (one database, the same topics) behind Kamailio's dispatcher (deploy/kamailio/kamailio.cfg);" \
        "its us/call = the LB + both edges, sip_us = both SIP threads"
echo "max/s = highest passing step (< 0.1 % failed, retrans < $RETRANS_MAX_PCT %, last quarter's p50 <= first's + $KEEPUP_MS ms, edge backlog <= $LAG_MAX_MS ms) of ${STEP_S} s steps x$FACTOR; at that step:"
echo "CPU us/call of X, of its PostgreSQL backends, of the Kafka broker (edge, edge2), of the edge's SIP thread alone (sofia-sip; part of X's);"
echo "INVITE -> final answer ms: mean, p50, p99 (of every answered call); SIPp retransmissions;"
echo "CPU of the SIPp caller and of other processes (not X, PostgreSQL, Kafka or SIPp: noise) in % of one core"
printf '%-13s %8s %8s %7s %8s %7s %8s %6s %6s %8s %6s %6s  %s\n' run max/s us/call pg_us kafka_us sip_us resp_ms p50_ms p99_ms retrans caller other "ladder (x = failed step)"
# Warm-up, not reported: doubling ladders of short steps; their results set
# where the measured ladders start.
half=$(( (STEP_S + 1) / 2 ))
search edge call warmup-e-call 100 2 "$half"; w_ec=$res_rate
w_e2c=-
if [ "$EDGE2" != 0 ]; then search edge2 call warmup-e2-call 100 2 "$half"; w_e2c=$res_rate; fi
search kpg call warmup-p-call 100 2 "$half"; w_pc=$res_rate
search kam call warmup-k-call 250 2 "$half"; w_kc=$res_rate
search edge reject warmup-e-rej 1000 2 "$half"; w_er=$res_rate
search kam reject warmup-k-rej 2000 2 "$half"; w_kr=$res_rate
start_at() { awk -v w="$1" -v lo="$2" 'BEGIN { s = int(w * 0.7 + 0.5); print (s < lo ? lo : s) }'; }
s_ec=$(start_at "$w_ec" 50)
s_e2c=0
[ "$EDGE2" != 0 ] && s_e2c=$(start_at "$w_e2c" 50)
s_pc=$(start_at "$w_pc" 50)
s_kc=$(start_at "$w_kc" 100)
s_er=$(start_at "$w_er" 500)
s_kr=$(start_at "$w_kr" 1000)
echo "(warm-up ladders: edge call $w_ec, 2 edges call $w_e2c, kpg call $w_pc, kamailio call $w_kc, edge reject $w_er, kamailio reject $w_kr per s; measured ladders start at 0.7 x, each round a third of a rung higher)"
results=$(mktemp)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }
col() { echo "$1" | awk -v c="$2" '{ print $c }'; }
sum() { awk -v a="$1" -v b="$2" -v c="${3:-0}" 'BEGIN { if (a == "-" || b == "-" || c == "-") print "-"; else print a + b + c }'; }
# goal "SUMMARY" OP LIMIT -> "met" / "NOT met" for the median (the first word)
goal() {
    local v=${1%% *}
    case "$v" in '' | -) echo "n/a"; return ;; esac
    awk -v v="$v" -v op="$2" -v l="$3" 'BEGIN { ok = (op == ">=") ? v >= l : v <= l; print ok ? "met" : "NOT met" }'
}
maxed_e=0 # edge and edge2 call ladders that stopped at MAX_STEPS: no limit found
bound_call=0 bound_kpg=0 bound_reject=0 bound_e2=0 # the SIPp caller near a full core when a Kamailio (or edge2) ladder ended
# Round r starts its ladders FACTOR^((r-1)/REPEAT) higher, so the rounds
# sample different rungs and the median is finer than one rung.
shift_by() { awk -v s="$1" -v f="$FACTOR" -v r="$2" -v n="$REPEAT" 'BEGIN { printf "%d", s * f ^ ((r - 1) / n) + 0.5 }'; }
for r in $(seq 1 "$REPEAT"); do
    search edge call edge-call "$(shift_by "$s_ec" "$r")" "$FACTOR" "$STEP_S"; echo "$res" | tee -a "$results"; r_ec=$res
    case $res in *"(max steps)"*) maxed_e=$((maxed_e + 1)) ;; esac
    # The latency goal: one step on a fresh edge at 0.8 x this ladder's max.
    r08=$(awk -v m="$res_rate" 'BEGIN { printf "%d", m * 0.8 + 0.5 }')
    if [ "$r08" -gt 0 ]; then
        at_rate edge call edge-0.8x "$r08" "$STEP_S"; echo "$res" >>"$results"
        echo "edge at 0.8x max ($r08/s): p99 $(col "$res" 4) ms (p50 $(col "$res" 3)), goal <= 50; step $(col "$res" 6)"
    fi
    if [ "$EDGE2" != 0 ]; then
        # Two edges behind the load balancer: CPU split as LB + edges (both
        # processes) + their PostgreSQL + Kafka; rate against this round's edge.
        search edge2 call edge2-call "$(shift_by "$s_e2c" "$r")" "$FACTOR" "$STEP_S"; echo "$res" | tee -a "$results"
        [ "$res_fail_caller" -ge 75 ] && bound_e2=$((bound_e2 + 1))
        case $res in *"(max steps)"*) maxed_e=$((maxed_e + 1)) ;; esac
        e2_lb=$res_lb
        e2_edges=$(awk -v s="$(col "$res" 3)" -v l="$e2_lb" 'BEGIN { if (l == "-") print "-"; else print s - l }')
        printf '%-13s %8s %8s %8s\n' cpu-edge2 "$e2_lb" "$e2_edges" \
            "$(sum "$(col "$res" 3)" "$(col "$res" 4)" "$(col "$res" 5)")" >>"$results"
        printf '%-13s %8s   rate, 2 edges behind the LB / one edge (round %s)\n' ratio-edge2 \
            "$(ratio "$(col "$res" 2)" "$(col "$r_ec" 2)")" "$r" | tee -a "$results"
    fi
    search kpg call kpg-call "$(shift_by "$s_pc" "$r")" "$FACTOR" "$STEP_S"; echo "$res" | tee -a "$results"; r_pc=$res
    [ "$res_fail_caller" -ge 75 ] && bound_kpg=$((bound_kpg + 1))
    search kam call kam-call "$(shift_by "$s_kc" "$r")" "$FACTOR" "$STEP_S"; echo "$res" | tee -a "$results"; r_kc=$res
    [ "$res_fail_caller" -ge 75 ] && bound_call=$((bound_call + 1))
    search edge reject edge-reject "$(shift_by "$s_er" "$r")" "$FACTOR" "$STEP_S"; echo "$res" | tee -a "$results"; r_er=$res
    search kam reject kam-reject "$(shift_by "$s_kr" "$r")" "$FACTOR" "$STEP_S"; echo "$res" | tee -a "$results"; r_kr=$res
    [ "$res_fail_caller" -ge 75 ] && bound_reject=$((bound_reject + 1))
    # CPU per call, whole: the edge with its PostgreSQL and Kafka, kpg with
    # its PostgreSQL; the ratios compare the servers, whatever bounds the rate.
    e_tot=$(sum "$(col "$r_ec" 3)" "$(col "$r_ec" 4)" "$(col "$r_ec" 5)")
    p_tot=$(sum "$(col "$r_pc" 3)" "$(col "$r_pc" 4)")
    printf '%-13s %8s %8s %8s\n' cpu-total "$e_tot" "$p_tot" "$(col "$r_kc" 3)" >>"$results"
    printf '%-13s %8s   rate, edge/kpg, the same-work peer (round %s; goal >= 1.25)\n' ratio-call \
        "$(ratio "$(col "$r_ec" 2)" "$(col "$r_pc" 2)")" "$r" | tee -a "$results"
    printf '%-13s %8s   CPU per call, (edge + its PostgreSQL + Kafka)/(kpg + its PostgreSQL) (round %s; goal <= 0.8)\n' cpu-call \
        "$(ratio "$e_tot" "$p_tot")" "$r" | tee -a "$results"
    printf '%-13s %8s   rate, edge/kam, the proxy without persistence (round %s)\n' ratio-call-np \
        "$(ratio "$(col "$r_ec" 2)" "$(col "$r_kc" 2)")" "$r" | tee -a "$results"
    printf '%-13s %8s   rate, edge/kamailio (round %s; goal (#4) >= 0.5)\n' ratio-reject \
        "$(ratio "$(col "$r_er" 2)" "$(col "$r_kr" 2)")" "$r" | tee -a "$results"
    printf '%-13s %8s   CPU per rejection, kamailio/edge (round %s; goal >= 1.0)\n' cpu-reject \
        "$(ratio "$(col "$r_kr" 3)" "$(col "$r_er" 3)")" "$r" | tee -a "$results"
done
s_rate=$(summary "$results" ratio-call 2)
s_cpu=$(summary "$results" cpu-call 2)
s_p99=$(summary "$results" edge-0.8x 4)
s_rej=$(summary "$results" ratio-reject 2)
s_rejcpu=$(summary "$results" cpu-reject 2)
echo "== summary: median over the rounds (median of n, min..max) =="
echo "call setup, calls/s:"
echo "  edge (sip-edge + PostgreSQL + Kafka):       $(summary "$results" edge-call 2)"
echo "  kpg (Kamailio + PostgreSQL, same work):     $(summary "$results" kpg-call 2)"
echo "  kam (stateful proxy, no persistence limit): $(summary "$results" kam-call 2)"
echo "CPU us per call at each one's highest passing step:"
echo "  edge: process $(summary "$results" edge-call 3) + its PostgreSQL $(summary "$results" edge-call 4)"
echo "        + Kafka broker $(summary "$results" edge-call 5) = $(summary "$results" cpu-total 2)"
echo "  kpg:  Kamailio $(summary "$results" kpg-call 3) + its PostgreSQL $(summary "$results" kpg-call 4)"
echo "        = $(summary "$results" cpu-total 3)"
echo "  kam:  Kamailio $(summary "$results" kam-call 3)"
echo "  edge SIP thread: $(summary "$results" edge-call 6) us per call (sofia-sip NUA: one thread, so one edge process"
echo "                   sets up at most 1,000,000 / that calls/s on one core, whatever PostgreSQL and Kafka cost)"
echo "INVITE -> 200 ms at each one's highest passing step:"
echo "  edge: p50 $(summary "$results" edge-call 8); p99 $(summary "$results" edge-call 9)"
echo "  kpg:  p50 $(summary "$results" kpg-call 8); p99 $(summary "$results" kpg-call 9)"
echo "  kam:  p50 $(summary "$results" kam-call 8); p99 $(summary "$results" kam-call 9)"
echo "edge / same-work peer (kpg), the goals of issue #17:"
echo "  call setup rate:                 $s_rate   goal >= 1.25: $(goal "$s_rate" '>=' 1.25)"
echo "  CPU per call, (edge + pg + kafka) / (kpg + pg): $s_cpu   goal <= 0.8: $(goal "$s_cpu" '<=' 0.8)"
echo "  edge at 0.8 x its max rate, INVITE -> 200 p99 ms: $s_p99   goal <= 50: $(goal "$s_p99" '<=' 50)"
echo "                                   (p50 $(summary "$results" edge-0.8x 3); at calls/s $(summary "$results" edge-0.8x 2))"
echo "edge / kam (no persistence), rate: $(summary "$results" ratio-call-np 2)"
if [ "$EDGE2" != 0 ]; then
    # med_range NAME FIELD -> "median (min..max)"; med NAME FIELD -> median
    med_range() { summary "$results" "$1" "$2" | sed -E 's/\(median of [0-9]+, min\.\.max /(/'; }
    med() { summary "$results" "$1" "$2" | awk '{ print $1 }'; }
    e2_ratio=$(med ratio-edge2 2)
    echo "2 edges behind Kamailio's dispatcher (one host): calls/s $(med_range edge2-call 2);" \
        "CPU us per call $(med cpu-edge2 2) LB + $(med cpu-edge2 3) edges + $(med edge2-call 4) pg + $(med edge2-call 5) kafka" \
        "= $(med cpu-edge2 4) (SIP threads, both: $(med edge2-call 6)); p99 $(med edge2-call 9) ms;" \
        "vs one edge $(med_range ratio-edge2 2)"
    # One line of explanation, from the figures: one edge's SIP thread is
    # one core's work at most; what the second edge changed here.
    e1_sip=$(med edge-call 6)
    ceiling=$(awk -v u="$e1_sip" 'BEGIN { if (u + 0 > 0) printf "%d", 1000000 / u; else print "-" }')
    if [ "$maxed_e" -gt 0 ]; then
        echo "  why: not measured: in $maxed_e ladders edge's or edge2's call ladder stopped at MAX_STEPS ($MAX_STEPS)," \
            "so those rates are floors, not limits, and the ratio says nothing yet (one edge's SIP thread:" \
            "$e1_sip us per call, <= $ceiling calls/s)"
    elif awk -v q="${e2_ratio:-0}" 'BEGIN { exit !(q != "-" && q + 0 >= 1.2) }'; then
        echo "  why: the second edge raised the rate ${e2_ratio}x on $(nproc) cores: one edge's SIP thread" \
            "($e1_sip us per call, <= $ceiling calls/s) was a limit here; each edge process brings its own SIP thread"
    else
        echo "  why: on $(nproc) cores the whole machine (the SIPps, PostgreSQL, Kafka, the LB) is the limit, not one edge's SIP thread" \
            "($e1_sip us per call, <= $ceiling calls/s): a second edge adds the LB's cost and little rate; on a host with more" \
            "cores each edge process brings its own SIP thread (one edge's SIP work is one thread), so edges per host add SIP capacity"
    fi
fi
echo "rejections/s (drain):   edge $(summary "$results" edge-reject 2); kamailio $(summary "$results" kam-reject 2)"
echo "  edge / kamailio:      $s_rej   goal (#4) >= 0.5: $(goal "$s_rej" '>=' 0.5)"
echo "  CPU us per rejection: edge $(summary "$results" edge-reject 3); kamailio $(summary "$results" kam-reject 3)"
echo "  CPU per rejection, kamailio/edge: $s_rejcpu   goal >= 1.0: $(goal "$s_rejcpu" '>=' 1.0)"
echo "  INVITE -> 503 ms:     edge p50 $(summary "$results" edge-reject 8), p99 $(summary "$results" edge-reject 9);" \
    "kamailio p50 $(summary "$results" kam-reject 8), p99 $(summary "$results" kam-reject 9)"
[ "$bound_kpg" -gt 0 ] && echo "note: in $bound_kpg of $REPEAT rounds kpg's call ladder ended with the SIPp caller at >= 75 % of a core: its rate there is the generator's, the edge/kpg rate ratio an upper bound"
[ "$bound_call" -gt 0 ] && echo "note: in $bound_call of $REPEAT rounds Kamailio's proxy ladder ended with the SIPp caller at >= 75 % of a core: its rate there is the generator's, the edge/kam ratio an upper bound"
[ "$bound_e2" -gt 0 ] && echo "note: in $bound_e2 of $REPEAT rounds the 2-edge ladder ended with the SIPp caller at >= 75 % of a core: its rate there is the generator's"
[ "$bound_reject" -gt 0 ] && echo "note: in $bound_reject of $REPEAT rounds Kamailio's reject ladder ended with the SIPp caller at >= 75 % of a core: its rate there is the generator's (one SIPp on 2 shared cores), the rejection ratio an upper bound; the CPU ratio compares the servers"
rm -f "$results"
echo "setup: $AGENTS agents, caller DNs sequential from an -inf file, agents freed by this script every 200 ms (edge) or by the BYE (kpg);" \
    "kamailio: kpg $KPG_CHILDREN UDP workers, kam $KAMAILIO_CHILDREN, edge2's LB $LB_CHILDREN, -m $KAMAILIO_SHM_MB -x tlsf; nice $SIP_NICE for the edge's SIP thread and every Kamailio; SIPp -buff_size 4 MiB, -recv_timeout $RECV_TIMEOUT_MS ms, -trace_rtt"
echo "$(( $(date +%s) - t_start )) s; load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; every step: $steplog"
