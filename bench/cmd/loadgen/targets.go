package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/taskgate/taskgate/bench"
	"github.com/taskgate/taskgate/client"
)

// fixed is the step of a phase making one kind of call.
func fixed(cls class) func(w *worker, s *slot, start time.Time) {
	return func(w *worker, s *slot, start time.Time) { w.call(cls, s, start) }
}

// timedPhases are the measured phases of the gateway, in order, each run
// opts.runs times; with baseline, those of the baseline alone (when -phases
// names no gateway phase: otherwise each is measured next to its gateway
// phase, see runTimed).
func (b *benchmark) timedPhases(baseline bool) []phaseSpec {
	o := b.opts
	high := fmt.Sprintf("heartbeat-c%d", o.connsHigh)
	var out []phaseSpec
	if baseline {
		for _, name := range []string{"variable", "heartbeat", high} {
			ps, _ := b.baselinePhase(name)
			out = append(out, ps)
		}
		return out
	}
	add := func(ps phaseSpec, key string) {
		if o.want(key) {
			ps.timed = true
			out = append(out, ps)
		}
	}
	mix := func(w *worker, s *slot, start time.Time) { w.mixStep(s, start) }
	add(phaseSpec{name: "variable", conns: o.conns, step: fixed(clsVariable)}, "variable")
	add(phaseSpec{name: "connection", conns: o.conns, step: fixed(clsConnection)}, "connection")
	add(phaseSpec{name: "heartbeat", conns: o.conns, step: fixed(clsHeartbeat)}, "heartbeat")
	add(phaseSpec{name: high, conns: o.connsHigh, step: fixed(clsHeartbeat)}, "heartbeat-high")
	add(phaseSpec{name: "mix", conns: o.conns, step: mix, mix: true}, "mix")
	add(phaseSpec{name: "mix-paced", conns: o.conns, step: mix, mix: true, rate: o.pacedRate()}, "mix-paced")
	return out
}

// anyGatewayPhase reports whether -phases names a phase that runs against
// the gateway.
func anyGatewayPhase(o *options) bool {
	for p := range o.phases {
		if p != "baseline" {
			return true
		}
	}
	return false
}

// startBaseline starts the bare Echo server, which then runs beside the
// gateways (idle while they are measured) until stopBaseline.
func (b *benchmark) startBaseline() error {
	_, active, _ := b.data.algRange(0, b.opts.tasks)
	// The baseline ignores the token; any of the right size will do.
	if err := b.signWorkloads(nil, active); err != nil {
		return err
	}
	proc, err := b.start("baseline", b.opts.baselineBin, nil, b.environ)
	if err != nil {
		return err
	}
	b.logf("baseline ready in %s on %s", proc.startup.Round(time.Millisecond), proc.addr)
	t := newTarget("baseline", true, proc)
	for _, ti := range active {
		// Copies: the gateway runs re-sign these task instances.
		c := *ti
		t.slots = append(t.slots, &slot{ti: &c})
	}
	b.base = t
	return nil
}

// stopBaseline stops the baseline server and records its start-up and memory.
func (b *benchmark) stopBaseline() error {
	if b.base == nil {
		return nil
	}
	proc := b.base.proc
	mem, _ := proc.memory()
	b.report.servers = append([]serverResult{{name: "baseline", startup: proc.startup, mem: mem}}, b.report.servers...)
	b.base = nil
	return proc.stop()
}

// baselinePhase is the baseline phase a gateway phase is compared with:
// reads with the bare JSON GET, heartbeats with the bare 204 at the same
// connection count; ok is false for the phases without one.
func (b *benchmark) baselinePhase(gateway string) (phaseSpec, bool) {
	o := b.opts
	ps := phaseSpec{name: gateway, conns: o.conns, timed: true, step: fixed(clsHeartbeat)}
	switch gateway {
	case "variable", "connection":
		ps.name, ps.step = "variable", fixed(clsVariable)
	case "heartbeat":
	case fmt.Sprintf("heartbeat-c%d", o.connsHigh):
		ps.conns = o.connsHigh
	default:
		return phaseSpec{}, false
	}
	return ps, true
}

// runTimed runs each phase opts.runs times, keeping every result. With the
// baseline running, each gateway phase that has a baseline counterpart is
// measured right after it: the machine's speed drifts over minutes, and a
// ratio of two measurements taken seconds apart follows it.
func (b *benchmark) runTimed(ctx context.Context, t *target, phases []phaseSpec) error {
	for run := range b.opts.runs {
		for _, ps := range phases {
			var base *phaseResult
			if bs, ok := b.baselinePhase(ps.name); ok && b.base != nil && t != b.base {
				r, err := b.runPhase(ctx, b.base, bs)
				if err != nil {
					return fmt.Errorf("baseline %s: %w", bs.name, err)
				}
				b.logf("%s %-14s run %d: %s", b.base.name, bs.name, run+1, r.summary())
				b.report.add(r)
				base = r
			}
			r, err := b.runPhase(ctx, t, ps)
			if err != nil {
				return fmt.Errorf("%s: %w", ps.name, err)
			}
			r.base = base
			b.logf("%s %-14s run %d: %s", t.name, ps.name, run+1, r.summary())
			b.report.add(r)
		}
	}
	return nil
}

