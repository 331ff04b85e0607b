package gateway

// GET /assets/by-name, /assets/by-uri, /asset-events/by-asset,
// /asset-events/by-asset-alias and
// /task-instances/{id}/validate-inlets-and-outlets, as Airflow's
// execution_api routes/assets.py, routes/asset_events.py and
// routes/task_instances.py answer them.

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/internal/pyjson"
	"github.com/taskgate/taskgate/workload"
)

// assetResponse is AssetResponse.
type assetResponse struct {
	Name  string          `json:"name"`
	URI   string          `json:"uri"`
	Group string          `json:"group"`
	Extra json.RawMessage `json:"extra"`
}

func wireAsset(a workload.Asset) assetResponse {
	extra := a.Extra
	if len(extra) == 0 {
		extra = json.RawMessage("null")
	}
	return assetResponse{Name: a.Name, URI: a.URI, Group: a.Group, Extra: extra}
}

// pyTime is a timestamp as pydantic writes an aware UTC datetime:
// 2021-01-01T00:00:00Z, microseconds only when there are some.
type pyTime time.Time

func (t pyTime) MarshalJSON() ([]byte, error) {
	u := time.Time(t).UTC().Truncate(time.Microsecond)
	layout := "2006-01-02T15:04:05Z"
	if u.Nanosecond() != 0 {
		layout = "2006-01-02T15:04:05.000000Z"
	}
	return []byte(`"` + u.Format(layout) + `"`), nil
}

func pyTimePtr(t *time.Time) *pyTime {
	if t == nil {
		return nil
	}
	p := pyTime(*t)
	return &p
}

// dagRunAssetReference is DagRunAssetReference.
type dagRunAssetReference struct {
	RunID             string  `json:"run_id"`
	DagID             string  `json:"dag_id"`
	LogicalDate       *pyTime `json:"logical_date"`
	StartDate         *pyTime `json:"start_date"`
	EndDate           *pyTime `json:"end_date"`
	State             string  `json:"state"`
	DataIntervalStart *pyTime `json:"data_interval_start"`
	DataIntervalEnd   *pyTime `json:"data_interval_end"`
	PartitionKey      *string `json:"partition_key"`
}

// assetEventResponse is AssetEventResponse.
type assetEventResponse struct {
	ID             int64                  `json:"id"`
	Timestamp      pyTime                 `json:"timestamp"`
	Extra          json.RawMessage        `json:"extra"`
	Asset          assetResponse          `json:"asset"`
	CreatedDagRuns []dagRunAssetReference `json:"created_dagruns"`
	SourceTaskID   *string                `json:"source_task_id"`
	SourceDagID    *string                `json:"source_dag_id"`
	SourceRunID    *string                `json:"source_run_id"`
	SourceMapIndex *int                   `json:"source_map_index"`
	PartitionKey   *string                `json:"partition_key"`
}

// assetEventsResponse is AssetEventsResponse.
type assetEventsResponse struct {
	AssetEvents []assetEventResponse `json:"asset_events"`
}

// inactiveAssetsResponse is InactiveAssetsResponse.
type inactiveAssetsResponse struct {
	InactiveAssets []workload.AssetProfile `json:"inactive_assets"`
}

// assetModels are the bodies of the asset routes (see modelTables).
var assetModels = map[string]routeModel{
	"GET /execution/assets/by-name":                                               {Response: assetResponse{}},
	"GET /execution/assets/by-uri":                                                {Response: assetResponse{}},
	"GET /execution/assets/by-alias":                                              {Response: []assetResponse{}},
	"GET /execution/asset-events/by-asset":                                        {Response: assetEventsResponse{}},
	"GET /execution/asset-events/by-asset-alias":                                  {Response: assetEventsResponse{}},
	"GET /execution/task-instances/:task_instance_id/validate-inlets-and-outlets": {Response: inactiveAssetsResponse{}},
}

