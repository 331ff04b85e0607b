package gateway

import (
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/scopes"
)

// accessFields is the most fields an access-log line carries.
const accessFields = 12

// requestState is what the gateway learns about one request: the claims of
// its token, or why the token was refused, for the handlers, the renewal
// hook and the access log. It wraps the request's echo.Context, and
// accessLog takes it from a pool, so that a request pays neither for Echo's
// c.Set (a map and a lock per request) nor for the log line's field slice.
type requestState struct {
	echo.Context
	// claims are a task or component token's, restClaims a REST token's.
	claims     *scopes.Claims
	restClaims *scopes.Claims
	// authError is the reason a token was refused, for the log line only;
	// refused says that it is set.
	authError string
	refused   bool
	// loggedOut: the handler revoked the request's own REST token, which
	// must then not be renewed on the way out.
	loggedOut bool
	fields    [accessFields]zap.Field
}

// stateOf returns the state of the request c belongs to. Every handler and
// middleware past accessLog receives the requestState as its context.
func stateOf(c echo.Context) *requestState { return c.(*requestState) }

// claimsOf returns the validated claims of the request's task or component
// token, or nil.
func claimsOf(c echo.Context) *scopes.Claims { return stateOf(c).claims }

// restClaimsOf returns the validated claims of the request's REST token, or
// nil.
func restClaimsOf(c echo.Context) *scopes.Claims { return stateOf(c).restClaims }

// refuse records why the request's token was refused, for the access log:
// the reason is never sent to the caller.
func refuse(c echo.Context, reason string) {
	st := stateOf(c)
	st.authError, st.refused = reason, true
}
