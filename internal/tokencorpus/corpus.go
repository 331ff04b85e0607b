// Package tokencorpus generates the hostile-token corpus: variants of one
// valid token, each with the answer Airflow's Execution API gives it on a
// ti:self, execution-only route (the status and detail taskgate must match).
//
// It is one generator for two test suites, so they cannot drift apart: the
// integration test sends the HS512 corpus to the real binary, and the tokens
// package runs it against Validator for every key setup (HS512, RSA, Ed25519,
// JWKS). Only tests import it.
package tokencorpus

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Expected answers: the exact 403 detail the gateway writes, or acceptance.
const (
	// Accept is the answer to a token the route lets through.
	Accept = "accept"
	// Invalid is the detail of a token that does not validate.
	Invalid = "Invalid auth token"
	// Mismatch is the detail of a valid token for another task instance.
	Mismatch = "Token subject does not match task instance ID"
	// Workload is the detail of a workload token on an execution-only route.
	Workload = "Token type 'workload' not allowed for this endpoint. Allowed types: execution"
	// Component is the detail of a component token on a task-only route.
	Component = "Component tokens are not allowed for this endpoint"
)

// WantScope is the detail of a token whose scope names no token type:
// Airflow's claims model holds the scope as a closed set of literals, so
// the token is as invalid as one with a bad signature.
func WantScope(string) string { return Invalid }

// Object is a JSON object kept as ordered members with raw JSON values, so
// a variant can hold duplicate names, values of any type or broken JSON,
// which a map or a struct cannot.
type Object []Member

// Member is one member of an Object: its name and its raw JSON value.
type Member struct{ Name, Raw string }

// String returns the object's JSON text, members in order, as they are.
func (o Object) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(Quote(m.Name))
		b.WriteByte(':')
		b.WriteString(m.Raw)
	}
	b.WriteByte('}')
	return b.String()
}

func (o Object) get(name string) string {
	for _, m := range o {
		if m.Name == name {
			return m.Raw
		}
	}
	return ""
}

// Set returns a copy with name's value replaced (or appended).
func (o Object) Set(name, raw string) Object {
	out := append(Object(nil), o...)
	for i := range out {
		if out[i].Name == name {
			out[i].Raw = raw
			return out
		}
	}
	return append(out, Member{name, raw})
}

// Without returns a copy without name.
func (o Object) Without(name string) Object {
	var out Object
	for _, m := range o {
		if m.Name != name {
			out = append(out, m)
		}
	}
	return out
}

// dup returns a copy in which name appears twice, first with first and then
// with second, where it stood.
func (o Object) dup(name, first, second string) Object {
	var out Object
	for _, m := range o {
		if m.Name == name {
			out = append(out, Member{name, first}, Member{name, second})
			continue
		}
		out = append(out, m)
	}
	return out
}

