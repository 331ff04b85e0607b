package pgstore

// Asset events of a successful try, as Airflow's Execution API registers
// them: ti_update_state's success branch calls
// TaskInstance.register_asset_changes_in_db with the payload's task_outlets
// (AssetProfile: name, uri, type) and outlet_events (dest_asset_key, extra,
// and source_alias_name for an event emitted through an alias), which calls
// AssetManager.register_asset_change per asset, in the transaction that
// writes the state.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/internal/pyjson"
	"github.com/taskgate/taskgate/workload"
)

type assetRow struct {
	id        int32
	name, uri string
}

// registerAssetChanges is Airflow's register_asset_changes_in_db for ti's
// outlets (see workload.OutletPlan): an event (and the queueing of the
// dags it schedules) for every outlet event of every outlet asset, asset
// name reference and asset uri reference that names an active asset, or
// one with an empty extra when the task emitted none for it; then one for
// every distinct (asset, asset extra, event extra) the task emitted
// through one of its outlet aliases. An event carries its own partition
// key, or else the try's dag run's. An outlet naming no active asset gets
// no event: Airflow 3.2 logs a warning and the try still succeeds.
func registerAssetChanges(ctx context.Context, tx pgx.Tx, ti *workload.TaskInstance, now time.Time) error {
	if len(ti.TaskOutlets) == 0 && len(ti.OutletEvents) == 0 {
		return nil
	}
	var partitionKey *string
	if err := tx.QueryRow(ctx, `SELECT partition_key FROM dag_run WHERE dag_id = $1 AND run_id = $2`,
		ti.DagID, ti.RunID).Scan(&partitionKey); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("pgstore: partition key of dag run %s/%s: %w", ti.DagID, ti.RunID, err)
	}
	outlets, events, err := workload.ParseOutlets(ti.TaskOutlets, ti.OutletEvents)
	if err != nil {
		return fmt.Errorf("pgstore: outlets of %s: %w", ti.ID, err)
	}
	lookup := &activeLookup{ctx: ctx, tx: tx, rows: map[workload.AssetKey]assetRow{}}
	plan, err := workload.PlanOutlets(outlets, events, partitionKey, lookup)
	if err != nil {
		return err
	}
	for _, d := range plan.Direct {
		if err := registerAssetChange(ctx, tx, ti, lookup.rows[d.Asset], d.Extra, nil, d.PartitionKey, now); err != nil {
			return err
		}
	}
	for _, ae := range plan.Alias {
		if err := registerAliasEvent(ctx, tx, ti, ae, now); err != nil {
			return err
		}
	}
	return nil
}

// activeLookup resolves outlets to assets with an asset_active row
// (AssetModel.active joins on name and uri), remembering their ids.
type activeLookup struct {
	ctx  context.Context
	tx   pgx.Tx
	rows map[workload.AssetKey]assetRow
}

func (l *activeLookup) find(where string, args ...any) (workload.AssetKey, bool, error) {
	var a assetRow
	err := l.tx.QueryRow(l.ctx, `SELECT a.id, a.name, a.uri FROM asset a
		JOIN asset_active aa ON aa.name = a.name AND aa.uri = a.uri
		WHERE `+where+` ORDER BY a.id LIMIT 1`, args...).Scan(&a.id, &a.name, &a.uri)
	if errors.Is(err, pgx.ErrNoRows) {
		return workload.AssetKey{}, false, nil
	}
	if err != nil {
		return workload.AssetKey{}, false, fmt.Errorf("pgstore: read outlet asset: %w", err)
	}
	k := workload.AssetKey{Name: a.name, URI: a.uri}
	l.rows[k] = a
	return k, true, nil
}

func (l *activeLookup) ActiveByKey(k workload.AssetKey) (bool, error) {
	_, ok, err := l.find(`a.name = $1 AND a.uri = $2`, k.Name, k.URI)
	return ok, err
}

func (l *activeLookup) ActiveByName(name string) (workload.AssetKey, bool, error) {
	return l.find(`a.name = $1`, name)
}

