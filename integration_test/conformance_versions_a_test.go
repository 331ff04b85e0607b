package integration_test

// Airflow's tests of older Execution API versions
// (airflow-core/tests/unit/api_fastapi/execution_api/versions/v2025_03_19 …
// v2026_04_17) against the real binary: each request names the version its
// Airflow test sends in Airflow-API-Version, and the checks are the Airflow
// test's. Requests of Airflow's `client` fixture, which sends no version,
// go without the header and are served the newest version. Fixtures are
// written into the bbolt file before the binary starts, or into Airflow's
// tables as Airflow writes them (pgtest).

import (
	"context"
	"encoding/json"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/workload"
)

// vaEnv is a running server and the minter of its tokens.
type vaEnv struct {
	t       *testing.T
	backend workersBackend
	url     string
	m       *minter
}

// vaSetup writes a case's fixtures on one store before the server starts.
type vaSetup struct {
	t   *testing.T
	emb *embeddedFixtures
	pg  *pgFixtures
}

func (s *vaSetup) fixtures() drFixtures {
	if s.emb != nil {
		return s.emb
	}
	return s.pg
}

// run stores a dag run; a Conf of JSON null is a run whose conf column is
// NULL, as a run from Airflow 2 or an offline migration has.
func (s *vaSetup) run(dr workload.DagRun) {
	s.t.Helper()
	s.fixtures().run(dr)
	if s.pg != nil && string(dr.Conf) == "null" {
		s.pg.d.exec(`UPDATE dag_run SET conf = NULL WHERE dag_id = $1 AND run_id = $2`, dr.DagID, dr.RunID)
	}
}

// queued stores a task instance the scheduler queued (create_task_instance
// with state QUEUED), resuming next_method with next_kwargs when they are
// set, and returns its id.
func (s *vaSetup) queued(dagID, runID, taskID string, nextMethod *string, nextKwargs json.RawMessage) string {
	s.t.Helper()
	if s.pg != nil {
		return s.pg.d.af.TaskInstance(s.t, pgtest.TaskInstanceRow{DagID: dagID, RunID: runID, TaskID: taskID,
			NextMethod: nextMethod, NextKwargsJSON: nextKwargs}).ID
	}
	ctx := context.Background()
	dr, err := s.emb.db.DagRun(ctx, dagID, runID)
	if err != nil {
		s.t.Fatal(err)
	}
	id, _ := uuid.NewV7()
	now := time.Now().UTC()
	ti := workload.TaskInstance{ID: id.String(), DagID: dagID, RunID: runID, TaskID: taskID, MapIndex: -1,
		TryNumber: 1, State: workload.StateQueued, Queue: "default", PoolSlots: 1, QueuedAt: &now, UpdatedAt: now,
		NextMethod: nextMethod, NextKwargs: nextKwargs}
	if _, err := s.emb.db.InsertTaskInstance(ctx, *dr, ti, nil); err != nil {
		s.t.Fatal(err)
	}
	return ti.ID
}

