package auth

import (
	"sync"
	"sync/atomic"
	"time"
)

// FailureLimiter slows down a key — a client address, a token subject —
// that keeps failing authentication: after perMinute failures within a
// minute, the key waits one second, doubling with each further failure
// within the minute up to a minute. It uses the same bounded
// bookkeeping as login throttling, so a flood of distinct keys cannot grow
// it without bound. Safe for concurrent use.
//
// Wait is on every authenticated request's path; while no key has failed
// recently it returns without taking the lock.
type FailureLimiter struct {
	now     func() time.Time
	tracked atomic.Int64
	mu      sync.Mutex
	t       throttle
}

// NewFailureLimiter returns a limiter allowing perMinute consecutive
// failures per key; now is the clock (nil: time.Now).
func NewFailureLimiter(perMinute int, now func() time.Time) *FailureLimiter {
	if now == nil {
		now = time.Now
	}
	return &FailureLimiter{
		now: now,
		t:   newThrottle(max(perMinute, 1), time.Minute, time.Second, time.Minute, DefaultMaxTracked),
	}
}

// Idle reports whether no key has failed recently, in which case Wait
// returns zero for every key: a caller can skip building its keys.
func (l *FailureLimiter) Idle() bool { return l.tracked.Load() == 0 }

// Wait returns how long key must wait before it is served again; zero when
// it may be served now.
func (l *FailureLimiter) Wait(key string) time.Duration {
	if l.Idle() {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.t.prune(now)
	l.tracked.Store(int64(l.t.tracked()))
	return l.t.wait(key, now)
}

// Fail records an authentication failure of key.
func (l *FailureLimiter) Fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.t.prune(now)
	l.t.fail(key, now)
	l.tracked.Store(int64(l.t.tracked()))
}
