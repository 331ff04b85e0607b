package tokens

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/taskgate/taskgate/scopes"
)

// jsonClaims is a task token's claims set as encoding/json reads and writes
// it, and the jwt.Claims golang-jwt's parser decodes into and its
// Token.SignedString encodes. The registered claims are typed fields in the
// order they are written; every other claim is in Extra.
//
// encoding/json alone would match member names case-insensitively ("EXP"
// would set exp), keep the last of duplicated members and read null as
// absent, so UnmarshalJSON walks the top-level members with json.Decoder
// and decodes each registered claim into its field itself: names match
// exactly, a duplicated name is refused and every registered claim must
// have its JSON type.
type jsonClaims struct {
	ID        string       `json:"jti,omitempty"`
	Issuer    string       `json:"iss,omitempty"`
	Audience  audienceJSON `json:"aud"`
	Subject   string       `json:"sub,omitempty"`
	Scope     *string      `json:"scope,omitempty"`
	IssuedAt  *int64       `json:"iat,omitempty"`
	NotBefore *int64       `json:"nbf,omitempty"`
	ExpiresAt *int64       `json:"exp,omitempty"`

	// Extra holds the other claims: decoded (numbers as json.Number), or,
	// when encoding, already encoded.
	Extra    map[string]any             `json:"-"`
	extraEnc map[string]json.RawMessage // set by the signer

	present uint8    // registered claims seen while decoding
	issuers []string // accepted issuers; empty means iss is not checked
}

// audienceJSON is "aud": written as a string when there is one audience
// (as Airflow writes it), else as an array.
type audienceJSON []string

func (a audienceJSON) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON decodes a claims set. golang-jwt's parser calls it through
// json.Unmarshal, which has checked that data is one well-formed value.
func (c *jsonClaims) UnmarshalJSON(data []byte) error {
	*c = jsonClaims{issuers: c.issuers}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return errJSONSyntax
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errNotAnObject
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errJSONSyntax
		}
		key, _ := tok.(string)
		bit := claimBit(key)
		if bit == 0 {
			if _, dup := c.Extra[key]; dup {
				return &claimError{claim: key, problem: "is duplicated"}
			}
			var v any
			if err := dec.Decode(&v); err != nil {
				return errJSONSyntax
			}
			if c.Extra == nil {
				c.Extra = make(map[string]any, 2)
			}
			c.Extra[key] = v
			continue
		}
		if c.present&bit != 0 {
			return &claimError{claim: key, problem: "is duplicated"}
		}
		c.present |= bit
		if err := c.member(dec, key, bit, nextKind(data, dec.InputOffset())); err != nil {
			return err
		}
	}
	return nil
}

// nextKind names the JSON type of the value after the member name that
// ends at offset off of data.
func nextKind(data []byte, off int64) string {
	for i := int(off); i < len(data); i++ {
		switch data[i] {
		case ' ', '\t', '\n', '\r', ':':
			continue
		}
		return kindOf(data[i:])
	}
	return "invalid JSON"
}

// member decodes one registered claim, whose value is of JSON type kind,
// into its field.
func (c *jsonClaims) member(dec *json.Decoder, key string, bit uint8, kind string) error {
	var err error
	switch bit {
	case hasExp:
		c.ExpiresAt, err = decodeDate(dec, key, kind)
	case hasIat:
		c.IssuedAt, err = decodeDate(dec, key, kind)
	case hasNbf:
		c.NotBefore, err = decodeDate(dec, key, kind)
	case hasIss:
		err = decodeString(dec, key, kind, &c.Issuer)
	case hasSub:
		err = decodeString(dec, key, kind, &c.Subject)
	case hasJti:
		err = decodeString(dec, key, kind, &c.ID)
	case hasScope:
		c.Scope = new(string)
		err = decodeString(dec, key, kind, c.Scope)
	case hasAud:
		err = c.decodeAudience(dec, kind)
	}
	return err
}

// kindOf names the JSON type of a well-formed value, for messages.
func kindOf(raw []byte) string {
	switch b := raw[0]; {
	case b == '"':
		return "string"
	case b == '{':
		return "object"
	case b == '[':
		return "array"
	case b == 't' || b == 'f':
		return "boolean"
	case b == 'n':
		return "null"
	}
	return "number"
}

func decodeString(dec *json.Decoder, key, kind string, dst *string) error {
	if kind != "string" {
		return wrongType(key, "string", kind)
	}
	if err := dec.Decode(dst); err != nil {
		return errJSONSyntax
	}
	return nil
}

// decodeDate reads an RFC 7519 NumericDate: a JSON number of seconds in
// [0, year 9999], truncated to whole seconds as golang-jwt does.
func decodeDate(dec *json.Decoder, key, kind string) (*int64, error) {
	if kind != "number" {
		return nil, wrongType(key, "number", kind)
	}
	var num json.Number
	if err := dec.Decode(&num); err != nil {
		return nil, errJSONSyntax
	}
	f, err := num.Float64()
	if err != nil || f < 0 || f > maxNumericDate {
		return nil, &claimError{claim: key, problem: "is out of range"}
	}
	n := int64(math.Floor(f))
	return &n, nil
}