// startVersionsEnv writes the fixtures of setup on backend and starts the
// server.
func startVersionsEnv(t *testing.T, backend workersBackend, setup func(s *vaSetup)) *vaEnv {
	t.Helper()
	e := &vaEnv{t: t, backend: backend}
	switch backend {
	case embeddedBackend:
		dataDir := newDataDir(t)
		db, err := store.Open(filepath.Join(dataDir, "taskgate.db"), store.Options{OpenTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		setup(&vaSetup{t: t, emb: &embeddedFixtures{t: t, db: db}})
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		e.url = startServer(t, dataDir, noAuthLimit).URL
		e.m = newMinter(t, dataDir)
	case postgresBackend:
		d := newPGDeployment(t)
		setup(&vaSetup{t: t, pg: &pgFixtures{t: t, d: d}})
		e.url = d.startReplica(t, noAuthLimit).URL
		e.m = d.minter(t)
	default:
		t.Fatalf("unknown backend %s", backend)
	}
	return e
}

// send makes one request at version ("": no Airflow-API-Version header,
// Airflow's `client` fixture) with authz.
func (e *vaEnv) send(version, method, path, authz, body string) *response {
	e.t.Helper()
	if version == "" {
		return sendAt(e.t, e.url, nil, method, path, authz, body)
	}
	return sendVersion(e.t, e.url, version, method, path, authz, body)
}

// runPatchBody is RUN_PATCH_BODY of Airflow's version tests.
const runPatchBody = `{"state":"running","hostname":"test-hostname","unixname":"test-user","pid":12345,` +
	`"start_date":"2024-09-30T12:00:00Z"}`

// startRun sends PATCH /run for a queued task instance with its workload
// token at version and returns the run context, decoded.
func (e *vaEnv) startRun(version, tiID string) (*response, map[string]any) {
	e.t.Helper()
	r := e.send(version, "PATCH", tiPath(tiID, "run"), "Bearer "+e.m.workload(tiID), runPatchBody)
	mustStatus(e.t, r, 200)
	var rc map[string]any
	if err := json.Unmarshal(r.body, &rc); err != nil {
		e.t.Fatalf("%s: %v", r, err)
	}
	return r, rc
}

// dagRunOf is the run context's dag_run.
func dagRunOf(t *testing.T, r *response, rc map[string]any) map[string]any {
	t.Helper()
	dr, ok := rc["dag_run"].(map[string]any)
	if !ok {
		t.Fatalf("%s: no dag_run", r)
	}
	return dr
}

// vaTimestamp is TIMESTAMP of Airflow's version tests.
var vaTimestamp = time.Date(2024, 9, 30, 12, 0, 0, 0, time.UTC)

// createTaskInstanceRun is the run create_task_instance makes: dag_id's
// run "test", manual, its logical date now and its data interval the day
// before it, in state (started at now unless queued).
func createTaskInstanceRun(dagID, state string, now time.Time) workload.DagRun {
	dr := workload.DagRun{DagID: dagID, RunID: "test", RunType: "manual", State: state,
		LogicalDate: &now, RunAfter: now, DataIntervalStart: ptrTime(now.AddDate(0, 0, -1)), DataIntervalEnd: &now}
	if state != "queued" {
		dr.StartDate = &now
	}
	return dr
}

func ptrTime(t time.Time) *time.Time { return &t }

func TestConformanceVersionsTaskInstanceRun(t *testing.T) {
	for _, b := range workersBackends {
		t.Run(string(b), func(t *testing.T) {
			ids := map[string]string{}
			nullConf := createTaskInstanceRun("null_conf", "running", time.Now().UTC().Truncate(time.Second))
			nullConf.Conf = json.RawMessage("null")
			e := startVersionsEnv(t, b, func(s *vaSetup) {
				for _, c := range []struct {
					key string
					dr  workload.DagRun
				}{
					{"triggering_user", createTaskInstanceRun("triggering_user", "running", vaTimestamp)},
					{"null_conf", nullConf},
					{"queued_run_old", createTaskInstanceRun("queued_run_old", "queued", vaTimestamp)},
					{"queued_run_old_v20260406", createTaskInstanceRun("queued_run_old_v20260406", "queued", vaTimestamp)},
					{"queued_run_head", createTaskInstanceRun("queued_run_head", "queued", vaTimestamp)},
					{"queued_run_head_v20260406", createTaskInstanceRun("queued_run_head_v20260406", "queued", vaTimestamp)},
					{"started_run", createTaskInstanceRun("started_run", "running", vaTimestamp)},
					{"started_run_v20260406", createTaskInstanceRun("started_run_v20260406", "running", vaTimestamp)},
					{"team_old", createTaskInstanceRun("team_old", "running", vaTimestamp)},
					{"team_head", createTaskInstanceRun("team_head", "running", vaTimestamp)},
				} {
					s.run(c.dr)
					ids[c.key] = s.queued(c.dr.DagID, "test", c.key, nil, nil)
				}
			})

			t.Run("v2025_09_23/test_task_instances.py::TestTIRunStateV20250923::test_ti_run_excludes_triggering_user_name", func(t *testing.T) {
				r, rc := e.startRun("2025-09-23", ids["triggering_user"])
				dr := dagRunOf(t, r, rc)
				if _, ok := dr["triggering_user_name"]; ok {
					t.Errorf("%s: triggering_user_name at 2025-09-23", r)
				}
				if dr["dag_id"] != "triggering_user" || dr["run_id"] != "test" || dr["state"] != "running" ||
					!reflect.DeepEqual(dr["conf"], map[string]any{}) {
					t.Errorf("%s: dag_run", r)
				}
			})
			t.Run("v2025_09_23/test_task_instances.py::TestTIRunConfV20250923::test_ti_run_null_conf_converted_to_dict", func(t *testing.T) {
				r, rc := e.startRun("2025-09-23", ids["null_conf"])
				dr := dagRunOf(t, r, rc)
				if !reflect.DeepEqual(dr["conf"], map[string]any{}) || dr["dag_id"] != "null_conf" || dr["run_id"] != "test" {
					t.Errorf("%s: dag_run conf %v, want {}", r, dr["conf"])
				}
			})

			// TestDagRunStartDateNullableBackwardCompat, as
			// v2026_03_31/test_task_instances.py (a 2025-12-08 client) and
			// v2026_04_06/test_task_instances.py (a 2025-11-05 client) run it.
			for _, c := range []struct{ version, suffix, nullOld, nullHead, preserved string }{
				{"2025-12-08", "",
					"v2026_03_31/test_task_instances.py::TestDagRunStartDateNullableBackwardCompat::test_old_version_gets_run_after_when_start_date_is_null",
					"v2026_03_31/test_task_instances.py::TestDagRunStartDateNullableBackwardCompat::test_head_version_allows_null_start_date",
					"v2026_03_31/test_task_instances.py::TestDagRunStartDateNullableBackwardCompat::test_old_version_preserves_real_start_date"},
				{"2025-11-05", "_v20260406",
					"v2026_04_06/test_task_instances.py::TestDagRunStartDateNullableBackwardCompat::test_old_version_gets_run_after_when_start_date_is_null",
					"v2026_04_06/test_task_instances.py::TestDagRunStartDateNullableBackwardCompat::test_head_version_allows_null_start_date",
					"v2026_04_06/test_task_instances.py::TestDagRunStartDateNullableBackwardCompat::test_old_version_preserves_real_start_date"},
			} {
				t.Run(c.nullOld, func(t *testing.T) {
					r, rc := e.startRun(c.version, ids["queued_run_old"+c.suffix])
					dr := dagRunOf(t, r, rc)
					if dr["start_date"] == nil || dr["start_date"] != dr["run_after"] {
						t.Errorf("%s: start_date %v, want run_after %v", r, dr["start_date"], dr["run_after"])
					}
				})
				t.Run(c.nullHead, func(t *testing.T) {
					r, rc := e.startRun("", ids["queued_run_head"+c.suffix])
					dr := dagRunOf(t, r, rc)
					if v, ok := dr["start_date"]; !ok || v != nil {
						t.Errorf("%s: start_date %v, want null", r, v)
					}
				})
				t.Run(c.preserved, func(t *testing.T) {
					r, rc := e.startRun(c.version, ids["started_run"+c.suffix])
					if dr := dagRunOf(t, r, rc); dr["start_date"] != "2024-09-30T12:00:00Z" {
						t.Errorf("%s: start_date %v, want 2024-09-30T12:00:00Z", r, dr["start_date"])
					}
				})
			}

			t.Run("v2026_04_17/test_task_instances.py::TestTeamNameFieldBackwardCompat::test_old_version_strips_team_name_even_when_set", func(t *testing.T) {
				r, rc := e.startRun("2026-04-06", ids["team_old"])
				if _, ok := dagRunOf(t, r, rc)["team_name"]; ok {
					t.Errorf("%s: team_name at 2026-04-06", r)
				}
			})
			t.Run("v2026_04_17/test_task_instances.py::TestTeamNameFieldBackwardCompat::test_head_version_includes_team_name_field", func(t *testing.T) {
				r, rc := e.startRun("", ids["team_head"])
				if v, ok := dagRunOf(t, r, rc)["team_name"]; !ok || v != nil {
					t.Errorf("%s: team_name %v (present %v), want null", r, v, ok)
				}
			})
		})
	}
}

// TestConformanceVersionsNextKwargs: v2026_04_06/test_task_instances.py's
// TestNextKwargsBackwardCompat. A task resuming from deferral gets
// next_kwargs as stored at the newest version, and in BaseSerialization
// form at 2025-11-05, which task-sdk < 1.2 decodes. The embedded store
// keeps next_kwargs as the worker sent it (SDK serde), as Airflow's model
// hands it to the route.
func TestConformanceVersionsNextKwargs(t *testing.T) {
	execComplete, fail := "execute_complete", "__fail__"
	// serde's encoding of {"event": TIMESTAMP, "simple": True}, TIMESTAMP a
	// pendulum DateTime in UTC.
	serdeDatetime := `{"event":{"__classname__":"pendulum.datetime.DateTime","__version__":2,"__data__":{"timestamp":1727697600.0,` +
		`"tz":{"__classname__":"builtins.tuple","__version__":1,"__data__":["UTC","pendulum.tz.timezone.Timezone",1,true]}}},` +
		`"simple":true}`
	cases := []struct {
		name, version string
		method        *string
		stored        string
		want          string
	}{
		{"v2026_04_06/test_task_instances.py::TestNextKwargsBackwardCompat::test_old_version_gets_base_serialization_format", "2025-11-05", &execComplete,
			`{"cheesecake":true,"event":"payload"}`, `{"__type":"dict","__var":{"cheesecake":true,"event":"payload"}}`},
		{"v2026_04_06/test_task_instances.py::TestNextKwargsBackwardCompat::test_old_version_deserializes_complex_types", "2025-11-05", &execComplete, serdeDatetime,
			`{"__type":"dict","__var":{"event":{"__type":"datetime","__var":1727697600.0},"simple":true}}`},
		{"v2026_04_06/test_task_instances.py::TestNextKwargsBackwardCompat::test_old_version_handles_already_base_serialization_in_db", "2025-11-05", &execComplete,
			`{"__type":"dict","__var":{"cheesecake":true,"event":"payload"}}`,
			`{"__type":"dict","__var":{"cheesecake":true,"event":"payload"}}`},
		{"v2026_04_06/test_task_instances.py::TestNextKwargsBackwardCompat::test_old_version_handles_submit_failure_plain_dict", "2025-11-05", &fail,
			`{"error":"Trigger timeout"}`, `{"__type":"dict","__var":{"error":"Trigger timeout"}}`},
		{"v2026_04_06/test_task_instances.py::TestNextKwargsBackwardCompat::test_head_version_returns_raw_serde_format", "", &execComplete,
			`{"cheesecake":true,"event":"payload"}`, `{"cheesecake":true,"event":"payload"}`},
	}
	for _, b := range workersBackends {
		t.Run(string(b), func(t *testing.T) {
			ids := map[string]string{}
			e := startVersionsEnv(t, b, func(s *vaSetup) {
				for _, c := range cases {
					dr := createTaskInstanceRun(c.name[strings.LastIndex(c.name, ":")+1:], "running", vaTimestamp)
					s.run(dr)
					ids[c.name] = s.queued(dr.DagID, dr.RunID, "test_next_kwargs", c.method, json.RawMessage(c.stored))
				}
			})
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					r, rc := e.startRun(c.version, ids[c.name])
					got, _ := json.Marshal(rc["next_kwargs"])
					if !jsonEqual(got, c.want) {
						t.Errorf("%s: next_kwargs %s, want %s", r, got, c.want)
					}
				})
			}
		})
	}
}

