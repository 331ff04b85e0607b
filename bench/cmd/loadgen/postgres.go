package main

// PostgreSQL mode (`make bench PG=1`, loadgen -postgres URL): taskgate as
// the Execution API of an Airflow deployment, on Airflow's own metadata
// database, with 1, 2 and 3 replicas (-replicas), against two yardsticks
// measured in the same run:
//
//   - pgbench running the heartbeat's UPDATE of task_instance on the same
//     rows with the same client count: one heartbeat per transaction, the
//     most a client committing each heartbeat on its own gets from this
//     server (taskgate batches concurrent heartbeats into one transaction,
//     so it may exceed it);
//   - the embedded store (bbolt) gateway, for the reads.
//
// The database is created fresh on the server, loaded with Airflow's schema
// (testdata/airflow), and provisioned as Airflow's scheduler provisions
// task instances: dag, dag_version, dag_run and queued task_instance rows
// with the values Airflow computes in Python, a Fernet-encrypted variable
// and connection, and one upstream XCom per DAG run. It is dropped at the
// end unless -keep.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/bench"
	"github.com/taskgate/taskgate/fernet"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/tokens"
)

// pgPhases are the phases of PostgreSQL mode, for each replica count.
var pgPhases = []string{"heartbeat", "variable", "connection", "mix"}

// pgMode is one PostgreSQL-mode run.
type pgMode struct {
	b         *benchmark
	adminURL  string // the server's maintenance database
	dbName    string
	url       string // the benchmark's database
	secret    string // [api_auth] jwt_secret of every replica
	fernetKey string // [core] fernet_key of every replica
	sets      [][]*tiInfo
	perSet    int
	results   []pgRound
	embedded  []*phaseResult // the embedded store's gateway, same phases
}

// pgRound is one replica count's results.
type pgRound struct {
	replicas int
	pgbench  pgbenchResult
	phases   []*phaseResult
	startup  time.Duration
}

// pgbenchResult is one pgbench run.
type pgbenchResult struct {
	clients  int
	tps      float64
	p50, p99 time.Duration
	failed   string // why it did not run, if it did not
}

// pgTIID is the id of task instance number i (1-based) of the benchmark:
// UUIDv7-shaped (version 7, RFC 4122 variant) and computable in pgbench's
// script, so that pgbench updates exactly the rows taskgate heartbeats.
func pgTIID(i int) string { return fmt.Sprintf("00000000-0000-7000-8000-%012x", i) }

// pgTIIDSQL is pgTIID in SQL, of an integer expression.
func pgTIIDSQL(expr string) string {
	return "('00000000-0000-7000-8000-' || lpad(to_hex(" + expr + "), 12, '0'))::uuid"
}

func (b *benchmark) runPostgres(ctx context.Context) error {
	o := b.opts
	m := &pgMode{b: b, adminURL: o.pgServer}
	if err := m.createDatabase(ctx); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	defer m.dropDatabase()
	if err := m.provision(ctx); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	if o.pgEmbedded {
		if err := m.runEmbedded(ctx); err != nil {
			return fmt.Errorf("embedded store: %w", err)
		}
	}
	for s, k := range o.replicas {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := m.round(ctx, s, k)
		if err != nil {
			return fmt.Errorf("%d replica(s): %w", k, err)
		}
		m.results = append(m.results, r)
	}
	b.pgReport = m.markdown()
	return nil
}

// createDatabase creates a fresh database on the server and loads Airflow's
// schema into it.
func (m *pgMode) createDatabase(ctx context.Context) error {
	schema, err := os.ReadFile(m.b.opts.pgSchema)
	if err != nil {
		return fmt.Errorf("Airflow's schema: %w", err)
	}
	var rb [6]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return err
	}
	m.dbName = "taskgate_bench_" + hex.EncodeToString(rb[:])
	admin, err := pgx.Connect(ctx, m.adminURL)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+m.dbName); err != nil {
		return err
	}
	u, err := url.Parse(m.adminURL)
	if err != nil {
		return err
	}
	u.Path = "/" + m.dbName
	m.url = u.String()
	conn, err := pgx.Connect(ctx, m.url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, string(schema)); err != nil {
		return fmt.Errorf("load %s: %w", m.b.opts.pgSchema, err)
	}
	m.b.logf("database %s on %s, Airflow's schema from %s", m.dbName, redacted(m.adminURL), m.b.opts.pgSchema)
	return nil
}

