package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/taskgate/taskgate/reissue"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/workload"
)

// readTIBody reads a task-instance route's {task_instance_id} and its body,
// decoded by decode.
func readTIBody[T any](c echo.Context, decode func([]byte) (T, error)) (string, T, error) {
	var zero T
	id, err := taskInstanceID(c)
	if err != nil {
		return "", zero, err
	}
	body, err := readBody(c)
	if err != nil {
		return "", zero, err
	}
	v, err := decode(body)
	if err != nil {
		return "", zero, err
	}
	return id, v, nil
}

// heartbeat is a decoded TIHeartbeatInfo.
type heartbeat struct {
	host string
	pid  int
}

// taskInstanceID returns the canonical form of the {task_instance_id} path
// parameter, or a 422 like FastAPI's UUID validation.
func taskInstanceID(c echo.Context) (string, error) {
	raw := c.Param("task_instance_id")
	id, ok := scopes.CanonicalUUID(raw)
	if !ok {
		return "", &ValidationError{[]FieldError{{
			Type: "uuid_parsing", Loc: []any{"path", "task_instance_id"},
			Msg: "Input should be a valid UUID", Input: raw,
		}}}
	}
	return id, nil
}

// mapStoreError turns store errors for a task-instance route into responses.
func mapTIError(err error) error {
	if errors.Is(err, workload.ErrNotFound) {
		return errTINotFound
	}
	return err
}

// runContext is Airflow's TIRunContext. Unset fields are omitted, as
// Airflow's route does with response_model_exclude_unset.
type runContext struct {
	DagRun              workload.DagRun `json:"dag_run"`
	TaskRescheduleCount int             `json:"task_reschedule_count"`
	MaxTries            int             `json:"max_tries"`
	Variables           []any           `json:"variables"`
	Connections         []any           `json:"connections"`
	XComKeysToClear     []string        `json:"xcom_keys_to_clear"`
	ShouldRetry         bool            `json:"should_retry"`
	NextMethod          *string         `json:"next_method,omitempty"`
	NextKwargs          json.RawMessage `json:"next_kwargs,omitempty"`
	StartDate           *time.Time      `json:"start_date,omitempty"`
	// ArgBindings is Airflow's argument-binding spec of a stub (foreign
	// runtime) task, from its serialized DAG (see argBindings); unset for
	// every other task.
	ArgBindings json.RawMessage `json:"arg_bindings,omitempty"`
}

// decodeRunRequest validates a TIEnterRunningPayload.
func decodeRunRequest(body []byte) (workload.RunRequest, error) {
	o, verr := decodeObject(body)
	if verr != nil {
		return workload.RunRequest{}, verr
	}
	o.literal("state", "running")
	host := o.str("hostname", true, false)
	unix := o.str("unixname", true, false)
	pid := o.integer("pid", true, false)
	start := o.datetime("start_date", true, false)
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return workload.RunRequest{}, verr
	}
	return workload.RunRequest{Hostname: *host, Unixname: *unix, PID: *pid, StartDate: *start}, nil
}

