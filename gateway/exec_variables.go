package gateway

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/workload"
)

// variableKey returns the {variable_key:path} parameter; keys may hold '/'.
// An empty key is a 422 (variableKeyErrors).
func variableKey(c echo.Context) (string, error) {
	k, err := pathParam(c, "*")
	if err != nil {
		return "", err
	}
	if errs := variableKeyErrors(k); errs != nil {
		return "", &ValidationError{errs}
	}
	return k, nil
}

// variableKeyErrors is FastAPI's answer to an empty {variable_key:path}:
// Airflow's routes declare it Path(min_length=1). They declare it twice,
// on the route and on its has_variable_access dependency, and FastAPI
// validates the parameter once for each (the dependency's first), so the
// error is listed twice. A key that is not empty has no errors.
func variableKeyErrors(key string) []FieldError {
	if key != "" {
		return nil
	}
	tooShort := func() FieldError {
		return FieldError{Type: "string_too_short", Loc: []any{"path", "variable_key"},
			Msg: "String should have at least 1 character", Input: "", Ctx: map[string]any{"min_length": 1}}
	}
	return []FieldError{tooShort(), tooShort()}
}

// handleGetVariable is GET /variables/{key}.
func (s *Server) handleGetVariable(c echo.Context) error {
	key, err := variableKey(c)
	if err != nil {
		return err
	}
	team, err := s.variableTeam(c, key)
	if err != nil {
		return err
	}
	return serveCached(c, s.variables, team, key, func() (any, error) {
		if v, ok := s.cfg.EnvSecrets.VariableFor(team, key); ok {
			return struct {
				Key   string  `json:"key"`
				Value *string `json:"value"`
			}{key, &v}, nil
		}
		v, err := s.cfg.Store.Variable(c.Request().Context(), key)
		if errors.Is(err, workload.ErrNotFound) {
			return nil, notFound("Variable with key '" + key + "' not found")
		} else if err != nil {
			return nil, err
		}
		return struct {
			Key   string  `json:"key"`
			Value *string `json:"value"`
		}{v.Key, v.Value}, nil
	})
}

// VariableWrites is which variables a task token may write through the
// Execution API: [taskgate] task_variable_writes.
type VariableWrites string

const (
	// VariableWritesAll lets every task token set and delete every
	// variable, as Airflow does: variables are shared by all tasks.
	VariableWritesAll VariableWrites = "all"
	// VariableWritesNone lets task tokens only read variables, so that a
	// compromised or buggy task cannot change what other tasks read.
	// Operators still write variables through the admin API and the CLI.
	VariableWritesNone VariableWrites = "none"
)

// errVariableWrites answers a task's variable write under
// task_variable_writes = none, in the shape Airflow's access checks use.
var errVariableWrites = &APIError{Status: http.StatusForbidden, Detail: reasonDetail("access_denied",
	"Tasks may not write variables on this server ([taskgate] task_variable_writes = none)")}

// variableWrites guards a variable write route of the Execution API with
// [taskgate] task_variable_writes. It runs after the token check, so a
// request without a valid token still gets its 401/403, and before the body
// is read.
func (s *Server) variableWrites(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.TaskVariableWrites == VariableWritesNone {
			return errVariableWrites
		}
		return next(c)
	}
}