// queryLast returns a query parameter's last value (Starlette's lookup of
// a single-valued parameter) and whether it was given at all.
func queryLast(c echo.Context, name string) (string, bool) {
	vs, ok := c.QueryParams()[name]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// requiredQuery is a query parameter FastAPI requires (it may be empty).
func requiredQuery(c echo.Context, name string, errs *[]FieldError) string {
	v, ok := queryLast(c, name)
	if !ok {
		*errs = append(*errs, FieldError{Type: "missing", Loc: []any{"query", name}, Msg: "Field required"})
	}
	return v
}

// handleGetAssetByName is GET /assets/by-name?name=.
func (s *Server) handleGetAssetByName(c echo.Context) error {
	var errs []FieldError
	name := requiredQuery(c, "name", &errs)
	if errs != nil {
		return &ValidationError{errs}
	}
	a, err := s.cfg.Store.ActiveAssetByName(c.Request().Context(), name)
	if errors.Is(err, workload.ErrNotFound) {
		return notFound("Asset with name " + name + " not found")
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, wireAsset(*a))
}

// handleGetAssetByURI is GET /assets/by-uri?uri=.
func (s *Server) handleGetAssetByURI(c echo.Context) error {
	var errs []FieldError
	uri := requiredQuery(c, "uri", &errs)
	if errs != nil {
		return &ValidationError{errs}
	}
	a, err := s.cfg.Store.ActiveAssetByURI(c.Request().Context(), uri)
	if errors.Is(err, workload.ErrNotFound) {
		return notFound("Asset with URI " + uri + " not found")
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, wireAsset(*a))
}

// handleGetAssetsByAlias is GET /assets/by-alias?alias_name= (API version
// 2026-06-30): the assets an alias resolves to, as a list of
// AssetResponse. Airflow's route was not available to read; its shape is
// the Task SDK client's (AssetOperations.get_by_alias), and an unknown
// alias resolves to no assets.
func (s *Server) handleGetAssetsByAlias(c echo.Context) error {
	var errs []FieldError
	alias := requiredQuery(c, "alias_name", &errs)
	if errs != nil {
		return &ValidationError{errs}
	}
	assets, err := s.cfg.Store.AssetsByAlias(c.Request().Context(), alias)
	if err != nil {
		return err
	}
	out := make([]assetResponse, 0, len(assets))
	for _, a := range assets {
		out = append(out, wireAsset(a))
	}
	return c.JSON(http.StatusOK, out)
}

// parseExtraFilter reads the repeated extra=key=value parameter (422 with
// a plain detail for an entry without '=', before anything else is
// checked, as Airflow's dependency raises it). A later key wins.
func parseExtraFilter(c echo.Context) (map[string]string, error) {
	var out map[string]string
	for _, item := range c.QueryParams()["extra"] {
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return nil, &APIError{Status: http.StatusUnprocessableEntity,
				Detail: "Invalid extra parameter format: " + pyjson.Repr(item) + ". Expected 'key=value'."}
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out, nil
}

// queryDatetime reads an optional UtcDateTime query parameter.
func queryDatetime(c echo.Context, name string, errs *[]FieldError) *time.Time {
	v, ok := queryLast(c, name)
	if !ok {
		return nil
	}
	return parseQueryDatetime(v, errs, "query", name)
}

// parseQueryDatetime reads one UtcDateTime query value, found at loc, as
// pydantic does: an ISO 8601 text or a number of seconds since the epoch.
func parseQueryDatetime(v string, errs *[]FieldError, loc ...any) *time.Time {
	raw, _ := json.Marshal(v)
	if t, ok := parseDatetime(raw); ok {
		return &t
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if t, ok := parseDatetime(json.RawMessage(strconv.FormatFloat(f, 'f', -1, 64))); ok {
			return &t
		}
	}
	*errs = append(*errs, FieldError{Type: "datetime_parsing", Loc: loc,
		Msg: "Input should be a valid datetime", Input: v})
	return nil
}

// parseAssetEventQuery reads the parameters both asset-event routes take.
func parseAssetEventQuery(c echo.Context, q *workload.AssetEventQuery, errs *[]FieldError) {
	q.After = queryDatetime(c, "after", errs)
	q.Before = queryDatetime(c, "before", errs)
	q.Ascending = true
	if v, ok := queryLast(c, "ascending"); ok {
		switch strings.ToLower(v) {
		case "1", "true", "t", "yes", "y", "on":
		case "0", "false", "f", "no", "n", "off":
			q.Ascending = false
		default:
			*errs = append(*errs, FieldError{Type: "bool_parsing", Loc: []any{"query", "ascending"},
				Msg: "Input should be a valid boolean, unable to interpret input", Input: v})
		}
	}
	if v, ok := queryLast(c, "limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			*errs = append(*errs, FieldError{Type: "int_parsing", Loc: []any{"query", "limit"},
				Msg: "Input should be a valid integer, unable to parse string as an integer", Input: v})
		} else {
			q.Limit = &n
		}
	}
	if v, ok := queryLast(c, "partition_key"); ok {
		q.PartitionKey = &v
	}
}

