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
	db, af, _ := newTestStore(t)
	ctx := context.Background()
	run := af.DagRun(t, pgtest.DagRunRow{DagID: "d"})
	var dagVersion string
	queryRow(t, db, `SELECT id::text FROM dag_version WHERE dag_id = 'd'`, nil, &dagVersion)
	start, hb := t0.Add(-time.Minute), t0.Add(-time.Second)
	var trigger int64
	queryRow(t, db, `INSERT INTO trigger (classpath, kwargs, created_date, queue)
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
				NextMethod: ptr("execute_complete"), NextKwargs: json.RawMessage(`{"event":{"n":1.5},"l":["x"]}`),
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
	queryRow(t, db, `SELECT id::text, state, hostname, pid, start_date, end_date, duration, last_heartbeat_at,
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
			queryRow(t, db, `SELECT unixname FROM task_instance WHERE id = $1`, []any{id}, &unixname)
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
			queryRow(t, db, `SELECT reported_at FROM taskgate.try WHERE ti_id = $1`, []any{id}, &reported)
			if !reported.Equal(t0) {
				t.Errorf("reported_at = %v", reported)
			}
		}},
		{"deferred", "running", func(ti *workload.TaskInstance) error {
			_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateDeferred,
				Classpath: "my.Trigger", TriggerKwargs: json.RawMessage(`{"a": 1}`), TriggerTimeout: &timeout,
				NextMethod: ptr("resume"), NextKwargs: json.RawMessage(`{"x": {"y": [1, {"z": null}]}}`)}, t0)
			return err
		}, func(t *testing.T, db *DB, id string, c tiColumnsRow) {
			if *c.State != "deferred" || c.TriggerID == nil || *c.NextMethod != "resume" || !c.TriggerTimeout.Equal(t0.Add(timeout)) {
				t.Fatalf("columns: %+v", c)
			}
			// next_kwargs in Airflow's ExtendedJSON, as its models store it.
			want, _ := json.Marshal(pgtest.ExtendedJSON(map[string]any{"x": map[string]any{"y": []any{1, map[string]any{"z": nil}}}}))
			if !jsonEqual(t, want, []byte(*c.NextKwargs)) {
				t.Errorf("next_kwargs = %s, want %s", *c.NextKwargs, want)
			}
			var classpath, kwargs string
			var created time.Time
			queryRow(t, db, `SELECT classpath, kwargs, created_date FROM trigger WHERE id = $1`, []any{*c.TriggerID},
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
			queryRow(t, db, `SELECT start_date, end_date, duration, reschedule_date FROM task_reschedule WHERE ti_id = $1`,
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
			queryRow(t, db, `SELECT state, end_date FROM task_instance_history WHERE task_instance_id = $1`, []any{id}, &state, &hEnd)
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
// different workers, exactly one starts it; the others are refused.
func TestConcurrentRunOneWins(t *testing.T) {
	db, af, _ := newTestStore(t)
	row := af.TaskInstance(t, pgtest.TaskInstanceRow{})
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = db.UpdateTaskInstance(context.Background(), row.ID, func(ti *workload.TaskInstance) error {
				_, _, err := workload.EnterRunning(ti, runRequest(1000+i), t0)
				return err
			})
		}()
	}
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
		case errors.As(err, &ce) && ce.Reason == "invalid_state":
		default:
			t.Errorf("run %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no /run won")
	}
	var pid int
	queryRow(t, db, `SELECT pid FROM task_instance WHERE id = $1`, []any{row.ID}, &pid)
	if pid != 1000+won {
		t.Errorf("row's pid = %d, winner's %d", pid, 1000+won)
	}
}

// TestInsertTaskInstance: a new try is inserted with its dag run, a try
// replacing a finished one takes over Airflow's row (the earlier try into
// history), and a dag Airflow does not know or a taken id is refused.
func TestInsertTaskInstance(t *testing.T) {
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
		queryRow(t, db, `SELECT state, start_date FROM task_instance WHERE id = $1`, []any{r.ID}, &state, &start)
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
	ctx := context.Background()
	db, af, _ := newTestStore(t)
	row := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "d", TaskID: "t"})
	for _, f := range []string{`{"cmd": "echo 1"}`, `{"cmd": "echo 2", "env": {"A": [1]}}`} {
		if err := db.PutRenderedFields(ctx, row.ID, json.RawMessage(f)); err != nil {
			t.Fatal(err)
		}
		var stored string
		queryRow(t, db, `SELECT rendered_fields::text FROM rendered_task_instance_fields WHERE dag_id = 'd' AND task_id = 't'`,
			nil, &stored)
		if stored != f {
			t.Errorf("rendered_fields = %s, want %s verbatim", stored, f)
		}
	}
	if err := db.PutRenderedFields(ctx, pgtest.UUIDv7(), json.RawMessage(`{}`)); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("unknown task instance: %v", err)
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
	ctx := context.Background()
	db, af, _ := newTestStore(t)
	run := af.DagRun(t, pgtest.DagRunRow{DagID: "d"})
	for _, task := range []string{"c", "a", "b"} {
		af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "d", RunID: run.RunID, TaskID: task})
	}
	af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "e", TaskID: "a", State: "running"})
	for _, tc := range []struct {
		name  string
		f     workload.TaskInstanceFilter
		want  []string
		total int
	}{
		{"all", workload.TaskInstanceFilter{}, []string{"d.a", "d.b", "d.c", "e.a"}, 4},
		{"dag", workload.TaskInstanceFilter{DagID: "d"}, []string{"d.a", "d.b", "d.c"}, 3},
		{"state", workload.TaskInstanceFilter{State: workload.StateRunning}, []string{"e.a"}, 1},
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

// TestNextKwargsRoundTrip: next_kwargs written by taskgate decode as
// Airflow's ExtendedJSON reader decodes them (the fixture's encoder is
// Airflow's serialize), and rows Airflow wrote read back as the worker's
// value.
func TestNextKwargsRoundTrip(t *testing.T) {
	for _, v := range []string{`{}`, `{"a":1}`, `{"event":{"nested":{"deep":[1,"x",{"k":true}]}},"n":null}`, `{"list":[[{"a":{}}]]}`} {
		t.Run(v, func(t *testing.T) {
			var value map[string]any
			if err := json.Unmarshal([]byte(v), &value); err != nil {
				t.Fatal(err)
			}
			wrapped, err := wrapExtendedJSON(json.RawMessage(v))
			if err != nil {
				t.Fatal(err)
			}
			airflow, _ := json.Marshal(pgtest.ExtendedJSON(value))
			if !jsonEqual(t, airflow, []byte(wrapped.(string))) {
				t.Errorf("wrapped %s, Airflow's %s", wrapped, airflow)
			}
			back, err := unwrapExtendedJSON(airflow)
			if err != nil || !jsonEqual(t, back, []byte(v)) {
				t.Errorf("unwrapped %s, %v; want %s", back, err, v)
			}
		})
	}
	db, af, _ := newTestStore(t)
	row := af.TaskInstance(t, pgtest.TaskInstanceRow{State: "scheduled", NextMethod: ptr("m"),
		NextKwargs: map[string]any{"event": map[string]any{"status": "ok"}}})
	ti, err := db.TaskInstance(context.Background(), row.ID)
	if err != nil || !jsonEqual(t, ti.NextKwargs, []byte(`{"event":{"status":"ok"}}`)) {
		t.Errorf("read %s, %v", ti.NextKwargs, err)
	}
}
