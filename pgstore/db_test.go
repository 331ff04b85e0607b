package pgstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/internal/pgtest"
)

// TestOpenChecksAirflowRevision: Open serves only an Airflow schema it was
// built for, and names what it found and what it supports otherwise.
func TestOpenChecksAirflowRevision(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   string
		wantErr string // "" means Open succeeds
	}{
		{"supported", `CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
			INSERT INTO alembic_version VALUES ('1d6611b6ab7c')`, ""},
		{"older", `CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
			INSERT INTO alembic_version VALUES ('29ce7909c52b')`, "found revision 29ce7909c52b; supported: 1d6611b6ab7c (Airflow 3.2)"},
		{"not airflow", ``, "no alembic_version table"},
		{"two heads", `CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
			INSERT INTO alembic_version VALUES ('1d6611b6ab7c'), ('aaaaaaaaaaaa')`, "holds 2 revisions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := pgtest.NewDatabase(t)
			if tc.setup != "" {
				pgtest.Exec(t, u, tc.setup)
			}
			db, err := Open(context.Background(), Options{URL: u})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				db.Close()
				return
			}
			if !errors.Is(err, ErrUnsupportedSchema) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Open: %v, want ErrUnsupportedSchema saying %q", err, tc.wantErr)
			}
		})
	}
}

// TestMigrateOnceAcrossReplicas: replicas starting together on one
// database apply taskgate's migrations once, and a restart applies none.
func TestMigrateOnceAcrossReplicas(t *testing.T) {
	u := pgtest.NewDatabase(t)
	pgtest.Exec(t, u, `CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
		INSERT INTO alembic_version VALUES ('1d6611b6ab7c')`)
	ctx := context.Background()
	errs := make(chan error, 4)
	dbs := make(chan *DB, 4)
	for range 4 {
		go func() {
			db, err := Open(ctx, Options{URL: u})
			errs <- err
			dbs <- db
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if db := <-dbs; db != nil {
			defer db.Close()
		}
	}
	db, err := Open(ctx, Options{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, max int
	if err := db.pool.QueryRow(ctx, `SELECT count(*), max(version) FROM taskgate.schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(migrations)-1 || max != len(migrations)-1 {
		t.Errorf("schema_migrations: %d rows up to %d, want %d", n, max, len(migrations)-1)
	}
}
