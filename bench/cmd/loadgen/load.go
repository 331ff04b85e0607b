package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taskgate/taskgate/bench"
	"github.com/taskgate/taskgate/client"
)

// class is an endpoint class: the unit the report has a row for.
type class int

const (
	clsRun class = iota
	clsHeartbeat
	clsVariable
	clsConnection
	clsXComPush
	clsXComPull
	clsState
	numClasses
)

var classNames = [numClasses]string{"run", "heartbeat", "variable GET", "connection GET", "xcom push", "xcom pull", "state"}

// Paths of the reads; the baseline's GET has the same length as the
// variable read's.
var (
	variablePath         = "/execution/variables/" + bench.VariableKey
	baselineVariablePath = "/baseline/variables/" + bench.VariableKey
	connectionPath       = "/execution/connections/" + connectionID
)

// classStats collects one class's results in one phase.
type classStats struct {
	hist   bench.Histogram
	errors atomic.Uint64
	mu     sync.Mutex
	sample string // the first error, for the report
}

func (c *classStats) fail(msg string) {
	c.errors.Add(1)
	c.mu.Lock()
	if c.sample == "" {
		c.sample = msg
	}
	c.mu.Unlock()
}

// phaseStats collects one phase's results.
type phaseStats struct {
	classes   [numClasses]classStats
	recording atomic.Bool
	sparesOut atomic.Uint64
}

// slot is one simulated worker's task instance. A slot belongs to one
// load-generator worker at a time, so its fields need no lock.
type slot struct {
	ti    *tiInfo
	token string // the execution token; "" while not running
	dead  bool   // no task instance to act on any more
}

// target is the server a phase drives: one process, or replicas on one
// database (PostgreSQL mode), whose connections are spread evenly over them.
type target struct {
	name     string // "baseline", or the gateway's algorithm
	baseline bool
	proc     *process   // the first (or only) process
	procs    []*process // every replica, proc first
	enc      *bench.Request
	slots    []*slot
	spares   []*tiInfo
	spareIdx atomic.Int64
}

// takeSpare returns a queued task instance for a finished slot, or nil.
func (t *target) takeSpare() *tiInfo {
	i := int(t.spareIdx.Add(1) - 1)
	if i >= len(t.spares) {
		return nil
	}
	return t.spares[i]
}

func newTarget(name string, baseline bool, proc *process, more ...*process) *target {
	return &target{name: name, baseline: baseline, proc: proc, procs: append([]*process{proc}, more...),
		enc: bench.NewRequest(proc.addr, client.VersionHeader+": "+client.APIVersion,
			"User-Agent: "+client.UserAgent("taskgate-bench"), "Accept: application/json")}
}

// addr is the replica connection number j talks to.
func (t *target) addr(j int) string { return t.procs[j%len(t.procs)].addr }

// worker is one connection of the load generator and the slots it drives.
type worker struct {
	t         *target
	st        *phaseStats
	conn      *bench.Conn
	buf       []byte
	body      []byte
	slots     []*slot
	next      int
	sched     *bench.Scheduler
	calls     []bench.Weight
	cidPrefix string
	cid       uint64
}

// correlationID returns a fresh id of a UUID's length, as the Task SDK
// sends with every request.
func (w *worker) correlationID() string {
	w.cid++
	var b [36]byte
	n := copy(b[:], w.cidPrefix)
	s := strconv.AppendUint(b[:n:n], w.cid, 16)
	for len(s) < 36 {
		s = append(s, '0')
	}
	return string(s)
}

// nextSlot returns the worker's next live slot, round robin, or nil.
func (w *worker) nextSlot() *slot {
	for range len(w.slots) {
		s := w.slots[w.next%len(w.slots)]
		w.next++
		if !s.dead {
			return s
		}
	}
	return nil
}

// do sends one request of class cls and records its latency from start
// (the intended start: in the paced phase a request sent late counts its
// wait). A 2xx is a success; wantToken also requires Refreshed-API-Token.
// A token in Refreshed-API-Token of a 2xx becomes the slot's token, as
// the SDK client does.
func (w *worker) do(cls class, s *slot, method, path, token string, body []byte, start time.Time, wantToken bool) bool {
	w.buf = w.t.enc.Append(w.buf[:0], method, path, token, w.correlationID(), body)
	resp, err := w.conn.Do(w.buf)
	elapsed := time.Since(start)
	ok := err == nil && resp.Status >= 200 && resp.Status < 300
	if ok && resp.Refreshed != "" {
		s.token = resp.Refreshed
	} else if ok && wantToken {
		ok, err = false, fmt.Errorf("%d without %s", resp.Status, client.RefreshedTokenHeader)
	}
	if !w.st.recording.Load() {
		return ok
	}
	c := &w.st.classes[cls]
	c.hist.Record(elapsed)
	switch {
	case err != nil:
		c.fail(method + " " + w.t.name + ": " + err.Error())
	case !ok:
		b := resp.Body
		if len(b) > 200 {
			b = b[:200]
		}
		c.fail(fmt.Sprintf("%s %s: %d %s", method, classNames[cls], resp.Status, b))
	}
	return ok
}

