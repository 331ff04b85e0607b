package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/fernet"
	"github.com/taskgate/taskgate/internal/fakeclock"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/workload"
)

// countingStore counts the reads that reach the store, and can make
// PutVariable fail.
type countingStore struct {
	Store
	variableReads   atomic.Int64
	connectionReads atomic.Int64
	// putVariable, when set, replaces PutVariable; next is the real one.
	putVariable func(ctx context.Context, v workload.Variable, next func(context.Context, workload.Variable) error) error
}

func (s *countingStore) Variable(ctx context.Context, key string) (*workload.Variable, error) {
	s.variableReads.Add(1)
	return s.Store.Variable(ctx, key)
}

func (s *countingStore) Connection(ctx context.Context, id string) (*workload.Connection, error) {
	s.connectionReads.Add(1)
	return s.Store.Connection(ctx, id)
}

func (s *countingStore) PutVariable(ctx context.Context, v workload.Variable) error {
	if s.putVariable != nil {
		return s.putVariable(ctx, v, s.Store.PutVariable)
	}
	return s.Store.PutVariable(ctx, v)
}

// withCountingStore puts cs between the gateway and the real store.
func withCountingStore(cs *countingStore) harnessOption {
	return withConfig(func(cfg *Config) { cs.Store, cfg.Store = cfg.Store, cs })
}

// execToken returns an execution token of a running task.
func (h *harness) execToken() string {
	h.t.Helper()
	return h.start(h.queue("etl", "r", "t", -1))
}

func (h *harness) putVariable(key, value string) {
	h.t.Helper()
	if err := h.db.PutVariable(context.Background(), workload.Variable{Key: key, Value: &value}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) putConnection(id, host string) {
	h.t.Helper()
	pw := "s3cret"
	if err := h.db.PutConnection(context.Background(), workload.Connection{ConnID: id, ConnType: "postgres", Host: &host, Password: &pw}); err != nil {
		h.t.Fatal(err)
	}
}

func variableJSON(key, value string) string {
	return fmt.Sprintf(`{"key":%q,"value":%q}`, key, value)
}

func connectionJSON(id, host string) string {
	return fmt.Sprintf(`{"conn_id":%q,"conn_type":"postgres","host":%q,"schema":null,"login":null,"password":"s3cret","port":null,"extra":null}`, id, host)
}

// TestReadCacheBodies checks that a cached answer is byte for byte what
// c.JSON writes without the cache, headers included.
func TestReadCacheBodies(t *testing.T) {
	values := []string{"plain", `<a href="x">&amp;</a>`, "ünïcødé \u2028 line", `{"json": [1, 2]}`, ""}
	paths := []string{"/execution/connections/pg"}
	for i := range values {
		paths = append(paths, fmt.Sprintf("/execution/variables/k%d", i), fmt.Sprintf("/execution/variables/k%d?pretty", i))
	}
	uncached := newHarness(t, withConfig(func(cfg *Config) { cfg.ReadCacheSize = -1 }))
	cs := &countingStore{}
	cached := newHarness(t, withCountingStore(cs))
	for _, h := range []*harness{uncached, cached} {
		for i, v := range values {
			h.putVariable(fmt.Sprintf("k%d", i), v)
		}
		h.putConnection("pg", "db<1>")
	}
	wantTok, gotTok := uncached.execToken(), cached.execToken()
	for _, path := range paths {
		want := uncached.do("GET", path, wantTok, "")
		for _, try := range []string{"miss", "hit"} {
			got := cached.do("GET", path, gotTok, "")
			if got.status != 200 || got.body != want.body {
				t.Errorf("%s (%s) = %d %q, want %d %q", path, try, got.status, got.body, want.status, want.body)
			}
			for _, name := range []string{"Content-Type", "Airflow-Api-Version"} {
				if got.header.Get(name) != want.header.Get(name) {
					t.Errorf("%s (%s) %s = %q, want %q", path, try, name, got.header.Get(name), want.header.Get(name))
				}
			}
		}
	}
	// Each plain path read the store once; each ?pretty one on every try.
	if n := cs.variableReads.Load(); n != int64(3*len(values)) {
		t.Errorf("variable reads = %d, want %d", n, 3*len(values))
	}
	if n := cs.connectionReads.Load(); n != 1 {
		t.Errorf("connection reads = %d, want 1", n)
	}
}

// TestReadCacheInvalidation runs every write path of the server between two
// reads: the second read must see the write.
func TestReadCacheInvalidation(t *testing.T) {
	tests := []struct {
		name string
		// read is the GET path; key is the variable or connection written.
		read string
		// write returns the request that changes it: method, path, body
		// and whether it takes the REST token.
		method, path, body string
		rest               bool
		status             int
		want               string // the body after the write; "" means 404
	}{
		{"execution PUT variable", "/execution/variables/k", "PUT", "/execution/variables/k", `{"val":"new"}`, false, 201, variableJSON("k", "new")},
		{"execution PUT variable with an escaped key", "/execution/variables/a%2Fb", "PUT", "/execution/variables/a/b", `{"val":"new"}`, false, 201, variableJSON("a/b", "new")},
		{"execution DELETE variable", "/execution/variables/k", "DELETE", "/execution/variables/k", "", false, 204, ""},
		{"admin POST variable", "/execution/variables/fresh", "POST", "/api/v2/variables", `{"key":"fresh","value":"new"}`, true, 201, variableJSON("fresh", "new")},
		{"admin PATCH variable", "/execution/variables/k", "PATCH", "/api/v2/variables/k", `{"key":"k","value":"new"}`, true, 200, variableJSON("k", "new")},
		{"admin DELETE variable", "/execution/variables/k", "DELETE", "/api/v2/variables/k", "", true, 204, ""},
		{"admin POST connection", "/execution/connections/fresh", "POST", "/api/v2/connections", `{"connection_id":"fresh","conn_type":"postgres","host":"new","password":"s3cret"}`, true, 201, connectionJSON("fresh", "new")},
		{"admin PATCH connection", "/execution/connections/pg", "PATCH", "/api/v2/connections/pg", `{"connection_id":"pg","conn_type":"postgres","host":"new","password":"***"}`, true, 200, connectionJSON("pg", "new")},
		{"admin DELETE connection", "/execution/connections/pg", "DELETE", "/api/v2/connections/pg", "", true, 204, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := &countingStore{}
			h := newHarness(t, withCountingStore(cs))
			h.putVariable("k", "old")
			h.putVariable("a/b", "old")
			h.putConnection("pg", "old")
			h.addUser("op", auth.RoleOp)
			exec, rest := h.execToken(), h.login("op")
			before := h.do("GET", tt.read, exec, "")
			reads := cs.variableReads.Load() + cs.connectionReads.Load()
			if again := h.do("GET", tt.read, exec, ""); again.body != before.body {
				t.Fatalf("second read %q, first %q", again.body, before.body)
			}
			if before.status == 200 && cs.variableReads.Load()+cs.connectionReads.Load() != reads {
				t.Fatal("the second read was not served from the cache")
			}
			tok := exec
			if tt.rest {
				tok = rest
			}
			if r := h.do(tt.method, tt.path, tok, tt.body); r.status != tt.status {
				t.Fatalf("%s %s = %d %s", tt.method, tt.path, r.status, r.body)
			}
			got := h.do("GET", tt.read, exec, "")
			if tt.want == "" {
				if got.status != 404 {
					t.Errorf("after the write: %d %s, want 404", got.status, got.body)
				}
				return
			}
			wantJSON(t, got, 200, tt.want)
		})
	}
}

