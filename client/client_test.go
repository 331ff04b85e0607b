package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/internal/fakeapi"
)

const (
	tiID          = "0193a5b4-8c1e-7d2f-9a3b-4c5d6e7f8091"
	workloadToken = "eyJhbGciOiJIUzUxMiJ9.d29ya2xvYWQtdG9rZW4tcGF5bG9hZA.c2lnbmF0dXJlLW9mLXRoZS13b3JrbG9hZA"
	execToken     = "eyJhbGciOiJIUzUxMiJ9.ZXhlY3V0aW9uLXRva2VuLXBheWxvYWQ.c2lnbmF0dXJlLW9mLXRoZS1leGVjdXRpb24"
	renewedToken  = "eyJhbGciOiJIUzUxMiJ9.cmVuZXdlZC10b2tlbi1wYXlsb2FkLXh4.c2lnbmF0dXJlLW9mLXRoZS1yZW5ld2Vk"
)

// newFakeAPI starts a fake Execution API that answers from a script of
// replies (see fakeapi.Script).
func newFakeAPI(t *testing.T, replies ...fakeapi.Reply) *fakeapi.Server {
	t.Helper()
	return fakeapi.New(t, fakeapi.Script(replies...))
}

// sleeps records the waits between attempts instead of sleeping.
type sleeps struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) recorded() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// newClient builds a client on the fake API that never sleeps for real.
func newClient(t *testing.T, base string, opts ...client.Option) (*client.Client, *sleeps) {
	t.Helper()
	s := &sleeps{}
	all := append([]client.Option{client.WithToken(workloadToken), client.WithSleep(s.sleep)}, opts...)
	c, err := client.New(base, all...)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func heartbeat(c *client.Client) error {
	return c.Heartbeat(context.Background(), tiID, "worker-1", 4242)
}

const notRunning = `{"detail":{"reason":"not_running","message":"TI is no longer in the running state and task should terminate","current_state":"success"}}`

// TestTokenSwapOnlyOn2xx: a Refreshed-API-Token is adopted from a 2xx
// response only; on any other response the token sent stays current, so an
// error response can never replace a good token.
func TestTokenSwapOnlyOn2xx(t *testing.T) {
	refreshed := map[string]string{client.RefreshedTokenHeader: renewedToken}
	for _, tc := range []struct {
		name  string
		first fakeapi.Reply
		want  string // Authorization of the next request
	}{
		{"200 swaps", fakeapi.Reply{Status: 200, Body: `{}`, Header: refreshed}, "Bearer " + renewedToken},
		{"201 swaps", fakeapi.Reply{Status: 201, Body: `{"message":"ok"}`, Header: refreshed}, "Bearer " + renewedToken},
		{"204 swaps", fakeapi.Reply{Status: 204, Header: refreshed}, "Bearer " + renewedToken},
		{"204 without header keeps", fakeapi.Reply{Status: 204}, "Bearer " + workloadToken},
		{"403 keeps", fakeapi.Reply{Status: 403, Body: `{"detail":"Invalid auth token"}`, Header: refreshed}, "Bearer " + workloadToken},
		{"404 keeps", fakeapi.Reply{Status: 404, Body: `{"detail":{"reason":"not_found","message":"Task Instance not found"}}`, Header: refreshed}, "Bearer " + workloadToken},
		{"409 keeps", fakeapi.Reply{Status: 409, Body: notRunning, Header: refreshed}, "Bearer " + workloadToken},
		{"500 keeps", fakeapi.Reply{Status: 500, Body: `{"message":"Internal server error"}`, Header: refreshed}, "Bearer " + workloadToken},
		{"302 keeps", fakeapi.Reply{Status: 302, Header: refreshed}, "Bearer " + workloadToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, tc.first, fakeapi.Reply{Status: 204})
			c, _ := newClient(t, api.URL, client.WithRetries(1))
			_ = heartbeat(c)
			if err := heartbeat(c); err != nil {
				t.Fatalf("second heartbeat: %v", err)
			}
			reqs := api.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			if reqs[0].Auth != "Bearer "+workloadToken {
				t.Errorf("first request Authorization = %q, want the initial token", reqs[0].Auth)
			}
			if reqs[1].Auth != tc.want {
				t.Errorf("next request Authorization = %q, want %q", reqs[1].Auth, tc.want)
			}
		})
	}
}

