package gateway

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/scopes"
)

// Route policies. Every authenticated route names one of these on its line in
// routes(); a test walks Echo's registered routes against that table.
//
// Besides token types and subjects, a policy names the phases of the token's
// own try it admits (scopes.Phase): a task token acts while its try runs;
// its callbacks may still read for [core] task_success_overtime after the
// try reported its end; the lifecycle routes (/run, /state, /heartbeat)
// answer every phase of the current try, because their 409s are what tell a
// worker to stop; and nothing accepts a token of an archived or unknown try.
// deferred, up_for_reschedule and awaiting_input are phases of a stopped try:
// the task's process has handed over (to the triggerer or a later try) and
// its token only reaches the lifecycle routes.
var (
	// whileRunning: the try runs (writes, and what a task does mid-run).
	whileRunning = scopes.PhasesOf(scopes.PhaseRunning)
	// readable: the try runs, or its callbacks run after its final report.
	readable = scopes.PhasesOf(scopes.PhaseRunning, scopes.PhaseFinishing, scopes.PhaseRetired)
	// lifecycle: every phase of the current try; the lifecycle rules answer.
	lifecycle = scopes.PhasesOf(scopes.PhaseStarting, scopes.PhaseRunning, scopes.PhaseFinishing, scopes.PhaseStopped)

	// execution: an execution token of a running try, any subject (writes
	// of shared data).
	execution = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution}, Phases: whileRunning}
	// executionRead: an execution token of a running or finishing try, or
	// of a component (triggerer, DAG processor): reads of shared data.
	executionRead = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution}, Components: true, Phases: readable}
	// taskRead: reads only tasks make, any subject.
	taskRead = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution}, Phases: readable}
	// executionSelf: an execution token of the path's running try.
	executionSelf = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution}, SubjectIsTaskInstance: true,
		Phases: whileRunning}
	// selfRead: reads about the path's own try.
	selfRead = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution}, SubjectIsTaskInstance: true,
		Phases: readable}
	// selfLifecycle: the path's try in any phase: heartbeat and state answer
	// a stopped try with the conflict that stops its worker.
	selfLifecycle = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution}, SubjectIsTaskInstance: true,
		Phases: lifecycle}
	// refresh: an explicit renewal, by a component or a try that may be
	// renewed (see scopes.Phase.Renewable).
	refresh = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution}, Components: true,
		Phases: scopes.PhasesOf(scopes.PhaseStarting, scopes.PhaseRunning)}
	// runSelf: /run alone also takes the workload token it swaps for an
	// execution token.
	runSelf = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution, scopes.Workload}, SubjectIsTaskInstance: true,
		Phases: lifecycle}
	// public: no token (health checks).
	public *scopes.Policy
)

type route struct {
	method string
	path   string
	// policy guards Execution API routes (task tokens).
	policy *scopes.Policy
	// role guards REST routes (/auth, /api/v2): the least role a REST
	// token must carry. Neither policy nor role: public.
	role    auth.Role
	handler echo.HandlerFunc
}

// Route describes one registered route for documentation and tests.
type Route struct {
	Method string
	Path   string
	// Policy is the task-token policy of an Execution API route.
	Policy *scopes.Policy
	// Role is the least role of a REST route. A route with neither is
	// public.
	Role auth.Role
}

