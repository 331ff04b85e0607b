package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// startPurger runs RunPurger in a goroutine and returns a function that
// cancels it and waits for its result.
func startPurger(t *testing.T, cfg PurgerConfig) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunPurger(ctx, cfg) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestRunPurgerDeletesOnlyExpired(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	s.purgeCalled = make(chan time.Time)
	for jti, exp := range map[string]time.Time{
		"long-expired":   t0.Add(-time.Hour),
		"within-grace":   t0.Add(-30 * time.Second),
		"expires-later":  t0.Add(time.Hour),
		"expires-latest": t0.Add(3 * time.Hour),
	} {
		if err := s.Revoke(ctx, jti, exp); err != nil {
			t.Fatal(err)
		}
	}
	clk := newClock()
	tick := make(chan time.Time)
	var errs []error
	stop := startPurger(t, PurgerConfig{
		Store: s, Now: clk.Now, Tick: tick, Grace: time.Minute,
		OnError: func(err error) { errs = append(errs, err) },
	})

	// Once at start, with now - grace as the limit.
	if got := <-s.purgeCalled; !got.Equal(t0.Add(-time.Minute)) {
		t.Errorf("purge at start before %s, want %s", got, t0.Add(-time.Minute))
	}
	if diff := cmp.Diff([]string{"expires-later", "expires-latest", "within-grace"}, s.revokedJTIs()); diff != "" {
		t.Errorf("after the first purge (-want +got):\n%s", diff)
	}

	// Nothing happens without a tick, whatever the clock says.
	clk.Advance(2 * time.Hour)
	tick <- clk.Now()
	<-s.purgeCalled
	if diff := cmp.Diff([]string{"expires-latest"}, s.revokedJTIs()); diff != "" {
		t.Errorf("after a tick 2h later (-want +got):\n%s", diff)
	}

	if err := stop(); err != nil {
		t.Errorf("RunPurger after cancel: %v, want nil", err)
	}
	if len(errs) != 0 {
		t.Errorf("OnError called: %v", errs)
	}
}

func TestRunPurgerReportsErrorsAndCarriesOn(t *testing.T) {
	s := newMemStore()
	s.purgeCalled = make(chan time.Time)
	boom := errors.New("disk on fire")
	s.purgeErr = boom
	if err := s.Revoke(context.Background(), "old", t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	tick := make(chan time.Time)
	errs := make(chan error, 10)
	stop := startPurger(t, PurgerConfig{Store: s, Now: newClock().Now, Tick: tick, OnError: func(err error) { errs <- err }})
	<-s.purgeCalled
	if err := <-errs; !errors.Is(err, boom) {
		t.Errorf("OnError got %v, want the store's error", err)
	}
	tick <- t0
	<-s.purgeCalled
	if got := s.revokedJTIs(); len(got) != 0 {
		t.Errorf("after the next tick: %v left", got)
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
	if len(errs) != 0 {
		t.Errorf("more errors: %v", <-errs)
	}
}

func TestRunPurgerDefaultGrace(t *testing.T) {
	s := newMemStore()
	s.purgeCalled = make(chan time.Time)
	startPurger(t, PurgerConfig{Store: s, Now: newClock().Now, Tick: make(chan time.Time)})
	if got, want := <-s.purgeCalled, t0.Add(-DefaultPurgeGrace); !got.Equal(want) {
		t.Errorf("purge before %s, want %s", got, want)
	}
}

// TestRunPurgerClosedTick: a closed Tick ends the purges, not RunPurger.
func TestRunPurgerClosedTick(t *testing.T) {
	s := newMemStore()
	s.purgeCalled = make(chan time.Time, 10)
	tick := make(chan time.Time)
	close(tick)
	stop := startPurger(t, PurgerConfig{Store: s, Now: newClock().Now, Tick: tick})
	<-s.purgeCalled
	if err := stop(); err != nil {
		t.Error(err)
	}
	if n := len(s.purgeCalled); n != 0 {
		t.Errorf("%d purges after Tick was closed", n)
	}
}

// TestRunPurgerRealTicker runs on a real ticker with a short interval and
// stops on cancel.
func TestRunPurgerRealTicker(t *testing.T) {
	s := newMemStore()
	s.purgeCalled = make(chan time.Time)
	stop := startPurger(t, PurgerConfig{Store: s, Interval: time.Millisecond})
	for range 3 {
		<-s.purgeCalled
	}
	go func() { // a purge may be under way when stop cancels
		for range s.purgeCalled {
		}
	}()
	if err := stop(); err != nil {
		t.Error(err)
	}
	close(s.purgeCalled)
}

func TestRunPurgerConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  PurgerConfig
	}{
		{"no store", PurgerConfig{Interval: time.Hour}},
		{"no interval and no tick", PurgerConfig{Store: newMemStore()}},
		{"negative interval", PurgerConfig{Store: newMemStore(), Interval: -time.Hour}},
		{"negative grace", PurgerConfig{Store: newMemStore(), Interval: time.Hour, Grace: -time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := RunPurger(context.Background(), tt.cfg); err == nil {
				t.Error("RunPurger accepted the configuration")
			}
		})
	}
}
