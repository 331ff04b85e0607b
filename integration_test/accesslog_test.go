package integration_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAccessLogLineForEveryRequest: the server writes one access-log line
// per request, and the lines still buffered when it is told to stop are on
// its output once it has exited: every request's correlation id appears in
// exactly one "request" line, with its route and status.
func TestAccessLogLineForEveryRequest(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "accesslog_dag", "manual__2026-11-27T12:00:00+00:00", "t")
	mustCLI(t, dataDir, "variables", "set", "accesslog_var", "v")
	srv := startServer(t, dataDir)
	me := host{"worker-al", "airflow", 5002}
	w := newWorker(t, srv.URL, q.Token)
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
	sent := map[string]int{} // correlation id → status
	for i := range 400 {
		r := w.do("GET", variablePath("accesslog_var"), "")
		if i%100 == 99 {
			r = w.do("GET", variablePath("no_such_var"), "")
		}
		sent[r.header.Get("Correlation-Id")] = r.status
	}
	srv.stop() // at once: the last lines are still in the log's buffer

	seen := map[string]int{}
	for _, line := range strings.Split(srv.logs.String(), "\n") {
		var e struct {
			Msg    string `json:"msg"`
			CID    string `json:"correlation_id"`
			Route  string `json:"route"`
			Status int    `json:"status"`
			Sub    string `json:"sub"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "request" {
			continue
		}
		if want, ok := sent[e.CID]; ok {
			seen[e.CID]++
			if e.Status != want || e.Route != "/execution/variables/*" || e.Sub != q.TIID {
				t.Errorf("line %s: want status %d, the variable route and sub %s", line, want, q.TIID)
			}
		}
	}
	for cid := range sent {
		if seen[cid] != 1 {
			t.Errorf("request %s: %d access-log lines, want 1", cid, seen[cid])
		}
	}
}
