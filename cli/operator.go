package cli

// The operator commands: users, login and logout, and every provisioning
// command (workloads, variables, connections, tasks, tokens, components).
//
// A provisioning command works through the admin API (/api/v2) of a running
// server when one is configured — credentials stored by `taskgate login`, or
// --server URL with TASKGATE_TOKEN — and on the data directory otherwise. A
// running server locks its bbolt file, so going through the server is the
// only way to change anything while it runs, and the server applies its role
// checks. The data directory remains the way to bootstrap: the first admin is
// created there before any server runs.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/config"
	"github.com/taskgate/taskgate/internal/atomicfile"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/tokens"
	"github.com/taskgate/taskgate/workload"
)

// Environment variables of the operator commands.
const (
	// envCredentials overrides where `taskgate login` stores its credentials.
	envCredentials = "TASKGATE_CREDENTIALS"
	// envToken is a REST token used with --server instead of stored
	// credentials (CI jobs, scripts).
	envToken = "TASKGATE_TOKEN"
)

// ----- the environment and the credentials file

// getenv reads the command's environment (not the process's, so that tests
// can drive run in-process); the last assignment wins.
func (e *cliEnv) getenv(key string) string { return lookupEnv(e.environ, key) }

// userConfigDir is os.UserConfigDir over the given environment.
func userConfigDir(getenv func(string) string) (string, error) {
	switch runtime.GOOS {
	case "windows":
		if d := getenv("AppData"); d != "" {
			return d, nil
		}
		return "", errors.New("%AppData% is not defined")
	case "darwin", "ios":
		if h := getenv("HOME"); h != "" {
			return filepath.Join(h, "Library", "Application Support"), nil
		}
		return "", errors.New("$HOME is not defined")
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		if !filepath.IsAbs(d) {
			return "", errors.New("path in $XDG_CONFIG_HOME is relative")
		}
		return d, nil
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config"), nil
	}
	return "", errors.New("neither $XDG_CONFIG_HOME nor $HOME are defined")
}

// credentialsPath is $TASKGATE_CREDENTIALS, else
// <user config dir>/taskgate/credentials.json.
func (e *cliEnv) credentialsPath() (string, error) {
	if p := e.getenv(envCredentials); p != "" {
		return p, nil
	}
	dir, err := userConfigDir(e.getenv)
	if err != nil {
		return "", fmt.Errorf("locate the credentials file (or set %s): %w", envCredentials, err)
	}
	return filepath.Join(dir, "taskgate", "credentials.json"), nil
}

// credentials is what `taskgate login` stores: a REST token and the server
// it is for. The token is sent to that server only.
type credentials struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

// loadCredentials reads the credentials file; (nil, nil) when there is none.
// A damaged file is an error rather than "not logged in", so that a command
// meant for the server never silently writes to a local data directory.
func loadCredentials(path string) (*credentials, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	var c credentials
	if err := json.Unmarshal(b, &c); err != nil || c.Token == "" {
		return nil, fmt.Errorf("credentials file %s is damaged: run `taskgate login` again, or delete it", path)
	}
	if c.Server, err = normalizeServer(c.Server); err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return &c, nil
}

// saveCredentials stores c in path (mode 0600, its directory 0700),
// atomically: a reader sees the old file or the new one, never a part.
func saveCredentials(path string, c credentials) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create the credentials directory: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
}

// normalizeServer checks a server URL and drops its trailing slash.
// Credentials in the URL are refused: they would end up in the credentials
// file and in error messages.
func normalizeServer(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", usagef("server %q: want an http:// or https:// URL without credentials or query, like http://127.0.0.1:8080", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// ----- choosing the server or the data directory

// operatorBackend is what the provisioning commands need, implemented by
// the admin API (apiClient) and by the data directory (localBackend), so
// that each command parses and prints in one place whichever it uses.
// Missing records give errors matching errNotFound, taken names errExists.
type operatorBackend interface {
	QueueWorkload(ctx context.Context, r workload.QueueRequest) (*workload.ExecuteTask, error)

	PutVariable(ctx context.Context, v workload.Variable) error
	Variable(ctx context.Context, key string) (*workload.Variable, error)
	Variables(ctx context.Context) ([]workload.Variable, error)
	DeleteVariable(ctx context.Context, key string) error

	PutConnection(ctx context.Context, c workload.Connection) error
	// Connection returns the Connection with its password, if any,
	// replaced by redactedPassword.
	Connection(ctx context.Context, id string) (*workload.Connection, error)
	Connections(ctx context.Context) ([]workload.Connection, error)
	DeleteConnection(ctx context.Context, id string) error

	TaskInstances(ctx context.Context, f workload.TaskInstanceFilter) ([]workload.TaskInstance, error)
	MarkTaskInstance(ctx context.Context, dagID, runID, taskID string, mapIndex int, s workload.State) (*workload.TaskInstance, error)

	AddUser(ctx context.Context, name string, role auth.Role, password string) error
	Users(ctx context.Context) ([]auth.User, error)
	RemoveUser(ctx context.Context, name string) error

	// Revoke revokes a token (REST, task or component) by jti until exp;
	// nil exp means for the longest lifetime of any token taskgate mints.
	// An exp already past is refused (auth.RevocationUntil).
	Revoke(ctx context.Context, jti string, exp *time.Time) error

	// RegisterComponent returns the new component and its execution token.
	RegisterComponent(ctx context.Context, kind auth.ComponentKind, name string) (*auth.Component, string, error)
	Components(ctx context.Context) ([]auth.Component, error)
	RemoveComponent(ctx context.Context, id string) error

	close() error
}

var (
	errNotFound = errors.New("not found")
	errExists   = errors.New("already exists")
)

// redactedPassword is shown instead of a stored password, as the admin API
// does.
const redactedPassword = "***"

// remote returns the admin API client of the configured server, or nil when
// none is configured. server is the --server flag: with TASKGATE_TOKEN it
// is used as given; without, the stored credentials must be for that same
// server, so that a token is never sent to a server it was not issued by.
func (e *cliEnv) remote(server string) (*apiClient, error) {
	envTok := e.getenv(envToken)
	if server != "" {
		var err error
		if server, err = normalizeServer(server); err != nil {
			return nil, err
		}
		if envTok != "" {
			return newAPIClient(server, envTok, envToken), nil
		}
	}
	path, err := e.credentialsPath()
	if err != nil {
		return nil, err
	}
	creds, err := loadCredentials(path)
	if err != nil {
		return nil, err
	}
	switch {
	case server != "" && (creds == nil || creds.Server != server):
		return nil, fmt.Errorf("not logged in to %s: run `taskgate login --server %s`, or set %s", server, server, envToken)
	case creds != nil:
		return newAPIClient(creds.Server, creds.Token, "the credentials in "+path), nil
	case envTok != "":
		return nil, usagef("%s is set but no server is: pass --server URL", envToken)
	}
	return nil, nil
}

// open returns the backend of a provisioning command: the configured server,
// else the data directory.
func (e *cliEnv) open(server string) (operatorBackend, error) {
	api, err := e.remote(server)
	if err != nil || api != nil {
		return api, err
	}
	cfg, signer, db, err := e.offline()
	if err != nil {
		return nil, err
	}
	return &localBackend{cfg: cfg, signer: signer, db: db, now: time.Now}, nil
}

// withBackend runs fn on the command's backend and closes it.
func (e *cliEnv) withBackend(server string, fn func(b operatorBackend) error) (err error) {
	b, err := e.open(server)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := b.close(); err == nil {
			err = cerr
		}
	}()
	return fn(b)
}

