package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/taskgate/taskgate/internal/atomicfile"
	"github.com/taskgate/taskgate/workload"
)

const usageWorkloads = "workloads queue --dag-id D --run-id R --task-id T [--map-index N] [--try-number N] [--max-tries N] [--dag-rel-path P] [--output FILE] [--server URL]"

// workloadsCommand is `taskgate workloads queue`.
func (e *cliEnv) workloadsCommand() *cobra.Command {
	usage := func() error { return usagef("usage: taskgate %s", usageWorkloads) }
	cmd := groupCommand("workloads", "Queue task instances", usage)
	queue := &cobra.Command{
		Use:   "queue --dag-id D --run-id R --task-id T",
		Short: "Queue a task instance; print its ExecuteTask workload",
		Long: "Create the dag run if needed and a queued task instance, and print the ExecuteTask\n" +
			"workload with its workload token — or, with --output FILE, write it there (mode 0600).",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usage()
			}
			return nil
		},
	}
	server := serverFlag(queue)
	var r workload.QueueRequest
	fs := queue.Flags()
	fs.StringVar(&r.DagID, "dag-id", "", "dag id (required)")
	fs.StringVar(&r.RunID, "run-id", "", "run id (required)")
	fs.StringVar(&r.TaskID, "task-id", "", "task id (required)")
	fs.IntVar(&r.MapIndex, "map-index", -1, "map index (-1 for an unmapped task)")
	fs.IntVar(&r.TryNumber, "try-number", 0, "try number (default: one more than the last try, or 1)")
	fs.IntVar(&r.MaxTries, "max-tries", 0, "max tries")
	fs.StringVar(&r.DagRelPath, "dag-rel-path", "", "dag file path relative to its bundle")
	output := fs.String("output", "", "write the workload to FILE (mode 0600, atomically) instead of standard output")
	queue.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := r.Validate(); err != nil {
			return usagef("workloads queue: %v", err)
		}
		return e.queueWorkload(cmd, *server, r, *output)
	}
	cmd.AddCommand(queue)
	cmd.AddCommand(e.testConnectionCommand(), e.queueCallbackCommand())
	return cmd
}

// testConnectionCommand is `taskgate workloads test-connection`.
func (e *cliEnv) testConnectionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "test-connection --conn-id ID --conn-type TYPE",
		Short: "Queue a connection test; print its TestConnection workload",
		Long: "Queue a test of the connection given by the flags, for a worker to run with the test's token\n" +
			"(GET and PATCH /execution/connection-tests/{id}), and print its workload — or, with --output\n" +
			"FILE, write it there (mode 0600). With --commit-on-success the connection is saved when the\n" +
			"test succeeds.",
		Args: cobra.NoArgs,
	}
	server := serverFlag(cmd)
	var r workload.ConnectionTestRequest
	fs := cmd.Flags()
	fs.StringVar(&r.Connection.ConnID, "conn-id", "", "connection id (required)")
	fs.StringVar(&r.Connection.ConnType, "conn-type", "", "connection type (required)")
	fs.String("host", "", "host")
	fs.String("schema", "", "schema")
	fs.String("login", "", "login")
	fs.String("password", "", "password")
	port := fs.Int("port", 0, "port")
	fs.String("extra", "", "extra (a JSON document)")
	fs.BoolVar(&r.CommitOnSuccess, "commit-on-success", false, "save the connection when the test succeeds")
	output := fs.String("output", "", "write the workload to FILE (mode 0600, atomically) instead of standard output")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		for name, dst := range map[string]**string{"host": &r.Connection.Host, "schema": &r.Connection.Schema,
			"login": &r.Connection.Login, "password": &r.Connection.Password, "extra": &r.Connection.Extra} {
			if fs.Changed(name) {
				v, _ := fs.GetString(name)
				*dst = &v
			}
		}
		if fs.Changed("port") {
			r.Connection.Port = port
		}
		if r.Connection.ConnID == "" || r.Connection.ConnType == "" {
			return usagef("workloads test-connection: --conn-id and --conn-type are required")
		}
		return e.printWorkload(cmd, *server, *output, func(b operatorBackend) (any, error) {
			return b.QueueConnectionTest(cmd.Context(), r)
		})
	}
	return cmd
}

