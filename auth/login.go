package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Throttling defaults (see AuthenticatorConfig).
const (
	DefaultMaxFailures = 5
	DefaultWindow      = 15 * time.Minute
	DefaultBaseDelay   = time.Second
	DefaultMaxDelay    = 5 * time.Minute
	DefaultMaxTracked  = 100000
)

// AuthenticatorConfig configures NewAuthenticator. Zero values mean the
// documented defaults; negative ones are refused.
type AuthenticatorConfig struct {
	// Store holds the users. Required.
	Store Store
	// Now is the clock of the throttling; nil means time.Now. Tests move a
	// fake clock instead of sleeping through lockouts.
	Now func() time.Time

	// MaxFailures is how many failed logins one key (a user name, or a
	// client address) may have within Window before it is locked out.
	// Default 5.
	MaxFailures int
	// Window is how long a failure is remembered: each one is forgotten
	// Window after it happened, whether or not a lockout followed it.
	// Default 15 minutes.
	Window time.Duration
	// BaseDelay is the first lockout, doubled with each further failure
	// within Window. Default 1 second.
	BaseDelay time.Duration
	// MaxDelay caps the lockout, however many failures come. Default 5
	// minutes: with MaxFailures 5 a guesser gets at most a few hundred
	// passwords a day per user name, yet someone who fails on purpose to
	// keep another user out can never make them wait longer than this,
	// and one failure per Window keeps nobody out at all.
	MaxDelay time.Duration
	// MaxTracked bounds how many keys are remembered (default 100000), so
	// that a flood of random user names or addresses cannot exhaust memory.
	// When the table is full, expired keys are dropped first, then the ones
	// that would be forgotten soonest.
	MaxTracked int

	// BcryptCost is [taskgate] bcrypt_cost, the cost new hashes get; 0
	// means bcrypt.DefaultCost. A successful login rehashes a stored hash
	// of another cost at this one, and the dummy hash an unknown user's
	// password is checked against costs the most of this and of the stored
	// hashes seen (see Login).
	BcryptCost int
	// OnLockout, when set, is called each time a user name or an address
	// is locked out (metrics). It runs under the authenticator's lock: it
	// must be cheap.
	OnLockout func()
}

// Authenticator checks passwords and slows down guessing. It is safe for
// concurrent use.
//
// Two rules are enforced here, where no caller can skip them. Timing: a
// wrong password and an unknown user cost the same bcrypt comparison, so
// neither the answer nor its latency tells which user names exist.
// Throttling: failures are counted per user name and per client address;
// a key over the limit is refused before any password is checked, so a
// locked-out guesser cannot even make the server hash.
type Authenticator struct {
	store Store
	now   func() time.Time
	// cost is the configured bcrypt cost, the one stored hashes converge to.
	cost int
	// compare is bcrypt.CompareHashAndPassword; tests replace it to count
	// comparisons instead of timing them.
	compare func(hash, password []byte) error

	// costs tracks the bcrypt costs of the stored hashes and the dummy
	// hash matching them.
	costs *hashCosts

	onLockout func()

	mu sync.Mutex
	t  throttle
}

// NewAuthenticator checks cfg, applies the defaults, reads the stored users'
// hash costs and computes the dummy hash (one bcrypt at the highest of them
// and cfg.BcryptCost; see hashCosts).
func NewAuthenticator(cfg AuthenticatorConfig) (*Authenticator, error) {
	if cfg.Store == nil {
		return nil, errors.New("auth: authenticator needs a store")
	}
	if cfg.MaxFailures < 0 || cfg.Window < 0 || cfg.BaseDelay < 0 || cfg.MaxDelay < 0 || cfg.MaxTracked < 0 {
		return nil, errors.New("auth: throttling settings must not be negative")
	}
	def := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	defDur := func(v, d time.Duration) time.Duration {
		if v == 0 {
			return d
		}
		return v
	}
	maxFailures := def(cfg.MaxFailures, DefaultMaxFailures)
	window := defDur(cfg.Window, DefaultWindow)
	base := defDur(cfg.BaseDelay, DefaultBaseDelay)
	maxDelay := defDur(cfg.MaxDelay, DefaultMaxDelay)
	maxTracked := def(cfg.MaxTracked, DefaultMaxTracked)
	if base > maxDelay {
		return nil, fmt.Errorf("auth: base delay %s exceeds max delay %s", base, maxDelay)
	}
	cost, err := bcryptCost(cfg.BcryptCost)
	if err != nil {
		return nil, err
	}
	users, err := cfg.Store.Users(context.Background())
	if err != nil {
		return nil, fmt.Errorf("auth: read users: %w", err)
	}
	hc := &hashCosts{configured: cost, byUser: make(map[string]int, len(users)), dummies: map[int][]byte{}}
	for _, u := range users {
		hc.saw(u.Name, u.PasswordHash)
	}
	if _, err := hc.dummy(); err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Authenticator{
		store:   cfg.Store,
		now:     now,
		cost:    cost,
		costs:   hc,
		compare: bcrypt.CompareHashAndPassword,
		t:       newThrottle(maxFailures, window, base, maxDelay, maxTracked),

		onLockout: cfg.OnLockout,
	}, nil
}

