package integration_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// operator runs the CLI as an operator does: with its own credentials file
// (TASKGATE_CREDENTIALS, so a developer's own `taskgate login` never
// leaks in) and a data directory for when no server is configured.
type operator struct {
	t       *testing.T
	dataDir string
	creds   string
}

func newOperator(t *testing.T, dataDir string) *operator {
	return &operator{t: t, dataDir: dataDir, creds: filepath.Join(t.TempDir(), "config", "credentials.json")}
}

// run runs `taskgate --data-dir D args...` with stdin and extra environment.
func (o *operator) run(env []string, stdin string, args ...string) cliResult {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"--data-dir", o.dataDir}, args...)...)
	cmd.Env = baseEnv(append([]string{"TASKGATE_CREDENTIALS=" + o.creds}, env...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		o.t.Fatalf("taskgate %s: did not finish within %s", strings.Join(args, " "), cliTimeout)
	case err == nil:
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		o.t.Fatalf("taskgate %s: %v", strings.Join(args, " "), err)
	}
	collected.addLog("cli "+strings.Join(args[:min(2, len(args))], " ")+" ("+o.t.Name()+")", res.stderr, false)
	return res
}

// must runs a command that must succeed and returns its stdout.
func (o *operator) must(stdin string, args ...string) string {
	o.t.Helper()
	r := o.run(nil, stdin, args...)
	if r.code != 0 {
		o.t.Fatalf("taskgate %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// addUser creates a user with --password-stdin and records the password
// for the log scan.
func (o *operator) addUser(name, role, password string) {
	o.t.Helper()
	collected.addSecret("password of "+name, password)
	o.must(password+"\n", "users", "add", name, "--role", role, "--password-stdin")
}

// login runs `taskgate login` and returns the stored token.
func (o *operator) login(server, user, password string) string {
	o.t.Helper()
	o.must(password+"\n", "login", "--server", server, "--username", user, "--password-stdin")
	checkFileMode(o.t, o.creds, 0o600)
	var c struct {
		Server string `json:"server"`
		Token  string `json:"token"`
	}
	b, err := os.ReadFile(o.creds)
	if err != nil {
		o.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		o.t.Fatalf("credentials file is not JSON: %v", err)
	}
	if c.Server != server || c.Token == "" {
		o.t.Fatalf("credentials file holds server %q and a token of %d bytes; want %q and a token", c.Server, len(c.Token), server)
	}
	collected.addToken("REST token of `taskgate login`", c.Token)
	return c.Token
}

// lines splits a command's output into non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// anyLine reports whether some line contains every one of parts.
func anyLine(out string, parts ...string) bool {
	for _, l := range lines(out) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}

func checkFileMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %04o, want %04o", path, got, want)
	}
}

// readToken reads a token file written by `components register`.
func readToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(b))
	collected.addToken("component token", tok)
	return tok
}

// restLogin is POST /auth/token (or /auth/token/cli): the response and the
// access token, "" when refused.
func restLogin(t *testing.T, base, path, user, password string) (*response, string) {
	t.Helper()
	r := send(t, base, "POST", path, "", mustJSON(t, map[string]string{"username": user, "password": password}))
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if r.status == http.StatusCreated {
		if err := json.Unmarshal(r.body, &body); err != nil || body.AccessToken == "" {
			t.Fatalf("%s: no access_token", r)
		}
		collected.addToken("REST token", body.AccessToken)
	}
	return r, body.AccessToken
}

// sendWith is send for requests that carry their token elsewhere than the
// Authorization header (cookie, query): the same checks, the request made
// by hand.
func sendWith(t *testing.T, base, method, path string, edit func(*http.Request)) *response {
	t.Helper()
	req, err := newRequest(method, base+path, "", "cid-"+strings.ReplaceAll(t.Name(), "/", "-"), nil)
	if err != nil {
		t.Fatal(err)
	}
	edit(req)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := &response{method: method, path: path, status: resp.StatusCode, header: resp.Header, body: b}
	if r.status >= 500 {
		t.Errorf("%s: server error", r)
	}
	return r
}

// jti returns a token's jti without verifying it (the gateway's REST
// tokens are verified by the gateway; here only the id is needed).
func jti(t *testing.T, tok string) string {
	t.Helper()
	id, _ := payload(t, tok)["jti"].(string)
	if id == "" {
		t.Fatal("token has no jti")
	}
	return id
}

// payload decodes a token's claims without verifying it.
func payload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT (%d segments)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("token payload: %v", err)
	}
	return c
}

// jsonShape replaces every leaf of a JSON value by its type, so that two
// documents can be compared for structure regardless of ids and tokens.
func jsonShape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = jsonShape(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonShape(e)
		}
		return out
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return "?"
}

// sameWorkloadOutput requires two `workloads queue` outputs to have the
// same fields and the same layout (indented JSON, one trailing newline).
func sameWorkloadOutput(t *testing.T, offline, remote string) {
	t.Helper()
	var a, b any
	if err := json.Unmarshal([]byte(offline), &a); err != nil {
		t.Fatalf("offline workload: %v", err)
	}
	if err := json.Unmarshal([]byte(remote), &b); err != nil {
		t.Fatalf("workload through the server: %v", err)
	}
	if diff := cmp.Diff(jsonShape(a), jsonShape(b)); diff != "" {
		t.Errorf("workload through the server differs in shape from the offline one (-offline +server):\n%s", diff)
	}
	for name, out := range map[string]string{"offline": offline, "server": remote} {
		var compact, indented bytes.Buffer
		if err := json.Compact(&compact, []byte(out)); err != nil {
			t.Fatal(err)
		}
		if err := json.Indent(&indented, compact.Bytes(), "", "  "); err != nil {
			t.Fatal(err)
		}
		if indented.String()+"\n" != out {
			t.Errorf("%s workload is not printed as indented JSON:\n%s", name, out)
		}
	}
}
