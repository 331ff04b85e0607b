package gateway

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/workload"
)

func parseResultJSON(change func(b map[string]any)) []byte {
	b := map[string]any{
		"attempt_id": "0190A3B2-0000-7000-8000-000000000001", "dispatch_sequence": 1, "bundle_name": "bundle",
		"relative_fileloc": "a.py", "parse_duration": 1,
		"serialized_dags": []any{map[string]any{"__version": 3, "dag": map[string]any{
			"dag_id": "d", "fileloc": "/x/a.py", "relative_fileloc": "a.py", "tasks": []any{}}}},
		"source_codes": map[string]any{"/x/a.py": map[string]any{"source_code": nil, "language": "python"}},
	}
	if change != nil {
		change(b)
	}
	raw, _ := json.Marshal(b)
	return raw
}

func TestDecodeParseResult(t *testing.T) {
	req, err := decodeParseResult(parseResultJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	r := req.result
	if r.AttemptID != "0190a3b2-0000-7000-8000-000000000001" || len(r.Dags) != 1 || r.Dags[0].Source != sourceUnavailable ||
		r.Invalid != nil || r.SourceKey == "" || len(r.ImportErrors) != 0 || r.ParsedDefinitions == nil {
		t.Errorf("decoded %+v", r)
	}
	dump, _ := json.Marshal(req.dump)
	if !strings.Contains(string(dump), `"parse_duration":1.0`) || !strings.Contains(string(dump), `"warnings":[]`) {
		t.Errorf("dump %s", dump)
	}
	for _, tc := range []struct {
		name   string
		change func(b map[string]any)
		typ    string
		loc    string
		msg    string
	}{
		{"missing sources", func(b map[string]any) { delete(b, "source_codes") }, "missing", "body.source_codes", "Field required"},
		{"absolute path", func(b map[string]any) { b["relative_fileloc"] = "/a.py" }, "value_error", "body.relative_fileloc",
			"Value error, The file location must be a normalized bundle-relative path"},
		{"sequence zero", func(b map[string]any) { b["dispatch_sequence"] = 0 }, "greater_than_equal", "body.dispatch_sequence",
			"Input should be greater than or equal to 1"},
		{"negative duration", func(b map[string]any) { b["parse_duration"] = -1 }, "greater_than_equal", "body.parse_duration",
			"Input should be greater than or equal to 0"},
		{"extra", func(b map[string]any) { b["x"] = 1 }, "extra_forbidden", "body.x", "Extra inputs are not permitted"},
		{"warning type", func(b map[string]any) {
			b["warnings"] = []any{map[string]any{"dag_id": "d", "warning_type": "nope", "message": "m"}}
		}, "literal_error", "body.warnings.0.warning_type", "Input should be 'asset conflict', 'non-existent pool', 'runtime varying value', 'duplicate dag id'"},
		{"outside the file", func(b map[string]any) { b["parsed_definitions"] = []any{"b.py"} }, "value_error", "body",
			"Value error, Definition or diagnostic is outside the published file or container"},
		{"no dag id", func(b map[string]any) {
			b["serialized_dags"] = []any{map[string]any{"dag": map[string]any{}}}
		}, "value_error", "body", "Value error, A serialized Dag must contain a dag_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeParseResult(parseResultJSON(tc.change))
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Errors) != 1 {
				t.Fatalf("err = %v", err)
			}
			e := verr.Errors[0]
			var loc []string
			for _, l := range e.Loc {
				loc = append(loc, strings.Trim(strings.ReplaceAll(string(mustJSON(l)), `"`, ""), " "))
			}
			if e.Type != tc.typ || strings.Join(loc, ".") != tc.loc || e.Msg != tc.msg {
				t.Errorf("got %+v", e)
			}
		})
	}
	req, err = decodeParseResult(parseResultJSON(func(b map[string]any) {
		b["serialized_dags"].([]any)[0].(map[string]any)["__version"] = 999
	}))
	if err != nil || req.result.Invalid == nil || req.result.Dags[0].DagID != "d" {
		t.Errorf("an unreadable serialized dag: %v, %+v", err, req)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// FuzzDecodeParseResult: a parse result body never panics the decoder, is
// refused only with a 422, and once accepted keeps to the file it names
// and dumps to a payload the hash can read.
func FuzzDecodeParseResult(f *testing.F) {
	f.Add(parseResultJSON(nil))
	f.Add(parseResultJSON(func(b map[string]any) {
		b["relative_fileloc"] = "c.zip"
		b["parsed_definitions"] = []any{"c.zip/a.py"}
		b["import_errors"] = map[string]any{"c.zip/b.py": "x"}
		b["serialized_dags"] = []any{}
		b["source_codes"] = map[string]any{}
	}))
	f.Add(parseResultJSON(func(b map[string]any) { b["version_data"] = map[string]any{"a": []any{1.5, nil}} }))
	f.Add([]byte(`{"attempt_id": 1, "serialized_dags": [1]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeParseResult(body)
		if err != nil {
			fuzzCheck422(t, err)
			return
		}
		r := req.result
		if r.BundleName == "" || !validRelativeFileloc(r.RelativeFileloc) || r.SourceKey == "" {
			t.Fatalf("accepted %q as %+v", body, r)
		}
		for _, d := range r.Dags {
			if r.Invalid == nil && d.RelativeFileloc != r.RelativeFileloc && !strings.HasPrefix(d.RelativeFileloc, r.RelativeFileloc+"/") {
				t.Fatalf("dag %s outside %s", d.RelativeFileloc, r.RelativeFileloc)
			}
		}
		dump, err := json.Marshal(req.dump)
		if err != nil {
			t.Fatalf("dump of %q: %v", body, err)
		}
		if _, err := workload.PayloadHash(dump); err != nil {
			t.Fatalf("payload of %q: %v", body, err)
		}
	})
}
