package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/taskgate/taskgate/workload"
)

// RunRequest is TIEnterRunningPayload: who runs the task instance. The
// server remembers (Hostname, PID) and accepts heartbeats only from them.
type RunRequest struct {
	Hostname  string
	Unixname  string
	PID       int
	StartDate time.Time
}

// MarshalJSON writes the strict model, state "running" included.
func (r RunRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		State     string    `json:"state"`
		Hostname  string    `json:"hostname"`
		Unixname  string    `json:"unixname"`
		PID       int       `json:"pid"`
		StartDate time.Time `json:"start_date"`
	}{"running", r.Hostname, r.Unixname, r.PID, r.StartDate.UTC()})
}

// RunContext is TIRunContext, what /run answers. Unknown fields are ignored
// so that a newer server does not break an older client.
type RunContext struct {
	DagRun              workload.DagRun `json:"dag_run"`
	TaskRescheduleCount int             `json:"task_reschedule_count"`
	MaxTries            int             `json:"max_tries"`
	Variables           json.RawMessage `json:"variables,omitempty"`
	Connections         json.RawMessage `json:"connections,omitempty"`
	NextMethod          *string         `json:"next_method,omitempty"`
	NextKwargs          json.RawMessage `json:"next_kwargs,omitempty"`
	XComKeysToClear     []string        `json:"xcom_keys_to_clear,omitempty"`
	// ShouldRetry says whether a failure of this try becomes up_for_retry
	// rather than failed.
	ShouldRetry bool       `json:"should_retry"`
	StartDate   *time.Time `json:"start_date,omitempty"`
}

// Run is PATCH /task-instances/{id}/run: the task instance moves from queued
// to running on this worker. Called with the workload token, it returns the
// execution token in Refreshed-API-Token, which the client adopts for every
// later call.
func (c *Client) Run(ctx context.Context, tiID string, r RunRequest) (*RunContext, error) {
	var rc RunContext
	if err := c.call(ctx, http.MethodPatch, tiPath(tiID, "run"), nil, r, &rc); err != nil {
		return nil, err
	}
	return &rc, nil
}

// Heartbeat is PUT /task-instances/{id}/heartbeat. A 404, 409 or 410 (see
// ErrNotFound, ErrConflict, ErrGone) means the task must stop.
func (c *Client) Heartbeat(ctx context.Context, tiID, hostname string, pid int) error {
	body := struct {
		Hostname string `json:"hostname"`
		PID      int    `json:"pid"`
	}{hostname, pid}
	return c.call(ctx, http.MethodPut, tiPath(tiID, "heartbeat"), nil, body, nil)
}

// State is a task-instance state a worker reports: the domain's states, so
// that the client and the gateway spell them once.
type State = workload.State

// The states of TIStateUpdate.
const (
	StateSuccess         = workload.StateSuccess
	StateFailed          = workload.StateFailed
	StateSkipped         = workload.StateSkipped
	StateRemoved         = workload.StateRemoved
	StateUpstreamFailed  = workload.StateUpstreamFailed
	StateUpForRetry      = workload.StateUpForRetry
	StateUpForReschedule = workload.StateUpForReschedule
	StateDeferred        = workload.StateDeferred
)

// StateUpdate is TIStateUpdate. Its models refuse fields they do not
// define, so only the fields of State are sent; the others are ignored.
type StateUpdate struct {
	State State
	// EndDate of success, failed, skipped, removed, upstream_failed,
	// up_for_retry and up_for_reschedule; zero means now.
	EndDate          time.Time
	RenderedMapIndex *string

	// success: asset profiles and outlet events; nil sends [].
	TaskOutlets  []json.RawMessage
	OutletEvents []json.RawMessage

	// up_for_retry (optional).
	RetryDelaySeconds *float64
	RetryReason       *string

	// up_for_reschedule (required).
	RescheduleDate time.Time

	// deferred: Classpath and NextMethod are required.
	Classpath      string
	TriggerKwargs  json.RawMessage
	TriggerTimeout *time.Duration
	Queue          *string
	NextMethod     string
	NextKwargs     json.RawMessage
}

// payload returns the JSON object of u; end is used for a zero EndDate.
func (u StateUpdate) payload(end time.Time) (map[string]any, error) {
	if !u.EndDate.IsZero() {
		end = u.EndDate
	}
	p := map[string]any{"state": u.State}
	withMapIndex := func() {
		if u.RenderedMapIndex != nil {
			p["rendered_map_index"] = *u.RenderedMapIndex
		}
	}
	switch u.State {
	case "":
		return nil, errors.New("client: state update without a state")
	case StateSuccess:
		p["end_date"] = end.UTC()
		p["task_outlets"] = orEmpty(u.TaskOutlets)
		p["outlet_events"] = orEmpty(u.OutletEvents)
		withMapIndex()
	case StateFailed, StateSkipped, StateRemoved, StateUpstreamFailed:
		p["end_date"] = end.UTC()
		withMapIndex()
	case StateUpForRetry:
		p["end_date"] = end.UTC()
		withMapIndex()
		if u.RetryDelaySeconds != nil {
			p["retry_delay_seconds"] = *u.RetryDelaySeconds
		}
		if u.RetryReason != nil {
			p["retry_reason"] = *u.RetryReason
		}
	case StateUpForReschedule:
		if u.RescheduleDate.IsZero() {
			return nil, errors.New("client: up_for_reschedule needs a reschedule date")
		}
		p["reschedule_date"] = u.RescheduleDate.UTC()
		p["end_date"] = end.UTC()
	case StateDeferred:
		if u.Classpath == "" || u.NextMethod == "" {
			return nil, errors.New("client: deferred needs a classpath and a next method")
		}
		p["classpath"] = u.Classpath
		p["next_method"] = u.NextMethod
		p["trigger_kwargs"] = orObject(u.TriggerKwargs)
		if len(u.NextKwargs) > 0 {
			p["next_kwargs"] = u.NextKwargs
		}
		if u.TriggerTimeout != nil {
			p["trigger_timeout"] = u.TriggerTimeout.Seconds()
		}
		if u.Queue != nil {
			p["queue"] = *u.Queue
		}
		withMapIndex()
	}
	// Any other (intermediate) state is sent as {"state": …} alone.
	return p, nil
}

