package workload

// Assets and asset events: what a successful try's outlets record
// (Airflow's TaskInstance.register_asset_changes_in_db), and what the
// Execution API's /assets and /asset-events routes read back.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/taskgate/taskgate/internal/pyjson"
)

// Asset is an asset as the Execution API returns it (AssetResponse).
type Asset struct {
	Name  string          `json:"name"`
	URI   string          `json:"uri"`
	Group string          `json:"group"`
	Extra json.RawMessage `json:"extra"`
}

// DagRunAssetReference is a dag run an asset event created
// (DagRunAssetReference of the Execution API).
type DagRunAssetReference struct {
	RunID             string     `json:"run_id"`
	DagID             string     `json:"dag_id"`
	LogicalDate       *time.Time `json:"logical_date"`
	StartDate         *time.Time `json:"start_date"`
	EndDate           *time.Time `json:"end_date"`
	State             string     `json:"state"`
	DataIntervalStart *time.Time `json:"data_interval_start"`
	DataIntervalEnd   *time.Time `json:"data_interval_end"`
	PartitionKey      *string    `json:"partition_key"`
}

// AssetEvent is one recorded change of an asset.
type AssetEvent struct {
	ID             int64
	Timestamp      time.Time
	Extra          json.RawMessage
	Asset          Asset
	CreatedDagRuns []DagRunAssetReference
	SourceTaskID   *string
	SourceDagID    *string
	SourceRunID    *string
	SourceMapIndex *int
	PartitionKey   *string
}

// AssetEventQuery selects the asset events of one asset or of one asset
// alias, as GET /asset-events/by-asset and /by-asset-alias do.
type AssetEventQuery struct {
	// Either Name and/or URI (by asset), or Alias (by alias). With both a
	// name and a uri the asset need not be active; with one of them it
	// must be.
	Name, URI string
	Alias     string
	ByAlias   bool

	// After and Before bound the timestamp, both inclusive.
	After, Before *time.Time
	// Ascending orders by timestamp, oldest first.
	Ascending bool
	// Limit caps the result when set (a negative limit selects nothing).
	Limit *int
	// PartitionKey selects events with exactly that partition key;
	// PartitionKeyPattern those whose partition key the pattern matches
	// anywhere (PostgreSQL's ~). At most one of them is set.
	PartitionKey        *string
	PartitionKeyPattern *regexp.Regexp
	// Extra selects events whose extra holds each key with that string
	// value (JSON containment).
	Extra map[string]string
}

// Matches reports whether an event of the selected asset or alias passes
// the query's filters other than the asset or alias itself.
func (q AssetEventQuery) Matches(e *AssetEvent) bool {
	if q.After != nil && e.Timestamp.Before(*q.After) {
		return false
	}
	if q.Before != nil && e.Timestamp.After(*q.Before) {
		return false
	}
	if q.PartitionKey != nil && (e.PartitionKey == nil || *e.PartitionKey != *q.PartitionKey) {
		return false
	}
	if q.PartitionKeyPattern != nil && (e.PartitionKey == nil || !q.PartitionKeyPattern.MatchString(*e.PartitionKey)) {
		return false
	}
	if len(q.Extra) > 0 {
		var extra map[string]json.RawMessage
		if json.Unmarshal(e.Extra, &extra) != nil {
			return false
		}
		for k, want := range q.Extra {
			var got string
			v, ok := extra[k]
			if !ok || string(v) == "null" || json.Unmarshal(v, &got) != nil || got != want {
				return false
			}
		}
	}
	return true
}

// InvalidPatternError is a partition_key_pattern the store cannot use as
// a regular expression.
type InvalidPatternError struct{ Reason string }

func (e *InvalidPatternError) Error() string { return "workload: invalid pattern: " + e.Reason }

