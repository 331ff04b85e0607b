package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Key describes one configuration key. Keys is the single table of every
// key: validation, unknown-key handling, Redacted and the README table are
// all derived from it, so they cannot drift apart.
type Key struct {
	Section string // INI section, e.g. "execution_api"
	Name    string // key within the section, lower-case
	Default string // built-in default as text; "" means unset
	Doc     string // one-line meaning, for the README
}

// keyDef is a Key plus how to store and render its value.
type keyDef struct {
	Key
	secret bool // value is never shown
	// command marks one of Airflow's sensitive keys whose *_cmd variants
	// taskgate honours as Airflow does (see resolveSensitive).
	command bool
	set     func(c *Config, v string) error // parse v into c; the error is the reason
	get     func(c *Config) string          // render the effective value
}

// Keys returns every configuration key in a stable order: by section in the
// order [api_auth], [execution_api], [scheduler], [core], [database],
// [taskgate], and
// within a section in the order of the Config fields.
func Keys() []Key {
	defs := keyDefs()
	out := make([]Key, len(defs))
	for i, d := range defs {
		out[i] = d.Key
	}
	return out
}

// algorithms are the accepted jwt_algorithm values in their canonical
// spelling.
func algorithms() []string { return []string{"GUESS", "HS512", "RS256", "RS512", "EdDSA"} }

