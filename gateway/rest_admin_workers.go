package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/workload"
)

// ----- connection tests and callbacks, queued for workers

// handleQueueConnectionTest is POST /api/v2/connection-tests: queue a test
// of the connection in the body and return its TestConnection workload with
// the test's token. With commit_on_success the connection is saved when the
// worker reports success.
func (s *Server) handleQueueConnectionTest(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	var r workload.ConnectionTestRequest
	if v := o.str("connection_id", true, false); v != nil {
		r.Connection.ConnID = *v
	}
	if v := o.str("conn_type", true, false); v != nil {
		r.Connection.ConnType = *v
	}
	r.Connection.Host = o.str("host", false, true)
	r.Connection.Schema = o.str("schema", false, true)
	r.Connection.Login = o.str("login", false, true)
	r.Connection.Password = o.str("password", false, true)
	r.Connection.Port = o.integer("port", false, true)
	r.Connection.Extra = o.str("extra", false, true)
	if v, ok := o.get("commit_on_success", false); ok {
		if err := json.Unmarshal(v, &r.CommitOnSuccess); err != nil || (string(v) != "true" && string(v) != "false") {
			o.fail("commit_on_success", "bool_type", "Input should be a valid boolean", rawInput(v))
		}
	}
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return verr
	}
	w, err := s.ops.QueueConnectionTest(s.actorContext(c), r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, w)
}

// handleQueueCallback is POST /api/v2/callbacks: queue a callback (an
// import path and its keyword arguments) and return its ExecuteCallback
// workload with the callback's single-use token.
func (s *Server) handleQueueCallback(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	var r workload.CallbackRequest
	if v := o.str("path", true, false); v != nil {
		r.Path = *v
	}
	r.Kwargs = o.rawField("kwargs", false, "{")
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return verr
	}
	w, err := s.ops.QueueCallback(s.actorContext(c), r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, w)
}
