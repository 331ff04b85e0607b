package integration_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const notRunningBody = `{"detail":{"reason":"not_running","message":"TI is no longer in the running state and task should terminate","current_state":"%s"}}`

// wantFinalState checks, with an execution token the test mints itself,
// that the task instance ended in state: a heartbeat is told not_running.
func wantFinalState(t *testing.T, srv *server, m *minter, q queued, state string) {
	t.Helper()
	r := send(t, srv.URL, "PUT", tiPath(q.TIID, "heartbeat"), "Bearer "+m.execution(q.TIID),
		host{"checker", "airflow", 1}.heartbeat(t))
	wantJSON(t, r, 409, fmt.Sprintf(notRunningBody, state))
}

// TestWorkerRunsTask: `taskgate worker run` does a worker's whole job
// against the real gateway: /run with the workload token and the swap to
// the execution token it returns, heartbeats, the command's last stdout line
// stored as its return_value XCom, success reported — and the command sees
// its identity but no token.
func TestWorkerRunsTask(t *testing.T) {
	dataDir := newDataDir(t)
	raw, q := queueWorkload(t, dataDir, "worker_dag", "manual__2026-11-27T11:00:00+00:00", "produce", "--max-tries", "1")
	srv := startServer(t, dataDir)
	envFile := filepath.Join(t.TempDir(), "task.env")

	w := startWorker(t, srv.URL+"/execution", raw, []string{"ENV_FILE=" + envFile},
		"--heartbeat-interval", "0.2", "--",
		"sh", "-c", `env > "$ENV_FILE"; echo "working on $AIRFLOW_CTX_TASK_ID"; sleep 0.7; `+
			`printf '{"rows": 3, "ti": "%s"}\n' "$TASKGATE_TI_ID"`)
	if code := w.wait(); code != 0 {
		t.Fatalf("worker exit code %d, want 0; output:\n%s", code, w.logs)
	}

	entries := workerRequests(t, srv, q.TIID)
	m := newMinter(t, dataDir)
	r := send(t, srv.URL, "GET", q.xcomPath("return_value"), "Bearer "+m.execution(q.TIID), "")
	wantJSON(t, r, 200, `{"key":"return_value","value":{"rows":3,"ti":"`+q.TIID+`"}}`)
	wantFinalState(t, srv, m, q, "success")

	// The token swap, as the gateway saw it: /run with the workload token,
	// everything after it with an execution token for the same task instance.
	if len(entries) < 4 {
		t.Fatalf("%d requests of the task instance in the server log, want /run, heartbeats, xcom, state", len(entries))
	}
	first := entries[0]
	if route(first) != "run" || status(first) != 200 || first["scope"] != "workload" {
		t.Errorf("first request: %v, want /run → 200 with the workload token", first)
	}
	counts := map[string]int{}
	for _, e := range entries[1:] {
		if e["scope"] != "execution" || e["sub"] != q.TIID || status(e) >= 300 {
			t.Errorf("request after /run: %v, want a 2xx with an execution token for %s", e, q.TIID)
		}
		counts[route(e)]++
	}
	if entries[1]["jti"] == first["jti"] {
		t.Errorf("the worker kept its workload token after /run")
	}
	if counts["heartbeat"] < 2 || counts["xcoms"] != 1 || counts["state"] != 1 || counts["run"] != 0 {
		t.Errorf("requests after /run: %v, want ≥ 2 heartbeats, 1 xcom push, 1 state update", counts)
	}
	if last := entries[len(entries)-1]; route(last) != "state" {
		t.Errorf("last request %v, want the state update", last)
	}

	// The command's environment: its identity, never a token.
	env, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(env)))
	for sc.Scan() {
		vars[sc.Text()] = true
		if strings.Contains(sc.Text(), "eyJ") {
			t.Errorf("the command's environment holds something token-shaped: %s", sc.Text())
		}
	}
	for _, kv := range []string{"AIRFLOW_CTX_DAG_ID=worker_dag", "AIRFLOW_CTX_DAG_RUN_ID=manual__2026-11-27T11:00:00+00:00",
		"AIRFLOW_CTX_TASK_ID=produce", "AIRFLOW_CTX_MAP_INDEX=-1", "AIRFLOW_CTX_TRY_NUMBER=1", "TASKGATE_TI_ID=" + q.TIID} {
		if !vars[kv] {
			t.Errorf("the command's environment lacks %s", kv)
		}
	}

	// The worker's log: the command's output line by line, the outcome.
	var sawOutput bool
	for _, e := range logEntries(w.logs) {
		if e["msg"] == "task output" && e["stream"] == "stdout" && e["line"] == "working on produce" && e["ti_id"] == q.TIID {
			sawOutput = true
		}
	}
	if !sawOutput {
		t.Errorf("the command's output is not in the worker's log:\n%s", w.logs)
	}
	if !sawMsg(w.logs, "state reported") {
		t.Errorf("no \"state reported\" in the worker's log:\n%s", w.logs)
	}
	checkWorkerLog(t, w)
}

