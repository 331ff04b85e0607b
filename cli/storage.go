package cli

// The store behind serve and the offline commands: the embedded bbolt file
// in the data directory (the default), or Airflow's own metadata database
// on PostgreSQL when [database] sql_alchemy_conn is set.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/config"
	"github.com/taskgate/taskgate/fernet"
	"github.com/taskgate/taskgate/gateway"
	"github.com/taskgate/taskgate/operator"
	"github.com/taskgate/taskgate/pgstore"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/tokens"
)

var (
	_ storage = (*store.DB)(nil)
	_ storage = (*pgstore.DB)(nil)
)

// storage is what serve and the offline commands need of a store; store.DB
// and pgstore.DB implement it.
type storage interface {
	gateway.Store
	operator.Store
	auth.Store
	tokens.KeyStore
	Close() error
}

// replicaBound is, on a database other processes write too (taskgate
// replicas, Airflow's api-servers and scheduler), the bound on how long a
// server may act on what it read before their writes: it reads their
// revocations again this often, and serves a cached variable or connection
// body at most this old. Users and components it reads on every request.
const replicaBound = time.Second

// opened is an open store and what serve does differently with it.
type opened struct {
	storage
	// shared is true when other processes (replicas, Airflow) write the
	// same store: the server then refreshes its revocations from it.
	shared bool
	// ping reports whether the store answers (/health/ping); nil for the
	// embedded file, which has no connection to lose.
	ping func(context.Context) error
	// describe names the store in the start-up log.
	describe string
	// teams resolves Airflow's teams ([core] multi_team); nil for the
	// embedded file, which has none.
	teams gateway.Teams
}

// openStorage opens the configured store: Airflow's metadata database when
// sql_alchemy_conn is set, else the data directory's file.
func openStorage(ctx context.Context, cfg *config.Config, now func() time.Time) (*opened, error) {
	if cfg.DatabaseURL == "" {
		db, err := openStore(cfg, now)
		if err != nil {
			return nil, err
		}
		return &opened{storage: db, describe: "embedded:" + cfg.DataDir}, nil
	}
	db, err := openPostgres(ctx, cfg, now)
	if err != nil {
		return nil, err
	}
	return &opened{storage: db, shared: true, ping: db.Ping, describe: "postgres:airflow@" + db.Revision(), teams: db}, nil
}

// openPostgres opens Airflow's metadata database with the [database] pool
// settings and the [core] fernet_key cipher.
func openPostgres(ctx context.Context, cfg *config.Config, now func() time.Time) (*pgstore.DB, error) {
	if cfg.JWTSecret == "" && cfg.JWTPrivateKeyPath == "" {
		// A secret made in each replica's data directory would make the
		// tokens of one replica (and of Airflow's components) invalid on
		// the others.
		return nil, errors.New("[database] sql_alchemy_conn is set: also set [api_auth] jwt_secret or jwt_private_key_path, " +
			"the key every taskgate replica and Airflow component signs with")
	}
	cipher, err := airflowCipher(cfg)
	if err != nil {
		return nil, err
	}
	db, err := pgstore.Open(ctx, postgresOptions(cfg, now, cipher))
	if err != nil {
		return nil, fmt.Errorf("[database] sql_alchemy_conn: %w", err)
	}
	return db, nil
}

// postgresOptions maps the [database] keys onto pgstore's options.
func postgresOptions(cfg *config.Config, now func() time.Time, cipher pgstore.Cipher) pgstore.Options {
	o := pgstore.Options{URL: cfg.DatabaseURL, Schema: cfg.DatabaseSchema, NoPrePing: !cfg.DatabasePoolPrePing, Now: now, Cipher: cipher,
		MultiTeam: cfg.MultiTeam}
	// SQLAlchemy's pool holds up to pool_size + max_overflow connections;
	// a pool size of 0 or an overflow of -1 is "no limit", for which the
	// driver's default stands in.
	if cfg.DatabasePoolSize > 0 && cfg.DatabaseMaxOverflow >= 0 {
		o.MaxConns = int32(min(cfg.DatabasePoolSize+cfg.DatabaseMaxOverflow, math.MaxInt32))
	}
	switch {
	case cfg.DatabasePoolRecycle > 0:
		o.MaxConnLifetime = cfg.DatabasePoolRecycle
	case cfg.DatabasePoolRecycle < 0: // never recycle
		o.MaxConnLifetime = time.Duration(math.MaxInt64)
	}
	return o
}

// airflowCipher is Airflow's Fernet of [core] fernet_key, nil when the key
// is not set: Airflow then stores variables and connections in clear, and
// a key made up by taskgate (as the data directory's) would encrypt values
// that Airflow could not read.
func airflowCipher(cfg *config.Config) (pgstore.Cipher, error) {
	if len(cfg.FernetKeys) == 0 {
		return nil, nil
	}
	m, err := configuredCipher(cfg)
	if err != nil {
		return nil, err // an untyped nil: a nil *MultiKey would be a non-nil Cipher
	}
	return m, nil
}

// configuredCipher is the Fernet of the [core] fernet_key keys: the first
// encrypts, all decrypt.
func configuredCipher(cfg *config.Config) (*fernet.MultiKey, error) {
	m, err := fernet.NewMulti(cfg.FernetKeys...)
	if err != nil {
		return nil, fmt.Errorf("[core] fernet_key: %w", err)
	}
	return m, nil
}
