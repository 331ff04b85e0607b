package pgtest

import "syscall"

// serverAttr runs the server as cred and sends it SIGQUIT (immediate
// shutdown) when the thread that started it ends.
func serverAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}
