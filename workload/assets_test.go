package workload

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestCheckOutletPartitionKeys(t *testing.T) {
	for _, c := range []struct {
		name, events, msg string
	}{
		{"none", ``, ""},
		{"no key", `[{"dest_asset_key": {"name": "a", "uri": "u"}, "extra": {}}]`, ""},
		{"null key", `[{"partition_key": null}]`, ""},
		{"at limit", `[{"partition_key": "` + strings.Repeat("a", 250) + `"}]`, ""},
		{"250 characters, more bytes", `[{"partition_key": "` + strings.Repeat("é", 250) + `"}]`, ""},
		{"over limit", `[{"partition_key": "` + strings.Repeat("a", 251) + `"}]`,
			"partition_key in outlet event must be at most 250 characters; got 251."},
		{"empty", `[{"partition_key": ""}]`,
			"partition_key in outlet event must not be empty or whitespace-only; got ''."},
		{"whitespace", `[{"partition_key": " \t\n"}]`,
			`partition_key in outlet event must not be empty or whitespace-only; got ' \t\n'.`},
		{"second event", `[{"partition_key": "ok"}, {"partition_key": "  "}]`,
			"partition_key in outlet event must not be empty or whitespace-only; got '  '."},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckOutletPartitionKeys(json.RawMessage(c.events))
			var pk *InvalidPartitionKeyError
			switch {
			case c.msg == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.msg != "" && (!errors.As(err, &pk) || pk.Message != c.msg):
				t.Fatalf("got %v, want %q", err, c.msg)
			}
		})
	}
}

func TestApplyStateChecksPartitionKeysOfARunningTry(t *testing.T) {
	bad := StateUpdate{State: StateSuccess, OutletEvents: json.RawMessage(`[{"partition_key": ""}]`)}
	ti := &TaskInstance{State: StateQueued}
	var conflict *ConflictError
	if _, err := ApplyState(ti, bad, time.Now()); !errors.As(err, &conflict) {
		t.Fatalf("queued try: %v, want the not-running conflict first", err)
	}
	ti.State = StateRunning
	var pk *InvalidPartitionKeyError
	if _, err := ApplyState(ti, bad, time.Now()); !errors.As(err, &pk) || ti.State != StateRunning {
		t.Fatalf("running try: %v (state %s), want invalid_partition_key and no change", err, ti.State)
	}
}

// fakeAssets is an ActiveAssetLookup over a fixed set of active assets.
type fakeAssets []AssetKey

func (f fakeAssets) ActiveByKey(k AssetKey) (bool, error) {
	for _, a := range f {
		if a == k {
			return true, nil
		}
	}
	return false, nil
}

func (f fakeAssets) ActiveByName(n string) (AssetKey, bool, error) {
	for _, a := range f {
		if a.Name == n {
			return a, true, nil
		}
	}
	return AssetKey{}, false, nil
}

func (f fakeAssets) ActiveByURI(u string) (AssetKey, bool, error) {
	for _, a := range f {
		if a.URI == u {
			return a, true, nil
		}
	}
	return AssetKey{}, false, nil
}