// queueCallbackCommand is `taskgate workloads queue-callback`.
func (e *cliEnv) queueCallbackCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue-callback --path MODULE.CALLABLE [--kwargs JSON]",
		Short: "Queue a callback; print its ExecuteCallback workload",
		Long: "Queue a callback (an import path and its keyword arguments) for a worker to run with its\n" +
			"single-use token (PATCH /execution/callbacks/{id}/run, then /state), and print its workload —\n" +
			"or, with --output FILE, write it there (mode 0600).",
		Args: cobra.NoArgs,
	}
	server := serverFlag(cmd)
	var r workload.CallbackRequest
	fs := cmd.Flags()
	fs.StringVar(&r.Path, "path", "", "import path of the callable (required)")
	kwargs := fs.String("kwargs", "", "keyword arguments, a JSON object")
	output := fs.String("output", "", "write the workload to FILE (mode 0600, atomically) instead of standard output")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if r.Path == "" {
			return usagef("workloads queue-callback: --path is required")
		}
		if *kwargs != "" {
			r.Kwargs = []byte(*kwargs)
		}
		return e.printWorkload(cmd, *server, *output, func(b operatorBackend) (any, error) {
			return b.QueueCallback(cmd.Context(), r)
		})
	}
	return cmd
}

// printWorkload runs queue and prints what it returns, or writes it to
// output (mode 0600), as queueWorkload does.
func (e *cliEnv) printWorkload(_ *cobra.Command, server, output string, queue func(b operatorBackend) (any, error)) error {
	return e.withBackend(server, func(b operatorBackend) error {
		var out *atomicfile.Pending
		if output != "" {
			var err error
			if out, err = atomicfile.Prepare(output); err != nil {
				return err
			}
			defer out.Abort()
		}
		w, err := queue(b)
		if err != nil {
			return err
		}
		if out == nil {
			warnSharedOutput(e.stdout, e.stderr)
			return writeJSON(e.stdout, w)
		}
		var buf bytes.Buffer
		if err := writeJSON(&buf, w); err != nil {
			return err
		}
		return out.Commit(buf.Bytes())
	})
}

// queueWorkload queues r and prints its workload — or, with output, writes
// it there, created mode 0600 and renamed into place, so it is never
// readable by anyone else, even for a moment. Printed to a file through the
// shell, it gets the shell's umask (usually 0644): a warning says so, as
// `taskgate worker run` refuses such a file.
func (e *cliEnv) queueWorkload(cmd *cobra.Command, server string, r workload.QueueRequest, output string) error {
	ctx := cmd.Context()
	return e.withBackend(server, func(b operatorBackend) error {
		var out *atomicfile.Pending
		if output != "" {
			// Before queueing: an unwritable destination fails first.
			var err error
			if out, err = atomicfile.Prepare(output); err != nil {
				return err
			}
			defer out.Abort()
		}
		w, err := b.QueueWorkload(ctx, r)
		if err != nil {
			return err
		}
		if out == nil {
			warnSharedOutput(e.stdout, e.stderr)
			return writeJSON(e.stdout, w)
		}
		var buf bytes.Buffer
		if err := writeJSON(&buf, w); err != nil {
			return err
		}
		if err := out.Commit(buf.Bytes()); err != nil {
			return fmt.Errorf("task instance %s is queued but its workload was not saved (%w): "+
				"mark it failed with `taskgate tasks mark` and queue it again", w.TI.ID, err)
		}
		return nil
	})
}

// warnSharedOutput warns when standard output is a regular file that group
// or others may read: a workload printed there (`> workload.json` under the
// usual umask 022) exposes its token, and `taskgate worker run` refuses it.
func warnSharedOutput(stdout, stderr io.Writer) {
	f, ok := stdout.(*os.File)
	if !ok {
		return
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 || runtime.GOOS == "windows" {
		return
	}
	fmt.Fprintf(stderr, "taskgate: warning: standard output is a file open to group or others (mode %04o) and the workload "+
		"holds a token; use --output FILE (mode 0600), or umask 077 before redirecting; `taskgate worker run` refuses such a file\n",
		fi.Mode().Perm())
}
