package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/workload"
)

// DB implements the storage the auth package declares. Users and
// components live in taskgate's own schema (migration 1); revocations are
// rows of Airflow's revoked_token table, shared with Airflow's api-servers,
// which write and purge it for their own REST tokens (a jti too wide for it
// goes to taskgate's own, see revocationTable). Missing records give
// errors wrapping auth.ErrNotFound and taken names auth.ErrExists.
var _ auth.Store = (*DB)(nil)

// maxJTILen is the width of Airflow's revoked_token.jti (String(32)): a
// uuid4 in hex, as Airflow and taskgate's signer both mint.
const maxJTILen = 32

func authNotFound(format string, args ...any) error {
	return fmt.Errorf("pgstore: "+format+": %w", append(args, auth.ErrNotFound)...)
}

func authExists(format string, args ...any) error {
	return fmt.Errorf("pgstore: "+format+": %w", append(args, auth.ErrExists)...)
}

// uniqueViolation reports whether err is PostgreSQL's unique_violation.
func uniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

const userColumns = `name, role, password_hash, generation, created_at`

func scanUser(row pgx.CollectableRow) (auth.User, error) {
	var u auth.User
	var role string
	err := row.Scan(&u.Name, &role, &u.PasswordHash, &u.Generation, &u.CreatedAt)
	u.Role = auth.Role(role)
	u.CreatedAt = u.CreatedAt.UTC()
	return u, err
}

// User returns the user, or an error wrapping auth.ErrNotFound. It reads
// the database on every call, with no cache, so a user removed on any
// replica is unknown to every replica from the removal's commit on.
func (db *DB) User(ctx context.Context, name string) (*auth.User, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+userColumns+` FROM taskgate.users WHERE name = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("pgstore: user %s: %w", name, classify(err))
	}
	u, err := pgx.CollectExactlyOneRow(rows, scanUser)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, authNotFound("user %s", name)
	case err != nil:
		return nil, fmt.Errorf("pgstore: user %s: %w", name, classify(err))
	}
	return &u, nil
}

// AddUser stores u, or fails with an error wrapping auth.ErrExists when the
// name is taken: adding never replaces a user (and its password).
func (db *DB) AddUser(ctx context.Context, u auth.User) error {
	if u.Name == "" {
		return errors.New("pgstore: empty user name")
	}
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO taskgate.users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5)`,
			u.Name, string(u.Role), u.PasswordHash, u.Generation, u.CreatedAt.UTC())
		return err
	})
	switch {
	case uniqueViolation(err):
		return authExists("user %s", u.Name)
	case err != nil:
		return fmt.Errorf("pgstore: add user %s: %w", u.Name, err)
	}
	return nil
}

// RemoveUser removes the user and, in the same transaction, what they
// started that no worker owns: the components they registered are deleted,
// and each task instance they queued (taskgate.try.queued_by) that is
// still queued is passed to workload.Withdraw and written as it decides
// (state, end_date, updated_at of Airflow's row). The task instances are
// locked (FOR UPDATE) as Airflow's own state changes lock them, so a
// concurrent /run on any replica either runs first (and the task is left
// alone) or sees the task removed. It fails with an error wrapping
// auth.ErrNotFound, writing nothing, when there is no such user.
func (db *DB) RemoveUser(ctx context.Context, name string, now time.Time) (auth.Removal, error) {
	var out auth.Removal
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		out = auth.Removal{} // fn runs again when the transaction is retried
		tag, err := tx.Exec(ctx, `DELETE FROM taskgate.users WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return authNotFound("user %s", name)
		}
		rows, err := tx.Query(ctx, `DELETE FROM taskgate.components WHERE registered_by = $1 RETURNING id`, name)
		if err != nil {
			return err
		}
		if out.Components, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		slices.Sort(out.Components)
		out.TaskInstances, err = withdrawTaskInstancesOf(ctx, tx, name, now)
		return err
	})
	if err != nil {
		if errors.Is(err, auth.ErrNotFound) {
			return auth.Removal{}, err
		}
		return auth.Removal{}, fmt.Errorf("pgstore: remove user %s: %w", name, err)
	}
	return out, nil
}

// withdrawTaskInstancesOf applies workload.Withdraw to the still-queued
// task instances queued by name, writes those it changed and returns their
// ids in order. The state filter in the query only narrows the rows read;
// Withdraw decides.
func withdrawTaskInstancesOf(ctx context.Context, tx pgx.Tx, name string, now time.Time) ([]string, error) {
	rows, err := tx.Query(ctx, `
		SELECT ti.id::text, ti.state
		FROM task_instance ti JOIN taskgate.try t ON t.ti_id = ti.id
		WHERE t.queued_by = $1 AND ti.state = $2
		ORDER BY ti.id
		FOR UPDATE OF ti`, name, string(workload.StateQueued))
	if err != nil {
		return nil, err
	}
	tis, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (workload.TaskInstance, error) {
		var ti workload.TaskInstance
		var state *string
		err := row.Scan(&ti.ID, &state)
		if state != nil {
			ti.State = workload.State(*state)
		}
		return ti, err
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for i := range tis {
		ti := &tis[i]
		if !workload.Withdraw(ti, now) {
			continue
		}
		if _, err := tx.Exec(ctx, `UPDATE task_instance SET state = $2, end_date = $3, updated_at = $4 WHERE id = $1`,
			ti.ID, string(ti.State), ti.EndDate, ti.UpdatedAt); err != nil {
			return nil, err
		}
		ids = append(ids, ti.ID)
	}
	return ids, nil
}

// Users returns every user sorted by name (byte order); never nil.
func (db *DB) Users(ctx context.Context) ([]auth.User, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+userColumns+` FROM taskgate.users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: users: %w", classify(err))
	}
	users, err := pgx.CollectRows(rows, scanUser)
	if err != nil {
		return nil, fmt.Errorf("pgstore: users: %w", classify(err))
	}
	if users == nil {
		users = []auth.User{}
	}
	return users, nil
}

