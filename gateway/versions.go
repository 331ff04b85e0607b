package gateway

import (
	"encoding/json"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The Execution API's versions, as Airflow's Cadwyn bundle names them
// (airflow-core/src/airflow/api_fastapi/execution_api/versions/__init__.py
// at apache/airflow 00414da86b29a41513bb8fcbbf8766e6cb886e2f). Handlers
// answer in the newest version's shapes; versionChanges says how each older
// version differs, and pickVersion and convertVersion apply it.

// APIVersion is the newest Execution API version, the one every handler
// serves and the one a request without an Airflow-API-Version header gets
// (Cadwyn's api_version_default_value is the bundle's newest version).
const APIVersion = "2026-11-13"

// apiVersions lists every version, oldest first, as Cadwyn sorts them to
// pick the closest version not newer than a requested one.
var apiVersions = []string{
	"2025-04-11",
	"2025-04-28",
	"2025-05-20",
	"2025-08-10",
	"2025-09-23",
	"2025-10-27",
	"2025-11-05",
	"2026-04-06",
	"2026-06-30",
	"2026-10-30",
	"2026-11-13",
}

// versionChange is one of Airflow's VersionChange classes: what its version
// added, relative to the version before it. Everything is named as Airflow
// names it: endpoints by Airflow's path template (under /execution), fields
// by the pydantic model that holds them; modelSites says where a model
// appears in which route's request or response.
type versionChange struct {
	// version is the first version with the change.
	version string
	// name is Airflow's class name.
	name string
	// endpoints the change added (or, with existed, removed).
	endpoints []endpointChange
	// fields added to a model: older versions' requests may not carry
	// them (the models forbid extra fields), older responses lose them.
	fields []modelField
	// queryParams added to a route: an older request's value never reaches
	// the handler.
	queryParams []queryParam
	// stateValues added to a request model's "state" literal.
	stateValues []modelField
	// narrowed request fields: before the change they took only the JSON
	// kinds listed.
	narrowed []narrowedField
	// convert rewrites a response body of a model's sites (Airflow's
	// convert_response_to_previous_version_for), after fields are dropped.
	convert []responseConverter
}

// endpointChange is endpoint(path, [method]).didnt_exist, or .existed when
// existed is set: the endpoint is served only by versions older than the
// change.
type endpointChange struct {
	method, path string
	existed      bool
}

// modelField is schema(model).field(name).
type modelField struct{ model, name string }

// queryParam is a query parameter of route (METHOD and Airflow path).
type queryParam struct{ method, path, name string }

// narrowedField is schema(model).field(name).had(type=…): the JSON kinds
// the older type accepted ("object", "string").
type narrowedField struct {
	model, name string
	kinds       []string
}

// responseConverter rewrites one model's body (a decoded JSON value) for
// the version before the change. path addresses a route instead of a
// model, as Airflow does for routes without a response model.
type responseConverter struct {
	model string
	path  string // "METHOD /airflow/path"
	fn    func(body map[string]any)
}

// versionChanges is the whole difference between versions, newest first,
// as the bundle lists them. Routes other areas add are named here too: an
// entry whose route is not registered has no effect.
var versionChanges = []versionChange{
	// Airflow adds the DAG processor's Job routes in 2027-02-28
	// (versions/v2027_02_28.py at 6b90b8f3), a version newer than taskgate's
	// newest: taskgate serves them from its newest version, and no older
	// version has them. The routes taskgate does not serve are named too.
	{version: "2026-11-13", name: "AddDagProcessorJobEndpoints",
		endpoints: []endpointChange{
			{method: "POST", path: "/jobs"},
			{method: "POST", path: "/jobs/{job_id}/heartbeat"},
			{method: "POST", path: "/jobs/{job_id}/complete"},
			{method: "POST", path: "/jobs/{job_id}/parse-token"},
			{method: "POST", path: "/jobs/{job_id}/parse-results"},
			{method: "GET", path: "/jobs/{job_id}/bundles"},
			{method: "POST", path: "/jobs/{job_id}/bundles/{bundle_name:path}/inventory"},
			{method: "POST", path: "/jobs/{job_id}/requested-work/{kind}/claim"},
			{method: "POST", path: "/jobs/{job_id}/requested-work/{kind}/{work_id}/ack"},
		}},
	{version: "2026-11-13", name: "AddOnlyFailedToClearDagRunPayload",
		fields: []modelField{{"ClearDagRunPayload", "only_failed"}}},

	{version: "2026-10-30", name: "AddArgBindingsToTIRunContext",
		fields: []modelField{{"TIRunContext", "arg_bindings"}}},
	{version: "2026-10-30", name: "AddCallbackRunEndpoint",
		endpoints: []endpointChange{{method: "PATCH", path: "/callbacks/{callback_id}/run"}}},

	{version: "2026-06-30", name: "AddVariableKeysEndpoint",
		endpoints: []endpointChange{{method: "GET", path: "/variables/keys"}}},
	{version: "2026-06-30", name: "AddConnectionTestEndpoint",
		endpoints: []endpointChange{
			{method: "PATCH", path: "/connection-tests/{connection_test_id}"},
			{method: "GET", path: "/connection-tests/{connection_test_id}/connection"},
		}},
	{version: "2026-06-30", name: "AddAwaitingInputStatePayload",
		stateValues: []modelField{{"TIStateUpdate", "awaiting_input"}}},
	{version: "2026-06-30", name: "AddTaskInstanceQueueField",
		fields: []modelField{{"TaskInstance", "queue"}}},
	{version: "2026-06-30", name: "AddRetryPolicyFields",
		fields: []modelField{{"TIRetryStatePayload", "retry_delay_seconds"}, {"TIRetryStatePayload", "retry_reason"}}},
	{version: "2026-06-30", name: "AddTeamNameField",
		fields: []modelField{{"DagRun", "team_name"}}},
	{version: "2026-06-30", name: "AddTaskAndAssetStateStoreEndpoints",
		endpoints: []endpointChange{
			{method: "GET", path: "/store/ti/{task_instance_id}/{key}"},
			{method: "PUT", path: "/store/ti/{task_instance_id}/{key}"},
			{method: "DELETE", path: "/store/ti/{task_instance_id}/{key}"},
			{method: "DELETE", path: "/store/ti/{task_instance_id}"},
			{method: "GET", path: "/store/asset/by-name/value"},
			{method: "PUT", path: "/store/asset/by-name/value"},
			{method: "DELETE", path: "/store/asset/by-name/value"},
			{method: "DELETE", path: "/store/asset/by-name/clear"},
			{method: "GET", path: "/store/asset/by-uri/value"},
			{method: "PUT", path: "/store/asset/by-uri/value"},
			{method: "DELETE", path: "/store/asset/by-uri/value"},
			{method: "DELETE", path: "/store/asset/by-uri/clear"},
		}},
	{version: "2026-06-30", name: "AddAssetsByAliasEndpoint",
		endpoints: []endpointChange{{method: "GET", path: "/assets/by-alias"}}},
	{version: "2026-06-30", name: "AddPartitionDateField",
		fields: []modelField{{"DagRun", "partition_date"}}},

	{version: "2026-04-06", name: "AddPartitionKeyField",
		fields: []modelField{{"DagRun", "partition_key"}, {"AssetEventResponse", "partition_key"},
			{"TriggerDAGRunPayload", "partition_key"}, {"DagRunAssetReference", "partition_key"}},
		convert: []responseConverter{{path: "GET /dag-runs/{dag_id}/previous", fn: dropKeys("partition_key")}}},
	{version: "2026-04-06", name: "MovePreviousRunEndpoint",
		endpoints: []endpointChange{
			{method: "GET", path: "/dag-runs/previous"},
			{method: "GET", path: "/dag-runs/{dag_id}/previous", existed: true},
		}},
	{version: "2026-04-06", name: "AddDagRunDetailEndpoint",
		endpoints: []endpointChange{{method: "GET", path: "/dag-runs/{dag_id}/{run_id}"}}},
	{version: "2026-04-06", name: "MakeDagRunStartDateNullable",
		convert: []responseConverter{
			{model: "DagRun", fn: startDateFromRunAfter},
			{path: "GET /dag-runs/{dag_id}/previous", fn: startDateFromRunAfter},
		}},
	{version: "2026-04-06", name: "ModifyDeferredTaskKwargsToJsonValue",
		narrowed: []narrowedField{
			{"TIDeferredStatePayload", "trigger_kwargs", []string{"object", "string"}},
			{"TIDeferredStatePayload", "next_kwargs", []string{"object"}},
		},
		convert: []responseConverter{{model: "TIRunContext", fn: nextKwargsToBaseSerialization}}},
	{version: "2026-04-06", name: "RemoveUpstreamMapIndexesField",
		convert: []responseConverter{{model: "TIRunContext", fn: func(b map[string]any) { b["upstream_map_indexes"] = nil }}}},
	{version: "2026-04-06", name: "AddNoteField",
		fields:  []modelField{{"DagRun", "note"}, {"TriggerDAGRunPayload", "note"}},
		convert: []responseConverter{{path: "GET /dag-runs/{dag_id}/previous", fn: dropKeys("note")}}},
	{version: "2026-04-06", name: "AddTaskInstanceStartDateField",
		fields: []modelField{{"TIRunContext", "start_date"}}},
	{version: "2026-04-06", name: "AddRunAfterField",
		fields: []modelField{{"TriggerDAGRunPayload", "run_after"}}},
	{version: "2026-04-06", name: "AddDagEndpoint",
		endpoints: []endpointChange{{method: "GET", path: "/dags/{dag_id}"}}},

	{version: "2025-11-05", name: "AddTriggeringUserNameField",
		fields: []modelField{{"DagRun", "triggering_user_name"}}},

	{version: "2025-10-27", name: "MakeDagRunConfNullable",
		convert: []responseConverter{{model: "DagRun", fn: confNeverNull}}},

	{version: "2025-09-23", name: "AddDagVersionIdField",
		fields: []modelField{{"TaskInstance", "dag_version_id"}}},

	{version: "2025-08-10", name: "AddDagRunStateFieldAndPreviousEndpoint",
		fields:    []modelField{{"DagRun", "state"}},
		endpoints: []endpointChange{{method: "GET", path: "/dag-runs/{dag_id}/previous"}}},
	{version: "2025-08-10", name: "AddIncludePriorDatesToGetXComSlice",
		queryParams: []queryParam{{"GET", "/xcoms/{dag_id}/{run_id}/{task_id}/{key}/slice", "include_prior_dates"}}},

	{version: "2025-05-20", name: "DowngradeUpstreamMapIndexes",
		convert: []responseConverter{{model: "TIRunContext", fn: downgradeUpstreamMapIndexes}}},

	{version: "2025-04-28", name: "AddRenderedMapIndexField",
		fields: []modelField{{"TITerminalStatePayload", "rendered_map_index"}, {"TISuccessStatePayload", "rendered_map_index"},
			{"TIDeferredStatePayload", "rendered_map_index"}, {"TIRetryStatePayload", "rendered_map_index"}}},
}

// modelSite is where an Airflow model appears on the wire: in the request
// (request) or success response of route (METHOD and Airflow path, under
// /execution), at path (keys from the body's root; a key ending in "[]" is
// a list whose every item continues the path). A request model chosen by
// the body's "state" (TIStateUpdate's discriminator) names its states.
type modelSite struct {
	model   string
	route   string
	request bool
	path    []string
	states  []string
}

// modelSites places every model versionChanges names in a route body. A
// model with no site (TaskInstance, part of the workload a worker
// receives, not of any route) changes only the OpenAPI document.
var modelSites = []modelSite{
	{model: "TIRunContext", route: "PATCH /task-instances/{task_instance_id}/run"},
	{model: "DagRun", route: "PATCH /task-instances/{task_instance_id}/run", path: []string{"dag_run"}},
	{model: "DagRun", route: "GET /dag-runs/{dag_id}/{run_id}"},
	{model: "DagRun", route: "GET /dag-runs/previous"},
	// Airflow's compat GET /dag-runs/{dag_id}/previous declares no response
	// model, so only its own converters (by path) touch its body there, and
	// a DagRun field newer than the client's version reaches a client whose
	// DagRun model forbids unknown fields. taskgate converts it as the
	// DagRun it is.
	{model: "DagRun", route: "GET /dag-runs/{dag_id}/previous"},
	{model: "AssetEventsResponse", route: "GET /asset-events/by-asset"},
	{model: "AssetEventsResponse", route: "GET /asset-events/by-asset-alias"},
	{model: "AssetEventResponse", route: "GET /asset-events/by-asset", path: []string{"asset_events[]"}},
	{model: "AssetEventResponse", route: "GET /asset-events/by-asset-alias", path: []string{"asset_events[]"}},
	{model: "DagRunAssetReference", route: "GET /asset-events/by-asset", path: []string{"asset_events[]", "created_dagruns[]"}},
	{model: "DagRunAssetReference", route: "GET /asset-events/by-asset-alias", path: []string{"asset_events[]", "created_dagruns[]"}},

	{model: "TIStateUpdate", route: "PATCH /task-instances/{task_instance_id}/state", request: true},
	{model: "TISuccessStatePayload", route: "PATCH /task-instances/{task_instance_id}/state", request: true,
		states: []string{"success"}},
	{model: "TITerminalStatePayload", route: "PATCH /task-instances/{task_instance_id}/state", request: true,
		states: []string{"failed", "skipped", "removed", "upstream_failed"}},
	{model: "TIRetryStatePayload", route: "PATCH /task-instances/{task_instance_id}/state", request: true,
		states: []string{"up_for_retry"}},
	{model: "TIDeferredStatePayload", route: "PATCH /task-instances/{task_instance_id}/state", request: true,
		states: []string{"deferred"}},
	{model: "TriggerDAGRunPayload", route: "POST /dag-runs/{dag_id}/{run_id}", request: true},
	{model: "ClearDagRunPayload", route: "POST /dag-runs/{dag_id}/{run_id}/clear", request: true},
}

// dropKeys returns a converter that removes keys from a body.
func dropKeys(keys ...string) func(map[string]any) {
	return func(b map[string]any) {
		for _, k := range keys {
			delete(b, k)
		}
	}
}

// startDateFromRunAfter keeps start_date non-null for clients that declare
// it so: a run not started yet reports its run_after.
func startDateFromRunAfter(b map[string]any) {
	if b["start_date"] == nil {
		b["start_date"] = b["run_after"]
	}
}

// confNeverNull gives older clients, whose DagRun.conf is a dict, {} for a
// run without conf.
func confNeverNull(b map[string]any) {
	if b["conf"] == nil {
		b["conf"] = map[string]any{}
	}
}

// downgradeUpstreamMapIndexes turns upstream_map_indexes' values into the
// single integers 2025-04-11 clients expect.
func downgradeUpstreamMapIndexes(b map[string]any) {
	m, ok := b["upstream_map_indexes"].(map[string]any)
	if !ok {
		return
	}
	for k, v := range m {
		switch x := v.(type) {
		case jsonNumber:
			continue
		case []any:
			if len(x) > 0 && allIntegers(x) {
				m[k] = x[0]
				continue
			}
		}
		m[k] = jsonNumber("0")
	}
}

// jsonNumber is how converted bodies hold numbers, exactly as sent.
type jsonNumber = json.Number

func allIntegers(xs []any) bool {
	for _, x := range xs {
		n, ok := x.(jsonNumber)
		if !ok || strings.ContainsAny(string(n), ".eE") {
			return false
		}
	}
	return true
}

// nextKwargsToBaseSerialization rewrites a resumed task's next_kwargs from
// the SDK's serde format to the BaseSerialization format task-sdk < 1.2
// decodes, as Airflow does (serde.deserialize, then
// BaseSerialization.serialize): every dict wrapped as {"__type": "dict",
// "__var": {...}}, and the serde objects of the SDK's own serializers that
// BaseSerialization also knows translated: datetimes, dates, timedeltas and
// tuples. A value holding any other serde object (a class only Airflow's
// Python can load), or BaseSerialization markers serde cannot read, is left
// as it is, as Airflow leaves a value it cannot deserialize; a value already
// in BaseSerialization form stays the same.
func nextKwargsToBaseSerialization(b map[string]any) {
	v, ok := b["next_kwargs"]
	if !ok || v == nil {
		return
	}
	if out, ok := serdeToBaseSerialization(v); ok {
		b["next_kwargs"] = out
	}
}

// serde's and BaseSerialization's markers.
const (
	serdeClassname = "__classname__"
	serdeVersion   = "__version__"
	serdeData      = "__data__"
	baseType       = "__type"
	baseVar        = "__var"
)

// serdeToBaseSerialization translates one serde value, or reports that it
// holds something only Airflow's Python serializers can translate.
func serdeToBaseSerialization(v any) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		o, ok := serdeConvert(x)
		if !ok {
			return nil, false
		}
		_, hasClass := o[serdeClassname]
		_, hasVersion := o[serdeVersion]
		if hasClass && hasVersion {
			return serdeObjectToBaseSerialization(o)
		}
		out := make(map[string]any, len(o))
		for k, e := range o {
			c, ok := serdeToBaseSerialization(e)
			if !ok {
				return nil, false
			}
			out[k] = c
		}
		return map[string]any{baseType: "dict", baseVar: out}, true
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, ok := serdeToBaseSerialization(e)
			if !ok {
				return nil, false
			}
			out[i] = c
		}
		return out, true
	}
	return v, true
}

