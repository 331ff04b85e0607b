package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/internal/fakeclock"
	"github.com/taskgate/taskgate/workload"
)

func TestTaskInstanceNotFound(t *testing.T) {
	db, _ := openTest(t)
	if _, err := db.TaskInstance(context.Background(), "nope"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("TaskInstance: %v, want ErrNotFound", err)
	}
}

func TestInsertTaskInstance(t *testing.T) {
	ctx := context.Background()
	refuse := errors.New("refused by admit")
	tests := []struct {
		name string
		// prior inserts, each with its dag run at t0
		prior []workload.TaskInstance
		dr    workload.DagRun
		ti    workload.TaskInstance
		admit func(existing, ti *workload.TaskInstance) error
		// wantExisting is the id admit must see ("" = nil).
		wantExisting string
		wantErr      error
		// want is the stored value (ignored when wantErr is set).
		want func(ti workload.TaskInstance) workload.TaskInstance
	}{
		{
			name: "new coordinates",
			dr:   dagRun("dag", "run", t0), ti: taskInstance("ti1", "dag", "run", "t", -1),
			want: func(ti workload.TaskInstance) workload.TaskInstance { return ti },
		},
		{
			name:  "admit adjusts",
			dr:    dagRun("dag", "run", t0),
			ti:    taskInstance("ti1", "dag", "run", "t", -1),
			admit: func(_, ti *workload.TaskInstance) error { ti.TryNumber = 7; return nil },
			want:  func(ti workload.TaskInstance) workload.TaskInstance { ti.TryNumber = 7; return ti },
		},
		{
			name:         "admit sees the current try",
			prior:        []workload.TaskInstance{taskInstance("old", "dag", "run", "t", 3)},
			dr:           dagRun("dag", "run", t0),
			ti:           taskInstance("new", "dag", "run", "t", 3),
			wantExisting: "old",
			want:         func(ti workload.TaskInstance) workload.TaskInstance { return ti },
		},
		{
			name:         "admit refuses",
			prior:        []workload.TaskInstance{taskInstance("old", "dag", "run", "t", -1)},
			dr:           dagRun("dag", "run", t0),
			ti:           taskInstance("new", "dag", "run", "t", -1),
			admit:        func(_, _ *workload.TaskInstance) error { return refuse },
			wantExisting: "old",
			wantErr:      refuse,
		},
		{
			name:    "id already stored",
			prior:   []workload.TaskInstance{taskInstance("same", "dag", "run", "a", -1)},
			dr:      dagRun("dag", "run", t0),
			ti:      taskInstance("same", "dag", "run", "b", -1),
			wantErr: workload.ErrAlreadyExists,
		},
		{
			name:  "other map index is other coordinates",
			prior: []workload.TaskInstance{taskInstance("m0", "dag", "run", "t", 0)},
			dr:    dagRun("dag", "run", t0),
			ti:    taskInstance("m1", "dag", "run", "t", 1),
			want:  func(ti workload.TaskInstance) workload.TaskInstance { return ti },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTest(t)
			for _, p := range tt.prior {
				mustInsert(t, db, p)
			}
			calls := 0
			got, err := db.InsertTaskInstance(ctx, tt.dr, tt.ti, func(existing, ti *workload.TaskInstance) error {
				calls++
				gotID := ""
				if existing != nil {
					gotID = existing.ID
				}
				if gotID != tt.wantExisting {
					t.Errorf("admit saw existing %q, want %q", gotID, tt.wantExisting)
				}
				if tt.admit != nil {
					return tt.admit(existing, ti)
				}
				return nil
			})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("InsertTaskInstance: %v, want %v", err, tt.wantErr)
				}
				if tt.wantErr == refuse && err != refuse {
					t.Errorf("admit's error was changed: %v", err)
				}
				// Nothing written: the coordinates still point at the prior try.
				cur, _, err := db.TaskInstances(ctx, workload.TaskInstanceFilter{})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.prior, cur); diff != "" {
					t.Errorf("current task instances after refusal (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("InsertTaskInstance: %v", err)
			}
			if calls != 1 {
				t.Errorf("admit called %d times", calls)
			}
			want := tt.want(tt.ti)
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("returned (-want +got):\n%s", diff)
			}
			stored, err := db.TaskInstance(ctx, tt.ti.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&want, stored); diff != "" {
				t.Errorf("stored (-want +got):\n%s", diff)
			}
			// Earlier tries stay readable by id.
			for _, p := range tt.prior {
				if _, err := db.TaskInstance(ctx, p.ID); err != nil {
					t.Errorf("prior try %s: %v", p.ID, err)
				}
			}
		})
	}
}

