package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// Human in the loop: /hitlDetails/{task_instance_id}, Airflow's
// execution_api/routes/hitl.py. A task (HITLOperator) records what it asks a
// human, reports awaiting_input, and reads the response once resumed; the
// response normally arrives through Airflow's Core API, and through PATCH
// here when the task falls back to its defaults.

// hitlRequestBody is HITLDetailRequest, the body of POST and its answer.
type hitlRequestBody struct {
	TIID          string              `json:"ti_id"`
	Options       []string            `json:"options"`
	Subject       string              `json:"subject"`
	Body          *string             `json:"body"`
	Defaults      []string            `json:"defaults"`
	Multiple      bool                `json:"multiple"`
	Params        json.RawMessage     `json:"params"`
	AssignedUsers []workload.HITLUser `json:"assigned_users"`
}

// hitlResponseBody is UpdateHITLDetailPayload, the body of PATCH.
type hitlResponseBody struct {
	TIID          string          `json:"ti_id"`
	ChosenOptions []string        `json:"chosen_options"`
	ParamsInput   json.RawMessage `json:"params_input"`
}

// hitlDetailResponse is HITLDetailResponse, the answer of PATCH and GET.
type hitlDetailResponse struct {
	ResponseReceived bool               `json:"response_received"`
	RespondedByUser  *workload.HITLUser `json:"responded_by_user"`
	RespondedAt      *time.Time         `json:"responded_at"`
	ChosenOptions    []string           `json:"chosen_options"`
	ParamsInput      json.RawMessage    `json:"params_input"`
}

var hitlModels = map[string]routeModel{
	"POST " + hitlPath:  {Request: hitlRequestBody{}, Response: hitlRequestBody{}, Status: http.StatusCreated},
	"PATCH " + hitlPath: {Request: hitlResponseBody{}, Response: hitlDetailResponse{}},
	"GET " + hitlPath:   {Response: hitlDetailResponse{}},
}

const hitlPath = "/execution/hitlDetails/:task_instance_id"

// errHITLNotFound is Airflow's 404 for a task instance without a detail.
var errHITLNotFound = notFound("HITLDetail not found. " +
	"This happens most likely due to clearing task instance before receiving response.")

func hitlDetailAnswer(h *workload.HITLDetail) hitlDetailResponse {
	params := h.ParamsInput
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	return hitlDetailResponse{ResponseReceived: h.ResponseReceived(), RespondedByUser: h.RespondedBy,
		RespondedAt: h.RespondedAt, ChosenOptions: h.ChosenOptions, ParamsInput: params}
}

// uuidField reads a UUID field as pydantic's UUID type does.
func (o *object) uuidField(name string) {
	v, ok := o.get(name, true)
	if !ok {
		return
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		o.fail(name, "uuid_type", "UUID input should be a string, bytes or UUID object", rawInput(v))
		return
	}
	if _, ok := scopes.CanonicalUUID(s); !ok {
		o.fail(name, "uuid_parsing", "Input should be a valid UUID", s)
	}
}

// strList reads a list[str] field with at least minLen items.
func (o *object) strList(name string, required, nullable bool, minLen int) []string {
	v, ok := o.get(name, required)
	if !ok || (nullable && isNull(v)) {
		return nil
	}
	var items []json.RawMessage
	if len(v) == 0 || v[0] != '[' || json.Unmarshal(v, &items) != nil {
		o.fail(name, "list_type", "Input should be a valid list", rawInput(v))
		return nil
	}
	out := make([]string, 0, len(items))
	bad := false
	for i, it := range items {
		var s string
		if len(it) == 0 || it[0] != '"' || json.Unmarshal(it, &s) != nil {
			loc := append(append([]any(nil), o.loc...), name, i)
			o.errs = append(o.errs, FieldError{Type: "string_type", Loc: loc,
				Msg: "Input should be a valid string", Input: rawInput(it)})
			bad = true
			continue
		}
		out = append(out, s)
	}
	if bad {
		return nil
	}
	if len(out) < minLen {
		loc := append(append([]any(nil), o.loc...), name)
		o.errs = append(o.errs, FieldError{Type: "too_short", Loc: loc,
			Msg:   "List should have at least 1 item after validation, not 0",
			Input: []any{}, Ctx: map[string]any{"field_type": "List", "min_length": minLen, "actual_length": len(out)}})
		return nil
	}
	return out
}

// boolean reads a bool field as pydantic's lax mode does.
func (o *object) boolean(name string) bool {
	v, ok := o.get(name, false)
	if !ok {
		return false
	}
	var b bool
	if json.Unmarshal(v, &b) == nil {
		return b
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		switch s {
		case "1", "on", "t", "true", "y", "yes", "True", "TRUE":
			return true
		case "0", "off", "f", "false", "n", "no", "False", "FALSE":
			return false
		}
	}
	if n, ok := parseInt(v); ok && (n == 0 || n == 1) {
		return n == 1
	}
	o.fail(name, "bool_parsing", "Input should be a valid boolean, unable to interpret input", rawInput(v))
	return false
}

