package gateway

import (
	"time"

	"go.uber.org/zap"

	"github.com/taskgate/taskgate/scopes"
)

// AccessEntry is one request's access-log line: what Fields turns into the
// line's zap fields, in their order.
type AccessEntry struct {
	// Time is when the request was answered.
	Time    time.Time
	Method  string
	Route   string // the route template Echo matched
	Status  int
	Latency time.Duration
	// CorrelationID, TIID: the request's Correlation-Id and its path's
	// task_instance_id, when it has them.
	CorrelationID string
	TIID          string
	// AuthError is why the token was refused, when Refused.
	AuthError string
	Refused   bool
	// Claims are a task or component token's; RESTClaims a REST token's.
	Claims     *scopes.Claims
	RESTClaims *scopes.Claims
}

// Fields appends e's fields to dst: method, route, status, latency, then
// correlation_id, ti_id and auth_error when present, then sub, scope, jti
// and component of a task or component token, or user and jti of a REST
// token. Never a token.
func (e *AccessEntry) Fields(dst []zap.Field) []zap.Field {
	dst = append(dst,
		zap.String("method", e.Method),
		zap.String("route", e.Route),
		zap.Int("status", e.Status),
		zap.Duration("latency", e.Latency),
	)
	if e.CorrelationID != "" {
		dst = append(dst, zap.String("correlation_id", e.CorrelationID))
	}
	if e.TIID != "" {
		dst = append(dst, zap.String("ti_id", e.TIID))
	}
	if e.Refused {
		dst = append(dst, zap.String("auth_error", e.AuthError))
	}
	if cl := e.Claims; cl != nil {
		dst = append(dst, zap.String("sub", cl.Subject), zap.String("scope", string(cl.Type())),
			zap.String("jti", cl.ID))
		if comp := cl.Component(); comp != "" {
			dst = append(dst, zap.String("component", comp))
		}
	} else if cl := e.RESTClaims; cl != nil {
		dst = append(dst, zap.String("user", cl.Subject), zap.String("jti", cl.ID))
	}
	return dst
}

// AccessLog writes access-log lines in place of the Logger: the line
// Logger's encoder would write for the message "request" at info level and
// e.Fields, byte for byte, to the same output, when that level is enabled.
// It must not keep e, which is reused.
type AccessLog interface {
	LogRequest(e *AccessEntry)
}
