package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

// TestFailFastStopsTheRestOfTheRun: a try's own failed report in a DAG with
// fail_fast fails the run's other running task instances and skips the
// rest, sparing what succeeded or failed and the teardown tasks the
// serialized DAG names, as Airflow's _stop_remaining_tasks; without
// fail_fast, or without a serialized DAG, nothing else changes, and an
// operator's mark stops nothing.
func TestFailFastStopsTheRestOfTheRun(t *testing.T) {
	unchanged := map[string]string{"other_running": "running", "waiting": "queued", "no_state": "", "done": "success",
		"cleanup": "queued"}
	for _, tc := range []struct {
		name                 string
		failFast, serialized bool
		mark                 bool
		want                 map[string]string
	}{
		{"fail_fast", true, true, false, map[string]string{"other_running": "failed", "waiting": "skipped",
			"no_state": "skipped", "done": "success", "cleanup": "queued"}},
		{"without fail_fast", false, true, false, unchanged},
		{"without a serialized dag", true, false, false, unchanged},
		{"an operator's mark", true, true, true, unchanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, af, _ := newTestStore(t)
			failing := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "ff", TaskID: "t", State: "running",
				Hostname: "h", PID: ptr(1), StartDate: ptr(t0.Add(-time.Minute))})
			for task, state := range map[string]string{"other_running": "running", "waiting": "queued",
				"no_state": "none", "done": "success", "cleanup": "queued"} {
				af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "ff", RunID: failing.RunID, TaskID: task, State: state})
			}
			af.Exec(t, `UPDATE dag SET fail_fast = $1 WHERE dag_id = 'ff'`, tc.failFast)
			if tc.serialized {
				af.Exec(t, `INSERT INTO serialized_dag (id, dag_id, data, created_at, last_updated, dag_hash, dag_version_id)
					SELECT $1, 'ff', $2::json, $3, $3, 'h', id FROM dag_version WHERE dag_id = 'ff'`,
					pgtest.UUIDv7(), `{"__version": 3, "dag": {"dag_id": "ff", "tasks": [
						{"__type": "operator", "__var": {"task_id": "t"}},
						{"__type": "operator", "__var": {"task_id": "cleanup", "is_teardown": true}}]}}`, t0)
			}
			end := t0.Add(time.Minute)
			_, err := db.UpdateTaskInstance(context.Background(), failing.ID, func(ti *workload.TaskInstance) error {
				if tc.mark {
					return workload.ForceState(ti, workload.StateFailed, t0)
				}
				_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateFailed, EndDate: &end}, t0)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			rows, err := db.pool.Query(context.Background(), `SELECT task_id, coalesce(state, '') FROM task_instance
				WHERE dag_id = 'ff' AND task_id <> 't'`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var task, state string
				if err := rows.Scan(&task, &state); err != nil {
					t.Fatal(err)
				}
				got[task] = state
			}
			rows.Close()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("the run's other task instances (-want +got):\n%s", diff)
			}
			if tc.name == "fail_fast" {
				var start, endDate *time.Time
				scanRow(t, db, `SELECT start_date, end_date FROM task_instance WHERE dag_id = 'ff' AND task_id = 'waiting'`,
					nil, &start, &endDate)
				if start == nil || endDate == nil || !endDate.Equal(t0) {
					t.Errorf("skipped task instance: start %v, end %v; want both set, end %v", start, endDate, t0)
				}
			}
		})
	}
}
