package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskgate/taskgate/workload"
)

// TestRetryArchivesTheTry: a current try that reports up_for_retry stays
// readable under its id while its coordinates go on under a new UUIDv7 in
// the same state and try, without the try's own reschedules, grant or report
// time; the next queued try replaces that one with try number 2.
func TestRetryArchivesTheTry(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	req := workload.QueueRequest{DagID: "dag", RunID: "run", TaskID: "t", MapIndex: -1, MaxTries: 2}
	if _, err := workload.Queue(ctx, db, "try1", req, t0); err != nil {
		t.Fatal(err)
	}
	grant := &workload.ExecutionGrant{WorkloadTokenID: "w", ID: "e", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	if _, err := db.UpdateTaskInstance(ctx, "try1", func(ti *workload.TaskInstance) error {
		_, _, err := workload.EnterRunning(ti, workload.RunRequest{Hostname: "h", PID: 1, StartDate: t0, Grant: grant}, t0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	delay := 5.0
	out, err := db.UpdateTaskInstance(ctx, "try1", func(ti *workload.TaskInstance) error {
		ti.Reschedules = []workload.Reschedule{{TryNumber: 1, StartDate: t0, EndDate: t0, RescheduleDate: t0}}
		_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateUpForRetry, EndDate: &t0,
			RetryDelaySeconds: &delay}, t0)
		return err
	})
	if err != nil || out.ID != "try1" || out.State != workload.StateUpForRetry {
		t.Fatalf("up_for_retry: %+v, %v", out, err)
	}
	cur, _, err := db.TaskInstances(ctx, workload.TaskInstanceFilter{DagID: "dag"})
	if err != nil || len(cur) != 1 {
		t.Fatalf("current: %v %v", cur, err)
	}
	next := cur[0]
	if next.ID == "try1" || len(next.ID) != 36 || next.ID[14] != '7' || next.State != workload.StateUpForRetry ||
		next.TryNumber != 1 || next.Reschedules != nil || next.RunGrant != nil || next.ReportedAt != nil ||
		next.RetryDelaySeconds == nil || *next.RetryDelaySeconds != 5 {
		t.Errorf("the task instance after up_for_retry: %+v", next)
	}
	old, err := db.TaskInstance(ctx, "try1")
	if err != nil || old.State != workload.StateUpForRetry || len(old.Reschedules) != 1 || old.RunGrant == nil {
		t.Errorf("the archived try: %+v, %v", old, err)
	}
	st, err := db.TryStatus(ctx, "try1")
	if err != nil || st != (workload.TryStatus{State: workload.StateUpForRetry, Current: true, Moved: true, ReportedAt: st.ReportedAt}) ||
		st.ReportedAt == nil {
		t.Errorf("TryStatus(try1) = %+v, %v", st, err)
	}
	// A repeated report of the archived try changes nothing more.
	if _, err := db.UpdateTaskInstance(ctx, "try1", func(ti *workload.TaskInstance) error {
		_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateUpForRetry, EndDate: &t0}, t0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if cur, _, _ := db.TaskInstances(ctx, workload.TaskInstanceFilter{DagID: "dag"}); len(cur) != 1 || cur[0].ID != next.ID {
		t.Errorf("a repeated up_for_retry moved the task instance again: %+v", cur)
	}
	// The scheduler side queues the next try: try 2, and try 1 is archived.
	ti2, err := workload.Queue(ctx, db, "try2", req, t0)
	if err != nil || ti2.TryNumber != 2 {
		t.Fatalf("next try: %+v, %v", ti2, err)
	}
	if st, err := db.TryStatus(ctx, "try1"); err != nil || st.Current || st.Moved {
		t.Errorf("TryStatus(try1) after the next try = %+v, %v", st, err)
	}
}

func TestQueryTaskInstances(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	day := func(n int) time.Time { return time.Date(2025, 1, n, 0, 0, 0, 0, time.UTC) }
	insert := func(id, run, task string, mi int, state workload.State, logical *time.Time) {
		t.Helper()
		dr := workload.DagRun{DagID: "dag", RunID: run, LogicalDate: logical, RunAfter: t0, State: "running"}
		ti := workload.TaskInstance{ID: id, DagID: "dag", RunID: run, TaskID: task, MapIndex: mi, TryNumber: 1,
			State: state, UpdatedAt: t0}
		if _, err := db.InsertTaskInstance(ctx, dr, ti, nil); err != nil {
			t.Fatal(err)
		}
	}
	d1, d2, d3 := day(1), day(2), day(3)
	insert("a1", "r1", "a", -1, workload.StateSuccess, &d1)
	insert("b1", "r1", "b", 0, workload.StateFailed, &d1)
	insert("b2", "r1", "b", 1, "", &d1)
	insert("a2", "r2", "a", -1, workload.StateFailed, &d2)
	insert("a3", "r3", "a", -1, workload.StateSuccess, &d3)
	insert("an", "rn", "a", -1, workload.StateSuccess, nil)
	zero := 0
	ids := func(q workload.TaskInstanceQuery) []string {
		rows, err := db.QueryTaskInstances(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, r := range rows {
			out = append(out, r.ID)
		}
		return out
	}
	for _, c := range []struct {
		name string
		q    workload.TaskInstanceQuery
		want []string
	}{
		{"every one", workload.TaskInstanceQuery{DagID: "dag", AnyState: true}, []string{"a1", "b1", "b2", "a2", "a3", "an"}},
		{"another dag", workload.TaskInstanceQuery{DagID: "other", AnyState: true}, []string{}},
		{"task ids", workload.TaskInstanceQuery{DagID: "dag", TaskIDs: []string{"b"}, AnyState: true}, []string{"b1", "b2"}},
		{"map index", workload.TaskInstanceQuery{DagID: "dag", MapIndex: &zero, AnyState: true}, []string{"b1"}},
		{"run ids", workload.TaskInstanceQuery{DagID: "dag", RunIDs: []string{"r2", "r3"}, AnyState: true}, []string{"a2", "a3"}},
		{"logical dates", workload.TaskInstanceQuery{DagID: "dag", LogicalDates: []time.Time{d2, d3.In(time.FixedZone("x", 3600))},
			AnyState: true}, []string{"a2", "a3"}},
		{"states, null included", workload.TaskInstanceQuery{DagID: "dag", States: []workload.State{"", workload.StateFailed}},
			[]string{"b1", "b2", "a2"}},
		{"no state matches", workload.TaskInstanceQuery{DagID: "dag"}, []string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := ids(c.q)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
	for _, c := range []struct {
		name   string
		before *time.Time
		state  workload.State
		mi     int
		want   string
	}{
		{"latest: a run without a logical date sorts first, as NULLs do in DESC", nil, "", -1, "an"},
		{"before a date", &d3, "", -1, "a2"},
		{"before a date, in a state", &d3, workload.StateSuccess, -1, "a1"},
		{"none before", &d1, "", -1, ""},
		{"another map index", nil, "", 5, ""},
	} {
		t.Run("previous: "+c.name, func(t *testing.T) {
			r, err := db.PreviousTaskInstance(ctx, "dag", "a", c.mi, c.before, c.state)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if r != nil {
				got = r.ID
			}
			if got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestNextTryReplacesTheRetryID: the id up_for_retry gave the coordinates
// names no try; the next queued try takes its place and it is gone.
func TestNextTryReplacesTheRetryID(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	req := workload.QueueRequest{DagID: "dag", RunID: "run", TaskID: "t", MapIndex: -1, MaxTries: 2}
	if _, err := workload.Queue(ctx, db, "try1", req, t0); err != nil {
		t.Fatal(err)
	}
	for _, fn := range []func(ti *workload.TaskInstance) error{
		func(ti *workload.TaskInstance) error {
			_, _, err := workload.EnterRunning(ti, workload.RunRequest{Hostname: "h", PID: 1, StartDate: t0}, t0)
			return err
		},
		func(ti *workload.TaskInstance) error {
			_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateUpForRetry, EndDate: &t0}, t0)
			return err
		},
	} {
		if _, err := db.UpdateTaskInstance(ctx, "try1", fn); err != nil {
			t.Fatal(err)
		}
	}
	cur, _, _ := db.TaskInstances(ctx, workload.TaskInstanceFilter{DagID: "dag"})
	moved := cur[0].ID
	if _, err := workload.Queue(ctx, db, "try2", req, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TaskInstance(ctx, moved); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("the id up_for_retry gave: %v, want ErrNotFound once try 2 is queued", err)
	}
	if ti, err := db.TaskInstance(ctx, "try1"); err != nil || ti.State != workload.StateUpForRetry {
		t.Errorf("try 1 after try 2 was queued: %+v, %v", ti, err)
	}
}
