package worker

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestLineLogger: output is logged one entry per line however it is
// chunked; overlong lines are logged in pieces and never become the return
// value candidate.
func TestLineLogger(t *testing.T) {
	type entry struct {
		Line      string
		Truncated bool
		Continued bool
	}
	for _, tc := range []struct {
		name     string
		writes   []string
		max      int
		want     []entry
		wantLast string
	}{
		{"lines in one write", []string{"a\nb\n"}, 100, []entry{{Line: "a"}, {Line: "b"}}, "b"},
		{"a line over several writes", []string{"he", "llo", " world\nnext"}, 100, []entry{{Line: "hello world"}, {Line: "next"}}, "next"},
		{"CRLF", []string{"one\r\ntwo\r\n"}, 100, []entry{{Line: "one"}, {Line: "two"}}, "two"},
		{"empty lines", []string{"x\n\n"}, 100, []entry{{Line: "x"}, {Line: ""}}, ""},
		{"overlong line", []string{"abcdefghij\nok\n"}, 4, []entry{
			{Line: "abcd", Truncated: true}, {Line: "efgh", Truncated: true, Continued: true}, {Line: "ij", Continued: true},
			{Line: "ok"},
		}, "ok"},
		{"overlong last line", []string{"ok\n", "abcdefg"}, 4, []entry{
			{Line: "ok"}, {Line: "abcd", Truncated: true}, {Line: "efg", Continued: true},
		}, ""},
		{"exactly max", []string{"abcd\n"}, 4, []entry{{Line: "abcd"}}, "abcd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			w := newLineLogger(zap.New(core), "stdout", tc.max)
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			w.Flush()
			var got []entry
			for _, e := range logs.All() {
				m := e.ContextMap()
				if m["stream"] != "stdout" || e.Message != "task output" {
					t.Errorf("entry %q %v", e.Message, m)
				}
				tr, _ := m["truncated"].(bool)
				co, _ := m["continued"].(bool)
				got = append(got, entry{Line: m["line"].(string), Truncated: tr, Continued: co})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			if last := string(w.LastLine()); last != tc.wantLast {
				t.Errorf("LastLine = %q, want %q", last, tc.wantLast)
			}
		})
	}
}
