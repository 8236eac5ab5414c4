#!/usr/bin/env bash
# deploy/kamailio/run.sh - the load balancer's container command: Kamailio
# in front of every edge of both sites, with the edges found by name.
#
# Edges scale (docker compose --scale edge-site2=3, a Kubernetes
# Deployment), so their addresses are not known in advance: every
# SYNC_S seconds this script resolves each name of EDGE_NAMES (DNS gives one
# address per replica), writes the dispatcher list and, when it changed,
# tells Kamailio to reload it (kamcmd over the ctl socket). An edge that
# drains still answers OPTIONS 503 and leaves the rotation by itself; an
# edge that is gone drops out of the list at the next sync.
#
# A name that resolves to nothing (an edge service scaled to 0, not up yet)
# just has no line: the other site's edges stay in the list, and the load
# balancer keeps serving them.
#
# Env: EDGE_NAMES ("edge-site1 edge-site2"), EDGE_PORT (5060), SIP_ADDR
# (udp:0.0.0.0:5060), SYNC_S (5), KAMAILIO_MODULES (Debian's), CHILDREN (2).
# run.sh --list: print the dispatcher list once and exit (tests/deploy).
set -euo pipefail

EDGE_NAMES=${EDGE_NAMES:-edge-site1 edge-site2}
EDGE_PORT=${EDGE_PORT:-5060}
SIP_ADDR=${SIP_ADDR:-udp:0.0.0.0:5060}
SYNC_S=${SYNC_S:-5}
MODULES=${KAMAILIO_MODULES:-/usr/lib/$(uname -m)-linux-gnu/kamailio/modules}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-/tmp/sipdrain-lb}
LIST=$WORK/dispatcher.list
CTL=$WORK/kamailio.ctl
mkdir -p "$WORK"

# dispatcher_list: one "1 sip:<ip>:<port> 0 0 name=<name>" line per address
dispatcher_list() {
    local name ip
    echo "# written by deploy/kamailio/run.sh at $(date -u +%FT%TZ)"
    for name in $EDGE_NAMES; do
        # getent exits 2 for a name with no address: not an error here
        { getent ahostsv4 "$name" 2>/dev/null || true; } | awk '{ print $1 }' | sort -u |
            while read -r ip; do
                echo "1 sip:$ip:$EDGE_PORT 0 0 name=$name"
            done
    done
}

if [[ "${1:-}" == "--list" ]]; then
    dispatcher_list
    exit 0
fi

dispatcher_list >"$LIST"
kamailio -f "$HERE/kamailio.cfg" -L "$MODULES" -l "$SIP_ADDR" \
    -A "DISPATCHER_LIST=\"$LIST\"" -A "CTL_SOCKET=\"unix:$CTL\"" -A "CHILDREN=${CHILDREN:-2}" \
    -w "$WORK" -DD -E &
kam=$!
trap 'kill -TERM "$kam" 2>/dev/null; wait "$kam"; exit 0' TERM INT

while kill -0 "$kam" 2>/dev/null; do
    sleep "$SYNC_S" &
    wait $! || true
    dispatcher_list >"$LIST.new"
    if ! diff -q <(grep -v '^#' "$LIST") <(grep -v '^#' "$LIST.new") >/dev/null; then
        mv "$LIST.new" "$LIST"
        echo "run.sh: edges changed: $(grep -vc '^#' "$LIST") in the list; reloading" >&2
        kamcmd -s "unix:$CTL" dispatcher.reload >&2 || echo "run.sh: reload failed" >&2
    fi
done
wait "$kam"
