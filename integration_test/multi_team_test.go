package integration_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

// TestMultiTeamRefused: with Airflow's [core] multi_team on, variables and
// connections belong to teams and a task may read only its own team's and
// the unteamed ones. The embedded store has no teams, so taskgate refuses
// to start on it rather than serve every team's values to every task,
// whether the key comes from the environment or from airflow.cfg, and
// leaves the data directory as it found it. multi_team False starts as
// before.
func TestMultiTeamRefused(t *testing.T) {
	t.Run("embedded store, from the environment", func(t *testing.T) {
		dataDir := newDataDir(t)
		mustCLI(t, dataDir, "variables", "set", "k", "v")
		before := fileDigests(t, dataDir)
		f := serveMustFail(t, dataDir, nil, "AIRFLOW__CORE__MULTI_TEAM=True")
		wantClearError(t, "serve", f, "[core] multi_team", "AIRFLOW__CORE__MULTI_TEAM", "the embedded store has no teams")
		wantSameFiles(t, "refused start", before, fileDigests(t, dataDir))
	})

	t.Run("embedded store, from airflow.cfg", func(t *testing.T) {
		dataDir := newDataDir(t)
		cfg := filepath.Join(t.TempDir(), "airflow.cfg")
		if err := os.WriteFile(cfg, []byte("[core]\nmulti_team = true\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		f := serveMustFail(t, dataDir, nil, "AIRFLOW_CONFIG="+cfg)
		wantClearError(t, "serve", f, "[core] multi_team", cfg, "the embedded store has no teams")
	})

	t.Run("embedded store, multi_team False", func(t *testing.T) {
		startServer(t, newDataDir(t), "AIRFLOW__CORE__MULTI_TEAM=False").stop()
	})

}

// teamTask is a running task instance of a DAG in bundle, which is mapped
// to team ("" for none), with its execution token's worker.
func teamTask(t *testing.T, d *pgDeployment, srv *server, m *minter, dagID, bundle, team string) *worker {
	t.Helper()
	r := d.af.DagRun(t, pgtest.DagRunRow{DagID: dagID, RunID: "run_" + pgtest.UUIDv7()})
	if bundle != pgtest.DefaultBundle {
		d.exec(`INSERT INTO dag_bundle (name, active) VALUES ($1, true) ON CONFLICT (name) DO NOTHING`, bundle)
		d.exec(`UPDATE dag SET bundle_name = $1 WHERE dag_id = $2`, bundle, dagID)
	}
	if team != "" {
		d.exec(`INSERT INTO team (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, team)
		d.exec(`INSERT INTO dag_bundle_team (dag_bundle_name, team_name) VALUES ($1, $2) ON CONFLICT DO NOTHING`, bundle, team)
	}
	ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.DagID, RunID: r.RunID, TaskID: "task", State: "running",
		Hostname: "worker", PID: ptrInt(1)})
	return newWorker(t, srv.URL, m.execution(ti.ID))
}

// TestMultiTeamPostgres: with [core] multi_team on Airflow's metadata
// database, a task reads, writes and deletes the variables and reads the
// connections of its own team (its DAG's bundle's, dag_bundle_team) and
// the unteamed ones, and is refused another team's with Airflow's 403; a
// task of no team reads every one. AIRFLOW_VAR__{TEAM}___{KEY} is its
// team's alone, the read cache never serves one team's body to another,
// and a deferred task's trigger is its team's.
func TestMultiTeamPostgres(t *testing.T) {
	d := newPGDeployment(t)
	srv := d.startReplica(t, noAuthLimit, "AIRFLOW__CORE__MULTI_TEAM=True",
		"AIRFLOW_VAR__BLUE___TEAM_KEY=blue's own", "AIRFLOW_VAR__BLUE___SECRET=blue's secret")
	m := d.minter(t)
	blue := teamTask(t, d, srv, m, "blue_dag", pgtest.DefaultBundle, "blue")
	red := teamTask(t, d, srv, m, "red_dag", "red-bundle", "red")
	none := teamTask(t, d, srv, m, "plain_dag", "plain-bundle", "")

	d.insertVariable("shared_var", "shared", "")
	d.insertVariable("blue_var", "blue value", "")
	d.insertVariable("red_var", "red value", "")
	d.exec(`UPDATE variable SET team_name = 'blue' WHERE key = 'blue_var'`)
	d.exec(`UPDATE variable SET team_name = 'red' WHERE key = 'red_var'`)
	d.insertConnection(afConnection{connID: "blue_conn", connType: "http", host: "blue.internal"})
	d.insertConnection(afConnection{connID: "red_conn", connType: "http", host: "red.internal"})
	d.exec(`UPDATE connection SET team_name = 'blue' WHERE conn_id = 'blue_conn'`)
	d.exec(`UPDATE connection SET team_name = 'red' WHERE conn_id = 'red_conn'`)
	team := func(table, column, id string) string {
		var name *string
		d.queryRow(`SELECT team_name FROM `+table+` WHERE `+column+` = $1`, []any{id}, &name)
		if name == nil {
			return ""
		}
		return *name
	}

	t.Run("test_access_control.py::TestAccessControl::test_variable_access_allowed_same_team", func(t *testing.T) {
		wantJSON(t, blue.do("GET", variablePath("blue_var"), ""), 200, `{"key":"blue_var","value":"blue value"}`)
		wantJSON(t, blue.do("GET", variablePath("shared_var"), ""), 200, `{"key":"shared_var","value":"shared"}`)
	})
	t.Run("test_access_control.py::TestAccessControl::test_variable_access_denied_different_team", func(t *testing.T) {
		wantJSON(t, blue.do("GET", variablePath("red_var"), ""), 403, `{"detail":"Task does not have access to variable red_var"}`)
		wantJSON(t, red.do("GET", variablePath("blue_var"), ""), 403, `{"detail":"Task does not have access to variable blue_var"}`)
	})
	t.Run("connections of the own team and of another", func(t *testing.T) {
		r := blue.do("GET", connectionPath("blue_conn"), "")
		mustStatus(t, r, 200)
		wantJSON(t, blue.do("GET", connectionPath("red_conn"), ""), 403, `{"detail":"Task does not have access to connection red_conn"}`)
	})
	t.Run("a task of no team reads every team's", func(t *testing.T) {
		wantJSON(t, none.do("GET", variablePath("red_var"), ""), 200, `{"key":"red_var","value":"red value"}`)
		mustStatus(t, none.do("GET", connectionPath("blue_conn"), ""), 200)
	})
	t.Run("team-namespaced environment variables", func(t *testing.T) {
		wantJSON(t, blue.do("GET", variablePath("team_key"), ""), 200, `{"key":"team_key","value":"blue's own"}`)
		// Cached for blue, never served to red or to a task of no team.
		wantJSON(t, blue.do("GET", variablePath("team_key"), ""), 200, `{"key":"team_key","value":"blue's own"}`)
		mustStatus(t, red.do("GET", variablePath("team_key"), ""), 404)
		mustStatus(t, none.do("GET", variablePath("team_key"), ""), 404)
		// The key spelling blue's namespace does not reach it.
		mustStatus(t, red.do("GET", variablePath("_blue___secret"), ""), 404)
		mustStatus(t, none.do("GET", variablePath("_blue___secret"), ""), 404)
	})
	t.Run("variable keys of the own team and the unteamed", func(t *testing.T) {
		wantJSON(t, blue.do("GET", "/execution/variables/keys", ""), 200, `{"keys":["blue_var","shared_var"],"total_entries":2}`)
		wantJSON(t, red.do("GET", "/execution/variables/keys?prefix=s", ""), 200, `{"keys":["shared_var"],"total_entries":1}`)
		wantJSON(t, red.do("GET", "/execution/variables/keys?limit=1&offset=1", ""), 200, `{"keys":["shared_var"],"total_entries":2}`)
		wantJSON(t, none.do("GET", "/execution/variables/keys", ""), 200, `{"keys":["blue_var","red_var","shared_var"],"total_entries":3}`)
	})
	t.Run("writes", func(t *testing.T) {
		wantJSON(t, blue.do("PUT", variablePath("red_var"), `{"val":"stolen"}`), 403, `{"detail":"Task does not have access to variable red_var"}`)
		wantJSON(t, red.do("GET", variablePath("red_var"), ""), 200, `{"key":"red_var","value":"red value"}`)
		wantJSON(t, blue.do("DELETE", variablePath("red_var"), ""), 403, `{"detail":"Task does not have access to variable red_var"}`)
		if got := team("variable", "key", "red_var"); got != "red" {
			t.Errorf("red_var's team after refused writes: %q", got)
		}
		// A write makes the variable the writer's team's, as Variable.set.
		wantJSON(t, blue.do("PUT", variablePath("shared_var"), `{"val":"blue wrote"}`), 201, `{"message":"Variable successfully set"}`)
		if got := team("variable", "key", "shared_var"); got != "blue" {
			t.Errorf("shared_var's team after blue's write: %q, want blue", got)
		}
		wantJSON(t, red.do("GET", variablePath("shared_var"), ""), 403, `{"detail":"Task does not have access to variable shared_var"}`)
		wantJSON(t, none.do("PUT", variablePath("new_var"), `{"val":"x"}`), 201, `{"message":"Variable successfully set"}`)
		if got := team("variable", "key", "new_var"); got != "" {
			t.Errorf("new_var's team after a write by no team: %q", got)
		}
		// A task of no team deletes only unteamed variables.
		wantNoContent(t, none.do("DELETE", variablePath("blue_var"), ""), 204)
		wantJSON(t, blue.do("GET", variablePath("blue_var"), ""), 200, `{"key":"blue_var","value":"blue value"}`)
		wantNoContent(t, blue.do("DELETE", variablePath("blue_var"), ""), 204)
		mustStatus(t, blue.do("GET", variablePath("blue_var"), ""), 404)
	})
	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_deferred_populates_trigger_team_name", func(t *testing.T) {
		r := d.af.DagRun(t, pgtest.DagRunRow{DagID: "blue_dag", RunID: "run_" + pgtest.UUIDv7()})
		ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.DagID, RunID: r.RunID, TaskID: "deferring", State: "running",
			Hostname: "worker", PID: ptrInt(1)})
		wantNoContent(t, newWorker(t, srv.URL, m.execution(ti.ID)).do("PATCH", tiPath(ti.ID, "state"),
			deferredPayload(deferredTriggerKwargs)), 204)
		var name *string
		d.queryRow(`SELECT tr.team_name FROM task_instance ti JOIN trigger tr ON tr.id = ti.trigger_id WHERE ti.id = $1::uuid`,
			[]any{ti.ID}, &name)
		if name == nil || *name != "blue" {
			t.Errorf("trigger.team_name %v, want blue", name)
		}
	})
}

// TestMultiTeamOffPostgres: with multi_team off (Airflow's default), teams
// in the database change nothing: every task reads every variable, and a
// deferred task's trigger has no team.
func TestMultiTeamOffPostgres(t *testing.T) {
	d := newPGDeployment(t)
	srv := d.startReplica(t, noAuthLimit, "AIRFLOW_VAR__BLUE___TEAM_KEY=blue's own")
	m := d.minter(t)
	blue := teamTask(t, d, srv, m, "blue_dag", pgtest.DefaultBundle, "blue")
	red := teamTask(t, d, srv, m, "red_dag", "red-bundle", "red")
	d.insertVariable("blue_var", "blue value", "")
	d.exec(`UPDATE variable SET team_name = 'blue' WHERE key = 'blue_var'`)
	wantJSON(t, red.do("GET", variablePath("blue_var"), ""), 200, `{"key":"blue_var","value":"blue value"}`)
	mustStatus(t, blue.do("GET", variablePath("team_key"), ""), 404)

	t.Run("test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_deferred_skips_trigger_team_name_when_multi_team_disabled", func(t *testing.T) {
		r := d.af.DagRun(t, pgtest.DagRunRow{DagID: "blue_dag", RunID: "run_" + pgtest.UUIDv7()})
		ti := d.af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.DagID, RunID: r.RunID, TaskID: "deferring", State: "running",
			Hostname: "worker", PID: ptrInt(1)})
		wantNoContent(t, newWorker(t, srv.URL, m.execution(ti.ID)).do("PATCH", tiPath(ti.ID, "state"),
			deferredPayload(deferredTriggerKwargs)), 204)
		var name *string
		d.queryRow(`SELECT tr.team_name FROM task_instance ti JOIN trigger tr ON tr.id = ti.trigger_id WHERE ti.id = $1::uuid`,
			[]any{ti.ID}, &name)
		if name != nil {
			t.Errorf("trigger.team_name %q, want NULL", *name)
		}
	})
}

// TestMultiTeamDagProcessorPostgres: a dag_processor token's team is the
// team of the bundle it names in the Airflow-Dag-Bundle header (Airflow's
// get_team_name_dep), so it reads its bundle's team's and unteamed
// variables and connections and not another team's.
func TestMultiTeamDagProcessorPostgres(t *testing.T) {
	e := newWorkersEnv(t, postgresBackend, workersSeed{
		jobs: []workload.Job{jobFixture(nil)},
		variables: []workload.Variable{{Key: "blue_var", Value: strPtr("blue")}, {Key: "red_var", Value: strPtr("red")},
			{Key: "shared_var", Value: strPtr("shared")}},
		connections: []workload.Connection{{ConnID: "red_conn", ConnType: "http", Host: strPtr("red.internal")}},
		serverEnv:   []string{"AIRFLOW__CORE__MULTI_TEAM=True"},
	})
	e.pg.exec(`INSERT INTO team (name) VALUES ('blue'), ('red')`)
	e.pg.exec(`INSERT INTO dag_bundle (name, active) VALUES ('bundle_a', true) ON CONFLICT (name) DO NOTHING`)
	e.pg.exec(`INSERT INTO dag_bundle_team (dag_bundle_name, team_name) VALUES ('bundle_a', 'blue')`)
	e.pg.exec(`UPDATE variable SET team_name = 'blue' WHERE key = 'blue_var'`)
	e.pg.exec(`UPDATE variable SET team_name = 'red' WHERE key = 'red_var'`)
	e.pg.exec(`UPDATE connection SET team_name = 'red' WHERE conn_id = 'red_conn'`)
	tok := e.jobToken(jobSession, e.jobIDs[0])
	t.Run("test_security.py::TestGetTeamNameDep::test_dag_processor_token_resolves_the_team_of_its_bundle", func(t *testing.T) {
		wantJSON(t, e.readFor("/execution/variables/blue_var", tok, "bundle_a"), 200, `{"key":"blue_var","value":"blue"}`)
		wantJSON(t, e.readFor("/execution/variables/shared_var", tok, "bundle_a"), 200, `{"key":"shared_var","value":"shared"}`)
		wantJSON(t, e.readFor("/execution/variables/red_var", tok, "bundle_a"), 403, `{"detail":"Task does not have access to variable red_var"}`)
		wantJSON(t, e.readFor("/execution/connections/red_conn", tok, "bundle_a"), 403, `{"detail":"Task does not have access to connection red_conn"}`)
	})
}
