package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/worker"
)

// envServerURL is Airflow's [core] execution_api_server_url, the default of
// --server: a worker host configured for Airflow needs no flag.
const envServerURL = "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"

const workerUsage = `usage: taskgate worker run --workload FILE|- --server URL [--heartbeat-interval D]
         [--max-failed-heartbeats N] [--retries N] [--retry-wait-min D] [--retry-wait-max D]
         [--timeout D] [--kill-grace D] -- CMD [ARGS...]`

// exitCodeError is a worker run whose task did not succeed: the process
// should exit with code (the command's own exit code where there is one).
type exitCodeError struct {
	code int
	msg  string
}

func (e *exitCodeError) Error() string { return e.msg }

// ExitCode is the code the worker process should exit with.
func (e *exitCodeError) ExitCode() int { return e.code }

// workerCommand is `taskgate worker run`: supervise one queued task
// instance. The [workers] settings come from AIRFLOW__WORKERS__… in the
// environment, overridden by flags; the worker needs no data directory.
func (e *cliEnv) workerCommand() *cobra.Command {
	cmd := groupCommand("worker", "Run queued tasks", func() error { return usagef("worker: expected \"run\"\n%s", workerUsage) })
	runCmd := &cobra.Command{
		Use:   "run --workload FILE|- --server URL -- CMD [ARGS...]",
		Short: "Run one queued task: /run, CMD, heartbeats, state",
		Long: "Run one queued task: call /run with the workload's token, start CMD with the task's identity\n" +
			"in its environment, heartbeat while it runs, and report its state. The workload FILE must be\n" +
			"mode 0600; it is removed once read. A task that did not succeed makes the worker exit non-zero,\n" +
			"with CMD's own code where there is one.",
		// The task's command is everything after "--", its flags included.
		// The worker's flags end at the first argument that is no flag
		// (SetInterspersed below), so args is the command when nothing but
		// flags came before "--".
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case cmd.ArgsLenAtDash() < 0 && slices.Contains(args, "--"):
				return usagef("worker run: unexpected argument %q before --\n%s", args[0], workerUsage)
			case cmd.ArgsLenAtDash() < 0 || len(args) == 0:
				return usagef("worker run: give the task's command after --\n%s", workerUsage)
			}
			return nil
		},
	}
	// A command given without "--" is not read as flags of the worker
	// (`worker run … sh -c x` is told to put it after "--").
	runCmd.Flags().SetInterspersed(false)
	settings := worker.DefaultSettings()
	envErr := settings.ApplyEnv(e.environ)
	workloadPath := runCmd.Flags().String("workload", "", "ExecuteTask JSON `FILE`, mode 0600, removed once read; - for standard input (required)")
	server := runCmd.Flags().String("server", lookupEnv(e.environ, envServerURL),
		"Execution API `URL`, e.g. http://127.0.0.1:8080/execution (default $"+envServerURL+")")
	goFlags := flag.NewFlagSet("worker run", flag.ContinueOnError)
	settings.RegisterFlags(goFlags)
	runCmd.Flags().AddGoFlagSet(goFlags)
	runCmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case envErr != nil:
			return envErr
		case *workloadPath == "":
			return usagef("worker run: --workload is required\n%s", workerUsage)
		case *server == "":
			return usagef("worker run: --server (or $%s) is required\n%s", envServerURL, workerUsage)
		}
		if err := settings.Validate(); err != nil {
			return usagef("worker run: %v", err)
		}
		return e.runWorker(cmd.Context(), settings, *workloadPath, *server, args)
	}
	cmd.AddCommand(runCmd)
	return cmd
}

// runWorker runs command for the workload in workloadPath against the
// Execution API at server.
//
// The task's command runs as the worker's user, so everything that user can
// reach it can too: the worker therefore makes itself non-dumpable, refuses
// a workload file group or others may read, and removes the file once read,
// before the command starts (see worker.TakeWorkload). `--workload -` reads
// standard input and leaves no file at all.
func (e *cliEnv) runWorker(ctx context.Context, settings worker.Settings, workloadPath, server string, command []string) error {
	// Before any token is in memory: the task's command runs as this user
	// and must not be able to read the worker's memory through /proc.
	if err := worker.MakeNonDumpable(); err != nil {
		return err
	}
	task, err := worker.TakeWorkload(workloadPath, e.stdin)
	if err != nil {
		return err
	}
	log, err := newLogger("info", e.stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr may not support sync

	opts := append(settings.ClientOptions(),
		client.WithToken(task.Token),
		client.WithUserAgent(client.UserAgent("taskgate-worker")),
		client.WithRetryNotify(func(r client.Retry) {
			log.Warn("retrying request", zap.String("ti_id", task.TI.ID), zap.String("method", r.Method),
				zap.String("path", r.Path), zap.Int("attempt", r.Attempt), zap.Duration("wait", r.Wait),
				zap.Int("status", r.Status), zap.Error(r.Err))
		}))
	api, err := client.New(server, opts...)
	if err != nil {
		return usagef("worker run: --server: %v", err)
	}
	hostname, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("worker: hostname: %w", err)
	}
	// The worker's own signals go to the task: main cancels ctx on them too,
	// which the supervisor also treats as "stop the task".
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	sup, err := worker.New(worker.Config{
		API:                 api,
		Task:                task,
		Command:             command,
		Env:                 e.environ,
		Hostname:            hostname,
		Unixname:            unixname(e.environ),
		PID:                 os.Getpid(),
		HeartbeatInterval:   settings.HeartbeatInterval,
		MaxFailedHeartbeats: settings.MaxFailedHeartbeats,
		KillGrace:           settings.KillGrace,
		Signals:             sigs,
		Logger:              log,
	})
	if err != nil {
		return err
	}
	res, err := sup.Run(ctx)
	if err != nil {
		return err
	}
	if res.ExitCode == 0 {
		return nil
	}
	return &exitCodeError{code: res.ExitCode, msg: outcome(res)}
}

// outcome describes a task run that did not succeed.
func outcome(res worker.Result) string {
	state := ""
	if res.State != "" {
		state = " (reported " + string(res.State) + ")"
	}
	switch res.Stopped {
	case worker.StopServer:
		return "worker: task stopped: the server says it must not run any more"
	case worker.StopHeartbeats:
		return "worker: task stopped: too many failed heartbeats" + state
	case worker.StopSignal:
		return "worker: task stopped by a signal" + state
	}
	if res.Signal != 0 {
		return "worker: task command killed by " + res.Signal.String() + state
	}
	return "worker: task command exited with code " + strconv.Itoa(res.ExitCode) + state
}

// unixname is the user the worker runs as, which the server records with
// the task instance (Airflow uses getpass.getuser()).
func unixname(environ []string) string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, name := range []string{"USER", "LOGNAME"} {
		if v := lookupEnv(environ, name); v != "" {
			return v
		}
	}
	return strconv.Itoa(os.Getuid())
}

// lookupEnv is os.Getenv over an os.Environ-style list (the last entry
// wins), so commands read the environment run was given, never the process's.
func lookupEnv(environ []string, name string) string {
	v := ""
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}
