package tokens

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/taskgate/taskgate/internal/atomicfile"
)

const (
	// generatedSecretSize is the entropy of a generated secret: 512 bits,
	// the output size of SHA-512 and so the key length RFC 2104 recommends
	// for HMAC-SHA512.
	generatedSecretSize = 64
	// minStoredSecretSize is the least entropy accepted from a secret file.
	minStoredSecretSize = 32
)

// LoadOrCreateSecret returns the HS512 secret kept in the file at path,
// creating the file with a new random secret if it does not exist.
//
// Why: a secret generated per process (what Airflow does when jwt_secret is
// unset) makes every other process reject this one's tokens — a classic
// source of 403s in multi-process deployments. A secret persisted once and
// read by every process does not.
//
// The file holds the secret as base64url text without padding, so its
// content can be pasted as [api_auth] jwt_secret for Airflow components;
// the returned bytes are that text (trimmed of surrounding whitespace),
// because Airflow uses the configured string itself as the HMAC key.
// An existing file must not be group- or world-writable (anyone who can
// write it can mint tokens after the next restart) and must decode to at
// least 32 bytes. A new file is created with atomicfile.CreateOnce (mode
// 0600, linked into place with no-replace semantics): two processes starting
// at once agree on one secret, and a crash never leaves a half-written file
// behind.
func LoadOrCreateSecret(path string) (secret []byte, created bool, err error) {
	secret, err = readSecret(path)
	if err == nil {
		return secret, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}

	raw := make([]byte, generatedSecretSize)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, fmt.Errorf("tokens: generate secret: %w", err)
	}
	text := []byte(base64.RawURLEncoding.EncodeToString(raw))

	created, err = atomicfile.CreateOnce(path, text)
	if err != nil {
		return nil, false, fmt.Errorf("tokens: create secret: %w", err)
	}
	if !created {
		// Another process won the race; use its secret.
		secret, err = readSecret(path)
		return secret, false, err
	}
	return text, true, nil
}

func readSecret(path string) ([]byte, error) {
	info, err := os.Stat(path) // follows symlinks, e.g. Kubernetes secret mounts
	if err != nil {
		return nil, fmt.Errorf("tokens: secret file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("tokens: secret file %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o022 != 0 {
		return nil, fmt.Errorf("tokens: secret file %s has mode %04o; it must not be group- or world-writable", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokens: read secret: %w", err)
	}
	text := bytes.TrimSpace(data)
	raw, err := base64.RawURLEncoding.DecodeString(string(bytes.TrimRight(text, "=")))
	if err != nil {
		return nil, fmt.Errorf("tokens: secret file %s is not base64url text: %w", path, err)
	}
	if len(raw) < minStoredSecretSize {
		return nil, fmt.Errorf("tokens: secret file %s holds %d bytes; at least %d are required", path, len(raw), minStoredSecretSize)
	}
	return text, nil
}
