package integration_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/taskgate/taskgate/workload"
)

// Airflow's version-specific Execution API tests of the versions from
// 2026-04-17 on (airflow-core/tests/unit/api_fastapi/execution_api/
// versions/v2026_04_28 … v2027_02_28), ported against the real binary:
// each request names the Airflow-API-Version Airflow's test client sends,
// and the answer is what that version of Airflow answers. Versions Airflow
// names that taskgate's bundle lacks (2026-04-17, 2026-06-16) are served as
// Cadwyn serves them, by the newest older version taskgate has; versions
// newer than taskgate's newest (2027-02-28) are served by its newest.

// notRouted is the answer to a request whose version has no such route.
const notRouted = `{"detail":"Not Found"}`

// TestConformanceVersionsRouting: routes a version does not have answer
// the router's 404, before any token or handler is involved.
func TestConformanceVersionsRouting(t *testing.T) {
	dir := newDataDir(t)
	qs := map[string]queued{}
	for _, task := range []string{"reader", "conflict", "log_id"} {
		qs[task] = queueTask(t, dir, "versions_b", "r_versions_b", task)
	}
	srv := startServer(t, dir)
	base := srv.URL
	reader := startedToken(t, base, qs["reader"])

	for _, c := range []struct{ name, version string }{
		{"v2026_04_28/test_variables.py::test_variable_keys_endpoint_not_available_in_previous_version", "2026-04-17"},
		{"v2026_06_30/test_variables.py::test_variable_keys_endpoint_not_available_in_previous_version", "2026-06-16"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The older versions route the path to GET /variables/{key}.
			r := sendVersion(t, base, c.version, "GET", "/execution/variables/keys", "Bearer "+reader, "")
			if r.status != 404 {
				t.Errorf("%s: want 404", r)
			}
			// The version that added it answers the list.
			wantJSON(t, sendVersion(t, base, "2026-06-30", "GET", "/execution/variables/keys", "Bearer "+reader, ""), 200,
				`{"keys":[],"total_entries":0}`)
		})
	}

	t.Run("v2026_10_30/test_xcoms.py::test_xcom_bulk_delete_endpoint_not_available_in_previous_version", func(t *testing.T) {
		r := sendVersion(t, base, "2026-06-30", "DELETE", "/execution/xcoms/dag_id/run_id", "Bearer "+reader, "")
		wantJSON(t, r, 404, notRouted)
	})

	t.Run("v2026_10_30/test_dag_run_notes.py::TestUpdateDagRunNoteEndpointVersioning::test_old_version_returns_404", func(t *testing.T) {
		r := sendVersion(t, base, "2026-06-30", "PATCH",
			"/execution/task-instances/00000000-0000-0000-0000-000000000000/dag-run-note", "Bearer "+reader,
			`{"note":"from runtime"}`)
		wantJSON(t, r, 404, notRouted)
	})

	t.Run("v2026_10_30/test_callbacks.py::TestRunCallbackEndpointVersioning::test_old_version_returns_404", func(t *testing.T) {
		r := sendVersion(t, base, "2026-06-30", "PATCH",
			"/execution/callbacks/00000000-0000-0000-0000-000000000000/run", "Bearer "+reader, "")
		wantJSON(t, r, 404, notRouted)
	})

	t.Run("v2026_08_10/test_task_instances.py::test_task_run_state_conflict_error_uses_legacy_shape_for_older_versions", func(t *testing.T) {
		q := qs["conflict"]
		tok := startedToken(t, base, q)
		wantNoContent(t, sendVersion(t, base, "2026-06-30", "PATCH", tiPath(q.TIID, "state"), "Bearer "+tok,
			successPayload(t)), 204)
		r := sendVersion(t, base, "2026-06-30", "PATCH", tiPath(q.TIID, "run"), "Bearer "+tok, mustJSON(t, map[string]any{
			"state": "running", "hostname": "random-hostname", "unixname": "random-unixname", "pid": 100,
			"start_date": "2024-10-31T12:00:00Z",
		}))
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q, want application/json", r, ct)
		}
		wantJSON(t, r, 409, `{"detail":{"message":"TI was not in a state where it could be marked as running",
			"previous_state":"success","reason":"invalid_state"}}`)
	})

	t.Run("v2026_09_30/test_task_instances.py::TestLogIdTemplateFieldBackwardCompat::test_old_version_strips_log_id_template", func(t *testing.T) {
		q := qs["log_id"]
		r := sendVersion(t, base, "2026-06-30", "PATCH", tiPath(q.TIID, "run"), "Bearer "+q.Token, mustJSON(t, map[string]any{
			"state": "running", "hostname": "h", "unixname": "u", "pid": 1, "start_date": "2024-09-30T12:00:00Z",
		}))
		mustStatus(t, r, 200)
		if contains(sortedKeys(t, r.body, ""), "log_id_template") {
			t.Errorf("%s: log_id_template at 2026-06-30", r)
		}
	})
}

