package integration_test

import (
	"context"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/workload"
)

// Airflow's test_task_instances.py (apache/airflow
// 0085294cc6ca7d744f2ac9edc92cdda5a7c02640) for the task-instance queries
// (count, states, previous), the rendered map index, and the lifecycle
// routes, against the real binary on the embedded store. Airflow makes its
// fixtures with dag_maker and create_task_instance (the scheduler's rows);
// here they are written into the data directory's bbolt file through the
// store package before the binary starts. Dag ids differ from Airflow's
// where Airflow's tests share the default "dag" across cases of one server.

// tiFixture is one task instance written before the server starts.
type tiFixture struct {
	dag, run, task string
	mapIndex       int
	state          string
	// logical is the dag run's logical date (the first fixture of a run
	// decides it); zero: 2024-10-31T12:00:00Z. noLogical: none.
	logical   time.Time
	noLogical bool
	// The dag run's state ("running" when empty), start and end, and data
	// interval (the logical date when unset).
	runState                   string
	runStart, runEnd           *time.Time
	intervalStart, intervalEnd *time.Time
}

var defaultLogicalDate = time.Date(2024, 10, 31, 12, 0, 0, 0, time.UTC)

// seedTaskInstances writes the fixtures into dataDir's store, which must
// exist and be closed (no server running).
func seedTaskInstances(t *testing.T, dataDir string, fx []tiFixture) map[string]string {
	t.Helper()
	db, err := store.Open(filepath.Join(dataDir, "taskgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	ids := map[string]string{}
	for _, f := range fx {
		logical := f.logical
		if logical.IsZero() {
			logical = defaultLogicalDate
		}
		dr := workload.DagRun{DagID: f.dag, RunID: f.run, LogicalDate: &logical, DataIntervalStart: &logical,
			DataIntervalEnd: &logical, RunAfter: logical, StartDate: &logical, RunType: "manual", State: "running",
			Conf: []byte("{}")}
		if f.noLogical {
			dr.LogicalDate = nil
		}
		if f.runState != "" {
			dr.State = f.runState
		}
		if f.runStart != nil {
			dr.StartDate = f.runStart
		}
		dr.EndDate = f.runEnd
		if f.intervalStart != nil {
			dr.DataIntervalStart, dr.DataIntervalEnd = f.intervalStart, f.intervalEnd
		}
		ti := workload.TaskInstance{ID: uuid.NewString(), DagID: f.dag, RunID: f.run, TaskID: f.task,
			MapIndex: f.mapIndex, TryNumber: 1, PoolSlots: 1, Queue: "default", PriorityWeight: 1,
			State: workload.State(f.state), UpdatedAt: logical}
		if _, err := db.InsertTaskInstance(context.Background(), dr, ti, nil); err != nil {
			t.Fatal(err)
		}
		ids[f.dag+"/"+f.run+"/"+f.task+"/"+strconv.Itoa(f.mapIndex)] = ti.ID
	}
	return ids
}

// tiQueryEnv is a server over the fixtures and a running task's worker,
// whose execution token the queries take.
type tiQueryEnv struct {
	dataDir string
	srv     *server
	caller  queued
	w       *worker
	ids     map[string]string
}

func newTIQueryEnv(t *testing.T, fx []tiFixture) *tiQueryEnv {
	t.Helper()
	dataDir := newDataDir(t)
	caller := queueTask(t, dataDir, "conformance_caller", "manual__caller", "caller")
	ids := seedTaskInstances(t, dataDir, fx)
	srv := startServer(t, dataDir, noAuthLimit)
	return &tiQueryEnv{dataDir: dataDir, srv: srv, caller: caller, ids: ids,
		w: newWorker(t, srv.URL, startedToken(t, srv.URL, caller))}
}

// query encodes parameters as httpx does (repeated keys for lists).
func query(path string, kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

func d(y, m, day, h int) time.Time { return time.Date(y, time.Month(m), day, h, 0, 0, 0, time.UTC) }

// mapped is task op at map index -1 plus task mt at 0, 1, 2, as dag_maker
// expands a literal list of three.
func mapped(dag, run, op, mt string, states map[int]string) []tiFixture {
	out := []tiFixture{{dag: dag, run: run, task: op, mapIndex: -1, state: states[-1]}}
	for i := 0; i < 3; i++ {
		out = append(out, tiFixture{dag: dag, run: run, task: mt, mapIndex: i, state: states[i]})
	}
	return out
}

func TestConformanceTaskInstanceCountAndStates(t *testing.T) {
	all := map[int]string{-1: "success", 0: "success", 1: "success", 2: "success"}
	fx := []tiFixture{
		{dag: "dag", run: "test", task: "test_task", mapIndex: -1, state: "success"},
		{dag: "test_get_count_with_task_ids", run: "test_run_id0", task: "task0", mapIndex: -1, state: "success"},
		{dag: "test_get_count_with_task_ids", run: "test_run_id1", task: "task1", mapIndex: -1, state: "success"},
		{dag: "test_get_count_with_task_ids", run: "test_run_id2", task: "task2", mapIndex: -1, state: "success"},
		{dag: "test_get_count_with_states", run: "r", task: "task1", mapIndex: -1, state: "success"},
		{dag: "test_get_count_with_states", run: "r", task: "task2", mapIndex: -1, state: "failed"},
		{dag: "test_get_count_with_states", run: "r", task: "task3", mapIndex: -1, state: "skipped"},
		{dag: "test_get_count_with_logical_dates", run: "test_run_id1", task: "task1", mapIndex: -1, logical: d(2025, 1, 1, 0)},
		{dag: "test_get_count_with_logical_dates", run: "test_run_id2", task: "task1", mapIndex: -1, logical: d(2025, 1, 2, 0)},
		{dag: "test_get_count_with_logical_dates", run: "test_run_id3", task: "task1", mapIndex: -1, logical: d(2025, 1, 3, 0)},
		{dag: "test_get_count_with_run_ids", run: "run1", task: "task1", mapIndex: -1},
		{dag: "test_get_count_with_run_ids", run: "run2", task: "task1", mapIndex: -1},
		{dag: "test_get_count_with_run_ids", run: "run3", task: "task1", mapIndex: -1},
		{dag: "get_count_with_none", run: "test", task: "task1", mapIndex: -1},
		{dag: "mixed_states", run: "runid1", task: "task1", mapIndex: -1, state: "success"},
		{dag: "mixed_states", run: "runid2", task: "task2", mapIndex: -1},
		{dag: "mixed_states", run: "runid3", task: "task3", mapIndex: -1, state: "failed"},
		{dag: "map_index_test", run: "runid1", task: "task1", mapIndex: -1, state: "success"},
		{dag: "multi_mi", run: "r", task: "task1", mapIndex: -1, state: "success"},
		{dag: "multi_mi", run: "r", task: "task2", mapIndex: -1, state: "failed"},
		{dag: "multi_mi", run: "r", task: "task3", mapIndex: -1, state: "skipped"},
		{dag: "multi_mi", run: "r", task: "mapped", mapIndex: 0, state: "success"},
	}
	fx = append(fx, mapped("count_dyn", "r", "op1", "add_one", all)...)
	// A mapped task group: task1, group1.add_one[0..2], group1.task2, no state.
	fx = append(fx, mapped("count_mix", "r", "task1", "group1.add_one", nil)...)
	fx = append(fx, tiFixture{dag: "count_mix", run: "r", task: "group1.task2", mapIndex: -1})
	fx = append(fx, mapped("states_dyn_none", "r", "task1", "add_one", all)...)
	fx = append(fx, mapped("states_dyn_0", "r", "task1", "add_one", map[int]string{-1: "success", 0: "failed", 1: "success", 2: "success"})...)
	fx = append(fx, mapped("states_dyn_1", "r", "task1", "add_one", map[int]string{-1: "success", 0: "success", 1: "failed", 2: "success"})...)
	fx = append(fx, mapped("states_mix", "r", "task1", "group1.add_one", all)...)
	fx = append(fx, tiFixture{dag: "states_mix", run: "r", task: "group1.task2", mapIndex: -1, state: "success"})
	fx = append(fx, mapped("states_mix_0", "r", "task1", "group1.add_one", map[int]string{-1: "success", 0: "failed", 1: "success", 2: "success"})...)
	fx = append(fx, tiFixture{dag: "states_mix_0", run: "r", task: "group1.task2", mapIndex: -1, state: "success"})
	env := newTIQueryEnv(t, fx)

	const count = "/execution/task-instances/count"
	dagNotFound := `{"detail":{"reason":"not_found","message":"The Dag with ID: ` + "`non_existent_dag`" + ` was not found"}}`
	for _, c := range []struct {
		name   string
		path   string
		status int
		want   string
	}{
		{"test_task_instances.py::TestGetCount::test_get_count_basic", query(count, "dag_id", "dag"), 200, `1`},
		{"test_task_instances.py::TestGetCount::test_get_count_with_task_ids",
			query(count, "dag_id", "test_get_count_with_task_ids", "task_ids", "task1", "task_ids", "task2"), 200, `2`},
		{"test_task_instances.py::TestGetCount::test_get_count_with_states",
			query(count, "dag_id", "test_get_count_with_states", "states", "success", "states", "failed"), 200, `2`},
		{"test_task_instances.py::TestGetCount::test_get_count_with_logical_dates",
			query(count, "dag_id", "test_get_count_with_logical_dates", "logical_dates", "2025-01-01T00:00:00+00:00",
				"logical_dates", "2025-01-02T00:00:00+00:00"), 200, `2`},
		{"test_task_instances.py::TestGetCount::test_get_count_with_run_ids",
			query(count, "dag_id", "test_get_count_with_run_ids", "run_ids", "run1", "run_ids", "run2"), 200, `2`},
		{"test_task_instances.py::TestGetCount::test_get_count_dag_not_found",
			query(count, "dag_id", "non_existent_dag", "task_group_id", "group1"), 404, dagNotFound},
		{"test_task_instances.py::TestGetCount::test_get_count_with_none_state",
			query(count, "dag_id", "get_count_with_none", "states", "null"), 200, `1`},
		{"test_task_instances.py::TestGetCount::test_get_count_with_mixed_states",
			query(count, "dag_id", "mixed_states", "states", "success", "states", "null"), 200, `2`},
		{"test_task_instances.py::TestGetCount::test_get_count_with_map_index_less_than_zero",
			query(count, "dag_id", "map_index_test", "states", "success", "map_index", "-1"), 200, `1`},
		{"test_task_instances.py::TestGetCount::test_get_count_with_multiple_tasks_and_map_index_less_than_zero",
			query(count, "dag_id", "multi_mi", "map_index", "-1"), 200, `3`},
		{"test_task_instances.py::TestGetCount::test_get_count_for_dynamic_task_mapping[use-default-map-index]",
			query(count, "dag_id", "count_dyn", "run_ids", "r"), 200, `4`},
		{"test_task_instances.py::TestGetCount::test_get_count_for_dynamic_task_mapping[map-index-(-1)]",
			query(count, "dag_id", "count_dyn", "run_ids", "r", "map_index", "-1"), 200, `1`},
		{"test_task_instances.py::TestGetCount::test_get_count_for_dynamic_task_mapping[map-index-0]",
			query(count, "dag_id", "count_dyn", "run_ids", "r", "map_index", "0"), 200, `1`},
		{"test_task_instances.py::TestGetCount::test_get_count_for_dynamic_task_mapping[map-index-1]",
			query(count, "dag_id", "count_dyn", "run_ids", "r", "map_index", "1"), 200, `1`},
		{"test_task_instances.py::TestGetCount::test_get_count_for_dynamic_task_mapping[map-index-2]",
			query(count, "dag_id", "count_dyn", "run_ids", "r", "map_index", "2"), 200, `1`},
		{"test_task_instances.py::TestGetCount::test_get_count_mix_of_task_and_task_group_dynamic_task_mapping[use-default-map-index-None]",
			query(count, "dag_id", "count_mix", "run_ids", "r"), 200, `5`},
		{"test_task_instances.py::TestGetCount::test_get_count_mix_of_task_and_task_group_dynamic_task_mapping[with-map-index-0-no-task-group]",
			query(count, "dag_id", "count_mix", "run_ids", "r", "map_index", "0"), 200, `1`},
		{"test_task_instances.py::TestGetCount::test_get_count_mix_of_task_and_task_group_dynamic_task_mapping[with-task-ids-and-map-index-(-1)]",
			query(count, "dag_id", "count_mix", "run_ids", "r", "task_ids", "task1", "map_index", "-1"), 200, `1`},
		// FastAPI's validation of the query (no Airflow case).
		{"count: dag_id is required", count, 422,
			`{"detail":[{"type":"missing","loc":["query","dag_id"],"msg":"Field required","input":null}]}`},
		{"count: map_index is an integer", query(count, "dag_id", "dag", "map_index", "x"), 422,
			`{"detail":[{"type":"int_parsing","loc":["query","map_index"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"x"}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantJSON(t, env.w.do("GET", c.path, ""), c.status, c.want)
		})
	}

	const states = "/execution/task-instances/states"
	for _, c := range []struct {
		name   string
		path   string
		status int
		want   string
	}{
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_basic", query(states, "dag_id", "dag"), 200,
			`{"task_states":{"test":{"test_task":"success"}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_dag_not_found",
			query(states, "dag_id", "non_existent_dag", "task_group_id", "group1"), 404, dagNotFound},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_for_dynamic_task_mapping[with-default-map-index-None]",
			query(states, "dag_id", "states_dyn_none"), 200,
			`{"task_states":{"r":{"task1":"success","add_one_0":"success","add_one_1":"success","add_one_2":"success"}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_for_dynamic_task_mapping[with-map-index-0]",
			query(states, "dag_id", "states_dyn_0", "map_index", "0"), 200, `{"task_states":{"r":{"add_one_0":"failed"}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_for_dynamic_task_mapping[with-map-index-1]",
			query(states, "dag_id", "states_dyn_1", "map_index", "1"), 200, `{"task_states":{"r":{"add_one_1":"failed"}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_mix_of_task_and_task_group_dynamic_task_mapping[with-default-map-index-None]",
			query(states, "dag_id", "states_mix"), 200,
			`{"task_states":{"r":{"group1.add_one_0":"success","group1.add_one_1":"success","group1.add_one_2":"success","group1.task2":"success","task1":"success"}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_mix_of_task_and_task_group_dynamic_task_mapping[with-map-index-0-no-task-group]",
			query(states, "dag_id", "states_mix_0", "map_index", "0"), 200, `{"task_states":{"r":{"group1.add_one_0":"failed"}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_mix_of_task_and_task_group_dynamic_task_mapping[with-task-ids-map-index-(-1)]",
			query(states, "dag_id", "states_mix", "task_ids", "task1", "map_index", "-1"), 200, `{"task_states":{"r":{"task1":"success"}}}`},
		{"states: a task instance without a state is null", query(states, "dag_id", "mixed_states"), 200,
			`{"task_states":{"runid1":{"task1":"success"},"runid2":{"task2":null},"runid3":{"task3":"failed"}}}`},
		{"states: no match", query(states, "dag_id", "nothing_here"), 200, `{"task_states":{}}`},
		{"states: logical_dates are datetimes", query(states, "dag_id", "dag", "logical_dates", "yesterday"), 422,
			`{"detail":[{"type":"datetime_from_date_parsing","loc":["query","logical_dates",0],"msg":"Input should be a valid datetime or date, invalid character in year","input":"yesterday"}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantJSON(t, env.w.do("GET", c.path, ""), c.status, c.want)
		})
	}

	// The static segments are routes of their own, and below them the
	// task-instance routes see an id the token does not name.
	for _, p := range []string{"count", "states", "breadcrumbs", "previous"} {
		wantJSON(t, env.w.do("PATCH", "/execution/task-instances/"+p+"/state",
			`{"state":"success","end_date":"2024-10-31T12:00:00Z"}`), 403,
			`{"detail":"Token subject does not match task instance ID"}`)
	}
}

func TestConformanceTaskInstancePrevious(t *testing.T) {
	fx := []tiFixture{
		{dag: "dag", run: "run1", task: "test_task", mapIndex: -1, state: "success", logical: d(2025, 1, 1, 0)},
		{dag: "dag", run: "run2", task: "test_task", mapIndex: -1, state: "success", logical: d(2025, 1, 2, 0)},
		{dag: "prev_state", run: "run1", task: "test_task", mapIndex: -1, state: "failed", logical: d(2025, 1, 1, 0)},
		{dag: "prev_state", run: "run2", task: "test_task", mapIndex: -1, state: "success", logical: d(2025, 1, 2, 0)},
		{dag: "prev_state", run: "run3", task: "test_task", mapIndex: -1, state: "failed", logical: d(2025, 1, 3, 0)},
		{dag: "prev_map", run: "run1", task: "test_task", mapIndex: 0, state: "success", logical: d(2025, 1, 1, 0)},
		{dag: "prev_map", run: "run1_alt", task: "test_task", mapIndex: 1, state: "success", logical: d(2025, 1, 1, 12)},
		{dag: "prev_map", run: "run2", task: "test_task", mapIndex: 0, state: "success", logical: d(2025, 1, 2, 0)},
		{dag: "prev_all", run: "target_run_1", task: "test_task", mapIndex: 0, state: "success", logical: d(2025, 1, 1, 0)},
		{dag: "prev_all", run: "target_run_2", task: "test_task", mapIndex: 0, state: "failed", logical: d(2025, 1, 2, 0)},
		{dag: "prev_all", run: "target_run_3", task: "test_task", mapIndex: 1, state: "success", logical: d(2025, 1, 3, 0)},
	}
	for i := 1; i <= 5; i++ {
		fx = append(fx, tiFixture{dag: "prev_recent", run: "run" + strconv.Itoa(i), task: "test_task", mapIndex: -1,
			state: "success", logical: d(2025, 1, i, 0)})
	}
	env := newTIQueryEnv(t, fx)
	prev := func(dag string) string { return "/execution/task-instances/previous/" + dag + "/test_task" }
	body := func(dag, run, state string, mapIndex int, logical string) string {
		return `{"task_id":"test_task","dag_id":"` + dag + `","run_id":"` + run + `","logical_date":"` + logical +
			`","start_date":null,"end_date":null,"state":"` + state + `","try_number":1,"map_index":` +
			strconv.Itoa(mapIndex) + `,"duration":null}`
	}
	for _, c := range []struct {
		name   string
		path   string
		status int
		want   string
	}{
		{"test_task_instances.py::TestGetPreviousTI::test_get_previous_ti_basic",
			query(prev("dag"), "logical_date", "2025-01-02T00:00:00Z"), 200,
			body("dag", "run1", "success", -1, "2025-01-01T00:00:00Z")},
		{"test_task_instances.py::TestGetPreviousTI::test_get_previous_ti_with_state_filter",
			query(prev("prev_state"), "logical_date", "2025-01-03T00:00:00Z", "state", "success"), 200,
			body("prev_state", "run2", "success", -1, "2025-01-02T00:00:00Z")},
		{"test_task_instances.py::TestGetPreviousTI::test_get_previous_ti_with_map_index_filter",
			query(prev("prev_map"), "logical_date", "2025-01-02T00:00:00Z", "map_index", "0"), 200,
			body("prev_map", "run1", "success", 0, "2025-01-01T00:00:00Z")},
		{"test_task_instances.py::TestGetPreviousTI::test_get_previous_ti_not_found", prev("prev_not_found"), 200, `null`},
		{"test_task_instances.py::TestGetPreviousTI::test_get_previous_ti_returns_most_recent",
			query(prev("prev_recent"), "logical_date", "2025-01-05T00:00:00Z"), 200,
			body("prev_recent", "run4", "success", -1, "2025-01-04T00:00:00Z")},
		{"test_task_instances.py::TestGetPreviousTI::test_get_previous_ti_with_all_filters",
			query(prev("prev_all"), "logical_date", "2025-01-03T00:00:00Z", "state", "success", "map_index", "0"), 200,
			body("prev_all", "target_run_1", "success", 0, "2025-01-01T00:00:00Z")},
		{"previous: no logical date, the latest run", prev("prev_recent"), 200,
			body("prev_recent", "run5", "success", -1, "2025-01-05T00:00:00Z")},
		{"previous: state is a TaskInstanceState", query(prev("dag"), "state", "bogus"), 422,
			`{"detail":[{"type":"enum","loc":["query","state"],"msg":"Input should be 'removed', 'scheduled', 'queued', 'running', 'success', 'restarting', 'failed', 'up_for_retry', 'up_for_reschedule', 'upstream_failed', 'skipped', 'deferred' or 'awaiting_input'","input":"bogus","ctx":{"expected":"'removed', 'scheduled', 'queued', 'running', 'success', 'restarting', 'failed', 'up_for_retry', 'up_for_reschedule', 'upstream_failed', 'skipped', 'deferred' or 'awaiting_input'"}}]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantJSON(t, env.w.do("GET", c.path, ""), c.status, c.want)
		})
	}
}

func TestConformanceTaskInstanceRenderedMapIndex(t *testing.T) {
	env := newTIQueryEnv(t, nil)
	path := tiPath(env.caller.TIID, "rendered-map-index")
	t.Run("test_task_instances.py::TestTIPatchRenderedMapIndex::test_ti_patch_rendered_map_index", func(t *testing.T) {
		wantNoContent(t, env.w.do("PATCH", path, `"custom_label_123"`), 204)
	})
	t.Run("test_task_instances.py::TestTIPatchRenderedMapIndex::test_ti_patch_rendered_map_index_empty_string", func(t *testing.T) {
		wantJSON(t, env.w.do("PATCH", path, `""`), 422, `{"detail":"rendered_map_index cannot be empty"}`)
	})
	t.Run("test_task_instances.py::TestTIPatchRenderedMapIndex::test_ti_patch_rendered_map_index_not_found", func(t *testing.T) {
		fake := uuid.NewString()
		w := newWorker(t, env.srv.URL, newMinter(t, env.dataDir).execution(fake))
		wantJSON(t, w.do("PATCH", tiPath(fake, "rendered-map-index"), `"test"`), 404,
			`{"detail":{"reason":"not_found","message":"Task Instance not found"}}`)
	})
	t.Run("rendered map index: the body is a string", func(t *testing.T) {
		wantJSON(t, env.w.do("PATCH", path, `{"x":1}`), 422,
			`{"detail":[{"type":"string_type","loc":["body"],"msg":"Input should be a valid string","input":{"x":1}}]}`)
	})
	env.srv.stop()
	db, err := store.Open(filepath.Join(env.dataDir, "taskgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ti, err := db.TaskInstance(context.Background(), env.caller.TIID)
	if err != nil || ti.RenderedMapIndex == nil || *ti.RenderedMapIndex != "custom_label_123" {
		t.Errorf("rendered_map_index after the PATCH: %+v, %v", ti, err)
	}
}

func TestConformancePreviousSuccessfulDagRun(t *testing.T) {
	tp := func(tm time.Time) *time.Time { return &tm }
	env := newTIQueryEnv(t, []tiFixture{
		{dag: "test_dag", run: "test", task: "test_ti_previous_dag_run", mapIndex: -1, state: "running",
			logical: d(2025, 1, 19, 0)},
		{dag: "test_dag", run: "test_run_id_1", task: "other", mapIndex: -1, state: "success", logical: d(2025, 1, 17, 0),
			runState: "success", runStart: tp(d(2024, 1, 17, 0)), runEnd: tp(d(2025, 1, 17, 1)),
			intervalStart: tp(d(2025, 1, 16, 0)), intervalEnd: tp(d(2025, 1, 17, 0))},
		{dag: "test_dag", run: "test_run_id_2", task: "other", mapIndex: -1, state: "success", logical: d(2025, 1, 18, 0),
			runState: "success", runStart: tp(d(2024, 1, 17, 0)), runEnd: tp(d(2025, 1, 18, 1)),
			intervalStart: tp(d(2025, 1, 18, 0)), intervalEnd: tp(d(2025, 1, 19, 0))},
		{dag: "none_dag", run: "none_run", task: "test_ti_with_none_as_logical_date", mapIndex: -1, state: "running",
			noLogical: true},
		{dag: "none_dag", run: "test_ti_with_none_as_logical_date", task: "other", mapIndex: -1, state: "success",
			logical: d(2025, 1, 17, 0), runState: "success", runEnd: tp(d(2025, 1, 17, 1))},
	})
	m := newMinter(t, env.dataDir)
	get := func(key string) *response {
		id := env.ids[key]
		return newWorker(t, env.srv.URL, m.execution(id)).do("GET", tiPath(id, "previous-successful-dagrun"), "")
	}
	t.Run("test_task_instances.py::TestPreviousDagRun::test_ti_previous_dag_run", func(t *testing.T) {
		wantJSON(t, get("test_dag/test/test_ti_previous_dag_run/-1"), 200,
			`{"data_interval_start":"2025-01-18T00:00:00Z","data_interval_end":"2025-01-19T00:00:00Z","start_date":"2024-01-17T00:00:00Z","end_date":"2025-01-18T01:00:00Z"}`)
	})
	t.Run("test_task_instances.py::TestPreviousDagRun::test_ti_with_none_as_logical_date", func(t *testing.T) {
		wantJSON(t, get("none_dag/none_run/test_ti_with_none_as_logical_date/-1"), 200,
			`{"data_interval_start":null,"data_interval_end":null,"start_date":null,"end_date":null}`)
	})
}