// users reads a list[HITLUser] field.
func (o *object) users(name string) []workload.HITLUser {
	v, ok := o.get(name, false)
	if !ok {
		return nil
	}
	var items []json.RawMessage
	if len(v) == 0 || v[0] != '[' || json.Unmarshal(v, &items) != nil {
		o.fail(name, "list_type", "Input should be a valid list", rawInput(v))
		return nil
	}
	out := make([]workload.HITLUser, 0, len(items))
	for i, it := range items {
		sub, verr := decodeObject(it)
		if verr != nil {
			loc := append(append([]any(nil), o.loc...), name, i)
			o.errs = append(o.errs, FieldError{Type: "model_type",
				Loc: loc, Msg: "Input should be a valid dictionary or instance of HITLUser", Input: rawInput(it)})
			continue
		}
		sub.loc = append(append([]any(nil), o.loc...), name, i)
		id, nm := sub.str("id", true, false), sub.str("name", true, false)
		o.errs = append(o.errs, sub.errs...)
		if id != nil && nm != nil {
			out = append(out, workload.HITLUser{ID: *id, Name: *nm})
		}
	}
	return out
}

func decodeHITLRequest(body []byte) (workload.HITLRequest, error) {
	o, verr := decodeObject(body)
	if verr != nil {
		return workload.HITLRequest{}, verr
	}
	o.uuidField("ti_id")
	r := workload.HITLRequest{Options: o.strList("options", true, false, 1)}
	if s := o.str("subject", true, false); s != nil {
		r.Subject = *s
	}
	r.Body = o.str("body", false, true)
	r.Defaults = o.strList("defaults", false, true, 0)
	r.Multiple = o.boolean("multiple")
	r.Params = o.rawField("params", false, "{")
	r.Assignees = o.users("assigned_users")
	// HITLDetailRequest allows extra fields (Airflow's lenient BaseModel).
	if verr := o.err(); verr != nil {
		return workload.HITLRequest{}, verr
	}
	return r, nil
}

func decodeHITLResponse(body []byte) (workload.HITLResponse, error) {
	o, verr := decodeObject(body)
	if verr != nil {
		return workload.HITLResponse{}, verr
	}
	o.uuidField("ti_id")
	r := workload.HITLResponse{ChosenOptions: o.strList("chosen_options", true, false, 1)}
	r.ParamsInput = o.rawField("params_input", false, "{")
	if verr := o.err(); verr != nil {
		return workload.HITLResponse{}, verr
	}
	return r, nil
}

// handleUpsertHITLDetail is POST /hitlDetails/{id}: 201 with the stored
// request (an earlier one stands; see workload.UpsertHITL).
func (s *Server) handleUpsertHITLDetail(c echo.Context) error {
	id, req, err := readTIBody(c, decodeHITLRequest)
	if err != nil {
		return err
	}
	now := s.now()
	h, err := s.cfg.Store.UpdateHITLDetail(c.Request().Context(), id,
		func(cur *workload.HITLDetail) (*workload.HITLDetail, bool, error) {
			next, changed := workload.UpsertHITL(id, cur, req, now)
			return next, changed, nil
		})
	if err != nil {
		return mapTIError(err)
	}
	users := h.Assignees
	if users == nil {
		users = []workload.HITLUser{}
	}
	params := h.Params
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	return c.JSON(http.StatusCreated, hitlRequestBody{TIID: id, Options: h.Options, Subject: h.Subject,
		Body: h.Body, Defaults: h.Defaults, Multiple: h.Multiple, Params: params, AssignedUsers: users})
}

// handleUpdateHITLDetail is PATCH /hitlDetails/{id}: the response, once.
func (s *Server) handleUpdateHITLDetail(c echo.Context) error {
	id, resp, err := readTIBody(c, decodeHITLResponse)
	if err != nil {
		return err
	}
	now := s.now()
	h, err := s.cfg.Store.UpdateHITLDetail(c.Request().Context(), id,
		func(cur *workload.HITLDetail) (*workload.HITLDetail, bool, error) {
			next, err := workload.RespondHITL(cur, resp, now)
			return next, err == nil, err
		})
	var answered *workload.HITLAnsweredError
	switch {
	case errors.As(err, &answered):
		return &APIError{Status: http.StatusConflict, Detail: answered.Error()}
	case errors.Is(err, workload.ErrHITLNotFound), errors.Is(err, workload.ErrNotFound):
		return errHITLNotFound
	case err != nil:
		return err
	}
	return c.JSON(http.StatusOK, hitlDetailAnswer(h))
}

// handleGetHITLDetail is GET /hitlDetails/{id}.
func (s *Server) handleGetHITLDetail(c echo.Context) error {
	id, err := taskInstanceID(c)
	if err != nil {
		return err
	}
	h, err := s.cfg.Store.HITLDetail(c.Request().Context(), id)
	if errors.Is(err, workload.ErrNotFound) {
		return errHITLNotFound
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, hitlDetailAnswer(h))
}
