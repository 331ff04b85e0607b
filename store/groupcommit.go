package store

// The group-commit writer. Every write of the store is a request queued to a
// single goroutine (writeLoop), which runs every request waiting at that
// moment in one bbolt write transaction: a storm of thousands of writes a
// second costs a few hundred fsyncs, not thousands. A heartbeat is a request
// of its own kind (heartbeats.go), whose record goes to the heartbeat log
// (heartbeatlog.go) while the transaction commits.
//
// Why it is safe:
//
//   - A request is answered (its done channel closed) only after the
//     transaction that carried it committed, bbolt having synced the data
//     and then the meta page, and after the heartbeat records of its batch
//     were written to the log and synced. When a caller sees nil, its write
//     is on disk; a batch of heartbeats alone only syncs the log (it checks
//     them in a read transaction).
//   - A refusal (any error a txFunc returns before its first Put) wrote
//     nothing, so the other requests of the batch still commit. A request
//     that fails after a Put (abortError) or panics rolls the transaction
//     back: it is answered on its own, the writer forgets its in-memory view
//     of running tries (which may hold what the abandoned transaction saw),
//     and the batch is run again without it.
//   - A failed commit fails every request of the batch; a failed log write
//     after a commit fails only the heartbeats. Either way the caller does
//     not know whether its write reached the disk, as after any failed
//     fsync.
//   - The context is honoured only before submission, and Close lets the
//     writer drain the queue before it exits: every submitted request is
//     answered exactly once.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxBatch caps the writes in one transaction so that one commit's dirty
// pages, and the latency of the writes at its end, stay bounded.
const maxBatch = 1000

// request is one write waiting for the writer goroutine: a transaction
// function or a heartbeat.
type request struct {
	op       txFunc
	hb       *hbWrite
	err      error // the outcome, set by the writer before done is closed
	panicVal any   // a panic raised by op, re-raised in the caller
	done     chan struct{}
}

// txFunc is one write run inside a transaction shared with other writes. It
// must do every check (and call every caller-supplied function) before its
// first Put or Delete, and return the error of a refused write without
// having written anything: the other writes of the transaction still commit.
// Errors of Put and Delete themselves are wrapped in abortError (see put and
// del), which rolls the shared transaction back and retries the others
// without this one.
type txFunc func(tx *bolt.Tx) error

// abortError marks a failure after a write may have been made: the shared
// transaction can no longer be committed as it is.
type abortError struct{ err error }

func (e *abortError) Error() string { return e.err.Error() }
func (e *abortError) Unwrap() error { return e.err }

// signal wakes the writer without blocking: one pending wake-up is enough,
// since the writer drains the whole queue each time it wakes.
func (db *DB) signal() {
	select {
	case db.wake <- struct{}{}:
	default:
	}
}

// write submits op to the writer and waits for its commit. The context is
// honoured only before submission: once queued, the write may commit at any
// moment, and returning early would leave the caller unsure whether it did.
func (db *DB) write(ctx context.Context, op txFunc) error {
	return db.submit(ctx, &request{op: op})
}

// submit queues r for the writer and waits for its outcome (see write).
func (db *DB) submit(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.readOnly {
		return ErrReadOnly
	}
	r.done = make(chan struct{})
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return ErrClosed
	}
	db.queue = append(db.queue, r)
	db.mu.Unlock()
	db.signal()
	<-r.done
	if r.panicVal != nil {
		panic(r.panicVal)
	}
	return r.err
}

func (db *DB) queued() int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return len(db.queue)
}

// writeLoop is the single writer goroutine. It exits once Close was called
// and the queue is empty, so every submitted write is answered.
func (db *DB) writeLoop() {
	defer close(db.writerDone)
	batch := make([]*request, 0, maxBatch)
	for {
		db.mu.Lock()
		n, closed := len(db.queue), db.closed
		db.mu.Unlock()
		if n == 0 {
			if closed {
				return
			}
			<-db.wake
			continue
		}
		db.gather(n)
		batch = db.take(batch[:0])
		db.commit(batch)
		clear(batch)
		db.maybeCheckpoint()
	}
}

// gather lets more writes join the queue before it is drained. With one or
// two scheduler threads, the goroutines that are about to submit a write are
// runnable but not running while the writer works; draining at once would
// commit a handful of writes per transaction and collapse to about one write
// per fsync at high concurrency (measured: 2–4 writes per commit with 1024
// writers on one thread). Yielding until the queue stops growing lets them
// all enqueue first, and costs a lone write a single yield. A positive
// BatchDelay bounds the gathering in time; without one it is bounded by
// maxBatch. Real time is used, not the injected clock, because this is about
// scheduling, not stored data.
func (db *DB) gather(n int) {
	var deadline time.Time
	if db.delay > 0 {
		deadline = time.Now().Add(db.delay)
	}
	for n < maxBatch {
		runtime.Gosched()
		m := db.queued()
		if m == n || (db.delay > 0 && !time.Now().Before(deadline)) {
			return
		}
		n = m
	}
}

