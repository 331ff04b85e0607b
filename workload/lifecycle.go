package workload

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskgate/taskgate/scopes"
)

// ConflictError is a refused lifecycle transition. Reason and Message are the
// values Airflow clients match on ("invalid_state", "running_elsewhere",
// "not_running"); Extra carries the fields Airflow adds beside them
// (previous_state, current_state, current_hostname, current_pid).
type ConflictError struct {
	Reason  string
	Message string
	Extra   map[string]any
}

func (e *ConflictError) Error() string { return "workload: " + e.Reason + ": " + e.Message }

// RunRequest is what a worker sends when it starts a task instance.
type RunRequest struct {
	Hostname  string
	Unixname  string
	PID       int
	StartDate time.Time
	// Grant is set when the request came with a workload token, which /run
	// swaps for an execution token: WorkloadTokenID is the workload token's
	// jti, and ID, IssuedAt and ExpiresAt those of a freshly prepared
	// execution token, handed out if this request starts the task. Nil for a
	// request with an execution token, which buys no token.
	Grant *ExecutionGrant
}

// EnterRunning moves ti from queued (or restarting) to running for the worker
// described by r, and returns the state it left and the execution token to
// hand out (nil when r.Grant is nil). A repeat of the same request — same
// hostname, unixname and pid while running — is accepted again: the worker
// may simply have lost the first response. Anything else is a conflict,
// which is what makes a workload token single-use.
//
// The token swap is one-shot: starting the task records r.Grant, and a
// repeat with a workload token gets that recorded grant back — the same
// execution token, signed again — never a second, independent one. A task
// command running as its worker's user can read the workload and copy the
// worker's identity, so a retry that minted anew would give it a token of
// its own. A repeat with any other workload token (another jti, or none
// recorded: a workload token without a jti, or a task started with an
// execution token) is refused like a /run in any other state.
func EnterRunning(ti *TaskInstance, r RunRequest, now time.Time) (State, *ExecutionGrant, error) {
	prev := ti.State
	var grant *ExecutionGrant
	switch {
	case prev == StateRunning && ti.Hostname == r.Hostname && ti.Unixname == r.Unixname && ti.PID == r.PID:
		// Duplicate from the same worker: refresh below, answer 200 again.
		if r.Grant != nil {
			rec := ti.RunGrant
			if rec == nil || rec.WorkloadTokenID == "" || rec.WorkloadTokenID != r.Grant.WorkloadTokenID {
				return prev, nil, enterRunningConflict(prev)
			}
			g := *rec
			grant = &g
		}
	case (prev == StateQueued || prev == StateRestarting) && ti.ReportedAt == nil:
		ti.RunGrant = nil
		if r.Grant != nil {
			rec, g := *r.Grant, *r.Grant
			ti.RunGrant, grant = &rec, &g
		}
	default:
		return prev, nil, enterRunningConflict(prev)
	}
	// A task resuming from deferral keeps the start date of its first run.
	if len(ti.NextKwargs) == 0 || ti.StartDate == nil {
		sd := r.StartDate.UTC()
		ti.StartDate = &sd
	}
	ti.State = StateRunning
	ti.Hostname, ti.Unixname, ti.PID = r.Hostname, r.Unixname, r.PID
	ti.EndDate = nil
	ti.RetryDelaySeconds, ti.RetryReason = nil, nil
	t := now.UTC()
	ti.LastHeartbeatAt = &t
	ti.UpdatedAt = t
	return prev, grant, nil
}

// enterRunningConflict is the answer to a /run the lifecycle refuses.
func enterRunningConflict(prev State) error {
	return &ConflictError{
		Reason:  "invalid_state",
		Message: "TI was not in a state where it could be marked as running",
		Extra:   map[string]any{"previous_state": string(prev)},
	}
}

// ShouldRetry reports whether a failure of this run would be retried:
// Airflow's rule is "restarting, or max_tries set and tries left".
func ShouldRetry(prev State, tryNumber, maxTries int) bool {
	if prev == StateRestarting {
		return true
	}
	return maxTries != 0 && tryNumber <= maxTries
}

// HeartbeatRequest is a worker's heartbeat for a try: the worker that sends
// it (hostname, pid), as in the request body, and when the gateway received
// it.
type HeartbeatRequest struct {
	Hostname string
	PID      int
	At       time.Time
}

// Holder is what the heartbeat rule needs of a try: its state and the worker
// (hostname, pid) that started it. It is small on purpose: a store keeps it in
// memory for every running try, so that a heartbeat is judged without
// reading the task instance's record.
type Holder struct {
	State    State
	Hostname string
	PID      int
}

// HolderOf returns what the heartbeat rule needs of ti.
func HolderOf(ti *TaskInstance) Holder {
	return Holder{State: ti.State, Hostname: ti.Hostname, PID: ti.PID}
}

