package cli

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/config"
	"github.com/taskgate/taskgate/gateway"
	"github.com/taskgate/taskgate/operator"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/tokens"
)

// componentSignFails is a task-token signer that cannot sign a component's
// token, as one whose key became unreadable would.
type componentSignFails struct{ *tokens.Signer }

func (s componentSignFails) Sign(base *scopes.Claims, life time.Duration) (string, *scopes.Claims, error) {
	if base.Component() != "" {
		return "", nil, errors.New("sign: key unavailable")
	}
	return s.Signer.Sign(base, life)
}

// testSigners returns a task-token signer, and the signer and validator
// of REST tokens.
func testSigners(t *testing.T, cfg *config.Config) (task, rest *tokens.Signer, restValidator *tokens.Validator) {
	t.Helper()
	tc := tokens.Config{Secret: []byte("a-test-secret-of-32-bytes-length"), Audiences: cfg.ExecutionAudiences}
	rc := tc
	rc.Audiences = cfg.APIAudiences
	var err error
	if task, err = tokens.NewSigner(tc); err != nil {
		t.Fatal(err)
	}
	if rest, err = tokens.NewSigner(rc); err != nil {
		t.Fatal(err)
	}
	if restValidator, err = tokens.NewValidator(rc); err != nil {
		t.Fatal(err)
	}
	return task, rest, restValidator
}

