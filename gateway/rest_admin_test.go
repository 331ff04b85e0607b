package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/scopes"
)

// componentSignFails signs every token but a component's, as a signer
// whose key became unreadable between two requests would.
type componentSignFails struct{ Signer }

func (s componentSignFails) Sign(base *scopes.Claims, life time.Duration) (string, *scopes.Claims, error) {
	if base.Component() != "" {
		return "", nil, errors.New("sign: key unavailable")
	}
	return s.Signer.Sign(base, life)
}

// TestRegisterComponentUnsignedLeavesNothing: a registration answered
// with an error leaves no component behind, so the name can be registered
// again once signing works.
func TestRegisterComponentUnsignedLeavesNothing(t *testing.T) {
	h := newHarness(t, withConfig(func(c *Config) { c.Signer = componentSignFails{c.Signer} }))
	h.addUser("ada", auth.RoleAdmin)
	tok := h.login("ada")
	r := h.do("POST", "/api/v2/components", tok, `{"kind":"triggerer","name":"trig-1"}`)
	if r.status != 500 {
		t.Errorf("register with a failing signer = %d %s, want 500", r.status, r.body)
	}
	cs, err := h.db.Components(context.Background())
	if err != nil || len(cs) != 0 {
		t.Errorf("components after a failed registration = %+v, %v; want none", cs, err)
	}
	wantJSON(t, h.do("GET", "/api/v2/components", tok, ""), 200, `{"components":[],"total_entries":0}`)
}

// TestRevokeRefusals: the admin API words operator.Revoke's refusals as
// validation errors of the field refused, and records nothing.
func TestRevokeRefusals(t *testing.T) {
	h := newHarness(t)
	h.addUser("ada", auth.RoleAdmin)
	tok := h.login("ada")
	tests := []struct {
		name, body, field, msg string
	}{
		{"exp beyond the purge grace", `{"jti":"abc","exp":"2026-11-27T09:00:00Z"}`, "exp", "in the past"},
		{"blank jti", `{"jti":"  "}`, "jti", "jti must be 1 to 128 characters"},
		{"long jti", `{"jti":"` + strings.Repeat("j", 129) + `"}`, "jti", "jti must be 1 to 128 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("POST", "/api/v2/tokens/revoke", tok, tt.body)
			var body struct {
				Detail []struct {
					Loc []string `json:"loc"`
					Msg string   `json:"msg"`
				} `json:"detail"`
			}
			if err := json.Unmarshal([]byte(r.body), &body); r.status != 422 || err != nil || len(body.Detail) != 1 ||
				!slices.Equal(body.Detail[0].Loc, []string{"body", tt.field}) || !strings.Contains(body.Detail[0].Msg, tt.msg) {
				t.Errorf("revoke %s = %d %s; want 422 about %s saying %q", tt.body, r.status, r.body, tt.field, tt.msg)
			}
		})
	}
	if got, err := h.db.Revocations(context.Background()); err != nil || len(got) != 0 {
		t.Errorf("revocations after refusals = %v, %v; want none", got, err)
	}
}
