package integration_test

import (
	"bufio"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/taskgate/taskgate/internal/tokencorpus"
)

// Hostile tokens against the real binary. Every variant must get the answer
// Airflow's Execution API gives it and never a 5xx; nothing
// a token names in its header may ever be fetched.

// TestHostileTokenCorpus sends the generated corpus (internal/tokencorpus)
// for the HS512 setup — the data directory's secret — to a ti:self route
// (heartbeat) and a shared-read route (variables), and compares every answer
// with the one the contract requires.
func TestHostileTokenCorpus(t *testing.T) {
	dataDir := newDataDir(t)
	const dagID, runID = "hostile_dag", "manual__2026-11-27T13:00:00+00:00"
	q := queueTask(t, dataDir, dagID, runID, "victim")
	other := queueTask(t, dataDir, dagID, runID, "bystander")
	mustCLI(t, dataDir, "variables", "set", "hostile_var", "v")
	attackerSecret := []byte("attacker-chosen-secret-0123456789abcdef-0123456789abcdef")
	attackerJWK := `{"kty":"oct","kid":"attacker","k":"` + tokencorpus.B64(attackerSecret) + `"}`
	trap := newTrapServer(t, `{"keys":[`+attackerJWK+`]}`)
	srv := startServer(t, dataDir, noAuthLimit)
	m := newMinter(t, dataDir)
	me := host{"worker-h", "airflow", 7001}
	w := newWorker(t, srv.URL, q.Token)
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
	// The bystander runs too: a running try's token may read shared data.
	bystander := newWorker(t, srv.URL, other.Token)
	mustStatus(t, bystander.do("PATCH", tiPath(other.TIID, "run"), host{"worker-b", "airflow", 7002}.runPayload(t)), 200)

	now := time.Now().Unix()
	setup := &tokencorpus.Setup{
		Header: tokencorpus.Object{{Name: "alg", Raw: `"HS512"`}, {Name: "typ", Raw: `"JWT"`}},
		Claims: tokencorpus.Object{
			{Name: "jti", Raw: tokencorpus.Quote(strings.ReplaceAll(uuid.NewString(), "-", ""))},
			{Name: "aud", Raw: tokencorpus.Quote(taskAudience)},
			{Name: "sub", Raw: tokencorpus.Quote(q.TIID)},
			{Name: "scope", Raw: `"execution"`},
			{Name: "iat", Raw: strconv.FormatInt(now, 10)},
			{Name: "nbf", Raw: strconv.FormatInt(now, 10)},
			{Name: "exp", Raw: strconv.FormatInt(now+600, 10)},
		},
		Sign: hmacSigner(sha512.New, m.key),
		OtherAlgs: map[string]func(string) []byte{
			"HS256": hmacSigner(sha256.New, m.key),
			"HS384": hmacSigner(sha512.New384, m.key),
		},
		Attacker:    hmacSigner(sha512.New, attackerSecret),
		AttackerJWK: attackerJWK,
		TrapURL:     trap.URL,
		Now:         now,
		Leeway:      10,
		Margin:      4, // the corpus is sent within a few seconds; time variants go first
		Sub:         q.TIID,
		OtherSub:    other.TIID,
		Audience:    taskAudience,
		Long:        soakMode(),
	}
	cases := setup.Generate()

	type route struct {
		name, method, path, body string
		// want adapts the corpus's answer (written for a ti:self,
		// execution-only route) to this route, for the case named name.
		want func(w, name string) string
	}
	noTaskInstance := "HTTP 404 " + `{"detail":{"message":"Task Instance not found","reason":"not_found"}}` + "\n"
	routes := []route{
		{"heartbeat", http.MethodPut, tiPath(q.TIID, "heartbeat"), me.heartbeat(t), func(w, _ string) string { return w }},
		{"variable read", http.MethodGet, variablePath("hostile_var"), "", func(w, name string) string {
			switch {
			case w == tokencorpus.Mismatch && name == "sub nil UUID":
				return noTaskInstance // a valid token of no try acts on nothing
			case w == tokencorpus.Mismatch || w == tokencorpus.Component: // no ti:self; components may read
				return tokencorpus.Accept
			case w == tokencorpus.Workload: // a DAG processor may read secrets too
				return "Token type 'workload' not allowed for this endpoint. Allowed types: dag_processor, execution"
			}
			return w
		}},
	}
	client := newPooledClient(8)
	var (
		mu         sync.Mutex
		failures   []string
		deviations = map[string]string{}
		skipped    int
		httpLayer  int
		sent       int
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	valid := setup.Valid()
	start := time.Now()
	forEachParallel(len(cases)*len(routes), 8, func(i int) {
		c, rt := cases[i/len(routes)], routes[i%len(routes)]
		label := fmt.Sprintf("%s/%s on %s", c.Family, c.Name, rt.name)
		want := rt.want(c.Want, c.Name)
		// What the server reads as the header value: a bare LF ends the
		// line, and surrounding blanks are trimmed.
		seen, _, _ := strings.Cut(c.Token, "\n")
		if strings.Trim(seen, " \t") == valid && c.Token != valid {
			mu.Lock()
			skipped++ // the server reads the valid token: nothing to test
			mu.Unlock()
			return
		}
		collected.addToken("hostile corpus token", c.Token)
		if !headerSafe(c.Token) {
			// Not a header value the Go client will send: write it raw.
			// net/http refuses the request line or header itself (400).
			req := rt.method + " " + rt.path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + c.Token +
				"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(rt.body)) + "\r\n\r\n" + rt.body
			res, err := rawExchange(srv.rawAddr(), []byte(req), 10*time.Second)
			switch {
			case err != nil:
				fail("%s: %v", label, err)
			case res.status != 400 && res.status != 403:
				fail("%s: raw request answered %s, want 400 or 403", label, res)
			}
			mu.Lock()
			httpLayer++
			sent++
			mu.Unlock()
			return
		}
		res, err := doPlain(client, rt.method, srv.URL+rt.path, map[string]string{
			"Authorization":       "Bearer " + c.Token,
			"Content-Type":        "application/json",
			"Airflow-API-Version": apiVersion,
		}, []byte(rt.body))
		mu.Lock()
		sent++
		mu.Unlock()
		if err != nil {
			fail("%s: %v", label, err)
			return
		}
		if res.status >= 500 {
			fail("%s: server error %s", label, res)
			return
		}
		got := res.verdict()
		if got != want {
			if c.Tolerated != "" && got == rt.want(c.Tolerated, c.Name) {
				mu.Lock()
				deviations[label] = got
				mu.Unlock()
			} else {
				fail("%s: got %q, want %q", label, got, want)
			}
		}
		if res.status == 403 {
			if h := res.header.Get("WWW-Authenticate"); h != `Bearer error="invalid_token"` {
				fail("%s: 403 with WWW-Authenticate %q", label, h)
			}
			if res.header.Get("Refreshed-API-Token") != "" {
				fail("%s: a refused token was renewed", label)
			}
		}
		if v := res.header.Get("Airflow-API-Version"); v != apiVersion {
			fail("%s: Airflow-API-Version %q", label, v)
		}
	})
	elapsed := time.Since(start)
	sort.Strings(failures)
	for i, f := range failures {
		if i == 50 {
			t.Errorf("… and %d more failures", len(failures)-50)
			break
		}
		t.Error(f)
	}
	for label, got := range deviations {
		t.Logf("KNOWN DEVIATION %s: answered %q (reported in issue 7)", label, got)
	}
	t.Logf("hostile token corpus: %d tokens (%s) × %d routes = %d requests in %s (%d raw, refused by net/http; %d skipped as read by the server as the valid token: blanks trimmed, or cut by a line feed)",
		len(cases), tokencorpus.Summary(cases), len(routes), sent, elapsed.Round(time.Millisecond), httpLayer, skipped)
	trap.wantNoHits(t)

	// Nothing the corpus sent changed the task instance: it still runs on
	// its worker, and the worker's own token still works.
	wantNoContent(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204)
	srv.mustBeAlive(t)
	client.CloseIdleConnections() // or a spare dial of the pool holds up the graceful stop
	srv.stop()
}

// verdict is the corpus's name for an answer: "accept", the 403 detail, or
// the status and body of anything else.
func (r *plainResult) verdict() string {
	switch {
	case r.status >= 200 && r.status < 300:
		return tokencorpus.Accept
	case r.status == 403:
		if d := r.detail(); d != "" {
			return d
		}
	}
	return fmt.Sprintf("HTTP %d %s", r.status, clipText(string(r.body), 120))
}

// TestHostileTokensAsymmetricBinary runs the real binary with an RSA and
// with an Ed25519 private key and presents tokens an attacker can make from
// the public half: HS512 "signed" with the public key in every encoding
// (key confusion), alg none, and tokens signed with the attacker's own key
// that point at it through jku, x5u, x5c or an embedded jwk — none of which
// may ever be fetched.
func TestHostileTokensAsymmetricBinary(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	attackerRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, attackerEd, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, setup := range []struct {
		name     string
		key      crypto.Signer
		method   jwt.SigningMethod
		attacker crypto.Signer
		pubJWK   func(pub crypto.PublicKey, kid string) string
		raw      []byte // the public key's raw bytes: RSA modulus or Ed25519 point
	}{
		{"RSA", rsaKey, jwt.SigningMethodRS512, attackerRSA, rsaPublicJWK, rsaKey.N.Bytes()},
		{"Ed25519", edKey, jwt.SigningMethodEdDSA, attackerEd, edPublicJWK, []byte(edKey.Public().(ed25519.PublicKey))},
	} {
		t.Run(setup.name, func(t *testing.T) {
			dir := t.TempDir()
			keyPath := filepath.Join(dir, "key.pem")
			der, err := x509.MarshalPKCS8PrivateKey(setup.key)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(dir, "airflow.cfg")
			if err := os.WriteFile(cfg, []byte("[api_auth]\njwt_private_key_path = "+keyPath+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			dataDir := filepath.Join(dir, "data")
			q := queueTask(t, dataDir, "asym_dag", "manual__asym", "t", "--config", cfg)
			attackerJWK := setup.pubJWK(setup.attacker.Public(), "attacker")
			trap := newTrapServer(t, `{"keys":[`+attackerJWK+`]}`)
			srv := startServer(t, dataDir, "AIRFLOW_CONFIG="+cfg, noAuthLimit)
			me := host{"worker-asym", "airflow", 7101}
			w := newWorker(t, srv.URL, q.Token)
			mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
			hdr := decodeJOSEHeader(t, w.token)
			kid, _ := hdr["kid"].(string)
			if hdr["alg"] != setup.method.Alg() || kid == "" {
				t.Fatalf("the gateway's execution token has header %v, want alg %s and a kid", hdr, setup.method.Alg())
			}

			pkix, err := x509.MarshalPKIXPublicKey(setup.key.Public())
			if err != nil {
				t.Fatal(err)
			}
			pemPub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
			confusion := map[string][]byte{
				"PEM public key":                 pemPub,
				"PEM public key without the EOL": []byte(strings.TrimSpace(string(pemPub))),
				"DER public key":                 pkix,
				"raw public key":                 setup.raw,
				"public JWK":                     []byte(setup.pubJWK(setup.key.Public(), kid)),
				"kid (thumbprint)":               []byte(kid),
			}
			if rk, ok := setup.key.(*rsa.PrivateKey); ok {
				confusion["PKCS1 PEM public key"] = pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rk.PublicKey)})
			}
			now := time.Now().Unix()
			claims := tokencorpus.Object{
				{Name: "jti", Raw: tokencorpus.Quote(strings.ReplaceAll(uuid.NewString(), "-", ""))},
				{Name: "aud", Raw: tokencorpus.Quote(taskAudience)}, {Name: "sub", Raw: tokencorpus.Quote(q.TIID)}, {Name: "scope", Raw: `"execution"`},
				{Name: "iat", Raw: strconv.FormatInt(now, 10)}, {Name: "nbf", Raw: strconv.FormatInt(now, 10)}, {Name: "exp", Raw: strconv.FormatInt(now+600, 10)},
			}.String()
			signWith := func(method jwt.SigningMethod, key any) func(string) []byte {
				return func(in string) []byte {
					sig, err := method.Sign(in, key)
					if err != nil {
						t.Fatalf("sign %s: %v", method.Alg(), err)
					}
					return sig
				}
			}
			s := &tokencorpus.Setup{Sign: signWith(setup.method, setup.key)}
			type tc struct{ name, token, want, tolerated string }
			var cases []tc
			for _, alg := range []struct {
				name string
				h    func() hash.Hash
			}{{"HS512", sha512.New}, {"HS256", sha256.New}, {"HS384", sha512.New384}} {
				for what, secret := range confusion {
					for _, withKid := range []bool{true, false} {
						h := tokencorpus.Object{{Name: "alg", Raw: tokencorpus.Quote(alg.name)}, {Name: "typ", Raw: `"JWT"`}}
						if withKid {
							h = h.Set("kid", tokencorpus.Quote(kid))
						}
						cases = append(cases, tc{
							name:  fmt.Sprintf("%s signed with the %s (kid %v)", alg.name, what, withKid),
							token: s.TokenWith(hmacSigner(alg.h, secret), h.String(), claims), want: tokencorpus.Invalid,
						})
					}
				}
			}
			good := tokencorpus.Object{{Name: "alg", Raw: tokencorpus.Quote(setup.method.Alg())}, {Name: "kid", Raw: tokencorpus.Quote(kid)}, {Name: "typ", Raw: `"JWT"`}}
			attacker := signWith(setup.method, setup.attacker)
			for _, ku := range []struct{ name, raw string }{
				{"jku", tokencorpus.Quote(trap.URL + "/jwks.json")},
				{"x5u", tokencorpus.Quote(trap.URL + "/cert.pem")},
				{"x5c", `["` + base64.StdEncoding.EncodeToString([]byte("not a certificate")) + `"]`},
				{"jwk", attackerJWK},
				{"kid as URL", tokencorpus.Quote(trap.URL + "/kid")},
			} {
				name := ku.name
				h := good.Set(ku.name, ku.raw)
				if name == "kid as URL" {
					h = good.Set("kid", ku.raw)
				}
				cases = append(cases,
					tc{name: name + ", attacker's signature", token: s.TokenWith(attacker, h.String(), claims), want: tokencorpus.Invalid},
					tc{name: name + ", attacker's signature and kid", token: s.TokenWith(attacker, h.Set("kid", `"attacker"`).String(), claims), want: tokencorpus.Invalid},
				)
				if name != "kid as URL" {
					cases = append(cases, tc{name: name + ", right signature (member ignored)", token: s.Token(h.String(), claims), want: tokencorpus.Accept})
				}
			}
			// Airflow builds a JWKS from the private key and looks the kid up
			// in it, so it refuses a wrong or missing
			// kid even on a token the key signed; taskgate has one key and
			// does not look (tokens: "one key, nothing to select").
			for _, k := range []struct{ name, raw string }{
				{"kid missing", ""}, {"kid unknown", `"no-such-kid"`}, {"kid path traversal", `"../../../../etc/passwd"`},
			} {
				h := good.Without("kid")
				if k.raw != "" {
					h = h.Set("kid", k.raw)
				}
				cases = append(cases, tc{name: k.name + ", right signature", token: s.Token(h.String(), claims),
					want: tokencorpus.Invalid, tolerated: tokencorpus.Accept})
			}
			cases = append(cases,
				tc{name: "alg none", token: s.TokenWith(nil, good.Set("alg", `"none"`).String(), claims), want: tokencorpus.Invalid},
				tc{name: "attacker's key, plain header", token: s.TokenWith(attacker, good.String(), claims), want: tokencorpus.Invalid},
				tc{name: "the right key and header", token: s.Token(good.String(), claims), want: tokencorpus.Accept},
			)
			if setup.name == "RSA" {
				cases = append(cases,
					tc{name: "RS256 with the right key", token: s.TokenWith(signWith(jwt.SigningMethodRS256, setup.key), good.Set("alg", `"RS256"`).String(), claims), want: tokencorpus.Invalid},
					tc{name: "PS512 with the right key", token: s.TokenWith(signWith(jwt.SigningMethodPS512, setup.key), good.Set("alg", `"PS512"`).String(), claims), want: tokencorpus.Invalid},
				)
			}
			for _, c := range cases {
				collected.addToken("hostile asymmetric token", c.token)
				r := send(t, srv.URL, "PUT", tiPath(q.TIID, "heartbeat"), "Bearer "+c.token, me.heartbeat(t))
				got := (&plainResult{status: r.status, header: r.header, body: r.body}).verdict()
				switch {
				case got == c.want:
				case c.tolerated != "" && got == c.tolerated:
					t.Logf("KNOWN DEVIATION %s: answered %q (reported in issue 7)", c.name, got)
				default:
					t.Errorf("%s: got %q, want %q", c.name, got, c.want)
				}
			}
			t.Logf("%s setup: %d hostile tokens", setup.name, len(cases))
			trap.wantNoHits(t)
			wantNoContent(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204)
			srv.stop()
		})
	}
}

