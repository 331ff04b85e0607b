package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/store"
)

// Airflow's test_assets.py and test_asset_events.py
// (airflow-core/tests/unit/api_fastapi/execution_api/versions/head/),
// ported against the real binary on both stores: the embedded store with
// its assets written through the store package before the binary starts
// (Airflow's tests add the rows with a session), and Airflow's metadata
// database with the rows inserted as Airflow's models write them.

// assetFix is an asset row of a fixture.
type assetFix struct {
	id                      int
	name, uri, group, extra string
	active                  bool
}

// eventFix is an asset_event row of a fixture.
type eventFix struct {
	id      int
	asset   assetFix
	ts      time.Time
	extra   string
	dag     string
	task    string
	run     string
	aliases []string
}

type assetFixture struct {
	assets []assetFix
	events []eventFix
	// aliases are asset aliases known beforehand (the embedded store
	// creates an alias when an event first names it).
	aliases []string
}

func day(d int) time.Time { return time.Date(2021, 1, d, 0, 0, 0, 0, time.UTC) }

var (
	assetByName = assetFix{1, "test_get_asset_by_name", "s3://bucket/key", "asset", `{"foo": "bar"}`, true}
	assetByURI  = assetFix{1, "test_get_asset_by_uri", "s3://bucket/key", "asset", `{"foo": "bar"}`, true}
	extraAsset  = assetFix{1, "test_asset", "s3://bucket/key", "asset", `{}`, true}

	// The test_asset_events fixture of test_asset_events.py: three events
	// of test_asset on consecutive days, all through the alias test_alias.
	eventsFixture = assetFixture{assets: []assetFix{assetByName}, events: []eventFix{
		{1, assetByName, day(1), `{"foo": "bar"}`, "foo", "bar", "custom", []string{"test_alias"}},
		{2, assetByName, day(2), `{"foo": "bar"}`, "foo", "bar", "custom", []string{"test_alias"}},
		{3, assetByName, day(3), `{"foo": "bar"}`, "foo", "bar", "custom", []string{"test_alias"}},
	}}
	byURIFixture = assetFixture{assets: []assetFix{assetByURI}}
	// TestGetAssetEventByAssetExtraFilter's fixture.
	extraFixture = assetFixture{assets: []assetFix{extraAsset}, events: []eventFix{
		{1, extraAsset, day(1), `{"region": "us", "env": "prod"}`, "d1", "t1", "r1", nil},
		{2, extraAsset, day(1), `{"region": "eu", "env": "prod"}`, "d1", "t1", "r2", nil},
		{3, extraAsset, day(1), `{"region": "us", "env": "staging"}`, "d1", "t1", "r3", nil},
	}}
	// TestGetAssetEventByAssetAliasExtraFilter's fixture.
	aliasExtraFixture = assetFixture{assets: []assetFix{extraAsset}, events: []eventFix{
		{1, extraAsset, day(1), `{"tier": "gold", "region": "us"}`, "d1", "t1", "r1", []string{"test_alias"}},
		{2, extraAsset, day(1), `{"tier": "silver", "region": "eu"}`, "d1", "t1", "r2", []string{"test_alias"}},
	}}
)

// assetBackend starts a server holding a fixture and n queued task
// instances (tasks task0, task1, … of dag "dag", run "run"), and returns
// its URL and the task instances.
type assetBackend struct {
	name  string
	start func(t *testing.T, f assetFixture, n int) (string, []queued)
}

var assetBackends = []assetBackend{
	{"embedded", startEmbeddedWithAssets},
	{"postgres", startPostgresWithAssets},
}

