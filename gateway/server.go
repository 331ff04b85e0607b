package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/metrics"
	"github.com/taskgate/taskgate/operator"
	"github.com/taskgate/taskgate/reissue"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// apiVersionValue is the Airflow-API-Version header's value (APIVersion,
// versions.go) of a response to a request that names no version, shared by
// every such response; it is never modified.
var apiVersionValue = []string{APIVersion}

const (
	// The header names are in Go's canonical form, so that the header
	// maps can be indexed without canonicalizing them on every request.
	correlationHeader = "Correlation-Id"
	versionHeader     = "Airflow-Api-Version"
)

// Validator verifies a raw bearer token and returns its claims.
type Validator interface {
	Validate(ctx context.Context, raw string) (*scopes.Claims, error)
}

// Signer mints tokens; the gateway mints execution tokens on /run.
type Signer interface {
	Sign(base *scopes.Claims, lifetime time.Duration) (string, *scopes.Claims, error)
	// NewClaims prepares the claims Sign would sign (a fresh jti, iat,
	// exp), and SignVerbatim signs given claims exactly, the same token
	// every time: /run records the execution token it hands out and answers
	// a retry with it again.
	NewClaims(base *scopes.Claims, lifetime time.Duration) (*scopes.Claims, error)
	SignVerbatim(c *scopes.Claims) (string, error)
}

// Store is everything the gateway reads and writes.
type Store interface {
	workload.Store
	workload.Variables
	workload.Connections
	workload.XComs
	workload.Catalog
	workload.Assets
	workload.DagRuns
	workload.HITL
	workload.TaskStateStore
	workload.AssetStateStore
	workload.ConnectionTests
	workload.Callbacks
	workload.TaskInstanceQueries
	workload.Jobs
	workload.DagParsing
	workload.StubTasks
}

// HealthCheck is one named dependency reported by /health/ping.
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Config holds the gateway's dependencies and limits.
type Config struct {
	Validator Validator
	Signer    Signer
	Store     Store
	// ExecutionTokenLifetime is [execution_api] jwt_expiration_time: the
	// life of tokens minted on /run and by renewal.
	ExecutionTokenLifetime time.Duration
	// MaxBodyBytes bounds every request body (413 beyond it).
	MaxBodyBytes int64
	// MaxMapLength is [core] max_map_length: the longest mapped XCom
	// accepted for task mapping.
	MaxMapLength int
	HealthChecks []HealthCheck

	// WorkloadTokenLifetime is the life of workload tokens minted by the
	// admin API (POST /api/v2/workloads).
	WorkloadTokenLifetime time.Duration

	// The operator side: users, REST tokens (their own signer and
	// validator, configured with the REST audience), revocations,
	// components.
	Auth          auth.Store
	Authenticator Authenticator
	// Keys is the signing key set the admin API manages and the JWKS
	// route publishes.
	Keys          Keys
	RESTSigner    Signer
	RESTValidator Validator
	// APITokenLifetime and CLITokenLifetime are [api_auth]
	// jwt_expiration_time and jwt_cli_expiration_time.
	APITokenLifetime time.Duration
	CLITokenLifetime time.Duration
	// BcryptCost hashes passwords of users added through the API; 0 is
	// bcrypt's default.
	BcryptCost int
	// NewID returns a fresh UUID for task instances and components.
	NewID func() string

	// MaxInFlight bounds authenticated requests handled at once (0:
	// unbounded); beyond it the answer is an immediate 503 with
	// Retry-After. Public routes (health, login) and requests whose token
	// fails take no slot.
	MaxInFlight int
	// TaskOvertime is [core] task_success_overtime: how long after a try
	// reported its own end its token may still read (the task's callbacks
	// run then). 0 means none.
	TaskOvertime time.Duration
	// DagProcessorHealthCheckThreshold is [dag_processor]
	// health_check_threshold: a DAG processor Job with no heartbeat for
	// this long is no longer alive, and its session may register anew. 0
	// means workload.DefaultDagProcessorHealthCheckThreshold.
	DagProcessorHealthCheckThreshold time.Duration
	// Revocations is the in-memory set of revoked jtis that every request
	// is checked against, task tokens included; the gateway revokes through
	// it. Nil: New loads it from Auth (main passes its own, to share it
	// with the purger).
	Revocations *auth.Revocations
	// AuthLimiter, when set, answers 429 with Retry-After to a client
	// address or token subject that keeps failing authentication.
	AuthLimiter *auth.FailureLimiter
	// ReadCacheSize bounds how many variable bodies, and as many connection
	// bodies, the gateway keeps so that repeated GETs skip the store (see
	// bodyCache); 0 means DefaultReadCacheSize, negative disables the cache.
	ReadCacheSize int
	// ReadCacheMaxAge bounds how long a cached body may be served when
	// other processes write the store too (Airflow itself, other replicas
	// on one database): their writes never reach this server's
	// invalidation, so a body older than this is read again. Zero means
	// bodies live until this server writes their key, right for a store
	// only this server writes.
	ReadCacheMaxAge time.Duration
	// TaskVariableWrites is [taskgate] task_variable_writes: whether task
	// tokens may set and delete variables (empty means VariableWritesAll).
	TaskVariableWrites VariableWrites
	// EnvSecrets serves AIRFLOW_VAR_{KEY} and AIRFLOW_CONN_{CONN_ID} before
	// the store, as Airflow's default secrets backend does; nil serves the
	// store alone.
	EnvSecrets *workload.EnvSecrets
	// MultiTeam is [core] multi_team: variables and connections are
	// scoped to the teams Teams resolves, as Airflow's has_variable_access
	// and has_connection_access scope them. It requires Teams.
	MultiTeam bool
	// Teams resolves the team of a task, a DAG bundle, a variable and a
	// connection, and writes variables for a team; used under MultiTeam.
	Teams Teams
	// StateStoreClearOnSuccess is [state_store] clear_on_success: a task's
	// state store is cleared when the task reports success.
	StateStoreClearOnSuccess bool
	// Metrics, when set, counts every request by route template, method
	// and status class, and the gateway's own events (token outcomes,
	// renewals, heartbeats, read-cache hits, overload). Nil: none.
	Metrics *metrics.Metrics
	// MetricsElsewhere: [taskgate] metrics_listen serves Metrics on its own
	// listener, so GET /metrics on this one answers 404.
	MetricsElsewhere bool
	// AccessLog, when set, writes the access log's lines instead of
	// Logger: the same bytes, without zap's generic encoder (see
	// AccessLog). Nil: Logger writes them.
	AccessLog AccessLog

	Now    func() time.Time
	Logger *zap.Logger
}

