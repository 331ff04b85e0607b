// Package config loads taskgate's configuration under Apache Airflow's names,
// so an operator can point taskgate at the airflow.cfg and the AIRFLOW__…
// environment of an existing deployment and get the same token lifetimes,
// audiences, issuers and signing keys the rest of that deployment uses. A
// mismatch there does not fail loudly: tokens minted by the scheduler would
// simply be refused, or accepted for longer than intended.
//
// Precedence, lowest first: built-in defaults, the INI file, AIRFLOW__SECTION__KEY
// environment variables, command-line flags. Taskgate's own keys live in a
// [taskgate] section and follow the same rules (AIRFLOW__TASKGATE__LISTEN, …).
//
// The package never reads the process environment or the user's home
// directory by itself: the environment arrives in Sources.Env, so loading is
// hermetic in tests and predictable on a fresh machine.
package config

import (
	"fmt"
	"time"
)

// Config is the effective configuration after all sources were merged and
// every value was validated. Values are already parsed into the types the
// rest of taskgate needs, so no other package re-parses configuration text.
type Config struct {
	// [api_auth]

	// JWTSecret is the shared HMAC secret. It must be byte-identical on every
	// Airflow component, which is why it is taken verbatim (environment values
	// are not trimmed). Empty means the gateway creates or reuses
	// <data_dir>/jwt_secret.
	JWTSecret string
	// JWTPrivateKeyPath is a PEM private key for asymmetric signing; it is
	// exclusive with JWTSecret because two signing keys would make it ambiguous
	// which one verifies a token.
	JWTPrivateKeyPath string
	// JWTAlgorithm is exactly one of GUESS, HS512, RS256, RS512 or EdDSA. It is
	// pinned from configuration so the algorithm is never taken from a token
	// header; GUESS derives it from the configured key, as Airflow does.
	JWTAlgorithm string
	// JWTKID is the key id put into minted tokens; empty means the RFC 7638
	// thumbprint of the key, matching Airflow.
	JWTKID string
	// JWTIssuers are the accepted "iss" values; when set, a token without a
	// matching issuer is refused, and the first one is used when minting.
	JWTIssuers []string
	// JWTLeeway tolerates clock skew between the component that minted a token
	// and the gateway when checking exp, nbf and iat.
	JWTLeeway time.Duration
	// TrustedJWKSURL is a file path or http(s) URL of a JWKS whose keys verify
	// tokens minted elsewhere.
	TrustedJWKSURL string
	// APIAudiences are the audiences of REST (operator) tokens ([api_auth]
	// jwt_audience); the first is used when minting. They must not overlap
	// the execution audiences, so a REST token is never accepted by the
	// Execution API nor a task token by the REST API. Airflow leaves the key
	// unset; taskgate defaults it to its own value for that separation.
	APIAudiences []string
	// APITokenLifetime is the REST token lifetime ([api_auth]
	// jwt_expiration_time).
	APITokenLifetime time.Duration
	// APICLITokenLifetime is the REST token lifetime for the CLI ([api_auth]
	// jwt_cli_expiration_time).
	APICLITokenLifetime time.Duration

	// [execution_api]

	// ExecutionTokenLifetime is how long an execution token lives; it also
	// sets the renewal threshold, so it must match the scheduler's value.
	ExecutionTokenLifetime time.Duration
	// ExecutionAudiences are the accepted "aud" values of task tokens; the
	// first one is used when minting. Never empty: a task token without an
	// audience check could be replayed from another service.
	ExecutionAudiences []string
	// WorkloadTokenLifetime is how long a workload token lives. Unset, it is
	// TaskQueuedTimeout, because a workload token must survive exactly as long
	// as a task may sit in the queue.
	WorkloadTokenLifetime time.Duration

	// [scheduler]

	// TaskQueuedTimeout is how long a task may stay queued; it is the
	// workload-token lifetime unless WorkloadTokenLifetime is set.
	TaskQueuedTimeout time.Duration

	// [core]

	// FernetKeys are [core] fernet_key: the first encrypts connection
	// secrets at rest, every one decrypts, so a key can be rotated in by
	// putting it first. Empty: the gateway uses <data_dir>/fernet_key.
	FernetKeys []string

	// MaxMapLength bounds the mapped length an XCom push may declare, as
	// Airflow's [core] max_map_length does.
	MaxMapLength int

	// TaskSuccessOvertime is [core] task_success_overtime: how long Airflow
	// lets a task's callbacks and listeners run after the task reported its
	// end. A try's token may still read variables, connections and XComs
	// for that long, and not renew or write.
	TaskSuccessOvertime time.Duration

	// MultiTeam is [core] multi_team: Airflow then scopes variables and
	// connections to teams, and a task may read only its own team's and
	// the unteamed ones. It needs Airflow's metadata database: on the
	// embedded store, which has no teams, Load refuses it rather than
	// serve every team's values to every task.
	MultiTeam bool

	// DagProcessorHealthCheckThreshold is [dag_processor]
	// health_check_threshold: a DAG processor Job without a heartbeat for
	// this long is no longer alive, and its session may register another.
	DagProcessorHealthCheckThreshold time.Duration

	// [database]

	// DatabaseURL is [database] sql_alchemy_conn turned into the postgres://
	// URL pgx takes (PostgresURL): taskgate then keeps its state in that
	// Airflow metadata database. Empty (the default) keeps it in the
	// embedded bbolt file in DataDir.
	DatabaseURL string
	// DatabaseSchema is [database] sql_alchemy_schema: the schema of
	// Airflow's tables; empty means the connection's search_path.
	DatabaseSchema string
	// DatabasePoolSize and DatabaseMaxOverflow are SQLAlchemy's pool
	// bounds; taskgate's pool holds at most their sum. Zero pool size or a
	// negative overflow means no limit in SQLAlchemy; taskgate then keeps
	// its driver's default.
	DatabasePoolSize    int
	DatabaseMaxOverflow int
	// DatabasePoolRecycle is [database] sql_alchemy_pool_recycle: the
	// longest a connection is used before it is replaced; negative means
	// never.
	DatabasePoolRecycle time.Duration
	// DatabasePoolPrePing is [database] sql_alchemy_pool_pre_ping: check a
	// connection that sat idle before using it.
	DatabasePoolPrePing bool

	// [taskgate]

	// Listen is the host:port the gateway listens on; the default binds to
	// loopback so a fresh start never exposes the API by accident.
	Listen string
	// DataDir holds the database and the generated JWT secret.
	DataDir string
	// LogLevel is one of debug, info, warn, error.
	LogLevel string
	// MaxBodyBytes caps a request body so one client cannot exhaust memory.
	MaxBodyBytes int64
	// BatchDelay is the longest a write waits to share an fsync with other
	// writes; 0 commits every write on its own.
	BatchDelay time.Duration
	// ShutdownTimeout bounds graceful shutdown before connections are cut.
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout limits slow-header (slowloris) clients.
	ReadHeaderTimeout time.Duration
	// ReadTimeout limits how long reading a whole request may take.
	ReadTimeout time.Duration
	// WriteTimeout limits how long writing a response may take.
	WriteTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout time.Duration
	// JWKSRefresh is how often a remote TrustedJWKSURL is fetched again, so
	// rotated keys are picked up without a restart.
	JWKSRefresh time.Duration
	// JWKSRetry is the shortest gap between two fetches of a
	// TrustedJWKSURL; a token whose kid is unknown (a verifier following a
	// rotation) makes the next fetch as soon as it allows.
	JWKSRetry time.Duration
	// MaxInFlight bounds requests handled at once: beyond it the gateway
	// answers 503 with Retry-After at once instead of queueing without
	// bound. Health checks are not counted.
	MaxInFlight int
	// AuthFailuresPerMinute is how many authentication failures one client
	// address or token subject may make in a minute before it is answered
	// 429 with Retry-After; 0 disables the limit.
	AuthFailuresPerMinute int
	// BcryptCost is the work factor of user password hashes; the dummy
	// hash checked for unknown users uses the same, so both take as long.
	BcryptCost int
	// PprofListen, when set, is a loopback host:port serving the Go
	// runtime's profiles (net/http/pprof) for diagnosing the gateway in
	// place; empty (the default) serves none.
	PprofListen string
	// MetricsListen, when set, is the host:port serving GET /metrics on a
	// listener of its own; empty (the default) serves it on Listen.
	MetricsListen string
	// TaskVariableWrites is which variables a task's execution token may
	// write through PUT and DELETE /execution/variables/{key}: "all" (the
	// default, as in Airflow, where any task may change any variable) or
	// "none" (task tokens only read variables; operators still write them
	// through the admin API and the CLI).
	TaskVariableWrites string

	// [state_store]

	// StateStoreClearOnSuccess is [state_store] clear_on_success: whether a
	// task's state store (its map index's keys) is cleared when the task
	// reports success, as Airflow's ti_update_state does. Off, its keys stay
	// for the rest of the dag run.
	StateStoreClearOnSuccess bool

	// Source maps "section.key" to where the effective value came from:
	// "default", "file", "env" or "flag". It exists for a `config show` style
	// listing and so an operator can tell why a value is what it is.
	Source map[string]string
	// File is the configuration file that was read, "" when none was.
	// Logged at start-up because discovery (AIRFLOW_CONFIG, AIRFLOW_HOME) can
	// otherwise surprise.
	File string
	// Warnings lists settings that were present but deliberately ignored,
	// such as AIRFLOW__API_AUTH__JWT_SECRET_CMD: taskgate runs the commands
	// of Airflow's sensitive keys it reads (sql_alchemy_conn) only, and
	// queries no secrets backend. main should log them, since the operator
	// expected them to take effect.
	Warnings []string
}