// subcommand starts the flag set of `taskgate GROUP SUB`: the global flags
// and --server.
func (e *cliEnv) subcommand(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	e.global.bind(fs)
	server := fs.String("server", "", "work through this server (after `taskgate login`, or with "+envToken+")")
	return fs, server
}

// positional parses fs and requires exactly n positional arguments.
func positional(fs *flag.FlagSet, args []string, n int, usage string) ([]string, error) {
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		return nil, usagef("usage: taskgate %s", usage)
	}
	return pos, nil
}

// table prints rows under a header, aligned.
func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func formatTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// ----- workloads

const usageWorkloads = "workloads queue --dag-id D --run-id R --task-id T [--map-index N] [--try-number N] [--max-tries N] [--dag-rel-path P] [--output FILE] [--server URL]"

// workloads queue: create the dag run if needed and a queued task instance,
// and print the ExecuteTask workload with its workload token — or, with
// --output FILE, write it there, created mode 0600 and renamed into place,
// so it is never readable by anyone else, even for a moment. Printed to a
// file through the shell, it gets the shell's umask (usually 0644): a
// warning says so, as `taskgate worker run` refuses such a file.
func (e *cliEnv) workloads(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "queue" {
		return usagef("usage: taskgate %s", usageWorkloads)
	}
	fs, server := e.subcommand("workloads queue")
	var r workload.QueueRequest
	fs.StringVar(&r.DagID, "dag-id", "", "dag id (required)")
	fs.StringVar(&r.RunID, "run-id", "", "run id (required)")
	fs.StringVar(&r.TaskID, "task-id", "", "task id (required)")
	fs.IntVar(&r.MapIndex, "map-index", -1, "map index (-1 for an unmapped task)")
	fs.IntVar(&r.TryNumber, "try-number", 0, "try number (default: one more than the last try, or 1)")
	fs.IntVar(&r.MaxTries, "max-tries", 0, "max tries")
	fs.StringVar(&r.DagRelPath, "dag-rel-path", "", "dag file path relative to its bundle")
	output := fs.String("output", "", "write the workload to FILE (mode 0600, atomically) instead of standard output")
	if _, err := positional(fs, args[1:], 0, usageWorkloads); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return usagef("workloads queue: %v", err)
	}
	return e.withBackend(*server, func(b operatorBackend) error {
		var out *atomicfile.Pending
		if *output != "" {
			// Before queueing: an unwritable destination fails first.
			var err error
			if out, err = atomicfile.Prepare(*output); err != nil {
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

// ----- variables

const usageVariables = "variables set KEY VALUE [--description TEXT] | get KEY | list | delete KEY  [--server URL]"

// variables set|get|list|delete.
func (e *cliEnv) variables(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("usage: taskgate %s", usageVariables)
	}
	fs, server := e.subcommand("variables " + args[0])
	var (
		pos []string
		err error
		run func(b operatorBackend) error
	)
	switch args[0] {
	case "set":
		desc := fs.String("description", "", "description")
		if pos, err = positional(fs, args[1:], 2, "variables set KEY VALUE [--description TEXT]"); err != nil {
			return err
		}
		v := workload.Variable{Key: pos[0], Value: &pos[1]}
		if *desc != "" {
			v.Description = desc
		}
		run = func(b operatorBackend) error { return b.PutVariable(ctx, v) }
	case "get":
		if pos, err = positional(fs, args[1:], 1, "variables get KEY"); err != nil {
			return err
		}
		run = func(b operatorBackend) error {
			v, err := b.Variable(ctx, pos[0])
			if errors.Is(err, errNotFound) {
				return fmt.Errorf("variable %q not found", pos[0])
			} else if err != nil {
				return err
			}
			if v.Value != nil {
				fmt.Fprintln(e.stdout, *v.Value)
			}
			return nil
		}
	case "list":
		if _, err = positional(fs, args[1:], 0, "variables list"); err != nil {
			return err
		}
		run = func(b operatorBackend) error {
			vs, err := b.Variables(ctx)
			if err != nil {
				return err
			}
			for _, v := range vs {
				fmt.Fprintln(e.stdout, v.Key)
			}
			return nil
		}
	case "delete":
		if pos, err = positional(fs, args[1:], 1, "variables delete KEY"); err != nil {
			return err
		}
		run = func(b operatorBackend) error {
			if err := b.DeleteVariable(ctx, pos[0]); errors.Is(err, errNotFound) {
				return fmt.Errorf("variable %q not found", pos[0])
			} else if err != nil {
				return err
			}
			return nil
		}
	default:
		return usagef("usage: taskgate %s", usageVariables)
	}
	return e.withBackend(*server, run)
}

// ----- connections

const usageConnections = "connections add ID --conn-type T [--host H] [--port N] [--login L] [--password P] [--schema S] [--extra JSON] | get ID | list | delete ID  [--server URL] | rotate-key"

// connectionView is how a connection is printed: the admin API's shape,
// password redacted.
type connectionView struct {
	ConnectionID string  `json:"connection_id"`
	ConnType     string  `json:"conn_type"`
	Host         *string `json:"host"`
	Port         *int    `json:"port"`
	Login        *string `json:"login"`
	Password     *string `json:"password"`
	Schema       *string `json:"schema"`
	Extra        *string `json:"extra"`
}

func optional(p *string) string {
	if p == nil {
		return "-"
	}
	return *p
}

// connections add|get|list|delete.
func (e *cliEnv) connections(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("usage: taskgate %s", usageConnections)
	}
	fs, server := e.subcommand("connections " + args[0])
	var (
		pos []string
		err error
		run func(b operatorBackend) error
	)
	switch args[0] {
	case "rotate-key":
		return e.connectionsRotateKey(ctx, args[1:])
	case "add":
		c, err := parseConnection(fs, args[1:])
		if err != nil {
			return err
		}
		run = func(b operatorBackend) error { return b.PutConnection(ctx, c) }
	case "get":
		if pos, err = positional(fs, args[1:], 1, "connections get ID"); err != nil {
			return err
		}
		run = func(b operatorBackend) error {
			c, err := b.Connection(ctx, pos[0])
			if errors.Is(err, errNotFound) {
				return fmt.Errorf("connection %q not found", pos[0])
			} else if err != nil {
				return err
			}
			return writeJSON(e.stdout, connectionView{ConnectionID: c.ConnID, ConnType: c.ConnType, Host: c.Host,
				Port: c.Port, Login: c.Login, Password: c.Password, Schema: c.Schema, Extra: c.Extra})
		}
	case "list":
		if _, err = positional(fs, args[1:], 0, "connections list"); err != nil {
			return err
		}
		run = func(b operatorBackend) error {
			cs, err := b.Connections(ctx)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(cs))
			for _, c := range cs {
				port := "-"
				if c.Port != nil {
					port = strconv.Itoa(*c.Port)
				}
				rows = append(rows, []string{c.ConnID, c.ConnType, optional(c.Host), port, optional(c.Login), optional(c.Schema)})
			}
			return table(e.stdout, "CONN_ID\tCONN_TYPE\tHOST\tPORT\tLOGIN\tSCHEMA", rows)
		}
	case "delete":
		if pos, err = positional(fs, args[1:], 1, "connections delete ID"); err != nil {
			return err
		}
		run = func(b operatorBackend) error {
			if err := b.DeleteConnection(ctx, pos[0]); errors.Is(err, errNotFound) {
				return fmt.Errorf("connection %q not found", pos[0])
			} else if err != nil {
				return err
			}
			return nil
		}
	default:
		return usagef("usage: taskgate %s", usageConnections)
	}
	return e.withBackend(*server, run)
}

// parseConnection reads `connections add`.
func parseConnection(fs *flag.FlagSet, args []string) (workload.Connection, error) {
	connType := fs.String("conn-type", "", "connection type (required)")
	opt := map[string]*string{}
	for _, name := range []string{"host", "login", "password", "schema", "extra", "port"} {
		opt[name] = fs.String(name, "", name)
	}
	const usage = "connections add ID --conn-type T [--host --port --login --password --schema --extra JSON]"
	pos, err := positional(fs, args, 1, usage)
	if err != nil {
		return workload.Connection{}, err
	}
	if *connType == "" {
		return workload.Connection{}, usagef("usage: taskgate %s", usage)
	}
	c := workload.Connection{ConnID: pos[0], ConnType: *connType}
	set := func(name string) *string {
		if v := *opt[name]; v != "" {
			return &v
		}
		return nil
	}
	c.Host, c.Login, c.Password, c.Schema, c.Extra = set("host"), set("login"), set("password"), set("schema"), set("extra")
	if c.Extra != nil && !json.Valid([]byte(*c.Extra)) {
		return c, usagef("connections add: --extra must be JSON")
	}
	if p := *opt["port"]; p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 65535 {
			return c, usagef("connections add: --port must be 0..65535")
		}
		c.Port = &n
	}
	return c, nil
}

