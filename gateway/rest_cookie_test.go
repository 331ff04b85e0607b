package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/scopes"
)

// tokenCookies returns the _token cookies a response sets.
func tokenCookies(r response) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == cookieName {
			out = append(out, c)
		}
	}
	return out
}

// TestCookieRenewal: a cookie token close to expiry is renewed with the
// life it was issued with, and never by the response that revoked it.
func TestCookieRenewal(t *testing.T) {
	sameOrigin := []string{"Sec-Fetch-Site", "same-origin"}
	tests := []struct {
		name     string
		life     time.Duration // the presented token's exp − iat
		method   string
		path     string
		body     func(tok string) string
		wantLife time.Duration // 0: no fresh cookie
	}{
		{"browser token renewed for 24 h", 24 * time.Hour, "GET", "/api/v2/variables", nil, 24 * time.Hour},
		{"CLI token renewed for 1 h, not 24 h", time.Hour, "GET", "/api/v2/variables", nil, time.Hour},
		{"token longer than configured renewed for the longest configured", 48 * time.Hour, "GET", "/api/v2/variables", nil, 24 * time.Hour},
		{"logout hands out no fresh token", 24 * time.Hour, "POST", "/auth/logout", nil, 0},
		{"revoking its own token hands out no fresh token", 24 * time.Hour, "POST", "/api/v2/tokens/revoke",
			func(tok string) string { return `{"jti":"` + tok + `"}` }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.addUser("ada", auth.RoleAdmin)
			tok := h.rest.mintClaims(t, &scopes.Claims{Subject: "ada", Extra: map[string]any{roleClaim: "admin"}}, tt.life)
			claims, err := h.rest.Validate(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(tt.life - 100*time.Second) // due: 100 s left
			body := ""
			if tt.body != nil {
				body = tt.body(claims.ID)
			}
			r := h.do(tt.method, tt.path, "", body, append([]string{"Cookie", cookieName + "=" + tok}, sameOrigin...)...)
			if r.status >= 300 {
				t.Fatalf("%s %s = %d %s", tt.method, tt.path, r.status, r.body)
			}
			var fresh []*http.Cookie
			for _, c := range tokenCookies(r) {
				if c.Value != "" {
					fresh = append(fresh, c)
				}
			}
			if tt.wantLife == 0 {
				if len(fresh) != 0 {
					t.Fatalf("fresh _token cookie set: %q", r.header.Values("Set-Cookie"))
				}
				return
			}
			if len(fresh) != 1 {
				t.Fatalf("%d fresh _token cookies, want 1: %q", len(fresh), r.header.Values("Set-Cookie"))
			}
			got, err := h.rest.Validate(context.Background(), fresh[0].Value)
			if err != nil {
				t.Fatal(err)
			}
			if got.Lifetime() != tt.wantLife || time.Duration(fresh[0].MaxAge)*time.Second != tt.wantLife {
				t.Errorf("renewed token lives %s, cookie Max-Age %ds; want %s", got.Lifetime(), fresh[0].MaxAge, tt.wantLife)
			}
		})
	}
}

// TestFailedLoginLogsNoName: the name of a failed login may be a password
// typed into the wrong field; the log holds its fingerprint only.
func TestFailedLoginLogsNoName(t *testing.T) {
	h := newHarness(t)
	h.addUser("bob", auth.RoleViewer)
	for _, name := range []string{"hunter2-typed-as-name", "Hunter 2 typed as name!"} {
		r := h.do("POST", "/auth/token", "", `{"username":"`+name+`","password":"nope-nope"}`)
		wantJSON(t, r, 401, `{"detail":"Invalid username or password"}`)
		found := false
		for _, e := range h.logs.All() {
			if strings.Contains(e.Message, name) {
				t.Errorf("log message %q holds the attempted name", e.Message)
			}
			for k, v := range e.ContextMap() {
				s, _ := v.(string)
				if strings.Contains(s, name) {
					t.Errorf("log %q field %s holds the attempted name: %q", e.Message, k, s)
				}
				found = found || strings.Contains(s, auth.Fingerprint(name))
			}
		}
		if !found {
			t.Errorf("no log entry names the attempt by its fingerprint %s", auth.Fingerprint(name))
		}
	}
}
