package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/workload"
)

// emptyVariableKey is FastAPI's error for an empty {variable_key:path},
// listed once for the route and once for its has_variable_access
// dependency.
const emptyVariableKey = `{"type":"string_too_short","loc":["path","variable_key"],` +
	`"msg":"String should have at least 1 character","input":"","ctx":{"min_length":1}}`

// TestPutVariableBody holds PUT /execution/variables/{key} to Airflow's
// VariablePostBody (airflow-core …/execution_api/datamodels/variable.py): the
// value is required under its alias "val" or its name "value", null
// included. An empty key is refused with the body's errors after its own,
// unless the body is not JSON.
func TestPutVariableBody(t *testing.T) {
	h := newHarness(t)
	exec := h.execToken()
	const missing = `{"detail":[{"type":"missing","loc":["body","val"],"msg":"Field required","input":{"description":"d"}}]}`
	const emptyKey = emptyVariableKey + "," + emptyVariableKey
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
		{"empty key, bad body", "/execution/variables/", `{"description":"d"}`, 422, `{"detail":[` + emptyKey +
			`,{"type":"missing","loc":["body","val"],"msg":"Field required","input":{"description":"d"}}]}`},
		{"empty key, good body", "/execution/variables/", `{"val":"{}","description":"d"}`, 422, `{"detail":[` + emptyKey + `]}`},
		{"empty key, no body", "/execution/variables/", ``, 422, `{"detail":[` + emptyKey +
			`,{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}`},
		{"empty key, body not an object", "/execution/variables/", `[]`, 422, `{"detail":[` + emptyKey +
			`,{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary or object to extract fields from","input":[]}]}`},
		{"empty key, body not JSON", "/execution/variables/", `{`, 422,
			`{"detail":[{"type":"json_invalid","loc":["body",0],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantJSON(t, h.do("PUT", tt.path, exec, tt.body), tt.status, tt.want)
		})
	}
}

// TestVariableEmptyKey: GET and DELETE of an empty key answer the same 422
// as PUT, on every API version (Cadwyn does not version a path
// parameter's constraints).
func TestVariableEmptyKey(t *testing.T) {
	h := newHarness(t)
	exec := h.execToken()
	want := `{"detail":[` + emptyVariableKey + "," + emptyVariableKey + `]}`
	for _, version := range []string{"2025-04-11", "2026-04-06", "2026-06-30", APIVersion} {
		for _, method := range []string{"GET", "DELETE"} {
			t.Run(method+" "+version, func(t *testing.T) {
				wantJSON(t, h.do(method, "/execution/variables/", exec, "", "Airflow-API-Version", version), 422, want)
			})
		}
	}
}

// TestEnvSecrets: AIRFLOW_VAR_{KEY} and AIRFLOW_CONN_{CONN_ID} are read
// before the store, as Airflow's EnvironmentVariablesBackend is
// (airflow-core/src/airflow/secrets/environment_variables.py); writes and
// deletes reach the store only, and the environment keeps answering. No
// environment value reaches the log.
func TestEnvSecrets(t *testing.T) {
	env := workload.NewEnvSecrets([]string{
		"AIRFLOW_VAR_KEY1=VALUE", "AIRFLOW_VAR_lower=never",
		"AIRFLOW_CONN_PG=postgres://user:s3cr3t@db:5432/app?sslmode=require",
		"AIRFLOW_CONN_JS={\"conn_type\":\"http\",\"host\":\"h\",\"password\":\"s3cr3t\",\"extra\":{\"a\":1}}",
		"AIRFLOW_CONN_BROKEN=a://b://c://s3cr3t",
	})
	h := newHarness(t, withConfig(func(c *Config) { c.EnvSecrets = env }))
	exec := h.execToken()

	wantJSON(t, h.do("GET", "/execution/variables/key1", exec, ""), 200, `{"key":"key1","value":"VALUE"}`)
	wantJSON(t, h.do("GET", "/execution/variables/KEY1", exec, ""), 200, `{"key":"KEY1","value":"VALUE"}`)
	wantJSON(t, h.do("GET", "/execution/variables/lower", exec, ""), 404,
		`{"detail":{"reason":"not_found","message":"Variable with key 'lower' not found"}}`)

	// A write of an environment-defined key is stored and warned about;
	// reads (cached ones included) keep answering the environment.
	wantJSON(t, h.do("PUT", "/execution/variables/key1", exec, `{"val":"db"}`), 201, `{"message":"Variable successfully set"}`)
	if v, err := h.db.Variable(context.Background(), "key1"); err != nil || v.Value == nil || *v.Value != "db" {
		t.Errorf("stored variable = %+v, %v", v, err)
	}
	if n := h.logs.FilterMessageSnippet("variable is defined in the environment").Len(); n != 1 {
		t.Errorf("%d conflict warnings, want 1", n)
	}
	wantJSON(t, h.do("GET", "/execution/variables/key1", exec, ""), 200, `{"key":"key1","value":"VALUE"}`)
	if r := h.do("DELETE", "/execution/variables/key1", exec, ""); r.status != 204 {
		t.Errorf("delete = %d", r.status)
	}
	if _, err := h.db.Variable(context.Background(), "key1"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("stored variable after delete: %v", err)
	}
	wantJSON(t, h.do("GET", "/execution/variables/key1", exec, ""), 200, `{"key":"key1","value":"VALUE"}`)

	wantJSON(t, h.do("GET", "/execution/connections/pg", exec, ""), 200,
		`{"conn_id":"pg","conn_type":"postgres","host":"db","schema":"app","login":"user","password":"s3cr3t","port":5432,"extra":"{\"sslmode\": \"require\"}"}`)
	wantJSON(t, h.do("GET", "/execution/connections/PG", exec, ""), 200,
		`{"conn_id":"PG","conn_type":"postgres","host":"db","schema":"app","login":"user","password":"s3cr3t","port":5432,"extra":"{\"sslmode\": \"require\"}"}`)
	wantJSON(t, h.do("GET", "/execution/connections/js", exec, ""), 200,
		`{"conn_id":"js","conn_type":"http","host":"h","schema":null,"login":null,"password":"s3cr3t","port":null,"extra":"{\"a\": 1}"}`)

	// An environment value that does not parse is skipped for the store.
	wantJSON(t, h.do("GET", "/execution/connections/broken", exec, ""), 404,
		`{"detail":{"reason":"not_found","message":"Connection with ID broken not found"}}`)
	host := "stored"
	if err := h.db.PutConnection(context.Background(), workload.Connection{ConnID: "broken", ConnType: "x", Host: &host}); err != nil {
		t.Fatal(err)
	}
	wantJSON(t, h.do("GET", "/execution/connections/broken", exec, ""), 200,
		`{"conn_id":"broken","conn_type":"x","host":"stored","schema":null,"login":null,"password":null,"port":null,"extra":null}`)
	if h.logs.FilterMessageSnippet("environment connection ignored").Len() == 0 {
		t.Error("the skipped environment connection was not logged")
	}
	for _, e := range h.logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), "s3cr3t") || strings.Contains(fmt.Sprint(e.ContextMap()), "VALUE") {
			t.Errorf("an environment value reached the log: %s %v", e.Message, e.ContextMap())
		}
	}
}
