package pgstore

// Human-in-the-loop details in Airflow's hitl_detail, read and written as
// Airflow's routes/hitl.py does. Its ti_id follows the task_instance row
// (ON UPDATE CASCADE): when Airflow gives the row a new id for the next
// try, the detail moves with it, so a try's detail is looked up by the id
// of the task_instance row the try currently occupies.

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/internal/pyjson"
	"github.com/taskgate/taskgate/workload"
)

const hitlColumns = `ti_id::text, options, subject, body, defaults, multiple, params, assignees,
	created_at, responded_at, responded_by, chosen_options, params_input`

// selectHITL reads the detail of the task_instance row rowID; nil when it
// has none. The row is locked when forUpdate.
func selectHITL(ctx context.Context, tx pgx.Tx, rowID string, forUpdate bool) (*workload.HITLDetail, error) {
	sql := `SELECT ` + hitlColumns + ` FROM hitl_detail WHERE ti_id = $1::uuid`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	var (
		h                                                    workload.HITLDetail
		options, defaults, params, assignees, by, chosen, in []byte
		multiple                                             *bool
		respondedAt                                          *time.Time
	)
	err := tx.QueryRow(ctx, sql, rowID).Scan(&h.TIID, &options, &h.Subject, &h.Body, &defaults, &multiple,
		&params, &assignees, &h.CreatedAt, &respondedAt, &by, &chosen, &in)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if multiple != nil {
		h.Multiple = *multiple
	}
	h.CreatedAt = h.CreatedAt.UTC()
	if respondedAt != nil {
		t := respondedAt.UTC()
		h.RespondedAt = &t
	}
	for _, f := range []struct {
		raw []byte
		v   any
	}{{options, &h.Options}, {defaults, &h.Defaults}, {assignees, &h.Assignees}, {by, &h.RespondedBy}, {chosen, &h.ChosenOptions}} {
		if len(f.raw) == 0 {
			continue
		}
		if err := json.Unmarshal(f.raw, f.v); err != nil {
			return nil, errors.New("pgstore: hitl_detail " + rowID + ": " + err.Error())
		}
	}
	h.Params, h.ParamsInput = nullJSON(params), nullJSON(in)
	return &h, nil
}

// hitlJSON encodes v for a json column as Python's json.dumps writes it; a
// nil v is SQL NULL.
func hitlJSON(v any) (any, error) {
	switch x := v.(type) {
	case json.RawMessage:
		if len(x) == 0 {
			return nil, nil
		}
		return pyjson.Dumps(x, false)
	case []string:
		if x == nil {
			return nil, nil
		}
	case *workload.HITLUser:
		if x == nil {
			return nil, nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return pyjson.Dumps(b, false)
}

// currentRow returns the task_instance row id of the current try id,
// locked when forUpdate, or ErrNotFound.
func currentRow(ctx context.Context, tx pgx.Tx, id string, forUpdate bool) (string, error) {
	loc, err := locate(ctx, tx, id, forUpdate)
	if err != nil {
		return "", err
	}
	if !loc.current {
		return "", notFound("task instance %s (an earlier try)", id)
	}
	return loc.row.rowID, nil
}

// HITLDetail returns the try's Human-in-the-loop detail, or
// workload.ErrHITLNotFound.
func (db *DB) HITLDetail(ctx context.Context, tiID string) (*workload.HITLDetail, error) {
	var out *workload.HITLDetail
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		rowID, err := currentRow(ctx, tx, tiID, false)
		if err != nil {
			return err
		}
		out, err = selectHITL(ctx, tx, rowID, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, workload.ErrHITLNotFound
	}
	return out, nil
}

// UpdateHITLDetail locks the try's task_instance row and then its
// hitl_detail row (Airflow's lock order), calls fn and inserts or updates
// the detail fn returns when it reports a change.
func (db *DB) UpdateHITLDetail(ctx context.Context, tiID string,
	fn func(h *workload.HITLDetail) (*workload.HITLDetail, bool, error)) (*workload.HITLDetail, error) {
	var out *workload.HITLDetail
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		out = nil
		rowID, err := currentRow(ctx, tx, tiID, true)
		if err != nil {
			return err
		}
		cur, err := selectHITL(ctx, tx, rowID, true)
		if err != nil {
			return err
		}
		next, changed, err := fn(cur)
		if err != nil {
			return err
		}
		out = next
		if !changed {
			return nil
		}
		args := []any{rowID}
		for _, v := range []any{next.Options, next.Defaults, next.Params, next.Assignees, next.RespondedBy,
			next.ChosenOptions, next.ParamsInput} {
			if a, ok := v.([]workload.HITLUser); ok && a == nil {
				v = []workload.HITLUser{} // Airflow stores the list it was given, [] by default
			}
			enc, err := hitlJSON(v)
			if err != nil {
				return err
			}
			args = append(args, enc)
		}
		args = append(args, next.Subject, next.Body, next.Multiple, next.CreatedAt, timeArg(next.RespondedAt))
		if cur == nil {
			_, err = tx.Exec(ctx, `INSERT INTO hitl_detail (ti_id, options, defaults, params, assignees, responded_by,
				chosen_options, params_input, subject, body, multiple, created_at, responded_at)
				VALUES ($1::uuid, $2, $3, coalesce($4::json, '{}'::json), $5, $6, $7, coalesce($8::json, '{}'::json), $9, $10, $11, $12, $13)`, args...)
			return err
		}
		// Only the response changes once a detail exists (UpsertHITL,
		// RespondHITL): the request stays as its writer stored it.
		_, err = tx.Exec(ctx, `UPDATE hitl_detail SET responded_by = $2, chosen_options = $3,
			params_input = coalesce($4::json, '{}'::json), responded_at = $5 WHERE ti_id = $1::uuid`,
			rowID, args[5], args[6], args[7], timeArg(next.RespondedAt))
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateTaskInstanceHITL is UpdateTaskInstance whose fn also sees the try's
// Human-in-the-loop detail, locked after the task instance row.
func (db *DB) UpdateTaskInstanceHITL(ctx context.Context, id string,
	fn func(ti *workload.TaskInstance, h *workload.HITLDetail) error) (*workload.TaskInstance, error) {
	return db.updateTI(ctx, id, true, fn)
}
