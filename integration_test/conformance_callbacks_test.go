package integration_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/workload"
)

// Airflow's test_callbacks.py (execution_api/versions/head), case by case,
// on both stores, against the newest routes: PATCH /callbacks/{id}/run
// takes the callback's single-use "callback" token only ("cb:self") and
// swaps it, once, for an execution token whose sub is the callback; PATCH
// /callbacks/{id}/state takes that execution token. Airflow's test file
// overrides require_auth and still calls /run with POST and workload or
// execution tokens; each case below keeps what it asserts about the
// callback and the answer, with the token the newest route takes.

func callbackFixture(state workload.CallbackState) workload.Callback {
	return workload.Callback{ID: newID(), Type: "executor", FetchMethod: "import_path",
		Data: json.RawMessage(`{"path":"tests.fake.callback","kwargs":{},"executor":null}`), State: state,
		PriorityWeight: 1}
}

func TestConformanceCallbacks(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, b workersBackend)
	}{
		{"test_callbacks.py::TestCallbackRun::test_run_marks_callback_running_and_swaps_workload_token[callback]", func(t *testing.T, b workersBackend) {
			cb := callbackFixture(workload.CallbackQueued)
			e := newWorkersEnv(t, b, workersSeed{callbacks: []workload.Callback{cb}})
			r := e.send("PATCH", "/execution/callbacks/"+cb.ID+"/run", e.token(cb.ID, "callback"), "")
			if r.status != 204 {
				t.Fatalf("%s, want 204", r)
			}
			tok := r.header.Get("Refreshed-API-Token")
			if tok == "" {
				t.Fatal("no Refreshed-API-Token")
			}
			if c := e.claimsOf(tok); c["sub"] != cb.ID || c["scope"] != "execution" {
				t.Errorf("execution token claims = %v", c)
			}
			// The swapped token reports the callback's end.
			if r := e.send("PATCH", "/execution/callbacks/"+cb.ID+"/state", "Bearer "+tok, `{"state":"success"}`); r.status != 204 {
				t.Errorf("state with the swapped token: %s", r)
			}
			if state, _ := e.callbackState(cb.ID); state != "success" {
				t.Errorf("stored state %q", state)
			}
		}},
		{"test_callbacks.py::TestCallbackRun::test_run_returns_409_for_non_runnable_state", func(t *testing.T, b workersBackend) {
			for _, st := range []workload.CallbackState{workload.CallbackPending, workload.CallbackScheduled,
				workload.CallbackSuccess, workload.CallbackFailed, workload.CallbackRunning} {
				t.Run(string(st), func(t *testing.T) {
					cb := callbackFixture(st)
					e := newWorkersEnv(t, b, workersSeed{callbacks: []workload.Callback{cb}})
					r := e.send("PATCH", "/execution/callbacks/"+cb.ID+"/run", e.token(cb.ID, "callback"), "")
					if r.status != 409 {
						t.Fatalf("%s, want 409", r)
					}
					d := detail(t, r)
					// The newest route names the state previous_state.
					if d["reason"] != "invalid_state" || d["previous_state"] != string(st) {
						t.Errorf("detail = %v", d)
					}
					if r.header.Get("Refreshed-API-Token") != "" {
						t.Error("a refused exchange minted a token")
					}
				})
			}
		}},
		{"test_callbacks.py::TestCallbackRun::test_run_returns_404_when_callback_missing", func(t *testing.T, b workersBackend) {
			e := newWorkersEnv(t, b, workersSeed{})
			id := newID()
			r := e.send("PATCH", "/execution/callbacks/"+id+"/run", e.token(id, "callback"), "")
			if r.status != 404 || detail(t, r)["reason"] != "not_found" {
				t.Fatalf("%s, want 404 not_found", r)
			}
		}},
		{"test_callbacks.py::TestCallbackRun::test_run_rejects_mismatched_sub", func(t *testing.T, b workersBackend) {
			cb := callbackFixture(workload.CallbackQueued)
			e := newWorkersEnv(t, b, workersSeed{callbacks: []workload.Callback{cb}})
			r := e.send("PATCH", "/execution/callbacks/"+cb.ID+"/run", e.token(newID(), "callback"), "")
			if r.status != 403 || !strings.Contains(string(r.body), `"Token subject does not match callback ID"`) {
				t.Fatalf("%s, want 403", r)
			}
			if state, _ := e.callbackState(cb.ID); state != "queued" {
				t.Errorf("stored state %q, want queued", state)
			}
		}},
		{"test_callbacks.py::TestCallbackUpdateState::test_update_state_writes_terminal_state", func(t *testing.T, b workersBackend) {
			for _, st := range []string{"success", "failed"} {
				t.Run(st, func(t *testing.T) {
					cb := callbackFixture(workload.CallbackRunning)
					e := newWorkersEnv(t, b, workersSeed{callbacks: []workload.Callback{cb}})
					r := e.send("PATCH", "/execution/callbacks/"+cb.ID+"/state", e.token(cb.ID, "execution"),
						`{"state":"`+st+`","output":"an output"}`)
					if r.status != 204 {
						t.Fatalf("%s, want 204", r)
					}
					state, output := e.callbackState(cb.ID)
					if state != st || output == nil || *output != "an output" {
						t.Errorf("stored %q %v", state, output)
					}
				})
			}
		}},
		{"test_callbacks.py::TestCallbackUpdateState::test_update_state_returns_409_when_not_running", func(t *testing.T, b workersBackend) {
			for _, st := range []workload.CallbackState{workload.CallbackQueued, workload.CallbackPending,
				workload.CallbackScheduled, workload.CallbackSuccess, workload.CallbackFailed} {
				t.Run(string(st), func(t *testing.T) {
					cb := callbackFixture(st)
					e := newWorkersEnv(t, b, workersSeed{callbacks: []workload.Callback{cb}})
					r := e.send("PATCH", "/execution/callbacks/"+cb.ID+"/state", e.token(cb.ID, "execution"),
						`{"state":"success"}`)
					if r.status != 409 {
						t.Fatalf("%s, want 409", r)
					}
					if d := detail(t, r); d["reason"] != "invalid_state" || d["current_state"] != string(st) {
						t.Errorf("detail = %v", d)
					}
				})
			}
		}},
		{"test_callbacks.py::TestCallbackUpdateState::test_update_state_returns_404_when_callback_missing", func(t *testing.T, b workersBackend) {
			e := newWorkersEnv(t, b, workersSeed{})
			id := newID()
			r := e.send("PATCH", "/execution/callbacks/"+id+"/state", e.token(id, "execution"), `{"state":"success"}`)
			if r.status != 404 {
				t.Fatalf("%s, want 404", r)
			}
		}},
		{"test_callbacks.py::TestCallbackUpdateState::test_update_state_rejects_mismatched_sub", func(t *testing.T, b workersBackend) {
			cb := callbackFixture(workload.CallbackRunning)
			e := newWorkersEnv(t, b, workersSeed{callbacks: []workload.Callback{cb}})
			r := e.send("PATCH", "/execution/callbacks/"+cb.ID+"/state", e.token(newID(), "execution"), `{"state":"success"}`)
			if r.status != 403 {
				t.Fatalf("%s, want 403", r)
			}
		}},
		{"test_callbacks.py::TestCallbackUpdateState::test_update_state_rejects_workload_scope", func(t *testing.T, b workersBackend) {
			cb := callbackFixture(workload.CallbackRunning)
			e := newWorkersEnv(t, b, workersSeed{callbacks: []workload.Callback{cb}})
			r := e.send("PATCH", "/execution/callbacks/"+cb.ID+"/state", e.token(cb.ID, "workload"), `{"state":"success"}`)
			if r.status != 403 || !strings.Contains(string(r.body), "Token type 'workload' not allowed") {
				t.Fatalf("%s, want 403 Token type 'workload' not allowed", r)
			}
		}},
	}
	for _, tt := range tests {
		for _, b := range workersBackends {
			t.Run(tt.name+"/"+string(b), func(t *testing.T) { tt.run(t, b) })
		}
	}
}

