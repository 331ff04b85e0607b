package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeFile writes content to name in a fresh temporary directory and
// returns the directory and the file's path.
func writeFile(t *testing.T, name, content string) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

func allSources(s string) map[string]string {
	out := map[string]string{}
	for _, k := range Keys() {
		out[k.Section+"."+k.Name] = s
	}
	return out
}

func defaultConfig() *Config {
	return &Config{
		JWTAlgorithm:           "GUESS",
		JWTLeeway:              10 * time.Second,
		APITokenLifetime:       86400 * time.Second,
		APICLITokenLifetime:    3600 * time.Second,
		APIAudiences:           []string{"urn:taskgate:api"},
		ExecutionTokenLifetime: 600 * time.Second,
		ExecutionAudiences:     []string{"urn:airflow.apache.org:task"},
		WorkloadTokenLifetime:  600 * time.Second,
		TaskQueuedTimeout:      600 * time.Second,
		MaxMapLength:           1024,
		TaskSuccessOvertime:    20 * time.Second,
		DatabasePoolSize:       5,
		DatabaseMaxOverflow:    10,
		DatabasePoolRecycle:    1800 * time.Second,
		DatabasePoolPrePing:    true,
		Listen:                 "127.0.0.1:8080",
		DataDir:                "./data",
		LogLevel:               "info",
		MaxBodyBytes:           1 << 20,
		BatchDelay:             time.Millisecond,
		MaxInFlight:            4096,
		AuthFailuresPerMinute:  60,
		BcryptCost:             10,
		TaskVariableWrites:     "all",
		ShutdownTimeout:        30 * time.Second,
		ReadHeaderTimeout:      10 * time.Second,
		ReadTimeout:            60 * time.Second,
		WriteTimeout:           60 * time.Second,
		IdleTimeout:            120 * time.Second,
		JWKSRefresh:            time.Hour,
		JWKSRetry:              10 * time.Second,
		Source:                 allSources("default"),

		DagProcessorHealthCheckThreshold: 50 * time.Second,
	}
}

