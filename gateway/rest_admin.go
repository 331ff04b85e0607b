package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// The admin API under /api/v2 follows Airflow's public REST API shapes where
// Airflow has them (variables, connections, task instances) and adds
// taskgate's own resources (workloads, components, users, revocations).

// page reads limit/offset the way Airflow's public API does.
func page(c echo.Context) (limit, offset int, err error) {
	if limit, err = queryInt(c, "limit", 50, 0, 1000); err != nil {
		return 0, 0, err
	}
	offset, err = queryInt(c, "offset", 0, 0, 1<<31-1)
	return limit, offset, err
}

// window returns the [offset, offset+limit) part of n items.
func window(n, limit, offset int) (int, int) {
	lo := min(offset, n)
	return lo, min(lo+limit, n)
}

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
	vs, err := s.cfg.Store.ListVariables(c.Request().Context())
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
	v, err := s.cfg.Store.Variable(c.Request().Context(), key)
	if errors.Is(err, workload.ErrNotFound) {
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
	ctx := c.Request().Context()
	if _, err := s.cfg.Store.Variable(ctx, v.Key); err == nil {
		return &APIError{Status: http.StatusConflict, Detail: fmt.Sprintf("The Variable with key: `%s` already exists", v.Key)}
	} else if !errors.Is(err, workload.ErrNotFound) {
		return err
	}
	if err := s.cfg.Store.PutVariable(ctx, v); err != nil {
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
	ctx := c.Request().Context()
	if _, err := s.cfg.Store.Variable(ctx, key); errors.Is(err, workload.ErrNotFound) {
		return variableNotFound(key)
	} else if err != nil {
		return err
	}
	if err := s.cfg.Store.PutVariable(ctx, v); err != nil {
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
	ctx := c.Request().Context()
	if _, err := s.cfg.Store.Variable(ctx, key); errors.Is(err, workload.ErrNotFound) {
		return variableNotFound(key)
	} else if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteVariable(ctx, key); err != nil {
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

// redacted is what the admin API shows instead of a stored password: an
// operator listing connections should not be handed every credential.
const redacted = "***"

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
	cs, err := s.cfg.Store.ListConnections(c.Request().Context())
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
	conn, err := s.cfg.Store.Connection(c.Request().Context(), id)
	if errors.Is(err, workload.ErrNotFound) {
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
	ctx := c.Request().Context()
	if _, err := s.cfg.Store.Connection(ctx, conn.ConnID); err == nil {
		return &APIError{Status: http.StatusConflict,
			Detail: fmt.Sprintf("The Connection with connection_id: `%s` already exists", conn.ConnID)}
	} else if !errors.Is(err, workload.ErrNotFound) {
		return err
	}
	if err := s.cfg.Store.PutConnection(ctx, conn); err != nil {
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
	ctx := c.Request().Context()
	old, err := s.cfg.Store.Connection(ctx, id)
	if errors.Is(err, workload.ErrNotFound) {
		return connectionNotFound(id)
	} else if err != nil {
		return err
	}
	if conn.Password != nil && *conn.Password == redacted {
		conn.Password = old.Password
	}
	if err := s.cfg.Store.PutConnection(ctx, conn); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newConnectionBody(conn))
}

// handleDeleteConnection is DELETE /api/v2/connections/{connection_id}.
func (s *Server) handleDeleteConnection(c echo.Context) error {
	id, err := pathParam(c, "connection_id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := s.cfg.Store.Connection(ctx, id); errors.Is(err, workload.ErrNotFound) {
		return connectionNotFound(id)
	} else if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteConnection(ctx, id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// ----- task instances

type taskInstanceBody struct {
	ID               string         `json:"id"`
	TaskID           string         `json:"task_id"`
	DagID            string         `json:"dag_id"`
	DagRunID         string         `json:"dag_run_id"`
	MapIndex         int            `json:"map_index"`
	TryNumber        int            `json:"try_number"`
	MaxTries         int            `json:"max_tries"`
	State            workload.State `json:"state"`
	Hostname         *string        `json:"hostname"`
	Unixname         *string        `json:"unixname"`
	PID              *int           `json:"pid"`
	Queue            string         `json:"queue"`
	PoolSlots        int            `json:"pool_slots"`
	PriorityWeight   int            `json:"priority_weight"`
	QueuedWhen       *time.Time     `json:"queued_when"`
	StartDate        *time.Time     `json:"start_date"`
	EndDate          *time.Time     `json:"end_date"`
	LastHeartbeatAt  *time.Time     `json:"last_heartbeat_at"`
	RenderedMapIndex *string        `json:"rendered_map_index"`
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func newTaskInstanceBody(ti workload.TaskInstance) taskInstanceBody {
	b := taskInstanceBody{
		ID: ti.ID, TaskID: ti.TaskID, DagID: ti.DagID, DagRunID: ti.RunID, MapIndex: ti.MapIndex,
		TryNumber: ti.TryNumber, MaxTries: ti.MaxTries, State: ti.State, Hostname: optString(ti.Hostname),
		Unixname: optString(ti.Unixname), Queue: ti.Queue, PoolSlots: ti.PoolSlots, PriorityWeight: ti.PriorityWeight,
		QueuedWhen: ti.QueuedAt, StartDate: ti.StartDate, EndDate: ti.EndDate, LastHeartbeatAt: ti.LastHeartbeatAt,
		RenderedMapIndex: ti.RenderedMapIndex,
	}
	if ti.PID != 0 {
		pid := ti.PID
		b.PID = &pid
	}
	return b
}

// tiFilter reads the {dag_id}/{dag_run_id} path ("~" = any, as in Airflow)
// and the state query parameter.
func tiFilter(c echo.Context) (workload.TaskInstanceFilter, error) {
	var f workload.TaskInstanceFilter
	dag, err := pathParam(c, "dag_id")
	if err != nil {
		return f, err
	}
	run, err := pathParam(c, "dag_run_id")
	if err != nil {
		return f, err
	}
	if dag != "~" {
		f.DagID = dag
	}
	if run != "~" {
		f.RunID = run
	}
	f.State = workload.State(c.QueryParam("state"))
	return f, nil
}

// handleListTaskInstances is GET
// /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances.
func (s *Server) handleListTaskInstances(c echo.Context) error {
	f, err := tiFilter(c)
	if err != nil {
		return err
	}
	if f.Limit, f.Offset, err = page(c); err != nil {
		return err
	}
	if f.Limit == 0 {
		return c.JSON(http.StatusOK, map[string]any{"task_instances": []taskInstanceBody{}, "total_entries": 0})
	}
	tis, total, err := s.cfg.Store.TaskInstances(c.Request().Context(), f)
	if err != nil {
		return err
	}
	out := make([]taskInstanceBody, 0, len(tis))
	for _, ti := range tis {
		out = append(out, newTaskInstanceBody(ti))
	}
	return c.JSON(http.StatusOK, map[string]any{"task_instances": out, "total_entries": total})
}

// findTaskInstance resolves …/taskInstances/{task_id}?map_index=N to the
// current try.
func (s *Server) findTaskInstance(c echo.Context) (*workload.TaskInstance, error) {
	f, err := tiFilter(c)
	if err != nil {
		return nil, err
	}
	if f.DagID == "" || f.RunID == "" {
		return nil, &APIError{Status: http.StatusBadRequest, Detail: "dag_id and dag_run_id are required here"}
	}
	if f.TaskID, err = pathParam(c, "task_id"); err != nil {
		return nil, err
	}
	mi, err := queryInt(c, "map_index", -1, -1, 1<<31-1)
	if err != nil {
		return nil, err
	}
	f.MapIndex, f.State = &mi, ""
	tis, _, err := s.cfg.Store.TaskInstances(c.Request().Context(), f)
	if err != nil {
		return nil, err
	}
	if len(tis) == 0 {
		return nil, &APIError{Status: http.StatusNotFound, Detail: fmt.Sprintf(
			"The Task Instance with dag_id: `%s`, run_id: `%s`, task_id: `%s` and map_index: `%d` was not found",
			f.DagID, f.RunID, f.TaskID, mi)}
	}
	return &tis[0], nil
}

// handleGetTaskInstance is GET …/taskInstances/{task_id}.
func (s *Server) handleGetTaskInstance(c echo.Context) error {
	ti, err := s.findTaskInstance(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newTaskInstanceBody(*ti))
}

// handlePatchTaskInstance is PATCH …/taskInstances/{task_id} {"new_state"}:
// an operator marks a task success, failed or skipped. A running task's
// worker learns it on its next heartbeat and stops the task.
func (s *Server) handlePatchTaskInstance(c echo.Context) error {
	ti, err := s.findTaskInstance(c)
	if err != nil {
		return err
	}
	o, err := readObject(c)
	if err != nil {
		return err
	}
	st := o.literal("new_state", string(workload.StateSuccess), string(workload.StateFailed), string(workload.StateSkipped))
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return verr
	}
	now := s.now()
	updated, err := s.cfg.Store.UpdateTaskInstance(c.Request().Context(), ti.ID, func(ti *workload.TaskInstance) error {
		return workload.ForceState(ti, workload.State(st), now)
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newTaskInstanceBody(*updated))
}

// handleAdminGetXCom is GET …/taskInstances/{task_id}/xcomEntries/{key}
// ?map_index=N: an XCom as Airflow's public API shows it.
func (s *Server) handleAdminGetXCom(c echo.Context) error {
	f, err := tiFilter(c)
	if err != nil {
		return err
	}
	task, err := pathParam(c, "task_id")
	if err != nil {
		return err
	}
	key, err := pathParam(c, "*")
	if err != nil {
		return err
	}
	mi, err := queryInt(c, "map_index", -1, -1, 1<<31-1)
	if err != nil {
		return err
	}
	xs, err := s.cfg.Store.XComs(c.Request().Context(), workload.XComQuery{
		DagID: f.DagID, RunID: f.RunID, TaskID: task, Key: key, MapIndex: &mi,
	})
	if err != nil {
		return err
	}
	if len(xs) == 0 {
		return &APIError{Status: http.StatusNotFound, Detail: fmt.Sprintf("XCom entry with key: `%s` not found", key)}
	}
	x := xs[0]
	return c.JSON(http.StatusOK, map[string]any{
		"key": x.Key, "value": valueOrNull(x.Value), "map_index": x.MapIndex, "task_id": x.TaskID,
		"dag_id": x.DagID, "run_id": x.RunID, "timestamp": x.Timestamp,
	})
}

// ----- workloads

// handleQueueWorkload is POST /api/v2/workloads: queue a task instance and
// return its ExecuteTask with a workload token, as a scheduler would.
func (s *Server) handleQueueWorkload(c echo.Context) error {
	o, err := readObject(c)
	if err != nil {
		return err
	}
	var r workload.QueueRequest
	for _, f := range []struct {
		name string
		dst  *string
	}{{"dag_id", &r.DagID}, {"run_id", &r.RunID}, {"task_id", &r.TaskID}} {
		if v := o.str(f.name, true, false); v != nil {
			*f.dst = *v
		}
	}
	r.MapIndex = -1
	for _, f := range []struct {
		name string
		dst  *int
	}{{"map_index", &r.MapIndex}, {"try_number", &r.TryNumber}, {"max_tries", &r.MaxTries}} {
		if v := o.integer(f.name, false, false); v != nil {
			*f.dst = *v
		}
	}
	if v := o.str("dag_rel_path", false, true); v != nil {
		r.DagRelPath = *v
	}
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return verr
	}
	if err := r.Validate(); err != nil {
		return &APIError{Status: http.StatusBadRequest, Detail: err.Error()}
	}
	// Removing this user withdraws the task while it is still queued.
	r.QueuedBy = restClaimsOf(c).Subject
	ti, err := workload.Queue(c.Request().Context(), s.cfg.Store, s.cfg.NewID(), r, s.now())
	if errors.Is(err, workload.ErrAlreadyExists) {
		return &APIError{Status: http.StatusConflict, Detail: "The task instance is already queued or running"}
	} else if err != nil {
		return err
	}
	tok, _, err := s.cfg.Signer.Sign(&scopes.Claims{Subject: ti.ID, Scope: string(scopes.Workload)}, s.cfg.WorkloadTokenLifetime)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, workload.NewExecuteTask(ti, tok))
}

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
	comp, err := auth.NewComponent(auth.ComponentKind(kind), *name, restClaimsOf(c).Subject, s.now())
	if err != nil {
		return &APIError{Status: http.StatusBadRequest, Detail: err.Error()}
	}
	if err := s.cfg.Auth.AddComponent(c.Request().Context(), comp); errors.Is(err, auth.ErrExists) {
		return &APIError{Status: http.StatusConflict, Detail: fmt.Sprintf("A %s named %q is already registered", kind, *name)}
	} else if err != nil {
		return err
	}
	tok, _, err := s.cfg.Signer.Sign(&scopes.Claims{
		Subject: comp.ID, Scope: string(scopes.Execution), Extra: map[string]any{scopes.ComponentClaim: kind},
	}, s.cfg.ExecutionTokenLifetime)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, componentBody{Component: comp, Token: tok})
}

// handleListComponents is GET /api/v2/components.
func (s *Server) handleListComponents(c echo.Context) error {
	cs, err := s.cfg.Auth.Components(c.Request().Context())
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
	id, ok := scopes.CanonicalUUID(c.Param("id"))
	if !ok {
		return &APIError{Status: http.StatusNotFound, Detail: "Component not found"}
	}
	if err := s.cfg.Auth.DeleteComponent(c.Request().Context(), id); errors.Is(err, auth.ErrNotFound) {
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
	us, err := s.cfg.Auth.Users(c.Request().Context())
	if err != nil {
		return err
	}
	sort.Slice(us, func(i, j int) bool { return us[i].Name < us[j].Name })
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
	u, err := auth.NewUser(*name, auth.Role(role), *pass, s.cfg.BcryptCost, s.now())
	if err != nil {
		return &APIError{Status: http.StatusBadRequest, Detail: err.Error()}
	}
	if err := s.cfg.Auth.AddUser(c.Request().Context(), u); errors.Is(err, auth.ErrExists) {
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
	removed, err := s.cfg.Auth.RemoveUser(c.Request().Context(), name, s.now())
	if errors.Is(err, auth.ErrNotFound) {
		return &APIError{Status: http.StatusNotFound, Detail: fmt.Sprintf("User %q not found", name)}
	} else if err != nil {
		return err
	}
	s.log.Info("user removed", zap.String("removed_user", name),
		zap.Strings("withdrawn_ti_ids", removed.TaskInstances), zap.Strings("removed_component_ids", removed.Components))
	return c.NoContent(http.StatusNoContent)
}
