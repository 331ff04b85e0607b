package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

// serializedDagOfRun reads the serialized DAG a dag run runs with, as
// Airflow's DBDagBag.get_dag_for_run picks it: the DAG's latest version when
// the run has no bundle_version (its bundle is not versioned), else the
// version that created the run. found is false when there is none.
func serializedDagOfRun(ctx context.Context, tx pgx.Tx, dagID string, bundleVersion, createdVersion *string) (data []byte, found bool, err error) {
	if bundleVersion == nil {
		if data, found, err = serializedDag(ctx, tx, dagID); found || err != nil {
			return data, found, err
		}
	}
	if createdVersion == nil {
		return nil, false, nil
	}
	return serializedDagOfVersion(ctx, tx, *createdVersion)
}

// rowQuerier is what serializedDagOfVersion reads with: a transaction or
// the pool.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// serializedDagOfVersion reads the serialized DAG of a dag_version (as
// DBDagBag.get_dag does), from data or the zlib-compressed
// data_compressed; found is false when there is none.
func serializedDagOfVersion(ctx context.Context, q rowQuerier, versionID string) (data []byte, found bool, err error) {
	var compressed []byte
	err = q.QueryRow(ctx, `SELECT data::text, data_compressed FROM serialized_dag WHERE dag_version_id = $1::uuid`,
		versionID).Scan(&data, &compressed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pgstore: serialized dag of version %s: %w", versionID, err)
	}
	if len(compressed) > 0 {
		if data, err = inflate(compressed); err != nil {
			return nil, false, fmt.Errorf("pgstore: data_compressed of version %s: %w", versionID, err)
		}
	}
	return data, true, nil
}

// StubTask returns the serialized operator of ti's task when it is flagged
// is_stub in the serialized DAG of the task instance's dag_version_id, as
// Airflow's get_arg_bindings reads it (DBDagBag.get_dag of the try's
// version, not of its dag run); nil without a version, a serialized DAG of
// it, or such a task.
func (db *DB) StubTask(ctx context.Context, ti *workload.TaskInstance) (json.RawMessage, error) {
	if !validUUID(ti.DagVersionID) {
		return nil, nil
	}
	data, found, err := serializedDagOfVersion(ctx, db.pool, ti.DagVersionID)
	if err != nil || !found {
		return nil, err
	}
	op, err := workload.SerializedStubTask(data, ti.TaskID)
	if err != nil {
		return nil, fmt.Errorf("pgstore: serialized dag of version %s: %w", ti.DagVersionID, err)
	}
	return op, nil
}

// taskAssets reads the Asset inlets and outlets of taskID from a serialized
// DAG ({"dag": {"tasks": [{"__type": "operator", "__var": {"task_id": …,
// "inlets": […], "outlets": […]}}]}}), each entry as BaseSerialization
// writes an Asset ({"__type": "asset", "__var": {"name", "uri", …}}). A
// mapped task keeps them in partial_kwargs when not at its top level.
// Entries of other types (aliases, name or uri references) are skipped, as
// Airflow checks only SerializedAsset entries; a task the DAG does not have
// declares none.
func taskAssets(data []byte, taskID string) (workload.TaskAssets, error) {
	var doc struct {
		Dag struct {
			Tasks []json.RawMessage `json:"tasks"`
		} `json:"dag"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return workload.TaskAssets{}, err
	}
	type fields struct {
		TaskID        string            `json:"task_id"`
		Inlets        []json.RawMessage `json:"inlets"`
		Outlets       []json.RawMessage `json:"outlets"`
		PartialKwargs json.RawMessage   `json:"partial_kwargs"`
	}
	for _, raw := range doc.Dag.Tasks {
		var f fields
		if err := json.Unmarshal(unwrapVar(raw), &f); err != nil {
			return workload.TaskAssets{}, err
		}
		if f.TaskID != taskID {
			continue
		}
		if f.Inlets == nil && f.Outlets == nil && len(f.PartialKwargs) > 0 {
			var partial fields
			if err := json.Unmarshal(unwrapVar(f.PartialKwargs), &partial); err != nil {
				return workload.TaskAssets{}, err
			}
			f.Inlets, f.Outlets = partial.Inlets, partial.Outlets
		}
		return workload.TaskAssets{Inlets: serializedAssets(f.Inlets), Outlets: serializedAssets(f.Outlets)}, nil
	}
	return workload.TaskAssets{}, nil
}

// unwrapVar returns the __var of a BaseSerialization-encoded value
// ({"__type": …, "__var": …}), or raw itself when it is not one.
func unwrapVar(raw json.RawMessage) json.RawMessage {
	var wrapped struct {
		Var json.RawMessage `json:"__var"`
	}
	if err := json.Unmarshal(raw, &wrapped); err == nil && len(wrapped.Var) > 0 {
		return wrapped.Var
	}
	return raw
}

// serializedAssets keeps the Asset entries of a serialized inlets or
// outlets list.
func serializedAssets(entries []json.RawMessage) []workload.AssetKey {
	var out []workload.AssetKey
	for _, raw := range entries {
		var e struct {
			Type string          `json:"__type"`
			Var  json.RawMessage `json:"__var"`
			Name *string         `json:"name"`
			URI  *string         `json:"uri"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Type != "asset" {
			continue
		}
		if len(e.Var) > 0 {
			if json.Unmarshal(e.Var, &e) != nil {
				continue
			}
		}
		if e.Name == nil || e.URI == nil {
			continue
		}
		out = append(out, workload.AssetKey{Name: *e.Name, URI: *e.URI})
	}
	return out
}
