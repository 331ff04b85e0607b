package integration_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskgate/taskgate/internal/pgtest"
)

// The PostgreSQL suite runs `taskgate serve` replicas on Airflow's own
// metadata database: a fresh database per test (internal/pgtest) loaded
// with Airflow's schema at the supported alembic revision, rows inserted
// as Airflow's scheduler inserts them, and every check of what taskgate
// wrote made with SQL, as Airflow's scheduler and UI read it.
//
// Replicas share what a real deployment's processes share through
// airflow.cfg: the database, [api_auth] jwt_secret and [core] fernet_key.
// Each has its own data directory, which none of them should need.

// revocationBound is the longest a revocation (or a user's removal) made
// through one replica may still be honoured by another: every replica
// rereads the revocations of the shared database every second
// (revocationRefresh in cli), plus the read itself.
const revocationBound = 1500 * time.Millisecond

// pgDeployment is one Airflow metadata database and the configuration every
// replica in front of it shares.
type pgDeployment struct {
	t         *testing.T
	url       string // postgres://… as pgx takes it
	jwtSecret string // [api_auth] jwt_secret
	fernetKey string // [core] fernet_key
	pool      *pgxpool.Pool
	af        *pgtest.Airflow // Airflow's inserts
}

// newPGDeployment creates a fresh database holding Airflow's schema.
func newPGDeployment(t *testing.T) *pgDeployment {
	t.Helper()
	return newPGDeploymentAt(t, pgtest.NewAirflow(t))
}

// newPGDeploymentAt uses dbURL, a database already holding Airflow's schema.
func newPGDeploymentAt(t *testing.T, dbURL string) *pgDeployment {
	t.Helper()
	d := &pgDeployment{t: t, url: dbURL, jwtSecret: randomSecret(t, 32), fernetKey: newFernetKey(t)}
	collected.addSecret("jwt_secret", d.jwtSecret)
	collected.addSecret("fernet_key", d.fernetKey)
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatalf("database URL: %v", err)
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", redactURL(dbURL), err)
	}
	d.pool = pool
	d.af = &pgtest.Airflow{URL: dbURL}
	// Registered after pgtest's drop, so it runs before it.
	t.Cleanup(pool.Close)
	return d
}

func randomSecret(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// sqlAlchemyURL is the database as an Airflow user writes it in
// [database] sql_alchemy_conn.
func (d *pgDeployment) sqlAlchemyURL() string {
	u, err := url.Parse(d.url)
	if err != nil {
		d.t.Fatalf("database URL: %v", err)
	}
	u.Scheme = "postgresql+psycopg2"
	return u.String()
}

// env is the configuration every replica shares, as Airflow's environment
// variables.
func (d *pgDeployment) env() []string {
	return []string{
		"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=" + d.sqlAlchemyURL(),
		"AIRFLOW__API_AUTH__JWT_SECRET=" + d.jwtSecret,
		"AIRFLOW__CORE__FERNET_KEY=" + d.fernetKey,
	}
}

// startReplica runs one `taskgate serve` on the deployment's database.
func (d *pgDeployment) startReplica(t *testing.T, env ...string) *server {
	t.Helper()
	return startServer(t, newDataDir(t), append(d.env(), env...)...)
}

// startReplicas runs n replicas.
func (d *pgDeployment) startReplicas(t *testing.T, n int, env ...string) []*server {
	t.Helper()
	out := make([]*server, n)
	for i := range out {
		out[i] = d.startReplica(t, env...)
	}
	return out
}

// minter signs tokens with the deployment's shared secret, as Airflow's
// scheduler (its executor) signs the workload token of a queued task.
func (d *pgDeployment) minter(t *testing.T) *minter {
	return &minter{t: t, key: []byte(d.jwtSecret)}
}

// exec runs one statement, failing the test on error.
func (d *pgDeployment) exec(sql string, args ...any) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.pool.Exec(ctx, sql, args...); err != nil {
		d.t.Fatalf("%v\n%s", err, sql)
	}
}

// queryRow scans one row, failing the test on error.
func (d *pgDeployment) queryRow(sql string, args []any, dest ...any) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.pool.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		d.t.Fatalf("%v\n%s", err, sql)
	}
}

// redactURL drops a password from a database URL for messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

// Airflow's rows come from pgtest's fixtures, which insert them as
// Airflow's DAG processor and scheduler do (DagRun, then
// TaskInstance.insert_mapping and the scheduler's queued transition), with
// the NOT NULL columns whose defaults live in Airflow's Python code
// supplied as Airflow supplies them.

// afRun is a DAG run inserted as Airflow's scheduler inserts one.
type afRun struct {
	dagID, runID string
	id           int64 // dag_run.id
}

