package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

// Airflow's connection table (airflow/models/connection.py and the
// password/extra fields of airflow/models/crypto.py): conn_id unique,
// conn_type NOT NULL, description, host, schema, login, password, port,
// extra, is_encrypted and is_extra_encrypted (NOT NULL since 3.2), team_name.
// password is the Fernet token when is_encrypted, extra when
// is_extra_encrypted. description and team_name are not part of a task's
// connection and are kept as they are.

const connectionColumns = `conn_id, conn_type, host, "schema", login, password, port, extra, is_encrypted, is_extra_encrypted`

// connectionRow is a connection's columns as stored.
type connectionRow struct {
	workload.Connection
	passwordEncrypted, extraEncrypted bool
}

func (r *connectionRow) dest() []any {
	return []any{&r.ConnID, &r.ConnType, &r.Host, &r.Schema, &r.Login, &r.Password, &r.Port, &r.Extra,
		&r.passwordEncrypted, &r.extraEncrypted}
}

// open returns the connection, decrypting the password and the extra whose
// flags say they are tokens (get_password, get_extra: a non-empty value with
// its flag set).
func (db *DB) openConnection(r *connectionRow) (*workload.Connection, error) {
	c := workload.Connection{
		ConnID: r.ConnID, ConnType: r.ConnType, Host: clone(r.Host), Schema: clone(r.Schema),
		Login: clone(r.Login), Password: clone(r.Password), Port: clone(r.Port), Extra: clone(r.Extra),
	}
	var err error
	if c.Password, err = db.openField(c.ConnID, "password", c.Password, r.passwordEncrypted); err != nil {
		return nil, err
	}
	if c.Extra, err = db.openField(c.ConnID, "extra", c.Extra, r.extraEncrypted); err != nil {
		return nil, err
	}
	return &c, nil
}

func (db *DB) openField(id, field string, v *string, encrypted bool) (*string, error) {
	if v == nil || *v == "" || !encrypted {
		return v, nil
	}
	plain, err := db.decrypt("connection "+id+" "+field, *v)
	if err != nil {
		return nil, err
	}
	return &plain, nil
}

// sealField is Airflow's set_password and set_extra: a non-empty value is
// encrypted, its flag saying whether a fernet_key did it; nil or empty is
// stored as it is with the flag false.
func (db *DB) sealField(id, field string, v *string) (*string, bool, error) {
	if v == nil || *v == "" {
		return v, false, nil
	}
	stored, enc, err := db.encrypt("connection "+id+" "+field, *v)
	if err != nil {
		return nil, false, err
	}
	return &stored, enc, nil
}

// Connection returns the connection, decrypted, or an error wrapping
// workload.ErrNotFound.
func (db *DB) Connection(ctx context.Context, id string) (*workload.Connection, error) {
	var r connectionRow
	err := db.pool.QueryRow(ctx, `SELECT `+connectionColumns+` FROM connection WHERE conn_id = $1`, id).Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: connection %s: %w", id, workload.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: connection %s: %w", id, classify(err))
	}
	return db.openConnection(&r)
}

// PutConnection stores c, replacing the connection with the same conn_id
// (its description and team_name are kept), with the password and extra
// encrypted as Airflow encrypts them.
func (db *DB) PutConnection(ctx context.Context, c workload.Connection) error {
	password, passwordEnc, err := db.sealField(c.ConnID, "password", c.Password)
	if err != nil {
		return err
	}
	extra, extraEnc, err := db.sealField(c.ConnID, "extra", c.Extra)
	if err != nil {
		return err
	}
	err = db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO connection (`+connectionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (conn_id) DO UPDATE
			SET conn_type = EXCLUDED.conn_type, host = EXCLUDED.host, "schema" = EXCLUDED."schema",
			    login = EXCLUDED.login, password = EXCLUDED.password, port = EXCLUDED.port,
			    extra = EXCLUDED.extra, is_encrypted = EXCLUDED.is_encrypted,
			    is_extra_encrypted = EXCLUDED.is_extra_encrypted`,
			c.ConnID, c.ConnType, c.Host, c.Schema, c.Login, password, c.Port, extra, passwordEnc, extraEnc)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: put connection %s: %w", c.ConnID, err)
	}
	return nil
}

// DeleteConnection removes a connection; a missing id is not an error, so
// a retried delete succeeds.
func (db *DB) DeleteConnection(ctx context.Context, id string) error {
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM connection WHERE conn_id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: delete connection %s: %w", id, err)
	}
	return nil
}

// ListConnections returns every connection, decrypted, in conn_id byte
// order. The result is never nil. A connection that cannot be decrypted
// fails the whole list with an error naming it (wrapping ErrDecrypt) rather
// than being left out silently.
func (db *DB) ListConnections(ctx context.Context) ([]workload.Connection, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+connectionColumns+` FROM connection ORDER BY conn_id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: list connections: %w", classify(err))
	}
	out := []workload.Connection{}
	var r connectionRow
	_, err = pgx.ForEachRow(rows, r.dest(), func() error {
		c, err := db.openConnection(&r)
		if err != nil {
			return err
		}
		out = append(out, *c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: list connections: %w", classify(err))
	}
	return out, nil
}
