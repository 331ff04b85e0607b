// Package scopes owns the task-token model: the token types a task token can
// carry, the claims the gateway reads from it, and the per-route policy that
// decides whether a validated token may call a route. It also builds the
// claims of every token kind taskgate mints (claims.go): workload,
// execution, component and REST.
//
// The package is deliberately free of HTTP, JWT and storage code: it receives
// claims that a validator has already verified and returns allow, or a typed
// denial carrying the exact detail text Airflow clients expect. Keeping the
// decision pure makes it cheap to test exhaustively and impossible to bypass
// by a transport detail.
package scopes

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/taskgate/taskgate/internal/pyjson"
)

// TokenType is the value of a task token's "scope" claim.
type TokenType string

const (
	// Execution tokens are what a running task uses for every call. They are
	// short-lived and renewed by the reissue middleware while the task runs.
	Execution TokenType = "execution"
	// Workload tokens travel in the queued workload. They outlive the queue,
	// so they are accepted on one route only — the /run call that swaps them
	// for an execution token — and are never renewed.
	Workload TokenType = "workload"
	// Callback tokens travel in a queued callback workload (Airflow's
	// ExecuteCallback): sub is the callback's id, and the token buys that
	// callback's /run alone, once, which swaps it for an execution token
	// whose sub is the callback's id.
	Callback TokenType = "callback"
	// DagProcessorSession tokens are a DAG processor's session credential
	// (Airflow's dag_processor_session): sub is the session's id and
	// dag_bundles the bundles it may parse. They buy POST /jobs alone,
	// which registers the session's Job and answers with a DagProcessor
	// token.
	DagProcessorSession TokenType = "dag_processor_session"
	// DagProcessor tokens are what a registered DAG processor uses
	// (Airflow's dag_processor): sub is its session, job_id its Job. They
	// act only while that Job is open and the session's (JobClaim).
	DagProcessor TokenType = "dag_processor"
)

// Known reports whether t is a token type this gateway understands. It is
// the one list of token types: a scope outside it is refused as an invalid
// token (ErrInvalidScope) before any route's policy is consulted, so a new
// token kind is added here and nowhere else.
func (t TokenType) Known() bool {
	switch t {
	case Execution, Workload, Callback, DagProcessorSession, DagProcessor:
		return true
	}
	return false
}

// Claims are the verified claims of a task token. A validator fills them only
// after the signature, audience, issuer and lifetime have been checked.
type Claims struct {
	ID      string // jti
	Subject string // sub: the task instance (or component) UUID
	Scope   string // raw scope claim
	// ScopePresent tells a token without a scope claim (an execution token,
	// as Airflow 3.0/3.1 minted them) from one whose scope is the empty
	// string, which names no token type and is refused as Airflow does.
	ScopePresent bool
	Issuer       string    // iss, empty when absent
	Audience     []string  // aud
	IssuedAt     time.Time // iat
	NotBefore    time.Time // nbf, zero when absent
	ExpiresAt    time.Time // exp
	// Extra holds every other claim, kept verbatim so a renewed token carries
	// the same custom claims as the one it replaces.
	Extra map[string]any
}

// Type returns the token type named by the scope claim. A token without a
// scope claim is an execution token: that keeps Airflow 3.0/3.1 tokens, which
// had no scope, working.
func (c *Claims) Type() TokenType {
	if c.Scope == "" && !c.ScopePresent {
		return Execution
	}
	return TokenType(c.Scope)
}

// ComponentClaim is the claim that marks an execution token as a component's
// (a triggerer's or DAG processor's) rather than a task instance's; its value
// is the component kind. The claim is signed, so a task token cannot claim
// to be a component, and a component token's sub (the component's UUID)
// never equals a task instance id.
const ComponentClaim = "component"

// Component returns the component kind the token was issued to, or "" for a
// task token.
func (c *Claims) Component() string {
	s, _ := c.Extra[ComponentClaim].(string)
	return s
}

