package auth

import (
	"context"
	"errors"
	"fmt"
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
// rare, so each write copies the map. It assumes it is the only writer of
// the store's revocations while it runs, which the database lock makes so:
// the offline CLI cannot open the data directory of a running server.
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
