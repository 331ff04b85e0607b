package workload

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/scopes"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func TestEnterRunning(t *testing.T) {
	req := RunRequest{Hostname: "h", Unixname: "u", PID: 7, StartDate: t0}
	tests := []struct {
		name     string
		ti       TaskInstance
		req      RunRequest
		wantErr  string
		wantPrev State
	}{
		{"queued", TaskInstance{State: StateQueued}, req, "", StateQueued},
		{"restarting", TaskInstance{State: StateRestarting}, req, "", StateRestarting},
		{"duplicate from same worker", TaskInstance{State: StateRunning, Hostname: "h", Unixname: "u", PID: 7}, req, "", StateRunning},
		{"running elsewhere: host", TaskInstance{State: StateRunning, Hostname: "x", Unixname: "u", PID: 7}, req, "invalid_state", StateRunning},
		{"running elsewhere: unixname", TaskInstance{State: StateRunning, Hostname: "h", Unixname: "x", PID: 7}, req, "invalid_state", StateRunning},
		{"running elsewhere: pid", TaskInstance{State: StateRunning, Hostname: "h", Unixname: "u", PID: 8}, req, "invalid_state", StateRunning},
		{"finished", TaskInstance{State: StateSuccess}, req, "invalid_state", StateSuccess},
		{"scheduled", TaskInstance{State: StateScheduled}, req, "invalid_state", StateScheduled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := tt.ti
			prev, _, err := EnterRunning(&ti, tt.req, t0.Add(time.Second))
			if prev != tt.wantPrev {
				t.Errorf("prev = %s, want %s", prev, tt.wantPrev)
			}
			if tt.wantErr != "" {
				var ce *ConflictError
				if !errors.As(err, &ce) || ce.Reason != tt.wantErr || ce.Extra["previous_state"] != string(tt.wantPrev) {
					t.Fatalf("err = %v, want conflict %s", err, tt.wantErr)
				}
				if diff := cmp.Diff(tt.ti, ti); diff != "" {
					t.Errorf("refused transition changed the task instance:\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ti.State != StateRunning || ti.Hostname != "h" || ti.PID != 7 || !ti.StartDate.Equal(t0) ||
				!ti.LastHeartbeatAt.Equal(t0.Add(time.Second)) || ti.EndDate != nil {
				t.Errorf("after run: %+v", ti)
			}
		})
	}
}

// TestEnterRunningTokenSwap: the first /run with a workload token records
// the execution token it hands out; a repeat from the same worker with the
// same workload token gets that same token back, never the fresh one it
// brought; any other repeat is refused.
func TestEnterRunningTokenSwap(t *testing.T) {
	iat := t0.Add(-time.Minute)
	first := &ExecutionGrant{WorkloadTokenID: "wl-1", ID: "exec-1", IssuedAt: iat, ExpiresAt: iat.Add(10 * time.Minute)}
	grant := func(workloadJTI, jti string) *ExecutionGrant {
		return &ExecutionGrant{WorkloadTokenID: workloadJTI, ID: jti, IssuedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	}
	req := func(g *ExecutionGrant) RunRequest {
		return RunRequest{Hostname: "h", Unixname: "u", PID: 7, StartDate: t0, Grant: g}
	}
	running := func(rec *ExecutionGrant) TaskInstance {
		return TaskInstance{State: StateRunning, Hostname: "h", Unixname: "u", PID: 7, RunGrant: rec}
	}
	tests := []struct {
		name      string
		ti        TaskInstance
		req       RunRequest
		wantGrant *ExecutionGrant // handed out
		wantRec   *ExecutionGrant // recorded afterwards
		wantErr   bool
	}{
		{"queued, workload token: the new grant", TaskInstance{State: StateQueued}, req(grant("wl-1", "exec-new")),
			grant("wl-1", "exec-new"), grant("wl-1", "exec-new"), false},
		{"restarting, workload token: replaces an old grant", TaskInstance{State: StateRestarting, RunGrant: first}, req(grant("wl-2", "exec-new")),
			grant("wl-2", "exec-new"), grant("wl-2", "exec-new"), false},
		{"queued, execution token: no grant, old one dropped", TaskInstance{State: StateQueued, RunGrant: first}, req(nil),
			nil, nil, false},
		{"repeat, same workload token: the recorded grant", running(first), req(grant("wl-1", "exec-new")),
			first, first, false},
		{"repeat, execution token: no grant", running(first), req(nil),
			nil, first, false},
		{"repeat, other workload token", running(first), req(grant("wl-2", "exec-new")),
			nil, first, true},
		{"repeat, workload token without jti", running(&ExecutionGrant{ID: "exec-1", IssuedAt: iat, ExpiresAt: iat.Add(time.Minute)}), req(grant("", "exec-new")),
			nil, &ExecutionGrant{ID: "exec-1", IssuedAt: iat, ExpiresAt: iat.Add(time.Minute)}, true},
		{"repeat, workload token, none recorded", running(nil), req(grant("wl-1", "exec-new")),
			nil, nil, true},
		{"finished, same workload token", TaskInstance{State: StateSuccess, Hostname: "h", Unixname: "u", PID: 7, RunGrant: first}, req(grant("wl-1", "exec-new")),
			nil, first, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := tt.ti
			_, got, err := EnterRunning(&ti, tt.req, t0)
			var ce *ConflictError
			if tt.wantErr != (err != nil) || (err != nil && (!errors.As(err, &ce) || ce.Reason != "invalid_state")) {
				t.Fatalf("err = %v, want conflict: %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantGrant, got); diff != "" {
				t.Errorf("grant handed out (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRec, ti.RunGrant); diff != "" {
				t.Errorf("grant recorded (-want +got):\n%s", diff)
			}
			if got != nil && got == ti.RunGrant {
				t.Error("the grant handed out aliases the record")
			}
		})
	}
}

func TestEnterRunningKeepsStartDateWhenResuming(t *testing.T) {
	first := t0.Add(-time.Hour)
	ti := TaskInstance{State: StateQueued, StartDate: &first, NextMethod: ptr("execute_complete"),
		NextKwargs: []byte(`{"event":1}`)}
	if _, _, err := EnterRunning(&ti, RunRequest{Hostname: "h", StartDate: t0}, t0); err != nil {
		t.Fatal(err)
	}
	if !ti.StartDate.Equal(first) {
		t.Errorf("start date = %v, want the first run's %v", ti.StartDate, first)
	}
}

func TestShouldRetry(t *testing.T) {
	tests := []struct {
		prev          State
		try, maxTries int
		want          bool
	}{
		{StateQueued, 1, 0, false},
		{StateQueued, 1, 1, true},
		{StateQueued, 2, 1, false},
		{StateRestarting, 5, 0, true},
	}
	for _, tt := range tests {
		if got := ShouldRetry(tt.prev, tt.try, tt.maxTries); got != tt.want {
			t.Errorf("ShouldRetry(%s, %d, %d) = %v", tt.prev, tt.try, tt.maxTries, got)
		}
	}
}

func TestAdmitHeartbeat(t *testing.T) {
	running := Holder{State: StateRunning, Hostname: "h", PID: 7}
	from := func(host string, pid int) HeartbeatRequest {
		return HeartbeatRequest{Hostname: host, PID: pid, At: t0.In(time.FixedZone("CEST", 2*3600))}
	}
	tests := []struct {
		name      string
		holder    Holder
		req       HeartbeatRequest
		want      time.Time
		wantError *ConflictError
	}{
		{
			name:   "the worker that started the try",
			holder: running, req: from("h", 7), want: t0,
		},
		{
			name:   "another host",
			holder: running, req: from("x", 7),
			wantError: &ConflictError{Reason: "running_elsewhere", Message: "TI is already running elsewhere",
				Extra: map[string]any{"current_hostname": "h", "current_pid": 7}},
		},
		{
			name:   "another pid",
			holder: running, req: from("h", 8),
			wantError: &ConflictError{Reason: "running_elsewhere", Message: "TI is already running elsewhere",
				Extra: map[string]any{"current_hostname": "h", "current_pid": 7}},
		},
		{
			name:   "a try that failed, from its own worker",
			holder: Holder{State: StateFailed, Hostname: "h", PID: 7}, req: from("h", 7),
			wantError: &ConflictError{Reason: "not_running",
				Message: "TI is no longer in the running state and task should terminate",
				Extra:   map[string]any{"current_state": "failed"}},
		},
		{
			name:   "a try not started yet",
			holder: Holder{State: StateQueued}, req: from("h", 7),
			wantError: &ConflictError{Reason: "not_running",
				Message: "TI is no longer in the running state and task should terminate",
				Extra:   map[string]any{"current_state": "queued"}},
		},
		{
			name:   "a stopped try from another worker hears not_running first",
			holder: Holder{State: StateSuccess, Hostname: "h", PID: 7}, req: from("x", 8),
			wantError: &ConflictError{Reason: "not_running",
				Message: "TI is no longer in the running state and task should terminate",
				Extra:   map[string]any{"current_state": "success"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AdmitHeartbeat(tt.holder, tt.req)
			if tt.wantError != nil {
				var ce *ConflictError
				if !errors.As(err, &ce) {
					t.Fatalf("err = %v, want a *ConflictError", err)
				}
				if diff := cmp.Diff(tt.wantError, ce); diff != "" {
					t.Errorf("conflict (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" || got.Location() != time.UTC {
				t.Errorf("recorded time %v, want %v in UTC (-want +got):\n%s", got, tt.want, diff)
			}
		})
	}
}

func TestHolderOf(t *testing.T) {
	ti := TaskInstance{ID: "id", State: StateRunning, Hostname: "h", Unixname: "u", PID: 7}
	if diff := cmp.Diff(Holder{State: StateRunning, Hostname: "h", PID: 7}, HolderOf(&ti)); diff != "" {
		t.Errorf("HolderOf (-want +got):\n%s", diff)
	}
}

func TestApplyState(t *testing.T) {
	end := t0.Add(time.Minute)
	start := t0
	running := func() TaskInstance {
		return TaskInstance{State: StateRunning, StartDate: &start, TryNumber: 2, NextMethod: ptr("m"), NextKwargs: []byte(`{}`)}
	}
	long := strings.Repeat("é", 600)
	tests := []struct {
		name    string
		ti      TaskInstance
		u       StateUpdate
		changed bool
		reason  string
		check   func(t *testing.T, ti TaskInstance)
	}{
		{"success", running(), StateUpdate{State: StateSuccess, EndDate: &end, TaskOutlets: []byte(`[]`)}, true, "",
			func(t *testing.T, ti TaskInstance) {
				if ti.State != StateSuccess || !ti.EndDate.Equal(end) || ti.NextMethod != nil || string(ti.TaskOutlets) != "[]" {
					t.Errorf("%+v", ti)
				}
			}},
		{"retry reason truncated", running(), StateUpdate{State: StateUpForRetry, EndDate: &end, RetryReason: &long}, true, "",
			func(t *testing.T, ti TaskInstance) {
				if n := len([]rune(*ti.RetryReason)); n != 500 {
					t.Errorf("retry reason %d runes", n)
				}
			}},
		{"deferred", running(), StateUpdate{State: StateDeferred, Classpath: "c", NextMethod: ptr("resume"),
			TriggerTimeout: ptr(time.Hour)}, true, "",
			func(t *testing.T, ti TaskInstance) {
				if *ti.NextMethod != "resume" || !ti.TriggerTimeout.Equal(t0.Add(time.Hour)) || ti.TriggerClass != "c" {
					t.Errorf("%+v", ti)
				}
			}},
		{"reschedule", running(), StateUpdate{State: StateUpForReschedule, RescheduleDate: &end, EndDate: &end}, true, "",
			func(t *testing.T, ti TaskInstance) {
				want := []Reschedule{{TryNumber: 2, StartDate: start, EndDate: end, RescheduleDate: end}}
				if diff := cmp.Diff(want, ti.Reschedules); diff != "" {
					t.Error(diff)
				}
				if got := RescheduleStartDate(&ti, 2); got == nil || !got.Equal(start) {
					t.Errorf("reschedule start = %v", got)
				}
				if RescheduleStartDate(&ti, 1) != nil {
					t.Error("start date for another try")
				}
			}},
		{"same state again", TaskInstance{State: StateSuccess}, StateUpdate{State: StateSuccess, EndDate: &end}, false, "", nil},
		{"not running", TaskInstance{State: StateQueued}, StateUpdate{State: StateFailed, EndDate: &end}, false, "invalid_state", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ti := tt.ti
			changed, err := ApplyState(&ti, tt.u, t0)
			if tt.reason != "" {
				var ce *ConflictError
				if !errors.As(err, &ce) || ce.Reason != tt.reason {
					t.Fatalf("err = %v, want %s", err, tt.reason)
				}
				return
			}
			if err != nil || changed != tt.changed {
				t.Fatalf("changed = %v, err = %v", changed, err)
			}
			if tt.check != nil {
				tt.check(t, ti)
			}
		})
	}
}

func TestSkip(t *testing.T) {
	ti := TaskInstance{State: StateScheduled}
	if !Skip(&ti, t0) || ti.State != StateSkipped {
		t.Errorf("scheduled task not skipped: %+v", ti)
	}
	for _, st := range []State{StateSuccess, StateFailed, StateRunning, StateSkipped} {
		spared := TaskInstance{State: st}
		if Skip(&spared, t0) || spared.State != st {
			t.Errorf("a %s task was skipped", st)
		}
	}
	for _, st := range []State{StateQueued, StateUpForRetry, StateUpstreamFailed, StateDeferred, ""} {
		ti := TaskInstance{State: st}
		if !Skip(&ti, t0) || ti.State != StateSkipped {
			t.Errorf("a %q task was not skipped", st)
		}
	}
}

func TestPhaseOf(t *testing.T) {
	reported := t0.Add(-5 * time.Second)
	long := t0.Add(-time.Minute)
	const overtime = 20 * time.Second
	tests := []struct {
		name string
		st   *TryStatus
		want scopes.Phase
	}{
		{"no task instance", nil, scopes.PhaseUnknown},
		{"later try exists", &TryStatus{State: StateUpForRetry, ReportedAt: &reported}, scopes.PhaseArchived},
		{"later try exists while running", &TryStatus{State: StateRunning}, scopes.PhaseArchived},
		{"running", &TryStatus{State: StateRunning, Current: true}, scopes.PhaseRunning},
		{"queued", &TryStatus{State: StateQueued, Current: true}, scopes.PhaseStarting},
		{"restarting", &TryStatus{State: StateRestarting, Current: true}, scopes.PhaseStarting},
		{"self-reported queued", &TryStatus{State: StateQueued, Current: true, ReportedAt: &reported}, scopes.PhaseStopped},
		{"success just now", &TryStatus{State: StateSuccess, Current: true, ReportedAt: &reported}, scopes.PhaseFinishing},
		{"up_for_retry just now", &TryStatus{State: StateUpForRetry, Current: true, ReportedAt: &reported}, scopes.PhaseFinishing},
		{"up_for_retry just now, moved", &TryStatus{State: StateUpForRetry, Current: true, Moved: true, ReportedAt: &reported}, scopes.PhaseRetired},
		{"up_for_retry long ago, moved", &TryStatus{State: StateUpForRetry, Current: true, Moved: true, ReportedAt: &long}, scopes.PhaseArchived},
		{"moved, row rescheduled by the scheduler", &TryStatus{State: StateScheduled, Current: true, Moved: true, ReportedAt: &reported}, scopes.PhaseRetired},
		{"moved, later try exists", &TryStatus{State: StateUpForRetry, Moved: true, ReportedAt: &reported}, scopes.PhaseArchived},
		{"failed long ago", &TryStatus{State: StateFailed, Current: true, ReportedAt: &long}, scopes.PhaseStopped},
		{"marked by an operator", &TryStatus{State: StateFailed, Current: true}, scopes.PhaseStopped},
		{"deferred just now", &TryStatus{State: StateDeferred, Current: true, ReportedAt: &reported}, scopes.PhaseStopped},
		{"up_for_reschedule just now", &TryStatus{State: StateUpForReschedule, Current: true, ReportedAt: &reported}, scopes.PhaseStopped},
		{"awaiting_input", &TryStatus{State: StateAwaitingInput, Current: true, ReportedAt: &reported}, scopes.PhaseStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PhaseOf(tt.st, t0, overtime); got != tt.want {
				t.Errorf("PhaseOf = %s, want %s", got, tt.want)
			}
		})
	}
}

// A try that reported leaving running never enters running again: the next
// run is a new try with a new id.
func TestEnterRunningAfterOwnReport(t *testing.T) {
	ti := TaskInstance{State: StateRunning}
	if _, err := ApplyState(&ti, StateUpdate{State: StateQueued}, t0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EnterRunning(&ti, RunRequest{Hostname: "h", PID: 1, StartDate: t0}, t0); err == nil {
		t.Error("a try that reported queued entered running again")
	}
}

// memStore is the smallest Store for testing Queue's admission rule.
type memStore struct {
	Store
	byCoord map[string]*TaskInstance
}

func (m *memStore) InsertTaskInstance(_ context.Context, dr DagRun, ti TaskInstance,
	admit func(existing, ti *TaskInstance) error) (*TaskInstance, error) {
	k := dr.DagID + "|" + ti.RunID + "|" + ti.TaskID
	if err := admit(m.byCoord[k], &ti); err != nil {
		return nil, err
	}
	m.byCoord[k] = &ti
	return &ti, nil
}

func TestQueue(t *testing.T) {
	m := &memStore{byCoord: map[string]*TaskInstance{}}
	ctx := context.Background()
	req := QueueRequest{DagID: "d", RunID: "r", TaskID: "t", MapIndex: -1}
	first, err := Queue(ctx, m, "id1", req, t0)
	if err != nil || first.TryNumber != 1 || first.State != StateQueued {
		t.Fatalf("first = %+v, %v", first, err)
	}
	if _, err := Queue(ctx, m, "id2", req, t0); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second queue of a queued task: %v", err)
	}
	first.State = StateUpForRetry
	second, err := Queue(ctx, m, "id3", req, t0)
	if err != nil || second.TryNumber != 2 {
		t.Fatalf("retry = %+v, %v", second, err)
	}
	second.State = StateUpForReschedule
	second.Reschedules = []Reschedule{{TryNumber: 2}}
	third, err := Queue(ctx, m, "id4", req, t0)
	if err != nil || third.TryNumber != 2 || len(third.Reschedules) != 1 {
		t.Fatalf("reschedule = %+v, %v", third, err)
	}
	for _, bad := range []QueueRequest{{}, {DagID: "d", RunID: "r", TaskID: "t", MapIndex: -2},
		{DagID: strings.Repeat("d", 251), RunID: "r", TaskID: "t"}} {
		if _, err := Queue(ctx, m, "x", bad, t0); err == nil {
			t.Errorf("Queue(%+v) accepted", bad)
		}
	}
}

func TestNewExecuteTask(t *testing.T) {
	ti := &TaskInstance{ID: "id", DagID: "d", RunID: "r", TaskID: "t", MapIndex: 3, TryNumber: 2, Queue: "default",
		PoolSlots: 1, PriorityWeight: 1, DagVersionID: "v"}
	got := NewExecuteTask(ti, "tok")
	if got.Type != "ExecuteTask" || got.Token != "tok" || *got.LogPath != "dag_id=d/run_id=r/task_id=t/map_index=3/attempt=2.log" ||
		got.BundleInfo.Name != "dags-folder" || got.TI.MapIndex != 3 {
		t.Errorf("%+v", got)
	}
}

func TestForceState(t *testing.T) {
	ti := TaskInstance{State: StateRunning}
	if err := ForceState(&ti, StateFailed, t0); err != nil || ti.State != StateFailed || !ti.EndDate.Equal(t0) {
		t.Fatalf("%+v, %v", ti, err)
	}
	if _, err := AdmitHeartbeat(HolderOf(&ti), HeartbeatRequest{At: t0}); err == nil {
		t.Error("heartbeat accepted after the operator failed the task")
	}
	if err := ForceState(&ti, StateQueued, t0); !errors.Is(err, ErrInvalidState) {
		t.Errorf("force queued: %v", err)
	}
}

func TestWithdraw(t *testing.T) {
	for _, s := range []State{StateScheduled, StateQueued, StateRunning, StateRestarting, StateDeferred,
		StateUpForRetry, StateUpForReschedule, StateSuccess, StateFailed, StateRemoved} {
		t.Run(string(s), func(t *testing.T) {
			ti := TaskInstance{State: s}
			changed := Withdraw(&ti, t0)
			if want := s == StateQueued; changed != want {
				t.Fatalf("Withdraw of a %s task instance = %v, want %v", s, changed, want)
			}
			if !changed {
				if ti.State != s || ti.EndDate != nil {
					t.Errorf("an unchanged task instance was modified: %+v", ti)
				}
				return
			}
			if ti.State != StateRemoved || !ti.EndDate.Equal(t0) || !ti.UpdatedAt.Equal(t0) {
				t.Errorf("withdrawn: %+v", ti)
			}
			if _, _, err := EnterRunning(&ti, RunRequest{Hostname: "h", PID: 1, StartDate: t0}, t0); err == nil {
				t.Error("a withdrawn task instance could still be started")
			}
		})
	}
}

func TestQueueRecordsQueuedBy(t *testing.T) {
	m := &memStore{byCoord: map[string]*TaskInstance{}}
	ti, err := Queue(context.Background(), m, "id1", QueueRequest{DagID: "d", RunID: "r", TaskID: "t", MapIndex: -1, QueuedBy: "ada"}, t0)
	if err != nil || ti.QueuedBy != "ada" {
		t.Fatalf("Queue = %+v, %v; want queued_by ada", ti, err)
	}
}
