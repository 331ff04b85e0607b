package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/internal/fakeclock"
	"github.com/taskgate/taskgate/workload"
)

func xref(dag, run, task, key string, mi int) workload.XComRef {
	return workload.XComRef{DagID: dag, RunID: run, TaskID: task, Key: key, MapIndex: mi}
}

// xcomsTest opens a database whose clock reads clk.
func xcomsTest(t *testing.T, clk *fakeclock.Clock) *DB {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "taskgate.db"), Options{Now: clk.Now})
}

// addRun creates a dag run with the given run_after (through a task
// instance, the only way dag runs are made).
func addRun(t *testing.T, db *DB, dag, run string, runAfter time.Time) {
	t.Helper()
	mustInsertRun(t, db, dagRun(dag, run, runAfter), taskInstance(dag+"|"+run, dag, run, "setup", -1))
}

func mustSet(t *testing.T, db *DB, ref workload.XComRef, value string) {
	t.Helper()
	if err := db.SetXCom(context.Background(), workload.XCom{XComRef: ref, Value: []byte(value)}); err != nil {
		t.Fatalf("SetXCom %v: %v", ref, err)
	}
}

// summary renders XComs as "run[mapindex]=value".
func summary(xs []workload.XCom) []string {
	out := []string{}
	for _, x := range xs {
		out = append(out, fmt.Sprintf("%s[%d]=%s", x.RunID, x.MapIndex, x.Value))
	}
	return out
}

func TestSetXComNeedsDagRun(t *testing.T) {
	db := xcomsTest(t, fakeclock.New(t0))
	err := db.SetXCom(context.Background(), workload.XCom{XComRef: xref("dag", "run", "t", "k", -1), Value: []byte("1")})
	if !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("SetXCom without dag run: %v, want ErrNotFound", err)
	}
}

