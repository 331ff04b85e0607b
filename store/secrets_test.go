package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/fernet"
	"github.com/taskgate/taskgate/internal/fakeclock"
	"github.com/taskgate/taskgate/workload"
)

// Plaintexts distinctive enough to search the raw file for.
const (
	secretPassword = "pw-7c1e0b9a-PLAINTEXT-PASSWORD"
	secretExtra    = `{"api_token":"x-4d2f-PLAINTEXT-EXTRA"}`
)

func fernetKey(t *testing.T) string {
	t.Helper()
	k, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func multiKey(t *testing.T, keys ...string) *fernet.MultiKey {
	t.Helper()
	m, err := fernet.NewMulti(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// reopen opens the file at path with the given cipher (nil: none), closing
// it when the test ends. Callers close the previous handle first.
func reopen(t *testing.T, path string, c Cipher) *DB {
	t.Helper()
	return openAt(t, path, Options{Now: fakeclock.New(t0).Now, Secrets: c})
}

func secretConnections() []workload.Connection {
	return []workload.Connection{
		{ConnID: "both", ConnType: "postgres", Host: ptr("db.internal"), Login: ptr("app"), Port: ptr(5432),
			Password: ptr(secretPassword), Extra: ptr(secretExtra)},
		{ConnID: "empty_password", ConnType: "http", Password: ptr("")},
		{ConnID: "extra_only", ConnType: "http", Extra: ptr(`{"timeout": 3}`)},
		{ConnID: "no_secret", ConnType: "http", Host: ptr("example.org")},
		{ConnID: "unicode", ConnType: "ftp", Password: ptr("pässwörd ✓")},
	}
}

func putAll(t *testing.T, db *DB, cs []workload.Connection) {
	t.Helper()
	for _, c := range cs {
		if err := db.PutConnection(context.Background(), c); err != nil {
			t.Fatalf("PutConnection(%s): %v", c.ConnID, err)
		}
	}
}

// checkAll reads every connection back, one by one and listed.
func checkAll(t *testing.T, db *DB, want []workload.Connection) {
	t.Helper()
	ctx := context.Background()
	for _, c := range want {
		got, err := db.Connection(ctx, c.ConnID)
		if err != nil {
			t.Fatalf("Connection(%s): %v", c.ConnID, err)
		}
		if diff := cmp.Diff(c, *got); diff != "" {
			t.Errorf("Connection(%s) (-want +got):\n%s", c.ConnID, diff)
		}
	}
	list, err := db.ListConnections(ctx)
	if err != nil {
		t.Fatalf("ListConnections: %v", err)
	}
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("ListConnections (-want +got):\n%s", diff)
	}
}

func rawRecord(t *testing.T, db *DB, id string) string {
	t.Helper()
	var raw string
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		raw = string(tx.Bucket(bucketConnections).Get([]byte(id)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestConnectionSecretsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "taskgate.db")
	key := fernetKey(t)
	db := reopen(t, path, multiKey(t, key))
	want := secretConnections()
	putAll(t, db, want)
	checkAll(t, db, want)

	raw := rawRecord(t, db, "both")
	for _, s := range []string{`"password":null`, `"extra":null`, `"password_enc":"gAAAAA`, `"extra_enc":"gAAAAA`} {
		if !strings.Contains(raw, s) {
			t.Errorf("stored record %s lacks %s", raw, s)
		}
	}
	if raw := rawRecord(t, db, "no_secret"); strings.Contains(raw, "_enc") {
		t.Errorf("a connection without secrets got encrypted fields: %s", raw)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Same key, new process: everything reads back; read-only handles too.
	checkAll(t, reopen(t, path, multiKey(t, key)), want)
}

func TestConnectionSecretsReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "taskgate.db")
	key := fernetKey(t)
	db := reopen(t, path, multiKey(t, key))
	want := secretConnections()
	putAll(t, db, want)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ro := openAt(t, path, Options{ReadOnly: true, Secrets: multiKey(t, key)})
	checkAll(t, ro, want)
	if _, err := ro.RotateSecrets(context.Background()); !errors.Is(err, ErrReadOnly) {
		t.Errorf("RotateSecrets on a read-only handle: %v", err)
	}
}

// TestConnectionSecretsNotInFile searches the raw database file for the
// plaintexts: absent with a cipher, present without one (which shows the
// search would find them).
func TestConnectionSecretsNotInFile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cipher    bool
		wantFound bool
	}{
		{"encrypted", true, false},
		{"no cipher", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "taskgate.db")
			var c Cipher
			if tc.cipher {
				c = multiKey(t, fernetKey(t))
			}
			db := reopen(t, path, c)
			putAll(t, db, secretConnections())
			// Rewrite a few times so old pages exist too.
			putAll(t, db, secretConnections())
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			file, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{secretPassword, "x-4d2f-PLAINTEXT-EXTRA", "pässwörd"} {
				if found := bytes.Contains(file, []byte(s)); found != tc.wantFound {
					t.Errorf("%q in the file: %v, want %v", s, found, tc.wantFound)
				}
			}
		})
	}
}

