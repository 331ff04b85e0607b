package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

func TestTaskStateStoreRows(t *testing.T) {
	db, af, _ := newTestStore(t)
	ctx := context.Background()
	ti := af.TaskInstance(t, pgtest.TaskInstanceRow{RunID: "r", TaskID: "t", State: "running"})
	var fks int
	scanRow(t, db, `SELECT count(*) FROM pg_constraint WHERE conname IN
		('task_state_store_dag_run_fkey', 'asset_state_store_asset_fkey')`, nil, &fks)
	if fks != 2 {
		t.Errorf("%d of Airflow's foreign keys on the state store tables, want 2", fks)
	}
	scope := workload.TaskScope{DagID: ti.DagID, RunID: ti.RunID, TaskID: "t", MapIndex: -1}
	if err := db.SetTaskState(ctx, scope, "k", json.RawMessage(`{"a":[1,2.5,"é"]}`), nil); err != nil {
		t.Fatal(err)
	}
	if err := db.SetTaskState(ctx, scope, "k", json.RawMessage(`{"a":[1,2.5,"é"],"b":null}`), &t0); err != nil {
		t.Fatal(err)
	}
	var value string
	var n int
	scanRow(t, db, `SELECT value, (SELECT count(*) FROM taskgate.task_state_store) FROM taskgate.task_state_store
		WHERE key = 'k' AND expires_at = $1 AND dag_run_id = (SELECT id FROM dag_run WHERE run_id = 'r')`, []any{t0}, &value, &n)
	if value != `{"a": [1, 2.5, "\u00e9"], "b": null}` || n != 1 {
		t.Errorf("row value %s (%d rows), want json.dumps's, one row", value, n)
	}
	if v, err := db.TaskState(ctx, scope, "k"); err != nil || !jsonEqual(t, v, []byte(`{"a":[1,2.5,"é"],"b":null}`)) {
		t.Errorf("TaskState = %s, %v", v, err)
	}
	if err := db.SetTaskState(ctx, workload.TaskScope{DagID: ti.DagID, RunID: "nope", TaskID: "t"}, "k", json.RawMessage(`1`), nil); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("no dag run: %v", err)
	}
	if err := db.ClearTaskState(ctx, scope, false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TaskState(ctx, scope, "k"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("after clear: %v", err)
	}
}

func TestAssetStateStoreRows(t *testing.T) {
	db, af, _ := newTestStore(t)
	ctx := context.Background()
	a := af.Asset(t, pgtest.AssetRow{Name: "n", URI: "s3://u"})
	w := workload.AssetWriter{Kind: workload.AssetWriterTask, DagID: "d", RunID: "r", TaskID: "t", MapIndex: 3, TryNumber: 2,
		TIID: "0190e3e4-3c2b-7a8e-9d0e-000000000001"}
	if err := db.SetAssetState(ctx, workload.AssetRef{Name: "n"}, "wm", json.RawMessage(`"x"`), w); err != nil {
		t.Fatal(err)
	}
	if v, err := db.AssetState(ctx, workload.AssetRef{URI: "s3://u"}, "wm"); err != nil || string(v) != `"x"` {
		t.Errorf("by uri: %s, %v", v, err)
	}
	var kind, ti string
	var mi, try int
	scanRow(t, db, `SELECT last_updated_by_kind, last_updated_by_map_index, last_updated_by_try_number,
		last_updated_by_task_instance_id::text FROM taskgate.asset_state_store WHERE asset_id = $1`, []any{a.ID}, &kind, &mi, &try, &ti)
	if kind != "task" || mi != 3 || try != 2 || ti != w.TIID {
		t.Errorf("writer %s %d %d %s", kind, mi, try, ti)
	}
	if err := db.SetAssetState(ctx, workload.AssetRef{Name: "gone"}, "wm", json.RawMessage(`1`), w); !errors.Is(err, workload.ErrAssetNotFound) {
		t.Errorf("unknown asset: %v", err)
	}
	af.Exec(t, `DELETE FROM asset_active WHERE name = 'n'`)
	if _, err := db.AssetState(ctx, workload.AssetRef{Name: "n"}, "wm"); !errors.Is(err, workload.ErrAssetNotFound) {
		t.Errorf("inactive asset: %v", err)
	}
}
