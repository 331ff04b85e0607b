package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/operator"
	"github.com/taskgate/taskgate/reissue"
	"github.com/taskgate/taskgate/scopes"
)

// REST (operator) tokens are a separate kind from task tokens: their own
// audience ([api_auth] jwt_audience), lifetimes ([api_auth]
// jwt_expiration_time, jwt_cli_expiration_time), a role claim, and a
// revocation list. They never pass the Execution API, nor task tokens the
// REST API: each side validates with its own audience.

const (
	// cookieName carries a browser's REST token, as Airflow's UI does.
	cookieName = "_token"
	// roleClaim holds the user's role in a REST token.
	roleClaim = scopes.RoleClaim
	// generationClaim holds the user's auth.User.Generation: a token of an
	// earlier holder of the same name does not match the current user.
	generationClaim = scopes.GenerationClaim
)

// Authenticator checks a user's password, slowing down guessing.
type Authenticator interface {
	Login(ctx context.Context, username, password, remoteAddr string) (*auth.User, error)
}

var (
	errNotAuthenticated = &APIError{Status: http.StatusUnauthorized, Detail: "Not authenticated"}
	errInvalidJWT       = &APIError{Status: http.StatusUnauthorized, Detail: "Invalid JWT token"}
	errRevoked          = &APIError{Status: http.StatusUnauthorized, Detail: "Token has been revoked"}
	errForbidden        = &APIError{Status: http.StatusForbidden, Detail: "Forbidden"}
	errBadCredentials   = &APIError{Status: http.StatusUnauthorized, Detail: "Invalid username or password"}
)

// restToken finds a REST token in the order the REST API accepts it: the
// Authorization header, the token query parameter, the _token cookie. The
// query parameter is honoured on reads only: a URL ends up in proxy logs and
// browser history, which is tolerable for a link to a page, not for writes.
func restToken(r *http.Request) (raw string, fromCookie bool) {
	if t := bearer(r); t != "" {
		return t, false
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if t := r.URL.Query().Get("token"); t != "" {
			return t, false
		}
	}
	if ck, err := r.Cookie(cookieName); err == nil && ck.Value != "" {
		return ck.Value, true
	}
	return "", false
}

// roleOf returns the role a REST token carries.
func roleOf(c *scopes.Claims) (auth.Role, bool) {
	s, _ := c.Extra[roleClaim].(string)
	r, err := auth.ParseRole(s)
	return r, err == nil
}

// requireRole admits REST requests that decideREST allows for a route whose
// least role is min: it gathers the facts, asks, and acts on the answer. A
// browser's cookie token that is close to expiry is re-issued in a fresh
// cookie.
//
// An unknown min, which no token could ever reach, and a server without
// the validator, auth store, signer or revocation list the check uses are
// refused here, when the route is registered.
func (s *Server) requireRole(min auth.Role) (echo.MiddlewareFunc, error) {
	if _, err := auth.ParseRole(string(min)); err != nil {
		return nil, fmt.Errorf("gateway: route role: %w", err)
	}
	switch {
	case s.cfg.RESTValidator == nil:
		return nil, &ConfigError{Field: "RESTValidator", Problem: "is required by the REST role check"}
	case s.cfg.Auth == nil:
		return nil, &ConfigError{Field: "Auth", Problem: "is required by the REST role check"}
	case s.cfg.RESTSigner == nil:
		return nil, &ConfigError{Field: "RESTSigner", Problem: "is required by the REST role check (cookie renewal)"}
	case s.revoked == nil:
		return nil, &ConfigError{Field: "Revocations", Problem: "is required by the REST role check"}
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			in := s.restFacts(c, min)
			if d := decideREST(in); d != nil {
				return s.refuseREST(c, in, d)
			}
			stateOf(c).restClaims = in.Claims
			if in.Request.FromCookie {
				s.refreshCookie(c, in.Claims)
			}
			if err := s.enter(c); err != nil {
				return err
			}
			defer s.leave()
			return next(c)
		}
	}, nil
}

// restFacts looks up what decideREST needs to know about the request: the
// token and its claims, and, once the token validated, its revocation and its
// user as stored now. The user is read for every token that validated,
// revoked ones too: a token only this server could have signed costs one
// read, and which refusal answers is the decision's, not the lookups' order.
func (s *Server) restFacts(c echo.Context, min auth.Role) restInput {
	r := c.Request()
	raw, fromCookie := restToken(r)
	in := restInput{HasToken: raw != "", MinRole: min, Request: restRequestOf(r, fromCookie)}
	if !in.HasToken {
		return in
	}
	ctx := r.Context()
	claims, err := s.cfg.RESTValidator.Validate(ctx, raw)
	if err != nil {
		in.ValidateErr = err
		return in
	}
	in.Claims = claims
	in.Revoked = s.revoked.Revoked(claims.ID)
	in.User, in.UserErr = s.cfg.Auth.User(ctx, claims.Subject)
	return in
}

// refuseREST answers a request decideREST refused: it records the reason for
// the access log, names the user when the token's is confirmed, and counts a
// token that failed validation against the client's address. As for task
// tokens, the address's limit only answers tokens that fail (see
// requireToken).
func (s *Server) refuseREST(c echo.Context, in restInput, d *restDenial) error {
	if r := restDenialReason(d.Rule); r != "" {
		s.met.TokenDenied("rest", r)
	}
	if d.LogReason != "" {
		refuse(c, d.LogReason)
	}
	if d.identified() {
		stateOf(c).restClaims = in.Claims
	}
	if d.countsAgainstAddress() {
		if limited := s.addressFailed(c); limited != nil {
			return limited
		}
	}
	return d.Err
}