// newDummyHash hashes a random password no one knows at cost.
func newDummyHash(cost int) ([]byte, error) {
	var pw [24]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return nil, fmt.Errorf("auth: dummy password: %w", err)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(pw[:])), cost)
	if err != nil {
		return nil, fmt.Errorf("auth: dummy hash: %w", err)
	}
	return dummy, nil
}

// hashCosts tracks the bcrypt cost of every stored user's hash it has seen
// (all of them at start-up, then each at its user's login) so that the dummy
// hash an unknown user's password is checked against costs the most of them
// and of the configured cost. Were it cheaper, a name that takes longer to
// refuse would be a user's; after a change of bcrypt_cost the stored hashes
// keep their old cost until their users log in again. Safe for concurrent
// use.
type hashCosts struct {
	mu         sync.Mutex
	configured int
	byUser     map[string]int
	count      [bcrypt.MaxCost + 1]int // how many users' hashes have each cost
	dummies    map[int][]byte          // dummy hash per cost, made once each
}

// saw records the hash of a stored user; "" forgets the user (removed).
func (h *hashCosts) saw(name, hash string) {
	c, err := bcrypt.Cost([]byte(hash))
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.byUser[name]; ok {
		h.count[old]--
		delete(h.byUser, name)
	}
	if err == nil && c >= 0 && c <= bcrypt.MaxCost {
		h.byUser[name] = c
		h.count[c]++
	}
}

// dummyCost is the cost the dummy hash must have now.
func (h *hashCosts) dummyCost() int {
	for c := bcrypt.MaxCost; c > h.configured; c-- {
		if h.count[c] > 0 {
			return c
		}
	}
	return h.configured
}

// dummy returns the dummy hash of the current cost, making it first (one
// bcrypt, outside the lock) when that cost is new.
func (h *hashCosts) dummy() ([]byte, error) {
	h.mu.Lock()
	c := h.dummyCost()
	d := h.dummies[c]
	h.mu.Unlock()
	if d != nil {
		return d, nil
	}
	d, err := newDummyHash(c)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.dummies[c]; old != nil {
		return old, nil
	}
	h.dummies[c] = d
	return d, nil
}

// ThrottledError refuses a login because its user name or client address is
// locked out. The gateway answers 429 with a Retry-After header.
type ThrottledError struct {
	// RetryAfter is how long until the lockout ends.
	RetryAfter time.Duration
}

// Error reports RetryAfter rounded up to whole seconds, the unit of the
// Retry-After header.
func (e *ThrottledError) Error() string {
	d := e.RetryAfter.Truncate(time.Second)
	if d < e.RetryAfter {
		d += time.Second
	}
	return fmt.Sprintf("auth: too many failed logins; retry in %s", d)
}

