package tokens

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/taskgate/taskgate/scopes"
)

// Presence bits for the registered claims, so that "absent" and "zero" are
// distinct and a duplicated claim is noticed.
const (
	hasExp uint8 = 1 << iota
	hasIat
	hasNbf
	hasIss
	hasSub
	hasScope
	hasJti
	hasAud
)

// Limits of numeric dates: a claim outside [0, year 9999] cannot be a real
// timestamp and would overflow time arithmetic.
const maxNumericDate = 253402300799

// maxDepth matches encoding/json's nesting limit so extras decode the same.
const maxDepth = 10000

// tokenClaims is the purpose-built jwt.Claims the parser decodes into. It
// decodes straight into the scopes.Claims it returns (one allocation for the
// whole result), checks every registered claim's JSON type — which
// jwt.MapClaims only does lazily, and RegisteredClaims not for extras — and
// keeps every other claim in Extra.
type tokenClaims struct {
	out     scopes.Claims
	present uint8
	exp     jwt.NumericDate
	iat     jwt.NumericDate
	nbf     jwt.NumericDate
	audBuf  [1]string
	issuers []string // accepted issuers; empty means iss is not checked
}

// claimError is a registered claim that is missing, of the wrong JSON type,
// out of range or duplicated.
type claimError struct {
	claim   string
	problem string
}

func (e *claimError) Error() string { return "claim " + e.claim + " " + e.problem }

var (
	errJSONSyntax  = errors.New("invalid JSON")
	errNotAnObject = errors.New("claims are not a JSON object")
	errTooDeep     = errors.New("JSON nested too deeply")
	errBadIssuer   = errors.New("token has invalid issuer")
)

// UnmarshalJSON decodes a claims set. It is called by golang-jwt's parser
// (after encoding/json has checked the input is well-formed) but does its
// own complete syntax checking, so it is also safe on arbitrary input.
func (c *tokenClaims) UnmarshalJSON(data []byte) error {
	issuers := c.issuers
	*c = tokenClaims{issuers: issuers}
	return c.decode(data)
}

func (c *tokenClaims) decode(data []byte) error {
	// One string conversion; unescaped strings below are substrings of it,
	// so decoding sub/scope/jti/iss/aud allocates nothing more.
	d := scanner{s: string(data)}
	d.ws()
	if !d.eat('{') {
		if d.i >= len(d.s) {
			return errJSONSyntax
		}
		return errNotAnObject
	}
	d.ws()
	if !d.eat('}') {
		for {
			d.ws()
			key, err := d.str()
			if err != nil {
				return err
			}
			d.ws()
			if !d.eat(':') {
				return errJSONSyntax
			}
			d.ws()
			if err := c.member(&d, key); err != nil {
				return err
			}
			d.ws()
			if d.eat(',') {
				continue
			}
			if d.eat('}') {
				break
			}
			return errJSONSyntax
		}
	}
	d.ws()
	if d.i != len(d.s) {
		return errJSONSyntax
	}
	return nil
}

// member decodes one top-level claim. Duplicated names are refused (RFC 7519
// §4 allows it) so that no other JSON parser can read a different claim set
// out of the same signed bytes.
func (c *tokenClaims) member(d *scanner, key string) error {
	bit := claimBit(key)
	if bit != 0 {
		if c.present&bit != 0 {
			return &claimError{claim: key, problem: "is duplicated"}
		}
		c.present |= bit
	}
	var err error
	switch bit {
	case hasExp:
		c.exp, err = d.numericDate(key)
	case hasIat:
		c.iat, err = d.numericDate(key)
	case hasNbf:
		c.nbf, err = d.numericDate(key)
	case hasIss:
		c.out.Issuer, err = d.stringClaim(key)
	case hasSub:
		c.out.Subject, err = d.stringClaim(key)
	case hasScope:
		c.out.Scope, err = d.stringClaim(key)
	case hasJti:
		c.out.ID, err = d.stringClaim(key)
	case hasAud:
		c.out.Audience, err = d.audience(c.audBuf[:0])
	default:
		if _, dup := c.out.Extra[key]; dup {
			return &claimError{claim: key, problem: "is duplicated"}
		}
		var v any
		if v, err = d.value(1); err == nil {
			if c.out.Extra == nil {
				c.out.Extra = make(map[string]any, 2)
			}
			c.out.Extra[key] = v
		}
	}
	return err
}

func claimBit(key string) uint8 {
	switch key {
	case "exp":
		return hasExp
	case "iat":
		return hasIat
	case "nbf":
		return hasNbf
	case "iss":
		return hasIss
	case "sub":
		return hasSub
	case "scope":
		return hasScope
	case "jti":
		return hasJti
	case "aud":
		return hasAud
	}
	return 0
}

// reservedClaim reports whether a claim name is carried by a scopes.Claims
// field rather than by Extra.
func reservedClaim(key string) bool { return claimBit(key) != 0 }

