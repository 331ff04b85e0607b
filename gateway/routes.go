package gateway

import (
	"net/http"
	"slices"
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
	// connectionTestSelf: a connection test's own token, a workload token
	// whose sub is the path's test ("ct:self"), as Airflow mints it.
	connectionTestSelf = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Workload}, Self: scopes.SelfConnectionTest}
	// callbackRun: a callback's single-use token, on its own /run
	// ("cb:self").
	callbackRun = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Callback}, Self: scopes.SelfCallback}
	// callbackSelf: the execution token a callback's /run minted.
	callbackSelf = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution}, Self: scopes.SelfCallback}
	// taskReport: what a task reports about itself besides its state
	// (forwarded metrics), while it runs or in the overtime after its end,
	// when the Task SDK sends its last batch. A write, so a try archived by
	// its up_for_retry gets Airflow's 410 as for every other write.
	taskReport = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution},
		Phases: scopes.PhasesOf(scopes.PhaseRunning, scopes.PhaseFinishing)}
	// dagProcessorSession: a DAG processor's session token, which buys
	// its Job's registration alone.
	dagProcessorSession = &scopes.Policy{Allowed: []scopes.TokenType{scopes.DagProcessorSession}}
	// dagProcessorJob: the dag_processor token of the path's Job, while
	// that Job is open (Airflow's job_closed check).
	dagProcessorJob = &scopes.Policy{Allowed: []scopes.TokenType{scopes.DagProcessor}, Self: scopes.SelfJob}
	// dagProcessorJobEnd: the same token also once its Job closed
	// ("job:unchecked"): completing twice succeeds.
	dagProcessorJobEnd = &scopes.Policy{Allowed: []scopes.TokenType{scopes.DagProcessor}, Self: scopes.SelfJob,
		JobUnchecked: true}
	// secretRead: a read of a variable or connection, which a DAG
	// processor also makes while it prepares a bundle, with the
	// dag_processor token of its open Job naming a granted bundle in the
	// Airflow-Dag-Bundle header (Airflow's ExecutionOrProcessorSecretsToken
	// and SelectedDagBundle).
	secretRead = &scopes.Policy{Allowed: []scopes.TokenType{scopes.Execution, scopes.DagProcessor}, Components: true,
		Phases: readable, DagBundle: true}
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
		// The public keys that verify taskgate's tokens (asymmetric keys only).
		{http.MethodGet, "/execution/.well-known/jwks.json", public, "", s.handleJWKS},
		// Public as Airflow's are: the versions' OpenAPI documents and a
		// page listing them (openapi.go).
		{http.MethodGet, "/execution/openapi.json", public, "", s.handleOpenAPI},
		{http.MethodGet, "/execution/docs", public, "", s.handleDocs},
		// Prometheus metrics, public like health ([taskgate] metrics_listen
		// moves them to a listener of their own).
		{http.MethodGet, "/metrics", public, "", s.handleMetrics},

		{http.MethodPatch, ti + "/run", runSelf, "", s.handleRunTaskInstance},
		{http.MethodPatch, ti + "/state", selfLifecycle, "", s.handleUpdateState},
		{http.MethodPut, ti + "/heartbeat", selfLifecycle, "", s.handleHeartbeat},
		{http.MethodPut, ti + "/rtif", executionSelf, "", s.handlePutRenderedFields},
		{http.MethodPatch, ti + "/skip-downstream", executionSelf, "", s.handleSkipDownstream},
		{http.MethodGet, ti + "/previous-successful-dagrun", selfRead, "", s.handleGetPreviousSuccessfulDagRun},
		{http.MethodGet, "/execution/task-reschedules/:task_instance_id/start_date", taskRead, "", s.handleGetRescheduleStartDate},
		{http.MethodGet, ti + "/validate-inlets-and-outlets", selfRead, "", s.handleValidateInletsAndOutlets},

		{http.MethodGet, "/execution/assets/by-name", taskRead, "", s.handleGetAssetByName},
		{http.MethodGet, "/execution/assets/by-uri", taskRead, "", s.handleGetAssetByURI},
		{http.MethodGet, "/execution/assets/by-alias", taskRead, "", s.handleGetAssetsByAlias},
		{http.MethodGet, "/execution/asset-events/by-asset", taskRead, "", s.handleGetAssetEventsByAsset},
		{http.MethodGet, "/execution/asset-events/by-asset-alias", taskRead, "", s.handleGetAssetEventsByAlias},

		{http.MethodPatch, ti + "/rendered-map-index", executionSelf, "", s.handleRenderedMapIndex},
		{http.MethodGet, "/execution/task-instances/count", taskRead, "", s.handleTICount},
		{http.MethodGet, "/execution/task-instances/states", taskRead, "", s.handleTIStates},
		{http.MethodGet, "/execution/task-instances/breadcrumbs", taskRead, "", s.handleTIBreadcrumbs},
		{http.MethodGet, "/execution/task-instances/previous/:dag_id/:task_id", taskRead, "", s.handleTIPrevious},

		{http.MethodGet, "/execution/variables/keys", executionRead, "", s.handleListVariableKeys},
		{http.MethodGet, "/execution/variables/*", secretRead, "", s.handleGetVariable},
		// Writes also obey [taskgate] task_variable_writes (variableWrites).
		{http.MethodPut, "/execution/variables/*", execution, "", s.variableWrites(s.handlePutVariable)},
		{http.MethodDelete, "/execution/variables/*", execution, "", s.variableWrites(s.handleDeleteVariable)},

		{http.MethodGet, "/execution/connections/:connection_id", secretRead, "", s.handleGetConnection},

		// GET also serves …/{key}/item/{offset} and …/{key}/slice: keys may
		// contain '/', so the suffix is recognised by the handler.
		{http.MethodGet, xcom, executionRead, "", s.handleGetXCom},
		{http.MethodHead, xcom, executionRead, "", s.handleHeadXCom},
		{http.MethodPost, xcom, execution, "", s.handleSetXCom},
		{http.MethodDelete, xcom, execution, "", s.handleDeleteXCom},

		{http.MethodPost, "/execution/token/refresh", refresh, "", s.handleRefreshToken},

		// A task triggers or clears a dag run (TriggerDagRunOperator); tasks
		// and the triggerer read runs and DAGs while they wait on them.
		{http.MethodPost, dagRunPath, execution, "", s.handleTriggerDagRun},
		{http.MethodGet, dagRunPath, executionRead, "", s.handleGetDagRun},
		{http.MethodPost, dagRunPath + "/clear", execution, "", s.handleClearDagRun},
		{http.MethodGet, dagRunPath + "/state", executionRead, "", s.handleGetDagRunState},
		{http.MethodGet, "/execution/dag-runs/count", executionRead, "", s.handleCountDagRuns},
		{http.MethodGet, "/execution/dag-runs/previous", executionRead, "", s.handleGetPreviousDagRun},
		// Where versions before 2026-04-06 ask for it (versions.go serves it
		// to them alone).
		{http.MethodGet, "/execution/dag-runs/:dag_id/previous", executionRead, "", s.handleGetPreviousDagRunByPath},
		{http.MethodGet, dagPath + "/state", executionRead, "", s.handleGetDagState},
		{http.MethodGet, dagPath, executionRead, "", s.handleGetDag},

		// Human in the loop (ti:self): a task asks while it runs, reads the
		// answer once resumed (and from its callbacks).
		{http.MethodPost, hitlPath, executionSelf, "", s.handleUpsertHITLDetail},
		{http.MethodPatch, hitlPath, executionSelf, "", s.handleUpdateHITLDetail},
		{http.MethodGet, hitlPath, selfRead, "", s.handleGetHITLDetail},

		// The task state store (ti:self): the task's own namespace, shared
		// by its tries. The clear route is the same path without a key.
		{http.MethodGet, taskStoreKeyPath, selfRead, "", s.handleGetTaskStore},
		{http.MethodPut, taskStoreKeyPath, executionSelf, "", s.handlePutTaskStore},
		{http.MethodDelete, taskStoreKeyPath, executionSelf, "", s.handleDeleteTaskStore},
		{http.MethodDelete, taskStorePath, executionSelf, "", s.handleClearTaskStore},

		// The asset state store: any execution token (Airflow's routes
		// have no ti:self). Components (the triggerer's event triggers,
		// Airflow's watchers) read it; writes are a running task's.
		{http.MethodGet, assetStoreByName + storeValueSuffix, executionRead, "", s.handleGetAssetStore(true)},
		{http.MethodPut, assetStoreByName + storeValueSuffix, execution, "", s.handlePutAssetStore(true)},
		{http.MethodDelete, assetStoreByName + storeValueSuffix, execution, "", s.handleDeleteAssetStore(true)},
		{http.MethodDelete, assetStoreByName + storeClearSuffix, execution, "", s.handleClearAssetStore(true)},
		{http.MethodGet, assetStoreByURI + storeValueSuffix, executionRead, "", s.handleGetAssetStore(false)},
		{http.MethodPut, assetStoreByURI + storeValueSuffix, execution, "", s.handlePutAssetStore(false)},
		{http.MethodDelete, assetStoreByURI + storeValueSuffix, execution, "", s.handleDeleteAssetStore(false)},
		{http.MethodDelete, assetStoreByURI + storeClearSuffix, execution, "", s.handleClearAssetStore(false)},

		{http.MethodPatch, "/execution/connection-tests/:connection_test_id", connectionTestSelf, "", s.handlePatchConnectionTest},
		{http.MethodGet, "/execution/connection-tests/:connection_test_id/connection", connectionTestSelf, "", s.handleGetConnectionTestConnection},

		{http.MethodPatch, "/execution/callbacks/:callback_id/run", callbackRun, "", s.handleRunCallback},
		{http.MethodPatch, "/execution/callbacks/:callback_id/state", callbackSelf, "", s.handleCallbackState},

		{http.MethodPost, "/execution/metrics", taskReport, "", s.handleForwardMetrics},

		// A DAG processor's Job (API version 2027-02-28, served at head).
		{http.MethodPost, "/execution/jobs", dagProcessorSession, "", s.handleRegisterJob},
		{http.MethodPost, "/execution/jobs/:job_id/heartbeat", dagProcessorJob, "", s.handleJobHeartbeat},
		{http.MethodPost, "/execution/jobs/:job_id/complete", dagProcessorJobEnd, "", s.handleCompleteJob},
		{http.MethodPost, "/execution/jobs/:job_id/parse-results", dagProcessorJob, "", s.handlePublishParseResult},

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
		// A connection test's token reads only the connection its queuer
		// gave, and saves it only as op may: op's. A callback runs code on
		// a worker, as a workload does: admin's.
		{http.MethodPost, "/api/v2/connection-tests", nil, op, s.handleQueueConnectionTest},
		{http.MethodPost, "/api/v2/callbacks", nil, admin, s.handleQueueCallback},

		{http.MethodGet, "/api/v2/components", nil, admin, s.handleListComponents},
		{http.MethodPost, "/api/v2/components", nil, admin, s.handleRegisterComponent},
		{http.MethodDelete, "/api/v2/components/:id", nil, admin, s.handleRemoveComponent},
		// A DAG processor's session token: it parses DAG code, as a worker
		// runs it: admin's.
		{http.MethodPost, "/api/v2/dag-processor-sessions", nil, admin, s.handleMintDagProcessorSession},

		{http.MethodGet, "/api/v2/users", nil, admin, s.handleListUsers},
		{http.MethodPost, "/api/v2/users", nil, admin, s.handleAddUser},
		{http.MethodDelete, "/api/v2/users/:username", nil, admin, s.handleRemoveUser},
		{http.MethodPost, "/api/v2/tokens/revoke", nil, admin, s.handleRevokeToken},

		{http.MethodGet, "/api/v2/keys", nil, admin, s.handleListKeys},
		{http.MethodPost, "/api/v2/keys/rotate", nil, admin, s.handleRotateKey},
		{http.MethodDelete, "/api/v2/keys/:kid", nil, admin, s.handleRetireKey},
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
			if r.Policy.Self != scopes.SelfNone {
				self = "`{" + r.Policy.SelfParam() + "}` instead"
			}
			names = names[:0]
			for _, p := range r.Policy.Phases.List() {
				names = append(names, p.String())
			}
			phases = strings.Join(names, ", ")
			if r.Policy.Self != scopes.SelfNone {
				phases = "none: the token names no try"
			}
			switch {
			case r.Policy.Self == scopes.SelfJob:
				self = "its `job_id` claim must equal `{job_id}`"
				phases = "none: its Job must be open"
				if r.Policy.JobUnchecked {
					phases = "none: its Job, open or closed"
				}
			case slices.Contains(r.Policy.Allowed, scopes.DagProcessorSession):
				phases = "none: the token names no try"
			case r.Policy.DagBundle:
				phases += "; dag_processor: its Job open, a granted bundle in `" + scopes.BundleHeader + "`"
			}
		case r.Role != "":
			tokens = "REST token, role ≥ " + string(r.Role)
		}
		path := strings.ReplaceAll(r.Path, "/*", "/{key:path}")
		b.WriteString("| " + r.Method + " | `" + path + "` | " + tokens + " | " + self + " | " + phases + " |\n")
	}
	return b.String()
}
