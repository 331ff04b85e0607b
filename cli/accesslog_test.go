package cli

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/taskgate/taskgate/gateway"
	"github.com/taskgate/taskgate/scopes"
)

// zapLine is the line the server's zap logger writes for e, as the gateway
// asks it without an AccessLog.
func zapLine(t testing.TB, e *gateway.AccessEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	log := newJSONLogger(zapcore.InfoLevel, zapcore.AddSync(&buf), new(millisecondTimes))
	ce := log.Core().Check(zapcore.Entry{Level: zap.InfoLevel, Time: e.Time, Message: "request"}, nil)
	if ce == nil {
		t.Fatal("info is not enabled")
	}
	ce.Write(e.Fields(nil)...)
	return buf.Bytes()
}

// accessLine is the line accessLog writes for e.
func accessLine(e *gateway.AccessEntry) []byte {
	var buf bytes.Buffer
	newAccessLog(zapcore.AddSync(&buf), zapcore.InfoLevel, new(millisecondTimes)).LogRequest(e)
	return buf.Bytes()
}

// TestAccessLogMatchesZap: accessLog writes, byte for byte, the line the
// server's zap logger writes for the same request, whatever the entry holds.
func TestAccessLogMatchesZap(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 0, 123_456_789, time.UTC)
	task := &scopes.Claims{ID: "0190e3e4-aaaa-7000-8000-000000000001", Subject: "0190e3e4-3c2b-7a8e-9d0e-6f1a2b3c4d5e",
		Scope: "execution", ScopePresent: true}
	comp := scopes.ComponentClaims("0190e3e4-0000-7000-8000-000000000002", "triggerer")
	comp.ID = "j2"
	rest := &scopes.Claims{ID: "j3", Subject: "admin \"root\"\n"}
	entries := []gateway.AccessEntry{
		{Time: at, Method: "GET", Route: "/execution/variables/:variable_key", Status: 200, Latency: 1234567 * time.Nanosecond,
			CorrelationID: "0190e3e4-aaaa-7000-8000-000000000001", Claims: task},
		{Time: at.In(time.FixedZone("x", 2*3600)), Method: "PUT", Route: "/execution/task-instances/:task_instance_id/heartbeat",
			Status: 204, Latency: time.Second, TIID: task.Subject, Claims: task},
		{Time: at, Method: "GET", Route: "/*", Status: 403, Latency: 0, Refused: true, AuthError: "token scope names no token type"},
		{Time: at, Method: "POST", Route: "/api/v2/x", Status: 500, Latency: 90 * time.Minute, RESTClaims: rest},
		{Time: at, Method: "PATCH", Route: "/execution/jobs", Status: 409, Latency: 3, Claims: comp, Refused: true},
		{Method: "G\x00\x1f\x7f\"\\\t\r\n", Route: "é\u2028\xff\xc3(\xed\xa0\x80", Status: -1, Latency: -5,
			CorrelationID: "\U0001F600 <&>", TIID: "\x80"},
		{Time: at, Claims: &scopes.Claims{Scope: ""}},
	}
	for i := range entries {
		e := &entries[i]
		if got, want := accessLine(e), zapLine(t, e); !bytes.Equal(got, want) {
			t.Errorf("entry %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// Below info, neither writes.
	var buf bytes.Buffer
	newAccessLog(zapcore.AddSync(&buf), zapcore.WarnLevel, new(millisecondTimes)).LogRequest(&entries[0])
	if buf.Len() != 0 {
		t.Errorf("at warn level: %q", buf.String())
	}
}

// FuzzAccessLogMatchesZap is TestAccessLogMatchesZap on any strings and
// numbers.
func FuzzAccessLogMatchesZap(f *testing.F) {
	f.Add("GET", "/execution/variables/:variable_key", 200, int64(1234567), "cid", "ti", "", false, "sub", "execution", "jti", "", int64(1700000000123))
	f.Add("P\x00", "é\xff\u2028", -1, int64(-1), "\"\\", "\t\r\n", "why", true, "", "", "", "triggerer", int64(0))
	f.Fuzz(func(t *testing.T, method, route string, status int, latency int64, cid, ti, authErr string, refused bool,
		sub, scope, jti, component string, ms int64) {
		e := &gateway.AccessEntry{Method: method, Route: route, Status: status, Latency: time.Duration(latency),
			CorrelationID: cid, TIID: ti, AuthError: authErr, Refused: refused}
		if ms != 0 {
			e.Time = time.UnixMilli(ms % (1 << 45)).UTC()
		}
		switch {
		case component != "":
			e.Claims = scopes.ComponentClaims(sub, component)
			e.Claims.ID = jti
		case scope != "" || sub != "":
			e.Claims = &scopes.Claims{ID: jti, Subject: sub, Scope: scope, ScopePresent: scope != ""}
		case jti != "":
			e.RESTClaims = &scopes.Claims{ID: jti, Subject: sub}
		}
		if got, want := accessLine(e), zapLine(t, e); !bytes.Equal(got, want) {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	})
}

// TestAccessLogKeepsEveryLine: lines written from many goroutines through
// the server logger's buffered writer are all on the output once stop
// returns, each whole, among the logger's own lines.
func TestAccessLogKeepsEveryLine(t *testing.T) {
	var out lockedBuffer
	log, access, stop, err := newServerLogger("info", &out)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			e := &gateway.AccessEntry{Time: time.Now(), Method: "GET", Route: "/r", Status: 200, TIID: string(rune('a' + w))}
			for range each {
				access.LogRequest(e)
			}
			log.Info("other")
		})
	}
	wg.Wait()
	stop()
	lines := bytes.Split(bytes.TrimSuffix(out.buf.Bytes(), []byte("\n")), []byte("\n"))
	requests, others := 0, 0
	for _, l := range lines {
		switch {
		case bytes.Contains(l, []byte(`"msg":"request"`)) && bytes.HasSuffix(l, []byte(`"ti_id":"`+string(l[len(l)-3])+`"}`)):
			requests++
		case bytes.Contains(l, []byte(`"msg":"other"`)):
			others++
		default:
			t.Errorf("torn line %q", l)
		}
	}
	if requests != writers*each || others != writers {
		t.Errorf("%d request lines and %d others, want %d and %d", requests, others, writers*each, writers)
	}
}

