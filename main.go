// Command taskgate is the Airflow Execution API gateway: `taskgate serve`
// runs it, and the other subcommands provision the data directory it serves
// (task instances to run, variables, connections) while no server holds it.
// The commands live in package cli; this file only wires the process to them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/taskgate/taskgate/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