// routes is the whole surface of both APIs, each route with the token types
// or the least role it accepts on the same line.
func (s *Server) routes() []route {
	const ti = "/execution/task-instances/:task_instance_id"
	const xcom = "/execution/xcoms/:dag_id/:run_id/:task_id/*"
	const tis = "/api/v2/dags/:dag_id/dagRuns/:dag_run_id/taskInstances"
	const (
		viewer = auth.RoleViewer
		op     = auth.RoleOp
		admin  = auth.RoleAdmin
	)
	return []route{
		{http.MethodGet, "/execution/health", public, "", s.handleHealth},
		{http.MethodGet, "/execution/health/ping", public, "", s.handleHealthPing},

		{http.MethodPatch, ti + "/run", runSelf, "", s.handleRunTaskInstance},
		{http.MethodPatch, ti + "/state", selfLifecycle, "", s.handleUpdateState},
		{http.MethodPut, ti + "/heartbeat", selfLifecycle, "", s.handleHeartbeat},
		{http.MethodPut, ti + "/rtif", executionSelf, "", s.handlePutRenderedFields},
		{http.MethodPatch, ti + "/skip-downstream", executionSelf, "", s.handleSkipDownstream},
		{http.MethodGet, ti + "/previous-successful-dagrun", selfRead, "", s.handleGetPreviousSuccessfulDagRun},
		{http.MethodGet, "/execution/task-reschedules/:task_instance_id/start_date", taskRead, "", s.handleGetRescheduleStartDate},
		{http.MethodPatch, ti + "/rendered-map-index", executionSelf, "", s.handleRenderedMapIndex},
		{http.MethodGet, "/execution/task-instances/count", taskRead, "", s.handleTICount},
		{http.MethodGet, "/execution/task-instances/states", taskRead, "", s.handleTIStates},
		{http.MethodGet, "/execution/task-instances/breadcrumbs", taskRead, "", s.handleTIBreadcrumbs},
		{http.MethodGet, "/execution/task-instances/previous/:dag_id/:task_id", taskRead, "", s.handleTIPrevious},

		{http.MethodGet, "/execution/variables/keys", executionRead, "", s.handleListVariableKeys},
		{http.MethodGet, "/execution/variables/*", executionRead, "", s.handleGetVariable},
		// Writes also obey [taskgate] task_variable_writes (variableWrites).
		{http.MethodPut, "/execution/variables/*", execution, "", s.variableWrites(s.handlePutVariable)},
		{http.MethodDelete, "/execution/variables/*", execution, "", s.variableWrites(s.handleDeleteVariable)},

		{http.MethodGet, "/execution/connections/:connection_id", executionRead, "", s.handleGetConnection},

		// GET also serves …/{key}/item/{offset} and …/{key}/slice: keys may
		// contain '/', so the suffix is recognised by the handler.
		{http.MethodGet, xcom, executionRead, "", s.handleGetXCom},
		{http.MethodHead, xcom, executionRead, "", s.handleHeadXCom},
		{http.MethodPost, xcom, execution, "", s.handleSetXCom},
		{http.MethodDelete, xcom, execution, "", s.handleDeleteXCom},

		{http.MethodPost, "/execution/token/refresh", refresh, "", s.handleRefreshToken},

		// The operator side: REST tokens with roles.
		{http.MethodPost, "/auth/token", public, "", s.handleLogin(false)},
		{http.MethodPost, "/auth/token/cli", public, "", s.handleLogin(true)},
		{http.MethodPost, "/auth/logout", nil, viewer, s.handleLogout},

		{http.MethodGet, "/api/v2/variables", nil, viewer, s.handleListVariables},
		{http.MethodPost, "/api/v2/variables", nil, op, s.handleCreateVariable},
		{http.MethodGet, "/api/v2/variables/*", nil, viewer, s.handleAdminGetVariable},
		{http.MethodPatch, "/api/v2/variables/*", nil, op, s.handlePatchVariable},
		{http.MethodDelete, "/api/v2/variables/*", nil, op, s.handleAdminDeleteVariable},

		{http.MethodGet, "/api/v2/connections", nil, viewer, s.handleListConnections},
		{http.MethodPost, "/api/v2/connections", nil, op, s.handleCreateConnection},
		{http.MethodGet, "/api/v2/connections/:connection_id", nil, viewer, s.handleAdminGetConnection},
		{http.MethodPatch, "/api/v2/connections/:connection_id", nil, op, s.handlePatchConnection},
		{http.MethodDelete, "/api/v2/connections/:connection_id", nil, op, s.handleDeleteConnection},

		{http.MethodGet, tis, nil, viewer, s.handleListTaskInstances},
		{http.MethodGet, tis + "/:task_id", nil, viewer, s.handleGetTaskInstance},
		{http.MethodPatch, tis + "/:task_id", nil, op, s.handlePatchTaskInstance},
		{http.MethodGet, tis + "/:task_id/xcomEntries/*", nil, viewer, s.handleAdminGetXCom},

		// A workload token is a task's whole access (connection secrets in
		// clear included), more than op may read: queueing is admin's.
		{http.MethodPost, "/api/v2/workloads", nil, admin, s.handleQueueWorkload},

		{http.MethodGet, "/api/v2/components", nil, admin, s.handleListComponents},
		{http.MethodPost, "/api/v2/components", nil, admin, s.handleRegisterComponent},
		{http.MethodDelete, "/api/v2/components/:id", nil, admin, s.handleRemoveComponent},

		{http.MethodGet, "/api/v2/users", nil, admin, s.handleListUsers},
		{http.MethodPost, "/api/v2/users", nil, admin, s.handleAddUser},
		{http.MethodDelete, "/api/v2/users/:username", nil, admin, s.handleRemoveUser},
		{http.MethodPost, "/api/v2/tokens/revoke", nil, admin, s.handleRevokeToken},
	}
}

// RouteTable lists every route with its policy, in registration order. It
// needs no server: the table is the same for every one.
func RouteTable() []Route {
	rs := (&Server{}).routes()
	out := make([]Route, len(rs))
	for i, r := range rs {
		out[i] = Route{Method: r.method, Path: r.path, Policy: r.policy, Role: r.role}
	}
	return out
}

// RouteTableMarkdown renders the route × allowed-token-types table for the
// README, so the documentation is generated from the table that is enforced.
func RouteTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| Method | Path | Tokens accepted | `sub` must equal `{task_instance_id}` | Phases of the token's try |\n|---|---|---|---|---|\n")
	for _, r := range RouteTable() {
		tokens, self, phases := "none (public)", "", ""
		switch {
		case r.Policy != nil:
			names := make([]string, 0, 3)
			for _, t := range r.Policy.AllowedTypes() {
				names = append(names, string(t))
			}
			if r.Policy.Components {
				names = append(names, "component")
			}
			tokens = strings.Join(names, ", ")
			if r.Policy.SubjectIsTaskInstance {
				self = "yes"
			}
			names = names[:0]
			for _, p := range r.Policy.Phases.List() {
				names = append(names, p.String())
			}
			phases = strings.Join(names, ", ")
		case r.Role != "":
			tokens = "REST token, role ≥ " + string(r.Role)
		}
		path := strings.ReplaceAll(r.Path, "/*", "/{key:path}")
		b.WriteString("| " + r.Method + " | `" + path + "` | " + tokens + " | " + self + " | " + phases + " |\n")
	}
	return b.String()
}
