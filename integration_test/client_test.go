package integration_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

// What Airflow's Task SDK sends on every call.
const (
	apiVersion = "2026-06-30"
	// newestAPIVersion is the newest version of Airflow's bundle, which
	// clients of the newest routes speak.
	newestAPIVersion = "2026-11-13"
	sdkUserAgent     = "apache-airflow-task-sdk/3.2.0 (Python/3.12.7)"
	taskAudience     = "urn:airflow.apache.org:task"
)

// httpClient is bounded so a hung server fails the test instead of hanging it.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// response is one answer of the gateway.
type response struct {
	method, path string
	status       int
	header       http.Header
	body         []byte
}

func (r *response) String() string {
	return fmt.Sprintf("%s %s → %d %s", r.method, r.path, r.status, r.body)
}

// newRequest builds a request with the Task SDK's headers. authz is the
// whole Authorization header value ("" sends none).
func newRequest(method, rawURL, authz, correlationID string, body io.Reader) (*http.Request, error) {
	return newRequestAt(apiVersion, method, rawURL, authz, correlationID, body)
}

// newRequestAt is newRequest from a client of Execution API version.
func newRequestAt(version, method, rawURL, authz, correlationID string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Airflow-API-Version", version)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Correlation-Id", correlationID)
	req.Header.Set("User-Agent", sdkUserAgent)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return req, nil
}

// send makes one request and checks what every response must satisfy:
// the correlation id sent comes back, the served API version is stamped,
// nothing is a 5xx, and a refused request (401/403) never carries a
// renewed token. Every token sent or received is recorded for the log scan.
func send(t *testing.T, base, method, path, authz, body string) *response {
	t.Helper()
	return sendVersion(t, base, apiVersion, method, path, authz, body)
}

// sendVersion is send from a client of Execution API version.
func sendVersion(t *testing.T, base, version, method, path, authz, body string) *response {
	t.Helper()
	if tok, ok := strings.CutPrefix(authz, "Bearer "); ok {
		collected.addToken("token sent", tok)
	}
	cid, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := newRequestAt(version, method, base+path, authz, cid.String(), rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := &response{method: method, path: path, status: resp.StatusCode, header: resp.Header, body: b}
	if tok := r.header.Get("Refreshed-API-Token"); tok != "" {
		collected.addToken("Refreshed-API-Token received", tok)
	}
	if got := r.header.Get("Correlation-Id"); got != cid.String() {
		t.Errorf("%s: Correlation-Id = %q, want %q (the value sent)", r, got, cid)
	}
	if got := r.header.Get("Airflow-API-Version"); got != version {
		t.Errorf("%s: Airflow-API-Version = %q, want %q", r, got, version)
	}
	if ct := r.header.Get("Content-Type"); len(r.body) > 0 && !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", r, ct)
	}
	if r.status >= 500 {
		t.Errorf("%s: server error", r)
	}
	if (r.status == http.StatusUnauthorized || r.status == http.StatusForbidden) && r.header.Get("Refreshed-API-Token") != "" {
		t.Errorf("%s: a refused request carries a Refreshed-API-Token", r)
	}
	return r
}

// worker is a Task SDK client: it sends its bearer token and swaps it for
// the Refreshed-API-Token of any successful response.
type worker struct {
	t     *testing.T
	base  string
	token string
}

func newWorker(t *testing.T, base, token string) *worker {
	return &worker{t: t, base: base, token: token}
}

func (w *worker) do(method, path, body string) *response {
	w.t.Helper()
	authz := ""
	if w.token != "" {
		authz = "Bearer " + w.token
	}
	r := send(w.t, w.base, method, path, authz, body)
	if tok := r.header.Get("Refreshed-API-Token"); tok != "" && r.status >= 200 && r.status < 300 {
		w.token = tok
	}
	return r
}

// startedToken starts the queued task instance q (its /run with the
// workload token) and returns the execution token it got: a token that may
// act, since only a running try's token does.
func startedToken(t *testing.T, base string, q queued) string {
	t.Helper()
	w := newWorker(t, base, q.Token)
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), host{"started-" + q.TaskID, "airflow", 7999}.runPayload(t)), 200)
	return w.token
}

// Paths. Every segment is escaped as httpx would send it.

func tiPath(id, action string) string {
	return "/execution/task-instances/" + url.PathEscape(id) + "/" + action
}

func variablePath(key string) string { return "/execution/variables/" + key }

func connectionPath(id string) string { return "/execution/connections/" + url.PathEscape(id) }

func xcomPath(dagID, runID, taskID, key string) string {
	return "/execution/xcoms/" + url.PathEscape(dagID) + "/" + url.PathEscape(runID) + "/" +
		url.PathEscape(taskID) + "/" + key
}

func (q queued) xcomPath(key string) string { return xcomPath(q.DagID, q.RunID, q.TaskID, key) }

// Payloads as the Task SDK serializes them.

func sdkTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// host is one worker process: where a task runs.
type host struct {
	hostname, unixname string
	pid                int
}

func (h host) runPayload(t *testing.T) string {
	return mustJSON(t, map[string]any{
		"state": "running", "hostname": h.hostname, "unixname": h.unixname, "pid": h.pid,
		"start_date": sdkTime(time.Now()),
	})
}

func (h host) heartbeat(t *testing.T) string {
	return mustJSON(t, map[string]any{"hostname": h.hostname, "pid": h.pid})
}

func successPayload(t *testing.T) string {
	return mustJSON(t, map[string]any{
		"state": "success", "end_date": sdkTime(time.Now()), "task_outlets": []any{}, "outlet_events": []any{},
	})
}

func failedPayload(t *testing.T) string {
	return mustJSON(t, map[string]any{"state": "failed", "end_date": sdkTime(time.Now())})
}

// Assertions.

// wantJSON requires the status and a body equal, as JSON, to want: the same
// fields, no more and no fewer, with the same values.
func wantJSON(t *testing.T, r *response, status int, want string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d", r, r.status, status)
	}
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON %s: %v", want, err)
	}
	if err := json.Unmarshal(r.body, &g); err != nil {
		t.Errorf("%s: body is not JSON: %v", r, err)
		return
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("%s: body (-want +got):\n%s", r, diff)
	}
}

// wantNoContent requires the status and an empty body.
func wantNoContent(t *testing.T, r *response, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d", r, r.status, status)
	}
	if len(r.body) != 0 {
		t.Errorf("%s: body %q, want none", r, r.body)
	}
}

// mustStatus stops the test when a step the rest depends on fails.
func mustStatus(t *testing.T, r *response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d", r, r.status, status)
	}
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}