// ----- tasks

const usageTasks = "tasks list [--dag-id D] [--run-id R] [--state S] | mark DAG_ID RUN_ID TASK_ID [--map-index N] --state failed|success|skipped  [--server URL]"

func taskRows(tis []workload.TaskInstance) [][]string {
	rows := make([][]string, 0, len(tis))
	for _, ti := range tis {
		rows = append(rows, []string{ti.DagID, ti.RunID, ti.TaskID, strconv.Itoa(ti.MapIndex),
			strconv.Itoa(ti.TryNumber), string(ti.State), formatTime(ti.StartDate), formatTime(ti.EndDate), ti.ID})
	}
	return rows
}

const taskHeader = "DAG_ID\tRUN_ID\tTASK_ID\tMAP_INDEX\tTRY\tSTATE\tSTART\tEND\tID"

// tasks list|mark.
func (e *cliEnv) tasks(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("usage: taskgate %s", usageTasks)
	}
	fs, server := e.subcommand("tasks " + args[0])
	var run func(b operatorBackend) error
	switch args[0] {
	case "list":
		var f workload.TaskInstanceFilter
		fs.StringVar(&f.DagID, "dag-id", "", "only this dag")
		fs.StringVar(&f.RunID, "run-id", "", "only this dag run")
		state := fs.String("state", "", "only task instances in this state")
		if _, err := positional(fs, args[1:], 0, "tasks list [--dag-id D] [--run-id R] [--state S]"); err != nil {
			return err
		}
		f.State = workload.State(*state)
		run = func(b operatorBackend) error {
			tis, err := b.TaskInstances(ctx, f)
			if err != nil {
				return err
			}
			return table(e.stdout, taskHeader, taskRows(tis))
		}
	case "mark":
		mapIndex := fs.Int("map-index", -1, "map index (-1 for an unmapped task)")
		state := fs.String("state", "", "failed, success or skipped (required)")
		const usage = "tasks mark DAG_ID RUN_ID TASK_ID [--map-index N] --state failed|success|skipped"
		pos, err := positional(fs, args[1:], 3, usage)
		if err != nil {
			return err
		}
		s := workload.State(*state)
		switch s {
		case workload.StateFailed, workload.StateSuccess, workload.StateSkipped:
		default:
			return usagef("usage: taskgate %s", usage)
		}
		if *mapIndex < -1 {
			return usagef("tasks mark: --map-index must be -1 or more")
		}
		run = func(b operatorBackend) error {
			ti, err := b.MarkTaskInstance(ctx, pos[0], pos[1], pos[2], *mapIndex, s)
			if errors.Is(err, errNotFound) {
				return fmt.Errorf("task instance %s/%s/%s (map index %d) not found", pos[0], pos[1], pos[2], *mapIndex)
			} else if err != nil {
				return err
			}
			return table(e.stdout, taskHeader, taskRows([]workload.TaskInstance{*ti}))
		}
	default:
		return usagef("usage: taskgate %s", usageTasks)
	}
	return e.withBackend(*server, run)
}