func (m *pgMode) dropDatabase() {
	if m.dbName == "" {
		return
	}
	if m.b.opts.keep {
		m.b.logf("keeping database %s", m.dbName)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, m.adminURL)
	if err != nil {
		m.b.logf("drop %s: %v", m.dbName, err)
		return
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+m.dbName+" WITH (FORCE)"); err != nil {
		m.b.logf("drop %s: %v", m.dbName, err)
	}
}

func redacted(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<database URL>"
	}
	return u.Redacted()
}

// provision inserts, as Airflow's DAG processor and scheduler would, one
// DAG, its version, the DAG runs (tasksPerRun task instances each, plus a
// succeeded upstream task with its XCom) and one set of queued task
// instances per replica count: a smoke-test one, the active ones and the
// spares of the mix's finishes. The variable and the connection are
// Fernet-encrypted with [core] fernet_key, as Airflow stores them.
func (m *pgMode) provision(ctx context.Context) error {
	o := m.b.opts
	start := time.Now()
	var rb [32]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return err
	}
	m.secret = hex.EncodeToString(rb[:])
	var err error
	if m.fernetKey, err = fernet.GenerateKey(); err != nil {
		return err
	}
	mk, err := fernet.NewMulti(m.fernetKey)
	if err != nil {
		return err
	}
	spares := 0
	if slices.Contains(pgPhases, "mix") && o.want("mix") {
		spares = o.spareCount()
	}
	m.perSet = 1 + o.tasks + spares
	total := m.perSet * len(o.replicas)
	runs := (total + tasksPerRun - 1) / tasksPerRun

	conn, err := pgx.Connect(ctx, m.url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	encVal, err := mk.Encrypt([]byte(bench.VariableValue))
	if err != nil {
		return err
	}
	encPass, err := mk.Encrypt([]byte("not-a-real-password"))
	if err != nil {
		return err
	}
	encExtra, err := mk.Encrypt([]byte(`{"sslmode": "require", "connect_timeout": 10}`))
	if err != nil {
		return err
	}
	versionID := "00000000-0000-7000-a000-000000000001"
	empty := []byte{0x80, 0x05, '}', 0x94, '.'}  // pickle of {}: executor_config of a task without one
	carrier := `{"__var": {}, "__type": "dict"}` // ExtendedJSON of {}
	stmts := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO log_template (filename, elasticsearch_id, created_at)
			SELECT 'dag_id={{ ti.dag_id }}/run_id={{ ti.run_id }}/task_id={{ ti.task_id }}/{% if ti.map_index >= 0 %}map_index={{ ti.map_index }}/{% endif %}attempt={{ try_number|default(ti.try_number) }}.log',
				'{dag_id}-{task_id}-{run_id}-{map_index}-{try_number}', now()
			WHERE NOT EXISTS (SELECT 1 FROM log_template)`, nil},
		{`INSERT INTO dag_bundle (name, active) VALUES ('dags-folder', true) ON CONFLICT (name) DO NOTHING`, nil},
		{`INSERT INTO dag (dag_id, is_paused, is_stale, last_parsed_time, fileloc, relative_fileloc, bundle_name,
				owners, dag_display_name, timetable_type, timetable_summary, timetable_description, max_active_tasks,
				max_active_runs, max_consecutive_failed_dag_runs, has_task_concurrency_limits, has_import_errors, fail_fast)
			VALUES ($1::text, false, false, now(), '/opt/airflow/dags/bench_dag.py', 'bench_dag.py', 'dags-folder',
				'airflow', $1::text, 'airflow.timetables.simple.NullTimetable', 'None', 'Never, external triggers only',
				100000, 16, 0, false, false, false)`, []any{dagID}},
		{`INSERT INTO dag_version (id, version_number, dag_id, bundle_name, created_at, last_updated)
			VALUES ($1, 1, $2, 'dags-folder', now(), now())`, []any{versionID, dagID}},
		{`INSERT INTO dag_run (dag_id, queued_at, start_date, state, run_id, run_type, triggered_by, conf,
				run_after, log_template_id, created_at, updated_at, clear_number, context_carrier, span_status,
				created_dag_version_id)
			SELECT $1, now(), now(), 'running', 'bench_run_' || lpad(g::text, 5, '0'), 'scheduled', 'timetable',
				'{}'::jsonb, now(), (SELECT max(id) FROM log_template), now(), now(), 0, $2::json, 'not_started', $3
			FROM generate_series(0, $4::int - 1) g`, []any{dagID, carrier, versionID, runs}},
		{`INSERT INTO task_instance (id, task_id, dag_id, run_id, map_index, state, try_number, max_tries, hostname,
				unixname, pool, pool_slots, queue, priority_weight, operator, custom_operator_name, queued_dttm,
				scheduled_dttm, executor_config, updated_at, context_carrier, span_status, task_display_name,
				dag_version_id)
			SELECT ` + pgTIIDSQL("g + 1") + `, 'task_' || lpad((g % $5::int)::text, 3, '0'), $1,
				'bench_run_' || lpad((g / $5::int)::text, 5, '0'), -1, 'queued', 1, 2, '', 'airflow', 'default_pool', 1,
				'default', 1, 'PythonOperator', 'PythonOperator', now(), now(), $2, now(), $3::json, 'not_started',
				'task_' || lpad((g % $5::int)::text, 3, '0'), $4
			FROM generate_series(0, $6::int - 1) g`, []any{dagID, empty, carrier, versionID, tasksPerRun, total}},
		// The upstream task of every run succeeded and pushed the XCom the
		// mix pulls.
		{`INSERT INTO task_instance (id, task_id, dag_id, run_id, map_index, start_date, end_date, duration, state,
				try_number, max_tries, hostname, unixname, pool, pool_slots, queue, priority_weight, operator,
				custom_operator_name, queued_dttm, scheduled_dttm, executor_config, updated_at, context_carrier,
				span_status, task_display_name, dag_version_id)
			SELECT ('00000000-0000-7000-9000-' || lpad(to_hex(g + 1), 12, '0'))::uuid, $5, $1,
				'bench_run_' || lpad(g::text, 5, '0'), -1, now(), now(), 0, 'success', 1, 2, 'upstream-worker', 'airflow',
				'default_pool', 1, 'default', 1, 'PythonOperator', 'PythonOperator', now(), now(), $2, now(), $3::json,
				'not_started', $5, $4
			FROM generate_series(0, $6::int - 1) g`, []any{dagID, empty, carrier, versionID, upstreamTask, runs}},
		{`INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, timestamp)
			SELECT id, $1, -1, $2, dag_id, run_id, $3::jsonb, now() FROM dag_run WHERE dag_id = $4`,
			[]any{upstreamTask, xcomKey, `{"rows": 1250, "uri": "s3://bench-bucket/extract/part-0000.parquet"}`, dagID}},
		{`INSERT INTO variable (key, val, description, is_encrypted) VALUES ($1, $2, 'bench', true)`,
			[]any{bench.VariableKey, encVal}},
		{`INSERT INTO connection (conn_id, conn_type, host, schema, login, password, port, is_encrypted,
				is_extra_encrypted, extra)
			VALUES ($1, 'postgres', 'warehouse.db.internal', 'analytics', 'etl', $2, 5432, true, true, $3)`,
			[]any{connectionID, encPass, encExtra}},
		{`ANALYZE`, nil},
	}
	for _, st := range stmts {
		if _, err := conn.Exec(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("%w\n%s", err, st.sql)
		}
	}
	m.sets = make([][]*tiInfo, len(o.replicas))
	for s := range m.sets {
		set := make([]*tiInfo, m.perSet)
		for j := range set {
			i := s*m.perSet + j
			ti := &tiInfo{id: pgTIID(i + 1), runID: fmt.Sprintf("bench_run_%05d", i/tasksPerRun),
				taskID: fmt.Sprintf("task_%03d", i%tasksPerRun)}
			ti.encode(i)
			set[j] = ti
		}
		m.sets[s] = set
	}
	if err := m.signWorkloads(); err != nil {
		return err
	}
	m.b.logf("provisioned %d task instances in %d dag runs (%d sets of %d: smoke test, %d active, %d spares) in %s",
		total, runs, len(o.replicas), m.perSet, o.tasks, spares, time.Since(start).Round(time.Millisecond))
	return nil
}

// signWorkloads signs every task instance's workload token with the
// replicas' shared HS512 secret, as Airflow's executor does.
func (m *pgMode) signWorkloads() error {
	signer, err := tokens.NewSigner(tokens.Config{Secret: []byte(m.secret), Algorithm: "HS512",
		Audiences: []string{"urn:airflow.apache.org:task"}})
	if err != nil {
		return err
	}
	start := time.Now().UTC().Format(time.RFC3339Nano)
	for _, set := range m.sets {
		for _, ti := range set {
			tok, _, err := signer.Sign(scopes.WorkloadClaims(ti.id), 24*time.Hour)
			if err != nil {
				return err
			}
			ti.workload = tok
			ti.runBody = fmt.Appendf(nil, `{"state":"running","hostname":%q,"unixname":"airflow","pid":%d,"start_date":%q}`,
				ti.hostname, ti.pid, start)
		}
	}
	return nil
}

// env is the replicas' environment: the database and the key material
// every replica shares, as Airflow's environment variables.
func (m *pgMode) env() []string {
	u, _ := url.Parse(m.url)
	u.Scheme = "postgresql+psycopg2"
	return append(append([]string{}, m.b.environ...),
		"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="+u.String(),
		"AIRFLOW__API_AUTH__JWT_SECRET="+m.secret,
		"AIRFLOW__CORE__FERNET_KEY="+m.fernetKey,
	)
}

// round measures k replicas on set s: pgbench first (no replica holds
// connections then), then the replicas' /run ramp, the timed phases and
// the final states.
func (m *pgMode) round(ctx context.Context, s, k int) (pgRound, error) {
	o := m.b.opts
	r := pgRound{replicas: k}
	set := m.sets[s]
	smoke, active, spares := set[0], set[1:1+o.tasks], set[1+o.tasks:]
	lo := s*m.perSet + 2 // the first active task instance's number
	if err := m.vacuum(ctx); err != nil {
		return r, err
	}
	r.pgbench = m.pgbench(ctx, fmt.Sprintf("r%d", k), lo, lo+o.tasks-1)
	if r.pgbench.failed != "" {
		m.b.logf("pgbench: %s", r.pgbench.failed)
	} else {
		m.b.logf("pgbench heartbeat UPDATE, %d clients: %.0f tps, p50 %.2f ms, p99 %.2f ms",
			r.pgbench.clients, r.pgbench.tps, ms(r.pgbench.p50), ms(r.pgbench.p99))
	}

	procs := make([]*process, 0, k)
	defer func() {
		for _, p := range procs {
			if p.alive() {
				p.kill()
			}
		}
	}()
	for i := range k {
		dataDir := filepath.Join(m.b.tmp, fmt.Sprintf("pg-%d-%d", k, i))
		env := m.env()
		if i == 0 && o.pprof != "" { // one port: the first replica's profiles
			env = append(env, "AIRFLOW__TASKGATE__PPROF_LISTEN="+o.pprof)
		}
		p, err := m.b.start(fmt.Sprintf("taskgate-pg%d-%d", k, i), o.serverBin, []string{"--data-dir", dataDir, "serve"}, env)
		if err != nil {
			return r, err
		}
		r.startup = max(r.startup, p.startup)
		procs = append(procs, p)
	}
	m.b.logf("%d replica(s) ready (slowest in %s)", k, r.startup.Round(time.Millisecond))
	if err := smokeTest(ctx, procs[0].addr, smoke); err != nil {
		return r, fmt.Errorf("smoke test through the client package: %w", err)
	}
	name := fmt.Sprintf("pg×%d", k)
	t := newTarget(name, false, procs[0], procs[1:]...)
	t.spares = spares
	for _, ti := range active {
		t.slots = append(t.slots, &slot{ti: ti})
	}
	ramp := phaseSpec{name: "run", conns: o.conns, step: func(w *worker, s *slot, start time.Time) {
		if !w.call(clsRun, s, start) {
			s.dead = true
		}
	}}
	res, err := m.b.runPhase(ctx, t, ramp)
	if err != nil {
		return r, fmt.Errorf("run: %w", err)
	}
	m.b.logf("%s %-14s: %s", name, "run", res.summary())
	r.phases = append(r.phases, res)
	if res.all.errors > 0 {
		return r, fmt.Errorf("run: %d of %d task instances failed to start: %s", res.all.errors, res.all.requests, firstSample(res))
	}
	for _, ps := range m.timedPhases() {
		if err := m.vacuum(ctx); err != nil {
			return r, err
		}
		res, err := m.b.runPhase(ctx, t, ps)
		if err != nil {
			return r, fmt.Errorf("%s: %w", ps.name, err)
		}
		m.b.logf("%s %-14s: %s", name, ps.name, res.summary())
		r.phases = append(r.phases, res)
	}
	drain := phaseSpec{name: "state", conns: o.conns, step: func(w *worker, s *slot, start time.Time) {
		if s.token != "" {
			w.call(clsState, s, start)
		}
	}}
	if res, err = m.b.runPhase(ctx, t, drain); err != nil {
		return r, fmt.Errorf("state: %w", err)
	}
	m.b.logf("%s %-14s: %s", name, "state", res.summary())
	r.phases = append(r.phases, res)
	for _, p := range procs {
		if err := p.stop(); err != nil {
			return r, err
		}
	}
	procs = procs[:0]
	return r, nil
}

// vacuum runs VACUUM on task_instance, so that pgbench and each timed
// phase start from the same table: every heartbeat is an update that
// touches an indexed column (ti_heartbeat), so it leaves a dead row version
// and an entry in each of the table's nine indexes, and whoever ran after
// another's tens of thousands of updates would find each row behind its
// dead versions until autovacuum comes by.
func (m *pgMode) vacuum(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, m.url)
	if err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "VACUUM task_instance"); err != nil {
		return fmt.Errorf("vacuum task_instance: %w", err)
	}
	return nil
}

// timedPhases are PostgreSQL mode's timed phases, as -phases filters them.
func (m *pgMode) timedPhases() []phaseSpec {
	o := m.b.opts
	var out []phaseSpec
	for _, p := range pgPhases {
		if !o.want(p) {
			continue
		}
		ps := phaseSpec{name: p, conns: o.conns, timed: true}
		switch p {
		case "heartbeat":
			ps.step = fixed(clsHeartbeat)
		case "variable":
			ps.step = fixed(clsVariable)
		case "connection":
			ps.step = fixed(clsConnection)
		case "mix":
			ps.step, ps.mix = func(w *worker, s *slot, start time.Time) { w.mixStep(s, start) }, true
		}
		out = append(out, ps)
	}
	return out
}

// runEmbedded measures the embedded store's gateway (HS512) on the same
// phases, in the same run, for the reads' ratio.
func (m *pgMode) runEmbedded(ctx context.Context) error {
	b := m.b
	o := *b.opts
	saved := b.opts
	defer func() { b.opts = saved }()
	o.algs = []string{"HS512"}
	o.phases = map[string]bool{}
	for _, p := range pgPhases {
		if saved.want(p) {
			o.phases[p] = true
		}
	}
	o.stored = 0
	b.opts = &o
	if err := b.provision(ctx); err != nil {
		return err
	}
	before := len(b.report.phases)
	if err := b.runGateway(ctx, 0, "HS512"); err != nil {
		return err
	}
	m.embedded = b.report.phases[before:]
	return nil
}

// pgbenchScript is the heartbeat's write as one statement per
// transaction: what Airflow's api-server commits for each heartbeat.
const pgbenchScript = `\set i random(:lo, :hi)
UPDATE task_instance SET last_heartbeat_at = now(), updated_at = now()
  WHERE id = ` + "('00000000-0000-7000-8000-' || lpad(to_hex(:i::bigint), 12, '0'))::uuid" + `;