// afTI is a task instance Airflow's scheduler queued.
type afTI struct {
	run                 *afRun
	id                  string
	taskID              string
	mapIndex            int
	tryNumber, maxTries int
}

// q is the task instance as the tests' worker helpers know one, with its
// workload token minted as Airflow's executor mints it.
func (ti afTI) q(m *minter) queued {
	return queued{
		Token: m.workload(ti.id),
		TIID:  ti.id,
		DagID: ti.run.dagID, RunID: ti.run.runID, TaskID: ti.taskID, MapIndex: ti.mapIndex,
	}
}

// workload is a workload token for a queued task instance, with the claims
// Airflow's executor gives one (sub = ti.id, scope "workload") and its
// lifetime ([execution_api] workload_token_expiration_time's default).
func (m *minter) workload(tiID string) string {
	return m.hs512(m.claims(tiID, "workload", 24*time.Hour))
}

// insertDagRun inserts a running manual DAG run (and its DAG and version),
// as the DAG processor and the scheduler do.
func (d *pgDeployment) insertDagRun(dagID, runID string) *afRun {
	d.t.Helper()
	row := d.af.DagRun(d.t, pgtest.DagRunRow{DagID: dagID, RunID: runID})
	return &afRun{dagID: row.DagID, runID: row.RunID, id: row.ID}
}

// insertQueuedTI inserts a task instance the scheduler has queued for its
// try tryNumber (the scheduler bumps try_number when it queues).
func (d *pgDeployment) insertQueuedTI(r *afRun, taskID string, tryNumber, maxTries int) afTI {
	d.t.Helper()
	row := d.af.TaskInstance(d.t, pgtest.TaskInstanceRow{DagID: r.dagID, RunID: r.runID, TaskID: taskID,
		TryNumber: tryNumber, MaxTries: maxTries})
	return afTI{run: r, id: row.ID, taskID: taskID, mapIndex: -1, tryNumber: tryNumber, maxTries: maxTries}
}

// insertVariable stores a variable as Airflow's Variable.set does: the
// value Fernet-encrypted with the first [core] fernet_key.
func (d *pgDeployment) insertVariable(key, val, description string) {
	d.t.Helper()
	d.exec(`INSERT INTO variable (key, val, description, is_encrypted) VALUES ($1, $2, $3, true)`,
		key, fernetEncrypt(d.t, d.fernetKey, []byte(val)), description)
}

// afConnection is a connection row's clear values.
type afConnection struct {
	connID, connType, host, schema, login, password, extra string
	port                                                   int
}

// insertConnection stores a connection as Airflow's Connection model does:
// password and extra Fernet-encrypted, is_encrypted / is_extra_encrypted set,
// the fields left empty NULL.
func (d *pgDeployment) insertConnection(c afConnection) {
	d.t.Helper()
	null := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	var port *int
	if c.port != 0 {
		port = &c.port
	}
	var password, extra *string
	if c.password != "" {
		password = null(fernetEncrypt(d.t, d.fernetKey, []byte(c.password)))
	}
	if c.extra != "" {
		extra = null(fernetEncrypt(d.t, d.fernetKey, []byte(c.extra)))
	}
	d.exec(`INSERT INTO connection (conn_id, conn_type, description, host, schema, login, password, port,
			is_encrypted, is_extra_encrypted, extra)
		VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8, $9, $10)`,
		c.connID, c.connType, null(c.host), null(c.schema), null(c.login), password, port,
		password != nil, extra != nil, extra)
}

// tiRow is what Airflow's scheduler reads of a task instance.
type tiRow struct {
	id, state          string
	hostname, unixname string
	pid                *int
	startDate, endDate *time.Time
	lastHeartbeatAt    *time.Time
	tryNumber          int
}

// taskInstance reads the row of (dag_id, run_id, task_id, map_index -1).
func (d *pgDeployment) taskInstance(r *afRun, taskID string) tiRow {
	d.t.Helper()
	var row tiRow
	var state *string
	d.queryRow(`SELECT id::text, state, hostname, unixname, pid, start_date, end_date, last_heartbeat_at, try_number
		FROM task_instance WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = -1`,
		[]any{r.dagID, r.runID, taskID}, &row.id, &state, &row.hostname, &row.unixname, &row.pid,
		&row.startDate, &row.endDate, &row.lastHeartbeatAt, &row.tryNumber)
	if state != nil {
		row.state = *state
	}
	return row
}

// waitFor polls cond until it holds or the deadline passes; it never
// decides an outcome by time alone.
func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, within, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// plainSend is doPlain with a task token and the Task SDK's headers.
func plainSend(c *http.Client, base, method, path, token string, body []byte) (*plainResult, error) {
	return doPlain(c, method, base+path, taskHeaders(token), body)
}

