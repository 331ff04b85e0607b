package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/internal/fakeclock"
	"github.com/taskgate/taskgate/reissue"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/workload"
)

// fakeTokens is a signer and validator pair: tokens are opaque names mapped
// to the claims they were minted with. Unit tests of the gateway need no
// cryptography; the tokens package tests that.
type fakeTokens struct {
	prefix string
	mu     sync.Mutex
	n      int
	claims map[string]*scopes.Claims
	now    func() time.Time
}

func newFakeTokens(prefix string, now func() time.Time) *fakeTokens {
	return &fakeTokens{prefix: prefix, claims: map[string]*scopes.Claims{}, now: now}
}

func (f *fakeTokens) Sign(base *scopes.Claims, life time.Duration) (string, *scopes.Claims, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	now := f.now()
	c := &scopes.Claims{
		ID: fmt.Sprintf("%s-jti%d", f.prefix, f.n), Subject: base.Subject, Scope: base.Scope, Extra: base.Extra,
		IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(life), Audience: []string{"urn:airflow.apache.org:task"},
	}
	tok := fmt.Sprintf("%s.%d.%s", f.prefix, f.n, base.Scope)
	f.claims[tok] = c
	return tok, c, nil
}

// NewClaims is Sign's claims without a token.
func (f *fakeTokens) NewClaims(base *scopes.Claims, life time.Duration) (*scopes.Claims, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	now := f.now()
	return &scopes.Claims{
		ID: fmt.Sprintf("jti%d", f.n), Subject: base.Subject, Scope: base.Scope, Extra: base.Extra,
		IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(life), Audience: []string{"urn:airflow.apache.org:task"},
	}, nil
}

// SignVerbatim names the token after its jti, so signing the same claims
// twice gives the same token, as with real signatures.
func (f *fakeTokens) SignVerbatim(c *scopes.Claims) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := fmt.Sprintf("%s.%s.%s.%d", f.prefix, c.ID, c.Scope, c.ExpiresAt.Unix())
	cc := *c
	f.claims[tok] = &cc
	return tok, nil
}

func (f *fakeTokens) Validate(_ context.Context, raw string) (*scopes.Claims, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.claims[raw]
	if !ok {
		return nil, errors.New("unknown token")
	}
	if f.now().After(c.ExpiresAt.Add(10 * time.Second)) {
		return nil, errors.New("expired")
	}
	return c, nil
}

