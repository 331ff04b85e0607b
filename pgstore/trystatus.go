package pgstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

// tryStatusTTL bounds how stale a TryStatus answer may be: an entry is
// served for at most this long after the moment its database read began,
// then read again. So a change another replica, Airflow's API server or its
// scheduler commits is seen by TryStatus on this replica at most
// tryStatusTTL (1 s) after its commit; a change written through this
// replica is seen at once (the write replaces the entry after its commit).
const tryStatusTTL = time.Second

// tryCacheLimit bounds the entries; a full cache is emptied (the tries
// still asking refill it within one read each).
const tryCacheLimit = 1 << 17

// tryCache is the per-replica cache of TryStatus.
type tryCache struct {
	mu sync.RWMutex
	m  map[string]tryEntry
}

type tryEntry struct {
	st workload.TryStatus
	// asOf is when the database state the entry holds was read (the start
	// of the read) or committed (a write through this replica).
	asOf time.Time
}

func (c *tryCache) get(id string, now time.Time) (workload.TryStatus, bool) {
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || now.Sub(e.asOf) >= tryStatusTTL || now.Before(e.asOf) {
		return workload.TryStatus{}, false
	}
	return e.st, true
}

// put stores st as of asOf unless the entry holds a later state already (a
// read that began before a write committed must not replace the write).
func (c *tryCache) put(id string, st workload.TryStatus, asOf time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok && e.asOf.After(asOf) {
		return
	}
	if c.m == nil || len(c.m) >= tryCacheLimit {
		c.m = make(map[string]tryEntry)
	}
	c.m[id] = tryEntry{st: st, asOf: asOf}
}

// TryStatus returns the status of the try with the given id, from this
// replica's cache when its entry is younger than tryStatusTTL, else read
// from the database: the state of the try's task_instance row (current),
// or, for an id only task_instance_history knows, the current row's state
// while its try number is still the try's, else the history row's state
// (not current). ReportedAt is taskgate.try's.
func (db *DB) TryStatus(ctx context.Context, id string) (workload.TryStatus, error) {
	now := db.now()
	if st, ok := db.ti.cache.get(id, now); ok {
		return st, nil
	}
	if !validUUID(id) {
		return workload.TryStatus{}, notFound("task instance %s", id)
	}
	// Each statement reads its own snapshot, as it would in a READ
	// COMMITTED transaction, so no transaction is opened: the common case,
	// a try task_instance holds, is one round trip.
	var st workload.TryStatus
	err := db.retrying(ctx, func() error {
		st = workload.TryStatus{}
		var state *string
		err := db.pool.QueryRow(ctx, `SELECT ti.state, t.reported_at FROM task_instance ti
			LEFT JOIN taskgate.try t ON t.ti_id = ti.id WHERE ti.id = $1::uuid`, id).Scan(&state, &st.ReportedAt)
		if err == nil {
			st.State, st.Current = workload.State(deref(state)), true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var curState *string
		var current bool
		err = db.pool.QueryRow(ctx, `SELECT h.state, cur.state, cur.id IS NOT NULL, t.reported_at
			FROM task_instance_history h
			LEFT JOIN task_instance cur ON cur.dag_id = h.dag_id AND cur.run_id = h.run_id AND cur.task_id = h.task_id
				AND cur.map_index = h.map_index AND cur.try_number = h.try_number
			LEFT JOIN taskgate.try t ON t.ti_id = h.task_instance_id
			WHERE h.task_instance_id = $1::uuid`, id).Scan(&state, &curState, &current, &st.ReportedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("task instance %s", id)
		}
		if err != nil {
			return err
		}
		// A try that reported up_for_retry is still the latest one at its
		// coordinates while the row keeps its try number, up for retry and
		// then scheduled (see workload.TryStatus.Moved); a try cleared away
		// leaves the row without a state, or restarting, and is simply
		// archived.
		switch workload.State(deref(curState)) {
		case workload.StateUpForRetry, workload.StateScheduled:
		default:
			current = false
		}
		st.Current, st.Moved = current, current
		if current {
			state = curState
		}
		st.State = workload.State(deref(state))
		return nil
	})
	if err != nil {
		return workload.TryStatus{}, err
	}
	if st.ReportedAt != nil {
		t := st.ReportedAt.UTC()
		st.ReportedAt = &t
	}
	db.ti.cache.put(id, st, now)
	return st, nil
}
