package integration_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/workload"
)

// Airflow's TestInvactiveInletsAndOutlets (versions/head/
// test_task_instances.py), on both stores: a task's Asset inlets and
// outlets, less the active assets. Airflow's dag_maker serializes the DAG
// and registers its assets, the first of each name active; here the
// embedded store holds the task's inlets and outlets in its DAG record
// (PutDag) and Airflow's database in the serialized DAG.

// inletsFixture is one DAG's task with its inlets and outlets, and the
// assets the DAG processor registered.
type inletsFixture struct {
	dagID, taskID   string
	inlets, outlets []workload.AssetKey
	// aliases are AssetAlias inlets (serialized DAG only; the embedded
	// store's record keeps Asset entries alone).
	aliases []string
	assets  []assetFix
	logical *time.Time
	// compressed writes the serialized DAG to data_compressed.
	compressed bool
	// tiTask is the task of the task instance when it is not taskID: a
	// task the DAG does not declare.
	tiTask string
}

// tiTaskID is the task the fixture's task instance runs.
func (f inletsFixture) tiTaskID() string {
	if f.tiTask != "" {
		return f.tiTask
	}
	return f.taskID
}

type inletsBackend struct {
	name string
	// start serves the fixture and returns the server's URL and the task
	// instance of the fixture's task, queued.
	start func(t *testing.T, f inletsFixture) (string, queued)
}

var inletsBackends = []inletsBackend{
	{"embedded", startEmbeddedInlets},
	{"postgres", startPostgresInlets},
}

