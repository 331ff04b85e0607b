package integration_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Passwords are longer than the log scan's minimum, so that the scan looks
// for them too.
const (
	adminPassword  = "admin-password-never-logged-1"
	opPassword     = "op-password-never-logged-22"
	viewerPassword = "viewer-password-never-logged-3"
	wrongPassword  = "wrong-password-never-logged-44"
)

// TestOperatorCLI is an operator's day with the CLI: the first admin is
// created on the data directory before any server runs; once logged in,
// every provisioning command goes through the running server (whose
// database the CLI could not open); a component registered through the
// server gets a token file only it can read and a token good for reads and
// renewal only; logging out revokes the stored token, and the revocation
// outlives a restart.
func TestOperatorCLI(t *testing.T) {
	dataDir := newDataDir(t)
	op := newOperator(t, dataDir)
	dir := t.TempDir()

	// Offline: bootstrap and provision.
	op.addUser("admin", "admin", adminPassword)
	offlineWorkload := op.must("", "workloads", "queue", "--dag-id", "op_dag", "--run-id", "manual__1", "--task-id", "offline_task")
	dpFile := filepath.Join(dir, "dag-processor.token")
	dpID := strings.TrimSpace(op.must("", "components", "register", "dag-processor", "dp-1", "--token-file", dpFile))
	checkFileMode(t, dpFile, 0o600)
	dpToken := readToken(t, dpFile)
	collected.addSecret("connection password", connPassword)
	op.must("", "connections", "add", "op_db", "--conn-type", "postgres", "--host", "db.internal", "--password", connPassword)

	srv := startServer(t, dataDir)
	token := op.login(srv.URL, "admin", adminPassword)

	t.Run("provisioning goes through the server", func(t *testing.T) {
		op.must("", "variables", "set", "greeting", "hello through the server")
		if got := op.must("", "variables", "get", "greeting"); got != "hello through the server\n" {
			t.Errorf("variables get greeting = %q", got)
		}
		op.must("", "variables", "set", "doomed", "x")
		if got := lines(op.must("", "variables", "list")); strings.Join(got, ",") != "doomed,greeting" {
			t.Errorf("variables list = %q", got)
		}
		op.must("", "variables", "delete", "doomed")
		if r := op.run(nil, "", "variables", "get", "doomed"); r.code != 1 || !strings.Contains(r.stderr, `variable "doomed" not found`) {
			t.Errorf("variables get of a deleted variable: exit %d, %s", r.code, r.stderr)
		}
		// The server sees what the CLI wrote.
		wantJSON(t, send(t, srv.URL, "GET", "/api/v2/variables/greeting", "Bearer "+token, ""), 200,
			`{"key":"greeting","value":"hello through the server","description":null,"is_encrypted":false}`)

		op.must("", "connections", "add", "op_api", "--conn-type", "http", "--host", "example.org", "--port", "443")
		var conn map[string]any
		if err := json.Unmarshal([]byte(op.must("", "connections", "get", "op_db")), &conn); err != nil {
			t.Fatal(err)
		}
		if conn["password"] != "***" || conn["host"] != "db.internal" {
			t.Errorf("connections get op_db = %v, want the host and a redacted password", conn)
		}
		if out := op.must("", "connections", "list"); !anyLine(out, "op_api", "http", "example.org", "443") || !anyLine(out, "op_db", "postgres") {
			t.Errorf("connections list:\n%s", out)
		}
		op.must("", "connections", "delete", "op_api")
		if out := op.must("", "connections", "list"); anyLine(out, "op_api") {
			t.Errorf("connections list after delete:\n%s", out)
		}

		remoteWorkload := op.must("", "workloads", "queue", "--dag-id", "op_dag", "--run-id", "manual__1", "--task-id", "online_task")
		sameWorkloadOutput(t, offlineWorkload, remoteWorkload)
		out := op.must("", "tasks", "list", "--dag-id", "op_dag")
		if len(lines(out)) != 3 || !anyLine(out, "offline_task", "queued") || !anyLine(out, "online_task", "queued") {
			t.Errorf("tasks list --dag-id op_dag:\n%s", out)
		}

		op.addUser("second", "viewer", viewerPassword)
		if out := op.must("", "users", "list"); !anyLine(out, "admin", "admin") || !anyLine(out, "second", "viewer") {
			t.Errorf("users list:\n%s", out)
		}
		op.must("", "users", "remove", "second")
		if r := op.run(nil, "", "users", "remove", "second"); r.code != 1 || !strings.Contains(r.stderr, `user "second" not found`) {
			t.Errorf("removing a removed user: exit %d, %s", r.code, r.stderr)
		}
	})

	t.Run("tokens revoke", func(t *testing.T) {
		_, other := restLogin(t, srv.URL, "/auth/token/cli", "admin", adminPassword)
		mustStatus(t, send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+other, ""), 200)
		op.must("", "tokens", "revoke", jti(t, other))
		wantJSON(t, send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+other, ""), 401, `{"detail":"Token has been revoked"}`)
	})

	t.Run("a refused token says to log in again", func(t *testing.T) {
		r := op.run([]string{"TASKGATE_TOKEN=not-a-token"}, "", "variables", "list", "--server", srv.URL)
		if r.code != 1 || !strings.Contains(r.stderr, "taskgate login --server "+srv.URL) {
			t.Errorf("exit %d, stderr %q; want 1 and advice to run taskgate login", r.code, r.stderr)
		}
	})

	t.Run("component token", func(t *testing.T) {
		tokenFile := filepath.Join(dir, "triggerer.token")
		id := strings.TrimSpace(op.must("", "components", "register", "triggerer", "trig-1", "--token-file", tokenFile))
		if !isUUID(id) {
			t.Fatalf("components register printed %q, want the component's id", id)
		}
		checkFileMode(t, tokenFile, 0o600)
		comp := readToken(t, tokenFile)
		if out := op.must("", "components", "list"); !anyLine(out, id, "triggerer", "trig-1") || !anyLine(out, dpID, "dag-processor", "dp-1") {
			t.Errorf("components list:\n%s", out)
		}

		// A task to own an XCom and to be what the component may not touch.
		var wl struct {
			Token string `json:"token"`
			TI    struct {
				ID string `json:"id"`
			} `json:"ti"`
		}
		if err := json.Unmarshal([]byte(op.must("", "workloads", "queue", "--dag-id", "op_dag", "--run-id", "manual__1", "--task-id", "xcom_task")), &wl); err != nil {
			t.Fatal(err)
		}
		collected.addToken("workload token", wl.Token)
		q := queued{Token: wl.Token, TIID: wl.TI.ID, DagID: "op_dag", RunID: "manual__1", TaskID: "xcom_task", MapIndex: -1}
		me := host{"worker-op", "airflow", 4242}
		task := newWorker(t, srv.URL, q.Token)
		mustStatus(t, task.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
		wantJSON(t, task.do("POST", q.xcomPath("return_value"), `{"rows":3}`), 201, `{"message":"XCom successfully set"}`)
		if out := op.must("", "tasks", "list", "--state", "running"); !anyLine(out, "xcom_task", "running", q.TIID) {
			t.Errorf("tasks list --state running:\n%s", out)
		}

		bearer := "Bearer " + comp
		for _, tok := range []string{comp, dpToken} {
			wantJSON(t, send(t, srv.URL, "GET", variablePath("greeting"), "Bearer "+tok, ""), 200,
				`{"key":"greeting","value":"hello through the server"}`)
		}
		mustStatus(t, send(t, srv.URL, "GET", connectionPath("op_db"), bearer, ""), 200)
		wantJSON(t, send(t, srv.URL, "GET", q.xcomPath("return_value"), bearer, ""), 200, `{"key":"return_value","value":{"rows":3}}`)
		for _, rt := range []struct{ method, path, body string }{
			{"PUT", variablePath("greeting"), `{"val":"overwritten"}`},
			{"POST", q.xcomPath("return_value"), `{"rows":0}`},
			{"PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)},
			{"PATCH", tiPath(q.TIID, "run"), me.runPayload(t)},
		} {
			if r := send(t, srv.URL, rt.method, rt.path, bearer, rt.body); r.status != 403 {
				t.Errorf("%s: a component token must be refused with 403", r)
			}
		}

		r := send(t, srv.URL, "POST", "/execution/token/refresh", bearer, "")
		mustStatus(t, r, 200)
		var refreshed struct {
			Token     string `json:"token"`
			ExpiresAt string `json:"expires_at"`
		}
		if err := json.Unmarshal(r.body, &refreshed); err != nil || refreshed.Token == "" || refreshed.Token == comp {
			t.Fatalf("%s: want a new token in the body (%v)", r, err)
		}
		if h := r.header.Get("Refreshed-API-Token"); h != refreshed.Token {
			t.Errorf("%s: Refreshed-API-Token differs from the body's token", r)
		}
		if exp, err := time.Parse(time.RFC3339, refreshed.ExpiresAt); err != nil || time.Until(exp) < time.Minute {
			t.Errorf("%s: expires_at %q (%v)", r, refreshed.ExpiresAt, err)
		}
		mustStatus(t, send(t, srv.URL, "GET", variablePath("greeting"), "Bearer "+refreshed.Token, ""), 200)

		// The operator marks the task failed: its worker learns it on the
		// next heartbeat.
		op.must("", "tasks", "mark", "op_dag", "manual__1", "xcom_task", "--state", "failed")
		wantJSON(t, task.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 409,
			`{"detail":{"reason":"not_running","message":"TI is no longer in the running state and task should terminate","current_state":"failed"}}`)

		op.must("", "components", "remove", id)
		for _, tok := range []string{comp, refreshed.Token} {
			if r := send(t, srv.URL, "POST", "/execution/token/refresh", "Bearer "+tok, ""); r.status != 403 {
				t.Errorf("%s: a removed component's token was renewed", r)
			}
		}
		mustStatus(t, send(t, srv.URL, "POST", "/execution/token/refresh", "Bearer "+dpToken, ""), 200)
	})

	// Logout revokes the token, and the revocation survives a restart.
	// (Not a subtest: the server it restarts belongs to the whole test.)
	if out := op.must("", "logout"); !strings.Contains(out, "Logged out") {
		t.Errorf("logout printed %q", out)
	}
	if _, err := os.Stat(op.creds); !os.IsNotExist(err) {
		t.Errorf("credentials file after logout: %v", err)
	}
	revoked := `{"detail":"Token has been revoked"}`
	wantJSON(t, send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+token, ""), 401, revoked)
	srv.stop()
	srv = startServer(t, dataDir)
	wantJSON(t, send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+token, ""), 401, revoked)
	srv.stop()
}

