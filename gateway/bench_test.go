package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/crypto/bcrypt"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/fernet"
	"github.com/taskgate/taskgate/metrics"
	"github.com/taskgate/taskgate/reissue"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/tokens"
	"github.com/taskgate/taskgate/workload"
)

// benchServer is a gateway as `taskgate serve` builds it by default: HS512
// tokens with the verified-token cache, a store on disk with encrypted
// connections, the in-flight and auth-failure limits, and the JSON access
// log (written to nowhere).
func benchServer(b *testing.B, opts ...func(*Config)) (*Server, *store.DB, string) {
	b.Helper()
	key, err := fernet.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	cipher, err := fernet.NewMulti(key)
	if err != nil {
		b.Fatal(err)
	}
	db, err := store.Open(filepath.Join(b.TempDir(), "taskgate.db"), store.Options{Secrets: cipher})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	tc := tokens.Config{Secret: []byte("bench-secret-0123456789abcdef"), Audiences: []string{"urn:airflow.apache.org:task"}}
	signer, err := tokens.NewSigner(tc)
	if err != nil {
		b.Fatal(err)
	}
	validator, err := tokens.NewValidator(tc)
	if err != nil {
		b.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(auth.AuthenticatorConfig{Store: db, BcryptCost: bcrypt.MinCost})
	if err != nil {
		b.Fatal(err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	cfg := Config{
		Validator: validator, Signer: signer, Store: db, ExecutionTokenLifetime: 10 * time.Minute,
		WorkloadTokenLifetime: time.Hour, APITokenLifetime: time.Hour, CLITokenLifetime: time.Hour,
		Auth: db, Authenticator: authn, RESTSigner: signer, RESTValidator: validator,
		NewID:       func() string { return "0190e3e4-0000-7000-8000-000000000001" },
		MaxInFlight: 4096, AuthLimiter: auth.NewFailureLimiter(60, nil), Logger: log, Keys: newFakeKeys(time.Now),
		Metrics: metrics.New(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	tok := benchRunning(b, srv, db, benchTI)
	value := "s3://bench-bucket/warehouse/daily/partition=2026-06-30"
	if err := db.PutVariable(ctx, workload.Variable{Key: "bench_var", Value: &value}); err != nil {
		b.Fatal(err)
	}
	str := func(s string) *string { return &s }
	port := 5432
	if err := db.PutConnection(ctx, workload.Connection{
		ConnID: "bench_pg", ConnType: "postgres", Host: str("warehouse.db.internal"), Schema: str("analytics"),
		Login: str("etl"), Password: str("not-a-real-password"), Port: &port,
		Extra: str(`{"sslmode": "require", "connect_timeout": 10}`),
	}); err != nil {
		b.Fatal(err)
	}
	return srv, db, tok
}

// benchTI is the task instance whose execution token the read benchmarks
// carry.
const benchTI = "0190e3e4-3c2b-7a8e-9d0e-6f1a2b3c4d5e"

// benchRunning queues task instance id and runs it through PATCH /run, as
// a worker does, and returns the execution token /run handed out: a task
// token is only let through while its try runs.
func benchRunning(b *testing.B, srv *Server, db *store.DB, id string) string {
	b.Helper()
	if _, err := workload.Queue(context.Background(), db, id, workload.QueueRequest{
		DagID: "bench", RunID: "r", TaskID: id, MapIndex: -1, MaxTries: 1,
	}, time.Now()); err != nil {
		b.Fatal(err)
	}
	wl, _, err := srv.cfg.Signer.Sign(&scopes.Claims{Subject: id, Scope: string(scopes.Workload)}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, benchRequest(http.MethodPatch, "/execution/task-instances/"+id+"/run", wl, benchRunBody))
	tok := rec.Header().Get(reissue.Header)
	if rec.Code != http.StatusOK || tok == "" {
		b.Fatalf("/run = %d %s", rec.Code, rec.Body)
	}
	return tok
}

// benchRunBody is the body of a worker's PATCH /run.
const benchRunBody = `{"state":"running","hostname":"worker-a","unixname":"airflow","pid":4242,"start_date":"2026-11-27T10:00:00Z"}`

// benchRequest is a request with the headers the Task SDK sends; an empty
// body sends none.
func benchRequest(method, path, tok, body string) *http.Request {
	var req *http.Request
	if body == "" {
		req = httptest.NewRequest(method, path, nil)
	} else {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Correlation-Id", "0190e3e4-aaaa-7000-8000-000000000001")
	req.Header.Set(versionHeader, APIVersion)
	req.Header.Set("Accept", "application/json")
	return req
}

// discardWriter is a ResponseWriter that keeps only the status, so that a
// benchmark measures the gateway rather than a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// benchGet serves GET path through the whole gateway, with the headers the
// Task SDK sends.
func benchGet(b *testing.B, srv *Server, tok, path string) {
	req := benchRequest(http.MethodGet, path, tok, "")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		clear(w.h)
		w.status = 0
		srv.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("GET %s = %d", path, w.status)
		}
	}
}

func BenchmarkGetVariable(b *testing.B) {
	srv, _, tok := benchServer(b)
	benchGet(b, srv, tok, "/execution/variables/bench_var")
}

func BenchmarkGetConnection(b *testing.B) {
	srv, _, tok := benchServer(b)
	benchGet(b, srv, tok, "/execution/connections/bench_pg")
}

// BenchmarkGetVariableNoMetrics is BenchmarkGetVariable without metrics:
// the difference is what the metrics middleware costs.
func BenchmarkGetVariableNoMetrics(b *testing.B) {
	srv, _, tok := benchServer(b, func(cfg *Config) { cfg.Metrics = nil })
	benchGet(b, srv, tok, "/execution/variables/bench_var")
}

// BenchmarkGetUncached is a GET that misses the read cache (the first read,
// or the first after a write): the store's read and the JSON encoding.
func BenchmarkGetUncached(b *testing.B) {
	for _, path := range []string{"/execution/variables/bench_var", "/execution/connections/bench_pg"} {
		b.Run(strings.Split(path, "/")[2], func(b *testing.B) {
			srv, _, tok := benchServer(b, func(cfg *Config) { cfg.ReadCacheSize = -1 })
			benchGet(b, srv, tok, path)
		})
	}
}

// benchEcho is the bare Echo server `make bench` compares the gateway
// with: the variable GET's body from c.JSON, no middleware.
func benchEcho() *Server {
	e := echo.New()
	value := "s3://bench-bucket/warehouse/daily/partition=2026-06-30"
	variable := struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	}{"bench_var", &value}
	e.GET("/execution/variables/*", func(c echo.Context) error { return c.JSON(http.StatusOK, variable) })
	return &Server{echo: e}
}

// BenchmarkEchoBaseline is the bare Echo server `make bench` compares the
// gateway with: the variable GET's body from c.JSON, no middleware.
func BenchmarkEchoBaseline(b *testing.B) {
	benchGet(b, benchEcho(), "", "/execution/variables/bench_var")
}

// BenchmarkReadPath compares, in one run, the authenticated variable GET
// (cached token, access log on) with metrics and without, and the bare Echo
// handler `make bench` takes as its baseline: 64 concurrent requesters on
// the machine's cores, as `make bench` has 64 connections. The ratio of
// their cpu-ns/op is the gateway's cost relative to Echo's alone.
func BenchmarkReadPath(b *testing.B) {
	path := "/execution/variables/bench_var"
	run := func(b *testing.B, srv *Server, tok string) {
		req := benchRequest(http.MethodGet, path, tok, "")
		b.ReportAllocs()
		b.SetParallelism(32)
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			w := &discardWriter{h: http.Header{}}
			for pb.Next() {
				clear(w.h)
				w.status = 0
				srv.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Errorf("GET %s = %d", path, w.status)
					return
				}
			}
		})
	}
	b.Run("echo", func(b *testing.B) {
		run(b, benchEcho(), "")
	})
	b.Run("gateway-without-metrics", func(b *testing.B) {
		srv, _, tok := benchServer(b, func(cfg *Config) { cfg.Metrics = nil })
		run(b, srv, tok)
	})
	b.Run("gateway", func(b *testing.B) {
		srv, _, tok := benchServer(b)
		run(b, srv, tok)
	})
}