// Lifetime is the life the token was issued with (exp − iat).
func (c *Claims) Lifetime() time.Duration { return c.ExpiresAt.Sub(c.IssuedAt) }

// Policy is what one route accepts.
type Policy struct {
	// Allowed lists the token types the route accepts. Empty means Execution
	// only, so a route that forgets to declare a policy can never accept a
	// workload token.
	Allowed []TokenType
	// SubjectIsTaskInstance requires the token's sub to equal the route's
	// task-instance id (Airflow's "ti:self").
	SubjectIsTaskInstance bool
	// Components admits component tokens (execution tokens carrying the
	// component claim). Only reads of shared data admit them: a component
	// is no task instance and writes nothing a task owns.
	Components bool
	// Phases lists where a task token's own try may stand for the route to
	// accept it. Zero means PhaseRunning alone, so a route that forgets to
	// declare its phases accepts a token only while its try runs.
	Phases Phases
	// Self, when set, requires the token's sub to equal the path's
	// connection test or callback id (Airflow's "ct:self", "cb:self"). Such
	// a token names no try, so no phase is judged.
	Self Self
	// JobUnchecked admits a DAG processor token whose Job is closed
	// (Airflow's "job:unchecked"); the route's own rule answers it.
	JobUnchecked bool
	// DagBundle makes a dag_processor token name, in the Airflow-Dag-Bundle
	// header, the granted bundle it acts for (Airflow's SelectedDagBundle,
	// SelectBundle); other tokens' headers are ignored.
	DagBundle bool
}

// Self names the record whose id a route's token must carry as its sub,
// besides a task instance (Policy.SubjectIsTaskInstance).
type Self uint8

const (
	// SelfNone: no such record.
	SelfNone Self = iota
	// SelfConnectionTest: the path's {connection_test_id} ("ct:self").
	SelfConnectionTest
	// SelfCallback: the path's {callback_id} ("cb:self").
	SelfCallback
	// SelfJob: a DAG processor token's job_id claim must name the path's
	// {job_id}; a mismatch is the 404 Airflow answers (ErrJobNotFound).
	SelfJob
)

// Param is the path parameter a self rule compares sub with.
func (s Self) Param() string {
	switch s {
	case SelfConnectionTest:
		return "connection_test_id"
	case SelfCallback:
		return "callback_id"
	case SelfJob:
		return "job_id"
	}
	return "task_instance_id"
}

// SelfParam is the path parameter whose value Decide compares sub with.
func (p Policy) SelfParam() string { return p.Self.Param() }

// Phase is where the try a task token was issued for stands when the token
// is presented. A task token names one try (its sub is the try's task
// instance id, and every try has its own id), so the phase is what binds a
// token to the life of that one try: a later try, or the end of this one,
// takes its access away.
type Phase uint8

const (
	// PhaseNone: no try to judge (a component token).
	PhaseNone Phase = iota
	// PhaseStarting: the current try, queued or restarting: it waits for
	// its /run (Airflow 3.0 and 3.1 workloads carry an execution token).
	PhaseStarting
	// PhaseRunning: the current try, running.
	PhaseRunning
	// PhaseFinishing: the current try reported its own end (a terminal
	// state or up_for_retry) less than [core] task_success_overtime ago.
	// Airflow's task runner calls the task's callbacks and listeners after
	// that report, and they may read variables, connections and XComs.
	PhaseFinishing
	// PhaseStopped: the current try in any other state: deferred,
	// up_for_reschedule, awaiting_input, a self-reported intermediate
	// state, marked by an operator, or finished longer ago than the
	// overtime. Only the lifecycle routes answer it (a 409 that tells the
	// worker to stop the task, or 200 for a repeated report).
	PhaseStopped
	// PhaseArchived: a later try of the same task instance exists.
	PhaseArchived
	// PhaseUnknown: no task instance has the token's subject as its id.
	PhaseUnknown
	// PhaseRetired: the try reported up_for_retry less than [core]
	// task_success_overtime ago and, as Airflow does at once, its attempt
	// was archived: the task instance went on under a new id. Its
	// callbacks may still read where a policy lists this phase; everything
	// else answers it as archived (410), as Airflow answers a mutating
	// request of an archived attempt.
	PhaseRetired
)

