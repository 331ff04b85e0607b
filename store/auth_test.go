package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/internal/fakeclock"
	"github.com/taskgate/taskgate/workload"
)

func user(t testing.TB, name string, role auth.Role) auth.User {
	t.Helper()
	u, err := auth.NewUser(name, role, "password-of-"+name, bcrypt.MinCost, t0)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func component(kind auth.ComponentKind, name string, n int) auth.Component {
	return auth.Component{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), Kind: kind, Name: name, CreatedAt: t0}
}

func TestUsers(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	if got, err := db.Users(ctx); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Users of an empty database = %#v, %v; want empty, not nil", got, err)
	}
	if _, err := db.User(ctx, "alice"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("User before add: %v, want auth.ErrNotFound", err)
	}
	alice, bob, carol := user(t, "alice", auth.RoleAdmin), user(t, "bob", auth.RoleViewer), user(t, "Carol", auth.RoleOp)
	for _, u := range []auth.User{bob, alice, carol} {
		if err := db.AddUser(ctx, u); err != nil {
			t.Fatalf("AddUser(%s): %v", u.Name, err)
		}
	}
	got, err := db.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&alice, got); diff != "" {
		t.Errorf("User (-want +got):\n%s", diff)
	}

	// Adding never replaces: the first password stays.
	again := user(t, "alice", auth.RoleViewer)
	if err := db.AddUser(ctx, again); !errors.Is(err, auth.ErrExists) {
		t.Errorf("AddUser of a taken name: %v, want auth.ErrExists", err)
	}
	if got, _ := db.User(ctx, "alice"); got == nil || got.PasswordHash != alice.PasswordHash || got.Role != auth.RoleAdmin {
		t.Errorf("user after a refused add: %+v", got)
	}

	list, err := db.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]auth.User{carol, alice, bob}, list); diff != "" { // byte order: upper case first
		t.Errorf("Users (-want +got):\n%s", diff)
	}

	if _, err := db.RemoveUser(ctx, "alice", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RemoveUser(ctx, "alice", t0); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("second RemoveUser: %v, want auth.ErrNotFound", err)
	}
	if _, err := db.User(ctx, "alice"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("User after delete: %v, want auth.ErrNotFound", err)
	}
	if err := db.AddUser(ctx, again); err != nil {
		t.Errorf("AddUser after delete: %v", err)
	}

	for _, name := range []string{"", string(make([]byte, bolt.MaxKeySize+1))} {
		if err := db.AddUser(ctx, auth.User{Name: name}); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("AddUser(%d-byte name): %v, want ErrInvalidKey", len(name), err)
		}
		if _, err := db.RemoveUser(ctx, name, t0); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("RemoveUser(%d-byte name): %v, want ErrInvalidKey", len(name), err)
		}
	}
}

// storedRevocation reads the exp stored for jti.
func storedRevocation(t *testing.T, db *DB, jti string) (time.Time, bool) {
	t.Helper()
	var r *revocation
	err := db.view(context.Background(), func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketRevocations).Get([]byte(jti))
		if data == nil {
			return nil
		}
		r = new(revocation)
		return decodeJSON("revocation", data, r)
	})
	if err != nil {
		t.Fatal(err)
	}
	if r == nil {
		return time.Time{}, false
	}
	return r.Exp, true
}

