package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// The "who may do what" matrix: every route of the route table, called with
// every kind of token a client may hold, for a task instance in each state a
// token can find its try in. The expectations below are the security
// promise written out on its own, not derived from routes.go: a task token
// acts on its own try while it runs (reads also in the overtime after its
// own final report), the lifecycle routes answer every state of the current
// try, a workload token buys /run and nothing else, a component reads shared
// data (and a DAG processor's open Job reads variables and connections for a
// bundle it was granted), an earlier try's token acts on nothing, REST tokens never reach the
// Execution API and task tokens never the REST API, and a REST role gets
// exactly its routes.

type tokenKind string

const (
	noToken       tokenKind = "no token"
	currentTry    tokenKind = "current try"
	earlierTry    tokenKind = "earlier try"
	workloadToken tokenKind = "workload"
	componentTok  tokenKind = "component"
	viewerTok     tokenKind = "REST viewer"
	opTok         tokenKind = "REST op"
	adminTok      tokenKind = "REST admin"
	removedUser   tokenKind = "removed user"
	revokedREST   tokenKind = "revoked REST"
	// A connection test's token (a workload token whose sub is the test),
	// a callback's single-use token, and the execution token its /run
	// mints (sub: the callback).
	connTestTok  tokenKind = "connection test"
	callbackTok  tokenKind = "callback"
	callbackExec tokenKind = "callback execution"
	// A DAG processor's session token, and the dag_processor token its
	// registration got for the matrix's Job.
	dagSessionTok tokenKind = "dag processor session"
	dagProcTok    tokenKind = "dag processor"
	// The same dag_processor token without the Airflow-Dag-Bundle header
	// (dagProcTok sends its granted bundle), naming a bundle it was not
	// granted, and the token of a Job that completed.
	dagProcNoBundle tokenKind = "dag processor, no bundle header"
	dagProcOther    tokenKind = "dag processor, bundle not granted"
	dagProcClosed   tokenKind = "dag processor, closed Job"
)

// isDagProc: the kinds that carry a dag_processor token.
func isDagProc(kind tokenKind) bool {
	return kind == dagProcTok || kind == dagProcNoBundle || kind == dagProcOther || kind == dagProcClosed
}

// The connection test and the callback the matrix's tokens name.
const (
	matrixConnTest = "0190e3e4-3c2b-7a8e-9d0e-0000000c7e57"
	matrixCallback = "0190e3e4-3c2b-7a8e-9d0e-0000000ca11b"
	// The DAG processor session, and the Job it registers first.
	matrixSession = "0190e3e4-3c2b-7a8e-9d0e-00000000d095"
	matrixJob     = "1"
)

var matrixStates = []workload.State{
	workload.StateQueued, workload.StateRunning, workload.StateDeferred, workload.StateUpForRetry, workload.StateSuccess,
}

// outcome is what a request met: served (it reached its handler, whatever
// the handler answered) or refused with a status and a detail.
type outcome struct {
	served bool
	status int
	detail string
}

func (o outcome) String() string {
	if o.served {
		return "served"
	}
	return fmt.Sprintf("%d %s", o.status, o.detail)
}

var served = outcome{served: true}

func refused(status int, detail string) outcome { return outcome{status: status, detail: detail} }

var (
	missingToken   = refused(401, "Missing auth token")
	invalidToken   = refused(403, "Invalid auth token")
	notRunning     = refused(409, "not_running")
	archivedTry    = refused(410, "not_found")
	notAuthn       = refused(401, "Not authenticated")
	invalidJWT     = refused(401, "Invalid JWT token")
	revokedJWT     = refused(401, "Token has been revoked")
	forbiddenRole  = refused(403, "Forbidden")
	componentRoute = refused(403, "Component tokens are not allowed for this endpoint")
	workloadRoute  = refused(403, "Token type 'workload' not allowed for this endpoint. Allowed types: execution")
	unknownTry     = refused(404, "Task Instance not found")
	tiMismatch     = refused(403, "Token subject does not match task instance ID")
	ctMismatch     = refused(403, "Token subject does not match connection test ID")
	cbMismatch     = refused(403, "Token subject does not match callback ID")
	noBundle       = refused(400, "A dag_processor token must name its Dag bundle in the Airflow-Dag-Bundle header")
	otherBundle    = refused(403, "Token is not granted Dag bundle 'other'")
	jobClosed      = refused(403, "job_closed")
)

