package integration_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// The Task SDK's generated models at API version 2026-06-30,
// as the client validates a /run response. The real client refuses the
// whole response when dag_run carries a field it does not know, so unknown
// fields fail here at every level.

// kind is the JSON type a model field accepts.
type kind int

const (
	kString kind = iota
	kInt
	kBool
	kList
	kObject
	kDatetime // an RFC 3339 string with a zone (tz-aware)
	kJSONish  // next_kwargs: an object, or its JSON serialized as a string
	kStringList
)

type field struct {
	kind     kind
	required bool
	nullable bool
	enum     []string // allowed values of a string field
}

var tiRunContextModel = map[string]field{
	"dag_run":                          {kind: kObject, required: true},
	"task_reschedule_count":            {kind: kInt},
	"first_task_reschedule_start_date": {kind: kDatetime, nullable: true},
	"max_tries":                        {kind: kInt, required: true},
	"variables":                        {kind: kList, nullable: true},
	"connections":                      {kind: kList, nullable: true},
	"next_method":                      {kind: kString, nullable: true},
	"next_kwargs":                      {kind: kJSONish, nullable: true},
	"xcom_keys_to_clear":               {kind: kStringList, nullable: true},
	"should_retry":                     {kind: kBool},
	"start_date":                       {kind: kDatetime, nullable: true},
}

var dagRunModel = map[string]field{
	"dag_id":    {kind: kString, required: true},
	"run_id":    {kind: kString, required: true},
	"run_after": {kind: kDatetime, required: true},
	"run_type": {kind: kString, required: true, enum: []string{
		"backfill", "scheduled", "manual", "operator_triggered", "asset_triggered", "asset_materialization"}},
	"state":                 {kind: kString, required: true, enum: []string{"queued", "running", "success", "failed"}},
	"consumed_asset_events": {kind: kList, required: true},
	"logical_date":          {kind: kDatetime, nullable: true},
	"data_interval_start":   {kind: kDatetime, nullable: true},
	"data_interval_end":     {kind: kDatetime, nullable: true},
	"start_date":            {kind: kDatetime, nullable: true},
	"end_date":              {kind: kDatetime, nullable: true},
	"clear_number":          {kind: kInt},
	"conf":                  {kind: kObject, nullable: true},
	"triggering_user_name":  {kind: kString, nullable: true},
	"partition_key":         {kind: kString, nullable: true},
	"note":                  {kind: kString, nullable: true},
	"team_name":             {kind: kString, nullable: true},
}

var variableResponseModel = map[string]field{
	"key":   {kind: kString, required: true},
	"value": {kind: kString, nullable: true},
}

var connectionResponseModel = map[string]field{
	"conn_id":   {kind: kString, required: true},
	"conn_type": {kind: kString, required: true},
	"host":      {kind: kString, nullable: true},
	"schema":    {kind: kString, nullable: true},
	"login":     {kind: kString, nullable: true},
	"password":  {kind: kString, nullable: true},
	"port":      {kind: kInt, nullable: true},
	"extra":     {kind: kString, nullable: true},
}

// checkRunContext validates a /run response body against TIRunContext and
// returns every problem found (none: the real client would accept it).
func checkRunContext(body []byte) []string {
	var p problems
	obj := p.object("", body)
	if obj == nil {
		return p
	}
	p.model("", obj, tiRunContextModel)
	if raw, ok := obj["dag_run"]; ok {
		if dr := p.object("dag_run", raw); dr != nil {
			p.model("dag_run.", dr, dagRunModel)
		}
	}
	for _, list := range []struct {
		name  string
		model map[string]field
	}{{"variables", variableResponseModel}, {"connections", connectionResponseModel}} {
		var items []json.RawMessage
		if raw, ok := obj[list.name]; ok && json.Unmarshal(raw, &items) == nil {
			for i, it := range items {
				if o := p.object(fmt.Sprintf("%s[%d]", list.name, i), it); o != nil {
					p.model(fmt.Sprintf("%s[%d].", list.name, i), o, list.model)
				}
			}
		}
	}
	return p
}

type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p *problems) object(where string, raw json.RawMessage) map[string]json.RawMessage {
	var o map[string]json.RawMessage
	if err := json.Unmarshal(raw, &o); err != nil || o == nil {
		p.add("%s: not a JSON object: %s", strings.TrimSuffix(where, "."), raw)
		return nil
	}
	return o
}

// model checks obj against a field table: no unknown fields, every required
// field present, every value of the right type.
func (p *problems) model(prefix string, obj map[string]json.RawMessage, m map[string]field) {
	names := make([]string, 0, len(obj))
	for name := range obj {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		f, ok := m[name]
		if !ok {
			p.add("%s%s: unknown field (the model forbids extra fields)", prefix, name)
			continue
		}
		p.value(prefix+name, obj[name], f)
	}
	required := []string{}
	for name, f := range m {
		if _, ok := obj[name]; f.required && !ok {
			required = append(required, name)
		}
	}
	sort.Strings(required)
	for _, name := range required {
		p.add("%s%s: required field missing", prefix, name)
	}
}

func (p *problems) value(where string, raw json.RawMessage, f field) {
	if string(raw) == "null" {
		if !f.nullable {
			p.add("%s: null is not allowed", where)
		}
		return
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		p.add("%s: invalid JSON %s", where, raw)
		return
	}
	switch f.kind {
	case kString:
		s, ok := v.(string)
		if !ok {
			p.add("%s: want a string, got %s", where, raw)
		} else if f.enum != nil && !slices.Contains(f.enum, s) {
			p.add("%s: %q is not one of %v", where, s, f.enum)
		}
	case kInt:
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			p.add("%s: want an integer, got %s", where, raw)
		}
	case kBool:
		if _, ok := v.(bool); !ok {
			p.add("%s: want a boolean, got %s", where, raw)
		}
	case kList:
		if _, ok := v.([]any); !ok {
			p.add("%s: want a list, got %s", where, raw)
		}
	case kStringList:
		l, ok := v.([]any)
		if !ok {
			p.add("%s: want a list of strings, got %s", where, raw)
			return
		}
		for _, x := range l {
			if _, ok := x.(string); !ok {
				p.add("%s: want a list of strings, got %s", where, raw)
				return
			}
		}
	case kObject:
		if _, ok := v.(map[string]any); !ok {
			p.add("%s: want an object, got %s", where, raw)
		}
	case kJSONish:
		switch v.(type) {
		case map[string]any, string:
		default:
			p.add("%s: want an object or a JSON string, got %s", where, raw)
		}
	case kDatetime:
		s, ok := v.(string)
		if !ok {
			p.add("%s: want an RFC 3339 datetime string, got %s", where, raw)
			return
		}
		// time.RFC3339Nano requires the zone: "Z" or ±hh:mm.
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			p.add("%s: %q is not an RFC 3339 datetime with a zone: %v", where, s, err)
		}
	}
}
