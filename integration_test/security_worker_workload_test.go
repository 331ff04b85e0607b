package integration_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runWorkerTo runs `taskgate worker run args…` to completion with stdin and
// returns its exit code and output.
func runWorkerTo(t *testing.T, stdin string, env []string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), workerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"worker", "run"}, args...)...)
	cmd.Env = baseEnv(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	collected.addLog("worker output ("+t.Name()+")", out.String(), false)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case ctx.Err() != nil:
		t.Fatalf("taskgate worker did not exit within %s; output:\n%s", workerTimeout, out.String())
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), out.String()
	}
	t.Fatalf("taskgate worker run: %v", err)
	return -1, ""
}

// TestWorkerWorkloadFileIsPrivate is finding 7 from the worker's side: the
// task's command runs as the worker's user and finds the workload file
// through /proc/$PPID/cmdline. The worker refuses a file others may read
// (and never calls /run with it), removes a private file before the command
// starts, and takes the workload from standard input, leaving no file.
func TestWorkerWorkloadFileIsPrivate(t *testing.T) {
	dataDir := newDataDir(t)
	// Queued before the server starts: the offline CLI needs the data
	// directory.
	sharedRaw, shared := queueWorkload(t, dataDir, "private_dag", "manual__1", "shared")
	privateRaw, private := queueWorkload(t, dataDir, "private_dag", "manual__1", "private")
	stdinRaw, stdin := queueWorkload(t, dataDir, "private_dag", "manual__1", "stdin")
	outFile := filepath.Join(t.TempDir(), "workload.json")
	mustCLI(t, dataDir, "workloads", "queue", "--dag-id", "private_dag", "--run-id", "manual__1", "--task-id", "output", "--output", outFile)
	checkFileMode(t, outFile, 0o600)
	if b, err := os.ReadFile(outFile); err == nil {
		collected.addToken("workload from --output", string(b))
	}
	srv := startServer(t, dataDir)
	m := newMinter(t, dataDir)
	api := srv.URL + "/execution"
	// The command reports whether the workload file its parent names on its
	// command line is still there, as a JSON return value.
	probe := []string{"--", "sh", "-c", `if [ -e "$WORKLOAD_FILE" ]; then echo '"present"'; else echo '"gone"'; fi`}
	returnValue := func(t *testing.T, q queued, want string) {
		t.Helper()
		wantJSON(t, send(t, srv.URL, "GET", q.xcomPath("return_value"), "Bearer "+m.execution(q.TIID), ""), 200,
			`{"key":"return_value","value":`+want+`}`)
	}

	t.Run("world-readable file is refused", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "workload.json")
		if err := os.WriteFile(file, []byte(sharedRaw), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, 0o644); err != nil {
			t.Fatal(err)
		}
		code, out := runWorkerTo(t, "", []string{"WORKLOAD_FILE=" + file},
			append([]string{"--workload", file, "--server", api}, probe...)...)
		if code == 0 || !strings.Contains(out, file) || !strings.Contains(out, "chmod 600") {
			t.Errorf("exit %d, output %q: want a failure naming the file and chmod 600", code, out)
		}
		if _, err := os.Stat(file); err != nil {
			t.Errorf("the refused file was removed: %v", err)
		}
		if n := len(accessEntries(srv, shared.TIID)); n != 0 {
			t.Errorf("the worker sent %d requests with a refused workload", n)
		}
	})

	t.Run("private file is removed before the command runs", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "workload.json")
		if err := os.WriteFile(file, []byte(privateRaw), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := runWorkerTo(t, "", []string{"WORKLOAD_FILE=" + file},
			append([]string{"--workload", file, "--server", api}, probe...)...)
		if code != 0 {
			t.Fatalf("exit %d; output:\n%s", code, out)
		}
		returnValue(t, private, `"gone"`)
	})

	t.Run("standard input", func(t *testing.T) {
		code, out := runWorkerTo(t, stdinRaw, nil, "--workload", "-", "--server", api, "--", "sh", "-c", `echo '"ran"'`)
		if code != 0 {
			t.Fatalf("exit %d; output:\n%s", code, out)
		}
		returnValue(t, stdin, `"ran"`)
	})

	t.Run("queue --output writes a file the worker takes", func(t *testing.T) {
		code, out := runWorkerTo(t, "", []string{"WORKLOAD_FILE=" + outFile},
			append([]string{"--workload", outFile, "--server", api}, probe...)...)
		if code != 0 {
			t.Fatalf("exit %d; output:\n%s", code, out)
		}
		if _, err := os.Stat(outFile); !os.IsNotExist(err) {
			t.Errorf("workload file still there after the run: %v", err)
		}
	})
	srv.stop()
}
