package store

import (
	"bytes"
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

// Variable returns the variable, or an error wrapping workload.ErrNotFound.
func (db *DB) Variable(ctx context.Context, key string) (*workload.Variable, error) {
	v, err := getRecord[workload.Variable](db, ctx, bucketVariables, key, "variable")
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, notFound("variable %s", key)
	}
	return v, nil
}

// PutVariable stores v, replacing any variable with the same key.
func (db *DB) PutVariable(ctx context.Context, v workload.Variable) error {
	if err := checkKey("variable key", []byte(v.Key)); err != nil {
		return err
	}
	enc, err := encodeJSON("variable "+v.Key, &v)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketVariables)
		if err != nil {
			return err
		}
		return put(b, []byte(v.Key), enc)
	})
}

// DeleteVariable removes the variable; a missing key is not an error, so a
// retried delete succeeds.
func (db *DB) DeleteVariable(ctx context.Context, key string) error {
	if err := checkKey("variable key", []byte(key)); err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketVariables)
		if err != nil {
			return err
		}
		return del(b, []byte(key))
	})
}

// VariableKeys lists the keys starting with prefix in byte order, skipping
// offset and returning at most limit (zero or negative: no limit), with the
// total number of keys matching prefix. keys is never nil.
func (db *DB) VariableKeys(ctx context.Context, prefix string, limit, offset int) (keys []string, total int, err error) {
	keys = []string{}
	offset = max(offset, 0)
	err = db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVariables)
		if b == nil {
			return nil
		}
		p := []byte(prefix)
		c := b.Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			if total >= offset && (limit <= 0 || len(keys) < limit) {
				keys = append(keys, string(k))
			}
			total++
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return keys, total, nil
}

// ListVariables returns every variable in key order, for the CLI. The result
// is never nil.
func (db *DB) ListVariables(ctx context.Context) ([]workload.Variable, error) {
	return listRecords[workload.Variable](db, ctx, bucketVariables, "variable")
}

// Connection returns the connection, or an error wrapping
// workload.ErrNotFound.
func (db *DB) Connection(ctx context.Context, id string) (*workload.Connection, error) {
	c, found, err := viewRecord(db, ctx, bucketConnections, id, func(data []byte) (*workload.Connection, error) {
		return db.decodeConnection(id, data)
	})
	if err == nil && !found {
		err = notFound("connection %s", id)
	}
	return c, err
}

// PutConnection stores c, replacing any connection with the same id. With
// Options.Secrets set, the password and extra are stored encrypted (see
// Cipher); the encryption runs here, in the caller's goroutine, not on the
// writer's.
func (db *DB) PutConnection(ctx context.Context, c workload.Connection) error {
	if err := checkKey("connection id", []byte(c.ConnID)); err != nil {
		return err
	}
	enc, err := db.encodeConnection(c)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketConnections)
		if err != nil {
			return err
		}
		return put(b, []byte(c.ConnID), enc)
	})
}

// DeleteConnection removes a connection; like DeleteVariable, a missing id is
// not an error, so a retried delete succeeds.
func (db *DB) DeleteConnection(ctx context.Context, id string) error {
	if err := checkKey("connection id", []byte(id)); err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketConnections)
		if err != nil {
			return err
		}
		return del(b, []byte(id))
	})
}

// ListConnections returns every connection in id order, for the CLI. The
// result is never nil. A connection that cannot be decrypted fails the whole
// list with an error naming it (wrapping ErrDecrypt), rather than being left
// out silently.
func (db *DB) ListConnections(ctx context.Context) ([]workload.Connection, error) {
	out := []workload.Connection{}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return db.eachConnection(tx, func(_, _ []byte, c *workload.Connection) error {
			out = append(out, *c)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachConnection calls fn with every stored connection, decrypted, in id
// order, with its key and stored bytes (valid only during fn).
func (db *DB) eachConnection(tx *bolt.Tx, fn func(key, data []byte, c *workload.Connection) error) error {
	b := tx.Bucket(bucketConnections)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, data []byte) error {
		c, err := db.decodeConnection(string(k), data)
		if err != nil {
			return err
		}
		return fn(k, data, c)
	})
}