// secretReadRoute: the reads of a variable or a connection, which a DAG
// processor's Job also makes (Airflow's ExecutionOrProcessorSecretsToken).
func secretReadRoute(r Route) bool {
	return r.Method == http.MethodGet &&
		(r.Path == "/execution/variables/*" || r.Path == "/execution/connections/:connection_id")
}

// allowedOf is what a type refusal lists on one of the routes that take
// execution tokens.
func allowedOf(r Route) string {
	if secretReadRoute(r) {
		return "dag_processor, execution"
	}
	return "execution"
}

// typeRefused: a known token type the route does not take.
func typeRefused(t, allowed string) outcome {
	return refused(403, "Token type '"+t+"' not allowed for this endpoint. Allowed types: "+allowed)
}

// connectionTestRoute, callbackRunRoute, callbackRoute: the routes of a
// connection test's and a callback's own tokens.
func connectionTestRoute(r Route) bool {
	return strings.HasPrefix(r.Path, "/execution/connection-tests/")
}
func callbackRunRoute(r Route) bool {
	return strings.HasPrefix(r.Path, "/execution/callbacks/") && strings.HasSuffix(r.Path, "/run")
}
func callbackRoute(r Route) bool { return strings.HasPrefix(r.Path, "/execution/callbacks/") }

// expectWorkerRecords is the promise for the routes of connection tests and
// callbacks, and for their tokens everywhere: each reaches its own record's
// routes and nothing else, and no task's token reaches them.
func expectWorkerRecords(r Route, kind tokenKind) (outcome, bool) {
	execTypes := []tokenKind{currentTry, earlierTry, componentTok, callbackExec}
	isExec := slices.Contains(execTypes, kind)
	isWorkload := kind == workloadToken || kind == connTestTok
	switch {
	case connectionTestRoute(r):
		switch {
		case kind == connTestTok:
			return served, true
		case kind == workloadToken:
			return ctMismatch, true
		case isExec:
			return typeRefused("execution", "workload"), true
		case kind == callbackTok:
			return typeRefused("callback", "workload"), true
		}
	case callbackRunRoute(r):
		switch {
		case kind == callbackTok:
			return served, true
		case isExec:
			return typeRefused("execution", "callback"), true
		case isWorkload:
			return typeRefused("workload", "callback"), true
		}
	case callbackRoute(r):
		switch {
		case kind == callbackExec:
			return served, true
		case kind == currentTry || kind == earlierTry:
			return cbMismatch, true
		case kind == componentTok:
			return componentRoute, true
		case isWorkload:
			return workloadRoute, true
		case kind == callbackTok:
			return typeRefused("callback", "execution"), true
		}
	default:
		run := strings.HasSuffix(r.Path, "/task-instances/:task_instance_id/run")
		switch kind {
		case connTestTok:
			if run {
				return tiMismatch, true
			}
			return typeRefused("workload", allowedOf(r)), true
		case callbackTok:
			if run {
				return typeRefused("callback", "execution, workload"), true
			}
			return typeRefused("callback", allowedOf(r)), true
		case callbackExec:
			// An execution token naming no task instance: refused on a
			// task instance's routes by their subject rule, elsewhere as
			// the token of an unknown try.
			if tiSelfPath(r) {
				return tiMismatch, true
			}
			return unknownTry, true
		}
	}
	return outcome{}, false
}

// jobRoute: a DAG processor's Job routes; jobRegisterRoute: the one its
// session token buys.
func jobRoute(r Route) bool         { return strings.HasPrefix(r.Path, "/execution/jobs") }
func jobRegisterRoute(r Route) bool { return r.Path == "/execution/jobs" }