func (l *activeLookup) ActiveByURI(uri string) (workload.AssetKey, bool, error) {
	return l.find(`a.uri = $1`, uri)
}

// registerAliasEvent registers an event emitted through the task's outlet
// aliases, carrying every alias that emitted it, with the event's extra
// keys sorted (Airflow groups by json.dumps(…, sort_keys=True) and loads
// it back). An asset Airflow does not know yet is created as Airflow's
// "Dynamically creating AssetModel" does (group "asset", the event's
// dest_asset_extra, not active); an alias event is registered whether or
// not its asset is active.
func registerAliasEvent(ctx context.Context, tx pgx.Tx, ti *workload.TaskInstance, ae workload.AliasEvent, now time.Time) error {
	extra, err := canonicalExtra(ae.Extra)
	if err != nil {
		return fmt.Errorf("pgstore: outlet event extra of %s: %w", ti.ID, err)
	}
	assetExtra, err := canonicalExtra(ae.AssetExtra)
	if err != nil {
		return fmt.Errorf("pgstore: outlet event asset extra of %s: %w", ti.ID, err)
	}
	var a assetRow
	err = tx.QueryRow(ctx, `SELECT id, name, uri FROM asset WHERE name = $1 AND uri = $2`, ae.Asset.Name, ae.Asset.URI).
		Scan(&a.id, &a.name, &a.uri)
	if errors.Is(err, pgx.ErrNoRows) {
		a = assetRow{name: ae.Asset.Name, uri: ae.Asset.URI}
		err = tx.QueryRow(ctx, `INSERT INTO asset (name, uri, "group", extra, created_at, updated_at)
			VALUES ($1, $2, 'asset', $3::json, $4, $4) RETURNING id`, a.name, a.uri, assetExtra, now).Scan(&a.id)
	}
	if err != nil {
		return fmt.Errorf("pgstore: asset %q of an alias event: %w", ae.Asset.URI, err)
	}
	aliases := append([]string(nil), ae.Aliases...)
	sort.Strings(aliases)
	return registerAssetChange(ctx, tx, ti, a, json.RawMessage(extra), aliases, ae.PartitionKey, now)
}

// canonicalExtra is an extra as Airflow keeps an alias event's:
// json.dumps(extra, sort_keys=True), {} when absent.
func canonicalExtra(extra json.RawMessage) (string, error) {
	if len(extra) == 0 {
		return "{}", nil
	}
	return pyjson.Dumps(extra, true)
}

// extraColumn is asset_event.extra as Airflow writes it: the event's extra
// through json.dumps, {} when it is empty or absent (`extra or {}`).
func extraColumn(extra json.RawMessage) (string, error) {
	var v any
	if len(extra) > 0 {
		if err := json.Unmarshal(extra, &v); err != nil {
			return "", err
		}
	}
	switch t := v.(type) {
	case nil:
		return "{}", nil
	case bool:
		if !t {
			return "{}", nil
		}
	case float64:
		if t == 0 {
			return "{}", nil
		}
	case string:
		if t == "" {
			return "{}", nil
		}
	case map[string]any:
		if len(t) == 0 {
			return "{}", nil
		}
	case []any:
		if len(t) == 0 {
			return "{}", nil
		}
	}
	return pyjson.Dumps(extra, false)
}