// handleRunTaskInstance is PATCH /task-instances/{id}/run: queued → running,
// answered with the run context. Called with a workload token, it also
// returns an execution token for the same task instance: the only place a
// workload token buys anything. The swap is one-shot: the token's identity
// is recorded with the task instance in the same write that starts it, and
// a retry of that /run (same worker, same workload token) gets the same
// token back, signed again from the record — never a second one.
func (s *Server) handleRunTaskInstance(c echo.Context) error {
	id, req, err := readTIBody(c, decodeRunRequest)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	now := s.now()
	// The execution token is prepared before the write (a jti and times,
	// no signature) so that the write can record it.
	var exec *scopes.Claims
	if claims := claimsOf(c); claims.Type() == scopes.Workload {
		exec, err = s.cfg.Signer.NewClaims(scopes.ExecutionClaims(id), s.cfg.ExecutionTokenLifetime)
		if err != nil {
			return fmt.Errorf("gateway: mint execution token: %w", err)
		}
		req.Grant = &workload.ExecutionGrant{WorkloadTokenID: claims.ID, ID: exec.ID,
			IssuedAt: exec.IssuedAt, ExpiresAt: exec.ExpiresAt}
	}
	var (
		prev      workload.State
		grant     *workload.ExecutionGrant
		prevStart *time.Time
	)
	ti, err := s.cfg.Store.UpdateTaskInstance(ctx, id, func(ti *workload.TaskInstance) error {
		// Airflow answers a resumed try with the start date its row had
		// before this /run.
		prevStart = ti.StartDate
		var err error
		prev, grant, err = workload.EnterRunning(ti, req, now)
		return err
	})
	if err != nil {
		return mapTIError(err)
	}
	dr, err := s.cfg.Store.DagRun(ctx, ti.DagID, ti.RunID)
	if err != nil {
		return fmt.Errorf("gateway: dag run of task instance %s: %w", id, err)
	}
	rc := runContext{
		DagRun:              workload.WireDagRun(*dr),
		TaskRescheduleCount: len(ti.Reschedules),
		MaxTries:            ti.MaxTries,
		Variables:           []any{},
		Connections:         []any{},
		XComKeysToClear:     []string{},
		ShouldRetry:         workload.ShouldRetry(prev, ti.TryNumber, ti.MaxTries),
	}
	if ti.NextMethod != nil {
		rc.NextMethod, rc.NextKwargs, rc.StartDate = ti.NextMethod, ti.NextKwargs, prevStart
		if len(rc.NextKwargs) == 0 {
			// Set, so sent: Airflow's context carries next_kwargs null.
			rc.NextKwargs = json.RawMessage("null")
		}
	} else {
		// The worker clears the XComs of an earlier try before it runs, so
		// it can purge custom XCom backends too; not when resuming.
		keys, err := s.cfg.Store.XComKeys(ctx, ti.DagID, ti.RunID, ti.TaskID, ti.MapIndex)
		if err != nil {
			return fmt.Errorf("gateway: xcom keys of task instance %s: %w", id, err)
		}
		if keys != nil {
			rc.XComKeysToClear = keys
		}
	}
	// Read after the write, never inside it: on Airflow's database a read
	// inside the write's transaction would wait for a second connection
	// while holding one. So a spec that fails validation answers 500 with
	// the try started, where Airflow's 500 rolls the /run back.
	if rc.ArgBindings, err = s.argBindings(c, ti); err != nil {
		return err
	}
	if grant != nil {
		// exec with the identity of the token handed out: the prepared one,
		// or for a retry the one the first /run recorded.
		tc := *exec
		tc.ID, tc.IssuedAt, tc.NotBefore, tc.ExpiresAt = grant.ID, grant.IssuedAt, grant.IssuedAt, grant.ExpiresAt
		tok, err := s.cfg.Signer.SignVerbatim(&tc)
		if err != nil {
			return fmt.Errorf("gateway: mint execution token: %w", err)
		}
		if grant.ID != exec.ID {
			s.log.Info("repeated /run answered with the execution token already issued",
				zap.String("ti_id", id), zap.String("jti", grant.ID))
		}
		c.Response().Header().Set(reissue.Header, tok)
		if grant.ID == exec.ID {
			s.met.RunSwap() // a retry's token was counted when first handed out
		}
	}
	return c.JSON(http.StatusOK, rc)
}

// argBindingsVersion is the first Execution API version whose
// TIRunContext has arg_bindings (AddArgBindingsToTIRunContext).
const argBindingsVersion = "2026-10-30"

// errInvalidArgBindings is Airflow's answer for a stub task whose
// serialized arg_bindings fail its TaskArgBinding model.
var errInvalidArgBindings = &APIError{Status: http.StatusInternalServerError,
	Detail: reasonDetail("invalid_arg_bindings", "The serialized TaskFlow arg spec for this stub task is not valid.")}

