package pgtest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/internal/pyjson"
)

// XComRow is an xcom row. Its task instance must exist (the foreign key
// cascades from task_instance); DagRunID is looked up from the run.
type XComRow struct {
	DagID    string
	RunID    string
	TaskID   string
	MapIndex int // -1 for an unmapped task: set it explicitly
	Key      string
	Value    any
	// PythonString stores Value the way XComModel.set does by default
	// (serialize=True): the text of json.dumps(value) as a JSON string in
	// the jsonb column. Without it Value is stored as JSON itself, as the
	// Execution API's set_xcom (serialize=False) and the Task SDK do.
	PythonString bool
}

// XCom inserts an XCom as Airflow writes it and returns the dag_run id.
func (a *Airflow) XCom(t testing.TB, r XComRow) int64 {
	t.Helper()
	now := a.now()
	var value any = r.Value
	if r.PythonString {
		s, err := PythonJSON(r.Value)
		if err != nil {
			t.Fatalf("pgtest: xcom value: %v", err)
		}
		value = s
	}
	raw, err := json.Marshal(value)
	if err != nil {
		t.Fatalf("pgtest: xcom value: %v", err)
	}
	var runID int64
	a.exec(t, func(ctx context.Context, tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT id FROM dag_run WHERE dag_id = $1 AND run_id = $2`,
			r.DagID, r.RunID).Scan(&runID); err != nil {
			return fmt.Errorf("dag run %s/%s: %w", r.DagID, r.RunID, err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, timestamp)
			VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)`,
			runID, r.TaskID, r.MapIndex, r.Key, r.DagID, r.RunID, string(raw), now)
		return err
	})
	return runID
}

// PythonJSON is v encoded as Python's json.dumps does with its defaults
// (", " and ": " separators, non-ASCII escaped as \uXXXX, numbers as
// Python writes them), map keys sorted.
func PythonJSON(v any) (string, error) {
	raw, err := json.Marshal(pythonFloats(v))
	if err != nil {
		return "", fmt.Errorf("pgtest: PythonJSON: %w", err)
	}
	return pyjson.Dumps(raw, true)
}

// pythonFloats keeps a Go float a float through JSON: json.Marshal writes
// 2.0 as 2, which Python would read, and write, as an int.
func pythonFloats(v any) any {
	switch x := v.(type) {
	case float64:
		n := json.Number(strconv.FormatFloat(x, 'g', -1, 64))
		if !strings.ContainsAny(string(n), ".eE") {
			n += ".0"
		}
		return n
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = pythonFloats(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = pythonFloats(e)
		}
		return out
	}
	return v
}
