package tokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// KeyStore keeps the key set document (KeySet.Marshal). The store declares
// nothing about keys; it keeps bytes, and replaces them only if they are
// still what the caller read, so that two replicas rotating at once cannot
// lose a key.
type KeyStore interface {
	// KeySetDocument returns the stored document, nil when none is stored.
	KeySetDocument(ctx context.Context) ([]byte, error)
	// SwapKeySetDocument stores doc if the stored document is still old
	// (nil: none stored), in one transaction, and reports whether it did.
	SwapKeySetDocument(ctx context.Context, old, doc []byte) (swapped bool, err error)
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Store KeyStore
	// Configured is the key the configuration names ([api_auth] jwt_secret,
	// jwt_private_key_path, or the data directory's generated secret): it
	// starts an empty set, and a configured key the set has never seen
	// becomes its active key (a rotation made through the configuration).
	// Nil: an empty set starts with a key generated for Algorithm.
	Configured *StoredKey
	// Algorithm is the algorithm of keys Rotate generates ([api_auth]
	// jwt_algorithm, resolved); empty: the active key's.
	Algorithm string
	// Longest is how long a token signed now may stay valid: the longest
	// lifetime of any token signed with the set, plus the validators'
	// leeway. A replaced key verifies for this long after its replacement.
	Longest time.Duration
	Now     func() time.Time
	// Generate makes a key for an algorithm; default GenerateKey.
	Generate func(alg string) (StoredKey, error)
}

// Manager keeps the key ring equal to the stored key set: it loads and
// starts the set, rotates and retires keys in the store, and reloads a set
// another process changed (Refresh, Run).
type Manager struct {
	cfg  ManagerConfig
	ring *KeyRing

	mu  sync.Mutex // serializes changes made by this process
	doc []byte     // the stored document the ring was built from
}

// maxSwapAttempts bounds how often a change is retried when other
// processes keep changing the set between its read and its write.
const maxSwapAttempts = 5

// OpenKeys loads the stored key set, starting or extending it with the
// configured key (see ManagerConfig.Configured), and builds the ring.
func OpenKeys(ctx context.Context, cfg ManagerConfig) (*Manager, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("tokens: key manager without a store")
	case cfg.Longest <= 0:
		return nil, errors.New("tokens: key manager without the longest token lifetime")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Generate == nil {
		cfg.Generate = GenerateKey
	}
	m := &Manager{cfg: cfg}
	err := m.change(ctx, func(s KeySet) (KeySet, bool, error) {
		switch {
		case cfg.Configured != nil:
			return s.Adopt(*cfg.Configured, cfg.Now(), cfg.Longest)
		case len(s.Keys) == 0:
			if cfg.Algorithm == "" {
				return s, false, errors.New("tokens: no key configured and no algorithm to generate one for")
			}
			k, err := cfg.Generate(cfg.Algorithm)
			if err != nil {
				return s, false, err
			}
			k.Created = cfg.Now().UTC()
			return KeySet{Keys: []StoredKey{k}, Retired: s.Retired}, true, nil
		}
		return s, false, nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Ring is the ring signers and validators share.
func (m *Manager) Ring() *KeyRing { return m.ring }

// List describes the keys, active first.
func (m *Manager) List() []KeyInfo { return m.ring.KeySet().Info() }

// Rotate generates a key and makes it the active key; the previous one
// keeps verifying until its RetireAfter. It returns the new set's keys.
func (m *Manager) Rotate(ctx context.Context) ([]KeyInfo, error) {
	err := m.change(ctx, func(s KeySet) (KeySet, bool, error) {
		alg := m.cfg.Algorithm
		if alg == "" && len(s.Keys) > 0 {
			alg = s.Keys[0].Algorithm
		}
		k, err := m.cfg.Generate(alg)
		if err != nil {
			return s, false, err
		}
		out, err := s.Rotate(k, m.cfg.Now(), m.cfg.Longest)
		return out, err == nil, err
	})
	if err != nil {
		return nil, err
	}
	return m.List(), nil
}

// Retire drops the key kid (see KeySet.Retire) and returns the keys left.
func (m *Manager) Retire(ctx context.Context, kid string, force bool) ([]KeyInfo, error) {
	err := m.change(ctx, func(s KeySet) (KeySet, bool, error) {
		out, err := s.Retire(kid, m.cfg.Now(), force)
		return out, err == nil, err
	})
	if err != nil {
		return nil, err
	}
	return m.List(), nil
}

// Refresh reloads the stored set when another process changed it.
func (m *Manager) Refresh(ctx context.Context) error {
	doc, err := m.cfg.Store.KeySetDocument(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if bytes.Equal(doc, m.doc) {
		return nil
	}
	return m.install(doc)
}

// Run refreshes the set every interval until ctx is done; a failed refresh
// is reported to onError and retried on the next tick.
func (m *Manager) Run(ctx context.Context, interval time.Duration, onError func(error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.Refresh(ctx); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}

// change applies fn to the stored set and stores the result when fn
// reports a change, retrying when another process changed the set in
// between; the ring then holds what is stored.
func (m *Manager) change(ctx context.Context, fn func(KeySet) (KeySet, bool, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for range maxSwapAttempts {
		doc, err := m.cfg.Store.KeySetDocument(ctx)
		if err != nil {
			return err
		}
		var cur KeySet
		if doc != nil {
			if cur, err = ParseKeySet(doc); err != nil {
				return err
			}
		}
		next, changed, err := fn(cur)
		if err != nil {
			return err
		}
		if !changed {
			return m.install(doc)
		}
		enc, err := next.Marshal()
		if err != nil {
			return err
		}
		swapped, err := m.cfg.Store.SwapKeySetDocument(ctx, doc, enc)
		if err != nil {
			return err
		}
		if swapped {
			return m.install(enc)
		}
	}
	return fmt.Errorf("%w %d times; try again", ErrKeySetChanged, maxSwapAttempts)
}

// install makes doc the ring's set; m.mu is held.
func (m *Manager) install(doc []byte) error {
	if doc == nil {
		return errors.New("tokens: no key set is stored")
	}
	s, err := ParseKeySet(doc)
	if err != nil {
		return err
	}
	if m.ring == nil {
		if m.ring, err = NewKeyRing(s); err != nil {
			return err
		}
	} else if err := m.ring.Set(s); err != nil {
		return err
	}
	m.doc = doc
	return nil
}
