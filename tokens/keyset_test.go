package tokens

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskgate/taskgate/scopes"
)

var keyT0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func mustGenerate(t *testing.T, alg string) StoredKey {
	t.Helper()
	k, err := GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeySetRules(t *testing.T) {
	const longest = 25 * time.Hour
	a, b, c := mustGenerate(t, algEdDSA), mustGenerate(t, algEdDSA), mustGenerate(t, algEdDSA)
	start, _, err := KeySet{}.Adopt(a, keyT0, longest)
	if err != nil || start.Active() != a.KID || len(start.Keys) != 1 {
		t.Fatalf("adopting into an empty set: %+v, %v", start, err)
	}
	rotated, err := start.Rotate(b, keyT0.Add(time.Hour), longest)
	if err != nil {
		t.Fatal(err)
	}
	old := rotated.Keys[1]
	wantAfter := keyT0.Add(time.Hour + longest)
	if rotated.Active() != b.KID || old.KID != a.KID || old.Replaced == nil || !old.RetireAfter.Equal(wantAfter) {
		t.Fatalf("rotation: %+v", rotated.Info())
	}
	if rotated.Keys[0].Replaced != nil || rotated.Keys[0].RetireAfter != nil {
		t.Fatalf("the new active key carries a retirement: %+v", rotated.Keys[0])
	}

	for _, tc := range []struct {
		name  string
		kid   string
		at    time.Time
		force bool
		want  error
	}{
		{"the active key", b.KID, wantAfter.Add(time.Hour), true, ErrKeyActive},
		{"an unknown kid", "nope", wantAfter, false, ErrKeyNotFound},
		{"before its tokens expired", a.KID, wantAfter.Add(-time.Second), false, ErrKeyInUse},
		{"forced before its tokens expired", a.KID, wantAfter.Add(-time.Second), true, nil},
		{"once its tokens expired", a.KID, wantAfter, false, nil},
	} {
		t.Run("retire "+tc.name, func(t *testing.T) {
			out, err := rotated.Retire(tc.kid, tc.at, tc.force)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err != nil {
				if len(out.Keys) != len(rotated.Keys) {
					t.Fatalf("a refused retirement changed the set")
				}
				return
			}
			if len(out.Keys) != 1 || out.Active() != b.KID || len(out.Retired) != 1 || out.Retired[0] != a.KID {
				t.Fatalf("after retiring: %+v", out)
			}
			// A retired configured key is not taken back on a restart.
			again, adopted, err := out.Adopt(a, tc.at, longest)
			if err != nil || adopted || again.Active() != b.KID {
				t.Fatalf("re-adopting a retired key: adopted %v, active %s, %v", adopted, again.Active(), err)
			}
		})
	}

	// A configured key the set has not seen is a rotation through the
	// configuration; one it has is nothing.
	if out, adopted, _ := rotated.Adopt(c, keyT0.Add(2*time.Hour), longest); !adopted || out.Active() != c.KID || len(out.Keys) != 3 {
		t.Fatalf("adopting a new configured key: %v %+v", adopted, out.Info())
	}
	if _, adopted, _ := rotated.Adopt(a, keyT0.Add(2*time.Hour), longest); adopted {
		t.Fatal("adopting a key the set holds changed it")
	}
	if _, err := rotated.Rotate(a, keyT0, longest); err == nil {
		t.Fatal("rotating to a kid already in the set was accepted")
	}
}

func TestKeySetDocumentRoundTrip(t *testing.T) {
	set := KeySet{Keys: []StoredKey{mustGenerate(t, algHS512), mustGenerate(t, algEdDSA)}, Retired: []string{"x"}}
	doc, err := set.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseKeySet(doc)
	if err != nil || len(got.Keys) != 2 || got.Keys[1].PrivateKey != set.Keys[1].PrivateKey || string(got.Keys[0].Secret) != string(set.Keys[0].Secret) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for name, doc := range map[string]string{
		"not JSON":         `{`,
		"no kid":           `{"keys":[{"alg":"HS512","secret":"MDEyMzQ1Njc4OWFiY2RlZg=="}]}`,
		"no material":      `{"keys":[{"kid":"a","alg":"HS512"}]}`,
		"short secret":     `{"keys":[{"kid":"a","alg":"HS512","secret":"c2hvcnQ="}]}`,
		"bad private key":  `{"keys":[{"kid":"a","alg":"EdDSA","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}]}`,
		"secret and a key": `{"keys":[{"kid":"a","alg":"HS512","secret":"MDEyMzQ1Njc4OWFiY2RlZg==","private_key":"x"}]}`,
	} {
		if _, err := ParseKeySet([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// memKeyStore is a KeyStore in memory whose swap can be made to lose a race.
type memKeyStore struct {
	mu        sync.Mutex
	doc       []byte
	interfere func() // runs before a swap compares, once
}

func (s *memKeyStore) KeySetDocument(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doc, nil
}

func (s *memKeyStore) SwapKeySetDocument(_ context.Context, old, doc []byte) (bool, error) {
	if f := s.interfere; f != nil {
		s.interfere = nil
		f()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if string(s.doc) != string(old) || (s.doc == nil) != (old == nil) {
		return false, nil
	}
	s.doc = doc
	return true, nil
}

func newTestManager(t *testing.T, st KeyStore, now func() time.Time, configured *StoredKey) *Manager {
	t.Helper()
	m, err := OpenKeys(context.Background(), ManagerConfig{
		Store: st, Configured: configured, Algorithm: algEdDSA, Longest: time.Hour, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRotationKeepsOldTokensValid: a token signed before a rotation still
// verifies, a token signed after carries the new kid, a second replica on
// the same store follows the rotation on Refresh, and once the old key is
// retired its tokens stop verifying, cached or not.
func TestRotationKeepsOldTokensValid(t *testing.T) {
	ctx := context.Background()
	now := keyT0
	clock := func() time.Time { return now }
	st := &memKeyStore{}
	a := newTestManager(t, st, clock, nil)
	b := newTestManager(t, st, clock, nil) // another replica
	if a.Ring().KeySet().Active() != b.Ring().KeySet().Active() {
		t.Fatal("two replicas on one store started different keys")
	}
	cfg := Config{Audiences: []string{"urn:airflow.apache.org:task"}, Now: clock, Ring: a.Ring()}
	signer, err := NewSigner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgB := cfg
	cfgB.Ring = b.Ring()
	validatorB, err := NewValidator(cfgB)
	if err != nil {
		t.Fatal(err)
	}
	base := &scopes.Claims{Subject: "0190a1a2-0000-7000-8000-000000000001", Scope: "execution"}
	before, _, err := signer.Sign(base, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := validatorB.Validate(ctx, before); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	oldKID := a.Ring().KeySet().Active()

	keys, err := a.Rotate(ctx)
	if err != nil || len(keys) != 2 || keys[1].KID != oldKID || !keys[0].Active {
		t.Fatalf("rotate: %+v, %v", keys, err)
	}
	after, _, err := signer.Sign(base, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if kid := headerKID(t, after); kid != keys[0].KID {
		t.Fatalf("a token signed after the rotation has kid %q, want %q", kid, keys[0].KID)
	}
	if _, err := validatorB.Validate(ctx, after); err == nil {
		t.Fatal("replica b verified the new key's token before it refreshed")
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"before": before, "after": after} {
		if _, err := validatorB.Validate(ctx, tok); err != nil {
			t.Fatalf("%s rotation, after b's refresh: %v", name, err)
		}
	}
	if !strings.Contains(string(b.Ring().JWKS()), oldKID) || !strings.Contains(string(b.Ring().JWKS()), keys[0].KID) {
		t.Fatalf("JWKS lacks a key: %s", b.Ring().JWKS())
	}

	if _, err := a.Retire(ctx, oldKID, false); !errors.Is(err, ErrKeyInUse) {
		t.Fatalf("retiring a key whose tokens live: %v", err)
	}
	now = now.Add(time.Hour)
	if _, err := a.Retire(ctx, oldKID, false); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	now = keyT0.Add(time.Minute) // inside the old token's life again
	if _, err := validatorB.Validate(ctx, before); err == nil {
		t.Fatal("a retired key's token still verifies (from the cache)")
	}
}

// TestKeyChangesRetryConcurrentWriters: a rotation that loses the race to
// another replica's change is applied on top of it, not over it.
func TestKeyChangesRetryConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	clock := func() time.Time { return keyT0 }
	st := &memKeyStore{}
	a := newTestManager(t, st, clock, nil)
	b := newTestManager(t, st, clock, nil)
	st.interfere = func() {
		if _, err := b.Rotate(ctx); err != nil {
			t.Error(err)
		}
	}
	keys, err := a.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("after two concurrent rotations the set has %d keys, want 3: %+v", len(keys), keys)
	}
}

func TestManagerAdoptsTheConfiguredKey(t *testing.T) {
	ctx := context.Background()
	clock := func() time.Time { return keyT0 }
	st := &memKeyStore{}
	cfg := Config{Secret: []byte("0123456789abcdef0123"), Audiences: []string{"a"}}
	k, err := ConfiguredKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := newTestManager(t, st, clock, &k)
	if m.Ring().Algorithm() != algHS512 || m.Ring().KeySet().Active() != k.KID {
		t.Fatalf("configured secret not adopted: %+v", m.List())
	}
	if string(m.Ring().JWKS()) != `{"keys":[]}` {
		t.Fatalf("an HS512 set published %s", m.Ring().JWKS())
	}
	if _, err := m.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Ring().Algorithm() != algEdDSA {
		t.Fatalf("rotation generated %s, want the configured algorithm", m.Ring().Algorithm())
	}
	// Restarting with the same configuration keeps the rotation.
	again := newTestManager(t, st, clock, &k)
	if again.Ring().KeySet().Active() == k.KID || len(again.List()) != 2 {
		t.Fatalf("a restart undid the rotation: %+v", again.List())
	}
}

func headerKID(t *testing.T, tok string) string {
	t.Helper()
	kid, _ := decodeSegment(t, tok, 0)["kid"].(string)
	return kid
}