// result finishes the conversion to scopes.Claims.
func (c *tokenClaims) result() *scopes.Claims {
	c.out.IssuedAt = c.iat.Time.UTC()
	c.out.ExpiresAt = c.exp.Time.UTC()
	if c.present&hasNbf != 0 {
		c.out.NotBefore = c.nbf.Time.UTC()
	}
	c.out.ScopePresent = c.present&hasScope != 0
	return &c.out
}

// The jwt.Claims interface. Returning pointers into c allocates nothing.

func (c *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	if c.present&hasExp == 0 {
		return nil, nil
	}
	return &c.exp, nil
}

func (c *tokenClaims) GetIssuedAt() (*jwt.NumericDate, error) {
	if c.present&hasIat == 0 {
		return nil, nil
	}
	return &c.iat, nil
}

func (c *tokenClaims) GetNotBefore() (*jwt.NumericDate, error) {
	if c.present&hasNbf == 0 {
		return nil, nil
	}
	return &c.nbf, nil
}

func (c *tokenClaims) GetIssuer() (string, error)  { return c.out.Issuer, nil }
func (c *tokenClaims) GetSubject() (string, error) { return c.out.Subject, nil }
func (c *tokenClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings(c.out.Audience), nil
}

// Validate adds the checks golang-jwt's validator cannot express: iat and
// aud are required (Airflow's required_claims for the Execution API), and
// iss, when issuers are configured, is required and must be one of several.
// golang-jwt calls it after its own exp/nbf/iat/aud checks.
func (c *tokenClaims) Validate() error {
	for _, r := range [...]struct {
		bit  uint8
		name string
	}{{hasAud, "aud"}, {hasExp, "exp"}, {hasIat, "iat"}} {
		if c.present&r.bit == 0 {
			return &claimError{claim: r.name, problem: "is missing"}
		}
	}
	if len(c.out.Audience) == 0 {
		return &claimError{claim: "aud", problem: "is empty"}
	}
	if len(c.issuers) > 0 {
		if c.present&hasIss == 0 {
			return &claimError{claim: "iss", problem: "is missing"}
		}
		if !slices.Contains(c.issuers, c.out.Issuer) {
			return errBadIssuer
		}
	}
	return nil
}

// scanner is a small strict JSON reader over a string. It accepts exactly
// the grammar of RFC 8259 (the same inputs as encoding/json) and decodes
// strings the way encoding/json does.
type scanner struct {
	s string
	i int
}

func (d *scanner) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *scanner) eat(b byte) bool {
	if d.i < len(d.s) && d.s[d.i] == b {
		d.i++
		return true
	}
	return false
}

func (d *scanner) peek() byte {
	if d.i < len(d.s) {
		return d.s[d.i]
	}
	return 0
}

// str reads a JSON string. Plain ASCII without escapes — every string in
// an Airflow token — is returned as a substring with one tight loop;
// anything else takes strSlow.
func (d *scanner) str() (string, error) {
	if !d.eat('"') {
		return "", errJSONSyntax
	}
	start := d.i
	for d.i < len(d.s) {
		b := d.s[d.i]
		if b == '"' {
			d.i++
			return d.s[start : d.i-1], nil
		}
		if b == '\\' || b < 0x20 || b >= utf8.RuneSelf {
			return d.strSlow(start)
		}
		d.i++
	}
	return "", errJSONSyntax
}

// strSlow finishes a string that has escapes or non-ASCII bytes. Valid
// UTF-8 without escapes is still a substring; the rest goes through
// encoding/json so the result (escapes, invalid UTF-8 replaced by U+FFFD)
// is exactly what encoding/json produces.
func (d *scanner) strSlow(start int) (string, error) {
	plain := true
	for d.i < len(d.s) {
		b := d.s[d.i]
		switch {
		case b == '"':
			body := d.s[start:d.i]
			d.i++
			if plain && utf8.ValidString(body) {
				return body, nil
			}
			var out string
			if err := json.Unmarshal([]byte(d.s[start-1:d.i]), &out); err != nil {
				return "", errJSONSyntax
			}
			return out, nil
		case b == '\\':
			plain = false
			d.i += 2 // the escaped byte cannot end the string; json.Unmarshal checks the escape
		case b < 0x20:
			return "", errJSONSyntax
		default:
			d.i++
		}
	}
	return "", errJSONSyntax
}

// number reads a JSON number and returns its text.
func (d *scanner) number() (string, error) {
	start := d.i
	d.eat('-')
	switch b := d.peek(); {
	case b == '0':
		d.i++
	case b >= '1' && b <= '9':
		d.digits()
	default:
		return "", errJSONSyntax
	}
	if d.eat('.') {
		if !d.digits() {
			return "", errJSONSyntax
		}
	}
	if b := d.peek(); b == 'e' || b == 'E' {
		d.i++
		if b := d.peek(); b == '+' || b == '-' {
			d.i++
		}
		if !d.digits() {
			return "", errJSONSyntax
		}
	}
	return d.s[start:d.i], nil
}