// serdeConvert is serde's _convert, which reads an old-style
// (BaseSerialization) object before anything else: a dict is its plain
// contents (which serde can read only when they are an object), any other
// __type the serde object of that class name.
func serdeConvert(o map[string]any) (map[string]any, bool) {
	t, hasType := o[baseType]
	v, hasVar := o[baseVar]
	if !hasType || !hasVar {
		return o, true
	}
	if t == "dict" {
		inner, ok := v.(map[string]any)
		return inner, ok
	}
	return map[string]any{serdeClassname: t, serdeVersion: jsonNumber("0"), serdeData: v}, true
}

// isoDate is the date format serde writes (date.isoformat()).
var isoDate = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

// serdeObjectToBaseSerialization translates one serde object
// ({"__classname__", "__version__", "__data__"}) of the SDK's datetime and
// builtin serializers into BaseSerialization's encoding of the same Python
// value: a datetime as its POSIX timestamp (its zone is not kept), a
// timedelta as its seconds, both at Python's microsecond resolution; a date
// as its ISO text (BaseSerialization has no date type and writes str());
// a tuple as a tuple of its items.
func serdeObjectToBaseSerialization(o map[string]any) (any, bool) {
	class, ok := o[serdeClassname].(string)
	if !ok {
		return nil, false
	}
	version, ok := o[serdeVersion].(jsonNumber)
	if !ok {
		return nil, false
	}
	ver, err := version.Int64()
	if err != nil {
		return nil, false
	}
	data := o[serdeData]
	switch class {
	case "datetime.datetime", "pendulum.datetime.DateTime":
		d, ok := data.(map[string]any)
		if ok {
			d, ok = serdeConvert(d)
		}
		if !ok {
			return nil, false
		}
		ts, ok := seconds(d["timestamp"])
		if !ok {
			return nil, false
		}
		return map[string]any{baseType: "datetime", baseVar: ts}, true
	case "datetime.timedelta":
		// Its deserializer takes a float or a string, not an int.
		if n, isNum := data.(jsonNumber); isNum && !strings.ContainsAny(string(n), ".eE") {
			return nil, false
		}
		s, ok := seconds(data)
		if !ok {
			return nil, false
		}
		return map[string]any{baseType: "timedelta", baseVar: s}, true
	case "datetime.date":
		s, ok := data.(string)
		if !ok || !isoDate.MatchString(s) {
			return nil, false
		}
		if _, err := time.Parse(time.DateOnly, s); err != nil {
			return nil, false
		}
		return s, true
	case "builtins.tuple":
		items, ok := data.([]any)
		if !ok || ver > 1 {
			return nil, false
		}
		out, ok := serdeToBaseSerialization(items)
		if !ok {
			return nil, false
		}
		return map[string]any{baseType: "tuple", baseVar: out}, true
	}
	return nil, false
}