// keyDefs builds the key table. It is a function rather than a package
// variable so there is no mutable global state.
func keyDefs() []keyDef {
	return []keyDef{
		// [api_auth]
		{
			Key: Key{"api_auth", "jwt_secret", "",
				"Shared HMAC secret, identical on every Airflow component; empty: taskgate creates or reuses <data_dir>/jwt_secret."},
			secret: true,
			set:    func(c *Config, v string) error { c.JWTSecret = v; return nil },
			get:    func(c *Config) string { return c.JWTSecret },
		},
		stringKey("api_auth", "jwt_private_key_path", "",
			"PEM private key for asymmetric signing; exclusive with jwt_secret.",
			func(c *Config) *string { return &c.JWTPrivateKeyPath }),
		{
			Key: Key{"api_auth", "jwt_algorithm", "GUESS",
				"Signing algorithm, exactly one of GUESS, HS512, RS256, RS512, EdDSA; GUESS derives it from the key."},
			set: func(c *Config, v string) error {
				alg, err := parseAlgorithm(v)
				c.JWTAlgorithm = alg
				return err
			},
			get: func(c *Config) string { return c.JWTAlgorithm },
		},
		stringKey("api_auth", "jwt_kid", "",
			"Key id of minted tokens; empty: the RFC 7638 thumbprint of the key.",
			func(c *Config) *string { return &c.JWTKID }),
		listKey("api_auth", "jwt_issuer", "",
			"Comma-separated accepted issuers; when set, iss is required and checked, and the first is used when minting.",
			false, func(c *Config) *[]string { return &c.JWTIssuers }),
		secondsKey("api_auth", "jwt_leeway", "10",
			"Clock-skew tolerance in seconds for exp, nbf and iat.",
			true, func(c *Config) *time.Duration { return &c.JWTLeeway }),
		{
			Key: Key{"api_auth", "trusted_jwks_url", "",
				"File path or http(s) URL of a JWKS with keys trusted to verify tokens."},
			set: func(c *Config, v string) error { c.TrustedJWKSURL = v; return nil },
			get: func(c *Config) string { return redactURL(c.TrustedJWKSURL) },
		},
		listKey("api_auth", "jwt_audience", "urn:taskgate:api",
			"Comma-separated audiences of REST (operator) tokens; the first is used when minting. Must not overlap [execution_api] jwt_audience.",
			true, func(c *Config) *[]string { return &c.APIAudiences }),
		secondsKey("api_auth", "jwt_expiration_time", "86400",
			"REST token lifetime in seconds (POST /auth/token); revocations are purged every 2 × this.",
			false, func(c *Config) *time.Duration { return &c.APITokenLifetime }),
		secondsKey("api_auth", "jwt_cli_expiration_time", "3600",
			"REST token lifetime in seconds for the CLI (POST /auth/token/cli).",
			false, func(c *Config) *time.Duration { return &c.APICLITokenLifetime }),

		// [execution_api]
		secondsKey("execution_api", "jwt_expiration_time", "600",
			"Execution-token lifetime in seconds; also sets when tokens are renewed.",
			false, func(c *Config) *time.Duration { return &c.ExecutionTokenLifetime }),
		listKey("execution_api", "jwt_audience", "urn:airflow.apache.org:task",
			"Comma-separated accepted audiences of task tokens; the first is used when minting. Must not be empty.",
			true, func(c *Config) *[]string { return &c.ExecutionAudiences }),
		{
			Key: Key{"execution_api", "workload_token_expiration_time", "",
				"Workload-token lifetime in seconds; unset: [scheduler] task_queued_timeout."},
			set: func(c *Config, v string) error {
				if strings.TrimSpace(v) == "" {
					c.WorkloadTokenLifetime = 0 // resolved after all keys are set
					return nil
				}
				d, err := parseSeconds(v, false)
				c.WorkloadTokenLifetime = d
				return err
			},
			get: func(c *Config) string { return formatSeconds(c.WorkloadTokenLifetime) },
		},

		// [scheduler]
		secondsKey("scheduler", "task_queued_timeout", "600",
			"Seconds a task may stay queued (fractions allowed); the workload-token lifetime unless set separately.",
			false, func(c *Config) *time.Duration { return &c.TaskQueuedTimeout }),

		// [core]
		{
			Key: Key{"core", "fernet_key", "",
				"Comma-separated Fernet keys encrypting connection passwords and extras at rest; the first encrypts, all decrypt (rotation). Empty: taskgate creates or reuses <data_dir>/fernet_key."},
			set: func(c *Config, v string) error {
				c.FernetKeys = splitList(v)
				return nil
			},
			get: func(c *Config) string {
				if len(c.FernetKeys) > 0 {
					return "<redacted>"
				}
				return ""
			},
		},
		secondsKey("core", "task_success_overtime", "20",
			"Seconds a task's callbacks may still read variables, connections and XComs after the task reported its end.",
			true, func(c *Config) *time.Duration { return &c.TaskSuccessOvertime }),
		{
			Key: Key{"core", "multi_team", "False",
				"Airflow's multi-team mode: True or False. True scopes variables and connections to the teams of Airflow's metadata database; the embedded store, which has no teams, refuses to start with it."},
			set: func(c *Config, v string) error {
				b, err := parseBool(v)
				c.MultiTeam = b
				return err
			},
			get: func(c *Config) string {
				if c.MultiTeam {
					return "True"
				}
				return "False"
			},
		},
		secondsKey("dag_processor", "health_check_threshold", "50",
			"Seconds without a heartbeat after which a DAG processor's Job is no longer alive and its session may register another.",
			false, func(c *Config) *time.Duration { return &c.DagProcessorHealthCheckThreshold }),
		{
			Key: Key{"core", "max_map_length", "1024",
				"Largest mapped length an XCom push may declare."},
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil {
					return errors.New("not an integer")
				}
				if n <= 0 {
					return errors.New("must be greater than 0")
				}
				c.MaxMapLength = n
				return nil
			},
			get: func(c *Config) string { return strconv.Itoa(c.MaxMapLength) },
		},

		// [database]
		{
			Key: Key{"database", "sql_alchemy_conn", "",
				"Airflow's metadata database as a SQLAlchemy URL (postgresql://, postgresql+psycopg2://, postgresql+psycopg://; libpq options in the query string); also read from AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD and sql_alchemy_conn_cmd. Empty: the embedded store in data_dir."},
			secret:  true,
			command: true,
			set: func(c *Config, v string) error {
				if strings.TrimSpace(v) == "" {
					c.DatabaseURL = ""
					return nil
				}
				u, err := PostgresURL(v)
				c.DatabaseURL = u
				return err
			},
			get: func(c *Config) string { return redactURL(c.DatabaseURL) },
		},
		stringKey("database", "sql_alchemy_schema", "",
			"Schema of Airflow's tables; empty: the connection's search_path. taskgate's own tables are in the schema taskgate.",
			func(c *Config) *string { return &c.DatabaseSchema }),
		intKey("database", "sql_alchemy_pool_size", "5",
			"With sql_alchemy_max_overflow, the most connections taskgate opens (their sum); 0 (no limit in SQLAlchemy) keeps the driver's default, max(4, CPUs).",
			func(c *Config) *int { return &c.DatabasePoolSize }),
		{
			Key: Key{"database", "sql_alchemy_max_overflow", "10",
				"Connections beyond sql_alchemy_pool_size; -1 (no limit in SQLAlchemy) keeps the driver's default."},
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil {
					return errors.New("not an integer")
				}
				c.DatabaseMaxOverflow = n
				return nil
			},
			get: func(c *Config) string { return strconv.Itoa(c.DatabaseMaxOverflow) },
		},
		{
			Key: Key{"database", "sql_alchemy_pool_recycle", "1800",
				"Seconds a database connection is used before it is replaced; -1: never."},
			set: func(c *Config, v string) error {
				if strings.TrimSpace(v) == "-1" {
					c.DatabasePoolRecycle = -1
					return nil
				}
				d, err := parseSeconds(v, false)
				c.DatabasePoolRecycle = d
				return err
			},
			get: func(c *Config) string {
				if c.DatabasePoolRecycle < 0 {
					return "-1"
				}
				return formatSeconds(c.DatabasePoolRecycle)
			},
		},
		{
			Key: Key{"database", "sql_alchemy_pool_pre_ping", "True",
				"Check a database connection that sat idle (over 1 s) before using it: True or False."},
			set: func(c *Config, v string) error {
				b, err := parseBool(v)
				c.DatabasePoolPrePing = b
				return err
			},
			get: func(c *Config) string {
				if c.DatabasePoolPrePing {
					return "True"
				}
				return "False"
			},
		},

		// [state_store]
		{
			Key: Key{"state_store", "clear_on_success", "False",
				"Clear a task's state store (/execution/store/ti, its map index's keys) when the task reports success: True or False."},
			set: func(c *Config, v string) error {
				b, err := parseBool(v)
				c.StateStoreClearOnSuccess = b
				return err
			},
			get: func(c *Config) string {
				if c.StateStoreClearOnSuccess {
					return "True"
				}
				return "False"
			},
		},

		// [taskgate]
		{
			Key: Key{"taskgate", "listen", "127.0.0.1:8080",
				"host:port to listen on; the default binds to loopback only."},
			set: func(c *Config, v string) error {
				v = strings.TrimSpace(v)
				if _, _, err := net.SplitHostPort(v); err != nil {
					return fmt.Errorf("not host:port: %v", err)
				}
				c.Listen = v
				return nil
			},
			get: func(c *Config) string { return c.Listen },
		},
		{
			Key: Key{"taskgate", "pprof_listen", "",
				"Loopback host:port serving Go's runtime profiles (/debug/pprof/); empty serves none."},
			set: func(c *Config, v string) error {
				v = strings.TrimSpace(v)
				if v == "" {
					c.PprofListen = ""
					return nil
				}
				host, _, err := net.SplitHostPort(v)
				if err != nil {
					return fmt.Errorf("not host:port: %v", err)
				}
				if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
					return errors.New("must be a loopback address: profiles reveal the process's internals")
				}
				c.PprofListen = v
				return nil
			},
			get: func(c *Config) string { return c.PprofListen },
		},
		{
			Key: Key{"taskgate", "metrics_listen", "",
				"host:port serving Prometheus metrics (GET /metrics) on a listener of its own; empty serves them on the API listener."},
			set: func(c *Config, v string) error {
				v = strings.TrimSpace(v)
				if v != "" {
					if _, _, err := net.SplitHostPort(v); err != nil {
						return fmt.Errorf("not host:port: %v", err)
					}
				}
				c.MetricsListen = v
				return nil
			},
			get: func(c *Config) string { return c.MetricsListen },
		},
		{
			Key: Key{"taskgate", "data_dir", "./data",
				"Directory for the database and the generated JWT secret."},
			set: func(c *Config, v string) error {
				if strings.TrimSpace(v) == "" {
					return errors.New("must not be empty")
				}
				c.DataDir = v
				return nil
			},
			get: func(c *Config) string { return c.DataDir },
		},
		{
			Key: Key{"taskgate", "log_level", "info",
				"Log level: debug, info, warn or error."},
			set: func(c *Config, v string) error {
				switch l := strings.ToLower(strings.TrimSpace(v)); l {
				case "debug", "info", "warn", "error":
					c.LogLevel = l
				case "warning":
					c.LogLevel = "warn"
				default:
					return errors.New("not one of debug, info, warn, error")
				}
				return nil
			},
			get: func(c *Config) string { return c.LogLevel },
		},
		{
			Key: Key{"taskgate", "max_body_bytes", "1MiB",
				"Largest accepted request body: bytes, or a number with KiB, MiB or GiB."},
			set: func(c *Config, v string) error {
				n, err := parseSize(v)
				c.MaxBodyBytes = n
				return err
			},
			get: func(c *Config) string { return formatSize(c.MaxBodyBytes) },
		},
		durationKey("taskgate", "batch_delay", "1ms",
			"Longest a write waits to share an fsync with other writes (Go duration); 0 disables batching.",
			true, func(c *Config) *time.Duration { return &c.BatchDelay }),
		durationKey("taskgate", "shutdown_timeout", "30s",
			"Grace period for in-flight requests on shutdown (Go duration).",
			false, func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
		durationKey("taskgate", "read_header_timeout", "10s",
			"Time allowed to read request headers (Go duration).",
			false, func(c *Config) *time.Duration { return &c.ReadHeaderTimeout }),
		durationKey("taskgate", "read_timeout", "60s",
			"Time allowed to read a whole request (Go duration).",
			false, func(c *Config) *time.Duration { return &c.ReadTimeout }),
		durationKey("taskgate", "write_timeout", "60s",
			"Time allowed to write a response (Go duration).",
			false, func(c *Config) *time.Duration { return &c.WriteTimeout }),
		durationKey("taskgate", "idle_timeout", "120s",
			"Time an idle keep-alive connection is kept (Go duration).",
			false, func(c *Config) *time.Duration { return &c.IdleTimeout }),
		durationKey("taskgate", "jwks_refresh_interval", "1h",
			"How often a remote trusted_jwks_url is fetched again (Go duration).",
			false, func(c *Config) *time.Duration { return &c.JWKSRefresh }),
		durationKey("taskgate", "jwks_retry_interval", "10s",
			"Shortest gap between two fetches of trusted_jwks_url, including the fetch a token with an unknown kid causes (Go duration).",
			false, func(c *Config) *time.Duration { return &c.JWKSRetry }),
		intKey("taskgate", "max_in_flight", "4096",
			"Requests handled at once; beyond it the gateway answers 503 with Retry-After at once (health checks excepted).",
			func(c *Config) *int { return &c.MaxInFlight }),
		{
			Key: Key{"taskgate", "bcrypt_cost", "10",
				"bcrypt work factor for user passwords (4 to 31); each step doubles the time a login check takes."},
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil {
					return errors.New("not an integer")
				}
				if n < 4 || n > 31 {
					return errors.New("must be between 4 and 31")
				}
				c.BcryptCost = n
				return nil
			},
			get: func(c *Config) string { return strconv.Itoa(c.BcryptCost) },
		},
		intKey("taskgate", "auth_failures_per_minute", "60",
			"Authentication failures one client address (or token subject) may make in a minute before it gets 429 with Retry-After; 0 disables.",
			func(c *Config) *int { return &c.AuthFailuresPerMinute }),
		{
			Key: Key{"taskgate", "task_variable_writes", "all",
				"Variables a task token may write (PUT/DELETE /execution/variables/…): all (any variable, as in Airflow) or none (reads only; writes answer 403 access_denied)."},
			set: func(c *Config, v string) error {
				switch l := strings.ToLower(strings.TrimSpace(v)); l {
				case "all", "none":
					c.TaskVariableWrites = l
					return nil
				}
				return errors.New("not one of all, none")
			},
			get: func(c *Config) string { return c.TaskVariableWrites },
		},
	}
}

