//go:build !linux

package worker

// MakeNonDumpable does nothing off Linux, where there is no
// PR_SET_DUMPABLE; run workers as a dedicated user there (see README).
func MakeNonDumpable() error { return nil }
