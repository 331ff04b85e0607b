package store

// DAGs and dag runs for the /dag-runs and /dags routes. The embedded store
// has no scheduler: a DAG is known by a record a DAG processor's Job
// published (dagparsing.go) or put with PutDag (a fixture, or an
// operator's), or else by its dag runs (those queued with a workload, or
// triggered), and then reads as unpaused, not stale and without import
// errors. A triggered run is recorded queued and nothing runs
// it. Clearing a run archives the cleared tries and gives each task instance
// a new id, as Airflow does, and queues a finished run again; nothing
// schedules the cleared task instances either.

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

var _ workload.DagRuns = (*DB)(nil)

// bucketDags: dag_id → workload.Dag JSON, the DAGs put by PutDag or
// published. It is created by the first write that needs it: a file
// without it holds no DAG record, and its DAGs are known by their runs.
var bucketDags = []byte("dags")

// getDag reads the DAG record, or makes one for a DAG known by its runs;
// nil without error when neither exists.
func getDag(tx *bolt.Tx, dagID string) (*workload.Dag, error) {
	if b := tx.Bucket(bucketDags); b != nil {
		if data := b.Get([]byte(dagID)); data != nil {
			var d workload.Dag
			if err := decodeJSON("dag "+dagID, data, &d); err != nil {
				return nil, err
			}
			return &d, nil
		}
	}
	runs := tx.Bucket(bucketDagRuns)
	if runs == nil {
		return nil, nil
	}
	prefix := tuple(dagID)
	if k, _ := runs.Cursor().Seek(prefix); k == nil || !bytes.HasPrefix(k, prefix) {
		return nil, nil
	}
	paused := false
	return &workload.Dag{DagID: dagID, IsPaused: &paused}, nil
}

// activeDag is getDag for the write routes: a stale or unknown DAG is
// workload.ErrDagNotFound.
func activeDag(tx *bolt.Tx, dagID string) (*workload.Dag, error) {
	d, err := getDag(tx, dagID)
	if err != nil {
		return nil, err
	}
	if d == nil || d.IsStale {
		return nil, fmt.Errorf("store: dag %s: %w", dagID, workload.ErrDagNotFound)
	}
	return d, nil
}

// Dag returns the DAG, or an error wrapping workload.ErrDagNotFound.
func (db *DB) Dag(ctx context.Context, dagID string) (*workload.Dag, error) {
	var d *workload.Dag
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		d, err = getDag(tx, dagID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, fmt.Errorf("store: dag %s: %w", dagID, workload.ErrDagNotFound)
	}
	return d, nil
}

// PutDag stores d as the DAG's record, replacing an earlier one: what a DAG
// processor would have written (paused, stale, import errors, tags …).
func (db *DB) PutDag(ctx context.Context, d workload.Dag) error {
	if err := checkKey("dag id", []byte(d.DagID)); err != nil {
		return err
	}
	enc, err := encodeJSON("dag "+d.DagID, &d)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketDags)
		if err != nil {
			return err
		}
		return put(b, []byte(d.DagID), enc)
	})
}

// PutDagRun stores a dag run that does not exist yet (a fixture, or a run a
// scheduler created), or fails with workload.ErrAlreadyExists.
func (db *DB) PutDagRun(ctx context.Context, dr workload.DagRun) error {
	if err := checkKey("dag run", dagRunKey(dr.DagID, dr.RunID)); err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error { return insertDagRun(tx, dr) })
}

// insertDagRun writes a new dag run with its time indexes, or fails with
// workload.ErrAlreadyExists when its run id, or its logical date, is taken
// (Airflow's dag_run unique keys).
func insertDagRun(tx *bolt.Tx, dr workload.DagRun) error {
	runs, err := bucket(tx, bucketDagRuns)
	if err != nil {
		return err
	}
	byRunAfter, byLogical, err := buckets(tx, bucketDagRunsByRunAfter, bucketDagRunsByLogicalDate)
	if err != nil {
		return err
	}
	key := dagRunKey(dr.DagID, dr.RunID)
	if runs.Get(key) != nil {
		return fmt.Errorf("store: dag run %s/%s: %w", dr.DagID, dr.RunID, workload.ErrAlreadyExists)
	}
	if dr.LogicalDate != nil {
		prefix := appendTime(tuple(dr.DagID), *dr.LogicalDate)
		if k, _ := byLogical.Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
			return fmt.Errorf("store: dag run of %s at %s: %w", dr.DagID,
				dr.LogicalDate.UTC().Format(time.RFC3339Nano), workload.ErrAlreadyExists)
		}
	}
	enc, err := encodeJSON("dag run "+dr.DagID+"/"+dr.RunID, &dr)
	if err != nil {
		return err
	}
	if err := put(runs, key, enc); err != nil {
		return err
	}
	if err := put(byRunAfter, dagRunTimeKey(dr.DagID, dr.RunAfter, dr.RunID), nil); err != nil {
		return err
	}
	if dr.LogicalDate != nil {
		return put(byLogical, dagRunTimeKey(dr.DagID, *dr.LogicalDate, dr.RunID), nil)
	}
	return nil
}

