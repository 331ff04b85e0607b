package scopes

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestClaimsConstructors: each token kind's claims read back as that kind.
func TestClaimsConstructors(t *testing.T) {
	type view struct {
		Subject, Scope string
		Type           TokenType
		Component      string
		Extra          map[string]any
	}
	tests := []struct {
		name   string
		claims *Claims
		want   view
	}{
		{"workload", WorkloadClaims(tiA), view{Subject: tiA, Scope: "workload", Type: Workload}},
		{"execution", ExecutionClaims(tiA), view{Subject: tiA, Scope: "execution", Type: Execution}},
		{"component", ComponentClaims(tiB, "triggerer"), view{Subject: tiB, Scope: "execution", Type: Execution,
			Component: "triggerer", Extra: map[string]any{"component": "triggerer"}}},
		{"connection test", ConnectionTestClaims(tiB), view{Subject: tiB, Scope: "workload", Type: Workload}},
		{"callback", CallbackClaims(tiB), view{Subject: tiB, Scope: "callback", Type: Callback}},
		{"callback execution", CallbackExecutionClaims(tiB), view{Subject: tiB, Scope: "execution", Type: Execution}},
		{"rest", RESTClaims("ada", "admin", "g1"), view{Subject: "ada", Type: Execution,
			Extra: map[string]any{"role": "admin", "user_gen": "g1"}}},
		{"rest without generation", RESTClaims("ada", "viewer", ""), view{Subject: "ada", Type: Execution,
			Extra: map[string]any{"role": "viewer"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.claims
			got := view{Subject: c.Subject, Scope: c.Scope, Type: c.Type(), Component: c.Component(), Extra: c.Extra}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
		})
	}
}
