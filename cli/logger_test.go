package cli

import (
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
)

// TestMillisecondTimes: the cached log time is zap's ISO 8601 text, also
// across milliseconds and time zones.
func TestMillisecondTimes(t *testing.T) {
	var m millisecondTimes
	base := time.Date(2026, 11, 27, 12, 0, 0, 123_400_000, time.UTC)
	plus2 := time.FixedZone("x", 2*3600)
	for _, tm := range []time.Time{base, base.Add(500 * time.Microsecond), base.Add(time.Millisecond), base.In(plus2), base} {
		got, want := &stringArray{}, &stringArray{}
		m.encode(tm, got)
		zapcore.ISO8601TimeEncoder(tm, want)
		if got.s != want.s {
			t.Errorf("%v: %q, want %q", tm, got.s, want.s)
		}
	}
}

// stringArray records the string a time encoder appends.
type stringArray struct {
	zapcore.ArrayEncoder
	s string
}

func (a *stringArray) AppendString(s string) { a.s = s }
