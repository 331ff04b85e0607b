package integration_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

// The arg_bindings of a stub task's run context
// (TestArgBindingsFieldBackwardCompat): the DAG of Airflow's stub_ti
// fixture, serialized as its DAG processor writes it (two @task.stub tasks,
// transform("uk", extract()) with limit defaulting to 10), on Airflow's
// database as the serialized DAG of the try's version, on the embedded
// store as the DAG's record.

// stubOperator is a @task.stub task as the serializer writes it, with
// arg_bindings when set.
func stubOperator(taskID string, downstream []any, argBindings any) map[string]any {
	op := map[string]any{"task_id": taskID, "task_type": workload.StubOperatorClass,
		"_task_module": "airflow.providers.standard.decorators.stub", "_operator_name": "@task.stub",
		"ui_color": "#fff", "ui_fgcolor": "#000", "template_fields": []any{}, "downstream_task_ids": downstream,
		"is_stub": true}
	if argBindings != nil {
		op["arg_bindings"] = argBindings
	}
	return map[string]any{"__type": "operator", "__var": op}
}

// transformBindings is what build_arg_bindings captures of
// transform(country: str, extracted: dict, limit: int = 10) called as
// transform("uk", extract()).
var transformBindings = []any{
	map[string]any{"name": "country", "kind": "literal", "value": "uk", "value_schema": map[string]any{"type": "string"}},
	map[string]any{"name": "extracted", "kind": "xcom", "task_id": "extract",
		"value_schema": map[string]any{"type": "object", "additionalProperties": true}},
	map[string]any{"name": "limit", "kind": "literal", "value": 10, "from_default": true,
		"value_schema": map[string]any{"type": "integer", "format": "int64"}},
}

// wantTransformBindings is the head test's expected arg_bindings.
const wantTransformBindings = `[
	{"name": "country", "kind": "literal", "value_schema": {"type": "string"}, "value": "uk"},
	{"name": "extracted", "kind": "xcom", "value_schema": {"type": "object", "additionalProperties": true}, "task_id": "extract"},
	{"name": "limit", "kind": "literal", "value_schema": {"type": "integer", "format": "int64"}, "value": 10, "from_default": true}]`

// stubDag writes dagID's serialized tasks on the setup's store and queues
// each task in a new running dag run of it; it returns the task instance
// ids by task id.
func (s *vaSetup) stubDag(dagID string, tasks []map[string]any) map[string]string {
	s.t.Helper()
	dr := createTaskInstanceRun(dagID, "running", vaTimestamp)
	s.run(dr)
	ids := map[string]string{}
	if s.pg != nil {
		s.pg.d.af.SerializedDag(s.t, dagID, tasks, false)
		for _, op := range tasks {
			v := op["__var"].(map[string]any)
			ids[v["task_id"].(string)] = s.pg.d.af.TaskInstance(s.t, pgtest.TaskInstanceRow{DagID: dagID, RunID: dr.RunID,
				TaskID: v["task_id"].(string), Operator: v["task_type"].(string)}).ID
		}
		return ids
	}
	doc, err := json.Marshal(map[string]any{"__version": 3, "dag": map[string]any{"dag_id": dagID, "tasks": tasks}})
	if err != nil {
		s.t.Fatal(err)
	}
	stubs, err := workload.SerializedStubTasks(doc)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.emb.db.PutDag(context.Background(), workload.Dag{DagID: dagID, StubTasks: stubs}); err != nil {
		s.t.Fatal(err)
	}
	for _, op := range tasks {
		id := op["__var"].(map[string]any)["task_id"].(string)
		ids[id] = s.queued(dagID, dr.RunID, id, nil, nil)
	}
	return ids
}

