// Package workload owns the task-instance lifecycle (queued → running →
// terminal), the rules that guard it (the duplicate-/run rule, heartbeat
// ownership by hostname and pid, which state changes a running task may
// report), the ExecuteTask payload a worker receives, the things a running
// task reads and writes (variables, connections, XComs, rendered fields), and
// the storage interfaces those rules need.
//
// The rules are plain functions over plain structs. A store applies them
// inside its own transaction (see Store.UpdateTaskInstance), so the decision
// and the write are atomic without this package knowing how the data is kept.
package workload

import (
	"encoding/json"
	"errors"
	"time"
)

// State is a task-instance state, spelled as Airflow spells it.
type State string

// Task-instance states. Only the ones the Execution API moves between are
// interpreted here; any other value a client sends as an intermediate state
// is stored as it is.
const (
	StateScheduled       State = "scheduled"
	StateQueued          State = "queued"
	StateRunning         State = "running"
	StateSuccess         State = "success"
	StateFailed          State = "failed"
	StateSkipped         State = "skipped"
	StateRemoved         State = "removed"
	StateUpstreamFailed  State = "upstream_failed"
	StateUpForRetry      State = "up_for_retry"
	StateUpForReschedule State = "up_for_reschedule"
	StateDeferred        State = "deferred"
	StateRestarting      State = "restarting"
	StateAwaitingInput   State = "awaiting_input"
)

// Terminal reports whether a task instance in state s will never run again in
// this try: its tokens must no longer be renewed.
func (s State) Terminal() bool {
	switch s {
	case StateSuccess, StateFailed, StateSkipped, StateRemoved, StateUpstreamFailed:
		return true
	}
	return false
}

// DagRun is the dag run a task instance belongs to: Airflow's DagRun model at
// the newest API version (2026-11-13; its fields last changed at 2026-06-30,
// which added team_name), the dag_run of a TIRunContext and the body of GET
// /dag-runs/{dag_id}/{run_id}. It is the one
// definition of that model: the store keeps it, the gateway sends it (see
// WireDagRun) and the client decodes it. The real Airflow client forbids
// unknown fields here, so it carries exactly these.
type DagRun struct {
	DagID              string          `json:"dag_id"`
	RunID              string          `json:"run_id"`
	LogicalDate        *time.Time      `json:"logical_date"`
	DataIntervalStart  *time.Time      `json:"data_interval_start"`
	DataIntervalEnd    *time.Time      `json:"data_interval_end"`
	RunAfter           time.Time       `json:"run_after"`
	StartDate          *time.Time      `json:"start_date"`
	EndDate            *time.Time      `json:"end_date"`
	ClearNumber        int             `json:"clear_number"`
	RunType            string          `json:"run_type"`
	State              string          `json:"state"`
	Conf               json.RawMessage `json:"conf"`
	TriggeringUserName *string         `json:"triggering_user_name"`
	// ConsumedAssetEvents is a list on the wire (Airflow requires it).
	// Nothing here creates dag runs from asset events, so it is omitted
	// from a stored record while empty; WireDagRun fills in the empty list.
	ConsumedAssetEvents json.RawMessage `json:"consumed_asset_events,omitempty"`
	PartitionKey        *string         `json:"partition_key"`
	Note                *string         `json:"note"`
	// TeamName is the team of the DAG's bundle in multi-team mode (Airflow's
	// dag → dag_bundle_team), null otherwise.
	TeamName *string `json:"team_name"`
}

// WireDagRun returns dr as the Execution API sends it: conf is null when the
// run has none (a NULL dag_run.conf, as runs from before Airflow 3 or an
// offline migration have; Airflow's DagRun.conf is optional since
// 2025-10-27, and older versions get {} from the version converter), and
// consumed_asset_events a list ([] when unset), since Airflow's model
// requires it.
func WireDagRun(dr DagRun) DagRun {
	if len(dr.Conf) == 0 {
		dr.Conf = json.RawMessage("null")
	}
	if len(dr.ConsumedAssetEvents) == 0 {
		dr.ConsumedAssetEvents = json.RawMessage("[]")
	}
	return dr
}

// Reschedule records one up_for_reschedule of a task instance.
type Reschedule struct {
	TryNumber      int       `json:"try_number"`
	StartDate      time.Time `json:"start_date"`
	EndDate        time.Time `json:"end_date"`
	RescheduleDate time.Time `json:"reschedule_date"`
}

