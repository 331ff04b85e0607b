package cli

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/config"
	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/pgstore"
	"github.com/taskgate/taskgate/workload"
)

func TestPostgresOptions(t *testing.T) {
	const conn = "postgresql+psycopg2://airflow@db/airflow"
	for _, tc := range []struct {
		name  string
		flags map[string]string
		want  pgstore.Options
	}{
		{"Airflow's defaults", nil,
			pgstore.Options{URL: "postgres://airflow@db/airflow", MaxConns: 15, MaxConnLifetime: 30 * time.Minute}},
		{"sizes, recycle, schema", map[string]string{"database.sql_alchemy_pool_size": "32", "database.sql_alchemy_max_overflow": "0",
			"database.sql_alchemy_pool_recycle": "600", "database.sql_alchemy_schema": "airflow"},
			pgstore.Options{URL: "postgres://airflow@db/airflow", Schema: "airflow", MaxConns: 32, MaxConnLifetime: 10 * time.Minute}},
		{"no size limit: the driver's default", map[string]string{"database.sql_alchemy_pool_size": "0"},
			pgstore.Options{URL: "postgres://airflow@db/airflow", MaxConnLifetime: 30 * time.Minute}},
		{"no overflow limit: the driver's default", map[string]string{"database.sql_alchemy_max_overflow": "-1"},
			pgstore.Options{URL: "postgres://airflow@db/airflow", MaxConnLifetime: 30 * time.Minute}},
		{"never recycled, no pre-ping", map[string]string{"database.sql_alchemy_pool_recycle": "-1", "database.sql_alchemy_pool_pre_ping": "False"},
			pgstore.Options{URL: "postgres://airflow@db/airflow", MaxConns: 15, MaxConnLifetime: time.Duration(math.MaxInt64), NoPrePing: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flags := map[string]string{"database.sql_alchemy_conn": conn}
			for k, v := range tc.flags {
				flags[k] = v
			}
			cfg, err := config.Load(config.Sources{Flags: flags})
			if err != nil {
				t.Fatal(err)
			}
			got := postgresOptions(cfg, nil, nil)
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(pgstore.Options{}, "Now", "Cipher")); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

// sqlAlchemyConn writes a test database's URL as an Airflow user writes
// sql_alchemy_conn.
func sqlAlchemyConn(u string) string {
	return "postgresql+psycopg2://" + strings.TrimPrefix(u, "postgres://")
}

// TestOpenPostgres: with sql_alchemy_conn set, the store is Airflow's
// database, checked for its revision, answering pings, and encrypting with
// [core] fernet_key as Airflow does.
func TestOpenPostgres(t *testing.T) {
	u := pgtest.NewAirflow(t)
	const key = "TL0NbKMhUbM4rxvDTS1c0pVl6fQwKkc7wO5ybE5Kh1k="
	cfg, err := config.Load(config.Sources{Env: []string{
		"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=" + sqlAlchemyConn(u),
		"AIRFLOW__API_AUTH__JWT_SECRET=a-test-secret-of-32-bytes-length",
		"AIRFLOW__CORE__FERNET_KEY=" + key,
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := openPostgres(ctx, cfg, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Revision() != pgtest.Revision {
		t.Errorf("revision %s, want %s", db.Revision(), pgtest.Revision)
	}
	if err := db.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	v := "v"
	if err := db.PutVariable(ctx, workload.Variable{Key: "k", Value: &v}); err != nil {
		t.Fatal(err)
	}
	var encrypted bool
	var val string
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT val, is_encrypted FROM variable WHERE key = 'k'`).Scan(&val, &encrypted); err != nil {
		t.Fatal(err)
	}
	if !encrypted || val == "v" {
		t.Errorf("variable stored as %q (is_encrypted %v), want a Fernet token", val, encrypted)
	}
}

func TestOpenPostgresRefusals(t *testing.T) {
	u := pgtest.NewAirflow(t)
	for _, tc := range []struct {
		name string
		env  []string
		says string
	}{
		{"no shared signing key", []string{"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=" + sqlAlchemyConn(u)},
			"also set [api_auth] jwt_secret or jwt_private_key_path"},
		{"not an Airflow database", []string{"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=" + sqlAlchemyConn(pgtest.NewDatabase(t)),
			"AIRFLOW__API_AUTH__JWT_SECRET=a-test-secret-of-32-bytes-length"}, "no alembic_version table"},
		{"MySQL", []string{"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=mysql+mysqldb://airflow:pw@mysql/airflow",
			"AIRFLOW__API_AUTH__JWT_SECRET=a-test-secret-of-32-bytes-length"}, "MySQL (mysql+mysqldb://) is not supported yet"},
		{"bad fernet key", []string{"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=" + sqlAlchemyConn(u),
			"AIRFLOW__API_AUTH__JWT_SECRET=a-test-secret-of-32-bytes-length", "AIRFLOW__CORE__FERNET_KEY=nope"}, "[core] fernet_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := runCLI(t, append(tc.env, "AIRFLOW__TASKGATE__DATA_DIR="+t.TempDir()), "", "serve", "--listen", "127.0.0.1:0")
			if out.err == nil || !strings.Contains(out.err.Error(), tc.says) {
				t.Errorf("serve: %v, want an error saying %q", out.err, tc.says)
			}
		})
	}
}

// TestRotateKeyOnAirflowDatabase: `connections rotate-key` with
// sql_alchemy_conn set re-encrypts Airflow's values with the first
// fernet_key, as `airflow rotate-fernet-key` does.
func TestRotateKeyOnAirflowDatabase(t *testing.T) {
	u := pgtest.NewAirflow(t)
	const (
		oldKey = "TL0NbKMhUbM4rxvDTS1c0pVl6fQwKkc7wO5ybE5Kh1k="
		newKey = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
	)
	env := func(keys string) []string {
		return []string{
			"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=" + sqlAlchemyConn(u),
			"AIRFLOW__API_AUTH__JWT_SECRET=a-test-secret-of-32-bytes-length",
			"AIRFLOW__CORE__FERNET_KEY=" + keys,
			"AIRFLOW__TASKGATE__DATA_DIR=" + t.TempDir(),
			envCredentials + "=" + filepath.Join(t.TempDir(), "none.json"),
		}
	}
	if out := runCLI(t, env(oldKey), "", "variables", "set", "k", "v"); out.err != nil {
		t.Fatalf("variables set: %v\n%s", out.err, out.stderr)
	}
	// The variable, and the signing key set the first command stored.
	out := runCLI(t, env(newKey+","+oldKey), "", "connections", "rotate-key")
	if out.err != nil || !strings.Contains(out.stdout, "re-encrypted 2 ") {
		t.Fatalf("rotate-key: %v\n%s%s", out.err, out.stdout, out.stderr)
	}
	if out := runCLI(t, env(newKey), "", "variables", "get", "k"); out.err != nil || strings.TrimSpace(out.stdout) != "v" {
		t.Errorf("variables get with the new key alone: %q, %v", out.stdout, out.err)
	}
	if out := runCLI(t, env(""), "", "connections", "rotate-key"); out.err == nil || !strings.Contains(out.err.Error(), "nothing to rotate") {
		t.Errorf("rotate-key without fernet_key: %v", out.err)
	}
}

// TestDatabaseHealthCheck: /health/ping names a database that does not
// answer, without the driver's message.
func TestDatabaseHealthCheck(t *testing.T) {
	down := errors.New(`failed to connect to user=airflow database=airflow: 10.0.0.5:5432: connection refused`)
	for _, tc := range []struct {
		name string
		ping func(context.Context) error
		want string // "" for a passing check
	}{
		{"answers", func(context.Context) error { return nil }, ""},
		{"down", func(context.Context) error { return down }, "the database does not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checks := healthChecks(nil, &opened{ping: tc.ping}, zap.NewNop())
			if len(checks) != 2 || checks[1].Name != "database" {
				t.Fatalf("checks %+v, want jwt_validator and database", checks)
			}
			err := checks[1].Check(context.Background())
			if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
				t.Errorf("check: %v, want %q", err, tc.want)
			}
		})
	}
	if checks := healthChecks(nil, &opened{}, zap.NewNop()); len(checks) != 1 {
		t.Errorf("embedded store: %d checks, want only jwt_validator", len(checks))
	}
}