// ----- users

const usageUsers = "users add NAME --role admin|op|viewer [--password-stdin] | list | remove NAME  [--server URL]"

// users add|list|remove.
func (e *cliEnv) users(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("usage: taskgate %s", usageUsers)
	}
	fs, server := e.subcommand("users " + args[0])
	var run func(b operatorBackend) error
	switch args[0] {
	case "add":
		roleFlag := fs.String("role", "", "admin, op or viewer (required)")
		fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
		const usage = "users add NAME --role admin|op|viewer [--password-stdin]"
		pos, err := positional(fs, args[1:], 1, usage)
		if err != nil {
			return err
		}
		role, err := auth.ParseRole(*roleFlag)
		if err != nil {
			return usagef("usage: taskgate %s", usage)
		}
		if err := auth.ValidUserName(pos[0]); err != nil {
			return usagef("users add: %v", err)
		}
		// The backend is opened first: no password is asked for that
		// could not be stored.
		run = func(b operatorBackend) error {
			pw, err := e.readPassword(bufio.NewReader(e.stdin), *fromStdin, true)
			if err != nil {
				return err
			}
			if err := b.AddUser(ctx, pos[0], role, pw); errors.Is(err, errExists) {
				return fmt.Errorf("user %q already exists", pos[0])
			} else if err != nil {
				return err
			}
			return nil
		}
	case "list":
		if _, err := positional(fs, args[1:], 0, "users list"); err != nil {
			return err
		}
		run = func(b operatorBackend) error {
			us, err := b.Users(ctx)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(us))
			for _, u := range us {
				rows = append(rows, []string{u.Name, string(u.Role), formatTime(&u.CreatedAt)})
			}
			return table(e.stdout, "NAME\tROLE\tCREATED", rows)
		}
	case "remove":
		pos, err := positional(fs, args[1:], 1, "users remove NAME")
		if err != nil {
			return err
		}
		run = func(b operatorBackend) error {
			if err := b.RemoveUser(ctx, pos[0]); errors.Is(err, errNotFound) {
				return fmt.Errorf("user %q not found", pos[0])
			} else if err != nil {
				return err
			}
			return nil
		}
	default:
		return usagef("usage: taskgate %s", usageUsers)
	}
	return e.withBackend(*server, run)
}

// readPassword reads a password: the first line of standard input with
// --password-stdin, else from a prompt when standard input is a terminal.
// Without golang.org/x/term the prompt cannot turn echo off, and says so.
func (e *cliEnv) readPassword(in *bufio.Reader, fromStdin, confirm bool) (string, error) {
	if fromStdin {
		pw, err := readLine(in)
		if err != nil {
			return "", fmt.Errorf("read the password from standard input: %w", err)
		}
		return pw, nil
	}
	if !isTerminal(e.stdin) {
		return "", usagef("standard input is not a terminal: pass the password on it with --password-stdin")
	}
	fmt.Fprint(e.stderr, "Password (typing is visible; --password-stdin avoids that): ")
	pw, err := readLine(in)
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	if confirm {
		fmt.Fprint(e.stderr, "Repeat the password: ")
		again, err := readLine(in)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		if again != pw {
			return "", errors.New("the passwords differ")
		}
	}
	return pw, nil
}

// readLine reads one line without its line ending. Nothing at all is an
// error: an empty password is never what was meant.
func readLine(in *bufio.Reader) (string, error) {
	line, err := in.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no input")
		}
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), nil
}

// isTerminal reports whether r is an interactive terminal: a character
// device other than the null device.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

// ----- tokens

const usageTokens = "tokens revoke JTI [--exp RFC3339]  [--server URL]"

// tokens revoke: revoke a token — REST, task (execution or workload) or
// component — by its jti.
func (e *cliEnv) tokensCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "revoke" {
		return usagef("usage: taskgate %s", usageTokens)
	}
	fs, server := e.subcommand("tokens revoke")
	expFlag := fs.String("exp", "", "the token's expiry (RFC 3339); default: the longest token lifetime from now")
	pos, err := positional(fs, args[1:], 1, usageTokens)
	if err != nil {
		return err
	}
	if jti := pos[0]; strings.TrimSpace(jti) == "" || len(jti) > 128 {
		return usagef("tokens revoke: the jti must be 1 to 128 characters")
	}
	var exp *time.Time
	if *expFlag != "" {
		t, err := time.Parse(time.RFC3339, *expFlag)
		if err != nil {
			return usagef("tokens revoke: --exp: %v", err)
		}
		exp = &t
	}
	return e.withBackend(*server, func(b operatorBackend) error { return b.Revoke(ctx, pos[0], exp) })
}

// ----- components

const usageComponents = "components register triggerer|dag-processor NAME --token-file PATH | list | remove ID  [--server URL]"

