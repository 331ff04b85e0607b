package gateway

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/taskgate/taskgate/workload"
)

// TestRunningTriesSeeChangesAtOnce: the token check remembers that a try
// runs, and the next request after any write that stopped it (the try's own
// final state, an operator's mark, a new try) is judged on the new state,
// exactly as a server that remembers nothing judges it. Heartbeats and reads
// keep what it remembered.
func TestRunningTriesSeeChangesAtOnce(t *testing.T) {
	ctx := context.Background()
	stops := []struct {
		name string
		stop func(h *harness, id, exec string)
	}{
		{"own final state", func(h *harness, id, exec string) {
			if r := h.do("PATCH", "/execution/task-instances/"+id+"/state", exec,
				`{"state":"success","end_date":"2026-11-27T10:01:00Z"}`); r.status != 204 {
				t.Fatalf("state = %d %s", r.status, r.body)
			}
		}},
		{"operator mark", func(h *harness, id, _ string) {
			if _, err := h.db.UpdateTaskInstance(ctx, id, func(ti *workload.TaskInstance) error {
				return workload.ForceState(ti, workload.StateFailed, h.clock.Now())
			}); err != nil {
				t.Fatal(err)
			}
		}},
		{"up for retry", func(h *harness, id, exec string) {
			if r := h.do("PATCH", "/execution/task-instances/"+id+"/state", exec,
				`{"state":"up_for_retry","end_date":"2026-11-27T10:01:00Z"}`); r.status != 204 {
				t.Fatalf("state = %d %s", r.status, r.body)
			}
		}},
	}
	for _, tt := range stops {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if h.srv.running == nil {
				t.Fatal("the store keeps epochs, but the server remembers no running tries")
			}
			if err := h.db.PutVariable(ctx, workload.Variable{Key: "k", Value: new("v")}); err != nil {
				t.Fatal(err)
			}
			id := h.queue("etl", "r", "t", -1)
			exec := h.start(id)
			hb := `{"hostname":"` + hostA + `","pid":4242}`
			for _, call := range []struct{ method, path, body string }{
				{"GET", "/execution/variables/k", ""},
				{"PUT", "/execution/task-instances/" + id + "/heartbeat", hb},
				{"GET", "/execution/variables/k", ""},
			} {
				if r := h.do(call.method, call.path, exec, call.body); r.status/100 != 2 {
					t.Fatalf("%s %s = %d %s", call.method, call.path, r.status, r.body)
				}
				if !h.srv.running.running(id) {
					t.Fatalf("after %s %s the try is not remembered running", call.method, call.path)
				}
			}
			tt.stop(h, id, exec)
			h.clock.Advance(time.Second)
			got := h.do("GET", "/execution/variables/k", exec, "")
			if got.status == 200 {
				t.Fatalf("GET after the try stopped = 200 %s", got.body)
			}
			// The same request to a server that remembers nothing.
			h.srv.running = nil
			want := h.do("GET", "/execution/variables/k", exec, "")
			if got.status != want.status || got.body != want.body {
				t.Errorf("remembering: %d %s; not: %d %s", got.status, got.body, want.status, want.body)
			}
		})
	}
}

// fakeEpochs is a tryEpochs whose numbers a test moves.
type fakeEpochs map[string]uint64

func (f fakeEpochs) TryEpoch(id string) uint64 { return f[id] }

// TestRunningTriesEpochAndLimit: a try is running only while its epoch has
// not moved, and a full set starts over.
func TestRunningTriesEpochAndLimit(t *testing.T) {
	epochs := fakeEpochs{}
	r := newRunningTries(epochs)
	if newRunningTries(struct{}{}) != nil {
		t.Error("a store without epochs gets a set")
	}
	e := r.epoch("id1")
	r.remember("ID1", "id1", e)
	if !r.running("ID1") {
		t.Fatal("remembered try not running")
	}
	if r.running("id1") {
		t.Error("a subject never seen is running")
	}
	epochs["id1"]++
	if r.running("ID1") {
		t.Error("running after its epoch moved")
	}
	// remembered with the epoch read before a TryStatus that raced a write:
	// the answer is kept only until the write's epoch shows.
	r.remember("ID1", "id1", e)
	if r.running("ID1") {
		t.Error("an answer older than the epoch is believed")
	}
	for i := range runningTriesLimit + 1 {
		r.remember(strconv.Itoa(i), "x", 0)
		if len(r.m) > runningTriesLimit {
			t.Fatalf("%d entries, over the limit", len(r.m))
		}
	}
	if _, ok := r.m["ID1"]; ok {
		t.Error("a full set kept its entries")
	}
}
