package integration_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The operator side's security review: who may queue workloads (a workload
// token is a task's whole access, connection secrets in clear included),
// what removing a user ends, whether a re-added user's old tokens come back,
// and revocation of task and component tokens.

const (
	bossPassword  = "boss-password-never-logged-55"
	xPassword     = "x-password-never-logged-666"
	secretOfConns = "s3cret-connection-password-7777"
)

// shortExecution makes every execution token due for renewal on every
// response (the renewal floor is 30 s), so that a test sees at once whether
// a token would be renewed.
const shortExecution = "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME=30"

// restQueue queues a workload through POST /api/v2/workloads.
func restQueue(t *testing.T, base, token, dagID, runID, taskID string) queued {
	t.Helper()
	r := send(t, base, "POST", "/api/v2/workloads", "Bearer "+token,
		mustJSON(t, map[string]string{"dag_id": dagID, "run_id": runID, "task_id": taskID}))
	mustStatus(t, r, 201)
	var w struct {
		Token string `json:"token"`
		TI    struct {
			ID string `json:"id"`
		} `json:"ti"`
	}
	if err := json.Unmarshal(r.body, &w); err != nil || w.Token == "" || !isUUID(w.TI.ID) {
		t.Fatalf("%s: not an ExecuteTask (%v)", r, err)
	}
	collected.addToken("workload token from the admin API", w.Token)
	return queued{Token: w.Token, TIID: w.TI.ID, DagID: dagID, RunID: runID, TaskID: taskID, MapIndex: -1}
}

// restRegister registers a component through POST /api/v2/components and
// returns its id and token.
func restRegister(t *testing.T, base, token, kind, name string) (string, string) {
	t.Helper()
	r := send(t, base, "POST", "/api/v2/components", "Bearer "+token,
		mustJSON(t, map[string]string{"kind": kind, "name": name}))
	mustStatus(t, r, 201)
	var c struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	if err := json.Unmarshal(r.body, &c); err != nil || c.Token == "" || !isUUID(c.ID) {
		t.Fatalf("%s: no component id and token (%v)", r, err)
	}
	collected.addToken("component token from the admin API", c.Token)
	return c.ID, c.Token
}

// tiState reads a task instance's state through the admin API.
func tiState(t *testing.T, base, token string, q queued) string {
	t.Helper()
	r := send(t, base, "GET", "/api/v2/dags/"+q.DagID+"/dagRuns/"+q.RunID+"/taskInstances/"+q.TaskID, "Bearer "+token, "")
	mustStatus(t, r, 200)
	var ti struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal(r.body, &ti); err != nil || ti.ID != q.TIID {
		t.Fatalf("%s: not task instance %s (%v)", r, q.TIID, err)
	}
	return ti.State
}

// wantRemovedOnRun requires /run with a withdrawn task's workload token to
// answer 409 invalid_state.
func wantRemovedOnRun(t *testing.T, base string, q queued, h host) {
	t.Helper()
	wantJSON(t, send(t, base, "PATCH", tiPath(q.TIID, "run"), "Bearer "+q.Token, h.runPayload(t)), 409,
		`{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"removed"}}`)
}

// TestSecurityQueueingWorkloadsIsAdminOnly: an op could queue a workload,
// swap its token on /run for an execution token and read every connection
// in clear, which the admin API hides from op. Queueing is admin's.
func TestSecurityQueueingWorkloadsIsAdminOnly(t *testing.T) {
	dataDir := newDataDir(t)
	op := newOperator(t, dataDir)
	op.addUser("admin", "admin", adminPassword)
	op.addUser("op", "op", opPassword)
	collected.addSecret("connection password", secretOfConns)
	op.must("", "connections", "add", "prod_db", "--conn-type", "postgres", "--password", secretOfConns)
	srv := startServer(t, dataDir)

	_, opToken := restLogin(t, srv.URL, "/auth/token", "op", opPassword)
	wantJSON(t, send(t, srv.URL, "POST", "/api/v2/workloads", "Bearer "+opToken,
		`{"dag_id":"steal","run_id":"manual__1","task_id":"secrets"}`), 403, `{"detail":"Forbidden"}`)
	if r := send(t, srv.URL, "GET", "/api/v2/dags/steal/dagRuns/manual__1/taskInstances", "Bearer "+opToken, ""); !strings.Contains(string(r.body), `"total_entries":0`) {
		t.Errorf("%s: the refused workload was queued anyway", r)
	}
	// The CLI through the server says the same.
	op.login(srv.URL, "op", opPassword)
	if r := op.run(nil, "", "workloads", "queue", "--dag-id", "steal", "--run-id", "manual__1", "--task-id", "cli"); r.code == 0 {
		t.Errorf("workloads queue as op through the server succeeded:\n%s", r.stdout)
	}

	_, adminToken := restLogin(t, srv.URL, "/auth/token", "admin", adminPassword)
	restQueue(t, srv.URL, adminToken, "allowed", "manual__1", "t")
}

