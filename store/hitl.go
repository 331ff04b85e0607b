package store

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

// getHITL reads the Human-in-the-loop detail of a task instance; nil
// without error when it has none.
func getHITL(tx *bolt.Tx, tiID string) (*workload.HITLDetail, error) {
	b := tx.Bucket(bucketHITL)
	if b == nil {
		return nil, nil
	}
	data := b.Get([]byte(tiID))
	if data == nil {
		return nil, nil
	}
	h := new(workload.HITLDetail)
	if err := decodeJSON("hitl detail "+tiID, data, h); err != nil {
		return nil, err
	}
	return h, nil
}

// HITLDetail returns the Human-in-the-loop detail of a task instance, or
// workload.ErrHITLNotFound.
func (db *DB) HITLDetail(ctx context.Context, tiID string) (*workload.HITLDetail, error) {
	var h *workload.HITLDetail
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		h, err = getHITL(tx, tiID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, workload.ErrHITLNotFound
	}
	return h, nil
}

// UpdateHITLDetail applies fn to the task instance's detail in one write
// (see workload.HITL).
func (db *DB) UpdateHITLDetail(ctx context.Context, tiID string,
	fn func(h *workload.HITLDetail) (*workload.HITLDetail, bool, error)) (*workload.HITLDetail, error) {
	if err := checkKey("task instance id", []byte(tiID)); err != nil {
		return nil, err
	}
	var out *workload.HITLDetail
	err := db.write(ctx, func(tx *bolt.Tx) error {
		out = nil
		tis, hb, err := buckets(tx, bucketTaskInstances, bucketHITL)
		if err != nil {
			return err
		}
		if tis.Get([]byte(tiID)) == nil {
			return notFound("task instance %s", tiID)
		}
		cur, err := getHITL(tx, tiID)
		if err != nil {
			return err
		}
		next, changed, err := fn(cur)
		if err != nil {
			return err
		}
		out = next
		if !changed {
			return nil
		}
		enc, err := encodeJSON("hitl detail "+tiID, next)
		if err != nil {
			return err
		}
		return put(hb, []byte(tiID), enc)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateTaskInstanceHITL is UpdateTaskInstance whose fn also sees the task
// instance's Human-in-the-loop detail, read in the same transaction.
func (db *DB) UpdateTaskInstanceHITL(ctx context.Context, id string,
	fn func(ti *workload.TaskInstance, h *workload.HITLDetail) error) (*workload.TaskInstance, error) {
	return db.updateTI(ctx, id, true, fn)
}