// Server serves the Execution API and the operator REST API (see the
// package documentation).
type Server struct {
	cfg      Config
	echo     *echo.Echo
	log      *zap.Logger
	now      func() time.Time
	inFlight atomic.Int64
	revoked  *auth.Revocations
	// ops holds the operator use cases the admin API calls.
	ops operator.Service

	// variables and connections cache the bodies of GET /variables/{key}
	// and GET /connections/{id}; cfg.Store invalidates them on writes.
	variables   *bodyCache
	connections *bodyCache
	// states holds *requestState for accessLog.
	states sync.Pool
	// unavailableLogged is when (Unix ns) an unreachable store was last
	// logged (logUnavailable).
	unavailableLogged atomic.Int64
	// plans serve the Execution API versions older than APIVersion, by
	// their index in apiVersions (versions_serve.go).
	plans []*versionPlan
	// openAPI holds each version's OpenAPI document (openapi.go).
	openAPI openAPIJSON

	// forwarded counts what POST /execution/metrics received.
	forwarded metricCounters

	// logCore is log's core, which the access log writes to directly.
	logCore zapcore.Core
	// met is cfg.Metrics (nil: no metrics).
	met *metrics.Metrics
	// renew renews due execution tokens on the response (requireToken
	// arms it).
	renew *reissue.Renewer
	// running remembers the tries found running, for a store that keeps
	// epochs (exec_running.go); nil otherwise.
	running *runningTries
}

