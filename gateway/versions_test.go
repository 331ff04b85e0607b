package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/scopes"
)

func TestVersionTable(t *testing.T) {
	if apiVersions[len(apiVersions)-1] != APIVersion {
		t.Errorf("newest version %s, APIVersion %s", apiVersions[len(apiVersions)-1], APIVersion)
	}
	if !sort.StringsAreSorted(apiVersions) {
		t.Error("apiVersions must be sorted oldest first")
	}
	names := map[string]bool{}
	last := APIVersion
	for _, ch := range versionChanges {
		if versionIndex(ch.version) < 0 || apiVersions[versionIndex(ch.version)] != ch.version {
			t.Errorf("%s: version %s is not in apiVersions", ch.name, ch.version)
		}
		if ch.version > last {
			t.Errorf("%s: changes must be listed newest first", ch.name)
		}
		last = ch.version
		if names[ch.name] {
			t.Errorf("%s listed twice", ch.name)
		}
		names[ch.name] = true
		for _, e := range ch.endpoints {
			// Echo's ":name" is not Airflow's; Airflow's "{name:path}" is.
			if !strings.HasPrefix(e.path, "/") || strings.Contains(strings.ReplaceAll(e.path, ":path}", "}"), ":") {
				t.Errorf("%s: %q is not an Airflow path template", ch.name, e.path)
			}
		}
	}
	// Every change of Airflow's bundle at 00414da8 is here.
	for _, n := range []string{"AddOnlyFailedToClearDagRunPayload", "AddArgBindingsToTIRunContext", "AddCallbackRunEndpoint",
		"AddVariableKeysEndpoint", "AddConnectionTestEndpoint", "AddAwaitingInputStatePayload", "AddTaskInstanceQueueField",
		"AddRetryPolicyFields", "AddTeamNameField", "AddTaskAndAssetStateStoreEndpoints", "AddAssetsByAliasEndpoint",
		"AddPartitionDateField", "AddPartitionKeyField", "MovePreviousRunEndpoint", "AddDagRunDetailEndpoint",
		"MakeDagRunStartDateNullable", "ModifyDeferredTaskKwargsToJsonValue", "RemoveUpstreamMapIndexesField", "AddNoteField",
		"AddTaskInstanceStartDateField", "AddRunAfterField", "AddDagEndpoint", "AddTriggeringUserNameField",
		"MakeDagRunConfNullable", "AddDagVersionIdField", "AddDagRunStateFieldAndPreviousEndpoint",
		"AddIncludePriorDatesToGetXComSlice", "DowngradeUpstreamMapIndexes", "AddRenderedMapIndexField"} {
		if !names[n] {
			t.Errorf("%s missing", n)
		}
	}
}

// headGaps are fields the newest version defines that no handler serves;
// each is named, none is waved through silently. DagRun.partition_date is
// optional in the client's model, and Task SDKs generated at 2026-06-30
// before the field was added forbid fields they do not know in DagRun: a
// run context that omits it is read by both.
var headGaps = map[string]bool{"DagRun.partition_date": true}

// TestVersionTableAgainstRoutes holds the table to the routes present: a
// site's route, once registered, has its models in modelTables, and each
// response field a change names exists at the site in the newest shape.
func TestVersionTableAgainstRoutes(t *testing.T) {
	registered := map[string]Route{}
	for _, r := range RouteTable() {
		if tmpl, ok := airflowTemplate(r.Path); ok {
			registered[r.Method+" "+tmpl] = r
		}
	}
	models := routeModels()
	for _, s := range modelSites {
		r, ok := registered[s.route]
		if !ok {
			continue
		}
		m, ok := models[r.Method+" "+r.Path]
		if !ok {
			t.Errorf("%s: no model entry", s.route)
			continue
		}
		if s.request {
			continue
		}
		typ := goTypeAt(reflect.TypeOf(m.Response), s.path)
		if typ == nil {
			t.Errorf("%s: no struct at %v of %T", s.route, s.path, m.Response)
			continue
		}
		for _, ch := range versionChanges {
			for _, f := range ch.fields {
				if f.model != s.model || headGaps[f.model+"."+f.name] {
					continue
				}
				if _, ok := jsonFields(typ)[f.name]; !ok {
					t.Errorf("%s (%s): %s.%s is not in the newest shape %s", ch.name, s.route, f.model, f.name, typ)
				}
			}
		}
	}
	for _, ch := range versionChanges {
		for _, e := range ch.endpoints {
			if _, ok := registered[e.method+" "+e.path]; !ok {
				t.Logf("%s: %s %s is not registered here", ch.name, e.method, e.path)
			}
		}
	}
}

// goTypeAt follows a site path (JSON keys, "[]" for list items) in a Go
// type to the struct there.
func goTypeAt(t reflect.Type, path []string) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if len(path) == 0 {
		if t.Kind() == reflect.Struct {
			return t
		}
		return nil
	}
	key, _ := strings.CutSuffix(path[0], "[]")
	f, ok := jsonFields(t)[key]
	if !ok {
		return nil
	}
	return goTypeAt(f, path[1:])
}

func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	if t.Kind() != reflect.Struct {
		return out
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = f.Type
		}
	}
	return out
}

