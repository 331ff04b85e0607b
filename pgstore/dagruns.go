package pgstore

// Dag runs on Airflow's dag_run rows. Mapping (workload.DagRun ⇄ dag_run):
// every field is the column of its name (conf plain jsonb, the dates
// UtcDateTime); TeamName is the team of the DAG's bundle (dag.bundle_name →
// dag_bundle_team.team_name, as Airflow's DagRun.team_name reads it), NULL
// outside multi-team mode; Note and ConsumedAssetEvents are left empty
// (dag_run_note and the asset events a run consumed are not read here).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

const dagRunColumns = `dr.dag_id, dr.run_id, dr.logical_date, dr.data_interval_start, dr.data_interval_end,
	dr.run_after, dr.start_date, dr.end_date, dr.clear_number, dr.run_type, dr.state, dr.conf,
	dr.triggering_user_name, dr.partition_key,
	(SELECT bt.team_name FROM dag d JOIN dag_bundle_team bt ON bt.dag_bundle_name = d.bundle_name
		WHERE d.dag_id = dr.dag_id)
	FROM dag_run dr`

func scanDagRun(row pgx.Row) (*workload.DagRun, error) {
	var (
		dr          workload.DagRun
		clear       int32
		state, conf *string
	)
	err := row.Scan(&dr.DagID, &dr.RunID, &dr.LogicalDate, &dr.DataIntervalStart, &dr.DataIntervalEnd,
		&dr.RunAfter, &dr.StartDate, &dr.EndDate, &clear, &dr.RunType, &state, &conf,
		&dr.TriggeringUserName, &dr.PartitionKey, &dr.TeamName)
	if err != nil {
		return nil, err
	}
	dr.ClearNumber, dr.State = int(clear), deref(state)
	if conf != nil && *conf != "null" {
		dr.Conf = []byte(*conf)
	}
	dr.RunAfter = dr.RunAfter.UTC()
	for _, p := range []**time.Time{&dr.LogicalDate, &dr.DataIntervalStart, &dr.DataIntervalEnd, &dr.StartDate, &dr.EndDate} {
		if *p != nil {
			t := (*p).UTC()
			*p = &t
		}
	}
	return &dr, nil
}

// DagRun returns the dag run, or an error wrapping workload.ErrNotFound.
func (db *DB) DagRun(ctx context.Context, dagID, runID string) (*workload.DagRun, error) {
	var out *workload.DagRun
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		var err error
		out, err = scanDagRun(tx.QueryRow(ctx, `SELECT `+dagRunColumns+` WHERE dr.dag_id = $1 AND dr.run_id = $2`, dagID, runID))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("dag run %s/%s", dagID, runID)
	}
	return out, err
}

// PreviousSuccessfulDagRun returns the dag run of dagID in state success
// with the latest logical date before the given one, as Airflow's
// previous-successful-dagrun route selects it, or an error wrapping
// workload.ErrNotFound.
func (db *DB) PreviousSuccessfulDagRun(ctx context.Context, dagID string, before time.Time) (*workload.DagRun, error) {
	var out *workload.DagRun
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		var err error
		out, err = scanDagRun(tx.QueryRow(ctx, `SELECT `+dagRunColumns+`
			WHERE dr.dag_id = $1 AND dr.logical_date < $2 AND dr.state = 'success'
			ORDER BY dr.logical_date DESC LIMIT 1`, dagID, before.UTC()))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("successful dag run of %s before %s", dagID, before.UTC().Format(time.RFC3339))
	}
	return out, err
}

// insertDagRun inserts dr unless the dag run exists, with the columns
// Airflow's DagRun model fills on insert (log_template_id the latest log
// template, clear_number 0, created_at and updated_at now).
func insertDagRun(ctx context.Context, tx pgx.Tx, dr workload.DagRun, now time.Time) error {
	conf := string(dr.Conf)
	if len(dr.Conf) == 0 {
		conf = "{}"
	}
	var queuedAt any
	if dr.State == "queued" {
		queuedAt = now
	}
	_, err := tx.Exec(ctx, `INSERT INTO dag_run (dag_id, run_id, queued_at, logical_date, start_date, end_date, state,
			run_type, triggering_user_name, conf, data_interval_start, data_interval_end, run_after, clear_number,
			log_template_id, created_at, updated_at, partition_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13, $14,
			(SELECT max(id) FROM log_template), $15, $15, $16)
		ON CONFLICT (dag_id, run_id) DO NOTHING`,
		dr.DagID, dr.RunID, queuedAt, timeArg(dr.LogicalDate), timeArg(dr.StartDate), timeArg(dr.EndDate),
		nullable(dr.State), dr.RunType, dr.TriggeringUserName, conf, timeArg(dr.DataIntervalStart),
		timeArg(dr.DataIntervalEnd), dr.RunAfter.UTC(), int32(dr.ClearNumber), now, dr.PartitionKey)
	if err != nil {
		return fmt.Errorf("pgstore: insert dag run %s/%s: %w", dr.DagID, dr.RunID, err)
	}
	return nil
}
