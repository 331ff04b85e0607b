package auth

import (
	"container/heap"
	"net"
	"net/netip"
	"time"
)

// throttle counts failed logins per key (a user name or a client address)
// and decides lockouts. It is not safe for concurrent use: Authenticator
// guards it with its mutex.
//
// The rule is a bounded backoff that a real user can always get past: a key
// with maxFailures failures within the last window waits baseDelay after the
// latest of them, doubled for each further failure within the window and
// never more than maxDelay. Each failure is forgotten window after it
// happened, whatever came after it: a lockout neither extends nor renews
// the memory of the failures that caused it. So a guesser who fails once
// every window keeps nobody out, and however many failures come, nobody
// waits longer than maxDelay at a stretch.
//
// Memory is bounded by maxTracked entries of bounded size (keys are at most
// a valid user name or a shortened address; an entry keeps at most the
// failures that reach maxDelay). Entries sit in a min-heap by the time they
// are forgotten, so dropping expired entries costs O(log n) each and, when
// the table is full, the entry to drop for a new one — the one that would be
// forgotten first, that is the least recently failed — is at the top: a
// flood of random names or addresses costs O(log n) per attempt, never a
// scan of the table.
type throttle struct {
	maxFailures int
	window      time.Duration
	baseDelay   time.Duration
	maxDelay    time.Duration
	maxTracked  int
	// maxKept is how many failures an entry remembers: enough for the
	// lockout to reach maxDelay, beyond which more change nothing.
	maxKept int

	keys     map[string]*attempts
	byExpiry expiryHeap
}

// attempts is the state of one key.
type attempts struct {
	key string
	// failed holds the times of the key's failures within the window,
	// oldest first, at most maxKept of them.
	failed []time.Time
	// inflight counts logins for this key whose password is being checked
	// right now. They count against the limit (see wait), so that parallel
	// requests cannot try more passwords than sequential ones.
	inflight    int
	lockedUntil time.Time
	// expires is when the entry is forgotten: window after the last failure,
	// or the end of the lockout when that is later.
	expires time.Time
	index   int // position in byExpiry; -1 once the entry is no longer tracked
}

func newThrottle(maxFailures int, window, baseDelay, maxDelay time.Duration, maxTracked int) throttle {
	t := throttle{
		maxFailures: maxFailures, window: window, baseDelay: baseDelay, maxDelay: maxDelay,
		maxTracked: maxTracked, keys: make(map[string]*attempts),
	}
	t.maxKept = maxFailures
	for t.lockout(t.maxKept) < maxDelay && t.maxKept < maxFailures+64 {
		t.maxKept++
	}
	return t
}

// recent drops e's failures older than the window at now and returns how
// many remain.
func (t *throttle) recent(e *attempts, now time.Time) int {
	cutoff := now.Add(-t.window)
	i := 0
	for i < len(e.failed) && !e.failed[i].After(cutoff) {
		i++
	}
	if i > 0 {
		e.failed = append(e.failed[:0], e.failed[i:]...)
	}
	return len(e.failed)
}

// prune forgets every entry that has expired at now.
func (t *throttle) prune(now time.Time) {
	for len(t.byExpiry) > 0 && !t.byExpiry[0].expires.After(now) {
		t.remove(t.byExpiry[0])
	}
}

// wait returns how long key must wait before its next attempt, zero when it
// may try now. A key waits while it is locked out, and also while as many
// of its attempts are in flight as it has failures left before the lockout
// (at least one): otherwise a burst of parallel requests would all pass the
// check before the first failure is recorded. Such a key is told to retry
// after baseDelay, by which time the attempts in flight have finished.
func (t *throttle) wait(key string, now time.Time) time.Duration {
	e := t.keys[key]
	if e == nil {
		return 0
	}
	if e.lockedUntil.After(now) {
		return e.lockedUntil.Sub(now)
	}
	if e.inflight >= max(t.maxFailures-t.recent(e, now), 1) {
		return t.baseDelay
	}
	return 0
}

// begin records an attempt in flight for key and returns its entry (nil for
// an untracked key), which must be passed to end.
func (t *throttle) begin(key string, now time.Time) *attempts {
	if key == "" {
		return nil
	}
	e := t.keys[key]
	if e == nil {
		e = t.insert(key, now.Add(t.window))
	}
	e.inflight++
	return e
}