// Assets reads assets and their events.
type Assets interface {
	// ActiveAssetByName and ActiveAssetByURI return the active asset with
	// that name or uri, or ErrNotFound.
	ActiveAssetByName(ctx context.Context, name string) (*Asset, error)
	ActiveAssetByURI(ctx context.Context, uri string) (*Asset, error)
	// AssetsByAlias returns the assets associated with the alias (events
	// emitted through it named them), in the order they were associated;
	// none for an unknown alias.
	AssetsByAlias(ctx context.Context, alias string) ([]Asset, error)
	// AssetEvents returns the events q selects, ordered by timestamp.
	AssetEvents(ctx context.Context, q AssetEventQuery) ([]AssetEvent, error)
	// InactiveAssets returns the assets among the task instance's declared
	// inlets and outlets that are not active, or ErrNotFound for an unknown
	// task instance.
	InactiveAssets(ctx context.Context, tiID string) ([]AssetProfile, error)
}

// AssetProfile is an entry of a successful try's task_outlets (and of the
// inactive assets reported by validate-inlets-and-outlets): an Asset, an
// AssetNameRef, an AssetUriRef or an AssetAlias.
type AssetProfile struct {
	Name *string `json:"name"`
	URI  *string `json:"uri"`
	Type string  `json:"type"`
}

// AssetKey names an asset.
type AssetKey struct {
	Name string `json:"name"`
	URI  string `json:"uri"`
}

// OutletEvent is an entry of a successful try's outlet_events.
type OutletEvent struct {
	DestAssetKey AssetKey        `json:"dest_asset_key"`
	Extra        json.RawMessage `json:"extra"`
	// SourceAliasName is set when the event was emitted through an alias.
	SourceAliasName *string `json:"source_alias_name"`
	// DestAssetExtra is the extra of the asset an alias event names, for
	// the asset created when it is not known yet.
	DestAssetExtra json.RawMessage `json:"dest_asset_extra"`
	// PartitionKey is the event's own partition key; nil: the dag run's.
	PartitionKey *string `json:"partition_key"`
	// viaAlias records whether the key source_alias_name was present at
	// all (Airflow tests for the key, not its value).
	viaAlias bool
}

// ViaAlias reports whether the event was emitted through an alias.
func (e OutletEvent) ViaAlias() bool { return e.viaAlias }

// ParseOutlets decodes a success report's task_outlets and outlet_events.
func ParseOutlets(taskOutlets, outletEvents json.RawMessage) ([]AssetProfile, []OutletEvent, error) {
	var outlets []AssetProfile
	if len(taskOutlets) > 0 {
		var items []json.RawMessage
		if err := json.Unmarshal(taskOutlets, &items); err != nil {
			return nil, nil, fmt.Errorf("workload: task_outlets: %w", err)
		}
		for _, item := range items {
			var o AssetProfile
			if json.Unmarshal(item, &o) == nil {
				outlets = append(outlets, o)
			}
		}
	}
	var raw []json.RawMessage
	if len(outletEvents) > 0 {
		if err := json.Unmarshal(outletEvents, &raw); err != nil {
			return nil, nil, fmt.Errorf("workload: outlet_events: %w", err)
		}
	}
	// An event Airflow could not use (no dest_asset_key, a key that is no
	// name and uri, an extra that is no object) fails the whole try there
	// (the state update's catch-all marks it failed); here it is skipped.
	events := make([]OutletEvent, 0, len(raw))
	for _, r := range raw {
		var e OutletEvent
		var keys map[string]json.RawMessage
		if json.Unmarshal(r, &e) != nil || json.Unmarshal(r, &keys) != nil {
			continue
		}
		if k, ok := keys["dest_asset_key"]; !ok || len(k) == 0 || k[0] != '{' {
			continue
		}
		if len(e.Extra) > 0 && e.Extra[0] != '{' {
			continue
		}
		_, e.viaAlias = keys["source_alias_name"]
		events = append(events, e)
	}
	return outlets, events, nil
}

// MaxPartitionKeyLen is the width of Airflow's partition_key columns
// (ID_LEN).
const MaxPartitionKeyLen = 250

// InvalidPartitionKeyError is an outlet event's partition key Airflow
// refuses: 422 with reason invalid_partition_key.
type InvalidPartitionKeyError struct{ Message string }

func (e *InvalidPartitionKeyError) Error() string { return "workload: " + e.Message }

