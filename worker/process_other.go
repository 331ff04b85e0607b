//go:build !unix

package worker

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// configureCommand has no process groups to set up off Unix.
func configureCommand(*exec.Cmd) {}

// signalGroup signals the command itself; only a kill is portable.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return p.Kill()
	}
	err := p.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// exitStatus turns the result of Wait into an exit code. It starts as the
// Unix one does (process_unix.go), which also reads the signal: a build has
// only one of the two.
func exitStatus(err error) (int, syscall.Signal) {
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return 0, 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), 0
	}
	return 1, 0
}
