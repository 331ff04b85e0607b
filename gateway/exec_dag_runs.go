package gateway

// The /dag-runs and /dags routes: a task triggering or clearing a dag run
// (TriggerDagRunOperator), and the reads a task or the triggerer makes while
// it waits for one (its state, counts, the previous run, the DAG's paused
// flag). Bodies are the newest version's (2026-11-13).

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/workload"
)

// triggerDagRunPayload is TriggerDAGRunPayload (extra fields forbidden).
type triggerDagRunPayload struct {
	LogicalDate  *time.Time     `json:"logical_date"`
	RunAfter     *time.Time     `json:"run_after"`
	Conf         map[string]any `json:"conf"`
	ResetDagRun  bool           `json:"reset_dag_run"`
	PartitionKey *string        `json:"partition_key"`
	Note         *string        `json:"note"`
}

// clearDagRunPayload is ClearDagRunPayload (extra fields forbidden); the
// body is optional.
type clearDagRunPayload struct {
	OnlyFailed bool `json:"only_failed"`
}

// dagRunStateBody is DagRunStateResponse.
type dagRunStateBody struct {
	State string `json:"state"`
}

// dagStateBody is DagStateResponse.
type dagStateBody struct {
	IsPaused bool `json:"is_paused"`
}

// dagBody is DagResponse, as Airflow's get_dag fills it from the DagModel:
// the tags sorted (Python's sorted, by code point) and next_dagrun as
// pydantic writes a UTC datetime.
type dagBody struct {
	DagID           string   `json:"dag_id"`
	IsPaused        bool     `json:"is_paused"`
	BundleName      *string  `json:"bundle_name"`
	BundleVersion   *string  `json:"bundle_version"`
	RelativeFileloc *string  `json:"relative_fileloc"`
	Owners          *string  `json:"owners"`
	Tags            []string `json:"tags"`
	NextDagrun      *pyTime  `json:"next_dagrun"`
}

const (
	dagRunPath = "/execution/dag-runs/:dag_id/:run_id"
	dagPath    = "/execution/dags/:dag_id"
)

// dagRunModels are the bodies of the /dag-runs and /dags routes.
var dagRunModels = map[string]routeModel{
	"POST " + dagRunPath:               {Request: triggerDagRunPayload{}, Status: http.StatusNoContent},
	"GET " + dagRunPath:                {Response: workload.DagRun{}},
	"POST " + dagRunPath + "/clear":    {Request: clearDagRunPayload{}, Status: http.StatusNoContent},
	"GET " + dagRunPath + "/state":     {Response: dagRunStateBody{}},
	"GET /execution/dag-runs/count":    {Response: 0},
	"GET /execution/dag-runs/previous": {Response: &workload.DagRun{}},
	// Before 2026-04-06 (see versions.go).
	"GET /execution/dag-runs/:dag_id/previous": {Response: &workload.DagRun{}},
	"GET " + dagPath + "/state":                {Response: dagStateBody{}},
	"GET " + dagPath:                           {Response: dagBody{}},
}

// dagRunParams reads {dag_id} and {run_id}.
func dagRunParams(c echo.Context) (dagID, runID string, err error) {
	if dagID, err = pathParam(c, "dag_id"); err != nil {
		return "", "", err
	}
	runID, err = pathParam(c, "run_id")
	return dagID, runID, err
}

// errDagRunNotFound is the 404 of the dag-run reads.
func errDagRunNotFound(dagID, runID string) error {
	return notFound(fmt.Sprintf("Dag run with dag_id '%s' and run_id '%s' was not found", dagID, runID))
}

// mapDagRunWriteError words a trigger's or a clear's refusal as Airflow's
// route does.
func mapDagRunWriteError(err error, dagID, runID string) error {
	var refusal *workload.DagRefusal
	switch {
	case errors.As(err, &refusal):
		return &APIError{Status: http.StatusBadRequest, Detail: reasonDetail(refusal.Reason, refusal.Message)}
	case errors.Is(err, workload.ErrDagNotFound):
		return notFound(fmt.Sprintf("Dag with dag_id: '%s' not found", dagID))
	case errors.Is(err, workload.ErrNotFound):
		return notFound(fmt.Sprintf("Dag run with run_id: '%s' not found", runID))
	case errors.Is(err, workload.ErrAlreadyExists):
		return &APIError{Status: http.StatusConflict, Detail: reasonDetail("already_exists",
			fmt.Sprintf("A run already exists for Dag '%s' with run_id '%s'", dagID, runID))}
	}
	return err
}

