package integration_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/internal/pgtest"
)

// Airflow's test_task_state_store.py and test_task_store.py
// (execution_api/versions/head): the task state store at /store/ti, against
// the real binary on the embedded store and on Airflow's PostgreSQL
// database. Both files test the same routes: a case both hold runs once and
// names both. Rows Airflow's tests insert for other map indexes are written
// here by those map indexes' own running tries.

func taskStorePath(tiID, key string) string {
	p := "/execution/store/ti/" + tiID
	if key != "" {
		p += "/" + key
	}
	return p
}

// storeTI is one running try of a case: its workload and its worker.
type storeTI struct {
	q queued
	w *worker
}

// taskStoreEnv is one backend under test.
type taskStoreEnv struct {
	base string
	// tis holds each case's tries, by map index.
	tis map[int]map[int]storeTI
	// row reads the stored value and expires_at of a key of q's scope;
	// checked is false where no SQL can read the rows (the embedded store).
	row func(t *testing.T, q queued, key string) (value string, expires *time.Time, found, checked bool)
	// forge mints an execution token for a task instance id.
	forge func(t *testing.T, id string) string
}

// taskStoreCase is one case; fleet cases get tries at map indexes 0, 1 and
// 2, the others one unmapped try.
type taskStoreCase struct {
	names []string
	fleet bool
	run   func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI)
}

