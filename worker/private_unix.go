//go:build unix

package worker

import (
	"fmt"
	"os"
	"syscall"
)

// checkPrivate refuses a workload file that group or others may read or
// write, and a regular file with more than one hard link.
func checkPrivate(path string, fi os.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("worker: workload file %s is open to group or others (mode %04o) and holds a workload token: "+
			"run `chmod 600 %s` (or write it with `taskgate workloads queue --output FILE`, or pass it on standard input with --workload -)",
			path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
		return fmt.Errorf("worker: workload file %s has %d hard links: removing it after reading would leave its token "+
			"behind the others; give a file with a single link", path, st.Nlink)
	}
	return nil
}
