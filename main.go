// Command taskgate is the Airflow Execution API gateway: `taskgate serve`
// runs it, and the other subcommands provision the data directory it serves
// (task instances to run, variables, connections) while no server holds it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var uerr *usageError
		if errors.As(err, &uerr) {
			fmt.Fprintln(os.Stderr, "taskgate:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "taskgate:", err)
		os.Exit(1)
	}
}

// usageError is a command line that cannot be run as written (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

const usage = `usage: taskgate [--config FILE] [--data-dir DIR] COMMAND [ARGS]

commands:
  serve [--listen ADDR]                 run the Execution API gateway
  workloads queue --dag-id D --run-id R --task-id T [--map-index N]
                  [--try-number N] [--max-tries N]
                                        queue a task instance; print its ExecuteTask workload
  variables set KEY VALUE [--description TEXT]
  variables get KEY
  connections add ID --conn-type T [--host H] [--port N] [--login L]
                  [--password P] [--schema S] [--extra JSON]
  config list                           print the effective configuration

Configuration: airflow.cfg (--config FILE, else $AIRFLOW_HOME/airflow.cfg),
overridden by AIRFLOW__SECTION__KEY environment variables, overridden by flags.
`

// run is the whole program: it reads everything from its arguments so that
// tests can drive it in-process.
func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	g, rest, err := parseGlobal(args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("no command given")
	}
	env := &cliEnv{global: g, environ: environ, stdin: stdin, stdout: stdout, stderr: stderr}
	cmd, rest := rest[0], rest[1:]
	switch cmd {
	case "serve":
		return env.serve(ctx, rest)
	case "workloads":
		return env.workloads(ctx, rest)
	case "variables":
		return env.variables(ctx, rest)
	case "connections":
		return env.connections(ctx, rest)
	case "config":
		return env.configCmd(rest)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usagef("unknown command %q", cmd)
}
