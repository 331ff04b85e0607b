package integration_test

import (
	"net/http"
	"testing"
	"time"
)

// pgCLI runs the offline CLI on the deployment's database (the same
// airflow.cfg settings as the replicas) and requires success.
func pgCLI(t *testing.T, d *pgDeployment, stdin string, args ...string) string {
	t.Helper()
	o := newOperator(t, newDataDir(t))
	r := o.run(d.env(), stdin, args...)
	if r.code != 0 {
		t.Fatalf("taskgate %v on PostgreSQL: exit %d\nstderr: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

// refusedWithin polls a request on a replica until it is refused with
// status, failing the test when that takes longer than revocationBound
// (measured from acknowledged, the moment the revocation was acknowledged)
// plus the polling's own slack.
func refusedWithin(t *testing.T, what string, acknowledged time.Time, status int, do func() *plainResult) {
	t.Helper()
	var last string
	deadline := acknowledged.Add(revocationBound + 2*time.Second)
	for time.Now().Before(deadline) {
		r := do()
		if r.status == status {
			if took := time.Since(acknowledged); took > revocationBound+500*time.Millisecond {
				t.Errorf("%s: refused %s after the revocation, want within %s", what, took.Round(time.Millisecond), revocationBound)
			} else {
				t.Logf("%s: refused by the other replica %s after the revocation", what, took.Round(time.Millisecond))
			}
			return
		}
		if r.status != http.StatusOK {
			t.Fatalf("%s: %s while waiting for %d", what, r, status)
		}
		last = r.String()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still honoured %s after the revocation (bound %s); last answer %s",
		what, time.Since(acknowledged).Round(time.Millisecond), revocationBound, last)
}

// TestPostgresRevocationAcrossReplicas: what one replica revokes, another
// refuses within revocationBound, though it had verified (and cached) the
// token before: an execution token revoked through the admin API, a REST
// token logged out, the tokens of a removed user.
func TestPostgresRevocationAcrossReplicas(t *testing.T) {
	d := newPGDeployment(t)
	collected.addSecret("password of root", adminPassword)
	collected.addSecret("password of x", xPassword)
	pgCLI(t, d, adminPassword+"\n", "users", "add", "root", "--role", "admin", "--password-stdin")
	pgCLI(t, d, xPassword+"\n", "users", "add", "x", "--role", "op", "--password-stdin")
	replicas := d.startReplicas(t, 2, noAuthLimit)
	a, b := replicas[0].URL, replicas[1].URL
	client := newPooledClient(2)
	defer client.CloseIdleConnections()
	get := func(base, path, token string) func() *plainResult {
		return func() *plainResult {
			r, err := doPlain(client, "GET", base+path, taskHeaders(token), nil)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			return r
		}
	}

	d.insertVariable("rv", "v", "")
	_, root := restLogin(t, a, "/auth/token", "root", adminPassword)
	// A REST token one replica issued is honoured by the other.
	mustStatus(t, send(t, b, "GET", "/api/v2/variables", "Bearer "+root, ""), 200)

	t.Run("execution token revoked through another replica", func(t *testing.T) {
		tis, tokens, _ := startRunning(t, d, []string{a}, "revoke_dag", 1)
		exec := tokens[0]
		if r := get(b, variablePath("rv"), exec)(); r.status != 200 {
			t.Fatalf("the execution token before revocation on the other replica: %s", r)
		}
		wantNoContent(t, send(t, a, "POST", "/api/v2/tokens/revoke", "Bearer "+root,
			mustJSON(t, map[string]string{"jti": jti(t, exec)})), 204)
		acked := time.Now()
		refusedWithin(t, "revoked execution token of "+tis[0].taskID, acked, http.StatusForbidden, get(b, variablePath("rv"), exec))
		var n int
		d.queryRow(`SELECT count(*) FROM revoked_token WHERE jti = $1 AND exp > now()`, []any{jti(t, exec)}, &n)
		if n != 1 {
			t.Errorf("revoked_token holds %d rows for the revoked jti, want 1 (Airflow's table)", n)
		}
	})

	t.Run("REST token logged out on another replica", func(t *testing.T) {
		_, tok := restLogin(t, b, "/auth/token", "x", xPassword)
		if r := get(b, "/api/v2/variables", tok)(); r.status != 200 {
			t.Fatalf("before logout: %s", r)
		}
		wantNoContent(t, send(t, a, "POST", "/auth/logout", "Bearer "+tok, ""), 204)
		refusedWithin(t, "logged-out REST token", time.Now(), http.StatusUnauthorized, get(b, "/api/v2/variables", tok))
	})

	t.Run("user removed on another replica", func(t *testing.T) {
		_, tok := restLogin(t, b, "/auth/token", "x", xPassword)
		if r := get(b, "/api/v2/variables", tok)(); r.status != 200 {
			t.Fatalf("before removal: %s", r)
		}
		wantNoContent(t, send(t, a, "DELETE", "/api/v2/users/x", "Bearer "+root, ""), 204)
		refusedWithin(t, "token of a removed user", time.Now(), http.StatusUnauthorized, get(b, "/api/v2/variables", tok))
		if r, _ := restLogin(t, b, "/auth/token", "x", xPassword); r.status != http.StatusUnauthorized {
			t.Errorf("%s: a removed user logged in on the other replica", r)
		}
	})
	for _, s := range replicas {
		s.stop()
	}
}
