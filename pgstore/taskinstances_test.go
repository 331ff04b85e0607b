package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

// TestTaskInstanceReadsAirflowRows: a task_instance row as Airflow writes it
// reads as the domain's task instance, column by column.
func TestTaskInstanceReadsAirflowRows(t *testing.T) {
	t.Parallel()
	db, af, _ := newTestStore(t)
	ctx := context.Background()
	run := af.DagRun(t, pgtest.DagRunRow{DagID: "d"})
	var dagVersion string
	scanRow(t, db, `SELECT id::text FROM dag_version WHERE dag_id = 'd'`, nil, &dagVersion)
	start, hb := t0.Add(-time.Minute), t0.Add(-time.Second)
	var trigger int64
	scanRow(t, db, `INSERT INTO trigger (classpath, kwargs, created_date, queue)
		VALUES ('airflow.triggers.temporal.DateTimeTrigger', '{"moment": "x"}', $1, 'q') RETURNING id`,
		[]any{t0}, &trigger)

	tests := []struct {
		name string
		row  pgtest.TaskInstanceRow
		want workload.TaskInstance
	}{
		{"queued", pgtest.TaskInstanceRow{TaskID: "a"}, workload.TaskInstance{
			TaskID: "a", MapIndex: -1, TryNumber: 1, State: workload.StateQueued, QueuedAt: &t0, Unixname: "airflow",
		}},
		{"running, mapped", pgtest.TaskInstanceRow{TaskID: "b", MapIndex: ptr(3), State: "running", Hostname: "w1",
			PID: ptr(42), StartDate: &start, LastHeartbeatAt: &hb, RenderedMapIdx: ptr("three"), MaxTries: 2},
			workload.TaskInstance{TaskID: "b", MapIndex: 3, TryNumber: 1, MaxTries: 2, State: workload.StateRunning,
				Hostname: "w1", Unixname: "airflow", PID: 42, StartDate: &start, LastHeartbeatAt: &hb,
				RenderedMapIndex: ptr("three")}},
		{"deferred", pgtest.TaskInstanceRow{TaskID: "c", State: "deferred", TriggerID: &trigger,
			NextMethod: ptr("execute_complete"), NextKwargs: map[string]any{"event": map[string]any{"n": 1.5}, "l": []any{"x"}}},
			workload.TaskInstance{TaskID: "c", MapIndex: -1, TryNumber: 1, State: workload.StateDeferred, Unixname: "airflow",
				NextMethod: ptr("execute_complete"), NextKwargs: mustJSON(pgtest.ExtendedJSON(map[string]any{"event": map[string]any{"n": 1.5}, "l": []any{"x"}})),
				TriggerClass: "airflow.triggers.temporal.DateTimeTrigger", TriggerKwargs: json.RawMessage(`{"moment": "x"}`),
				TriggerQueue: ptr("q")}},
		{"no state", pgtest.TaskInstanceRow{TaskID: "e", State: "none"},
			workload.TaskInstance{TaskID: "e", MapIndex: -1, Unixname: "airflow"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.row.DagID, tt.row.RunID = "d", run.RunID
			row := af.TaskInstance(t, tt.row)
			want := tt.want
			want.ID, want.DagID, want.RunID, want.DagVersionID = row.ID, "d", run.RunID, dagVersion
			want.PoolSlots, want.Queue, want.PriorityWeight = 1, "default", 1
			want.DagRelPath, want.BundleName, want.UpdatedAt = "d.py", "dags-folder", t0
			want.Operator = pgtest.DefaultOperator
			got, err := db.TaskInstance(ctx, row.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("TaskInstance (-want +got):\n%s", diff)
			}
		})
	}
	for _, id := range []string{pgtest.UUIDv7(), "not-a-uuid"} {
		if _, err := db.TaskInstance(ctx, id); !errors.Is(err, workload.ErrNotFound) {
			t.Errorf("TaskInstance(%s): %v, want ErrNotFound", id, err)
		}
	}
}

// runRequest is a /run of worker pid on host h.
func runRequest(pid int) workload.RunRequest {
	return workload.RunRequest{Hostname: "h", Unixname: "u", PID: pid, StartDate: t0}
}