func TestVersionIndex(t *testing.T) {
	for v, want := range map[string]string{
		"2026-11-13": "2026-11-13", "2025-04-11": "2025-04-11", "2025-05-01": "2025-04-28",
		"2027-01-01": "2026-11-13", "banana": "2026-11-13", "2025-13-99": "2025-11-05",
		"1999-01-01": "", "2025": "", "": "",
	} {
		got := ""
		if i := versionIndex(v); i >= 0 {
			got = apiVersions[i]
		}
		if got != want {
			t.Errorf("versionIndex(%q) = %q, want %q", v, got, want)
		}
	}
}

func TestEndpointAt(t *testing.T) {
	at := func(v string) int { return versionIndex(v) }
	cases := []struct {
		method, path, version string
		want                  bool
	}{
		{"GET", "/variables/keys", "2026-11-13", true},
		{"GET", "/variables/keys", "2026-06-30", true},
		{"GET", "/variables/keys", "2026-04-06", false},
		{"PATCH", "/callbacks/{callback_id}/run", "2026-10-30", true},
		{"PATCH", "/callbacks/{callback_id}/run", "2026-06-30", false},
		{"GET", "/dag-runs/{dag_id}/previous", "2026-11-13", false},
		{"GET", "/dag-runs/{dag_id}/previous", "2025-11-05", true},
		{"GET", "/dag-runs/{dag_id}/previous", "2025-08-10", true},
		{"GET", "/dag-runs/{dag_id}/previous", "2025-05-20", false},
		{"GET", "/dag-runs/previous", "2026-04-06", true},
		{"GET", "/dag-runs/previous", "2025-11-05", false},
		{"PATCH", "/task-instances/{task_instance_id}/run", "2025-04-11", true},
		// AddDagProcessorJobEndpoints: Airflow's 2027-02-28, served from
		// taskgate's newest version only.
		{"POST", "/jobs", "2026-11-13", true},
		{"POST", "/jobs/{job_id}/heartbeat", "2027-02-28", true},
		{"POST", "/jobs/{job_id}/heartbeat", "2026-11-13", true},
		{"POST", "/jobs/{job_id}/heartbeat", "2026-10-30", false},
		{"POST", "/jobs/{job_id}/complete", "2026-06-30", false},
		{"POST", "/jobs", "2026-10-30", false},
	}
	for _, c := range cases {
		if got, _ := endpointAt(c.method, c.path, at(c.version)); got != c.want {
			t.Errorf("%s %s at %s = %v, want %v", c.method, c.path, c.version, got, c.want)
		}
	}
}

