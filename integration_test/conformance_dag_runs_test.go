package integration_test

// Airflow's test_dag_runs.py and test_dags.py (execution_api/versions/head)
// ported to the real binary, on the embedded store and on Airflow's
// PostgreSQL database. Airflow makes its fixtures with dag_maker (the DAG
// processor's rows, then create_dagrun); here they are written into the
// bbolt file through the store package before the binary starts, or into
// Airflow's tables as Airflow writes them (pgtest). Requests carry the
// newest API version (2026-11-13), whose shapes the routes serve.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/workload"
)

const headAPIVersion = "2026-11-13"

// drFixtures writes what dag_maker and the scheduler would have written.
type drFixtures interface {
	// dag makes the DAG known, with d's flags.
	dag(d workload.Dag)
	// run stores a dag run (its DAG made known first).
	run(dr workload.DagRun)
	// ti stores a task instance of an existing run and returns its id.
	ti(dagID, runID, taskID string, state workload.State) string
}

// drTI is what the checks read back of a task instance.
type drTI struct {
	ID, TaskID string
	State      workload.State
	MaxTries   int
}

// drEnv is a running server with its fixtures, and a running task's
// execution token to call it with.
type drEnv struct {
	t     *testing.T
	url   string
	token string
	// tis reads back the current task instances of a run (the server may
	// be stopped for it).
	tis func(dagID, runID string) []drTI
	// history reads the archived tries of a run (ids).
	history func(dagID, runID string) []string
}

// The calling task: a running try of a run Alice triggered, so that a run
// it triggers inherits her name.
const (
	callerDag  = "caller_dag"
	callerRun  = "caller_run"
	callerUser = "alice"
)

func callerFixtures(f drFixtures) string {
	user := callerUser
	f.run(workload.DagRun{DagID: callerDag, RunID: callerRun, RunType: "manual", State: "running",
		RunAfter: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), TriggeringUserName: &user})
	return f.ti(callerDag, callerRun, "trigger", workload.StateRunning)
}

// embeddedFixtures writes into the bbolt file before the server opens it.
type embeddedFixtures struct {
	t  *testing.T
	db *store.DB
}

func (f *embeddedFixtures) dag(d workload.Dag) {
	f.t.Helper()
	if err := f.db.PutDag(context.Background(), d); err != nil {
		f.t.Fatal(err)
	}
}

func (f *embeddedFixtures) run(dr workload.DagRun) {
	f.t.Helper()
	if dr.RunAfter.IsZero() {
		dr.RunAfter = time.Now().UTC()
	}
	if dr.RunType == "" {
		dr.RunType = "manual"
	}
	if len(dr.Conf) == 0 {
		dr.Conf = json.RawMessage("{}") // create_dagrun's conf default
	}
	if err := f.db.PutDagRun(context.Background(), dr); err != nil {
		f.t.Fatal(err)
	}
}

func (f *embeddedFixtures) ti(dagID, runID, taskID string, state workload.State) string {
	f.t.Helper()
	ctx := context.Background()
	dr, err := f.db.DagRun(ctx, dagID, runID)
	if err != nil {
		f.t.Fatal(err)
	}
	id, _ := uuid.NewV7()
	ti := workload.TaskInstance{ID: id.String(), DagID: dagID, RunID: runID, TaskID: taskID, MapIndex: -1,
		TryNumber: 1, State: state, Queue: "default", PoolSlots: 1, UpdatedAt: time.Now().UTC()}
	if _, err := f.db.InsertTaskInstance(ctx, *dr, ti, nil); err != nil {
		f.t.Fatal(err)
	}
	return ti.ID
}

// pgFixtures writes Airflow's rows.
type pgFixtures struct {
	t *testing.T
	d *pgDeployment
}

func (f *pgFixtures) dag(d workload.Dag) {
	f.t.Helper()
	f.d.exec(`INSERT INTO dag_bundle (name, active) VALUES ($1, true) ON CONFLICT (name) DO NOTHING`, pgtest.DefaultBundle)
	f.d.exec(`INSERT INTO dag (dag_id, is_paused, is_stale, last_parsed_time, fileloc, relative_fileloc,
			bundle_name, owners, dag_display_name, timetable_type, timetable_summary, timetable_description,
			max_active_tasks, max_active_runs, max_consecutive_failed_dag_runs,
			has_task_concurrency_limits, has_import_errors, fail_fast)
		VALUES ($1, false, false, now(), $2, $3, $4, 'airflow', $1, '', 'None', 'Never, external triggers only',
			16, 16, 0, false, false, false)
		ON CONFLICT (dag_id) DO NOTHING`,
		d.DagID, "/opt/airflow/dags/"+d.DagID+".py", d.DagID+".py", pgtest.DefaultBundle)
	f.d.exec(`INSERT INTO dag_version (id, version_number, dag_id, bundle_name, created_at, last_updated)
		SELECT $1::uuid, 1, $2::varchar, $3, now(), now() WHERE NOT EXISTS (SELECT 1 FROM dag_version WHERE dag_id = $2::varchar)`,
		pgtest.UUIDv7(), d.DagID, pgtest.DefaultBundle)
	var allowed any
	if d.AllowedRunTypes != nil {
		b, _ := json.Marshal(d.AllowedRunTypes)
		allowed = string(b)
	}
	f.d.exec(`UPDATE dag SET is_paused = coalesce($2, false), is_stale = $3, has_import_errors = $4,
		allowed_run_types = $5::json WHERE dag_id = $1`, d.DagID, d.IsPaused, d.IsStale, d.HasImportErrors, allowed)
	for _, tag := range d.Tags {
		f.d.exec(`INSERT INTO dag_tag (name, dag_id) VALUES ($1, $2)`, tag, d.DagID)
	}
	if d.BundleName != nil {
		f.d.exec(`INSERT INTO dag_bundle (name, active) VALUES ($1, true) ON CONFLICT (name) DO NOTHING`, *d.BundleName)
		f.d.exec(`UPDATE dag SET bundle_name = $2 WHERE dag_id = $1`, d.DagID, *d.BundleName)
	}
	f.d.exec(`UPDATE dag SET bundle_version = $2, relative_fileloc = coalesce($3, relative_fileloc),
		owners = coalesce($4, owners), next_dagrun = $5 WHERE dag_id = $1`,
		d.DagID, d.BundleVersion, d.RelativeFileloc, d.Owners, d.NextDagrun)
}