// take moves up to maxBatch queued requests into batch.
func (db *DB) take(batch []*request) []*request {
	db.mu.Lock()
	defer db.mu.Unlock()
	k := min(len(db.queue), maxBatch)
	batch = append(batch, db.queue[:k]...)
	rest := copy(db.queue, db.queue[k:])
	clear(db.queue[rest:])
	db.queue = db.queue[:rest]
	return batch
}

// commit runs batch in one transaction. A request that aborts (a failed Put,
// or a panic) is answered on its own and the transaction is retried without
// it; a refusal (any other error from a txFunc) wrote nothing and does not
// disturb the others. The admitted heartbeats of the batch are written to
// the heartbeat log while the transaction commits; a batch of heartbeats
// alone needs only a read transaction to check them.
func (db *DB) commit(batch []*request) {
	for len(batch) > 0 {
		failed := -1
		db.hblog.buf = db.hblog.buf[:0]
		run := func(tx *bolt.Tx) error {
			for i, r := range batch {
				p, out := db.runRequest(r, tx)
				var ae *abortError
				switch {
				case p != nil:
					r.panicVal = p
				case errors.As(out, &ae):
					r.err = fmt.Errorf("store: write: %w", ae.err)
				default:
					r.err = out
					continue
				}
				failed = i
				return errAborted
			}
			return nil
		}
		var err, logErr error
		start := time.Now()
		if heartbeatsOnly(batch) {
			if err = db.bolt.View(run); err == nil && failed < 0 {
				logErr = db.writeHeartbeatLog()
			}
		} else {
			err, logErr = db.update(run)
			db.bumpNoted()
		}
		if failed >= 0 {
			db.forgetHot()
			close(batch[failed].done)
			batch = append(batch[:failed], batch[failed+1:]...)
			continue
		}
		if err != nil {
			db.forgetHot()
			err = fmt.Errorf("store: commit: %w", err)
		} else {
			if logErr != nil {
				for _, r := range batch {
					if r.hb != nil && r.err == nil {
						r.err = logErr
					}
				}
			} else {
				db.times.record(batch)
			}
			db.commits.Add(1)
			db.writes.Add(uint64(len(batch)))
			if obs := db.observer(); obs != nil {
				obs.ObserveCommit(len(batch), time.Since(start))
			}
		}
		for _, r := range batch {
			if err != nil {
				r.err = err
			}
			close(r.done)
		}
		return
	}
}

// update runs fn in a write transaction and commits it. The heartbeat
// records fn admitted are written and synced meanwhile: the log and the
// database are separate files, so a batch of both waits for the slower sync
// instead of the sum. If the commit fails after the log was written, those
// heartbeats are reported failed but may be replayed at the next Open: the
// outcome of a failed write is unknown to its caller either way.
func (db *DB) update(fn func(*bolt.Tx) error) (err, logErr error) {
	tx, err := db.bolt.Begin(true)
	if err != nil {
		return err, nil
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err, nil
	}
	logDone := make(chan error, 1)
	go func() { logDone <- db.writeHeartbeatLog() }()
	err = tx.Commit()
	committed = err == nil
	return err, <-logDone
}

// writeHeartbeatLog writes the batch's heartbeat records, if any.
func (db *DB) writeHeartbeatLog() error {
	if len(db.hblog.buf) == 0 {
		return nil
	}
	return db.hblog.write()
}

// heartbeatsOnly reports whether batch holds nothing but heartbeats.
func heartbeatsOnly(batch []*request) bool {
	for _, r := range batch {
		if r.hb == nil {
			return false
		}
	}
	return true
}

// runRequest runs one request of a batch; see runOp.
func (db *DB) runRequest(r *request, tx *bolt.Tx) (panicVal any, err error) {
	if r.hb != nil {
		return nil, db.applyHeartbeat(tx, r.hb)
	}
	return runOp(r.op, tx)
}

var errAborted = errors.New("store: transaction aborted")

// runOp calls op, turning a panic (from a caller-supplied function) into a
// value the caller's goroutine re-raises, so the writer survives it.
func runOp(op txFunc, tx *bolt.Tx) (panicVal any, err error) {
	defer func() {
		if p := recover(); p != nil {
			panicVal = p
		}
	}()
	return nil, op(tx)
}
