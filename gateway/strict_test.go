package gateway

import (
	"context"
	"errors"
	"testing"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/workload"
)

// TestTaskVariableWrites: under [taskgate] task_variable_writes = none a
// task token still reads variables but neither sets nor deletes one, and the
// refusal comes after authentication, before the body is looked at; the
// default (all) writes as Airflow does. Operators write either way.
func TestTaskVariableWrites(t *testing.T) {
	const denied = `{"detail":{"reason":"access_denied","message":"Tasks may not write variables on this server ([taskgate] task_variable_writes = none)"}}`
	for _, tc := range []struct {
		name   string
		mode   VariableWrites
		method string
		body   string
		status int
		want   string // the body, when it is fixed
	}{
		{"default: a task sets a variable", "", "PUT", `{"val":"new"}`, 201, `{"message":"Variable successfully set"}`},
		{"all: a task sets a variable", VariableWritesAll, "PUT", `{"val":"new"}`, 201, `{"message":"Variable successfully set"}`},
		{"all: a task deletes a variable", VariableWritesAll, "DELETE", "", 204, ""},
		{"all: a task reads a variable", VariableWritesAll, "GET", "", 200, `{"key":"shared","value":"old"}`},
		{"none: a task may not set a variable", VariableWritesNone, "PUT", `{"val":"new"}`, 403, denied},
		{"none: refused before the body is validated", VariableWritesNone, "PUT", `{"bogus":1}`, 403, denied},
		{"none: a task may not delete a variable", VariableWritesNone, "DELETE", "", 403, denied},
		{"none: a task still reads a variable", VariableWritesNone, "GET", "", 200, `{"key":"shared","value":"old"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, withConfig(func(c *Config) { c.TaskVariableWrites = tc.mode }))
			old := "old"
			if err := h.db.PutVariable(context.Background(), workload.Variable{Key: "shared", Value: &old}); err != nil {
				t.Fatal(err)
			}
			tok := h.start(h.queue("vars", "run", "writer", -1))
			r := h.do(tc.method, "/execution/variables/shared", tok, tc.body)
			if tc.want != "" {
				wantJSON(t, r, tc.status, tc.want)
			} else if r.status != tc.status {
				t.Errorf("status = %d, want %d (body %s)", r.status, tc.status, r.body)
			}
			v, err := h.db.Variable(context.Background(), "shared")
			changed := errors.Is(err, workload.ErrNotFound) || (err == nil && *v.Value != old)
			if err != nil && !errors.Is(err, workload.ErrNotFound) {
				t.Fatal(err)
			}
			if wantChange := tc.status < 300 && tc.method != "GET"; changed != wantChange {
				t.Errorf("variable changed = %v, want %v", changed, wantChange)
			}
			// No token at all is still 401, whatever the mode.
			if r := h.do(tc.method, "/execution/variables/shared", "", tc.body); r.status != 401 {
				t.Errorf("without a token: %d %s, want 401", r.status, r.body)
			}
		})
	}
	t.Run("none: operators still write", func(t *testing.T) {
		h := newHarness(t, withConfig(func(c *Config) { c.TaskVariableWrites = VariableWritesNone }))
		h.addUser("op", auth.RoleOp)
		tok := h.login("op")
		wantJSON(t, h.do("POST", "/api/v2/variables", tok, `{"key":"k","value":"v"}`), 201,
			`{"key":"k","value":"v","description":null,"is_encrypted":false}`)
	})
	t.Run("unknown mode fails construction", func(t *testing.T) {
		var cfg Config
		newHarness(t, withConfig(func(c *Config) { cfg = *c }))
		cfg.TaskVariableWrites = "some"
		if _, err := New(cfg); err == nil {
			t.Fatal("New accepted task_variable_writes = some")
		}
	})
}