func (f *pgFixtures) run(dr workload.DagRun) {
	f.t.Helper()
	row := pgtest.DagRunRow{DagID: dr.DagID, RunID: dr.RunID, RunType: dr.RunType, State: dr.State,
		LogicalDate: dr.LogicalDate, RunAfter: dr.RunAfter, StartDate: dr.StartDate, EndDate: dr.EndDate,
		TriggeringUser: dr.TriggeringUserName, DataIntervalStart: dr.DataIntervalStart,
		DataIntervalEnd: dr.DataIntervalEnd, ClearNumber: dr.ClearNumber, PartitionKey: dr.PartitionKey}
	if len(dr.Conf) > 0 {
		_ = json.Unmarshal(dr.Conf, &row.Conf)
	}
	f.d.af.DagRun(f.t, row)
}

func (f *pgFixtures) ti(dagID, runID, taskID string, state workload.State) string {
	f.t.Helper()
	s := string(state)
	if s == "" {
		s = "none"
	}
	return f.d.af.TaskInstance(f.t, pgtest.TaskInstanceRow{DagID: dagID, RunID: runID, TaskID: taskID, State: s}).ID
}

// drBackends are the two stores a case runs on.
var drBackends = []string{"embedded", "postgres"}

// startDagRunEnv writes the case's fixtures and starts the server.
func startDagRunEnv(t *testing.T, backend string, setup func(f drFixtures)) *drEnv {
	t.Helper()
	switch backend {
	case "embedded":
		dataDir := newDataDir(t)
		path := filepath.Join(dataDir, "taskgate.db")
		db, err := store.Open(path, store.Options{OpenTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		f := &embeddedFixtures{t: t, db: db}
		caller := callerFixtures(f)
		if setup != nil {
			setup(f)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		s := startServer(t, dataDir)
		env := &drEnv{t: t, url: s.URL, token: newMinter(t, dataDir).execution(caller)}
		stopped := false
		withStore := func(fn func(db *store.DB)) {
			if !stopped {
				s.stop()
				stopped = true
			}
			db, err := store.Open(path, store.Options{OpenTimeout: time.Second, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			fn(db)
		}
		env.tis = func(dagID, runID string) (out []drTI) {
			withStore(func(db *store.DB) {
				tis, _, err := db.TaskInstances(context.Background(), workload.TaskInstanceFilter{DagID: dagID, RunID: runID})
				if err != nil {
					t.Fatal(err)
				}
				for _, ti := range tis {
					out = append(out, drTI{ID: ti.ID, TaskID: ti.TaskID, State: ti.State, MaxTries: ti.MaxTries})
				}
			})
			return out
		}
		env.history = nil // the embedded store keeps earlier tries by id only
		return env
	case "postgres":
		d := newPGDeployment(t)
		f := &pgFixtures{t: t, d: d}
		caller := callerFixtures(f)
		if setup != nil {
			setup(f)
		}
		s := d.startReplica(t)
		env := &drEnv{t: t, url: s.URL, token: d.minter(t).execution(caller)}
		env.tis = func(dagID, runID string) (out []drTI) {
			rows, err := d.pool.Query(context.Background(), `SELECT id::text, task_id, coalesce(state, ''), max_tries
				FROM task_instance WHERE dag_id = $1 AND run_id = $2 ORDER BY task_id, map_index`, dagID, runID)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var ti drTI
				var st string
				if err := rows.Scan(&ti.ID, &ti.TaskID, &st, &ti.MaxTries); err != nil {
					t.Fatal(err)
				}
				ti.State = workload.State(st)
				out = append(out, ti)
			}
			return out
		}
		env.history = func(dagID, runID string) (out []string) {
			rows, err := d.pool.Query(context.Background(), `SELECT task_instance_id::text || ' ' || state
				FROM task_instance_history WHERE dag_id = $1 AND run_id = $2 ORDER BY task_id`, dagID, runID)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				out = append(out, s)
			}
			return out
		}
		return env
	}
	t.Fatalf("unknown backend %s", backend)
	return nil
}

// do sends one request at the newest API version with the caller's token.
func (e *drEnv) do(method, path, body string) *response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Airflow-API-Version", headAPIVersion)
	req.Header.Set("Authorization", "Bearer "+e.token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := httpClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &response{method: method, path: path, status: res.StatusCode, header: res.Header, body: b}
	if r.status >= 500 {
		e.t.Errorf("%s: a 5xx", r)
	}
	return r
}

// checkDagRunBody validates a DagRun body against the client's model (the
// real client forbids unknown fields).
func checkDagRunBody(t *testing.T, r *response) {
	t.Helper()
	var p problems
	if obj := p.object("", r.body); obj != nil {
		p.model("", obj, dagRunModel)
	}
	for _, msg := range p {
		t.Errorf("%s: %s", r, msg)
	}
}

// want checks a response's status and, when body is not empty, its JSON.
func (e *drEnv) want(r *response, status int, body string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("%s: status %d, want %d", r, r.status, status)
	}
	if body == "" {
		return
	}
	var got, exp any
	if err := json.Unmarshal(r.body, &got); err != nil {
		e.t.Fatalf("%s: not JSON: %v", r, err)
	}
	if err := json.Unmarshal([]byte(body), &exp); err != nil {
		e.t.Fatalf("bad expectation %s: %v", body, err)
	}
	if !reflect.DeepEqual(got, exp) {
		e.t.Fatalf("%s:\n got %s\nwant %s", r, r.body, body)
	}
}

// drField reads one field of a JSON object response.
func drField(t *testing.T, r *response, name string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	return m[name]
}

func dateOn(y int, m time.Month, d int) *time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return &t
}

// simpleDag is dag_maker's DAG with one EmptyOperator "test_task".
func simpleDag(f drFixtures, dagID string) {
	f.dag(workload.Dag{DagID: dagID})
}

// runWithTask is dag_maker.create_dagrun: the run and its one task instance.
func runWithTask(f drFixtures, dagID, runID, state string, logical *time.Time) {
	f.run(workload.DagRun{DagID: dagID, RunID: runID, State: state, LogicalDate: logical,
		RunAfter: time.Date(2025, 12, 13, 0, 0, 0, 0, time.UTC)})
	f.ti(dagID, runID, "test_task", "")
}

type drCase struct {
	name  string
	setup func(f drFixtures)
	check func(t *testing.T, e *drEnv)
}

func runDagRunCases(t *testing.T, cases []drCase) {
	for _, backend := range drBackends {
		for _, c := range cases {
			t.Run(backend+"/"+c.name, func(t *testing.T) {
				e := startDagRunEnv(t, backend, c.setup)
				c.check(t, e)
			})
		}
	}
}

func TestConformanceDagRunTrigger(t *testing.T) {
	runDagRunCases(t, []drCase{{
		name:  "test_dag_runs.py::TestDagRunTrigger::test_trigger_dag_run",
		setup: func(f drFixtures) { simpleDag(f, "test_trigger_dag_run") },
		check: func(t *testing.T, e *drEnv) {
			before := time.Now().Add(-time.Second)
			r := e.do("POST", "/execution/dag-runs/test_trigger_dag_run/test_run_id",
				`{"logical_date": "2025-02-20T00:00:00+00:00", "conf": {"key1": "value1"}}`)
			e.want(r, 204, "")
			r = e.do("GET", "/execution/dag-runs/test_trigger_dag_run/test_run_id", "")
			checkDagRunBody(t, r)
			e.want(r, 200, "")
			// run_after is the trigger's time (trigger_dag), and the data
			// interval the exact one after it.
			var m map[string]any
			_ = json.Unmarshal(r.body, &m)
			runAfter, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["run_after"]))
			if err != nil || runAfter.Before(before) || runAfter.After(time.Now().Add(time.Second)) ||
				m["data_interval_start"] != m["run_after"] || m["data_interval_end"] != m["run_after"] {
				t.Errorf("run_after and data interval: %s", r.body)
			}
			for _, k := range []string{"run_after", "data_interval_start", "data_interval_end"} {
				delete(m, k)
			}
			want := map[string]any{"dag_id": "test_trigger_dag_run", "run_id": "test_run_id",
				"logical_date": "2025-02-20T00:00:00Z", "start_date": nil, "end_date": nil, "clear_number": 0.0,
				"run_type": "operator_triggered", "state": "queued", "conf": map[string]any{"key1": "value1"},
				"triggering_user_name": "alice", "consumed_asset_events": []any{}, "partition_key": nil,
				"note": nil, "team_name": nil}
			if !reflect.DeepEqual(m, want) {
				t.Errorf("triggered run: %s", r.body)
			}
		},
	}, {
		name: "test_dag_runs.py::TestDagRunTrigger::test_trigger_dag_run_dag_not_found",
		check: func(t *testing.T, e *drEnv) {
			r := e.do("POST", "/execution/dag-runs/dag_not_found/test_run_id", `{"logical_date": "2025-02-20T00:00:00+00:00"}`)
			e.want(r, 404, `{"detail": {"reason": "not_found", "message": "Dag with dag_id: 'dag_not_found' not found"}}`)
		},
	}, {
		name: "test_dag_runs.py::TestDagRunTrigger::test_trigger_dag_run_import_error",
		setup: func(f drFixtures) {
			f.dag(workload.Dag{DagID: "test_trigger_dag_run_import_error", HasImportErrors: true})
		},
		check: func(t *testing.T, e *drEnv) {
			r := e.do("POST", "/execution/dag-runs/test_trigger_dag_run_import_error/test_run_id",
				`{"logical_date": "2025-02-20T00:00:00+00:00"}`)
			e.want(r, 400, `{"detail": {"message": "Dag with dag_id 'test_trigger_dag_run_import_error' has import errors and cannot be triggered", "reason": "import_errors"}}`)
		},
	}, {
		name:  "test_dag_runs.py::TestDagRunTrigger::test_trigger_dag_run_already_exists",
		setup: func(f drFixtures) { simpleDag(f, "test_trigger_dag_run_already_exists") },
		check: func(t *testing.T, e *drEnv) {
			path := "/execution/dag-runs/test_trigger_dag_run_already_exists/test_run_id"
			e.want(e.do("POST", path, `{"logical_date": "2025-02-20T00:00:00+00:00"}`), 204, "")
			e.want(e.do("POST", path, `{"logical_date": "2025-02-20T00:00:00+00:00"}`), 409,
				`{"detail": {"message": "A run already exists for Dag 'test_trigger_dag_run_already_exists' with run_id 'test_run_id'", "reason": "already_exists"}}`)
		},
	}, {
		name: "trigger: a stale DAG is not found, denied run types are a 400, a paused DAG is triggered",
		setup: func(f drFixtures) {
			f.dag(workload.Dag{DagID: "stale", IsStale: true})
			f.dag(workload.Dag{DagID: "manual_only", AllowedRunTypes: []string{"manual"}})
			yes := true
			f.dag(workload.Dag{DagID: "paused", IsPaused: &yes})
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("POST", "/execution/dag-runs/stale/r", `{}`), 404,
				`{"detail": {"reason": "not_found", "message": "Dag with dag_id: 'stale' not found"}}`)
			e.want(e.do("POST", "/execution/dag-runs/manual_only/r", `{}`), 400,
				`{"detail": {"reason": "denied_run_type", "message": "Dag with dag_id 'manual_only' does not allow operator-triggered runs"}}`)
			e.want(e.do("POST", "/execution/dag-runs/paused/r", `{"run_after": "2025-03-01T00:00:00Z", "partition_key": "p1"}`), 204, "")
			r := e.do("GET", "/execution/dag-runs/paused/r", "")
			e.want(r, 200, "")
			if drField(t, r, "run_after") != "2025-03-01T00:00:00Z" || drField(t, r, "logical_date") != nil ||
				drField(t, r, "partition_key") != "p1" || drField(t, r, "state") != "queued" ||
				!reflect.DeepEqual(drField(t, r, "conf"), map[string]any{}) {
				t.Errorf("triggered run: %s", r.body)
			}
		},
	}, {
		name:  "trigger: FastAPI's 422s",
		setup: func(f drFixtures) { simpleDag(f, "d") },
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("POST", "/execution/dag-runs/d/r", ""), 422,
				`{"detail": [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": null}]}`)
			e.want(e.do("POST", "/execution/dag-runs/d/r", `{"conf": [1], "extra": 1, "logical_date": "nope"}`), 422, "")
			r := e.do("POST", "/execution/dag-runs/d/r", `{"reset_dag_run": "maybe"}`)
			e.want(r, 422, `{"detail": [{"type": "bool_parsing", "loc": ["body", "reset_dag_run"],
				"msg": "Input should be a valid boolean, unable to interpret input", "input": "maybe"}]}`)
			// Nothing was recorded.
			e.want(e.do("GET", "/execution/dag-runs/d/r", ""), 404, "")
		},
	}})
}