// registerAssetChange is AssetManager.register_asset_change for an asset
// of a task's outlets: the aliases that emitted the event associated with
// the asset (asset_alias_asset, an alias Airflow does not know created),
// the asset_event row, its asset_alias_asset_event rows, then an
// asset_dag_run_queue row (ON CONFLICT DO NOTHING, Airflow's PostgreSQL
// path) for every unpaused dag scheduled on the asset, on one of the
// aliases, or on a reference to the asset's name or uri, unless the event
// has a partition key. A dag with a partitioned timetable is never queued
// there: queuePartitionedDags queues it in asset_partition_dag_run through
// its timetable's partition mapper (partitions.go).
func registerAssetChange(ctx context.Context, tx pgx.Tx, ti *workload.TaskInstance, a assetRow,
	extra json.RawMessage, aliases []string, partitionKey *string, now time.Time) error {
	var aliasIDs []int32
	for _, name := range aliases {
		id, err := assetAlias(ctx, tx, name)
		if err != nil {
			return fmt.Errorf("pgstore: asset alias %q: %w", name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO asset_alias_asset (alias_id, asset_id) VALUES ($1, $2)
			ON CONFLICT DO NOTHING`, id, a.id); err != nil {
			return fmt.Errorf("pgstore: associate asset alias %q: %w", name, err)
		}
		aliasIDs = append(aliasIDs, id)
	}
	extraText, err := extraColumn(extra)
	if err != nil {
		return fmt.Errorf("pgstore: extra of an event of asset %d: %w", a.id, err)
	}
	var eventID int32
	if err := tx.QueryRow(ctx, `INSERT INTO asset_event (asset_id, extra, source_task_id, source_dag_id,
			source_run_id, source_map_index, timestamp, partition_key)
		VALUES ($1, $2::json, $3, $4, $5, $6, $7, $8) RETURNING id`,
		a.id, extraText, ti.TaskID, ti.DagID, ti.RunID, int32(ti.MapIndex), now, partitionKey).Scan(&eventID); err != nil {
		return fmt.Errorf("pgstore: insert asset_event of asset %d: %w", a.id, err)
	}
	if len(aliasIDs) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO asset_alias_asset_event (alias_id, event_id)
			SELECT unnest($1::int[]), $2`, aliasIDs, eventID); err != nil {
			return fmt.Errorf("pgstore: link asset_event %d to its aliases: %w", eventID, err)
		}
	}
	if err := queuePartitionedDags(ctx, tx, ti, a, aliasIDs, eventID, partitionKey, now); err != nil {
		return err
	}
	if partitionKey != nil {
		return nil
	}
	if aliasIDs == nil {
		aliasIDs = []int32{}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO asset_dag_run_queue (asset_id, target_dag_id, created_at)
		SELECT $1, d.dag_id, $2 FROM dag d
		WHERE NOT d.is_paused AND NOT d.timetable_partitioned AND (
			EXISTS (SELECT 1 FROM dag_schedule_asset_reference r WHERE r.asset_id = $1 AND r.dag_id = d.dag_id)
			OR EXISTS (SELECT 1 FROM dag_schedule_asset_alias_reference r
				WHERE r.alias_id = ANY($3::int[]) AND r.dag_id = d.dag_id)
			OR EXISTS (SELECT 1 FROM dag_schedule_asset_name_reference r WHERE r.name = $4 AND r.dag_id = d.dag_id)
			OR EXISTS (SELECT 1 FROM dag_schedule_asset_uri_reference r WHERE r.uri = $5 AND r.dag_id = d.dag_id))
		ORDER BY d.dag_id
		ON CONFLICT DO NOTHING`, a.id, now, aliasIDs, a.name, a.uri); err != nil {
		return fmt.Errorf("pgstore: queue the dags scheduled on asset %d: %w", a.id, err)
	}
	return nil
}

// assetAlias returns the id of the asset alias with the given name, created
// (group "", AssetAliasModel's default) when Airflow does not know it. An
// alias another transaction creates at the same time is read once that
// transaction commits.
func assetAlias(ctx context.Context, tx pgx.Tx, name string) (int32, error) {
	var id int32
	for _, sql := range []string{
		`SELECT id FROM asset_alias WHERE name = $1`,
		`INSERT INTO asset_alias (name, "group") VALUES ($1, '') ON CONFLICT (name) DO NOTHING RETURNING id`,
		`SELECT id FROM asset_alias WHERE name = $1`,
	} {
		err := tx.QueryRow(ctx, sql, name).Scan(&id)
		if err == nil || !errors.Is(err, pgx.ErrNoRows) {
			return id, err
		}
	}
	return 0, errors.New("alias neither found nor created")
}