// TestSecurityRemovedUserEndsWhatTheyStarted: removing a user withdraws the
// task instances they queued that no worker has started (their workload
// tokens' /run answers 409) and removes the components they registered
// (their tokens are no longer renewed), through the API and offline alike;
// running tasks and other users' work go on.
func TestSecurityRemovedUserEndsWhatTheyStarted(t *testing.T) {
	top := t // the server restarted in a subtest belongs to the whole test
	dataDir := newDataDir(t)
	op := newOperator(t, dataDir)
	op.addUser("root", "admin", adminPassword)
	op.addUser("boss", "admin", bossPassword)
	op.addUser("boss2", "admin", bossPassword)
	op.must("", "variables", "set", "shared", "v")
	srv := startServer(t, dataDir, shortExecution)
	_, root := restLogin(t, srv.URL, "/auth/token", "root", adminPassword)
	_, boss := restLogin(t, srv.URL, "/auth/token", "boss", bossPassword)
	me := host{"worker-removal", "airflow", 7070}

	waiting := restQueue(t, srv.URL, boss, "removal", "manual__1", "waiting")
	running := restQueue(t, srv.URL, boss, "removal", "manual__1", "running")
	others := restQueue(t, srv.URL, root, "removal", "manual__1", "others")
	compID, comp := restRegister(t, srv.URL, boss, "triggerer", "boss-trigger")
	rootCompID, rootComp := restRegister(t, srv.URL, root, "triggerer", "root-trigger")
	task := newWorker(t, srv.URL, running.Token)
	mustStatus(t, task.do("PATCH", tiPath(running.TIID, "run"), me.runPayload(t)), 200)
	if r := send(t, srv.URL, "GET", variablePath("shared"), "Bearer "+comp, ""); r.status != 200 || r.header.Get("Refreshed-API-Token") == "" {
		t.Fatalf("%s: before the removal the component's token is renewed", r)
	}

	wantNoContent(t, send(t, srv.URL, "DELETE", "/api/v2/users/boss", "Bearer "+root, ""), 204)

	t.Run("a queued task they queued is removed", func(t *testing.T) {
		wantRemovedOnRun(t, srv.URL, waiting, me)
		if got := tiState(t, srv.URL, root, waiting); got != "removed" {
			t.Errorf("state of %s after its user was removed = %q, want removed", waiting.TaskID, got)
		}
	})
	t.Run("a running task goes on", func(t *testing.T) {
		wantNoContent(t, task.do("PUT", tiPath(running.TIID, "heartbeat"), me.heartbeat(t)), 204)
		wantNoContent(t, task.do("PATCH", tiPath(running.TIID, "state"), successPayload(t)), 204)
	})
	t.Run("another user's task is untouched", func(t *testing.T) {
		mustStatus(t, send(t, srv.URL, "PATCH", tiPath(others.TIID, "run"), "Bearer "+others.Token, me.runPayload(t)), 200)
	})
	t.Run("their components are removed and no longer renewed", func(t *testing.T) {
		r := send(t, srv.URL, "GET", "/api/v2/components", "Bearer "+root, "")
		if strings.Contains(string(r.body), compID) || !strings.Contains(string(r.body), rootCompID) {
			t.Errorf("%s: want %s gone and %s kept", r, compID, rootCompID)
		}
		if r := send(t, srv.URL, "GET", variablePath("shared"), "Bearer "+comp, ""); r.header.Get("Refreshed-API-Token") != "" {
			t.Errorf("%s: a removed user's component token was renewed", r)
		}
		if r := send(t, srv.URL, "POST", "/execution/token/refresh", "Bearer "+comp, ""); r.status != 403 {
			t.Errorf("%s: a removed user's component token was renewed", r)
		}
		mustStatus(t, send(t, srv.URL, "POST", "/execution/token/refresh", "Bearer "+rootComp, ""), 200)
	})

	t.Run("offline removal", func(t *testing.T) {
		_, boss2 := restLogin(t, srv.URL, "/auth/token", "boss2", bossPassword)
		later := restQueue(t, srv.URL, boss2, "removal", "manual__2", "later")
		srv.stop()
		op.must("", "users", "remove", "boss2")
		srv = startServer(top, dataDir, shortExecution)
		wantRemovedOnRun(t, srv.URL, later, me)
		_, root = restLogin(t, srv.URL, "/auth/token", "root", adminPassword)
		if got := tiState(t, srv.URL, root, later); got != "removed" {
			t.Errorf("state after offline removal = %q, want removed", got)
		}
	})
	srv.stop()
}

