package integration_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// restAudience is the default [api_auth] jwt_audience: the audience of the
// REST tokens the gateway mints.
const restAudience = "urn:taskgate:api"

// restToken hand-mints a REST token for user with role, issued ago before
// now and living life in all: a token the gateway's own signer would have
// made that long ago (a 24 h browser token, a 1 h CLI token). It carries the
// user's generation as m.generations knows it (see learnGeneration).
func (m *minter) restToken(user, role string, life, ago time.Duration) string {
	m.t.Helper()
	iat := time.Now().Add(-ago).Unix()
	c := map[string]any{
		"jti": strings.ReplaceAll(uuid.NewString(), "-", ""),
		"aud": restAudience, "sub": user, "role": role,
		"iat": iat, "nbf": iat, "exp": iat + int64(life/time.Second),
	}
	if gen, ok := m.generations[user]; ok {
		c["user_gen"] = gen
	}
	return m.hs512(c)
}

// learnGeneration logs user in and keeps the generation its token carries,
// for restToken: a token without the user's current generation is refused.
func (m *minter) learnGeneration(base, user, password string) {
	m.t.Helper()
	_, tok := restLogin(m.t, base, "/auth/token", user, password)
	if m.generations == nil {
		m.generations = map[string]any{}
	}
	gen := payload(m.t, tok)["user_gen"]
	if gen == nil {
		m.t.Fatalf("REST token of %s carries no user_gen", user)
	}
	m.generations[user] = gen
}

// cookieRequest sends a request authenticated by the _token cookie (or by
// bearer, when bearer is set), with body sent as contentType and the extra
// headers given.
func cookieRequest(t *testing.T, base, method, path, cookie, bearer, contentType, body string, hdr map[string]string) *response {
	t.Helper()
	return sendWith(t, base, method, path, func(req *http.Request) {
		req.Header.Del("Content-Type")
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if body != "" {
			req.Body = io.NopCloser(strings.NewReader(body))
			req.ContentLength = int64(len(body))
		}
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "_token", Value: cookie})
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
	})
}

// tokenCookies returns the _token cookies a response sets.
func tokenCookies(r *response) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "_token" {
			out = append(out, c)
		}
	}
	return out
}

