package reissue

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/scopes"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func claims(scope string, life time.Duration) *scopes.Claims {
	return &scopes.Claims{
		ID: "j1", Subject: "0190e3e4-3c2b-7a8e-9d0e-6f1a2b3c4d5e", Scope: scope,
		IssuedAt: t0, NotBefore: t0, ExpiresAt: t0.Add(life),
		Extra: map[string]any{"custom": "kept"},
	}
}

func TestDue(t *testing.T) {
	tests := []struct {
		name string
		c    *scopes.Claims
		at   time.Duration // time since issue
		want bool
	}{
		// 600 s token: threshold 120 s, renewal from 480 s on.
		{"600s one second before threshold", claims("execution", 600*time.Second), 479 * time.Second, false},
		{"600s exactly at threshold", claims("execution", 600*time.Second), 480 * time.Second, true},
		{"600s one second past threshold", claims("execution", 600*time.Second), 481 * time.Second, true},
		{"600s expired within leeway", claims("execution", 600*time.Second), 605 * time.Second, true},
		// 100 s token: 20 % is 20 s, the 30 s floor wins: renewal from 70 s on.
		{"100s floor one second before", claims("execution", 100*time.Second), 69 * time.Second, false},
		{"100s floor exactly", claims("execution", 100*time.Second), 70 * time.Second, true},
		{"100s floor one second after", claims("execution", 100*time.Second), 71 * time.Second, true},
		// 10 s token: always inside the 30 s floor.
		{"10s token fresh", claims("execution", 10*time.Second), 0, true},
		// 20 % of 151 s is 30.2 s, truncated to 30 s like Airflow's int().
		{"151s truncation before", claims("execution", 151*time.Second), 120 * time.Second, false},
		{"151s truncation at", claims("execution", 151*time.Second), 121 * time.Second, true},
		{"missing scope is execution", claims("", 600*time.Second), 500 * time.Second, true},
		{"workload never", claims("workload", 600*time.Second), 599 * time.Second, false},
		{"workload never even expired", claims("workload", 600*time.Second), 700 * time.Second, false},
		{"unknown scope never", claims("admin", 600*time.Second), 599 * time.Second, false},
		{"nil claims", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Due(tt.c, t0.Add(tt.at)); got != tt.want {
				t.Errorf("Due at +%v = %v, want %v", tt.at, got, tt.want)
			}
		})
	}
}

type fakeSigner struct {
	calls int
	base  *scopes.Claims
	life  time.Duration
	err   error
}

func (f *fakeSigner) Sign(base *scopes.Claims, life time.Duration) (string, *scopes.Claims, error) {
	f.calls++
	f.base, f.life = base, life
	if f.err != nil {
		return "", nil, f.err
	}
	return "renewed-token", &scopes.Claims{ID: "j2"}, nil
}