// boolField reads a boolean as pydantic does in lax mode: JSON true/false,
// 0/1, or one of its words for a string. nullable accepts null as false.
func (o *object) boolField(name string, nullable bool) bool {
	v, ok := o.get(name, false)
	if !ok || (nullable && isNull(v)) {
		return false
	}
	switch string(v) {
	case "true", "1":
		return true
	case "false", "0":
		return false
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		switch strings.ToLower(s) {
		case "1", "true", "t", "yes", "y", "on":
			return true
		case "0", "false", "f", "no", "n", "off":
			return false
		}
		o.fail(name, "bool_parsing", "Input should be a valid boolean, unable to interpret input", s)
		return false
	}
	o.fail(name, "bool_type", "Input should be a valid boolean", rawInput(v))
	return false
}

// errBodyMissing is FastAPI's 422 for a required body that was not sent.
var errBodyMissing = &ValidationError{[]FieldError{{Type: "missing", Loc: []any{"body"}, Msg: "Field required"}}}

// decodeTrigger validates a TriggerDAGRunPayload.
func decodeTrigger(body []byte) (*triggerDagRunPayload, json.RawMessage, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, nil, errBodyMissing
	}
	o, verr := decodeObject(body)
	if verr != nil {
		return nil, nil, verr
	}
	var p triggerDagRunPayload
	p.LogicalDate = o.datetime("logical_date", false, true)
	p.RunAfter = o.datetime("run_after", false, true)
	conf := o.rawField("conf", false, "{n")
	if conf != nil && conf[0] == 'n' {
		if !isNull(conf) {
			o.fail("conf", "dict_type", "Input should be a valid dictionary", rawInput(conf))
		}
		conf = nil
	}
	if conf == nil {
		conf = json.RawMessage("{}") // conf: dict = Field(default_factory=dict)
	}
	p.ResetDagRun = o.boolField("reset_dag_run", true)
	p.PartitionKey = o.str("partition_key", false, true)
	p.Note = o.str("note", false, true)
	o.forbidExtra()
	if err := o.err(); err != nil {
		return nil, nil, err
	}
	return &p, conf, nil
}