// TestRunSwapsToExecutionToken: the workload token buys the execution
// token on /run, which then carries every later call.
func TestRunSwapsToExecutionToken(t *testing.T) {
	runBody := `{"dag_run":{"dag_id":"d","run_id":"r","run_after":"2026-11-27T10:00:00Z","run_type":"manual","state":"running",
		"consumed_asset_events":[],"conf":{}},"task_reschedule_count":0,"max_tries":2,"variables":[],"connections":[],
		"xcom_keys_to_clear":[],"should_retry":true}`
	api := newFakeAPI(t, fakeapi.Reply{Status: 200, Body: runBody, Header: map[string]string{client.RefreshedTokenHeader: execToken}}, fakeapi.Reply{Status: 204})
	c, _ := newClient(t, api.URL)
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	rc, err := c.Run(context.Background(), tiID, client.RunRequest{Hostname: "h", Unixname: "u", PID: 7, StartDate: start})
	if err != nil {
		t.Fatal(err)
	}
	if rc.MaxTries != 2 || !rc.ShouldRetry || rc.DagRun.DagID != "d" || rc.DagRun.RunID != "r" {
		t.Errorf("run context = %+v", rc)
	}
	if err := heartbeat(c); err != nil {
		t.Fatal(err)
	}
	reqs := api.Requests()
	var got map[string]any
	if err := json.Unmarshal([]byte(reqs[0].Body), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"state": "running", "hostname": "h", "unixname": "u", "pid": float64(7),
		"start_date": "2026-11-27T09:00:00Z"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/run body (-want +got):\n%s", diff)
	}
	if reqs[0].Auth != "Bearer "+workloadToken || reqs[1].Auth != "Bearer "+execToken {
		t.Errorf("Authorization: /run %q, heartbeat %q; want the workload then the execution token", reqs[0].Auth, reqs[1].Auth)
	}
}

// TestRetries: transport errors and 5xx are retried up to the configured
// attempts, with the backoff's waits; 4xx never are.
func TestRetries(t *testing.T) {
	ise := fakeapi.Reply{Status: 500, Body: `{"message":"Internal server error","correlation-id":"x"}`}
	unavailable := fakeapi.Reply{Status: 503}
	for _, tc := range []struct {
		name     string
		replies  []fakeapi.Reply
		attempts int
		wantReqs int
		wantErr  error // nil: success
	}{
		{"500 until out of attempts", []fakeapi.Reply{ise}, 5, 5, nil},
		{"503 then success", []fakeapi.Reply{unavailable, unavailable, {Status: 204}}, 5, 3, nil},
		{"one attempt", []fakeapi.Reply{ise}, 1, 1, nil},
		{"400 not retried", []fakeapi.Reply{{Status: 400, Body: `{"detail":{"reason":"invalid_key","message":"bad"}}`}}, 5, 1, nil},
		{"401 not retried", []fakeapi.Reply{{Status: 401, Body: `{"detail":"Missing auth token"}`}}, 5, 1, client.ErrUnauthorized},
		{"403 not retried", []fakeapi.Reply{{Status: 403, Body: `{"detail":"Invalid auth token"}`}}, 5, 1, client.ErrForbidden},
		{"404 not retried", []fakeapi.Reply{{Status: 404, Body: `{"detail":{"reason":"not_found","message":"Task Instance not found"}}`}}, 5, 1, client.ErrNotFound},
		{"409 not retried", []fakeapi.Reply{{Status: 409, Body: notRunning}}, 5, 1, client.ErrNotRunning},
		{"410 not retried", []fakeapi.Reply{{Status: 410, Body: `{"detail":{"reason":"not_found","message":"archived"}}`}}, 5, 1, client.ErrGone},
		{"422 not retried", []fakeapi.Reply{{Status: 422, Body: `{"detail":[{"type":"missing","loc":["body","pid"],"msg":"Field required","input":{}}]}`}}, 5, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, tc.replies...)
			var notified []client.Retry
			c, s := newClient(t, api.URL, client.WithRetries(tc.attempts),
				client.WithRetryNotify(func(r client.Retry) { notified = append(notified, r) }))
			err := heartbeat(c)
			reqs := api.Requests()
			if len(reqs) != tc.wantReqs {
				t.Errorf("%d requests, want %d", len(reqs), tc.wantReqs)
			}
			if got := len(s.recorded()); got != tc.wantReqs-1 {
				t.Errorf("%d waits, want %d (one between attempts)", got, tc.wantReqs-1)
			}
			if len(notified) != tc.wantReqs-1 {
				t.Errorf("%d retry notifications, want %d", len(notified), tc.wantReqs-1)
			}
			last := tc.replies[min(tc.wantReqs, len(tc.replies))-1]
			switch {
			case last.Status < 300 && err != nil:
				t.Errorf("error %v, want success", err)
			case last.Status >= 300:
				var apiErr *client.APIError
				if !errors.As(err, &apiErr) || apiErr.Status != last.Status {
					t.Errorf("error %v, want an *APIError with status %d", err, last.Status)
				}
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want errors.Is %v", err, tc.wantErr)
			}
			for i, r := range notified {
				if r.Attempt != i+1 || r.Method != http.MethodPut || r.Path != "/task-instances/"+tiID+"/heartbeat" || r.Status < 500 {
					t.Errorf("retry notification %d = %+v", i, r)
				}
			}
		})
	}
}

