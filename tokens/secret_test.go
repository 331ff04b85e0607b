package tokens

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateSecretCreatesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jwt_secret")
	secret, created, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("created = false for a new file")
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode = %04o, want 0600", perm)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, secret) {
		t.Errorf("returned %q, file holds %q", secret, onDisk)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(string(secret))
	if err != nil || len(raw) != 64 {
		t.Errorf("secret %q: %d bytes, %v; want 64 bytes of base64url", secret, len(raw), err)
	}

	again, created, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if created || !bytes.Equal(again, secret) {
		t.Errorf("second call: created=%v, same=%v", created, bytes.Equal(again, secret))
	}
	// No temporary files are left behind.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the secret", len(entries))
	}
	// The secret works as an HS512 key.
	if _, err := NewSigner(Config{Secret: secret, Audiences: []string{testAudience}}); err != nil {
		t.Errorf("NewSigner with the secret: %v", err)
	}
}

func TestLoadOrCreateSecretConcurrentStartsAgree(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jwt_secret")
	const n = 8
	var wg sync.WaitGroup
	results := make([][]byte, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], _, errs[i] = LoadOrCreateSecret(path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(results[i], results[0]) {
			t.Fatalf("process %d got a different secret", i)
		}
	}
}

func TestLoadOrCreateSecretRefuses(t *testing.T) {
	good := []byte(base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	tests := []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    string
	}{
		{name: "world-writable", content: good, mode: 0o666, want: "has mode 0666; it must not be group- or world-writable"},
		{name: "group-writable", content: good, mode: 0o620, want: "has mode 0620"},
		{name: "too short", content: []byte(base64.RawURLEncoding.EncodeToString(make([]byte, 31))), mode: 0o600, want: "holds 31 bytes; at least 32 are required"},
		{name: "empty", content: nil, mode: 0o600, want: "holds 0 bytes"},
		{name: "not base64url", content: []byte("not base64!!"), mode: 0o600, want: "is not base64url text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "jwt_secret")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // WriteFile's mode is subject to umask
				t.Fatal(err)
			}
			_, _, err := LoadOrCreateSecret(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "tokens: ") {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, tc.content) {
				t.Error("a refused file was modified")
			}
		})
	}
}

func TestLoadOrCreateSecretAccepts(t *testing.T) {
	raw := bytes.Repeat([]byte{0xfb}, 48)
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
	}{
		{name: "read-only for others", content: base64.RawURLEncoding.EncodeToString(raw), mode: 0o644, want: base64.RawURLEncoding.EncodeToString(raw)},
		{name: "trailing newline", content: base64.RawURLEncoding.EncodeToString(raw) + "\n", mode: 0o400, want: base64.RawURLEncoding.EncodeToString(raw)},
		{name: "padded", content: base64.URLEncoding.EncodeToString(raw[:32]), mode: 0o600, want: base64.URLEncoding.EncodeToString(raw[:32])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "jwt_secret")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			got, created, err := LoadOrCreateSecret(path)
			if err != nil {
				t.Fatal(err)
			}
			if created || string(got) != tc.want {
				t.Errorf("got %q created=%v, want %q", got, created, tc.want)
			}
		})
	}
}

func TestLoadOrCreateSecretMissingDirectory(t *testing.T) {
	_, _, err := LoadOrCreateSecret(filepath.Join(t.TempDir(), "no", "such", "dir", "secret"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "tokens: ") {
		t.Fatalf("error = %v", err)
	}
}

func TestLoadOrCreateSecretSymlink(t *testing.T) {
	// Kubernetes mounts secrets as symlinks; they are followed.
	dir := t.TempDir()
	target := filepath.Join(dir, "..data")
	first, _, err := LoadOrCreateSecret(target)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "jwt_secret")
	if err := os.Symlink(target, link); err != nil {
		t.Skip("symlinks unsupported:", err)
	}
	got, created, err := LoadOrCreateSecret(link)
	if err != nil || created || !bytes.Equal(got, first) {
		t.Fatalf("via symlink: %q created=%v err=%v", got, created, err)
	}
}
