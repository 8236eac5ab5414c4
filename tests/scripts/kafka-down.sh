#!/usr/bin/env bash
# Stop the private Kafka started by kafka-up.sh: SIGTERM (controlled
# shutdown), wait up to 30 s, then SIGKILL. Data and ports are kept for the
# next kafka-up.sh unless --purge is given (then .run/kafka is removed); the
# topics of test, demo and benchmark runs are deleted first (keep them with
# SIPDRAIN_KEEP_TOPICS=1).
# Safe to call when nothing runs.
set -euo pipefail

purge=0
for arg in "$@"; do
  case "$arg" in
    --purge) purge=1 ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
  esac
done

script_dir=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$script_dir/../.." rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))
run="$REPO/.run/kafka"

say() { echo "kafka-down: $*" >&2; }

# pid of our broker if it is alive (guards against a recycled pid).
running_pid() {
  local pid
  [[ -f "$run/pid" ]] || return 1
  pid=$(<"$run/pid")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $run/server.properties" || return 1
  echo "$pid"
}

if pid=$(running_pid); then
  # The runs' own topics (tests: t.*, demo: demo.*, benchmarks: bench.*) go
  # first, so the partitions of every run do not pile up in the data kept for
  # the next start (thousands of them make the broker slow to start, then
  # run it out of memory or file descriptors). Best effort: a failure here
  # does not stop the shutdown.
  if ((!purge)) && [[ -f "$run/env" ]] && [[ -z "${SIPDRAIN_KEEP_TOPICS:-}" ]]; then
    "$script_dir/kafka-delete-topics.sh" t. demo. bench. >&2 || say "could not delete the runs' topics (kept)"
  fi
  say "stopping Kafka (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "still running after 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
  say "stopped"
else
  say "not running"
fi
rm -f "$run/pid"

if ((purge)); then
  rm -rf "$run"
  say "purged $run"
fi
