package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

// runningTI inserts a task instance and starts it on host/pid at t0.
func runningTI(t testing.TB, db *DB, id, host string, pid int) {
	t.Helper()
	mustInsert(t, db, taskInstance(id, "dag", "run", "task-"+id, -1))
	_, err := db.UpdateTaskInstance(context.Background(), id, func(ti *workload.TaskInstance) error {
		_, _, err := workload.EnterRunning(ti, workload.RunRequest{Hostname: host, Unixname: "u", PID: pid, StartDate: t0}, t0)
		return err
	})
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
}

func lastHeartbeat(t testing.TB, db *DB, id string) time.Time {
	t.Helper()
	ti, err := db.TaskInstance(context.Background(), id)
	if err != nil {
		t.Fatalf("TaskInstance(%s): %v", id, err)
	}
	if ti.LastHeartbeatAt == nil {
		t.Fatalf("TaskInstance(%s): no last heartbeat", id)
	}
	if ti.UpdatedAt.Before(*ti.LastHeartbeatAt) {
		t.Errorf("TaskInstance(%s): updated_at %v before last heartbeat %v", id, ti.UpdatedAt, *ti.LastHeartbeatAt)
	}
	return *ti.LastHeartbeatAt
}

func TestHeartbeatRules(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	runningTI(t, db, "a", "host", 1)
	t1 := t0.Add(time.Minute)
	if err := heartbeat(ctx, db, "a", "host", 1, t1); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	if got := lastHeartbeat(t, db, "a"); !got.Equal(t1) {
		t.Errorf("last heartbeat %v, want %v", got, t1)
	}
	var ce *workload.ConflictError
	if err := heartbeat(ctx, db, "a", "other", 1, t1); !errors.As(err, &ce) || ce.Reason != "running_elsewhere" {
		t.Errorf("Heartbeat from another host: %v, want running_elsewhere", err)
	}
	if err := heartbeat(ctx, db, "missing", "host", 1, t1); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("Heartbeat of an unknown id: %v, want ErrNotFound", err)
	}
	if err := heartbeat(ctx, db, "", "host", 1, t1); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Heartbeat of an empty id: %v, want ErrInvalidKey", err)
	}
	// The state change must reach the writer's view of running task
	// instances: a heartbeat after it is refused.
	if _, err := db.UpdateTaskInstance(ctx, "a", func(ti *workload.TaskInstance) error {
		_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateSuccess, EndDate: ptr(t1)}, t1)
		return err
	}); err != nil {
		t.Fatalf("finish: %v", err)
	}
	if err := heartbeat(ctx, db, "a", "host", 1, t1.Add(time.Second)); !errors.As(err, &ce) || ce.Reason != "not_running" {
		t.Errorf("Heartbeat after success: %v, want not_running", err)
	}
	if got := lastHeartbeat(t, db, "a"); !got.Equal(t1) {
		t.Errorf("last heartbeat after the refused one %v, want %v", got, t1)
	}
}

// TestHeartbeatAppliesTheGivenRule: the store decides nothing itself. It
// hands the rule the try's Holder, from memory for a running try and from
// the record for any other, returns the rule's error as it is, records the
// time the rule returns, and never calls the rule for an unknown id.
func TestHeartbeatAppliesTheGivenRule(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	runningTI(t, db, "a", "host", 1)
	mustInsert(t, db, taskInstance("q", "dag", "run", "task-q", -1))
	refused := errors.New("refused by the rule")
	t1 := t0.Add(time.Minute)
	tests := []struct {
		name       string
		id         string
		answer     error
		wantHolder *workload.Holder // nil: the rule is not called
		wantErr    error
	}{
		{"a running try is judged from memory", "a", nil, &workload.Holder{State: workload.StateRunning, Hostname: "host", PID: 1}, nil},
		{"a queued try is judged from its record", "q", nil, &workload.Holder{State: workload.StateQueued}, nil},
		{"the rule's error is returned as it is", "a", refused, &workload.Holder{State: workload.StateRunning, Hostname: "host", PID: 1}, refused},
		{"an unknown id never reaches the rule", "missing", nil, nil, workload.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *workload.Holder
			req := workload.HeartbeatRequest{Hostname: "anyone", PID: 99, At: t0}
			err := db.Heartbeat(ctx, tt.id, req, func(h workload.Holder, r workload.HeartbeatRequest) (time.Time, error) {
				got = &h
				if diff := cmp.Diff(req, r); diff != "" {
					t.Errorf("rule called with (-want +got):\n%s", diff)
				}
				return t1, tt.answer
			})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Heartbeat = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantHolder, got); diff != "" {
				t.Errorf("holder given to the rule (-want +got):\n%s", diff)
			}
			if tt.wantErr == nil {
				if at := lastHeartbeat(t, db, tt.id); !at.Equal(t1) {
					t.Errorf("last heartbeat %v, want the rule's %v", at, t1)
				}
			}
		})
	}
}

