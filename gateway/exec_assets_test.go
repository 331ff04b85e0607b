package gateway

import (
	"testing"
)

// A success report's outlets are validated as Airflow's models validate
// them (422), and an outlet event's partition key as its route does, once
// the try is known to run.
func TestSuccessOutletsValidation(t *testing.T) {
	for _, c := range []struct {
		name, outlets, events string
		status                int
		want                  string
	}{
		{"outlet not an object", `[1]`, `[]`, 422,
			`{"detail":[{"type":"model_type","loc":["body","task_outlets",0],"msg":"Input should be a valid dictionary or instance of AssetProfile","input":1,"ctx":{"class_name":"AssetProfile"}}]}`},
		{"outlet without type, with an extra key", `[{"name":"a","x":1}]`, `[]`, 422,
			`{"detail":[{"type":"missing","loc":["body","task_outlets",0,"type"],"msg":"Field required","input":{"name":"a","x":1}},` +
				`{"type":"extra_forbidden","loc":["body","task_outlets",0,"x"],"msg":"Extra inputs are not permitted","input":1}]}`},
		{"outlet name not a string", `[{"name":1,"type":"Asset"}]`, `[]`, 422,
			`{"detail":[{"type":"string_type","loc":["body","task_outlets",0,"name"],"msg":"Input should be a valid string","input":1}]}`},
		{"event not an object", `[]`, `["a"]`, 422,
			`{"detail":[{"type":"dict_type","loc":["body","outlet_events",0],"msg":"Input should be a valid dictionary","input":"a"}]}`},
		{"empty partition key", `[]`, `[{"dest_asset_key":{"name":"a","uri":"u"},"extra":{},"partition_key":""}]`, 422,
			`{"detail":{"reason":"invalid_partition_key","message":"partition_key in outlet event must not be empty or whitespace-only; got ''."}}`},
		{"an event Airflow could not use is skipped", `[{"name":"a","uri":"s3://a","type":"Asset"}]`,
			`[{"extra":{}},{"dest_asset_key":"x"},{"dest_asset_key":{"name":"a","uri":"s3://a"},"extra":[1]}]`, 204, ``},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			id := h.queue("d", "r", "t", -1)
			exec := h.start(id)
			r := h.do("PATCH", "/execution/task-instances/"+id+"/state", exec,
				`{"state":"success","end_date":"2026-11-27T10:01:00Z","task_outlets":`+c.outlets+`,"outlet_events":`+c.events+`}`)
			if c.want == "" {
				if r.status != c.status {
					t.Fatalf("status %d %s, want %d", r.status, r.body, c.status)
				}
				return
			}
			wantJSON(t, r, c.status, c.want)
		})
	}
}
