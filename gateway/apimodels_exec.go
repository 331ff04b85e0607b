package gateway

import (
	"encoding/json"
	"net/http"
	"reflect"
	"time"

	"github.com/taskgate/taskgate/workload"
)

// The body types of the Execution API routes of health, the task-instance
// lifecycle, variables, connections, XComs and token refresh, for the
// OpenAPI document (openapi.go). Types named as Airflow's models are the
// wire shapes the handlers decode by hand (validate.go) or encode.

const tiRoute = "/execution/task-instances/:task_instance_id"

var healthDocModels = map[string]routeModel{
	"GET /execution/health":      {Response: HealthResponse{}},
	"GET /execution/health/ping": {Response: HealthPingResponse{}},
}

var taskInstanceLifecycleModels = map[string]routeModel{
	"PATCH " + tiRoute + "/run":                                    {Request: TIEnterRunningPayload{}, Response: runContext{}},
	"PATCH " + tiRoute + "/state":                                  {Request: TIStateUpdate{}, Status: http.StatusNoContent},
	"PUT " + tiRoute + "/heartbeat":                                {Request: TIHeartbeatInfo{}, Status: http.StatusNoContent},
	"PUT " + tiRoute + "/rtif":                                     {Request: map[string]json.RawMessage{}, Response: MessageResponse{}, Status: http.StatusCreated},
	"PATCH " + tiRoute + "/skip-downstream":                        {Request: TISkippedDownstreamTasksStatePayload{}, Status: http.StatusNoContent},
	"GET " + tiRoute + "/previous-successful-dagrun":               {Response: PrevSuccessfulDagRunResponse{}},
	"GET /execution/task-reschedules/:task_instance_id/start_date": {Response: (*time.Time)(nil), Query: []string{"try_number"}},
}

var variableConnectionModels = map[string]routeModel{
	"GET /execution/variables/keys":             {Response: VariableKeysResponse{}, Query: []string{"prefix", "limit", "offset"}},
	"GET /execution/variables/*":                {Response: VariableResponse{}, Wildcard: "variable_key"},
	"PUT /execution/variables/*":                {Request: VariablePostBody{}, Response: MessageResponse{}, Status: http.StatusCreated, Wildcard: "variable_key"},
	"DELETE /execution/variables/*":             {Status: http.StatusNoContent, Wildcard: "variable_key"},
	"GET /execution/connections/:connection_id": {Response: ConnectionResponse{}},
}

const xcomRoute = "/execution/xcoms/:dag_id/:run_id/:task_id/*"

var xcomRouteModels = map[string]routeModel{
	"GET " + xcomRoute: {Response: XComResponse{}, Wildcard: "key",
		Query: []string{"map_index", "include_prior_dates", "offset"}},
	"HEAD " + xcomRoute:   {Wildcard: "key", Query: []string{"map_index"}},
	"POST " + xcomRoute:   {Request: (*json.RawMessage)(nil), Response: MessageResponse{}, Status: http.StatusCreated, Wildcard: "key", Query: []string{"map_index", "mapped_length"}},
	"DELETE " + xcomRoute: {Response: MessageResponse{}, Wildcard: "key", Query: []string{"map_index"}},
}

var tokenRefreshModels = map[string]routeModel{
	"POST /execution/token/refresh": {Response: TokenRefreshResponse{}},
}

// HealthResponse is GET /health's body.
type HealthResponse struct {
	Status string `json:"status"`
}

// HealthPingResponse is GET /health/ping's body.
type HealthPingResponse struct {
	OK      []string          `json:"ok"`
	Failing map[string]string `json:"failing"`
}

// MessageResponse is the {"message": …} of writes.
type MessageResponse struct {
	Message string `json:"message"`
}

// TIEnterRunningPayload is PATCH /run's body.
type TIEnterRunningPayload struct {
	State     string    `json:"state"`
	Hostname  string    `json:"hostname"`
	Unixname  string    `json:"unixname"`
	PID       int       `json:"pid"`
	StartDate time.Time `json:"start_date"`
}

// TIHeartbeatInfo is PUT /heartbeat's body.
type TIHeartbeatInfo struct {
	Hostname string `json:"hostname"`
	PID      int    `json:"pid"`
}

// TIStateUpdate is PATCH /state's body: one of the payloads below, chosen
// by its state.
type TIStateUpdate struct{}

