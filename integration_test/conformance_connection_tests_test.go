package integration_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/workload"
)

// Airflow's test_connection_tests.py (execution_api/versions/head), case by
// case, on both stores. Airflow's tests override require_auth; here every
// request carries the test's own token, a workload token whose sub is the
// connection test's id ("ct:self"), as Airflow's scheduler mints it.

func connectionTestFixture(state workload.ConnectionTestState, c workload.Connection, commit bool) workload.ConnectionTest {
	return workload.ConnectionTest{ID: newID(), Connection: c, CommitOnSuccess: commit, State: state}
}

func TestConformanceConnectionTests(t *testing.T) {
	pg := workload.Connection{ConnID: "test_conn", ConnType: "postgres"}
	newConn := workload.Connection{ConnID: "new_conn", ConnType: "postgres", Host: strp("db.example.com"),
		Login: strp("user"), Password: strp("secret")}
	tests := []struct {
		name string
		run  func(t *testing.T, b workersBackend)
	}{
		{"test_connection_tests.py::TestPatchConnectionTest::test_patch_updates_result", func(t *testing.T, b workersBackend) {
			ct := connectionTestFixture(workload.ConnectionTestRunning, pg, false)
			e := newWorkersEnv(t, b, workersSeed{connectionTests: []workload.ConnectionTest{ct}})
			r := e.send("PATCH", "/execution/connection-tests/"+ct.ID, e.token(ct.ID, "workload"),
				`{"state":"success","result_message":"Connection successfully tested"}`)
			if r.status != 204 {
				t.Fatalf("%s, want 204", r)
			}
			state, msg := e.connectionTestResult(ct.ID)
			if state != "success" || msg == nil || *msg != "Connection successfully tested" {
				t.Errorf("stored %s %v", state, msg)
			}
		}},
		{"test_connection_tests.py::TestPatchConnectionTest::test_patch_returns_404_for_nonexistent", func(t *testing.T, b workersBackend) {
			e := newWorkersEnv(t, b, workersSeed{})
			id := "00000000-0000-0000-0000-000000000000"
			r := e.send("PATCH", "/execution/connection-tests/"+id, e.token(id, "workload"),
				`{"state":"success","result_message":"ok"}`)
			if r.status != 404 || detail(t, r)["reason"] != "not_found" {
				t.Fatalf("%s, want 404 not_found", r)
			}
		}},
		{"test_connection_tests.py::TestPatchConnectionTest::test_patch_returns_409_for_terminal_state", func(t *testing.T, b workersBackend) {
			ct := connectionTestFixture(workload.ConnectionTestSuccess, pg, false)
			ct.ResultMessage = strp("Already done")
			e := newWorkersEnv(t, b, workersSeed{connectionTests: []workload.ConnectionTest{ct}})
			r := e.send("PATCH", "/execution/connection-tests/"+ct.ID, e.token(ct.ID, "workload"),
				`{"state":"failed","result_message":"retry"}`)
			if r.status != 409 || !strings.Contains(detail(t, r)["message"].(string), "terminal state") {
				t.Fatalf("%s, want 409 … terminal state", r)
			}
			if state, msg := e.connectionTestResult(ct.ID); state != "success" || msg == nil || *msg != "Already done" {
				t.Errorf("a refused report changed the test: %s %v", state, msg)
			}
		}},
		{"test_connection_tests.py::TestPatchConnectionTestCommitOnSuccess::test_success_with_commit_creates_connection", func(t *testing.T, b workersBackend) {
			ct := connectionTestFixture(workload.ConnectionTestRunning, newConn, true)
			e := newWorkersEnv(t, b, workersSeed{connectionTests: []workload.ConnectionTest{ct}})
			r := e.send("PATCH", "/execution/connection-tests/"+ct.ID, e.token(ct.ID, "workload"),
				`{"state":"success","result_message":"Connection OK"}`)
			if r.status != 204 {
				t.Fatalf("%s, want 204", r)
			}
			typ, host, ok := e.connection("new_conn")
			if !ok || typ != "postgres" || host == nil || *host != "db.example.com" {
				t.Errorf("connection new_conn = %v %q %v", ok, typ, host)
			}
		}},
		{"test_connection_tests.py::TestPatchConnectionTestCommitOnSuccess::test_success_with_commit_updates_existing", func(t *testing.T, b workersBackend) {
			c := workload.Connection{ConnID: "existing_conn", ConnType: "postgres", Host: strp("new-host.example.com"),
				Login: strp("new_user")}
			ct := connectionTestFixture(workload.ConnectionTestRunning, c, true)
			e := newWorkersEnv(t, b, workersSeed{connectionTests: []workload.ConnectionTest{ct},
				connections: []workload.Connection{{ConnID: "existing_conn", ConnType: "http", Host: strp("old-host.example.com")}}})
			r := e.send("PATCH", "/execution/connection-tests/"+ct.ID, e.token(ct.ID, "workload"),
				`{"state":"success","result_message":"Connection OK"}`)
			if r.status != 204 {
				t.Fatalf("%s, want 204", r)
			}
			typ, host, ok := e.connection("existing_conn")
			if !ok || typ != "postgres" || host == nil || *host != "new-host.example.com" {
				t.Errorf("connection existing_conn = %v %q %v", ok, typ, host)
			}
		}},
		{"test_connection_tests.py::TestPatchConnectionTestCommitOnSuccess::test_success_without_commit_does_not_create", func(t *testing.T, b workersBackend) {
			c := workload.Connection{ConnID: "no_commit_conn", ConnType: "postgres", Host: strp("db.example.com")}
			ct := connectionTestFixture(workload.ConnectionTestRunning, c, false)
			e := newWorkersEnv(t, b, workersSeed{connectionTests: []workload.ConnectionTest{ct}})
			r := e.send("PATCH", "/execution/connection-tests/"+ct.ID, e.token(ct.ID, "workload"),
				`{"state":"success","result_message":"Connection OK"}`)
			if r.status != 204 {
				t.Fatalf("%s, want 204", r)
			}
			if _, _, ok := e.connection("no_commit_conn"); ok {
				t.Error("the connection was saved without commit_on_success")
			}
		}},
		{"test_connection_tests.py::TestPatchConnectionTestCommitOnSuccess::test_failed_with_commit_does_not_create", func(t *testing.T, b workersBackend) {
			c := workload.Connection{ConnID: "fail_conn", ConnType: "postgres", Host: strp("db.example.com")}
			ct := connectionTestFixture(workload.ConnectionTestRunning, c, true)
			e := newWorkersEnv(t, b, workersSeed{connectionTests: []workload.ConnectionTest{ct}})
			r := e.send("PATCH", "/execution/connection-tests/"+ct.ID, e.token(ct.ID, "workload"),
				`{"state":"failed","result_message":"Connection refused"}`)
			if r.status != 204 {
				t.Fatalf("%s, want 204", r)
			}
			if _, _, ok := e.connection("fail_conn"); ok {
				t.Error("a failed test saved its connection")
			}
		}},
		{"test_connection_tests.py::TestGetConnectionTestConnection::test_get_connection_returns_data", func(t *testing.T, b workersBackend) {
			port := 5432
			c := workload.Connection{ConnID: "test_conn", ConnType: "postgres", Host: strp("db.example.com"),
				Login: strp("user"), Password: strp("secret"), Schema: strp("mydb"), Port: &port,
				Extra: strp(`{"key": "value"}`)}
			ct := connectionTestFixture(workload.ConnectionTestQueued, c, false)
			e := newWorkersEnv(t, b, workersSeed{connectionTests: []workload.ConnectionTest{ct}})
			r := e.send("GET", "/execution/connection-tests/"+ct.ID+"/connection", e.token(ct.ID, "workload"), "")
			if r.status != 200 {
				t.Fatalf("%s, want 200", r)
			}
			var got map[string]any
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"conn_id": "test_conn", "conn_type": "postgres", "host": "db.example.com",
				"login": "user", "password": "secret", "schema": "mydb", "port": float64(5432), "extra": `{"key": "value"}`}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		}},
		{"test_connection_tests.py::TestGetConnectionTestConnection::test_get_connection_returns_404_for_nonexistent", func(t *testing.T, b workersBackend) {
			e := newWorkersEnv(t, b, workersSeed{})
			id := "00000000-0000-0000-0000-000000000000"
			r := e.send("GET", "/execution/connection-tests/"+id+"/connection", e.token(id, "workload"), "")
			if r.status != 404 {
				t.Fatalf("%s, want 404", r)
			}
		}},
	}
	for _, tt := range tests {
		for _, b := range workersBackends {
			t.Run(tt.name+"/"+string(b), func(t *testing.T) { tt.run(t, b) })
		}
	}
}

