package store

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

// connectionTestRecord is a stored connection test: the test without its
// connection, and the connection encoded as the connections bucket keeps
// one (password and extra encrypted when the DB has a cipher).
type connectionTestRecord struct {
	workload.ConnectionTest
	Conn json.RawMessage `json:"conn"`
}

func (db *DB) encodeConnectionTest(ct workload.ConnectionTest) ([]byte, error) {
	conn, err := db.encodeConnection(ct.Connection)
	if err != nil {
		return nil, err
	}
	rec := connectionTestRecord{ConnectionTest: ct, Conn: conn}
	rec.Connection = workload.Connection{}
	return encodeJSON("connection test "+ct.ID, &rec)
}

func (db *DB) decodeConnectionTest(id string, data []byte) (*workload.ConnectionTest, error) {
	var rec connectionTestRecord
	if err := decodeJSON("connection test "+id, data, &rec); err != nil {
		return nil, err
	}
	conn, err := db.decodeConnection(rec.ConnectionTest.Connection.ConnID, rec.Conn)
	if err != nil {
		return nil, err
	}
	ct := rec.ConnectionTest
	ct.Connection = *conn
	return &ct, nil
}

// ConnectionTest returns the connection test, or an error wrapping
// workload.ErrNotFound.
func (db *DB) ConnectionTest(ctx context.Context, id string) (*workload.ConnectionTest, error) {
	ct, found, err := viewRecord(db, ctx, bucketConnectionTests, id, func(data []byte) (*workload.ConnectionTest, error) {
		return db.decodeConnectionTest(id, data)
	})
	if err == nil && !found {
		err = notFound("connection test %s", id)
	}
	return ct, err
}

// InsertConnectionTest stores a new connection test.
func (db *DB) InsertConnectionTest(ctx context.Context, ct workload.ConnectionTest) error {
	if err := checkKey("connection test id", []byte(ct.ID)); err != nil {
		return err
	}
	enc, err := db.encodeConnectionTest(ct)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketConnectionTests)
		if err != nil {
			return err
		}
		if b.Get([]byte(ct.ID)) != nil {
			return fmt.Errorf("%w: connection test %s", workload.ErrAlreadyExists, ct.ID)
		}
		return put(b, []byte(ct.ID), enc)
	})
}

// UpdateConnectionTest loads the test, applies fn and stores the result, and
// saves the connection a successful test commits, all in one transaction.
// fn runs on the writer goroutine, as UpdateTaskInstance's does.
func (db *DB) UpdateConnectionTest(ctx context.Context, id string,
	fn func(ct *workload.ConnectionTest) error) (*workload.ConnectionTest, error) {
	if err := checkKey("connection test id", []byte(id)); err != nil {
		return nil, err
	}
	var out *workload.ConnectionTest
	err := db.write(ctx, func(tx *bolt.Tx) error {
		out = nil
		b, conns, err := buckets(tx, bucketConnectionTests, bucketConnections)
		if err != nil {
			return err
		}
		data := b.Get([]byte(id))
		if data == nil {
			return notFound("connection test %s", id)
		}
		ct, err := db.decodeConnectionTest(id, data)
		if err != nil {
			return err
		}
		if err := fn(ct); err != nil {
			return err
		}
		if ct.ID != id {
			return fmt.Errorf("store: update of connection test %s changed its id", id)
		}
		enc, err := db.encodeConnectionTest(*ct)
		if err != nil {
			return err
		}
		if err := put(b, []byte(id), enc); err != nil {
			return err
		}
		if c := ct.ToCommit(); c != nil {
			if err := checkKey("connection id", []byte(c.ConnID)); err != nil {
				return err
			}
			cenc, err := db.encodeConnection(*c)
			if err != nil {
				return err
			}
			if err := put(conns, []byte(c.ConnID), cenc); err != nil {
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

// Callback returns the callback, or an error wrapping workload.ErrNotFound.
func (db *DB) Callback(ctx context.Context, id string) (*workload.Callback, error) {
	cb, err := getRecord[workload.Callback](db, ctx, bucketCallbacks, id, "callback")
	if err != nil {
		return nil, err
	}
	if cb == nil {
		return nil, notFound("callback %s", id)
	}
	return cb, nil
}

// InsertCallback stores a new callback.
func (db *DB) InsertCallback(ctx context.Context, cb workload.Callback) error {
	if err := checkKey("callback id", []byte(cb.ID)); err != nil {
		return err
	}
	enc, err := encodeJSON("callback "+cb.ID, &cb)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketCallbacks)
		if err != nil {
			return err
		}
		if b.Get([]byte(cb.ID)) != nil {
			return fmt.Errorf("%w: callback %s", workload.ErrAlreadyExists, cb.ID)
		}
		return put(b, []byte(cb.ID), enc)
	})
}

// UpdateCallback loads the callback, applies fn and stores the result in
// one transaction; fn runs on the writer goroutine.
func (db *DB) UpdateCallback(ctx context.Context, id string, fn func(cb *workload.Callback) error) (*workload.Callback, error) {
	if err := checkKey("callback id", []byte(id)); err != nil {
		return nil, err
	}
	var out *workload.Callback
	err := db.write(ctx, func(tx *bolt.Tx) error {
		out = nil
		b, err := bucket(tx, bucketCallbacks)
		if err != nil {
			return err
		}
		data := b.Get([]byte(id))
		if data == nil {
			return notFound("callback %s", id)
		}
		var cb workload.Callback
		if err := decodeJSON("callback "+id, data, &cb); err != nil {
			return err
		}
		if err := fn(&cb); err != nil {
			return err
		}
		if cb.ID != id {
			return fmt.Errorf("store: update of callback %s changed its id", id)
		}
		enc, err := encodeJSON("callback "+id, &cb)
		if err != nil {
			return err
		}
		if err := put(b, []byte(id), enc); err != nil {
			return err
		}
		out = &cb
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
