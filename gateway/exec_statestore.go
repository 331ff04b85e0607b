package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/internal/pyjson"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// The task and asset state stores (API version 2026-06-30,
// AddTaskAndAssetStateStoreEndpoints): /store/ti/{task_instance_id}/{key}
// (Airflow's routes/task_state_store.py) and /store/asset/by-name|by-uri
// (routes/asset_state_store.py). Values are any JSON but null, stored as
// Python's json.dumps writes them, as Airflow stores them.

const (
	taskStorePath    = "/execution/store/ti/:task_instance_id"
	taskStoreKeyPath = taskStorePath + "/*"
	assetStoreByName = "/execution/store/asset/by-name"
	assetStoreByURI  = "/execution/store/asset/by-uri"
	storeValueSuffix = "/value"
	storeClearSuffix = "/clear"
)

// stateStoreValue is TaskStateStoreResponse and AssetStateStoreResponse.
type stateStoreValue struct {
	Value json.RawMessage `json:"value"`
}

// taskStorePut is TaskStateStorePutBody.
type taskStorePut struct {
	Value     json.RawMessage `json:"value"`
	ExpiresAt *time.Time      `json:"expires_at"`
}

// assetStorePut is AssetStateStorePutBody.
type assetStorePut struct {
	Value json.RawMessage `json:"value"`
}

var stateStoreModels = func() map[string]routeModel {
	m := map[string]routeModel{
		"GET " + taskStoreKeyPath:    {Response: stateStoreValue{}},
		"PUT " + taskStoreKeyPath:    {Request: taskStorePut{}, Status: http.StatusNoContent},
		"DELETE " + taskStoreKeyPath: {Status: http.StatusNoContent},
		"DELETE " + taskStorePath:    {Status: http.StatusNoContent},
	}
	for _, p := range []string{assetStoreByName, assetStoreByURI} {
		m["GET "+p+storeValueSuffix] = routeModel{Response: stateStoreValue{}}
		m["PUT "+p+storeValueSuffix] = routeModel{Request: assetStorePut{}, Status: http.StatusNoContent}
		m["DELETE "+p+storeValueSuffix] = routeModel{Status: http.StatusNoContent}
		m["DELETE "+p+storeClearSuffix] = routeModel{Status: http.StatusNoContent}
	}
	return m
}()

// storeValue reads the value field of a state store PUT body: any JSON
// but null.
func (o *object) storeValue() json.RawMessage {
	v, ok := o.get("value", true)
	if !ok {
		return nil
	}
	if isNull(v) {
		o.errs = append(o.errs, FieldError{Type: "value_error", Loc: append(append([]any(nil), o.loc...), "value"),
			Msg: "Value error, value cannot be null", Input: nil, Ctx: map[string]any{"error": map[string]any{}}})
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		o.fail("value", "json_invalid", "Invalid JSON", rawInput(v))
		return nil
	}
	return b.Bytes()
}

// storedValue is a stored value as the response sends it.
func storedValue(s json.RawMessage) stateStoreValue {
	var b bytes.Buffer
	if json.Compact(&b, s) != nil {
		return stateStoreValue{Value: s}
	}
	return stateStoreValue{Value: b.Bytes()}
}

// storeKey returns the {key:path} of a task store route; min_length=1.
func storeKey(c echo.Context) (string, error) {
	k, err := pathParam(c, "*")
	if err != nil {
		return "", err
	}
	if k == "" {
		return "", &ValidationError{[]FieldError{{Type: "string_too_short", Loc: []any{"path", "key"},
			Msg: "String should have at least 1 character", Input: "", Ctx: map[string]any{"min_length": 1}}}}
	}
	return k, nil
}