// Quote returns s as a JSON string.
func Quote(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// B64 encodes a token segment: base64url without padding (RFC 7515 §2).
var B64 = base64.RawURLEncoding.EncodeToString

// Setup describes one key setup to generate a corpus for.
type Setup struct {
	Header Object                           // a header the gateway accepts
	Claims Object                           // claims the gateway accepts on the route
	Sign   func(signingInput string) []byte // the right key, the configured algorithm
	// OtherAlgs signs with the right key material under other algorithms
	// (HS256 with the secret, RS256 with an RS512 key …): key right,
	// algorithm not the pinned one.
	OtherAlgs map[string]func(signingInput string) []byte
	// Attacker signs with a key the gateway does not trust; AttackerJWK is
	// that key's public JWK, as a token would advertise it.
	Attacker    func(signingInput string) []byte
	AttackerJWK string
	KidMatters  bool // JWKS mode: the kid selects the key
	// KidDeviation marks private-key mode: Airflow looks the kid up in a
	// JWKS built from the key and refuses a wrong one; taskgate, with one
	// key, ignores it. Wrong kids are then wanted refused, accepted as a
	// known deviation.
	KidDeviation bool
	AltIssuer    string // a second accepted issuer, when the claims carry iss
	TrapURL      string // a server that counts requests; nothing may fetch from it
	Now          int64  // the time the claims were made at
	Leeway       int64
	Margin       int64 // slack around time boundaries (0 with a fake clock)
	Sub          string
	OtherSub     string
	Audience     string
	Long         bool // soak: every bit of every character
}

// Case is one generated token.
type Case struct {
	Family, Name, Token string
	Want                string // Accept or the 403 detail the contract requires
	// Tolerated is a second answer accepted as a known deviation from the
	// contract (logged, not failed); see the issue-7 report.
	Tolerated string
}

// Token signs header and payload (JSON text, taken as they are) with the
// setup's key.
func (s *Setup) Token(header, payload string) string {
	in := B64([]byte(header)) + "." + B64([]byte(payload))
	return in + "." + B64(s.Sign(in))
}

// TokenWith signs header and payload with sign; a nil sign leaves the
// signature empty.
func (s *Setup) TokenWith(sign func(string) []byte, header, payload string) string {
	in := B64([]byte(header)) + "." + B64([]byte(payload))
	if sign == nil {
		return in + "."
	}
	return in + "." + B64(sign(in))
}

// Valid returns the token every variant is made from: the setup's header
// and claims, rightly signed.
func (s *Setup) Valid() string { return s.Token(s.Header.String(), s.Claims.String()) }

// Generate returns the corpus. Variants that must be refused dominate; the
// accepted ones (boundaries on the right side, ignored header members)
// prove each family reaches the accept path.
func (s *Setup) Generate() []Case {
	var out []Case
	add := func(family, name, token, want string) {
		out = append(out, Case{Family: family, Name: name, Token: token, Want: want})
	}
	claims := func(c Object) string { return s.Token(s.Header.String(), c.String()) }
	num := func(n int64) string { return strconv.FormatInt(n, 10) }
	valid := s.Valid()
	add("control", "valid", valid, Accept)

	// --- time claims first: they are the ones a slow sender could age.
	lee, m := s.Leeway, s.Margin
	for _, c := range []struct {
		name, claim string
		value       int64
		want        string
	}{
		{"exp beyond the leeway", "exp", s.Now - lee - m, Invalid},
		{"exp inside the leeway", "exp", s.Now - lee + max(m, 1), Accept},
		{"nbf beyond the leeway", "nbf", s.Now + lee + m + 1, Invalid},
		{"nbf at the leeway", "nbf", s.Now + lee - m, Accept},
		{"iat beyond the leeway", "iat", s.Now + lee + m + 1, Invalid},
		{"iat at the leeway", "iat", s.Now + lee - m, Accept},
		{"exp before iat, in the past", "exp", s.Now - 3600, Invalid},
	} {
		add("claim-boundary", c.name, claims(s.Claims.Set(c.claim, num(c.value))), c.want)
	}

	// --- every claim missing.
	missing := map[string]string{
		"exp": Invalid, "iat": Invalid, "aud": Invalid, "sub": Invalid, "iss": Invalid,
		"nbf": Accept, "scope": Accept, "jti": Accept,
	}
	for _, mb := range s.Claims {
		if w, ok := missing[mb.Name]; ok {
			add("claim-missing", mb.Name, claims(s.Claims.Without(mb.Name)), w)
		}
	}

	// --- every claim with every wrong JSON type.
	samples := []struct{ kind, raw string }{
		{"string", `"1782907800"`}, {"number", `1`}, {"float", `1.5`}, {"bool", `true`},
		{"null", `null`}, {"object", `{}`}, {"array", `[]`}, {"array of numbers", `[1]`},
		{"array of null", `[null]`}, {"nested object", `{"value":"x"}`},
	}
	kinds := map[string]map[string]bool{ // claim → kinds of the right type
		"exp": {"number": true, "float": true}, "iat": {"number": true, "float": true},
		"nbf": {"number": true, "float": true}, "aud": {"string": true},
		"sub": {"string": true}, "scope": {"string": true}, "jti": {"string": true}, "iss": {"string": true},
	}
	for _, claim := range []string{"exp", "iat", "nbf", "aud", "sub", "scope", "jti", "iss"} {
		for _, smp := range samples {
			if kinds[claim][smp.kind] {
				continue
			}
			add("claim-type", claim+" as "+smp.kind, claims(s.Claims.Set(claim, smp.raw)), Invalid)
		}
	}
	// A numeric string in the right claims, and a string holding the subject.
	add("claim-type", "sub as array of the subject", claims(s.Claims.Set("sub", "["+Quote(s.Sub)+"]")), Invalid)
	add("claim-type", "scope as array", claims(s.Claims.Set("scope", `["execution"]`)), Invalid)

	// --- boundary and odd values of each claim.
	aud := Quote(s.Audience)
	for _, c := range []struct {
		name, claim, raw, want string
	}{
		{"exp zero", "exp", `0`, Invalid},
		{"exp negative", "exp", `-1`, Invalid},
		{"exp negative zero", "exp", `-0`, Invalid},
		{"exp 1e400", "exp", `1e400`, Invalid},
		{"exp huge integer", "exp", `99999999999999999999`, Invalid},
		{"exp year 9999", "exp", `253402300799`, Accept},
		{"exp past year 9999", "exp", `253402300800`, Invalid},
		{"exp fractional", "exp", num(s.Now+600) + `.5`, Accept},
		{"exp exponent form", "exp", num(s.Now+600) + `e0`, Accept},
		{"iat zero", "iat", `0`, Accept},
		{"iat negative", "iat", `-1`, Invalid},
		{"iat past year 9999", "iat", `253402300800`, Invalid},
		{"nbf negative", "nbf", `-1`, Invalid},
		{"nbf year 9999", "nbf", `253402300799`, Invalid},
		{"aud empty string", "aud", `""`, Invalid},
		{"aud empty list", "aud", `[]`, Invalid},
		{"aud list of empty string", "aud", `[""]`, Invalid},
		{"aud other", "aud", `"urn:airflow.apache.org:other"`, Invalid},
		{"aud REST audience", "aud", `"urn:taskgate:api"`, Invalid},
		{"aud upper case", "aud", Quote(strings.ToUpper(s.Audience)), Invalid},
		{"aud trailing space", "aud", Quote(s.Audience + " "), Invalid},
		{"aud prefix", "aud", Quote(s.Audience[:len(s.Audience)-1]), Invalid},
		{"aud list without", "aud", `["a","b"]`, Invalid},
		{"aud list with", "aud", `["a",` + aud + `]`, Accept},
		{"aud list twice", "aud", `[` + aud + `,` + aud + `]`, Accept},
		{"aud list with a number", "aud", `[` + aud + `,1]`, Invalid},
		{"sub another task instance", "sub", Quote(s.OtherSub), Mismatch},
		{"sub nil UUID", "sub", `"00000000-0000-0000-0000-000000000000"`, Mismatch},
		{"sub upper case", "sub", Quote(strings.ToUpper(s.Sub)), Accept},
		{"sub in braces", "sub", Quote("{" + s.Sub + "}"), Accept},
		{"sub urn:uuid", "sub", Quote("urn:uuid:" + s.Sub), Accept},
		{"sub 32 hex digits", "sub", Quote(strings.ReplaceAll(s.Sub, "-", "")), Accept},
		{"sub not a UUID", "sub", `"not-a-uuid"`, Invalid},
		{"sub empty", "sub", `""`, Invalid},
		{"sub trailing space", "sub", Quote(s.Sub + " "), Invalid},
		{"sub path traversal", "sub", Quote("../" + s.Sub), Invalid},
		{"sub with NUL", "sub", Quote(s.Sub + "\x00"), Invalid},
		{"sub one digit short", "sub", Quote(s.Sub[:35]), Invalid},
		{"sub non-hex digit", "sub", Quote(s.Sub[:35] + "g"), Invalid},
		{"scope workload", "scope", `"workload"`, Workload},
		{"scope admin", "scope", `"admin"`, WantScope("admin")},
		{"scope upper case", "scope", `"Execution"`, WantScope("Execution")},
		{"scope trailing space", "scope", `"execution "`, WantScope("execution ")},
		{"scope queue (abandoned draft)", "scope", `"queue"`, WantScope("queue")},
		{"jti empty", "jti", `""`, Accept},
		{"jti long", "jti", Quote(strings.Repeat("j", 2000)), Accept},
	} {
		add("claim-value", c.name, claims(s.Claims.Set(c.claim, c.raw)), c.want)
	}
	if iss := s.Claims.get("iss"); iss == "" {
		add("claim-value", "iss unconfigured, any string", claims(s.Claims.Set("iss", `"https://issuer.example"`)), Accept)
	} else {
		add("claim-value", "iss another configured issuer", claims(s.Claims.Set("iss", Quote(s.AltIssuer))), Accept)
		add("claim-value", "iss not configured", claims(s.Claims.Set("iss", `"https://evil.example"`)), Invalid)
		add("claim-value", "iss upper case", claims(s.Claims.Set("iss", strings.ToUpper(iss))), Invalid)
		add("claim-value", "iss empty", claims(s.Claims.Set("iss", `""`)), Invalid)
		add("claim-value", "iss list", claims(s.Claims.Set("iss", "["+iss+"]")), Invalid)
	}
	// Airflow's TokenScope is a Literal: an empty scope is not "no scope".
	out = append(out, Case{Family: "claim-value", Name: "scope empty string",
		Token: claims(s.Claims.Set("scope", `""`)), Want: WantScope(""), Tolerated: Accept})

	// Extra claims of any type are kept, not refused.
	for _, smp := range samples {
		add("claim-extra", "extra claim as "+smp.kind, claims(s.Claims.Set("x_custom", smp.raw)), Accept)
	}
	add("claim-extra", "component claim", claims(s.Claims.Set("component", `"triggerer"`)), Component)
	add("claim-extra", "deeply nested extra claim",
		claims(s.Claims.Set("x_deep", strings.Repeat("[", 2000)+strings.Repeat("]", 2000))), Accept)

	// --- duplicate members.
	for _, mb := range s.Claims {
		add("duplicate", "claim "+mb.Name+" twice, same value", claims(s.Claims.dup(mb.Name, mb.Raw, mb.Raw)), Invalid)
		add("duplicate", "claim "+mb.Name+" twice, other value first", claims(s.Claims.dup(mb.Name, `"x"`, mb.Raw)), Invalid)
	}
	add("duplicate", "extra claim twice", claims(s.Claims.Set("x", "1").dup("x", "1", "2")), Invalid)
	// In the header the last member wins (RFC 7515 §4 allows it; PyJWT and
	// golang-jwt both do so): only the winning value decides.
	// kidCase is the answer to a token whose kid names no trusted key.
	kidCase := func(family, name, token string) {
		switch {
		case s.KidMatters:
			add(family, name, token, Invalid)
		case s.KidDeviation:
			out = append(out, Case{Family: family, Name: name, Token: token, Want: Invalid, Tolerated: Accept})
		default:
			add(family, name, token, Accept)
		}
	}
	for _, mb := range s.Header {
		add("duplicate", "header "+mb.Name+" twice, same value", s.Token(s.Header.dup(mb.Name, mb.Raw, mb.Raw).String(), s.Claims.String()), Accept)
		bad := `"none"`
		if mb.Name == "kid" {
			bad = `"no-such-kid"`
		}
		add("duplicate", "header "+mb.Name+" twice, bad value first", s.Token(s.Header.dup(mb.Name, bad, mb.Raw).String(), s.Claims.String()), Accept)
		last := s.Token(s.Header.dup(mb.Name, mb.Raw, bad).String(), s.Claims.String())
		switch mb.Name {
		case "alg":
			add("duplicate", "header alg twice, bad value last", last, Invalid)
		case "kid":
			kidCase("duplicate", "header kid twice, bad value last", last)
		default:
			add("duplicate", "header "+mb.Name+" twice, bad value last", last, Accept)
		}
	}

	// --- whole payloads that are not a claims object.
	for _, p := range []string{`[]`, `"claims"`, `1`, `null`, `true`, `{}`} {
		add("payload", "payload "+p, s.Token(s.Header.String(), p), Invalid)
	}
	c := s.Claims.String()
	for name, p := range map[string]string{
		"unterminated":    c[:len(c)-1],
		"trailing comma":  c[:len(c)-1] + `,}`,
		"trailing data":   c + `x`,
		"second object":   c + c,
		"single quotes":   strings.ReplaceAll(c, `"`, `'`),
		"unquoted names":  strings.Replace(c, `"jti"`, `jti`, 1),
		"byte order mark": "\ufeff" + c,
		"NaN value":       s.Claims.Set("x", "NaN").String(),
		"comment":         c[:len(c)-1] + `/* x */}`,
		"leading zero":    s.Claims.Set("x", "01").String(),
		"control char":    s.Claims.Set("x", "\"a\x01b\"").String(),
		"empty":           ``,
	} {
		add("json-invalid", "payload "+name, s.Token(s.Header.String(), p), Invalid)
	}
	h := s.Header.String()
	for name, hd := range map[string]string{
		"unterminated":   h[:len(h)-1],
		"trailing comma": h[:len(h)-1] + `,}`,
		"trailing data":  h + `x`,
		"single quotes":  strings.ReplaceAll(h, `"`, `'`),
		"array":          `[` + Quote("alg") + `]`,
		"string":         Quote(h),
		"null":           `null`,
		"empty":          ``,
	} {
		add("json-invalid", "header "+name, s.Token(hd, s.Claims.String()), Invalid)
	}

	// --- the algorithm.
	alg := s.Header.get("alg")
	algName, _ := strconv.Unquote(alg)
	unsigned := func(hd Object) string { return s.TokenWith(nil, hd.String(), s.Claims.String()) }
	add("alg", "alg none, unsigned", unsigned(s.Header.Set("alg", `"none"`)), Invalid)
	add("alg", "alg none, no kid, unsigned", unsigned(s.Header.Without("kid").Set("alg", `"none"`)), Invalid)
	add("alg", "alg None, unsigned", unsigned(s.Header.Set("alg", `"None"`)), Invalid)
	add("alg", "alg NONE, unsigned", unsigned(s.Header.Set("alg", `"NONE"`)), Invalid)
	add("alg", "alg none with the right signature", s.Token(s.Header.Set("alg", `"none"`).String(), s.Claims.String()), Invalid)
	add("alg", "right alg, no signature", unsigned(s.Header), Invalid)
	for _, a := range []string{`""`, `null`, `512`, `["` + algName + `"]`, `{"alg":` + alg + `}`,
		Quote(strings.ToLower(algName)), Quote(algName + " "), `"RS512"`, `"ES256"`, `"PS256"`, `"EdDSA"`, `"Ed25519"`, `"HS512"`, `"dir"`, `"A256KW"`} {
		if a == alg {
			continue
		}
		add("alg", "alg "+a+" with the right key and the configured algorithm's signature",
			s.Token(s.Header.Set("alg", a).String(), s.Claims.String()), Invalid)
	}
	add("alg", "alg missing", s.Token(s.Header.Without("alg").String(), s.Claims.String()), Invalid)
	for name, sign := range s.OtherAlgs {
		add("alg", "alg "+name+" signed with the right key", s.TokenWith(sign, s.Header.Set("alg", Quote(name)).String(), s.Claims.String()), Invalid)
	}

	// --- other header members: typ is ignored, kid selects a key only in
	// JWKS mode, crit is refused, key URLs are never used.
	add("header", "typ missing", s.Token(s.Header.Without("typ").String(), s.Claims.String()), Accept)
	add("header", "typ at+jwt", s.Token(s.Header.Set("typ", `"at+jwt"`).String(), s.Claims.String()), Accept)
	add("header", "typ as number", s.Token(s.Header.Set("typ", `1`).String(), s.Claims.String()), Accept)
	kidCase("header", "kid missing", s.Token(s.Header.Without("kid").String(), s.Claims.String()))
	for _, k := range []string{`""`, `"no-such-kid"`, `"../../../../../../etc/passwd"`, `"/dev/null"`,
		`"..%2F..%2Fetc%2Fpasswd"`, `"file:///etc/passwd"`, Quote(s.TrapURL + "/kid")} {
		kidCase("header", "kid "+k, s.Token(s.Header.Set("kid", k).String(), s.Claims.String()))
	}
	kidCase("header", "kid of 1000 characters", s.Token(s.Header.Set("kid", Quote(strings.Repeat("k", 1000))).String(), s.Claims.String()))
	for _, k := range []string{`1`, `null`, `{"kid":"x"}`, `["x"]`} {
		kidCase("header", "kid as "+k, s.Token(s.Header.Set("kid", k).String(), s.Claims.String()))
	}
	add("header", "crit [exp]", s.Token(s.Header.Set("crit", `["exp"]`).String(), s.Claims.String()), Invalid)
	add("header", "crit []", s.Token(s.Header.Set("crit", `[]`).String(), s.Claims.String()), Invalid)
	add("header", "crit b64 false", s.Token(s.Header.Set("b64", `false`).Set("crit", `["b64"]`).String(), s.Claims.String()), Invalid)
	add("header", "zip DEF", s.Token(s.Header.Set("zip", `"DEF"`).String(), s.Claims.String()), Accept)
	keyURLs := []struct{ name, raw string }{
		{"jku", Quote(s.TrapURL + "/jwks.json")},
		{"x5u", Quote(s.TrapURL + "/cert.pem")},
		{"x5c", `["` + base64.StdEncoding.EncodeToString([]byte("not a certificate")) + `"]`},
		{"jwk", s.AttackerJWK},
	}
	for _, ku := range keyURLs {
		hd := s.Header.Set(ku.name, ku.raw)
		add("key-url", ku.name+" with the right signature (ignored)", s.Token(hd.String(), s.Claims.String()), Accept)
		add("key-url", ku.name+" with the attacker's signature", s.TokenWith(s.Attacker, hd.String(), s.Claims.String()), Invalid)
	}
	all := s.Header
	for _, ku := range keyURLs {
		all = all.Set(ku.name, ku.raw)
	}
	add("key-url", "jku+x5u+x5c+jwk with the attacker's signature", s.TokenWith(s.Attacker, all.String(), s.Claims.String()), Invalid)
	add("key-url", "attacker signature, plain header", s.TokenWith(s.Attacker, s.Header.String(), s.Claims.String()), Invalid)

	// --- size: the 8 KiB limit, exactly.
	add("size", "exactly 8192 bytes", s.sized(8192), Accept)
	add("size", "8193 bytes", s.sized(8193), Invalid)
	add("size", "16 KiB", s.sized(16<<10), Invalid)

	// --- the token string.
	parts := strings.Split(valid, ".")
	for name, tok := range map[string]string{
		"one dot":           ".",
		"two dots":          "..",
		"three dots":        "...",
		"two segments":      parts[0] + "." + parts[1],
		"four segments":     valid + ".x",
		"trailing dot":      valid + ".",
		"leading dot":       "." + valid,
		"two tokens":        valid + "." + valid,
		"five segments":     parts[0] + "." + parts[1] + "." + parts[2] + "." + parts[2] + "." + parts[2],
		"segments swapped":  parts[1] + "." + parts[0] + "." + parts[2],
		"payload signature": parts[0] + "." + parts[1] + "." + parts[1],
		"bearer inside":     "Bearer." + valid,
		"garbage":           "garbage",
		"unicode":           "é.é.é",
	} {
		add("token", name, tok, Invalid)
	}

	// --- every segment × every mutation of its text.
	for seg, text := range parts {
		segName := [...]string{"header", "payload", "signature"}[seg]
		mutate := func(family, name, newText string) {
			if newText == text {
				return // e.g. a padded re-encoding of a length that needs no padding
			}
			p := append([]string(nil), parts...)
			p[seg] = newText
			add(family, segName+" "+name, strings.Join(p, "."), Invalid)
		}
		for _, n := range []int{1, 2, 3, 4} {
			if n < len(text) {
				mutate("truncate", fmt.Sprintf("minus %d", n), text[:len(text)-n])
			}
		}
		mutate("truncate", "half", text[:len(text)/2])
		mutate("truncate", "one character", text[:1])
		mutate("truncate", "empty", "")
		mutate("truncate", "first character cut", text[1:])
		for _, pos := range s.flipPositions(len(text), seg) {
			for _, bit := range s.flipBits() {
				flipped := []byte(text)
				flipped[pos] ^= 1 << bit
				if flipped[pos] == text[pos] {
					continue
				}
				mutate("bit-flip", fmt.Sprintf("byte %d bit %d", pos, bit), string(flipped))
			}
		}
		for _, ch := range []string{"+", "/", "=", "!", "%", "*", "~", `\`, `"`, " ", "\t", "é", "\x00", "\x7f", "\n", ",", ":"} {
			for _, at := range []int{0, len(text) / 2, len(text)} {
				mutate("non-base64", fmt.Sprintf("%q at %d", ch, at), text[:at]+ch+text[at:])
			}
		}
		mutate("padding", "=", text+"=")
		mutate("padding", "==", text+"==")
		mutate("padding", "===", text+"===")
		raw, err := base64.RawURLEncoding.DecodeString(text)
		if err == nil {
			mutate("padding", "standard alphabet, padded", base64.StdEncoding.EncodeToString(raw))
			mutate("padding", "URL alphabet, padded", base64.URLEncoding.EncodeToString(raw))
			if len(raw) > 0 {
				mutate("padding", "one byte more", B64(append(raw, 0)))
				mutate("padding", "one byte less", B64(raw[:len(raw)-1]))
			}
		}
		mutate("padding", "percent-encoded", strings.ReplaceAll(strings.ReplaceAll(text, "-", "%2D"), "_", "%5F")+"%3D")
	}
	return out
}

// flipPositions picks the characters whose bits get flipped: both ends, the
// middle and a spread in between (every one in a soak run).
func (s *Setup) flipPositions(n, seed int) []int {
	if s.Long {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return all
	}
	seen := map[int]bool{}
	var out []int
	for _, p := range []int{0, 1, n / 3, n / 2, (2 * n) / 3, n - 2, n - 1, (seed*7 + 5) % n, (seed*13 + 11) % n} {
		if p >= 0 && p < n && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func (s *Setup) flipBits() []int {
	if s.Long {
		return []int{0, 1, 2, 3, 4, 5, 6, 7}
	}
	return []int{0, 1, 5, 7}
}

// sized returns a valid token of exactly n bytes, padded with a claim.
func (s *Setup) sized(n int) string {
	for extra := 0; extra < 4; extra++ {
		hd := s.Header
		if extra > 0 {
			hd = hd.Set("x_pad", Quote(strings.Repeat("p", extra)))
		}
		lo, hi := 0, n
		for lo <= hi {
			mid := (lo + hi) / 2
			tok := s.Token(hd.String(), s.Claims.Set("x_pad", Quote(strings.Repeat("p", mid))).String())
			switch {
			case len(tok) == n:
				return tok
			case len(tok) < n:
				lo = mid + 1
			default:
				hi = mid - 1
			}
		}
	}
	panic(fmt.Sprintf("no token of exactly %d bytes", n))
}

// Summary sums a corpus by family, for the log.
func Summary(cases []Case) string {
	byFamily := map[string]int{}
	var order []string
	for _, c := range cases {
		if byFamily[c.Family] == 0 {
			order = append(order, c.Family)
		}
		byFamily[c.Family]++
	}
	var b strings.Builder
	for i, f := range order {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", f, byFamily[f])
	}
	return b.String()
}
