package integration_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/workload"
)

// A dag run without conf (dag_run.conf NULL, as runs from Airflow 2 or an
// offline migration have): Airflow's DagRun.conf is optional since
// 2025-10-27, so the /run context and the dag-run reads answer null, and
// older versions, whose conf is a dict, get {}.
func TestConformanceRunWithNullConf(t *testing.T) {
	for _, b := range []struct {
		name  string
		start func(t *testing.T) (base string, q queued)
	}{
		{"embedded", startEmbeddedNullConf},
		{"postgres", startPostgresNullConf},
	} {
		t.Run(b.name, func(t *testing.T) {
			base, q := b.start(t)
			run := `{"state":"running","pid":100,"hostname":"test-hostname","unixname":"test-user","start_date":"` +
				time.Now().UTC().Format(time.RFC3339Nano) + `"}`
			var token string
			t.Run("test_task_instances.py::TestInvactiveInletsAndOutlets::test_ti_run_with_null_conf", func(t *testing.T) {
				w := newWorker(t, base, q.Token)
				r := w.do("PATCH", tiPath(q.TIID, "run"), run)
				mustStatus(t, r, 200)
				token = w.token
				var rc struct {
					DagRun map[string]json.RawMessage `json:"dag_run"`
				}
				if err := json.Unmarshal(r.body, &rc); err != nil {
					t.Fatal(err)
				}
				if c, ok := rc.DagRun["conf"]; !ok || string(c) != "null" {
					t.Errorf("dag_run.conf = %s, want null: %s", c, r.body)
				}
			})
			if token == "" {
				t.Fatal("the task did not start")
			}
			conf := func(t *testing.T, version, path string, dagRunKey bool) string {
				t.Helper()
				r := sendVersion(t, base, version, "GET", path, "Bearer "+token, "")
				if version == "" {
					r = send(t, base, "GET", path, "Bearer "+token, "")
				}
				mustStatus(t, r, 200)
				var m map[string]json.RawMessage
				if err := json.Unmarshal(r.body, &m); err != nil {
					t.Fatal(err)
				}
				if dagRunKey {
					if err := json.Unmarshal(m["dag_run"], &m); err != nil {
						t.Fatal(err)
					}
				}
				return string(m["conf"])
			}
			runPath := "/execution/dag-runs/" + q.DagID + "/" + q.RunID
			for _, c := range []struct {
				name, version, want string
			}{
				{"GET dag run: null at the newest version", "", "null"},
				{"GET dag run: null at 2026-04-06", "2026-04-06", "null"},
			} {
				t.Run(c.name, func(t *testing.T) {
					if got := conf(t, c.version, runPath, false); got != c.want {
						t.Errorf("conf = %s, want %s", got, c.want)
					}
				})
			}
			t.Run("previous dag run: null from 2025-10-27, {} before", func(t *testing.T) {
				for version, want := range map[string]string{"2025-10-27": "null", "2025-09-23": "{}"} {
					r := sendVersion(t, base, version, "GET", query("/execution/dag-runs/"+q.DagID+"/previous",
						"logical_date", "2100-01-01T00:00:00Z"), "Bearer "+token, "")
					wantField(t, r, "conf", want)
				}
			})
			t.Run("previous dag run: null", func(t *testing.T) {
				r := send(t, base, "GET", query("/execution/dag-runs/previous", "dag_id", q.DagID,
					"logical_date", "2100-01-01T00:00:00Z"), "Bearer "+token, "")
				wantField(t, r, "conf", "null")
			})
		})
	}
	// An older client's /run context: conf {} (its DagRun.conf is a dict).
	t.Run("run context before 2025-10-27: {}", func(t *testing.T) {
		base, q := startEmbeddedNullConf(t)
		r := sendVersion(t, base, "2025-09-23", "PATCH", tiPath(q.TIID, "run"), "Bearer "+q.Token,
			`{"state":"running","pid":1,"hostname":"h","unixname":"u","start_date":"2025-01-01T00:00:00Z"}`)
		mustStatus(t, r, 200)
		var rc struct {
			DagRun map[string]json.RawMessage `json:"dag_run"`
		}
		if err := json.Unmarshal(r.body, &rc); err != nil || string(rc.DagRun["conf"]) != "{}" {
			t.Errorf("dag_run.conf: %s", r.body)
		}
	})
}

// wantField checks that r is a 200 whose top-level key holds want (JSON).
func wantField(t *testing.T, r *response, key, want string) {
	t.Helper()
	mustStatus(t, r, 200)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	if got, ok := m[key]; !ok || string(got) != want {
		t.Errorf("%s: %s = %s, want %s", r, key, got, want)
	}
}

// startEmbeddedNullConf writes a running dag run without conf and a queued
// task instance of it into a bbolt file, starts the server on it and
// returns the task instance with its workload token.
func startEmbeddedNullConf(t *testing.T) (string, queued) {
	t.Helper()
	dataDir := newDataDir(t)
	// The data directory's keys exist once a workload was queued.
	queueTask(t, dataDir, "other_dag", "other_run", "other_task")
	db, err := store.Open(filepath.Join(dataDir, "taskgate.db"), store.Options{OpenTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	logical := time.Date(2025, 6, 6, 0, 0, 0, 0, time.UTC)
	dr := workload.DagRun{DagID: "null_conf_dag", RunID: "null_conf_run", RunType: "manual", State: "running",
		LogicalDate: &logical, RunAfter: logical, StartDate: &logical}
	if err := db.PutDagRun(ctx, dr); err != nil {
		t.Fatal(err)
	}
	id, _ := uuid.NewV7()
	ti := workload.TaskInstance{ID: id.String(), DagID: dr.DagID, RunID: dr.RunID, TaskID: "test_ti_run_with_null_conf",
		MapIndex: -1, TryNumber: 1, State: workload.StateQueued, Queue: "default", PoolSlots: 1, UpdatedAt: time.Now().UTC()}
	if _, err := db.InsertTaskInstance(ctx, dr, ti, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, dataDir)
	m := newMinter(t, dataDir)
	return s.URL, queued{Token: m.workload(ti.ID), TIID: ti.ID, DagID: dr.DagID, RunID: dr.RunID,
		TaskID: ti.TaskID, MapIndex: -1}
}

// startPostgresNullConf is startEmbeddedNullConf on Airflow's database: the
// dag run's conf column set to NULL.
func startPostgresNullConf(t *testing.T) (string, queued) {
	t.Helper()
	d := newPGDeployment(t)
	logical := time.Date(2025, 6, 6, 0, 0, 0, 0, time.UTC)
	row := d.af.DagRun(t, pgtest.DagRunRow{DagID: "null_conf_dag", RunID: "null_conf_run", LogicalDate: &logical})
	r := &afRun{dagID: row.DagID, runID: row.RunID, id: row.ID}
	d.exec(`UPDATE dag_run SET conf = NULL WHERE dag_id = $1 AND run_id = $2`, r.dagID, r.runID)
	ti := d.insertQueuedTI(r, "test_ti_run_with_null_conf", 1, 0)
	s := d.startReplica(t)
	return s.URL, ti.q(d.minter(t))
}
