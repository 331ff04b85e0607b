package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

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
			s := &Server{log: zap.NewNop()}
			e := echo.New()
			rec := httptest.NewRecorder()
			c := e.NewContext(httptest.NewRequest(tc.method, "/execution/task-instances/x/heartbeat", nil), rec)
			s.errorHandler(tc.err, c)
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
