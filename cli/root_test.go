package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// mainResult is what a process running Main would show.
type mainResult struct {
	code           int
	stdout, stderr string
}

func runMain(t *testing.T, args ...string) mainResult {
	t.Helper()
	environ := []string{envCredentials + "=" + filepath.Join(t.TempDir(), "none.json")}
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, environ, strings.NewReader(""), &stdout, &stderr)
	return mainResult{code, stdout.String(), stderr.String()}
}

// commandPaths lists every command of the tree below root, as the
// arguments that name it ("variables", "set").
func commandPaths(root *cobra.Command) map[string]*cobra.Command {
	paths := map[string]*cobra.Command{}
	walk(root, func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		paths[commandName(c)] = c
	})
	return paths
}

// TestHelpOfEveryCommand: `taskgate COMMAND [SUB] --help` (and -help, and
// `taskgate help COMMAND [SUB]`) prints the command's usage with every flag
// it takes to standard output, and exits 0.
func TestHelpOfEveryCommand(t *testing.T) {
	root := (&cliEnv{global: &global{}}).rootCommand()
	paths := commandPaths(root)
	for _, want := range []string{"serve", "workloads queue", "variables set", "variables get", "variables list",
		"variables delete", "connections add", "connections get", "connections list", "connections delete",
		"connections rotate-key", "tasks list", "tasks mark", "users add", "users list", "users remove",
		"tokens revoke", "components register", "components list", "components remove", "login", "logout",
		"config list", "worker run", "version", "completion bash", "completion zsh", "completion fish"} {
		if paths[want] == nil {
			t.Errorf("no command %q in the tree", want)
		}
	}
	for name, cmd := range paths {
		var words []string
		if cmd.HasParent() {
			words = strings.Fields(name)
		}
		var flags []string
		for _, fs := range []*pflag.FlagSet{cmd.LocalFlags(), cmd.InheritedFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if !f.Hidden {
					flags = append(flags, "--"+f.Name)
				}
			})
		}
		for _, form := range [][]string{
			append(append([]string{}, words...), "--help"),
			append(append([]string{}, words...), "-help"),
			append(append([]string{}, words...), "-h"),
			append([]string{"help"}, words...),
		} {
			t.Run(strings.Join(form, " "), func(t *testing.T) {
				r := runMain(t, form...)
				if r.code != 0 || r.stderr != "" {
					t.Fatalf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
				}
				if !strings.Contains(r.stdout, "Usage:\n  "+cmd.CommandPath()) {
					t.Errorf("stdout does not show the usage of %q:\n%s", cmd.CommandPath(), r.stdout)
				}
				for _, f := range flags {
					if !strings.Contains(r.stdout, f+" ") {
						t.Errorf("help does not show %s:\n%s", f, r.stdout)
					}
				}
			})
		}
	}
}

// TestCommandLineErrors: a command line that cannot be run exits 2, with
// the usage on standard error where the mistake is in the command or a
// flag, and a last line starting "taskgate: ".
func TestCommandLineErrors(t *testing.T) {
	for _, tt := range []struct {
		name      string
		args      []string
		wantUsage string // in stderr, before the message
		wantMsg   string // the start of the last line of stderr
	}{
		{"no command", nil, "Usage:\n  taskgate [command]", "taskgate: no command given"},
		{"only global flags", []string{"--data-dir", "d"}, "Usage:\n  taskgate [command]", "taskgate: no command given"},
		{"unknown command", []string{"frobnicate"}, "Available Commands:", `taskgate: unknown command "frobnicate"`},
		{"unknown flag", []string{"variables", "list", "--bogus"}, "Usage:\n  taskgate variables list [flags]",
			"taskgate: variables list: unknown flag: --bogus"},
		{"unknown single-dash flag", []string{"variables", "list", "-bogus"}, "Usage:\n  taskgate variables list [flags]",
			"taskgate: variables list: unknown flag: --bogus"},
		{"unknown global flag", []string{"--bogus", "variables", "list"}, "Usage:\n  taskgate [command]",
			"taskgate: unknown flag: --bogus"},
		{"flag without its value", []string{"serve", "--listen"}, "Usage:\n  taskgate serve [flags]",
			"taskgate: serve: flag needs an argument: --listen"},
		{"bad flag value", []string{"tasks", "mark", "d", "r", "t", "--state", "failed", "--map-index", "one"},
			"Usage:\n  taskgate tasks mark", `taskgate: tasks mark: invalid argument "one" for "--map-index" flag`},
		{"group without a subcommand", []string{"variables"}, "",
			"taskgate: usage: taskgate variables set KEY VALUE [--description TEXT] | get KEY | list | delete KEY  [--server URL]"},
		{"unknown subcommand", []string{"users", "frobnicate"}, "",
			"taskgate: usage: taskgate users add NAME --role admin|op|viewer [--password-stdin] | list | remove NAME  [--server URL]"},
		{"too many arguments", []string{"variables", "get", "a", "b"}, "", "taskgate: usage: taskgate variables get KEY"},
		{"serve with an argument", []string{"serve", "now"}, "", `taskgate: serve: unexpected argument "now"`},
		{"config without list", []string{"config"}, "", `taskgate: config: expected "list"`},
		{"version with an argument", []string{"version", "x"}, "", "taskgate: usage: taskgate version"},
		{"worker without run", []string{"worker"}, "", "         [--timeout D] [--kill-grace D] -- CMD [ARGS...]"},
		{"worker command without --", []string{"worker", "run", "--workload", "-", "--server", "http://127.0.0.1:1", "sh", "-c", "true"}, "",
			"         [--timeout D] [--kill-grace D] -- CMD [ARGS...]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runMain(t, tt.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2", r.code)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, tt.wantMsg) {
				t.Errorf("last line of stderr %q, want it to start with %q", last, tt.wantMsg)
			}
			if i := strings.Index(r.stderr, tt.wantUsage); tt.wantUsage != "" && (i < 0 || i > strings.LastIndex(r.stderr, "taskgate: ")) {
				t.Errorf("stderr does not show %q before the message:\n%s", tt.wantUsage, r.stderr)
			}
			if tt.wantUsage == "" && strings.Contains(r.stderr, "Usage:") {
				t.Errorf("stderr shows a full usage:\n%s", r.stderr)
			}
		})
	}
	t.Run("worker run messages", func(t *testing.T) {
		for args, want := range map[string]string{
			"--workload - sh":           "worker run: give the task's command after --",
			"--workload - --":           "worker run: give the task's command after --",
			"--workload - x -- sh":      `worker run: unexpected argument "x" before --`,
			"-- sh":                     "worker run: --workload is required",
			"--workload - -- sh":        "worker run: --server (or $" + envServerURL + ") is required",
			"--workload - --retries -1": "worker run: invalid argument",
		} {
			r := runMain(t, append([]string{"worker", "run"}, strings.Fields(args)...)...)
			if r.code != 2 || !strings.Contains(r.stderr, "taskgate: "+want) {
				t.Errorf("worker run %s: exit %d, stderr %q; want 2 and %q", args, r.code, r.stderr, want)
			}
		}
	})
}

