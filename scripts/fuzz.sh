#!/usr/bin/env bash
# Runs every Go fuzz target in the module. FUZZTIME bounds each target: a
# count of executions ("5000x", the default, which load cannot turn into a
# failure) or a duration ("2m", for `make fuzz`, where the machine is quiet).
# Each target's output goes to a fresh temporary file, shown when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-5000x}
log=$(mktemp "${TMPDIR:-/tmp}/taskgate-fuzz.XXXXXX")
trap 'rm -f "$log"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/' | sort -u); do
    echo "fuzz $pkg $target for $t"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$t" "$pkg" >"$log" 2>&1 || { cat "$log"; exit 1; }
  done
done
echo "fuzz: all targets passed"
