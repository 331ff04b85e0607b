package integration_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/taskgate/taskgate/workload"
)

// A DAG processor's reads of variables and connections (Airflow's
// test_security.py, TestDagProcessorTokenOverHTTP and TestGetSelectedDagBundle,
// read at the commit of test_jobs.py), on both stores. While it prepares a
// bundle the processor reads with the dag_processor token of its open Job,
// naming the bundle it acts for in the Airflow-Dag-Bundle header: a missing
// header is Airflow's 400, a bundle the token was not granted its 403, and a
// closed Job's token its 403 job_closed, judged before the header.
//
// Airflow's TestDagProcessorTokenOverHTTP::test_route_matrix also lets the
// token count a granted bundle's task instances; Airflow's later routes
// (ExecutionOrProcessorSecretsToken) give that read to the parsing attempt's
// dag_parse token alone, which taskgate does not mint, and taskgate follows
// them: the count refuses a dag_processor token, as the "dag-in-other-bundle"
// case already expects.

// typeRefused is the body of a 403 for a token type the route does not take:
// the reads of a variable or a connection also take a DAG processor's token.
func typeRefused(tokenType, method, path string) string {
	allowed := "execution"
	if method == http.MethodGet && path != "/execution/variables/keys" &&
		(strings.HasPrefix(path, "/execution/variables/") || strings.HasPrefix(path, "/execution/connections/")) {
		allowed = "dag_processor, execution"
	}
	return `{"detail":"Token type '` + tokenType + `' not allowed for this endpoint. Allowed types: ` + allowed + `"}`
}

// readFor is a GET as a DAG processor sends it: its bearer token, and the
// bundle it acts for in the Airflow-Dag-Bundle header ("" sends none).
func (e *workersEnv) readFor(path, authz, bundle string) *response {
	e.t.Helper()
	if tok, ok := strings.CutPrefix(authz, "Bearer "); ok {
		collected.addToken("token sent", tok)
	}
	return sendWith(e.t, e.srv.URL, http.MethodGet, path, func(r *http.Request) {
		r.Header.Set("Authorization", authz)
		if bundle != "" {
			r.Header.Set("Airflow-Dag-Bundle", bundle)
		}
	})
}

// processorToken is a token of the session with claims changed: dag_bundles
// bundle_a, job_id the Job's, unless changes say otherwise (a nil value
// drops the claim).
func (e *workersEnv) processorToken(scope string, jobID int64, validFor time.Duration, changes map[string]any) string {
	c := e.m.claims(jobSession, scope, validFor)
	c["dag_bundles"] = []string{"bundle_a"}
	if scope == "dag_processor" {
		c["job_id"] = jobID
	}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return "Bearer " + e.m.hs512(c)
}

func strPtr(s string) *string { return &s }

const (
	noBundleHeader = `{"detail":"A dag_processor token must name its Dag bundle in the Airflow-Dag-Bundle header"}`
	jobClosedBody  = `{"detail":{"reason":"job_closed","message":"The Job this token was issued for has completed or been replaced"}}`
)

func notGranted(bundle string) string {
	return `{"detail":"Token is not granted Dag bundle '` + bundle + `'"}`
}