// TestSecurityReaddedUserKeepsOldTokensDead: a token issued before its user
// was removed stays refused after the same name is added again with the
// same role, through the API and offline; a fresh login works.
func TestSecurityReaddedUserKeepsOldTokensDead(t *testing.T) {
	dataDir := newDataDir(t)
	op := newOperator(t, dataDir)
	op.addUser("root", "admin", adminPassword)
	op.addUser("x", "op", xPassword)
	srv := startServer(t, dataDir)
	_, root := restLogin(t, srv.URL, "/auth/token", "root", adminPassword)
	const refused = `{"detail":"Invalid JWT token"}`

	_, old := restLogin(t, srv.URL, "/auth/token", "x", xPassword)
	mustStatus(t, send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+old, ""), 200)
	wantNoContent(t, send(t, srv.URL, "DELETE", "/api/v2/users/x", "Bearer "+root, ""), 204)
	wantJSON(t, send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+old, ""), 401, refused)
	mustStatus(t, send(t, srv.URL, "POST", "/api/v2/users", "Bearer "+root,
		mustJSON(t, map[string]string{"username": "x", "password": xPassword, "role": "op"})), 201)
	wantJSON(t, send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+old, ""), 401, refused)
	_, fresh := restLogin(t, srv.URL, "/auth/token", "x", xPassword)
	mustStatus(t, send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+fresh, ""), 200)

	// Offline: remove and re-add while the server is stopped.
	srv.stop()
	op.must("", "users", "remove", "x")
	op.addUser("x", "op", xPassword)
	srv = startServer(t, dataDir)
	for _, tok := range []string{old, fresh} {
		wantJSON(t, send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+tok, ""), 401, refused)
	}
	_, again := restLogin(t, srv.URL, "/auth/token", "x", xPassword)
	mustStatus(t, send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+again, ""), 200)
	srv.stop()
}

