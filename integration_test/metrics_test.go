package integration_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/taskgate/taskgate/gateway"
)

// metricFamilies are the families a server exports from its start (every
// one the dashboard and the alert rules of deploy/ may name), besides a
// sample of the Go runtime's and the process's.
var metricFamilies = []string{
	"taskgate_http_requests_total", "taskgate_http_request_duration_seconds", "taskgate_http_requests_in_flight",
	"taskgate_http_overload_refusals_total",
	"taskgate_token_validations_total", "taskgate_token_denials_total", "taskgate_token_renewals_total",
	"taskgate_run_token_swaps_total", "taskgate_heartbeats_total",
	"taskgate_store_commit_batch_size", "taskgate_store_commit_duration_seconds",
	"taskgate_store_heartbeat_checkpoints_total",
	"taskgate_pgstore_heartbeat_batch_size", "taskgate_pgstore_heartbeat_batch_duration_seconds",
	"taskgate_read_cache_requests_total",
	"taskgate_login_failures_total", "taskgate_login_throttled_total", "taskgate_login_lockouts_total",
	"go_goroutines", "go_memstats_heap_inuse_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes",
}

// scrape is one GET /metrics in Prometheus's text format: the families by
// their TYPE lines, and each series' value by its name and labels.
type scrape struct {
	families map[string]string // name → type
	series   map[string]float64
}