// TestBackoffBounds: each wait lies in [min, clamp(2^(n-1) s, min, max)],
// the jitter picks the place in between, and max caps every wait.
func TestBackoffBounds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		min, max time.Duration
		jitter   float64
		want     []time.Duration
	}{
		{"Airflow defaults, no jitter", time.Second, 90 * time.Second, 0,
			[]time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second, time.Second, time.Second, time.Second, time.Second}},
		{"Airflow defaults, upper bound", time.Second, 90 * time.Second, 1 - 1e-12,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second,
				64 * time.Second, 90 * time.Second, 90 * time.Second}},
		{"Airflow defaults, half way", time.Second, 90 * time.Second, 0.5,
			[]time.Duration{time.Second, 1500 * time.Millisecond, 2500 * time.Millisecond, 4500 * time.Millisecond,
				8500 * time.Millisecond, 16500 * time.Millisecond, 32500 * time.Millisecond, 45500 * time.Millisecond, 45500 * time.Millisecond}},
		{"narrow window", 2 * time.Second, 5 * time.Second, 1 - 1e-12,
			[]time.Duration{2 * time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, 5 * time.Second,
				5 * time.Second, 5 * time.Second, 5 * time.Second}},
		{"sub-second cap", 100 * time.Millisecond, 400 * time.Millisecond, 0.5,
			[]time.Duration{250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond,
				250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, fakeapi.Reply{Status: 502})
			c, s := newClient(t, api.URL, client.WithRetries(10), client.WithRetryWait(tc.min, tc.max),
				client.WithJitter(func() float64 { return tc.jitter }))
			if err := heartbeat(c); err == nil {
				t.Fatal("no error after 10 × 502")
			}
			got := s.recorded()
			// Compare at millisecond resolution: the jitter is a float.
			for i := range got {
				got[i] = got[i].Round(time.Millisecond)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			for i, w := range got {
				if w < tc.min || w > tc.max {
					t.Errorf("wait %d = %s outside [%s, %s]", i+1, w, tc.min, tc.max)
				}
			}
		})
	}
}

// TestRandomJitterStaysInBounds: with the real random source every wait
// stays within the caps.
func TestRandomJitterStaysInBounds(t *testing.T) {
	api := newFakeAPI(t, fakeapi.Reply{Status: 500})
	c, s := newClient(t, api.URL, client.WithRetries(50), client.WithRetryWait(time.Second, 10*time.Second))
	_ = heartbeat(c)
	waits := s.recorded()
	if len(waits) != 49 {
		t.Fatalf("%d waits, want 49", len(waits))
	}
	for i, w := range waits {
		high := min(max(time.Second<<min(i, 30), time.Second), 10*time.Second)
		if w < time.Second || w > high {
			t.Errorf("wait %d = %s outside [1s, %s]", i+1, w, high)
		}
	}
}

// TestTransportErrorsRetried: refused connections, connections closed
// mid-response and request timeouts are retried like 5xx.
func TestTransportErrorsRetried(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c, s := newClient(t, "http://"+addr, client.WithRetries(4))
		err = heartbeat(c)
		if err == nil || !strings.Contains(err.Error(), "attempt 4 of 4") {
			t.Errorf("error %v, want a transport error after 4 attempts", err)
		}
		if got := len(s.recorded()); got != 3 {
			t.Errorf("%d waits, want 3", got)
		}
	})
	t.Run("connection closed then success", func(t *testing.T) {
		var mu sync.Mutex
		calls := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			calls++
			n := calls
			mu.Unlock()
			if n <= 2 {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		c, s := newClient(t, srv.URL)
		if err := heartbeat(c); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if calls != 3 {
			t.Errorf("%d calls, want 3", calls)
		}
		if got := len(s.recorded()); got != 2 {
			t.Errorf("%d waits, want 2", got)
		}
	})
	t.Run("per-request timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer srv.Close()
		defer close(release)
		c, s := newClient(t, srv.URL, client.WithRetries(3), client.WithTimeout(50*time.Millisecond))
		err := heartbeat(c)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want the per-request deadline", err)
		}
		if got := len(s.recorded()); got != 2 {
			t.Errorf("%d waits, want 2", got)
		}
	})
}

