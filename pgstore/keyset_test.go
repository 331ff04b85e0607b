package pgstore

import (
	"context"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/fernet"
)

// TestKeySetDocumentSwap: the key set document is replaced only when it is
// still what the caller read, the first one too, across replicas; with a
// fernet_key it is stored encrypted and read back in clear, and rotate-key
// re-encrypts it.
func TestKeySetDocumentSwap(t *testing.T) {
	ctx := context.Background()
	key1, key2 := fernetKey(t), fernetKey(t)
	a, u := openData(t, multiKey(t, key1))
	b := openOn(t, u, multiKey(t, key1))

	if doc, err := a.KeySetDocument(ctx); err != nil || doc != nil {
		t.Fatalf("empty database: %q, %v", doc, err)
	}
	first := []byte(`{"keys":[{"kid":"a"}]}`)
	if ok, err := a.SwapKeySetDocument(ctx, nil, first); err != nil || !ok {
		t.Fatalf("first swap: %v %v", ok, err)
	}
	if ok, err := b.SwapKeySetDocument(ctx, nil, []byte(`{"keys":[{"kid":"b"}]}`)); err != nil || ok {
		t.Fatalf("a second first swap succeeded: %v %v", ok, err)
	}
	if ok, err := b.SwapKeySetDocument(ctx, []byte(`{"keys":[]}`), []byte(`{}`)); err != nil || ok {
		t.Fatalf("a swap from a stale document succeeded: %v %v", ok, err)
	}
	second := []byte(`{"keys":[{"kid":"b"},{"kid":"a"}]}`)
	if ok, err := b.SwapKeySetDocument(ctx, first, second); err != nil || !ok {
		t.Fatalf("swap from the current document: %v %v", ok, err)
	}
	if doc, err := a.KeySetDocument(ctx); err != nil || string(doc) != string(second) {
		t.Fatalf("read back %q, %v", doc, err)
	}
	var stored string
	var encrypted bool
	queryRow(t, u, `SELECT document, is_encrypted FROM taskgate.key_set`, nil, &stored, &encrypted)
	if !encrypted || strings.Contains(stored, "kid") {
		t.Fatalf("stored in clear with a fernet_key: %v %q", encrypted, stored)
	}

	rotating := openOn(t, u, multiKey(t, key2, key1))
	if _, err := rotating.RotateSecrets(ctx); err != nil {
		t.Fatal(err)
	}
	onlyNew := openOn(t, u, multiKey(t, key2))
	if doc, err := onlyNew.KeySetDocument(ctx); err != nil || string(doc) != string(second) {
		t.Fatalf("after rotate-key, the new fernet key reads %q, %v", doc, err)
	}
}

func fernetKey(t *testing.T) string {
	t.Helper()
	k, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
