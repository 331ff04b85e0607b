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
	"hash/maphash"
	"os"
	"path/filepath"
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

// defaultOpenTimeout bounds the wait for the file lock when Options leaves it
// zero; bbolt itself would wait forever on zero.
const defaultOpenTimeout = time.Second

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
	// uses [taskgate] batch_delay, 1 ms by default: long enough for a burst
	// of concurrent writes to share one fsync, short enough that a lone
	// write barely notices it.
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

// Observer is told of the group-commit writer's work. It is called on the
// writer's goroutine: it must be cheap and must not write to the store.
type Observer interface {
	// ObserveCommit: a transaction carrying writes requests committed
	// (or, for heartbeats alone, the heartbeat log synced) in took.
	ObserveCommit(writes int, took time.Duration)
	// ObserveCheckpoint: a heartbeat log checkpoint ended, ok or failed.
	ObserveCheckpoint(ok bool)
}

// SetObserver makes the writer tell o of each commit and checkpoint from
// now on (metrics).
func (db *DB) SetObserver(o Observer) { db.obs.Store(&o) }

// observer returns the observer SetObserver set, or nil.
func (db *DB) observer() Observer {
	if o := db.obs.Load(); o != nil {
		return *o
	}
	return nil
}

// DB is taskgate's database: one bbolt file plus the goroutine that groups
// concurrent writes into shared commits. It is safe for concurrent use.
type DB struct {
	bolt     *bolt.DB
	now      func() time.Time
	delay    time.Duration
	readOnly bool
	secrets  Cipher
	// obs is told of the writer's work (SetObserver); nil: nobody.
	obs atomic.Pointer[Observer]

	mu     sync.Mutex
	queue  []*request
	closed bool

	wake       chan struct{} // capacity 1: "the queue may have work"
	writerDone chan struct{}
	closeOnce  sync.Once
	isClosed   atomic.Bool

	// Owned by the writer goroutine (heartbeats.go, heartbeatlog.go): the
	// Holder of running task instances, the heartbeat log's file being
	// written and the other one, and the checkpoint running on it (nil when
	// none).
	hot map[string]workload.Holder
	// live holds the ids of the running tries in hot, for readers on
	// other goroutines (TryStatus).
	live sync.Map
	// epochs tell readers when TryStatus may have changed (TryEpoch).
	epochs tryEpochs
	hblog  *heartbeatLog
	spare  *heartbeatLog
	ckpt   chan error
	times  heartbeatTimes

	commits     atomic.Uint64
	writes      atomic.Uint64
	checkpoints atomic.Uint64
}

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
		epochs:     tryEpochs{seed: maphash.MakeSeed()},
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

// viewRecord reads the record under key in bucket and decodes it, in one
// read transaction; found is false when there is none.
func viewRecord[T any](db *DB, ctx context.Context, bucket []byte, key string,
	decode func(data []byte) (T, error)) (v T, found bool, err error) {
	err = db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		data := b.Get([]byte(key))
		if data == nil {
			return nil
		}
		v, err = decode(data)
		found = err == nil
		return err
	})
	return v, found, err
}
