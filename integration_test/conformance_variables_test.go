package integration_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
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

	t.Run("test_variables.py::TestGetVariable::test_variable_get_uses_server_path_when_supervisor_comms_exists", func(t *testing.T) {
		// The server reads its own environment and store; no Task SDK
		// client sits in between to patch.
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
			if d := firstDetail(t, r, 422); d["type"] != "string_too_short" {
				t.Errorf("%s: want detail[0] string_too_short", r)
			}
			wantJSON(t, r, 422, emptyVariableKey)
		})
		t.Run("test_variables.py::TestPutVariable::test_variable_missing_mandatory_fields[missing-value]", func(t *testing.T) {
			r := w.do("PUT", variablePath("var_create"), `{"description":"description"}`)
			d := firstDetail(t, r, 422)
			if d["type"] != "missing" || d["msg"] != "Field required" {
				t.Errorf("%s: want detail[0] missing / Field required", r)
			}
		})
	})

	t.Run("test_variables.py::TestPutVariable::test_variable_put_uses_server_path_when_supervisor_comms_exists", func(t *testing.T) {
		variablePutServerPath(t, w)
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

	t.Run("test_variables.py::TestDeleteVariable::test_variable_delete_uses_server_path_when_supervisor_comms_exists", func(t *testing.T) {
		variableDeleteServerPath(t, w)
	})

	// Beyond Airflow's cases: GET and DELETE of an empty key are refused as
	// PUT's is, since Airflow's routes all declare Path(min_length=1).
	for _, method := range []string{"GET", "DELETE"} {
		wantJSON(t, w.do(method, variablePath(""), ""), 422, emptyVariableKey)
	}

	// Beyond Airflow's cases: an environment connection's secret is served
	// and never logged (the log scan of this run checks the latter).
	wantJSON(t, w.do("GET", connectionPath("secret_env"), ""), 200,
		`{"conn_id":"secret_env","conn_type":"postgres","host":"h","schema":"db","login":"u","password":"`+envSecretPassword+`","port":null,"extra":null}`)
}

// emptyVariableKey is the 422 to an empty {variable_key:path}: Airflow's
// routes declare it Path(min_length=1) on the route and on its
// has_variable_access dependency, and FastAPI lists the error for each.
const emptyVariableKey = `{"detail":[` + emptyKeyError + "," + emptyKeyError + `]}`

const emptyKeyError = `{"type":"string_too_short","loc":["path","variable_key"],` +
	`"msg":"String should have at least 1 character","input":"","ctx":{"min_length":1}}`

// variablePutServerPath is Airflow's
// test_variable_put_uses_server_path_when_supervisor_comms_exists: the write
// reaches the server's store, which a read then answers.
func variablePutServerPath(t *testing.T, w *worker) {
	t.Helper()
	wantJSON(t, w.do("PUT", variablePath("var_server_only"), `{"value":"server_value"}`), 201,
		`{"message":"Variable successfully set"}`)
	wantJSON(t, w.do("GET", variablePath("var_server_only"), ""), 200, `{"key":"var_server_only","value":"server_value"}`)
}

// variableDeleteServerPath is Airflow's
// test_variable_delete_uses_server_path_when_supervisor_comms_exists: the
// delete removes the server's stored variable.
func variableDeleteServerPath(t *testing.T, w *worker) {
	t.Helper()
	mustStatus(t, w.do("PUT", variablePath("var_server_delete"), `{"value":"to_delete"}`), 201)
	wantNoContent(t, w.do("DELETE", variablePath("var_server_delete"), ""), 204)
	wantJSON(t, w.do("GET", variablePath("var_server_delete"), ""), 404,
		`{"detail":{"message":"Variable with key 'var_server_delete' not found","reason":"not_found"}}`)
}

// variableRows writes and clears variables on one store as Airflow's
// tests do with Variable.set and clear_db_variables.
type variableRows struct {
	set   func(t *testing.T, key, value string)
	clear func(t *testing.T)
}

// variableKeysEnv is an environment variable every keys test's server
// has: GET /variables/keys lists the store only, so it never appears
// (it would under the prefix "prod_").
const variableKeysEnv = "AIRFLOW_VAR_PROD_ENV=from the environment"

// variableKeysCases are Airflow's TestGetVariableKeys against w's server,
// whose variables rows writes. Every case starts from no variables, as
// Airflow's setup_method clears them.
func variableKeysCases(t *testing.T, w *worker, rows variableRows) {
	keysPath := func(params url.Values) string {
		if len(params) == 0 {
			return "/execution/variables/keys"
		}
		return "/execution/variables/keys?" + params.Encode()
	}
	t.Run("test_variables.py::TestGetVariableKeys::test_get_variable_keys", func(t *testing.T) {
		all := []string{"prod_db_url", "prod_api_key", "dev_debug", "prodXdb", "50%off", "50abc"}
		for _, tt := range []struct {
			name   string
			params url.Values
			want   []string
		}{
			{"test_variables.py::TestGetVariableKeys::test_get_variable_keys[no-prefix]", nil, all},
			{"test_variables.py::TestGetVariableKeys::test_get_variable_keys[underscore-is-literal]",
				url.Values{"prefix": {"prod_"}}, []string{"prod_db_url", "prod_api_key"}},
			{"test_variables.py::TestGetVariableKeys::test_get_variable_keys[percent-is-literal]",
				url.Values{"prefix": {"50%"}}, []string{"50%off"}},
			{"test_variables.py::TestGetVariableKeys::test_get_variable_keys[no-match]",
				url.Values{"prefix": {"staging_"}}, nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				rows.clear(t)
				for _, k := range all {
					rows.set(t, k, "x")
				}
				r := w.do("GET", keysPath(tt.params), "")
				var body struct {
					Keys         []string `json:"keys"`
					TotalEntries int      `json:"total_entries"`
				}
				if r.status != 200 || json.Unmarshal(r.body, &body) != nil || body.Keys == nil {
					t.Fatalf("%s: want 200 with a list of keys", r)
				}
				got, want := slices.Sorted(slices.Values(body.Keys)), slices.Sorted(slices.Values(tt.want))
				if !slices.Equal(got, want) || body.TotalEntries != len(tt.want) {
					t.Errorf("%s: want keys %q, total_entries %d", r, want, len(tt.want))
				}
			})
		}
	})
	t.Run("test_variables.py::TestGetVariableKeys::test_get_variable_keys_empty_db", func(t *testing.T) {
		rows.clear(t)
		wantJSON(t, w.do("GET", keysPath(nil), ""), 200, `{"keys":[],"total_entries":0}`)
	})
	t.Run("test_variables.py::TestGetVariableKeys::test_get_variable_keys_paginates_with_limit_and_offset", func(t *testing.T) {
		rows.clear(t)
		for i := range 5 {
			rows.set(t, "k"+strconv.Itoa(i), strconv.Itoa(i))
		}
		page := func(offset int) string {
			return keysPath(url.Values{"limit": {"2"}, "offset": {strconv.Itoa(offset)}})
		}
		wantJSON(t, w.do("GET", page(0), ""), 200, `{"keys":["k0","k1"],"total_entries":5}`)
		wantJSON(t, w.do("GET", page(2), ""), 200, `{"keys":["k2","k3"],"total_entries":5}`)
		wantJSON(t, w.do("GET", page(4), ""), 200, `{"keys":["k4"],"total_entries":5}`)
	})
	t.Run("test_variables.py::TestGetVariableKeys::test_get_variable_keys_validates_pagination_bounds", func(t *testing.T) {
		for _, tt := range []struct {
			name, param, value, errType string
		}{
			{"test_variables.py::TestGetVariableKeys::test_get_variable_keys_validates_pagination_bounds[limit-below-min]",
				"limit", "0", "greater_than_equal"},
			{"test_variables.py::TestGetVariableKeys::test_get_variable_keys_validates_pagination_bounds[limit-above-max]",
				"limit", "10001", "less_than_equal"},
			{"test_variables.py::TestGetVariableKeys::test_get_variable_keys_validates_pagination_bounds[offset-negative]",
				"offset", "-1", "greater_than_equal"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := w.do("GET", keysPath(url.Values{tt.param: {tt.value}}), "")
				d := firstDetail(t, r, 422)
				if loc, _ := d["loc"].([]any); d["type"] != tt.errType || len(loc) != 2 || loc[0] != "query" || loc[1] != tt.param {
					t.Errorf("%s: want detail[0] %s at query.%s", r, tt.errType, tt.param)
				}
			})
		}
	})
}

