package gateway

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/operator"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// APIError is an error with the exact status and {"detail": …} body a client
// receives. Handlers return it for outcomes that are not lifecycle
// conflicts, validation failures or authorization denials.
type APIError struct {
	Status int
	Detail any
}

func (e *APIError) Error() string { return "gateway: " + http.StatusText(e.Status) }

// notFound builds the structured 404 Airflow uses for missing resources.
func notFound(message string) *APIError {
	return &APIError{Status: http.StatusNotFound, Detail: reasonDetail("not_found", message)}
}

func reasonDetail(reason, message string) map[string]any {
	return map[string]any{"reason": reason, "message": message}
}

// unavailableRetryAfter is the Retry-After of a 503 answered while the
// store is unreachable: soon enough for a worker's next heartbeat to land
// once the database is back.
const unavailableRetryAfter = "1"

// errTINotFound is the 404 every task-instance route answers for an unknown id.
var errTINotFound = notFound("Task Instance not found")

// statusOf maps an error to its HTTP status and response body.
func statusOf(err error) (int, any) {
	var (
		denial    *scopes.Denial
		verr      *ValidationError
		conflict  *workload.ConflictError
		forbidden *workload.ForbiddenError
		apiErr    *APIError
		refusal   *operator.Error
		httpErr   *echo.HTTPError

		badPartitionKey *workload.InvalidPartitionKeyError
		badPattern      *workload.InvalidPatternError
	)
	switch {
	case errors.As(err, &denial):
		switch denial.Reason {
		case scopes.ReasonMissingToken:
			return http.StatusUnauthorized, map[string]any{"detail": denial.Detail}
		case scopes.ReasonTryArchived:
			return http.StatusGone, map[string]any{"detail": reasonDetail("not_found", denial.Detail)}
		case scopes.ReasonTryUnknown:
			return http.StatusNotFound, map[string]any{"detail": reasonDetail("not_found", denial.Detail)}
		case scopes.ReasonTryNotRunning:
			return http.StatusConflict, map[string]any{"detail": reasonDetail("not_running", denial.Detail)}
		case scopes.ReasonJobClosed:
			return http.StatusForbidden, map[string]any{"detail": reasonDetail("job_closed", denial.Detail)}
		case scopes.ReasonJobNotFound:
			return http.StatusNotFound, map[string]any{"detail": reasonDetail("not_found", denial.Detail)}
		case scopes.ReasonBundleMissing:
			return http.StatusBadRequest, map[string]any{"detail": denial.Detail}
		}
		return http.StatusForbidden, map[string]any{"detail": denial.Detail}
	case errors.As(err, &verr):
		return http.StatusUnprocessableEntity, map[string]any{"detail": verr.Errors}
	case errors.As(err, &conflict):
		detail := reasonDetail(conflict.Reason, conflict.Message)
		for k, v := range conflict.Extra {
			detail[k] = v
		}
		return http.StatusConflict, map[string]any{"detail": detail}
	case errors.As(err, &badPartitionKey):
		return http.StatusUnprocessableEntity, map[string]any{"detail": reasonDetail("invalid_partition_key", badPartitionKey.Message)}
	case errors.As(err, &badPattern):
		return http.StatusBadRequest, map[string]any{"detail": reasonDetail("Invalid regex",
			"The partition_key_pattern is not a valid regular expression: "+badPattern.Reason)}
	case errors.As(err, &forbidden):
		return http.StatusForbidden, map[string]any{"detail": reasonDetail(forbidden.Reason, forbidden.Message)}
	case errors.As(err, &apiErr):
		return apiErr.Status, map[string]any{"detail": apiErr.Detail}
	case errors.As(err, &refusal):
		// A refusal its handler did not word: the rule's own message.
		status := http.StatusBadRequest
		switch {
		case errors.Is(refusal.Kind, operator.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(refusal.Kind, operator.ErrExists):
			status = http.StatusConflict
		}
		return status, map[string]any{"detail": refusal.Error()}
	case errors.Is(err, workload.ErrUnavailable):
		// Not the server's fault, and retried by every client: 503.
		return http.StatusServiceUnavailable, map[string]any{"detail": "The database is unavailable; retry later"}
	case errors.As(err, &httpErr):
		if httpErr.Code >= 500 {
			return http.StatusInternalServerError, nil
		}
		// Echo's own errors (unknown route, wrong method, body too large …)
		// in FastAPI's words: {"detail": "Not Found"}.
		return httpErr.Code, map[string]any{"detail": http.StatusText(httpErr.Code)}
	}
	return http.StatusInternalServerError, nil
}

// errorHandler is the gateway's one place that turns errors into responses.
// Unexpected errors are logged once, here, with the request's correlation id,
// and answered with Airflow's opaque 500 body.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	if errors.Is(err, workload.ErrValueRejected) {
		err = s.valueRejected(c, err)
	}
	status, body := statusOf(err)
	if status == http.StatusInternalServerError {
		cid := c.Request().Header.Get(correlationHeader)
		s.log.Error("request failed", zap.String("method", c.Request().Method),
			zap.String("route", c.Path()), zap.String("correlation_id", cid), zap.Error(err))
		// An APIError 500 is one Airflow's route raises itself, with its
		// detail; any other is Airflow's unhandled-exception answer.
		if apiErr := (*APIError)(nil); !errors.As(err, &apiErr) {
			b := map[string]any{"message": "Internal server error"}
			if cid != "" {
				b["correlation-id"] = cid
			}
			body = b
		}
	}
	// Token refusals name the bearer scheme (RFC 6750 §3.1): a bare
	// challenge when no token was sent, invalid_token otherwise.
	var denial *scopes.Denial
	if errors.As(err, &denial) && (status == http.StatusUnauthorized || status == http.StatusForbidden) {
		challenge := `Bearer error="invalid_token"`
		if status == http.StatusUnauthorized {
			challenge = "Bearer"
		}
		c.Response().Header().Set("WWW-Authenticate", challenge)
	}
	if errors.Is(err, workload.ErrUnavailable) {
		c.Response().Header().Set("Retry-After", unavailableRetryAfter)
		s.logUnavailable(c, err)
	}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(status)
	} else {
		werr = c.JSON(status, body)
	}
	if werr != nil {
		s.log.Debug("write error response", zap.Error(werr))
	}
}

// logUnavailable logs why the store could not be reached, at most once a
// second: during an outage every request fails alike, and each already has
// its access-log line with the 503.
func (s *Server) logUnavailable(c echo.Context, err error) {
	now := s.now().UnixNano()
	last := s.unavailableLogged.Load()
	if now-last < int64(time.Second) || !s.unavailableLogged.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("store unavailable", zap.String("route", c.Path()), zap.Error(err))
}

// valueRejected is Airflow's DataErrorHandler: a value the database refused
// (too long for its column, out of range) is the client's error, 422, with
// the statement and the database's message hidden and logged under an id the
// response names.
func (s *Server) valueRejected(c echo.Context, err error) error {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	id := make([]byte, 10)
	for i := range id {
		id[i] = letters[rand.IntN(len(letters))]
	}
	s.log.Error("value rejected by the database", zap.String("id", string(id)), zap.String("method", c.Request().Method),
		zap.String("route", c.Path()), zap.Error(err))
	return &APIError{Status: http.StatusUnprocessableEntity, Detail: map[string]any{
		"reason":     "Value rejected by database",
		"statement":  "hidden",
		"orig_error": "hidden",
		"message": "Serious error when handling your request. Check logs for more details - " +
			"you will find it in api server when you look for ID " + string(id),
	}}
}
