package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

// The interfaces the workload package declares; a change there that DB does
// not follow fails the build here rather than at the gateway's wiring.
var (
	_ workload.Store       = (*DB)(nil)
	_ workload.Variables   = (*DB)(nil)
	_ workload.Connections = (*DB)(nil)
	_ workload.XComs       = (*DB)(nil)
)

func notFound(format string, args ...any) error {
	return fmt.Errorf("store: "+format+": %w", append(args, workload.ErrNotFound)...)
}

// getTI reads and decodes a task instance; nil without error when missing.
func (db *DB) getTI(tx *bolt.Tx, id string) (*workload.TaskInstance, error) {
	b := tx.Bucket(bucketTaskInstances)
	if b == nil {
		return nil, nil
	}
	data := b.Get([]byte(id))
	if data == nil {
		return nil, nil
	}
	return db.decodeTI(tx, id, data)
}

// decodeTI decodes a stored task instance with its latest heartbeat.
func (db *DB) decodeTI(tx *bolt.Tx, id string, data []byte) (*workload.TaskInstance, error) {
	ti, err := decodeTI(id, data)
	if err != nil {
		return nil, err
	}
	db.withHeartbeat(tx, ti)
	return ti, nil
}

// TaskInstance returns the task instance with the given id — the current try
// or an earlier one — or an error wrapping workload.ErrNotFound.
func (db *DB) TaskInstance(ctx context.Context, id string) (*workload.TaskInstance, error) {
	var ti *workload.TaskInstance
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		ti, err = db.getTI(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if ti == nil {
		return nil, notFound("task instance %s", id)
	}
	return ti, nil
}

// TryStatus returns the status of the try with the given id, or an error
// wrapping workload.ErrNotFound. A running try is answered from memory (see
// noteTI): running tries are the current ones, since a new try is admitted
// only once the last one stopped running. Any other is read with its
// coordinates' current id; a try whose task instance went on under a new id
// when it reported up_for_retry is Moved while that task instance still has
// its try number (as pgstore reads task_instance_history).
func (db *DB) TryStatus(ctx context.Context, id string) (workload.TryStatus, error) {
	if _, ok := db.live.Load(id); ok {
		return workload.TryStatus{State: workload.StateRunning, Current: true}, nil
	}
	var (
		st    workload.TryStatus
		found bool // a cleared task instance has no state
	)
	err := db.view(ctx, func(tx *bolt.Tx) error {
		ti, err := db.getTI(tx, id)
		if err != nil || ti == nil {
			return err
		}
		cur := tx.Bucket(bucketCurrentTI)
		var curID []byte
		if cur != nil {
			curID = cur.Get(currentTIKey(ti.DagID, ti.RunID, ti.TaskID, ti.MapIndex))
		}
		current := bytes.Equal(curID, []byte(id))
		st, found = workload.StatusOf(ti, current), true
		if !current && curID != nil && ti.State == workload.StateUpForRetry {
			// The task instance went on under a new id because this try
			// reported up_for_retry: while its try number is still this
			// try's, this try is the latest one, archived, in the state the
			// task instance is in. A try cleared away is simply archived.
			now, err := db.getTI(tx, string(curID))
			if err != nil {
				return err
			}
			if now != nil && now.TryNumber == ti.TryNumber {
				st.Current, st.Moved, st.State = true, true, now.State
			}
		}
		return nil
	})
	if err != nil {
		return workload.TryStatus{}, err
	}
	if !found {
		return workload.TryStatus{}, notFound("task instance %s", id)
	}
	return st, nil
}

// UpdateTaskInstance applies fn to a freshly decoded copy of the task
// instance inside the shared write transaction and stores the result. fn is
// called again on a fresh copy if the transaction is retried, so nothing it
// saw in an abandoned run leaks into the stored value. When fn returns an
// error, nothing is written and that error is returned unchanged, without
// disturbing the other writes sharing the commit. fn must not change the
// task instance's identity (id, dag, run, task, map index): the coordinate
// index would no longer match it. fn runs on the writer goroutine inside the
// shared transaction, so it must be quick and must not call the DB (a write
// from fn would wait for itself). A current try fn moves to up_for_retry is
// archived as Airflow does (see workload.RetriesOnNewID): kept under its id,
// while its coordinates go on under a new id; the returned value is the
// try's, under its own id.
func (db *DB) UpdateTaskInstance(ctx context.Context, id string, fn func(ti *workload.TaskInstance) error) (*workload.TaskInstance, error) {
	return db.updateTI(ctx, id, false, func(ti *workload.TaskInstance, _ *workload.HITLDetail) error { return fn(ti) })
}

// updateTI is UpdateTaskInstance, whose fn also receives the task
// instance's Human-in-the-loop detail when withHITL is set.
func (db *DB) updateTI(ctx context.Context, id string, withHITL bool,
	fn func(ti *workload.TaskInstance, h *workload.HITLDetail) error) (*workload.TaskInstance, error) {
	if err := checkKey("task instance id", []byte(id)); err != nil {
		return nil, err
	}
	var out *workload.TaskInstance
	err := db.write(ctx, func(tx *bolt.Tx) error {
		out = nil
		b, err := bucket(tx, bucketTaskInstances)
		if err != nil {
			return err
		}
		data := b.Get([]byte(id))
		if data == nil {
			return notFound("task instance %s", id)
		}
		ti, err := db.decodeTI(tx, id, data)
		if err != nil {
			return err
		}
		var h *workload.HITLDetail
		if withHITL {
			if h, err = getHITL(tx, id); err != nil {
				return err
			}
		}
		before := *ti
		if err := fn(ti, h); err != nil {
			return err
		}
		if ti.ID != before.ID || ti.DagID != before.DagID || ti.RunID != before.RunID ||
			ti.TaskID != before.TaskID || ti.MapIndex != before.MapIndex {
			return fmt.Errorf("store: update of task instance %s changed its identity", id)
		}
		if ti.State == workload.StateSuccess && before.State != workload.StateSuccess {
			if err := registerAssetChanges(tx, ti, db.now().UTC()); err != nil {
				return err
			}
		}
		enc, err := encodeJSON("task instance "+id, ti)
		if err != nil {
			return err
		}
		var next []byte
		var nextTI workload.TaskInstance
		coord := currentTIKey(ti.DagID, ti.RunID, ti.TaskID, ti.MapIndex)
		cur := tx.Bucket(bucketCurrentTI)
		if workload.RetriesOnNewID(before.State, ti.State) && cur != nil && bytes.Equal(cur.Get(coord), []byte(id)) {
			// Airflow archives the try at once: it stays readable under
			// its id, and the task instance goes on under a new one.
			nextTI = workload.NextAttempt(ti, workload.NewTryID(db.now()))
			if b.Get([]byte(nextTI.ID)) != nil {
				return fmt.Errorf("store: new id %s of task instance %s: %w", nextTI.ID, id, workload.ErrAlreadyExists)
			}
			if next, err = encodeJSON("task instance "+nextTI.ID, &nextTI); err != nil {
				return err
			}
		}
		if err := put(b, []byte(id), enc); err != nil {
			return err
		}
		if next != nil {
			if err := put(b, []byte(nextTI.ID), next); err != nil {
				return err
			}
			if err := put(cur, coord, []byte(nextTI.ID)); err != nil {
				return err
			}
		}
		db.noteTI(ti)
		out = ti
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// InsertTaskInstance stores ti as the current try at its coordinates, and dr
// when that dag run does not exist yet (an existing dag run is kept as it
// is). admit sees the current task instance at
// the same coordinates (nil if none) and may adjust ti or refuse; a refusal
// writes nothing, not even the dag run, and is returned unchanged. The
// previous try stays readable by its id but no longer appears in
// TaskInstances. A ti id that is already stored is refused with
// workload.ErrAlreadyExists: ids name one try for ever (tokens carry them).
func (db *DB) InsertTaskInstance(ctx context.Context, dr workload.DagRun, ti workload.TaskInstance,
	admit func(existing *workload.TaskInstance, ti *workload.TaskInstance) error) (*workload.TaskInstance, error) {
	if dr.DagID != ti.DagID || dr.RunID != ti.RunID {
		return nil, fmt.Errorf("store: dag run %s/%s does not match task instance's %s/%s", dr.DagID, dr.RunID, ti.DagID, ti.RunID)
	}
	if err := checkKey("task instance id", []byte(ti.ID)); err != nil {
		return nil, err
	}
	coord := currentTIKey(ti.DagID, ti.RunID, ti.TaskID, ti.MapIndex)
	if err := checkKey("task instance coordinates", coord); err != nil {
		return nil, err
	}
	drKey := dagRunKey(dr.DagID, dr.RunID)
	var out *workload.TaskInstance
	err := db.write(ctx, func(tx *bolt.Tx) error {
		out = nil
		tis, cur, err := buckets(tx, bucketTaskInstances, bucketCurrentTI)
		if err != nil {
			return err
		}
		runs, err := bucket(tx, bucketDagRuns)
		if err != nil {
			return err
		}
		var existing *workload.TaskInstance
		if curID := cur.Get(coord); curID != nil {
			data := tis.Get(curID)
			if data == nil {
				return fmt.Errorf("store: current task instance %s of %s/%s/%s[%d] missing: %w",
					curID, ti.DagID, ti.RunID, ti.TaskID, ti.MapIndex, ErrCorrupt)
			}
			if existing, err = db.decodeTI(tx, string(curID), data); err != nil {
				return err
			}
		}
		t := ti // admit works on a copy, so a retried run starts afresh
		if admit != nil {
			if err := admit(existing, &t); err != nil {
				return err
			}
		}
		if t.ID != ti.ID || t.DagID != ti.DagID || t.RunID != ti.RunID || t.TaskID != ti.TaskID || t.MapIndex != ti.MapIndex {
			return fmt.Errorf("store: admitting task instance %s changed its identity", ti.ID)
		}
		if tis.Get([]byte(t.ID)) != nil {
			return fmt.Errorf("store: task instance %s: %w", t.ID, workload.ErrAlreadyExists)
		}
		enc, err := encodeJSON("task instance "+t.ID, &t)
		if err != nil {
			return err
		}
		var drEnc []byte
		newRun := runs.Get(drKey) == nil
		var byRunAfter, byLogical *bolt.Bucket
		if newRun {
			if drEnc, err = encodeJSON("dag run "+dr.DagID+"/"+dr.RunID, &dr); err != nil {
				return err
			}
			if byRunAfter, err = bucket(tx, bucketDagRunsByRunAfter); err != nil {
				return err
			}
			if byLogical, err = bucket(tx, bucketDagRunsByLogicalDate); err != nil {
				return err
			}
		}
		// Every check is done: write.
		if newRun {
			if err := put(runs, drKey, drEnc); err != nil {
				return err
			}
			if err := put(byRunAfter, dagRunTimeKey(dr.DagID, dr.RunAfter, dr.RunID), nil); err != nil {
				return err
			}
			if dr.LogicalDate != nil {
				if err := put(byLogical, dagRunTimeKey(dr.DagID, *dr.LogicalDate, dr.RunID), nil); err != nil {
					return err
				}
			}
		}
		if err := put(tis, []byte(t.ID), enc); err != nil {
			return err
		}
		if err := put(cur, coord, []byte(t.ID)); err != nil {
			return err
		}
		if existing != nil && workload.IsNextAttempt(existing) {
			// The id up_for_retry gave the coordinates named no try and
			// no token: the new try takes its place, as pgstore gives
			// Airflow's row the new try's id.
			if err := del(tis, []byte(existing.ID)); err != nil {
				return err
			}
		}
		db.noteTI(&t)
		out = &t
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SkipTaskInstances applies fn to the current task instances of the dag run
// that match refs, and stores those fn reports as changed, in one
// transaction. A task instance matched by several refs is passed to fn once.
// A dag run without matching task instances is not an error: there is
// nothing to skip.
func (db *DB) SkipTaskInstances(ctx context.Context, dagID, runID string, refs []workload.TaskRef,
	fn func(ti *workload.TaskInstance) bool) error {
	return db.write(ctx, func(tx *bolt.Tx) error {
		tis, cur, err := buckets(tx, bucketTaskInstances, bucketCurrentTI)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		var ids []string
		for _, ref := range refs {
			if ref.MapIndex != nil {
				if id := cur.Get(currentTIKey(dagID, runID, ref.TaskID, *ref.MapIndex)); id != nil && !seen[string(id)] {
					seen[string(id)] = true
					ids = append(ids, string(id))
				}
				continue
			}
			prefix := tuple(dagID, runID, ref.TaskID)
			c := cur.Cursor()
			for k, id := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, id = c.Next() {
				if !seen[string(id)] {
					seen[string(id)] = true
					ids = append(ids, string(id))
				}
			}
		}
		type change struct {
			ti  *workload.TaskInstance
			enc []byte
		}
		var changes []change
		for _, id := range ids {
			data := tis.Get([]byte(id))
			if data == nil {
				return fmt.Errorf("store: current task instance %s missing: %w", id, ErrCorrupt)
			}
			ti, err := db.decodeTI(tx, id, data)
			if err != nil {
				return err
			}
			if !fn(ti) {
				continue
			}
			enc, err := encodeJSON("task instance "+id, ti)
			if err != nil {
				return err
			}
			changes = append(changes, change{ti, enc})
		}
		for _, ch := range changes {
			if err := put(tis, []byte(ch.ti.ID), ch.enc); err != nil {
				return err
			}
			db.noteTI(ch.ti)
		}
		return nil
	})
}

// DagRun returns the dag run, or an error wrapping workload.ErrNotFound.
func (db *DB) DagRun(ctx context.Context, dagID, runID string) (*workload.DagRun, error) {
	var dr *workload.DagRun
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		dr, err = getDagRun(tx, dagID, runID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if dr == nil {
		return nil, notFound("dag run %s/%s", dagID, runID)
	}
	return dr, nil
}

// getDagRun reads a dag run; nil without error when missing.
func getDagRun(tx *bolt.Tx, dagID, runID string) (*workload.DagRun, error) {
	b := tx.Bucket(bucketDagRuns)
	if b == nil {
		return nil, nil
	}
	data := b.Get(dagRunKey(dagID, runID))
	if data == nil {
		return nil, nil
	}
	return decodeDagRun(dagID, runID, data)
}

// runsBefore walks a dag's time index (dag id ‖ time ‖ run id) backwards,
// from the newest entry strictly before before, calling fn with each run id
// until fn stops it or fails. Keys at exactly "before" are longer than the
// seek key, hence after it, so stepping back from it skips them.
func runsBefore(ctx context.Context, idx *bolt.Bucket, dagID string, before time.Time,
	fn func(runID string) (stop bool, err error)) error {
	prefix := tuple(dagID)
	c := idx.Cursor()
	k, _ := c.Seek(appendTime(tuple(dagID), before))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, _, runID, err := readDagRunTimeKey(k)
		if err != nil {
			return err
		}
		if stop, err := fn(runID); err != nil || stop {
			return err
		}
	}
	return nil
}

// PreviousSuccessfulDagRun returns the dag run of dagID in state "success"
// with the latest logical date strictly before the given one, or an error
// wrapping workload.ErrNotFound. It walks the logical-date index backwards,
// so it reads only the runs between "before" and the answer.
func (db *DB) PreviousSuccessfulDagRun(ctx context.Context, dagID string, before time.Time) (*workload.DagRun, error) {
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
			if dr.State == "success" {
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
		return nil, notFound("successful dag run of %s before %s", dagID, before.UTC().Format(time.RFC3339Nano))
	}
	return found, nil
}

// PutRenderedFields stores a task instance's rendered template fields,
// replacing earlier ones, or fails with workload.ErrNotFound when the task
// instance is unknown. The fields are kept verbatim (empty ones as null).
func (db *DB) PutRenderedFields(ctx context.Context, tiID string, fields json.RawMessage) error {
	if err := checkKey("task instance id", []byte(tiID)); err != nil {
		return err
	}
	value := append([]byte(nil), fields...) // the caller may reuse its buffer
	if len(value) == 0 {
		value = []byte("null") // so that "stored, empty" differs from "never stored"
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		tis, err := bucket(tx, bucketTaskInstances)
		if err != nil {
			return err
		}
		rf, err := bucket(tx, bucketRenderedFields)
		if err != nil {
			return err
		}
		if tis.Get([]byte(tiID)) == nil {
			return notFound("task instance %s", tiID)
		}
		return put(rf, []byte(tiID), value)
	})
}

// TaskInstances lists the current task instances (the latest try at each
// dag, run, task and map index; earlier tries are history) that match f,
// ordered by dag id, run id, task id and map index, with the number of all
// matches before Limit and Offset applied. The result is never nil, so that it
// encodes as an empty JSON list.
func (db *DB) TaskInstances(ctx context.Context, f workload.TaskInstanceFilter) ([]workload.TaskInstance, int, error) {
	out := []workload.TaskInstance{}
	total := 0
	err := db.view(ctx, func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketCurrentTI)
		tis := tx.Bucket(bucketTaskInstances)
		if cur == nil || tis == nil {
			return nil
		}
		var prefix []byte
		switch {
		case f.DagID != "" && f.RunID != "" && f.TaskID != "":
			prefix = tuple(f.DagID, f.RunID, f.TaskID)
		case f.DagID != "" && f.RunID != "":
			prefix = tuple(f.DagID, f.RunID)
		case f.DagID != "":
			prefix = tuple(f.DagID)
		}
		skip := max(f.Offset, 0)
		c := cur.Cursor()
		for k, id := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, id = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if f.RunID != "" && f.DagID == "" {
				_, rest, err := readString(k)
				if err != nil {
					return err
				}
				runID, _, err := readString(rest)
				if err != nil {
					return err
				}
				if runID != f.RunID {
					continue
				}
			}
			data := tis.Get(id)
			if data == nil {
				return fmt.Errorf("store: current task instance %s missing: %w", id, ErrCorrupt)
			}
			ti, err := db.decodeTI(tx, string(id), data)
			if err != nil {
				return err
			}
			if (f.State != "" && ti.State != f.State) || (f.TaskID != "" && ti.TaskID != f.TaskID) ||
				(f.MapIndex != nil && ti.MapIndex != *f.MapIndex) {
				continue
			}
			total++
			if skip > 0 || (f.Limit > 0 && len(out) >= f.Limit) {
				skip = max(skip-1, 0)
				continue
			}
			out = append(out, *ti)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}
