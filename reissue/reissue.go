// Package reissue decides when a task's execution token is renewed and
// hands the renewed token back in the Refreshed-API-Token response header
// (Renewer.Arm, called by the route's token check).
//
// A running task never asks for a new token: it keeps calling the API, and
// whichever response finds its token close to expiry carries a fresh one.
// The decision uses the claims the gateway already validated for the request.
// Validating the token a second time after the handler ran — what Airflow's
// middleware did — drops the renewal of a token that expired during a slow
// request (Airflow issue #67939), so this package never parses tokens.
package reissue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/scopes"
)

// Header is the response header that carries a renewed token. Airflow's
// Task SDK swaps its bearer token for this value.
const Header = "Refreshed-API-Token"

// minThreshold is the floor of the renewal window: short-lived tokens are
// renewed when 30 s or less remain, so a client has time to use the new one.
const minThreshold = 30 * time.Second

// Threshold is how much remaining life makes a token due: 20 % of the life it
// was issued with (whole seconds, as Airflow computes it), but at least 30 s.
func Threshold(c *scopes.Claims) time.Duration {
	life := int64(c.Lifetime() / time.Second)
	t := time.Duration(life*20/100) * time.Second
	return max(t, minThreshold)
}

// Due reports whether the token described by c should be renewed at now.
// Only execution tokens are renewed. A workload token is never renewed: it is
// exchanged once, on /run, and renewing it would let a queued workload
// outlive the queue timeout it was issued for.
func Due(c *scopes.Claims, now time.Time) bool {
	if c == nil || c.Type() != scopes.Execution {
		return false
	}
	return c.ExpiresAt.Sub(now) <= Threshold(c)
}

// Signer mints a token carrying base's subject, scope and extra claims, with
// fresh jti, iat, nbf and exp.
type Signer interface {
	Sign(base *scopes.Claims, lifetime time.Duration) (string, *scopes.Claims, error)
}

// Config configures the middleware.
type Config struct {
	// Signer mints renewed tokens. Required.
	Signer Signer
	// Lifetime of a renewed token ([execution_api] jwt_expiration_time).
	// Required.
	Lifetime time.Duration
	// Claims returns the validated claims of the request, or nil when the
	// request carried no valid token. Required.
	Claims func(c echo.Context) *scopes.Claims
	// Renewable, when set, is asked before a due token is renewed; returning
	// false withholds renewal (for a task instance that already finished).
	// It runs only for due tokens, which keeps it off the hot path.
	Renewable func(ctx context.Context, c *scopes.Claims) bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives renewal failures. Default: no logging.
	Logger *zap.Logger
	// OnRenew, when set, is called after each token renewed (metrics).
	OnRenew func()
}

// ErrIncomplete is wrapped by New's error for a Config that lacks a
// required field.
var ErrIncomplete = errors.New("reissue: incomplete config")

// Renewer renews due execution tokens on responses (see Arm).
type Renewer struct {
	cfg Config
	now func() time.Time
	log *zap.Logger
}

// New checks cfg and returns its Renewer. A Config without a required field
// is an error here, at start-up, rather than a panic or a dead token at the
// first due renewal.
func New(cfg Config) (*Renewer, error) {
	switch {
	case cfg.Signer == nil:
		return nil, fmt.Errorf("%w: Signer is required", ErrIncomplete)
	case cfg.Claims == nil:
		return nil, fmt.Errorf("%w: Claims is required", ErrIncomplete)
	case cfg.Lifetime <= 0:
		return nil, fmt.Errorf("%w: Lifetime must be positive, not %v", ErrIncomplete, cfg.Lifetime)
	}
	r := &Renewer{cfg: cfg, now: cfg.Now, log: cfg.Logger}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	return r, nil
}

// Arm renews the request's token on its response if it is due, called once
// the request's claims are known (after its token was checked): a token
// that is not due costs a clock read, and no hook on the response. A due
// token is renewed when the response is written, unless the answer is 401
// or 403: a refused request must not be a way to obtain a token.
func (r *Renewer) Arm(c echo.Context) { r.ArmAt(c, r.now()) }

// ArmAt is Arm with the time now read by the caller, from the same clock
// (Config.Now), so that one reading serves its other checks too.
func (r *Renewer) ArmAt(c echo.Context, now time.Time) {
	if !Due(r.cfg.Claims(c), now) {
		return
	}
	res := c.Response()
	res.Before(func() { r.renew(c, res) })
}

// renew sets the renewed token on res, if the request's token is due and
// the answer is no refusal.
func (r *Renewer) renew(c echo.Context, res *echo.Response) {
	if res.Status == http.StatusUnauthorized || res.Status == http.StatusForbidden {
		return
	}
	claims := r.cfg.Claims(c)
	if !Due(claims, r.now()) {
		return
	}
	if res.Header().Get(Header) != "" {
		return // the handler already issued one (/run token swap)
	}
	if r.cfg.Renewable != nil && !r.cfg.Renewable(c.Request().Context(), claims) {
		return
	}
	tok, minted, err := r.cfg.Signer.Sign(claims, r.cfg.Lifetime)
	if err != nil {
		r.log.Warn("token renewal failed", zap.String("jti", claims.ID), zap.Error(err))
		return
	}
	res.Header().Set(Header, tok)
	if r.cfg.OnRenew != nil {
		r.cfg.OnRenew()
	}
	r.log.Debug("token renewed", zap.String("jti", claims.ID), zap.String("new_jti", minted.ID))
}