// TestConnectionTestTokens: a connection test's token reaches its own test
// only, and no task's token reaches a test.
func TestConnectionTestTokens(t *testing.T) {
	for _, b := range workersBackends {
		t.Run(string(b), func(t *testing.T) {
			ct := connectionTestFixture(workload.ConnectionTestRunning, workload.Connection{ConnID: "c", ConnType: "http"}, false)
			other := connectionTestFixture(workload.ConnectionTestRunning, workload.Connection{ConnID: "d", ConnType: "http"}, false)
			e := newWorkersEnv(t, b, workersSeed{connectionTests: []workload.ConnectionTest{ct, other}})
			path := "/execution/connection-tests/" + other.ID + "/connection"
			if r := e.send("GET", path, e.token(ct.ID, "workload"), ""); r.status != 403 ||
				!strings.Contains(string(r.body), "Token subject does not match connection test ID") {
				t.Errorf("another test's token: %s", r)
			}
			if r := e.send("GET", path, e.token(other.ID, "execution"), ""); r.status != 403 ||
				!strings.Contains(string(r.body), "Token type 'execution' not allowed") {
				t.Errorf("an execution token: %s", r)
			}
			if r := e.send("GET", "/execution/variables/x", e.token(ct.ID, "workload"), ""); r.status != 403 {
				t.Errorf("the test's token on a variable: %s", r)
			}
			if r := e.send("PATCH", "/execution/connection-tests/"+ct.ID, e.token(ct.ID, "workload"),
				`{"state":"running"}`); r.status != 422 {
				t.Errorf("a worker reporting running: %s, want 422", r)
			}
		})
	}
}
