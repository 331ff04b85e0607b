package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/internal/pyjson"
	"github.com/taskgate/taskgate/workload"
)

// xcomPath is the {dag_id}/{run_id}/{task_id}/{key:path} of an XCom route.
type xcomPath struct {
	dagID, runID, taskID, key string
}

// parseXComPath reads the XCom path parameters. The key is everything after
// the task id and may contain '/'.
func parseXComPath(c echo.Context) (xcomPath, error) {
	var p xcomPath
	var err error
	for _, f := range []struct {
		name string
		dst  *string
	}{{"dag_id", &p.dagID}, {"run_id", &p.runID}, {"task_id", &p.taskID}, {"*", &p.key}} {
		if *f.dst, err = pathParam(c, f.name); err != nil {
			return p, err
		}
	}
	if p.key == "" {
		return p, paramError("path", "key", "string_too_short", "String should have at least 1 character", "")
	}
	return p, nil
}

// parseXComTarget reads the path and map_index of an XCom write or delete:
// unlike a read, it names exactly one value, so map_index defaults to -1
// (an unmapped task) instead of "any".
func parseXComTarget(c echo.Context) (xcomPath, int, error) {
	p, err := parseXComPath(c)
	if err != nil {
		return p, 0, err
	}
	mapIndex, err := queryInt(c, "map_index", -1, -1<<31, 1<<31-1)
	return p, mapIndex, err
}

func (p xcomPath) notFound(what string) error {
	return notFound(fmt.Sprintf("XCom with key=%s %s not found for task %s in DAG run %s of %s",
		pyjson.Repr(p.key), what, pyjson.Repr(p.taskID), pyjson.Repr(p.runID), pyjson.Repr(p.dagID)))
}

// queryBool reads a boolean query parameter as pydantic does.
func queryBool(c echo.Context, name string) (bool, error) {
	switch strings.ToLower(c.QueryParam(name)) {
	case "":
		return false, nil
	case "1", "true", "t", "yes", "y", "on":
		return true, nil
	case "0", "false", "f", "no", "n", "off":
		return false, nil
	}
	return false, paramError("query", name, "bool_parsing",
		"Input should be a valid boolean, unable to interpret input", c.QueryParam(name))
}

// queryOptInt reads an optional integer query parameter.
func queryOptInt(c echo.Context, name string) (*int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, paramError("query", name, "int_parsing",
			"Input should be a valid integer, unable to parse string as an integer", v)
	}
	return &n, nil
}

// handleGetXCom is GET /xcoms/{dag}/{run}/{task}/{key}, and also serves
// …/{key}/item/{offset} and …/{key}/slice, which Airflow registers before
// the plain route so that they win over a key ending in those words.
func (s *Server) handleGetXCom(c echo.Context) error {
	p, err := parseXComPath(c)
	if err != nil {
		return err
	}
	if i := strings.LastIndex(p.key, "/item/"); i > 0 {
		if off, err := strconv.Atoi(p.key[i+len("/item/"):]); err == nil {
			p.key = p.key[:i]
			return s.getXComItem(c, p, off)
		}
	}
	if k, ok := strings.CutSuffix(p.key, "/slice"); ok && k != "" {
		p.key = k
		return s.getXComSlice(c, p)
	}
	mapIndex, err := queryOptInt(c, "map_index")
	if err != nil {
		return err
	}
	prior, err := queryBool(c, "include_prior_dates")
	if err != nil {
		return err
	}
	offset, err := queryOptInt(c, "offset")
	if err != nil {
		return err
	}
	q := workload.XComQuery{DagID: p.dagID, RunID: p.runID, TaskID: p.taskID, Key: p.key, IncludePriorDates: prior}
	if offset == nil {
		mi := -1
		if mapIndex != nil {
			mi = *mapIndex
		}
		q.MapIndex = &mi
	}
	xs, err := s.cfg.Store.XComs(c.Request().Context(), q)
	if err != nil {
		return err
	}
	var found *workload.XCom
	if offset == nil {
		if len(xs) > 0 {
			found = &xs[0]
		}
	} else {
		// With an offset Airflow counts only non-null values.
		nonNull := xs[:0:0]
		for _, x := range xs {
			if string(x.Value) != "null" {
				nonNull = append(nonNull, x)
			}
		}
		found = atOffset(nonNull, *offset)
	}
	if found == nil {
		if offset != nil {
			return p.notFound("offset=" + strconv.Itoa(*offset))
		}
		mi := -1
		if mapIndex != nil {
			mi = *mapIndex
		}
		return p.notFound("map_index=" + strconv.Itoa(mi))
	}
	return c.JSON(http.StatusOK, struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}{p.key, valueOrNull(found.Value)})
}

