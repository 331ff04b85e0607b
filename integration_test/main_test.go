// Package integration_test drives the real taskgate binary the way Airflow
// does: the CLI provisions a data directory offline, `taskgate serve` runs on
// a free loopback port, and the tests talk to it over HTTP with the headers
// of Airflow's Task SDK. Nothing here imports taskgate's packages but
// internal/pgtest, which makes the PostgreSQL databases (Airflow's schema,
// Airflow's rows) the PostgreSQL suite runs replicas on: what is tested is
// the wire contract, the statuses and bodies Airflow's Execution API
// answers with, as a worker sees them, and the rows Airflow reads.
package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/pgtest"
)

// binary is the taskgate executable every test runs, built once by TestMain.
var binary string

// Bounds of the waits in this package. They only stop a hung test; no
// assertion depends on how long anything takes.
const (
	readyTimeout = 20 * time.Second // server start until its "listening" line
	exitTimeout  = 20 * time.Second // SIGTERM until the process exits
	cliTimeout   = 30 * time.Second // one CLI command
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "taskgate-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "taskgate")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		// A race in the server then fails the run: its report breaks the
		// JSON log check and the exit-code check.
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/taskgate/taskgate")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: go build github.com/taskgate/taskgate:", err)
		return 1
	}
	// The PostgreSQL suite may have started a throwaway cluster (pgtest,
	// when no server is configured or running): stop it with the run.
	defer pgtest.StopCluster()
	return m.Run()
}

// baseEnv is the test process's environment without anything Airflow-ish,
// so a developer's AIRFLOW_HOME, AIRFLOW_CONFIG or AIRFLOW__* settings cannot
// change what the binary does. Tests add their own settings after it.
//
// It also keeps a developer's `taskgate login` out (the CLI would otherwise
// send provisioning commands to that server), makes passwords cheap to hash
// (bcrypt cost 4) and turns off the race runtime's one-second pause at exit,
// which would dominate tests that run many short processes; a race is still
// reported and still fails the process. Later entries override earlier ones.
func baseEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AIRFLOW") || strings.HasPrefix(kv, "TASKGATE_") || strings.HasPrefix(kv, "GORACE=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"TASKGATE_CREDENTIALS="+filepath.Join(os.TempDir(), "taskgate-integration-no-credentials", "credentials.json"),
		"AIRFLOW__TASKGATE__BCRYPT_COST=4",
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"),
	)
	return append(env, extra...)
}

// newDataDir returns a data directory that does not exist yet, so taskgate
// creates it (and its key material) itself.
func newDataDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "data")
}

// cliResult is what one CLI invocation printed and how it exited.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs `taskgate --data-dir dataDir args...` to completion.
func cli(t *testing.T, dataDir string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"--data-dir", dataDir}, args...)...)
	cmd.Env = baseEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		t.Fatalf("taskgate %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("taskgate %s: did not finish within %s", strings.Join(args, " "), cliTimeout)
	}
	collected.addLog("cli "+strings.Join(args[:min(2, len(args))], " ")+" ("+t.Name()+")", res.stderr, false)
	return res
}

