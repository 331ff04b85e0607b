package store

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/workload"
)

// The embedded store knows a task's inlets and outlets from its DAG's
// record, and which assets are active from its own catalog; both survive a
// reopen.
func TestInactiveAssetsFromTheDagRecord(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	k := func(name, uri string) workload.AssetKey { return workload.AssetKey{Name: name, URI: uri} }
	if err := db.PutDag(ctx, workload.Dag{DagID: "d", TaskAssets: map[string]workload.TaskAssets{
		"t": {Inlets: []workload.AssetKey{k("a", "a"), k("a", "other")}, Outlets: []workload.AssetKey{k("b", "b"), k("a", "a")}},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []AssetFixture{{Name: "a", URI: "a", Active: true}, {Name: "a", URI: "other"}} {
		if err := db.PutAsset(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	declared := mustInsert(t, db, taskInstance("01900000-0000-7000-8000-000000000001", "d", "r", "t", -1))
	undeclared := mustInsert(t, db, taskInstance("01900000-0000-7000-8000-000000000002", "d", "r", "u", -1))
	byRuns := mustInsert(t, db, taskInstance("01900000-0000-7000-8000-000000000003", "runs_only", "r", "t", -1))
	s := func(v string) *string { return &v }
	want := []workload.AssetProfile{{Name: s("a"), URI: s("other"), Type: "Asset"}, {Name: s("b"), URI: s("b"), Type: "Asset"}}
	check := func(db *DB) {
		t.Helper()
		got, err := db.InactiveAssets(ctx, declared.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("declared task (-want +got)\n%s", diff)
		}
		for _, id := range []string{undeclared.ID, byRuns.ID} {
			if got, err := db.InactiveAssets(ctx, id); err != nil || got == nil || len(got) != 0 {
				t.Errorf("%s: %v, %v; want none", id, got, err)
			}
		}
		if _, err := db.InactiveAssets(ctx, "01900000-0000-7000-8000-0000000000ff"); !errors.Is(err, workload.ErrNotFound) {
			t.Errorf("unknown task instance: %v", err)
		}
	}
	check(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	check(openAt(t, path, Options{}))
}
