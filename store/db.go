// Package store keeps taskgate's state in one bbolt file and implements the
// storage interfaces the workload package declares (workload.Store,
// workload.Variables, workload.Connections, workload.XComs).
//
// Every write is durable before its method returns, because a worker acts on
// the answer: it starts a task after a 200 to /run and keeps running it after
// a 204 to a heartbeat. Durability costs an fsync per commit, so writes do not
// commit one by one: they are queued to a single writer goroutine that runs
// every write waiting at that moment in one transaction (group commit). A
// heartbeat storm of thousands of calls per second therefore costs a few
// hundred fsyncs, not thousands.
//
// Functions passed to write methods (UpdateTaskInstance's fn, an admit
// rule, a skip rule) run on the writer goroutine inside the shared
// transaction. They must be quick and must not call the DB: a write from
// inside one would wait for itself. A panic in one is re-raised in the
// caller's goroutine; the other writes of the transaction still commit.
//
// Nothing outside this package knows about bbolt: buckets, key layout and
// record encoding are private, and records that cannot be decoded surface as
// errors wrapping ErrCorrupt rather than panics.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/taskgate/taskgate/workload"
)

// Errors returned by the store, matched with errors.Is. Lookups of missing
// records return workload.ErrNotFound, and refused inserts
// workload.ErrAlreadyExists, so that callers only know the domain errors.
var (
	// ErrLocked means another process (or another open handle in this one)
	// holds the database file: bbolt allows one writer per file, and waiting
	// forever for it would hang a second gateway or CLI silently.
	ErrLocked = errors.New("store: database is in use by another process")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("store: database is closed")
	// ErrReadOnly is returned by writes to a database opened with
	// Options.ReadOnly.
	ErrReadOnly = errors.New("store: database is read-only")
	// ErrCorrupt wraps every failure to decode a stored record or key: a
	// damaged file must give an error the operator can act on, never a
	// panic or a silently wrong answer.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrInvalidKey is returned for an identifier that cannot be stored: an
	// empty key or one longer than bbolt allows. Checking before the write
	// keeps such a request from failing the shared transaction of others.
	ErrInvalidKey = errors.New("store: invalid key")
)

// DefaultBatchDelay is the batch delay the gateway uses: long enough for a
// burst of concurrent writes to share one fsync, short enough that a lone
// write barely notices it.
const DefaultBatchDelay = time.Millisecond

// defaultOpenTimeout bounds the wait for the file lock when Options leaves it
// zero; bbolt itself would wait forever on zero.
const defaultOpenTimeout = time.Second

// maxBatch caps the writes in one transaction so that one commit's dirty
// pages, and the latency of the writes at its end, stay bounded.
const maxBatch = 1000

// Options configures Open.
type Options struct {
	// BatchDelay is the longest a write waits for other writes to join its
	// commit. The writer never sleeps on a timer: it yields the processor
	// while writes keep arriving and commits as soon as a yield brought no
	// new one, so a lone write is committed at once and BatchDelay only
	// caps the wait during a storm. Zero (or negative) removes the time
	// cap: the writer still yields while the queue grows, up to the batch
	// size limit (1000 writes), because committing without yielding
	// collapses to one or two writes per fsync under load. The gateway
	// uses DefaultBatchDelay.
	BatchDelay time.Duration
	// OpenTimeout is how long Open waits for the file lock before failing
	// with ErrLocked. Zero means one second; it is never unbounded, so a
	// second process fails instead of hanging.
	OpenTimeout time.Duration
	// Now is the clock used for stored timestamps (XCom timestamps); nil
	// means time.Now. Tests inject a fixed clock.
	Now func() time.Time
	// ReadOnly opens the file with a shared lock for reading (for CLI
	// inspection while no server runs). Writes then fail with ErrReadOnly.
	// The file must already exist.
	ReadOnly bool
	// Secrets encrypts connection passwords and extras before they are
	// stored and decrypts them when read (see Cipher). Nil stores them as
	// given, which only tests and callers predating encryption want; a
	// record encrypted earlier then fails to read with ErrDecrypt.
	Secrets Cipher

	// checkpointBytes overrides defaultCheckpointBytes (tests).
	checkpointBytes int64
}

