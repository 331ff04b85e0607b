package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/operator"
)

// fakeKeys is a key set of names only: the rules of rotation and retirement
// are tokens.KeySet's, tested there; here only their transport is.
type fakeKeys struct {
	now  func() time.Time
	keys []operator.SigningKey
	n    int
}

func newFakeKeys(now func() time.Time) *fakeKeys {
	return &fakeKeys{now: now, keys: []operator.SigningKey{{KID: "k0", Algorithm: "EdDSA", Active: true, Created: now()}}}
}

func (f *fakeKeys) Keys(context.Context) ([]operator.SigningKey, error) { return f.keys, nil }

func (f *fakeKeys) RotateKey(context.Context) ([]operator.SigningKey, error) {
	f.n++
	now := f.now()
	after := now.Add(time.Hour)
	f.keys[0].Active, f.keys[0].Replaced, f.keys[0].RetireAfter = false, &now, &after
	f.keys = append([]operator.SigningKey{{KID: fmt.Sprintf("k%d", f.n), Algorithm: "EdDSA", Active: true, Created: now}}, f.keys...)
	return f.keys, nil
}

func (f *fakeKeys) RetireKey(_ context.Context, kid string, force bool) ([]operator.SigningKey, error) {
	for i, k := range f.keys {
		switch {
		case k.KID != kid:
			continue
		case k.Active:
			return nil, &operator.Error{Kind: operator.ErrInvalid, Err: fmt.Errorf("the active key cannot be retired")}
		case !force && f.now().Before(*k.RetireAfter):
			return nil, &operator.Error{Kind: operator.ErrInvalid, Err: fmt.Errorf("key %s may still verify live tokens", kid)}
		}
		f.keys = append(f.keys[:i:i], f.keys[i+1:]...)
		return f.keys, nil
	}
	return nil, &operator.Error{Kind: operator.ErrNotFound, Err: fmt.Errorf("no key %q", kid)}
}

func (f *fakeKeys) JWKS() []byte {
	var b strings.Builder
	b.WriteString(`{"keys":[`)
	for i, k := range f.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"kid":%q}`, k.KID)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// TestAdminKeys: the key routes' statuses and bodies, and that only admin
// reaches them while the JWKS is public.
func TestAdminKeys(t *testing.T) {
	h := newHarness(t)
	h.addUser("root", auth.RoleAdmin)
	h.addUser("op", auth.RoleOp)
	admin, op := h.login("root"), h.login("op")

	if r := h.do(http.MethodPost, "/api/v2/keys/rotate", op, ""); r.status != http.StatusForbidden {
		t.Fatalf("op rotated: %d %s", r.status, r.body)
	}
	r := h.do(http.MethodPost, "/api/v2/keys/rotate", admin, "")
	if r.status != http.StatusOK || !strings.Contains(r.body, `"kid":"k1","alg":"EdDSA","active":true`) ||
		!strings.Contains(r.body, `"total_entries":2`) || !strings.Contains(r.body, `"retire_after"`) {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		path   string
		status int
		detail string
	}{
		{"/api/v2/keys/k1", http.StatusBadRequest, "the active key cannot be retired"},
		{"/api/v2/keys/k0", http.StatusBadRequest, "may still verify live tokens"},
		{"/api/v2/keys/nope", http.StatusNotFound, `no key \"nope\"`},
		{"/api/v2/keys/k0?force=maybe", http.StatusUnprocessableEntity, "bool_parsing"},
		{"/api/v2/keys/k0?force=true", http.StatusOK, `"total_entries":1`},
	} {
		if r := h.do(http.MethodDelete, tc.path, admin, ""); r.status != tc.status || !strings.Contains(r.body, tc.detail) {
			t.Errorf("DELETE %s: %d %s, want %d with %q", tc.path, r.status, r.body, tc.status, tc.detail)
		}
	}
	if r := h.do(http.MethodGet, "/api/v2/keys", admin, ""); r.status != http.StatusOK || !strings.Contains(r.body, `"keys":[{"kid":"k1"`) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if r := h.do(http.MethodGet, "/execution/.well-known/jwks.json", "", ""); r.status != http.StatusOK || r.body != `{"keys":[{"kid":"k1"}]}` {
		t.Fatalf("jwks: %d %s", r.status, r.body)
	}
}