`

// pgbench runs the heartbeat UPDATE on task instances lo..hi with -conns
// clients for warmup + duration and returns the measured part's figures
// (from the per-transaction log).
func (m *pgMode) pgbench(ctx context.Context, tag string, lo, hi int) pgbenchResult {
	o := m.b.opts
	r := pgbenchResult{clients: o.conns}
	bin := o.pgbenchBin
	if _, err := exec.LookPath(bin); err != nil {
		r.failed = fmt.Sprintf("%s not found (Debian: apt-get install postgresql-client): %v", bin, err)
		return r
	}
	dir := filepath.Join(m.b.tmp, "pgbench-"+tag)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		r.failed = err.Error()
		return r
	}
	script := filepath.Join(dir, "heartbeat.sql")
	if err := os.WriteFile(script, []byte(pgbenchScript), 0o600); err != nil {
		r.failed = err.Error()
		return r
	}
	secs := int(math.Ceil((o.warmup + o.duration).Seconds()))
	jobs := min(o.conns, runtime.NumCPU())
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(o.conns), "-j", strconv.Itoa(jobs),
		"-T", strconv.Itoa(secs), "-f", script, "-D", "lo=" + strconv.Itoa(lo), "-D", "hi=" + strconv.Itoa(hi),
		"-l", "--log-prefix", filepath.Join(dir, "log"), m.url}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.failed = fmt.Sprintf("pgbench: %v\n%s", err, out)
		return r
	}
	lat, first, last, err := readPgbenchLogs(dir, o.warmup)
	if err != nil || len(lat) == 0 {
		// The summary's tps still holds.
		if mt := regexp.MustCompile(`tps = ([0-9.]+)`).FindSubmatch(out); mt != nil {
			r.tps, _ = strconv.ParseFloat(string(mt[1]), 64)
		}
		if r.tps == 0 {
			r.failed = fmt.Sprintf("pgbench printed no tps (%v):\n%s", err, out)
		}
		return r
	}
	slices.Sort(lat)
	r.tps = float64(len(lat)) / last.Sub(first).Seconds()
	r.p50 = lat[len(lat)*50/100]
	r.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	return r
}

// readPgbenchLogs reads pgbench's per-transaction logs ("client txno
// latency_us script epoch_s epoch_us") and returns the latencies of the
// transactions that ended after the warm-up, and the first and last end.
func readPgbenchLogs(dir string, warmup time.Duration) ([]time.Duration, time.Time, time.Time, error) {
	files, err := filepath.Glob(filepath.Join(dir, "log.*"))
	if err != nil || len(files) == 0 {
		return nil, time.Time{}, time.Time{}, errors.New("no pgbench log files")
	}
	type tx struct {
		end time.Time
		lat time.Duration
	}
	var all []tx
	var start time.Time
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, time.Time{}, time.Time{}, err
		}
		for line := range strings.Lines(string(b)) {
			fs := strings.Fields(line)
			if len(fs) < 6 {
				continue
			}
			us, err1 := strconv.ParseInt(fs[2], 10, 64)
			sec, err2 := strconv.ParseInt(fs[4], 10, 64)
			usec, err3 := strconv.ParseInt(fs[5], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil {
				continue
			}
			end := time.Unix(sec, usec*1000)
			all = append(all, tx{end, time.Duration(us) * time.Microsecond})
			if s := end.Add(-time.Duration(us) * time.Microsecond); start.IsZero() || s.Before(start) {
				start = s
			}
		}
	}
	cut := start.Add(warmup)
	var lat []time.Duration
	var first, last time.Time
	for _, t := range all {
		if t.end.Before(cut) {
			continue
		}
		lat = append(lat, t.lat)
		if first.IsZero() || t.end.Before(first) {
			first = t.end
		}
		if t.end.After(last) {
			last = t.end
		}
	}
	if !last.After(first) {
		return nil, first, last, errors.New("pgbench logs span no time after the warm-up")
	}
	return lat, first, last, nil
}

// markdown renders PostgreSQL mode's table: per replica count and phase,
// taskgate's throughput and latency, and the ratios to pgbench (heartbeats)
// and to the embedded store (reads and the mix).
func (m *pgMode) markdown() string {
	o := m.b.opts
	var b strings.Builder
	fmt.Fprintf(&b, "\n### PostgreSQL mode: Airflow's metadata database, 1–%d replicas\n\n", slices.Max(o.replicas))
	fmt.Fprintf(&b, "- server: %s (database %s, Airflow schema %s); replicas share it, [api_auth] jwt_secret and [core] fernet_key\n",
		redacted(m.adminURL), m.dbName, filepath.Base(o.pgSchema))
	fmt.Fprintf(&b, "- %d connections spread evenly over the replicas; %d active task instances per replica count; %s measured after %s warm-up\n",
		o.conns, o.tasks, o.duration, o.warmup)
	fmt.Fprintf(&b, "- ceiling: `pgbench -M prepared -c %d` running the heartbeat's `UPDATE task_instance SET last_heartbeat_at = now(), updated_at = now() WHERE id = …` on the same rows, one per transaction, right before each replica count's phases\n",
		o.conns)
	fmt.Fprintf(&b, "- embedded: the bbolt gateway (HS512) on the same phases in this run\n\n")
	embedded := map[string]*phaseResult{}
	for _, p := range m.embedded {
		embedded[p.phase] = p
	}
	b.WriteString("| replicas | phase | req/s | p50 ms | p99 ms | errors | pgbench tps | p99 ms (pgbench) | taskgate / pgbench | embedded req/s | taskgate / embedded |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range m.results {
		for _, p := range r.phases {
			pg, pgP99, ratio := "", "", ""
			if p.phase == "heartbeat" && r.pgbench.failed == "" && r.pgbench.tps > 0 {
				pg = fmt.Sprintf("%.0f", r.pgbench.tps)
				if r.pgbench.p99 > 0 {
					pgP99 = fmt.Sprintf("%.2f", ms(r.pgbench.p99))
				}
				ratio = fmt.Sprintf("**%.2f×**", p.all.rps/r.pgbench.tps)
			}
			emb, embRatio := "", ""
			if e := embedded[p.phase]; e != nil && e.all.rps > 0 && p.phase != "run" && p.phase != "state" {
				emb = fmt.Sprintf("%.0f", e.all.rps)
				embRatio = fmt.Sprintf("%.2f×", p.all.rps/e.all.rps)
			}
			fmt.Fprintf(&b, "| %d | %s | %.0f | %.2f | %.2f | %d | %s | %s | %s | %s | %s |\n",
				r.replicas, p.phase, p.all.rps, ms(p.all.p50), ms(p.all.p99), p.all.errors, pg, pgP99, ratio, emb, embRatio)
		}
	}
	for _, r := range m.results {
		if r.pgbench.failed != "" {
			fmt.Fprintf(&b, "\npgbench did not run for %d replica(s): %s\n", r.replicas, firstLine(r.pgbench.failed))
		}
	}
	if len(m.results) > 0 {
		r := m.results[0]
		for _, p := range r.phases {
			if p.phase == "heartbeat" && r.pgbench.tps > 0 {
				ok := p.all.rps >= 0.8*r.pgbench.tps && p.all.p99 <= 20*time.Millisecond
				fmt.Fprintf(&b, "\nTarget (1 replica, c = %d): heartbeats ≥ 0.8× pgbench and p99 ≤ 20 ms: %.2f×, p99 %.2f ms — %s\n",
					p.conns, p.all.rps/r.pgbench.tps, ms(p.all.p99), map[bool]string{true: "met", false: "not met"}[ok])
			}
		}
	}
	return b.String()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
