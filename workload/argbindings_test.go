package workload

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestArgBindings(t *testing.T) {
	stub := func(bindings string) json.RawMessage {
		op := `{"task_id": "transform", "task_type": "_StubOperator", "is_stub": true`
		if bindings != "" {
			op += `, "arg_bindings": ` + bindings
		}
		return json.RawMessage(op + "}")
	}
	for _, tc := range []struct {
		name    string
		op      json.RawMessage
		want    string // "" for none
		invalid bool
	}{
		{"not a stub task", nil, "", false},
		{"no arguments", stub(""), "", false},
		{"null", stub("null"), "", false},
		{"empty list", stub("[]"), "", false},
		{"not flagged is_stub", json.RawMessage(`{"task_id": "t", "arg_bindings": [{"name": "a", "kind": "literal"}]}`), "", false},
		{"mapped stub", json.RawMessage(`{"task_id": "t", "is_stub": true, "_is_mapped": true,
			"arg_bindings": [{"name": "a", "kind": "literal"}]}`), "", false},
		{"literal and xcom, in the model's order, unknown keys dropped",
			stub(`[{"value": "uk", "kind": "literal", "name": "country", "value_schema": {"type": "string"}, "extra": 1},
				{"task_id": "extract", "kind": "xcom", "name": "extracted"},
				{"name": "limit", "kind": "literal", "value": 10, "from_default": true}]`),
			`[{"name":"country","value_schema":{"type":"string"},"kind":"literal","value":"uk"},` +
				`{"name":"extracted","kind":"xcom","task_id":"extract"},` +
				`{"name":"limit","kind":"literal","value":10,"from_default":true}]`, false},
		{"a literal without a value, a null schema, a lax boolean",
			stub(`[{"name": "a", "kind": "literal", "value_schema": null, "from_default": "yes"}]`),
			`[{"name":"a","value_schema":null,"kind":"literal","from_default":true}]`, false},
		{"BaseSerialization's dict encoding is read through",
			stub(`[{"__type": "dict", "__var": {"name": "a", "kind": "literal", "value": {"__type": "dict", "__var": {"k": 1}}}}]`),
			`[{"name":"a","kind":"literal","value":{"k":1}}]`, false},
		{"not a list", stub(`{"name": "a"}`), "", true},
		{"not an object", stub(`["a"]`), "", true},
		{"unknown kind", stub(`[{"name": "a", "kind": "env"}]`), "", true},
		{"no kind", stub(`[{"name": "a"}]`), "", true},
		{"no name", stub(`[{"kind": "literal", "value": 1}]`), "", true},
		{"name not a string", stub(`[{"name": 1, "kind": "literal"}]`), "", true},
		{"xcom without task_id", stub(`[{"name": "a", "kind": "xcom"}]`), "", true},
		{"schema not an object", stub(`[{"name": "a", "kind": "literal", "value_schema": "string"}]`), "", true},
		{"from_default not a boolean", stub(`[{"name": "a", "kind": "literal", "from_default": 2}]`), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ArgBindings(tc.op)
			if tc.invalid {
				if !errors.Is(err, ErrInvalidArgBindings) {
					t.Fatalf("err = %v, want ErrInvalidArgBindings", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if got != nil {
					t.Errorf("got %s, want none", got)
				}
				return
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestSerializedStubTasks(t *testing.T) {
	doc := []byte(`{"__version": 3, "dag": {"dag_id": "d", "fileloc": "/x/a.py", "relative_fileloc": "a.py", "tasks": [
		{"__type": "operator", "__var": {"task_id": "extract", "is_stub": true}},
		{"__type": "operator", "__var": {"task_id": "transform", "is_stub": true, "arg_bindings": []}},
		{"__type": "operator", "__var": {"task_id": "plain"}}]}}`)
	all, err := SerializedStubTasks(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all["extract"] == nil || all["transform"] == nil {
		t.Errorf("stub tasks %v", all)
	}
	for id, want := range map[string]bool{"transform": true, "plain": false, "missing": false} {
		op, err := SerializedStubTask(doc, id)
		if err != nil || (op != nil) != want {
			t.Errorf("%s: %s, %v", id, op, err)
		}
	}
	// A published DAG keeps its stub tasks for the embedded store's record.
	d, err := ParseSerializedDag(doc)
	if err != nil {
		t.Fatal(err)
	}
	var parsed, direct map[string]any
	for name, m := range map[string]*map[string]any{"parsed": &parsed, "direct": &direct} {
		src := d.StubTasks["transform"]
		if name == "direct" {
			src = all["transform"]
		}
		if err := json.Unmarshal(src, m); err != nil {
			t.Fatal(err)
		}
	}
	if len(d.StubTasks) != 2 || !reflect.DeepEqual(parsed, direct) {
		t.Errorf("ParseSerializedDag stub tasks %v", d.StubTasks)
	}
	if _, err := SerializedStubTasks([]byte(`not json`)); err == nil {
		t.Error("an invalid document accepted")
	}
}
