package pgstore

// The task and asset state stores, as Airflow's MetastoreBackend keeps them
// (airflow/state/metastore.py), in taskgate's copies of Airflow's
// task_state_store and asset_state_store tables (migration 3).

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/internal/pyjson"
	"github.com/taskgate/taskgate/workload"
)

// TaskState returns the value of key in scope, or workload.ErrNotFound.
// Expired rows are still returned until a cleanup deletes them, as Airflow's
// backend does.
func (db *DB) TaskState(ctx context.Context, scope workload.TaskScope, key string) (json.RawMessage, error) {
	var v string
	err := db.pool.QueryRow(ctx, `SELECT value FROM taskgate.task_state_store
		WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = $4 AND key = $5`,
		scope.DagID, scope.RunID, scope.TaskID, scope.MapIndex, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("task state %s", key)
	}
	if err != nil {
		return nil, classify(err)
	}
	return json.RawMessage(v), nil
}

// SetTaskState upserts key in scope; workload.ErrNotFound when the dag run
// does not exist.
func (db *DB) SetTaskState(ctx context.Context, scope workload.TaskScope, key string, value json.RawMessage, expiresAt *time.Time) error {
	now := db.now().UTC()
	text, err := pyjson.Dumps(value, false)
	if err != nil {
		return err
	}
	return db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		var runID int32
		err := tx.QueryRow(ctx, `SELECT id FROM dag_run WHERE dag_id = $1 AND run_id = $2`,
			scope.DagID, scope.RunID).Scan(&runID)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("dag run %s/%s", scope.DagID, scope.RunID)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO taskgate.task_state_store
			(dag_run_id, dag_id, run_id, task_id, map_index, key, value, updated_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (dag_run_id, task_id, region_id, map_index, key)
			DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
			runID, scope.DagID, scope.RunID, scope.TaskID, scope.MapIndex, key, text, now, timeArg(expiresAt))
		return err
	})
}

// DeleteTaskState removes key from scope.
func (db *DB) DeleteTaskState(ctx context.Context, scope workload.TaskScope, key string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM taskgate.task_state_store
		WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = $4 AND key = $5`,
		scope.DagID, scope.RunID, scope.TaskID, scope.MapIndex, key)
	return classify(err)
}

// ClearTaskState removes every key of scope (of every map index with
// allMapIndices).
func (db *DB) ClearTaskState(ctx context.Context, scope workload.TaskScope, allMapIndices bool) error {
	var err error
	if allMapIndices {
		_, err = db.pool.Exec(ctx, `DELETE FROM taskgate.task_state_store
			WHERE dag_id = $1 AND run_id = $2 AND task_id = $3`, scope.DagID, scope.RunID, scope.TaskID)
	} else {
		_, err = db.pool.Exec(ctx, `DELETE FROM taskgate.task_state_store
			WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = $4`,
			scope.DagID, scope.RunID, scope.TaskID, scope.MapIndex)
	}
	return classify(err)
}

// activeAssetID resolves an asset reference to the id of the active asset
// it names, as Airflow's resolvers do (AssetModel.active.has()), or
// workload.ErrAssetNotFound.
func activeAssetID(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, a workload.AssetRef) (int32, error) {
	col, v := "name", a.Name
	if a.Name == "" {
		col, v = "uri", a.URI
	}
	var id int32
	err := q.QueryRow(ctx, `SELECT a.id FROM asset a
		WHERE a.`+col+` = $1 AND EXISTS (SELECT 1 FROM asset_active aa WHERE aa.name = a.name AND aa.uri = a.uri)`,
		v).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, workload.ErrAssetNotFound
	}
	return id, err
}

// AssetState returns the value of key for the active asset a names.
func (db *DB) AssetState(ctx context.Context, a workload.AssetRef, key string) (json.RawMessage, error) {
	var v string
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		id, err := activeAssetID(ctx, tx, a)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `SELECT value FROM taskgate.asset_state_store WHERE asset_id = $1 AND key = $2`,
			id, key).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("asset state %s", key)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return json.RawMessage(v), nil
}

// SetAssetState upserts key for the asset, recording w as its writer (a
// watcher with no task fields).
func (db *DB) SetAssetState(ctx context.Context, a workload.AssetRef, key string, value json.RawMessage, w workload.AssetWriter) error {
	now := db.now().UTC()
	text, err := pyjson.Dumps(value, false)
	if err != nil {
		return err
	}
	var mapIndex, tryNumber any
	if w.Kind == workload.AssetWriterTask {
		mapIndex, tryNumber = w.MapIndex, w.TryNumber
	}
	return db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		id, err := activeAssetID(ctx, tx, a)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO taskgate.asset_state_store (asset_id, key, value, updated_at,
				last_updated_by_kind, last_updated_by_dag_id, last_updated_by_run_id, last_updated_by_task_id,
				last_updated_by_map_index, last_updated_by_task_instance_id, last_updated_by_try_number)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::uuid, $11)
			ON CONFLICT (asset_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,
				last_updated_by_kind = excluded.last_updated_by_kind,
				last_updated_by_dag_id = excluded.last_updated_by_dag_id,
				last_updated_by_run_id = excluded.last_updated_by_run_id,
				last_updated_by_task_id = excluded.last_updated_by_task_id,
				last_updated_by_map_index = excluded.last_updated_by_map_index,
				last_updated_by_task_instance_id = excluded.last_updated_by_task_instance_id,
				last_updated_by_try_number = excluded.last_updated_by_try_number`,
			id, key, text, now, w.Kind, nullable(w.DagID), nullable(w.RunID), nullable(w.TaskID), mapIndex, nullable(w.TIID), tryNumber)
		return err
	})
}

// DeleteAssetState removes key of the asset.
func (db *DB) DeleteAssetState(ctx context.Context, a workload.AssetRef, key string) error {
	return db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		id, err := activeAssetID(ctx, tx, a)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM taskgate.asset_state_store WHERE asset_id = $1 AND key = $2`, id, key)
		return err
	})
}

// ClearAssetState removes every key of the asset.
func (db *DB) ClearAssetState(ctx context.Context, a workload.AssetRef) error {
	return db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		id, err := activeAssetID(ctx, tx, a)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM taskgate.asset_state_store WHERE asset_id = $1`, id)
		return err
	})
}

var (
	_ workload.HITL            = (*DB)(nil)
	_ workload.TaskStateStore  = (*DB)(nil)
	_ workload.AssetStateStore = (*DB)(nil)
)
