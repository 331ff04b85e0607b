package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

func admitAll(*workload.Dag) error { return nil }

func TestDagRows(t *testing.T) {
	db, af, _ := newTestStore(t)
	ctx := context.Background()
	if _, err := db.Dag(ctx, "etl"); !errors.Is(err, workload.ErrDagNotFound) {
		t.Fatalf("unknown dag: %v", err)
	}
	af.DagRun(t, pgtest.DagRunRow{DagID: "etl", RunID: "r"})
	d, err := db.Dag(ctx, "etl")
	if err != nil || d.Paused() || d.IsPaused == nil || d.AllowedRunTypes != nil || len(d.Tags) != 0 ||
		d.BundleName == nil || *d.BundleName != pgtest.DefaultBundle || d.RelativeFileloc == nil {
		t.Fatalf("dag: %+v, %v", d, err)
	}
	af.Exec(t, `UPDATE dag SET is_paused = true, allowed_run_types = '["manual"]', has_import_errors = true WHERE dag_id = 'etl'`)
	af.Exec(t, `INSERT INTO dag_tag (name, dag_id) VALUES ('b', 'etl'), ('a', 'etl')`)
	d, err = db.Dag(ctx, "etl")
	if err != nil || !d.Paused() || len(d.AllowedRunTypes) != 1 || !d.HasImportErrors || len(d.Tags) != 2 || d.Tags[0] != "a" {
		t.Fatalf("dag: %+v, %v", d, err)
	}
}

func TestTriggerDagRunRows(t *testing.T) {
	db, af, _ := newTestStore(t)
	ctx := context.Background()
	user := "alice"
	af.DagRun(t, pgtest.DagRunRow{DagID: "parent", RunID: "p", TriggeringUser: &user})
	parent := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "parent", RunID: "p", State: "running"})
	ld := t0.Add(time.Hour)
	pk := "p1"
	dr := workload.NewTriggeredRun("child", "c", &ld, nil, []byte(`{"a":1}`), &pk, nil, nil, t0)
	if err := db.TriggerDagRun(ctx, dr, parent.ID, admitAll); !errors.Is(err, workload.ErrDagNotFound) {
		t.Fatalf("unknown dag: %v", err)
	}
	af.DagRun(t, pgtest.DagRunRow{DagID: "child", RunID: "existing"})
	af.Exec(t, `UPDATE dag SET is_stale = true WHERE dag_id = 'child'`)
	if err := db.TriggerDagRun(ctx, dr, parent.ID, admitAll); !errors.Is(err, workload.ErrDagNotFound) {
		t.Fatalf("stale dag: %v", err)
	}
	af.Exec(t, `UPDATE dag SET is_stale = false WHERE dag_id = 'child'`)
	if err := db.TriggerDagRun(ctx, dr, parent.ID, admitAll); err != nil {
		t.Fatal(err)
	}
	var (
		state, runType, triggeredBy, conf string
		queuedAt                          time.Time
		userName, partition               *string
		versionMatches                    bool
		logTemplate, clearNumber          int
	)
	scanRow(t, db, `SELECT state, run_type, triggered_by, conf::text, queued_at, triggering_user_name, partition_key,
			created_dag_version_id = (SELECT id FROM dag_version WHERE dag_id = 'child'),
			log_template_id, clear_number
		FROM dag_run WHERE dag_id = 'child' AND run_id = 'c'`, nil,
		&state, &runType, &triggeredBy, &conf, &queuedAt, &userName, &partition, &versionMatches, &logTemplate, &clearNumber)
	if state != "queued" || runType != "operator_triggered" || triggeredBy != "operator" || !jsonEqual(t, []byte(conf), []byte(`{"a":1}`)) ||
		!queuedAt.Equal(t0) || userName == nil || *userName != "alice" || partition == nil || *partition != "p1" ||
		!versionMatches || logTemplate != 1 || clearNumber != 0 {
		t.Fatalf("row: %s %s %s %s %v %v %v %v %d %d", state, runType, triggeredBy, conf, queuedAt, userName, partition,
			versionMatches, logTemplate, clearNumber)
	}
	if err := db.TriggerDagRun(ctx, dr, parent.ID, admitAll); !errors.Is(err, workload.ErrAlreadyExists) {
		t.Fatalf("again: %v", err)
	}
	got, err := db.DagRun(ctx, "child", "c")
	if err != nil || !got.LogicalDate.Equal(ld) || !got.DataIntervalEnd.Equal(t0) || !got.RunAfter.Equal(t0) || got.StartDate != nil {
		t.Fatalf("read back: %+v, %v", got, err)
	}
}

