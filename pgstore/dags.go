package pgstore

// DAGs and the dag-run writes of the /dag-runs routes, on Airflow's rows.
//
// A DAG is its dag row (DagModel: is_paused, is_stale, has_import_errors,
// allowed_run_types, bundle_name, bundle_version, relative_fileloc, owners,
// next_dagrun) and its dag_tag rows. A triggered run is the dag_run row
// Airflow's trigger_dag inserts (see TriggerDagRun); a cleared run is what
// DAG.clear → clear_task_instances writes (see ClearDagRun).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

var _ workload.DagRuns = (*DB)(nil)

const dagColumns = `d.dag_id, d.is_paused, d.is_stale, d.has_import_errors, d.allowed_run_types::text,
	d.bundle_name, d.bundle_version, d.relative_fileloc, d.owners, d.next_dagrun,
	ARRAY(SELECT t.name FROM dag_tag t WHERE t.dag_id = d.dag_id ORDER BY t.name COLLATE "C")
	FROM dag d`

func scanDag(row pgx.Row) (*workload.Dag, error) {
	var (
		d       workload.Dag
		paused  *bool
		allowed *string
	)
	if err := row.Scan(&d.DagID, &paused, &d.IsStale, &d.HasImportErrors, &allowed, &d.BundleName,
		&d.BundleVersion, &d.RelativeFileloc, &d.Owners, &d.NextDagrun, &d.Tags); err != nil {
		return nil, err
	}
	d.IsPaused = paused
	if allowed != nil && *allowed != "null" {
		if err := json.Unmarshal([]byte(*allowed), &d.AllowedRunTypes); err != nil {
			return nil, fmt.Errorf("pgstore: dag %s: allowed_run_types: %w", d.DagID, err)
		}
		if d.AllowedRunTypes == nil {
			d.AllowedRunTypes = []string{}
		}
	}
	if d.NextDagrun != nil {
		t := d.NextDagrun.UTC()
		d.NextDagrun = &t
	}
	if d.Tags == nil {
		d.Tags = []string{}
	}
	return &d, nil
}

func dagNotFound(dagID string) error {
	return fmt.Errorf("pgstore: dag %s: %w", dagID, workload.ErrDagNotFound)
}

// Dag returns the DAG's row, stale or not (Airflow's session.get(DagModel)),
// or an error wrapping workload.ErrDagNotFound.
func (db *DB) Dag(ctx context.Context, dagID string) (*workload.Dag, error) {
	var out *workload.Dag
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		var err error
		out, err = scanDag(tx.QueryRow(ctx, `SELECT `+dagColumns+` WHERE d.dag_id = $1`, dagID))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, dagNotFound(dagID)
	}
	return out, err
}

