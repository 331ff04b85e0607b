package workload

import (
	"encoding/json"
	"fmt"
	"time"
)

// HITLUser names a person a Human-in-the-loop request is assigned to, or
// who answered it: Airflow's HITLUser, stored as {"id", "name"}.
type HITLUser struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// HITLDetail is one Human-in-the-loop request of a task instance and the
// response to it: Airflow's hitl_detail row. A task instance has at most
// one; a later try of the same task instance (a new id in taskgate) has its
// own.
type HITLDetail struct {
	TIID     string          `json:"ti_id"`
	Options  []string        `json:"options"`
	Subject  string          `json:"subject"`
	Body     *string         `json:"body"`
	Defaults []string        `json:"defaults"`
	Multiple bool            `json:"multiple"`
	Params   json.RawMessage `json:"params"`
	// Assignees is the assigned users, nil when none were given.
	Assignees []HITLUser `json:"assignees"`
	CreatedAt time.Time  `json:"created_at"`
	// The response: RespondedAt set means a response was received.
	RespondedAt   *time.Time      `json:"responded_at"`
	RespondedBy   *HITLUser       `json:"responded_by"`
	ChosenOptions []string        `json:"chosen_options"`
	ParamsInput   json.RawMessage `json:"params_input"`
}

// ResponseReceived reports whether the request has been answered.
func (h *HITLDetail) ResponseReceived() bool { return h.RespondedAt != nil }

// HITLRequest is what a task asks a human (HITLDetailRequest).
type HITLRequest struct {
	Options   []string
	Subject   string
	Body      *string
	Defaults  []string
	Multiple  bool
	Params    json.RawMessage
	Assignees []HITLUser
}

// HITLResponse is a response written through the Execution API
// (UpdateHITLDetailPayload).
type HITLResponse struct {
	ChosenOptions []string
	ParamsInput   json.RawMessage
}

// emptyObject is the params_input of a request without a response.
var emptyObject = json.RawMessage("{}")

// UpsertHITL is POST /hitlDetails/{id}: the detail to store for a task
// instance whose current detail is existing (nil if none), and whether it
// changed. A new request is recorded as asked; an existing one is kept as it
// is (the task instance was cleared before anyone answered, and the request
// stands), except that a response it carries is dropped: one detail holds
// one response, the latest try's.
func UpsertHITL(tiID string, existing *HITLDetail, r HITLRequest, now time.Time) (h *HITLDetail, changed bool) {
	if existing == nil {
		params := r.Params
		if len(params) == 0 {
			params = emptyObject
		}
		return &HITLDetail{
			TIID: tiID, Options: r.Options, Subject: r.Subject, Body: r.Body, Defaults: r.Defaults,
			Multiple: r.Multiple, Params: params, Assignees: r.Assignees, CreatedAt: now.UTC().Truncate(time.Microsecond),
			ParamsInput: emptyObject,
		}, true
	}
	if !existing.ResponseReceived() {
		return existing, false
	}
	h = new(HITLDetail)
	*h = *existing
	h.RespondedBy, h.RespondedAt, h.ChosenOptions = nil, nil, nil
	h.ParamsInput = emptyObject
	return h, true
}

// ErrHITLNotFound is a response or read of a task instance without a
// Human-in-the-loop detail.
var ErrHITLNotFound = fmt.Errorf("%w: hitl detail", ErrNotFound)

// HITLAnsweredError refuses a second response to one request.
type HITLAnsweredError struct{ TIID string }

func (e *HITLAnsweredError) Error() string {
	return "Human-in-the-loop detail for Task Instance with id " + e.TIID + " already exists."
}

// RespondHITL is PATCH /hitlDetails/{id}: it records r as the response to
// existing, which must exist and not be answered yet. The Execution API
// writes a response without a user (a task falling back to its defaults).
func RespondHITL(existing *HITLDetail, r HITLResponse, now time.Time) (*HITLDetail, error) {
	if existing == nil {
		return nil, ErrHITLNotFound
	}
	if existing.ResponseReceived() {
		return nil, &HITLAnsweredError{TIID: existing.TIID}
	}
	h := new(HITLDetail)
	*h = *existing
	t := now.UTC().Truncate(time.Microsecond) // Python's datetime, and the database, keep microseconds
	h.RespondedAt, h.RespondedBy = &t, nil
	h.ChosenOptions = r.ChosenOptions
	h.ParamsInput = r.ParamsInput
	if len(h.ParamsInput) == 0 {
		h.ParamsInput = emptyObject
	}
	return h, nil
}

// hitlResumeEvent is the event a task resumed by a human's response finds
// in next_kwargs["event"]: the HITL success payload of Airflow's
// HITLDetail, as HITLTrigger would have sent it.
type hitlResumeEvent struct {
	ChosenOptions   []string        `json:"chosen_options"`
	ParamsInput     json.RawMessage `json:"params_input"`
	RespondedByUser *HITLUser       `json:"responded_by_user"`
	RespondedAt     *time.Time      `json:"responded_at"`
	Timedout        bool            `json:"timedout"`
}

// ApplyAwaitingInput applies an awaiting_input report to ti, whose
// Human-in-the-loop detail is h (nil if none). A request already answered
// (the human was faster than the worker's report) does not park the task:
// it resumes at once, scheduled with the response as next_kwargs["event"],
// since nothing else would ever wake a task parked on an answered request.
// Otherwise the task waits in awaiting_input (ApplyState).
func ApplyAwaitingInput(ti *TaskInstance, h *HITLDetail, u StateUpdate, now time.Time) (changed bool, err error) {
	if h == nil || !h.ResponseReceived() || ti.State != StateRunning {
		return ApplyState(ti, u, now)
	}
	ev := hitlResumeEvent{ChosenOptions: h.ChosenOptions, ParamsInput: h.ParamsInput,
		RespondedByUser: h.RespondedBy, RespondedAt: h.RespondedAt}
	if len(ev.ParamsInput) == 0 {
		ev.ParamsInput = emptyObject
	}
	kwargs := map[string]json.RawMessage{}
	if len(u.NextKwargs) > 0 && string(u.NextKwargs) != "null" {
		if err := json.Unmarshal(u.NextKwargs, &kwargs); err != nil {
			return false, fmt.Errorf("workload: next_kwargs: %w", err)
		}
	}
	evJSON, err := json.Marshal(ev)
	if err != nil {
		return false, err
	}
	kwargs["event"] = evJSON
	next, err := json.Marshal(kwargs)
	if err != nil {
		return false, err
	}
	resume := StateUpdate{State: StateScheduled, RenderedMapIndex: u.RenderedMapIndex}
	if changed, err = ApplyState(ti, resume, now); err != nil {
		return false, err
	}
	ti.TriggerClass, ti.TriggerKwargs = "", nil
	ti.NextMethod, ti.NextKwargs = u.NextMethod, next
	return changed, nil
}
