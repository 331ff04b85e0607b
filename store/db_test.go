package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/internal/fakeclock"
	"github.com/taskgate/taskgate/workload"
)

func TestOpenCreatesPrivateDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	path := filepath.Join(dir, "taskgate.db")
	openAt(t, path, Options{})
	for _, tt := range []struct {
		path string
		want os.FileMode
	}{
		{dir, 0o700 | os.ModeDir},
		{path, 0o600},
	} {
		fi, err := os.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		// The umask can only remove bits; none of group/other may be set.
		if fi.Mode()&0o077 != 0 || fi.Mode().Type() != tt.want.Type() {
			t.Errorf("%s mode = %v, want %v", tt.path, fi.Mode(), tt.want)
		}
	}
}

func TestOpenLockedFailsWithinTimeout(t *testing.T) {
	_, path := openTest(t)
	start := time.Now()
	db2, err := Open(path, Options{OpenTimeout: 100 * time.Millisecond})
	if err == nil {
		db2.Close()
		t.Fatal("second Open succeeded, want ErrLocked")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	// Generous bound: the point is that it does not hang.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second Open took %v", d)
	}
}

func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskgate.db")
	t.Run("missing file", func(t *testing.T) {
		if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Open read-only of missing file: %v, want os.ErrNotExist", err)
		}
	})
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutVariable(ctx, workload.Variable{Key: "k", Value: ptr("v")}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	ro := openAt(t, path, Options{ReadOnly: true})
	got, err := ro.Variable(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&workload.Variable{Key: "k", Value: ptr("v")}, got); diff != "" {
		t.Errorf("Variable (-want +got):\n%s", diff)
	}
	if err := ro.PutVariable(ctx, workload.Variable{Key: "x"}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("PutVariable on read-only: %v, want ErrReadOnly", err)
	}
	if _, err := Open(path, Options{OpenTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("read-write Open beside a reader: %v, want ErrLocked", err)
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "taskgate.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := db.Variable(ctx, "k"); !errors.Is(err, ErrClosed) {
		t.Errorf("Variable after Close: %v, want ErrClosed", err)
	}
	if err := db.PutVariable(ctx, workload.Variable{Key: "k"}); !errors.Is(err, ErrClosed) {
		t.Errorf("PutVariable after Close: %v, want ErrClosed", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "taskgate.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte(strconv.Itoa(schemaVersion+1)))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err := Open(path, Options{}); err == nil {
		db.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
}

func TestCanceledContextWritesNothing(t *testing.T) {
	db, _ := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.PutVariable(ctx, workload.Variable{Key: "k"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutVariable: %v, want context.Canceled", err)
	}
	if _, err := db.Variable(context.Background(), "k"); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("Variable after canceled put: %v, want ErrNotFound", err)
	}
	if _, err := db.Variable(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Variable with canceled ctx: %v, want context.Canceled", err)
	}
}

// TestReopenKeepsAcknowledgedRecords writes every kind of record from
// concurrent goroutines, closes, reopens and reads everything back.
func TestReopenKeepsAcknowledgedRecords(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskgate.db")
	opts := Options{BatchDelay: batchDelay, Now: fakeclock.New(t0).Now}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("ti-%02d", i)
			dr := dagRun("dag", fmt.Sprintf("run-%02d", i), t0.Add(time.Duration(i)*time.Minute))
			if _, err := db.InsertTaskInstance(ctx, dr, taskInstance(id, "dag", dr.RunID, "t", -1), nil); err != nil {
				errs <- err
				return
			}
			errs <- db.SetXCom(ctx, workload.XCom{XComRef: workload.XComRef{DagID: "dag", RunID: dr.RunID, TaskID: "t", MapIndex: -1, Key: "return_value"}, Value: []byte(strconv.Itoa(i))})
			errs <- db.PutVariable(ctx, workload.Variable{Key: fmt.Sprintf("var-%02d", i), Value: ptr(strconv.Itoa(i))})
			errs <- db.PutConnection(ctx, workload.Connection{ConnID: fmt.Sprintf("conn-%02d", i), ConnType: "http", Port: ptr(i)})
			errs <- db.PutRenderedFields(ctx, id, []byte(`{"i":`+strconv.Itoa(i)+`}`))
		})
	}
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
	tis, _, err := db.TaskInstances(ctx, workload.TaskInstanceFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tis) != n {
		t.Fatalf("TaskInstances after reopen: %d, want %d", len(tis), n)
	}
	for i := range n {
		id := fmt.Sprintf("ti-%02d", i)
		runID := fmt.Sprintf("run-%02d", i)
		want := taskInstance(id, "dag", runID, "t", -1)
		if diff := cmp.Diff(want, tis[i]); diff != "" {
			t.Errorf("task instance %d (-want +got):\n%s", i, diff)
		}
		if _, err := db.DagRun(ctx, "dag", runID); err != nil {
			t.Errorf("DagRun %s: %v", runID, err)
		}
		xs, err := db.XComs(ctx, workload.XComQuery{DagID: "dag", RunID: runID, TaskID: "t", Key: "return_value"})
		if err != nil || len(xs) != 1 || string(xs[0].Value) != strconv.Itoa(i) {
			t.Errorf("XComs %s = %v, %v", runID, xs, err)
		}
		if v, err := db.Variable(ctx, fmt.Sprintf("var-%02d", i)); err != nil || *v.Value != strconv.Itoa(i) {
			t.Errorf("Variable %d = %v, %v", i, v, err)
		}
		if c, err := db.Connection(ctx, fmt.Sprintf("conn-%02d", i)); err != nil || *c.Port != i {
			t.Errorf("Connection %d = %v, %v", i, c, err)
		}
		if rf, ok := storedRenderedFields(t, db, id); !ok || rf != `{"i":`+strconv.Itoa(i)+`}` {
			t.Errorf("rendered fields %d = %s, %v", i, rf, ok)
		}
	}
}

