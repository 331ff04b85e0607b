package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/internal/fakeapi"
	"github.com/taskgate/taskgate/worker"
	"github.com/taskgate/taskgate/workload"
)

const (
	tiID          = "0193a5b4-8c1e-7d2f-9a3b-4c5d6e7f8091"
	dagID         = "etl"
	runID         = "manual__2026-11-27T10:00:00+00:00"
	taskID        = "extract"
	workloadToken = "eyJhbGciOiJIUzUxMiJ9.d29ya2xvYWQtdG9rZW4tcGF5bG9hZA.c2lnbmF0dXJlLW9mLXRoZS13b3JrbG9hZA"
	execToken     = "eyJhbGciOiJIUzUxMiJ9.ZXhlY3V0aW9uLXRva2VuLXBheWxvYWQ.c2lnbmF0dXJlLW9mLXRoZS1leGVjdXRpb24"
	renewedToken  = "eyJhbGciOiJIUzUxMiJ9.cmVuZXdlZC10b2tlbi1wYXlsb2FkLXh4.c2lnbmF0dXJlLW9mLXRoZS1yZW5ld2Vk"

	// waitTimeout only stops a hung test; no assertion depends on it.
	waitTimeout = 20 * time.Second
)

// fakeNow is the supervisor's clock in every test.
func fakeNow() time.Time { return time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC) }

// fakeAPI is a small Execution API: /run answers with a run context and an
// execution token, heartbeats follow a script (204 past its end), state
// updates and XCom writes are recorded and accepted. Tests set its fields
// before the supervisor starts.
type fakeAPI struct {
	*fakeapi.Server
	run         *fakeapi.Reply // nil: 200 with a run context
	maxTries    int
	tryNumber   int
	keysToClear []string
	heartbeats  []fakeapi.Reply // per HTTP request
	heartbeatN  int
	xcomPush    *fakeapi.Reply // nil: 201
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{tryNumber: 1}
	f.Server = fakeapi.New(t, f.answer)
	return f
}

// answer is called by fakeapi.Server, one request at a time.
func (f *fakeAPI) answer(r fakeapi.Request) fakeapi.Reply {
	switch path := r.Path; {
	case strings.HasSuffix(path, "/run"):
		if f.run != nil {
			return *f.run
		}
		keys, _ := json.Marshal(append([]string{}, f.keysToClear...))
		return fakeapi.Reply{Status: 200, Body: fmt.Sprintf(`{"dag_run":{"dag_id":%q,"run_id":%q,"run_after":"2026-11-27T10:00:00Z","run_type":"manual",
			"state":"running","consumed_asset_events":[],"conf":{}},"task_reschedule_count":0,"max_tries":%d,"variables":[],
			"connections":[],"xcom_keys_to_clear":%s,"should_retry":%t}`, dagID, runID, f.maxTries, keys,
			f.maxTries != 0 && f.tryNumber <= f.maxTries),
			Header: map[string]string{client.RefreshedTokenHeader: execToken}}
	case strings.HasSuffix(path, "/heartbeat"):
		rep := fakeapi.Reply{Status: 204}
		if f.heartbeatN < len(f.heartbeats) {
			rep = f.heartbeats[f.heartbeatN]
		}
		f.heartbeatN++
		return rep
	case strings.HasSuffix(path, "/state"):
		return fakeapi.Reply{Status: 204}
	case r.Method == http.MethodPost && f.xcomPush != nil:
		return *f.xcomPush
	case r.Method == http.MethodPost:
		return fakeapi.Reply{Status: 201, Body: `{"message":"XCom successfully set"}`}
	case r.Method == http.MethodDelete:
		return fakeapi.Reply{Status: 200, Body: `{"message":"deleted"}`}
	default:
		return fakeapi.NotFound
	}
}

// fakeTicker is ticked by the test.
type fakeTicker struct{ c chan time.Time }

func (f *fakeTicker) C() <-chan time.Time { return f.c }
func (f *fakeTicker) Stop()               {}

// harness is one supervised task under test.
type harness struct {
	t      *testing.T
	api    *fakeAPI
	ticker *fakeTicker
	logs   *observer.ObservedLogs
	gate   string // the command may wait for this file to exist
	cfg    worker.Config
	done   chan outcome
	cancel context.CancelFunc
}

type outcome struct {
	res     worker.Result
	err     error
	elapsed time.Duration
}

