package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

// DAG processor Jobs (workload.Jobs) in taskgate.job (migration 6): the
// rows Airflow's /jobs routes write to its job table, locked as they lock
// them (SELECT … FOR UPDATE).

const jobColumns = `id, job_type, state, start_date, end_date, latest_heartbeat, hostname, unixname,
	bundle_names, session_id::text, registration_id::text`

type jobQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func scanJob(row pgx.Row, what string) (*workload.Job, error) {
	var (
		j                    workload.Job
		jobType, state, host *string
		bundles              []byte
		session, reg         *string
	)
	err := row.Scan(&j.ID, &jobType, &state, &j.StartDate, &j.EndDate, &j.LatestHeartbeat, &host, &j.Unixname,
		&bundles, &session, &reg)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: %s: %w", what, workload.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", what, classify(err))
	}
	if jobType != nil {
		j.JobType = *jobType
	}
	if state != nil {
		j.State = workload.JobState(*state)
	}
	if host != nil {
		j.Hostname = *host
	}
	if session != nil {
		j.SessionID = *session
	}
	if reg != nil {
		j.RegistrationID = *reg
	}
	if len(bundles) > 0 {
		if err := json.Unmarshal(bundles, &j.BundleNames); err != nil {
			return nil, fmt.Errorf("pgstore: %s: bundle_names: %w", what, err)
		}
	}
	j.StartDate = j.StartDate.UTC()
	j.LatestHeartbeat = j.LatestHeartbeat.UTC()
	if j.EndDate != nil {
		e := j.EndDate.UTC()
		j.EndDate = &e
	}
	return &j, nil
}

func selectJob(ctx context.Context, q jobQuerier, where, what string, arg any) (*workload.Job, error) {
	return scanJob(q.QueryRow(ctx, `SELECT `+jobColumns+` FROM taskgate.job WHERE `+where+` FOR UPDATE`, arg), what)
}

// Job returns the Job, or an error wrapping workload.ErrNotFound.
func (db *DB) Job(ctx context.Context, id int64) (*workload.Job, error) {
	return scanJob(db.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM taskgate.job WHERE id = $1`, id),
		fmt.Sprintf("job %d", id))
}

func nullableUUID(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// RegisterJob locks the registration's and the session's rows, asks
// decide, and writes its decision in the same transaction. A concurrent
// registration that inserted first makes the insert a unique violation;
// the transaction is then retried and finds its row.
func (db *DB) RegisterJob(ctx context.Context, registrationID, sessionID string,
	decide func(registered, previous *workload.Job) (workload.JobDecision, error)) (*workload.Job, error) {
	var out *workload.Job
	register := func(tx pgx.Tx) error {
		out = nil
		registered, err := selectJob(ctx, tx, `registration_id = $1`, "job of registration "+registrationID, registrationID)
		if err != nil && !errors.Is(err, workload.ErrNotFound) {
			return err
		}
		previous, err := selectJob(ctx, tx, `session_id = $1`, "job of session "+sessionID, sessionID)
		if err != nil && !errors.Is(err, workload.ErrNotFound) {
			return err
		}
		d, err := decide(registered, previous)
		if err != nil {
			return err
		}
		if d.Resume != nil {
			out = d.Resume
			return nil
		}
		if p := d.Replaced; p != nil {
			if _, err := tx.Exec(ctx, `UPDATE taskgate.job SET state = $2, end_date = $3, session_id = $4 WHERE id = $1`,
				p.ID, string(p.State), p.EndDate, nullableUUID(p.SessionID)); err != nil {
				return err
			}
		}
		j := *d.Insert
		bundles, err := json.Marshal(j.BundleNames)
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO taskgate.job (job_type, state, start_date, latest_heartbeat, hostname,
			unixname, bundle_names, session_id, registration_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
			j.JobType, string(j.State), j.StartDate, j.LatestHeartbeat, j.Hostname, j.Unixname, string(bundles),
			sessionID, registrationID).Scan(&j.ID); err != nil {
			return err
		}
		out = &j
		return nil
	}
	err := db.inTx(ctx, pgx.ReadCommitted, register)
	if uniqueViolation(err) {
		err = db.inTx(ctx, pgx.ReadCommitted, register)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateJob locks the Job's row, applies fn and writes its state, end and
// heartbeat in one transaction.
func (db *DB) UpdateJob(ctx context.Context, id int64, fn func(j *workload.Job) error) (*workload.Job, error) {
	var out *workload.Job
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		out = nil
		j, err := selectJob(ctx, tx, `id = $1`, fmt.Sprintf("job %d", id), id)
		if err != nil {
			return err
		}
		if err := fn(j); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE taskgate.job SET state = $2, end_date = $3, latest_heartbeat = $4,
			session_id = $5 WHERE id = $1`, id, string(j.State), j.EndDate, j.LatestHeartbeat,
			nullableUUID(j.SessionID)); err != nil {
			return err
		}
		out = j
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
