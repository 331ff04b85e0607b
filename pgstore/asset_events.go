package pgstore

// Reads of assets and asset events, as Airflow's Execution API routes
// assets.py and asset_events.py make them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskgate/taskgate/workload"
)

// activeAsset is `AssetModel.active.has()`: an asset_active row for the
// asset's name and uri.
const activeAsset = `EXISTS (SELECT 1 FROM asset_active aa WHERE aa.name = a.name AND aa.uri = a.uri)`

// ActiveAssetByName returns the active asset with that name.
func (db *DB) ActiveAssetByName(ctx context.Context, name string) (*workload.Asset, error) {
	return db.activeAssetWhere(ctx, `a.name = $1`, name)
}

// ActiveAssetByURI returns the active asset with that uri.
func (db *DB) ActiveAssetByURI(ctx context.Context, uri string) (*workload.Asset, error) {
	return db.activeAssetWhere(ctx, `a.uri = $1`, uri)
}

func (db *DB) activeAssetWhere(ctx context.Context, where, arg string) (*workload.Asset, error) {
	var a workload.Asset
	var extra string
	err := db.pool.QueryRow(ctx, `SELECT a.name, a.uri, a."group", a.extra::text FROM asset a
		WHERE `+where+` AND `+activeAsset+` ORDER BY a.id LIMIT 1`, arg).Scan(&a.Name, &a.URI, &a.Group, &extra)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: asset %s: %w", arg, workload.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: asset %s: %w", arg, classify(err))
	}
	a.Extra = json.RawMessage(extra)
	return &a, nil
}

