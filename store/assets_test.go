package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/workload"
)

// succeed reports success for a fresh running try of task in dag/run with
// the given outlets and events.
func succeed(t *testing.T, db *DB, id, task, outlets, events string, dr workload.DagRun) {
	t.Helper()
	ti := taskInstance(id, dr.DagID, dr.RunID, task, -1)
	ti.State = workload.StateRunning
	mustInsertRun(t, db, dr, ti)
	if _, err := db.UpdateTaskInstance(context.Background(), id, func(ti *workload.TaskInstance) error {
		_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateSuccess, EndDate: ptr(t0),
			TaskOutlets: json.RawMessage(outlets), OutletEvents: json.RawMessage(events)}, t0)
		return err
	}); err != nil {
		t.Fatalf("success of %s: %v", id, err)
	}
}

func eventsOf(t *testing.T, db *DB, q workload.AssetEventQuery) []workload.AssetEvent {
	t.Helper()
	got, err := db.AssetEvents(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestOutletsRegisterAssetsAndEvents(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	dr := dagRun("d", "r", t0)
	dr.PartitionKey = ptr("run-pk")

	succeed(t, db, "00000000-0000-0000-0000-000000000001", "t1",
		`[{"name": "a", "uri": "s3://a", "type": "Asset"}, {"name": "al", "type": "AssetAlias"}]`,
		`[{"dest_asset_key": {"name": "a", "uri": "s3://a"}, "extra": {"x": 1}, "partition_key": "own"},
		  {"dest_asset_key": {"name": "n", "uri": "s3://n"}, "source_alias_name": "al", "extra": {"y": 2},
		   "dest_asset_extra": {"z": 3}}]`, dr)

	a, err := db.ActiveAssetByName(ctx, "a")
	if err != nil || a.URI != "s3://a" || a.Group != "asset" || string(a.Extra) != "{}" {
		t.Fatalf("asset a: %+v, %v", a, err)
	}
	if _, err := db.ActiveAssetByURI(ctx, "s3://n"); !errors.Is(err, workload.ErrNotFound) {
		t.Fatalf("an asset an alias event created is not active: %v", err)
	}
	got := eventsOf(t, db, workload.AssetEventQuery{Name: "a", Ascending: true})
	if len(got) != 1 || *got[0].PartitionKey != "own" || string(got[0].Extra) != `{"x":1}` ||
		*got[0].SourceTaskID != "t1" || *got[0].SourceMapIndex != -1 || !got[0].Timestamp.Equal(t0) {
		t.Fatalf("events of a: %+v", got)
	}
	got = eventsOf(t, db, workload.AssetEventQuery{ByAlias: true, Alias: "al", Ascending: true})
	if len(got) != 1 || got[0].Asset.Name != "n" || string(got[0].Asset.Extra) != `{"z":3}` ||
		*got[0].PartitionKey != "run-pk" || string(got[0].Extra) != `{"y":2}` {
		t.Fatalf("events through al: %+v", got)
	}
	// Both name and uri: the asset need not be active.
	if got := eventsOf(t, db, workload.AssetEventQuery{Name: "n", URI: "s3://n", Ascending: true}); len(got) != 1 {
		t.Fatalf("events of the inactive n by name and uri: %+v", got)
	}
	if got := eventsOf(t, db, workload.AssetEventQuery{Name: "n", Ascending: true}); len(got) != 0 {
		t.Fatalf("events of the inactive n by name: %+v", got)
	}
	assets, err := db.AssetsByAlias(ctx, "al")
	if err != nil || len(assets) != 1 || assets[0].Name != "n" {
		t.Fatalf("assets of al: %+v, %v", assets, err)
	}

	// An outlet whose name an active asset already holds is registered
	// inactive and gets no event; the try succeeds.
	succeed(t, db, "00000000-0000-0000-0000-000000000002", "t2",
		`[{"name": "a", "uri": "s3://elsewhere", "type": "Asset"}]`, `[]`, dr)
	if got := eventsOf(t, db, workload.AssetEventQuery{Name: "a", URI: "s3://elsewhere", Ascending: true}); len(got) != 0 {
		t.Fatalf("an inactive outlet got events: %+v", got)
	}
	// Names too long for Airflow's columns (and for bbolt keys) are left
	// unregistered rather than failing the write.
	long := strings.Repeat("n", 40000)
	succeed(t, db, "00000000-0000-0000-0000-000000000003", "t3",
		`[{"name": "`+long+`", "uri": "s3://long", "type": "Asset"}, {"name": "`+long+`", "type": "AssetAlias"}]`,
		`[{"dest_asset_key": {"name": "x", "uri": "s3://x"}, "source_alias_name": "`+long+`", "extra": {}}]`, dr)
	ti, err := db.TaskInstance(ctx, "00000000-0000-0000-0000-000000000002")
	if err != nil || ti.State != workload.StateSuccess {
		t.Fatalf("try with an inactive outlet: %+v, %v", ti, err)
	}
}

func TestAssetEventsOrderAndLimit(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	if err := db.PutAsset(ctx, AssetFixture{Name: "a", URI: "s3://a", Group: "asset", Active: true}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutAsset(ctx, AssetFixture{Name: "b", URI: "s3://b", Group: "asset", Active: true}); err != nil {
		t.Fatal(err)
	}
	// Stored out of order, with another asset's event in between.
	for i, d := range []int{3, 1, 2} {
		if err := db.PutAssetEvent(ctx, AssetEventFixture{ID: int64(i + 1), AssetName: "a", AssetURI: "s3://a",
			Timestamp: t0.Add(time.Duration(d) * time.Hour), Aliases: []string{"al"}}); err != nil {
			t.Fatal(err)
		}
		if err := db.PutAssetEvent(ctx, AssetEventFixture{ID: int64(11 + i), AssetName: "b", AssetURI: "s3://b",
			Timestamp: t0.Add(time.Duration(d) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(es []workload.AssetEvent) string {
		s := ""
		for _, e := range es {
			s += fmt.Sprint(e.ID)
		}
		return s
	}
	one, neg := 1, -1
	for _, c := range []struct {
		q    workload.AssetEventQuery
		want string
	}{
		{workload.AssetEventQuery{Name: "a", Ascending: true}, "231"},
		{workload.AssetEventQuery{URI: "s3://a"}, "132"},
		{workload.AssetEventQuery{Name: "a", Ascending: true, Limit: &one}, "2"},
		{workload.AssetEventQuery{Name: "a", Limit: &one}, "1"},
		{workload.AssetEventQuery{Name: "a", Limit: &neg}, ""},
		{workload.AssetEventQuery{Name: "a", Ascending: true, After: ptr(t0.Add(2 * time.Hour))}, "31"},
		{workload.AssetEventQuery{ByAlias: true, Alias: "al"}, "132"},
		{workload.AssetEventQuery{ByAlias: true, Alias: "none", Ascending: true}, ""},
		{workload.AssetEventQuery{Name: "unknown", Ascending: true}, ""},
	} {
		if got := ids(eventsOf(t, db, c.q)); got != c.want {
			t.Errorf("%+v: events %q, want %q", c.q, got, c.want)
		}
	}
	// The next assigned id follows the fixtures' explicit ones, and an
	// explicit id is never reused.
	if err := db.PutAssetEvent(ctx, AssetEventFixture{ID: 2, AssetName: "b", AssetURI: "s3://b", Timestamp: t0}); !errors.Is(err, workload.ErrAlreadyExists) {
		t.Fatalf("a second event 2: %v", err)
	}
	if err := db.PutAssetEvent(ctx, AssetEventFixture{AssetName: "b", AssetURI: "s3://b", Timestamp: t0}); err != nil {
		t.Fatal(err)
	}
	got := eventsOf(t, db, workload.AssetEventQuery{Name: "b", Ascending: true})
	if len(got) != 4 || got[0].ID != 14 {
		t.Fatalf("events of b: %+v", got)
	}
	// Deactivating an asset hides it from name and uri lookups.
	if err := db.PutAsset(ctx, AssetFixture{Name: "a", URI: "s3://a", Group: "asset"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ActiveAssetByName(ctx, "a"); !errors.Is(err, workload.ErrNotFound) {
		t.Fatalf("inactive asset by name: %v", err)
	}
}