// TestConformanceVersionsWorkers: the connection-test, callback and Job
// routes per version, on both stores, with the token each route takes.
func TestConformanceVersionsWorkers(t *testing.T) {
	running := connectionTestFixture(workload.ConnectionTestRunning, workload.Connection{ConnID: "test_conn",
		ConnType: "test_type"}, false)
	type wcase struct {
		name string
		seed func() workersSeed
		run  func(t *testing.T, e *workersEnv)
	}
	var cases []wcase

	// test_connection_tests.py of 2026-05-02 and 2026-06-30: the same
	// cases, the older client sending 2026-04-17 and 2026-04-06.
	for _, f := range []struct{ old, head, version string }{
		{"v2026_05_02/test_connection_tests.py::TestConnectionTestEndpointVersioning::test_old_version_returns_404",
			"v2026_05_02/test_connection_tests.py::TestConnectionTestEndpointVersioning::test_head_version_works", "2026-04-17"},
		{"v2026_06_30/test_connection_tests.py::TestConnectionTestEndpointVersioning::test_old_version_returns_404",
			"v2026_06_30/test_connection_tests.py::TestConnectionTestEndpointVersioning::test_head_version_works", "2026-04-06"},
	} {
		cases = append(cases, wcase{f.old,
			func() workersSeed { return workersSeed{connectionTests: []workload.ConnectionTest{running}} },
			func(t *testing.T, e *workersEnv) {
				r := sendVersion(t, e.srv.URL, f.version, "PATCH", "/execution/connection-tests/"+running.ID,
					e.token(running.ID, "workload"), `{"state":"success","result_message":"ok"}`)
				wantJSON(t, r, 404, notRouted)
				if state, _ := e.connectionTestResult(running.ID); state != "running" {
					t.Errorf("stored state %q, want running", state)
				}
			}}, wcase{f.head,
			func() workersSeed { return workersSeed{connectionTests: []workload.ConnectionTest{running}} },
			func(t *testing.T, e *workersEnv) {
				r := sendVersion(t, e.srv.URL, newestAPIVersion, "PATCH", "/execution/connection-tests/"+running.ID,
					e.token(running.ID, "workload"), `{"state":"success","result_message":"ok"}`)
				wantNoContent(t, r, 204)
				if state, msg := e.connectionTestResult(running.ID); state != "success" || msg == nil || *msg != "ok" {
					t.Errorf("stored %q %v", state, msg)
				}
			}})
	}

	queuedCallback := callbackFixture(workload.CallbackQueued)
	missing := "00000000-0000-0000-0000-000000000000"
	cases = append(cases, wcase{
		"v2026_08_01/test_callbacks.py::TestRunCallbackEndpointVersioning::test_old_version_returns_404",
		func() workersSeed { return workersSeed{callbacks: []workload.Callback{queuedCallback}} },
		func(t *testing.T, e *workersEnv) {
			r := sendVersion(t, e.srv.URL, "2026-06-30", "PATCH", "/execution/callbacks/"+queuedCallback.ID+"/run",
				e.token(queuedCallback.ID, "callback"), "")
			wantJSON(t, r, 404, notRouted)
			if state, _ := e.callbackState(queuedCallback.ID); state != "queued" {
				t.Errorf("stored state %q, want queued", state)
			}
		}}, wcase{
		"v2026_08_01/test_callbacks.py::TestRunCallbackEndpointVersioning::test_head_version_works",
		func() workersSeed { return workersSeed{callbacks: []workload.Callback{queuedCallback}} },
		func(t *testing.T, e *workersEnv) {
			r := sendVersion(t, e.srv.URL, newestAPIVersion, "PATCH", "/execution/callbacks/"+queuedCallback.ID+"/run",
				e.token(queuedCallback.ID, "callback"), "")
			wantNoContent(t, r, 204)
			if state, _ := e.callbackState(queuedCallback.ID); state != "running" {
				t.Errorf("stored state %q, want running", state)
			}
		}}, wcase{
		"v2026_10_30/test_callbacks.py::TestRunCallbackEndpointVersioning::test_head_version_routes_to_endpoint",
		func() workersSeed { return workersSeed{} },
		func(t *testing.T, e *workersEnv) {
			r := sendVersion(t, e.srv.URL, newestAPIVersion, "PATCH", "/execution/callbacks/"+missing+"/run",
				e.token(missing, "callback"), "")
			if r.status != 404 || detail(t, r)["reason"] != "not_found" {
				t.Errorf("%s, want 404 not_found", r)
			}
		}})

	// The Job routes: Airflow's 2027-02-28 (its 2026-10-30 test file
	// predates the move), served by taskgate's newest version alone.
	oneJob := func() workersSeed { return workersSeed{jobs: []workload.Job{jobFixture(nil)}} }
	heartbeat0 := func(version string) func(t *testing.T, e *workersEnv) {
		return func(t *testing.T, e *workersEnv) {
			r := sendVersion(t, e.srv.URL, version, "POST", "/execution/jobs/0/heartbeat",
				e.jobToken(jobSession, e.jobIDs[0]), "")
			if version != newestAPIVersion {
				wantJSON(t, r, 404, notRouted)
				return
			}
			if r.status != 404 || detail(t, r)["reason"] != "not_found" {
				t.Errorf("%s, want 404 not_found", r)
			}
		}
	}
	cases = append(cases,
		wcase{"v2026_10_30/test_jobs.py::TestDagProcessorJobEndpointsVersioning::test_old_version_returns_404", oneJob,
			heartbeat0("2026-06-30")},
		wcase{"v2026_10_30/test_jobs.py::TestDagProcessorJobEndpointsVersioning::test_head_version_routes_to_endpoint", oneJob,
			heartbeat0(newestAPIVersion)},
		wcase{"v2027_02_28/test_jobs.py::TestDagProcessorJobEndpointsVersioning::test_head_version_routes_to_endpoint", oneJob,
			heartbeat0(newestAPIVersion)})
	for _, p := range []struct{ name, path string }{
		{"v2027_02_28/test_jobs.py::TestDagProcessorJobEndpointsVersioning::test_old_version_returns_404[/execution/jobs/0/heartbeat]",
			"/execution/jobs/0/heartbeat"},
		{"v2027_02_28/test_jobs.py::TestDagProcessorJobEndpointsVersioning::test_old_version_returns_404[/execution/jobs/0/parse-token]",
			"/execution/jobs/0/parse-token"},
		{"v2027_02_28/test_jobs.py::TestDagProcessorJobEndpointsVersioning::test_old_version_returns_404[/execution/jobs/0/parse-results]",
			"/execution/jobs/0/parse-results"},
		{"v2027_02_28/test_jobs.py::TestDagProcessorJobEndpointsVersioning::test_old_version_returns_404[/execution/jobs/0/bundles/bundle/inventory]",
			"/execution/jobs/0/bundles/bundle/inventory"},
		{"v2027_02_28/test_jobs.py::TestDagProcessorJobEndpointsVersioning::test_old_version_returns_404[/execution/jobs/0/requested-work/priority/claim]",
			"/execution/jobs/0/requested-work/priority/claim"},
		{"v2027_02_28/test_jobs.py::TestDagProcessorJobEndpointsVersioning::test_old_version_returns_404[/execution/jobs/0/requested-work/priority/id/ack]",
			"/execution/jobs/0/requested-work/priority/id/ack"},
	} {
		cases = append(cases, wcase{p.name, oneJob, func(t *testing.T, e *workersEnv) {
			r := sendVersion(t, e.srv.URL, "2026-10-30", "POST", p.path, e.jobToken(jobSession, e.jobIDs[0]), "")
			wantJSON(t, r, 404, notRouted)
		}})
	}
	cases = append(cases, wcase{
		"v2027_02_28/test_jobs.py::TestDagProcessorJobEndpointsVersioning::test_old_version_has_no_bundle_catalog", oneJob,
		func(t *testing.T, e *workersEnv) {
			r := sendVersion(t, e.srv.URL, "2026-10-30", "GET", "/execution/jobs/0/bundles", e.jobToken(jobSession, e.jobIDs[0]), "")
			if r.status != 404 {
				t.Errorf("%s, want 404", r)
			}
		}}, wcase{
		// Registration too is the newest version's: a session token buys
		// no Job at 2026-10-30.
		"the Job registration before the newest version", func() workersSeed { return workersSeed{} },
		func(t *testing.T, e *workersEnv) {
			tok, _ := e.sessionToken(jobSession)
			body := `{"registration_id":"` + jobRegistration + `","hostname":"processor-1"}`
			wantJSON(t, sendVersion(t, e.srv.URL, "2026-10-30", "POST", "/execution/jobs", tok, body), 404, notRouted)
			if r := sendVersion(t, e.srv.URL, "2027-02-28", "POST", "/execution/jobs", tok, body); r.status != 201 {
				t.Errorf("%s, want 201 at 2027-02-28 (served by the newest version)", r)
			}
		}})

	for _, backend := range workersBackends {
		t.Run(string(backend), func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					c.run(t, newWorkersEnv(t, backend, c.seed()))
				})
			}
		})
	}
}

