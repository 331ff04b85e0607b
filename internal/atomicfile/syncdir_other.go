//go:build !windows

package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// SyncDir makes the entries of dir durable: a file created, renamed or
// removed in it survives a crash. A file system that cannot sync a directory
// (EINVAL) has nothing to flush.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("atomicfile: sync %s: %w", dir, err)
	}
	return nil
}
