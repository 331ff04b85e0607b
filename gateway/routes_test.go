package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/scopes"
)

// TestRouteTable walks every route Echo has registered and checks it against
// the one policy table, so that no route can be added that silently takes a
// workload token or skips the subject check (Airflow's #66608 regression).
func TestRouteTable(t *testing.T) {
	h := newHarness(t)
	table := map[string]Route{}
	for _, r := range RouteTable() {
		table[r.Method+" "+r.Path] = r
	}
	registered := 0
	for _, r := range h.srv.echo.Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		registered++
		if _, ok := table[r.Method+" "+r.Path]; !ok {
			t.Errorf("%s %s is registered but not in the route table", r.Method, r.Path)
		}
	}
	// A route only older versions serve (versions.go) is not in Echo's
	// own router.
	inHead := 0
	for _, r := range table {
		tmpl, execution := airflowTemplate(r.Path)
		if present, _ := endpointAt(r.Method, tmpl, len(apiVersions)-1); present || !execution {
			inHead++
		}
	}
	if registered != inHead {
		t.Errorf("echo has %d routes, the table %d", registered, inHead)
	}
	for key, r := range table {
		switch {
		case r.Policy != nil && r.Role != "":
			t.Errorf("%s has both a task-token policy and a role", key)
		case r.Policy == nil && r.Role == "":
			if !strings.HasPrefix(r.Path, "/execution/health") && !strings.HasPrefix(r.Path, "/auth/token") &&
				!unversionedPaths[r.Path] && r.Path != "/execution/.well-known/jwks.json" && key != "GET /metrics" {
				t.Errorf("%s takes no token", key)
			}
			continue
		case r.Role != "":
			if !strings.HasPrefix(r.Path, "/api/v2/") && r.Path != "/auth/logout" {
				t.Errorf("%s: REST roles guard only /api/v2 and /auth routes", key)
			}
			if strings.HasPrefix(r.Path, "/api/v2/users") || strings.HasPrefix(r.Path, "/api/v2/components") ||
				strings.HasPrefix(r.Path, "/api/v2/tokens") || strings.HasPrefix(r.Path, "/api/v2/keys") {
				if r.Role != auth.RoleAdmin {
					t.Errorf("%s must require admin, has %s", key, r.Role)
				}
			}
			if r.Method != "GET" && r.Role == auth.RoleViewer && r.Path != "/auth/logout" {
				t.Errorf("%s: a viewer may only read", key)
			}
			continue
		case !strings.HasPrefix(r.Path, "/execution/"):
			t.Errorf("%s: task-token policies guard only /execution routes", key)
		case strings.HasSuffix(r.Path, "/task-instances/:task_instance_id/run"):
			if got := r.Policy.AllowedTypes(); len(got) != 2 || !r.Policy.SubjectIsTaskInstance {
				t.Errorf("%s policy = %+v, want execution+workload and ti:self", key, r.Policy)
			}
			continue
		case strings.HasPrefix(r.Path, "/execution/connection-tests/"):
			// Airflow's connection-test token is a workload token held to
			// its own test ("ct:self").
			if got := r.Policy.AllowedTypes(); len(got) != 1 || got[0] != scopes.Workload ||
				r.Policy.Self != scopes.SelfConnectionTest || r.Policy.Components {
				t.Errorf("%s policy = %+v, want workload and ct:self", key, r.Policy)
			}
			continue
		case strings.HasPrefix(r.Path, "/execution/callbacks/"):
			if r.Policy.Self != scopes.SelfCallback || r.Policy.Components {
				t.Errorf("%s policy = %+v, want cb:self", key, r.Policy)
			}
		}
		for _, typ := range r.Policy.AllowedTypes() {
			if typ == scopes.Callback && !strings.HasSuffix(r.Path, "/callbacks/:callback_id/run") {
				t.Errorf("%s accepts callback tokens", key)
			}
		}
		for _, typ := range r.Policy.AllowedTypes() {
			if typ == scopes.Workload {
				t.Errorf("%s accepts workload tokens", key)
			}
		}
		if strings.Contains(r.Path, "/task-instances/:task_instance_id") && !r.Policy.SubjectIsTaskInstance {
			t.Errorf("%s does not require sub == task_instance_id", key)
		}
		if r.Policy.Components && (r.Method != "GET" && r.Method != "HEAD" && r.Path != "/execution/token/refresh" ||
			strings.Contains(r.Path, "task-instances") || strings.Contains(r.Path, "task-reschedules")) {
			t.Errorf("%s admits component tokens but is not a read of shared data", key)
		}
	}
}