// mustCLI runs a CLI command that must succeed and returns its stdout.
func mustCLI(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	r := cli(t, dataDir, args...)
	if r.code != 0 {
		t.Fatalf("taskgate %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// queued is the part of an ExecuteTask workload a worker needs.
type queued struct {
	Token                string // the workload token
	TIID                 string // ti.id
	DagID, RunID, TaskID string
	MapIndex             int
}

// queueTask runs `workloads queue` and returns the workload it printed.
func queueTask(t *testing.T, dataDir, dagID, runID, taskID string, extra ...string) queued {
	t.Helper()
	args := append([]string{"workloads", "queue", "--dag-id", dagID, "--run-id", runID, "--task-id", taskID}, extra...)
	out := mustCLI(t, dataDir, args...)
	var w struct {
		Type  string `json:"type"`
		Token string `json:"token"`
		TI    struct {
			ID       string `json:"id"`
			DagID    string `json:"dag_id"`
			RunID    string `json:"run_id"`
			TaskID   string `json:"task_id"`
			MapIndex int    `json:"map_index"`
		} `json:"ti"`
	}
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("workloads queue printed no JSON: %v\n%s", err, out)
	}
	if w.Type != "ExecuteTask" || w.Token == "" || !isUUID(w.TI.ID) {
		t.Fatalf("workloads queue: unexpected workload %s", out)
	}
	if w.TI.DagID != dagID || w.TI.RunID != runID || w.TI.TaskID != taskID {
		t.Fatalf("workloads queue: ti %+v, want %s/%s/%s", w.TI, dagID, runID, taskID)
	}
	collected.addToken("workload token from the CLI", w.Token)
	return queued{Token: w.Token, TIID: w.TI.ID, DagID: dagID, RunID: runID, TaskID: taskID, MapIndex: w.TI.MapIndex}
}

// lineBuffer collects a process's stderr. It is written by exec's copying
// goroutine and read by the test, so it locks; it also reports the address
// of the first "listening" log line.
type lineBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	scanned int
	addr    chan string
	sawAddr bool
	notify  chan struct{} // closed and replaced on every write
	// killed: the process writing here was SIGKILLed, so its last line
	// may be cut where the kernel stopped its write.
	killed bool
}

// markKilled records that the writer was SIGKILLed.
func (b *lineBuffer) markKilled() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.killed = true
}

// cutTail reports whether the text ends in a line without its newline
// that a SIGKILL cut.
func (b *lineBuffer) cutTail() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.killed && b.buf.Len() > 0 && !bytes.HasSuffix(b.buf.Bytes(), []byte("\n"))
}

func newLineBuffer() *lineBuffer {
	return &lineBuffer{addr: make(chan string, 1), notify: make(chan struct{})}
}

// changed returns a channel closed by the next write.
func (b *lineBuffer) changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.notify
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, _ := b.buf.Write(p)
	close(b.notify)
	b.notify = make(chan struct{})
	for {
		rest := b.buf.Bytes()[b.scanned:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		line := rest[:i]
		b.scanned += i + 1
		if b.sawAddr {
			continue
		}
		var entry struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &entry) == nil && entry.Msg == "listening" && entry.Addr != "" {
			b.sawAddr = true
			b.addr <- entry.Addr
		}
	}
	return n, nil
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// hasMessage reports whether a complete log line has "msg" == msg.
func (b *lineBuffer) hasMessage(msg string) bool {
	for _, line := range strings.Split(b.String(), "\n") {
		var entry struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == msg {
			return true
		}
	}
	return false
}

// server is one running `taskgate serve`.
type server struct {
	t       *testing.T
	URL     string // http://127.0.0.1:PORT
	dataDir string
	cmd     *exec.Cmd
	logs    *lineBuffer
	exited  chan struct{} // closed once the process was waited for
	waitErr error         // valid after exited is closed
}

// startServer runs `taskgate serve --listen 127.0.0.1:0 --data-dir dataDir`
// with env added to the environment and waits (bounded) for its "listening"
// line. The process is killed at the end of the test if it still runs.
func startServer(t *testing.T, dataDir string, env ...string) *server {
	t.Helper()
	return startServerCmd(t, dataDir, nil, "127.0.0.1:0", env...)
}

