package config

import (
	"errors"
	"strings"
	"testing"
)

func TestPostgresURL(t *testing.T) {
	for _, tc := range []struct {
		name, conn, want string
	}{
		{"plain", "postgresql://airflow:airflow@postgres/airflow", "postgres://airflow:airflow@postgres/airflow"},
		{"postgres alias", "postgres://airflow:airflow@db:5432/airflow", "postgres://airflow:airflow@db:5432/airflow"},
		{"psycopg2", "postgresql+psycopg2://airflow:airflow@postgres:5432/airflow", "postgres://airflow:airflow@postgres:5432/airflow"},
		{"psycopg 3", "postgresql+psycopg://airflow:airflow@postgres:5432/airflow", "postgres://airflow:airflow@postgres:5432/airflow"},
		{"dialect case", "PostgreSQL+Psycopg2://u@h/d", "postgres://u@h/d"},
		{"surrounding whitespace (a _cmd's newline)", "  postgresql://u@h/d\n", "postgres://u@h/d"},
		{"percent-encoded password", "postgresql://airflow:p%40ss%2Fw%3Ard%25@h/db", "postgres://airflow:p%40ss%2Fw%3Ard%25@h/db"},
		{"unencoded / ? # : in the password, as SQLAlchemy reads them", "postgresql://u:a/b?c#d:e@h:5433/db", "postgres://u:a%2Fb%3Fc%23d%3Ae@h:5433/db"},
		{"malformed escape kept", "postgresql://u:100%zz@h/db", "postgres://u:100%25zz@h/db"},
		{"encoded user name", "postgresql://svc%40corp:pw@h/db", "postgres://svc%40corp:pw@h/db"},
		{"empty password", "postgresql://u:@h/db", "postgres://u:@h/db"},
		{"no user", "postgresql://h/db", "postgres://h/db"},
		{"ipv6 host", "postgresql://u:p@[::1]:5432/db", "postgres://u:p@[::1]:5432/db"},
		{"unix socket directory", "postgresql://airflow@/airflow?host=/var/run/postgresql", "postgres://airflow@/airflow?host=%2Fvar%2Frun%2Fpostgresql"},
		{"sslmode and root cert", "postgresql+psycopg2://u:p@h/db?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem",
			"postgres://u:p@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fssl%2Fca.pem"},
		{"search_path in options", "postgresql://u@h/db?options=-csearch_path%3Dairflow", "postgres://u@h/db?options=-csearch_path%3Dairflow"},
		{"connect_timeout and application_name", "postgresql://u@h/db?connect_timeout=5&application_name=taskgate",
			"postgres://u@h/db?application_name=taskgate&connect_timeout=5"},
		{"SQLAlchemy-only options dropped", "postgresql+psycopg2://u@h/db?executemany_mode=values_plus_batch&keepalives=1&keepalives_idle=30&sslmode=require",
			"postgres://u@h/db?sslmode=require"},
		{"psycopg2 multi-host", "postgresql+psycopg2://u:p@/db?host=h1:5432&host=h2:5433&target_session_attrs=read-write",
			"postgres://u:p@/db?host=h1%2Ch2&port=5432%2C5433&target_session_attrs=read-write"},
		{"multi-host without ports", "postgresql://u@/db?host=h1,h2", "postgres://u@/db?host=h1%2Ch2"},
		{"multi-host some ports", "postgresql://u@/db?host=h1:6432&host=h2", "postgres://u@/db?host=h1%2Ch2&port=6432%2C5432"},
		{"no database", "postgresql://u@h", "postgres://u@h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PostgresURL(tc.conn)
			if err != nil || got != tc.want {
				t.Errorf("PostgresURL(%q) = %q, %v; want %q", tc.conn, got, err, tc.want)
			}
		})
	}
}

func TestPostgresURLRefused(t *testing.T) {
	for _, tc := range []struct {
		name, conn  string
		unsupported bool   // the error wraps ErrUnsupportedDatabase
		says        string // the error contains this
	}{
		{"sqlite", "sqlite:////opt/airflow/airflow.db", true, "SQLite (sqlite://) is not supported yet"},
		{"sqlite memory", "sqlite://", true, "SQLite (sqlite://)"},
		{"mysql", "mysql://airflow:secret@mysql/airflow", true, "MySQL (mysql://) is not supported yet"},
		{"mysqldb", "mysql+mysqldb://airflow:secret@mysql/airflow", true, "MySQL (mysql+mysqldb://)"},
		{"pymysql", "mysql+pymysql://airflow:secret@mysql/airflow", true, "MySQL (mysql+pymysql://)"},
		{"mssql", "mssql+pyodbc://u:secret@h/db", true, "database mssql+pyodbc:// is not supported yet"},
		{"asyncpg", "postgresql+asyncpg://u:secret@h/db", true, `PostgreSQL driver "asyncpg" is not supported yet`},
		{"pg8000", "postgresql+pg8000://u:secret@h/db", true, `driver "pg8000"`},
		{"libpq option pgx lacks", "postgresql://u:secret@h/db?sslcrl=/crl.pem", true, `query option "sslcrl"`},
		{"not a URL", "host=h dbname=airflow password=secret", false, "not a SQLAlchemy URL"},
		{"bad port", "postgresql://u:secret@h:port/db", false, `port "port"`},
		{"host twice", "postgresql://u:secret@h/db?host=a&host=b", false, "both a host and host="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PostgresURL(tc.conn)
			if err == nil {
				t.Fatalf("PostgresURL(%q) = %q, want an error", tc.conn, got)
			}
			if errors.Is(err, ErrUnsupportedDatabase) != tc.unsupported || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q (unsupported: %v), want one saying %q (unsupported: %v)", err, errors.Is(err, ErrUnsupportedDatabase), tc.says, tc.unsupported)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}
