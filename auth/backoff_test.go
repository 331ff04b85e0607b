package auth

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/taskgate/taskgate/internal/fakeclock"
)

// newBackoffAuthenticator is an authenticator with the default throttling
// and a comparison that knows one password, so that tests can make
// thousands of logins without bcrypt's cost.
func newBackoffAuthenticator(t *testing.T) (*Authenticator, *fakeclock.Clock) {
	t.Helper()
	s := newMemStore()
	addUser(t, s, "alice", RoleOp, "alice-password")
	clk := newClock()
	a, _ := newTestAuthenticator(t, s, clk, AuthenticatorConfig{})
	a.compare = func(_, password []byte) error {
		if string(password) == "alice-password" {
			return nil
		}
		return bcrypt.ErrMismatchedHashAndPassword
	}
	return a, clk
}

// TestLoginSlowGuesserKeepsNobodyOut: one failed login for a user per
// lockout, spread over a day, must not keep that user locked out for good,
// as it would if each failure renewed a 15-minute lockout. A guesser failing
// once every 15 minutes (from ever new addresses) leaves the user able to
// log in once the first lockout has passed.
func TestLoginSlowGuesserKeepsNobodyOut(t *testing.T) {
	a, clk := newBackoffAuthenticator(t)
	ctx := context.Background()
	guesses := 0
	guess := func() {
		t.Helper()
		for {
			guesses++
			_, err := a.Login(ctx, "alice", "guess", fmt.Sprintf("198.51.%d.%d", guesses/256%256, guesses%256))
			if d := throttled(err); d > 0 {
				if d > DefaultMaxDelay {
					t.Fatalf("guess %d: told to wait %s, more than the cap %s", guesses, d, DefaultMaxDelay)
				}
				clk.Advance(d)
				continue
			}
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("guess %d: %v", guesses, err)
			}
			return
		}
	}
	// A burst locks alice out, up to the cap.
	for range 20 {
		guess()
	}
	// Then one failure every 15 minutes for a day; alice tries each time
	// the cap after the latest failure.
	for i := range 24 * 4 {
		clk.Advance(15*time.Minute - DefaultMaxDelay - time.Second)
		guess()
		clk.Advance(DefaultMaxDelay + time.Second)
		if _, err := a.Login(ctx, "alice", "alice-password", "192.0.2.1"); err != nil {
			t.Fatalf("after %s of one guess per 15 minutes: alice's login: %v", time.Duration(i+1)*15*time.Minute, err)
		}
	}
}

// TestLoginBackoffIsCapped: however many failures come, as fast as they are
// allowed, no wait exceeds MaxDelay, and once a wait is over the next
// attempt is checked.
func TestLoginBackoffIsCapped(t *testing.T) {
	a, clk := newBackoffAuthenticator(t)
	ctx := context.Background()
	var longest time.Duration
	waited := false
	for i := range 5000 {
		_, err := a.Login(ctx, "alice", "guess", "")
		d := throttled(err)
		if d <= 0 {
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("attempt %d: %v", i, err)
			}
			waited = false
			continue
		}
		if waited {
			t.Fatalf("attempt %d: refused again (wait %s) right after waiting as told", i, d)
		}
		longest = max(longest, d)
		if d > DefaultMaxDelay {
			t.Fatalf("attempt %d: wait %s, more than the cap %s", i, d, DefaultMaxDelay)
		}
		clk.Advance(d)
		waited = true
	}
	if longest != DefaultMaxDelay {
		t.Errorf("longest wait %s, want the cap %s", longest, DefaultMaxDelay)
	}
	// The right password, after the last wait.
	if _, err := a.Login(ctx, "alice", "alice-password", ""); throttled(err) > 0 {
		clk.Advance(throttled(err))
		if _, err := a.Login(ctx, "alice", "alice-password", ""); err != nil {
			t.Fatalf("the right password after waiting as told: %v", err)
		}
	} else if err != nil {
		t.Fatalf("the right password: %v", err)
	}
}

// TestThrottleRemembersBoundedFailures: an entry keeps no more failure
// times than it takes to reach the cap.
func TestThrottleRemembersBoundedFailures(t *testing.T) {
	th := newThrottle(5, 15*time.Minute, time.Second, 5*time.Minute, 10)
	if th.maxKept != 14 { // 1s doubled 9 times is 512s, over 300s
		t.Errorf("maxKept = %d, want 14", th.maxKept)
	}
	now := t0
	for range 1000 {
		th.fail("u:alice", now)
		now = now.Add(time.Millisecond)
	}
	if e := th.keys["u:alice"]; len(e.failed) != th.maxKept || th.lockout(len(e.failed)) != 5*time.Minute {
		t.Errorf("after 1000 failures: %d kept, lockout %s", len(e.failed), th.lockout(len(e.failed)))
	}
}
