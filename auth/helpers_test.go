package auth

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/taskgate/taskgate/internal/fakeclock"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// newClock returns a clock at t0, safe for the purger's goroutine.
func newClock() *fakeclock.Clock { return fakeclock.New(t0) }

// memStore is an in-memory Store.
type memStore struct {
	mu          sync.Mutex
	users       map[string]User
	revoked     map[string]time.Time
	components  map[string]Component
	userErr     error          // returned by User when set
	purgeErr    error          // returned by the next PurgeRevocations when set
	readErr     error          // returned by Revocations when set
	purgeCalled chan time.Time // receives expiredBefore after each purge, when set
}

func newMemStore() *memStore {
	return &memStore{users: map[string]User{}, revoked: map[string]time.Time{}, components: map[string]Component{}}
}

func (s *memStore) User(_ context.Context, name string) (*User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.userErr != nil {
		return nil, s.userErr
	}
	u, ok := s.users[name]
	if !ok {
		return nil, ErrNotFound
	}
	return &u, nil
}

func (s *memStore) AddUser(_ context.Context, u User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[u.Name]; ok {
		return ErrExists
	}
	s.users[u.Name] = u
	return nil
}

func (s *memStore) RemoveUser(_ context.Context, name string, _ time.Time) (Removal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; !ok {
		return Removal{}, ErrNotFound
	}
	delete(s.users, name)
	var r Removal
	for id, c := range s.components {
		if c.RegisteredBy == name {
			delete(s.components, id)
			r.Components = append(r.Components, id)
		}
	}
	return r, nil
}

func (s *memStore) Revocations(context.Context) (map[string]time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readErr != nil {
		return nil, s.readErr
	}
	out := make(map[string]time.Time, len(s.revoked))
	for k, v := range s.revoked {
		out[k] = v
	}
	return out, nil
}

func (s *memStore) SetPasswordHash(_ context.Context, name, old, new string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[name]
	if !ok {
		return ErrNotFound
	}
	if u.PasswordHash == old {
		u.PasswordHash = new
		s.users[name] = u
	}
	return nil
}

func (s *memStore) Users(context.Context) ([]User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []User{}
	for _, u := range s.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *memStore) Revoke(_ context.Context, jti string, exp time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.revoked[jti]; !ok || exp.After(old) {
		s.revoked[jti] = exp
	}
	return nil
}

func (s *memStore) IsRevoked(_ context.Context, jti string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.revoked[jti]
	return ok, nil
}

func (s *memStore) PurgeRevocations(_ context.Context, expiredBefore time.Time) (int, error) {
	s.mu.Lock()
	n, err := 0, s.purgeErr
	s.purgeErr = nil
	if err == nil {
		for jti, exp := range s.revoked {
			if exp.Before(expiredBefore) {
				delete(s.revoked, jti)
				n++
			}
		}
	}
	s.mu.Unlock()
	if s.purgeCalled != nil {
		s.purgeCalled <- expiredBefore
	}
	return n, err
}

func (s *memStore) revokedJTIs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{}
	for jti := range s.revoked {
		out = append(out, jti)
	}
	sort.Strings(out)
	return out
}

func (s *memStore) AddComponent(_ context.Context, c Component) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.components {
		if o.ID == c.ID || o.Kind == c.Kind && o.Name == c.Name {
			return ErrExists
		}
	}
	s.components[c.ID] = c
	return nil
}

func (s *memStore) Component(_ context.Context, id string) (*Component, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.components[id]
	if !ok {
		return nil, ErrNotFound
	}
	return &c, nil
}

func (s *memStore) DeleteComponent(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.components[id]; !ok {
		return ErrNotFound
	}
	delete(s.components, id)
	return nil
}

func (s *memStore) Components(context.Context) ([]Component, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Component{}
	for _, c := range s.components {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

var _ Store = (*memStore)(nil)

// addUser stores a user with the given password hashed at bcrypt.MinCost.
func addUser(t testing.TB, s Store, name string, role Role, password string) User {
	t.Helper()
	u, err := NewUser(name, role, password, bcrypt.MinCost, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// newTestAuthenticator returns an authenticator over s with the fake clock,
// bcrypt.MinCost, and a counter of its bcrypt comparisons.
func newTestAuthenticator(t testing.TB, s Store, clk *fakeclock.Clock, cfg AuthenticatorConfig) (*Authenticator, *compareCounter) {
	t.Helper()
	cfg.Store, cfg.Now, cfg.BcryptCost = s, clk.Now, bcrypt.MinCost
	a, err := NewAuthenticator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cc := &compareCounter{next: a.compare}
	a.compare = cc.compare
	return a, cc
}

// compareCounter wraps the bcrypt comparison to count calls.
type compareCounter struct {
	mu   sync.Mutex
	n    int
	next func(hash, password []byte) error
}

func (c *compareCounter) compare(hash, password []byte) error {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.next(hash, password)
}

func (c *compareCounter) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = 0
	return n
}

// throttled returns the RetryAfter of a *ThrottledError, or -1 for any other
// outcome.
func throttled(err error) time.Duration {
	var te *ThrottledError
	if errors.As(err, &te) {
		return te.RetryAfter
	}
	return -1
}