func task() workload.ExecuteTask {
	return workload.ExecuteTask{Type: "ExecuteTask", Token: workloadToken, TI: workload.TaskInstanceDTO{
		ID: tiID, DagID: dagID, RunID: runID, TaskID: taskID, TryNumber: 1, MapIndex: -1,
	}}
}

// newHarness prepares a supervisor for script, run by sh -c, on a fresh
// fake API. The client never sleeps between retries.
func newHarness(t *testing.T, script string, opts ...client.Option) *harness {
	t.Helper()
	api := newFakeAPI(t)
	core, logs := observer.New(zapcore.DebugLevel)
	c, err := client.New(api.URL, append([]client.Option{
		client.WithToken(workloadToken),
		client.WithSleep(func(ctx context.Context, _ time.Duration) error { return ctx.Err() }),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, api: api, ticker: &fakeTicker{c: make(chan time.Time)}, logs: logs,
		gate: filepath.Join(t.TempDir(), "gate"), done: make(chan outcome, 1)}
	h.cfg = worker.Config{
		API:      c,
		Task:     task(),
		Command:  []string{"sh", "-c", script},
		Env:      []string{"PATH=" + os.Getenv("PATH"), "GATE=" + h.gate},
		Hostname: "worker-1.example", Unixname: "airflow", PID: 4242,
		KillGrace: 5 * time.Second,
		Now:       fakeNow,
		NewTicker: func(time.Duration) worker.Ticker { return h.ticker },
		Logger:    zap.New(core),
	}
	return h
}

// waitForGate is a shell fragment that blocks until the test opens the gate.
const waitForGate = `while [ ! -e "$GATE" ]; do sleep 0.01; done; `

// start runs the supervisor in the background.
func (h *harness) start() {
	h.t.Helper()
	sup, err := worker.New(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.t.Cleanup(cancel)
	begin := time.Now()
	go func() {
		res, err := sup.Run(ctx)
		h.done <- outcome{res, err, time.Since(begin)}
	}()
}

// run runs the supervisor to its end.
func (h *harness) run() outcome {
	h.t.Helper()
	h.start()
	return h.wait()
}

// wait waits (bounded) for the supervisor to return.
func (h *harness) wait() outcome {
	h.t.Helper()
	select {
	case o := <-h.done:
		return o
	case <-time.After(waitTimeout):
		h.t.Fatalf("the supervisor did not return within %s; log:\n%s", waitTimeout, h.logText())
		return outcome{}
	}
}

// tick delivers one heartbeat tick; it returns once the heartbeat loop took
// it, which also means the previous heartbeat was handled.
func (h *harness) tick() {
	h.t.Helper()
	select {
	case h.ticker.c <- fakeNow():
	case o := <-h.done:
		h.done <- o
		h.t.Fatalf("the supervisor returned before the tick; log:\n%s", h.logText())
	case <-time.After(waitTimeout):
		h.t.Fatalf("the heartbeat loop did not take a tick within %s", waitTimeout)
	}
}

// openGate lets a command waiting for the gate go on.
func (h *harness) openGate() {
	h.t.Helper()
	if err := os.WriteFile(h.gate, nil, 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// waitOutput waits (bounded) until the command printed line on stdout.
func (h *harness) waitOutput(line string) {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		for _, l := range h.output("stdout") {
			if l == line {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("the command did not print %q within %s; log:\n%s", line, waitTimeout, h.logText())
}

// output is the command's logged lines of one stream.
func (h *harness) output(stream string) []string {
	var out []string
	for _, e := range h.logs.FilterMessage("task output").All() {
		m := e.ContextMap()
		if m["stream"] == stream {
			out = append(out, fmt.Sprint(m["line"]))
		}
	}
	return out
}

// logText renders the observed log as JSON lines.
func (h *harness) logText() string {
	var b strings.Builder
	for _, e := range h.logs.All() {
		m := e.ContextMap()
		m["msg"] = e.Message
		m["level"] = e.Level.String()
		j, _ := json.Marshal(m)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// hasLog reports whether an entry with msg was logged.
func (h *harness) hasLog(msg string) bool { return h.logs.FilterMessage(msg).Len() > 0 }

// stateBodies are the decoded bodies of the state updates sent.
func (h *harness) stateBodies() []map[string]any {
	var out []map[string]any
	for _, r := range h.api.Matching(http.MethodPatch, "/state") {
		var m map[string]any
		if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
			h.t.Fatalf("state body %q: %v", r.Body, err)
		}
		out = append(out, m)
	}
	return out
}
