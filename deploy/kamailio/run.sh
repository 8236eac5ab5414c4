#!/usr/bin/env bash
# deploy/kamailio/run.sh - the load balancer's container command: Kamailio
# in front of every edge of both sites, with the edges found by name.
#
# Edges scale (docker compose --scale edge-site2=3, a Kubernetes
# Deployment), so their addresses are not known in advance: this script
# looks up each name of EDGE_NAMES (DNS gives one address per replica) every
# LOOKUP_MS, keeps the dispatcher list and, when it changed, tells Kamailio
# to reload it (kamcmd over the ctl socket). An edge that drains still
# answers OPTIONS 503 and leaves the rotation by itself.
#
# A lookup that gets no answer must not hold up the next one. Seen under
# Podman: the network's DNS server (aardvark-dns) drops the questions asked
# while it reloads, which it does whenever a container joins - that is, just
# when a scaled-up edge starts. glibc then waits out its timeout for every
# server and search domain (4 s here, 8 s with two tries), and a scaled-up
# edge reached the list 11 s after `up`. So every LOOKUP_MS each name is
# asked again while earlier questions still wait (at most MAX_PENDING a
# name), and whichever answers first counts: a lost answer costs one
# LOOKUP_MS, not the resolver's timeout.
#
# Adding is at once, dropping is not: an address is listed from the first
# answer that has it, and leaves the list once no answer has had it for
# DROP_S seconds. A few answers lost or late must not take a whole site out
# of the load balancer; an edge that is really gone answers no OPTIONS and
# is out of the rotation within a second anyway.
#
# A name that resolves to nothing (an edge service scaled to 0, not up yet)
# has no line DROP_S after its last address went: the other site's edges
# stay in the list, and the load balancer keeps serving them. When no name
# has resolved for DROP_S, the resolver is down: the list is kept as it is
# (and the edges in it count as seen until the resolver answers again).
#
# Env: EDGE_NAMES ("edge-site1 edge-site2"), EDGE_PORT (5060), SIP_ADDR
# (udp:0.0.0.0:5060), LOOKUP_MS (500), DROP_S (3), MAX_PENDING (32),
# KAMAILIO_MODULES (Debian's), CHILDREN (2), WORK (/tmp/sipdrain-lb),
# RES_OPTIONS (timeout:1 attempts:1: each lookup's resolver options).
# run.sh --list: print the addresses resolved now as a list, and exit.
# run.sh --watch SECONDS: keep the list as above for SECONDS without
# Kamailio, printing "<ms> list" and the list each time it changes
# (tests/deploy/run_sh_list.sh drives both).
set -euo pipefail
shopt -s nullglob

EDGE_NAMES=${EDGE_NAMES:-edge-site1 edge-site2}
EDGE_PORT=${EDGE_PORT:-5060}
SIP_ADDR=${SIP_ADDR:-udp:0.0.0.0:5060}
LOOKUP_MS=${LOOKUP_MS:-500}
DROP_S=${DROP_S:-3}
MAX_PENDING=${MAX_PENDING:-32}
MODULES=${KAMAILIO_MODULES:-/usr/lib/$(uname -m)-linux-gnu/kamailio/modules}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-/tmp/sipdrain-lb}
LIST=$WORK/dispatcher.list
CTL=$WORK/kamailio.ctl
PENDING=$WORK/pending # one file per lookup still waiting: <name>@<seq>
ANSWERS=$WORK/answers # a lookup's addresses, moved here when it ends
mkdir -p "$WORK"

# One try of 1 s per server and search domain: the retries are the next
# lookups, LOOKUP_MS later (glibc's default is 5 s per try, 2 tries).
export RES_OPTIONS=${RES_OPTIONS:-timeout:1 attempts:1}

now_ms() {
    local t=${EPOCHREALTIME/./}
    echo "${t:0:-3}"
}

# list_line IP NAME: the dispatcher list's line for one edge
list_line() { echo "1 sip:$1:$EDGE_PORT 0 0 name=$2"; }

# dispatcher_list: look every name up once (in parallel, so a name with no
# address does not hold up the others) and print the list.
dispatcher_list() {
    local name ip pids=()
    echo "# written by deploy/kamailio/run.sh at $(date -u +%FT%TZ)"
    for name in $EDGE_NAMES; do
        # getent exits 2 for a name with no address: not an error here
        { getent ahostsv4 "$name" 2>/dev/null || true; } >"$WORK/lookup.$name" &
        pids+=($!)
    done
    wait "${pids[@]}" 2>/dev/null || true
    for name in $EDGE_NAMES; do
        awk '{ print $1 }' "$WORK/lookup.$name" | sort -u |
            while read -r ip; do list_line "$ip" "$name"; done
        rm -f "$WORK/lookup.$name"
    done
}

# lookup NAME SEQ (in the background): ask once; the answer's addresses
# go to $ANSWERS/NAME@SEQ when it comes, however long that takes.
lookup() {
    local out=$PENDING/$1@$2
    { getent ahostsv4 "$1" 2>/dev/null || true; } | awk '{ print $1 }' | sort -u >"$out"
    mv "$out" "$ANSWERS/$1@$2"
}

