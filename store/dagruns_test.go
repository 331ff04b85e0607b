package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskgate/taskgate/workload"
)

func admitAll(*workload.Dag) error { return nil }

func TestDagKnownByRecordOrRuns(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	if _, err := db.Dag(ctx, "etl"); !errors.Is(err, workload.ErrDagNotFound) {
		t.Fatalf("unknown dag: %v", err)
	}
	mustInsert(t, db, taskInstance("a", "etl", "r1", "t", -1))
	d, err := db.Dag(ctx, "etl")
	if err != nil || d.DagID != "etl" || d.Paused() || d.IsStale || d.HasImportErrors {
		t.Fatalf("dag known by its run: %+v, %v", d, err)
	}
	// A prefix of a known dag id is not known.
	if _, err := db.Dag(ctx, "et"); !errors.Is(err, workload.ErrDagNotFound) {
		t.Fatalf("prefix: %v", err)
	}
	paused := true
	if err := db.PutDag(ctx, workload.Dag{DagID: "etl", IsPaused: &paused, Tags: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if d, err := db.Dag(ctx, "etl"); err != nil || !d.Paused() || len(d.Tags) != 1 {
		t.Fatalf("dag record: %+v, %v", d, err)
	}
}

func TestTriggerDagRun(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	parentRun := dagRun("parent", "p", t0)
	parentRun.TriggeringUserName = ptr("alice")
	parent := mustInsertRun(t, db, parentRun, taskInstance("caller", "parent", "p", "t", -1))

	ld := t0.Add(time.Hour)
	dr := workload.NewTriggeredRun("child", "c1", &ld, nil, []byte(`{"a":1}`), nil, nil, ptr("mallory"), t0)
	if err := db.TriggerDagRun(ctx, dr, parent.ID, admitAll); !errors.Is(err, workload.ErrDagNotFound) {
		t.Fatalf("unknown dag: %v", err)
	}
	if err := db.PutDag(ctx, workload.Dag{DagID: "child"}); err != nil {
		t.Fatal(err)
	}
	refusal := errors.New("refused")
	if err := db.TriggerDagRun(ctx, dr, parent.ID, func(*workload.Dag) error { return refusal }); err != refusal {
		t.Fatalf("refused: %v", err)
	}
	if err := db.TriggerDagRun(ctx, dr, parent.ID, admitAll); err != nil {
		t.Fatal(err)
	}
	got, err := db.DagRun(ctx, "child", "c1")
	if err != nil || got.State != "queued" || got.TriggeringUserName == nil || *got.TriggeringUserName != "alice" ||
		!got.LogicalDate.Equal(ld) || string(got.Conf) != `{"a":1}` {
		t.Fatalf("triggered run: %+v, %v", got, err)
	}
	if err := db.TriggerDagRun(ctx, dr, parent.ID, admitAll); !errors.Is(err, workload.ErrAlreadyExists) {
		t.Fatalf("same run id: %v", err)
	}
	dr.RunID = "c2" // same logical date
	if err := db.TriggerDagRun(ctx, dr, parent.ID, admitAll); !errors.Is(err, workload.ErrAlreadyExists) {
		t.Fatalf("same logical date: %v", err)
	}
	dr.RunID, dr.LogicalDate = "c3", nil
	if err := db.TriggerDagRun(ctx, dr, "not-a-ti", admitAll); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.DagRun(ctx, "child", "c3"); got.TriggeringUserName != nil {
		t.Fatalf("unknown parent: user %v", *got.TriggeringUserName)
	}
	// Indexed: the previous run and the count see the new runs.
	if n, err := db.CountDagRuns(ctx, workload.DagRunFilter{DagID: "child"}); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}
	if prev, err := db.PreviousDagRun(ctx, "child", ld.Add(time.Second), ""); err != nil || prev.RunID != "c1" {
		t.Fatalf("previous: %+v, %v", prev, err)
	}
}

func TestClearDagRun(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	dr := dagRun("etl", "r", t0)
	dr.State, dr.EndDate = "failed", ptr(t0.Add(time.Hour))
	states := map[string]workload.State{"a": workload.StateFailed, "b": workload.StateSuccess,
		"c": workload.StateUpstreamFailed, "d": workload.StateRunning}
	ids := map[string]string{}
	for task, st := range states {
		ti := taskInstance("ti-"+task, "etl", "r", task, -1)
		ti.State = st
		mustInsertRun(t, db, dr, ti)
		ids[task] = ti.ID
	}
	if err := db.ClearDagRun(ctx, "etl", "nope", false, admitAll); !errors.Is(err, workload.ErrNotFound) ||
		errors.Is(err, workload.ErrDagNotFound) {
		t.Fatalf("unknown run: %v", err)
	}
	if err := db.ClearDagRun(ctx, "other", "r", false, admitAll); !errors.Is(err, workload.ErrDagNotFound) {
		t.Fatalf("unknown dag: %v", err)
	}
	if err := db.ClearDagRun(ctx, "etl", "r", true, admitAll); err != nil {
		t.Fatal(err)
	}
	cur, _, err := db.TaskInstances(ctx, workload.TaskInstanceFilter{DagID: "etl", RunID: "r"})
	if err != nil || len(cur) != 4 {
		t.Fatalf("current: %v, %v", cur, err)
	}
	for _, ti := range cur {
		cleared := ti.TaskID == "a" || ti.TaskID == "c"
		if cleared != (ti.ID != ids[ti.TaskID]) || (cleared && ti.State != "") || (!cleared && ti.State != states[ti.TaskID]) {
			t.Errorf("%s after clear: %+v", ti.TaskID, ti)
		}
		if cleared {
			st, err := db.TryStatus(ctx, ids[ti.TaskID])
			if err != nil || st.Current || st.State != states[ti.TaskID] {
				t.Errorf("%s: the archived try's status %+v, %v", ti.TaskID, st, err)
			}
			if st, err := db.TryStatus(ctx, ti.ID); err != nil || !st.Current {
				t.Errorf("%s: the new try's status %+v, %v", ti.TaskID, st, err)
			}
		}
	}
	got, _ := db.DagRun(ctx, "etl", "r")
	if got.State != "queued" || got.ClearNumber != 1 || got.StartDate != nil || got.EndDate != nil {
		t.Fatalf("cleared run: %+v", got)
	}
	// The whole run: the running try restarts under a new id, its old id
	// archived as failed; the queued run stays queued.
	if err := db.ClearDagRun(ctx, "etl", "r", false, admitAll); err != nil {
		t.Fatal(err)
	}
	cur, _, _ = db.TaskInstances(ctx, workload.TaskInstanceFilter{DagID: "etl", RunID: "r", TaskID: "d"})
	if len(cur) != 1 || cur[0].State != workload.StateRestarting || cur[0].ID == ids["d"] {
		t.Fatalf("running try after clear: %+v", cur)
	}
	if st, err := db.TryStatus(ctx, ids["d"]); err != nil || st.Current || st.State != workload.StateFailed {
		t.Fatalf("archived running try: %+v, %v", st, err)
	}
	if got, _ := db.DagRun(ctx, "etl", "r"); got.State != "queued" || got.ClearNumber != 1 {
		t.Fatalf("queued run cleared again: %+v", got)
	}
	// A refusal writes nothing.
	refusal := errors.New("refused")
	if err := db.ClearDagRun(ctx, "etl", "r", false, func(*workload.Dag) error { return refusal }); err != refusal {
		t.Fatalf("refused: %v", err)
	}
}

func TestCountAndPreviousDagRuns(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	for i, st := range []string{"success", "failed", "running", "success"} {
		dr := dagRun("etl", "r"+string(rune('1'+i)), t0.Add(time.Duration(i)*24*time.Hour))
		dr.State = st
		if err := db.PutDagRun(ctx, dr); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutDagRun(ctx, dagRun("etl2", "r1", t0)); err != nil {
		t.Fatal(err)
	}
	if err := db.PutDagRun(ctx, dagRun("etl", "r1", t0.Add(time.Minute))); !errors.Is(err, workload.ErrAlreadyExists) {
		t.Fatalf("taken run id: %v", err)
	}
	day := func(i int) time.Time { return t0.Add(time.Duration(i) * 24 * time.Hour) }
	for _, c := range []struct {
		f    workload.DagRunFilter
		want int
	}{
		{workload.DagRunFilter{DagID: "etl"}, 4},
		{workload.DagRunFilter{DagID: "etl", States: []string{"success", "failed"}}, 3},
		{workload.DagRunFilter{DagID: "etl", RunIDs: []string{"r1", "r3", "zz"}}, 2},
		{workload.DagRunFilter{DagID: "etl", LogicalDates: []time.Time{day(1), day(2).In(time.FixedZone("x", 3600))}}, 2},
		{workload.DagRunFilter{DagID: "etl", States: []string{"success"}, RunIDs: []string{"r2"}}, 0},
		{workload.DagRunFilter{DagID: "none"}, 0},
	} {
		if n, err := db.CountDagRuns(ctx, c.f); err != nil || n != c.want {
			t.Errorf("count %+v = %d, %v; want %d", c.f, n, err, c.want)
		}
	}
	for _, c := range []struct {
		before time.Time
		state  string
		want   string
	}{
		{day(3), "", "r3"}, {day(3), "success", "r1"}, {day(3), "failed", "r2"}, {day(0), "", ""}, {day(9), "queued", ""},
	} {
		prev, err := db.PreviousDagRun(ctx, "etl", c.before, c.state)
		switch {
		case c.want == "" && !errors.Is(err, workload.ErrNotFound):
			t.Errorf("previous before %v in %q: %+v, %v; want none", c.before, c.state, prev, err)
		case c.want != "" && (err != nil || prev.RunID != c.want):
			t.Errorf("previous before %v in %q: %+v, %v; want %s", c.before, c.state, prev, err, c.want)
		}
	}
}
