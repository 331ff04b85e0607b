package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// requireToken enforces one route's policy: a valid token of an allowed type,
// whose subject matches the path's task instance when the policy says so,
// and whose try stands in a phase the route admits (see scopes.Phase).
//
// The token is validated before any limit is consulted: the auth-failure
// limit of an address only changes the answer to a token that failed, so
// garbage sent from a worker's address (or from anyone behind the same NAT)
// can never make that worker's valid requests fail.
//
// A server without the validator, the store or the revocation list it reads
// is refused here, when the route is registered.
func (s *Server) requireToken(p scopes.Policy) (echo.MiddlewareFunc, error) {
	switch {
	case s.cfg.Validator == nil:
		return nil, &ConfigError{Field: "Validator", Problem: "is required by the task-token check"}
	case s.cfg.Store == nil:
		return nil, &ConfigError{Field: "Store", Problem: "is required by the task-token check"}
	case s.revoked == nil:
		return nil, &ConfigError{Field: "Revocations", Problem: "is required by the task-token check"}
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			raw := bearer(c.Request())
			if raw == "" {
				s.met.TokenDenied("execution", "missing")
				return scopes.ErrMissingToken
			}
			ctx := c.Request().Context()
			claims, err := s.cfg.Validator.Validate(ctx, raw)
			if err != nil {
				refuse(c, err.Error())
				s.met.TokenDenied("execution", "invalid")
				if limited := s.addressFailed(c); limited != nil {
					return limited
				}
				return scopes.ErrInvalidToken
			}
			// A revoked token is refused like any invalid one; checked
			// before anything else can renew it. One map lookup in memory.
			// The failure counts against the token's subject, not the
			// address: a worker host runs many tasks besides this one.
			if s.revoked.Revoked(claims.ID) {
				refuse(c, "token revoked")
				s.met.TokenDenied("execution", "revoked")
				s.authFailed(subKey, claims.Subject)
				return scopes.ErrInvalidToken
			}
			if d := s.limited(subKey, claims.Subject); d > 0 {
				return retryLater(c, d)
			}
			// One clock read places the try and decides renewal: reading
			// the clock is not free (a virtual machine's clock source). A
			// connection test's or callback's token names no try.
			now := s.now()
			phase := scopes.PhaseNone
			switch {
			case p.Self == scopes.SelfJob,
				p.Self == scopes.SelfNone && claims.Type() == scopes.DagProcessor && p.Admits(scopes.DagProcessor):
				// A DAG processor token's try is its Job.
				if phase, err = s.jobPhase(ctx, claims); err != nil {
					return err
				}
			case p.Self == scopes.SelfNone:
				if phase, err = s.phaseAt(ctx, claims, now); err != nil {
					return err
				}
			}
			if d := scopes.Decide(p, claims, c.Param(p.SelfParam()), phase); d != nil {
				s.met.TokenDenied("execution", denialReason(d))
				// A try that moved on is no misuse of the token: counting it
				// would turn the 409/410 that stops its worker into a 429
				// the worker retries.
				if !d.OfTry() {
					s.authFailed(subKey, claims.Subject)
				}
				if d.Reason == scopes.ReasonInvalidScope {
					refuse(c, "token scope names no token type")
				}
				return d
			}
			// The bundle a dag_processor token reads for, checked once its
			// Job is known to be open, as Airflow resolves it after the
			// token (SelectedDagBundle).
			// (Only routes that ask for a bundle read the header.)
			if p.DagBundle {
				if _, d := scopes.SelectBundle(p, claims, c.Request().Header.Get(scopes.BundleHeader)); d != nil {
					s.met.TokenDenied("execution", denialReason(d))
					// A missing header is a malformed request; naming a
					// bundle the token was not granted is a misuse of it.
					if d.Reason == scopes.ReasonBundleNotGranted {
						s.authFailed(subKey, claims.Subject)
					}
					return d
				}
			}
			stateOf(c).claims = claims
			s.renew.ArmAt(c, now)
			if err := s.enter(c); err != nil {
				return err
			}
			defer s.leave()
			return next(c)
		}
	}, nil
}

// phaseOf places the try a task token names (scopes.PhaseNone for a
// component token, or claims Decide refuses anyway), or the callback an
// execution token names (workload.CallbackPhase).
func (s *Server) phaseOf(ctx context.Context, claims *scopes.Claims) (scopes.Phase, error) {
	return s.phaseAt(ctx, claims, s.now())
}

// phaseAt is phaseOf at the time now.
func (s *Server) phaseAt(ctx context.Context, claims *scopes.Claims, now time.Time) (scopes.Phase, error) {
	if claims == nil || claims.Component() != "" || !claims.Type().Known() {
		return scopes.PhaseNone, nil
	}
	switch claims.Type() {
	case scopes.DagProcessorSession, scopes.DagProcessor:
		// No try: refused by type on every route a task's phase decides.
		return scopes.PhaseNone, nil
	}
	if s.running != nil && s.running.running(claims.Subject) {
		return scopes.PhaseRunning, nil
	}
	// CanonicalUUID refuses what CheckClaims would (a subject that is no
	// UUID), with one parse instead of two.
	id, ok := scopes.CanonicalUUID(claims.Subject)
	if !ok {
		return scopes.PhaseNone, nil
	}
	var epoch uint64
	if s.running != nil {
		epoch = s.running.epoch(id)
	}
	st, err := s.cfg.Store.TryStatus(ctx, id)
	if errors.Is(err, workload.ErrNotFound) {
		if claims.Type() == scopes.Execution {
			// The execution token of a callback's /run names the callback.
			cb, err := s.cfg.Store.Callback(ctx, id)
			if err == nil {
				return workload.CallbackPhase(cb), nil
			} else if !errors.Is(err, workload.ErrNotFound) {
				return scopes.PhaseNone, err
			}
		}
		return workload.PhaseOf(nil, now, s.cfg.TaskOvertime), nil
	} else if err != nil {
		return scopes.PhaseNone, err
	}
	phase := workload.PhaseOf(&st, now, s.cfg.TaskOvertime)
	if phase == scopes.PhaseRunning && s.running != nil {
		s.running.remember(claims.Subject, id, epoch)
	}
	return phase, nil
}

// jobPhase places a dag_processor token by its Job (workload.JobPhase);
// any other token has no Job, and Decide refuses it by its type.
func (s *Server) jobPhase(ctx context.Context, claims *scopes.Claims) (scopes.Phase, error) {
	if claims == nil || claims.Type() != scopes.DagProcessor {
		return scopes.PhaseNone, nil
	}
	id, ok := claims.JobID()
	if !ok {
		return scopes.PhaseNone, nil
	}
	j, err := s.cfg.Store.Job(ctx, id)
	if errors.Is(err, workload.ErrNotFound) {
		return scopes.PhaseUnknown, nil
	} else if err != nil {
		return scopes.PhaseNone, err
	}
	return workload.JobPhase(j, claims.Subject), nil
}