// at sends one request of version with the caller's token.
func (e *drEnv) at(version, method, path, body string) *response {
	e.t.Helper()
	return sendVersion(e.t, e.url, version, method, path, "Bearer "+e.token, body)
}

// openAPIProperties reads a schema's properties from the OpenAPI document
// of version.
func openAPIProperties(t *testing.T, base, version, schema string) map[string]any {
	t.Helper()
	r := sendAt(t, base, nil, "GET", "/execution/openapi.json?version="+version, "", "")
	mustStatus(t, r, 200)
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	s, ok := doc.Components.Schemas[schema]
	if !ok {
		t.Fatalf("%s: no schema %s", version, schema)
	}
	return s.Properties
}

// TestConformanceVersionsDagRunReads: the DagRun reads of 2026-04-06 clients
// and the clear payload of 2026-10-30 ones, on both stores.
func TestConformanceVersionsDagRunReads(t *testing.T) {
	addedIn20260630 := []string{"team_name", "partition_date"}
	twoRuns := func(f drFixtures) {
		simpleDag(f, "test_dag_run_fields")
		runWithTask(f, "test_dag_run_fields", "run1", "success", dateOn(2025, 1, 1))
		runWithTask(f, "test_dag_run_fields", "run2", "success", dateOn(2025, 1, 10))
	}
	omits := func(t *testing.T, r *response) {
		t.Helper()
		keys := sortedKeys(t, r.body, "")
		for _, k := range addedIn20260630 {
			if contains(keys, k) {
				t.Errorf("%s: %s at 2026-04-06", r, k)
			}
		}
	}
	wholeRun := func(f drFixtures) {
		simpleDag(f, "test_old_clear_no_body")
		f.run(workload.DagRun{DagID: "test_old_clear_no_body", RunID: "test_run_id", State: "success",
			RunAfter: time.Date(2025, 12, 13, 0, 0, 0, 0, time.UTC)})
		f.ti("test_old_clear_no_body", "test_run_id", "test_task", workload.StateSuccess)
		f.ti("test_old_clear_no_body", "test_run_id", "failed_task", workload.StateFailed)
	}
	runDagRunCases(t, []drCase{{
		name:  "v2026_06_30/test_dag_runs.py::test_get_dag_run_omits_new_fields",
		setup: twoRuns,
		check: func(t *testing.T, e *drEnv) {
			r := e.at("2026-04-06", "GET", "/execution/dag-runs/test_dag_run_fields/run1", "")
			mustStatus(t, r, 200)
			omits(t, r)
			// The newest version has team_name (partition_date is a field
			// taskgate does not serve: versions.go's headGaps).
			if r := e.at(newestAPIVersion, "GET", "/execution/dag-runs/test_dag_run_fields/run1", ""); !contains(sortedKeys(t, r.body, ""), "team_name") {
				t.Errorf("%s: no team_name at the newest version", r)
			}
		},
	}, {
		name:  "v2026_06_30/test_dag_runs.py::test_get_previous_dag_run_omits_new_fields",
		setup: twoRuns,
		check: func(t *testing.T, e *drEnv) {
			r := e.at("2026-04-06", "GET", "/execution/dag-runs/previous?dag_id=test_dag_run_fields&logical_date=2025-01-10T00:00:00%2B00:00", "")
			mustStatus(t, r, 200)
			if drField(t, r, "run_id") != "run1" {
				t.Errorf("%s: want run1", r)
			}
			omits(t, r)
		},
	}, {
		name:  "v2026_06_30/test_dag_runs.py::test_get_previous_dag_run_without_a_match",
		setup: twoRuns,
		check: func(t *testing.T, e *drEnv) {
			wantJSON(t, e.at("2026-04-06", "GET", "/execution/dag-runs/previous?dag_id=test_dag_run_fields&logical_date=2024-01-01T00:00:00%2B00:00", ""),
				200, `null`)
		},
	}, {
		name:  "v2026_11_13/test_dag_runs.py::TestDagRunClearVersionNegotiation::test_old_version_no_body_clears_whole_run",
		setup: wholeRun,
		check: func(t *testing.T, e *drEnv) {
			// 2026-10-30's payload has no only_failed.
			wantJSON(t, e.at("2026-10-30", "POST", "/execution/dag-runs/test_old_clear_no_body/test_run_id/clear", `{"only_failed":true}`), 422,
				`{"detail":[{"type":"extra_forbidden","loc":["body","only_failed"],"msg":"Extra inputs are not permitted","input":true}]}`)
			wantNoContent(t, e.at("2026-10-30", "POST", "/execution/dag-runs/test_old_clear_no_body/test_run_id/clear", ""), 204)
			// The whole run is cleared: the successful try as the failed one.
			after := e.tis("test_old_clear_no_body", "test_run_id")
			if len(after) != 2 {
				t.Fatalf("task instances after the clear: %+v", after)
			}
			for _, ti := range after {
				if ti.State != "" {
					t.Errorf("%s: state %q after a whole-run clear, want none", ti.TaskID, ti.State)
				}
			}
		},
	}, {
		name:  "test_capabilities.py::test_min_version_only_failed_clear_is_registered",
		setup: wholeRun,
		check: func(t *testing.T, e *drEnv) {
			// MIN_VERSION_ONLY_FAILED_CLEAR is 2026-11-13: a registered
			// version, whose clear honours only_failed.
			const minOnlyFailed = "2026-11-13"
			if props := openAPIProperties(t, e.url, minOnlyFailed, "ClearDagRunPayload"); props["only_failed"] == nil {
				t.Errorf("%s: ClearDagRunPayload has no only_failed", minOnlyFailed)
			}
			wantNoContent(t, e.at(minOnlyFailed, "POST", "/execution/dag-runs/test_old_clear_no_body/test_run_id/clear", `{"only_failed":true}`), 204)
			after := e.tis("test_old_clear_no_body", "test_run_id")
			for _, ti := range after {
				if cleared := ti.State == ""; cleared != (ti.TaskID == "failed_task") {
					t.Errorf("%s: state %q after a failed-only clear", ti.TaskID, ti.State)
				}
			}
		},
	}})
}

