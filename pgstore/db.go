// Package pgstore keeps taskgate's state in Airflow's own metadata database
// on PostgreSQL, so that Airflow's scheduler, UI and REST API see every
// change taskgate's Execution API makes, and any number of taskgate
// replicas behave as one.
//
// Airflow's tables are Airflow's: taskgate never creates, migrates or alters
// them, and Open refuses a database whose alembic revision it was not built
// for (SupportedRevisions). It reads and writes their rows as Airflow's
// Execution API does, taking the same row locks, so that taskgate, Airflow's
// api-servers and the scheduler can work on the same rows at once. What only
// taskgate needs (its operator users and components, and what a try's token
// needs beyond Airflow's columns) lives in its own schema, "taskgate",
// which taskgate creates and migrates with versioned migrations.
//
// Every write is committed before its method returns. A transaction that
// PostgreSQL aborts for a serialization failure or a deadlock is retried
// with backoff; a database that cannot be reached gives errors wrapping
// workload.ErrUnavailable, which the gateway answers with 503.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskgate/taskgate/workload"
)

// Options configures Open.
type Options struct {
	// URL is the database as libpq or pgx take it ("postgres://…" or
	// "host=… dbname=…"); config turns Airflow's sql_alchemy_conn into it.
	URL string
	// Schema is [database] sql_alchemy_schema: the schema holding Airflow's
	// tables; empty means the connection's search_path.
	Schema string
	// MaxConns caps the pool (sql_alchemy_pool_size + max_overflow); zero
	// means pgx's default.
	MaxConns int32
	// MaxConnLifetime recycles connections (sql_alchemy_pool_recycle); zero
	// means pgx's default.
	MaxConnLifetime time.Duration
	// ConnectTimeout bounds each new connection; zero means the URL's
	// connect_timeout, else 10 s.
	ConnectTimeout time.Duration
	// NoPrePing turns off the check of a connection that sat idle for
	// more than a second before it is used ([database]
	// sql_alchemy_pool_pre_ping = False).
	NoPrePing bool
	// Now is the clock of the timestamps taskgate writes; nil means
	// time.Now.
	Now func() time.Time
	// Cipher is Airflow's [core] fernet_key (every comma-separated key,
	// the first encrypting): variable values and connection passwords and
	// extras are encrypted with it as Airflow encrypts them. nil means no
	// fernet_key: values are written in clear with their is_encrypted
	// flags false, as Airflow writes them then, and an encrypted value
	// cannot be read. It must be the key Airflow has, never one made up
	// by taskgate.
	Cipher Cipher
	// MultiTeam is [core] multi_team: a deferred task's trigger is then
	// written with the team of its DAG's bundle (trigger.team_name), as
	// Airflow's ti_update_state writes it.
	MultiTeam bool
	// Log receives what the store reports without failing a request (a
	// partitioned DAG a success could not queue); nil discards it.
	Log *slog.Logger
}

// Observer is told of the heartbeat writer's work. It is called on the
// writer's goroutine: it must be cheap.
type Observer interface {
	// ObserveHeartbeatBatch: one transaction carried heartbeats requests
	// and took took, commit included.
	ObserveHeartbeatBatch(heartbeats int, took time.Duration)
}

// DB is a taskgate store on an Airflow metadata database.
type DB struct {
	pool *pgxpool.Pool
	opts Options
	now  func() time.Time
	// revision is the alembic revision of Airflow's schema found at Open.
	revision string
	// ti is the task-instance side's heartbeat writer and TryStatus cache
	// (heartbeats.go, trystatus.go).
	ti tiState
	// obs is told of each heartbeat batch (SetObserver); nil: nobody.
	obs atomic.Pointer[Observer]
}

// SetObserver makes the heartbeat writer tell o of each batch from now on
// (metrics).
func (db *DB) SetObserver(o Observer) { db.obs.Store(&o) }

// ErrUnsupportedSchema is a database whose Airflow schema revision taskgate
// was not built for.
var ErrUnsupportedSchema = errors.New("pgstore: unsupported Airflow schema")

// Open connects to the database, checks Airflow's schema revision and
// brings taskgate's own schema up to date.
func Open(ctx context.Context, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("pgstore: database URL: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.MaxConnLifetime > 0 {
		cfg.MaxConnLifetime = opts.MaxConnLifetime
	}
	switch {
	case opts.ConnectTimeout > 0:
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	case cfg.ConnConfig.ConnectTimeout <= 0: // no connect_timeout in the URL
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if opts.NoPrePing {
		cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	}
	if opts.Schema != "" {
		// Airflow's tables are found in their schema, taskgate's own are
		// always named with theirs.
		cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	db := &DB{pool: pool, opts: opts, now: opts.Now}
	if db.now == nil {
		db.now = time.Now
	}
	if err := db.start(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// start checks the schema revision and migrates taskgate's schema.
func (db *DB) start(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pgstore: connect: %w", classify(err))
	}
	rev, err := db.alembicRevision(ctx)
	if err != nil {
		return err
	}
	db.revision = rev
	return db.migrate(ctx)
}

// Close stops the heartbeat writer (answering the heartbeats it holds) and
// closes the pool, waiting for connections in use to be returned.
func (db *DB) Close() error {
	db.ti.close()
	db.pool.Close()
	return nil
}

// Revision is the alembic revision of the Airflow schema Open found.
func (db *DB) Revision() string { return db.revision }

// Ping reports whether the database answers (for /health).
func (db *DB) Ping(ctx context.Context) error { return classify(db.pool.Ping(ctx)) }

// maxAttempts bounds the retries of a transaction PostgreSQL aborted for a
// serialization failure or a deadlock.
const maxAttempts = 8

// inTx runs fn in one transaction at the given isolation level and commits
// it, retrying the whole transaction (fn included) with jittered backoff
// when PostgreSQL aborts it for a serialization failure or a deadlock: fn
// must depend only on its inputs. Errors of an unreachable database wrap
// workload.ErrUnavailable.
func (db *DB) inTx(ctx context.Context, iso pgx.TxIsoLevel, fn func(tx pgx.Tx) error) error {
	return db.retrying(ctx, func() error {
		return pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: iso}, fn)
	})
}

// retrying runs fn, a transaction or a statement of its own, again with
// backoff while PostgreSQL aborts it for a conflict (retryable), at most
// maxAttempts times, and returns its last error through classify.
func (db *DB) retrying(ctx context.Context, fn func() error) error {
	backoff := 2 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !retryable(err) || attempt == maxAttempts {
			return classify(err)
		}
		wait := backoff/2 + rand.N(backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// retryable reports whether PostgreSQL aborted the transaction for a
// conflict that running it again resolves.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
	}
	return false
}

// classify wraps errors of an unreachable database (a refused or broken
// connection, a server shutting down) in workload.ErrUnavailable and
// returns others unchanged.
func classify(err error) error {
	if err == nil || errors.Is(err, workload.ErrUnavailable) {
		return err
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", workload.ErrUnavailable, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
		// Class 22 data exception (a value too long for its column, out of
		// range): SQLAlchemy's DataError, which Airflow answers 422.
		return fmt.Errorf("%w: %w", workload.ErrValueRejected, err)
	}
	return err
}

func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 connection exception, class 57 operator intervention
		// (a server shutting down or not yet accepting), 53300
		// too_many_connections.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57") || pgErr.Code == "53300"
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	return errors.Is(err, net.ErrClosed)
}
