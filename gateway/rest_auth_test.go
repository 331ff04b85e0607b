package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/reissue"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

func (h *harness) addUser(name string, role auth.Role) {
	h.t.Helper()
	hash, err := auth.HashPassword("password-"+name, bcrypt.MinCost)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.db.AddUser(context.Background(), auth.User{Name: name, Role: role, PasswordHash: hash}); err != nil {
		h.t.Fatal(err)
	}
}

// login returns a REST token for the user.
func (h *harness) login(name string) string {
	h.t.Helper()
	r := h.do("POST", "/auth/token", "", `{"username":"`+name+`","password":"password-`+name+`"}`)
	if r.status != 201 {
		h.t.Fatalf("login %s = %d %s", name, r.status, r.body)
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.AccessToken == "" {
		h.t.Fatalf("login body %s", r.body)
	}
	return body.AccessToken
}

func TestLoginLogoutRevocation(t *testing.T) {
	h := newHarness(t)
	h.addUser("ada", auth.RoleAdmin)
	r := h.do("POST", "/auth/token", "", `{"username":"ada","password":"password-ada"}`)
	if r.status != 201 {
		t.Fatalf("login = %d %s", r.status, r.body)
	}
	ck := r.header.Get("Set-Cookie")
	for _, want := range []string{"_token=", "Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=86400"} {
		if !strings.Contains(ck, want) {
			t.Errorf("Set-Cookie %q lacks %s", ck, want)
		}
	}
	if strings.Contains(ck, "Secure") {
		t.Errorf("cookie marked Secure over plain HTTP: %q", ck)
	}
	tok := h.login("ada")
	claims, err := h.rest.Validate(context.Background(), tok)
	if err != nil || claims.Subject != "ada" || claims.Extra["role"] != "admin" || claims.Lifetime() != 24*time.Hour {
		t.Fatalf("claims %+v, %v", claims, err)
	}
	cli := h.do("POST", "/auth/token/cli", "", `{"username":"ada","password":"password-ada"}`)
	if cli.status != 201 || cli.header.Get("Set-Cookie") != "" {
		t.Errorf("cli login = %d, cookie %q", cli.status, cli.header.Get("Set-Cookie"))
	}

	wantJSON(t, h.do("GET", "/api/v2/variables", tok, ""), 200, `{"variables":[],"total_entries":0}`)
	// The token query parameter and the cookie work too.
	if r := h.do("GET", "/api/v2/variables?token="+tok, "", ""); r.status != 200 {
		t.Errorf("token query = %d", r.status)
	}
	if r := h.do("POST", "/api/v2/variables?token="+tok, "", `{"key":"k","value":"v"}`); r.status != 401 {
		t.Errorf("token query on a write = %d", r.status)
	}
	if r := h.do("GET", "/api/v2/variables", "", "", "Cookie", "_token="+tok); r.status != 200 {
		t.Errorf("cookie = %d", r.status)
	}
	if r := h.do("POST", "/auth/logout", tok, ""); r.status != 204 || !strings.Contains(r.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout = %d %v", r.status, r.header)
	}
	wantJSON(t, h.do("GET", "/api/v2/variables", tok, ""), 401, `{"detail":"Token has been revoked"}`)
	wantJSON(t, h.do("GET", "/api/v2/variables", "", ""), 401, `{"detail":"Not authenticated"}`)
	wantJSON(t, h.do("GET", "/api/v2/variables", "garbage", ""), 401, `{"detail":"Invalid JWT token"}`)
}

func TestLoginFailuresAndThrottling(t *testing.T) {
	h := newHarness(t)
	h.addUser("bob", auth.RoleViewer)
	wrong := h.do("POST", "/auth/token", "", `{"username":"bob","password":"nope-nope"}`)
	unknown := h.do("POST", "/auth/token", "", `{"username":"nobody","password":"nope-nope"}`)
	wantJSON(t, wrong, 401, `{"detail":"Invalid username or password"}`)
	wantJSON(t, unknown, 401, `{"detail":"Invalid username or password"}`)
	wantJSON(t, h.do("POST", "/auth/token", "", `{"username":"bob"}`), 422,
		`{"detail":[{"type":"missing","loc":["body","password"],"msg":"Field required","input":{"username":"bob"}}]}`)
	var last response
	for i := 0; i < 10; i++ {
		last = h.do("POST", "/auth/token", "", `{"username":"bob","password":"nope-nope"}`)
	}
	if last.status != 429 || last.header.Get("Retry-After") == "" {
		t.Fatalf("after repeated failures: %d, Retry-After %q", last.status, last.header.Get("Retry-After"))
	}
	for _, e := range h.logs.All() {
		for _, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, "nope-nope") {
				t.Errorf("log %q holds a password", e.Message)
			}
		}
	}
}

