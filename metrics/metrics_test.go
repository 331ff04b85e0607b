package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestRegistryPerServer: two servers in one process count apart, and the
// global default registry is left alone.
func TestRegistryPerServer(t *testing.T) {
	a, b := New(), New()
	a.RunSwap()
	a.RunSwap()
	b.RunSwap()
	if got := value(t, a.runSwaps); got != 2 {
		t.Errorf("a counted %v swaps, want 2", got)
	}
	if got := value(t, b.runSwaps); got != 1 {
		t.Errorf("b counted %v swaps, want 1", got)
	}
}

// TestNilMetrics: every method of a nil *Metrics does nothing.
func TestNilMetrics(t *testing.T) {
	var m *Metrics
	m.Route("GET", "/x").Observe(200, time.Millisecond)
	m.Unmatched("GET").Observe(404, time.Millisecond)
	m.SetInFlight(func() int64 { return 1 })
	m.Overloaded()
	m.TokenDenied("execution", "missing")
	m.Renewed("response")
	m.RunSwap()
	m.Heartbeat("accepted")
	m.ObserveCommit(3, time.Millisecond)
	m.ObserveCheckpoint(true)
	m.ObserveHeartbeatBatch(3, time.Millisecond)
	m.LoginFailed()
	m.LoginThrottled()
	m.Lockout()
	if hit, miss := m.ReadCache("variable"); hit != nil || miss != nil {
		t.Error("a nil Metrics returned read-cache counters")
	}
	Counters(m.TokenValidations("execution")).Inc(0)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("a nil Metrics' handler answered %d", rec.Code)
	}
}

// TestRouteLabels: a route counts under its template, by status class; the
// unmatched ones under one route label and a fixed set of methods.
func TestRouteLabels(t *testing.T) {
	m := New()
	r := m.Route(http.MethodGet, "/execution/variables/*")
	if m.Route(http.MethodGet, "/execution/variables/*") != r {
		t.Error("the same route resolved twice")
	}
	for _, status := range []int{200, 204, 404, 409, 500, 302, 101, 600} {
		r.Observe(status, time.Millisecond)
	}
	m.Unmatched("BREW").Observe(404, time.Millisecond)
	m.Unmatched("PATCH").Observe(405, time.Millisecond)
	for labels, want := range map[[3]string]float64{
		{"/execution/variables/*", "GET", "2xx"}:   2,
		{"/execution/variables/*", "GET", "4xx"}:   2,
		{"/execution/variables/*", "GET", "5xx"}:   1,
		{"/execution/variables/*", "GET", "3xx"}:   1,
		{"/execution/variables/*", "GET", "1xx"}:   1,
		{"/execution/variables/*", "GET", "other"}: 1,
		{UnmatchedRoute, "other", "4xx"}:           1,
		{UnmatchedRoute, "PATCH", "4xx"}:           1,
	} {
		if got := value(t, m.requests.WithLabelValues(labels[:]...)); got != want {
			t.Errorf("%v = %v, want %v", labels, got, want)
		}
	}
	if got := count(m.latency); got != 1+len(unmatchedMethods) {
		t.Errorf("%d latency series, want one per route and unmatched method", got)
	}
}

// TestHandlerServesFamilies: the text exposition names the families, the
// runtime's and the process's among them.
func TestHandlerServesFamilies(t *testing.T) {
	m := New()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, name := range []string{"taskgate_http_requests_total", "taskgate_heartbeats_total",
		"taskgate_store_commit_duration_seconds", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(rec.Body.String(), "# TYPE "+name+" ") {
			t.Errorf("%s missing from the exposition", name)
		}
	}
}

// TestObserveAllocatesNothing: a request's observation, once its route is
// resolved, allocates nothing.
func TestObserveAllocatesNothing(t *testing.T) {
	m := New()
	r := m.Route(http.MethodGet, "/execution/variables/*")
	hit, _ := m.ReadCache("variable")
	if n := testing.AllocsPerRun(1000, func() {
		r.Observe(200, time.Millisecond)
		m.Unmatched("GET").Observe(404, time.Millisecond)
		m.Heartbeat("accepted")
		m.TokenDenied("execution", "missing")
		hit.Inc()
	}); n != 0 {
		t.Errorf("%v allocations per observation", n)
	}
}

func BenchmarkRouteObserve(b *testing.B) {
	r := New().Route(http.MethodGet, "/execution/variables/*")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Observe(200, 40*time.Microsecond)
		}
	})
}

// value reads a counter's value.
func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// count is the number of series c collects.
func count(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	n := 0
	for range ch {
		n++
	}
	return n
}
