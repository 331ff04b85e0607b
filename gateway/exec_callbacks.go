package gateway

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/reissue"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// Callbacks: a worker runs a callback queued for it (Airflow's
// ExecuteCallback workload). Its single-use callback token buys the
// callback's /run once, which answers with an execution token whose sub is
// the callback's id ("cb:self"); with that token the worker reports how the
// callback ended.

// callbackState is Airflow's CallbackTerminalStatePayload.
type callbackState struct {
	State  workload.CallbackState `json:"state"`
	Output *string                `json:"output"`
}

var callbackModels = map[string]routeModel{
	"PATCH /execution/callbacks/:callback_id/run":   {Status: http.StatusNoContent},
	"PATCH /execution/callbacks/:callback_id/state": {Request: callbackState{}, Status: http.StatusNoContent},
}

func callbackNotFound(id string) error { return notFound("Callback " + id + " not found") }

// handleRunCallback is PATCH /callbacks/{callback_id}/run: queued → running
// under the row's lock, answered 204 with an execution token for the
// callback in Refreshed-API-Token. Any other state is a 409: the token is
// exchanged once.
func (s *Server) handleRunCallback(c echo.Context) error {
	id, err := uuidParam(c, "callback_id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := s.cfg.Store.UpdateCallback(ctx, id, workload.StartCallback); errors.Is(err, workload.ErrNotFound) {
		return callbackNotFound(id)
	} else if err != nil {
		return err
	}
	tok, exec, err := s.cfg.Signer.Sign(scopes.CallbackExecutionClaims(id), s.cfg.ExecutionTokenLifetime)
	if err != nil {
		return fmt.Errorf("gateway: mint the execution token of callback %s: %w", id, err)
	}
	s.log.Info("callback token exchanged", zap.String("callback_id", id),
		zap.String("jti", claimsOf(c).ID), zap.String("execution_jti", exec.ID))
	c.Response().Header().Set(reissue.Header, tok)
	return c.NoContent(http.StatusNoContent)
}

// decodeCallbackState validates a CallbackTerminalStatePayload.
func decodeCallbackState(body []byte) (callbackState, error) {
	o, verr := decodeObject(body)
	if verr != nil {
		return callbackState{}, verr
	}
	var r callbackState
	if s := o.str("state", true, false); s != nil {
		switch st := workload.CallbackState(*s); st {
		case workload.CallbackSuccess, workload.CallbackFailed:
			r.State = st
		default:
			o.errs = append(o.errs, FieldError{Type: "enum", Loc: []any{"body", "state"},
				Msg: "Input should be 'success' or 'failed'", Input: *s,
				Ctx: map[string]any{"expected": "'success' or 'failed'"}})
		}
	}
	r.Output = o.str("output", false, true)
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return callbackState{}, verr
	}
	return r, nil
}

// handleCallbackState is PATCH /callbacks/{callback_id}/state: a running
// callback's end (success or failed) and its output.
func (s *Server) handleCallbackState(c echo.Context) error {
	id, err := uuidParam(c, "callback_id")
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	r, err := decodeCallbackState(body)
	if err != nil {
		return err
	}
	_, err = s.cfg.Store.UpdateCallback(c.Request().Context(), id, func(cb *workload.Callback) error {
		return workload.FinishCallback(cb, r.State, r.Output)
	})
	if errors.Is(err, workload.ErrNotFound) {
		return callbackNotFound(id)
	} else if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