// lifetimeOf returns exp − iat of a token, read without verifying it.
func lifetimeOf(t *testing.T, tok string) time.Duration {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT (%d segments)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		IAT int64 `json:"iat"`
		EXP int64 `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return time.Duration(c.EXP-c.IAT) * time.Second
}

// TestSecurityOperatorAuth checks the operator side's answers to the
// security review over HTTP: logout really logs out, cookie writes need a
// same-origin request and JSON routes a JSON body, a renewed cookie keeps
// the lifetime of the token it renews, and a failed login never logs the
// name that was typed.
func TestSecurityOperatorAuth(t *testing.T) {
	dataDir := newDataDir(t)
	op := newOperator(t, dataDir)
	op.addUser("admin", "admin", adminPassword)
	op.addUser("viewer", "viewer", viewerPassword)
	srv := startServer(t, dataDir)
	m := newMinter(t, dataDir)
	m.learnGeneration(srv.URL, "admin", adminPassword)
	m.learnGeneration(srv.URL, "viewer", viewerPassword)
	_, adminBearer := restLogin(t, srv.URL, "/auth/token", "admin", adminPassword)
	sameOrigin := map[string]string{"Sec-Fetch-Site": "same-origin"}

	// A cookie with 100 s left of its 24 h: due for renewal.
	dueBrowserToken := func(user, role string) string {
		return m.restToken(user, role, 24*time.Hour, 24*time.Hour-100*time.Second)
	}

	t.Run("logout of a cookie due for renewal hands out no fresh token", func(t *testing.T) {
		tok := dueBrowserToken("viewer", "viewer")
		r := cookieRequest(t, srv.URL, "POST", "/auth/logout", tok, "", "", "", sameOrigin)
		wantNoContent(t, r, 204)
		cks := tokenCookies(r)
		if len(cks) == 0 {
			t.Errorf("%s: logout does not clear _token", r)
		}
		for _, c := range cks {
			if c.Value != "" || c.MaxAge >= 0 {
				t.Errorf("%s: logout sets _token to a value (Max-Age %d); Set-Cookie %q", r, c.MaxAge, r.header.Values("Set-Cookie"))
			}
		}
		wantJSON(t, cookieRequest(t, srv.URL, "GET", "/api/v2/variables", tok, "", "", "", nil), 401,
			`{"detail":"Token has been revoked"}`)
	})

	t.Run("a request revoking its own cookie token does not renew it", func(t *testing.T) {
		tok := dueBrowserToken("admin", "admin")
		body := mustJSON(t, map[string]string{"jti": jti(t, tok)})
		r := cookieRequest(t, srv.URL, "POST", "/api/v2/tokens/revoke", tok, "", "application/json", body, sameOrigin)
		wantNoContent(t, r, 204)
		if cks := tokenCookies(r); len(cks) != 0 {
			t.Errorf("%s: revoking its own token set a _token cookie: %q", r, r.header.Values("Set-Cookie"))
		}
	})

	t.Run("a renewed cookie keeps the lifetime of the token it renews", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			life time.Duration
		}{
			{"CLI token (1 h)", time.Hour},
			{"browser token (24 h)", 24 * time.Hour},
		} {
			t.Run(tt.name, func(t *testing.T) {
				tok := m.restToken("viewer", "viewer", tt.life, tt.life-100*time.Second)
				r := cookieRequest(t, srv.URL, "GET", "/api/v2/variables", tok, "", "", "", nil)
				mustStatus(t, r, 200)
				cks := tokenCookies(r)
				if len(cks) != 1 || cks[0].Value == "" {
					t.Fatalf("%s: a cookie with 100 s left was not renewed: Set-Cookie %q", r, r.header.Values("Set-Cookie"))
				}
				collected.addToken("renewed cookie token", cks[0].Value)
				if got := time.Duration(cks[0].MaxAge) * time.Second; got != tt.life {
					t.Errorf("renewed cookie Max-Age %s, want %s", got, tt.life)
				}
				if got := lifetimeOf(t, cks[0].Value); got != tt.life {
					t.Errorf("renewed token lives %s (exp − iat), want %s", got, tt.life)
				}
			})
		}
	})

	t.Run("cookie writes need a same-origin request, JSON routes a JSON body", func(t *testing.T) {
		cookie := m.restToken("admin", "admin", 24*time.Hour, time.Minute)
		const crossSite = `{"detail":"Cross-site request refused: a write authenticated by the _token cookie must come from the same origin (Origin or Sec-Fetch-Site); API clients send Authorization: Bearer"}`
		const notJSON = `{"detail":"Unsupported Media Type: the body must be sent as Content-Type: application/json"}`
		n := 0
		newUser := func() string {
			n++
			return mustJSON(t, map[string]string{"username": "csrf" + string(rune('a'+n)), "password": viewerPassword, "role": "admin"})
		}
		for _, tt := range []struct {
			name           string
			cookie, bearer string
			contentType    string
			hdr            map[string]string
			status         int
			want           string
		}{
			{"cookie, text/plain, foreign Origin (the finding)", cookie, "", "text/plain", map[string]string{"Origin": "http://evil.example"}, 403, crossSite},
			{"cookie, JSON, foreign Origin", cookie, "", "application/json", map[string]string{"Origin": "http://evil.example"}, 403, crossSite},
			{"cookie, JSON, Origin null", cookie, "", "application/json", map[string]string{"Origin": "null"}, 403, crossSite},
			{"cookie, JSON, Sec-Fetch-Site cross-site", cookie, "", "application/json", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, crossSite},
			{"cookie, JSON, Sec-Fetch-Site same-site", cookie, "", "application/json", map[string]string{"Sec-Fetch-Site": "same-site"}, 403, crossSite},
			{"cookie, JSON, neither Origin nor Sec-Fetch-Site", cookie, "", "application/json", nil, 403, crossSite},
			{"cookie, text/plain, same origin", cookie, "", "text/plain", sameOrigin, 415, notJSON},
			{"cookie, no content type, same origin", cookie, "", "", sameOrigin, 415, notJSON},
			{"bearer, text/plain", "", adminBearer, "text/plain", nil, 415, notJSON},
			{"bearer, form", "", adminBearer, "application/x-www-form-urlencoded", nil, 415, notJSON},
			{"cookie, JSON, Sec-Fetch-Site same-origin", cookie, "", "application/json", sameOrigin, 201, ""},
			{"cookie, JSON, Sec-Fetch-Site none", cookie, "", "application/json", map[string]string{"Sec-Fetch-Site": "none"}, 201, ""},
			{"cookie, JSON, own Origin", cookie, "", "application/json; charset=utf-8", map[string]string{"Origin": srv.URL}, 201, ""},
			{"bearer, JSON, foreign Origin", "", adminBearer, "application/json", map[string]string{"Origin": "http://evil.example"}, 201, ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				body := newUser()
				r := cookieRequest(t, srv.URL, "POST", "/api/v2/users", tt.cookie, tt.bearer, tt.contentType, body, tt.hdr)
				if tt.want != "" {
					wantJSON(t, r, tt.status, tt.want)
				} else {
					mustStatus(t, r, tt.status)
				}
				var u struct {
					Username string `json:"username"`
				}
				_ = json.Unmarshal([]byte(body), &u)
				users := send(t, srv.URL, "GET", "/api/v2/users", "Bearer "+adminBearer, "")
				if created := strings.Contains(string(users.body), `"`+u.Username+`"`); created != (tt.status == 201) {
					t.Errorf("user %s created: %v, want %v", u.Username, created, tt.status == 201)
				}
			})
		}
		// Reads stay as they were: a foreign Origin does not matter.
		mustStatus(t, cookieRequest(t, srv.URL, "GET", "/api/v2/variables", cookie, "", "", "",
			map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}), 200)
		// Login takes a JSON body too (a cross-site form could otherwise log
		// a browser in as someone else).
		wantJSON(t, cookieRequest(t, srv.URL, "POST", "/auth/token", "", "", "text/plain",
			mustJSON(t, map[string]string{"username": "admin", "password": adminPassword}), nil), 415, notJSON)
	})

	// Last: failures count against this address.
	t.Run("a failed login logs a fingerprint of the name, never the name", func(t *testing.T) {
		for _, name := range []string{
			"typed-the-password-here-8c2f1e",  // a valid user name no user has
			"Typed The Password Here! 8c2f1e", // not a valid user name
		} {
			collected.addSecret("attempted user name", name)
			r, _ := restLogin(t, srv.URL, "/auth/token", name, wrongPassword)
			wantJSON(t, r, 401, `{"detail":"Invalid username or password"}`)
			sum := sha256.Sum256([]byte(name))
			fp := hex.EncodeToString(sum[:8])
			if !waitForLogText(srv, fp) {
				t.Errorf("no log line names the attempt by its fingerprint %s:\n%s", fp, srv.logs)
			}
			if strings.Contains(srv.logs.String(), name) {
				t.Errorf("the attempted user name %q is in the log:\n%s", name, srv.logs)
			}
		}
	})
	srv.stop()
}

// waitForLogText waits (bounded) until the server's log holds s: the access-log
// line of a request is written just after its response.
func waitForLogText(srv *server, s string) bool {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	for {
		ch := srv.logs.changed()
		if strings.Contains(srv.logs.String(), s) {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}
