package integration_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/pgtest"
)

// TestPostgresTaskFlow runs one task through a taskgate replica on
// Airflow's metadata database: the DAG run and the queued task instance are
// rows Airflow's scheduler inserted, the workload token is the one
// Airflow's executor mints with the shared [api_auth] jwt_secret, the
// variable and the connection are rows Airflow stored Fernet-encrypted.
// After every step the rows are read with SQL as Airflow's scheduler and UI
// read them.
func TestPostgresTaskFlow(t *testing.T) {
	d := newPGDeployment(t)
	srv := d.startReplica(t)
	runPostgresFlow(t, d, []*server{srv})
	srv.stop()
}

// TestPostgresTaskFlowRoundRobin is the same flow with every request sent
// to the next of three replicas, as an ingress balancing /execution/ does,
// with execution tokens short enough that every answer renews the token: a
// token one replica minted is honoured, and renewed, by the next.
func TestPostgresTaskFlowRoundRobin(t *testing.T) {
	d := newPGDeployment(t)
	replicas := d.startReplicas(t, 3, shortExecution)
	runPostgresFlow(t, d, replicas)
	for _, s := range replicas {
		s.stop()
	}
}

// rrWorker is a Task SDK client behind a load balancer: each request goes
// to the next replica.
type rrWorker struct {
	*worker
	bases    []string
	next     int
	renewals int // answers that carried a Refreshed-API-Token
}

func (w *rrWorker) do(method, path, body string) *response {
	w.t.Helper()
	w.worker.base = w.bases[w.next%len(w.bases)]
	w.next++
	r := w.worker.do(method, path, body)
	if r.header.Get("Refreshed-API-Token") != "" && r.status < 300 {
		w.renewals++
	}
	return r
}