// expectDagProcessor is the promise for the DAG processor's routes and
// tokens: the session token registers and does nothing else, the Job's
// token reaches its Job's routes and nothing else, and no task's,
// component's or worker record's token reaches them.
func expectDagProcessor(r Route, kind tokenKind) (outcome, bool) {
	tokenType := map[tokenKind]string{currentTry: "execution", earlierTry: "execution", componentTok: "execution",
		callbackExec: "execution", workloadToken: "workload", connTestTok: "workload", callbackTok: "callback",
		dagSessionTok: "dag_processor_session", dagProcTok: "dag_processor", dagProcNoBundle: "dag_processor",
		dagProcOther: "dag_processor", dagProcClosed: "dag_processor"}[kind]
	switch {
	case jobRegisterRoute(r):
		if kind == dagSessionTok {
			return served, true
		}
		return typeRefused(tokenType, "dag_processor_session"), true
	case jobRoute(r):
		switch {
		case kind == dagProcClosed && strings.HasSuffix(r.Path, "/complete"):
			return served, true // job:unchecked: completing twice succeeds
		case kind == dagProcClosed:
			return jobClosed, true
		case isDagProc(kind):
			return served, true // the header is not read here
		}
		return typeRefused(tokenType, "dag_processor"), true
	case secretReadRoute(r) && isDagProc(kind):
		// The Job is judged before the header, as Airflow resolves the
		// bundle after the token.
		return map[tokenKind]outcome{dagProcTok: served, dagProcNoBundle: noBundle, dagProcOther: otherBundle,
			dagProcClosed: jobClosed}[kind], true
	case kind == dagSessionTok || isDagProc(kind):
		allowed := allowedOf(r)
		switch {
		case connectionTestRoute(r):
			allowed = "workload"
		case callbackRunRoute(r):
			allowed = "callback"
		case strings.HasSuffix(r.Path, "/task-instances/:task_instance_id/run"):
			allowed = "execution, workload"
		}
		return typeRefused(tokenType, allowed), true
	}
	return outcome{}, false
}

// tiSelfPath: the routes about the path's own task instance (Airflow's
// ti:self): its lifecycle and reads, its human-in-the-loop detail, its
// task state store.
func tiSelfPath(r Route) bool {
	for _, p := range []string{"/execution/task-instances/:task_instance_id", "/execution/hitlDetails/:task_instance_id",
		"/execution/store/ti/:task_instance_id"} {
		if strings.HasPrefix(r.Path, p) {
			return true
		}
	}
	return false
}

// lifecycleRoute: the routes that answer every state of the current try.
func lifecycleRoute(r Route) bool {
	for _, s := range []string{"/run", "/state", "/heartbeat"} {
		if strings.HasPrefix(r.Path, "/execution/task-instances/") && strings.HasSuffix(r.Path, s) {
			return true
		}
	}
	return false
}

// readRoute: reads, which a try's callbacks may still make after its end.
func readRoute(r Route) bool { return r.Method == http.MethodGet || r.Method == http.MethodHead }

// reportRoute: what a task reports about itself besides its state (its
// forwarded metrics), also in the overtime after its own final report.
func reportRoute(r Route) bool { return r.Path == "/execution/metrics" }

// refreshRoute: an explicit renewal, only while the try may be renewed.
func refreshRoute(r Route) bool { return r.Path == "/execution/token/refresh" }

// sharedRead: reads of data shared by every task, which components may make.
func sharedRead(r Route) bool {
	for _, p := range []string{"/execution/variables/", "/execution/connections/", "/execution/xcoms/"} {
		if strings.HasPrefix(r.Path, p) && readRoute(r) {
			return true
		}
	}
	// Dag runs and DAGs: a task or the triggerer waiting on a run.
	if (strings.HasPrefix(r.Path, "/execution/dag-runs/") || strings.HasPrefix(r.Path, "/execution/dags/")) && readRoute(r) {
		return true
	}
	// The asset state store: watchers (the triggerer) read it too.
	if strings.HasPrefix(r.Path, "/execution/store/asset/") && readRoute(r) {
		return true
	}
	return r.Path == "/execution/token/refresh"
}

