package tokens

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// t0 is the fake "now" of most tests.
var t0 = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

const (
	testAudience = "urn:airflow.apache.org:task"
	testSubject  = "0199a3c4-5d6e-7f80-9a1b-2c3d4e5f6071"
)

func newRSAKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newEdKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func randomSecret(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 64)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// writePEM writes key as PKCS8 "PRIVATE KEY" (or PKCS1 for RSA when pkcs1).
func writePEM(t testing.TB, key crypto.Signer, pkcs1 bool) string {
	t.Helper()
	var block *pem.Block
	if rk, ok := key.(*rsa.PrivateKey); ok && pkcs1 {
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}
	} else {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// publicPEM is the PEM of a public key: the bytes a key-confusion attacker
// would use as an HMAC secret.
func publicPEM(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// craft builds a token from literal header and payload JSON, signed with
// method and key (method nil: the given signature text is used as is).
func craft(t testing.TB, header, payload string, method jwt.SigningMethod, key any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	if method == nil {
		return signing + "."
	}
	sig, err := method.Sign(signing, key)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

// craftMap is craft with the header and claims as maps.
func craftMap(t testing.TB, header, claims map[string]any, method jwt.SigningMethod, key any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return craft(t, string(h), string(c), method, key)
}

// stdClaims are the claims Airflow mints, at t0 with a 600 s lifetime.
func stdClaims() map[string]any {
	return map[string]any{
		"jti":   "4f1a0d2c9b8e4c7d8a6b5c4d3e2f1a0b",
		"aud":   testAudience,
		"sub":   testSubject,
		"scope": "execution",
		"iat":   t0.Unix(),
		"nbf":   t0.Unix(),
		"exp":   t0.Unix() + 600,
	}
}

// with returns a copy of m with the given changes; a nil value deletes.
func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}

// rsaJWK and edJWK are public JWKs as a JWKS server publishes them.
func rsaJWK(pub *rsa.PublicKey, kid, alg string) map[string]any {
	m := map[string]any{
		"kty": "RSA",
		"kid": kid,
		"use": "sig",
		"n":   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

func edJWK(pub ed25519.PublicKey, kid string) map[string]any {
	return map[string]any{
		"kty": "OKP",
		"crv": "Ed25519",
		"kid": kid,
		"alg": "EdDSA",
		"x":   base64.RawURLEncoding.EncodeToString(pub),
	}
}

func jwksDoc(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reasonOf returns the reason of a validation error, failing the test if
// the error does not wrap ErrInvalid.
func reasonOf(t testing.TB, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v does not wrap ErrInvalid", err)
	}
	var ie *invalidError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v is not an *invalidError", err)
	}
	return ie.reason
}
