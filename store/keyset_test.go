package store

import (
	"context"
	"testing"
)

// TestKeySetDocumentSwap: the key set document is replaced only when it is
// still what the caller read, the first one too, and survives a reopen.
func TestKeySetDocumentSwap(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	if doc, err := db.KeySetDocument(ctx); err != nil || doc != nil {
		t.Fatalf("new file: %q, %v", doc, err)
	}
	first, second := []byte(`{"keys":[{"kid":"a"}]}`), []byte(`{"keys":[{"kid":"b"}]}`)
	for _, tc := range []struct {
		name     string
		old, doc []byte
		want     bool
	}{
		{"the first document", nil, first, true},
		{"a second first document", nil, second, false},
		{"from a stale document", []byte(`{}`), second, false},
		{"from the current document", first, second, true},
	} {
		if ok, err := db.SwapKeySetDocument(ctx, tc.old, tc.doc); err != nil || ok != tc.want {
			t.Fatalf("%s: swapped %v (%v), want %v", tc.name, ok, err, tc.want)
		}
	}
	db.Close()
	db = openAt(t, path, Options{})
	if doc, err := db.KeySetDocument(ctx); err != nil || string(doc) != string(second) {
		t.Fatalf("after reopening: %q, %v", doc, err)
	}
}
