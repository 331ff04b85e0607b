package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

var _ workload.TaskInstanceQueries = (*DB)(nil)

// eachCurrentTI calls fn with every current task instance of dagID and its
// dag run's logical date, in coordinate order.
func (db *DB) eachCurrentTI(ctx context.Context, tx *bolt.Tx, dagID string,
	fn func(ti *workload.TaskInstance, logicalDate *time.Time)) error {
	cur, tis := tx.Bucket(bucketCurrentTI), tx.Bucket(bucketTaskInstances)
	if cur == nil || tis == nil {
		return nil
	}
	runs := map[string]*workload.DagRun{}
	prefix := tuple(dagID)
	c := cur.Cursor()
	for k, id := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, id = c.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		data := tis.Get(id)
		if data == nil {
			return fmt.Errorf("store: current task instance %s missing: %w", id, ErrCorrupt)
		}
		ti, err := db.decodeTI(tx, string(id), data)
		if err != nil {
			return err
		}
		dr, ok := runs[ti.RunID]
		if !ok {
			if dr, err = getDagRun(tx, ti.DagID, ti.RunID); err != nil {
				return err
			}
			runs[ti.RunID] = dr
		}
		var logical *time.Time
		if dr != nil {
			logical = dr.LogicalDate
		}
		fn(ti, logical)
	}
	return nil
}

func rowOf(ti *workload.TaskInstance, logical *time.Time) workload.TaskInstanceRow {
	return workload.TaskInstanceRow{TaskInstance: *ti, LogicalDate: logical, Duration: workload.Duration(ti)}
}

// QueryTaskInstances returns the current task instances of q.DagID that
// match q, in (run, task, map index) order. The embedded store knows no
// operator.
func (db *DB) QueryTaskInstances(ctx context.Context, q workload.TaskInstanceQuery) ([]workload.TaskInstanceRow, error) {
	out := []workload.TaskInstanceRow{}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return db.eachCurrentTI(ctx, tx, q.DagID, func(ti *workload.TaskInstance, logical *time.Time) {
			if q.Matches(ti, logical) {
				out = append(out, rowOf(ti, logical))
			}
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// TaskGroupTaskIDs returns the task ids of the task group groupID of the
// DAG's record (workload.Dag.TaskGroups: those of the latest serialized
// DAG a DAG processor published, or of a record written by PutDag). A DAG
// with neither a published version nor groups in its record has no
// serialized version (a DAG known by its runs alone).
func (db *DB) TaskGroupTaskIDs(ctx context.Context, dagID, groupID string) ([]string, error) {
	var groups workload.TaskGroups
	serialized := false
	err := db.view(ctx, func(tx *bolt.Tx) error {
		d, err := getDag(tx, dagID)
		if err != nil {
			return err
		}
		if d != nil && d.TaskGroups != nil {
			groups, serialized = d.TaskGroups, true
			return nil
		}
		serialized = latestVersion(tx, dagID) != nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !serialized {
		return nil, fmt.Errorf("store: dag %s: %w", dagID, workload.ErrNoSerializedDag)
	}
	ids, err := groups.TaskIDs(groupID)
	if err != nil {
		return nil, fmt.Errorf("store: dag %s: %w", dagID, err)
	}
	return ids, nil
}

// PreviousTaskInstance returns the current task instance of dagID's taskID
// at mapIndex in the dag run with the latest logical date (before the given
// one when set), in state when set. As PostgreSQL orders NULLs first in a
// descending order, a dag run without a logical date comes first when
// before is unset.
func (db *DB) PreviousTaskInstance(ctx context.Context, dagID, taskID string, mapIndex int, before *time.Time,
	state workload.State) (*workload.TaskInstanceRow, error) {
	var best *workload.TaskInstanceRow
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return db.eachCurrentTI(ctx, tx, dagID, func(ti *workload.TaskInstance, logical *time.Time) {
			if ti.TaskID != taskID || ti.MapIndex != mapIndex || (state != "" && ti.State != state) {
				return
			}
			if before != nil && (logical == nil || !logical.Before(*before)) {
				return
			}
			if best != nil {
				switch {
				case best.LogicalDate == nil:
					return
				case logical != nil && !logical.After(*best.LogicalDate):
					return
				}
			}
			r := rowOf(ti, logical)
			best = &r
		})
	})
	if err != nil {
		return nil, err
	}
	return best, nil
}
