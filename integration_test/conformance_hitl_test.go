package integration_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/workload"
)

// Airflow's test_hitl.py (execution_api/versions/head), against the real
// binary on the embedded store. A detail Airflow's tests insert with its ORM
// is written through the store package into the data directory before the
// server starts.

// hitlRequest is the request Airflow's tests send (default_hitl_detail_request_kwargs).
const hitlRequest = `{"subject":"This is subject","body":"this is body","options":["Approve","Reject"],
	"defaults":["Approve"],"multiple":false,"params":{"input_1":1},"assignees":null}`

// hitlEmptyResponse is expected_empty_hitl_detail_response_part.
const hitlEmptyResponse = `{"responded_at":null,"chosen_options":null,"responded_by_user":null,"params_input":{},"response_received":false}`

func hitlPath(tiID string) string { return "/execution/hitlDetails/" + tiID }

// hitlBody is hitlRequest with the ti_id Airflow's tests add.
func hitlBody(t *testing.T, tiID string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(hitlRequest), &m); err != nil {
		t.Fatal(err)
	}
	m["ti_id"] = tiID
	return mustJSON(t, m)
}

// hitlFixture is a detail as Airflow's tests insert it: the default request,
// and a response when answered.
func hitlFixture(tiID string, answered bool) *workload.HITLDetail {
	body := "this is body"
	h := &workload.HITLDetail{TIID: tiID, Options: []string{"Approve", "Reject"}, Subject: "This is subject",
		Body: &body, Defaults: []string{"Approve"}, Params: json.RawMessage(`{"input_1":1}`),
		CreatedAt: time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), ParamsInput: json.RawMessage(`{}`)}
	if answered {
		at := time.Date(2025, 7, 3, 0, 0, 0, 0, time.UTC)
		h.RespondedAt, h.ChosenOptions, h.ParamsInput = &at, []string{"Reject"}, json.RawMessage(`{"input_1":2}`)
	}
	return h
}