// TestConformanceVersionsDagRuns: the dag-run and DAG routes of older
// versions (the compat GET /dag-runs/{dag_id}/previous, GET /dags/{dag_id}).
func TestConformanceVersionsDagRuns(t *testing.T) {
	for _, backend := range drBackends {
		t.Run(backend, func(t *testing.T) {
			e := startDagRunEnv(t, backend, func(f drFixtures) {
				previousRuns("test_dag_id", dateOn(2025, 1, 10))(f)
				simpleDag(f, "compat_dag")
				simpleDag(f, "compat_dag_queued")
				simpleDag(f, "test_dag")
				user := "alice"
				for _, r := range []workload.DagRun{
					{DagID: "compat_dag", RunID: "previous", State: "success", LogicalDate: dateOn(2025, 1, 1), TriggeringUserName: &user},
					{DagID: "compat_dag", RunID: "current", State: "success", LogicalDate: dateOn(2025, 1, 10)},
					{DagID: "compat_dag_queued", RunID: "queued_previous", State: "queued", LogicalDate: dateOn(2025, 1, 1)},
					{DagID: "compat_dag_queued", RunID: "current", State: "success", LogicalDate: dateOn(2025, 1, 10)},
				} {
					r.RunType, r.RunAfter = "manual", time.Date(2025, 12, 13, 0, 0, 0, 0, time.UTC)
					if r.State != "queued" {
						r.StartDate = dateOn(2025, 12, 13)
					}
					f.run(r)
					f.ti(r.DagID, r.RunID, "test_task", "")
				}
			})
			at := func(version, path string) *response {
				t.Helper()
				return sendVersion(t, e.url, version, "GET", path, "Bearer "+e.token, "")
			}
			previous := func(dagID string) string {
				return "/execution/dag-runs/" + dagID + "/previous?" +
					url.Values{"logical_date": {"2025-01-10T00:00:00+00:00"}}.Encode()
			}
			for _, c := range []struct{ name, version string }{
				{"v2025_11_07/test_dag_runs.py::test_get_previous_dag_run_redirect", "2025-11-07"},
				{"v2026_04_06/test_dag_runs.py::test_get_previous_dag_run_redirect", "2025-11-05"},
			} {
				t.Run(c.name, func(t *testing.T) {
					r := at(c.version, previous("test_dag_id"))
					e.want(r, 200, "")
					if drField(t, r, "dag_id") != "test_dag_id" || drField(t, r, "run_id") != "run2" ||
						drField(t, r, "state") != "failed" {
						t.Errorf("previous: %s", r.body)
					}
				})
			}
			// ADDED_AFTER of test_dag_runs_compat.py: the DagRun fields
			// newer than each version.
			addedAfter := map[string][]string{
				"2025-08-10": {"triggering_user_name", "note", "partition_key", "team_name", "partition_date"},
				"2025-11-05": {"note", "partition_key", "team_name", "partition_date"},
			}
			for _, c := range []struct{ name, v string }{
				{"v2025_11_05/test_dag_runs_compat.py::test_compat_previous_dag_run_hides_later_fields[2025-08-10]", "2025-08-10"},
				{"v2025_11_05/test_dag_runs_compat.py::test_compat_previous_dag_run_hides_later_fields[2025-11-05]", "2025-11-05"},
			} {
				v := c.v
				t.Run(c.name, func(t *testing.T) {
					r := at(v, previous("compat_dag"))
					e.want(r, 200, "")
					var body map[string]any
					if err := json.Unmarshal(r.body, &body); err != nil {
						t.Fatal(err)
					}
					if body["run_id"] != "previous" {
						t.Errorf("%s: run_id %v, want previous", r, body["run_id"])
					}
					for _, f := range addedAfter[v] {
						if _, ok := body[f]; ok {
							t.Errorf("%s: %s at %s", r, f, v)
						}
					}
					if _, ok := body["triggering_user_name"]; v == "2025-11-05" && !ok {
						t.Errorf("%s: no triggering_user_name at 2025-11-05, which added it", r)
					}
				})
			}
			t.Run("v2025_11_05/test_dag_runs_compat.py::test_compat_previous_dag_run_start_date_is_never_null", func(t *testing.T) {
				r := at("2025-11-05", previous("compat_dag_queued"))
				e.want(r, 200, "")
				if drField(t, r, "run_id") != "queued_previous" || drField(t, r, "start_date") == nil {
					t.Errorf("%s: want queued_previous with a start_date", r)
				}
			})
			for _, c := range []struct{ name, version string }{
				{"v2026_03_31/test_dags.py::test_dag_endpoint_not_available_in_previous_version", "2026-03-31"},
				{"v2026_04_06/test_dags.py::test_dag_endpoint_not_available_in_previous_version", "2025-11-05"},
			} {
				t.Run(c.name, func(t *testing.T) {
					wantJSON(t, at(c.version, "/execution/dags/test_dag"), 404, `{"detail":"Not Found"}`)
					// The DAG exists: the version, not the DAG, is missing.
					mustStatus(t, at(headAPIVersion, "/execution/dags/test_dag"), 200)
				})
			}
		})
	}
}

