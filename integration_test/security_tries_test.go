package integration_test

import (
	"testing"
	"time"
)

// TestEarlierTryCannotActOnTheNextTry is the stale-try attack replayed
// against the binary: try 1 reports up_for_retry and keeps its token; the
// task is queued again as try 2, which runs. Try 1's token must then be
// refused on every route (410, Airflow's archived attempt), and in
// particular must not read secrets, overwrite try 2's return_value, write
// variables or skip try 2.
func TestEarlierTryCannotActOnTheNextTry(t *testing.T) {
	dataDir := newDataDir(t)
	const dagID, runID = "retry_dag", "manual__retry"
	mustCLI(t, dataDir, "variables", "set", "retry_var", "v")
	mustCLI(t, dataDir, "connections", "add", "retry_conn", "--conn-type", "postgres", "--password", "s3cret")
	first := queueTask(t, dataDir, dagID, runID, "t", "--max-tries", "3")
	srv := startServer(t, dataDir, noAuthLimit)
	me := host{"worker-1", "airflow", 7401}
	old := newWorker(t, srv.URL, first.Token)
	mustStatus(t, old.do("PATCH", tiPath(first.TIID, "run"), me.runPayload(t)), 200)
	mustStatus(t, old.do("PATCH", tiPath(first.TIID, "state"),
		`{"state":"up_for_retry","end_date":"`+sdkTime(time.Now())+`"}`), 204)
	srv.stop()

	second := queueTask(t, dataDir, dagID, runID, "t")
	srv = startServer(t, dataDir, noAuthLimit)
	me2 := host{"worker-2", "airflow", 7402}
	cur := newWorker(t, srv.URL, second.Token)
	mustStatus(t, cur.do("PATCH", tiPath(second.TIID, "run"), me2.runPayload(t)), 200)
	mustStatus(t, cur.do("POST", second.xcomPath("return_value"), `"try 2"`), 201)

	old.base = srv.URL
	archived := `{"detail":{"reason":"not_found","message":"Task Instance not found in the working set; its attempt has been archived"}}`
	for _, c := range []struct{ method, path, body string }{
		{"GET", variablePath("retry_var"), ""},
		{"PUT", variablePath("retry_var"), `{"val":"stale"}`},
		{"DELETE", variablePath("retry_var"), ""},
		{"GET", connectionPath("retry_conn"), ""},
		{"GET", first.xcomPath("return_value"), ""},
		{"POST", first.xcomPath("return_value"), `"stale"`},
		{"DELETE", first.xcomPath("return_value"), ""},
		{"PATCH", tiPath(first.TIID, "run"), me.runPayload(t)},
		{"PATCH", tiPath(first.TIID, "state"), successPayload(t)},
		{"PUT", tiPath(first.TIID, "heartbeat"), me.heartbeat(t)},
		{"PATCH", tiPath(first.TIID, "skip-downstream"), `{"tasks":["t"]}`},
		{"PUT", tiPath(first.TIID, "rtif"), `{}`},
		{"POST", "/execution/token/refresh", ""},
	} {
		r := old.do(c.method, c.path, c.body)
		wantJSON(t, r, 410, archived)
		if r.header.Get("Refreshed-API-Token") != "" {
			t.Errorf("%s %s: the earlier try's token was renewed", c.method, c.path)
		}
	}
	// Try 2 is untouched.
	r := cur.do("GET", second.xcomPath("return_value"), "")
	wantJSON(t, r, 200, `{"key":"return_value","value":"try 2"}`)
	mustStatus(t, cur.do("GET", variablePath("retry_var"), ""), 200)
	mustStatus(t, cur.do("PUT", tiPath(second.TIID, "heartbeat"), me2.heartbeat(t)), 204)
}

// TestSkipDownstreamSparesRunningAndMappedTasks: as in Airflow, a task's
// skip-downstream spares a running sibling (its worker owns it), and a bare
// task id names the unmapped task (map index -1), not every mapped index.
func TestSkipDownstreamSparesRunningAndMappedTasks(t *testing.T) {
	dataDir := newDataDir(t)
	const dagID, runID = "skip_dag", "manual__skip"
	branch := queueTask(t, dataDir, dagID, runID, "branch")
	running := queueTask(t, dataDir, dagID, runID, "running")
	plain := queueTask(t, dataDir, dagID, runID, "plain")
	mapped0 := queueTask(t, dataDir, dagID, runID, "mapped", "--map-index", "0")
	mapped1 := queueTask(t, dataDir, dagID, runID, "mapped", "--map-index", "1")
	pair := queueTask(t, dataDir, dagID, runID, "pair", "--map-index", "3")
	srv := startServer(t, dataDir, noAuthLimit)
	w := newWorker(t, srv.URL, branch.Token)
	mustStatus(t, w.do("PATCH", tiPath(branch.TIID, "run"), host{"w-1", "airflow", 7601}.runPayload(t)), 200)
	sibling := newWorker(t, srv.URL, running.Token)
	mustStatus(t, sibling.do("PATCH", tiPath(running.TIID, "run"), host{"w-2", "airflow", 7602}.runPayload(t)), 200)
	mustStatus(t, w.do("PATCH", tiPath(branch.TIID, "skip-downstream"),
		`{"tasks":["running","plain","mapped",["pair",3]]}`), 204)
	mustStatus(t, sibling.do("PUT", tiPath(running.TIID, "heartbeat"), host{"w-2", "airflow", 7602}.heartbeat(t)), 204)
	srv.stop()
	out := mustCLI(t, dataDir, "tasks", "list", "--dag-id", dagID)
	for _, c := range []struct {
		q    queued
		want string
	}{{running, "running"}, {plain, "skipped"}, {mapped0, "queued"}, {mapped1, "queued"}, {pair, "skipped"}} {
		if !anyLine(out, c.q.TIID, c.want) {
			t.Errorf("%s[%d] is not %s:\n%s", c.q.TaskID, c.q.MapIndex, c.want, out)
		}
	}
}
