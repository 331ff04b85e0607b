package workload

// The argument bindings of a stub task (TIRunContext.arg_bindings): a task
// declared with @task.stub runs in another language's SDK, which cannot
// resolve the TaskFlow call's arguments itself. The DAG processor captures
// them when it serializes the DAG: the task's operator carries "is_stub":
// true and "arg_bindings", one entry per parameter of the stub function in
// declaration order, each an upstream task's return value ("kind": "xcom")
// or a literal from the DAG file ("kind": "literal"). /run hands them to the
// worker as Airflow's ti_run does (get_arg_bindings, then the TaskArgBinding
// model's validation).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// StubOperatorClass is the task_type (task_instance.operator) of @task.stub
// tasks, the only operator the DAG processor flags is_stub. A store that
// knows a task instance's operator reads the serialized DAG for the
// arguments of those tasks only.
const StubOperatorClass = "_StubOperator"

// ErrInvalidArgBindings is a stub task whose serialized arg_bindings do not
// fit Airflow's TaskArgBinding model: its /run answers 500
// invalid_arg_bindings.
var ErrInvalidArgBindings = errors.New("workload: invalid serialized arg_bindings")

// StubTasks reads the serialized stub tasks of a task instance's DAG.
type StubTasks interface {
	// StubTask returns the serialized operator (the __var of its entry in
	// the serialized DAG's tasks) of ti's task in the DAG version ti runs
	// with, when that operator is flagged is_stub; nil when it is not, when
	// the store has no serialized version of the DAG, or the version no such
	// task. It is not called inside a write of the task instance.
	StubTask(ctx context.Context, ti *TaskInstance) (json.RawMessage, error)
}

// serializedTask is what this file reads of a serialized operator.
type serializedTask struct {
	TaskID      string          `json:"task_id"`
	IsStub      bool            `json:"is_stub"`
	IsMapped    bool            `json:"_is_mapped"`
	ArgBindings json.RawMessage `json:"arg_bindings"`
}

// SerializedStubTasks returns the serialized operators flagged is_stub of a
// serialized DAG document ({"dag": {"tasks": [{"__type": "operator",
// "__var": {…}}]}}), by task id; nil when there are none.
func SerializedStubTasks(doc []byte) (map[string]json.RawMessage, error) {
	return stubTasks(doc, "")
}

// SerializedStubTask returns the serialized operator of taskID in a
// serialized DAG document when it is flagged is_stub, else nil.
func SerializedStubTask(doc []byte, taskID string) (json.RawMessage, error) {
	m, err := stubTasks(doc, taskID)
	return m[taskID], err
}

// stubTasks collects the stub operators of doc, of taskID alone when it is
// not empty.
func stubTasks(doc []byte, taskID string) (map[string]json.RawMessage, error) {
	var top struct {
		Dag struct {
			Tasks []struct {
				Var json.RawMessage `json:"__var"`
			} `json:"tasks"`
		} `json:"dag"`
	}
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, fmt.Errorf("workload: serialized dag: %w", err)
	}
	var out map[string]json.RawMessage
	for _, t := range top.Dag.Tasks {
		var op serializedTask
		if len(t.Var) == 0 || json.Unmarshal(t.Var, &op) != nil || !op.IsStub {
			continue
		}
		if taskID != "" && op.TaskID != taskID {
			continue
		}
		if out == nil {
			out = map[string]json.RawMessage{}
		}
		out[op.TaskID] = t.Var
	}
	return out, nil
}