// TestReadCacheFailedWrite: a write that fails is no reason to keep
// serving what was read before it, nor to serve what it did not write.
func TestReadCacheFailedWrite(t *testing.T) {
	errDisk := errors.New("disk on fire")
	tests := []struct {
		name   string
		put    func(ctx context.Context, v workload.Variable, next func(context.Context, workload.Variable) error) error
		wanted string
	}{
		{"refused before writing", func(context.Context, workload.Variable, func(context.Context, workload.Variable) error) error {
			return errDisk
		}, "old"},
		{"failed after writing", func(ctx context.Context, v workload.Variable, next func(context.Context, workload.Variable) error) error {
			if err := next(ctx, v); err != nil {
				return err
			}
			return errDisk
		}, "new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := &countingStore{}
			h := newHarness(t, withCountingStore(cs))
			h.putVariable("k", "old")
			exec := h.execToken()
			wantJSON(t, h.do("GET", "/execution/variables/k", exec, ""), 200, variableJSON("k", "old"))
			cs.putVariable = tt.put
			if r := h.do("PUT", "/execution/variables/k", exec, `{"val":"new"}`); r.status != 500 {
				t.Fatalf("PUT = %d %s, want 500", r.status, r.body)
			}
			wantJSON(t, h.do("GET", "/execution/variables/k", exec, ""), 200, variableJSON("k", tt.wanted))
		})
	}
}