// SetPasswordHash replaces the user's password hash with new while the
// stored one is still old, and does nothing when it is not (the user was
// removed and re-added, or rehashed, in the meantime). A missing user gives
// an error wrapping auth.ErrNotFound.
func (db *DB) SetPasswordHash(ctx context.Context, name, old, new string) error {
	var found bool
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		// One statement: the compare and the swap see the same row version.
		return tx.QueryRow(ctx, `
			WITH u AS (SELECT name FROM taskgate.users WHERE name = $1),
			     s AS (UPDATE taskgate.users SET password_hash = $3 WHERE name = $1 AND password_hash = $2)
			SELECT EXISTS (SELECT 1 FROM u)`, name, old, new).Scan(&found)
	})
	if err != nil {
		return fmt.Errorf("pgstore: set password of %s: %w", name, err)
	}
	if !found {
		return authNotFound("user %s", name)
	}
	return nil
}

// revocationTable is where the revocation of jti is kept: Airflow's
// revoked_token, shared with Airflow's api-servers, for every jti it can
// hold (Airflow's and taskgate's own are 32 hex digits); taskgate's own
// table for a wider one, from a token minted elsewhere and trusted through
// a JWKS.
func revocationTable(jti string) string {
	if len(jti) > maxJTILen {
		return "taskgate.revoked_token"
	}
	return "revoked_token"
}

