package tokens

import (
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/taskgate/taskgate/scopes"
)

// Signer mints task tokens exactly as Airflow's JWTGenerator does, so a
// token minted here is indistinguishable from one minted by Airflow's
// scheduler. It is safe for concurrent use.
type Signer struct {
	alg      string
	method   jwt.SigningMethod
	key      any    // []byte, *rsa.PrivateKey or ed25519.PrivateKey
	header   string // base64url of the header: constant per signer, so encoded once
	issuer   string
	audience string
	now      func() time.Time
}

// NewSigner builds a Signer from the secret or the private key in cfg
// (exactly one must be set). The algorithm is resolved once, here; a value
// that does not fit the key is a configuration error.
func NewSigner(cfg Config) (*Signer, error) {
	if err := cfg.checkCommon(); err != nil {
		return nil, err
	}
	s := &Signer{audience: cfg.Audiences[0], now: cfg.now()}
	if len(cfg.Issuers) > 0 {
		s.issuer = cfg.Issuers[0]
	}
	var kind keyKind
	var pub crypto.PublicKey
	switch {
	case cfg.PrivateKeyPath != "":
		priv, k, err := loadPrivateKey(cfg.PrivateKeyPath)
		if err != nil {
			return nil, err
		}
		s.key, kind, pub = priv, k, priv.Public()
	case len(cfg.Secret) > 0:
		s.key, kind = slices.Clone(cfg.Secret), kindSecret
	default:
		return nil, errors.New("tokens: no signing key: set jwt_secret or jwt_private_key_path")
	}
	alg, err := resolveAlgorithm(cfg.Algorithm, kind)
	if err != nil {
		return nil, err
	}
	s.alg, s.method = alg, signingMethod(alg)

	// Airflow emits kid only for asymmetric keys; with a secret there is
	// nothing to select, and a kid would only tell an attacker the mode.
	hdr := struct {
		Alg string `json:"alg"`
		Kid string `json:"kid,omitempty"`
		Typ string `json:"typ"`
	}{Alg: alg, Typ: "JWT"}
	if kind != kindSecret {
		hdr.Kid = cfg.KID
		if hdr.Kid == "" {
			if hdr.Kid, err = thumbprint(pub); err != nil {
				return nil, err
			}
		}
	}
	raw, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("tokens: encode header: %w", err)
	}
	s.header = base64.RawURLEncoding.EncodeToString(raw)
	return s, nil
}

// Algorithm returns the algorithm tokens are signed with, e.g. for a
// start-up log line or a JWKS document.
func (s *Signer) Algorithm() string { return s.alg }

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
func (s *Signer) Sign(base *scopes.Claims, lifetime time.Duration) (string, *scopes.Claims, error) {
	if base == nil {
		return "", nil, errors.New("tokens: sign: nil claims")
	}
	if lifetime < time.Second {
		return "", nil, fmt.Errorf("tokens: sign: lifetime %s is shorter than one second", lifetime)
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return "", nil, fmt.Errorf("tokens: sign: generate jti: %w", err)
	}
	var jti [32]byte
	hex.Encode(jti[:], id[:])

	iat := s.now().Unix()
	exp := iat + int64(lifetime/time.Second)
	out := &scopes.Claims{
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
	}

	buf := make([]byte, 0, 256)
	buf = append(buf, '{')
	if len(base.Extra) > 0 {
		keys := make([]string, 0, len(base.Extra))
		for k := range base.Extra {
			if !reservedClaim(k) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			v, err := json.Marshal(base.Extra[k])
			if err != nil {
				return "", nil, fmt.Errorf("tokens: sign: claim %q: %w", k, err)
			}
			// Decode what will be in the token, so the returned claims
			// equal what a validator will see.
			d := scanner{s: string(v)}
			norm, err := d.value(1)
			if err != nil {
				return "", nil, fmt.Errorf("tokens: sign: claim %q: %w", k, err)
			}
			if out.Extra == nil {
				out.Extra = make(map[string]any, len(keys))
			}
			out.Extra[k] = norm
			buf = appendJSONString(buf, k)
			buf = append(buf, ':')
			buf = append(buf, v...)
			buf = append(buf, ',')
		}
	}
	buf = append(buf, `"jti":"`...)
	buf = append(buf, jti[:]...)
	buf = append(buf, '"')
	if s.issuer != "" {
		buf = append(buf, `,"iss":`...)
		buf = appendJSONString(buf, s.issuer)
	}
	buf = append(buf, `,"aud":`...)
	buf = appendJSONString(buf, s.audience)
	if base.Subject != "" {
		buf = append(buf, `,"sub":`...)
		buf = appendJSONString(buf, base.Subject)
	}
	if base.Scope != "" {
		buf = append(buf, `,"scope":`...)
		buf = appendJSONString(buf, base.Scope)
	}
	buf = append(buf, `,"iat":`...)
	buf = strconv.AppendInt(buf, iat, 10)
	buf = append(buf, `,"nbf":`...)
	buf = strconv.AppendInt(buf, iat, 10)
	buf = append(buf, `,"exp":`...)
	buf = strconv.AppendInt(buf, exp, 10)
	buf = append(buf, '}')

	enc := base64.RawURLEncoding
	signing := make([]byte, 0, len(s.header)+1+enc.EncodedLen(len(buf))+1+enc.EncodedLen(512))
	signing = append(signing, s.header...)
	signing = append(signing, '.')
	signing = enc.AppendEncode(signing, buf)
	sig, err := s.method.Sign(string(signing), s.key)
	if err != nil {
		return "", nil, fmt.Errorf("tokens: sign: %w", err)
	}
	signing = append(signing, '.')
	signing = enc.AppendEncode(signing, sig)
	return string(signing), out, nil
}

// appendJSONString appends s as a JSON string. The common case — printable
// ASCII without quotes or backslashes — is copied directly; anything else
// goes through encoding/json for exact escaping.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x7f || b == '"' || b == '\\' || b == '<' || b == '>' || b == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}