// runShapes is what a /run answer carries at each version, read from the
// version change classes: the newest TIRunContext as taskgate fills it,
// less the fields each older version lacks, plus upstream_map_indexes
// (null) before 2026-04-06.
func runShapes(version string) (top, dagRun []string) {
	top = []string{"connections", "dag_run", "max_tries", "should_retry", "task_reschedule_count", "variables", "xcom_keys_to_clear"}
	dagRun = []string{"clear_number", "conf", "consumed_asset_events", "dag_id", "data_interval_end", "data_interval_start",
		"end_date", "logical_date", "note", "partition_key", "run_after", "run_id", "run_type", "start_date", "state",
		"team_name", "triggering_user_name"}
	drop := func(xs []string, names ...string) []string {
		var out []string
		for _, x := range xs {
			if !contains(names, x) {
				out = append(out, x)
			}
		}
		return out
	}
	if version < "2026-06-30" { // AddTeamNameField
		dagRun = drop(dagRun, "team_name")
	}
	if version < "2026-04-06" { // AddPartitionKeyField, AddNoteField, RemoveUpstreamMapIndexesField
		dagRun = drop(dagRun, "partition_key", "note")
		top = append(top, "upstream_map_indexes")
		sort.Strings(top)
	}
	if version < "2025-11-05" { // AddTriggeringUserNameField
		dagRun = drop(dagRun, "triggering_user_name")
	}
	if version < "2025-08-10" { // AddDagRunStateFieldAndPreviousEndpoint
		dagRun = drop(dagRun, "state")
	}
	return top, dagRun
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestRunShapePerVersion(t *testing.T) {
	h := newHarness(t)
	for i, v := range apiVersions {
		t.Run(v, func(t *testing.T) {
			id := h.queue("etl", "run_"+v, "t"+string(rune('a'+i)), -1)
			wl := h.tokens.mint(t, id, scopes.Workload, time.Hour)
			r := h.do("PATCH", "/execution/task-instances/"+id+"/run", wl, runBody(hostA, pidA), "Airflow-API-Version", v)
			if r.status != 200 {
				t.Fatalf("/run = %d %s", r.status, r.body)
			}
			if got := r.header.Get("Airflow-API-Version"); got != v {
				t.Errorf("Airflow-API-Version = %q", got)
			}
			body := r.json(t).(map[string]any)
			wantTop, wantDR := runShapes(v)
			if diff := cmp.Diff(wantTop, keysOf(body)); diff != "" {
				t.Errorf("TIRunContext fields (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantDR, keysOf(body["dag_run"].(map[string]any))); diff != "" {
				t.Errorf("DagRun fields (-want +got):\n%s", diff)
			}
			if v < "2026-04-06" && body["upstream_map_indexes"] != nil {
				t.Errorf("upstream_map_indexes = %v, want null", body["upstream_map_indexes"])
			}
			if r.header.Get("Refreshed-API-Token") == "" {
				t.Error("no execution token")
			}
		})
	}
}

func TestVersionHeader(t *testing.T) {
	h := newHarness(t)
	notFound := `{"detail":"Not Found"}`
	cases := []struct {
		name, path string
		header     []string
		status     int
		version    string
		body       string
	}{
		{"absent", "/execution/health", nil, 200, APIVersion, `{"status":"healthy"}`},
		{"newest", "/execution/health", []string{"Airflow-API-Version", APIVersion}, 200, APIVersion, `{"status":"healthy"}`},
		{"older, exact", "/execution/health", []string{"Airflow-API-Version", "2025-04-28"}, 200, "2025-04-28", `{"status":"healthy"}`},
		{"between two, echoed as sent", "/execution/health", []string{"Airflow-API-Version", "2025-05-01"}, 200, "2025-05-01", `{"status":"healthy"}`},
		{"newer than newest", "/execution/health", []string{"Airflow-API-Version", "2030-01-01"}, 200, "2030-01-01", `{"status":"healthy"}`},
		{"no date, sorts after digits", "/execution/health", []string{"Airflow-API-Version", "banana"}, 200, "banana", `{"status":"healthy"}`},
		{"older than oldest", "/execution/health", []string{"Airflow-API-Version", "2024-01-01"}, 404, "2024-01-01", notFound},
		{"no date, sorts before", "/execution/health", []string{"Airflow-API-Version", "1"}, 404, "1", notFound},
		{"empty", "/execution/health", []string{"Airflow-API-Version", ""}, 404, "", notFound},
		{"openapi without a version", "/execution/openapi.json", nil, 404, APIVersion,
			`{"detail":"OpenApi file of with version ` + "`None`" + ` not found"}`},
		{"openapi of no such version", "/execution/openapi.json?version=2025-05-01", nil, 404, APIVersion,
			`{"detail":"OpenApi file of with version ` + "`2025-05-01`" + ` not found"}`},
		{"openapi when a version is named: unversioned routes unreachable", "/execution/openapi.json?version=2025-04-28",
			[]string{"Airflow-API-Version", APIVersion}, 404, APIVersion, notFound},
		{"docs when a version is named", "/execution/docs", []string{"Airflow-API-Version", "2025-04-28"}, 404, "2025-04-28", notFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("GET", c.path, "", "", c.header...)
			wantJSON(t, r, c.status, c.body)
			if got := r.header.Values("Airflow-API-Version"); len(got) != 1 || got[0] != c.version {
				t.Errorf("Airflow-API-Version = %q, want %q", got, c.version)
			}
		})
	}
	r := h.do("GET", "/execution/docs", "", "")
	if r.status != 200 || !strings.Contains(r.body, "openapi.json?version=2025-04-11") ||
		!strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("docs = %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	if r := h.do("GET", "/execution/docs", "", "", "Airflow-API-Version", ""); r.status != 200 {
		t.Errorf("docs with an empty version = %d, want 200 (unversioned routes)", r.status)
	}
}

func TestOlderVersionRequests(t *testing.T) {
	h := newHarness(t)
	state := func(v, body string) response {
		id := h.queue("etl", "r", "t_"+strings.ReplaceAll(v, "-", "")+"_"+string(rune('a'+len(h.logs.All())%26)), -1)
		tok := h.start(id)
		return h.do("PATCH", "/execution/task-instances/"+id+"/state", tok, body, "Airflow-API-Version", v)
	}
	failed := `{"state":"failed","end_date":"2026-11-27T10:00:00Z","rendered_map_index":"x"}`
	r := state("2025-04-11", failed)
	wantJSON(t, r, 422, `{"detail":[{"type":"extra_forbidden","loc":["body","rendered_map_index"],"msg":"Extra inputs are not permitted","input":"x"}]}`)
	if r := state("2025-04-28", failed); r.status != 204 {
		t.Errorf("rendered_map_index at 2025-04-28 = %d %s", r.status, r.body)
	}
	retry := `{"state":"up_for_retry","end_date":"2026-11-27T10:00:00Z","retry_reason":"flaky"}`
	wantJSON(t, state("2026-04-06", retry), 422,
		`{"detail":[{"type":"extra_forbidden","loc":["body","retry_reason"],"msg":"Extra inputs are not permitted","input":"flaky"}]}`)
	if r := state("2026-06-30", retry); r.status != 204 {
		t.Errorf("retry_reason at 2026-06-30 = %d %s", r.status, r.body)
	}
	r = state("2026-04-06", `{"state":"awaiting_input","next_method":"resume"}`)
	if r.status != 422 || !strings.Contains(r.body, `"literal_error"`) || strings.Contains(r.body, "'awaiting_input'") {
		t.Errorf("awaiting_input at 2026-04-06 = %d %s", r.status, r.body)
	}
	r = state("2025-11-05", `{"state":"deferred","classpath":"a.B","next_method":"resume","next_kwargs":[1]}`)
	wantJSON(t, r, 422, `{"detail":[{"type":"dict_type","loc":["body","next_kwargs"],"msg":"Input should be a valid dictionary","input":[1]}]}`)

	// /variables/keys did not exist before 2026-06-30: the key "keys".
	tok := h.execToken()
	wantJSON(t, h.do("GET", "/execution/variables/keys", tok, "", "Airflow-API-Version", "2026-04-06"), 404,
		`{"detail":{"reason":"not_found","message":"Variable with key 'keys' not found"}}`)
	wantJSON(t, h.do("GET", "/execution/variables/keys", tok, "", "Airflow-API-Version", "2026-06-30"), 200,
		`{"keys":[],"total_entries":0}`)

	// The Job routes are the newest version's: an older client's request
	// is routed nowhere, before any token is read.
	for _, v := range []string{"2026-10-30", "2026-06-30"} {
		wantJSON(t, h.do("POST", "/execution/jobs/0/heartbeat", tok, "", "Airflow-API-Version", v), 404, `{"detail":"Not Found"}`)
		wantJSON(t, h.do("POST", "/execution/jobs", tok, `{}`, "Airflow-API-Version", v), 404, `{"detail":"Not Found"}`)
	}
	if r := h.do("POST", "/execution/jobs/0/heartbeat", tok, "", "Airflow-API-Version", APIVersion); r.status != 403 {
		t.Errorf("heartbeat at the newest version with a task's token = %d %s, want 403", r.status, r.body)
	}
}

func TestConvertBodySteps(t *testing.T) {
	_, rules := rulesFor("2025-04-11")
	var run *responseRule
	for _, r := range rules {
		if r.pattern.MatchString("/execution/task-instances/x/run") && r.method == "PATCH" {
			run = r
		}
	}
	in := `{"arg_bindings":{"a":1},"start_date":"s","next_kwargs":{"a":{"b":1},"c":[{"d":2}]},` +
		`"dag_run":{"start_date":null,"run_after":"ra","conf":null,"state":"running","note":"n","partition_key":"p",` +
		`"team_name":"t","partition_date":"pd","triggering_user_name":"u"}}`
	out, ok := convertBody([]byte(in), run)
	if !ok {
		t.Fatal("not converted")
	}
	want := `{"dag_run":{"conf":{},"run_after":"ra","start_date":"ra"},` +
		`"next_kwargs":{"__type":"dict","__var":{"a":{"__type":"dict","__var":{"b":1}},"c":[{"__type":"dict","__var":{"d":2}}]}},` +
		`"upstream_map_indexes":null}`
	var w, g any
	_ = json.Unmarshal([]byte(want), &w)
	_ = json.Unmarshal(out, &g)
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	m := map[string]any{"upstream_map_indexes": map[string]any{"a": jsonNumber("3"), "b": []any{jsonNumber("4"), jsonNumber("5")}, "c": nil}}
	downgradeUpstreamMapIndexes(m)
	if diff := cmp.Diff(map[string]any{"a": jsonNumber("3"), "b": jsonNumber("4"), "c": jsonNumber("0")}, m["upstream_map_indexes"]); diff != "" {
		t.Errorf("downgrade (-want +got):\n%s", diff)
	}
}

func TestModelTablesCoverExecutionRoutes(t *testing.T) {
	models := routeModels()
	registered := map[string]bool{}
	for _, r := range RouteTable() {
		key := r.Method + " " + r.Path
		registered[key] = true
		if _, ok := airflowTemplate(r.Path); !ok || unversionedPaths[r.Path] {
			continue
		}
		if _, ok := models[key]; !ok {
			t.Errorf("%s has no entry in modelTables", key)
		}
	}
	for key := range models {
		if !registered[key] {
			t.Errorf("modelTables names %s, which is not a route", key)
		}
	}
}

// TestOpenAPIModelNames: every model a change adds fields to is a schema,
// by Airflow's name, in the newest document wherever one of its routes is
// registered; otherwise older documents would keep the newer fields.
func TestOpenAPIModelNames(t *testing.T) {
	docs, err := buildOpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	type document struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	var doc document
	if err := json.Unmarshal(docs[APIVersion], &doc); err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, r := range RouteTable() {
		if tmpl, ok := airflowTemplate(r.Path); ok {
			registered[r.Method+" "+tmpl] = true
		}
	}
	for _, ch := range versionChanges {
		for _, f := range ch.fields {
			served := false
			for _, s := range sitesOf(f.model) {
				served = served || registered[s.route]
			}
			if !served || headGaps[f.model+"."+f.name] {
				continue
			}
			s, ok := doc.Components.Schemas[f.model]
			if !ok {
				t.Errorf("%s: no schema %s in the newest document", ch.name, f.model)
				continue
			}
			if _, ok := s.Properties[f.name]; !ok {
				t.Errorf("%s: %s has no %s in the newest document", ch.name, f.model, f.name)
			}
		}
	}
	// And each older document lacks them.
	for _, v := range []string{"2026-10-30", "2026-04-06", "2025-11-05"} {
		var doc document
		if err := json.Unmarshal(docs[v], &doc); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ model, field, since string }{
			{"ClearDagRunPayload", "only_failed", "2026-11-13"},
			{"TriggerDAGRunPayload", "note", "2026-04-06"},
			{"AssetEventResponse", "partition_key", "2026-04-06"},
			{"DagRunAssetReference", "partition_key", "2026-04-06"},
		} {
			_, ok := doc.Components.Schemas[c.model].Properties[c.field]
			if ok != (v >= c.since) {
				t.Errorf("%s: %s.%s present = %v", v, c.model, c.field, ok)
			}
		}
	}
}

