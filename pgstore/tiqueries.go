package pgstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

var _ workload.TaskInstanceQueries = (*DB)(nil)

// queryColumns are what the task-instance queries read of a task_instance
// row and its dag_run, as Airflow's count, states, breadcrumbs and previous
// routes read them.
const queryColumns = `ti.id::text, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number, ti.state,
	ti.start_date, ti.end_date, ti.operator, ti.duration, ti.rendered_map_index, dr.logical_date`

func scanQueryRow(rows pgx.Rows) (workload.TaskInstanceRow, error) {
	var (
		r         workload.TaskInstanceRow
		mapIndex  int32
		tryNumber *int32
		state     *string
		rendered  *string
	)
	err := rows.Scan(&r.ID, &r.DagID, &r.RunID, &r.TaskID, &mapIndex, &tryNumber, &state, &r.StartDate, &r.EndDate,
		&r.Operator, &r.Duration, &rendered, &r.LogicalDate)
	if err != nil {
		return r, err
	}
	r.MapIndex, r.TryNumber, r.State, r.RenderedMapIndex = int(mapIndex), deref32(tryNumber), workload.State(deref(state)), rendered
	for _, t := range []**time.Time{&r.StartDate, &r.EndDate, &r.LogicalDate} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	return r, nil
}

// QueryTaskInstances selects task_instance rows of q.DagID joined with
// their dag_run, filtered as Airflow's count and states routes filter
// (task_id IN, map_index =, dag_run.logical_date IN, run_id IN, state IN or
// IS NULL), ordered by run, task and map index.
func (db *DB) QueryTaskInstances(ctx context.Context, q workload.TaskInstanceQuery) ([]workload.TaskInstanceRow, error) {
	where := []string{"ti.dag_id = $1"}
	args := []any{q.DagID}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if len(q.TaskIDs) > 0 {
		where = append(where, "ti.task_id = ANY("+arg(q.TaskIDs)+")")
	}
	if q.MapIndex != nil {
		where = append(where, "ti.map_index = "+arg(int32(*q.MapIndex)))
	}
	if len(q.LogicalDates) > 0 {
		where = append(where, "dr.logical_date = ANY("+arg(q.LogicalDates)+")")
	}
	if len(q.RunIDs) > 0 {
		where = append(where, "ti.run_id = ANY("+arg(q.RunIDs)+")")
	}
	if !q.AnyState {
		var states []string
		null := false
		for _, s := range q.States {
			if s == "" {
				null = true
			} else {
				states = append(states, string(s))
			}
		}
		cond := "ti.state = ANY(" + arg(states) + ")"
		if null {
			cond = "(ti.state IS NULL OR " + cond + ")"
		}
		where = append(where, cond)
	}
	sql := `SELECT ` + queryColumns + ` FROM task_instance ti
		JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id
		WHERE ` + strings.Join(where, " AND ") + ` ORDER BY ti.run_id, ti.task_id, ti.map_index`
	out := []workload.TaskInstanceRow{}
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanQueryRow(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// TaskGroupTaskIDs returns the task ids of the task group groupID of the
// DAG's latest serialized_dag (by created_at, as Airflow's
// get_latest_version_of_dag reads it, whatever version the dag runs were
// created with).
func (db *DB) TaskGroupTaskIDs(ctx context.Context, dagID, groupID string) ([]string, error) {
	data, found, err := serializedDag(ctx, db.pool, dagID)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("pgstore: dag %s: %w", dagID, workload.ErrNoSerializedDag)
	}
	groups, err := workload.SerializedTaskGroups(data)
	if err != nil {
		return nil, fmt.Errorf("pgstore: serialized dag of %s: %w", dagID, err)
	}
	ids, err := groups.TaskIDs(groupID)
	if err != nil {
		return nil, fmt.Errorf("pgstore: dag %s: %w", dagID, err)
	}
	return ids, nil
}

// PreviousTaskInstance is Airflow's previous-task-instance query: the
// task_instance row of (dag_id, task_id, map_index) joined with its dag_run,
// dag_run.logical_date < before when set, state = state when set, ordered
// by dag_run.logical_date DESC (NULLs first, as PostgreSQL orders them),
// the first row.
func (db *DB) PreviousTaskInstance(ctx context.Context, dagID, taskID string, mapIndex int, before *time.Time,
	state workload.State) (*workload.TaskInstanceRow, error) {
	where := []string{"ti.dag_id = $1", "ti.task_id = $2", "ti.map_index = $3"}
	args := []any{dagID, taskID, int32(mapIndex)}
	if before != nil {
		args = append(args, before.UTC())
		where = append(where, fmt.Sprintf("dr.logical_date < $%d", len(args)))
	}
	if state != "" {
		args = append(args, string(state))
		where = append(where, fmt.Sprintf("ti.state = $%d", len(args)))
	}
	sql := `SELECT ` + queryColumns + ` FROM task_instance ti
		JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id
		WHERE ` + strings.Join(where, " AND ") + ` ORDER BY dr.logical_date DESC LIMIT 1`
	var out *workload.TaskInstanceRow
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		if rows.Next() {
			r, err := scanQueryRow(rows)
			if err != nil {
				return err
			}
			out = &r
		}
		return rows.Err()
	})
	return out, err
}