func TestAdminVariablesConnections(t *testing.T) {
	h := newHarness(t)
	h.addUser("op", auth.RoleOp)
	tok := h.login("op")
	wantJSON(t, h.do("POST", "/api/v2/variables", tok, `{"key":"a/b","value":"1","description":"d"}`), 201,
		`{"key":"a/b","value":"1","description":"d","is_encrypted":false}`)
	wantJSON(t, h.do("POST", "/api/v2/variables", tok, `{"key":"a/b","value":"2"}`), 409,
		"{\"detail\":\"The Variable with key: `a/b` already exists\"}")
	wantJSON(t, h.do("PATCH", "/api/v2/variables/a/b", tok, `{"key":"a/b","value":"2"}`), 200,
		`{"key":"a/b","value":"2","description":null,"is_encrypted":false}`)
	wantJSON(t, h.do("GET", "/api/v2/variables?limit=1", tok, ""), 200,
		`{"variables":[{"key":"a/b","value":"2","description":null,"is_encrypted":false}],"total_entries":1}`)
	if r := h.do("DELETE", "/api/v2/variables/a/b", tok, ""); r.status != 204 {
		t.Errorf("delete = %d", r.status)
	}
	wantJSON(t, h.do("GET", "/api/v2/variables/a/b", tok, ""), 404, "{\"detail\":\"The Variable with key: `a/b` was not found\"}")

	wantJSON(t, h.do("POST", "/api/v2/connections", tok,
		`{"connection_id":"pg","conn_type":"postgres","host":"db","port":5432,"password":"s3cret","extra":"{\"x\":1}"}`), 201,
		`{"connection_id":"pg","conn_type":"postgres","description":null,"host":"db","login":null,"schema":null,"port":5432,"password":"***","extra":"{\"x\":1}"}`)
	// The redacted password sent back keeps the stored one.
	if r := h.do("PATCH", "/api/v2/connections/pg", tok, `{"connection_id":"pg","conn_type":"postgres","password":"***"}`); r.status != 200 {
		t.Fatalf("patch = %d %s", r.status, r.body)
	}
	conn, _ := h.db.Connection(context.Background(), "pg")
	if conn.Password == nil || *conn.Password != "s3cret" {
		t.Errorf("password after patch = %v", conn.Password)
	}
	wantJSON(t, h.do("GET", "/api/v2/connections", tok, ""), 200,
		`{"connections":[{"connection_id":"pg","conn_type":"postgres","description":null,"host":null,"login":null,"schema":null,"port":null,"password":"***","extra":null}],"total_entries":1}`)
	if r := h.do("POST", "/api/v2/connections", tok, `{"connection_id":"x","conn_type":"t","port":70000}`); r.status != 422 {
		t.Errorf("bad port = %d", r.status)
	}
}

