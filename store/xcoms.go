package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

// XComs returns the XComs of q.Key for q.TaskID: this run's first, then —
// with IncludePriorDates — those of the dag's other runs whose run_after is
// not later than this run's, newest run first (runs with equal run_after by
// descending run id), each run's in map-index order (-1 first). A missing
// dag run or slot gives an empty, non-nil list: whether that is a 404 is the
// caller's decision.
func (db *DB) XComs(ctx context.Context, q workload.XComQuery) ([]workload.XCom, error) {
	out := []workload.XCom{}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		xb := tx.Bucket(bucketXComs)
		if xb == nil {
			return nil
		}
		var err error
		if out, err = appendRunXComs(out, xb, q, q.RunID); err != nil {
			return err
		}
		if !q.IncludePriorDates {
			return nil
		}
		dr, err := getDagRun(tx, q.DagID, q.RunID)
		if err != nil || dr == nil {
			return err
		}
		idx := tx.Bucket(bucketDagRunsByRunAfter)
		if idx == nil {
			return nil
		}
		// Strictly before run_after plus one nanosecond: run_after <= this
		// run's, newest first.
		return runsBefore(ctx, idx, q.DagID, dr.RunAfter.Add(time.Nanosecond), func(runID string) (bool, error) {
			if runID == q.RunID {
				return false, nil
			}
			var err error
			out, err = appendRunXComs(out, xb, q, runID)
			return false, err
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// appendRunXComs appends the XComs q selects in one run.
func appendRunXComs(out []workload.XCom, xb *bolt.Bucket, q workload.XComQuery, runID string) ([]workload.XCom, error) {
	ref := workload.XComRef{DagID: q.DagID, RunID: runID, TaskID: q.TaskID, Key: q.Key}
	if q.MapIndex != nil {
		ref.MapIndex = *q.MapIndex
		data := xb.Get(xcomKey(q.DagID, runID, q.TaskID, q.Key, *q.MapIndex))
		if data == nil {
			return out, nil
		}
		x, err := decodeXCom(ref, data)
		if err != nil {
			return out, err
		}
		return append(out, x), nil
	}
	prefix := tuple(q.DagID, runID, q.TaskID, q.Key)
	c := xb.Cursor()
	for k, data := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, data = c.Next() {
		mi, rest, err := readMapIndex(k[len(prefix):])
		if err != nil {
			return out, err
		}
		if len(rest) != 0 {
			return out, fmt.Errorf("store: xcom key: trailing bytes: %w", ErrCorrupt)
		}
		ref.MapIndex = mi
		x, err := decodeXCom(ref, data)
		if err != nil {
			return out, err
		}
		out = append(out, x)
	}
	return out, nil
}

// SetXCom stores x in its slot, replacing any value there. RunAfter is taken
// from the dag run (include_prior_dates orders by it) and Timestamp from the
// store's clock, whatever x carries; an unknown dag run is refused with
// workload.ErrNotFound, since without it the XCom would have no run_after to
// be ordered by.
func (db *DB) SetXCom(ctx context.Context, x workload.XCom) error {
	key := xcomKey(x.DagID, x.RunID, x.TaskID, x.Key, x.MapIndex)
	if err := checkKey("xcom slot", key); err != nil {
		return err
	}
	x.Timestamp = db.now().UTC()
	x.Value = append(x.Value[:0:0], x.Value...) // the caller may reuse its buffer
	drKey := dagRunKey(x.DagID, x.RunID)
	return db.write(ctx, func(tx *bolt.Tx) error {
		xb, err := bucket(tx, bucketXComs)
		if err != nil {
			return err
		}
		runs, err := bucket(tx, bucketDagRuns)
		if err != nil {
			return err
		}
		data := runs.Get(drKey)
		if data == nil {
			return notFound("dag run %s/%s", x.DagID, x.RunID)
		}
		// Only run_after is needed: decoding into a one-field struct skips
		// building the whole dag run on this hot path.
		var dr struct {
			RunAfter time.Time `json:"run_after"`
		}
		if err := decodeJSON("dag run "+x.DagID+"/"+x.RunID, data, &dr); err != nil {
			return err
		}
		y := x
		y.RunAfter = dr.RunAfter.UTC()
		return put(xb, key, encodeXCom(y))
	})
}

// DeleteXCom removes one slot; a missing slot is not an error, so a retried
// delete succeeds.
func (db *DB) DeleteXCom(ctx context.Context, ref workload.XComRef) error {
	key := xcomKey(ref.DagID, ref.RunID, ref.TaskID, ref.Key, ref.MapIndex)
	if err := checkKey("xcom slot", key); err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		xb, err := bucket(tx, bucketXComs)
		if err != nil {
			return err
		}
		return del(xb, key)
	})
}

// XComKeys lists, in key order and without repeats, the XCom keys a task
// stored in a dag run at mapIndex, or at any map index when mapIndex is
// negative. The result is never nil.
func (db *DB) XComKeys(ctx context.Context, dagID, runID, taskID string, mapIndex int) ([]string, error) {
	keys := []string{}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		xb := tx.Bucket(bucketXComs)
		if xb == nil {
			return nil
		}
		prefix := tuple(dagID, runID, taskID)
		c := xb.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			key, mi, err := readXComKeyTail(k[len(prefix):])
			if err != nil {
				return err
			}
			if mapIndex >= 0 && mi != mapIndex {
				continue
			}
			if n := len(keys); n == 0 || keys[n-1] != key {
				keys = append(keys, key)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}
