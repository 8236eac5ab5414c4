#!/usr/bin/env bash
# tests/compose/engine.sh - a container engine for the compose test
# (tests/compose/run.sh, issue #13), prepared the way this kind of machine
# needs it.
#
#   engine.sh prepare   make an engine usable: Docker Engine when `docker info`
#                       answers; otherwise Podman from Debian serving the
#                       Docker API (installs packages, writes
#                       /etc/containers/containers.conf, starts the API
#                       service), then the images the stack needs (official
#                       where a registry answers, else stand-ins built here).
#                       Idempotent; every change to the host is printed.
#   engine.sh env       no changes (except starting Podman's API service
#                       again when prepare did set it up): prints the
#                       `export DOCKER_HOST=... SIPDRAIN_ENGINE=...` line the
#                       test uses; exit 77 with the reason when there is no
#                       usable engine or an image is missing.
#   engine.sh images    one line per image of the stack: official or stand-in
#   engine.sh healthchecks PROJECT SECONDS
#                       Podman 4.3 runs health checks from systemd timers; with
#                       no systemd nothing runs them and `up` waits forever on
#                       `condition: service_healthy`. This runs
#                       `podman healthcheck run` for every running container of
#                       compose project PROJECT that has a health check, each
#                       at its own interval (at least every 2 s), for at most
#                       SECONDS, and stops early when its parent (the test) is
#                       gone. Docker Engine runs its own: returns at once.
#   engine.sh stop      stops the Podman API service this script started.
#
# Caches (between runs on this machine, never between machines): the images
# stay in the engine's storage; the debootstrap root file system of
# debian:12 is kept as ${SIPDRAIN_CACHE:-~/.cache/sipdrain}/debian-12-*.tar.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${SIPDRAIN_CACHE:-$HOME/.cache/sipdrain}
state=/run/sipdrain-compose                   # the API service's pid and log
sock=/run/podman/podman.sock
conf=/etc/containers/containers.conf
conf_marker="# written by sipdrain tests/compose/engine.sh"
# Images docker-compose.yml names, plus the base images deploy/Dockerfile
# builds from, plus the test's own SIPp image (tests/compose/images/sipp).
BASE_IMAGES=(docker.io/library/debian:12 docker.io/library/debian:12-slim)
PG_IMAGE=docker.io/library/postgres:15
KAFKA_IMAGE=docker.io/apache/kafka:3.9.1
SIPP_IMAGE=localhost/sipdrain-compose-sipp:latest
STANDIN_LABEL=org.sipdrain.stand-in       # set on every image built here
PULL_TIMEOUT_S=${PULL_TIMEOUT_S:-30}

say() { echo "engine: $*" >&2; }
changed() { echo "engine: host change: $*" >&2; }

# The Docker Engine counts only when it is not Podman behind the Docker API
# (Podman names itself in the version's components).
docker_engine_usable() {
    local components
    command -v docker >/dev/null || return 1
    components=$(timeout 10 docker version --format \
        '{{range .Server.Components}}{{.Name}} {{end}}' 2>/dev/null) || return 1
    [[ "$components" != *Podman* ]]
}

podman_api_up() {
    [[ -S "$sock" ]] && timeout 5 curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1
}

