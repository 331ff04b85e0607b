package worker_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/internal/fakeapi"
	"github.com/taskgate/taskgate/worker"
)

// TestSuccess: the whole happy path. /run with the workload token and the
// worker's identity; the execution token from /run, then each renewed one,
// on the following calls; heartbeats while the command runs; the command
// sees its identity but no token; its output is logged line by line; its
// last stdout line becomes the return_value XCom; success is reported.
func TestSuccess(t *testing.T) {
	h := newHarness(t, waitForGate+`echo "starting $AIRFLOW_CTX_TASK_ID"; echo "to stderr" >&2; env; `+
		`printf '{"dag":"%s","run":"%s","task":"%s","map":"%s","try":"%s","ti":"%s"}\n' "$AIRFLOW_CTX_DAG_ID" `+
		`"$AIRFLOW_CTX_DAG_RUN_ID" "$AIRFLOW_CTX_TASK_ID" "$AIRFLOW_CTX_MAP_INDEX" "$AIRFLOW_CTX_TRY_NUMBER" "$TASKGATE_TI_ID"`)
	h.cfg.Env = append(h.cfg.Env, "LEAKED_TOKEN=Bearer "+workloadToken, "AIRFLOW_CTX_DAG_ID=not-this-one")
	h.api.heartbeats = []fakeapi.Reply{{Status: 204}, {Status: 204, Header: map[string]string{client.RefreshedTokenHeader: renewedToken}}}
	h.start()
	h.tick()
	h.tick()
	h.tick() // the second heartbeat (which renewed the token) was handled
	h.openGate()
	o := h.wait()
	if o.err != nil {
		t.Fatalf("Run: %v\nlog:\n%s", o.err, h.logText())
	}
	wantValue := `{"dag":"etl","run":"manual__2026-11-27T10:00:00+00:00","task":"extract","map":"-1","try":"1","ti":"` + tiID + `"}`
	want := worker.Result{ExitCode: 0, State: client.StateSuccess, ReturnValue: json.RawMessage(wantValue)}
	if diff := cmp.Diff(want, o.res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}

	// /run: the workload token and the worker's identity.
	runs := h.api.Matching(http.MethodPatch, "/run")
	if len(runs) != 1 || runs[0].Token() != workloadToken || runs[0].Path != "/execution/task-instances/"+tiID+"/run" {
		t.Fatalf("/run requests: %+v", runs)
	}
	var runBody map[string]any
	_ = json.Unmarshal([]byte(runs[0].Body), &runBody)
	if diff := cmp.Diff(map[string]any{"state": "running", "hostname": "worker-1.example", "unixname": "airflow",
		"pid": float64(4242), "start_date": "2026-11-27T10:30:00Z"}, runBody); diff != "" {
		t.Errorf("/run body (-want +got):\n%s", diff)
	}
	// Heartbeats with the worker's identity and the execution token.
	hbs := h.api.Matching(http.MethodPut, "/heartbeat")
	if len(hbs) < 2 {
		t.Fatalf("%d heartbeats, want at least 2", len(hbs))
	}
	for i, hb := range hbs {
		if hb.Body != `{"hostname":"worker-1.example","pid":4242}` {
			t.Errorf("heartbeat %d body %s", i, hb.Body)
		}
	}
	if hbs[0].Token() != execToken || hbs[1].Token() != execToken {
		t.Errorf("heartbeats 1-2 carried %.30s…/%.30s…, want the execution token from /run", hbs[0].Token(), hbs[1].Token())
	}
	// The return value, with the renewed token.
	xcoms := h.api.Matching(http.MethodPost, "")
	if len(xcoms) != 1 {
		t.Fatalf("%d XCom pushes, want 1", len(xcoms))
	}
	got := xcoms[0]
	got.Header = nil
	if diff := cmp.Diff(fakeapi.Request{Method: "POST", Path: "/execution/xcoms/etl/" + runID + "/extract/return_value",
		Query: "map_index=-1", Auth: "Bearer " + renewedToken, Body: wantValue}, got); diff != "" {
		t.Errorf("XCom push (-want +got):\n%s", diff)
	}
	// success, with the renewed token.
	if diff := cmp.Diff([]map[string]any{{"state": "success", "end_date": "2026-11-27T10:30:00Z",
		"task_outlets": []any{}, "outlet_events": []any{}}}, h.stateBodies()); diff != "" {
		t.Errorf("state updates (-want +got):\n%s", diff)
	}
	if st := h.api.Matching(http.MethodPatch, "/state"); st[0].Token() != renewedToken {
		t.Errorf("state update carried %.30s…, want the renewed token", st[0].Token())
	}

	// Output, one entry per line and stream; no token anywhere in the log.
	if got := h.output("stderr"); !cmp.Equal(got, []string{"to stderr"}) {
		t.Errorf("stderr lines %q", got)
	}
	stdout := h.output("stdout")
	if len(stdout) < 3 || stdout[0] != "starting extract" || stdout[len(stdout)-1] != wantValue {
		t.Errorf("stdout lines %q", stdout)
	}
	env := map[string]bool{}
	for _, l := range stdout {
		env[l] = true
		if strings.HasPrefix(l, "LEAKED_TOKEN=") {
			t.Errorf("the command's environment holds the token variable: %s", l)
		}
	}
	for _, kv := range []string{"AIRFLOW_CTX_DAG_ID=etl", "AIRFLOW_CTX_DAG_RUN_ID=" + runID, "AIRFLOW_CTX_TASK_ID=extract",
		"AIRFLOW_CTX_MAP_INDEX=-1", "AIRFLOW_CTX_TRY_NUMBER=1", "TASKGATE_TI_ID=" + tiID} {
		if !env[kv] {
			t.Errorf("the command's environment lacks %s", kv)
		}
	}
	log := h.logText()
	for _, tok := range []string{workloadToken, execToken, renewedToken} {
		for _, part := range strings.Split(tok, ".")[1:] {
			if strings.Contains(log, part) {
				t.Errorf("the log holds (part of) a token:\n%s", log)
			}
		}
	}
}