// TestCancelStopsRetrying: a cancelled caller context ends the retries.
func TestCancelStopsRetrying(t *testing.T) {
	api := newFakeAPI(t, fakeapi.Reply{Status: 500})
	ctx, cancel := context.WithCancel(context.Background())
	c, err := client.New(api.URL, client.WithSleep(func(context.Context, time.Duration) error {
		cancel()
		return context.Canceled
	}))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Heartbeat(ctx, tiID, "h", 1)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if n := len(api.Requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// TestTypedErrors: every reason the Execution API answers with maps to its
// errors.Is target, and the fields hold status, reason, message and the raw
// detail.
func TestTypedErrors(t *testing.T) {
	all := []error{client.ErrNotFound, client.ErrInvalidState, client.ErrRunningElsewhere, client.ErrNotRunning,
		client.ErrAccessDenied, client.ErrUnauthorized, client.ErrForbidden, client.ErrConflict, client.ErrGone}
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   client.APIError
		is     []error
	}{
		{"missing token", 401, `{"detail":"Missing auth token"}`,
			client.APIError{Status: 401, Message: "Missing auth token", Detail: json.RawMessage(`"Missing auth token"`)},
			[]error{client.ErrUnauthorized}},
		{"invalid token", 403, `{"detail":"Invalid auth token"}`,
			client.APIError{Status: 403, Message: "Invalid auth token", Detail: json.RawMessage(`"Invalid auth token"`)},
			[]error{client.ErrForbidden}},
		{"access denied", 403, `{"detail":{"reason":"access_denied","message":"Task does not have access to the XCom"}}`,
			client.APIError{Status: 403, Reason: "access_denied", Message: "Task does not have access to the XCom",
				Detail: json.RawMessage(`{"reason":"access_denied","message":"Task does not have access to the XCom"}`)},
			[]error{client.ErrAccessDenied, client.ErrForbidden}},
		{"not found", 404, `{"detail":{"reason":"not_found","message":"Task Instance not found"}}`,
			client.APIError{Status: 404, Reason: "not_found", Message: "Task Instance not found",
				Detail: json.RawMessage(`{"reason":"not_found","message":"Task Instance not found"}`)},
			[]error{client.ErrNotFound}},
		{"plain not found", 404, `{"detail":"Not Found"}`,
			client.APIError{Status: 404, Message: "Not Found", Detail: json.RawMessage(`"Not Found"`)},
			[]error{client.ErrNotFound}},
		{"invalid state", 409, `{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"success"}}`,
			client.APIError{Status: 409, Reason: "invalid_state", Message: "TI was not in a state where it could be marked as running",
				Detail: json.RawMessage(`{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"success"}`)},
			[]error{client.ErrInvalidState, client.ErrConflict}},
		{"running elsewhere", 409, `{"detail":{"reason":"running_elsewhere","message":"TI is already running elsewhere","current_hostname":"other","current_pid":9}}`,
			client.APIError{Status: 409, Reason: "running_elsewhere", Message: "TI is already running elsewhere",
				Detail: json.RawMessage(`{"reason":"running_elsewhere","message":"TI is already running elsewhere","current_hostname":"other","current_pid":9}`)},
			[]error{client.ErrRunningElsewhere, client.ErrConflict}},
		{"not running", 409, notRunning,
			client.APIError{Status: 409, Reason: "not_running", Message: "TI is no longer in the running state and task should terminate",
				Detail: json.RawMessage(`{"reason":"not_running","message":"TI is no longer in the running state and task should terminate","current_state":"success"}`)},
			[]error{client.ErrNotRunning, client.ErrConflict}},
		{"archived", 410, `{"detail":{"reason":"not_found","message":"Task Instance not found in the working set; its attempt has been archived"}}`,
			client.APIError{Status: 410, Reason: "not_found", Message: "Task Instance not found in the working set; its attempt has been archived",
				Detail: json.RawMessage(`{"reason":"not_found","message":"Task Instance not found in the working set; its attempt has been archived"}`)},
			[]error{client.ErrGone, client.ErrNotFound}},
		{"validation", 422, `{"detail":[{"type":"missing","loc":["body","pid"],"msg":"Field required","input":{}},{"type":"int_parsing","loc":["query","map_index"],"msg":"Input should be a valid integer","input":"x"}]}`,
			client.APIError{Status: 422, Message: "body.pid: Field required; query.map_index: Input should be a valid integer",
				Detail: json.RawMessage(`[{"type":"missing","loc":["body","pid"],"msg":"Field required","input":{}},{"type":"int_parsing","loc":["query","map_index"],"msg":"Input should be a valid integer","input":"x"}]`)},
			nil},
		{"not JSON", 400, "bad request\n",
			client.APIError{Status: 400, Message: "bad request"}, nil},
		{"empty body", 413, "",
			client.APIError{Status: 413, Message: "Request Entity Too Large"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, fakeapi.Reply{Status: tc.status, Body: tc.body})
			c, _ := newClient(t, api.URL)
			err := heartbeat(c)
			var got *client.APIError
			if !errors.As(err, &got) {
				t.Fatalf("error %v (%T), want *client.APIError", err, err)
			}
			want := tc.want
			want.Method, want.Path = http.MethodPut, "/task-instances/"+tiID+"/heartbeat"
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("APIError (-want +got):\n%s", diff)
			}
			for _, target := range all {
				wantIs := false
				for _, w := range tc.is {
					wantIs = wantIs || w == target
				}
				if errors.Is(err, target) != wantIs {
					t.Errorf("errors.Is(err, %v) = %v, want %v", target, !wantIs, wantIs)
				}
			}
			if !strings.HasPrefix(err.Error(), "client: PUT /task-instances/") {
				t.Errorf("error text %q does not start with the package and call", err)
			}
		})
	}
	t.Run("detail fields", func(t *testing.T) {
		api := newFakeAPI(t, fakeapi.Reply{Status: 409, Body: `{"detail":{"reason":"running_elsewhere","message":"m","current_hostname":"other","current_pid":9}}`})
		c, _ := newClient(t, api.URL)
		var got *client.APIError
		if !errors.As(heartbeat(c), &got) {
			t.Fatal("no APIError")
		}
		if got.Field("current_hostname") != "other" || got.Field("current_pid") != "9" || got.Field("absent") != "" {
			t.Errorf("Field: hostname %q pid %q absent %q", got.Field("current_hostname"), got.Field("current_pid"), got.Field("absent"))
		}
	})
}