func TestClearDagRunRows(t *testing.T) {
	db, af, clk := newTestStore(t)
	ctx := context.Background()
	af.DagRun(t, pgtest.DagRunRow{DagID: "etl", RunID: "r", State: "success", EndDate: &t0})
	failed := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "etl", RunID: "r", TaskID: "a", State: "failed",
		TryNumber: 2, MaxTries: 1})
	ok := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "etl", RunID: "r", TaskID: "b", State: "success"})
	running := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "etl", RunID: "r", TaskID: "c", State: "running"})
	af.Exec(t, `INSERT INTO task_reschedule (ti_id, start_date, end_date, duration, reschedule_date)
		VALUES ($1::uuid, now(), now(), 0, now())`, failed.ID)
	clk.Add(time.Minute)
	// A try's status is cached before the clear; the clear must update it.
	if st, err := db.TryStatus(ctx, running.ID); err != nil || !st.Current {
		t.Fatalf("before: %+v %v", st, err)
	}
	if err := db.ClearDagRun(ctx, "etl", "r", false, admitAll); err != nil {
		t.Fatal(err)
	}
	type row struct {
		id, state string
		maxTries  int
	}
	read := func(task string) row {
		var r row
		scanRow(t, db, `SELECT id::text, coalesce(state, ''), max_tries FROM task_instance
			WHERE dag_id = 'etl' AND run_id = 'r' AND task_id = $1`, []any{task}, &r.id, &r.state, &r.maxTries)
		return r
	}
	if r := read("a"); r.id == failed.ID || r.state != "" || r.maxTries != 2 {
		t.Errorf("failed try: %+v", r)
	}
	if r := read("b"); r.id == ok.ID || r.state != "" {
		t.Errorf("successful try: %+v", r)
	}
	if r := read("c"); r.id == running.ID || r.state != "restarting" {
		t.Errorf("running try: %+v", r)
	}
	var ended, failedEnd bool
	scanRow(t, db, `SELECT end_date = $1 FROM task_instance WHERE dag_id = 'etl' AND task_id = 'c'`,
		[]any{t0.Add(time.Minute)}, &ended)
	scanRow(t, db, `SELECT end_date IS NULL FROM task_instance WHERE dag_id = 'etl' AND task_id = 'a'`, nil, &failedEnd)
	if !ended || !failedEnd {
		t.Errorf("end dates: the running try's set %v, the failed try's kept %v", ended, failedEnd)
	}
	var hist int
	scanRow(t, db, `SELECT count(*) FROM task_instance_history WHERE task_instance_id = ANY($1::uuid[])
		AND state IN ('failed', 'success')`, []any{[]string{failed.ID, ok.ID, running.ID}}, &hist)
	if hist != 3 {
		t.Errorf("history rows: %d", hist)
	}
	var reschedules int
	scanRow(t, db, `SELECT count(*) FROM task_reschedule`, nil, &reschedules)
	if reschedules != 0 {
		t.Errorf("reschedules left: %d", reschedules)
	}
	if st, err := db.TryStatus(ctx, running.ID); err != nil || st.Current {
		t.Errorf("the cleared running try's status: %+v %v", st, err)
	}
	var (
		state     string
		clearNum  int
		start     *time.Time
		queuedAt  time.Time
		lastSched *time.Time
	)
	scanRow(t, db, `SELECT state, clear_number, start_date, queued_at, last_scheduling_decision FROM dag_run
		WHERE dag_id = 'etl' AND run_id = 'r'`, nil, &state, &clearNum, &start, &queuedAt, &lastSched)
	if state != "queued" || clearNum != 1 || start != nil || !queuedAt.Equal(t0.Add(time.Minute)) || lastSched != nil {
		t.Errorf("run: %s %d %v %v %v", state, clearNum, start, queuedAt, lastSched)
	}
	if err := db.ClearDagRun(ctx, "etl", "nope", false, admitAll); !errors.Is(err, workload.ErrNotFound) ||
		errors.Is(err, workload.ErrDagNotFound) {
		t.Errorf("unknown run: %v", err)
	}
}

func TestDagRunTeamName(t *testing.T) {
	db, af, _ := newTestStore(t)
	ctx := context.Background()
	af.DagRun(t, pgtest.DagRunRow{DagID: "etl", RunID: "r"})
	if dr, err := db.DagRun(ctx, "etl", "r"); err != nil || dr.TeamName != nil {
		t.Fatalf("outside multi-team mode: %+v, %v", dr, err)
	}
	af.Exec(t, `INSERT INTO team (name) VALUES ('blue')`)
	af.Exec(t, `INSERT INTO dag_bundle_team (dag_bundle_name, team_name) VALUES ($1, 'blue')`, pgtest.DefaultBundle)
	if dr, err := db.DagRun(ctx, "etl", "r"); err != nil || dr.TeamName == nil || *dr.TeamName != "blue" {
		t.Fatalf("team of the bundle: %+v, %v", dr, err)
	}
}

func TestCountAndPreviousDagRunRows(t *testing.T) {
	db, af, _ := newTestStore(t)
	ctx := context.Background()
	day := func(i int) *time.Time { d := t0.Add(time.Duration(i) * 24 * time.Hour); return &d }
	for i, st := range []string{"success", "failed", "running"} {
		af.DagRun(t, pgtest.DagRunRow{DagID: "etl", RunID: "r" + string(rune('1'+i)), State: st, LogicalDate: day(i)})
	}
	if n, err := db.CountDagRuns(ctx, workload.DagRunFilter{DagID: "etl", States: []string{"success", "failed"},
		LogicalDates: []time.Time{*day(0), *day(1), *day(2)}, RunIDs: []string{"r1", "r2", "r3"}}); err != nil || n != 2 {
		t.Errorf("count = %d, %v", n, err)
	}
	if prev, err := db.PreviousDagRun(ctx, "etl", *day(2), "success"); err != nil || prev.RunID != "r1" {
		t.Errorf("previous success: %+v, %v", prev, err)
	}
	if prev, err := db.PreviousDagRun(ctx, "etl", *day(2), ""); err != nil || prev.RunID != "r2" {
		t.Errorf("previous: %+v, %v", prev, err)
	}
	if _, err := db.PreviousDagRun(ctx, "etl", *day(0), ""); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("none before: %v", err)
	}
}