// TestNormalizeArgs: the single-dash long flags of Go's flag package become
// pflag's double-dash ones; values, shorthands and the task's command after
// "--" stay as they are.
func TestNormalizeArgs(t *testing.T) {
	root := (&cliEnv{global: &global{}}).rootCommand()
	for _, tt := range []struct {
		name, args, want string
	}{
		{name: "global flags before the command", args: "-data-dir d -config c.cfg variables list",
			want: "--data-dir d --config c.cfg variables list"},
		{name: "flag=value", args: "-data-dir=d config list", want: "--data-dir=d config list"},
		{name: "flags after positionals", args: "variables set k v -description d -server http://x",
			want: "variables set k v --description d --server http://x"},
		{name: "a value that looks like a flag", args: "tasks mark d r t -map-index -1 -state failed",
			want: "tasks mark d r t --map-index -1 --state failed"},
		{name: "a value with a dash after a double-dash flag", args: "variables set k v --description -not-a-flag",
			want: "variables set k v --description -not-a-flag"},
		{name: "a boolean flag takes no value", args: "users add bob -password-stdin -role op",
			want: "users add bob --password-stdin --role op"},
		{name: "global flags after the command", args: "serve -listen 127.0.0.1:0 -data-dir d",
			want: "serve --listen 127.0.0.1:0 --data-dir d"},
		{name: "a shorthand stays", args: "serve -h", want: "serve -h"},
		{name: "single-dash help", args: "tokens revoke -help", want: "tokens revoke --help"},
		{name: "standard input as the workload", args: "worker run -workload - -server http://x -heartbeat-interval 1 -- sh",
			want: "worker run --workload - --server http://x --heartbeat-interval 1 -- sh"},
		{name: "the task's command keeps its flags", args: "worker run -workload f -- python -m mod -verbose --x=1 -- y",
			want: "worker run --workload f -- python -m mod -verbose --x=1 -- y"},
		{name: "a flag of the subcommand before it", args: "variables -server http://x list",
			want: "variables --server http://x list"},
		{name: "an unknown flag", args: "users add -bad --role op", want: "users add --bad --role op"},
		{name: "double-dash flags stay", args: "--data-dir d workloads queue --dag-id a --run-id b --task-id c",
			want: "--data-dir d workloads queue --dag-id a --run-id b --task-id c"},
		{name: "shell completion stays as typed", args: "__complete variables list -ser",
			want: "__complete variables list -ser"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := normalizeArgs(root, strings.Fields(tt.args))
			if diff := cmp.Diff(strings.Fields(tt.want), got); diff != "" {
				t.Errorf("normalizeArgs(%s) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

// TestSingleDashFlags: scripts written for Go's flag package keep working,
// flags anywhere on the line.
func TestSingleDashFlags(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	environ := []string{envCredentials + "=" + filepath.Join(dir, "none.json")}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out := runCLI(t, environ, stdin, args...)
		if out.err != nil {
			t.Fatalf("taskgate %s: %v\nstderr: %s", strings.Join(args, " "), out.err, out.stderr)
		}
		return out.stdout
	}
	must("", "-data-dir", dataDir, "variables", "set", "k", "v", "-description", "-dash-description")
	must("", "-data-dir="+dataDir, "variables", "set", "-description=d", "--", "k2", "-dash-value")
	if got := must("", "variables", "get", "k2", "-data-dir="+dataDir); got != "-dash-value\n" {
		t.Errorf("variables get: %q", got)
	}
	must("", "connections", "add", "c", "-conn-type", "http", "-port", "80", "-data-dir", dataDir)
	if got := must("", "connections", "list", "-data-dir", dataDir); !strings.Contains(got, "http") || !strings.Contains(got, "80") {
		t.Errorf("connections list: %q", got)
	}
	must("", "-data-dir", dataDir, "workloads", "queue", "-dag-id", "d", "-run-id", "r", "-task-id", "t", "-map-index", "-1")
	must("pass-word-long\n", "-data-dir", dataDir, "users", "add", "root", "-role", "admin", "-password-stdin")
	if got := must("", "-data-dir", dataDir, "tasks", "mark", "d", "r", "t", "-map-index", "-1", "-state", "failed"); !strings.Contains(got, "failed") {
		t.Errorf("tasks mark: %q", got)
	}
}

// TestWorkerRunCommandUntouched: everything after "--" reaches the task's
// command as it was given, flags of its own included, single-dash or not.
func TestWorkerRunCommandUntouched(t *testing.T) {
	root := (&cliEnv{global: &global{}, environ: []string{envServerURL + "=http://from-env"}}).rootCommand()
	runCmd, _, err := root.Find([]string{"worker", "run"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	runCmd.RunE = func(_ *cobra.Command, args []string) error {
		got = args
		return nil
	}
	args := []string{"worker", "run", "-workload", "-", "-heartbeat-interval", "2", "--",
		"python", "-workload", "x", "--server", "y", "-h", "--", "-z"}
	root.SetArgs(normalizeArgs(root, args))
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	if err := root.Execute(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if diff := cmp.Diff([]string{"python", "-workload", "x", "--server", "y", "-h", "--", "-z"}, got); diff != "" {
		t.Errorf("the task's command (-want +got):\n%s", diff)
	}
	for name, want := range map[string]string{"workload": "-", "server": "http://from-env", "heartbeat-interval": "2s"} {
		if v := runCmd.Flags().Lookup(name).Value.String(); v != want {
			t.Errorf("--%s = %q, want %q", name, v, want)
		}
	}
}

func TestVersionCommand(t *testing.T) {
	r := runMain(t, "version")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if !regexp.MustCompile(`\Ataskgate \S+\ncommit: \S+\ngo: go\S+ \w+/\w+\n\z`).MatchString(r.stdout) {
		t.Errorf("version printed %q, want taskgate VERSION, commit: COMMIT, go: GOVERSION OS/ARCH", r.stdout)
	}
}

func TestDescribeBuild(t *testing.T) {
	vcs := func(revision, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: revision},
			{Key: "vcs.modified", Value: modified}}
	}
	for _, tt := range []struct {
		name            string
		version, commit string
		info            *debug.BuildInfo
		want            buildInfo
	}{
		{"set by the linker", "v1.2.3", "abc123", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v9.9.9"},
			Settings: vcs("fff", "true")},
			buildInfo{Version: "v1.2.3", Commit: "abc123", GoVersion: "go1.26.1"}},
		{"go install of a tag", "", "", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.4.0"}},
			buildInfo{Version: "v1.4.0", Commit: "unknown", GoVersion: "go1.26.1"}},
		{"a build in a clean checkout", "", "", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"},
			Settings: vcs("0123abcd", "false")},
			buildInfo{Version: "devel", Commit: "0123abcd", GoVersion: "go1.26.1"}},
		{"a build in a modified checkout", "", "", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"},
			Settings: vcs("0123abcd", "true")},
			buildInfo{Version: "devel", Commit: "0123abcd-dirty", GoVersion: "go1.26.1"}},
		{"no build information", "", "", nil, buildInfo{Version: "devel", Commit: "unknown"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := describeBuild(tt.version, tt.commit, tt.info)
			if got.GoVersion == "" || got.Platform == "" {
				t.Errorf("no Go version or platform: %+v", got)
			}
			if tt.want.GoVersion == "" {
				tt.want.GoVersion = got.GoVersion
			}
			tt.want.Platform = got.Platform
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "__start_taskgate",
		"zsh":  "#compdef taskgate",
		"fish": "complete -c taskgate",
	} {
		t.Run(shell, func(t *testing.T) {
			r := runMain(t, "completion", shell)
			if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, want) {
				t.Errorf("exit %d, stderr %q, script without %q:\n%.300s", r.code, r.stderr, want, r.stdout)
			}
		})
	}
	// The scripts ask the binary; it answers with the tree's commands.
	r := runMain(t, "__complete", "variables", "")
	for _, sub := range []string{"set", "get", "list", "delete"} {
		if !strings.Contains(r.stdout, sub+"\t") {
			t.Errorf("completing `taskgate variables ` does not offer %s:\n%s", sub, r.stdout)
		}
	}
}
