// Package pgtest gives tests a fresh PostgreSQL database holding Airflow's
// schema, created for the test and dropped after it.
//
// The server is TASKGATE_TEST_DATABASE_URL when set, else the local server
// on 127.0.0.1:5432. Without a server the test fails, saying how to get
// one, unless TASKGATE_SKIP_POSTGRES=1 asks on purpose to skip.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Revision is the alembic revision of the Airflow schema the tests load
// (testdata/airflow/REVISION.sql).
const Revision = "1d6611b6ab7c"

const localServer = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Server returns the URL of the server the tests use (a maintenance
// database on it), failing t, or skipping it when TASKGATE_SKIP_POSTGRES=1,
// when there is none.
func Server(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("TASKGATE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, localServer)
	if err == nil {
		conn.Close(ctx)
		return localServer
	}
	if os.Getenv("TASKGATE_SKIP_POSTGRES") == "1" {
		t.Skipf("no PostgreSQL server (%v) and TASKGATE_SKIP_POSTGRES=1", err)
	}
	t.Fatalf("no PostgreSQL server for the tests: set TASKGATE_TEST_DATABASE_URL, or run one on 127.0.0.1:5432 "+
		"(Debian: apt-get install postgresql, then pg_ctlcluster --skip-systemctl-redirect 15 main start), "+
		"or set TASKGATE_SKIP_POSTGRES=1 to skip these tests on purpose: %v", err)
	return ""
}

// NewDatabase creates an empty database for t on the test server, drops
// it when t ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	server := Server(t)
	ctx := context.Background()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "taskgate_test_" + hex.EncodeToString(b[:])
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: TASKGATE_TEST_DATABASE_URL must be a postgres:// URL: %q", server)
	}
	u.Path = "/" + name
	return u.String()
}

// NewAirflow creates a database for t holding Airflow's schema at Revision
// and returns its URL.
func NewAirflow(t testing.TB) string {
	t.Helper()
	u := NewDatabase(t)
	Exec(t, u, Schema(t))
	return u
}

// Schema returns the SQL of Airflow's schema at Revision.
func Schema(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(moduleRoot(), "testdata", "airflow", Revision+".sql"))
	if err != nil {
		t.Fatalf("pgtest: Airflow schema: %v", err)
	}
	return string(b)
}

// Exec runs sql (any number of statements, no parameters) on the database.
func Exec(t testing.TB, dbURL, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %v\n%s", err, firstLines(sql, 5))
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// moduleRoot is the repository's root directory.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
