package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

// apdrRow is an asset_partition_dag_run row.
type apdrRow struct {
	ID           int32
	DagID, Key   string
	CreatedRunID *int32
	CreatedAt    time.Time
}

// pakl is a partitioned_asset_key_log row, its event named by the event's
// producing run.
type pakl struct {
	URI, EventRunID  string
	APDR             int32
	SourceKey, DagID string
	TargetKey        string
	CreatedAt        time.Time
}

func readAPDR(t *testing.T, db *DB) []apdrRow {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), `SELECT id, target_dag_id, partition_key, created_dag_run_id, created_at
		FROM asset_partition_dag_run ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (apdrRow, error) {
		var a apdrRow
		err := r.Scan(&a.ID, &a.DagID, &a.Key, &a.CreatedRunID, &a.CreatedAt)
		a.CreatedAt = a.CreatedAt.UTC()
		return a, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readPAKL(t *testing.T, db *DB) []pakl {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), `SELECT a.uri, e.source_run_id, l.asset_partition_dag_run_id,
			l.source_partition_key, l.target_dag_id, l.target_partition_key, l.created_at
		FROM partitioned_asset_key_log l JOIN asset a ON a.id = l.asset_id JOIN asset_event e ON e.id = l.asset_event_id
			AND e.asset_id = l.asset_id
		ORDER BY l.id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pakl, error) {
		var p pakl
		err := r.Scan(&p.URI, &p.EventRunID, &p.APDR, &p.SourceKey, &p.DagID, &p.TargetKey, &p.CreatedAt)
		p.CreatedAt = p.CreatedAt.UTC()
		return p, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// partitionAudit is a log row _queue_partitioned_dags writes, its logical
// date compared with its dag run's.
type partitionAudit struct {
	Event, DagID, TaskID, RunID string
	MapIndex, TryNumber         int32
	Owner                       *string
	RunLogicalDate              bool // the row's logical date is its dag run's
	Extra                       string
	Dttm                        time.Time
}

// readPartitionAudit reads the audit log rows other than the success's own.
func readPartitionAudit(t *testing.T, db *DB) []partitionAudit {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), `SELECT l.event, l.dag_id, l.task_id, l.run_id, l.map_index,
			l.try_number, l.owner, l.logical_date IS NOT DISTINCT FROM dr.logical_date, l.extra, l.dttm
		FROM log l LEFT JOIN dag_run dr ON dr.dag_id = l.dag_id AND dr.run_id = l.run_id
		WHERE l.event <> 'success' ORDER BY l.id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (partitionAudit, error) {
		var a partitionAudit
		err := r.Scan(&a.Event, &a.DagID, &a.TaskID, &a.RunID, &a.MapIndex, &a.TryNumber, &a.Owner,
			&a.RunLogicalDate, &a.Extra, &a.Dttm)
		a.Dttm = a.Dttm.UTC()
		return a, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// logBuffer collects a store's log as JSON lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// entries are the log's records as maps.
func (l *logBuffer) entries(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "time")
		out = append(out, m)
	}
	return out
}

func captureLog(db *DB) *logBuffer {
	l := &logBuffer{}
	db.SetLog(slog.New(slog.NewJSONHandler(l, nil)))
	return l
}

// partitionWorld is what the DAG processor would have written: asset a
// (active) and, scheduled on it, the partitioned DAGs
//   - p_id (directly, IdentityMapper by default),
//   - p_day (through a reference to a's name; StartOfDayMapper set for a
//     in partition_mapper_config, the default being an AllowedKeyMapper
//     that would refuse the key; compressed serialized DAG),
//   - p_alias (through alias al; ProductMapper-free ChainMapper of
//     StartOfHourMapper then IdentityMapper),
//   - p_paused (paused),
//   - p_plugin (a mapper class of a plugin),
//   - p_refuse (an AllowedKeyMapper refusing the key),
//   - p_noserdag (no serialized DAG),
//
// and the non-partitioned c_ref.
func partitionWorld(t *testing.T, af *pgtest.Airflow) {
	t.Helper()
	a := af.Asset(t, pgtest.AssetRow{Name: "a", URI: "s3://b/a"})
	assetA := pgtest.AssetJSON("a", "s3://b/a")
	af.PartitionedDag(t, pgtest.PartitionedDagRow{DagID: "p_id", AssetCondition: assetA})
	af.PartitionedDag(t, pgtest.PartitionedDagRow{DagID: "p_day", AssetCondition: assetA, Compressed: true,
		DefaultMapper: pgtest.MapperJSON("allowed_key.AllowedKeyMapper", map[string]any{"allowed_keys": []any{}}),
		MapperConfig:  [][2]map[string]any{{assetA, pgtest.TemporalMapperJSON("StartOfDayMapper", "%Y-%m-%d")}}})
	af.PartitionedDag(t, pgtest.PartitionedDagRow{DagID: "p_alias",
		DefaultMapper: pgtest.MapperJSON("chain.ChainMapper", map[string]any{"mappers": []any{
			pgtest.TemporalMapperJSON("StartOfHourMapper", "%Y-%m-%dT%H"), pgtest.MapperJSON("identity.IdentityMapper", nil)}})})
	af.PartitionedDag(t, pgtest.PartitionedDagRow{DagID: "p_paused", AssetCondition: assetA})
	af.PartitionedDag(t, pgtest.PartitionedDagRow{DagID: "p_plugin", AssetCondition: assetA,
		DefaultMapper: map[string]any{"__type": "my_plugin.mappers.RegionMapper", "__var": map[string]any{"region": "eu"}}})
	af.PartitionedDag(t, pgtest.PartitionedDagRow{DagID: "p_refuse", AssetCondition: assetA,
		DefaultMapper: pgtest.MapperJSON("allowed_key.AllowedKeyMapper", map[string]any{"allowed_keys": []any{"us"}})})
	af.PartitionedDag(t, pgtest.PartitionedDagRow{DagID: "p_noserdag", AssetCondition: assetA})
	af.Exec(t, `DELETE FROM serialized_dag WHERE dag_id = 'p_noserdag'`)
	af.DagRun(t, pgtest.DagRunRow{DagID: "c_ref"})
	af.Exec(t, `UPDATE dag SET is_paused = true WHERE dag_id = 'p_paused'`)
	for _, d := range []string{"p_id", "p_paused", "p_plugin", "p_refuse", "p_noserdag", "c_ref"} {
		af.Exec(t, `INSERT INTO dag_schedule_asset_reference (asset_id, dag_id, created_at, updated_at)
			VALUES ($1, $2, $3, $3)`, a.ID, d, t0)
	}
	af.Exec(t, `INSERT INTO dag_schedule_asset_name_reference (name, dag_id, created_at) VALUES ('a', 'p_day', $1)`, t0)
	af.Exec(t, `INSERT INTO asset_alias (name, "group") VALUES ('al', '')`)
	af.Exec(t, `INSERT INTO dag_schedule_asset_alias_reference (alias_id, dag_id, created_at, updated_at)
		SELECT id, 'p_alias', $1, $1 FROM asset_alias WHERE name = 'al'`, t0)
}

// succeed runs a producer's try to success with outlets on asset a (and
// an event through alias al), its dag run carrying partitionKey.
func succeed(t *testing.T, db *DB, af *pgtest.Airflow, producer string, partitionKey *string) pgtest.TaskInstanceRow {
	t.Helper()
	row := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: producer, TaskID: "t", State: "running",
		Hostname: "h", PID: ptr(1), StartDate: ptr(t0.Add(-time.Minute))})
	if partitionKey != nil {
		af.Exec(t, `UPDATE dag_run SET partition_key = $1 WHERE dag_id = $2 AND run_id = $3`, *partitionKey, producer, row.RunID)
	}
	end := t0.Add(time.Minute)
	u := workload.StateUpdate{State: workload.StateSuccess, EndDate: &end,
		TaskOutlets: json.RawMessage(`[{"name": "a", "uri": "s3://b/a", "type": "Asset"},
			{"name": "al", "uri": null, "type": "AssetAlias"}]`),
		OutletEvents: json.RawMessage(`[{"dest_asset_key": {"name": "a", "uri": "s3://b/a"}, "extra": {},
			"source_alias_name": "al"}]`)}
	if _, err := db.UpdateTaskInstance(context.Background(), row.ID, func(ti *workload.TaskInstance) error {
		_, err := workload.ApplyState(ti, u, t0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return row
}

// TestSuccessQueuesPartitionedDags: a success whose dag run has a
// partition key queues each unpaused partitioned DAG scheduled on its
// asset (directly, through a name reference, through an alias) in
// asset_partition_dag_run, the key mapped by the DAG's mapper for the
// asset, with a partitioned_asset_key_log row per event and DAG, as
// Airflow 3.2's _queue_partitioned_dags; a DAG whose mapper taskgate does
// not implement, whose mapper refuses the key or which has no serialized
// DAG is skipped with an error logged, and the success stands.
func TestSuccessQueuesPartitionedDags(t *testing.T) {
	t.Parallel()
	db, af, _ := newTestStore(t)
	partitionWorld(t, af)
	logs := captureLog(db)
	key := "2026-03-01T10:20:30"
	run1 := succeed(t, db, af, "producer", &key).RunID

	// The events: one of a itself, one of a through alias al.
	if n := len(readAssetEvents(t, db)); n != 2 {
		t.Fatalf("%d asset events, want 2", n)
	}
	wantAPDR := []apdrRow{
		// The event of a itself queues the dags scheduled on a or on its
		// name, the alias event also the dag scheduled on the alias; the
		// second event of each dag finds the first one's APDR.
		{ID: 1, DagID: "p_day", Key: "2026-03-01", CreatedAt: t0},
		{ID: 2, DagID: "p_id", Key: key, CreatedAt: t0},
		{ID: 3, DagID: "p_alias", Key: "2026-03-01T10", CreatedAt: t0},
	}
	if diff := cmp.Diff(wantAPDR, readAPDR(t, db)); diff != "" {
		t.Errorf("asset_partition_dag_run (-want +got):\n%s", diff)
	}
	wantPAKL := []pakl{
		{"s3://b/a", run1, 1, key, "p_day", "2026-03-01", t0},
		{"s3://b/a", run1, 2, key, "p_id", key, t0},
		{"s3://b/a", run1, 3, key, "p_alias", "2026-03-01T10", t0},
		{"s3://b/a", run1, 1, key, "p_day", "2026-03-01", t0},
		{"s3://b/a", run1, 2, key, "p_id", key, t0},
	}
	if diff := cmp.Diff(wantPAKL, readPAKL(t, db)); diff != "" {
		t.Errorf("partitioned_asset_key_log (-want +got):\n%s", diff)
	}
	// No asset_dag_run_queue row for an event with a partition key.
	if q := readADRQ(t, db); len(q) != 0 {
		t.Errorf("asset_dag_run_queue: %v", q)
	}
	// Each skipped dag logged once per event (two events), naming it.
	skipped := map[string]int{}
	for _, e := range logs.entries(t) {
		if e["level"] != "ERROR" {
			t.Errorf("log entry %v", e)
			continue
		}
		skipped[e["target_dag"].(string)]++
		if e["target_dag"] == "p_plugin" && e["mapper_class"] != "my_plugin.mappers.RegionMapper" {
			t.Errorf("the plugin's mapper is not named: %v", e)
		}
	}
	if diff := cmp.Diff(map[string]int{"p_plugin": 2, "p_refuse": 2, "p_noserdag": 2}, skipped); diff != "" {
		t.Errorf("skipped dags logged (-want +got):\n%s", diff)
	}
	// The key p_refuse's mapper refused is in Airflow's audit log, once
	// per event, on the producing task instance.
	refused := partitionAudit{Event: "failed to map partition_key", DagID: "producer", TaskID: "t", RunID: run1,
		MapIndex: -1, TryNumber: 1, RunLogicalDate: true, Dttm: t0,
		Extra: "Could not validate or map partition_key '2026-03-01T10:20:30' for asset (name='a', uri='s3://b/a') " +
			"in target Dag 'p_refuse'. This likely indicates that the partition mapper in the target Dag is " +
			"misconfigured or does not support this partition key.\n" +
			"ValueError: Key '2026-03-01T10:20:30' not in allowed keys ['us']"}
	if diff := cmp.Diff([]partitionAudit{refused, refused}, readPartitionAudit(t, db)); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}

	// A later success for the same key reuses the pending APDRs; once the
	// scheduler made a dag run of one, the next key creates another.
	af.Exec(t, `UPDATE asset_partition_dag_run SET created_dag_run_id = (SELECT id FROM dag_run WHERE dag_id = 'c_ref')
		WHERE target_dag_id = 'p_id'`)
	run2 := succeed(t, db, af, "producer2", &key).RunID
	apdr := readAPDR(t, db)
	if len(apdr) != 4 || apdr[3].DagID != "p_id" || apdr[3].Key != key || apdr[3].CreatedRunID != nil {
		t.Fatalf("asset_partition_dag_run after a dag run was created from p_id's: %v", apdr)
	}
	got := readPAKL(t, db)[5:]
	want := []pakl{
		{"s3://b/a", run2, 1, key, "p_day", "2026-03-01", t0},
		{"s3://b/a", run2, 4, key, "p_id", key, t0},
		{"s3://b/a", run2, 3, key, "p_alias", "2026-03-01T10", t0},
		{"s3://b/a", run2, 1, key, "p_day", "2026-03-01", t0},
		{"s3://b/a", run2, 4, key, "p_id", key, t0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("partitioned_asset_key_log of the second success (-want +got):\n%s", diff)
	}
}

// TestSuccessWithoutPartitionKeySkipsPartitionedDags: without a partition
// key Airflow queues no partitioned DAG and logs a warning naming them;
// the non-partitioned DAG is queued in asset_dag_run_queue.
func TestSuccessWithoutPartitionKeySkipsPartitionedDags(t *testing.T) {
	t.Parallel()
	db, af, _ := newTestStore(t)
	partitionWorld(t, af)
	logs := captureLog(db)
	row := succeed(t, db, af, "producer", nil)
	var assetID int32
	if err := db.pool.QueryRow(context.Background(), `SELECT id FROM asset WHERE name = 'a'`).Scan(&assetID); err != nil {
		t.Fatal(err)
	}
	if a := readAPDR(t, db); len(a) != 0 {
		t.Errorf("asset_partition_dag_run: %v", a)
	}
	if p := readPAKL(t, db); len(p) != 0 {
		t.Errorf("partitioned_asset_key_log: %v", p)
	}
	if diff := cmp.Diff([]adrqRow{{"s3://b/a", "c_ref", t0}}, readADRQ(t, db)); diff != "" {
		t.Errorf("asset_dag_run_queue (-want +got):\n%s", diff)
	}
	entries := logs.entries(t)
	if len(entries) != 2 {
		t.Fatalf("log: %v", entries)
	}
	for i, want := range [][]any{
		{"p_day", "p_id", "p_noserdag", "p_plugin", "p_refuse"},            // the event of a
		{"p_alias", "p_day", "p_id", "p_noserdag", "p_plugin", "p_refuse"}, // the alias event
	} {
		e := entries[i]
		if e["level"] != "WARN" || e["msg"] != "Listening dags are partition-aware but run has no partition key" ||
			!cmp.Equal(e["listening_dags"], want) || e["dag_id"] != "producer" || e["task_id"] != "t" {
			t.Errorf("log entry %d: %v, want a warning listing %v", i, e, want)
		}
	}
	// And one "missing partition key" audit log row per event.
	var want []partitionAudit
	for _, dags := range []string{
		"['p_day', 'p_id', 'p_noserdag', 'p_plugin', 'p_refuse']",
		"['p_alias', 'p_day', 'p_id', 'p_noserdag', 'p_plugin', 'p_refuse']",
	} {
		want = append(want, partitionAudit{Event: "missing partition key", DagID: "producer", TaskID: "t", RunID: row.RunID,
			MapIndex: -1, TryNumber: 1, RunLogicalDate: true, Dttm: t0,
			Extra: "Listening Dags are partition-aware but the run has no partition key (listening_dags=" + dags +
				", asset_id=" + strconv.Itoa(int(assetID)) + ", run_id=" + row.RunID + ", dag_id=producer, task_id=t)"})
	}
	if diff := cmp.Diff(want, readPartitionAudit(t, db)); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
}

// TestConcurrentSuccessesCreateOneAPDR: two successes (on two replicas)
// registering events of the same asset for the same target key at the
// same time create one asset_partition_dag_run between them: the second
// waits for the asset row's lock, then finds the first one's. The lock is
// held by a third transaction until both wait on it, so that neither can
// finish first.
func TestConcurrentSuccessesCreateOneAPDR(t *testing.T) {
	t.Parallel()
	db, af, clk := newTestStore(t)
	a := af.Asset(t, pgtest.AssetRow{Name: "a", URI: "s3://b/a"})
	af.PartitionedDag(t, pgtest.PartitionedDagRow{DagID: "p_day", AssetCondition: pgtest.AssetJSON("a", "s3://b/a"),
		DefaultMapper: pgtest.TemporalMapperJSON("StartOfDayMapper", "%Y-%m-%d")})
	af.Exec(t, `INSERT INTO dag_schedule_asset_reference (asset_id, dag_id, created_at, updated_at)
		VALUES ($1, 'p_day', $2, $2)`, a.ID, t0)
	replica := openReplica(t, af.URL, clk)
	var ids [2]string
	for i, producer := range []string{"producer1", "producer2"} {
		row := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: producer, TaskID: "t", State: "running",
			Hostname: "h", PID: ptr(1), StartDate: ptr(t0.Add(-time.Minute))})
		// Two hours of the same day.
		af.Exec(t, `UPDATE dag_run SET partition_key = $1 WHERE dag_id = $2`,
			[]string{"2026-03-01T09:00:00", "2026-03-01T17:00:00"}[i], producer)
		ids[i] = row.ID
	}

	ctx := context.Background()
	holder, err := pgx.Connect(ctx, af.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	lock, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `SELECT id FROM asset WHERE id = $1 FOR NO KEY UPDATE`, a.ID); err != nil {
		t.Fatal(err)
	}

	end := t0.Add(time.Minute)
	errs := make(chan error, 2)
	for i, store := range []*DB{db, replica} {
		go func() {
			_, err := store.UpdateTaskInstance(ctx, ids[i], func(ti *workload.TaskInstance) error {
				_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateSuccess, EndDate: &end,
					TaskOutlets: json.RawMessage(`[{"name": "a", "uri": "s3://b/a", "type": "Asset"}]`)}, t0)
				return err
			})
			errs <- err
		}()
	}
	// Both successes wait for the asset's row lock.
	poll, err := pgx.Connect(ctx, af.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer poll.Close(ctx)
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		var waiting int
		if err := poll.QueryRow(waitCtx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR NO KEY UPDATE%'`).Scan(&waiting); err != nil {
			t.Fatalf("waiting for both successes to wait on the asset's lock: %v", err)
		}
		if waiting == 2 {
			break
		}
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]apdrRow{{ID: 1, DagID: "p_day", Key: "2026-03-01", CreatedAt: t0}}, readAPDR(t, db)); diff != "" {
		t.Errorf("asset_partition_dag_run (-want +got):\n%s", diff)
	}
	logRows := readPAKL(t, db)
	if len(logRows) != 2 || logRows[0].APDR != 1 || logRows[1].APDR != 1 || logRows[0].SourceKey == logRows[1].SourceKey {
		t.Errorf("partitioned_asset_key_log: %v, want one row per success on APDR 1", logRows)
	}
}
