package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/fernet"
	"github.com/taskgate/taskgate/workload"
)

// TestConnectionTestsOnPostgres: a test is kept in taskgate.connection_test
// with its connection's password and extra sealed as Airflow seals a
// connection's; a successful test queued to be saved writes Airflow's
// connection row in the transaction that records its result.
func TestConnectionTestsOnPostgres(t *testing.T) {
	key, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	db, u := openData(t, multiKey(t, key))
	ctx := context.Background()
	conn := workload.Connection{ConnID: "pg", ConnType: "postgres", Host: ptr("db"), Password: ptr("s3cret"),
		Port: ptr(5432), Extra: ptr(`{"a": 1}`)}
	ct := workload.ConnectionTest{ID: "0190e3e4-3c2b-7a8e-9d0e-000000000c01", Connection: conn, CommitOnSuccess: true,
		State: workload.ConnectionTestQueued, CreatedAt: dataClock, UpdatedAt: dataClock, QueuedBy: "ada"}
	if err := db.InsertConnectionTest(ctx, ct); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertConnectionTest(ctx, ct); !errors.Is(err, workload.ErrAlreadyExists) {
		t.Errorf("second insert = %v, want ErrAlreadyExists", err)
	}
	var pwd string
	var enc bool
	queryRow(t, u, `SELECT password, is_encrypted FROM taskgate.connection_test WHERE id = $1`, []any{ct.ID}, &pwd, &enc)
	if !enc || strings.Contains(pwd, "s3cret") {
		t.Errorf("password stored as %q (encrypted %v)", pwd, enc)
	}
	got, err := db.ConnectionTest(ctx, ct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&ct, got); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
	if _, err := db.ConnectionTest(ctx, "0190e3e4-3c2b-7a8e-9d0e-000000000c02"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("missing test = %v", err)
	}
	msg := "ok"
	if _, err := db.UpdateConnectionTest(ctx, ct.ID, func(c *workload.ConnectionTest) error {
		return workload.ReportConnectionTest(c, workload.ConnectionTestSuccess, &msg, dataClock)
	}); err != nil {
		t.Fatal(err)
	}
	var state, result string
	queryRow(t, u, `SELECT state, result_message FROM taskgate.connection_test WHERE id = $1`, []any{ct.ID}, &state, &result)
	if state != "success" || result != "ok" {
		t.Errorf("stored %s %q", state, result)
	}
	saved, err := db.Connection(ctx, "pg")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&conn, saved); diff != "" {
		t.Errorf("saved connection (-want +got):\n%s", diff)
	}
	var ce *workload.ConflictError
	if _, err := db.UpdateConnectionTest(ctx, ct.ID, func(c *workload.ConnectionTest) error {
		return workload.ReportConnectionTest(c, workload.ConnectionTestFailed, &msg, dataClock)
	}); !errors.As(err, &ce) {
		t.Errorf("second report = %v, want a conflict", err)
	}
}

// TestCallbacksOnPostgres: the routes' reads and writes of Airflow's
// callback table.
func TestCallbacksOnPostgres(t *testing.T) {
	db, u := openData(t, nil)
	ctx := context.Background()
	cb := workload.Callback{ID: "0190e3e4-3c2b-7a8e-9d0e-0000000000cb", Type: "executor", FetchMethod: "import_path",
		Data: json.RawMessage(`{"path": "m.f", "kwargs": {}}`), State: workload.CallbackQueued, PriorityWeight: 1,
		CreatedAt: dataClock}
	if err := db.InsertCallback(ctx, cb); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertCallback(ctx, cb); !errors.Is(err, workload.ErrAlreadyExists) {
		t.Errorf("second insert = %v", err)
	}
	if _, err := db.UpdateCallback(ctx, cb.ID, workload.StartCallback); err != nil {
		t.Fatal(err)
	}
	var ce *workload.ConflictError
	if _, err := db.UpdateCallback(ctx, cb.ID, workload.StartCallback); !errors.As(err, &ce) {
		t.Errorf("second start = %v, want a conflict", err)
	}
	out := "done"
	if _, err := db.UpdateCallback(ctx, cb.ID, func(c *workload.Callback) error {
		return workload.FinishCallback(c, workload.CallbackFailed, &out)
	}); err != nil {
		t.Fatal(err)
	}
	var state, output string
	queryRow(t, u, `SELECT state, output FROM callback WHERE id = $1`, []any{cb.ID}, &state, &output)
	if state != "failed" || output != "done" {
		t.Errorf("stored %s %q", state, output)
	}
	got, err := db.Callback(ctx, cb.ID)
	if err != nil {
		t.Fatal(err)
	}
	cb.State, cb.Output = workload.CallbackFailed, &out
	if diff := cmp.Diff(&cb, got, cmp.Comparer(func(a, b json.RawMessage) bool { return string(a) == string(b) })); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
	if _, err := db.UpdateCallback(ctx, "0190e3e4-3c2b-7a8e-9d0e-0000000000cc", workload.StartCallback); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("missing callback = %v", err)
	}
}