// TriggerDagRun records dr as a new dag run of a known DAG (see
// workload.DagRuns): queued, and nothing here runs it.
func (db *DB) TriggerDagRun(ctx context.Context, dr workload.DagRun, parentTI string, admit func(d *workload.Dag) error) error {
	if err := checkKey("dag run", dagRunKey(dr.DagID, dr.RunID)); err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		d, err := activeDag(tx, dr.DagID)
		if err != nil {
			return err
		}
		if err := admit(d); err != nil {
			return err
		}
		run := dr
		run.TriggeringUserName = nil
		if parentTI != "" {
			if ti, err := db.getTI(tx, parentTI); err != nil {
				return err
			} else if ti != nil {
				parent, err := getDagRun(tx, ti.DagID, ti.RunID)
				if err != nil {
					return err
				}
				if parent != nil {
					run.TriggeringUserName = parent.TriggeringUserName
				}
			}
		}
		return insertDagRun(tx, run)
	})
}

// ClearDagRun clears a dag run as Airflow's DAG.clear does (see
// workload.DagRuns): each cleared try stays readable by its id, archived,
// and its task instance continues under a new id.
func (db *DB) ClearDagRun(ctx context.Context, dagID, runID string, onlyFailed bool, admit func(d *workload.Dag) error) error {
	now := db.now().UTC()
	return db.write(ctx, func(tx *bolt.Tx) error {
		d, err := activeDag(tx, dagID)
		if err != nil {
			return err
		}
		if err := admit(d); err != nil {
			return err
		}
		dr, err := getDagRun(tx, dagID, runID)
		if err != nil {
			return err
		}
		if dr == nil {
			return notFound("dag run %s/%s", dagID, runID)
		}
		tis, cur, err := buckets(tx, bucketTaskInstances, bucketCurrentTI)
		if err != nil {
			return err
		}
		type clearing struct {
			coord          []byte
			archived, next workload.TaskInstance
		}
		var cleared []clearing
		prefix := tuple(dagID, runID)
		c := cur.Cursor()
		for k, id := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, id = c.Next() {
			data := tis.Get(id)
			if data == nil {
				return fmt.Errorf("store: current task instance %s missing: %w", id, ErrCorrupt)
			}
			ti, err := db.decodeTI(tx, string(id), data)
			if err != nil {
				return err
			}
			if !workload.ClearSelects(ti, onlyFailed) {
				continue
			}
			cleared = append(cleared, clearing{append([]byte(nil), k...),
				workload.ArchiveTry(ti, now), workload.ClearTry(ti, workload.NewTryID(now), now)})
		}
		// Every record is read: write (cursor keys must not move under a
		// running cursor).
		for i := range cleared {
			cl := &cleared[i]
			for _, t := range []*workload.TaskInstance{&cl.archived, &cl.next} {
				enc, err := encodeJSON("task instance "+t.ID, t)
				if err != nil {
					return err
				}
				if err := put(tis, []byte(t.ID), enc); err != nil {
					return err
				}
			}
			if err := put(cur, cl.coord, []byte(cl.next.ID)); err != nil {
				return err
			}
			db.noteTI(&cl.archived)
			db.noteTI(&cl.next)
		}
		if len(cleared) == 0 || !workload.ClearRun(dr) {
			return nil
		}
		enc, err := encodeJSON("dag run "+dagID+"/"+runID, dr)
		if err != nil {
			return err
		}
		runs, err := bucket(tx, bucketDagRuns)
		if err != nil {
			return err
		}
		return put(runs, dagRunKey(dagID, runID), enc)
	})
}

// CountDagRuns counts the dag runs of f.DagID matching f's lists.
func (db *DB) CountDagRuns(ctx context.Context, f workload.DagRunFilter) (int, error) {
	n := 0
	err := db.view(ctx, func(tx *bolt.Tx) error {
		runs := tx.Bucket(bucketDagRuns)
		if runs == nil {
			return nil
		}
		prefix := tuple(f.DagID)
		c := runs.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var dr workload.DagRun
			if err := decodeJSON("dag run", v, &dr); err != nil {
				return err
			}
			if dr.DagID == f.DagID && matchesRunFilter(&dr, f) {
				n++
			}
		}
		return nil
	})
	return n, err
}

func matchesRunFilter(dr *workload.DagRun, f workload.DagRunFilter) bool {
	if len(f.RunIDs) > 0 && !containsString(f.RunIDs, dr.RunID) {
		return false
	}
	if len(f.States) > 0 && !containsString(f.States, dr.State) {
		return false
	}
	if len(f.LogicalDates) > 0 {
		if dr.LogicalDate == nil {
			return false
		}
		for _, t := range f.LogicalDates {
			if t.Equal(*dr.LogicalDate) {
				return true
			}
		}
		return false
	}
	return true
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// PreviousDagRun returns the dag run of dagID with the latest logical date
// before the given one (in state, unless empty), walking the logical-date
// index backwards, or an error wrapping workload.ErrNotFound.
func (db *DB) PreviousDagRun(ctx context.Context, dagID string, before time.Time, state string) (*workload.DagRun, error) {
	var found *workload.DagRun
	err := db.view(ctx, func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketDagRunsByLogicalDate)
		if idx == nil {
			return nil
		}
		return runsBefore(ctx, idx, dagID, before, func(runID string) (bool, error) {
			dr, err := getDagRun(tx, dagID, runID)
			if err != nil {
				return false, err
			}
			if dr == nil {
				return false, fmt.Errorf("store: indexed dag run %s/%s missing: %w", dagID, runID, ErrCorrupt)
			}
			if state == "" || dr.State == state {
				found = dr
				return true, nil
			}
			return false, nil
		})
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, notFound("dag run of %s before %s", dagID, before.UTC().Format(time.RFC3339Nano))
	}
	return found, nil
}
