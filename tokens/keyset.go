package tokens

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A key set holds every key taskgate signs or verifies its own tokens with:
// one active key, which signs, and any number of keys that only verify,
// each named by a kid. Rotation adds a new active key and keeps the old one
// verifying until every token it signed has expired (its RetireAfter); a
// retired key is dropped. This is what lets the signing key change while
// tasks run: a token signed before the rotation keeps working, and its
// renewal comes back signed by the new key.
//
// The set is a document kept in the store (KeyStore), so that every replica
// on one database signs with the same key and follows a rotation made by
// another (see Manager). KeySet's methods are the rules; they are pure.

// StoredKey is one key of a KeySet as it is kept.
type StoredKey struct {
	KID       string `json:"kid"`
	Algorithm string `json:"alg"`
	// Secret is an HS512 key: the bytes themselves (Airflow's jwt_secret
	// text). PrivateKey is an RSA or Ed25519 key as PKCS #8 PEM. Exactly
	// one is set.
	Secret     []byte `json:"secret,omitempty"`
	PrivateKey string `json:"private_key,omitempty"`
	// Created is when the key entered the set.
	Created time.Time `json:"created"`
	// Replaced is when another key became the signing key; nil for the
	// active key. RetireAfter is then when the last token this key signed
	// expires (Replaced + the longest token lifetime + leeway): from then
	// on nothing valid depends on it and it may be retired.
	Replaced    *time.Time `json:"replaced,omitempty"`
	RetireAfter *time.Time `json:"retire_after,omitempty"`
}

// KeySet is the whole set: Keys[0] is the active key.
type KeySet struct {
	Keys []StoredKey `json:"keys"`
	// Retired are the kids of keys dropped from the set, so that a key
	// still named in the configuration is not taken back in on a restart.
	Retired []string `json:"retired,omitempty"`
}

// KeyInfo describes a key for listing; it holds no key material.
type KeyInfo struct {
	KID         string     `json:"kid"`
	Algorithm   string     `json:"alg"`
	Active      bool       `json:"active"`
	Created     time.Time  `json:"created"`
	Replaced    *time.Time `json:"replaced,omitempty"`
	RetireAfter *time.Time `json:"retire_after,omitempty"`
}

// Errors of the key-set rules, matched with errors.Is.
var (
	// ErrKeyNotFound: no key with that kid in the set.
	ErrKeyNotFound = errors.New("tokens: no such key")
	// ErrKeyActive: the active key cannot be retired; rotate first.
	ErrKeyActive = errors.New("tokens: the active key cannot be retired; rotate first")
	// ErrKeyInUse: tokens signed by the key may still be valid.
	ErrKeyInUse = errors.New("tokens: the key may still verify live tokens")
	// ErrKeySetChanged: other processes kept changing the stored set
	// while this one tried to.
	ErrKeySetChanged = errors.New("tokens: the key set was changed concurrently")
)

// Info lists the set's keys, active first.
func (s KeySet) Info() []KeyInfo {
	out := make([]KeyInfo, len(s.Keys))
	for i, k := range s.Keys {
		out[i] = KeyInfo{KID: k.KID, Algorithm: k.Algorithm, Active: i == 0, Created: k.Created,
			Replaced: k.Replaced, RetireAfter: k.RetireAfter}
	}
	return out
}

// Active returns the active key's kid, empty for an empty set.
func (s KeySet) Active() string {
	if len(s.Keys) == 0 {
		return ""
	}
	return s.Keys[0].KID
}

func (s KeySet) index(kid string) int {
	return slices.IndexFunc(s.Keys, func(k StoredKey) bool { return k.KID == kid })
}

// Rotate returns the set with k as its active key. The key active until now
// keeps verifying until every token it may have signed has expired: now +
// longest (the longest lifetime of any token signed with the set, leeway
// included).
func (s KeySet) Rotate(k StoredKey, now time.Time, longest time.Duration) (KeySet, error) {
	if s.index(k.KID) >= 0 || slices.Contains(s.Retired, k.KID) {
		return s, fmt.Errorf("tokens: kid %q is already used", k.KID)
	}
	out := KeySet{Keys: make([]StoredKey, 0, len(s.Keys)+1), Retired: slices.Clone(s.Retired)}
	k.Created, k.Replaced, k.RetireAfter = now.UTC(), nil, nil
	out.Keys = append(out.Keys, k)
	for i, old := range s.Keys {
		if i == 0 {
			replaced, after := now.UTC(), now.Add(longest).UTC()
			old.Replaced, old.RetireAfter = &replaced, &after
		}
		out.Keys = append(out.Keys, old)
	}
	return out, nil
}

// Retire returns the set without the key kid. The active key is never
// retired; a key whose RetireAfter is still ahead is retired only with
// force (the tokens it signed then stop working).
func (s KeySet) Retire(kid string, now time.Time, force bool) (KeySet, error) {
	i := s.index(kid)
	switch {
	case i < 0:
		return s, fmt.Errorf("%w: %q", ErrKeyNotFound, kid)
	case i == 0:
		return s, ErrKeyActive
	case !force && s.Keys[i].RetireAfter != nil && now.Before(*s.Keys[i].RetireAfter):
		return s, fmt.Errorf("%w until %s; retire it then, or force it", ErrKeyInUse,
			s.Keys[i].RetireAfter.UTC().Format(time.RFC3339))
	}
	out := KeySet{Keys: slices.Delete(slices.Clone(s.Keys), i, i+1), Retired: append(slices.Clone(s.Retired), kid)}
	return out, nil
}

