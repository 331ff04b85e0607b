package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/gateway"
	"github.com/taskgate/taskgate/metrics"
	"github.com/taskgate/taskgate/pgstore"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/tokens"
	"github.com/taskgate/taskgate/workload"
)

// serveCommand is `taskgate serve`.
func (e *cliEnv) serveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Execution API gateway",
		Long: "Run the Execution API gateway until SIGINT or SIGTERM, then stop accepting, finish the\n" +
			"requests in flight and close the data directory.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("serve: unexpected argument %q", args[0])
			}
			return nil
		},
	}
	listen := cmd.Flags().String("listen", "", "`ADDR` to listen on ([taskgate] listen, default 127.0.0.1:8080)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *listen != "" {
			e.setFlag("taskgate.listen", *listen)
		}
		return e.serve(cmd.Context())
	}
	return cmd
}

// maxHeaderBytes caps a request's line and headers near what Airflow's
// server takes: uvicorn with h11 refuses a request head it has buffered
// 16 KiB of without its end. net/http reads up to this plus 4 KiB of
// buffering slack, so a head of up to 16 KiB is always served and one of
// more than 20 KiB always answered 431 Request Header Fields Too Large.
const maxHeaderBytes = 16 << 10

// serve runs the gateway until ctx is cancelled (SIGINT/SIGTERM), then stops
// accepting, finishes in-flight requests, stops its background work and
// closes the store (the data directory's file, or the database pool).
func (e *cliEnv) serve(ctx context.Context) error {
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	log, accessLog, stopLog, err := newServerLogger(cfg.LogLevel, e.stderr)
	if err != nil {
		return err
	}
	defer stopLog()
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	now := time.Now
	// One registry per server: metrics of tests and of several servers in
	// one process stay apart.
	met := metrics.New()

	db, err := openStorage(ctx, cfg, now)
	if err != nil {
		return err
	}
	defer db.Close()
	observeStorage(db, met)
	logStoreTo(db.storage, log)
	keys, err := openKeys(ctx, cfg, db, now, log)
	if err != nil {
		return err
	}
	tc := tokenConfig(cfg, keys.Ring(), now)
	tc.Observer = tokenObserver(met.TokenValidations("execution"))
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
	rc.Observer = tokenObserver(met.TokenValidations("rest"))
	restSigner, err := tokens.NewSigner(rc)
	if err != nil {
		return err
	}
	restValidator, err := tokens.NewValidator(rc)
	if err != nil {
		return err
	}
	authn, err := auth.NewAuthenticator(auth.AuthenticatorConfig{Store: db, Now: now, BcryptCost: cfg.BcryptCost,
		OnLockout: met.Lockout})
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
		// The store itself, not opened: the gateway asks it for what it
		// offers beyond gateway.Store (the embedded store's TryEpoch).
		Validator: validator, Signer: signer, Store: db.storage,
		ExecutionTokenLifetime: cfg.ExecutionTokenLifetime,
		WorkloadTokenLifetime:  cfg.WorkloadTokenLifetime,
		MaxBodyBytes:           cfg.MaxBodyBytes,
		MaxMapLength:           cfg.MaxMapLength,
		TaskOvertime:           cfg.TaskSuccessOvertime,
		HealthChecks:           healthChecks(validator, db, log),
		Auth:                   db, Authenticator: authn, RESTSigner: restSigner, RESTValidator: restValidator,
		APITokenLifetime: cfg.APITokenLifetime, CLITokenLifetime: cfg.APICLITokenLifetime,
		Revocations: revocations,

		// [dag_processor] health_check_threshold: when a DAG processor's Job is dead.
		DagProcessorHealthCheckThreshold: cfg.DagProcessorHealthCheckThreshold,

		Keys:        keyAdmin{keys},
		NewID:       newID,
		MaxInFlight: cfg.MaxInFlight,
		AuthLimiter: limiter,
		BcryptCost:  cfg.BcryptCost,
		Now:         now,
		Logger:      log,
		AccessLog:   accessLog,

		ReadCacheMaxAge:          readCacheMaxAge(db),
		TaskVariableWrites:       gateway.VariableWrites(cfg.TaskVariableWrites),
		EnvSecrets:               workload.NewEnvSecrets(e.environ),
		StateStoreClearOnSuccess: cfg.StateStoreClearOnSuccess,
		// [core] multi_team: config refuses it but on Airflow's database.
		MultiTeam: cfg.MultiTeam, Teams: db.teams,
		Metrics:          met,
		MetricsElsewhere: cfg.MetricsListen != "",
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
	if db.shared {
		// Other replicas and Airflow's api-servers revoke tokens in the
		// same database: a revocation anywhere is refused here within
		// replicaBound (plus one read).
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := auth.RunRefresher(runCtx, auth.RefresherConfig{
				Revocations: revocations, Interval: replicaBound,
				OnError: func(err error) { log.Warn("refreshing revocations failed", zap.Error(err)) },
			})
			if err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("revocation refresher stopped", zap.Error(err))
			}
		}()
	}
	if db.shared {
		// Another replica's rotation or retirement is signed and verified
		// here within replicaBound.
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := keys.Run(runCtx, replicaBound, func(err error) { log.Warn("refreshing the signing keys failed", zap.Error(err)) })
			if err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("signing key refresher stopped", zap.Error(err))
			}
		}()
	}
	if cfg.PprofListen != "" {
		stopPprof, err := servePprof(cfg.PprofListen, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	if cfg.MetricsListen != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsListen, met, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	log.Info("listening", zap.String("addr", ln.Addr().String()), zap.String("store", db.describe),
		zap.String("algorithm", signer.Algorithm()), zap.String("signing_kid", keys.Ring().KeySet().Active()),
		zap.Any("config", cfg.Redacted()))

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

// serveMetrics serves GET /metrics on addr ([taskgate] metrics_listen)
// until stop is called.
func serveMetrics(addr string, met *metrics.Metrics, log *zap.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("[taskgate] metrics_listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", met.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: time.Minute,
		ErrorLog: zap.NewStdLog(log.Named("metrics"))}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	log.Info("serving metrics", zap.String("addr", ln.Addr().String()))
	return func() {
		_ = hs.Close()
		<-done
	}, nil
}

// tokenObserver counts a validator's outcomes in cs, indexed as
// metrics.TokenOutcomes, which lists tokens.Outcome's values in order.
type tokenObserver metrics.Counters

func (o tokenObserver) ObserveToken(x tokens.Outcome) { metrics.Counters(o).Inc(int(x)) }

// observeStorage makes the store report its commits, checkpoints and
// heartbeat batches to met.
func observeStorage(db *opened, met *metrics.Metrics) {
	switch st := db.storage.(type) {
	case *store.DB:
		st.SetObserver(met)
	case *pgstore.DB:
		st.SetObserver(met)
	}
}

// healthChecks are the dependencies /health/ping reports: the JWT
// validator, and the database when the store has a connection to lose.
// /health/ping answers anyone, so a failed ping is reported there without
// the driver's message (it names the host, the user and the database);
// the log has it.
func healthChecks(validator *tokens.Validator, db *opened, log *zap.Logger) []gateway.HealthCheck {
	checks := []gateway.HealthCheck{
		{Name: "jwt_validator", Check: func(context.Context) error { return validator.Health() }},
	}
	if db.ping != nil {
		checks = append(checks, gateway.HealthCheck{Name: "database", Check: func(ctx context.Context) error {
			if err := db.ping(ctx); err != nil {
				log.Warn("database health check failed", zap.Error(err))
				return errors.New("the database does not answer")
			}
			return nil
		}})
	}
	return checks
}

// readCacheMaxAge bounds the age of cached variable and connection bodies:
// replicaBound on a store others write, else none (this server's own
// writes invalidate them).
func readCacheMaxAge(db *opened) time.Duration {
	if db.shared {
		return replicaBound
	}
	return 0
}
