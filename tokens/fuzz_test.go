package tokens

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/taskgate/taskgate/scopes"

	"github.com/taskgate/taskgate/internal/fakeclock"
)

// refDecode is an independent reference for tokenClaims.UnmarshalJSON,
// built on encoding/json's generic decoding: same accepted inputs, same
// result.
func refDecode(data []byte) (*scopes.Claims, error) {
	if !json.Valid(data) {
		return nil, errJSONSyntax
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errNotAnObject
	}
	c := &scopes.Claims{}
	seen := map[string]bool{}
	date := func(v any) (time.Time, error) {
		n, ok := v.(json.Number)
		if !ok {
			return time.Time{}, errors.New("not a number")
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || f < 0 || f > maxNumericDate {
			return time.Time{}, errors.New("out of range")
		}
		return time.Unix(int64(math.Floor(f)), 0).UTC(), nil
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := kt.(string)
		if seen[key] {
			return nil, errors.New("duplicate")
		}
		seen[key] = true
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		var ok bool
		switch key {
		case "exp":
			c.ExpiresAt, err = date(v)
		case "iat":
			c.IssuedAt, err = date(v)
		case "nbf":
			c.NotBefore, err = date(v)
		case "iss":
			c.Issuer, ok = v.(string)
		case "sub":
			c.Subject, ok = v.(string)
		case "scope":
			c.Scope, ok = v.(string)
			c.ScopePresent = true
		case "jti":
			c.ID, ok = v.(string)
		case "aud":
			switch a := v.(type) {
			case string:
				ok = true
				if a != "" {
					c.Audience = []string{a}
				}
			case []any:
				ok = true
				for _, e := range a {
					s, isStr := e.(string)
					if !isStr {
						ok = false
						break
					}
					c.Audience = append(c.Audience, s)
				}
			}
		default:
			ok = true
			if c.Extra == nil {
				c.Extra = map[string]any{}
			}
			c.Extra[key] = v
		}
		if err != nil {
			return nil, err
		}
		switch key {
		case "iss", "sub", "scope", "jti", "aud":
			if !ok {
				return nil, errors.New("wrong type")
			}
		}
	}
	return c, nil
}

func FuzzClaimsDecode(f *testing.F) {
	for _, s := range []string{
		`{}`,
		` {"aud":"a","exp":1782907800,"iat":1782907200} `,
		`{"jti":"x","iss":"i","aud":["a","b"],"sub":"s","scope":"execution","iat":1,"nbf":2.5,"exp":3e9}`,
		`{"aud":[],"exp":-0,"x":{"y":[1,2,{"z":null}]},"t":true,"f":false}`,
		`{"esc":"a\"b\\c\u00e9\ud83d\ude00","\u0065xp":1}`,
		`{"bad":"\ud800","inv":"` + "\xff\xfe" + `"}`,
		`{"exp":"1"}`, `{"sub":1}`, `{"aud":{}}`, `{"aud":[1]}`, `{"exp":1e400}`,
		`{"exp":1,"exp":2}`, `{"a":1,"a":2}`, `{"n":{"k":1,"k":2}}`,
		`[]`, `null`, `"s"`, `1`, `{`, `{"a"}`, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":tru}`,
		`{"a":1}x`, "{\"a\":\"\x01\"}", `{"a":[1,]}`, `{"a":{"b":1,}}`, `{,}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if string(bytes.TrimSpace(data)) == "null" {
			return // json.Unmarshal leaves the claims as they are: Validate finds them missing
		}
		// As golang-jwt's parser decodes a payload.
		var c tokenClaims
		var claims jwt.Claims = &c
		err := json.Unmarshal(data, &claims)
		want, refErr := refDecode(data)
		switch {
		case err != nil && refErr != nil:
			return
		case err != nil:
			t.Fatalf("decode refused %q: %v; encoding/json accepts it", data, err)
		case refErr != nil:
			t.Fatalf("decode accepted %q; reference says %v", data, refErr)
		}
		if diff := cmp.Diff(want, c.result()); diff != "" {
			t.Fatalf("decode %q (-reference +got):\n%s", data, diff)
		}
	})
}

func FuzzValidate(f *testing.F) {
	// A fixed secret and clock, so tokens in a saved corpus stay valid.
	secret := []byte("fuzz-secret-do-not-use-0123456789abcdef")
	clock := fakeclock.New(t0)
	cfg := Config{
		Secret:    secret,
		Issuers:   []string{"https://a.example", "https://b.example"},
		Audiences: []string{testAudience, "urn:other"},
		Leeway:    10 * time.Second,
		Now:       clock.Now,
	}
	s, err := NewSigner(cfg)
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewValidator(cfg)
	if err != nil {
		f.Fatal(err)
	}
	for _, base := range []*scopes.Claims{
		{Subject: testSubject},
		{Subject: testSubject, Scope: "workload"},
		{Subject: testSubject, Scope: "execution", Extra: map[string]any{
			"n": json.Number("1.5e3"), "s": "é\u2028<>", "a": []any{nil, true, map[string]any{"k": "v"}},
		}},
	} {
		tok, _, err := s.Sign(base, 10*time.Minute)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := v.Validate(context.Background(), tok); err != nil {
			f.Fatalf("seed token refused: %v", err) // the accept path must be reachable
		}
		f.Add(tok)
		f.Add(tok[:len(tok)-3])
		f.Add(strings.Replace(tok, ".", "..", 1))
	}
	std := with(stdClaims(), "iss", "https://b.example")
	arrayAud := craftMap(f, map[string]any{"alg": "HS512"}, with(std, "aud", []string{"x", "urn:other"}), jwt.SigningMethodHS512, secret)
	if _, err := v.Validate(context.Background(), arrayAud); err != nil {
		f.Fatalf("seed token refused: %v", err)
	}
	f.Add(arrayAud)
	f.Add(craftMap(f, map[string]any{"alg": "HS256"}, std, jwt.SigningMethodHS256, secret))
	f.Add(craftMap(f, map[string]any{"alg": "none"}, std, nil, nil))
	f.Add(craftMap(f, map[string]any{"alg": "HS512", "crit": []string{"b64"}, "b64": false}, std, jwt.SigningMethodHS512, secret))
	f.Add(craft(f, `{"alg":"HS512"}`, `{"aud":"`+testAudience+`","iss":"https://a.example","iat":1782907200,"exp":"1782907800"}`, jwt.SigningMethodHS512, secret))
	f.Add("")
	f.Add("..")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJIUzUxMiJ9.e30.")

	f.Fuzz(func(t *testing.T, raw string) {
		got, err := v.Validate(context.Background(), raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || got != nil {
				t.Fatalf("Validate(%q) = %v, %v", raw, got, err)
			}
			return
		}
		// Accepted: it must be a canonical HS512 token signed with the
		// secret, and the claims must be what encoding/json reads.
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %q with %d segments", raw, len(parts))
		}
		mac := hmac.New(sha512.New, secret)
		mac.Write([]byte(parts[0] + "." + parts[1]))
		if want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); parts[2] != want {
			t.Fatalf("accepted %q whose signature is not the HMAC of the secret", raw)
		}
		hdr, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
		if err != nil {
			t.Fatalf("accepted non-canonical header %q: %v", parts[0], err)
		}
		var h map[string]any
		if err := json.Unmarshal(hdr, &h); err != nil || h["alg"] != "HS512" {
			t.Fatalf("accepted header %s (%v)", hdr, err)
		}
		payload, err := base64.RawURLEncoding.Strict().DecodeString(parts[1])
		if err != nil {
			t.Fatalf("accepted non-canonical payload %q: %v", parts[1], err)
		}
		want, err := refDecode(payload)
		if err != nil {
			t.Fatalf("accepted payload %s the reference refuses: %v", payload, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("claims (-reference +got):\n%s", diff)
		}
	})
}
