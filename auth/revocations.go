package auth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// ErrRevocationExpired refuses a revocation whose exp is already past
// beyond the purge grace: the token it names is refused by its own expiry,
// and the entry would be purged at once, so recording it would answer
// "revoked" for nothing.
var ErrRevocationExpired = errors.New("auth: exp is in the past")

// RevocationUntil decides how long a revocation of a token that expires at
// exp (nil: not given) is kept, the same for the admin API and the offline
// CLI. Without exp it is longest from now: the longest lifetime of any
// token taskgate mints (REST, execution, workload), after which the token,
// whatever it was, has expired. An exp within DefaultPurgeGrace before now is
// kept as given: the validator's clock-skew leeway may still accept such a
// token, and the purger keeps the entry that long. An exp further in the past
// is refused with an error wrapping ErrRevocationExpired.
func RevocationUntil(exp *time.Time, now time.Time, longest time.Duration) (time.Time, error) {
	if exp == nil {
		return now.Add(longest).UTC(), nil
	}
	if exp.Before(now.Add(-DefaultPurgeGrace)) {
		return time.Time{}, fmt.Errorf("%w: %s is more than %s before now; a token that expired then is refused already, so there is nothing to revoke",
			ErrRevocationExpired, exp.UTC().Format(time.RFC3339), DefaultPurgeGrace)
	}
	return exp.UTC(), nil
}

// RevocationStore is the part of Store that Revocations keeps in step with.
type RevocationStore interface {
	Revoke(ctx context.Context, jti string, exp time.Time) error
	Revocations(ctx context.Context) (map[string]time.Time, error)
	PurgeRevocations(ctx context.Context, expiredBefore time.Time) (int, error)
}

// Revocations is a running gateway's view of the revoked jtis: loaded from
// the store once at start and changed only through its own methods, which
// write the store first. The check, Revoked, is on the path of every
// request (task tokens included), so it reads an immutable map through an
// atomic pointer: no lock, no store access, no allocation. Revocations are
// rare, so each write copies the map. With one embedded store it is the
// only writer of the store's revocations while it runs (the database lock
// makes the offline CLI unable to open the data directory of a running
// server). When several processes share the store (replicas on one
// PostgreSQL database, Airflow's own api-servers), RunRefresher merges
// what the others revoke (Refresh).
type Revocations struct {
	store RevocationStore
	now   func() time.Time
	mu    sync.Mutex // serializes writers; readers never take it
	set   atomic.Pointer[map[string]time.Time]
}

// LoadRevocations reads every stored revocation. now is the clock that
// decides which entries have expired (nil: time.Now).
func LoadRevocations(ctx context.Context, s RevocationStore, now func() time.Time) (*Revocations, error) {
	if s == nil {
		return nil, errors.New("auth: revocations need a store")
	}
	if now == nil {
		now = time.Now
	}
	m, err := s.Revocations(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: load revocations: %w", err)
	}
	if m == nil {
		m = map[string]time.Time{}
	}
	r := &Revocations{store: s, now: now}
	r.set.Store(&m)
	return r, nil
}

// Revoked reports whether the token with this jti is revoked. An entry stays
// until it is purged, DefaultPurgeGrace (at least) after the token's exp,
// when the validator refuses the token by its expiry anyway.
func (r *Revocations) Revoked(jti string) bool {
	_, ok := (*r.set.Load())[jti]
	return ok
}

// Revoke records durably that the token with this jti is revoked until exp
// and refuses it from then on. As in the store, revoking again keeps the
// later exp. Entries expired beyond the purge grace are dropped from memory
// on the way, so the set stays as small as the live revocations.
func (r *Revocations) Revoke(ctx context.Context, jti string, exp time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.store.Revoke(ctx, jti, exp); err != nil {
		return err
	}
	stale := r.now().Add(-DefaultPurgeGrace)
	old := *r.set.Load()
	next := make(map[string]time.Time, len(old)+1)
	for k, e := range old {
		if !e.Before(stale) {
			next[k] = e
		}
	}
	if e, ok := old[jti]; !ok || exp.After(e) {
		next[jti] = exp.UTC()
	} else {
		next[jti] = e
	}
	r.set.Store(&next)
	return nil
}

// PurgeRevocations deletes the revocations with exp before expiredBefore
// from the store and then from memory; RunPurger calls it.
func (r *Revocations) PurgeRevocations(ctx context.Context, expiredBefore time.Time) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.store.PurgeRevocations(ctx, expiredBefore)
	if err != nil {
		return n, err
	}
	old := *r.set.Load()
	next := make(map[string]time.Time, len(old))
	for k, e := range old {
		if !e.Before(expiredBefore) {
			next[k] = e
		}
	}
	r.set.Store(&next)
	return n, nil
}

// Refresh merges into the set the revocations the store holds that it
// lacks (or holds with a later exp): those other processes sharing the
// store recorded since the last load. Entries the store no longer holds
// (another process purged them) stay until this set's own purge, which
// drops them by their exp anyway: a revocation is never undone.
func (r *Revocations) Refresh(ctx context.Context) error {
	// Read outside the lock: Revoked never waits, and Revoke only waits
	// for the merge below.
	stored, err := r.store.Revocations(ctx)
	if err != nil {
		return fmt.Errorf("auth: refresh revocations: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.set.Load()
	var next map[string]time.Time
	for jti, exp := range stored {
		if e, ok := old[jti]; ok && !exp.After(e) {
			continue
		}
		if next == nil {
			next = maps.Clone(old)
		}
		next[jti] = exp.UTC()
	}
	if next != nil {
		r.set.Store(&next)
	}
	return nil
}

// RefresherConfig configures RunRefresher.
type RefresherConfig struct {
	// Revocations is the set to keep in step with its store. Required.
	Revocations *Revocations
	// Interval is the time between refreshes, and so the bound on how long
	// a revocation recorded by another process takes to be refused here
	// (plus one read of the store). Required unless Tick is set.
	Interval time.Duration
	// Tick, when set, replaces the ticker: each value received starts a
	// refresh and Interval is ignored. Tests drive the refresher with it.
	Tick <-chan time.Time
	// OnError receives the error of a failed refresh (the refresher carries
	// on and tries again at the next tick); nil drops it.
	OnError func(error)
}

// RunRefresher refreshes cfg.Revocations from its store at every tick
// until ctx is done; it returns nil then. It returns an error at once only
// for an invalid configuration.
func RunRefresher(ctx context.Context, cfg RefresherConfig) error {
	if cfg.Revocations == nil {
		return errors.New("auth: refresher needs revocations")
	}
	tick, stop, err := ticks(cfg.Tick, cfg.Interval, "refresh")
	if err != nil {
		return err
	}
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-tick:
			if !ok {
				tick = nil
				continue
			}
			if err := cfg.Revocations.Refresh(ctx); err != nil && ctx.Err() == nil && cfg.OnError != nil {
				cfg.OnError(err)
			}
		}
	}
}
