package integration_test

import (
	"testing"
	"time"
)

// TestRunReplayReturnsSameExecutionToken is finding 7 from the gateway's
// side: a task command running as its worker's user can read the workload
// and replay the worker's /run with the worker's own hostname, unixname and
// pid, which the gateway must accept as a lost-response retry. That retry
// must hand back the execution token the first /run minted, byte for byte
// (or none) — never a second, independent execution token — including
// after a restart; and a workload token other than the one that started
// the task, or a replay after the task left running, is refused.
func TestRunReplayReturnsSameExecutionToken(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "replay_dag", "manual__1", "replayed")
	srv := startServer(t, dataDir)
	m := newMinter(t, dataDir)
	worker := host{"worker-a", "airflow", 3001}
	run := worker.runPayload(t)

	first := send(t, srv.URL, "PATCH", tiPath(q.TIID, "run"), "Bearer "+q.Token, run)
	mustStatus(t, first, 200)
	minted := first.header.Get("Refreshed-API-Token")
	if minted == "" {
		t.Fatal("first /run with the workload token: no Refreshed-API-Token")
	}
	collected.addToken("execution token from /run", minted)
	claims := m.parse(minted)
	if claims["jti"] == nil || claims["jti"] == "" {
		t.Errorf("the execution token minted on /run has no jti: %v", claims)
	}
	if claims["scope"] != "execution" || claims["sub"] != q.TIID {
		t.Errorf("execution token: scope %v sub %v, want execution %s", claims["scope"], claims["sub"], q.TIID)
	}

	// replay is the task command's attempt: the workload token read from
	// the file, the parent's identity from /proc.
	replay := func(t *testing.T, base string) {
		t.Helper()
		r := send(t, base, "PATCH", tiPath(q.TIID, "run"), "Bearer "+q.Token, run)
		mustStatus(t, r, 200)
		if tok := r.header.Get("Refreshed-API-Token"); tok != "" && tok != minted {
			collected.addToken("execution token from a replayed /run", tok)
			t.Errorf("a replayed /run minted a second execution token (jti %v), want the first one (jti %v) or none",
				m.parse(tok)["jti"], claims["jti"])
		}
	}
	t.Run("replay while running gets the same token", func(t *testing.T) { replay(t, srv.URL) })
	t.Run("replay a second later gets the same token", func(t *testing.T) {
		// A new token minted now would differ in iat too, not only in jti.
		time.Sleep(1100 * time.Millisecond)
		replay(t, srv.URL)
	})

	srv.stop()
	srv = startServer(t, dataDir)
	t.Run("replay after a restart gets the same token", func(t *testing.T) { replay(t, srv.URL) })

	t.Run("another workload token of the same task instance is refused", func(t *testing.T) {
		other := m.hs512(m.claims(q.TIID, "workload", 600*time.Second))
		r := send(t, srv.URL, "PATCH", tiPath(q.TIID, "run"), "Bearer "+other, run)
		wantJSON(t, r, 409, `{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"running"}}`)
		if r.header.Get("Refreshed-API-Token") != "" {
			t.Errorf("%s: a refused /run handed out an execution token", r)
		}
	})

	// The worker's own token still works: the replay did not take the task
	// away from it.
	exec := newWorker(t, srv.URL, minted)
	wantNoContent(t, exec.do("PUT", tiPath(q.TIID, "heartbeat"), worker.heartbeat(t)), 204)
	wantNoContent(t, exec.do("PATCH", tiPath(q.TIID, "state"), successPayload(t)), 204)

	t.Run("replay after the task left running is refused", func(t *testing.T) {
		r := send(t, srv.URL, "PATCH", tiPath(q.TIID, "run"), "Bearer "+q.Token, run)
		wantJSON(t, r, 409, `{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"success"}}`)
		if r.header.Get("Refreshed-API-Token") != "" {
			t.Errorf("%s: a refused /run handed out an execution token", r)
		}
	})
	srv.stop()
}
