package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taskgate/taskgate/internal/fakeclock"
	"github.com/taskgate/taskgate/workload"
)

// TestUnavailableStoreAnswers503: a store that cannot be reached is no
// server fault: the client hears 503 with Retry-After, which Airflow's
// clients retry, never the opaque 500.
func TestUnavailableStoreAnswers503(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		err    error
	}{
		{"wrapped", http.MethodPut, fmt.Errorf("pgstore: heartbeat: %w", workload.ErrUnavailable)},
		{"bare on HEAD", http.MethodHead, workload.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{log: zap.NewNop(), now: time.Now}
			rec := handleError(s, tc.method, tc.err)
			if rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503", rec.Code)
			}
			if got := rec.Header().Get("Retry-After"); got != unavailableRetryAfter {
				t.Errorf("Retry-After %q, want %q", got, unavailableRetryAfter)
			}
			if tc.method != http.MethodHead && rec.Body.String() != `{"detail":"The database is unavailable; retry later"}`+"\n" {
				t.Errorf("body %q", rec.Body.String())
			}
		})
	}
}

// TestUnavailableStoreLoggedOncePerSecond: during an outage every request
// fails alike; its cause is logged at most once a second, and an overload
// 503 (which is not the store's) never says the store is unavailable.
func TestUnavailableStoreLoggedOncePerSecond(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	clk := fakeclock.New(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	s := &Server{log: zap.New(core), now: clk.Now}
	for _, step := range []struct {
		name    string
		advance time.Duration
		err     error
		want    int // "store unavailable" lines so far
	}{
		{"first failure", 0, workload.ErrUnavailable, 1},
		{"same second", 500 * time.Millisecond, workload.ErrUnavailable, 1},
		{"overload", 0, errOverloaded, 1},
		{"a second later", 500 * time.Millisecond, workload.ErrUnavailable, 2},
	} {
		clk.Advance(step.advance)
		handleError(s, http.MethodGet, step.err)
		if got := logs.FilterMessage("store unavailable").Len(); got != step.want {
			t.Errorf("%s: %d lines, want %d", step.name, got, step.want)
		}
	}
}

// handleError runs the error handler on err for a request with method.
func handleError(s *Server, method string, err error) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	c := echo.New().NewContext(httptest.NewRequest(method, "/execution/task-instances/x/heartbeat", nil), rec)
	s.errorHandler(err, c)
	return rec
}