// argBindings is the run context's arg_bindings for ti, as Airflow's ti_run
// derives them: only for a client whose version has the field (Airflow does
// not derive them for older ones, which never see it), from the serialized
// DAG of the try (workload.ArgBindings). The serialized DAG is read only
// for a task the store does not know to be another operator than
// @task.stub's: a store that knows the try's operator spares every other
// task that read.
func (s *Server) argBindings(c echo.Context, ti *workload.TaskInstance) (json.RawMessage, error) {
	if p := stateOf(c).plan; p != nil && p.version < argBindingsVersion {
		return nil, nil
	}
	if ti.Operator != "" && ti.Operator != workload.StubOperatorClass {
		return nil, nil
	}
	op, err := s.cfg.Store.StubTask(c.Request().Context(), ti)
	if err != nil {
		return nil, fmt.Errorf("gateway: stub task of task instance %s: %w", ti.ID, err)
	}
	ab, err := workload.ArgBindings(op)
	if errors.Is(err, workload.ErrInvalidArgBindings) {
		// The error handler logs the cause with the 500.
		return nil, fmt.Errorf("%w: task instance %s (dag %s, version %s): %w", errInvalidArgBindings,
			ti.ID, ti.DagID, ti.DagVersionID, err)
	}
	return ab, err
}

// decodeHeartbeat validates a TIHeartbeatInfo.
func decodeHeartbeat(body []byte) (host string, pid int, err error) {
	if host, pid, ok := scanHeartbeat(body); ok {
		return host, pid, nil
	}
	o, verr := decodeObject(body)
	if verr != nil {
		return "", 0, verr
	}
	h := o.str("hostname", true, false)
	p := o.integer("pid", true, false)
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return "", 0, verr
	}
	return *h, *p, nil
}

// scanHeartbeat reads the body every worker sends, {"hostname": "…", "pid":
// N} in either order, without the generic object decoding, which costs more
// than the rest of a heartbeat's handling. It accepts only a hostname of
// printable ASCII without escapes and a pid of at most 18 digits; anything
// else (ok false) goes through the full validation, which gives the same
// answer for what this accepts (FuzzScanHeartbeat).
func scanHeartbeat(b []byte) (host string, pid int, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", 0, false
	}
	i++
	var seenHost, seenPID bool
	for field := 0; field < 2; field++ {
		if field == 1 {
			if i = skipSpace(b, i); i >= len(b) || b[i] != ',' {
				return "", 0, false
			}
			i++
		}
		key, j, ok := scanPlainString(b, skipSpace(b, i))
		if !ok {
			return "", 0, false
		}
		if i = skipSpace(b, j); i >= len(b) || b[i] != ':' {
			return "", 0, false
		}
		i = skipSpace(b, i+1)
		switch {
		case key == "hostname" && !seenHost:
			if host, i, ok = scanPlainString(b, i); !ok {
				return "", 0, false
			}
			seenHost = true
		case key == "pid" && !seenPID:
			if pid, i, ok = scanSmallInt(b, i); !ok {
				return "", 0, false
			}
			seenPID = true
		default:
			return "", 0, false
		}
	}
	if i = skipSpace(b, i); i >= len(b) || b[i] != '}' || skipSpace(b, i+1) != len(b) {
		return "", 0, false
	}
	return host, pid, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanPlainString reads a JSON string of printable ASCII without escapes.
func scanPlainString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return string(b[i+1 : j]), j + 1, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return "", 0, false
		}
	}
	return "", 0, false
}

