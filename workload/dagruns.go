package workload

// DAGs and dag runs as the Execution API's /dag-runs and /dags routes see
// them: a task triggering another DAG (TriggerDagRunOperator), waiting for a
// run's state, clearing a run, counting runs and reading the previous one.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Dag is what the Execution API reads of a DAG: Airflow's dag row
// (DagModel). Tags are the dag_tag rows.
type Dag struct {
	DagID string `json:"dag_id"`
	// IsPaused is nil when the column is NULL; the wire says false then.
	IsPaused        *bool      `json:"is_paused,omitempty"`
	IsStale         bool       `json:"is_stale,omitempty"`
	HasImportErrors bool       `json:"has_import_errors,omitempty"`
	AllowedRunTypes []string   `json:"allowed_run_types,omitempty"`
	BundleName      *string    `json:"bundle_name,omitempty"`
	BundleVersion   *string    `json:"bundle_version,omitempty"`
	RelativeFileloc *string    `json:"relative_fileloc,omitempty"`
	Owners          *string    `json:"owners,omitempty"`
	Tags            []string   `json:"tags,omitempty"`
	NextDagrun      *time.Time `json:"next_dagrun,omitempty"`
	// TaskAssets are the Asset inlets and outlets of the DAG's tasks, by
	// task id, where the store keeps them with the DAG's record (the
	// embedded store: a record written by PutDag). Airflow's database keeps
	// them in the serialized DAG instead, which pgstore reads there.
	TaskAssets map[string]TaskAssets `json:"task_assets,omitempty"`
	// StubTasks are the serialized operators of the DAG's stub tasks
	// (flagged is_stub), by task id, where the store keeps them with the
	// DAG's record (the embedded store: from the latest published
	// serialized DAG, or a record written by PutDag). Airflow's database
	// keeps them in the serialized DAG of each version, which pgstore
	// reads there.
	StubTasks map[string]json.RawMessage `json:"stub_tasks,omitempty"`
	// TaskGroups are the DAG's task groups, where the store keeps them
	// with the DAG's record (the embedded store: from the latest published
	// serialized DAG, or a record written by PutDag). Airflow's database
	// keeps them in the serialized DAG, which pgstore reads there.
	TaskGroups TaskGroups `json:"task_groups,omitempty"`
}

// Paused is the DAG's is_paused as Airflow's /dags/{dag_id}/state answers it:
// NULL counts as not paused.
func (d *Dag) Paused() bool { return d.IsPaused != nil && *d.IsPaused }

// DagRunFilter selects the dag runs of one DAG for CountDagRuns. Empty lists
// match everything (Airflow ignores an empty filter).
type DagRunFilter struct {
	DagID        string
	LogicalDates []time.Time
	RunIDs       []string
	States       []string
}

// Dag-run states (DagRunState).
const (
	DagRunQueued  = "queued"
	DagRunRunning = "running"
	DagRunSuccess = "success"
	DagRunFailed  = "failed"
)

// DagRunStates are the states a dag run may be in, in Airflow's order.
var DagRunStates = []string{DagRunQueued, DagRunRunning, DagRunSuccess, DagRunFailed}

// RunTypeOperatorTriggered is the run_type of a run a task triggered.
const RunTypeOperatorTriggered = "operator_triggered"

// ErrDagNotFound is a store's answer for an unknown (or stale) DAG. It wraps
// ErrNotFound, so that callers that do not tell the two apart need not.
var ErrDagNotFound = fmt.Errorf("%w: dag", ErrNotFound)

// DagRefusal is a DAG that may not be triggered or cleared as asked: the
// 400 of Airflow's dag-run routes, with their reason and message.
type DagRefusal struct {
	Reason  string
	Message string
}

func (e *DagRefusal) Error() string { return "workload: " + e.Reason + ": " + e.Message }

// AdmitTrigger is the rule a DAG must pass before a task triggers a run of
// it (Airflow's trigger_dag_run route): no import errors, and operator
// triggered runs allowed when the DAG restricts its run types.
func AdmitTrigger(d *Dag) error {
	if err := AdmitClear(d); err != nil {
		return err
	}
	if d.AllowedRunTypes != nil {
		for _, t := range d.AllowedRunTypes {
			if t == RunTypeOperatorTriggered {
				return nil
			}
		}
		return &DagRefusal{Reason: "denied_run_type",
			Message: fmt.Sprintf("Dag with dag_id '%s' does not allow operator-triggered runs", d.DagID)}
	}
	return nil
}

// AdmitClear is the rule a DAG must pass before a task clears one of its
// runs: no import errors (Airflow words it as for a trigger).
func AdmitClear(d *Dag) error {
	if d.HasImportErrors {
		return &DagRefusal{Reason: "import_errors",
			Message: fmt.Sprintf("Dag with dag_id '%s' has import errors and cannot be triggered", d.DagID)}
	}
	return nil
}

// NewTriggeredRun is the dag run trigger_dag records for a task's trigger:
// queued, run type operator_triggered, run_after the given one or else now,
// and, with a logical date, the data interval of a manual run after
// run_after (Airflow asks the DAG's timetable, infer_manual_data_interval;
// without the DAG's code taskgate records the exact interval [run_after,
// run_after], what the timetables of unscheduled and asset-triggered DAGs
// infer). triggeringUser comes from the triggering task's own dag run.
func NewTriggeredRun(dagID, runID string, logicalDate, runAfter *time.Time, conf []byte, partitionKey, note,
	triggeringUser *string, now time.Time) DagRun {
	dr := DagRun{DagID: dagID, RunID: runID, RunType: RunTypeOperatorTriggered, State: DagRunQueued,
		Conf: conf, PartitionKey: partitionKey, Note: note, TriggeringUserName: triggeringUser}
	dr.RunAfter = now.UTC()
	if runAfter != nil {
		dr.RunAfter = runAfter.UTC()
	}
	if logicalDate != nil {
		ld, ra := logicalDate.UTC(), dr.RunAfter
		dr.LogicalDate, dr.DataIntervalStart, dr.DataIntervalEnd = &ld, &ra, &ra
	}
	return dr
}

