package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/taskgate/taskgate/scopes"

	"github.com/taskgate/taskgate/internal/fakeclock"
)

// benchConfigs returns one configuration per algorithm, sharing keys. The
// verified-token cache is off: these benchmarks measure verification itself
// (BenchmarkValidateCached measures the cache).
func benchConfigs(b *testing.B) map[string]Config {
	b.Helper()
	clock := fakeclock.New(t0)
	rsaPath := writePEM(b, newRSAKey(b, 2048), false)
	base := Config{Audiences: []string{testAudience}, Leeway: 10 * time.Second, Now: clock.Now, CacheSize: -1}
	return map[string]Config{
		"HS512": withCfg(base, func(c *Config) { c.Secret = randomSecret(b) }),
		"RS256": withCfg(base, func(c *Config) { c.PrivateKeyPath = rsaPath; c.Algorithm = "RS256" }),
		"RS512": withCfg(base, func(c *Config) { c.PrivateKeyPath = rsaPath; c.Algorithm = "RS512" }),
		"EdDSA": withCfg(base, func(c *Config) { c.PrivateKeyPath = writePEM(b, newEdKey(b), false) }),
	}
}

var benchAlgs = [...]string{"HS512", "RS256", "RS512", "EdDSA"}

// benchBase is what the gateway signs on /run: an execution token.
func benchBase() *scopes.Claims { return &scopes.Claims{Subject: testSubject, Scope: "execution"} }

func BenchmarkValidate(b *testing.B) {
	cfgs := benchConfigs(b)
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			s, err := NewSigner(cfgs[alg])
			if err != nil {
				b.Fatal(err)
			}
			v, err := NewValidator(cfgs[alg])
			if err != nil {
				b.Fatal(err)
			}
			tok, _, err := s.Sign(benchBase(), 10*time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Validate(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	cfgs := benchConfigs(b)
	for _, alg := range benchAlgs {
		b.Run(alg, func(b *testing.B) {
			s, err := NewSigner(cfgs[alg])
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.Sign(benchBase(), 10*time.Minute); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkValidateDesign compares tokenClaims with the obvious
// alternative: the same golang-jwt parser decoding into jwt.MapClaims, then
// a type-checked copy into scopes.Claims (which accepts duplicated claims,
// the last one winning).
func BenchmarkValidateDesign(b *testing.B) {
	cfg := benchConfigs(b)["HS512"]
	s, err := NewSigner(cfg)
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewValidator(cfg)
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := s.Sign(benchBase(), 10*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("tokenClaims", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Validate(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("MapClaims", func(b *testing.B) {
		p := jwt.NewParser(
			jwt.WithValidMethods([]string{"HS512"}),
			jwt.WithAudience(cfg.Audiences...),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithIssuedAt(),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(cfg.Now),
			jwt.WithStrictDecoding(),
		)
		key := func(*jwt.Token) (any, error) { return cfg.Secret, nil }
		b.ReportAllocs()
		for b.Loop() {
			mc := jwt.MapClaims{}
			if _, err := p.ParseWithClaims(tok, mc, key); err != nil {
				b.Fatal(err)
			}
			if _, err := mapToClaims(mc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// mapToClaims is the MapClaims baseline's conversion, with the same type
// checks tokenClaims makes.
func mapToClaims(m jwt.MapClaims) (*scopes.Claims, error) {
	c := &scopes.Claims{}
	str := func(k string, dst *string) error {
		if v, ok := m[k]; ok {
			s, ok := v.(string)
			if !ok {
				return errors.New("wrong type " + k)
			}
			*dst = s
		}
		return nil
	}
	date := func(k string, dst *time.Time) error {
		if v, ok := m[k]; ok {
			f, ok := v.(float64)
			if !ok || f < 0 || f > maxNumericDate {
				return errors.New("wrong type " + k)
			}
			*dst = time.Unix(int64(math.Floor(f)), 0).UTC()
		}
		return nil
	}
	for _, err := range []error{
		str("jti", &c.ID), str("sub", &c.Subject), str("scope", &c.Scope), str("iss", &c.Issuer),
		date("iat", &c.IssuedAt), date("nbf", &c.NotBefore), date("exp", &c.ExpiresAt),
	} {
		if err != nil {
			return nil, err
		}
	}
	aud, err := m.GetAudience()
	if err != nil {
		return nil, err
	}
	c.Audience = slices.Clone([]string(aud))
	for k, v := range m {
		if !reservedClaim(k) {
			if c.Extra == nil {
				c.Extra = map[string]any{}
			}
			c.Extra[k] = v
		}
	}
	return c, nil
}

func BenchmarkDecodeClaims(b *testing.B) {
	payload := []byte(`{"jti":"4f1a0d2c9b8e4c7d8a6b5c4d3e2f1a0b","aud":"urn:airflow.apache.org:task","sub":"0199a3c4-5d6e-7f80-9a1b-2c3d4e5f6071","scope":"execution","iat":1782907200,"nbf":1782907200,"exp":1782907800}`)
	b.Run("tokenClaims", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c tokenClaims
			var claims jwt.Claims = &c
			if err := json.Unmarshal(payload, &claims); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("MapClaims", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			mc := jwt.MapClaims{}
			if err := json.Unmarshal(payload, &mc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