func TestInsertTaskInstanceRefusalWritesNoDagRun(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	refuse := errors.New("no")
	_, err := db.InsertTaskInstance(ctx, dagRun("dag", "run", t0), taskInstance("ti", "dag", "run", "t", -1),
		func(_, _ *workload.TaskInstance) error { return refuse })
	if err != refuse {
		t.Fatalf("InsertTaskInstance: %v, want %v unchanged", err, refuse)
	}
	if _, err := db.DagRun(ctx, "dag", "run"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("DagRun after refusal: %v, want ErrNotFound", err)
	}
	if _, err := db.TaskInstance(ctx, "ti"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("TaskInstance after refusal: %v, want ErrNotFound", err)
	}
}

func TestInsertTaskInstanceKeepsExistingDagRun(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	first := dagRun("dag", "run", t0)
	mustInsertRun(t, db, first, taskInstance("a", "dag", "run", "a", -1))
	second := dagRun("dag", "run", t0.Add(time.Hour))
	second.State = "success"
	mustInsertRun(t, db, second, taskInstance("b", "dag", "run", "b", -1))
	got, err := db.DagRun(ctx, "dag", "run")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&first, got); diff != "" {
		t.Errorf("DagRun (-want +got):\n%s", diff)
	}
}

func TestInsertTaskInstanceInvalid(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	if _, err := db.InsertTaskInstance(ctx, dagRun("dag", "other", t0), taskInstance("ti", "dag", "run", "t", -1), nil); err == nil {
		t.Error("mismatched dag run accepted")
	}
	_, err := db.InsertTaskInstance(ctx, dagRun("dag", "run", t0), taskInstance("ti", "dag", "run", "t", -1),
		func(_, ti *workload.TaskInstance) error { ti.TaskID = "moved"; return nil })
	if err == nil {
		t.Error("admit changing the task id accepted")
	}
	if _, err := db.TaskInstance(ctx, "ti"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("TaskInstance after refused inserts: %v, want ErrNotFound", err)
	}
}

