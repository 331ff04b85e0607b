package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Main runs one command line and returns the process's exit code: 0, 2 for a
// command line that cannot be run as written, the task's own code for
// `worker run`, else 1.
func Main(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := run(ctx, args, environ, stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "taskgate:", err)
	var uerr *usageError
	var coded interface{ ExitCode() int }
	switch {
	case errors.As(err, &uerr):
		return 2
	case errors.As(err, &coded):
		// `worker run` exits with its task command's own code.
		return coded.ExitCode()
	}
	return 1
}

// usageError is a command line that cannot be run as written (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

const usage = `usage: taskgate [--config FILE] [--data-dir DIR] COMMAND [ARGS]

commands:
  serve [--listen ADDR]                 run the Execution API gateway
  workloads queue --dag-id D --run-id R --task-id T [--map-index N]
                  [--try-number N] [--max-tries N] [--output FILE]
                                        queue a task instance; print its ExecuteTask workload
                                        (--output: write it to FILE, mode 0600)
  variables set KEY VALUE [--description TEXT]
  variables get KEY | list | delete KEY
  connections add ID --conn-type T [--host H] [--port N] [--login L]
                  [--password P] [--schema S] [--extra JSON]
  connections get ID | list | delete ID | rotate-key  (rotate-key: offline, re-encrypts with the first [core] fernet_key)
  tasks list [--dag-id D] [--run-id R] [--state S]
  tasks mark DAG_ID RUN_ID TASK_ID [--map-index N] --state failed|success|skipped
  users add NAME --role admin|op|viewer [--password-stdin]
  users list | remove NAME              (remove also ends what NAME queued or registered
                                        that no worker started)
  tokens revoke JTI [--exp RFC3339]     revoke a token: REST, execution, workload or component
  components register triggerer|dag-processor NAME --token-file PATH
  components list | remove ID
  login --server URL [--username NAME] [--password-stdin]
                                        store a REST token for the commands above
  logout                                revoke it and delete it
  config list                           print the effective configuration
  worker run --workload FILE|- --server URL [--heartbeat-interval D] [--kill-grace D]
             [--max-failed-heartbeats N] [--retries N] [--retry-wait-min D]
             [--retry-wait-max D] [--timeout D] -- CMD [ARGS...]
                                        run one queued task: /run, CMD, heartbeats, state
                                        (FILE must be mode 0600; it is removed once read)

The provisioning commands (workloads … components) go through the server
logged in to (or --server URL with $TASKGATE_TOKEN), else they work on the
data directory, which a running server locks. Roles: viewer reads; op also
writes variables and connections and marks task instances; admin also queues
workloads, manages users and components, and revokes tokens. Credentials are stored in
$TASKGATE_CREDENTIALS, default <user config dir>/taskgate/credentials.json.

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
	case "tasks":
		return env.tasks(ctx, rest)
	case "users":
		return env.users(ctx, rest)
	case "tokens":
		return env.tokensCmd(ctx, rest)
	case "components":
		return env.componentsCmd(ctx, rest)
	case "login":
		return env.login(ctx, rest)
	case "logout":
		return env.logout(ctx, rest)
	case "config":
		return env.configCmd(rest)
	case "worker":
		return env.worker(ctx, rest)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usagef("unknown command %q", cmd)
}