// intKey is a non-negative integer key.
func intKey(section, name, def, doc string, field func(*Config) *int) keyDef {
	return keyDef{
		Key: Key{section, name, def, doc},
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return errors.New("not an integer")
			}
			if n < 0 {
				return errors.New("must not be negative")
			}
			*field(c) = n
			return nil
		},
		get: func(c *Config) string { return strconv.Itoa(*field(c)) },
	}
}

func stringKey(section, name, def, doc string, field func(*Config) *string) keyDef {
	return keyDef{
		Key: Key{section, name, def, doc},
		set: func(c *Config, v string) error { *field(c) = v; return nil },
		get: func(c *Config) string { return *field(c) },
	}
}

// listKey is a comma-separated list; empty items are dropped. A required list
// must keep at least one item.
func listKey(section, name, def, doc string, required bool, field func(*Config) *[]string) keyDef {
	return keyDef{
		Key: Key{section, name, def, doc},
		set: func(c *Config, v string) error {
			l := splitList(v)
			if required && len(l) == 0 {
				return errors.New("must name at least one value")
			}
			*field(c) = l
			return nil
		},
		get: func(c *Config) string { return strings.Join(*field(c), ",") },
	}
}

// secondsKey is a number of seconds as Airflow writes them ("600", "600.0",
// "0.5"). zeroOK admits 0; negative values are always refused.
func secondsKey(section, name, def, doc string, zeroOK bool, field func(*Config) *time.Duration) keyDef {
	return keyDef{
		Key: Key{section, name, def, doc},
		set: func(c *Config, v string) error {
			d, err := parseSeconds(v, zeroOK)
			*field(c) = d
			return err
		},
		get: func(c *Config) string { return formatSeconds(*field(c)) },
	}
}