// startServerCmd is startServer listening on addr, with the command run
// behind wrapper (e.g. prlimit or unshare) when wrapper is not empty.
func startServerCmd(t *testing.T, dataDir string, wrapper []string, addr string, env ...string) *server {
	t.Helper()
	args := append(append([]string(nil), wrapper...), binary, "serve", "--listen", addr, "--data-dir", dataDir)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = baseEnv(env...)
	s := &server{t: t, dataDir: dataDir, cmd: cmd, logs: newLineBuffer(), exited: make(chan struct{})}
	cmd.Stderr = s.logs
	cmd.Stdout = s.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	collected.addLog("server stderr ("+t.Name()+")", "", true, s.logs)
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = cmd.Process.Kill()
			<-s.exited
		}
	})
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case got := <-s.logs.addr:
		s.URL = "http://" + got
	case <-s.exited:
		t.Fatalf("%v exited before listening (%v); output:\n%s", args, s.waitErr, s.logs)
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-s.exited
		t.Fatalf("%v did not log a listening line within %s; output:\n%s", args, readyTimeout, s.logs)
	}
	if secret, err := os.ReadFile(filepath.Join(dataDir, "jwt_secret")); err == nil {
		collected.addSecret("jwt_secret", strings.TrimSpace(string(secret)))
	}
	return s
}

// waitExit waits (bounded) for the process to exit and returns its exit
// code, -1 for death by signal.
func (s *server) waitExit() int {
	s.t.Helper()
	timer := time.NewTimer(exitTimeout)
	defer timer.Stop()
	select {
	case <-s.exited:
	case <-timer.C:
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.t.Fatalf("taskgate serve did not exit within %s; output:\n%s", exitTimeout, s.logs)
	}
	var exitErr *exec.ExitError
	switch {
	case s.waitErr == nil:
		return 0
	case errors.As(s.waitErr, &exitErr):
		return exitErr.ExitCode()
	}
	s.t.Fatalf("wait for taskgate serve: %v", s.waitErr)
	return -1
}

// stop sends SIGTERM and requires a clean exit (code 0).
func (s *server) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Fatalf("SIGTERM: %v", err)
	}
	if code := s.waitExit(); code != 0 {
		s.t.Fatalf("taskgate serve exited with %d after SIGTERM, want 0; output:\n%s", code, s.logs)
	}
}

// kill sends SIGKILL: no shutdown code runs.
func (s *server) kill() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Fatalf("SIGKILL: %v", err)
	}
	s.waitExit()
	s.logs.markKilled()
}

// collected gathers, across all tests, every secret that must never be
// logged and every log the binary wrote; TestLogsNeverHoldTokens checks
// them against each other.
var collected = &collection{}

type logSource struct {
	name     string
	text     string
	buf      *lineBuffer // read at check time when set
	jsonOnly bool        // every line must be a JSON object (server logs)
	// cutTail: the last line is a SIGKILLed write's beginning, not a
	// whole line (it is still scanned for secrets).
	cutTail bool
}

type secretValue struct {
	kind, value string
}

type collection struct {
	mu      sync.Mutex
	logs    []logSource
	secrets []secretValue
	seen    map[string]bool
}

func (c *collection) addLog(name, text string, jsonOnly bool, buf ...*lineBuffer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	src := logSource{name: name, text: text, jsonOnly: jsonOnly}
	if len(buf) > 0 {
		src.buf = buf[0]
	}
	c.logs = append(c.logs, src)
}

// minSecretLen keeps short test strings ("garbage") out of the scan, where
// they could match by accident.
const minSecretLen = 20

func (c *collection) addSecret(kind, value string) {
	if len(value) < minSecretLen {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	if c.seen[value] {
		return
	}
	c.seen[value] = true
	c.secrets = append(c.secrets, secretValue{kind, value})
}

// addToken records a token and its payload and signature segments: a log
// holding any of them holds (part of) a credential. The header segment is
// the same for every token and says nothing.
func (c *collection) addToken(kind, tok string) {
	c.addSecret(kind, tok)
	if parts := strings.Split(tok, "."); len(parts) == 3 {
		c.addSecret(kind+" (payload segment)", parts[1])
		c.addSecret(kind+" (signature segment)", parts[2])
	}
}

func (c *collection) snapshot() ([]logSource, []secretValue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	logs := append([]logSource(nil), c.logs...)
	for i := range logs {
		if logs[i].buf != nil {
			logs[i].text = logs[i].buf.String()
			logs[i].cutTail = logs[i].buf.cutTail()
		}
	}
	return logs, append([]secretValue(nil), c.secrets...)
}