// scanSmallInt reads a JSON integer of at most 18 digits (no fraction or
// exponent), which an int holds.
func scanSmallInt(b []byte, i int) (int, int, bool) {
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	start, n := i, 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 19 {
		n = n*10 + int(b[i]-'0')
		i++
	}
	digits := i - start
	if digits == 0 || digits > 18 || (digits > 1 && b[start] == '0') ||
		(i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E' || (b[i] >= '0' && b[i] <= '9'))) {
		return 0, 0, false
	}
	if neg {
		n = -n
	}
	return n, i, true
}

// handleHeartbeat is PUT /task-instances/{id}/heartbeat. The time is stored
// durably: a heartbeat the gateway acknowledged is one the scheduler side can
// rely on after a crash.
func (s *Server) handleHeartbeat(c echo.Context) error {
	err := s.heartbeat(c)
	s.met.Heartbeat(heartbeatResult(err))
	return err
}

func (s *Server) heartbeat(c echo.Context) error {
	id, hb, err := readTIBody(c, func(b []byte) (heartbeat, error) {
		host, pid, err := decodeHeartbeat(b)
		return heartbeat{host, pid}, err
	})
	if err != nil {
		return err
	}
	if err := s.cfg.Store.Heartbeat(c.Request().Context(), id,
		workload.HeartbeatRequest{Hostname: hb.host, PID: hb.pid, At: s.now()}, workload.AdmitHeartbeat); err != nil {
		return mapTIError(err)
	}
	return c.NoContent(http.StatusNoContent)
}

var (
	terminalStates     = []string{"failed", "skipped", "removed", "upstream_failed"}
	intermediateStates = []string{"scheduled", "queued", "restarting", "up_for_retry", "up_for_reschedule", "deferred", "awaiting_input"}
)

// decodeStateUpdate validates a TIStateUpdate, whose model is chosen by its
// state field, each model refusing fields it does not define.
func decodeStateUpdate(body []byte) (workload.StateUpdate, error) {
	o, verr := decodeObject(body)
	if verr != nil {
		return workload.StateUpdate{}, verr
	}
	st := o.str("state", true, false)
	if st == nil {
		o.forbidExtra()
		return workload.StateUpdate{}, o.err()
	}
	u := workload.StateUpdate{State: workload.State(*st)}
	switch u.State {
	case workload.StateSuccess:
		u.EndDate = o.datetime("end_date", true, false)
		u.TaskOutlets = o.rawField("task_outlets", false, "[")
		u.OutletEvents = o.rawField("outlet_events", false, "[")
		checkOutlets(o, u.TaskOutlets, u.OutletEvents)
		u.RenderedMapIndex = o.str("rendered_map_index", false, true)
	case workload.StateFailed, workload.StateSkipped, workload.StateRemoved, workload.StateUpstreamFailed:
		u.EndDate = o.datetime("end_date", true, false)
		u.RenderedMapIndex = o.str("rendered_map_index", false, true)
	case workload.StateUpForRetry:
		u.EndDate = o.datetime("end_date", true, false)
		u.RenderedMapIndex = o.str("rendered_map_index", false, true)
		u.RetryDelaySeconds = o.number("retry_delay_seconds", true)
		u.RetryReason = o.str("retry_reason", false, true)
	case workload.StateDeferred:
		if c := o.str("classpath", true, false); c != nil {
			u.Classpath = *c
		}
		u.TriggerKwargs = o.rawField("trigger_kwargs", false, `{"`)
		u.TriggerTimeout = o.duration("trigger_timeout")
		u.Queue = o.str("queue", false, true)
		u.NextMethod = o.str("next_method", true, false)
		u.NextKwargs = o.rawField("next_kwargs", false, `{"`)
		u.RenderedMapIndex = o.str("rendered_map_index", false, true)
	case workload.StateAwaitingInput:
		u.NextMethod = o.str("next_method", true, false)
		u.NextKwargs = o.rawField("next_kwargs", false, `{"`)
		u.TriggerTimeout = o.duration("timeout")
		u.RenderedMapIndex = o.str("rendered_map_index", false, true)
	case workload.StateUpForReschedule:
		u.RescheduleDate = o.datetime("reschedule_date", true, false)
		u.EndDate = o.datetime("end_date", true, false)
	default:
		if !contains(intermediateStates, *st) {
			allowed := append(append([]string{"success"}, terminalStates...), intermediateStates...)
			o.literalFail("state", allowed, *st)
		}
	}
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return workload.StateUpdate{}, verr
	}
	if len(u.TriggerKwargs) == 0 && u.State == workload.StateDeferred {
		u.TriggerKwargs = json.RawMessage("{}")
	}
	return u, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// handleUpdateState is PATCH /task-instances/{id}/state: 204 when applied,