func executionRoute(r Route) bool { return strings.HasPrefix(r.Path, "/execution/") }

func publicRoute(r Route) bool {
	return strings.HasPrefix(r.Path, "/execution/health") || strings.HasPrefix(r.Path, "/auth/token") ||
		unversionedPaths[r.Path] || r.Path == "/execution/.well-known/jwks.json" || r.Path == "/metrics"
}

// expect is the promise, route by route.
func expect(r Route, kind tokenKind, state workload.State) outcome {
	if publicRoute(r) {
		return served
	}
	if executionRoute(r) {
		switch kind {
		case noToken:
			return missingToken
		case viewerTok, opTok, adminTok, removedUser, revokedREST:
			return invalidToken // another audience
		}
		if o, ok := expectDagProcessor(r, kind); ok {
			return o
		}
		if o, ok := expectWorkerRecords(r, kind); ok {
			return o
		}
		switch kind {
		case earlierTry:
			return archivedTry
		case workloadToken:
			if strings.HasSuffix(r.Path, "/run") {
				if state == workload.StateUpForRetry {
					return archivedTry // archived at once, as Airflow does
				}
				return served
			}
			return typeRefused("workload", allowedOf(r))
		case componentTok:
			if sharedRead(r) {
				return served
			}
			return componentRoute
		}
		// The current try's own token.
		switch {
		case state == workload.StateUpForRetry && readRoute(r):
			return served // within the overtime after its own report
		case state == workload.StateUpForRetry:
			return archivedTry // archived at once, as Airflow does
		case lifecycleRoute(r):
			return served
		case state == workload.StateRunning:
			return served
		case refreshRoute(r) && state == workload.StateQueued:
			return served // an Airflow 3.0 or 3.1 execution token before its /run
		case (readRoute(r) || reportRoute(r)) && (state == workload.StateUpForRetry || state == workload.StateSuccess):
			return served // within the overtime after its own report
		}
		return notRunning
	}
	// The operator REST API.
	var have auth.Role
	switch kind {
	case noToken:
		return notAuthn
	case currentTry, earlierTry, workloadToken, componentTok, removedUser, connTestTok, callbackTok, callbackExec,
		dagSessionTok, dagProcTok, dagProcNoBundle, dagProcOther, dagProcClosed:
		return invalidJWT
	case revokedREST:
		return revokedJWT
	case viewerTok:
		have = auth.RoleViewer
	case opTok:
		have = auth.RoleOp
	case adminTok:
		have = auth.RoleAdmin
	}
	if !have.AtLeast(r.Role) {
		return forbiddenRole
	}
	return served
}

// classify reads what a response says about authorization. A handler's own
// 409 not_running (heartbeat) carries current_state; the policy's does not.
// A HEAD answer has no body: its status and want's decide.
func classify(res response, method string, want outcome) outcome {
	if method == http.MethodHead {
		if res.status == want.status || (want.served && res.status != 401 && res.status != 403 && res.status != 409 && res.status != 410) {
			return want
		}
		return refused(res.status, "(HEAD)")
	}
	var body struct {
		Detail json.RawMessage `json:"detail"`
	}
	_ = json.Unmarshal([]byte(res.body), &body)
	var s string
	var reason struct {
		Reason       string  `json:"reason"`
		Message      string  `json:"message"`
		CurrentState *string `json:"current_state"`
	}
	isString := json.Unmarshal(body.Detail, &s) == nil
	_ = json.Unmarshal(body.Detail, &reason)
	switch {
	case (res.status == 401 || res.status == 403) && isString:
		return refused(res.status, s)
	case res.status == 400 && isString && s == noBundle.detail:
		return noBundle
	case res.status == 403 && reason.Reason == "job_closed":
		return jobClosed
	case res.status == 409 && reason.Reason == "not_running" && reason.CurrentState == nil:
		return notRunning
	case res.status == 410:
		return refused(410, reason.Reason)
	case res.status == 404 && reason.Reason == "not_found" && reason.Message == "Task Instance not found" &&
		want == unknownTry:
		return unknownTry
	}
	return served
}

