package operator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/scopes"
)

// ----- users

// AddUser implements Service.
func (o *Operations) AddUser(ctx context.Context, name string, role auth.Role, password string) (*auth.User, error) {
	u, err := auth.NewUser(name, role, password, o.cfg.BcryptCost, o.now())
	if err != nil {
		return nil, refuse(ErrInvalid, "", err)
	}
	if err := o.cfg.Identities.AddUser(ctx, u); err != nil {
		return nil, classify(err)
	}
	return &u, nil
}

// Users implements Service.
func (o *Operations) Users(ctx context.Context) ([]auth.User, error) {
	us, err := o.cfg.Identities.Users(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(us, func(a, b auth.User) int { return strings.Compare(a.Name, b.Name) })
	return us, nil
}

// RemoveUser implements Service.
func (o *Operations) RemoveUser(ctx context.Context, name string) (*auth.Removal, error) {
	r, err := o.cfg.Identities.RemoveUser(ctx, name, o.now())
	if err != nil {
		return nil, classify(err)
	}
	return &r, nil
}

// ----- revocations

// MaxJTILen bounds a jti to revoke: taskgate's are 32 characters, and the
// bound keeps a revocation list entry small.
const MaxJTILen = 128

// Revoke implements Service.
func (o *Operations) Revoke(ctx context.Context, jti string, exp *time.Time) error {
	if strings.TrimSpace(jti) == "" || len(jti) > MaxJTILen {
		return refuse(ErrInvalid, "jti", fmt.Errorf("operator: the jti must be 1 to %d characters", MaxJTILen))
	}
	until, err := auth.RevocationUntil(exp, o.now(), o.longest)
	if err != nil {
		return refuse(ErrInvalid, "exp", err)
	}
	return o.cfg.Revoker.Revoke(ctx, jti, until)
}

// ----- components

// RegisterComponent implements Service. The component is stored before
// its token is minted (the token names its id), and removed again when
// minting fails: a registration without a token is of no use to anyone,
// and would keep its name taken.
func (o *Operations) RegisterComponent(ctx context.Context, kind auth.ComponentKind, name string) (*auth.Component, string, error) {
	comp, err := auth.NewComponent(kind, name, ActorFrom(ctx), o.now())
	if err != nil {
		return nil, "", refuse(ErrInvalid, "", err)
	}
	if err := o.cfg.Identities.AddComponent(ctx, comp); err != nil {
		return nil, "", classify(err)
	}
	tok, _, err := o.cfg.Signer.Sign(scopes.ComponentClaims(comp.ID, string(comp.Kind)), o.cfg.ComponentTokenLifetime)
	if err != nil {
		// The request's context may be what failed; the undo must not.
		undo := o.cfg.Identities.DeleteComponent(context.WithoutCancel(ctx), comp.ID)
		return nil, "", errors.Join(fmt.Errorf("operator: mint the token of component %s: %w", comp.ID, err), undo)
	}
	return &comp, tok, nil
}

// Components implements Service.
func (o *Operations) Components(ctx context.Context) ([]auth.Component, error) {
	return o.cfg.Identities.Components(ctx)
}

// RemoveComponent implements Service. An id that is no canonical UUID
// names no component.
func (o *Operations) RemoveComponent(ctx context.Context, id string) error {
	canon, ok := scopes.CanonicalUUID(id)
	if !ok {
		return refuse(ErrNotFound, "", fmt.Errorf("operator: component %q not found", id))
	}
	return classify(o.cfg.Identities.DeleteComponent(ctx, canon))
}
