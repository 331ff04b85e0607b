package pgstore

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

// assetEventRow is an asset_event row with its asset's uri and the aliases
// it is linked to; Extra is the column's text.
type assetEventRow struct {
	URI                  string
	Extra                string
	DagID, TaskID, RunID *string
	MapIndex             *int32
	Timestamp            time.Time
	PartitionKey         *string
	Aliases              []string
}

type adrqRow struct {
	URI, DagID string
	CreatedAt  time.Time
}

// assetWorld is what the DAG processor would have written before the
// producer runs: asset a (active) scheduling c_ref, c_paused (paused),
// c_part (a partitioned timetable) and c_queued (already queued an hour
// ago), c_name and c_uri scheduled on references to a's name and uri;
// asset gone, no longer active, scheduling c_gone; alias al scheduling
// c_alias.
func assetWorld(t *testing.T, af *pgtest.Airflow) {
	t.Helper()
	a := af.Asset(t, pgtest.AssetRow{Name: "a", URI: "s3://b/a"})
	gone := af.Asset(t, pgtest.AssetRow{Name: "gone", URI: "s3://b/gone"})
	af.Exec(t, `DELETE FROM asset_active WHERE name = 'gone'`)
	for _, d := range []string{"c_ref", "c_paused", "c_part", "c_queued", "c_name", "c_uri", "c_gone", "c_alias"} {
		af.DagRun(t, pgtest.DagRunRow{DagID: d})
	}
	af.Exec(t, `UPDATE dag SET is_paused = true WHERE dag_id = 'c_paused'`)
	af.Exec(t, `UPDATE dag SET timetable_partitioned = true WHERE dag_id = 'c_part'`)
	for _, d := range []string{"c_ref", "c_paused", "c_part", "c_queued"} {
		af.Exec(t, `INSERT INTO dag_schedule_asset_reference (asset_id, dag_id, created_at, updated_at)
			VALUES ($1, $2, $3, $3)`, a.ID, d, t0)
	}
	af.Exec(t, `INSERT INTO dag_schedule_asset_reference (asset_id, dag_id, created_at, updated_at)
		VALUES ($1, 'c_gone', $2, $2)`, gone.ID, t0)
	af.Exec(t, `INSERT INTO dag_schedule_asset_name_reference (name, dag_id, created_at) VALUES ('a', 'c_name', $1)`, t0)
	af.Exec(t, `INSERT INTO dag_schedule_asset_uri_reference (uri, dag_id, created_at) VALUES ('s3://b/a', 'c_uri', $1)`, t0)
	af.Exec(t, `INSERT INTO asset_dag_run_queue (asset_id, target_dag_id, created_at) VALUES ($1, 'c_queued', $2)`,
		a.ID, t0.Add(-time.Hour))
	af.Exec(t, `INSERT INTO asset_alias (name, "group") VALUES ('al', '')`)
	af.Exec(t, `INSERT INTO dag_schedule_asset_alias_reference (alias_id, dag_id, created_at, updated_at)
		SELECT id, 'c_alias', $1, $1 FROM asset_alias WHERE name = 'al'`, t0)
}

