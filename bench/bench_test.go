package bench

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
		// tolerance: the bucket width, 1/64 of the value
		tol time.Duration
	}{
		{"empty", nil, 0.5, 0, 0},
		{"single value is every quantile", []time.Duration{1500 * time.Microsecond}, 0.999, 1500 * time.Microsecond, 25 * time.Microsecond},
		{"small values are exact", []time.Duration{3, 5, 7, 9}, 0.5, 5, 0},
		{"median of 1..1000 µs", series(1000, time.Microsecond), 0.5, 500 * time.Microsecond, 8 * time.Microsecond},
		{"p99 of 1..1000 µs", series(1000, time.Microsecond), 0.99, 990 * time.Microsecond, 16 * time.Microsecond},
		{"p99.9 of 1..1000 µs", series(1000, time.Microsecond), 0.999, 999 * time.Microsecond, 16 * time.Microsecond},
		{"p100 is the exact maximum", series(1000, time.Microsecond), 1, time.Millisecond, 0},
		{"rank rounds up", []time.Duration{time.Millisecond, 2 * time.Millisecond}, 0.5, time.Millisecond, 16 * time.Microsecond},
		{"huge values are clamped, not lost", []time.Duration{time.Hour}, 0.5, maxTracked, time.Duration(maxTracked) / 64},
		{"negative counts as zero", []time.Duration{-5}, 0.5, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tc.values {
				h.Record(v)
			}
			got := h.Quantile(tc.q)
			if d := got - tc.want; d > tc.tol || -d > tc.tol {
				t.Errorf("Quantile(%v) = %v, want %v ± %v", tc.q, got, tc.want, tc.tol)
			}
			if h.Count() != uint64(len(tc.values)) {
				t.Errorf("Count() = %d, want %d", h.Count(), len(tc.values))
			}
		})
	}
}

func series(n int, unit time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * unit
	}
	return out
}

