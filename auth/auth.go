// Package auth owns the operator side of taskgate: the users of the REST API
// and their roles, password checking with throttling, the revocation of REST
// tokens, and the registered identities of long-running components (the
// triggerer, the DAG processor) that receive execution-scoped tokens.
//
// Like workload, it declares the storage it needs (Store) and never imports
// bbolt: store.DB implements Store. It knows no HTTP, JWT or logging library
// either; the gateway turns its errors into responses and logs them, so a
// password or a token never reaches this package's error strings.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Errors matched with errors.Is. Stores wrap ErrNotFound and ErrExists so
// that callers only know these, not the store's own errors.
var (
	// ErrNotFound is returned for a user, revocation or component that does
	// not exist.
	ErrNotFound = errors.New("auth: not found")
	// ErrExists is returned when adding a user whose name is taken, or a
	// component whose kind and name (or id) are taken: adding never
	// overwrites, so a typo cannot silently replace someone's password.
	ErrExists = errors.New("auth: already exists")
	// ErrBadCredentials is the one answer to a wrong password and to an
	// unknown user alike, so that the response does not reveal which user
	// names exist.
	ErrBadCredentials = errors.New("auth: invalid username or password")
)

// Role is what a REST API user may do. Roles are ordered, viewer < op <
// admin, so that a route states the least role it needs and every higher
// role passes.
type Role string

// The roles, spelled as they are stored and configured.
const (
	// RoleViewer may read.
	RoleViewer Role = "viewer"
	// RoleOp may also operate: change task instances, variables,
	// connections.
	RoleOp Role = "op"
	// RoleAdmin may also queue workloads (a workload token is a task's
	// whole access, connection secrets in clear included) and manage
	// users, tokens and component identities.
	RoleAdmin Role = "admin"
)

// rank orders the roles; an unknown role ranks 0, below every known one.
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOp:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// ParseRole accepts exactly the lower-case role names. Being strict (no case
// folding, no aliases) keeps one spelling in the database and in tokens.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.rank() > 0 {
		return r, nil
	}
	return "", fmt.Errorf("auth: unknown role %q (admin, op or viewer)", s)
}

// AtLeast reports whether r grants everything min does (admin ≥ op ≥
// viewer). An unknown r is below everything, so a damaged or forged role
// grants nothing. An unknown min also gives false: a route that names a role
// that does not exist is a programming error, and failing closed turns it
// into a refusal instead of an open door.
func (r Role) AtLeast(min Role) bool {
	return r.rank() > 0 && min.rank() > 0 && r.rank() >= min.rank()
}

// User is a REST API user. PasswordHash is a bcrypt hash; the gateway must
// never return it.
type User struct {
	Name         string    `json:"name"`
	Role         Role      `json:"role"`
	PasswordHash string    `json:"password_hash"`
	CreatedAt    time.Time `json:"created_at"`
	// Generation is random and new each time the name is added, and every
	// REST token issued to the user carries it. A token whose generation is
	// not the user's current one was issued before the user was removed
	// (and maybe added again) and is refused: re-adding a name must not
	// revive the tokens of its previous holder. Users stored before
	// generations existed have none, and neither do their tokens.
	Generation string `json:"generation,omitempty"`
}

// maxNameLen bounds user and component names: they appear in URLs, logs and
// token subjects, and the throttling tables key on them.
const maxNameLen = 64

// ValidUserName checks a user name: 1 to 64 characters of A–Z, a–z, 0–9,
// '.', '_', '@' and '-', not starting with '-' (it would read as a
// command-line flag) and not "." or ".." (they would be path segments in
// the REST API's URLs). The charset is what fits unescaped in a URL path, a
// log field and a JWT sub, including e-mail-like names. Component names
// follow the same rule.
func ValidUserName(name string) error {
	return validName("user name", name)
}

func validName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("auth: %s must not be empty", what)
	case len(name) > maxNameLen:
		return fmt.Errorf("auth: %s longer than %d characters", what, maxNameLen)
	case name[0] == '-':
		return fmt.Errorf("auth: %s %q must not start with '-'", what, name)
	case name == "." || name == "..":
		return fmt.Errorf("auth: %s %q is not allowed", what, name)
	}
	for i := 0; i < len(name); i++ {
		if !nameChar(name[i]) {
			return fmt.Errorf("auth: %s %q: only A-Z, a-z, 0-9, '.', '_', '@' and '-' are allowed", what, name)
		}
	}
	return nil
}

func nameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '@' || c == '-'
}

// Password length limits. bcrypt reads at most 72 bytes, so a longer
// password would be silently truncated: refusing it is honest. Eight bytes is
// the least worth hashing.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// HashPassword returns the bcrypt hash of password. A cost of 0 means
// bcrypt.DefaultCost (10); any other cost must be within bcrypt's range
// (4–31), because bcrypt itself would silently replace a too-small cost by
// its default. The password must be 8 to 72 bytes long.
func HashPassword(password string, cost int) (string, error) {
	if len(password) < MinPasswordLen || len(password) > MaxPasswordLen {
		return "", fmt.Errorf("auth: password must be %d to %d bytes long (bcrypt's limit)", MinPasswordLen, MaxPasswordLen)
	}
	cost, err := bcryptCost(cost)
	if err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return string(h), nil
}

