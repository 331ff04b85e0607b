// Command loadgen is taskgate's end-to-end benchmark (`make bench`): it
// provisions a data directory, starts the real taskgate binary and a bare
// Echo baseline server (each pinned to its own core when taskset is
// available), drives simulated task workers against them over keep-alive
// HTTP/1.1, and prints, per endpoint class, requests/s, latency percentiles,
// server CPU time per request, errors and the ratio to the baseline, plus
// the server's peak RSS and start-up time.
//
// Phases, each against a freshly warmed server and measured on its own:
//
//	run             /run of every active task instance with its workload token
//	variable        GET /variables/{key} with execution tokens
//	connection      GET /connections/{id}
//	heartbeat       PUT …/heartbeat at -conns connections (durable: group commit)
//	heartbeat-cN    the same at -conns-high connections
//	mix             the worker mix, closed loop at -conns connections
//	mix-paced       the worker mix at the rate -tasks workers heartbeating every
//	                -heartbeat-interval would send, open loop
//	state           the final state of every task instance still running
//
// The baseline server answers the heartbeat and variable requests with a bare
// 204 and the same JSON body, so every ratio is "what the gateway's work
// costs" on this machine, measured in the same run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/taskgate/taskgate/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	serverBin, baselineBin string
	serverCPU              string // taskset CPU list for the servers; "" = no pinning
	conns, connsHigh       int
	duration, warmup       time.Duration
	tasks, stored          int
	algs                   []string
	runs                   int
	mix                    []bench.Weight
	mixSpec                string
	hbInterval             time.Duration
	phases                 map[string]bool // nil: all
	keep                   bool
	serverLog              string // file or null
	out                    string
	pprof                  string // [taskgate] pprof_listen of the gateway
	command                string // how the benchmark was invoked, for the report
	// PostgreSQL mode (postgres.go): on when pgServer is set.
	pgServer   string // a PostgreSQL server's maintenance database URL
	replicas   []int  // replica counts to measure
	pgbenchBin string
	pgSchema   string // Airflow's schema file
	pgEmbedded bool   // also measure the embedded store's gateway
}

// mixCalls are the calls a mix may name.
var mixCalls = []string{"heartbeat", "variable", "connection", "xcom_push", "xcom_pull", "finish"}

// defaultMix is one Airflow task of about a minute with the default 5 s
// heartbeat: a dozen heartbeats, a few variable and connection reads, two
// XCom pulls and one push, then its final state and the next task's /run
// ("finish").
const defaultMix = "heartbeat:12,variable:4,connection:2,xcom_pull:2,xcom_push:1,finish:1"

var allPhases = []string{"baseline", "run", "variable", "connection", "heartbeat", "heartbeat-high", "mix", "mix-paced", "state"}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.serverBin, "server", "bin/taskgate", "taskgate binary")
	fs.StringVar(&o.baselineBin, "baseline", "bin/bench-baseline", "baseline server binary")
	fs.StringVar(&o.serverCPU, "server-cpu", "", "pin the servers to these CPUs with taskset (e.g. 0); empty: no pinning")
	fs.IntVar(&o.conns, "conns", 64, "connections (simulated workers in flight) of the read, heartbeat and mix phases")
	fs.IntVar(&o.connsHigh, "conns-high", 1024, "connections of the heartbeat-high phase")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per phase")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured time before each phase")
	fs.IntVar(&o.tasks, "tasks", 10000, "active (running) task instances")
	fs.IntVar(&o.stored, "stored", 100000, "task instances stored in the database (at least what the phases use)")
	alg := fs.String("alg", "HS512,EdDSA", "signing algorithms to run the gateway with, comma-separated: HS512, EdDSA, RS256, RS512")
	fs.IntVar(&o.runs, "runs", 1, "repetitions of every timed phase; the report shows medians")
	fs.StringVar(&o.mixSpec, "mix", defaultMix, "weights of the calls of the mix phases")
	fs.DurationVar(&o.hbInterval, "heartbeat-interval", 5*time.Second, "worker heartbeat interval that sets the mix-paced rate")
	phases := fs.String("phases", "", "comma-separated phases to run (default all): "+strings.Join(allPhases, ", ")+
		"; run always runs, the others need running task instances")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (data, keys, server logs)")
	fs.StringVar(&o.serverLog, "server-log", "file", "where the gateway's access log goes: file (in the temporary directory) or null")
	fs.StringVar(&o.out, "out", "", "also write the report to this file")
	fs.StringVar(&o.pprof, "pprof", "", "serve the gateway's runtime profiles on this loopback host:port ([taskgate] pprof_listen); in PostgreSQL mode the first replica's")
	fs.StringVar(&o.command, "command", "", "the command line to print in the report")
	fs.StringVar(&o.pgServer, "postgres", "", "PostgreSQL mode: the URL of a server's maintenance database (postgres://…/postgres); "+
		"a fresh database is created on it, provisioned as Airflow would, and dropped at the end")
	replicas := fs.String("replicas", "1,2,3", "PostgreSQL mode: the replica counts to measure")
	fs.StringVar(&o.pgbenchBin, "pgbench", "pgbench", "PostgreSQL mode: the pgbench binary of the ceiling")
	fs.StringVar(&o.pgSchema, "pg-schema", "testdata/airflow/1d6611b6ab7c.sql", "PostgreSQL mode: Airflow's schema")
	fs.BoolVar(&o.pgEmbedded, "pg-embedded", true, "PostgreSQL mode: also measure the embedded store's gateway on the same phases")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for a := range strings.SplitSeq(*alg, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		switch a {
		case "HS512", "EdDSA", "RS256", "RS512":
		default:
			return nil, fmt.Errorf("-alg %s: want HS512, EdDSA, RS256 or RS512", a)
		}
		o.algs = append(o.algs, a)
	}
	if *phases != "" {
		o.phases = map[string]bool{}
		for p := range strings.SplitSeq(*phases, ",") {
			p = strings.TrimSpace(p)
			found := false
			for _, k := range allPhases {
				found = found || k == p
			}
			if !found {
				return nil, fmt.Errorf("-phases: unknown phase %q (known: %s)", p, strings.Join(allPhases, ", "))
			}
			o.phases[p] = true
		}
	}
	for r := range strings.SplitSeq(*replicas, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-replicas: %q is not a positive count", r)
		}
		o.replicas = append(o.replicas, n)
	}
	var err error
	if o.mix, err = bench.ParseMix(o.mixSpec, mixCalls); err != nil {
		return nil, err
	}
	switch {
	case o.conns < 1 || o.connsHigh < 1 || o.runs < 1:
		return nil, errors.New("-conns, -conns-high and -runs must be positive")
	case o.duration <= 0 || o.warmup < 0 || o.hbInterval <= 0:
		return nil, errors.New("-duration and -heartbeat-interval must be positive, -warmup not negative")
	case o.tasks < 1:
		return nil, errors.New("-tasks must be positive")
	case o.serverLog != "file" && o.serverLog != "null":
		return nil, errors.New("-server-log: want file or null")
	}
	if o.command == "" {
		o.command = "loadgen " + strings.Join(args, " ")
	}
	return o, nil
}

