package integration_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIWhileServing: the provisioning commands share the server's
// database file, so while a server runs they must fail fast and say why —
// never hang, never write behind the server's back — and work again once
// it stopped. The key and the database (connection passwords) are private
// to their owner.
func TestCLIWhileServing(t *testing.T) {
	dataDir := newDataDir(t)
	queueTask(t, dataDir, "cli_dag", "manual__1", "first")
	mustCLI(t, dataDir, "variables", "set", "existing", "old")
	checkPrivate(t, dataDir)

	commands := [][]string{
		{"variables", "set", "existing", "new"},
		{"variables", "get", "existing"},
		{"connections", "add", "cli_conn", "--conn-type", "http", "--host", "example.org"},
		{"workloads", "queue", "--dag-id", "cli_dag", "--run-id", "manual__1", "--task-id", "second"},
	}

	srv := startServer(t, dataDir)
	for _, args := range commands {
		r := cli(t, dataDir, args...)
		if r.code == 0 {
			t.Errorf("taskgate %s while a server runs: exit 0, want non-zero", strings.Join(args, " "))
		}
		if !strings.Contains(r.stderr, "in use by a running taskgate server") {
			t.Errorf("taskgate %s while a server runs: stderr %q, want it to say the data directory is in use by a running taskgate server",
				strings.Join(args, " "), r.stderr)
		}
		if strings.TrimSpace(r.stdout) != "" {
			t.Errorf("taskgate %s while a server runs printed %q", strings.Join(args, " "), r.stdout)
		}
	}
	// The refused commands did not disturb the server.
	wantJSON(t, send(t, srv.URL, "GET", "/execution/health", "", ""), 200, `{"status":"healthy"}`)
	srv.stop()

	for _, args := range commands {
		mustCLI(t, dataDir, args...)
	}
	if got := strings.TrimSpace(mustCLI(t, dataDir, "variables", "get", "existing")); got != "new" {
		t.Errorf("variables get existing = %q, want new", got)
	}
	checkPrivate(t, dataDir)
}

// checkPrivate requires mode 0600 on the secret, the database and its
// heartbeat log.
func checkPrivate(t *testing.T, dataDir string) {
	t.Helper()
	for _, name := range []string{"jwt_secret", "taskgate.db", "taskgate.db-heartbeats", "taskgate.db-heartbeats-2"} {
		info, err := os.Stat(filepath.Join(dataDir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if perm := info.Mode().Perm(); perm != fs.FileMode(0o600) {
			t.Errorf("%s has mode %04o, want 0600", name, perm)
		}
	}
}
