package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	if _, err := findBinaries(postgresBinGlob); err != nil && os.Getenv("TASKGATE_SKIP_POSTGRES") == "1" {
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
	u, err := resolveServer("", dead, postgresBinGlob)
	if err != nil {
		t.Fatal(err)
	}
	if u == dead || !strings.HasPrefix(u, "postgres://postgres@127.0.0.1:") {
		t.Fatalf("server %q, want a throwaway cluster's", u)
	}
	dir := shared.cluster.dir
	if again, err := resolveServer("", dead, postgresBinGlob); err != nil || again != u {
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

// fakeTB records what Server does with t instead of ending the test.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Fatalf(format string, a ...any) { f.fatal = fmt.Sprintf(format, a...) }
func (f *fakeTB) Skipf(format string, a ...any)  { f.skip = fmt.Sprintf(format, a...) }

// TestNoPostgreSQL: with no URL, no local server and no binaries, the
// tests fail saying how to install PostgreSQL, or skip when
// TASKGATE_SKIP_POSTGRES=1 asks for it.
func TestNoPostgreSQL(t *testing.T) {
	shared.Lock()
	savedURL, savedCluster := shared.url, shared.cluster
	shared.url, shared.cluster = "", nil
	shared.Unlock()
	t.Cleanup(func() {
		shared.Lock()
		shared.url, shared.cluster = savedURL, savedCluster
		shared.Unlock()
	})
	t.Setenv("PATH", t.TempDir())
	const dead = "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2"
	nowhere := filepath.Join(t.TempDir(), "*", "bin")

	for name, tc := range map[string]struct {
		skip                string
		wantFatal, wantSkip string
	}{
		"fails":           {wantFatal: "apt-get install postgresql"},
		"skips on demand": {skip: "1", wantSkip: "TASKGATE_SKIP_POSTGRES=1"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("TASKGATE_SKIP_POSTGRES", tc.skip)
			f := &fakeTB{TB: t}
			if u := server(f, "", dead, nowhere); u != "" {
				t.Fatalf("server = %q, want none", u)
			}
			for _, c := range []struct{ got, want string }{{f.fatal, tc.wantFatal}, {f.skip, tc.wantSkip}} {
				if (c.want == "") != (c.got == "") || !strings.Contains(c.got, c.want) {
					t.Errorf("got %q, want a message with %q", c.got, c.want)
				}
			}
			if !strings.Contains(f.fatal+f.skip, "no initdb and postgres binaries") {
				t.Errorf("message %q does not say what is missing", f.fatal+f.skip)
			}
		})
	}
}

// TestClusterRestart: a test's own cluster can be crashed, stopped and
// started again with its data.
func TestClusterRestart(t *testing.T) {
	c := NewCluster(t)
	db := c.NewDatabase(t)
	Exec(t, db, Schema(t))
	for _, halt := range []struct {
		name string
		do   func()
	}{{"kill", c.Kill}, {"stop", c.Stop}} {
		t.Run(halt.name, func(t *testing.T) {
			halt.do()
			if ping(c.URL) == nil {
				t.Fatal("the cluster still answers")
			}
			c.Start(t)
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var rev string
			if err := conn.QueryRow(ctx, `SELECT version_num FROM alembic_version`).Scan(&rev); err != nil || rev != Revision {
				t.Fatalf("alembic_version after restart: %q, %v", rev, err)
			}
		})
	}
}
