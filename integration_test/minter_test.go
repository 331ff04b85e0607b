package integration_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// minter signs hand-made task tokens with the data directory's secret, to
// present the gateway with tokens its own signer would never produce.
//
// The HS512 key is the text of <data-dir>/jwt_secret (trimmed), not its
// base64 decoding: Airflow uses the configured jwt_secret string itself as
// the HMAC key, and the file is meant to be pasted there.
type minter struct {
	t   *testing.T
	key []byte
	// generations are REST users' generations (user_gen), by name.
	generations map[string]any
}

func newMinter(t *testing.T, dataDir string) *minter {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "jwt_secret"))
	if err != nil {
		t.Fatalf("read jwt_secret: %v", err)
	}
	key := bytes.TrimSpace(b)
	collected.addSecret("jwt_secret", string(key))
	return &minter{t: t, key: key}
}

// claims are the claims Airflow's generator writes for a task token valid
// from now for lifetime: jti, aud, sub, scope, iat, nbf, exp. An empty scope
// leaves the claim out.
func (m *minter) claims(sub, scope string, lifetime time.Duration) jwt.MapClaims {
	now := time.Now().Unix()
	c := jwt.MapClaims{
		"jti": strings.ReplaceAll(uuid.NewString(), "-", ""),
		"aud": taskAudience,
		"sub": sub,
		"iat": now,
		"nbf": now,
		"exp": now + int64(lifetime/time.Second),
	}
	if scope != "" {
		c["scope"] = scope
	}
	return c
}

// sign signs claims with method and key and records the token for the log scan.
func (m *minter) sign(method jwt.SigningMethod, key any, c jwt.MapClaims) string {
	m.t.Helper()
	tok, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		m.t.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	collected.addToken("hand-minted token", tok)
	return tok
}

// hs512 signs claims exactly as the gateway's own signer would.
func (m *minter) hs512(c jwt.MapClaims) string { return m.sign(jwt.SigningMethodHS512, m.key, c) }

// execution is a well-formed execution token for sub.
func (m *minter) execution(sub string) string {
	return m.hs512(m.claims(sub, "execution", 600*time.Second))
}

// parse verifies a token the gateway issued with the data directory's key
// and returns its claims.
func (m *minter) parse(tok string) jwt.MapClaims {
	m.t.Helper()
	c := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS512"}), jwt.WithAudience(taskAudience),
		jwt.WithIssuedAt(), jwt.WithExpirationRequired()).
		ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return m.key, nil })
	if err != nil {
		m.t.Fatalf("token issued by the gateway does not verify with the data directory's secret: %v", err)
	}
	return c
}

// with returns a copy of c with the given claims set (a nil value deletes).
func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
			continue
		}
		out[k] = kv[i+1]
	}
	return out
}

// numericClaim returns a NumericDate claim as Unix seconds.
func numericClaim(t *testing.T, c jwt.MapClaims, name string) int64 {
	t.Helper()
	f, ok := c[name].(float64)
	if !ok {
		t.Fatalf("claim %s = %#v, want a number", name, c[name])
	}
	return int64(f)
}

// audienceOf returns the aud claim as a list.
func audienceOf(c jwt.MapClaims) []string {
	switch a := c["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}