func TestPlanOutlets(t *testing.T) {
	a := AssetKey{"a", "s3://a"}
	b := AssetKey{"b", "s3://b"}
	active := fakeAssets{a, b}
	runPK := "run-pk"
	own := "own"
	for _, c := range []struct {
		name            string
		outlets, events string
		runPK           *string
		want            OutletPlan
	}{
		{name: "asset without an event", outlets: `[{"name": "a", "uri": "s3://a", "type": "Asset"}]`,
			want: OutletPlan{Direct: []DirectEvent{{Asset: a, Extra: json.RawMessage(`{}`)}}}},
		{name: "every event of the asset, the dag run's key or its own",
			outlets: `[{"name": "a", "uri": "s3://a", "type": "Asset"}]`,
			events: `[{"dest_asset_key": {"name": "a", "uri": "s3://a"}, "extra": {"x": 1}, "partition_key": "own"},
				{"dest_asset_key": {"name": "a", "uri": "s3://a"}, "extra": {"x": 2}},
				{"dest_asset_key": {"name": "z", "uri": "s3://z"}, "extra": {"x": 3}}]`,
			runPK: &runPK,
			want: OutletPlan{Direct: []DirectEvent{
				{Asset: a, Extra: json.RawMessage(`{"x": 1}`), PartitionKey: &own},
				{Asset: a, Extra: json.RawMessage(`{"x": 2}`), PartitionKey: &runPK}}}},
		{name: "references resolve to active assets, inactive ones are skipped",
			outlets: `[{"name": "b", "type": "AssetNameRef"}, {"uri": "s3://a", "type": "AssetUriRef"},
				{"name": "gone", "uri": "s3://gone", "type": "Asset"}, {"name": "nothing", "type": "AssetNameRef"}]`,
			want: OutletPlan{Direct: []DirectEvent{
				{Asset: b, Extra: json.RawMessage(`{}`)}, {Asset: a, Extra: json.RawMessage(`{}`)}}}},
		{name: "alias events grouped by asset and extras, outlet aliases only",
			outlets: `[{"name": "al1", "type": "AssetAlias"}, {"name": "al2", "type": "AssetAlias"}]`,
			events: `[{"dest_asset_key": {"name": "n", "uri": "s3://n"}, "source_alias_name": "al1", "extra": {"k": 1, "a": 2}},
				{"dest_asset_key": {"name": "n", "uri": "s3://n"}, "source_alias_name": "al2", "extra": {"a": 2, "k": 1}},
				{"dest_asset_key": {"name": "n", "uri": "s3://n"}, "source_alias_name": "other", "extra": {}},
				{"dest_asset_key": {"name": "a", "uri": "s3://a"}, "extra": {}}]`,
			runPK: &runPK,
			want: OutletPlan{Alias: []AliasEvent{{Asset: AssetKey{"n", "s3://n"}, AssetExtra: json.RawMessage(`{}`),
				Extra: json.RawMessage(`{"a":2,"k":1}`), Aliases: []string{"al1", "al2"}, PartitionKey: &runPK}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			outlets, events, err := ParseOutlets(json.RawMessage(c.outlets), json.RawMessage(c.events))
			if err != nil {
				t.Fatal(err)
			}
			got, err := PlanOutlets(outlets, events, c.runPK, active)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestAssetEventQueryMatches(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2021, 1, d, 0, 0, 0, 0, time.UTC) }
	pk := "2024-01-15"
	e := AssetEvent{Timestamp: day(2), Extra: json.RawMessage(`{"region": "us", "n": 1}`), PartitionKey: &pk}
	other := "x"
	for _, c := range []struct {
		name string
		q    AssetEventQuery
		want bool
	}{
		{"no filter", AssetEventQuery{}, true},
		{"after, inclusive", AssetEventQuery{After: ptrTime(day(2))}, true},
		{"after", AssetEventQuery{After: ptrTime(day(3))}, false},
		{"before, inclusive", AssetEventQuery{Before: ptrTime(day(2))}, true},
		{"before", AssetEventQuery{Before: ptrTime(day(1))}, false},
		{"partition key", AssetEventQuery{PartitionKey: &pk}, true},
		{"other partition key", AssetEventQuery{PartitionKey: &other}, false},
		{"pattern anywhere", AssetEventQuery{PartitionKeyPattern: regexp.MustCompile(`01-1`)}, true},
		{"pattern", AssetEventQuery{PartitionKeyPattern: regexp.MustCompile(`^01`)}, false},
		{"extra", AssetEventQuery{Extra: map[string]string{"region": "us"}}, true},
		{"extra, other value", AssetEventQuery{Extra: map[string]string{"region": "eu"}}, false},
		{"extra, not a string", AssetEventQuery{Extra: map[string]string{"n": "1"}}, false},
	} {
		if got := c.q.Matches(&e); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func ptrTime(t time.Time) *time.Time { return &t }

func TestEventExtra(t *testing.T) {
	for in, want := range map[string]string{"": "{}", "null": "{}", "{}": "{}", "[]": "{}", `""`: "{}", "0": "{}",
		"false": "{}", `{"a": 1}`: `{"a": 1}`, "[1]": "[1]"} {
		if got := string(EventExtra(json.RawMessage(in))); got != want {
			t.Errorf("EventExtra(%s) = %s, want %s", in, got, want)
		}
	}
}