// mintClaims returns a token carrying base's claims.
func (f *fakeTokens) mintClaims(t *testing.T, base *scopes.Claims, life time.Duration) string {
	t.Helper()
	tok, _, err := f.Sign(base, life)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// mint returns a token for sub with the given scope and lifetime.
func (f *fakeTokens) mint(t *testing.T, sub string, scope scopes.TokenType, life time.Duration) string {
	t.Helper()
	tok, _, err := f.Sign(&scopes.Claims{Subject: sub, Scope: string(scope)}, life)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type harness struct {
	t      *testing.T
	srv    *Server
	db     *store.DB
	tokens *fakeTokens
	// rest mints REST tokens: a separate signer, as the REST audience
	// makes them in production, so neither kind passes the other's routes.
	rest  *fakeTokens
	clock *fakeclock.Clock
	logs  *observer.ObservedLogs
}

const (
	hostA = "worker-a"
	pidA  = 4242
)

// harnessOption adjusts the store's options before it opens, or the
// gateway's configuration before New.
type harnessOption struct {
	store  func(*store.Options)
	config func(*Config)
}

func withStoreOptions(f func(*store.Options)) harnessOption { return harnessOption{store: f} }
func withConfig(f func(*Config)) harnessOption              { return harnessOption{config: f} }

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	clk := fakeclock.New(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	sopts := store.Options{Now: clk.Now}
	for _, o := range opts {
		if o.store != nil {
			o.store(&sopts)
		}
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "taskgate.db"), sopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	toks := newFakeTokens("task", clk.Now)
	rest := newFakeTokens("rest", clk.Now)
	core, logs := observer.New(zap.DebugLevel)
	authn, err := auth.NewAuthenticator(auth.AuthenticatorConfig{Store: db, Now: clk.Now, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	ids := 0
	cfg := Config{
		Validator: toks, Signer: toks, Store: db, ExecutionTokenLifetime: 600 * time.Second,
		WorkloadTokenLifetime: time.Hour, APITokenLifetime: 24 * time.Hour, CLITokenLifetime: time.Hour,
		Auth: db, Authenticator: authn, RESTSigner: rest, RESTValidator: rest, BcryptCost: bcrypt.MinCost,
		NewID:        func() string { ids++; return fmt.Sprintf("0190e3e4-0000-7000-8000-%012x", ids) },
		MaxBodyBytes: 64 << 10, Now: clk.Now, Logger: zap.New(core), Keys: newFakeKeys(clk.Now),
	}
	for _, o := range opts {
		if o.config != nil {
			o.config(&cfg)
		}
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, srv: srv, db: db, tokens: toks, rest: rest, clock: clk, logs: logs}
}

// queue stores a queued task instance and returns its id.
func (h *harness) queue(dag, run, task string, mapIndex int) string {
	h.t.Helper()
	id := fmt.Sprintf("0190e3e4-3c2b-7a8e-9d0e-%012x", h.tokens.n*1000+len(dag+run+task)+mapIndex+7)
	ti, err := workload.Queue(context.Background(), h.db, id, workload.QueueRequest{
		DagID: dag, RunID: run, TaskID: task, MapIndex: mapIndex, MaxTries: 2,
	}, h.clock.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	h.tokens.n++ // keep ids distinct
	return ti.ID
}

type response struct {
	status int
	header http.Header
	body   string
}

func (r response) json(t *testing.T) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	return v
}

func (h *harness) do(method, path, token, body string, hdr ...string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, req)
	return response{rec.Code, rec.Header(), rec.Body.String()}
}

func runBody(host string, pid int) string {
	return fmt.Sprintf(`{"state":"running","hostname":%q,"unixname":"airflow","pid":%d,"start_date":"2026-11-27T10:00:00Z"}`, host, pid)
}

// start runs the task instance with a workload token and returns the
// execution token the gateway swapped in.
func (h *harness) start(id string) string {
	h.t.Helper()
	wl := h.tokens.mint(h.t, id, scopes.Workload, time.Hour)
	r := h.do("PATCH", "/execution/task-instances/"+id+"/run", wl, runBody(hostA, pidA))
	if r.status != 200 {
		h.t.Fatalf("/run = %d %s", r.status, r.body)
	}
	tok := r.header.Get(reissue.Header)
	if tok == "" {
		h.t.Fatal("/run with a workload token returned no execution token")
	}
	return tok
}

func wantJSON(t *testing.T, r response, status int, want string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON: %v", err)
	}
	if diff := cmp.Diff(w, r.json(t)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestRunSuccessBody(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "manual__1", "extract", -1)
	wl := h.tokens.mint(t, id, scopes.Workload, time.Hour)
	r := h.do("PATCH", "/execution/task-instances/"+id+"/run", wl, runBody(hostA, pidA), "Correlation-Id", "c-1")
	wantJSON(t, r, 200, `{
		"dag_run": {
			"dag_id": "etl", "run_id": "manual__1",
			"logical_date": "2026-11-27T10:00:00Z", "data_interval_start": "2026-11-27T10:00:00Z",
			"data_interval_end": "2026-11-27T10:00:00Z", "run_after": "2026-11-27T10:00:00Z",
			"start_date": "2026-11-27T10:00:00Z", "end_date": null, "clear_number": 0,
			"run_type": "manual", "state": "running", "conf": {}, "triggering_user_name": null,
			"consumed_asset_events": [], "partition_key": null, "note": null, "team_name": null
		},
		"task_reschedule_count": 0, "max_tries": 2, "variables": [], "connections": [],
		"xcom_keys_to_clear": [], "should_retry": true
	}`)
	if r.header.Get("Correlation-Id") != "c-1" {
		t.Errorf("correlation id not echoed: %v", r.header)
	}
	if r.header.Get("Airflow-API-Version") != APIVersion {
		t.Errorf("api version header = %q", r.header.Get("Airflow-API-Version"))
	}
	exec := r.header.Get(reissue.Header)
	c, err := h.tokens.Validate(context.Background(), exec)
	if err != nil {
		t.Fatalf("swapped token invalid: %v", err)
	}
	if c.Subject != id || c.Type() != scopes.Execution || c.Lifetime() != 600*time.Second {
		t.Errorf("swapped token claims = %+v", c)
	}

	// The same worker repeating /run (a lost response) gets 200 again;
	// anyone else gets a conflict.
	again := h.do("PATCH", "/execution/task-instances/"+id+"/run", exec, runBody(hostA, pidA))
	if again.status != 200 {
		t.Errorf("duplicate /run = %d %s", again.status, again.body)
	}
	if again.header.Get(reissue.Header) != "" {
		t.Error("execution token far from expiry was renewed")
	}
	other := h.do("PATCH", "/execution/task-instances/"+id+"/run", exec, runBody("worker-b", pidA))
	wantJSON(t, other, 409, `{"detail":{"reason":"invalid_state",
		"message":"TI was not in a state where it could be marked as running","previous_state":"running"}}`)
}

// TestRunRetryReturnsSameExecutionToken: a repeated /run with the workload
// token that started the task, from the same worker, gets the execution
// token the first /run handed out — recorded with the task instance — and
// never a second one; another workload token gets a conflict and no token.
func TestRunRetryReturnsSameExecutionToken(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "manual__1", "extract", -1)
	wl := h.tokens.mint(t, id, scopes.Workload, time.Hour)
	wlClaims, err := h.tokens.Validate(context.Background(), wl)
	if err != nil {
		t.Fatal(err)
	}
	path := "/execution/task-instances/" + id + "/run"
	first := h.do("PATCH", path, wl, runBody(hostA, pidA))
	exec := first.header.Get(reissue.Header)
	if first.status != 200 || exec == "" {
		t.Fatalf("/run = %d %s, token %q", first.status, first.body, exec)
	}
	claims, err := h.tokens.Validate(context.Background(), exec)
	if err != nil {
		t.Fatal(err)
	}
	ti, err := h.db.TaskInstance(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	want := &workload.ExecutionGrant{WorkloadTokenID: wlClaims.ID, ID: claims.ID, IssuedAt: claims.IssuedAt, ExpiresAt: claims.ExpiresAt}
	if claims.ID == "" {
		t.Error("the execution token has no jti")
	}
	if diff := cmp.Diff(want, ti.RunGrant); diff != "" {
		t.Errorf("recorded grant (-want +got):\n%s", diff)
	}

	h.clock.Advance(90 * time.Second)
	for i := range 2 {
		again := h.do("PATCH", path, wl, runBody(hostA, pidA))
		if again.status != 200 || again.header.Get(reissue.Header) != exec {
			t.Errorf("repeat %d: %d, token %q, want 200 with %q", i, again.status, again.header.Get(reissue.Header), exec)
		}
	}
	other := h.tokens.mint(t, id, scopes.Workload, time.Hour)
	r := h.do("PATCH", path, other, runBody(hostA, pidA))
	wantJSON(t, r, 409, `{"detail":{"reason":"invalid_state",
		"message":"TI was not in a state where it could be marked as running","previous_state":"running"}}`)
	if tok := r.header.Get(reissue.Header); tok != "" {
		t.Errorf("a refused /run handed out %q", tok)
	}
	if n := h.logs.FilterMessage("repeated /run answered with the execution token already issued").Len(); n != 2 {
		t.Errorf("%d log lines about repeated /run, want 2", n)
	}
	for _, e := range h.logs.All() {
		for _, f := range e.Context {
			if f.String == exec || f.String == wl {
				t.Errorf("log entry %q holds a raw token in %s", e.Message, f.Key)
			}
		}
	}
}

func TestRunValidation(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "r", "t", -1)
	wl := h.tokens.mint(t, id, scopes.Workload, time.Hour)
	path := "/execution/task-instances/" + id + "/run"
	tests := []struct {
		name string
		body string
		want string
	}{
		{"invalid json", `{"state":`, `{"detail":[{"type":"json_invalid","loc":["body",0],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]}`},
		{"not an object", `[1]`, `{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":[1]}]}`},
		{"empty body", ``, `{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}`},
		{"wrong state", `{"state":"queued","hostname":"h","unixname":"u","pid":1,"start_date":"2026-11-27T10:00:00Z"}`,
			`{"detail":[{"type":"literal_error","loc":["body","state"],"msg":"Input should be 'running'","input":"queued"}]}`},
		{"pid as string and extra field", `{"state":"running","hostname":"h","unixname":"u","pid":"x","start_date":"2026-11-27T10:00:00Z","evil":1}`,
			`{"detail":[{"type":"int_type","loc":["body","pid"],"msg":"Input should be a valid integer","input":"x"},
			{"type":"extra_forbidden","loc":["body","evil"],"msg":"Extra inputs are not permitted","input":1}]}`},
		{"missing fields", `{"state":"running"}`,
			`{"detail":[
			{"type":"missing","loc":["body","hostname"],"msg":"Field required","input":{"state":"running"}},
			{"type":"missing","loc":["body","unixname"],"msg":"Field required","input":{"state":"running"}},
			{"type":"missing","loc":["body","pid"],"msg":"Field required","input":{"state":"running"}},
			{"type":"missing","loc":["body","start_date"],"msg":"Field required","input":{"state":"running"}}]}`},
		{"bad date", `{"state":"running","hostname":"h","unixname":"u","pid":1,"start_date":"yesterday"}`,
			`{"detail":[{"type":"datetime_parsing","loc":["body","start_date"],"msg":"Input should be a valid datetime","input":"yesterday"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantJSON(t, h.do("PATCH", path, wl, tt.body), 422, tt.want)
		})
	}
	// Nothing was written by any of them.
	ti, err := h.db.TaskInstance(context.Background(), id)
	if err != nil || ti.State != workload.StateQueued {
		t.Fatalf("task instance after refused requests: %+v, %v", ti, err)
	}
	wantJSON(t, h.do("PATCH", "/execution/task-instances/not-a-uuid/run", wl, runBody(hostA, 1)), 403,
		`{"detail":"Token subject does not match task instance ID"}`)
	unknown := "0190e3e4-3c2b-7a8e-9d0e-ffffffffffff"
	wl2 := h.tokens.mint(t, unknown, scopes.Workload, time.Hour)
	wantJSON(t, h.do("PATCH", "/execution/task-instances/"+unknown+"/run", wl2, runBody(hostA, 1)), 404,
		`{"detail":{"reason":"not_found","message":"Task Instance not found"}}`)
}

func TestAuthFailures(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "r", "t", -1)
	other := h.queue("etl", "r", "u", -1)
	exec := h.start(id)
	wl := h.tokens.mint(t, id, scopes.Workload, time.Hour)
	hb := `{"hostname":"worker-a","pid":4242}`
	tests := []struct {
		name, method, path, token, want string
		status                          int
	}{
		{"no token", "PUT", "/execution/task-instances/" + id + "/heartbeat", "", `{"detail":"Missing auth token"}`, 401},
		{"garbage token", "PUT", "/execution/task-instances/" + id + "/heartbeat", "garbage", `{"detail":"Invalid auth token"}`, 403},
		{"workload token on heartbeat", "PUT", "/execution/task-instances/" + id + "/heartbeat", wl,
			`{"detail":"Token type 'workload' not allowed for this endpoint. Allowed types: execution"}`, 403},
		{"workload token on variables", "GET", "/execution/variables/x", wl,
			`{"detail":"Token type 'workload' not allowed for this endpoint. Allowed types: dag_processor, execution"}`, 403},
		{"other task's heartbeat", "PUT", "/execution/task-instances/" + other + "/heartbeat", exec,
			`{"detail":"Token subject does not match task instance ID"}`, 403},
		{"unknown scope", "GET", "/execution/variables/x", h.tokens.mint(t, id, "admin", time.Hour),
			`{"detail":"Invalid auth token"}`, 403},
		{"sub not a uuid", "GET", "/execution/variables/x", h.tokens.mint(t, "task-1", scopes.Execution, time.Hour),
			`{"detail":"Invalid auth token"}`, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(tt.method, tt.path, tt.token, hb)
			wantJSON(t, r, tt.status, tt.want)
			challenge := `Bearer error="invalid_token"`
			if tt.status == 401 {
				challenge = "Bearer"
			}
			if got := r.header.Get("WWW-Authenticate"); got != challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, challenge)
			}
			if r.header.Get(reissue.Header) != "" {
				t.Error("refused request carried a token")
			}
		})
	}
	// An expired execution token (past the leeway) is refused.
	h.clock.Advance(611 * time.Second)
	wantJSON(t, h.do("PUT", "/execution/task-instances/"+id+"/heartbeat", exec, hb), 403, `{"detail":"Invalid auth token"}`)
}

func TestHeartbeat(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "r", "t", -1)
	exec := h.start(id)
	path := "/execution/task-instances/" + id + "/heartbeat"
	h.clock.Advance(5 * time.Second)
	if r := h.do("PUT", path, exec, `{"hostname":"worker-a","pid":4242}`); r.status != 204 {
		t.Fatalf("heartbeat = %d %s", r.status, r.body)
	}
	ti, _ := h.db.TaskInstance(context.Background(), id)
	if ti.LastHeartbeatAt == nil || !ti.LastHeartbeatAt.Equal(h.clock.Now()) {
		t.Errorf("last heartbeat = %v, want %v", ti.LastHeartbeatAt, h.clock.Now())
	}
	wantJSON(t, h.do("PUT", path, exec, `{"hostname":"worker-b","pid":4242}`), 409,
		`{"detail":{"reason":"running_elsewhere","message":"TI is already running elsewhere","current_hostname":"worker-a","current_pid":4242}}`)
	wantJSON(t, h.do("PUT", path, exec, `{"hostname":"worker-a","pid":1}`), 409,
		`{"detail":{"reason":"running_elsewhere","message":"TI is already running elsewhere","current_hostname":"worker-a","current_pid":4242}}`)
	wantJSON(t, h.do("PUT", path, exec, `{"hostname":"worker-a"}`), 422,
		`{"detail":[{"type":"missing","loc":["body","pid"],"msg":"Field required","input":{"hostname":"worker-a"}}]}`)

	end := `{"state":"failed","end_date":"2026-11-27T10:01:00Z"}`
	if r := h.do("PATCH", "/execution/task-instances/"+id+"/state", exec, end); r.status != 204 {
		t.Fatalf("state = %d %s", r.status, r.body)
	}
	wantJSON(t, h.do("PUT", path, exec, `{"hostname":"worker-a","pid":4242}`), 409,
		`{"detail":{"reason":"not_running","message":"TI is no longer in the running state and task should terminate","current_state":"failed"}}`)
	// Reporting the same final state again is answered as done.
	if r := h.do("PATCH", "/execution/task-instances/"+id+"/state", exec, end); r.status != 200 {
		t.Errorf("repeated state = %d %s", r.status, r.body)
	}
	wantJSON(t, h.do("PATCH", "/execution/task-instances/"+id+"/state", exec, `{"state":"success","end_date":"2026-11-27T10:01:00Z"}`), 409,
		`{"detail":{"reason":"invalid_state","message":"TI was not in the running state so it cannot be updated","previous_state":"failed"}}`)
}

func TestStatePayloads(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		check  func(t *testing.T, ti *workload.TaskInstance)
	}{
		{"success", `{"state":"success","end_date":"2026-11-27T10:01:00Z","task_outlets":[],"outlet_events":[],"rendered_map_index":"a"}`, 204,
			func(t *testing.T, ti *workload.TaskInstance) {
				if ti.State != workload.StateSuccess || ti.EndDate == nil || *ti.RenderedMapIndex != "a" {
					t.Errorf("%+v", ti)
				}
			}},
		{"skipped", `{"state":"skipped","end_date":"2026-11-27T10:01:00Z"}`, 204, nil},
		{"removed", `{"state":"removed","end_date":"2026-11-27T10:01:00Z"}`, 204, nil},
		{"upstream_failed", `{"state":"upstream_failed","end_date":"2026-11-27T10:01:00Z"}`, 204, nil},
		{"up_for_retry", `{"state":"up_for_retry","end_date":"2026-11-27T10:01:00Z","retry_delay_seconds":30.5,"retry_reason":"flaky"}`, 204,
			func(t *testing.T, ti *workload.TaskInstance) {
				if *ti.RetryDelaySeconds != 30.5 || *ti.RetryReason != "flaky" {
					t.Errorf("%+v", ti)
				}
			}},
		{"deferred", `{"state":"deferred","classpath":"airflow.triggers.temporal.DateTimeTrigger","trigger_kwargs":{"moment":"x"},"trigger_timeout":"PT1H","queue":null,"next_method":"execute_complete","next_kwargs":{"a":1},"rendered_map_index":null}`, 204,
			func(t *testing.T, ti *workload.TaskInstance) {
				want := time.Date(2026, 11, 27, 11, 0, 0, 0, time.UTC)
				if *ti.NextMethod != "execute_complete" || string(ti.NextKwargs) != `{"a":1}` || !ti.TriggerTimeout.Equal(want) {
					t.Errorf("%+v", ti)
				}
			}},
		{"up_for_reschedule", `{"state":"up_for_reschedule","reschedule_date":"2026-11-27T10:05:00Z","end_date":"2026-11-27T10:01:00Z"}`, 204,
			func(t *testing.T, ti *workload.TaskInstance) {
				if len(ti.Reschedules) != 1 {
					t.Errorf("%+v", ti)
				}
			}},
		{"intermediate", `{"state":"scheduled"}`, 204, nil},
		{"unknown state", `{"state":"exploded"}`, 422, nil},
		{"success missing end_date", `{"state":"success"}`, 422, nil},
		{"terminal with extra field", `{"state":"failed","end_date":"2026-11-27T10:01:00Z","task_outlets":[]}`, 422, nil},
		{"intermediate with extra field", `{"state":"queued","end_date":"2026-11-27T10:01:00Z"}`, 422, nil},
		{"deferred missing classpath", `{"state":"deferred","next_method":"m"}`, 422, nil},
		{"bad timedelta", `{"state":"deferred","classpath":"c","next_method":"m","trigger_timeout":"soon"}`, 422, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			id := h.queue("etl", "r", "t", -1)
			exec := h.start(id)
			r := h.do("PATCH", "/execution/task-instances/"+id+"/state", exec, tt.body)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
			}
			ti, err := h.db.TaskInstance(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if tt.status == 422 && ti.State != workload.StateRunning {
				t.Errorf("refused update changed state to %s", ti.State)
			}
			if tt.check != nil {
				tt.check(t, ti)
			}
		})
	}
}

func TestVariablesAndConnections(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "r", "t", -1)
	exec := h.start(id)
	wantJSON(t, h.do("GET", "/execution/variables/a/b", exec, ""), 404,
		`{"detail":{"reason":"not_found","message":"Variable with key 'a/b' not found"}}`)
	wantJSON(t, h.do("PUT", "/execution/variables/a/b", exec, `{"val":"v1","description":"d"}`), 201,
		`{"message":"Variable successfully set"}`)
	wantJSON(t, h.do("GET", "/execution/variables/a/b", exec, ""), 200, `{"key":"a/b","value":"v1"}`)
	wantJSON(t, h.do("GET", "/execution/variables/a%2Fb", exec, ""), 200, `{"key":"a/b","value":"v1"}`)
	wantJSON(t, h.do("PUT", "/execution/variables/k2", exec, `{"value":"v2"}`), 201, `{"message":"Variable successfully set"}`)
	wantJSON(t, h.do("PUT", "/execution/variables/k3", exec, `{"val":"v","other":1}`), 422,
		`{"detail":[{"type":"extra_forbidden","loc":["body","other"],"msg":"Extra inputs are not permitted","input":1}]}`)
	wantJSON(t, h.do("GET", "/execution/variables/keys?prefix=a", exec, ""), 200, `{"keys":["a/b"],"total_entries":1}`)
	if r := h.do("DELETE", "/execution/variables/a/b", exec, ""); r.status != 204 {
		t.Errorf("delete = %d", r.status)
	}
	if r := h.do("GET", "/execution/variables/a/b", exec, ""); r.status != 404 {
		t.Errorf("after delete = %d", r.status)
	}

	wantJSON(t, h.do("GET", "/execution/connections/pg", exec, ""), 404,
		`{"detail":{"reason":"not_found","message":"Connection with ID pg not found"}}`)
	port := 5432
	host, pw := "db", "s3cret"
	if err := h.db.PutConnection(context.Background(), workload.Connection{ConnID: "pg", ConnType: "postgres", Host: &host, Port: &port, Password: &pw}); err != nil {
		t.Fatal(err)
	}
	wantJSON(t, h.do("GET", "/execution/connections/pg", exec, ""), 200,
		`{"conn_id":"pg","conn_type":"postgres","host":"db","schema":null,"login":null,"password":"s3cret","port":5432,"extra":null}`)
}

func TestXComs(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "r", "t", -1)
	exec := h.start(id)
	base := "/execution/xcoms/etl/r/t/"
	wantJSON(t, h.do("GET", base+"return_value", exec, ""), 404,
		`{"detail":{"reason":"not_found","message":"XCom with key='return_value' map_index=-1 not found for task 't' in DAG run 'r' of 'etl'"}}`)
	wantJSON(t, h.do("POST", base+"return_value", exec, `{"rows": [1, 2]}`), 201, `{"message":"XCom successfully set"}`)
	wantJSON(t, h.do("GET", base+"return_value", exec, ""), 200, `{"key":"return_value","value":{"rows":[1,2]}}`)
	wantJSON(t, h.do("POST", base+"a/b", exec, `"x"`), 201, `{"message":"XCom successfully set"}`)
	wantJSON(t, h.do("GET", base+"a/b", exec, ""), 200, `{"key":"a/b","value":"x"}`)
	r := h.do("HEAD", base+"return_value", exec, "")
	if r.status != 200 || r.header.Get("Content-Range") != "map_indexes 1" {
		t.Errorf("HEAD = %d %v", r.status, r.header)
	}
	if r := h.do("HEAD", base+"return_value?map_index=0", exec, ""); r.status != 400 {
		t.Errorf("HEAD with map_index = %d", r.status)
	}
	wantJSON(t, h.do("GET", base+"return_value/item/0", exec, ""), 200, `{"rows":[1,2]}`)
	wantJSON(t, h.do("GET", base+"return_value/item/-1", exec, ""), 200, `{"rows":[1,2]}`)
	wantJSON(t, h.do("GET", base+"return_value/item/1", exec, ""), 404,
		`{"detail":{"reason":"not_found","message":"XCom with key='return_value' offset=1 not found for task 't' in DAG run 'r' of 'etl'"}}`)
	wantJSON(t, h.do("GET", base+"return_value/slice", exec, ""), 200, `[{"rows":[1,2]}]`)
	wantJSON(t, h.do("POST", base+"big?mapped_length=1025", exec, `[1]`), 400,
		`{"detail":{"reason":"unmappable_return_value_length","message":"pushed value is too large to map as a downstream's dependency"}}`)
	wantJSON(t, h.do("POST", base+"bad", exec, `{not json`), 422,
		`{"detail":[{"type":"json_invalid","loc":["body",0],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]}`)

	// Writes and deletes are limited to the token's own task instance.
	denied := `{"detail":{"reason":"access_denied","message":"Task does not have access to the XCom"}}`
	wantJSON(t, h.do("POST", "/execution/xcoms/etl/r/other/return_value", exec, `1`), 403, denied)
	wantJSON(t, h.do("POST", base+"return_value?map_index=3", exec, `1`), 403, denied)
	wantJSON(t, h.do("DELETE", "/execution/xcoms/etl/r/other/return_value", exec, ""), 403, denied)
	// Reads of other tasks' XComs are how tasks pass data: allowed.
	if r := h.do("GET", "/execution/xcoms/etl/r/other/return_value", exec, ""); r.status != 404 {
		t.Errorf("read of another task's xcom = %d", r.status)
	}
	wantJSON(t, h.do("DELETE", base+"return_value", exec, ""), 200, `{"message":"XCom with key: return_value successfully deleted."}`)
	if r := h.do("GET", base+"return_value", exec, ""); r.status != 404 {
		t.Errorf("after delete = %d", r.status)
	}
	// /run lists the keys of an earlier try for the worker to clear.
	if err := h.db.SetXCom(context.Background(), workload.XCom{XComRef: workload.XComRef{DagID: "etl", RunID: "r", TaskID: "t2", MapIndex: -1, Key: "k"}, Value: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	id2 := h.queue("etl", "r", "t2", -1)
	wl := h.tokens.mint(t, id2, scopes.Workload, time.Hour)
	run := h.do("PATCH", "/execution/task-instances/"+id2+"/run", wl, runBody(hostA, 1))
	if rc, ok := run.json(t).(map[string]any); !ok || !cmp.Equal(rc["xcom_keys_to_clear"], []any{"k"}) {
		t.Errorf("xcom_keys_to_clear = %v", run.body)
	}
}

func TestPySlice(t *testing.T) {
	p := func(v int) *int { return &v }
	seq := []int{0, 1, 2, 3, 4}
	tests := []struct {
		start, stop, step *int
		want              []int
	}{
		{nil, nil, nil, seq},
		{p(1), p(3), nil, []int{1, 2}},
		{p(-2), nil, nil, []int{3, 4}},
		{nil, p(-1), nil, []int{0, 1, 2, 3}},
		{nil, nil, p(-1), []int{4, 3, 2, 1, 0}},
		{p(3), p(0), p(-1), []int{3, 2, 1}},
		{nil, nil, p(2), []int{0, 2, 4}},
		{p(10), nil, nil, nil},
		{p(-10), p(2), nil, []int{0, 1}},
		{nil, p(-10), p(-1), []int{4, 3, 2, 1, 0}},
	}
	for _, tt := range tests {
		got := pySlice(len(seq), tt.start, tt.stop, tt.step)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("slice %v:%v:%v (-want +got)\n%s", tt.start, tt.stop, tt.step, diff)
		}
	}
}

func TestOtherTaskInstanceRoutes(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "r", "t", -1)
	down := h.queue("etl", "r", "down", -1)
	exec := h.start(id)
	ti := "/execution/task-instances/" + id
	wantJSON(t, h.do("PUT", ti+"/rtif", exec, `{"bash_command":"echo 1"}`), 201,
		`{"message":"Rendered task instance fields successfully set"}`)
	if r := h.do("PUT", ti+"/rtif", exec, `["x"]`); r.status != 422 {
		t.Errorf("rtif list = %d", r.status)
	}
	if r := h.do("PATCH", ti+"/skip-downstream", exec, `{"tasks":["down",["other",0]]}`); r.status != 204 {
		t.Fatalf("skip-downstream = %d %s", r.status, r.body)
	}
	got, _ := h.db.TaskInstance(context.Background(), down)
	if got.State != workload.StateSkipped {
		t.Errorf("downstream state = %s", got.State)
	}
	wantJSON(t, h.do("GET", ti+"/previous-successful-dagrun", exec, ""), 200,
		`{"data_interval_start":null,"data_interval_end":null,"start_date":null,"end_date":null}`)
	wantJSON(t, h.do("GET", "/execution/task-reschedules/"+id+"/start_date?try_number=1", exec, ""), 200, `null`)
}

func TestNotFoundAndLimits(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "r", "t", -1)
	exec := h.start(id)
	wantJSON(t, h.do("GET", "/execution/nope", exec, ""), 404, `{"detail":"Not Found"}`)
	wantJSON(t, h.do("GET", "/elsewhere", "", ""), 404, `{"detail":"Not Found"}`)
	wantJSON(t, h.do("GET", "/execution/health", "", ""), 200, `{"status":"healthy"}`)
	wantJSON(t, h.do("GET", "/execution/health/ping", "", ""), 200, `{"ok":[],"failing":{}}`)
	big := `{"val":"` + strings.Repeat("x", 70<<10) + `"}`
	wantJSON(t, h.do("PUT", "/execution/variables/big", exec, big), 413, `{"detail":"Request Entity Too Large"}`)
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	if r := h.do("POST", "/execution/xcoms/etl/r/t/deep", exec, deep); r.status != 422 {
		t.Errorf("deep json = %d", r.status)
	}
}

func TestReissueThroughGateway(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "r", "t", -1)
	exec := h.start(id)
	hb := `{"hostname":"worker-a","pid":4242}`
	path := "/execution/task-instances/" + id + "/heartbeat"
	h.clock.Advance(479 * time.Second)
	if r := h.do("PUT", path, exec, hb); r.header.Get(reissue.Header) != "" {
		t.Error("renewed before the threshold")
	}
	h.clock.Advance(time.Second)
	r := h.do("PUT", path, exec, hb)
	fresh := r.header.Get(reissue.Header)
	if r.status != 204 || fresh == "" {
		t.Fatalf("at threshold: %d, header %q", r.status, fresh)
	}
	// Renewal also rides on error responses other than 401/403.
	h.clock.Advance(110 * time.Second)
	if r := h.do("GET", "/execution/variables/missing", exec, ""); r.status != 404 || r.header.Get(reissue.Header) == "" {
		t.Errorf("404 response: %d, renewed %v", r.status, r.header.Get(reissue.Header) != "")
	}
	// The old token dies at exp + leeway; the renewed one carries on.
	h.clock.Advance(30 * time.Second)
	if r := h.do("PUT", path, exec, hb); r.status != 403 {
		t.Errorf("old token after expiry = %d", r.status)
	}
	if r := h.do("PUT", path, fresh, hb); r.status != 204 {
		t.Errorf("renewed token = %d", r.status)
	}
	for _, e := range h.logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && (strings.Contains(s, exec) || strings.Contains(s, fresh)) {
				t.Errorf("log %q field %s holds a raw token", e.Message, k)
			}
		}
	}
}

func TestPanicIs500(t *testing.T) {
	h := newHarness(t)
	h.srv.echo.GET("/execution/boom", func(c echo.Context) error { panic("boom") })
	wantJSON(t, h.do("GET", "/execution/boom", "", "", "Correlation-Id", "cid-9"), 500,
		`{"message":"Internal server error","correlation-id":"cid-9"}`)
}
