package integration_test

import (
	"encoding/json"
	"testing"
)

// Airflow's variable and connection tests
// (airflow-core/tests/unit/api_fastapi/execution_api/versions/head/test_variables.py
// and test_connections.py), against the binary. Rows the database fixtures
// write in Airflow are written here through the API or the offline CLI;
// environment variables are the server's own, as Airflow's tests patch
// os.environ of the API server.

// envSecretPassword is a connection password that only the environment
// holds, registered with the log scan: no log may ever show it.
const envSecretPassword = "env-only-secret-4f1d2c9a7b"

func TestConformanceVariables(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "dag", "run", "task")
	collected.addSecret("connection password in AIRFLOW_CONN_SECRET_ENV", envSecretPassword)
	srv := startServer(t, dataDir, "AIRFLOW_VAR_KEY1=VALUE",
		"AIRFLOW_CONN_SECRET_ENV=postgres://u:"+envSecretPassword+"@h/db")
	w := newWorker(t, srv.URL, startedToken(t, srv.URL, q))

	t.Run("test_variables.py::TestGetVariable::test_variable_get_from_db", func(t *testing.T) {
		for _, tt := range []struct{ name, key, value string }{
			{"test_variables.py::TestGetVariable::test_variable_get_from_db[var1-value]", "var1", "value"},
			{"test_variables.py::TestGetVariable::test_variable_get_from_db[var2/with_slash-slash_value]", "var2/with_slash", "slash_value"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				mustStatus(t, w.do("PUT", variablePath(tt.key), mustJSON(t, map[string]string{"value": tt.value})), 201)
				wantJSON(t, w.do("GET", variablePath(tt.key), ""), 200, mustJSON(t, map[string]string{"key": tt.key, "value": tt.value}))
				wantNoContent(t, w.do("DELETE", variablePath(tt.key), ""), 204)
			})
		}
	})

	t.Run("test_variables.py::TestGetVariable::test_variable_get_from_env_var", func(t *testing.T) {
		wantJSON(t, w.do("GET", variablePath("key1"), ""), 200, `{"key":"key1","value":"VALUE"}`)
	})

	t.Run("test_variables.py::TestGetVariable::test_variable_get_not_found", func(t *testing.T) {
		for _, key := range []string{"non_existent_var", "non/existent/slash/var"} {
			wantJSON(t, w.do("GET", variablePath(key), ""), 404, mustJSON(t, map[string]any{"detail": map[string]string{
				"message": "Variable with key '" + key + "' not found", "reason": "not_found"}}))
		}
	})

	t.Run("test_variables.py::TestPutVariable::test_should_create_variable", func(t *testing.T) {
		for _, tt := range []struct {
			name, key string
			payload   map[string]string
		}{
			{"test_variables.py::TestPutVariable::test_should_create_variable[valid-payload]", "var_create",
				map[string]string{"value": "{}", "description": "description"}},
			{"test_variables.py::TestPutVariable::test_should_create_variable[missing-description]", "var_create",
				map[string]string{"value": "{}"}},
			{"test_variables.py::TestPutVariable::test_should_create_variable[slash-key]", "var_create/with_slash",
				map[string]string{"value": "slash_value", "description": "Variable with slash"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := w.do("PUT", variablePath(tt.key), mustJSON(t, tt.payload))
				wantJSON(t, r, 201, `{"message":"Variable successfully set"}`)
				wantJSON(t, w.do("GET", variablePath(tt.key), ""), 200,
					mustJSON(t, map[string]string{"key": tt.key, "value": tt.payload["value"]}))
			})
		}
	})

	t.Run("test_variables.py::TestPutVariable::test_variable_missing_mandatory_fields", func(t *testing.T) {
		t.Run("test_variables.py::TestPutVariable::test_variable_missing_mandatory_fields[missing-key]", func(t *testing.T) {
			r := w.do("PUT", variablePath(""), `{"value":"{}","description":"description"}`)
			if r.status != 404 {
				t.Errorf("%s: want 404", r)
			}
		})
		t.Run("test_variables.py::TestPutVariable::test_variable_missing_mandatory_fields[missing-value]", func(t *testing.T) {
			r := w.do("PUT", variablePath("var_create"), `{"description":"description"}`)
			d := firstDetail(t, r, 422)
			if d["type"] != "missing" || d["msg"] != "Field required" {
				t.Errorf("%s: want detail[0] missing / Field required", r)
			}
		})
	})

	t.Run("test_variables.py::TestPutVariable::test_variable_adding_extra_fields", func(t *testing.T) {
		for _, tt := range []struct{ name, body string }{
			{"test_variables.py::TestPutVariable::test_variable_adding_extra_fields[adding-key]",
				`{"key":"key","value":"{}","description":"description"}`},
			{"test_variables.py::TestPutVariable::test_variable_adding_extra_fields[adding-type]",
				`{"type":"PutVariable","value":"{}","description":"description"}`},
			{"test_variables.py::TestPutVariable::test_variable_adding_extra_fields[adding-extra-fields]",
				`{"value":"{}","description":"description","lorem":"ipsum","foo":"bar"}`},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := w.do("PUT", variablePath("key"), tt.body)
				d := firstDetail(t, r, 422)
				if d["type"] != "extra_forbidden" || d["msg"] != "Extra inputs are not permitted" {
					t.Errorf("%s: want detail[0] extra_forbidden", r)
				}
			})
		}
	})

	t.Run("test_variables.py::TestPutVariable::test_overwriting_existing_variable", func(t *testing.T) {
		for _, key := range []string{"var_over", "var_over/with_slash"} {
			mustStatus(t, w.do("PUT", variablePath(key), `{"value":"value"}`), 201)
			wantJSON(t, w.do("PUT", variablePath(key), `{"value":"new_value"}`), 201, `{"message":"Variable successfully set"}`)
			wantJSON(t, w.do("GET", variablePath(key), ""), 200, mustJSON(t, map[string]string{"key": key, "value": "new_value"}))
		}
	})

	t.Run("test_variables.py::TestDeleteVariable::test_should_delete_variable", func(t *testing.T) {
		for _, tt := range []struct {
			create []string
			del    string
		}{{[]string{"key1_db", "key2_db"}, "key1_db"}, {[]string{"key3/with_slash", "key4"}, "key3/with_slash"}} {
			for i, k := range tt.create {
				mustStatus(t, w.do("PUT", variablePath(k), mustJSON(t, map[string]string{"value": string(rune('1' + i))})), 201)
			}
			wantNoContent(t, w.do("DELETE", variablePath(tt.del), ""), 204)
			for _, k := range tt.create {
				want := 200
				if k == tt.del {
					want = 404
				}
				if r := w.do("GET", variablePath(k), ""); r.status != want {
					t.Errorf("%s: want %d", r, want)
				}
			}
		}
	})

	t.Run("test_variables.py::TestDeleteVariable::test_should_not_delete_variable", func(t *testing.T) {
		mustStatus(t, w.do("PUT", variablePath("key_kept"), `{"value":"value"}`), 201)
		wantNoContent(t, w.do("DELETE", variablePath("non_existent_key"), ""), 204)
		wantJSON(t, w.do("GET", variablePath("key_kept"), ""), 200, `{"key":"key_kept","value":"value"}`)
	})

	// Beyond Airflow's cases: an environment connection's secret is served
	// and never logged (the log scan of this run checks the latter).
	wantJSON(t, w.do("GET", connectionPath("secret_env"), ""), 200,
		`{"conn_id":"secret_env","conn_type":"postgres","host":"h","schema":"db","login":"u","password":"`+envSecretPassword+`","port":null,"extra":null}`)
}

