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

// assetProfile is an entry of task_outlets (the SDK's AssetProfile).
type assetProfile struct {
	Name *string `json:"name"`
	URI  *string `json:"uri"`
	Type string  `json:"type"`
}

// outletEvent is an entry of outlet_events. SourceAliasName is nil when the
// key is absent (an event of the asset itself).
type outletEvent struct {
	DestAssetKey struct {
		Name string `json:"name"`
		URI  string `json:"uri"`
	} `json:"dest_asset_key"`
	Extra           json.RawMessage `json:"extra"`
	SourceAliasName json.RawMessage `json:"source_alias_name"`
	// DestAssetExtra is the extra of the asset an alias event names, for
	// the asset Airflow creates when it does not know it yet.
	DestAssetExtra json.RawMessage `json:"dest_asset_extra"`
}

type assetKey struct{ name, uri string }

type assetRow struct {
	id        int32
	name, uri string
}

// registerAssetChanges is Airflow's register_asset_changes_in_db for ti's
// outlets: an event (and the queueing of the dags it schedules) for every
// outlet asset, asset name reference and asset uri reference that names an
// active asset, then one for every distinct (asset, asset extra, event
// extra) the task emitted through one of its outlet aliases. Every event
// carries the partition key of the try's dag run. An outlet naming no
// active asset gets no event (Airflow logs a warning and goes on; the try
// still succeeds).
func registerAssetChanges(ctx context.Context, tx pgx.Tx, ti *workload.TaskInstance, now time.Time) error {
	if len(ti.TaskOutlets) == 0 {
		return nil
	}
	var partitionKey *string
	if err := tx.QueryRow(ctx, `SELECT partition_key FROM dag_run WHERE dag_id = $1 AND run_id = $2`,
		ti.DagID, ti.RunID).Scan(&partitionKey); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("pgstore: partition key of dag run %s/%s: %w", ti.DagID, ti.RunID, err)
	}
	var outlets []assetProfile
	if err := json.Unmarshal(ti.TaskOutlets, &outlets); err != nil {
		return fmt.Errorf("pgstore: task_outlets of %s: %w", ti.ID, err)
	}
	var events []outletEvent
	if len(ti.OutletEvents) > 0 {
		if err := json.Unmarshal(ti.OutletEvents, &events); err != nil {
			return fmt.Errorf("pgstore: outlet_events of %s: %w", ti.ID, err)
		}
	}

	var keys []assetKey
	var nameRefs, uriRefs []string
	aliasNames := map[string]bool{}
	seenKey, seenName, seenURI := map[assetKey]bool{}, map[string]bool{}, map[string]bool{}
	for _, o := range outlets {
		name, uri := deref(o.Name), deref(o.URI)
		switch o.Type {
		case "Asset":
			if k := (assetKey{name, uri}); name != "" && uri != "" && !seenKey[k] {
				seenKey[k] = true
				keys = append(keys, k)
			}
		case "AssetNameRef":
			if name != "" && !seenName[name] {
				seenName[name] = true
				nameRefs = append(nameRefs, name)
			}
		case "AssetUriRef":
			if uri != "" && !seenURI[uri] {
				seenURI[uri] = true
				uriRefs = append(uriRefs, uri)
			}
		case "AssetAlias":
			if name != "" {
				aliasNames[name] = true
			}
		}
	}

	// The extra of each asset's own event, as Airflow's dicts hold them: a
	// later event of an asset replaces an earlier one's extra but keeps its
	// place, and the name and uri lookups follow that order.
	extras := map[assetKey]json.RawMessage{}
	var order []assetKey
	for _, e := range events {
		if len(e.SourceAliasName) > 0 {
			continue
		}
		k := assetKey{e.DestAssetKey.Name, e.DestAssetKey.URI}
		if _, seen := extras[k]; !seen {
			order = append(order, k)
		}
		extras[k] = e.Extra
	}
	extrasByName, extrasByURI := map[string]json.RawMessage{}, map[string]json.RawMessage{}
	for _, k := range order {
		extrasByName[k.name], extrasByURI[k.uri] = extras[k], extras[k]
	}

	active, err := activeAssets(ctx, tx, keys, nameRefs, uriRefs)
	if err != nil {
		return err
	}
	byKey, byName, byURI := map[assetKey]assetRow{}, map[string]assetRow{}, map[string]assetRow{}
	for _, a := range active {
		byKey[assetKey{a.name, a.uri}], byName[a.name], byURI[a.uri] = a, a, a
	}
	for _, k := range keys {
		a, ok := byKey[k]
		if !ok {
			continue
		}
		if err := registerAssetChange(ctx, tx, ti, a, extras[k], nil, partitionKey, now); err != nil {
			return err
		}
	}
	for _, n := range nameRefs {
		a, ok := byName[n]
		if !ok {
			continue
		}
		if err := registerAssetChange(ctx, tx, ti, a, extrasByName[n], nil, partitionKey, now); err != nil {
			return err
		}
	}
	for _, u := range uriRefs {
		a, ok := byURI[u]
		if !ok {
			continue
		}
		if err := registerAssetChange(ctx, tx, ti, a, extrasByURI[u], nil, partitionKey, now); err != nil {
			return err
		}
	}

	if len(aliasNames) > 0 {
		if err := registerAliasEvents(ctx, tx, ti, events, aliasNames, partitionKey, now); err != nil {
			return err
		}
	}
	return nil
}