// durationKey is a Go duration ("1ms", "30s"), used for taskgate's own keys
// where there is no Airflow convention to follow.
func durationKey(section, name, def, doc string, zeroOK bool, field func(*Config) *time.Duration) keyDef {
	return keyDef{
		Key: Key{section, name, def, doc},
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil {
				return errors.New("not a duration (use Go syntax such as 1ms, 30s, 1h)")
			}
			if err := checkSign(d, zeroOK); err != nil {
				return err
			}
			*field(c) = d
			return nil
		},
		get: func(c *Config) string { return field(c).String() },
	}
}

func checkSign(d time.Duration, zeroOK bool) error {
	switch {
	case d < 0:
		return errors.New("must not be negative")
	case d == 0 && !zeroOK:
		return errors.New("must be greater than 0")
	}
	return nil
}

// parseSeconds reads an integer or decimal number of seconds, as Python's
// float() would for the values Airflow writes.
func parseSeconds(v string, zeroOK bool) (time.Duration, error) {
	s := strings.TrimSpace(v)
	notNumber := errors.New("not a number of seconds")
	// ParseFloat also takes hex floats and digit separators, which Python's
	// float() refuses; keep to plain decimal notation.
	if s == "" || strings.ContainsAny(s, "xX_pP") {
		return 0, notNumber
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, notNumber
	}
	ns := f * float64(time.Second)
	if ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return 0, errors.New("too large")
	}
	d := time.Duration(math.Round(ns))
	if err := checkSign(d, zeroOK); err != nil {
		return 0, err
	}
	return d, nil
}

