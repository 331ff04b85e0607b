package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/pgtest"
)

// startServer runs `taskgate serve` with environ on a free port until the
// test ends, and returns its base URL once it answers.
func startServer(t *testing.T, environ []string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", addr}, environ, strings.NewReader(""), io.Discard, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + addr
	for start := time.Now(); ; {
		resp, err := http.Get(base + "/execution/health")
		if err == nil {
			resp.Body.Close()
			return base
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v", err)
		default:
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("server on %s does not answer: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func call(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestServeReplicasOnAirflowDatabase: two `taskgate serve` processes on one
// Airflow database, each with its own data directory. A user added offline
// logs in on either; /health/ping checks the database; a token revoked on
// one replica is refused by the other within replicaBound; a user
// removed on one is refused by the other at once.
func TestServeReplicasOnAirflowDatabase(t *testing.T) {
	u := pgtest.NewAirflow(t)
	creds := filepath.Join(t.TempDir(), "credentials.json") // none: the offline commands use the database
	env := func() []string {
		return []string{
			"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=" + sqlAlchemyConn(u),
			"AIRFLOW__API_AUTH__JWT_SECRET=a-test-secret-of-32-bytes-length",
			"AIRFLOW__TASKGATE__BCRYPT_COST=4",
			"AIRFLOW__TASKGATE__DATA_DIR=" + t.TempDir(),
			envCredentials + "=" + creds,
		}
	}
	for _, name := range []string{"alice", "bob"} {
		if out := runCLI(t, env(), "password-of-"+name+"\n", "users", "add", name, "--role", "admin", "--password-stdin"); out.err != nil {
			t.Fatalf("users add %s: %v\n%s", name, out.err, out.stderr)
		}
	}
	a, b := startServer(t, env()), startServer(t, env())

	status, body := call(t, http.MethodGet, a+"/execution/health/ping", "", nil)
	if status != http.StatusOK || !strings.Contains(toJSON(body["ok"]), `"database"`) {
		t.Errorf("health/ping = %d %v, want 200 with database ok", status, body)
	}
	login := func(base, name string) string {
		t.Helper()
		status, body := call(t, http.MethodPost, base+"/auth/token/cli", "", map[string]string{"username": name, "password": "password-of-" + name})
		tok, _ := body["access_token"].(string)
		if status != http.StatusCreated || tok == "" {
			t.Fatalf("login %s on %s: %d %v", name, base, status, body)
		}
		return tok
	}
	users := func(base, tok string) int {
		t.Helper()
		status, _ := call(t, http.MethodGet, base+"/api/v2/users", tok, nil)
		return status
	}

	tok := login(a, "alice")
	if got := users(b, tok); got != http.StatusOK {
		t.Fatalf("a token of replica a on replica b: %d, want 200", got)
	}
	if status, body := call(t, http.MethodPost, a+"/auth/logout", tok, nil); status != http.StatusNoContent {
		t.Fatalf("logout: %d %v", status, body)
	}
	start := time.Now()
	for users(b, tok) != http.StatusUnauthorized {
		if time.Since(start) > 5*replicaBound {
			t.Fatalf("replica b still accepts the token revoked on a after %s", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("replica b refused the token revoked on replica a after %s (bound %s)", time.Since(start), replicaBound)

	bobs := login(b, "bob")
	alices := login(b, "alice")
	if status, body := call(t, http.MethodDelete, a+"/api/v2/users/bob", alices, nil); status/100 != 2 {
		t.Fatalf("remove bob on a: %d %v", status, body)
	}
	if got := users(b, bobs); got != http.StatusUnauthorized {
		t.Errorf("a removed user's token on the other replica: %d, want 401 at once", got)
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
