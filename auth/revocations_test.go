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