// TestHeaders: every request carries what the Task SDK sends — a fresh
// UUIDv7 correlation id, the API version, the User-Agent and the bearer
// token — and a JSON content type when it has a body.
func TestHeaders(t *testing.T) {
	api := newFakeAPI(t, fakeapi.Reply{Status: 500}, fakeapi.Reply{Status: 204})
	ua := client.UserAgent("taskgate-worker")
	c, _ := newClient(t, api.URL, client.WithUserAgent(ua))
	if err := heartbeat(c); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetVariable(context.Background(), "k"); err == nil {
		t.Fatal("GetVariable on a 204 decoded nothing without an error")
	}
	reqs := api.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	seen := map[string]bool{}
	for i, r := range reqs {
		cid := r.Header.Get("Correlation-Id")
		id, err := uuid.Parse(cid)
		if err != nil || id.Version() != 7 {
			t.Errorf("request %d: Correlation-Id %q is not a UUIDv7", i, cid)
		}
		if seen[cid] {
			t.Errorf("request %d: Correlation-Id %q reused (a retry is a new request)", i, cid)
		}
		seen[cid] = true
		if got := r.Header.Get("Airflow-API-Version"); got != "2026-06-30" {
			t.Errorf("request %d: Airflow-API-Version %q", i, got)
		}
		if got := r.Header.Get("User-Agent"); got != ua {
			t.Errorf("request %d: User-Agent %q, want %q", i, got, ua)
		}
		if r.Auth != "Bearer "+workloadToken {
			t.Errorf("request %d: Authorization %q", i, r.Auth)
		}
		wantCT := ""
		if r.Body != "" {
			wantCT = "application/json"
		}
		if got := r.Header.Get("Content-Type"); got != wantCT {
			t.Errorf("request %d (%s): Content-Type %q, want %q", i, r.Method, got, wantCT)
		}
	}
	if !strings.HasPrefix(ua, "taskgate-worker/") || !strings.Contains(ua, " (Go/go") {
		t.Errorf("UserAgent = %q, want taskgate-worker/<version> (Go/<version>)", ua)
	}
	t.Run("no token, no Authorization", func(t *testing.T) {
		api := newFakeAPI(t, fakeapi.Reply{Status: 204})
		c, err := client.New(api.URL)
		if err != nil {
			t.Fatal(err)
		}
		if err := heartbeat(c); err != nil {
			t.Fatal(err)
		}
		if _, ok := api.Requests()[0].Header["Authorization"]; ok {
			t.Error("an Authorization header was sent without a token")
		}
	})
}

