package tokens

import (
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync/atomic"

	"github.com/golang-jwt/jwt/v5"
)

// KeyRing is the key set in use: what a Signer signs with and a Validator
// verifies with, swapped as one value when the set changes (a rotation here
// or on another replica). It is safe for concurrent use.
type KeyRing struct {
	state atomic.Pointer[ringState]
}

// ringState is one version of the ring; it never changes once built.
type ringState struct {
	set    KeySet
	active ringKey
	byKID  map[string]ringKey
	// byAlg lists the verifying keys of each algorithm, for a token that
	// names no kid (Airflow's HS512 tokens never do).
	byAlg map[string][]any
	// methods are the algorithms of the set's keys: a token signed with any
	// other algorithm is refused before a key is looked at.
	methods []string
	// jwks is the public half of the set's asymmetric keys as an RFC 7517
	// document; secrets are never in it.
	jwks []byte
}

type ringKey struct {
	kid    string
	alg    string
	method jwt.SigningMethod
	sign   any
	verify any
}

// NewKeyRing builds a ring from a non-empty set.
func NewKeyRing(s KeySet) (*KeyRing, error) {
	r := &KeyRing{}
	if err := r.Set(s); err != nil {
		return nil, err
	}
	return r, nil
}

// Set makes s the ring's set. A set that is empty or holds a key that cannot
// be used is refused, and the ring keeps its current set.
func (r *KeyRing) Set(s KeySet) error {
	if len(s.Keys) == 0 {
		return errors.New("tokens: empty key set")
	}
	st := &ringState{set: s, byKID: make(map[string]ringKey, len(s.Keys)), byAlg: map[string][]any{}}
	var pub []jwk
	for i, k := range s.Keys {
		m, err := k.material()
		if err != nil {
			return err
		}
		if _, err := resolveAlgorithm(k.Algorithm, m.kind); err != nil || k.Algorithm == "" || k.Algorithm == algGuess {
			return fmt.Errorf("tokens: key set: key %q: algorithm %q does not fit its key", k.KID, k.Algorithm)
		}
		if _, dup := st.byKID[k.KID]; dup {
			return fmt.Errorf("tokens: key set: kid %q twice", k.KID)
		}
		rk := ringKey{kid: k.KID, alg: k.Algorithm, method: signingMethod(k.Algorithm), sign: m.sign, verify: m.verify}
		if i == 0 {
			st.active = rk
		}
		st.byKID[k.KID] = rk
		st.byAlg[k.Algorithm] = append(st.byAlg[k.Algorithm], m.verify)
		if !slices.Contains(st.methods, k.Algorithm) {
			st.methods = append(st.methods, k.Algorithm)
		}
		if j, ok := publicJWK(k.KID, k.Algorithm, m.verify); ok {
			pub = append(pub, j)
		}
	}
	if pub == nil {
		pub = []jwk{}
	}
	doc, err := json.Marshal(struct {
		Keys []jwk `json:"keys"`
	}{pub})
	if err != nil {
		return err
	}
	st.jwks = doc
	r.state.Store(st)
	return nil
}

// KeySet returns the ring's current set.
func (r *KeyRing) KeySet() KeySet { return r.state.Load().set }

// JWKS returns the public keys of the set as an RFC 7517 JSON Web Key Set:
// every asymmetric key, active or only verifying, so that a verifier that
// follows the document (another taskgate's or Airflow's trusted_jwks_url)
// accepts tokens signed before and after a rotation. HS512 secrets are
// never published: with them the document has no keys.
func (r *KeyRing) JWKS() []byte { return r.state.Load().jwks }

// Algorithm returns the active key's algorithm.
func (r *KeyRing) Algorithm() string { return r.state.Load().active.alg }

// publicJWK describes an asymmetric public key; a secret has none.
func publicJWK(kid, alg string, verify any) (jwk, bool) {
	switch k := verify.(type) {
	case *rsa.PublicKey:
		return jwk{Kid: kid, Alg: alg, Use: "sig", Kty: "RSA",
			N: base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())}, true
	case ed25519.PublicKey:
		return jwk{Kid: kid, Alg: alg, Use: "sig", Kty: "OKP", Crv: "Ed25519",
			X: base64.RawURLEncoding.EncodeToString(k)}, true
	}
	return jwk{}, false
}

// verificationKey chooses the key that verifies t in state st: the key its
// kid names, which must be of the token's algorithm, or every key of that
// algorithm (golang-jwt tries each) when the token names no kid or one the
// set does not have. The kid only selects: a signature still has to verify
// with a key of the set, and Airflow's own validators ignore a kid they
// cannot use in the same way.
func (st *ringState) verificationKey(t *jwt.Token) (any, error) {
	alg := ""
	if t.Method != nil {
		alg = t.Method.Alg()
	}
	if kid, ok := t.Header["kid"].(string); ok {
		if k, ok := st.byKID[kid]; ok {
			if k.alg != alg {
				return nil, invalid("alg not allowed: " + quoteForLog(alg) + " for kid " + quoteForLog(kid))
			}
			return k.verify, nil
		}
	}
	keys := st.byAlg[alg]
	switch len(keys) {
	case 0:
		return nil, invalid("alg not allowed: " + quoteForLog(alg))
	case 1:
		return keys[0], nil
	}
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k
	}
	return set, nil
}