// Sources are the inputs Load merges. They are passed in rather than read
// from the process so that tests, and a binary embedding taskgate, control
// exactly what configuration is seen.
type Sources struct {
	// File is an explicit configuration path (e.g. from --config); "" means
	// none was given and the file is discovered from the environment. An
	// explicit file must exist.
	File string
	// Env holds os.Environ()-style "KEY=VALUE" entries; a later entry for the
	// same key wins.
	Env []string
	// Run runs the command of an AIRFLOW__…_CMD variable or *_cmd file key
	// (argv split as Python's shlex.split does, env as in Env) and returns
	// its standard output. Nil runs it with os/exec.
	Run func(argv, env []string) ([]byte, error)
	// Flags maps "section.key" (e.g. "taskgate.listen") to a value, for flags
	// the user actually set; flags left at their zero value must be omitted so
	// they do not override the file and the environment.
	Flags map[string]string
}

// ValueError reports a configuration value that could not be used. It names
// the key and where the value came from, because with four layers of
// precedence "invalid duration" alone leaves the operator guessing which
// layer to fix.
type ValueError struct {
	Section string // e.g. "execution_api"
	Name    string // e.g. "jwt_expiration_time"
	// Value is the offending text; for secret keys it is "<redacted>" so the
	// error can be logged.
	Value string
	// Source is "default", "file", "env" or "flag".
	Source string
	// Origin details Source: "path:line", the environment variable's name or
	// the flag key; "" for defaults.
	Origin string
	// Reason says what is wrong with the value.
	Reason string
}

