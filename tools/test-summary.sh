#!/usr/bin/env bash
# Prints the closing summary of a test run: CTest's count of test programs
# and Criterion's count of test cases inside them, from CTest's last log.
set -u
build=${1:-build}
log="$build/Testing/Temporary/LastTest.log"
[ -f "$log" ] || { echo "test-summary: no $log"; exit 0; }
awk '
  /Synthesis: Tested:/ {
    for (i = 1; i <= NF; i++) {
      if ($i == "Tested:") t += $(i+1); if ($i == "Passing:") p += $(i+1);
      if ($i == "Failing:") f += $(i+1); if ($i == "Crashing:") c += $(i+1);
    }
  }
  /^[0-9]+\/[0-9]+ Test: / { programs++ }
  / Test Passed\./ { passed++ }
  END {
    printf "== test cases (Criterion): %d tested, %d passing, %d failing, %d crashing\n", t, p, f, c
  }' "$log"
