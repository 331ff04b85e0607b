package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskgate/taskgate/scopes"
)

// CallbackState is the state of a callback, spelled as Airflow's
// CallbackState.
type CallbackState string

// Callback states.
const (
	CallbackPending   CallbackState = "pending"
	CallbackScheduled CallbackState = "scheduled"
	CallbackQueued    CallbackState = "queued"
	CallbackRunning   CallbackState = "running"
	CallbackSuccess   CallbackState = "success"
	CallbackFailed    CallbackState = "failed"
)

// Callback is a callback run by a worker (Airflow's ExecuteCallback
// workload): Airflow's callback row.
type Callback struct {
	ID string `json:"id"`
	// Type is Airflow's polymorphic identity ("executor", "triggerer",
	// "dag_processor").
	Type string `json:"type"`
	// FetchMethod says how the worker finds the callable ("import_path").
	FetchMethod string `json:"fetch_method"`
	// Data is what the worker needs to run it (path, kwargs, executor…).
	Data           json.RawMessage `json:"data"`
	State          CallbackState   `json:"state"`
	Output         *string         `json:"output"`
	PriorityWeight int             `json:"priority_weight"`
	CreatedAt      time.Time       `json:"created_at"`
	// QueuedBy is the REST user who queued it ("" offline).
	QueuedBy string `json:"queued_by,omitempty"`
}

// StartCallback moves a queued callback to running: its single-use token is
// exchanged once, and any other state refuses the exchange (409
// invalid_state with previous_state), a redelivered workload included.
func StartCallback(cb *Callback) error {
	if cb.State != CallbackQueued {
		return &ConflictError{Reason: "invalid_state",
			Message: fmt.Sprintf("Callback %s is in state %s; its token can only be exchanged once while QUEUED.",
				cb.ID, cb.State),
			Extra: map[string]any{"previous_state": cb.State}}
	}
	cb.State = CallbackRunning
	return nil
}

// FinishCallback records a running callback's end (success or failed) and
// its output, when given; any other state is refused with 409 invalid_state
// and current_state.
func FinishCallback(cb *Callback, state CallbackState, output *string) error {
	if cb.State != CallbackRunning {
		return &ConflictError{Reason: "invalid_state", Message: "Callback was not in RUNNING state",
			Extra: map[string]any{"current_state": cb.State}}
	}
	if state != CallbackSuccess && state != CallbackFailed {
		return fmt.Errorf("%w: a callback ends in success or failed, not %s", ErrInvalidState, state)
	}
	cb.State = state
	if output != nil {
		cb.Output = output
	}
	return nil
}

// CallbackPhase places the execution token a callback's /run minted, whose
// sub is the callback's id: while the callback runs, the token acts as a
// running try's does on the routes that name no task instance (it reads
// variables, connections and XComs, as Airflow lets a callback's token);
// once the callback ended it names nothing.
func CallbackPhase(cb *Callback) scopes.Phase {
	if cb != nil && cb.State == CallbackRunning {
		return scopes.PhaseRunning
	}
	return scopes.PhaseUnknown
}

// Callbacks stores callbacks.
type Callbacks interface {
	// Callback returns the callback, or ErrNotFound.
	Callback(ctx context.Context, id string) (*Callback, error)
	// InsertCallback stores a new callback; ErrAlreadyExists when its id is
	// taken.
	InsertCallback(ctx context.Context, cb Callback) error
	// UpdateCallback loads the callback, calls fn on it and stores the
	// result in one transaction (the row locked, on PostgreSQL), as
	// Store.UpdateTaskInstance does. ErrNotFound without calling fn.
	UpdateCallback(ctx context.Context, id string, fn func(cb *Callback) error) (*Callback, error)
}
