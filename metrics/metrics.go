// Package metrics is taskgate's Prometheus instrumentation: one registry per
// server (never Prometheus's global one, so that tests and several servers
// in one process keep their counts apart), the families the server exports,
// and the handler that serves them.
//
// The domain packages know nothing of Prometheus: they declare small
// observer interfaces (store.Observer, pgstore.Observer, tokens.Observer)
// or callbacks, which *Metrics satisfies or the cli adapts to it. Every
// label takes its values from a fixed set (route templates, status classes,
// reasons named in code), never from a request's path or body, so the number
// of series is bounded whatever the traffic.
//
// Every method is safe on a nil *Metrics and then does nothing, so that a
// server built without metrics pays nothing for them.
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "taskgate"

// Route template of the requests no route matched (unknown paths), so that
// a scan of random paths adds no series.
const UnmatchedRoute = "unmatched"

// latencyBuckets suit a gateway whose reads answer in tens of microseconds
// and whose writes wait for an fsync.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// batchBuckets count the writes of one commit (up to the writer's 1000).
var batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000}

// Token validation outcomes (label outcome of taskgate_token_validations_total),
// in the order of tokens.Outcome.
var TokenOutcomes = []string{"valid", "cache_hit", "expired", "bad_signature", "wrong_audience", "malformed", "invalid"}

// Token denial reasons (label reason of taskgate_token_denials_total): a
// token refused by the gateway after validation, or none presented.
var TokenDenialReasons = []string{
	"missing", "invalid", "revoked", "wrong_type", "subject_mismatch", "denied_by_policy",
	"try_archived", "try_unknown", "try_not_running",
}

// HeartbeatResults label taskgate_heartbeats_total: accepted, or the reason
// of the refusal.
var HeartbeatResults = []string{"accepted", "not_running", "running_elsewhere", "not_found", "invalid", "error"}

// Metrics holds one server's registry and its instruments.
type Metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight atomic.Pointer[func() int64]
	overload prometheus.Counter

	// routes are the instruments of each route, by method and template,
	// made once per template (Route).
	mu     sync.Mutex
	routes map[[2]string]*Route
	// unmatched holds the instruments of unmatched requests by method
	// (unmatchedMethods), so that a request with a made-up method adds
	// no series either.
	unmatched [len(unmatchedMethods)]*Route

	validations *prometheus.CounterVec
	denials     *prometheus.CounterVec
	denied      map[[2]string]prometheus.Counter
	renewals    *prometheus.CounterVec
	runSwaps    prometheus.Counter
	heartbeats  []prometheus.Counter
	readCache   *prometheus.CounterVec

	commitBatch   prometheus.Histogram
	commitSeconds prometheus.Histogram
	checkpoints   *prometheus.CounterVec
	pgBatch       prometheus.Histogram
	pgSeconds     prometheus.Histogram

	loginFailures  prometheus.Counter
	loginThrottled prometheus.Counter
	lockouts       prometheus.Counter

	handler http.Handler
}

var heartbeatIndex = map[string]int{}

func init() {
	for i, r := range HeartbeatResults {
		heartbeatIndex[r] = i
	}
}

// unmatchedMethods are the method labels of unmatched requests; any other
// method counts as "other".
var unmatchedMethods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
	http.MethodOptions, "other",
}