func TestAdminWorkloadsAndTaskInstances(t *testing.T) {
	h := newHarness(t)
	h.addUser("op", auth.RoleOp)
	h.addUser("ada", auth.RoleAdmin)
	// A workload token is a task's whole access, connection secrets in
	// clear included: op may not mint one.
	wantJSON(t, h.do("POST", "/api/v2/workloads", h.login("op"), `{"dag_id":"etl","run_id":"r1","task_id":"t"}`), 403,
		`{"detail":"Forbidden"}`)
	tok := h.login("ada")
	r := h.do("POST", "/api/v2/workloads", tok, `{"dag_id":"etl","run_id":"r1","task_id":"t","max_tries":1}`)
	if r.status != 201 {
		t.Fatalf("queue = %d %s", r.status, r.body)
	}
	var et workload.ExecuteTask
	if err := json.Unmarshal([]byte(r.body), &et); err != nil {
		t.Fatal(err)
	}
	wc, err := h.tokens.Validate(context.Background(), et.Token)
	if err != nil || wc.Type() != scopes.Workload || wc.Subject != et.TI.ID || wc.Lifetime() != time.Hour {
		t.Fatalf("workload token %+v, %v", wc, err)
	}
	if r := h.do("POST", "/api/v2/workloads", tok, `{"dag_id":"etl","run_id":"r1","task_id":"t"}`); r.status != 409 {
		t.Errorf("queue twice = %d", r.status)
	}
	if ti, err := h.db.TaskInstance(context.Background(), et.TI.ID); err != nil || ti.QueuedBy != "ada" {
		t.Errorf("queued task instance %+v, %v: want queued_by ada", ti, err)
	}
	exec := h.start(et.TI.ID)
	list := h.do("GET", "/api/v2/dags/~/dagRuns/~/taskInstances?state=running", tok, "")
	if list.status != 200 || !strings.Contains(list.body, `"total_entries":1`) || !strings.Contains(list.body, `"last_heartbeat_at":"2026-11-27T10:00:00Z"`) {
		t.Errorf("list = %d %s", list.status, list.body)
	}
	// Marked failed from outside: the worker's next heartbeat is refused.
	if r := h.do("PATCH", "/api/v2/dags/etl/dagRuns/r1/taskInstances/t", tok, `{"new_state":"failed"}`); r.status != 200 {
		t.Fatalf("mark failed = %d %s", r.status, r.body)
	}
	hb := h.do("PUT", "/execution/task-instances/"+et.TI.ID+"/heartbeat", exec, `{"hostname":"worker-a","pid":4242}`)
	if hb.status != 409 || !strings.Contains(hb.body, "not_running") {
		t.Errorf("heartbeat after mark = %d %s", hb.status, hb.body)
	}
	if err := h.db.SetXCom(context.Background(), workload.XCom{XComRef: workload.XComRef{DagID: "etl", RunID: "r1", TaskID: "t", MapIndex: -1, Key: "return_value"}, Value: json.RawMessage(`{"rows":3}`)}); err != nil {
		t.Fatal(err)
	}
	xc := h.do("GET", "/api/v2/dags/etl/dagRuns/r1/taskInstances/t/xcomEntries/return_value", tok, "")
	if xc.status != 200 || !strings.Contains(xc.body, `"value":{"rows":3}`) {
		t.Errorf("xcom entry = %d %s", xc.status, xc.body)
	}
	if r := h.do("GET", "/api/v2/dags/etl/dagRuns/r1/taskInstances/t/xcomEntries/nope", tok, ""); r.status != 404 {
		t.Errorf("missing xcom entry = %d", r.status)
	}
	if r := h.do("PATCH", "/api/v2/dags/etl/dagRuns/r1/taskInstances/t", tok, `{"new_state":"queued"}`); r.status != 422 {
		t.Errorf("mark queued = %d", r.status)
	}
	if r := h.do("GET", "/api/v2/dags/etl/dagRuns/r1/taskInstances/none", tok, ""); r.status != 404 {
		t.Errorf("unknown task = %d", r.status)
	}
}