// tiColumnsRow is what Airflow's scheduler and UI read of a task instance.
type tiColumnsRow struct {
	ID                 string
	State, Hostname    *string
	PID                *int32
	StartDate, EndDate *time.Time
	Duration           *float64
	LastHeartbeatAt    *time.Time
	TriggerID          *int64
	NextMethod         *string
	NextKwargs         *string
	TriggerTimeout     *time.Time
}

func readColumns(t *testing.T, db *DB, dagID, taskID string) tiColumnsRow {
	t.Helper()
	var r tiColumnsRow
	scanRow(t, db, `SELECT id::text, state, hostname, pid, start_date, end_date, duration, last_heartbeat_at,
		trigger_id, next_method, next_kwargs::text, trigger_timeout FROM task_instance WHERE dag_id = $1 AND task_id = $2`,
		[]any{dagID, taskID}, &r.ID, &r.State, &r.Hostname, &r.PID, &r.StartDate, &r.EndDate, &r.Duration,
		&r.LastHeartbeatAt, &r.TriggerID, &r.NextMethod, &r.NextKwargs, &r.TriggerTimeout)
	for _, p := range []**time.Time{&r.StartDate, &r.EndDate, &r.LastHeartbeatAt, &r.TriggerTimeout} {
		if *p != nil {
			u := (*p).UTC()
			*p = &u
		}
	}
	return r
}