// handleTriggerDagRun is POST /dag-runs/{dag_id}/{run_id}: the run is
// recorded queued (see workload.NewTriggeredRun); the triggering user is
// that of the calling task's own dag run. reset_dag_run is the client's
// business: on a 409 it clears the run itself.
func (s *Server) handleTriggerDagRun(c echo.Context) error {
	dagID, runID, err := dagRunParams(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	p, conf, err := decodeTrigger(body)
	if err != nil {
		return err
	}
	dr := workload.NewTriggeredRun(dagID, runID, p.LogicalDate, p.RunAfter, conf, p.PartitionKey, p.Note, nil, s.now())
	err = s.cfg.Store.TriggerDagRun(c.Request().Context(), dr, claimsOf(c).Subject, workload.AdmitTrigger)
	if err != nil {
		return mapDagRunWriteError(err, dagID, runID)
	}
	return c.NoContent(http.StatusNoContent)
}

// handleClearDagRun is POST /dag-runs/{dag_id}/{run_id}/clear, with an
// optional {"only_failed": bool}.
func (s *Server) handleClearDagRun(c echo.Context) error {
	dagID, runID, err := dagRunParams(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var onlyFailed bool
	if trimmed := strings.TrimSpace(string(body)); trimmed != "" && trimmed != "null" {
		o, verr := decodeObject(body)
		if verr != nil {
			return verr
		}
		onlyFailed = o.boolField("only_failed", false)
		o.forbidExtra()
		if verr := o.err(); verr != nil {
			return verr
		}
	}
	err = s.cfg.Store.ClearDagRun(c.Request().Context(), dagID, runID, onlyFailed, workload.AdmitClear)
	if err != nil {
		return mapDagRunWriteError(err, dagID, runID)
	}
	return c.NoContent(http.StatusNoContent)
}

// handleGetDagRun is GET /dag-runs/{dag_id}/{run_id}.
func (s *Server) handleGetDagRun(c echo.Context) error {
	dagID, runID, err := dagRunParams(c)
	if err != nil {
		return err
	}
	dr, err := s.cfg.Store.DagRun(c.Request().Context(), dagID, runID)
	if errors.Is(err, workload.ErrNotFound) {
		return errDagRunNotFound(dagID, runID)
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, workload.WireDagRun(*dr))
}

// handleGetDagRunState is GET /dag-runs/{dag_id}/{run_id}/state.
func (s *Server) handleGetDagRunState(c echo.Context) error {
	dagID, runID, err := dagRunParams(c)
	if err != nil {
		return err
	}
	dr, err := s.cfg.Store.DagRun(c.Request().Context(), dagID, runID)
	if errors.Is(err, workload.ErrNotFound) {
		return errDagRunNotFound(dagID, runID)
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, dagRunStateBody{State: dr.State})
}

// handleCountDagRuns is GET /dag-runs/count?dag_id=…[&logical_dates=…]
// [&run_ids=…][&states=…]: an integer.
func (s *Server) handleCountDagRuns(c echo.Context) error {
	var errs []FieldError
	dagID := requiredQuery(c, "dag_id", &errs)
	q := c.QueryParams()
	f := workload.DagRunFilter{DagID: dagID, RunIDs: q["run_ids"], States: q["states"]}
	for i, v := range q["logical_dates"] {
		if t := parseQueryDatetime(v, &errs, "query", "logical_dates", i); t != nil {
			f.LogicalDates = append(f.LogicalDates, *t)
		}
	}
	if len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	n, err := s.cfg.Store.CountDagRuns(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, n)
}

// handleGetPreviousDagRun is GET /dag-runs/previous?dag_id=…&logical_date=…
// [&state=…]: the run with the latest logical date before logical_date, or
// null.
func (s *Server) handleGetPreviousDagRun(c echo.Context) error {
	var errs []FieldError
	return s.previousDagRun(c, requiredQuery(c, "dag_id", &errs), errs)
}

// handleGetPreviousDagRunByPath is GET /dag-runs/{dag_id}/previous, where
// clients of versions 2025-08-10 to 2026-03-31 ask (MovePreviousRunEndpoint
// moved it to /dag-runs/previous): the same answer, the DAG named in the
// path. It is served only at those versions (versions.go); at the newest
// the path is a run named "previous".
func (s *Server) handleGetPreviousDagRunByPath(c echo.Context) error {
	dagID, err := pathParam(c, "dag_id")
	if err != nil {
		return err
	}
	return s.previousDagRun(c, dagID, nil)
}

// previousDagRun answers both routes of the previous run of dagID; errs
// are the refusals of the caller's own parameters.
func (s *Server) previousDagRun(c echo.Context, dagID string, errs []FieldError) error {
	var before time.Time
	if _, ok := queryLast(c, "logical_date"); !ok {
		requiredQuery(c, "logical_date", &errs)
	} else if t := queryDatetime(c, "logical_date", &errs); t != nil {
		before = *t
	}
	state := c.QueryParam("state")
	if state != "" && !contains(workload.DagRunStates, state) {
		expected := "'queued', 'running', 'success' or 'failed'"
		errs = append(errs, FieldError{Type: "enum", Loc: []any{"query", "state"},
			Msg: "Input should be " + expected, Input: state, Ctx: map[string]any{"expected": expected}})
	}
	if len(errs) > 0 {
		return &ValidationError{Errors: errs}
	}
	dr, err := s.cfg.Store.PreviousDagRun(c.Request().Context(), dagID, before, state)
	if errors.Is(err, workload.ErrNotFound) {
		return c.JSON(http.StatusOK, nil)
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, workload.WireDagRun(*dr))
}

// dagOf reads the path's DAG, or the 404 of the /dags routes.
func (s *Server) dagOf(c echo.Context) (*workload.Dag, error) {
	dagID, err := pathParam(c, "dag_id")
	if err != nil {
		return nil, err
	}
	d, err := s.cfg.Store.Dag(c.Request().Context(), dagID)
	if errors.Is(err, workload.ErrNotFound) {
		return nil, notFound(fmt.Sprintf("The Dag with dag_id: `%s` was not found", dagID))
	}
	return d, err
}

// handleGetDagState is GET /dags/{dag_id}/state.
func (s *Server) handleGetDagState(c echo.Context) error {
	d, err := s.dagOf(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, dagStateBody{IsPaused: d.Paused()})
}

// handleGetDag is GET /dags/{dag_id}.
func (s *Server) handleGetDag(c echo.Context) error {
	d, err := s.dagOf(c)
	if err != nil {
		return err
	}
	tags := append([]string{}, d.Tags...)
	sort.Strings(tags) // byte order of UTF-8 is code-point order
	return c.JSON(http.StatusOK, dagBody{DagID: d.DagID, IsPaused: d.Paused(), BundleName: d.BundleName,
		BundleVersion: d.BundleVersion, RelativeFileloc: d.RelativeFileloc, Owners: d.Owners, Tags: tags,
		NextDagrun: pyTimePtr(d.NextDagrun)})
}
