package tokens

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/taskgate/taskgate/internal/fakeclock"
)

// secretValidator is an HS512 validator with a fake clock and the given
// cache size.
func secretValidator(t *testing.T, clock *fakeclock.Clock, cacheSize int) (*Validator, []byte) {
	t.Helper()
	secret := randomSecret(t)
	v, err := NewValidator(Config{Secret: secret, Audiences: []string{testAudience}, Leeway: 10 * time.Second,
		Now: clock.Now, CacheSize: cacheSize})
	if err != nil {
		t.Fatal(err)
	}
	return v, secret
}

func TestCacheServesVerifiedTokensOnly(t *testing.T) {
	clock := fakeclock.New(t0)
	v, secret := secretValidator(t, clock, 0)
	good := craftMap(t, map[string]any{"alg": "HS512", "typ": "JWT"}, stdClaims(), jwt.SigningMethodHS512, secret)
	first, err := v.Validate(context.Background(), good)
	if err != nil {
		t.Fatal(err)
	}
	second, err := v.Validate(context.Background(), good)
	if err != nil || second != first {
		t.Fatalf("second validation: %p %v, want the cached %p", second, err, first)
	}
	if n := v.cache.len(); n != 1 {
		t.Errorf("cache holds %d entries, want 1", n)
	}
	// Any change to the text is another key: verified in full, and refused.
	for i := range good {
		if good[i] == '.' {
			continue
		}
		b := []byte(good)
		b[i] ^= 0x01
		if _, err := v.Validate(context.Background(), string(b)); err == nil {
			t.Fatalf("tampered token (byte %d) accepted", i)
		}
	}
	// A refused token is never remembered.
	forged := craftMap(t, map[string]any{"alg": "HS512"}, stdClaims(), jwt.SigningMethodHS512, []byte("some-other-secret-value"))
	for range 2 {
		if _, err := v.Validate(context.Background(), forged); err == nil {
			t.Fatal("forged token accepted")
		}
	}
	if n := v.cache.len(); n != 1 {
		t.Errorf("cache holds %d entries after refusals, want 1", n)
	}
}

func TestCacheEntriesExpireWithTheToken(t *testing.T) {
	clock := fakeclock.New(t0)
	v, secret := secretValidator(t, clock, 0)
	// nbf 60 s after iat: accepted from nbf − leeway.
	claims := with(stdClaims(), "nbf", t0.Unix()+60)
	tok := craftMap(t, map[string]any{"alg": "HS512"}, claims, jwt.SigningMethodHS512, secret)
	clock.Set(t0.Add(50 * time.Second))
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatalf("inside leeway of nbf: %v", err)
	}
	clock.Set(t0.Add(49 * time.Second))
	if _, err := v.Validate(context.Background(), tok); err == nil {
		t.Error("cached token accepted before nbf − leeway")
	}
	clock.Set(t0.Add(609 * time.Second))
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatalf("inside leeway of exp: %v", err)
	}
	clock.Set(t0.Add(611 * time.Second))
	if _, err := v.Validate(context.Background(), tok); err == nil {
		t.Error("cached token accepted after exp + leeway")
	}
	if n := v.cache.len(); n != 0 {
		t.Errorf("expired entry kept: %d entries", n)
	}
}