func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

func sizeUnits() []struct {
	suffix string
	mult   int64
} {
	return []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
}

// parseSize reads a positive byte count, optionally with a binary suffix
// (case-insensitive, optional space: "1MiB", "512 kib").
func parseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range sizeUnits() {
		if len(s) >= len(u.suffix) && strings.EqualFold(s[len(s)-len(u.suffix):], u.suffix) {
			s = strings.TrimSpace(s[:len(s)-len(u.suffix)])
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New("not a size (use bytes, or a number with KiB, MiB or GiB)")
	}
	if n <= 0 {
		return 0, errors.New("must be greater than 0")
	}
	if n > math.MaxInt64/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}

func formatSize(n int64) string {
	for _, u := range sizeUnits() {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// parseAlgorithm accepts Airflow's list syntax but exactly one algorithm:
// verifying with whichever of several algorithms a token names would let the
// token choose, which is what pinning exists to prevent.
func parseAlgorithm(v string) (string, error) {
	l := splitList(v)
	switch len(l) {
	case 0:
		return "GUESS", nil
	case 1:
	default:
		return "", fmt.Errorf("exactly one algorithm is allowed, got %d", len(l))
	}
	for _, a := range algorithms() {
		if strings.EqualFold(l[0], a) {
			return a, nil
		}
	}
	return "", fmt.Errorf("not one of %s", strings.Join(algorithms(), ", "))
}

// splitList splits a comma-separated value, trims the items and drops empty
// ones; no items gives nil.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// redactURL hides a password in a URL's user info; anything that does not
// parse as such a URL (a file path) is returned unchanged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// parseBool reads a boolean as Airflow's getboolean does: true/false, t/f,
// 1/0, in any case.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "t", "1":
		return true, nil
	case "false", "f", "0":
		return false, nil
	}
	return false, errors.New("not a boolean (True or False)")
}