func TestRevocations(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	isRevoked := func(jti string) bool {
		t.Helper()
		ok, err := db.IsRevoked(ctx, jti)
		if err != nil {
			t.Fatalf("IsRevoked(%s): %v", jti, err)
		}
		return ok
	}
	if isRevoked("j1") {
		t.Error("j1 revoked before Revoke")
	}
	exp := t0.Add(time.Hour)
	if err := db.Revoke(ctx, "j1", exp.In(time.FixedZone("x", 3600))); err != nil {
		t.Fatal(err)
	}
	if !isRevoked("j1") || isRevoked("j2") {
		t.Errorf("after Revoke(j1): j1 %v, j2 %v", isRevoked("j1"), isRevoked("j2"))
	}

	for _, tt := range []struct {
		name    string
		exp     time.Time
		wantExp time.Time
	}{
		{"same exp again", exp, exp},
		{"earlier exp keeps the later", exp.Add(-30 * time.Minute), exp},
		{"later exp extends", exp.Add(time.Hour), exp.Add(time.Hour)},
		{"earlier again keeps the extension", exp, exp.Add(time.Hour)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.Revoke(ctx, "j1", tt.exp); err != nil {
				t.Fatal(err)
			}
			got, ok := storedRevocation(t, db, "j1")
			if !ok || !got.Equal(tt.wantExp) {
				t.Errorf("stored exp %s (%v), want %s", got, ok, tt.wantExp)
			}
			if got.Location() != time.UTC {
				t.Errorf("stored exp in %s, want UTC", got.Location())
			}
		})
	}

	for _, jti := range []string{"", string(make([]byte, bolt.MaxKeySize+1))} {
		if _, err := db.IsRevoked(ctx, jti); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("IsRevoked(%d-byte jti): %v, want ErrInvalidKey", len(jti), err)
		}
		if err := db.Revoke(ctx, jti, exp); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Revoke(%d-byte jti): %v, want ErrInvalidKey", len(jti), err)
		}
	}
}

func TestPurgeRevocations(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	if n, err := db.PurgeRevocations(ctx, t0); err != nil || n != 0 {
		t.Fatalf("purge of nothing: %d, %v", n, err)
	}
	exps := map[string]time.Time{
		"a": t0.Add(-time.Hour),
		"b": t0.Add(-time.Nanosecond),
		"c": t0, // not before t0: kept
		"d": t0.Add(time.Hour),
	}
	for jti, exp := range exps {
		if err := db.Revoke(ctx, jti, exp); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		before time.Time
		want   int
		left   []string
	}{
		{t0.Add(-2 * time.Hour), 0, []string{"a", "b", "c", "d"}},
		{t0, 2, []string{"c", "d"}},
		{t0, 0, []string{"c", "d"}},
		{t0.Add(time.Hour + 1), 2, nil},
	}
	for i, tt := range tests {
		n, err := db.PurgeRevocations(ctx, tt.before)
		if err != nil || n != tt.want {
			t.Fatalf("purge %d: %d, %v; want %d", i, n, err, tt.want)
		}
		var left []string
		for _, jti := range []string{"a", "b", "c", "d"} {
			if ok, err := db.IsRevoked(ctx, jti); err != nil {
				t.Fatal(err)
			} else if ok {
				left = append(left, jti)
			}
		}
		if diff := cmp.Diff(tt.left, left); diff != "" {
			t.Errorf("revoked after purge %d (-want +got):\n%s", i, diff)
		}
	}
}

func TestComponents(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	if got, err := db.Components(ctx); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Components of an empty database = %#v, %v; want empty, not nil", got, err)
	}
	trig2 := component(auth.Triggerer, "trig-2", 1)
	trig1 := component(auth.Triggerer, "trig-1", 2)
	proc := component(auth.DagProcessor, "trig-1", 3) // same name, other kind
	for _, c := range []auth.Component{trig2, trig1, proc} {
		if err := db.AddComponent(ctx, c); err != nil {
			t.Fatalf("AddComponent(%s %s): %v", c.Kind, c.Name, err)
		}
	}
	got, err := db.Component(ctx, trig1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&trig1, got); diff != "" {
		t.Errorf("Component (-want +got):\n%s", diff)
	}
	if _, err := db.Component(ctx, "00000000-0000-4000-8000-999999999999"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("Component of an unknown id: %v, want auth.ErrNotFound", err)
	}

	for _, tt := range []struct {
		name string
		c    auth.Component
	}{
		{"kind and name taken", component(auth.Triggerer, "trig-1", 9)},
		{"id taken", component(auth.Triggerer, "trig-9", 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := db.AddComponent(ctx, tt.c); !errors.Is(err, auth.ErrExists) {
				t.Errorf("AddComponent: %v, want auth.ErrExists", err)
			}
		})
	}

	list, err := db.Components(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]auth.Component{proc, trig1, trig2}, list); diff != "" {
		t.Errorf("Components (-want +got):\n%s", diff)
	}

	if err := db.DeleteComponent(ctx, trig1.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteComponent(ctx, trig1.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("second DeleteComponent: %v, want auth.ErrNotFound", err)
	}
	if _, err := db.Component(ctx, trig1.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("Component after delete: %v, want auth.ErrNotFound", err)
	}
	// The name is free again, under a new id.
	renewed := component(auth.Triggerer, "trig-1", 4)
	if err := db.AddComponent(ctx, renewed); err != nil {
		t.Fatalf("AddComponent of a deleted name: %v", err)
	}
	if list, err = db.Components(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]auth.Component{proc, renewed, trig2}, list); diff != "" {
		t.Errorf("Components after re-adding (-want +got):\n%s", diff)
	}

	if err := db.AddComponent(ctx, auth.Component{Kind: auth.Triggerer, Name: "x"}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("AddComponent without id: %v, want ErrInvalidKey", err)
	}
	if err := db.DeleteComponent(ctx, ""); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("DeleteComponent(\"\"): %v, want ErrInvalidKey", err)
	}
}