// Error renders e as
// `config: [section] key = "value" (from env NAME): reason`.
func (e *ValueError) Error() string {
	from := e.Source
	if e.Origin != "" {
		from += " " + e.Origin
	}
	return fmt.Sprintf("config: [%s] %s = %q (from %s): %s", e.Section, e.Name, e.Value, from, e.Reason)
}

// SyntaxError reports a line of the INI file that could not be parsed. It
// carries file and line so the operator can go straight to it.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

// Error renders e as `config: file:line: message`.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("config: %s:%d: %s", e.File, e.Line, e.Msg)
}

// UnknownKeyError reports a key that taskgate does not know where a typo is
// certain to be a mistake: a flag, or a key in taskgate's own [taskgate]
// section (file or AIRFLOW__TASKGATE__… variable). Unknown keys of Airflow's
// sections are ignored instead, because the file is a whole airflow.cfg.
type UnknownKeyError struct {
	Key    string // "section.key"
	Source string // "file", "env" or "flag"
	Origin string // "path:line" or the variable's name; "" for flags
}

// Error renders e as `config: unknown key section.key (from source origin)`.
func (e *UnknownKeyError) Error() string {
	from := e.Source
	if e.Origin != "" {
		from += " " + e.Origin
	}
	return fmt.Sprintf("config: unknown key %s (from %s)", e.Key, from)
}
