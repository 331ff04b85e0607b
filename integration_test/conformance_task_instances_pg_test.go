package integration_test

import (
	"encoding/json"
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

// TestConformanceTaskInstanceAuditLogPostgres: /run and each state a try
// reports leave the one log row Airflow's routes add.
func TestConformanceTaskInstanceAuditLogPostgres(t *testing.T) {
	d := newPGDeployment(t)
	srv := d.startReplica(t, noAuthLimit)
	m := d.minter(t)
	type logRow struct {
		event, taskID, runID, owner string
		mapIndex, tryNumber         int
		logical                     *time.Time
		extra                       *string
		n                           int
	}
	logOf := func(dagID string) logRow {
		var r logRow
		d.queryRow(`SELECT count(*) OVER (), event, task_id, run_id, owner, map_index, try_number, logical_date, extra
			FROM log WHERE dag_id = $1`, []any{dagID},
			&r.n, &r.event, &r.taskID, &r.runID, &r.owner, &r.mapIndex, &r.tryNumber, &r.logical, &r.extra)
		return r
	}
	check := func(t *testing.T, dagID, runID, taskID, event string, logical time.Time) {
		t.Helper()
		r := logOf(dagID)
		if r.n != 1 || r.event != event || r.taskID != taskID || r.runID != runID || r.owner != "airflow" ||
			r.mapIndex != -1 || r.tryNumber != 1 || r.logical == nil || !r.logical.Equal(logical) ||
			r.extra == nil || *r.extra != `{"host_name": "random-hostname"}` {
			t.Errorf("log rows of %s: %+v (extra %v), want one %q row", dagID, r, r.extra, event)
		}
	}
	logical := time.Date(2024, 9, 30, 12, 0, 0, 0, time.UTC)
	t.Run("test_task_instances.py::TestTIRunState::test_ti_run_creates_audit_log", func(t *testing.T) {
		r := d.af.DagRun(t, pgtest.DagRunRow{DagID: "audit_run", RunID: "test", LogicalDate: &logical})
		ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.DagID, RunID: r.RunID, TaskID: "test_ti_run_creates_audit_log"})
		w := newWorker(t, srv.URL, m.workload(ti.ID))
		mustStatus(t, w.do("PATCH", tiPath(ti.ID, "run"), host{"random-hostname", "random-unixname", 100}.runPayload(t)), 200)
		check(t, r.DagID, r.RunID, "test_ti_run_creates_audit_log", "running", logical)
	})
	end := `"end_date":"2024-10-31T12:00:00+00:00"`
	for _, c := range []struct{ name, event, body string }{
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_creates_audit_log[success]", "success",
			`{"state":"success",` + end + `}`},
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_creates_audit_log[failed]", "failed",
			`{"state":"failed",` + end + `}`},
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_creates_audit_log[skipped]", "skipped",
			`{"state":"skipped",` + end + `}`},
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_creates_audit_log[up_for_retry]", "up_for_retry",
			`{"state":"up_for_retry",` + end + `}`},
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_creates_audit_log[deferred]", "deferred",
			`{"state":"deferred","trigger_kwargs":{"key":"value","moment":"2026-02-18T00:00:00Z"},"trigger_timeout":"P1D","classpath":"my-classpath","next_method":"execute_callback"}`},
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_creates_audit_log[up_for_reschedule]", "up_for_reschedule",
			`{"state":"up_for_reschedule","reschedule_date":"2026-02-18T11:03:00+00:00",` + end + `}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dagID := "audit_" + c.event
			r := d.af.DagRun(t, pgtest.DagRunRow{DagID: dagID, RunID: "test", LogicalDate: &logical})
			ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: dagID, RunID: r.RunID,
				TaskID: "test_ti_update_state_creates_audit_log", State: "running", Hostname: "random-hostname", PID: ptrInt(1)})
			w := newWorker(t, srv.URL, m.execution(ti.ID))
			wantNoContent(t, w.do("PATCH", tiPath(ti.ID, "state"), c.body), 204)
			check(t, dagID, r.RunID, "test_ti_update_state_creates_audit_log", c.event, logical)
		})
	}
}

func ptrInt(n int) *int { return &n }

// TestConformanceTaskInstanceRowsPostgres: cases whose fixtures are rows
// Airflow's scheduler or a test writes directly.
func TestConformanceTaskInstanceRowsPostgres(t *testing.T) {
	d := newPGDeployment(t)
	srv := d.startReplica(t, noAuthLimit)
	m := d.minter(t)
	me := host{"random-hostname", "random-unixname", 100}
	instant := time.Date(2024, 9, 30, 12, 0, 0, 0, time.UTC)
	t.Run("test_task_instances.py::TestTIRunState::test_ti_run_with_triggering_user_name", func(t *testing.T) {
		user := "test_user"
		r := d.af.DagRun(t, pgtest.DagRunRow{DagID: "trig_user", RunID: "test", LogicalDate: &instant, TriggeringUser: &user})
		ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.DagID, RunID: r.RunID, TaskID: "test_ti_run_with_triggering_user_name"})
		res := newWorker(t, srv.URL, m.workload(ti.ID)).do("PATCH", tiPath(ti.ID, "run"), me.runPayload(t))
		mustStatus(t, res, 200)
		var rc struct {
			DagRun map[string]any `json:"dag_run"`
		}
		if err := json.Unmarshal(res.body, &rc); err != nil {
			t.Fatal(err)
		}
		if rc.DagRun["triggering_user_name"] != "test_user" || rc.DagRun["dag_id"] != "trig_user" ||
			rc.DagRun["run_id"] != "test" || rc.DagRun["state"] != "running" {
			t.Errorf("dag_run = %v", rc.DagRun)
		}
	})
	t.Run("test_task_instances.py::TestGetRescheduleStartDate::test_get_start_date", func(t *testing.T) {
		start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "resched", TaskID: "test_ti_update_state_reschedule_mysql_limit",
			State: "running", Hostname: me.hostname, PID: ptrInt(me.pid), StartDate: &start})
		d.exec(`INSERT INTO task_reschedule (ti_id, start_date, end_date, duration, reschedule_date)
			VALUES ($1, $2, $3, 3600, $4)`, ti.ID, start, start.Add(time.Hour), start.Add(2*time.Hour))
		w := newWorker(t, srv.URL, m.execution(ti.ID))
		wantJSON(t, w.do("GET", "/execution/task-reschedules/"+ti.ID+"/start_date", ""), 200, `"2024-01-01T00:00:00Z"`)
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_failed_table_check", func(t *testing.T) {
		start := time.Date(2024, 10, 31, 11, 0, 0, 0, time.UTC)
		ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "failed_check", TaskID: "test_ti_update_state_to_failed_table_check",
			State: "running", Hostname: me.hostname, PID: ptrInt(me.pid), StartDate: &start})
		w := newWorker(t, srv.URL, m.execution(ti.ID))
		wantNoContent(t, w.do("PATCH", tiPath(ti.ID, "state"), `{"state":"failed","end_date":"2024-10-31T12:00:00+00:00"}`), 204)
		var state string
		var duration *float64
		var nextMethod *string
		d.queryRow(`SELECT state, duration, next_method FROM task_instance WHERE id = $1`, []any{ti.ID}, &state, &duration, &nextMethod)
		if state != "failed" || duration == nil || *duration != 3600 || nextMethod != nil {
			t.Errorf("row: state %s, duration %v, next_method %v; want failed, 3600, NULL", state, duration, nextMethod)
		}
	})
	for _, c := range []struct{ name, state string }{
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_clears_deferred_fields[up_for_retry]", "up_for_retry"},
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_clears_deferred_fields[failed]", "failed"},
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_clears_deferred_fields[success]", "success"},
	} {
		t.Run(c.name, func(t *testing.T) {
			method := "execute_complete"
			ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "clears_" + c.state,
				TaskID: "test_ti_update_state_clears_deferred_fields", State: "running", Hostname: me.hostname,
				PID: ptrInt(me.pid), NextMethod: &method, NextKwargs: map[string]any{"event": "test_event", "data": "test_data"}})
			w := newWorker(t, srv.URL, m.execution(ti.ID))
			wantNoContent(t, w.do("PATCH", tiPath(ti.ID, "state"), `{"state":"`+c.state+`","end_date":"2024-10-31T12:00:00+00:00"}`), 204)
			// up_for_retry gives the row a new id: read it by its coordinates.
			var state string
			var nextMethod, nextKwargs *string
			d.queryRow(`SELECT state, next_method, next_kwargs::text FROM task_instance WHERE dag_id = $1`,
				[]any{"clears_" + c.state}, &state, &nextMethod, &nextKwargs)
			if state != c.state || nextMethod != nil || nextKwargs != nil {
				t.Errorf("row: %s, next_method %v, next_kwargs %v; want %s and NULLs", state, nextMethod, nextKwargs, c.state)
			}
		})
	}
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_reschedule", func(t *testing.T) {
		start := time.Date(2024, 10, 30, 0, 0, 0, 0, time.UTC)
		ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "resched_state", TaskID: "test_ti_update_state_to_reschedule",
			State: "running", Hostname: me.hostname, PID: ptrInt(me.pid), StartDate: &start})
		w := newWorker(t, srv.URL, m.execution(ti.ID))
		wantNoContent(t, w.do("PATCH", tiPath(ti.ID, "state"),
			`{"state":"up_for_reschedule","reschedule_date":"2024-10-31T11:03:00+00:00","end_date":"2024-10-31T12:00:00+00:00"}`), 204)
		var state string
		var nextMethod *string
		var duration *float64
		d.queryRow(`SELECT state, next_method, duration FROM task_instance WHERE id = $1`, []any{ti.ID}, &state, &nextMethod, &duration)
		if state != "up_for_reschedule" || nextMethod != nil || duration == nil || *duration != 129600 {
			t.Errorf("row: %s, next_method %v, duration %v; want up_for_reschedule, NULL, 129600", state, nextMethod, duration)
		}
		var trStart, trEnd, trDate time.Time
		var trDuration int
		d.queryRow(`SELECT start_date, end_date, reschedule_date, duration FROM task_reschedule WHERE ti_id = $1`,
			[]any{ti.ID}, &trStart, &trEnd, &trDate, &trDuration)
		if !trStart.Equal(start) || !trEnd.Equal(time.Date(2024, 10, 31, 12, 0, 0, 0, time.UTC)) ||
			!trDate.Equal(time.Date(2024, 10, 31, 11, 3, 0, 0, time.UTC)) || trDuration != 129600 {
			t.Errorf("task_reschedule: %s %s %s %d", trStart, trEnd, trDate, trDuration)
		}
	})
	rejected := func(t *testing.T, r *response) {
		t.Helper()
		var b struct {
			Detail map[string]any `json:"detail"`
		}
		if r.status != 422 || json.Unmarshal(r.body, &b) != nil || b.Detail["reason"] != "Value rejected by database" ||
			b.Detail["statement"] != "hidden" || b.Detail["orig_error"] != "hidden" {
			t.Errorf("%d %s, want 422 Value rejected by database", r.status, r.body)
		}
	}
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_run_oversized_field_returns_422", func(t *testing.T) {
		ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "oversized_run", TaskID: "test_ti_run_dataerror"})
		rejected(t, newWorker(t, srv.URL, m.workload(ti.ID)).do("PATCH", tiPath(ti.ID, "run"),
			host{strings.Repeat("h", 1100), "u", 1}.runPayload(t)))
		if row := d.taskInstance(&afRun{dagID: "oversized_run", runID: ti.RunID}, ti.TaskID); row.state != "queued" {
			t.Errorf("state after the refused /run: %s, want queued", row.state)
		}
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_oversized_field_returns_422", func(t *testing.T) {
		ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "oversized_state", TaskID: "test_ti_update_dataerror",
			State: "running", Hostname: me.hostname, PID: ptrInt(me.pid)})
		rejected(t, newWorker(t, srv.URL, m.execution(ti.ID)).do("PATCH", tiPath(ti.ID, "state"),
			`{"state":"up_for_retry","end_date":"2024-09-30T12:00:00Z","rendered_map_index":"`+strings.Repeat("x", 300)+`"}`))
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_dataerror_does_not_silently_fail", func(t *testing.T) {
		ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "dataerror_defer", TaskID: "test_ti_defer_dataerror",
			State: "running", Hostname: me.hostname, PID: ptrInt(me.pid)})
		rejected(t, newWorker(t, srv.URL, m.execution(ti.ID)).do("PATCH", tiPath(ti.ID, "state"),
			`{"state":"deferred","classpath":"`+strings.Repeat("c", 1100)+`","next_method":"execute_complete","trigger_kwargs":{},"next_kwargs":{}}`))
		if row := d.taskInstance(&afRun{dagID: "dataerror_defer", runID: ti.RunID}, ti.TaskID); row.state != "running" {
			t.Errorf("state after the refused deferral: %s, want running", row.state)
		}
	})
}