func TestComponentTokens(t *testing.T) {
	h := newHarness(t)
	h.addUser("ada", auth.RoleAdmin)
	tok := h.login("ada")
	r := h.do("POST", "/api/v2/components", tok, `{"kind":"triggerer","name":"trig-1"}`)
	if r.status != 201 {
		t.Fatalf("register = %d %s", r.status, r.body)
	}
	var comp struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	_ = json.Unmarshal([]byte(r.body), &comp)
	if r := h.do("POST", "/api/v2/components", tok, `{"kind":"triggerer","name":"trig-1"}`); r.status != 409 {
		t.Errorf("register twice = %d", r.status)
	}
	if r := h.do("GET", "/execution/variables/x", comp.Token, ""); r.status != 404 {
		t.Errorf("component read = %d %s", r.status, r.body)
	}
	wantJSON(t, h.do("PUT", "/execution/variables/x", comp.Token, `{"val":"1"}`), 403,
		`{"detail":"Component tokens are not allowed for this endpoint"}`)
	ref := h.do("POST", "/execution/token/refresh", comp.Token, "")
	if ref.status != 200 || ref.header.Get(reissue.Header) == "" {
		t.Fatalf("refresh = %d %s", ref.status, ref.body)
	}
	// Renewal by the middleware while registered …
	h.clock.Advance(500 * time.Second)
	if r := h.do("GET", "/execution/variables/x", comp.Token, ""); r.header.Get(reissue.Header) == "" {
		t.Error("registered component's due token was not renewed")
	}
	// … and none once removed.
	if r := h.do("DELETE", "/api/v2/components/"+comp.ID, tok, ""); r.status != 204 {
		t.Fatalf("remove = %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/execution/variables/x", comp.Token, ""); r.header.Get(reissue.Header) != "" {
		t.Error("removed component's token was renewed")
	}
	if r := h.do("POST", "/execution/token/refresh", comp.Token, ""); r.status != 403 {
		t.Errorf("refresh after removal = %d", r.status)
	}
}

func TestNoRenewalAfterTheEnd(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "r", "t", -1)
	exec := h.start(id)
	if r := h.do("POST", "/execution/token/refresh", exec, ""); r.status != 200 {
		t.Fatalf("refresh while running = %d %s", r.status, r.body)
	}
	if r := h.do("PATCH", "/execution/task-instances/"+id+"/state", exec, `{"state":"success","end_date":"2026-11-27T10:01:00Z"}`); r.status != 204 {
		t.Fatalf("success = %d", r.status)
	}
	h.clock.Advance(500 * time.Second)
	if r := h.do("GET", "/execution/variables/x", exec, ""); r.status != 409 || r.header.Get(reissue.Header) != "" {
		t.Errorf("finished task's due token: %d, renewed %v", r.status, r.header.Get(reissue.Header) != "")
	}
	if r := h.do("POST", "/execution/token/refresh", exec, ""); r.status != http.StatusConflict {
		t.Errorf("refresh after success = %d", r.status)
	}
}

