package pgstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

func TestTeams(t *testing.T) {
	db, af, _ := newTestStore(t)
	ctx := context.Background()
	ti := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "etl", RunID: "r", State: "running"}).ID
	af.Variable(t, "shared", "v")
	af.Variable(t, "blue_only", "v")
	af.Exec(t, `INSERT INTO connection (conn_id, conn_type, is_encrypted, is_extra_encrypted) VALUES ('shared', 'http', false, false), ('blue_only', 'http', false, false)`)

	check := func(what string, got string, err error, want string) {
		t.Helper()
		if err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", what, got, err, want)
		}
	}
	team, err := db.TaskInstanceTeam(ctx, ti)
	check("task of an unteamed bundle", team, err, "")
	team, err = db.BundleTeam(ctx, pgtest.DefaultBundle)
	check("unteamed bundle", team, err, "")

	af.Exec(t, `INSERT INTO team (name) VALUES ('blue'), ('red')`)
	af.Exec(t, `INSERT INTO dag_bundle_team (dag_bundle_name, team_name) VALUES ($1, 'blue')`, pgtest.DefaultBundle)
	af.Exec(t, `UPDATE variable SET team_name = 'blue' WHERE key = 'blue_only'`)
	af.Exec(t, `UPDATE connection SET team_name = 'blue' WHERE conn_id = 'blue_only'`)

	team, err = db.TaskInstanceTeam(ctx, ti)
	check("task of a blue bundle", team, err, "blue")
	team, err = db.TaskInstanceTeam(ctx, "019a0000-0000-7000-8000-000000000000")
	check("unknown task", team, err, "")
	team, err = db.TaskInstanceTeam(ctx, "not-a-uuid")
	check("task id not a UUID", team, err, "")
	team, err = db.BundleTeam(ctx, pgtest.DefaultBundle)
	check("blue bundle", team, err, "blue")
	team, err = db.BundleTeam(ctx, "unknown")
	check("unknown bundle", team, err, "")
	team, err = db.VariableTeam(ctx, "blue_only")
	check("blue variable", team, err, "blue")
	team, err = db.VariableTeam(ctx, "shared")
	check("unteamed variable", team, err, "")
	team, err = db.VariableTeam(ctx, "missing")
	check("unknown variable", team, err, "")
	team, err = db.ConnectionTeam(ctx, "blue_only")
	check("blue connection", team, err, "blue")
	team, err = db.ConnectionTeam(ctx, "shared")
	check("unteamed connection", team, err, "")
	team, err = db.ConnectionTeam(ctx, "missing")
	check("unknown connection", team, err, "")
}

// TestTeamVariableWrites: Airflow's Variable.set and Variable.delete with a
// task's team under [core] multi_team.
func TestTeamVariableWrites(t *testing.T) {
	db, af, _ := newTestStore(t)
	ctx := context.Background()
	af.Exec(t, `INSERT INTO team (name) VALUES ('blue'), ('red')`)
	val := func(s string) *string { return &s }
	teamOf := func(key string) string {
		t.Helper()
		team, err := db.VariableTeam(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return team
	}
	if err := db.PutTeamVariable(ctx, workload.Variable{Key: "k", Value: val("1")}, "blue"); err != nil {
		t.Fatal(err)
	}
	if got := teamOf("k"); got != "blue" {
		t.Errorf("after blue's insert: team %q", got)
	}
	// PutVariable keeps the team; a write of no team clears it.
	if err := db.PutVariable(ctx, workload.Variable{Key: "k", Value: val("2")}); err != nil {
		t.Fatal(err)
	}
	if got := teamOf("k"); got != "blue" {
		t.Errorf("after PutVariable: team %q, want blue kept", got)
	}
	if err := db.PutTeamVariable(ctx, workload.Variable{Key: "k", Value: val("3")}, ""); err != nil {
		t.Fatal(err)
	}
	if v, err := db.Variable(ctx, "k"); err != nil || *v.Value != "3" || teamOf("k") != "" {
		t.Errorf("after a write of no team: %+v, %v, team %q", v, err, teamOf("k"))
	}
	if err := db.PutTeamVariable(ctx, workload.Variable{Key: "k", Value: val("4")}, "red"); err != nil {
		t.Fatal(err)
	}
	// Another team's and no team's deletes leave red's variable.
	for _, team := range []string{"blue", ""} {
		if err := db.DeleteTeamVariable(ctx, "k", team); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Variable(ctx, "k"); err != nil {
			t.Errorf("after %q's delete: %v", team, err)
		}
	}
	if err := db.DeleteTeamVariable(ctx, "k", "red"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Variable(ctx, "k"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("after red's delete: %v", err)
	}
	// An unteamed variable goes with any team's delete.
	if err := db.PutVariable(ctx, workload.Variable{Key: "u", Value: val("x")}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteTeamVariable(ctx, "u", "blue"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Variable(ctx, "u"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("unteamed variable after blue's delete: %v", err)
	}
}

func TestTeamVariableKeys(t *testing.T) {
	db, af, _ := newTestStore(t)
	ctx := context.Background()
	af.Exec(t, `INSERT INTO team (name) VALUES ('blue'), ('red')`)
	for _, k := range []string{"a_blue", "a_red", "a_shared", "b_blue"} {
		af.Variable(t, k, "v")
	}
	af.Exec(t, `UPDATE variable SET team_name = 'blue' WHERE key LIKE '%blue'`)
	af.Exec(t, `UPDATE variable SET team_name = 'red' WHERE key = 'a_red'`)
	for _, tc := range []struct {
		team, prefix  string
		limit, offset int
		want          []string
		total         int
	}{
		{"blue", "", 0, 0, []string{"a_blue", "a_shared", "b_blue"}, 3},
		{"blue", "a_", 0, 0, []string{"a_blue", "a_shared"}, 2},
		{"red", "", 1, 1, []string{"a_shared"}, 2},
		{"green", "", 0, 0, []string{"a_shared"}, 1},
	} {
		keys, total, err := db.TeamVariableKeys(ctx, tc.team, tc.prefix, tc.limit, tc.offset)
		if err != nil || total != tc.total || strings.Join(keys, ",") != strings.Join(tc.want, ",") {
			t.Errorf("TeamVariableKeys(%q, %q, %d, %d) = %v, %d, %v; want %v, %d", tc.team, tc.prefix, tc.limit, tc.offset,
				keys, total, err, tc.want, tc.total)
		}
	}
	if keys, total, err := db.VariableKeys(ctx, "", 0, 0); err != nil || total != 4 || len(keys) != 4 {
		t.Errorf("VariableKeys: %v, %d, %v", keys, total, err)
	}
}