// Revoke records that the token with this jti is revoked until exp, as a
// row of Airflow's revoked_token (see revocationTable), so that Airflow's
// api-servers refuse it too. A jti already revoked keeps the later of the
// two expiries. An empty jti is an error: such a token could never be
// revoked, and the caller must refuse it rather than wave it through.
func (db *DB) Revoke(ctx context.Context, jti string, exp time.Time) error {
	if jti == "" {
		return errors.New("pgstore: empty jti")
	}
	table := revocationTable(jti)
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO `+table+` AS r (jti, exp) VALUES ($1, $2)
			ON CONFLICT (jti) DO UPDATE SET exp = EXCLUDED.exp WHERE r.exp < EXCLUDED.exp`,
			jti, exp.UTC())
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: revoke %s: %w", jti, err)
	}
	return nil
}

// IsRevoked reports whether jti is revoked. A running gateway checks its
// in-memory auth.Revocations instead, refreshed from Revocations.
func (db *DB) IsRevoked(ctx context.Context, jti string) (bool, error) {
	if jti == "" {
		return false, errors.New("pgstore: empty jti")
	}
	var revoked bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+revocationTable(jti)+` WHERE jti = $1)`, jti).Scan(&revoked)
	if err != nil {
		return false, fmt.Errorf("pgstore: is %s revoked: %w", jti, classify(err))
	}
	return revoked, nil
}

// Revocations returns every revocation, jti → exp, Airflow's own included;
// never nil. The tables hold only revocations of unexpired tokens (and
// those within the purge grace), so they stay small.
func (db *DB) Revocations(ctx context.Context) (map[string]time.Time, error) {
	rows, err := db.pool.Query(ctx, `SELECT jti, exp FROM revoked_token UNION ALL SELECT jti, exp FROM taskgate.revoked_token`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: revocations: %w", classify(err))
	}
	out := map[string]time.Time{}
	var jti string
	var exp time.Time
	_, err = pgx.ForEachRow(rows, []any{&jti, &exp}, func() error {
		out[jti] = exp.UTC()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: revocations: %w", classify(err))
	}
	return out, nil
}

// purgeBatch bounds the rows one purge transaction deletes: as Airflow's
// own cleanup does, the backlog is drained in short transactions so row
// locks are never held long on a table Airflow's api-servers read on every
// request.
const purgeBatch = 1000

// PurgeRevocations deletes the revocations whose exp is before
// expiredBefore and returns how many it deleted. Every replica (and
// Airflow) purges; rows another one is deleting are skipped, not waited
// for.
func (db *DB) PurgeRevocations(ctx context.Context, expiredBefore time.Time) (int, error) {
	var total int
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM taskgate.revoked_token WHERE exp < $1`, expiredBefore.UTC())
		total = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pgstore: purge revocations: %w", err)
	}
	for {
		var n int64
		err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `
				DELETE FROM revoked_token WHERE jti IN (
					SELECT jti FROM revoked_token WHERE exp < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
				expiredBefore.UTC(), purgeBatch)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("pgstore: purge revocations: %w", err)
		}
		total += int(n)
		if n < purgeBatch {
			return total, nil
		}
	}
}

const componentColumns = `id, kind, name, created_at, registered_by`

func scanComponent(row pgx.CollectableRow) (auth.Component, error) {
	var c auth.Component
	var kind string
	err := row.Scan(&c.ID, &kind, &c.Name, &c.CreatedAt, &c.RegisteredBy)
	c.Kind = auth.ComponentKind(kind)
	c.CreatedAt = c.CreatedAt.UTC()
	return c, err
}

// AddComponent stores c, or fails with an error wrapping auth.ErrExists
// when its (kind, name) or its id is taken.
func (db *DB) AddComponent(ctx context.Context, c auth.Component) error {
	if c.ID == "" {
		return errors.New("pgstore: empty component id")
	}
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO taskgate.components (`+componentColumns+`) VALUES ($1, $2, $3, $4, $5)`,
			c.ID, string(c.Kind), c.Name, c.CreatedAt.UTC(), c.RegisteredBy)
		return err
	})
	var pgErr *pgconn.PgError
	switch {
	case uniqueViolation(err) && errors.As(err, &pgErr) && pgErr.ConstraintName == "components_pkey":
		return authExists("component id %s", c.ID)
	case uniqueViolation(err):
		return authExists("component %s %s", c.Kind, c.Name)
	case err != nil:
		return fmt.Errorf("pgstore: add component %s %s: %w", c.Kind, c.Name, err)
	}
	return nil
}

// Component returns the component with this id (compared byte for byte),
// or an error wrapping auth.ErrNotFound. Like User it reads the database
// on every call: a component deleted on one replica is no longer renewed
// on any.
func (db *DB) Component(ctx context.Context, id string) (*auth.Component, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+componentColumns+` FROM taskgate.components WHERE id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("pgstore: component %s: %w", id, classify(err))
	}
	c, err := pgx.CollectExactlyOneRow(rows, scanComponent)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, authNotFound("component %s", id)
	case err != nil:
		return nil, fmt.Errorf("pgstore: component %s: %w", id, classify(err))
	}
	return &c, nil
}

// DeleteComponent removes the component, or fails with an error wrapping
// auth.ErrNotFound.
func (db *DB) DeleteComponent(ctx context.Context, id string) error {
	var n int64
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM taskgate.components WHERE id = $1`, id)
		n = tag.RowsAffected()
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("pgstore: delete component %s: %w", id, err)
	case n == 0:
		return authNotFound("component %s", id)
	}
	return nil
}

// Components returns every component sorted by kind, then name (byte
// order); never nil.
func (db *DB) Components(ctx context.Context) ([]auth.Component, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+componentColumns+` FROM taskgate.components ORDER BY kind, name`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: components: %w", classify(err))
	}
	out, err := pgx.CollectRows(rows, scanComponent)
	if err != nil {
		return nil, fmt.Errorf("pgstore: components: %w", classify(err))
	}
	if out == nil {
		out = []auth.Component{}
	}
	return out, nil
}