// Login returns the user when the password matches.
//
// A wrong password and an unknown user return ErrBadCredentials after the
// same work: an unknown user (or a name no user can have) is checked against
// a dummy bcrypt hash, so timing does not reveal which names exist. The
// dummy costs the most of the configured cost and the costs of the stored
// hashes (read at start-up, and seen at each login), and a successful login
// rehashes a stored hash whose cost differs from the configured one: after
// bcrypt_cost changes, the users' hashes converge to the new cost, and the
// dummy never costs less than a stored hash. A password longer than
// bcrypt's 72 bytes never matches, although bcrypt would ignore the excess.
//
// If the user name or the address is locked out, Login returns
// *ThrottledError without checking the password and without counting a
// failure. remoteAddr is the client address the caller trusts ("ip" or
// "ip:port"; "" is not throttled by address). A success clears the user's
// failures but not the address's, so one valid account does not reset the
// count of a guesser trying others from the same address.
//
// Attempts still being checked count against the limit: while a key has as
// many in flight as it has failures left before its lockout (at least one),
// a further attempt gets a ThrottledError of BaseDelay, so parallel requests
// cannot try more passwords than sequential ones.
//
// A store error is returned wrapped, and counts as no failure.
func (a *Authenticator) Login(ctx context.Context, username, password, remoteAddr string) (*User, error) {
	ukey, akey := userKey(username), addrKey(remoteAddr)

	now := a.now()
	a.mu.Lock()
	a.t.prune(now)
	if wait := max(a.t.wait(ukey, now), a.t.wait(akey, now)); wait > 0 {
		a.mu.Unlock()
		return nil, &ThrottledError{RetryAfter: wait}
	}
	ue, ae := a.t.begin(ukey, now), a.t.begin(akey, now)
	a.mu.Unlock()

	var (
		u   *User
		err = errors.New("auth: login interrupted") // a panic in the store
	)
	defer func() {
		now := a.now()
		a.mu.Lock()
		defer a.mu.Unlock()
		a.t.prune(now)
		a.t.end(ue)
		a.t.end(ae)
		switch {
		case err == nil:
			a.t.clear(ukey)
		case errors.Is(err, ErrBadCredentials):
			for _, k := range [...]string{ukey, akey} {
				if a.t.fail(k, now) && a.onLockout != nil {
					a.onLockout()
				}
			}
		}
		a.t.dropIdle(ukey)
		a.t.dropIdle(akey)
	}()
	u, err = a.check(ctx, username, password)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// check does the one bcrypt comparison of a login, and the rehash of a
// successful one whose stored hash has another cost than the configured.
func (a *Authenticator) check(ctx context.Context, username, password string) (*User, error) {
	var (
		u    *User
		hash []byte
	)
	if ValidUserName(username) == nil {
		found, err := a.store.User(ctx, username)
		switch {
		case err == nil:
			u, hash = found, []byte(found.PasswordHash)
			a.costs.saw(u.Name, u.PasswordHash)
		case errors.Is(err, ErrNotFound):
			a.costs.saw(username, "") // removed since it was seen, if ever
		default:
			return nil, fmt.Errorf("auth: login: %w", err)
		}
	}
	if u == nil {
		d, err := a.costs.dummy()
		if err != nil {
			return nil, err
		}
		hash = d
	}
	cerr := a.compare(hash, []byte(password))
	switch {
	case u == nil, len(password) > MaxPasswordLen, errors.Is(cerr, bcrypt.ErrMismatchedHashAndPassword):
		return nil, ErrBadCredentials
	case cerr != nil:
		// A damaged hash: the caller still sees bad credentials (anything
		// else would tell that the user exists), the log sees why.
		return nil, fmt.Errorf("%w (stored password hash of user %s unusable: %v)", ErrBadCredentials, username, cerr)
	}
	a.rehash(ctx, u, password)
	return u, nil
}

// rehash stores u's password hashed at the configured cost when its stored
// hash has another one. It is best effort: the login has succeeded either
// way, and a failed rehash is tried again at the next login.
func (a *Authenticator) rehash(ctx context.Context, u *User, password string) {
	if c, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil || c == a.cost {
		return
	}
	h, err := HashPassword(password, a.cost)
	if err != nil {
		return
	}
	if err := a.store.SetPasswordHash(ctx, u.Name, u.PasswordHash, h); err == nil {
		u.PasswordHash = h
		a.costs.saw(u.Name, h)
		_, _ = a.costs.dummy() // made now, not in an unknown user's login
	}
}

// tracked reports how many keys the throttle remembers, for tests.
func (a *Authenticator) tracked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.t.tracked()
}
