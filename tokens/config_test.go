package tokens

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/fakeclock"
	"github.com/taskgate/taskgate/scopes"
)

func TestConfigErrors(t *testing.T) {
	secret := randomSecret(t)
	rsaPath := writePEM(t, newRSAKey(t, 2048), false)
	edPath := writePEM(t, newEdKey(t), false)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ecPath := write("ec.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})))
	smallRSA := writePEM(t, newRSAKey(t, 1024), false)
	garbage := write("garbage.pem", "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
	notPEM := write("not.pem", "hello")
	encrypted := write("enc.pem", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")
	legacyEncrypted := write("legacy.pem", "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n-----END RSA PRIVATE KEY-----\n")
	aud := []string{testAudience}

	type ctor int
	const (
		signer ctor = 1 << iota
		validator
		both = signer | validator
	)
	tests := []struct {
		name string
		who  ctor
		cfg  Config
		want string // substring of the error
	}{
		{name: "both secret and key", who: both, cfg: Config{Secret: secret, PrivateKeyPath: rsaPath, Audiences: aud}, want: "jwt_secret and jwt_private_key_path are both set"},
		{name: "neither (signer)", who: signer, cfg: Config{Audiences: aud}, want: "no signing key"},
		{name: "neither (validator)", who: validator, cfg: Config{Audiences: aud}, want: "no verification key"},
		{name: "JWKS only is no signing key", who: signer, cfg: Config{TrustedJWKSURL: "https://idp.example/jwks", Algorithm: "RS256", Audiences: aud}, want: "no signing key"},
		{name: "GUESS with JWKS", who: validator, cfg: Config{TrustedJWKSURL: "https://idp.example/jwks", Algorithm: "GUESS", Audiences: aud}, want: "cannot guess the algorithm when using trusted_jwks_url"},
		{name: "unset algorithm with JWKS", who: validator, cfg: Config{TrustedJWKSURL: "https://idp.example/jwks", Audiences: aud}, want: "cannot guess the algorithm when using trusted_jwks_url"},
		{name: "HS512 with JWKS", who: validator, cfg: Config{TrustedJWKSURL: "https://idp.example/jwks", Algorithm: "HS512", Audiences: aud}, want: "jwt_algorithm HS512 cannot be used with a JWKS (trusted_jwks_url)"},
		{name: "bad JWKS URL", who: validator, cfg: Config{TrustedJWKSURL: "https://", Algorithm: "RS256", Audiences: aud}, want: "trusted_jwks_url: invalid URL"},
		{name: "EdDSA with RSA key", who: both, cfg: Config{PrivateKeyPath: rsaPath, Algorithm: "EdDSA", Audiences: aud}, want: "jwt_algorithm EdDSA cannot be used with an RSA private key"},
		{name: "HS512 with RSA key", who: both, cfg: Config{PrivateKeyPath: rsaPath, Algorithm: "HS512", Audiences: aud}, want: "jwt_algorithm HS512 cannot be used with an RSA private key"},
		{name: "RS256 with Ed25519 key", who: both, cfg: Config{PrivateKeyPath: edPath, Algorithm: "RS256", Audiences: aud}, want: "jwt_algorithm RS256 cannot be used with an Ed25519 private key"},
		{name: "RS256 with secret", who: both, cfg: Config{Secret: secret, Algorithm: "RS256", Audiences: aud}, want: "jwt_algorithm RS256 cannot be used with a symmetric secret"},
		{name: "EdDSA with secret", who: both, cfg: Config{Secret: secret, Algorithm: "EdDSA", Audiences: aud}, want: "jwt_algorithm EdDSA cannot be used with a symmetric secret"},
		{name: "unsupported algorithm", who: both, cfg: Config{Secret: secret, Algorithm: "HS256", Audiences: aud}, want: `unsupported jwt_algorithm "HS256"`},
		{name: "algorithm case matters", who: both, cfg: Config{Secret: secret, Algorithm: "hs512", Audiences: aud}, want: `unsupported jwt_algorithm "hs512"`},
		{name: "none algorithm", who: both, cfg: Config{Secret: secret, Algorithm: "none", Audiences: aud}, want: `unsupported jwt_algorithm "none"`},
		{name: "missing key file", who: both, cfg: Config{PrivateKeyPath: filepath.Join(dir, "nope.pem"), Audiences: aud}, want: "read private key"},
		{name: "not PEM", who: both, cfg: Config{PrivateKeyPath: notPEM, Audiences: aud}, want: `no PEM "PRIVATE KEY" or "RSA PRIVATE KEY" block`},
		{name: "bad PEM body", who: both, cfg: Config{PrivateKeyPath: garbage, Audiences: aud}, want: "parse PRIVATE KEY"},
		{name: "encrypted PKCS8", who: both, cfg: Config{PrivateKeyPath: encrypted, Audiences: aud}, want: "encrypted private keys are not supported"},
		{name: "encrypted PKCS1", who: both, cfg: Config{PrivateKeyPath: legacyEncrypted, Audiences: aud}, want: "encrypted private keys are not supported"},
		{name: "EC key", who: both, cfg: Config{PrivateKeyPath: ecPath, Audiences: aud}, want: "unsupported private key type *ecdsa.PrivateKey"},
		{name: "small RSA key", who: both, cfg: Config{PrivateKeyPath: smallRSA, Audiences: aud}, want: "RSA key has 1024 bits; at least 2048 are required"},
		{name: "short secret", who: both, cfg: Config{Secret: []byte("short"), Audiences: aud}, want: "jwt_secret is 5 bytes; at least 16 are required"},
		{name: "no audience", who: both, cfg: Config{Secret: secret}, want: "no audience configured"},
		{name: "empty audience", who: both, cfg: Config{Secret: secret, Audiences: []string{testAudience, ""}}, want: "empty audience"},
		{name: "empty issuer", who: both, cfg: Config{Secret: secret, Audiences: aud, Issuers: []string{""}}, want: "empty issuer"},
		{name: "negative leeway", who: both, cfg: Config{Secret: secret, Audiences: aud, Leeway: -time.Second}, want: "negative leeway -1s"},
		{name: "negative refresh", who: both, cfg: Config{Secret: secret, Audiences: aud, JWKSRefresh: -time.Second}, want: "negative JWKS refresh"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: no error, want %q", what, tc.want)
				}
				if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "tokens: ") {
					t.Errorf("%s: error %q, want it to start with \"tokens: \" and contain %q", what, err, tc.want)
				}
			}
			if tc.who&signer != 0 {
				_, err := NewSigner(tc.cfg)
				check("NewSigner", err)
			}
			if tc.who&validator != 0 {
				_, err := NewValidator(tc.cfg)
				check("NewValidator", err)
			}
		})
	}
}

func TestValidatorKeyPriority(t *testing.T) {
	// With a JWKS URL, the JWKS wins over a private key (as in Airflow): a
	// token signed by the private key but absent from the JWKS is refused.
	clock := fakeclock.New(t0)
	rk := newRSAKey(t, 2048)
	jk := newRSAKey(t, 2048)
	jwksPath := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksPath, jwksDoc(t, rsaJWK(&jk.PublicKey, "j1", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		PrivateKeyPath: writePEM(t, rk, false),
		TrustedJWKSURL: jwksPath,
		Algorithm:      "RS512",
		Audiences:      []string{testAudience},
		Now:            clock.Now,
	}
	s, err := NewSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.Sign(&scopes.Claims{Subject: testSubject}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := thumbprint(rk.Public())
	if _, err := v.Validate(t.Context(), tok); reasonOf(t, err) != "unknown kid "+quoteForLog(kid) {
		t.Errorf("token from the private key validated against the JWKS: %v", err)
	}
}
