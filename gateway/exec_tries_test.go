package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/reissue"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// requeue queues the next try of the task instance at id's coordinates, as
// the scheduler does after up_for_retry, and returns the new try's id.
func (h *harness) requeue(id string) string {
	h.t.Helper()
	old, err := h.db.TaskInstance(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	next := fmt.Sprintf("0190e3e4-3c2b-7a8e-9d0e-%012x", 900000+h.tokens.n)
	h.tokens.n++
	ti, err := workload.Queue(context.Background(), h.db, next, workload.QueueRequest{
		DagID: old.DagID, RunID: old.RunID, TaskID: old.TaskID, MapIndex: old.MapIndex, MaxTries: old.MaxTries,
	}, h.clock.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return ti.ID
}

// TestEarlierTryTokenIsDead: a try that reported up_for_retry keeps a valid
// token for a while; once the next try exists that token is refused on every
// route (410, Airflow's archived attempt), cannot be renewed, and cannot
// touch the new try's XComs or state.
func TestEarlierTryTokenIsDead(t *testing.T) {
	one := "1"
	h := newHarness(t, withConfig(func(c *Config) { c.TaskOvertime = 20 * time.Second }))
	h.db.PutVariable(context.Background(), workload.Variable{Key: "x", Value: &one})
	first := h.queue("etl", "r", "t", -1)
	old := h.start(first)
	ti := "/execution/task-instances/" + first
	if r := h.do("PATCH", ti+"/state", old,
		`{"state":"up_for_retry","end_date":"2026-11-27T10:01:00Z"}`); r.status != 204 {
		t.Fatalf("up_for_retry = %d %s", r.status, r.body)
	}
	archived := `{"detail":{"reason":"not_found","message":"Task Instance not found in the working set; its attempt has been archived"}}`
	// Airflow archives the try at once: within the overtime its callbacks
	// may read, but every write, renewal or lifecycle call is answered as
	// an archived attempt's.
	h.clock.Advance(5 * time.Second)
	if r := h.do("GET", "/execution/variables/x", old, ""); r.status != 200 {
		t.Errorf("read in the overtime = %d %s", r.status, r.body)
	}
	wantJSON(t, h.do("PUT", "/execution/variables/x", old, `{"val":"2"}`), 410, archived)
	wantJSON(t, h.do("PATCH", ti+"/state", old, `{"state":"up_for_retry","end_date":"2026-11-27T10:01:00Z"}`), 410, archived)
	if r := h.do("POST", "/execution/token/refresh", old, ""); r.status != 410 {
		t.Errorf("refresh in the overtime = %d %s", r.status, r.body)
	}
	// The task instance went on under a new id, up_for_retry, same try.
	ctx := context.Background()
	list, _, err := h.db.TaskInstances(ctx, workload.TaskInstanceFilter{DagID: "etl", RunID: "r", TaskID: "t"})
	if err != nil || len(list) != 1 || list[0].ID == first || list[0].State != workload.StateUpForRetry || list[0].TryNumber != 1 {
		t.Fatalf("current task instance after up_for_retry = %+v, %v; want up_for_retry under a new id, try 1", list, err)
	}

	second := h.requeue(first)
	cur := h.start(second)
	if r := h.do("POST", "/execution/xcoms/etl/r/t/return_value", cur, `"new"`); r.status != 201 {
		t.Fatalf("new try's xcom = %d %s", r.status, r.body)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/execution/variables/x", ""},
		{"GET", "/execution/variables/keys", ""},
		{"PUT", "/execution/variables/x", `{"val":"2"}`},
		{"DELETE", "/execution/variables/x", ""},
		{"GET", "/execution/connections/c", ""},
		{"GET", "/execution/xcoms/etl/r/t/return_value", ""},
		{"POST", "/execution/xcoms/etl/r/t/return_value", `"stale"`},
		{"DELETE", "/execution/xcoms/etl/r/t/return_value", ""},
		{"PATCH", ti + "/state", `{"state":"success","end_date":"2026-11-27T10:01:00Z"}`},
		{"PUT", ti + "/heartbeat", `{"hostname":"worker-a","pid":4242}`},
		{"PATCH", ti + "/run", runBody(hostA, pidA)},
		{"PATCH", ti + "/skip-downstream", `{"tasks":["t"]}`},
		{"PUT", ti + "/rtif", `{}`},
		{"GET", ti + "/previous-successful-dagrun", ""},
		{"POST", "/execution/token/refresh", ""},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			r := h.do(c.method, c.path, old, c.body)
			wantJSON(t, r, 410, archived)
			if r.header.Get(reissue.Header) != "" {
				t.Error("an earlier try's token was renewed")
			}
		})
	}
	// Even due for renewal, it is not renewed; the new try's value stands.
	h.clock.Advance(500 * time.Second)
	if r := h.do("GET", "/execution/variables/x", old, ""); r.status != 410 || r.header.Get(reissue.Header) != "" {
		t.Errorf("due earlier-try token: %d, renewed %v", r.status, r.header.Get(reissue.Header) != "")
	}
	wantJSON(t, h.do("GET", "/execution/xcoms/etl/r/t/return_value", cur, ""), 200,
		`{"key":"return_value","value":"new"}`)
	got, _ := h.db.TaskInstance(context.Background(), second)
	if got.State != workload.StateRunning {
		t.Errorf("new try = %s, want running", got.State)
	}
}

