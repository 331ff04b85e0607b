package integration_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPprofListen: [taskgate] pprof_listen serves the runtime profiles on
// its own loopback address, and the API address never does.
func TestPprofListen(t *testing.T) {
	addr := freeAddr(t)
	srv := startServer(t, t.TempDir(), "AIRFLOW__TASKGATE__PPROF_LISTEN="+addr)
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + addr + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof index: %d %.200s", code, body)
	}
	if code, body := get("http://" + addr + "/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("heap profile: %d %.200s", code, body)
	}
	if code, _ := get(srv.URL + "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("API address serves /debug/pprof/: %d, want 404", code)
	}
}
