//go:build !unix

package worker

import "os"

// checkPrivate has no Unix permission bits to check off Unix.
func checkPrivate(string, os.FileInfo) error { return nil }
