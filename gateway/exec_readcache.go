package gateway

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/taskgate/taskgate/metrics"

	"github.com/taskgate/taskgate/workload"
)

// DefaultReadCacheSize is how many variable bodies, and as many connection
// bodies, the gateway keeps when Config.ReadCacheSize is zero. Tasks read the
// same few variables and connections over and over; a body is a few hundred
// bytes, so this costs about a megabyte per kind.
const DefaultReadCacheSize = 4096

const (
	// readCacheBytes bounds the bodies and keys of one kind held at once,
	// whatever their number.
	readCacheBytes = 16 << 20
	// maxCachedBody is the largest body kept: a huge variable is read
	// from the store each time rather than crowding out every other entry.
	maxCachedBody = 64 << 10
	// readCacheShards spreads entries over independently locked maps.
	readCacheShards = 16
	// versionStripes is how many write counters a cache keeps. Keys share
	// them by hash, so memory stays fixed however many keys are written;
	// a write to one key only costs the others of its stripe a miss.
	versionStripes = 4096
)

// bodyCache keeps the encoded 200 bodies of GET /variables/{key} or GET
// /connections/{id}, so that a repeated read skips the store's transaction,
// the record's decoding and decryption, and the JSON encoding.
//
// Coherence rests on versions rather than on deleting entries, because a
// delete alone races with a reader that read the store before a write and
// files its body after it. Every write of the kind goes through
// cachedStore, which calls invalidate once the store returned (committed or
// not) and before the handler answers. A reader notes the key's version
// before it reads the store and files the body under that version; an entry
// is served only while its version is current. A body read before a write
// committed therefore carries a version that the write made stale before it
// was acknowledged, and a write that failed at most costs a miss. The store
// only exposes committed data, so a rolled-back write never reaches the
// cache at all.
//
// Writes by other processes (Airflow itself, other replicas on a shared
// database) never reach invalidate: with a maxAge, a body older than that
// is read again, which bounds how stale an answer can be.
//
// Connection bodies hold decrypted passwords: the cache keeps in memory what
// every connection GET already decrypts into it.
type bodyCache struct {
	seed       maphash.Seed
	maxEntries int // per shard
	maxBytes   int // per shard
	// maxAge, when positive, is the longest a body is served after it was
	// read from the store, by the clock now.
	maxAge   time.Duration
	now      func() time.Time
	versions [versionStripes]atomic.Uint64
	shards   [readCacheShards]bodyShard
	// hits and misses count GETs served from the cache or not (metrics);
	// nil when nobody counts.
	hits, misses metrics.Counter
}

// count makes bc count its hits and misses.
func (bc *bodyCache) count(hits, misses metrics.Counter) {
	if bc != nil && hits != nil {
		bc.hits, bc.misses = hits, misses
	}
}

type bodyShard struct {
	mu      sync.RWMutex
	entries map[string]cachedBody
	bytes   int
}

type cachedBody struct {
	version uint64
	body    []byte
	// readAt is when the body was read from the store (zero without
	// maxAge).
	readAt time.Time
}

// readTicket is what a reader notes before reading the store: where the key
// lives, the version its body will be filed under and, with maxAge, when
// the read began.
type readTicket struct {
	hash    uint64
	version uint64
	at      time.Time
}

// newBodyCache returns a cache of at most size entries, or nil (caching
// nothing) when size is negative. A positive maxAge bounds how long a body
// is served, by the clock now (time.Now when nil).
func newBodyCache(size int, maxAge time.Duration, now func() time.Time) *bodyCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultReadCacheSize
	}
	if now == nil {
		now = time.Now
	}
	bc := &bodyCache{
		seed:       maphash.MakeSeed(),
		maxEntries: max(size/readCacheShards, 1),
		maxBytes:   readCacheBytes / readCacheShards,
		maxAge:     max(maxAge, 0),
		now:        now,
	}
	for i := range bc.shards {
		bc.shards[i].entries = make(map[string]cachedBody)
	}
	return bc
}

func (bc *bodyCache) version(h uint64) *atomic.Uint64 { return &bc.versions[h%versionStripes] }

func (bc *bodyCache) shard(h uint64) *bodyShard { return &bc.shards[(h>>32)%readCacheShards] }

// get returns the current body of key, or nil and the ticket to file the
// body read from the store under.
func (bc *bodyCache) get(key string) ([]byte, readTicket) { return bc.getFor("", key) }

// entryKey is where the body of key as team reads it is filed: under
// [core] multi_team a team may read its own AIRFLOW_VAR__{TEAM}___{KEY}, so
// one team's body is never served to another. A team name holds no NUL
// (PostgreSQL text cannot), so the keys of two teams never meet.
func entryKey(team, key string) string {
	if team == "" {
		return key
	}
	return team + "\x00" + key
}

// getFor is get of the body team reads. Every team's body of a key
// shares the key's version, so a write of the key makes all of them stale.
func (bc *bodyCache) getFor(team, key string) ([]byte, readTicket) {
	if bc == nil {
		return nil, readTicket{}
	}
	h := maphash.String(bc.seed, key)
	t := readTicket{hash: h, version: bc.version(h).Load()}
	if bc.maxAge > 0 {
		t.at = bc.now()
	}
	s := bc.shard(h)
	s.mu.RLock()
	e, ok := s.entries[entryKey(team, key)]
	s.mu.RUnlock()
	if ok && e.version == t.version && (bc.maxAge == 0 || t.at.Sub(e.readAt) < bc.maxAge) {
		return e.body, t
	}
	return nil, t
}

// put files body for key under the version t noted before the store was
// read. A write since then makes the body stale at once, so it is dropped.
func (bc *bodyCache) put(key string, t readTicket, body []byte) { bc.putFor("", key, t, body) }