// TestConformanceVariableKeys: Airflow's TestGetVariableKeys on the
// embedded store, its rows written through the API.
func TestConformanceVariableKeys(t *testing.T) {
	dataDir := newDataDir(t)
	q := queueTask(t, dataDir, "dag", "run", "task")
	srv := startServer(t, dataDir, variableKeysEnv)
	w := newWorker(t, srv.URL, startedToken(t, srv.URL, q))
	written := map[string]bool{}
	variableKeysCases(t, w, variableRows{
		set: func(t *testing.T, key, value string) {
			t.Helper()
			mustStatus(t, w.do("PUT", variablePath(url.PathEscape(key)), mustJSON(t, map[string]string{"value": value})), 201)
			written[key] = true
		},
		clear: func(t *testing.T) {
			t.Helper()
			for key := range written {
				wantNoContent(t, w.do("DELETE", variablePath(url.PathEscape(key)), ""), 204)
				delete(written, key)
			}
		},
	})
}

// TestConformanceVariablesPostgres: on Airflow's metadata database, the
// newest test file's cases that depend on the store: the keys listing over
// rows Airflow's Variable.set writes, and writes and deletes that reach the
// variable table. The empty key's 422 is answered before any store is read.
func TestConformanceVariablesPostgres(t *testing.T) {
	d := newPGDeployment(t)
	run := d.insertDagRun("dag", "run")
	ti := d.insertQueuedTI(run, "task", 1, 1)
	srv := d.startReplica(t, variableKeysEnv)
	w := newWorker(t, srv.URL, startedToken(t, srv.URL, ti.q(d.minter(t))))

	variableKeysCases(t, w, variableRows{
		set:   func(t *testing.T, key, value string) { d.insertVariable(key, value, "") },
		clear: func(t *testing.T) { d.exec(`DELETE FROM variable`) },
	})

	rowCount := func(key string) (n int) {
		d.queryRow(`SELECT count(*) FROM variable WHERE key = $1`, []any{key}, &n)
		return n
	}
	t.Run("test_variables.py::TestPutVariable::test_variable_put_uses_server_path_when_supervisor_comms_exists[postgres]", func(t *testing.T) {
		variablePutServerPath(t, w)
		if n := rowCount("var_server_only"); n != 1 {
			t.Errorf("%d variable rows var_server_only, want 1", n)
		}
	})
	t.Run("test_variables.py::TestDeleteVariable::test_variable_delete_uses_server_path_when_supervisor_comms_exists[postgres]", func(t *testing.T) {
		variableDeleteServerPath(t, w)
		if n := rowCount("var_server_delete"); n != 0 {
			t.Errorf("%d variable rows var_server_delete, want 0", n)
		}
	})
	t.Run("test_variables.py::TestPutVariable::test_variable_missing_mandatory_fields[missing-key-postgres]", func(t *testing.T) {
		for _, method := range []string{"PUT", "GET", "DELETE"} {
			body := ""
			if method == "PUT" {
				body = `{"value":"{}","description":"description"}`
			}
			wantJSON(t, w.do(method, variablePath(""), body), 422, emptyVariableKey)
		}
	})
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
