package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/config"
	"github.com/taskgate/taskgate/gateway"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/tokens"
)

// global holds the flags every command takes.
type global struct {
	configFile string
	dataDir    string
}

func (g *global) bind(fs *flag.FlagSet) {
	fs.StringVar(&g.configFile, "config", g.configFile, "configuration file (airflow.cfg format)")
	fs.StringVar(&g.dataDir, "data-dir", g.dataDir, "data directory ([taskgate] data_dir, default ./data)")
}

// parseGlobal reads the global flags in front of the command.
func parseGlobal(args []string) (*global, []string, error) {
	g := &global{}
	fs := flag.NewFlagSet("taskgate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.bind(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, usagef("%v", err)
	}
	return g, fs.Args(), nil
}

// parseInterleaved parses flags that may appear before, between or after
// positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// cliEnv is what every command runs with.
type cliEnv struct {
	global  *global
	environ []string
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	// flags are config keys set on the command line ("section.key").
	flags map[string]string
}

func (e *cliEnv) setFlag(key, value string) {
	if e.flags == nil {
		e.flags = map[string]string{}
	}
	e.flags[key] = value
}

// loadConfig merges file, environment and flags.
func (e *cliEnv) loadConfig() (*config.Config, error) {
	if e.global.dataDir != "" {
		e.setFlag("taskgate.data_dir", e.global.dataDir)
	}
	return config.Load(config.Sources{File: e.global.configFile, Env: e.environ, Flags: e.flags})
}

// openStore opens the database in the data directory. A running server holds
// it; the message says so instead of hanging.
func openStore(cfg *config.Config, now func() time.Time) (*store.DB, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "taskgate.db")
	secrets, err := connectionCipher(cfg)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(path, store.Options{BatchDelay: cfg.BatchDelay, OpenTimeout: time.Second, Now: now, Secrets: secrets})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("data directory %s is in use by a running taskgate server; stop it first", cfg.DataDir)
	}
	return db, err
}

// keyConfig builds the token configuration. Without configured key material
// the secret is created once in the data directory and reused on every start:
// a per-process random key is the most common way Airflow 3 deployments end
// up refusing their own tokens.
func keyConfig(cfg *config.Config, now func() time.Time, log *zap.Logger) (tokens.Config, error) {
	tc := tokens.Config{
		PrivateKeyPath: cfg.JWTPrivateKeyPath,
		Algorithm:      cfg.JWTAlgorithm,
		KID:            cfg.JWTKID,
		Issuers:        cfg.JWTIssuers,
		Audiences:      cfg.ExecutionAudiences,
		Leeway:         cfg.JWTLeeway,
		TrustedJWKSURL: cfg.TrustedJWKSURL,
		JWKSRefresh:    cfg.JWKSRefresh,
		Now:            now,
	}
	switch {
	case cfg.JWTSecret != "":
		tc.Secret = []byte(cfg.JWTSecret)
	case cfg.JWTPrivateKeyPath == "":
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return tc, fmt.Errorf("create data directory: %w", err)
		}
		path := filepath.Join(cfg.DataDir, "jwt_secret")
		secret, created, err := tokens.LoadOrCreateSecret(path)
		if err != nil {
			return tc, err
		}
		tc.Secret = secret
		log.Info("using the data directory's jwt secret", zap.String("path", path), zap.Bool("created", created),
			zap.String("secret_fp", tokens.Fingerprint(string(secret))))
	}
	return tc, nil
}

// newLogger builds the JSON logger at the configured level.
func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	return newLoggerTo(level, zapcore.Lock(zapcore.AddSync(w)))
}

func newLoggerTo(level string, ws zapcore.WriteSyncer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("[taskgate] log_level: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = "ts"
	enc.EncodeTime = new(millisecondTimes).encode
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), ws, lvl)), nil
}

// millisecondTimes encodes log times as zapcore.ISO8601TimeEncoder does and
// keeps the text of the last millisecond: formatting a time was half of an
// access-log line's cost, and a busy server logs many lines per millisecond.
type millisecondTimes struct{ last atomic.Pointer[stampedTime] }

type stampedTime struct {
	ms   int64
	loc  *time.Location
	text string
}

const iso8601Millis = "2006-01-02T15:04:05.000Z0700"

func (m *millisecondTimes) encode(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
	ms := t.UnixMilli()
	if p := m.last.Load(); p != nil && p.ms == ms && p.loc == t.Location() {
		enc.AppendString(p.text)
		return
	}
	text := t.Format(iso8601Millis)
	m.last.Store(&stampedTime{ms, t.Location(), text})
	enc.AppendString(text)
}

// newServerLogger is the server's logger: writes are buffered and flushed
// every 200 ms (and when 256 KiB pile up), because one write system call
// per access-log line was a tenth of a read request's cost. stop flushes.
func newServerLogger(level string, w io.Writer) (log *zap.Logger, stop func(), err error) {
	ws := &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(w), Size: 256 << 10, FlushInterval: 200 * time.Millisecond}
	log, err = newLoggerTo(level, ws)
	if err != nil {
		return nil, nil, err
	}
	return log, func() { _ = ws.Stop() }, nil
}

// maxHeaderBytes caps a request's line and headers near what Airflow's
// server takes: uvicorn with h11 refuses a request head it has buffered
// 16 KiB of without its end. net/http reads up to this plus 4 KiB of
// buffering slack, so a head of up to 16 KiB is always served and one of
// more than 20 KiB always answered 431 Request Header Fields Too Large.
const maxHeaderBytes = 16 << 10