// TestStoppedTryToken: a try that left running (self-reported intermediate
// states, deferral, an operator's mark) cannot act or renew, cannot /run
// itself back to running, and its lifecycle routes tell its worker to stop.
func TestStoppedTryToken(t *testing.T) {
	notRunning := `{"detail":{"reason":"not_running","message":"TI is no longer in the running state and task should terminate"}}`
	for _, body := range []string{
		`{"state":"queued"}`,
		`{"state":"scheduled"}`,
		`{"state":"up_for_reschedule","reschedule_date":"2026-11-27T11:00:00Z","end_date":"2026-11-27T10:01:00Z"}`,
		`{"state":"deferred","classpath":"a.B","next_method":"resume","trigger_kwargs":{}}`,
	} {
		t.Run(body, func(t *testing.T) {
			h := newHarness(t, withConfig(func(c *Config) { c.TaskOvertime = 20 * time.Second }))
			id := h.queue("etl", "r", "t", -1)
			exec := h.start(id)
			ti := "/execution/task-instances/" + id
			if r := h.do("PATCH", ti+"/state", exec, body); r.status != 204 {
				t.Fatalf("state = %d %s", r.status, r.body)
			}
			wantJSON(t, h.do("GET", "/execution/variables/x", exec, ""), 409, notRunning)
			wantJSON(t, h.do("POST", "/execution/xcoms/etl/r/t/k", exec, `1`), 409, notRunning)
			if r := h.do("PUT", ti+"/heartbeat", exec, `{"hostname":"worker-a","pid":4242}`); r.status != 409 {
				t.Errorf("heartbeat = %d %s", r.status, r.body)
			}
			if r := h.do("PATCH", ti+"/run", exec, runBody(hostA, pidA)); r.status != 409 {
				t.Errorf("/run of a try that left running = %d %s", r.status, r.body)
			}
			h.clock.Advance(590 * time.Second)
			if r := h.do("PATCH", ti+"/state", exec, body); r.status != 200 || r.header.Get(reissue.Header) != "" {
				t.Errorf("repeated report: %d, renewed %v", r.status, r.header.Get(reissue.Header) != "")
			}
		})
	}
}

// TestOperatorMarkEndsTheTry: an operator's mark gives no overtime; the
// worker's next heartbeat learns it must stop.
func TestOperatorMarkEndsTheTry(t *testing.T) {
	h := newHarness(t, withConfig(func(c *Config) { c.TaskOvertime = 20 * time.Second }))
	id := h.queue("etl", "r", "t", -1)
	exec := h.start(id)
	if _, err := h.db.UpdateTaskInstance(context.Background(), id, func(ti *workload.TaskInstance) error {
		return workload.ForceState(ti, workload.StateFailed, h.clock.Now())
	}); err != nil {
		t.Fatal(err)
	}
	if r := h.do("GET", "/execution/variables/x", exec, ""); r.status != 409 {
		t.Errorf("read after an operator's mark = %d %s", r.status, r.body)
	}
	if r := h.do("PUT", "/execution/task-instances/"+id+"/heartbeat", exec, `{"hostname":"worker-a","pid":4242}`); r.status != 409 {
		t.Errorf("heartbeat = %d %s", r.status, r.body)
	}
}

// TestUnknownTryToken: a well-signed token naming no task instance acts on
// nothing.
func TestUnknownTryToken(t *testing.T) {
	h := newHarness(t)
	tok := h.tokens.mint(t, "0190e3e4-3c2b-7a8e-9d0e-00000000dead", scopes.Execution, time.Hour)
	wantJSON(t, h.do("GET", "/execution/variables/x", tok, ""), 404,
		`{"detail":{"reason":"not_found","message":"Task Instance not found"}}`)
}

// TestSkipDownstreamSparesRunningAndMapped: Airflow spares running, success
// and failed task instances, and a bare task id names map index -1 only.
func TestSkipDownstreamSparesRunningAndMapped(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "r", "branch", -1)
	exec := h.start(id)
	running := h.queue("etl", "r", "running", -1)
	h.start(running)
	plain := h.queue("etl", "r", "plain", -1)
	mapped0 := h.queue("etl", "r", "mapped", 0)
	mapped1 := h.queue("etl", "r", "mapped", 1)
	pair := h.queue("etl", "r", "pair", 3)
	if r := h.do("PATCH", "/execution/task-instances/"+id+"/skip-downstream", exec,
		`{"tasks":["running","plain","mapped",["pair",3]]}`); r.status != 204 {
		t.Fatalf("skip-downstream = %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		id   string
		want workload.State
	}{
		{running, workload.StateRunning},
		{plain, workload.StateSkipped},
		{mapped0, workload.StateQueued},
		{mapped1, workload.StateQueued},
		{pair, workload.StateSkipped},
	} {
		got, err := h.db.TaskInstance(context.Background(), c.id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != c.want {
			t.Errorf("%s[%d] = %s, want %s", got.TaskID, got.MapIndex, got.State, c.want)
		}
	}
}

// TestTryDenialsAreNoAuthFailures: a worker whose try was archived keeps
// hearing 410 (which stops it), never the auth-failure limit's 429 (which it
// would retry).
func TestTryDenialsAreNoAuthFailures(t *testing.T) {
	h := newHarness(t)
	h.srv.cfg.AuthLimiter = auth.NewFailureLimiter(5, h.clock.Now)
	first := h.queue("etl", "r", "t", -1)
	old := h.start(first)
	if r := h.do("PATCH", "/execution/task-instances/"+first+"/state", old,
		`{"state":"up_for_retry","end_date":"2026-11-27T10:01:00Z"}`); r.status != 204 {
		t.Fatalf("up_for_retry = %d %s", r.status, r.body)
	}
	h.requeue(first)
	for i := 0; i < 10; i++ {
		if r := h.do("PUT", "/execution/task-instances/"+first+"/heartbeat", old, `{"hostname":"worker-a","pid":4242}`); r.status != 410 {
			t.Fatalf("heartbeat %d of an archived try = %d %s", i, r.status, r.body)
		}
	}
}
