package worker

import (
	"syscall"
	"testing"
)

// TestMakeNonDumpable: after MakeNonDumpable the kernel reports the process
// non-dumpable, so a same-user task command cannot read the worker's memory
// through /proc or ptrace. (It leaves the test process non-dumpable, which
// changes nothing else for the tests.)
func TestMakeNonDumpable(t *testing.T) {
	if err := MakeNonDumpable(); err != nil {
		t.Fatal(err)
	}
	v, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_GET_DUMPABLE, 0, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if v != 0 {
		t.Errorf("PR_GET_DUMPABLE = %d after MakeNonDumpable, want 0", v)
	}
}