// BenchmarkReadPathManyTries is BenchmarkReadPath's gateway as `make bench`
// drives it: 10 000 running tries, each reading with its own execution
// token in turn, so that the verified tokens and the tries' states no
// longer sit in the processor's caches, and the client of the field's API
// version (older than the newest). "newest" is the same at the newest
// version.
func BenchmarkReadPathManyTries(b *testing.B) {
	const tries = 10000
	srv, db, _ := benchServer(b)
	toks := benchManyRunning(b, srv, db, tries)
	for _, version := range []string{"2026-06-30", APIVersion} {
		name := "newest"
		if version != APIVersion {
			name = version
		}
		b.Run(name, func(b *testing.B) {
			reqs := make([]*http.Request, tries)
			for i, tok := range toks {
				reqs[i] = benchRequest(http.MethodGet, "/execution/variables/bench_var", tok, "")
				reqs[i].Header.Set(versionHeader, version)
			}
			var start atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(32)
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				w := &discardWriter{h: http.Header{}}
				i := int(start.Add(7919))
				for pb.Next() {
					i = (i + 4099) % tries
					clear(w.h)
					w.status = 0
					srv.ServeHTTP(w, reqs[i])
					if w.status != http.StatusOK {
						b.Errorf("GET = %d", w.status)
						return
					}
				}
			})
		})
	}
}

