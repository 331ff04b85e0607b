package tokens

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/taskgate/taskgate/scopes"

	"github.com/taskgate/taskgate/internal/fakeclock"
)

// decodeSegment decodes one token segment as JSON with UseNumber.
func decodeSegment(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSignClaims(t *testing.T) {
	clock := fakeclock.New(t0.Add(700 * time.Millisecond)) // iat is whole seconds
	cfg := Config{
		Secret:    randomSecret(t),
		Issuers:   []string{"https://a.example", "https://b.example"},
		Audiences: []string{testAudience, "urn:other"},
		Leeway:    10 * time.Second,
		Now:       clock.Now,
	}
	s, err := NewSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := &scopes.Claims{
		ID:        "old-jti",
		Subject:   testSubject,
		Scope:     "workload",
		Issuer:    "https://old.example",
		Audience:  []string{"urn:old"},
		IssuedAt:  t0.Add(-time.Hour),
		ExpiresAt: t0.Add(-time.Minute),
		Extra: map[string]any{
			// Standard claims win over same-named extras.
			"exp": 1, "iat": 2, "nbf": 3, "jti": "x", "iss": "y", "aud": "z", "sub": "s", "scope": "execution",
			// Everything else is kept.
			"dag_bundles": []string{"b1", "b2"},
			"job_id":      json.Number("12345678901234567890"),
			"n":           7,
			"note":        `<&"é">`,
		},
	}
	tok, got, err := s.Sign(base, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$`).MatchString(got.ID) {
		t.Errorf("jti %q is not a UUID4 as 32 hex digits", got.ID)
	}
	iat := t0.Unix()
	wantPayload := map[string]any{
		"jti":         got.ID,
		"iss":         "https://a.example",
		"aud":         testAudience,
		"sub":         testSubject,
		"scope":       "workload",
		"iat":         json.Number("1782907200"),
		"nbf":         json.Number("1782907200"),
		"exp":         json.Number("1782907800"),
		"dag_bundles": []any{"b1", "b2"},
		"job_id":      json.Number("12345678901234567890"),
		"n":           json.Number("7"),
		"note":        `<&"é">`,
	}
	if iat != 1782907200 {
		t.Fatalf("t0 moved: %d", iat)
	}
	if diff := cmp.Diff(wantPayload, decodeSegment(t, tok, 1)); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"alg": "HS512", "typ": "JWT"}, decodeSegment(t, tok, 0)); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	wantClaims := &scopes.Claims{
		ID:           got.ID,
		Subject:      testSubject,
		Scope:        "workload",
		ScopePresent: true,
		Issuer:       "https://a.example",
		Audience:     []string{testAudience},
		IssuedAt:     time.Unix(iat, 0).UTC(),
		NotBefore:    time.Unix(iat, 0).UTC(),
		ExpiresAt:    time.Unix(iat+600, 0).UTC(),
		Extra: map[string]any{
			"dag_bundles": []any{"b1", "b2"},
			"job_id":      json.Number("12345678901234567890"),
			"n":           json.Number("7"),
			"note":        `<&"é">`,
		},
	}
	if diff := cmp.Diff(wantClaims, got); diff != "" {
		t.Errorf("returned claims (-want +got):\n%s", diff)
	}
	validated, err := v.Validate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, validated); diff != "" {
		t.Errorf("Validate(Sign(x)) differs from Sign's claims (-sign +validate):\n%s", diff)
	}

	// Re-signing the validated claims is a renewal: same subject, scope and
	// extras; new jti and times.
	clock.Set(t0.Add(5 * time.Minute))
	_, renewed, err := s.Sign(validated, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.ID == got.ID {
		t.Error("renewal kept the jti")
	}
	if diff := cmp.Diff(got.Extra, renewed.Extra); diff != "" {
		t.Errorf("renewal changed extras:\n%s", diff)
	}
	if want := t0.Add(15 * time.Minute); !renewed.ExpiresAt.Equal(want) {
		t.Errorf("renewed exp = %v, want %v", renewed.ExpiresAt, want)
	}
}

func TestSignOmitsEmptyOptionalClaims(t *testing.T) {
	s, err := NewSigner(Config{Secret: randomSecret(t), Audiences: []string{testAudience}, Now: fakeclock.New(t0).Now})
	if err != nil {
		t.Fatal(err)
	}
	tok, got, err := s.Sign(&scopes.Claims{Subject: testSubject}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"jti": got.ID,
		"aud": testAudience,
		"sub": testSubject,
		"iat": json.Number("1782907200"),
		"nbf": json.Number("1782907200"),
		"exp": json.Number("1782907260"),
	}
	if diff := cmp.Diff(want, decodeSegment(t, tok, 1)); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if got.Extra != nil {
		t.Errorf("Extra = %#v, want nil", got.Extra)
	}
}

func TestSignErrors(t *testing.T) {
	s, err := NewSigner(Config{Secret: randomSecret(t), Audiences: []string{testAudience}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		base     *scopes.Claims
		lifetime time.Duration
		want     string
	}{
		{name: "nil claims", base: nil, lifetime: time.Minute, want: "tokens: sign: nil claims"},
		{name: "zero lifetime", base: &scopes.Claims{}, lifetime: 0, want: "tokens: sign: lifetime 0s is shorter than one second"},
		{name: "sub-second lifetime", base: &scopes.Claims{}, lifetime: 999 * time.Millisecond, want: "tokens: sign: lifetime 999ms is shorter than one second"},
		{name: "unencodable extra", base: &scopes.Claims{Extra: map[string]any{"c": make(chan int)}}, lifetime: time.Minute, want: `tokens: sign: claim "c": json: unsupported type: chan int`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.Sign(tc.base, tc.lifetime)
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// rfc7517Key is the RSA key of RFC 7517 appendix A.2, whose public half is
// the RFC 7638 §3.1 example with thumbprint NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs.
func rfc7517Key(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	n := "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	d := "X4cTteJY_gn4FYPsXB8rdXix5vwsg1FLN5E3EaG6RJoVH-HLLKD9M7dx5oo7GURknchnrRweUkC7hT5fJLM0WbFAKNLWY2vv7B6NqXSzUvxT0_YSfqijwp3RTzlBaCxWp4doFk5N2o8Gy_nHNKroADIkJ46pRUohsXywbReAdYaMwFs9tv8d_cPVY3i07a3t8MN6TNwm0dSawm9v47UiCl3Sk5ZiG7xojPLu4sbg1U2jx4IBTNBznbJSzFHK66jT8bgkuqsk0GjskDJk19Z4qwjwbsnn4j2WBii3RL-Us2lGVkY8fkFzme1z0HbIkfz0Y6mqnOYtqc0X4jfcKoAC8Q"
	p := "83i-7IvMGXoMXCskv73TKr8637FiO7Z27zv8oj6pbWUQyLPQBQxtPVnwD20R-60eTDmD2ujnMt5PoqMrm8RfmNhVWDtjjMmCMjOpSXicFHj7XOuVIYQyqVWlWEh6dN36GVZYk93N8Bc9vY41xy8B9RzzOGVQzXvNEvn7O0nVbfs"
	q := "3dfOR9cuYq-0S-mkFLzgItgMEfFzB2q3hWehMuG0oCuqnb3vobLyumqjVZQO1dIrdwgTnCdpYzBcOfW5r370AFXjiWft_NGEiovonizhKpo9VVS78TzFgxkIdrecRezsZ-1kYd_s1qDbxtkDEgfAITAG9LUnADun4vIcb6yelxk"
	num := func(s string) *big.Int {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return new(big.Int).SetBytes(b)
	}
	k := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: num(n), E: 65537},
		D:         num(d),
		Primes:    []*big.Int{num(p), num(q)},
	}
	if err := k.Validate(); err != nil {
		t.Fatalf("RFC 7517 key: %v", err)
	}
	k.Precompute()
	return k
}

func TestThumbprintVectors(t *testing.T) {
	// RFC 8037 appendix A.3: the Ed25519 example key.
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  any
		want string
	}{
		{name: "RFC 7638 RSA", key: &rfc7517Key(t).PublicKey, want: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		{name: "RFC 8037 Ed25519", key: ed25519.PublicKey(x), want: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := thumbprint(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("thumbprint = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSignHeaderKID(t *testing.T) {
	rfcKey := rfc7517Key(t)
	ed := newEdKey(t)
	edThumb, err := thumbprint(ed.Public())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want map[string]any
	}{
		{
			name: "RSA PKCS8, kid = RFC 7638 thumbprint, guessed RS512",
			cfg:  Config{PrivateKeyPath: writePEM(t, rfcKey, false)},
			want: map[string]any{"alg": "RS512", "typ": "JWT", "kid": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		},
		{
			name: "RSA PKCS1, configured kid and RS256",
			cfg:  Config{PrivateKeyPath: writePEM(t, rfcKey, true), KID: "my-kid", Algorithm: "RS256"},
			want: map[string]any{"alg": "RS256", "typ": "JWT", "kid": "my-kid"},
		},
		{
			name: "Ed25519, thumbprint kid, guessed EdDSA",
			cfg:  Config{PrivateKeyPath: writePEM(t, ed, false), Algorithm: "GUESS"},
			want: map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": edThumb},
		},
		{
			name: "secret: no kid even when configured",
			cfg:  Config{Secret: randomSecret(t), KID: "ignored"},
			want: map[string]any{"alg": "HS512", "typ": "JWT"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Audiences = []string{testAudience}
			tc.cfg.Now = fakeclock.New(t0).Now
			s, err := NewSigner(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			tok, _, err := s.Sign(&scopes.Claims{Subject: testSubject}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, decodeSegment(t, tok, 0)); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
			if s.Algorithm() != tc.want["alg"] {
				t.Errorf("Algorithm() = %q", s.Algorithm())
			}
			v, err := NewValidator(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Validate(context.Background(), tok); err != nil {
				t.Errorf("own token refused: %v", err)
			}
		})
	}
}

func TestSignValidateEachAlgorithm(t *testing.T) {
	rk := newRSAKey(t, 2048)
	rsaPath := writePEM(t, rk, false)
	edPath := writePEM(t, newEdKey(t), false)
	for _, tc := range []struct {
		alg string
		cfg Config
	}{
		{"HS512", Config{Secret: randomSecret(t)}},
		{"RS256", Config{PrivateKeyPath: rsaPath, Algorithm: "RS256"}},
		{"RS512", Config{PrivateKeyPath: rsaPath, Algorithm: "RS512"}},
		{"EdDSA", Config{PrivateKeyPath: edPath, Algorithm: "EdDSA"}},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			clock := fakeclock.New(t0)
			tc.cfg.Audiences = []string{testAudience}
			tc.cfg.Leeway = 10 * time.Second
			tc.cfg.Now = clock.Now
			s, err := NewSigner(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			v, err := NewValidator(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if v.Algorithm() != tc.alg || s.Algorithm() != tc.alg {
				t.Fatalf("algorithms %s/%s, want %s", s.Algorithm(), v.Algorithm(), tc.alg)
			}
			tok, claims, err := s.Sign(&scopes.Claims{Subject: testSubject, Scope: "execution"}, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Validate(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(claims, got); diff != "" {
				t.Errorf("(-signed +validated):\n%s", diff)
			}
			clock.Advance(70 * time.Second)
			if _, err := v.Validate(context.Background(), tok); reasonOf(t, err) != "expired" {
				t.Errorf("after lifetime + leeway: %v", err)
			}
		})
	}
}

// TestSignVerbatimSameToken: signing the claims of a token again gives the
// same token, byte for byte, with every algorithm and whatever the clock
// says now. The gateway relies on it to answer a retried /run with the
// execution token the first /run minted.
func TestSignVerbatimSameToken(t *testing.T) {
	rk := newRSAKey(t, 2048)
	rsaPath := writePEM(t, rk, false)
	edPath := writePEM(t, newEdKey(t), false)
	for _, tc := range []struct {
		alg string
		cfg Config
	}{
		{"HS512", Config{Secret: randomSecret(t)}},
		{"RS256", Config{PrivateKeyPath: rsaPath, Algorithm: "RS256"}},
		{"RS512", Config{PrivateKeyPath: rsaPath, Algorithm: "RS512"}},
		{"EdDSA", Config{PrivateKeyPath: edPath, Algorithm: "EdDSA"}},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			clock := fakeclock.New(t0)
			tc.cfg.Audiences = []string{testAudience}
			tc.cfg.Issuers = []string{"https://a.example"}
			tc.cfg.Now = clock.Now
			s, err := NewSigner(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			v, err := NewValidator(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			base := &scopes.Claims{Subject: testSubject, Scope: "execution", Extra: map[string]any{"n": 7, "note": "<é>"}}
			tok, claims, err := s.Sign(base, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if claims.ID == "" {
				t.Error("Sign minted a token without a jti")
			}
			clock.Advance(30 * time.Second)
			again, err := s.SignVerbatim(claims)
			if err != nil {
				t.Fatal(err)
			}
			if again != tok {
				t.Errorf("SignVerbatim of Sign's claims:\n%s\nwant\n%s", again, tok)
			}

			// NewClaims then SignVerbatim is Sign split in two.
			fresh, err := s.NewClaims(base, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if fresh.ID == "" || fresh.ID == claims.ID {
				t.Errorf("NewClaims jti %q, want a fresh one", fresh.ID)
			}
			first, err := s.SignVerbatim(fresh)
			if err != nil {
				t.Fatal(err)
			}
			copied := *fresh
			second, err := s.SignVerbatim(&copied)
			if err != nil {
				t.Fatal(err)
			}
			if first != second {
				t.Error("two SignVerbatim of the same claims differ")
			}
			got, err := v.Validate(context.Background(), first)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(fresh, got); diff != "" {
				t.Errorf("(-new claims +validated):\n%s", diff)
			}
		})
	}
}

func TestSignVerbatimErrors(t *testing.T) {
	s, err := NewSigner(Config{Secret: randomSecret(t), Audiences: []string{testAudience}})
	if err != nil {
		t.Fatal(err)
	}
	iat := time.Unix(1782907200, 0).UTC()
	ok := scopes.Claims{ID: "j", Subject: testSubject, Audience: []string{testAudience}, IssuedAt: iat, ExpiresAt: iat.Add(time.Minute)}
	edit := func(f func(c *scopes.Claims)) *scopes.Claims { c := ok; f(&c); return &c }
	tests := []struct {
		name   string
		claims *scopes.Claims
		want   string
	}{
		{"nil claims", nil, "tokens: sign: nil claims"},
		{"no audience", edit(func(c *scopes.Claims) { c.Audience = nil }), "tokens: sign: no audience"},
		{"no iat", edit(func(c *scopes.Claims) { c.IssuedAt = time.Time{} }), "tokens: sign: iat and exp are required"},
		{"no exp", edit(func(c *scopes.Claims) { c.ExpiresAt = time.Time{} }), "tokens: sign: iat and exp are required"},
		{"fractional exp", edit(func(c *scopes.Claims) { c.ExpiresAt = c.ExpiresAt.Add(time.Millisecond) }), "tokens: sign: iat, nbf and exp must be whole seconds"},
		{"exp before iat", edit(func(c *scopes.Claims) { c.ExpiresAt = iat }), "tokens: sign: exp is not after iat"},
		{"unencodable extra", edit(func(c *scopes.Claims) { c.Extra = map[string]any{"c": make(chan int)} }), `tokens: sign: claim "c": json: unsupported type: chan int`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.SignVerbatim(tc.claims)
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
