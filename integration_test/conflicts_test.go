package integration_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestRunConflicts covers the lifecycle answers of /run, /state and
// /heartbeat (invalid_state, running_elsewhere, not_running) and the task
// isolation of XCom writes.
func TestRunConflicts(t *testing.T) {
	dataDir := newDataDir(t)
	const dagID, runID = "conflict_dag", "scheduled__2026-11-26T00:00:00+00:00"
	a := queueTask(t, dataDir, dagID, runID, "task_a")
	b := queueTask(t, dataDir, dagID, runID, "task_b")
	srv := startServer(t, dataDir)
	m := newMinter(t, dataDir)
	hostA := host{"worker-a", "airflow", 2001}
	hostB := host{"worker-b", "airflow", 2002}

	runA := hostA.runPayload(t)
	wa := newWorker(t, srv.URL, a.Token)
	mustStatus(t, wa.do("PATCH", tiPath(a.TIID, "run"), runA), 200)

	t.Run("duplicate /run from the same worker", func(t *testing.T) {
		// The worker lost the first answer and retries with the same
		// workload token, hostname, unixname and pid.
		w := newWorker(t, srv.URL, a.Token)
		r := w.do("PATCH", tiPath(a.TIID, "run"), runA)
		mustStatus(t, r, 200)
		for _, p := range checkRunContext(r.body) {
			t.Errorf("duplicate /run response does not fit TIRunContext: %s", p)
		}
		tok := r.header.Get("Refreshed-API-Token")
		if tok == "" {
			t.Fatal("duplicate /run with a workload token: no Refreshed-API-Token")
		}
		if c := m.parse(tok); c["scope"] != "execution" || c["sub"] != a.TIID {
			t.Errorf("duplicate /run token: scope %v sub %v, want execution %s", c["scope"], c["sub"], a.TIID)
		}
		wantNoContent(t, w.do("PUT", tiPath(a.TIID, "heartbeat"), hostA.heartbeat(t)), 204)
	})

	t.Run("/run from another worker", func(t *testing.T) {
		const want = `{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"running"}}`
		for _, other := range []host{
			{"worker-z", hostA.unixname, hostA.pid},
			{hostA.hostname, hostA.unixname, hostA.pid + 1},
			{hostA.hostname, "root", hostA.pid},
		} {
			w := newWorker(t, srv.URL, a.Token)
			r := w.do("PATCH", tiPath(a.TIID, "run"), other.runPayload(t))
			wantJSON(t, r, 409, want)
			if r.header.Get("Refreshed-API-Token") != "" {
				t.Errorf("%s: a refused /run handed out an execution token", r)
			}
		}
	})

	t.Run("heartbeat from another worker", func(t *testing.T) {
		const want = `{"detail":{"reason":"running_elsewhere","message":"TI is already running elsewhere","current_hostname":"worker-a","current_pid":2001}}`
		for _, other := range []host{
			{"worker-z", hostA.unixname, hostA.pid},
			{hostA.hostname, hostA.unixname, 9999},
		} {
			wantJSON(t, wa.do("PUT", tiPath(a.TIID, "heartbeat"), other.heartbeat(t)), 409, want)
		}
		wantNoContent(t, wa.do("PUT", tiPath(a.TIID, "heartbeat"), hostA.heartbeat(t)), 204)
	})

	t.Run("unknown task instance", func(t *testing.T) {
		const want = `{"detail":{"reason":"not_found","message":"Task Instance not found"}}`
		unknown := uuid.NewString()
		wl := m.hs512(m.claims(unknown, "workload", 600*time.Second))
		r := send(t, srv.URL, "PATCH", tiPath(unknown, "run"), "Bearer "+wl, hostA.runPayload(t))
		wantJSON(t, r, 404, want)
		if r.header.Get("Refreshed-API-Token") != "" {
			t.Errorf("%s: a /run for an unknown task instance handed out an execution token", r)
		}
		ex := newWorker(t, srv.URL, m.execution(unknown))
		wantJSON(t, ex.do("PUT", tiPath(unknown, "heartbeat"), hostA.heartbeat(t)), 404, want)
		wantJSON(t, ex.do("PATCH", tiPath(unknown, "state"), successPayload(t)), 404, want)
	})

	t.Run("XComs of another task", func(t *testing.T) {
		wb := newWorker(t, srv.URL, b.Token)
		mustStatus(t, wb.do("PATCH", tiPath(b.TIID, "run"), hostB.runPayload(t)), 200)
		wantJSON(t, wb.do("POST", b.xcomPath("result"), `{"owner":"b"}`), 201, `{"message":"XCom successfully set"}`)

		// A may not write or delete B's XComs, whether the key exists or not.
		for _, key := range []string{"result", "return_value"} {
			r := wa.do("POST", b.xcomPath(key), `{"owner":"a"}`)
			if r.status != 403 {
				t.Errorf("%s: want 403", r)
			}
			r = wa.do("DELETE", b.xcomPath(key), "")
			if r.status != 403 {
				t.Errorf("%s: want 403", r)
			}
		}
		// A may read them, and B's value is untouched.
		wantJSON(t, wa.do("GET", b.xcomPath("result"), ""), 200, `{"key":"result","value":{"owner":"b"}}`)
		// A's own XComs stay writable and deletable.
		wantJSON(t, wa.do("POST", a.xcomPath("scratch"), `1`), 201, `{"message":"XCom successfully set"}`)
		wantJSON(t, wa.do("DELETE", a.xcomPath("scratch"), ""), 200, `{"message":"XCom with key: scratch successfully deleted."}`)
		wantJSON(t, wa.do("GET", a.xcomPath("scratch"), ""), 404,
			`{"detail":{"reason":"not_found","message":"XCom with key='scratch' map_index=-1 not found for task 'task_a' in DAG run '`+runID+`' of '`+dagID+`'"}}`)
	})

	t.Run("state change after the task finished", func(t *testing.T) {
		wantNoContent(t, wa.do("PATCH", tiPath(a.TIID, "state"), failedPayload(t)), 204)
		wantJSON(t, wa.do("PATCH", tiPath(a.TIID, "state"), successPayload(t)), 409,
			`{"detail":{"reason":"invalid_state","message":"TI was not in the running state so it cannot be updated","previous_state":"failed"}}`)
		wantJSON(t, newWorker(t, srv.URL, a.Token).do("PATCH", tiPath(a.TIID, "run"), runA), 409,
			`{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"failed"}}`)
	})
	srv.stop()
}