func rsaPublicJWK(pub crypto.PublicKey, kid string) string {
	k := pub.(*rsa.PublicKey)
	return `{"kty":"RSA","kid":` + tokencorpus.Quote(kid) + `,"use":"sig","n":"` + tokencorpus.B64(k.N.Bytes()) +
		`","e":"` + tokencorpus.B64(big.NewInt(int64(k.E)).Bytes()) + `"}`
}

func edPublicJWK(pub crypto.PublicKey, kid string) string {
	return `{"kty":"OKP","crv":"Ed25519","kid":` + tokencorpus.Quote(kid) + `,"x":"` + tokencorpus.B64(pub.(ed25519.PublicKey)) + `"}`
}

// unverifiedClaims decodes a token's claims without checking anything.
func unverifiedClaims(t *testing.T, tok string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil {
		t.Fatalf("decode token: %v", err)
	}
	return c
}

func decodeJOSEHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("token header: %v", err)
	}
	return h
}

// TestHostileTokensUnderAuthLimit sends the corpus's refusals with the
// gateway's default auth-failure limit on: every answer is the contract's
// 403 until the limit trips, then 429 with Retry-After — never a 5xx, and
// never an acceptance of a refused token.
func TestHostileTokensUnderAuthLimit(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "limit_dag", "manual__limit", "t")
	srv := startServer(t, dataDir) // the default limit
	m := newMinter(t, dataDir)
	me := host{"worker-limit", "airflow", 7201}
	mustStatus(t, newWorker(t, srv.URL, q.Token).do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
	bad := m.hs512(with(m.claims(q.TIID, "execution", 600*time.Second), "aud", "urn:wrong"))
	counts := map[int]int{}
	for i := 0; i < 100; i++ {
		r := send(t, srv.URL, "PUT", tiPath(q.TIID, "heartbeat"), "Bearer "+bad, me.heartbeat(t))
		counts[r.status]++
		switch r.status {
		case 403:
			wantJSON(t, r, 403, `{"detail":"Invalid auth token"}`)
		case 429:
			if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("%s: Retry-After %q, want whole seconds ≥ 1", r, r.header.Get("Retry-After"))
			}
		default:
			t.Errorf("%s: want 403 or 429", r)
		}
	}
	if counts[403] == 0 || counts[429] == 0 {
		t.Errorf("answers %v: want 403s, then 429s once the limit trips", counts)
	}
	// Requests without a token are not counted and still get 401.
	wantJSON(t, send(t, srv.URL, "GET", variablePath("x"), "", ""), 401, `{"detail":"Missing auth token"}`)
	// While the address is limited, its valid tokens wait too (the limit is
	// checked before the token is): logged as an observation, not asserted.
	r := send(t, srv.URL, "PUT", tiPath(q.TIID, "heartbeat"), "Bearer "+m.execution(q.TIID), me.heartbeat(t))
	t.Logf("auth-failure limit: %v over 100 refused tokens; a valid token from the same address then gets %d", counts, r.status)
	srv.stop()
}

