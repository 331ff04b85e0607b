package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/workload"
)

// The task_group_id of the task-instance queries (Airflow's
// _get_group_tasks in test_task_instances.py's TestGetCount and
// TestGetTaskStates): the tasks of a group of the DAG's latest serialized
// DAG, on the embedded store as a DAG processor published it (the
// publication keeps the groups with the DAG's record), on Airflow's
// database as the DAG processor writes serialized_dag. Each Airflow test
// runs on a fresh database with its own dag_maker DAG; here each has its
// own dag id.

// tgNode is a task group's child as TaskGroupSerialization writes it: a
// task (["operator", task_id]) or a nested group (["taskgroup", {…}]).
type tgNode struct {
	task     string
	group    string
	children []tgNode
}

func tgTask(id string) tgNode                      { return tgNode{task: id} }
func tgGroup(id string, children ...tgNode) tgNode { return tgNode{group: id, children: children} }

func prefixed(parent, id string) string {
	if parent == "" {
		return id
	}
	return parent + "." + id
}

// encodeTaskGroup writes the group (its full id gid) as serialize_task_group does,
// and appends its tasks' ids to tasks.
func encodeTaskGroup(rawID any, gid string, children []tgNode, tasks *[]string) map[string]any {
	kids := map[string]any{}
	for _, c := range children {
		if c.task != "" {
			kids[c.task] = []any{"operator", c.task}
			*tasks = append(*tasks, c.task)
			continue
		}
		full := prefixed(gid, c.group)
		kids[full] = []any{"taskgroup", encodeTaskGroup(c.group, full, c.children, tasks)}
	}
	return map[string]any{"_group_id": rawID, "group_display_name": "", "prefix_group_id": true, "tooltip": "",
		"ui_color": "CornflowerBlue", "ui_fgcolor": "#000", "children": kids, "upstream_group_ids": []any{},
		"downstream_group_ids": []any{}, "upstream_task_ids": []any{}, "downstream_task_ids": []any{}}
}

// groupedDag is a serialized DAG whose root task group has children.
func groupedDag(dagID string, children ...tgNode) map[string]any {
	var taskIDs []string
	root := encodeTaskGroup(nil, "", children, &taskIDs)
	sort.Strings(taskIDs)
	tasks := make([]any, len(taskIDs))
	for i, id := range taskIDs {
		tasks[i] = pgtest.OperatorJSON(id, nil, nil)
	}
	return map[string]any{"__version": 3, "dag": map[string]any{
		"dag_id": dagID, "fileloc": "/opt/airflow/dags/" + dagID + ".py", "relative_fileloc": dagID + ".py",
		"timezone": "UTC", "tasks": tasks, "dag_dependencies": []any{}, "task_group": root,
		"timetable": map[string]any{"__type": "airflow.timetables.simple.NullTimetable", "__var": map[string]any{}},
	}}
}