// TestRotateSecrets: encrypted with A; configured [B, A], rotated; then B
// alone reads everything and A alone reads nothing.
func TestRotateSecrets(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskgate.db")
	a, b := fernetKey(t), fernetKey(t)
	want := secretConnections()

	db := reopen(t, path, multiKey(t, a))
	putAll(t, db, want)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = reopen(t, path, multiKey(t, b, a))
	checkAll(t, db, want) // [B, A] reads A's tokens before any rotation
	n, err := db.RotateSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 { // every connection but no_secret
		t.Errorf("RotateSecrets rewrote %d connections, want 4", n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = reopen(t, path, multiKey(t, b))
	checkAll(t, db, want)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = reopen(t, path, multiKey(t, a))
	if _, err := db.Connection(ctx, "both"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("old key alone after rotation: %v, want ErrDecrypt", err)
	}
}

// TestRotateSecretsRefusesUndecryptable: one connection under a key no
// longer configured stops the rotation before anything is written.
func TestRotateSecretsRefusesUndecryptable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskgate.db")
	a, b := fernetKey(t), fernetKey(t)
	db := reopen(t, path, multiKey(t, a))
	putAll(t, db, secretConnections()[:1])
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, path, multiKey(t, b))
	putAll(t, db, secretConnections()[1:])
	before := rawRecord(t, db, "unicode")
	n, err := db.RotateSecrets(ctx)
	if !errors.Is(err, ErrDecrypt) || n != 0 || !strings.Contains(err.Error(), "connection both password") {
		t.Errorf("RotateSecrets = %d, %v; want 0 and ErrDecrypt naming connection both", n, err)
	}
	if after := rawRecord(t, db, "unicode"); after != before {
		t.Error("a refused rotation rewrote a connection")
	}
}

// TestLegacyPlaintextConnections: records stored before encryption read
// with a cipher configured, and RotateSecrets encrypts them.
func TestLegacyPlaintextConnections(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskgate.db")
	want := secretConnections()
	db := reopen(t, path, nil)
	putAll(t, db, want)
	if raw := rawRecord(t, db, "both"); !strings.Contains(raw, secretPassword) || strings.Contains(raw, "_enc") {
		t.Fatalf("without a cipher the record is not plaintext: %s", raw)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	key := fernetKey(t)
	db = reopen(t, path, multiKey(t, key))
	checkAll(t, db, want)
	n, err := db.RotateSecrets(ctx)
	if err != nil || n != 4 {
		t.Fatalf("RotateSecrets = %d, %v; want 4", n, err)
	}
	if raw := rawRecord(t, db, "both"); strings.Contains(raw, secretPassword) || !strings.Contains(raw, "password_enc") {
		t.Errorf("after rotation the record is not encrypted: %s", raw)
	}
	checkAll(t, db, want)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Now encrypted: a handle without the key cannot read it.
	db = reopen(t, path, nil)
	if _, err := db.Connection(ctx, "both"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("no cipher after migration: %v, want ErrDecrypt", err)
	}
}

// TestMissingKey: an encrypted record read without its key fails with
// ErrDecrypt, naming the connection, never panicking or answering wrong.
func TestMissingKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskgate.db")
	db := reopen(t, path, multiKey(t, fernetKey(t)))
	putAll(t, db, secretConnections())
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cipher Cipher
		want   string
	}{
		{"no key configured", nil, "no fernet key is configured"},
		{"another key", multiKey(t, fernetKey(t)), "still configured?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := reopen(t, path, tc.cipher)
			defer db.Close()
			_, err := db.Connection(ctx, "both")
			if !errors.Is(err, ErrDecrypt) || errors.Is(err, workload.ErrNotFound) {
				t.Fatalf("Connection: %v, want ErrDecrypt", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "store: cannot decrypt connection both password") || !strings.Contains(msg, tc.want) {
				t.Errorf("message %q", msg)
			}
			if strings.Contains(msg, secretPassword) {
				t.Errorf("message %q shows the password", msg)
			}
			if _, err := db.Connection(ctx, "extra_only"); !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "extra_only extra") {
				t.Errorf("Connection(extra_only): %v", err)
			}
			if _, err := db.ListConnections(ctx); !errors.Is(err, ErrDecrypt) {
				t.Errorf("ListConnections: %v, want ErrDecrypt", err)
			}
			// A connection without secrets still reads.
			if c, err := db.Connection(ctx, "no_secret"); err != nil || c.ConnID != "no_secret" {
				t.Errorf("Connection(no_secret) = %v, %v", c, err)
			}
		})
	}
}

