package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/taskgate/taskgate/metrics"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// TestMetricsRouteTemplates: concurrent requests naming many task
// instances and unknown paths are counted under route templates only, and
// /metrics serves them.
func TestMetricsRouteTemplates(t *testing.T) {
	h := newHarness(t, withConfig(func(cfg *Config) { cfg.Metrics = metrics.New() }))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id := fmt.Sprintf("0190e3e4-0000-7000-8000-%012x", g*1000+i)
				for _, p := range []struct{ method, path string }{
					{"PUT", "/execution/task-instances/" + id + "/heartbeat"},
					{"GET", "/execution/variables/key-" + id},
					{"GET", "/no/such/" + id},
					{"BREW", "/execution/task-instances/" + id + "/run"},
				} {
					rec := httptest.NewRecorder()
					h.srv.ServeHTTP(rec, httptest.NewRequest(p.method, p.path, nil))
				}
			}
		}()
	}
	wg.Wait()
	r := h.do("GET", "/metrics", "", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics = %d", r.status)
	}
	routes := map[string]bool{metrics.UnmatchedRoute: true}
	for _, rt := range RouteTable() {
		routes[rt.Path] = true
	}
	for line := range strings.Lines(r.body) {
		if !strings.HasPrefix(line, "taskgate_http_requests_total{") {
			continue
		}
		if strings.Contains(line, "0190e3e4-0000-7000-8000") || strings.Contains(line, "key-") {
			t.Errorf("an id in a label: %s", line)
		}
		_, rest, _ := strings.Cut(line, `route="`)
		route, _, _ := strings.Cut(rest, `"`)
		if !routes[route] {
			t.Errorf("route %q is no template: %s", route, line)
		}
	}
	for _, want := range []string{
		`taskgate_http_requests_total{code="4xx",method="PUT",route="/execution/task-instances/:task_instance_id/heartbeat"} 400`,
		`taskgate_http_requests_total{code="4xx",method="GET",route="/execution/variables/*"} 400`,
		`taskgate_http_requests_total{code="4xx",method="GET",route="unmatched"} 400`,
		`taskgate_http_requests_total{code="4xx",method="other",route="unmatched"} 400`,
		`taskgate_token_denials_total{api="execution",reason="missing"} 800`,
	} {
		if !strings.Contains(r.body, want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestMetricsElsewhere: without metrics, or with them on their own
// listener, GET /metrics here is a 404.
func TestMetricsElsewhere(t *testing.T) {
	for name, opt := range map[string]func(*Config){
		"no metrics": func(*Config) {},
		"metrics_listen": func(cfg *Config) {
			cfg.Metrics, cfg.MetricsElsewhere = metrics.New(), true
		},
	} {
		h := newHarness(t, withConfig(opt))
		if r := h.do("GET", "/metrics", "", ""); r.status != http.StatusNotFound {
			t.Errorf("%s: GET /metrics = %d, want 404", name, r.status)
		}
	}
}

// TestMetricsLabelsBounded: every refusal maps to a label of the fixed sets
// metrics exports.
func TestMetricsLabelsBounded(t *testing.T) {
	for r := scopes.ReasonMissingToken; r <= scopes.ReasonTryNotRunning; r++ {
		if got := denialReason(&scopes.Denial{Reason: r}); !slices.Contains(metrics.TokenDenialReasons, got) {
			t.Errorf("reason %d: label %q is not in metrics.TokenDenialReasons", r, got)
		}
	}
	for _, rule := range []restRule{restNoToken, restBadToken, restNoJTI, restUnknownRole, restRevoked,
		restUserChanged, restUserLookup, restRoleTooLow, restCrossSite} {
		if got := restDenialReason(rule); !slices.Contains(metrics.TokenDenialReasons, got) {
			t.Errorf("rule %q: label %q is not in metrics.TokenDenialReasons", rule, got)
		}
	}
	if got := restDenialReason(restShape); got != "" {
		t.Errorf("a refused request shape counts as a token denial (%q)", got)
	}
	for err, want := range map[error]string{
		nil: "accepted",
		&workload.ConflictError{Reason: "not_running"}:       "not_running",
		&workload.ConflictError{Reason: "running_elsewhere"}: "running_elsewhere",
		&workload.ConflictError{Reason: "invalid_state"}:     "not_running",
		errTINotFound:            "not_found",
		&ValidationError{}:       "invalid",
		errBodyTooLarge:          "invalid",
		errors.New("store down"): "error",
	} {
		if got := heartbeatResult(err); got != want || !slices.Contains(metrics.HeartbeatResults, got) {
			t.Errorf("heartbeatResult(%v) = %q, want %q", err, got, want)
		}
	}
}