// TestHeartbeatSeenByEveryRead checks the logged time in every way a task
// instance is read, and that a record rewritten later keeps it.
func TestHeartbeatSeenByEveryRead(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	runningTI(t, db, "a", "host", 1)
	t1 := t0.Add(time.Hour)
	if err := heartbeat(ctx, db, "a", "host", 1, t1); err != nil {
		t.Fatal(err)
	}
	list, _, err := db.TaskInstances(ctx, workload.TaskInstanceFilter{DagID: "dag"})
	if err != nil || len(list) != 1 || list[0].LastHeartbeatAt == nil || !list[0].LastHeartbeatAt.Equal(t1) {
		t.Errorf("TaskInstances: %+v, %v; want last heartbeat %v", list, err, t1)
	}
	var seen *time.Time
	if _, err := db.UpdateTaskInstance(ctx, "a", func(ti *workload.TaskInstance) error {
		seen = ti.LastHeartbeatAt
		ti.Hostname = "host" // a no-op rewrite of the record
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if seen == nil || !seen.Equal(t1) {
		t.Errorf("UpdateTaskInstance saw last heartbeat %v, want %v", seen, t1)
	}
	// An older heartbeat never moves the time back.
	if err := heartbeat(ctx, db, "a", "host", 1, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := lastHeartbeat(t, db, "a"); !got.Equal(t1) {
		t.Errorf("last heartbeat after an older one %v, want %v", got, t1)
	}
}

// readLog parses the first file of the heartbeat log of the database at
// path, the one written first after Open.
func readLog(t *testing.T, path string) (uint64, map[string]time.Time, int64) {
	t.Helper()
	return readLogFile(t, path+heartbeatLogSuffixes[0])
}

func readLogFile(t *testing.T, file string) (uint64, map[string]time.Time, int64) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	gen, times, valid, err := parseHeartbeatLog(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return gen, times, valid
}

// copyFiles copies the database and its heartbeat log, as a crash would
// leave them: the database is open and nothing is being written.
func copyFiles(t *testing.T, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy.db")
	for _, suffix := range []string{"", heartbeatLogSuffixes[0], heartbeatLogSuffixes[1]} {
		data, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestHeartbeatSurvivesCrash(t *testing.T) {
	db, path := openTest(t)
	ctx := context.Background()
	for i := range 5 {
		runningTI(t, db, fmt.Sprint("ti-", i), "host", i)
	}
	for i := range 5 {
		if err := heartbeat(ctx, db, fmt.Sprint("ti-", i), "host", i, t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	crashed := copyFiles(t, path)

	// A torn last record (the crash came during a write) is ignored.
	torn := copyFiles(t, path)
	gen, times, valid := readLog(t, torn)
	if len(times) != 5 {
		t.Fatalf("log holds %d task instances, want 5", len(times))
	}
	f, err := os.OpenFile(torn+heartbeatLogSuffix, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := appendHeartbeatRecord(nil, gen, "ti-0", t0.Add(time.Hour+123456789)) // last bytes not zero
	if _, err := f.WriteAt(rec[:len(rec)-3], int64(valid)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	for _, p := range []string{crashed, torn} {
		re := openAt(t, p, Options{})
		for i := range 5 {
			if got, want := lastHeartbeat(t, re, fmt.Sprint("ti-", i)), t0.Add(time.Duration(i+1)*time.Minute); !got.Equal(want) {
				t.Errorf("%s: ti-%d: last heartbeat %v, want %v", filepath.Base(p), i, got, want)
			}
		}
		// Open moved the log into the database and emptied it.
		if gen2, times, _ := readLog(t, p); gen2 <= gen || len(times) != 0 {
			t.Errorf("%s: log after open: generation %d (was %d), %d entries", filepath.Base(p), gen2, gen, len(times))
		}
		// And heartbeats go on after recovery.
		if err := heartbeat(ctx, re, "ti-0", "host", 0, t0.Add(2*time.Hour)); err != nil {
			t.Errorf("heartbeat after recovery: %v", err)
		}
	}
}

func TestHeartbeatReadOnly(t *testing.T) {
	db, path := openTest(t)
	runningTI(t, db, "a", "host", 1)
	t1 := t0.Add(time.Minute)
	if err := heartbeat(context.Background(), db, "a", "host", 1, t1); err != nil {
		t.Fatal(err)
	}
	copied := copyFiles(t, path)
	ro := openAt(t, copied, Options{ReadOnly: true})
	if got := lastHeartbeat(t, ro, "a"); !got.Equal(t1) {
		t.Errorf("read-only: last heartbeat %v, want %v", got, t1)
	}
	if err := heartbeat(context.Background(), ro, "a", "host", 1, t1); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only Heartbeat: %v, want ErrReadOnly", err)
	}
	if _, times, _ := readLog(t, copied); len(times) != 1 {
		t.Errorf("read-only open changed the log: %d entries, want 1", len(times))
	}
}

func TestHeartbeatLogBadHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "taskgate.db")
	if err := os.WriteFile(path+heartbeatLogSuffix, []byte("not a heartbeat log"), 0o600); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("Open with a foreign log: %v, want ErrCorrupt", err)
	}
}

func TestHeartbeatCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "taskgate.db")
	db := openAt(t, path, Options{checkpointBytes: 512})
	ctx := context.Background()
	runningTI(t, db, "a", "host", 1)
	runningTI(t, db, "b", "host", 2)
	var last time.Time
	for i := range 100 {
		last = t0.Add(time.Duration(i) * time.Second)
		if err := heartbeat(ctx, db, "a", "host", 1, last); err != nil {
			t.Fatal(err)
		}
	}
	if db.Stats().Checkpoints == 0 {
		t.Fatalf("no checkpoint after 100 heartbeats with a 512-byte log: %+v", db.Stats())
	}
	var logged int64
	for _, suffix := range heartbeatLogSuffixes {
		_, _, valid := readLogFile(t, path+suffix)
		logged += valid
	}
	if logged >= 100*heartbeatRecordFixed {
		t.Errorf("log not emptied by checkpoints: %d bytes in its two files", logged)
	}
	if got := lastHeartbeat(t, db, "a"); !got.Equal(last) {
		t.Errorf("last heartbeat %v, want %v", got, last)
	}
	if got := lastHeartbeat(t, db, "b"); !got.Equal(t0) {
		t.Errorf("b: last heartbeat %v, want its start %v", got, t0)
	}
}

// TestHeartbeatCheckpointDoesNotStall: while a checkpoint waits for the
// database (here a write transaction the test holds), heartbeats go on into
// the other file of the log; the checkpoint completes afterwards.
func TestHeartbeatCheckpointDoesNotStall(t *testing.T) {
	path := filepath.Join(t.TempDir(), "taskgate.db")
	db := openAt(t, path, Options{checkpointBytes: 512})
	ctx := context.Background()
	runningTI(t, db, "a", "host", 1)
	tx, err := db.bolt.Begin(true) // the checkpoint's transaction waits for this one
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	for i := range 100 { // ≈ 10 files' worth: the first checkpoint is stuck
		last = t0.Add(time.Duration(i+1) * time.Second)
		if err := heartbeat(ctx, db, "a", "host", 1, last); err != nil {
			t.Fatal(err)
		}
	}
	if got := db.Stats().Checkpoints; got != 0 {
		t.Fatalf("%d checkpoints completed while the database was locked", got)
	}
	if got := lastHeartbeat(t, db, "a"); !got.Equal(last) {
		t.Errorf("last heartbeat during the checkpoint %v, want %v", got, last)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for db.Stats().Checkpoints == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the checkpoint did not complete after the database was released")
		}
		// The writer notices a finished checkpoint after a batch.
		if err := heartbeat(ctx, db, "a", "host", 1, last); err != nil {
			t.Fatal(err)
		}
	}
	if got := lastHeartbeat(t, db, "a"); !got.Equal(last) {
		t.Errorf("last heartbeat after the checkpoint %v, want %v", got, last)
	}
}

// TestHeartbeatRollback: a write that aborts rolls back the transaction of
// its batch. What the writer learnt of task instances inside it must not
// outlive it: here the first run of an update moves the task instance to
// another host and its retry is refused, so the move never happened.
func TestHeartbeatRollback(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	runningTI(t, db, "a", "host", 1)
	boom := errors.New("boom")
	refused := errors.New("refused on retry")
	release := holdWriter(t, db)
	var wg sync.WaitGroup
	calls := 0
	wg.Go(func() {
		_, err := db.UpdateTaskInstance(ctx, "a", func(ti *workload.TaskInstance) error {
			if calls++; calls > 1 {
				return refused
			}
			ti.Hostname = "moved"
			return nil
		})
		if !errors.Is(err, refused) {
			t.Errorf("update: %v, want %v", err, refused)
		}
	})
	waitQueued(t, db, 1)
	wg.Go(func() {
		if err := db.write(ctx, func(*bolt.Tx) error { return &abortError{boom} }); !errors.Is(err, boom) {
			t.Errorf("aborting write: %v, want %v", err, boom)
		}
	})
	waitQueued(t, db, 2)
	release()
	wg.Wait()
	if calls != 2 {
		t.Fatalf("update ran %d times, want 2 (the batch was not retried)", calls)
	}
	if err := heartbeat(ctx, db, "a", "host", 1, t0.Add(time.Minute)); err != nil {
		t.Errorf("heartbeat from the task's host: %v", err)
	}
	var ce *workload.ConflictError
	if err := heartbeat(ctx, db, "a", "moved", 1, t0.Add(time.Minute)); !errors.As(err, &ce) {
		t.Errorf("heartbeat from the host of the rolled-back update: %v, want a conflict", err)
	}
}

// TestHeartbeatSharesCommit: heartbeats and other writes in one batch all
// land, in one commit.
func TestHeartbeatSharesCommit(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	runningTI(t, db, "a", "host", 1)
	runningTI(t, db, "b", "host", 2)
	release := holdWriter(t, db)
	var wg sync.WaitGroup
	t1 := t0.Add(time.Minute)
	wg.Go(func() {
		if err := heartbeat(ctx, db, "a", "host", 1, t1); err != nil {
			t.Errorf("heartbeat: %v", err)
		}
	})
	waitQueued(t, db, 1)
	wg.Go(func() {
		if err := db.PutVariable(ctx, workload.Variable{Key: "k", Value: ptr("v")}); err != nil {
			t.Errorf("variable: %v", err)
		}
	})
	waitQueued(t, db, 2)
	wg.Go(func() {
		if err := heartbeat(ctx, db, "b", "host", 2, t1); err != nil {
			t.Errorf("heartbeat: %v", err)
		}
	})
	waitQueued(t, db, 3)
	before := db.Stats()
	release()
	wg.Wait()
	if got := db.Stats(); got.Commits-before.Commits != 2 || got.Writes-before.Writes != 4 {
		t.Errorf("commits %d, writes %d after the hold; want 2 and 4 (the hold, then one batch of three)",
			got.Commits-before.Commits, got.Writes-before.Writes)
	}
	for _, id := range []string{"a", "b"} {
		if got := lastHeartbeat(t, db, id); !got.Equal(t1) {
			t.Errorf("%s: last heartbeat %v, want %v", id, got, t1)
		}
	}
	if v, err := db.Variable(ctx, "k"); err != nil || *v.Value != "v" {
		t.Errorf("variable: %+v, %v", v, err)
	}
}

// holdWriter keeps the writer busy in a transaction until release is
// called, so that the writes queued meanwhile share the next batch.
func holdWriter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	started := make(chan struct{})
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := db.write(context.Background(), func(*bolt.Tx) error {
			close(started)
			<-done
			return nil
		}); err != nil {
			t.Errorf("holding write: %v", err)
		}
	})
	<-started
	return func() {
		close(done)
		wg.Wait()
	}
}