// TestQueueLifecycle runs workload's own rules against the store.
func TestQueueLifecycle(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	req := workload.QueueRequest{DagID: "dag", RunID: "run", TaskID: "t", MapIndex: -1}
	first, err := workload.Queue(ctx, db, "try1", req, t0)
	if err != nil {
		t.Fatal(err)
	}
	if first.TryNumber != 1 {
		t.Errorf("first try number %d", first.TryNumber)
	}
	if _, err := workload.Queue(ctx, db, "dup", req, t0); !errors.Is(err, workload.ErrAlreadyExists) {
		t.Fatalf("queueing a queued task: %v, want ErrAlreadyExists", err)
	}
	if _, err := db.UpdateTaskInstance(ctx, "try1", func(ti *workload.TaskInstance) error {
		ti.State = workload.StateFailed
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	second, err := workload.Queue(ctx, db, "try2", req, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if second.TryNumber != 2 {
		t.Errorf("second try number %d, want 2", second.TryNumber)
	}
	cur, _, err := db.TaskInstances(ctx, workload.TaskInstanceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) != 1 || cur[0].ID != "try2" {
		t.Errorf("current task instances = %v, want only try2", cur)
	}
	old, err := db.TaskInstance(ctx, "try1")
	if err != nil || old.State != workload.StateFailed {
		t.Errorf("history try1 = %v, %v", old, err)
	}
}

func TestUpdateTaskInstance(t *testing.T) {
	ctx := context.Background()
	domainErr := &workload.ConflictError{Reason: "not_running", Message: "x"}
	tests := []struct {
		name    string
		id      string
		fn      func(ti *workload.TaskInstance) error
		wantErr error
		// wantState is the stored state afterwards.
		wantState workload.State
	}{
		{
			name: "applies fn",
			id:   "ti",
			fn: func(ti *workload.TaskInstance) error {
				ti.State = workload.StateRunning
				return nil
			},
			wantState: workload.StateRunning,
		},
		{
			name: "fn error writes nothing",
			id:   "ti",
			fn: func(ti *workload.TaskInstance) error {
				ti.State = workload.StateFailed
				return domainErr
			},
			wantErr:   domainErr,
			wantState: workload.StateQueued,
		},
		{
			name: "identity change refused",
			id:   "ti",
			fn: func(ti *workload.TaskInstance) error {
				ti.MapIndex = 4
				ti.State = workload.StateFailed
				return nil
			},
			wantErr:   errors.New("any"),
			wantState: workload.StateQueued,
		},
		{
			name:      "missing",
			id:        "nope",
			fn:        func(ti *workload.TaskInstance) error { panic("fn called for a missing task instance") },
			wantErr:   workload.ErrNotFound,
			wantState: workload.StateQueued,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTest(t)
			mustInsert(t, db, taskInstance("ti", "dag", "run", "t", -1))
			got, err := db.UpdateTaskInstance(ctx, tt.id, tt.fn)
			switch {
			case tt.wantErr == domainErr:
				if err != domainErr {
					t.Fatalf("err = %v, want the fn's error unchanged", err)
				}
			case errors.Is(tt.wantErr, workload.ErrNotFound):
				if !errors.Is(err, workload.ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
			case tt.wantErr != nil:
				if err == nil {
					t.Fatal("err = nil, want an error")
				}
			case err != nil:
				t.Fatal(err)
			}
			stored, err2 := db.TaskInstance(ctx, "ti")
			if err2 != nil {
				t.Fatal(err2)
			}
			if stored.State != tt.wantState {
				t.Errorf("stored state %s, want %s", stored.State, tt.wantState)
			}
			if err == nil {
				if diff := cmp.Diff(stored, got); diff != "" {
					t.Errorf("returned vs stored (-stored +returned):\n%s", diff)
				}
			} else if got != nil {
				t.Errorf("returned %v with error", got)
			}
		})
	}
}

func TestSkipTaskInstances(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		refs []workload.TaskRef
		// want lists "id:state" of every current task instance afterwards.
		want []string
	}{
		{"nothing", nil, []string{"a-1:queued", "b0:queued", "b1:success", "b2:queued", "c-1:queued", "x:queued"}},
		{"every map index", []workload.TaskRef{{TaskID: "b"}},
			[]string{"a-1:queued", "b0:skipped", "b1:success", "b2:skipped", "c-1:queued", "x:queued"}},
		{"one map index", []workload.TaskRef{{TaskID: "b", MapIndex: ptr(2)}},
			[]string{"a-1:queued", "b0:queued", "b1:success", "b2:skipped", "c-1:queued", "x:queued"}},
		{"unmapped and repeated", []workload.TaskRef{{TaskID: "a", MapIndex: ptr(-1)}, {TaskID: "a"}, {TaskID: "c"}},
			[]string{"a-1:skipped", "b0:queued", "b1:success", "b2:queued", "c-1:skipped", "x:queued"}},
		{"unknown task", []workload.TaskRef{{TaskID: "zzz"}, {TaskID: "b", MapIndex: ptr(9)}},
			[]string{"a-1:queued", "b0:queued", "b1:success", "b2:queued", "c-1:queued", "x:queued"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := openTest(t)
			for _, ti := range []workload.TaskInstance{
				taskInstance("a-1", "dag", "run", "a", -1),
				taskInstance("b0", "dag", "run", "b", 0),
				taskInstance("b1", "dag", "run", "b", 1),
				taskInstance("b2", "dag", "run", "b", 2),
				taskInstance("c-1", "dag", "run", "c", -1),
				// Same task id in a run whose id extends this one's.
				taskInstance("x", "dag", "run/2", "b", 0),
			} {
				if ti.ID == "b1" {
					ti.State = workload.StateSuccess
				}
				mustInsert(t, db, ti)
			}
			seen := map[string]int{}
			err := db.SkipTaskInstances(ctx, "dag", "run", tt.refs, func(ti *workload.TaskInstance) bool {
				seen[ti.ID]++
				return workload.Skip(ti, t0.Add(time.Hour))
			})
			if err != nil {
				t.Fatal(err)
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("fn called %d times for %s", n, id)
				}
			}
			tis, _, err := db.TaskInstances(ctx, workload.TaskInstanceFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ti := range tis {
				got = append(got, ti.ID+":"+string(ti.State))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDagRunNotFound(t *testing.T) {
	db, _ := openTest(t)
	mustInsert(t, db, taskInstance("ti", "a/b", "c", "t", -1))
	// "a/b","c" must not be found as "a","b/c".
	if _, err := db.DagRun(context.Background(), "a", "b/c"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("DagRun: %v, want ErrNotFound", err)
	}
	if _, err := db.DagRun(context.Background(), "a/b", "c"); err != nil {
		t.Errorf("DagRun: %v", err)
	}
}

func TestPreviousSuccessfulDagRun(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	run := func(dagID, runID, state string, logical *time.Time) {
		dr := dagRun(dagID, runID, t0)
		dr.State, dr.LogicalDate = state, logical
		mustInsertRun(t, db, dr, taskInstance(dagID+"|"+runID, dagID, runID, "t", -1))
	}
	at := func(d time.Duration) *time.Time { return ptr(t0.Add(d)) }
	run("dag", "r1", "success", at(-3*time.Hour))
	run("dag", "r2", "failed", at(-2*time.Hour))
	run("dag", "r3", "success", at(-time.Hour))
	run("dag", "r3b", "running", at(-30*time.Minute))
	run("dag", "r4", "success", at(0))
	run("dag", "nodate", "success", nil)
	run("dag/x", "other", "success", at(-time.Minute))
	run("da", "prefix", "success", at(-time.Minute))
	tests := []struct {
		name   string
		dagID  string
		before time.Time
		want   string // run id, "" = not found
	}{
		{"strictly before t0", "dag", t0, "r3"},
		{"skips failed and running", "dag", t0.Add(-time.Minute), "r3"},
		{"at r3 exactly", "dag", t0.Add(-time.Hour), "r1"},
		{"skips failed", "dag", t0.Add(-90 * time.Minute), "r1"},
		{"before the first", "dag", t0.Add(-3 * time.Hour), ""},
		{"after all", "dag", t0.Add(24 * time.Hour), "r4"},
		{"other dag isolated", "dag/x", t0, "other"},
		{"unknown dag", "nope", t0, ""},
		{"dag id that prefixes another", "da", t0.Add(-2 * time.Minute), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.PreviousSuccessfulDagRun(ctx, tt.dagID, tt.before)
			if tt.want == "" {
				if !errors.Is(err, workload.ErrNotFound) {
					t.Errorf("got %v, %v, want ErrNotFound", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.RunID != tt.want {
				t.Errorf("run %s, want %s", got.RunID, tt.want)
			}
		})
	}
}

// TestRenderedFields: PutRenderedFields refuses an unknown task instance
// and replaces the fields stored for a known one, verbatim; empty fields
// are stored as null, so that "stored, empty" differs from "never stored".
func TestRenderedFields(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	if err := db.PutRenderedFields(ctx, "nope", []byte(`{}`)); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("PutRenderedFields unknown ti: %v, want ErrNotFound", err)
	}
	if got, ok := storedRenderedFields(t, db, "nope"); ok {
		t.Errorf("refused PutRenderedFields stored %s", got)
	}
	mustInsert(t, db, taskInstance("ti", "dag", "run", "t", -1))
	if got, ok := storedRenderedFields(t, db, "ti"); ok {
		t.Errorf("rendered fields before any put: %s", got)
	}
	for _, tt := range []struct{ put, want string }{
		{`{"bash_command":"echo 1"}`, `{"bash_command":"echo 1"}`},
		{`{"bash_command":"echo 2","env":null}`, `{"bash_command":"echo 2","env":null}`},
		{``, `null`},
	} {
		buf := []byte(tt.put)
		if err := db.PutRenderedFields(ctx, "ti", buf); err != nil {
			t.Fatal(err)
		}
		clear(buf) // the caller may reuse its buffer
		got, ok := storedRenderedFields(t, db, "ti")
		if !ok {
			t.Fatalf("PutRenderedFields(%q) stored nothing", tt.put)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("PutRenderedFields(%q) stored (-want +got):\n%s", tt.put, diff)
		}
	}
}

func TestTaskInstancesFilter(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	// Inserted out of order; listed by dag, run, task, map index.
	for _, c := range []struct {
		id, dag, run, task string
		mi                 int
		state              workload.State
	}{
		{"6", "b", "r1", "t", -1, workload.StateRunning},
		{"3", "a", "r1", "u", -1, workload.StateQueued},
		{"2", "a", "r1", "t", 10, workload.StateRunning},
		{"1", "a", "r1", "t", 2, workload.StateQueued},
		{"0", "a", "r1", "t", -1, workload.StateQueued},
		{"4", "a", "r2", "t", -1, workload.StateRunning},
		{"5", "a/r1", "x", "t", -1, workload.StateQueued},
	} {
		ti := taskInstance(c.id, c.dag, c.run, c.task, c.mi)
		ti.State = c.state
		mustInsert(t, db, ti)
	}
	tests := []struct {
		name string
		f    workload.TaskInstanceFilter
		want string
	}{
		{"all", workload.TaskInstanceFilter{}, "0123456"},
		{"task", workload.TaskInstanceFilter{DagID: "a", RunID: "r1", TaskID: "t"}, "012"},
		{"task and map index", workload.TaskInstanceFilter{DagID: "a", RunID: "r1", TaskID: "t", MapIndex: new(2)}, "1"},
		{"dag", workload.TaskInstanceFilter{DagID: "a"}, "01234"},
		{"dag and run", workload.TaskInstanceFilter{DagID: "a", RunID: "r1"}, "0123"},
		{"run across dags", workload.TaskInstanceFilter{RunID: "r1"}, "01236"},
		{"state", workload.TaskInstanceFilter{State: workload.StateRunning}, "246"},
		{"limit", workload.TaskInstanceFilter{Limit: 2}, "01"},
		{"offset", workload.TaskInstanceFilter{Offset: 5}, "56"},
		{"limit offset state", workload.TaskInstanceFilter{State: workload.StateQueued, Offset: 1, Limit: 2}, "13"},
		{"offset past end", workload.TaskInstanceFilter{Offset: 50}, ""},
		{"unknown dag", workload.TaskInstanceFilter{DagID: "zzz"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tis, total, err := db.TaskInstances(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			unpaged := tt.f
			unpaged.Limit, unpaged.Offset = 0, 0
			all, _, _ := db.TaskInstances(ctx, unpaged)
			if total != len(all) {
				t.Errorf("total = %d, want %d", total, len(all))
			}
			if tis == nil {
				t.Error("nil result")
			}
			got := ""
			for _, ti := range tis {
				got += ti.ID
			}
			if got != tt.want {
				t.Errorf("ids %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTaskInstanceRoundTripsEveryField(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	ti := taskInstance("full", "dag", "run", "t", 3)
	ti.State = workload.StateDeferred
	ti.Hostname, ti.Unixname, ti.PID = "h", "u", 42
	ti.StartDate, ti.EndDate, ti.LastHeartbeatAt = ptr(t0), ptr(t0.Add(time.Second)), ptr(t0.Add(2*time.Second))
	ti.RenderedMapIndex = ptr("label")
	ti.NextMethod, ti.NextKwargs = ptr("execute_complete"), []byte(`{"a":[1,2]}`)
	ti.TriggerClass, ti.TriggerKwargs, ti.TriggerQueue = "airflow.triggers.X", []byte(`{"b":true}`), ptr("q")
	ti.TriggerTimeout = ptr(t0.Add(time.Hour))
	ti.RetryDelaySeconds, ti.RetryReason = ptr(1.5), ptr("flaky ✓")
	ti.Reschedules = []workload.Reschedule{{TryNumber: 1, StartDate: t0, EndDate: t0, RescheduleDate: t0.Add(time.Minute)}}
	ti.TaskOutlets, ti.OutletEvents = []byte(`[]`), []byte(`[{"k":"v"}]`)
	ti.BundleName, ti.DagRelPath = "bundle", "dags/x.py"
	mustInsert(t, db, ti)
	got, err := db.TaskInstance(ctx, "full")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&ti, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func ExampleDB_UpdateTaskInstance() {
	dir, err := os.MkdirTemp("", "taskgate-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	db, err := Open(filepath.Join(dir, "taskgate.db"), Options{BatchDelay: batchDelay})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	dr := workload.DagRun{DagID: "dag", RunID: "run", RunAfter: now, State: "running", Conf: []byte("{}")}
	ti := workload.TaskInstance{ID: "ti", DagID: "dag", RunID: "run", TaskID: "t", MapIndex: -1,
		State: workload.StateRunning, Hostname: "worker-1", PID: 7}
	if _, err := db.InsertTaskInstance(ctx, dr, ti, nil); err != nil {
		fmt.Println(err)
		return
	}
	// A rule that refuses writes nothing: here another worker's heartbeat.
	_, err = db.UpdateTaskInstance(ctx, "ti", func(ti *workload.TaskInstance) error {
		_, err := workload.AdmitHeartbeat(workload.HolderOf(ti), workload.HeartbeatRequest{Hostname: "worker-2", PID: 9, At: now})
		return err
	})
	fmt.Println(err)
	// Output: workload: running_elsewhere: TI is already running elsewhere
}

// TestTryStatus: running tries are answered from memory, others from the
// record with their coordinates' current id, before and after a reopen and
// after a rolled-back transaction.
func TestTryStatus(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	req := workload.QueueRequest{DagID: "dag", RunID: "run", TaskID: "t", MapIndex: -1}
	if _, err := workload.Queue(ctx, db, "try1", req, t0); err != nil {
		t.Fatal(err)
	}
	want := func(db *DB, id string, want workload.TryStatus) {
		t.Helper()
		got, err := db.TryStatus(ctx, id)
		if err != nil {
			t.Fatalf("TryStatus(%s): %v", id, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("TryStatus(%s) (-want +got):\n%s", id, diff)
		}
	}
	want(db, "try1", workload.TryStatus{State: workload.StateQueued, Current: true})
	run := func(ti *workload.TaskInstance) error {
		_, _, err := workload.EnterRunning(ti, workload.RunRequest{Hostname: "h", PID: 1, StartDate: t0}, t0)
		return err
	}
	if _, err := db.UpdateTaskInstance(ctx, "try1", run); err != nil {
		t.Fatal(err)
	}
	want(db, "try1", workload.TryStatus{State: workload.StateRunning, Current: true})
	// A refused update keeps the try running.
	if _, err := db.UpdateTaskInstance(ctx, "try1", func(*workload.TaskInstance) error { return errors.New("no") }); err == nil {
		t.Fatal("refusal not returned")
	}
	want(db, "try1", workload.TryStatus{State: workload.StateRunning, Current: true})
	if _, err := db.UpdateTaskInstance(ctx, "try1", func(ti *workload.TaskInstance) error {
		_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateUpForRetry}, t0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want(db, "try1", workload.TryStatus{State: workload.StateUpForRetry, Current: true, Moved: true, ReportedAt: ptr(t0)})
	if _, err := workload.Queue(ctx, db, "try2", req, t0); err != nil {
		t.Fatal(err)
	}
	want(db, "try1", workload.TryStatus{State: workload.StateUpForRetry, ReportedAt: ptr(t0)})
	want(db, "try2", workload.TryStatus{State: workload.StateQueued, Current: true})
	if _, err := db.TryStatus(ctx, "nope"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("unknown try: %v, want ErrNotFound", err)
	}
	if _, err := db.UpdateTaskInstance(ctx, "try2", run); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{Now: fakeclock.New(t0).Now})
	want(db, "try2", workload.TryStatus{State: workload.StateRunning, Current: true})
	want(db, "try1", workload.TryStatus{State: workload.StateUpForRetry, ReportedAt: ptr(t0)})
}