// HeartbeatRule decides whether a heartbeat is recorded against the try h
// describes, and returns the time to record, or the error to answer. A store
// calls it as UpdateTaskInstance calls its fn, inside the write, so that it
// judges the try's state as the write sees it.
type HeartbeatRule func(h Holder, r HeartbeatRequest) (time.Time, error)

// AdmitHeartbeat is the heartbeat rule. Only the worker that started the try
// may heartbeat it: another worker is told the try runs elsewhere. A try
// that is not running is told so, so that its worker kills the task; this is
// also how a worker learns that an operator marked its task. The rule need
// not ask whether the try is its coordinates' current one: Queue refuses a
// new try while one runs, so a running try is always the current one, and a
// heartbeat of an earlier try hears not_running.
func AdmitHeartbeat(h Holder, r HeartbeatRequest) (time.Time, error) {
	if h.State != StateRunning {
		return time.Time{}, &ConflictError{
			Reason:  "not_running",
			Message: "TI is no longer in the running state and task should terminate",
			Extra:   map[string]any{"current_state": string(h.State)},
		}
	}
	if h.Hostname != r.Hostname || h.PID != r.PID {
		return time.Time{}, &ConflictError{
			Reason:  "running_elsewhere",
			Message: "TI is already running elsewhere",
			Extra:   map[string]any{"current_hostname": h.Hostname, "current_pid": h.PID},
		}
	}
	return r.At.UTC(), nil
}

// StateUpdate is a state a running task reports, with the fields that state
// carries. Fields a state does not use are nil.
type StateUpdate struct {
	State            State
	EndDate          *time.Time
	RenderedMapIndex *string

	// success
	TaskOutlets  json.RawMessage
	OutletEvents json.RawMessage

	// up_for_retry
	RetryDelaySeconds *float64
	RetryReason       *string

	// deferred (and awaiting_input: NextMethod, NextKwargs, Timeout)
	Classpath      string
	TriggerKwargs  json.RawMessage
	TriggerTimeout *time.Duration
	Queue          *string
	NextMethod     *string
	NextKwargs     json.RawMessage

	// up_for_reschedule
	RescheduleDate *time.Time
}

const maxRetryReason = 500

// ApplyState applies a reported state to ti. It returns changed = false when
// ti is already in that state: a repeated report is answered as done rather
// than as a conflict. Only a running task instance may change state.
func ApplyState(ti *TaskInstance, u StateUpdate, now time.Time) (changed bool, err error) {
	if ti.State == u.State {
		return false, nil
	}
	if ti.State != StateRunning {
		return false, &ConflictError{
			Reason:  "invalid_state",
			Message: "TI was not in the running state so it cannot be updated",
			Extra:   map[string]any{"previous_state": string(ti.State)},
		}
	}
	if u.State == StateSuccess {
		// Checked once the try is known to run, as Airflow does.
		if err := CheckOutletPartitionKeys(u.OutletEvents); err != nil {
			return false, err
		}
	}
	now = now.UTC()
	if u.RenderedMapIndex != nil {
		ti.RenderedMapIndex = u.RenderedMapIndex
	}
	switch u.State {
	case StateSuccess, StateFailed, StateSkipped, StateRemoved, StateUpstreamFailed, StateUpForRetry:
		ti.EndDate = u.EndDate
		ti.NextMethod, ti.NextKwargs = nil, nil
		if u.State == StateSuccess {
			ti.TaskOutlets, ti.OutletEvents = u.TaskOutlets, u.OutletEvents
		}
		if u.State == StateUpForRetry {
			ti.RetryDelaySeconds = u.RetryDelaySeconds
			ti.RetryReason = u.RetryReason
			if r := ti.RetryReason; r != nil && len(*r) > maxRetryReason {
				cut := truncateUTF8(*r, maxRetryReason)
				ti.RetryReason = &cut
			}
		}
	case StateDeferred:
		ti.TriggerClass = u.Classpath
		ti.TriggerKwargs = u.TriggerKwargs
		ti.TriggerQueue = u.Queue
		ti.TriggerTimeout = deadline(now, u.TriggerTimeout)
		ti.NextMethod, ti.NextKwargs = u.NextMethod, u.NextKwargs
	case StateAwaitingInput:
		ti.TriggerClass, ti.TriggerKwargs = "", nil
		ti.TriggerTimeout = deadline(now, u.TriggerTimeout)
		ti.NextMethod, ti.NextKwargs = u.NextMethod, u.NextKwargs
	case StateUpForReschedule:
		start := now
		if ti.StartDate != nil {
			start = *ti.StartDate
		}
		end := now
		if u.EndDate != nil {
			end = *u.EndDate
		}
		ti.Reschedules = append(ti.Reschedules, Reschedule{
			TryNumber: ti.TryNumber, StartDate: start, EndDate: end, RescheduleDate: *u.RescheduleDate,
		})
		ti.EndDate = u.EndDate
	}
	ti.State = u.State
	ti.UpdatedAt = now
	ti.ReportedAt = &now
	return true, nil
}

