package pgstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/internal/pgtest"
	"github.com/taskgate/taskgate/workload"
)

// runningTIs inserts n task instances running on worker h with pid 1+i:
// the first as Airflow's fixture writes it, the others copies of its row.
func runningTIs(t testing.TB, af *pgtest.Airflow, n int) []string {
	t.Helper()
	first := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "d", TaskID: "t0", State: "running", Hostname: "h",
		PID: ptr(1), StartDate: &t0, LastHeartbeatAt: &t0})
	ids := []string{first.ID}
	for range n - 1 {
		ids = append(ids, pgtest.UUIDv7())
	}
	if n > 1 {
		af.Exec(t, `INSERT INTO task_instance (id, task_id, dag_id, run_id, map_index, start_date, state, try_number,
				max_tries, hostname, unixname, pool, pool_slots, queue, priority_weight, operator, custom_operator_name,
				queued_dttm, scheduled_dttm, last_heartbeat_at, pid, executor_config, updated_at, context_carrier,
				span_status, task_display_name, dag_version_id)
			SELECT u.id, 't' || (u.n - 1), f.dag_id, f.run_id, f.map_index, f.start_date, f.state, f.try_number,
				f.max_tries, f.hostname, f.unixname, f.pool, f.pool_slots, f.queue, f.priority_weight, f.operator,
				f.custom_operator_name, f.queued_dttm, f.scheduled_dttm, f.last_heartbeat_at, u.n, f.executor_config,
				f.updated_at, f.context_carrier, f.span_status, 't' || (u.n - 1), f.dag_version_id
			FROM task_instance f, unnest($1::uuid[]) WITH ORDINALITY u(id, n)
			WHERE f.id = $2 AND u.n > 1`, ids, first.ID)
	}
	return ids
}

// hbCase is a heartbeat and the answer it must get.
type hbCase struct {
	name       string
	id         string
	req        workload.HeartbeatRequest
	wantReason string // "" = admitted
	wantErr    error
}

// check reports, as test failures, how err differs from the answer c
// expects, and whether it matched.
func (c hbCase) check(t *testing.T, err error) bool {
	t.Helper()
	var ce *workload.ConflictError
	switch {
	case c.wantErr != nil:
		if !errors.Is(err, c.wantErr) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.wantErr)
			return false
		}
	case c.wantReason != "":
		if !errors.As(err, &ce) || ce.Reason != c.wantReason {
			t.Errorf("%s: err = %v, want %s", c.name, err, c.wantReason)
			return false
		}
	case err != nil:
		t.Errorf("%s: %v", c.name, err)
		return false
	}
	return true
}

// TestHeartbeatRules: a heartbeat is judged by the given rule against the
// row, and only an admitted one moves last_heartbeat_at and updated_at.
func TestHeartbeatRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, _ := newTestStore(t)
	ids := runningTIs(t, af, 1)
	success := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "d2", TaskID: "done", State: "success", Hostname: "h", PID: ptr(1)}).ID
	at := t0.Add(5 * time.Second)
	tests := []hbCase{
		{"owner", ids[0], workload.HeartbeatRequest{Hostname: "h", PID: 1, At: at}, "", nil},
		// The batch's answers are matched by the id PostgreSQL writes.
		{"upper-case id", strings.ToUpper(ids[0]), workload.HeartbeatRequest{Hostname: "h", PID: 1, At: at}, "", nil},
		{"other pid", ids[0], workload.HeartbeatRequest{Hostname: "h", PID: 2, At: at}, "running_elsewhere", nil},
		{"other host", ids[0], workload.HeartbeatRequest{Hostname: "x", PID: 1, At: at}, "running_elsewhere", nil},
		{"not running", success, workload.HeartbeatRequest{Hostname: "h", PID: 1, At: at}, "not_running", nil},
		{"unknown", pgtest.UUIDv7(), workload.HeartbeatRequest{Hostname: "h", PID: 1, At: at}, "", workload.ErrNotFound},
		{"not a uuid", "x", workload.HeartbeatRequest{Hostname: "h", PID: 1, At: at}, "", workload.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before time.Time
			if validUUID(tt.id) && tt.wantErr == nil {
				scanRow(t, db, `SELECT coalesce(last_heartbeat_at, 'epoch') FROM task_instance WHERE id = $1`, []any{tt.id}, &before)
			}
			if !tt.check(t, db.Heartbeat(ctx, tt.id, tt.req, workload.AdmitHeartbeat)) || tt.wantErr != nil {
				return
			}
			var hb, updated time.Time
			scanRow(t, db, `SELECT coalesce(last_heartbeat_at, 'epoch'), updated_at FROM task_instance WHERE id = $1`,
				[]any{tt.id}, &hb, &updated)
			if tt.wantReason == "" && (!hb.Equal(at) || !updated.Equal(at)) {
				t.Errorf("admitted: last_heartbeat_at %v updated_at %v, want %v", hb, updated, at)
			}
			if tt.wantReason != "" && !hb.Equal(before) {
				t.Errorf("refused heartbeat moved last_heartbeat_at from %v to %v", before, hb)
			}
		})
	}
}