// A throwaway PostgreSQL cluster, for the test that stops and starts the
// server: the shared local server must not be restarted under other tests.

// pgCluster is one initdb'd cluster run with pg_ctl.
type pgCluster struct {
	t       *testing.T
	bin     string // directory of initdb, pg_ctl, postgres
	dir     string // PGDATA
	port    int
	runAs   *user.User // postgres when the tests run as root
	logFile string
}

// pgBinDir finds the PostgreSQL server binaries: PATH, else Debian's
// /usr/lib/postgresql/<newest>/bin.
func pgBinDir(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real)
		}
		return filepath.Dir(p)
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	best, bestVer := "", -1
	for _, m := range matches {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m))))
		if err == nil && v > bestVer {
			best, bestVer = filepath.Dir(m), v
		}
	}
	if best == "" {
		if os.Getenv("TASKGATE_SKIP_POSTGRES") == "1" {
			t.Skip("no PostgreSQL server binaries (initdb, pg_ctl) and TASKGATE_SKIP_POSTGRES=1")
		}
		t.Fatal("no PostgreSQL server binaries (initdb, pg_ctl) in PATH or /usr/lib/postgresql/*/bin: " +
			"install them (Debian: apt-get install postgresql) or set TASKGATE_SKIP_POSTGRES=1 to skip on purpose")
	}
	return best
}

// freePort returns a loopback TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newPGCluster initdb's a cluster in t.TempDir() and starts it on a free
// port, trust auth, superuser postgres. PostgreSQL refuses to run as root:
// then the cluster belongs to the postgres user.
func newPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	if os.Getenv("TASKGATE_SKIP_POSTGRES") == "1" {
		t.Skip("TASKGATE_SKIP_POSTGRES=1: the PostgreSQL suite is skipped on purpose")
	}
	c := &pgCluster{t: t, bin: pgBinDir(t), port: freePort(t)}
	base := t.TempDir()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root and no postgres user to own the throwaway cluster: %v", err)
		}
		c.runAs = u
		// The postgres user must reach the directory: open its parents
		// (the test's own temporary directories) for traversal.
		for p := base; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
			if err := os.Chmod(p, 0o711); err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(p) == os.TempDir() {
				break
			}
		}
	}
	c.dir = filepath.Join(base, "pgdata")
	c.logFile = filepath.Join(base, "postgres.log")
	if err := os.Mkdir(c.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.logFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if c.runAs != nil {
		uid, _ := strconv.Atoi(c.runAs.Uid)
		gid, _ := strconv.Atoi(c.runAs.Gid)
		for _, p := range []string{c.dir, c.logFile} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.run("initdb", "-D", c.dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\n"+
		"fsync = off\nmax_connections = 200\nshared_buffers = 32MB\n", c.port)
	f, err := os.OpenFile(filepath.Join(c.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(conf); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c.start()
	t.Cleanup(func() {
		// immediate: nothing of the cluster is kept.
		_ = c.command("pg_ctl", "-D", c.dir, "-m", "immediate", "-w", "stop").Run()
	})
	return c
}

// command builds a PostgreSQL tool's command, as the postgres user when
// the tests run as root.
func (c *pgCluster) command(tool string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, tool), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.runAs != nil {
		uid, _ := strconv.Atoi(c.runAs.Uid)
		gid, _ := strconv.Atoi(c.runAs.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = "/"
	}
	return cmd
}

func (c *pgCluster) run(tool string, args ...string) {
	c.t.Helper()
	out, err := c.command(tool, args...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(c.logFile)
		c.t.Fatalf("%s %s: %v\n%s\nserver log:\n%s", tool, strings.Join(args, " "), err, out, log)
	}
}

// start starts the server and waits until it accepts connections.
func (c *pgCluster) start() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.dir, "-l", c.logFile, "-w", "-t", "30", "start")
}

// stop stops the server the way an operator restarting it does: fast
// shutdown, every session terminated.
func (c *pgCluster) stop() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.dir, "-m", "fast", "-w", "-t", "30", "stop")
}

// url is the maintenance database of the cluster.
func (c *pgCluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// newAirflowDB creates a database on the cluster holding Airflow's schema.
func (c *pgCluster) newAirflowDB(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url("postgres"))
	if err != nil {
		t.Fatalf("connect to the throwaway cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE airflow"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	u := c.url("airflow")
	pgtest.Exec(t, u, pgtest.Schema(t))
	return u
}

// Fernet, as Airflow's [core] fernet_key encrypts: the tests encrypt rows
// as Airflow would and decrypt what taskgate stored, without taskgate's own
// fernet package.

func newFernetKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.URLEncoding.EncodeToString(b)
}
