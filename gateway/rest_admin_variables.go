package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/operator"
	"github.com/taskgate/taskgate/workload"
)

// ----- variables

type variableBody struct {
	Key         string  `json:"key"`
	Value       *string `json:"value"`
	Description *string `json:"description"`
	IsEncrypted bool    `json:"is_encrypted"`
}

func newVariableBody(v workload.Variable) variableBody {
	return variableBody{Key: v.Key, Value: v.Value, Description: v.Description}
}

func variableNotFound(key string) error {
	return &APIError{Status: http.StatusNotFound, Detail: fmt.Sprintf("The Variable with key: `%s` was not found", key)}
}

// handleListVariables is GET /api/v2/variables.
func (s *Server) handleListVariables(c echo.Context) error {
	limit, offset, err := page(c)
	if err != nil {
		return err
	}
	vs, err := s.ops.Variables(c.Request().Context())
	if err != nil {
		return err
	}
	lo, hi := window(len(vs), limit, offset)
	out := make([]variableBody, 0, hi-lo)
	for _, v := range vs[lo:hi] {
		out = append(out, newVariableBody(v))
	}
	return c.JSON(http.StatusOK, map[string]any{"variables": out, "total_entries": len(vs)})
}

// handleAdminGetVariable is GET /api/v2/variables/{key}.
func (s *Server) handleAdminGetVariable(c echo.Context) error {
	key, err := variableKey(c)
	if err != nil {
		return err
	}
	v, err := s.ops.Variable(c.Request().Context(), key)
	if errors.Is(err, operator.ErrNotFound) {
		return variableNotFound(key)
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newVariableBody(*v))
}

// decodeVariable reads Airflow's VariableBody.
func decodeVariable(c echo.Context) (workload.Variable, error) {
	o, err := readObject(c)
	if err != nil {
		return workload.Variable{}, err
	}
	key := o.str("key", true, false)
	val := o.str("value", true, true)
	desc := o.str("description", false, true)
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return workload.Variable{}, verr
	}
	if *key == "" {
		return workload.Variable{}, paramError("body", "key", "string_too_short", "String should have at least 1 character", "")
	}
	return workload.Variable{Key: *key, Value: val, Description: desc}, nil
}

// handleCreateVariable is POST /api/v2/variables: 409 when the key exists.
func (s *Server) handleCreateVariable(c echo.Context) error {
	v, err := decodeVariable(c)
	if err != nil {
		return err
	}
	if err := s.ops.CreateVariable(c.Request().Context(), v); errors.Is(err, operator.ErrExists) {
		return &APIError{Status: http.StatusConflict, Detail: fmt.Sprintf("The Variable with key: `%s` already exists", v.Key)}
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, newVariableBody(v))
}

// handlePatchVariable is PATCH /api/v2/variables/{key}.
func (s *Server) handlePatchVariable(c echo.Context) error {
	key, err := variableKey(c)
	if err != nil {
		return err
	}
	v, err := decodeVariable(c)
	if err != nil {
		return err
	}
	if v.Key != key {
		return &APIError{Status: http.StatusBadRequest, Detail: "Invalid body, key from request body doesn't match uri parameter"}
	}
	if err := s.ops.UpdateVariable(c.Request().Context(), v); errors.Is(err, operator.ErrNotFound) {
		return variableNotFound(key)
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newVariableBody(v))
}

