package integration_test

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// workerTimeout bounds one `taskgate worker run`; it only stops a hung test.
const workerTimeout = 60 * time.Second

// queueWorkload runs `workloads queue` and returns the ExecuteTask document
// exactly as printed — what a worker is handed — and its parsed essentials.
func queueWorkload(t *testing.T, dataDir, dagID, runID, taskID string, extra ...string) (string, queued) {
	t.Helper()
	args := append([]string{"workloads", "queue", "--dag-id", dagID, "--run-id", runID, "--task-id", taskID}, extra...)
	out := mustCLI(t, dataDir, args...)
	var w struct {
		Token string `json:"token"`
		TI    struct {
			ID       string `json:"id"`
			MapIndex int    `json:"map_index"`
		} `json:"ti"`
	}
	if err := json.Unmarshal([]byte(out), &w); err != nil || w.Token == "" || !isUUID(w.TI.ID) {
		t.Fatalf("workloads queue printed no usable workload (%v):\n%s", err, out)
	}
	collected.addToken("workload token from the CLI", w.Token)
	return out, queued{Token: w.Token, TIID: w.TI.ID, DagID: dagID, RunID: runID, TaskID: taskID, MapIndex: w.TI.MapIndex}
}

// freeAddr returns a loopback address that was free a moment ago, for a
// server that must come back on the same port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// startServerAt is startServer on a given address.
func startServerAt(t *testing.T, dataDir, addr string, env ...string) *server {
	t.Helper()
	return startServerCmd(t, dataDir, nil, addr, env...)
}

// workerProc is one running `taskgate worker run`.
type workerProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	logs    *lineBuffer
	exited  chan struct{}
	waitErr error
}

// startWorker runs `taskgate worker run --workload FILE --server URL args…`
// with env added to the environment; args end with "--" and the command.
// A worker still running at the end of the test gets SIGTERM (which stops
// its command), then SIGKILL.
func startWorker(t *testing.T, serverURL, workloadJSON string, env []string, args ...string) *workerProc {
	t.Helper()
	file := filepath.Join(t.TempDir(), "workload.json")
	if err := os.WriteFile(file, []byte(workloadJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, append([]string{"worker", "run", "--workload", file, "--server", serverURL}, args...)...)
	cmd.Env = baseEnv(env...)
	w := &workerProc{t: t, cmd: cmd, logs: newLineBuffer(), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = w.logs, w.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start taskgate worker: %v", err)
	}
	// Not JSON-only: a failed run ends with main's "taskgate: …" line.
	collected.addLog("worker stderr ("+t.Name()+")", "", false, w.logs)
	go func() {
		w.waitErr = cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-w.exited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.exited:
		case <-time.After(exitTimeout):
			_ = cmd.Process.Kill()
			<-w.exited
		}
	})
	return w
}

// wait waits (bounded) for the worker to exit and returns its exit code.
func (w *workerProc) wait() int {
	w.t.Helper()
	select {
	case <-w.exited:
	case <-time.After(workerTimeout):
		_ = w.cmd.Process.Kill()
		<-w.exited
		w.t.Fatalf("taskgate worker did not exit within %s; output:\n%s", workerTimeout, w.logs)
	}
	var exitErr *exec.ExitError
	switch {
	case w.waitErr == nil:
		return 0
	case errors.As(w.waitErr, &exitErr):
		return exitErr.ExitCode()
	}
	w.t.Fatalf("wait for taskgate worker: %v", w.waitErr)
	return -1
}

// checkWorkerLog requires every line of a worker's log to be a JSON object
// (but main's closing "taskgate: …" line on failure) and none to hold
// anything shaped like a JWT: the worker receives execution tokens the test
// never sees, so it looks for their common prefix instead.
func checkWorkerLog(t *testing.T, w *workerProc) {
	t.Helper()
	for i, line := range strings.Split(w.logs.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "taskgate: ") {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Errorf("worker log line %d is not a JSON object: %s", i+1, line)
		}
		if strings.Contains(line, "eyJ") {
			t.Errorf("worker log line %d holds something token-shaped: %s", i+1, line)
		}
	}
}

// logEntries parses every JSON line of a log.
func logEntries(b *lineBuffer) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(b.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// waitForEntry waits (bounded) for a log entry that satisfies match.
func waitForEntry(t *testing.T, b *lineBuffer, what string, match func(e map[string]any) bool) {
	t.Helper()
	timer := time.NewTimer(workerTimeout)
	defer timer.Stop()
	for {
		changed := b.changed()
		for _, e := range logEntries(b) {
			if match(e) {
				return
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("no log entry %s within %s; log:\n%s", what, workerTimeout, b)
		}
	}
}

// accessEntries are the server's request log lines for one task instance.
func accessEntries(s *server, tiID string) []map[string]any {
	var out []map[string]any
	for _, e := range logEntries(s.logs) {
		if e["msg"] == "request" && (e["ti_id"] == tiID || e["sub"] == tiID) {
			out = append(out, e)
		}
	}
	return out
}

// workerRequests waits (bounded) until the server logged the state update
// of tiID — it writes a request's line after answering — and returns the
// task instance's request lines so far: the worker's, before the test's own.
func workerRequests(t *testing.T, s *server, tiID string) []map[string]any {
	t.Helper()
	waitForEntry(t, s.logs, "for the state update", func(e map[string]any) bool {
		return e["msg"] == "request" && e["ti_id"] == tiID && route(e) == "state"
	})
	return accessEntries(s, tiID)
}

// route shortens an access-log route to what follows the task instance or
// names the resource ("run", "heartbeat", "state", "xcoms").
func route(e map[string]any) string {
	r, _ := e["route"].(string)
	if strings.HasPrefix(r, "/execution/xcoms/") {
		return "xcoms"
	}
	return r[strings.LastIndex(r, "/")+1:]
}

func status(e map[string]any) int {
	f, _ := e["status"].(float64)
	return int(f)
}

// isHeartbeat matches a heartbeat of tiID answered with code.
func isHeartbeat(tiID string, code int) func(e map[string]any) bool {
	return func(e map[string]any) bool {
		return e["msg"] == "request" && e["ti_id"] == tiID && route(e) == "heartbeat" && status(e) == code
	}
}

// hasMsg matches a log entry by message.
func hasMsg(msg string) func(e map[string]any) bool {
	return func(e map[string]any) bool { return e["msg"] == msg }
}

// sawMsg reports whether a log holds an entry with msg.
func sawMsg(b *lineBuffer, msg string) bool {
	for _, e := range logEntries(b) {
		if e["msg"] == msg {
			return true
		}
	}
	return false
}
