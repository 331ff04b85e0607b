package gateway

import (
	"sync"
)

// tryEpochs is implemented by a store that can say without a read when
// TryStatus may have changed for a try (store.DB.TryEpoch): the number
// changes once a write that may have changed the try's status has
// committed, before that write is acknowledged.
type tryEpochs interface {
	TryEpoch(id string) uint64
}

// runningTriesLimit bounds the tokens' subjects runningTries remembers; a
// full set is emptied (the tries still asking refill it, one read each).
const runningTriesLimit = 1 << 16

// runningTries remembers the tries TryStatus found running, by the subject
// of the token that named them, with the store's epoch read before that
// TryStatus: while the epoch has not moved the try still runs, and the
// token check skips the UUID parse and the store's lookup. Only the running
// phase is remembered: it is where a task spends its life, and the only one
// that neither depends on the time nor on callbacks.
type runningTries struct {
	epochs tryEpochs
	mu     sync.RWMutex
	m      map[string]runningTry
}

type runningTry struct {
	id    string // the try's canonical id
	epoch uint64 // epochs.TryEpoch(id) before the TryStatus that found it running
}

// newRunningTries returns the set for a store with epochs, or nil.
func newRunningTries(store any) *runningTries {
	e, ok := store.(tryEpochs)
	if !ok {
		return nil
	}
	return &runningTries{epochs: e, m: make(map[string]runningTry)}
}

// running reports whether the try that sub names was found running and no
// write may have changed it since.
func (r *runningTries) running(sub string) bool {
	r.mu.RLock()
	t, ok := r.m[sub]
	r.mu.RUnlock()
	return ok && r.epochs.TryEpoch(t.id) == t.epoch
}

// epoch is the try's epoch, to be read before the TryStatus whose answer
// remember may keep.
func (r *runningTries) epoch(id string) uint64 { return r.epochs.TryEpoch(id) }

// remember keeps that the try id, named by sub, was running as of epoch.
func (r *runningTries) remember(sub, id string, epoch uint64) {
	r.mu.Lock()
	if len(r.m) >= runningTriesLimit {
		clear(r.m)
	}
	r.m[sub] = runningTry{id: id, epoch: epoch}
	r.mu.Unlock()
}