func readAssetEvents(t *testing.T, db *DB) []assetEventRow {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), `SELECT a.uri, e.extra::text, e.source_dag_id, e.source_task_id,
			e.source_run_id, e.source_map_index, e.timestamp, e.partition_key,
			ARRAY(SELECT al.name FROM asset_alias_asset_event ae JOIN asset_alias al ON al.id = ae.alias_id
				WHERE ae.event_id = e.id ORDER BY al.name)
		FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []assetEventRow
	for rows.Next() {
		var r assetEventRow
		if err := rows.Scan(&r.URI, &r.Extra, &r.DagID, &r.TaskID, &r.RunID, &r.MapIndex, &r.Timestamp,
			&r.PartitionKey, &r.Aliases); err != nil {
			t.Fatal(err)
		}
		r.Timestamp = r.Timestamp.UTC()
		if len(r.Aliases) == 0 {
			r.Aliases = nil
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func readADRQ(t *testing.T, db *DB) []adrqRow {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), `SELECT a.uri, q.target_dag_id, q.created_at
		FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id ORDER BY a.uri, q.target_dag_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []adrqRow
	for rows.Next() {
		var r adrqRow
		if err := rows.Scan(&r.URI, &r.DagID, &r.CreatedAt); err != nil {
			t.Fatal(err)
		}
		r.CreatedAt = r.CreatedAt.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSuccessRegistersAssetChanges: a try reporting success through
// UpdateTaskInstance leaves the asset_event, asset_dag_run_queue and alias
// rows Airflow's register_asset_changes_in_db leaves; other states, and a
// success without outlets, leave none.
func TestSuccessRegistersAssetChanges(t *testing.T) {
	t.Parallel()
	end := t0.Add(time.Minute)
	queued := adrqRow{"s3://b/a", "c_queued", t0.Add(-time.Hour)} // there before the try
	// queuedByA are the dags an event of asset a queues.
	queuedByA := []adrqRow{{"s3://b/a", "c_name", t0}, queued, {"s3://b/a", "c_ref", t0}, {"s3://b/a", "c_uri", t0}}
	assetA := `{"name": "a", "uri": "s3://b/a", "type": "Asset"}`
	event := func(extra string) assetEventRow {
		return assetEventRow{URI: "s3://b/a", Extra: extra, DagID: ptr("producer"), TaskID: ptr("t"),
			MapIndex: ptr(int32(-1)), Timestamp: t0}
	}
	tests := []struct {
		name          string
		update        workload.StateUpdate
		wantEvents    []assetEventRow
		wantQueue     []adrqRow
		wantNewAssets []string // assets created by the event, as name|uri|group|extra|active
		partitionKey  *string  // of the producer's dag run
	}{
		{
			name: "one asset with extra",
			update: workload.StateUpdate{State: workload.StateSuccess,
				TaskOutlets:  json.RawMessage(`[` + assetA + `]`),
				OutletEvents: json.RawMessage(`[{"dest_asset_key": {"name": "a", "uri": "s3://b/a"}, "extra": {"rows": 3,"b":"x\u00e9"}}]`)},
			// json.dumps of the extra: key order kept, ", " and ": ",
			// ensure_ascii.
			wantEvents: []assetEventRow{event(`{"rows": 3, "b": "x\u00e9"}`)},
			wantQueue:  queuedByA,
		},
		{
			name: "one asset without an event: extra {}",
			update: workload.StateUpdate{State: workload.StateSuccess,
				TaskOutlets: json.RawMessage(`[` + assetA + `, ` + assetA + `]`), OutletEvents: json.RawMessage(`[]`)},
			wantEvents: []assetEventRow{event(`{}`)},
			wantQueue:  queuedByA,
		},
		{
			name: "name and uri references",
			update: workload.StateUpdate{State: workload.StateSuccess,
				TaskOutlets: json.RawMessage(`[{"name": "a", "uri": null, "type": "AssetNameRef"},
					{"name": null, "uri": "s3://b/a", "type": "AssetUriRef"}]`),
				OutletEvents: json.RawMessage(`[{"dest_asset_key": {"name": "a", "uri": "s3://b/a"}, "extra": {"k": 1}}]`)},
			wantEvents: []assetEventRow{event(`{"k": 1}`), event(`{"k": 1}`)},
			wantQueue:  queuedByA,
		},
		{
			name: "inactive asset",
			update: workload.StateUpdate{State: workload.StateSuccess,
				TaskOutlets: json.RawMessage(`[{"name": "gone", "uri": "s3://b/gone", "type": "Asset"}]`)},
			wantQueue: []adrqRow{queued},
		},
		{
			name: "unknown asset beside a known one",
			update: workload.StateUpdate{State: workload.StateSuccess,
				TaskOutlets: json.RawMessage(`[{"name": "nope", "uri": "s3://b/nope", "type": "Asset"}, ` + assetA + `,
					{"name": "nope", "uri": null, "type": "AssetNameRef"}]`)},
			wantEvents: []assetEventRow{event(`{}`)},
			wantQueue:  queuedByA,
		},
		{
			name:      "success without outlets",
			update:    workload.StateUpdate{State: workload.StateSuccess},
			wantQueue: []adrqRow{queued},
		},
		{
			name: "alias events",
			update: workload.StateUpdate{State: workload.StateSuccess,
				TaskOutlets: json.RawMessage(`[{"name": "al", "uri": null, "type": "AssetAlias"},
					{"name": "other", "uri": null, "type": "AssetAlias"}]`),
				OutletEvents: json.RawMessage(`[
					{"dest_asset_key": {"name": "new", "uri": "s3://b/new"}, "dest_asset_extra": {"o": "x"}, "extra": {"q": 2, "p": 1},
						"source_alias_name": "al"},
					{"dest_asset_key": {"name": "new", "uri": "s3://b/new"}, "dest_asset_extra": {"o": "x"}, "extra": {"p": 1, "q": 2},
						"source_alias_name": "other"},
					{"dest_asset_key": {"name": "a", "uri": "s3://b/a"}, "extra": {}, "source_alias_name": "al"},
					{"dest_asset_key": {"name": "a", "uri": "s3://b/a"}, "extra": {}, "source_alias_name": "not-an-outlet"}]`)},
			wantEvents: []assetEventRow{
				{URI: "s3://b/new", Extra: `{"p": 1, "q": 2}`, DagID: ptr("producer"), TaskID: ptr("t"), MapIndex: ptr(int32(-1)),
					Timestamp: t0, Aliases: []string{"al", "other"}},
				{URI: "s3://b/a", Extra: `{}`, DagID: ptr("producer"), TaskID: ptr("t"), MapIndex: ptr(int32(-1)),
					Timestamp: t0, Aliases: []string{"al"}},
			},
			wantQueue: append([]adrqRow{{"s3://b/a", "c_alias", t0}}, append(queuedByA,
				adrqRow{"s3://b/new", "c_alias", t0})...),
			wantNewAssets: []string{`new|s3://b/new|asset|{"o": "x"}|false`},
		},
		{
			// Airflow queues no dag in asset_dag_run_queue for an event
			// with a partition key.
			name: "partitioned dag run",
			update: workload.StateUpdate{State: workload.StateSuccess,
				TaskOutlets: json.RawMessage(`[` + assetA + `]`)},
			partitionKey: ptr("2026-03-01"),
			wantEvents: []assetEventRow{{URI: "s3://b/a", Extra: `{}`, DagID: ptr("producer"), TaskID: ptr("t"),
				MapIndex: ptr(int32(-1)), Timestamp: t0, PartitionKey: ptr("2026-03-01")}},
			wantQueue: []adrqRow{queued},
		},
		{
			// Every outlet event of an asset is an event, with its own
			// partition key (none queues a dag) or the dag run's.
			name: "outlet events with their own partition keys",
			update: workload.StateUpdate{State: workload.StateSuccess,
				TaskOutlets: json.RawMessage(`[` + assetA + `]`),
				OutletEvents: json.RawMessage(`[{"dest_asset_key": {"name": "a", "uri": "s3://b/a"}, "extra": {"n": 1}, "partition_key": "p1"},
					{"dest_asset_key": {"name": "a", "uri": "s3://b/a"}, "extra": {"n": 2}}]`)},
			partitionKey: ptr("run"),
			wantEvents: []assetEventRow{
				{URI: "s3://b/a", Extra: `{"n": 1}`, DagID: ptr("producer"), TaskID: ptr("t"),
					MapIndex: ptr(int32(-1)), Timestamp: t0, PartitionKey: ptr("p1")},
				{URI: "s3://b/a", Extra: `{"n": 2}`, DagID: ptr("producer"), TaskID: ptr("t"),
					MapIndex: ptr(int32(-1)), Timestamp: t0, PartitionKey: ptr("run")}},
			wantQueue: []adrqRow{queued},
		},
		{
			name: "failed",
			update: workload.StateUpdate{State: workload.StateFailed,
				TaskOutlets: json.RawMessage(`[` + assetA + `]`)},
			wantQueue: []adrqRow{queued},
		},
		{
			name: "up_for_retry",
			update: workload.StateUpdate{State: workload.StateUpForRetry,
				TaskOutlets: json.RawMessage(`[` + assetA + `]`)},
			wantQueue: []adrqRow{queued},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, af, _ := newTestStore(t)
			assetWorld(t, af)
			row := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "producer", TaskID: "t", State: "running",
				Hostname: "h", PID: ptr(1), StartDate: ptr(t0.Add(-time.Minute))})
			if tt.partitionKey != nil {
				af.Exec(t, `UPDATE dag_run SET partition_key = $1 WHERE dag_id = 'producer'`, *tt.partitionKey)
			}
			u := tt.update
			u.EndDate = &end
			if _, err := db.UpdateTaskInstance(context.Background(), row.ID, func(ti *workload.TaskInstance) error {
				if u.State == workload.StateFailed || u.State == workload.StateUpForRetry {
					// Only success carries outlets; set them anyway to
					// show that no other state registers them.
					defer func() { ti.TaskOutlets = u.TaskOutlets }()
				}
				_, err := workload.ApplyState(ti, u, t0)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			for i := range tt.wantEvents {
				tt.wantEvents[i].RunID = &row.RunID
			}
			if diff := cmp.Diff(tt.wantEvents, readAssetEvents(t, db)); diff != "" {
				t.Errorf("asset_event (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantQueue, readADRQ(t, db)); diff != "" {
				t.Errorf("asset_dag_run_queue (-want +got):\n%s", diff)
			}
			var created []string
			rows, err := db.pool.Query(context.Background(), `SELECT a.name || '|' || a.uri || '|' || a."group" || '|' ||
					a.extra::text || '|' || EXISTS (SELECT 1 FROM asset_active aa WHERE aa.name = a.name AND aa.uri = a.uri)
				FROM asset a WHERE a.name NOT IN ('a', 'gone') ORDER BY a.id`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				created = append(created, s)
			}
			rows.Close()
			if diff := cmp.Diff(tt.wantNewAssets, created); diff != "" {
				t.Errorf("assets created (-want +got):\n%s", diff)
			}
			if tt.wantNewAssets != nil {
				var linked int
				scanRow(t, db, `SELECT count(*) FROM asset_alias_asset aa JOIN asset a ON a.id = aa.asset_id
					JOIN asset_alias al ON al.id = aa.alias_id
					WHERE (a.name, al.name) IN (('new', 'al'), ('new', 'other'), ('a', 'al'))`, nil, &linked)
				if linked != 3 {
					t.Errorf("asset_alias_asset: %d of the 3 associations", linked)
				}
			}
		})
	}
}
