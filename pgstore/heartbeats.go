package pgstore

// Heartbeats are most of the writes: every running task sends one every few
// seconds, and each must be committed before it is acknowledged. One
// transaction per heartbeat costs a commit (a WAL flush) each, so heartbeats
// go to one writer goroutine (hbWriters) that gathers every heartbeat
// waiting when it is free (group commit, as the embedded store does) and
// runs them in one transaction. Each batch runs:
//
//	SELECT id, state, hostname, pid FROM task_instance
//	  WHERE id = ANY($1) ORDER BY id FOR UPDATE
//
// then the given workload.HeartbeatRule per request in Go, against the row
// as that lock sees it, then one
//
//	UPDATE task_instance SET last_heartbeat_at = u.at, updated_at = u.at
//	  FROM unnest($1::uuid[], $2::timestamptz[]) u(id, at) WHERE id = u.id
//
// for the admitted ones, the commit, and only then the answers. The rows
// are locked in id order, so two writers (replicas) never deadlock on each
// other; a serialization failure or deadlock with another writer runs the
// whole batch again (the rules are pure). A refused heartbeat writes
// nothing and gets its rule's error; a failed transaction fails every
// heartbeat of its batch, with an error wrapping workload.ErrUnavailable
// when the database cannot be reached.
//
// An id that task_instance does not hold but task_instance_history does
// (the try ended in up_for_retry, or Airflow cleared it) is judged by its
// rule against the state its try is in (see TryStatus), so that its worker
// hears not_running, as from the embedded store; Airflow itself answers 410
// there.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

// hbMaxBatch caps the heartbeats of one transaction.
const hbMaxBatch = 2048

// hbWriters is how many heartbeat transactions one store runs at once. One:
// `make bench PG=1 REPLICAS=1 PHASES=heartbeat` measured 4 384 heartbeats/s,
// p99 30 ms, with one writer and 3 546/s, p99 43 ms, with four in the same
// session: more, smaller commits cost more than the wait for the one in
// flight saves. Later sessions alternating binaries on the same shared
// 2-CPU machine (README, PostgreSQL mode) kept this writer against every
// variant tried: Airflow's hot path batched (one conditional UPDATE …
// RETURNING per batch, the rule asked beforehand about the holder each
// request names, the rest under row locks) in its own transaction (median
// 0.40× pgbench against 0.42× for this writer), the same with its COMMIT
// apart and the next batch's statement sent while it is in flight, two
// batches at most (0.29–0.40× against 0.42–0.58×), and two such batches
// executing at once (0.31–0.36× against 0.44×). The second batch gathers
// only the few heartbeats that came back since the first (median batch 2–5
// against 16–34 with one writer), and each commit costs its own round trips and WAL
// flush. A lone fdatasync on this disk takes 0.45 ms (pg_test_fsync); the
// p99 follows the CPU the machine's other processes leave to PostgreSQL.
const hbWriters = 1

// hbTimeout bounds one batch's transaction.
const hbTimeout = 30 * time.Second

// errClosed answers heartbeats after Close.
var errClosed = fmt.Errorf("pgstore: closed: %w", workload.ErrUnavailable)

// hbRequest is one heartbeat waiting for the writer.
type hbRequest struct {
	id    string
	req   workload.HeartbeatRequest
	admit workload.HeartbeatRule
	err   error
	at    time.Time // what admit returned, once admitted
	done  chan struct{}
}

var hbPool = sync.Pool{New: func() any { return &hbRequest{done: make(chan struct{}, 1)} }}

// tiState is what the task-instance side keeps per DB: the heartbeat writer
// and the TryStatus cache. Its zero value is ready; the writer starts with
// the first heartbeat.
type tiState struct {
	cache tryCache

	start   sync.Once
	mu      sync.RWMutex // guards closed; sends on queue hold it shared, its close exclusively
	closed  bool
	queue   chan *hbRequest
	writers sync.WaitGroup
	// batches counts the heartbeat transactions run.
	batches atomic.Int64
}

// Heartbeat records r against the try with the given id if admit accepts it
// (see workload.Store), as part of the next group commit: it returns once
// that transaction committed, admit's error unchanged when admit refused,
// and an error wrapping workload.ErrNotFound for an unknown id.
func (db *DB) Heartbeat(ctx context.Context, id string, r workload.HeartbeatRequest, admit workload.HeartbeatRule) error {
	if !validUUID(id) {
		return notFound("task instance %s", id)
	}
	s := &db.ti
	s.start.Do(func() {
		s.queue = make(chan *hbRequest, hbMaxBatch)
		for range hbWriters {
			s.writers.Go(db.heartbeatWriter)
		}
	})
	w := hbPool.Get().(*hbRequest)
	w.id, w.req, w.admit, w.err, w.at = id, r, admit, nil, time.Time{}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		hbPool.Put(w)
		return errClosed
	}
	select {
	case s.queue <- w:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		hbPool.Put(w)
		return ctx.Err()
	}
	// Once queued, the request is answered exactly once: wait for it, so
	// that it goes back to the pool only when the writer is done with it.
	<-w.done
	err := w.err
	hbPool.Put(w)
	return err
}