// components register|list|remove.
func (e *cliEnv) componentsCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("usage: taskgate %s", usageComponents)
	}
	fs, server := e.subcommand("components " + args[0])
	var run func(b operatorBackend) error
	switch args[0] {
	case "register":
		tokenFile := fs.String("token-file", "", "where to write the component's token (mode 0600; required)")
		const usage = "components register triggerer|dag-processor NAME --token-file PATH"
		pos, err := positional(fs, args[1:], 2, usage)
		if err != nil {
			return err
		}
		kind, err := auth.ParseComponentKind(pos[0])
		if err != nil || *tokenFile == "" {
			return usagef("usage: taskgate %s", usage)
		}
		run = func(b operatorBackend) error {
			out, err := atomicfile.Prepare(*tokenFile)
			if err != nil {
				return err
			}
			defer out.Abort()
			comp, tok, err := b.RegisterComponent(ctx, kind, pos[1])
			if errors.Is(err, errExists) {
				return fmt.Errorf("a %s named %q is already registered", kind, pos[1])
			} else if err != nil {
				return err
			}
			if err := out.Commit([]byte(tok)); err != nil {
				return fmt.Errorf("component %s is registered but its token was not saved (%w): "+
					"remove it with `taskgate components remove %s` and register it again", comp.ID, err, comp.ID)
			}
			fmt.Fprintln(e.stdout, comp.ID)
			return nil
		}
	case "list":
		if _, err := positional(fs, args[1:], 0, "components list"); err != nil {
			return err
		}
		run = func(b operatorBackend) error {
			cs, err := b.Components(ctx)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(cs))
			for _, c := range cs {
				rows = append(rows, []string{c.ID, string(c.Kind), c.Name, formatTime(&c.CreatedAt)})
			}
			return table(e.stdout, "ID\tKIND\tNAME\tCREATED", rows)
		}
	case "remove":
		pos, err := positional(fs, args[1:], 1, "components remove ID")
		if err != nil {
			return err
		}
		run = func(b operatorBackend) error {
			if err := b.RemoveComponent(ctx, pos[0]); errors.Is(err, errNotFound) {
				return fmt.Errorf("component %q not found", pos[0])
			} else if err != nil {
				return err
			}
			return nil
		}
	default:
		return usagef("usage: taskgate %s", usageComponents)
	}
	return e.withBackend(*server, run)
}

// ----- login and logout

const usageLogin = "login --server URL [--username NAME] [--password-stdin]"