// putFor is put of the body team read.
func (bc *bodyCache) putFor(team, key string, t readTicket, body []byte) {
	if bc == nil || len(body) > maxCachedBody {
		return
	}
	key = entryKey(team, key)
	size := len(key) + len(body)
	s := bc.shard(t.hash)
	s.mu.Lock()
	defer s.mu.Unlock()
	if bc.version(t.hash).Load() != t.version {
		return
	}
	if old, ok := s.entries[key]; ok {
		s.bytes -= len(key) + len(old.body)
		delete(s.entries, key)
	}
	// Evict arbitrary entries (map order) until the new one fits: no
	// bookkeeping on hits, and hot keys come back on their next read.
	for k, e := range s.entries {
		if len(s.entries) < bc.maxEntries && s.bytes+size <= bc.maxBytes {
			break
		}
		s.bytes -= len(k) + len(e.body)
		delete(s.entries, k)
	}
	// The body's age counts from before the store was read: what it holds
	// can be no older than that.
	s.entries[key] = cachedBody{version: t.version, body: body, readAt: t.at}
	s.bytes += size
}

// invalidate makes every body of key read so far stale; cachedStore calls
// it after each write of key.
func (bc *bodyCache) invalidate(key string) {
	if bc == nil {
		return
	}
	h := maphash.String(bc.seed, key)
	bc.version(h).Add(1)
	s := bc.shard(h)
	s.mu.Lock()
	if old, ok := s.entries[key]; ok {
		s.bytes -= len(key) + len(old.body)
		delete(s.entries, key)
	}
	s.mu.Unlock()
}

// len returns the number of entries and the bytes they hold.
func (bc *bodyCache) len() (entries, bytes int) {
	for i := range bc.shards {
		s := &bc.shards[i]
		s.mu.RLock()
		entries += len(s.entries)
		bytes += s.bytes
		s.mu.RUnlock()
	}
	return entries, bytes
}

// cachedStore is the Store the handlers use: it passes everything to the
// configured store and invalidates the read caches after every write of a
// variable or a connection. It is the only path by which the server writes
// them. On the embedded store other processes cannot write while the server
// holds the database file, and re-encrypting secrets (RotateSecrets,
// offline) leaves what a read returns unchanged; on a shared database the
// caches' maxAge bounds what other writers' changes cost.
type cachedStore struct {
	Store
	variables   *bodyCache
	connections *bodyCache
}

// newCachedStore wraps store in read caches of size entries per kind,
// serving bodies for at most maxAge when it is positive (newBodyCache).
func newCachedStore(store Store, size int, maxAge time.Duration, now func() time.Time) (*cachedStore, error) {
	if store == nil {
		return nil, &ConfigError{Field: "Store", Problem: "is required by the read cache"}
	}
	return &cachedStore{Store: store, variables: newBodyCache(size, maxAge, now),
		connections: newBodyCache(size, maxAge, now)}, nil
}

func (s *cachedStore) PutVariable(ctx context.Context, v workload.Variable) error {
	defer s.variables.invalidate(v.Key)
	return s.Store.PutVariable(ctx, v)
}

func (s *cachedStore) DeleteVariable(ctx context.Context, key string) error {
	defer s.variables.invalidate(key)
	return s.Store.DeleteVariable(ctx, key)
}

func (s *cachedStore) PutConnection(ctx context.Context, c workload.Connection) error {
	defer s.connections.invalidate(c.ConnID)
	return s.Store.PutConnection(ctx, c)
}

func (s *cachedStore) DeleteConnection(ctx context.Context, id string) error {
	defer s.connections.invalidate(id)
	return s.Store.DeleteConnection(ctx, id)
}

// serveCached answers 200 with the JSON of what load returns for key as
// team reads it ("" outside [core] multi_team or for no team), from
// bc when it holds a current body. The body is the one c.JSON writes, byte
// for byte; a request for indented JSON (?pretty, or Echo's debug mode)
// bypasses the cache.
func serveCached(c echo.Context, bc *bodyCache, team, key string, load func() (any, error)) error {
	if indented(c) {
		v, err := load()
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, v)
	}
	body, t := bc.getFor(team, key)
	if bc != nil && bc.hits != nil {
		if body != nil {
			bc.hits.Inc()
		} else {
			bc.misses.Inc()
		}
	}
	if body == nil {
		v, err := load()
		if err != nil {
			return err
		}
		// What json.Encoder (and so c.JSON) writes: the value, then a newline.
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body = append(b, '\n')
		bc.putFor(team, key, t, body)
	}
	if h := c.Response().Header(); h[echo.HeaderContentType] == nil {
		h[echo.HeaderContentType] = jsonContentType
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

// jsonContentType is the Content-Type c.JSON sets, shared by every cached
// answer (Header.Set would copy it each time); it is never modified.
var jsonContentType = []string{echo.MIMEApplicationJSON}

// indented reports whether c.JSON would indent its answer.
func indented(c echo.Context) bool {
	if c.Echo().Debug {
		return true
	}
	if c.Request().URL.RawQuery == "" {
		return false
	}
	_, pretty := c.QueryParams()["pretty"]
	return pretty
}

// UpdateConnectionTest passes the update on and invalidates the connection
// a successful test saved (workload.ConnectionTest.ToCommit).
func (s *cachedStore) UpdateConnectionTest(ctx context.Context, id string,
	fn func(ct *workload.ConnectionTest) error) (*workload.ConnectionTest, error) {
	ct, err := s.Store.UpdateConnectionTest(ctx, id, fn)
	if ct != nil {
		if c := ct.ToCommit(); c != nil {
			s.connections.invalidate(c.ConnID)
		}
	}
	return ct, err
}