// handlePutVariable is PUT /variables/{key} with {"val", "description"}
// ("value" is accepted for "val", as Airflow's model populates by name).
// The value is required (null is a value). An empty key and a bad body are
// one 422, the key's errors first, as FastAPI collects them; a body that is
// not JSON at all is refused alone, before FastAPI looks at the path.
func (s *Server) handlePutVariable(c echo.Context) error {
	key, err := pathParam(c, "*")
	if err != nil {
		return err
	}
	keyErrs := variableKeyErrors(key)
	// Airflow's has_variable_access is a dependency: it answers before
	// the body is validated, and after the key is (an empty key never
	// reaches it).
	var team string
	if keyErrs == nil {
		if team, err = s.variableTeam(c, key); err != nil {
			return err
		}
	}
	o, err := readObject(c)
	if err != nil {
		var verr *ValidationError
		if keyErrs == nil || !errors.As(err, &verr) || verr.isJSONInvalid() {
			return err
		}
		return &ValidationError{append(keyErrs, verr.Errors...)}
	}
	var val *string
	switch {
	case o.has("val"):
		val = o.str("val", true, true)
	case o.has("value"):
		val = o.str("value", true, true)
	default:
		// Absent under both names: pydantic names the alias.
		o.str("val", true, true)
	}
	desc := o.str("description", false, true)
	o.forbidExtra()
	if errs := append(keyErrs, o.errs...); len(errs) > 0 {
		return &ValidationError{errs}
	}
	if s.cfg.EnvSecrets.HasVariable(key) {
		// As Airflow's Variable.check_for_write_conflict: the write
		// happens, but reads keep answering the environment's value.
		s.log.Warn("variable is defined in the environment, which takes precedence over the database: "+
			"the database value is written, but reads answer the environment's until it is removed from there",
			zap.String("key", key))
	}
	v := workload.Variable{Key: key, Value: val, Description: desc}
	if s.cfg.MultiTeam {
		// Airflow's Variable.set with the task's team: the variable
		// becomes the writer's team's, or no team's. The cache is
		// invalidated before the answer, as cachedStore does.
		err = s.cfg.Teams.PutTeamVariable(c.Request().Context(), v, team)
		s.variables.invalidate(key)
	} else {
		err = s.cfg.Store.PutVariable(c.Request().Context(), v)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"message": "Variable successfully set"})
}

// handleDeleteVariable is DELETE /variables/{key}.
func (s *Server) handleDeleteVariable(c echo.Context) error {
	key, err := variableKey(c)
	if err != nil {
		return err
	}
	team, err := s.variableTeam(c, key)
	if err != nil {
		return err
	}
	if s.cfg.MultiTeam {
		err = s.cfg.Teams.DeleteTeamVariable(c.Request().Context(), key, team)
		s.variables.invalidate(key)
	} else {
		err = s.cfg.Store.DeleteVariable(c.Request().Context(), key)
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// handleListVariableKeys is GET /variables/keys (API version 2026-06-30).
func (s *Server) handleListVariableKeys(c echo.Context) error {
	limit, err := queryInt(c, "limit", 1000, 1, 10000)
	if err != nil {
		return err
	}
	offset, err := queryInt(c, "offset", 0, 0, int(^uint32(0)>>1))
	if err != nil {
		return err
	}
	// Under [core] multi_team a task of a team lists its team's and the
	// unteamed keys: another team's are no more its business than their
	// values.
	team, err := s.requestTeam(c)
	if err != nil {
		return err
	}
	var keys []string
	var total int
	if team != "" {
		keys, total, err = s.cfg.Teams.TeamVariableKeys(c.Request().Context(), team, c.QueryParam("prefix"), limit, offset)
	} else {
		keys, total, err = s.cfg.Store.VariableKeys(c.Request().Context(), c.QueryParam("prefix"), limit, offset)
	}
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []string{}
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": keys, "total_entries": total})
}

// handleGetConnection is GET /connections/{connection_id}.
func (s *Server) handleGetConnection(c echo.Context) error {
	id, err := pathParam(c, "connection_id")
	if err != nil {
		return err
	}
	team, err := s.connectionTeam(c, id)
	if err != nil {
		return err
	}
	return serveCached(c, s.connections, team, id, func() (any, error) {
		// Airflow skips a secrets backend that fails and reads the next;
		// the error names the variable, never its value.
		if conn, err := s.cfg.EnvSecrets.ConnectionFor(team, id); err != nil {
			s.log.Warn("environment connection ignored; reading the database", zap.Error(err))
		} else if conn != nil {
			return conn, nil
		}
		conn, err := s.cfg.Store.Connection(c.Request().Context(), id)
		if errors.Is(err, workload.ErrNotFound) {
			return nil, notFound("Connection with ID " + id + " not found")
		} else if err != nil {
			return nil, err
		}
		return conn, nil
	})
}
