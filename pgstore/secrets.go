package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

// The stores of what tasks read and write besides their task instance.
var (
	_ workload.Variables   = (*DB)(nil)
	_ workload.Connections = (*DB)(nil)
	_ workload.XComs       = (*DB)(nil)
)

// Cipher is Airflow's Fernet with [core] fernet_key, as
// airflow/models/crypto.py get_fernet builds it (a MultiFernet of the
// comma-separated keys): Encrypt makes a token with the first key, Decrypt
// accepts a token of any key and checks no TTL, Rotate re-encrypts a token
// of any key with the first, keeping its timestamp (MultiFernet.rotate).
// fernet.MultiKey implements it; pgstore declares it so that it knows no
// key format.
type Cipher interface {
	Encrypt(plain []byte) (string, error)
	Decrypt(token string) ([]byte, error)
	Rotate(token string) (string, error)
}

// ErrDecrypt wraps every failure to read an encrypted variable or
// connection field: no fernet_key is configured, none of its keys made the
// token, or the token is damaged. The error names the row and the field, so
// that the log of the 500 says what to fix; it never holds the value.
var ErrDecrypt = errors.New("pgstore: cannot decrypt")

// encrypt is Airflow's encryption of a value about to be stored: the token
// and true with a cipher, the value itself and false without one
// (_NullFernet, whose is_encrypted is false).
func (db *DB) encrypt(what string, plain string) (stored string, encrypted bool, err error) {
	if db.opts.Cipher == nil {
		return plain, false, nil
	}
	tok, err := db.opts.Cipher.Encrypt([]byte(plain))
	if err != nil {
		return "", false, fmt.Errorf("pgstore: encrypt %s: %w", what, err)
	}
	return tok, true, nil
}

// decrypt reads a value stored with its is_encrypted flag set. The flag
// alone says whether a value is a token: a value is never guessed to be one
// from what it looks like.
func (db *DB) decrypt(what string, token string) (string, error) {
	if db.opts.Cipher == nil {
		return "", fmt.Errorf("%w %s: it is encrypted and no [core] fernet_key is configured", ErrDecrypt, what)
	}
	plain, err := db.opts.Cipher.Decrypt(token)
	if err != nil {
		return "", fmt.Errorf("%w %s: %w (is the fernet_key that encrypted it still among [core] fernet_key?)", ErrDecrypt, what, err)
	}
	return string(plain), nil
}

// RotateSecrets re-encrypts with the first fernet key every value stored
// encrypted, as `airflow rotate-fernet-key` does: the val of variables with
// is_encrypted, the password of connections with is_encrypted and the extra
// of those with is_extra_encrypted. Values stored in clear stay in clear,
// as Airflow leaves them. It returns how many values it re-encrypted.
//
// It runs in one transaction, locking the rows it rewrites, so that a
// concurrent write of the same row is not lost. If one token is made by no
// configured key, nothing changes and the error (wrapping ErrDecrypt) names
// its row.
func (db *DB) RotateSecrets(ctx context.Context) (int, error) {
	if db.opts.Cipher == nil {
		return 0, errors.New("pgstore: rotate secrets: no [core] fernet_key configured")
	}
	var n int
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		n = 0
		vars, err := db.rotateColumn(ctx, tx, "variable", "key", "val", "is_encrypted")
		if err != nil {
			return err
		}
		pwds, err := db.rotateColumn(ctx, tx, "connection", "conn_id", "password", "is_encrypted")
		if err != nil {
			return err
		}
		extras, err := db.rotateColumn(ctx, tx, "connection", "conn_id", "extra", "is_extra_encrypted")
		if err != nil {
			return err
		}
		keys, err := db.rotateKeySet(ctx, tx)
		if err != nil {
			return err
		}
		n = vars + pwds + extras + keys
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pgstore: rotate secrets: %w", err)
	}
	return n, nil
}

// rotateColumn rotates the tokens of one encrypted column (the names are
// constants of RotateSecrets, never input), locking the rows it reads.
func (db *DB) rotateColumn(ctx context.Context, tx pgx.Tx, table, idCol, col, flag string) (int, error) {
	rows, err := tx.Query(ctx, `SELECT id, `+idCol+`, `+col+` FROM `+table+
		` WHERE `+flag+` AND `+col+` IS NOT NULL AND `+col+` <> '' ORDER BY id FOR UPDATE`)
	if err != nil {
		return 0, err
	}
	type rewrite struct {
		id    int64
		token string
	}
	var todo []rewrite
	var (
		id        int64
		name, tok string
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &name, &tok}, func() error {
		rotated, err := db.opts.Cipher.Rotate(tok)
		if err != nil {
			return fmt.Errorf("%w %s %s %s: %w", ErrDecrypt, table, name, col, err)
		}
		todo = append(todo, rewrite{id, rotated})
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, r := range todo {
		if _, err := tx.Exec(ctx, `UPDATE `+table+` SET `+col+` = $1 WHERE id = $2`, r.token, r.id); err != nil {
			return 0, err
		}
	}
	return len(todo), nil
}

// rotateKeySet re-encrypts the signing key set when it is stored encrypted,
// and returns how many values it rewrote (0 or 1).
func (db *DB) rotateKeySet(ctx context.Context, tx pgx.Tx) (int, error) {
	var tok string
	err := tx.QueryRow(ctx, `SELECT document FROM taskgate.key_set WHERE id = 1 AND is_encrypted FOR UPDATE`).Scan(&tok)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	rotated, err := db.opts.Cipher.Rotate(tok)
	if err != nil {
		return 0, fmt.Errorf("%w the signing key set: %w", ErrDecrypt, err)
	}
	_, err = tx.Exec(ctx, `UPDATE taskgate.key_set SET document = $1 WHERE id = 1`, rotated)
	return 1, err
}
