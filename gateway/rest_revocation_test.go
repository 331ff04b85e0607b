package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/reissue"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// TestRevokedTaskAndComponentTokens: a revoked jti — execution, workload or
// component token — is refused on every /execution route like an invalid
// token, and is never renewed.
func TestRevokedTaskAndComponentTokens(t *testing.T) {
	h := newHarness(t)
	h.addUser("ada", auth.RoleAdmin)
	admin := h.login("ada")
	revoke := func(t *testing.T, tok string) {
		t.Helper()
		c, err := h.tokens.Validate(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		if r := h.do("POST", "/api/v2/tokens/revoke", admin, `{"jti":"`+c.ID+`"}`); r.status != 204 {
			t.Fatalf("revoke = %d %s", r.status, r.body)
		}
	}
	const invalid = `{"detail":"Invalid auth token"}`

	t.Run("execution token", func(t *testing.T) {
		id := h.queue("etl", "r", "exec", -1)
		exec := h.start(id)
		h.clock.Advance(9 * time.Minute) // due for renewal
		if r := h.do("GET", "/execution/variables/x", exec, ""); r.header.Get(reissue.Header) == "" {
			t.Fatalf("a due token was not renewed before the revocation: %d", r.status)
		}
		revoke(t, exec)
		for _, rt := range []struct{ method, path, body string }{
			{"GET", "/execution/variables/x", ""},
			{"PUT", "/execution/task-instances/" + id + "/heartbeat", `{"hostname":"worker-a","pid":4242}`},
			{"PATCH", "/execution/task-instances/" + id + "/state", `{"state":"success","end_date":"2026-11-27T10:00:00Z"}`},
			{"POST", "/execution/token/refresh", ""},
		} {
			r := h.do(rt.method, rt.path, exec, rt.body)
			wantJSON(t, r, 403, invalid)
			if r.header.Get(reissue.Header) != "" {
				t.Errorf("%s %s: a revoked token was renewed", rt.method, rt.path)
			}
		}
	})

	t.Run("workload token", func(t *testing.T) {
		id := h.queue("etl", "r", "wl", -1)
		wl := h.tokens.mint(t, id, scopes.Workload, time.Hour)
		revoke(t, wl)
		wantJSON(t, h.do("PATCH", "/execution/task-instances/"+id+"/run", wl, runBody(hostA, pidA)), 403, invalid)
	})

	t.Run("component token", func(t *testing.T) {
		r := h.do("POST", "/api/v2/components", admin, `{"kind":"triggerer","name":"trig"}`)
		var body struct {
			Token        string `json:"token"`
			RegisteredBy string `json:"registered_by"`
		}
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != 201 || body.RegisteredBy != "ada" {
			t.Fatalf("register = %d %s (%v)", r.status, r.body, err)
		}
		revoke(t, body.Token)
		wantJSON(t, h.do("GET", "/execution/variables/x", body.Token, ""), 403, invalid)
		wantJSON(t, h.do("POST", "/execution/token/refresh", body.Token, ""), 403, invalid)
	})

	t.Run("revoked while its request runs: not renewed", func(t *testing.T) {
		id := h.queue("etl", "r", "race", -1)
		exec := h.start(id)
		h.clock.Advance(9 * time.Minute)
		c, _ := h.tokens.Validate(context.Background(), exec)
		if !h.srv.renewable(context.Background(), c) {
			t.Fatal("a live task's token is not renewable")
		}
		revoke(t, exec)
		if h.srv.renewable(context.Background(), c) {
			t.Error("a revoked token is renewable")
		}
	})

	t.Run("an exp already past is refused", func(t *testing.T) {
		past := h.clock.Now().Add(-time.Hour).Format(time.RFC3339)
		r := h.do("POST", "/api/v2/tokens/revoke", admin, `{"jti":"late","exp":"`+past+`"}`)
		if r.status != 422 || !strings.Contains(r.body, "in the past") {
			t.Errorf("revoke with a past exp = %d %s, want 422 saying why", r.status, r.body)
		}
		if revoked, _ := h.db.IsRevoked(context.Background(), "late"); revoked || h.srv.revoked.Revoked("late") {
			t.Error("a refused revocation was recorded")
		}
		// Without exp, the entry outlives the longest token lifetime.
		if r := h.do("POST", "/api/v2/tokens/revoke", admin, `{"jti":"no-exp"}`); r.status != 204 {
			t.Fatalf("revoke = %d %s", r.status, r.body)
		}
		m, _ := h.db.Revocations(context.Background())
		if want := h.clock.Now().Add(24 * time.Hour); !m["no-exp"].Equal(want) {
			t.Errorf("revocation without exp kept until %v, want %v", m["no-exp"], want)
		}
	})
}

// TestRemoveUserEndsWhatTheyStarted: removing a user withdraws the task
// instances they queued that are still queued and removes their
// components; a running task goes on.
func TestRemoveUserEndsWhatTheyStarted(t *testing.T) {
	h := newHarness(t)
	h.addUser("root", auth.RoleAdmin)
	h.addUser("boss", auth.RoleAdmin)
	root, boss := h.login("root"), h.login("boss")
	queue := func(task string) string {
		t.Helper()
		r := h.do("POST", "/api/v2/workloads", boss, `{"dag_id":"etl","run_id":"r","task_id":"`+task+`"}`)
		var et workload.ExecuteTask
		if err := json.Unmarshal([]byte(r.body), &et); err != nil || r.status != 201 {
			t.Fatalf("queue = %d %s", r.status, r.body)
		}
		return et.TI.ID
	}
	waiting, running := queue("waiting"), queue("running")
	exec := h.start(running)
	r := h.do("POST", "/api/v2/components", boss, `{"kind":"triggerer","name":"trig"}`)
	var comp struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(r.body), &comp); err != nil || r.status != 201 {
		t.Fatalf("register = %d %s", r.status, r.body)
	}

	if r := h.do("DELETE", "/api/v2/users/boss", root, ""); r.status != 204 {
		t.Fatalf("remove = %d %s", r.status, r.body)
	}
	wl := h.tokens.mint(t, waiting, scopes.Workload, time.Hour)
	wantJSON(t, h.do("PATCH", "/execution/task-instances/"+waiting+"/run", wl, runBody(hostA, pidA)), 409,
		`{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"removed"}}`)
	if r := h.do("PUT", "/execution/task-instances/"+running+"/heartbeat", exec, `{"hostname":"worker-a","pid":4242}`); r.status != 204 {
		t.Errorf("heartbeat of a running task after its queuer was removed = %d %s", r.status, r.body)
	}
	wantJSON(t, h.do("GET", "/api/v2/components", root, ""), 200, `{"components":[],"total_entries":0}`)
	if r := h.do("POST", "/execution/token/refresh", comp.Token, ""); r.status != 403 {
		t.Errorf("refresh of a removed user's component token = %d", r.status)
	}
	found := false
	for _, e := range h.logs.FilterMessage("user removed").All() {
		m := e.ContextMap()
		found = m["removed_user"] == "boss"
	}
	if !found {
		t.Error("no log line for the removal")
	}
}