func TestConformanceConnections(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "dag", "run", "task")
	mustCLI(t, dataDir, "connections", "add", "test_conn", "--conn-type", "http", "--host", "localhost",
		"--login", "root", "--password", "admin", "--schema", "http", "--port", "8080",
		"--extra", `{"x_secret": "testsecret", "y_secret": "test"}`)
	srv := startServer(t, dataDir,
		`AIRFLOW_CONN_TEST_CONN2={"uri": "http://root:admin@localhost:8080/https?headers=header"}`)
	w := newWorker(t, srv.URL, startedToken(t, srv.URL, q))

	t.Run("test_connections.py::TestGetConnection::test_connection_get_from_db", func(t *testing.T) {
		wantJSON(t, w.do("GET", connectionPath("test_conn"), ""), 200, `{"conn_id":"test_conn","conn_type":"http",
			"host":"localhost","login":"root","password":"admin","schema":"http","port":8080,
			"extra":"{\"x_secret\": \"testsecret\", \"y_secret\": \"test\"}"}`)
	})
	t.Run("test_connections.py::TestGetConnection::test_connection_get_from_env_var", func(t *testing.T) {
		wantJSON(t, w.do("GET", connectionPath("test_conn2"), ""), 200, `{"conn_id":"test_conn2","conn_type":"http",
			"host":"localhost","login":"root","password":"admin","schema":"https","port":8080,
			"extra":"{\"headers\": \"header\"}"}`)
	})
	t.Run("test_connections.py::TestGetConnection::test_connection_get_not_found", func(t *testing.T) {
		wantJSON(t, w.do("GET", connectionPath("non_existent_test_conn"), ""), 404,
			`{"detail":{"message":"Connection with ID non_existent_test_conn not found","reason":"not_found"}}`)
	})
}

// firstDetail requires a FastAPI validation error with status and returns
// its first entry.
func firstDetail(t *testing.T, r *response, status int) map[string]any {
	t.Helper()
	var body struct {
		Detail []map[string]any `json:"detail"`
	}
	if r.status != status || json.Unmarshal(r.body, &body) != nil || len(body.Detail) == 0 {
		t.Fatalf("%s: want %d with a list of details", r, status)
	}
	return body.Detail[0]
}
