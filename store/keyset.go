package store

import (
	"bytes"
	"context"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// keyKeySet is the signing key set's document (tokens.KeySet) in the meta
// bucket. The data directory already holds the generated jwt_secret in
// clear; the key set lives beside it, in the same 0600 file's company.
var keyKeySet = []byte("key_set")

// KeySetDocument returns the stored key set document, nil when none is.
func (db *DB) KeySetDocument(ctx context.Context) ([]byte, error) {
	var doc []byte
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, bucketMeta)
		if err != nil {
			return err
		}
		doc = slices.Clone(b.Get(keyKeySet))
		return nil
	})
	return doc, err
}

// SwapKeySetDocument stores doc when the stored document is still old (nil:
// none) and reports whether it did.
func (db *DB) SwapKeySetDocument(ctx context.Context, old, doc []byte) (bool, error) {
	swapped := false
	err := db.write(ctx, func(tx *bolt.Tx) error {
		swapped = false
		b, err := bucket(tx, bucketMeta)
		if err != nil {
			return err
		}
		cur := b.Get(keyKeySet)
		if (cur == nil) != (old == nil) || !bytes.Equal(cur, old) {
			return nil
		}
		swapped = true
		return put(b, keyKeySet, slices.Clone(doc))
	})
	return swapped, err
}