// AssetsByAlias returns the assets associated with the alias
// (asset_alias_asset), by asset id.
func (db *DB) AssetsByAlias(ctx context.Context, alias string) ([]workload.Asset, error) {
	rows, err := db.pool.Query(ctx, `SELECT a.name, a.uri, a."group", a.extra::text FROM asset a
		JOIN asset_alias_asset aaa ON aaa.asset_id = a.id JOIN asset_alias al ON al.id = aaa.alias_id
		WHERE al.name = $1 ORDER BY a.id`, alias)
	if err != nil {
		return nil, fmt.Errorf("pgstore: assets of alias %s: %w", alias, classify(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (workload.Asset, error) {
		var a workload.Asset
		var extra string
		err := r.Scan(&a.Name, &a.URI, &a.Group, &extra)
		a.Extra = json.RawMessage(extra)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: assets of alias %s: %w", alias, classify(err))
	}
	return out, nil
}

// AssetEvents returns the events q selects, ordered by timestamp (then
// id, for a stable order among equal timestamps).
func (db *DB) AssetEvents(ctx context.Context, q workload.AssetEventQuery) ([]workload.AssetEvent, error) {
	if q.Limit != nil && *q.Limit < 0 {
		return []workload.AssetEvent{}, nil
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	from := `asset_event e JOIN asset a ON a.id = e.asset_id`
	switch {
	case q.ByAlias:
		from += ` JOIN asset_alias_asset_event ae ON ae.event_id = e.id JOIN asset_alias al ON al.id = ae.alias_id`
		where = append(where, `al.name = `+arg(q.Alias))
	case q.Name != "" && q.URI != "":
		where = append(where, `a.name = `+arg(q.Name), `a.uri = `+arg(q.URI))
	case q.URI != "":
		where = append(where, `a.uri = `+arg(q.URI), activeAsset)
	default:
		where = append(where, `a.name = `+arg(q.Name), activeAsset)
	}
	if q.After != nil {
		where = append(where, `e.timestamp >= `+arg(q.After.UTC()))
	}
	if q.Before != nil {
		where = append(where, `e.timestamp <= `+arg(q.Before.UTC()))
	}
	if q.PartitionKey != nil {
		where = append(where, `e.partition_key = `+arg(*q.PartitionKey))
	} else if q.PartitionKeyPattern != nil {
		where = append(where, `e.partition_key ~ `+arg(q.PartitionKeyPattern.String()))
	}
	if len(q.Extra) > 0 {
		b, err := json.Marshal(q.Extra)
		if err != nil {
			return nil, err
		}
		where = append(where, `e.extra::jsonb @> `+arg(string(b))+`::jsonb`)
	}
	order := "ASC"
	if !q.Ascending {
		order = "DESC"
	}
	sql := `SELECT e.id, e.timestamp, e.extra::text, a.name, a.uri, a."group", a.extra::text,
		e.source_task_id, e.source_dag_id, e.source_run_id, e.source_map_index, e.partition_key
		FROM ` + from + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY e.timestamp ` + order + `, e.id ` + order
	if q.Limit != nil {
		sql += ` LIMIT ` + arg(*q.Limit)
	}
	rows, err := db.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: asset events: %w", classify(err))
	}
	defer rows.Close()
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (workload.AssetEvent, error) {
		var (
			e                 workload.AssetEvent
			id                int32
			extra, assetExtra string
			mapIndex          *int32
		)
		err := r.Scan(&id, &e.Timestamp, &extra, &e.Asset.Name, &e.Asset.URI, &e.Asset.Group, &assetExtra,
			&e.SourceTaskID, &e.SourceDagID, &e.SourceRunID, &mapIndex, &e.PartitionKey)
		e.ID, e.Extra, e.Asset.Extra = int64(id), json.RawMessage(extra), json.RawMessage(assetExtra)
		if mapIndex != nil {
			m := int(*mapIndex)
			e.SourceMapIndex = &m
		}
		e.CreatedDagRuns = []workload.DagRunAssetReference{}
		return e, err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "2201B" {
		// A pattern Go's RE2 takes and PostgreSQL's ARE refuses.
		return nil, &workload.InvalidPatternError{Reason: pgErr.Message}
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: asset events: %w", classify(err))
	}
	if len(events) == 0 {
		return events, nil
	}
	return events, db.createdDagRuns(ctx, events)
}

// createdDagRuns fills in the dag runs each event created
// (dagrun_asset_event), in dag run id order.
func (db *DB) createdDagRuns(ctx context.Context, events []workload.AssetEvent) error {
	ids := make([]int32, len(events))
	index := make(map[int64]int, len(events))
	for i, e := range events {
		ids[i], index[e.ID] = int32(e.ID), i
	}
	rows, err := db.pool.Query(ctx, `SELECT dae.event_id, dr.run_id, dr.dag_id, dr.logical_date, dr.start_date,
			dr.end_date, dr.state, dr.data_interval_start, dr.data_interval_end, dr.partition_key
		FROM dagrun_asset_event dae JOIN dag_run dr ON dr.id = dae.dag_run_id
		WHERE dae.event_id = ANY($1) ORDER BY dr.id`, ids)
	if err != nil {
		return fmt.Errorf("pgstore: dag runs of asset events: %w", classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			eventID int32
			r       workload.DagRunAssetReference
			state   *string
		)
		if err := rows.Scan(&eventID, &r.RunID, &r.DagID, &r.LogicalDate, &r.StartDate, &r.EndDate, &state,
			&r.DataIntervalStart, &r.DataIntervalEnd, &r.PartitionKey); err != nil {
			return fmt.Errorf("pgstore: dag runs of asset events: %w", err)
		}
		if state != nil {
			r.State = *state
		}
		for _, t := range []**time.Time{&r.LogicalDate, &r.StartDate, &r.EndDate, &r.DataIntervalStart, &r.DataIntervalEnd} {
			if *t != nil {
				u := (*t).UTC()
				*t = &u
			}
		}
		i := index[int64(eventID)]
		events[i].CreatedDagRuns = append(events[i].CreatedDagRuns, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: dag runs of asset events: %w", classify(err))
	}
	return nil
}

// InactiveAssets answers validate-inlets-and-outlets as Airflow's
// validate_inlets_and_outlets does: the task's Asset inlets and outlets
// from the serialized DAG of the task instance's dag run (see
// serializedDagOfRun), less those asset_active holds. A task the serialized
// DAG does not have, or a run whose DAG has no serialized version, declares
// none. The task instance is read from task_instance alone, as Airflow's
// route does: an archived try is not found.
func (db *DB) InactiveAssets(ctx context.Context, tiID string) ([]workload.AssetProfile, error) {
	if !validUUID(tiID) {
		return nil, notFound("task instance %s", tiID)
	}
	var out []workload.AssetProfile
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		var dagID, taskID string
		var bundleVersion, createdVersion *string
		err := tx.QueryRow(ctx, `SELECT ti.dag_id, ti.task_id, dr.bundle_version, dr.created_dag_version_id::text
			FROM task_instance ti JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id
			WHERE ti.id = $1::uuid`, tiID).Scan(&dagID, &taskID, &bundleVersion, &createdVersion)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("task instance %s", tiID)
		}
		if err != nil {
			return fmt.Errorf("pgstore: task instance %s: %w", tiID, err)
		}
		data, found, err := serializedDagOfRun(ctx, tx, dagID, bundleVersion, createdVersion)
		if err != nil {
			return err
		}
		var declared workload.TaskAssets
		if found {
			if declared, err = taskAssets(data, taskID); err != nil {
				return fmt.Errorf("pgstore: serialized dag of %s: %w", dagID, err)
			}
		}
		active, err := activeAssetKeys(ctx, tx, declared.Keys())
		if err != nil {
			return err
		}
		out, err = declared.InactiveAssets(func(k workload.AssetKey) (bool, error) { return active[k], nil })
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// activeAssetKeys returns which of keys asset_active holds.
func activeAssetKeys(ctx context.Context, tx pgx.Tx, keys []workload.AssetKey) (map[workload.AssetKey]bool, error) {
	active := map[workload.AssetKey]bool{}
	if len(keys) == 0 {
		return active, nil
	}
	names, uris := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		names[i], uris[i] = k.Name, k.URI
	}
	rows, err := tx.Query(ctx, `SELECT a.name, a.uri FROM asset_active a
		JOIN unnest($1::text[], $2::text[]) k(name, uri) ON a.name = k.name AND a.uri = k.uri`, names, uris)
	if err != nil {
		return nil, fmt.Errorf("pgstore: active assets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k workload.AssetKey
		if err := rows.Scan(&k.Name, &k.URI); err != nil {
			return nil, err
		}
		active[k] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: active assets: %w", err)
	}
	return active, nil
}
