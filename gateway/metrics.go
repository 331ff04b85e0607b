package gateway

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/metrics"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// meter hands the access log the metrics of the route h serves. It wraps
// every registered route, whatever its template, when New registers it: the
// route's instruments are resolved once there, so a request pays one
// pointer store, and the labels are the route's template, never the path.
// Requests that match no route keep a nil route and count as
// metrics.UnmatchedRoute.
func meter(rm *metrics.Route, h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		stateOf(c).route = rm
		return h(c)
	}
}

// handleMetrics is GET /metrics: the server's Prometheus registry, public
// like the health checks. When [taskgate] metrics_listen serves it on its
// own listener, or without metrics, this listener answers 404.
func (s *Server) handleMetrics(c echo.Context) error {
	if s.met == nil || s.cfg.MetricsElsewhere {
		return echo.ErrNotFound
	}
	s.met.Handler().ServeHTTP(c.Response(), c.Request())
	return nil
}

// renewedOnResponse counts a token renewed on a response (reissue).
func (s *Server) renewedOnResponse() { s.met.Renewed("response") }

// denialReason is the metrics label of a task-token denial.
func denialReason(d *scopes.Denial) string {
	switch d.Reason {
	case scopes.ReasonMissingToken:
		return "missing"
	case scopes.ReasonInvalidToken:
		return "invalid"
	case scopes.ReasonInvalidScope, scopes.ReasonTypeNotAllowed:
		return "wrong_type"
	case scopes.ReasonSubjectMismatch:
		return "subject_mismatch"
	case scopes.ReasonTryArchived:
		return "try_archived"
	case scopes.ReasonTryUnknown:
		return "try_unknown"
	case scopes.ReasonTryNotRunning:
		return "try_not_running"
	}
	return "denied_by_policy"
}

// restDenialReason is the metrics label of a REST denial, "" for a refusal
// that is not about the token (the request's shape).
func restDenialReason(r restRule) string {
	switch r {
	case restNoToken:
		return "missing"
	case restBadToken, restNoJTI:
		return "invalid"
	case restUnknownRole:
		return "wrong_type"
	case restRevoked:
		return "revoked"
	case restUserChanged, restUserLookup, restRoleTooLow, restCrossSite:
		return "denied_by_policy"
	}
	return ""
}

// heartbeatResult is the metrics label of a heartbeat's outcome.
func heartbeatResult(err error) string {
	var conflict *workload.ConflictError
	var verr *ValidationError
	switch {
	case err == nil:
		return "accepted"
	case errors.As(err, &conflict):
		switch conflict.Reason {
		case "not_running", "running_elsewhere":
			return conflict.Reason
		}
		return "not_running"
	case errors.Is(err, workload.ErrNotFound), errors.Is(err, errTINotFound):
		return "not_found"
	case errors.As(err, &verr):
		return "invalid"
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status < http.StatusInternalServerError {
		return "invalid"
	}
	return "error"
}
