package store

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

// stateRecord is one task or asset state store entry. The writer fields
// are an asset entry's (Airflow's last_updated_by_*).
type stateRecord struct {
	Value     json.RawMessage `json:"value"`
	UpdatedAt time.Time       `json:"updated_at"`
	ExpiresAt *time.Time      `json:"expires_at,omitempty"`

	Writer *workload.AssetWriter `json:"writer,omitempty"`
}

// taskStatePrefix is the key prefix of a task's state at one map index.
func taskStatePrefix(s workload.TaskScope) []byte {
	return appendMapIndex(tuple(s.DagID, s.RunID, s.TaskID), s.MapIndex)
}

func taskStateKey(s workload.TaskScope, key string) []byte {
	return appendString(taskStatePrefix(s), key)
}

// getState reads the value stored under k in the bucket, or
// workload.ErrNotFound.
func (db *DB) getState(ctx context.Context, name, k []byte, what string) (json.RawMessage, error) {
	var out json.RawMessage
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		var data []byte
		if b != nil {
			data = b.Get(k)
		}
		if data == nil {
			return notFound("%s", what)
		}
		var r stateRecord
		if err := decodeJSON(what, data, &r); err != nil {
			return err
		}
		out = r.Value
		return nil
	})
	return out, err
}

// TaskState returns the value of key in scope, or workload.ErrNotFound.
func (db *DB) TaskState(ctx context.Context, scope workload.TaskScope, key string) (json.RawMessage, error) {
	return db.getState(ctx, bucketTaskState, taskStateKey(scope, key), "task state "+key)
}

// SetTaskState creates or replaces key in scope; workload.ErrNotFound when
// the dag run does not exist.
func (db *DB) SetTaskState(ctx context.Context, scope workload.TaskScope, key string, value json.RawMessage, expiresAt *time.Time) error {
	k := taskStateKey(scope, key)
	if err := checkKey("task state key", k); err != nil {
		return err
	}
	r := stateRecord{Value: value, UpdatedAt: db.now().UTC(), ExpiresAt: expiresAt}
	enc, err := encodeJSON("task state "+key, r)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		runs, b, err := buckets(tx, bucketDagRuns, bucketTaskState)
		if err != nil {
			return err
		}
		if runs.Get(dagRunKey(scope.DagID, scope.RunID)) == nil {
			return notFound("dag run %s/%s", scope.DagID, scope.RunID)
		}
		return put(b, k, enc)
	})
}

// DeleteTaskState removes key from scope; a missing key is not an error.
func (db *DB) DeleteTaskState(ctx context.Context, scope workload.TaskScope, key string) error {
	k := taskStateKey(scope, key)
	if err := checkKey("task state key", k); err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketTaskState)
		if err != nil {
			return err
		}
		return del(b, k)
	})
}

// ClearTaskState removes every key of scope, or of every map index of the
// task when allMapIndices is set.
func (db *DB) ClearTaskState(ctx context.Context, scope workload.TaskScope, allMapIndices bool) error {
	prefix := taskStatePrefix(scope)
	if allMapIndices {
		prefix = tuple(scope.DagID, scope.RunID, scope.TaskID)
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketTaskState)
		if err != nil {
			return err
		}
		return deletePrefix(b, prefix)
	})
}

// deletePrefix removes every key of b starting with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := del(b, k); err != nil {
			return err
		}
	}
	return nil
}

// The embedded store keeps no asset catalog (no DAG processor registers
// assets in it), so an asset is known here by the name or the URI a route
// names: every asset exists, and the state stored by name and by URI are
// two stores. On Airflow's database (pgstore) both resolve to the active
// asset's id, as Airflow's routes do.
func assetStatePrefix(a workload.AssetRef) []byte {
	if a.Name != "" {
		return tuple("name", a.Name)
	}
	return tuple("uri", a.URI)
}

func assetStateKey(a workload.AssetRef, key string) []byte {
	return appendString(assetStatePrefix(a), key)
}

// AssetState returns the value of key for the asset, or
// workload.ErrNotFound.
func (db *DB) AssetState(ctx context.Context, a workload.AssetRef, key string) (json.RawMessage, error) {
	return db.getState(ctx, bucketAssetState, assetStateKey(a, key), "asset state "+key)
}

// SetAssetState creates or replaces key for the asset, recording w.
func (db *DB) SetAssetState(ctx context.Context, a workload.AssetRef, key string, value json.RawMessage, w workload.AssetWriter) error {
	k := assetStateKey(a, key)
	if err := checkKey("asset state key", k); err != nil {
		return err
	}
	enc, err := encodeJSON("asset state "+key, stateRecord{Value: value, UpdatedAt: db.now().UTC(), Writer: &w})
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketAssetState)
		if err != nil {
			return err
		}
		return put(b, k, enc)
	})
}

// DeleteAssetState removes key of the asset; a missing key is not an error.
func (db *DB) DeleteAssetState(ctx context.Context, a workload.AssetRef, key string) error {
	k := assetStateKey(a, key)
	if err := checkKey("asset state key", k); err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketAssetState)
		if err != nil {
			return err
		}
		return del(b, k)
	})
}

// ClearAssetState removes every key of the asset.
func (db *DB) ClearAssetState(ctx context.Context, a workload.AssetRef) error {
	prefix := assetStatePrefix(a)
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketAssetState)
		if err != nil {
			return err
		}
		return deletePrefix(b, prefix)
	})
}

var (
	_ workload.HITL            = (*DB)(nil)
	_ workload.TaskStateStore  = (*DB)(nil)
	_ workload.AssetStateStore = (*DB)(nil)
)
