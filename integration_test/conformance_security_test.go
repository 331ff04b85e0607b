package integration_test

import (
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/gateway"
)

// Airflow's tests of the Execution API's app, token checks and renewal
// (airflow-core/tests/unit/api_fastapi/execution_api/: test_app.py,
// test_security.py, test_token_scope_boundaries.py, versions/head/
// test_router.py and test_health.py), against the binary. Where Airflow
// builds a toy app around its security dependencies, the same rule is
// checked on taskgate's real routes.

func TestConformanceHealthAndApp(t *testing.T) {
	dataDir := newDataDir(t)
	srv := startServer(t, dataDir)

	t.Run("test_health.py::test_health", func(t *testing.T) {
		wantJSON(t, send(t, srv.URL, "GET", "/execution/health", "", ""), 200, `{"status":"healthy"}`)
	})

	// routes/test_health_routes.py checks FastAPI's registration of the
	// health routes; what a caller sees of it is both paths answering.
	t.Run("test_health_routes.py::test_health_router_avoids_empty_root_path", func(t *testing.T) {
		mustStatus(t, send(t, srv.URL, "GET", "/execution/health", "", ""), 200)
		mustStatus(t, send(t, srv.URL, "GET", "/execution/health/ping", "", ""), 200)
	})

	// withCID sends GET path with the given correlation-id.
	withCID := func(t *testing.T, path, cid string) *http.Response {
		t.Helper()
		req, err := newRequest("GET", srv.URL+path, "", cid, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	check := func(t *testing.T, path, cid string, status int) {
		t.Helper()
		resp := withCID(t, path, cid)
		if resp.StatusCode != status || resp.Header.Get("correlation-id") != cid {
			t.Errorf("GET %s: %d, correlation-id %q; want %d, %q", path, resp.StatusCode, resp.Header.Get("correlation-id"), status, cid)
		}
	}
	t.Run("test_app.py::TestCorrelationIdMiddleware::test_correlation_id_echoed_in_response_headers", func(t *testing.T) {
		check(t, "/execution/health", "test-correlation-id-12345", 200)
	})
	t.Run("test_app.py::TestCorrelationIdMiddleware::test_correlation_id_in_error_response_content", func(t *testing.T) {
		check(t, "/execution/non-existent-endpoint", "error-test-correlation-id-67890", 404)
	})
	t.Run("test_app.py::TestCorrelationIdMiddleware::test_correlation_id_propagates_through_request_lifecycle", func(t *testing.T) {
		check(t, "/execution/health", "lifecycle-test-correlation-id", 200)
		check(t, "/execution/nonexistent", "lifecycle-test-correlation-id", 404)
	})
	t.Run("test_app.py::TestCorrelationIdMiddleware::test_multiple_requests_with_different_correlation_ids", func(t *testing.T) {
		check(t, "/execution/health", "request-1-correlation-id", 200)
		check(t, "/execution/health", "request-2-correlation-id", 200)
	})
}

func TestConformanceSecurity(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "dag", "run", "task")
	other := queueTask(t, dataDir, "dag", "run", "other")
	srv := startServer(t, dataDir)
	m := newMinter(t, dataDir)
	const workloadRefused = `{"detail":"Token type 'workload' not allowed for this endpoint. Allowed types: execution"}`

	t.Run("test_security.py::TestTokenTypeScopeEnforcement::test_workload_token_accepted_on_opted_in_route", func(t *testing.T) {
		mustStatus(t, send(t, srv.URL, "PATCH", tiPath(q.TIID, "run"), "Bearer "+q.Token,
			host{"h", "airflow", 1}.runPayload(t)), 200)
	})
	t.Run("test_security.py::TestTokenTypeScopeEnforcement::test_workload_token_rejected_on_default_route", func(t *testing.T) {
		wantJSON(t, send(t, srv.URL, "PATCH", tiPath(q.TIID, "state"), "Bearer "+q.Token, successPayload(t)), 403, workloadRefused)
	})
	t.Run("test_security.py::TestTokenTypeScopeEnforcement::test_execution_token_accepted_on_both_routes", func(t *testing.T) {
		tok := m.execution(other.TIID)
		mustStatus(t, send(t, srv.URL, "PATCH", tiPath(other.TIID, "run"), "Bearer "+tok, host{"h", "airflow", 2}.runPayload(t)), 200)
		wantNoContent(t, send(t, srv.URL, "PATCH", tiPath(other.TIID, "state"), "Bearer "+tok, successPayload(t)), 204)
	})

	// q now runs: its tokens may read.
	t.Run("test_security.py::TestTIClaims::test_defaults_scope_and_retains_extra", func(t *testing.T) {
		// No scope claim: an execution token. Its extra claim survives renewal.
		tok := m.hs512(with(m.claims(q.TIID, "", 60*time.Second), "team", "data",
			"iat", time.Now().Unix()-40, "nbf", time.Now().Unix()-40, "exp", time.Now().Unix()+20))
		r := send(t, srv.URL, "GET", variablePath("missing"), "Bearer "+tok, "")
		if r.status != 404 {
			t.Fatalf("%s: want the variable's 404, the token accepted", r)
		}
		renewed := r.header.Get("Refreshed-API-Token")
		if renewed == "" {
			t.Fatalf("%s: no Refreshed-API-Token for a token 20 s from expiry", r)
		}
		if c := m.parse(renewed); c["team"] != "data" || c["sub"] != q.TIID {
			t.Errorf("renewed claims %v: want team=data and the same sub", c)
		}
	})
	// Airflow's case mounts ti:self on a test app; here it is a real
	// ti:self route, the try's own read of its previous successful run.
	t.Run("test_security.py::TestTiSelfScopeEnforcement::test_matching_subject_is_accepted", func(t *testing.T) {
		mustStatus(t, send(t, srv.URL, "GET", tiPath(q.TIID, "previous-successful-dagrun"), "Bearer "+m.execution(q.TIID), ""), 200)
	})
	t.Run("test_security.py::TestTiSelfScopeEnforcement::test_mismatched_subject_is_rejected", func(t *testing.T) {
		wantJSON(t, send(t, srv.URL, "GET", tiPath(q.TIID, "previous-successful-dagrun"), "Bearer "+m.execution(other.TIID), ""),
			403, `{"detail":"Token subject does not match task instance ID"}`)
	})

	// TIClaims.scope is a Literal of the two token types: a token whose
	// scope claim names neither fails the claims model, and _jwt_bearer
	// answers it as any other invalid token.
	t.Run("test_security.py::TestTIClaims::test_invalid_scope_value_rejected", func(t *testing.T) {
		for _, scope := range []any{"admin", "Execution", "token:execution", 1, []string{"execution"}} {
			tok := m.hs512(with(m.claims(q.TIID, "execution", 60*time.Second), "scope", scope))
			r := send(t, srv.URL, "GET", variablePath("missing"), "Bearer "+tok, "")
			wantJSON(t, r, 403, `{"detail":"Invalid auth token"}`)
			if r.header.Get("Refreshed-API-Token") != "" {
				t.Errorf("scope %v: %s: a refused token is renewed", scope, r)
			}
		}
	})

	t.Run("test_router.py::test_expiring_token_is_reissued", func(t *testing.T) {
		for _, tt := range []struct {
			name          string
			age, validity int64
			refreshed     bool
		}{
			{"test_router.py::test_expiring_token_is_reissued[25s-of-60s]", 25, 60, false},
			{"test_router.py::test_expiring_token_is_reissued[30s-of-60s]", 31, 60, true},
			{"test_router.py::test_expiring_token_is_reissued[400s-of-600s]", 400, 600, false},
			{"test_router.py::test_expiring_token_is_reissued[480s-of-600s]", 480, 600, true},
		} {
			t.Run(tt.name, func(t *testing.T) {
				iat := time.Now().Unix() - tt.age
				tok := m.hs512(with(m.claims(q.TIID, "execution", 0), "iat", iat, "nbf", iat, "exp", iat+tt.validity))
				r := send(t, srv.URL, "GET", variablePath("key1"), "Bearer "+tok, "")
				if got := r.header.Get("Refreshed-API-Token") != ""; got != tt.refreshed {
					t.Errorf("%s: refreshed %v, want %v", r, got, tt.refreshed)
				}
			})
		}
	})

	// The token-type boundaries, walked over every Execution API route of
	// the binary: a workload token is refused everywhere but where
	// Airflow's NON_DEFAULT_TOKEN_POLICY lets it in.
	nonDefault := map[string][]string{
		"PATCH /task-instances/{task_instance_id}/run":          {"execution", "workload"},
		"PATCH /connection-tests/{connection_test_id}":          {"workload"},
		"GET /connection-tests/{connection_test_id}/connection": {"workload"},
		"PATCH /callbacks/{callback_id}/run":                    {"callback"},
		"POST /jobs":                                            {"dag_processor_session"},
		"POST /jobs/{job_id}/heartbeat":                         {"dag_processor"},
		"POST /jobs/{job_id}/complete":                          {"dag_processor"},
		"POST /jobs/{job_id}/parse-results":                     {"dag_processor"},
		// A DAG processor's reads while it prepares a bundle (Airflow's
		// ExecutionOrProcessorSecretsToken, less the dag_parse token).
		"GET /variables/{key:path}":        {"dag_processor", "execution"},
		"GET /connections/{connection_id}": {"dag_processor", "execution"},
	}
	routes := map[string][]string{} // Airflow's "METHOD path" → token types
	paths := map[string]string{}    // the same → a path to send
	for _, r := range gateway.RouteTable() {
		if r.Policy == nil || !strings.HasPrefix(r.Path, "/execution/") {
			continue
		}
		var types []string
		for _, ty := range r.Policy.AllowedTypes() {
			types = append(types, string(ty))
		}
		sort.Strings(types)
		var airflow, out []string
		for _, seg := range strings.Split(strings.TrimPrefix(r.Path, "/execution"), "/") {
			switch {
			case seg == "*":
				airflow, out = append(airflow, "{key:path}"), append(out, "k")
			case strings.HasPrefix(seg, ":"):
				airflow = append(airflow, "{"+seg[1:]+"}")
				if seg == ":task_instance_id" {
					out = append(out, q.TIID)
				} else {
					out = append(out, "x")
				}
			default:
				airflow, out = append(airflow, seg), append(out, seg)
			}
		}
		key := r.Method + " " + strings.Join(airflow, "/")
		routes[key] = types
		paths[key] = "/execution" + strings.Join(out, "/")
	}
	t.Run("test_token_scope_boundaries.py::TestTokenScopeBoundaries::test_all_default_routes_are_execution_only", func(t *testing.T) {
		for key, types := range routes {
			if _, ok := nonDefault[key]; ok {
				continue
			}
			if strings.Join(types, ",") != "execution" {
				t.Errorf("%s accepts %v without being declared in NON_DEFAULT_TOKEN_POLICY", key, types)
			}
			method, _, _ := strings.Cut(key, " ")
			// At the newest version, where every route exists.
			r := sendVersion(t, srv.URL, newestAPIVersion, method, paths[key], "Bearer "+other.Token, "{}")
			if method == "HEAD" {
				mustStatus(t, r, 403)
				continue
			}
			wantJSON(t, r, 403, workloadRefused)
		}
	})
	t.Run("test_token_scope_boundaries.py::TestTokenScopeBoundaries::test_non_default_route_still_registered[PATCH /task-instances/{task_instance_id}/run-expected0]", func(t *testing.T) {
		if _, ok := routes["PATCH /task-instances/{task_instance_id}/run"]; !ok {
			t.Errorf("/run is not registered; routes: %v", routes)
		}
	})
	t.Run("test_token_scope_boundaries.py::TestTokenScopeBoundaries::test_non_default_route_matches_policy", func(t *testing.T) {
		for key, want := range nonDefault {
			got, ok := routes[key]
			if !ok {
				continue // another piece of work registers it
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s accepts %v, want %v", key, got, want)
			}
		}
	})
}
