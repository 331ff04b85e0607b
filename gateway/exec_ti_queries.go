package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/workload"
)

// The task-instance queries a task makes about other tasks (Airflow's
// routes/task_instances.py: count, states, breadcrumbs, previous) and the
// rendered map index a running task reports.

// tiQueryModels are the bodies of these routes, for the OpenAPI document.
var tiQueryModels = map[string]routeModel{
	"GET /execution/task-instances/count":                                  {Response: 0},
	"GET /execution/task-instances/states":                                 {Response: taskStatesBody{}},
	"GET /execution/task-instances/breadcrumbs":                            {Response: breadcrumbsBody{}},
	"GET /execution/task-instances/previous/:dag_id/:task_id":              {Response: &previousTIBody{}},
	"PATCH /execution/task-instances/:task_instance_id/rendered-map-index": {Request: "", Status: http.StatusNoContent},
}

// taskStatesBody is TaskStatesResponse: run id → task id (or
// "task_id_<map index>" for a mapped task) → state (null when unset).
type taskStatesBody struct {
	TaskStates map[string]map[string]*string `json:"task_states"`
}

// breadcrumbsBody is TaskBreadcrumbsResponse.
type breadcrumbsBody struct {
	Breadcrumbs []breadcrumb `json:"breadcrumbs"`
}

type breadcrumb struct {
	TaskID   string   `json:"task_id"`
	MapIndex int      `json:"map_index"`
	State    *string  `json:"state"`
	Operator *string  `json:"operator"`
	Duration *float64 `json:"duration"`
}

// previousTIBody is PreviousTIResponse.
type previousTIBody struct {
	TaskID      string     `json:"task_id"`
	DagID       string     `json:"dag_id"`
	RunID       string     `json:"run_id"`
	LogicalDate *time.Time `json:"logical_date"`
	StartDate   *time.Time `json:"start_date"`
	EndDate     *time.Time `json:"end_date"`
	State       *string    `json:"state"`
	TryNumber   int        `json:"try_number"`
	MapIndex    int        `json:"map_index"`
	Duration    *float64   `json:"duration"`
}

// tiStates are Airflow's TaskInstanceState values, in its enum's order.
var tiStates = []string{"removed", "scheduled", "queued", "running", "success", "restarting", "failed",
	"up_for_retry", "up_for_reschedule", "upstream_failed", "skipped", "deferred", "awaiting_input"}

func stateOrNull(s workload.State) *string {
	if s == "" {
		return nil
	}
	v := string(s)
	return &v
}

// optionalQueryInt reads an optional int query parameter.
func optionalQueryInt(c echo.Context, name string) (*int, *FieldError) {
	vs, ok := c.QueryParams()[name]
	if !ok || len(vs) == 0 {
		return nil, nil
	}
	v := vs[len(vs)-1]
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return nil, &FieldError{Type: "int_parsing", Loc: []any{"query", name},
			Msg: "Input should be a valid integer, unable to parse string as an integer", Input: v}
	}
	return &n, nil
}

// queryDates reads a list[UtcDateTime] query parameter.
func queryDates(c echo.Context, name string) ([]time.Time, []FieldError) {
	var out []time.Time
	var errs []FieldError
	for i, v := range c.QueryParams()[name] {
		raw, _ := json.Marshal(v)
		t, ok := parseDatetime(raw)
		if !ok {
			errs = append(errs, FieldError{Type: "datetime_from_date_parsing", Loc: []any{"query", name, i},
				Msg: "Input should be a valid datetime or date, invalid character in year", Input: v})
			continue
		}
		out = append(out, t)
	}
	return out, errs
}

// decodeTIQuery reads the query parameters count and states share.
func decodeTIQuery(c echo.Context) (workload.TaskInstanceQuery, string, error) {
	q := workload.TaskInstanceQuery{AnyState: true}
	var errs []FieldError
	q.DagID = requiredQuery(c, "dag_id", &errs)
	mi, ferr := optionalQueryInt(c, "map_index")
	if ferr != nil {
		errs = append(errs, *ferr)
	}
	q.MapIndex = mi
	q.TaskIDs = c.QueryParams()["task_ids"]
	q.RunIDs = c.QueryParams()["run_ids"]
	dates, derrs := queryDates(c, "logical_dates")
	errs = append(errs, derrs...)
	q.LogicalDates = dates
	if len(errs) > 0 {
		return q, "", &ValidationError{errs}
	}
	return q, c.QueryParam("task_group_id"), nil
}

