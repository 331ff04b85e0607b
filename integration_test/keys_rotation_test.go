package integration_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestKeyRotationWhileATaskRuns: the signing key changes while a task
// runs, on Airflow's database with two taskgates. Replica A signs with the
// stored key set (EdDSA, starting from the configured jwt_private_key_path,
// as Airflow's scheduler signs the workload token); replica B verifies
// through A's published JWKS ([api_auth] trusted_jwks_url), as Airflow's
// own api-server or another verifier would.
//
//   - a token signed before the rotation keeps working on both, and its
//     renewal comes back signed by the new key;
//   - B follows the rotation without a restart (it fetches the JWKS on the
//     unknown kid), and the task finishes through B;
//   - the old key cannot be retired while its tokens may live, unless forced.
func TestKeyRotationWhileATaskRuns(t *testing.T) {
	d := newPGDeployment(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "jwt_private_key.pem")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=" + d.sqlAlchemyURL(),
		"AIRFLOW__CORE__FERNET_KEY=" + d.fernetKey,
		"AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH=" + keyPath,
		"AIRFLOW__API_AUTH__JWT_ALGORITHM=EdDSA",
		"AIRFLOW__API_AUTH__JWT_KID=configured",
		// 30 s tokens are renewed on every request (at most max(20 %, 30 s)
		// left), so each heartbeat shows which key signs now.
		"AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME=30",
	}
	a := startServer(t, newDataDir(t), env...)
	b := startServer(t, newDataDir(t), append(env,
		"AIRFLOW__API_AUTH__TRUSTED_JWKS_URL="+a.URL+"/execution/.well-known/jwks.json",
		"AIRFLOW__TASKGATE__JWKS_RETRY_INTERVAL=50ms")...)
	op := newOperator(t, newDataDir(t))
	keys := func(args ...string) cliResult { return op.run(env, "", append([]string{"keys"}, args...)...) }

	// The workload token, as Airflow's executor signs it with the shared key.
	run := d.insertDagRun("rotation", "r1")
	ti := d.insertQueuedTI(run, "t", 1, 0)
	m := &minter{t: t}
	claims := m.claims(ti.id, "workload", time.Hour)
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = "configured"
	workloadTok, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	collected.addToken("hand-minted workload token", workloadTok)

	c := newPooledClient(2)
	send := func(s *server, method, path, token, body string) *plainResult {
		t.Helper()
		r, err := plainSend(c, s.URL, method, "/execution/task-instances/"+ti.id+path, token, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	heartbeat := func(s *server, token string) *plainResult {
		t.Helper()
		return send(s, http.MethodPut, "/heartbeat", token, `{"hostname":"w1","pid":42}`)
	}
	r := send(a, http.MethodPatch, "/run", workloadTok,
		`{"state":"running","hostname":"w1","unixname":"airflow","pid":42,"start_date":"2026-12-02T10:00:00Z"}`)
	before := r.header.Get("Refreshed-API-Token")
	if r.status != http.StatusOK || before == "" || tokenKID(t, before) != "configured" {
		t.Fatalf("/run: %s, execution token kid %q", r, tokenKID(t, before))
	}
	collected.addToken("execution token", before)
	if r := heartbeat(b, before); r.status != http.StatusNoContent {
		t.Fatalf("B, before the rotation: %s", r)
	}

	out := keys("rotate")
	if out.code != 0 {
		t.Fatalf("keys rotate: exit %d: %s", out.code, out.stderr)
	}
	// KID ALG STATE CREATED REPLACED RETIRE-AFTER: the new key active, the
	// configured one verifying until the longest token lifetime has passed.
	lines := strings.Split(strings.TrimSpace(out.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("keys rotate printed:\n%s", out.stdout)
	}
	active, old := strings.Fields(lines[1]), strings.Fields(lines[2])
	var retireAfter time.Time
	if len(old) == 6 {
		retireAfter, _ = time.Parse(time.RFC3339, old[5])
	}
	if len(active) != 6 || active[1] != "EdDSA" || active[2] != "active" || active[5] != "-" ||
		len(old) != 6 || old[0] != "configured" || old[2] != "verifies" || retireAfter.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("keys rotate printed:\n%s", out.stdout)
	}
	newKID := active[0]

	// A rereads the key set within a second; its JWKS then lists both.
	waitFor(t, 3*time.Second, "A to publish the new key", func() (bool, string) {
		r, err := doPlain(c, http.MethodGet, a.URL+"/execution/.well-known/jwks.json", nil, nil)
		if err != nil {
			return false, err.Error()
		}
		var doc struct {
			Keys []struct {
				KID string `json:"kid"`
			} `json:"keys"`
		}
		_ = json.Unmarshal(r.body, &doc)
		return len(doc.Keys) == 2 && doc.Keys[0].KID == newKID && doc.Keys[1].KID == "configured", string(r.body)
	})

	// The old token still works on both, and its renewal carries the new kid.
	r = heartbeat(a, before)
	after := r.header.Get("Refreshed-API-Token")
	if r.status != http.StatusNoContent || tokenKID(t, after) != newKID {
		t.Fatalf("A, old token after the rotation: %s, renewed with kid %q, want %q", r, tokenKID(t, after), newKID)
	}
	collected.addToken("renewed execution token", after)
	if r := heartbeat(b, before); r.status != http.StatusNoContent {
		t.Fatalf("B, old token after the rotation: %s", r)
	}
	// B has not seen the new key: the unknown kid makes it fetch A's JWKS.
	if r := heartbeat(b, after); r.status != http.StatusNoContent {
		t.Fatalf("B, renewed token: %s", r)
	}

	if out := keys("retire", "configured"); out.code == 0 || !strings.Contains(out.stderr, "may still verify live tokens") {
		t.Fatalf("retiring the key of live tokens: exit %d: %s%s", out.code, out.stdout, out.stderr)
	}
	r = send(b, http.MethodPatch, "/state", after, `{"state":"success","end_date":"2026-12-02T10:05:00Z"}`)
	if r.status != http.StatusNoContent {
		t.Fatalf("B, success with the renewed token: %s", r)
	}
	if out := keys("retire", "configured", "--force"); out.code != 0 || strings.Contains(out.stdout, "configured") {
		t.Fatalf("forced retirement: exit %d: %s%s", out.code, out.stdout, out.stderr)
	}
	// Once A drops the retired key, the tokens it signed stop working there.
	waitFor(t, 3*time.Second, "A to refuse the retired key", func() (bool, string) {
		r := heartbeat(a, before)
		return r.status == http.StatusForbidden, r.String()
	})
}

// tokenKID returns the kid in a token's header ("" without one).
func tokenKID(t *testing.T, tok string) string {
	t.Helper()
	if tok == "" {
		return ""
	}
	p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("parse token header: %v", err)
	}
	kid, _ := p.Header["kid"].(string)
	return kid
}