// TestUpdateTaskInstanceWritesWhatAirflowWrites: each lifecycle step,
// applied through UpdateTaskInstance, leaves the columns and rows Airflow's
// routes leave.
func TestUpdateTaskInstanceWritesWhatAirflowWrites(t *testing.T) {
	t.Parallel()
	end := t0.Add(time.Minute)
	timeout := 10 * time.Minute
	tests := []struct {
		name  string
		state string // the fixture's state; running rows are started by pid 1 at t0-1m
		fn    func(ti *workload.TaskInstance) error
		check func(t *testing.T, db *DB, id string, c tiColumnsRow)
	}{
		{"run", "queued", func(ti *workload.TaskInstance) error {
			_, _, err := workload.EnterRunning(ti, runRequest(7), t0)
			return err
		}, func(t *testing.T, db *DB, id string, c tiColumnsRow) {
			want := tiColumnsRow{ID: id, State: ptr("running"), Hostname: ptr("h"), PID: ptr(int32(7)),
				StartDate: &t0, LastHeartbeatAt: &t0}
			if diff := cmp.Diff(want, c); diff != "" {
				t.Errorf("columns (-want +got):\n%s", diff)
			}
			var unixname string
			scanRow(t, db, `SELECT unixname FROM task_instance WHERE id = $1`, []any{id}, &unixname)
			if unixname != "u" {
				t.Errorf("unixname = %q", unixname)
			}
		}},
		{"success", "running", func(ti *workload.TaskInstance) error {
			_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateSuccess, EndDate: &end}, t0)
			return err
		}, func(t *testing.T, db *DB, id string, c tiColumnsRow) {
			if *c.State != "success" || !c.EndDate.Equal(end) || c.Duration == nil || *c.Duration != 120 {
				t.Errorf("columns: state %v end %v duration %v", *c.State, c.EndDate, c.Duration)
			}
			var reported time.Time
			scanRow(t, db, `SELECT reported_at FROM taskgate.try WHERE ti_id = $1`, []any{id}, &reported)
			if !reported.Equal(t0) {
				t.Errorf("reported_at = %v", reported)
			}
		}},
		{"deferred", "running", func(ti *workload.TaskInstance) error {
			_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateDeferred,
				Classpath: "my.Trigger", TriggerKwargs: json.RawMessage(`{"a": 1}`), TriggerTimeout: &timeout,
				NextMethod: ptr("resume"), NextKwargs: nextKwargsSent}, t0)
			return err
		}, func(t *testing.T, db *DB, id string, c tiColumnsRow) {
			if *c.State != "deferred" || c.TriggerID == nil || *c.NextMethod != "resume" || !c.TriggerTimeout.Equal(t0.Add(timeout)) {
				t.Fatalf("columns: %+v", c)
			}
			// next_kwargs as the worker serialized it, which is Airflow's
			// ExtendedJSON, as its models store it.
			if *c.NextKwargs != string(nextKwargsSent) {
				t.Errorf("next_kwargs = %s, want %s", *c.NextKwargs, nextKwargsSent)
			}
			var classpath, kwargs string
			var created time.Time
			scanRow(t, db, `SELECT classpath, kwargs, created_date FROM trigger WHERE id = $1`, []any{*c.TriggerID},
				&classpath, &kwargs, &created)
			if classpath != "my.Trigger" || !jsonEqual(t, []byte(kwargs), []byte(`{"a":1}`)) || !created.Equal(t0) {
				t.Errorf("trigger: %s %s %v", classpath, kwargs, created)
			}
		}},
		{"up_for_reschedule", "running", func(ti *workload.TaskInstance) error {
			_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateUpForReschedule, EndDate: &end,
				RescheduleDate: ptr(t0.Add(time.Hour))}, t0)
			return err
		}, func(t *testing.T, db *DB, id string, c tiColumnsRow) {
			if *c.State != "up_for_reschedule" || c.ID != id {
				t.Errorf("columns: %+v", c)
			}
			var start, rEnd, date time.Time
			var dur int32
			scanRow(t, db, `SELECT start_date, end_date, duration, reschedule_date FROM task_reschedule WHERE ti_id = $1`,
				[]any{id}, &start, &rEnd, &dur, &date)
			if !start.Equal(t0.Add(-time.Minute)) || !rEnd.Equal(end) || dur != 120 || !date.Equal(t0.Add(time.Hour)) {
				t.Errorf("task_reschedule: %v %v %d %v", start, rEnd, dur, date)
			}
		}},
		{"up_for_retry", "running", func(ti *workload.TaskInstance) error {
			_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateUpForRetry, EndDate: &end,
				RetryDelaySeconds: ptr(5.0)}, t0)
			return err
		}, func(t *testing.T, db *DB, id string, c tiColumnsRow) {
			// Airflow's prepare_db_for_next_try: the try into history under
			// its id, the row under a new one.
			if *c.State != "up_for_retry" || c.ID == id || !c.EndDate.Equal(end) {
				t.Errorf("columns: %+v", c)
			}
			var state string
			var hEnd time.Time
			scanRow(t, db, `SELECT state, end_date FROM task_instance_history WHERE task_instance_id = $1`, []any{id}, &state, &hEnd)
			if state != "failed" || !hEnd.Equal(t0) {
				t.Errorf("history: %s %v", state, hEnd)
			}
			// The try is still the current one, as the domain sees it.
			st, err := db.TryStatus(context.Background(), id)
			if err != nil || st.State != workload.StateUpForRetry || !st.Current || st.ReportedAt == nil {
				t.Errorf("TryStatus = %+v, %v", st, err)
			}
			ti, err := db.TaskInstance(context.Background(), id)
			if err != nil || ti.ID != id || ti.State != workload.StateUpForRetry || *ti.RetryDelaySeconds != 5 {
				t.Errorf("TaskInstance = %+v, %v", ti, err)
			}
		}},
		{"refused", "success", func(ti *workload.TaskInstance) error {
			_, _, err := workload.EnterRunning(ti, runRequest(7), t0)
			return err
		}, func(t *testing.T, db *DB, id string, c tiColumnsRow) {
			if *c.State != "success" || c.Hostname == nil || *c.Hostname != "" {
				t.Errorf("refused /run wrote: %+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, af, _ := newTestStore(t)
			row := pgtest.TaskInstanceRow{DagID: "d", TaskID: "t", State: tt.state}
			if tt.state == "running" {
				row.Hostname, row.PID, row.StartDate = "h", ptr(1), ptr(t0.Add(-time.Minute))
			}
			row = af.TaskInstance(t, row)
			_, err := db.UpdateTaskInstance(context.Background(), row.ID, tt.fn)
			if tt.name == "refused" {
				var ce *workload.ConflictError
				if !errors.As(err, &ce) {
					t.Fatalf("err = %v, want conflict", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			tt.check(t, db, row.ID, readColumns(t, db, "d", "t"))
		})
	}
}

// TestUpdateTaskInstanceNotFound: an unknown try is not found, and fn is not
// called.
func TestUpdateTaskInstanceNotFound(t *testing.T) {
	t.Parallel()
	db, _, _ := newTestStore(t)
	for _, id := range []string{pgtest.UUIDv7(), "x"} {
		_, err := db.UpdateTaskInstance(context.Background(), id, func(*workload.TaskInstance) error {
			t.Error("fn called")
			return nil
		})
		if !errors.Is(err, workload.ErrNotFound) {
			t.Errorf("%s: %v", id, err)
		}
	}
}

// TestConcurrentRunOneWins: of 50 concurrent /run of one task instance by
// different workers, spread over three replicas, exactly one starts it; the
// others are refused.
func TestConcurrentRunOneWins(t *testing.T) {
	t.Parallel()
	db, af, clk := newTestStore(t)
	replicas := []*DB{db, openReplica(t, af.URL, clk), openReplica(t, af.URL, clk)}
	row := af.TaskInstance(t, pgtest.TaskInstanceRow{})
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = replicas[i%len(replicas)].UpdateTaskInstance(context.Background(), row.ID,
				func(ti *workload.TaskInstance) error {
					_, _, err := workload.EnterRunning(ti, runRequest(1000+i), t0)
					return err
				})
		}()
	}
	close(start)
	wg.Wait()
	won := -1
	for i, err := range errs {
		var ce *workload.ConflictError
		switch {
		case err == nil:
			if won >= 0 {
				t.Fatalf("both %d and %d started the task instance", won, i)
			}
			won = i
		case errors.As(err, &ce) && ce.Reason == "invalid_state" && ce.Extra["previous_state"] == "running":
		default:
			t.Errorf("run %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no /run won")
	}
	var pid int
	scanRow(t, db, `SELECT pid FROM task_instance WHERE id = $1`, []any{row.ID}, &pid)
	if pid != 1000+won {
		t.Errorf("row's pid = %d, winner's %d", pid, 1000+won)
	}
}

// TestInsertTaskInstance: a new try is inserted with its dag run, a try
// replacing a finished one takes over Airflow's row (the earlier try into
// history), and a dag Airflow does not know or a taken id is refused.
func TestInsertTaskInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, clk := newTestStore(t)
	af.DagRun(t, pgtest.DagRunRow{DagID: "d", RunID: "existing"}) // creates the dag
	queue := func(id string, r workload.QueueRequest) (*workload.TaskInstance, error) {
		return workload.Queue(ctx, db, id, r, clk.Now())
	}
	req := workload.QueueRequest{DagID: "d", RunID: "new_run", TaskID: "t", MapIndex: -1, QueuedBy: "alice"}

	first := pgtest.UUIDv7()
	ti, err := queue(first, req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.TaskInstance(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ti, got, cmpIgnoreStored()); diff != "" {
		t.Errorf("read back (-inserted +read):\n%s", diff)
	}
	if got.QueuedBy != "alice" || got.TryNumber != 1 || got.State != workload.StateQueued {
		t.Errorf("inserted: %+v", got)
	}
	// The columns Airflow's models fill in Python, as they fill them.
	var execConfig []byte
	var carrier, pool, display string
	scanRow(t, db, `SELECT executor_config, context_carrier::text, pool, task_display_name FROM task_instance WHERE id = $1`,
		[]any{first}, &execConfig, &carrier, &pool, &display)
	if string(execConfig) != string(pgtest.EmptyExecutorConfig) || !jsonEqual(t, []byte(carrier), mustJSON(pgtest.ExtendedJSON(map[string]any{}))) ||
		pool != pgtest.DefaultPool || display != "t" {
		t.Errorf("Python-side defaults: executor_config %x, context_carrier %s, pool %s, display %s", execConfig, carrier, pool, display)
	}
	dr, err := db.DagRun(ctx, "d", "new_run")
	if err != nil || dr.RunType != "manual" || dr.State != "running" || string(dr.Conf) != "{}" {
		t.Errorf("dag run: %+v, %v", dr, err)
	}

	if _, err := queue(pgtest.UUIDv7(), req); !errors.Is(err, workload.ErrAlreadyExists) {
		t.Errorf("queue while queued: %v", err)
	}
	if _, err := db.UpdateTaskInstance(ctx, first, func(ti *workload.TaskInstance) error {
		return workload.ForceState(ti, workload.StateFailed, clk.Now())
	}); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	second := pgtest.UUIDv7()
	if ti, err = queue(second, req); err != nil {
		t.Fatal(err)
	}
	if ti.TryNumber != 2 {
		t.Errorf("second try number %d", ti.TryNumber)
	}
	c := readColumns(t, db, "d", "t")
	if c.ID != second || *c.State != "queued" {
		t.Errorf("row after second try: %+v", c)
	}
	st, err := db.TryStatus(ctx, first)
	if err != nil || st.Current || st.State != workload.StateFailed {
		t.Errorf("first try's status: %+v, %v", st, err)
	}
	old, err := db.TaskInstance(ctx, first)
	if err != nil || old.TryNumber != 1 || old.State != workload.StateFailed {
		t.Errorf("first try: %+v, %v", old, err)
	}
	if _, err := db.UpdateTaskInstance(ctx, first, func(ti *workload.TaskInstance) error {
		return workload.ForceState(ti, workload.StateSuccess, clk.Now())
	}); !errors.Is(err, workload.ErrInvalidState) {
		t.Errorf("marking an earlier try: %v", err)
	}

	if _, err := queue(second, workload.QueueRequest{DagID: "d", RunID: "r", TaskID: "other", MapIndex: -1}); !errors.Is(err, workload.ErrAlreadyExists) {
		t.Errorf("taken id: %v", err)
	}
	if _, err := queue(pgtest.UUIDv7(), workload.QueueRequest{DagID: "unknown", RunID: "r", TaskID: "t", MapIndex: -1}); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("unknown dag: %v", err)
	}
}

// cmpIgnoreStored compares task instances as stored: times to the
// microsecond, and the columns the database fills.
func cmpIgnoreStored() cmp.Option {
	return cmp.Options{
		cmp.Comparer(func(a, b time.Time) bool { return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond)) }),
		cmp.FilterPath(func(p cmp.Path) bool {
			switch p.Last().String() {
			case ".DagVersionID", ".DagRelPath", ".BundleName":
				return true
			}
			return false
		}, cmp.Ignore()),
	}
}