// groupTasks is Airflow's _get_group_tasks: the task instances of the task
// group's tasks matching q (its task ids replaced by the group's).
func (s *Server) groupTasks(c echo.Context, q workload.TaskInstanceQuery, groupID string) ([]workload.TaskInstanceRow, error) {
	ids, err := s.cfg.Store.TaskGroupTaskIDs(c.Request().Context(), q.DagID, groupID)
	switch {
	case errors.Is(err, workload.ErrNoSerializedDag):
		return nil, notFound("The Dag with ID: `" + q.DagID + "` was not found")
	case errors.Is(err, workload.ErrNoTaskGroup):
		return nil, notFound("Task group " + groupID + " not found in DAG " + q.DagID)
	case err != nil:
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	q.TaskIDs, q.AnyState = ids, true
	return s.cfg.Store.QueryTaskInstances(c.Request().Context(), q)
}

// handleTICount is GET /task-instances/count: how many task instances of a
// dag match the filters; "null" in states selects those without a state.
func (s *Server) handleTICount(c echo.Context) error {
	q, groupID, err := decodeTIQuery(c)
	if err != nil {
		return err
	}
	if states := c.QueryParams()["states"]; len(states) > 0 {
		q.AnyState = false
		for _, st := range states {
			if st == "null" {
				st = ""
			}
			q.States = append(q.States, workload.State(st))
		}
	}
	if groupID != "" {
		tasks, err := s.groupTasks(c, q, groupID)
		if err != nil {
			return err
		}
		// The count is then over the group's (task, map index) pairs,
		// the group id itself when none has a task instance.
		pairs := map[[2]string]bool{}
		for _, t := range tasks {
			pairs[[2]string{t.TaskID, strconv.Itoa(t.MapIndex)}] = true
		}
		if len(pairs) == 0 {
			pairs[[2]string{groupID, "-1"}] = true
		}
		rows, err := s.cfg.Store.QueryTaskInstances(c.Request().Context(), q)
		if err != nil {
			return err
		}
		n := 0
		for _, r := range rows {
			if pairs[[2]string{r.TaskID, strconv.Itoa(r.MapIndex)}] {
				n++
			}
		}
		return c.JSON(http.StatusOK, n)
	}
	rows, err := s.cfg.Store.QueryTaskInstances(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, len(rows))
}

// handleTIStates is GET /task-instances/states.
func (s *Server) handleTIStates(c echo.Context) error {
	q, groupID, err := decodeTIQuery(c)
	if err != nil {
		return err
	}
	rows, err := s.cfg.Store.QueryTaskInstances(c.Request().Context(), q)
	if err != nil {
		return err
	}
	if groupID != "" {
		tasks, err := s.groupTasks(c, q, groupID)
		if err != nil {
			return err
		}
		if len(q.TaskIDs) > 0 {
			rows = append(rows, tasks...)
		} else {
			rows = tasks
		}
	}
	out := taskStatesBody{TaskStates: map[string]map[string]*string{}}
	for _, r := range rows {
		m := out.TaskStates[r.RunID]
		if m == nil {
			m = map[string]*string{}
			out.TaskStates[r.RunID] = m
		}
		key := r.TaskID
		if r.MapIndex >= 0 {
			key += "_" + strconv.Itoa(r.MapIndex)
		}
		m[key] = stateOrNull(r.State)
	}
	return c.JSON(http.StatusOK, out)
}

// handleTIBreadcrumbs is GET /task-instances/breadcrumbs: the task
// instances of a dag run that ended by themselves (Airflow's
// TerminalTIState), by task id and map index.
func (s *Server) handleTIBreadcrumbs(c echo.Context) error {
	var errs []FieldError
	dagID := requiredQuery(c, "dag_id", &errs)
	runID := requiredQuery(c, "run_id", &errs)
	if len(errs) > 0 {
		return &ValidationError{errs}
	}
	rows, err := s.cfg.Store.QueryTaskInstances(c.Request().Context(), workload.TaskInstanceQuery{
		DagID: dagID, RunIDs: []string{runID}, States: workload.TerminalTIStates,
	})
	if err != nil {
		return err
	}
	out := breadcrumbsBody{Breadcrumbs: make([]breadcrumb, 0, len(rows))}
	for _, r := range rows {
		out.Breadcrumbs = append(out.Breadcrumbs, breadcrumb{TaskID: r.TaskID, MapIndex: r.MapIndex,
			State: stateOrNull(r.State), Operator: r.Operator, Duration: r.Duration})
	}
	// Rows come by (run, task, map index); one run: by task id, map index.
	return c.JSON(http.StatusOK, out)
}

// handleTIPrevious is GET /task-instances/previous/{dag_id}/{task_id}: the
// task instance of the dag run with the latest logical date (before
// logical_date when given, in state when given), or null.
func (s *Server) handleTIPrevious(c echo.Context) error {
	dagID, err := pathParam(c, "dag_id")
	if err != nil {
		return err
	}
	taskID, err := pathParam(c, "task_id")
	if err != nil {
		return err
	}
	var errs []FieldError
	var before *time.Time
	if vs := c.QueryParams()["logical_date"]; len(vs) > 0 {
		raw, _ := json.Marshal(vs[len(vs)-1])
		if t, ok := parseDatetime(raw); ok {
			before = &t
		} else {
			errs = append(errs, FieldError{Type: "datetime_from_date_parsing", Loc: []any{"query", "logical_date"},
				Msg: "Input should be a valid datetime or date, invalid character in year", Input: vs[len(vs)-1]})
		}
	}
	mapIndex := -1
	if mi, ferr := optionalQueryInt(c, "map_index"); ferr != nil {
		errs = append(errs, *ferr)
	} else if mi != nil {
		mapIndex = *mi
	}
	var state workload.State
	if vs := c.QueryParams()["state"]; len(vs) > 0 {
		v := vs[len(vs)-1]
		if !contains(tiStates, v) {
			quoted := make([]string, len(tiStates))
			for i, s := range tiStates {
				quoted[i] = "'" + s + "'"
			}
			expected := strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
			errs = append(errs, FieldError{Type: "enum", Loc: []any{"query", "state"},
				Msg: "Input should be " + expected, Input: v, Ctx: map[string]any{"expected": expected}})
		}
		state = workload.State(v)
	}
	if len(errs) > 0 {
		return &ValidationError{errs}
	}
	r, err := s.cfg.Store.PreviousTaskInstance(c.Request().Context(), dagID, taskID, mapIndex, before, state)
	if err != nil {
		return err
	}
	if r == nil {
		return c.JSON(http.StatusOK, nil)
	}
	return c.JSON(http.StatusOK, previousTIBody{TaskID: r.TaskID, DagID: r.DagID, RunID: r.RunID,
		LogicalDate: r.LogicalDate, StartDate: r.StartDate, EndDate: r.EndDate, State: stateOrNull(r.State),
		TryNumber: r.TryNumber, MapIndex: r.MapIndex, Duration: r.Duration})
}

// handleRenderedMapIndex is PATCH /task-instances/{id}/rendered-map-index:
// the body is the rendered map index, a JSON string.
func (s *Server) handleRenderedMapIndex(c echo.Context) error {
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
	var value string
	if raw[0] != '"' || json.Unmarshal(raw, &value) != nil {
		return &ValidationError{[]FieldError{{Type: "string_type", Loc: []any{"body"},
			Msg: "Input should be a valid string", Input: rawInput(raw)}}}
	}
	if value == "" {
		return &APIError{Status: http.StatusUnprocessableEntity, Detail: "rendered_map_index cannot be empty"}
	}
	_, err = s.cfg.Store.UpdateTaskInstance(c.Request().Context(), id, func(ti *workload.TaskInstance) error {
		v := value
		ti.RenderedMapIndex = &v
		return nil
	})
	if errors.Is(err, workload.ErrNotFound) {
		return &APIError{Status: http.StatusNotFound, Detail: "Task Instance not found"}
	} else if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
