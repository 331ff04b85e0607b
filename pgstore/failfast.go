package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

// A try that fails in a DAG with fail_fast stops the rest of its dag run,
// as Airflow's ti_update_state does (_handle_fail_fast_for_dag, then
// _stop_remaining_tasks), in the same transaction as the failure: every
// other task instance of the run that has not succeeded or failed, unless
// its task is a teardown, fails if it is running and is skipped otherwise.
// Which tasks are teardowns only the serialized DAG says: without one,
// Airflow stops nothing, and neither does taskgate.

// stopRemainingTasks applies fail_fast for the failed try ti.
func stopRemainingTasks(ctx context.Context, tx pgx.Tx, ti *workload.TaskInstance, now time.Time) error {
	var failFast bool
	err := tx.QueryRow(ctx, `SELECT fail_fast FROM dag WHERE dag_id = $1`, ti.DagID).Scan(&failFast)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !failFast) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgstore: fail_fast of dag %s: %w", ti.DagID, err)
	}
	data, found, err := serializedDag(ctx, tx, ti.DagID)
	if err != nil || !found {
		return err
	}
	teardowns, err := teardownTasks(data)
	if err != nil {
		return fmt.Errorf("pgstore: serialized dag of %s: %w", ti.DagID, err)
	}
	rows, err := tx.Query(ctx, `SELECT id::text, task_id, state FROM task_instance
		WHERE dag_id = $1 AND run_id = $2 AND task_id <> $3
			AND (state IS NULL OR state NOT IN ('success', 'failed'))
		ORDER BY id FOR UPDATE`, ti.DagID, ti.RunID, ti.TaskID)
	if err != nil {
		return fmt.Errorf("pgstore: fail_fast: %w", err)
	}
	type stop struct{ id, state string }
	var stops []stop
	for rows.Next() {
		var id, task string
		var state *string
		if err := rows.Scan(&id, &task, &state); err != nil {
			rows.Close()
			return err
		}
		if teardowns[task] {
			continue
		}
		to := string(workload.StateSkipped)
		if deref(state) == string(workload.StateRunning) {
			to = string(workload.StateFailed)
		}
		stops = append(stops, stop{id, to})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, s := range stops {
		// TaskInstance.set_state: the end date, a start date when there was
		// none, and the duration between them.
		if _, err := tx.Exec(ctx, `UPDATE task_instance SET state = $2, end_date = $3,
				start_date = coalesce(start_date, $3),
				duration = extract(epoch FROM $3 - coalesce(start_date, $3)), updated_at = $3
			WHERE id = $1::uuid`, s.id, s.state, now); err != nil {
			return fmt.Errorf("pgstore: fail_fast: stop task instance %s: %w", s.id, err)
		}
	}
	return nil
}

// teardownTasks reads which tasks of a serialized DAG are teardowns
// ({"dag": {"tasks": [{"__var": {"task_id": …, "is_teardown": true}, …}]}};
// is_teardown is written only when true).
func teardownTasks(data []byte) (map[string]bool, error) {
	var doc struct {
		Dag struct {
			Tasks []json.RawMessage `json:"tasks"`
		} `json:"dag"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	type fields struct {
		TaskID     string `json:"task_id"`
		IsTeardown bool   `json:"is_teardown"`
	}
	out := map[string]bool{}
	for _, raw := range doc.Dag.Tasks {
		var wrapped struct {
			Var *fields `json:"__var"`
		}
		var f fields
		if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Var != nil {
			f = *wrapped.Var
		} else if err := json.Unmarshal(raw, &f); err != nil {
			return nil, err
		}
		if f.IsTeardown {
			out[f.TaskID] = true
		}
	}
	return out, nil
}
