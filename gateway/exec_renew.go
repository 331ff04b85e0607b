package gateway

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/reissue"
	"github.com/taskgate/taskgate/scopes"
)

// renewable decides whether a due execution token may be renewed: never a
// revoked one (revoked while its request ran: the renewed token would carry
// a new jti, out of the revocation's reach), a task token only while its own
// try runs or waits for its /run (and is the current try), a component token
// only while the component is registered. Renewal is rare (once per token
// life), so this lookup costs nothing measurable; without it a try's token
// could be kept alive for ever after the try stopped, and act on the next
// try of the same task.
func (s *Server) renewable(ctx context.Context, c *scopes.Claims) bool {
	if s.revoked.Revoked(c.ID) {
		return false
	}
	if kind := c.Component(); kind != "" {
		comp, err := s.cfg.Auth.Component(ctx, c.Subject)
		return err == nil && string(comp.Kind) == kind
	}
	phase, err := s.phaseOf(ctx, c)
	return err == nil && phase.Renewable()
}

var errNotRenewable = &APIError{Status: http.StatusForbidden,
	Detail: "Token can no longer be renewed: its task instance no longer runs or its component was removed"}

// handleRefreshToken is POST /execution/token/refresh: an execution token
// holder that is idle (a triggerer between triggers, say) renews explicitly
// instead of waiting for a response to carry a new token. The new token is
// in the body and in Refreshed-API-Token.
func (s *Server) handleRefreshToken(c echo.Context) error {
	claims := claimsOf(c)
	if !s.renewable(c.Request().Context(), claims) {
		return errNotRenewable
	}
	tok, minted, err := s.cfg.Signer.Sign(claims, s.cfg.ExecutionTokenLifetime)
	if err != nil {
		return err
	}
	c.Response().Header().Set(reissue.Header, tok)
	s.met.Renewed("refresh")
	return c.JSON(http.StatusOK, map[string]any{"token": tok, "expires_at": minted.ExpiresAt})
}
