package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/workload"
)

// DB also implements the storage the auth package declares: REST API users,
// revoked tokens and registered component identities. Missing records
// give errors wrapping auth.ErrNotFound and taken names auth.ErrExists, so
// that the auth package and the gateway only know auth's errors.
var _ auth.Store = (*DB)(nil)

func authNotFound(format string, args ...any) error {
	return fmt.Errorf("store: "+format+": %w", append(args, auth.ErrNotFound)...)
}

func authExists(format string, args ...any) error {
	return fmt.Errorf("store: "+format+": %w", append(args, auth.ErrExists)...)
}

// User returns the user, or an error wrapping auth.ErrNotFound.
func (db *DB) User(ctx context.Context, name string) (*auth.User, error) {
	u, err := getRecord[auth.User](db, ctx, bucketUsers, name, "user")
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, authNotFound("user %s", name)
	}
	return u, nil
}

// AddUser stores u, or fails with an error wrapping auth.ErrExists when the
// name is taken: adding never replaces a user (and its password). The name
// rules are auth's (auth.NewUser); the store only refuses names it cannot
// key.
func (db *DB) AddUser(ctx context.Context, u auth.User) error {
	key := []byte(u.Name)
	if err := checkKey("user name", key); err != nil {
		return err
	}
	enc, err := encodeJSON("user "+u.Name, &u)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketUsers)
		if err != nil {
			return err
		}
		if b.Get(key) != nil {
			return authExists("user %s", u.Name)
		}
		return put(b, key, enc)
	})
}

// RemoveUser removes the user and, in the same transaction, what they
// started that no worker owns: the components they registered are deleted,
// and the task instances they queued are passed to workload.Withdraw (the
// lifecycle's rule: only a still-queued one changes, to removed at now). It
// fails with an error wrapping auth.ErrNotFound, writing nothing, when there
// is no such user. REST tokens already issued to the user are refused by the
// gateway once the user is gone (and stay refused if the name is added
// again: see auth.User.Generation).
//
// It reads every stored task instance, but decodes only those whose record
// names the user as queued_by (a byte search first): removing a user is
// rare, and an index kept up to date on every queueing would cost more.
func (db *DB) RemoveUser(ctx context.Context, name string, now time.Time) (auth.Removal, error) {
	key := []byte(name)
	if err := checkKey("user name", key); err != nil {
		return auth.Removal{}, err
	}
	// The exact bytes encodeJSON writes for a task instance queued by name.
	encName, err := encodeJSON("user name", name)
	if err != nil {
		return auth.Removal{}, err
	}
	needle := append([]byte(`"queued_by":`), encName...)
	var out auth.Removal
	err = db.write(ctx, func(tx *bolt.Tx) error {
		out = auth.Removal{} // the function may run again if the shared transaction is retried
		users, err := bucket(tx, bucketUsers)
		if err != nil {
			return err
		}
		if users.Get(key) == nil {
			return authNotFound("user %s", name)
		}
		if err := del(users, key); err != nil {
			return err
		}
		if out.Components, err = deleteComponentsOf(tx, name); err != nil {
			return err
		}
		out.TaskInstances, err = db.withdrawTaskInstancesOf(tx, name, needle, now)
		return err
	})
	if err != nil {
		return auth.Removal{}, err
	}
	return out, nil
}