// TestAddComponentRace: of concurrent adds of one (kind, name), exactly one
// wins, and the index names the winner.
func TestAddComponentRace(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	const n = 32
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = db.AddComponent(ctx, component(auth.Triggerer, "t", i)) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("adds %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, auth.ErrExists):
			t.Errorf("add %d: %v", i, err)
		}
	}
	list, err := db.Components(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]auth.Component{component(auth.Triggerer, "t", winner)}, list); diff != "" {
		t.Errorf("Components (-want +got):\n%s", diff)
	}
}

func TestComponentIndexCorrupt(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketComponentsByName).Put(componentNameKey(auth.Triggerer, "ghost"), []byte("missing-id"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Components(ctx); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Components with a dangling index entry: %v, want ErrCorrupt", err)
	}
}

// TestAuthRecordsSurviveReopen closes and reopens the file.
func TestAuthRecordsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskgate.db")
	opts := Options{BatchDelay: batchDelay}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	alice := user(t, "alice", auth.RoleAdmin)
	trig := component(auth.Triggerer, "trig", 1)
	exp := t0.Add(time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() { errs <- db.AddUser(ctx, alice) })
	wg.Go(func() { errs <- db.AddComponent(ctx, trig) })
	wg.Go(func() { errs <- db.Revoke(ctx, "jti-1", exp) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openAt(t, path, opts)
	users, err := db.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]auth.User{alice}, users); diff != "" {
		t.Errorf("Users after reopen (-want +got):\n%s", diff)
	}
	comps, err := db.Components(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]auth.Component{trig}, comps); diff != "" {
		t.Errorf("Components after reopen (-want +got):\n%s", diff)
	}
	if ok, err := db.IsRevoked(ctx, "jti-1"); err != nil || !ok {
		t.Errorf("IsRevoked after reopen: %v, %v", ok, err)
	}
	if got, ok := storedRevocation(t, db, "jti-1"); !ok || !got.Equal(exp) {
		t.Errorf("revocation exp after reopen: %s, %v", got, ok)
	}
}

