package pgstore

// Heartbeats are most of the writes: every running task sends one every few
// seconds, and each must be committed before it is acknowledged. One
// transaction per heartbeat costs a commit (a WAL flush) each, so heartbeats
// go to one writer goroutine that gathers every heartbeat waiting (group
// commit, as the embedded store does) and records them in one transaction.
//
// Most heartbeats come from the worker running their try, so a batch first
// takes the fast path (fastHeartbeats): each request's
// workload.HeartbeatRule is asked beforehand about the holder the request
// names (running, on its hostname and pid), and the admitted ones are
// written by one statement that updates a row only where it holds exactly
// that holder:
//
//	UPDATE task_instance ti SET last_heartbeat_at = u.at, updated_at = u.at
//	  FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::integer[]) u(id, at, hostname, pid)
//	  WHERE ti.id = u.id AND ti.state = 'running' AND ti.hostname = u.hostname AND ti.pid = u.pid
//	  RETURNING ti.id
//
// sent with its BEGIN in one round trip, then COMMIT, and only then the
// answers. A row the statement updated held, under the statement's row
// lock, the holder the rule was asked about, so the rule's verdict is the
// one it gives against the row; no row is read before. It is Airflow's own
// hot path (ti_heartbeat's UPDATE … WHERE state = running AND hostname AND
// pid), batched.
//
// The rest (the rule refused that holder, the row holds another or is not in
// task_instance, two requests of one id name different workers) go to the
// locked path (lockedHeartbeats), in a transaction of their own:
//
//	SELECT id, state, hostname, pid FROM task_instance
//	  WHERE id = ANY($1) ORDER BY id FOR UPDATE
//
// then the rule per request in Go, against the row as that lock sees it,
// one UPDATE … FROM unnest for the admitted ones, the commit, and the
// answers: a refused heartbeat writes nothing and gets its rule's error
// (Airflow's 409 reasons come from the row this way). Both paths go through
// the rows in id order (the fast path's ids are sorted, and PostgreSQL runs
// it as a nested loop over them), so two batches or replicas do not
// deadlock on each other; should they, PostgreSQL aborts one and its
// transaction runs again, as after a serialization failure (the rules are
// pure). A failed transaction fails every heartbeat it carried, with an
// error wrapping workload.ErrUnavailable when the database cannot be
// reached.
//
// The writer pipelines (hbInFlight): as soon as a batch's statement has
// run, while its COMMIT waits for the WAL flush, the next batch is gathered
// and sent on a second connection; a heartbeat then waits for the
// statement in flight, not for its commit too. The next batch's statement
// waits for the row locks of the previous one where they share a row, so
// the order of a try's heartbeats is kept. No heartbeat is answered before
// the commit that holds it.
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
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskgate/taskgate/workload"
)

// hbMaxBatch caps the heartbeats of one transaction.
const hbMaxBatch = 2048

// hbInFlight is how many batches the writer has between gathering and
// answering: the next batch runs its statement while the previous one's
// commit waits for the WAL flush. BENCHNOTE
const hbInFlight = 2

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

	start  sync.Once
	mu     sync.RWMutex // guards closed; sends on queue hold it shared, its close exclusively
	closed bool
	queue  chan *hbRequest
	writer sync.WaitGroup // the writer, once started
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
		s.writer.Go(db.heartbeatWriter)
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

// heartbeatWriter gathers batches until the queue is closed and drained.
// It gathers the next batch as soon as the previous one's statement has
// run, while that one's commit is still in flight, with at most hbInFlight
// batches between gathering and answering.
func (db *DB) heartbeatWriter() {
	s := &db.ti
	slots := make(chan struct{}, hbInFlight)
	executing := make(chan struct{}, 1) // held from gathering to the statement's end
	var running sync.WaitGroup
	defer running.Wait()
	for {
		slots <- struct{}{}
		executing <- struct{}{}
		w, ok := <-s.queue
		if !ok {
			return
		}
		batch := make([]*hbRequest, 1, 64)
		batch[0] = w
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
		running.Go(func() {
			var once sync.Once
			executed := func() { once.Do(func() { <-executing }) }
			db.runHeartbeats(batch, executed)
			executed()
			for _, w := range batch {
				w.done <- struct{}{}
			}
			<-slots
		})
	}
}