// TestCallbackTokens: a callback's token buys its own /run once and nothing
// else; the execution token it buys reports on its own callback only, and
// acts on shared data only while the callback runs.
func TestCallbackTokens(t *testing.T) {
	for _, b := range workersBackends {
		t.Run(string(b), func(t *testing.T) {
			cb := callbackFixture(workload.CallbackQueued)
			other := callbackFixture(workload.CallbackRunning)
			e := newWorkersEnv(t, b, workersSeed{callbacks: []workload.Callback{cb, other}})
			cbTok := e.token(cb.ID, "callback")
			if r := e.send("PATCH", "/execution/callbacks/"+cb.ID+"/state", cbTok, `{"state":"success"}`); r.status != 403 {
				t.Errorf("callback token on /state: %s", r)
			}
			if r := e.send("GET", "/execution/variables/x", cbTok, ""); r.status != 403 {
				t.Errorf("callback token on a variable: %s", r)
			}
			r := e.send("PATCH", "/execution/callbacks/"+cb.ID+"/run", cbTok, "")
			if r.status != 204 {
				t.Fatalf("run: %s", r)
			}
			exec := "Bearer " + r.header.Get("Refreshed-API-Token")
			if r := e.send("PATCH", "/execution/callbacks/"+cb.ID+"/run", cbTok, ""); r.status != 409 {
				t.Errorf("a second exchange: %s, want 409", r)
			}
			if r := e.send("PATCH", "/execution/callbacks/"+other.ID+"/state", exec, `{"state":"success"}`); r.status != 403 {
				t.Errorf("the execution token on another callback: %s", r)
			}
			// While its callback runs, the token acts on shared data as a
			// running task's does; once the callback ended, on nothing.
			if r := e.send("PUT", "/execution/variables/x", exec, `{"val":"v"}`); r.status != 201 {
				t.Errorf("the execution token writing a variable: %s, want 201", r)
			}
			if r := e.send("GET", "/execution/variables/x", exec, ""); r.status != 200 {
				t.Errorf("the execution token reading a variable: %s, want 200", r)
			}
			if r := e.send("PATCH", "/execution/callbacks/"+cb.ID+"/state", exec, `{"state":"success"}`); r.status != 204 {
				t.Fatalf("state: %s", r)
			}
			if r := e.send("GET", "/execution/variables/x", exec, ""); r.status != 404 {
				t.Errorf("the token of an ended callback reading a variable: %s, want 404", r)
			}
		})
	}
}