// TestOpenAddsAuthBucketsToOlderFile opens a file written before the auth
// buckets existed (schema version 1 without them): reads work even
// read-only, and a read-write Open creates the buckets and keeps the data.
func TestOpenAddsAuthBucketsToOlderFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskgate.db")
	authBuckets := [][]byte{bucketUsers, bucketRevocations, bucketComponents, bucketComponentsByName}

	// An older file: today's layout minus the auth buckets.
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutVariable(ctx, workload.Variable{Key: "k", Value: ptr("v")}); err != nil {
		t.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range authBuckets {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Read-only: the missing buckets read as empty.
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.User(ctx, "alice"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("read-only User: %v, want auth.ErrNotFound", err)
	}
	if ok, err := ro.IsRevoked(ctx, "j"); err != nil || ok {
		t.Errorf("read-only IsRevoked: %v, %v", ok, err)
	}
	if _, err := ro.Component(ctx, "id"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("read-only Component: %v, want auth.ErrNotFound", err)
	}
	if us, err := ro.Users(ctx); err != nil || len(us) != 0 {
		t.Errorf("read-only Users: %v, %v", us, err)
	}
	if cs, err := ro.Components(ctx); err != nil || len(cs) != 0 {
		t.Errorf("read-only Components: %v, %v", cs, err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}

	// Read-write: the buckets are created, the schema version is unchanged.
	db = openAt(t, path, Options{})
	err = db.bolt.View(func(tx *bolt.Tx) error {
		for _, name := range authBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("bucket %s missing", name)
			}
		}
		if v := string(tx.Bucket(bucketMeta).Get(keySchemaVersion)); v != fmt.Sprint(schemaVersion) {
			return fmt.Errorf("schema version %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := db.Variable(ctx, "k"); err != nil || *v.Value != "v" {
		t.Errorf("Variable after upgrade: %v, %v", v, err)
	}
	if err := db.AddUser(ctx, user(t, "alice", auth.RoleOp)); err != nil {
		t.Errorf("AddUser after upgrade: %v", err)
	}
	if err := db.Revoke(ctx, "j", t0); err != nil {
		t.Errorf("Revoke after upgrade: %v", err)
	}
	if err := db.AddComponent(ctx, component(auth.DagProcessor, "p", 1)); err != nil {
		t.Errorf("AddComponent after upgrade: %v", err)
	}
}

func TestAuthClosed(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "taskgate.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.IsRevoked(ctx, "j"); !errors.Is(err, ErrClosed) {
		t.Errorf("IsRevoked after Close: %v, want ErrClosed", err)
	}
	if err := db.Revoke(ctx, "j", t0); !errors.Is(err, ErrClosed) {
		t.Errorf("Revoke after Close: %v, want ErrClosed", err)
	}
}

// BenchmarkIsRevoked is the check every REST request makes: one Get among
// many revocations, for a revoked and an unrevoked jti.
func BenchmarkIsRevoked(b *testing.B) {
	ctx := context.Background()
	db, _ := openTest(b)
	const n = 10000
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := db.Revoke(ctx, fmt.Sprintf("00000000-0000-4000-8000-%012d", i), t0.Add(time.Hour)); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	for _, tt := range []struct {
		name, jti string
		want      bool
	}{
		{"revoked", "00000000-0000-4000-8000-000000004242", true},
		{"not revoked", "6f1c2a9e-3b7d-4c1e-9a2f-8d5b4e7c1a3f", false},
	} {
		b.Run(tt.name+"/serial", func(b *testing.B) {
			for b.Loop() {
				if ok, err := db.IsRevoked(ctx, tt.jti); err != nil || ok != tt.want {
					b.Fatal(ok, err)
				}
			}
		})
		b.Run(tt.name+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if ok, err := db.IsRevoked(ctx, tt.jti); err != nil || ok != tt.want {
						b.Error(ok, err)
						return
					}
				}
			})
		})
	}
}

