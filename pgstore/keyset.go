package pgstore

import (
	"bytes"
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// The signing key set (tokens.KeySet) is one document in taskgate's own
// table, so that every replica signs with the same active key and follows a
// rotation made on another (each reads it again every replicaBound). The
// document holds private keys: with a [core] fernet_key it is stored
// encrypted, as Airflow stores connection passwords, and `connections
// rotate-key` re-encrypts it with the others.

// KeySetDocument returns the stored key set document, nil when none is.
func (db *DB) KeySetDocument(ctx context.Context) ([]byte, error) {
	var doc []byte
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		var err error
		doc, err = db.readKeySet(ctx, tx, "")
		return err
	})
	return doc, err
}

// SwapKeySetDocument stores doc when the stored document is still old (nil:
// none), under the row's lock, and reports whether it did.
func (db *DB) SwapKeySetDocument(ctx context.Context, old, doc []byte) (bool, error) {
	swapped := false
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		swapped = false
		// The first key set of a database: the advisory lock orders
		// replicas starting together, which have no row to lock yet.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(8386114060015411302)`); err != nil {
			return err
		}
		cur, err := db.readKeySet(ctx, tx, " FOR UPDATE")
		if err != nil {
			return err
		}
		if (cur == nil) != (old == nil) || !bytes.Equal(cur, old) {
			return nil
		}
		stored, encrypted, err := db.encrypt("the signing key set", string(doc))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO taskgate.key_set (id, document, is_encrypted, updated_at) VALUES (1, $1, $2, $3)
			ON CONFLICT (id) DO UPDATE SET document = excluded.document, is_encrypted = excluded.is_encrypted,
			updated_at = excluded.updated_at`, stored, encrypted, db.now().UTC())
		swapped = err == nil
		return err
	})
	return swapped, err
}

// readKeySet reads and decrypts the document; lock is "" or " FOR UPDATE".
func (db *DB) readKeySet(ctx context.Context, tx pgx.Tx, lock string) ([]byte, error) {
	var stored string
	var encrypted bool
	err := tx.QueryRow(ctx, `SELECT document, is_encrypted FROM taskgate.key_set WHERE id = 1`+lock).Scan(&stored, &encrypted)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !encrypted {
		return []byte(stored), nil
	}
	plain, err := db.decrypt("the signing key set", stored)
	return []byte(plain), err
}