// New builds the server and registers every route of routes.go. A Config
// that lacks a required field, and a route or middleware whose dependency is
// missing, is an error here, at start-up, never at the first request.
func New(cfg Config) (*Server, error) {
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxMapLength <= 0 {
		cfg.MaxMapLength = 1024
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Revocations == nil {
		r, err := auth.LoadRevocations(context.Background(), cfg.Auth, cfg.Now)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		cfg.Revocations = r
	}
	cached, err := newCachedStore(cfg.Store, cfg.ReadCacheSize, cfg.ReadCacheMaxAge, cfg.Now)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, revoked: cfg.Revocations,
		variables: cached.variables, connections: cached.connections, met: cfg.Metrics,
		logCore: cfg.Logger.Core(), running: newRunningTries(cfg.Store)}
	s.met.SetInFlight(s.inFlight.Load)
	s.variables.count(s.met.ReadCache("variable"))
	s.connections.count(s.met.ReadCache("connection"))
	s.cfg.Store = cached
	s.states.New = func() any { return new(requestState) }
	ops, err := s.operations()
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.ops = ops
	if s.openAPI, err = buildOpenAPIJSON(); err != nil {
		return nil, fmt.Errorf("gateway: openapi: %w", err)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	// The client address is the connection's: X-Forwarded-For is not
	// trusted, or anyone could dodge login throttling by setting it.
	e.IPExtractor = echo.ExtractIPDirect()
	s.renew, err = reissue.New(reissue.Config{
		Signer: cfg.Signer, Lifetime: cfg.ExecutionTokenLifetime, Claims: claimsOf, Renewable: s.renewable,
		Now: cfg.Now, Logger: cfg.Logger, OnRenew: s.renewedOnResponse,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	// Echo wraps the route's handler in every global middleware anew on
	// each request, a closure per middleware. The chain is composed once
	// here instead, ending in the route's handler as Echo's router found
	// it; Echo's one middleware hands out that chain.
	// Renewal (reissue) is armed by the token check once it knows the
	// claims: a request whose token is not due pays no response hook.
	chain := s.accessLog(s.refuseAmbiguous(s.pickVersion(s.recoverPanics(s.limitBody(callRoute)))))
	e.Use(func(echo.HandlerFunc) echo.HandlerFunc { return chain })
	var execRoutes []route
	var versioned []*versionedRoute
	for _, r := range s.routes() {
		var guard echo.MiddlewareFunc
		switch {
		case r.policy != nil:
			guard, err = s.requireToken(*r.policy)
		case r.role != "":
			guard, err = s.requireRole(r.role)
		}
		if err != nil {
			return nil, fmt.Errorf("%w (route %s %s)", err, r.method, r.path)
		}
		h := r.handler
		tmpl, execution := airflowTemplate(r.path)
		if execution {
			// Inside the token check: an older version's body rules
			// run only for a caller that may call the route.
			vr := &versionedRoute{method: r.method, template: tmpl}
			versioned = append(versioned, vr)
			h = convertVersion(h, vr)
		}
		if guard != nil {
			h = guard(h)
		}
		if s.met != nil {
			h = meter(s.met.Route(r.method, r.path), h)
		}
		if execution {
			execRoutes = append(execRoutes, route{method: r.method, path: r.path, handler: h})
			if present, _ := endpointAt(r.method, tmpl, len(apiVersions)-1); !present {
				continue // served by older versions only (versions.go)
			}
		}
		e.Add(r.method, r.path, h)
	}
	s.plans = buildPlans(e, execRoutes, versioned)
	// Unknown paths and methods answer in FastAPI's words.
	e.RouteNotFound("/*", func(echo.Context) error { return echo.ErrNotFound })
	s.echo = e
	return s, nil
}

// ConfigError is New's refusal of a Config, or a middleware constructor's of
// its dependencies: the field at fault and what is wrong with it.
type ConfigError struct {
	// Field is the Config field, as "Validator" or "HealthChecks[2].Check".
	Field string
	// Problem completes the sentence, as "is required".
	Problem string
}

func (e *ConfigError) Error() string { return "gateway: Config." + e.Field + " " + e.Problem }

// checkConfig refuses a Config that lacks a required field, and settles
// TaskVariableWrites' default.
func checkConfig(cfg *Config) error {
	required := []struct {
		field   string
		missing bool
	}{
		{"Validator", cfg.Validator == nil},
		{"Signer", cfg.Signer == nil},
		{"Store", cfg.Store == nil},
		{"Auth", cfg.Auth == nil},
		{"Authenticator", cfg.Authenticator == nil},
		{"RESTSigner", cfg.RESTSigner == nil},
		{"RESTValidator", cfg.RESTValidator == nil},
		{"NewID", cfg.NewID == nil},
		{"Keys", cfg.Keys == nil},
	}
	for _, r := range required {
		if r.missing {
			return &ConfigError{Field: r.field, Problem: "is required"}
		}
	}
	lifetimes := []struct {
		field string
		d     time.Duration
	}{
		{"ExecutionTokenLifetime", cfg.ExecutionTokenLifetime},
		{"WorkloadTokenLifetime", cfg.WorkloadTokenLifetime},
		{"APITokenLifetime", cfg.APITokenLifetime},
		{"CLITokenLifetime", cfg.CLITokenLifetime},
	}
	for _, l := range lifetimes {
		if l.d <= 0 {
			return &ConfigError{Field: l.field, Problem: "must be positive, not " + l.d.String()}
		}
	}
	for i, h := range cfg.HealthChecks {
		if h.Name == "" || h.Check == nil {
			return &ConfigError{Field: "HealthChecks[" + strconv.Itoa(i) + "]", Problem: "needs a Name and a Check"}
		}
	}
	if cfg.MultiTeam && cfg.Teams == nil {
		return &ConfigError{Field: "Teams", Problem: "is required by MultiTeam"}
	}
	switch cfg.TaskVariableWrites {
	case "":
		cfg.TaskVariableWrites = VariableWritesAll
	case VariableWritesAll, VariableWritesNone:
	default:
		return &ConfigError{Field: "TaskVariableWrites",
			Problem: "must be all or none, not " + strconv.Quote(string(cfg.TaskVariableWrites))}
	}
	return nil
}

// callRoute calls the handler Echo's router chose for the request: the
// route's (with its token check), or Echo's not-found or method-not-allowed
// handler.
func callRoute(c echo.Context) error { return c.Handler()(c) }

// ServeHTTP makes the server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// errOverloaded answers requests beyond MaxInFlight.
var errOverloaded = &APIError{Status: http.StatusServiceUnavailable, Detail: "Server is overloaded; retry later"}

// enter takes one of MaxInFlight slots for an authenticated request, or
// answers 503 with Retry-After when all are taken; a nil error must be paired
// with leave. Slots are taken only once the request's token is valid (see
// requireToken and requireRole): requests that have not authenticated, slow
// ones included, can never fill the slots authenticated workers need.
// Clients retry 5xx with backoff (Airflow's SDK does), so a refusal costs
// them one round trip.
func (s *Server) enter(c echo.Context) error {
	if n := s.inFlight.Add(1); s.cfg.MaxInFlight > 0 && n > int64(s.cfg.MaxInFlight) {
		s.inFlight.Add(-1)
		s.met.Overloaded()
		c.Response().Header().Set("Retry-After", "1")
		return errOverloaded
	}
	return nil
}

// leave gives back the slot enter took.
func (s *Server) leave() { s.inFlight.Add(-1) }

// retryLater answers a client that failed authentication too often.
func retryLater(c echo.Context, d time.Duration) error {
	c.Response().Header().Set("Retry-After", strconv.Itoa(max(int((d+time.Second-1)/time.Second), 1)))
	return &APIError{Status: http.StatusTooManyRequests, Detail: "Too many authentication failures; retry later"}
}

// Keys of the auth-failure limit: a client address, a token subject.
const (
	addrKey = "addr:"
	subKey  = "sub:"
)

// limited reports how long the key kind+value (addrKey or subKey and the
// address or subject) must wait under the auth-failure limit. The key is
// built only when some key failed recently: it is on every authenticated
// request's path.
func (s *Server) limited(kind, value string) time.Duration {
	l := s.cfg.AuthLimiter
	if l == nil || l.Idle() {
		return 0
	}
	return l.Wait(kind + value)
}

// authFailed records an authentication failure of the key kind+value.
func (s *Server) authFailed(kind, value string) {
	if s.cfg.AuthLimiter != nil {
		s.cfg.AuthLimiter.Fail(kind + value)
	}
}

// singleHeaders are the request headers that must appear at most once, with
// the names their refusal gives. Each decides something — the credential,
// how the body reads, the API version, the correlation id in the logs — and
// with two copies a proxy or log in front of the gateway may act on the
// other copy than the gateway does (Header.Get reads the first). Host,
// Content-Length and Transfer-Encoding are net/http's: it refuses differing
// copies itself (and merges identical Content-Lengths, which say the same).
// Cookie may repeat: HTTP/2 clients split it into several fields (RFC 9113
// §8.2.3), together one list of cookies; the one cookie the gateway reads,
// _token, must appear once in that list (duplicateCookie).
var singleHeaders = [...]struct {
	key string // canonical, to index the header map
	err error
}{
	{echo.HeaderAuthorization, duplicateHeader("Authorization")},
	{echo.HeaderContentType, duplicateHeader("Content-Type")},
	{versionHeader, duplicateHeader("Airflow-API-Version")},
	{correlationHeader, duplicateHeader("Correlation-Id")},
}

func duplicateHeader(name string) error {
	return &APIError{Status: http.StatusBadRequest, Detail: "Duplicate header: " + name}
}

// duplicateCookie answers a request carrying the REST token cookie twice:
// which one a browser sends first depends on their paths and domains, so a
// cookie tossed in from a sibling domain could otherwise decide whose
// session the request runs in.
var duplicateCookie = &APIError{Status: http.StatusBadRequest, Detail: "Duplicate cookie: " + cookieName}

// refuseAmbiguous refuses, before anything else and before authentication,
// a request that carries a header of singleHeaders, or the _token cookie,
// more than once.
func (s *Server) refuseAmbiguous(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		for _, h := range singleHeaders {
			if len(req.Header[h.key]) > 1 {
				return h.err
			}
		}
		if len(req.Header["Cookie"]) > 0 && len(req.CookiesNamed(cookieName)) > 1 {
			return duplicateCookie
		}
		return next(c)
	}
}

// errBodyTooLarge answers a body over the configured limit.
var errBodyTooLarge = &APIError{Status: http.StatusRequestEntityTooLarge, Detail: "Request Entity Too Large"}

// limitBody refuses bodies over MaxBodyBytes: at once when Content-Length
// says so, and while reading otherwise (chunked uploads).
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > s.cfg.MaxBodyBytes {
			return errBodyTooLarge
		}
		if req.Body != http.NoBody { // net/http's body of a request without one
			req.Body = http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxBodyBytes)
		}
		return next(c)
	}
}

