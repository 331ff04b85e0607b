package pgtest_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/internal/pgtest"
)

func TestFixtures(t *testing.T) {
	af := pgtest.NewAirflowFixtures(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	af.Now = func() time.Time { return now }
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, af.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	run := af.DagRun(t, pgtest.DagRunRow{DagID: "d1"})
	five := 5
	tests := map[string]struct {
		row  pgtest.TaskInstanceRow
		want map[string]any
	}{
		"defaults, new run": {
			row: pgtest.TaskInstanceRow{},
			want: map[string]any{
				"state": "queued", "try_number": int32(1), "max_tries": int32(0), "hostname": "",
				"unixname": "airflow", "pool": "default_pool", "pool_slots": int32(1), "queue": "default",
				"priority_weight": int32(1), "custom_operator_name": "PythonOperator", "map_index": int32(-1),
				"executor_config": []byte{0x80, 0x05, '}', 0x94, '.'}, "span_status": "not_started",
				"task_display_name": "task",
				"context_carrier":   map[string]any{"__var": map[string]any{}, "__type": "dict"},
			},
		},
		"existing run, mapped, deferred": {
			row: pgtest.TaskInstanceRow{DagID: "d1", RunID: run.RunID, TaskID: "t2", MapIndex: &five,
				State: "deferred", TryNumber: 3, NextMethod: ptr("execute_complete"),
				NextKwargs: map[string]any{"event": []any{"a", map[string]any{"k": 1}}}},
			want: map[string]any{
				"state": "deferred", "try_number": int32(3), "map_index": int32(5), "task_display_name": "t2",
				"next_kwargs": map[string]any{"__type": "dict", "__var": map[string]any{
					"event": []any{"a", map[string]any{"__type": "dict", "__var": map[string]any{"k": float64(1)}}}}},
			},
		},
		"never scheduled": {
			row:  pgtest.TaskInstanceRow{DagID: "d1", RunID: "manual__x", TaskID: "t3", State: "none"},
			want: map[string]any{"state": nil, "try_number": int32(0)},
		},
	}
	uuid7 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ti := af.TaskInstance(t, tc.row)
			if !uuid7.MatchString(ti.ID) {
				t.Errorf("id %q is not a UUIDv7", ti.ID)
			}
			rows, err := conn.Query(ctx, `SELECT * FROM task_instance WHERE id = $1`, ti.ID)
			if err != nil {
				t.Fatal(err)
			}
			got, err := pgx.CollectExactlyOneRow(rows, pgx.RowToMap)
			if err != nil {
				t.Fatal(err)
			}
			sub := map[string]any{}
			for k := range tc.want {
				sub[k] = got[k]
			}
			if diff := cmp.Diff(tc.want, sub); diff != "" {
				t.Errorf("row (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("dag run", func(t *testing.T) {
		var state, runType, conf string
		var logTemplate int
		err := conn.QueryRow(ctx, `SELECT state, run_type, conf::text, log_template_id FROM dag_run WHERE id = $1`,
			run.ID).Scan(&state, &runType, &conf, &logTemplate)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]any{"running", "manual", "{}", 1}, []any{state, runType, conf, logTemplate}); diff != "" {
			t.Errorf("dag_run (-want +got):\n%s", diff)
		}
		if want := "manual__2026-03-01T12:00:00+00:00"; run.RunID != want {
			t.Errorf("run_id = %q, want %q", run.RunID, want)
		}
	})

	t.Run("asset and variable", func(t *testing.T) {
		as := af.Asset(t, pgtest.AssetRow{Name: "s3://bucket/key"})
		af.Variable(t, "k", "v")
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM asset JOIN asset_active USING (name, uri)
			WHERE asset.id = $1`, as.ID).Scan(&n); err != nil || n != 1 {
			t.Fatalf("active asset: %d, %v", n, err)
		}
	})

	t.Run("trigger delete cascades to its task instance", func(t *testing.T) {
		var trig int64
		if err := conn.QueryRow(ctx, `INSERT INTO trigger (classpath, kwargs, created_date)
			VALUES ('x.Y', '{}', now()) RETURNING id`).Scan(&trig); err != nil {
			t.Fatal(err)
		}
		ti := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "d1", RunID: run.RunID, TaskID: "t4",
			State: "deferred", TriggerID: &trig})
		if _, err := conn.Exec(ctx, `DELETE FROM trigger WHERE id = $1`, trig); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM task_instance WHERE id = $1`, ti.ID).Scan(&n); err != nil || n != 0 {
			t.Fatalf("task instance after trigger delete: %d, %v", n, err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestXComFixture(t *testing.T) {
	af := pgtest.NewAirflowFixtures(t)
	ti := af.TaskInstance(t, pgtest.TaskInstanceRow{})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, af.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	value := map[string]any{"b": []any{1, 2.0, "é😀\x7f", nil, true}, "a": map[string]any{"x": `"q\`}}
	for name, tc := range map[string]struct {
		python bool
		want   string // value::text
	}{
		"execution api, native":      {false, `{"a": {"x": "\"q\\"}, "b": [1, 2, "é😀` + "\x7f" + `", null, true]}`},
		"XComModel.set, json string": {true, `"{\"a\": {\"x\": \"\\\"q\\\\\"}, \"b\": [1, 2.0, \"\\u00e9\\ud83d\\ude00\\u007f\", null, true]}"`},
	} {
		t.Run(name, func(t *testing.T) {
			key := strings.ReplaceAll(name, " ", "_")
			af.XCom(t, pgtest.XComRow{DagID: ti.DagID, RunID: ti.RunID, TaskID: ti.TaskID, MapIndex: -1,
				Key: key, Value: value, PythonString: tc.python})
			var got string
			if err := conn.QueryRow(ctx, `SELECT value::text FROM xcom WHERE key = $1`, key).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("value (-want +got):\n%s", diff)
			}
		})
	}
}