func TestUsersAdmin(t *testing.T) {
	h := newHarness(t)
	h.addUser("ada", auth.RoleAdmin)
	tok := h.login("ada")
	if r := h.do("POST", "/api/v2/users", tok, `{"username":"vic","password":"password-vic","role":"viewer"}`); r.status != 201 {
		t.Fatalf("add = %d %s", r.status, r.body)
	}
	vic := h.login("vic")
	if r := h.do("GET", "/api/v2/users", vic, ""); r.status != 403 {
		t.Errorf("viewer lists users = %d", r.status)
	}
	if r := h.do("POST", "/api/v2/users", tok, `{"username":"vic","password":"password-vic","role":"viewer"}`); r.status != 409 {
		t.Errorf("add twice = %d", r.status)
	}
	if r := h.do("POST", "/api/v2/users", tok, `{"username":"x","password":"short","role":"viewer"}`); r.status != 400 {
		t.Errorf("short password = %d", r.status)
	}
	if r := h.do("DELETE", "/api/v2/users/vic", tok, ""); r.status != 204 {
		t.Errorf("remove = %d", r.status)
	}
	// A removed user's token stops working at once, cookie or not.
	wantJSON(t, h.do("GET", "/api/v2/variables", vic, ""), 401, `{"detail":"Invalid JWT token"}`)
	if r := h.do("GET", "/api/v2/variables", "", "", "Cookie", "_token="+vic); r.status != 401 || r.header.Get("Set-Cookie") != "" {
		t.Errorf("removed user's cookie = %d, Set-Cookie %q", r.status, r.header.Get("Set-Cookie"))
	}
	// Re-added with another role, the old token (old role) is refused.
	if r := h.do("POST", "/api/v2/users", tok, `{"username":"vic","password":"password-vic","role":"op"}`); r.status != 201 {
		t.Fatalf("re-add = %d", r.status)
	}
	if r := h.do("GET", "/api/v2/variables", vic, ""); r.status != 401 {
		t.Errorf("token with the old role = %d", r.status)
	}
	// Removed and re-added with the same role, the old token stays dead
	// (it carries the old generation); a fresh login works.
	vicOp := h.login("vic")
	for _, step := range []struct{ method, path, body string }{
		{"DELETE", "/api/v2/users/vic", ""},
		{"POST", "/api/v2/users", `{"username":"vic","password":"password-vic","role":"op"}`},
	} {
		if r := h.do(step.method, step.path, tok, step.body); r.status >= 300 {
			t.Fatalf("%s %s = %d %s", step.method, step.path, r.status, r.body)
		}
	}
	wantJSON(t, h.do("GET", "/api/v2/variables", vicOp, ""), 401, `{"detail":"Invalid JWT token"}`)
	if r := h.do("GET", "/api/v2/variables", "", "", "Cookie", "_token="+vicOp); r.status != 401 {
		t.Errorf("old cookie after re-add = %d", r.status)
	}
	if r := h.do("GET", "/api/v2/variables", h.login("vic"), ""); r.status != 200 {
		t.Errorf("fresh login after re-add = %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/api/v2/tokens/revoke", tok, `{"jti":"abc"}`); r.status != 204 {
		t.Errorf("revoke = %d %s", r.status, r.body)
	}
	if revoked, err := h.db.IsRevoked(context.Background(), "abc"); err != nil || !revoked {
		t.Errorf("revoked = %v, %v", revoked, err)
	}
}

func TestAuthFailureLimit(t *testing.T) {
	h := newHarness(t)
	h.srv.cfg.AuthLimiter = auth.NewFailureLimiter(5, h.clock.Now)
	id := h.queue("etl", "r", "t", -1)
	exec := h.start(id)
	for i := 0; i < 5; i++ {
		if r := h.do("GET", "/execution/variables/x", "forged", ""); r.status != 403 {
			t.Fatalf("failure %d = %d", i, r.status)
		}
	}
	r := h.do("GET", "/execution/variables/x", "forged", "")
	if r.status != 429 || r.header.Get("Retry-After") != "1" {
		t.Fatalf("after 5 failures: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	// A valid token from the locked address is served: garbage from a
	// worker's address (or its NAT) never makes the worker fail.
	if r := h.do("GET", "/execution/variables/x", exec, ""); r.status != 404 {
		t.Errorf("valid token from a locked address = %d %s", r.status, r.body)
	}
	h.clock.Advance(time.Second)
	if r := h.do("GET", "/execution/variables/x", "forged", ""); r.status != 403 {
		t.Errorf("after the lockout = %d %s", r.status, r.body)
	}
	// A subject that keeps calling routes it may not is limited too.
	other := h.queue("etl", "r", "u", -1)
	for i := 0; i < 5; i++ {
		h.do("PUT", "/execution/task-instances/"+other+"/heartbeat", exec, `{"hostname":"h","pid":1}`)
	}
	if r := h.do("PUT", "/execution/task-instances/"+id+"/heartbeat", exec, `{"hostname":"worker-a","pid":4242}`); r.status != 429 {
		t.Errorf("subject after 5 denials = %d", r.status)
	}
}

func TestShedLoad(t *testing.T) {
	h := newHarness(t)
	h.srv.cfg.MaxInFlight = 1
	id := h.queue("etl", "r", "t", -1)
	exec := h.start(id)
	h.srv.inFlight.Add(1) // one request already being served
	defer h.srv.inFlight.Add(-1)
	r := h.do("GET", "/execution/variables/x", exec, "")
	wantJSON(t, r, 503, `{"detail":"Server is overloaded; retry later"}`)
	if r.header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	if r := h.do("GET", "/execution/health", "", ""); r.status != 200 {
		t.Errorf("health under overload = %d", r.status)
	}
}
