package workload

import (
	"context"
	"encoding/json"
	"time"
)

// Store is the storage the task-instance lifecycle needs. Every method that
// writes returns only after the write is durable: a worker acts on the answer
// (a 200 to /run, a 204 to a heartbeat), so an acknowledged write must survive
// a crash.
type Store interface {
	// TaskInstance returns the task instance with the given id, or ErrNotFound.
	TaskInstance(ctx context.Context, id string) (*TaskInstance, error)

	// TryStatus returns what judging a token of the try with the given id
	// needs, or ErrNotFound. It is on every task-token request's path, so a
	// store answers it for running tries without reading the record.
	TryStatus(ctx context.Context, id string) (TryStatus, error)

	// UpdateTaskInstance loads the task instance, calls fn on it and stores
	// the result, all in one transaction, and returns the stored value. When
	// fn returns an error nothing is written and that error is returned as it
	// is. fn may be called more than once (a store may retry a transaction),
	// so it must depend only on its argument and captured inputs. A missing
	// task instance gives ErrNotFound without calling fn.
	UpdateTaskInstance(ctx context.Context, id string, fn func(ti *TaskInstance) error) (*TaskInstance, error)

	// Heartbeat records the heartbeat r against the task instance with the
	// given id when admit accepts it, and returns admit's error otherwise, or
	// ErrNotFound without calling admit. admit is called as
	// UpdateTaskInstance calls its fn, inside the write, with the task
	// instance's Holder, and returns the time to record. It is
	// UpdateTaskInstance for a write that only moves last_heartbeat_at and
	// updated_at, which a store can do much more cheaply: the gateway passes
	// AdmitHeartbeat, a plain function, so that a heartbeat allocates no
	// closure.
	Heartbeat(ctx context.Context, id string, r HeartbeatRequest, admit HeartbeatRule) error

	// InsertTaskInstance stores ti (and dr, when that dag run does not exist
	// yet) in one transaction. admit is called inside that transaction with
	// the task instance currently holding the same dag, run, task and map
	// index (nil if none) and may adjust ti or refuse by returning an error,
	// which is returned as it is.
	InsertTaskInstance(ctx context.Context, dr DagRun, ti TaskInstance,
		admit func(existing *TaskInstance, ti *TaskInstance) error) (*TaskInstance, error)

	// SkipTaskInstances applies fn to every task instance of the dag run
	// whose task id and map index match one of refs (MapIndex nil = every map
	// index), in one transaction. fn reports whether it changed the instance.
	SkipTaskInstances(ctx context.Context, dagID, runID string, refs []TaskRef,
		fn func(ti *TaskInstance) bool) error

	// DagRun returns the dag run, or ErrNotFound.
	DagRun(ctx context.Context, dagID, runID string) (*DagRun, error)
	// PreviousSuccessfulDagRun returns the latest successful dag run of dagID
	// whose logical date is before the given one, or ErrNotFound.
	PreviousSuccessfulDagRun(ctx context.Context, dagID string, before time.Time) (*DagRun, error)

	// XComKeys lists the keys stored for a task's XComs in a dag run; a
	// negative mapIndex means every map index.
	XComKeys(ctx context.Context, dagID, runID, taskID string, mapIndex int) ([]string, error)

	// PutRenderedFields stores a task instance's rendered template fields,
	// replacing earlier ones. ErrNotFound when the task instance is unknown.
	PutRenderedFields(ctx context.Context, tiID string, fields json.RawMessage) error
}

// Catalog is what an operator lists and edits beyond what tasks use.
type Catalog interface {
	// TaskInstances lists current task instances matching f and the number
	// of all matches before paging.
	TaskInstances(ctx context.Context, f TaskInstanceFilter) ([]TaskInstance, int, error)
	ListVariables(ctx context.Context) ([]Variable, error)
	ListConnections(ctx context.Context) ([]Connection, error)
	// DeleteConnection removes a connection; a missing one is not an error.
	DeleteConnection(ctx context.Context, id string) error
}

// TaskInstanceFilter selects current task instances (the latest try at
// each coordinate) for an operator's listing. Empty fields match everything.
type TaskInstanceFilter struct {
	DagID, RunID, TaskID string
	MapIndex             *int
	State                State
	// Limit caps the result (zero or negative: no cap); Offset skips that
	// many matches first.
	Limit, Offset int
}

// TaskRef names a task, and optionally one map index of it, in a dag run.
type TaskRef struct {
	TaskID   string
	MapIndex *int
}

// Variables stores Airflow variables.
type Variables interface {
	// Variable returns the variable, or ErrNotFound.
	Variable(ctx context.Context, key string) (*Variable, error)
	PutVariable(ctx context.Context, v Variable) error
	// DeleteVariable removes the variable; deleting a missing key is not an error.
	DeleteVariable(ctx context.Context, key string) error
	// VariableKeys lists keys starting with prefix in key order, skipping
	// offset and returning at most limit, with the total number matching.
	VariableKeys(ctx context.Context, prefix string, limit, offset int) (keys []string, total int, err error)
}

// Connections stores Airflow connections.
type Connections interface {
	// Connection returns the connection, or ErrNotFound.
	Connection(ctx context.Context, id string) (*Connection, error)
	PutConnection(ctx context.Context, c Connection) error
}

// XComQuery selects XComs of one key of one task.
type XComQuery struct {
	DagID, RunID, TaskID, Key string
	// MapIndex selects one map index; nil selects every map index.
	MapIndex *int
	// IncludePriorDates also returns the XComs of earlier dag runs of the
	// same dag (run_after not later than this run's).
	IncludePriorDates bool
}

// XComs stores XCom values.
type XComs interface {
	// XComs returns the matching XComs, this run's first and then earlier
	// runs' from newest to oldest, each run's ordered by map index.
	XComs(ctx context.Context, q XComQuery) ([]XCom, error)
	// SetXCom stores x, replacing the value in the same slot. ErrNotFound
	// when the dag run does not exist.
	SetXCom(ctx context.Context, x XCom) error
	// DeleteXCom removes one slot; deleting a missing slot is not an error.
	DeleteXCom(ctx context.Context, ref XComRef) error
}
