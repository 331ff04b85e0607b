package pgstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

// TestPutConnectionAsAirflowStoresIt: PutConnection writes the columns
// Airflow's Connection model writes: a non-empty password or extra
// encrypted with the first fernet key and its flag true, in clear with the
// flag false without a key; an empty or null one as it is, flag false.
func TestPutConnectionAsAirflowStoresIt(t *testing.T) {
	key := pythonVectors(t)[0].Secret
	full := workload.Connection{
		ConnID: "pg", ConnType: "postgres", Host: ptr("db.example"), Schema: ptr("airflow"),
		Login: ptr("user"), Password: ptr("pässwörd ✓"), Port: ptr(5432), Extra: ptr(`{"sslmode": "require"}`),
	}
	bare := workload.Connection{ConnID: "bare", ConnType: "http"}
	empty := workload.Connection{ConnID: "empty", ConnType: "http", Password: ptr(""), Extra: ptr("")}
	u := pgtest.NewAirflow(t)
	for _, tc := range []struct {
		name                   string
		keys                   []string
		conn                   workload.Connection
		wantPwdEnc, wantExtEnc bool
	}{
		{"clear", nil, full, false, false},
		{"encrypted", []string{key}, full, true, true},
		{"null fields", []string{key}, bare, false, false},
		{"empty fields", []string{key}, empty, false, false},
		{"password only", []string{key}, workload.Connection{ConnID: "p", ConnType: "ftp", Password: ptr("x")}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Cipher
			if tc.keys != nil {
				c = multiKey(t, tc.keys...)
			}
			db := openOn(t, u, c)
			tc.conn.ConnID = strings.ReplaceAll(tc.name, " ", "_")
			ctx := context.Background()
			if err := db.PutConnection(ctx, tc.conn); err != nil {
				t.Fatal(err)
			}
			var (
				pwd, extra     *string
				pwdEnc, extEnc bool
			)
			queryRow(t, u, `SELECT password, extra, is_encrypted, is_extra_encrypted FROM connection WHERE conn_id = $1`,
				[]any{tc.conn.ConnID}, &pwd, &extra, &pwdEnc, &extEnc)
			if pwdEnc != tc.wantPwdEnc || extEnc != tc.wantExtEnc {
				t.Errorf("is_encrypted, is_extra_encrypted = %v, %v; want %v, %v", pwdEnc, extEnc, tc.wantPwdEnc, tc.wantExtEnc)
			}
			for _, f := range []struct {
				name          string
				stored, plain *string
				enc           bool
			}{{"password", pwd, tc.conn.Password, pwdEnc}, {"extra", extra, tc.conn.Extra, extEnc}} {
				got := f.stored
				if f.enc {
					p, err := multiKey(t, key).Decrypt(*f.stored)
					if err != nil {
						t.Fatalf("%s does not decrypt with the key: %v", f.name, err)
					}
					got = ptr(string(p))
				}
				if diff := cmp.Diff(f.plain, got); diff != "" {
					t.Errorf("%s column (-want +got):\n%s", f.name, diff)
				}
			}
			got, err := db.Connection(ctx, tc.conn.ConnID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tc.conn, got); diff != "" {
				t.Errorf("Connection (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConnectionReadsAirflowRows: connections as Airflow writes them read
// back, the flags alone deciding what is a token; rotation NEW,OLD reads
// both keys' tokens; a token no configured key made is ErrDecrypt.
func TestConnectionReadsAirflowRows(t *testing.T) {
	vs := pythonVectors(t)
	spec := specVector(t)
	newKey, oldKey := vs[0].Secret, spec.Secret
	pwd, extra := vs[len(vs)-2], vs[2] // "pässwörd ✓", "15 bytes long!!"
	rows := `INSERT INTO connection (conn_id, conn_type, description, host, "schema", login, password, port,
			is_encrypted, is_extra_encrypted, extra) VALUES
		('airflow', 'postgres', 'by airflow', 'h', 's', 'l', '` + pwd.Token + `', 5432, true, true, '` + extra.Token + `'),
		('old', 'http', NULL, NULL, NULL, NULL, '` + spec.Token + `', NULL, true, false, '{"a": 1}'),
		('clear', 'http', NULL, NULL, NULL, NULL, '` + pwd.Token + `', NULL, false, false, NULL),
		('flag-on-empty', 'http', NULL, NULL, NULL, NULL, '', NULL, true, true, '')`
	airflow := &workload.Connection{ConnID: "airflow", ConnType: "postgres", Host: ptr("h"), Schema: ptr("s"),
		Login: ptr("l"), Password: ptr(pwd.Src), Port: ptr(5432), Extra: ptr(extra.Src)}
	old := &workload.Connection{ConnID: "old", ConnType: "http", Password: ptr(spec.Src), Extra: ptr(`{"a": 1}`)}
	clear := &workload.Connection{ConnID: "clear", ConnType: "http", Password: ptr(pwd.Token)}
	flagOnEmpty := &workload.Connection{ConnID: "flag-on-empty", ConnType: "http", Password: ptr(""), Extra: ptr("")}
	u := pgtest.NewAirflow(t)
	pgtest.Exec(t, u, rows)
	for _, tc := range []struct {
		name string
		keys []string
		want map[string]*workload.Connection // nil: ErrDecrypt
	}{
		{"key", []string{newKey}, map[string]*workload.Connection{
			"airflow": airflow, "old": nil, "clear": clear, "flag-on-empty": flagOnEmpty}},
		{"rotation NEW,OLD", []string{newKey, oldKey}, map[string]*workload.Connection{
			"airflow": airflow, "old": old, "clear": clear}},
		{"no fernet_key", nil, map[string]*workload.Connection{
			"airflow": nil, "old": nil, "clear": clear, "flag-on-empty": flagOnEmpty}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Cipher
			if tc.keys != nil {
				c = multiKey(t, tc.keys...)
			}
			db := openOn(t, u, c)
			for id, want := range tc.want {
				got, err := db.Connection(context.Background(), id)
				if want == nil {
					if !errors.Is(err, ErrDecrypt) {
						t.Errorf("Connection(%s) = %v, %v; want ErrDecrypt", id, got, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("Connection(%s): %v", id, err)
					continue
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("Connection(%s) (-want +got):\n%s", id, diff)
				}
			}
		})
	}
}

// TestPutConnectionUpsert: a second Put replaces the connection's fields in
// the same row and keeps what a task's connection does not carry
// (description, team_name).
func TestPutConnectionUpsert(t *testing.T) {
	db, u := openData(t, multiKey(t, pythonVectors(t)[0].Secret))
	pgtest.Exec(t, u, `INSERT INTO team (name) VALUES ('blue');
		INSERT INTO connection (id, conn_id, conn_type, description, host, password, is_encrypted, is_extra_encrypted, team_name)
		VALUES (3, 'c', 'http', 'kept', 'old-host', 'old', false, false, 'blue')`)
	ctx := context.Background()
	want := workload.Connection{ConnID: "c", ConnType: "ftp", Login: ptr("me"), Password: ptr("new")}
	if err := db.PutConnection(ctx, want); err != nil {
		t.Fatal(err)
	}
	var (
		id         int
		desc, team string
		host       *string
		enc        bool
	)
	queryRow(t, u, `SELECT id, description, team_name, host, is_encrypted FROM connection WHERE conn_id = 'c'`, nil,
		&id, &desc, &team, &host, &enc)
	if id != 3 || desc != "kept" || team != "blue" || host != nil || !enc {
		t.Errorf("row = %d %q %q %v %v; want 3 \"kept\" \"blue\" <nil> true", id, desc, team, host, enc)
	}
	got, err := db.Connection(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("Connection (-want +got):\n%s", diff)
	}
}

func TestDeleteAndListConnections(t *testing.T) {
	db, u := openData(t, multiKey(t, pythonVectors(t)[0].Secret))
	ctx := context.Background()
	if got, err := db.ListConnections(ctx); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("ListConnections on an empty table = %v, %v; want an empty list", got, err)
	}
	for _, id := range []string{"b", "B", "a"} {
		if err := db.PutConnection(ctx, workload.Connection{ConnID: id, ConnType: "http", Password: ptr("p-" + id)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // a missing id is not an error
		if err := db.DeleteConnection(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Connection(ctx, "a"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("Connection after delete: %v; want ErrNotFound", err)
	}
	got, err := db.ListConnections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []workload.Connection{
		{ConnID: "B", ConnType: "http", Password: ptr("p-B")},
		{ConnID: "b", ConnType: "http", Password: ptr("p-b")},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListConnections (-want +got):\n%s", diff)
	}
	pgtest.Exec(t, u, `INSERT INTO connection (conn_id, conn_type, password, is_encrypted, is_extra_encrypted)
		VALUES ('c', 'http', '`+specVector(t).Token+`', true, false)`)
	if _, err := db.ListConnections(ctx); !errors.Is(err, ErrDecrypt) {
		t.Errorf("ListConnections with an undecryptable row: %v; want ErrDecrypt", err)
	}
}

// TestRotateSecrets: rotation re-encrypts with the first key every value
// whose flag says it is encrypted, whichever configured key made it, and
// leaves values in clear as they are, as `airflow rotate-fernet-key` does;
// a token no configured key made changes nothing.
func TestRotateSecrets(t *testing.T) {
	vs := pythonVectors(t)
	spec := specVector(t)
	newKey, oldKey := vs[0].Secret, spec.Secret
	rows := `INSERT INTO variable (key, val, is_encrypted) VALUES
			('old', '` + spec.Token + `', true), ('new', '` + vs[1].Token + `', true), ('clear', 'plain', false);
		INSERT INTO connection (conn_id, conn_type, password, is_encrypted, extra, is_extra_encrypted) VALUES
			('c', 'http', '` + spec.Token + `', true, '` + vs[2].Token + `', true),
			('clear', 'http', 'plain', false, '{}', false),
			('flag-on-empty', 'http', '', true, NULL, true)`
	ctx := context.Background()

	t.Run("NEW,OLD", func(t *testing.T) {
		db, u := openData(t, multiKey(t, newKey, oldKey))
		pgtest.Exec(t, u, rows)
		n, err := db.RotateSecrets(ctx)
		if err != nil || n != 4 {
			t.Fatalf("RotateSecrets = %d, %v; want 4 values", n, err)
		}
		// NEW alone now reads everything, and the rows say the same as before.
		only, err := Open(ctx, Options{URL: u, Cipher: multiKey(t, newKey)})
		if err != nil {
			t.Fatal(err)
		}
		defer only.Close()
		wantVars := []workload.Variable{
			{Key: "clear", Value: ptr("plain")}, {Key: "new", Value: ptr(vs[1].Src)}, {Key: "old", Value: ptr(spec.Src)},
		}
		gotVars, err := only.ListVariables(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantVars, gotVars); diff != "" {
			t.Errorf("variables (-want +got):\n%s", diff)
		}
		wantConns := []workload.Connection{
			{ConnID: "c", ConnType: "http", Password: ptr(spec.Src), Extra: ptr(vs[2].Src)},
			{ConnID: "clear", ConnType: "http", Password: ptr("plain"), Extra: ptr("{}")},
			{ConnID: "flag-on-empty", ConnType: "http", Password: ptr("")},
		}
		gotConns, err := only.ListConnections(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantConns, gotConns); diff != "" {
			t.Errorf("connections (-want +got):\n%s", diff)
		}
		var clearVal string
		var enc bool
		queryRow(t, u, `SELECT val, is_encrypted FROM variable WHERE key = 'clear'`, nil, &clearVal, &enc)
		if clearVal != "plain" || enc {
			t.Errorf("clear variable = %q, %v; want it left in clear", clearVal, enc)
		}
	})

	t.Run("a token of no configured key", func(t *testing.T) {
		db, u := openData(t, multiKey(t, newKey))
		pgtest.Exec(t, u, rows)
		// The variables all rotate; connection c's password then fails, and
		// the variables' rewrite goes with it.
		pgtest.Exec(t, u, `UPDATE variable SET val = '`+vs[3].Token+`' WHERE key = 'old'`)
		if _, err := db.RotateSecrets(ctx); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("RotateSecrets: %v; want ErrDecrypt", err)
		}
		var val1, val3 string
		queryRow(t, u, `SELECT (SELECT val FROM variable WHERE key = 'new'), (SELECT val FROM variable WHERE key = 'old')`,
			nil, &val1, &val3)
		if val1 != vs[1].Token || val3 != vs[3].Token {
			t.Errorf("variables rewritten although the rotation failed")
		}
	})

	t.Run("no fernet_key", func(t *testing.T) {
		db, _ := openData(t, nil)
		if _, err := db.RotateSecrets(ctx); err == nil {
			t.Error("RotateSecrets without a key: no error")
		}
	})
}