// TestConformanceVersionsConnectionTests: PATCH /connection-tests/{id}
// exists from 2026-06-30 on.
func TestConformanceVersionsConnectionTests(t *testing.T) {
	for _, b := range workersBackends {
		t.Run(string(b), func(t *testing.T) {
			old := connectionTestFixture(workload.ConnectionTestRunning, workload.Connection{ConnID: "test_conn", ConnType: "test_type"}, false)
			head := connectionTestFixture(workload.ConnectionTestRunning, workload.Connection{ConnID: "test_conn", ConnType: "test_type"}, false)
			e := newWorkersEnv(t, b, workersSeed{connectionTests: []workload.ConnectionTest{old, head}})
			body := `{"state":"success","result_message":"ok"}`
			t.Run("v2026_03_31/test_connection_tests.py::TestConnectionTestEndpointVersioning::test_old_version_returns_404", func(t *testing.T) {
				r := sendVersion(t, e.srv.URL, "2025-12-08", "PATCH", "/execution/connection-tests/"+old.ID,
					e.token(old.ID, "workload"), body)
				wantJSON(t, r, 404, `{"detail":"Not Found"}`)
			})
			t.Run("v2026_03_31/test_connection_tests.py::TestConnectionTestEndpointVersioning::test_head_version_works", func(t *testing.T) {
				r := sendAt(t, e.srv.URL, nil, "PATCH", "/execution/connection-tests/"+head.ID, e.token(head.ID, "workload"), body)
				wantNoContent(t, r, 204)
			})
			if state, _ := e.connectionTestResult(old.ID); state != "running" {
				t.Errorf("the 2025-12-08 request changed the test: %s", state)
			}
			if state, msg := e.connectionTestResult(head.ID); state != "success" || msg == nil || *msg != "ok" {
				t.Errorf("the newest version's report: %s %v", state, msg)
			}
		})
	}
}

