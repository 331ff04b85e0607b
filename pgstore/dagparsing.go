package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

// A DAG processor's published parse results (workload.DagParsing), written
// to Airflow's rows as update_dag_parsing_results_in_db writes a file's
// results: the dag rows, a dag_version with its serialized_dag and dag_code
// when a DAG's hash changed, dag_tag, import_error and dag_warning, with
// the file's checkpoint in taskgate.dag_parse_checkpoint (migration 7), all
// in one transaction that locks the Job, the bundle and the DAGs' rows.

var _ workload.DagParsing = (*DB)(nil)

// PublishParseResult reads and locks what decide needs, and writes the
// publication unless decide answers otherwise. A DAG another publication
// created after this one read its rows makes the insert a unique
// violation; the transaction is then run again, and sees that row.
func (db *DB) PublishParseResult(ctx context.Context, r *workload.ParseResult, now time.Time,
	decide func(s workload.ParseState) (*workload.ParseReceipt, error)) (workload.ParseReceipt, error) {
	now = now.UTC()
	var out workload.ParseReceipt
	publish := func(tx pgx.Tx) error {
		s, err := readParseState(ctx, tx, r)
		if err != nil {
			return err
		}
		receipt, err := decide(s)
		if err != nil {
			return err
		}
		if receipt != nil {
			out = *receipt
			return nil
		}
		existing := map[string]bool{}
		for _, d := range s.Existing {
			existing[d.DagID] = true
		}
		if err := writeParseResult(ctx, tx, r, existing, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO taskgate.dag_parse_checkpoint (job_id, source_key, attempt_id,
				dispatch_sequence, payload_hash, accepted_at) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (job_id, source_key) DO UPDATE SET attempt_id = EXCLUDED.attempt_id,
				dispatch_sequence = EXCLUDED.dispatch_sequence, payload_hash = EXCLUDED.payload_hash,
				accepted_at = EXCLUDED.accepted_at`,
			r.JobID, r.SourceKey, r.AttemptID, r.DispatchSequence, r.PayloadHash, now); err != nil {
			return fmt.Errorf("pgstore: checkpoint of job %d: %w", r.JobID, err)
		}
		out = workload.ParseReceipt{AttemptID: r.AttemptID, AcceptedAt: now}
		return nil
	}
	err := db.inTx(ctx, pgx.ReadCommitted, publish)
	if uniqueViolation(err) {
		err = db.inTx(ctx, pgx.ReadCommitted, publish)
	}
	if err != nil {
		return workload.ParseReceipt{}, err
	}
	return out, nil
}

// readParseState locks the Job (which serializes the Job's publications
// and fences its completion), reads the file's checkpoint, and locks the
// bundle and the rows of the publication's DAGs.
func readParseState(ctx context.Context, tx pgx.Tx, r *workload.ParseResult) (workload.ParseState, error) {
	var s workload.ParseState
	j, err := selectJob(ctx, tx, `id = $1`, fmt.Sprintf("job %d", r.JobID), r.JobID)
	if err != nil && !errors.Is(err, workload.ErrNotFound) {
		return s, err
	}
	s.Job = j
	if s.Job == nil {
		return s, nil
	}
	var cp workload.ParseCheckpoint
	err = tx.QueryRow(ctx, `SELECT attempt_id::text, dispatch_sequence, payload_hash, accepted_at
		FROM taskgate.dag_parse_checkpoint WHERE job_id = $1 AND source_key = $2`, r.JobID, r.SourceKey).
		Scan(&cp.AttemptID, &cp.DispatchSequence, &cp.PayloadHash, &cp.AcceptedAt)
	switch {
	case err == nil:
		cp.JobID, cp.SourceKey, cp.AcceptedAt = r.JobID, r.SourceKey, cp.AcceptedAt.UTC()
		s.Checkpoint = &cp
	case !errors.Is(err, pgx.ErrNoRows):
		return s, fmt.Errorf("pgstore: checkpoint of job %d: %w", r.JobID, err)
	}
	var active *bool
	err = tx.QueryRow(ctx, `SELECT active FROM dag_bundle WHERE name = $1 FOR UPDATE`, r.BundleName).Scan(&active)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("pgstore: dag bundle %s: %w", r.BundleName, err)
	}
	s.BundleActive = active != nil && *active
	rows, err := tx.Query(ctx, `SELECT d.dag_id, d.bundle_name, d.relative_fileloc, d.is_stale, coalesce(b.active, false),
			EXISTS (SELECT 1 FROM dag_version v WHERE v.dag_id = d.dag_id)
		FROM dag d LEFT JOIN dag_bundle b ON b.name = d.bundle_name
		WHERE d.dag_id = ANY($1) ORDER BY d.dag_id FOR UPDATE OF d`, r.DagIDs())
	if err != nil {
		return s, fmt.Errorf("pgstore: dags of the parse result: %w", err)
	}
	s.Existing, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (workload.ExistingDag, error) {
		var d workload.ExistingDag
		err := row.Scan(&d.DagID, &d.BundleName, &d.RelativeFileloc, &d.IsStale, &d.OwnerBundleActive, &d.HasVersions)
		return d, err
	})
	if err != nil {
		return s, fmt.Errorf("pgstore: dags of the parse result: %w", err)
	}
	return s, nil
}

// writeParseResult writes the publication's rows: each DAG's dag row (a
// new one paused as its is_paused_upon_creation says; an existing one
// keeps is_paused), its tags, its version when its hash changed (or its
// code when only that changed), then the files' import errors and the
// DAGs' warnings.
func writeParseResult(ctx context.Context, tx pgx.Tx, r *workload.ParseResult, existing map[string]bool, now time.Time) error {
	for i := range r.Dags {
		d := &r.Dags[i]
		if err := writeDagRow(ctx, tx, r, d, existing[d.DagID], now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM dag_tag WHERE dag_id = $1 AND NOT (name = ANY($2))`,
			d.DagID, nonNil(d.Tags)); err != nil {
			return fmt.Errorf("pgstore: tags of dag %s: %w", d.DagID, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO dag_tag (name, dag_id) SELECT unnest($2::text[]), $1
			ON CONFLICT DO NOTHING`, d.DagID, nonNil(d.Tags)); err != nil {
			return fmt.Errorf("pgstore: tags of dag %s: %w", d.DagID, err)
		}
		if err := writeDagVersion(ctx, tx, r, d, now); err != nil {
			return err
		}
	}
	if err := writeImportErrors(ctx, tx, r, now); err != nil {
		return err
	}
	return writeDagWarnings(ctx, tx, r, now)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writeDagRow is DagModelOperation.update_dags for one DAG: its columns
// from the serialized DAG, the publication's bundle and version, parsed
// now, not stale and without import errors.
func writeDagRow(ctx context.Context, tx pgx.Tx, r *workload.ParseResult, d *workload.ParsedDag, exists bool, now time.Time) error {
	args := []any{d.DagID, now, r.ParseDuration, d.Fileloc, d.RelativeFileloc, r.BundleName, r.BundleVersion,
		d.Owners, d.DisplayName, d.Description, d.TimetableType, d.TimetableSummary, d.TimetableDescription,
		d.MaxActiveTasks, d.MaxActiveRuns, d.MaxConsecutiveFailedDagRuns, d.HasTaskConcurrencyLimits, d.FailFast}
	var err error
	if exists {
		_, err = tx.Exec(ctx, `UPDATE dag SET is_stale = false, has_import_errors = false, last_parsed_time = $2,
				last_parse_duration = $3, fileloc = $4, relative_fileloc = $5, bundle_name = $6, bundle_version = $7,
				owners = $8, dag_display_name = $9, description = $10, timetable_type = $11, timetable_summary = $12,
				timetable_description = $13, max_active_tasks = $14, max_active_runs = $15,
				max_consecutive_failed_dag_runs = $16, has_task_concurrency_limits = $17, fail_fast = $18
			WHERE dag_id = $1`, args...)
	} else {
		_, err = tx.Exec(ctx, `INSERT INTO dag (dag_id, is_paused, is_stale, has_import_errors, last_parsed_time,
				last_parse_duration, fileloc, relative_fileloc, bundle_name, bundle_version, owners, dag_display_name,
				description, timetable_type, timetable_summary, timetable_description, max_active_tasks, max_active_runs,
				max_consecutive_failed_dag_runs, has_task_concurrency_limits, fail_fast)
			VALUES ($1, $19, false, false, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
			append(args, d.PausedOnCreation())...)
	}
	if err != nil {
		return fmt.Errorf("pgstore: dag %s: %w", d.DagID, err)
	}
	return nil
}

// writeDagVersion is SerializedDagModel.write_dag: a DAG whose latest
// serialized_dag has the same hash keeps its version, and only its code is
// brought up to date; otherwise the DAG gets its next dag_version, with
// the serialized_dag and dag_code rows of it.
func writeDagVersion(ctx context.Context, tx pgx.Tx, r *workload.ParseResult, d *workload.ParsedDag, now time.Time) error {
	var hash, version string
	err := tx.QueryRow(ctx, `SELECT dag_hash, dag_version_id::text FROM serialized_dag WHERE dag_id = $1
		ORDER BY created_at DESC LIMIT 1`, d.DagID).Scan(&hash, &version)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("pgstore: serialized dag of %s: %w", d.DagID, err)
	}
	if err == nil && hash == d.Hash {
		if _, err := tx.Exec(ctx, `UPDATE dag_code SET source_code = $2, source_code_hash = $3, last_updated = $4
			WHERE dag_version_id = $1 AND source_code_hash <> $3`, version, d.Source, d.SourceHash, now); err != nil {
			return fmt.Errorf("pgstore: code of dag %s: %w", d.DagID, err)
		}
		return nil
	}
	version = workload.NewTryID(now)
	if _, err := tx.Exec(ctx, `INSERT INTO dag_version (id, version_number, dag_id, bundle_name, bundle_version,
			created_at, last_updated)
		SELECT $1::uuid, coalesce(max(version_number), 0) + 1, $2::varchar, $3::varchar, $4::varchar,
			$5::timestamptz, $5::timestamptz FROM dag_version WHERE dag_id = $2::varchar`,
		version, d.DagID, r.BundleName, r.BundleVersion, now); err != nil {
		return fmt.Errorf("pgstore: version of dag %s: %w", d.DagID, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO serialized_dag (id, dag_id, data, data_compressed, created_at, last_updated,
			dag_hash, dag_version_id) VALUES ($1, $2, $3::json, NULL, $4, $4, $5, $6)`,
		workload.NewTryID(now), d.DagID, string(d.Data), now, d.Hash, version); err != nil {
		return fmt.Errorf("pgstore: serialized dag of %s: %w", d.DagID, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO dag_code (id, dag_id, fileloc, created_at, last_updated, source_code,
			source_code_hash, dag_version_id) VALUES ($1, $2, $3, $4, $4, $5, $6, $7)`,
		workload.NewTryID(now), d.DagID, d.Fileloc, now, d.Source, d.SourceHash, version); err != nil {
		return fmt.Errorf("pgstore: code of dag %s: %w", d.DagID, err)
	}
	return nil
}

// writeImportErrors is _update_import_errors for the bundle's parsed
// files: the errors of those parsed clean are removed, each error is
// updated or added, and the bundle's DAGs of a file with an error are
// marked stale with import errors.
func writeImportErrors(ctx context.Context, tx pgx.Tx, r *workload.ParseResult, now time.Time) error {
	var clean []string
	for _, f := range r.FilesParsed() {
		if _, bad := r.ImportErrors[f]; !bad {
			clean = append(clean, f)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM import_error WHERE bundle_name = $1 AND filename = ANY($2)`,
		r.BundleName, nonNil(clean)); err != nil {
		return fmt.Errorf("pgstore: import errors of bundle %s: %w", r.BundleName, err)
	}
	for _, f := range r.FilesParsed() {
		stack, bad := r.ImportErrors[f]
		if !bad {
			continue
		}
		tag, err := tx.Exec(ctx, `UPDATE import_error SET "timestamp" = $3, stacktrace = $4
			WHERE bundle_name = $1 AND filename = $2`, r.BundleName, f, now, stack)
		if err == nil && tag.RowsAffected() == 0 {
			_, err = tx.Exec(ctx, `INSERT INTO import_error ("timestamp", filename, bundle_name, stacktrace)
				VALUES ($3, $2, $1, $4)`, r.BundleName, f, now, stack)
		}
		if err == nil {
			_, err = tx.Exec(ctx, `UPDATE dag SET has_import_errors = true, is_stale = true
				WHERE bundle_name = $1 AND relative_fileloc = $2`, r.BundleName, f)
		}
		if err != nil {
			return fmt.Errorf("pgstore: import error of %s/%s: %w", r.BundleName, f, err)
		}
	}
	return nil
}

// writeDagWarnings is _update_dag_warnings with Airflow's default warning
// types: the DAGs' non-existent-pool warnings the publication no longer
// has are removed, and its warnings are added or replaced.
func writeDagWarnings(ctx context.Context, tx pgx.Tx, r *workload.ParseResult, now time.Time) error {
	keep := make([]string, 0, len(r.Warnings))
	for _, w := range r.Warnings {
		if w.WarningType == "non-existent pool" {
			keep = append(keep, w.DagID)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM dag_warning WHERE dag_id = ANY($1) AND warning_type = 'non-existent pool'
		AND NOT (dag_id = ANY($2))`, r.DagIDs(), keep); err != nil {
		return fmt.Errorf("pgstore: dag warnings: %w", err)
	}
	for _, w := range r.Warnings {
		if _, err := tx.Exec(ctx, `INSERT INTO dag_warning (dag_id, warning_type, message, "timestamp")
			VALUES ($1, $2, $3, $4) ON CONFLICT (dag_id, warning_type) DO UPDATE SET message = EXCLUDED.message,
				"timestamp" = EXCLUDED."timestamp"`, w.DagID, w.WarningType, w.Message, now); err != nil {
			return fmt.Errorf("pgstore: warning of dag %s: %w", w.DagID, err)
		}
	}
	return nil
}
