package integration_test

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/taskgate/taskgate/internal/pgtest"
)

// Airflow's test_asset_state_store.py and test_asset_store.py
// (execution_api/versions/head): the asset state store at /store/asset,
// against the real binary on Airflow's PostgreSQL database, where assets
// are Airflow's asset and asset_active rows (the embedded store keeps no
// asset catalog). Both files test the same routes: a case both hold runs
// once and names both. Each case has its own asset and its own running try,
// as Airflow's tests reset the tables between cases.

// assetCaseEnv is what a case works on.
type assetCaseEnv struct {
	d     *pgDeployment
	asset pgtest.AssetRow
	ti    storeTI
}

func assetStorePath(by, what string, q url.Values) string {
	return "/execution/store/asset/" + by + "/" + what + "?" + q.Encode()
}

func byName(name, key string) string {
	return assetStorePath("by-name", "value", url.Values{"name": {name}, "key": {key}})
}

func byURI(uri, key string) string {
	return assetStorePath("by-uri", "value", url.Values{"uri": {uri}, "key": {key}})
}

// seedAssetRow is _create_asset_store_row: a row inserted directly, its
// value json.dumps'd.
func (e *assetCaseEnv) seedAssetRow(key, value string) {
	e.d.exec(`INSERT INTO taskgate.asset_state_store (asset_id, key, value, updated_at) VALUES ($1, $2, $3, now())`,
		e.asset.ID, key, `"`+value+`"`)
}

// assetRow reads a row's value and writer columns.
func (e *assetCaseEnv) assetRow(t *testing.T, key string) (value string, kind, dagID, runID, taskID *string, mapIndex *int32) {
	t.Helper()
	e.d.queryRow(`SELECT value, last_updated_by_kind, last_updated_by_dag_id, last_updated_by_run_id,
		last_updated_by_task_id, last_updated_by_map_index FROM taskgate.asset_state_store WHERE asset_id = $1 AND key = $2`,
		[]any{e.asset.ID, key}, &value, &kind, &dagID, &runID, &taskID, &mapIndex)
	return
}

func (e *assetCaseEnv) rowCount(t *testing.T) int {
	t.Helper()
	var n int
	e.d.queryRow(`SELECT count(*) FROM taskgate.asset_state_store WHERE asset_id = $1`, []any{e.asset.ID}, &n)
	return n
}

