package workload

import (
	"context"
	"fmt"
	"time"
)

// ConnectionTestState is the state of a connection test, spelled as
// Airflow's ConnectionTestState.
type ConnectionTestState string

// Connection-test states.
const (
	ConnectionTestPending ConnectionTestState = "pending"
	ConnectionTestQueued  ConnectionTestState = "queued"
	ConnectionTestRunning ConnectionTestState = "running"
	ConnectionTestSuccess ConnectionTestState = "success"
	ConnectionTestFailed  ConnectionTestState = "failed"
)

// ConnectionTestStates lists every state, in Airflow's order.
var ConnectionTestStates = []ConnectionTestState{
	ConnectionTestPending, ConnectionTestQueued, ConnectionTestRunning, ConnectionTestSuccess, ConnectionTestFailed,
}

// Terminal reports whether a test in state s has its result.
func (s ConnectionTestState) Terminal() bool {
	return s == ConnectionTestSuccess || s == ConnectionTestFailed
}

// ConnectionTest is a connection test run by a worker (Airflow's
// TestConnection workload): the connection to try, which the worker reads
// with the test's token, and the result it reports.
type ConnectionTest struct {
	ID string `json:"id"`
	// Connection is the connection under test; its ConnID names the
	// connection it would be saved as.
	Connection Connection `json:"connection"`
	// CommitOnSuccess saves Connection under its ConnID when the test
	// succeeds (Airflow's "test, then save").
	CommitOnSuccess bool                `json:"commit_on_success"`
	State           ConnectionTestState `json:"state"`
	ResultMessage   *string             `json:"result_message"`
	CreatedAt       time.Time           `json:"created_at"`
	UpdatedAt       time.Time           `json:"updated_at"`
	// QueuedBy is the REST user who queued the test ("" offline).
	QueuedBy string `json:"queued_by,omitempty"`
}

// ReportConnectionTest records a worker's result on ct: state (success or
// failed) and its message. A test that already has its result is refused
// (a 409 "conflict"), so a replayed token cannot rewrite it.
func ReportConnectionTest(ct *ConnectionTest, state ConnectionTestState, message *string, now time.Time) error {
	if ct.State.Terminal() {
		return &ConflictError{Reason: "conflict",
			Message: fmt.Sprintf("Connection test %s is already in terminal state: %s", ct.ID, ct.State)}
	}
	if !state.Terminal() {
		return fmt.Errorf("%w: a worker reports success or failed, not %s", ErrInvalidState, state)
	}
	ct.State, ct.ResultMessage, ct.UpdatedAt = state, message, now
	return nil
}

// ToCommit is the connection a store saves in the write that records ct,
// or nil: a successful test queued with CommitOnSuccess.
func (ct *ConnectionTest) ToCommit() *Connection {
	if ct.State != ConnectionTestSuccess || !ct.CommitOnSuccess {
		return nil
	}
	c := ct.Connection
	return &c
}

// ConnectionTests stores connection tests.
type ConnectionTests interface {
	// ConnectionTest returns the test, or ErrNotFound.
	ConnectionTest(ctx context.Context, id string) (*ConnectionTest, error)
	// InsertConnectionTest stores a new test; ErrAlreadyExists when its id
	// is taken.
	InsertConnectionTest(ctx context.Context, ct ConnectionTest) error
	// UpdateConnectionTest loads the test, calls fn on it and stores the
	// result in one transaction, as Store.UpdateTaskInstance does; when the
	// result's ToCommit is not nil, the same transaction saves that
	// connection. ErrNotFound without calling fn when the test is unknown.
	UpdateConnectionTest(ctx context.Context, id string, fn func(ct *ConnectionTest) error) (*ConnectionTest, error)
}