// TestSkipTaskInstances: skip-downstream skips the matching task instances
// fn changes (the domain spares running and finished ones) and leaves the
// rest.
func TestSkipTaskInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, clk := newTestStore(t)
	run := af.DagRun(t, pgtest.DagRunRow{DagID: "d"})
	rows := map[string]pgtest.TaskInstanceRow{}
	for _, r := range []pgtest.TaskInstanceRow{
		{TaskID: "a", State: "none"},
		{TaskID: "b", State: "scheduled"},
		{TaskID: "c", State: "running", Hostname: "h", PID: ptr(1)},
		{TaskID: "m", MapIndex: ptr(0), State: "none"},
		{TaskID: "m", MapIndex: ptr(1), State: "none"},
		{TaskID: "n", MapIndex: ptr(0), State: "none"},
		{TaskID: "n", MapIndex: ptr(1), State: "none"},
		{TaskID: "z", State: "none"},
	} {
		r.DagID, r.RunID = "d", run.RunID
		r = af.TaskInstance(t, r)
		rows[fmt.Sprintf("%s[%d]", r.TaskID, *r.MapIndex)] = r
	}
	clk.Add(time.Second)
	refs := []workload.TaskRef{{TaskID: "a"}, {TaskID: "b"}, {TaskID: "c"}, {TaskID: "m"}, {TaskID: "n", MapIndex: ptr(1)}}
	if err := db.SkipTaskInstances(ctx, "d", run.RunID, refs, func(ti *workload.TaskInstance) bool {
		return workload.Skip(ti, clk.Now())
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a[-1]": "skipped", "b[-1]": "skipped", "c[-1]": "running", "m[0]": "skipped",
		"m[1]": "skipped", "n[0]": "", "n[1]": "skipped", "z[-1]": ""}
	for k, r := range rows {
		var state *string
		var start *time.Time
		scanRow(t, db, `SELECT state, start_date FROM task_instance WHERE id = $1`, []any{r.ID}, &state, &start)
		if deref(state) != want[k] {
			t.Errorf("%s: state %v, want %q", k, deref(state), want[k])
		}
		if want[k] == "skipped" && (start == nil || !start.Equal(clk.Now())) {
			t.Errorf("%s: start_date %v", k, start)
		}
	}
}