// seconds reads serde's float seconds (a number, or its text as float()
// takes it) at Python's datetime resolution, and writes them as Python
// writes a float.
func seconds(v any) (jsonNumber, bool) {
	var f float64
	var err error
	switch x := v.(type) {
	case jsonNumber:
		f, err = x.Float64()
	case string:
		f, err = strconv.ParseFloat(strings.TrimSpace(x), 64)
	default:
		return "", false
	}
	// Past year 2255 (or 285 years of timedelta) microseconds no longer fit
	// a float's integer range and Python's arithmetic cannot be followed.
	if err != nil || math.IsNaN(f) || math.Abs(f) >= 9e9 {
		return "", false
	}
	// datetime.fromtimestamp and timedelta(seconds=…) round the fraction to
	// whole microseconds, half to even; timestamp() and total_seconds()
	// divide the microseconds by 10**6.
	whole, frac := math.Modf(f)
	us := whole*1e6 + math.RoundToEven(frac*1e6)
	return jsonNumber(pyFloat(us / 1e6)), true
}

// pyFloat formats f as Python's repr does for floats below 1e16: the
// shortest text that reads back as f, with ".0" for a whole number, in
// exponent form below 1e-4.
func pyFloat(f float64) string {
	if f != 0 && math.Abs(f) < 1e-4 {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// versionIndex returns the index in apiVersions of the version Cadwyn
// serves a request that asks for v: v itself, else the newest version older
// than v (comparing the strings, as Cadwyn bisects them), or -1 when v is
// older than every version.
func versionIndex(v string) int {
	i := sort.SearchStrings(apiVersions, v)
	if i < len(apiVersions) && apiVersions[i] == v {
		return i
	}
	return i - 1
}

// airflowTemplate turns an Echo route path under /execution into Airflow's
// path template: ":name" becomes "{name}"; a trailing "*" stays.
func airflowTemplate(echoPath string) (string, bool) {
	p, ok := strings.CutPrefix(echoPath, "/execution")
	if !ok {
		return "", false
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			segs[i] = "{" + name + "}"
		}
	}
	return strings.Join(segs, "/"), true
}

// templatePattern compiles an Airflow path template into a pattern matching
// request paths under /execution.
func templatePattern(template string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^/execution")
	for _, s := range strings.Split(strings.TrimPrefix(template, "/"), "/") {
		b.WriteString("/")
		switch {
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, ":path}"):
			b.WriteString(".+")
		case strings.HasPrefix(s, "{"):
			b.WriteString("[^/]+")
		default:
			b.WriteString(regexp.QuoteMeta(s))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// splitRoute splits "METHOD /path".
func splitRoute(r string) (method, path string) {
	method, path, _ = strings.Cut(r, " ")
	return method, path
}

// endpointAt reports whether the endpoint method+template (Airflow's) is
// served at version index vi, and whether the table names it at all. Cadwyn
// starts from the newest version's routes and walks the changes of every
// version newer than the one asked for, newest first.
func endpointAt(method, template string, vi int) (present, named bool) {
	present = true
	for _, ch := range versionChanges {
		for _, e := range ch.endpoints {
			if e.method != method || e.path != template {
				continue
			}
			if !named {
				// The newest change naming it says whether the head has it.
				named, present = true, !e.existed
			}
			if vi < 0 || ch.version > apiVersions[vi] {
				present = e.existed
			}
		}
	}
	return present, named
}
