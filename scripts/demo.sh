#!/usr/bin/env bash
# make demo: a gateway on a temporary data directory, three workloads queued
# through the admin API and run by `taskgate worker run` — one succeeds and
# pushes an XCom, one fails, one is killed from outside by an operator
# marking it failed — and what happened, printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
tg="$tmp/taskgate"
data="$tmp/data"
export TASKGATE_CREDENTIALS="$tmp/credentials.json"
unset TASKGATE_TOKEN
for v in $(env | grep -o '^AIRFLOW__[A-Z_]*' || true); do unset "$v"; done

say "building taskgate"
go build -o "$tg" .

say "creating an admin user in $data (offline, before the server starts)"
printf 'demo-password\n' | "$tg" --data-dir "$data" users add demo --role admin --password-stdin

say "starting the gateway"
"$tg" --data-dir "$data" serve --listen 127.0.0.1:0 2>"$tmp/server.log" &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
  addr=$(sed -n 's/.*"msg":"listening","addr":"\([^"]*\)".*/\1/p' "$tmp/server.log" | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log"; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "the gateway did not start"; cat "$tmp/server.log"; exit 1; }
server="http://$addr"
echo "listening on $server"

say "logging in and queueing three workloads through the admin API"
printf 'demo-password\n' | "$tg" login --server "$server" --username demo --password-stdin
for task in extract transform load; do
  # --output: mode 0600, which `worker run` requires (it removes the file once read).
  "$tg" workloads queue --dag-id demo --run-id manual__1 --task-id "$task" --max-tries 0 --output "$tmp/$task.json"
  echo "queued $task: ti $(sed -n 's/.*"id": "\([0-9a-f-]*\)".*/\1/p' "$tmp/$task.json" | head -n 1)"
done

run_worker() { # task, then the command
  local task=$1; shift
  "$tg" worker run --workload "$tmp/$task.json" --server "$server/execution" --heartbeat-interval 1s \
    --kill-grace 2s -- "$@" 2>"$tmp/worker-$task.log"
}

say "extract: a command that succeeds and prints a JSON return value"
set +e
run_worker extract sh -c 'echo "reading rows"; echo "{\"rows\": 42}"'
echo "worker exit code: $?"

say "transform: a command that fails"
run_worker transform sh -c 'echo "bad input" >&2; exit 3'
echo "worker exit code: $?"

say "load: a long command, marked failed from outside while it runs"
run_worker load sh -c 'echo "loading"; sleep 60' &
worker_pid=$!
for _ in $(seq 1 100); do
  grep -q '"line":"loading"' "$tmp/worker-load.log" 2>/dev/null && break
  sleep 0.1
done
"$tg" tasks mark demo manual__1 load --state failed >/dev/null
echo "operator: tasks mark demo manual__1 load --state failed"
wait "$worker_pid"
echo "worker exit code: $?"
set -e

say "what the gateway recorded"
"$tg" tasks list --dag-id demo
say "extract's return value, pushed by its worker as the return_value XCom"
token=$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$TASKGATE_CREDENTIALS")
curl -s -H "Authorization: Bearer $token" \
  "$server/api/v2/dags/demo/dagRuns/manual__1/taskInstances/extract/xcomEntries/return_value"
echo
say "the extract worker's log: the command's output and the state it reported"
grep -E 'task output|state reported' "$tmp/worker-extract.log" | head -n 4 || true
say "the load worker's log: stopped by the server"
grep -iE '409|not_running|stop|SIGTERM' "$tmp/worker-load.log" | head -n 5 || true

"$tg" logout >/dev/null 2>&1 || true
say "done"
