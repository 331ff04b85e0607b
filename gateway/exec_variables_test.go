package gateway

import "testing"

// TestPutVariableBody holds PUT /execution/variables/{key} to Airflow's
// VariablePostBody (airflow-core …/execution_api/datamodels/variable.py): the
// value is required under its alias "val" or its name "value", null
// included; the body is validated before the handler's empty-key 404.
func TestPutVariableBody(t *testing.T) {
	h := newHarness(t)
	exec := h.execToken()
	const missing = `{"detail":[{"type":"missing","loc":["body","val"],"msg":"Field required","input":{"description":"d"}}]}`
	tests := []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"value missing", "/execution/variables/k", `{"description":"d"}`, 422, missing},
		{"value missing, empty body object", "/execution/variables/k", `{}`, 422,
			`{"detail":[{"type":"missing","loc":["body","val"],"msg":"Field required","input":{}}]}`},
		{"value null is a value", "/execution/variables/k", `{"val":null}`, 201, `{"message":"Variable successfully set"}`},
		{"value by name, null", "/execution/variables/k", `{"value":null}`, 201, `{"message":"Variable successfully set"}`},
		{"value not a string", "/execution/variables/k", `{"val":1}`, 422,
			`{"detail":[{"type":"string_type","loc":["body","val"],"msg":"Input should be a valid string","input":1}]}`},
		{"empty key, bad body", "/execution/variables/", `{"description":"d"}`, 422, missing},
		{"empty key, good body", "/execution/variables/", `{"val":"{}","description":"d"}`, 404, `{"detail":"Not Found"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantJSON(t, h.do("PUT", tt.path, exec, tt.body), tt.status, tt.want)
		})
	}
}