// ClearSelects reports whether clearing a run (only_failed or not) clears
// ti: every task instance, or with onlyFailed those failed or
// upstream_failed (Airflow's DAG.clear).
func ClearSelects(ti *TaskInstance, onlyFailed bool) bool {
	return !onlyFailed || ti.State == StateFailed || ti.State == StateUpstreamFailed
}

// ClearTry is what clearing does to a try (Airflow's clear_task_instances):
// the try is archived and the task instance continues under newID — in
// restarting when it was running (its process is told to stop and it
// becomes eligible for a retry), else without a state, for the scheduler to
// run again, with max_tries the larger of itself and the try number (Airflow
// adds the task's retries when it has the DAG's code; taskgate does not read
// it, and Airflow falls back to this too) and no next_method or next_kwargs.
// Its reschedules are dropped (Airflow deletes the archived try's
// task_reschedule rows), and so is what taskgate keeps per try (the /run
// grant, the reported outcome); an unfinished try's end date becomes now, as
// Airflow's record_ti sets it on the row. The returned value is the new
// try; ti is not changed.
func ClearTry(ti *TaskInstance, newID string, now time.Time) TaskInstance {
	t := *ti
	t.ID = newID
	t.Reschedules = nil
	t.RunGrant, t.ReportedAt = nil, nil
	t.RetryDelaySeconds, t.RetryReason = nil, nil
	t.TaskOutlets, t.OutletEvents = nil, nil
	t.QueuedBy = ""
	t.UpdatedAt = now.UTC()
	if !ti.State.Terminal() {
		// record_ti ends an unfinished try on the row it archives.
		end := now.UTC()
		t.EndDate = &end
	}
	if ti.State == StateRunning {
		t.State = StateRestarting
		return t
	}
	t.State = ""
	if t.TryNumber > t.MaxTries {
		t.MaxTries = t.TryNumber
	}
	t.NextMethod, t.NextKwargs = nil, nil
	return t
}

// ArchiveTry is the archived copy of a try that clearing (or a retry)
// replaced, as Airflow's TaskInstanceHistory.record_ti keeps it: a try that
// had not finished is recorded failed, ending now.
func ArchiveTry(ti *TaskInstance, now time.Time) TaskInstance {
	t := *ti
	if !t.State.Terminal() {
		t.State = StateFailed
		end := now.UTC()
		t.EndDate = &end
	}
	t.UpdatedAt = now.UTC()
	return t
}

// ClearRun is what clearing does to the dag run when it cleared at least one
// task instance: a finished run (success or failed) is queued again — start
// and end dates reset, queued_at now (a column the stores keep beside the
// model), clear_number one higher; a queued or running run is left as it is.
// It reports whether it changed dr.
func ClearRun(dr *DagRun) bool {
	if dr.State != DagRunSuccess && dr.State != DagRunFailed {
		return false
	}
	dr.State = DagRunQueued
	dr.StartDate, dr.EndDate = nil, nil
	dr.ClearNumber++
	return true
}

// NewTryID makes a task-instance id as Airflow's uuid7() does: 48 bits of
// Unix milliseconds, version 7, variant 10, random bits.
func NewTryID(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:])
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16|uint64(binary.BigEndian.Uint16(b[6:8])))
	b[6] = 0x70 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// DagRuns is the storage of the /dag-runs and /dags routes.
type DagRuns interface {
	// Dag returns the DAG, or an error wrapping ErrDagNotFound.
	Dag(ctx context.Context, dagID string) (*Dag, error)
	// TriggerDagRun records dr (see NewTriggeredRun) in one transaction:
	// ErrDagNotFound when its DAG is unknown or stale, admit's error as it
	// is when admit refuses the DAG, ErrAlreadyExists when the run id is
	// taken. dr.TriggeringUserName is replaced by the triggering_user_name
	// of the dag run of the task instance parentTI (nil when that is not
	// found).
	TriggerDagRun(ctx context.Context, dr DagRun, parentTI string, admit func(d *Dag) error) error
	// ClearDagRun clears the run's task instances (every one, or with
	// onlyFailed the failed and upstream_failed ones) by ClearTry, archiving
	// each cleared try, and then the run by ClearRun when it cleared any,
	// in one transaction: ErrDagNotFound for an unknown or stale DAG,
	// admit's error as it is, ErrNotFound for an unknown run.
	ClearDagRun(ctx context.Context, dagID, runID string, onlyFailed bool, admit func(d *Dag) error) error
	// CountDagRuns counts the dag runs matching f.
	CountDagRuns(ctx context.Context, f DagRunFilter) (int, error)
	// PreviousDagRun returns the dag run of dagID with the latest logical
	// date before the given one, in the given state unless state is empty,
	// or an error wrapping ErrNotFound.
	PreviousDagRun(ctx context.Context, dagID string, before time.Time, state string) (*DagRun, error)
}

// IsDagNotFound tells an unknown DAG from an unknown run.
func IsDagNotFound(err error) bool { return errors.Is(err, ErrDagNotFound) }
