package cli

// What the operator commands share: the credentials file `taskgate login`
// writes, and the backend every provisioning command (workloads, variables,
// connections, tasks, users, tokens, components) works on.
//
// A provisioning command works through the admin API (/api/v2) of a running
// server when one is configured — credentials stored by `taskgate login`, or
// --server URL with TASKGATE_TOKEN — and on the data directory otherwise. A
// running server locks its bbolt file, so going through the server is the
// only way to change anything while it runs, and the server applies its role
// checks. The data directory remains the way to bootstrap: the first admin is
// created there before any server runs.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/config"
	"github.com/taskgate/taskgate/gateway"
	"github.com/taskgate/taskgate/internal/atomicfile"
	"github.com/taskgate/taskgate/operator"
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

// operatorBackend is what the provisioning commands run on: the operator
// use cases of the admin API (apiClient) or of the data directory
// (offlineBackend), so that each command parses and prints in one place
// whichever it uses. Missing records give errors matching errNotFound,
// taken names errExists.
type operatorBackend interface {
	operator.Service
	close() error
}

var (
	errNotFound = operator.ErrNotFound
	errExists   = operator.ErrExists
)

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
// else the store itself (the data directory, or Airflow's database).
func (e *cliEnv) open(server string) (operatorBackend, error) {
	api, err := e.remote(server)
	if err != nil || api != nil {
		return api, err
	}
	cfg, signer, keys, db, err := e.offline(context.Background())
	if err != nil {
		return nil, err
	}
	b, err := newOfflineBackend(cfg, signer, keys, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

// newOfflineBackend runs the operator use cases on the open store db,
// minting tokens with signer and changing the signing keys through keys.
func newOfflineBackend(cfg *config.Config, signer operator.Signer, keys *tokens.Manager, db storage) (offlineBackend, error) {
	ops, err := operator.New(operator.Config{
		// The store itself records revocations. No server runs on the
		// data directory (it would hold its lock); servers on a shared
		// database read them from it (replicaBound).
		Store: db, Identities: db, Revoker: db, Signer: signer, Keys: keyAdmin{keys},
		WorkloadTokenLifetime: cfg.WorkloadTokenLifetime, ComponentTokenLifetime: cfg.ExecutionTokenLifetime,
		APITokenLifetime: cfg.APITokenLifetime, CLITokenLifetime: cfg.APICLITokenLifetime,
		BcryptCost: cfg.BcryptCost, NewID: newID, Now: time.Now,
	})
	if err != nil {
		return offlineBackend{}, err
	}
	return offlineBackend{Operations: ops, db: db}, nil
}

// offlineBackend runs the operator use cases on the data directory while
// no server holds it, or on Airflow's database beside the servers.
type offlineBackend struct {
	*operator.Operations
	db storage
}

func (b offlineBackend) close() error { return b.db.Close() }

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

// ----- the admin API client

// apiClient calls a taskgate server's REST API with a REST token: the
// operator use cases over the admin API. It never puts the token in an
// error message.
type apiClient struct {
	server string // scheme://host[:port][/prefix], no trailing slash
	token  string
	source string // where the token came from, for messages
	hc     *http.Client
}

var _ operator.Service = (*apiClient)(nil)

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

// Is matches the server's refusals as the operator use cases' own: a 404
// as operator.ErrNotFound, a 409 as operator.ErrExists, and a 400 or 422
// (input a rule or the request's validation refused) as
// operator.ErrInvalid.
func (e *apiError) Is(target error) bool {
	switch target {
	case operator.ErrNotFound:
		return e.Status == http.StatusNotFound
	case operator.ErrExists:
		return e.Status == http.StatusConflict
	case operator.ErrInvalid:
		return e.Status == http.StatusBadRequest || e.Status == http.StatusUnprocessableEntity
	}
	return false
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

// CreateVariable is POST /api/v2/variables.
func (c *apiClient) CreateVariable(ctx context.Context, v workload.Variable) error {
	body := variableBody{Key: v.Key, Value: v.Value, Description: v.Description}
	return c.do(ctx, http.MethodPost, "/api/v2/variables", nil, body, nil)
}

// UpdateVariable is PATCH /api/v2/variables/{key}.
func (c *apiClient) UpdateVariable(ctx context.Context, v workload.Variable) error {
	body := variableBody{Key: v.Key, Value: v.Value, Description: v.Description}
	return c.do(ctx, http.MethodPatch, "/api/v2/variables/"+keyPath(v.Key), nil, body, nil)
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

func newConnectionBody(c workload.Connection) connectionBody {
	return connectionBody{ConnectionID: c.ConnID, ConnType: c.ConnType, Host: c.Host, Port: c.Port,
		Login: c.Login, Password: c.Password, Schema: c.Schema, Extra: c.Extra}
}

func (b connectionBody) connection() workload.Connection {
	return workload.Connection{ConnID: b.ConnectionID, ConnType: b.ConnType, Host: b.Host, Port: b.Port,
		Login: b.Login, Password: b.Password, Schema: b.Schema, Extra: b.Extra}
}

// PutConnection creates the connection, or replaces it when it exists, as
// the data directory's `connections add` does.
func (c *apiClient) PutConnection(ctx context.Context, conn workload.Connection) error {
	body := newConnectionBody(conn)
	err := c.do(ctx, http.MethodPost, "/api/v2/connections", nil, body, nil)
	if errors.Is(err, errExists) {
		err = c.do(ctx, http.MethodPatch, "/api/v2/connections/"+seg(conn.ConnID), nil, body, nil)
	}
	return err
}

// CreateConnection is POST /api/v2/connections.
func (c *apiClient) CreateConnection(ctx context.Context, conn workload.Connection) error {
	return c.do(ctx, http.MethodPost, "/api/v2/connections", nil, newConnectionBody(conn), nil)
}

// UpdateConnection is PATCH /api/v2/connections/{connection_id}.
func (c *apiClient) UpdateConnection(ctx context.Context, conn workload.Connection) (*workload.Connection, error) {
	var b connectionBody
	if err := c.do(ctx, http.MethodPatch, "/api/v2/connections/"+seg(conn.ConnID), nil, newConnectionBody(conn), &b); err != nil {
		return nil, err
	}
	stored := b.connection()
	return &stored, nil
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

// TaskInstances lists every match of f's dag, run and state (the admin
// API filters by no other field); the total is the number listed.
func (c *apiClient) TaskInstances(ctx context.Context, f workload.TaskInstanceFilter) ([]workload.TaskInstance, int, error) {
	q := url.Values{}
	if f.State != "" {
		q.Set("state", string(f.State))
	}
	bs, err := listAll[gateway.TaskInstanceBody](ctx, c, tisPath(f.DagID, f.RunID), "task_instances", q)
	if err != nil {
		return nil, 0, err
	}
	out := make([]workload.TaskInstance, len(bs))
	for i, b := range bs {
		out[i] = b.TaskInstance()
	}
	return out, len(out), nil
}

func (c *apiClient) MarkTaskInstance(ctx context.Context, dagID, runID, taskID string, mapIndex int, s workload.State) (*workload.TaskInstance, error) {
	var b gateway.TaskInstanceBody
	q := url.Values{"map_index": {strconv.Itoa(mapIndex)}}
	err := c.do(ctx, http.MethodPatch, tisPath(dagID, runID)+"/"+seg(taskID), q, map[string]string{"new_state": string(s)}, &b)
	if err != nil {
		return nil, err
	}
	ti := b.TaskInstance()
	return &ti, nil
}

// userBody is the admin API's user.
type userBody struct {
	Name      string    `json:"username"`
	Role      auth.Role `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

func (c *apiClient) AddUser(ctx context.Context, name string, role auth.Role, password string) (*auth.User, error) {
	if n := len(password); n < auth.MinPasswordLen || n > auth.MaxPasswordLen {
		return nil, fmt.Errorf("the password must be %d to %d bytes long, not %d", auth.MinPasswordLen, auth.MaxPasswordLen, n)
	}
	body := map[string]string{"username": name, "password": password, "role": string(role)}
	var u userBody
	if err := c.do(ctx, http.MethodPost, "/api/v2/users", nil, body, &u); err != nil {
		return nil, err
	}
	return &auth.User{Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt}, nil
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

// RemoveUser removes the user; the admin API does not say what the
// removal ended, so the Removal is empty.
func (c *apiClient) RemoveUser(ctx context.Context, name string) (*auth.Removal, error) {
	if err := c.do(ctx, http.MethodDelete, "/api/v2/users/"+seg(name), nil, nil, nil); err != nil {
		return nil, err
	}
	return &auth.Removal{}, nil
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

// MintDagProcessorSession is POST /api/v2/dag-processor-sessions.
func (c *apiClient) MintDagProcessorSession(ctx context.Context, r operator.DagProcessorSessionRequest) (*operator.DagProcessorSession, error) {
	body := map[string]any{"bundle_names": r.BundleNames}
	if r.SessionID != "" {
		body["session_id"] = r.SessionID
	}
	if r.ValidFor != 0 {
		body["valid_for"] = r.ValidFor.Seconds()
	}
	var out operator.DagProcessorSession
	if err := c.do(ctx, http.MethodPost, "/api/v2/dag-processor-sessions", nil, body, &out); err != nil {
		return nil, err
	}
	if out.SessionID == "" || out.Token == "" {
		return nil, fmt.Errorf("%s minted the session without returning its id and token", c.server)
	}
	return &out, nil
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

// ----- signing keys

type keysPage struct {
	Keys []operator.SigningKey `json:"keys"`
}

func (c *apiClient) Keys(ctx context.Context) ([]operator.SigningKey, error) {
	var page keysPage
	err := c.do(ctx, http.MethodGet, "/api/v2/keys", nil, nil, &page)
	return page.Keys, err
}

func (c *apiClient) RotateKey(ctx context.Context) ([]operator.SigningKey, error) {
	var page keysPage
	err := c.do(ctx, http.MethodPost, "/api/v2/keys/rotate", nil, nil, &page)
	return page.Keys, err
}

func (c *apiClient) RetireKey(ctx context.Context, kid string, force bool) ([]operator.SigningKey, error) {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	var page keysPage
	err := c.do(ctx, http.MethodDelete, "/api/v2/keys/"+seg(kid), q, nil, &page)
	return page.Keys, err
}

// QueueConnectionTest is POST /api/v2/connection-tests.
func (c *apiClient) QueueConnectionTest(ctx context.Context, r workload.ConnectionTestRequest) (*workload.TestConnection, error) {
	conn := r.Connection
	body := map[string]any{"connection_id": conn.ConnID, "conn_type": conn.ConnType, "host": conn.Host,
		"schema": conn.Schema, "login": conn.Login, "password": conn.Password, "port": conn.Port, "extra": conn.Extra,
		"commit_on_success": r.CommitOnSuccess}
	var w workload.TestConnection
	if err := c.do(ctx, http.MethodPost, "/api/v2/connection-tests", nil, body, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// QueueCallback is POST /api/v2/callbacks.
func (c *apiClient) QueueCallback(ctx context.Context, r workload.CallbackRequest) (*workload.ExecuteCallback, error) {
	body := map[string]any{"path": r.Path}
	if len(r.Kwargs) > 0 {
		body["kwargs"] = r.Kwargs
	}
	var w workload.ExecuteCallback
	if err := c.do(ctx, http.MethodPost, "/api/v2/callbacks", nil, body, &w); err != nil {
		return nil, err
	}
	return &w, nil
}
