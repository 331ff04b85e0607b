package operator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taskgate/taskgate/scopes"
)

// DefaultDagProcessorSessionLifetime is the life of a session token minted
// without one: provisioning renews it by minting again before it ends.
const DefaultDagProcessorSessionLifetime = 24 * time.Hour

// DagProcessorSessionRequest asks for a DAG processor's session token.
type DagProcessorSessionRequest struct {
	// SessionID renews the session; "" starts a new one.
	SessionID string `json:"session_id,omitempty"`
	// BundleNames are the DAG bundles the session may parse (at least one).
	BundleNames []string `json:"bundle_names"`
	// ValidFor is the token's life; 0 means
	// DefaultDagProcessorSessionLifetime.
	ValidFor time.Duration `json:"-"`
}

// DagProcessorSession is a minted session token.
type DagProcessorSession struct {
	SessionID string    `json:"session_id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// MintDagProcessorSession implements Service.
func (o *Operations) MintDagProcessorSession(_ context.Context, r DagProcessorSessionRequest) (*DagProcessorSession, error) {
	id := r.SessionID
	if id == "" {
		id = o.cfg.NewID()
	} else if canon, ok := scopes.CanonicalUUID(id); ok {
		id = canon
	} else {
		return nil, refuse(ErrInvalid, "session_id", fmt.Errorf("operator: session id %q is no UUID", r.SessionID))
	}
	if len(r.BundleNames) == 0 {
		return nil, refuse(ErrInvalid, "bundle_names", errors.New("operator: a DAG processor session needs at least one bundle"))
	}
	for _, b := range r.BundleNames {
		if b == "" {
			return nil, refuse(ErrInvalid, "bundle_names", errors.New("operator: a bundle name is empty"))
		}
	}
	life := r.ValidFor
	if life == 0 {
		life = DefaultDagProcessorSessionLifetime
	}
	if life < time.Second {
		return nil, refuse(ErrInvalid, "valid_for", fmt.Errorf("operator: a session token must live at least a second, not %s", life))
	}
	tok, claims, err := o.cfg.Signer.Sign(scopes.DagProcessorSessionClaims(id, r.BundleNames), life)
	if err != nil {
		return nil, fmt.Errorf("operator: mint the token of DAG processor session %s: %w", id, err)
	}
	return &DagProcessorSession{SessionID: id, Token: tok, ExpiresAt: claims.ExpiresAt}, nil
}