func TestConformanceDagRunClear(t *testing.T) {
	var before []string // the cleared tries' ids, as the fixtures made them
	runDagRunCases(t, []drCase{{
		name: "test_dag_runs.py::TestDagRunClear::test_dag_run_clear",
		setup: func(f drFixtures) {
			simpleDag(f, "test_trigger_dag_run_clear")
			f.run(workload.DagRun{DagID: "test_trigger_dag_run_clear", RunID: "test_run_id", State: "success",
				RunAfter: time.Date(2025, 12, 13, 0, 0, 0, 0, time.UTC)})
			before = []string{f.ti("test_trigger_dag_run_clear", "test_run_id", "test_task", workload.StateSuccess)}
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("POST", "/execution/dag-runs/test_trigger_dag_run_clear/test_run_id/clear", ""), 204, "")
			r := e.do("GET", "/execution/dag-runs/test_trigger_dag_run_clear/test_run_id", "")
			e.want(r, 200, "")
			if drField(t, r, "state") != "queued" || drField(t, r, "clear_number") != 1.0 ||
				drField(t, r, "start_date") != nil || drField(t, r, "end_date") != nil {
				t.Errorf("cleared run: %s", r.body)
			}
			after := e.tis("test_trigger_dag_run_clear", "test_run_id")
			if len(after) != 1 || after[0].ID == before[0] || after[0].State != "" {
				t.Errorf("task instances before %+v, after %+v: want one, with a new id and no state", before, after)
			}
		},
	}, {
		name: "test_dag_runs.py::TestDagRunClear::test_dag_run_import_error",
		setup: func(f drFixtures) {
			f.dag(workload.Dag{DagID: "test_trigger_dag_run_import_error", HasImportErrors: true})
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("POST", "/execution/dag-runs/test_trigger_dag_run_import_error/test_run_id/clear", ""), 400,
				`{"detail": {"message": "Dag with dag_id 'test_trigger_dag_run_import_error' has import errors and cannot be triggered", "reason": "import_errors"}}`)
		},
	}, {
		name: "test_dag_runs.py::TestDagRunClear::test_dag_run_not_found",
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("POST", "/execution/dag-runs/dag_not_found/test_run_id/clear", ""), 404,
				`{"detail": {"reason": "not_found", "message": "Dag with dag_id: 'dag_not_found' not found"}}`)
		},
	}, {
		name:  "clear: a known DAG without the run",
		setup: func(f drFixtures) { simpleDag(f, "d") },
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("POST", "/execution/dag-runs/d/nope/clear", `{}`), 404,
				`{"detail": {"reason": "not_found", "message": "Dag run with run_id: 'nope' not found"}}`)
			e.want(e.do("POST", "/execution/dag-runs/d/nope/clear", `{"only_failed": true, "x": 1}`), 422,
				`{"detail": [{"type": "extra_forbidden", "loc": ["body", "x"], "msg": "Extra inputs are not permitted", "input": 1}]}`)
		},
	}, {
		name: "clear: only_failed (2026-11-13) clears the failed and upstream_failed tries alone; a running try restarts",
		setup: func(f drFixtures) {
			f.dag(workload.Dag{DagID: "d"})
			f.run(workload.DagRun{DagID: "d", RunID: "r", State: "failed", StartDate: dateOn(2025, 1, 1), EndDate: dateOn(2025, 1, 2)})
			before = []string{f.ti("d", "r", "a_failed", workload.StateFailed),
				f.ti("d", "r", "b_ok", workload.StateSuccess),
				f.ti("d", "r", "c_upstream", workload.StateUpstreamFailed)}
			f.run(workload.DagRun{DagID: "d", RunID: "live", State: "running", StartDate: dateOn(2025, 1, 1)})
			f.ti("d", "live", "running", workload.StateRunning)
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("POST", "/execution/dag-runs/d/r/clear", `{"only_failed": true}`), 204, "")
			e.want(e.do("POST", "/execution/dag-runs/d/live/clear", ``), 204, "")
			r := e.do("GET", "/execution/dag-runs/d/r", "")
			if drField(t, r, "state") != "queued" || drField(t, r, "clear_number") != 1.0 {
				t.Errorf("cleared run: %s", r.body)
			}
			r = e.do("GET", "/execution/dag-runs/d/live/state", "")
			e.want(r, 200, `{"state": "running"}`)
			after := e.tis("d", "r")
			if len(after) != 3 {
				t.Fatalf("after: %+v", after)
			}
			for i, ti := range after {
				cleared := ti.TaskID != "b_ok"
				if cleared != (ti.ID != before[i]) || (cleared && ti.State != "") || (!cleared && ti.State != "success") {
					t.Errorf("%s: before %+v after %+v", ti.TaskID, before[i], ti)
				}
				if cleared && ti.MaxTries != 1 {
					t.Errorf("%s: max_tries %d, want the try number 1", ti.TaskID, ti.MaxTries)
				}
			}
			if live := e.tis("d", "live"); len(live) != 1 || live[0].State != "restarting" {
				t.Errorf("running try after clear: %+v", live)
			}
			if e.history != nil {
				if h := e.history("d", "r"); len(h) != 2 || h[0] != before[0]+" failed" || h[1] != before[2]+" upstream_failed" {
					t.Errorf("history: %v", h)
				}
				if h := e.history("d", "live"); len(h) != 1 || !strings.HasSuffix(h[0], " failed") {
					t.Errorf("history of the running try: %v", h)
				}
			}
		},
	}})
}

