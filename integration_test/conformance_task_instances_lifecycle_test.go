package integration_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/workload"
)

// Airflow's lifecycle cases of test_task_instances.py (run, state,
// heartbeat, rtif, skip-downstream), each on its own task instance queued
// with `workloads queue` and started with its workload token, as a worker
// does, on one server.
func TestConformanceTaskInstanceLifecycle(t *testing.T) {
	dataDir := newDataDir(t)
	queue := func(dag, task string, extra ...string) queued {
		return queueTask(t, dataDir, dag, "manual__conformance", task, extra...)
	}
	// Task instances, by case.
	terminal := map[string]queued{}
	for _, st := range []string{"success", "failed", "skipped"} {
		terminal[st] = queue("terminal", st)
	}
	running := queue("lifecycle", "to_running", "--max-tries", "3")
	conflict := map[string]queued{}
	for _, st := range []string{"success", "failed", "skipped"} {
		conflict[st] = queue("conflict", st)
	}
	workloadRun := queue("lifecycle", "workload_run")
	badState := queue("lifecycle", "bad_state")
	retry := queue("lifecycle", "retry", "--max-tries", "2")
	retryPolicy := queue("lifecycle", "retry_policy", "--max-tries", "2")
	done := queue("lifecycle", "done")
	hb := queue("lifecycle", "heartbeat")
	hbDone := map[string]queued{"success": queue("hb_done", "success"), "failed": queue("hb_done", "failed")}
	rtif := queue("lifecycle", "rtif")
	subClaim := queue("lifecycle", "sub_claim")
	scoped := queue("lifecycle", "scoped")
	execAll := queue("lifecycle", "exec_all")
	noScope := queue("lifecycle", "no_scope")
	workloadAccepted := queue("lifecycle", "workload_accepted")
	skipper := queue("skip", "t0")
	skipped := queue("skip", "t1")
	skipperPair := queue("skip_pair", "t0")
	skippedPair := queue("skip_pair", "t1")
	raceBranch := queue("skip_race", "branch")
	queue("skip_race", "queued_downstream")
	seedTaskInstances(t, dataDir, []tiFixture{
		{dag: "skip_race", run: "manual__conformance", task: "none_downstream", mapIndex: -1},
		{dag: "skip_race", run: "manual__conformance", task: "success_downstream", mapIndex: -1, state: "success"},
		{dag: "skip_race", run: "manual__conformance", task: "failed_downstream", mapIndex: -1, state: "failed"},
	})
	srv := startServer(t, dataDir, noAuthLimit)
	m := newMinter(t, dataDir)
	me := host{"random-hostname", "random-unixname", 1789}
	start := func(q queued) *worker {
		w := newWorker(t, srv.URL, q.Token)
		mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
		return w
	}
	end := `"end_date":"2024-10-31T12:00:00+00:00"`
	notRunning := func(prev string) string {
		return `{"detail":{"reason":"invalid_state","message":"TI was not in the running state so it cannot be updated","previous_state":"` + prev + `"}}`
	}
	nf := `{"detail":{"reason":"not_found","message":"Task Instance not found"}}`

	for _, c := range []struct{ name, state string }{
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_terminal[success-end_date0-success]", "success"},
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_terminal[failed-end_date1-failed]", "failed"},
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_terminal[skipped-end_date2-skipped]", "skipped"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := terminal[c.state]
			w := start(q)
			wantNoContent(t, w.do("PATCH", tiPath(q.TIID, "state"), `{"state":"`+c.state+`",`+end+`,"rendered_map_index":"test rendered map index"}`), 204)
		})
	}
	t.Run("test_task_instances.py::TestTIRunState::test_ti_run_state_to_running[should_retry]", func(t *testing.T) {
		w := newWorker(t, srv.URL, running.Token)
		r := w.do("PATCH", tiPath(running.TIID, "run"), me.runPayload(t))
		mustStatus(t, r, 200)
		var rc map[string]any
		if err := json.Unmarshal(r.body, &rc); err != nil {
			t.Fatal(err)
		}
		if rc["max_tries"] != 3.0 || rc["should_retry"] != true || rc["task_reschedule_count"] != 0.0 {
			t.Errorf("run context %s", r.body)
		}
		for _, k := range []string{"variables", "connections", "xcom_keys_to_clear"} {
			if l, ok := rc[k].([]any); !ok || len(l) != 0 {
				t.Errorf("%s = %v, want []", k, rc[k])
			}
		}
		// A repeat from the same worker gets the same answer; another pid
		// is refused.
		again := w.do("PATCH", tiPath(running.TIID, "run"), me.runPayload(t))
		mustStatus(t, again, 200)
		other := host{me.hostname, me.unixname, me.pid + 1}
		wantJSON(t, w.do("PATCH", tiPath(running.TIID, "run"), other.runPayload(t)), 409,
			`{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"running"}}`)
	})
	t.Run("test_task_instances.py::TestTIRunState::test_ti_run_returns_execution_token", func(t *testing.T) {
		w := newWorker(t, srv.URL, workloadRun.Token)
		r := w.do("PATCH", tiPath(workloadRun.TIID, "run"), me.runPayload(t))
		mustStatus(t, r, 200)
		tok := r.header.Get("Refreshed-API-Token")
		if tok == "" {
			t.Fatal("no Refreshed-API-Token for a workload token's /run")
		}
		if c := m.parse(tok); c["scope"] != "execution" || c["sub"] != workloadRun.TIID {
			t.Errorf("swapped token claims %v", c)
		}
	})
	for _, c := range []struct{ name, state string }{
		{"test_task_instances.py::TestTIRunState::test_ti_run_state_conflict_if_not_queued[success]", "success"},
		{"test_task_instances.py::TestTIRunState::test_ti_run_state_conflict_if_not_queued[failed]", "failed"},
		{"test_task_instances.py::TestTIRunState::test_ti_run_state_conflict_if_not_queued[skipped]", "skipped"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := conflict[c.state]
			w := start(q)
			wantNoContent(t, w.do("PATCH", tiPath(q.TIID, "state"), `{"state":"`+c.state+`",`+end+`}`), 204)
			wantJSON(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 409,
				`{"detail":{"message":"TI was not in a state where it could be marked as running","previous_state":"`+c.state+`","reason":"invalid_state"}}`)
		})
	}
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_not_found", func(t *testing.T) {
		id := "0182e924-0f1e-77e6-ab50-e977118bc139"
		w := newWorker(t, srv.URL, m.execution(id))
		wantJSON(t, w.do("PATCH", tiPath(id, "state"), `{"state":"success","end_date":"2024-10-31T12:30:00Z"}`), 404, nf)
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_running_errors", func(t *testing.T) {
		w := start(badState)
		if r := w.do("PATCH", tiPath(badState.TIID, "state"), `{"state":"running"}`); r.status != 422 {
			t.Errorf("state running = %d %s, want 422", r.status, r.body)
		}
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_handle_retry", func(t *testing.T) {
		w := start(retry)
		wantNoContent(t, w.do("PATCH", tiPath(retry.TIID, "state"), `{"state":"up_for_retry",`+end+`}`), 204)
		// The attempt is archived at once: the try's token now writes nothing.
		wantJSON(t, w.do("PATCH", tiPath(retry.TIID, "state"), `{"state":"up_for_retry",`+end+`}`), 410,
			`{"detail":{"reason":"not_found","message":"Task Instance not found in the working set; its attempt has been archived"}}`)
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_retry_with_policy_overrides", func(t *testing.T) {
		w := start(retryPolicy)
		wantNoContent(t, w.do("PATCH", tiPath(retryPolicy.TIID, "state"),
			`{"state":"up_for_retry",`+end+`,"retry_delay_seconds":42.5,"retry_reason":"Rate limit: backing off"}`), 204)
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_same_state_is_idempotent", func(t *testing.T) {
		w := start(done)
		wantNoContent(t, w.do("PATCH", tiPath(done.TIID, "state"), `{"state":"success",`+end+`}`), 204)
		wantNoContent(t, w.do("PATCH", tiPath(done.TIID, "state"), `{"state":"success","end_date":"2024-10-31T13:00:00+00:00"}`), 200)
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_not_running", func(t *testing.T) {
		w := newWorker(t, srv.URL, m.execution(done.TIID))
		wantJSON(t, w.do("PATCH", tiPath(done.TIID, "state"), `{"state":"failed",`+end+`}`), 409, notRunning("success"))
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_terminal_state_mismatch_returns_conflict", func(t *testing.T) {
		w := newWorker(t, srv.URL, m.execution(done.TIID))
		wantJSON(t, w.do("PATCH", tiPath(done.TIID, "state"), `{"state":"failed","end_date":"2024-10-31T13:00:00+00:00"}`), 409,
			notRunning("success"))
	})

	// Token types and subjects.
	t.Run("test_task_instances.py::test_id_matches_sub_claim", func(t *testing.T) {
		w := newWorker(t, srv.URL, subClaim.Token)
		wantJSON(t, w.do("PATCH", tiPath("9c230b40-da03-451d-8bd7-be30471be383", "run"), me.runPayload(t)), 403,
			`{"detail":"Token subject does not match task instance ID"}`)
		mustStatus(t, w.do("PATCH", tiPath(subClaim.TIID, "run"), me.runPayload(t)), 200)
	})
	notAllowed := `{"detail":"Token type 'workload' not allowed for this endpoint. Allowed types: execution"}`
	start(scoped)
	sw := newWorker(t, srv.URL, m.hs512(m.claims(scoped.TIID, "workload", 600e9)))
	t.Run("test_task_instances.py::TestTokenTypeValidation::test_workload_scope_rejected_on_heartbeat_endpoint", func(t *testing.T) {
		wantJSON(t, sw.do("PUT", tiPath(scoped.TIID, "heartbeat"), `{"hostname":"test-host","pid":100}`), 403, notAllowed)
	})
	t.Run("test_task_instances.py::TestTokenTypeValidation::test_workload_scope_rejected_on_state_endpoint", func(t *testing.T) {
		wantJSON(t, sw.do("PATCH", tiPath(scoped.TIID, "state"), `{"state":"success","end_date":"2024-10-31T13:00:00Z"}`), 403, notAllowed)
	})
	t.Run("test_task_instances.py::TestTokenTypeValidation::test_workload_scope_rejected_on_connections_endpoint", func(t *testing.T) {
		wantJSON(t, sw.do("GET", "/execution/connections/test_conn", ""), 403,
			typeRefused("workload", "GET", "/execution/connections/test_conn"))
	})
	t.Run("test_task_instances.py::TestTokenTypeValidation::test_execution_scope_accepted_on_all_endpoints", func(t *testing.T) {
		start(execAll)
		w := newWorker(t, srv.URL, m.execution(execAll.TIID))
		wantNoContent(t, w.do("PATCH", tiPath(execAll.TIID, "state"), `{"state":"success","end_date":"2024-10-31T13:00:00Z"}`), 204)
	})
	t.Run("test_task_instances.py::TestTokenTypeValidation::test_workload_scope_accepted_on_run_endpoint", func(t *testing.T) {
		w := newWorker(t, srv.URL, m.hs512(m.claims(workloadAccepted.TIID, "workload", 600e9)))
		mustStatus(t, w.do("PATCH", tiPath(workloadAccepted.TIID, "run"), me.runPayload(t)), 200)
	})
	t.Run("test_task_instances.py::TestTokenTypeValidation::test_no_scope_defaults_to_execution", func(t *testing.T) {
		start(noScope)
		w := newWorker(t, srv.URL, m.hs512(m.claims(noScope.TIID, "", 600e9)))
		wantNoContent(t, w.do("PATCH", tiPath(noScope.TIID, "state"), `{"state":"success","end_date":"2024-10-31T13:00:00Z"}`), 204)
	})

	// Heartbeats.
	hw := start(hb)
	for _, c := range []struct {
		name, host string
		pid        int
		status     int
		want       string
	}{
		{"test_task_instances.py::TestTIHealthEndpoint::test_ti_heartbeat[random-hostname-1789-204-None]", "random-hostname", 1789, 204, ""},
		{"test_task_instances.py::TestTIHealthEndpoint::test_ti_heartbeat[wrong-hostname-1789-409-expected_detail1]", "wrong-hostname", 1789, 409,
			`{"detail":{"reason":"running_elsewhere","message":"TI is already running elsewhere","current_hostname":"random-hostname","current_pid":1789}}`},
		{"test_task_instances.py::TestTIHealthEndpoint::test_ti_heartbeat[random-hostname-1054-409-expected_detail2]", "random-hostname", 1054, 409,
			`{"detail":{"reason":"running_elsewhere","message":"TI is already running elsewhere","current_hostname":"random-hostname","current_pid":1789}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := hw.do("PUT", tiPath(hb.TIID, "heartbeat"), host{c.host, "", c.pid}.heartbeat(t))
			if c.status == 204 {
				wantNoContent(t, r, 204)
				return
			}
			wantJSON(t, r, c.status, c.want)
		})
	}
	t.Run("test_task_instances.py::TestTIHealthEndpoint::test_ti_heartbeat_update", func(t *testing.T) {
		wantNoContent(t, hw.do("PUT", tiPath(hb.TIID, "heartbeat"), me.heartbeat(t)), 204)
	})
	t.Run("test_task_instances.py::TestTIHealthEndpoint::test_ti_heartbeat_non_existent_task", func(t *testing.T) {
		id := "0182e924-0f1e-77e6-ab50-e977118bc139"
		w := newWorker(t, srv.URL, m.execution(id))
		wantJSON(t, w.do("PUT", tiPath(id, "heartbeat"), `{"hostname":"random-hostname","pid":1547}`), 404, nf)
	})
	for _, c := range []struct{ name, state string }{
		{"test_task_instances.py::TestTIHealthEndpoint::test_ti_heartbeat_when_task_not_running[success]", "success"},
		{"test_task_instances.py::TestTIHealthEndpoint::test_ti_heartbeat_when_task_not_running[failed]", "failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := hbDone[c.state]
			w := start(q)
			wantNoContent(t, w.do("PATCH", tiPath(q.TIID, "state"), `{"state":"`+c.state+`",`+end+`}`), 204)
			wantJSON(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 409,
				`{"detail":{"reason":"not_running","message":"TI is no longer in the running state and task should terminate","current_state":"`+c.state+`"}}`)
		})
	}

	// Rendered fields.
	rw := start(rtif)
	for _, c := range []struct{ name, payload string }{
		{"test_task_instances.py::TestTIPutRTIF::test_ti_put_rtif_success[payload0]", `{"field1":"string_value","field2":"another_string"}`},
		{"test_task_instances.py::TestTIPutRTIF::test_ti_put_rtif_success[payload1]", `{"field1":{"nested_key":"nested_value"}}`},
		{"test_task_instances.py::TestTIPutRTIF::test_ti_put_rtif_success[payload2]", `{"field1":["123"],"field2":["a","b","c"]}`},
		{"test_task_instances.py::TestTIPutRTIF::test_ti_put_rtif_success[payload3]", `{"field1":[1,"string",3.14,true,null,{"nested":"dict"}]}`},
		{"test_task_instances.py::TestTIPutRTIF::test_ti_put_rtif_success[payload4]",
			`{"field1":{"nested_dict":{"key1":123,"key2":"value"}},"field2":[3.14,{"sub_key":"sub_value"},[1,2]]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantJSON(t, rw.do("PUT", tiPath(rtif.TIID, "rtif"), c.payload), 201,
				`{"message":"Rendered task instance fields successfully set"}`)
		})
	}

	// Skip downstream.
	for _, c := range []struct {
		name           string
		branch, target queued
		body           string
	}{
		{"test_task_instances.py::TestTISkipDownstream::test_ti_skip_downstream[_json0]", skipper, skipped, `{"tasks":["t1"]}`},
		{"test_task_instances.py::TestTISkipDownstream::test_ti_skip_downstream[_json1]", skipperPair, skippedPair, `{"tasks":[["t1",-1]]}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := start(c.branch)
			wantNoContent(t, w.do("PATCH", tiPath(c.branch.TIID, "skip-downstream"), c.body), 204)
			// The skipped task's worker is refused: it was skipped.
			wantJSON(t, newWorker(t, srv.URL, c.target.Token).do("PATCH", tiPath(c.target.TIID, "run"), me.runPayload(t)), 409,
				`{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"skipped"}}`)
		})
	}
	bw := start(raceBranch)
	wantNoContent(t, bw.do("PATCH", tiPath(raceBranch.TIID, "skip-downstream"),
		`{"tasks":["queued_downstream","none_downstream","success_downstream","failed_downstream","branch"]}`), 204)
	srv.stop()
	db, err := store.Open(filepath.Join(dataDir, "taskgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	stateOf := func(dag, task string) (*workload.TaskInstance, workload.State) {
		tis, _, err := db.TaskInstances(ctx, workload.TaskInstanceFilter{DagID: dag, RunID: "manual__conformance", TaskID: task})
		if err != nil || len(tis) != 1 {
			t.Fatalf("%s/%s: %v %v", dag, task, tis, err)
		}
		return &tis[0], tis[0].State
	}
	for _, c := range []struct {
		name, task string
		want       workload.State
	}{
		{"test_task_instances.py::TestTISkipDownstreamRaceCondition::test_skip_downstream_does_not_overwrite_terminal_or_running_ti[running]", "branch", workload.StateRunning},
		{"test_task_instances.py::TestTISkipDownstreamRaceCondition::test_skip_downstream_does_not_overwrite_terminal_or_running_ti[success]", "success_downstream", workload.StateSuccess},
		{"test_task_instances.py::TestTISkipDownstreamRaceCondition::test_skip_downstream_does_not_overwrite_terminal_or_running_ti[failed]", "failed_downstream", workload.StateFailed},
		{"test_task_instances.py::TestTISkipDownstreamRaceCondition::test_skip_downstream_does_skip_queued_ti", "queued_downstream", workload.StateSkipped},
		{"test_task_instances.py::TestTISkipDownstreamRaceCondition::test_skip_downstream_still_skips_none_state_ti", "none_downstream", workload.StateSkipped},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, got := stateOf("skip_race", c.task); got != c.want {
				t.Errorf("%s = %q, want %q", c.task, got, c.want)
			}
		})
	}
	// What the retry left behind, as Airflow's tests read the rows.
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_handle_retry (rows)", func(t *testing.T) {
		cur, st := stateOf("lifecycle", "retry")
		if st != workload.StateUpForRetry || cur.ID == retry.TIID || cur.TryNumber != 1 {
			t.Errorf("current task instance %+v: want up_for_retry under a new id, try 1", cur)
		}
		old, err := db.TaskInstance(ctx, retry.TIID)
		if err != nil || old.State != workload.StateUpForRetry {
			t.Errorf("archived try %+v, %v", old, err)
		}
		if _, err := uuid.Parse(cur.ID); err != nil || cur.ID[14] != '7' {
			t.Errorf("new id %q is not a UUIDv7", cur.ID)
		}
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_terminal_with_rendered_map_index", func(t *testing.T) {
		for _, st := range []string{"success", "failed", "skipped"} {
			cur, got := stateOf("terminal", st)
			if got != workload.State(st) || cur.RenderedMapIndex == nil || *cur.RenderedMapIndex != "test rendered map index" ||
				cur.EndDate == nil || !cur.EndDate.Equal(time.Date(2024, 10, 31, 12, 0, 0, 0, time.UTC)) {
				t.Errorf("%s: state %s, rendered_map_index %v, end_date %v", st, got, cur.RenderedMapIndex, cur.EndDate)
			}
		}
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_retry_without_policy_overrides", func(t *testing.T) {
		cur, _ := stateOf("lifecycle", "retry")
		old, err := db.TaskInstance(ctx, retry.TIID)
		if err != nil || cur.RetryDelaySeconds != nil || cur.RetryReason != nil || old.RetryDelaySeconds != nil || old.RetryReason != nil {
			t.Errorf("retry overrides without a policy: %v %v / archived %+v %v", cur.RetryDelaySeconds, cur.RetryReason, old, err)
		}
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_retry_policy_overrides_persisted_in_history", func(t *testing.T) {
		old, err := db.TaskInstance(ctx, retryPolicy.TIID)
		if err != nil || old.RetryDelaySeconds == nil || *old.RetryDelaySeconds != 42.5 || old.RetryReason == nil ||
			*old.RetryReason != "Rate limit: backing off" {
			t.Errorf("the archived try's overrides: %+v, %v", old, err)
		}
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_retry_with_policy_overrides (rows)", func(t *testing.T) {
		cur, _ := stateOf("lifecycle", "retry_policy")
		if cur.RetryDelaySeconds == nil || *cur.RetryDelaySeconds != 42.5 || cur.RetryReason == nil ||
			*cur.RetryReason != "Rate limit: backing off" {
			t.Errorf("retry overrides on the task instance: %v %v", cur.RetryDelaySeconds, cur.RetryReason)
		}
	})
}

// TestConformanceXComNotClearedForDeferral: a try resuming from deferral is
// not told to clear its XComs.
func TestConformanceXComNotClearedForDeferral(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "deferral_dag", "manual__deferral", "test_xcom_not_cleared_for_deferral")
	srv := startServer(t, dataDir, noAuthLimit)
	me := host{"random-hostname", "random-unixname", 100}
	w := newWorker(t, srv.URL, q.Token)
	mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
	mustStatus(t, w.do("POST", q.xcomPath("key"), `"value"`), 201)
	wantNoContent(t, w.do("PATCH", tiPath(q.TIID, "state"),
		`{"state":"deferred","trigger_kwargs":{"key":"value","moment":"2024-12-18T00:00:00Z"},"trigger_timeout":"P1D","classpath":"my-classpath","next_method":"execute_callback"}`), 204)
	srv.stop()
	// Deferred → queued so that it runs again: the triggerer's event,
	// queued here as the scheduler does.
	resumed := queueTask(t, dataDir, "deferral_dag", "manual__deferral", "test_xcom_not_cleared_for_deferral")
	srv = startServer(t, dataDir, noAuthLimit)
	t.Run("test_task_instances.py::TestTIRunState::test_xcom_not_cleared_for_deferral", func(t *testing.T) {
		w := newWorker(t, srv.URL, resumed.Token)
		r := w.do("PATCH", tiPath(resumed.TIID, "run"), me.runPayload(t))
		mustStatus(t, r, 200)
		var rc struct {
			XComKeysToClear []string `json:"xcom_keys_to_clear"`
			NextMethod      string   `json:"next_method"`
		}
		if err := json.Unmarshal(r.body, &rc); err != nil {
			t.Fatal(err)
		}
		if len(rc.XComKeysToClear) != 0 || rc.NextMethod != "execute_callback" {
			t.Errorf("run context %s: want no keys to clear and next_method execute_callback", r.body)
		}
		wantJSON(t, w.do("GET", resumed.xcomPath("key"), ""), 200, `{"key":"key","value":"value"}`)
	})
}

// TestConformanceOutletEventPartitionKeys: the partition keys of a
// success's outlet events are checked before anything is written.
func TestConformanceOutletEventPartitionKeys(t *testing.T) {
	dataDir := newDataDir(t)
	cases := []struct{ name, key, want string }{
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_success_outlet_event_partition_key_validation[at_limit_accepted]",
			strings.Repeat("a", 250), ""},
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_success_outlet_event_partition_key_validation[over_limit_rejected]",
			strings.Repeat("a", 251), "partition_key in outlet event must be at most 250 characters; got 251."},
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_success_outlet_event_partition_key_validation[empty_rejected]",
			"", "partition_key in outlet event must not be empty or whitespace-only; got ''."},
		{"test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_success_outlet_event_partition_key_validation[whitespace_rejected]",
			"   ", "partition_key in outlet event must not be empty or whitespace-only; got '   '."},
	}
	qs := make([]queued, len(cases))
	for i := range cases {
		qs[i] = queueTask(t, dataDir, "partition_keys", "manual__pk", "t"+strconv.Itoa(i))
	}
	srv := startServer(t, dataDir, noAuthLimit)
	me := host{"random-hostname", "random-unixname", 100}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := qs[i]
			w := newWorker(t, srv.URL, q.Token)
			mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)
			body := mustJSON(t, map[string]any{"state": "success", "end_date": "2024-10-31T12:00:00+00:00",
				"task_outlets": []any{}, "outlet_events": []any{map[string]any{
					"dest_asset_key": map[string]any{"name": "my-asset", "uri": "s3://bucket/my-asset"},
					"extra":          map[string]any{}, "partition_key": c.key}}})
			r := w.do("PATCH", tiPath(q.TIID, "state"), body)
			if c.want == "" {
				wantNoContent(t, r, 204)
				return
			}
			wantJSON(t, r, 422, mustJSON(t, map[string]any{"detail": map[string]any{"reason": "invalid_partition_key", "message": c.want}}))
			// Nothing was written: the try still runs.
			wantNoContent(t, w.do("PUT", tiPath(q.TIID, "heartbeat"), me.heartbeat(t)), 204)
		})
	}
}

// TestConformanceResumeFromDeferral: a try resuming from deferral gets the
// method and arguments it deferred with and keeps its first start date;
// one deferred without arguments starts afresh.
func TestConformanceResumeFromDeferral(t *testing.T) {
	dataDir := newDataDir(t)
	withKwargs := queueTask(t, dataDir, "resume_dag", "manual__resume", "with_kwargs")
	without := queueTask(t, dataDir, "resume_dag", "manual__resume", "without_kwargs")
	srv := startServer(t, dataDir, noAuthLimit)
	kwargs := `{"moment":{"__classname__":"pendulum.datetime.DateTime","__version__":2,"__data__":{"timestamp":1727697635.0,` +
		`"tz":{"__classname__":"builtins.tuple","__version__":1,"__data__":["UTC","pendulum.tz.timezone.Timezone",1,true]}}}}`
	run := func(start string) string {
		return `{"state":"running","hostname":"random-hostname","unixname":"random-unixname","pid":100,"start_date":"` + start + `"}`
	}
	first, second := "2024-09-30T12:00:05Z", "2024-09-30T12:00:35Z"
	for _, c := range []struct {
		q    queued
		body string
	}{
		{withKwargs, `{"state":"deferred","classpath":"a.B","next_method":"execute_complete","trigger_kwargs":{},"next_kwargs":` + kwargs + `}`},
		{without, `{"state":"deferred","classpath":"a.B","next_method":"execute_complete","trigger_kwargs":{}}`},
	} {
		w := newWorker(t, srv.URL, c.q.Token)
		mustStatus(t, w.do("PATCH", tiPath(c.q.TIID, "run"), run(first)), 200)
		wantNoContent(t, w.do("PATCH", tiPath(c.q.TIID, "state"), c.body), 204)
	}
	srv.stop()
	// The triggerer's event queues the same try again, as the scheduler does.
	resumedWith := queueTask(t, dataDir, "resume_dag", "manual__resume", "with_kwargs")
	resumedWithout := queueTask(t, dataDir, "resume_dag", "manual__resume", "without_kwargs")
	srv = startServer(t, dataDir, noAuthLimit)
	rc := func(q queued) map[string]json.RawMessage {
		t.Helper()
		r := newWorker(t, srv.URL, q.Token).do("PATCH", tiPath(q.TIID, "run"), run(second))
		mustStatus(t, r, 200)
		var out map[string]json.RawMessage
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	with, withoutRC := rc(resumedWith), rc(resumedWithout)
	check := func(t *testing.T, got map[string]json.RawMessage, nextKwargs, start string) {
		t.Helper()
		var a, b any
		_ = json.Unmarshal(got["next_kwargs"], &a)
		_ = json.Unmarshal([]byte(nextKwargs), &b)
		if string(got["next_method"]) != `"execute_complete"` || !reflect.DeepEqual(a, b) || string(got["start_date"]) != `"`+start+`"` {
			t.Errorf("run context: next_method %s, next_kwargs %s, start_date %s; want execute_complete, %s, %s",
				got["next_method"], got["next_kwargs"], got["start_date"], nextKwargs, start)
		}
	}
	t.Run("test_task_instances.py::TestTIRunState::test_ti_run_resume_returns_original_start_date_in_context", func(t *testing.T) {
		check(t, with, kwargs, first)
	})
	t.Run("test_task_instances.py::TestTIRunState::test_next_kwargs_determines_start_date_update[True]", func(t *testing.T) {
		check(t, with, kwargs, first)
	})
	t.Run("test_task_instances.py::TestTIRunState::test_next_kwargs_determines_start_date_update[False]", func(t *testing.T) {
		// The context names the start date the row had; the row takes the
		// new one.
		check(t, withoutRC, "null", first)
	})
	srv.stop()
	db, err := store.Open(filepath.Join(dataDir, "taskgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		id, want string
	}{{resumedWith.TIID, first}, {resumedWithout.TIID, second}} {
		ti, err := db.TaskInstance(context.Background(), c.id)
		if err != nil || ti.StartDate == nil || ti.StartDate.Format(time.RFC3339) != c.want {
			t.Errorf("start_date of %s = %v, %v; want %s", c.id, ti.StartDate, err, c.want)
		}
	}
}