// matrixFixture is one task instance in one state with its tokens.
type matrixFixture struct {
	id, dag, run, task string
	current, workload  string
}

func (h *harness) fixture(task string, state workload.State) matrixFixture {
	h.t.Helper()
	id := h.queue("matrix", "r", task, -1)
	f := matrixFixture{id: id, dag: "matrix", run: "r", task: task,
		workload: h.tokens.mint(h.t, id, scopes.Workload, time.Hour)}
	if state == workload.StateQueued {
		// Airflow 3.0 and 3.1 workloads carry an execution token.
		f.current = h.tokens.mint(h.t, id, scopes.Execution, time.Hour)
		return f
	}
	f.current = h.start(id)
	path := "/execution/task-instances/" + id + "/state"
	body := map[workload.State]string{
		workload.StateDeferred:   `{"state":"deferred","classpath":"a.B","next_method":"resume","trigger_kwargs":{}}`,
		workload.StateUpForRetry: `{"state":"up_for_retry","end_date":"2026-11-27T10:01:00Z"}`,
		workload.StateSuccess:    `{"state":"success","end_date":"2026-11-27T10:01:00Z"}`,
	}[state]
	if body != "" {
		if r := h.do("PATCH", path, f.current, body); r.status != 204 {
			h.t.Fatalf("%s: %d %s", state, r.status, r.body)
		}
	}
	return f
}

// concrete fills a route template for fixture f.
func (f matrixFixture) concrete(path string) string {
	r := strings.NewReplacer(":task_instance_id", f.id, ":dag_id", f.dag, ":run_id", f.run, ":dag_run_id", f.run,
		":task_id", f.task, ":connection_id", "c", ":connection_test_id", matrixConnTest,
		":callback_id", matrixCallback, ":id", "0190e3e4-3c2b-7a8e-9d0e-00000000beef",
		":username", "nobody", ":job_id", matrixJob, "*", "k")
	return r.Replace(path)
}

// matrixBody is a body every route refuses to act on (422 or 404), so the
// matrix never changes what it reads next.
func matrixBody(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodDelete:
		return ""
	}
	return `{"matrix":true}`
}