// ArgBindings derives the arg_bindings of /run from a stub task's
// serialized operator (nil: not a stub task), as Airflow's ti_run does:
// none for an operator without them (an argless TaskFlow call) or with an
// empty list, and none for a mapped stub, whose per-index bindings Airflow
// resolves from the expand input and which taskgate does not derive.
// Otherwise each entry is validated as Airflow's TaskArgBinding union and
// rendered as the model answers it: the fields the entry sets, in the
// model's order, others (unknown keys) dropped. An entry that does not fit
// the model is ErrInvalidArgBindings.
func ArgBindings(op json.RawMessage) (json.RawMessage, error) {
	if len(op) == 0 {
		return nil, nil
	}
	var t serializedTask
	if err := json.Unmarshal(op, &t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgBindings, err)
	}
	if !t.IsStub || t.IsMapped || len(t.ArgBindings) == 0 || string(t.ArgBindings) == "null" {
		return nil, nil
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(decodeBaseSerialization(t.ArgBindings), &entries); err != nil {
		return nil, fmt.Errorf("%w: task %s: not a list", ErrInvalidArgBindings, t.TaskID)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	out := make([]orderedFields, len(entries))
	for i, raw := range entries {
		b, err := argBinding(decodeBaseSerialization(raw))
		if err != nil {
			return nil, fmt.Errorf("%w: task %s: arg_bindings[%d]: %v", ErrInvalidArgBindings, t.TaskID, i, err)
		}
		out[i] = b
	}
	return json.Marshal(out)
}

// argBinding validates one TaskArgBinding (XComArgBinding or
// LiteralArgBinding, told apart by kind) as pydantic does in lax mode.
func argBinding(raw json.RawMessage) (orderedFields, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errors.New("not an object")
	}
	var kind string
	if err := json.Unmarshal(m["kind"], &kind); err != nil || (kind != "xcom" && kind != "literal") {
		return nil, fmt.Errorf("kind %s is neither xcom nor literal", m["kind"])
	}
	var out orderedFields
	if !isJSONString(m["name"]) {
		return nil, errors.New("name is not a string")
	}
	out = append(out, field{"name", m["name"]})
	if v, ok := m["value_schema"]; ok {
		if string(v) != "null" && !isJSONObject(v) {
			return nil, errors.New("value_schema is not an object")
		}
		out = append(out, field{"value_schema", v})
	}
	out = append(out, field{"kind", m["kind"]})
	if kind == "xcom" {
		if !isJSONString(m["task_id"]) {
			return nil, errors.New("task_id is not a string")
		}
		return append(out, field{"task_id", m["task_id"]}), nil
	}
	if v, ok := m["value"]; ok {
		out = append(out, field{"value", v})
	}
	if v, ok := m["from_default"]; ok {
		b, ok := laxBool(v)
		if !ok {
			return nil, errors.New("from_default is not a boolean")
		}
		out = append(out, field{"from_default", b})
	}
	return out, nil
}

// decodeBaseSerialization unwraps BaseSerialization's dict encoding
// ({"__type": "dict", "__var": {…}}) of a value, at every level, so that
// an arg_bindings list written through it reads as the plain JSON the
// model validates.
func decodeBaseSerialization(raw json.RawMessage) json.RawMessage {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	out, err := json.Marshal(unwrapBase(v))
	if err != nil {
		return raw
	}
	return out
}

func unwrapBase(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 2 && x["__type"] == "dict" {
			if inner, ok := x["__var"].(map[string]any); ok {
				return unwrapBase(inner)
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = unwrapBase(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = unwrapBase(e)
		}
		return out
	default:
		return v
	}
}

// laxBool is pydantic's lax bool: JSON booleans, 0 and 1, and its words.
func laxBool(raw json.RawMessage) (bool, bool) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false, false
	}
	switch x := v.(type) {
	case bool:
		return x, true
	case float64:
		switch x {
		case 0:
			return false, true
		case 1:
			return true, true
		}
	case string:
		switch strings.ToLower(x) {
		case "0", "off", "f", "false", "n", "no":
			return false, true
		case "1", "on", "t", "true", "y", "yes":
			return true, true
		}
	}
	return false, false
}

func isJSONString(raw json.RawMessage) bool {
	var s string
	return len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil
}

func isJSONObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &m) == nil
}

// field and orderedFields render an object with its keys in a set order.
type field struct {
	key   string
	value any
}

type orderedFields []field

func (o orderedFields) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(f.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}