// 200 when the task instance already is in that state.
func (s *Server) handleUpdateState(c echo.Context) error {
	id, u, err := readTIBody(c, decodeStateUpdate)
	if err != nil {
		return err
	}
	now := s.now()
	var changed bool
	var ti *workload.TaskInstance
	if u.State == workload.StateAwaitingInput {
		// Whether the task parks depends on its Human-in-the-loop request,
		// read in the same transaction (workload.ApplyAwaitingInput).
		ti, err = s.cfg.Store.UpdateTaskInstanceHITL(c.Request().Context(), id,
			func(ti *workload.TaskInstance, h *workload.HITLDetail) error {
				var err error
				changed, err = workload.ApplyAwaitingInput(ti, h, u, now)
				return err
			})
	} else {
		ti, err = s.cfg.Store.UpdateTaskInstance(c.Request().Context(), id, func(ti *workload.TaskInstance) error {
			var err error
			changed, err = workload.ApplyState(ti, u, now)
			return err
		})
	}
	if err != nil {
		return mapTIError(err)
	}
	if changed && u.State == workload.StateSuccess && s.cfg.StateStoreClearOnSuccess {
		// As in Airflow, a failure to clear is logged and the success
		// stands: the state was reported and written.
		if err := s.cfg.Store.ClearTaskState(c.Request().Context(), workload.ScopeOf(ti), false); err != nil {
			s.log.Warn("clear task state store on success", zap.String("ti_id", id), zap.Error(err))
		}
	}
	if !changed {
		return c.NoContent(http.StatusOK)
	}
	return c.NoContent(http.StatusNoContent)
}

// handlePutRenderedFields is PUT /task-instances/{id}/rtif.
func (s *Server) handlePutRenderedFields(c echo.Context) error {
	id, err := taskInstanceID(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	raw, verr := parseJSON(body)
	if verr != nil {
		return verr
	}
	if raw[0] != '{' {
		return &ValidationError{[]FieldError{{Type: "dict_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary", Input: rawInput(raw)}}}
	}
	if err := s.cfg.Store.PutRenderedFields(c.Request().Context(), id, raw); err != nil {
		if errors.Is(err, workload.ErrNotFound) {
			return &APIError{Status: http.StatusNotFound, Detail: "Not Found"}
		}
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"message": "Rendered task instance fields successfully set"})
}

