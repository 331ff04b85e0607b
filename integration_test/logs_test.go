package integration_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestLogsNeverHoldTokens scans every log the binary wrote in this package
// — every server's stderr and every CLI command's stderr — for any token
// sent or received, for the data directories' jwt_secret and for connection
// passwords. A token in a log is a credential anyone with log access can
// replay; the gateway logs fingerprints and jti instead. Every server log
// line must also be a JSON object.
//
// It calls t.Parallel, and is the only test that does: parallel tests run
// after all sequential ones have finished, so the scan sees the logs of
// every other test of the run (their servers have stopped by then). Run on
// its own it scans the logs of its own flow, which exercises the logging
// paths at debug level: token swap, renewal, refusals.
func TestLogsNeverHoldTokens(t *testing.T) {
	t.Parallel()

	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "logs_dag", "manual__2026-11-27T12:00:00+00:00", "t")
	collected.addSecret("connection password", connPassword)
	mustCLI(t, dataDir, "connections", "add", "logs_conn", "--conn-type", "postgres", "--password", connPassword)
	srv := startServer(t, dataDir, "AIRFLOW__TASKGATE__LOG_LEVEL=debug")
	m := newMinter(t, dataDir)
	me := host{"worker-l", "airflow", 5001}

	w := newWorker(t, srv.URL, q.Token)
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
	wantNoContent(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204)
	mustStatus(t, w.do("GET", connectionPath("logs_conn"), ""), 200)
	// Renewal of a token in its last seconds.
	now := time.Now().Unix()
	dying := m.hs512(with(m.claims(q.TIID, "execution", 600*time.Second), "iat", now-590, "nbf", now-590, "exp", now+10))
	r := newWorker(t, srv.URL, dying).do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t))
	wantNoContent(t, r, 204)
	if r.header.Get("Refreshed-API-Token") == "" {
		t.Errorf("%s: a token with 10 s left was not renewed", r)
	}
	// Refusals, which the gateway logs with a reason.
	for _, tok := range []string{
		q.Token, // workload token off /run
		m.hs512(with(m.claims(q.TIID, "execution", 600*time.Second), "aud", "urn:wrong")),
		m.hs512(with(m.claims(q.TIID, "execution", 600*time.Second), "exp", now-3600)),
		m.hs512(m.claims(q.TIID, "admin", 600*time.Second)),
		m.sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, m.claims(q.TIID, "execution", 600*time.Second)),
		w.token[:len(w.token)-4] + "AAAA", // signature damaged
	} {
		if r := send(t, srv.URL, "GET", variablePath("x"), "Bearer "+tok, ""); r.status != 403 {
			t.Errorf("%s: want 403", r)
		}
	}
	srv.stop()

	logs, secrets := collected.snapshot()
	if len(secrets) == 0 {
		t.Fatal("no tokens were recorded; the scan would prove nothing")
	}
	servers := 0
	for _, src := range logs {
		if src.jsonOnly {
			servers++
		}
		lines := strings.Split(src.text, "\n")
		for i, line := range lines {
			if line == "" {
				continue
			}
			if src.jsonOnly && !(src.cutTail && i == len(lines)-1) {
				var obj map[string]any
				if err := json.Unmarshal([]byte(line), &obj); err != nil {
					t.Errorf("%s line %d is not a JSON object (%v): %s", src.name, i+1, err, line)
				}
			}
			for _, s := range secrets {
				if strings.Contains(line, s.value) {
					t.Errorf("%s line %d holds a %s (%s…): %s", src.name, i+1, s.kind, s.value[:8], line)
				}
			}
		}
	}
	t.Logf("scanned %d logs (%d servers) for %d secrets", len(logs), servers, len(secrets))
}
