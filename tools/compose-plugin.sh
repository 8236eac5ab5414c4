#!/usr/bin/env bash
# Docker Compose v2 - the `docker compose` CLI plugin - built from source
# through the Go module proxy, for the compose test's second spelling
# (issue #13). Debian 12 packages only docker-compose 1.29 (`docker-compose`,
# v1); Docker's own package repository cannot be reached here. The v2 line
# is published as the Go module github.com/docker/compose/v5 since 2025
# (v2.x -> v5.x: the same `docker compose` plugin, renumbered).
#
#   tools/compose-plugin.sh          build if missing, install, print the path
#   tools/compose-plugin.sh --check  exit 0 when `docker compose version` works
#
# Cache: ${SIPDRAIN_CACHE:-~/.cache/sipdrain}/compose-<version>/docker-compose
# (built once per machine, about 4 minutes on 2 cores; `.complete` marks it).
# Installed as /usr/local/lib/docker/cli-plugins/docker-compose, where the
# docker CLI looks for plugins. Needs Go (the machine's) and the module
# proxy; nothing else is downloaded.
set -euo pipefail

COMPOSE_VERSION=v5.6.0
MODULE=github.com/docker/compose/v5

cache="${SIPDRAIN_CACHE:-$HOME/.cache/sipdrain}"
dest="$cache/compose-$COMPOSE_VERSION"
plugin_dir=/usr/local/lib/docker/cli-plugins

if [[ "${1:-}" == --check ]]; then
    docker compose version >/dev/null 2>&1
    exit $?
fi

if [[ ! -f "$dest/.complete" ]]; then
    command -v go >/dev/null || { echo "compose-plugin: go not found" >&2; exit 1; }
    mkdir -p "$cache"
    exec 9>"$cache/.compose-$COMPOSE_VERSION.lock"
    flock 9
fi
if [[ ! -f "$dest/.complete" ]]; then
    echo "compose-plugin: building Docker Compose $COMPOSE_VERSION from $MODULE (Go module proxy)" >&2
    rm -rf "$dest"
    mkdir -p "$dest"
    start=$SECONDS
    # `go install module@version` refuses a module whose go.mod has exclude
    # or replace directives (compose's has): build it as the main module,
    # from the module cache's copy of its source, with its own go.sum.
    src=$(go mod download -json "$MODULE@$COMPOSE_VERSION" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cp -r "$src/." "$work/"
    chmod -R u+w "$work"
    (cd "$work" && CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X $MODULE/internal.Version=$COMPOSE_VERSION" \
        -o "$dest/docker-compose" ./cmd) >&2
    touch "$dest/.complete"
    echo "compose-plugin: built in $((SECONDS - start)) s" >&2
fi
if ! cmp -s "$dest/docker-compose" "$plugin_dir/docker-compose" 2>/dev/null; then
    mkdir -p "$plugin_dir"
    install -m 0755 "$dest/docker-compose" "$plugin_dir/docker-compose"
    echo "compose-plugin: installed $plugin_dir/docker-compose" >&2
fi
echo "$plugin_dir/docker-compose"