func orEmpty(xs []json.RawMessage) []json.RawMessage {
	if xs == nil {
		return []json.RawMessage{}
	}
	return xs
}

func orObject(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return json.RawMessage("{}")
	}
	return v
}

// UpdateState is PATCH /task-instances/{id}/state: the task reports how it
// ended (or that it defers or reschedules). A repeat of a state already
// recorded succeeds, so a retried report after a lost response is harmless.
func (c *Client) UpdateState(ctx context.Context, tiID string, u StateUpdate) error {
	p, err := u.payload(c.now())
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodPatch, tiPath(tiID, "state"), nil, p, nil)
}

// SetRenderedFields is PUT /task-instances/{id}/rtif: the task's rendered
// template fields, shown in Airflow's UI.
func (c *Client) SetRenderedFields(ctx context.Context, tiID string, fields map[string]any) error {
	if fields == nil {
		fields = map[string]any{}
	}
	return c.call(ctx, http.MethodPut, tiPath(tiID, "rtif"), nil, fields, nil)
}

// Variable is an Airflow variable; Value is nil for a variable set to null.
type Variable struct {
	Key   string  `json:"key"`
	Value *string `json:"value"`
}

// GetVariable is GET /variables/{key}; a missing variable is ErrNotFound.
func (c *Client) GetVariable(ctx context.Context, key string) (*Variable, error) {
	if key == "" {
		return nil, errors.New("client: empty variable key")
	}
	var v Variable
	if err := c.call(ctx, http.MethodGet, "/variables/"+keyPath(key), nil, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// SetVariable is PUT /variables/{key}; a nil description sends null.
func (c *Client) SetVariable(ctx context.Context, key, value string, description *string) error {
	if key == "" {
		return errors.New("client: empty variable key")
	}
	body := struct {
		Val         string  `json:"val"`
		Description *string `json:"description"`
	}{value, description}
	return c.call(ctx, http.MethodPut, "/variables/"+keyPath(key), nil, body, nil)
}

// DeleteVariable is DELETE /variables/{key}.
func (c *Client) DeleteVariable(ctx context.Context, key string) error {
	if key == "" {
		return errors.New("client: empty variable key")
	}
	return c.call(ctx, http.MethodDelete, "/variables/"+keyPath(key), nil, nil, nil)
}

// Connection is ConnectionResponse, the domain's model of a connection as
// a task sees it. It holds a password: do not log it.
type Connection = workload.Connection

// GetConnection is GET /connections/{id}; a missing one is ErrNotFound.
func (c *Client) GetConnection(ctx context.Context, connID string) (*Connection, error) {
	if connID == "" {
		return nil, errors.New("client: empty connection id")
	}
	var conn Connection
	if err := c.call(ctx, http.MethodGet, "/connections/"+url.PathEscape(connID), nil, nil, &conn); err != nil {
		return nil, err
	}
	return &conn, nil
}

// XComRef names one XCom. MapIndex is -1 for an unmapped task instance.
type XComRef struct {
	DagID, RunID, TaskID string
	Key                  string
	MapIndex             int
}

func (r XComRef) path() (string, error) {
	if r.DagID == "" || r.RunID == "" || r.TaskID == "" || r.Key == "" {
		return "", errors.New("client: XCom reference needs a dag id, run id, task id and key")
	}
	return "/xcoms/" + url.PathEscape(r.DagID) + "/" + url.PathEscape(r.RunID) + "/" +
		url.PathEscape(r.TaskID) + "/" + keyPath(r.Key), nil
}

// GetXCom is GET /xcoms/{dag}/{run}/{task}/{key}?map_index=N: the stored
// JSON value; a missing XCom is ErrNotFound (the Task SDK reads it as None).
func (c *Client) GetXCom(ctx context.Context, ref XComRef) (json.RawMessage, error) {
	p, err := ref.path()
	if err != nil {
		return nil, err
	}
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	if err := c.call(ctx, http.MethodGet, p, mapIndexQuery(ref.MapIndex), nil, &out); err != nil {
		return nil, err
	}
	if len(out.Value) == 0 {
		return json.RawMessage("null"), nil
	}
	return out.Value, nil
}

// SetXCom is POST /xcoms/{dag}/{run}/{task}/{key}?map_index=N with the
// serialized value as the body. Taskgate accepts writes only to the token's
// own task instance (ErrAccessDenied otherwise).
func (c *Client) SetXCom(ctx context.Context, ref XComRef, value json.RawMessage) error {
	p, err := ref.path()
	if err != nil {
		return err
	}
	if !json.Valid(value) {
		return fmt.Errorf("client: XCom %s: value is not JSON", ref.Key)
	}
	_, err = c.do(ctx, http.MethodPost, p, mapIndexQuery(ref.MapIndex), value)
	return err
}

// DeleteXCom is DELETE /xcoms/{dag}/{run}/{task}/{key}?map_index=N.
func (c *Client) DeleteXCom(ctx context.Context, ref XComRef) error {
	p, err := ref.path()
	if err != nil {
		return err
	}
	return c.call(ctx, http.MethodDelete, p, mapIndexQuery(ref.MapIndex), nil, nil)
}