func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for db.queued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", db.queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHeartbeatConcurrent races heartbeats with the state changes that end
// them: every heartbeat acknowledged is one the task instance was running
// for, and the last acknowledged one is what is stored.
func TestHeartbeatConcurrent(t *testing.T) {
	db, _ := openTest(t)
	ctx := context.Background()
	const n = 20
	for i := range n {
		runningTI(t, db, fmt.Sprint("ti-", i), "host", i)
	}
	var wg sync.WaitGroup
	acked := make([]time.Time, n)
	for i := range n {
		id := fmt.Sprint("ti-", i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for k := 1; ; k++ {
				at := t0.Add(time.Duration(k) * time.Millisecond)
				if err := heartbeat(ctx, db, id, "host", i, at); err != nil {
					var ce *workload.ConflictError
					if !errors.As(err, &ce) {
						t.Errorf("%s: %v", id, err)
					}
					return
				}
				acked[i] = at
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := db.UpdateTaskInstance(ctx, id, func(ti *workload.TaskInstance) error {
				_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateFailed, EndDate: ptr(t0)}, t0)
				return err
			}); err != nil {
				t.Errorf("%s: fail: %v", id, err)
			}
		}()
	}
	wg.Wait()
	for i := range n {
		id := fmt.Sprint("ti-", i)
		want := acked[i]
		if want.IsZero() {
			want = t0
		}
		if got := lastHeartbeat(t, db, id); !got.Equal(want) {
			t.Errorf("%s: last heartbeat %v, want the last acknowledged %v", id, got, want)
		}
	}
}

