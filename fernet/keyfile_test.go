package fernet

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fernet_key")
	key, created, err := LoadOrCreateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v, %v", created, err)
	}
	if _, err := ParseKey(key); err != nil {
		t.Fatalf("created key does not parse: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %04o, want 0600", perm)
	}
	if b, _ := os.ReadFile(path); string(b) != key {
		t.Errorf("file holds %q, returned %q", b, key)
	}
	again, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created || again != key {
		t.Errorf("second call: %q created=%v %v; want the same key, not created", again, created, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

// TestLoadKeyFilePasted: a key written by hand (Airflow's fernet_key pasted
// with a trailing newline) is read as is.
func TestLoadKeyFilePasted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fernet_key")
	const k = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
	if err := os.WriteFile(path, []byte(k+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created || got != k {
		t.Errorf("= %q created=%v %v; want %q", got, created, err, k)
	}
}

func TestLoadKeyFileRefused(t *testing.T) {
	const bogus = "this-is-not-a-fernet-key-but-looks-secret"
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, path string)
		want    string
	}{
		{"group-writable", func(t *testing.T, path string) {
			writeFile(t, path, newKey(t), 0o620)
		}, "group- or world-writable"},
		{"world-writable", func(t *testing.T, path string) {
			writeFile(t, path, newKey(t), 0o602)
		}, "group- or world-writable"},
		{"not a key", func(t *testing.T, path string) {
			writeFile(t, path, bogus, 0o600)
		}, "invalid key"},
		{"empty", func(t *testing.T, path string) {
			writeFile(t, path, "", 0o600)
		}, "invalid key"},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fernet_key")
			tc.prepare(t, path)
			before, _ := os.ReadFile(path)
			_, _, err := LoadOrCreateKeyFile(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), bogus) {
				t.Errorf("error %q shows the file's content", err)
			}
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Error("a refused file was rewritten")
			}
		})
	}
}

func TestLoadKeyFileMissingDirectory(t *testing.T) {
	_, _, err := LoadOrCreateKeyFile(filepath.Join(t.TempDir(), "no", "such", "fernet_key"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("in a missing directory: %v", err)
	}
}

// TestCreateKeyFileRace: processes starting together agree on one key.
func TestCreateKeyFileRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fernet_key")
	const n = 16
	keys := make([]string, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if keys[i], created[i], err = LoadOrCreateKeyFile(path); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if keys[i] != keys[0] {
			t.Fatalf("callers got different keys")
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Errorf("%d callers report creating the file, want 1", creators)
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}
