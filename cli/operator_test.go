package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/internal/fakeapi"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/worker"
	"github.com/taskgate/taskgate/workload"
)

// ----- the credentials file

func TestSaveCredentials(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config", "taskgate")
	path := filepath.Join(dir, "credentials.json")
	want := credentials{Server: "http://127.0.0.1:8080", Token: "tok-1"}
	if err := saveCredentials(path, want); err != nil {
		t.Fatal(err)
	}
	checkMode(t, path, 0o600)
	if runtime.GOOS != "windows" {
		checkMode(t, dir, 0o700|fs.ModeDir)
	}
	got, err := loadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("loaded credentials (-want +got):\n%s", diff)
	}

	// Replacing a file that someone made readable makes it private again.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	want.Token = "tok-2"
	if err := saveCredentials(path, want); err != nil {
		t.Fatal(err)
	}
	checkMode(t, path, 0o600)
	if got, err := loadCredentials(path); err != nil || got.Token != "tok-2" {
		t.Errorf("after replacing: %+v, %v", got, err)
	}
	checkOnly(t, dir, "credentials.json")
}

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, content string
		want          *credentials
		wantErr       string
	}{
		{"trailing slash dropped", `{"server":"https://gw.example/prefix/","token":"t"}`,
			&credentials{Server: "https://gw.example/prefix", Token: "t"}, ""},
		{"not JSON", `{"server":`, nil, "damaged"},
		{"no token", `{"server":"http://127.0.0.1:1"}`, nil, "damaged"},
		{"not a URL", `{"server":"ftp://x","token":"t"}`, nil, "http:// or https://"},
		{"credentials in the URL", `{"server":"http://u:p@x","token":"t"}`, nil, "without credentials"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := loadCredentials(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadCredentials = %+v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if got, err := loadCredentials(filepath.Join(dir, "missing")); got != nil || err != nil {
		t.Errorf("missing file: %+v, %v; want nil, nil", got, err)
	}
}

func TestCredentialsPath(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		t.Skip("the XDG rules apply to Unix systems other than Apple's")
	}
	for _, tt := range []struct {
		name    string
		environ []string
		want    string
	}{
		{"override", []string{"TASKGATE_CREDENTIALS=/x/creds.json", "HOME=/home/u"}, "/x/creds.json"},
		{"XDG_CONFIG_HOME", []string{"XDG_CONFIG_HOME=/xdg", "HOME=/home/u"}, "/xdg/taskgate/credentials.json"},
		{"HOME", []string{"HOME=/home/u"}, "/home/u/.config/taskgate/credentials.json"},
		{"the last assignment wins", []string{"HOME=/a", "HOME=/b"}, "/b/.config/taskgate/credentials.json"},
		{"relative XDG_CONFIG_HOME", []string{"XDG_CONFIG_HOME=rel", "HOME=/home/u"}, ""},
		{"nothing", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := (&cliEnv{environ: tt.environ}).credentialsPath()
			if tt.want == "" {
				if err == nil {
					t.Fatalf("credentialsPath = %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("credentialsPath = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestRemote: which server a command goes to, with which token — and that a
// stored token is never sent to a server it was not issued by.
func TestRemote(t *testing.T) {
	dir := t.TempDir()
	stored := filepath.Join(dir, "stored.json")
	if err := saveCredentials(stored, credentials{Server: "http://gw:8080", Token: "stored-token"}); err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(dir, "damaged.json")
	if err := os.WriteFile(damaged, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.json")
	type want struct{ server, token string }
	for _, tt := range []struct {
		name    string
		creds   string
		token   string // TASKGATE_TOKEN
		server  string // --server
		want    *want  // nil: the data directory
		wantErr string
	}{
		{"nothing configured", missing, "", "", nil, ""},
		{"stored credentials", stored, "", "", &want{"http://gw:8080", "stored-token"}, ""},
		{"--server naming the stored server", stored, "", "http://gw:8080/", &want{"http://gw:8080", "stored-token"}, ""},
		{"--server naming another server", stored, "", "http://other:8080", nil, "not logged in to http://other:8080"},
		{"--server without any token", missing, "", "http://gw:8080", nil, "taskgate login --server http://gw:8080"},
		{"--server with TASKGATE_TOKEN", stored, "env-token", "http://other:8080", &want{"http://other:8080", "env-token"}, ""},
		{"TASKGATE_TOKEN ignores a damaged file", damaged, "env-token", "http://gw:8080", &want{"http://gw:8080", "env-token"}, ""},
		{"TASKGATE_TOKEN without a server", missing, "env-token", "", nil, "pass --server"},
		{"damaged file", damaged, "", "", nil, "damaged"},
		{"bad --server", missing, "env-token", "gw:8080", nil, "http:// or https://"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			environ := []string{envCredentials + "=" + tt.creds}
			if tt.token != "" {
				environ = append(environ, envToken+"="+tt.token)
			}
			api, err := (&cliEnv{environ: environ}).remote(tt.server)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("remote = %v, %v; want an error containing %q", api, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "stored-token") || strings.Contains(err.Error(), "env-token") {
					t.Errorf("error %q holds a token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == nil && api != nil:
				t.Fatalf("remote = %s, want the data directory", api.server)
			case tt.want != nil && api == nil:
				t.Fatalf("remote = the data directory, want %s", tt.want.server)
			case tt.want != nil && (api.server != tt.want.server || api.token != tt.want.token):
				t.Fatalf("remote = %s with %q, want %s with %q", api.server, api.token, tt.want.server, tt.want.token)
			}
		})
	}
}

func TestReadPassword(t *testing.T) {
	for _, tt := range []struct {
		name, stdin, want string
	}{
		{"newline", "pass word\n", "pass word"},
		{"CRLF", "pass word\r\n", "pass word"},
		{"no newline", "pass word", "pass word"},
		{"first line only", "one\ntwo\n", "one"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := &cliEnv{stdin: strings.NewReader(tt.stdin), stderr: io.Discard}
			got, err := e.readPassword(bufio.NewReader(e.stdin), true, true)
			if err != nil || got != tt.want {
				t.Fatalf("readPassword = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	e := &cliEnv{stdin: strings.NewReader(""), stderr: io.Discard}
	if _, err := e.readPassword(bufio.NewReader(e.stdin), true, false); err == nil {
		t.Error("an empty standard input gave a password")
	}
	// Not a terminal, no --password-stdin: a usage error, and no prompt.
	var stderr bytes.Buffer
	e = &cliEnv{stdin: strings.NewReader("secret\n"), stderr: &stderr}
	var uerr *usageError
	if _, err := e.readPassword(bufio.NewReader(e.stdin), false, false); !errors.As(err, &uerr) {
		t.Errorf("readPassword from a pipe without --password-stdin: %v, want a usage error", err)
	}
	if stderr.Len() != 0 {
		t.Errorf("prompted on a pipe: %q", stderr.String())
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	if isTerminal(devNull) {
		t.Error("the null device counts as a terminal")
	}
}

// ----- commands against a fake server

type cliOutput struct {
	stdout, stderr string
	err            error
}

func runCLI(t *testing.T, environ []string, stdin string, args ...string) cliOutput {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, environ, strings.NewReader(stdin), &stdout, &stderr)
	return cliOutput{stdout.String(), stderr.String(), err}
}

func TestCommandsThroughServer(t *testing.T) {
	const token = "the-stored-rest-token"
	workloadJSON := `{"type":"ExecuteTask","token":"wl","ti":{"id":"01","dag_version_id":"01","task_id":"t","dag_id":"d",` +
		`"run_id":"r","try_number":1,"map_index":-1,"pool_slots":1,"queue":"default","priority_weight":1,` +
		`"parent_context_carrier":null,"context_carrier":null},"dag_rel_path":"","bundle_info":{"name":"dags-folder","version":null},` +
		`"log_path":"dag_id=d/run_id=r/task_id=t/attempt=1.log","sentry_integration":""}`
	ti := func(task, state string) string {
		return `{"id":"id-` + task + `","task_id":"` + task + `","dag_id":"d","dag_run_id":"r/1","map_index":-1,` +
			`"try_number":1,"state":"` + state + `","start_date":null,"end_date":null}`
	}
	api := fakeapi.New(t, fakeapi.Table(map[string]fakeapi.Reply{
		"POST /api/v2/variables":                             {Status: 409, Body: `{"detail":"The Variable with key: ` + "`a/b c`" + ` already exists"}`},
		"PATCH /api/v2/variables/a/b%20c":                    {Status: 200, Body: `{"key":"a/b c","value":"v","description":null,"is_encrypted":false}`},
		"GET /api/v2/variables/k":                            {Status: 200, Body: `{"key":"k","value":"the value","description":null,"is_encrypted":false}`},
		"POST /api/v2/workloads":                             {Status: 201, Body: workloadJSON},
		"GET /api/v2/dags/~/dagRuns/~/taskInstances":         {Status: 200, Body: `{"task_instances":[` + ti("a", "queued") + `,` + ti("b", "running") + `],"total_entries":2}`},
		"PATCH /api/v2/dags/d/dagRuns/r%2F1/taskInstances/t": {Status: 200, Body: ti("t", "failed")},
		"POST /api/v2/tokens/revoke":                         {Status: 204},
		"POST /api/v2/components": {Status: 201, Body: `{"id":"0c5f8d52-0000-4000-8000-000000000001","kind":"triggerer",` +
			`"name":"trig","created_at":"2026-11-27T12:00:00Z","token":"component-token"}`},
		"POST /api/v2/users":    {Status: 403, Body: `{"detail":"Forbidden"}`},
		"GET /api/v2/users":     {Status: 401, Body: `{"detail":"Token has been revoked"}`},
		"POST /auth/token/cli":  {Status: 201, Body: `{"access_token":"` + token + `"}`},
		"POST /auth/logout":     {Status: 204},
		"GET /api/v2/redirects": {Status: 307},
	}))
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.json")
	environ := []string{envCredentials + "=" + creds}
	dataDir := filepath.Join(dir, "data")
	cli := func(stdin string, args ...string) cliOutput {
		t.Helper()
		return runCLI(t, environ, stdin, append([]string{"--data-dir", dataDir}, args...)...)
	}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out := cli(stdin, args...)
		if out.err != nil {
			t.Fatalf("taskgate %s: %v\nstderr: %s", strings.Join(args, " "), out.err, out.stderr)
		}
		return out.stdout
	}
	wantRequests := func(want ...fakeapi.Request) {
		t.Helper()
		got := api.Take()
		for i := range got {
			if got[i].Auth != "Bearer "+token && got[i].Path != "/auth/token/cli" {
				t.Errorf("%s %s: Authorization %q", got[i].Method, got[i].Path, got[i].Auth)
			}
			got[i].Auth, got[i].Header = "", nil
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("requests (-want +got):\n%s", diff)
		}
	}

	if out := must("pass-word-1\n", "login", "--server", api.URL+"/", "--username", "admin", "--password-stdin"); !strings.Contains(out, "Logged in") {
		t.Errorf("login printed %q", out)
	}
	wantRequests(fakeapi.Request{Method: "POST", Path: "/auth/token/cli", Body: `{"password":"pass-word-1","username":"admin"}`})
	checkMode(t, creds, 0o600)
	if c, err := loadCredentials(creds); err != nil || *c != (credentials{api.URL, token}) {
		t.Fatalf("stored credentials %+v, %v", c, err)
	}

	must("", "variables", "set", "a/b c", "v")
	wantRequests(
		fakeapi.Request{Method: "POST", Path: "/api/v2/variables", Body: `{"key":"a/b c","value":"v"}`},
		fakeapi.Request{Method: "PATCH", Path: "/api/v2/variables/a/b%20c", Body: `{"key":"a/b c","value":"v"}`})
	if out := must("", "variables", "get", "k"); out != "the value\n" {
		t.Errorf("variables get printed %q", out)
	}
	wantRequests(fakeapi.Request{Method: "GET", Path: "/api/v2/variables/k"})
	if out := cli("", "variables", "get", "missing"); out.err == nil || out.err.Error() != `variable "missing" not found` {
		t.Errorf("variables get missing: %v", out.err)
	}
	api.Take()

	// The workload is printed exactly as the data directory's version does.
	out := must("", "workloads", "queue", "--dag-id", "d", "--run-id", "r", "--task-id", "t")
	var w workload.ExecuteTask
	if err := json.Unmarshal([]byte(workloadJSON), &w); err != nil {
		t.Fatal(err)
	}
	var indented bytes.Buffer
	if err := writeJSON(&indented, w); err != nil {
		t.Fatal(err)
	}
	if out != indented.String() {
		t.Errorf("workloads queue printed\n%s\nwant\n%s", out, indented.String())
	}
	wantRequests(fakeapi.Request{Method: "POST", Path: "/api/v2/workloads",
		Body: `{"dag_id":"d","map_index":-1,"max_tries":0,"run_id":"r","task_id":"t","try_number":0}`})

	// --output writes the same document to a file only its owner can read.
	wlFile := filepath.Join(t.TempDir(), "workload.json")
	if out := must("", "workloads", "queue", "--dag-id", "d", "--run-id", "r", "--task-id", "t", "--output", wlFile); out != "" {
		t.Errorf("workloads queue --output printed %q", out)
	}
	checkMode(t, wlFile, 0o600)
	if b, err := os.ReadFile(wlFile); err != nil || string(b) != indented.String() {
		t.Errorf("workloads queue --output wrote %q (%v), want\n%s", b, err, indented.String())
	}
	wantRequests(fakeapi.Request{Method: "POST", Path: "/api/v2/workloads",
		Body: `{"dag_id":"d","map_index":-1,"max_tries":0,"run_id":"r","task_id":"t","try_number":0}`})

	out = must("", "tasks", "list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.Contains(lines[2], "running") {
		t.Errorf("tasks list printed\n%s", out)
	}
	wantRequests(fakeapi.Request{Method: "GET", Path: "/api/v2/dags/~/dagRuns/~/taskInstances", Query: "limit=1000&offset=0"})
	must("", "tasks", "mark", "d", "r/1", "t", "--state", "failed")
	wantRequests(fakeapi.Request{Method: "PATCH", Path: "/api/v2/dags/d/dagRuns/r%2F1/taskInstances/t", Query: "map_index=-1",
		Body: `{"new_state":"failed"}`})

	must("", "tokens", "revoke", "abc", "--exp", "2026-11-27T13:00:00+01:00")
	wantRequests(fakeapi.Request{Method: "POST", Path: "/api/v2/tokens/revoke", Body: `{"exp":"2026-11-27T12:00:00Z","jti":"abc"}`})

	tokenFile := filepath.Join(dir, "trig.token")
	if out := must("", "components", "register", "triggerer", "trig", "--token-file", tokenFile); out != "0c5f8d52-0000-4000-8000-000000000001\n" {
		t.Errorf("components register printed %q", out)
	}
	wantRequests(fakeapi.Request{Method: "POST", Path: "/api/v2/components", Body: `{"kind":"triggerer","name":"trig"}`})
	checkMode(t, tokenFile, 0o600)
	if b, _ := os.ReadFile(tokenFile); string(b) != "component-token" {
		t.Errorf("token file holds %q", b)
	}

	// Refusals say what to do.
	out403 := cli("long-enough-password\n", "users", "add", "bob", "--role", "viewer", "--password-stdin")
	if out403.err == nil || !strings.Contains(out403.err.Error(), "forbidden") {
		t.Errorf("users add refused with 403: %v", out403.err)
	}
	out401 := cli("", "users", "list")
	if out401.err == nil || !strings.Contains(out401.err.Error(), "taskgate login --server "+api.URL) {
		t.Errorf("users list refused with 401: %v, want advice to log in again", out401.err)
	}
	for _, o := range []cliOutput{out403, out401} {
		if strings.Contains(o.err.Error(), token) || strings.Contains(o.stderr, token) {
			t.Errorf("a message holds the token: %v %s", o.err, o.stderr)
		}
	}
	api.Take()

	if out := must("", "logout"); !strings.Contains(out, "Logged out") {
		t.Errorf("logout printed %q", out)
	}
	wantRequests(fakeapi.Request{Method: "POST", Path: "/auth/logout"})
	if _, err := os.Stat(creds); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("credentials file after logout: %v", err)
	}
	if out := cli("", "logout"); out.err == nil {
		t.Error("logout while logged out succeeded")
	}
}

// A logout that cannot reach the server keeps the credentials: deleting
// them would leave a live token nobody can revoke.
func TestLogoutKeepsCredentialsWhenServerUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	creds := filepath.Join(t.TempDir(), "credentials.json")
	if err := saveCredentials(creds, credentials{Server: url, Token: "kept-token"}); err != nil {
		t.Fatal(err)
	}
	out := runCLI(t, []string{envCredentials + "=" + creds}, "", "logout")
	if out.err == nil || !strings.Contains(out.err.Error(), "run logout again") {
		t.Fatalf("logout with the server down: %v", out.err)
	}
	if strings.Contains(out.err.Error(), "kept-token") {
		t.Errorf("error holds the token: %v", out.err)
	}
	if c, err := loadCredentials(creds); err != nil || c == nil || c.Token != "kept-token" {
		t.Errorf("credentials after a failed logout: %+v, %v", c, err)
	}
}

// With no server configured the commands work on the data directory: the
// way the first admin is created.
func TestCommandsOnDataDirectory(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	environ := []string{envCredentials + "=" + filepath.Join(dir, "none.json")}
	cli := func(stdin string, args ...string) cliOutput {
		t.Helper()
		return runCLI(t, environ, stdin, append([]string{"--data-dir", dataDir}, args...)...)
	}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out := cli(stdin, args...)
		if out.err != nil {
			t.Fatalf("taskgate %s: %v\nstderr: %s", strings.Join(args, " "), out.err, out.stderr)
		}
		return out.stdout
	}
	lines := func(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

	must("first-admin-password\n", "users", "add", "root", "--role", "admin", "--password-stdin")
	if out := cli("first-admin-password\n", "users", "add", "root", "--role", "admin", "--password-stdin"); out.err == nil ||
		out.err.Error() != `user "root" already exists` {
		t.Errorf("adding root again: %v", out.err)
	}
	if out := cli("short\n", "users", "add", "x", "--role", "viewer", "--password-stdin"); out.err == nil ||
		!strings.Contains(out.err.Error(), "password must be") {
		t.Errorf("a short password: %v", out.err)
	}
	if got := lines(must("", "users", "list")); len(got) != 2 || !strings.HasPrefix(got[1], "root") || !strings.Contains(got[1], "admin") {
		t.Errorf("users list: %q", got)
	}

	must("", "variables", "set", "k1", "v1")
	must("", "variables", "set", "k2", "v2", "--description", "d")
	if got := must("", "variables", "list"); got != "k1\nk2\n" {
		t.Errorf("variables list: %q", got)
	}
	must("", "variables", "delete", "k1")
	if out := cli("", "variables", "delete", "k1"); out.err == nil || out.err.Error() != `variable "k1" not found` {
		t.Errorf("deleting a missing variable: %v", out.err)
	}

	must("", "connections", "add", "db", "--conn-type", "postgres", "--host", "h", "--port", "5432", "--password", "pw-secret")
	var conn map[string]any
	if err := json.Unmarshal([]byte(must("", "connections", "get", "db")), &conn); err != nil {
		t.Fatal(err)
	}
	if conn["password"] != "***" || conn["host"] != "h" || conn["port"] != 5432.0 {
		t.Errorf("connections get: %v", conn)
	}
	if got := lines(must("", "connections", "list")); len(got) != 2 || !strings.HasPrefix(got[1], "db") || strings.Contains(got[1], "pw-secret") {
		t.Errorf("connections list: %q", got)
	}
	must("", "connections", "delete", "db")
	if out := cli("", "connections", "get", "db"); out.err == nil || out.err.Error() != `connection "db" not found` {
		t.Errorf("connections get after delete: %v", out.err)
	}

	var wl struct {
		TI struct {
			ID string `json:"id"`
		} `json:"ti"`
	}
	if err := json.Unmarshal([]byte(must("", "workloads", "queue", "--dag-id", "d", "--run-id", "r", "--task-id", "t")), &wl); err != nil {
		t.Fatal(err)
	}
	must("", "workloads", "queue", "--dag-id", "d", "--run-id", "r", "--task-id", "u", "--map-index", "2")
	wlFile := filepath.Join(dir, "v.json")
	if out := must("", "workloads", "queue", "--dag-id", "d", "--run-id", "r", "--task-id", "v", "--output", wlFile); out != "" {
		t.Errorf("workloads queue --output printed %q", out)
	}
	checkMode(t, wlFile, 0o600)
	if w, err := worker.TakeWorkload(wlFile, nil); err != nil || w.TI.TaskID != "v" {
		t.Errorf("the worker does not take the workload written with --output: %v, %+v", err, w.TI)
	}
	if out := cli("", "workloads", "queue", "--dag-id", "d", "--run-id", "r", "--task-id", "w", "--output", filepath.Join(dir, "missing", "w.json")); out.err == nil {
		t.Error("workloads queue --output into a missing directory succeeded")
	}
	if got := lines(must("", "tasks", "list", "--dag-id", "d")); len(got) != 4 {
		t.Errorf("tasks list: %q, want no task queued for an unwritable --output", got)
	}
	if got := lines(must("", "tasks", "list", "--dag-id", "d")); len(got) != 4 {
		t.Errorf("tasks list: %q", got)
	}
	if got := lines(must("", "tasks", "mark", "d", "r", "u", "--map-index", "2", "--state", "skipped")); len(got) != 2 ||
		!strings.Contains(got[1], "skipped") {
		t.Errorf("tasks mark: %q", got)
	}
	if got := lines(must("", "tasks", "list", "--state", "queued")); len(got) != 3 || !strings.Contains(got[1]+got[2], wl.TI.ID) {
		t.Errorf("tasks list --state queued: %q", got)
	}
	if out := cli("", "tasks", "mark", "d", "r", "u", "--state", "failed"); out.err == nil || !strings.Contains(out.err.Error(), "not found") {
		t.Errorf("marking an unknown map index: %v", out.err)
	}

	tokenFile := filepath.Join(dir, "dp.token")
	id := strings.TrimSpace(must("", "components", "register", "dag-processor", "dp-1", "--token-file", tokenFile))
	checkMode(t, tokenFile, 0o600)
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	claims := tokenClaims(t, string(tok))
	if claims["sub"] != id || claims["scope"] != "execution" || claims["component"] != "dag-processor" {
		t.Errorf("component token claims %v, want sub %s, scope execution, component dag-processor", claims, id)
	}
	if out := cli("", "components", "register", "dag-processor", "dp-1", "--token-file", tokenFile+"2"); out.err == nil {
		t.Error("registering dp-1 twice succeeded")
	}
	if _, err := os.Stat(tokenFile + "2"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused registration wrote a token file: %v", err)
	}
	if got := lines(must("", "components", "list")); len(got) != 2 || !strings.HasPrefix(got[1], id) {
		t.Errorf("components list: %q", got)
	}
	must("", "components", "remove", strings.ToUpper(id))
	if out := cli("", "components", "remove", id); out.err == nil {
		t.Error("removing a component twice succeeded")
	}

	before := time.Now()
	must("", "tokens", "revoke", "jti-offline")
	// An exp already past is refused, as the admin API refuses it.
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if out := cli("", "tokens", "revoke", "jti-expired", "--exp", past); out.err == nil || !strings.Contains(out.err.Error(), "in the past") {
		t.Errorf("tokens revoke --exp %s: %v, want a refusal saying exp is in the past", past, out.err)
	}
	must("", "users", "remove", "root")

	db, err := store.Open(filepath.Join(dataDir, "taskgate.db"), store.Options{OpenTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if revoked, err := db.IsRevoked(ctx, "jti-offline"); err != nil || !revoked {
		t.Errorf("IsRevoked(jti-offline) = %v, %v", revoked, err)
	}
	if revoked, err := db.IsRevoked(ctx, "jti-expired"); err != nil || revoked {
		t.Errorf("IsRevoked(jti-expired) = %v, %v; want a refused revocation not recorded", revoked, err)
	}
	// The default expiry outlives every REST token issued before it: it
	// is purged only after the longest lifetime (a day by default).
	if n, err := db.PurgeRevocations(ctx, before.Add(23*time.Hour)); err != nil || n != 0 {
		t.Errorf("purging before a day passed removed %d, %v", n, err)
	}
	if us, err := db.Users(ctx); err != nil || len(us) != 0 {
		t.Errorf("users after remove: %v, %v", us, err)
	}
}

func TestOperatorUsageErrors(t *testing.T) {
	environ := []string{envCredentials + "=" + filepath.Join(t.TempDir(), "none.json")}
	for _, args := range [][]string{
		{"users"},
		{"users", "add", "x"},
		{"users", "add", "x", "--role", "root"},
		{"users", "add", "-bad", "--role", "op"},
		{"users", "list", "extra"},
		{"tasks", "mark", "d", "r", "t"},
		{"tasks", "mark", "d", "r", "t", "--state", "running"},
		{"tokens", "revoke"},
		{"tokens", "revoke", "j", "--exp", "tomorrow"},
		{"components", "register", "scheduler", "s", "--token-file", "f"},
		{"components", "register", "triggerer", "t"},
		{"variables", "frobnicate"},
		{"connections", "add", "c"},
		{"login"},
		{"login", "--server", "not a url", "--username", "u", "--password-stdin"},
		{"users", "add", "bob", "--role", "op"}, // a pipe, no --password-stdin
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out := runCLI(t, environ, "", append([]string{"--data-dir", filepath.Join(t.TempDir(), "d")}, args...)...)
			var uerr *usageError
			if !errors.As(out.err, &uerr) {
				t.Errorf("err = %v, want a usage error", out.err)
			}
		})
	}
}

// ----- helpers

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode() & (fs.ModePerm | fs.ModeDir); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
}

// checkOnly requires dir to hold exactly the named entries: no temporary
// file left behind.
func checkOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if diff := cmp.Diff(names, got); diff != "" {
		t.Errorf("%s holds (-want +got):\n%s", dir, diff)
	}
}

// tokenClaims decodes a JWT's payload without verifying it.
func tokenClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d segments", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWarnSharedOutput: a workload printed into a file others may read is
// warned about; a private file or a pipe is not.
func TestWarnSharedOutput(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	for _, tt := range []struct {
		name string
		mode fs.FileMode
		warn bool
	}{
		{"world-readable file", 0o644, true},
		{"group-readable file", 0o640, true},
		{"private file", 0o600, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.OpenFile(filepath.Join(t.TempDir(), "out.json"), os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Chmod(tt.mode); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			warnSharedOutput(f, &stderr)
			if got := strings.Contains(stderr.String(), "--output FILE"); got != tt.warn {
				t.Errorf("warning %q, want one: %v", stderr.String(), tt.warn)
			}
		})
	}
	var stderr bytes.Buffer
	warnSharedOutput(&bytes.Buffer{}, &stderr)
	if stderr.Len() != 0 {
		t.Errorf("warned for a buffer: %q", stderr.String())
	}
}