// TestConformanceVersionsClearPayload: the ClearDagRunPayload model per
// version, as the OpenAPI document of each version (Cadwyn's generated
// models) has it.
func TestConformanceVersionsClearPayload(t *testing.T) {
	srv := startServer(t, newDataDir(t))
	t.Run("v2026_11_13/test_dag_runs.py::TestClearDagRunPayloadVersioning::test_field_present_in_current_version", func(t *testing.T) {
		if props := openAPIProperties(t, srv.URL, "2026-11-13", "ClearDagRunPayload"); props["only_failed"] == nil {
			t.Errorf("2026-11-13: ClearDagRunPayload properties %v, want only_failed", props)
		}
	})
	t.Run("v2026_11_13/test_dag_runs.py::TestClearDagRunPayloadVersioning::test_field_negotiated_away_in_previous_version", func(t *testing.T) {
		if props := openAPIProperties(t, srv.URL, "2026-10-30", "ClearDagRunPayload"); props["only_failed"] != nil {
			t.Errorf("2026-10-30: ClearDagRunPayload has only_failed")
		}
	})
	t.Run("test_capabilities.py::test_min_version_only_failed_clear_is_supported_by_head", func(t *testing.T) {
		// A request naming no version is answered at the newest, which is
		// at least MIN_VERSION_ONLY_FAILED_CLEAR.
		r := sendAt(t, srv.URL, nil, "GET", "/execution/health", "", "")
		if v := r.header.Get("Airflow-API-Version"); v < "2026-11-13" {
			t.Errorf("newest version %q, older than 2026-11-13", v)
		}
	})
}