func (d *scanner) digits() bool {
	start := d.i
	for d.i < len(d.s) && d.s[d.i] >= '0' && d.s[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

func (d *scanner) literal(word string) bool {
	if len(d.s)-d.i >= len(word) && d.s[d.i:d.i+len(word)] == word {
		d.i += len(word)
		return true
	}
	return false
}

// jsonKind names the JSON type of the value at the cursor, for messages.
func (d *scanner) jsonKind() string {
	switch b := d.peek(); {
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
	case b == '-' || (b >= '0' && b <= '9'):
		return "number"
	}
	return "invalid JSON"
}

func wrongType(claim, want, got string) error {
	return &claimError{claim: claim, problem: "has wrong type " + got + " (want " + want + ")"}
}

// numericDate reads an RFC 7519 NumericDate: a JSON number of seconds,
// truncated to whole seconds as golang-jwt does.
func (d *scanner) numericDate(claim string) (jwt.NumericDate, error) {
	if k := d.jsonKind(); k != "number" {
		return jwt.NumericDate{}, wrongType(claim, "number", k)
	}
	text, err := d.number()
	if err != nil {
		return jwt.NumericDate{}, err
	}
	// Fast path: a plain integer, which is what every issuer writes.
	if len(text) <= 12 && text[0] != '-' {
		var n int64
		isInt := true
		for i := 0; i < len(text); i++ {
			if c := text[i]; c >= '0' && c <= '9' {
				n = n*10 + int64(c-'0')
			} else {
				isInt = false
				break
			}
		}
		if isInt {
			if n > maxNumericDate {
				return jwt.NumericDate{}, &claimError{claim: claim, problem: "is out of range"}
			}
			return jwt.NumericDate{Time: time.Unix(n, 0)}, nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || f < 0 || f > maxNumericDate {
		return jwt.NumericDate{}, &claimError{claim: claim, problem: "is out of range"}
	}
	return jwt.NumericDate{Time: time.Unix(int64(math.Floor(f)), 0)}, nil
}

func (d *scanner) stringClaim(claim string) (string, error) {
	if k := d.jsonKind(); k != "string" {
		return "", wrongType(claim, "string", k)
	}
	return d.str()
}

// audience reads "aud": a string or an array of strings (RFC 7519 §4.1.3).
// buf is the claims' one-element array, so the usual single-string audience
// allocates nothing.
func (d *scanner) audience(buf []string) ([]string, error) {
	switch d.peek() {
	case '"':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, nil
		}
		return append(buf, s), nil
	case '[':
		d.i++
		d.ws()
		if d.eat(']') {
			return nil, nil
		}
		for {
			d.ws()
			if k := d.jsonKind(); k != "string" {
				return nil, wrongType("aud", "string or array of strings", "array containing "+k)
			}
			s, err := d.str()
			if err != nil {
				return nil, err
			}
			buf = append(buf, s)
			d.ws()
			if d.eat(',') {
				continue
			}
			if d.eat(']') {
				return buf, nil
			}
			return nil, errJSONSyntax
		}
	}
	return nil, wrongType("aud", "string or array of strings", d.jsonKind())
}

// value decodes any JSON value the way encoding/json decodes into an `any`
// with UseNumber: numbers stay json.Number so a re-signed token carries
// them digit for digit.
func (d *scanner) value(depth int) (any, error) {
	switch b := d.peek(); b {
	case '"':
		return d.str()
	case '{':
		if depth++; depth > maxDepth {
			return nil, errTooDeep
		}
		d.i++
		m := make(map[string]any)
		d.ws()
		if d.eat('}') {
			return m, nil
		}
		for {
			d.ws()
			k, err := d.str()
			if err != nil {
				return nil, err
			}
			d.ws()
			if !d.eat(':') {
				return nil, errJSONSyntax
			}
			d.ws()
			v, err := d.value(depth)
			if err != nil {
				return nil, err
			}
			m[k] = v
			d.ws()
			if d.eat(',') {
				continue
			}
			if d.eat('}') {
				return m, nil
			}
			return nil, errJSONSyntax
		}
	case '[':
		if depth++; depth > maxDepth {
			return nil, errTooDeep
		}
		d.i++
		a := make([]any, 0)
		d.ws()
		if d.eat(']') {
			return a, nil
		}
		for {
			d.ws()
			v, err := d.value(depth)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
			d.ws()
			if d.eat(',') {
				continue
			}
			if d.eat(']') {
				return a, nil
			}
			return nil, errJSONSyntax
		}
	case 't':
		if d.literal("true") {
			return true, nil
		}
	case 'f':
		if d.literal("false") {
			return false, nil
		}
	case 'n':
		if d.literal("null") {
			return nil, nil
		}
	default:
		text, err := d.number()
		if err != nil {
			return nil, err
		}
		return json.Number(text), nil
	}
	return nil, errJSONSyntax
}
