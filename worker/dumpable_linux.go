//go:build linux

package worker

import (
	"fmt"
	"syscall"
)

// MakeNonDumpable marks the worker process non-dumpable
// (prctl(PR_SET_DUMPABLE, 0)). The task's command runs as the worker's
// user, which ordinarily lets it ptrace the worker and read
// /proc/<worker pid>/mem, environ and fd/ — the workload and execution
// tokens are in the worker's memory. A non-dumpable process can only be
// inspected that way with CAP_SYS_PTRACE, and leaves no core dump holding
// the tokens either. The flag is not inherited across execve: the command
// itself stays dumpable.
func MakeNonDumpable() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0); errno != 0 {
		return fmt.Errorf("worker: prctl(PR_SET_DUMPABLE, 0): %w", errno)
	}
	return nil
}
