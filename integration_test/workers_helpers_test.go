package integration_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/taskgate/taskgate/fernet"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/workload"
)

// The conformance tests of connection tests and callbacks run each case on
// both stores. Their fixtures are what Airflow's API server (a queued
// connection test) and scheduler (a callback in a given state) write: on
// the embedded store through the store package before the binary starts,
// on PostgreSQL as rows (Airflow's callback table, taskgate.connection_test)
// once the first replica has created taskgate's schema.

type workersBackend string

const (
	embeddedBackend workersBackend = "embedded"
	postgresBackend workersBackend = "postgres"
)

var workersBackends = []workersBackend{embeddedBackend, postgresBackend}

// workersEnv is one running server with its fixtures.
type workersEnv struct {
	t       *testing.T
	backend workersBackend
	srv     *server
	m       *minter
	dataDir string
	pg      *pgDeployment
	db      *store.DB // the embedded store, once the server stopped
	jobIDs  []int64   // the ids of workersSeed.jobs
}

// workersSeed is the fixtures of one case.
type workersSeed struct {
	connectionTests []workload.ConnectionTest
	callbacks       []workload.Callback
	connections     []workload.Connection
	variables       []workload.Variable
	// jobs are DAG processor Jobs, stored in order (their ids in
	// workersEnv.jobIDs); SessionID "" is a Job its session replaced.
	jobs []workload.Job
	// dags are DAG records a DAG processor wrote earlier (on PostgreSQL,
	// dag rows with Airflow's defaults for the columns not given).
	dags []workload.Dag
	// serverEnv is the server's extra configuration.
	serverEnv []string
}

