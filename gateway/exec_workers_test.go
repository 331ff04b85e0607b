package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/workload"
)

// TestQueuedConnectionTestRoundTrip: an operator queues a connection test
// through the admin API; its token reads the connection and reports the
// result once; a successful test queued to be saved saves its connection,
// and the read cache serves the saved connection at once.
func TestQueuedConnectionTestRoundTrip(t *testing.T) {
	h := newHarness(t)
	h.addUser("olga", auth.RoleOp)
	h.addUser("vic", auth.RoleViewer)
	body := `{"connection_id":"pg","conn_type":"postgres","host":"db","password":"pw","port":5432,"commit_on_success":true}`
	if r := h.do("POST", "/api/v2/connection-tests", h.login("vic"), body); r.status != 403 {
		t.Errorf("a viewer queues a test: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/api/v2/connection-tests", h.login("olga"), `{"connection_id":"pg","conn_type":"postgres","x":1}`); r.status != 422 {
		t.Errorf("an extra field: %d %s", r.status, r.body)
	}
	r := h.do("POST", "/api/v2/connection-tests", h.login("olga"), body)
	if r.status != 201 {
		t.Fatalf("queue: %d %s", r.status, r.body)
	}
	var w workload.TestConnection
	if err := json.Unmarshal([]byte(r.body), &w); err != nil || w.Type != "TestConnection" || w.Token == "" {
		t.Fatalf("workload %s: %v", r.body, err)
	}
	base := "/execution/connection-tests/" + w.ConnectionTestID
	wantJSON(t, h.do("GET", base+"/connection", w.Token, ""), 200,
		`{"conn_id":"pg","conn_type":"postgres","host":"db","login":null,"password":"pw","schema":null,"port":5432,"extra":null}`)
	// A task reading pg before the test succeeds fills the read cache.
	exec := h.start(h.queue("d", "r", "t", -1))
	if r := h.do("GET", "/execution/connections/pg", exec, ""); r.status != 404 {
		t.Fatalf("pg before the test: %d %s", r.status, r.body)
	}
	if r := h.do("PATCH", base, w.Token, `{"state":"success","result_message":"ok"}`); r.status != 204 {
		t.Fatalf("report: %d %s", r.status, r.body)
	}
	if r := h.do("PATCH", base, w.Token, `{"state":"failed"}`); r.status != 409 {
		t.Errorf("second report: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/execution/connections/pg", exec, ""); r.status != 200 {
		t.Errorf("pg after the test: %d %s", r.status, r.body)
	}
	ct, err := h.db.ConnectionTest(context.Background(), w.ConnectionTestID)
	if err != nil || ct.State != workload.ConnectionTestSuccess || ct.QueuedBy != "olga" {
		t.Errorf("stored test %+v, %v", ct, err)
	}
}

// TestQueuedCallbackRoundTrip: an admin queues a callback; its token buys
// its /run once, and the execution token it buys reports the end.
func TestQueuedCallbackRoundTrip(t *testing.T) {
	h := newHarness(t)
	h.addUser("olga", auth.RoleOp)
	h.addUser("ada", auth.RoleAdmin)
	body := `{"path":"my.module.notify","kwargs":{"to":"ops"}}`
	if r := h.do("POST", "/api/v2/callbacks", h.login("olga"), body); r.status != 403 {
		t.Errorf("op queues a callback: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/api/v2/callbacks", h.login("ada"), `{"path":"m.f","kwargs":[1]}`); r.status != 422 {
		t.Errorf("kwargs not an object: %d %s", r.status, r.body)
	}
	r := h.do("POST", "/api/v2/callbacks", h.login("ada"), body)
	if r.status != 201 {
		t.Fatalf("queue: %d %s", r.status, r.body)
	}
	var w workload.ExecuteCallback
	if err := json.Unmarshal([]byte(r.body), &w); err != nil || w.Type != "ExecuteCallback" || w.Token == "" {
		t.Fatalf("workload %s: %v", r.body, err)
	}
	base := "/execution/callbacks/" + w.Callback.ID
	run := h.do("PATCH", base+"/run", w.Token, "")
	if run.status != 204 || run.header.Get("Refreshed-API-Token") == "" {
		t.Fatalf("run: %d %s", run.status, run.body)
	}
	if r := h.do("PATCH", base+"/run", w.Token, ""); r.status != 409 {
		t.Errorf("second run: %d %s", r.status, r.body)
	}
	exec := run.header.Get("Refreshed-API-Token")
	// While the callback runs its token reads shared data, and writes no
	// task's XCom.
	if err := h.db.PutVariable(context.Background(), workload.Variable{Key: "k", Value: ptrTo("v")}); err != nil {
		t.Fatal(err)
	}
	wantJSON(t, h.do("GET", "/execution/variables/k", exec, ""), 200, `{"key":"k","value":"v"}`)
	if r := h.do("POST", "/execution/xcoms/d/r/t/k", exec, `1`); r.status != 403 || !strings.Contains(r.body, "access_denied") {
		t.Errorf("an XCom write: %d %s", r.status, r.body)
	}
	if r := h.do("PATCH", base+"/state", exec, `{"state":"running"}`); r.status != 422 {
		t.Errorf("state running: %d %s", r.status, r.body)
	}
	if r := h.do("PATCH", base+"/state", exec, `{"state":"success","output":"sent"}`); r.status != 204 {
		t.Fatalf("state: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/execution/variables/k", exec, ""); r.status != 404 || !strings.Contains(r.body, "Task Instance not found") {
		t.Errorf("a variable read after the callback ended: %d %s", r.status, r.body)
	}
	cb, err := h.db.Callback(context.Background(), w.Callback.ID)
	if err != nil || cb.State != workload.CallbackSuccess || cb.Output == nil || *cb.Output != "sent" || cb.QueuedBy != "ada" {
		t.Errorf("stored callback %+v, %v", cb, err)
	}
}

// TestForwardedMetricsCounted: a batch is counted by kind.
func TestForwardedMetricsCounted(t *testing.T) {
	h := newHarness(t)
	exec := h.start(h.queue("d", "r", "t", -1))
	body := `{"metrics":[{"kind":"counter","name":"a","value":1},{"kind":"gauge","name":"b","value":2},` +
		`{"kind":"timing","name":"c","values":[1,2]}]}`
	if r := h.do("POST", "/execution/metrics", exec, body); r.status != 204 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if got := h.srv.ForwardedMetrics(); got != (MetricCounts{Batches: 1, Counters: 1, Gauges: 1, Timings: 1}) {
		t.Errorf("ForwardedMetrics = %+v", got)
	}
}

func ptrTo[T any](v T) *T { return &v }
