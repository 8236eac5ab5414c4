#!/usr/bin/env bash
# deploy/kamailio/run.sh - the load balancer's container command: Kamailio
# in front of every edge of both sites, with the edges found by name.
#
# Edges scale (docker compose --scale edge-site2=3, a Kubernetes
# Deployment), so their addresses are not known in advance: every
# SYNC_S seconds this script resolves each name of EDGE_NAMES (DNS gives one
# address per replica), updates the dispatcher list and, when it changed,
# tells Kamailio to reload it (kamcmd over the ctl socket). An edge that
# drains still answers OPTIONS 503 and leaves the rotation by itself.
#
# Adding is at once, dropping is not: a new address is listed at the next
# sync (a scaled-up edge takes calls within SYNC_S seconds and one OPTIONS
# probe), but an address leaves the list only after DROP_AFTER syncs in a
# row without it. One DNS answer lost or late (the container engine's
# resolver reloading while a container starts) must not take a whole site
# out of the load balancer for a sync; an edge that is really gone answers
# no OPTIONS and is out of the rotation within a second anyway.
#
# A name that resolves to nothing (an edge service scaled to 0, not up yet)
# just has no line once DROP_AFTER syncs have passed: the other site's edges
# stay in the list, and the load balancer keeps serving them. When no name
# resolves at all, the resolver is down: the list is kept as it is.
#
# Env: EDGE_NAMES ("edge-site1 edge-site2"), EDGE_PORT (5060), SIP_ADDR
# (udp:0.0.0.0:5060), SYNC_S (1), DROP_AFTER (3), KAMAILIO_MODULES
# (Debian's), CHILDREN (2), WORK (/tmp/sipdrain-lb), RES_OPTIONS (timeout:1
# attempts:2: the lookups' resolver options).
# run.sh --list: print the addresses resolved now as a list, and exit.
# run.sh --sync: one sync of $WORK/dispatcher.list without Kamailio (prints
# the list when it changed; tests/deploy/run_sh_list.sh drives both).
set -euo pipefail

EDGE_NAMES=${EDGE_NAMES:-edge-site1 edge-site2}
EDGE_PORT=${EDGE_PORT:-5060}
SIP_ADDR=${SIP_ADDR:-udp:0.0.0.0:5060}
SYNC_S=${SYNC_S:-1}
DROP_AFTER=${DROP_AFTER:-3}
MODULES=${KAMAILIO_MODULES:-/usr/lib/$(uname -m)-linux-gnu/kamailio/modules}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-/tmp/sipdrain-lb}
LIST=$WORK/dispatcher.list
CTL=$WORK/kamailio.ctl
MISSING=$WORK/missing   # "<syncs missing> <list line>" per address not resolved
mkdir -p "$WORK"

# The lookups' resolver options (glibc reads RES_OPTIONS): a question
# whose answer is lost costs a second, not glibc's default 5 s per try and
# server (20 s with two servers and two tries). Seen under Podman: the
# network's DNS server (aardvark-dns) reloads whenever a container joins,
# a question asked meanwhile went unanswered, and a scaled-up edge reached
# the list 21 s after it listened.
export RES_OPTIONS=${RES_OPTIONS:-timeout:1 attempts:2}

# dispatcher_list: one "1 sip:<ip>:<port> 0 0 name=<name>" line per address.
# The names are looked up at once, each in the background: a name with no
# address costs seconds (the resolver asks upstream servers after its own
# says no; 8 s per sync seen under Podman with edge-site2 scaled to 0), and
# it must not hold up the other site's list.
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
            while read -r ip; do
                echo "1 sip:$ip:$EDGE_PORT 0 0 name=$name"
            done
        rm -f "$WORK/lookup.$name"
    done
}

# sync_list: resolve the names again and update $LIST: every address
# resolved now, plus the listed ones missing for fewer than DROP_AFTER
# syncs. Exit 0 when $LIST changed (then it says so on stderr), 1 when not.
sync_list() {
    local now kept line n uri name
    now=$(dispatcher_list | grep -v '^#' || true)
    if [[ -z "$now" ]] && grep -qv '^#' "$LIST"; then
        # Not one name resolved: the resolver is down (seen under Podman for
        # half a minute after up), not every edge service scaled to 0 at
        # once. Keep the list; edges that are really gone fail Kamailio's
        # OPTIONS probes and leave the rotation anyway.
        echo "run.sh: no edge name resolved (is the resolver down?): the list is kept" >&2
        return 1
    fi
    kept=""
    : >"$MISSING.new"
    while read -r line; do
        [[ -z "$line" || "$line" == \#* ]] && continue
        grep -qxF -- "$line" <<<"$now" && continue
        n=$(awk -v l="$line" '{ c = $1; sub(/^[0-9]+ /, "") } $0 == l { print c }' "$MISSING" 2>/dev/null)
        n=$((${n:-0} + 1))
        if ((n < DROP_AFTER)); then
            kept+="$line"$'\n'
            echo "$n $line" >>"$MISSING.new"
        else
            read -r _ uri _ _ name <<<"$line"
            echo "run.sh: $uri (${name#name=}) not resolved for $n syncs: dropped" >&2
        fi
    done <"$LIST"
    mv "$MISSING.new" "$MISSING"
    {
        echo "# written by deploy/kamailio/run.sh at $(date -u +%FT%TZ)"
        printf '%s\n%s' "$now" "$kept" | grep -v '^$' | sort -u || true
    } >"$LIST.new"
    if diff -q <(grep -v '^#' "$LIST" | sort) <(grep -v '^#' "$LIST.new") >/dev/null; then
        rm -f "$LIST.new"
        return 1
    fi
    mv "$LIST.new" "$LIST"
    echo "run.sh: edges changed: $(grep -vc '^#' "$LIST") in the list" >&2
    return 0
}

case "${1:-}" in
--list)
    dispatcher_list
    exit 0
    ;;
--sync)
    [[ -f "$LIST" ]] || dispatcher_list >"$LIST"
    if sync_list; then cat "$LIST"; fi
    exit 0
    ;;
esac

dispatcher_list >"$LIST"
rm -f "$MISSING"
kamailio -f "$HERE/kamailio.cfg" -L "$MODULES" -l "$SIP_ADDR" \
    -A "DISPATCHER_LIST=\"$LIST\"" -A "CTL_SOCKET=\"unix:$CTL\"" -A "CHILDREN=${CHILDREN:-2}" \
    -w "$WORK" -DD -E &
kam=$!
trap 'kill -TERM "$kam" 2>/dev/null; wait "$kam"; exit 0' TERM INT

while kill -0 "$kam" 2>/dev/null; do
    sleep "$SYNC_S" &
    wait $! || true
    t0=$(date +%s%3N)
    changed=0
    sync_list && changed=1
    # a sync is a few ms; a slow one is the resolver's doing: say so
    took=$(($(date +%s%3N) - t0))
    ((took < 2000)) || echo "run.sh: the lookups took $took ms (the resolver is slow or lost answers)" >&2
    if ((changed)); then
        kamcmd -s "unix:$CTL" dispatcher.reload >&2 || echo "run.sh: reload failed" >&2
    fi
done
wait "$kam"