// serve runs the gateway until ctx is cancelled (SIGINT/SIGTERM), then stops
// accepting, finishes in-flight requests and closes the store.
func (e *cliEnv) serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	e.global.bind(fs)
	listen := fs.String("listen", "", "listen address ([taskgate] listen, default 127.0.0.1:8080)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("serve: unexpected argument %q", pos[0])
	}
	if *listen != "" {
		e.setFlag("taskgate.listen", *listen)
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	log, stopLog, err := newServerLogger(cfg.LogLevel, e.stderr)
	if err != nil {
		return err
	}
	defer stopLog()
	now := time.Now

	tc, err := keyConfig(cfg, now, log)
	if err != nil {
		return err
	}
	signer, err := tokens.NewSigner(tc)
	if err != nil {
		return err
	}
	validator, err := tokens.NewValidator(tc)
	if err != nil {
		return err
	}
	// REST tokens: the same keys, their own audience.
	rc := tc
	rc.Audiences = cfg.APIAudiences
	restSigner, err := tokens.NewSigner(rc)
	if err != nil {
		return err
	}
	restValidator, err := tokens.NewValidator(rc)
	if err != nil {
		return err
	}
	db, err := openStore(cfg, now)
	if err != nil {
		return err
	}
	defer db.Close()
	authn, err := auth.NewAuthenticator(auth.AuthenticatorConfig{Store: db, Now: now, BcryptCost: cfg.BcryptCost})
	if err != nil {
		return err
	}
	// Every request is checked against the revoked jtis in memory; the
	// purger forgets expired ones there and in the database.
	revocations, err := auth.LoadRevocations(ctx, db, now)
	if err != nil {
		return err
	}
	var limiter *auth.FailureLimiter
	if cfg.AuthFailuresPerMinute > 0 {
		limiter = auth.NewFailureLimiter(cfg.AuthFailuresPerMinute, now)
	}

	srv, err := gateway.New(gateway.Config{
		Validator: validator, Signer: signer, Store: db,
		ExecutionTokenLifetime: cfg.ExecutionTokenLifetime,
		WorkloadTokenLifetime:  cfg.WorkloadTokenLifetime,
		MaxBodyBytes:           cfg.MaxBodyBytes,
		MaxMapLength:           cfg.MaxMapLength,
		TaskOvertime:           cfg.TaskSuccessOvertime,
		HealthChecks: []gateway.HealthCheck{
			{Name: "jwt_validator", Check: func(context.Context) error { return validator.Health() }},
		},
		Auth: db, Authenticator: authn, RESTSigner: restSigner, RESTValidator: restValidator,
		APITokenLifetime: cfg.APITokenLifetime, CLITokenLifetime: cfg.APICLITokenLifetime,
		Revocations: revocations,
		NewID:       newID,
		MaxInFlight: cfg.MaxInFlight,
		AuthLimiter: limiter,
		BcryptCost:  cfg.BcryptCost,
		Now:         now,
		Logger:      log,

		TaskVariableWrites: gateway.VariableWrites(cfg.TaskVariableWrites),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, v := range []*tokens.Validator{validator, restValidator} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := v.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("jwks refresher stopped", zap.Error(err))
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Revocations outlive their token's expiry by up to one interval.
		err := auth.RunPurger(runCtx, auth.PurgerConfig{
			Store: revocations, Interval: 2 * cfg.APITokenLifetime, Now: now,
			OnError: func(err error) { log.Warn("purging revocations failed", zap.Error(err)) },
		})
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("revocation purger stopped", zap.Error(err))
		}
	}()
	if cfg.PprofListen != "" {
		stopPprof, err := servePprof(cfg.PprofListen, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	log.Info("listening", zap.String("addr", ln.Addr().String()), zap.String("data_dir", cfg.DataDir),
		zap.String("algorithm", signer.Algorithm()), zap.Any("config", cfg.Redacted()))

	select {
	case err = <-serveErr:
	case <-ctx.Done():
		log.Info("shutting down")
		sctx, scancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		err = hs.Shutdown(sctx)
		scancel()
		<-serveErr
	}
	cancel()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("stopped")
	return err
}

// servePprof serves Go's runtime profiles on addr ([taskgate]
// pprof_listen, loopback only) until stop is called.
func servePprof(addr string, log *zap.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("[taskgate] pprof_listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or trace streams for its duration.
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(log.Named("pprof"))}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	log.Info("serving runtime profiles", zap.String("addr", ln.Addr().String()))
	return func() {
		_ = hs.Close()
		<-done
	}, nil
}

// offline opens what a provisioning command needs: config, signer, store.
func (e *cliEnv) offline() (*config.Config, *tokens.Signer, *store.DB, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, nil, nil, err
	}
	log, err := newLogger("warn", e.stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	tc, err := keyConfig(cfg, time.Now, log)
	if err != nil {
		return nil, nil, nil, err
	}
	signer, err := tokens.NewSigner(tc)
	if err != nil {
		return nil, nil, nil, err
	}
	db, err := openStore(cfg, time.Now)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, signer, db, nil
}

// newID returns a time-ordered UUID (v7), as Airflow 3 uses for task
// instances; it falls back to a random one if the clock read fails.
func newID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// config list prints the effective configuration, secrets redacted.
func (e *cliEnv) configCmd(args []string) error {
	if len(args) != 1 || args[0] != "list" {
		return usagef("config: expected \"list\"")
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	red := cfg.Redacted()
	keys := make([]string, 0, len(red))
	for k := range red {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(e.stdout, "%s = %s\n", k, red[k])
	}
	return nil
}
