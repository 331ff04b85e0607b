// Package gateway serves taskgate's two HTTP APIs over one Echo server: the
// Execution API, which task workers, the triggerer and the DAG processor call
// with task tokens, and the operator REST API, which people and scripts call
// with REST tokens that carry a role. The two kinds of token never cross:
// each side validates with its own audience, and each route names either a
// task-token policy or a least role on its line in routes.go.
//
// The gateway decodes and validates requests, asks a pure decision whether a
// token may call a route, applies the workload lifecycle through the store
// interfaces the workload package declares, and turns every error into the
// status and body Airflow clients expect in one place (errors.go). It never
// parses a JWT itself and never touches bbolt.
//
// # Execution API (/execution/…, task and component tokens)
//
//   - exec_auth.go: requireToken, the task-token check: validate, revocation,
//     the auth-failure limit, then scopes.Decide on the route's policy and the
//     phase of the token's try.
//   - exec_task_instances.go: the task-instance lifecycle (/run, /state,
//     /heartbeat, /rtif, /skip-downstream) and reads about a try.
//   - exec_variables.go, exec_xcoms.go: variables, connections and XComs.
//   - exec_dag_runs.go: dag runs and DAGs (trigger, clear, a run's detail
//     and state, counts, the previous run, a DAG and its paused flag).
//   - exec_readcache.go: the cache of variable and connection bodies behind
//     repeated GETs, kept coherent by the one store wrapper writes go through.
//   - exec_renew.go: which due execution tokens reissue renews, and the
//     explicit /execution/token/refresh.
//   - exec_health.go: /execution/health and /execution/health/ping.
//   - versions.go: the Execution API's versions and what each of Airflow's
//     version changes added, as data; versions_serve.go applies it (the
//     version a request names, its routes, its request and response shapes).
//   - openapi.go, apimodels*.go: each version's OpenAPI document, generated
//     from the route table and each route's body types, and /docs.
//   - exec_connection_tests.go, exec_callbacks.go: the routes of a queued
//     connection test's and callback's own tokens ("ct:self", "cb:self").
//   - exec_metrics.go: /execution/metrics, the Task SDK's forwarded metrics.
//   - metrics.go: GET /metrics, the per-route metrics every route is wrapped
//     in at registration, and the label each refusal is counted under.
//
// # Operator REST API (/auth/…, /api/v2/…, REST tokens with roles)
//
//   - rest_auth.go: where a REST token is read (header, ?token= on reads,
//     the _token cookie), requireRole, cookie renewal, login, logout and
//     revocation.
//   - rest_decide.go: decideREST, the one decision about a REST request: jti,
//     role claim, revocation, the user as stored now, the route's least
//     role, then the request's shape and origin.
//   - rest_csrf.go: decideRESTRequest, the shape and origin rules that keep a
//     foreign page from writing with a browser's cookie.
//   - rest_admin*.go: the /api/v2 resources (variables, connections, task
//     instances, workloads, connection tests and callbacks, components,
//     users): HTTP decoding and encoding
//     around the operator package's use cases, which the CLI's offline mode
//     runs too.
//
// # Shared by both
//
// server.go (Config, New, the middleware chain, the in-flight and
// auth-failure limits, the access log), routes.go (the whole surface),
// errors.go (the one error handler), request.go (per-request state, body
// and parameter reading) and validate.go (FastAPI-shaped body validation).
//
// # Adding a route
//
// A new route is one line in routes() in routes.go: an Execution API route
// names a scopes.Policy (token types, "subject is the path's task instance",
// the phases of the try it admits), a REST route the least auth.Role. Its
// handler goes in the exec_ or rest_ file of its resource. A new rule about
// who may act is a case of scopes.Decide or decideREST with a row in its
// table test, never an if in a handler. routes_test.go and whomay_test.go
// then hold the route to its policy, and the README's route table is
// regenerated with go test -run TestREADMETables . -args -update.
package gateway