func taskStoreCases() []taskStoreCase {
	put := func(t *testing.T, ti storeTI, key, value string) {
		t.Helper()
		wantNoContent(t, ti.w.do("PUT", taskStorePath(ti.q.TIID, key), `{"value":`+value+`}`), 204)
	}
	get := func(t *testing.T, ti storeTI, key string, status int, want string) {
		t.Helper()
		r := ti.w.do("GET", taskStorePath(ti.q.TIID, key), "")
		if want == "" {
			if r.status != status {
				t.Errorf("%s: status %d, want %d", r, r.status, status)
			}
			return
		}
		wantJSON(t, r, status, want)
	}
	// unknownTI is a try no task instance has: its token's own check
	// answers before the route (404 not_found "Task Instance not found").
	unknownTI := func(t *testing.T, e *taskStoreEnv, method, key, body string) {
		t.Helper()
		id := uuid.NewString()
		r := send(t, e.base, method, taskStorePath(id, key), "Bearer "+e.forge(t, id), body)
		if r.status != 404 {
			t.Errorf("%s: status %d, want 404", r, r.status)
		}
		wantReason(t, r, "not_found")
	}
	wrongTI := func(t *testing.T, tis map[int]storeTI, other storeTI, method, key, body string) {
		t.Helper()
		r := other.w.do(method, taskStorePath(tis[-1].q.TIID, key), body)
		if r.status != 403 {
			t.Errorf("%s: status %d, want 403", r, r.status)
		}
	}
	return []taskStoreCase{
		{names: []string{"test_task_state_store.py::TestGetTaskState::test_get_returns_value", "test_task_store.py::TestGetTaskState::test_get_returns_value"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			put(t, tis[-1], "job_id", `"spark_001"`)
			get(t, tis[-1], "job_id", 200, `{"value":"spark_001"}`)
		}},
		{names: []string{"test_task_state_store.py::TestGetTaskState::test_get_missing_key_returns_404", "test_task_store.py::TestGetTaskState::test_get_missing_key_returns_404"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			get(t, tis[-1], "never_set", 404, `{"detail":{"reason":"not_found","message":"Task state store key 'never_set' not found"}}`)
		}},
		{names: []string{"test_task_state_store.py::TestGetTaskState::test_get_missing_ti_returns_404", "test_task_store.py::TestGetTaskState::test_get_missing_ti_returns_404"}, run: func(t *testing.T, e *taskStoreEnv, _ map[int]storeTI) {
			unknownTI(t, e, "GET", "any_key", "")
		}},
		{names: []string{"test_task_state_store.py::TestGetTaskState::test_get_key_with_slash"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			put(t, tis[-1], "spark/job_id", `"spark_001"`)
			get(t, tis[-1], "spark/job_id", 200, `{"value":"spark_001"}`)
			get(t, tis[-1], url.PathEscape("spark/job_id"), 200, `{"value":"spark_001"}`)
		}},
		{names: []string{"test_task_state_store.py::TestPutTaskState::test_put_creates_row", "test_task_store.py::TestPutTaskState::test_put_creates_row"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			put(t, tis[-1], "job_id", `"spark_001"`)
			if v, _, found, checked := e.row(t, tis[-1].q, "job_id"); checked && (!found || v != `"spark_001"`) {
				t.Errorf("row value = %q (found %v), want %q", v, found, `"spark_001"`)
			}
		}},
		{names: []string{"test_task_state_store.py::TestPutTaskState::test_put_int_value_roundtrip", "test_task_store.py::TestPutTaskState::test_put_int_value_roundtrip"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			put(t, tis[-1], "retry_count", `3`)
			get(t, tis[-1], "retry_count", 200, `{"value":3}`)
		}},
		{names: []string{"test_task_state_store.py::TestPutTaskState::test_put_dict_value_roundtrip", "test_task_store.py::TestPutTaskState::test_put_dict_value_roundtrip"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			put(t, tis[-1], "poll_result", `{"status":"succeeded","rows":1234}`)
			get(t, tis[-1], "poll_result", 200, `{"value":{"status":"succeeded","rows":1234}}`)
			if v, _, _, checked := e.row(t, tis[-1].q, "poll_result"); checked && v != `{"status": "succeeded", "rows": 1234}` {
				t.Errorf("row value = %q, want json.dumps's", v)
			}
		}},
		{names: []string{"test_task_state_store.py::TestPutTaskState::test_put_list_value_roundtrip", "test_task_store.py::TestPutTaskState::test_put_list_value_roundtrip"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			put(t, tis[-1], "checkpoints", `[1,2,3]`)
			get(t, tis[-1], "checkpoints", 200, `{"value":[1,2,3]}`)
		}},
		{names: []string{"test_task_state_store.py::TestPutTaskState::test_put_with_expires_at_creates_row", "test_task_store.py::TestPutTaskState::test_put_with_expires_at_creates_row"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			wantNoContent(t, tis[-1].w.do("PUT", taskStorePath(tis[-1].q.TIID, "job_id"),
				`{"value":"spark_001","expires_at":"2026-05-15T12:00:00+00:00"}`), 204)
			want := time.Date(2026, 5, 15, 12, 0, 0, 0, time.UTC)
			if v, exp, _, checked := e.row(t, tis[-1].q, "job_id"); checked && (v != `"spark_001"` || exp == nil || !exp.Equal(want)) {
				t.Errorf("row = %q expires %v, want %q expires %v", v, exp, `"spark_001"`, want)
			}
			get(t, tis[-1], "job_id", 200, `{"value":"spark_001"}`)
		}},
		{names: []string{"test_task_state_store.py::TestPutTaskState::test_put_overwrites_existing", "test_task_store.py::TestPutTaskState::test_put_overwrites_existing"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			put(t, tis[-1], "job_id", `"spark_001"`)
			put(t, tis[-1], "job_id", `"spark_002"`)
			get(t, tis[-1], "job_id", 200, `{"value":"spark_002"}`)
		}},
		{names: []string{"test_task_state_store.py::TestPutTaskState::test_put_empty_body_returns_422", "test_task_store.py::TestPutTaskState::test_put_empty_body_returns_422"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			wantJSON(t, tis[-1].w.do("PUT", taskStorePath(tis[-1].q.TIID, "job_id"), `{}`), 422,
				`{"detail":[{"type":"missing","loc":["body","value"],"msg":"Field required","input":{}}]}`)
		}},
		{names: []string{"test_task_state_store.py::TestPutTaskState::test_put_extra_field_returns_422", "test_task_store.py::TestPutTaskState::test_put_extra_field_returns_422"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			wantJSON(t, tis[-1].w.do("PUT", taskStorePath(tis[-1].q.TIID, "job_id"), `{"value":"x","extra":"y"}`), 422,
				`{"detail":[{"type":"extra_forbidden","loc":["body","extra"],"msg":"Extra inputs are not permitted","input":"y"}]}`)
			get(t, tis[-1], "job_id", 404, "")
		}},
		{names: []string{"test_task_state_store.py::TestPutTaskState::test_put_null_value_returns_422", "test_task_store.py::TestPutTaskState::test_put_null_value_returns_422"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			r := tis[-1].w.do("PUT", taskStorePath(tis[-1].q.TIID, "job_id"), `{"value":null}`)
			if r.status != 422 {
				t.Errorf("%s: status %d, want 422", r, r.status)
			}
			get(t, tis[-1], "job_id", 404, "")
		}},
		// Python's client refuses to encode NaN and infinities; sent raw,
		// as json.dumps(allow_nan=True) writes them, the server refuses them.
		{names: []string{"test_task_state_store.py::TestPutTaskState::test_put_non_finite_float_returns_422[nan]", "test_task_state_store.py::TestPutTaskState::test_put_non_finite_float_returns_422[inf]", "test_task_state_store.py::TestPutTaskState::test_put_non_finite_float_returns_422[-inf]", "test_task_store.py::TestPutTaskState::test_put_non_finite_float_returns_422[nan]", "test_task_store.py::TestPutTaskState::test_put_non_finite_float_returns_422[inf]", "test_task_store.py::TestPutTaskState::test_put_non_finite_float_returns_422[-inf]"},
			run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
				for _, v := range []string{"NaN", "Infinity", "-Infinity"} {
					r := tis[-1].w.do("PUT", taskStorePath(tis[-1].q.TIID, "job_id"), `{"value": `+v+`}`)
					if r.status != 422 {
						t.Errorf("%s: status %d, want 422", r, r.status)
					}
				}
				get(t, tis[-1], "job_id", 404, "")
			}},
		{names: []string{"test_task_state_store.py::TestPutTaskState::test_put_missing_ti_returns_404", "test_task_store.py::TestPutTaskState::test_put_missing_ti_returns_404"}, run: func(t *testing.T, e *taskStoreEnv, _ map[int]storeTI) {
			unknownTI(t, e, "PUT", "job_id", `{"value":"x"}`)
		}},
		{names: []string{"test_task_state_store.py::TestPutTaskState::test_put_key_with_slash"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			put(t, tis[-1], "spark/job_id", `"spark_001"`)
			get(t, tis[-1], "spark/job_id", 200, `{"value":"spark_001"}`)
		}},
		{names: []string{"test_task_state_store.py::TestDeleteTaskState::test_delete_removes_key", "test_task_store.py::TestDeleteTaskState::test_delete_removes_key"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			put(t, tis[-1], "job_id", `"spark_001"`)
			wantNoContent(t, tis[-1].w.do("DELETE", taskStorePath(tis[-1].q.TIID, "job_id"), ""), 204)
			get(t, tis[-1], "job_id", 404, "")
		}},
		{names: []string{"test_task_state_store.py::TestDeleteTaskState::test_delete_missing_key_is_noop", "test_task_store.py::TestDeleteTaskState::test_delete_missing_key_is_noop"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			wantNoContent(t, tis[-1].w.do("DELETE", taskStorePath(tis[-1].q.TIID, "never_existed"), ""), 204)
		}},
		{names: []string{"test_task_state_store.py::TestDeleteTaskState::test_delete_only_targets_one_key", "test_task_store.py::TestDeleteTaskState::test_delete_only_targets_one_key"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			put(t, tis[-1], "job_id", `"a"`)
			put(t, tis[-1], "checkpoint", `"b"`)
			wantNoContent(t, tis[-1].w.do("DELETE", taskStorePath(tis[-1].q.TIID, "job_id"), ""), 204)
			get(t, tis[-1], "job_id", 404, "")
			get(t, tis[-1], "checkpoint", 200, `{"value":"b"}`)
		}},
		{names: []string{"test_task_state_store.py::TestDeleteTaskState::test_delete_key_with_slash"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			put(t, tis[-1], "spark/job_id", `"spark_001"`)
			wantNoContent(t, tis[-1].w.do("DELETE", taskStorePath(tis[-1].q.TIID, "spark/job_id"), ""), 204)
			get(t, tis[-1], "spark/job_id", 404, "")
		}},
		{names: []string{"test_task_state_store.py::TestClearTaskState::test_clear_removes_all_keys", "test_task_store.py::TestClearTaskState::test_clear_removes_all_keys"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			for _, k := range []string{"job_id", "checkpoint", "retry_count"} {
				put(t, tis[-1], k, `"v"`)
			}
			wantNoContent(t, tis[-1].w.do("DELETE", taskStorePath(tis[-1].q.TIID, ""), ""), 204)
			for _, k := range []string{"job_id", "checkpoint", "retry_count"} {
				get(t, tis[-1], k, 404, "")
			}
		}},
		{names: []string{"test_task_state_store.py::TestClearTaskState::test_clear_when_empty_is_noop", "test_task_store.py::TestClearTaskState::test_clear_when_empty_is_noop"}, run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
			wantNoContent(t, tis[-1].w.do("DELETE", taskStorePath(tis[-1].q.TIID, ""), ""), 204)
		}},
		{names: []string{"test_task_state_store.py::TestClearTaskState::test_clear_default_only_clears_this_map_index", "test_task_store.py::TestClearTaskState::test_clear_default_only_clears_this_map_index"}, fleet: true,
			run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
				for i := 0; i <= 2; i++ {
					put(t, tis[i], "job_id", fmt.Sprintf(`"app_%d"`, i))
				}
				wantNoContent(t, tis[2].w.do("DELETE", taskStorePath(tis[2].q.TIID, ""), ""), 204)
				get(t, tis[0], "job_id", 200, `{"value":"app_0"}`)
				get(t, tis[1], "job_id", 200, `{"value":"app_1"}`)
				get(t, tis[2], "job_id", 404, "")
			}},
		{names: []string{"test_task_store.py::TestClearTaskState::test_clear_with_all_map_indices_query_param_wipes_fleet"}, fleet: true,
			run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
				for i := 0; i <= 2; i++ {
					put(t, tis[i], "job_id", fmt.Sprintf(`"app_%d"`, i))
				}
				wantNoContent(t, tis[2].w.do("DELETE", taskStorePath(tis[2].q.TIID, "")+"?all_map_indices=true", ""), 204)
				for i := 0; i <= 2; i++ {
					get(t, tis[i], "job_id", 404, "")
				}
			}},
		{names: []string{"test_task_state_store.py::TestTiSelfEnforcement::test_get_with_wrong_ti_token_returns_403", "test_task_store.py::TestTiSelfEnforcement::test_get_with_wrong_ti_token_returns_403"}, fleet: true,
			run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
				wrongTI(t, map[int]storeTI{-1: tis[0]}, tis[1], "GET", "some_key", "")
			}},
		{names: []string{"test_task_state_store.py::TestTiSelfEnforcement::test_put_with_wrong_ti_token_returns_403", "test_task_store.py::TestTiSelfEnforcement::test_put_with_wrong_ti_token_returns_403"}, fleet: true,
			run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
				wrongTI(t, map[int]storeTI{-1: tis[0]}, tis[1], "PUT", "some_key", `{"value":"x"}`)
				get(t, tis[0], "some_key", 404, "")
			}},
		{names: []string{"test_task_state_store.py::TestTiSelfEnforcement::test_clear_with_wrong_ti_token_returns_403", "test_task_store.py::TestTiSelfEnforcement::test_clear_with_wrong_ti_token_returns_403"}, fleet: true,
			run: func(t *testing.T, e *taskStoreEnv, tis map[int]storeTI) {
				wrongTI(t, map[int]storeTI{-1: tis[0]}, tis[1], "DELETE", "", "")
			}},
	}
}

