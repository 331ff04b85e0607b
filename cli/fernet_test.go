package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/fernet"
	"github.com/taskgate/taskgate/store"
)

// TestConnectionSecretsOnDataDirectory: the data directory's key is created
// once and encrypts what `connections add` stores; rotate-key moves every
// connection to a key configured in [core] fernet_key.
func TestConnectionSecretsOnDataDirectory(t *testing.T) {
	const password = "pw-cli-3b8e-PLAINTEXT"
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	base := []string{envCredentials + "=" + filepath.Join(dir, "none.json")}
	cli := func(environ []string, args ...string) cliOutput {
		t.Helper()
		return runCLI(t, append(base, environ...), "", append([]string{"--data-dir", dataDir}, args...)...)
	}
	must := func(environ []string, args ...string) string {
		t.Helper()
		out := cli(environ, args...)
		if out.err != nil {
			t.Fatalf("taskgate %s: %v\nstderr: %s", strings.Join(args, " "), out.err, out.stderr)
		}
		return out.stdout
	}

	must(nil, "connections", "add", "db", "--conn-type", "postgres", "--password", password, "--extra", `{"k":"v"}`)
	keyPath := filepath.Join(dataDir, "fernet_key")
	checkMode(t, keyPath, 0o600)
	fileKey, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fernet.ParseKey(string(fileKey)); err != nil {
		t.Fatalf("data directory key: %v", err)
	}
	if db, _ := os.ReadFile(filepath.Join(dataDir, "taskgate.db")); bytes.Contains(db, []byte(password)) {
		t.Error("the database file holds the password in plaintext")
	}
	if !strings.Contains(must(nil, "connections", "get", "db"), `"password": "***"`) {
		t.Error("connections get does not read the encrypted connection")
	}
	must(nil, "connections", "add", "other", "--conn-type", "http", "--password", "second")
	if again, _ := os.ReadFile(keyPath); !bytes.Equal(again, fileKey) {
		t.Error("the data directory key changed between commands")
	}

	newKey, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	both := []string{"AIRFLOW__CORE__FERNET_KEY=" + newKey + "," + string(fileKey)}
	out := must(both, "connections", "rotate-key")
	if want := "re-encrypted 2 connections with the key of [core] fernet_key (first of 2)\n"; out != want {
		t.Errorf("rotate-key printed %q, want %q", out, want)
	}

	// The new key alone reads everything; the data directory's key no longer
	// reads anything.
	for _, tc := range []struct {
		name string
		key  string
		ok   bool
	}{
		{"new key", newKey, true},
		{"old key", string(fileKey), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secrets, err := fernet.NewMulti(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			db, err := store.Open(filepath.Join(dataDir, "taskgate.db"), store.Options{OpenTimeout: time.Second, Secrets: secrets})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			c, err := db.Connection(context.Background(), "db")
			switch {
			case tc.ok && (err != nil || c.Password == nil || *c.Password != password || *c.Extra != `{"k":"v"}`):
				t.Errorf("Connection = %+v, %v", c, err)
			case !tc.ok && !errors.Is(err, store.ErrDecrypt):
				t.Errorf("Connection: %v, want ErrDecrypt", err)
			}
		})
	}
	newOnly := []string{"AIRFLOW__CORE__FERNET_KEY=" + newKey}
	must(newOnly, "connections", "get", "db")
	if out := cli(nil, "connections", "get", "db"); out.err == nil || !strings.Contains(out.err.Error(), "cannot decrypt connection db") {
		t.Errorf("connections get with the retired key: %v", out.err)
	}
	if out := cli(nil, "connections", "rotate-key"); !errors.Is(out.err, store.ErrDecrypt) {
		t.Errorf("rotate-key with the retired key: %v", out.err)
	}
	if out := must(newOnly, "connections", "rotate-key"); out != "re-encrypted 2 connections with the key of [core] fernet_key (first of 1)\n" {
		t.Errorf("rotate-key again: %q", out)
	}
}

func TestConnectionCipherErrors(t *testing.T) {
	dir := t.TempDir()
	environ := []string{envCredentials + "=" + filepath.Join(dir, "none.json")}
	const bogus = "not-a-fernet-key-but-secret"
	for _, tc := range []struct {
		name    string
		environ []string
		args    []string
		usage   bool
		want    string
	}{
		{"bad configured key", []string{"AIRFLOW__CORE__FERNET_KEY=" + bogus}, []string{"connections", "list"}, false, "[core] fernet_key: key 1 of 1: fernet: invalid key"},
		{"extra argument", nil, []string{"connections", "rotate-key", "x"}, true, "usage: taskgate connections rotate-key"},
		{"through a server", nil, []string{"connections", "rotate-key", "--server", "http://127.0.0.1:1"}, true, "data directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := runCLI(t, append(environ, tc.environ...), "", append([]string{"--data-dir", filepath.Join(t.TempDir(), "d")}, tc.args...)...)
			var uerr *usageError
			if out.err == nil || !strings.Contains(out.err.Error(), tc.want) || errors.As(out.err, &uerr) != tc.usage {
				t.Errorf("err = %v, want one containing %q (usage error: %v)", out.err, tc.want, tc.usage)
			}
			if out.err != nil && strings.Contains(out.err.Error(), bogus) {
				t.Errorf("error %q shows the key", out.err)
			}
		})
	}
}