# ---------------------------------------------------------------- Podman setup
podman_packages() {
    # runc: crun rejects this hybrid cgroup layout (issue #13); netavark and
    # aardvark-dns: the compose network with names (edges find each other and
    # the load balancer finds the edges by DNS); iptables: netavark's NAT for
    # the published port; debootstrap: the debian:12 base image; curl: the
    # API check above.
    local want=(podman runc netavark aardvark-dns iptables catatonit debootstrap curl)
    local missing=() p
    for p in "${want[@]}"; do
        [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    if [[ "$(id -u)" != 0 ]]; then
        say "missing packages (${missing[*]}); as root: apt-get install -y --no-install-recommends ${missing[*]}"
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # the lists may be old or empty: refresh once, then install
    say "apt-get update"
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    changed "installed Debian packages: ${missing[*]}"
}

# The settings this machine needs, in the system-wide containers.conf. A
# file someone else wrote is left alone unless it lacks them (then we stop
# and say what to add).
podman_conf() {
    local want
    want=$(
        cat <<EOF
$conf_marker (sipdrain compose test, issue #13)
[containers]
# the VM refuses higher hard limits than these (Podman's default asks more)
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
# crun rejects this machine's hybrid cgroup v1/v2 layout; runc works
runtime = "runc"
# no systemd: cgroups by cgroupfs, events to a file instead of journald
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    )
    if [[ -f "$conf" ]] && ! head -1 "$conf" | grep -qF "$conf_marker"; then
        if grep -q 'runtime *= *"runc"' "$conf" && grep -q 'default_ulimits' "$conf"; then
            say "$conf exists (not ours) and has the settings; left alone"
            return 0
        fi
        say "$conf exists and was not written by this script; add to it:"
        echo "$want" >&2
        return 1
    fi
    [[ -f "$conf" && "$(cat "$conf")" == "$want" ]] && return 0
    mkdir -p "$(dirname "$conf")"
    echo "$want" >"$conf"
    changed "wrote $conf (default_ulimits, runtime runc, cgroupfs, file events)"
}

# `podman system service` serves the Docker API for docker-compose; started
# detached (setsid) so it outlives this script and later runs reuse it, from
# / so that no checkout it was started in can be deleted under it: conmon
# inherits the service's working directory, and with that directory gone
# (a CI clone removed) every container failed to start with "write child:
# broken pipe". A service found in that state is stopped and started again.
podman_service() {
    local old i
    old=$(cat "$state/podman-service.pid" 2>/dev/null || true)
    if [[ "$old" =~ ^[0-9]+$ ]] && [[ "$(readlink "/proc/$old/cwd" 2>/dev/null)" == *" (deleted)" ]]; then
        kill "$old" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
        changed "stopped podman system service (pid $old): its working directory was deleted"
    fi
    podman_api_up && return 0
    mkdir -p "$state" "$(dirname "$sock")"
    rm -f "$sock"
    (cd / && exec setsid nohup podman system service --time=0 "unix://$sock" </dev/null \
        >"$state/podman-service.log" 2>&1) &
    local pid=$!
    for ((i = 0; i < 50; i++)); do
        podman_api_up && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if ! podman_api_up; then
        say "podman system service did not answer on $sock:"
        tail -20 "$state/podman-service.log" >&2
        kill "$pid" 2>/dev/null || true
        return 1
    fi
    echo "$pid" >"$state/podman-service.pid"
    changed "started podman system service on $sock (pid $(cat "$state/podman-service.pid"); engine.sh stop ends it)"
}

# ---------------------------------------------------------------- images
ctr() { "$CLI" "$@"; }

image_present() { ctr image inspect "$1" >/dev/null 2>&1; }

# context_hash DIR: what a stand-in was built from (its files' contents)
context_hash() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16; }

# standin_stale IMAGE DIR: IMAGE is a stand-in built here from other
# sources than DIR holds now (an entry point changed): build it again. An
# image from a registry is never touched.
standin_stale() {
    local standin built
    standin=$(ctr image inspect --format "{{ index .Config.Labels \"$STANDIN_LABEL\" }}" "$1" 2>/dev/null) || return 1
    [[ -n "$standin" && "$standin" != "<no value>" ]] || return 1
    built=$(ctr image inspect --format '{{ index .Config.Labels "org.sipdrain.context" }}' "$1" 2>/dev/null) || true
    [[ "$built" != "$(context_hash "$2")" ]]
}

# The official image, if a registry answers within PULL_TIMEOUT_S.
try_pull() {
    say "pulling $1 (at most ${PULL_TIMEOUT_S} s)"
    if timeout "$PULL_TIMEOUT_S" "$CLI" pull "$1" >/dev/null 2>&1; then
        say "pulled $1 (official)"
        return 0
    fi
    say "no registry answered for $1: building a stand-in"
    return 1
}

# The mirror apt uses here (deb822 or one-line sources), for debootstrap.
debian_mirror() {
    local m
    m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{ print $2 }' |
        grep -v -- '-security' | grep debian | head -1)
    [[ -n "$m" ]] || m=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{ print $2 }' |
        grep -v -- '-security' | grep debian | head -1)
    echo "${m:-http://deb.debian.org/debian}"
}