// TestDagRuns: dag runs read from Airflow's rows; the previous successful
// run is the latest successful one with an earlier logical date.
func TestDagRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, _ := newTestStore(t)
	day := func(n int) *time.Time { d := t0.AddDate(0, 0, n); return &d }
	for _, r := range []pgtest.DagRunRow{
		{RunID: "r1", LogicalDate: day(1), State: "success"},
		{RunID: "r2", LogicalDate: day(2), State: "failed"},
		{RunID: "r3", LogicalDate: day(3), State: "success", Conf: map[string]any{"k": "v"}, TriggeringUser: ptr("bob")},
		{RunID: "r4", LogicalDate: day(4), State: "running"},
	} {
		r.DagID, r.DataIntervalStart, r.DataIntervalEnd = "d", r.LogicalDate, r.LogicalDate
		af.DagRun(t, r)
	}
	got, err := db.DagRun(ctx, "d", "r3")
	if err != nil {
		t.Fatal(err)
	}
	want := &workload.DagRun{DagID: "d", RunID: "r3", LogicalDate: day(3), DataIntervalStart: day(3), DataIntervalEnd: day(3),
		RunAfter: t0, StartDate: &t0, RunType: "manual", State: "success", Conf: json.RawMessage(`{"k": "v"}`),
		TriggeringUserName: ptr("bob")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DagRun (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		before time.Time
		want   string // "" = not found
	}{{*day(4), "r3"}, {*day(3), "r1"}, {*day(1), ""}, {*day(9), "r3"}} {
		dr, err := db.PreviousSuccessfulDagRun(ctx, "d", tc.before)
		switch {
		case tc.want == "" && !errors.Is(err, workload.ErrNotFound):
			t.Errorf("before %v: %v, %v", tc.before, dr, err)
		case tc.want != "" && (err != nil || dr.RunID != tc.want):
			t.Errorf("before %v: %v, %v; want %s", tc.before, dr, err, tc.want)
		}
	}
	if _, err := db.DagRun(ctx, "d", "nope"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("missing run: %v", err)
	}
}

