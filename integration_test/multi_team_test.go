package integration_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMultiTeamRefused: with Airflow's [core] multi_team on, variables and
// connections belong to teams and a task may read only its own team's and
// the unteamed ones. taskgate does not scope them to teams, so it refuses
// to start rather than serve every team's values to every task: on the
// embedded store (which has no teams), from the environment or from
// airflow.cfg, and on Airflow's metadata database, leaving both as it found
// them. multi_team False starts as before.
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

	t.Run("Airflow's metadata database", func(t *testing.T) {
		d := newPGDeployment(t)
		var before int
		d.queryRow(`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`, nil, &before)
		f := serveMustFail(t, newDataDir(t), nil, append(d.env(), "AIRFLOW__CORE__MULTI_TEAM=True")...)
		wantClearError(t, "serve", f, "[core] multi_team", "AIRFLOW__CORE__MULTI_TEAM", "does not scope variables and connections to teams")
		var after int
		d.queryRow(`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`, nil, &after)
		if after != before {
			t.Errorf("Airflow's schema holds %d tables after the refused start, %d before", after, before)
		}
		d.startReplica(t, "AIRFLOW__CORE__MULTI_TEAM=False").stop()
	})
}