// Stats counts the work of the group-commit writer, so that its
// effectiveness (writes per commit) can be observed and tested.
type Stats struct {
	// Commits is the number of write transactions committed.
	Commits uint64
	// Writes is the number of write calls those commits carried, including
	// calls that a rule refused and that therefore wrote nothing.
	Writes uint64
	// Checkpoints is the number of heartbeat log checkpoints completed
	// (see Heartbeat).
	Checkpoints uint64
}

// DB is taskgate's database: one bbolt file plus the goroutine that groups
// concurrent writes into shared commits. It is safe for concurrent use.
type DB struct {
	bolt     *bolt.DB
	now      func() time.Time
	delay    time.Duration
	readOnly bool
	secrets  Cipher

	mu     sync.Mutex
	queue  []*request
	closed bool

	wake       chan struct{} // capacity 1: "the queue may have work"
	writerDone chan struct{}
	closeOnce  sync.Once
	isClosed   atomic.Bool

	// Owned by the writer goroutine (see heartbeats.go): the running task
	// instances' state, the heartbeat log's file being written and the
	// other one, and the checkpoint running on it (nil when none).
	hot map[string]workload.Holder
	// live holds the ids of the running tries in hot, for readers on
	// other goroutines (TryStatus).
	live  sync.Map
	hblog *heartbeatLog
	spare *heartbeatLog
	ckpt  chan error
	times heartbeatTimes

	commits     atomic.Uint64
	writes      atomic.Uint64
	checkpoints atomic.Uint64
}

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

// Open opens (creating if needed) the database at path. The parent directory
// is created with mode 0700 when missing and the file with mode 0600: it holds
// connection passwords. If another process holds the file, Open fails with an
// error wrapping ErrLocked after opts.OpenTimeout.
func Open(path string, opts Options) (*DB, error) {
	timeout := opts.OpenTimeout
	if timeout <= 0 {
		timeout = defaultOpenTimeout
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("store: create directory: %w", err)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  timeout,
		ReadOnly: opts.ReadOnly,
		// The hashmap freelist is faster than the array one for a
		// write-heavy file. The freelist is persisted: without it every
		// open rebuilds it by reading every page of the file, which costs
		// start-up time and keeps the whole file resident (measured: 132 MB
		// of a 135 MB file mapped right after opening 100 000 task
		// instances).
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%w (%s)", ErrLocked, path)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := initSchema(bdb, opts.ReadOnly); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	db := &DB{
		bolt:       bdb,
		now:        now,
		delay:      max(opts.BatchDelay, 0),
		readOnly:   opts.ReadOnly,
		secrets:    opts.Secrets,
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		hot:        map[string]workload.Holder{},
		times:      heartbeatTimes{cur: map[string]time.Time{}},
	}
	checkpointAt := opts.checkpointBytes
	if checkpointAt <= 0 {
		checkpointAt = defaultCheckpointBytes
	}
	if err := db.openHeartbeatLog(path, checkpointAt); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	if opts.ReadOnly {
		close(db.writerDone)
	} else {
		go db.writeLoop()
	}
	return db, nil
}

// Close waits for every write already submitted to commit, stops the writer
// goroutine and closes the file. Calls made afterwards fail with ErrClosed;
// closing twice is harmless.
func (db *DB) Close() error {
	var err error
	db.closeOnce.Do(func() {
		db.mu.Lock()
		db.closed = true
		db.mu.Unlock()
		db.isClosed.Store(true)
		db.signal()
		<-db.writerDone
		if db.hblog != nil {
			err = db.checkpointAll()
			for _, l := range []*heartbeatLog{db.hblog, db.spare} {
				if cerr := l.f.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("store: close heartbeat log: %w", cerr)
				}
			}
		}
		if cerr := db.bolt.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("store: close: %w", cerr)
		}
	})
	return err
}

// Stats reports the writer's counters since Open.
func (db *DB) Stats() Stats {
	return Stats{Commits: db.commits.Load(), Writes: db.writes.Load(), Checkpoints: db.checkpoints.Load()}
}

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

// view runs a read-only transaction, after checking ctx and that the
// database is open.
func (db *DB) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.isClosed.Load() {
		return ErrClosed
	}
	err := db.bolt.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
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
		if heartbeatsOnly(batch) {
			if err = db.bolt.View(run); err == nil && failed < 0 {
				logErr = db.writeHeartbeatLog()
			}
		} else {
			err, logErr = db.update(run)
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
