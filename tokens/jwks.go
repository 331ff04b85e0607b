package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxJWKSSize bounds a JWKS document; real ones are a few KiB.
	maxJWKSSize = 1 << 20
	// maxJWKSKeys bounds how many keys one document may contribute.
	maxJWKSKeys = 100
	// fetchTimeout is a backstop for one fetch when the HTTP client has no
	// timeout of its own.
	fetchTimeout = 30 * time.Second
	// minJWKRSABits: Go's crypto/rsa refuses to verify with smaller keys.
	minJWKRSABits = 1024
)

// errRateLimited means a fetch was not attempted because the last attempt
// was less than JWKSRetry ago.
var errRateLimited = errors.New("JWKS fetched too recently")

// jwks holds the trusted keys of a JWKS URL or file and keeps them fresh.
// Readers take the current key map with one atomic load; fetches are
// serialized, rate-limited and shared: concurrent callers that need a fetch
// wait for the one in flight instead of starting their own.
type jwks struct {
	url     string // file path or http(s) URL
	display string // url with any password redacted, for messages
	remote  bool
	alg     string
	client  *http.Client
	now     func() time.Time
	refresh time.Duration
	retry   time.Duration

	keys atomic.Pointer[map[string]any] // kid → *rsa.PublicKey or ed25519.PublicKey

	mu          sync.Mutex
	inflight    *fetchCall
	lastAttempt time.Time
	lastSuccess time.Time
	lastErr     error
}

// fetchCall is one fetch in progress; waiters block on done.
type fetchCall struct {
	done chan struct{}
	err  error
}

func newJWKS(cfg *Config, alg string) (*jwks, error) {
	j := &jwks{
		url:     cfg.TrustedJWKSURL,
		display: cfg.TrustedJWKSURL,
		remote:  isRemote(cfg.TrustedJWKSURL),
		alg:     alg,
		client:  cfg.HTTPClient,
		now:     cfg.now(),
		refresh: cfg.JWKSRefresh,
		retry:   cfg.JWKSRetry,
	}
	if j.refresh == 0 {
		j.refresh = DefaultJWKSRefresh
	}
	if j.retry == 0 {
		j.retry = DefaultJWKSRetry
	}
	if j.remote {
		u, err := url.Parse(j.url)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("tokens: trusted_jwks_url: invalid URL %q", j.url)
		}
		j.display = u.Redacted()
	}
	if j.client == nil {
		j.client = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	empty := map[string]any{}
	j.keys.Store(&empty)
	return j, nil
}

// key returns the trusted key for kid. An unknown kid causes one fetch,
// rate-limited to one per retry interval and shared by concurrent callers,
// because a kid we have not seen usually means the issuer rotated its key.
func (j *jwks) key(ctx context.Context, kid string) (any, error) {
	if k, ok := (*j.keys.Load())[kid]; ok {
		return k, nil
	}
	err := j.fetch(ctx, true, func(now time.Time) bool {
		return j.lastAttempt.IsZero() || now.Sub(j.lastAttempt) >= j.retry
	})
	// Look again whatever happened: a fetch that finished just before ours
	// was refused may have brought the key.
	if k, ok := (*j.keys.Load())[kid]; ok {
		return k, nil
	}
	ie := invalid("unknown kid " + quoteForLog(kid))
	if err != nil && !errors.Is(err, errRateLimited) {
		ie.cause = err
	}
	return nil, ie
}

// refreshIfDue reloads the set when the last success is older than the
// refresh interval (or there never was one) and the last attempt is older
// than the retry interval — Airflow's rule. Run calls it on every tick.
func (j *jwks) refreshIfDue(ctx context.Context, shared bool) error {
	return j.fetch(ctx, shared, func(now time.Time) bool {
		stale := j.lastSuccess.IsZero() || now.Sub(j.lastSuccess) >= j.refresh
		rested := j.lastAttempt.IsZero() || now.Sub(j.lastAttempt) >= j.retry
		return stale && rested
	})
}

