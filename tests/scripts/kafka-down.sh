#!/usr/bin/env bash
# Stop the private Kafka started by kafka-up.sh: SIGTERM (controlled
# shutdown), wait up to 30 s, then SIGKILL. Data and ports are kept for the
# next kafka-up.sh unless --purge is given (then .run/kafka is removed); the
# topics of test, demo and benchmark runs are deleted first (keep them with
# SIPDRAIN_KEEP_TOPICS=1).
# --cluster: the three nodes of kafka-up.sh --cluster (.run/kafka-cluster),
# stopped one after the other.
# Safe to call when nothing runs.
set -euo pipefail

purge=0 cluster=0
for arg in "$@"; do
  case "$arg" in
    --purge) purge=1 ;;
    --cluster) cluster=1 ;;
    *) echo "usage: $0 [--cluster] [--purge]" >&2; exit 2 ;;
  esac
done

script_dir=$(cd "$(dirname "$0")" && pwd)
REPO=$(git -C "$script_dir/../.." rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/../.." && pwd))
if ((cluster)); then
  run="$REPO/.run/kafka-cluster"
  NODES=(1 2 3)
else
  run="$REPO/.run/kafka"
  NODES=(1)
fi
node_dir() { if ((cluster)); then echo "$run/node$1"; else echo "$run"; fi; }

say() { echo "kafka-down: $*" >&2; }

# running_pid NODE: pid of that node if it is alive (guards against a
# recycled pid).
running_pid() {
  local pid dir
  dir=$(node_dir "$1")
  [[ -f "$dir/pid" ]] || return 1
  pid=$(<"$dir/pid")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $dir/server.properties" || return 1
  echo "$pid"
}

first=1
for i in "${NODES[@]}"; do
  if pid=$(running_pid "$i"); then
    # The runs' own topics (tests: t.*, demo: demo.*, benchmarks: bench.*) go
    # first, so the partitions of every run do not pile up in the data kept for
    # the next start (thousands of them make the broker slow to start, then
    # run it out of memory or file descriptors). Best effort: a failure here
    # does not stop the shutdown.
    if ((first && !purge)) && [[ -f "$run/env" ]] && [[ -z "${SIPDRAIN_KEEP_TOPICS:-}" ]]; then
      "$script_dir/kafka-delete-topics.sh" $( ((cluster)) && echo --cluster) t. demo. bench. >&2 ||
        say "could not delete the runs' topics (kept)"
    fi
    first=0
    say "stopping Kafka$( ((cluster)) && echo " node $i") (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((k = 0; k < 60; k++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "still running after 30 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((k = 0; k < 20; k++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
    say "stopped"
  else
    say "$( ((cluster)) && echo "node $i ")not running"
  fi
  rm -f "$(node_dir "$i")/pid"
done

if ((purge)); then
  rm -rf "$run"
  say "purged $run"
fi
