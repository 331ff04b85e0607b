package workload

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/scopes"
)

func TestReportConnectionTest(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	msg := "ok"
	tests := []struct {
		from, report ConnectionTestState
		wantState    ConnectionTestState
		wantReason   string
		wantInvalid  bool
	}{
		{ConnectionTestRunning, ConnectionTestSuccess, ConnectionTestSuccess, "", false},
		{ConnectionTestRunning, ConnectionTestFailed, ConnectionTestFailed, "", false},
		// A worker may report before any state change reached the record.
		{ConnectionTestQueued, ConnectionTestSuccess, ConnectionTestSuccess, "", false},
		{ConnectionTestPending, ConnectionTestFailed, ConnectionTestFailed, "", false},
		{ConnectionTestSuccess, ConnectionTestFailed, ConnectionTestSuccess, "conflict", false},
		{ConnectionTestFailed, ConnectionTestSuccess, ConnectionTestFailed, "conflict", false},
		{ConnectionTestRunning, ConnectionTestRunning, ConnectionTestRunning, "", true},
	}
	for _, tt := range tests {
		t.Run(string(tt.from)+"→"+string(tt.report), func(t *testing.T) {
			ct := ConnectionTest{ID: "ct", State: tt.from}
			err := ReportConnectionTest(&ct, tt.report, &msg, now)
			var ce *ConflictError
			switch {
			case tt.wantReason != "":
				if !errors.As(err, &ce) || ce.Reason != tt.wantReason {
					t.Fatalf("err = %v, want %s", err, tt.wantReason)
				}
				if want := "Connection test ct is already in terminal state: " + string(tt.from); ce.Message != want {
					t.Errorf("message %q", ce.Message)
				}
			case tt.wantInvalid:
				if !errors.Is(err, ErrInvalidState) {
					t.Fatalf("err = %v, want ErrInvalidState", err)
				}
			case err != nil:
				t.Fatal(err)
			default:
				if ct.ResultMessage == nil || *ct.ResultMessage != msg || !ct.UpdatedAt.Equal(now) {
					t.Errorf("recorded %+v", ct)
				}
			}
			if ct.State != tt.wantState {
				t.Errorf("state %s, want %s", ct.State, tt.wantState)
			}
		})
	}
}

func TestConnectionTestToCommit(t *testing.T) {
	c := Connection{ConnID: "c", ConnType: "http"}
	for _, tt := range []struct {
		state  ConnectionTestState
		commit bool
		want   bool
	}{
		{ConnectionTestSuccess, true, true},
		{ConnectionTestSuccess, false, false},
		{ConnectionTestFailed, true, false},
		{ConnectionTestRunning, true, false},
	} {
		ct := ConnectionTest{Connection: c, State: tt.state, CommitOnSuccess: tt.commit}
		if got := ct.ToCommit(); (got != nil) != tt.want || (got != nil && got.ConnID != "c") {
			t.Errorf("%s commit=%v: ToCommit = %v", tt.state, tt.commit, got)
		}
	}
}

func TestStartCallback(t *testing.T) {
	for _, st := range []CallbackState{CallbackPending, CallbackScheduled, CallbackQueued, CallbackRunning,
		CallbackSuccess, CallbackFailed, ""} {
		t.Run(string(st), func(t *testing.T) {
			cb := Callback{ID: "cb", State: st}
			err := StartCallback(&cb)
			if st == CallbackQueued {
				if err != nil || cb.State != CallbackRunning {
					t.Fatalf("err %v, state %s", err, cb.State)
				}
				return
			}
			var ce *ConflictError
			if !errors.As(err, &ce) || ce.Reason != "invalid_state" || ce.Extra["previous_state"] != st {
				t.Fatalf("err = %#v", err)
			}
			want := "Callback cb is in state " + string(st) + "; its token can only be exchanged once while QUEUED."
			if ce.Message != want || cb.State != st {
				t.Errorf("message %q, state %s", ce.Message, cb.State)
			}
		})
	}
}