// TestFinalState: how the command ends decides the XCom and the state: a
// JSON last line is pushed only on success; a failure is up_for_retry while
// tries are left (try_number <= max_tries) and failed otherwise; the worker
// exits with the command's code.
func TestFinalState(t *testing.T) {
	for _, tc := range []struct {
		name      string
		script    string
		tryNumber int
		maxTries  int
		want      worker.Result
		wantState map[string]any
		wantErr   bool
	}{
		{name: "exit 0 with a JSON last line", script: `echo working; echo '[1, "two", {"3": null}]'`,
			want: worker.Result{State: client.StateSuccess, ReturnValue: json.RawMessage(`[1, "two", {"3": null}]`)}},
		{name: "exit 0, last line unterminated JSON", script: `printf 'x\n42'`,
			want: worker.Result{State: client.StateSuccess, ReturnValue: json.RawMessage(`42`)}},
		{name: "exit 0, CRLF and spaces around JSON", script: `printf '  {"a": 1}  \r\n'`,
			want: worker.Result{State: client.StateSuccess, ReturnValue: json.RawMessage(`{"a": 1}`)}},
		{name: "exit 0 with a text last line", script: `echo '{"a":1}'; echo done`,
			want: worker.Result{State: client.StateSuccess}},
		{name: "exit 0 with no output", script: `true`,
			want: worker.Result{State: client.StateSuccess}},
		{name: "exit 0 with an empty last line", script: `echo '{"a":1}'; echo`,
			want: worker.Result{State: client.StateSuccess}},
		{name: "exit 3 with tries left", script: `echo '{"a":1}'; exit 3`, tryNumber: 1, maxTries: 2,
			want: worker.Result{ExitCode: 3, State: client.StateUpForRetry}},
		{name: "exit 3 on the last try", script: `exit 3`, tryNumber: 2, maxTries: 2,
			want: worker.Result{ExitCode: 3, State: client.StateUpForRetry}},
		{name: "exit 3 with no tries left", script: `exit 3`, tryNumber: 3, maxTries: 2,
			want: worker.Result{ExitCode: 3, State: client.StateFailed}},
		{name: "exit 1 without retries", script: `exit 1`, tryNumber: 1, maxTries: 0,
			want: worker.Result{ExitCode: 1, State: client.StateFailed}},
		{name: "killed by a signal", script: `kill -KILL $$`, tryNumber: 1, maxTries: 1,
			want: worker.Result{ExitCode: 137, State: client.StateUpForRetry, Signal: syscall.SIGKILL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.script)
			h.cfg.Task.TI.TryNumber = max(tc.tryNumber, 1)
			h.api.tryNumber, h.api.maxTries = h.cfg.Task.TI.TryNumber, tc.maxTries
			o := h.run()
			if o.err != nil {
				t.Fatalf("Run: %v", o.err)
			}
			if diff := cmp.Diff(tc.want, o.res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			wantState := map[string]any{"state": string(tc.want.State), "end_date": "2026-11-27T10:30:00Z"}
			if tc.want.State == client.StateSuccess {
				wantState["task_outlets"], wantState["outlet_events"] = []any{}, []any{}
			}
			if diff := cmp.Diff([]map[string]any{wantState}, h.stateBodies()); diff != "" {
				t.Errorf("state updates (-want +got):\n%s", diff)
			}
			xcoms := h.api.Matching(http.MethodPost, "")
			switch {
			case tc.want.ReturnValue == nil && len(xcoms) != 0:
				t.Errorf("XCom pushed: %+v", xcoms)
			case tc.want.ReturnValue != nil && (len(xcoms) != 1 || xcoms[0].Body != string(tc.want.ReturnValue)):
				t.Errorf("XCom pushes %+v, want one with %s", xcoms, tc.want.ReturnValue)
			}
		})
	}
}

