package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

// Connection tests live in taskgate.connection_test (migration 3): Airflow's
// own table came after 3.2. The connection under test is kept as Airflow
// keeps one in its connection table, password and extra sealed with the
// [core] fernet_key; a successful test queued to be saved writes Airflow's
// connection row in the same transaction that records the result.

const connectionTestColumns = `id, conn_id, conn_type, host, "schema", login, password, port, extra,
	is_encrypted, is_extra_encrypted, commit_on_success, state, result_message, created_at, updated_at, queued_by`

type connectionTestRow struct {
	conn connectionRow
	ct   workload.ConnectionTest
}

func (r *connectionTestRow) dest() []any {
	return append([]any{&r.ct.ID}, append(r.conn.dest(), &r.ct.CommitOnSuccess, &r.ct.State, &r.ct.ResultMessage,
		&r.ct.CreatedAt, &r.ct.UpdatedAt, &r.ct.QueuedBy)...)
}

func (db *DB) openConnectionTest(r *connectionTestRow) (*workload.ConnectionTest, error) {
	conn, err := db.openConnection(&r.conn)
	if err != nil {
		return nil, err
	}
	ct := r.ct
	ct.Connection = *conn
	ct.CreatedAt, ct.UpdatedAt = ct.CreatedAt.UTC(), ct.UpdatedAt.UTC()
	return &ct, nil
}

func scanConnectionTest(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, id, suffix string) (*connectionTestRow, error) {
	var r connectionTestRow
	err := q.QueryRow(ctx, `SELECT `+connectionTestColumns+` FROM taskgate.connection_test WHERE id = $1`+suffix, id).
		Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: connection test %s: %w", id, workload.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: connection test %s: %w", id, classify(err))
	}
	return &r, nil
}

// ConnectionTest returns the connection test, its connection decrypted, or
// an error wrapping workload.ErrNotFound.
func (db *DB) ConnectionTest(ctx context.Context, id string) (*workload.ConnectionTest, error) {
	r, err := scanConnectionTest(ctx, db.pool, id, "")
	if err != nil {
		return nil, err
	}
	return db.openConnectionTest(r)
}