func TestLoadDefaults(t *testing.T) {
	// HOME points at a directory holding ~/airflow/airflow.cfg: without
	// AIRFLOW_HOME it must not be read.
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, "airflow"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "airflow", "airflow.cfg"), []byte("[taskgate]\nlisten = :1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(Sources{Env: []string{"HOME=" + home, "PATH=/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(defaultConfig(), got); diff != "" {
		t.Errorf("Load() mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadPrecedence(t *testing.T) {
	const cfg = `
[execution_api]
jwt_expiration_time = 100
jwt_audience = file-aud

[taskgate]
listen = 127.0.0.1:1
log_level = debug
data_dir = /file/data
`
	_, path := writeFile(t, "airflow.cfg", cfg)
	env := []string{
		"AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME=200",
		"AIRFLOW__TASKGATE__LISTEN=127.0.0.1:2",
		"AIRFLOW__TASKGATE__LOG_LEVEL=warn",
	}
	flags := map[string]string{
		"taskgate.listen":    ":3",
		"taskgate.log_level": "ERROR",
	}

	type result struct {
		ExecLifetime time.Duration
		Audiences    []string
		Listen       string
		LogLevel     string
		DataDir      string
		Sources      []string // sources of the five keys above, same order
	}
	pick := func(c *Config) result {
		var s []string
		for _, k := range []string{"execution_api.jwt_expiration_time", "execution_api.jwt_audience",
			"taskgate.listen", "taskgate.log_level", "taskgate.data_dir"} {
			s = append(s, c.Source[k])
		}
		return result{c.ExecutionTokenLifetime, c.ExecutionAudiences, c.Listen, c.LogLevel, c.DataDir, s}
	}

	tests := []struct {
		name string
		src  Sources
		want result
	}{
		{
			name: "defaults only",
			src:  Sources{},
			want: result{600 * time.Second, []string{"urn:airflow.apache.org:task"}, "127.0.0.1:8080", "info", "./data",
				[]string{"default", "default", "default", "default", "default"}},
		},
		{
			name: "file over defaults",
			src:  Sources{File: path},
			want: result{100 * time.Second, []string{"file-aud"}, "127.0.0.1:1", "debug", "/file/data",
				[]string{"file", "file", "file", "file", "file"}},
		},
		{
			name: "env over file",
			src:  Sources{File: path, Env: env},
			want: result{200 * time.Second, []string{"file-aud"}, "127.0.0.1:2", "warn", "/file/data",
				[]string{"env", "file", "env", "env", "file"}},
		},
		{
			name: "flag over env",
			src:  Sources{File: path, Env: env, Flags: flags},
			want: result{200 * time.Second, []string{"file-aud"}, ":3", "error", "/file/data",
				[]string{"env", "file", "flag", "flag", "file"}},
		},
		{
			name: "later env entry wins",
			src:  Sources{Env: []string{"AIRFLOW__TASKGATE__LISTEN=:4", "AIRFLOW__TASKGATE__LISTEN=:5"}},
			want: result{600 * time.Second, []string{"urn:airflow.apache.org:task"}, ":5", "info", "./data",
				[]string{"default", "default", "env", "default", "default"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, pick(c)); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadFileDiscovery(t *testing.T) {
	home, cfgPath := writeFile(t, "airflow.cfg", "[taskgate]\nlisten = :7\n")
	_, other := writeFile(t, "other.cfg", "[taskgate]\nlisten = :8\n")
	empty := t.TempDir()

	tests := []struct {
		name       string
		src        Sources
		wantFile   string
		wantListen string
	}{
		{"AIRFLOW_HOME with airflow.cfg", Sources{Env: []string{"AIRFLOW_HOME=" + home}}, cfgPath, ":7"},
		{"AIRFLOW_HOME expanded from another variable", Sources{Env: []string{"BASE=" + home, "AIRFLOW_HOME=${BASE}"}}, cfgPath, ":7"},
		{"AIRFLOW_HOME without airflow.cfg", Sources{Env: []string{"AIRFLOW_HOME=" + empty}}, "", "127.0.0.1:8080"},
		{"AIRFLOW_CONFIG wins over AIRFLOW_HOME", Sources{Env: []string{"AIRFLOW_HOME=" + home, "AIRFLOW_CONFIG=" + other}}, other, ":8"},
		{"AIRFLOW_CONFIG missing means no file", Sources{Env: []string{"AIRFLOW_HOME=" + home, "AIRFLOW_CONFIG=" + filepath.Join(empty, "x.cfg")}}, "", "127.0.0.1:8080"},
		{"explicit file wins over the environment", Sources{File: other, Env: []string{"AIRFLOW_HOME=" + home}}, other, ":8"},
		{"nothing set means no file", Sources{Env: []string{"HOME=" + home}}, "", "127.0.0.1:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tt.wantFile, tt.wantListen}, []string{c.File, c.Listen}); diff != "" {
				t.Errorf("file, listen mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadExplicitFileMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.cfg")
	_, err := Load(Sources{File: missing})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load() error = %v, want fs.ErrNotExist", err)
	}
	if !strings.HasPrefix(err.Error(), "config: ") || !strings.Contains(err.Error(), missing) {
		t.Errorf("error %q should start with config: and name the file", err)
	}
}

func TestLoadWholeAirflowCfg(t *testing.T) {
	// An excerpt in the shape of a generated airflow.cfg: many sections and
	// keys taskgate does not know, %% escapes, comments and a multi-line value.
	const cfg = `# airflow.cfg
[core]
# The folder where your airflow pipelines live
dags_folder = /opt/airflow/dags
executor = LocalExecutor
max_map_length = 2048
fernet_key =

[logging]
log_format = [%%(asctime)s] {%%(filename)s:%%(lineno)d} %%(levelname)s - %%(message)s
bad_but_unused = 100%

[api_auth]
; the secret every component shares
jwt_secret = s3cr3t%%x
jwt_issuer = https://airflow.example, other-issuer
jwt_audience = rest-a,rest-b

[execution_api]
jwt_audience =
	urn:airflow.apache.org:task
	, second-aud

[scheduler]
task_queued_timeout = 600.0
some_future_key = whatever

[some_plugin]
anything: goes here
`
	_, path := writeFile(t, "airflow.cfg", cfg)
	c, err := Load(Sources{File: path})
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	want.MaxMapLength = 2048
	want.JWTSecret = "s3cr3t%x"
	want.JWTIssuers = []string{"https://airflow.example", "other-issuer"}
	want.APIAudiences = []string{"rest-a", "rest-b"}
	want.ExecutionAudiences = []string{"urn:airflow.apache.org:task", "second-aud"}
	want.File = path
	for _, k := range []string{"core.fernet_key", "core.max_map_length", "api_auth.jwt_secret", "api_auth.jwt_issuer",
		"api_auth.jwt_audience", "execution_api.jwt_audience", "scheduler.task_queued_timeout"} {
		want.Source[k] = "file"
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Load() mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadInterpolationAndExpansion(t *testing.T) {
	const cfg = `[DEFAULT]
base = /srv

[api_auth]
keys = %(base)s/keys
jwt_private_key_path = %(keys)s/jwt.pem

[taskgate]
data_dir = $STATE_DIR/taskgate
`
	_, path := writeFile(t, "airflow.cfg", cfg)
	env := []string{
		"STATE_DIR=/var/lib",
		"HOME=/home/op",
		"AIRFLOW__API_AUTH__TRUSTED_JWKS_URL=~/jwks.json",
		"AIRFLOW__API_AUTH__JWT_KID=$UNSET_VAR-kid",
	}
	c, err := Load(Sources{File: path, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.JWTPrivateKeyPath, c.DataDir, c.TrustedJWKSURL, c.JWTKID}
	want := []string{"/srv/keys/jwt.pem", "/var/lib/taskgate", "/home/op/jwks.json", "$UNSET_VAR-kid"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadWorkloadLifetime(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want time.Duration
	}{
		{"falls back to the default queued timeout", nil, 600 * time.Second},
		{"falls back to a fractional queued timeout", []string{"AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT=900.5"}, 900*time.Second + 500*time.Millisecond},
		{"empty value also falls back", []string{"AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT=120", "AIRFLOW__EXECUTION_API__WORKLOAD_TOKEN_EXPIRATION_TIME="}, 120 * time.Second},
		{"explicit value wins", []string{"AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT=120", "AIRFLOW__EXECUTION_API__WORKLOAD_TOKEN_EXPIRATION_TIME=3600"}, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(Sources{Env: tt.env})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.WorkloadTokenLifetime); diff != "" {
				t.Errorf("WorkloadTokenLifetime mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadValues(t *testing.T) {
	tests := []struct {
		name  string
		flags map[string]string
		got   func(*Config) any
		want  any
	}{
		{"algorithm is case-insensitive", map[string]string{"api_auth.jwt_algorithm": "hs512"}, func(c *Config) any { return c.JWTAlgorithm }, "HS512"},
		{"algorithm EdDSA spelling", map[string]string{"api_auth.jwt_algorithm": " eddsa "}, func(c *Config) any { return c.JWTAlgorithm }, "EdDSA"},
		{"algorithm as one-item list", map[string]string{"api_auth.jwt_algorithm": "RS256,"}, func(c *Config) any { return c.JWTAlgorithm }, "RS256"},
		{"empty algorithm is GUESS", map[string]string{"api_auth.jwt_algorithm": ""}, func(c *Config) any { return c.JWTAlgorithm }, "GUESS"},
		{"empty issuer is nil", map[string]string{"api_auth.jwt_issuer": " , "}, func(c *Config) any { return c.JWTIssuers }, []string(nil)},
		{"seconds as float", map[string]string{"api_auth.jwt_leeway": "0.5"}, func(c *Config) any { return c.JWTLeeway }, 500 * time.Millisecond},
		{"zero leeway", map[string]string{"api_auth.jwt_leeway": "0"}, func(c *Config) any { return c.JWTLeeway }, time.Duration(0)},
		{"seconds with spaces", map[string]string{"execution_api.jwt_expiration_time": " 600.0 "}, func(c *Config) any { return c.ExecutionTokenLifetime }, 600 * time.Second},
		{"size in bytes", map[string]string{"taskgate.max_body_bytes": "4096"}, func(c *Config) any { return c.MaxBodyBytes }, int64(4096)},
		{"size in KiB", map[string]string{"taskgate.max_body_bytes": "512 kib"}, func(c *Config) any { return c.MaxBodyBytes }, int64(512 << 10)},
		{"size in GiB", map[string]string{"taskgate.max_body_bytes": "2GiB"}, func(c *Config) any { return c.MaxBodyBytes }, int64(2 << 30)},
		{"zero batch delay", map[string]string{"taskgate.batch_delay": "0"}, func(c *Config) any { return c.BatchDelay }, time.Duration(0)},
		{"warning is warn", map[string]string{"taskgate.log_level": "WARNING"}, func(c *Config) any { return c.LogLevel }, "warn"},
		{"listen on all interfaces", map[string]string{"taskgate.listen": "[::]:9000"}, func(c *Config) any { return c.Listen }, "[::]:9000"},
		{"task variable writes none", map[string]string{"taskgate.task_variable_writes": " None "}, func(c *Config) any { return c.TaskVariableWrites }, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(Sources{Flags: tt.flags})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, tt.got(c)); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadValueErrors(t *testing.T) {
	_, path := writeFile(t, "airflow.cfg", "[taskgate]\n\nlisten = nocolon\n")
	_, interp := writeFile(t, "interp.cfg", "[api_auth]\njwt_kid = 100%\n")

	tests := []struct {
		name string
		src  Sources
		want ValueError
	}{
		{
			name: "seconds not a number from env",
			src:  Sources{Env: []string{"AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME=abc"}},
			want: ValueError{"execution_api", "jwt_expiration_time", "abc", "env", "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME", "not a number of seconds"},
		},
		{
			name: "listen not host:port from file",
			src:  Sources{File: path},
			want: ValueError{"taskgate", "listen", "nocolon", "file", path + ":3", "not host:port: address nocolon: missing port in address"},
		},
		{
			name: "bad interpolation from file",
			src:  Sources{File: interp},
			want: ValueError{"api_auth", "jwt_kid", "100%", "file", interp + ":2", `"%" must be followed by "%" or "(" (write %% for a literal %)`},
		},
		{
			name: "two algorithms",
			src:  Sources{Flags: map[string]string{"api_auth.jwt_algorithm": "HS512,RS256"}},
			want: ValueError{"api_auth", "jwt_algorithm", "HS512,RS256", "flag", "api_auth.jwt_algorithm", "exactly one algorithm is allowed, got 2"},
		},
		{
			name: "unknown algorithm",
			src:  Sources{Flags: map[string]string{"api_auth.jwt_algorithm": "none"}},
			want: ValueError{"api_auth", "jwt_algorithm", "none", "flag", "api_auth.jwt_algorithm", "not one of GUESS, HS512, RS256, RS512, EdDSA"},
		},
		{
			name: "negative leeway",
			src:  Sources{Flags: map[string]string{"api_auth.jwt_leeway": "-1"}},
			want: ValueError{"api_auth", "jwt_leeway", "-1", "flag", "api_auth.jwt_leeway", "must not be negative"},
		},
		{
			name: "zero api lifetime",
			src:  Sources{Flags: map[string]string{"api_auth.jwt_expiration_time": "0"}},
			want: ValueError{"api_auth", "jwt_expiration_time", "0", "flag", "api_auth.jwt_expiration_time", "must be greater than 0"},
		},
		{
			name: "cli lifetime not a number",
			src:  Sources{Flags: map[string]string{"api_auth.jwt_cli_expiration_time": "1h"}},
			want: ValueError{"api_auth", "jwt_cli_expiration_time", "1h", "flag", "api_auth.jwt_cli_expiration_time", "not a number of seconds"},
		},
		{
			name: "hex seconds refused",
			src:  Sources{Flags: map[string]string{"execution_api.jwt_expiration_time": "0x10"}},
			want: ValueError{"execution_api", "jwt_expiration_time", "0x10", "flag", "execution_api.jwt_expiration_time", "not a number of seconds"},
		},
		{
			name: "infinite seconds refused",
			src:  Sources{Flags: map[string]string{"execution_api.jwt_expiration_time": "inf"}},
			want: ValueError{"execution_api", "jwt_expiration_time", "inf", "flag", "execution_api.jwt_expiration_time", "not a number of seconds"},
		},
		{
			name: "seconds overflow",
			src:  Sources{Flags: map[string]string{"execution_api.jwt_expiration_time": "1e300"}},
			want: ValueError{"execution_api", "jwt_expiration_time", "1e300", "flag", "execution_api.jwt_expiration_time", "too large"},
		},
		{
			name: "empty execution audience",
			src:  Sources{Env: []string{"AIRFLOW__EXECUTION_API__JWT_AUDIENCE= , "}},
			want: ValueError{"execution_api", "jwt_audience", " , ", "env", "AIRFLOW__EXECUTION_API__JWT_AUDIENCE", "must name at least one value"},
		},
		{
			name: "zero workload lifetime",
			src:  Sources{Env: []string{"AIRFLOW__EXECUTION_API__WORKLOAD_TOKEN_EXPIRATION_TIME=0"}},
			want: ValueError{"execution_api", "workload_token_expiration_time", "0", "env", "AIRFLOW__EXECUTION_API__WORKLOAD_TOKEN_EXPIRATION_TIME", "must be greater than 0"},
		},
		{
			name: "negative queued timeout",
			src:  Sources{Env: []string{"AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT=-600.0"}},
			want: ValueError{"scheduler", "task_queued_timeout", "-600.0", "env", "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", "must not be negative"},
		},
		{
			name: "max map length not an integer",
			src:  Sources{Env: []string{"AIRFLOW__CORE__MAX_MAP_LENGTH=10.5"}},
			want: ValueError{"core", "max_map_length", "10.5", "env", "AIRFLOW__CORE__MAX_MAP_LENGTH", "not an integer"},
		},
		{
			name: "max map length zero",
			src:  Sources{Env: []string{"AIRFLOW__CORE__MAX_MAP_LENGTH=0"}},
			want: ValueError{"core", "max_map_length", "0", "env", "AIRFLOW__CORE__MAX_MAP_LENGTH", "must be greater than 0"},
		},
		{
			name: "multi team not a boolean",
			src:  Sources{Env: []string{"AIRFLOW__CORE__MULTI_TEAM=yes"}},
			want: ValueError{"core", "multi_team", "yes", "env", "AIRFLOW__CORE__MULTI_TEAM", "not a boolean (True or False)"},
		},
		{
			name: "multi team on the embedded store",
			src:  Sources{Env: []string{"AIRFLOW__CORE__MULTI_TEAM=True"}},
			want: ValueError{"core", "multi_team", "True", "env", "AIRFLOW__CORE__MULTI_TEAM",
				"the embedded store has no teams, so taskgate cannot keep one team's tasks from another team's variables and connections; " +
					"set it to False, or serve Airflow's metadata database ([database] sql_alchemy_conn)"},
		},
		{
			name: "empty data dir",
			src:  Sources{Flags: map[string]string{"taskgate.data_dir": " "}},
			want: ValueError{"taskgate", "data_dir", " ", "flag", "taskgate.data_dir", "must not be empty"},
		},
		{
			name: "pprof on a public address",
			src:  Sources{Env: []string{"AIRFLOW__TASKGATE__PPROF_LISTEN=0.0.0.0:6060"}},
			want: ValueError{"taskgate", "pprof_listen", "0.0.0.0:6060", "env", "AIRFLOW__TASKGATE__PPROF_LISTEN",
				"must be a loopback address: profiles reveal the process's internals"},
		},
		{
			name: "bad log level",
			src:  Sources{Flags: map[string]string{"taskgate.log_level": "trace"}},
			want: ValueError{"taskgate", "log_level", "trace", "flag", "taskgate.log_level", "not one of debug, info, warn, error"},
		},
		{
			name: "bad task variable writes",
			src:  Sources{Env: []string{"AIRFLOW__TASKGATE__TASK_VARIABLE_WRITES=own"}},
			want: ValueError{"taskgate", "task_variable_writes", "own", "env", "AIRFLOW__TASKGATE__TASK_VARIABLE_WRITES", "not one of all, none"},
		},
		{
			name: "bad size suffix",
			src:  Sources{Flags: map[string]string{"taskgate.max_body_bytes": "1MB"}},
			want: ValueError{"taskgate", "max_body_bytes", "1MB", "flag", "taskgate.max_body_bytes", "not a size (use bytes, or a number with KiB, MiB or GiB)"},
		},
		{
			name: "zero size",
			src:  Sources{Flags: map[string]string{"taskgate.max_body_bytes": "0KiB"}},
			want: ValueError{"taskgate", "max_body_bytes", "0KiB", "flag", "taskgate.max_body_bytes", "must be greater than 0"},
		},
		{
			name: "size overflow",
			src:  Sources{Flags: map[string]string{"taskgate.max_body_bytes": "9223372036854775807GiB"}},
			want: ValueError{"taskgate", "max_body_bytes", "9223372036854775807GiB", "flag", "taskgate.max_body_bytes", "too large"},
		},
		{
			name: "duration without unit",
			src:  Sources{Flags: map[string]string{"taskgate.shutdown_timeout": "30"}},
			want: ValueError{"taskgate", "shutdown_timeout", "30", "flag", "taskgate.shutdown_timeout", "not a duration (use Go syntax such as 1ms, 30s, 1h)"},
		},
		{
			name: "negative batch delay",
			src:  Sources{Flags: map[string]string{"taskgate.batch_delay": "-1ms"}},
			want: ValueError{"taskgate", "batch_delay", "-1ms", "flag", "taskgate.batch_delay", "must not be negative"},
		},
		{
			name: "zero timeouts",
			src:  Sources{Flags: map[string]string{"taskgate.idle_timeout": "0s"}},
			want: ValueError{"taskgate", "idle_timeout", "0s", "flag", "taskgate.idle_timeout", "must be greater than 0"},
		},
		{
			name: "zero jwks refresh",
			src:  Sources{Flags: map[string]string{"taskgate.jwks_refresh_interval": "0"}},
			want: ValueError{"taskgate", "jwks_refresh_interval", "0", "flag", "taskgate.jwks_refresh_interval", "must be greater than 0"},
		},
		{
			name: "secret and private key together, secret not echoed",
			src: Sources{
				Env:   []string{"AIRFLOW__API_AUTH__JWT_SECRET=hunter2"},
				Flags: map[string]string{"api_auth.jwt_private_key_path": "/k.pem"},
			},
			want: ValueError{"api_auth", "jwt_private_key_path", "/k.pem", "flag", "api_auth.jwt_private_key_path",
				"cannot be combined with [api_auth] jwt_secret (from env AIRFLOW__API_AUTH__JWT_SECRET); set only one"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.src)
			var ve *ValueError
			if !errors.As(err, &ve) {
				t.Fatalf("Load() error = %v, want *ValueError", err)
			}
			if diff := cmp.Diff(tt.want, *ve); diff != "" {
				t.Errorf("ValueError mismatch (-want +got):\n%s", diff)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "config: ["+tt.want.Section+"] "+tt.want.Name+" = ") {
				t.Errorf("error %q does not name the key first", msg)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error %q leaks the secret", msg)
			}
		})
	}
}

func TestValueErrorMessage(t *testing.T) {
	_, err := Load(Sources{Env: []string{"AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME=abc"}})
	want := `config: [execution_api] jwt_expiration_time = "abc" (from env AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME): not a number of seconds`
	if err == nil || err.Error() != want {
		t.Errorf("Load() error = %v, want %s", err, want)
	}
}

func TestLoadSecretNeverInValueError(t *testing.T) {
	// jwt_secret accepts anything, but a broken interpolation in it is an
	// error; the value must still be redacted.
	_, path := writeFile(t, "airflow.cfg", "[api_auth]\njwt_secret = abc%def\n")
	_, err := Load(Sources{File: path})
	var ve *ValueError
	if !errors.As(err, &ve) {
		t.Fatalf("Load() error = %v, want *ValueError", err)
	}
	if ve.Value != "<redacted>" || strings.Contains(err.Error(), "abc") {
		t.Errorf("error %q shows the secret", err)
	}
}

func TestLoadOverriddenBadValueIgnored(t *testing.T) {
	// A broken value in a lower layer does not matter when a higher layer
	// overrides it: only effective values are validated.
	_, path := writeFile(t, "airflow.cfg", "[taskgate]\nlisten = nocolon\n")
	c, err := Load(Sources{File: path, Env: []string{"AIRFLOW__TASKGATE__LISTEN=:9"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":9" {
		t.Errorf("Listen = %q, want :9", c.Listen)
	}
}

func TestLoadUnknownKeys(t *testing.T) {
	_, fileTypo := writeFile(t, "airflow.cfg", "[taskgate]\nlisten = :1\nlistn = :2\n")
	tests := []struct {
		name string
		src  Sources
		want UnknownKeyError
	}{
		{"unknown flag", Sources{Flags: map[string]string{"taskgate.listn": ":1"}}, UnknownKeyError{"taskgate.listn", "flag", ""}},
		{"flag in an airflow section", Sources{Flags: map[string]string{"core.executor": "x"}}, UnknownKeyError{"core.executor", "flag", ""}},
		{"typo in [taskgate] of the file", Sources{File: fileTypo}, UnknownKeyError{"taskgate.listn", "file", fileTypo + ":3"}},
		{"typo in AIRFLOW__TASKGATE__ variable", Sources{Env: []string{"AIRFLOW__TASKGATE__LISTN=:1"}}, UnknownKeyError{"taskgate.listn", "env", "AIRFLOW__TASKGATE__LISTN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.src)
			var ue *UnknownKeyError
			if !errors.As(err, &ue) {
				t.Fatalf("Load() error = %v, want *UnknownKeyError", err)
			}
			if diff := cmp.Diff(tt.want, *ue); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadIgnoresUnknownAirflowEnvironment(t *testing.T) {
	c, err := Load(Sources{Env: []string{
		"AIRFLOW__CORE__EXECUTOR=CeleryExecutor",
		"AIRFLOW__DATABASE__SQL_ALCHEMY_ENGINE_ARGS_CMD=cat /secret",
		"AIRFLOW__NOSECTION=1",
		"=weird",
		"NOEQUALS",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(defaultConfig(), c); diff != "" {
		t.Errorf("Load() mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadIgnoredIndirections(t *testing.T) {
	_, path := writeFile(t, "airflow.cfg", "[api_auth]\njwt_secret_cmd = cat /run/secret\n\n[taskgate]\nlisten_secret = x\n")
	c, err := Load(Sources{File: path, Env: []string{
		"AIRFLOW__API_AUTH__JWT_SECRET_CMD=cat /run/secret",
		"AIRFLOW__EXECUTION_API__JWT_AUDIENCE_SECRET=path",
	}})
	if err != nil {
		t.Fatal(err)
	}
	const why = "taskgate never runs commands or queries secrets backends for configuration"
	want := []string{
		"AIRFLOW__API_AUTH__JWT_SECRET_CMD is ignored: " + why + "; set AIRFLOW__API_AUTH__JWT_SECRET instead",
		"[api_auth] jwt_secret_cmd in " + path + ":2 is ignored: " + why + "; set [api_auth] jwt_secret instead",
		"AIRFLOW__EXECUTION_API__JWT_AUDIENCE_SECRET is ignored: " + why + "; set AIRFLOW__EXECUTION_API__JWT_AUDIENCE instead",
		"[taskgate] listen_secret in " + path + ":5 is ignored: " + why + "; set [taskgate] listen instead",
	}
	if diff := cmp.Diff(want, c.Warnings); diff != "" {
		t.Errorf("Warnings mismatch (-want +got):\n%s", diff)
	}
	if c.JWTSecret != "" || c.Source["api_auth.jwt_secret"] != "default" {
		t.Errorf("jwt_secret = %q from %s, want unset default", c.JWTSecret, c.Source["api_auth.jwt_secret"])
	}
}

func TestRedacted(t *testing.T) {
	c, err := Load(Sources{Flags: map[string]string{
		"api_auth.jwt_secret":           "hunter2",
		"api_auth.trusted_jwks_url":     "https://user:pw@jwks.example/keys",
		"scheduler.task_queued_timeout": "90.25",
		"api_auth.jwt_issuer":           "a, b",
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Redacted()
	want := map[string]string{
		"api_auth.jwt_secret":                          "<redacted>",
		"api_auth.jwt_private_key_path":                "",
		"api_auth.jwt_algorithm":                       "GUESS",
		"api_auth.jwt_kid":                             "",
		"api_auth.jwt_issuer":                          "a,b",
		"api_auth.jwt_leeway":                          "10",
		"api_auth.trusted_jwks_url":                    "https://user:xxxxx@jwks.example/keys",
		"api_auth.jwt_audience":                        "urn:taskgate:api",
		"api_auth.jwt_expiration_time":                 "86400",
		"api_auth.jwt_cli_expiration_time":             "3600",
		"execution_api.jwt_expiration_time":            "600",
		"execution_api.jwt_audience":                   "urn:airflow.apache.org:task",
		"execution_api.workload_token_expiration_time": "90.25",
		"scheduler.task_queued_timeout":                "90.25",
		"core.fernet_key":                              "",
		"core.max_map_length":                          "1024",
		"core.multi_team":                              "False",
		"core.task_success_overtime":                   "20",
		"database.sql_alchemy_conn":                    "",
		"database.sql_alchemy_schema":                  "",
		"database.sql_alchemy_pool_size":               "5",
		"database.sql_alchemy_max_overflow":            "10",
		"database.sql_alchemy_pool_recycle":            "1800",
		"database.sql_alchemy_pool_pre_ping":           "True",
		"state_store.clear_on_success":                 "False",
		"taskgate.auth_failures_per_minute":            "60",
		"taskgate.bcrypt_cost":                         "10",
		"taskgate.max_in_flight":                       "4096",
		"taskgate.listen":                              "127.0.0.1:8080",
		"taskgate.pprof_listen":                        "",
		"taskgate.metrics_listen":                      "",
		"taskgate.data_dir":                            "./data",
		"taskgate.log_level":                           "info",
		"taskgate.max_body_bytes":                      "1MiB",
		"taskgate.batch_delay":                         "1ms",
		"taskgate.shutdown_timeout":                    "30s",
		"taskgate.read_header_timeout":                 "10s",
		"taskgate.read_timeout":                        "1m0s",
		"taskgate.write_timeout":                       "1m0s",
		"taskgate.idle_timeout":                        "2m0s",
		"taskgate.jwks_refresh_interval":               "1h0m0s",
		"taskgate.jwks_retry_interval":                 "10s",
		"taskgate.task_variable_writes":                "all",

		"dag_processor.health_check_threshold": "50",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Redacted() mismatch (-want +got):\n%s", diff)
	}

	// Every rendered value loads back to the same configuration, so the
	// listing can be pasted into a file (the secret aside).
	flags := map[string]string{}
	for k, v := range got {
		if k != "api_auth.jwt_secret" && k != "api_auth.trusted_jwks_url" {
			flags[k] = v
		}
	}
	again, err := Load(Sources{Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	again.Source, c.Source = nil, nil
	c.JWTSecret, c.TrustedJWKSURL = "", ""
	if diff := cmp.Diff(c, again); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

func TestRedactedEmptySecretShownEmpty(t *testing.T) {
	c, err := Load(Sources{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Redacted()["api_auth.jwt_secret"]; got != "" {
		t.Errorf("jwt_secret = %q, want empty", got)
	}
}

func TestKeys(t *testing.T) {
	keys := Keys()
	seen := map[string]bool{}
	for _, k := range keys {
		full := k.Section + "." + k.Name
		if seen[full] {
			t.Errorf("duplicate key %s", full)
		}
		seen[full] = true
		if k.Doc == "" || k.Name != strings.ToLower(k.Name) {
			t.Errorf("key %s: needs a doc and a lower-case name", full)
		}
	}
	if diff := cmp.Diff(keys, Keys()); diff != "" {
		t.Errorf("Keys() not stable (-first +second):\n%s", diff)
	}
	if len(keys) != len(defaultConfig().Source) {
		t.Errorf("Keys() has %d keys, Source has %d", len(keys), len(defaultConfig().Source))
	}
}

func TestMarkdownTable(t *testing.T) {
	md := MarkdownTable()
	lines := strings.Split(strings.TrimSuffix(md, "\n"), "\n")
	if diff := cmp.Diff([]string{"| Section | Key | Default | Meaning |", "|---|---|---|---|"}, lines[:2]); diff != "" {
		t.Errorf("header mismatch (-want +got):\n%s", diff)
	}
	if got, want := len(lines)-2, len(Keys()); got != want {
		t.Errorf("%d rows, want %d", got, want)
	}
	wantRow := "| `execution_api` | `jwt_expiration_time` | `600` | Execution-token lifetime in seconds; also sets when tokens are renewed. |"
	if !strings.Contains(md, wantRow+"\n") {
		t.Errorf("table lacks row %q:\n%s", wantRow, md)
	}
	if !strings.Contains(md, "| `api_auth` | `jwt_secret` | *(unset)* |") {
		t.Errorf("unset default not rendered:\n%s", md)
	}
}

func TestOverlappingAudiencesRefused(t *testing.T) {
	_, err := Load(Sources{Env: []string{"AIRFLOW__API_AUTH__JWT_AUDIENCE=x,urn:airflow.apache.org:task"}})
	var ve *ValueError
	if !errors.As(err, &ve) || ve.Name != "jwt_audience" || !strings.Contains(err.Error(), "must not be interchangeable") {
		t.Fatalf("err = %v", err)
	}
}

// TestLoadSecretsBackendsNotConsulted: a secrets backend Airflow would read
// before the environment and the database is named in a warning, since
// taskgate serves only those two; the backend's kwargs never appear.
func TestLoadSecretsBackendsNotConsulted(t *testing.T) {
	const why = "taskgate serves variables and connections only from AIRFLOW_VAR_*/AIRFLOW_CONN_* " +
		"environment variables and its database; what that backend holds is not served"
	_, path := writeFile(t, "airflow.cfg", "[secrets]\nbackend = airflow.providers.hashicorp.secrets.vault.VaultBackend\n"+
		"backend_kwargs = {\"token\": \"s3cr3t\"}\n\n[workers]\nsecrets_backend = my.Backend\n")
	c, err := Load(Sources{File: path})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"[secrets] backend = airflow.providers.hashicorp.secrets.vault.VaultBackend in " + path + ":2 is not consulted: " + why,
		"[workers] secrets_backend = my.Backend in " + path + ":6 is not consulted: " + why,
	}
	if diff := cmp.Diff(want, c.Warnings); diff != "" {
		t.Errorf("Warnings mismatch (-want +got):\n%s", diff)
	}

	// The environment overrides the file; an empty value means no backend.
	c, err = Load(Sources{File: path, Env: []string{"AIRFLOW__SECRETS__BACKEND=other.Backend", "AIRFLOW__WORKERS__SECRETS_BACKEND="}})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"AIRFLOW__SECRETS__BACKEND=other.Backend is not consulted: " + why}
	if diff := cmp.Diff(want, c.Warnings); diff != "" {
		t.Errorf("Warnings mismatch (-want +got):\n%s", diff)
	}
	if c, err = Load(Sources{}); err != nil || len(c.Warnings) != 0 {
		t.Errorf("no backend: warnings %q, %v", c.Warnings, err)
	}
}

// TestLoadMultiTeamOff: multi_team False, in any of Airflow's spellings,
// starts as before; True loads on Airflow's metadata database.
func TestLoadMultiTeamOff(t *testing.T) {
	for _, v := range []string{"False", "false", "0", "f", ""} {
		c, err := Load(Sources{Env: []string{"AIRFLOW__CORE__MULTI_TEAM=" + v}})
		if v == "" {
			// An empty value is no boolean, as in Airflow's getboolean.
			if err == nil {
				t.Errorf("multi_team = %q: loaded, want an error", v)
			}
			continue
		}
		if err != nil {
			t.Errorf("multi_team = %q: %v", v, err)
			continue
		}
		if c.MultiTeam {
			t.Errorf("multi_team = %q: MultiTeam true", v)
		}
	}
	_, path := writeFile(t, "airflow.cfg", "[core]\nmulti_team = t\n[database]\nsql_alchemy_conn = postgresql://airflow@127.0.0.1/airflow\n")
	c, err := Load(Sources{File: path})
	if err != nil || !c.MultiTeam {
		t.Errorf("multi_team on Airflow's metadata database: %+v, %v", c, err)
	}
}