// taskScope resolves the path's task instance to its state-store scope.
func (s *Server) taskScope(c echo.Context, id string) (workload.TaskScope, error) {
	ti, err := s.cfg.Store.TaskInstance(c.Request().Context(), id)
	if errors.Is(err, workload.ErrNotFound) {
		return workload.TaskScope{}, notFound("Task instance " + id + " not found")
	} else if err != nil {
		return workload.TaskScope{}, err
	}
	return workload.ScopeOf(ti), nil
}

// handleGetTaskStore is GET /store/ti/{id}/{key}.
func (s *Server) handleGetTaskStore(c echo.Context) error {
	id, err := taskInstanceID(c)
	if err != nil {
		return err
	}
	key, err := storeKey(c)
	if err != nil {
		return err
	}
	scope, err := s.taskScope(c, id)
	if err != nil {
		return err
	}
	v, err := s.cfg.Store.TaskState(c.Request().Context(), scope, key)
	if errors.Is(err, workload.ErrNotFound) {
		return notFound("Task state store key " + pyjson.Repr(key) + " not found")
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, storedValue(v))
}

// handlePutTaskStore is PUT /store/ti/{id}/{key} with {"value", "expires_at"}.
func (s *Server) handlePutTaskStore(c echo.Context) error {
	id, err := taskInstanceID(c)
	if err != nil {
		return err
	}
	key, err := storeKey(c)
	if err != nil {
		return err
	}
	o, err := readObject(c)
	if err != nil {
		return err
	}
	value := o.storeValue()
	expires := o.datetime("expires_at", false, true)
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return verr
	}
	scope, err := s.taskScope(c, id)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.SetTaskState(c.Request().Context(), scope, key, value, expires); err != nil {
		if errors.Is(err, workload.ErrNotFound) {
			return notFound("No DagRun found for dag_id=" + pyjson.Repr(scope.DagID) + " run_id=" + pyjson.Repr(scope.RunID))
		}
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// handleDeleteTaskStore is DELETE /store/ti/{id}/{key}.
func (s *Server) handleDeleteTaskStore(c echo.Context) error {
	id, err := taskInstanceID(c)
	if err != nil {
		return err
	}
	key, err := storeKey(c)
	if err != nil {
		return err
	}
	scope, err := s.taskScope(c, id)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteTaskState(c.Request().Context(), scope, key); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// handleClearTaskStore is DELETE /store/ti/{id}: every key of the task
// instance's map index, or with ?all_map_indices=true of every map index of
// the task in the dag run (the stored task_state_store.py of commit
// c338c62d and test_task_store.py have it; the key:path version of commit
// 133e47a0 does not, and ignores the parameter).
func (s *Server) handleClearTaskStore(c echo.Context) error {
	id, err := taskInstanceID(c)
	if err != nil {
		return err
	}
	all, err := queryBool(c, "all_map_indices")
	if err != nil {
		return err
	}
	scope, err := s.taskScope(c, id)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.ClearTaskState(c.Request().Context(), scope, all); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// queryString reads a required query parameter with at least one character.
func queryString(c echo.Context, name string, errs []FieldError) (string, []FieldError) {
	vals, ok := c.QueryParams()[name]
	if !ok || len(vals) == 0 {
		return "", append(errs, FieldError{Type: "missing", Loc: []any{"query", name}, Msg: "Field required", Input: nil})
	}
	v := vals[len(vals)-1]
	if v == "" {
		return "", append(errs, FieldError{Type: "string_too_short", Loc: []any{"query", name},
			Msg: "String should have at least 1 character", Input: "", Ctx: map[string]any{"min_length": 1}})
	}
	return v, errs
}

// assetStoreRequest reads an asset state store route's asset (by name or
// by URI, from the path) and, with withKey, its key.
func assetStoreRequest(c echo.Context, byName, withKey bool) (workload.AssetRef, string, []FieldError) {
	var (
		a    workload.AssetRef
		key  string
		errs []FieldError
	)
	if byName {
		a.Name, errs = queryString(c, "name", errs)
	} else {
		a.URI, errs = queryString(c, "uri", errs)
	}
	if withKey {
		key, errs = queryString(c, "key", errs)
	}
	return a, key, errs
}

// assetStoreError maps a store error of an asset state store route.
func assetStoreError(err error, a workload.AssetRef, key string) error {
	switch {
	case errors.Is(err, workload.ErrAssetNotFound):
		if a.Name != "" {
			return notFound("Asset with name=" + pyjson.Repr(a.Name) + " not found")
		}
		return notFound("Asset with uri=" + pyjson.Repr(a.URI) + " not found")
	case errors.Is(err, workload.ErrNotFound):
		return notFound("Asset state store key " + pyjson.Repr(key) + " not found")
	}
	return err
}

// handleGetAssetStore is GET /store/asset/by-name|by-uri/value.
func (s *Server) handleGetAssetStore(byName bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		a, key, errs := assetStoreRequest(c, byName, true)
		if errs != nil {
			return &ValidationError{Errors: errs}
		}
		v, err := s.cfg.Store.AssetState(c.Request().Context(), a, key)
		if err != nil {
			return assetStoreError(err, a, key)
		}
		return c.JSON(http.StatusOK, storedValue(v))
	}
}

// handlePutAssetStore is PUT /store/asset/by-name|by-uri/value with
// {"value"}, recorded as written by the token's task instance.
func (s *Server) handlePutAssetStore(byName bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		a, key, errs := assetStoreRequest(c, byName, true)
		body, err := readBody(c)
		if err != nil {
			return err
		}
		o, verr := decodeObject(body)
		if verr != nil {
			return &ValidationError{Errors: append(errs, verr.Errors...)}
		}
		value := o.storeValue()
		o.forbidExtra()
		errs = append(errs, o.errs...)
		if errs != nil {
			return &ValidationError{Errors: errs}
		}
		// The policy admits task tokens only here; a component's write
		// would be a watcher's, as Airflow records its triggerer's.
		w := workload.AssetWriter{Kind: workload.AssetWriterWatcher}
		if claimsOf(c).Component() == "" {
			sub, _ := scopes.CanonicalUUID(claimsOf(c).Subject)
			ti, err := s.cfg.Store.TaskInstance(c.Request().Context(), sub)
			if errors.Is(err, workload.ErrNotFound) {
				return notFound("Task instance " + pyjson.Repr(sub) + " not found")
			} else if err != nil {
				return err
			}
			w = workload.AssetWriter{Kind: workload.AssetWriterTask, DagID: ti.DagID, RunID: ti.RunID,
				TaskID: ti.TaskID, MapIndex: ti.MapIndex, TryNumber: ti.TryNumber, TIID: ti.ID}
		}
		if err := s.cfg.Store.SetAssetState(c.Request().Context(), a, key, value, w); err != nil {
			return assetStoreError(err, a, key)
		}
		return c.NoContent(http.StatusNoContent)
	}
}

// handleDeleteAssetStore is DELETE /store/asset/by-name|by-uri/value.
func (s *Server) handleDeleteAssetStore(byName bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		a, key, errs := assetStoreRequest(c, byName, true)
		if errs != nil {
			return &ValidationError{Errors: errs}
		}
		if err := s.cfg.Store.DeleteAssetState(c.Request().Context(), a, key); err != nil {
			return assetStoreError(err, a, key)
		}
		return c.NoContent(http.StatusNoContent)
	}
}

// handleClearAssetStore is DELETE /store/asset/by-name|by-uri/clear.
func (s *Server) handleClearAssetStore(byName bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		a, _, errs := assetStoreRequest(c, byName, false)
		if errs != nil {
			return &ValidationError{Errors: errs}
		}
		if err := s.cfg.Store.ClearAssetState(c.Request().Context(), a); err != nil {
			return assetStoreError(err, a, "")
		}
		return c.NoContent(http.StatusNoContent)
	}
}