// TestConcurrentWritersShareCommits is the heartbeat storm: 1024 goroutines
// heartbeating their own running task instance must share fsyncs. It counts
// commits; it does not time anything.
func TestConcurrentWritersShareCommits(t *testing.T) {
	for _, tt := range []struct {
		name  string
		delay time.Duration
		// procs sets GOMAXPROCS for the run (0: leave it): one scheduler
		// thread is where a writer that does not yield collapses.
		procs int
	}{
		{"gateway default delay", batchDelay, 0},
		{"zero delay", 0, 0},
		{"gateway default delay one thread", batchDelay, 1},
		{"zero delay one thread", 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.procs > 0 {
				prev := runtime.GOMAXPROCS(tt.procs)
				t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
			}
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "taskgate.db")
			db := openAt(t, path, Options{BatchDelay: tt.delay, Now: fakeclock.New(t0).Now})
			const writers, rounds = 1024, 8
			var wg sync.WaitGroup
			for i := range writers {
				wg.Go(func() {
					ti := taskInstance(fmt.Sprintf("ti-%04d", i), "dag", "run", "t", i)
					ti.State, ti.Hostname, ti.PID = workload.StateRunning, "host", i
					if _, err := db.InsertTaskInstance(ctx, dagRun("dag", "run", t0), ti, nil); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				t.FailNow()
			}
			before := db.Stats()
			var failed atomic.Int64
			for i := range writers {
				wg.Go(func() {
					id := fmt.Sprintf("ti-%04d", i)
					for r := range rounds {
						_, err := db.UpdateTaskInstance(ctx, id, func(ti *workload.TaskInstance) error {
							return heartbeatRecord(ti, "host", i, t0.Add(time.Duration(r+1)*time.Second))
						})
						if err != nil {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			if n := failed.Load(); n > 0 {
				t.Fatalf("%d heartbeats failed", n)
			}
			after := db.Stats()
			writes, commits := after.Writes-before.Writes, after.Commits-before.Commits
			if writes != writers*rounds {
				t.Fatalf("writes = %d, want %d", writes, writers*rounds)
			}
			ratio := float64(writes) / float64(commits)
			t.Logf("%d writes in %d commits: %.1f writes per commit", writes, commits, ratio)
			if ratio < 8 {
				t.Errorf("%.1f writes per commit, want at least 8", ratio)
			}
			// Every heartbeat of the last round is stored.
			for i := range writers {
				ti, err := db.TaskInstance(ctx, fmt.Sprintf("ti-%04d", i))
				if err != nil {
					t.Fatal(err)
				}
				if want := t0.Add(rounds * time.Second); !ti.LastHeartbeatAt.Equal(want) {
					t.Fatalf("ti %d heartbeat %v, want %v", i, ti.LastHeartbeatAt, want)
				}
			}
		})
	}
}

// TestRefusalDoesNotRerunOthers checks that a refused write (fn returned an
// error) neither fails the shared transaction nor makes the others re-run.
func TestRefusalDoesNotRerunOthers(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	const n = 256
	for i := range n {
		mustInsert(t, db, taskInstance(fmt.Sprintf("ti-%03d", i), "dag", "run", "t", i))
	}
	refused := errors.New("refused")
	calls := make([]atomic.Int32, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := db.UpdateTaskInstance(ctx, fmt.Sprintf("ti-%03d", i), func(ti *workload.TaskInstance) error {
				calls[i].Add(1)
				if i%2 == 1 {
					ti.State = workload.StateFailed // must not be stored
					return refused
				}
				ti.State = workload.StateRunning
				return nil
			})
			if want := error(nil); i%2 == 1 {
				want = refused
				if err != want { // returned unchanged, not wrapped
					t.Errorf("ti %d: %v, want %v", i, err, want)
				}
			} else if err != nil {
				t.Errorf("ti %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		if c := calls[i].Load(); c != 1 {
			t.Errorf("ti %d: fn called %d times, want 1", i, c)
		}
		ti, err := db.TaskInstance(ctx, fmt.Sprintf("ti-%03d", i))
		if err != nil {
			t.Fatal(err)
		}
		want := workload.StateRunning
		if i%2 == 1 {
			want = workload.StateQueued
		}
		if ti.State != want {
			t.Errorf("ti %d state %s, want %s", i, ti.State, want)
		}
	}
}

// TestAbortRetriesOthers drives the writer's abort path (a Put failing after
// other writes were made) directly: the failing write gets its error, the
// others are re-run and committed.
func TestAbortRetriesOthers(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	boom := errors.New("disk says no")
	var runs atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 20 {
		wg.Go(func() {
			<-start
			err := db.write(ctx, func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketVariables)
				if err := put(b, []byte(fmt.Sprintf("k%02d", i)), []byte(`{"key":"x"}`)); err != nil {
					return err
				}
				if i == 7 {
					return &abortError{boom}
				}
				runs.Add(1)
				return nil
			})
			if i == 7 {
				if !errors.Is(err, boom) {
					t.Errorf("aborting write: %v, want %v", err, boom)
				}
			} else if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	keys, total, err := db.VariableKeys(ctx, "k", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 20 {
		if i != 7 {
			want = append(want, fmt.Sprintf("k%02d", i))
		}
	}
	if diff := cmp.Diff(want, keys); diff != "" || total != len(want) {
		t.Errorf("keys after abort (total %d) (-want +got):\n%s", total, diff)
	}
	if got := runs.Load(); got < 19 {
		t.Errorf("%d successful runs, want at least 19", got)
	}
}

func TestPanicInCallbackReachesCaller(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustInsert(t, db, taskInstance("ti", "dag", "run", "t", -1))
	func() {
		defer func() {
			if p := recover(); p != "kaboom" {
				t.Errorf("recovered %v, want kaboom", p)
			}
		}()
		db.UpdateTaskInstance(ctx, "ti", func(ti *workload.TaskInstance) error { panic("kaboom") })
		t.Error("UpdateTaskInstance returned instead of panicking")
	}()
	// The writer survived.
	if err := db.PutVariable(ctx, workload.Variable{Key: "after"}); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptRecords plants undecodable records and keys: every read gives an
// error wrapping ErrCorrupt, never a panic.
func TestCorruptRecords(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	mustInsert(t, db, taskInstance("good", "dag", "run", "t", -1))
	garbage := []byte("\x00{not json")
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, kv := range []struct {
			bucket, key, value []byte
		}{
			{bucketTaskInstances, []byte("bad"), garbage},
			{bucketCurrentTI, currentTIKey("dag", "run", "t", 5), []byte("bad")},
			{bucketDagRuns, dagRunKey("dag", "badrun"), garbage},
			{bucketDagRunsByLogicalDate, dagRunTimeKey("dag", t0.Add(-time.Hour), "badrun"), nil},
			{bucketVariables, []byte("bad"), garbage},
			{bucketConnections, []byte("bad"), garbage},
			{bucketXComs, xcomKey("dag", "run", "t", "bad", -1), garbage},
			{bucketXComs, append(tuple("dag", "run", "t2"), 0, 7), []byte{}},
		} {
			if err := tx.Bucket(kv.bucket).Put(kv.key, kv.value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]func() error{
		"TaskInstance": func() error { _, err := db.TaskInstance(ctx, "bad"); return err },
		"UpdateTaskInstance": func() error {
			_, err := db.UpdateTaskInstance(ctx, "bad", func(*workload.TaskInstance) error { return nil })
			return err
		},
		"InsertTaskInstance over bad current": func() error {
			_, err := db.InsertTaskInstance(ctx, dagRun("dag", "run", t0), taskInstance("new", "dag", "run", "t", 5), nil)
			return err
		},
		"TaskInstances": func() error { _, _, err := db.TaskInstances(ctx, workload.TaskInstanceFilter{}); return err },
		"SkipTaskInstances": func() error {
			return db.SkipTaskInstances(ctx, "dag", "run", []workload.TaskRef{{TaskID: "t"}}, func(*workload.TaskInstance) bool { return true })
		},
		"DagRun":                   func() error { _, err := db.DagRun(ctx, "dag", "badrun"); return err },
		"PreviousSuccessfulDagRun": func() error { _, err := db.PreviousSuccessfulDagRun(ctx, "dag", t0); return err },
		"SetXCom": func() error {
			return db.SetXCom(ctx, workload.XCom{XComRef: workload.XComRef{DagID: "dag", RunID: "badrun", TaskID: "t", Key: "k"}})
		},
		"Variable":        func() error { _, err := db.Variable(ctx, "bad"); return err },
		"ListVariables":   func() error { _, err := db.ListVariables(ctx); return err },
		"Connection":      func() error { _, err := db.Connection(ctx, "bad"); return err },
		"ListConnections": func() error { _, err := db.ListConnections(ctx); return err },
		"XComs": func() error {
			_, err := db.XComs(ctx, workload.XComQuery{DagID: "dag", RunID: "run", TaskID: "t", Key: "bad"})
			return err
		},
		"XComKeys bad key": func() error { _, err := db.XComKeys(ctx, "dag", "run", "t2", -1); return err },
	}
	for name, check := range checks {
		t.Run(name, func(t *testing.T) {
			if err := check(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%v, want ErrCorrupt", err)
			}
		})
	}
	// The good record is still readable.
	if _, err := db.TaskInstance(ctx, "good"); err != nil {
		t.Errorf("good record: %v", err)
	}
}

func TestInvalidKeysRefusedBeforeWrite(t *testing.T) {
	ctx := context.Background()
	db, _ := openTest(t)
	long := string(make([]byte, bolt.MaxKeySize+1))
	checks := map[string]error{
		"empty variable key": db.PutVariable(ctx, workload.Variable{}),
		"long variable key":  db.PutVariable(ctx, workload.Variable{Key: long}),
		"empty connection":   db.PutConnection(ctx, workload.Connection{}),
		"empty ti id": func() error {
			_, err := db.InsertTaskInstance(ctx, dagRun("d", "r", t0), taskInstance("", "d", "r", "t", -1), nil)
			return err
		}(),
		"long xcom key": db.SetXCom(ctx, workload.XCom{XComRef: workload.XComRef{DagID: "d", RunID: "r", TaskID: "t", Key: long}}),
	}
	for name, err := range checks {
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: %v, want ErrInvalidKey", name, err)
		}
	}
}

// TestCloseAnswersEveryWrite closes the database while writes are in flight:
// each write either fails with ErrClosed or is acknowledged, and every
// acknowledged one is there after reopening.
func TestCloseAnswersEveryWrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "taskgate.db")
	db, err := Open(path, Options{BatchDelay: batchDelay})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	acked := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := db.PutVariable(ctx, workload.Variable{Key: fmt.Sprintf("k%03d", i), Value: ptr("v")})
			switch {
			case err == nil:
				acked[i] = true
			case !errors.Is(err, ErrClosed):
				t.Errorf("write %d: %v", i, err)
			}
		})
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	db = openAt(t, path, Options{})
	for i := range n {
		_, err := db.Variable(ctx, fmt.Sprintf("k%03d", i))
		if acked[i] && err != nil {
			t.Errorf("acknowledged write %d lost: %v", i, err)
		}
	}
}
