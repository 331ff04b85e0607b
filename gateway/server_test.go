package gateway

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/store"
)

// completeConfig returns a Config New accepts, on a fresh database.
func completeConfig(t *testing.T) Config {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "taskgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	authn, err := auth.NewAuthenticator(auth.AuthenticatorConfig{Store: db, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	toks := newFakeTokens("task", time.Now)
	rest := newFakeTokens("rest", time.Now)
	return Config{
		Validator: toks, Signer: toks, Store: db, Auth: db, Authenticator: authn,
		RESTSigner: rest, RESTValidator: rest, NewID: func() string { return "id" },
		ExecutionTokenLifetime: 600 * time.Second, WorkloadTokenLifetime: time.Hour,
		APITokenLifetime: 24 * time.Hour, CLITokenLifetime: time.Hour, Keys: newFakeKeys(time.Now),
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	base := completeConfig(t)
	tests := map[string]struct {
		edit func(*Config)
		want *ConfigError // nil: New succeeds
	}{
		"complete":                  {func(*Config) {}, nil},
		"optional fields left zero": {func(c *Config) { c.Now, c.Logger, c.Revocations, c.HealthChecks = nil, nil, nil, nil }, nil},
		"no Validator":              {func(c *Config) { c.Validator = nil }, &ConfigError{"Validator", "is required"}},
		"no Signer":                 {func(c *Config) { c.Signer = nil }, &ConfigError{"Signer", "is required"}},
		"no Store":                  {func(c *Config) { c.Store = nil }, &ConfigError{"Store", "is required"}},
		"no Auth":                   {func(c *Config) { c.Auth = nil }, &ConfigError{"Auth", "is required"}},
		"no Authenticator":          {func(c *Config) { c.Authenticator = nil }, &ConfigError{"Authenticator", "is required"}},
		"no RESTSigner":             {func(c *Config) { c.RESTSigner = nil }, &ConfigError{"RESTSigner", "is required"}},
		"no RESTValidator":          {func(c *Config) { c.RESTValidator = nil }, &ConfigError{"RESTValidator", "is required"}},
		"no NewID":                  {func(c *Config) { c.NewID = nil }, &ConfigError{"NewID", "is required"}},
		"no Keys":                   {func(c *Config) { c.Keys = nil }, &ConfigError{"Keys", "is required"}},
		"no ExecutionTokenLifetime": {func(c *Config) { c.ExecutionTokenLifetime = 0 },
			&ConfigError{"ExecutionTokenLifetime", "must be positive, not 0s"}},
		"no WorkloadTokenLifetime": {func(c *Config) { c.WorkloadTokenLifetime = 0 },
			&ConfigError{"WorkloadTokenLifetime", "must be positive, not 0s"}},
		"negative APITokenLifetime": {func(c *Config) { c.APITokenLifetime = -time.Minute },
			&ConfigError{"APITokenLifetime", "must be positive, not -1m0s"}},
		"no CLITokenLifetime": {func(c *Config) { c.CLITokenLifetime = 0 },
			&ConfigError{"CLITokenLifetime", "must be positive, not 0s"}},
		"health check without Check": {func(c *Config) {
			c.HealthChecks = []HealthCheck{{Name: "db", Check: func(context.Context) error { return nil }}, {Name: "disk"}}
		}, &ConfigError{"HealthChecks[1]", "needs a Name and a Check"}},
		"health check without Name": {func(c *Config) {
			c.HealthChecks = []HealthCheck{{Check: func(context.Context) error { return nil }}}
		}, &ConfigError{"HealthChecks[0]", "needs a Name and a Check"}},
		"unknown TaskVariableWrites": {func(c *Config) { c.TaskVariableWrites = "some" },
			&ConfigError{"TaskVariableWrites", `must be all or none, not "some"`}},
		"MultiTeam without Teams": {func(c *Config) { c.MultiTeam = true },
			&ConfigError{"Teams", "is required by MultiTeam"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			srv, err := New(cfg)
			if tt.want == nil {
				if err != nil || srv == nil {
					t.Fatalf("New = %v, %v; want a server", srv, err)
				}
				return
			}
			var got *ConfigError
			if !errors.As(err, &got) || srv != nil {
				t.Fatalf("New = %v, %v; want no server and a *ConfigError", srv, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ConfigError (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGuardsRefuseMissingDependencies(t *testing.T) {
	base := completeConfig(t)
	revs, err := auth.LoadRevocations(context.Background(), base.Auth, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	type build func(*Server) error
	taskCheck := func(s *Server) error { _, err := s.requireToken(*executionSelf); return err }
	roleCheck := func(min auth.Role) build {
		return func(s *Server) error { _, err := s.requireRole(min); return err }
	}
	tests := map[string]struct {
		edit    func(*Server)
		build   build
		wantErr string // "" for none
	}{
		"task check, complete":              {func(*Server) {}, taskCheck, ""},
		"task check, no Validator":          {func(s *Server) { s.cfg.Validator = nil }, taskCheck, "gateway: Config.Validator is required by the task-token check"},
		"task check, no Store":              {func(s *Server) { s.cfg.Store = nil }, taskCheck, "gateway: Config.Store is required by the task-token check"},
		"task check, no revocation list":    {func(s *Server) { s.revoked = nil }, taskCheck, "gateway: Config.Revocations is required by the task-token check"},
		"task check, REST side missing":     {func(s *Server) { s.cfg.RESTValidator, s.cfg.Auth = nil, nil }, taskCheck, ""},
		"role check, complete":              {func(*Server) {}, roleCheck(auth.RoleOp), ""},
		"role check, no RESTValidator":      {func(s *Server) { s.cfg.RESTValidator = nil }, roleCheck(auth.RoleOp), "gateway: Config.RESTValidator is required by the REST role check"},
		"role check, no Auth":               {func(s *Server) { s.cfg.Auth = nil }, roleCheck(auth.RoleOp), "gateway: Config.Auth is required by the REST role check"},
		"role check, no RESTSigner":         {func(s *Server) { s.cfg.RESTSigner = nil }, roleCheck(auth.RoleOp), "gateway: Config.RESTSigner is required by the REST role check (cookie renewal)"},
		"role check, no revocation list":    {func(s *Server) { s.revoked = nil }, roleCheck(auth.RoleOp), "gateway: Config.Revocations is required by the REST role check"},
		"role check, unknown role":          {func(*Server) {}, roleCheck("superuser"), `gateway: route role: auth: unknown role "superuser" (admin, op or viewer)`},
		"role check, task side missing":     {func(s *Server) { s.cfg.Validator, s.cfg.Store = nil, nil }, roleCheck(auth.RoleViewer), ""},
		"read cache, complete":              {func(*Server) {}, cacheOf, ""},
		"read cache, no Store":              {func(s *Server) { s.cfg.Store = nil }, cacheOf, "gateway: Config.Store is required by the read cache"},
		"read cache, disabled (size -1)":    {func(s *Server) { s.cfg.ReadCacheSize = -1 }, cacheOf, ""},
		"task check, policy without phases": {func(*Server) {}, func(s *Server) error { _, err := s.requireToken(scopes.Policy{}); return err }, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s := &Server{cfg: base, revoked: revs, now: time.Now}
			tt.edit(s)
			err := tt.build(s)
			var got string
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("error = %q, want %q", got, tt.wantErr)
			}
		})
	}
}

// cacheOf builds the read cache over s's store.
func cacheOf(s *Server) error {
	_, err := newCachedStore(s.cfg.Store, s.cfg.ReadCacheSize, 0, nil)
	return err
}