func TestWhoMayDoWhat(t *testing.T) {
	h := newHarness(t, withConfig(func(c *Config) { c.TaskOvertime = 20 * time.Second }))
	ctx := context.Background()
	h.addUser("vic", auth.RoleViewer)
	h.addUser("olga", auth.RoleOp)
	h.addUser("ada", auth.RoleAdmin)
	h.addUser("gone", auth.RoleAdmin)
	goneTok := h.login("gone")
	if _, err := h.db.RemoveUser(ctx, "gone", h.clock.Now()); err != nil {
		t.Fatal(err)
	}
	comp := h.do("POST", "/api/v2/components", h.login("ada"), `{"kind":"triggerer","name":"trig"}`)
	var compBody struct{ Token string }
	if err := json.Unmarshal([]byte(comp.body), &compBody); err != nil || compBody.Token == "" {
		t.Fatalf("component: %d %s", comp.status, comp.body)
	}
	// An earlier try: up_for_retry, then queued again and running.
	early := h.fixture("earlier", workload.StateUpForRetry)
	h.start(h.requeue(early.id))

	fixtures := map[workload.State]matrixFixture{}
	for _, st := range matrixStates {
		fixtures[st] = h.fixture("t_"+string(st), st)
	}
	// REST tokens are minted per request: logout revokes the one it gets.
	restToken := func(kind tokenKind) string {
		switch kind {
		case viewerTok:
			return h.login("vic")
		case opTok:
			return h.login("olga")
		case adminTok:
			return h.login("ada")
		case removedUser:
			return goneTok
		case revokedREST:
			tok := h.login("ada")
			if r := h.do("POST", "/auth/logout", tok, ""); r.status != 204 {
				t.Fatalf("logout = %d %s", r.status, r.body)
			}
			return tok
		}
		return ""
	}
	kinds := []tokenKind{noToken, currentTry, earlierTry, workloadToken, componentTok,
		viewerTok, opTok, adminTok, removedUser, revokedREST, connTestTok, callbackTok, callbackExec,
		dagSessionTok, dagProcTok, dagProcNoBundle, dagProcOther, dagProcClosed}
	workerTokens := map[tokenKind]string{
		connTestTok:  h.tokens.mintClaims(t, scopes.ConnectionTestClaims(matrixConnTest), time.Hour),
		callbackTok:  h.tokens.mintClaims(t, scopes.CallbackClaims(matrixCallback), time.Hour),
		callbackExec: h.tokens.mintClaims(t, scopes.CallbackExecutionClaims(matrixCallback), time.Hour),
	}
	workerTokens[dagSessionTok] = h.tokens.mintClaims(t,
		scopes.DagProcessorSessionClaims(matrixSession, []string{"dags"}), time.Hour)
	reg := h.do("POST", "/execution/jobs", workerTokens[dagSessionTok],
		`{"registration_id":"0190e3e4-3c2b-7a8e-9d0e-0000000000a1","hostname":"proc"}`)
	var regBody struct {
		JobID int64  `json:"job_id"`
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(reg.body), &regBody); err != nil || reg.status != 201 || fmt.Sprint(regBody.JobID) != matrixJob {
		t.Fatalf("register the matrix's job: %d %s", reg.status, reg.body)
	}
	workerTokens[dagProcTok] = regBody.Token
	workerTokens[dagProcNoBundle], workerTokens[dagProcOther] = regBody.Token, regBody.Token
	// Another session's Job, completed: its token is closed everywhere.
	closedSession := h.tokens.mintClaims(t,
		scopes.DagProcessorSessionClaims("0190e3e4-3c2b-7a8e-9d0e-00000000d096", []string{"dags"}), time.Hour)
	reg = h.do("POST", "/execution/jobs", closedSession,
		`{"registration_id":"0190e3e4-3c2b-7a8e-9d0e-0000000000a2","hostname":"proc"}`)
	if err := json.Unmarshal([]byte(reg.body), &regBody); err != nil || reg.status != 201 {
		t.Fatalf("register the closed job: %d %s", reg.status, reg.body)
	}
	if r := h.do("POST", fmt.Sprintf("/execution/jobs/%d/complete", regBody.JobID), regBody.Token,
		`{"state":"success"}`); r.status != 204 {
		t.Fatalf("complete the closed job: %d %s", r.status, r.body)
	}
	workerTokens[dagProcClosed] = regBody.Token
	bundleHeader := map[tokenKind][]string{dagProcTok: {scopes.BundleHeader, "dags"},
		dagProcOther: {scopes.BundleHeader, "other"}, dagProcClosed: {scopes.BundleHeader, "dags"}}
	calls := 0
	for _, r := range RouteTable() {
		for _, st := range matrixStates {
			f := fixtures[st]
			for _, kind := range kinds {
				var tok string
				path := f.concrete(r.Path)
				switch kind {
				case currentTry:
					tok = f.current
				case earlierTry:
					tok, path = early.current, early.concrete(r.Path)
				case workloadToken:
					tok = f.workload
				case componentTok:
					tok = compBody.Token
				case connTestTok, callbackTok, callbackExec, dagSessionTok, dagProcTok, dagProcNoBundle, dagProcOther,
					dagProcClosed:
					tok = workerTokens[kind]
				default:
					tok = restToken(kind)
				}
				want := expect(r, kind, st)
				got := classify(h.do(r.Method, path, tok, matrixBody(r.Method), bundleHeader[kind]...), r.Method, want)
				calls++
				if got != want {
					t.Errorf("%s %s, %s token, try %s: %s, want %s", r.Method, r.Path, kind, st, got, want)
				}
			}
		}
	}
	t.Logf("%d routes × %d states × %d token kinds = %d calls", len(RouteTable()), len(matrixStates), len(kinds), calls)
}