// withdrawTaskInstancesOf applies workload.Withdraw to every task instance
// whose record contains needle and whose QueuedBy is name, and returns the
// ids of those it changed.
func (db *DB) withdrawTaskInstancesOf(tx *bolt.Tx, name string, needle []byte, now time.Time) ([]string, error) {
	tis, err := bucket(tx, bucketTaskInstances)
	if err != nil {
		return nil, err
	}
	type change struct {
		ti  *workload.TaskInstance
		enc []byte
	}
	var changes []change
	err = tis.ForEach(func(k, data []byte) error {
		if !bytes.Contains(data, needle) {
			return nil
		}
		ti, err := db.decodeTI(tx, string(k), data)
		if err != nil {
			return err
		}
		if ti.QueuedBy != name || !workload.Withdraw(ti, now) {
			return nil
		}
		enc, err := encodeJSON("task instance "+ti.ID, ti)
		if err != nil {
			return err
		}
		changes = append(changes, change{ti, enc})
		return nil
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, ch := range changes { // bbolt forbids writes during ForEach
		if err := put(tis, []byte(ch.ti.ID), ch.enc); err != nil {
			return nil, err
		}
		db.noteTI(ch.ti)
		ids = append(ids, ch.ti.ID)
	}
	return ids, nil
}

// deleteComponentsOf deletes the components registered by name and returns
// their ids.
func deleteComponentsOf(tx *bolt.Tx, name string) ([]string, error) {
	comps, err := bucket(tx, bucketComponents)
	if err != nil {
		return nil, err
	}
	var doomed []string
	err = comps.ForEach(func(k, data []byte) error {
		c, err := decodeComponent(string(k), data)
		if err != nil {
			return err
		}
		if c.RegisteredBy == name {
			doomed = append(doomed, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range doomed {
		if err := deleteComponent(tx, id); err != nil {
			return nil, err
		}
	}
	return doomed, nil
}

// SetPasswordHash replaces the user's password hash with new while the
// stored one is still old (a login rehashing at another bcrypt cost), and
// does nothing when it is not: the user was removed and re-added, or
// rehashed, in the meantime. A missing user gives an error wrapping
// auth.ErrNotFound.
func (db *DB) SetPasswordHash(ctx context.Context, name, old, new string) error {
	key := []byte(name)
	if err := checkKey("user name", key); err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketUsers)
		if err != nil {
			return err
		}
		data := b.Get(key)
		if data == nil {
			return authNotFound("user %s", name)
		}
		var u auth.User
		if err := decodeJSON("user "+name, data, &u); err != nil {
			return err
		}
		if u.PasswordHash != old {
			return nil
		}
		u.PasswordHash = new
		enc, err := encodeJSON("user "+name, &u)
		if err != nil {
			return err
		}
		return put(b, key, enc)
	})
}

// Users returns every user sorted by name (byte order). The result is never
// nil.
func (db *DB) Users(ctx context.Context) ([]auth.User, error) {
	return listRecords[auth.User](db, ctx, bucketUsers, "user")
}

// revocation is the stored value of a revoked jti: the token's expiry, after
// which the revocation can be purged.
type revocation struct {
	Exp time.Time `json:"exp"`
}

// Revoke records that the token with this jti is revoked until exp. A jti
// already revoked keeps the later of the two expiries, so revoking is
// idempotent and a retry never shortens a revocation; when nothing would
// change nothing is written.
func (db *DB) Revoke(ctx context.Context, jti string, exp time.Time) error {
	key := []byte(jti)
	if err := checkKey("jti", key); err != nil {
		return err
	}
	rec := revocation{Exp: exp.UTC()}
	enc, err := encodeJSON("revocation "+jti, &rec)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketRevocations)
		if err != nil {
			return err
		}
		if data := b.Get(key); data != nil {
			var old revocation
			if err := decodeJSON("revocation "+jti, data, &old); err != nil {
				return err
			}
			if !rec.Exp.After(old.Exp) {
				return nil
			}
		}
		return put(b, key, enc)
	})
}