// TestEveryRouteEnforcesItsPolicy calls every route with no token, with a
// workload token and with another task's execution token, and expects the
// refusal its policy names.
func TestEveryRouteEnforcesItsPolicy(t *testing.T) {
	h := newHarness(t)
	id := h.queue("etl", "r", "t", -1)
	other := h.queue("etl", "r", "u", -1)
	wl := h.tokens.mint(t, id, scopes.Workload, time.Hour)
	otherExec := h.tokens.mint(t, other, scopes.Execution, time.Hour)
	exec := h.tokens.mint(t, id, scopes.Execution, time.Hour)
	component := h.tokens.mintClaims(t, &scopes.Claims{Subject: "0190e3e4-0000-7000-8000-00000000c0de",
		Scope: "execution", Extra: map[string]any{scopes.ComponentClaim: "triggerer"}}, time.Hour)
	for _, role := range []auth.Role{auth.RoleViewer, auth.RoleOp, auth.RoleAdmin} {
		h.addUser(string(role)+"-user", role)
	}
	restToken := func(role auth.Role) string {
		return h.rest.mintClaims(t, &scopes.Claims{Subject: string(role) + "-user", Extra: map[string]any{"role": string(role)}}, time.Hour)
	}
	fill := strings.NewReplacer(":task_instance_id", id, ":dag_id", "etl", ":run_id", "r", ":task_id", "t",
		":connection_id", "c", ":dag_run_id", "r", ":username", "nobody", ":id", "x", "*", "k")
	for _, r := range RouteTable() {
		path := fill.Replace(r.Path)
		name := r.Method + " " + r.Path
		t.Run(name, func(t *testing.T) {
			noToken := h.do(r.Method, path, "", "{}")
			if r.Policy == nil && r.Role == "" {
				if noToken.status == 401 || noToken.status == 403 {
					t.Errorf("public route = %d", noToken.status)
				}
				return
			}
			if r.Role != "" {
				if noToken.status != 401 {
					t.Errorf("no token = %d, want 401", noToken.status)
				}
				// A task token is no REST token, whatever it claims.
				if got := h.do(r.Method, path, exec, "{}"); got.status != 401 {
					t.Errorf("execution token = %d, want 401", got.status)
				}
				for _, role := range []auth.Role{auth.RoleViewer, auth.RoleOp, auth.RoleAdmin} {
					got := h.do(r.Method, path, restToken(role), "{}")
					if allowed := role.AtLeast(r.Role); allowed == (got.status == 403) {
						t.Errorf("role %s = %d %s (route needs %s)", role, got.status, got.body, r.Role)
					}
				}
				return
			}
			// A REST token is no task token.
			if got := h.do(r.Method, path, restToken(auth.RoleAdmin), "{}"); got.status != 403 {
				t.Errorf("REST token = %d, want 403", got.status)
			}
			got := h.do(r.Method, path, component, "{}")
			// A route that takes no execution token refuses a component's
			// by its type.
			refused := strings.Contains(got.body, "Component tokens are not allowed") ||
				strings.Contains(got.body, "Token type 'execution' not allowed")
			if r.Policy.Components == refused {
				t.Errorf("component token = %d %s (components allowed: %v)", got.status, got.body, r.Policy.Components)
			}
			if noToken.status != 401 {
				t.Errorf("no token = %d, want 401", noToken.status)
			}
			withWorkload := h.do(r.Method, path, wl, "{}")
			allowsWorkload := false
			for _, typ := range r.Policy.AllowedTypes() {
				allowsWorkload = allowsWorkload || typ == scopes.Workload
			}
			if !allowsWorkload && withWorkload.status != 403 {
				t.Errorf("workload token = %d, want 403", withWorkload.status)
			}
			if allowsWorkload && r.Policy.Self == scopes.SelfConnectionTest {
				// A task's workload token names no connection test.
				if !strings.Contains(withWorkload.body, "Token subject does not match connection test ID") {
					t.Errorf("task's workload token on a connection test = %d %s", withWorkload.status, withWorkload.body)
				}
			} else if allowsWorkload && withWorkload.status == 403 {
				t.Errorf("workload token refused on a route that allows it: %s", withWorkload.body)
			}
			if r.Policy.SubjectIsTaskInstance {
				if got := h.do(r.Method, path, otherExec, "{}"); got.status != 403 ||
					!strings.Contains(got.body, "Token subject does not match task instance ID") {
					t.Errorf("other task's token = %d %s", got.status, got.body)
				}
			}
		})
	}
}