// TestConformanceVersionsPartitions: partition_key and partition_date of
// 2026-06-16 clients (served as 2026-04-06) on Airflow's database, whose
// dag_run rows carry partition_date.
func TestConformanceVersionsPartitions(t *testing.T) {
	partitionDate := time.Date(2026, 5, 20, 1, 0, 0, 0, time.UTC)
	const old = "2026-06-16"

	t.Run("v2026_06_30/test_task_instances.py::TestPartitionDateFieldBackwardCompat::test_old_version_strips_partition_date_from_dag_run", func(t *testing.T) {
		d := newPGDeployment(t)
		run := d.insertDagRun("test_dag", "test_run")
		d.exec(`UPDATE dag_run SET partition_key = $1, partition_date = $2 WHERE id = $3`, "2026-05-20", partitionDate, run.id)
		m := d.minter(t)
		q := d.insertQueuedTI(run, "test_partition_date_downgrade", 1, 0).q(m)
		srv := d.startReplica(t)
		r := sendVersion(t, srv.URL, old, "PATCH", tiPath(q.TIID, "run"), "Bearer "+q.Token, mustJSON(t, map[string]any{
			"state": "running", "hostname": "h", "unixname": "u", "pid": 1, "start_date": "2024-09-30T12:00:00Z",
		}))
		mustStatus(t, r, 200)
		var body struct {
			DagRun map[string]any `json:"dag_run"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		if body.DagRun["partition_key"] != "2026-05-20" {
			t.Errorf("%s: partition_key %v", r, body.DagRun["partition_key"])
		}
		if _, ok := body.DagRun["partition_date"]; ok {
			t.Errorf("%s: partition_date at %s", r, old)
		}
	})

	assetEvents := func(t *testing.T, withRun bool) []map[string]any {
		t.Helper()
		d := newPGDeployment(t)
		run := d.insertDagRun("dag", "run")
		m := d.minter(t)
		q := d.insertQueuedTI(run, "reader", 1, 0).q(m)
		d.exec(`INSERT INTO asset (id, name, uri, "group", extra, created_at, updated_at)
			VALUES (1, 'test_asset', 's3://bucket/key', 'asset', '{}'::json, $1, $1)`, day(1))
		d.exec(`INSERT INTO asset_active (name, uri) VALUES ('test_asset', 's3://bucket/key')`)
		d.exec(`INSERT INTO asset_event (id, asset_id, extra, source_task_id, source_dag_id, source_run_id,
			source_map_index, timestamp, partition_key) VALUES (1, 1, '{}'::json, 'emit', 'producer', 'scheduled__1', -1, $1, $2)`,
			day(1), "2026-05-20T01:00:00")
		if withRun {
			consumer := d.insertDagRun("consumer_dag", "consumer_run")
			d.exec(`UPDATE dag_run SET partition_key = $1, partition_date = $2 WHERE id = $3`, "2026-05-20", partitionDate, consumer.id)
			d.exec(`INSERT INTO dagrun_asset_event (dag_run_id, event_id) VALUES ($1, 1)`, consumer.id)
		}
		srv := d.startReplica(t)
		tok := startedToken(t, srv.URL, q)
		r := sendVersion(t, srv.URL, old, "GET", "/execution/asset-events/by-asset?name=test_asset&uri=s3%3A%2F%2Fbucket%2Fkey",
			"Bearer "+tok, "")
		mustStatus(t, r, 200)
		var body struct {
			Events []map[string]any `json:"asset_events"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil || len(body.Events) != 1 {
			t.Fatalf("%s: want one event (%v)", r, err)
		}
		return body.Events
	}
	t.Run("v2026_06_30/test_asset_events.py::test_partition_date_stripped_at_top_level_for_older_clients", func(t *testing.T) {
		ev := assetEvents(t, false)[0]
		if _, ok := ev["partition_key"]; !ok {
			t.Errorf("event %v: no partition_key", ev)
		}
		if _, ok := ev["partition_date"]; ok {
			t.Errorf("event %v: partition_date at %s", ev, old)
		}
	})
	t.Run("v2026_06_30/test_asset_events.py::test_partition_date_stripped_from_created_dagruns_for_older_clients", func(t *testing.T) {
		ev := assetEvents(t, true)[0]
		runs, _ := ev["created_dagruns"].([]any)
		if len(runs) == 0 {
			t.Fatalf("event %v: no created_dagruns", ev)
		}
		for _, x := range runs {
			ref, _ := x.(map[string]any)
			if ref["partition_key"] != "2026-05-20" {
				t.Errorf("created dag run %v: partition_key", ref)
			}
			if _, ok := ref["partition_date"]; ok {
				t.Errorf("created dag run %v: partition_date at %s", ref, old)
			}
		}
	})
}
