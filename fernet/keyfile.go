package fernet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/taskgate/taskgate/internal/atomicfile"
)

// LoadOrCreateKeyFile returns the key kept in the file at path, creating the
// file with a new key (GenerateKey) if it does not exist.
//
// Why a file: the key must live apart from the database it protects, so that
// a copy of the database (a backup, a support bundle) does not carry the
// means to read its connection passwords, and it must outlive the process,
// or every restart would make the stored secrets unreadable.
//
// The file holds one key as text, in the format of Airflow's [core]
// fernet_key, so it can be pasted there; surrounding white space is ignored.
// Rotating away from it means configuring [core] fernet_key as
// "NEW_KEY,<this file's key>", re-encrypting, then dropping the old key.
//
// The rules are those of tokens.LoadOrCreateSecret: an existing file must be
// a regular file that is not group- or world-writable (whoever can replace
// the key can make the gateway encrypt new secrets under a key they know)
// and must parse as a key. A new file is created with atomicfile.CreateOnce
// (mode 0600, linked into place with no-replace semantics): two processes
// starting at once agree on one key, and a crash never leaves a half-written
// file.
func LoadOrCreateKeyFile(path string) (key string, created bool, err error) {
	key, err = readKeyFile(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}

	key, err = GenerateKey()
	if err != nil {
		return "", false, err
	}
	created, err = atomicfile.CreateOnce(path, []byte(key))
	if err != nil {
		return "", false, fmt.Errorf("fernet: create key file: %w", err)
	}
	if !created {
		// Another process won the race; use its key.
		key, err = readKeyFile(path)
		return key, false, err
	}
	return key, true, nil
}

// readKeyFile reads and checks an existing key file. Errors name the file,
// never its content.
func readKeyFile(path string) (string, error) {
	info, err := os.Stat(path) // follows symlinks, e.g. Kubernetes secret mounts
	if err != nil {
		return "", fmt.Errorf("fernet: key file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("fernet: key file %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o022 != 0 {
		return "", fmt.Errorf("fernet: key file %s has mode %04o; it must not be group- or world-writable", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("fernet: read key file: %w", err)
	}
	key := strings.TrimSpace(string(data))
	if _, err := ParseKey(key); err != nil {
		return "", fmt.Errorf("fernet: key file %s: %w", path, err)
	}
	return key, nil
}
