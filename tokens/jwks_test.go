package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/taskgate/taskgate/internal/fakeclock"
)

// jwksServer is a JWKS endpoint whose content, status and pace the test
// controls, and which counts its hits.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	status  int
	hits    int
	entered chan struct{} // if non-nil, receives one value per hit
	gate    chan struct{} // if non-nil, each hit waits for it to be closed
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits++
		body, status, entered, gate := s.body, s.status, s.entered, s.gate
		s.mu.Unlock()
		if entered != nil {
			entered <- struct{}{}
		}
		if gate != nil {
			<-gate
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func (s *jwksServer) hitCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

// jwksFixture is a validator on a JWKS with a fake clock and helpers to
// mint tokens for any kid.
type jwksFixture struct {
	clock *fakeclock.Clock
	keys  map[string]*rsa.PrivateKey
}

func (f *jwksFixture) token(t *testing.T, kid string) string {
	t.Helper()
	k, ok := f.keys[kid]
	if !ok {
		k = f.keys["k1"]
	}
	claims := with(stdClaims(), "iat", f.clock.Now().Unix(), "nbf", nil, "exp", f.clock.Now().Unix()+600)
	return craftMap(t, map[string]any{"alg": "RS256", "kid": kid}, claims, jwt.SigningMethodRS256, k)
}

func (f *jwksFixture) doc(t *testing.T, kids ...string) []byte {
	t.Helper()
	var keys []map[string]any
	for _, kid := range kids {
		keys = append(keys, rsaJWK(&f.keys[kid].PublicKey, kid, "RS256"))
	}
	return jwksDoc(t, keys...)
}

func newJWKSFixture(t *testing.T) *jwksFixture {
	t.Helper()
	return &jwksFixture{
		clock: fakeclock.New(t0),
		keys:  map[string]*rsa.PrivateKey{"k1": newRSAKey(t, 2048), "k2": newRSAKey(t, 2048)},
	}
}

func (f *jwksFixture) validator(t *testing.T, url string) *Validator {
	t.Helper()
	v, err := NewValidator(Config{
		TrustedJWKSURL: url,
		Algorithm:      "RS256",
		Audiences:      []string{testAudience},
		Leeway:         10 * time.Second,
		Now:            f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *jwksFixture) wantValid(t *testing.T, v *Validator, kid string) {
	t.Helper()
	if _, err := v.Validate(context.Background(), f.token(t, kid)); err != nil {
		t.Fatalf("kid %s: %v", kid, err)
	}
}

func (f *jwksFixture) wantReason(t *testing.T, v *Validator, kid, want string) {
	t.Helper()
	_, err := v.Validate(context.Background(), f.token(t, kid))
	if got := reasonOf(t, err); got != want {
		t.Fatalf("kid %s: reason %q, want %q (error %v)", kid, got, want, err)
	}
}

func TestJWKSFile(t *testing.T) {
	f := newJWKSFixture(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, f.doc(t, "k1"), 0o600); err != nil {
		t.Fatal(err)
	}
	v := f.validator(t, path)
	if err := v.Health(); err != nil {
		t.Fatalf("Health after load: %v", err)
	}
	f.wantValid(t, v, "k1")

	// Rotate: the file now holds only k2.
	if err := os.WriteFile(path, f.doc(t, "k2"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Within JWKSRetry of the last read, an unknown kid does not re-read.
	f.wantReason(t, v, "k2", `unknown kid "k2"`)
	f.clock.Advance(DefaultJWKSRetry)
	f.wantValid(t, v, "k2")           // re-read on the unknown kid
	f.wantValid(t, v, "k2")           // and kept
	f.clock.Advance(DefaultJWKSRetry) // k1 is gone after the re-read
	f.wantReason(t, v, "k1", `unknown kid "k1"`)
}

func TestJWKSFileMissing(t *testing.T) {
	f := newJWKSFixture(t)
	v := f.validator(t, filepath.Join(t.TempDir(), "absent.json"))
	err := v.Health()
	if err == nil || !strings.Contains(err.Error(), "never loaded") {
		t.Fatalf("Health = %v, want never loaded", err)
	}
	_, verr := v.Validate(context.Background(), f.token(t, "k1"))
	if got := reasonOf(t, verr); got != `unknown kid "k1"` {
		t.Errorf("reason %q", got)
	}
}

func TestJWKSHTTPRotationAndRateLimit(t *testing.T) {
	f := newJWKSFixture(t)
	srv := newJWKSServer(t, f.doc(t, "k1"))
	v := f.validator(t, srv.URL+"/jwks.json")
	if got := srv.hitCount(); got != 1 {
		t.Fatalf("hits after NewValidator = %d, want 1", got)
	}
	f.wantValid(t, v, "k1")
	if got := srv.hitCount(); got != 1 {
		t.Fatalf("a known kid caused a fetch: hits = %d", got)
	}

	// The issuer rotates to k2. An unknown kid within JWKSRetry of the
	// last fetch is refused without a fetch.
	srv.set(http.StatusOK, f.doc(t, "k1", "k2"))
	f.wantReason(t, v, "k2", `unknown kid "k2"`)
	if got := srv.hitCount(); got != 1 {
		t.Fatalf("rate limit ignored: hits = %d", got)
	}
	// After JWKSRetry, one refetch picks up k2.
	f.clock.Advance(DefaultJWKSRetry)
	f.wantValid(t, v, "k2")
	if got := srv.hitCount(); got != 2 {
		t.Fatalf("hits = %d, want 2", got)
	}
	f.wantValid(t, v, "k1")

	// A stream of made-up kids costs at most one fetch per JWKSRetry.
	for i := range 20 {
		f.clock.Advance(time.Second / 2)
		f.wantReason(t, v, "nope", `unknown kid "nope"`)
		if want := 2 + (i+1)/20; srv.hitCount() != want {
			t.Fatalf("after %d unknown kids: hits = %d, want %d", i+1, srv.hitCount(), want)
		}
	}
}

func TestJWKSConcurrentUnknownKidSharesOneFetch(t *testing.T) {
	f := newJWKSFixture(t)
	srv := newJWKSServer(t, f.doc(t, "k1"))
	v := f.validator(t, srv.URL)
	f.clock.Advance(DefaultJWKSRetry)

	entered := make(chan struct{}, 1)
	gate := make(chan struct{})
	srv.mu.Lock()
	srv.entered, srv.gate = entered, gate
	srv.mu.Unlock()
	srv.set(http.StatusOK, f.doc(t, "k1", "k2"))

	tok := f.token(t, "k2")
	const n = 16
	errs := make(chan error, n)
	validate := func() {
		_, err := v.Validate(context.Background(), tok)
		errs <- err
	}
	go validate()
	<-entered // the first caller's fetch is in flight
	for range n - 1 {
		go validate()
	}
	close(gate)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Validate: %v", err)
		}
	}
	if got := srv.hitCount(); got != 2 {
		t.Errorf("hits = %d, want 2 (one at start, one shared refetch)", got)
	}
}

func TestJWKSServerErrorsKeepOldKeys(t *testing.T) {
	f := newJWKSFixture(t)
	srv := newJWKSServer(t, f.doc(t, "k1"))
	v := f.validator(t, srv.URL)

	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"500", http.StatusInternalServerError, "oops"},
		{"not JSON", http.StatusOK, "<html>"},
		{"no keys", http.StatusOK, `{"keys":[]}`},
		{"only unusable keys", http.StatusOK, `{"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB"},{"kty":"oct","kid":"y","k":"c2VjcmV0"},{"kty":"OKP","kid":"z","crv":"Ed25519","x":"AA"}]}`},
		{"wrong shape", http.StatusOK, `{"keys":{"kty":"RSA"}}`},
		{"huge", http.StatusOK, `{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSSize) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.set(tc.status, []byte(tc.body))
			before := srv.hitCount()
			f.clock.Advance(DefaultJWKSRetry)
			_, err := v.Validate(context.Background(), f.token(t, "k2"))
			if got := reasonOf(t, err); !strings.HasPrefix(got, `unknown kid "k2"`) {
				t.Errorf("reason %q", got)
			}
			if !strings.Contains(err.Error(), "load JWKS") {
				t.Errorf("error %q does not say why the refetch failed", err)
			}
			if srv.hitCount() != before+1 {
				t.Errorf("hits %d → %d, want one fetch", before, srv.hitCount())
			}
			f.wantValid(t, v, "k1") // old keys kept
		})
	}
}

func TestJWKSSkipsUnsuitableKeys(t *testing.T) {
	f := newJWKSFixture(t)
	k3 := newRSAKey(t, 2048)
	f.keys["k3"] = k3
	enc := rsaJWK(&f.keys["k2"].PublicKey, "k2", "RS256")
	enc["use"] = "enc"
	doc := jwksDoc(t,
		rsaJWK(&f.keys["k1"].PublicKey, "k1", "RS256"),
		enc,                                  // not a signature key
		rsaJWK(&k3.PublicKey, "k3", "RS512"), // another algorithm
		rsaJWK(&f.keys["k1"].PublicKey, "", "RS256"), // no kid
		edJWK(newEdKey(t).Public().(ed25519.PublicKey), "ed"),
	)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	v := f.validator(t, path)
	f.wantValid(t, v, "k1")
	f.wantReason(t, v, "k2", `unknown kid "k2"`)
	f.wantReason(t, v, "k3", `unknown kid "k3"`)
	f.wantReason(t, v, "ed", `unknown kid "ed"`)
}

func TestJWKSEdDSA(t *testing.T) {
	clock := fakeclock.New(t0)
	ed := newEdKey(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwksDoc(t, edJWK(ed.Public().(ed25519.PublicKey), "e1")), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(Config{TrustedJWKSURL: path, Algorithm: "EdDSA", Audiences: []string{testAudience}, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := craftMap(t, map[string]any{"alg": "EdDSA", "kid": "e1"}, stdClaims(), jwt.SigningMethodEdDSA, ed)
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}

// manualTicker lets a test drive Run tick by tick.
type manualTicker struct {
	c       chan time.Time
	stopped chan struct{}
}

func installManualTicker(v *Validator) *manualTicker {
	m := &manualTicker{c: make(chan time.Time), stopped: make(chan struct{})}
	v.newTicker = func(time.Duration) (<-chan time.Time, func()) {
		return m.c, func() { close(m.stopped) }
	}
	return m
}

func TestJWKSRunPeriodicRefresh(t *testing.T) {
	f := newJWKSFixture(t)
	srv := newJWKSServer(t, f.doc(t, "k1"))
	v := f.validator(t, srv.URL)
	tick := installManualTicker(v)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()

	// The issuer rotates to k2 only. Ticks before the refresh is due fetch
	// nothing; an hour later exactly one tick reloads. (Run handles a tick
	// after receiving it, so which tick fetches is not fixed — but however
	// the ticks interleave with the clock, there is exactly one fetch.)
	srv.set(http.StatusOK, f.doc(t, "k2"))
	tick.c <- t0
	tick.c <- t0
	f.clock.Advance(DefaultJWKSRefresh)
	for range 3 {
		tick.c <- f.clock.Now()
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	<-tick.stopped

	if got := srv.hitCount(); got != 2 {
		t.Fatalf("hits = %d, want 2 (start-up and one periodic reload)", got)
	}
	f.wantValid(t, v, "k2")                      // picked up without an unknown-kid refetch …
	f.wantReason(t, v, "k1", `unknown kid "k1"`) // … and k1 is gone (rate-limited: no fetch)
	if got := srv.hitCount(); got != 2 {
		t.Fatalf("hits = %d, want 2", got)
	}
}

func TestJWKSRefreshIfDue(t *testing.T) {
	// The rule Run applies on every tick, driven directly.
	f := newJWKSFixture(t)
	srv := newJWKSServer(t, f.doc(t, "k1"))
	v := f.validator(t, srv.URL) // hit 1 at t0
	refresh := func(wantHits int, wantErr bool) {
		t.Helper()
		err := v.jwks.refreshIfDue(context.Background(), false)
		if (err != nil && !errors.Is(err, errRateLimited)) != wantErr {
			t.Fatalf("refreshIfDue = %v, want error %v", err, wantErr)
		}
		if got := srv.hitCount(); got != wantHits {
			t.Fatalf("hits = %d, want %d", got, wantHits)
		}
	}
	refresh(1, false) // fresh: nothing to do
	f.clock.Advance(DefaultJWKSRefresh - time.Second)
	refresh(1, false) // still fresh
	f.clock.Advance(time.Second)
	srv.set(http.StatusBadGateway, nil)
	refresh(2, true) // stale: fetched, failed
	refresh(2, false)
	f.clock.Advance(DefaultJWKSRetry - time.Second)
	refresh(2, false) // failed too recently to try again
	f.clock.Advance(time.Second)
	srv.set(http.StatusOK, f.doc(t, "k1", "k2"))
	refresh(3, false) // retried and loaded
	f.wantValid(t, v, "k2")
	f.clock.Advance(DefaultJWKSRetry)
	refresh(3, false) // fresh again
}

func TestRunWithoutJWKS(t *testing.T) {
	v, err := NewValidator(Config{Secret: randomSecret(t), Audiences: []string{testAudience}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if err := v.Health(); err != nil {
		t.Errorf("Health = %v, want nil without JWKS", err)
	}
}

func TestJWKSHealth(t *testing.T) {
	f := newJWKSFixture(t)
	srv := newJWKSServer(t, nil)
	srv.set(http.StatusServiceUnavailable, nil)
	v := f.validator(t, srv.URL)

	wantHealth := func(want string) {
		t.Helper()
		err := v.Health()
		switch {
		case want == "" && err != nil:
			t.Fatalf("Health = %v, want nil", err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Fatalf("Health = %v, want error containing %q", err, want)
		}
	}
	wantHealth("never loaded: tokens: load JWKS from " + srv.URL + ": HTTP status 503")

	srv.set(http.StatusOK, f.doc(t, "k1"))
	f.clock.Advance(DefaultJWKSRetry)
	if err := v.jwks.refreshIfDue(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	wantHealth("")

	// Failures alone do not make it unhealthy while the keys are recent.
	srv.set(http.StatusInternalServerError, nil)
	f.clock.Advance(DefaultJWKSRefresh)
	if err := v.jwks.refreshIfDue(context.Background(), false); err == nil {
		t.Fatal("refresh against a failing server succeeded")
	}
	wantHealth("")
	f.clock.Advance(2*DefaultJWKSRefresh + time.Second)
	wantHealth("last loaded 3h0m1s ago")

	srv.set(http.StatusOK, f.doc(t, "k1"))
	if err := v.jwks.refreshIfDue(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	wantHealth("")
}

func TestJWKSURLPasswordRedacted(t *testing.T) {
	f := newJWKSFixture(t)
	srv := newJWKSServer(t, nil)
	srv.set(http.StatusForbidden, nil)
	url := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1)
	v := f.validator(t, url)
	err := v.Health()
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Health = %v; want an error without the password", err)
	}
}

func TestJWKSRefetchAndCancellation(t *testing.T) {
	f := newJWKSFixture(t)
	srv := newJWKSServer(t, f.doc(t, "k1"))
	v := f.validator(t, srv.URL)
	f.clock.Advance(DefaultJWKSRetry)

	entered := make(chan struct{}, 1)
	gate := make(chan struct{})
	srv.mu.Lock()
	srv.entered, srv.gate = entered, gate
	srv.mu.Unlock()
	srv.set(http.StatusOK, f.doc(t, "k1", "k2"))
	tok := f.token(t, "k2")

	// The caller whose unknown kid started the fetch goes away; the fetch
	// is shared, so it is not abandoned.
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leader := make(chan error, 1)
	go func() {
		_, err := v.Validate(leaderCtx, tok)
		leader <- err
	}()
	<-entered
	cancelLeader()

	// A waiter whose context ends while it waits gets ErrInvalid wrapping
	// the context error, at once.
	waiterCtx, cancelWaiter := context.WithCancel(context.Background())
	cancelWaiter()
	_, err := v.Validate(waiterCtx, tok)
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, context.Canceled) {
		t.Errorf("waiter: %v, want ErrInvalid wrapping context.Canceled", err)
	}

	close(gate)
	if err := <-leader; err != nil {
		t.Errorf("leader: %v (the shared fetch should have completed)", err)
	}
	f.wantValid(t, v, "k2")
	if got := srv.hitCount(); got != 2 {
		t.Errorf("hits = %d, want 2", got)
	}
}