func newWorkersEnv(t *testing.T, backend workersBackend, seed workersSeed) *workersEnv {
	t.Helper()
	e := &workersEnv{t: t, backend: backend}
	ctx := context.Background()
	switch backend {
	case embeddedBackend:
		e.dataDir = newDataDir(t)
		if err := os.MkdirAll(e.dataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		db := e.openStore()
		for _, ct := range seed.connectionTests {
			if err := db.InsertConnectionTest(ctx, ct); err != nil {
				t.Fatal(err)
			}
		}
		for _, cb := range seed.callbacks {
			if err := db.InsertCallback(ctx, cb); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range seed.connections {
			if err := db.PutConnection(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		for _, v := range seed.variables {
			if err := db.PutVariable(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
		for _, j := range seed.jobs {
			e.jobIDs = append(e.jobIDs, seedJob(t, db, j))
		}
		for _, d := range seed.dags {
			if err := db.PutDag(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		e.srv = startServer(t, e.dataDir, seed.serverEnv...)
		e.m = newMinter(t, e.dataDir)
	case postgresBackend:
		e.pg = newPGDeployment(t)
		e.srv = e.pg.startReplica(t, seed.serverEnv...)
		e.m = e.pg.minter(t)
		for _, ct := range seed.connectionTests {
			c := ct.Connection
			e.pg.exec(`INSERT INTO taskgate.connection_test (id, conn_id, conn_type, host, "schema", login, password,
				port, extra, commit_on_success, state, result_message, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)`,
				ct.ID, c.ConnID, c.ConnType, c.Host, c.Schema, c.Login, c.Password, c.Port, c.Extra,
				ct.CommitOnSuccess, string(ct.State), ct.ResultMessage, time.Now())
		}
		for _, cb := range seed.callbacks {
			var state *string
			if cb.State != "" {
				s := string(cb.State)
				state = &s
			}
			e.pg.exec(`INSERT INTO callback (id, type, fetch_method, data, state, output, priority_weight, created_at)
				VALUES ($1, 'executor', 'import_path', $2, $3, NULL, 1, $4)`, cb.ID, string(cb.Data), state, time.Now())
		}
		for _, c := range seed.connections {
			e.pg.exec(`INSERT INTO connection (conn_id, conn_type, host, is_encrypted, is_extra_encrypted)
				VALUES ($1, $2, $3, false, false)`, c.ConnID, c.ConnType, c.Host)
		}
		for _, v := range seed.variables {
			e.pg.exec(`INSERT INTO variable (key, val, is_encrypted) VALUES ($1, $2, false)`, v.Key, v.Value)
		}
		for _, j := range seed.jobs {
			var session *string
			if j.SessionID != "" {
				session = &j.SessionID
			}
			bundles, _ := json.Marshal(j.BundleNames)
			var id int64
			e.pg.queryRow(`INSERT INTO taskgate.job (job_type, state, start_date, end_date, latest_heartbeat, hostname,
				unixname, bundle_names, session_id, registration_id) VALUES ('DagProcessorJob', $1, $2, $3, $4, $5, $6, $7, $8, $9)
				RETURNING id`, []any{string(j.State), j.StartDate, j.EndDate, j.LatestHeartbeat, j.Hostname, j.Unixname,
				string(bundles), session, j.RegistrationID}, &id)
			e.jobIDs = append(e.jobIDs, id)
		}
		for _, d := range seed.dags {
			if d.BundleName != nil {
				e.pg.exec(`INSERT INTO dag_bundle (name, active) VALUES ($1, true) ON CONFLICT DO NOTHING`, *d.BundleName)
			}
			e.pg.exec(`INSERT INTO dag (dag_id, is_paused, is_stale, bundle_name, relative_fileloc, timetable_type,
				max_active_tasks, max_consecutive_failed_dag_runs, has_task_concurrency_limits)
				VALUES ($1, $2, $3, $4, $5, '', 16, 0, false)`, d.DagID, d.Paused(), d.IsStale, d.BundleName, d.RelativeFileloc)
		}
	}
	return e
}

func (e *workersEnv) openStore() *store.DB {
	e.t.Helper()
	// The data directory's own key, which the server creates on first use
	// and seals connection secrets with.
	key, _, err := fernet.LoadOrCreateKeyFile(filepath.Join(e.dataDir, "fernet_key"))
	if err != nil {
		e.t.Fatal(err)
	}
	secrets, err := fernet.NewMulti(key)
	if err != nil {
		e.t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(e.dataDir, "taskgate.db"), store.Options{OpenTimeout: 5 * time.Second, Secrets: secrets})
	if err != nil {
		e.t.Fatal(err)
	}
	return db
}

// token mints a token of scope for sub, as Airflow's scheduler mints them.
func (e *workersEnv) token(sub, scope string) string {
	return "Bearer " + e.m.hs512(e.m.claims(sub, scope, 10*time.Minute))
}

func (e *workersEnv) send(method, path, authz, body string) *response {
	e.t.Helper()
	// Callback workers and connection testers speak the version that added
	// their routes (callback /run: 2026-10-30), or a later one.
	return sendVersion(e.t, e.srv.URL, newestAPIVersion, method, path, authz, body)
}

// stored is the embedded store as the server left it: the server is
// stopped first (the file is the server's alone while it runs), and the
// store opened once.
func (e *workersEnv) stored() *store.DB {
	e.t.Helper()
	if e.db == nil {
		e.srv.stop()
		e.db = e.openStore()
		e.t.Cleanup(func() { _ = e.db.Close() })
	}
	return e.db
}

// callbackState returns the stored state and output of a callback.
func (e *workersEnv) callbackState(id string) (string, *string) {
	e.t.Helper()
	if e.backend == postgresBackend {
		var state, output *string
		e.pg.queryRow(`SELECT state, output FROM callback WHERE id = $1`, []any{id}, &state, &output)
		if state == nil {
			return "", output
		}
		return *state, output
	}
	cb, err := e.stored().Callback(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(cb.State), cb.Output
}

// connectionTestResult returns the stored state and message of a test.
func (e *workersEnv) connectionTestResult(id string) (string, *string) {
	e.t.Helper()
	if e.backend == postgresBackend {
		var state string
		var msg *string
		e.pg.queryRow(`SELECT state, result_message FROM taskgate.connection_test WHERE id = $1`, []any{id}, &state, &msg)
		return state, msg
	}
	ct, err := e.stored().ConnectionTest(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(ct.State), ct.ResultMessage
}

// connection returns the stored connection's type and host, or ok false.
func (e *workersEnv) connection(id string) (connType string, host *string, ok bool) {
	e.t.Helper()
	if e.backend == postgresBackend {
		var n int
		e.pg.queryRow(`SELECT count(*) FROM connection WHERE conn_id = $1`, []any{id}, &n)
		if n == 0 {
			return "", nil, false
		}
		e.pg.queryRow(`SELECT conn_type, host FROM connection WHERE conn_id = $1`, []any{id}, &connType, &host)
		return connType, host, true
	}
	c, err := e.stored().Connection(context.Background(), id)
	if err != nil {
		return "", nil, false
	}
	return c.ConnType, c.Host, true
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func strp(s string) *string { return &s }

// detail decodes a response's {"detail": …}.
func detail(t *testing.T, r *response) map[string]any {
	t.Helper()
	var body struct {
		Detail map[string]any `json:"detail"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("%s: detail is no object: %v", r, err)
	}
	return body.Detail
}

// claimsOf parses a token the server minted.
func (e *workersEnv) claimsOf(tok string) jwt.MapClaims { return e.m.parse(tok) }

// seedJob stores a DAG processor Job as Airflow's API server would have
// registered it, in the state the case needs.
func seedJob(t *testing.T, db *store.DB, j workload.Job) int64 {
	t.Helper()
	ctx := context.Background()
	session := j.SessionID
	if session == "" {
		session = uuid.NewString()
	}
	got, err := db.RegisterJob(ctx, j.RegistrationID, session,
		func(_, _ *workload.Job) (workload.JobDecision, error) {
			ins := j
			ins.JobType = workload.DagProcessorJobType
			return workload.JobDecision{Insert: &ins}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateJob(ctx, got.ID, func(s *workload.Job) error {
		s.SessionID = j.SessionID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got.ID
}
