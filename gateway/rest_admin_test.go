package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// componentSignFails signs every token but a component's, as a signer
// whose key became unreadable between two requests would.
type componentSignFails struct{ Signer }

func (s componentSignFails) Sign(base *scopes.Claims, life time.Duration) (string, *scopes.Claims, error) {
	if base.Component() != "" {
		return "", nil, errors.New("sign: key unavailable")
	}
	return s.Signer.Sign(base, life)
}

// TestRegisterComponentUnsignedLeavesNothing: a registration answered
// with an error leaves no component behind, so the name can be registered
// again once signing works.
func TestRegisterComponentUnsignedLeavesNothing(t *testing.T) {
	h := newHarness(t, withConfig(func(c *Config) { c.Signer = componentSignFails{c.Signer} }))
	h.addUser("ada", auth.RoleAdmin)
	tok := h.login("ada")
	r := h.do("POST", "/api/v2/components", tok, `{"kind":"triggerer","name":"trig-1"}`)
	if r.status != 500 {
		t.Errorf("register with a failing signer = %d %s, want 500", r.status, r.body)
	}
	cs, err := h.db.Components(context.Background())
	if err != nil || len(cs) != 0 {
		t.Errorf("components after a failed registration = %+v, %v; want none", cs, err)
	}
	wantJSON(t, h.do("GET", "/api/v2/components", tok, ""), 200, `{"components":[],"total_entries":0}`)
}

// TestRevokeRefusals: the admin API words operator.Revoke's refusals as
// validation errors of the field refused, and records nothing.
func TestRevokeRefusals(t *testing.T) {
	h := newHarness(t)
	h.addUser("ada", auth.RoleAdmin)
	tok := h.login("ada")
	tests := []struct {
		name, body, field, msg string
	}{
		{"exp beyond the purge grace", `{"jti":"abc","exp":"2026-11-27T09:00:00Z"}`, "exp", "in the past"},
		{"blank jti", `{"jti":"  "}`, "jti", "jti must be 1 to 128 characters"},
		{"long jti", `{"jti":"` + strings.Repeat("j", 129) + `"}`, "jti", "jti must be 1 to 128 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do("POST", "/api/v2/tokens/revoke", tok, tt.body)
			var body struct {
				Detail []struct {
					Loc []string `json:"loc"`
					Msg string   `json:"msg"`
				} `json:"detail"`
			}
			if err := json.Unmarshal([]byte(r.body), &body); r.status != 422 || err != nil || len(body.Detail) != 1 ||
				!slices.Equal(body.Detail[0].Loc, []string{"body", tt.field}) || !strings.Contains(body.Detail[0].Msg, tt.msg) {
				t.Errorf("revoke %s = %d %s; want 422 about %s saying %q", tt.body, r.status, r.body, tt.field, tt.msg)
			}
		})
	}
	if got, err := h.db.Revocations(context.Background()); err != nil || len(got) != 0 {
		t.Errorf("revocations after refusals = %v, %v; want none", got, err)
	}
}

// TestTaskInstanceBodyRoundTrip: what the admin API shows of a task
// instance is what its client reads back, through JSON as on the wire.
func TestTaskInstanceBodyRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	rmi := "x"
	for _, tc := range []struct {
		name string
		ti   workload.TaskInstance
	}{
		{"queued", workload.TaskInstance{ID: "0195d0a7-0000-7000-8000-000000000001", DagID: "d", RunID: "r", TaskID: "t",
			MapIndex: -1, TryNumber: 1, MaxTries: 2, State: workload.StateQueued, Queue: "default", PoolSlots: 1,
			PriorityWeight: 3, QueuedAt: &at}},
		{"running on a host", workload.TaskInstance{ID: "0195d0a7-0000-7000-8000-000000000002", DagID: "d", RunID: "r",
			TaskID: "t", MapIndex: 4, TryNumber: 2, State: workload.StateRunning, Hostname: "w1", Unixname: "airflow",
			PID: 42, StartDate: &at, LastHeartbeatAt: &at, RenderedMapIndex: &rmi}},
		{"ended", workload.TaskInstance{ID: "0195d0a7-0000-7000-8000-000000000003", DagID: "d", RunID: "r", TaskID: "t",
			State: workload.StateSuccess, StartDate: &at, EndDate: &at}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := json.Marshal(newTaskInstanceBody(tc.ti))
			if err != nil {
				t.Fatal(err)
			}
			var b TaskInstanceBody
			if err := json.Unmarshal(raw, &b); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.ti, b.TaskInstance()); diff != "" {
				t.Errorf("round trip (-shown +read):\n%s", diff)
			}
		})
	}
}
