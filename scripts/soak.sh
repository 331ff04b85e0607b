#!/usr/bin/env bash
# The long versions of the hostile, concurrency and crash tests, then
# longer fuzzing of the gateway's request decoders. With SOAK=1 the tests
# run their long counts: every bit of every token character in the hostile
# corpus, 30 rounds of 100 concurrent /run, 64 racing task instances,
# 2000 connections, and 50 SIGKILLs under write load. Bounded by TIMEOUT
# (default 12m) for the tests plus FUZZTIME (default 1m) per gateway fuzz
# target: under 15 minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
timeout=${TIMEOUT:-12m}
fuzztime=${FUZZTIME:-1m}

echo "soak: hostile, concurrency and crash tests (SOAK=1, -race, timeout $timeout)"
log=$(mktemp /tmp/taskgate-soak.XXXXXX)
set +e
SOAK=1 go test -race -count=1 -timeout "$timeout" -v \
  -run '^(TestHostile|TestConcurrent|TestCrash)' \
  ./integration_test/ ./tokens/ ./gateway/ 2>&1 | tee "$log" |
  grep --line-buffered -E '^(--- |ok|FAIL|PASS|panic)|KNOWN|corpus|SIGKILL|connections|rounds|task instances|limited'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "soak: tests failed (exit $status); full output in $log"
  exit "$status"
fi
rm -f "$log"

for target in FuzzDecodeRunRequest FuzzDecodeStateUpdate FuzzDecodeBodies FuzzParseTimes FuzzPathParams; do
  echo "soak: fuzz gateway $target for $fuzztime"
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" ./gateway/ >/tmp/taskgate-soak-fuzz.log 2>&1 ||
    { cat /tmp/taskgate-soak-fuzz.log; exit 1; }
done
echo "soak: all passed"