// New builds a registry with every taskgate family, the Go runtime's and
// the process's collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), routes: map[[2]string]*Route{}, denied: map[[2]string]prometheus.Counter{}}
	f := factory{m.reg}
	m.requests = f.counterVec("http_requests_total",
		"HTTP requests answered, by route template, method and status class.", "route", "method", "code")
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "http_request_duration_seconds",
		Help:    "Time from a request's arrival in the gateway to its answer, by route template and method.",
		Buckets: latencyBuckets,
	}, []string{"route", "method"})
	m.reg.MustRegister(m.latency)
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "http_requests_in_flight",
		Help: "Authenticated requests holding one of [taskgate] max_in_flight slots.",
	}, func() float64 {
		if f := m.inFlight.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	}))
	m.overload = f.counter("http_overload_refusals_total",
		"Requests answered 503 because every in-flight slot was taken.")
	for i, meth := range unmatchedMethods {
		m.unmatched[i] = m.newRoute(meth, UnmatchedRoute)
	}

	m.validations = f.counterVec("token_validations_total",
		"Bearer tokens validated, by API (execution, rest) and outcome (cache_hit: verified before).", "api", "outcome")
	m.denials = f.counterVec("token_denials_total",
		"Requests refused for their token after validation (or for lack of one), by API and reason.", "api", "reason")
	for _, api := range []string{"execution", "rest"} {
		for _, o := range TokenOutcomes {
			m.validations.WithLabelValues(api, o)
		}
		for _, r := range TokenDenialReasons {
			m.denied[[2]string{api, r}] = m.denials.WithLabelValues(api, r)
		}
	}
	m.renewals = f.counterVec("token_renewals_total",
		"Execution tokens renewed: on a response (Refreshed-API-Token) or by POST /execution/token/refresh.", "kind")
	m.renewals.WithLabelValues("response")
	m.renewals.WithLabelValues("refresh")
	m.runSwaps = f.counter("run_token_swaps_total",
		"Workload tokens swapped for an execution token by PATCH /run.")
	hb := f.counterVec("heartbeats_total", "Heartbeats, by result: accepted, or the reason of the refusal.", "result")
	m.heartbeats = make([]prometheus.Counter, len(HeartbeatResults))
	for i, r := range HeartbeatResults {
		m.heartbeats[i] = hb.WithLabelValues(r)
	}
	m.readCache = f.counterVec("read_cache_requests_total",
		"Variable and connection GETs, by kind and whether the body came from the read cache.", "kind", "result")
	for _, kind := range []string{"variable", "connection"} {
		m.ReadCache(kind)
	}

	m.commitBatch = f.histogram("store_commit_batch_size",
		"Writes committed together in one bbolt transaction and fsync by the group-commit writer.", batchBuckets)
	m.commitSeconds = f.histogram("store_commit_duration_seconds",
		"Time of one group commit: the transaction, its fsync and the heartbeat log's.", latencyBuckets)
	m.checkpoints = f.counterVec("store_heartbeat_checkpoints_total",
		"Heartbeat log checkpoints into the database, by result (ok, failed).", "result")
	m.checkpoints.WithLabelValues("ok")
	m.checkpoints.WithLabelValues("failed")
	m.pgBatch = f.histogram("pgstore_heartbeat_batch_size",
		"Heartbeats written together in one PostgreSQL transaction.", batchBuckets)
	m.pgSeconds = f.histogram("pgstore_heartbeat_batch_duration_seconds",
		"Time of one PostgreSQL heartbeat transaction, commit included.", latencyBuckets)

	m.loginFailures = f.counter("login_failures_total", "Logins refused for bad credentials.")
	m.loginThrottled = f.counter("login_throttled_total",
		"Logins refused with 429 because the user name or address is locked out.")
	m.lockouts = f.counter("login_lockouts_total", "Lockouts begun: a user name or address failed too often.")

	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

// Handler serves the registry in Prometheus's text format (or OpenMetrics
// when asked).
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return m.handler
}

// Registry is the server's registry, for tests that gather it directly.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Route holds one route's instruments, resolved once: a request observes
// them without a label lookup or an allocation.
type Route struct {
	method, path string
	parent       *prometheus.CounterVec
	latency      prometheus.Observer
	// codes by status class (index status/100); 2xx, 4xx and 5xx are made
	// with the route, the rare 1xx and 3xx on first use.
	codes [6]atomic.Pointer[prometheus.Counter]
}

var classes = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// Route returns the instruments of the route method path (its template, as
// Echo's c.Path() gives it), made on the first call for the pair.
func (m *Metrics) Route(method, path string) *Route {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{method, path}
	if r, ok := m.routes[k]; ok {
		return r
	}
	r := m.newRoute(method, path)
	m.routes[k] = r
	return r
}

func (m *Metrics) newRoute(method, path string) *Route {
	r := &Route{method: method, path: path, parent: m.requests, latency: m.latency.WithLabelValues(path, method)}
	for _, i := range []int{2, 4, 5} {
		c := m.requests.WithLabelValues(path, method, classes[i])
		r.codes[i].Store(&c)
	}
	return r
}

// Unmatched returns the instruments of requests that matched no route,
// by method (any method outside the usual ones is "other").
func (m *Metrics) Unmatched(method string) *Route {
	if m == nil {
		return nil
	}
	for i, meth := range unmatchedMethods[:len(unmatchedMethods)-1] {
		if meth == method {
			return m.unmatched[i]
		}
	}
	return m.unmatched[len(unmatchedMethods)-1]
}