# debian:12 and debian:12-slim: one debootstrap (minbase) root file system,
# tarred into the cache once, imported under both names. The official slim
# image is the same system with documentation left out; the difference does
# not matter to deploy/Dockerfile.
base_images() {
    local need=0 img
    for img in "${BASE_IMAGES[@]}"; do image_present "$img" || need=1; done
    ((need)) || return 0
    if try_pull docker.io/library/debian:12 && try_pull docker.io/library/debian:12-slim; then
        return 0
    fi
    local mirror tarball rootfs t0=$SECONDS
    mirror=$(debian_mirror)
    tarball=$cache/debian-12-bookworm-minbase.tar
    if [[ ! -s "$tarball" ]]; then
        command -v debootstrap >/dev/null || { say "debootstrap is not installed"; return 1; }
        rootfs=$(mktemp -d /var/tmp/sipdrain-debootstrap-XXXXXX)
        say "debootstrap bookworm (minbase) from $mirror into $rootfs"
        debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
            tail -20 "$rootfs.log" >&2
            rm -rf "$rootfs" "$rootfs.log"
            return 1
        }
        # the sources of the official image: the release, its updates and
        # security, from the same mirror (deb.debian.org in the official one)
        rm -f "$rootfs/etc/apt/sources.list"
        local security=${mirror%/debian}/debian-security
        cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        # as in the official image: no package lists or caches in the layer
        rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
            "$rootfs"/var/cache/apt/archives/*.deb
        mkdir -p "$cache"
        tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$rootfs" "$rootfs.log"
        changed "cached the debootstrap root file system in $tarball ($(du -h "$tarball" | cut -f1), $((SECONDS - t0)) s)"
    fi
    for img in "${BASE_IMAGES[@]}"; do
        image_present "$img" && continue
        ctr import --change 'CMD ["bash"]' --change "LABEL $STANDIN_LABEL=debootstrap" \
            "$tarball" "$img" >/dev/null
        changed "imported $img from $tarball (stand-in)"
    done
}

# build NAME CONTEXT [SOURCES]: a stand-in image from tests/compose/images/<dir>,
# labelled with SOURCES' context_hash (default CONTEXT's)
build_image() {
    local name=$1 context=$2 t0=$SECONDS blog hash
    hash=$(context_hash "${3:-$2}")
    blog=$(mktemp /tmp/sipdrain-image-build-XXXXXX.log)
    say "building $name from $context"
    # --pull=false / never: the base is the local debian:12, never a registry
    if [[ "$ENGINE" == podman ]]; then
        ctr build --pull=never --label "org.sipdrain.context=$hash" -t "$name" "$context" >"$blog" 2>&1 || {
            tail -30 "$blog" >&2
            return 1
        }
    else
        DOCKER_BUILDKIT=0 ctr build --label "org.sipdrain.context=$hash" -t "$name" "$context" >"$blog" 2>&1 || {
            tail -30 "$blog" >&2
            return 1
        }
    fi
    rm -f "$blog"
    changed "built $name ($((SECONDS - t0)) s)"
}

standin_images() {
    local ctx kafka_dir
    if { ! image_present "$PG_IMAGE" && ! try_pull "$PG_IMAGE"; } ||
        standin_stale "$PG_IMAGE" "$here/images/postgres"; then
        ctx=$(mktemp -d /var/tmp/sipdrain-pg-XXXXXX)
        cp -a "$here/images/postgres/." "$ctx/"
        build_image "$PG_IMAGE" "$ctx" "$here/images/postgres"
        rm -rf "$ctx"
    fi
    if { ! image_present "$KAFKA_IMAGE" && ! try_pull "$KAFKA_IMAGE"; } ||
        standin_stale "$KAFKA_IMAGE" "$here/images/kafka"; then
        # the broker jars the project caches (tools/kafka-fetch.sh), nothing
        # downloaded from anywhere else
        kafka_dir=$("$repo/tools/kafka-fetch.sh")
        ctx=$(mktemp -d /var/tmp/sipdrain-kafka-XXXXXX)
        cp -a "$here/images/kafka/." "$ctx/"
        mkdir -p "$ctx/libs"
        cp "$kafka_dir"/libs/*.jar "$ctx/libs/"
        build_image "$KAFKA_IMAGE" "$ctx" "$here/images/kafka"
        rm -rf "$ctx"
    fi
    # the test's SIPp phones and gateway (sip-tester from Debian); always ours
    if ! image_present "$SIPP_IMAGE"; then
        build_image "$SIPP_IMAGE" "$here/images/sipp"
    fi
}

# ---------------------------------------------------------------- verbs
# Every `up --build` after a source change leaves the old sipdrain image and
# its build stage (about 1.4 GB) untagged: without this, the engine's
# storage grows by that much with every change CI builds. Untagged images
# older than a day go; the newer ones stay as the build cache (a layer older
# than that is rebuilt once: tools/deps.sh and sofia-sip, a few minutes).
prune_images() {
    local before after
    before=$(ctr images -q --filter dangling=true | wc -l)
    ctr image prune -f --filter until=24h >/dev/null 2>&1 || true
    after=$(ctr images -q --filter dangling=true | wc -l)
    if ((before > after)); then
        changed "removed $((before - after)) untagged images older than a day (build leftovers)"
    fi
}

select_engine() {
    if docker_engine_usable; then
        ENGINE=docker CLI=docker HOST_URL=${DOCKER_HOST:-}
    else
        ENGINE=podman CLI=podman HOST_URL=unix://$sock
    fi
}

cmd_prepare() {
    local t0=$SECONDS
    select_engine
    if [[ "$ENGINE" == docker ]]; then
        say "Docker Engine answers: using it"
    else
        say "no Docker Engine: Podman from Debian"
        podman_packages
        podman_conf
        podman_service
    fi
    base_images
    standin_images
    prune_images
    say "ready: $ENGINE in $((SECONDS - t0)) s"
    emit_env
}

emit_env() {
    printf 'export DOCKER_HOST=%q SIPDRAIN_ENGINE=%q\n' "$HOST_URL" "$ENGINE"
}

# no changes; exit 77 with the reason when the test cannot run here
cmd_env() {
    local img missing=()
    select_engine
    if [[ "$ENGINE" == podman ]]; then
        if ! command -v podman >/dev/null; then
            echo "no Docker Engine and no Podman (run tests/compose/engine.sh prepare)" >&2
            exit 77
        fi
        if ! head -1 "$conf" 2>/dev/null | grep -qF "$conf_marker" &&
            ! grep -qs 'runtime *= *"runc"' "$conf"; then
            echo "Podman is installed but not prepared for this machine (run tests/compose/engine.sh prepare)" >&2
            exit 77
        fi
        podman_service || exit 77
    fi
    for img in "${BASE_IMAGES[@]}" "$PG_IMAGE" "$KAFKA_IMAGE" "$SIPP_IMAGE"; do
        image_present "$img" || missing+=("$img")
    done
    if ((${#missing[@]})); then
        echo "$ENGINE is usable but images are missing: ${missing[*]} (run tests/compose/engine.sh prepare)" >&2
        exit 77
    fi
    emit_env
}

cmd_images() {
    local img label
    select_engine
    for img in "${BASE_IMAGES[@]}" "$PG_IMAGE" "$KAFKA_IMAGE" "$SIPP_IMAGE"; do
        label=$(ctr image inspect --format "{{ index .Config.Labels \"$STANDIN_LABEL\" }}" "$img" 2>/dev/null) ||
            { echo "$img: missing"; continue; }
        if [[ "$img" == "$SIPP_IMAGE" ]]; then
            echo "$img: built here (the test's SIPp, Debian's sip-tester)"
        elif [[ -n "$label" && "$label" != "<no value>" ]]; then
            echo "$img: stand-in ($label)"
        else
            echo "$img: official"
        fi
    done
}

# A Go duration as Podman prints it ("5s", "1m30s", "500ms") in whole
# seconds (0 for anything shorter or unknown).
duration_s() {
    local d=$1 total=0 n
    while [[ "$d" =~ ^([0-9]+)(h|ms|m|s)(.*)$ ]]; do
        n=${BASH_REMATCH[1]}
        case "${BASH_REMATCH[2]}" in
        h) total=$((total + n * 3600)) ;;
        m) total=$((total + n * 60)) ;;
        s) total=$((total + n)) ;;
        esac
        d=${BASH_REMATCH[3]}
    done
    echo "$total"
}

# Health checks for Podman without systemd (see the header). Each container
# is checked at its own interval (Podman reports it in ns), at least 2 s.
cmd_healthchecks() {
    local project=${1:?project} seconds=${2:?seconds} parent=$PPID
    select_engine
    [[ "$ENGINE" == podman ]] || return 0
    local end=$((SECONDS + seconds)) id interval
    # next check due per container; its interval, looked up once (0 = none):
    # one `podman ps` a round, not an inspect per container (2 cores)
    declare -A next=() every=()
    while ((SECONDS < end)) && kill -0 "$parent" 2>/dev/null; do
        for id in $(podman ps -q --filter "label=com.docker.compose.project=$project" 2>/dev/null); do
            if [[ -z "${every[$id]:-}" ]]; then
                interval=$(podman inspect --format '{{ if .Config.Healthcheck }}{{ .Config.Healthcheck.Interval }}{{ end }}' \
                    "$id" 2>/dev/null) || continue
                if [[ -z "$interval" ]]; then
                    every[$id]=0
                else
                    every[$id]=$(duration_s "$interval")
                    ((every[$id] >= 2)) || every[$id]=2
                fi
            fi
            ((every[$id] > 0)) || continue
            ((SECONDS >= ${next[$id]:-0})) || continue
            next[$id]=$((SECONDS + every[$id]))
            # a failing check is the container's state, not this loop's error
            timeout 60 podman healthcheck run "$id" >/dev/null 2>&1 || true
        done
        sleep 2
    done
}

cmd_stop() {
    local pid
    [[ -f "$state/podman-service.pid" ]] || { say "no API service started by this script"; return 0; }
    pid=$(<"$state/podman-service.pid")
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' </proc/"$pid"/cmdline | grep -q "system service"; then
        kill "$pid"
        changed "stopped podman system service (pid $pid)"
    fi
    rm -f "$state/podman-service.pid"
}

case "${1:-}" in
prepare) cmd_prepare ;;
env) cmd_env ;;
images) cmd_images ;;
healthchecks) cmd_healthchecks "${2:-}" "${3:-}" ;;
stop) cmd_stop ;;
*)
    echo "usage: $0 prepare|env|images|healthchecks PROJECT SECONDS|stop" >&2
    exit 2
    ;;
esac
