package pgstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

func TestTaskAssets(t *testing.T) {
	const dag = `{"__version": 3, "dag": {"dag_id": "d", "tasks": [
		{"__type": "operator", "__var": {"task_id": "plain"}},
		{"__type": "operator", "__var": {"task_id": "t",
			"inlets": [{"__type": "asset", "__var": {"name": "a", "uri": "s3://a", "group": "asset", "extra": {}}},
				{"__type": "asset_alias", "__var": {"name": "alias", "group": "asset"}},
				{"__type": "asset_name_ref", "__var": {"name": "ref"}}],
			"outlets": [{"__type": "asset", "name": "b", "uri": "s3://b", "group": "asset", "extra": {}}]}},
		{"__type": "operator", "__var": {"task_id": "mapped", "_is_mapped": true,
			"partial_kwargs": {"outlets": [{"__type": "asset", "__var": {"name": "c", "uri": "c", "extra": null}}]}}},
		{"__type": "operator", "__var": {"task_id": "wrapped", "_is_mapped": true,
			"partial_kwargs": {"__type": "dict", "__var": {"inlets": [{"__type": "asset", "__var": {"name": "w", "uri": "w"}}]}}}}
	]}}`
	for _, c := range []struct {
		task string
		want workload.TaskAssets
	}{
		{"t", workload.TaskAssets{Inlets: []workload.AssetKey{{Name: "a", URI: "s3://a"}},
			Outlets: []workload.AssetKey{{Name: "b", URI: "s3://b"}}}},
		{"plain", workload.TaskAssets{}},
		{"missing", workload.TaskAssets{}},
		{"mapped", workload.TaskAssets{Outlets: []workload.AssetKey{{Name: "c", URI: "c"}}}},
		{"wrapped", workload.TaskAssets{Inlets: []workload.AssetKey{{Name: "w", URI: "w"}}}},
	} {
		t.Run(c.task, func(t *testing.T) {
			got, err := taskAssets([]byte(dag), c.task)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("-want +got\n%s", diff)
			}
		})
	}
	if _, err := taskAssets([]byte(`{"dag": {"tasks": [1]}}`), "t"); err == nil {
		t.Error("a task that is no object: want an error")
	}
}

// The serialized DAG is the run's, as DBDagBag.get_dag_for_run picks it: the
// latest version for a run of an unversioned bundle, the version that
// created the run otherwise.
func TestInactiveAssetsReadTheRunsDagVersion(t *testing.T) {
	db, af, clk := newTestStore(t)
	ctx := context.Background()
	outlet := func(name string) []map[string]any { return []map[string]any{pgtest.SerializedAssetJSON(name, name)} }
	af.SerializedDag(t, "vdag", []map[string]any{pgtest.OperatorJSON("t", nil, outlet("old"))}, false)
	var v1 string
	scanRow(t, db, `SELECT id::text FROM dag_version WHERE dag_id = 'vdag'`, nil, &v1)
	clk.Add(time.Minute)
	af.Exec(t, `INSERT INTO dag_version (id, version_number, dag_id, bundle_name, created_at, last_updated)
		VALUES ($1, 2, 'vdag', $2, $3, $3)`, pgtest.UUIDv7(), pgtest.DefaultBundle, clk.Now())
	af.SerializedDag(t, "vdag", []map[string]any{pgtest.OperatorJSON("t", nil, outlet("new"))}, true)
	version := "abc123"
	for _, c := range []struct {
		run    string
		bundle *string
		want   string
	}{
		{"unversioned", nil, "new"},
		{"versioned", &version, "old"},
	} {
		t.Run(c.run, func(t *testing.T) {
			r := af.DagRun(t, pgtest.DagRunRow{DagID: "vdag", RunID: c.run, BundleVersion: c.bundle, DagVersionID: v1})
			ti := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.DagID, RunID: r.RunID, TaskID: "t"})
			got, err := db.InactiveAssets(ctx, ti.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || *got[0].Name != c.want || got[0].Type != "Asset" {
				t.Errorf("inactive assets %+v, want %s", got, c.want)
			}
		})
	}
	if _, err := db.InactiveAssets(ctx, pgtest.UUIDv7()); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("unknown task instance: %v, want ErrNotFound", err)
	}
	if _, err := db.InactiveAssets(ctx, "not-a-uuid"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("not a uuid: %v, want ErrNotFound", err)
	}
}

// StubTask reads the serialized DAG of the try's own dag_version_id, as
// Airflow's get_arg_bindings does (not the run's): each try sees the stub
// task of the version it was queued with, compressed or not.
func TestStubTaskReadsTheTrysDagVersion(t *testing.T) {
	db, af, clk := newTestStore(t)
	ctx := context.Background()
	stub := func(value string) map[string]any {
		return map[string]any{"__type": "operator", "__var": map[string]any{"task_id": "s", "task_type": "_StubOperator",
			"is_stub": true, "arg_bindings": []any{map[string]any{"name": "a", "kind": "literal", "value": value}}}}
	}
	af.SerializedDag(t, "sdag", []map[string]any{stub("old"), pgtest.OperatorJSON("plain", nil, nil)}, false)
	var v1 string
	scanRow(t, db, `SELECT id::text FROM dag_version WHERE dag_id = 'sdag'`, nil, &v1)
	clk.Add(time.Minute)
	af.Exec(t, `INSERT INTO dag_version (id, version_number, dag_id, bundle_name, created_at, last_updated)
		VALUES ($1, 2, 'sdag', $2, $3, $3)`, pgtest.UUIDv7(), pgtest.DefaultBundle, clk.Now())
	af.SerializedDag(t, "sdag", []map[string]any{stub("new")}, true)
	for i, c := range []struct {
		name, task, version, want string
	}{
		{"the first version", "s", v1, `"old"`},
		{"the latest version, compressed", "s", "", `"new"`},
		{"a task that is no stub", "plain", v1, ""},
		{"a task the version lacks", "plain", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := af.DagRun(t, pgtest.DagRunRow{DagID: "sdag", RunID: fmt.Sprint("r", i)})
			row := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.DagID, RunID: r.RunID, TaskID: c.task,
				DagVersionID: c.version})
			ti, err := db.TaskInstance(ctx, row.ID)
			if err != nil {
				t.Fatal(err)
			}
			op, err := db.StubTask(ctx, ti)
			if err != nil {
				t.Fatal(err)
			}
			ab, err := workload.ArgBindings(op)
			if err != nil {
				t.Fatal(err)
			}
			if c.want == "" {
				if op != nil {
					t.Errorf("stub task %s, want none", op)
				}
				return
			}
			if want := `[{"name":"a","kind":"literal","value":` + c.want + `}]`; string(ab) != want {
				t.Errorf("arg_bindings %s, want %s", ab, want)
			}
		})
	}
	if op, err := db.StubTask(ctx, &workload.TaskInstance{DagID: "sdag", TaskID: "s"}); op != nil || err != nil {
		t.Errorf("a try without a dag version: %s, %v", op, err)
	}
}