// TestHostileTokensReplayedAfterExpiry replays tokens the gateway itself
// issued once they expired: the execution token swapped in by /run, the
// token renewed from it, and a workload token that expired in the queue.
// Lifetimes of 2 s and no leeway keep the wait short.
func TestHostileTokensReplayedAfterExpiry(t *testing.T) {
	dir := t.TempDir()
	config := func(name string, queued int) string {
		path := filepath.Join(dir, name)
		text := fmt.Sprintf("[api_auth]\njwt_leeway = 0\n[execution_api]\njwt_expiration_time = 2\n[scheduler]\ntask_queued_timeout = %d\n", queued)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg := config("airflow.cfg", 60)
	dataDir := filepath.Join(dir, "data")
	a := queueTask(t, dataDir, "replay_dag", "manual__replay", "a", "--config", cfg)
	// b's workload token lives 2 s: it expires while b waits in the queue.
	b := queueTask(t, dataDir, "replay_dag", "manual__replay", "b", "--config", config("short.cfg", 2))
	srv := startServer(t, dataDir, "AIRFLOW_CONFIG="+cfg, noAuthLimit)
	m := newMinter(t, dataDir)
	me := host{"worker-replay", "airflow", 7401}

	r := send(t, srv.URL, "PATCH", tiPath(a.TIID, "run"), "Bearer "+a.Token, me.runPayload(t))
	mustStatus(t, r, 200)
	execTok := r.header.Get("Refreshed-API-Token")
	if execTok == "" {
		t.Fatal("/run with a workload token returned no execution token")
	}
	exp := numericClaim(t, m.parse(execTok), "exp")
	// Fresh, it works (and, with 2 s to live, is renewed at once).
	r = send(t, srv.URL, "PUT", tiPath(a.TIID, "heartbeat"), "Bearer "+execTok, me.heartbeat(t))
	wantNoContent(t, r, 204)
	renewed := r.header.Get("Refreshed-API-Token")
	if renewed == "" {
		t.Fatal("a token with 2 s to live was not renewed")
	}
	latest := numericClaim(t, m.parse(renewed), "exp")
	wlExp := numericClaim(t, unverifiedClaims(t, b.Token), "exp")
	until := time.Unix(max(exp, latest, wlExp), 0).Add(500 * time.Millisecond)
	time.Sleep(time.Until(until))

	for _, tok := range []struct{ name, token string }{{"execution token from /run", execTok}, {"renewed token", renewed}} {
		for _, rt := range []struct{ method, path, body string }{
			{"PUT", tiPath(a.TIID, "heartbeat"), me.heartbeat(t)},
			{"PATCH", tiPath(a.TIID, "state"), successPayload(t)},
			{"GET", variablePath("x"), ""},
			{"POST", a.xcomPath("return_value"), `1`},
			{"POST", "/execution/token/refresh", ""},
		} {
			r := send(t, srv.URL, rt.method, rt.path, "Bearer "+tok.token, rt.body)
			if r.status != 403 {
				t.Errorf("%s replayed after expiry: %s, want 403", tok.name, r)
				continue
			}
			wantJSON(t, r, 403, `{"detail":"Invalid auth token"}`)
		}
	}
	// b's workload token expired in the queue.
	wantJSON(t, send(t, srv.URL, "PATCH", tiPath(b.TIID, "run"), "Bearer "+b.Token, me.runPayload(t)), 403,
		`{"detail":"Invalid auth token"}`)
	// None of it changed anything: a still runs (a valid token heartbeats
	// it) and b is still queued (a fresh workload token starts it).
	wantNoContent(t, send(t, srv.URL, "PUT", tiPath(a.TIID, "heartbeat"), "Bearer "+m.execution(a.TIID), me.heartbeat(t)), 204)
	mustStatus(t, send(t, srv.URL, "PATCH", tiPath(b.TIID, "run"), "Bearer "+m.hs512(m.claims(b.TIID, "workload", time.Minute)), me.runPayload(t)), 200)
	srv.stop()
}

// TestHostileWorkloadTokenAfterStart: a workload token is spent once its
// task started. Replayed on /run from another host or pid it gets 409 (the
// lifecycle refuses, and no execution token is handed out); on any other
// route 403; after the task finished, 409 even from the original worker.
func TestHostileWorkloadTokenAfterStart(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "spent_dag", "manual__spent", "t")
	mustCLI(t, dataDir, "variables", "set", "spent_var", "v")
	mustCLI(t, dataDir, "connections", "add", "spent_conn", "--conn-type", "http")
	srv := startServer(t, dataDir, noAuthLimit)
	me := host{"worker-a", "airflow", 7501}
	w := newWorker(t, srv.URL, q.Token)
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)

	const running = `{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"running"}}`
	for _, other := range []host{{"worker-b", "airflow", 7501}, {"worker-a", "airflow", 7502}, {"worker-a", "root", 7501}} {
		r := send(t, srv.URL, "PATCH", tiPath(q.TIID, "run"), "Bearer "+q.Token, other.runPayload(t))
		wantJSON(t, r, 409, running)
		if r.header.Get("Refreshed-API-Token") != "" {
			t.Errorf("%s: a refused /run handed out an execution token", r)
		}
	}
	for _, rt := range []struct{ method, path, body string }{
		{"PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)},
		{"PATCH", tiPath(q.TIID, "state"), successPayload(t)},
		{"PUT", tiPath(q.TIID, "rtif"), `{"a":1}`},
		{"PATCH", tiPath(q.TIID, "skip-downstream"), `{"tasks":[]}`},
		{"GET", tiPath(q.TIID, "previous-successful-dagrun"), ""},
		{"GET", "/execution/task-reschedules/" + q.TIID + "/start_date", ""},
		{"GET", "/execution/variables/keys", ""},
		{"GET", variablePath("spent_var"), ""},
		{"PUT", variablePath("spent_var"), `{"val":"x"}`},
		{"DELETE", variablePath("spent_var"), ""},
		{"GET", connectionPath("spent_conn"), ""},
		{"GET", q.xcomPath("return_value"), ""},
		{"POST", q.xcomPath("return_value"), `1`},
		{"DELETE", q.xcomPath("return_value"), ""},
		{"POST", "/execution/token/refresh", ""},
	} {
		wantJSON(t, send(t, srv.URL, rt.method, rt.path, "Bearer "+q.Token, rt.body), 403, typeRefused("workload", rt.method, rt.path))
	}
	wantNoContent(t, w.do("PATCH", tiPath(q.TIID, "state"), successPayload(t)), 204)
	wantJSON(t, send(t, srv.URL, "PATCH", tiPath(q.TIID, "run"), "Bearer "+q.Token, me.runPayload(t)), 409,
		`{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"success"}}`)
	srv.stop()
}

