package integration_test

import (
	"net/http"
	"testing"
	"time"
)

// TestPostgresEarlierTryAcrossReplicas: try 1 reports up_for_retry through
// one replica; the row becomes what Airflow's route leaves (a history row
// under the old id, the task instance under a new id); Airflow's scheduler
// queues try 2, which starts through the other replica. Try 1's token is
// then refused as archived (410) on every route by both replicas, and
// try 2 is untouched.
func TestPostgresEarlierTryAcrossReplicas(t *testing.T) {
	d := newPGDeployment(t)
	replicas := d.startReplicas(t, 2, noAuthLimit)
	a, b := replicas[0].URL, replicas[1].URL
	const dagID, runID = "retry_dag", "manual__retry"
	run := d.insertDagRun(dagID, runID)
	ti := d.insertQueuedTI(run, "t", 1, 3)
	d.insertVariable("retry_var", "v", "")
	m := d.minter(t)
	first := ti.q(m)

	me := host{"worker-1", "airflow", 7401}
	old := newWorker(t, a, first.Token)
	mustStatus(t, old.do("PATCH", tiPath(first.TIID, "run"), me.runPayload(t)), 200)
	// The other replica serves try 1 too (and may keep its view of it).
	wantNoContent(t, newWorker(t, b, old.token).do("PUT", tiPath(first.TIID, "heartbeat"), me.heartbeat(t)), 204)
	mustStatus(t, old.do("PATCH", tiPath(first.TIID, "state"),
		`{"state":"up_for_retry","end_date":"`+sdkTime(time.Now())+`"}`), 204)

	row := d.taskInstance(run, "t")
	if row.state != "up_for_retry" || row.id == first.TIID || !isUUID(row.id) || row.tryNumber != 1 {
		t.Fatalf("task_instance after up_for_retry = %s; want up_for_retry under a new id (not %s), try_number 1",
			fmtRow(row), first.TIID)
	}
	var histState string
	var histTry int
	d.queryRow(`SELECT state, try_number FROM task_instance_history WHERE task_instance_id = $1`,
		[]any{first.TIID}, &histState, &histTry)
	// TaskInstanceHistory.record_ti records a try that did not finish
	// (up_for_retry is not in State.finished) as failed.
	if histState != "failed" || histTry != 1 {
		t.Errorf("task_instance_history of try 1: state %q try %d, want failed (record_ti), 1", histState, histTry)
	}

	// Airflow's scheduler queues try 2 on the row's new id.
	d.exec(`UPDATE task_instance SET state = 'queued', try_number = try_number + 1, queued_dttm = now(),
		scheduled_dttm = now(), hostname = '', pid = NULL, start_date = NULL, end_date = NULL, duration = NULL
		WHERE id = $1`, row.id)
	second := first
	second.TIID, second.Token = row.id, m.workload(row.id)
	me2 := host{"worker-2", "airflow", 7402}
	cur := newWorker(t, b, second.Token)
	mustStatus(t, cur.do("PATCH", tiPath(second.TIID, "run"), me2.runPayload(t)), 200)
	mustStatus(t, cur.do("POST", second.xcomPath("return_value"), `"try 2"`), 201)

	archived := `{"detail":{"reason":"not_found","message":"Task Instance not found in the working set; its attempt has been archived"}}`
	// Try 1 is archived by the scheduler's try_number bump, which neither
	// replica wrote: each sees it within the stated bound of its cached
	// view of a try, the one that wrote up_for_retry included.
	for _, rep := range []struct {
		name  string
		base  string
		bound time.Duration
	}{{"the replica that wrote up_for_retry", a, revocationBound}, {"the other replica", b, revocationBound}} {
		t.Run(rep.name, func(t *testing.T) {
			if rep.bound > 0 {
				refusedWithin(t, "try 1's token", time.Now(), http.StatusGone, func() *plainResult {
					r, err := doPlain(httpClient, "GET", rep.base+variablePath("retry_var"), taskHeaders(old.token), nil)
					if err != nil {
						t.Fatal(err)
					}
					return r
				})
			}
			stale := newWorker(t, rep.base, old.token)
			for _, c := range []struct{ method, path, body string }{
				{"GET", variablePath("retry_var"), ""},
				{"PUT", variablePath("retry_var"), `{"val":"stale"}`},
				{"GET", first.xcomPath("return_value"), ""},
				{"POST", first.xcomPath("return_value"), `"stale"`},
				{"PATCH", tiPath(first.TIID, "run"), me.runPayload(t)},
				{"PATCH", tiPath(first.TIID, "state"), successPayload(t)},
				{"PUT", tiPath(first.TIID, "heartbeat"), me.heartbeat(t)},
				{"POST", "/execution/token/refresh", ""},
			} {
				r := stale.do(c.method, c.path, c.body)
				wantJSON(t, r, 410, archived)
				if r.header.Get("Refreshed-API-Token") != "" {
					t.Errorf("%s %s: the earlier try's token was renewed", c.method, c.path)
				}
			}
		})
	}
	cur.base = a
	wantJSON(t, cur.do("GET", second.xcomPath("return_value"), ""), 200, `{"key":"return_value","value":"try 2"}`)
	wantNoContent(t, cur.do("PUT", tiPath(second.TIID, "heartbeat"), me2.heartbeat(t)), 204)
	if row := d.taskInstance(run, "t"); row.id != second.TIID || row.state != "running" || row.tryNumber != 2 ||
		row.hostname != me2.hostname {
		t.Errorf("task_instance after try 2 started = %s; want %s running try 2 on %s", fmtRow(row), second.TIID, me2.hostname)
	}
	for _, s := range replicas {
		s.stop()
	}
}