func TestConformanceAssetStorePostgres(t *testing.T) {
	d := newPGDeployment(t)
	r := d.insertDagRun("asset_store_dag", "manual__2026-12-01T00:00:00+00:00")
	m := d.minter(t)
	inactive := d.af.Asset(t, pgtest.AssetRow{Name: "inactive_asset", URI: "s3://bucket/inactive"})
	d.exec(`DELETE FROM asset_active WHERE name = $1`, inactive.Name)

	do := func(e *assetCaseEnv, method, path, body string) *response { return e.ti.w.do(method, path, body) }
	status := func(t *testing.T, r *response, want int) {
		t.Helper()
		if r.status != want {
			t.Errorf("%s: status %d, want %d", r, r.status, want)
		}
	}
	writer := func(t *testing.T, e *assetCaseEnv) {
		t.Helper()
		_, kind, dagID, runID, taskID, mi := e.assetRow(t, "watermark")
		if kind == nil || *kind != "task" || dagID == nil || *dagID != e.ti.q.DagID || runID == nil || *runID != e.ti.q.RunID ||
			taskID == nil || *taskID != e.ti.q.TaskID || mi == nil || int(*mi) != e.ti.q.MapIndex {
			t.Errorf("writer columns: kind %v dag %v run %v task %v map_index %v, want the token's try", kind, dagID, runID, taskID, mi)
		}
	}
	cases := []struct {
		names []string
		run   func(t *testing.T, e *assetCaseEnv)
	}{
		{[]string{"test_asset_state_store.py::TestGetAssetStateByName::test_get_returns_value",
			"test_asset_store.py::TestGetAssetStateByName::test_get_returns_value"}, func(t *testing.T, e *assetCaseEnv) {
			e.seedAssetRow("watermark", "2026-04-29")
			wantJSON(t, do(e, "GET", byName(e.asset.Name, "watermark"), ""), 200, `{"value":"2026-04-29"}`)
		}},
		{[]string{"test_asset_state_store.py::TestGetAssetStateByName::test_get_missing_key_returns_404",
			"test_asset_store.py::TestGetAssetStateByName::test_get_missing_key_returns_404"}, func(t *testing.T, e *assetCaseEnv) {
			wantJSON(t, do(e, "GET", byName(e.asset.Name, "never_set"), ""), 404,
				`{"detail":{"reason":"not_found","message":"Asset state store key 'never_set' not found"}}`)
		}},
		{[]string{"test_asset_state_store.py::TestGetAssetStateByName::test_get_asset_name_with_slashes",
			"test_asset_store.py::TestGetAssetStateByName::test_get_asset_name_with_slashes"}, func(t *testing.T, e *assetCaseEnv) {
			e.asset = d.af.Asset(t, pgtest.AssetRow{Name: "team/sales/orders", URI: "s3://bucket/team/sales"})
			e.seedAssetRow("wm", "x")
			wantJSON(t, do(e, "GET", byName(e.asset.Name, "wm"), ""), 200, `{"value":"x"}`)
		}},
		{[]string{"test_asset_state_store.py::TestGetAssetStateByName::test_get_unknown_asset_returns_404",
			"test_asset_store.py::TestGetAssetStateByName::test_get_unknown_asset_returns_404"}, func(t *testing.T, e *assetCaseEnv) {
			wantJSON(t, do(e, "GET", byName("nonexistent", "wm"), ""), 404,
				`{"detail":{"reason":"not_found","message":"Asset with name='nonexistent' not found"}}`)
		}},
		{[]string{"test_asset_state_store.py::TestPutAssetStateByName::test_put_creates_row",
			"test_asset_store.py::TestPutAssetStateByName::test_put_creates_row"}, func(t *testing.T, e *assetCaseEnv) {
			wantNoContent(t, do(e, "PUT", byName(e.asset.Name, "watermark"), `{"value":"2026-04-29"}`), 204)
			if v, _, _, _, _, _ := e.assetRow(t, "watermark"); v != `"2026-04-29"` {
				t.Errorf("row value %q, want %q", v, `"2026-04-29"`)
			}
		}},
		{[]string{"test_asset_state_store.py::TestPutAssetStateByName::test_put_records_writer",
			"test_asset_store.py::TestPutAssetStateByName::test_put_records_writer"}, func(t *testing.T, e *assetCaseEnv) {
			wantNoContent(t, do(e, "PUT", byName(e.asset.Name, "watermark"), `{"value":"v"}`), 204)
			writer(t, e)
		}},
		{[]string{"test_asset_state_store.py::TestPutAssetStateByName::test_put_int_value_roundtrip",
			"test_asset_store.py::TestPutAssetStateByName::test_put_int_value_roundtrip"}, func(t *testing.T, e *assetCaseEnv) {
			wantNoContent(t, do(e, "PUT", byName(e.asset.Name, "total_runs"), `{"value":5}`), 204)
			wantJSON(t, do(e, "GET", byName(e.asset.Name, "total_runs"), ""), 200, `{"value":5}`)
		}},
		{[]string{"test_asset_state_store.py::TestPutAssetStateByName::test_put_dict_value_roundtrip",
			"test_asset_store.py::TestPutAssetStateByName::test_put_dict_value_roundtrip"}, func(t *testing.T, e *assetCaseEnv) {
			wantNoContent(t, do(e, "PUT", byName(e.asset.Name, "last_run"), `{"value":{"rows":1234,"status":"ok"}}`), 204)
			wantJSON(t, do(e, "GET", byName(e.asset.Name, "last_run"), ""), 200, `{"value":{"rows":1234,"status":"ok"}}`)
		}},
		{[]string{"test_asset_state_store.py::TestPutAssetStateByName::test_put_list_value_roundtrip",
			"test_asset_store.py::TestPutAssetStateByName::test_put_list_value_roundtrip"}, func(t *testing.T, e *assetCaseEnv) {
			wantNoContent(t, do(e, "PUT", byName(e.asset.Name, "ids"), `{"value":[1,2,3]}`), 204)
			wantJSON(t, do(e, "GET", byName(e.asset.Name, "ids"), ""), 200, `{"value":[1,2,3]}`)
		}},
		{[]string{"test_asset_state_store.py::TestPutAssetStateByName::test_put_overwrites_existing",
			"test_asset_store.py::TestPutAssetStateByName::test_put_overwrites_existing"}, func(t *testing.T, e *assetCaseEnv) {
			wantNoContent(t, do(e, "PUT", byName(e.asset.Name, "watermark"), `{"value":"2026-04-28"}`), 204)
			wantNoContent(t, do(e, "PUT", byName(e.asset.Name, "watermark"), `{"value":"2026-04-29"}`), 204)
			wantJSON(t, do(e, "GET", byName(e.asset.Name, "watermark"), ""), 200, `{"value":"2026-04-29"}`)
		}},
		{[]string{"test_asset_state_store.py::TestPutAssetStateByName::test_put_empty_body_returns_422",
			"test_asset_store.py::TestPutAssetStateByName::test_put_empty_body_returns_422"}, func(t *testing.T, e *assetCaseEnv) {
			wantJSON(t, do(e, "PUT", byName(e.asset.Name, "watermark"), `{}`), 422,
				`{"detail":[{"type":"missing","loc":["body","value"],"msg":"Field required","input":{}}]}`)
		}},
		{[]string{"test_asset_state_store.py::TestPutAssetStateByName::test_put_null_value_returns_422",
			"test_asset_store.py::TestPutAssetStateByName::test_put_null_value_returns_422"}, func(t *testing.T, e *assetCaseEnv) {
			status(t, do(e, "PUT", byName(e.asset.Name, "watermark"), `{"value":null}`), 422)
			if n := e.rowCount(t); n != 0 {
				t.Errorf("%d rows, want none", n)
			}
		}},
		// Python's client refuses to encode NaN and infinities; sent raw,
		// the server refuses them.
		{[]string{"test_asset_state_store.py::TestPutAssetStateByName::test_put_non_finite_float_returns_422[nan]",
			"test_asset_state_store.py::TestPutAssetStateByName::test_put_non_finite_float_returns_422[inf]",
			"test_asset_state_store.py::TestPutAssetStateByName::test_put_non_finite_float_returns_422[-inf]",
			"test_asset_store.py::TestPutAssetStateByName::test_put_non_finite_float_returns_422[nan]",
			"test_asset_store.py::TestPutAssetStateByName::test_put_non_finite_float_returns_422[inf]",
			"test_asset_store.py::TestPutAssetStateByName::test_put_non_finite_float_returns_422[-inf]"}, func(t *testing.T, e *assetCaseEnv) {
			for _, v := range []string{"NaN", "Infinity", "-Infinity"} {
				status(t, do(e, "PUT", byName(e.asset.Name, "watermark"), `{"value": `+v+`}`), 422)
			}
			if n := e.rowCount(t); n != 0 {
				t.Errorf("%d rows, want none", n)
			}
		}},
		{[]string{"test_asset_state_store.py::TestPutAssetStateByName::test_put_unknown_asset_returns_404",
			"test_asset_store.py::TestPutAssetStateByName::test_put_unknown_asset_returns_404"}, func(t *testing.T, e *assetCaseEnv) {
			wantJSON(t, do(e, "PUT", byName("nonexistent", "watermark"), `{"value":"x"}`), 404,
				`{"detail":{"reason":"not_found","message":"Asset with name='nonexistent' not found"}}`)
		}},
		{[]string{"test_asset_state_store.py::TestDeleteAssetStateByName::test_delete_removes_key",
			"test_asset_store.py::TestDeleteAssetStateByName::test_delete_removes_key"}, func(t *testing.T, e *assetCaseEnv) {
			e.seedAssetRow("watermark", "2026-04-29")
			wantNoContent(t, do(e, "DELETE", byName(e.asset.Name, "watermark"), ""), 204)
			status(t, do(e, "GET", byName(e.asset.Name, "watermark"), ""), 404)
		}},
		{[]string{"test_asset_state_store.py::TestDeleteAssetStateByName::test_delete_missing_key_is_noop",
			"test_asset_store.py::TestDeleteAssetStateByName::test_delete_missing_key_is_noop"}, func(t *testing.T, e *assetCaseEnv) {
			wantNoContent(t, do(e, "DELETE", byName(e.asset.Name, "never_existed"), ""), 204)
		}},
		{[]string{"test_asset_state_store.py::TestClearAssetStateByName::test_clear_removes_all_keys",
			"test_asset_store.py::TestClearAssetStateByName::test_clear_removes_all_keys"}, func(t *testing.T, e *assetCaseEnv) {
			for _, k := range []string{"watermark", "last_id", "schema_hash"} {
				e.seedAssetRow(k, "v")
			}
			wantNoContent(t, do(e, "DELETE", assetStorePath("by-name", "clear", url.Values{"name": {e.asset.Name}}), ""), 204)
			if n := e.rowCount(t); n != 0 {
				t.Errorf("%d rows left, want none", n)
			}
		}},
		{[]string{"test_asset_state_store.py::TestGetAssetStateByUri::test_get_returns_value",
			"test_asset_store.py::TestGetAssetStateByUri::test_get_returns_value"}, func(t *testing.T, e *assetCaseEnv) {
			e.seedAssetRow("watermark", "2026-04-29")
			wantJSON(t, do(e, "GET", byURI(e.asset.URI, "watermark"), ""), 200, `{"value":"2026-04-29"}`)
		}},
		{[]string{"test_asset_state_store.py::TestGetAssetStateByUri::test_get_missing_key_returns_404",
			"test_asset_store.py::TestGetAssetStateByUri::test_get_missing_key_returns_404"}, func(t *testing.T, e *assetCaseEnv) {
			status(t, do(e, "GET", byURI(e.asset.URI, "never_set"), ""), 404)
		}},
		{[]string{"test_asset_state_store.py::TestGetAssetStateByUri::test_get_unknown_uri_returns_404",
			"test_asset_store.py::TestGetAssetStateByUri::test_get_unknown_uri_returns_404"}, func(t *testing.T, e *assetCaseEnv) {
			wantJSON(t, do(e, "GET", byURI("s3://nonexistent/path", "wm"), ""), 404,
				`{"detail":{"reason":"not_found","message":"Asset with uri='s3://nonexistent/path' not found"}}`)
		}},
		{[]string{"test_asset_state_store.py::TestPutAssetStateByUri::test_put_creates_row",
			"test_asset_store.py::TestPutAssetStateByUri::test_put_creates_row"}, func(t *testing.T, e *assetCaseEnv) {
			wantNoContent(t, do(e, "PUT", byURI(e.asset.URI, "watermark"), `{"value":"2026-04-29"}`), 204)
			if v, _, _, _, _, _ := e.assetRow(t, "watermark"); v != `"2026-04-29"` {
				t.Errorf("row value %q, want %q", v, `"2026-04-29"`)
			}
		}},
		{[]string{"test_asset_state_store.py::TestPutAssetStateByUri::test_put_records_writer",
			"test_asset_store.py::TestPutAssetStateByUri::test_put_records_writer"}, func(t *testing.T, e *assetCaseEnv) {
			wantNoContent(t, do(e, "PUT", byURI(e.asset.URI, "watermark"), `{"value":"v"}`), 204)
			writer(t, e)
		}},
		{[]string{"test_asset_state_store.py::TestPutAssetStateByUri::test_put_unknown_uri_returns_404",
			"test_asset_store.py::TestPutAssetStateByUri::test_put_unknown_uri_returns_404"}, func(t *testing.T, e *assetCaseEnv) {
			status(t, do(e, "PUT", byURI("s3://nonexistent/path", "wm"), `{"value":"x"}`), 404)
		}},
		{[]string{"test_asset_state_store.py::TestDeleteAssetStateByUri::test_delete_removes_key",
			"test_asset_store.py::TestDeleteAssetStateByUri::test_delete_removes_key"}, func(t *testing.T, e *assetCaseEnv) {
			e.seedAssetRow("watermark", "2026-04-29")
			wantNoContent(t, do(e, "DELETE", byURI(e.asset.URI, "watermark"), ""), 204)
			status(t, do(e, "GET", byURI(e.asset.URI, "watermark"), ""), 404)
		}},
		{[]string{"test_asset_state_store.py::TestClearAssetStateByUri::test_clear_removes_all_keys",
			"test_asset_store.py::TestClearAssetStateByUri::test_clear_removes_all_keys"}, func(t *testing.T, e *assetCaseEnv) {
			for _, k := range []string{"watermark", "last_id"} {
				e.seedAssetRow(k, "v")
			}
			wantNoContent(t, do(e, "DELETE", assetStorePath("by-uri", "clear", url.Values{"uri": {e.asset.URI}}), ""), 204)
			if n := e.rowCount(t); n != 0 {
				t.Errorf("%d rows left, want none", n)
			}
		}},
		{[]string{"test_asset_state_store.py::TestInactiveAssetRejected::test_get_inactive_asset_by_name_returns_404",
			"test_asset_store.py::TestInactiveAssetRejected::test_get_inactive_asset_by_name_returns_404"}, func(t *testing.T, e *assetCaseEnv) {
			status(t, do(e, "GET", byName(inactive.Name, "watermark"), ""), 404)
		}},
		{[]string{"test_asset_state_store.py::TestInactiveAssetRejected::test_get_inactive_asset_by_uri_returns_404",
			"test_asset_store.py::TestInactiveAssetRejected::test_get_inactive_asset_by_uri_returns_404"}, func(t *testing.T, e *assetCaseEnv) {
			status(t, do(e, "GET", byURI(inactive.URI, "watermark"), ""), 404)
		}},
		{[]string{"missing query parameters are FastAPI's 422"}, func(t *testing.T, e *assetCaseEnv) {
			wantJSON(t, do(e, "GET", "/execution/store/asset/by-name/value?name=", ""), 422,
				`{"detail":[{"type":"string_too_short","loc":["query","name"],"msg":"String should have at least 1 character","input":"","ctx":{"min_length":1}},
				{"type":"missing","loc":["query","key"],"msg":"Field required","input":null}]}`)
		}},
	}
	envs := make([]*assetCaseEnv, len(cases))
	for i := range cases {
		ti := d.insertQueuedTI(r, fmt.Sprintf("c%d", i), 1, 0)
		envs[i] = &assetCaseEnv{d: d, ti: storeTI{q: ti.q(m)},
			asset: d.af.Asset(t, pgtest.AssetRow{Name: fmt.Sprintf("test_asset_%d", i), URI: fmt.Sprintf("s3://bucket/test_%d", i)})}
	}
	srv := d.startReplica(t)
	for i, c := range cases {
		e := envs[i]
		e.ti.w = newWorker(t, srv.URL, startedToken(t, srv.URL, e.ti.q))
		t.Run(c.names[0], func(t *testing.T) { c.run(t, e) })
	}
}