// TestHeartbeatBatches: many concurrent heartbeats, of many task instances,
// are all answered after their commit, each with its own rule's verdict,
// and each instance holds its worker's latest admitted heartbeat.
func TestHeartbeatBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, _ := newTestStore(t)
	const tis, perTI = 40, 5
	ids := runningTIs(t, af, tis)
	var calls atomic.Int64
	rule := func(h workload.Holder, r workload.HeartbeatRequest) (time.Time, error) {
		calls.Add(1)
		return workload.AdmitHeartbeat(h, r)
	}
	var wg sync.WaitGroup
	errs := make([][]error, tis)
	for i, id := range ids {
		errs[i] = make([]error, perTI)
		wg.Add(1)
		go func() { // a worker heartbeats in sequence, workers in parallel
			defer wg.Done()
			for j := range perTI {
				pid := 1 + i
				if j == perTI-1 {
					pid = -1 // a stranger: refused
				}
				errs[i][j] = db.Heartbeat(ctx, id, workload.HeartbeatRequest{Hostname: "h", PID: pid,
					At: t0.Add(time.Duration(j+1) * time.Second)}, rule)
			}
		}()
	}
	wg.Wait()
	for i := range ids {
		for j, err := range errs[i] {
			var ce *workload.ConflictError
			if j == perTI-1 {
				if !errors.As(err, &ce) || ce.Reason != "running_elsewhere" {
					t.Errorf("ti %d stranger: %v", i, err)
				}
			} else if err != nil {
				t.Errorf("ti %d heartbeat %d: %v", i, j, err)
			}
		}
	}
	// Each instance holds its latest admitted heartbeat.
	var n int
	scanRow(t, db, `SELECT count(*) FROM task_instance WHERE id = ANY($1::uuid[]) AND last_heartbeat_at = $2`,
		[]any{ids, t0.Add((perTI - 1) * time.Second)}, &n)
	if n != tis {
		t.Errorf("%d of %d task instances hold their latest heartbeat", n, tis)
	}
	if c := calls.Load(); c < tis*perTI {
		t.Errorf("rule called %d times for %d heartbeats", c, tis*perTI)
	}
	if b := db.ti.batches.Load(); b >= tis*perTI {
		t.Errorf("%d transactions for %d concurrent heartbeats: no group commit", b, tis*perTI)
	} else {
		t.Logf("%d heartbeats in %d transactions", tis*perTI, b)
	}
}

// TestHeartbeatReplicas: two replicas heartbeating the same task instances
// at once (each batch locks its rows in id order) neither deadlock nor
// lose a heartbeat.
func TestHeartbeatReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, clk := newTestStore(t)
	other := openReplica(t, af.URL, clk)
	ids := runningTIs(t, af, 30)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for r, replica := range []*DB{db, other} {
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 5 {
					err := replica.Heartbeat(ctx, id, workload.HeartbeatRequest{Hostname: "h", PID: 1 + i,
						At: t0.Add(time.Duration(10*j+r) * time.Second)}, workload.AdmitHeartbeat)
					if err != nil {
						failed.Add(1)
						t.Errorf("replica %d ti %d: %v", r, i, err)
					}
				}
			}()
		}
	}
	wg.Wait()
	var n int
	scanRow(t, db, `SELECT count(*) FROM task_instance WHERE id = ANY($1::uuid[]) AND last_heartbeat_at >= $2`,
		[]any{ids, t0.Add(40 * time.Second)}, &n)
	if n != len(ids) {
		t.Errorf("%d of %d task instances hold a last-round heartbeat", n, len(ids))
	}
}

