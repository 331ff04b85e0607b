package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// flatten renders a parsed file as "section.key" → value, with [DEFAULT]
// keys under "DEFAULT.".
func flatten(f *iniFile) map[string]string {
	out := map[string]string{}
	for s, keys := range f.sections {
		for k, e := range keys {
			out[s+"."+k] = e.value
		}
	}
	for k, e := range f.defaults {
		out["DEFAULT."+k] = e.value
	}
	return out
}

func TestParseINI(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{
			name: "equals and colon delimiters split at the first one",
			in:   "[s]\na = b:c\nd: e=f\ng=\n",
			want: map[string]string{"s.a": "b:c", "s.d": "e=f", "s.g": ""},
		},
		{
			name: "keys lower-cased, sections case-sensitive, values trimmed",
			in:   "[Core]\n  JWT_Secret   =   x y  \n",
			want: map[string]string{"Core.jwt_secret": "x y"},
		},
		{
			name: "full-line comments and blank lines",
			in:   "# top\n; also\n\n[s]\n# c\n  ; indented comment\na = 1\n\n# between\nb = 2 # not a comment\n",
			want: map[string]string{"s.a": "1", "s.b": "2 # not a comment"},
		},
		{
			name: "continuation lines",
			in:   "[s]\na = first\n  second\n\tthird\nb = 2\n",
			want: map[string]string{"s.a": "first\nsecond\nthird", "s.b": "2"},
		},
		{
			name: "value starting on the continuation line",
			in:   "[s]\na =\n    x\n    y\n",
			want: map[string]string{"s.a": "\nx\ny"},
		},
		{
			name: "blank line kept inside a value, trailing ones dropped, comments skipped",
			in:   "[s]\na = 1\n\n  2\n  # gone\n  3\n\n\nb = 4\n",
			want: map[string]string{"s.a": "1\n\n2\n3", "s.b": "4"},
		},
		{
			name: "indented key line sets the indent for its continuations",
			in:   "[s]\n  a = 1\n  b = 2\n    c\n",
			want: map[string]string{"s.a": "1", "s.b": "2\nc"},
		},
		{
			name: "indented section header inside a value is part of the value",
			in:   "[s]\na = 1\n  [t]\n",
			want: map[string]string{"s.a": "1\n[t]"},
		},
		{
			name: "section header trailing text ignored",
			in:   "[s] ; comment\na = 1\n",
			want: map[string]string{"s.a": "1"},
		},
		{
			name: "DEFAULT section",
			in:   "[DEFAULT]\nx = 1\n[s]\na = 2\n",
			want: map[string]string{"DEFAULT.x": "1", "s.a": "2"},
		},
		{
			name: "CRLF, CR and BOM",
			in:   "\uFEFF[s]\r\na = 1\r\nb = 2\rc = 3",
			want: map[string]string{"s.a": "1", "s.b": "2", "s.c": "3"},
		},
		{
			name: "empty file",
			in:   "",
			want: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseINI("test.cfg", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, flatten(f)); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseINIErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want SyntaxError
	}{
		{"line without delimiter", "[s]\na = 1\njust words\n", SyntaxError{"test.cfg", 3, `expected "key = value" or a [section]`}},
		{"key before any section", "# c\na = 1\n", SyntaxError{"test.cfg", 2, "key outside of a [section]"}},
		{"empty key", "[s]\n= 1\n", SyntaxError{"test.cfg", 2, "empty key"}},
		{"empty brackets", "[s]\n[]\n", SyntaxError{"test.cfg", 2, `expected "key = value" or a [section]`}},
		{"duplicate key ignoring case", "[s]\na = 1\nA = 2\n", SyntaxError{"test.cfg", 3, `key "a" appears more than once in [s]`}},
		{"duplicate section", "[s]\n[t]\n[s]\n", SyntaxError{"test.cfg", 3, "section [s] appears more than once"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseINI("test.cfg", []byte(tt.in))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("parseINI() error = %v, want *SyntaxError", err)
			}
			if diff := cmp.Diff(tt.want, *se); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(err.Error(), "config: test.cfg:") {
				t.Errorf("error %q lacks file:line", err)
			}
		})
	}
}

func TestInterpolate(t *testing.T) {
	f, err := parseINI("t.cfg", []byte(`[DEFAULT]
root = /r
[s]
a = %(root)s/a
b = %(A)s/b
pct = 100%%
self = %(self)s
x = %(nope)s
bad = 50%
bad2 = %(a)d
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key     string
		want    string
		wantErr string
	}{
		{"a", "/r/a", ""},
		{"b", "/r/a/b", ""},
		{"pct", "100%", ""},
		{"self", "", "interpolation nested too deeply"},
		{"x", "", `interpolation refers to missing key "nope"`},
		{"bad", "", `"%" must be followed by "%" or "(" (write %% for a literal %)`},
		{"bad2", "", `bad interpolation reference (use %(key)s, or %% for a literal %)`},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			e, _ := f.lookup("s", tt.key)
			got, err := f.interpolate("s", e.value)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff([]string{tt.want, tt.wantErr}, []string{got, gotErr}); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"A": "x", "B": "$A-y", "HOME": "/home/u/", "LOOP": "z$LOOP"}
	tests := []struct {
		in, want, wantErr string
	}{
		{"$A/${A}", "x/x", ""},
		{"$B", "x-y", ""},
		{"$UNSET ${UNSET} ${a/b} $ ${}", "$UNSET ${UNSET} ${a/b} $ ${}", ""},
		{"${UNSET$A}", "${UNSET$A}", ""},
		{"~", "/home/u", ""},
		{"~/k.pem", "/home/u/k.pem", ""},
		{"~root/k", "~root/k", ""},
		{"a~", "a~", ""},
		{"$LOOP", "", "environment variable expansion does not settle"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := expandEnv(tt.in, env)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff([]string{tt.want, tt.wantErr}, []string{got, gotErr}); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseINI(f *testing.F) {
	for _, seed := range []string{
		"",
		"[core]\nexecutor = LocalExecutor\n",
		"[s]\na = 1\n  2\n\n  3\n# c\n",
		"[DEFAULT]\nr = /x\n[s]\na = %(r)s/%%\n",
		"[s]\na = %(a)s\n",
		"key outside",
		"[s]\n= 1\n",
		"\uFEFF[s]\r\na: b\rc = $HOME ~/x ${A}",
		"[]]\n[a]b]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := parseINI("fuzz.cfg", data)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Line < 1 {
				t.Fatalf("error %v is not a *SyntaxError with a line", err)
			}
			return
		}
		env := map[string]string{"HOME": "/h", "A": "$A$A"}
		for s, keys := range file.sections {
			for k, e := range keys {
				if k != strings.ToLower(k) || k != strings.TrimSpace(k) || k == "" {
					t.Fatalf("key %q is not normalised", k)
				}
				if e.line < 1 {
					t.Fatalf("key %q has line %d", k, e.line)
				}
				// Interpolation and expansion must terminate without panicking.
				if v, err := file.interpolate(s, e.value); err == nil {
					_, _ = expandEnv(v, env)
				}
			}
		}
	})
}
