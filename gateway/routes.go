package gateway

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/scopes"
)

// Route policies. Every authenticated route names one of these on its line in
// routes(); a test walks Echo's registered routes against that table.
var (
	// execution: an execution token, any subject.
	execution = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution}}
	// executionSelf: an execution token whose subject is the path's task instance.
	executionSelf = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution}, SubjectIsTaskInstance: true}
	// runSelf: /run alone also takes the workload token it swaps for an
	// execution token.
	runSelf = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution, scopes.Workload}, SubjectIsTaskInstance: true}
	// public: no token (health checks).
	public *scopes.Policy
)

type route struct {
	method  string
	path    string
	policy  *scopes.Policy
	handler echo.HandlerFunc
}

// Route describes one registered route for documentation and tests.
type Route struct {
	Method string
	Path   string
	// Policy is nil for routes that take no token.
	Policy *scopes.Policy
}

// routes is the whole Execution API surface, each route with the token types
// it accepts on the same line.
func (s *Server) routes() []route {
	const ti = "/execution/task-instances/:task_instance_id"
	const xcom = "/execution/xcoms/:dag_id/:run_id/:task_id/*"
	return []route{
		{http.MethodGet, "/execution/health", public, s.handleHealth},
		{http.MethodGet, "/execution/health/ping", public, s.handleHealthPing},

		{http.MethodPatch, ti + "/run", runSelf, s.handleRunTaskInstance},
		{http.MethodPatch, ti + "/state", executionSelf, s.handleUpdateState},
		{http.MethodPut, ti + "/heartbeat", executionSelf, s.handleHeartbeat},
		{http.MethodPut, ti + "/rtif", executionSelf, s.handlePutRenderedFields},
		{http.MethodPatch, ti + "/skip-downstream", executionSelf, s.handleSkipDownstream},
		{http.MethodGet, ti + "/previous-successful-dagrun", executionSelf, s.handleGetPreviousSuccessfulDagRun},
		{http.MethodGet, "/execution/task-reschedules/:task_instance_id/start_date", execution, s.handleGetRescheduleStartDate},

		{http.MethodGet, "/execution/variables/keys", execution, s.handleListVariableKeys},
		{http.MethodGet, "/execution/variables/*", execution, s.handleGetVariable},
		{http.MethodPut, "/execution/variables/*", execution, s.handlePutVariable},
		{http.MethodDelete, "/execution/variables/*", execution, s.handleDeleteVariable},

		{http.MethodGet, "/execution/connections/:connection_id", execution, s.handleGetConnection},

		// GET also serves …/{key}/item/{offset} and …/{key}/slice: keys may
		// contain '/', so the suffix is recognised by the handler.
		{http.MethodGet, xcom, execution, s.handleGetXCom},
		{http.MethodHead, xcom, execution, s.handleHeadXCom},
		{http.MethodPost, xcom, execution, s.handleSetXCom},
		{http.MethodDelete, xcom, execution, s.handleDeleteXCom},
	}
}

// Routes lists every route with its policy, in registration order.
func (s *Server) Routes() []Route { return RouteTable() }

// RouteTable lists every route with its policy, without a server.
func RouteTable() []Route {
	rs := (&Server{}).routes()
	out := make([]Route, len(rs))
	for i, r := range rs {
		out[i] = Route{Method: r.method, Path: r.path, Policy: r.policy}
	}
	return out
}

// RouteTableMarkdown renders the route × allowed-token-types table for the
// README, so the documentation is generated from the table that is enforced.
func RouteTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| Method | Path | Tokens accepted | `sub` must equal `{task_instance_id}` |\n|---|---|---|---|\n")
	for _, r := range RouteTable() {
		tokens, self := "none (public)", ""
		if r.Policy != nil {
			names := make([]string, 0, 2)
			for _, t := range r.Policy.AllowedTypes() {
				names = append(names, string(t))
			}
			tokens = strings.Join(names, ", ")
			if r.Policy.SubjectIsTaskInstance {
				self = "yes"
			}
		}
		path := strings.ReplaceAll(r.Path, "/*", "/{key:path}")
		b.WriteString("| " + r.Method + " | `" + path + "` | " + tokens + " | " + self + " |\n")
	}
	return b.String()
}