// want reports whether phase p is to run.
func (o *options) want(p string) bool { return o.phases == nil || o.phases[p] }

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "taskgate-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(stderr, "loadgen: keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	b := &benchmark{opts: o, tmp: tmp, environ: cleanEnv(environ, tmp), log: stderr, tick: bench.ClockTick()}
	b.report.machine = describeMachine()
	b.report.command = o.command
	b.report.opts = o
	var text string
	if o.pgServer != "" {
		if err := b.runPostgres(ctx); err != nil {
			return err
		}
		m := b.report.machine
		text = fmt.Sprintf("### Machine\n\n- %d CPUs (`nproc`), %s; %s RAM; Linux %s; %s\n- command: `%s`\n- servers and PostgreSQL not pinned\n%s",
			m.cpus, m.model, m.memory, m.kernel, m.goVer, o.command, b.pgReport)
	} else {
		if err := b.run(ctx); err != nil {
			return err
		}
		text = b.report.markdown()
	}
	fmt.Fprint(stdout, text)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// cleanEnv is the servers' environment: this one without any Airflow
// configuration, with AIRFLOW_HOME in the temporary directory so that no
// airflow.cfg of the machine applies.
func cleanEnv(environ []string, tmp string) []string {
	var out []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "AIRFLOW") || strings.HasPrefix(kv, "GOMAXPROCS=") || strings.HasPrefix(kv, "GOGC=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "AIRFLOW_HOME="+tmp)
}

// benchmark is one run of the whole benchmark.
type benchmark struct {
	opts    *options
	tmp     string
	environ []string
	log     io.Writer
	tick    float64 // µs per clock tick
	data    *dataset
	report  report
	// base is the running baseline server, nil when not measured.
	base *target
	// pgReport is PostgreSQL mode's report.
	pgReport string
}

func (b *benchmark) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "loadgen: "+format+"\n", args...)
}

func (b *benchmark) run(ctx context.Context) error {
	if err := b.provision(ctx); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	if b.opts.want("baseline") {
		if err := b.startBaseline(); err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
	}
	err := b.runAll(ctx)
	if serr := b.stopBaseline(); serr != nil && err == nil {
		err = fmt.Errorf("baseline: %w", serr)
	}
	return err
}

// runAll measures the baseline alone (when no gateway phase is wanted), or
// each gateway with the baseline phases next to its own.
func (b *benchmark) runAll(ctx context.Context) error {
	if b.base != nil && b.opts.phases != nil && !anyGatewayPhase(b.opts) {
		if err := b.runTimed(ctx, b.base, b.timedPhases(true)); err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
	}
	for i, alg := range b.opts.algs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.runGateway(ctx, i, alg); err != nil {
			return fmt.Errorf("taskgate %s: %w", alg, err)
		}
	}
	return nil
}