// fetch loads the set if due(now) holds (called with mu held), or waits for
// the fetch already in flight. Failures keep the old keys. A shared fetch —
// one that other requests may be waiting on — is not cancelled with ctx;
// Run's own fetches are, so shutdown is prompt.
func (j *jwks) fetch(ctx context.Context, shared bool, due func(time.Time) bool) error {
	j.mu.Lock()
	if c := j.inflight; c != nil {
		j.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if !due(j.now()) {
		j.mu.Unlock()
		return errRateLimited
	}
	c := &fetchCall{done: make(chan struct{})}
	j.inflight = c
	j.lastAttempt = j.now()
	j.mu.Unlock()

	defer func() {
		j.mu.Lock()
		j.inflight = nil
		j.lastErr = c.err
		j.mu.Unlock()
		close(c.done)
	}()
	// The HTTP client's timeout, and this backstop, bound every fetch.
	if shared {
		ctx = context.WithoutCancel(ctx)
	}
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	keys, err := j.load(fctx)
	if err != nil {
		c.err = fmt.Errorf("tokens: load JWKS from %s: %w", j.display, err)
		return c.err
	}
	j.keys.Store(&keys)
	j.mu.Lock()
	j.lastSuccess = j.now()
	j.mu.Unlock()
	return nil
}

// health is Validator.Health for JWKS mode.
func (j *jwks) health() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.lastSuccess.IsZero() {
		if j.lastErr != nil {
			return fmt.Errorf("tokens: JWKS from %s never loaded: %w", j.display, j.lastErr)
		}
		return fmt.Errorf("tokens: JWKS from %s never loaded", j.display)
	}
	if age := j.now().Sub(j.lastSuccess); age > 3*j.refresh {
		if j.lastErr != nil {
			return fmt.Errorf("tokens: JWKS from %s last loaded %s ago: %w", j.display, age.Round(time.Second), j.lastErr)
		}
		return fmt.Errorf("tokens: JWKS from %s last loaded %s ago", j.display, age.Round(time.Second))
	}
	return nil
}

func (j *jwks) load(ctx context.Context) (map[string]any, error) {
	var data []byte
	var err error
	if j.remote {
		data, err = j.get(ctx)
	} else {
		data, err = readLimited(j.url)
	}
	if err != nil {
		return nil, err
	}
	return parseJWKS(data, j.alg)
}

func (j *jwks) get(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // lets the connection be reused
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSSize {
		return nil, fmt.Errorf("document larger than %d bytes", maxJWKSSize)
	}
	return data, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSSize {
		return nil, fmt.Errorf("document larger than %d bytes", maxJWKSSize)
	}
	return data, nil
}

// jwk is the subset of RFC 7517/8037 members used for RSA and Ed25519
// verification keys.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
}

// parseJWKS returns the keys usable with alg. Keys of another type, another
// algorithm, another use, without a kid or with a malformed body are skipped
// rather than failing the whole set, so one odd key published next to ours
// does not lock everybody out. A set with no usable key is an error (the
// old keys are kept).
func parseJWKS(data []byte, alg string) (map[string]any, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode JWKS: %w", err)
	}
	keys := make(map[string]any, len(doc.Keys))
	var skipped []string
	for i, raw := range doc.Keys {
		if len(keys) == maxJWKSKeys {
			break
		}
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		pub, err := k.publicKey(alg)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i, k.Kid, err))
			continue
		}
		if _, dup := keys[k.Kid]; dup {
			continue // the first key with a kid wins
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no usable %s key in JWKS (%d keys; skipped: %v)", alg, len(doc.Keys), skipped)
	}
	return keys, nil
}

func (k *jwk) publicKey(alg string) (any, error) {
	if k.Kid == "" {
		return nil, errors.New("no kid")
	}
	if k.Alg != "" && k.Alg != alg {
		return nil, fmt.Errorf("alg %s, want %s", k.Alg, alg)
	}
	if k.Use != "" && k.Use != "sig" {
		return nil, fmt.Errorf("use %q, want sig", k.Use)
	}
	switch alg {
	case algRS256, algRS512:
		if k.Kty != "RSA" {
			return nil, fmt.Errorf("kty %q, want RSA", k.Kty)
		}
		n, err := base64.RawURLEncoding.DecodeString(k.N)
		if err != nil || len(n) == 0 || n[0] == 0 {
			return nil, errors.New("bad n")
		}
		e, err := base64.RawURLEncoding.DecodeString(k.E)
		if err != nil || len(e) == 0 || len(e) > 4 || e[0] == 0 {
			return nil, errors.New("bad e")
		}
		exp := 0
		for _, b := range e {
			exp = exp<<8 | int(b)
		}
		if exp < 3 || exp%2 == 0 {
			return nil, errors.New("bad e")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
		if bits := pub.N.BitLen(); bits < minJWKRSABits {
			return nil, fmt.Errorf("RSA key has %d bits", bits)
		}
		return pub, nil
	case algEdDSA:
		if k.Kty != "OKP" || k.Crv != "Ed25519" {
			return nil, fmt.Errorf("kty %q crv %q, want OKP Ed25519", k.Kty, k.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad x")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("algorithm %s has no JWKS keys", alg)
}
