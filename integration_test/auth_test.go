package integration_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// TestAuthTable walks the workload- and execution-token rules against the
// real binary: which tokens are refused, with which status and detail, and which
// near-misses are still accepted.
func TestAuthTable(t *testing.T) {
	dataDir := newDataDir(t)
	const dagID, runID = "auth_dag", "manual__2026-11-27T11:00:00+00:00"
	a := queueTask(t, dataDir, dagID, runID, "task_a")
	b := queueTask(t, dataDir, dagID, runID, "task_b")
	mustCLI(t, dataDir, "variables", "set", "auth_var", "v")
	mustCLI(t, dataDir, "connections", "add", "auth_conn", "--conn-type", "http", "--host", "example.org")

	srv := startServer(t, dataDir)
	m := newMinter(t, dataDir)
	hostA := host{"worker-a", "airflow", 1001}
	hostB := host{"worker-b", "airflow", 1002}

	wa := newWorker(t, srv.URL, a.Token)
	mustStatus(t, wa.do("PATCH", tiPath(a.TIID, "run"), hostA.runPayload(t)), 200)
	execA := wa.token
	wb := newWorker(t, srv.URL, b.Token)
	mustStatus(t, wb.do("PATCH", tiPath(b.TIID, "run"), hostB.runPayload(t)), 200)

	// Routes a refused token is tried on: /run (execution or workload, ti:self),
	// heartbeat (execution, ti:self) and a variable read (execution, any TI).
	type route struct{ method, path, body string }
	runA := route{"PATCH", tiPath(a.TIID, "run"), hostA.runPayload(t)}
	hbA := route{"PUT", tiPath(a.TIID, "heartbeat"), hostA.heartbeat(t)}
	getVar := route{"GET", variablePath("auth_var"), ""}
	refusedOn := []route{runA, hbA, getVar}

	checkRefused := func(t *testing.T, r *response, status int, detail string) {
		t.Helper()
		wantJSON(t, r, status, detail)
		// RFC 6750 §3.1: no error code when no credentials were sent.
		want := `Bearer error="invalid_token"`
		if status == 401 {
			want = "Bearer"
		}
		if got := r.header.Get("WWW-Authenticate"); got != want {
			t.Errorf("%s: WWW-Authenticate = %q, want %q", r, got, want)
		}
	}

	t.Run("401 Missing auth token", func(t *testing.T) {
		for _, tt := range []struct{ name, authz string }{
			{"no Authorization header", ""},
			{"Basic scheme", "Basic dXNlcjpwYXNzd29yZA=="},
			{"valid token under the Basic scheme", "Basic " + execA},
			{"valid token under a Token scheme", "Token " + execA},
		} {
			t.Run(tt.name, func(t *testing.T) {
				for _, rt := range refusedOn {
					checkRefused(t, send(t, srv.URL, rt.method, rt.path, tt.authz, rt.body), 401, `{"detail":"Missing auth token"}`)
				}
			})
		}
	})

	good := func() jwt.MapClaims { return m.claims(a.TIID, "execution", 600*time.Second) }
	otherKey := []byte("an-entirely-different-secret-of-sufficient-length-0123456789")

	t.Run("403 Invalid auth token", func(t *testing.T) {
		now := time.Now().Unix()
		for _, tt := range []struct{ name, token string }{
			{"garbage", "garbage"},
			{"three garbage segments", "aaaa.bbbb.cccc"},
			{"expired beyond the leeway", m.hs512(with(good(), "iat", now-700, "nbf", now-700, "exp", now-60))},
			{"nbf in the future beyond the leeway", m.hs512(with(good(), "nbf", now+60))},
			{"iat in the future beyond the leeway", m.hs512(with(good(), "iat", now+60))},
			{"wrong aud", m.hs512(with(good(), "aud", "urn:airflow.apache.org:api"))},
			{"aud list without the task audience", m.hs512(with(good(), "aud", []string{"a", "b"}))},
			{"missing aud", m.hs512(with(good(), "aud", nil))},
			{"missing exp", m.hs512(with(good(), "exp", nil))},
			{"missing iat", m.hs512(with(good(), "iat", nil))},
			{"bad signature (other key)", m.sign(jwt.SigningMethodHS512, otherKey, good())},
			{"alg none", m.sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good())},
			{"HS256 with the right secret", m.sign(jwt.SigningMethodHS256, m.key, good())},
			{"HS384 with the right secret", m.sign(jwt.SigningMethodHS384, m.key, good())},
			{"sub not a UUID", m.hs512(with(good(), "sub", "not-a-uuid"))},
			{"missing sub", m.hs512(with(good(), "sub", nil))},
			{"scope not a string", m.hs512(with(good(), "scope", 1))},
			{"exp not a number", m.hs512(with(good(), "exp", "tomorrow"))},
			{"empty aud list", m.hs512(with(good(), "aud", []string{}))},
		} {
			t.Run(tt.name, func(t *testing.T) {
				for _, rt := range refusedOn {
					checkRefused(t, send(t, srv.URL, rt.method, rt.path, "Bearer "+tt.token, rt.body), 403, `{"detail":"Invalid auth token"}`)
				}
			})
		}
	})

	t.Run("403 unknown token scope", func(t *testing.T) {
		for _, scope := range []string{"admin", "queue"} {
			tok := m.hs512(m.claims(a.TIID, scope, 600*time.Second))
			for _, rt := range refusedOn {
				checkRefused(t, send(t, srv.URL, rt.method, rt.path, "Bearer "+tok, rt.body), 403,
					`{"detail":"Invalid auth token"}`)
			}
		}
	})

	t.Run("403 workload token off /run", func(t *testing.T) {
		handMinted := m.hs512(m.claims(a.TIID, "workload", 600*time.Second))
		for _, tok := range []string{a.Token, handMinted} {
			for _, rt := range []route{
				hbA,
				{"PATCH", tiPath(a.TIID, "state"), successPayload(t)},
				{"PUT", tiPath(a.TIID, "rtif"), `{"sql":"select 1"}`},
				getVar,
				{"PUT", variablePath("auth_var"), `{"val":"overwritten"}`},
				{"DELETE", variablePath("auth_var"), ""},
				{"GET", connectionPath("auth_conn"), ""},
				{"GET", a.xcomPath("return_value"), ""},
				{"POST", a.xcomPath("return_value"), `"stolen"`},
				{"DELETE", a.xcomPath("return_value"), ""},
			} {
				checkRefused(t, send(t, srv.URL, rt.method, rt.path, "Bearer "+tok, rt.body), 403,
					typeRefused("workload", rt.method, rt.path))
			}
		}
	})

	t.Run("403 Token subject does not match task instance ID", func(t *testing.T) {
		const want = `{"detail":"Token subject does not match task instance ID"}`
		for _, tt := range []struct {
			name  string
			token string
			rt    route
		}{
			{"A's execution token on B's heartbeat", execA, route{"PUT", tiPath(b.TIID, "heartbeat"), hostB.heartbeat(t)}},
			{"A's execution token on B's state", execA, route{"PATCH", tiPath(b.TIID, "state"), successPayload(t)}},
			{"A's execution token on B's /run", execA, route{"PATCH", tiPath(b.TIID, "run"), hostB.runPayload(t)}},
			{"B's workload token on A's /run", b.Token, runA},
			{"execution token for B on A's heartbeat", m.execution(b.TIID), hbA},
			{"execution token for an unknown TI on A's heartbeat", m.execution(uuid.NewString()), hbA},
		} {
			t.Run(tt.name, func(t *testing.T) {
				checkRefused(t, send(t, srv.URL, tt.rt.method, tt.rt.path, "Bearer "+tt.token, tt.rt.body), 403, want)
			})
		}
	})

	// Tokens that differ from the gateway's own but must still be accepted.
	t.Run("accepted", func(t *testing.T) {
		now := time.Now().Unix()
		for _, tt := range []struct {
			name    string
			token   string
			renewed bool // the response must carry a Refreshed-API-Token
		}{
			{"well-formed hand-minted execution token", m.execution(a.TIID), false},
			{"no scope claim is an execution token", m.hs512(m.claims(a.TIID, "", 600*time.Second)), false},
			{"expired within the 10 s leeway", m.hs512(with(good(), "iat", now-603, "nbf", now-603, "exp", now-3)), true},
			{"nbf within the leeway", m.hs512(with(good(), "nbf", now+5)), false},
			{"iat within the leeway", m.hs512(with(good(), "iat", now+5, "nbf", now)), false},
			{"aud list containing the task audience", m.hs512(with(good(), "aud", []string{"other", taskAudience})), false},
			{"upper-case sub", m.hs512(with(good(), "sub", upper(a.TIID))), false},
		} {
			t.Run(tt.name, func(t *testing.T) {
				for _, rt := range []route{hbA, getVar} {
					w := newWorker(t, srv.URL, tt.token)
					r := w.do(rt.method, rt.path, rt.body)
					if r.status != http.StatusNoContent && r.status != http.StatusOK {
						t.Errorf("%s: want 2xx", r)
						continue
					}
					renewed := r.header.Get("Refreshed-API-Token")
					if tt.renewed != (renewed != "") {
						t.Errorf("%s: Refreshed-API-Token present = %v, want %v", r, renewed != "", tt.renewed)
					}
					if renewed == "" {
						continue
					}
					c := m.parse(renewed)
					if c["scope"] != "execution" || c["sub"] != a.TIID {
						t.Errorf("renewed token: scope %v sub %v, want execution %s", c["scope"], c["sub"], a.TIID)
					}
					if exp := numericClaim(t, c, "exp"); exp <= time.Now().Unix() {
						t.Errorf("renewed token already expired (exp %d)", exp)
					}
					// The worker swapped to it, and it works.
					if r := w.do(rt.method, rt.path, rt.body); r.status != http.StatusNoContent && r.status != http.StatusOK {
						t.Errorf("%s with the renewed token: want 2xx", r)
					}
				}
			})
		}
	})

	// None of the refusals changed anything: A still runs on worker-a.
	wantNoContent(t, wa.do("PUT", tiPath(a.TIID, "heartbeat"), hostA.heartbeat(t)), 204)
	wantJSON(t, wa.do("GET", variablePath("auth_var"), ""), 200, `{"key":"auth_var","value":"v"}`)
	srv.stop()
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
