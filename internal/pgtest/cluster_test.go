package pgtest

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// TestThrowawayCluster: with no URL and no local server answering, the
// tests get a cluster of their own, started from the installed binaries,
// that holds Airflow's schema and is gone after StopCluster.
func TestThrowawayCluster(t *testing.T) {
	if os.Getenv("TASKGATE_TEST_DATABASE_URL") != "" {
		t.Skip("TASKGATE_TEST_DATABASE_URL names the server")
	}
	if _, err := findBinaries(); err != nil && os.Getenv("TASKGATE_SKIP_POSTGRES") == "1" {
		t.Skip(err)
	}
	// Run on a state of our own, then give the other tests theirs back.
	shared.Lock()
	savedURL, savedCluster := shared.url, shared.cluster
	shared.url, shared.cluster = "", nil
	shared.Unlock()
	t.Cleanup(func() {
		StopCluster()
		shared.Lock()
		shared.url, shared.cluster = savedURL, savedCluster
		shared.Unlock()
	})

	const dead = "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2"
	u, err := resolveServer("", dead)
	if err != nil {
		t.Fatal(err)
	}
	if u == dead || !strings.HasPrefix(u, "postgres://postgres@127.0.0.1:") {
		t.Fatalf("server %q, want a throwaway cluster's", u)
	}
	dir := shared.cluster.dir
	if again, err := resolveServer("", dead); err != nil || again != u {
		t.Fatalf("second resolve: %q, %v; want the same cluster %q", again, err, u)
	}

	t.Run("Airflow database on it", func(t *testing.T) {
		db := NewAirflow(t) // Server resolves to the cluster now
		host := strings.TrimSuffix(strings.TrimPrefix(u, "postgres://postgres@"), "/postgres?sslmode=disable")
		if !strings.Contains(db, "@"+host+"/") {
			t.Fatalf("database %q not on the cluster %q", db, u)
		}
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var rev string
		if err := conn.QueryRow(ctx, `SELECT version_num FROM alembic_version`).Scan(&rev); err != nil || rev != Revision {
			t.Fatalf("alembic_version: %q, %v", rev, err)
		}
	})

	StopCluster()
	if ping(u) == nil {
		t.Fatal("the cluster still answers after StopCluster")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("cluster directory %s still there: %v", dir, err)
	}
}