// decodeAudience reads "aud": a string or an array of strings (RFC 7519
// §4.1.3); an empty string or array is no audience.
func (c *jsonClaims) decodeAudience(dec *json.Decoder, kind string) error {
	const want = "string or array of strings"
	switch kind {
	case "string":
		var s string
		if err := dec.Decode(&s); err != nil {
			return errJSONSyntax
		}
		if s != "" {
			c.Audience = audienceJSON{s}
		}
		return nil
	case "array":
		var items []any
		if err := dec.Decode(&items); err != nil {
			return errJSONSyntax
		}
		for _, it := range items {
			s, ok := it.(string)
			if !ok {
				return wrongType("aud", want, "array containing "+kindOfValue(it))
			}
			c.Audience = append(c.Audience, s)
		}
		return nil
	default:
		return wrongType("aud", want, kind)
	}
}

// kindOfValue names the JSON type of a value decoded with UseNumber.
func kindOfValue(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return "number"
}

// MarshalJSON writes the claims: the extra claims first, sorted by name,
// then the registered ones in field order. A registered claim in Extra is
// never written.
func (c *jsonClaims) MarshalJSON() ([]byte, error) {
	type fields jsonClaims // the struct's encoding, without this method
	reg, err := json.Marshal((*fields)(c))
	if err != nil || len(c.extraEnc) == 0 {
		return reg, err
	}
	ext, err := json.Marshal(c.extraEnc)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(ext)+len(reg))
	out = append(out, ext[:len(ext)-1]...)
	out = append(out, ',')
	return append(out, reg[1:]...), nil
}

// result converts the decoded claims to scopes.Claims.
func (c *jsonClaims) result() *scopes.Claims {
	out := &scopes.Claims{
		ID: c.ID, Subject: c.Subject, Issuer: c.Issuer, Extra: c.Extra,
		ScopePresent: c.Scope != nil,
	}
	if c.Scope != nil {
		out.Scope = *c.Scope
	}
	if len(c.Audience) > 0 {
		out.Audience = []string(c.Audience)
	}
	out.IssuedAt = unixUTC(c.IssuedAt)
	out.ExpiresAt = unixUTC(c.ExpiresAt)
	if c.NotBefore != nil {
		out.NotBefore = unixUTC(c.NotBefore)
	}
	return out
}

func unixUTC(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(*n, 0).UTC()
}

// The jwt.Claims interface.

func numericDate(n *int64) *jwt.NumericDate {
	if n == nil {
		return nil
	}
	return jwt.NewNumericDate(time.Unix(*n, 0))
}

func (c *jsonClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	return numericDate(c.ExpiresAt), nil
}
func (c *jsonClaims) GetIssuedAt() (*jwt.NumericDate, error)  { return numericDate(c.IssuedAt), nil }
func (c *jsonClaims) GetNotBefore() (*jwt.NumericDate, error) { return numericDate(c.NotBefore), nil }
func (c *jsonClaims) GetIssuer() (string, error)              { return c.Issuer, nil }
func (c *jsonClaims) GetSubject() (string, error)             { return c.Subject, nil }
func (c *jsonClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings(c.Audience), nil
}

// Validate adds the checks golang-jwt's validator cannot express: iat and
// aud are required (Airflow's required_claims for the Execution API), and
// iss, when issuers are configured, is required and must be one of several.
// golang-jwt calls it after its own exp/nbf/iat/aud checks.
func (c *jsonClaims) Validate() error {
	switch {
	case c.present&hasAud == 0:
		return &claimError{claim: "aud", problem: "is missing"}
	case c.ExpiresAt == nil:
		return &claimError{claim: "exp", problem: "is missing"}
	case c.IssuedAt == nil:
		return &claimError{claim: "iat", problem: "is missing"}
	case len(c.Audience) == 0:
		return &claimError{claim: "aud", problem: "is empty"}
	}
	if len(c.issuers) > 0 {
		if c.present&hasIss == 0 {
			return &claimError{claim: "iss", problem: "is missing"}
		}
		if !slices.Contains(c.issuers, c.Issuer) {
			return errBadIssuer
		}
	}
	return nil
}

// decodeExtra decodes an extra claim's JSON as the validator does: numbers
// as json.Number.
func decodeExtra(enc []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(enc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// encodeStd is encode on golang-jwt's Token.SignedString.
func (s *Signer) encodeStd(c *scopes.Claims, extra map[string]any, keep bool) (string, error) {
	iat, exp := c.IssuedAt.Unix(), c.ExpiresAt.Unix()
	jc := &jsonClaims{
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
	if keys := extraKeys(extra); len(keys) > 0 {
		jc.extraEnc = make(map[string]json.RawMessage, len(keys))
		for _, k := range keys {
			enc, err := json.Marshal(extra[k])
			if err != nil {
				return "", fmt.Errorf("tokens: sign: claim %q: %w", k, err)
			}
			jc.extraEnc[k] = enc
			if keep {
				norm, err := decodeExtra(enc)
				if err != nil {
					return "", fmt.Errorf("tokens: sign: claim %q: %w", k, err)
				}
				if c.Extra == nil {
					c.Extra = make(map[string]any, len(keys))
				}
				c.Extra[k] = norm
			}
		}
	}
	t := jwt.NewWithClaims(s.method, jc)
	if s.kid != "" {
		t.Header["kid"] = s.kid
	}
	tok, err := t.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("tokens: sign: %w", err)
	}
	return tok, nil
}