// InsertConnectionTest stores a new connection test.
func (db *DB) InsertConnectionTest(ctx context.Context, ct workload.ConnectionTest) error {
	c := ct.Connection
	password, passwordEnc, err := db.sealField(c.ConnID, "password", c.Password)
	if err != nil {
		return err
	}
	extra, extraEnc, err := db.sealField(c.ConnID, "extra", c.Extra)
	if err != nil {
		return err
	}
	err = db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO taskgate.connection_test (`+connectionTestColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
			ct.ID, c.ConnID, c.ConnType, c.Host, c.Schema, c.Login, password, c.Port, extra, passwordEnc, extraEnc,
			ct.CommitOnSuccess, ct.State, ct.ResultMessage, ct.CreatedAt, ct.UpdatedAt, ct.QueuedBy)
		return err
	})
	if uniqueViolation(err) {
		return fmt.Errorf("pgstore: connection test %s: %w", ct.ID, workload.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("pgstore: insert connection test %s: %w", ct.ID, err)
	}
	return nil
}

// UpdateConnectionTest locks the test's row (SELECT … FOR UPDATE, as
// Airflow's route does), applies fn, writes the result and, for a
// successful test queued to be saved, Airflow's connection row, in one
// transaction.
func (db *DB) UpdateConnectionTest(ctx context.Context, id string,
	fn func(ct *workload.ConnectionTest) error) (*workload.ConnectionTest, error) {
	var out *workload.ConnectionTest
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		out = nil
		r, err := scanConnectionTest(ctx, tx, id, " FOR UPDATE")
		if err != nil {
			return err
		}
		ct, err := db.openConnectionTest(r)
		if err != nil {
			return err
		}
		if err := fn(ct); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE taskgate.connection_test SET state = $2, result_message = $3, updated_at = $4
			WHERE id = $1`, id, ct.State, ct.ResultMessage, ct.UpdatedAt); err != nil {
			return err
		}
		if c := ct.ToCommit(); c != nil {
			if err := db.putConnectionTx(ctx, tx, *c); err != nil {
				return err
			}
		}
		out = ct
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// putConnectionTx is PutConnection inside tx.
func (db *DB) putConnectionTx(ctx context.Context, tx pgx.Tx, c workload.Connection) error {
	password, passwordEnc, err := db.sealField(c.ConnID, "password", c.Password)
	if err != nil {
		return err
	}
	extra, extraEnc, err := db.sealField(c.ConnID, "extra", c.Extra)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO connection (`+connectionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (conn_id) DO UPDATE
		SET conn_type = EXCLUDED.conn_type, host = EXCLUDED.host, "schema" = EXCLUDED."schema",
		    login = EXCLUDED.login, password = EXCLUDED.password, port = EXCLUDED.port,
		    extra = EXCLUDED.extra, is_encrypted = EXCLUDED.is_encrypted,
		    is_extra_encrypted = EXCLUDED.is_extra_encrypted`,
		c.ConnID, c.ConnType, c.Host, c.Schema, c.Login, password, c.Port, extra, passwordEnc, extraEnc)
	return err
}

// Airflow's callback table (airflow/models/callback.py): id, type,
// fetch_method, data (JSON), state, output, priority_weight, created_at,
// trigger_id. The routes read and lock the row by id and write state and
// output, as Airflow's callbacks routes do. queued_by has no column: a
// callback is Airflow's scheduler's, or an operator's through taskgate.

const callbackColumns = `id, type, fetch_method, data, state, output, priority_weight, created_at`

type callbackRow struct {
	cb    workload.Callback
	data  []byte
	state *string
}

func (r *callbackRow) dest() []any {
	return []any{&r.cb.ID, &r.cb.Type, &r.cb.FetchMethod, &r.data, &r.state, &r.cb.Output, &r.cb.PriorityWeight,
		&r.cb.CreatedAt}
}

func (r *callbackRow) callback() *workload.Callback {
	cb := r.cb
	cb.Data = json.RawMessage(r.data)
	if r.state != nil {
		cb.State = workload.CallbackState(*r.state)
	}
	cb.CreatedAt = cb.CreatedAt.UTC()
	return &cb
}

func scanCallback(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, id, suffix string) (*workload.Callback, error) {
	var r callbackRow
	err := q.QueryRow(ctx, `SELECT `+callbackColumns+` FROM callback WHERE id = $1`+suffix, id).Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: callback %s: %w", id, workload.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: callback %s: %w", id, classify(err))
	}
	return r.callback(), nil
}

// Callback returns the callback, or an error wrapping workload.ErrNotFound.
func (db *DB) Callback(ctx context.Context, id string) (*workload.Callback, error) {
	return scanCallback(ctx, db.pool, id, "")
}

// InsertCallback stores a new callback row.
func (db *DB) InsertCallback(ctx context.Context, cb workload.Callback) error {
	data := []byte(cb.Data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	var state *string
	if cb.State != "" {
		s := string(cb.State)
		state = &s
	}
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO callback (`+callbackColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			cb.ID, cb.Type, cb.FetchMethod, string(data), state, cb.Output, cb.PriorityWeight, cb.CreatedAt)
		return err
	})
	if uniqueViolation(err) {
		return fmt.Errorf("pgstore: callback %s: %w", cb.ID, workload.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("pgstore: insert callback %s: %w", cb.ID, err)
	}
	return nil
}

// UpdateCallback locks the callback's row (SELECT … FOR UPDATE), applies
// fn and writes its state and output in one transaction.
func (db *DB) UpdateCallback(ctx context.Context, id string, fn func(cb *workload.Callback) error) (*workload.Callback, error) {
	var out *workload.Callback
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		out = nil
		cb, err := scanCallback(ctx, tx, id, " FOR UPDATE")
		if err != nil {
			return err
		}
		if err := fn(cb); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE callback SET state = $2, output = $3 WHERE id = $1`,
			id, string(cb.State), cb.Output); err != nil {
			return err
		}
		out = cb
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
