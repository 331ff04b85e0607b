package pgstore

import (
	"bytes"
	"encoding/json"
)

// Airflow's ExtendedJSON columns (task_instance.next_kwargs,
// context_carrier) hold a value passed through
// BaseSerialization.serialize: every JSON object becomes
// {"__var": {…its members, serialized…}, "__type": "dict"}, lists are
// serialized element by element, and strings, numbers, booleans and null
// stay as they are. Reading deserializes the same way. wrapExtendedJSON
// and unwrapExtendedJSON are that pair for plain JSON; an encoded non-dict
// ({"__type": "datetime", …} written by Airflow itself) is kept as it is on
// reading, so that it reaches the worker as Airflow's own encoding.

// wrapExtendedJSON is BaseSerialization.serialize of the JSON value raw; nil
// (SQL NULL) for an empty or null value.
func wrapExtendedJSON(raw json.RawMessage) (any, error) {
	if len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(wrapValue(v))
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// unwrapExtendedJSON is BaseSerialization.deserialize of a column's JSON,
// nil for NULL or null.
func unwrapExtendedJSON(col []byte) (json.RawMessage, error) {
	if len(col) == 0 || string(bytes.TrimSpace(col)) == "null" {
		return nil, nil
	}
	v, err := decodeJSON(col)
	if err != nil {
		return nil, err
	}
	return json.Marshal(unwrapValue(v))
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func wrapValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = wrapValue(e)
		}
		return map[string]any{"__var": m, "__type": "dict"}
	case []any:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = wrapValue(e)
		}
		return l
	}
	return v
}

func unwrapValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		inner, ok := v["__var"].(map[string]any)
		if v["__type"] != "dict" || !ok || len(v) != 2 {
			return v
		}
		m := make(map[string]any, len(inner))
		for k, e := range inner {
			m[k] = unwrapValue(e)
		}
		return m
	case []any:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = unwrapValue(e)
		}
		return l
	}
	return v
}