func getMetrics(t *testing.T, url string) (*scrape, int) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, resp.StatusCode
	}
	s := &scrape{families: map[string]string{}, series: map[string]float64{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			s.families[name] = typ
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		s.series[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return s, http.StatusOK
}

// value is the series name{labels} (labels as exposed, in order).
func (s *scrape) value(series string) float64 { return s.series[series] }

// of returns the series of family name (for a histogram, its _count).
func (s *scrape) of(name string) []string {
	var out []string
	for k := range s.series {
		if strings.HasPrefix(k, name+"{") {
			out = append(out, k)
		}
	}
	return out
}

// labelValue returns label's value in a series key.
func labelValue(series, label string) string {
	_, rest, ok := strings.Cut(series, label+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// TestMetricsTaskFlow runs the demo's task flow against the real binary,
// scrapes GET /metrics, finds every family and the flow's events counted,
// then sends 10 000 requests naming distinct task instances (and unknown
// paths) and finds the request series bounded by routes × methods × status
// classes, no id among their labels.
func TestMetricsTaskFlow(t *testing.T) {
	dataDir := newDataDir(t)
	wl := queueTask(t, dataDir, "etl_daily", "manual__2026-11-27T10:00:00+00:00", "extract")
	mustCLI(t, dataDir, "variables", "set", "source_bucket", "s3://raw-data/daily")
	srv := startServer(t, dataDir)
	m := newMinter(t, dataDir)
	me := host{"worker-1.example.internal", "airflow", 4242}
	w := newWorker(t, srv.URL, wl.Token)

	mustStatus(t, w.do("PATCH", tiPath(wl.TIID, "run"), me.runPayload(t)), 200)
	for range 2 {
		wantNoContent(t, w.do("PUT", tiPath(wl.TIID, "heartbeat"), me.heartbeat(t)), 204)
	}
	for range 3 {
		mustStatus(t, w.do("GET", variablePath("source_bucket"), ""), 200)
	}
	wantNoContent(t, w.do("PATCH", tiPath(wl.TIID, "state"), successPayload(t)), 204)
	mustStatus(t, w.do("PUT", tiPath(wl.TIID, "heartbeat"), me.heartbeat(t)), 409)
	// A token signed with another key, and none at all.
	forged := m.sign(jwt.SigningMethodHS512, []byte("an-entirely-different-secret-of-sufficient-length"),
		m.claims(wl.TIID, "execution", 600e9))
	mustStatus(t, send(t, srv.URL, "GET", variablePath("source_bucket"), "Bearer "+forged, ""), 403)
	mustStatus(t, send(t, srv.URL, "GET", variablePath("source_bucket"), "", ""), 401)
	mustStatus(t, send(t, srv.URL, "POST", "/auth/token", "",
		mustJSON(t, map[string]string{"username": "nobody", "password": "wrong-password"})), 401)

	s, status := getMetrics(t, srv.URL+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics = %d", status)
	}
	for _, f := range metricFamilies {
		if _, ok := s.families[f]; !ok {
			t.Errorf("family %s missing from /metrics", f)
		}
	}
	varRoute := `route="/execution/variables/*"`
	for series, want := range map[string]float64{
		`taskgate_run_token_swaps_total`:                                              1,
		`taskgate_heartbeats_total{result="accepted"}`:                                2,
		`taskgate_heartbeats_total{result="not_running"}`:                             1,
		`taskgate_read_cache_requests_total{kind="variable",result="hit"}`:            2,
		`taskgate_read_cache_requests_total{kind="variable",result="miss"}`:           1,
		`taskgate_token_validations_total{api="execution",outcome="bad_signature"}`:   1,
		`taskgate_token_validations_total{api="execution",outcome="valid"}`:           2, // the workload token, then the execution token
		`taskgate_token_denials_total{api="execution",reason="missing"}`:              1,
		`taskgate_token_denials_total{api="execution",reason="invalid"}`:              1,
		`taskgate_login_failures_total`:                                               1,
		`taskgate_http_requests_total{code="2xx",method="GET",` + varRoute + `}`:      3,
		`taskgate_http_requests_total{code="4xx",method="GET",` + varRoute + `}`:      2,
		`taskgate_http_request_duration_seconds_count{method="GET",` + varRoute + `}`: 5,
	} {
		if got := s.value(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if got := s.value(`taskgate_token_validations_total{api="execution",outcome="cache_hit"}`); got < 5 {
		t.Errorf("execution token cache hits = %v, want ≥ 5 (two heartbeats, three reads, the state)", got)
	}
	if got := s.value(`taskgate_store_commit_batch_size_count`); got < 2 {
		t.Errorf("group commits = %v, want ≥ 2 (/run, state; heartbeats)", got)
	}

	// 10 000 distinct task instances in request paths, over several routes,
	// unknown paths and a made-up method.
	before := len(s.of("taskgate_http_requests_total"))
	const n = 10000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	flood(t, srv.URL, ids)

	s, _ = getMetrics(t, srv.URL+"/metrics")
	series := s.of("taskgate_http_requests_total")
	routes := gateway.RouteTable()
	known := map[string]bool{"unmatched": true}
	for _, r := range routes {
		known[r.Path] = true
	}
	const unmatchedMethods, classes = 8, 5
	if bound := (len(routes) + unmatchedMethods) * classes; len(series) > bound {
		t.Errorf("%d request series after %d distinct ids, more than (routes + unmatched methods) × classes = %d",
			len(series), n, bound)
	}
	if added := len(series) - before; added > 6*classes {
		t.Errorf("%d distinct ids over 6 route shapes added %d series", n, added)
	}
	t.Logf("request series: %d before, %d after %d distinct ids (%d routes)", before, len(series), n, len(routes))
	for _, k := range series {
		if r := labelValue(k, "route"); !known[r] {
			t.Errorf("series %s: route %q is no template", k, r)
		}
		for _, id := range ids[:100] {
			if strings.Contains(k, id) {
				t.Fatalf("series %s carries the id %s", k, id)
			}
		}
	}
	if got := s.value(`taskgate_http_requests_total{code="4xx",method="other",route="unmatched"}`); got < n/6 {
		t.Errorf("made-up method on unknown paths counted %v times, want ≥ %d", got, n/6)
	}
	srv.stop()
}

// flood sends one request per id, cycling through route shapes, over a few
// kept-alive connections; none carries a token.
func flood(t *testing.T, base string, ids []string) {
	t.Helper()
	shapes := []struct{ method, path string }{
		{"PUT", "/execution/task-instances/%s/heartbeat"},
		{"GET", "/execution/task-instances/%s/previous-successful-dagrun"},
		{"GET", "/execution/task-instances/%s/no-such-action"},
		{"GET", "/api/v2/dags/d/dagRuns/r/taskInstances/%s"},
		{"GET", "/execution/variables/%s"},
		{"BREW", "/coffee/%s"},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: httpClient.Timeout}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(ids); i += 8 {
				sh := shapes[i%len(shapes)]
				req, err := http.NewRequest(sh.method, base+fmt.Sprintf(sh.path, ids[i]), nil)
				if err != nil {
					errs <- err
					return
				}
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode < 400 || resp.StatusCode >= 500 {
					errs <- fmt.Errorf("%s %s = %d, want a 4xx", sh.method, req.URL.Path, resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestMetricsListen serves /metrics on [taskgate] metrics_listen: there,
// and no longer on the API listener.
func TestMetricsListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := startServer(t, newDataDir(t), "AIRFLOW__TASKGATE__METRICS_LISTEN="+addr)
	if _, status := getMetrics(t, srv.URL+"/metrics"); status != http.StatusNotFound {
		t.Errorf("GET /metrics on the API listener = %d, want 404 with metrics_listen set", status)
	}
	s, status := getMetrics(t, "http://"+addr+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics on metrics_listen = %d", status)
	}
	if _, ok := s.families["taskgate_http_requests_total"]; !ok {
		t.Error("metrics_listen serves no taskgate_http_requests_total")
	}
	srv.stop()
}