// TestCommandDoesNotStart: a command that cannot start fails the try like
// a failing command, reported as such.
func TestCommandDoesNotStart(t *testing.T) {
	h := newHarness(t, "")
	h.cfg.Command = []string{filepath.Join(t.TempDir(), "no-such-program")}
	h.api.maxTries = 1
	o := h.run()
	if o.err == nil || !strings.HasPrefix(o.err.Error(), "worker: start command") {
		t.Errorf("error %v, want a worker: start command error", o.err)
	}
	if o.res.ExitCode == 0 || o.res.State != client.StateUpForRetry {
		t.Errorf("result %+v, want a non-zero exit code and up_for_retry", o.res)
	}
}

// TestServerStopsCommand: a heartbeat answered 404, 409 or 410 means the
// task must not run any more: the command's process group gets SIGTERM, no
// state is reported (the server already decided), and the worker exits 1.
func TestServerStopsCommand(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply fakeapi.Reply
	}{
		{"409 not_running", fakeapi.Reply{Status: 409, Body: `{"detail":{"reason":"not_running","message":"TI is no longer in the running state and task should terminate","current_state":"failed"}}`}},
		{"409 running_elsewhere", fakeapi.Reply{Status: 409, Body: `{"detail":{"reason":"running_elsewhere","message":"TI is already running elsewhere","current_hostname":"x","current_pid":1}}`}},
		{"404", fakeapi.Reply{Status: 404, Body: `{"detail":{"reason":"not_found","message":"Task Instance not found"}}`}},
		{"410", fakeapi.Reply{Status: 410, Body: `{"detail":{"reason":"not_found","message":"Task Instance not found in the working set; its attempt has been archived"}}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The shell waits for a child in the same group: both must go.
			h := newHarness(t, `echo ready; sleep 30; echo survived`)
			h.api.heartbeats = []fakeapi.Reply{{Status: 204}, tc.reply}
			h.start()
			h.waitOutput("ready")
			h.tick()
			h.tick()
			o := h.wait()
			if o.err != nil {
				t.Fatalf("Run: %v", o.err)
			}
			want := worker.Result{ExitCode: 1, Stopped: worker.StopServer, Signal: syscall.SIGTERM}
			if diff := cmp.Diff(want, o.res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if o.elapsed >= h.cfg.KillGrace {
				t.Errorf("took %s: SIGTERM should have been enough", o.elapsed)
			}
			if n := len(h.api.Matching(http.MethodPatch, "/state")); n != 0 {
				t.Errorf("%d state updates, want none", n)
			}
			if n := len(h.api.Matching(http.MethodPut, "/heartbeat")); n != 2 {
				t.Errorf("%d heartbeats, want 2 (none after the refusal)", n)
			}
			if !h.hasLog("server says the task must stop") {
				t.Errorf("no log entry for the refusal; log:\n%s", h.logText())
			}
		})
	}
}

// TestKillAfterGrace: a command that ignores SIGTERM is killed once the
// grace period is over.
func TestKillAfterGrace(t *testing.T) {
	h := newHarness(t, `trap '' TERM; echo ready; sleep 30`)
	h.cfg.KillGrace = 200 * time.Millisecond
	h.api.heartbeats = []fakeapi.Reply{{Status: 409, Body: `{"detail":{"reason":"not_running","message":"m","current_state":"success"}}`}}
	h.start()
	h.waitOutput("ready")
	h.tick()
	o := h.wait()
	want := worker.Result{ExitCode: 1, Stopped: worker.StopServer, Signal: syscall.SIGKILL}
	if diff := cmp.Diff(want, o.res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if o.elapsed < h.cfg.KillGrace {
		t.Errorf("killed after %s, before the %s grace period", o.elapsed, h.cfg.KillGrace)
	}
	if !h.hasLog("task command still running after the grace period; killing it") {
		t.Errorf("no log entry for the kill; log:\n%s", h.logText())
	}
}

// TestStoppedCommandMayCleanUp: a command that handles SIGTERM and exits
// cleanly is not killed, but the task still counts as stopped.
func TestStoppedCommandMayCleanUp(t *testing.T) {
	h := newHarness(t, `trap 'echo cleaning up; exit 0' TERM; echo ready; while :; do sleep 0.05; done`)
	h.api.heartbeats = []fakeapi.Reply{{Status: 404, Body: `{"detail":{"reason":"not_found","message":"Task Instance not found"}}`}}
	h.start()
	h.waitOutput("ready")
	h.tick()
	o := h.wait()
	want := worker.Result{ExitCode: 1, Stopped: worker.StopServer}
	if diff := cmp.Diff(want, o.res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if out := h.output("stdout"); out[len(out)-1] != "cleaning up" {
		t.Errorf("stdout %q, want the TERM handler's line last", out)
	}
	if n := len(h.api.Matching(http.MethodPost, "")); n != 0 {
		t.Errorf("a stopped task pushed %d XComs", n)
	}
}

// TestFailedHeartbeats: max_failed_heartbeats consecutive failures (after
// the client's own retries) stop the task, which is then reported failed;
// a success in between starts the count again.
func TestFailedHeartbeats(t *testing.T) {
	ise := fakeapi.Reply{Status: 500, Body: `{"message":"Internal server error"}`}
	expired := fakeapi.Reply{Status: 403, Body: `{"detail":"Invalid auth token"}`}
	ok := fakeapi.Reply{Status: 204}
	for _, tc := range []struct {
		name       string
		retries    int
		heartbeats []fakeapi.Reply // per HTTP request
		ticks      int
		wantStop   bool
	}{
		{"three 403s", 1, []fakeapi.Reply{expired, expired, expired}, 3, true},
		{"three 500s, each retried", 2, []fakeapi.Reply{ise, ise, ise, ise, ise, ise}, 3, true},
		{"mixed failures", 1, []fakeapi.Reply{ise, expired, {Status: 400, Body: `{"detail":"bad"}`}}, 3, true},
		{"a success resets the count", 1, []fakeapi.Reply{expired, expired, ok, expired, expired, ok}, 6, false},
		{"a retry that succeeds is no failure", 3, []fakeapi.Reply{ise, ise, ok, ise, ise, ok, ise, ise, ok}, 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, `echo ready; `+waitForGate+`echo '"finished"'`, client.WithRetries(tc.retries))
			h.cfg.MaxFailedHeartbeats = 3
			h.api.heartbeats = tc.heartbeats
			h.start()
			h.waitOutput("ready")
			for range tc.ticks {
				h.tick()
			}
			if !tc.wantStop {
				h.tick() // the last scripted heartbeat was handled
				h.openGate()
			}
			o := h.wait()
			want := worker.Result{State: client.StateSuccess, ReturnValue: json.RawMessage(`"finished"`)}
			if tc.wantStop {
				want = worker.Result{ExitCode: 1, State: client.StateFailed, Stopped: worker.StopHeartbeats, Signal: syscall.SIGTERM}
			}
			if diff := cmp.Diff(want, o.res); diff != "" {
				t.Errorf("result (-want +got):\n%s\nlog:\n%s", diff, h.logText())
			}
			if o.err != nil {
				t.Errorf("Run: %v", o.err)
			}
			if got := len(h.api.Matching(http.MethodPut, "/heartbeat")); got < len(tc.heartbeats) {
				t.Errorf("%d heartbeat requests, want at least %d", got, len(tc.heartbeats))
			}
			if tc.wantStop != h.hasLog("too many failed heartbeats; stopping the task") {
				t.Errorf("stop logged = %v, want %v", !tc.wantStop, tc.wantStop)
			}
		})
	}
}

// TestWorkerStopped: a cancelled context (the worker got SIGTERM) and a
// forwarded signal both stop the command; the task is reported failed and
// the exit code says which signal stopped the worker.
func TestWorkerStopped(t *testing.T) {
	t.Run("context cancelled", func(t *testing.T) {
		h := newHarness(t, `echo ready; sleep 30`)
		h.start()
		h.waitOutput("ready")
		h.cancel()
		o := h.wait()
		want := worker.Result{ExitCode: 128 + 15, State: client.StateFailed, Stopped: worker.StopSignal, Signal: syscall.SIGTERM}
		if diff := cmp.Diff(want, o.res); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		if o.err != nil {
			t.Errorf("Run: %v (the final report must outlive the cancelled context)", o.err)
		}
		if diff := cmp.Diff([]map[string]any{{"state": "failed", "end_date": "2026-11-27T10:30:00Z"}}, h.stateBodies()); diff != "" {
			t.Errorf("state updates (-want +got):\n%s", diff)
		}
	})
	// As a worker's signal handler does, the signal is delivered and the
	// context cancelled, in either order: the command gets the one signal.
	for _, signalFirst := range []bool{true, false} {
		name := "cancellation, then its signal, forward once"
		if signalFirst {
			name = "signal, then its cancellation, forward once"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, `trap 'echo got USR1' USR1; trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.05; done`)
			h.cfg.KillGrace = 300 * time.Millisecond
			sigs := make(chan os.Signal, 1)
			h.cfg.Signals = sigs
			h.start()
			h.waitOutput("ready")
			if signalFirst {
				sigs <- syscall.SIGUSR1
				h.cancel()
			} else {
				h.cancel()
				sigs <- syscall.SIGUSR1
			}
			o := h.wait()
			want := worker.Result{ExitCode: 128 + int(syscall.SIGUSR1), State: client.StateFailed, Stopped: worker.StopSignal,
				Signal: syscall.SIGKILL}
			if diff := cmp.Diff(want, o.res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			var got []string
			for _, l := range h.output("stdout") {
				if strings.HasPrefix(l, "got ") {
					got = append(got, l)
				}
			}
			if diff := cmp.Diff([]string{"got USR1"}, got); diff != "" {
				t.Errorf("signals the command received (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("signal forwarded", func(t *testing.T) {
		h := newHarness(t, `trap 'echo got USR1; exit 5' USR1; echo ready; while :; do sleep 0.05; done`)
		sigs := make(chan os.Signal, 1)
		h.cfg.Signals = sigs
		h.start()
		h.waitOutput("ready")
		sigs <- syscall.SIGUSR1
		o := h.wait()
		want := worker.Result{ExitCode: 128 + int(syscall.SIGUSR1), State: client.StateFailed, Stopped: worker.StopSignal}
		if diff := cmp.Diff(want, o.res); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		if out := h.output("stdout"); out[len(out)-1] != "got USR1" {
			t.Errorf("stdout %q: the command did not receive the forwarded signal", out)
		}
	})
}

// TestRunRefused: when /run is refused the command never starts.
func TestRunRefused(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	h := newHarness(t, `touch "$MARKER"`)
	h.cfg.Env = append(h.cfg.Env, "MARKER="+marker)
	h.api.run = &fakeapi.Reply{Status: 409, Body: `{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"success"}}`}
	o := h.run()
	if !errors.Is(o.err, client.ErrInvalidState) {
		t.Errorf("error %v, want ErrInvalidState", o.err)
	}
	if o.res.ExitCode != 1 {
		t.Errorf("exit code %d, want 1", o.res.ExitCode)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran although /run was refused")
	}
	if n := len(h.api.Matching("", "")); n != 1 {
		t.Errorf("%d requests, want only /run", n)
	}
}

// TestClearsXComsOfEarlierTry: the keys /run lists in xcom_keys_to_clear
// are deleted before the command runs.
func TestClearsXComsOfEarlierTry(t *testing.T) {
	h := newHarness(t, `echo '{"try": 2}'`)
	h.api.keysToClear = []string{"return_value", "a/b"}
	o := h.run()
	if o.err != nil || o.res.State != client.StateSuccess {
		t.Fatalf("Run: %+v %v", o.res, o.err)
	}
	var got []string
	for _, r := range h.api.Matching("", "") {
		if strings.Contains(r.Path, "/xcoms/") {
			got = append(got, r.Method+" "+strings.TrimPrefix(r.Path, "/execution/xcoms/etl/"+runID+"/extract/")+"?"+r.Query)
		}
	}
	want := []string{"DELETE return_value?map_index=-1", "DELETE a/b?map_index=-1", "POST return_value?map_index=-1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("XCom calls (-want +got):\n%s", diff)
	}
}

// TestXComRefused: a return value the server refuses fails the try.
func TestXComRefused(t *testing.T) {
	h := newHarness(t, `echo '{"big": true}'`)
	h.api.maxTries = 0
	h.api.xcomPush = &fakeapi.Reply{Status: 413, Body: `{"detail":"Request Entity Too Large"}`}
	o := h.run()
	if o.err == nil || !strings.Contains(o.err.Error(), "push return value") {
		t.Errorf("error %v, want the refused push", o.err)
	}
	if o.res.ExitCode != 1 || o.res.State != client.StateFailed {
		t.Errorf("result %+v, want exit 1 and failed", o.res)
	}
}

// TestNewRefuses: a supervisor needs an API, a command and a usable workload.
func TestNewRefuses(t *testing.T) {
	h := newHarness(t, "true")
	for name, mutate := range map[string]func(c *worker.Config){
		"no API":            func(c *worker.Config) { c.API = nil },
		"no command":        func(c *worker.Config) { c.Command = nil },
		"no token":          func(c *worker.Config) { c.Task.Token = "" },
		"bad ti id":         func(c *worker.Config) { c.Task.TI.ID = "x" },
		"negative interval": func(c *worker.Config) { c.HeartbeatInterval = -time.Second },
	} {
		cfg := h.cfg
		mutate(&cfg)
		if _, err := worker.New(cfg); err == nil || !strings.HasPrefix(err.Error(), "worker: ") {
			t.Errorf("%s: error %v, want a worker: error", name, err)
		}
	}
}
