package workload

import (
	"context"
	"errors"
	"time"
)

// Errors of TaskGroupTaskIDs.
var (
	ErrNoSerializedDag = errors.New("workload: no serialized dag")
	ErrNoTaskGroup     = errors.New("workload: no such task group")
)

// TaskInstanceQueries is what the Execution API's task-instance queries
// need beyond Store: the counts and states a task asks about other tasks
// (ExternalTaskSensor and friends), the finished tasks of a run
// (breadcrumbs) and a task's previous try in earlier runs.
type TaskInstanceQueries interface {
	// QueryTaskInstances returns the current task instances of q.DagID that
	// match q, each with its dag run's logical date, operator and duration
	// as the store knows them.
	QueryTaskInstances(ctx context.Context, q TaskInstanceQuery) ([]TaskInstanceRow, error)

	// TaskGroupTaskIDs returns the task ids of the task group groupID of
	// the dag's latest serialized version: ErrNoSerializedDag when the
	// store has no serialized version of the dag, ErrNoTaskGroup when the
	// dag has no such group.
	TaskGroupTaskIDs(ctx context.Context, dagID, groupID string) ([]string, error)

	// PreviousTaskInstance returns the task instance of dagID's taskID at
	// mapIndex in the dag run with the latest logical date, before the given
	// one when before is set, in the given state when state is set; nil
	// when there is none.
	PreviousTaskInstance(ctx context.Context, dagID, taskID string, mapIndex int, before *time.Time,
		state State) (*TaskInstanceRow, error)
}

// TaskInstanceQuery selects task instances of one dag. Empty lists and a
// nil MapIndex match everything.
type TaskInstanceQuery struct {
	DagID        string
	TaskIDs      []string
	MapIndex     *int
	LogicalDates []time.Time
	RunIDs       []string
	// States selects by state; the empty state is a task instance without
	// one (Airflow's NULL, "null" on the wire).
	States []State
	// AnyState: States is not applied.
	AnyState bool
}

// TaskInstanceRow is a task instance with what the queries return beside
// it.
type TaskInstanceRow struct {
	TaskInstance
	LogicalDate *time.Time
	// Operator is the task's operator class name; nil when unknown (the
	// embedded store has no DAG).
	Operator *string
	// Duration in seconds; nil while the try has no end.
	Duration *float64
}

// Matches reports whether a task instance whose dag run has logicalDate
// matches q.
func (q TaskInstanceQuery) Matches(ti *TaskInstance, logicalDate *time.Time) bool {
	if ti.DagID != q.DagID {
		return false
	}
	if q.MapIndex != nil && ti.MapIndex != *q.MapIndex {
		return false
	}
	if len(q.TaskIDs) > 0 && !containsString(q.TaskIDs, ti.TaskID) {
		return false
	}
	if len(q.RunIDs) > 0 && !containsString(q.RunIDs, ti.RunID) {
		return false
	}
	if len(q.LogicalDates) > 0 {
		found := false
		for _, d := range q.LogicalDates {
			if logicalDate != nil && d.Equal(*logicalDate) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if !q.AnyState {
		found := false
		for _, s := range q.States {
			if s == ti.State {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Duration is the duration Airflow stores when a try ends: end date minus
// start date in seconds, nil unless both are set.
func Duration(ti *TaskInstance) *float64 {
	if ti.StartDate == nil || ti.EndDate == nil {
		return nil
	}
	d := ti.EndDate.Sub(*ti.StartDate).Seconds()
	return &d
}

// TerminalTIStates are Airflow's TerminalTIState: the states a try ends in
// by itself, which breadcrumbs list.
var TerminalTIStates = []State{StateSuccess, StateFailed, StateSkipped, StateUpstreamFailed, StateRemoved}
