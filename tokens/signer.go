package tokens

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/taskgate/taskgate/scopes"
)

// Signer mints task tokens exactly as Airflow's JWTGenerator does, so a
// token minted here is indistinguishable from one minted by Airflow's
// scheduler. It is safe for concurrent use.
type Signer struct {
	ring     *KeyRing // the active key signs
	issuer   string
	audience string
	now      func() time.Time
}

// NewSigner builds a Signer. It signs with cfg.Ring's active key when
// cfg.Ring is set, else with the secret or the private key in cfg (exactly
// one must be set), whose algorithm is resolved once, here: a value that
// does not fit the key is a configuration error.
func NewSigner(cfg Config) (*Signer, error) {
	if err := cfg.checkCommon(); err != nil {
		return nil, err
	}
	s := &Signer{audience: cfg.Audiences[0], now: cfg.now(), ring: cfg.Ring}
	if len(cfg.Issuers) > 0 {
		s.issuer = cfg.Issuers[0]
	}
	if s.ring == nil {
		k, err := ConfiguredKey(cfg)
		if err != nil {
			return nil, err
		}
		if s.ring, err = NewKeyRing(KeySet{Keys: []StoredKey{k}}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Algorithm returns the algorithm tokens are signed with, e.g. for a
// start-up log line or a JWKS document.
func (s *Signer) Algorithm() string { return s.ring.Algorithm() }

// Sign mints a token valid for lifetime (at least one second) from now. It
// keeps base's subject and scope (each omitted when empty) and every Extra
// claim, and sets jti (a random
// UUID4 as 32 hex digits), iss (the first configured issuer, omitted if
// none), aud (the first configured audience, as a JSON string), and
// iat = nbf = now and exp = iat + lifetime in whole seconds. The standard
// claims win over same-named extras — Airflow's `extras | standard` merge —
// which is what makes re-signing an old token's claims a renewal: subject,
// scope and custom claims carry over, the lifetime and identity do not.
// base.ID, Issuer, Audience and the times are ignored, and so are Extra
// entries named jti, iss, aud, sub, scope, iat, nbf or exp.
//
// The returned claims are exactly what Validate returns for the token
// (Extra values normalised to their JSON decoding: numbers as json.Number).
// Sign is NewClaims followed by SignVerbatim, in one pass.
func (s *Signer) Sign(base *scopes.Claims, lifetime time.Duration) (string, *scopes.Claims, error) {
	out, err := s.newClaims(base, lifetime)
	if err != nil {
		return "", nil, err
	}
	tok, err := s.encode(out, base.Extra, true)
	if err != nil {
		return "", nil, err
	}
	return tok, out, nil
}

// NewClaims returns the claims Sign would put in a new token — a fresh jti,
// iat = nbf = now, exp, the configured iss and aud, base's subject, scope and
// extras — without signing them. With SignVerbatim it lets a caller record a
// token's identity (jti, iat, exp) before handing the token out, and sign
// the very same token again later: the gateway does this for /run, so a
// retried /run gets back the execution token the first one minted instead
// of a second, independent one.
func (s *Signer) NewClaims(base *scopes.Claims, lifetime time.Duration) (*scopes.Claims, error) {
	out, err := s.newClaims(base, lifetime)
	if err != nil {
		return nil, err
	}
	if err := normalizeExtra(out, base.Extra); err != nil {
		return nil, err
	}
	return out, nil
}

// SignVerbatim signs c exactly as given: its jti, iss, sub and scope (each
// omitted when empty; the scope kept when ScopePresent), aud (a JSON string
// for one audience, else an array), iat, nbf (omitted when zero), exp and
// its Extra claims, in the order Sign writes them. Nothing is taken from the
// clock or the configuration but the key and the header, so signing the
// same claims twice gives the same token: HS512, RS256/RS512 (PKCS #1 v1.5)
// and EdDSA signatures are deterministic. A claims set every validator
// refuses — no aud, iat or exp, or times that are not whole seconds — is an
// error, and so is an exp not after iat.
func (s *Signer) SignVerbatim(c *scopes.Claims) (string, error) {
	switch {
	case c == nil:
		return "", errors.New("tokens: sign: nil claims")
	case len(c.Audience) == 0:
		return "", errors.New("tokens: sign: no audience")
	case c.IssuedAt.IsZero() || c.ExpiresAt.IsZero():
		return "", errors.New("tokens: sign: iat and exp are required")
	case c.IssuedAt.Nanosecond() != 0 || c.ExpiresAt.Nanosecond() != 0 || c.NotBefore.Nanosecond() != 0:
		return "", errors.New("tokens: sign: iat, nbf and exp must be whole seconds")
	case !c.ExpiresAt.After(c.IssuedAt):
		return "", errors.New("tokens: sign: exp is not after iat")
	}
	return s.encode(c, c.Extra, false)
}

// newClaims is NewClaims without the extras.
func (s *Signer) newClaims(base *scopes.Claims, lifetime time.Duration) (*scopes.Claims, error) {
	if base == nil {
		return nil, errors.New("tokens: sign: nil claims")
	}
	if lifetime < time.Second {
		return nil, fmt.Errorf("tokens: sign: lifetime %s is shorter than one second", lifetime)
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return nil, fmt.Errorf("tokens: sign: generate jti: %w", err)
	}
	var jti [32]byte
	hex.Encode(jti[:], id[:])

	iat := s.now().Unix()
	exp := iat + int64(lifetime/time.Second)
	return &scopes.Claims{
		ID:      string(jti[:]),
		Subject: base.Subject,
		Scope:   base.Scope,
		// Sign omits an empty scope, so the token has none.
		ScopePresent: base.Scope != "",
		Issuer:       s.issuer,
		Audience:     []string{s.audience},
		IssuedAt:     time.Unix(iat, 0).UTC(),
		NotBefore:    time.Unix(iat, 0).UTC(),
		ExpiresAt:    time.Unix(exp, 0).UTC(),
	}, nil
}

// extraKeys returns the names of extra that are not registered claims,
// sorted: the order they are written in.
func extraKeys(extra map[string]any) []string {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !reservedClaim(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// normalizeExtra sets out.Extra to extra's unregistered claims as a
// validator will decode them.
func normalizeExtra(out *scopes.Claims, extra map[string]any) error {
	_, norm, err := extraClaims(extra, true)
	if err == nil && norm != nil {
		out.Extra = norm
	}
	return err
}

// extraClaims encodes extra's unregistered claims and, with decode, also
// returns them as a validator will decode them (numbers as json.Number),
// so the claims Sign returns equal what Validate will see. Both maps are
// nil when there are none.
func extraClaims(extra map[string]any, decode bool) (map[string]json.RawMessage, map[string]any, error) {
	keys := extraKeys(extra)
	if len(keys) == 0 {
		return nil, nil, nil
	}
	enc := make(map[string]json.RawMessage, len(keys))
	var norm map[string]any
	if decode {
		norm = make(map[string]any, len(keys))
	}
	for _, k := range keys {
		raw, err := json.Marshal(extra[k])
		if err == nil && decode {
			norm[k], err = decodeExtra(raw)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("tokens: sign: claim %q: %w", k, err)
		}
		enc[k] = raw
	}
	return enc, norm, nil
}

// encode signs the token of c, with the claims of extra that are not
// registered claims, through golang-jwt's Token.SignedString: the claims
// are encoded by encoding/json (tokenClaims.MarshalJSON), extras first,
// sorted by name, then jti, iss, aud, sub, scope, iat, nbf and exp. With
// keep, the extras are also stored in c.Extra as a validator will decode
// them. It is the one encoder of every token this package mints.
func (s *Signer) encode(c *scopes.Claims, extra map[string]any, keep bool) (string, error) {
	iat, exp := c.IssuedAt.Unix(), c.ExpiresAt.Unix()
	jc := &tokenClaims{
		ID: c.ID, Issuer: c.Issuer, Audience: audienceJSON(c.Audience), Subject: c.Subject,
		IssuedAt: &iat, ExpiresAt: &exp,
	}
	if c.Scope != "" || c.ScopePresent {
		scope := c.Scope
		jc.Scope = &scope
	}
	if !c.NotBefore.IsZero() {
		nbf := c.NotBefore.Unix()
		jc.NotBefore = &nbf
	}
	enc, norm, err := extraClaims(extra, keep)
	if err != nil {
		return "", err
	}
	jc.extraEnc = enc
	if norm != nil {
		c.Extra = norm
	}
	k := s.ring.state.Load().active
	t := jwt.NewWithClaims(k.method, jc)
	// Airflow emits kid only for asymmetric keys; with a secret there is
	// nothing a verifier could look up, and a kid would only tell an
	// attacker the mode. golang-jwt writes the header's alg and typ.
	if k.alg != algHS512 {
		t.Header["kid"] = k.kid
	}
	tok, err := t.SignedString(k.sign)
	if err != nil {
		return "", fmt.Errorf("tokens: sign: %w", err)
	}
	return tok, nil
}