// bearer extracts the token of an "Authorization: Bearer" header. The scheme
// is matched case-insensitively, as FastAPI's HTTPBearer does.
func bearer(r *http.Request) string {
	h := r.Header.Get(echo.HeaderAuthorization)
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return ""
	}
	return strings.TrimSpace(h[7:])
}

// addressFailed counts a token that failed validation against the client's
// address and answers 429 while the address is limited, else nil. Task and
// REST tokens share it: an address's limit only ever answers tokens that
// fail, so garbage from a worker's address cannot fail its valid requests.
func (s *Server) addressFailed(c echo.Context) error {
	addr := c.RealIP()
	if d := s.limited(addrKey, addr); d > 0 {
		return retryLater(c, d)
	}
	s.authFailed(addrKey, addr)
	return nil
}

// recoverPanics turns a handler panic into the opaque 500, logged once.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.Error("handler panic", zap.Any("panic", r), zap.Stack("stack"))
				err = errors.New("gateway: handler panic")
			}
		}()
		return next(c)
	}
}

// accessLog writes the one log line per request, echoes the correlation id,
// and stamps the API version. It never logs a token, only its jti. It hands
// the rest of the chain the request's requestState as its context.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		req := c.Request()
		res := c.Response()
		h := res.Header()
		// The values are assigned without the copy Header.Set makes: the
		// correlation id's slice is the request's own (capped, so that an
		// Add cannot write into it), the version's is shared by every
		// response, and nothing writes into a header value in place.
		var cid string
		if v := req.Header[correlationHeader]; len(v) > 0 && v[0] != "" {
			cid = v[0]
			h[correlationHeader] = v[:1:1]
		}
		h[versionHeader] = apiVersionValue
		st := s.states.Get().(*requestState)
		st.Context = c
		err := next(st)
		if err != nil {
			c.Error(err)
		}
		end := time.Now()
		latency := end.Sub(start)
		if s.met != nil {
			rm := st.route
			if rm == nil {
				rm = s.met.Unmatched(req.Method)
			}
			rm.Observe(res.Status, latency)
		}
		st.entry = AccessEntry{Time: end, Method: req.Method, Route: c.Path(), Status: res.Status, Latency: latency,
			CorrelationID: cid, TIID: c.Param("task_instance_id"), AuthError: st.authError, Refused: st.refused,
			Claims: st.claims, RESTClaims: st.restClaims}
		if s.cfg.AccessLog != nil {
			s.cfg.AccessLog.LogRequest(&st.entry)
		} else if ce := s.logCore.Check(zapcore.Entry{Level: zap.InfoLevel, Time: end, Message: "request"}, nil); ce != nil {
			// The core is asked directly, with the time already read:
			// the server's logger has no options (caller, stack, hooks)
			// that Logger.Check would add, and reading the clock again is
			// not free (a virtual machine's clock source).
			ce.Write(st.entry.Fields(st.fields[:0])...)
		}
		*st = requestState{} // nothing of this request stays reachable from the pool
		s.states.Put(st)
		return nil
	}
}