func valueOrNull(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return json.RawMessage("null")
	}
	return v
}

// atOffset indexes xs like a Python sequence: negative offsets count from
// the end.
func atOffset(xs []workload.XCom, off int) *workload.XCom {
	if off < 0 {
		off += len(xs)
	}
	if off < 0 || off >= len(xs) {
		return nil
	}
	return &xs[off]
}

// getXComItem is GET …/{key}/item/{offset}: one mapped value by position in
// this dag run, as a bare JSON value.
func (s *Server) getXComItem(c echo.Context, p xcomPath, off int) error {
	xs, err := s.cfg.Store.XComs(c.Request().Context(),
		workload.XComQuery{DagID: p.dagID, RunID: p.runID, TaskID: p.taskID, Key: p.key})
	if err != nil {
		return err
	}
	x := atOffset(xs, off)
	if x == nil {
		return p.notFound("offset=" + strconv.Itoa(off))
	}
	return c.JSONBlob(http.StatusOK, valueOrNull(x.Value))
}

// getXComSlice is GET …/{key}/slice?start&stop&step: mapped values with
// Python slice semantics, as a JSON array.
func (s *Server) getXComSlice(c echo.Context, p xcomPath) error {
	var bounds [3]*int
	for i, name := range []string{"start", "stop", "step"} {
		v, err := queryOptInt(c, name)
		if err != nil {
			return err
		}
		bounds[i] = v
	}
	if bounds[2] != nil && *bounds[2] == 0 {
		return paramError("query", "step", "value_error", "Value error, slice step cannot be zero", "0")
	}
	prior, err := queryBool(c, "include_prior_dates")
	if err != nil {
		return err
	}
	xs, err := s.cfg.Store.XComs(c.Request().Context(), workload.XComQuery{
		DagID: p.dagID, RunID: p.runID, TaskID: p.taskID, Key: p.key, IncludePriorDates: prior,
	})
	if err != nil {
		return err
	}
	idx := pySlice(len(xs), bounds[0], bounds[1], bounds[2])
	out := make([]json.RawMessage, len(idx))
	for i, j := range idx {
		out[i] = valueOrNull(xs[j].Value)
	}
	return c.JSON(http.StatusOK, out)
}

// pySlice returns the indexes seq[start:stop:step] selects from a sequence
// of length n, with Python's rules for omitted and negative bounds.
func pySlice(n int, start, stop, step *int) []int {
	st := 1
	if step != nil {
		st = *step
	}
	clamp := func(v *int, def, lo, hi int) int {
		if v == nil {
			return def
		}
		x := *v
		if x < 0 {
			x += n
		}
		return min(max(x, lo), hi)
	}
	var out []int
	if st > 0 {
		b, e := clamp(start, 0, 0, n), clamp(stop, n, 0, n)
		for i := b; i < e; i += st {
			out = append(out, i)
		}
	} else {
		b, e := clamp(start, n-1, -1, n-1), clamp(stop, -1, -1, n-1)
		if stop != nil && *stop+n < 0 {
			e = -1
		}
		for i := b; i > e; i += st {
			out = append(out, i)
		}
	}
	return out
}