// activeDag reads the DAG the write routes act on: not stale (Airflow's
// ~DagModel.is_stale), locked against a concurrent change of its flags.
func activeDag(ctx context.Context, tx pgx.Tx, dagID string) (*workload.Dag, error) {
	d, err := scanDag(tx.QueryRow(ctx, `SELECT `+dagColumns+` WHERE d.dag_id = $1 AND NOT d.is_stale FOR SHARE OF d`, dagID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, dagNotFound(dagID)
	}
	return d, err
}

// TriggerDagRun inserts the dag_run row Airflow's trigger_dag (through
// DAG.create_dagrun) inserts for a task's trigger: state queued with
// queued_at now, triggered_by "operator", the run's conf, dates, partition
// key and triggering_user_name (that of the triggering task's dag run),
// bundle_version and created_dag_version_id from the DAG's latest version,
// log_template_id the newest log template, clear_number 0, context_carrier
// an empty carrier (as task instances get one) and span_status its default. The DAG's task instances are not created: Airflow makes them
// from the serialized DAG, which taskgate does not read, and its scheduler
// creates missing ones when it verifies the run's integrity. The run's note
// (dag_run_note) is not written.
func (db *DB) TriggerDagRun(ctx context.Context, dr workload.DagRun, parentTI string, admit func(d *workload.Dag) error) error {
	now := db.now().UTC()
	conf := string(dr.Conf)
	if len(dr.Conf) == 0 {
		conf = "{}"
	}
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		d, err := activeDag(ctx, tx, dr.DagID)
		if err != nil {
			return err
		}
		if err := admit(d); err != nil {
			return err
		}
		var user *string
		if validUUID(parentTI) {
			err := tx.QueryRow(ctx, `SELECT dr.triggering_user_name FROM task_instance ti
				JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id
				WHERE ti.id = $1::uuid`, parentTI).Scan(&user)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO dag_run (dag_id, run_id, queued_at, logical_date, start_date, end_date,
				state, run_type, triggered_by, triggering_user_name, conf, data_interval_start, data_interval_end,
				run_after, clear_number, log_template_id, created_at, updated_at, bundle_version,
				created_dag_version_id, partition_key, context_carrier)
			SELECT $1, $2, $3, $4, NULL, NULL, 'queued', $5, 'operator', $6, $7::jsonb, $8, $9, $10, 0,
				(SELECT max(id) FROM log_template), $3, $3, v.bundle_version, v.id, $11, $12::json
			FROM (SELECT NULL) one
			LEFT JOIN LATERAL (SELECT id, bundle_version FROM dag_version WHERE dag_id = $1
				ORDER BY version_number DESC LIMIT 1) v ON true
			ON CONFLICT DO NOTHING`,
			dr.DagID, dr.RunID, now, timeArg(dr.LogicalDate), dr.RunType, user, conf,
			timeArg(dr.DataIntervalStart), timeArg(dr.DataIntervalEnd), dr.RunAfter.UTC(), dr.PartitionKey,
			string(emptyCarrier))
		if err != nil {
			return fmt.Errorf("pgstore: insert dag run %s/%s: %w", dr.DagID, dr.RunID, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("pgstore: dag run %s/%s: %w", dr.DagID, dr.RunID, workload.ErrAlreadyExists)
		}
		return nil
	})
	return err
}

// ClearDagRun clears a dag run as Airflow's DAG.clear(run_id=…,
// only_failed=…) does through clear_task_instances, in one transaction:
// each selected task_instance row (locked) has its try recorded into
// task_instance_history (record_ti), its task_reschedule rows deleted and a
// new id (prepare_db_for_next_try), and when unfinished an end_date now and
// its duration (record_ti sets them on the row); a running one becomes restarting, any
// other loses its state, external_executor_id, next_method and next_kwargs
// and has max_tries raised to its try_number when lower (the fallback
// Airflow uses without the task's retries: taskgate does not read the
// serialized DAG). Then, when it cleared any, a finished dag run is queued
// again: state queued, queued_at now, start_date, end_date and
// last_scheduling_decision NULL, clear_number + 1.
func (db *DB) ClearDagRun(ctx context.Context, dagID, runID string, onlyFailed bool, admit func(d *workload.Dag) error) error {
	now := db.now().UTC()
	type cleared struct {
		oldID, newID string
		oldState     workload.State
		newState     workload.State
	}
	var done []cleared
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		done = done[:0]
		d, err := activeDag(ctx, tx, dagID)
		if err != nil {
			return err
		}
		if err := admit(d); err != nil {
			return err
		}
		var state string
		err = tx.QueryRow(ctx, `SELECT state FROM dag_run WHERE dag_id = $1 AND run_id = $2 FOR UPDATE`,
			dagID, runID).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("dag run %s/%s", dagID, runID)
		} else if err != nil {
			return err
		}
		q := `SELECT id::text, coalesce(state, '') FROM task_instance WHERE dag_id = $1 AND run_id = $2`
		if onlyFailed {
			q += ` AND state IN ('failed', 'upstream_failed')`
		}
		rows, err := tx.Query(ctx, q+` ORDER BY task_id, map_index FOR UPDATE`, dagID, runID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c cleared
			var st string
			if err := rows.Scan(&c.oldID, &st); err != nil {
				rows.Close()
				return err
			}
			c.oldState = workload.State(st)
			c.newID = workload.NewTryID(now)
			done = append(done, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range done {
			c := &done[i]
			if err := recordHistory(ctx, tx, c.oldID, now); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM task_reschedule WHERE ti_id = $1::uuid`, c.oldID); err != nil {
				return err
			}
			if c.oldState == workload.StateRunning {
				c.newState = workload.StateRestarting
				_, err = tx.Exec(ctx, `UPDATE task_instance SET id = $2::uuid, state = 'restarting', updated_at = $3,
						end_date = $3, duration = EXTRACT(EPOCH FROM ($3 - start_date))::float8
					WHERE id = $1::uuid`, c.oldID, c.newID, now)
			} else {
				_, err = tx.Exec(ctx, `UPDATE task_instance SET id = $2::uuid, state = NULL,
						max_tries = GREATEST(max_tries, try_number), external_executor_id = NULL,
						next_method = NULL, next_kwargs = NULL, updated_at = $3,
						end_date = CASE WHEN fin THEN end_date ELSE $3 END,
						duration = CASE WHEN fin THEN duration ELSE EXTRACT(EPOCH FROM ($3 - start_date))::float8 END
					FROM (SELECT coalesce(state = ANY($4), false) FROM task_instance WHERE id = $1::uuid) f(fin)
					WHERE id = $1::uuid`, c.oldID, c.newID, now, finishedStates)
			}
			if err != nil {
				return fmt.Errorf("pgstore: clear task instance %s: %w", c.oldID, err)
			}
		}
		if len(done) == 0 || (state != workload.DagRunSuccess && state != workload.DagRunFailed) {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE dag_run SET state = 'queued', queued_at = $3, start_date = NULL, end_date = NULL,
				last_scheduling_decision = NULL, clear_number = clear_number + 1, updated_at = $3
			WHERE dag_id = $1 AND run_id = $2`, dagID, runID, now)
		return err
	})
	if err != nil {
		return err
	}
	for _, c := range done {
		archived := c.oldState
		if !archived.Terminal() {
			archived = workload.StateFailed
		}
		db.ti.cache.put(c.oldID, workload.TryStatus{State: archived}, now)
		db.ti.cache.put(c.newID, workload.TryStatus{State: c.newState, Current: true}, now)
	}
	return nil
}

// CountDagRuns counts the dag runs matching f as Airflow's get_dr_count does.
func (db *DB) CountDagRuns(ctx context.Context, f workload.DagRunFilter) (int, error) {
	where := []string{"dag_id = $1"}
	args := []any{f.DagID}
	if len(f.LogicalDates) > 0 {
		dates := make([]time.Time, len(f.LogicalDates))
		for i, t := range f.LogicalDates {
			dates[i] = t.UTC()
		}
		args = append(args, dates)
		where = append(where, "logical_date = ANY($"+strconv.Itoa(len(args))+")")
	}
	if len(f.RunIDs) > 0 {
		args = append(args, f.RunIDs)
		where = append(where, "run_id = ANY($"+strconv.Itoa(len(args))+")")
	}
	if len(f.States) > 0 {
		args = append(args, f.States)
		where = append(where, "state = ANY($"+strconv.Itoa(len(args))+")")
	}
	var n int64
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM dag_run WHERE `+strings.Join(where, " AND "), args...).Scan(&n)
	})
	return int(n), err
}

// PreviousDagRun returns the dag run of dagID with the latest logical date
// before the given one, in state unless empty (Airflow's
// get_previous_dagrun), or an error wrapping workload.ErrNotFound.
func (db *DB) PreviousDagRun(ctx context.Context, dagID string, before time.Time, state string) (*workload.DagRun, error) {
	var out *workload.DagRun
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		var err error
		out, err = scanDagRun(tx.QueryRow(ctx, `SELECT `+dagRunColumns+`
			WHERE dr.dag_id = $1 AND dr.logical_date < $2 AND ($3 = '' OR dr.state = $3)
			ORDER BY dr.logical_date DESC LIMIT 1`, dagID, before.UTC(), state))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("dag run of %s before %s", dagID, before.UTC().Format(time.RFC3339Nano))
	}
	return out, err
}
