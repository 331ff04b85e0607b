package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"
)

func TestNewAuthenticatorConfig(t *testing.T) {
	s := newMemStore()
	for _, tt := range []struct {
		name string
		cfg  AuthenticatorConfig
	}{
		{"no store", AuthenticatorConfig{BcryptCost: 4}},
		{"negative max failures", AuthenticatorConfig{Store: s, BcryptCost: 4, MaxFailures: -1}},
		{"negative window", AuthenticatorConfig{Store: s, BcryptCost: 4, Window: -time.Second}},
		{"negative max tracked", AuthenticatorConfig{Store: s, BcryptCost: 4, MaxTracked: -1}},
		{"base delay above max delay", AuthenticatorConfig{Store: s, BcryptCost: 4, BaseDelay: time.Hour, MaxDelay: time.Minute}},
		{"bcrypt cost out of range", AuthenticatorConfig{Store: s, BcryptCost: 3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewAuthenticator(tt.cfg); err == nil || !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("NewAuthenticator: %v, want an auth error", err)
			}
		})
	}
	a, err := NewAuthenticator(AuthenticatorConfig{Store: s, BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	got := []any{a.t.maxFailures, a.t.window, a.t.baseDelay, a.t.maxDelay, a.t.maxTracked}
	want := []any{5, 15 * time.Minute, time.Second, 5 * time.Minute, 100000}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestLogin(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	alice := addUser(t, s, "alice", RoleAdmin, "correct horse")
	long := strings.Repeat("x", 72)
	addUser(t, s, "bob", RoleViewer, long)
	s.users["broken"] = User{Name: "broken", Role: RoleOp, PasswordHash: "not a bcrypt hash"}

	tests := []struct {
		name, user, password string
		want                 *User
		wantErr              error
	}{
		{"good password", "alice", "correct horse", &alice, nil},
		{"wrong password", "alice", "correct horsE", nil, ErrBadCredentials},
		{"empty password", "alice", "", nil, ErrBadCredentials},
		{"unknown user", "mallory", "correct horse", nil, ErrBadCredentials},
		{"name no user can have", "-mallory/../x", "correct horse", nil, ErrBadCredentials},
		{"72-byte password", "bob", long, ptr(s.users["bob"]), nil},
		{"bytes past bcrypt's 72 are not ignored", "bob", long + "y", nil, ErrBadCredentials},
		{"damaged stored hash", "broken", "whatever1", nil, ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh authenticator per case keeps the throttle out of it.
			a, cc := newTestAuthenticator(t, s, newClock(), AuthenticatorConfig{})
			got, err := a.Login(ctx, tt.user, tt.password, "192.0.2.1")
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Login error %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Login user (-want +got):\n%s", diff)
			}
			if err != nil && strings.Contains(err.Error(), tt.password) && tt.password != "" {
				t.Errorf("error %q contains the password", err)
			}
			if n := cc.take(); n != 1 {
				t.Errorf("%d bcrypt comparisons, want 1", n)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestLoginStoreError: a failing store is an error of its own, not bad
// credentials, and counts as no failure.
func TestLoginStoreError(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	addUser(t, s, "alice", RoleOp, "correct horse")
	a, _ := newTestAuthenticator(t, s, newClock(), AuthenticatorConfig{MaxFailures: 1})
	boom := errors.New("disk on fire")
	s.userErr = boom
	for range 3 {
		_, err := a.Login(ctx, "alice", "correct horse", "192.0.2.1")
		if !errors.Is(err, boom) || errors.Is(err, ErrBadCredentials) {
			t.Fatalf("Login: %v, want the store's error", err)
		}
	}
	s.userErr = nil
	if _, err := a.Login(ctx, "alice", "correct horse", "192.0.2.1"); err != nil {
		t.Fatalf("Login after store errors: %v", err)
	}
	if n := a.tracked(); n != 0 {
		t.Errorf("%d keys tracked after successes and store errors, want 0", n)
	}
}

// step is one login in a throttling scenario: advance the clock, log in,
// expect an outcome.
type step struct {
	advance        time.Duration
	user, password string
	addr           string
	// want: "ok", "bad", or a lockout duration as "throttled 2s".
	want string
}

func runSteps(t *testing.T, cfg AuthenticatorConfig, steps []step) {
	t.Helper()
	s := newMemStore()
	addUser(t, s, "alice", RoleOp, "alice-password")
	addUser(t, s, "bob", RoleOp, "bob-password")
	clk := newClock()
	a, cc := newTestAuthenticator(t, s, clk, cfg)
	for i, st := range steps {
		clk.Advance(st.advance)
		_, err := a.Login(context.Background(), st.user, st.password, st.addr)
		var got string
		switch {
		case err == nil:
			got = "ok"
		case errors.Is(err, ErrBadCredentials):
			got = "bad"
		case throttled(err) >= 0:
			got = fmt.Sprintf("throttled %s", throttled(err))
		default:
			t.Fatalf("step %d: %v", i, err)
		}
		compares := cc.take()
		if got != st.want {
			t.Fatalf("step %d (%s from %s at +%s): %s, want %s", i, st.user, st.addr, clk.Now().Sub(t0), got, st.want)
		}
		if wantCompares := map[bool]int{true: 0, false: 1}[strings.HasPrefix(got, "throttled")]; compares != wantCompares {
			t.Fatalf("step %d: %d bcrypt comparisons, want %d", i, compares, wantCompares)
		}
	}
}

func TestLoginThrottlesUser(t *testing.T) {
	cfg := AuthenticatorConfig{MaxFailures: 3, Window: time.Minute, BaseDelay: time.Second, MaxDelay: 4 * time.Second}
	wrong := func(adv time.Duration, addr, want string) step {
		return step{adv, "alice", "guess", addr, want}
	}
	right := func(adv time.Duration, addr, want string) step {
		return step{adv, "alice", "alice-password", addr, want}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"locked after max failures, from any address", []step{
			wrong(0, "192.0.2.1", "bad"),
			wrong(0, "192.0.2.2", "bad"),
			wrong(0, "192.0.2.3", "bad"), // the third failure locks for BaseDelay
			wrong(0, "192.0.2.4", "throttled 1s"),
			right(0, "192.0.2.5", "throttled 1s"), // not even the right password is checked
			right(500*time.Millisecond, "192.0.2.5", "throttled 500ms"),
			{0, "bob", "bob-password", "192.0.2.1", "ok"}, // other users are not affected
		}},
		{"lockout doubles and is capped", []step{
			wrong(0, "192.0.2.1", "bad"),
			wrong(0, "192.0.2.2", "bad"),
			wrong(0, "192.0.2.3", "bad"),
			wrong(time.Second, "192.0.2.4", "bad"), // unlocked after 1s; the 4th failure locks 2s
			wrong(0, "192.0.2.4", "throttled 2s"),
			wrong(2*time.Second, "192.0.2.5", "bad"), // 4s
			wrong(3*time.Second, "192.0.2.5", "throttled 1s"),
			wrong(time.Second, "192.0.2.6", "bad"), // 8s, capped at 4s
			wrong(0, "192.0.2.6", "throttled 4s"),
			wrong(4*time.Second, "192.0.2.7", "bad"),
			wrong(0, "192.0.2.7", "throttled 4s"),
		}},
		{"throttled attempts are not counted", []step{
			wrong(0, "192.0.2.1", "bad"),
			wrong(0, "192.0.2.2", "bad"),
			wrong(0, "192.0.2.3", "bad"),
			wrong(0, "192.0.2.4", "throttled 1s"),
			wrong(0, "192.0.2.4", "throttled 1s"),
			wrong(time.Second, "192.0.2.5", "bad"), // 2s, not more
			wrong(0, "192.0.2.5", "throttled 2s"),
		}},
		{"success clears the user's failures", []step{
			wrong(0, "192.0.2.1", "bad"),
			wrong(0, "192.0.2.2", "bad"),
			right(0, "192.0.2.3", "ok"),
			wrong(0, "192.0.2.4", "bad"),
			wrong(0, "192.0.2.5", "bad"),
			right(0, "192.0.2.6", "ok"),
		}},
		{"success after a lockout clears it", []step{
			wrong(0, "192.0.2.1", "bad"),
			wrong(0, "192.0.2.2", "bad"),
			wrong(0, "192.0.2.3", "bad"),
			right(time.Second, "192.0.2.4", "ok"),
			wrong(0, "192.0.2.5", "bad"),
			wrong(0, "192.0.2.6", "bad"),
			wrong(0, "192.0.2.7", "bad"),
			wrong(0, "192.0.2.8", "throttled 1s"), // BaseDelay again, not 2s
		}},
		{"failures further apart than the window are forgotten", []step{
			wrong(0, "192.0.2.1", "bad"),
			wrong(0, "192.0.2.2", "bad"),
			wrong(time.Minute, "192.0.2.3", "bad"),
			wrong(0, "192.0.2.4", "bad"),
			right(0, "192.0.2.5", "ok"),
		}},
		{"failures within one window count", []step{
			wrong(0, "192.0.2.1", "bad"),
			wrong(30*time.Second, "192.0.2.2", "bad"),
			wrong(29*time.Second, "192.0.2.3", "bad"),
			right(0, "192.0.2.4", "throttled 1s"),
		}},
		{"each failure is forgotten a window after it happened", []step{
			wrong(0, "192.0.2.1", "bad"),
			wrong(59*time.Second, "192.0.2.2", "bad"),
			wrong(59*time.Second, "192.0.2.3", "bad"), // the first is a window old: two count
			right(0, "192.0.2.4", "ok"),
		}},
		{"a lockout does not extend the memory of failures", []step{
			wrong(0, "192.0.2.1", "bad"),
			wrong(0, "192.0.2.2", "bad"),
			wrong(0, "192.0.2.3", "bad"),
			wrong(59*time.Second, "192.0.2.4", "bad"), // the 4th within the window: 2s
			wrong(0, "192.0.2.4", "throttled 2s"),
			wrong(2*time.Second, "192.0.2.5", "bad"), // the first three are forgotten: the 2nd
			right(0, "192.0.2.6", "ok"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runSteps(t, cfg, tt.steps) })
	}
}

func TestLoginThrottlesAddress(t *testing.T) {
	cfg := AuthenticatorConfig{MaxFailures: 3, Window: time.Minute, BaseDelay: time.Second, MaxDelay: 4 * time.Second}
	tests := []struct {
		name  string
		steps []step
	}{
		{"locked after max failures, for any user", []step{
			{0, "u1", "guess", "192.0.2.1", "bad"},
			{0, "u2", "guess", "192.0.2.1", "bad"},
			{0, "-bad name-", "guess", "192.0.2.1", "bad"}, // counted for the address all the same
			{0, "alice", "alice-password", "192.0.2.1", "throttled 1s"},
			{0, "alice", "alice-password", "192.0.2.2", "ok"}, // other addresses are not affected
			{time.Second, "u4", "guess", "192.0.2.1", "bad"},
			{0, "u5", "guess", "192.0.2.1", "throttled 2s"},
		}},
		{"success does not clear the address", []step{
			{0, "u1", "guess", "192.0.2.1", "bad"},
			{0, "u2", "guess", "192.0.2.1", "bad"},
			{0, "alice", "alice-password", "192.0.2.1", "ok"},
			{0, "u3", "guess", "192.0.2.1", "bad"},
			{0, "bob", "bob-password", "192.0.2.1", "throttled 1s"},
		}},
		{"ports are ignored", []step{
			{0, "u1", "guess", "192.0.2.1:40001", "bad"},
			{0, "u2", "guess", "192.0.2.1:40002", "bad"},
			{0, "u3", "guess", "192.0.2.1", "bad"},
			{0, "alice", "alice-password", "192.0.2.1:40004", "throttled 1s"},
		}},
		{"an IPv6 address counts as its /64", []step{
			{0, "u1", "guess", "[2001:db8:1:2::1]:40001", "bad"},
			{0, "u2", "guess", "2001:db8:1:2:ffff::2", "bad"},
			{0, "u3", "guess", "[2001:db8:1:2:abcd::9%eth0]:1", "bad"},
			{0, "alice", "alice-password", "2001:db8:1:2::7", "throttled 1s"},
			{0, "alice", "alice-password", "2001:db8:1:3::7", "ok"},
		}},
		{"IPv4-mapped IPv6 is the IPv4 address", []step{
			{0, "u1", "guess", "[::ffff:192.0.2.1]:1", "bad"},
			{0, "u2", "guess", "192.0.2.1", "bad"},
			{0, "u3", "guess", "::ffff:192.0.2.1", "bad"},
			{0, "alice", "alice-password", "192.0.2.1:9", "throttled 1s"},
		}},
		{"an empty address is not throttled by address", []step{
			{0, "u1", "guess", "", "bad"},
			{0, "u2", "guess", "", "bad"},
			{0, "u3", "guess", "", "bad"},
			{0, "alice", "alice-password", "", "ok"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runSteps(t, cfg, tt.steps) })
	}
}

// TestLoginSameWorkForUnknownUsers counts bcrypt comparisons, not time: an
// unknown user costs exactly what a known one does.
func TestLoginSameWorkForUnknownUsers(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	addUser(t, s, "alice", RoleOp, "correct horse")
	a, cc := newTestAuthenticator(t, s, newClock(), AuthenticatorConfig{MaxFailures: 100})
	counts := map[string]int{}
	for _, tt := range []struct{ name, user, password string }{
		{"known user, right password", "alice", "correct horse"},
		{"known user, wrong password", "alice", "wrong horse"},
		{"unknown user", "nobody", "correct horse"},
		{"impossible name", strings.Repeat("n", 1000), "correct horse"},
	} {
		_, _ = a.Login(ctx, tt.user, tt.password, "192.0.2.1")
		counts[tt.name] = cc.take()
	}
	want := map[string]int{
		"known user, right password": 1, "known user, wrong password": 1,
		"unknown user": 1, "impossible name": 1,
	}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("bcrypt comparisons per login (-want +got):\n%s", diff)
	}
	// The dummy hash has the users' cost, so each comparison costs the same
	// (TestLoginCostSameForUnknownUsers changes the cost).
	dummy, err := a.costs.dummy()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dummy[4:6], []byte(s.users["alice"].PasswordHash)[4:6]; string(got) != string(want) {
		t.Errorf("dummy hash cost %s, user hash cost %s", got, want)
	}
}

// TestLoginParallelGuessesAreLimited: requests arriving together cannot try
// more passwords than MaxFailures before the lockout.
func TestLoginParallelGuessesAreLimited(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	addUser(t, s, "alice", RoleOp, "correct horse")
	a, _ := newTestAuthenticator(t, s, newClock(), AuthenticatorConfig{MaxFailures: 5})
	entered := make(chan struct{}, 100)
	release := make(chan struct{})
	compare := a.compare
	a.compare = func(hash, password []byte) error {
		entered <- struct{}{}
		<-release
		return compare(hash, password)
	}
	const n = 20
	results := make(chan error, n)
	for i := range n {
		go func() {
			_, err := a.Login(ctx, "alice", fmt.Sprintf("guess-%02d", i), fmt.Sprintf("192.0.2.%d", i))
			results <- err
		}()
	}
	var inCompare, refused int
	for inCompare+refused < n {
		select {
		case <-entered:
			inCompare++
		case err := <-results:
			if throttled(err) != time.Second {
				t.Fatalf("early result %v, want a throttle of BaseDelay", err)
			}
			refused++
		}
	}
	if inCompare != 5 {
		t.Errorf("%d passwords checked in parallel, want 5", inCompare)
	}
	close(release)
	for range inCompare {
		if err := <-results; !errors.Is(err, ErrBadCredentials) {
			t.Errorf("checked login: %v", err)
		}
	}
	if _, err := a.Login(ctx, "alice", "correct horse", "192.0.2.99"); throttled(err) != time.Second {
		t.Errorf("Login after 5 parallel failures: %v, want locked for 1s", err)
	}
}

// TestLoginBoundedTracking floods the throttle with random names and
// addresses: it never remembers more than MaxTracked keys, drops expired keys
// first and then the ones that would be forgotten soonest, and still locks
// out the user under attack.
func TestLoginBoundedTracking(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	addUser(t, s, "alice", RoleOp, "correct horse")
	clk := newClock()
	const maxTracked = 16
	a, _ := newTestAuthenticator(t, s, clk, AuthenticatorConfig{
		MaxFailures: 3, Window: time.Minute, BaseDelay: time.Second, MaxDelay: time.Hour, MaxTracked: maxTracked,
	})
	// Thousands of bcrypt comparisons take long under -race, and the
	// comparison is not what this test is about.
	a.compare = func(_, password []byte) error {
		if string(password) == "correct horse" {
			return nil
		}
		return bcrypt.ErrMismatchedHashAndPassword
	}
	login := func(user, password, addr string) error {
		t.Helper()
		clk.Advance(time.Millisecond)
		_, err := a.Login(ctx, user, password, addr)
		if n := a.tracked(); n > maxTracked {
			t.Fatalf("%d keys tracked, want at most %d", n, maxTracked)
		}
		return err
	}
	for i := range 2000 {
		if err := login(fmt.Sprintf("user%d", i), "guess", fmt.Sprintf("10.0.%d.%d", i/256, i%256)); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("flood login %d: %v", i, err)
		}
	}
	// The attacked user is locked out within a full table.
	clk.Advance(30 * time.Second)
	for i := range 3 {
		if err := login("alice", "guess", fmt.Sprintf("198.51.100.%d", i)); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if err := login("alice", "correct horse", "198.51.100.9"); throttled(err) <= 0 {
		t.Fatalf("alice after 3 failures: %v, want throttled", err)
	}

	// A window after the flood it has expired, alice (whose failures came
	// later) has not. New keys replace the expired ones.
	clk.Advance(31 * time.Second)
	for i := range maxTracked - 1 {
		if err := login(fmt.Sprintf("late%d", i), "guess", ""); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	if n := a.tracked(); n != maxTracked {
		t.Errorf("%d keys tracked, want %d (alice and the late ones)", n, maxTracked)
	}
	if err := login("alice", "guess", ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("alice's 4th guess: %v", err)
	}
	if err := login("alice", "correct horse", ""); throttled(err) != 2*time.Second-time.Millisecond {
		t.Fatalf("alice after 4 failures: %v, want locked for 2s (her count survived)", err)
	}
	// A full table makes room by dropping the key forgotten soonest: the
	// first late one, not alice.
	if err := login("latest", "guess", ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	if a.t.keys["u:late0"] != nil || a.t.keys["u:alice"] == nil || a.t.keys["u:latest"] == nil {
		t.Errorf("after one more key: late0 kept %v, alice kept %v, latest kept %v",
			a.t.keys["u:late0"] != nil, a.t.keys["u:alice"] != nil, a.t.keys["u:latest"] != nil)
	}
}

func TestThrottledErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{time.Second, "auth: too many failed logins; retry in 1s"},
		{1500 * time.Millisecond, "auth: too many failed logins; retry in 2s"},
		{15 * time.Minute, "auth: too many failed logins; retry in 15m0s"},
	} {
		if got := (&ThrottledError{RetryAfter: tt.d}).Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestLockoutOverflow(t *testing.T) {
	th := newThrottle(1, time.Minute, time.Second, time.Duration(1<<62), 10)
	if got := th.lockout(1000); got != time.Duration(1<<62) {
		t.Errorf("lockout(1000) = %s, want the cap", got)
	}
	if got := th.lockout(3); got != 4*time.Second {
		t.Errorf("lockout(3) = %s, want 4s", got)
	}
}

// TestLoginReportsLockouts: OnLockout is called once per lockout begun, for
// the user name and for the address, not for failures within a lockout.
func TestLoginReportsLockouts(t *testing.T) {
	s := newMemStore()
	addUser(t, s, "alice", RoleOp, "alice-password")
	clk := newClock()
	lockouts := 0
	a, _ := newTestAuthenticator(t, s, clk, AuthenticatorConfig{MaxFailures: 2, Window: time.Minute,
		BaseDelay: time.Second, MaxDelay: 4 * time.Second, OnLockout: func() { lockouts++ }})
	login := func() { _, _ = a.Login(context.Background(), "alice", "guess", "192.0.2.1") }
	login()
	if lockouts != 0 {
		t.Fatalf("%d lockouts after one failure", lockouts)
	}
	login()
	if lockouts != 2 {
		t.Fatalf("%d lockouts after the second failure, want 2 (the user name and the address)", lockouts)
	}
	login() // refused while locked out: no failure, no lockout
	clk.Advance(2 * time.Second)
	login() // a failure while the window still holds the others: locked out again
	if lockouts != 4 {
		t.Errorf("%d lockouts, want 4", lockouts)
	}
}