// CheckOutletPartitionKeys refuses an outlet event whose partition_key is
// empty or whitespace only, or longer than MaxPartitionKeyLen characters,
// with Airflow's messages. A key that is absent, null or not a string is
// not checked here.
func CheckOutletPartitionKeys(outletEvents json.RawMessage) error {
	if len(outletEvents) == 0 {
		return nil
	}
	var raw []map[string]json.RawMessage
	if json.Unmarshal(outletEvents, &raw) != nil {
		return nil
	}
	for _, m := range raw {
		var pk string
		v, ok := m["partition_key"]
		if !ok || string(v) == "null" || json.Unmarshal(v, &pk) != nil {
			continue
		}
		if strings.TrimFunc(pk, isPySpace) == "" {
			return &InvalidPartitionKeyError{Message: "partition_key in outlet event must not be empty or whitespace-only; got " +
				pyjson.Repr(pk) + "."}
		}
		if n := utf8.RuneCountInString(pk); n > MaxPartitionKeyLen {
			return &InvalidPartitionKeyError{Message: fmt.Sprintf(
				"partition_key in outlet event must be at most %d characters; got %d.", MaxPartitionKeyLen, n)}
		}
	}
	return nil
}

// isPySpace is Python's str.isspace for str.strip.
func isPySpace(r rune) bool {
	switch r {
	case 0x1c, 0x1d, 0x1e, 0x1f, 0x85:
		return true
	}
	return unicode.IsSpace(r)
}

// EventExtra is an asset event's extra as Airflow stores it: the given
// value, or {} when it is absent or falsy (`extra or {}`).
func EventExtra(extra json.RawMessage) json.RawMessage {
	var v any
	if len(extra) == 0 || json.Unmarshal(extra, &v) != nil {
		return json.RawMessage("{}")
	}
	switch t := v.(type) {
	case nil:
		return json.RawMessage("{}")
	case bool:
		if !t {
			return json.RawMessage("{}")
		}
	case float64:
		if t == 0 {
			return json.RawMessage("{}")
		}
	case string:
		if t == "" {
			return json.RawMessage("{}")
		}
	case map[string]any:
		if len(t) == 0 {
			return json.RawMessage("{}")
		}
	case []any:
		if len(t) == 0 {
			return json.RawMessage("{}")
		}
	}
	return extra
}

// OutletPlan is what a successful try's outlets record, resolved against
// the assets the store knows: Airflow's register_asset_changes_in_db at
// Execution API version 2026-11-13.
//
//   - every outlet Asset (name and uri), AssetNameRef and AssetUriRef that
//     resolves to an active asset gets an event per outlet event emitted
//     for that asset (its extra, its own partition key or else the dag
//     run's), or one event with an empty extra when none was emitted. One
//     that resolves to no active asset is skipped: Airflow logs a warning
//     and the try still succeeds.
//   - every distinct (asset, asset extra, event extra) emitted through one
//     of the task's outlet aliases gets one event carrying every alias that
//     emitted it, with the dag run's partition key, whether or not the
//     asset is active (an unknown asset is created).
type OutletPlan struct {
	Direct []DirectEvent
	Alias  []AliasEvent
}

// DirectEvent is an event of an active outlet asset.
type DirectEvent struct {
	Asset        AssetKey
	Extra        json.RawMessage
	PartitionKey *string
}

// AliasEvent is an event emitted through outlet aliases.
type AliasEvent struct {
	Asset AssetKey
	// AssetExtra is the extra of the asset when it has to be created.
	AssetExtra   json.RawMessage
	Extra        json.RawMessage
	Aliases      []string
	PartitionKey *string
}

// ActiveAssetLookup resolves outlets to active assets: by both name and
// uri, by name, by uri. ok is false when no active asset matches.
type ActiveAssetLookup interface {
	ActiveByKey(k AssetKey) (ok bool, err error)
	ActiveByName(name string) (k AssetKey, ok bool, err error)
	ActiveByURI(uri string) (k AssetKey, ok bool, err error)
}