// login exchanges a user name and password for a CLI token (POST
// /auth/token/cli) and stores it with the server's URL.
func (e *cliEnv) login(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	e.global.bind(fs)
	server := fs.String("server", "", "URL of the taskgate server (default: the one logged in to)")
	username := fs.String("username", "", "user name (default: asked for)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	if _, err := positional(fs, args, 0, usageLogin); err != nil {
		return err
	}
	path, err := e.credentialsPath()
	if err != nil {
		return err
	}
	if *server == "" {
		// Logging in again to the same server needs no --server.
		if creds, err := loadCredentials(path); err == nil && creds != nil {
			*server = creds.Server
		} else {
			return usagef("usage: taskgate %s", usageLogin)
		}
	}
	srv, err := normalizeServer(*server)
	if err != nil {
		return err
	}
	in := bufio.NewReader(e.stdin)
	if *username == "" {
		if *fromStdin || !isTerminal(e.stdin) {
			return usagef("login: --username is required when the password comes from standard input")
		}
		fmt.Fprint(e.stderr, "Username: ")
		if *username, err = readLine(in); err != nil {
			return fmt.Errorf("read the user name: %w", err)
		}
	}
	if u, _ := url.Parse(srv); u.Scheme == "http" && !isLoopback(u.Hostname()) {
		fmt.Fprintf(e.stderr, "taskgate: warning: %s is plain HTTP; the password and the token cross the network unencrypted\n", srv)
	}
	pw, err := e.readPassword(in, *fromStdin, false)
	if err != nil {
		return err
	}
	api := newAPIClient(srv, "", "")
	var out struct {
		AccessToken string `json:"access_token"`
	}
	err = api.do(ctx, http.MethodPost, "/auth/token/cli", nil, map[string]string{"username": *username, "password": pw}, &out)
	var aerr *apiError
	switch {
	case errors.As(err, &aerr) && aerr.Status == http.StatusUnauthorized:
		return errors.New("login refused: invalid username or password")
	case err != nil:
		return err
	case out.AccessToken == "":
		return fmt.Errorf("%s answered the login without a token", srv)
	}
	if err := saveCredentials(path, credentials{Server: srv, Token: out.AccessToken}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Logged in to %s as %s.\n", srv, *username)
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// logout revokes the token on its server (POST /auth/logout) and deletes
// the credentials file. A token the server already refuses is as good as
// revoked; a server that cannot be reached keeps the file, so that logout
// can be retried: deleting it would leave a live token nobody can revoke.
func (e *cliEnv) logout(ctx context.Context, args []string) error {
	flags := flag.NewFlagSet("logout", flag.ContinueOnError)
	e.global.bind(flags)
	server := flags.String("server", "", "the server (with "+envToken+"; default: the one logged in to)")
	if _, err := positional(flags, args, 0, "logout [--server URL]"); err != nil {
		return err
	}
	api, err := e.remote(*server)
	if err != nil {
		return err
	}
	if api == nil {
		return errors.New("not logged in")
	}
	err = api.do(ctx, http.MethodPost, "/auth/logout", nil, nil, nil)
	var aerr *apiError
	switch {
	case errors.As(err, &aerr) && aerr.Status == http.StatusUnauthorized:
		fmt.Fprintf(e.stderr, "taskgate: the server no longer accepted the token (%s)\n", aerr.Detail)
	case err != nil && api.source != envToken:
		return fmt.Errorf("%w; the token was not revoked and is kept (%s): run logout again once the server answers", err, api.source)
	case err != nil:
		return err
	}
	if api.source != envToken {
		path, err := e.credentialsPath()
		if err != nil {
			return err
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete the credentials: %w", err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "Logged out of %s.\n", api.server)
	return nil
}

// ----- the admin API client

// apiClient calls a taskgate server's REST API with a REST token. It never
// puts the token in an error message.
type apiClient struct {
	server string // scheme://host[:port][/prefix], no trailing slash
	token  string
	source string // where the token came from, for messages
	hc     *http.Client
}

// maxAPIResponse bounds a response read into memory.
const maxAPIResponse = 32 << 20

func newAPIClient(server, token, source string) *apiClient {
	return &apiClient{server: server, token: token, source: source, hc: &http.Client{
		Timeout: time.Minute,
		// A redirect is reported, not followed: a token is sent to the
		// URL it was issued for and nowhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// apiError is a non-2xx answer of the server.
type apiError struct {
	Method, Path string
	Status       int
	Detail       string
	msg          string
}

func (e *apiError) Error() string { return e.msg }

// Is lets callers match a 404 as errNotFound and a 409 as errExists.
func (e *apiError) Is(target error) bool {
	return target == errNotFound && e.Status == http.StatusNotFound ||
		target == errExists && e.Status == http.StatusConflict
}

// do sends in (JSON, when not nil) and decodes a 2xx answer into out (when
// not nil).
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := c.server + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "taskgate-cli")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIResponse))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.statusError(method, path, resp, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
		}
	}
	return nil
}

// statusError explains a non-2xx answer in terms of what to do about it.
func (c *apiClient) statusError(method, path string, resp *http.Response, data []byte) error {
	e := &apiError{Method: method, Path: path, Status: resp.StatusCode, Detail: detailOf(data)}
	switch s := resp.StatusCode; {
	case s == http.StatusUnauthorized:
		e.msg = fmt.Sprintf("%s refused the token from %s (%s): it expired or was revoked; run `taskgate login --server %s` again",
			c.server, c.source, e.Detail, c.server)
	case s == http.StatusForbidden:
		e.msg = fmt.Sprintf("%s %s: forbidden: your role does not allow this (%s)", method, path, e.Detail)
	case s == http.StatusTooManyRequests:
		e.msg = fmt.Sprintf("%s %s: %s (retry after %s s)", method, path, e.Detail, resp.Header.Get("Retry-After"))
	case s >= 300 && s < 400:
		e.msg = fmt.Sprintf("%s redirects to %q: use that URL with --server", c.server, resp.Header.Get("Location"))
	default:
		e.msg = fmt.Sprintf("%s %s: %d %s", method, path, s, e.Detail)
	}
	return e
}

// detailOf extracts the "detail" of an error body: a string as it is,
// anything else (FastAPI's validation list, a reason object) as JSON.
func detailOf(data []byte) string {
	var body struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(data, &body) == nil && len(body.Detail) > 0 {
		var s string
		if json.Unmarshal(body.Detail, &s) == nil {
			return s
		}
		return string(body.Detail)
	}
	text := strings.TrimSpace(string(data))
	if len(text) > 200 {
		text = text[:200] + "…"
	}
	return text
}

func (c *apiClient) close() error { return nil }

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// keyPath escapes a variable key, which may contain '/', segment by segment.
func keyPath(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// listAll pages through a list endpoint answering {"<field>": [...],
// "total_entries": N}.
func listAll[T any](ctx context.Context, c *apiClient, path, field string, query url.Values) ([]T, error) {
	const pageSize = 1000 // the API's largest limit
	if query == nil {
		query = url.Values{}
	}
	var out []T
	for {
		query.Set("limit", strconv.Itoa(pageSize))
		query.Set("offset", strconv.Itoa(len(out)))
		var page map[string]json.RawMessage
		if err := c.do(ctx, http.MethodGet, path, query, nil, &page); err != nil {
			return nil, err
		}
		var items []T
		if err := json.Unmarshal(page[field], &items); err != nil {
			return nil, fmt.Errorf("GET %s: decode %s: %w", path, field, err)
		}
		var total int
		if err := json.Unmarshal(page["total_entries"], &total); err != nil {
			return nil, fmt.Errorf("GET %s: decode total_entries: %w", path, err)
		}
		out = append(out, items...)
		if len(items) == 0 || len(out) >= total {
			return out, nil
		}
	}
}

func (c *apiClient) QueueWorkload(ctx context.Context, r workload.QueueRequest) (*workload.ExecuteTask, error) {
	body := map[string]any{"dag_id": r.DagID, "run_id": r.RunID, "task_id": r.TaskID, "map_index": r.MapIndex,
		"try_number": r.TryNumber, "max_tries": r.MaxTries}
	if r.DagRelPath != "" {
		body["dag_rel_path"] = r.DagRelPath
	}
	var w workload.ExecuteTask
	if err := c.do(ctx, http.MethodPost, "/api/v2/workloads", nil, body, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// variableBody is the admin API's variable.
type variableBody struct {
	Key         string  `json:"key"`
	Value       *string `json:"value"`
	Description *string `json:"description,omitempty"`
}

// PutVariable creates the variable, or replaces it when it exists, as the
// data directory's `variables set` does.
func (c *apiClient) PutVariable(ctx context.Context, v workload.Variable) error {
	body := variableBody{Key: v.Key, Value: v.Value, Description: v.Description}
	err := c.do(ctx, http.MethodPost, "/api/v2/variables", nil, body, nil)
	if errors.Is(err, errExists) {
		err = c.do(ctx, http.MethodPatch, "/api/v2/variables/"+keyPath(v.Key), nil, body, nil)
	}
	return err
}

func (c *apiClient) Variable(ctx context.Context, key string) (*workload.Variable, error) {
	var v variableBody
	if err := c.do(ctx, http.MethodGet, "/api/v2/variables/"+keyPath(key), nil, nil, &v); err != nil {
		return nil, err
	}
	return &workload.Variable{Key: v.Key, Value: v.Value, Description: v.Description}, nil
}

func (c *apiClient) Variables(ctx context.Context) ([]workload.Variable, error) {
	vs, err := listAll[variableBody](ctx, c, "/api/v2/variables", "variables", nil)
	if err != nil {
		return nil, err
	}
	out := make([]workload.Variable, len(vs))
	for i, v := range vs {
		out[i] = workload.Variable{Key: v.Key, Value: v.Value, Description: v.Description}
	}
	return out, nil
}

func (c *apiClient) DeleteVariable(ctx context.Context, key string) error {
	return c.do(ctx, http.MethodDelete, "/api/v2/variables/"+keyPath(key), nil, nil, nil)
}

// connectionBody is the admin API's connection.
type connectionBody struct {
	ConnectionID string  `json:"connection_id"`
	ConnType     string  `json:"conn_type"`
	Host         *string `json:"host,omitempty"`
	Port         *int    `json:"port,omitempty"`
	Login        *string `json:"login,omitempty"`
	Password     *string `json:"password,omitempty"`
	Schema       *string `json:"schema,omitempty"`
	Extra        *string `json:"extra,omitempty"`
}

func (b connectionBody) connection() workload.Connection {
	return workload.Connection{ConnID: b.ConnectionID, ConnType: b.ConnType, Host: b.Host, Port: b.Port,
		Login: b.Login, Password: b.Password, Schema: b.Schema, Extra: b.Extra}
}

// PutConnection creates the connection, or replaces it when it exists, as
// the data directory's `connections add` does.
func (c *apiClient) PutConnection(ctx context.Context, conn workload.Connection) error {
	body := connectionBody{ConnectionID: conn.ConnID, ConnType: conn.ConnType, Host: conn.Host, Port: conn.Port,
		Login: conn.Login, Password: conn.Password, Schema: conn.Schema, Extra: conn.Extra}
	err := c.do(ctx, http.MethodPost, "/api/v2/connections", nil, body, nil)
	if errors.Is(err, errExists) {
		err = c.do(ctx, http.MethodPatch, "/api/v2/connections/"+seg(conn.ConnID), nil, body, nil)
	}
	return err
}

func (c *apiClient) Connection(ctx context.Context, id string) (*workload.Connection, error) {
	var b connectionBody
	if err := c.do(ctx, http.MethodGet, "/api/v2/connections/"+seg(id), nil, nil, &b); err != nil {
		return nil, err
	}
	conn := b.connection()
	return &conn, nil
}

func (c *apiClient) Connections(ctx context.Context) ([]workload.Connection, error) {
	bs, err := listAll[connectionBody](ctx, c, "/api/v2/connections", "connections", nil)
	if err != nil {
		return nil, err
	}
	out := make([]workload.Connection, len(bs))
	for i, b := range bs {
		out[i] = b.connection()
	}
	return out, nil
}

func (c *apiClient) DeleteConnection(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v2/connections/"+seg(id), nil, nil, nil)
}

// taskInstanceBody is the part of the admin API's task instance the CLI
// prints.
type taskInstanceBody struct {
	ID        string         `json:"id"`
	TaskID    string         `json:"task_id"`
	DagID     string         `json:"dag_id"`
	DagRunID  string         `json:"dag_run_id"`
	MapIndex  int            `json:"map_index"`
	TryNumber int            `json:"try_number"`
	MaxTries  int            `json:"max_tries"`
	State     workload.State `json:"state"`
	StartDate *time.Time     `json:"start_date"`
	EndDate   *time.Time     `json:"end_date"`
}

func (b taskInstanceBody) taskInstance() workload.TaskInstance {
	return workload.TaskInstance{ID: b.ID, DagID: b.DagID, RunID: b.DagRunID, TaskID: b.TaskID, MapIndex: b.MapIndex,
		TryNumber: b.TryNumber, MaxTries: b.MaxTries, State: b.State, StartDate: b.StartDate, EndDate: b.EndDate}
}

// tisPath is Airflow's task-instance collection; "~" stands for any dag or
// run.
func tisPath(dagID, runID string) string {
	if dagID == "" {
		dagID = "~"
	}
	if runID == "" {
		runID = "~"
	}
	return "/api/v2/dags/" + seg(dagID) + "/dagRuns/" + seg(runID) + "/taskInstances"
}

func (c *apiClient) TaskInstances(ctx context.Context, f workload.TaskInstanceFilter) ([]workload.TaskInstance, error) {
	q := url.Values{}
	if f.State != "" {
		q.Set("state", string(f.State))
	}
	bs, err := listAll[taskInstanceBody](ctx, c, tisPath(f.DagID, f.RunID), "task_instances", q)
	if err != nil {
		return nil, err
	}
	out := make([]workload.TaskInstance, len(bs))
	for i, b := range bs {
		out[i] = b.taskInstance()
	}
	return out, nil
}

func (c *apiClient) MarkTaskInstance(ctx context.Context, dagID, runID, taskID string, mapIndex int, s workload.State) (*workload.TaskInstance, error) {
	var b taskInstanceBody
	q := url.Values{"map_index": {strconv.Itoa(mapIndex)}}
	err := c.do(ctx, http.MethodPatch, tisPath(dagID, runID)+"/"+seg(taskID), q, map[string]string{"new_state": string(s)}, &b)
	if err != nil {
		return nil, err
	}
	ti := b.taskInstance()
	return &ti, nil
}

// userBody is the admin API's user.
type userBody struct {
	Name      string    `json:"username"`
	Role      auth.Role `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

func (c *apiClient) AddUser(ctx context.Context, name string, role auth.Role, password string) error {
	if n := len(password); n < auth.MinPasswordLen || n > auth.MaxPasswordLen {
		return fmt.Errorf("the password must be %d to %d bytes long, not %d", auth.MinPasswordLen, auth.MaxPasswordLen, n)
	}
	body := map[string]string{"username": name, "password": password, "role": string(role)}
	return c.do(ctx, http.MethodPost, "/api/v2/users", nil, body, nil)
}

func (c *apiClient) Users(ctx context.Context) ([]auth.User, error) {
	var page struct {
		Users []userBody `json:"users"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v2/users", nil, nil, &page); err != nil {
		return nil, err
	}
	out := make([]auth.User, len(page.Users))
	for i, u := range page.Users {
		out[i] = auth.User{Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt}
	}
	return out, nil
}

func (c *apiClient) RemoveUser(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v2/users/"+seg(name), nil, nil, nil)
}

func (c *apiClient) Revoke(ctx context.Context, jti string, exp *time.Time) error {
	body := map[string]string{"jti": jti}
	if exp != nil {
		body["exp"] = exp.UTC().Format(time.RFC3339)
	}
	return c.do(ctx, http.MethodPost, "/api/v2/tokens/revoke", nil, body, nil)
}

func (c *apiClient) RegisterComponent(ctx context.Context, kind auth.ComponentKind, name string) (*auth.Component, string, error) {
	var out struct {
		auth.Component
		Token string `json:"token"`
	}
	body := map[string]string{"kind": string(kind), "name": name}
	if err := c.do(ctx, http.MethodPost, "/api/v2/components", nil, body, &out); err != nil {
		return nil, "", err
	}
	if out.ID == "" || out.Token == "" {
		return nil, "", fmt.Errorf("%s registered the component without returning its id and token", c.server)
	}
	return &out.Component, out.Token, nil
}

func (c *apiClient) Components(ctx context.Context) ([]auth.Component, error) {
	var page struct {
		Components []auth.Component `json:"components"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v2/components", nil, nil, &page); err != nil {
		return nil, err
	}
	return page.Components, nil
}

func (c *apiClient) RemoveComponent(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v2/components/"+seg(id), nil, nil, nil)
}

// ----- the data directory

// localBackend works on the data directory while no server holds it.
type localBackend struct {
	cfg    *config.Config
	signer *tokens.Signer
	db     *store.DB
	now    func() time.Time
}

// local maps the domain's not-found and exists errors to the CLI's.
func local(err error) error {
	switch {
	case errors.Is(err, workload.ErrNotFound), errors.Is(err, auth.ErrNotFound):
		return fmt.Errorf("%w: %w", errNotFound, err)
	case errors.Is(err, auth.ErrExists):
		return fmt.Errorf("%w: %w", errExists, err)
	}
	return err
}

func (b *localBackend) close() error { return b.db.Close() }

func (b *localBackend) QueueWorkload(ctx context.Context, r workload.QueueRequest) (*workload.ExecuteTask, error) {
	ti, err := workload.Queue(ctx, b.db, newID(), r, b.now())
	if err != nil {
		return nil, err
	}
	tok, _, err := b.signer.Sign(&scopes.Claims{Subject: ti.ID, Scope: string(scopes.Workload)}, b.cfg.WorkloadTokenLifetime)
	if err != nil {
		return nil, err
	}
	w := workload.NewExecuteTask(ti, tok)
	return &w, nil
}

func (b *localBackend) PutVariable(ctx context.Context, v workload.Variable) error {
	return b.db.PutVariable(ctx, v)
}

func (b *localBackend) Variable(ctx context.Context, key string) (*workload.Variable, error) {
	v, err := b.db.Variable(ctx, key)
	return v, local(err)
}

func (b *localBackend) Variables(ctx context.Context) ([]workload.Variable, error) {
	return b.db.ListVariables(ctx)
}

func (b *localBackend) DeleteVariable(ctx context.Context, key string) error {
	if _, err := b.db.Variable(ctx, key); err != nil {
		return local(err)
	}
	return b.db.DeleteVariable(ctx, key)
}

func (b *localBackend) PutConnection(ctx context.Context, c workload.Connection) error {
	return b.db.PutConnection(ctx, c)
}

func (b *localBackend) Connection(ctx context.Context, id string) (*workload.Connection, error) {
	c, err := b.db.Connection(ctx, id)
	if err != nil {
		return nil, local(err)
	}
	if c.Password != nil {
		p := redactedPassword
		c.Password = &p
	}
	return c, nil
}

func (b *localBackend) Connections(ctx context.Context) ([]workload.Connection, error) {
	return b.db.ListConnections(ctx)
}

func (b *localBackend) DeleteConnection(ctx context.Context, id string) error {
	if _, err := b.db.Connection(ctx, id); err != nil {
		return local(err)
	}
	return b.db.DeleteConnection(ctx, id)
}

func (b *localBackend) TaskInstances(ctx context.Context, f workload.TaskInstanceFilter) ([]workload.TaskInstance, error) {
	tis, _, err := b.db.TaskInstances(ctx, f)
	return tis, err
}

func (b *localBackend) MarkTaskInstance(ctx context.Context, dagID, runID, taskID string, mapIndex int, s workload.State) (*workload.TaskInstance, error) {
	tis, _, err := b.db.TaskInstances(ctx, workload.TaskInstanceFilter{DagID: dagID, RunID: runID, TaskID: taskID, MapIndex: &mapIndex})
	if err != nil {
		return nil, err
	}
	if len(tis) == 0 {
		return nil, errNotFound
	}
	now := b.now()
	ti, err := b.db.UpdateTaskInstance(ctx, tis[0].ID, func(ti *workload.TaskInstance) error {
		return workload.ForceState(ti, s, now)
	})
	return ti, local(err)
}

func (b *localBackend) AddUser(ctx context.Context, name string, role auth.Role, password string) error {
	u, err := auth.NewUser(name, role, password, b.cfg.BcryptCost, b.now())
	if err != nil {
		return err
	}
	return local(b.db.AddUser(ctx, u))
}

func (b *localBackend) Users(ctx context.Context) ([]auth.User, error) { return b.db.Users(ctx) }

// RemoveUser removes the user as the admin API does: the task instances
// they queued that are still queued are withdrawn and the components they
// registered removed, in the same write.
func (b *localBackend) RemoveUser(ctx context.Context, name string) error {
	_, err := b.db.RemoveUser(ctx, name, b.now())
	return local(err)
}

// Revoke applies the admin API's rule (auth.RevocationUntil) to the data
// directory: the same default, the same refusal of an exp already past.
func (b *localBackend) Revoke(ctx context.Context, jti string, exp *time.Time) error {
	longest := max(b.cfg.APITokenLifetime, b.cfg.APICLITokenLifetime, b.cfg.ExecutionTokenLifetime, b.cfg.WorkloadTokenLifetime)
	until, err := auth.RevocationUntil(exp, b.now(), longest)
	if err != nil {
		return err
	}
	return b.db.Revoke(ctx, jti, until)
}

// RegisterComponent stores the component and mints its token as the admin
// API does: an execution token whose sub is the component's id, marked by
// the component claim.
func (b *localBackend) RegisterComponent(ctx context.Context, kind auth.ComponentKind, name string) (*auth.Component, string, error) {
	comp, err := auth.NewComponent(kind, name, "", b.now())
	if err != nil {
		return nil, "", err
	}
	if err := b.db.AddComponent(ctx, comp); err != nil {
		return nil, "", local(err)
	}
	tok, _, err := b.signer.Sign(&scopes.Claims{
		Subject: comp.ID, Scope: string(scopes.Execution), Extra: map[string]any{scopes.ComponentClaim: string(kind)},
	}, b.cfg.ExecutionTokenLifetime)
	if err != nil {
		// Without a token the registration is of no use to anyone.
		return nil, "", errors.Join(err, b.db.DeleteComponent(ctx, comp.ID))
	}
	return &comp, tok, nil
}

func (b *localBackend) Components(ctx context.Context) ([]auth.Component, error) {
	return b.db.Components(ctx)
}

func (b *localBackend) RemoveComponent(ctx context.Context, id string) error {
	canon, ok := scopes.CanonicalUUID(id)
	if !ok {
		return errNotFound
	}
	return local(b.db.DeleteComponent(ctx, canon))
}