// lockedBuffer is an io.Writer for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// BenchmarkAccessLine compares the access-log line written by accessLog
// with the same line through the server's zap logger.
func BenchmarkAccessLine(b *testing.B) {
	claims := &scopes.Claims{ID: "4f0d7a3c9b2e4d18a6c5e1f2b3a49687", Subject: "0190e3e4-3c2b-7a8e-9d0e-6f1a2b3c4d5e",
		Scope: "execution", ScopePresent: true}
	e := &gateway.AccessEntry{Time: time.Now(), Method: "GET", Route: "/execution/variables/:variable_key",
		Status: 200, Latency: 87 * time.Microsecond, CorrelationID: "0190e3e4-aaaa-7000-8000-000000000001", Claims: claims}
	b.Run("zap", func(b *testing.B) {
		log := newJSONLogger(zapcore.InfoLevel, zapcore.AddSync(io.Discard), new(millisecondTimes))
		core := log.Core()
		fields := make([]zap.Field, 0, 12)
		b.ReportAllocs()
		for b.Loop() {
			if ce := core.Check(zapcore.Entry{Level: zap.InfoLevel, Time: e.Time, Message: "request"}, nil); ce != nil {
				ce.Write(e.Fields(fields[:0])...)
			}
		}
	})
	b.Run("accessLog", func(b *testing.B) {
		a := newAccessLog(zapcore.AddSync(io.Discard), zapcore.InfoLevel, new(millisecondTimes))
		b.ReportAllocs()
		for b.Loop() {
			a.LogRequest(e)
		}
	})
}

// TestPlainWord: plainWord agrees with plainJSON on every byte in every
// position, among plain bytes.
func TestPlainWord(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			w := uint64(ones * 'a')
			w = w&^(0xff<<(8*pos)) | uint64(c)<<(8*pos)
			want := c < 0x80 && plainJSON[c]
			if got := plainWord(w); got != want {
				t.Errorf("byte %#x at %d: plainWord %v, want %v", c, pos, got, want)
			}
		}
	}
}
