package pgtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/jackc/pgx/v5"
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
// (", " and ": " separators, non-ASCII escaped as \uXXXX, floats with a
// fraction), map keys sorted. It covers the JSON-like values tests use.
func PythonJSON(v any) (string, error) {
	var b strings.Builder
	if err := pyDump(&b, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

func pyDump(b *strings.Builder, v any) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case string:
		pyString(b, x)
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eEn") { // n: NaN, Inf
			s += ".0"
		}
		b.WriteString(s)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := pyDump(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			pyString(b, k)
			b.WriteString(": ")
			if err := pyDump(b, x[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("pgtest: PythonJSON: unsupported %T", v)
	}
	return nil
}

func pyString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || (r >= 0x7f && r <= 0xffff):
			fmt.Fprintf(b, `\u%04x`, r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(b, `\u%04x\u%04x`, r1, r2)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}
