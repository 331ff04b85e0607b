package integration_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestartKeepsAcknowledgedWrites: a write the gateway acknowledged is a
// write a worker acts on, so it must survive a restart — a graceful one
// (SIGTERM) and a crash (SIGKILL) alike. The key material must survive too:
// tokens issued before the restart keep working after it.
func TestRestartKeepsAcknowledgedWrites(t *testing.T) {
	dataDir := newDataDir(t)
	const dagID, runID = "restart_dag", "scheduled__2026-11-26T00:00:00+00:00"
	t1 := queueTask(t, dataDir, dagID, runID, "t1")
	t2 := queueTask(t, dataDir, dagID, runID, "t2")
	t3 := queueTask(t, dataDir, dagID, runID, "t3")
	h1 := host{"worker-1", "airflow", 3001}
	h2 := host{"worker-2", "airflow", 3002}
	h3 := host{"worker-3", "airflow", 3003}
	secretPath := filepath.Join(dataDir, "jwt_secret")

	// First life: several acknowledged writes of every kind.
	srv := startServer(t, dataDir)
	secretBefore, err := os.ReadFile(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	w1 := newWorker(t, srv.URL, t1.Token)
	mustStatus(t, w1.do("PATCH", tiPath(t1.TIID, "run"), h1.runPayload(t)), 200)
	wantNoContent(t, w1.do("PUT", tiPath(t1.TIID, "heartbeat"), h1.heartbeat(t)), 204)
	wantJSON(t, w1.do("PUT", variablePath("restart_a"), `{"val":"1"}`), 201, `{"message":"Variable successfully set"}`)
	wantJSON(t, w1.do("PUT", variablePath("nested/key/with/slashes"), `{"val":"deep","description":"d"}`), 201,
		`{"message":"Variable successfully set"}`)
	wantJSON(t, w1.do("PUT", variablePath("to_delete"), `{"val":"x"}`), 201, `{"message":"Variable successfully set"}`)
	wantNoContent(t, w1.do("DELETE", variablePath("to_delete"), ""), 204)
	wantJSON(t, w1.do("POST", t1.xcomPath("return_value"), `{"n":1}`), 201, `{"message":"XCom successfully set"}`)
	wantJSON(t, w1.do("POST", t1.xcomPath("custom_key"), `"text"`), 201, `{"message":"XCom successfully set"}`)
	wantNoContent(t, w1.do("PATCH", tiPath(t1.TIID, "state"), successPayload(t)), 204)
	w2 := newWorker(t, srv.URL, t2.Token)
	mustStatus(t, w2.do("PATCH", tiPath(t2.TIID, "run"), h2.runPayload(t)), 200)
	wantNoContent(t, w2.do("PUT", tiPath(t2.TIID, "heartbeat"), h2.heartbeat(t)), 204)
	srv.stop()

	// Second life: everything is there, and the old execution tokens (issued
	// by the first process) still validate.
	srv = startServer(t, dataDir)
	w1.base, w2.base = srv.URL, srv.URL
	wantJSON(t, w1.do("GET", variablePath("restart_a"), ""), 200, `{"key":"restart_a","value":"1"}`)
	wantJSON(t, w2.do("GET", variablePath("nested/key/with/slashes"), ""), 200,
		`{"key":"nested/key/with/slashes","value":"deep"}`)
	wantJSON(t, w2.do("GET", variablePath("to_delete"), ""), 404,
		`{"detail":{"reason":"not_found","message":"Variable with key 'to_delete' not found"}}`)
	wantJSON(t, w2.do("GET", t1.xcomPath("return_value"), ""), 200, `{"key":"return_value","value":{"n":1}}`)
	wantJSON(t, w2.do("GET", t1.xcomPath("custom_key"), ""), 200, `{"key":"custom_key","value":"text"}`)
	wantJSON(t, w1.do("PUT", tiPath(t1.TIID, "heartbeat"), h1.heartbeat(t)), 409,
		`{"detail":{"reason":"not_running","message":"TI is no longer in the running state and task should terminate","current_state":"success"}}`)
	// t2 still runs on worker-2, and only there.
	wantNoContent(t, w2.do("PUT", tiPath(t2.TIID, "heartbeat"), h2.heartbeat(t)), 204)
	wantJSON(t, newWorker(t, srv.URL, t2.Token).do("PATCH", tiPath(t2.TIID, "run"), h3.runPayload(t)), 409,
		`{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"running"}}`)
	secretAfter, err := os.ReadFile(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(secretAfter) != string(secretBefore) {
		t.Errorf("jwt_secret changed across a restart")
	}

	// More acknowledged writes, then a crash.
	wantJSON(t, w2.do("PUT", variablePath("after_restart"), `{"val":"2"}`), 201, `{"message":"Variable successfully set"}`)
	wantJSON(t, w2.do("POST", t2.xcomPath("return_value"), `[1,2,3]`), 201, `{"message":"XCom successfully set"}`)
	wantNoContent(t, w2.do("PATCH", tiPath(t2.TIID, "state"), failedPayload(t)), 204)
	w3 := newWorker(t, srv.URL, t3.Token)
	mustStatus(t, w3.do("PATCH", tiPath(t3.TIID, "run"), h3.runPayload(t)), 200)
	wantNoContent(t, w3.do("PUT", tiPath(t3.TIID, "heartbeat"), h3.heartbeat(t)), 204)
	wantJSON(t, w3.do("PUT", variablePath("restart_a"), `{"val":"overwritten"}`), 201, `{"message":"Variable successfully set"}`)
	wantJSON(t, w3.do("POST", t3.xcomPath("return_value"), `null`), 201, `{"message":"XCom successfully set"}`)
	srv.kill()

	// Third life, after SIGKILL: every acknowledged write of both lives.
	srv = startServer(t, dataDir)
	w1.base, w2.base, w3.base = srv.URL, srv.URL, srv.URL
	wantJSON(t, w3.do("GET", variablePath("restart_a"), ""), 200, `{"key":"restart_a","value":"overwritten"}`)
	wantJSON(t, w3.do("GET", variablePath("after_restart"), ""), 200, `{"key":"after_restart","value":"2"}`)
	wantJSON(t, w3.do("GET", variablePath("nested/key/with/slashes"), ""), 200,
		`{"key":"nested/key/with/slashes","value":"deep"}`)
	wantJSON(t, w3.do("GET", t1.xcomPath("return_value"), ""), 200, `{"key":"return_value","value":{"n":1}}`)
	wantJSON(t, w3.do("GET", t2.xcomPath("return_value"), ""), 200, `{"key":"return_value","value":[1,2,3]}`)
	wantJSON(t, w3.do("GET", t3.xcomPath("return_value"), ""), 200, `{"key":"return_value","value":null}`)
	wantJSON(t, w2.do("PUT", tiPath(t2.TIID, "heartbeat"), h2.heartbeat(t)), 409,
		`{"detail":{"reason":"not_running","message":"TI is no longer in the running state and task should terminate","current_state":"failed"}}`)
	wantNoContent(t, w3.do("PUT", tiPath(t3.TIID, "heartbeat"), h3.heartbeat(t)), 204)
	wantJSON(t, newWorker(t, srv.URL, t3.Token).do("PATCH", tiPath(t3.TIID, "run"), h1.runPayload(t)), 409,
		`{"detail":{"reason":"invalid_state","message":"TI was not in a state where it could be marked as running","previous_state":"running"}}`)
	srv.stop()

	// And offline, through the CLI.
	for key, want := range map[string]string{"restart_a": "overwritten", "after_restart": "2", "nested/key/with/slashes": "deep"} {
		if got := strings.TrimSpace(mustCLI(t, dataDir, "variables", "get", key)); got != want {
			t.Errorf("variables get %s = %q, want %q", key, got, want)
		}
	}
	if secretEnd, err := os.ReadFile(secretPath); err != nil || string(secretEnd) != string(secretBefore) {
		t.Errorf("jwt_secret changed across restarts (err %v)", err)
	}
}