func TestConformanceArgBindings(t *testing.T) {
	for _, b := range workersBackends {
		t.Run(string(b), func(t *testing.T) {
			// One stub_ti per Airflow test (each runs with a fresh database).
			compat := map[string]map[string]string{}
			var invalid, invalidOld, plain map[string]string
			e := startVersionsEnv(t, b, func(s *vaSetup) {
				for _, key := range []string{"v2026_10_30 old", "v2026_07_30 old", "head"} {
					compat[key] = s.stubDag("test_arg_bindings_compat_dag_"+strings.ReplaceAll(key, " ", "_"), []map[string]any{
						stubOperator("extract", []any{"transform"}, nil),
						stubOperator("transform", []any{}, transformBindings),
					})
				}
				// A spec that fails Airflow's TaskArgBinding model: an xcom
				// binding without its task_id.
				for _, d := range []struct {
					dagID string
					ids   *map[string]string
				}{{"invalid_arg_bindings_dag", &invalid}, {"invalid_arg_bindings_old_dag", &invalidOld}} {
					*d.ids = s.stubDag(d.dagID, []map[string]any{
						stubOperator("transform", []any{}, []any{map[string]any{"name": "extracted", "kind": "xcom"}}),
					})
				}
				plain = s.stubDag("plain_dag", []map[string]any{
					pgtest.OperatorJSON("task", nil, nil),
					stubOperator("empty_spec", []any{}, []any{}),
				})
			})
			for _, c := range []struct{ airflow, key, version string }{
				{"v2026_10_30/test_task_instances.py::TestArgBindingsFieldBackwardCompat::test_old_version_strips_arg_bindings_even_when_set",
					"v2026_10_30 old", "2026-06-30"},
				{"v2026_07_30/test_task_instances.py::TestArgBindingsFieldBackwardCompat::test_old_version_strips_arg_bindings_even_when_set",
					"v2026_07_30 old", "2026-06-30"},
			} {
				t.Run(c.airflow, func(t *testing.T) {
					id := compat[c.key]["transform"]
					r := e.send(c.version, "PATCH", tiPath(id, "run"), "Bearer "+e.m.workload(id),
						`{"state":"running","hostname":"h","unixname":"u","pid":1,"start_date":"2024-09-30T12:00:00Z"}`)
					mustStatus(t, r, 200)
					var rc map[string]json.RawMessage
					if err := json.Unmarshal(r.body, &rc); err != nil {
						t.Fatal(err)
					}
					if v, ok := rc["arg_bindings"]; ok {
						t.Errorf("%s: arg_bindings %s at %s", r, v, c.version)
					}
				})
			}
			t.Run("v2026_10_30/test_task_instances.py::TestArgBindingsFieldBackwardCompat::test_head_version_includes_arg_bindings", func(t *testing.T) {
				r, _ := e.startRun("", compat["head"]["transform"])
				var rc struct {
					ArgBindings json.RawMessage `json:"arg_bindings"`
				}
				if err := json.Unmarshal(r.body, &rc); err != nil {
					t.Fatal(err)
				}
				if !jsonEqual(rc.ArgBindings, wantTransformBindings) {
					t.Errorf("%s: arg_bindings %s, want %s", r, rc.ArgBindings, wantTransformBindings)
				}
			})
			t.Run("a stub task called without arguments has none", func(t *testing.T) {
				r, rc := e.startRun("", compat["head"]["extract"])
				if v, ok := rc["arg_bindings"]; ok {
					t.Errorf("%s: arg_bindings %v", r, v)
				}
			})
			t.Run("an empty spec and a task that is no stub have none", func(t *testing.T) {
				for _, id := range []string{plain["task"], plain["empty_spec"]} {
					r, rc := e.startRun("", id)
					if v, ok := rc["arg_bindings"]; ok {
						t.Errorf("%s: arg_bindings %v", r, v)
					}
				}
			})
			t.Run("an invalid spec: 500 invalid_arg_bindings at the newest version", func(t *testing.T) {
				id := invalid["transform"]
				// The client helpers fail on any 5xx; this 500 is the answer.
				req, err := http.NewRequest("PATCH", e.url+tiPath(id, "run"), strings.NewReader(runPatchBody))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+e.m.workload(id))
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				want := `{"detail":{"reason":"invalid_arg_bindings",` +
					`"message":"The serialized TaskFlow arg spec for this stub task is not valid."}}`
				if resp.StatusCode != http.StatusInternalServerError || !jsonEqual(body, want) {
					t.Errorf("PATCH run → %d %s, want 500 %s", resp.StatusCode, body, want)
				}
			})
			t.Run("an invalid spec is not read for a client before 2026-10-30", func(t *testing.T) {
				id := invalidOld["transform"]
				r := e.send("2026-06-30", "PATCH", tiPath(id, "run"), "Bearer "+e.m.workload(id), runPatchBody)
				mustStatus(t, r, 200)
			})
		})
	}
}