// handleHeadXCom is HEAD /xcoms/…/{key}: the number of mapped values in
// Content-Range.
func (s *Server) handleHeadXCom(c echo.Context) error {
	p, err := parseXComPath(c)
	if err != nil {
		return err
	}
	if c.QueryParam("map_index") != "" {
		return &APIError{Status: http.StatusBadRequest,
			Detail: reasonDetail("invalid_request", "Cannot specify map_index in a HEAD request")}
	}
	xs, err := s.cfg.Store.XComs(c.Request().Context(),
		workload.XComQuery{DagID: p.dagID, RunID: p.runID, TaskID: p.taskID, Key: p.key})
	if err != nil {
		return err
	}
	c.Response().Header().Set("Content-Range", "map_indexes "+strconv.Itoa(len(xs)))
	return c.NoContent(http.StatusOK)
}

// errXComAccess refuses an XCom write outside the token's own task instance.
var errXComAccess = &APIError{Status: http.StatusForbidden,
	Detail: reasonDetail("access_denied", "Task does not have access to the XCom")}

// requireOwnXCom allows an XCom write or delete only to the token's own task
// instance: same dag, run, task and map index. Airflow lets any task
// overwrite any XCom; here a compromised or buggy task can damage no other
// task's XComs (what else a task may write: README, and variableWrites).
func (s *Server) requireOwnXCom(c echo.Context, p xcomPath, mapIndex int) error {
	claims := claimsOf(c)
	ti, err := s.cfg.Store.TaskInstance(c.Request().Context(), claims.Subject)
	if errors.Is(err, workload.ErrNotFound) {
		return errXComAccess
	} else if err != nil {
		return err
	}
	if ti.DagID != p.dagID || ti.RunID != p.runID || ti.TaskID != p.taskID || ti.MapIndex != mapIndex {
		return errXComAccess
	}
	return nil
}

// handleSetXCom is POST /xcoms/…/{key}: the body is the serialized value.
func (s *Server) handleSetXCom(c echo.Context) error {
	p, mapIndex, err := parseXComTarget(c)
	if err != nil {
		return err
	}
	mappedLength, err := queryOptInt(c, "mapped_length")
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	value := json.RawMessage("null")
	if len(strings.TrimSpace(string(body))) > 0 {
		v, verr := parseJSON(body)
		if verr != nil {
			return verr
		}
		value = v
	}
	if err := s.requireOwnXCom(c, p, mapIndex); err != nil {
		return err
	}
	if mappedLength != nil && *mappedLength > s.cfg.MaxMapLength {
		return &APIError{Status: http.StatusBadRequest, Detail: reasonDetail("unmappable_return_value_length",
			"pushed value is too large to map as a downstream's dependency")}
	}
	err = s.cfg.Store.SetXCom(c.Request().Context(), workload.XCom{
		XComRef: workload.XComRef{DagID: p.dagID, RunID: p.runID, TaskID: p.taskID, MapIndex: mapIndex, Key: p.key},
		Value:   value,
	})
	if errors.Is(err, workload.ErrNotFound) {
		return &APIError{Status: http.StatusNotFound,
			Detail: fmt.Sprintf("DAG run not found on DAG %s with ID %s", pyjson.Repr(p.dagID), pyjson.Repr(p.runID))}
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"message": "XCom successfully set"})
}

// handleDeleteXCom is DELETE /xcoms/…/{key}.
func (s *Server) handleDeleteXCom(c echo.Context) error {
	p, mapIndex, err := parseXComTarget(c)
	if err != nil {
		return err
	}
	if err := s.requireOwnXCom(c, p, mapIndex); err != nil {
		return err
	}
	err = s.cfg.Store.DeleteXCom(c.Request().Context(),
		workload.XComRef{DagID: p.dagID, RunID: p.runID, TaskID: p.taskID, MapIndex: mapIndex, Key: p.key})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"message": "XCom with key: " + p.key + " successfully deleted."})
}
