package operator_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/operator"
	"github.com/taskgate/taskgate/scopes"
	"github.com/taskgate/taskgate/store"
	"github.com/taskgate/taskgate/workload"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

const (
	workloadLife  = time.Hour
	componentLife = 10 * time.Minute
	cliLife       = 2 * time.Hour
	longestLife   = 24 * time.Hour
)

// fakeSigner names each token after the claims it was asked to sign, and
// fails when fail says so.
type fakeSigner struct {
	signed []*scopes.Claims
	fail   func(c *scopes.Claims) bool
}

func (s *fakeSigner) Sign(base *scopes.Claims, life time.Duration) (string, *scopes.Claims, error) {
	if s.fail != nil && s.fail(base) {
		return "", nil, errors.New("sign: key unavailable")
	}
	s.signed = append(s.signed, base)
	c := *base
	c.ID = fmt.Sprintf("jti%d", len(s.signed))
	c.IssuedAt, c.ExpiresAt = t0, t0.Add(life)
	return fmt.Sprintf("tok.%s.%s.%s", base.Scope, base.Subject, life), &c, nil
}

type fixture struct {
	ops    *operator.Operations
	db     *store.DB
	signer *fakeSigner
}

// newFixture opens a real store in a temporary directory, seeded with a
// variable, a connection with a password, an admin and a queued task
// instance etl/r1/t.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "taskgate.db"), store.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{db: db, signer: &fakeSigner{}}
	ids := 0
	f.ops, err = operator.New(operator.Config{
		Store: db, Identities: db, Revoker: db, Signer: f.signer, Keys: noKeys{},
		WorkloadTokenLifetime: workloadLife, ComponentTokenLifetime: componentLife,
		APITokenLifetime: longestLife, CLITokenLifetime: cliLife,
		BcryptCost: bcrypt.MinCost,
		NewID:      func() string { ids++; return fmt.Sprintf("0190e3e4-0000-7000-8000-%012x", ids) },
		Now:        func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	secret := "secret"
	must(t, db.PutVariable(ctx, workload.Variable{Key: "seeded", Value: ptr("v")}))
	must(t, db.PutConnection(ctx, workload.Connection{ConnID: "seeded", ConnType: "http", Password: &secret}))
	_, err = f.ops.AddUser(ctx, "ada", auth.RoleAdmin, "password-ada")
	must(t, err)
	_, err = f.ops.QueueWorkload(ctx, workload.QueueRequest{DagID: "etl", RunID: "r1", TaskID: "t", MapIndex: -1})
	must(t, err)
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestOperations: each use case's outcome and refusal kind, on a real
// store.
func TestOperations(t *testing.T) {
	past, soon := t0.Add(-time.Hour), t0.Add(time.Minute)
	tests := []struct {
		name string
		do   func(ctx context.Context, o *operator.Operations) error
		// want is nil or the kind of refusal (ErrNotFound, ErrExists,
		// ErrInvalid); check, when set, looks at the store afterwards.
		want  error
		check func(t *testing.T, f *fixture)
	}{
		{name: "put variable creates", do: func(ctx context.Context, o *operator.Operations) error {
			return o.PutVariable(ctx, workload.Variable{Key: "k", Value: ptr("1")})
		}},
		{name: "put variable replaces", do: func(ctx context.Context, o *operator.Operations) error {
			return o.PutVariable(ctx, workload.Variable{Key: "seeded", Value: ptr("2")})
		}},
		{name: "create variable taken", want: operator.ErrExists, do: func(ctx context.Context, o *operator.Operations) error {
			return o.CreateVariable(ctx, workload.Variable{Key: "seeded", Value: ptr("2")})
		}},
		{name: "create variable empty key", want: operator.ErrInvalid, do: func(ctx context.Context, o *operator.Operations) error {
			return o.CreateVariable(ctx, workload.Variable{Value: ptr("2")})
		}},
		{name: "update variable missing", want: operator.ErrNotFound, do: func(ctx context.Context, o *operator.Operations) error {
			return o.UpdateVariable(ctx, workload.Variable{Key: "none", Value: ptr("2")})
		}},
		{name: "get variable missing", want: operator.ErrNotFound, do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.Variable(ctx, "none")
			return err
		}},
		{name: "delete variable", do: func(ctx context.Context, o *operator.Operations) error {
			return o.DeleteVariable(ctx, "seeded")
		}, check: func(t *testing.T, f *fixture) {
			if _, err := f.db.Variable(context.Background(), "seeded"); !errors.Is(err, workload.ErrNotFound) {
				t.Errorf("deleted variable: %v", err)
			}
		}},
		{name: "delete variable missing", want: operator.ErrNotFound, do: func(ctx context.Context, o *operator.Operations) error {
			return o.DeleteVariable(ctx, "none")
		}},
		{name: "connection is redacted", do: func(ctx context.Context, o *operator.Operations) error {
			c, err := o.Connection(ctx, "seeded")
			if err == nil && (c.Password == nil || *c.Password != operator.RedactedPassword) {
				err = fmt.Errorf("password %v, want redacted", c.Password)
			}
			return err
		}},
		{name: "connections are redacted", do: func(ctx context.Context, o *operator.Operations) error {
			cs, err := o.Connections(ctx)
			if err == nil && (len(cs) != 1 || *cs[0].Password != operator.RedactedPassword) {
				err = fmt.Errorf("connections %+v, want one, redacted", cs)
			}
			return err
		}},
		{name: "update connection keeps a redacted password", do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.UpdateConnection(ctx, workload.Connection{ConnID: "seeded", ConnType: "pg", Password: ptr("***")})
			return err
		}, check: wantPassword("seeded", "secret")},
		{name: "put connection keeps a redacted password", do: func(ctx context.Context, o *operator.Operations) error {
			return o.PutConnection(ctx, workload.Connection{ConnID: "seeded", ConnType: "pg", Password: ptr("***")})
		}, check: wantPassword("seeded", "secret")},
		{name: "update connection replaces the password", do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.UpdateConnection(ctx, workload.Connection{ConnID: "seeded", ConnType: "pg", Password: ptr("new")})
			return err
		}, check: wantPassword("seeded", "new")},
		{name: "update connection missing", want: operator.ErrNotFound, do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.UpdateConnection(ctx, workload.Connection{ConnID: "none", ConnType: "pg"})
			return err
		}},
		{name: "create connection taken", want: operator.ErrExists, do: func(ctx context.Context, o *operator.Operations) error {
			return o.CreateConnection(ctx, workload.Connection{ConnID: "seeded", ConnType: "pg"})
		}},
		{name: "create connection without type", want: operator.ErrInvalid, do: func(ctx context.Context, o *operator.Operations) error {
			return o.CreateConnection(ctx, workload.Connection{ConnID: "c"})
		}},
		{name: "delete connection missing", want: operator.ErrNotFound, do: func(ctx context.Context, o *operator.Operations) error {
			return o.DeleteConnection(ctx, "none")
		}},
		{name: "queue twice", want: operator.ErrExists, do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.QueueWorkload(ctx, workload.QueueRequest{DagID: "etl", RunID: "r1", TaskID: "t", MapIndex: -1})
			return err
		}},
		{name: "queue invalid", want: operator.ErrInvalid, do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.QueueWorkload(ctx, workload.QueueRequest{DagID: "etl", MapIndex: -1})
			return err
		}},
		{name: "mark", do: func(ctx context.Context, o *operator.Operations) error {
			ti, err := o.MarkTaskInstance(ctx, "etl", "r1", "t", -1, workload.StateFailed)
			if err == nil && (ti.State != workload.StateFailed || ti.EndDate == nil || !ti.EndDate.Equal(t0)) {
				err = fmt.Errorf("marked %s ended %v", ti.State, ti.EndDate)
			}
			return err
		}},
		{name: "mark missing", want: operator.ErrNotFound, do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.MarkTaskInstance(ctx, "etl", "r1", "t", 3, workload.StateFailed)
			return err
		}},
		{name: "mark with an empty coordinate", want: operator.ErrNotFound, do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.MarkTaskInstance(ctx, "etl", "", "t", -1, workload.StateFailed)
			return err
		}},
		{name: "mark queued", want: operator.ErrInvalid, do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.MarkTaskInstance(ctx, "etl", "r1", "t", -1, workload.StateQueued)
			return err
		}},
		{name: "add user taken", want: operator.ErrExists, do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.AddUser(ctx, "ada", auth.RoleOp, "password-other")
			return err
		}},
		{name: "add user short password", want: operator.ErrInvalid, do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.AddUser(ctx, "bob", auth.RoleOp, "short")
			return err
		}},
		{name: "remove user", do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.RemoveUser(ctx, "ada")
			return err
		}},
		{name: "remove user missing", want: operator.ErrNotFound, do: func(ctx context.Context, o *operator.Operations) error {
			_, err := o.RemoveUser(ctx, "nobody")
			return err
		}},
		{name: "revoke without exp", do: func(ctx context.Context, o *operator.Operations) error {
			return o.Revoke(ctx, "jti-a", nil)
		}, check: wantRevoked("jti-a", t0.Add(longestLife))},
		{name: "revoke until exp", do: func(ctx context.Context, o *operator.Operations) error {
			return o.Revoke(ctx, "jti-a", &soon)
		}, check: wantRevoked("jti-a", soon)},
		{name: "revoke exp in the past", want: operator.ErrInvalid, do: func(ctx context.Context, o *operator.Operations) error {
			return o.Revoke(ctx, "jti-a", &past)
		}, check: wantRevoked("jti-a", time.Time{})},
		{name: "revoke empty jti", want: operator.ErrInvalid, do: func(ctx context.Context, o *operator.Operations) error {
			return o.Revoke(ctx, " ", nil)
		}},
		{name: "register component", do: func(ctx context.Context, o *operator.Operations) error {
			_, _, err := o.RegisterComponent(ctx, auth.Triggerer, "trig")
			return err
		}},
		{name: "register component unknown kind", want: operator.ErrInvalid, do: func(ctx context.Context, o *operator.Operations) error {
			_, _, err := o.RegisterComponent(ctx, "scheduler", "s")
			return err
		}},
		{name: "register component twice", want: operator.ErrExists, do: func(ctx context.Context, o *operator.Operations) error {
			if _, _, err := o.RegisterComponent(ctx, auth.Triggerer, "trig"); err != nil {
				return err
			}
			_, _, err := o.RegisterComponent(ctx, auth.Triggerer, "trig")
			return err
		}},
		{name: "remove component not a uuid", want: operator.ErrNotFound, do: func(ctx context.Context, o *operator.Operations) error {
			return o.RemoveComponent(ctx, "trig")
		}},
		{name: "remove component missing", want: operator.ErrNotFound, do: func(ctx context.Context, o *operator.Operations) error {
			return o.RemoveComponent(ctx, "0190e3e4-0000-7000-8000-00000000ffff")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			err := tt.do(context.Background(), f.ops)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			var oerr *operator.Error
			if err != nil && !errors.As(err, &oerr) {
				t.Errorf("refusal %v is no *operator.Error", err)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

func wantPassword(id, want string) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		c, err := f.db.Connection(context.Background(), id)
		if err != nil || c.Password == nil || *c.Password != want {
			t.Errorf("stored connection %+v, %v; want password %q", c, err, want)
		}
	}
}

// wantRevoked checks the stored revocations: jti until until, or none
// at all for a zero until.
func wantRevoked(jti string, until time.Time) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		t.Helper()
		got, err := f.db.Revocations(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]time.Time{}
		if !until.IsZero() {
			want[jti] = until
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("revocations (-want +got):\n%s", diff)
		}
	}
}