func TestConformanceDagRunReads(t *testing.T) {
	runDagRunCases(t, []drCase{{
		name: "test_dag_runs.py::TestDagRunDetail::test_get_state",
		setup: func(f drFixtures) {
			simpleDag(f, "test_dag_id")
			end := time.Date(2025, 12, 13, 0, 0, 0, 0, time.UTC)
			f.run(workload.DagRun{DagID: "test_dag_id", RunID: "test_run_id", RunType: "manual", State: "success",
				RunAfter: end, StartDate: dateOn(2023, 1, 2), EndDate: &end})
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dag-runs/test_dag_id/test_run_id", ""), 200, `{
				"clear_number": 0, "conf": {}, "consumed_asset_events": [], "dag_id": "test_dag_id",
				"data_interval_end": null, "data_interval_start": null, "end_date": "2025-12-13T00:00:00Z",
				"logical_date": null, "partition_key": null, "run_after": "2025-12-13T00:00:00Z",
				"run_id": "test_run_id", "run_type": "manual", "start_date": "2023-01-02T00:00:00Z",
				"state": "success", "triggering_user_name": null, "note": null, "team_name": null}`)
		},
	}, {
		name: "test_dag_runs.py::TestDagRunDetail::test_dag_run_not_found",
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dag-runs/dag_not_found/test_run_id", ""), 404,
				`{"detail": {"reason": "not_found", "message": "Dag run with dag_id 'dag_not_found' and run_id 'test_run_id' was not found"}}`)
		},
	}, {
		name: "test_dag_runs.py::TestDagRunState::test_get_state",
		setup: func(f drFixtures) {
			simpleDag(f, "test_get_state")
			runWithTask(f, "test_get_state", "test_run_id", "success", nil)
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dag-runs/test_get_state/test_run_id/state", ""), 200, `{"state": "success"}`)
		},
	}, {
		name: "test_dag_runs.py::TestDagRunState::test_dag_run_not_found",
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dag-runs/dag_not_found/test_run_id/state", ""), 404,
				`{"detail": {"reason": "not_found", "message": "Dag run with dag_id 'dag_not_found' and run_id 'test_run_id' was not found"}}`)
		},
	}, {
		name: "test_dag_runs.py::TestGetDagRunCount::test_get_count_basic",
		setup: func(f drFixtures) {
			simpleDag(f, "test_dag")
			runWithTask(f, "test_dag", "run", "running", dateOn(2025, 1, 1))
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dag-runs/count?dag_id=test_dag", ""), 200, `1`)
		},
	}, {
		name: "test_dag_runs.py::TestGetDagRunCount::test_get_count_with_states",
		setup: func(f drFixtures) {
			d := "test_get_count_with_states"
			simpleDag(f, d)
			runWithTask(f, d, "test_run_id1", "success", dateOn(2025, 1, 1))
			runWithTask(f, d, "test_run_id2", "failed", dateOn(2025, 1, 2))
			runWithTask(f, d, "test_run_id3", "running", dateOn(2025, 1, 3))
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dag-runs/count?dag_id=test_get_count_with_states&states=success&states=failed", ""), 200, `2`)
		},
	}, {
		name: "test_dag_runs.py::TestGetDagRunCount::test_get_count_with_logical_dates",
		setup: func(f drFixtures) {
			d := "test_get_count_with_logical_dates"
			simpleDag(f, d)
			runWithTask(f, d, "test_run_id1", "running", dateOn(2025, 1, 1))
			runWithTask(f, d, "test_run_id2", "running", dateOn(2025, 1, 2))
		},
		check: func(t *testing.T, e *drEnv) {
			q := url.Values{"dag_id": {"test_get_count_with_logical_dates"},
				"logical_dates": {"2025-01-01T00:00:00+00:00", "2025-01-02T00:00:00+00:00"}}
			e.want(e.do("GET", "/execution/dag-runs/count?"+q.Encode(), ""), 200, `2`)
			q.Set("logical_dates", "2025-01-02T01:00:00+01:00")
			e.want(e.do("GET", "/execution/dag-runs/count?"+q.Encode(), ""), 200, `1`)
			q.Set("logical_dates", "not a date")
			e.want(e.do("GET", "/execution/dag-runs/count?"+q.Encode(), ""), 422, "")
			e.want(e.do("GET", "/execution/dag-runs/count", ""), 422,
				`{"detail": [{"type": "missing", "loc": ["query", "dag_id"], "msg": "Field required", "input": null}]}`)
		},
	}, {
		name: "test_dag_runs.py::TestGetDagRunCount::test_get_count_with_run_ids",
		setup: func(f drFixtures) {
			d := "test_get_count_with_run_ids"
			simpleDag(f, d)
			runWithTask(f, d, "run1", "running", dateOn(2025, 1, 1))
			runWithTask(f, d, "run2", "running", dateOn(2025, 1, 2))
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dag-runs/count?dag_id=test_get_count_with_run_ids&run_ids=run1&run_ids=run2", ""), 200, `2`)
			e.want(e.do("GET", "/execution/dag-runs/count?dag_id=test_get_count_with_run_ids&run_ids=run1&run_ids=nope", ""), 200, `1`)
			e.want(e.do("GET", "/execution/dag-runs/count?dag_id=unknown", ""), 200, `0`)
		},
	}, {
		name: "test_dag_runs.py::TestGetDagRunCount::test_get_count_with_mixed_states",
		setup: func(f drFixtures) {
			d := "test_get_count_with_mixed"
			simpleDag(f, d)
			runWithTask(f, d, "runid1", "success", dateOn(2025, 1, 1))
			runWithTask(f, d, "runid2", "queued", dateOn(2025, 1, 2))
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dag-runs/count?dag_id=test_get_count_with_mixed&states=success&states=queued", ""), 200, `2`)
		},
	}})
}

// previousRuns are the runs of TestGetPreviousDagRun's first two cases.
func previousRuns(dagID string, third *time.Time) func(f drFixtures) {
	return func(f drFixtures) {
		simpleDag(f, dagID)
		runWithTask(f, dagID, "run1", "success", dateOn(2025, 1, 1))
		runWithTask(f, dagID, "run2", "failed", dateOn(2025, 1, 5))
		runWithTask(f, dagID, "run3", "success", third)
	}
}

func TestConformanceDagRunPrevious(t *testing.T) {
	prev := func(q url.Values) string { return "/execution/dag-runs/previous?" + q.Encode() }
	runDagRunCases(t, []drCase{{
		name:  "test_dag_runs.py::TestGetPreviousDagRun::test_get_previous_dag_run_basic",
		setup: previousRuns("test_get_previous_basic", dateOn(2025, 1, 10)),
		check: func(t *testing.T, e *drEnv) {
			r := e.do("GET", prev(url.Values{"dag_id": {"test_get_previous_basic"},
				"logical_date": {"2025-01-10T00:00:00+00:00"}}), "")
			e.want(r, 200, "")
			checkDagRunBody(t, r)
			if drField(t, r, "dag_id") != "test_get_previous_basic" || drField(t, r, "run_id") != "run2" ||
				drField(t, r, "state") != "failed" {
				t.Errorf("previous: %s", r.body)
			}
		},
	}, {
		name:  "test_dag_runs.py::TestGetPreviousDagRun::test_get_previous_dag_run_with_state_filter",
		setup: previousRuns("test_get_previous_with_state", dateOn(2025, 1, 8)),
		check: func(t *testing.T, e *drEnv) {
			r := e.do("GET", prev(url.Values{"dag_id": {"test_get_previous_with_state"},
				"logical_date": {"2025-01-10T00:00:00+00:00"}, "state": {"success"}}), "")
			e.want(r, 200, "")
			if drField(t, r, "run_id") != "run3" || drField(t, r, "state") != "success" {
				t.Errorf("previous: %s", r.body)
			}
		},
	}, {
		name: "test_dag_runs.py::TestGetPreviousDagRun::test_get_previous_dag_run_no_previous_found",
		setup: func(f drFixtures) {
			simpleDag(f, "test_get_previous_none")
			runWithTask(f, "test_get_previous_none", "run1", "success", dateOn(2025, 1, 1))
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dag-runs/previous?dag_id=test_get_previous_none&logical_date=2025-01-01T00:00:00Z", ""), 200, `null`)
		},
	}, {
		name: "test_dag_runs.py::TestGetPreviousDagRun::test_get_previous_dag_run_no_matching_state",
		setup: func(f drFixtures) {
			simpleDag(f, "test_get_previous_no_match")
			runWithTask(f, "test_get_previous_no_match", "run1", "failed", dateOn(2025, 1, 1))
			runWithTask(f, "test_get_previous_no_match", "run2", "failed", dateOn(2025, 1, 2))
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dag-runs/previous?dag_id=test_get_previous_no_match&logical_date=2025-01-03T00:00:00Z&state=success", ""), 200, `null`)
		},
	}, {
		name: "test_dag_runs.py::TestGetPreviousDagRun::test_get_previous_dag_run_dag_not_found",
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dag-runs/previous?dag_id=nonexistent_dag&logical_date=2025-01-01T00:00:00Z", ""), 200, `null`)
		},
	}, {
		name: "test_dag_runs.py::TestGetPreviousDagRun::test_get_previous_dag_run_invalid_state_parameter",
		setup: func(f drFixtures) {
			simpleDag(f, "test_get_previous_invalid_state")
			runWithTask(f, "test_get_previous_invalid_state", "run1", "success", dateOn(2025, 1, 1))
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dag-runs/previous?dag_id=test_get_previous_invalid_state&logical_date=2025-01-02T00:00:00Z&state=invalid_state", ""), 422,
				`{"detail": [{"type": "enum", "loc": ["query", "state"], "msg": "Input should be 'queued', 'running', 'success' or 'failed'",
					"input": "invalid_state", "ctx": {"expected": "'queued', 'running', 'success' or 'failed'"}}]}`)
			e.want(e.do("GET", "/execution/dag-runs/previous?dag_id=x", ""), 422,
				`{"detail": [{"type": "missing", "loc": ["query", "logical_date"], "msg": "Field required", "input": null}]}`)
		},
	}})
}

func TestConformanceDags(t *testing.T) {
	yes, no := true, false
	var cases []drCase
	for _, c := range []struct {
		name   string
		paused *bool
		want   bool
	}{
		{"test_dags.py::TestDagState::test_dag_is_paused[True-True]", &yes, true},
		{"test_dags.py::TestDagState::test_dag_is_paused[False-False]", &no, false},
		{"test_dags.py::TestDagState::test_dag_is_paused[None-False]", nil, false},
	} {
		cases = append(cases, drCase{
			name: c.name,
			setup: func(f drFixtures) {
				f.dag(workload.Dag{DagID: "test_dag_is_paused", IsPaused: c.paused})
			},
			check: func(t *testing.T, e *drEnv) {
				e.want(e.do("GET", "/execution/dags/test_dag_is_paused/state", ""), 200, fmt.Sprintf(`{"is_paused": %v}`, c.want))
			},
		})
	}
	cases = append(cases, drCase{
		name: "test_dags.py::TestDagState::test_dag_not_found",
		check: func(t *testing.T, e *drEnv) {
			want := `{"detail": {"message": "The Dag with dag_id: ` + "`test_dag_is_paused`" + ` was not found", "reason": "not_found"}}`
			e.want(e.do("GET", "/execution/dags/test_dag_is_paused/state", ""), 404, want)
			e.want(e.do("GET", "/execution/dags/test_dag_is_paused", ""), 404, want)
		},
	})
	// TestDag: GET /dags/{dag_id} (2026-04-06), Airflow's DagModel row as
	// DagResponse. dag_maker's DAG lives in the bundle "dag_maker".
	str := func(s string) *string { return &s }
	next := time.Date(2026, 4, 13, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name   string
		paused bool
	}{
		{"test_dags.py::TestDag::test_get_dag[True-True]", true},
		{"test_dags.py::TestDag::test_get_dag[False-False]", false},
	} {
		paused := c.paused
		cases = append(cases, drCase{
			name: c.name,
			setup: func(f drFixtures) {
				f.dag(workload.Dag{DagID: "test_get_dag", IsPaused: &paused, Tags: []string{"z_tag", "a_tag"},
					BundleName: str("dag_maker"), BundleVersion: str("bundle-version"),
					RelativeFileloc: str("dags/example.py"), Owners: str("owner_1"), NextDagrun: &next})
			},
			check: func(t *testing.T, e *drEnv) {
				e.want(e.do("GET", "/execution/dags/test_get_dag", ""), 200, fmt.Sprintf(`{"dag_id": "test_get_dag",
					"is_paused": %v, "bundle_name": "dag_maker", "bundle_version": "bundle-version",
					"relative_fileloc": "dags/example.py", "owners": "owner_1", "tags": ["a_tag", "z_tag"],
					"next_dagrun": "2026-04-13T00:00:00Z"}`, paused))
			},
		})
	}
	cases = append(cases, drCase{
		name: "test_dags.py::TestDag::test_dag_not_found",
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dags/test_get_dag", ""), 404,
				`{"detail": {"message": "The Dag with dag_id: `+"`test_get_dag`"+` was not found", "reason": "not_found"}}`)
		},
	}, drCase{
		name: "test_dags.py::TestDag::test_get_dag_defaults",
		setup: func(f drFixtures) {
			no := false
			f.dag(workload.Dag{DagID: "test_get_dag_defaults", IsPaused: &no, BundleName: str("dag_maker"),
				RelativeFileloc: str("test_dags.py"), Owners: str("airflow")})
		},
		check: func(t *testing.T, e *drEnv) {
			e.want(e.do("GET", "/execution/dags/test_get_dag_defaults", ""), 200, `{"dag_id": "test_get_dag_defaults",
				"is_paused": false, "bundle_name": "dag_maker", "bundle_version": null,
				"relative_fileloc": "test_dags.py", "owners": "airflow", "tags": [], "next_dagrun": null}`)
		},
	})
	// versions/v2026_04_06 and v2026_03_31/test_dags.py: before 2026-04-06
	// there is no GET /dags/{dag_id}, even for a DAG that exists (2026-03-31
	// is served as 2025-11-05, the newest version before it).
	for _, c := range []struct{ name, version string }{
		{"v2026_04_06/test_dags.py::test_dag_endpoint_not_available_in_previous_version", "2025-11-05"},
		{"v2026_03_31/test_dags.py::test_dag_endpoint_not_available_in_previous_version", "2026-03-31"},
	} {
		version := c.version
		cases = append(cases, drCase{
			name:  c.name,
			setup: func(f drFixtures) { f.dag(workload.Dag{DagID: "test_dag"}) },
			check: func(t *testing.T, e *drEnv) {
				e.want(sendVersion(t, e.url, version, "GET", "/execution/dags/test_dag", "Bearer "+e.token, ""), 404,
					`{"detail": "Not Found"}`)
				e.want(sendVersion(t, e.url, version, "GET", "/execution/dags/test_dag/state", "Bearer "+e.token, ""), 200,
					`{"is_paused": false}`)
				e.want(e.do("GET", "/execution/dags/test_dag", ""), 200, "")
			},
		})
	}
	cases = append(cases, drCase{
		name: "GET /dags/{dag_id}: tags in code-point order, microseconds as pydantic writes them",
		setup: func(f drFixtures) {
			at := time.Date(2026, 4, 13, 1, 2, 3, 120000000, time.UTC)
			f.dag(workload.Dag{DagID: "tagged", IsPaused: &yes, Tags: []string{"b", "a", "B", "é"}, NextDagrun: &at})
		},
		check: func(t *testing.T, e *drEnv) {
			r := e.do("GET", "/execution/dags/tagged", "")
			e.want(r, 200, "")
			if !reflect.DeepEqual(drField(t, r, "tags"), []any{"B", "a", "b", "é"}) ||
				drField(t, r, "next_dagrun") != "2026-04-13T01:02:03.120000Z" {
				t.Errorf("dag: %s", r.body)
			}
			// A DAG known by its runs alone (embedded) or its row (Airflow).
			e.want(e.do("GET", "/execution/dags/"+callerDag+"/state", ""), 200, `{"is_paused": false}`)
		},
	})
	runDagRunCases(t, cases)
}

// The dag run of a task's /run context and of GET /dag-runs carries
// team_name (2026-06-30): on Airflow's database the team of the DAG's bundle.
func TestDagRunTeamNameOnAirflowDatabase(t *testing.T) {
	d := newPGDeployment(t)
	run := d.insertDagRun("team_dag", "r")
	ti := d.insertQueuedTI(run, "t", 1, 0)
	d.exec(`INSERT INTO team (name) VALUES ('blue')`)
	d.exec(`INSERT INTO dag_bundle_team (dag_bundle_name, team_name) VALUES ($1, 'blue')`, pgtest.DefaultBundle)
	s := d.startReplica(t)
	w := newWorker(t, s.URL, ti.q(d.minter(t)).Token)
	r := w.do("PATCH", tiPath(ti.id, "run"), host{"h", "airflow", 4242}.runPayload(t))
	mustStatus(t, r, 200)
	var rc struct {
		DagRun map[string]any `json:"dag_run"`
	}
	if err := json.Unmarshal(r.body, &rc); err != nil || rc.DagRun["team_name"] != "blue" {
		t.Fatalf("/run context: %s", r.body)
	}
	e := &drEnv{t: t, url: s.URL, token: w.token}
	if got := drField(t, e.do("GET", "/execution/dag-runs/team_dag/r", ""), "team_name"); got != "blue" {
		t.Fatalf("dag run team_name = %v", got)
	}
}