// TestRenderedFieldsAndXComKeys: rendered fields go to
// rendered_task_instance_fields as plain json, replacing earlier ones;
// XComKeys lists the xcom rows of a task.
func TestRenderedFieldsAndXComKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, _ := newTestStore(t)
	row := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "d", TaskID: "t"})
	for _, f := range []string{`{"cmd": "echo 1"}`, `{"cmd": "echo 2", "env": {"A": [1]}}`} {
		if err := db.PutRenderedFields(ctx, row.ID, json.RawMessage(f)); err != nil {
			t.Fatal(err)
		}
		var stored string
		scanRow(t, db, `SELECT rendered_fields::text FROM rendered_task_instance_fields WHERE dag_id = 'd' AND task_id = 't'`,
			nil, &stored)
		if stored != f {
			t.Errorf("rendered_fields = %s, want %s verbatim", stored, f)
		}
	}
	if err := db.PutRenderedFields(ctx, pgtest.UUIDv7(), json.RawMessage(`{}`)); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("unknown task instance: %v", err)
	}
	// Fields of runs older than the dag's latest renderedRunsToKeep go.
	af.Exec(t, `INSERT INTO dag_run (dag_id, state, run_id, run_type, run_after, log_template_id, updated_at)
		SELECT 'd', 'success', 'later' || i, 'manual', $1::timestamptz + i * interval '1 minute',
			(SELECT max(id) FROM log_template), now() FROM generate_series(1, $2) i`, t0, renderedRunsToKeep)
	newest := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "d", RunID: fmt.Sprint("later", renderedRunsToKeep), TaskID: "t"})
	if err := db.PutRenderedFields(ctx, newest.ID, json.RawMessage(`{"cmd": "new"}`)); err != nil {
		t.Fatal(err)
	}
	var runs []string
	rows, _ := db.pool.Query(ctx, `SELECT run_id FROM rendered_task_instance_fields WHERE dag_id = 'd' AND task_id = 't'`)
	for rows.Next() {
		var r string
		_ = rows.Scan(&r)
		runs = append(runs, r)
	}
	if diff := cmp.Diff([]string{newest.RunID}, runs); diff != "" {
		t.Errorf("rendered fields kept (-want +got):\n%s", diff)
	}

	mapped := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "d", RunID: row.RunID, TaskID: "m", MapIndex: ptr(2)})
	for _, x := range []struct {
		task string
		mi   int
		key  string
	}{{"t", -1, "return_value"}, {"t", -1, "other"}, {"m", 2, "k2"}} {
		af.Exec(t, `INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, timestamp)
			SELECT id, $1, $2, $3, dag_id, run_id, '1', now() FROM dag_run WHERE run_id = $4`, x.task, x.mi, x.key, row.RunID)
	}
	_ = mapped
	for _, tc := range []struct {
		task string
		mi   int
		want []string
	}{{"t", -1, []string{"other", "return_value"}}, {"m", -1, []string{"k2"}}, {"m", 2, []string{"k2"}}, {"m", 1, []string{}}} {
		keys, err := db.XComKeys(ctx, "d", row.RunID, tc.task, tc.mi)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, keys); diff != "" {
			t.Errorf("XComKeys(%s, %d) (-want +got):\n%s", tc.task, tc.mi, diff)
		}
	}
}