// TestRotateSecretsConcurrentWrites: connections written while a rotation
// runs are kept as written, and everything ends up under the new key.
func TestRotateSecretsConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskgate.db")
	a, b := fernetKey(t), fernetKey(t)
	db := reopen(t, path, multiKey(t, a))
	var many []workload.Connection
	for i := range 600 { // more than one rotation batch
		many = append(many, workload.Connection{ConnID: fmt.Sprintf("c%04d", i), ConnType: "x", Password: ptr(fmt.Sprint("pw", i))})
	}
	putAll(t, db, many)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = reopen(t, path, multiKey(t, b, a))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			c := many[i*3]
			c.Password = ptr(fmt.Sprint("changed", i))
			many[i*3] = c
			if err := db.PutConnection(ctx, c); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	n, err := db.RotateSecrets(ctx)
	<-done
	if err != nil || n > len(many) {
		t.Fatalf("RotateSecrets = %d, %v", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	checkAll(t, reopen(t, path, multiKey(t, b)), many)
}

func TestRotateSecretsWithoutCipher(t *testing.T) {
	db, _ := openTest(t)
	if _, err := db.RotateSecrets(context.Background()); err == nil {
		t.Error("RotateSecrets without a cipher succeeded")
	}
}

// TestDamagedSecretRecords: records that are not what the store writes are
// errors, never panics.
func TestDamagedSecretRecords(t *testing.T) {
	ctx := context.Background()
	db := reopen(t, filepath.Join(t.TempDir(), "taskgate.db"), multiKey(t, fernetKey(t)))
	for id, rec := range map[string]string{
		"both_fields":   `{"conn_id":"both_fields","conn_type":"x","password":"p","password_enc":"gAAAAA"}`,
		"both_extras":   `{"conn_id":"both_extras","conn_type":"x","extra":"{}","extra_enc":"gAAAAA"}`,
		"bad_token":     `{"conn_id":"bad_token","conn_type":"x","password_enc":"%%%"}`,
		"enc_not_text":  `{"conn_id":"enc_not_text","conn_type":"x","password_enc":42}`,
		"empty_token":   `{"conn_id":"empty_token","conn_type":"x","extra_enc":""}`,
		"truncated_rec": `{"conn_id":"truncated_rec","password_enc":"gAAA`,
	} {
		if err := db.bolt.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketConnections).Put([]byte(id), []byte(rec))
		}); err != nil {
			t.Fatal(err)
		}
		_, err := db.Connection(ctx, id)
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v, want ErrCorrupt or ErrDecrypt", id, err)
		}
	}
}

// failingCipher fails every call, as a cipher with a broken random source
// would.
type failingCipher struct{}

func (failingCipher) Encrypt([]byte) (string, error) { return "", errors.New("fake: no entropy") }
func (failingCipher) Decrypt(string) ([]byte, error) { return nil, errors.New("fake: no key") }

func TestPutConnectionEncryptFailure(t *testing.T) {
	ctx := context.Background()
	db := reopen(t, filepath.Join(t.TempDir(), "taskgate.db"), failingCipher{})
	err := db.PutConnection(ctx, workload.Connection{ConnID: "c", ConnType: "x", Password: ptr("p")})
	if err == nil || !strings.Contains(err.Error(), "encrypt connection c password") {
		t.Errorf("PutConnection: %v", err)
	}
	if _, err := db.Connection(ctx, "c"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("a failed encryption stored something: %v", err)
	}
	// Without secrets nothing needs the cipher.
	if err := db.PutConnection(ctx, workload.Connection{ConnID: "plain", ConnType: "x"}); err != nil {
		t.Errorf("PutConnection without secrets: %v", err)
	}
}
