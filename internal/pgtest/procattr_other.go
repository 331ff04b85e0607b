//go:build unix && !linux

package pgtest

import "syscall"

// serverAttr runs the server as cred. Without Linux's parent-death signal,
// a server whose test binary was killed outlives it until the next run
// removes its directory: PostgreSQL checks its lock file every minute and
// shuts down when it is gone.
func serverAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