func TestFinishCallback(t *testing.T) {
	out := "done"
	tests := []struct {
		name      string
		from, to  CallbackState
		output    *string
		wantState CallbackState
		wantOut   *string
		wantErr   string
	}{
		{"success", CallbackRunning, CallbackSuccess, &out, CallbackSuccess, &out, ""},
		{"failed without output", CallbackRunning, CallbackFailed, nil, CallbackFailed, nil, ""},
		{"queued", CallbackQueued, CallbackSuccess, nil, CallbackQueued, nil, "invalid_state"},
		{"already done", CallbackSuccess, CallbackFailed, nil, CallbackSuccess, nil, "invalid_state"},
		{"not terminal", CallbackRunning, CallbackQueued, nil, CallbackRunning, nil, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cb := Callback{ID: "cb", State: tt.from}
			err := FinishCallback(&cb, tt.to, tt.output)
			var ce *ConflictError
			switch tt.wantErr {
			case "":
				if err != nil {
					t.Fatal(err)
				}
			case "invalid_state":
				if !errors.As(err, &ce) || ce.Extra["current_state"] != tt.from || ce.Message != "Callback was not in RUNNING state" {
					t.Fatalf("err = %v", err)
				}
			default:
				if !errors.Is(err, ErrInvalidState) {
					t.Fatalf("err = %v", err)
				}
			}
			if cb.State != tt.wantState || !cmp.Equal(cb.Output, tt.wantOut) {
				t.Errorf("state %s output %v", cb.State, cb.Output)
			}
		})
	}
}

func TestNewConnectionTestAndCallback(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	bad := 70000
	for _, c := range []Connection{{ConnType: "http"}, {ConnID: "c"}, {ConnID: "c", ConnType: "http", Port: &bad}} {
		if _, err := NewConnectionTest("id", ConnectionTestRequest{Connection: c}, now); err == nil {
			t.Errorf("NewConnectionTest(%+v) accepted", c)
		}
	}
	ct, err := NewConnectionTest("id", ConnectionTestRequest{Connection: Connection{ConnID: "c", ConnType: "http"},
		CommitOnSuccess: true, QueuedBy: "ada"}, now)
	if err != nil || ct.State != ConnectionTestQueued || !ct.CommitOnSuccess || ct.QueuedBy != "ada" || !ct.CreatedAt.Equal(now) {
		t.Errorf("NewConnectionTest = %+v, %v", ct, err)
	}
	for _, r := range []CallbackRequest{{}, {Path: "m.f", Kwargs: json.RawMessage(`[1]`)}} {
		if _, err := NewCallback("id", r, now); err == nil {
			t.Errorf("NewCallback(%+v) accepted", r)
		}
	}
	cb, err := NewCallback("id", CallbackRequest{Path: "m.f"}, now)
	if err != nil || cb.State != CallbackQueued || cb.Type != "executor" || cb.FetchMethod != "import_path" {
		t.Fatalf("NewCallback = %+v, %v", cb, err)
	}
	var data map[string]any
	if err := json.Unmarshal(cb.Data, &data); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"path": "m.f", "kwargs": map[string]any{}, "executor": nil}, data); diff != "" {
		t.Errorf("data (-want +got):\n%s", diff)
	}
}

func TestCallbackPhase(t *testing.T) {
	for st, want := range map[CallbackState]scopes.Phase{
		CallbackRunning: scopes.PhaseRunning, CallbackQueued: scopes.PhaseUnknown, CallbackSuccess: scopes.PhaseUnknown,
		CallbackFailed: scopes.PhaseUnknown, CallbackPending: scopes.PhaseUnknown,
	} {
		if got := CallbackPhase(&Callback{State: st}); got != want {
			t.Errorf("%s: %s, want %s", st, got, want)
		}
	}
	if got := CallbackPhase(nil); got != scopes.PhaseUnknown {
		t.Errorf("nil: %s", got)
	}
}
