package workload

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ExecuteTask is the workload a worker receives for one queued task
// instance, in the JSON shape of Airflow's ExecuteTask.
type ExecuteTask struct {
	Type              string          `json:"type"`
	Token             string          `json:"token"`
	TI                TaskInstanceDTO `json:"ti"`
	DagRelPath        string          `json:"dag_rel_path"`
	BundleInfo        BundleInfo      `json:"bundle_info"`
	LogPath           *string         `json:"log_path"`
	SentryIntegration string          `json:"sentry_integration"`
}

// TaskInstanceDTO is the task-instance part of ExecuteTask.
type TaskInstanceDTO struct {
	ID                   string         `json:"id"`
	DagVersionID         string         `json:"dag_version_id"`
	TaskID               string         `json:"task_id"`
	DagID                string         `json:"dag_id"`
	RunID                string         `json:"run_id"`
	TryNumber            int            `json:"try_number"`
	MapIndex             int            `json:"map_index"`
	PoolSlots            int            `json:"pool_slots"`
	Queue                string         `json:"queue"`
	PriorityWeight       int            `json:"priority_weight"`
	ParentContextCarrier map[string]any `json:"parent_context_carrier"`
	ContextCarrier       map[string]any `json:"context_carrier"`
}

// BundleInfo names the dag bundle holding the task's dag file.
type BundleInfo struct {
	Name    string  `json:"name"`
	Version *string `json:"version"`
}

// NewExecuteTask builds the workload for ti, carrying token.
func NewExecuteTask(ti *TaskInstance, token string) ExecuteTask {
	logPath := fmt.Sprintf("dag_id=%s/run_id=%s/task_id=%s/", ti.DagID, ti.RunID, ti.TaskID)
	if ti.MapIndex >= 0 {
		logPath += fmt.Sprintf("map_index=%d/", ti.MapIndex)
	}
	logPath += fmt.Sprintf("attempt=%d.log", ti.TryNumber)
	bundle := ti.BundleName
	if bundle == "" {
		bundle = "dags-folder"
	}
	return ExecuteTask{
		Type:  "ExecuteTask",
		Token: token,
		TI: TaskInstanceDTO{
			ID: ti.ID, DagVersionID: ti.DagVersionID, TaskID: ti.TaskID, DagID: ti.DagID, RunID: ti.RunID,
			TryNumber: ti.TryNumber, MapIndex: ti.MapIndex, PoolSlots: ti.PoolSlots, Queue: ti.Queue,
			PriorityWeight: ti.PriorityWeight,
		},
		DagRelPath: ti.DagRelPath,
		BundleInfo: BundleInfo{Name: bundle},
		LogPath:    &logPath,
	}
}

// QueueRequest describes a task instance to queue.
type QueueRequest struct {
	DagID, RunID, TaskID string
	MapIndex             int
	// TryNumber 0 means "one more than the previous try, or 1".
	TryNumber  int
	MaxTries   int
	DagRelPath string
	Queue      string
	RunType    string
	Conf       []byte
	// QueuedBy names the REST API user queueing the task instance; empty
	// for the offline CLI.
	QueuedBy string
}

// Validate checks a queue request.
func (r QueueRequest) Validate() error {
	switch {
	case r.DagID == "" || r.RunID == "" || r.TaskID == "":
		return errors.New("workload: dag id, run id and task id are required")
	case len(r.DagID) > 250 || len(r.RunID) > 250 || len(r.TaskID) > 250:
		return errors.New("workload: dag id, run id and task id are at most 250 characters")
	case r.MapIndex < -1:
		return errors.New("workload: map index must be -1 or more")
	case r.TryNumber < 0 || r.MaxTries < 0:
		return errors.New("workload: try number and max tries must not be negative")
	}
	return nil
}

// Inserter is the part of Store that Queue needs, so that a caller which
// only queues (the operator use cases) declares no more than that.
type Inserter interface {
	InsertTaskInstance(ctx context.Context, dr DagRun, ti TaskInstance,
		admit func(existing *TaskInstance, ti *TaskInstance) error) (*TaskInstance, error)
}

// Queue stores a new queued task instance (creating its dag run if needed)
// with the given id. A task instance already queued or running at the same
// coordinates is refused with ErrAlreadyExists: queueing it again would hand
// out a second workload token for the same work.
func Queue(ctx context.Context, s Inserter, id string, r QueueRequest, now time.Time) (*TaskInstance, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	now = now.UTC()
	runType := r.RunType
	if runType == "" {
		runType = "manual"
	}
	conf := r.Conf
	if len(conf) == 0 {
		conf = []byte("{}")
	}
	dr := DagRun{
		DagID: r.DagID, RunID: r.RunID, LogicalDate: &now, DataIntervalStart: &now, DataIntervalEnd: &now,
		RunAfter: now, StartDate: &now, RunType: runType, State: "running", Conf: conf,
	}
	queue := r.Queue
	if queue == "" {
		queue = "default"
	}
	ti := TaskInstance{
		ID: id, DagID: r.DagID, RunID: r.RunID, TaskID: r.TaskID, MapIndex: r.MapIndex,
		TryNumber: r.TryNumber, MaxTries: r.MaxTries, DagVersionID: id, PoolSlots: 1, Queue: queue,
		PriorityWeight: 1, DagRelPath: r.DagRelPath, State: StateQueued, QueuedAt: &now, UpdatedAt: now,
		QueuedBy: r.QueuedBy,
	}
	return s.InsertTaskInstance(ctx, dr, ti, func(existing, ti *TaskInstance) error {
		if existing == nil {
			if ti.TryNumber == 0 {
				ti.TryNumber = 1
			}
			return nil
		}
		resuming := existing.State == StateUpForReschedule || existing.State == StateDeferred
		if !existing.State.Terminal() && existing.State != StateUpForRetry && !resuming {
			return fmt.Errorf("%w: task instance %s is %s", ErrAlreadyExists, existing.ID, existing.State)
		}
		if ti.TryNumber == 0 {
			ti.TryNumber = existing.TryNumber
			if !resuming {
				ti.TryNumber++
			}
		}
		if resuming {
			// The same try goes on: keep its start date, its reschedules and
			// the method a deferred task resumes in.
			ti.StartDate = existing.StartDate
			ti.Reschedules = existing.Reschedules
			ti.NextMethod, ti.NextKwargs = existing.NextMethod, existing.NextKwargs
		}
		return nil
	})
}
