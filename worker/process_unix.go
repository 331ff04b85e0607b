//go:build unix

package worker

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// configureCommand puts the command in a process group of its own, so that
// stopping the task stops everything it started, and a signal meant for the
// worker's terminal group does not reach the task behind the supervisor's
// back.
func configureCommand(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to the command's process group. A group that no
// longer exists is not an error.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	err := syscall.Kill(-p.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// exitStatus turns the result of Wait into an exit code — 128+n for death
// by signal n, as shells report it — and that signal. process_other.go
// repeats its start without the signal: a build has only one of the two.
func exitStatus(err error) (int, syscall.Signal) {
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return 0, 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 1, 0
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), ws.Signal()
	}
	return ee.ExitCode(), 0
}