// Hostile requests against the real binary.

// hostileBodyLimit is the max_body_bytes of TestHostileRequests' server:
// small, so that going over it costs little.
const hostileBodyLimit = 64 << 10

// TestHostileRequests: oversized and deeply nested bodies, every content
// type, invalid UUIDs, traversal and escapes in keys, malformed request
// lines and huge headers. Nothing may produce a 5xx, crash the server or
// reach outside the store; each gets the contract's status.
func TestHostileRequests(t *testing.T) {
	dataDir := newDataDir(t)
	const dagID, runID = "req_dag", "manual__2026-11-27T14:00:00+00:00"
	q := queueTask(t, dataDir, dagID, runID, "t")
	mustCLI(t, dataDir, "variables", "set", "existing", "v")
	srv := startServer(t, dataDir, noAuthLimit, "AIRFLOW__TASKGATE__MAX_BODY_BYTES=64KiB")
	me := host{"worker-req", "airflow", 7601}
	w := newWorker(t, srv.URL, q.Token)
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
	authz := "Bearer " + w.token
	client := newPooledClient(4)

	bodyRoutes := []struct{ method, path string }{
		{"PATCH", tiPath(q.TIID, "run")},
		{"PUT", tiPath(q.TIID, "heartbeat")},
		{"PATCH", tiPath(q.TIID, "state")},
		{"PUT", tiPath(q.TIID, "rtif")},
		{"PATCH", tiPath(q.TIID, "skip-downstream")},
		{"PUT", variablePath("big")},
		{"POST", q.xcomPath("big")},
	}

	t.Run("oversized bodies", func(t *testing.T) {
		over := `"` + strings.Repeat("x", hostileBodyLimit-1) + `"` // one byte over
		for _, rt := range bodyRoutes {
			head := func(framing string) string {
				return rt.method + " " + rt.path + " HTTP/1.1\r\nHost: x\r\nAuthorization: " + authz +
					"\r\nContent-Type: application/json\r\n" + framing + "\r\n"
			}
			for _, c := range []struct {
				name  string
				head  string
				write func(io.Writer) error
			}{
				{"Content-Length one over", head("Content-Length: " + strconv.Itoa(len(over)) + "\r\n"),
					func(w io.Writer) error { _, err := io.WriteString(w, over); return err }},
				{"Content-Length 10 GiB, no body", head("Content-Length: 10737418240\r\n"),
					func(io.Writer) error { return nil }},
				{"chunked, over the limit", head("Transfer-Encoding: chunked\r\n"), func(w io.Writer) error {
					chunk := fmt.Sprintf("%x\r\n%s\r\n", 4096, strings.Repeat(" ", 4096))
					for i := 0; i < 2*hostileBodyLimit/4096; i++ {
						if _, err := io.WriteString(w, chunk); err != nil {
							return err
						}
					}
					_, err := io.WriteString(w, "0\r\n\r\n")
					return err
				}},
			} {
				res, err := rawStream(srv.rawAddr(), c.head, c.write, 20*time.Second)
				if err != nil {
					t.Errorf("%s %s, %s: %v", rt.method, rt.path, c.name, err)
					continue
				}
				if res.status != 413 || !strings.Contains(string(res.body), `"Request Entity Too Large"`) {
					t.Errorf("%s %s, %s: %s, want 413 Request Entity Too Large", rt.method, rt.path, c.name, res)
				}
			}
		}
		// Exactly at the limit is accepted.
		exact := `"` + strings.Repeat("x", hostileBodyLimit-2) + `"`
		wantJSON(t, send(t, srv.URL, "POST", q.xcomPath("exact"), authz, exact), 201, `{"message":"XCom successfully set"}`)
		val := `{"val":"` + strings.Repeat("x", hostileBodyLimit-len(`{"val":""}`)) + `"}`
		wantJSON(t, send(t, srv.URL, "PUT", variablePath("exact"), authz, val), 201, `{"message":"Variable successfully set"}`)
	})

	t.Run("deeply nested JSON", func(t *testing.T) {
		nest := func(open, close string, n int, inner string) string {
			return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
		}
		for _, c := range []struct {
			name, method, path, body string
			status                   int
		}{
			{"XCom value 64 deep", "POST", q.xcomPath("deep"), nest("[", "]", 64, ""), 201},
			{"XCom value 65 deep", "POST", q.xcomPath("deep"), nest("[", "]", 65, ""), 422},
			{"XCom value 10000 deep", "POST", q.xcomPath("deep"), nest("[", "]", 10000, ""), 422},
			{"XCom value 60000 unclosed", "POST", q.xcomPath("deep"), strings.Repeat("[", 60000), 422},
			{"XCom objects 65 deep", "POST", q.xcomPath("deep"), nest(`{"a":`, "}", 65, "1"), 422},
			{"XCom brackets inside a string", "POST", q.xcomPath("deep"), `"` + strings.Repeat("[", 1000) + `"`, 201},
			{"rtif 64 deep", "PUT", tiPath(q.TIID, "rtif"), `{"f":` + nest("[", "]", 63, "") + `}`, 201},
			{"rtif 65 deep", "PUT", tiPath(q.TIID, "rtif"), `{"f":` + nest("[", "]", 64, "") + `}`, 422},
			{"variable value 100 deep", "PUT", variablePath("deep"), `{"val":` + nest("[", "]", 100, "") + `}`, 422},
			{"variable value 10 deep", "PUT", variablePath("deep"), `{"val":` + nest("[", "]", 10, "") + `}`, 422},
			{"run hostname 100 deep", "PATCH", tiPath(q.TIID, "run"), `{"state":"running","hostname":` + nest("[", "]", 100, "") + `}`, 422},
			{"heartbeat 1000 deep", "PUT", tiPath(q.TIID, "heartbeat"), nest(`{"hostname":`, "}", 1000, `"h"`), 422},
			{"state outlets 100 deep", "PATCH", tiPath(q.TIID, "state"), `{"state":"success","end_date":"2026-11-27T14:00:00Z","task_outlets":` + nest("[", "]", 100, "") + `}`, 422},
			{"skip-downstream 100 deep", "PATCH", tiPath(q.TIID, "skip-downstream"), `{"tasks":` + nest("[", "]", 100, "") + `}`, 422},
		} {
			r := send(t, srv.URL, c.method, c.path, authz, c.body)
			if r.status != c.status {
				t.Errorf("%s: %s, want %d", c.name, r, c.status)
				continue
			}
			if c.status == 422 {
				var b struct {
					Detail []map[string]any `json:"detail"`
				}
				if err := json.Unmarshal(r.body, &b); err != nil || len(b.Detail) == 0 || b.Detail[0]["type"] == nil {
					t.Errorf("%s: 422 body %s is not FastAPI's list of errors", c.name, r.body)
				}
			}
		}
		// The task instance is untouched by the refused /run and state.
		wantNoContent(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204)
	})

	t.Run("datetimes out of range", func(t *testing.T) {
		// pydantic refuses datetimes Python cannot hold (years 1 to 9999)
		// with a 422, and so does the gateway.
		for _, c := range []struct{ name, method, path, body string }{
			{"/run start_date -1e11", "PATCH", tiPath(q.TIID, "run"), `{"state":"running","hostname":"worker-req","unixname":"airflow","pid":7601,"start_date":-1e11}`},
			{"state end_date -1e11", "PATCH", tiPath(q.TIID, "state"), `{"state":"failed","end_date":-1e11}`},
			{"reschedule_date -1e11", "PATCH", tiPath(q.TIID, "state"), `{"state":"up_for_reschedule","reschedule_date":-1e11,"end_date":"2026-11-27T14:00:00Z"}`},
			{"end_date year 0", "PATCH", tiPath(q.TIID, "state"), `{"state":"failed","end_date":"0000-01-01T00:00:00Z"}`},
		} {
			r, err := doPlain(client, c.method, srv.URL+c.path, map[string]string{"Authorization": authz, "Content-Type": "application/json"}, []byte(c.body))
			switch {
			case err != nil:
				t.Fatalf("%s: %v", c.name, err)
			case r.status != 422:
				t.Errorf("%s: %s, want 422", c.name, r)
			}
		}
		wantNoContent(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204) // still running
	})

	t.Run("content types", func(t *testing.T) {
		// FastAPI decodes a model body as JSON when the content type is
		// missing or application/json or */*+json, and refuses other types
		// with 422. Either decoding or a 422 is acceptable; a 5xx is not,
		// and a 2xx must store exactly what was sent.
		decoded := map[int][]string{}
		for i, ct := range []string{"", "application/json", "application/json; charset=utf-8", "application/vnd.api+json",
			"text/plain", "text/html", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
			"application/xml", "application/octet-stream", "application/json; charset=latin1", "garbage", "*/*",
			"application/json, text/plain", strings.Repeat("a", 4096)} {
			key := "ct_" + strconv.Itoa(i)
			hdr := map[string]string{"Authorization": authz, "Airflow-API-Version": apiVersion}
			if ct != "" {
				hdr["Content-Type"] = ct
			}
			r, err := doPlain(client, "PUT", srv.URL+variablePath(key), hdr, []byte(`{"val":"`+key+`"}`))
			if err != nil {
				t.Fatalf("content type %q: %v", ct, err)
			}
			decoded[r.status] = append(decoded[r.status], strconv.Quote(clipText(ct, 40)))
			switch r.status {
			case 201:
				wantJSON(t, w.do("GET", variablePath(key), ""), 200, `{"key":"`+key+`","value":"`+key+`"}`)
			case 422:
			default:
				t.Errorf("content type %q: %s, want 201 or 422", ct, r)
			}
			// A form body is never decoded as form fields.
			r, err = doPlain(client, "PUT", srv.URL+variablePath(key+"_form"), map[string]string{
				"Authorization": authz, "Content-Type": "application/x-www-form-urlencoded"}, []byte("val=x&description=y"))
			if err != nil || r.status != 422 {
				t.Errorf("form-encoded body: %v %v, want 422", r, err)
			}
		}
		keys := make([]int, 0, len(decoded))
		for k := range decoded {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		for _, k := range keys {
			t.Logf("content type → %d: %s", k, strings.Join(decoded[k], ", "))
		}
	})

	t.Run("invalid UUIDs", func(t *testing.T) {
		id := q.TIID
		for _, bad := range []string{
			"not-a-uuid", "0", strings.Repeat("g", 36), id[:35] + "g", id[:35], id + "0",
			strings.ReplaceAll(id, "-", "") + "0", "{" + id, "urn:uuid:x", "..", "%2e%2e", "%00", "%2F", "%20",
			"%C3%BC", strings.Repeat("a", 2000), id + "%00", "-" + id[1:], strings.ReplaceAll(id, "-", "_"),
		} {
			// No ti:self check: the path is validated (422 uuid_parsing).
			r := send(t, srv.URL, "GET", "/execution/task-reschedules/"+bad+"/start_date", authz, "")
			if r.status != 422 || !strings.Contains(string(r.body), `"uuid_parsing"`) {
				t.Errorf("task-reschedules/%s: %s, want 422 uuid_parsing", clipText(bad, 40), r)
			}
			// With ti:self, the subject check answers first, as in Airflow
			// (security dependencies are solved before the path is).
			r = send(t, srv.URL, "PUT", "/execution/task-instances/"+bad+"/heartbeat", authz, me.heartbeat(t))
			if r.status != 403 && r.status != 422 {
				t.Errorf("task-instances/%s/heartbeat: %s, want 403 or 422", clipText(bad, 40), r)
			}
		}
		// The other spellings pydantic accepts name the same task instance.
		for _, alt := range []string{strings.ToUpper(id), "{" + id + "}", "urn:uuid:" + id, strings.ReplaceAll(id, "-", ""),
			"URN:UUID:" + strings.ToUpper(id)} {
			wantNoContent(t, send(t, srv.URL, "PUT", "/execution/task-instances/"+alt+"/heartbeat", authz, me.heartbeat(t)), 204)
			mustStatus(t, send(t, srv.URL, "GET", "/execution/task-reschedules/"+alt+"/start_date", authz, ""), 200)
		}
		// Percent-encoded UUID characters decode to the same id in Starlette.
		for _, enc := range []string{"%7B" + id + "%7D", strings.Replace(id, "-", "%2D", 1)} {
			r := send(t, srv.URL, "PUT", "/execution/task-instances/"+enc+"/heartbeat", authz, me.heartbeat(t))
			if r.status != 204 {
				t.Logf("KNOWN DEVIATION task-instances/%s/heartbeat: %d %s; Starlette decodes the path first and answers 204 (reported in issue 7)", enc, r.status, r.body)
			}
		}
	})

	t.Run("traversal and escapes in keys", func(t *testing.T) {
		raws := []string{
			"../escape", "../../../../../../etc/passwd", "a/../b", "./a", "a/./b", "..", ".", "...", "a/",
			"%2F", "a%2Fb", "%2e%2e", "%2e%2e%2fescape", "..%2f..%2fescape", "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
			"%252F", "%25", "%00", "a%00b", "%5C..%5Cwin", "..%5C..%5Cwin", "a%3Fb", "a%23b", "a%20b", "%C3%A9t%C3%A9",
			"%FF", "a;b", "a=b", "~user", "a%0Ab", "a%0D%0AX-Injected:%201", "../../api/v2/variables",
			"%2e%2e/%2e%2e/api/v2/users",
		}
		expect := func(raw string) string {
			k, err := url.PathUnescape(raw)
			if err != nil {
				t.Fatalf("bad test key %q: %v", raw, err)
			}
			return k
		}
		asJSON := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
		stored := map[string]string{}
		for i, raw := range raws {
			key, val := expect(raw), "v"+strconv.Itoa(i)
			r := w.do("PUT", variablePath(raw), `{"val":"`+val+`"}`)
			if r.status != 201 {
				t.Errorf("PUT variable %q: %s, want 201", raw, r)
				continue
			}
			stored[key] = val
			r = w.do("GET", variablePath(raw), "")
			var got struct{ Key, Value string }
			if r.status != 200 || json.Unmarshal(r.body, &got) != nil || got.Key != asJSON(key) || got.Value != val {
				t.Errorf("GET variable %q: %s, want key %q value %q", raw, r, key, val)
			}
		}
		// Every key was stored literally, as decoded once, and nothing else.
		r := w.do("GET", "/execution/variables/keys?limit=10000", "")
		var list struct{ Keys []string }
		if err := json.Unmarshal(r.body, &list); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		have := map[string]bool{}
		for _, k := range list.Keys {
			have[k] = true
		}
		for key := range stored {
			if !have[asJSON(key)] {
				t.Errorf("variable %q is missing from the key listing %q", key, list.Keys)
			}
		}
		// XCom keys and path segments: a write under another dag, run or
		// task is refused, a read there finds nothing, the own key is literal.
		for i, raw := range raws {
			key, val := expect(raw), strconv.Itoa(i)
			r := w.do("POST", q.xcomPath(raw), val)
			if r.status != 201 {
				t.Errorf("POST XCom key %q: %s, want 201", raw, r)
				continue
			}
			r = w.do("GET", q.xcomPath(raw), "")
			var got struct {
				Key   string
				Value json.RawMessage
			}
			if r.status != 200 || json.Unmarshal(r.body, &got) != nil || got.Key != asJSON(key) || string(got.Value) != val {
				// …/item/N and …/slice suffixes are routed as Airflow does; none here.
				t.Errorf("GET XCom key %q: %s, want key %q value %s", raw, r, key, val)
			}
			for _, p := range []string{
				"/execution/xcoms/" + raw + "/" + url.PathEscape(runID) + "/t/k",
				"/execution/xcoms/" + dagID + "/" + raw + "/t/k",
				"/execution/xcoms/" + dagID + "/" + url.PathEscape(runID) + "/" + raw + "/k",
			} {
				if r := w.do("POST", p, `1`); r.status != 403 && r.status != 404 && r.status != 422 {
					t.Errorf("POST %s: %s, want 403 (not the token's task instance)", p, r)
				}
				if r := w.do("GET", p, ""); r.status != 404 && r.status != 422 {
					t.Errorf("GET %s: %s, want 404", p, r)
				}
			}
		}
		// Nothing was written outside the data directory, and nothing but
		// the store and key material inside it.
		root := filepath.Dir(dataDir)
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path == root || path == dataDir {
				return nil
			}
			if filepath.Dir(path) != dataDir || d.IsDir() {
				t.Errorf("unexpected file %s next to the data directory", path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("malformed requests", func(t *testing.T) {
		for _, c := range []struct {
			name, req string
			status    []int
		}{
			{"invalid escape", "GET /execution/variables/%zz HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}},
			{"lone percent", "GET /execution/variables/% HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}},
			{"raw NUL in the path", "GET /execution/variables/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}},
			{"raw space in the path", "GET /execution/variables/a b HTTP/1.1\r\nHost: x\r\n\r\n", []int{400}},
			{"no Host", "GET /execution/health HTTP/1.1\r\n\r\n", []int{400}},
			{"header without a colon", "GET /execution/health HTTP/1.1\r\nHost: x\r\nbroken\r\n\r\n", []int{400}},
			{"header name with a space", "GET /execution/health HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", []int{400}},
			{"control character in a header", "GET /execution/health HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", []int{400}},
			{"two different Content-Lengths", "PUT " + variablePath("cl") + " HTTP/1.1\r\nHost: x\r\nAuthorization: " + authz + "\r\nContent-Length: 11\r\nContent-Length: 12\r\n\r\n{\"val\":\"x\"}", []int{400}},
			{"negative Content-Length", "PUT " + variablePath("cl") + " HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", []int{400}},
			{"Content-Length and chunked", "PUT " + variablePath("smuggle") + " HTTP/1.1\r\nHost: x\r\nAuthorization: " + authz + "\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n{\"val\":\"x\"}\r\n0\r\n\r\n", []int{201, 400}},
			{"bad chunk size", "PUT " + variablePath("chunk") + " HTTP/1.1\r\nHost: x\r\nAuthorization: " + authz + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", []int{400, 422}},
			// 501 and 505 are net/http's own answers, as RFC 9112 §6.1 and
			// RFC 9110 §15.6.6 prescribe; the gateway never sees these.
			{"unknown transfer coding", "PUT " + variablePath("te") + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", []int{400, 501}},
			{"absolute-form target", "GET http://elsewhere.example/execution/health HTTP/1.1\r\nHost: x\r\n\r\n", []int{200}},
			{"asterisk target", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", []int{400, 404}},
			{"HTTP/1.0", "GET /execution/health HTTP/1.0\r\n\r\n", []int{200}},
			{"unknown method", "BREW /execution/health HTTP/1.1\r\nHost: x\r\n\r\n", []int{404, 405}},
			{"unsupported HTTP version", "GET /execution/health HTTP/9.9\r\nHost: x\r\n\r\n", []int{400, 505}},
			{"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", []int{400}},
		} {
			res, err := rawExchange(srv.rawAddr(), []byte(c.req), 10*time.Second)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if !slicesContains(c.status, res.status) {
				t.Errorf("%s: %s, want one of %v", c.name, res, c.status)
			} else if len(c.status) > 1 {
				t.Logf("%s: %d", c.name, res.status)
			}
		}
	})

	t.Run("huge headers", func(t *testing.T) {
		big := strings.Repeat("a", 128<<10)
		for _, c := range []struct {
			name   string
			hdr    string
			status int
		}{
			{"128 KiB Authorization", "Authorization: Bearer " + big + "\r\n", 431},
			{"128 KiB custom header", "X-Big: " + big + "\r\n", 431},
			{"3000 small headers", strings.Repeat("X-Many: 0123456789012345678901234567890123456789\r\n", 3000), 431},
			{"40 KiB bearer token", "Authorization: Bearer " + big[:40<<10] + "\r\n", 431},
			{"40 KiB Correlation-Id", "Authorization: " + authz + "\r\nCorrelation-Id: " + big[:40<<10] + "\r\n", 431},
			// Up to 16 KiB of request head is served, as by Airflow's h11.
			{"15 KiB bearer token", "Authorization: Bearer " + big[:15<<10] + "\r\n", 403},
			{"15 KiB Correlation-Id", "Authorization: " + authz + "\r\nCorrelation-Id: " + big[:15<<10] + "\r\n", 200},
			{"10 KiB header name", strings.Repeat("N", 10<<10) + ": 1\r\nAuthorization: " + authz + "\r\n", 200},
		} {
			req := "GET " + variablePath("existing") + " HTTP/1.1\r\nHost: x\r\n" + c.hdr + "\r\n"
			res, err := rawExchange(srv.rawAddr(), []byte(req), 10*time.Second)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if res.status != c.status {
				t.Errorf("%s: %s, want %d", c.name, res, c.status)
			}
		}
	})

	srv.mustBeAlive(t)
	wantNoContent(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204)
	client.CloseIdleConnections()
	srv.stop()
}

func slicesContains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// TestHostileSlowClients runs a server with 1 s header and idle timeouts: a
// client that trickles its headers, one that connects and says nothing, and
// an idle keep-alive connection are all cut off, and a client that sends a
// body too slowly gets an answer or a closed connection, never a 5xx.
func TestHostileSlowClients(t *testing.T) {
	dataDir := newDataDir(t)
	srv := startServer(t, dataDir, "AIRFLOW__TASKGATE__READ_HEADER_TIMEOUT=1s", "AIRFLOW__TASKGATE__IDLE_TIMEOUT=1s",
		"AIRFLOW__TASKGATE__READ_TIMEOUT=2s")
	token := newMinter(t, dataDir).execution(uuid.NewString())
	const limit = 1 * time.Second
	// closedWithin waits for the server to close conn and returns how long
	// after start that was; it fails the test if that takes over 5 s.
	closedWithin := func(t *testing.T, conn net.Conn, start time.Time) time.Duration {
		t.Helper()
		_ = conn.SetReadDeadline(start.Add(5 * time.Second))
		buf := make([]byte, 4096)
		for {
			_, err := conn.Read(buf)
			if err == nil {
				continue // e.g. a 408 the server writes before closing
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection still open after %s", time.Since(start).Round(time.Millisecond))
			}
			return time.Since(start)
		}
	}
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		conn, err := net.DialTimeout("tcp", srv.rawAddr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	t.Run("group", func(t *testing.T) {
		t.Run("headers trickled", func(t *testing.T) {
			t.Parallel()
			conn := dial(t)
			start := time.Now()
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				if _, err := io.WriteString(conn, "GET /execution/health HTTP/1.1\r\nHost: x\r\n"); err != nil {
					return
				}
				tick := time.NewTicker(150 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := io.WriteString(conn, "X-Slow: 1\r\n"); err != nil {
							return
						}
					}
				}
			}()
			if d := closedWithin(t, conn, start); d < limit-100*time.Millisecond {
				t.Errorf("closed after %s, before read_header_timeout", d)
			} else {
				t.Logf("trickling client cut off after %s", d.Round(time.Millisecond))
			}
		})
		t.Run("silent connection", func(t *testing.T) {
			t.Parallel()
			conn := dial(t)
			d := closedWithin(t, conn, time.Now())
			t.Logf("silent connection closed after %s", d.Round(time.Millisecond))
		})
		t.Run("idle keep-alive", func(t *testing.T) {
			t.Parallel()
			conn := dial(t)
			if _, err := io.WriteString(conn, "GET /execution/health HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Close {
				t.Fatalf("health: %d, close %v; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
			}
			start := time.Now()
			_ = conn.SetReadDeadline(start.Add(5 * time.Second))
			_, err = br.ReadByte()
			d := time.Since(start)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("idle connection still open after %s", d.Round(time.Millisecond))
			}
			if d < limit-100*time.Millisecond {
				t.Errorf("idle connection closed after %s, before idle_timeout", d)
			}
			t.Logf("idle keep-alive connection closed after %s", d.Round(time.Millisecond))
		})
		t.Run("body trickled", func(t *testing.T) {
			t.Parallel()
			conn := dial(t)
			start := time.Now()
			if _, err := io.WriteString(conn, "PUT /execution/variables/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token+"\r\nContent-Length: 100\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			go func() {
				for i := 0; i < 100; i++ {
					time.Sleep(200 * time.Millisecond)
					if _, err := io.WriteString(conn, " "); err != nil {
						return
					}
				}
			}()
			_ = conn.SetReadDeadline(start.Add(8 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			switch {
			case err == nil && resp.StatusCode >= 500:
				t.Errorf("slow body: %d, want no 5xx", resp.StatusCode)
			case err == nil:
				t.Logf("slow body answered %d after %s", resp.StatusCode, time.Since(start).Round(time.Millisecond))
			default:
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatalf("slow body: no answer and not closed after %s", time.Since(start).Round(time.Millisecond))
				}
				t.Logf("slow body: connection closed after %s (%v)", time.Since(start).Round(time.Millisecond), err)
			}
		})
	})
	// The server kept serving through all of it.
	r := send(t, srv.URL, "GET", "/execution/health", "", "")
	mustStatus(t, r, 200)
	srv.mustBeAlive(t)
	srv.stop()
}

// TestHostileManyConnections opens hundreds of connections from one address
// at once, all sending at the same moment, then leaves them idle while
// another client is served. The server answers each (or sheds load with
// 503/Retry-After), stays up, and keeps serving.
func TestHostileManyConnections(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "conns_dag", "manual__conns", "t")
	mustCLI(t, dataDir, "variables", "set", "conns_var", "v")
	srv := startServer(t, dataDir)
	me := host{"worker-conns", "airflow", 7701}
	w := newWorker(t, srv.URL, q.Token)
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
	n := soakScaled(500, 2000)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", srv.rawAddr(), 10*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	requests := []string{
		"GET /execution/health HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + variablePath("conns_var") + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + w.token + "\r\n\r\n",
		"PUT " + tiPath(q.TIID, "heartbeat") + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + w.token +
			"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(me.heartbeat(t))) + "\r\n\r\n" + me.heartbeat(t),
	}
	var mu sync.Mutex
	statuses := map[int]int{}
	var errs []string
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			req := requests[i%len(requests)]
			if _, err := io.WriteString(c, req); err != nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
				return
			}
			res, err := readRaw(bufio.NewReader(c))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			statuses[res.status]++
			if res.status == 503 && res.header.Get("Retry-After") == "" {
				errs = append(errs, "503 without Retry-After")
			}
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d connections from one address: answers %v in %s", n, statuses, time.Since(began).Round(time.Millisecond))
	for k, v := range statuses {
		if k != 200 && k != 204 && k != 503 {
			t.Errorf("%d answers with status %d", v, k)
		}
	}
	if len(errs) > 0 {
		t.Errorf("%d connections got no answer, e.g. %v", len(errs), errs[0])
	}
	// With all of them still open and idle, another client is served.
	srv.mustBeAlive(t)
	wantNoContent(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204)
	srv.stop()
}
