package integration_test

import (
	"encoding/json"
	"testing"
)

// TestPostgresHITL runs Human in the loop on Airflow's database: the
// hitl_detail row a request writes (plain json columns, as json.dumps
// writes them), the response, and an awaiting_input report that finds the
// request answered and resumes the task instead of parking it.
func TestPostgresHITL(t *testing.T) {
	d := newPGDeployment(t)
	r := d.insertDagRun("hitl_dag", "manual__2026-12-01T00:00:00+00:00")
	m := d.minter(t)
	ask := d.insertQueuedTI(r, "ask", 1, 0)
	park := d.insertQueuedTI(r, "park", 1, 0)
	srv := d.startReplica(t)
	w := newWorker(t, srv.URL, startedToken(t, srv.URL, ask.q(m)))
	wp := newWorker(t, srv.URL, startedToken(t, srv.URL, park.q(m)))

	body := mustJSON(t, map[string]any{"ti_id": ask.id, "subject": "This is subject", "body": "this is body",
		"options": []string{"Approve", "Reject"}, "defaults": []string{"Approve"}, "params": map[string]any{"input_1": 1},
		"assigned_users": []map[string]string{{"id": "u1", "name": "Ursula"}}})
	wantJSON(t, w.do("POST", hitlPath(ask.id), body), 201, mustJSON(t, map[string]any{"ti_id": ask.id,
		"subject": "This is subject", "body": "this is body", "options": []string{"Approve", "Reject"},
		"defaults": []string{"Approve"}, "multiple": false, "params": map[string]any{"input_1": 1},
		"assigned_users": []map[string]string{{"id": "u1", "name": "Ursula"}}}))
	var options, defaults, params, assignees, paramsInput string
	var multiple bool
	var chosen *string
	d.queryRow(`SELECT options::text, defaults::text, params::text, assignees::text, multiple, chosen_options::text,
		params_input::text FROM hitl_detail WHERE ti_id = $1::uuid`, []any{ask.id},
		&options, &defaults, &params, &assignees, &multiple, &chosen, &paramsInput)
	if options != `["Approve", "Reject"]` || defaults != `["Approve"]` || params != `{"input_1": 1}` ||
		assignees != `[{"id": "u1", "name": "Ursula"}]` || multiple || chosen != nil || paramsInput != `{}` {
		t.Errorf("hitl_detail row: options %s defaults %s params %s assignees %s multiple %v chosen %v params_input %s",
			options, defaults, params, assignees, multiple, chosen, paramsInput)
	}

	resp := w.do("PATCH", hitlPath(ask.id), mustJSON(t, map[string]any{"ti_id": ask.id,
		"chosen_options": []string{"Reject"}, "params_input": map[string]any{"input_1": 2}}))
	mustStatus(t, resp, 200)
	wantJSON(t, w.do("GET", hitlPath(ask.id), ""), 200, string(resp.body))
	var received bool
	d.queryRow(`SELECT responded_at IS NOT NULL, chosen_options::text, params_input::text FROM hitl_detail
		WHERE ti_id = $1::uuid`, []any{ask.id}, &received, &chosen, &paramsInput)
	if !received || chosen == nil || *chosen != `["Reject"]` || paramsInput != `{"input_1": 2}` {
		t.Errorf("answered row: responded %v chosen %v params_input %s", received, chosen, paramsInput)
	}

	// Answered before the worker reports awaiting_input: resumed, scheduled.
	wantNoContent(t, w.do("PATCH", tiPath(ask.id, "state"),
		`{"state":"awaiting_input","next_method":"execute_complete","next_kwargs":{"a":1},"timeout":60}`), 204)
	var state, nextMethod, nextKwargs string
	d.queryRow(`SELECT state, next_method, next_kwargs::text FROM task_instance WHERE id = $1::uuid`, []any{ask.id},
		&state, &nextMethod, &nextKwargs)
	var kw map[string]any
	if err := json.Unmarshal([]byte(nextKwargs), &kw); err != nil {
		t.Fatalf("next_kwargs %s: %v", nextKwargs, err)
	}
	ev, _ := kw["event"].(map[string]any)
	if state != "scheduled" || nextMethod != "execute_complete" || kw["a"] != float64(1) || ev == nil ||
		ev["timedout"] != false || ev["responded_by_user"] != nil {
		t.Errorf("resumed row: state %s next_method %s next_kwargs %s", state, nextMethod, nextKwargs)
	}

	// Unanswered: parked in awaiting_input with its deadline.
	wantJSON(t, wp.do("POST", hitlPath(park.id), mustJSON(t, map[string]any{"ti_id": park.id, "subject": "s",
		"options": []string{"A"}})), 201, mustJSON(t, map[string]any{"ti_id": park.id, "subject": "s", "body": nil,
		"options": []string{"A"}, "defaults": nil, "multiple": false, "params": map[string]any{}, "assigned_users": []any{}}))
	wantNoContent(t, wp.do("PATCH", tiPath(park.id, "state"),
		`{"state":"awaiting_input","next_method":"execute_complete","timeout":3600}`), 204)
	var hasTimeout bool
	d.queryRow(`SELECT state, trigger_timeout IS NOT NULL FROM task_instance WHERE id = $1::uuid`, []any{park.id},
		&state, &hasTimeout)
	if state != "awaiting_input" || !hasTimeout {
		t.Errorf("parked row: state %s, trigger_timeout set %v", state, hasTimeout)
	}
}