// TestTokenNeverInErrors: no error text holds a token — not for refusals,
// not for transport errors, and not when a server echoes the token back.
func TestTokenNeverInErrors(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		auth := r.Header.Get("Authorization")
		_ = json.NewEncoder(w).Encode(map[string]any{"detail": map[string]any{
			"reason": "access_denied", "message": "refused " + auth, "token": strings.TrimPrefix(auth, "Bearer "),
		}})
	}))
	defer echo.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name string
		base string
		body fakeapi.Reply
	}{
		{"server echoes the token", echo.URL, fakeapi.Reply{}},
		{"connection refused", refused, fakeapi.Reply{}},
		{"403", "", fakeapi.Reply{Status: 403, Body: `{"detail":"Invalid auth token"}`}},
		{"409", "", fakeapi.Reply{Status: 409, Body: notRunning}},
		{"500", "", fakeapi.Reply{Status: 500, Body: `{"message":"Internal server error"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.base
			if base == "" {
				base = newFakeAPI(t, tc.body).URL
			}
			c, _ := newClient(t, base, client.WithRetries(2))
			err := heartbeat(c)
			if err == nil {
				t.Fatal("no error")
			}
			var apiErr *client.APIError
			texts := []string{err.Error()}
			if errors.As(err, &apiErr) {
				texts = append(texts, apiErr.Message, string(apiErr.Detail))
			}
			for _, s := range texts {
				for _, part := range strings.Split(workloadToken, ".")[1:] {
					if strings.Contains(s, part) {
						t.Errorf("error holds (part of) the token: %s", s)
					}
				}
			}
			if tc.name == "server echoes the token" && !strings.Contains(err.Error(), "[redacted]") {
				t.Errorf("echoed token not marked as redacted: %v", err)
			}
		})
	}
}

// TestCalls: each method sends its route, query and body as the Task SDK
// does, with path segments escaped.
func TestCalls(t *testing.T) {
	ctx := context.Background()
	desc := "d"
	ref := client.XComRef{DagID: "etl", RunID: "manual__2026-11-27T10:00:00+00:00", TaskID: "extract/x", Key: "return_value", MapIndex: -1}
	mapped := client.XComRef{DagID: "etl", RunID: "r", TaskID: "t", Key: "a/b", MapIndex: 3}
	end := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	reason, delay := "flaky", 30.0
	for _, tc := range []struct {
		name     string
		reply    fakeapi.Reply
		call     func(c *client.Client) (any, error)
		want     fakeapi.Request // Method, Path, Query, Body
		wantBody string          // compared as JSON when set
		wantOut  any
	}{
		{"heartbeat", fakeapi.Reply{Status: 204}, func(c *client.Client) (any, error) { return nil, c.Heartbeat(ctx, tiID, "h", 9) },
			fakeapi.Request{Method: "PUT", Path: "/execution/task-instances/" + tiID + "/heartbeat"}, `{"hostname":"h","pid":9}`, nil},
		{"success", fakeapi.Reply{Status: 204}, func(c *client.Client) (any, error) {
			return nil, c.UpdateState(ctx, tiID, client.StateUpdate{State: client.StateSuccess, EndDate: end})
		}, fakeapi.Request{Method: "PATCH", Path: "/execution/task-instances/" + tiID + "/state"},
			`{"state":"success","end_date":"2026-11-27T12:00:00Z","task_outlets":[],"outlet_events":[]}`, nil},
		{"failed", fakeapi.Reply{Status: 204}, func(c *client.Client) (any, error) {
			return nil, c.UpdateState(ctx, tiID, client.StateUpdate{State: client.StateFailed, EndDate: end, TaskOutlets: []json.RawMessage{[]byte(`1`)}})
		}, fakeapi.Request{Method: "PATCH", Path: "/execution/task-instances/" + tiID + "/state"},
			`{"state":"failed","end_date":"2026-11-27T12:00:00Z"}`, nil},
		{"up_for_retry", fakeapi.Reply{Status: 204}, func(c *client.Client) (any, error) {
			return nil, c.UpdateState(ctx, tiID, client.StateUpdate{State: client.StateUpForRetry, EndDate: end,
				RetryReason: &reason, RetryDelaySeconds: &delay})
		}, fakeapi.Request{Method: "PATCH", Path: "/execution/task-instances/" + tiID + "/state"},
			`{"state":"up_for_retry","end_date":"2026-11-27T12:00:00Z","retry_reason":"flaky","retry_delay_seconds":30}`, nil},
		{"up_for_retry, end date from the clock", fakeapi.Reply{Status: 204}, func(c *client.Client) (any, error) {
			return nil, c.UpdateState(ctx, tiID, client.StateUpdate{State: client.StateUpForRetry})
		}, fakeapi.Request{Method: "PATCH", Path: "/execution/task-instances/" + tiID + "/state"},
			`{"state":"up_for_retry","end_date":"2026-11-27T13:00:00Z"}`, nil},
		{"up_for_reschedule", fakeapi.Reply{Status: 204}, func(c *client.Client) (any, error) {
			return nil, c.UpdateState(ctx, tiID, client.StateUpdate{State: client.StateUpForReschedule, EndDate: end, RescheduleDate: end.Add(time.Hour)})
		}, fakeapi.Request{Method: "PATCH", Path: "/execution/task-instances/" + tiID + "/state"},
			`{"state":"up_for_reschedule","end_date":"2026-11-27T12:00:00Z","reschedule_date":"2026-11-27T13:00:00Z"}`, nil},
		{"deferred", fakeapi.Reply{Status: 204}, func(c *client.Client) (any, error) {
			d := 90 * time.Second
			return nil, c.UpdateState(ctx, tiID, client.StateUpdate{State: client.StateDeferred, Classpath: "a.B", NextMethod: "resume",
				TriggerTimeout: &d})
		}, fakeapi.Request{Method: "PATCH", Path: "/execution/task-instances/" + tiID + "/state"},
			`{"state":"deferred","classpath":"a.B","next_method":"resume","trigger_kwargs":{},"trigger_timeout":90}`, nil},
		{"rendered fields", fakeapi.Reply{Status: 201, Body: `{"message":"Rendered task instance fields successfully set"}`}, func(c *client.Client) (any, error) {
			return nil, c.SetRenderedFields(ctx, tiID, map[string]any{"sql": "SELECT 1"})
		}, fakeapi.Request{Method: "PUT", Path: "/execution/task-instances/" + tiID + "/rtif"}, `{"sql":"SELECT 1"}`, nil},
		{"get variable", fakeapi.Reply{Status: 200, Body: `{"key":"a/b c","value":"v"}`}, func(c *client.Client) (any, error) {
			return c.GetVariable(ctx, "a/b c")
		}, fakeapi.Request{Method: "GET", Path: "/execution/variables/a/b%20c"}, "", &client.Variable{Key: "a/b c", Value: ptr("v")}},
		{"set variable", fakeapi.Reply{Status: 201, Body: `{"message":"Variable successfully set"}`}, func(c *client.Client) (any, error) {
			return nil, c.SetVariable(ctx, "k", "v", &desc)
		}, fakeapi.Request{Method: "PUT", Path: "/execution/variables/k"}, `{"val":"v","description":"d"}`, nil},
		{"set variable without description", fakeapi.Reply{Status: 201, Body: `{"message":"Variable successfully set"}`}, func(c *client.Client) (any, error) {
			return nil, c.SetVariable(ctx, "k", "v", nil)
		}, fakeapi.Request{Method: "PUT", Path: "/execution/variables/k"}, `{"val":"v","description":null}`, nil},
		{"delete variable", fakeapi.Reply{Status: 204}, func(c *client.Client) (any, error) { return nil, c.DeleteVariable(ctx, "k") },
			fakeapi.Request{Method: "DELETE", Path: "/execution/variables/k"}, "", nil},
		{"get connection", fakeapi.Reply{Status: 200, Body: `{"conn_id":"db","conn_type":"postgres","host":"h","port":5432,"extra":"{}"}`},
			func(c *client.Client) (any, error) { return c.GetConnection(ctx, "db") },
			fakeapi.Request{Method: "GET", Path: "/execution/connections/db"}, "",
			&client.Connection{ConnID: "db", ConnType: "postgres", Host: ptr("h"), Port: ptr(5432), Extra: ptr("{}")}},
		{"get xcom", fakeapi.Reply{Status: 200, Body: `{"key":"return_value","value":{"rows":3}}`},
			func(c *client.Client) (any, error) {
				v, err := c.GetXCom(ctx, ref)
				return string(v), err
			},
			fakeapi.Request{Method: "GET", Path: "/execution/xcoms/etl/manual__2026-11-27T10:00:00+00:00/extract%2Fx/return_value", Query: "map_index=-1"},
			"", `{"rows":3}`},
		{"set xcom", fakeapi.Reply{Status: 201, Body: `{"message":"XCom successfully set"}`},
			func(c *client.Client) (any, error) { return nil, c.SetXCom(ctx, mapped, json.RawMessage(`[1, 2]`)) },
			fakeapi.Request{Method: "POST", Path: "/execution/xcoms/etl/r/t/a/b", Query: "map_index=3", Body: `[1, 2]`}, "", nil},
		{"delete xcom", fakeapi.Reply{Status: 200, Body: `{"message":"XCom with key: a/b successfully deleted."}`},
			func(c *client.Client) (any, error) { return nil, c.DeleteXCom(ctx, mapped) },
			fakeapi.Request{Method: "DELETE", Path: "/execution/xcoms/etl/r/t/a/b", Query: "map_index=3"}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, tc.reply)
			c, _ := newClient(t, api.URL+"/execution/",
				client.WithClock(func() time.Time { return time.Date(2026, 11, 27, 14, 0, 0, 0, time.FixedZone("CET", 3600)) }))
			out, err := tc.call(c)
			if err != nil {
				t.Fatal(err)
			}
			reqs := api.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			got := fakeapi.Request{Method: reqs[0].Method, Path: reqs[0].Path, Query: reqs[0].Query, Body: reqs[0].Body}
			want := tc.want
			if tc.wantBody != "" {
				var g, w any
				if err := json.Unmarshal([]byte(got.Body), &g); err != nil {
					t.Fatalf("body %q: %v", got.Body, err)
				}
				_ = json.Unmarshal([]byte(tc.wantBody), &w)
				if diff := cmp.Diff(w, g); diff != "" {
					t.Errorf("body (-want +got):\n%s", diff)
				}
				got.Body = ""
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if tc.wantOut != nil {
				if diff := cmp.Diff(tc.wantOut, out); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestRefusedLocally: calls that cannot be right are refused before any
// request.
func TestRefusedLocally(t *testing.T) {
	api := newFakeAPI(t, fakeapi.Reply{Status: 204})
	c, _ := newClient(t, api.URL)
	ctx := context.Background()
	for name, err := range map[string]error{
		"empty variable key": c.SetVariable(ctx, "", "v", nil),
		"xcom without key":   c.SetXCom(ctx, client.XComRef{DagID: "d", RunID: "r", TaskID: "t"}, json.RawMessage(`1`)),
		"xcom not JSON":      c.SetXCom(ctx, client.XComRef{DagID: "d", RunID: "r", TaskID: "t", Key: "k"}, json.RawMessage(`{`)),
		"no state":           c.UpdateState(ctx, tiID, client.StateUpdate{}),
		"deferred, no class": c.UpdateState(ctx, tiID, client.StateUpdate{State: client.StateDeferred}),
	} {
		if err == nil || !strings.HasPrefix(err.Error(), "client: ") {
			t.Errorf("%s: error %v, want a client: error", name, err)
		}
	}
	if n := len(api.Requests()); n != 0 {
		t.Errorf("%d requests sent, want none", n)
	}
}

// TestNew: base URLs are normalized to the API root; bad ones and bad
// retry bounds are refused.
func TestNew(t *testing.T) {
	for _, tc := range []struct {
		base    string
		opts    []client.Option
		want    string // path the heartbeat goes to; "" = New fails
		wantErr bool
	}{
		{base: "", want: "/execution/task-instances/" + tiID + "/heartbeat"},
		{base: "/", want: "/execution/task-instances/" + tiID + "/heartbeat"},
		{base: "/execution", want: "/execution/task-instances/" + tiID + "/heartbeat"},
		{base: "/execution/", want: "/execution/task-instances/" + tiID + "/heartbeat"},
		{base: "/prefix/execution", want: "/prefix/execution/task-instances/" + tiID + "/heartbeat"},
		{base: "/?x=1", wantErr: true},
		{base: "", opts: []client.Option{client.WithRetryWait(2*time.Second, time.Second)}, wantErr: true},
		{base: "", opts: []client.Option{client.WithRetryWait(-time.Second, time.Second)}, wantErr: true},
	} {
		api := newFakeAPI(t, fakeapi.Reply{Status: 204})
		c, err := client.New(api.URL+tc.base, tc.opts...)
		if tc.wantErr {
			if err == nil {
				t.Errorf("New(%q): no error", tc.base)
			}
			continue
		}
		if err != nil {
			t.Fatalf("New(%q): %v", tc.base, err)
		}
		if err := heartbeat(c); err != nil {
			t.Fatal(err)
		}
		if got := api.Requests()[0].Path; got != tc.want {
			t.Errorf("New(%q): heartbeat went to %s, want %s", tc.base, got, tc.want)
		}
	}
	for _, bad := range []string{"ftp://h/x", "127.0.0.1:8080", "http://", "://x"} {
		if _, err := client.New(bad); err == nil {
			t.Errorf("New(%q): no error", bad)
		}
	}
}

// TestConcurrentCallsShareToken: heartbeats and task calls run at once;
// the token is swapped under a lock (the race detector checks) and every
// request carries one of the tokens the server issued.
func TestConcurrentCallsShareToken(t *testing.T) {
	api := newFakeAPI(t, fakeapi.Reply{Status: 204, Header: map[string]string{client.RefreshedTokenHeader: renewedToken}})
	c, _ := newClient(t, api.URL)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if err := heartbeat(c); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for _, r := range api.Requests() {
		if r.Auth != "Bearer "+workloadToken && r.Auth != "Bearer "+renewedToken {
			t.Fatalf("Authorization %q", r.Auth)
		}
	}
	if err := heartbeat(c); err != nil {
		t.Fatal(err)
	}
	if last := api.Requests()[80].Auth; last != "Bearer "+renewedToken {
		t.Errorf("request after the swaps: Authorization %q, want the renewed token", last)
	}
}

func ptr[T any](v T) *T { return &v }