func TestMiddleware(t *testing.T) {
	due := claims("execution", 600*time.Second)
	now := func() time.Time { return t0.Add(500 * time.Second) }
	tests := []struct {
		name      string
		claims    *scopes.Claims
		status    int
		preset    string
		renewable bool
		signErr   error
		wantHdr   string
	}{
		{"due on 200", due, http.StatusOK, "", true, nil, "renewed-token"},
		{"due on 204", due, http.StatusNoContent, "", true, nil, "renewed-token"},
		{"due on 404", due, http.StatusNotFound, "", true, nil, "renewed-token"},
		{"due on 409", due, http.StatusConflict, "", true, nil, "renewed-token"},
		{"never on 401", due, http.StatusUnauthorized, "", true, nil, ""},
		{"never on 403", due, http.StatusForbidden, "", true, nil, ""},
		{"not due", claims("execution", 6000*time.Second), http.StatusOK, "", true, nil, ""},
		{"workload", claims("workload", 600*time.Second), http.StatusOK, "", true, nil, ""},
		{"no claims", nil, http.StatusOK, "", true, nil, ""},
		{"handler already set", due, http.StatusOK, "swapped", true, nil, "swapped"},
		{"not renewable", due, http.StatusOK, "", false, nil, ""},
		{"signer fails", due, http.StatusOK, "", true, errors.New("boom"), ""},
	}
	// Each case runs through Middleware, and through Renewer.Arm called by
	// the handler once it knows the claims, as the gateway's token check
	// does: both must renew the same tokens on the same answers.
	for _, mode := range []string{"arm"} {
		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				signer := &fakeSigner{err: tt.signErr}
				renewed := 0
				cfg := Config{
					Signer: signer, Lifetime: 600 * time.Second, Now: now,
					Claims:    func(echo.Context) *scopes.Claims { return tt.claims },
					Renewable: func(context.Context, *scopes.Claims) bool { return tt.renewable },
					OnRenew:   func() { renewed++ },
				}
				handler := func(c echo.Context) error {
					if tt.preset != "" {
						c.Response().Header().Set(Header, tt.preset)
					}
					return c.NoContent(tt.status)
				}
				r, err := New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				h := func(c echo.Context) error {
					r.Arm(c)
					return handler(c)
				}
				e := echo.New()
				rec := httptest.NewRecorder()
				c := e.NewContext(httptest.NewRequest(http.MethodGet, "/", nil), rec)
				if err := h(c); err != nil {
					t.Fatal(err)
				}
				if got := rec.Header().Get(Header); got != tt.wantHdr {
					t.Errorf("header = %q, want %q", got, tt.wantHdr)
				}
				if tt.wantHdr == "renewed-token" {
					if signer.base != tt.claims || signer.life != 600*time.Second {
						t.Errorf("signed %+v for %v, want the request's claims for 600s", signer.base, signer.life)
					}
					if renewed != 1 {
						t.Errorf("OnRenew called %d times, want 1", renewed)
					}
				} else if renewed != 0 {
					t.Errorf("OnRenew called %d times without a renewal", renewed)
				}
			})
		}
	}
}

func TestMiddlewareConfig(t *testing.T) {
	complete := func() Config {
		return Config{Signer: &fakeSigner{}, Lifetime: 600 * time.Second,
			Claims: func(echo.Context) *scopes.Claims { return nil }}
	}
	tests := map[string]struct {
		edit    func(*Config)
		wantErr string // "" for none
	}{
		"complete":                   {func(*Config) {}, ""},
		"optional fields left unset": {func(c *Config) { c.Renewable, c.Now, c.Logger = nil, nil, nil }, ""},
		"no Signer":                  {func(c *Config) { c.Signer = nil }, "reissue: incomplete config: Signer is required"},
		"no Claims":                  {func(c *Config) { c.Claims = nil }, "reissue: incomplete config: Claims is required"},
		"no Lifetime": {func(c *Config) { c.Lifetime = 0 },
			"reissue: incomplete config: Lifetime must be positive, not 0s"},
		"negative Lifetime": {func(c *Config) { c.Lifetime = -time.Second },
			"reissue: incomplete config: Lifetime must be positive, not -1s"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := complete()
			tt.edit(&cfg)
			r, err := New(cfg)
			if tt.wantErr == "" {
				if err != nil || r == nil {
					t.Fatalf("New = %v, %v; want a renewer", r, err)
				}
				return
			}
			if !errors.Is(err, ErrIncomplete) || err.Error() != tt.wantErr || r != nil {
				t.Errorf("New error = %v, want %q wrapping ErrIncomplete and no renewer", err, tt.wantErr)
			}
		})
	}
}

func BenchmarkDue(b *testing.B) {
	c := claims("execution", 600*time.Second)
	now := t0.Add(100 * time.Second)
	b.ReportAllocs()
	for b.Loop() {
		if Due(c, now) {
			b.Fatal("due")
		}
	}
}

// BenchmarkArmNotDue is the cost every authenticated request pays.
func BenchmarkArmNotDue(b *testing.B) {
	e := echo.New()
	c0 := claims("execution", 600*time.Second)
	r, err := New(Config{Signer: &fakeSigner{}, Lifetime: 600 * time.Second,
		Now:    func() time.Time { return t0.Add(100 * time.Second) },
		Claims: func(echo.Context) *scopes.Claims { return c0 }})
	if err != nil {
		b.Fatal(err)
	}
	h := func(c echo.Context) error {
		r.Arm(c)
		return c.NoContent(204)
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		if err := h(e.NewContext(req, rec)); err != nil {
			b.Fatal(err)
		}
	}
}