// call makes one call of class cls for slot s.
func (w *worker) call(cls class, s *slot, start time.Time) bool {
	ti := s.ti
	if w.t.baseline {
		switch cls {
		case clsHeartbeat:
			return w.do(cls, s, http.MethodPut, ti.baselineHBPath, ti.workload, ti.hbBody, start, false)
		case clsVariable:
			return w.do(cls, s, http.MethodGet, baselineVariablePath, ti.workload, nil, start, false)
		}
		panic("baseline: no " + classNames[cls])
	}
	switch cls {
	case clsRun:
		return w.do(cls, s, http.MethodPatch, ti.runPath, ti.workload, ti.runBody, start, true)
	case clsHeartbeat:
		return w.do(cls, s, http.MethodPut, ti.hbPath, s.token, ti.hbBody, start, false)
	case clsVariable:
		return w.do(cls, s, http.MethodGet, variablePath, s.token, nil, start, false)
	case clsConnection:
		return w.do(cls, s, http.MethodGet, connectionPath, s.token, nil, start, false)
	case clsXComPush:
		return w.do(cls, s, http.MethodPost, ti.pushPath, s.token, xcomValue, start, false)
	case clsXComPull:
		return w.do(cls, s, http.MethodGet, ti.pullPath, s.token, nil, start, false)
	case clsState:
		w.body = fmt.Appendf(w.body[:0], `{"state":"success","end_date":%q,"task_outlets":[],"outlet_events":[]}`,
			time.Now().UTC().Format(time.RFC3339Nano))
		ok := w.do(cls, s, http.MethodPatch, ti.statePath, s.token, w.body, start, false)
		if ok {
			s.token = ""
		}
		return ok
	}
	panic("no call for class " + strconv.Itoa(int(cls)))
}

var xcomValue = []byte(`{"rows": 1250, "uri": "s3://bench-bucket/transform/part-0000.parquet"}`)

// finish ends the slot's task instance (its final state) and starts a
// spare one in its place (/run with its workload token), as a worker slot
// does between two tasks. Without spares left it heartbeats instead.
func (w *worker) finish(s *slot, start time.Time) {
	spare := w.t.takeSpare()
	if spare == nil {
		w.st.sparesOut.Add(1)
		w.call(clsHeartbeat, s, start)
		return
	}
	w.call(clsState, s, start)
	s.ti, s.token = spare, ""
	if !w.call(clsRun, s, time.Now()) {
		s.dead = true
	}
}

// mixStep makes the scheduler's next call for the next slot.
func (w *worker) mixStep(s *slot, start time.Time) {
	switch w.calls[w.sched.Next()].Name {
	case "heartbeat":
		w.call(clsHeartbeat, s, start)
	case "variable":
		w.call(clsVariable, s, start)
	case "connection":
		w.call(clsConnection, s, start)
	case "xcom_push":
		w.call(clsXComPush, s, start)
	case "xcom_pull":
		w.call(clsXComPull, s, start)
	case "finish":
		w.finish(s, start)
	}
}

// phaseSpec describes one phase.
type phaseSpec struct {
	name  string // in the report
	conns int
	// timed phases run for warmup + duration; the others make one step per
	// slot and end.
	timed bool
	// rate is the open-loop request rate of a paced phase; 0: closed loop.
	rate float64
	step func(w *worker, s *slot, start time.Time)
	mix  bool
}

// cpuSample is the CPU accounting at one instant.
type cpuSample struct {
	server, self bench.ProcCPU
	system       bench.CPUTimes
	at           time.Time
}

// sample reads the CPU accounting; server is the sum over procs.
func (b *benchmark) sample(procs ...*process) (cpuSample, error) {
	var s cpuSample
	var err error
	for _, p := range procs {
		c, err := p.cpu()
		if err != nil {
			return s, fmt.Errorf("%s cpu: %w", p.name, err)
		}
		s.server.UTime += c.UTime
		s.server.STime += c.STime
	}
	if s.self, err = bench.ReadProcCPU(0); err != nil {
		return s, err
	}
	if s.system, err = bench.ReadSystemStat("cpu"); err != nil {
		return s, err
	}
	s.at = time.Now()
	return s, nil
}