// Observe counts one answered request of the route with its status and
// latency.
func (r *Route) Observe(status int, d time.Duration) {
	if r == nil {
		return
	}
	i := status / 100
	if i < 1 || i > 5 {
		i = 0
	}
	c := r.codes[i].Load()
	if c == nil {
		cv := r.parent.WithLabelValues(r.path, r.method, classes[i])
		r.codes[i].CompareAndSwap(nil, &cv)
		c = r.codes[i].Load()
	}
	(*c).Inc()
	r.latency.Observe(d.Seconds())
}

// SetInFlight names the function that reports the requests in flight
// (taskgate_http_requests_in_flight).
func (m *Metrics) SetInFlight(f func() int64) {
	if m != nil {
		m.inFlight.Store(&f)
	}
}

// Overloaded counts a 503 for lack of an in-flight slot.
func (m *Metrics) Overloaded() {
	if m != nil {
		m.overload.Inc()
	}
}

// Counter is one counter, resolved once.
type Counter interface{ Inc() }

// Counters are the counters of one label set, indexed as the names they
// were made from: hand them to an adapter that counts by index.
type Counters []prometheus.Counter

// Inc counts one event of index i; an index out of range counts nothing.
func (c Counters) Inc(i int) {
	if i >= 0 && i < len(c) {
		c[i].Inc()
	}
}

// TokenValidations returns the counters of api's token validations, indexed
// as TokenOutcomes.
func (m *Metrics) TokenValidations(api string) Counters {
	if m == nil {
		return nil
	}
	cs := make(Counters, len(TokenOutcomes))
	for i, o := range TokenOutcomes {
		cs[i] = m.validations.WithLabelValues(api, o)
	}
	return cs
}

// TokenDenied counts a request of api ("execution", "rest") refused for
// its token, by a reason of TokenDenialReasons (others count nothing).
func (m *Metrics) TokenDenied(api, reason string) {
	if m == nil {
		return
	}
	if c, ok := m.denied[[2]string{api, reason}]; ok {
		c.Inc()
	}
}

// Renewed counts a renewed execution token: kind "response" or "refresh".
func (m *Metrics) Renewed(kind string) {
	if m != nil {
		m.renewals.WithLabelValues(kind).Inc()
	}
}

// RunSwap counts a workload token swapped for an execution token.
func (m *Metrics) RunSwap() {
	if m != nil {
		m.runSwaps.Inc()
	}
}

// Heartbeat counts a heartbeat by result, one of HeartbeatResults ("error"
// for any other).
func (m *Metrics) Heartbeat(result string) {
	if m == nil {
		return
	}
	i, ok := heartbeatIndex[result]
	if !ok {
		i = heartbeatIndex["error"]
	}
	m.heartbeats[i].Inc()
}

// ReadCache returns the hit and miss counters of the read cache of kind
// ("variable", "connection").
func (m *Metrics) ReadCache(kind string) (hit, miss Counter) {
	if m == nil {
		return nil, nil
	}
	return m.readCache.WithLabelValues(kind, "hit"), m.readCache.WithLabelValues(kind, "miss")
}

// ObserveCommit records one group commit of the embedded store
// (store.Observer).
func (m *Metrics) ObserveCommit(writes int, took time.Duration) {
	if m != nil {
		m.commitBatch.Observe(float64(writes))
		m.commitSeconds.Observe(took.Seconds())
	}
}

// ObserveCheckpoint records a heartbeat log checkpoint (store.Observer).
func (m *Metrics) ObserveCheckpoint(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.checkpoints.WithLabelValues("ok").Inc()
	} else {
		m.checkpoints.WithLabelValues("failed").Inc()
	}
}

// ObserveHeartbeatBatch records one heartbeat transaction on PostgreSQL
// (pgstore.Observer).
func (m *Metrics) ObserveHeartbeatBatch(heartbeats int, took time.Duration) {
	if m != nil {
		m.pgBatch.Observe(float64(heartbeats))
		m.pgSeconds.Observe(took.Seconds())
	}
}

// LoginFailed counts a login refused for bad credentials.
func (m *Metrics) LoginFailed() {
	if m != nil {
		m.loginFailures.Inc()
	}
}

// LoginThrottled counts a login refused while locked out.
func (m *Metrics) LoginThrottled() {
	if m != nil {
		m.loginThrottled.Inc()
	}
}

// Lockout counts a lockout begun (auth's OnLockout).
func (m *Metrics) Lockout() {
	if m != nil {
		m.lockouts.Inc()
	}
}
