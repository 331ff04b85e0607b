package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/operator"
)

// ----- components

type componentBody struct {
	auth.Component
	Token string `json:"token,omitempty"`
}

// handleRegisterComponent is POST /api/v2/components {"kind","name"}: a
// triggerer or DAG processor identity, answered with its execution-scoped
// token (sub = the component's id, plus the component claim).
func (s *Server) handleRegisterComponent(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	kind := o.literal("kind", string(auth.Triggerer), string(auth.DagProcessor))
	name := o.str("name", true, false)
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return verr
	}
	comp, tok, err := s.ops.RegisterComponent(s.actorContext(c), auth.ComponentKind(kind), *name)
	if errors.Is(err, operator.ErrExists) {
		return &APIError{Status: http.StatusConflict, Detail: fmt.Sprintf("A %s named %q is already registered", kind, *name)}
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, componentBody{Component: *comp, Token: tok})
}

// handleListComponents is GET /api/v2/components.
func (s *Server) handleListComponents(c echo.Context) error {
	cs, err := s.ops.Components(c.Request().Context())
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []auth.Component{}
	}
	return c.JSON(http.StatusOK, map[string]any{"components": cs, "total_entries": len(cs)})
}

// handleRemoveComponent is DELETE /api/v2/components/{id}: its tokens are
// no longer renewed and die within one execution-token lifetime.
func (s *Server) handleRemoveComponent(c echo.Context) error {
	if err := s.ops.RemoveComponent(c.Request().Context(), c.Param("id")); errors.Is(err, operator.ErrNotFound) {
		return &APIError{Status: http.StatusNotFound, Detail: "Component not found"}
	} else if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// ----- users

type userBody struct {
	Name      string    `json:"username"`
	Role      auth.Role `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// handleListUsers is GET /api/v2/users.
func (s *Server) handleListUsers(c echo.Context) error {
	us, err := s.ops.Users(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]userBody, 0, len(us))
	for _, u := range us {
		out = append(out, userBody{u.Name, u.Role, u.CreatedAt})
	}
	return c.JSON(http.StatusOK, map[string]any{"users": out, "total_entries": len(out)})
}

// handleAddUser is POST /api/v2/users {"username","password","role"}.
func (s *Server) handleAddUser(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	name := o.str("username", true, false)
	pass := o.str("password", true, false)
	role := o.literal("role", string(auth.RoleAdmin), string(auth.RoleOp), string(auth.RoleViewer))
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return verr
	}
	u, err := s.ops.AddUser(c.Request().Context(), *name, auth.Role(role), *pass)
	if errors.Is(err, operator.ErrExists) {
		return &APIError{Status: http.StatusConflict, Detail: fmt.Sprintf("User %q already exists", *name)}
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, userBody{u.Name, u.Role, u.CreatedAt})
}

// handleRemoveUser is DELETE /api/v2/users/{username}. In the same write,
// the task instances the user queued that no worker has started are moved
// to removed, and the components they registered are removed; their REST
// tokens are refused from then on.
func (s *Server) handleRemoveUser(c echo.Context) error {
	name, err := pathParam(c, "username")
	if err != nil {
		return err
	}
	removed, err := s.ops.RemoveUser(c.Request().Context(), name)
	if errors.Is(err, operator.ErrNotFound) {
		return &APIError{Status: http.StatusNotFound, Detail: fmt.Sprintf("User %q not found", name)}
	} else if err != nil {
		return err
	}
	s.log.Info("user removed", zap.String("removed_user", name),
		zap.Strings("withdrawn_ti_ids", removed.TaskInstances), zap.Strings("removed_component_ids", removed.Components))
	return c.NoContent(http.StatusNoContent)
}

// handleMintDagProcessorSession is POST /api/v2/dag-processor-sessions
// {"bundle_names", "session_id"?, "valid_for"?}: a DAG processor's session
// token, minted as Airflow's provisioning mints it (valid_for in seconds
// or ISO 8601). The same session_id renews the session.
func (s *Server) handleMintDagProcessorSession(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	var r operator.DagProcessorSessionRequest
	r.BundleNames = o.strList("bundle_names", true, false, 1)
	if id := o.str("session_id", false, true); id != nil {
		r.SessionID = *id
	}
	if d := o.duration("valid_for"); d != nil {
		r.ValidFor = *d
	}
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return verr
	}
	sess, err := s.ops.MintDagProcessorSession(s.actorContext(c), r)
	if err != nil {
		return err
	}
	s.log.Info("dag processor session token minted", zap.String("session_id", sess.SessionID),
		zap.Strings("bundle_names", r.BundleNames), zap.String("by", operator.ActorFrom(s.actorContext(c))))
	return c.JSON(http.StatusCreated, sess)
}