// activeAssets reads the assets with an asset_active row (AssetModel.active
// joins on name and uri) matching a key, a name or a uri.
func activeAssets(ctx context.Context, tx pgx.Tx, keys []assetKey, names, uris []string) ([]assetRow, error) {
	if len(keys) == 0 && len(names) == 0 && len(uris) == 0 {
		return nil, nil
	}
	keyNames, keyURIs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		keyNames[i], keyURIs[i] = k.name, k.uri
	}
	rows, err := tx.Query(ctx, `SELECT a.id, a.name, a.uri FROM asset a
		JOIN asset_active aa ON aa.name = a.name AND aa.uri = a.uri
		WHERE (a.name, a.uri) IN (SELECT n, u FROM unnest($1::text[], $2::text[]) k(n, u))
			OR a.name = ANY($3::text[]) OR a.uri = ANY($4::text[])
		ORDER BY a.id`, keyNames, keyURIs, names, uris)
	if err != nil {
		return nil, fmt.Errorf("pgstore: read outlet assets: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (assetRow, error) {
		var a assetRow
		err := r.Scan(&a.id, &a.name, &a.uri)
		return a, err
	})
}

// registerAliasEvents registers the events emitted through the task's
// outlet aliases: one per distinct (asset, asset extra, event extra),
// carrying every alias that emitted it, with the event's extra keys sorted
// (Airflow groups by json.dumps(…, sort_keys=True) and loads it back). An
// asset Airflow does not know yet is created as Airflow's "Dynamically
// creating AssetModel" does (group "asset", the event's dest_asset_extra,
// not active); an alias event is registered whether or not its asset is
// active.
func registerAliasEvents(ctx context.Context, tx pgx.Tx, ti *workload.TaskInstance, events []outletEvent,
	outletAliases map[string]bool, partitionKey *string, now time.Time) error {
	type group struct {
		key               assetKey
		assetExtra, extra string
		aliases           map[string]bool
	}
	var groups []*group
	index := map[string]*group{}
	for _, e := range events {
		if len(e.SourceAliasName) == 0 {
			continue
		}
		var alias string
		if json.Unmarshal(e.SourceAliasName, &alias) != nil || !outletAliases[alias] {
			continue
		}
		k := assetKey{e.DestAssetKey.Name, e.DestAssetKey.URI}
		extra, err := canonicalExtra(e.Extra)
		if err != nil {
			return fmt.Errorf("pgstore: outlet event extra of %s: %w", ti.ID, err)
		}
		assetExtra, err := canonicalExtra(e.DestAssetExtra)
		if err != nil {
			return fmt.Errorf("pgstore: outlet event asset extra of %s: %w", ti.ID, err)
		}
		id := k.name + "\x00" + k.uri + "\x00" + assetExtra + "\x00" + extra
		g := index[id]
		if g == nil {
			g = &group{key: k, assetExtra: assetExtra, extra: extra, aliases: map[string]bool{}}
			index[id] = g
			groups = append(groups, g)
		}
		g.aliases[alias] = true
	}
	for _, g := range groups {
		var a assetRow
		err := tx.QueryRow(ctx, `SELECT id, name, uri FROM asset WHERE name = $1 AND uri = $2`, g.key.name, g.key.uri).
			Scan(&a.id, &a.name, &a.uri)
		if errors.Is(err, pgx.ErrNoRows) {
			a = assetRow{name: g.key.name, uri: g.key.uri}
			err = tx.QueryRow(ctx, `INSERT INTO asset (name, uri, "group", extra, created_at, updated_at)
				VALUES ($1, $2, 'asset', $3::json, $4, $4) RETURNING id`, a.name, a.uri, g.assetExtra, now).Scan(&a.id)
		}
		if err != nil {
			return fmt.Errorf("pgstore: asset %q of an alias event: %w", g.key.uri, err)
		}
		aliases := make([]string, 0, len(g.aliases))
		for n := range g.aliases {
			aliases = append(aliases, n)
		}
		sort.Strings(aliases)
		if err := registerAssetChange(ctx, tx, ti, a, json.RawMessage(g.extra), aliases, partitionKey, now); err != nil {
			return err
		}
	}
	return nil
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
