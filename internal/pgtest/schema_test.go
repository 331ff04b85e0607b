package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/internal/pgtest"
)

// TestSchemaLoads loads Airflow's schema and reads back its alembic revision.
func TestSchemaLoads(t *testing.T) {
	u := pgtest.NewAirflow(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rev string
	if err := conn.QueryRow(ctx, `SELECT version_num FROM alembic_version`).Scan(&rev); err != nil {
		t.Fatal(err)
	}
	if rev != pgtest.Revision {
		t.Fatalf("alembic_version = %q, want %q", rev, pgtest.Revision)
	}
}
