package pgstore

// Heartbeats are most of the writes: every running task sends one every few
// seconds, and each must be committed before it is acknowledged. One
// transaction per heartbeat costs a commit (a WAL flush) each, so heartbeats
// go to one writer goroutine (hbWriters) that gathers every heartbeat
// waiting when it is free (group commit, as the embedded store does) and
// runs them together, in two steps:
//
//  1. hbUpdateAsNamed, one statement in its own implicit transaction: the
//     heartbeats whose row is running on the host and pid their request
//     names, which is every heartbeat of a task that runs where it says
//     it does. One round trip, committed before PostgreSQL answers.
//  2. For the rest, if any (another worker holds the try, it is no longer
//     running, it is archived or unknown), one transaction that locks their
//     rows (SELECT … ORDER BY id FOR UPDATE), judges each request by its
//     workload.HeartbeatRule in Go against the row as that lock sees it,
//     writes the admitted ones and commits.
//
// Only then are the answers given. Both steps lock rows in id order (the
// UPDATE as its plan walks the sorted ids by primary key), so two writers
// (replicas) do not deadlock on each other; a serialization failure or a
// deadlock with another writer, should one occur, runs the step again (the
// rules are pure).
// A refused heartbeat writes nothing and gets its rule's error; a failed
// step fails every heartbeat it had not settled, with an error wrapping
// workload.ErrUnavailable when the database cannot be reached.
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
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

// hbMaxBatch caps the heartbeats of one transaction.
const hbMaxBatch = 2048

// hbWriters is how many heartbeat batches one store runs at once. One:
// more, smaller commits cost more than the wait for the one in flight
// saves. `make bench PG=1 REPLICAS=1 PHASES=heartbeat` measured 9 318 and
// 10 239 heartbeats/s with one writer (0.84× and 1.32× pgbench in the same
// runs), 7 764 and 5 903/s with two (0.77×, 0.82×; batches of 13 against
// 28). Earlier sessions measured the locked transaction alone at 0.42–0.73×
// pgbench, and a conditional UPDATE at 0.40×: its `state = 'running'` let
// the planner read every running row through ti_state for each batch; the
// coalesce in hbUpdateAsNamed leaves it the primary key only.
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
	id = strings.ToLower(id) // as PostgreSQL writes a uuid, which the batch's answers are matched by
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

// runHeartbeats runs one batch and sets each request's outcome: first the
// heartbeats that find the row as their request names it, in one statement
// (heartbeatsAsNamed), then the others under row locks
// (heartbeatsLocked).
func (db *DB) runHeartbeats(batch []*hbRequest) {
	db.ti.batches.Add(1)
	if obs := db.obs.Load(); obs != nil {
		start := time.Now()
		defer func() { (*obs).ObserveHeartbeatBatch(len(batch), time.Since(start)) }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), hbTimeout)
	defer cancel()
	rest, err := db.heartbeatsAsNamed(ctx, batch)
	if err == nil && len(rest) > 0 {
		err = db.heartbeatsLocked(ctx, rest)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %w", workload.ErrUnavailable, err)
		}
		err = fmt.Errorf("pgstore: heartbeat: %w", err)
		for _, w := range rest {
			w.err = err
		}
	}
}

// hbNamed is a (task instance, host, pid) that heartbeats of a batch name
// and their rule admits as holder.
type hbNamed struct {
	id, host string
	pid      int
}

