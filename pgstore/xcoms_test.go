package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

// xcomRunAfter is run_after of the fixture's run "r3"; the other runs are
// placed around it.
var xcomRunAfter = time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC)

// openXComs opens a store on a database holding the rows Airflow's
// scheduler would have made before a task pushes XComs, inserted as Airflow
// inserts them: dag "d" with runs r1 (2 days before r3), r2 and r2b (the
// same run_after, one day before r3), r3 and r4 (a day after, so never a
// "prior date" of r3); dag "e" with a run r3 3 days before d's. Task "t" is
// unmapped in every run, task "m" has map indexes 0..2 in d's r1 and r3.
// It returns the dag_run ids by "dag/run".
func openXComs(t *testing.T) (*DB, string, map[string]int64) {
	t.Helper()
	db, u := openData(t, nil)
	a := &pgtest.Airflow{URL: u, Now: func() time.Time { return dataClock }}
	day := 24 * time.Hour
	ids := map[string]int64{}
	for _, r := range []struct {
		dag, run, runType string
		after             time.Duration // from xcomRunAfter
	}{
		{"d", "r1", "scheduled", -2 * day},
		{"d", "r2", "scheduled", -day},
		{"d", "r2b", "manual", -day},
		{"d", "r3", "scheduled", 0},
		{"d", "r4", "scheduled", day},
		{"e", "r3", "scheduled", -3 * day},
	} {
		row := pgtest.DagRunRow{DagID: r.dag, RunID: r.run, RunType: r.runType, RunAfter: xcomRunAfter.Add(r.after)}
		if r.runType == "scheduled" {
			logical := row.RunAfter.Add(-day)
			row.LogicalDate = &logical
		}
		ids[r.dag+"/"+r.run] = a.DagRun(t, row).ID
		a.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.dag, RunID: r.run, TaskID: "t"})
		if r.dag == "d" && (r.run == "r1" || r.run == "r3") {
			for mi := range 3 {
				a.TaskInstance(t, pgtest.TaskInstanceRow{DagID: r.dag, RunID: r.run, TaskID: "m", MapIndex: ptr(mi)})
			}
		}
	}
	return db, u, ids
}