// TestConformanceVersionsAssetEvents: asset events at 2025-09-23, before
// partition_key.
func TestConformanceVersionsAssetEvents(t *testing.T) {
	// The test_asset_events fixture's events, without partition_key.
	want := wantEvents(1, 2, 3)
	for _, ev := range want["asset_events"].([]any) {
		delete(ev.(map[string]any), "partition_key")
	}
	for _, b := range assetBackends {
		t.Run(b.name, func(t *testing.T) {
			base, qs := b.start(t, eventsFixture, 1)
			tok := startedToken(t, base, qs[0])
			for i, name := range []string{
				"v2025_09_23/test_asset_events.py::TestGetAssetEventByAsset::test_should_not_have_partition_key[None-test_get_asset_by_name]",
				"v2025_09_23/test_asset_events.py::TestGetAssetEventByAsset::test_should_not_have_partition_key[s3://bucket/key-None]",
				"v2025_09_23/test_asset_events.py::TestGetAssetEventByAsset::test_should_not_have_partition_key[s3://bucket/key-test_get_asset_by_name]",
			} {
				p := byAssetParams[i]
				if !strings.HasSuffix(name, "["+p.id+"]") {
					t.Fatalf("%s is not the parameters %s", name, p.id)
				}
				t.Run(name, func(t *testing.T) {
					r := sendVersion(t, base, "2025-09-23", "GET", "/execution/asset-events/by-asset?"+p.query, "Bearer "+tok, "")
					mustStatus(t, r, 200)
					var got map[string]any
					if err := json.Unmarshal(r.body, &got); err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s\nwant %v", r, want)
					}
				})
			}
		})
	}
}

