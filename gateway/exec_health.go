package gateway

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// handleHealth is GET /health: the process answers.
func (s *Server) handleHealth(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "healthy"})
}

// handleHealthPing is GET /health/ping: every dependency check, 500 with the
// failing ones named when any fails.
func (s *Server) handleHealthPing(c echo.Context) error {
	ok := []string{}
	failing := map[string]string{}
	for _, h := range s.cfg.HealthChecks {
		if err := h.Check(c.Request().Context()); err != nil {
			failing[h.Name] = err.Error()
			continue
		}
		ok = append(ok, h.Name)
	}
	status := http.StatusOK
	if len(failing) > 0 {
		status = http.StatusInternalServerError
	}
	return c.JSON(status, map[string]any{"ok": ok, "failing": failing})
}
