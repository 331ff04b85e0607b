package integration_test

import (
	"net/http"
	"strings"
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
// (measured from acknowledged, the moment the change was acknowledged)
// plus the polling's own slack.
func refusedWithin(t *testing.T, what string, acknowledged time.Time, status int, do func() *plainResult) {
	t.Helper()
	var last string
	deadline := acknowledged.Add(revocationBound + 2*time.Second)
	for time.Now().Before(deadline) {
		r := do()
		if r.status == status {
			if took := time.Since(acknowledged); took > revocationBound+500*time.Millisecond {
				t.Errorf("%s: refused %s after the change, want within %s", what, took.Round(time.Millisecond), revocationBound)
			} else {
				t.Logf("%s: refused by the other replica %s after the change", what, took.Round(time.Millisecond))
			}
			return
		}
		if r.status != http.StatusOK {
			t.Fatalf("%s: %s while waiting for %d", what, r, status)
		}
		last = r.String()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still honoured %s after the change (bound %s); last answer %s",
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

// TestPostgresReadsFollowWritesElsewhere: a replica that served a variable
// or a connection (and may keep its body) serves, within revocationBound,
// the value written since by Airflow itself (the rows updated as Airflow's
// models update them) or through another replica.
func TestPostgresReadsFollowWritesElsewhere(t *testing.T) {
	d := newPGDeployment(t)
	replicas := d.startReplicas(t, 2, noAuthLimit)
	a, b := replicas[0].URL, replicas[1].URL
	d.insertVariable("shared_var", "v1", "")
	collected.addSecret("connection password", connPassword)
	d.insertConnection(afConnection{connID: "shared_conn", connType: "postgres", host: "db-1.internal",
		login: "etl", password: connPassword, port: 5432, extra: "{}"})
	_, tokens, _ := startRunning(t, d, []string{a}, "cache_dag", 1)
	tok := tokens[0]
	client := newPooledClient(2)
	defer client.CloseIdleConnections()
	read := func(base, path string) *plainResult {
		r, err := doPlain(client, "GET", base+path, taskHeaders(tok), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return r
	}
	// servesWithin polls replica b until the body holds want.
	servesWithin := func(what, path, want string, since time.Time) {
		t.Helper()
		var last string
		for time.Now().Before(since.Add(revocationBound + 2*time.Second)) {
			r := read(b, path)
			if r.status == http.StatusOK && strings.Contains(string(r.body), want) {
				if took := time.Since(since); took > revocationBound+500*time.Millisecond {
					t.Errorf("%s: the new value served %s after the write, want within %s", what, took.Round(time.Millisecond), revocationBound)
				}
				return
			}
			last = r.String()
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("%s: replica still serves %s %s after the write (bound %s)", what, last,
			time.Since(since).Round(time.Millisecond), revocationBound)
	}
	// Warm replica b: twice, so that a cache would hold the bodies.
	for range 2 {
		if r := read(b, variablePath("shared_var")); r.status != 200 || !strings.Contains(string(r.body), `"v1"`) {
			t.Fatalf("variable before the writes: %s", r)
		}
		if r := read(b, connectionPath("shared_conn")); r.status != 200 || !strings.Contains(string(r.body), "db-1.internal") {
			t.Fatalf("connection before the writes: %s", r)
		}
	}

	// Airflow's Variable.set: the row updated, encrypted.
	d.exec(`UPDATE variable SET val = $1 WHERE key = 'shared_var'`, fernetEncrypt(t, d.fernetKey, []byte("v2")))
	servesWithin("variable updated by Airflow", variablePath("shared_var"), `"v2"`, time.Now())

	// A task's write through the other replica.
	mustStatus(t, send(t, a, "PUT", variablePath("shared_var"), "Bearer "+tok, `{"val":"v3","description":null}`), 201)
	servesWithin("variable written through another replica", variablePath("shared_var"), `"v3"`, time.Now())

	// Airflow's connection edit.
	d.exec(`UPDATE connection SET host = 'db-2.internal' WHERE conn_id = 'shared_conn'`)
	servesWithin("connection updated by Airflow", connectionPath("shared_conn"), "db-2.internal", time.Now())

	// A variable deleted by Airflow is gone for the replica too.
	d.exec(`DELETE FROM variable WHERE key = 'shared_var'`)
	since := time.Now()
	for {
		r := read(b, variablePath("shared_var"))
		if r.status == http.StatusNotFound {
			break
		}
		if time.Since(since) > revocationBound+2*time.Second {
			t.Errorf("variable deleted by Airflow: replica still answers %s after %s", r, time.Since(since).Round(time.Millisecond))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, s := range replicas {
		s.stop()
	}
}