func TestCacheIsBounded(t *testing.T) {
	clock := fakeclock.New(t0)
	v, secret := secretValidator(t, clock, 128)
	for i := range 2000 {
		tok := craftMap(t, map[string]any{"alg": "HS512"}, with(stdClaims(), "jti", fmt.Sprint(i)), jwt.SigningMethodHS512, secret)
		if _, err := v.Validate(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.cache.len(); n > 128 {
		t.Errorf("cache grew to %d entries, bound 128", n)
	}
}

// TestCacheComparesTheWholeToken: an entry is found by the token's hash,
// but serves only the token it holds; a token whose hash collides with it
// is verified in full (and, forged, refused).
func TestCacheComparesTheWholeToken(t *testing.T) {
	clock := fakeclock.New(t0)
	v, secret := secretValidator(t, clock, 0)
	good := craftMap(t, map[string]any{"alg": "HS512"}, stdClaims(), jwt.SigningMethodHS512, secret)
	claims, err := v.Validate(context.Background(), good)
	if err != nil {
		t.Fatal(err)
	}
	forged := craftMap(t, map[string]any{"alg": "HS512"}, stdClaims(), jwt.SigningMethodHS512, []byte("some-other-secret-value"))
	// The collision is made by hand: the good token's entry placed under
	// the forged token's hash.
	gs, gh := v.cache.locate(good)
	e := gs.entries[gh]
	fs, fh := v.cache.locate(forged)
	fs.entries[fh] = e
	if got, err := v.Validate(context.Background(), forged); err == nil {
		t.Fatalf("a token whose hash finds another token's entry was accepted: %+v", got)
	}
	if got, err := v.Validate(context.Background(), good); err != nil || got != claims {
		t.Errorf("the good token after the collision: %p %v, want the cached %p", got, err, claims)
	}
}

func TestCacheDisabled(t *testing.T) {
	clock := fakeclock.New(t0)
	v, secret := secretValidator(t, clock, -1)
	tok := craftMap(t, map[string]any{"alg": "HS512"}, stdClaims(), jwt.SigningMethodHS512, secret)
	a, _ := v.Validate(context.Background(), tok)
	b, err := v.Validate(context.Background(), tok)
	if err != nil || a == b || v.cache != nil {
		t.Errorf("disabled cache still shares claims (%p, %p) or exists", a, b)
	}
}

func TestCacheDropsTokensOfRemovedJWKSKeys(t *testing.T) {
	f := newJWKSFixture(t)
	srv := newJWKSServer(t, f.doc(t, "k1"))
	v := f.validator(t, srv.URL)
	tok := f.token(t, "k1")
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	// k1 is rotated out: once the set reloads, its cached tokens stop.
	srv.set(200, f.doc(t, "k2"))
	f.clock.Advance(DefaultJWKSRefresh)
	if err := v.jwks.refreshIfDue(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(context.Background(), tok); err == nil {
		t.Error("token of a removed key accepted from the cache")
	}
}

func BenchmarkValidateCached(b *testing.B) {
	for _, alg := range []string{"HS512", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			clock := fakeclock.New(t0)
			cfg := Config{Audiences: []string{testAudience}, Leeway: 10 * time.Second, Now: clock.Now}
			if alg == "HS512" {
				cfg.Secret = randomSecret(b)
			} else {
				cfg.PrivateKeyPath = writePEM(b, newEdKey(b), false)
			}
			s, err := NewSigner(cfg)
			if err != nil {
				b.Fatal(err)
			}
			v, err := NewValidator(cfg)
			if err != nil {
				b.Fatal(err)
			}
			tok, _, err := s.Sign(benchBase(), 600*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Validate(context.Background(), tok); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkValidateCachedMany is BenchmarkValidateCached with 10 000
// verified tokens read in turn, as many running tasks read: the entries no
// longer sit in the processor's caches.
func BenchmarkValidateCachedMany(b *testing.B) {
	const n = 10000
	clock := fakeclock.New(t0)
	cfg := Config{Audiences: []string{testAudience}, Leeway: 10 * time.Second, Now: clock.Now, Secret: randomSecret(b)}
	s, err := NewSigner(cfg)
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewValidator(cfg)
	if err != nil {
		b.Fatal(err)
	}
	toks := make([]string, n)
	for i := range toks {
		c := benchBase()
		c.Subject = fmt.Sprintf("0190e3e4-3c2b-7a8e-9d0f-%012x", i)
		if toks[i], _, err = s.Sign(c, 600*time.Second); err != nil {
			b.Fatal(err)
		}
		if _, err := v.Validate(context.Background(), toks[i]); err != nil {
			b.Fatal(err)
		}
	}
	var start atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(start.Add(7919))
		for pb.Next() {
			i = (i + 4099) % n
			if _, err := v.Validate(context.Background(), toks[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