// handleAdminDeleteVariable is DELETE /api/v2/variables/{key}.
func (s *Server) handleAdminDeleteVariable(c echo.Context) error {
	key, err := variableKey(c)
	if err != nil {
		return err
	}
	if err := s.ops.DeleteVariable(c.Request().Context(), key); errors.Is(err, operator.ErrNotFound) {
		return variableNotFound(key)
	} else if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// ----- connections

type connectionBody struct {
	ConnectionID string  `json:"connection_id"`
	ConnType     string  `json:"conn_type"`
	Description  *string `json:"description"`
	Host         *string `json:"host"`
	Login        *string `json:"login"`
	Schema       *string `json:"schema"`
	Port         *int    `json:"port"`
	Password     *string `json:"password"`
	Extra        *string `json:"extra"`
}

// redacted is what the admin API shows instead of a stored password.
const redacted = operator.RedactedPassword

func newConnectionBody(c workload.Connection) connectionBody {
	b := connectionBody{ConnectionID: c.ConnID, ConnType: c.ConnType, Host: c.Host, Login: c.Login,
		Schema: c.Schema, Port: c.Port, Extra: c.Extra}
	if c.Password != nil {
		p := redacted
		b.Password = &p
	}
	return b
}

func connectionNotFound(id string) error {
	return &APIError{Status: http.StatusNotFound,
		Detail: fmt.Sprintf("The Connection with connection_id: `%s` was not found", id)}
}

// handleListConnections is GET /api/v2/connections.
func (s *Server) handleListConnections(c echo.Context) error {
	limit, offset, err := page(c)
	if err != nil {
		return err
	}
	cs, err := s.ops.Connections(c.Request().Context())
	if err != nil {
		return err
	}
	lo, hi := window(len(cs), limit, offset)
	out := make([]connectionBody, 0, hi-lo)
	for _, conn := range cs[lo:hi] {
		out = append(out, newConnectionBody(conn))
	}
	return c.JSON(http.StatusOK, map[string]any{"connections": out, "total_entries": len(cs)})
}

// handleAdminGetConnection is GET /api/v2/connections/{connection_id}.
func (s *Server) handleAdminGetConnection(c echo.Context) error {
	id, err := pathParam(c, "connection_id")
	if err != nil {
		return err
	}
	conn, err := s.ops.Connection(c.Request().Context(), id)
	if errors.Is(err, operator.ErrNotFound) {
		return connectionNotFound(id)
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newConnectionBody(*conn))
}

// decodeConnection reads Airflow's ConnectionBody.
func decodeConnection(c echo.Context) (workload.Connection, error) {
	o, err := readObject(c)
	if err != nil {
		return workload.Connection{}, err
	}
	id := o.str("connection_id", true, false)
	typ := o.str("conn_type", true, false)
	o.str("description", false, true)
	conn := workload.Connection{
		Host: o.str("host", false, true), Login: o.str("login", false, true), Schema: o.str("schema", false, true),
		Port: o.integer("port", false, true), Password: o.str("password", false, true), Extra: o.str("extra", false, true),
	}
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return workload.Connection{}, verr
	}
	switch {
	case *id == "" || len(*id) > 200:
		return conn, paramError("body", "connection_id", "string_too_short", "connection_id must be 1 to 200 characters", *id)
	case *typ == "":
		return conn, paramError("body", "conn_type", "string_too_short", "String should have at least 1 character", "")
	case conn.Port != nil && (*conn.Port < 0 || *conn.Port > 65535):
		return conn, paramError("body", "port", "less_than_equal", "Input should be a port number (0-65535)", *conn.Port)
	case conn.Extra != nil && *conn.Extra != "" && !json.Valid([]byte(*conn.Extra)):
		return conn, paramError("body", "extra", "json_invalid", "extra must be a JSON string", *conn.Extra)
	}
	conn.ConnID, conn.ConnType = *id, *typ
	return conn, nil
}

// handleCreateConnection is POST /api/v2/connections: 409 when it exists.
func (s *Server) handleCreateConnection(c echo.Context) error {
	conn, err := decodeConnection(c)
	if err != nil {
		return err
	}
	if err := s.ops.CreateConnection(c.Request().Context(), conn); errors.Is(err, operator.ErrExists) {
		return &APIError{Status: http.StatusConflict,
			Detail: fmt.Sprintf("The Connection with connection_id: `%s` already exists", conn.ConnID)}
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, newConnectionBody(conn))
}

// handlePatchConnection is PATCH /api/v2/connections/{connection_id}. A
// password of "***" (what the API shows) keeps the stored one.
func (s *Server) handlePatchConnection(c echo.Context) error {
	id, err := pathParam(c, "connection_id")
	if err != nil {
		return err
	}
	conn, err := decodeConnection(c)
	if err != nil {
		return err
	}
	if conn.ConnID != id {
		return &APIError{Status: http.StatusBadRequest,
			Detail: "The connection_id in the request body does not match the URL parameter"}
	}
	stored, err := s.ops.UpdateConnection(c.Request().Context(), conn)
	if errors.Is(err, operator.ErrNotFound) {
		return connectionNotFound(id)
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newConnectionBody(*stored))
}

// handleDeleteConnection is DELETE /api/v2/connections/{connection_id}.
func (s *Server) handleDeleteConnection(c echo.Context) error {
	id, err := pathParam(c, "connection_id")
	if err != nil {
		return err
	}
	if err := s.ops.DeleteConnection(c.Request().Context(), id); errors.Is(err, operator.ErrNotFound) {
		return connectionNotFound(id)
	} else if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
