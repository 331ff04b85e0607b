// Command baseline is the bare Echo v4 server `make bench` compares taskgate
// with: the same http.Server settings as the gateway (taken from taskgate's
// configuration defaults), no middleware, and two handlers — a 204 for PUT
// (what a heartbeat answers) and the JSON body of a variable read for GET.
// Whatever the gateway costs beyond it is authentication, storage, logging
// and validation.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/bench"
	"github.com/taskgate/taskgate/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8090", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The gateway's defaults, with no file or environment: the same
	// timeouts the gateway runs with in the benchmark.
	cfg, err := config.Load(config.Sources{})
	if err != nil {
		return err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	variable := struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	}{bench.VariableKey, new(bench.VariableValue)}
	e.GET("/execution/health", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "healthy"})
	})
	e.PUT("/baseline/*", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	e.GET("/baseline/*", func(c echo.Context) error { return c.JSON(http.StatusOK, variable) })

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10, // the gateway's maxHeaderBytes (cli/cli.go)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	select {
	case err = <-serveErr:
	case <-ctx.Done():
		err = hs.Shutdown(context.Background())
		<-serveErr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