// runGateway measures taskgate signing and verifying with alg: start-up
// with every task instance stored, a smoke test through the SDK client,
// /run of the active task instances, the timed phases, and their final
// states.
func (b *benchmark) runGateway(ctx context.Context, i int, alg string) error {
	extra, err := b.keyEnv(alg)
	if err != nil {
		return err
	}
	smoke, active, spares := b.data.algRange(i, b.opts.tasks)
	all := append(append([]*tiInfo{smoke}, active...), spares...)
	if err := b.signWorkloads(extra, all); err != nil {
		return err
	}
	env := append(append([]string{}, b.environ...), extra...)
	if b.opts.pprof != "" {
		env = append(env, "AIRFLOW__TASKGATE__PPROF_LISTEN="+b.opts.pprof)
	}
	name := "taskgate-" + alg
	proc, err := b.start(name, b.opts.serverBin, []string{"--data-dir", b.data.dataDir, "serve"}, env)
	if err != nil {
		return err
	}
	b.logf("%s ready in %s with %d task instances stored", name, proc.startup.Round(time.Millisecond), b.data.stored)
	runErr := b.driveGateway(ctx, proc, alg, smoke, active, spares)
	mem, _ := proc.memory()
	if err := proc.stop(); err != nil && runErr == nil {
		runErr = err
	}
	if err := proc.scanLog(); err != nil && runErr == nil {
		runErr = err
	}
	b.report.servers = append(b.report.servers, serverResult{name: name, alg: alg, startup: proc.startup, mem: mem,
		logErrors: proc.logErrors, stored: b.data.stored})
	return runErr
}

func (b *benchmark) driveGateway(ctx context.Context, proc *process, alg string, smoke *tiInfo, active, spares []*tiInfo) error {
	if err := smokeTest(ctx, proc.addr, smoke); err != nil {
		return fmt.Errorf("smoke test through the client package: %w", err)
	}
	t := newTarget(alg, false, proc)
	t.spares = spares
	for _, ti := range active {
		t.slots = append(t.slots, &slot{ti: ti})
	}
	o := b.opts
	// Every active task instance enters running with its workload token.
	ramp := phaseSpec{name: "run", conns: o.conns, step: func(w *worker, s *slot, start time.Time) {
		if !w.call(clsRun, s, start) {
			s.dead = true
		}
	}}
	r, err := b.runPhase(ctx, t, ramp)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	b.logf("%s %-14s: %s", alg, "run", r.summary())
	b.report.add(r)
	if r.all.errors > 0 {
		return fmt.Errorf("run: %d of %d task instances failed to start: %s", r.all.errors, r.all.requests, firstSample(r))
	}
	if err := b.runTimed(ctx, t, b.timedPhases(false)); err != nil {
		return err
	}
	if !o.want("state") {
		return nil
	}
	// Every task instance still running reports its final state.
	drain := phaseSpec{name: "state", conns: o.conns, step: func(w *worker, s *slot, start time.Time) {
		if s.token != "" {
			w.call(clsState, s, start)
		}
	}}
	if r, err = b.runPhase(ctx, t, drain); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	b.logf("%s %-14s: %s", alg, "state", r.summary())
	b.report.add(r)
	return nil
}

func firstSample(r *phaseResult) string {
	for _, c := range r.classes {
		if c.errSample != "" {
			return c.errSample
		}
	}
	return ""
}

// smokeTest walks one task instance through the worker's calls with the SDK
// client package before any load: if the gateway and the load generator's
// hand-encoded requests disagreed with the client about the API, every
// number after it would measure error responses.
func smokeTest(ctx context.Context, addr string, ti *tiInfo) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := client.New("http://"+addr+"/execution", client.WithToken(ti.workload), client.WithRetries(1),
		client.WithUserAgent(client.UserAgent("taskgate-bench")))
	if err != nil {
		return err
	}
	if _, err := c.Run(ctx, ti.id, client.RunRequest{Hostname: ti.hostname, Unixname: "airflow", PID: ti.pid,
		StartDate: time.Now()}); err != nil {
		return err
	}
	if err := c.Heartbeat(ctx, ti.id, ti.hostname, ti.pid); err != nil {
		return err
	}
	v, err := c.GetVariable(ctx, bench.VariableKey)
	if err != nil {
		return err
	}
	if v.Value == nil || *v.Value != bench.VariableValue {
		return errors.New("variable read returned another value")
	}
	if _, err := c.GetConnection(ctx, connectionID); err != nil {
		return err
	}
	own := client.XComRef{DagID: dagID, RunID: ti.runID, TaskID: ti.taskID, Key: xcomKey, MapIndex: -1}
	if err := c.SetXCom(ctx, own, xcomValue); err != nil {
		return err
	}
	up := own
	up.TaskID = upstreamTask
	val, err := c.GetXCom(ctx, up)
	if err != nil {
		return err
	}
	if !json.Valid(val) || string(val) == "null" {
		return fmt.Errorf("upstream XCom is %s", val)
	}
	return c.UpdateState(ctx, ti.id, client.StateUpdate{State: client.StateSuccess})
}
