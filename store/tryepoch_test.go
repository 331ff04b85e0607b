package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/taskgate/taskgate/workload"
)

// TestTryEpoch: a try's epoch moves with every committed write of the try,
// before the write returns, and with nothing else: reads, heartbeats, a
// refused update and a write of a try in another stripe leave it alone.
func TestTryEpoch(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	req := workload.QueueRequest{DagID: "dag", RunID: "run", TaskID: "t", MapIndex: -1}
	const id = "try1"
	// other is a try in another stripe than id's.
	other := ""
	for i := 0; other == ""; i++ {
		if c := fmt.Sprint("other", i); db.epochs.stripe(c) != db.epochs.stripe(id) {
			other = c
		}
	}
	epoch := db.TryEpoch(id)
	moved := func(what string, want bool) {
		t.Helper()
		now := db.TryEpoch(id)
		if (now != epoch) != want {
			t.Errorf("%s: epoch %d → %d, want moved %v", what, epoch, now, want)
		}
		epoch = now
	}
	if _, err := workload.Queue(ctx, db, id, req, t0); err != nil {
		t.Fatal(err)
	}
	moved("queued", true)
	if _, err := db.UpdateTaskInstance(ctx, id, func(ti *workload.TaskInstance) error {
		_, _, err := workload.EnterRunning(ti, workload.RunRequest{Hostname: "h", PID: 1, StartDate: t0}, t0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	moved("running", true)
	if st, err := db.TryStatus(ctx, id); err != nil || st.State != workload.StateRunning {
		t.Fatalf("TryStatus = %+v, %v", st, err)
	}
	if _, err := db.TaskInstance(ctx, id); err != nil {
		t.Fatal(err)
	}
	moved("read", false)
	if err := heartbeat(ctx, db, id, "h", 1, t0); err != nil {
		t.Fatal(err)
	}
	moved("heartbeat", false)
	if _, err := db.UpdateTaskInstance(ctx, id, func(*workload.TaskInstance) error { return errors.New("no") }); err == nil {
		t.Fatal("refusal not returned")
	}
	moved("refused update", false)
	if _, err := workload.Queue(ctx, db, other, workload.QueueRequest{DagID: "dag", RunID: "run", TaskID: "u", MapIndex: -1}, t0); err != nil {
		t.Fatal(err)
	}
	moved("another try's write", false)
	if _, err := db.UpdateTaskInstance(ctx, id, func(ti *workload.TaskInstance) error {
		_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateFailed}, t0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	moved("failed", true)
	if st, err := db.TryStatus(ctx, id); err != nil || st.State != workload.StateFailed {
		t.Fatalf("TryStatus = %+v, %v", st, err)
	}
	// A transaction that does not commit drops the writer's view of every
	// running try: every epoch moves.
	db.epochs.noted = db.epochs.noted[:0]
	before := db.TryEpoch(other)
	db.forgetHot()
	moved("forgetHot", true)
	if db.TryEpoch(other) == before {
		t.Error("forgetHot left another try's epoch")
	}
}
