package gateway

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/scopes"
)

func TestDecideREST(t *testing.T) {
	errStore := errors.New("store: disk on fire")
	errExpired := errors.New("tokens: token is expired")
	// An op's valid bearer token for an op route, its user unchanged; each
	// case changes what it names.
	base := func() restInput {
		return restInput{
			HasToken: true,
			Claims: &scopes.Claims{Subject: "olga", ID: "jti-1", ExpiresAt: time.Unix(2000, 0),
				Extra: map[string]any{roleClaim: "op", generationClaim: "g1"}},
			User:    &auth.User{Name: "olga", Role: auth.RoleOp, Generation: "g1"},
			MinRole: auth.RoleOp,
			Request: restRequest{Method: "POST", HasBody: true, ContentType: "application/json",
				Scheme: "http", Host: "127.0.0.1:8080"},
		}
	}
	removed := func(in *restInput) { in.User, in.UserErr = nil, fmt.Errorf("store: user olga: %w", auth.ErrNotFound) }
	crossSite := func(in *restInput) { in.Request.FromCookie, in.Request.SecFetchSite = true, "cross-site" }
	noJTI := func(in *restInput) { in.Claims.ID = "" }
	badRole := func(in *restInput) { in.Claims.Extra[roleClaim] = "superuser" }
	revoked := func(in *restInput) { in.Revoked = true }
	viewerRoute := func(in *restInput) { in.MinRole = auth.RoleViewer }
	adminRoute := func(in *restInput) { in.MinRole = auth.RoleAdmin }
	invalid := func(in *restInput) { in.Claims, in.ValidateErr = nil, errExpired }

	tests := map[string]struct {
		edits []func(*restInput)
		want  *restDenial
	}{
		// Each rule alone.
		"allowed: op on an op route":    {nil, nil},
		"allowed: op on a viewer route": {[]func(*restInput){viewerRoute}, nil},
		"allowed: cookie write from the same origin": {[]func(*restInput){func(in *restInput) {
			in.Request.FromCookie, in.Request.SecFetchSite = true, "same-origin"
		}}, nil},
		"allowed: cookie read from another site": {[]func(*restInput){crossSite, func(in *restInput) {
			in.Request.Method, in.Request.HasBody = "GET", false
		}}, nil},
		"allowed: neither token nor user with a generation": {[]func(*restInput){func(in *restInput) {
			delete(in.Claims.Extra, generationClaim)
			in.User.Generation = ""
		}}, nil},
		"no token": {[]func(*restInput){func(in *restInput) { *in = restInput{MinRole: auth.RoleOp} }},
			&restDenial{Rule: restNoToken, Err: errNotAuthenticated}},
		"token invalid": {[]func(*restInput){invalid},
			&restDenial{Rule: restBadToken, Err: errInvalidJWT, LogReason: errExpired.Error()}},
		"token without jti": {[]func(*restInput){noJTI},
			&restDenial{Rule: restNoJTI, Err: errInvalidJWT, LogReason: "gateway: token has no jti"}},
		"role claim unknown": {[]func(*restInput){badRole},
			&restDenial{Rule: restUnknownRole, Err: errInvalidJWT, LogReason: "role claim missing or unknown"}},
		"role claim missing": {[]func(*restInput){func(in *restInput) { delete(in.Claims.Extra, roleClaim) }},
			&restDenial{Rule: restUnknownRole, Err: errInvalidJWT, LogReason: "role claim missing or unknown"}},
		"revoked":      {[]func(*restInput){revoked}, &restDenial{Rule: restRevoked, Err: errRevoked}},
		"user removed": {[]func(*restInput){removed}, userChanged},
		"user's role changed": {[]func(*restInput){func(in *restInput) { in.User.Role = auth.RoleAdmin }},
			userChanged},
		"user re-added (new generation)": {[]func(*restInput){func(in *restInput) { in.User.Generation = "g2" }},
			userChanged},
		"token without generation, user with one": {[]func(*restInput){func(in *restInput) {
			delete(in.Claims.Extra, generationClaim)
		}}, userChanged},
		"user lookup failed": {[]func(*restInput){func(in *restInput) { in.User, in.UserErr = nil, errStore }},
			&restDenial{Rule: restUserLookup, Err: errStore}},
		"role below the route's": {[]func(*restInput){adminRoute},
			&restDenial{Rule: restRoleTooLow, Err: errForbidden}},
		"cross-site cookie write": {[]func(*restInput){crossSite},
			&restDenial{Rule: restCrossSite, Err: errCrossSite}},
		"bearer write with a text body": {[]func(*restInput){func(in *restInput) { in.Request.ContentType = "text/plain" }},
			&restDenial{Rule: restShape, Err: errNotJSON}},

		// Precedence: the earlier rule answers.
		"invalid token and revoked: invalid": {[]func(*restInput){invalid, revoked},
			&restDenial{Rule: restBadToken, Err: errInvalidJWT, LogReason: errExpired.Error()}},
		"no jti and revoked: no jti": {[]func(*restInput){noJTI, revoked},
			&restDenial{Rule: restNoJTI, Err: errInvalidJWT, LogReason: "gateway: token has no jti"}},
		"unknown role and revoked: unknown role": {[]func(*restInput){badRole, revoked},
			&restDenial{Rule: restUnknownRole, Err: errInvalidJWT, LogReason: "role claim missing or unknown"}},
		"revoked and user's role changed: revoked": {[]func(*restInput){revoked, func(in *restInput) {
			in.User.Role = auth.RoleViewer
		}}, &restDenial{Rule: restRevoked, Err: errRevoked}},
		"revoked and user removed: revoked": {[]func(*restInput){revoked, removed},
			&restDenial{Rule: restRevoked, Err: errRevoked}},
		"revoked and lookup failed: revoked": {[]func(*restInput){revoked, func(in *restInput) {
			in.User, in.UserErr = nil, errStore
		}}, &restDenial{Rule: restRevoked, Err: errRevoked}},
		"user removed and role too low: user changed": {[]func(*restInput){removed, adminRoute}, userChanged},
		"lookup failed and role too low: lookup failed": {[]func(*restInput){adminRoute, func(in *restInput) {
			in.User, in.UserErr = nil, errStore
		}}, &restDenial{Rule: restUserLookup, Err: errStore}},
		"role too low and cross-site: role": {[]func(*restInput){adminRoute, crossSite},
			&restDenial{Rule: restRoleTooLow, Err: errForbidden}},
		"cross-site with a text body: cross-site": {[]func(*restInput){crossSite, func(in *restInput) {
			in.Request.ContentType = "text/plain"
		}}, &restDenial{Rule: restCrossSite, Err: errCrossSite}},
		"user removed and cross-site: user changed": {[]func(*restInput){removed, crossSite}, userChanged},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in := base()
			for _, edit := range tt.edits {
				edit(&in)
			}
			got := decideREST(in)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateErrors()); diff != "" {
				t.Errorf("decideREST (-want +got):\n%s", diff)
			}
		})
	}
}

// userChanged is the denial of a token whose user is no longer the one it
// was issued to.
var userChanged = &restDenial{Rule: restUserChanged, Err: errInvalidJWT,
	LogReason: "user removed, re-added or role changed since the token was issued"}

func TestRESTDenialEffects(t *testing.T) {
	// What requireRole does besides answering: count the address, name the
	// user in the access log.
	type effects struct{ CountsAgainstAddress, Identified bool }
	tests := map[restRule]effects{
		restNoToken:     {},
		restBadToken:    {CountsAgainstAddress: true},
		restNoJTI:       {CountsAgainstAddress: true},
		restUnknownRole: {},
		restRevoked:     {},
		restUserChanged: {},
		restUserLookup:  {},
		restRoleTooLow:  {Identified: true},
		restCrossSite:   {Identified: true},
		restShape:       {Identified: true},
	}
	for rule, want := range tests {
		t.Run(string(rule), func(t *testing.T) {
			d := &restDenial{Rule: rule}
			got := effects{CountsAgainstAddress: d.countsAgainstAddress(), Identified: d.identified()}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("effects (-want +got):\n%s", diff)
			}
		})
	}
}