func TestOpenAPIDocuments(t *testing.T) {
	docs, err := buildOpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	for vi, v := range apiVersions {
		var doc map[string]any
		if err := json.Unmarshal(docs[v], &doc); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		checkOpenAPI(t, v, doc)
		paths := doc["paths"].(map[string]any)
		_, keys := paths["/variables/keys"]
		if keys != (v >= "2026-06-30") {
			t.Errorf("%s: /variables/keys present = %v", v, keys)
		}
		props := doc["components"].(map[string]any)["schemas"].(map[string]any)["TIRunContext"].(map[string]any)["properties"].(map[string]any)
		if _, ok := props["arg_bindings"]; ok != (v >= "2026-10-30") {
			t.Errorf("%s: TIRunContext.arg_bindings present = %v", v, ok)
		}
		if _, ok := props["start_date"]; ok != (v >= "2026-04-06") {
			t.Errorf("%s: TIRunContext.start_date present = %v", v, ok)
		}
		_ = vi
	}
	h := newHarness(t)
	r := h.do("GET", "/execution/openapi.json?version=2026-06-30", "", "")
	if r.status != 200 || r.body != string(docs["2026-06-30"]) {
		t.Errorf("openapi.json?version=2026-06-30 = %d", r.status)
	}
}

// checkOpenAPI checks a document's structure against OpenAPI 3.1: the
// required fields, operations under known methods with responses keyed by
// status, path parameters declared for every template segment, unique
// operation ids, and every $ref resolving to a component.
func checkOpenAPI(t *testing.T, v string, doc map[string]any) {
	t.Helper()
	if doc["openapi"] != "3.1.0" {
		t.Errorf("%s: openapi = %v", v, doc["openapi"])
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] != v {
		t.Errorf("%s: info = %v", v, info)
	}
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	ids := map[string]bool{}
	paths, _ := doc["paths"].(map[string]any)
	if len(paths) == 0 {
		t.Errorf("%s: no paths", v)
	}
	methods := map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true}
	for p, item := range paths {
		if !strings.HasPrefix(p, "/") {
			t.Errorf("%s: path %q", v, p)
		}
		for m, opAny := range item.(map[string]any) {
			op := opAny.(map[string]any)
			if !methods[m] {
				t.Errorf("%s %s: method %q", v, p, m)
			}
			id, _ := op["operationId"].(string)
			if id == "" || ids[id] {
				t.Errorf("%s %s %s: operationId %q missing or repeated", v, m, p, id)
			}
			ids[id] = true
			resp, _ := op["responses"].(map[string]any)
			if len(resp) == 0 {
				t.Errorf("%s %s %s: no responses", v, m, p)
			}
			for code := range resp {
				if len(code) != 3 {
					t.Errorf("%s %s %s: response key %q", v, m, p, code)
				}
			}
			declared := map[string]bool{}
			params, _ := op["parameters"].([]any)
			for _, pa := range params {
				pm := pa.(map[string]any)
				if pm["in"] == "path" {
					declared[pm["name"].(string)] = true
				}
			}
			for _, seg := range strings.Split(p, "/") {
				if strings.HasPrefix(seg, "{") && !declared[strings.Trim(seg, "{}")] {
					t.Errorf("%s %s %s: path parameter %s not declared", v, m, p, seg)
				}
			}
		}
	}
	var walk func(x any)
	walk = func(x any) {
		switch y := x.(type) {
		case map[string]any:
			if ref, ok := y["$ref"].(string); ok {
				name, found := strings.CutPrefix(ref, "#/components/schemas/")
				if _, ok := schemas[name]; !found || !ok {
					t.Errorf("%s: $ref %s does not resolve", v, ref)
				}
			}
			for _, e := range y {
				walk(e)
			}
		case []any:
			for _, e := range y {
				walk(e)
			}
		}
	}
	walk(doc)
}

