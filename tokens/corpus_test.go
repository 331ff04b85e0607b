package tokens

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/taskgate/taskgate/internal/tokencorpus"
	"github.com/taskgate/taskgate/scopes"

	"github.com/taskgate/taskgate/internal/fakeclock"
)

// corpusPolicy is the route the corpus's answers are written for: an
// execution token whose subject is the path's task instance (heartbeat,
// state …), as gateway/routes.go declares executionSelf.
var corpusPolicy = scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution}, SubjectIsTaskInstance: true}

// corpusVerdict is what the gateway would answer to raw on corpusPolicy's
// route: Validate, then the one authorization decision.
func corpusVerdict(v *Validator, raw, taskInstanceID string) string {
	claims, err := v.Validate(context.Background(), raw)
	if err != nil {
		if !errors.Is(err, ErrInvalid) || claims != nil {
			return fmt.Sprintf("error not wrapping ErrInvalid: %v (claims %v)", err, claims)
		}
		return tokencorpus.Invalid
	}
	if d := scopes.Decide(corpusPolicy, claims, taskInstanceID, scopes.PhaseRunning); d != nil {
		return d.Detail
	}
	return tokencorpus.Accept
}

// corpusSigner signs with a golang-jwt method and key.
func corpusSigner(t *testing.T, method jwt.SigningMethod, key any) func(string) []byte {
	return func(in string) []byte {
		sig, err := method.Sign(in, key)
		if err != nil {
			t.Fatalf("sign %s: %v", method.Alg(), err)
		}
		return sig
	}
}

// corpusTrap counts every request: nothing a token names may be fetched.
type corpusTrap struct {
	*httptest.Server
	hits atomic.Int64
}

func newCorpusTrap(t *testing.T, body []byte) *corpusTrap {
	tr := &corpusTrap{}
	tr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(tr.Close)
	return tr
}

