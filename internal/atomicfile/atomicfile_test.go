package atomicfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// leftovers lists the files in dir other than want: temporary files that a
// write left behind.
func leftovers(t *testing.T, dir string, want ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for _, e := range entries {
		keep := false
		for _, w := range want {
			keep = keep || e.Name() == w
		}
		if !keep {
			extra = append(extra, e.Name())
		}
	}
	return extra
}

func TestCreateOnce(t *testing.T) {
	tests := map[string]struct {
		existing    *string // content of a file already at the path
		wantCreated bool
		wantContent string
	}{
		"new file": {wantCreated: true, wantContent: "generated"},
		"existing file kept": {
			existing: ptr("first"), wantCreated: false, wantContent: "first",
		},
		"existing empty file kept": {
			existing: ptr(""), wantCreated: false, wantContent: "",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "secret")
			if tt.existing != nil {
				if err := os.WriteFile(path, []byte(*tt.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			created, err := CreateOnce(path, []byte("generated"))
			if err != nil {
				t.Fatal(err)
			}
			if created != tt.wantCreated {
				t.Errorf("created = %v, want %v", created, tt.wantCreated)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantContent, string(got)); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
			if extra := leftovers(t, dir, "secret"); len(extra) != 0 {
				t.Errorf("left behind %v", extra)
			}
		})
	}
}

func TestModeIs0600(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix modes")
	}
	tests := map[string]func(path string) error{
		"CreateOnce": func(path string) error { _, err := CreateOnce(path, []byte("x")); return err },
		"WriteFile":  func(path string) error { return WriteFile(path, []byte("x")) },
		"WriteFile over a 0644 file": func(path string) error {
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				return err
			}
			return WriteFile(path, []byte("x"))
		},
	}
	for name, write := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := write(path); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("mode = %04o, want 0600", got)
			}
		})
	}
}

// TestCreateOnceConcurrent starts creators at once with different content:
// exactly one creates the file, and every one of them then reads the same
// content back.
func TestCreateOnceConcurrent(t *testing.T) {
	const n = 16
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	var (
		wg      sync.WaitGroup
		created [n]bool
		errs    [n]error
	)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			created[i], errs[i] = CreateOnce(path, []byte(fmt.Sprintf("content of creator %d", i)))
		}()
	}
	close(start)
	wg.Wait()
	winners := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("creator %d: %v", i, errs[i])
		}
		if created[i] {
			winners++
		}
	}
	if winners != 1 {
		t.Errorf("%d creators created the file, want 1", winners)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want string
	for i := range n {
		if created[i] {
			want = fmt.Sprintf("content of creator %d", i)
		}
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("content is not the winner's (-want +got):\n%s", diff)
	}
	if extra := leftovers(t, dir, "secret"); len(extra) != 0 {
		t.Errorf("left behind %v", extra)
	}
}

// TestPartialWriteNeverVisible reads the target while it is replaced again
// and again: every read sees one whole version.
func TestPartialWriteNeverVisible(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	versions := [][]byte{bytes.Repeat([]byte("a"), 64<<10), bytes.Repeat([]byte("b"), 64<<10)}
	if err := WriteFile(path, versions[0]); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		defer close(readErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			got, err := os.ReadFile(path)
			if err != nil {
				readErr <- err
				return
			}
			if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
				readErr <- fmt.Errorf("read %d bytes that are neither version", len(got))
				return
			}
		}
	}()
	for i := range 200 {
		if err := WriteFile(path, versions[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-readErr; err != nil {
		t.Error(err)
	}
	if extra := leftovers(t, dir, "f"); len(extra) != 0 {
		t.Errorf("left behind %v", extra)
	}
}

func TestPending(t *testing.T) {
	tests := map[string]struct {
		finish      func(p *Pending) error
		wantErr     bool
		wantContent string
	}{
		"commit replaces": {
			finish:      func(p *Pending) error { return p.Commit([]byte("new")) },
			wantContent: "new",
		},
		"abort keeps the old file": {
			finish:      func(p *Pending) error { p.Abort(); return nil },
			wantContent: "old",
		},
		"abort twice": {
			finish:      func(p *Pending) error { p.Abort(); p.Abort(); return nil },
			wantContent: "old",
		},
		"abort after commit does nothing": {
			finish: func(p *Pending) error {
				err := p.Commit([]byte("new"))
				p.Abort()
				return err
			},
			wantContent: "new",
		},
		"commit after abort fails": {
			finish:      func(p *Pending) error { p.Abort(); return p.Commit([]byte("new")) },
			wantErr:     true,
			wantContent: "old",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			p, err := Prepare(path)
			if err != nil {
				t.Fatal(err)
			}
			// Until the commit, the target keeps its old content.
			if got, _ := os.ReadFile(path); string(got) != "old" {
				t.Errorf("before commit: content %q, want %q", got, "old")
			}
			if err := tt.finish(p); (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantContent, string(got)); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
			if extra := leftovers(t, dir, "f"); len(extra) != 0 {
				t.Errorf("left behind %v", extra)
			}
		})
	}
}

func TestWriteFails(t *testing.T) {
	tests := map[string]func(dir string) (path string){
		"missing directory": func(dir string) string { return filepath.Join(dir, "no", "such", "dir", "f") },
		"target is a non-empty directory": func(dir string) string {
			target := filepath.Join(dir, "f")
			if err := os.MkdirAll(filepath.Join(target, "child"), 0o700); err != nil {
				t.Fatal(err)
			}
			return target
		},
	}
	for name, setup := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := setup(dir)
			if err := WriteFile(path, []byte("x")); err == nil {
				t.Error("WriteFile succeeded")
			}
			if extra := leftovers(t, dir, "f"); len(extra) != 0 {
				t.Errorf("left behind %v", extra)
			}
		})
	}
}

func TestSyncDir(t *testing.T) {
	tests := map[string]struct {
		dir     func(t *testing.T) string
		wantErr bool
	}{
		"existing directory": {dir: func(t *testing.T) string { return t.TempDir() }},
		"missing directory": {
			dir:     func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing") },
			wantErr: runtime.GOOS != "windows",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if err := SyncDir(tt.dir(t)); (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

func ptr(s string) *string { return &s }