// Skip marks a task instance skipped by an upstream decision
// (skip-downstream). As in Airflow, a running task instance is spared (its
// worker owns it), and so is one that already succeeded or failed.
func Skip(ti *TaskInstance, now time.Time) bool {
	switch ti.State {
	case StateRunning, StateSuccess, StateFailed, StateSkipped:
		return false
	}
	t := now.UTC()
	ti.State = StateSkipped
	ti.StartDate, ti.EndDate = &t, &t
	ti.UpdatedAt = t
	return true
}

// TryStatus is what judging a task token needs of the try it names.
type TryStatus struct {
	State State
	// Current is false once a later try exists at the same coordinates.
	Current bool
	// Moved: the try is still the latest at its coordinates, but its
	// attempt was archived when it reported up_for_retry: its task
	// instance went on under a new id, as Airflow gives one at once (see
	// NewTryID). Only a current try is moved.
	Moved bool
	// ReportedAt is TaskInstance.ReportedAt.
	ReportedAt *time.Time
}

// StatusOf returns ti's TryStatus; current tells whether ti is the latest
// try at its coordinates.
func StatusOf(ti *TaskInstance, current bool) TryStatus {
	return TryStatus{State: ti.State, Current: current, ReportedAt: ti.ReportedAt}
}

// PhaseOf places a try for the token decision (scopes.Decide): st is the
// try's status, or nil when no task instance has the token's id. overtime is
// [core] task_success_overtime, how long after its own final report a try's
// callbacks may still read.
func PhaseOf(st *TryStatus, now time.Time, overtime time.Duration) scopes.Phase {
	switch {
	case st == nil:
		return scopes.PhaseUnknown
	case !st.Current:
		return scopes.PhaseArchived
	case st.Moved:
		if st.ReportedAt != nil && now.Before(st.ReportedAt.Add(overtime)) {
			return scopes.PhaseRetired
		}
		return scopes.PhaseArchived
	case st.State == StateRunning:
		return scopes.PhaseRunning
	case (st.State == StateQueued || st.State == StateRestarting) && st.ReportedAt == nil:
		return scopes.PhaseStarting
	case st.ReportedAt != nil && (st.State.Terminal() || st.State == StateUpForRetry) &&
		now.Before(st.ReportedAt.Add(overtime)):
		return scopes.PhaseFinishing
	}
	return scopes.PhaseStopped
}

// RescheduleStartDate is the start date of the first reschedule of the given
// try, or nil: what a sensor in reschedule mode uses to compute its timeout.
func RescheduleStartDate(ti *TaskInstance, tryNumber int) *time.Time {
	for _, r := range ti.Reschedules {
		if r.TryNumber == tryNumber {
			t := r.StartDate
			return &t
		}
	}
	return nil
}

func deadline(now time.Time, d *time.Duration) *time.Time {
	if d == nil {
		return nil
	}
	t := now.Add(*d)
	return &t
}

func truncateUTF8(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// ForceState is an operator marking a task instance from outside, as
// Airflow's "mark success / failed / skipped" does. Unlike ApplyState it does
// not require the task to be running: it is how a stuck or unwanted task is
// stopped, and the worker learns of it from its next heartbeat (409
// not_running) and kills the task.
func ForceState(ti *TaskInstance, s State, now time.Time) error {
	switch s {
	case StateSuccess, StateFailed, StateSkipped:
	default:
		return fmt.Errorf("%w: cannot mark a task instance %s (success, failed or skipped)", ErrInvalidState, s)
	}
	now = now.UTC()
	ti.State = s
	// The operator ended the try: no overtime for callbacks of the task.
	ti.ReportedAt = nil
	if ti.EndDate == nil {
		ti.EndDate = &now
	}
	ti.UpdatedAt = now
	return nil
}

// Withdraw ends a task instance whose queuer is gone: one still queued —
// no worker has started it, so its workload token is the only thing that
// could — moves to removed, and its workload token's /run then answers 409
// invalid_state. It reports whether ti changed. A task a worker already
// started is left alone: it runs on, and ends as it would have.
func Withdraw(ti *TaskInstance, now time.Time) bool {
	if ti.State != StateQueued {
		return false
	}
	now = now.UTC()
	ti.State = StateRemoved
	ti.EndDate = &now
	ti.UpdatedAt = now
	return true
}
