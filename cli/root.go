// Package cli is taskgate's command line: `serve`, the provisioning and
// operator commands, and `worker run`, as a cobra command tree with one file
// per command group. Main reads everything from its arguments (arguments,
// environment, standard streams), so that tests drive it in-process; each
// command parses its line, calls a backend (a server's admin API, or the
// data directory) and prints.
//
// This file holds the root of the tree: the global flags, the exit codes
// and the single-dash flags kept from Go's flag package.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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

// run is the whole program: it reads everything from its arguments so that
// tests can drive it in-process.
func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &cliEnv{global: &global{}, environ: environ, stdin: stdin, stdout: stdout, stderr: stderr}
	root := e.rootCommand()
	// Never nil: cobra reads os.Args when given no arguments.
	root.SetArgs(append([]string{}, normalizeArgs(root, args)...))
	return root.ExecuteContext(ctx)
}

// global holds the flags every command takes.
type global struct {
	configFile string
	dataDir    string
}

func (g *global) bind(fs *pflag.FlagSet) {
	fs.StringVar(&g.configFile, "config", g.configFile, "configuration `FILE` (airflow.cfg format)")
	fs.StringVar(&g.dataDir, "data-dir", g.dataDir, "data directory `DIR` ([taskgate] data_dir, default ./data)")
}

const rootLong = `taskgate is Apache Airflow's Execution API gateway: ` + "`taskgate serve`" + ` runs it, and the
other commands provision what it serves and run tasks against it.

The provisioning commands (workloads … components) go through the server
logged in to (or --server URL with $TASKGATE_TOKEN), else they work on the
data directory, which a running server locks. Roles: viewer reads; op also
writes variables and connections and marks task instances; admin also queues
workloads, manages users and components, and revokes tokens. Credentials are stored in
$TASKGATE_CREDENTIALS, default <user config dir>/taskgate/credentials.json.

Configuration: airflow.cfg (--config FILE, else $AIRFLOW_HOME/airflow.cfg),
overridden by AIRFLOW__SECTION__KEY environment variables, overridden by flags.`

// usageTemplate is cobra's, except that a command with subcommands shows
// only `COMMAND [command]`: run alone, it is a usage error.
const usageTemplate = `Usage:{{if and .Runnable (not .HasAvailableSubCommands)}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Available Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`

// rootCommand builds the whole command tree over e.
func (e *cliEnv) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "taskgate",
		Short: "Apache Airflow's Execution API gateway",
		Long:  rootLong,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				fmt.Fprint(cmd.ErrOrStderr(), cmd.UsageString())
				return usagef("unknown command %q", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprint(cmd.ErrOrStderr(), cmd.UsageString())
			return usagef("no command given")
		},
		// Main prints the error, and usage only where it helps.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	// Before the completion command is added: it keeps the writer it sees.
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetUsageTemplate(usageTemplate)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		fmt.Fprint(cmd.ErrOrStderr(), cmd.UsageString())
		if cmd.HasParent() {
			return usagef("%s: %v", commandName(cmd), err)
		}
		return usagef("%v", err)
	})
	e.global.bind(root.PersistentFlags())
	root.AddCommand(
		e.serveCommand(),
		e.workloadsCommand(),
		e.variablesCommand(),
		e.connectionsCommand(),
		e.tasksCommand(),
		e.usersCommand(),
		e.tokensCommand(),
		e.componentsCommand(),
		e.keysCommand(),
		e.loginCommand(),
		e.logoutCommand(),
		e.configCommand(),
		e.workerCommand(),
		e.versionCommand(),
	)
	// The help and completion commands and every help flag exist before
	// the command line is read, so that normalizeArgs knows them.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	walk(root, func(c *cobra.Command) { c.InitDefaultHelpFlag() })
	return root
}

// walk calls fn on cmd and every command below it.
func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, c := range cmd.Commands() {
		walk(c, fn)
	}
}

// commandName is the command's path without "taskgate ": "users add".
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// groupCommand is a command that only holds subcommands: run without one
// (or with an unknown one) it is the usage error err.
func groupCommand(name, short string, err func() error) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: short,
		RunE:  func(*cobra.Command, []string) error { return err() },
	}
}

// exactArgs requires n positional arguments, else it is the usage error
// "usage: taskgate USAGE".
func exactArgs(n int, usage string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("usage: taskgate %s", usage)
		}
		return nil
	}
}

// serverFlag adds --server to a provisioning command.
func serverFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("server", "", "work through this `URL` (logged in to with taskgate login, or with $"+envToken+")")
}

// normalizeArgs rewrites the long flags Go's flag package took with one dash
// (-name, -name=value) to pflag's --name, so that scripts written for it keep
// working. As with Go's flag package, every argument of two or more
// characters after a single dash is a flag; the value of a flag that takes
// one, everything after "--", and a single-letter shorthand (-h) are left
// as they are. The command whose flags apply is found as cobra finds it:
// the first argument that is not a flag (or a flag's value) names a
// subcommand, until one does not.
func normalizeArgs(root *cobra.Command, args []string) []string {
	if len(args) > 0 && strings.HasPrefix(args[0], "__complete") {
		return args // shell completion: the word being completed stays as typed
	}
	out := make([]string, 0, len(args))
	cmd, descending := root, true
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(out, args[i:]...)
		case len(a) < 2 || a[0] != '-':
			if descending {
				if sub := subcommand(cmd, a); sub != nil {
					cmd = sub
				} else {
					descending = false
				}
			}
			out = append(out, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var f *pflag.Flag
		if a[1] != '-' && len(name) == 1 {
			f = cmd.Flags().ShorthandLookup(name)
		} else {
			if a[1] != '-' {
				a = "-" + a
			}
			f = lookupFlag(cmd, name)
		}
		out = append(out, a)
		// A flag that takes a value and has none after "=" takes the next
		// argument, whatever it looks like (--map-index -1). An unknown one
		// is taken to, as cobra does when it looks for the subcommand.
		if !hasValue && (f == nil || f.NoOptDefVal == "") && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}

// subcommand is cmd's subcommand called name, or nil.
func subcommand(cmd *cobra.Command, name string) *cobra.Command {
	for _, c := range cmd.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c
		}
	}
	return nil
}

// lookupFlag finds a flag of cmd: its own or one it inherits.
func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	if f := cmd.Flags().Lookup(name); f != nil {
		return f
	}
	for c := cmd; c != nil; c = c.Parent() {
		if f := c.PersistentFlags().Lookup(name); f != nil {
			return f
		}
	}
	return nil
}
