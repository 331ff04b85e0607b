package operator

import (
	"context"
	"time"
)

// SigningKey describes one key of the signing key set; it holds no key
// material. The active key signs; the others only verify, each until its
// RetireAfter, when the last token it signed has expired.
type SigningKey struct {
	KID         string     `json:"kid"`
	Algorithm   string     `json:"alg"`
	Active      bool       `json:"active"`
	Created     time.Time  `json:"created"`
	Replaced    *time.Time `json:"replaced,omitempty"`
	RetireAfter *time.Time `json:"retire_after,omitempty"`
}

// KeyManager changes the signing key set (tokens.Manager, adapted where
// the server is wired). Its refusals are *Error values: ErrNotFound for an
// unknown kid, ErrInvalid for a key that may not be retired.
type KeyManager interface {
	Keys(ctx context.Context) ([]SigningKey, error)
	RotateKey(ctx context.Context) ([]SigningKey, error)
	RetireKey(ctx context.Context, kid string, force bool) ([]SigningKey, error)
}

// Keys implements Service.
func (o *Operations) Keys(ctx context.Context) ([]SigningKey, error) { return o.cfg.Keys.Keys(ctx) }

// RotateKey implements Service.
func (o *Operations) RotateKey(ctx context.Context) ([]SigningKey, error) {
	return o.cfg.Keys.RotateKey(ctx)
}

// RetireKey implements Service.
func (o *Operations) RetireKey(ctx context.Context, kid string, force bool) ([]SigningKey, error) {
	return o.cfg.Keys.RetireKey(ctx, kid, force)
}
