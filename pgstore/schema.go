package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// SupportedRevisions maps each alembic revision of Airflow's schema that
// taskgate reads and writes to the Airflow release that introduced it.
//
// Supporting a newer schema: read Airflow's migrations since the newest
// revision here for changes to the tables this package touches (their
// columns are named in its queries), adapt the queries, add the revision
// with its release, and add the schema file under testdata/airflow for the
// tests (see its README).
var SupportedRevisions = map[string]string{
	"1d6611b6ab7c": "Airflow 3.2",
}

// alembicRevision reads Airflow's alembic_version and refuses a revision
// that is not in SupportedRevisions.
func (db *DB) alembicRevision(ctx context.Context) (string, error) {
	var revs []string
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT version_num FROM alembic_version`)
		if err != nil {
			return err
		}
		revs, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		var pgErr interface{ SQLState() string }
		if errors.As(err, &pgErr) && pgErr.SQLState() == "42P01" { // undefined_table
			return "", fmt.Errorf("%w: no alembic_version table: is this an Airflow metadata database (run `airflow db migrate`)? supported: %s",
				ErrUnsupportedSchema, supportedList())
		}
		return "", fmt.Errorf("pgstore: read alembic_version: %w", err)
	}
	if len(revs) != 1 {
		return "", fmt.Errorf("%w: alembic_version holds %d revisions %v; supported: %s",
			ErrUnsupportedSchema, len(revs), revs, supportedList())
	}
	if _, ok := SupportedRevisions[revs[0]]; !ok {
		return "", fmt.Errorf("%w: found revision %s; supported: %s", ErrUnsupportedSchema, revs[0], supportedList())
	}
	return revs[0], nil
}

func supportedList() string {
	var out []string
	for rev, release := range SupportedRevisions {
		out = append(out, rev+" ("+release+")")
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// migrations are taskgate's own schema, "taskgate", in order; each runs
// once, in its own transaction, recorded in taskgate.schema_migrations.
// Never edit a released migration: append one.
var migrations = []string{
	// 1: the operator side (pgstore/auth.go): REST API users and registered
	// components. Names sort and compare byte for byte (COLLATE "C"), as
	// auth.Store's listings promise. Revocations are Airflow's own
	// revoked_token table, but for jtis wider than its column (tokens
	// minted elsewhere, trusted through a JWKS), kept in taskgate's.
	1: `CREATE TABLE taskgate.users (
		name          text COLLATE "C" PRIMARY KEY,
		role          text NOT NULL,
		password_hash text NOT NULL,
		generation    text NOT NULL DEFAULT '',
		created_at    timestamptz NOT NULL
	);
	CREATE TABLE taskgate.components (
		id            text COLLATE "C" PRIMARY KEY,
		kind          text COLLATE "C" NOT NULL,
		name          text COLLATE "C" NOT NULL,
		created_at    timestamptz NOT NULL,
		registered_by text COLLATE "C" NOT NULL DEFAULT '',
		UNIQUE (kind, name)
	);
	CREATE INDEX components_registered_by ON taskgate.components (registered_by) WHERE registered_by <> '';
	CREATE TABLE taskgate.revoked_token (
		jti text COLLATE "C" PRIMARY KEY,
		exp timestamptz NOT NULL
	);
	CREATE INDEX revoked_token_exp ON taskgate.revoked_token (exp)`,
	// 2: what a try carries that Airflow's task_instance has no column for
	// (pgstore/taskinstances.go). ti_id is the id the try's tokens carry:
	// the task_instance row's id while the try is there, and the
	// task_instance_history row's task_instance_id once Airflow's id moved on.
	2: `CREATE TABLE taskgate.try (
		ti_id               uuid PRIMARY KEY,
		queued_by           text NOT NULL DEFAULT '',
		reported_at         timestamptz,
		run_grant           jsonb,
		retry_delay_seconds double precision,
		retry_reason        text,
		task_outlets        jsonb,
		outlet_events       jsonb
	);
	CREATE INDEX try_queued_by ON taskgate.try (queued_by) WHERE queued_by <> ''`,
	// 3: the signing key set (pgstore/keyset.go), one row shared by every
	// replica: its private keys are Fernet-encrypted with [core] fernet_key
	// when one is configured, as Airflow keeps connection passwords.
	3: `CREATE TABLE taskgate.key_set (
		id           smallint PRIMARY KEY CHECK (id = 1),
		document     text NOT NULL,
		is_encrypted boolean NOT NULL,
		updated_at   timestamptz NOT NULL
	)`,
	// 4: the task and asset state stores (pgstore/statestore.go), Airflow's
	// task_state_store and asset_state_store tables, which Airflow's schema
	// gains only after 3.2 (API version 2026-06-30): kept here, with
	// Airflow's columns, keys and indexes, until taskgate supports a schema
	// revision that has them.
	4: `CREATE TABLE taskgate.task_state_store (
		id           serial PRIMARY KEY,
		dag_run_id   integer NOT NULL,
		task_id      varchar(250) NOT NULL,
		map_index    integer NOT NULL DEFAULT -1,
		region_id    uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
		key          varchar(512) NOT NULL,
		dag_id       varchar(250) NOT NULL,
		run_id       varchar(250) NOT NULL,
		value        text NOT NULL,
		updated_at   timestamptz NOT NULL,
		expires_at   timestamptz,
		CONSTRAINT task_state_store_uq UNIQUE (dag_run_id, task_id, region_id, map_index, key)
	);
	CREATE INDEX idx_task_state_store_lookup ON taskgate.task_state_store (dag_id, run_id, task_id, map_index);
	CREATE INDEX idx_task_state_store_expires_at ON taskgate.task_state_store (expires_at);
	CREATE TABLE taskgate.asset_state_store (
		asset_id                         integer NOT NULL,
		key                              varchar(512) NOT NULL,
		value                            text NOT NULL,
		updated_at                       timestamptz NOT NULL,
		last_updated_by_kind             varchar(16),
		last_updated_by_dag_id           varchar(250),
		last_updated_by_run_id           varchar(250),
		last_updated_by_task_id          varchar(250),
		last_updated_by_map_index        integer,
		last_updated_by_task_instance_id uuid,
		last_updated_by_region_id        uuid,
		last_updated_by_region_index     integer,
		last_updated_by_try_number       integer,
		CONSTRAINT asset_state_store_pkey PRIMARY KEY (asset_id, key)
	);
	-- Airflow's foreign keys, to its tables in the search path (a database
	-- holding Airflow's schema always has them; the check spares tests
	-- that run migrations on an empty one).
	DO $$ BEGIN
		IF to_regclass('dag_run') IS NOT NULL THEN
			ALTER TABLE taskgate.task_state_store ADD CONSTRAINT task_state_store_dag_run_fkey
				FOREIGN KEY (dag_run_id) REFERENCES dag_run (id) ON DELETE CASCADE;
		END IF;
		IF to_regclass('asset') IS NOT NULL THEN
			ALTER TABLE taskgate.asset_state_store ADD CONSTRAINT asset_state_store_asset_fkey
				FOREIGN KEY (asset_id) REFERENCES asset (id) ON DELETE CASCADE;
		END IF;
	END $$`,
	// 5: connection tests (pgstore/connectiontests.go). Airflow's
	// connection-test table came after 3.2 and its shape still moves, so
	// taskgate keeps its own: the connection under test with its password
	// and extra sealed as Airflow seals a connection's.
	5: `CREATE TABLE taskgate.connection_test (
		id                 uuid PRIMARY KEY,
		conn_id            varchar(250) NOT NULL,
		conn_type          varchar(500) NOT NULL,
		host               varchar(500),
		"schema"           varchar(500),
		login              text,
		password           text,
		port               integer,
		extra              text,
		is_encrypted       boolean NOT NULL DEFAULT false,
		is_extra_encrypted boolean NOT NULL DEFAULT false,
		commit_on_success  boolean NOT NULL DEFAULT false,
		state              varchar(10) NOT NULL,
		result_message     text,
		created_at         timestamptz NOT NULL,
		updated_at         timestamptz NOT NULL,
		queued_by          text NOT NULL DEFAULT ''
	)`,
	// 6: DAG processor Jobs (pgstore/jobs.go). Airflow's job table as
	// job.py defines it, with the session columns its Execution API's
	// /jobs routes (API version 2027-02-28) add: Airflow 3.2's job table
	// has no session_id, registration_id or bundle_names, and a
	// DagProcessorJob row there would be read by Airflow's own health
	// checks, so taskgate keeps these Jobs in its own schema.
	6: `CREATE TABLE taskgate.job (
		id               bigserial PRIMARY KEY,
		dag_id           varchar(250),
		state            varchar(20),
		job_type         varchar(30),
		start_date       timestamptz,
		end_date         timestamptz,
		latest_heartbeat timestamptz,
		executor_class   varchar(500),
		hostname         varchar(500),
		unixname         varchar(1000),
		bundle_names     jsonb,
		session_id       uuid UNIQUE,
		registration_id  uuid UNIQUE
	);
	CREATE INDEX job_type_heart ON taskgate.job (job_type, latest_heartbeat);
	CREATE INDEX idx_job_state_heartbeat ON taskgate.job (state, latest_heartbeat)`,
	// 7: the checkpoint of each file a DAG processor's Job published
	// (pgstore/dagparsing.go): Airflow's dag_parse_checkpoint, which its
	// 3.2 schema does not have. It goes with its Job.
	7: `CREATE TABLE taskgate.dag_parse_checkpoint (
		job_id            bigint NOT NULL REFERENCES taskgate.job (id) ON DELETE CASCADE,
		source_key        varchar(64) NOT NULL,
		attempt_id        uuid NOT NULL,
		dispatch_sequence bigint NOT NULL,
		payload_hash      varchar(64) NOT NULL,
		accepted_at       timestamptz NOT NULL,
		PRIMARY KEY (job_id, source_key)
	)`,
}

// migrate creates taskgate's schema and applies the migrations it lacks.
// Concurrent replicas starting together serialize on an advisory lock.
func (db *DB) migrate(ctx context.Context) error {
	return db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		// 0x7461736b67617465 is "taskgate": one lock for every replica.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(8386114060015411301)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS taskgate`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS taskgate.schema_migrations (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM taskgate.schema_migrations`).Scan(&have); err != nil {
			return err
		}
		if latest := len(migrations) - 1; have > latest {
			return fmt.Errorf("pgstore: taskgate schema is at version %d, newer than this build knows (%d): a newer taskgate migrated it",
				have, latest)
		}
		for v := have + 1; v < len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("pgstore: taskgate migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO taskgate.schema_migrations (version) VALUES ($1)`, v); err != nil {
				return err
			}
		}
		return nil
	})
}