func startEmbeddedWithAssets(t *testing.T, f assetFixture, n int) (string, []queued) {
	t.Helper()
	dataDir := newDataDir(t)
	var qs []queued
	for i := 0; i < n; i++ {
		qs = append(qs, queueTask(t, dataDir, "dag", "run", fmt.Sprintf("task%d", i)))
	}
	db, err := store.Open(filepath.Join(dataDir, "taskgate.db"), store.Options{OpenTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, a := range f.assets {
		if err := db.PutAsset(ctx, store.AssetFixture{Name: a.name, URI: a.uri, Group: a.group,
			Extra: json.RawMessage(a.extra), Active: a.active}); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range f.events {
		mapIndex := -1
		if err := db.PutAssetEvent(ctx, store.AssetEventFixture{ID: int64(e.id), AssetName: e.asset.name,
			AssetURI: e.asset.uri, Timestamp: e.ts, Extra: json.RawMessage(e.extra), SourceTaskID: &e.task,
			SourceDagID: &e.dag, SourceRunID: &e.run, SourceMapIndex: &mapIndex, Aliases: e.aliases}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, dataDir)
	return s.URL, qs
}

func startPostgresWithAssets(t *testing.T, f assetFixture, n int) (string, []queued) {
	t.Helper()
	d := newPGDeployment(t)
	r := d.insertDagRun("dag", "run")
	m := d.minter(t)
	var qs []queued
	for i := 0; i < n; i++ {
		qs = append(qs, d.insertQueuedTI(r, fmt.Sprintf("task%d", i), 1, 0).q(m))
	}
	for _, a := range f.assets {
		d.exec(`INSERT INTO asset (id, name, uri, "group", extra, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5::json, $6, $6)`, a.id, a.name, a.uri, a.group, a.extra, day(1))
		if a.active {
			d.exec(`INSERT INTO asset_active (name, uri) VALUES ($1, $2)`, a.name, a.uri)
		}
	}
	aliases := map[string]int{}
	for _, e := range f.events {
		d.exec(`INSERT INTO asset_event (id, asset_id, extra, source_task_id, source_dag_id, source_run_id,
			source_map_index, timestamp) VALUES ($1, $2, $3::json, $4, $5, $6, -1, $7)`,
			e.id, e.asset.id, e.extra, e.task, e.dag, e.run, e.ts)
		for _, name := range e.aliases {
			id, ok := aliases[name]
			if !ok {
				id = len(aliases) + 1
				aliases[name] = id
				d.exec(`INSERT INTO asset_alias (id, name, "group") VALUES ($1, $2, '')`, id, name)
				d.exec(`INSERT INTO asset_alias_asset (alias_id, asset_id) VALUES ($1, $2)`, id, e.asset.id)
			}
			d.exec(`INSERT INTO asset_alias_asset_event (alias_id, event_id) VALUES ($1, $2)`, id, e.id)
		}
	}
	for i, name := range f.aliases {
		d.exec(`INSERT INTO asset_alias (id, name, "group") VALUES ($1, $2, 'alias')`, 100+i, name)
	}
	s := d.startReplica(t)
	return s.URL, qs
}

// wantEvent is an event of the test_asset_events fixture as Airflow
// answers it.
func wantEvent(id int) map[string]any {
	return map[string]any{
		"id": float64(id), "extra": map[string]any{"foo": "bar"},
		"source_task_id": "bar", "source_dag_id": "foo", "source_run_id": "custom", "source_map_index": float64(-1),
		"created_dagruns": []any{},
		"asset": map[string]any{"extra": map[string]any{"foo": "bar"}, "group": "asset",
			"name": "test_get_asset_by_name", "uri": "s3://bucket/key"},
		"timestamp":     fmt.Sprintf("2021-01-0%dT00:00:00Z", id),
		"partition_key": nil,
	}
}

func wantEvents(ids ...int) map[string]any {
	events := []any{}
	for _, id := range ids {
		events = append(events, wantEvent(id))
	}
	return map[string]any{"asset_events": events}
}

// assetCase is one request and what Airflow answers.
type assetCase struct {
	name    string
	fixture *assetFixture
	path    string
	status  int
	body    any // the whole JSON body, when set
	count   int // the number of asset_events, when body is nil (-1: not checked)
	extra   map[string]string
}

// byAssetParams are test_get_by_asset's parametrizations: name only, uri
// only, both (httpx sends a None parameter as an empty value).
var byAssetParams = []struct{ id, query string }{
	{"None-test_get_asset_by_name", "name=test_get_asset_by_name&uri="},
	{"s3://bucket/key-None", "name=&uri=" + url.QueryEscape("s3://bucket/key")},
	{"s3://bucket/key-test_get_asset_by_name", "name=test_get_asset_by_name&uri=" + url.QueryEscape("s3://bucket/key")},
}

func assetCases() []assetCase {
	cases := []assetCase{
		{name: "test_assets.py::TestGetAssetByName::test_get_asset_by_name", fixture: &eventsFixture,
			path: "/execution/assets/by-name?name=test_get_asset_by_name", status: 200,
			body: map[string]any{"name": "test_get_asset_by_name", "uri": "s3://bucket/key", "group": "asset",
				"extra": map[string]any{"foo": "bar"}}},
		{name: "test_assets.py::TestGetAssetByName::test_asset_name_not_found", fixture: &eventsFixture,
			path: "/execution/assets/by-name?name=non_existent", status: 404,
			body: map[string]any{"detail": map[string]any{"message": "Asset with name non_existent not found",
				"reason": "not_found"}}},
		{name: "test_assets.py::TestGetAssetByUri::test_get_asset_by_uri", fixture: &byURIFixture,
			path: "/execution/assets/by-uri?uri=" + url.QueryEscape("s3://bucket/key"), status: 200,
			body: map[string]any{"name": "test_get_asset_by_uri", "uri": "s3://bucket/key", "group": "asset",
				"extra": map[string]any{"foo": "bar"}}},
		{name: "test_assets.py::TestGetAssetByUri::test_asset_uri_not_found", fixture: &eventsFixture,
			path: "/execution/assets/by-uri?uri=non_existent", status: 404,
			body: map[string]any{"detail": map[string]any{"message": "Asset with URI non_existent not found",
				"reason": "not_found"}}},
	}
	const byAsset = "/execution/asset-events/by-asset?"
	for _, p := range byAssetParams {
		for _, c := range []struct {
			test, query string
			ids         []int
		}{
			{"test_asset_events.py::TestGetAssetEventByAsset::test_get_by_asset", "", []int{1, 2, 3}},
			{"test_asset_events.py::TestGetAssetEventByAsset::test_get_by_asset_with_after_filter", "&after=2021-01-02T00:00:00Z", []int{2, 3}},
			{"test_asset_events.py::TestGetAssetEventByAsset::test_get_by_asset_with_before_filter", "&before=2021-01-02T00:00:00Z", []int{1, 2}},
			{"test_asset_events.py::TestGetAssetEventByAsset::test_get_by_asset_with_before_and_after_filters",
				"&before=2021-01-02T12:00:00Z&after=2021-01-01T12:00:00Z", []int{2}},
			{"test_asset_events.py::TestGetAssetEventByAsset::test_get_by_asset_with_descending_order", "&ascending=false", []int{3, 2, 1}},
			{"test_asset_events.py::TestGetAssetEventByAsset::test_get_by_asset_get_first", "&limit=1", []int{1}},
			{"test_asset_events.py::TestGetAssetEventByAsset::test_get_by_asset_get_last", "&limit=1&ascending=false", []int{3}},
		} {
			cases = append(cases, assetCase{
				name:    c.test + "[" + p.id + "]",
				fixture: &eventsFixture, path: byAsset + p.query + c.query, status: 200, body: wantEvents(c.ids...)})
		}
	}
	cases = append(cases, assetCase{name: "test_asset_events.py::TestGetAssetEventByAssetAlias::test_get_by_asset",
		fixture: &eventsFixture, path: "/execution/asset-events/by-asset-alias?name=test_alias", status: 200,
		body: wantEvents(1, 2, 3)})

	const extraBase = byAsset + "name=test_asset&uri=s3%3A%2F%2Fbucket%2Fkey"
	cases = append(cases,
		assetCase{name: "test_asset_events.py::TestGetAssetEventByAssetExtraFilter::test_filter_by_extra_key_value", fixture: &extraFixture,
			path: extraBase + "&extra=region%3Dus", status: 200, count: 2, extra: map[string]string{"region": "us"}},
		assetCase{name: "test_asset_events.py::TestGetAssetEventByAssetExtraFilter::test_filter_by_extra_env", fixture: &extraFixture,
			path: extraBase + "&extra=env%3Dprod", status: 200, count: 2},
		assetCase{name: "test_asset_events.py::TestGetAssetEventByAssetExtraFilter::test_no_extra_filter_returns_all", fixture: &extraFixture,
			path: extraBase, status: 200, count: 3},
		assetCase{name: "test_asset_events.py::TestGetAssetEventByAssetExtraFilter::test_filter_nonexistent_key", fixture: &extraFixture,
			path: extraBase + "&extra=missing%3Dval", status: 200, count: 0},
	)
	for i, c := range []struct {
		query string
		n     int
	}{
		{"&extra=region%3Dus&extra=env%3Dprod", 1},
		{"&extra=region%3Deu&extra=env%3Dprod", 1},
		{"&extra=region%3Dus&extra=env%3Dstaging", 1},
		{"&extra=region%3Deu&extra=env%3Dstaging", 0},
	} {
		cases = append(cases, assetCase{name: fmt.Sprintf("%s[%d]", "test_asset_events.py::TestGetAssetEventByAssetExtraFilter::test_filter_multiple_extra_keys", i),
			fixture: &extraFixture, path: extraBase + c.query, status: 200, count: c.n})
	}
	const aliasBase = "/execution/asset-events/by-asset-alias?name=test_alias"
	cases = append(cases,
		assetCase{name: "test_asset_events.py::TestGetAssetEventByAssetAliasExtraFilter::test_filter_by_extra_key_value", fixture: &aliasExtraFixture,
			path: aliasBase + "&extra=tier%3Dgold", status: 200, count: 1, extra: map[string]string{"tier": "gold"}},
		assetCase{name: "test_asset_events.py::TestGetAssetEventByAssetAliasExtraFilter::test_no_extra_filter_returns_all", fixture: &aliasExtraFixture,
			path: aliasBase, status: 200, count: 2},
	)
	for i, c := range []struct {
		query string
		n     int
	}{
		{"&extra=tier%3Dgold&extra=region%3Dus", 1},
		{"&extra=tier%3Dgold&extra=region%3Deu", 0},
		{"&extra=tier%3Dsilver&extra=region%3Deu", 1},
	} {
		cases = append(cases, assetCase{name: fmt.Sprintf("%s[%d]", "test_asset_events.py::TestGetAssetEventByAssetAliasExtraFilter::test_filter_multiple_extra_keys", i),
			fixture: &aliasExtraFixture, path: aliasBase + c.query, status: 200, count: c.n})
	}
	return cases
}

// TestConformanceAssets runs test_assets.py and test_asset_events.py on
// both stores, one server per fixture.
func TestConformanceAssets(t *testing.T) {
	cases := assetCases()
	for _, b := range assetBackends {
		t.Run(b.name, func(t *testing.T) {
			servers := map[*assetFixture][2]string{}
			for _, c := range cases {
				srv, ok := servers[c.fixture]
				if !ok {
					base, qs := b.start(t, *c.fixture, 1)
					srv = [2]string{base, startedToken(t, base, qs[0])}
					servers[c.fixture] = srv
				}
				t.Run(c.name, func(t *testing.T) {
					r := send(t, srv[0], "GET", c.path, "Bearer "+srv[1], "")
					mustStatus(t, r, c.status)
					var got map[string]any
					if err := json.Unmarshal(r.body, &got); err != nil {
						t.Fatalf("%s: %v", r, err)
					}
					if c.body != nil {
						if !reflect.DeepEqual(got, c.body) {
							t.Fatalf("%s\nwant %v", r, c.body)
						}
						return
					}
					events, _ := got["asset_events"].([]any)
					if len(events) != c.count {
						t.Fatalf("%s: %d events, want %d", r, len(events), c.count)
					}
					for _, e := range events {
						extra, _ := e.(map[string]any)["extra"].(map[string]any)
						for k, v := range c.extra {
							if extra[k] != v {
								t.Errorf("%s: event extra %v, want %s=%s", r, extra, k, v)
							}
						}
					}
				})
			}
		})
	}
}

// TestConformanceAssetQueries holds the routes' other answers on both
// stores: Airflow's 400s and 422s for bad parameters, the partition-key
// filters, and validate-inlets-and-outlets.
func TestConformanceAssetQueries(t *testing.T) {
	for _, b := range assetBackends {
		t.Run(b.name, func(t *testing.T) {
			base, qs := b.start(t, eventsFixture, 1)
			tok := startedToken(t, base, qs[0])
			get := func(path string) *response { return send(t, base, "GET", path, "Bearer "+tok, "") }
			for _, c := range []struct {
				path   string
				status int
				body   string
			}{
				{"/execution/asset-events/by-asset?name=&uri=", 400,
					`{"detail":{"reason":"Missing parameter","message":"name and uri cannot both be None"}}`},
				{"/execution/asset-events/by-asset?name=x", 422,
					`{"detail":[{"type":"missing","loc":["query","uri"],"msg":"Field required","input":null}]}`},
				{"/execution/asset-events/by-asset?name=x&uri=&extra=novalue", 422,
					`{"detail":"Invalid extra parameter format: 'novalue'. Expected 'key=value'."}`},
				{"/execution/asset-events/by-asset?name=test_get_asset_by_name&uri=&partition_key=a&partition_key_pattern=b", 400,
					`{"detail":{"reason":"Mutually exclusive parameters","message":"partition_key and partition_key_pattern cannot both be provided. Use partition_key for exact match or partition_key_pattern for regex filtering."}}`},
				{"/execution/asset-events/by-asset?name=test_get_asset_by_name&uri=&limit=x", 422,
					`{"detail":[{"type":"int_parsing","loc":["query","limit"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":"x"}]}`},
				{"/execution/asset-events/by-asset?name=test_get_asset_by_name&uri=&partition_key=a", 200,
					`{"asset_events":[]}`},
				{"/execution/asset-events/by-asset?name=nothing&uri=", 200, `{"asset_events":[]}`},
				{"/execution/asset-events/by-asset-alias?name=nothing", 200, `{"asset_events":[]}`},
				{"/execution/assets/by-alias?alias_name=test_alias", 200,
					`[{"name":"test_get_asset_by_name","uri":"s3://bucket/key","group":"asset","extra":{"foo":"bar"}}]`},
				{"/execution/assets/by-alias?alias_name=nothing", 200, `[]`},
				{"/execution/assets/by-alias", 422,
					`{"detail":[{"type":"missing","loc":["query","alias_name"],"msg":"Field required","input":null}]}`},
				{"/execution/assets/by-name", 422,
					`{"detail":[{"type":"missing","loc":["query","name"],"msg":"Field required","input":null}]}`},
			} {
				r := get(c.path)
				mustStatus(t, r, c.status)
				if !jsonEqual(r.body, c.body) {
					t.Errorf("%s\nwant %s", r, c.body)
				}
			}
			// "(" is no pattern for Go; `\z` is one for Go but not for
			// PostgreSQL.
			for _, p := range []string{"(", `a\z`} {
				r := get("/execution/asset-events/by-asset?name=test_get_asset_by_name&uri=&partition_key_pattern=" +
					url.QueryEscape(p))
				if b.name == "embedded" && p != "(" {
					mustStatus(t, r, 200)
					continue
				}
				mustStatus(t, r, 400)
				if !strings.Contains(string(r.body), `"reason":"Invalid regex"`) {
					t.Errorf("%s: want reason Invalid regex", r)
				}
			}
			r := get("/execution/asset-events/by-asset?name=test_get_asset_by_name&uri=&partition_key_pattern=.")
			mustStatus(t, r, 200)
			if !jsonEqual(r.body, `{"asset_events":[]}`) {
				t.Errorf("%s: no event has a partition key", r)
			}
			// The task's DAG declares no inlets or outlets (no record
			// on the embedded store, no serialized DAG on Airflow's
			// database): none is inactive.
			r = get(tiPath(qs[0].TIID, "validate-inlets-and-outlets"))
			mustStatus(t, r, 200)
			if !jsonEqual(r.body, `{"inactive_assets":[]}`) {
				t.Errorf("%s", r)
			}
		})
	}
}

func jsonEqual(a []byte, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

// outletsFixture is what test_task_instances.py's success-with-outlets
// cases add: the asset my-task, active, and the aliases simple1 and
// simple2.
var (
	myTask         = assetFix{1, "my-task", "s3://bucket/my-task", "asset", `{}`, true}
	outletsFixture = assetFixture{assets: []assetFix{myTask}, aliases: []string{"simple1", "simple2"}}
)

// outletCase is a success report of one try and the events it must leave.
type outletCase struct {
	name    string
	outlets string // task_outlets
	events  string // outlet_events
	status  int
	reason  string // the 422's detail reason
	// want are the extras of the events of my-task the try leaves.
	want []map[string]any
	// alias, when set, must list the try's events too.
	alias string
}

func outletCases() []outletCase {
	var cases []outletCase
	extraEvents := `[{"dest_asset_key": {"name": "my-task", "uri": "s3://bucket/my-task"}, "extra": {"foo": 1}},
		{"dest_asset_key": {"name": "my-task-2", "uri": "s3://bucket/my-task-2"}, "extra": {"foo": 2}}]`
	for _, ev := range []struct {
		id, events string
		want       map[string]any
	}{
		{"default", `[]`, map[string]any{}},
		{"extra", extraEvents, map[string]any{"foo": float64(1)}},
	} {
		for _, o := range []struct{ id, outlets string }{
			{"asset", `[{"name": "my-task", "uri": "s3://bucket/my-task", "type": "Asset"}]`},
			{"name-ref", `[{"name": "my-task", "type": "AssetNameRef"}]`},
			{"uri-ref", `[{"uri": "s3://bucket/my-task", "type": "AssetUriRef"}]`},
		} {
			cases = append(cases, outletCase{
				name:    "test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_success_with_asset_events" + "[" + ev.id + "-" + o.id + "]",
				outlets: o.outlets, events: ev.events, status: 204, want: []map[string]any{ev.want}})
		}
	}
	aliasOutlets := `[{"name": "simple1", "type": "AssetAlias"}]`
	cases = append(cases,
		outletCase{name: "test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_success_with_asset_alias_events[default]",
			outlets: aliasOutlets, events: `[]`, status: 204, want: nil},
		outletCase{name: "test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_success_with_asset_alias_events[extra]",
			outlets: aliasOutlets, events: `[
				{"dest_asset_key": {"name": "my-task", "uri": "s3://bucket/my-task"}, "source_alias_name": "simple1", "extra": {"foo": 1}},
				{"dest_asset_key": {"name": "my-task-2", "uri": "s3://bucket/my-task-2"}, "extra": {"foo": 2}},
				{"dest_asset_key": {"name": "my-task-2", "uri": "s3://bucket/my-task-2"}, "source_alias_name": "simple2", "extra": {"foo": 3}}]`,
			status: 204, want: []map[string]any{{"foo": float64(1)}}, alias: "simple1"},
	)
	for _, p := range []struct {
		id, key string
		status  int
	}{
		{"at_limit_accepted", strings.Repeat("a", 250), 204},
		{"over_limit_rejected", strings.Repeat("a", 251), 422},
		{"empty_rejected", "", 422},
		{"whitespace_rejected", "   ", 422},
	} {
		c := outletCase{name: "test_task_instances.py::TestTIUpdateState::test_ti_update_state_to_success_outlet_event_partition_key_validation" + "[" + p.id + "]",
			outlets: `[]`, events: fmt.Sprintf(`[{"dest_asset_key": {"name": "my-asset", "uri": "s3://bucket/my-asset"},
				"extra": {}, "partition_key": %q}]`, p.key), status: p.status}
		if p.status == 422 {
			c.reason = "invalid_partition_key"
		}
		cases = append(cases, c)
	}
	// Not an Airflow case: an outlet naming an asset that is not active
	// (its name belongs to another active asset) gets no event, and the
	// try succeeds, as in Airflow 3.2.
	cases = append(cases, outletCase{name: "inactive outlet asset",
		outlets: `[{"name": "my-task", "uri": "s3://elsewhere", "type": "Asset"}]`, events: `[]`, status: 204})
	// A per-emission partition key is the event's own.
	cases = append(cases, outletCase{name: "outlet event partition key",
		outlets: `[{"name": "my-task", "uri": "s3://bucket/my-task", "type": "Asset"}]`,
		events: `[{"dest_asset_key": {"name": "my-task", "uri": "s3://bucket/my-task"}, "extra": {"p": 1}, "partition_key": "2024-01-15"},
			{"dest_asset_key": {"name": "my-task", "uri": "s3://bucket/my-task"}, "extra": {"p": 2}}]`,
		status: 204, want: []map[string]any{{"p": float64(1)}, {"p": float64(2)}}})
	return cases
}

// TestConformanceAssetOutlets reports success with outlets on both stores
// and reads the events back through /asset-events.
func TestConformanceAssetOutlets(t *testing.T) {
	cases := outletCases()
	for _, b := range assetBackends {
		t.Run(b.name, func(t *testing.T) {
			base, qs := b.start(t, outletsFixture, len(cases))
			for i, c := range cases {
				q := qs[i]
				t.Run(c.name, func(t *testing.T) {
					w := newWorker(t, base, q.Token)
					mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), host{"h", "airflow", 4000 + i}.runPayload(t)), 200)
					body := fmt.Sprintf(`{"state": "success", "end_date": %q, "task_outlets": %s, "outlet_events": %s}`,
						sdkTime(time.Now()), c.outlets, c.events)
					r := w.do("PATCH", tiPath(q.TIID, "state"), body)
					mustStatus(t, r, c.status)
					if c.reason != "" {
						var got struct {
							Detail struct{ Reason, Message string }
						}
						if json.Unmarshal(r.body, &got) != nil || got.Detail.Reason != c.reason || got.Detail.Message == "" {
							t.Fatalf("%s: want reason %s", r, c.reason)
						}
						return
					}
					got := tryEvents(t, w, "/execution/asset-events/by-asset?name=my-task&uri="+
						url.QueryEscape("s3://bucket/my-task"), q.TaskID)
					if len(got) != len(c.want) {
						t.Fatalf("%d events of my-task from %s, want %d: %v", len(got), q.TaskID, len(c.want), got)
					}
					for j, e := range got {
						if !reflect.DeepEqual(e["extra"], c.want[j]) {
							t.Errorf("event %d: extra %v, want %v", j, e["extra"], c.want[j])
						}
						if e["source_dag_id"] != "dag" || e["source_run_id"] != "run" || e["source_map_index"] != float64(-1) {
							t.Errorf("event %d: source %v", j, e)
						}
					}
					if c.name == "outlet event partition key" && len(got) == 2 &&
						(got[0]["partition_key"] != "2024-01-15" || got[1]["partition_key"] != nil) {
						t.Errorf("partition keys %v, %v; want 2024-01-15, null", got[0]["partition_key"], got[1]["partition_key"])
					}
					if c.alias != "" {
						r := w.do("GET", "/execution/assets/by-alias?alias_name="+c.alias, "")
						mustStatus(t, r, 200)
						if !jsonEqual(r.body, `[{"name":"my-task","uri":"s3://bucket/my-task","group":"asset","extra":{}}]`) {
							t.Errorf("%s: want my-task", r)
						}
						if n := len(tryEvents(t, w, "/execution/asset-events/by-asset-alias?name="+c.alias, q.TaskID)); n != len(c.want) {
							t.Errorf("%d events through %s, want %d", n, c.alias, len(c.want))
						}
					}
				})
			}
		})
	}
}

// tryEvents reads asset events and keeps those of one task, oldest first.
func tryEvents(t *testing.T, w *worker, path, taskID string) []map[string]any {
	t.Helper()
	r := w.do("GET", path, "")
	mustStatus(t, r, 200)
	var got struct {
		AssetEvents []map[string]any `json:"asset_events"`
	}
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	var out []map[string]any
	for _, e := range got.AssetEvents {
		if e["source_task_id"] == taskID {
			out = append(out, e)
		}
	}
	return out
}
