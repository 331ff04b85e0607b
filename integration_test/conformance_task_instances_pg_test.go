package integration_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/pgtest"
)

// The task-instance queries on Airflow's own rows (pgstore): the rows the
// scheduler writes, read as Airflow's routes read them.
func TestConformanceTaskInstanceQueriesPostgres(t *testing.T) {
	d := newPGDeployment(t)
	srv := d.startReplica(t, noAuthLimit)
	m := d.minter(t)
	caller := d.insertQueuedTI(d.insertDagRun("conformance_caller", "manual__caller"), "caller", 1, 0)
	w := newWorker(t, srv.URL, startedToken(t, srv.URL, caller.q(m)))

	// TestGetTaskInstanceBreadcrumbs: one task per TaskInstanceState member,
	// named after it, in that state.
	bc := d.af.DagRun(t, pgtest.DagRunRow{DagID: "bc_dag", RunID: "bc_run"})
	for _, st := range []string{"removed", "scheduled", "queued", "running", "success", "restarting", "failed",
		"up_for_retry", "up_for_reschedule", "upstream_failed", "skipped", "deferred", "awaiting_input"} {
		d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: bc.DagID, RunID: bc.RunID, TaskID: strings.ToUpper(st),
			State: st, Operator: "EmptyOperator"})
	}
	crumb := func(task, state string) string {
		return `{"duration":null,"map_index":-1,"operator":"EmptyOperator","state":"` + state + `","task_id":"` + task + `"}`
	}
	t.Run("test_task_instances.py::TestGetTaskInstanceBreadcrumbs::test_get_breadcrumbs", func(t *testing.T) {
		wantJSON(t, w.do("GET", query("/execution/task-instances/breadcrumbs", "dag_id", "bc_dag", "run_id", "bc_run"), ""), 200,
			`{"breadcrumbs":[`+crumb("FAILED", "failed")+`,`+crumb("REMOVED", "removed")+`,`+crumb("SKIPPED", "skipped")+`,`+
				crumb("SUCCESS", "success")+`,`+crumb("UPSTREAM_FAILED", "upstream_failed")+`]}`)
	})
	t.Run("breadcrumbs: run_id is required", func(t *testing.T) {
		wantJSON(t, w.do("GET", query("/execution/task-instances/breadcrumbs", "dag_id", "bc_dag"), ""), 422,
			`{"detail":[{"type":"missing","loc":["query","run_id"],"msg":"Field required","input":null}]}`)
	})

	// Count, states and previous over runs with logical dates.
	day := func(n int) *time.Time { v := time.Date(2025, 1, n, 0, 0, 0, 0, time.UTC); return &v }
	for i, st := range []string{"success", "none", "failed"} {
		r := d.af.DagRun(t, pgtest.DagRunRow{DagID: "pg_dag", RunID: "run" + strconv.Itoa(i+1), LogicalDate: day(i + 1),
			RunType: "scheduled"})
		d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.DagID, RunID: r.RunID, TaskID: "t", State: st})
		for mi := 0; mi < 2; mi++ {
			mi := mi
			d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.DagID, RunID: r.RunID, TaskID: "m", MapIndex: &mi,
				State: "success"})
		}
	}
	const count, states = "/execution/task-instances/count", "/execution/task-instances/states"
	for _, c := range []struct {
		name, path, want string
	}{
		{"count (PostgreSQL): every task instance", query(count, "dag_id", "pg_dag"), `9`},
		{"count (PostgreSQL): null and failed", query(count, "dag_id", "pg_dag", "states", "null", "states", "failed"), `2`},
		{"count (PostgreSQL): logical dates", query(count, "dag_id", "pg_dag", "task_ids", "t",
			"logical_dates", "2025-01-01T00:00:00+00:00", "logical_dates", "2025-01-03T00:00:00Z"), `2`},
		{"count (PostgreSQL): map index and run ids", query(count, "dag_id", "pg_dag", "map_index", "1",
			"run_ids", "run1", "run_ids", "run2"), `2`},
		{"states (PostgreSQL)", query(states, "dag_id", "pg_dag", "run_ids", "run2"),
			`{"task_states":{"run2":{"t":null,"m_0":"success","m_1":"success"}}}`},
		{"previous (PostgreSQL): before a logical date, in a state",
			query("/execution/task-instances/previous/pg_dag/t", "logical_date", "2025-01-03T00:00:00Z", "state", "success"),
			`{"task_id":"t","dag_id":"pg_dag","run_id":"run1","logical_date":"2025-01-01T00:00:00Z","start_date":null,` +
				`"end_date":null,"state":"success","try_number":1,"map_index":-1,"duration":null}`},
		{"previous (PostgreSQL): none", query("/execution/task-instances/previous/pg_dag/t", "map_index", "7"), `null`},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantJSON(t, w.do("GET", c.path, ""), 200, c.want)
		})
	}

	t.Run("rendered map index (PostgreSQL)", func(t *testing.T) {
		wantNoContent(t, w.do("PATCH", tiPath(caller.id, "rendered-map-index"), `"label"`), 204)
		var got *string
		d.queryRow(`SELECT rendered_map_index FROM task_instance WHERE id = $1`, []any{caller.id}, &got)
		if got == nil || *got != "label" {
			t.Errorf("rendered_map_index = %v, want label", got)
		}
	})
}