// IsRevoked reports whether jti is revoked: one bbolt Get in a read
// transaction, with no decoding (BenchmarkIsRevoked). A running gateway
// checks its in-memory auth.Revocations instead, loaded with Revocations. An empty jti is an error wrapping ErrInvalidKey
// rather than "not revoked": such a token could never be revoked, and the
// caller should refuse it, not wave it through.
func (db *DB) IsRevoked(ctx context.Context, jti string) (bool, error) {
	key := []byte(jti)
	if err := checkKey("jti", key); err != nil {
		return false, err
	}
	var revoked bool
	err := db.view(ctx, func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketRevocations); b != nil {
			revoked = b.Get(key) != nil
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return revoked, nil
}

// Revocations returns every stored revocation, jti → exp, for the gateway's
// in-memory set. The result is never nil.
func (db *DB) Revocations(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRevocations)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, data []byte) error {
			var r revocation
			if err := decodeJSON("revocation "+string(k), data, &r); err != nil {
				return err
			}
			out[string(k)] = r.Exp
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PurgeRevocations deletes the revocations whose exp is before
// expiredBefore, in one transaction, and returns how many it deleted. It
// reads every revocation: there are few (tokens are revoked one by one, and
// only until they expire) and it runs rarely, so an index by expiry would
// cost more on every Revoke than it saves here.
func (db *DB) PurgeRevocations(ctx context.Context, expiredBefore time.Time) (int, error) {
	var n int
	err := db.write(ctx, func(tx *bolt.Tx) error {
		n = 0 // the function may run again if the shared transaction is retried
		b, err := bucket(tx, bucketRevocations)
		if err != nil {
			return err
		}
		var expired [][]byte
		err = b.ForEach(func(k, data []byte) error {
			var r revocation
			if err := decodeJSON("revocation "+string(k), data, &r); err != nil {
				return err
			}
			if r.Exp.Before(expiredBefore) {
				expired = append(expired, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range expired {
			if err := del(b, k); err != nil {
				return err
			}
		}
		n = len(expired)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// componentNameKey is the key of the (kind, name) index.
func componentNameKey(kind auth.ComponentKind, name string) []byte {
	return tuple(string(kind), name)
}

func decodeComponent(id string, data []byte) (*auth.Component, error) {
	var c auth.Component
	if err := decodeJSON("component "+id, data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// AddComponent stores c, or fails with an error wrapping auth.ErrExists when
// its (kind, name) or its id is taken.
func (db *DB) AddComponent(ctx context.Context, c auth.Component) error {
	id := []byte(c.ID)
	if err := checkKey("component id", id); err != nil {
		return err
	}
	nameKey := componentNameKey(c.Kind, c.Name)
	if err := checkKey("component name", nameKey); err != nil {
		return err
	}
	enc, err := encodeJSON("component "+c.ID, &c)
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error {
		comps, byName, err := buckets(tx, bucketComponents, bucketComponentsByName)
		if err != nil {
			return err
		}
		if byName.Get(nameKey) != nil {
			return authExists("component %s %s", c.Kind, c.Name)
		}
		if comps.Get(id) != nil {
			return authExists("component id %s", c.ID)
		}
		if err := put(comps, id, enc); err != nil {
			return err
		}
		return put(byName, nameKey, id)
	})
}

// Component returns the component with this id (compared byte for byte), or
// an error wrapping auth.ErrNotFound.
func (db *DB) Component(ctx context.Context, id string) (*auth.Component, error) {
	c, err := getRecord[auth.Component](db, ctx, bucketComponents, id, "component")
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, authNotFound("component %s", id)
	}
	return c, nil
}

// DeleteComponent removes the component and its name, or fails with an
// error wrapping auth.ErrNotFound.
func (db *DB) DeleteComponent(ctx context.Context, id string) error {
	key := []byte(id)
	if err := checkKey("component id", key); err != nil {
		return err
	}
	return db.write(ctx, func(tx *bolt.Tx) error { return deleteComponent(tx, id) })
}

// deleteComponent deletes the component with this id and its name index
// entry inside tx.
func deleteComponent(tx *bolt.Tx, id string) error {
	key := []byte(id)
	comps, byName, err := buckets(tx, bucketComponents, bucketComponentsByName)
	if err != nil {
		return err
	}
	data := comps.Get(key)
	if data == nil {
		return authNotFound("component %s", id)
	}
	c, err := decodeComponent(id, data)
	if err != nil {
		return err
	}
	nameKey := componentNameKey(c.Kind, c.Name)
	if string(byName.Get(nameKey)) == id {
		if err := del(byName, nameKey); err != nil {
			return err
		}
	}
	return del(comps, key)
}

// Components returns every component sorted by kind, then name (byte
// order). The result is never nil.
func (db *DB) Components(ctx context.Context) ([]auth.Component, error) {
	out := []auth.Component{}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		byName := tx.Bucket(bucketComponentsByName)
		comps := tx.Bucket(bucketComponents)
		if byName == nil || comps == nil {
			return nil
		}
		return byName.ForEach(func(k, id []byte) error {
			data := comps.Get(id)
			if data == nil {
				return fmt.Errorf("store: component index names missing id %s: %w", id, ErrCorrupt)
			}
			c, err := decodeComponent(string(id), data)
			if err != nil {
				return err
			}
			out = append(out, *c)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