// heartbeatWriter runs batches until the queue is closed and drained.
func (db *DB) heartbeatWriter() {
	s := &db.ti
	batch := make([]*hbRequest, 0, hbMaxBatch)
	for {
		w, ok := <-s.queue
		if !ok {
			return
		}
		batch = append(batch[:0], w)
	gather:
		for len(batch) < hbMaxBatch {
			select {
			case w, ok := <-s.queue:
				if !ok {
					break gather
				}
				batch = append(batch, w)
			default:
				break gather
			}
		}
		db.runHeartbeats(batch)
		for _, w := range batch {
			w.done <- struct{}{}
		}
	}
}

// runHeartbeats runs one batch in one transaction and sets each request's
// outcome.
func (db *DB) runHeartbeats(batch []*hbRequest) {
	db.ti.batches.Add(1)
	if obs := db.obs.Load(); obs != nil {
		start := time.Now()
		defer func() { (*obs).ObserveHeartbeatBatch(len(batch), time.Since(start)) }()
	}
	ids := make([]string, 0, len(batch))
	for _, w := range batch {
		ids = append(ids, w.id)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	ctx, cancel := context.WithTimeout(context.Background(), hbTimeout)
	defer cancel()
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		holders := make(map[string]workload.Holder, len(ids))
		rows, err := tx.Query(ctx, `SELECT id::text, state, hostname, pid FROM task_instance
			WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`, ids)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var state, hostname *string
			var pid *int32
			if err := rows.Scan(&id, &state, &hostname, &pid); err != nil {
				rows.Close()
				return err
			}
			holders[id] = workload.Holder{State: workload.State(deref(state)), Hostname: deref(hostname), PID: deref32(pid)}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		latest := make(map[string]time.Time, len(ids))
		for _, w := range batch {
			w.err, w.at = nil, time.Time{}
			h, ok := holders[w.id]
			if !ok {
				if h, ok, err = archivedHolder(ctx, tx, w.id); err != nil {
					return err
				}
				if !ok {
					w.err = notFound("task instance %s", w.id)
					continue
				}
				// An archived try is judged but never written.
				if _, w.err = w.admit(h, w.req); w.err == nil {
					w.err = fmt.Errorf("pgstore: heartbeat of earlier try %s admitted: %w", w.id, workload.ErrInvalidState)
				}
				continue
			}
			at, err := w.admit(h, w.req)
			if err != nil {
				w.err = err
				continue
			}
			w.at = at.UTC()
			if prev, ok := latest[w.id]; !ok || w.at.After(prev) {
				latest[w.id] = w.at
			}
		}
		if len(latest) == 0 {
			return nil
		}
		upIDs := make([]string, 0, len(latest))
		upAt := make([]time.Time, 0, len(latest))
		for id, at := range latest {
			upIDs = append(upIDs, id)
			upAt = append(upAt, at)
		}
		_, err = tx.Exec(ctx, `UPDATE task_instance ti SET last_heartbeat_at = u.at, updated_at = u.at
			FROM unnest($1::uuid[], $2::timestamptz[]) u(id, at) WHERE ti.id = u.id`, upIDs, upAt)
		return err
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", workload.ErrUnavailable, err)
		}
		err = fmt.Errorf("pgstore: heartbeat: %w", err)
		for _, w := range batch {
			w.err = err
		}
	}
}

// archivedHolder is the Holder of a try only task_instance_history knows:
// its state is the one TryStatus gives it, the worker the history row's.
func archivedHolder(ctx context.Context, tx pgx.Tx, id string) (workload.Holder, bool, error) {
	var state, curState, hostname *string
	var pid *int32
	err := tx.QueryRow(ctx, `SELECT h.state, cur.state, h.hostname, h.pid FROM task_instance_history h
		LEFT JOIN task_instance cur ON cur.dag_id = h.dag_id AND cur.run_id = h.run_id AND cur.task_id = h.task_id
			AND cur.map_index = h.map_index AND cur.try_number = h.try_number
		WHERE h.task_instance_id = $1::uuid`, id).Scan(&state, &curState, &hostname, &pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return workload.Holder{}, false, nil
	}
	if err != nil {
		return workload.Holder{}, false, err
	}
	if curState != nil {
		state = curState
	}
	return workload.Holder{State: workload.State(deref(state)), Hostname: deref(hostname), PID: deref32(pid)}, true, nil
}

// close stops the heartbeat writers: heartbeats queued before are still
// run and answered, later ones fail with an error wrapping
// workload.ErrUnavailable. It waits for the writers to exit.
func (s *tiState) close() {
	s.start.Do(func() {}) // a writer never started stays so
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	if s.queue != nil {
		close(s.queue)
	}
	s.mu.Unlock()
	s.writers.Wait()
}
