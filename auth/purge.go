package auth

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A revocation names any token by its jti: a REST token, or a task or
// component token (execution or workload scope). It is needed only until
// the token it names expires, so RunPurger deletes the expired ones.

// DefaultPurgeGrace is how long a revocation outlives its token's exp when
// PurgerConfig.Grace is zero: well above the default clock-skew leeway of
// token validation ([api_auth] jwt_leeway, 10 s).
const DefaultPurgeGrace = 5 * time.Minute

// RevocationPurger deletes expired revocations: a Store, or the
// Revocations a running gateway checks, which also forgets them in memory.
type RevocationPurger interface {
	PurgeRevocations(ctx context.Context, expiredBefore time.Time) (int, error)
}

// PurgerConfig configures RunPurger.
type PurgerConfig struct {
	// Store holds the revocations. Required.
	Store RevocationPurger
	// Interval is the time between purges; the gateway passes
	// 2 × [api_auth] jwt_expiration_time. Required unless Tick is set.
	Interval time.Duration
	// Now is the clock that decides what has expired; nil means time.Now.
	Now func() time.Time
	// Tick, when set, replaces the ticker: each value received starts a
	// purge and Interval is ignored. Tests drive the purger with it.
	// Closing it ends the purges; RunPurger still returns only when ctx is
	// done.
	Tick <-chan time.Time
	// OnError receives the error of a failed purge (the purger carries on
	// and tries again at the next tick); nil drops it. auth does not log:
	// the caller does, with its logger.
	OnError func(error)
	// Grace keeps a revocation this long past its exp, because the
	// validator still accepts a token within its clock-skew leeway after
	// exp: deleting the revocation at exp would let a revoked token back in
	// for that long. Zero means DefaultPurgeGrace; set it to at least the
	// configured leeway.
	Grace time.Duration
}

// RunPurger deletes expired revocations once at start and then at every
// tick, until ctx is done; it returns nil then. It returns an error at once
// only for an invalid configuration. Errors of individual purges go to
// OnError and do not stop it.
func RunPurger(ctx context.Context, cfg PurgerConfig) error {
	if cfg.Store == nil {
		return errors.New("auth: purger needs a store")
	}
	if cfg.Grace < 0 {
		return fmt.Errorf("auth: purge grace %s is negative", cfg.Grace)
	}
	grace := cfg.Grace
	if grace == 0 {
		grace = DefaultPurgeGrace
	}
	tick, stop, err := ticks(cfg.Tick, cfg.Interval, "purge")
	if err != nil {
		return err
	}
	defer stop()
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	purge := func() {
		if _, err := cfg.Store.PurgeRevocations(ctx, now().Add(-grace)); err != nil && ctx.Err() == nil && cfg.OnError != nil {
			cfg.OnError(fmt.Errorf("auth: purge revocations: %w", err))
		}
	}
	purge()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-tick:
			if !ok {
				tick = nil // a closed Tick stops the purges, not the wait for ctx
				continue
			}
			purge()
		}
	}
}

// ticks is the tick source of a periodic job: tick when a test gives one,
// else a ticker every interval, which stop releases. what names the job in
// the error about an interval that is not positive.
func ticks(tick <-chan time.Time, interval time.Duration, what string) (<-chan time.Time, func(), error) {
	if tick != nil {
		return tick, func() {}, nil
	}
	if interval <= 0 {
		return nil, nil, fmt.Errorf("auth: %s interval %s is not positive", what, interval)
	}
	t := time.NewTicker(interval)
	return t.C, t.Stop, nil
}