// backends returns the two transports of the operator use cases as the
// CLI uses them: its offline backend on one data directory, and an admin
// API client logged in as an admin to a gateway serving another. With
// failComponents, neither can sign a component's token.
func backends(t *testing.T, failComponents bool) (offline offlineBackend, api *apiClient, offlineDB, serverDB *store.DB) {
	t.Helper()
	open := func() (*config.Config, *store.DB) {
		dir := t.TempDir()
		cfg, err := config.Load(config.Sources{Flags: map[string]string{"taskgate.data_dir": dir}})
		if err != nil {
			t.Fatal(err)
		}
		db, err := store.Open(filepath.Join(dir, "taskgate.db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return cfg, db
	}
	cfg, offlineDB := open()
	task, rest, restValidator := testSigners(t, cfg)
	var signer gateway.Signer = task
	if failComponents {
		signer = componentSignFails{task}
	}
	offlineKeys, err := openKeys(context.Background(), cfg, offlineDB, time.Now, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	offline, err = newOfflineBackend(cfg, signer, offlineKeys, offlineDB)
	if err != nil {
		t.Fatal(err)
	}

	serverCfg, serverDB := open()
	serverKeys, err := openKeys(context.Background(), serverCfg, serverDB, time.Now, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	taskValidator, err := tokens.NewValidator(tokens.Config{Secret: []byte("a-test-secret-of-32-bytes-length"), Audiences: cfg.ExecutionAudiences})
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(auth.AuthenticatorConfig{Store: serverDB, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(gateway.Config{
		Validator: taskValidator, Signer: signer, Store: serverDB,
		ExecutionTokenLifetime: cfg.ExecutionTokenLifetime, WorkloadTokenLifetime: cfg.WorkloadTokenLifetime,
		Auth: serverDB, Authenticator: authn, RESTSigner: rest, RESTValidator: restValidator,
		APITokenLifetime: cfg.APITokenLifetime, CLITokenLifetime: cfg.APICLITokenLifetime,
		BcryptCost: bcrypt.MinCost, NewID: newID, Keys: keyAdmin{serverKeys},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	u, err := auth.NewUser("root", auth.RoleAdmin, "root-password", bcrypt.MinCost, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := serverDB.AddUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	var login struct {
		AccessToken string `json:"access_token"`
	}
	err = newAPIClient(hs.URL, "", "").do(context.Background(), http.MethodPost, "/auth/token/cli", nil,
		map[string]string{"username": "root", "password": "root-password"}, &login)
	if err != nil {
		t.Fatal(err)
	}
	return offline, newAPIClient(hs.URL, login.AccessToken, "the test"), offlineDB, serverDB
}

// TestRevokeExpInThePastRefusedAlike: the data directory and the admin API
// refuse a revocation whose exp is past with the same error, and record
// nothing.
func TestRevokeExpInThePastRefusedAlike(t *testing.T) {
	offline, api, offlineDB, serverDB := backends(t, false)
	ctx := context.Background()
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	offErr := offline.Revoke(ctx, "jti-1", &past)
	apiErr := api.Revoke(ctx, "jti-1", &past)
	for name, err := range map[string]error{"offline": offErr, "admin API": apiErr} {
		if !errors.Is(err, operator.ErrInvalid) {
			t.Errorf("%s: revoke with exp an hour ago = %v; want operator.ErrInvalid", name, err)
		}
	}
	if offErr == nil || apiErr == nil || !strings.Contains(apiErr.Error(), offErr.Error()) ||
		!strings.Contains(offErr.Error(), "in the past") {
		t.Errorf("the refusals differ:\noffline:   %v\nadmin API: %v", offErr, apiErr)
	}
	for name, db := range map[string]*store.DB{"offline": offlineDB, "admin API": serverDB} {
		if got, err := db.Revocations(ctx); err != nil || len(got) != 0 {
			t.Errorf("%s: revocations after the refusal = %v, %v; want none", name, got, err)
		}
	}
}

// TestRegisterComponentUnsignedLeavesNothing: through the data directory
// and through the admin API alike, a registration whose token cannot be
// signed fails and leaves no component behind.
func TestRegisterComponentUnsignedLeavesNothing(t *testing.T) {
	offline, api, offlineDB, serverDB := backends(t, true)
	ctx := context.Background()
	for name, b := range map[string]operator.Service{"offline": offline, "admin API": api} {
		if _, _, err := b.RegisterComponent(ctx, auth.Triggerer, "trig-1"); err == nil {
			t.Errorf("%s: a registration without a token succeeded", name)
		}
	}
	for name, db := range map[string]*store.DB{"offline": offlineDB, "admin API": serverDB} {
		if cs, err := db.Components(ctx); err != nil || len(cs) != 0 {
			t.Errorf("%s: components after the failed registration = %+v, %v; want none", name, cs, err)
		}
	}
}

// TestKeyRotationAlike: through the data directory and through the admin
// API alike, a rotation adds an active key and keeps the old one with its
// retirement time, the old key's early retirement is refused with the same
// words, the active key's too, and an unknown kid is not found.
func TestKeyRotationAlike(t *testing.T) {
	offline, api, _, _ := backends(t, false)
	ctx := context.Background()
	refusals := map[string][]string{}
	for name, b := range map[string]operator.Service{"offline": offline, "admin API": api} {
		before, err := b.Keys(ctx)
		if err != nil || len(before) != 1 || !before[0].Active {
			t.Fatalf("%s: keys before rotating = %+v, %v", name, before, err)
		}
		after, err := b.RotateKey(ctx)
		if err != nil || len(after) != 2 || !after[0].Active || after[1].KID != before[0].KID || after[1].RetireAfter == nil {
			t.Fatalf("%s: keys after rotating = %+v, %v", name, after, err)
		}
		_, early := b.RetireKey(ctx, after[1].KID, false)
		_, active := b.RetireKey(ctx, after[0].KID, true)
		_, unknown := b.RetireKey(ctx, "no-such-kid", false)
		if !errors.Is(early, operator.ErrInvalid) || !errors.Is(active, operator.ErrInvalid) || !errors.Is(unknown, operator.ErrNotFound) {
			t.Fatalf("%s: refusals %v / %v / %v", name, early, active, unknown)
		}
		refusals[name] = []string{early.Error(), active.Error()}
		left, err := b.RetireKey(ctx, after[1].KID, true)
		if err != nil || len(left) != 1 || left[0].KID != after[0].KID {
			t.Fatalf("%s: forced retirement = %+v, %v", name, left, err)
		}
	}
	for i := range refusals["offline"] {
		// The early refusal names a time, which differs by the clock read.
		off, _, _ := strings.Cut(refusals["offline"][i], " until ")
		if !strings.Contains(refusals["admin API"][i], off) {
			t.Errorf("the refusals differ:\noffline:   %s\nadmin API: %s", refusals["offline"][i], refusals["admin API"][i])
		}
	}
}

// TestDagProcessorSessionAlike: through the data directory and through the
// admin API alike, a DAG processor's session token carries the session and
// its bundles, renewing keeps the session, and a session without bundles
// or with an id that is no UUID is refused.
func TestDagProcessorSessionAlike(t *testing.T) {
	offline, api, _, _ := backends(t, false)
	ctx := context.Background()
	for name, b := range map[string]operator.Service{"offline": offline, "admin API": api} {
		s, err := b.MintDagProcessorSession(ctx, operator.DagProcessorSessionRequest{BundleNames: []string{"b", "a"},
			ValidFor: time.Hour})
		if err != nil || s.SessionID == "" || s.Token == "" || time.Until(s.ExpiresAt) > time.Hour+time.Minute {
			t.Fatalf("%s: mint = %+v, %v", name, s, err)
		}
		renewed, err := b.MintDagProcessorSession(ctx, operator.DagProcessorSessionRequest{SessionID: s.SessionID,
			BundleNames: []string{"a"}})
		if err != nil || renewed.SessionID != s.SessionID || renewed.Token == s.Token {
			t.Errorf("%s: renew = %+v, %v", name, renewed, err)
		}
		if _, err := b.MintDagProcessorSession(ctx, operator.DagProcessorSessionRequest{}); err == nil {
			t.Errorf("%s: a session without bundles was minted", name)
		}
		if _, err := b.MintDagProcessorSession(ctx, operator.DagProcessorSessionRequest{SessionID: "x",
			BundleNames: []string{"a"}}); !errors.Is(err, operator.ErrInvalid) {
			t.Errorf("%s: a session id that is no UUID = %v", name, err)
		}
	}
}