// TestReadCacheSecretRotation: re-encrypting the connections (which only
// the offline CLI does) leaves a cached answer right, since what a read
// decrypts is unchanged.
func TestReadCacheSecretRotation(t *testing.T) {
	k1, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cipher, err := fernet.NewMulti(k1)
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{}
	h := newHarness(t, withCountingStore(cs), withStoreOptions(func(o *store.Options) { o.Secrets = cipher }))
	h.putConnection("pg", "db")
	exec := h.execToken()
	wantJSON(t, h.do("GET", "/execution/connections/pg", exec, ""), 200, connectionJSON("pg", "db"))
	if n, err := h.db.RotateSecrets(context.Background()); err != nil || n != 1 {
		t.Fatalf("RotateSecrets = %d, %v", n, err)
	}
	wantJSON(t, h.do("GET", "/execution/connections/pg", exec, ""), 200, connectionJSON("pg", "db"))
	if n := cs.connectionReads.Load(); n != 1 {
		t.Errorf("connection reads = %d, want 1", n)
	}
}

// TestReadCacheBound: the cache keeps at most its size, never answers for
// missing keys, and leaves huge bodies to the store.
func TestReadCacheBound(t *testing.T) {
	const size = 32
	cs := &countingStore{}
	h := newHarness(t, withCountingStore(cs), withConfig(func(cfg *Config) { cfg.ReadCacheSize = size }))
	exec := h.execToken()
	for i := range 200 {
		key := fmt.Sprintf("key-%03d", i)
		h.putVariable(key, strings.Repeat("v", 200))
		if r := h.do("GET", "/execution/variables/"+key, exec, ""); r.status != 200 {
			t.Fatalf("GET %s = %d", key, r.status)
		}
	}
	entries, bytes := h.srv.variables.len()
	if entries == 0 || entries > size {
		t.Errorf("entries = %d, want 1..%d", entries, size)
	}
	checkShardBytes(t, h.srv.variables)

	for i := range 1000 {
		if r := h.do("GET", fmt.Sprintf("/execution/variables/missing-%d", i), exec, ""); r.status != 404 {
			t.Fatalf("GET missing = %d", r.status)
		}
	}
	if e, b := h.srv.variables.len(); e != entries || b != bytes {
		t.Errorf("after 1000 missing keys: %d entries, %d bytes; want %d, %d", e, b, entries, bytes)
	}

	h.putVariable("huge", strings.Repeat("x", maxCachedBody))
	before := cs.variableReads.Load()
	for range 2 {
		if r := h.do("GET", "/execution/variables/huge", exec, ""); r.status != 200 {
			t.Fatalf("GET huge = %d", r.status)
		}
	}
	if n := cs.variableReads.Load() - before; n != 2 {
		t.Errorf("huge variable read the store %d times, want 2", n)
	}
}

// TestReadCacheByteBound: the byte budget holds however few entries there are.
func TestReadCacheByteBound(t *testing.T) {
	h := newHarness(t)
	bc := h.srv.variables
	bc.maxBytes = 2000 // per shard
	exec := h.execToken()
	for i := range 300 {
		key := fmt.Sprintf("key-%03d", i)
		h.putVariable(key, strings.Repeat("v", 300))
		if r := h.do("GET", "/execution/variables/"+key, exec, ""); r.status != 200 {
			t.Fatalf("GET %s = %d", key, r.status)
		}
	}
	if _, bytes := bc.len(); bytes > readCacheShards*2000 {
		t.Errorf("bytes = %d, want at most %d", bytes, readCacheShards*2000)
	}
	checkShardBytes(t, bc)
}

// checkShardBytes checks every shard's byte count against its entries and
// its budget.
func checkShardBytes(t *testing.T, bc *bodyCache) {
	t.Helper()
	for i := range bc.shards {
		s := &bc.shards[i]
		s.mu.RLock()
		sum := 0
		for k, e := range s.entries {
			sum += len(k) + len(e.body)
		}
		if sum != s.bytes || s.bytes > bc.maxBytes || len(s.entries) > bc.maxEntries {
			t.Errorf("shard %d: %d entries of %d bytes, counted %d; limits %d entries, %d bytes",
				i, len(s.entries), sum, s.bytes, bc.maxEntries, bc.maxBytes)
		}
		s.mu.RUnlock()
	}
}

func TestBodyCacheStaleTicket(t *testing.T) {
	bc := newBodyCache(0, 0, nil)
	body, ticket := bc.get("k")
	if body != nil {
		t.Fatal("empty cache answered")
	}
	bc.invalidate("k") // a write between the reader's ticket and its put
	bc.put("k", ticket, []byte("old\n"))
	if body, _ := bc.get("k"); body != nil {
		t.Fatalf("a body read before a write was kept: %q", body)
	}
	_, ticket = bc.get("k")
	bc.put("k", ticket, []byte("new\n"))
	if body, _ := bc.get("k"); string(body) != "new\n" {
		t.Fatalf("get = %q, want the body put", body)
	}
	bc.invalidate("k")
	if body, _ := bc.get("k"); body != nil {
		t.Fatalf("get after invalidate = %q", body)
	}
	if e, b := bc.len(); e != 0 || b != 0 {
		t.Errorf("after invalidate: %d entries, %d bytes", e, b)
	}
	if body, _ := newBodyCache(-1, 0, nil).get("k"); body != nil {
		t.Fatal("a disabled cache answered")
	}
}

