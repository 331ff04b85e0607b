package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/internal/fakeclock"
	"github.com/taskgate/taskgate/workload"
)

// TestConnectionTestsStore: a test is stored with its connection's secrets
// sealed, read back in clear, updated under its rule, and a successful test
// queued to be saved writes its connection in the same transaction.
func TestConnectionTestsStore(t *testing.T) {
	key := fernetKey(t)
	path := filepath.Join(t.TempDir(), "taskgate.db")
	db := openAt(t, path, Options{Now: fakeclock.New(t0).Now, Secrets: multiKey(t, key)})
	ctx := context.Background()
	conn := workload.Connection{ConnID: "pg", ConnType: "postgres", Host: ptr("db"), Password: ptr("s3cret-pässword"),
		Extra: ptr(`{"a": 1}`)}
	ct := workload.ConnectionTest{ID: "0190e3e4-3c2b-7a8e-9d0e-000000000c01", Connection: conn, CommitOnSuccess: true,
		State: workload.ConnectionTestQueued, CreatedAt: t0, UpdatedAt: t0}
	if err := db.InsertConnectionTest(ctx, ct); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertConnectionTest(ctx, ct); !errors.Is(err, workload.ErrAlreadyExists) {
		t.Errorf("second insert = %v, want ErrAlreadyExists", err)
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
	if _, err := db.UpdateConnectionTest(ctx, "0190e3e4-3c2b-7a8e-9d0e-000000000c02",
		func(*workload.ConnectionTest) error { t.Error("fn called"); return nil }); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("update of a missing test = %v", err)
	}
	// A refused report writes nothing.
	refusal := errors.New("refused")
	if _, err := db.UpdateConnectionTest(ctx, ct.ID, func(c *workload.ConnectionTest) error {
		c.State = workload.ConnectionTestSuccess
		return refusal
	}); !errors.Is(err, refusal) {
		t.Fatalf("refused update = %v", err)
	}
	if _, err := db.Connection(ctx, "pg"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("a refused report saved the connection: %v", err)
	}
	msg := "ok"
	if _, err := db.UpdateConnectionTest(ctx, ct.ID, func(c *workload.ConnectionTest) error {
		return workload.ReportConnectionTest(c, workload.ConnectionTestSuccess, &msg, t0)
	}); err != nil {
		t.Fatal(err)
	}
	saved, err := db.Connection(ctx, "pg")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&conn, saved); diff != "" {
		t.Errorf("saved connection (-want +got):\n%s", diff)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("s3cret")) || bytes.Contains(raw, []byte(`{"a": 1}`)) {
		t.Error("a connection test's secret is on disk in clear")
	}
}

func TestCallbacksStore(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	cb := workload.Callback{ID: "0190e3e4-3c2b-7a8e-9d0e-0000000000cb", Type: "executor", FetchMethod: "import_path",
		Data: json.RawMessage(`{"path":"m.f","kwargs":{}}`), State: workload.CallbackQueued, PriorityWeight: 1,
		CreatedAt: t0}
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
	got, err := db.Callback(ctx, cb.ID)
	if err != nil {
		t.Fatal(err)
	}
	cb.State = workload.CallbackRunning
	if diff := cmp.Diff(&cb, got); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
	if _, err := db.UpdateCallback(ctx, "0190e3e4-3c2b-7a8e-9d0e-0000000000cc", workload.StartCallback); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("missing callback = %v", err)
	}
}
