package store

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskgate/taskgate/workload"
)

// BenchmarkHeartbeat is the heartbeat storm: every goroutine heartbeats its
// own running task instance. It reports writes per commit, the number that
// shows whether group commit still works, and compares a heartbeat stored by rewriting the task
// instance's record (UpdateTaskInstance with the heartbeat rule) with one
// appended to the heartbeat log (Heartbeat), at several numbers of
// concurrent writers.
func BenchmarkHeartbeat(b *testing.B) {
	for _, path := range []string{"record", "log"} {
		for _, perCPU := range []int{1, 32, 512} {
			goroutines := perCPU * runtime.GOMAXPROCS(0)
			b.Run(fmt.Sprintf("path=%s/goroutines=%d", path, goroutines), func(b *testing.B) {
				benchmarkHeartbeat(b, path == "log", perCPU, goroutines)
			})
		}
	}
}

func benchmarkHeartbeat(b *testing.B, viaLog bool, perCPU, goroutines int) {
	ctx := context.Background()
	db, _ := openTest(b)
	var wg sync.WaitGroup
	for i := range goroutines {
		wg.Go(func() {
			ti := taskInstance(fmt.Sprintf("ti-%05d", i), "dag", "run", "t", i)
			ti.State, ti.Hostname, ti.PID = workload.StateRunning, "host", i
			if _, err := db.InsertTaskInstance(ctx, dagRun("dag", "run", t0), ti, nil); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	var next atomic.Int64
	before := db.Stats()
	b.SetParallelism(perCPU)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % goroutines
		id := fmt.Sprintf("ti-%05d", i)
		now := t0
		for pb.Next() {
			now = now.Add(time.Second)
			var err error
			if viaLog {
				err = heartbeat(ctx, db, id, "host", i, now)
			} else {
				_, err = db.UpdateTaskInstance(ctx, id, func(ti *workload.TaskInstance) error {
					return heartbeatRecord(ti, "host", i, now)
				})
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportWritesPerCommit(b, db, before)
}

// reportWritesPerCommit reports the writes per commit since before: the
// number that shows whether group commit still works.
func reportWritesPerCommit(b *testing.B, db *DB, before Stats) {
	s := db.Stats()
	if commits := s.Commits - before.Commits; commits > 0 {
		b.ReportMetric(float64(s.Writes-before.Writes)/float64(commits), "writes/commit")
	}
}

func BenchmarkTaskInstance(b *testing.B) {
	ctx := context.Background()
	db, _ := openTest(b)
	mustInsert(b, db, taskInstance("ti", "dag", "run", "t", -1))
	for b.Loop() {
		if _, err := db.TaskInstance(ctx, "ti"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVariable(b *testing.B) {
	ctx := context.Background()
	db, _ := openTest(b)
	if err := db.PutVariable(ctx, workload.Variable{Key: "config", Value: ptr(`{"a":1,"b":[1,2,3]}`)}); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Variable(ctx, "config"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := db.Variable(ctx, "config"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkSetXCom(b *testing.B) {
	for _, perCPU := range []int{1, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", perCPU*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			ctx := context.Background()
			db, _ := openTest(b)
			mustInsert(b, db, taskInstance("ti", "dag", "run", "t", -1))
			var next atomic.Int64
			before := db.Stats()
			b.SetParallelism(perCPU)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mi := int(next.Add(1))
				for pb.Next() {
					x := workload.XCom{XComRef: xref("dag", "run", "t", "return_value", mi), Value: []byte(`{"rows":123,"path":"s3://bucket/key"}`)}
					if err := db.SetXCom(ctx, x); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			reportWritesPerCommit(b, db, before)
		})
	}
}

func BenchmarkXComs(b *testing.B) {
	ctx := context.Background()
	db, _ := openTest(b)
	for r := range 10 {
		run := fmt.Sprintf("run-%02d", r)
		mustInsertRun(b, db, dagRun("dag", run, t0.Add(time.Duration(r)*time.Hour)), taskInstance(run, "dag", run, "t", -1))
		for mi := -1; mi < 4; mi++ {
			if err := db.SetXCom(ctx, workload.XCom{XComRef: xref("dag", run, "t", "return_value", mi), Value: []byte(`"v"`)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, tt := range []struct {
		name string
		q    workload.XComQuery
	}{
		{"one slot", workload.XComQuery{DagID: "dag", RunID: "run-09", TaskID: "t", Key: "return_value", MapIndex: ptr(-1)}},
		{"every map index", workload.XComQuery{DagID: "dag", RunID: "run-09", TaskID: "t", Key: "return_value"}},
		{"include prior dates 10 runs", workload.XComQuery{DagID: "dag", RunID: "run-09", TaskID: "t", Key: "return_value", MapIndex: ptr(-1), IncludePriorDates: true}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := db.XComs(ctx, tt.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkInsertTaskInstance(b *testing.B) {
	ctx := context.Background()
	db, _ := openTest(b)
	var next atomic.Int64
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			ti := taskInstance(fmt.Sprintf("ti-%d", n), "dag", "run", "t", int(n))
			if _, err := db.InsertTaskInstance(ctx, dagRun("dag", "run", t0), ti, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCheckpoint moves the heartbeats of 10 000 task instances from
// the log into the heartbeats bucket, as a checkpoint in a heartbeat storm
// does.
func BenchmarkCheckpoint(b *testing.B) {
	const n = 10000
	ctx := context.Background()
	// The default log size: the writer itself does not checkpoint 10 000
	// heartbeats.
	db := openAt(b, filepath.Join(b.TempDir(), "taskgate.db"), Options{checkpointBytes: defaultCheckpointBytes})
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("0193c1d2-7a1e-7c3e-9f00-%012d", i)
		ti := taskInstance(ids[i], "dag", "run", "t", i)
		ti.State, ti.Hostname, ti.PID = workload.StateRunning, "host", i
		if _, err := db.InsertTaskInstance(ctx, dagRun("dag", "run", t0), ti, nil); err != nil {
			b.Fatal(err)
		}
	}
	now := t0
	for b.Loop() {
		b.StopTimer()
		now = now.Add(time.Second)
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() {
				if err := heartbeat(ctx, db, id, "host", i, now); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		if got := len(db.times.cur); got != n {
			b.Fatalf("%d heartbeats logged, want %d", got, n)
		}
		db.mu.Lock() // the writer is idle: nothing is queued
		b.StartTimer()
		err := db.checkpointAll()
		b.StopTimer()
		db.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