// refreshCookie re-issues a browser's cookie token on the way out when it is
// close to expiry (the renewal rule of execution tokens), so an active
// session does not end mid-use.
//
// The new token keeps the lifetime class of the one it renews: its life is
// the presented token's exp − iat (a CLI token stays a CLI token), capped by
// the longest REST lifetime configured now, so that lowering a lifetime
// also shortens the renewals of tokens issued before.
//
// A token that the request itself revoked (POST /auth/logout, an admin
// revoking their own jti) is never renewed: the revocation list is
// consulted again after the handler ran. That lookup happens only for a
// due token, once per token life.
func (s *Server) refreshCookie(c echo.Context, claims *scopes.Claims) {
	res := c.Response()
	res.Before(func() {
		if res.Status == http.StatusUnauthorized || res.Status == http.StatusForbidden {
			return
		}
		if stateOf(c).loggedOut || claims.ExpiresAt.Sub(s.now()) > reissue.Threshold(claims) {
			return
		}
		if revoked, err := s.cfg.Auth.IsRevoked(c.Request().Context(), claims.ID); revoked || err != nil {
			return
		}
		life := min(claims.Lifetime(), max(s.cfg.APITokenLifetime, s.cfg.CLITokenLifetime))
		if life <= 0 {
			life = s.cfg.APITokenLifetime
		}
		tok, _, err := s.cfg.RESTSigner.Sign(claims, life)
		if err != nil {
			s.log.Warn("cookie renewal failed", zap.String("jti", claims.ID), zap.Error(err))
			return
		}
		s.setTokenCookie(c, tok, life)
	})
}

// setTokenCookie sets the browser's token cookie: HttpOnly so scripts cannot
// read it, SameSite=Lax against cross-site form posts, Secure when served
// over TLS.
func (s *Server) setTokenCookie(c echo.Context, token string, life time.Duration) {
	c.SetCookie(&http.Cookie{
		Name: cookieName, Value: token, Path: "/", MaxAge: int(life / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: c.Request().TLS != nil,
	})
}

// handleLogin is POST /auth/token (browser and API clients: the long
// lifetime, plus the cookie) and POST /auth/token/cli (the short lifetime,
// no cookie).
func (s *Server) handleLogin(cli bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		if d := decideRESTRequest(restRequestOf(c.Request(), false)); d != nil {
			return d
		}
		o, err := readObject(c)
		if err != nil {
			return err
		}
		user := o.str("username", true, false)
		pass := o.str("password", true, false)
		o.forbidExtra()
		if verr := o.err(); verr != nil {
			return verr
		}
		u, err := s.cfg.Authenticator.Login(c.Request().Context(), *user, *pass, c.RealIP())
		var throttled *auth.ThrottledError
		switch {
		case errors.As(err, &throttled):
			s.met.LoginThrottled()
			secs := int(math.Ceil(throttled.RetryAfter.Seconds()))
			c.Response().Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			return &APIError{Status: http.StatusTooManyRequests, Detail: "Too many failed login attempts; retry later"}
		case errors.Is(err, auth.ErrBadCredentials):
			// The attempted name may be a password typed into the wrong
			// field: the log gets its fingerprint only.
			refuse(c, "bad credentials for user_fp "+auth.Fingerprint(*user))
			s.met.LoginFailed()
			return errBadCredentials
		case err != nil:
			return err
		}
		life := s.cfg.APITokenLifetime
		if cli {
			life = s.cfg.CLITokenLifetime
		}
		tok, claims, err := s.cfg.RESTSigner.Sign(scopes.RESTClaims(u.Name, string(u.Role), u.Generation), life)
		if err != nil {
			return err
		}
		stateOf(c).restClaims = claims
		if !cli {
			s.setTokenCookie(c, tok, life)
		}
		return c.JSON(http.StatusCreated, map[string]string{"access_token": tok})
	}
}

// handleLogout is POST /auth/logout: the token is revoked until it would
// have expired anyway, and the cookie is cleared; the response never renews
// it (see refreshCookie).
func (s *Server) handleLogout(c echo.Context) error {
	claims := restClaimsOf(c)
	if err := s.revoked.Revoke(c.Request().Context(), claims.ID, claims.ExpiresAt); err != nil {
		return err
	}
	stateOf(c).loggedOut = true
	c.SetCookie(&http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: c.Request().TLS != nil})
	return c.NoContent(http.StatusNoContent)
}

// handleRevokeToken is POST /api/v2/tokens/revoke {"jti", "exp"?}: an admin
// revokes a token by its id — a REST token, or a task or component token,
// which every /execution route then refuses and which is never renewed.
// Without exp the entry is kept for the longest lifetime of any token
// taskgate mints, after which any such token is dead anyway; an exp already
// past is refused (422). The rules are operator.Service.Revoke's.
func (s *Server) handleRevokeToken(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	jti := o.str("jti", true, false)
	exp := o.datetime("exp", false, true)
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return verr
	}
	err = s.ops.Revoke(c.Request().Context(), *jti, exp)
	var refusal *operator.Error
	switch {
	case errors.As(err, &refusal) && refusal.Field == "jti":
		return paramError("body", "jti", "string_too_short", "jti must be 1 to 128 characters", *jti)
	case errors.As(err, &refusal) && refusal.Field == "exp":
		return paramError("body", "exp", "value_error", err.Error(), exp.UTC().Format(time.RFC3339))
	case err != nil:
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
