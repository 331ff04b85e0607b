package pyjson

import "testing"

// TestPythonJSON: Dumps writes what Python's
// json.dumps(json.loads(raw), sort_keys=…) writes (expectations from
// CPython 3.11).
func TestPythonJSON(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		raw      string
		sortKeys bool
		want     string
	}{
		"separators and key order": {`{"rows": 3, "b": "x"}`, false, `{"rows": 3, "b": "x"}`},
		"numbers and ensure_ascii": {`{"b":1e6,"a":[1.50,-0,"\u00e9\u007f\n\ud83d\ude00é"],"c":1e-5,"d":1e16,"e":123456789012345678901234567890,"f":0.1,"g":1E2,"h":null,"i":true}`, false,
			`{"b": 1000000.0, "a": [1.5, 0, "\u00e9\u007f\n\ud83d\ude00\u00e9"], "c": 1e-05, "d": 1e+16, "e": 123456789012345678901234567890, "f": 0.1, "g": 100.0, "h": null, "i": true}`},
		"sort_keys at every level": {`{"z":{"y":1,"x":[{"b":2,"a":1}]},"a":"q\"\\\/\t\u0001"}`, true,
			`{"a": "q\"\\/\t\u0001", "z": {"x": [{"a": 1, "b": 2}], "y": 1}}`},
		"repeated key": {`{"a":1,"b":2,"a":3}`, false, `{"a": 3, "b": 2}`},
		"float edges": {`[1e400, -1e400, 1e-400, -0.0, 123.456e10, 1.7976931348623157e308, 5e-324, 0.0001, 0.00001, 1e15, 123456789.123456789]`, false,
			`[Infinity, -Infinity, 0.0, -0.0, 1234560000000.0, 1.7976931348623157e+308, 5e-324, 0.0001, 1e-05, 1000000000000000.0, 123456789.12345679]`},
		"empty object":   {`{}`, false, `{}`},
		"line separator": {`"<\u2028>"`, false, `"<\u2028>"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Dumps([]byte(tt.raw), tt.sortKeys)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Dumps(%s) =\n%s\nwant\n%s", tt.raw, got, tt.want)
			}
		})
	}
	for _, bad := range []string{``, `{`, `{"a":1} 2`, `[1,]`} {
		if got, err := Dumps([]byte(bad), false); err == nil {
			t.Errorf("Dumps(%q) = %q, want an error", bad, got)
		}
	}
}
