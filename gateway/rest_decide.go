package gateway

import (
	"errors"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/scopes"
)

// restInput is what decideREST needs to know about a request to a REST route
// (/auth/logout, /api/v2/…): the facts requireRole looked up before asking,
// so that the decision itself reads no clock, store or header.
type restInput struct {
	// HasToken: the request carries a REST token (Authorization: Bearer,
	// ?token= on a read, or the _token cookie).
	HasToken bool
	// Claims are the token's validated claims; nil when ValidateErr is set.
	Claims *scopes.Claims
	// ValidateErr is why the REST validator refused the token.
	ValidateErr error
	// Revoked: the token's jti is on the revocation list.
	Revoked bool
	// User is the token's subject as the auth store holds it now, nil when
	// UserErr is set (wrapping auth.ErrNotFound when the user was removed).
	User    *auth.User
	UserErr error
	// MinRole is the least role the route admits.
	MinRole auth.Role
	// Request is the request's shape and provenance (decideRESTRequest).
	Request restRequest
}

// restRule names the rule of decideREST that refused a request.
type restRule string

// The rules of decideREST, in the order they are applied: the first that
// fails decides the answer.
const (
	restNoToken     restRule = "no token"
	restBadToken    restRule = "token invalid"
	restNoJTI       restRule = "token without jti"
	restUnknownRole restRule = "role claim missing or unknown"
	restRevoked     restRule = "token revoked"
	restUserChanged restRule = "user removed, re-added or role changed"
	restUserLookup  restRule = "user lookup failed"
	restRoleTooLow  restRule = "role below the route's"
	restCrossSite   restRule = "cross-site cookie write"
	// restShape is any other refusal of decideRESTRequest: today a body not
	// declared JSON.
	restShape restRule = "request shape refused"
)

// restDenial is decideREST's refusal: the rule that failed, the error the
// client is answered with (through the one error handler), and the reason
// the access log gives, which is never sent.
type restDenial struct {
	Rule restRule
	Err  error
	// LogReason is recorded with refuse; "" records nothing.
	LogReason string
}

// countsAgainstAddress reports whether the denial is an authentication
// failure of the client's address for the auth-failure limit: a token that
// does not validate. Later refusals concern a token someone was issued, and
// an address's limit must never stand between a valid token and its
// requests (see requireToken).
func (d *restDenial) countsAgainstAddress() bool {
	return d.Rule == restBadToken || d.Rule == restNoJTI
}

// identified reports whether the token's user stands confirmed when the
// request is refused, so that the access log names them.
func (d *restDenial) identified() bool {
	switch d.Rule {
	case restRoleTooLow, restCrossSite, restShape:
		return true
	}
	return false
}

// decideREST is the one decision about a REST request's authorization: nil
// allows it. The rules, each checked only when the ones before it passed:
//
//  1. A token is present (401 Not authenticated).
//  2. It validates against the REST audience and carries a jti, without
//     which it could not be revoked (401 Invalid JWT token).
//  3. Its role claim names a known role (401 Invalid JWT token).
//  4. It is not revoked (401 Token has been revoked).
//  5. Its user still exists with the role and generation the token carries:
//     a token outlives changes to its user, and a removed user, or one
//     re-added under the same name with any role, must not keep the old
//     access (401 Invalid JWT token). A store that cannot tell answers
//     with its own error (500).
//  6. The role is at least the route's (403 Forbidden).
//  7. The request's shape and provenance pass decideRESTRequest (403 for a
//     cross-site cookie write, 415 for a body not declared JSON).
func decideREST(in restInput) *restDenial {
	if !in.HasToken {
		return &restDenial{Rule: restNoToken, Err: errNotAuthenticated}
	}
	if in.ValidateErr != nil {
		return &restDenial{Rule: restBadToken, Err: errInvalidJWT, LogReason: in.ValidateErr.Error()}
	}
	claims := in.Claims
	if claims.ID == "" {
		return &restDenial{Rule: restNoJTI, Err: errInvalidJWT, LogReason: "gateway: token has no jti"}
	}
	role, ok := roleOf(claims)
	if !ok {
		return &restDenial{Rule: restUnknownRole, Err: errInvalidJWT, LogReason: "role claim missing or unknown"}
	}
	if in.Revoked {
		return &restDenial{Rule: restRevoked, Err: errRevoked}
	}
	gen, _ := claims.Extra[generationClaim].(string)
	switch {
	case errors.Is(in.UserErr, auth.ErrNotFound) || in.UserErr == nil && (in.User.Role != role || in.User.Generation != gen):
		return &restDenial{Rule: restUserChanged, Err: errInvalidJWT,
			LogReason: "user removed, re-added or role changed since the token was issued"}
	case in.UserErr != nil:
		return &restDenial{Rule: restUserLookup, Err: in.UserErr}
	}
	if !role.AtLeast(in.MinRole) {
		return &restDenial{Rule: restRoleTooLow, Err: errForbidden}
	}
	switch err := decideRESTRequest(in.Request); err {
	case nil:
		return nil
	case errCrossSite:
		return &restDenial{Rule: restCrossSite, Err: err}
	default:
		return &restDenial{Rule: restShape, Err: err}
	}
}
