package client

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// Targets for errors.Is on the errors of this package. They match an
// *APIError by the reason Airflow puts in {"detail": {"reason": …}} or by
// status, so callers decide what to do without parsing bodies.
var (
	// ErrNotFound is a 404, or any response with reason "not_found": the
	// task instance, variable, connection or XCom does not exist.
	ErrNotFound = errors.New("client: not found")
	// ErrInvalidState is reason "invalid_state": the task instance is not in
	// a state that allows the call (a second /run, a state update after the
	// task finished).
	ErrInvalidState = errors.New("client: invalid state")
	// ErrRunningElsewhere is reason "running_elsewhere": another worker
	// (hostname, pid) owns the task instance.
	ErrRunningElsewhere = errors.New("client: running elsewhere")
	// ErrNotRunning is reason "not_running": the task instance left the
	// running state and the task should stop.
	ErrNotRunning = errors.New("client: not running")
	// ErrAccessDenied is reason "access_denied": the token may not touch
	// that resource (an XCom of another task instance).
	ErrAccessDenied = errors.New("client: access denied")
	// ErrUnauthorized is a 401: no token was sent.
	ErrUnauthorized = errors.New("client: unauthorized")
	// ErrForbidden is a 403: the token was refused (invalid, expired, wrong
	// type or subject) or lacks access.
	ErrForbidden = errors.New("client: forbidden")
	// ErrConflict is any 409; a heartbeat that gets one must stop its task.
	ErrConflict = errors.New("client: conflict")
	// ErrGone is a 410: the task instance's attempt was archived (newer
	// Airflow servers); like a 404 on a heartbeat, the task must stop.
	ErrGone = errors.New("client: gone")
)

// APIError is a response other than 2xx, in the shapes Airflow's Execution
// API answers with:
// {"detail": "text"}, {"detail": {"reason", "message", …}}, FastAPI's 422
// list, or the 500 body. It never holds the bearer token: a server echoing it
// back gets it redacted.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Reason is detail.reason ("not_found", "invalid_state", …), if any.
	Reason string
	// Message is detail.message, the detail string, the validation
	// messages of a 422, or the status text.
	Message string
	// Detail is the raw "detail" value (the whole body when it has none and
	// is JSON): previous_state, current_state, current_hostname, … live here.
	Detail json.RawMessage
	// Method and Path name the call, Path below the base URL.
	Method string
	Path   string
}

// Error reads "client: PUT /task-instances/…/heartbeat: 409 not_running: TI
// is no longer in the running state and task should terminate".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("client: ")
	if e.Method != "" {
		b.WriteString(e.Method + " " + e.Path + ": ")
	}
	b.WriteString(strconv.Itoa(e.Status))
	if e.Reason != "" {
		b.WriteString(" " + e.Reason)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Is matches the sentinel errors of this package.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound || e.Reason == "not_found"
	case ErrInvalidState:
		return e.Reason == "invalid_state"
	case ErrRunningElsewhere:
		return e.Reason == "running_elsewhere"
	case ErrNotRunning:
		return e.Reason == "not_running"
	case ErrAccessDenied:
		return e.Reason == "access_denied"
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrGone:
		return e.Status == http.StatusGone
	}
	return false
}

// Field returns a string field of an object detail, such as
// "current_state" of a 409 not_running, or "".
func (e *APIError) Field(name string) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(e.Detail, &obj) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(obj[name], &s) == nil {
		return s
	}
	if raw := obj[name]; len(raw) > 0 && string(raw) != "null" {
		return string(raw)
	}
	return ""
}

// maxMessage bounds a message taken from a body that is not JSON.
const maxMessage = 512

// parseAPIError reads a non-2xx body.
func parseAPIError(status int, body []byte) *APIError {
	e := &APIError{Status: status}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		text := strings.TrimSpace(string(body))
		if len(text) > maxMessage {
			text = text[:maxMessage] + "…"
		}
		e.Message = text
		if e.Message == "" {
			e.Message = http.StatusText(status)
		}
		return e
	}
	detail, ok := top["detail"]
	if !ok {
		// The 500 body {"message": …, "correlation-id": …}.
		e.Detail = body
		_ = json.Unmarshal(top["message"], &e.Message)
		if e.Message == "" {
			e.Message = http.StatusText(status)
		}
		return e
	}
	e.Detail = detail
	var text string
	var obj struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	var list []struct {
		Loc []any  `json:"loc"`
		Msg string `json:"msg"`
	}
	switch {
	case json.Unmarshal(detail, &text) == nil:
		e.Message = text
	case json.Unmarshal(detail, &list) == nil:
		msgs := make([]string, 0, len(list))
		for _, f := range list {
			loc := make([]string, 0, len(f.Loc))
			for _, l := range f.Loc {
				loc = append(loc, strings.Trim(strings.TrimSpace(toString(l)), `"`))
			}
			msgs = append(msgs, strings.Join(loc, ".")+": "+f.Msg)
		}
		e.Message = strings.Join(msgs, "; ")
	case json.Unmarshal(detail, &obj) == nil:
		e.Reason, e.Message = obj.Reason, obj.Message
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