// TestBodyCacheMaxAge: with a maxAge (a store other processes write too),
// a body is served for less than maxAge after the read that filed it
// began, then read again; without one it lives until invalidated.
func TestBodyCacheMaxAge(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxAge   time.Duration
		advance  time.Duration
		wantKept bool
	}{
		{"no max age, an hour later", 0, time.Hour, true},
		{"within max age", time.Second, 999 * time.Millisecond, true},
		{"at max age", time.Second, time.Second, false},
		{"past max age", time.Second, time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC))
			bc := newBodyCache(0, tc.maxAge, clk.Now)
			_, ticket := bc.get("k")
			clk.Advance(100 * time.Millisecond) // the store read takes a while
			bc.put("k", ticket, []byte("v\n"))
			clk.Advance(tc.advance - 100*time.Millisecond)
			body, _ := bc.get("k")
			if kept := body != nil; kept != tc.wantKept {
				t.Errorf("served %v, want %v", kept, tc.wantKept)
			}
		})
	}
}

// TestCachedStoreCoversWrites keeps cachedStore complete: a method of Store
// about variables or connections must be a known read, or one of the writes
// cachedStore wraps (each exercised by TestReadCacheInvalidation).
func TestCachedStoreCoversWrites(t *testing.T) {
	known := map[string]bool{
		"Variable": true, "VariableKeys": true, "ListVariables": true, "Connection": true, "ListConnections": true,
		"PutVariable": true, "DeleteVariable": true, "PutConnection": true, "DeleteConnection": true,
		// A connection test's own record; its update is wrapped (a
		// successful test may save its connection).
		"ConnectionTest": true, "InsertConnectionTest": true, "UpdateConnectionTest": true,
	}
	st := reflect.TypeFor[Store]()
	for i := range st.NumMethod() {
		name := st.Method(i).Name
		if (strings.Contains(name, "Variable") || strings.Contains(name, "Connection")) && !known[name] {
			t.Errorf("Store.%s touches variables or connections: if it writes, wrap it in cachedStore; then list it here", name)
		}
	}
}

// TestReadCacheConcurrentWrites races readers against writers through the
// gateway: once a write returned, no read that starts afterwards may see an
// older value.
func TestReadCacheConcurrentWrites(t *testing.T) {
	h := newHarness(t)
	exec := h.execToken()
	const keys, writes, readers = 4, 150, 4
	var acked [keys]atomic.Int64
	for k := range keys {
		h.putVariable("k"+strconv.Itoa(k), "0")
	}
	var wg sync.WaitGroup
	var writersDone atomic.Int32
	for k := range keys {
		wg.Go(func() {
			defer writersDone.Add(1)
			for i := 1; i <= writes; i++ {
				r := h.do("PUT", "/execution/variables/k"+strconv.Itoa(k), exec, `{"val":"`+strconv.Itoa(i)+`"}`)
				if r.status != 201 {
					t.Errorf("PUT = %d %s", r.status, r.body)
					return
				}
				acked[k].Store(int64(i))
			}
		})
	}
	for range readers {
		wg.Go(func() {
			for writersDone.Load() < keys {
				k := rand.IntN(keys)
				floor := acked[k].Load()
				r := h.do("GET", "/execution/variables/k"+strconv.Itoa(k), exec, "")
				var body struct{ Value string }
				if err := json.Unmarshal([]byte(r.body), &body); r.status != 200 || err != nil {
					t.Errorf("GET = %d %s", r.status, r.body)
					return
				}
				if got, _ := strconv.Atoi(body.Value); int64(got) < floor {
					t.Errorf("k%d: read %d after write %d was acknowledged", k, got, floor)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestBodyCacheTeams: a body is served only to the team it was read for,
// and a write of the key makes every team's body of it stale.
func TestBodyCacheTeams(t *testing.T) {
	bc := newBodyCache(0, 0, nil)
	for _, team := range []string{"", "blue", "red"} {
		_, ticket := bc.getFor(team, "k")
		bc.putFor(team, "k", ticket, []byte(team+"'s\n"))
	}
	for _, team := range []string{"", "blue", "red"} {
		if body, _ := bc.getFor(team, "k"); string(body) != team+"'s\n" {
			t.Errorf("team %q got %q", team, body)
		}
	}
	if body, _ := bc.getFor("green", "k"); body != nil {
		t.Errorf("a team that read nothing got %q", body)
	}
	bc.invalidate("k")
	for _, team := range []string{"", "blue", "red"} {
		if body, _ := bc.getFor(team, "k"); body != nil {
			t.Errorf("team %q after the key's write: %q", team, body)
		}
	}
}