// ruleFor returns version v's response rule of a request path, or nil.
func ruleFor(v, method, path string) *responseRule {
	_, rules := rulesFor(v)
	for _, r := range rules {
		if r.method == method && r.pattern.MatchString(path) {
			return r
		}
	}
	return nil
}

// TestDagRunRoutesPerVersion checks the conversions of the dag-run routes
// other areas serve, from the table alone: their routes need not be
// registered here.
func TestDagRunRoutesPerVersion(t *testing.T) {
	convert := func(v, method, path, body string) string {
		t.Helper()
		r := ruleFor(v, method, path)
		if r == nil {
			return body
		}
		out, ok := convertBody([]byte(body), r)
		if !ok {
			t.Fatalf("%s %s at %s: not converted", method, path, v)
		}
		return strings.TrimSpace(string(out))
	}
	full := `{"dag_id":"d","run_id":"r","start_date":null,"run_after":"ra","state":"queued","note":"n",` +
		`"partition_key":"p","team_name":"t","partition_date":"pd","triggering_user_name":"u","conf":null}`
	cases := []struct {
		name, version, method, path, want string
	}{
		{"detail at the newest", APIVersion, "GET", "/execution/dag-runs/d/r", full},
		{"detail at 2026-04-06 lacks 2026-06-30's fields", "2026-04-06", "GET", "/execution/dag-runs/d/r",
			`{"conf":null,"dag_id":"d","note":"n","partition_key":"p","run_after":"ra","run_id":"r","start_date":null,"state":"queued","triggering_user_name":"u"}`},
		// The compat route's body is converted as the DagRun it is: no
		// field newer than the client's version reaches it.
		{"compat previous at 2025-11-05", "2025-11-05", "GET", "/execution/dag-runs/d/previous",
			`{"conf":null,"dag_id":"d","run_after":"ra","run_id":"r","start_date":"ra","state":"queued","triggering_user_name":"u"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w, g any
			_ = json.Unmarshal([]byte(c.want), &w)
			if err := json.Unmarshal([]byte(convert(c.version, c.method, c.path, full)), &g); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(w, g); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	forbidden := func(v, method, path string) []string {
		reqs, _ := rulesFor(v)
		var out []string
		for _, r := range reqs {
			if r.method == method && r.pattern.MatchString(path) {
				out = append(out, r.forbid...)
			}
		}
		sort.Strings(out)
		return out
	}
	if got := forbidden("2026-10-30", "POST", "/execution/dag-runs/d/r/clear"); !cmp.Equal(got, []string{"only_failed"}) {
		t.Errorf("clear at 2026-10-30 forbids %v", got)
	}
	if got := forbidden(APIVersion, "POST", "/execution/dag-runs/d/r/clear"); got != nil {
		t.Errorf("clear at the newest forbids %v", got)
	}
	if got := forbidden("2025-11-05", "POST", "/execution/dag-runs/d/r"); !cmp.Equal(got, []string{"note", "partition_key", "run_after"}) {
		t.Errorf("trigger at 2025-11-05 forbids %v", got)
	}
}

func TestOpenAPIVersionParameter(t *testing.T) {
	h := newHarness(t)
	// An empty header reaches the unversioned routes; Cadwyn then reads the
	// version from it: "" names no document.
	wantJSON(t, h.do("GET", "/execution/openapi.json", "", "", "Airflow-API-Version", ""), 404,
		"{\"detail\":\"OpenApi file of with version `` not found\"}")
	wantJSON(t, h.do("GET", "/execution/openapi.json?version=", "", ""), 404,
		"{\"detail\":\"OpenApi file of with version `None` not found\"}")
	if r := h.do("GET", "/execution/openapi.json?version="+APIVersion, "", ""); r.status != 200 ||
		r.header.Get("Airflow-API-Version") != APIVersion {
		t.Errorf("openapi.json?version=%s = %d %v", APIVersion, r.status, r.header)
	}
}

// FuzzVersionedBodies feeds any body, at any version named by any string,
// through the version rules of PATCH /state (requests) and /run
// (responses): a request is refused only with a 4xx and otherwise reaches
// the handler byte for byte; a converted response is JSON.
func FuzzVersionedBodies(f *testing.F) {
	for _, s := range fuzzBodySeeds {
		f.Add("2025-04-11", []byte(s))
	}
	f.Add("2026-04-06", []byte(`{"state":"deferred","classpath":"a","next_method":"m","next_kwargs":[{"__type":1}]}`))
	f.Add("banana", []byte(`{"dag_run":{"start_date":null},"next_kwargs":{"a":{"b":[{}]}},"upstream_map_indexes":{"x":[1.5]}}`))
	f.Add("2025-11-05", []byte(`{"next_kwargs":{"__type":"dict","__var":{"e":{"__classname__":"datetime.datetime","__version__":2,`+
		`"__data__":{"timestamp":1.5e-7}},"t":{"__type":"builtins.tuple","__var":[{"__classname__":"datetime.timedelta","__version__":1,"__data__":"2"}]}}}}`))
	e := echo.New()
	f.Fuzz(func(t *testing.T, version string, body []byte) {
		vi := versionIndex(version)
		if vi < 0 || vi == len(apiVersions)-1 {
			return
		}
		reqs, resps := rulesFor(apiVersions[vi])
		var rules []*requestRule
		for i := range reqs {
			if reqs[i].method == "PATCH" && reqs[i].pattern.MatchString("/execution/task-instances/x/state") && reqs[i].query == nil {
				rules = append(rules, &reqs[i])
			}
		}
		req := httptest.NewRequest("PATCH", "/execution/task-instances/x/state", bytes.NewReader(body))
		c := e.NewContext(req, httptest.NewRecorder())
		if err := checkRequest(c, rules); err != nil {
			if status, _ := statusOf(err); status < 400 || status >= 500 {
				t.Fatalf("refused %q with %d", body, status)
			}
		} else if got, _ := io.ReadAll(req.Body); utf8.Valid(body) && !bytes.Equal(got, body) {
			t.Fatalf("body %q reached the handler as %q", body, got)
		}
		for _, r := range resps {
			if out, ok := convertBody(body, r); ok && !json.Valid(out) {
				t.Fatalf("converted %q to invalid JSON %q", body, out)
			}
		}
	})
}

// TestPreviousDagRunWhereOlderClientsAsk: a client of a version before
// 2026-04-06 asks GET /dag-runs/{dag_id}/previous and gets the previous
// run in its own version's shape; at the newest version the same path is
// a run named "previous".
func TestPreviousDagRunWhereOlderClientsAsk(t *testing.T) {
	h := newHarness(t)
	tok := h.start(h.queue("etl", "r1", "t", -1))
	path := "/execution/dag-runs/etl/previous?logical_date=2100-01-01T00:00:00Z"
	r := h.do("GET", path, tok, "", "Airflow-API-Version", "2025-08-10")
	if r.status != 200 {
		t.Fatalf("at 2025-08-10: %d %s", r.status, r.body)
	}
	run, ok := r.json(t).(map[string]any)
	if !ok || run["run_id"] != "r1" || run["dag_id"] != "etl" {
		t.Fatalf("at 2025-08-10: %s", r.body)
	}
	for _, newer := range []string{"partition_key", "note", "team_name", "triggering_user_name"} {
		if _, ok := run[newer]; ok {
			t.Errorf("at 2025-08-10 the run carries %s, added later", newer)
		}
	}
	if r := h.do("GET", path, tok, "", "Airflow-API-Version", APIVersion); r.status != 404 {
		t.Errorf("at the newest version: %d %s, want the 404 of a run named previous", r.status, r.body)
	}
	if r := h.do("GET", "/execution/dag-runs/previous?dag_id=etl&logical_date=2100-01-01T00:00:00Z", tok, "",
		"Airflow-API-Version", "2025-08-10"); r.status != 404 {
		t.Errorf("the newest path at 2025-08-10: %d %s, want 404 (it did not exist)", r.status, r.body)
	}
}

// TestNextKwargsToBaseSerialization: ModifyDeferredTaskKwargsToJsonValue's
// converter gives a 2025-11-05 client next_kwargs as serde.deserialize then
// BaseSerialization.serialize would: dicts wrapped, the SDK's datetime,
// date, timedelta and tuple objects re-encoded; anything else as stored.
func TestNextKwargsToBaseSerialization(t *testing.T) {
	serdeDT := func(ts string) string {
		return `{"__classname__":"pendulum.datetime.DateTime","__version__":2,"__data__":{"timestamp":` + ts + `,` +
			`"tz":{"__classname__":"builtins.tuple","__version__":1,"__data__":["UTC","pendulum.tz.timezone.Timezone",1,true]}}}`
	}
	for _, c := range []struct{ name, in, want string }{
		{"plain dict", `{"cheesecake":true,"event":"payload"}`, `{"__type":"dict","__var":{"cheesecake":true,"event":"payload"}}`},
		{"nested dicts and lists", `{"a":{"b":1},"c":[{"d":2},3,null]}`,
			`{"__type":"dict","__var":{"a":{"__type":"dict","__var":{"b":1}},"c":[{"__type":"dict","__var":{"d":2}},3,null]}}`},
		{"pendulum datetime", `{"event":` + serdeDT("1727697600.0") + `,"simple":true}`,
			`{"__type":"dict","__var":{"event":{"__type":"datetime","__var":1727697600.0},"simple":true}}`},
		{"datetime at microseconds", `{"e":{"__classname__":"datetime.datetime","__version__":2,"__data__":{"timestamp":1727697600.1234565,"tz":null}}}`,
			`{"__type":"dict","__var":{"e":{"__type":"datetime","__var":1727697600.123456}}}`},
		{"datetime of version 1", `{"e":{"__classname__":"datetime.datetime","__version__":1,"__data__":{"timestamp":"1727697600","tz":"UTC"}}}`,
			`{"__type":"dict","__var":{"e":{"__type":"datetime","__var":1727697600.0}}}`},
		{"timedelta", `{"d":{"__classname__":"datetime.timedelta","__version__":2,"__data__":90.5}}`,
			`{"__type":"dict","__var":{"d":{"__type":"timedelta","__var":90.5}}}`},
		{"a microsecond", `{"d":{"__classname__":"datetime.timedelta","__version__":2,"__data__":0.000001}}`,
			`{"__type":"dict","__var":{"d":{"__type":"timedelta","__var":1e-06}}}`},
		{"date", `{"d":{"__classname__":"datetime.date","__version__":2,"__data__":"2024-09-30"}}`,
			`{"__type":"dict","__var":{"d":"2024-09-30"}}`},
		{"tuple", `{"t":{"__classname__":"builtins.tuple","__version__":1,"__data__":[1,{"a":2}]}}`,
			`{"__type":"dict","__var":{"t":{"__type":"tuple","__var":[1,{"__type":"dict","__var":{"a":2}}]}}}`},
		{"already BaseSerialization", `{"__type":"dict","__var":{"cheesecake":true,"n":{"__type":"dict","__var":{}}}}`,
			`{"__type":"dict","__var":{"cheesecake":true,"n":{"__type":"dict","__var":{}}}}`},
		{"a dict with only one serde marker is plain", `{"__classname__":"x"}`, `{"__type":"dict","__var":{"__classname__":"x"}}`},
		{"scalar", `"x"`, `"x"`},
		{"a class only Python loads", `{"a":{"b":1},"o":{"__classname__":"my.Thing","__version__":0,"__data__":{}}}`,
			`{"a":{"b":1},"o":{"__classname__":"my.Thing","__version__":0,"__data__":{}}}`},
		{"a set", `{"s":{"__classname__":"builtins.set","__version__":1,"__data__":[2,1]}}`,
			`{"s":{"__classname__":"builtins.set","__version__":1,"__data__":[2,1]}}`},
		{"a tuple of a newer serializer", `{"t":{"__classname__":"builtins.tuple","__version__":2,"__data__":[1]}}`,
			`{"t":{"__classname__":"builtins.tuple","__version__":2,"__data__":[1]}}`},
		{"a timedelta as an int", `{"d":{"__classname__":"datetime.timedelta","__version__":2,"__data__":5}}`,
			`{"d":{"__classname__":"datetime.timedelta","__version__":2,"__data__":5}}`},
		{"a datetime far away", `{"e":` + serdeDT("1e12") + `}`, `{"e":` + serdeDT("1e12") + `}`},
		{"serde objects inside old-style dicts", `{"__type":"dict","__var":{"e":{"__type":"dict","__var":{"__classname__":"datetime.datetime",` +
			`"__version__":2,"__data__":{"__type":"dict","__var":{"timestamp":1.5,"tz":null}}}}}}`,
			`{"__type":"dict","__var":{"e":{"__type":"datetime","__var":1.5}}}`},
		{"an old-style tuple is serde's", `{"t":{"__type":"builtins.tuple","__var":[1]}}`,
			`{"__type":"dict","__var":{"t":{"__type":"tuple","__var":[1]}}}`},
		{"an old-style dict of a list", `{"__type":"dict","__var":[1]}`, `{"__type":"dict","__var":[1]}`},
		{"a BaseSerialization datetime", `{"__type":"dict","__var":{"e":{"__type":"datetime","__var":1.0}}}`,
			`{"__type":"dict","__var":{"e":{"__type":"datetime","__var":1.0}}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(`{"next_kwargs":` + c.in + `}`))
			dec.UseNumber()
			var b map[string]any
			if err := dec.Decode(&b); err != nil {
				t.Fatal(err)
			}
			nextKwargsToBaseSerialization(b)
			got, err := json.Marshal(b["next_kwargs"])
			if err != nil {
				t.Fatal(err)
			}
			var g, w any
			_ = json.Unmarshal(got, &g)
			if err := json.Unmarshal([]byte(c.want), &w); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

// TestVersionedRouteRules: each route keeps, per older version, every rule
// whose pattern a path Echo routes to it may match (a parameter holding an
// escaped '/' included), so that convertVersion can skip the others; and a
// version whose router is skipped has exactly the newest version's routes.
func TestVersionedRouteRules(t *testing.T) {
	h := newHarness(t)
	srv := h.srv
	var versioned []*versionedRoute
	for _, r := range srv.routes() {
		tmpl, execution := airflowTemplate(r.path)
		if !execution {
			continue
		}
		vr := &versionedRoute{method: r.method, template: tmpl}
		versioned = append(versioned, vr)
	}
	plans := buildPlans(srv.echo, nil, versioned)
	samples := func(tmpl string) []string {
		var out []string
		for _, fill := range []string{"x", "x/y", "task-instances", "state"} {
			segs := strings.Split(tmpl, "/")
			for i, s := range segs {
				if strings.HasPrefix(s, "{") || s == "*" {
					segs[i] = fill
				}
			}
			out = append(out, "/execution"+strings.Join(segs, "/"))
		}
		return out
	}
	kept := 0
	for _, vr := range versioned {
		for vi, p := range plans {
			rr := vr.plans[vi]
			for _, path := range samples(vr.template) {
				for i := range p.requests {
					r := &p.requests[i]
					if r.method == vr.method && r.pattern.MatchString(path) && !slices.Contains(rr.requests, r) {
						t.Errorf("%s %s at %s: request rule %s dropped, yet matches %s", vr.method, vr.template, p.version, r.template, path)
					}
				}
				for _, r := range p.responses {
					if r.method == vr.method && r.pattern.MatchString(path) && !slices.Contains(rr.responses, r) {
						t.Errorf("%s %s at %s: response rule %s dropped, yet matches %s", vr.method, vr.template, p.version, r.template, path)
					}
				}
			}
			kept += len(rr.requests) + len(rr.responses)
		}
	}
	if kept == 0 {
		t.Fatal("no route kept any rule: the test proves nothing")
	}
	// A version whose router is skipped finds, for every route's paths,
	// what the server's router finds.
	same := 0
	for _, p := range srv.plans {
		if !p.sameRoutes {
			continue
		}
		same++
		for _, r := range srv.echo.Routes() {
			tmpl, execution := airflowTemplate(r.Path)
			if !execution || unversionedPaths[r.Path] {
				continue
			}
			for _, path := range samples(tmpl) {
				for _, method := range []string{r.Method, http.MethodGet, http.MethodPost} {
					want, got := srv.echo.NewContext(nil, nil), srv.echo.NewContext(nil, nil)
					srv.echo.Router().Find(method, path, want)
					p.router.Find(method, path, got)
					if got.Path() != want.Path() || !slices.Equal(got.ParamValues(), want.ParamValues()) {
						t.Errorf("%s %s %s: %s %v, the server's router %s %v", p.version, method, path,
							got.Path(), got.ParamValues(), want.Path(), want.ParamValues())
					}
				}
			}
		}
	}
	if same == 0 {
		t.Log("no older version has the newest version's routes")
	}
}

// TestMayMatch: the rule/route overlap mayMatch answers.
func TestMayMatch(t *testing.T) {
	for _, tt := range []struct {
		rule, route string
		want        bool
	}{
		{"/variables/{variable_key}", "/variables/{variable_key}", true},
		{"/task-instances/{task_instance_id}/state", "/task-instances/{task_instance_id}/run", true}, // past a parameter
		{"/task-instances/{task_instance_id}/state", "/variables/{variable_key}", false},
		{"/task-instances/{task_instance_id}", "/task-instances/count", true},
		{"/task-instances/count", "/task-instances/states", false},
		{"/task-instances/count/x", "/task-instances/count", false},
		{"/xcoms/{dag_id}/{key:path}", "/xcoms/a", false},
		{"/{any:path}", "/health", true},
		{"/dags/{dag_id}", "/dags/*", true},
	} {
		if got := mayMatch(tt.rule, tt.route); got != tt.want {
			t.Errorf("mayMatch(%s, %s) = %v, want %v", tt.rule, tt.route, got, tt.want)
		}
	}
}