// handleSkipDownstream is PATCH /task-instances/{id}/skip-downstream: the
// listed tasks of the same dag run are marked skipped, except those
// workload.Skip spares.
func (s *Server) handleSkipDownstream(c echo.Context) error {
	id, err := taskInstanceID(c)
	if err != nil {
		return err
	}
	o, err := readObject(c)
	if err != nil {
		return err
	}
	tasks := o.rawField("tasks", true, "[")
	o.forbidExtra()
	if verr := o.err(); verr != nil {
		return verr
	}
	refs, verr := decodeTaskRefs(tasks)
	if verr != nil {
		return verr
	}
	ctx := c.Request().Context()
	ti, err := s.cfg.Store.TaskInstance(ctx, id)
	if err != nil {
		return mapTIError(err)
	}
	now := s.now()
	if err := s.cfg.Store.SkipTaskInstances(ctx, ti.DagID, ti.RunID, refs, func(t *workload.TaskInstance) bool {
		return workload.Skip(t, now)
	}); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// decodeTaskRefs reads ["task_id" | ["task_id", map_index], …].
func decodeTaskRefs(raw json.RawMessage) ([]workload.TaskRef, *ValidationError) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, paramError("body", "tasks", "list_type", "Input should be a valid list", rawInput(raw))
	}
	refs := make([]workload.TaskRef, 0, len(items))
	for i, it := range items {
		var id string
		if json.Unmarshal(it, &id) == nil && len(it) > 0 && it[0] == '"' {
			// A bare task id is the unmapped task (map index -1), as in
			// Airflow; a mapped index is named by a pair.
			unmapped := -1
			refs = append(refs, workload.TaskRef{TaskID: id, MapIndex: &unmapped})
			continue
		}
		var pair []json.RawMessage
		if json.Unmarshal(it, &pair) == nil && len(pair) == 2 && len(pair[0]) > 0 && pair[0][0] == '"' {
			if n, ok := parseInt(pair[1]); ok {
				_ = json.Unmarshal(pair[0], &id)
				refs = append(refs, workload.TaskRef{TaskID: id, MapIndex: &n})
				continue
			}
		}
		return nil, &ValidationError{[]FieldError{{Type: "string_type", Loc: []any{"body", "tasks", i},
			Msg: "Input should be a valid string or a [task_id, map_index] pair", Input: rawInput(it)}}}
	}
	return refs, nil
}

// prevDagRunBody is PrevSuccessfulDagRunResponse.
type prevDagRunBody struct {
	DataIntervalStart *time.Time `json:"data_interval_start"`
	DataIntervalEnd   *time.Time `json:"data_interval_end"`
	StartDate         *time.Time `json:"start_date"`
	EndDate           *time.Time `json:"end_date"`
}

// handleGetPreviousSuccessfulDagRun is GET
// /task-instances/{id}/previous-successful-dagrun: nulls when there is none.
func (s *Server) handleGetPreviousSuccessfulDagRun(c echo.Context) error {
	id, err := taskInstanceID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var out prevDagRunBody
	ti, err := s.cfg.Store.TaskInstance(ctx, id)
	if errors.Is(err, workload.ErrNotFound) {
		return c.JSON(http.StatusOK, out)
	} else if err != nil {
		return err
	}
	dr, err := s.cfg.Store.DagRun(ctx, ti.DagID, ti.RunID)
	if errors.Is(err, workload.ErrNotFound) || (err == nil && dr.LogicalDate == nil) {
		return c.JSON(http.StatusOK, out)
	} else if err != nil {
		return err
	}
	prev, err := s.cfg.Store.PreviousSuccessfulDagRun(ctx, ti.DagID, *dr.LogicalDate)
	if errors.Is(err, workload.ErrNotFound) {
		return c.JSON(http.StatusOK, out)
	} else if err != nil {
		return err
	}
	out = prevDagRunBody{prev.DataIntervalStart, prev.DataIntervalEnd, prev.StartDate, prev.EndDate}
	return c.JSON(http.StatusOK, out)
}

// handleGetRescheduleStartDate is GET /task-reschedules/{id}/start_date:
// the first reschedule's start date for try_number, or null.
func (s *Server) handleGetRescheduleStartDate(c echo.Context) error {
	id, err := taskInstanceID(c)
	if err != nil {
		return err
	}
	try := 1
	if v := c.QueryParam("try_number"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return paramError("query", "try_number", "int_parsing",
				"Input should be a valid integer, unable to parse string as an integer", v)
		}
		try = n
	}
	ti, err := s.cfg.Store.TaskInstance(c.Request().Context(), id)
	if errors.Is(err, workload.ErrNotFound) {
		return c.JSON(http.StatusOK, nil)
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, workload.RescheduleStartDate(ti, try))
}