// heartbeatsAsNamed records, in one UPDATE outside any explicit
// transaction (its implicit transaction commits before PostgreSQL answers
// the Sync that ends it), every heartbeat whose rule admits the holder its
// request names, running on that host with that pid, and whose row still
// holds exactly that: such a row makes the rule decide as it did, since a
// Holder is those three values and the rule is pure. The UPDATE takes the
// same row locks the locked read would and re-checks its condition on the
// latest row version, so a concurrent /run, state change or Airflow's
// scheduler cannot slip between check and write. One round trip, no lock
// records in the WAL: it is what every running task's heartbeat takes.
// The requests it does not settle (another holder, an archived try, an
// unknown id, a value PostgreSQL cannot compare) are returned, their error
// and time unset.
func (db *DB) heartbeatsAsNamed(ctx context.Context, batch []*hbRequest) ([]*hbRequest, error) {
	var rest []*hbRequest
	latest := make(map[hbNamed]time.Time, len(batch))
	for _, w := range batch {
		w.err, w.at = nil, time.Time{}
		if !hbComparable(w.req) {
			rest = append(rest, w)
			continue
		}
		at, err := w.admit(workload.Holder{State: workload.StateRunning, Hostname: w.req.Hostname, PID: w.req.PID}, w.req)
		if err != nil {
			rest = append(rest, w)
			continue
		}
		w.at = at.UTC()
		k := hbNamed{w.id, w.req.Hostname, w.req.PID}
		if prev, ok := latest[k]; !ok || w.at.After(prev) {
			latest[k] = w.at
		}
	}
	if len(latest) == 0 {
		return rest, nil
	}
	keys := make([]hbNamed, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	// In id order, as the locked read takes them, so that two replicas'
	// batches lock their common rows in one order.
	slices.SortFunc(keys, func(a, b hbNamed) int { return strings.Compare(a.id, b.id) })
	ids := make([]string, len(keys))
	hosts := make([]string, len(keys))
	pids := make([]int64, len(keys))
	ats := make([]time.Time, len(keys))
	for i, k := range keys {
		ids[i], hosts[i], pids[i], ats[i] = k.id, k.host, int64(k.pid), latest[k]
	}
	written := make(map[hbNamed]bool, len(keys))
	err := db.retrying(ctx, func() error {
		clear(written)
		rows, err := db.pool.Query(ctx, hbUpdateAsNamed, ids, hosts, pids, ats)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k hbNamed
			var pid int64
			if err := rows.Scan(&k.id, &k.host, &pid); err != nil {
				rows.Close()
				return err
			}
			k.pid = int(pid)
			written[k] = true
		}
		rows.Close()
		return rows.Err()
	})
	if err != nil {
		for _, w := range batch {
			w.at = time.Time{}
		}
		return batch, err
	}
	for _, w := range batch {
		if !w.at.IsZero() && !written[hbNamed{w.id, w.req.Hostname, w.req.PID}] {
			w.at = time.Time{}
			rest = append(rest, w)
		}
	}
	return rest, nil
}

// hbUpdateAsNamed writes the heartbeats ($1 ids, $2 hosts, $3 pids, $4
// times) whose row is running on that host with that pid, and returns the
// (id, host, pid) it wrote. Its conditions are compared through coalesce,
// as the locked path reads NULL: as "" and 0, and so that none of them can
// be an index condition: `state = 'running'` would let the planner's
// generic plan read every running row's entries in ti_state (a hash join,
// thousands of entries, dead ones included, per batch) instead of one
// primary-key lookup per id (TestHeartbeatPlan).
const hbUpdateAsNamed = `UPDATE task_instance ti SET last_heartbeat_at = u.at, updated_at = u.at
	FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::timestamptz[]) u(id, host, pid, at)
	WHERE ti.id = u.id AND coalesce(ti.state, '') = 'running' AND coalesce(ti.hostname, '') = u.host
		AND coalesce(ti.pid, 0) = u.pid
	RETURNING ti.id::text, u.host, u.pid`

// hbComparable reports whether PostgreSQL can take r's hostname as the
// UPDATE's text: a NUL or invalid UTF-8 would fail the whole statement, and
// with it every heartbeat of the batch. No stored row holds such a
// hostname, so the locked path refuses it alone.
func hbComparable(r workload.HeartbeatRequest) bool {
	return utf8.ValidString(r.Hostname) && !strings.ContainsRune(r.Hostname, 0)
}

// heartbeatsLocked runs batch in one transaction: it locks the rows the
// batch names in id order, judges each request by its rule against its
// row, writes the admitted ones and commits.
func (db *DB) heartbeatsLocked(ctx context.Context, batch []*hbRequest) error {
	ids := make([]string, 0, len(batch))
	for _, w := range batch {
		ids = append(ids, w.id)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	return db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
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