// wantReason requires a {"detail": {"reason": reason, …}} body.
func wantReason(t *testing.T, r *response, reason string) {
	t.Helper()
	var b struct {
		Detail struct {
			Reason string `json:"reason"`
		} `json:"detail"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil || b.Detail.Reason != reason {
		t.Errorf("%s: detail.reason is not %q", r, reason)
	}
}

// indexes of a case's tries.
func (c taskStoreCase) indexes() []int {
	if c.fleet {
		return []int{0, 1, 2}
	}
	return []int{-1}
}

func runTaskStoreCases(t *testing.T, e *taskStoreEnv, cases []taskStoreCase) {
	for i, c := range cases {
		t.Run(c.names[0], func(t *testing.T) { c.run(t, e, e.tis[i]) })
	}
}

func TestConformanceTaskStoreEmbedded(t *testing.T) {
	dataDir := newDataDir(t)
	cases := taskStoreCases()
	const dag, run = "store_dag", "manual__2026-12-01T00:00:00+00:00"
	queuedTIs := map[int]map[int]queued{}
	for i, c := range cases {
		queuedTIs[i] = map[int]queued{}
		for _, mi := range c.indexes() {
			queuedTIs[i][mi] = queueTask(t, dataDir, dag, run, fmt.Sprintf("c%d", i), "--map-index", fmt.Sprint(mi))
		}
	}
	srv := startServer(t, dataDir)
	m := newMinter(t, dataDir)
	e := &taskStoreEnv{base: srv.URL, tis: map[int]map[int]storeTI{},
		row:   func(*testing.T, queued, string) (string, *time.Time, bool, bool) { return "", nil, false, false },
		forge: func(_ *testing.T, id string) string { return m.execution(id) }}
	for i, byIndex := range queuedTIs {
		e.tis[i] = map[int]storeTI{}
		for mi, q := range byIndex {
			e.tis[i][mi] = storeTI{q: q, w: newWorker(t, srv.URL, startedToken(t, srv.URL, q))}
		}
	}
	runTaskStoreCases(t, e, cases)
}

func TestConformanceTaskStorePostgres(t *testing.T) {
	d := newPGDeployment(t)
	cases := taskStoreCases()
	r := d.insertDagRun("store_dag", "manual__2026-12-01T00:00:00+00:00")
	m := d.minter(t)
	queuedTIs := map[int]map[int]queued{}
	for i, c := range cases {
		queuedTIs[i] = map[int]queued{}
		for _, mi := range c.indexes() {
			mi := mi
			row := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.dagID, RunID: r.runID, TaskID: fmt.Sprintf("c%d", i),
				MapIndex: &mi, TryNumber: 1})
			queuedTIs[i][mi] = afTI{run: r, id: row.ID, taskID: row.TaskID, mapIndex: mi, tryNumber: 1}.q(m)
		}
	}
	srv := d.startReplica(t)
	e := &taskStoreEnv{base: srv.URL, tis: map[int]map[int]storeTI{},
		forge: func(_ *testing.T, id string) string { return m.execution(id) },
		row: func(t *testing.T, q queued, key string) (string, *time.Time, bool, bool) {
			var v string
			var exp *time.Time
			err := d.pool.QueryRow(context.Background(), `SELECT value, expires_at FROM taskgate.task_state_store
				WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = $4 AND key = $5`,
				q.DagID, q.RunID, q.TaskID, q.MapIndex, key).Scan(&v, &exp)
			if errors.Is(err, pgx.ErrNoRows) {
				return "", nil, false, true
			}
			if err != nil {
				t.Fatal(err)
			}
			return v, exp, true, true
		}}
	for i, byIndex := range queuedTIs {
		e.tis[i] = map[int]storeTI{}
		for mi, q := range byIndex {
			e.tis[i][mi] = storeTI{q: q, w: newWorker(t, srv.URL, startedToken(t, srv.URL, q))}
		}
	}
	runTaskStoreCases(t, e, cases)
}

// TestTaskStoreClearOnSuccess: with [state_store] clear_on_success a task's
// success clears its map index's keys, as Airflow's ti_update_state does;
// without it (the default) they stay, for the callbacks that still read
// them and for the rest of the dag run.
func TestTaskStoreClearOnSuccess(t *testing.T) {
	for _, clear := range []bool{false, true} {
		t.Run(fmt.Sprintf("clear_on_success=%v", clear), func(t *testing.T) {
			dataDir := newDataDir(t)
			q := queueTask(t, dataDir, "store_dag", "manual__2026-12-01T00:00:00+00:00", "t")
			srv := startServer(t, dataDir, fmt.Sprintf("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS=%v", clear))
			w := newWorker(t, srv.URL, startedToken(t, srv.URL, q))
			wantNoContent(t, w.do("PUT", taskStorePath(q.TIID, "job_id"), `{"value":"spark_001"}`), 204)
			wantNoContent(t, w.do("PATCH", tiPath(q.TIID, "state"), successPayload(t)), 204)
			// The try's callbacks may still read, within the overtime.
			r := w.do("GET", taskStorePath(q.TIID, "job_id"), "")
			if clear {
				wantJSON(t, r, 404, `{"detail":{"reason":"not_found","message":"Task state store key 'job_id' not found"}}`)
			} else {
				wantJSON(t, r, 200, `{"value":"spark_001"}`)
			}
		})
	}
}
