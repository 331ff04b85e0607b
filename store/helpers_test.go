package store

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/internal/fakeclock"
	"github.com/taskgate/taskgate/workload"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// openAt opens the database at path, closing it when the test ends. Unless
// opts sets one, the heartbeat log is checkpointed at 64 KiB: every Open
// writes the log's size in zeros, which at the default 16 MiB would cost the
// tests seconds.
func openAt(t testing.TB, path string, opts Options) *DB {
	t.Helper()
	if opts.checkpointBytes == 0 {
		opts.checkpointBytes = 64 << 10
	}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// openTest opens a fresh database in t.TempDir with a fixed clock.
func openTest(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "taskgate.db")
	return openAt(t, path, Options{BatchDelay: batchDelay, Now: fakeclock.New(t0).Now}), path
}

func ptr[T any](v T) *T { return &v }

func dagRun(dagID, runID string, runAfter time.Time) workload.DagRun {
	ra := runAfter.UTC()
	return workload.DagRun{
		DagID: dagID, RunID: runID, LogicalDate: &ra, DataIntervalStart: &ra, DataIntervalEnd: &ra,
		RunAfter: ra, StartDate: &ra, RunType: "manual", State: "running", Conf: []byte(`{"k":1}`),
	}
}

func taskInstance(id, dagID, runID, taskID string, mapIndex int) workload.TaskInstance {
	return workload.TaskInstance{
		ID: id, DagID: dagID, RunID: runID, TaskID: taskID, MapIndex: mapIndex, TryNumber: 1,
		DagVersionID: id, PoolSlots: 1, Queue: "default", PriorityWeight: 1,
		State: workload.StateQueued, QueuedAt: ptr(t0), UpdatedAt: t0,
	}
}

// mustInsert inserts ti (and its dag run, created at t0) with no admission
// rule.
func mustInsert(t testing.TB, db *DB, ti workload.TaskInstance) *workload.TaskInstance {
	t.Helper()
	return mustInsertRun(t, db, dagRun(ti.DagID, ti.RunID, t0), ti)
}

func mustInsertRun(t testing.TB, db *DB, dr workload.DagRun, ti workload.TaskInstance) *workload.TaskInstance {
	t.Helper()
	got, err := db.InsertTaskInstance(context.Background(), dr, ti, nil)
	if err != nil {
		t.Fatalf("InsertTaskInstance(%s): %v", ti.ID, err)
	}
	return got
}

// heartbeat sends db the heartbeat of the worker (host, pid) received at
// at, judged by workload.AdmitHeartbeat as the gateway has it judged.
func heartbeat(ctx context.Context, db *DB, id, host string, pid int, at time.Time) error {
	return db.Heartbeat(ctx, id, workload.HeartbeatRequest{Hostname: host, PID: pid, At: at}, workload.AdmitHeartbeat)
}

// heartbeatRecord applies the heartbeat rule to a whole task instance: what
// storing a heartbeat through UpdateTaskInstance, without the log, does.
func heartbeatRecord(ti *workload.TaskInstance, host string, pid int, at time.Time) error {
	recorded, err := workload.AdmitHeartbeat(workload.HolderOf(ti), workload.HeartbeatRequest{Hostname: host, PID: pid, At: at})
	if err != nil {
		return err
	}
	ti.LastHeartbeatAt = &recorded
	ti.UpdatedAt = recorded
	return nil
}

// storedRenderedFields reads the rendered fields stored for a task
// instance straight from their bucket: nothing in production reads them
// back, PutRenderedFields is the only way in.
func storedRenderedFields(t testing.TB, db *DB, tiID string) (string, bool) {
	t.Helper()
	var out []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketRenderedFields); b != nil {
			out = bytes.Clone(b.Get([]byte(tiID)))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read rendered fields of %s: %v", tiID, err)
	}
	return string(out), out != nil
}

// batchDelay is the gateway's default [taskgate] batch_delay, which the
// tests open their stores with.
const batchDelay = time.Millisecond