// TestConformanceVersionsNestedCreatedDagRuns: the dag runs an asset event
// created lose partition_key at 2025-11-05 too. Only Airflow's database
// records the runs an event created (dagrun_asset_event); the embedded
// store creates no dag runs from asset events.
func TestConformanceVersionsNestedCreatedDagRuns(t *testing.T) {
	d := newPGDeployment(t)
	caller := d.insertQueuedTI(d.insertDagRun("dag", "run"), "caller", 1, 0)
	// asset_event_with_created_dagrun
	d.exec(`INSERT INTO asset (id, name, uri, "group", extra, created_at, updated_at)
		VALUES (1, 'test_asset', 's3://bucket/key', 'asset', '{}', $1, $1)`, day(1))
	d.exec(`INSERT INTO asset_active (name, uri) VALUES ('test_asset', 's3://bucket/key')`)
	d.exec(`INSERT INTO asset_event (id, asset_id, extra, source_task_id, source_dag_id, source_run_id,
		source_map_index, timestamp, partition_key) VALUES (1, 1, '{}', 'source_task', 'source_dag', 'source_run', -1, $1, NULL)`,
		time.Date(2021, 1, 2, 0, 0, 0, 0, time.UTC))
	def := day(1)
	created := d.af.DagRun(t, pgtest.DagRunRow{DagID: "created_dag", RunID: "created_run", RunType: "asset_triggered",
		State: "success", TriggeredBy: "asset", LogicalDate: &def, DataIntervalStart: &def, DataIntervalEnd: &def})
	d.exec(`INSERT INTO dagrun_asset_event (dag_run_id, event_id) VALUES ($1, 1)`, created.ID)
	d.exec(`INSERT INTO asset_alias (id, name, "group") VALUES (1, 'test_alias', '')`)
	d.exec(`INSERT INTO asset_alias_asset (alias_id, asset_id) VALUES (1, 1)`)
	d.exec(`INSERT INTO asset_alias_asset_event (alias_id, event_id) VALUES (1, 1)`)
	srv := d.startReplica(t)
	tok := "Bearer " + startedToken(t, srv.URL, caller.q(d.minter(t)))

	events := func(t *testing.T, r *response) []map[string]any {
		t.Helper()
		mustStatus(t, r, 200)
		var body struct {
			Events []map[string]any `json:"asset_events"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		if len(body.Events) == 0 {
			t.Fatalf("%s: the fixture must produce at least one event", r)
		}
		return body.Events
	}
	for _, c := range []struct{ name, path string }{
		{"v2025_11_05/test_asset_events_nested.py::test_nested_created_dagruns_hide_partition_key[by-asset]",
			"/execution/asset-events/by-asset?name=test_asset&uri="},
		{"v2025_11_05/test_asset_events_nested.py::test_nested_created_dagruns_hide_partition_key[by-asset-alias]",
			"/execution/asset-events/by-asset-alias?name=test_alias"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := sendVersion(t, srv.URL, "2025-11-05", "GET", c.path, tok, "")
			for _, ev := range events(t, r) {
				if _, ok := ev["partition_key"]; ok {
					t.Errorf("%s: an event's partition_key at 2025-11-05", r)
				}
				runs, _ := ev["created_dagruns"].([]any)
				if len(runs) != 1 {
					t.Fatalf("%s: created_dagruns %v, want created_run", r, ev["created_dagruns"])
				}
				for _, cr := range runs {
					if _, ok := cr.(map[string]any)["partition_key"]; ok {
						t.Errorf("%s: a created dag run's partition_key at 2025-11-05", r)
					}
				}
			}
			// The newest version has it, on both.
			head := sendAt(t, srv.URL, nil, "GET", c.path, tok, "")
			for _, ev := range events(t, head) {
				if _, ok := ev["created_dagruns"].([]any)[0].(map[string]any)["partition_key"]; !ok {
					t.Errorf("%s: no created dag run partition_key at the newest version", head)
				}
			}
		})
	}
}