// TestRevokeExpInThePastIsTheRulesRefusal: the refusal carries the
// rule's own error, so every transport can say why.
func TestRevokeExpInThePastIsTheRulesRefusal(t *testing.T) {
	f := newFixture(t)
	past := t0.Add(-time.Hour)
	err := f.ops.Revoke(context.Background(), "jti-a", &past)
	var oerr *operator.Error
	if !errors.Is(err, auth.ErrRevocationExpired) || !errors.As(err, &oerr) || oerr.Field != "exp" {
		t.Fatalf("Revoke(exp an hour ago) = %v; want an ErrInvalid about exp wrapping auth.ErrRevocationExpired", err)
	}
}

// TestTokensCarryTheirKindsClaims: a queued workload's token and a
// component's are signed from scopes' constructors, and record who acted.
func TestTokensCarryTheirKindsClaims(t *testing.T) {
	f := newFixture(t)
	ctx := operator.WithActor(context.Background(), "ada")
	w, err := f.ops.QueueWorkload(ctx, workload.QueueRequest{DagID: "etl", RunID: "r2", TaskID: "t", MapIndex: -1})
	must(t, err)
	comp, _, err := f.ops.RegisterComponent(ctx, auth.DagProcessor, "dp")
	must(t, err)
	want := []*scopes.Claims{
		scopes.WorkloadClaims(w.TI.ID),
		scopes.ComponentClaims(comp.ID, string(auth.DagProcessor)),
	}
	if diff := cmp.Diff(want, f.signer.signed[1:]); diff != "" {
		t.Errorf("signed claims (-want +got):\n%s", diff)
	}
	if w.Token != "tok.workload."+w.TI.ID+"."+workloadLife.String() {
		t.Errorf("workload token %q", w.Token)
	}
	ti, err := f.db.TaskInstance(context.Background(), w.TI.ID)
	if err != nil || ti.QueuedBy != "ada" || comp.RegisteredBy != "ada" {
		t.Errorf("queued by %q (%v), registered by %q; want ada", ti.QueuedBy, err, comp.RegisteredBy)
	}
}