// TestHistogramBuckets checks that the buckets tile the range without gaps
// or overlaps and stay within 1/64 of their values.
func TestHistogramBuckets(t *testing.T) {
	next := uint64(0)
	for i := range numBuckets {
		lo, hi := bucketRange(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		if lo > 2*subBuckets && float64(hi-lo+1) > float64(lo)/subBuckets {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d of its value", i, lo, hi, subBuckets)
		}
		for _, v := range []uint64{lo, hi} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		next = hi + 1
	}
	if next != maxTracked+1 {
		t.Fatalf("buckets end at %d, want %d", next, uint64(maxTracked)+1)
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b Histogram
	for _, v := range series(100, time.Microsecond) {
		a.Record(v)
	}
	for _, v := range series(100, time.Millisecond) {
		b.Record(v)
	}
	a.Merge(&b)
	if a.Count() != 200 {
		t.Errorf("Count() = %d, want 200", a.Count())
	}
	if a.Max() != 100*time.Millisecond {
		t.Errorf("Max() = %v, want 100ms", a.Max())
	}
	if got := a.Quantile(0.5); got > 101*time.Microsecond {
		t.Errorf("median = %v, want ≤ 100µs", got)
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ProcCPU
		wantErr bool
	}{
		{"plain", "4242 (taskgate) S 1 4242 4242 0 -1 4194560 2817 0 0 0 1234 567 0 0 20 0 7 0 99 1000 100 18446744073709551615",
			ProcCPU{UTime: 1234, STime: 567}, false},
		{"command with spaces and parentheses", "7 (a b) (c)) R 1 7 7 0 -1 0 0 0 0 0 11 22 0 0 20 0 1 0 5 0 0",
			ProcCPU{UTime: 11, STime: 22}, false},
		{"truncated", "7 (x) R 1 7 7 0 -1 0 0 0 0", ProcCPU{}, true},
		{"no command", "garbage", ProcCPU{}, true},
		{"non-numeric", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 x 22 0", ProcCPU{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseProcStat([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadProcSelf(t *testing.T) {
	if _, err := ReadProcCPU(0); err != nil {
		t.Skipf("no /proc: %v", err)
	}
	kb, err := ReadStatusKB(0, "VmHWM")
	if err != nil || kb == 0 {
		t.Errorf("VmHWM = %d, %v", kb, err)
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\ttaskgate\nVmPeak:\t 1300000 kB\nVmHWM:\t   81234 kB\nVmRSS:\t   80000 kB\nThreads:\t7\n"
	for _, tc := range []struct {
		name    string
		field   string
		want    uint64
		wantErr bool
	}{
		{"peak resident", "VmHWM", 81234, false},
		{"resident", "VmRSS", 80000, false},
		{"prefix of another name is not matched", "Vm", 0, true},
		{"not a kB field", "Threads", 0, true},
		{"missing", "VmSwap", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatusKB([]byte(status), tc.field)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ParseStatusKB(%s) = %d, %v; want %d, error %v", tc.field, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseSystemStat(t *testing.T) {
	stat := "cpu  10 1 5 100 4 1 1 0 0 0\ncpu0 6 0 3 50 2 1 0 0 0 0\ncpu1 4 1 2 50 2 0 1 0 0 0\nintr 1 2\n"
	got, err := ParseSystemStat([]byte(stat), "cpu0")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(CPUTimes{Busy: 10, Total: 62}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := ParseSystemStat([]byte(stat), "cpu7"); err == nil {
		t.Error("cpu7: no error")
	}
}

func TestSchedulerCountsAndSpread(t *testing.T) {
	ws := []Weight{{"heartbeat", 5}, {"variable", 2}, {"finish", 1}}
	s, err := NewScheduler(ws)
	if err != nil {
		t.Fatal(err)
	}
	var seq []string
	for range 3 * 8 {
		seq = append(seq, ws[s.Next()].Name)
	}
	counts := map[string]int{}
	for _, name := range seq {
		counts[name]++
	}
	if diff := cmp.Diff(map[string]int{"heartbeat": 15, "variable": 6, "finish": 3}, counts); diff != "" {
		t.Errorf("counts over three rounds (-want +got):\n%s", diff)
	}
	// Smooth: the heavy call never runs more than twice in a row here, and
	// the sequence repeats every Σweights picks.
	want := []string{"heartbeat", "variable", "heartbeat", "heartbeat", "finish", "heartbeat", "variable", "heartbeat"}
	if diff := cmp.Diff(want, seq[:8]); diff != "" {
		t.Errorf("first round (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(seq[:8], seq[8:16]); diff != "" {
		t.Errorf("second round differs (-first +second):\n%s", diff)
	}
}

func TestSchedulerSkip(t *testing.T) {
	ws := []Weight{{"a", 3}, {"b", 1}}
	a, _ := NewScheduler(ws)
	b, _ := NewScheduler(ws)
	b.Skip(4 + 1) // a whole round is a no-op
	a.Next()
	for i := range 8 {
		if x, y := a.Next(), b.Next(); x != y {
			t.Fatalf("pick %d: %d after Next, %d after Skip", i, x, y)
		}
	}
}

func TestNewSchedulerRejects(t *testing.T) {
	if _, err := NewScheduler(nil); err == nil {
		t.Error("empty mix: no error")
	}
	if _, err := NewScheduler([]Weight{{"a", 0}}); err == nil {
		t.Error("zero weight: no error")
	}
}

func TestParseMix(t *testing.T) {
	known := []string{"heartbeat", "variable", "finish"}
	tests := []struct {
		name    string
		spec    string
		want    []Weight
		wantErr bool
	}{
		{"ordered as given, zeros dropped", " heartbeat:50, variable:0 ,finish:1", []Weight{{"heartbeat", 50}, {"finish", 1}}, false},
		{"unknown call", "heartbeat:1,sleep:2", nil, true},
		{"twice", "heartbeat:1,heartbeat:2", nil, true},
		{"negative", "heartbeat:-1", nil, true},
		{"no colon", "heartbeat", nil, true},
		{"all zero", "heartbeat:0", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMix(tc.spec, known)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    Response
		wantErr bool
	}{
		{"no content",
			"HTTP/1.1 204 No Content\r\nAirflow-Api-Version: 2026-06-30\r\nDate: x\r\n\r\n",
			Response{Status: 204, Body: []byte{}}, false},
		{"content length and refreshed token",
			"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nRefreshed-Api-Token: abc.def.ghi\r\nContent-Length: 13\r\n\r\n{\"key\":\"v\"}\n\n",
			Response{Status: 200, Body: []byte("{\"key\":\"v\"}\n\n"), Refreshed: "abc.def.ghi"}, false},
		{"chunked with trailer",
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n",
			Response{Status: 200, Body: []byte("Wikipedia")}, false},
		{"connection close",
			"HTTP/1.1 409 Conflict\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
			Response{Status: 409, Body: []byte("{}"), Close: true}, false},
		{"body to end of stream",
			"HTTP/1.1 200 OK\r\n\r\nall of it",
			Response{Status: 200, Body: []byte("all of it"), Close: true}, false},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Response{}, true},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", Response{}, true},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", Response{}, true},
		{"truncated headers", "HTTP/1.1 200 OK\r\nContent-Le", Response{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := ReadResponse(bufio.NewReader(strings.NewReader(tc.raw)), nil)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadResponseKeepAlive(t *testing.T) {
	raw := "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok" + "HTTP/1.1 204 No Content\r\n\r\n"
	r := bufio.NewReader(strings.NewReader(raw))
	first, buf, err := ReadResponse(r, nil)
	if err != nil || first.Status != 201 || string(first.Body) != "ok" {
		t.Fatalf("first = %+v, %v", first, err)
	}
	second, _, err := ReadResponse(r, buf)
	if err != nil || second.Status != 204 || len(second.Body) != 0 {
		t.Fatalf("second = %+v, %v", second, err)
	}
}

func TestRequestAppend(t *testing.T) {
	q := NewRequest("127.0.0.1:8080", "Airflow-API-Version: 2026-06-30")
	got := string(q.Append(nil, "PUT", "/execution/task-instances/x/heartbeat", "tok", "cid-1", []byte(`{"pid":1}`)))
	want := "PUT /execution/task-instances/x/heartbeat HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAirflow-API-Version: 2026-06-30\r\n" +
		"Authorization: Bearer tok\r\nCorrelation-Id: cid-1\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"pid\":1}"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("with body (-want +got):\n%s", diff)
	}
	got = string(q.Append(nil, "GET", "/execution/health", "", "", nil))
	want = "GET /execution/health HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAirflow-API-Version: 2026-06-30\r\n\r\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("without body (-want +got):\n%s", diff)
	}
}