func TestSetXComFillsTimesAndReplaces(t *testing.T) {
	ctx := context.Background()
	clk := fakeclock.New(t0)
	db := xcomsTest(t, clk)
	runAfter := t0.Add(-time.Hour)
	addRun(t, db, "dag", "run", runAfter)
	ref := xref("dag", "run", "t", "k", -1)
	// Whatever the caller puts in Timestamp and RunAfter is replaced.
	x := workload.XCom{XComRef: ref, Value: []byte(`"first"`), Timestamp: t0.Add(99 * time.Hour), RunAfter: t0.Add(99 * time.Hour)}
	if err := db.SetXCom(ctx, x); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(time.Minute))
	mustSet(t, db, ref, `{"second":[1,2]}`)
	got, err := db.XComs(ctx, workload.XComQuery{DagID: "dag", RunID: "run", TaskID: "t", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	want := []workload.XCom{{XComRef: ref, Value: []byte(`{"second":[1,2]}`), Timestamp: t0.Add(time.Minute), RunAfter: runAfter}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("XComs (-want +got):\n%s", diff)
	}
}

func TestXComsMapIndexOrder(t *testing.T) {
	ctx := context.Background()
	db := xcomsTest(t, fakeclock.New(t0))
	addRun(t, db, "dag", "run", t0)
	for _, mi := range []int{10, 2, -1, 0} {
		mustSet(t, db, xref("dag", "run", "t", "k", mi), fmt.Sprint(mi*100))
	}
	// Neighbours that must not be picked up.
	mustSet(t, db, xref("dag", "run", "t", "k2", 1), "other key")
	mustSet(t, db, xref("dag", "run", "t", "", 1), "empty key")
	mustSet(t, db, xref("dag", "run", "t2", "k", 1), "other task")
	tests := []struct {
		name string
		mi   *int
		want []string
	}{
		{"every map index", nil, []string{"run[-1]=-100", "run[0]=0", "run[2]=200", "run[10]=1000"}},
		{"one map index", ptr(2), []string{"run[2]=200"}},
		{"unmapped", ptr(-1), []string{"run[-1]=-100"}},
		{"missing map index", ptr(3), []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.XComs(ctx, workload.XComQuery{DagID: "dag", RunID: "run", TaskID: "t", Key: "k", MapIndex: tt.mi})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, summary(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestXComsIncludePriorDates(t *testing.T) {
	ctx := context.Background()
	db := xcomsTest(t, fakeclock.New(t0))
	runs := []struct {
		dag, run string
		runAfter time.Time
	}{
		{"dag", "r1", t0.Add(-2 * time.Hour)},
		{"dag", "r2", t0.Add(-time.Hour)},
		{"dag", "r3", t0},
		{"dag", "same", t0},              // same run_after as r3: not later, included
		{"dag", "r4", t0.Add(time.Hour)}, // later: excluded
		{"dag", "empty", t0.Add(-90 * time.Minute)},
		{"dag/x", "r0", t0.Add(-3 * time.Hour)}, // other dag
		{"da", "r0", t0.Add(-3 * time.Hour)},    // dag id prefix
	}
	for _, r := range runs {
		addRun(t, db, r.dag, r.run, r.runAfter)
		if r.run == "empty" {
			continue
		}
		for _, mi := range []int{2, -1} {
			mustSet(t, db, xref(r.dag, r.run, "t", "k", mi), fmt.Sprint(mi))
		}
	}
	tests := []struct {
		name string
		q    workload.XComQuery
		want []string
	}{
		{
			"newest first, each by map index",
			workload.XComQuery{DagID: "dag", RunID: "r3", TaskID: "t", Key: "k", IncludePriorDates: true},
			[]string{"r3[-1]=-1", "r3[2]=2", "same[-1]=-1", "same[2]=2", "r2[-1]=-1", "r2[2]=2", "r1[-1]=-1", "r1[2]=2"},
		},
		{
			"one map index",
			workload.XComQuery{DagID: "dag", RunID: "r2", TaskID: "t", Key: "k", MapIndex: ptr(2), IncludePriorDates: true},
			[]string{"r2[2]=2", "r1[2]=2"},
		},
		{
			"without prior dates",
			workload.XComQuery{DagID: "dag", RunID: "r3", TaskID: "t", Key: "k"},
			[]string{"r3[-1]=-1", "r3[2]=2"},
		},
		{
			"run without xcoms still sees earlier runs",
			workload.XComQuery{DagID: "dag", RunID: "empty", TaskID: "t", Key: "k", IncludePriorDates: true},
			[]string{"r1[-1]=-1", "r1[2]=2"},
		},
		{
			"latest run; equal run_after by descending run id",
			workload.XComQuery{DagID: "dag", RunID: "r4", TaskID: "t", Key: "k", MapIndex: ptr(-1), IncludePriorDates: true},
			[]string{"r4[-1]=-1", "same[-1]=-1", "r3[-1]=-1", "r2[-1]=-1", "r1[-1]=-1"},
		},
		{
			"unknown run",
			workload.XComQuery{DagID: "dag", RunID: "nope", TaskID: "t", Key: "k", IncludePriorDates: true},
			[]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.XComs(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, summary(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestXComKeysDoNotCollide(t *testing.T) {
	ctx := context.Background()
	db := xcomsTest(t, fakeclock.New(t0))
	addRun(t, db, "a/b", "c", t0)
	addRun(t, db, "a", "b/c", t0)
	slots := []workload.XComRef{
		xref("a/b", "c", "t", "k", -1),
		xref("a", "b/c", "t", "k", -1),
		xref("a", "b/c", "t/k", "", -1),
		xref("a", "b/c", "t", "k:1", -1),
		xref("a", "b/c", "日本", "ключ 🔑", -1),
	}
	for i, ref := range slots {
		mustSet(t, db, ref, fmt.Sprint(i))
	}
	for i, ref := range slots {
		got, err := db.XComs(ctx, workload.XComQuery{DagID: ref.DagID, RunID: ref.RunID, TaskID: ref.TaskID, Key: ref.Key})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || string(got[0].Value) != fmt.Sprint(i) || got[0].XComRef != ref {
			t.Errorf("slot %v = %v", ref, got)
		}
	}
}

func TestDeleteXCom(t *testing.T) {
	ctx := context.Background()
	db := xcomsTest(t, fakeclock.New(t0))
	addRun(t, db, "dag", "run", t0)
	mustSet(t, db, xref("dag", "run", "t", "k", 0), "0")
	mustSet(t, db, xref("dag", "run", "t", "k", 1), "1")
	for range 2 { // the second delete is of a missing slot
		if err := db.DeleteXCom(ctx, xref("dag", "run", "t", "k", 0)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.XComs(ctx, workload.XComQuery{DagID: "dag", RunID: "run", TaskID: "t", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"run[1]=1"}, summary(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestXComKeys(t *testing.T) {
	ctx := context.Background()
	db := xcomsTest(t, fakeclock.New(t0))
	addRun(t, db, "dag", "run", t0)
	for _, s := range []workload.XComRef{
		xref("dag", "run", "t", "b", 0),
		xref("dag", "run", "t", "b", 1),
		xref("dag", "run", "t", "a", 1),
		xref("dag", "run", "t", "c", -1),
		xref("dag", "run", "t", "", 0),
		xref("dag", "run", "t2", "z", 0),
	} {
		mustSet(t, db, s, "1")
	}
	tests := []struct {
		name, task string
		mi         int
		want       []string
	}{
		{"every map index", "t", -1, []string{"", "a", "b", "c"}},
		{"map index 1", "t", 1, []string{"a", "b"}},
		{"map index 0", "t", 0, []string{"", "b"}},
		{"no such map index", "t", 7, []string{}},
		{"no such task", "nope", -1, []string{}},
		{"other task", "t2", -1, []string{"z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.XComKeys(ctx, "dag", "run", tt.task, tt.mi)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