declare -A seen=() # "<ip> <name>" -> when an answer last had it (ms)
last_answer=0      # when any name last resolved to an address (ms)
resolver_down=0
seq=0

# track: one step of the list's upkeep. Reads the answers that came, asks
# each name again (unless MAX_PENDING questions of it still wait), drops
# what no answer has had for DROP_S. Exit 0 when the list changed (then
# $LIST is the new list and stderr says what changed), 1 when not.
track() {
    local now f name ip key t was line waiting
    now=$(now_ms)
    for f in "$ANSWERS"/*; do
        name=${f##*/}
        name=${name%@*}
        while read -r ip; do
            [[ -n "$ip" ]] || continue
            seen["$ip $name"]=$now
            last_answer=$now
        done <"$f"
        rm -f "$f"
    done
    for name in $EDGE_NAMES; do
        waiting=("$PENDING/$name@"*)
        ((${#waiting[@]} < MAX_PENDING)) || continue
        seq=$((seq + 1))
        : >"$PENDING/$name@$seq"
        lookup "$name" "$seq" &
    done
    if ((now - last_answer > DROP_S * 1000 && ${#seen[@]} > 0)); then
        # not one name resolved for DROP_S: the resolver is down (seen
        # under Podman for half a minute after up), not every edge service
        # scaled to 0 at once. Keep the list; edges that are really gone
        # fail Kamailio's OPTIONS probes and leave the rotation anyway.
        if ((!resolver_down)); then
            echo "run.sh: no edge name resolved for ${DROP_S} s (is the resolver down?): the list is kept" >&2
            resolver_down=1
        fi
        for key in "${!seen[@]}"; do seen[$key]=$now; done
        return 1
    fi
    if ((resolver_down)); then
        echo "run.sh: edge names resolve again" >&2
        resolver_down=0
    fi
    for key in "${!seen[@]}"; do
        t=${seen[$key]}
        ((now - t > DROP_S * 1000)) || continue
        read -r ip name <<<"$key"
        echo "run.sh: sip:$ip:$EDGE_PORT ($name) in no answer for ${DROP_S} s: dropped" >&2
        unset "seen[$key]"
    done
    {
        for key in "${!seen[@]}"; do
            read -r ip name <<<"$key"
            list_line "$ip" "$name"
        done
    } | sort >"$LIST.new"
    was=$(grep -v '^#' "$LIST" | sort || true)
    if [[ "$was" == "$(cat "$LIST.new")" ]]; then
        rm -f "$LIST.new"
        return 1
    fi
    for line in $(comm -13 <(echo "$was") "$LIST.new" | awk '{ print $2 }'); do
        echo "run.sh: $line added" >&2
    done
    { echo "# written by deploy/kamailio/run.sh at $(date -u +%FT%TZ)" && cat "$LIST.new"; } >"$LIST"
    rm -f "$LIST.new"
    echo "run.sh: edges changed: $(grep -vc '^#' "$LIST") in the list" >&2
    return 0
}

# start: the first list, from one lookup of every name, and the state that
# track() keeps from there
start() {
    local ip _ name
    rm -rf "$PENDING" "$ANSWERS"
    mkdir -p "$PENDING" "$ANSWERS"
    dispatcher_list >"$LIST"
    while read -r _ ip _ _ name; do
        ip=${ip#sip:}
        seen["${ip%:*} ${name#name=}"]=$(now_ms)
        last_answer=$(now_ms)
    done < <(grep -v '^#' "$LIST")
}

# tick: sleep until the next LOOKUP_MS step
tick() {
    sleep "$((LOOKUP_MS / 1000)).$(printf '%03d' $((LOOKUP_MS % 1000)))" &
    wait $! || true
}

case "${1:-}" in
--list)
    dispatcher_list
    exit 0
    ;;
--watch)
    start
    t_end=$(($(now_ms) + ${2:?--watch SECONDS} * 1000))
    echo "$(now_ms) list"
    grep -v '^#' "$LIST" || true
    while (($(now_ms) < t_end)); do
        tick
        if track; then
            echo "$(now_ms) list"
            grep -v '^#' "$LIST" || true
        fi
    done
    exit 0
    ;;
esac

start
kamailio -f "$HERE/kamailio.cfg" -L "$MODULES" -l "$SIP_ADDR" \
    -A "DISPATCHER_LIST=\"$LIST\"" -A "CTL_SOCKET=\"unix:$CTL\"" -A "CHILDREN=${CHILDREN:-2}" \
    -w "$WORK" -DD -E &
kam=$!
trap 'kill -TERM "$kam" 2>/dev/null; wait "$kam"; exit 0' TERM INT

while kill -0 "$kam" 2>/dev/null; do
    tick
    if track; then
        kamcmd -s "unix:$CTL" dispatcher.reload >&2 || echo "run.sh: reload failed" >&2
    fi
done
wait "$kam"