func TestHeartbeatLogHeaders(t *testing.T) {
	header := binary.BigEndian.AppendUint64(append([]byte(nil), heartbeatLogMagic...), 7)
	for _, c := range []struct {
		name    string
		data    []byte
		wantErr bool
	}{
		{"empty", nil, false},
		{"zeros", make([]byte, 4096), false},
		{"magic cut short", heartbeatLogMagic[:3], false},
		{"magic then zeros", append(append([]byte(nil), heartbeatLogMagic[:5]...), make([]byte, 100)...), false},
		{"header cut short", header[:12], false},
		{"foreign", []byte("not a heartbeat log at all"), true},
		{"older format", []byte("TGHBLOG1"), true},
	} {
		gen, times, _, err := parseHeartbeatLog(bytes.NewReader(c.data))
		if (err != nil) != c.wantErr || (err != nil && !errors.Is(err, ErrCorrupt)) {
			t.Errorf("%s: error %v, want error %v", c.name, err, c.wantErr)
		}
		if err == nil && (gen != 0 || len(times) != 0) {
			t.Errorf("%s: generation %d, %d entries; want an empty log", c.name, gen, len(times))
		}
	}
	// Records of an earlier generation after the valid ones are stale.
	data := appendHeartbeatRecord(append([]byte(nil), header...), 7, "a", t0)
	data = appendHeartbeatRecord(data, 6, "b", t0)
	if _, times, _, err := parseHeartbeatLog(bytes.NewReader(data)); err != nil || len(times) != 1 {
		t.Errorf("stale record read: %v, %v", times, err)
	}
}