var phaseNames = [...]string{"none", "starting", "running", "finishing", "stopped", "archived", "unknown", "retired"}

func (p Phase) String() string {
	if int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "invalid"
}

// Renewable reports whether a token of a try in phase p may be renewed: only
// while the try runs or waits for its /run. A token that outlives its try's
// running state then dies with its expiry, whatever it calls.
func (p Phase) Renewable() bool { return p == PhaseStarting || p == PhaseRunning }

// Phases is a set of phases.
type Phases uint8

// PhasesOf builds a set.
func PhasesOf(ps ...Phase) Phases {
	var s Phases
	for _, p := range ps {
		s |= 1 << p
	}
	return s
}

// Has reports whether p is in the set; the empty set holds PhaseRunning.
func (s Phases) Has(p Phase) bool {
	if s == 0 {
		return p == PhaseRunning
	}
	return s&(1<<p) != 0
}

// List returns the phases of the set in order, with the default applied.
func (s Phases) List() []Phase {
	var out []Phase
	for p := PhaseStarting; p <= PhaseRetired; p++ {
		if s.Has(p) {
			out = append(out, p)
		}
	}
	return out
}

// AllowedTypes returns the policy's token types, sorted, with the default
// applied.
func (p Policy) AllowedTypes() []TokenType {
	if len(p.Allowed) == 0 {
		return []TokenType{Execution}
	}
	out := append([]TokenType(nil), p.Allowed...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (p Policy) allows(t TokenType) bool {
	if len(p.Allowed) == 0 {
		return t == Execution
	}
	for _, a := range p.Allowed {
		if a == t {
			return true
		}
	}
	return false
}

// Admits reports whether the route accepts tokens of type t (with the
// default applied), before any other rule is asked.
func (p Policy) Admits(t TokenType) bool { return p.allows(t) }

// Reason classifies a denial.
type Reason int

const (
	// ReasonMissingToken: no bearer token was presented (HTTP 401).
	ReasonMissingToken Reason = iota + 1
	// ReasonInvalidToken: the token failed validation (HTTP 403).
	ReasonInvalidToken
	// ReasonInvalidScope: the scope claim names no known token type (HTTP 403,
	// with the same detail as any invalid token: Airflow's claims model
	// refuses an unknown scope while it validates the token).
	ReasonInvalidScope
	// ReasonTypeNotAllowed: a known token type the route does not accept (HTTP 403).
	ReasonTypeNotAllowed
	// ReasonSubjectMismatch: sub differs from the path's task instance (HTTP 403).
	ReasonSubjectMismatch
	// ReasonTryArchived: a later try of the token's task instance exists
	// (HTTP 410, Airflow's answer for an archived attempt).
	ReasonTryArchived
	// ReasonTryUnknown: the token's task instance does not exist (HTTP 404).
	ReasonTryUnknown
	// ReasonTryNotRunning: the token's try no longer runs, and the route
	// only serves a running try (HTTP 409, reason not_running).
	ReasonTryNotRunning
	// ReasonJobClosed: a DAG processor token whose Job completed or was
	// replaced (HTTP 403, reason job_closed).
	ReasonJobClosed
	// ReasonJobNotFound: a DAG processor token on another Job's path
	// (HTTP 404, reason not_found).
	ReasonJobNotFound
	// ReasonBundleMissing: a dag_processor token on a route that reads
	// for a bundle, without the Airflow-Dag-Bundle header (HTTP 400).
	ReasonBundleMissing
	// ReasonBundleNotGranted: the header names a bundle the token does
	// not grant (HTTP 403).
	ReasonBundleNotGranted
)

// Denial is the typed refusal returned by Decide. Detail is the exact text an
// Airflow client receives in {"detail": …}.
type Denial struct {
	Reason Reason
	Detail string
}

func (d *Denial) Error() string { return "scopes: " + d.Detail }

// OfTry reports whether the denial is about the state of the token's try
// (archived, unknown, not running) rather than about the token: the token
// is valid and used as issued, its try has simply moved on.
func (d *Denial) OfTry() bool {
	switch d.Reason {
	case ReasonTryArchived, ReasonTryUnknown, ReasonTryNotRunning, ReasonJobClosed:
		// A closed Job is a DAG processor's try that ended.
		return true
	}
	return false
}

// Denials with fixed text. Validation failures all share one detail so that
// the reason a token was refused (expired, bad signature, wrong audience …)
// is never leaked to the caller; it goes to the log instead.
var (
	ErrMissingToken = &Denial{Reason: ReasonMissingToken, Detail: "Missing auth token"}
	ErrInvalidToken = &Denial{Reason: ReasonInvalidToken, Detail: "Invalid auth token"}
	// ErrInvalidScope refuses a token whose scope names no token type
	// (TokenType.Known). Airflow's token model holds the scope as a closed
	// set of literals, so such a token fails validation like any other
	// invalid one; only the reason tells them apart in the log.
	ErrInvalidScope    = &Denial{Reason: ReasonInvalidScope, Detail: "Invalid auth token"}
	ErrSubjectMismatch = &Denial{
		Reason: ReasonSubjectMismatch,
		Detail: "Token subject does not match task instance ID",
	}
	ErrConnectionTestMismatch = &Denial{
		Reason: ReasonSubjectMismatch,
		Detail: "Token subject does not match connection test ID",
	}
	ErrCallbackMismatch = &Denial{
		Reason: ReasonSubjectMismatch,
		Detail: "Token subject does not match callback ID",
	}
	ErrComponentNotAllowed = &Denial{
		Reason: ReasonTypeNotAllowed,
		Detail: "Component tokens are not allowed for this endpoint",
	}
	ErrTryArchived = &Denial{
		Reason: ReasonTryArchived,
		Detail: "Task Instance not found in the working set; its attempt has been archived",
	}
	ErrTryUnknown = &Denial{Reason: ReasonTryUnknown, Detail: "Task Instance not found"}
	// ErrJobClosed refuses a DAG processor token once its Job completed or
	// was replaced by the session's next registration.
	ErrJobClosed = &Denial{Reason: ReasonJobClosed,
		Detail: "The Job this token was issued for has completed or been replaced"}
	ErrTryNotRunning = &Denial{
		Reason: ReasonTryNotRunning,
		Detail: "TI is no longer in the running state and task should terminate",
	}
)

// CheckClaims checks the parts of a task token that do not depend on the
// route: the scope names a known type and sub is a UUID.
func CheckClaims(c *Claims) *Denial {
	if c == nil {
		return ErrMissingToken
	}
	t := c.Type()
	if !t.Known() {
		return ErrInvalidScope
	}
	if !IsUUID(c.Subject) {
		return ErrInvalidToken
	}
	switch t {
	case DagProcessorSession:
		if len(c.DagBundles()) == 0 {
			return ErrInvalidToken
		}
	case DagProcessor:
		if _, ok := c.JobID(); !ok || len(c.DagBundles()) == 0 {
			return ErrInvalidToken
		}
	}
	return nil
}

// ErrJobNotFound is the 404 of a DAG processor token on another Job's path.
func ErrJobNotFound(jobID string) *Denial {
	return &Denial{Reason: ReasonJobNotFound, Detail: "Job " + jobID + " not found for this token"}
}

// Decide is the one authorization decision for task tokens: nil means allow.
// taskInstanceID is the route's self path value (Policy.SelfParam: its
// {task_instance_id}, {connection_test_id} or {callback_id}), used only when
// the policy requires the subject to match it. phase is where the token's try
// stands (PhaseNone for a component token); the caller looks it up only for
// a token that passed CheckClaims.
func Decide(p Policy, c *Claims, taskInstanceID string, phase Phase) *Denial {
	if d := CheckClaims(c); d != nil {
		return d
	}
	t := c.Type()
	if !p.allows(t) {
		names := make([]string, 0, len(p.Allowed))
		for _, a := range p.AllowedTypes() {
			names = append(names, string(a))
		}
		return &Denial{
			Reason: ReasonTypeNotAllowed,
			Detail: "Token type '" + string(t) + "' not allowed for this endpoint. Allowed types: " +
				strings.Join(names, ", "),
		}
	}
	if c.Component() != "" && !p.Components {
		return ErrComponentNotAllowed
	}
	if p.SubjectIsTaskInstance && !SameUUID(c.Subject, taskInstanceID) {
		return ErrSubjectMismatch
	}
	switch p.Self {
	case SelfConnectionTest:
		if !SameUUID(c.Subject, taskInstanceID) {
			return ErrConnectionTestMismatch
		}
		return nil
	case SelfCallback:
		if !SameUUID(c.Subject, taskInstanceID) {
			return ErrCallbackMismatch
		}
		return nil
	}
	// A DAG processor's tokens name no try. The session token is judged by
	// its route alone; a processor token by its Job (phase PhaseRunning
	// while open and the session's), unless the route takes a closed
	// Job's token too (Policy.JobUnchecked: complete, which a retry repeats).
	switch t {
	case DagProcessorSession:
		return nil
	case DagProcessor:
		if !p.JobUnchecked && phase != PhaseRunning {
			return ErrJobClosed
		}
		// A path that is no integer is the handler's 422, as Airflow
		// validates the path after the token.
		if path, err := strconv.ParseInt(strings.TrimSpace(taskInstanceID), 10, 64); p.Self == SelfJob && err == nil {
			if id, _ := c.JobID(); id != path {
				return ErrJobNotFound(taskInstanceID)
			}
		}
		return nil
	}
	if c.Component() != "" {
		return nil
	}
	switch {
	case phase == PhaseArchived, phase == PhaseRetired && !p.Phases.Has(PhaseRetired):
		return ErrTryArchived
	case phase == PhaseUnknown || phase == PhaseNone:
		return ErrTryUnknown
	case !p.Phases.Has(phase):
		return ErrTryNotRunning
	}
	return nil
}

// BundleHeader is the request header in which a dag_processor token names
// the DAG bundle a request acts for (Airflow's DAG_BUNDLE_HEADER).
const BundleHeader = "Airflow-Dag-Bundle"

// ErrBundleMissing is Airflow's 400 for a dag_processor token that names
// no bundle where a route needs one.
var ErrBundleMissing = &Denial{Reason: ReasonBundleMissing,
	Detail: "A dag_processor token must name its Dag bundle in the " + BundleHeader + " header"}

// ErrBundleNotGranted refuses a bundle the token's dag_bundles claim does
// not list, in Airflow's words (the name as Python's repr writes it).
func ErrBundleNotGranted(bundle string) *Denial {
	return &Denial{Reason: ReasonBundleNotGranted, Detail: "Token is not granted Dag bundle " + pyjson.Repr(bundle)}
}

// SelectBundle is Airflow's get_selected_dag_bundle, asked after Decide
// allowed the token: on a route whose policy reads for a bundle
// (Policy.DagBundle), a dag_processor token must name one of its granted
// bundles in the BundleHeader (header is its value, "" when absent), and
// that bundle is returned. Every other token, and every other route,
// selects no bundle and ignores the header.
//
// The bundle need not be known to the database: Airflow checks it against
// the token's claim alone, and only resolves it to a team under [core]
// multi_team.
func SelectBundle(p Policy, c *Claims, header string) (string, *Denial) {
	if !p.DagBundle || c == nil || c.Type() != DagProcessor {
		return "", nil
	}
	if header == "" {
		return "", ErrBundleMissing
	}
	for _, b := range c.DagBundles() {
		if b == header {
			return header, nil
		}
	}
	return "", ErrBundleNotGranted(header)
}