// runHeartbeats runs one batch and sets each request's outcome: first the
// heartbeats the fast path can record, then the others under their rows'
// locks.
func (db *DB) runHeartbeats(batch []*hbRequest, executed func()) {
	db.ti.batches.Add(1)
	if obs := db.obs.Load(); obs != nil {
		start := time.Now()
		defer func() { (*obs).ObserveHeartbeatBatch(len(batch), time.Since(start)) }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), hbTimeout)
	defer cancel()
	rest, err := db.fastHeartbeats(ctx, batch, executed)
	executed()
	if err == nil && len(rest) > 0 {
		err = db.lockedHeartbeats(ctx, rest)
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

// fastHeartbeats records, in one statement that is its own transaction,
// every heartbeat whose try is held by the worker it names: the rule of
// each request is asked beforehand about that holder (running, on the
// request's hostname and pid), and a row is updated only where it holds
// exactly that holder, as the update's row lock sees it; so the rule's
// answer is the one it gives against the row. It returns the requests left
// for lockedHeartbeats (the rule refused that holder, the row holds another
// or is not in task_instance, or another request of the same id in the
// batch names another worker), all of the batch when the statement failed,
// with the error.
func (db *DB) fastHeartbeats(ctx context.Context, batch []*hbRequest, executed func()) ([]*hbRequest, error) {
	type guess struct {
		hostname string
		pid      int
		at       time.Time
		slow     bool
	}
	guesses := make(map[string]*guess, len(batch))
	for _, w := range batch {
		w.err, w.at = nil, time.Time{}
		at, err := w.admit(workload.Holder{State: workload.StateRunning, Hostname: w.req.Hostname, PID: w.req.PID}, w.req)
		g, seen := guesses[w.id]
		switch {
		case !seen:
			g = &guess{hostname: w.req.Hostname, pid: w.req.PID, at: at.UTC(), slow: err != nil}
			guesses[w.id] = g
		case err != nil || g.hostname != w.req.Hostname || g.pid != w.req.PID:
			g.slow = true
		case at.After(g.at):
			g.at = at.UTC()
		}
	}
	ids := make([]string, 0, len(guesses))
	for id, g := range guesses {
		if !g.slow {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return batch, nil
	}
	// In id order, as every writer locks rows.
	slices.Sort(ids)
	ats := make([]time.Time, len(ids))
	hostnames := make([]string, len(ids))
	pids := make([]int32, len(ids))
	for i, id := range ids {
		g := guesses[id]
		ats[i], hostnames[i], pids[i] = g.at, g.hostname, int32(g.pid)
	}
	recorded := make(map[string]bool, len(ids))
	err := db.retry(ctx, func() error {
		clear(recorded)
		return db.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
			// BEGIN and the update in one round trip, then the commit.
			b := &pgx.Batch{}
			b.Queue(`BEGIN`)
			b.Queue(`UPDATE task_instance ti SET last_heartbeat_at = u.at, updated_at = u.at
				FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::integer[]) u(id, at, hostname, pid)
				WHERE ti.id = u.id AND ti.state = $5 AND ti.hostname = u.hostname AND ti.pid = u.pid
				RETURNING ti.id::text`, ids, ats, hostnames, pids, string(workload.StateRunning))
			br := c.SendBatch(ctx, b)
			err := func() error {
				if _, err := br.Exec(); err != nil {
					return err
				}
				rows, err := br.Query()
				if err != nil {
					return err
				}
				for rows.Next() {
					var id string
					if err := rows.Scan(&id); err != nil {
						rows.Close()
						return err
					}
					recorded[id] = true
				}
				rows.Close()
				return rows.Err()
			}()
			if cerr := br.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				// An aborted transaction is ended; a connection left in
				// one is closed when it goes back to the pool.
				_, _ = c.Exec(ctx, `ROLLBACK`)
				return err
			}
			executed()
			tag, err := c.Exec(ctx, `COMMIT`)
			if err == nil && tag.String() != "COMMIT" {
				err = fmt.Errorf("commit answered %s", tag)
			}
			return err
		})
	})
	if err != nil {
		return batch, err
	}
	var rest []*hbRequest
	for _, w := range batch {
		if recorded[w.id] {
			w.at = guesses[w.id].at
			continue
		}
		rest = append(rest, w)
	}
	return rest, nil
}

// lockedHeartbeats judges the given heartbeats in one transaction against
// their rows, locked in id order, records the admitted ones and sets each
// request's outcome; the error is the transaction's.
func (db *DB) lockedHeartbeats(ctx context.Context, batch []*hbRequest) error {
	ids := make([]string, 0, len(batch))
	for _, w := range batch {
		ids = append(ids, w.id)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	return db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		holders := make(map[string]workload.Holder, len(ids))
		rows, err := tx.Query(ctx, `SELECT ti.id::text, state, hostname, pid FROM task_instance ti
			WHERE id = ANY($1::uuid[]) ORDER BY ti.id FOR UPDATE`, ids)
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

// close stops the heartbeat writer: heartbeats queued before are still
// run and answered, later ones fail with an error wrapping
// workload.ErrUnavailable. It waits for the writer to exit.
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
	s.writer.Wait()
}
