package tokens

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/taskgate/taskgate/scopes"
)

// DefaultCacheSize is how many verified tokens a Validator remembers when
// Config.CacheSize is zero. An entry is a few hundred bytes, and a worker
// uses one token for up to a token lifetime, so this covers tens of
// thousands of running tasks in a few megabytes.
const DefaultCacheSize = 65536

// cacheShards spreads entries over independently locked maps so readers on
// different cores rarely meet on one lock.
const cacheShards = 64

// verifiedCache remembers tokens whose signature and claims were verified,
// so the next request with the same token skips the cryptography: an EdDSA
// check costs ~40 µs, a map lookup well under 1 µs (BenchmarkValidate, BenchmarkValidateCached).
//
// An entry is found by a keyed 64-bit hash of the token (maphash, with a
// seed of this process), computed once per lookup, and used only when the
// full token it holds equals the one presented: two tokens whose hashes
// collide merely take each other's place. Validate only accepts the
// canonical spelling of a signed token (strict base64url, three segments),
// so a tampered or re-encoded token is a different token and can never use
// an entry. An entry is used only inside the window the full validation
// accepted — from nbf/iat minus leeway to exp plus leeway — and, in JWKS
// mode, only while the key set it was verified against is still current,
// so dropping a key from the JWKS stops its tokens at once.
type verifiedCache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu      sync.RWMutex
	entries map[uint64]cacheEntry // by the token's hash
}

type cacheEntry struct {
	raw    string // the token, compared in full on every hit
	claims *scopes.Claims
	from   time.Time // first instant the token is accepted
	until  time.Time // first instant it is no longer accepted
	keys   any       // the JWKS key set it was verified with; nil otherwise
}

func newVerifiedCache(size int) *verifiedCache {
	c := &verifiedCache{seed: maphash.MakeSeed(), perShard: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].entries = make(map[uint64]cacheEntry)
	}
	return c
}

// locate hashes raw once: its shard and its key there.
func (c *verifiedCache) locate(raw string) (*cacheShard, uint64) {
	h := maphash.String(c.seed, raw)
	return &c.shards[h%cacheShards], h
}

// get returns the claims of raw if it was verified and is still inside its
// accepted window at now, against the current key set keys.
func (c *verifiedCache) get(raw string, now time.Time, keys any) (*scopes.Claims, bool) {
	s, h := c.locate(raw)
	s.mu.RLock()
	e, ok := s.entries[h]
	s.mu.RUnlock()
	if !ok || e.raw != raw {
		return nil, false
	}
	if now.Before(e.from) || !now.Before(e.until) || e.keys != keys {
		s.mu.Lock()
		if cur, ok := s.entries[h]; ok && cur == e {
			delete(s.entries, h)
		}
		s.mu.Unlock()
		return nil, false
	}
	return e.claims, true
}

// put remembers a verified token (e.raw). A full shard first drops its
// expired entries and, if that frees nothing, one arbitrary entry (Go's map
// order is random): the cache stays bounded under any number of distinct
// tokens.
func (c *verifiedCache) put(e cacheEntry, now time.Time) {
	s, h := c.locate(e.raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[h]; !ok && len(s.entries) >= c.perShard {
		for k, old := range s.entries {
			if !now.Before(old.until) {
				delete(s.entries, k)
			}
		}
		for k := range s.entries {
			if len(s.entries) < c.perShard {
				break
			}
			delete(s.entries, k)
		}
	}
	s.entries[h] = e
}

// len counts the entries (for tests).
func (c *verifiedCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.entries)
		s.mu.RUnlock()
	}
	return n
}
