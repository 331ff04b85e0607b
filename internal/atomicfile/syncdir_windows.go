package atomicfile

// SyncDir does nothing on Windows: a directory cannot be opened for syncing
// there, and its renames need no such step.
func SyncDir(dir string) error { return nil }
