package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/taskgate/taskgate/reissue"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// The benchmarks below are the end-to-end measure of the token path: every
// request carries a token the gateway has not verified before (a missed
// verified-token cache), and /run signs the execution token it hands out.

// BenchmarkReadFreshToken is a variable GET whose token is new to the
// gateway each time: the read route's cost with a full verification.
func BenchmarkReadFreshToken(b *testing.B) {
	srv, _, _ := benchServer(b)
	signer := srv.cfg.Signer
	toks := make([]string, b.N)
	for i := range toks {
		tok, _, err := signer.Sign(&scopes.Claims{Subject: benchTI, Scope: string(scopes.Execution)}, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		toks[i] = tok
	}
	req := benchRequest(http.MethodGet, "/execution/variables/bench_var", "", "")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	defer reportCPU(b)()
	for i := 0; i < b.N; i++ {
		req.Header.Set("Authorization", "Bearer "+toks[i])
		clear(w.h)
		w.status = 0
		srv.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("GET = %d", w.status)
		}
	}
}

// BenchmarkRunHeartbeat is the start of a task: PATCH /run with its
// workload token, which signs the execution token, then the first
// heartbeat with that token. Both tokens are verified in full.
func BenchmarkRunHeartbeat(b *testing.B) {
	srv, db, _ := benchServer(b)
	ctx := context.Background()
	ids := make([]string, b.N)
	wls := make([]string, b.N)
	for i := range ids {
		ti, err := workload.Queue(ctx, db, fmt.Sprintf("0190e3e4-3c2b-7a8e-9d0e-%012x", i), workload.QueueRequest{
			DagID: "bench", RunID: "r", TaskID: "t", MapIndex: i, MaxTries: 1,
		}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = ti.ID
		if wls[i], _, err = srv.cfg.Signer.Sign(&scopes.Claims{Subject: ti.ID, Scope: string(scopes.Workload)}, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	do := func(method, path, tok, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, benchRequest(method, path, tok, body))
		return rec
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32) // 64 workers on two cores, as `make bench` has 64 connections
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			base := "/execution/task-instances/" + ids[i]
			r := do(http.MethodPatch, base+"/run", wls[i], benchRunBody)
			exec := r.Header().Get(reissue.Header)
			if r.Code != http.StatusOK || exec == "" {
				b.Errorf("/run = %d %s", r.Code, r.Body)
				return
			}
			if r := do(http.MethodPut, base+"/heartbeat", exec, `{"hostname":"worker-a","pid":4242}`); r.Code != http.StatusNoContent {
				b.Errorf("heartbeat = %d %s", r.Code, r.Body)
				return
			}
		}
	})
}

// reportCPU starts counting the process's CPU time (user and system, every
// thread) and returns the function that reports it per operation as
// cpu-ns/op: on a shared machine the steadier figure than wall time.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	start := cpu()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
	}
}
