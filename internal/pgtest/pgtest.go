// Package pgtest gives tests a fresh PostgreSQL database holding Airflow's
// schema, created for the test and dropped after it, and fixtures that
// insert rows as Airflow's own code does (Airflow, NewAirflowFixtures).
//
// The server is TASKGATE_TEST_DATABASE_URL when set, else the local server
// on 127.0.0.1:5432 when it answers (trust auth, user postgres), else a
// throwaway cluster the test process starts from the installed PostgreSQL
// binaries. Without any of them the test fails, saying how to get one,
// unless TASKGATE_SKIP_POSTGRES=1 asks on purpose to skip.
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
// database on it): TASKGATE_TEST_DATABASE_URL when set, else the local
// server when it answers, else a throwaway cluster started once per test
// process from the installed PostgreSQL binaries (see Main). With none of
// these it fails t, saying how to install PostgreSQL, or skips t when
// TASKGATE_SKIP_POSTGRES=1 asks for it on purpose.
func Server(t testing.TB) string {
	t.Helper()
	return server(t, os.Getenv("TASKGATE_TEST_DATABASE_URL"), localServer, postgresBinGlob)
}

func server(t testing.TB, envURL, localURL, binGlob string) string {
	t.Helper()
	u, err := resolveServer(envURL, localURL, binGlob)
	if err == nil {
		return u
	}
	if os.Getenv("TASKGATE_SKIP_POSTGRES") == "1" {
		t.Skipf("no PostgreSQL for the tests and TASKGATE_SKIP_POSTGRES=1: %v", err)
		return ""
	}
	t.Fatalf("no PostgreSQL for the tests: %v\n%s", err, installHint)
	return ""
}

const installHint = "Install PostgreSQL (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; " +
	"macOS: brew install postgresql) and the tests start a throwaway server from its binaries, " +
	"or run one on 127.0.0.1:5432 with trust auth for user postgres, " +
	"or set TASKGATE_TEST_DATABASE_URL=postgres://user:password@host:port/postgres (a role that may create databases), " +
	"or set TASKGATE_SKIP_POSTGRES=1 to skip these tests on purpose"

// NewDatabase creates an empty database for t on the test server, drops
// it when t ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabaseOn(t, Server(t))
}

func newDatabaseOn(t testing.TB, server string) string {
	t.Helper()
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
