package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/taskgate/taskgate/workload"
)

func TestTaskStateStore(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	mustInsert(t, db, taskInstance("0190e3e4-3c2b-7a8e-9d0e-000000000001", "d", "r", "t", 2))
	scope := func(mi int) workload.TaskScope {
		return workload.TaskScope{DagID: "d", RunID: "r", TaskID: "t", MapIndex: mi}
	}
	for mi := 0; mi <= 2; mi++ {
		if err := db.SetTaskState(ctx, scope(mi), "job/id", json.RawMessage(`"app"`), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SetTaskState(ctx, scope(2), "other", json.RawMessage(`{"a":1}`), nil); err != nil {
		t.Fatal(err)
	}
	if err := db.SetTaskState(ctx, workload.TaskScope{DagID: "d", RunID: "nope", TaskID: "t"}, "k", json.RawMessage(`1`), nil); !errors.Is(err, workload.ErrNotFound) {
		t.Fatalf("set without a dag run: %v, want ErrNotFound", err)
	}
	// A task whose id extends another's shares no keys with it.
	if _, err := db.TaskState(ctx, workload.TaskScope{DagID: "d", RunID: "r", TaskID: "t2", MapIndex: 2}, "other"); !errors.Is(err, workload.ErrNotFound) {
		t.Fatalf("another task's key: %v", err)
	}
	if err := db.DeleteTaskState(ctx, scope(2), "job/id"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TaskState(ctx, scope(2), "job/id"); !errors.Is(err, workload.ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	if err := db.ClearTaskState(ctx, scope(2), false); err != nil {
		t.Fatal(err)
	}
	if v, err := db.TaskState(ctx, scope(1), "job/id"); err != nil || string(v) != `"app"` {
		t.Fatalf("map index 1 after clearing 2: %s, %v", v, err)
	}

	// The values survive a reopen, and clearing every map index empties the task's.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{})
	if v, err := db.TaskState(ctx, scope(0), "job/id"); err != nil || string(v) != `"app"` {
		t.Fatalf("after reopen: %s, %v", v, err)
	}
	if err := db.ClearTaskState(ctx, scope(2), true); err != nil {
		t.Fatal(err)
	}
	for mi := 0; mi <= 2; mi++ {
		if _, err := db.TaskState(ctx, scope(mi), "job/id"); !errors.Is(err, workload.ErrNotFound) {
			t.Fatalf("map index %d after clearing all: %v", mi, err)
		}
	}
}

func TestAssetStateStore(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	byName, byURI := workload.AssetRef{Name: "a"}, workload.AssetRef{URI: "a"}
	w := workload.AssetWriter{Kind: workload.AssetWriterTask, DagID: "d", RunID: "r", TaskID: "t", MapIndex: -1}
	if err := db.SetAssetState(ctx, byName, "wm", json.RawMessage(`"x"`), w); err != nil {
		t.Fatal(err)
	}
	// Without an asset catalog, a name and a URI are two assets.
	if _, err := db.AssetState(ctx, byURI, "wm"); !errors.Is(err, workload.ErrNotFound) {
		t.Fatalf("by uri: %v", err)
	}
	if err := db.SetAssetState(ctx, byName, "wm2", json.RawMessage(`2`), w); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteAssetState(ctx, byName, "wm2"); err != nil {
		t.Fatal(err)
	}
	if v, err := db.AssetState(ctx, byName, "wm"); err != nil || string(v) != `"x"` {
		t.Fatalf("wm: %s, %v", v, err)
	}
	if err := db.ClearAssetState(ctx, byName); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AssetState(ctx, byName, "wm"); !errors.Is(err, workload.ErrNotFound) {
		t.Fatalf("after clear: %v", err)
	}
}

func TestHITLDetails(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	const id = "0190e3e4-3c2b-7a8e-9d0e-000000000002"
	mustInsert(t, db, taskInstance(id, "d", "r", "t", -1))
	if _, err := db.HITLDetail(ctx, id); !errors.Is(err, workload.ErrHITLNotFound) {
		t.Fatalf("no detail: %v", err)
	}
	if _, err := db.UpdateHITLDetail(ctx, "0190e3e4-3c2b-7a8e-9d0e-00000000dead",
		func(*workload.HITLDetail) (*workload.HITLDetail, bool, error) { return nil, false, nil }); !errors.Is(err, workload.ErrNotFound) {
		t.Fatalf("unknown task instance: %v", err)
	}
	req := workload.HITLRequest{Options: []string{"A"}, Subject: "s"}
	if _, err := db.UpdateHITLDetail(ctx, id, func(cur *workload.HITLDetail) (*workload.HITLDetail, bool, error) {
		h, changed := workload.UpsertHITL(id, cur, req, t0)
		return h, changed, nil
	}); err != nil {
		t.Fatal(err)
	}
	h, err := db.HITLDetail(ctx, id)
	if err != nil || h.Subject != "s" || h.ResponseReceived() {
		t.Fatalf("stored detail: %+v, %v", h, err)
	}
	// The awaiting_input rule sees the detail in the task instance's write.
	var seen *workload.HITLDetail
	if _, err := db.UpdateTaskInstanceHITL(ctx, id, func(_ *workload.TaskInstance, h *workload.HITLDetail) error {
		seen = h
		return nil
	}); err != nil || seen == nil || seen.TIID != id {
		t.Fatalf("UpdateTaskInstanceHITL saw %+v, %v", seen, err)
	}
}
