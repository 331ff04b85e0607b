package workload

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// TaskScope is the namespace of a task's state store: one task (one map
// index of it) in one dag run. Every try of the task shares it, so a retry
// finds what an earlier try stored (a job id to reattach to, a checkpoint).
type TaskScope struct {
	DagID, RunID, TaskID string
	MapIndex             int
}

// ScopeOf returns the state-store scope of ti.
func ScopeOf(ti *TaskInstance) TaskScope {
	return TaskScope{DagID: ti.DagID, RunID: ti.RunID, TaskID: ti.TaskID, MapIndex: ti.MapIndex}
}

// TaskStateStore keeps the task state store (Airflow's task_state_store).
// Values are JSON documents other than null; a store keeps them as
// Airflow does (the text Python's json.dumps writes).
type TaskStateStore interface {
	// TaskState returns the value of key in scope, or ErrNotFound.
	TaskState(ctx context.Context, scope TaskScope, key string) (json.RawMessage, error)
	// SetTaskState creates or replaces key in scope. expiresAt is when a
	// cleanup may delete the row (nil: never). ErrNotFound when the dag
	// run does not exist.
	SetTaskState(ctx context.Context, scope TaskScope, key string, value json.RawMessage, expiresAt *time.Time) error
	// DeleteTaskState removes key; a missing key is not an error.
	DeleteTaskState(ctx context.Context, scope TaskScope, key string) error
	// ClearTaskState removes every key of scope, or of every map index of
	// the task in the dag run when allMapIndices is set.
	ClearTaskState(ctx context.Context, scope TaskScope, allMapIndices bool) error
}

// AssetRef names an asset as a worker knows it: by name or by URI (workers
// never see Airflow's integer asset id). Exactly one is set.
type AssetRef struct {
	Name, URI string
}

// AssetWriter says who writes an asset state store entry, recorded as
// Airflow's last_updated_by_* columns: a task (its try's coordinates) or a
// watcher (the triggerer's event triggers, no task instance).
type AssetWriter struct {
	// Kind is AssetWriterTask or AssetWriterWatcher.
	Kind string
	// The task's try; empty for a watcher.
	DagID, RunID, TaskID string
	MapIndex, TryNumber  int
	TIID                 string
}

// Asset writer kinds, as Airflow's AssetStateStoreWriterKind spells them.
const (
	AssetWriterTask    = "task"
	AssetWriterWatcher = "watcher"
)

// ErrAssetNotFound is an asset state store call naming no active asset.
var ErrAssetNotFound = errors.New("workload: asset not found")

// AssetStateStore keeps the asset state store (Airflow's
// asset_state_store): key/value state of an asset, shared by every dag run.
type AssetStateStore interface {
	// AssetState returns the value of key for the asset, ErrAssetNotFound
	// when no active asset matches, or ErrNotFound when it has no such key.
	AssetState(ctx context.Context, a AssetRef, key string) (json.RawMessage, error)
	// SetAssetState creates or replaces key for the asset, recording w as
	// its writer; ErrAssetNotFound when no active asset matches.
	SetAssetState(ctx context.Context, a AssetRef, key string, value json.RawMessage, w AssetWriter) error
	// DeleteAssetState removes key (a missing key is not an error);
	// ErrAssetNotFound when no active asset matches.
	DeleteAssetState(ctx context.Context, a AssetRef, key string) error
	// ClearAssetState removes every key of the asset; ErrAssetNotFound
	// when no active asset matches.
	ClearAssetState(ctx context.Context, a AssetRef) error
}

// HITL keeps Human-in-the-loop details (Airflow's hitl_detail).
type HITL interface {
	// HITLDetail returns the detail of a task instance, or
	// ErrHITLNotFound.
	HITLDetail(ctx context.Context, tiID string) (*HITLDetail, error)
	// UpdateHITLDetail calls fn, in one transaction, with the task
	// instance's current detail (nil if none) and stores what fn returns
	// when it reports a change. fn's error is returned as it is, and
	// nothing is written. ErrNotFound when the task instance does not
	// exist. fn may be called more than once.
	UpdateHITLDetail(ctx context.Context, tiID string,
		fn func(h *HITLDetail) (next *HITLDetail, changed bool, err error)) (*HITLDetail, error)
	// UpdateTaskInstanceHITL is Store.UpdateTaskInstance whose fn also
	// receives the task instance's Human-in-the-loop detail (nil if none),
	// read in the same transaction after the task instance: the state a
	// task reports may depend on whether its request was answered.
	UpdateTaskInstanceHITL(ctx context.Context, id string,
		fn func(ti *TaskInstance, h *HITLDetail) error) (*TaskInstance, error)
}
