package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/scopes"
)

// TestRouteTable walks every route Echo has registered and checks it against
// the one policy table, so that no route can be added that silently takes a
// workload token or skips the subject check (Airflow's #66608 regression).
func TestRouteTable(t *testing.T) {
	h := newHarness(t)
	table := map[string]Route{}
	for _, r := range h.srv.Routes() {
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
	if registered != len(table) {
		t.Errorf("echo has %d routes, the table %d", registered, len(table))
	}
	for key, r := range table {
		switch {
		case r.Policy == nil:
			if !strings.HasPrefix(r.Path, "/execution/health") {
				t.Errorf("%s takes no token", key)
			}
			continue
		case strings.HasSuffix(r.Path, "/task-instances/:task_instance_id/run"):
			if got := r.Policy.AllowedTypes(); len(got) != 2 || !r.Policy.SubjectIsTaskInstance {
				t.Errorf("%s policy = %+v, want execution+workload and ti:self", key, r.Policy)
			}
			continue
		}
		for _, typ := range r.Policy.AllowedTypes() {
			if typ == scopes.Workload {
				t.Errorf("%s accepts workload tokens", key)
			}
		}
		if strings.Contains(r.Path, "/task-instances/:task_instance_id") && !r.Policy.SubjectIsTaskInstance {
			t.Errorf("%s does not require sub == task_instance_id", key)
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
	fill := strings.NewReplacer(":task_instance_id", id, ":dag_id", "etl", ":run_id", "r", ":task_id", "t",
		":connection_id", "c", "*", "k")
	for _, r := range h.srv.Routes() {
		path := fill.Replace(r.Path)
		name := r.Method + " " + r.Path
		t.Run(name, func(t *testing.T) {
			noToken := h.do(r.Method, path, "", "{}")
			if r.Policy == nil {
				if noToken.status != 200 {
					t.Errorf("public route = %d", noToken.status)
				}
				return
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
			if allowsWorkload && withWorkload.status == 403 {
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