// TestSecurityRevokedTaskAndComponentTokens: a revoked execution, workload
// or component token is refused on every /execution route like any invalid
// token, and never renewed; revocations made offline apply from the start
// and outlive a restart; an exp already past is refused by the API and the
// CLI alike.
func TestSecurityRevokedTaskAndComponentTokens(t *testing.T) {
	top := t // the server restarted in a subtest belongs to the whole test
	dataDir := newDataDir(t)
	op := newOperator(t, dataDir)
	op.addUser("root", "admin", adminPassword)
	op.must("", "variables", "set", "rv", "v")
	op.must("", "connections", "add", "rv_conn", "--conn-type", "http", "--host", "example.org")
	running := queueTask(t, dataDir, "revoke", "manual__1", "running")
	preRevoked := queueTask(t, dataDir, "revoke", "manual__1", "pre_revoked")
	op.must("", "tokens", "revoke", jti(t, preRevoked.Token))
	srv := startServer(t, dataDir, shortExecution)
	_, root := restLogin(t, srv.URL, "/auth/token", "root", adminPassword)
	me := host{"worker-revoke", "airflow", 8080}
	const invalid = `{"detail":"Invalid auth token"}`

	t.Run("workload token revoked offline", func(t *testing.T) {
		wantJSON(t, send(t, srv.URL, "PATCH", tiPath(preRevoked.TIID, "run"), "Bearer "+preRevoked.Token, me.runPayload(t)), 403, invalid)
	})

	r := send(t, srv.URL, "PATCH", tiPath(running.TIID, "run"), "Bearer "+running.Token, me.runPayload(t))
	mustStatus(t, r, 200)
	exec := r.header.Get("Refreshed-API-Token")
	if exec == "" {
		t.Fatal("/run returned no execution token")
	}
	r = send(t, srv.URL, "GET", variablePath("rv"), "Bearer "+exec, "")
	mustStatus(t, r, 200)
	renewed := r.header.Get("Refreshed-API-Token")
	if renewed == "" || jti(t, renewed) == jti(t, exec) {
		t.Fatalf("%s: want a renewed token with a new jti", r)
	}

	t.Run("execution token revoked through the API", func(t *testing.T) {
		wantNoContent(t, send(t, srv.URL, "POST", "/api/v2/tokens/revoke", "Bearer "+root,
			mustJSON(t, map[string]string{"jti": jti(t, exec)})), 204)
		for _, rt := range []struct{ method, path, body string }{
			{"GET", variablePath("rv"), ""},
			{"GET", connectionPath("rv_conn"), ""},
			{"PUT", tiPath(running.TIID, "heartbeat"), me.heartbeat(t)},
			{"PATCH", tiPath(running.TIID, "run"), me.runPayload(t)},
			{"POST", "/execution/token/refresh", ""},
		} {
			// send also fails the test if a refused response carries a
			// renewed token.
			wantJSON(t, send(t, srv.URL, rt.method, rt.path, "Bearer "+exec, rt.body), 403, invalid)
		}
	})

	t.Run("component token revoked with the CLI through the server", func(t *testing.T) {
		_, comp := restRegister(t, srv.URL, root, "dag-processor", "dp-revoked")
		mustStatus(t, send(t, srv.URL, "GET", variablePath("rv"), "Bearer "+comp, ""), 200)
		op.login(srv.URL, "root", adminPassword)
		op.must("", "tokens", "revoke", jti(t, comp))
		wantJSON(t, send(t, srv.URL, "GET", variablePath("rv"), "Bearer "+comp, ""), 403, invalid)
		wantJSON(t, send(t, srv.URL, "POST", "/execution/token/refresh", "Bearer "+comp, ""), 403, invalid)
	})

	t.Run("an exp already past is refused", func(t *testing.T) {
		// The jti is root's own: had the revocation been recorded after
		// all, root's next call would be refused.
		past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		r := send(t, srv.URL, "POST", "/api/v2/tokens/revoke", "Bearer "+root,
			mustJSON(t, map[string]string{"jti": jti(t, root), "exp": past}))
		if r.status != 422 || !strings.Contains(string(r.body), "in the past") {
			t.Errorf("%s: want 422 saying exp is in the past", r)
		}
		if res := op.run(nil, "", "tokens", "revoke", jti(t, root), "--exp", past); res.code == 0 || !strings.Contains(res.stderr, "in the past") {
			t.Errorf("tokens revoke --exp PAST through the server: exit %d, stderr %q", res.code, res.stderr)
		}
		if r := send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+root, ""); r.status != 200 {
			t.Errorf("%s: a refused revocation was recorded after all", r)
		}
		op.must("", "logout")
		srv.stop()
		if res := op.run(nil, "", "tokens", "revoke", jti(t, root), "--exp", past); res.code == 0 || !strings.Contains(res.stderr, "in the past") {
			t.Errorf("tokens revoke --exp PAST offline: exit %d, stderr %q", res.code, res.stderr)
		}
	})

	t.Run("revocations outlive a restart", func(t *testing.T) {
		srv = startServer(top, dataDir, shortExecution)
		_, root = restLogin(t, srv.URL, "/auth/token", "root", adminPassword)
		mustStatus(t, send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+root, ""), 200)
		wantJSON(t, send(t, srv.URL, "PATCH", tiPath(preRevoked.TIID, "run"), "Bearer "+preRevoked.Token, me.runPayload(t)), 403, invalid)
	})
	srv.stop()
}