// Adopt takes the configured key k (jwt_secret or jwt_private_key_path)
// into the set: an empty set starts with it; a key the set already has, or
// retired, changes nothing; a new one is a rotation made through the
// configuration and becomes the active key. adopted reports a change.
func (s KeySet) Adopt(k StoredKey, now time.Time, longest time.Duration) (out KeySet, adopted bool, err error) {
	switch {
	case s.index(k.KID) >= 0 || slices.Contains(s.Retired, k.KID):
		return s, false, nil
	case len(s.Keys) == 0:
		k.Created = now.UTC()
		return KeySet{Keys: []StoredKey{k}, Retired: slices.Clone(s.Retired)}, true, nil
	}
	out, err = s.Rotate(k, now, longest)
	return out, err == nil, err
}

// Marshal encodes the set as it is stored.
func (s KeySet) Marshal() ([]byte, error) { return json.Marshal(s) }

// ParseKeySet decodes a stored set and checks every key in it.
func ParseKeySet(doc []byte) (KeySet, error) {
	var s KeySet
	if err := json.Unmarshal(doc, &s); err != nil {
		return KeySet{}, fmt.Errorf("tokens: decode key set: %w", err)
	}
	for _, k := range s.Keys {
		if _, err := k.material(); err != nil {
			return KeySet{}, err
		}
	}
	return s, nil
}

// keyMaterial is a StoredKey decoded: what signs and what verifies.
type keyMaterial struct {
	kind   keyKind
	sign   any // []byte, *rsa.PrivateKey or ed25519.PrivateKey
	verify any // []byte, *rsa.PublicKey or ed25519.PublicKey
}

func (k StoredKey) material() (keyMaterial, error) {
	switch {
	case k.KID == "":
		return keyMaterial{}, errors.New("tokens: key set: a key without kid")
	case len(k.Secret) > 0 && k.PrivateKey != "", len(k.Secret) == 0 && k.PrivateKey == "":
		return keyMaterial{}, fmt.Errorf("tokens: key set: key %q needs exactly one of a secret and a private key", k.KID)
	case len(k.Secret) > 0:
		if len(k.Secret) < minSecretSize {
			return keyMaterial{}, fmt.Errorf("tokens: key set: key %q: secret shorter than %d bytes", k.KID, minSecretSize)
		}
		return keyMaterial{kind: kindSecret, sign: k.Secret, verify: k.Secret}, nil
	}
	priv, kind, err := parsePrivateKeyPEM([]byte(k.PrivateKey), "key "+k.KID)
	if err != nil {
		return keyMaterial{}, err
	}
	return keyMaterial{kind: kind, sign: priv, verify: priv.Public()}, nil
}

// GenerateKey makes a new key for alg: 32 random bytes (as base64url text,
// like a generated jwt_secret) for HS512, an RSA-3072 key for RS256 and
// RS512, an Ed25519 key for EdDSA. The kid is the public key's RFC 7638
// thumbprint, or for a secret a random name.
func GenerateKey(alg string) (StoredKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case algHS512:
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return StoredKey{}, err
		}
		name := make([]byte, 12)
		if _, err := rand.Read(name); err != nil {
			return StoredKey{}, err
		}
		return StoredKey{KID: "hs-" + base64.RawURLEncoding.EncodeToString(name), Algorithm: alg,
			Secret: []byte(base64.RawURLEncoding.EncodeToString(raw))}, nil
	case algRS256, algRS512:
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	case algEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return StoredKey{}, fmt.Errorf("tokens: cannot generate a key for algorithm %q", alg)
	}
	if err != nil {
		return StoredKey{}, fmt.Errorf("tokens: generate %s key: %w", alg, err)
	}
	return privateStoredKey(priv, alg, "")
}

// privateStoredKey keeps priv as PKCS #8 PEM, named kid or by its thumbprint.
func privateStoredKey(priv crypto.Signer, alg, kid string) (StoredKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return StoredKey{}, fmt.Errorf("tokens: encode private key: %w", err)
	}
	if kid == "" {
		if kid, err = thumbprint(priv.Public()); err != nil {
			return StoredKey{}, err
		}
	}
	return StoredKey{KID: kid, Algorithm: alg,
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))}, nil
}

// ConfiguredKey is the key the configuration names (cfg.Secret or
// cfg.PrivateKeyPath), as a key-set entry. A secret's kid is "cfg-" and its
// Fingerprint, so that the same configured secret is recognised on every
// start and every replica; a private key's kid is cfg.KID or the public
// key's thumbprint, as Airflow names it.
func ConfiguredKey(cfg Config) (StoredKey, error) {
	if err := cfg.checkCommon(); err != nil {
		return StoredKey{}, err
	}
	switch {
	case cfg.PrivateKeyPath != "":
		priv, kind, err := loadPrivateKey(cfg.PrivateKeyPath)
		if err != nil {
			return StoredKey{}, err
		}
		alg, err := resolveAlgorithm(cfg.Algorithm, kind)
		if err != nil {
			return StoredKey{}, err
		}
		return privateStoredKey(priv, alg, cfg.KID)
	case len(cfg.Secret) > 0:
		alg, err := resolveAlgorithm(cfg.Algorithm, kindSecret)
		if err != nil {
			return StoredKey{}, err
		}
		return StoredKey{KID: "cfg-" + Fingerprint(string(cfg.Secret)), Algorithm: alg, Secret: slices.Clone(cfg.Secret)}, nil
	}
	return StoredKey{}, errors.New("tokens: no signing key: set jwt_secret or jwt_private_key_path")
}
