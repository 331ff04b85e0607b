package workload

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestUpsertHITL(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 123456789, time.UTC)
	answeredAt := now.Add(-time.Hour)
	asked := &HITLDetail{TIID: "ti", Options: []string{"A"}, Subject: "old", ParamsInput: emptyObject}
	answered := &HITLDetail{TIID: "ti", Options: []string{"A"}, Subject: "old", RespondedAt: &answeredAt,
		RespondedBy: &HITLUser{ID: "u", Name: "U"}, ChosenOptions: []string{"A"}, ParamsInput: json.RawMessage(`{"x":1}`)}
	req := HITLRequest{Options: []string{"B"}, Subject: "new"}
	tests := []struct {
		name        string
		existing    *HITLDetail
		wantSubject string
		wantChanged bool
	}{
		{"no detail: the request is recorded", nil, "new", true},
		{"an unanswered detail stands", asked, "old", false},
		{"an answered detail loses its response", answered, "old", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, changed := UpsertHITL("ti", tc.existing, req, now)
			if h.Subject != tc.wantSubject || changed != tc.wantChanged || h.ResponseReceived() ||
				h.ChosenOptions != nil || h.RespondedBy != nil || string(h.ParamsInput) != "{}" {
				t.Errorf("got %+v changed %v", h, changed)
			}
			if tc.existing == nil && (!h.CreatedAt.Equal(now.Truncate(time.Microsecond)) || string(h.Params) != "{}") {
				t.Errorf("new detail: created_at %v params %s", h.CreatedAt, h.Params)
			}
		})
	}
	if !answered.ResponseReceived() {
		t.Error("UpsertHITL changed the detail it was given")
	}
}

func TestRespondHITL(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 123456789, time.UTC)
	asked := &HITLDetail{TIID: "ti", Options: []string{"A"}}
	r := HITLResponse{ChosenOptions: []string{"A"}}
	if _, err := RespondHITL(nil, r, now); !errors.Is(err, ErrHITLNotFound) {
		t.Errorf("no detail: %v", err)
	}
	h, err := RespondHITL(asked, r, now)
	if err != nil || h.RespondedAt == nil || !h.RespondedAt.Equal(now.Truncate(time.Microsecond)) ||
		string(h.ParamsInput) != "{}" || asked.ResponseReceived() {
		t.Fatalf("first response: %+v, %v", h, err)
	}
	var answered *HITLAnsweredError
	if _, err := RespondHITL(h, r, now); !errors.As(err, &answered) ||
		err.Error() != "Human-in-the-loop detail for Task Instance with id ti already exists." {
		t.Errorf("second response: %v", err)
	}
}

func TestApplyAwaitingInput(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := now.Add(-time.Minute)
	method := "execute_complete"
	u := StateUpdate{State: StateAwaitingInput, NextMethod: &method, NextKwargs: json.RawMessage(`{"a":1}`),
		TriggerTimeout: ptrTo(time.Hour)}
	answered := &HITLDetail{RespondedAt: &at, ChosenOptions: []string{"A"}, ParamsInput: json.RawMessage(`{"p":2}`)}
	tests := []struct {
		name      string
		h         *HITLDetail
		wantState State
	}{
		{"no detail: parked", nil, StateAwaitingInput},
		{"unanswered: parked", &HITLDetail{}, StateAwaitingInput},
		{"answered: resumed at once", answered, StateScheduled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ti := &TaskInstance{State: StateRunning}
			changed, err := ApplyAwaitingInput(ti, tc.h, u, now)
			if err != nil || !changed || ti.State != tc.wantState || ti.NextMethod == nil || *ti.NextMethod != method {
				t.Fatalf("state %s next_method %v changed %v err %v", ti.State, ti.NextMethod, changed, err)
			}
			var kw struct {
				A     int `json:"a"`
				Event *struct {
					ChosenOptions []string        `json:"chosen_options"`
					ParamsInput   json.RawMessage `json:"params_input"`
					RespondedAt   *time.Time      `json:"responded_at"`
					Timedout      bool            `json:"timedout"`
				} `json:"event"`
			}
			if err := json.Unmarshal(ti.NextKwargs, &kw); err != nil || kw.A != 1 {
				t.Fatalf("next_kwargs %s: %v", ti.NextKwargs, err)
			}
			if resumed := tc.wantState == StateScheduled; resumed != (kw.Event != nil) {
				t.Fatalf("next_kwargs %s: event present %v, want %v", ti.NextKwargs, kw.Event != nil, resumed)
			}
			if kw.Event != nil && (string(kw.Event.ParamsInput) != `{"p":2}` || !kw.Event.RespondedAt.Equal(at) || kw.Event.Timedout) {
				t.Errorf("event %s", ti.NextKwargs)
			}
			if tc.wantState == StateAwaitingInput && (ti.TriggerTimeout == nil || !ti.TriggerTimeout.Equal(now.Add(time.Hour))) {
				t.Errorf("parked deadline %v", ti.TriggerTimeout)
			}
		})
	}
	// Only a running task reports awaiting_input.
	ti := &TaskInstance{State: StateQueued}
	var conflict *ConflictError
	if _, err := ApplyAwaitingInput(ti, answered, u, now); !errors.As(err, &conflict) {
		t.Errorf("queued task: %v", err)
	}
}

func ptrTo[T any](v T) *T { return &v }