// TestWorkerOutlivesTokens: a task running for several execution-token
// lifetimes keeps working on the tokens the gateway renews on its
// heartbeats. The gateway mints 2 s tokens with no leeway, so every
// response renews (the threshold is at least 30 s) and a token not replaced
// in time is refused; the task runs for 3.5 lifetimes.
func TestWorkerOutlivesTokens(t *testing.T) {
	dataDir := newDataDir(t)
	raw, q := queueWorkload(t, dataDir, "long_dag", "manual__1", "long_task")
	srv := startServer(t, dataDir, "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME=2", "AIRFLOW__API_AUTH__JWT_LEEWAY=0")
	m := newMinter(t, dataDir)
	// Expiry bites: a token 1 s past its exp is refused (the default 10 s
	// leeway would let it through).
	now := time.Now().Unix()
	stale := m.hs512(with(m.claims(q.TIID, "execution", 2*time.Second), "iat", now-3, "nbf", now-3, "exp", now-1))
	if r := send(t, srv.URL, "GET", variablePath("anything"), "Bearer "+stale, ""); r.status != 403 {
		t.Fatalf("%s: an expired token was not refused; the test would prove nothing", r)
	}

	begin := time.Now()
	// The heartbeat interval comes from Airflow's environment variable.
	w := startWorker(t, srv.URL, raw, []string{"AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=0.5"},
		"--", "sh", "-c", `sleep 7; echo '"outlived"'`)
	if code := w.wait(); code != 0 {
		t.Fatalf("worker exit code %d, want 0; output:\n%s\nserver:\n%s", code, w.logs, srv.logs)
	}
	if took := time.Since(begin); took < 7*time.Second {
		t.Fatalf("the task took %s, want ≥ 7 s", took)
	}
	entries := workerRequests(t, srv, q.TIID)
	r := send(t, srv.URL, "GET", q.xcomPath("return_value"), "Bearer "+m.execution(q.TIID), "")
	wantJSON(t, r, 200, `{"key":"return_value","value":"outlived"}`)
	wantFinalState(t, srv, m, q, "success")

	// Several execution tokens carried the task, each a renewal of the last,
	// and none was ever refused.
	jtis := map[string]bool{}
	var firstUse, lastUse time.Time
	for _, e := range entries {
		if e["scope"] != "execution" {
			continue
		}
		if status(e) >= 300 {
			t.Errorf("request refused: %v", e)
		}
		jtis[e["jti"].(string)] = true
		ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", e["ts"].(string))
		if err != nil {
			t.Fatalf("log time %v: %v", e["ts"], err)
		}
		if firstUse.IsZero() {
			firstUse = ts
		}
		lastUse = ts
	}
	if len(jtis) < 5 {
		t.Errorf("%d distinct execution tokens used, want at least 5 (one per renewal)", len(jtis))
	}
	if span := lastUse.Sub(firstUse); span < 6*time.Second {
		t.Errorf("execution tokens were used over %s, want more than 3 lifetimes (6 s)", span)
	}
	t.Logf("%d distinct 2 s execution tokens carried the task over %s", len(jtis), lastUse.Sub(firstUse))
	checkWorkerLog(t, w)
}

// TestWorkerStopsOnConflict: when the task instance stops being running
// behind the worker's back (here: marked failed with a token the test mints
// itself), the next heartbeat gets 409 and the worker stops the command and
// exits non-zero, without reporting a state of its own.
func TestWorkerStopsOnConflict(t *testing.T) {
	dataDir := newDataDir(t)
	raw, q := queueWorkload(t, dataDir, "stop_dag", "manual__1", "sleeper")
	srv := startServer(t, dataDir)
	w := startWorker(t, srv.URL, raw, nil, "--heartbeat-interval", "0.2", "--kill-grace", "3s",
		"--", "sh", "-c", `echo started; sleep 30; echo "not stopped"`)
	waitForEntry(t, srv.logs, "for a heartbeat 204", isHeartbeat(q.TIID, 204))

	m := newMinter(t, dataDir)
	wantNoContent(t, send(t, srv.URL, "PATCH", tiPath(q.TIID, "state"), "Bearer "+m.execution(q.TIID), failedPayload(t)), 204)
	marked := time.Now()
	code := w.wait()
	if code == 0 {
		t.Fatalf("worker exit code 0 after its task was stopped; output:\n%s", w.logs)
	}
	// Next heartbeat (0.2 s) plus SIGTERM, well inside the 3 s kill grace.
	if took := time.Since(marked); took > 3*time.Second {
		t.Errorf("the worker took %s to stop the task", took)
	}
	waitForEntry(t, srv.logs, "for a heartbeat 409", isHeartbeat(q.TIID, 409))
	for _, msg := range []string{"server says the task must stop", "stopping task command", "task command exited"} {
		if !sawMsg(w.logs, msg) {
			t.Errorf("no %q in the worker's log:\n%s", msg, w.logs)
		}
	}
	if strings.Contains(w.logs.String(), "not stopped") {
		t.Errorf("the command ran on after it was stopped:\n%s", w.logs)
	}
	states := 0
	for _, e := range accessEntries(srv, q.TIID) {
		if route(e) == "state" {
			states++
		}
	}
	if states != 1 {
		t.Errorf("%d state updates in the server log, want only the test's own", states)
	}
	wantFinalState(t, srv, m, q, "failed")
	checkWorkerLog(t, w)
}

