package integration_test

import "testing"

// TestConformanceEnvSecretsPostgres: on Airflow's metadata database, as on
// the embedded store, AIRFLOW_VAR_{KEY} and AIRFLOW_CONN_{CONN_ID} are read
// before the variable and connection rows, as Airflow's default secrets
// backend search path (environment, then metastore) does; a task's write of
// an environment-defined variable reaches the row, and reads keep answering
// the environment.
func TestConformanceEnvSecretsPostgres(t *testing.T) {
	d := newPGDeployment(t)
	run := d.insertDagRun("dag", "run")
	ti := d.insertQueuedTI(run, "task", 1, 1)
	d.insertVariable("key1", "from the row", "")
	d.insertConnection(afConnection{connID: "test_conn2", connType: "postgres", host: "row.internal"})
	srv := d.startReplica(t, "AIRFLOW_VAR_KEY1=VALUE",
		`AIRFLOW_CONN_TEST_CONN2={"uri": "http://root:admin@localhost:8080/https?headers=header"}`)
	m := d.minter(t)
	w := newWorker(t, srv.URL, startedToken(t, srv.URL, ti.q(m)))

	t.Run("test_variables.py::TestGetVariable::test_variable_get_from_env_var[postgres]", func(t *testing.T) {
		wantJSON(t, w.do("GET", variablePath("key1"), ""), 200, `{"key":"key1","value":"VALUE"}`)
	})
	t.Run("test_connections.py::TestGetConnection::test_connection_get_from_env_var[postgres]", func(t *testing.T) {
		wantJSON(t, w.do("GET", connectionPath("test_conn2"), ""), 200, `{"conn_id":"test_conn2","conn_type":"http",
			"host":"localhost","login":"root","password":"admin","schema":"https","port":8080,
			"extra":"{\"headers\": \"header\"}"}`)
	})
	t.Run("write of an environment-defined variable", func(t *testing.T) {
		wantJSON(t, w.do("PUT", variablePath("key1"), `{"val":"written"}`), 201, `{"message":"Variable successfully set"}`)
		var encrypted bool
		var val string
		d.queryRow(`SELECT val, is_encrypted FROM variable WHERE key = 'key1'`, nil, &val, &encrypted)
		if !encrypted || val == "" || val == "from the row" {
			t.Errorf("variable row val=%q is_encrypted=%v: want the written value, encrypted", val, encrypted)
		}
		wantJSON(t, w.do("GET", variablePath("key1"), ""), 200, `{"key":"key1","value":"VALUE"}`)
	})
}