func startEmbeddedInlets(t *testing.T, f inletsFixture) (string, queued) {
	t.Helper()
	dataDir := newDataDir(t)
	queueTask(t, dataDir, "other_dag", "other_run", "other_task") // makes the keys
	db, err := store.Open(filepath.Join(dataDir, "taskgate.db"), store.Options{OpenTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	paused := false
	if err := db.PutDag(ctx, workload.Dag{DagID: f.dagID, IsPaused: &paused, TaskAssets: map[string]workload.TaskAssets{
		f.taskID: {Inlets: f.inlets, Outlets: f.outlets}}}); err != nil {
		t.Fatal(err)
	}
	for _, a := range f.assets {
		if err := db.PutAsset(ctx, store.AssetFixture{Name: a.name, URI: a.uri, Group: a.group,
			Extra: json.RawMessage(a.extra), Active: a.active}); err != nil {
			t.Fatal(err)
		}
	}
	runAfter := time.Now().UTC()
	dr := workload.DagRun{DagID: f.dagID, RunID: "manual__1", RunType: "manual", State: "running",
		LogicalDate: f.logical, RunAfter: runAfter, StartDate: &runAfter, Conf: json.RawMessage("{}")}
	if err := db.PutDagRun(ctx, dr); err != nil {
		t.Fatal(err)
	}
	id, _ := uuid.NewV7()
	ti := workload.TaskInstance{ID: id.String(), DagID: dr.DagID, RunID: dr.RunID, TaskID: f.tiTaskID(), MapIndex: -1,
		TryNumber: 1, State: workload.StateQueued, Queue: "default", PoolSlots: 1, UpdatedAt: runAfter}
	if _, err := db.InsertTaskInstance(ctx, dr, ti, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, dataDir)
	return s.URL, queued{Token: newMinter(t, dataDir).workload(ti.ID), TIID: ti.ID, DagID: dr.DagID, RunID: dr.RunID,
		TaskID: ti.TaskID, MapIndex: -1}
}

func startPostgresInlets(t *testing.T, f inletsFixture) (string, queued) {
	t.Helper()
	d := newPGDeployment(t)
	ser := func(keys []workload.AssetKey) []map[string]any {
		var out []map[string]any
		for _, k := range keys {
			out = append(out, pgtest.SerializedAssetJSON(k.Name, k.URI))
		}
		return out
	}
	inlets := ser(f.inlets)
	for _, a := range f.aliases {
		inlets = append(inlets, pgtest.SerializedAliasJSON(a))
	}
	d.af.SerializedDag(t, f.dagID, []map[string]any{
		pgtest.OperatorJSON("other_task", nil, nil),
		pgtest.OperatorJSON(f.taskID, inlets, ser(f.outlets)),
	}, f.compressed)
	for _, a := range f.assets {
		d.exec(`INSERT INTO asset (name, uri, "group", extra, created_at, updated_at)
			VALUES ($1, $2, $3, $4::json, now(), now())`, a.name, a.uri, a.group, a.extra)
		if a.active {
			d.exec(`INSERT INTO asset_active (name, uri) VALUES ($1, $2)`, a.name, a.uri)
		}
	}
	row := d.af.DagRun(t, pgtest.DagRunRow{DagID: f.dagID, RunID: "manual__1", LogicalDate: f.logical})
	ti := d.insertQueuedTI(&afRun{dagID: row.DagID, runID: row.RunID, id: row.ID}, f.tiTaskID(), 1, 0)
	s := d.startReplica(t)
	return s.URL, ti.q(d.minter(t))
}

func TestConformanceInactiveInletsAndOutlets(t *testing.T) {
	june := time.Date(2025, 6, 6, 0, 0, 0, 0, time.UTC)
	key := func(name, uri string) workload.AssetKey { return workload.AssetKey{Name: name, URI: uri} }
	asset := func(name, uri string, active bool) assetFix {
		return assetFix{name: name, uri: uri, group: "asset", extra: "{}", active: active}
	}
	// test_ti_inactive_inlets_and_outlets: Asset(name="inlet-name") has the
	// uri "inlet-name"; dag_maker registers the first asset of each name
	// active, and the second, which shares its name, inactive.
	mixed := func(logical *time.Time) inletsFixture {
		return inletsFixture{dagID: "test_inlets_and_outlets", taskID: "task1", logical: logical,
			inlets:  []workload.AssetKey{key("inlet-name", "inlet-name"), key("inlet-name", "but-different-uri")},
			outlets: []workload.AssetKey{key("outlet-name", "uri"), key("outlet-name", "second-different-uri")},
			assets: []assetFix{asset("inlet-name", "inlet-name", true), asset("inlet-name", "but-different-uri", false),
				asset("outlet-name", "uri", true), asset("outlet-name", "second-different-uri", false)}}
	}
	const mixedWant = `{"inactive_assets":[{"name":"inlet-name","uri":"but-different-uri","type":"Asset"},` +
		`{"name":"outlet-name","uri":"second-different-uri","type":"Asset"}]}`
	allActive := func(logical *time.Time) inletsFixture {
		return inletsFixture{dagID: "test_inlets_and_outlets_inactive", taskID: "inactive_task1", logical: logical,
			inlets:  []workload.AssetKey{key("inlet-name", "inlet-name")},
			outlets: []workload.AssetKey{key("outlet-name", "uri")},
			assets:  []assetFix{asset("inlet-name", "inlet-name", true), asset("outlet-name", "uri", true)}}
	}
	cases := []struct {
		name string
		f    inletsFixture
		want string
		// pgOnly: what only a serialized DAG can say.
		pgOnly bool
	}{
		{"test_task_instances.py::TestInvactiveInletsAndOutlets::test_ti_inactive_inlets_and_outlets[logical_date0]",
			mixed(&june), mixedWant, false},
		{"test_task_instances.py::TestInvactiveInletsAndOutlets::test_ti_inactive_inlets_and_outlets[None]",
			mixed(nil), mixedWant, false},
		{"test_task_instances.py::TestInvactiveInletsAndOutlets::test_ti_inactive_inlets_and_outlets_without_inactive_assets[logical_date0]",
			allActive(&june), `{"inactive_assets":[]}`, false},
		{"test_task_instances.py::TestInvactiveInletsAndOutlets::test_ti_inactive_inlets_and_outlets_without_inactive_assets[None]",
			allActive(nil), `{"inactive_assets":[]}`, false},
		{"an asset no one registered is inactive; one named twice is reported once",
			inletsFixture{dagID: "unregistered", taskID: "t", inlets: []workload.AssetKey{key("never", "s3://never")},
				outlets: []workload.AssetKey{key("never", "s3://never")}},
			`{"inactive_assets":[{"name":"never","uri":"s3://never","type":"Asset"}]}`, false},
		{"a task the DAG does not declare has no inlets or outlets",
			inletsFixture{dagID: "undeclared", taskID: "declared", tiTask: "other", inlets: []workload.AssetKey{key("x", "x")}},
			`{"inactive_assets":[]}`, false},
		{"a task without inlets or outlets",
			inletsFixture{dagID: "plain", taskID: "t"}, `{"inactive_assets":[]}`, false},
		{"aliases are not checked, and a compressed serialized DAG is read",
			inletsFixture{dagID: "aliased", taskID: "t", aliases: []string{"some-alias"}, compressed: true,
				outlets: []workload.AssetKey{key("gone", "gone")}},
			`{"inactive_assets":[{"name":"gone","uri":"gone","type":"Asset"}]}`, true},
	}
	for _, b := range inletsBackends {
		for _, c := range cases {
			if c.pgOnly && b.name != "postgres" {
				continue
			}
			t.Run(b.name+"/"+c.name, func(t *testing.T) {
				base, q := b.start(t, c.f)
				tok := startedToken(t, base, q)
				wantJSON(t, send(t, base, "GET", tiPath(q.TIID, "validate-inlets-and-outlets"), "Bearer "+tok, ""),
					200, c.want)
			})
		}
	}
}