// TestHostileTokenCorpus runs the generated corpus (internal/tokencorpus,
// the same generator as the integration test's) directly against Validator
// and the scope decision for every key setup: HS512 (with and without
// issuers), RS512 and EdDSA from a private key, and JWKS (RS256 over HTTP,
// EdDSA from a file), plus the key-confusion tokens an attacker makes from a
// public key. The clock is fake, so time boundaries are tested to the
// second. It reports the corpus size per setup.
func TestHostileTokenCorpus(t *testing.T) {
	clock := fakeclock.New(t0)
	now := t0.Unix()
	secret := randomSecret(t)
	attackerSecret := randomSecret(t)
	rsaKey, edKey := newRSAKey(t, 2048), newEdKey(t)
	attackerRSA, attackerEd := newRSAKey(t, 2048), newEdKey(t)
	jwksRSA, jwksEd := newRSAKey(t, 2048), newEdKey(t)
	rsaKid, err := thumbprint(rsaKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	edKid, err := thumbprint(edKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	jwksServer := newCorpusTrap(t, jwksDoc(t, rsaJWK(&jwksRSA.PublicKey, "rsa-1", "RS256")))
	edJWKSPath := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(edJWKSPath, jwksDoc(t, edJWK(jwksEd.Public().(ed25519.PublicKey), "ed-1")), 0o600); err != nil {
		t.Fatal(err)
	}
	// A JWKS with the attacker's keys, on a trap server and in a file a kid
	// could name.
	attackerDoc := jwksDoc(t, rsaJWK(&attackerRSA.PublicKey, "rsa-1", "RS256"), edJWK(attackerEd.Public().(ed25519.PublicKey), "ed-1"))
	trap := newCorpusTrap(t, attackerDoc)
	attackerFile := filepath.Join(t.TempDir(), "attacker-jwks.json")
	if err := os.WriteFile(attackerFile, attackerDoc, 0o600); err != nil {
		t.Fatal(err)
	}
	rsaJWKText := func(pub *rsa.PublicKey, kid string) string {
		b, _ := json.Marshal(rsaJWK(pub, kid, ""))
		return string(b)
	}
	edJWKText := func(pub ed25519.PublicKey, kid string) string {
		b, _ := json.Marshal(edJWK(pub, kid))
		return string(b)
	}

	const sub, otherSub = testSubject, "0199a3c4-5d6e-7f80-9a1b-2c3d4e5f6072"
	claims := tokencorpus.Object{
		{Name: "jti", Raw: `"4f1a0d2c9b8e4c7d8a6b5c4d3e2f1a0b"`},
		{Name: "aud", Raw: tokencorpus.Quote(testAudience)},
		{Name: "sub", Raw: tokencorpus.Quote(sub)},
		{Name: "scope", Raw: `"execution"`},
		{Name: "iat", Raw: strconv.FormatInt(now, 10)},
		{Name: "nbf", Raw: strconv.FormatInt(now, 10)},
		{Name: "exp", Raw: strconv.FormatInt(now+600, 10)},
	}
	base := Config{Audiences: []string{testAudience}, Leeway: 10 * time.Second, Now: clock.Now}
	type setup struct {
		name string
		cfg  Config
		gen  tokencorpus.Setup
		// confusion is public key material an attacker would use as an
		// HMAC secret (asymmetric setups only).
		confusion map[string][]byte
	}
	hsGen := func(c tokencorpus.Object) tokencorpus.Setup {
		return tokencorpus.Setup{
			Header: tokencorpus.Object{{Name: "alg", Raw: `"HS512"`}, {Name: "typ", Raw: `"JWT"`}}, Claims: c,
			Sign: corpusSigner(t, jwt.SigningMethodHS512, secret),
			OtherAlgs: map[string]func(string) []byte{
				"HS256": corpusSigner(t, jwt.SigningMethodHS256, secret),
				"HS384": corpusSigner(t, jwt.SigningMethodHS384, secret),
			},
			Attacker:    corpusSigner(t, jwt.SigningMethodHS512, attackerSecret),
			AttackerJWK: `{"kty":"oct","kid":"attacker","k":"` + tokencorpus.B64(attackerSecret) + `"}`,
		}
	}
	rsaConfusion := func(pub *rsa.PublicKey, kid string) map[string][]byte {
		m := publicKeyForms(t, pub, pub.N.Bytes(), rsaJWKText(pub, kid), kid)
		m["PKCS1 PEM public key"] = pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(pub)})
		return m
	}
	edPub, jwksEdPub := edKey.Public().(ed25519.PublicKey), jwksEd.Public().(ed25519.PublicKey)
	setups := []setup{
		{name: "HS512", cfg: withCfg(base, func(c *Config) { c.Secret = secret }), gen: hsGen(claims)},
		{name: "HS512 with issuers", cfg: withCfg(base, func(c *Config) {
			c.Secret = secret
			c.Issuers = []string{"https://a.example", "https://b.example"}
		}), gen: func() tokencorpus.Setup {
			g := hsGen(claims.Set("iss", `"https://a.example"`))
			g.AltIssuer = "https://b.example"
			return g
		}()},
		{name: "RS512 private key", cfg: withCfg(base, func(c *Config) { c.PrivateKeyPath = writePEM(t, rsaKey, false) }), gen: tokencorpus.Setup{
			Header: tokencorpus.Object{{Name: "alg", Raw: `"RS512"`}, {Name: "kid", Raw: tokencorpus.Quote(rsaKid)}, {Name: "typ", Raw: `"JWT"`}}, Claims: claims,
			Sign: corpusSigner(t, jwt.SigningMethodRS512, rsaKey),
			OtherAlgs: map[string]func(string) []byte{
				"RS256": corpusSigner(t, jwt.SigningMethodRS256, rsaKey),
				"PS256": corpusSigner(t, jwt.SigningMethodPS256, rsaKey),
				"PS512": corpusSigner(t, jwt.SigningMethodPS512, rsaKey),
			},
			Attacker: corpusSigner(t, jwt.SigningMethodRS512, attackerRSA), AttackerJWK: rsaJWKText(&attackerRSA.PublicKey, rsaKid),
			KidDeviation: true,
		}, confusion: rsaConfusion(&rsaKey.PublicKey, rsaKid)},
		{name: "EdDSA private key", cfg: withCfg(base, func(c *Config) { c.PrivateKeyPath = writePEM(t, edKey, false) }), gen: tokencorpus.Setup{
			Header: tokencorpus.Object{{Name: "alg", Raw: `"EdDSA"`}, {Name: "kid", Raw: tokencorpus.Quote(edKid)}, {Name: "typ", Raw: `"JWT"`}}, Claims: claims,
			Sign:     corpusSigner(t, jwt.SigningMethodEdDSA, edKey),
			Attacker: corpusSigner(t, jwt.SigningMethodEdDSA, attackerEd), AttackerJWK: edJWKText(attackerEd.Public().(ed25519.PublicKey), edKid),
			KidDeviation: true,
		}, confusion: publicKeyForms(t, edPub, edPub, edJWKText(edPub, edKid), edKid)},
		{name: "JWKS RS256 over HTTP", cfg: withCfg(base, func(c *Config) {
			c.TrustedJWKSURL = jwksServer.URL + "/jwks.json"
			c.Algorithm = "RS256"
		}), gen: tokencorpus.Setup{
			Header: tokencorpus.Object{{Name: "alg", Raw: `"RS256"`}, {Name: "kid", Raw: `"rsa-1"`}, {Name: "typ", Raw: `"JWT"`}}, Claims: claims,
			Sign: corpusSigner(t, jwt.SigningMethodRS256, jwksRSA),
			OtherAlgs: map[string]func(string) []byte{
				"RS512": corpusSigner(t, jwt.SigningMethodRS512, jwksRSA),
				"PS256": corpusSigner(t, jwt.SigningMethodPS256, jwksRSA),
			},
			Attacker: corpusSigner(t, jwt.SigningMethodRS256, attackerRSA), AttackerJWK: rsaJWKText(&attackerRSA.PublicKey, "rsa-1"),
			KidMatters: true,
		}, confusion: rsaConfusion(&jwksRSA.PublicKey, "rsa-1")},
		{name: "JWKS EdDSA from a file", cfg: withCfg(base, func(c *Config) {
			c.TrustedJWKSURL = edJWKSPath
			c.Algorithm = "EdDSA"
		}), gen: tokencorpus.Setup{
			Header: tokencorpus.Object{{Name: "alg", Raw: `"EdDSA"`}, {Name: "kid", Raw: `"ed-1"`}, {Name: "typ", Raw: `"JWT"`}}, Claims: claims,
			Sign:     corpusSigner(t, jwt.SigningMethodEdDSA, jwksEd),
			Attacker: corpusSigner(t, jwt.SigningMethodEdDSA, attackerEd), AttackerJWK: edJWKText(attackerEd.Public().(ed25519.PublicKey), "ed-1"),
			KidMatters: true,
		}, confusion: publicKeyForms(t, jwksEdPub, jwksEdPub, edJWKText(jwksEdPub, "ed-1"), "ed-1")},
	}
	total := 0
	for _, st := range setups {
		t.Run(st.name, func(t *testing.T) {
			clock.Set(t0)
			v, err := NewValidator(st.cfg)
			if err != nil {
				t.Fatal(err)
			}
			g := st.gen
			g.TrapURL, g.Now, g.Leeway, g.Margin = trap.URL, now, 10, 0
			g.Sub, g.OtherSub, g.Audience, g.Long = sub, otherSub, testAudience, os.Getenv("SOAK") == "1"
			cases := g.Generate()
			// Key confusion: HMAC "signed" with the public key in every
			// encoding, under each HMAC algorithm, with and without the kid.
			for what, material := range st.confusion {
				for _, alg := range []struct {
					name   string
					method jwt.SigningMethod
				}{{"HS512", jwt.SigningMethodHS512}, {"HS256", jwt.SigningMethodHS256}, {"HS384", jwt.SigningMethodHS384}} {
					for _, keepKid := range []bool{true, false} {
						h := g.Header.Set("alg", tokencorpus.Quote(alg.name))
						if !keepKid {
							h = h.Without("kid")
						}
						cases = append(cases, tokencorpus.Case{Family: "key-confusion",
							Name:  fmt.Sprintf("%s with the %s (kid kept %v)", alg.name, what, keepKid),
							Token: g.TokenWith(corpusSigner(t, alg.method, material), h.String(), g.Claims.String()), Want: tokencorpus.Invalid})
					}
				}
			}
			if g.KidMatters {
				for _, k := range []string{attackerFile, "file://" + attackerFile, trap.URL + "/jwks.json"} {
					cases = append(cases, tokencorpus.Case{Family: "kid", Name: "kid naming the attacker's JWKS " + k,
						Token: g.TokenWith(g.Attacker, g.Header.Set("kid", tokencorpus.Quote(k)).String(), g.Claims.String()), Want: tokencorpus.Invalid})
				}
			}
			var deviations []string
			for _, c := range cases {
				got := corpusVerdict(v, c.Token, sub)
				switch {
				case got == c.Want:
				case c.Tolerated != "" && got == c.Tolerated:
					deviations = append(deviations, c.Family+"/"+c.Name)
				default:
					t.Errorf("%s/%s: got %q, want %q", c.Family, c.Name, got, c.Want)
				}
			}
			if len(deviations) > 0 {
				t.Logf("KNOWN DEVIATIONS (reported in issue 7), answered as tolerated: %s", strings.Join(deviations, "; "))
			}
			t.Logf("%s: %d tokens (%s)", st.name, len(cases), tokencorpus.Summary(cases))
			total += len(cases)
		})
	}
	if n := trap.hits.Load(); n != 0 {
		t.Errorf("a URL named in a token header was fetched %d times", n)
	}
	// The JWKS server is fetched at start and at most once more for the
	// unknown kids (rate-limited; the fake clock does not move).
	if n := jwksServer.hits.Load(); n > 2 {
		t.Errorf("the JWKS was fetched %d times for one corpus, want at most 2", n)
	}
	t.Logf("hostile token corpus: %d tokens over %d setups", total, len(setups))
}

// publicKeyForms are the encodings of a public key an attacker might feed
// to HMAC: PEM (with and without its final newline), DER, the raw key, the
// JWK and the kid (the key's thumbprint).
func publicKeyForms(t *testing.T, pub crypto.PublicKey, raw []byte, jwk, kid string) map[string][]byte {
	pemPub := publicPEM(t, pub)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"PEM public key":                 pemPub,
		"PEM public key without the EOL": bytes.TrimSpace(pemPub),
		"DER public key":                 der,
		"raw public key":                 raw,
		"public JWK":                     []byte(jwk),
		"kid":                            []byte(kid),
	}
}