func (TIStateUpdate) openAPISchema(g *schemaGen) map[string]any {
	var one []any
	for _, t := range []any{TITerminalStatePayload{}, TISuccessStatePayload{}, TITargetStatePayload{},
		TIDeferredStatePayload{}, TIRescheduleStatePayload{}, TIRetryStatePayload{}, TIAwaitingInputStatePayload{}} {
		one = append(one, g.schema(reflect.TypeOf(t)))
	}
	return map[string]any{"oneOf": one}
}

// TITerminalStatePayload ends a try failed, skipped, removed or
// upstream_failed.
type TITerminalStatePayload struct {
	State            string    `json:"state"`
	EndDate          time.Time `json:"end_date"`
	RenderedMapIndex *string   `json:"rendered_map_index,omitempty"`
}

// TISuccessStatePayload ends a try successfully.
type TISuccessStatePayload struct {
	State            string            `json:"state"`
	EndDate          time.Time         `json:"end_date"`
	TaskOutlets      []json.RawMessage `json:"task_outlets,omitempty"`
	OutletEvents     []json.RawMessage `json:"outlet_events,omitempty"`
	RenderedMapIndex *string           `json:"rendered_map_index,omitempty"`
}

// TITargetStatePayload moves a try to an intermediate state.
type TITargetStatePayload struct {
	State string `json:"state"`
}

// TIDeferredStatePayload defers a try to the triggerer.
type TIDeferredStatePayload struct {
	State            string          `json:"state"`
	Classpath        string          `json:"classpath"`
	TriggerKwargs    json.RawMessage `json:"trigger_kwargs,omitempty"`
	TriggerTimeout   *string         `json:"trigger_timeout,omitempty"`
	Queue            *string         `json:"queue,omitempty"`
	NextMethod       string          `json:"next_method"`
	NextKwargs       json.RawMessage `json:"next_kwargs,omitempty"`
	RenderedMapIndex *string         `json:"rendered_map_index,omitempty"`
}

// TIRescheduleStatePayload reschedules a sensor's try.
type TIRescheduleStatePayload struct {
	State          string    `json:"state"`
	RescheduleDate time.Time `json:"reschedule_date"`
	EndDate        time.Time `json:"end_date"`
}

// TIRetryStatePayload ends a try to be retried.
type TIRetryStatePayload struct {
	State             string    `json:"state"`
	EndDate           time.Time `json:"end_date"`
	RenderedMapIndex  *string   `json:"rendered_map_index,omitempty"`
	RetryDelaySeconds *float64  `json:"retry_delay_seconds,omitempty"`
	RetryReason       *string   `json:"retry_reason,omitempty"`
}

// TIAwaitingInputStatePayload parks a try until a human answers.
type TIAwaitingInputStatePayload struct {
	State      string          `json:"state"`
	Timeout    *string         `json:"timeout,omitempty"`
	NextMethod string          `json:"next_method"`
	NextKwargs json.RawMessage `json:"next_kwargs,omitempty"`
}

// TISkippedDownstreamTasksStatePayload is PATCH /skip-downstream's body:
// task ids, or [task_id, map_index] pairs.
type TISkippedDownstreamTasksStatePayload struct {
	Tasks []json.RawMessage `json:"tasks"`
}

// PrevSuccessfulDagRunResponse is GET /previous-successful-dagrun's body.
type PrevSuccessfulDagRunResponse = prevDagRunBody

// VariableResponse is GET /variables/{key}'s body.
type VariableResponse struct {
	Key   string  `json:"key"`
	Value *string `json:"value"`
}

// VariablePostBody is PUT /variables/{key}'s body.
type VariablePostBody struct {
	Value       *string `json:"val"`
	Description *string `json:"description,omitempty"`
}

// VariableKeysResponse is GET /variables/keys' body.
type VariableKeysResponse struct {
	Keys         []string `json:"keys"`
	TotalEntries int      `json:"total_entries"`
}

// ConnectionResponse is GET /connections/{id}'s body.
type ConnectionResponse = workload.Connection

// XComResponse is GET /xcoms/…/{key}'s body (…/item/{offset} answers the
// value alone, …/slice a list of values).
type XComResponse struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// TokenRefreshResponse is POST /token/refresh's body.
type TokenRefreshResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}