// TestTaskInstancesListing: the operator's listing filters and pages
// Airflow's rows.
func TestTaskInstancesListing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, _ := newTestStore(t)
	run := af.DagRun(t, pgtest.DagRunRow{DagID: "d"})
	for _, task := range []string{"c", "a", "b"} {
		af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "d", RunID: run.RunID, TaskID: task})
	}
	moved := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "e", TaskID: "a", State: "running", Hostname: "h", PID: ptr(1)})
	if _, err := db.UpdateTaskInstance(ctx, moved.ID, func(ti *workload.TaskInstance) error {
		_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateUpForRetry, EndDate: &t0}, t0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		f     workload.TaskInstanceFilter
		want  []string
		total int
	}{
		{"all", workload.TaskInstanceFilter{}, []string{"d.a", "d.b", "d.c", "e.a"}, 4},
		{"dag", workload.TaskInstanceFilter{DagID: "d"}, []string{"d.a", "d.b", "d.c"}, 3},
		{"state", workload.TaskInstanceFilter{State: workload.StateUpForRetry}, []string{"e.a"}, 1},
		{"page", workload.TaskInstanceFilter{Limit: 2, Offset: 1}, []string{"d.b", "d.c"}, 4},
		{"past the end", workload.TaskInstanceFilter{Offset: 10}, []string{}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tis, total, err := db.TaskInstances(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, ti := range tis {
				got = append(got, ti.DagID+"."+ti.TaskID)
				if ti.DagID == "e" && (ti.ID != moved.ID || ti.ReportedAt == nil) {
					t.Errorf("moved try listed as %s (reported %v), want its id %s", ti.ID, ti.ReportedAt, moved.ID)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" || total != tc.total {
				t.Errorf("total %d, want %d; (-want +got):\n%s", total, tc.total, diff)
			}
		})
	}
}