// seedHITL writes details into the data directory's store, which no server
// may have open.
func seedHITL(t *testing.T, dataDir string, details ...*workload.HITLDetail) {
	t.Helper()
	db, err := store.Open(filepath.Join(dataDir, "taskgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, h := range details {
		if _, err := db.UpdateHITLDetail(context.Background(), h.TIID,
			func(*workload.HITLDetail) (*workload.HITLDetail, bool, error) { return h, true, nil }); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConformanceHITL(t *testing.T) {
	dataDir := newDataDir(t)
	const dag, run = "hitl_dag", "manual__2026-12-01T00:00:00+00:00"
	tasks := map[string]queued{}
	for _, task := range []string{"fresh", "asked", "answered", "empty_option", "update", "update_no_option",
		"no_detail", "get", "twice", "park", "resume"} {
		tasks[task] = queueTask(t, dataDir, dag, run, task)
	}
	seedHITL(t, dataDir, hitlFixture(tasks["asked"].TIID, false), hitlFixture(tasks["answered"].TIID, true),
		hitlFixture(tasks["update"].TIID, false), hitlFixture(tasks["update_no_option"].TIID, false),
		hitlFixture(tasks["get"].TIID, false), hitlFixture(tasks["twice"].TIID, false),
		hitlFixture(tasks["park"].TIID, false), hitlFixture(tasks["resume"].TIID, true))
	srv := startServer(t, dataDir)
	workers := map[string]*worker{}
	for task, q := range tasks {
		workers[task] = newWorker(t, srv.URL, startedToken(t, srv.URL, q))
	}
	id := func(task string) string { return tasks[task].TIID }
	upserted := func(task string) string {
		var m map[string]any
		_ = json.Unmarshal([]byte(hitlRequest), &m)
		delete(m, "assignees")
		m["ti_id"], m["assigned_users"] = id(task), []any{}
		return mustJSON(t, m)
	}
	notFoundBody := `{"detail":{"message":"HITLDetail not found. This happens most likely due to clearing task instance before receiving response.","reason":"not_found"}}`

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"test_hitl.py::test_upsert_hitl_detail[no existing hitl detail]", func(t *testing.T) {
			wantJSON(t, workers["fresh"].do("POST", hitlPath(id("fresh")), hitlBody(t, id("fresh"))), 201, upserted("fresh"))
			wantJSON(t, workers["fresh"].do("GET", hitlPath(id("fresh")), ""), 200, hitlEmptyResponse)
		}},
		{"test_hitl.py::test_upsert_hitl_detail[existing hitl detail without response]", func(t *testing.T) {
			wantJSON(t, workers["asked"].do("POST", hitlPath(id("asked")), hitlBody(t, id("asked"))), 201, upserted("asked"))
		}},
		{"test_hitl.py::test_upsert_hitl_detail[existing hitl detail with response]", func(t *testing.T) {
			wantJSON(t, workers["answered"].do("POST", hitlPath(id("answered")), hitlBody(t, id("answered"))), 201, upserted("answered"))
			// The earlier response is dropped: one detail, one (the latest) response.
			wantJSON(t, workers["answered"].do("GET", hitlPath(id("answered")), ""), 200, hitlEmptyResponse)
		}},
		{"test_hitl.py::test_upsert_hitl_detail_with_empty_option", func(t *testing.T) {
			w := workers["empty_option"]
			r := w.do("POST", hitlPath(id("empty_option")), mustJSON(t, map[string]any{"ti_id": id("empty_option"),
				"subject": "This is subject", "body": "this is body", "options": []string{}, "defaults": []string{"Approve"},
				"multiple": false, "params": map[string]any{"input_1": 1}}))
			wantJSON(t, r, 422, `{"detail":[{"type":"too_short","loc":["body","options"],
				"msg":"List should have at least 1 item after validation, not 0","input":[],
				"ctx":{"field_type":"List","min_length":1,"actual_length":0}}]}`)
			wantJSON(t, w.do("GET", hitlPath(id("empty_option")), ""), 404, notFoundBody)
		}},
		{"test_hitl.py::test_update_hitl_detail", func(t *testing.T) {
			before := time.Now().UTC().Add(-time.Second)
			r := workers["update"].do("PATCH", hitlPath(id("update")), mustJSON(t, map[string]any{"ti_id": id("update"),
				"chosen_options": []string{"Reject"}, "params_input": map[string]any{"input_1": 2}}))
			var got struct {
				RespondedAt *time.Time `json:"responded_at"`
			}
			if err := json.Unmarshal(r.body, &got); err != nil || got.RespondedAt == nil ||
				got.RespondedAt.Before(before) || got.RespondedAt.After(time.Now().Add(time.Second)) {
				t.Fatalf("%s: responded_at is not the time of the response", r)
			}
			// Airflow's test travels to a fixed time; the server's clock is
			// real, so the time it answered with is taken as expected.
			wantJSON(t, r, 200, `{"params_input":{"input_1":2},"responded_at":"`+got.RespondedAt.Format(time.RFC3339Nano)+
				`","chosen_options":["Reject"],"response_received":true,"responded_by_user":null}`)
			wantJSON(t, workers["update"].do("GET", hitlPath(id("update")), ""), 200, string(r.body))
		}},
		{"test_hitl.py::test_update_hitl_detail_without_option", func(t *testing.T) {
			r := workers["update_no_option"].do("PATCH", hitlPath(id("update_no_option")), mustJSON(t, map[string]any{
				"ti_id": id("update_no_option"), "chosen_options": []string{}, "params_input": map[string]any{"input_1": 2}}))
			if r.status != 422 {
				t.Errorf("%s: status %d, want 422", r, r.status)
			}
			wantJSON(t, workers["update_no_option"].do("GET", hitlPath(id("update_no_option")), ""), 200, hitlEmptyResponse)
		}},
		// Airflow's test names a task instance that does not exist (its
		// tests skip authentication); a token names an existing try, so the
		// case is a running task instance without a detail.
		{"test_hitl.py::test_update_hitl_detail_without_ti", func(t *testing.T) {
			r := workers["no_detail"].do("PATCH", hitlPath(id("no_detail")), mustJSON(t, map[string]any{
				"ti_id": id("no_detail"), "chosen_options": []string{"Reject"}, "params_input": map[string]any{"input_1": 2}}))
			wantJSON(t, r, 404, notFoundBody)
		}},
		{"test_hitl.py::test_get_hitl_detail", func(t *testing.T) {
			wantJSON(t, workers["get"].do("GET", hitlPath(id("get")), ""), 200, hitlEmptyResponse)
		}},
		{"test_hitl.py::test_get_hitl_detail_without_ti", func(t *testing.T) {
			wantJSON(t, workers["no_detail"].do("GET", hitlPath(id("no_detail")), ""), 404, notFoundBody)
		}},
		{"a second response is a conflict", func(t *testing.T) {
			body := mustJSON(t, map[string]any{"ti_id": id("twice"), "chosen_options": []string{"Approve"}})
			mustStatus(t, workers["twice"].do("PATCH", hitlPath(id("twice")), body), 200)
			wantJSON(t, workers["twice"].do("PATCH", hitlPath(id("twice")), body), 409,
				`{"detail":"Human-in-the-loop detail for Task Instance with id `+id("twice")+` already exists."}`)
		}},
		{"awaiting_input parks a task whose request is unanswered", func(t *testing.T) {
			body := `{"state":"awaiting_input","next_method":"execute_complete","next_kwargs":{"a":1},"timeout":3600}`
			wantNoContent(t, workers["park"].do("PATCH", tiPath(id("park"), "state"), body), 204)
			wantNoContent(t, workers["park"].do("PATCH", tiPath(id("park"), "state"), body), 200)
		}},
		{"awaiting_input resumes a task whose request was answered", func(t *testing.T) {
			body := `{"state":"awaiting_input","next_method":"execute_complete","next_kwargs":{"a":1}}`
			wantNoContent(t, workers["resume"].do("PATCH", tiPath(id("resume"), "state"), body), 204)
			// Not parked: scheduled, to resume with the response.
			r := workers["resume"].do("PATCH", tiPath(id("resume"), "state"), body)
			wantJSON(t, r, 409, `{"detail":{"reason":"invalid_state","message":"TI was not in the running state so it cannot be updated","previous_state":"scheduled"}}`)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, c.run)
	}

	srv.stop()
	db, err := store.Open(filepath.Join(dataDir, "taskgate.db"), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ti, err := db.TaskInstance(context.Background(), id("resume"))
	if err != nil {
		t.Fatal(err)
	}
	var kw map[string]any
	if err := json.Unmarshal(ti.NextKwargs, &kw); err != nil || kw["a"] != float64(1) {
		t.Fatalf("resumed next_kwargs = %s", ti.NextKwargs)
	}
	ev, _ := kw["event"].(map[string]any)
	if ti.State != workload.StateScheduled || ti.NextMethod == nil || *ti.NextMethod != "execute_complete" ||
		ev["chosen_options"] == nil || ev["responded_at"] != "2025-07-03T00:00:00Z" || ev["timedout"] != false {
		t.Errorf("resumed task instance: state %s, next_method %v, next_kwargs %s", ti.State, ti.NextMethod, ti.NextKwargs)
	}
}