// TestHeartbeatArchivedTry: the heartbeat of a try Airflow moved into
// history (it ended in up_for_retry) is told the try no longer runs.
func TestHeartbeatArchivedTry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, clk := newTestStore(t)
	id := runningTIs(t, af, 1)[0]
	if _, err := db.UpdateTaskInstance(ctx, id, func(ti *workload.TaskInstance) error {
		_, err := workload.ApplyState(ti, workload.StateUpdate{State: workload.StateUpForRetry, EndDate: ptr(clk.Now())}, clk.Now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	err := db.Heartbeat(ctx, id, workload.HeartbeatRequest{Hostname: "h", PID: 1, At: clk.Now()}, workload.AdmitHeartbeat)
	var ce *workload.ConflictError
	if !errors.As(err, &ce) || ce.Reason != "not_running" || ce.Extra["current_state"] != "up_for_retry" {
		t.Errorf("err = %v, want not_running (up_for_retry)", err)
	}
}

// TestHeartbeatAfterClose: Close stops the writer; a later heartbeat is
// answered unavailable, not left waiting.
func TestHeartbeatAfterClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, _ := newTestStore(t)
	id := runningTIs(t, af, 1)[0]
	req := workload.HeartbeatRequest{Hostname: "h", PID: 1, At: t0}
	if err := db.Heartbeat(ctx, id, req, workload.AdmitHeartbeat); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := db.Heartbeat(ctx, id, req, workload.AdmitHeartbeat); !errors.Is(err, workload.ErrUnavailable) {
		t.Errorf("after Close: %v, want ErrUnavailable", err)
	}
}

// TestHeartbeatLostConnection: when the database goes away under waiting
// heartbeats, they are answered with errors wrapping
// workload.ErrUnavailable, and heartbeats succeed again once it is back.
func TestHeartbeatLostConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, _ := newTestStore(t)
	id := runningTIs(t, af, 1)[0]
	req := workload.HeartbeatRequest{Hostname: "h", PID: 1, At: t0}
	if err := db.Heartbeat(ctx, id, req, workload.AdmitHeartbeat); err != nil {
		t.Fatal(err)
	}
	// Refuse new connections to the database and end the open ones.
	var name string
	scanRow(t, db, `SELECT current_database()`, nil, &name)
	admin := pgtest.Server(t)
	pgtest.Exec(t, admin, `ALTER DATABASE `+name+` ALLOW_CONNECTIONS false`)
	pgtest.Exec(t, admin, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '`+name+`'`)
	err := db.Heartbeat(ctx, id, req, workload.AdmitHeartbeat)
	if !errors.Is(err, workload.ErrUnavailable) {
		t.Errorf("database gone: %v, want ErrUnavailable", err)
	}
	pgtest.Exec(t, admin, `ALTER DATABASE `+name+` ALLOW_CONNECTIONS true`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := db.Heartbeat(ctx, id, req, workload.AdmitHeartbeat)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkHeartbeat measures heartbeats through the group-commit writer
// against PostgreSQL, by 1 and 64 concurrent callers, each on its own
// running task instance (as workers do).
func BenchmarkHeartbeat(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			db, af, _ := newTestStore(b)
			ctx := context.Background()
			if clients == 1 {
				id := runningTIs(b, af, 1)[0]
				req := workload.HeartbeatRequest{Hostname: "h", PID: 1, At: t0}
				b.ResetTimer()
				for range b.N {
					if err := db.Heartbeat(ctx, id, req, workload.AdmitHeartbeat); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			// RunParallel runs parallelism × GOMAXPROCS goroutines.
			p := (clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
			ids := runningTIs(b, af, p*runtime.GOMAXPROCS(0))
			var next atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(p)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1) - 1)
				req := workload.HeartbeatRequest{Hostname: "h", PID: 1 + i, At: t0}
				var mine []time.Duration
				for pb.Next() {
					start := time.Now()
					if err := db.Heartbeat(ctx, ids[i], req, workload.AdmitHeartbeat); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			if len(lat) > 0 {
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(db.ti.batches.Load()), "batches")
			}
		})
	}
}

// hbObserver records the heartbeat batches a store reports.
type hbObserver struct {
	mu      sync.Mutex
	batches []int
}

func (o *hbObserver) ObserveHeartbeatBatch(n int, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if took >= 0 {
		o.batches = append(o.batches, n)
	}
}

// TestHeartbeatObserver: each heartbeat transaction is reported with the
// number of heartbeats it carried.
func TestHeartbeatObserver(t *testing.T) {
	t.Parallel()
	db, af, _ := newTestStore(t)
	ids := runningTIs(t, af, 1)
	var obs hbObserver
	db.SetObserver(&obs)
	for range 2 {
		if err := db.Heartbeat(context.Background(), ids[0], workload.HeartbeatRequest{Hostname: "h", PID: 1, At: t0.Add(time.Second)},
			workload.AdmitHeartbeat); err != nil {
			t.Fatal(err)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	total := 0
	for _, n := range obs.batches {
		total += n
	}
	if len(obs.batches) == 0 || total != 2 {
		t.Errorf("batches observed %v, want heartbeats adding up to 2", obs.batches)
	}
}

// TestHeartbeatBatchOutcomes runs one batch holding every kind of
// heartbeat at once: those that find their row as they name it are written
// by one statement, the others judged under row locks, and none of them
// changes another's answer (a hostname PostgreSQL cannot take as text
// fails no one but itself).
func TestHeartbeatBatchOutcomes(t *testing.T) {
	t.Parallel()
	db, af, _ := newTestStore(t)
	ids := runningTIs(t, af, 4)
	// ids[3] runs with an empty hostname and no pid recorded (NULL): read
	// as 0.
	af.Exec(t, `UPDATE task_instance SET hostname = '', pid = NULL WHERE id = $1`, ids[3])
	done := af.TaskInstance(t, pgtest.TaskInstanceRow{DagID: "d2", TaskID: "done", State: "success", Hostname: "h", PID: ptr(1)}).ID
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []hbCase{
		{"owner", ids[0], workload.HeartbeatRequest{Hostname: "h", PID: 1, At: at(1)}, "", nil},
		{"owner again, later", ids[0], workload.HeartbeatRequest{Hostname: "h", PID: 1, At: at(3)}, "", nil},
		{"owner again, earlier", ids[0], workload.HeartbeatRequest{Hostname: "h", PID: 1, At: at(2)}, "", nil},
		{"stranger on the owner's row", ids[0], workload.HeartbeatRequest{Hostname: "h", PID: 9, At: at(4)}, "running_elsewhere", nil},
		{"NUL in hostname", ids[1], workload.HeartbeatRequest{Hostname: "h\x00", PID: 2, At: at(5)}, "running_elsewhere", nil},
		{"invalid UTF-8 hostname", ids[1], workload.HeartbeatRequest{Hostname: "\xff", PID: 2, At: at(5)}, "running_elsewhere", nil},
		{"another owner", ids[2], workload.HeartbeatRequest{Hostname: "h", PID: 3, At: at(6)}, "", nil},
		{"empty hostname, NULL pid", ids[3], workload.HeartbeatRequest{Hostname: "", PID: 0, At: at(7)}, "", nil},
		{"not running", done, workload.HeartbeatRequest{Hostname: "h", PID: 1, At: at(8)}, "not_running", nil},
		{"unknown", pgtest.UUIDv7(), workload.HeartbeatRequest{Hostname: "h", PID: 1, At: at(9)}, "", workload.ErrNotFound},
	}
	batch := make([]*hbRequest, len(tests))
	for i, tt := range tests {
		batch[i] = &hbRequest{id: tt.id, req: tt.req, admit: workload.AdmitHeartbeat}
	}
	db.runHeartbeats(batch)
	for i, tt := range tests {
		tt.check(t, batch[i].err)
	}
	want := map[string]time.Time{ids[0]: at(3), ids[1]: t0, ids[2]: at(6), ids[3]: at(7)}
	for id, w := range want {
		var got, updated time.Time
		scanRow(t, db, `SELECT last_heartbeat_at, updated_at FROM task_instance WHERE id = $1`, []any{id}, &got, &updated)
		if !got.Equal(w) || !updated.Equal(w) {
			t.Errorf("%s: last_heartbeat_at %v, updated_at %v, want %v", id, got, updated, w)
		}
	}
}

// TestHeartbeatPlan: the planner's generic plan of the batch UPDATE finds
// each row by its primary key and never reads ti_state, even where the
// table's statistics make ti_state look selective; the same UPDATE with a
// plain `state = 'running'` reads ti_state there, so the test can fail.
func TestHeartbeatPlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, af, _ := newTestStore(t)
	runningTIs(t, af, 1000)
	// Statistics taken while no row ran, as on a database analyzed before
	// the day's tasks started.
	af.Exec(t, `UPDATE task_instance SET state = 'queued'`)
	af.Exec(t, `ANALYZE task_instance`)
	af.Exec(t, `UPDATE task_instance SET state = 'running'`)
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	plan := func(sql string) string {
		t.Helper()
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		for _, q := range []string{`SET LOCAL plan_cache_mode = force_generic_plan`,
			`PREPARE hbplan (uuid[], text[], bigint[], timestamptz[]) AS ` + sql} {
			if _, err := tx.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		defer tx.Exec(ctx, `DEALLOCATE hbplan`)
		rows, err := tx.Query(ctx, `EXPLAIN EXECUTE hbplan(NULL, NULL, NULL, NULL)`)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	p := plan(hbUpdateAsNamed)
	if strings.Contains(p, "ti_state") || strings.Contains(p, "Seq Scan") || !strings.Contains(p, "task_instance_pkey") {
		t.Errorf("batch UPDATE does not find its rows by primary key:\n%s", p)
	}
	t.Logf("generic plan:\n%s", p)
	plain := strings.Replace(hbUpdateAsNamed, "coalesce(ti.state, '') = 'running'", "ti.state = 'running'", 1)
	if plain == hbUpdateAsNamed {
		t.Fatal("the state condition is no longer written as this test expects")
	}
	if p := plan(plain); !strings.Contains(p, "ti_state") {
		t.Errorf("with a plain state condition the plan does not read ti_state, so this test shows nothing:\n%s", p)
	}
}