// TestWorkerSurvivesRestart: the gateway is stopped in the middle of a task
// and started again on the same port; the worker's retries carry it over
// the gap and the task completes.
func TestWorkerSurvivesRestart(t *testing.T) {
	dataDir := newDataDir(t)
	raw, q := queueWorkload(t, dataDir, "restart_worker_dag", "manual__1", "patient")
	addr := freeAddr(t)
	srv := startServerAt(t, dataDir, addr)
	w := startWorker(t, "http://"+addr, raw, nil,
		"--heartbeat-interval", "0.2", "--retries", "30", "--retry-wait-min", "0.1", "--retry-wait-max", "0.3", "--timeout", "2",
		"--", "sh", "-c", `sleep 3; echo '{"survived": true}'`)
	waitForEntry(t, srv.logs, "for a heartbeat 204", isHeartbeat(q.TIID, 204))

	srv.stop()
	waitForEntry(t, w.logs, "for a retried request", hasMsg("retrying request"))
	srv = startServerAt(t, dataDir, addr)

	if code := w.wait(); code != 0 {
		t.Fatalf("worker exit code %d, want 0; output:\n%s", code, w.logs)
	}
	m := newMinter(t, dataDir)
	r := send(t, srv.URL, "GET", q.xcomPath("return_value"), "Bearer "+m.execution(q.TIID), "")
	wantJSON(t, r, 200, `{"key":"return_value","value":{"survived":true}}`)
	wantFinalState(t, srv, m, q, "success")
	if !sawMsg(w.logs, "state reported") {
		t.Errorf("no \"state reported\" in the worker's log:\n%s", w.logs)
	}
	retries := 0
	for _, e := range logEntries(w.logs) {
		if e["msg"] == "retrying request" {
			retries++
		}
	}
	t.Logf("the worker retried %d requests while the gateway restarted", retries)
	if sawMsg(w.logs, "heartbeat failed") {
		t.Errorf("a heartbeat failed although retries should have bridged the restart:\n%s", w.logs)
	}
	checkWorkerLog(t, w)
}

// TestWorkerForwardsSIGTERM: SIGTERM to the worker reaches the command —
// once, so a command cleaning up is not hit again — and the task is
// reported failed; the worker exits non-zero.
func TestWorkerForwardsSIGTERM(t *testing.T) {
	dataDir := newDataDir(t)
	raw, q := queueWorkload(t, dataDir, "sigterm_dag", "manual__1", "interrupted")
	srv := startServer(t, dataDir)
	w := startWorker(t, srv.URL, raw, nil, "--heartbeat-interval", "0.2", "--kill-grace", "5s", "--", "sh", "-c",
		`trap 'echo got TERM; stop=1' TERM; echo started; while [ -z "$stop" ]; do sleep 0.05; done; sleep 0.5; echo cleaned up`)
	waitForEntry(t, srv.logs, "for a heartbeat 204", isHeartbeat(q.TIID, 204))
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := w.wait(); code == 0 {
		t.Fatalf("worker exit code 0 after SIGTERM; output:\n%s", w.logs)
	}
	var lines []string
	for _, e := range logEntries(w.logs) {
		// stdout only: on stderr the shell reports its sleep, in the same
		// process group, "Terminated" by the same signal.
		if e["msg"] == "task output" && e["stream"] == "stdout" {
			lines = append(lines, e["line"].(string))
		}
	}
	if strings.Join(lines, "|") != "started|got TERM|cleaned up" {
		t.Errorf("command output %q, want started, one \"got TERM\", cleaned up", lines)
	}
	workerRequests(t, srv, q.TIID)
	m := newMinter(t, dataDir)
	wantFinalState(t, srv, m, q, "failed")
	checkWorkerLog(t, w)
}
