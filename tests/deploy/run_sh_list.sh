#!/usr/bin/env bash
# run_sh_list.sh - deploy/kamailio/run.sh's dispatcher list with an edge
# service that has no replicas: the name resolves to nothing (getent exits
# 2), the script must go on and list the edges that do resolve. It crashed
# under `set -euo pipefail`, and the load balancer with it, for both sites.
#
# The lookup of the missing name must not leave the machine: run.sh runs in
# a mount namespace of its own whose /etc/resolv.conf names 127.0.0.1 (no
# DNS server there: the question fails at once). Needs root for that;
# without it the test is reported as skipped (exit 77), not passed.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
if [[ "$(id -u)" != 0 ]]; then
    echo "run_sh_list: needs root (unshare --mount); skipped" >&2
    exit 77
fi
conf=$(mktemp /tmp/sipdrain-resolv-XXXXXX)
trap 'rm -f "$conf"' EXIT
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$conf"
out=$(EDGE_NAMES="localhost sipdrain-no-such-edge.invalid" EDGE_PORT=5070 \
    unshare --mount -- /bin/sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$1" --list' \
    "$conf" "$here/deploy/kamailio/run.sh") || {
    echo "run_sh_list: run.sh --list failed (exit $?): a name without replicas must not stop it" >&2
    exit 1
}
echo "$out"
if ! grep -qx '1 sip:127.0.0.1:5070 0 0 name=localhost' <<<"$out"; then
    echo "run_sh_list: no line for localhost's edge" >&2
    exit 1
fi
if grep -q 'name=sipdrain-no-such-edge.invalid' <<<"$out"; then
    echo "run_sh_list: a line for a name that has no address" >&2
    exit 1
fi
echo "run_sh_list: ok (the missing edge has no line, the other one is listed)"

# --- the list over time (run.sh --sync): an address is added at the next
# sync, and dropped only after DROP_AFTER syncs in a row without it (one lost
# DNS answer must not take a site out of the load balancer). Names come from
# an /etc/hosts of the test's own, bind-mounted in the same way and
# rewritten in place between syncs (the bind mount follows the inode).
work=$(mktemp -d /tmp/sipdrain-lb-test-XXXXXX)
hosts=$(mktemp /tmp/sipdrain-hosts-XXXXXX)
trap 'rm -f "$conf" "$hosts"; rm -rf "$work"' EXIT
printf '127.0.0.2 edge-a\n127.0.0.3 edge-a\n127.0.0.4 edge-b\n' >"$work/a"
printf '127.0.0.2 edge-a\n127.0.0.4 edge-b\n' >"$work/b"
printf '127.0.0.2 edge-a\n127.0.0.5 edge-a\n127.0.0.4 edge-b\n' >"$work/c"
: >"$work/none" # the resolver answers nothing at all (down)
cp "$work/a" "$hosts"
out=$(EDGE_NAMES="edge-a edge-b" EDGE_PORT=5060 DROP_AFTER=3 unshare --mount -- /bin/bash -c '
mount --bind "$0" /etc/resolv.conf
mount --bind "$1" /etc/hosts
run=$2 work=$3
sync() { echo "== $1"; cat "$work/$2" >/etc/hosts; WORK="$work/lb" "$run" --sync 2>&1 | grep -v "^#" || true; }
sync "start (a: .2 .3, b: .4)" a
sync "1 without .3" b
sync "2 without .3" b
sync "3 without .3" b
sync "still without .3" b
sync ".3 gone, .5 new" c
sync "nothing resolves (1)" none
sync "nothing resolves (2)" none
sync "nothing resolves (3)" none
sync "nothing resolves (4)" none
' "$conf" "$hosts" "$here/deploy/kamailio/run.sh" "$work") || {
    echo "run_sh_list: run.sh --sync failed (exit $?)" >&2
    echo "$out" >&2
    exit 1
}
echo "$out"
# expect TITLE LINE...: what the sync titled TITLE printed, exactly
expect() {
    local title=$1 got want
    got=$(awk -v t="== $title" '$0 == t { on = 1; next } /^== / { on = 0 } on' <<<"$out")
    shift
    want=$(if (($# > 0)); then printf '%s\n' "$@"; fi)
    if [[ "$got" != "$want" ]]; then
        printf 'run_sh_list: after "%s": got\n%s\nwanted\n%s\n' "$title" "$got" "$want" >&2
        exit 1
    fi
}
l2='1 sip:127.0.0.2:5060 0 0 name=edge-a'
l4='1 sip:127.0.0.4:5060 0 0 name=edge-b'
l5='1 sip:127.0.0.5:5060 0 0 name=edge-a'
expect "start (a: .2 .3, b: .4)"
expect "1 without .3"
expect "2 without .3"
expect "3 without .3" "run.sh: sip:127.0.0.3:5060 (edge-a) not resolved for 3 syncs: dropped" \
    "run.sh: edges changed: 2 in the list" "$l2" "$l4"
expect "still without .3"
expect ".3 gone, .5 new" "run.sh: edges changed: 3 in the list" "$l2" "$l4" "$l5"
# no name resolving at all is the resolver being down: the list stays
kept="run.sh: no edge name resolved (is the resolver down?): the list is kept"
for i in 1 2 3 4; do expect "nothing resolves ($i)" "$kept"; done
grep -vh '^#' "$work/lb/dispatcher.list" | sort >"$work/final"
printf '%s\n' "$l2" "$l4" "$l5" | sort | diff -q - "$work/final" >/dev/null || {
    echo "run_sh_list: the list changed while nothing resolved:" >&2
    cat "$work/final" >&2
    exit 1
}
echo "run_sh_list: ok (a new address at the next sync; a missing one dropped after 3 syncs, not before; the list kept while nothing resolves)"
