package gateway

import (
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// Connection tests: a worker runs a connection test queued for it (Airflow's
// TestConnection workload) with a workload token whose sub is the test's id
// ("ct:self"): it reads the connection to try, then reports the result.

// connectionTestResult is Airflow's ConnectionTestResultBody.
type connectionTestResult struct {
	State         workload.ConnectionTestState `json:"state"`
	ResultMessage *string                      `json:"result_message"`
}

// connectionTestConnection is Airflow's ConnectionTestConnectionResponse.
type connectionTestConnection struct {
	ConnID   string  `json:"conn_id"`
	ConnType string  `json:"conn_type"`
	Host     *string `json:"host"`
	Login    *string `json:"login"`
	Password *string `json:"password"`
	Schema   *string `json:"schema"`
	Port     *int    `json:"port"`
	Extra    *string `json:"extra"`
}

var connectionTestModels = map[string]routeModel{
	"PATCH /execution/connection-tests/:connection_test_id":          {Request: connectionTestResult{}, Status: http.StatusNoContent},
	"GET /execution/connection-tests/:connection_test_id/connection": {Response: connectionTestConnection{}},
}

// uuidParam returns the canonical form of a UUID path parameter, or a 422
// like FastAPI's UUID validation.
func uuidParam(c echo.Context, name string) (string, error) {
	raw := c.Param(name)
	id, ok := scopes.CanonicalUUID(raw)
	if !ok {
		return "", &ValidationError{[]FieldError{{
			Type: "uuid_parsing", Loc: []any{"path", name},
			Msg: "Input should be a valid UUID", Input: raw,
		}}}
	}
	return id, nil
}

func connectionTestNotFound(id string) error {
	return notFound("Connection test " + id + " not found")
}

// handleGetConnectionTestConnection is GET
// /connection-tests/{connection_test_id}/connection: the connection under
// test, password and extra in clear, to the test's own token only.
func (s *Server) handleGetConnectionTestConnection(c echo.Context) error {
	id, err := uuidParam(c, "connection_test_id")
	if err != nil {
		return err
	}
	ct, err := s.cfg.Store.ConnectionTest(c.Request().Context(), id)
	if errors.Is(err, workload.ErrNotFound) {
		return connectionTestNotFound(id)
	} else if err != nil {
		return err
	}
	conn := ct.Connection
	return c.JSON(http.StatusOK, connectionTestConnection{ConnID: conn.ConnID, ConnType: conn.ConnType,
		Host: conn.Host, Login: conn.Login, Password: conn.Password, Schema: conn.Schema, Port: conn.Port,
		Extra: conn.Extra})
}

// decodeConnectionTestResult validates a ConnectionTestResultBody: a state
// of ConnectionTestState that a worker may report (success or failed) and
// an optional message of at most 2000 characters.
func decodeConnectionTestResult(body []byte) (connectionTestResult, error) {
	o, verr := decodeObject(body)
	if verr != nil {
		return connectionTestResult{}, verr
	}
	var r connectionTestResult
	if s := o.str("state", true, false); s != nil {
		st := workload.ConnectionTestState(*s)
		switch {
		case !knownConnectionTestState(st):
			names := make([]string, len(workload.ConnectionTestStates))
			for i, k := range workload.ConnectionTestStates {
				names[i] = "'" + string(k) + "'"
			}
			expected := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
			o.errs = append(o.errs, FieldError{Type: "enum", Loc: []any{"body", "state"},
				Msg: "Input should be " + expected, Input: *s, Ctx: map[string]any{"expected": expected}})
		case !st.Terminal():
			msg := "Value error, Workers may only report terminal states (success/failed); got '" + *s + "'"
			o.errs = append(o.errs, FieldError{Type: "value_error", Loc: []any{"body", "state"},
				Msg: msg, Input: *s, Ctx: map[string]any{"error": strings.TrimPrefix(msg, "Value error, ")}})
		default:
			r.State = st
		}
	}
	if m := o.str("result_message", false, true); m != nil {
		if utf8.RuneCountInString(*m) > 2000 {
			o.errs = append(o.errs, FieldError{Type: "string_too_long", Loc: []any{"body", "result_message"},
				Msg: "String should have at most 2000 characters", Input: *m, Ctx: map[string]any{"max_length": 2000}})
		}
		r.ResultMessage = m
	}
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return connectionTestResult{}, verr
	}
	return r, nil
}

func knownConnectionTestState(s workload.ConnectionTestState) bool {
	for _, k := range workload.ConnectionTestStates {
		if k == s {
			return true
		}
	}
	return false
}

// handlePatchConnectionTest is PATCH /connection-tests/{connection_test_id}:
// the worker's result. A test that already has one is refused (409); a
// successful test queued to be saved saves its connection in the same
// write.
func (s *Server) handlePatchConnectionTest(c echo.Context) error {
	id, err := uuidParam(c, "connection_test_id")
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	r, err := decodeConnectionTestResult(body)
	if err != nil {
		return err
	}
	now := s.now()
	_, err = s.cfg.Store.UpdateConnectionTest(c.Request().Context(), id, func(ct *workload.ConnectionTest) error {
		return workload.ReportConnectionTest(ct, r.State, r.ResultMessage, now)
	})
	if errors.Is(err, workload.ErrNotFound) {
		return connectionTestNotFound(id)
	} else if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