// TestOperatorREST checks the REST side of the gateway over HTTP: every
// admin route against every role, tokens of one audience on the other's
// routes, the browser cookie and the token query parameter, no renewal for
// a finished task, and answers to wrong passwords (the same for an unknown
// user; 429 once they repeat). The users are created on the data directory
// before the server starts.
func TestOperatorREST(t *testing.T) {
	dataDir := newDataDir(t)
	op := newOperator(t, dataDir)
	op.addUser("admin", "admin", adminPassword)
	op.addUser("op", "op", opPassword)
	op.addUser("viewer", "viewer", viewerPassword)
	op.must("", "variables", "set", "role_seed", "seed")
	op.must("", "connections", "add", "role_seed", "--conn-type", "http", "--host", "seed.example.org")
	op.must("", "workloads", "queue", "--dag-id", "role_dag", "--run-id", "manual__1", "--task-id", "seed_task")
	renew := queueTask(t, dataDir, "renew_dag", "manual__1", "renew_task")

	srv := startServer(t, dataDir)
	m := newMinter(t, dataDir)
	roles := []string{"viewer", "op", "admin"}
	passwords := map[string]string{"viewer": viewerPassword, "op": opPassword, "admin": adminPassword}
	tokens := map[string]string{}
	var loginViewer *response
	for _, role := range roles {
		r, tok := restLogin(t, srv.URL, "/auth/token", role, passwords[role])
		mustStatus(t, r, 201)
		tokens[role] = tok
		if role == "viewer" {
			loginViewer = r
		}
	}

	t.Run("cookie and query parameter", func(t *testing.T) {
		var ck *http.Cookie
		for _, c := range (&http.Response{Header: loginViewer.header}).Cookies() {
			if c.Name == "_token" {
				ck = c
			}
		}
		switch {
		case ck == nil:
			t.Fatalf("%s: no _token cookie; Set-Cookie: %q", loginViewer, loginViewer.header.Values("Set-Cookie"))
		case ck.Value != tokens["viewer"]:
			t.Errorf("the _token cookie is not the access token")
		case !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure:
			t.Errorf("Set-Cookie %q: want HttpOnly, SameSite=Lax, Path=/ and no Secure over plain HTTP",
				loginViewer.header.Values("Set-Cookie"))
		}
		r := sendWith(t, srv.URL, "GET", "/api/v2/variables/role_seed", func(req *http.Request) {
			req.AddCookie(&http.Cookie{Name: "_token", Value: tokens["viewer"]})
		})
		wantJSON(t, r, 200, `{"key":"role_seed","value":"seed","description":null,"is_encrypted":false}`)
		r = sendWith(t, srv.URL, "GET", "/api/v2/variables/role_seed?token="+tokens["viewer"], func(*http.Request) {})
		mustStatus(t, r, 200)
		r = sendWith(t, srv.URL, "GET", "/api/v2/variables/role_seed", func(req *http.Request) {
			req.AddCookie(&http.Cookie{Name: "_token", Value: "garbage"})
		})
		mustStatus(t, r, 401)
	})

	t.Run("roles", func(t *testing.T) {
		tis := "/api/v2/dags/role_dag/dagRuns/manual__1/taskInstances"
		// {role} in a path or body is replaced by the caller's role, so that
		// each allowed call works on its own records.
		routes := []struct {
			method, path, body string
			least              string
			ok                 int
		}{
			{"GET", "/api/v2/variables", "", "viewer", 200},
			{"POST", "/api/v2/variables", `{"key":"role_{role}","value":"v"}`, "op", 201},
			{"GET", "/api/v2/variables/role_seed", "", "viewer", 200},
			{"PATCH", "/api/v2/variables/role_seed", `{"key":"role_seed","value":"{role}"}`, "op", 200},
			{"DELETE", "/api/v2/variables/role_{role}", "", "op", 204},
			{"GET", "/api/v2/connections", "", "viewer", 200},
			{"POST", "/api/v2/connections", `{"connection_id":"role_{role}","conn_type":"http"}`, "op", 201},
			{"GET", "/api/v2/connections/role_seed", "", "viewer", 200},
			{"PATCH", "/api/v2/connections/role_seed", `{"connection_id":"role_seed","conn_type":"http","host":"{role}.example.org"}`, "op", 200},
			{"DELETE", "/api/v2/connections/role_{role}", "", "op", 204},
			{"GET", "/api/v2/dags/~/dagRuns/~/taskInstances", "", "viewer", 200},
			{"GET", tis + "/seed_task", "", "viewer", 200},
			{"PATCH", tis + "/seed_task", `{"new_state":"failed"}`, "op", 200},
			{"POST", "/api/v2/workloads", `{"dag_id":"role_dag","run_id":"manual__1","task_id":"queued_by_{role}"}`, "admin", 201},
			{"GET", "/api/v2/components", "", "admin", 200},
			{"POST", "/api/v2/components", `{"kind":"triggerer","name":"trig-{role}"}`, "admin", 201},
			{"DELETE", "/api/v2/components/00000000-0000-4000-8000-000000000000", "", "admin", 404},
			{"GET", "/api/v2/users", "", "admin", 200},
			{"POST", "/api/v2/users", `{"username":"new_{role}","password":"` + viewerPassword + `","role":"viewer"}`, "admin", 201},
			{"DELETE", "/api/v2/users/nobody_{role}", "", "admin", 404},
			{"POST", "/api/v2/tokens/revoke", `{"jti":"never-issued-{role}"}`, "admin", 204},
		}
		rank := map[string]int{"viewer": 1, "op": 2, "admin": 3}
		for _, rt := range routes {
			t.Run(rt.method+" "+rt.path, func(t *testing.T) {
				for _, role := range roles {
					path := strings.ReplaceAll(rt.path, "{role}", role)
					body := strings.ReplaceAll(rt.body, "{role}", role)
					r := send(t, srv.URL, rt.method, path, "Bearer "+tokens[role], body)
					if rank[role] >= rank[rt.least] {
						if r.status != rt.ok {
							t.Errorf("%s as %s: status %d, want %d", r, role, r.status, rt.ok)
						}
					} else {
						wantJSON(t, r, 403, `{"detail":"Forbidden"}`)
					}
				}
				path := strings.ReplaceAll(rt.path, "{role}", "anonymous")
				wantJSON(t, send(t, srv.URL, rt.method, path, "", rt.body), 401, `{"detail":"Not authenticated"}`)
			})
		}
	})

	// The execution token of a running task, for the next two subtests.
	task := newWorker(t, srv.URL, renew.Token)
	me := host{"worker-renew", "airflow", 5151}
	mustStatus(t, task.do("PATCH", tiPath(renew.TIID, "run"), me.runPayload(t)), 200)
	execToken := task.token
	if execToken == renew.Token {
		t.Fatal("/run returned no Refreshed-API-Token")
	}

	t.Run("token confusion", func(t *testing.T) {
		for _, rt := range []struct{ method, path, body string }{
			{"GET", variablePath("role_seed"), ""},
			{"PUT", tiPath(renew.TIID, "heartbeat"), me.heartbeat(t)},
		} {
			r := send(t, srv.URL, rt.method, rt.path, "Bearer "+tokens["admin"], rt.body)
			if r.status != 403 {
				t.Errorf("%s: a REST token on the Execution API, want 403", r)
			}
		}
		for name, tok := range map[string]string{"execution": execToken, "workload": renew.Token} {
			r := send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+tok, "")
			if r.status != 401 {
				t.Errorf("%s: an %s token on the REST API, want 401", r, name)
			}
		}
	})

	t.Run("no renewal for a finished task", func(t *testing.T) {
		nearExpiry := func() string { return m.hs512(m.claims(renew.TIID, "execution", 20*time.Second)) }
		r := send(t, srv.URL, "GET", variablePath("role_seed"), "Bearer "+nearExpiry(), "")
		mustStatus(t, r, 200)
		if r.header.Get("Refreshed-API-Token") == "" {
			t.Errorf("%s: a running task's token with 20 s left was not renewed", r)
		}
		mustStatus(t, send(t, srv.URL, "POST", "/execution/token/refresh", "Bearer "+execToken, ""), 200)

		wantNoContent(t, task.do("PATCH", tiPath(renew.TIID, "state"), successPayload(t)), 204)
		if r := send(t, srv.URL, "POST", "/execution/token/refresh", "Bearer "+execToken, ""); r.status != 409 {
			t.Errorf("%s: a finished task's token was renewed, want 409 not_running", r)
		}
		r = send(t, srv.URL, "GET", variablePath("role_seed"), "Bearer "+nearExpiry(), "")
		mustStatus(t, r, 200)
		if r.header.Get("Refreshed-API-Token") != "" {
			t.Errorf("%s: a finished task's token with 20 s left was renewed", r)
		}
	})

	t.Run("logout clears the cookie", func(t *testing.T) {
		r := send(t, srv.URL, "POST", "/auth/logout", "Bearer "+tokens["viewer"], "")
		wantNoContent(t, r, 204)
		cleared := false
		for _, c := range (&http.Response{Header: r.header}).Cookies() {
			cleared = cleared || c.Name == "_token" && c.MaxAge < 0
		}
		if !cleared {
			t.Errorf("%s: Set-Cookie %q does not clear _token", r, r.header.Values("Set-Cookie"))
		}
		wantJSON(t, send(t, srv.URL, "GET", "/api/v2/variables", "Bearer "+tokens["viewer"], ""), 401,
			`{"detail":"Token has been revoked"}`)
	})

	// Last: it locks this client address out of logging in.
	t.Run("wrong credentials", func(t *testing.T) {
		collected.addSecret("wrong password", wrongPassword)
		unknown, _ := restLogin(t, srv.URL, "/auth/token", "nobody", wrongPassword)
		wrong, _ := restLogin(t, srv.URL, "/auth/token", "op", wrongPassword)
		wantJSON(t, unknown, 401, `{"detail":"Invalid username or password"}`)
		wantJSON(t, wrong, 401, string(unknown.body))

		// Three more failures, at once: five in all locks the address out.
		var wg sync.WaitGroup
		statuses := make([]int, 3)
		errs := make([]error, 3)
		body := mustJSON(t, map[string]string{"username": "op", "password": wrongPassword})
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := httpClient.Post(srv.URL+"/auth/token", "application/json", strings.NewReader(body))
				if err != nil {
					errs[i] = err
					return
				}
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			}()
		}
		wg.Wait()
		for i := range statuses {
			if errs[i] != nil || statuses[i] != 401 {
				t.Errorf("failed login %d of 5: status %d (%v), want 401", i+3, statuses[i], errs[i])
			}
		}
		// The right password is refused too while locked out, without
		// being checked.
		r, _ := restLogin(t, srv.URL, "/auth/token", "op", opPassword)
		if r.status != 429 {
			t.Fatalf("%s: after five failures, want 429", r)
		}
		if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("%s: Retry-After %q, want a whole number of seconds ≥ 1", r, r.header.Get("Retry-After"))
		}
	})
	srv.stop()
}