func TestConformanceDagProcessorReads(t *testing.T) {
	seed := workersSeed{
		jobs:        []workload.Job{jobFixture(nil)},
		variables:   []workload.Variable{{Key: "key1", Value: strPtr("value1")}},
		connections: []workload.Connection{{ConnID: "bundle_conn", ConnType: "http", Host: strPtr("example.com")}},
	}
	const variable = "/execution/variables/key1"
	const connection = "/execution/connections/bundle_conn"
	tests := []struct {
		name string
		seed workersSeed
		run  func(t *testing.T, e *workersEnv)
	}{
		{"test_security.py::TestDagProcessorTokenOverHTTP::test_route_matrix[granted-bundle]", seed, func(t *testing.T, e *workersEnv) {
			tok := e.jobToken(jobSession, e.jobIDs[0])
			wantJSON(t, e.readFor(variable, tok, "bundle_a"), 200, `{"key":"key1","value":"value1"}`)
			r := e.readFor(connection, tok, "bundle_a")
			var conn struct {
				ConnID string `json:"conn_id"`
				Host   string `json:"host"`
			}
			if err := json.Unmarshal(r.body, &conn); err != nil || r.status != 200 || conn.ConnID != "bundle_conn" ||
				conn.Host != "example.com" {
				t.Errorf("connection: %s", r)
			}
			// A missing variable or connection is the route's own 404.
			if r := e.readFor("/execution/variables/missing", tok, "bundle_a"); r.status != 404 || detail(t, r)["reason"] != "not_found" {
				t.Errorf("missing variable: %s", r)
			}
			if r := e.readFor("/execution/connections/missing", tok, "bundle_a"); r.status != 404 || detail(t, r)["reason"] != "not_found" {
				t.Errorf("missing connection: %s", r)
			}
		}},
		{"test_security.py::TestDagProcessorTokenOverHTTP::test_route_matrix[forged-bundle]", seed, func(t *testing.T, e *workersEnv) {
			tok := e.jobToken(jobSession, e.jobIDs[0])
			wantJSON(t, e.readFor(variable, tok, "other"), 403, notGranted("other"))
			wantJSON(t, e.readFor(connection, tok, "other"), 403, notGranted("other"))
			// The session was granted bundle_b, but the Job registered
			// bundle_a alone: its token grants what the Job registered.
			wantJSON(t, e.readFor(variable, tok, "bundle_b"), 403, notGranted("bundle_b"))
		}},
		{"test_security.py::TestDagProcessorTokenOverHTTP::test_route_matrix[no-bundle]", seed, func(t *testing.T, e *workersEnv) {
			tok := e.jobToken(jobSession, e.jobIDs[0])
			wantJSON(t, e.readFor(variable, tok, ""), 400, noBundleHeader)
			wantJSON(t, e.readFor(connection, tok, ""), 400, noBundleHeader)
		}},
		{"test_security.py::TestDagProcessorTokenOverHTTP::test_route_matrix[dag-in-other-bundle]", seed, func(t *testing.T, e *workersEnv) {
			tok := e.jobToken(jobSession, e.jobIDs[0])
			for _, dag := range []string{"other_dag", "granted_dag"} {
				path := "/execution/task-instances/count?dag_id=" + dag
				wantJSON(t, e.readFor(path, tok, "bundle_a"), 403, typeRefused("dag_processor", "GET", path))
			}
		}},
		{"test_security.py::TestDagProcessorTokenOverHTTP::test_route_matrix[unsupported-write]", seed, func(t *testing.T, e *workersEnv) {
			tok := e.jobToken(jobSession, e.jobIDs[0])
			for _, rt := range []struct{ method, path, body string }{
				{"POST", "/execution/xcoms/granted_dag/run/task/key", `"value"`},
				{"PUT", variable, `{"value":"updated"}`},
				{"DELETE", variable, ""},
				// Airflow's later routes list no keys for a processor either.
				{"GET", "/execution/variables/keys", ""},
			} {
				wantJSON(t, e.send(rt.method, rt.path, tok, rt.body), 403, typeRefused("dag_processor", rt.method, rt.path))
			}
		}},
		{"test_security.py::TestDagProcessorTokenOverHTTP::test_route_matrix[task-instance-route]", seed, func(t *testing.T, e *workersEnv) {
			path := "/execution/task-instances/00000000-0000-0000-0000-000000000001/previous-successful-dagrun"
			wantJSON(t, e.send("GET", path, e.jobToken(jobSession, e.jobIDs[0]), ""), 403,
				typeRefused("dag_processor", "GET", path))
		}},
		{"test_security.py::TestDagProcessorTokenOverHTTP::test_invalid_token_is_rejected", seed, func(t *testing.T, e *workersEnv) {
			id := e.jobIDs[0]
			invalid := `{"detail":"Invalid auth token"}`
			forged := e.m.claims(jobSession, "dag_processor", 10*time.Minute)
			forged["dag_bundles"], forged["job_id"] = []string{"bundle_a"}, id
			for name, tt := range map[string]struct{ tok, want string }{
				"no-bundle-grant": {e.processorToken("dag_processor", id, 10*time.Minute,
					map[string]any{"dag_bundles": nil}), invalid},
				"no-job": {e.processorToken("dag_processor", id, 10*time.Minute, map[string]any{"job_id": nil}), invalid},
				"forged": {"Bearer " + e.m.sign(jwt.SigningMethodHS512, []byte("another deployment's secret, 64 bytes long.................."),
					forged), invalid},
				"expired": {e.processorToken("dag_processor", id, -time.Minute, nil), invalid},
				"session-token": {e.processorToken("dag_processor_session", id, 10*time.Minute, nil),
					typeRefused("dag_processor_session", "GET", variable)},
				"wrong-token-type": {e.token(jobSession, "workload"), typeRefused("workload", "GET", variable)},
			} {
				t.Run(name, func(t *testing.T) { wantJSON(t, e.readFor(variable, tt.tok, "bundle_a"), 403, tt.want) })
			}
		}},
		{"test_security.py::TestTIClaims::test_dag_processor_scopes_require_a_bundle_grant", seed, func(t *testing.T, e *workersEnv) {
			for _, bundles := range []any{nil, []string{}, []string{""}} {
				proc := e.processorToken("dag_processor", e.jobIDs[0], 10*time.Minute, map[string]any{"dag_bundles": bundles})
				wantJSON(t, e.readFor(variable, proc, "bundle_a"), 403, `{"detail":"Invalid auth token"}`)
				sess := e.processorToken("dag_processor_session", 0, 10*time.Minute, map[string]any{"dag_bundles": bundles})
				wantJSON(t, e.send("POST", "/execution/jobs", sess,
					`{"registration_id":"`+jobOtherReg+`","hostname":"processor-1"}`), 403, `{"detail":"Invalid auth token"}`)
			}
		}},
		{"test_security.py::TestTIClaims::test_dag_processor_scope_requires_a_job", seed, func(t *testing.T, e *workersEnv) {
			for _, job := range []any{nil, "one", 1.5} {
				tok := e.processorToken("dag_processor", 0, 10*time.Minute, map[string]any{"job_id": job})
				wantJSON(t, e.readFor(variable, tok, "bundle_a"), 403, `{"detail":"Invalid auth token"}`)
			}
		}},
		{"test_security.py::TestDagProcessorTokenOverHTTP::test_expiring_token_is_not_reissued", seed, func(t *testing.T, e *workersEnv) {
			tok := e.processorToken("dag_processor", e.jobIDs[0], 30*time.Second, nil)
			r := e.readFor(variable, tok, "bundle_a")
			if r.status != 200 || r.header.Get("Refreshed-API-Token") != "" {
				t.Errorf("%s: want 200 without a Refreshed-API-Token", r)
			}
		}},
		{"test_security.py::TestGetSelectedDagBundle::test_selected_bundle", seed, func(t *testing.T, e *workersEnv) {
			proc := e.jobToken(jobSession, e.jobIDs[0])
			// A component's execution token ignores the header.
			comp := e.m.claims("00000000-0000-0000-0000-00000000c0de", "execution", 10*time.Minute)
			comp["component"] = "dag-processor"
			exec := "Bearer " + e.m.hs512(comp)
			for name, tt := range map[string]struct {
				tok, bundle, want string
				status            int
			}{
				"execution-token-ignores-header": {exec, "other", `{"key":"key1","value":"value1"}`, 200},
				"granted-bundle":                 {proc, "bundle_a", `{"key":"key1","value":"value1"}`, 200},
				"missing-header":                 {proc, "", noBundleHeader, 400},
				"ungranted-bundle":               {proc, "other", notGranted("other"), 403},
			} {
				t.Run(name, func(t *testing.T) { wantJSON(t, e.readFor(variable, tt.tok, tt.bundle), tt.status, tt.want) })
			}
		}},
		{"test_security.py::TestDagProcessorTokenOverHTTP::test_job_token_lasts_until_its_job_completes", workersSeed{
			variables: seed.variables}, func(t *testing.T, e *workersEnv) {
			id, tok := registered(t, e.register(jobRegistration, ""))
			auth := "Bearer " + tok
			wantJSON(t, e.readFor(variable, auth, "bundle_a"), 200, `{"key":"key1","value":"value1"}`)
			jobURL := fmt.Sprintf("/execution/jobs/%d", id)
			wantJSON(t, e.send("POST", jobURL+"/heartbeat", auth, ""), 200, `{"state":"running"}`)
			mustStatus(t, e.send("POST", jobURL+"/complete", auth, `{"state":"success"}`), 204)
			// Closed: refused before the header is read, with or without it.
			wantJSON(t, e.readFor(variable, auth, "bundle_a"), 403, jobClosedBody)
			wantJSON(t, e.readFor(variable, auth, ""), 403, jobClosedBody)
			wantJSON(t, e.readFor(variable, auth, "other"), 403, jobClosedBody)
			if r := e.send("POST", jobURL+"/heartbeat", auth, ""); r.status != 403 {
				t.Errorf("heartbeat of a completed job: %s", r)
			}
			mustStatus(t, e.send("POST", jobURL+"/complete", auth, `{"state":"success"}`), 204)
			if r := e.register(jobRegistration, ""); r.status != 409 {
				t.Errorf("retired registration: %s", r)
			}
			_, restarted := registered(t, e.register(jobOtherReg, ""))
			wantJSON(t, e.readFor(variable, auth, "bundle_a"), 403, jobClosedBody)
			wantJSON(t, e.readFor(variable, "Bearer "+restarted, "bundle_a"), 200, `{"key":"key1","value":"value1"}`)
		}},
		{"test_security.py::TestDagProcessorTokenOverHTTP::test_replacing_a_stopped_job_ends_its_tokens", workersSeed{
			variables: seed.variables,
			// The session's first Job, whose heartbeat stopped long ago.
			jobs: []workload.Job{jobFixture(func(j *workload.Job) {
				j.LatestHeartbeat = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
				j.BundleNames = []string{"bundle_a"}
			})},
		}, func(t *testing.T, e *workersEnv) {
			first := e.jobToken(jobSession, e.jobIDs[0])
			wantJSON(t, e.readFor(variable, first, "bundle_a"), 200, `{"key":"key1","value":"value1"}`)
			_, second := registered(t, e.register(jobOtherReg, ""))
			wantJSON(t, e.readFor(variable, first, "bundle_a"), 403, jobClosedBody)
			wantJSON(t, e.readFor(variable, "Bearer "+second, "bundle_a"), 200, `{"key":"key1","value":"value1"}`)
			// The replaced Job's registration is retired for good.
			if r := e.register(jobRegistration, ""); r.status != 409 || detail(t, r)["reason"] != "registration_retired" {
				t.Errorf("replaced registration: %s", r)
			}
		}},
		{"test_security.py::TestJWTBearerLogging::test_validation_failure_does_not_log_supplied_credential", seed, func(t *testing.T, e *workersEnv) {
			// The suite's log check fails any test whose server logged a
			// token it was sent (collected, main_test.go).
			for _, cred := range []string{"eyJ.invalid.jwt", "opaque-token-value"} {
				wantJSON(t, e.readFor(variable, "Bearer "+cred, "bundle_a"), 403, `{"detail":"Invalid auth token"}`)
			}
		}},
	}
	for _, backend := range workersBackends {
		t.Run(string(backend), func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					e := newWorkersEnv(t, backend, tt.seed)
					tt.run(t, e)
				})
			}
		})
	}
}

// TestDagProcessorReadsAnUnknownBundle: a bundle the token grants is read for
// whether or not Airflow's dag_bundle table knows it, as Airflow checks the
// header against the token's claim alone.
func TestDagProcessorReadsAnUnknownBundle(t *testing.T) {
	for _, backend := range workersBackends {
		t.Run(string(backend), func(t *testing.T) {
			e := newWorkersEnv(t, backend, workersSeed{jobs: []workload.Job{jobFixture(nil)},
				variables: []workload.Variable{{Key: "key1", Value: strPtr("value1")}}})
			tok := e.processorToken("dag_processor", e.jobIDs[0], 10*time.Minute,
				map[string]any{"dag_bundles": []string{"never_parsed"}})
			wantJSON(t, e.readFor("/execution/variables/key1", tok, "never_parsed"), 200, `{"key":"key1","value":"value1"}`)
		})
	}
}
