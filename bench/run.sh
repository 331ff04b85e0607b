#!/bin/sh
# bench/run.sh is what `make bench` runs: it builds the real taskgate binary,
# the load generator and the bare Echo baseline server, pins the servers to
# CPU 0 and the load generator to CPU 1 when taskset is available, and runs
# the load generator, which provisions a temporary data directory, starts the
# servers, measures every phase and prints the report (Markdown) on stdout.
#
# Parameters (environment, all optional):
#   CONNS=64          connections of the read, heartbeat and mix phases
#   CONNS_HIGH=1024   connections of the high-concurrency heartbeat phase
#   DURATION=10s      measured time per phase (WARMUP=1s before each)
#   TASKS=10000       active task instances (heartbeating, reading, …)
#   STORED=100000     task instances stored in the database
#   ALG=HS512,EdDSA   signing algorithms, one gateway run each (also RS256, RS512)
#   RUNS=1            repetitions of each timed phase; the report shows medians
#   MIX=…             call weights of the mix phases (see loadgen -h)
#   PHASES=…          only these phases (baseline, run, variable, connection,
#                     heartbeat, heartbeat-high, mix, mix-paced, state)
#   BENCH_ARGS=…      further loadgen flags, e.g. -keep, -out FILE or -pprof ADDR
#
# PostgreSQL mode, PG=1: taskgate on Airflow's metadata database (a fresh
# database on the server, provisioned as Airflow would, dropped at the end)
# with 1, 2 and 3 replicas, heartbeats against pgbench running the same
# UPDATE with the same client count (the ceiling), reads and the mix against
# the embedded store; nothing is pinned (PostgreSQL shares the CPUs).
#   PG_URL=…          the server's maintenance database (default
#                     TASKGATE_TEST_DATABASE_URL, else the local server)
#   REPLICAS=1,2,3    replica counts
#   PGBENCH=pgbench   the pgbench binary
#   TASKS=2000        active task instances per replica count (PG mode default)
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
CONNS=${CONNS:-64}
CONNS_HIGH=${CONNS_HIGH:-1024}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
TASKS_GIVEN=${TASKS:-}
TASKS=${TASKS:-10000}
STORED=${STORED:-100000}
ALG=${ALG:-HS512,EdDSA}
RUNS=${RUNS:-1}
MIX=${MIX:-}
PHASES=${PHASES:-}
BENCH_ARGS=${BENCH_ARGS:-}
PG=${PG:-}

mkdir -p bin
"$GO" build -o bin/taskgate .
"$GO" build -o bin/bench-loadgen ./bench/cmd/loadgen
"$GO" build -o bin/bench-baseline ./bench/cmd/baseline

server_cpu=
pin=
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	server_cpu=0
	pin="taskset -c 1"
else
	echo "bench: taskset unavailable or a single CPU: servers and load generator are not pinned" >&2
fi

if [ -n "$PG" ] && [ "$PG" != 0 ]; then
	PG_URL=${PG_URL:-${TASKGATE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}}
	REPLICAS=${REPLICAS:-1,2,3}
	PGBENCH=${PGBENCH:-pgbench}
	TASKS=${TASKS_GIVEN:-2000}
	cmd="make bench PG=1 CONNS=$CONNS DURATION=$DURATION TASKS=$TASKS REPLICAS=$REPLICAS"
	[ -z "$PHASES" ] || cmd="$cmd PHASES=$PHASES"
	set -- -server bin/taskgate -conns "$CONNS" -duration "$DURATION" -warmup "$WARMUP" -tasks "$TASKS" \
		-postgres "$PG_URL" -replicas "$REPLICAS" -pgbench "$PGBENCH" -pg-schema testdata/airflow/1d6611b6ab7c.sql \
		-command "$cmd"
	[ -z "$MIX" ] || set -- "$@" -mix "$MIX"
	[ -z "$PHASES" ] || set -- "$@" -phases "$PHASES"
	# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
	exec bin/bench-loadgen "$@" $BENCH_ARGS
fi

cmd="make bench CONNS=$CONNS DURATION=$DURATION TASKS=$TASKS STORED=$STORED ALG=$ALG RUNS=$RUNS"
[ "$CONNS_HIGH" = 1024 ] || cmd="$cmd CONNS_HIGH=$CONNS_HIGH"
[ -z "$MIX" ] || cmd="$cmd MIX=$MIX"
[ -z "$PHASES" ] || cmd="$cmd PHASES=$PHASES"

set -- -server bin/taskgate -baseline bin/bench-baseline -server-cpu "$server_cpu" \
	-conns "$CONNS" -conns-high "$CONNS_HIGH" -duration "$DURATION" -warmup "$WARMUP" \
	-tasks "$TASKS" -stored "$STORED" -alg "$ALG" -runs "$RUNS" -command "$cmd"
[ -z "$MIX" ] || set -- "$@" -mix "$MIX"
[ -z "$PHASES" ] || set -- "$@" -phases "$PHASES"
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
exec $pin bin/bench-loadgen "$@" $BENCH_ARGS