// benchManyRunning starts n tries (64 at a time) and returns their
// execution tokens, each verified once, as a worker's first read does.
func benchManyRunning(b *testing.B, srv *Server, db *store.DB, n int) []string {
	toks := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				toks[i] = benchRunningAt(b, srv, db, fmt.Sprintf("0190e3e4-3c2b-7a8e-9d0f-%012x", i), i)
			}
		})
	}
	wg.Wait()
	for _, tok := range toks {
		w := &discardWriter{h: http.Header{}}
		srv.ServeHTTP(w, benchRequest(http.MethodGet, "/execution/variables/bench_var", tok, ""))
	}
	return toks
}

// benchRunningAt is benchRunning for the task instance id at map index i.
func benchRunningAt(b *testing.B, srv *Server, db *store.DB, id string, i int) string {
	if _, err := workload.Queue(context.Background(), db, id, workload.QueueRequest{
		DagID: "bench", RunID: "many", TaskID: "t", MapIndex: i, MaxTries: 1,
	}, time.Now()); err != nil {
		b.Error(err)
		return ""
	}
	wl, _, err := srv.cfg.Signer.Sign(&scopes.Claims{Subject: id, Scope: string(scopes.Workload)}, time.Hour)
	if err != nil {
		b.Error(err)
		return ""
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, benchRequest(http.MethodPatch, "/execution/task-instances/"+id+"/run", wl, benchRunBody))
	tok := rec.Header().Get(reissue.Header)
	if rec.Code != http.StatusOK || tok == "" {
		b.Errorf("/run = %d %s", rec.Code, rec.Body)
	}
	return tok
}

// discardAccessLog is an AccessLog that writes nothing: the binary's line
// (cli's accessLog) has its own benchmark, BenchmarkAccessLine.
type discardAccessLog struct{}

func (discardAccessLog) LogRequest(*AccessEntry) {}

// BenchmarkReadPathAsServed measures what `make bench`'s read ratio
// depends on, without the sockets: the variable GET of 10 000 running
// tries, each with its own execution token, at the field's API version,
// against the bare Echo handler in the same run. Unlike
// BenchmarkReadPathManyTries, each requester reuses one request whose
// headers stay in the processor's cache, as a request the server has just
// parsed does, and only the token changes (a fresh copy of it, as net/http
// allocates one per request); and the access log is the
// binary's kind (a hand-written line, here discarded) rather than zap's.
// The cpu-ns/op difference between "gateway" and "echo" is the gateway's
// own work per read; `make bench` adds the same socket costs (about 20 µs
// on this machine) to both.
func BenchmarkReadPathAsServed(b *testing.B) {
	const tries = 10000
	const path = "/execution/variables/bench_var"
	run := func(b *testing.B, srv *Server, bearers []string) {
		var start atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(32)
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			req := benchRequest(http.MethodGet, path, "", "")
			req.Header.Set(versionHeader, "2026-06-30")
			auth := req.Header["Authorization"]
			w := &discardWriter{h: http.Header{}}
			i := int(start.Add(7919))
			for pb.Next() {
				i = (i + 4099) % len(bearers)
				// A fresh copy, as net/http allocates each request's header
				// values: the token arrives in the processor's cache.
				auth[0] = strings.Clone(bearers[i])
				clear(w.h)
				w.status = 0
				srv.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Errorf("GET = %d", w.status)
					return
				}
			}
		})
	}
	b.Run("echo", func(b *testing.B) {
		bearers := make([]string, tries)
		for i := range bearers {
			bearers[i] = fmt.Sprintf("Bearer token-%d", i)
		}
		run(b, benchEcho(), bearers)
	})
	b.Run("gateway", func(b *testing.B) {
		srv, db, _ := benchServer(b, func(cfg *Config) { cfg.AccessLog = discardAccessLog{} })
		bearers := benchManyRunning(b, srv, db, tries)
		for i, tok := range bearers {
			bearers[i] = "Bearer " + tok
		}
		run(b, srv, bearers)
	})
}