func bcryptCost(cost int) (int, error) {
	switch {
	case cost == 0:
		return bcrypt.DefaultCost, nil
	case cost < bcrypt.MinCost || cost > bcrypt.MaxCost:
		return 0, fmt.Errorf("auth: bcrypt cost %d outside %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return cost, nil
}

// NewUser checks name, role and password and returns the user to store, with
// the password hashed at cost (see HashPassword) and CreatedAt = now. It is
// the one place those rules meet, so the CLI and the admin API cannot store a
// user that Login would treat differently.
func NewUser(name string, role Role, password string, cost int, now time.Time) (User, error) {
	if err := ValidUserName(name); err != nil {
		return User{}, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return User{}, err
	}
	h, err := HashPassword(password, cost)
	if err != nil {
		return User{}, err
	}
	gen, err := newGeneration()
	if err != nil {
		return User{}, err
	}
	return User{Name: name, Role: role, PasswordHash: h, CreatedAt: now.UTC(), Generation: gen}, nil
}

// newGeneration returns 16 random bytes in hex: unguessable and never
// repeated, unlike a creation time, which a clock set back could repeat.
func newGeneration() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: generate user generation: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ComponentKind is the kind of a registered long-running component. Kinds are
// closed: each one receives tokens for a known set of routes.
type ComponentKind string

// The component kinds, spelled as Airflow names the components.
const (
	Triggerer    ComponentKind = "triggerer"
	DagProcessor ComponentKind = "dag-processor"
)

// ParseComponentKind accepts exactly "triggerer" or "dag-processor".
func ParseComponentKind(s string) (ComponentKind, error) {
	switch k := ComponentKind(s); k {
	case Triggerer, DagProcessor:
		return k, nil
	}
	return "", fmt.Errorf("auth: unknown component kind %q (triggerer or dag-processor)", s)
}

// Component is a registered long-running component identity. Its tokens carry
// ID as their sub, so deleting the component is what stops a leaked token
// from being renewed.
type Component struct {
	// ID is a UUID in canonical lower-case form, the sub of the
	// component's tokens. Stores look it up byte for byte.
	ID   string        `json:"id"`
	Kind ComponentKind `json:"kind"`
	// Name is unique per kind and follows the user-name rule.
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// RegisteredBy is the REST API user who registered the component, empty
	// when it was registered offline. Removing that user removes the
	// component, so its tokens are no longer renewed.
	RegisteredBy string `json:"registered_by,omitempty"`
}

// NewComponent checks kind and name and returns a component with a fresh
// random (version 4) UUID, CreatedAt = now and RegisteredBy = registeredBy
// (the REST user registering it, or "" offline), ready for
// Store.AddComponent.
func NewComponent(kind ComponentKind, name, registeredBy string, now time.Time) (Component, error) {
	if _, err := ParseComponentKind(string(kind)); err != nil {
		return Component{}, err
	}
	if err := validName("component name", name); err != nil {
		return Component{}, err
	}
	id, err := newUUID()
	if err != nil {
		return Component{}, err
	}
	return Component{ID: id, Kind: kind, Name: name, CreatedAt: now.UTC(), RegisteredBy: registeredBy}, nil
}

// newUUID returns a random version-4 UUID in canonical lower-case form.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: generate id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hexDigits = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexDigits[c>>4], hexDigits[c&0x0f])
	}
	return string(out), nil
}

// Removal is what RemoveUser ended besides the user: the ids of the task
// instances it withdrew and of the components it deleted.
type Removal struct {
	TaskInstances []string
	Components    []string
}

// Store is the storage auth needs; store.DB implements it. Every method that
// writes returns only after the write is durable: a revocation the operator
// was told about must survive a crash.
type Store interface {
	// User returns the user, or an error wrapping ErrNotFound.
	User(ctx context.Context, name string) (*User, error)
	// AddUser stores u, or fails with an error wrapping ErrExists when the
	// name is taken.
	AddUser(ctx context.Context, u User) error
	// RemoveUser removes the user and, in the same durable write, ends
	// what they started that no worker owns: every component whose
	// RegisteredBy is name is deleted, and every task instance they queued
	// that is still queued is withdrawn (workload.Withdraw: moved to
	// removed at now). Running tasks are left alone. It fails with an error
	// wrapping ErrNotFound when there is no such user, writing nothing.
	RemoveUser(ctx context.Context, name string, now time.Time) (Removal, error)
	// Users returns every user sorted by name (byte order); never nil.
	Users(ctx context.Context) ([]User, error)
	// SetPasswordHash replaces the password hash of the user only while it
	// is still old, so that a rehash racing with the removal and re-adding
	// of the user never overwrites the new password; it fails with an error
	// wrapping ErrNotFound when the user does not exist.
	SetPasswordHash(ctx context.Context, name, old, new string) error

	// Revoke records that the token with this jti is revoked until exp. It
	// is idempotent; revoking again keeps the later exp, so a retried
	// revocation never shortens an earlier one.
	Revoke(ctx context.Context, jti string, exp time.Time) error
	// IsRevoked reports whether jti is revoked.
	IsRevoked(ctx context.Context, jti string) (bool, error)
	// Revocations returns every stored revocation, jti → exp; never nil.
	// The gateway loads them once at start (see LoadRevocations).
	Revocations(ctx context.Context) (map[string]time.Time, error)
	// PurgeRevocations deletes the revocations with exp before
	// expiredBefore and returns how many it deleted.
	PurgeRevocations(ctx context.Context, expiredBefore time.Time) (int, error)

	// AddComponent stores c, or fails with an error wrapping ErrExists when
	// its (kind, name) or its id is taken.
	AddComponent(ctx context.Context, c Component) error
	// Component returns the component with this id, or an error wrapping
	// ErrNotFound.
	Component(ctx context.Context, id string) (*Component, error)
	// DeleteComponent removes the component, or fails with an error
	// wrapping ErrNotFound.
	DeleteComponent(ctx context.Context, id string) error
	// Components returns every component sorted by kind, then name; never
	// nil.
	Components(ctx context.Context) ([]Component, error)
}
