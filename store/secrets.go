package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

// Cipher encrypts connection secrets at rest, as Airflow does with its
// [core] fernet_key: Encrypt uses the current key, Decrypt accepts a token of
// any configured key. fernet.MultiKey implements it; the store declares the
// interface so that it knows no key format.
//
// Why: the database file's 0600 mode protects it on the host, but not in a
// backup, a copied volume or a support bundle. With the key kept apart from
// the file (a separate file or the configuration), a copy of the database
// alone does not reveal a single password.
type Cipher interface {
	Encrypt(plain []byte) (string, error)
	Decrypt(token string) ([]byte, error)
}

// ErrDecrypt wraps every failure to decrypt a stored connection secret: the
// key that encrypted it is no longer configured, no key is configured at all,
// or the token was damaged. The error names the connection and the field, so
// the gateway's log of the 500 says what to fix.
var ErrDecrypt = errors.New("store: cannot decrypt")

// connectionRecord is a stored connection. An encrypted password or extra is
// kept under its own name (password_enc, extra_enc) with the plaintext field
// null, so a record says by itself whether it is encrypted: records written
// before encryption (plain "password") still read, and Rotate finds them.
type connectionRecord struct {
	workload.Connection
	PasswordEnc *string `json:"password_enc,omitempty"`
	ExtraEnc    *string `json:"extra_enc,omitempty"`
}

// encodeConnection encodes c, encrypting its password and extra when the DB
// has a cipher.
func (db *DB) encodeConnection(c workload.Connection) ([]byte, error) {
	rec := connectionRecord{Connection: c}
	if db.secrets != nil {
		var err error
		if rec.PasswordEnc, err = db.seal(c.ConnID, "password", c.Password); err != nil {
			return nil, err
		}
		if rec.ExtraEnc, err = db.seal(c.ConnID, "extra", c.Extra); err != nil {
			return nil, err
		}
		if rec.PasswordEnc != nil {
			rec.Password = nil
		}
		if rec.ExtraEnc != nil {
			rec.Extra = nil
		}
	}
	return encodeJSON("connection "+c.ConnID, &rec)
}

func (db *DB) seal(id, field string, plain *string) (*string, error) {
	if plain == nil {
		return nil, nil
	}
	tok, err := db.secrets.Encrypt([]byte(*plain))
	if err != nil {
		return nil, fmt.Errorf("store: encrypt connection %s %s: %w", id, field, err)
	}
	return &tok, nil
}

// decodeConnection decodes a stored connection, decrypting what is
// encrypted.
func (db *DB) decodeConnection(id string, data []byte) (*workload.Connection, error) {
	var rec connectionRecord
	if err := decodeJSON("connection "+id, data, &rec); err != nil {
		return nil, err
	}
	c := rec.Connection
	if rec.PasswordEnc != nil {
		if c.Password != nil {
			return nil, fmt.Errorf("store: decode connection %s: both password and password_enc: %w", id, ErrCorrupt)
		}
		p, err := db.unseal(id, "password", *rec.PasswordEnc)
		if err != nil {
			return nil, err
		}
		c.Password = &p
	}
	if rec.ExtraEnc != nil {
		if c.Extra != nil {
			return nil, fmt.Errorf("store: decode connection %s: both extra and extra_enc: %w", id, ErrCorrupt)
		}
		x, err := db.unseal(id, "extra", *rec.ExtraEnc)
		if err != nil {
			return nil, err
		}
		c.Extra = &x
	}
	return &c, nil
}

func (db *DB) unseal(id, field, token string) (string, error) {
	if db.secrets == nil {
		return "", fmt.Errorf("%w connection %s %s: it is encrypted and no fernet key is configured", ErrDecrypt, id, field)
	}
	plain, err := db.secrets.Decrypt(token)
	if err != nil {
		return "", fmt.Errorf("%w connection %s %s: %w (is the fernet key that encrypted it still configured?)", ErrDecrypt, id, field, err)
	}
	return string(plain), nil
}

// rotateBatch is how many connections one RotateSecrets transaction
// rewrites: each batch is one durable commit, small enough not to hold up
// the other writes sharing the writer.
const rotateBatch = 256

// RotateSecrets re-encrypts the password and extra of every connection with
// the cipher's current (first) key, and encrypts those stored in plaintext
// before encryption was configured. It returns how many connections it
// rewrote.
//
// Every connection is decrypted before anything is written: if one cannot be
// (its key is no longer configured), RotateSecrets fails with ErrDecrypt and
// changes nothing. The rewrites then commit in batches; an interruption
// leaves each connection under either key, both still configured, and
// running it again finishes the job. A connection changed or deleted
// meanwhile is left as it is: PutConnection already used the current key.
//
// Encrypting a plaintext record does not scrub its old bytes from the file:
// bbolt reuses freed pages but does not zero them. Compacting the file (bbolt
// compact) after the rotation removes them.
func (db *DB) RotateSecrets(ctx context.Context) (int, error) {
	if db.readOnly {
		return 0, ErrReadOnly
	}
	if db.secrets == nil {
		return 0, errors.New("store: rotate secrets: no cipher configured")
	}
	type rewrite struct{ key, old, new []byte }
	var todo []rewrite
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return db.eachConnection(tx, func(k, data []byte, c *workload.Connection) error {
			if c.Password == nil && c.Extra == nil {
				return nil
			}
			enc, err := db.encodeConnection(*c)
			if err != nil {
				return err
			}
			todo = append(todo, rewrite{key: bytes.Clone(k), old: bytes.Clone(data), new: enc})
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("store: rotate secrets: %w", err)
	}
	done := 0
	for len(todo) > 0 {
		batch := todo[:min(rotateBatch, len(todo))]
		todo = todo[len(batch):]
		var n int
		err := db.write(ctx, func(tx *bolt.Tx) error {
			n = 0 // the writer may run this again after another write aborted
			b, err := bucket(tx, bucketConnections)
			if err != nil {
				return err
			}
			for _, r := range batch {
				if !bytes.Equal(b.Get(r.key), r.old) {
					continue
				}
				if err := put(b, r.key, r.new); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return done, fmt.Errorf("store: rotate secrets: %w", err)
		}
		done += n
	}
	return done, nil
}
