package integration_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestGracefulShutdown: SIGTERM stops the server with exit code 0 after it
// finished the requests in flight.
func TestGracefulShutdown(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		srv := startServer(t, newDataDir(t))
		wantJSON(t, send(t, srv.URL, "GET", "/execution/health", "", ""), 200, `{"status":"healthy"}`)
		srv.stop()
		for _, msg := range []string{"shutting down", "stopped"} {
			if !srv.logs.hasMessage(msg) {
				t.Errorf("no %q log line after SIGTERM; output:\n%s", msg, srv.logs)
			}
		}
	})

	// The request is made in flight deterministically: it asks for
	// "100 Continue", which the server only sends once the handler reads the
	// body, and the body is sent only after the server logged that it is
	// shutting down.
	t.Run("request in flight", func(t *testing.T) {
		dataDir := newDataDir(t)
		q := queueTask(t, dataDir, "shutdown_dag", "manual__1", "t")
		srv := startServer(t, dataDir)
		me := host{"worker-s", "airflow", 4001}
		w := newWorker(t, srv.URL, q.Token)
		mustStatus(t, w.do("PATCH", tiPath(q.TIID, "run"), me.runPayload(t)), 200)

		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(exitTimeout)); err != nil {
			t.Fatal(err)
		}
		body := `{"val":"written during shutdown"}`
		cid := uuid.NewString()
		collected.addToken("token sent", w.token)
		fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: %s\r\nAirflow-API-Version: %s\r\nContent-Type: application/json\r\n"+
			"Correlation-Id: %s\r\nUser-Agent: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
			variablePath("inflight"), strings.TrimPrefix(srv.URL, "http://"), apiVersion, cid, sdkUserAgent, w.token, len(body))
		rd := bufio.NewReader(conn)
		cont, err := http.ReadResponse(rd, nil)
		if err != nil {
			t.Fatalf("waiting for 100 Continue: %v", err)
		}
		if cont.StatusCode != http.StatusContinue {
			b, _ := io.ReadAll(cont.Body)
			t.Fatalf("want 100 Continue, got %d %s", cont.StatusCode, b)
		}

		if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitForLog(t, srv, "shutting down")
		if _, err := io.WriteString(conn, body); err != nil {
			t.Fatalf("send body after SIGTERM: %v", err)
		}
		resp, err := http.ReadResponse(rd, nil)
		if err != nil {
			t.Fatalf("in-flight request got no response after SIGTERM: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := &response{method: "PUT", path: variablePath("inflight"), status: resp.StatusCode, header: resp.Header, body: b}
		wantJSON(t, r, 201, `{"message":"Variable successfully set"}`)
		if got := resp.Header.Get("Correlation-Id"); got != cid {
			t.Errorf("Correlation-Id = %q, want %q", got, cid)
		}
		if got := resp.Header.Get("Airflow-API-Version"); got != apiVersion {
			t.Errorf("Airflow-API-Version = %q, want %q", got, apiVersion)
		}

		if code := srv.waitExit(); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0; output:\n%s", code, srv.logs)
		}
		if !srv.logs.hasMessage("stopped") {
			t.Errorf("no \"stopped\" log line; output:\n%s", srv.logs)
		}
		// The request really was in flight: it finished after shutdown began.
		shutting, finished := -1, -1
		for i, line := range strings.Split(srv.logs.String(), "\n") {
			var e struct {
				Msg           string `json:"msg"`
				CorrelationID string `json:"correlation_id"`
			}
			if json.Unmarshal([]byte(line), &e) != nil {
				continue
			}
			switch {
			case e.Msg == "shutting down" && shutting < 0:
				shutting = i
			case e.CorrelationID == cid:
				finished = i
			}
		}
		if shutting < 0 || finished < shutting {
			t.Errorf("the in-flight request was not logged after \"shutting down\" (lines %d, %d); output:\n%s",
				shutting, finished, srv.logs)
		}
		// The write acknowledged during shutdown is durable.
		if got := strings.TrimSpace(mustCLI(t, dataDir, "variables", "get", "inflight")); got != "written during shutdown" {
			t.Errorf("variables get inflight = %q, want the value written during shutdown", got)
		}
	})
}

// waitForLog waits (bounded) until the server logged msg. It wakes on
// every write to the log instead of sleeping.
func waitForLog(t *testing.T, srv *server, msg string) {
	t.Helper()
	timer := time.NewTimer(exitTimeout)
	defer timer.Stop()
	for {
		changed := srv.logs.changed()
		if srv.logs.hasMessage(msg) {
			return
		}
		select {
		case <-changed:
		case <-srv.exited:
			if !srv.logs.hasMessage(msg) {
				t.Fatalf("server exited without logging %q; output:\n%s", msg, srv.logs)
			}
			return
		case <-timer.C:
			t.Fatalf("no %q log line within %s; output:\n%s", msg, exitTimeout, srv.logs)
		}
	}
}