// PlanOutlets resolves a successful try's outlets (see OutletPlan) with
// the dag run's partition key.
func PlanOutlets(outlets []AssetProfile, events []OutletEvent, runPartitionKey *string,
	lookup ActiveAssetLookup) (OutletPlan, error) {
	var plan OutletPlan
	type payload struct {
		extra json.RawMessage
		pk    *string
	}
	payloads := map[AssetKey][]payload{}
	for _, e := range events {
		if e.viaAlias {
			continue
		}
		payloads[e.DestAssetKey] = append(payloads[e.DestAssetKey], payload{e.Extra, e.PartitionKey})
	}
	register := func(k AssetKey) {
		ps := payloads[k]
		if len(ps) == 0 {
			plan.Direct = append(plan.Direct, DirectEvent{Asset: k, Extra: EventExtra(nil), PartitionKey: runPartitionKey})
			return
		}
		for _, p := range ps {
			pk := p.pk
			if pk == nil {
				pk = runPartitionKey
			}
			plan.Direct = append(plan.Direct, DirectEvent{Asset: k, Extra: EventExtra(p.extra), PartitionKey: pk})
		}
	}
	seenKey, seenName, seenURI := map[AssetKey]bool{}, map[string]bool{}, map[string]bool{}
	aliasNames := map[string]bool{}
	// Airflow walks the assets, then the name references, then the uri
	// references; each in the order the task declared them here.
	var keys []AssetKey
	var names, uris []string
	for _, o := range outlets {
		name, uri := deref(o.Name), deref(o.URI)
		switch o.Type {
		case "Asset":
			if k := (AssetKey{name, uri}); name != "" && uri != "" && !seenKey[k] {
				seenKey[k] = true
				keys = append(keys, k)
			}
		case "AssetNameRef":
			if name != "" && !seenName[name] {
				seenName[name] = true
				names = append(names, name)
			}
		case "AssetUriRef":
			if uri != "" && !seenURI[uri] {
				seenURI[uri] = true
				uris = append(uris, uri)
			}
		case "AssetAlias":
			if name != "" {
				aliasNames[name] = true
			}
		}
	}
	for _, k := range keys {
		ok, err := lookup.ActiveByKey(k)
		if err != nil {
			return OutletPlan{}, err
		}
		if ok {
			register(k)
		}
	}
	for _, n := range names {
		k, ok, err := lookup.ActiveByName(n)
		if err != nil {
			return OutletPlan{}, err
		}
		if ok {
			register(k)
		}
	}
	for _, u := range uris {
		k, ok, err := lookup.ActiveByURI(u)
		if err != nil {
			return OutletPlan{}, err
		}
		if ok {
			register(k)
		}
	}

	if len(aliasNames) == 0 {
		return plan, nil
	}
	index := map[string]int{}
	for _, e := range events {
		if !e.viaAlias || e.SourceAliasName == nil || !aliasNames[*e.SourceAliasName] {
			continue
		}
		assetExtra, err := sortedJSON(e.DestAssetExtra)
		if err != nil {
			return OutletPlan{}, fmt.Errorf("workload: outlet event asset extra: %w", err)
		}
		extra, err := sortedJSON(e.Extra)
		if err != nil {
			return OutletPlan{}, fmt.Errorf("workload: outlet event extra: %w", err)
		}
		id := e.DestAssetKey.Name + "\x00" + e.DestAssetKey.URI + "\x00" + string(assetExtra) + "\x00" + string(extra)
		i, ok := index[id]
		if !ok {
			i = len(plan.Alias)
			index[id] = i
			plan.Alias = append(plan.Alias, AliasEvent{Asset: e.DestAssetKey, AssetExtra: assetExtra,
				Extra: EventExtra(extra), PartitionKey: runPartitionKey})
		}
		a := &plan.Alias[i]
		if !containsString(a.Aliases, *e.SourceAliasName) {
			a.Aliases = append(a.Aliases, *e.SourceAliasName)
		}
	}
	return plan, nil
}

// sortedJSON re-encodes a JSON value with object keys sorted at every
// level, numbers and strings as given, {} when absent: the identity
// Airflow gives an alias event's extras (json.dumps(…, sort_keys=True)).
func sortedJSON(v json.RawMessage) (json.RawMessage, error) {
	if len(v) == 0 {
		return json.RawMessage("{}"), nil
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.TrimRight(b.Bytes(), "\n")), nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