// TestSetXComAsAirflowStoresIt: SetXCom writes the row Airflow's set_xcom
// writes: the JSON document the task sent as the JSONB value, not wrapped
// in a JSON string (what XComModel.deserialize_value returns as it is and
// the Execution API serves to the Task SDK), dag_run_id from the dag run,
// the store's clock as timestamp.
func TestSetXComAsAirflowStoresIt(t *testing.T) {
	db, u, runs := openXComs(t)
	for _, tc := range []struct {
		name     string
		value    string
		wantType string // jsonb_typeof(value)
		wantText string // value::text, PostgreSQL's own form of the document
	}{
		{"object", `{"b":1,"a":[1, 2]}`, "object", `{"a": [1, 2], "b": 1}`},
		{"serde tuple", `{"__classname__":"builtins.tuple","__version__":1,"__data__":[1,2]}`, "object",
			`{"__data__": [1, 2], "__version__": 1, "__classname__": "builtins.tuple"}`},
		{"string", `"hello"`, "string", `"hello"`},
		{"string of digits", `"42"`, "string", `"42"`},
		{"number", `42`, "number", `42`},
		{"float", `1.50`, "number", `1.50`},
		{"bool", `true`, "boolean", `true`},
		{"null", `null`, "null", `null`},
		{"empty is null", ``, "null", `null`},
		{"unicode", `"pässwörd ✓"`, "string", `"pässwörd ✓"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := workload.XCom{XComRef: workload.XComRef{DagID: "d", RunID: "r3", TaskID: "t", MapIndex: -1, Key: tc.name},
				Value: json.RawMessage(tc.value)}
			if err := db.SetXCom(context.Background(), x); err != nil {
				t.Fatal(err)
			}
			var (
				typ, text, dagID, runID string
				drID                    int
				ts                      time.Time
			)
			queryRow(t, u, `SELECT jsonb_typeof(value), value::text, dag_run_id, dag_id, run_id, "timestamp" FROM xcom
				WHERE task_id = 't' AND map_index = -1 AND key = $1`, []any{tc.name}, &typ, &text, &drID, &dagID, &runID, &ts)
			if typ != tc.wantType || text != tc.wantText {
				t.Errorf("value = %s %s; want %s %s", typ, text, tc.wantType, tc.wantText)
			}
			if int64(drID) != runs["d/r3"] || dagID != "d" || runID != "r3" || !ts.Equal(dataClock) {
				t.Errorf("row = dag_run_id %d, %s/%s at %v; want %d, d/r3 at %v", drID, dagID, runID, ts, runs["d/r3"], dataClock)
			}
		})
	}
}

// TestXComsServeAirflowRows: rows in both forms Airflow writes serve the
// value Airflow's Execution API GET returns (the column's document, as it
// is, compact), with their timestamp and the run's run_after: the JSON
// document of the Execution API's set_xcom (serialize=False, what tasks
// push), and the JSON string holding json.dumps text of XComModel.set's
// default (serialize=True), which Airflow's GET hands over as that string
// too. A NULL value is the JSON null.
func TestXComsServeAirflowRows(t *testing.T) {
	db, u, runs := openXComs(t)
	a := &pgtest.Airflow{URL: u, Now: func() time.Time { return dataClock }}
	tuple := map[string]any{"__classname__": "builtins.tuple", "__version__": 1, "__data__": []any{1, 2}}
	list := []any{1, "é", 2.5}
	a.XCom(t, pgtest.XComRow{DagID: "d", RunID: "r3", TaskID: "m", MapIndex: 0, Key: "k", Value: tuple})
	a.XCom(t, pgtest.XComRow{DagID: "d", RunID: "r3", TaskID: "m", MapIndex: 1, Key: "k", Value: list, PythonString: true})
	a.Exec(t, `INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, timestamp)
		VALUES ($1, 'm', 2, 'k', 'd', 'r3', NULL, $2)`, runs["d/r3"], dataClock)
	dumps, err := pgtest.PythonJSON(list)
	if err != nil {
		t.Fatal(err)
	}
	asString, err := json.Marshal(dumps)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.XComs(context.Background(), workload.XComQuery{DagID: "d", RunID: "r3", TaskID: "m", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	ref := func(mi int) workload.XComRef {
		return workload.XComRef{DagID: "d", RunID: "r3", TaskID: "m", MapIndex: mi, Key: "k"}
	}
	want := []workload.XCom{
		{XComRef: ref(0), Value: json.RawMessage(`{"__data__":[1,2],"__version__":1,"__classname__":"builtins.tuple"}`),
			Timestamp: dataClock, RunAfter: xcomRunAfter},
		{XComRef: ref(1), Value: json.RawMessage(asString), Timestamp: dataClock, RunAfter: xcomRunAfter},
		{XComRef: ref(2), Value: json.RawMessage(`null`), Timestamp: dataClock, RunAfter: xcomRunAfter},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("XComs (-want +got):\n%s", diff)
	}
}

// TestXComsOrder: this run's XComs first, then with include_prior_dates the
// same dag's runs whose run_after is not later than this run's, newest
// first (equal run_after by descending run id), each run's by map index;
// other dags, tasks, keys and later runs never.
func TestXComsOrder(t *testing.T) {
	db, _, _ := openXComs(t)
	ctx := context.Background()
	set := func(dag, run, task string, mi int, key, value string) {
		t.Helper()
		x := workload.XCom{XComRef: workload.XComRef{DagID: dag, RunID: run, TaskID: task, MapIndex: mi, Key: key},
			Value: json.RawMessage(value)}
		if err := db.SetXCom(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	for _, run := range []string{"r1", "r2", "r2b", "r3", "r4"} {
		set("d", run, "t", -1, "k", `"`+run+`"`)
		set("d", run, "t", -1, "other", `"no"`)
	}
	set("e", "r3", "t", -1, "k", `"e-r3"`)
	for _, run := range []string{"r3", "r1"} {
		for _, mi := range []int{2, 0, 1} {
			set("d", run, "m", mi, "k", `"`+run+`-`+string(rune('0'+mi))+`"`)
		}
	}
	for _, tc := range []struct {
		name string
		q    workload.XComQuery
		want []string
	}{
		{"this run", workload.XComQuery{DagID: "d", RunID: "r3", TaskID: "t", Key: "k"}, []string{`"r3"`}},
		{"prior dates", workload.XComQuery{DagID: "d", RunID: "r3", TaskID: "t", Key: "k", IncludePriorDates: true},
			[]string{`"r3"`, `"r2b"`, `"r2"`, `"r1"`}},
		{"prior dates of the first run", workload.XComQuery{DagID: "d", RunID: "r1", TaskID: "t", Key: "k", IncludePriorDates: true},
			[]string{`"r1"`}},
		{"prior dates, equal run_after", workload.XComQuery{DagID: "d", RunID: "r2", TaskID: "t", Key: "k", IncludePriorDates: true},
			[]string{`"r2"`, `"r2b"`, `"r1"`}},
		{"map indexes", workload.XComQuery{DagID: "d", RunID: "r3", TaskID: "m", Key: "k"},
			[]string{`"r3-0"`, `"r3-1"`, `"r3-2"`}},
		{"one map index", workload.XComQuery{DagID: "d", RunID: "r3", TaskID: "m", Key: "k", MapIndex: ptr(1)},
			[]string{`"r3-1"`}},
		{"map indexes, prior dates", workload.XComQuery{DagID: "d", RunID: "r3", TaskID: "m", Key: "k", IncludePriorDates: true},
			[]string{`"r3-0"`, `"r3-1"`, `"r3-2"`, `"r1-0"`, `"r1-1"`, `"r1-2"`}},
		{"one map index, prior dates", workload.XComQuery{DagID: "d", RunID: "r3", TaskID: "m", Key: "k", MapIndex: ptr(2), IncludePriorDates: true},
			[]string{`"r3-2"`, `"r1-2"`}},
		{"other dag", workload.XComQuery{DagID: "e", RunID: "r3", TaskID: "t", Key: "k", IncludePriorDates: true},
			[]string{`"e-r3"`}},
		{"missing key", workload.XComQuery{DagID: "d", RunID: "r3", TaskID: "t", Key: "nope"}, []string{}},
		{"missing run", workload.XComQuery{DagID: "d", RunID: "nope", TaskID: "t", Key: "k", IncludePriorDates: true}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.XComs(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			values := []string{}
			for _, x := range got {
				values = append(values, string(x.Value))
				if x.DagID != tc.q.DagID || x.TaskID != tc.q.TaskID || x.Key != tc.q.Key || !x.Timestamp.Equal(dataClock) {
					t.Errorf("XCom %+v does not answer %+v", x.XComRef, tc.q)
				}
			}
			if diff := cmp.Diff(tc.want, values); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSetXComReplacesAndDeletes: a second set replaces the value in the
// same slot; a delete removes only its slot and a repeated one is no error.
func TestSetXComReplacesAndDeletes(t *testing.T) {
	db, u, _ := openXComs(t)
	ctx := context.Background()
	ref := workload.XComRef{DagID: "d", RunID: "r1", TaskID: "m", MapIndex: 1, Key: "k"}
	for _, v := range []string{`1`, `{"x": 2}`} {
		if err := db.SetXCom(ctx, workload.XCom{XComRef: ref, Value: json.RawMessage(v)}); err != nil {
			t.Fatal(err)
		}
	}
	other := ref
	other.MapIndex = 2
	if err := db.SetXCom(ctx, workload.XCom{XComRef: other, Value: json.RawMessage(`3`)}); err != nil {
		t.Fatal(err)
	}
	var n int
	var text string
	queryRow(t, u, `SELECT count(*) OVER (), value::text FROM xcom WHERE task_id = 'm' AND map_index = 1`, nil, &n, &text)
	if n != 1 || text != `{"x": 2}` {
		t.Errorf("slot holds %d rows, value %s; want 1, {\"x\": 2}", n, text)
	}
	for range 2 {
		if err := db.DeleteXCom(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.XComs(ctx, workload.XComQuery{DagID: "d", RunID: "r1", TaskID: "m", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].MapIndex != 2 {
		t.Errorf("after delete: %+v; want only map index 2", got)
	}
}

// TestSetXComUnknown: an XCom of a dag run or task instance that does not
// exist is refused with ErrNotFound and writes nothing.
func TestSetXComUnknown(t *testing.T) {
	db, u, _ := openXComs(t)
	for _, tc := range []struct {
		name string
		ref  workload.XComRef
	}{
		{"dag run", workload.XComRef{DagID: "d", RunID: "nope", TaskID: "t", MapIndex: -1, Key: "k"}},
		{"dag", workload.XComRef{DagID: "nope", RunID: "r1", TaskID: "t", MapIndex: -1, Key: "k"}},
		{"task", workload.XComRef{DagID: "d", RunID: "r1", TaskID: "nope", MapIndex: -1, Key: "k"}},
		{"map index", workload.XComRef{DagID: "d", RunID: "r2", TaskID: "m", MapIndex: 0, Key: "k"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := db.SetXCom(context.Background(), workload.XCom{XComRef: tc.ref, Value: json.RawMessage(`1`)})
			if !errors.Is(err, workload.ErrNotFound) {
				t.Errorf("SetXCom: %v; want ErrNotFound", err)
			}
		})
	}
	var n int
	queryRow(t, u, `SELECT count(*) FROM xcom`, nil, &n)
	if n != 0 {
		t.Errorf("%d xcom rows; want none", n)
	}
}