// partitionFilter checks partition_key and partition_key_pattern as
// Airflow's _validate_partition_key_params does (400s). The pattern is
// compiled as Go's regexp: a pattern it refuses (backreferences,
// lookaround) is refused, with Go's reason.
func partitionFilter(c echo.Context, q *workload.AssetEventQuery) error {
	// The route names it partition_key_pattern; newer Task SDK clients
	// send partition_key_regexp_pattern. Both are taken.
	pattern, ok := queryLast(c, "partition_key_pattern")
	if !ok {
		pattern, ok = queryLast(c, "partition_key_regexp_pattern")
	}
	if q.PartitionKey != nil && ok {
		return &APIError{Status: http.StatusBadRequest, Detail: reasonDetail("Mutually exclusive parameters",
			"partition_key and partition_key_pattern cannot both be provided. "+
				"Use partition_key for exact match or partition_key_pattern for regex filtering.")}
	}
	if !ok {
		return nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return &workload.InvalidPatternError{Reason: err.Error()}
	}
	q.PartitionKeyPattern = re
	return nil
}

// handleGetAssetEventsByAsset is GET /asset-events/by-asset.
func (s *Server) handleGetAssetEventsByAsset(c echo.Context) error {
	extra, err := parseExtraFilter(c)
	if err != nil {
		return err
	}
	var errs []FieldError
	q := workload.AssetEventQuery{Extra: extra}
	q.Name = requiredQuery(c, "name", &errs)
	q.URI = requiredQuery(c, "uri", &errs)
	parseAssetEventQuery(c, &q, &errs)
	if errs != nil {
		return &ValidationError{errs}
	}
	if q.Name == "" && q.URI == "" {
		return &APIError{Status: http.StatusBadRequest,
			Detail: reasonDetail("Missing parameter", "name and uri cannot both be None")}
	}
	if err := partitionFilter(c, &q); err != nil {
		return err
	}
	return s.serveAssetEvents(c, q)
}

// handleGetAssetEventsByAlias is GET /asset-events/by-asset-alias.
func (s *Server) handleGetAssetEventsByAlias(c echo.Context) error {
	extra, err := parseExtraFilter(c)
	if err != nil {
		return err
	}
	var errs []FieldError
	q := workload.AssetEventQuery{Extra: extra, ByAlias: true}
	q.Alias = requiredQuery(c, "name", &errs)
	parseAssetEventQuery(c, &q, &errs)
	if errs != nil {
		return &ValidationError{errs}
	}
	if err := partitionFilter(c, &q); err != nil {
		return err
	}
	return s.serveAssetEvents(c, q)
}

