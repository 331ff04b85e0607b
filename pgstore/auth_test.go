package pgstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/auth"
	"github.com/taskgate/taskgate/internal/pgtest"
)

// tryTable is the part of taskgate's migration 2 (the try-side table)
// that RemoveUser reads; IF NOT EXISTS, so that it is a no-op where the
// migration made it.
const tryTable = `CREATE TABLE IF NOT EXISTS taskgate.try (ti_id uuid PRIMARY KEY, queued_by text NOT NULL DEFAULT '')`

// newAuthDB opens a store on a fresh database holding Airflow's schema and
// returns it with fixtures on that database.
func newAuthDB(t *testing.T) (*DB, *pgtest.Airflow) {
	t.Helper()
	af := pgtest.NewAirflowFixtures(t)
	db := openDB(t, af.URL)
	pgtest.Exec(t, af.URL, tryTable)
	return db, af
}

func openDB(t *testing.T, u string) *DB {
	t.Helper()
	db, err := Open(context.Background(), Options{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestUsers(t *testing.T) {
	db, _ := newAuthDB(t)
	ctx := context.Background()
	alice := auth.User{Name: "alice", Role: auth.RoleAdmin, PasswordHash: "$2a$04$h1", CreatedAt: t0, Generation: "g1"}
	bob := auth.User{Name: "Bob", Role: auth.RoleViewer, PasswordHash: "$2a$04$h2", CreatedAt: t0.Add(time.Second)}
	for _, u := range []auth.User{alice, bob} {
		if err := db.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"add taken", func() error { return db.AddUser(ctx, alice) }, auth.ErrExists},
		{"user missing", func() error { _, err := db.User(ctx, "carol"); return err }, auth.ErrNotFound},
		{"user case-sensitive", func() error { _, err := db.User(ctx, "Alice"); return err }, auth.ErrNotFound},
		{"set password missing", func() error { return db.SetPasswordHash(ctx, "carol", "a", "b") }, auth.ErrNotFound},
		{"remove missing", func() error { _, err := db.RemoveUser(ctx, "carol", t0); return err }, auth.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	got, err := db.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&alice, got); diff != "" {
		t.Errorf("User(alice) (-want +got):\n%s", diff)
	}
	all, err := db.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]auth.User{bob, alice}, all); diff != "" { // byte order: "B" < "a"
		t.Errorf("Users (-want +got):\n%s", diff)
	}

	// The swap happens only while the hash is still the old one.
	if err := db.SetPasswordHash(ctx, "alice", "stale", "$2a$04$x"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPasswordHash(ctx, "alice", alice.PasswordHash, "$2a$04$new"); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.User(ctx, "alice"); got == nil || got.PasswordHash != "$2a$04$new" {
		t.Errorf("after SetPasswordHash: %+v, want hash $2a$04$new", got)
	}
}

func TestUsersEmpty(t *testing.T) {
	db, _ := newAuthDB(t)
	ctx := context.Background()
	users, err := db.Users(ctx)
	if err != nil || users == nil || len(users) != 0 {
		t.Errorf("Users = %#v, %v; want empty non-nil", users, err)
	}
	comps, err := db.Components(ctx)
	if err != nil || comps == nil || len(comps) != 0 {
		t.Errorf("Components = %#v, %v; want empty non-nil", comps, err)
	}
}

func TestComponents(t *testing.T) {
	db, _ := newAuthDB(t)
	ctx := context.Background()
	trig := auth.Component{ID: "3f0e4d1c-0000-4000-8000-000000000001", Kind: auth.Triggerer, Name: "t1", CreatedAt: t0, RegisteredBy: "alice"}
	proc := auth.Component{ID: "3f0e4d1c-0000-4000-8000-000000000002", Kind: auth.DagProcessor, Name: "p1", CreatedAt: t0}
	for _, c := range []auth.Component{trig, proc} {
		if err := db.AddComponent(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		do      func() error
		want    error
		message string
	}{
		{"same kind and name", func() error {
			c := trig
			c.ID = "3f0e4d1c-0000-4000-8000-000000000009"
			return db.AddComponent(ctx, c)
		}, auth.ErrExists, "component triggerer t1"},
		{"same id", func() error {
			c := trig
			c.Name = "t2"
			return db.AddComponent(ctx, c)
		}, auth.ErrExists, "component id " + trig.ID},
		{"missing", func() error { _, err := db.Component(ctx, "nope"); return err }, auth.ErrNotFound, "component nope"},
		{"id compared byte for byte", func() error { _, err := db.Component(ctx, strings.ToUpper(trig.ID)); return err }, auth.ErrNotFound, ""},
		{"delete missing", func() error { return db.DeleteComponent(ctx, "nope") }, auth.ErrNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("got %v, want %v saying %q", err, tc.want, tc.message)
			}
		})
	}
	got, err := db.Component(ctx, trig.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&trig, got); diff != "" {
		t.Errorf("Component (-want +got):\n%s", diff)
	}
	all, err := db.Components(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]auth.Component{proc, trig}, all); diff != "" { // by kind: dag-processor < triggerer
		t.Errorf("Components (-want +got):\n%s", diff)
	}
	if err := db.DeleteComponent(ctx, proc.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Component(ctx, proc.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("after delete: %v, want ErrNotFound", err)
	}
}

// TestRemoveUser: removing a user deletes the components they registered
// and withdraws the task instances they queued that are still queued, in
// one transaction; everything else is left alone.
func TestRemoveUser(t *testing.T) {
	db, af := newAuthDB(t)
	u := af.URL
	ctx := context.Background()
	ti := func(taskID, state string) string {
		return af.TaskInstance(t, pgtest.TaskInstanceRow{RunID: "r", TaskID: taskID, State: state}).ID
	}
	queued, queued2, running, other, noTry := ti("a", "queued"), ti("b", "queued"), ti("c", "running"), ti("d", "queued"), ti("e", "queued")
	if queued2 < queued {
		queued, queued2 = queued2, queued
	}
	pgtest.Exec(t, u, `INSERT INTO taskgate.try (ti_id, queued_by) VALUES
		('`+queued2+`', 'alice'), ('`+queued+`', 'alice'), ('`+running+`', 'alice'), ('`+other+`', 'bob')`)
	for _, name := range []string{"alice", "bob"} {
		if err := db.AddUser(ctx, auth.User{Name: name, Role: auth.RoleOp, PasswordHash: "h", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	comps := []auth.Component{
		{ID: "c2", Kind: auth.Triggerer, Name: "t2", CreatedAt: t0, RegisteredBy: "alice"},
		{ID: "c1", Kind: auth.Triggerer, Name: "t1", CreatedAt: t0, RegisteredBy: "alice"},
		{ID: "c3", Kind: auth.Triggerer, Name: "t3", CreatedAt: t0, RegisteredBy: "bob"},
		{ID: "c4", Kind: auth.DagProcessor, Name: "p", CreatedAt: t0},
	}
	for _, c := range comps {
		if err := db.AddComponent(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	now := t0.Add(time.Hour)
	got, err := db.RemoveUser(ctx, "alice", now)
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Removal{TaskInstances: []string{queued, queued2}, Components: []string{"c1", "c2"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Removal (-want +got):\n%s", diff)
	}
	type row struct {
		ID, State string
		EndDate   *time.Time
	}
	rows, err := db.pool.Query(ctx, `SELECT id::text, state, end_date FROM task_instance ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var states []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.ID, &r.State, &r.EndDate); err != nil {
			t.Fatal(err)
		}
		if r.EndDate != nil {
			utc := r.EndDate.UTC()
			r.EndDate = &utc
		}
		states = append(states, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	wantStates := []row{
		{queued, "removed", &now}, {queued2, "removed", &now}, {running, "running", nil},
		{other, "queued", nil}, {noTry, "queued", nil},
	}
	slices.SortFunc(wantStates, func(a, b row) int { return strings.Compare(a.ID, b.ID) })
	if diff := cmp.Diff(wantStates, states); diff != "" {
		t.Errorf("task_instance (-want +got):\n%s", diff)
	}
	left, err := db.Components(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]auth.Component{comps[3], comps[2]}, left); diff != "" {
		t.Errorf("components left (-want +got):\n%s", diff)
	}
	if _, err := db.User(ctx, "alice"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("User(alice) after removal: %v, want ErrNotFound", err)
	}
	// Removing again writes nothing.
	if _, err := db.RemoveUser(ctx, "alice", now); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("second RemoveUser: %v, want ErrNotFound", err)
	}
}

func TestRevocations(t *testing.T) {
	db, af := newAuthDB(t)
	u := af.URL
	ctx := context.Background()
	// A row Airflow's api-server wrote for one of its own tokens.
	pgtest.Exec(t, u, `INSERT INTO revoked_token (jti, exp) VALUES ('0123456789abcdef0123456789abcdef', '2026-03-01 13:00:00+00')`)
	airflowExp := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		jti  string
		exp  time.Time
	}{
		{"new", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t0},
		{"later exp wins", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t0.Add(time.Hour)},
		{"earlier exp keeps the later", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", t0},
		{"expired", "bbbb", t0.Add(-time.Hour)},
	} {
		if err := db.Revoke(ctx, tc.jti, tc.exp); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	// A jti wider than Airflow's column (a token minted elsewhere).
	long := strings.Repeat("L", 100)
	if err := db.Revoke(ctx, long, t0.Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.Revoke(ctx, "", t0); err == nil {
		t.Error("Revoke of an empty jti succeeded, want an error")
	}
	got, err := db.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{
		"0123456789abcdef0123456789abcdef": airflowExp,
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": t0.Add(time.Hour),
		"bbbb":                             t0.Add(-time.Hour),
		long:                               t0.Add(-2 * time.Hour),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Revocations (-want +got):\n%s", diff)
	}
	for jti, want := range map[string]bool{"bbbb": true, "cccc": false, "0123456789abcdef0123456789abcdef": true, long: true, long + "x": false} {
		if got, err := db.IsRevoked(ctx, jti); err != nil || got != want {
			t.Errorf("IsRevoked(%s) = %v, %v; want %v", jti, got, err, want)
		}
	}
	n, err := db.PurgeRevocations(ctx, t0)
	if err != nil || n != 2 {
		t.Errorf("PurgeRevocations = %d, %v; want 2", n, err)
	}
	for _, jti := range []string{"bbbb", long} {
		if got, _ := db.IsRevoked(ctx, jti); got {
			t.Errorf("%s still revoked after the purge", jti)
		}
	}
}

// TestPurgeRevocationsInBatches: a backlog larger than one batch is purged
// whole.
func TestPurgeRevocationsInBatches(t *testing.T) {
	db, af := newAuthDB(t)
	pgtest.Exec(t, af.URL, `INSERT INTO revoked_token (jti, exp)
		SELECT md5(i::text), '2026-01-01'::timestamptz FROM generate_series(1, 2500) i;
		INSERT INTO revoked_token (jti, exp) VALUES ('live', '2027-01-01')`)
	n, err := db.PurgeRevocations(context.Background(), t0)
	if err != nil || n != 2500 {
		t.Fatalf("PurgeRevocations = %d, %v; want 2500", n, err)
	}
	left, err := db.Revocations(context.Background())
	if err != nil || len(left) != 1 {
		t.Errorf("left %v, %v; want only live", left, err)
	}
}
