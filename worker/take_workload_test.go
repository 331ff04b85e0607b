//go:build unix

package worker_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/worker"
)

// workloadDoc is a valid ExecuteTask document holding workloadToken.
const workloadDoc = `{"type":"ExecuteTask","token":"` + workloadToken + `","ti":{"id":"` + tiID + `","dag_version_id":"` + tiID +
	`","task_id":"extract","dag_id":"etl","run_id":"` + runID + `","try_number":1,"map_index":-1}}`

// TestTakeWorkload: the worker reads its workload from a private file and
// removes it before the task's command could read it, or from standard
// input; a file that group or others may read is refused, unread and left
// in place, with an error that names it and the fix.
func TestTakeWorkload(t *testing.T) {
	tests := []struct {
		name    string
		mode    os.FileMode
		wantErr []string // parts of the error; nil: success
	}{
		{"mode 0600 is read and removed", 0o600, nil},
		{"mode 0400 is read and removed", 0o400, nil},
		{"world-readable 0644 is refused", 0o644, []string{"is open to group or others (mode 0644)", "chmod 600"}},
		{"group-readable 0640 is refused", 0o640, []string{"(mode 0640)", "chmod 600"}},
		{"other-writable 0602 is refused", 0o602, []string{"(mode 0602)", "chmod 600"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "workload.json")
			if err := os.WriteFile(path, []byte(workloadDoc), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			w, err := worker.TakeWorkload(path, strings.NewReader("stdin must not be read"))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if w.Token != workloadToken || w.TI.ID != tiID {
					t.Errorf("workload %+v", w)
				}
				if _, err := os.Lstat(path); !os.IsNotExist(err) {
					t.Errorf("the workload file is still there after reading (%v)", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, part := range append([]string{"worker: workload file " + path}, tt.wantErr...) {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q lacks %q", err, part)
				}
			}
			if strings.Contains(err.Error(), workloadToken) {
				t.Errorf("error quotes the token: %v", err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("a refused workload file was removed: %v", err)
			}
		})
	}
}

func TestTakeWorkloadStdin(t *testing.T) {
	w, err := worker.TakeWorkload("-", strings.NewReader(workloadDoc))
	if err != nil {
		t.Fatal(err)
	}
	if w.Token != workloadToken || w.TI.ID != tiID {
		t.Errorf("workload %+v", w)
	}
	if _, err := worker.TakeWorkload("-", strings.NewReader("")); err == nil {
		t.Error("empty standard input accepted")
	}
}

// TestTakeWorkloadRefusesLinks: removing a symbolic link or one of several
// hard links would leave the token in the file behind it.
func TestTakeWorkloadRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target.json")
	if err := os.WriteFile(target, []byte(workloadDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	sym := filepath.Join(dir, "sym.json")
	if err := os.Symlink(target, sym); err != nil {
		t.Fatal(err)
	}
	if _, err := worker.TakeWorkload(sym, nil); err == nil || !strings.Contains(err.Error(), "is a symbolic link") {
		t.Errorf("symbolic link: %v", err)
	}
	hard := filepath.Join(dir, "hard.json")
	if err := os.Link(target, hard); err != nil {
		t.Fatal(err)
	}
	if _, err := worker.TakeWorkload(hard, nil); err == nil || !strings.Contains(err.Error(), "has 2 hard links") {
		t.Errorf("hard link: %v", err)
	}
	for _, p := range []string{target, sym, hard} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed after a refusal: %v", p, err)
		}
	}
}

// TestTakeWorkloadKeepsUnusableFile: a document that does not parse is not
// removed (nothing runs; the operator may want to look at it), and the
// error names the file without quoting it.
func TestTakeWorkloadKeepsUnusableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "workload.json")
	if err := os.WriteFile(path, []byte(`{"token":"`+workloadToken+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := worker.TakeWorkload(path, nil)
	if err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), workloadToken) {
		t.Errorf("error %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("unusable workload removed: %v", err)
	}
}

// TestTakeWorkloadUnremovable: a file the worker cannot remove is an error,
// since the task's command could read it. (Root removes anything.)
func TestTakeWorkloadUnremovable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can remove the file from a read-only directory")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "workload.json")
	if err := os.WriteFile(path, []byte(workloadDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	_, err := worker.TakeWorkload(path, nil)
	if err == nil || !strings.Contains(err.Error(), "remove workload file "+path) {
		t.Errorf("error %v, want one about removing the file", err)
	}
}
