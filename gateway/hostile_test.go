package gateway

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// hostileValues replace one field of a valid payload at a time: every JSON
// type, the edges of numbers and strings, and dates Python cannot hold.
var hostileValues = []string{
	`null`, `true`, `0`, `-1`, `1.5`, `1e400`, `-1e400`, `9223372036854775808`, `-9223372036854775809`,
	`""`, `"x"`, `"` + strings.Repeat("x", 10000) + `"`, `"\u0000"`, `"\ud800"`, `{}`, `{"a":1}`, `[]`, `[1,"a",null]`,
	strings.Repeat("[", 64) + strings.Repeat("]", 64), strings.Repeat("[", 65) + strings.Repeat("]", 65),
	`"2026-11-27T10:00:00Z"`, `"0000-01-01T00:00:00Z"`, `"9999-12-31T23:59:59.999999999Z"`, `"2026-13-45T99:99:99Z"`,
	`1e11`, `-62135596800`, `"PT30S"`, `"P99999999999W"`,
	`-1e11`, // Unix seconds before year 1: refused, not a 500 from the store
}

// TestHostileBodiesNeverServerError sends, through the whole handler chain,
// every payload the task routes read with each field replaced by each
// hostile value, a field added or removed, plus the fuzz seeds: whatever the
// body, the answer is never a 5xx.
func TestHostileBodiesNeverServerError(t *testing.T) {
	h := newHarness(t)
	// A state change that applies ends the task instance's run; the next
	// body then gets a fresh running one, so every body reaches the store.
	n := 0
	var id, tok string
	fresh := func() {
		n++
		id = h.queue("hostile_dag", "run", "t"+strings.Repeat("x", n), -1)
		tok = h.start(id)
	}
	fresh()
	const ti = "/execution/task-instances/{id}"
	type route struct{ method, path, valid string }
	routes := []route{
		{"PATCH", ti + "/run", runBody(hostA, pidA)},
		{"PUT", ti + "/heartbeat", `{"hostname":"` + hostA + `","pid":4242}`},
		{"PATCH", ti + "/state", `{"state":"up_for_reschedule","reschedule_date":"2026-11-27T11:00:00Z","end_date":"2026-11-27T10:00:00Z"}`},
		{"PATCH", ti + "/state", `{"state":"deferred","classpath":"a.B","trigger_kwargs":{},"trigger_timeout":"PT1M","queue":null,"next_method":"m","next_kwargs":{},"rendered_map_index":null}`},
		{"PATCH", ti + "/state", `{"state":"up_for_retry","end_date":"2026-11-27T10:00:00Z","retry_delay_seconds":1,"retry_reason":"r","rendered_map_index":"x"}`},
		{"PATCH", ti + "/state", `{"state":"success","end_date":"2026-11-27T10:00:00Z","task_outlets":[],"outlet_events":[],"rendered_map_index":null}`},
		{"PUT", ti + "/rtif", `{"sql":"select 1"}`},
		{"PATCH", ti + "/skip-downstream", `{"tasks":["a",["b",1]]}`},
		{"PUT", "/execution/variables/hostile", `{"val":"v","description":"d"}`},
		{"POST", "/execution/xcoms/hostile_dag/run/t/k", `{"v":1}`},
	}
	sent := 0
	for _, rt := range routes {
		var bodies []string
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(rt.valid), &fields); err != nil {
			t.Fatalf("bad valid payload %s: %v", rt.valid, err)
		}
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, name := range names {
			for _, v := range hostileValues {
				bodies = append(bodies, hostileWithField(fields, name, v))
			}
			bodies = append(bodies, hostileWithField(fields, name, ""))
		}
		bodies = append(bodies, hostileWithField(fields, "unexpected", `1`))
		bodies = append(bodies, fuzzBodySeeds...)
		for _, body := range bodies {
			r := h.do(rt.method, strings.Replace(rt.path, "{id}", id, 1), tok, body)
			sent++
			if strings.HasSuffix(rt.path, "/state") && r.status < 300 {
				fresh()
			}
			if r.status < 500 {
				continue
			}
			t.Errorf("%s %s with %s: %d %s", rt.method, rt.path, hostileClip(body), r.status, r.body)
		}
	}
	t.Logf("%d hostile bodies over %d routes (%d task instances)", sent, len(routes), n)
}

// hostileWithField returns fields as a JSON object with name set to the raw value,
// or removed when raw is empty.
func hostileWithField(fields map[string]json.RawMessage, name, raw string) string {
	out := make(map[string]json.RawMessage, len(fields)+1)
	for k, v := range fields {
		out[k] = v
	}
	if raw == "" {
		delete(out, name)
	} else {
		out[name] = json.RawMessage(raw)
	}
	b, err := json.Marshal(out) // RawMessage values are copied as they are
	if err != nil {
		panic(err)
	}
	return string(b)
}

func hostileClip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