// TaskInstance is one attempt of one task (or one mapped index of it) in one
// dag run.
type TaskInstance struct {
	ID             string `json:"id"`
	DagID          string `json:"dag_id"`
	RunID          string `json:"run_id"`
	TaskID         string `json:"task_id"`
	MapIndex       int    `json:"map_index"`
	TryNumber      int    `json:"try_number"`
	MaxTries       int    `json:"max_tries"`
	DagVersionID   string `json:"dag_version_id"`
	PoolSlots      int    `json:"pool_slots"`
	Queue          string `json:"queue"`
	PriorityWeight int    `json:"priority_weight"`
	DagRelPath     string `json:"dag_rel_path"`
	BundleName     string `json:"bundle_name"`
	// Operator is the task's operator class name (Airflow's
	// task_instance.operator) where the store knows it; the embedded
	// store, which queues tries without their DAG, leaves it empty.
	Operator string `json:"operator,omitempty"`
	// QueuedBy is the REST API user who queued this try, empty when it was
	// queued offline (the CLI on the data directory). Removing that user
	// withdraws the try while it is still queued (see Withdraw).
	QueuedBy string `json:"queued_by,omitempty"`

	State           State      `json:"state"`
	Hostname        string     `json:"hostname,omitempty"`
	Unixname        string     `json:"unixname,omitempty"`
	PID             int        `json:"pid,omitempty"`
	QueuedAt        *time.Time `json:"queued_at,omitempty"`
	StartDate       *time.Time `json:"start_date,omitempty"`
	EndDate         *time.Time `json:"end_date,omitempty"`
	LastHeartbeatAt *time.Time `json:"last_heartbeat_at,omitempty"`
	UpdatedAt       time.Time  `json:"updated_at"`

	RenderedMapIndex *string `json:"rendered_map_index,omitempty"`

	// Deferral: what the triggerer runs and how the task resumes.
	NextMethod     *string         `json:"next_method,omitempty"`
	NextKwargs     json.RawMessage `json:"next_kwargs,omitempty"`
	TriggerClass   string          `json:"trigger_classpath,omitempty"`
	TriggerKwargs  json.RawMessage `json:"trigger_kwargs,omitempty"`
	TriggerQueue   *string         `json:"trigger_queue,omitempty"`
	TriggerTimeout *time.Time      `json:"trigger_timeout,omitempty"`

	// ReportedAt is the server's time when the try itself reported leaving
	// running (PATCH …/state). It opens the overtime in which the task's
	// callbacks may still read (see PhaseOf), and a try that left running
	// this way never enters running again: the next run is a new try.
	ReportedAt *time.Time `json:"reported_at,omitempty"`

	// Retry overrides reported with up_for_retry; cleared on the next run.
	RetryDelaySeconds *float64 `json:"retry_delay_seconds,omitempty"`
	RetryReason       *string  `json:"retry_reason,omitempty"`

	Reschedules []Reschedule `json:"reschedules,omitempty"`

	// Outlets reported with success, kept verbatim.
	TaskOutlets  json.RawMessage `json:"task_outlets,omitempty"`
	OutletEvents json.RawMessage `json:"outlet_events,omitempty"`

	// RunGrant is the execution token the /run that started this run handed
	// out for a workload token, nil when that /run came with an execution
	// token. A repeated /run is answered with this same token, never with a
	// new one (see EnterRunning).
	RunGrant *ExecutionGrant `json:"run_grant,omitempty"`
}

// ExecutionGrant identifies an execution token handed out by /run in
// exchange for a workload token: enough to sign the very same token again
// (its subject is the task instance, its scope "execution", its issuer and
// audience the configured ones), and nothing that would let anyone holding
// the record use it. The times are whole seconds, as in the token.
type ExecutionGrant struct {
	// WorkloadTokenID is the jti of the workload token that was swapped.
	WorkloadTokenID string `json:"workload_jti"`
	// ID, IssuedAt and ExpiresAt are the execution token's jti, iat (also
	// its nbf) and exp.
	ID        string    `json:"jti"`
	IssuedAt  time.Time `json:"iat"`
	ExpiresAt time.Time `json:"exp"`
}

// Variable is an Airflow variable.
type Variable struct {
	Key         string  `json:"key"`
	Value       *string `json:"value"`
	Description *string `json:"description,omitempty"`
}

// Connection is an Airflow connection as a task sees it.
type Connection struct {
	ConnID   string  `json:"conn_id"`
	ConnType string  `json:"conn_type"`
	Host     *string `json:"host"`
	Schema   *string `json:"schema"`
	Login    *string `json:"login"`
	Password *string `json:"password"`
	Port     *int    `json:"port"`
	// Extra is a JSON document serialized as a string, as Airflow stores it.
	Extra *string `json:"extra"`
}

// XComRef names one XCom slot.
type XComRef struct {
	DagID    string
	RunID    string
	TaskID   string
	MapIndex int
	Key      string
}

// XCom is one stored XCom value. Value is the serialized JSON the task sent;
// the gateway never interprets it.
type XCom struct {
	XComRef
	Value     json.RawMessage
	Timestamp time.Time
	// RunAfter orders XComs across dag runs for include_prior_dates.
	RunAfter time.Time
}

// Errors a store returns, matched with errors.Is.
var (
	ErrNotFound      = errors.New("workload: not found")
	ErrAlreadyExists = errors.New("workload: already exists")
	// ErrInvalidState is an operator request for a state change the
	// lifecycle does not allow.
	ErrInvalidState = errors.New("workload: invalid state")
	// ErrUnavailable means the store cannot be reached for now (a database
	// restarting, a connection lost): nothing was written, and the same
	// request may succeed once the store is back.
	ErrUnavailable = errors.New("workload: store unavailable")
	// ErrValueRejected is a value the database refused to hold (too long
	// for its column, out of range): nothing was written, and the request
	// is the client's error.
	ErrValueRejected = errors.New("workload: value rejected by the database")
)
