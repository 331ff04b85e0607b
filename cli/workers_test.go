package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/internal/fakeapi"
	"github.com/taskgate/taskgate/workload"
)

// TestQueueWorkersThroughServer: `workloads test-connection` and
// `workloads queue-callback` call the admin API with the operator's token.
func TestQueueWorkersThroughServer(t *testing.T) {
	const token = "the-stored-rest-token"
	api := fakeapi.New(t, fakeapi.Table(map[string]fakeapi.Reply{
		"POST /auth/token/cli": {Status: 201, Body: `{"access_token":"` + token + `"}`},
		"POST /api/v2/connection-tests": {Status: 201, Body: `{"type":"TestConnection","token":"ct-token",` +
			`"connection_test_id":"0190e3e4-3c2b-7a8e-9d0e-000000000c01","connection_id":"pg"}`},
		"POST /api/v2/callbacks": {Status: 201, Body: `{"type":"ExecuteCallback","token":"cb-token",` +
			`"callback":{"id":"0190e3e4-3c2b-7a8e-9d0e-0000000000cb","fetch_method":"import_path","data":{}}}`},
	}))
	dir := t.TempDir()
	environ := []string{envCredentials + "=" + filepath.Join(dir, "credentials.json")}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out := runCLI(t, environ, stdin, append([]string{"--data-dir", filepath.Join(dir, "data")}, args...)...)
		if out.err != nil {
			t.Fatalf("taskgate %s: %v\nstderr: %s", strings.Join(args, " "), out.err, out.stderr)
		}
		return out.stdout
	}
	must("pass-word-1\n", "login", "--server", api.URL+"/", "--username", "admin", "--password-stdin")
	api.Take()
	out := must("", "workloads", "test-connection", "--conn-id", "pg", "--conn-type", "postgres", "--host", "db",
		"--port", "5432", "--commit-on-success")
	var w workload.TestConnection
	if err := json.Unmarshal([]byte(out), &w); err != nil || w.Token != "ct-token" {
		t.Errorf("test-connection printed %q: %v", out, err)
	}
	out = must("", "workloads", "queue-callback", "--path", "m.f", "--kwargs", `{"a":1}`)
	var cb workload.ExecuteCallback
	if err := json.Unmarshal([]byte(out), &cb); err != nil || cb.Token != "cb-token" {
		t.Errorf("queue-callback printed %q: %v", out, err)
	}
	got := api.Take()
	for i := range got {
		if got[i].Auth != "Bearer "+token {
			t.Errorf("%s: Authorization %q", got[i].Path, got[i].Auth)
		}
		got[i].Auth, got[i].Header = "", nil
	}
	want := []fakeapi.Request{
		{Method: "POST", Path: "/api/v2/connection-tests", Body: `{"commit_on_success":true,"conn_type":"postgres",` +
			`"connection_id":"pg","extra":null,"host":"db","login":null,"password":null,"port":5432,"schema":null}`},
		{Method: "POST", Path: "/api/v2/callbacks", Body: `{"kwargs":{"a":1},"path":"m.f"}`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// TestQueueWorkersOnDataDirectory: offline, the same commands write the
// data directory and print workloads with tokens.
func TestQueueWorkersOnDataDirectory(t *testing.T) {
	dir := t.TempDir()
	environ := []string{envCredentials + "=" + filepath.Join(dir, "none.json")}
	run := func(args ...string) cliOutput {
		t.Helper()
		return runCLI(t, environ, "", append([]string{"--data-dir", filepath.Join(dir, "data")}, args...)...)
	}
	out := run("workloads", "test-connection", "--conn-id", "pg", "--conn-type", "postgres", "--password", "pw")
	var w workload.TestConnection
	if out.err != nil || json.Unmarshal([]byte(out.stdout), &w) != nil || w.Type != "TestConnection" || w.Token == "" ||
		w.ConnectionID != "pg" {
		t.Errorf("test-connection: %v %q", out.err, out.stdout)
	}
	out = run("workloads", "queue-callback", "--path", "m.f")
	var cb workload.ExecuteCallback
	if out.err != nil || json.Unmarshal([]byte(out.stdout), &cb) != nil || cb.Type != "ExecuteCallback" || cb.Token == "" {
		t.Errorf("queue-callback: %v %q", out.err, out.stdout)
	}
	if out := run("workloads", "queue-callback", "--path", "m.f", "--kwargs", "[1]"); out.err == nil {
		t.Error("kwargs not an object accepted")
	}
	if out := run("workloads", "test-connection", "--conn-id", "pg"); out.err == nil {
		t.Error("a test without a type accepted")
	}
}