// end records that an attempt begun on e has finished. An entry dropped in
// the meantime (expired or evicted) is left alone: its key may have a new
// entry that never counted this attempt.
func (t *throttle) end(e *attempts) {
	if e == nil || e.index < 0 {
		return
	}
	e.inflight--
}

// fail records a failed attempt for key at now and locks the key out once
// it has maxFailures failures within the window: for baseDelay, doubled for
// each further failure within the window, capped at maxDelay. It reports
// whether this failure began a lockout (the key was not locked out before).
func (t *throttle) fail(key string, now time.Time) (locked bool) {
	if key == "" {
		return false
	}
	e := t.keys[key]
	if e == nil {
		e = t.insert(key, now)
	}
	t.recent(e, now)
	if len(e.failed) >= t.maxKept {
		e.failed = append(e.failed[:0], e.failed[1:]...)
	}
	e.failed = append(e.failed, now)
	if n := len(e.failed); n >= t.maxFailures {
		locked = !e.lockedUntil.After(now)
		e.lockedUntil = now.Add(t.lockout(n))
	}
	e.expires = now.Add(t.window)
	if e.lockedUntil.After(e.expires) {
		e.expires = e.lockedUntil
	}
	heap.Fix(&t.byExpiry, e.index)
	return locked
}

// lockout is the lockout after the given number of failures within the
// window (at least maxFailures): baseDelay doubled per failure beyond
// maxFailures, never more than maxDelay.
func (t *throttle) lockout(failures int) time.Duration {
	d := t.baseDelay
	for i := t.maxFailures; i < failures && d < t.maxDelay; i++ {
		if d > t.maxDelay/2 {
			return t.maxDelay
		}
		d *= 2
	}
	return min(d, t.maxDelay)
}

// clear forgets key's failures and lockout (a successful login).
func (t *throttle) clear(key string) {
	if e := t.keys[key]; e != nil {
		e.failed = e.failed[:0]
		e.lockedUntil = time.Time{}
		t.dropIdle(key)
	}
}

// dropIdle forgets key when nothing about it is worth keeping: no failures
// and no attempt in flight.
func (t *throttle) dropIdle(key string) {
	if e := t.keys[key]; e != nil && len(e.failed) == 0 && e.inflight == 0 {
		t.remove(e)
	}
}

// insert tracks a new entry for key, first dropping the entries that would
// be forgotten soonest when the table is full. Callers prune expired entries
// before, so those go first.
func (t *throttle) insert(key string, expires time.Time) *attempts {
	for len(t.byExpiry) >= t.maxTracked {
		t.remove(t.byExpiry[0])
	}
	e := &attempts{key: key, expires: expires}
	t.keys[key] = e
	heap.Push(&t.byExpiry, e)
	return e
}

func (t *throttle) remove(e *attempts) {
	heap.Remove(&t.byExpiry, e.index)
	delete(t.keys, e.key)
}

func (t *throttle) tracked() int { return len(t.keys) }

// expiryHeap orders entries by expires, earliest first.
type expiryHeap []*attempts

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *expiryHeap) Push(x any) {
	e := x.(*attempts)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}

// userKey is the throttling key of a user name, or "" for a name that no
// user can have: such a name is throttled by address only, which also keeps
// arbitrary strings out of the table.
func userKey(name string) string {
	if ValidUserName(name) != nil {
		return ""
	}
	return "u:" + name
}

// maxAddrKeyLen bounds the address part of a key that is not an IP address.
const maxAddrKeyLen = 64

// addrKey is the throttling key of a client address, or "" when it is
// unknown. A port is dropped, since a client picks a new one per connection.
// An IPv6 address counts as its /64, the block a single host or site
// usually gets, so that stepping through one's own addresses does not buy
// fresh attempts. Anything else is kept as given, shortened.
func addrKey(remoteAddr string) string {
	if remoteAddr == "" {
		return ""
	}
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap().WithZone("")
		if ip.Is6() {
			return "a:" + netip.PrefixFrom(ip, 64).Masked().String()
		}
		return "a:" + ip.String()
	}
	if len(host) > maxAddrKeyLen {
		host = host[:maxAddrKeyLen]
	}
	return "a:" + host
}
