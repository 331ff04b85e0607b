package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRevocationUntil(t *testing.T) {
	const longest = time.Hour
	tests := []struct {
		name    string
		exp     *time.Time
		want    time.Time
		wantErr error
	}{
		{"no exp: the longest token lifetime", nil, t0.Add(longest), nil},
		{"future exp kept", ptr(t0.Add(10 * time.Minute)), t0.Add(10 * time.Minute), nil},
		{"exp now kept", ptr(t0), t0, nil},
		{"exp within the grace kept", ptr(t0.Add(-DefaultPurgeGrace)), t0.Add(-DefaultPurgeGrace), nil},
		{"exp beyond the grace refused", ptr(t0.Add(-DefaultPurgeGrace - time.Second)), time.Time{}, ErrRevocationExpired},
		{"exp long past refused", ptr(t0.Add(-24 * time.Hour)), time.Time{}, ErrRevocationExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RevocationUntil(tt.exp, t0, longest)
			if !errors.Is(err, tt.wantErr) || !got.Equal(tt.want) {
				t.Errorf("RevocationUntil = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestRevocations(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	clk := newClock()
	if err := s.Revoke(ctx, "stored-before-start", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r, err := LoadRevocations(ctx, s, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Revoked("stored-before-start") || r.Revoked("other") || r.Revoked("") {
		t.Fatal("loaded set wrong")
	}

	if err := r.Revoke(ctx, "exec-jti", t0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !r.Revoked("exec-jti") {
		t.Error("a revoked jti is not refused")
	}
	if ok, _ := s.IsRevoked(ctx, "exec-jti"); !ok {
		t.Error("the revocation did not reach the store")
	}
	// A second revocation with an earlier exp keeps the later one.
	if err := r.Revoke(ctx, "exec-jti", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := (*r.set.Load())["exec-jti"]; !got.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("exp after a shorter second revocation = %v", got)
	}

	// Purging forgets expired entries in the store and in memory alike.
	if _, err := r.PurgeRevocations(ctx, t0.Add(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if r.Revoked("exec-jti") || !r.Revoked("stored-before-start") {
		t.Error("purge: want exec-jti forgotten and stored-before-start kept")
	}
	if ok, _ := s.IsRevoked(ctx, "exec-jti"); ok {
		t.Error("purge did not reach the store")
	}

	// A later revocation drops entries long expired on the way.
	clk.Advance(2*time.Hour + DefaultPurgeGrace + time.Second)
	if err := r.Revoke(ctx, "late", clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r.Revoked("stored-before-start") || !r.Revoked("late") {
		t.Error("an entry long expired stayed in memory")
	}
}

func TestRevocationsStoreFailure(t *testing.T) {
	s := &failingRevocations{memStore: newMemStore()}
	r, err := LoadRevocations(context.Background(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Revoke(context.Background(), "j", t0); err == nil || r.Revoked("j") {
		t.Errorf("a revocation the store refused: err %v, revoked in memory %v", err, r.Revoked("j"))
	}
}

type failingRevocations struct{ *memStore }

func (failingRevocations) Revoke(context.Context, string, time.Time) error {
	return errors.New("disk full")
}

// TestRefresh: a set refreshed from a store other processes also write
// takes in their revocations, keeps the later exp, and forgets nothing
// another process purged before its own purge does.
func TestRefresh(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// before runs on the store after the set was loaded, as another
		// process would.
		before  func(s *memStore)
		want    map[string]time.Time
		wantErr bool
	}{
		{"nothing new", func(*memStore) {}, map[string]time.Time{"mine": t0.Add(time.Hour)}, false},
		{"revoked elsewhere", func(s *memStore) { s.revoked["theirs"] = t0.Add(2 * time.Hour) },
			map[string]time.Time{"mine": t0.Add(time.Hour), "theirs": t0.Add(2 * time.Hour)}, false},
		{"later exp elsewhere", func(s *memStore) { s.revoked["mine"] = t0.Add(3 * time.Hour) },
			map[string]time.Time{"mine": t0.Add(3 * time.Hour)}, false},
		{"purged elsewhere stays until purged here", func(s *memStore) { delete(s.revoked, "mine") },
			map[string]time.Time{"mine": t0.Add(time.Hour)}, false},
		{"store unreachable keeps the set", func(s *memStore) { s.readErr = errors.New("down") },
			map[string]time.Time{"mine": t0.Add(time.Hour)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newMemStore()
			r, err := LoadRevocations(ctx, s, newClock().Now)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Revoke(ctx, "mine", t0.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			s.mu.Lock()
			tc.before(s)
			s.mu.Unlock()
			if err := r.Refresh(ctx); (err != nil) != tc.wantErr {
				t.Fatalf("Refresh: %v, want error %v", err, tc.wantErr)
			}
			got := *r.set.Load()
			if len(got) != len(tc.want) {
				t.Errorf("set %v, want %v", got, tc.want)
			}
			for jti, exp := range tc.want {
				if !got[jti].Equal(exp) || !r.Revoked(jti) {
					t.Errorf("set[%s] = %v, want %v", jti, got[jti], exp)
				}
			}
		})
	}
}

func TestRunRefresher(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := newMemStore()
	r, err := LoadRevocations(ctx, s, newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	tick := make(chan time.Time)
	errs := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		done <- RunRefresher(ctx, RefresherConfig{Revocations: r, Tick: tick, OnError: func(err error) { errs <- err }})
	}()
	_ = s.Revoke(ctx, "theirs", t0.Add(time.Hour))
	tick <- t0
	tick <- t0 // the first refresh has finished once the second tick is taken
	if !r.Revoked("theirs") {
		t.Error("a revocation in the store is not refused after a refresh")
	}
	s.mu.Lock()
	s.readErr = errors.New("down")
	s.mu.Unlock()
	tick <- t0
	if err := <-errs; err == nil {
		t.Error("OnError got nil")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunRefresher: %v", err)
	}
	for _, cfg := range []RefresherConfig{{}, {Revocations: r}} {
		if err := RunRefresher(context.Background(), cfg); err == nil {
			t.Errorf("RunRefresher(%+v) accepted an invalid configuration", cfg)
		}
	}
}