// TestRemoveUserEndsWhatTheUserStarted: one removal deletes the user's
// components and withdraws the task instances they queued that are still
// queued; running ones, other users' and offline ones stay as they are, and
// all of it survives a reopen.
func TestRemoveUserEndsWhatTheUserStarted(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	for _, name := range []string{"boss", "bossy", "other"} {
		if err := db.AddUser(ctx, user(t, name, auth.RoleAdmin)); err != nil {
			t.Fatal(err)
		}
	}
	queue := func(task, by string) string {
		t.Helper()
		id := fmt.Sprintf("0190e3e4-0000-7000-8000-%012d", len(task)*100+len(by))
		if _, err := workload.Queue(ctx, db, id, workload.QueueRequest{
			DagID: "d", RunID: "r", TaskID: task, MapIndex: -1, QueuedBy: by}, t0); err != nil {
			t.Fatal(err)
		}
		return id
	}
	waiting := queue("waiting", "boss")
	running := queue("running_task", "boss")
	similar := queue("similar", "bossy") // a name that starts like the removed one
	others := queue("others_task", "other")
	offline := queue("offline_task_1", "")
	if _, err := db.UpdateTaskInstance(ctx, running, func(ti *workload.TaskInstance) error {
		_, _, err := workload.EnterRunning(ti, workload.RunRequest{Hostname: "h", PID: 1, StartDate: t0}, t0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	mine, theirs := component(auth.Triggerer, "mine", 1), component(auth.Triggerer, "theirs", 2)
	mine.RegisteredBy, theirs.RegisteredBy = "boss", "other"
	offlineComp := component(auth.DagProcessor, "offline", 3)
	for _, c := range []auth.Component{mine, theirs, offlineComp} {
		if err := db.AddComponent(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	at := t0.Add(time.Hour)
	got, err := db.RemoveUser(ctx, "boss", at)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(auth.Removal{TaskInstances: []string{waiting}, Components: []string{mine.ID}}, got); diff != "" {
		t.Errorf("RemoveUser (-want +got):\n%s", diff)
	}

	db.Close()
	db = openAt(t, path, Options{Now: fakeclock.New(t0).Now})
	want := map[string]workload.State{
		waiting: workload.StateRemoved, running: workload.StateRunning, similar: workload.StateQueued,
		others: workload.StateQueued, offline: workload.StateQueued,
	}
	for id, st := range want {
		ti, err := db.TaskInstance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if ti.State != st {
			t.Errorf("task instance %s (%s) is %s, want %s", id, ti.TaskID, ti.State, st)
		}
		if id == waiting && (ti.EndDate == nil || !ti.EndDate.Equal(at)) {
			t.Errorf("withdrawn task instance end date %v, want %v", ti.EndDate, at)
		}
	}
	comps, err := db.Components(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]auth.Component{offlineComp, theirs}, comps); diff != "" {
		t.Errorf("components after the removal (-want +got):\n%s", diff)
	}
	if _, err := db.User(ctx, "boss"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("User after RemoveUser: %v", err)
	}
	// The component's name is free again.
	again := component(auth.Triggerer, "mine", 4)
	if err := db.AddComponent(ctx, again); err != nil {
		t.Errorf("AddComponent of a removed user's component name: %v", err)
	}
}

func TestRevocationsList(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	if got, err := db.Revocations(ctx); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Revocations of an empty database = %#v, %v; want empty, not nil", got, err)
	}
	for jti, exp := range map[string]time.Time{"a": t0, "b": t0.Add(time.Hour)} {
		if err := db.Revoke(ctx, jti, exp); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]time.Time{"a": t0, "b": t0.Add(time.Hour)}, got); diff != "" {
		t.Errorf("Revocations (-want +got):\n%s", diff)
	}
}

func TestSetPasswordHash(t *testing.T) {
	ctx := context.Background()
	db, path := openTest(t)
	alice := user(t, "alice", auth.RoleAdmin)
	if err := db.AddUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPasswordHash(ctx, "nobody", "a", "b"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("SetPasswordHash of a missing user: %v, want auth.ErrNotFound", err)
	}
	// Not the stored hash any more (re-added, or rehashed meanwhile): no change.
	if err := db.SetPasswordHash(ctx, "alice", "an older hash", "lost"); err != nil {
		t.Fatal(err)
	}
	if u, err := db.User(ctx, "alice"); err != nil || u.PasswordHash != alice.PasswordHash {
		t.Fatalf("after a stale SetPasswordHash: %+v, %v; want the hash unchanged", u, err)
	}
	if err := db.SetPasswordHash(ctx, "alice", alice.PasswordHash, "new hash"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{BatchDelay: batchDelay, Now: fakeclock.New(t0).Now})
	want := alice
	want.PasswordHash = "new hash"
	u, err := db.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, *u); diff != "" {
		t.Errorf("alice after SetPasswordHash and reopening (-want +got):\n%s", diff)
	}
}