// publishSerializedDags publishes each document into dataDir's store (no
// server running) as a DAG processor's parse result of its own file, in
// order.
func publishSerializedDags(t *testing.T, dataDir string, docs []map[string]any) {
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
	ctx := context.Background()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const sess = "00000000-0000-0000-0000-0000000000ab"
	job, err := db.RegisterJob(ctx, "00000000-0000-0000-0000-00000000000b", sess,
		func(_, _ *workload.Job) (workload.JobDecision, error) {
			return workload.JobDecision{Insert: &workload.Job{JobType: workload.DagProcessorJobType,
				State: workload.JobRunning, StartDate: now, LatestHeartbeat: now, BundleNames: []string{"dags-folder"}}}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range docs {
		raw, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		d, err := workload.ParseSerializedDag(raw)
		if err != nil {
			t.Fatal(err)
		}
		seq := int64(i + 1)
		r := &workload.ParseResult{JobID: job.ID, SessionID: sess, AttemptID: fmt.Sprint("attempt-", seq),
			DispatchSequence: seq, BundleName: "dags-folder", RelativeFileloc: d.RelativeFileloc,
			Dags: []workload.ParsedDag{d}, PayloadHash: fmt.Sprint(seq),
			SourceKey: workload.SourceKey("dags-folder", d.RelativeFileloc)}
		if _, err := db.PublishParseResult(ctx, r, now.Add(time.Duration(i)*time.Second),
			func(s workload.ParseState) (*workload.ParseReceipt, error) { return workload.DecideParseResult(r, s) }); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConformanceTaskGroupQueries(t *testing.T) {
	// group1 of Airflow's mix tests: add_one (expanded over three values)
	// and task2.
	mappedGroup := tgGroup("group1", tgTask("group1.add_one"), tgTask("group1.task2"))
	// The serialized DAGs, in publication order: tg_latest twice, the
	// second version without old_group.
	dags := []map[string]any{
		groupedDag("test_dag", tgGroup("group1", tgTask("group1.task1"), tgTask("group1.task2")),
			tgGroup("group2", tgTask("group2.task3")), tgGroup("group3", tgTask("group3.task4"))),
		groupedDag("test_get_count_task_group_not_found", tgGroup("group1", tgTask("group1.task1"))),
		groupedDag("tg_count_mix", tgTask("task1"), mappedGroup),
		groupedDag("tg_nested", tgGroup("outer", tgTask("outer.a"), tgGroup("inner", tgTask("outer.inner.b")))),
		groupedDag("tg_states_basic", tgGroup("group1", tgTask("group1.task1"))),
		groupedDag("tg_states_and_task", tgGroup("group1", tgTask("group1.task1")), tgTask("task2")),
		groupedDag("test_get_task_group_states_with_multiple_task_tasks",
			tgGroup("group1", tgTask("group1.task1"), tgTask("group1.task2"), tgTask("group1.task3"))),
		groupedDag("test_get_task_group_states_with_logical_dates", tgGroup("group1", tgTask("group1.task1"))),
		groupedDag("test_get_task_group_states_with_run_ids", tgGroup("group1", tgTask("group1.task1"))),
		groupedDag("test_get_task_states_task_group_not_found", tgGroup("group1", tgTask("group1.task1"))),
		groupedDag("tg_states_mix", tgTask("task1"), mappedGroup),
		groupedDag("tg_states_mix_0", tgTask("task1"), mappedGroup),
		groupedDag("tg_latest", tgGroup("old_group", tgTask("old_group.t"))),
		groupedDag("tg_latest", tgGroup("new_group", tgTask("new_group.t"))),
	}
	all := map[int]string{-1: "success", 0: "success", 1: "success", 2: "success"}
	var fx []tiFixture
	add := func(dag, run string, logical time.Time, tasks map[string]string) {
		keys := make([]string, 0, len(tasks))
		for k := range tasks {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fx = append(fx, tiFixture{dag: dag, run: run, task: k, mapIndex: -1, state: tasks[k], logical: logical})
		}
	}
	add("test_dag", "test", time.Time{}, map[string]string{"group1.task1": "", "group1.task2": "", "group2.task3": ""})
	add("test_get_count_task_group_not_found", "test", time.Time{}, map[string]string{"group1.task1": ""})
	fx = append(fx, mapped("tg_count_mix", "r", "task1", "group1.add_one", nil)...)
	add("tg_count_mix", "r", time.Time{}, map[string]string{"group1.task2": ""})
	add("tg_nested", "test", time.Time{}, map[string]string{"outer.a": "success", "outer.inner.b": "failed"})
	add("tg_states_basic", "test", time.Time{}, map[string]string{"group1.task1": ""})
	add("tg_states_and_task", "test", time.Time{}, map[string]string{"group1.task1": "success", "task2": "failed"})
	add("test_get_task_group_states_with_multiple_task_tasks", "test", time.Time{},
		map[string]string{"group1.task1": "success", "group1.task2": "failed", "group1.task3": "skipped"})
	for i, run := range []string{"test_run_id1", "test_run_id2", "test_run_id3"} {
		add("test_get_task_group_states_with_logical_dates", run, d(2025, 1, i+1, 0), map[string]string{"group1.task1": ""})
	}
	for i, run := range []string{"run1", "run2", "run3"} {
		add("test_get_task_group_states_with_run_ids", run, d(2025, 1, i+1, 0), map[string]string{"group1.task1": ""})
	}
	add("test_get_task_states_task_group_not_found", "test", time.Time{}, map[string]string{"group1.task1": ""})
	fx = append(fx, mapped("tg_states_mix", "r", "task1", "group1.add_one", all)...)
	add("tg_states_mix", "r", time.Time{}, map[string]string{"group1.task2": "success"})
	fx = append(fx, mapped("tg_states_mix_0", "r", "task1", "group1.add_one",
		map[int]string{-1: "success", 0: "failed", 1: "success", 2: "success"})...)
	add("tg_states_mix_0", "r", time.Time{}, map[string]string{"group1.task2": "success"})
	add("tg_latest", "r", time.Time{}, map[string]string{"old_group.t": "success", "new_group.t": "failed"})
	// A DAG known by its runs alone: no serialized version.
	add("tg_runs_only", "r", time.Time{}, map[string]string{"group1.task1": "success"})

	const count, states = "/execution/task-instances/count", "/execution/task-instances/states"
	notFound := func(msg string) string { return `{"detail":{"reason":"not_found","message":"` + msg + `"}}` }
	cases := []struct {
		name   string
		path   string
		status int
		want   string
	}{
		{"test_task_instances.py::TestGetCount::test_get_count_with_task_group",
			query(count, "dag_id", "test_dag", "task_group_id", "group1"), 200, `2`},
		{"test_task_instances.py::TestGetCount::test_get_count_task_group_not_found",
			query(count, "dag_id", "test_get_count_task_group_not_found", "task_group_id", "non_existent_group"), 404,
			notFound("Task group non_existent_group not found in DAG test_get_count_task_group_not_found")},
		{"test_task_instances.py::TestGetCount::test_get_count_mix_of_task_and_task_group_dynamic_task_mapping[with-task-group-id-and-map-index-None]",
			query(count, "dag_id", "tg_count_mix", "run_ids", "r", "task_group_id", "group1"), 200, `4`},
		{"test_task_instances.py::TestGetCount::test_get_count_mix_of_task_and_task_group_dynamic_task_mapping[with-task-group-id-and-map-index-0]",
			query(count, "dag_id", "tg_count_mix", "run_ids", "r", "task_group_id", "group1", "map_index", "0"), 200, `1`},
		{"test_task_instances.py::TestGetCount::test_get_count_mix_of_task_and_task_group_dynamic_task_mapping[with-task-group-id-and-map-index-(-1)]",
			query(count, "dag_id", "tg_count_mix", "run_ids", "r", "task_group_id", "group1", "map_index", "-1"), 200, `1`},
		{"count: a task group and states (null)",
			query(count, "dag_id", "test_dag", "task_group_id", "group1", "states", "null"), 200, `2`},
		{"count: a task group and states (none match)",
			query(count, "dag_id", "test_dag", "task_group_id", "group1", "states", "success"), 200, `0`},
		{"count: a task group and task ids (both apply)",
			query(count, "dag_id", "test_dag", "task_group_id", "group1", "task_ids", "group1.task1", "task_ids", "group2.task3"),
			200, `1`},
		{"count: a task group whose tasks have no task instances",
			query(count, "dag_id", "test_dag", "task_group_id", "group3"), 200, `0`},
		{"count: a task group counts its nested groups' tasks",
			query(count, "dag_id", "tg_nested", "task_group_id", "outer"), 200, `2`},
		{"count: a DAG known by its runs alone has no serialized DAG",
			query(count, "dag_id", "tg_runs_only", "task_group_id", "group1"), 404,
			notFound("The Dag with ID: `tg_runs_only` was not found")},

		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_group_id_basic",
			query(states, "dag_id", "tg_states_basic", "task_group_id", "group1"), 200,
			`{"task_states":{"test":{"group1.task1":null}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_with_task_group_id_and_task_id",
			query(states, "dag_id", "tg_states_and_task", "task_group_id", "group1"), 200,
			`{"task_states":{"test":{"group1.task1":"success"}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_group_states_with_multiple_task",
			query(states, "dag_id", "test_get_task_group_states_with_multiple_task_tasks", "task_group_id", "group1"), 200,
			`{"task_states":{"test":{"group1.task1":"success","group1.task2":"failed","group1.task3":"skipped"}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_group_states_with_logical_dates",
			query(states, "dag_id", "test_get_task_group_states_with_logical_dates", "logical_dates", "2025-01-01T00:00:00+00:00",
				"logical_dates", "2025-01-02T00:00:00+00:00", "task_group_id", "group1"), 200,
			`{"task_states":{"test_run_id1":{"group1.task1":null},"test_run_id2":{"group1.task1":null}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_group_states_with_run_ids",
			query(states, "dag_id", "test_get_task_group_states_with_run_ids", "run_ids", "run1", "run_ids", "run2",
				"task_group_id", "group1"), 200,
			`{"task_states":{"run1":{"group1.task1":null},"run2":{"group1.task1":null}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_task_group_not_found",
			query(states, "dag_id", "test_get_task_states_task_group_not_found", "task_group_id", "non_existent_group"), 404,
			notFound("Task group non_existent_group not found in DAG test_get_task_states_task_group_not_found")},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_mix_of_task_and_task_group_dynamic_task_mapping[with-task-group-id-and-map-index-None]",
			query(states, "dag_id", "tg_states_mix", "task_group_id", "group1"), 200,
			`{"task_states":{"r":{"group1.task2":"success","group1.add_one_0":"success","group1.add_one_1":"success","group1.add_one_2":"success"}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_mix_of_task_and_task_group_dynamic_task_mapping[with-task-group-id-and-map-index-0]",
			query(states, "dag_id", "tg_states_mix_0", "task_group_id", "group1", "map_index", "0"), 200,
			`{"task_states":{"r":{"group1.add_one_0":"failed"}}}`},
		{"test_task_instances.py::TestGetTaskStates::test_get_task_states_mix_of_task_and_task_group_dynamic_task_mapping[with-task-id-and-task-group-map-index-(-1)]",
			query(states, "dag_id", "tg_states_mix", "task_ids", "task1", "task_group_id", "group1", "map_index", "-1"), 200,
			`{"task_states":{"r":{"task1":"success","group1.task2":"success"}}}`},
		{"states: a nested group's id is prefixed with its parent's",
			query(states, "dag_id", "tg_nested", "task_group_id", "outer.inner"), 200,
			`{"task_states":{"test":{"outer.inner.b":"failed"}}}`},
		{"states: a nested group's own id alone is no group",
			query(states, "dag_id", "tg_nested", "task_group_id", "inner"), 404,
			notFound("Task group inner not found in DAG tg_nested")},
		{"states: the groups are the latest serialized DAG's",
			query(states, "dag_id", "tg_latest", "task_group_id", "new_group"), 200,
			`{"task_states":{"r":{"new_group.t":"failed"}}}`},
		{"states: a group only an older serialized DAG has is not found",
			query(states, "dag_id", "tg_latest", "task_group_id", "old_group"), 404,
			notFound("Task group old_group not found in DAG tg_latest")},
		{"states: a DAG known by its runs alone has no serialized DAG",
			query(states, "dag_id", "tg_runs_only", "task_group_id", "group1"), 404,
			notFound("The Dag with ID: `tg_runs_only` was not found")},
	}

	for _, b := range workersBackends {
		t.Run(string(b), func(t *testing.T) {
			var w *worker
			if b == postgresBackend {
				w = taskGroupsPostgres(t, dags, fx)
			} else {
				dataDir := newDataDir(t)
				caller := queueTask(t, dataDir, "conformance_caller", "manual__caller", "caller")
				publishSerializedDags(t, dataDir, dags)
				seedTaskInstances(t, dataDir, fx)
				srv := startServer(t, dataDir, noAuthLimit)
				w = newWorker(t, srv.URL, startedToken(t, srv.URL, caller))
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					wantJSON(t, w.do("GET", c.path, ""), c.status, c.want)
				})
			}
		})
	}
}

// taskGroupsPostgres writes the serialized DAGs as the DAG processor
// writes serialized_dag (a DAG written again gets a new dag_version; one
// of them compressed) and the task instances as the scheduler does, and
// returns a running task's worker on a replica over that database.
func taskGroupsPostgres(t *testing.T, dags []map[string]any, fx []tiFixture) *worker {
	d := newPGDeployment(t)
	written := map[string]bool{}
	for i, doc := range dags {
		id := doc["dag"].(map[string]any)["dag_id"].(string)
		if written[id] {
			d.exec(`INSERT INTO dag_version (id, version_number, dag_id, bundle_name, created_at, last_updated)
				SELECT $1::uuid, max(version_number) + 1, $2::varchar, $3, now(), now() FROM dag_version WHERE dag_id = $2::varchar`,
				pgtest.UUIDv7(), id, pgtest.DefaultBundle)
		}
		written[id] = true
		d.af.SerializedDagDocument(t, doc, i%2 == 1)
	}
	runs := map[string]bool{}
	for _, f := range fx {
		logical := f.logical
		if logical.IsZero() {
			logical = defaultLogicalDate
		}
		if !runs[f.dag+"/"+f.run] {
			runs[f.dag+"/"+f.run] = true
			d.af.DagRun(t, pgtest.DagRunRow{DagID: f.dag, RunID: f.run, LogicalDate: &logical, RunType: "scheduled"})
		}
		state := f.state
		if state == "" {
			state = "none"
		}
		mi := f.mapIndex
		d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: f.dag, RunID: f.run, TaskID: f.task, MapIndex: &mi, State: state})
	}
	srv := d.startReplica(t, noAuthLimit)
	m := d.minter(t)
	caller := d.insertQueuedTI(d.insertDagRun("conformance_caller", "manual__caller"), "caller", 1, 0)
	return newWorker(t, srv.URL, startedToken(t, srv.URL, caller.q(m)))
}
