package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/internal/pgtest"
)

// TestReplicasSeeRevocationsAndRemovals: two stores on one database are
// two replicas. What one revokes or removes, the other refuses: users and
// components at once (they are read from the database on every request),
// revocations after its next refresh (RunRefresher's interval is the
// bound), and so are revocations Airflow's api-server writes.
func TestReplicasSeeRevocationsAndRemovals(t *testing.T) {
	ctx := context.Background()
	a, af := newAuthDB(t)
	u := af.URL
	b := openDB(t, u)
	ra, err := auth.LoadRevocations(ctx, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := auth.LoadRevocations(ctx, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name string
		// do acts on replica a (or as Airflow, on the database).
		do func(t *testing.T)
		// seenAtOnce checks replica b without a refresh; seenAfterRefresh
		// after one.
		seenAtOnce, seenAfterRefresh func() bool
	}{
		{
			name: "revocation on a replica",
			do: func(t *testing.T) {
				if err := ra.Revoke(ctx, "11111111111111111111111111111111", exp); err != nil {
					t.Fatal(err)
				}
			},
			seenAfterRefresh: func() bool { return rb.Revoked("11111111111111111111111111111111") },
		},
		{
			name: "revocation by Airflow's api-server",
			do: func(t *testing.T) {
				pgtest.Exec(t, u, `INSERT INTO revoked_token (jti, exp) VALUES ('22222222222222222222222222222222', now() + interval '1 hour')`)
			},
			seenAfterRefresh: func() bool { return rb.Revoked("22222222222222222222222222222222") },
		},
		{
			name: "user removal",
			do: func(t *testing.T) {
				if err := a.AddUser(ctx, auth.User{Name: "carol", Role: auth.RoleAdmin, PasswordHash: "h", CreatedAt: t0}); err != nil {
					t.Fatal(err)
				}
				if _, err := b.User(ctx, "carol"); err != nil {
					t.Fatalf("b does not see the new user: %v", err)
				}
				if _, err := a.RemoveUser(ctx, "carol", t0); err != nil {
					t.Fatal(err)
				}
			},
			seenAtOnce: func() bool { _, err := b.User(ctx, "carol"); return errors.Is(err, auth.ErrNotFound) },
		},
		{
			name: "component deletion",
			do: func(t *testing.T) {
				c := auth.Component{ID: "c-1", Kind: auth.Triggerer, Name: "t", CreatedAt: t0}
				if err := a.AddComponent(ctx, c); err != nil {
					t.Fatal(err)
				}
				if err := a.DeleteComponent(ctx, c.ID); err != nil {
					t.Fatal(err)
				}
			},
			seenAtOnce: func() bool { _, err := b.Component(ctx, "c-1"); return errors.Is(err, auth.ErrNotFound) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.do(t)
			if tc.seenAtOnce != nil && !tc.seenAtOnce() {
				t.Error("replica b does not see it at once")
			}
			if tc.seenAfterRefresh != nil {
				if tc.seenAfterRefresh() {
					t.Error("replica b sees it before a refresh: the test does not test the refresh")
				}
				if err := rb.Refresh(ctx); err != nil {
					t.Fatal(err)
				}
				if !tc.seenAfterRefresh() {
					t.Error("replica b does not see it after a refresh")
				}
			}
		})
	}
}

// TestRefresherBound: with RunRefresher at its interval, a revocation on
// one replica is refused by the other within the interval plus one read.
func TestRefresherBound(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, af := newAuthDB(t)
	u := af.URL
	b := openDB(t, u)
	ra, err := auth.LoadRevocations(ctx, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := auth.LoadRevocations(ctx, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	const interval = 100 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- auth.RunRefresher(ctx, auth.RefresherConfig{Revocations: rb, Interval: interval}) }()
	start := time.Now()
	if err := ra.Revoke(ctx, "33333333333333333333333333333333", start.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for !rb.Revoked("33333333333333333333333333333333") {
		if time.Since(start) > 20*interval {
			t.Fatalf("not refused by the other replica after %s", time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("refused by the other replica after %s (interval %s)", time.Since(start), interval)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