func FuzzParseHeartbeatLog(f *testing.F) {
	valid := binary.BigEndian.AppendUint64(append([]byte(nil), heartbeatLogMagic...), 3)
	valid = appendHeartbeatRecord(valid, 3, "0193c1d2-7a1e-7c3e-9f00-000000000001", t0)
	valid = appendHeartbeatRecord(valid, 3, "b", t0.Add(time.Second))
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add([]byte("TGHB"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		gen, times, n, err := parseHeartbeatLog(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if n > int64(len(data)) {
			t.Fatalf("valid part %d longer than the input %d", n, len(data))
		}
		// The valid part parses to the same.
		if n > 0 {
			gen2, again, m, err := parseHeartbeatLog(bytes.NewReader(data[:n]))
			if err != nil || m != n || gen2 != gen || len(again) != len(times) {
				t.Fatalf("valid part reparsed: %d entries, %d bytes, %v; want %d, %d", len(again), m, err, len(times), n)
			}
		}
	})
}

// commitObserver records what the writer reports.
type commitObserver struct {
	mu          sync.Mutex
	writes      int
	commits     int
	checkpoints int
}

func (o *commitObserver) ObserveCommit(writes int, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if took >= 0 {
		o.writes += writes
		o.commits++
	}
}

func (o *commitObserver) ObserveCheckpoint(ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ok {
		o.checkpoints++
	}
}

// TestObserver: every committed write, heartbeats included, and every
// checkpoint is reported, as Stats counts them.
func TestObserver(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "taskgate.db"), Options{checkpointBytes: 512})
	var obs commitObserver
	db.SetObserver(&obs)
	ctx := context.Background()
	runningTI(t, db, "a", "host", 1)
	for i := range 100 {
		if err := heartbeat(ctx, db, "a", "host", 1, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	st := db.Stats()
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.writes < 100 || obs.commits == 0 || obs.commits > int(st.Commits) {
		t.Errorf("observed %d writes in %d commits, want ≥ 100 heartbeats in at most %d", obs.writes, obs.commits, st.Commits)
	}
	// The writer may be between reporting a checkpoint and counting it.
	if d := int64(obs.checkpoints) - int64(st.Checkpoints); obs.checkpoints == 0 || d < -1 || d > 1 {
		t.Errorf("observed %d checkpoints, Stats has %d", obs.checkpoints, st.Checkpoints)
	}
}
