package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/fernet"
	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

// fernetVector is a token made by Python's cryptography.fernet, the
// library Airflow's get_fernet uses: what Airflow writes into val, password
// and extra.
type fernetVector struct {
	Secret, Src, Token string
}

// Fernet test vectors: fernet/testdata/python.json (made by Python's
// cryptography 48.0.0, one key) and the Fernet spec's verify.json (another
// key), so that a rotation NEW,OLD has a token of each.
func pythonVectors(t *testing.T) []fernetVector {
	t.Helper()
	var vs []fernetVector
	readJSON(t, "../fernet/testdata/python.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no Python Fernet vectors")
	}
	return vs
}

func specVector(t *testing.T) fernetVector {
	t.Helper()
	var vs []fernetVector
	readJSON(t, "../fernet/testdata/verify.json", &vs)
	if len(vs) != 1 || vs[0].Secret == pythonVectors(t)[0].Secret {
		t.Fatalf("verify.json: want one vector of another key, got %d", len(vs))
	}
	return vs[0]
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func multiKey(t *testing.T, keys ...string) *fernet.MultiKey {
	t.Helper()
	m, err := fernet.NewMulti(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// dataClock is the store's clock in these tests.
var dataClock = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// openData opens a store on a fresh Airflow database with the given cipher
// (nil: no fernet_key), and returns it with the database's URL for fixtures
// and raw reads.
func openData(t *testing.T, c Cipher) (*DB, string) {
	t.Helper()
	u := pgtest.NewAirflow(t)
	return openOn(t, u, c), u
}

// openOn opens another store on the database u, with its own cipher, as
// another replica or an Airflow with another fernet_key would see it.
func openOn(t *testing.T, u string, c Cipher) *DB {
	t.Helper()
	db, err := Open(context.Background(), Options{URL: u, Now: func() time.Time { return dataClock }, Cipher: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// queryRow reads one row straight from the database, as Airflow's models
// would see it.
func queryRow(t *testing.T, u, sql string, args []any, dest ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestPutVariableAsAirflowStoresIt: what PutVariable writes is the row
// Airflow's Variable.set writes: encrypted with the first fernet key (a
// token that the key alone decrypts) and is_encrypted true, or in clear
// with is_encrypted false without a key; a null value is "None".
func TestPutVariableAsAirflowStoresIt(t *testing.T) {
	vs := pythonVectors(t)
	key := vs[0].Secret
	old := specVector(t).Secret
	u := pgtest.NewAirflow(t)
	for _, tc := range []struct {
		name    string
		keys    []string // nil: no fernet_key
		value   *string
		wantVal string // the plaintext of val
	}{
		{"clear", nil, ptr("s3cret"), "s3cret"},
		{"clear empty", nil, ptr(""), ""},
		{"clear null", nil, nil, "None"},
		{"encrypted", []string{key}, ptr("s3cret"), "s3cret"},
		{"encrypted empty", []string{key}, ptr(""), ""},
		{"encrypted null", []string{key}, nil, "None"},
		{"encrypted unicode", []string{key}, ptr("pässwörd ✓"), "pässwörd ✓"},
		{"first of two keys", []string{key, old}, ptr("rotated"), "rotated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Cipher
			if tc.keys != nil {
				c = multiKey(t, tc.keys...)
			}
			db := openOn(t, u, c)
			ctx := context.Background()
			v := workload.Variable{Key: tc.name, Value: tc.value, Description: ptr("what k is")}
			if err := db.PutVariable(ctx, v); err != nil {
				t.Fatal(err)
			}
			var (
				val  string
				desc *string
				enc  bool
			)
			queryRow(t, u, `SELECT val, description, is_encrypted FROM variable WHERE key = $1`, []any{tc.name}, &val, &desc, &enc)
			if enc != (tc.keys != nil) {
				t.Errorf("is_encrypted = %v with keys %d", enc, len(tc.keys))
			}
			plain := val
			if enc {
				// The first key alone decrypts it, as Airflow's MultiFernet would.
				p, err := multiKey(t, tc.keys[0]).Decrypt(val)
				if err != nil {
					t.Fatalf("val does not decrypt with the first key: %v", err)
				}
				plain = string(p)
				if val == tc.wantVal {
					t.Errorf("val is in clear")
				}
			}
			if plain != tc.wantVal || desc == nil || *desc != "what k is" {
				t.Errorf("row = %q (%q), %v; want %q", plain, val, desc, tc.wantVal)
			}
			got, err := db.Variable(ctx, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			want := &workload.Variable{Key: tc.name, Value: &tc.wantVal, Description: ptr("what k is")}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Variable (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVariableReadsAirflowRows: rows as Airflow writes them read back, the
// is_encrypted flag alone deciding whether val is a token; a token no
// configured key made is an error naming the variable, never a value.
func TestVariableReadsAirflowRows(t *testing.T) {
	vs := pythonVectors(t)
	spec := specVector(t)
	newKey, oldKey := vs[0].Secret, spec.Secret
	tok := vs[len(vs)-2] // "pässwörd ✓"
	rows := `INSERT INTO variable (key, val, description, is_encrypted) VALUES
		('airflow', '` + tok.Token + `', 'by airflow', true),
		('old', '` + spec.Token + `', NULL, true),
		('clear', 'plain value', NULL, false),
		('looks-like-token', '` + tok.Token + `', NULL, false),
		('empty', '', NULL, false)`
	u := pgtest.NewAirflow(t)
	pgtest.Exec(t, u, rows)
	type want struct {
		value   string
		decrypt bool // wants ErrDecrypt
	}
	for _, tc := range []struct {
		name string
		keys []string
		want map[string]want
	}{
		{"key", []string{newKey}, map[string]want{
			"airflow": {value: tok.Src}, "old": {decrypt: true}, "clear": {value: "plain value"},
			"looks-like-token": {value: tok.Token}, "empty": {value: ""},
		}},
		{"rotation NEW,OLD", []string{newKey, oldKey}, map[string]want{
			"airflow": {value: tok.Src}, "old": {value: spec.Src}, "clear": {value: "plain value"},
			"looks-like-token": {value: tok.Token},
		}},
		{"only OLD", []string{oldKey}, map[string]want{
			"airflow": {decrypt: true}, "old": {value: spec.Src},
		}},
		{"no fernet_key", nil, map[string]want{
			"airflow": {decrypt: true}, "clear": {value: "plain value"}, "looks-like-token": {value: tok.Token},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Cipher
			if tc.keys != nil {
				c = multiKey(t, tc.keys...)
			}
			db := openOn(t, u, c)
			for key, w := range tc.want {
				got, err := db.Variable(context.Background(), key)
				if w.decrypt {
					if !errors.Is(err, ErrDecrypt) {
						t.Errorf("Variable(%s) = %v, %v; want ErrDecrypt", key, got, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("Variable(%s): %v", key, err)
					continue
				}
				if got.Value == nil || *got.Value != w.value {
					t.Errorf("Variable(%s) = %v; want %q", key, got.Value, w.value)
				}
			}
		})
	}
}

// TestPutVariableUpsert: a second Put replaces val, description and
// is_encrypted in the same row, keeping its id and team_name, as Airflow's
// upsert on key does.
func TestPutVariableUpsert(t *testing.T) {
	db, u := openData(t, nil)
	pgtest.Exec(t, u, `INSERT INTO team (name) VALUES ('blue');
		INSERT INTO variable (id, key, val, description, is_encrypted, team_name) VALUES (7, 'k', 'old', 'd', false, 'blue')`)
	ctx := context.Background()
	if err := db.PutVariable(ctx, workload.Variable{Key: "k", Value: ptr("new")}); err != nil {
		t.Fatal(err)
	}
	var (
		id        int
		val, team string
		desc      *string
	)
	queryRow(t, u, `SELECT id, val, description, team_name FROM variable WHERE key = 'k'`, nil, &id, &val, &desc, &team)
	if id != 7 || val != "new" || desc != nil || team != "blue" {
		t.Errorf("row = %d %q %v %q; want 7 \"new\" <nil> \"blue\"", id, val, desc, team)
	}
}

func TestDeleteVariable(t *testing.T) {
	db, _ := openData(t, nil)
	ctx := context.Background()
	if err := db.PutVariable(ctx, workload.Variable{Key: "k", Value: ptr("v")}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second delete finds nothing, and that is not an error
		if err := db.DeleteVariable(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Variable(ctx, "k"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("Variable after delete: %v; want ErrNotFound", err)
	}
}

// TestVariableKeys: keys in byte order whatever the database's collation,
// the prefix matched literally (no LIKE wildcards), paging with the total.
func TestVariableKeys(t *testing.T) {
	db, u := openData(t, nil)
	pgtest.Exec(t, u, `INSERT INTO variable (key, val, is_encrypted) VALUES
		('a_b', '', false), ('a-b', '', false), ('aXb', '', false), ('B', '', false),
		('a%', '', false), ('a', '', false), ('b', '', false)`)
	for _, tc := range []struct {
		name          string
		prefix        string
		limit, offset int
		want          []string
		total         int
	}{
		{"all", "", 0, 0, []string{"B", "a", "a%", "a-b", "aXb", "a_b", "b"}, 7},
		{"prefix", "a", 0, 0, []string{"a", "a%", "a-b", "aXb", "a_b"}, 5},
		{"underscore is literal", "a_", 0, 0, []string{"a_b"}, 1},
		{"percent is literal", "a%", 0, 0, []string{"a%"}, 1},
		{"limit", "a", 2, 0, []string{"a", "a%"}, 5},
		{"offset", "a", 2, 2, []string{"a-b", "aXb"}, 5},
		{"offset past the end", "a", 2, 9, []string{}, 5},
		{"negative offset", "a", 1, -3, []string{"a"}, 5},
		{"none", "zz", 0, 0, []string{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, total, err := db.VariableKeys(context.Background(), tc.prefix, tc.limit, tc.offset)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, keys); diff != "" || total != tc.total {
				t.Errorf("total %d, want %d; keys (-want +got):\n%s", total, tc.total, diff)
			}
		})
	}
}

// TestListVariables: every variable, decrypted, in byte order; one that no
// key decrypts fails the list.
func TestListVariables(t *testing.T) {
	vs := pythonVectors(t)
	db, u := openData(t, multiKey(t, vs[0].Secret))
	ctx := context.Background()
	if got, err := db.ListVariables(ctx); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("ListVariables on an empty table = %v, %v; want an empty list", got, err)
	}
	pgtest.Exec(t, u, `INSERT INTO variable (key, val, description, is_encrypted) VALUES
		('b', '`+vs[1].Token+`', 'second', true), ('B', 'clear', NULL, false)`)
	if err := db.PutVariable(ctx, workload.Variable{Key: "a", Value: ptr("mine")}); err != nil {
		t.Fatal(err)
	}
	got, err := db.ListVariables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []workload.Variable{
		{Key: "B", Value: ptr("clear")},
		{Key: "a", Value: ptr("mine")},
		{Key: "b", Value: ptr(vs[1].Src), Description: ptr("second")},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListVariables (-want +got):\n%s", diff)
	}
	pgtest.Exec(t, u, `INSERT INTO variable (key, val, is_encrypted) VALUES ('c', '`+specVector(t).Token+`', true)`)
	if _, err := db.ListVariables(ctx); !errors.Is(err, ErrDecrypt) {
		t.Errorf("ListVariables with an undecryptable row: %v; want ErrDecrypt", err)
	}
}