// runPostgresFlow is the whole task flow over the replicas, round-robin.
func runPostgresFlow(t *testing.T, d *pgDeployment, replicas []*server) {
	const (
		dagID  = "etl_daily"
		runID  = "manual__2026-11-27T10:00:00+00:00"
		taskID = "extract"
	)
	run := d.insertDagRun(dagID, runID)
	ti := d.insertQueuedTI(run, taskID, 1, 2)
	d.insertVariable("source_bucket", "s3://raw-data/daily", "where extract reads")
	// A variable Airflow stored without a Fernet key: served as stored.
	d.exec(`INSERT INTO variable (key, val, description, is_encrypted) VALUES ('plain_var', 'in clear', NULL, false)`)
	collected.addSecret("connection password", connPassword)
	d.insertConnection(afConnection{connID: "warehouse_db", connType: "postgres", host: "db.internal",
		schema: "warehouse", login: "etl", password: connPassword, port: 5432, extra: `{"sslmode":"require"}`})

	// An upstream task that succeeded: one XCom pushed by its Task SDK (the
	// JSON document), one written by Airflow's XComModel.set default (the
	// text of json.dumps, as a JSON string).
	d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: dagID, RunID: runID, TaskID: "upstream", State: "success"})
	d.af.XCom(t, pgtest.XComRow{DagID: dagID, RunID: runID, TaskID: "upstream", MapIndex: -1, Key: "return_value",
		Value: map[string]any{"uri": "s3://raw/part-0.parquet", "rows": 1250}})
	d.af.XCom(t, pgtest.XComRow{DagID: dagID, RunID: runID, TaskID: "upstream", MapIndex: -1, Key: "dumped",
		Value: []any{1, "é", 2.5}, PythonString: true})

	m := d.minter(t)
	q := ti.q(m)
	bases := make([]string, len(replicas))
	for i, s := range replicas {
		bases[i] = s.URL
	}
	w := &rrWorker{worker: newWorker(t, bases[0], q.Token), bases: bases}
	me := host{"worker-1.example.internal", "airflow", 4242}

	// /run with the workload token Airflow's executor minted.
	before := time.Now().Truncate(time.Microsecond)
	r := w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t))
	mustStatus(t, r, 200)
	for _, p := range checkRunContext(r.body) {
		t.Errorf("/run response does not fit TIRunContext (API %s): %s", apiVersion, p)
	}
	var rc struct {
		DagRun struct {
			DagID   string `json:"dag_id"`
			RunID   string `json:"run_id"`
			RunType string `json:"run_type"`
			State   string `json:"state"`
		} `json:"dag_run"`
		MaxTries    int  `json:"max_tries"`
		ShouldRetry bool `json:"should_retry"`
	}
	if err := json.Unmarshal(r.body, &rc); err != nil {
		t.Fatalf("/run body: %v", err)
	}
	if rc.DagRun.DagID != dagID || rc.DagRun.RunID != runID || rc.DagRun.RunType != "manual" || rc.DagRun.State != "running" {
		t.Errorf("/run dag_run = %+v, want the dag_run row %s/%s (manual, running)", rc.DagRun, dagID, runID)
	}
	if rc.MaxTries != 2 || !rc.ShouldRetry {
		t.Errorf("/run max_tries = %d, should_retry = %v; want 2 and true (try 1, max_tries 2 in the row)", rc.MaxTries, rc.ShouldRetry)
	}
	exec := r.header.Get("Refreshed-API-Token")
	if exec == "" || w.token != exec {
		t.Fatalf("/run with a workload token: no execution token in Refreshed-API-Token")
	}
	if c := m.parse(exec); c["scope"] != "execution" || c["sub"] != q.TIID {
		t.Errorf("execution token: scope %v sub %v, want execution %s", c["scope"], c["sub"], q.TIID)
	}

	row := d.taskInstance(run, taskID)
	if row.id != q.TIID || row.state != "running" || row.hostname != me.hostname || row.unixname != me.unixname ||
		row.pid == nil || *row.pid != me.pid || row.tryNumber != 1 {
		t.Errorf("task_instance after /run = %s, want id %s, running on %s/%s pid %d, try_number 1 (untouched)",
			fmtRow(row), q.TIID, me.hostname, me.unixname, me.pid)
	}
	if row.startDate == nil {
		t.Errorf("task_instance.start_date is NULL after /run")
	}
	if row.lastHeartbeatAt == nil || row.lastHeartbeatAt.Before(before) {
		t.Errorf("task_instance.last_heartbeat_at = %v after /run sent at %v: the scheduler's zombie detection ignores a NULL one",
			row.lastHeartbeatAt, before)
	}

	// Heartbeat: last_heartbeat_at moves.
	before = time.Now().Truncate(time.Microsecond)
	wantNoContent(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204)
	if row := d.taskInstance(run, taskID); row.lastHeartbeatAt == nil || row.lastHeartbeatAt.Before(before) {
		t.Errorf("task_instance.last_heartbeat_at = %v after a heartbeat sent at %v", row.lastHeartbeatAt, before)
	}

	// Rows Airflow wrote, served decrypted.
	wantJSON(t, w.do("GET", variablePath("source_bucket"), ""), 200, `{"key":"source_bucket","value":"s3://raw-data/daily"}`)
	wantJSON(t, w.do("GET", variablePath("plain_var"), ""), 200, `{"key":"plain_var","value":"in clear"}`)
	wantJSON(t, w.do("GET", connectionPath("warehouse_db"), ""), 200, `{"conn_id":"warehouse_db","conn_type":"postgres",
		"host":"db.internal","schema":"warehouse","login":"etl","password":"`+connPassword+`","port":5432,
		"extra":"{\"sslmode\":\"require\"}"}`)

	// A variable the task writes is stored as Airflow's Variable.set stores it.
	wantJSON(t, w.do("PUT", variablePath("extract_rows"), `{"val":"1234","description":"rows extracted"}`), 201,
		`{"message":"Variable successfully set"}`)
	var val string
	var desc *string
	var encrypted bool
	d.queryRow(`SELECT val, description, is_encrypted FROM variable WHERE key = 'extract_rows'`, nil, &val, &desc, &encrypted)
	if !encrypted {
		t.Errorf("variable extract_rows: is_encrypted = false with [core] fernet_key set; Airflow encrypts")
	} else if plain, err := fernetDecrypt(d.fernetKey, val); err != nil || string(plain) != "1234" {
		t.Errorf("variable extract_rows: val does not Fernet-decrypt to 1234 with [core] fernet_key: %q, %v", plain, err)
	}
	if desc == nil || *desc != "rows extracted" {
		t.Errorf("variable extract_rows: description = %v, want rows extracted", desc)
	}
	wantJSON(t, w.do("GET", variablePath("extract_rows"), ""), 200, `{"key":"extract_rows","value":"1234"}`)

	// XComs Airflow wrote, served as Airflow's GET serves them.
	wantJSON(t, w.do("GET", xcomPath(dagID, runID, "upstream", "return_value"), ""), 200,
		`{"key":"return_value","value":{"uri":"s3://raw/part-0.parquet","rows":1250}}`)
	wantJSON(t, w.do("GET", xcomPath(dagID, runID, "upstream", "dumped"), ""), 200,
		`{"key":"dumped","value":"[1, \"\\u00e9\", 2.5]"}`)

	// XCom push and pull; the row is what Airflow's XCom readers decode.
	const pushed = `{"rows": 3, "files": ["a.csv", "b.csv"]}`
	wantJSON(t, w.do("POST", q.xcomPath("return_value"), pushed), 201, `{"message":"XCom successfully set"}`)
	var sameValue bool
	var kind string
	var dagRunID int64
	d.queryRow(`SELECT value = $1::jsonb, jsonb_typeof(value), dag_run_id FROM xcom
		WHERE dag_id = $2 AND run_id = $3 AND task_id = $4 AND map_index = -1 AND key = 'return_value'`,
		[]any{pushed, dagID, runID, taskID}, &sameValue, &kind, &dagRunID)
	if !sameValue || kind != "object" || dagRunID != run.id {
		var text string
		d.queryRow(`SELECT value::text FROM xcom WHERE dag_id = $1 AND key = 'return_value'`, []any{dagID}, &text)
		t.Errorf("xcom row: value %s (jsonb %s), dag_run_id %d; want the pushed JSON %s as a jsonb object, dag_run_id %d",
			text, kind, dagRunID, pushed, run.id)
	}
	wantJSON(t, w.do("GET", q.xcomPath("return_value"), ""), 200,
		`{"key":"return_value","value":{"rows":3,"files":["a.csv","b.csv"]}}`)

	// Success.
	before = time.Now().Truncate(time.Second)
	wantNoContent(t, w.do("PATCH", tiPath(q.TIID, "state"), successPayload(t)), 204)
	row = d.taskInstance(run, taskID)
	if row.state != "success" || row.endDate == nil || row.endDate.Before(before) {
		t.Errorf("task_instance after state success = %s; want success with end_date ≥ %v", fmtRow(row), before)
	}
	wantJSON(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 409,
		`{"detail":{"reason":"not_running","message":"TI is no longer in the running state and task should terminate","current_state":"success"}}`)

	if len(replicas) > 1 {
		// Every 2xx but the /run (which swaps rather than renews) carried a
		// renewal: tokens of one replica were renewed by the others.
		if want := 7; w.renewals < want {
			t.Errorf("%d answers renewed the execution token across %d replicas, want at least %d (every 2xx of a running try)",
				w.renewals, len(replicas), want)
		}
	}
}

func fmtRow(r tiRow) string {
	s := fmt.Sprintf("{id %s state %q host %q unix %q try %d", r.id, r.state, r.hostname, r.unixname, r.tryNumber)
	if r.pid != nil {
		s += fmt.Sprintf(" pid %d", *r.pid)
	}
	for _, f := range []struct {
		name string
		v    *time.Time
	}{{"start_date", r.startDate}, {"end_date", r.endDate}, {"last_heartbeat_at", r.lastHeartbeatAt}} {
		if f.v == nil {
			s += " " + f.name + " NULL"
		} else {
			s += " " + f.name + " " + f.v.UTC().Format(time.RFC3339Nano)
		}
	}
	return strings.TrimSpace(s) + "}"
}
