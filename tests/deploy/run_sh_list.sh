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
# How the list is kept over time (lookups that get no answer, addresses that
# go, the resolver down) is run_sh_watch.py's.
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
