package auth

import (
	"context"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"
)

// costRecorder wraps the bcrypt comparison to record the cost of each hash
// compared: equal costs mean equal work, whatever the machine's speed.
type costRecorder struct {
	mu    sync.Mutex
	costs []int
	next  func(hash, password []byte) error
}

func (r *costRecorder) compare(hash, password []byte) error {
	c, err := bcrypt.Cost(hash)
	if err != nil {
		c = -1
	}
	r.mu.Lock()
	r.costs = append(r.costs, c)
	r.mu.Unlock()
	return r.next(hash, password)
}

func (r *costRecorder) take() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.costs) != 1 {
		return -len(r.costs) // not one comparison: never equal to a cost
	}
	c := r.costs[0]
	r.costs = nil
	return c
}

// TestLoginCostSameForUnknownUsers: after [taskgate] bcrypt_cost changes, an
// unknown user's login still costs what a known user's does. The review
// measured 4 ms against 260 ms: the dummy hash had the configured cost, the
// stored hashes the one they were made with.
func TestLoginCostSameForUnknownUsers(t *testing.T) {
	const low, high = bcrypt.MinCost, bcrypt.MinCost + 2
	for _, tt := range []struct {
		name               string
		stored, configured int
	}{
		{"cost lowered after the user was added", high, low},
		{"cost raised after the user was added", low, high},
		{"cost unchanged", low, low},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newMemStore()
			u, err := NewUser("alice", RoleOp, "alice-password", tt.stored, t0)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.AddUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			a, err := NewAuthenticator(AuthenticatorConfig{Store: s, Now: newClock().Now, BcryptCost: tt.configured, MaxFailures: 100})
			if err != nil {
				t.Fatal(err)
			}
			rec := &costRecorder{next: a.compare}
			a.compare = rec.compare
			login := func(user, password string) int {
				t.Helper()
				_, _ = a.Login(ctx, user, password, "192.0.2.1")
				return rec.take()
			}
			// Before alice logs in: an unknown user costs at least what
			// alice's stored hash does.
			unknown, known := login("nobody", "alice-password"), login("alice", "wrong-password")
			if want := max(tt.stored, tt.configured); unknown != want || known != tt.stored {
				t.Errorf("before alice's login: unknown user cost %d, known user cost %d; want %d and %d",
					unknown, known, want, tt.stored)
			}
			// Her successful login rehashes at the configured cost; from
			// then on every path costs the same.
			if _, err := a.Login(ctx, "alice", "alice-password", "192.0.2.1"); err != nil {
				t.Fatalf("alice's login: %v", err)
			}
			rec.take()
			if c, _ := bcrypt.Cost([]byte(s.users["alice"].PasswordHash)); c != tt.configured {
				t.Errorf("alice's stored hash cost %d after her login, want the configured %d", c, tt.configured)
			}
			got := map[string]int{
				"known user, wrong password": login("alice", "wrong-password"),
				"known user, right password": login("alice", "alice-password"),
				"unknown user":               login("nobody", "alice-password"),
				"impossible name":            login("no body!", "alice-password"),
			}
			want := map[string]int{
				"known user, wrong password": tt.configured, "known user, right password": tt.configured,
				"unknown user": tt.configured, "impossible name": tt.configured,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("bcrypt cost per login (-want +got):\n%s", diff)
			}
		})
	}
}