func (s *Server) serveAssetEvents(c echo.Context, q workload.AssetEventQuery) error {
	events, err := s.cfg.Store.AssetEvents(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := assetEventsResponse{AssetEvents: make([]assetEventResponse, 0, len(events))}
	for _, e := range events {
		runs := make([]dagRunAssetReference, 0, len(e.CreatedDagRuns))
		for _, r := range e.CreatedDagRuns {
			runs = append(runs, dagRunAssetReference{RunID: r.RunID, DagID: r.DagID,
				LogicalDate: pyTimePtr(r.LogicalDate), StartDate: pyTimePtr(r.StartDate), EndDate: pyTimePtr(r.EndDate),
				State: r.State, DataIntervalStart: pyTimePtr(r.DataIntervalStart), DataIntervalEnd: pyTimePtr(r.DataIntervalEnd),
				PartitionKey: r.PartitionKey})
		}
		extra := e.Extra
		if len(extra) == 0 {
			extra = json.RawMessage("null")
		}
		out.AssetEvents = append(out.AssetEvents, assetEventResponse{ID: e.ID, Timestamp: pyTime(e.Timestamp),
			Extra: extra, Asset: wireAsset(e.Asset), CreatedDagRuns: runs, SourceTaskID: e.SourceTaskID,
			SourceDagID: e.SourceDagID, SourceRunID: e.SourceRunID, SourceMapIndex: e.SourceMapIndex,
			PartitionKey: e.PartitionKey})
	}
	return c.JSON(http.StatusOK, out)
}

// handleValidateInletsAndOutlets is GET
// /task-instances/{id}/validate-inlets-and-outlets.
func (s *Server) handleValidateInletsAndOutlets(c echo.Context) error {
	id, err := taskInstanceID(c)
	if err != nil {
		return err
	}
	inactive, err := s.cfg.Store.InactiveAssets(c.Request().Context(), id)
	if err != nil {
		return mapTIError(err)
	}
	if inactive == nil {
		inactive = []workload.AssetProfile{}
	}
	return c.JSON(http.StatusOK, inactiveAssetsResponse{InactiveAssets: inactive})
}

// checkOutlets validates a success report's task_outlets (a list of
// AssetProfile, a strict model) and outlet_events (a list of objects) item
// by item, recording pydantic's errors on o.
func checkOutlets(o *object, outlets, events json.RawMessage) {
	fail := func(loc []any, typ, msg string, input any, ctx map[string]any) {
		o.errs = append(o.errs, FieldError{Type: typ, Loc: append(append([]any(nil), o.loc...), loc...),
			Msg: msg, Input: input, Ctx: ctx})
	}
	var items []json.RawMessage
	if len(outlets) > 0 && json.Unmarshal(outlets, &items) == nil {
		for i, item := range items {
			var fields map[string]json.RawMessage
			if len(item) == 0 || item[0] != '{' || json.Unmarshal(item, &fields) != nil {
				fail([]any{"task_outlets", i}, "model_type",
					"Input should be a valid dictionary or instance of AssetProfile", rawInput(item),
					map[string]any{"class_name": "AssetProfile"})
				continue
			}
			for _, name := range []string{"name", "uri", "type"} {
				v, ok := fields[name]
				switch {
				case !ok && name == "type":
					fail([]any{"task_outlets", i, name}, "missing", "Field required", rawInput(item), nil)
				case !ok || (isNull(v) && name != "type"):
				case len(v) == 0 || v[0] != '"':
					fail([]any{"task_outlets", i, name}, "string_type", "Input should be a valid string", rawInput(v), nil)
				}
			}
			for k, v := range fields {
				if k != "name" && k != "uri" && k != "type" {
					fail([]any{"task_outlets", i, k}, "extra_forbidden", "Extra inputs are not permitted", rawInput(v), nil)
				}
			}
		}
	}
	items = nil
	if len(events) > 0 && json.Unmarshal(events, &items) == nil {
		for i, item := range items {
			if len(item) == 0 || item[0] != '{' {
				fail([]any{"outlet_events", i}, "dict_type", "Input should be a valid dictionary", rawInput(item), nil)
			}
		}
	}
}