// TestRegisterComponentUnsignedLeavesNothing: a registration whose token
// cannot be signed is undone, and the name stays free.
func TestRegisterComponentUnsignedLeavesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.signer.fail = func(c *scopes.Claims) bool { return c.Component() != "" }
	if _, _, err := f.ops.RegisterComponent(ctx, auth.Triggerer, "trig"); err == nil {
		t.Fatal("registration without a token succeeded")
	}
	cs, err := f.db.Components(ctx)
	if err != nil || len(cs) != 0 {
		t.Fatalf("components after a failed registration = %+v, %v; want none", cs, err)
	}
	f.signer.fail = nil
	if _, _, err := f.ops.RegisterComponent(ctx, auth.Triggerer, "trig"); err != nil {
		t.Errorf("registering the name again: %v", err)
	}
}

func TestNewRefusesMissingDependencies(t *testing.T) {
	if _, err := operator.New(operator.Config{}); err == nil {
		t.Error("New without dependencies succeeded")
	}
}

// noKeys is a key manager with one key that never changes: Operations only
// passes key requests on (tokens.Manager holds their rules).
type noKeys struct{}

func (noKeys) Keys(context.Context) ([]operator.SigningKey, error) {
	return []operator.SigningKey{{KID: "k", Active: true}}, nil
}
func (noKeys) RotateKey(context.Context) ([]operator.SigningKey, error) {
	return nil, errors.New("fixed")
}
func (noKeys) RetireKey(context.Context, string, bool) ([]operator.SigningKey, error) {
	return nil, errors.New("fixed")
}
