// Package operator holds the operator use cases once: queueing a workload,
// variables and connections, marking task instances, users, revocations and
// component identities. The admin REST API (gateway) calls an Operations
// for each of them, and so does the CLI on a data directory; the CLI on a
// running server calls the admin API through a client that implements the
// same Service. A rule — which token a registration mints, what is undone
// when signing fails, how long a revocation is kept — is therefore written
// here only, and the two transports cannot disagree about it.
//
// The package declares the storage and the signer it needs (Store,
// Identities, Revoker, Signer) and knows no HTTP, bbolt or command line.
// Its refusals are *Error values of three kinds (ErrNotFound, ErrExists,
// ErrInvalid), which each transport maps to its own statuses or messages.
package operator

import (
	"context"
	"errors"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// Service is every operator use case. Operations implements it over
// storage; the CLI's admin API client implements it over HTTP.
//
// Refusals match ErrNotFound (a missing record), ErrExists (a taken name)
// or ErrInvalid (input a rule refuses) with errors.Is.
type Service interface {
	// QueueWorkload queues a task instance (creating its dag run if needed)
	// and returns its ExecuteTask workload with a workload token. The actor
	// of ctx (WithActor) is recorded as the queuer: removing that user
	// withdraws the task while it is still queued.
	QueueWorkload(ctx context.Context, r workload.QueueRequest) (*workload.ExecuteTask, error)

	// QueueConnectionTest queues a connection test for a worker and returns
	// its workload with the test's token (a workload token whose sub is the
	// test's id, as Airflow mints it).
	QueueConnectionTest(ctx context.Context, r workload.ConnectionTestRequest) (*workload.TestConnection, error)
	// QueueCallback queues a callback for a worker and returns its workload
	// with the callback's single-use token.
	QueueCallback(ctx context.Context, r workload.CallbackRequest) (*workload.ExecuteCallback, error)

	// PutVariable creates the variable or replaces it.
	PutVariable(ctx context.Context, v workload.Variable) error
	// CreateVariable creates the variable; ErrExists when the key is taken.
	CreateVariable(ctx context.Context, v workload.Variable) error
	// UpdateVariable replaces the variable; ErrNotFound when there is none.
	UpdateVariable(ctx context.Context, v workload.Variable) error
	Variable(ctx context.Context, key string) (*workload.Variable, error)
	Variables(ctx context.Context) ([]workload.Variable, error)
	// DeleteVariable removes the variable; ErrNotFound when there is none.
	DeleteVariable(ctx context.Context, key string) error

	// PutConnection creates the connection or replaces it; replacing keeps
	// the stored password when the new one is RedactedPassword.
	PutConnection(ctx context.Context, c workload.Connection) error
	// CreateConnection creates the connection; ErrExists when the id is
	// taken.
	CreateConnection(ctx context.Context, c workload.Connection) error
	// UpdateConnection replaces the connection, keeping the stored password
	// when the new one is RedactedPassword, and returns what it stored
	// (password redacted); ErrNotFound when there is none.
	UpdateConnection(ctx context.Context, c workload.Connection) (*workload.Connection, error)
	// Connection and Connections return connections with their password,
	// if any, replaced by RedactedPassword.
	Connection(ctx context.Context, id string) (*workload.Connection, error)
	Connections(ctx context.Context) ([]workload.Connection, error)
	// DeleteConnection removes the connection; ErrNotFound when there is
	// none.
	DeleteConnection(ctx context.Context, id string) error

	// TaskInstances lists the current task instances matching f (paged by
	// f.Limit and f.Offset) and the number of all matches.
	TaskInstances(ctx context.Context, f workload.TaskInstanceFilter) ([]workload.TaskInstance, int, error)
	// MarkTaskInstance forces the current try at these coordinates to
	// success, failed or skipped (workload.ForceState).
	MarkTaskInstance(ctx context.Context, dagID, runID, taskID string, mapIndex int, s workload.State) (*workload.TaskInstance, error)

	// AddUser adds a REST user; ErrExists when the name is taken.
	AddUser(ctx context.Context, name string, role auth.Role, password string) (*auth.User, error)
	// Users lists the users by name.
	Users(ctx context.Context) ([]auth.User, error)
	// RemoveUser removes the user and, in the same write, what they
	// started that no worker owns (see auth.Store.RemoveUser).
	RemoveUser(ctx context.Context, name string) (*auth.Removal, error)

	// Revoke revokes a token (REST, task or component) by jti until exp;
	// nil exp means for the longest lifetime of any token taskgate mints.
	// An exp already past is refused (auth.RevocationUntil).
	Revoke(ctx context.Context, jti string, exp *time.Time) error

	// RegisterComponent registers a triggerer or DAG processor identity
	// and returns it with its token; a registration whose token cannot be
	// minted is undone.
	RegisterComponent(ctx context.Context, kind auth.ComponentKind, name string) (*auth.Component, string, error)
	// MintDagProcessorSession mints a DAG processor's session token (the
	// dag_processor_session token it exchanges at POST /execution/jobs for
	// its Job), as Airflow's trusted provisioning does. Nothing is stored:
	// minting again with the same session id renews the credential, and
	// the session's Job stays its own.
	MintDagProcessorSession(ctx context.Context, r DagProcessorSessionRequest) (*DagProcessorSession, error)
	// Components lists the components by kind, then name.
	Components(ctx context.Context) ([]auth.Component, error)
	// RemoveComponent removes the component: its tokens are no longer
	// renewed. ErrNotFound when there is none.
	RemoveComponent(ctx context.Context, id string) error

	// Keys lists the signing keys, the active one first.
	Keys(ctx context.Context) ([]SigningKey, error)
	// RotateKey makes a new key the active signing key; the previous one
	// keeps verifying until every token it signed has expired. It returns
	// the keys after the rotation.
	RotateKey(ctx context.Context) ([]SigningKey, error)
	// RetireKey drops a key that no longer signs. A key whose tokens may
	// still be valid is refused (ErrInvalid) unless force; the active key
	// always is. ErrNotFound for an unknown kid.
	RetireKey(ctx context.Context, kid string, force bool) ([]SigningKey, error)
}

// RedactedPassword is shown instead of a stored connection password: an
// operator reading connections is not handed every credential. Given back
// in an update, it keeps the stored password.
const RedactedPassword = "***"

// The kinds of refusal, matched with errors.Is.
var (
	// ErrNotFound: the record named does not exist.
	ErrNotFound = errors.New("operator: not found")
	// ErrExists: the name or key is taken; adding never overwrites.
	ErrExists = errors.New("operator: already exists")
	// ErrInvalid: a rule refuses the input.
	ErrInvalid = errors.New("operator: invalid input")
)

// Error is a refusal: Kind says which, for a transport to pick its status;
// Err is the refusing rule's own error, whose message (the rule's words,
// "auth: …", "workload: …") is the message shown to the operator. Field
// names the input refused, when one is.
type Error struct {
	Kind  error
	Field string
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap lets errors.Is match both the kind and the rule's own error
// (auth.ErrRevocationExpired, workload.ErrAlreadyExists, …).
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

func refuse(kind error, field string, err error) error {
	return &Error{Kind: kind, Field: field, Err: err}
}

// actorKey keys the acting REST user in a context.
type actorKey struct{}

// WithActor returns ctx carrying the name of the REST user acting: what
// they queue and register is theirs, and is ended when they are removed.
// Offline (the CLI on a data directory) there is no actor.
func WithActor(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, actorKey{}, user)
}

// ActorFrom returns the user WithActor put in ctx, or "".
func ActorFrom(ctx context.Context) string {
	s, _ := ctx.Value(actorKey{}).(string)
	return s
}

// Store is the task-instance, variable and connection storage the use
// cases need; store.DB implements it.
type Store interface {
	workload.Inserter
	TaskInstances(ctx context.Context, f workload.TaskInstanceFilter) ([]workload.TaskInstance, int, error)
	UpdateTaskInstance(ctx context.Context, id string, fn func(ti *workload.TaskInstance) error) (*workload.TaskInstance, error)

	Variable(ctx context.Context, key string) (*workload.Variable, error)
	ListVariables(ctx context.Context) ([]workload.Variable, error)
	PutVariable(ctx context.Context, v workload.Variable) error
	DeleteVariable(ctx context.Context, key string) error

	Connection(ctx context.Context, id string) (*workload.Connection, error)
	ListConnections(ctx context.Context) ([]workload.Connection, error)
	PutConnection(ctx context.Context, c workload.Connection) error
	DeleteConnection(ctx context.Context, id string) error

	InsertConnectionTest(ctx context.Context, ct workload.ConnectionTest) error
	InsertCallback(ctx context.Context, cb workload.Callback) error
}

// Identities stores users and components; auth.Store (store.DB) implements
// it.
type Identities interface {
	AddUser(ctx context.Context, u auth.User) error
	Users(ctx context.Context) ([]auth.User, error)
	RemoveUser(ctx context.Context, name string, now time.Time) (auth.Removal, error)

	AddComponent(ctx context.Context, c auth.Component) error
	Components(ctx context.Context) ([]auth.Component, error)
	DeleteComponent(ctx context.Context, id string) error
}

// Revoker records a revocation durably. A running server passes its
// *auth.Revocations, which also refuses the token from the next request
// on; offline, the store itself (no server holds the data directory).
type Revoker interface {
	Revoke(ctx context.Context, jti string, until time.Time) error
}

// Signer mints workload and component tokens (tokens.Signer).
type Signer interface {
	Sign(base *scopes.Claims, lifetime time.Duration) (string, *scopes.Claims, error)
}

// Config holds the dependencies and settings of Operations.
type Config struct {
	Store      Store
	Identities Identities
	Revoker    Revoker
	Signer     Signer
	// Keys changes the signing key set.
	Keys KeyManager
	// WorkloadTokenLifetime is the life of the workload tokens of queued
	// task instances, connection tests and callbacks.
	WorkloadTokenLifetime time.Duration
	// ComponentTokenLifetime is the life of a registered component's token:
	// [execution_api] jwt_expiration_time, as it is an execution token.
	ComponentTokenLifetime time.Duration
	// APITokenLifetime and CLITokenLifetime are the lives of REST tokens
	// ([api_auth] jwt_expiration_time and jwt_cli_expiration_time). A
	// revocation without exp is kept for the longest lifetime of any token
	// taskgate mints, after which any such token has expired.
	APITokenLifetime time.Duration
	CLITokenLifetime time.Duration
	// BcryptCost hashes the passwords of added users; 0 is bcrypt's
	// default.
	BcryptCost int
	// NewID returns a fresh id for a queued task instance.
	NewID func() string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Operations implements Service over storage.
type Operations struct {
	cfg Config
	now func() time.Time
	// longest is the longest lifetime of any token taskgate mints.
	longest time.Duration
}

var _ Service = (*Operations)(nil)

// New checks cfg and returns the use cases over it. A missing dependency
// is an error here rather than a panic at the first request.
func New(cfg Config) (*Operations, error) {
	switch {
	case cfg.Store == nil || cfg.Identities == nil || cfg.Revoker == nil || cfg.Signer == nil || cfg.Keys == nil:
		return nil, errors.New("operator: store, identities, revoker, signer and key manager are required")
	case cfg.NewID == nil:
		return nil, errors.New("operator: NewID is required")
	case cfg.WorkloadTokenLifetime <= 0 || cfg.ComponentTokenLifetime <= 0 || cfg.APITokenLifetime <= 0 || cfg.CLITokenLifetime <= 0:
		return nil, errors.New("operator: token lifetimes must be positive")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	longest := max(cfg.APITokenLifetime, cfg.CLITokenLifetime, cfg.ComponentTokenLifetime, cfg.WorkloadTokenLifetime)
	return &Operations{cfg: cfg, now: now, longest: longest}, nil
}

// classify makes the storage's not-found and exists errors refusals; any
// other error is a failure and passes as it is.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, workload.ErrNotFound), errors.Is(err, auth.ErrNotFound):
		return refuse(ErrNotFound, "", err)
	case errors.Is(err, workload.ErrAlreadyExists), errors.Is(err, auth.ErrExists):
		return refuse(ErrExists, "", err)
	}
	return err
}
