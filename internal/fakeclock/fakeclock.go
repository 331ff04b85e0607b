// Package fakeclock is the clock tests move by hand. Every package that reads
// the time takes a now func() time.Time; a test passes Clock.Now and moves
// time forward with Advance or Set instead of sleeping, so that expiry,
// renewal and back-off are tested in microseconds and never flake.
//
// A Clock is safe for concurrent use: the code under test often reads it
// from its own goroutines (a purger, a group-commit writer, an HTTP handler)
// while the test moves it. Only tests import this package.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a settable clock. The zero value reads the zero time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock that reads t until it is moved.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time; pass the method value as a now func.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d (backward if d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set makes the clock read t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}
