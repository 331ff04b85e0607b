package integration_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// connPassword is a connection password provisioned by the tests; like a
// token, it must never appear in a log.
const connPassword = "pw-never-logged-7c1e0b9a"

// TestWorkerFlow provisions a task offline and then runs it the way a
// Celery/local worker's supervisor does: /run with the workload token,
// swap to the execution token it returns, and do the whole task's API
// traffic with that.
func TestWorkerFlow(t *testing.T) {
	dataDir := newDataDir(t)
	const (
		dagID  = "etl_daily"
		runID  = "manual__2026-11-27T10:00:00+00:00" // Airflow's run id format: ':' and '+' in a path segment
		taskID = "extract"
	)
	wl := queueTask(t, dataDir, dagID, runID, taskID, "--max-tries", "2")
	mustCLI(t, dataDir, "variables", "set", "source_bucket", "s3://raw-data/daily", "--description", "where extract reads")
	collected.addSecret("connection password", connPassword)
	mustCLI(t, dataDir, "connections", "add", "warehouse_db", "--conn-type", "postgres", "--host", "db.internal",
		"--port", "5432", "--login", "etl", "--password", connPassword, "--schema", "warehouse",
		"--extra", `{"sslmode":"require"}`)

	srv := startServer(t, dataDir)
	m := newMinter(t, dataDir)
	me := host{"worker-1.example.internal", "airflow", 4242}
	w := newWorker(t, srv.URL, wl.Token)

	wlClaims := m.parse(wl.Token)
	if wlClaims["scope"] != "workload" || wlClaims["sub"] != wl.TIID {
		t.Errorf("CLI workload token: scope %v sub %v, want workload %s", wlClaims["scope"], wlClaims["sub"], wl.TIID)
	}

	// /run with the workload token.
	r := w.do("PATCH", tiPath(wl.TIID, "run"), me.runPayload(t))
	mustStatus(t, r, 200)
	for _, p := range checkRunContext(r.body) {
		t.Errorf("/run response does not fit TIRunContext (API %s): %s", apiVersion, p)
	}
	var rc struct {
		DagRun struct {
			DagID string `json:"dag_id"`
			RunID string `json:"run_id"`
		} `json:"dag_run"`
		MaxTries    int  `json:"max_tries"`
		ShouldRetry bool `json:"should_retry"`
	}
	if err := json.Unmarshal(r.body, &rc); err != nil {
		t.Fatalf("/run body: %v", err)
	}
	if rc.DagRun.DagID != dagID || rc.DagRun.RunID != runID {
		t.Errorf("/run dag_run = %s/%s, want %s/%s", rc.DagRun.DagID, rc.DagRun.RunID, dagID, runID)
	}
	if rc.MaxTries != 2 {
		t.Errorf("/run max_tries = %d, want 2", rc.MaxTries)
	}
	if !rc.ShouldRetry {
		t.Errorf("/run should_retry = false, want true (try 1 of max_tries 2)")
	}

	// The workload token was swapped for an execution token for the same TI.
	exec := r.header.Get("Refreshed-API-Token")
	if exec == "" {
		t.Fatalf("/run with a workload token: no Refreshed-API-Token")
	}
	if w.token != exec {
		t.Fatalf("the client did not swap to the Refreshed-API-Token")
	}
	ec := m.parse(exec)
	if ec["scope"] != "execution" || ec["sub"] != wl.TIID {
		t.Errorf("execution token: scope %v sub %v, want execution %s", ec["scope"], ec["sub"], wl.TIID)
	}
	if got := audienceOf(ec); len(got) != 1 || got[0] != taskAudience {
		t.Errorf("execution token aud = %v, want %s", got, taskAudience)
	}
	if life := numericClaim(t, ec, "exp") - numericClaim(t, ec, "iat"); life != 600 {
		t.Errorf("execution token lifetime = %d s, want 600 ([execution_api] jwt_expiration_time)", life)
	}
	if ec["jti"] == "" || ec["jti"] == wlClaims["jti"] {
		t.Errorf("execution token jti = %v, want a fresh one", ec["jti"])
	}

	// The task's traffic, all with the execution token.
	wantNoContent(t, w.do("PUT", tiPath(wl.TIID, "heartbeat"), me.heartbeat(t)), 204)
	wantJSON(t, w.do("GET", variablePath("source_bucket"), ""), 200, `{"key":"source_bucket","value":"s3://raw-data/daily"}`)
	wantJSON(t, w.do("PUT", variablePath("extract_rows"), `{"val":"1234","description":null}`), 201,
		`{"message":"Variable successfully set"}`)
	wantJSON(t, w.do("GET", variablePath("extract_rows"), ""), 200, `{"key":"extract_rows","value":"1234"}`)
	conn := w.do("GET", connectionPath("warehouse_db"), "")
	wantJSON(t, conn, 200, `{"conn_id":"warehouse_db","conn_type":"postgres","host":"db.internal","schema":"warehouse",
		"login":"etl","password":"`+connPassword+`","port":5432,"extra":"{\"sslmode\":\"require\"}"}`)
	wantJSON(t, w.do("POST", wl.xcomPath("return_value"), `{"rows": 3, "files": ["a.csv", "b.csv"]}`), 201,
		`{"message":"XCom successfully set"}`)
	wantJSON(t, w.do("GET", wl.xcomPath("return_value"), ""), 200,
		`{"key":"return_value","value":{"rows":3,"files":["a.csv","b.csv"]}}`)
	wantNoContent(t, w.do("PATCH", tiPath(wl.TIID, "state"), successPayload(t)), 204)
	wantJSON(t, w.do("PUT", tiPath(wl.TIID, "heartbeat"), me.heartbeat(t)), 409,
		`{"detail":{"reason":"not_running","message":"TI is no longer in the running state and task should terminate","current_state":"success"}}`)
	if w.token != exec {
		t.Errorf("a fresh execution token was renewed during the flow (600 s life, renewal at ≤ 120 s left)")
	}

	srv.stop()
	// What the task wrote is there for the next offline reader too.
	if got := strings.TrimSpace(mustCLI(t, dataDir, "variables", "get", "extract_rows")); got != "1234" {
		t.Errorf("variables get extract_rows after the flow = %q, want 1234", got)
	}
}
