package gateway

import (
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"
)

// BenchmarkAPIVersion is GET /variables/{key} at each way of naming a
// version: the newest, none (Cadwyn's default, the newest), and older ones
// (routed among that version's routes). Naming the newest version must cost
// what naming none does: versions.go's work is for older versions only.
func BenchmarkAPIVersion(b *testing.B) {
	srv, _, tok := benchServer(b)
	for _, c := range []struct {
		name, version string
		absent        bool
	}{
		{name: "newest", version: APIVersion},
		{name: "absent", absent: true},
		{name: "2026-06-30", version: "2026-06-30"},
		{name: "2025-04-11", version: "2025-04-11"},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := benchRequest(http.MethodGet, "/execution/variables/bench_var", tok, "")
			if c.absent {
				req.Header.Del(versionHeader)
			} else {
				req.Header.Set(versionHeader, c.version)
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				clear(w.h)
				w.status = 0
				srv.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}

// BenchmarkConvertRunContext is the conversion of a /run body down to the
// oldest version, the most any response is converted.
func BenchmarkConvertRunContext(b *testing.B) {
	_, rules := rulesFor(apiVersions[0])
	var run *responseRule
	for _, r := range rules {
		if r.method == http.MethodPatch && r.pattern.MatchString("/execution/task-instances/x/run") {
			run = r
		}
	}
	body := []byte(`{"dag_run":{"dag_id":"etl","run_id":"manual__1","logical_date":"2026-11-27T10:00:00Z",` +
		`"data_interval_start":"2026-11-27T10:00:00Z","data_interval_end":"2026-11-27T10:00:00Z",` +
		`"run_after":"2026-11-27T10:00:00Z","start_date":"2026-11-27T10:00:00Z","end_date":null,"clear_number":0,` +
		`"run_type":"manual","state":"running","conf":{},"triggering_user_name":null,"consumed_asset_events":[],` +
		`"partition_key":null,"note":null},"task_reschedule_count":0,"max_tries":2,"variables":[],"connections":[],` +
		`"xcom_keys_to_clear":[],"should_retry":true}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := convertBody(body, run); !ok {
			b.Fatal("not converted")
		}
	}
}

// BenchmarkPickVersion is the version middleware alone, its next handler
// doing nothing: what naming the newest version costs over naming none.
func BenchmarkPickVersion(b *testing.B) {
	srv, _, tok := benchServer(b)
	next := func(echo.Context) error { return nil }
	mw := srv.pickVersion(next)
	for _, c := range []struct {
		name   string
		header []string
	}{
		{"absent", nil},
		{"newest", []string{APIVersion}},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := benchRequest(http.MethodGet, "/execution/variables/bench_var", tok, "")
			if c.header == nil {
				req.Header.Del(versionHeader)
			}
			ctx := srv.echo.NewContext(req, &discardWriter{h: http.Header{}})
			ctx.SetPath("/execution/variables/*")
			st := &requestState{Context: ctx}
			b.ReportAllocs()
			for b.Loop() {
				if err := mw(st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