// runPhase runs one phase against t and returns its results.
func (b *benchmark) runPhase(ctx context.Context, t *target, ps phaseSpec) (*phaseResult, error) {
	slots := t.slots
	conns := min(ps.conns, len(slots))
	if conns < ps.conns {
		b.logf("%s %s: %d connections instead of %d: only %d task instances", t.name, ps.name, conns, ps.conns, len(slots))
	}
	st := &phaseStats{}
	workers := make([]*worker, conns)
	deadline := time.Now().Add(b.opts.warmup + b.opts.duration + time.Minute)
	for j := range workers {
		w := &worker{t: t, st: st, conn: bench.NewConn(t.addr(j)), cidPrefix: fmt.Sprintf("bench-%s-%05d-", t.name, j)}
		for k := j; k < len(slots); k += conns {
			w.slots = append(w.slots, slots[k])
		}
		if ps.mix {
			w.calls = b.opts.mix
			w.sched, _ = bench.NewScheduler(w.calls)
			w.sched.Skip(j)
		}
		w.conn.SetDeadline(deadline)
		if err := w.conn.Dial(); err != nil {
			return nil, fmt.Errorf("dial %s: %w", t.addr(j), err)
		}
		workers[j] = w
	}
	defer func() {
		for _, w := range workers {
			w.conn.Close()
		}
	}()

	var wg sync.WaitGroup
	var stop atomic.Bool
	begin := make(chan struct{})
	for j, w := range workers {
		wg.Go(func() {
			<-begin
			switch {
			case !ps.timed:
				for _, s := range w.slots {
					if !s.dead {
						ps.step(w, s, time.Now())
					}
				}
			case ps.rate > 0:
				// Open loop: each worker sends at rate/conns, its first
				// request offset so that the workers interleave.
				interval := time.Duration(float64(conns) / ps.rate * float64(time.Second))
				next := time.Now().Add(interval * time.Duration(j) / time.Duration(conns))
				for !stop.Load() {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					s := w.nextSlot()
					if s == nil {
						return
					}
					ps.step(w, s, next)
					next = next.Add(interval)
				}
			default:
				for !stop.Load() {
					s := w.nextSlot()
					if s == nil {
						return
					}
					ps.step(w, s, time.Now())
				}
			}
		})
	}
	var c0, c1 cpuSample
	var err error
	if ps.timed {
		close(begin)
		if !sleepCtx(ctx, b.opts.warmup) {
			stop.Store(true)
			wg.Wait()
			return nil, ctx.Err()
		}
		if c0, err = b.sample(t.procs...); err != nil {
			return nil, err
		}
		st.recording.Store(true)
		completed := sleepCtx(ctx, b.opts.duration)
		st.recording.Store(false)
		c1, err = b.sample(t.procs...)
		stop.Store(true)
		wg.Wait()
		if !completed {
			return nil, ctx.Err()
		}
	} else {
		if c0, err = b.sample(t.procs...); err != nil {
			return nil, err
		}
		st.recording.Store(true)
		close(begin)
		wg.Wait()
		st.recording.Store(false)
		c1, err = b.sample(t.procs...)
	}
	if err != nil {
		return nil, err
	}
	for _, p := range t.procs {
		if !p.alive() {
			return nil, fmt.Errorf("%s exited during %s%s", p.name, ps.name, p.logTail())
		}
	}
	r := b.result(t, ps, conns, st, c0, c1)
	for _, p := range t.procs {
		if err := p.scanLog(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// result turns a phase's counters into its report rows.
func (b *benchmark) result(t *target, ps phaseSpec, conns int, st *phaseStats, c0, c1 cpuSample) *phaseResult {
	secs := c1.at.Sub(c0.at).Seconds()
	r := &phaseResult{target: t.name, phase: ps.name, conns: conns, seconds: secs, mix: ps.mix,
		rate: ps.rate, sparesOut: st.sparesOut.Load()}
	var all bench.Histogram
	for i := range st.classes {
		c := &st.classes[i]
		n := c.hist.Count()
		if n == 0 {
			continue
		}
		all.Merge(&c.hist)
		r.classes = append(r.classes, classRow(classNames[i], &c.hist, c.errors.Load(), secs, c.sample))
		r.requests += n
	}
	var errs uint64
	for _, c := range r.classes {
		errs += c.errors
	}
	r.all = classRow("all", &all, errs, secs, "")
	if r.requests > 0 {
		r.cpuPerReq = float64(c1.server.Ticks()-c0.server.Ticks()) * b.tick / float64(r.requests)
	}
	wall := secs * 1e6 // µs
	r.serverUtil = float64(c1.server.Ticks()-c0.server.Ticks()) * b.tick / wall
	r.loadUtil = float64(c1.self.Ticks()-c0.self.Ticks()) * b.tick / wall
	busy := float64(c1.system.Busy-c0.system.Busy) * b.tick / wall
	r.otherUtil = max(busy-r.serverUtil-r.loadUtil, 0)
	return r
}

func classRow(name string, h *bench.Histogram, errs uint64, secs float64, sample string) classResult {
	return classResult{
		class: name, requests: h.Count(), errors: errs, rps: float64(h.Count()) / secs,
		p50: h.Quantile(0.50), p99: h.Quantile(0.99), p999: h.Quantile(0.999), max: h.Max(),
		errSample: sample,
	}
}
