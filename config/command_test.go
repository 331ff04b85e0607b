package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestShlexSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"cat /run/secrets/db", []string{"cat", "/run/secrets/db"}},
		{"  a\tb\n c  ", []string{"a", "b", "c"}},
		{`vault read -field=url 'secret/airflow db'`, []string{"vault", "read", "-field=url", "secret/airflow db"}},
		{`echo "a \"q\" \\ \$x"`, []string{"echo", `a "q" \ \$x`}},
		{`a\ b c\'d`, []string{"a b", "c'd"}},
		{`x''y "" ''`, []string{"xy", "", ""}},
		{"", nil},
	} {
		got, err := shlexSplit(tc.in)
		if err != nil {
			t.Errorf("shlexSplit(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("shlexSplit(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	for _, in := range []string{`"open`, `'open`, `trailing\`} {
		if got, err := shlexSplit(in); err == nil {
			t.Errorf("shlexSplit(%q) = %q, want an error", in, got)
		}
	}
}

// TestDatabaseConnResolution: sql_alchemy_conn is taken from the sources
// in Airflow's order, _CMD variants run, _SECRET variants refused when
// they would decide.
func TestDatabaseConnResolution(t *testing.T) {
	const (
		envURL  = "postgresql://env@h/db"
		cmdURL  = "postgresql://cmd@h/db"
		fileURL = "postgresql://file@h/db"
	)
	// run echoes its arguments, as `echo` would, and records them.
	var ran [][]string
	run := func(argv, env []string) ([]byte, error) {
		ran = append(ran, argv)
		if argv[0] == "false" {
			return nil, errors.New("exit status 1")
		}
		return []byte(strings.Join(argv[1:], " ") + "\n"), nil
	}
	for _, tc := range []struct {
		name       string
		file       string
		env        []string
		wantURL    string
		wantSource string
		wantErr    string
		wantRun    [][]string
	}{
		{name: "unset: the embedded store", wantURL: "", wantSource: "default"},
		{name: "env", env: []string{"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=" + envURL}, file: "[database]\nsql_alchemy_conn = " + fileURL + "\n",
			wantURL: "postgres://env@h/db", wantSource: "env"},
		{name: "env beats env _CMD", env: []string{"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=" + envURL, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD=echo " + cmdURL},
			wantURL: "postgres://env@h/db", wantSource: "env"},
		{name: "env _CMD beats the file", env: []string{"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD=echo '" + cmdURL + "'"}, file: "[database]\nsql_alchemy_conn = " + fileURL + "\n",
			wantURL: "postgres://cmd@h/db", wantSource: "env", wantRun: [][]string{{"echo", cmdURL}}},
		{name: "env _CMD beats env _SECRET", env: []string{"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD=echo " + cmdURL, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET=airflow/db"},
			wantURL: "postgres://cmd@h/db", wantSource: "env", wantRun: [][]string{{"echo", cmdURL}}},
		{name: "env _SECRET refused", env: []string{"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET=airflow/db"}, file: "[database]\nsql_alchemy_conn = " + fileURL + "\n",
			wantErr: "from env AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET): taskgate cannot query Airflow's secrets backends"},
		{name: "file", file: "[database]\nsql_alchemy_conn = " + fileURL + "\nsql_alchemy_conn_cmd = echo " + cmdURL + "\n",
			wantURL: "postgres://file@h/db", wantSource: "file"},
		{name: "file _cmd", file: "[database]\nsql_alchemy_conn_cmd = echo " + cmdURL + "\nsql_alchemy_conn_secret = x\n",
			wantURL: "postgres://cmd@h/db", wantSource: "file", wantRun: [][]string{{"echo", cmdURL}}},
		{name: "file _secret refused", file: "[database]\nsql_alchemy_conn_secret = airflow/db\n",
			wantErr: "taskgate cannot query Airflow's secrets backends: set [database] sql_alchemy_conn or sql_alchemy_conn_cmd"},
		{name: "command fails", env: []string{"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD=false postgresql://u:hunter2@h/db"},
			wantErr: "command false failed: exit status 1", wantRun: [][]string{{"false", "postgresql://u:hunter2@h/db"}}},
		{name: "MySQL refused", env: []string{"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=mysql+mysqldb://u:hunter2@h/db"},
			wantErr: `config: [database] sql_alchemy_conn = "<redacted>" (from env AIRFLOW__DATABASE__SQL_ALCHEMY_CONN): MySQL (mysql+mysqldb://) is not supported yet`},
		{name: "SQLite refused", file: "[database]\nsql_alchemy_conn = sqlite:////tmp/airflow.db\n",
			wantErr: "SQLite (sqlite://) is not supported yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran = nil
			src := Sources{Env: tc.env, Run: run}
			if tc.file != "" {
				_, src.File = writeFile(t, "airflow.cfg", tc.file)
			}
			c, err := Load(src)
			if diff := cmp.Diff(tc.wantRun, ran); diff != "" {
				t.Errorf("commands run (-want +got):\n%s", diff)
			}
			if tc.wantErr != "" {
				var ve *ValueError
				if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load: %v, want a *ValueError saying %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.DatabaseURL != tc.wantURL || c.Source["database.sql_alchemy_conn"] != tc.wantSource {
				t.Errorf("DatabaseURL %q from %s, want %q from %s", c.DatabaseURL, c.Source["database.sql_alchemy_conn"], tc.wantURL, tc.wantSource)
			}
			for _, w := range c.Warnings {
				if strings.Contains(w, "SQL_ALCHEMY_CONN") || strings.Contains(w, "sql_alchemy_conn") {
					t.Errorf("warning about a variant taskgate honours or refuses: %s", w)
				}
			}
		})
	}
}

// TestDatabaseCommandRuns runs a real command through os/exec, with the
// configured environment.
func TestDatabaseCommandRuns(t *testing.T) {
	c, err := Load(Sources{Env: []string{
		"PATH=/usr/bin:/bin",
		"DB_HOST=db.internal",
		`AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD=sh -c 'echo "postgresql+psycopg2://airflow:p%40ss@$DB_HOST:5432/airflow?sslmode=require"'`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "postgres://airflow:p%40ss@db.internal:5432/airflow?sslmode=require"; c.DatabaseURL != want {
		t.Errorf("DatabaseURL = %q, want %q", c.DatabaseURL, want)
	}
}

func TestDatabasePoolKeys(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flags   map[string]string
		check   func(c *Config) bool
		wantErr string
	}{
		{"sizes", map[string]string{"database.sql_alchemy_pool_size": "20", "database.sql_alchemy_max_overflow": "-1"},
			func(c *Config) bool { return c.DatabasePoolSize == 20 && c.DatabaseMaxOverflow == -1 }, ""},
		{"recycle", map[string]string{"database.sql_alchemy_pool_recycle": "90.5"},
			func(c *Config) bool { return c.DatabasePoolRecycle == 90500*time.Millisecond }, ""},
		{"recycle never", map[string]string{"database.sql_alchemy_pool_recycle": "-1"},
			func(c *Config) bool { return c.DatabasePoolRecycle < 0 }, ""},
		{"pre_ping off", map[string]string{"database.sql_alchemy_pool_pre_ping": "false"},
			func(c *Config) bool { return !c.DatabasePoolPrePing }, ""},
		{"schema", map[string]string{"database.sql_alchemy_schema": "airflow"},
			func(c *Config) bool { return c.DatabaseSchema == "airflow" }, ""},
		{"negative pool size", map[string]string{"database.sql_alchemy_pool_size": "-3"}, nil, "must not be negative"},
		{"bad pre_ping", map[string]string{"database.sql_alchemy_pool_pre_ping": "yes"}, nil, "not a boolean"},
		{"zero recycle", map[string]string{"database.sql_alchemy_pool_recycle": "0"}, nil, "must be greater than 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(Sources{Flags: tc.flags})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load: %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected %+v", c)
			}
		})
	}
}