// TestTryStatusStaleness: TryStatus serves a change made elsewhere (here
// Airflow's scheduler marking the row) within tryStatusTTL, and a change
// through this replica at once.
func TestTryStatusStaleness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, clk := newTestStore(t)
	row := af.TaskInstance(t, pgtest.TaskInstanceRow{})
	st, err := db.TryStatus(ctx, row.ID)
	if err != nil || st.State != workload.StateQueued || !st.Current {
		t.Fatalf("TryStatus = %+v, %v", st, err)
	}
	if _, err := db.UpdateTaskInstance(ctx, row.ID, func(ti *workload.TaskInstance) error {
		_, _, err := workload.EnterRunning(ti, runRequest(1), clk.Now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.TryStatus(ctx, row.ID); st.State != workload.StateRunning {
		t.Errorf("after this replica's /run: %s", st.State)
	}
	af.Exec(t, `UPDATE task_instance SET state = 'success' WHERE id = $1`, row.ID)
	clk.Add(tryStatusTTL / 2)
	if st, _ := db.TryStatus(ctx, row.ID); st.State != workload.StateRunning {
		t.Errorf("within the bound: %s (cached is fine, fresh too)", st.State)
	}
	clk.Add(tryStatusTTL / 2)
	if st, _ := db.TryStatus(ctx, row.ID); st.State != workload.StateSuccess {
		t.Errorf("after the bound: %s, want success", st.State)
	}
	if _, err := db.TryStatus(ctx, pgtest.UUIDv7()); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
}

// nextKwargsSent is next_kwargs as a worker sends them on deferral:
// serialized by BaseSerialization (an event holding a datetime).
var nextKwargsSent = json.RawMessage(`{"__var": {"event": {"__var": 1727697600.0, "__type": "datetime"}, ` +
	`"l": [1, {"__var": {"z": null}, "__type": "dict"}]}, "__type": "dict"}`)

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestNextKwargsRoundTrip: next_kwargs travel verbatim between the
// Execution API and the column, both in Airflow's ExtendedJSON: what a
// worker sends on deferral is stored as Airflow's model stores it (the
// fixture's encoder is BaseSerialization.serialize), and what Airflow wrote
// (the triggerer's event) reads back as the raw column /run returns.
func TestNextKwargsRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, clk := newTestStore(t)
	value := map[string]any{"event": map[string]any{"status": "ok", "n": []any{1.5, "x"}}}
	row := af.TaskInstance(t, pgtest.TaskInstanceRow{State: "scheduled", NextMethod: ptr("m"), NextKwargs: value})
	ti, err := db.TaskInstance(ctx, row.ID)
	if err != nil || !jsonEqual(t, ti.NextKwargs, mustJSON(pgtest.ExtendedJSON(value))) {
		t.Errorf("read %s, %v; want Airflow's encoding", ti.NextKwargs, err)
	}

	run := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "d2", TaskID: "t", State: "running", Hostname: "h", PID: ptr(1)})
	sent := mustJSON(pgtest.ExtendedJSON(value))
	if _, err := db.UpdateTaskInstance(ctx, run.ID, func(ti *workload.TaskInstance) error {
		_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateDeferred, Classpath: "c",
			NextMethod: ptr("m"), NextKwargs: sent}, clk.Now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c := readColumns(t, db, "d2", "t")
	if !jsonEqual(t, []byte(*c.NextKwargs), mustJSON(pgtest.ExtendedJSON(value))) {
		t.Errorf("stored %s", *c.NextKwargs)
	}
	back, err := db.TaskInstance(ctx, run.ID)
	if err != nil || string(back.NextKwargs) != string(sent) {
		t.Errorf("read back %s, %v; want %s", back.NextKwargs, err, sent)
	}
}

// TestTryStatus: the status of a try from Airflow's rows, wherever its id
// leads.
func TestTryStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, clk := newTestStore(t)
	retried := func(state string) string { // a try that ended in up_for_retry; then the row goes to state
		id := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "r" + state, TaskID: "t", State: "running", Hostname: "h", PID: ptr(1)}).ID
		if _, err := db.UpdateTaskInstance(ctx, id, func(ti *workload.TaskInstance) error {
			_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateUpForRetry, EndDate: &t0}, t0)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if state != "" {
			// Airflow's scheduler queues the next try: try_number + 1.
			af.Exec(t, `UPDATE task_instance SET state = $1, try_number = try_number + 1 WHERE dag_id = $2`, state, "r"+state)
		}
		return id
	}
	tests := []struct {
		name string
		id   string
		want workload.TryStatus
		err  error
	}{
		{"queued", af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "a"}).ID,
			workload.TryStatus{State: workload.StateQueued, Current: true}, nil},
		{"no state", af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "b", State: "none"}).ID,
			workload.TryStatus{Current: true}, nil},
		{"retried, not yet requeued", retried(""),
			workload.TryStatus{State: workload.StateUpForRetry, Current: true, Moved: true, ReportedAt: &t0}, nil},
		{"retried, next try queued", retried("queued"),
			workload.TryStatus{State: workload.StateFailed, Current: false, ReportedAt: &t0}, nil},
		{"unknown", pgtest.UUIDv7(), workload.TryStatus{}, workload.ErrNotFound},
		{"not a uuid", "abc", workload.TryStatus{}, workload.ErrNotFound},
	}
	clk.Add(2 * tryStatusTTL) // past what the writes above cached
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := db.TryStatus(ctx, tt.id)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, st); diff != "" {
				t.Errorf("TryStatus (-want +got):\n%s", diff)
			}
		})
	}
}
