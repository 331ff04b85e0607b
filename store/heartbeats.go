package store

// Heartbeats are most of the writes a gateway takes: every running task sends
// one every few seconds, and each must be durable before it is acknowledged.
// Storing one by rewriting the task instance's record costs a JSON decode and
// encode, a dirty B+tree page per heartbeat and bbolt's two fsyncs per commit,
// for a change of one timestamp. So a heartbeat is a request of its own on
// the group-commit writer (groupcommit.go), and its time goes to the
// heartbeat log (heartbeatlog.go), not to the record.
//
// The store does not decide whether a heartbeat counts: the caller hands
// Heartbeat the rule (workload.AdmitHeartbeat), and the writer applies it to
// the try's workload.Holder in order with the other writes of its batch. The
// writer keeps the Holder of running tries in memory (hot), so that judging a
// heartbeat of one reads no record; on a miss it decodes the record.
//
// A task instance read anywhere in the store carries the newest of its
// record's last_heartbeat_at, the heartbeats bucket's time and the times
// logged since the last checkpoint (withHeartbeat).

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

// hotLimit bounds the running task instances whose Holder the writer keeps
// for judging heartbeats; beyond it a heartbeat decodes the record.
const hotLimit = 1 << 16

// Heartbeat records the heartbeat r against the task instance with the
// given id if admit accepts it (see workload.Store): admit's error is
// returned unchanged, and an error wrapping workload.ErrNotFound for an
// unknown id. When it returns nil the time admit returned is on disk.
func (db *DB) Heartbeat(ctx context.Context, id string, r workload.HeartbeatRequest, admit workload.HeartbeatRule) error {
	// A key bbolt accepts (at most 32 KiB) fits the record's 2-byte length.
	if err := checkKey("task instance id", []byte(id)); err != nil {
		return err
	}
	return db.submit(ctx, &request{hb: &hbWrite{id: id, req: r, admit: admit}})
}

// hbWrite is a heartbeat waiting for the writer.
type hbWrite struct {
	id       string
	req      workload.HeartbeatRequest
	admit    workload.HeartbeatRule
	recorded time.Time // the time admit returned, once admitted
}

// applyHeartbeat judges w with its rule against the task instance as the
// batch's transaction sees it, and appends its log record. It runs on the
// writer: a running task instance's Holder is in hot, any other is decoded.
func (db *DB) applyHeartbeat(tx *bolt.Tx, w *hbWrite) error {
	h, ok := db.hot[w.id]
	if !ok {
		ti, err := db.getTI(tx, w.id)
		if err != nil {
			return err
		}
		if ti == nil {
			return notFound("task instance %s", w.id)
		}
		h = workload.HolderOf(ti)
		if h.State == workload.StateRunning && len(db.hot) < hotLimit {
			db.hot[w.id] = h
			db.live.Store(w.id, struct{}{})
		}
	}
	at, err := w.admit(h, w.req)
	if err != nil {
		return err
	}
	w.recorded = at
	db.hblog.buf = appendHeartbeatRecord(db.hblog.buf, db.hblog.gen, w.id, at)
	return nil
}

// noteTI keeps the writer's view of a task instance it just stored, and the
// set of running tries TryStatus answers from. It runs on the writer, inside
// the transaction; commit forgets both when a transaction does not commit.
// A try leaves the set before its new state commits and joins it just before
// its running state commits: a reader that misses it reads the record.
func (db *DB) noteTI(ti *workload.TaskInstance) {
	db.epochs.noted = append(db.epochs.noted, ti.ID)
	if ti.State != workload.StateRunning {
		delete(db.hot, ti.ID)
		db.live.Delete(ti.ID)
		return
	}
	if _, ok := db.hot[ti.ID]; ok || len(db.hot) < hotLimit {
		db.hot[ti.ID] = workload.HolderOf(ti)
		db.live.Store(ti.ID, struct{}{})
	}
}

// forgetHot drops the writer's view of task instances after a transaction
// that did not commit: it may hold what that transaction saw. Every try's
// epoch moves, as TryStatus no longer answers from that view.
func (db *DB) forgetHot() {
	clear(db.hot)
	db.live.Clear()
	for i := range db.epochs.stripes {
		db.epochs.stripes[i].Add(1)
	}
}

// lastHeartbeat is the newest heartbeat time of a task instance not yet in
// its record: logged or checkpointed.
func (db *DB) lastHeartbeat(tx *bolt.Tx, id string) (time.Time, bool) {
	at, ok := db.times.get(id)
	if b := tx.Bucket(bucketHeartbeats); b != nil {
		if v := b.Get([]byte(id)); v != nil {
			if t, _, err := readTime(v); err == nil && (!ok || t.After(at)) {
				at, ok = t, true
			}
		}
	}
	return at, ok
}

// withHeartbeat gives ti the newest heartbeat known for it.
func (db *DB) withHeartbeat(tx *bolt.Tx, ti *workload.TaskInstance) {
	at, ok := db.lastHeartbeat(tx, ti.ID)
	if !ok {
		return
	}
	if ti.LastHeartbeatAt == nil || at.After(*ti.LastHeartbeatAt) {
		ti.LastHeartbeatAt = &at
	}
	if at.After(ti.UpdatedAt) {
		ti.UpdatedAt = at
	}
}
