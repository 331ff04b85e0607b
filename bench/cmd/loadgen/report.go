package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// classResult is one endpoint class in one phase.
type classResult struct {
	class               string
	requests, errors    uint64
	rps                 float64
	p50, p99, p999, max time.Duration
	errSample           string
}

// phaseResult is one run of one phase.
type phaseResult struct {
	target, phase string
	conns         int
	seconds       float64
	requests      uint64
	// cpuPerReq is server CPU (user + system) µs per request of the phase.
	cpuPerReq float64
	// Utilisation in cores: the server, the load generator, and everything
	// else on the machine (other processes: noise).
	serverUtil, loadUtil, otherUtil float64
	classes                         []classResult
	all                             classResult
	mix                             bool
	rate                            float64
	sparesOut                       uint64
	// base is the baseline phase measured right before this one, its
	// yardstick; nil when there is none.
	base *phaseResult
}

func (r *phaseResult) summary() string {
	return fmt.Sprintf("%7.0f req/s  p50 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms  %5.1f CPU-µs/req  errors %d  (server %.0f%%, loadgen %.0f%%, other %.0f%% of a core)",
		r.all.rps, ms(r.all.p50), ms(r.all.p99), ms(r.all.p999), r.cpuPerReq, r.all.errors,
		100*r.serverUtil, 100*r.loadUtil, 100*r.otherUtil)
}

// serverResult is one server process.
type serverResult struct {
	name, alg string
	startup   time.Duration
	mem       memory
	logErrors int
	stored    int
}

// machineInfo describes where the benchmark ran.
type machineInfo struct {
	cpus   int
	model  string
	kernel string
	memory string
	goVer  string
}

func describeMachine() machineInfo {
	m := machineInfo{goVer: runtime.Version(), model: "unknown", kernel: "unknown", memory: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range bytes.Lines(b) {
			k, v, ok := strings.Cut(string(line), ":")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch {
			case !ok:
			case k == "processor":
				m.cpus++
			case k == "model name" && m.model == "unknown":
				m.model = v
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range bytes.Lines(b) {
			if v, ok := strings.CutPrefix(string(line), "MemTotal:"); ok {
				var kb int
				if _, err := fmt.Sscan(v, &kb); err == nil {
					m.memory = fmt.Sprintf("%.1f GB", float64(kb)/1e6*1.024)
				}
			}
		}
	}
	if m.cpus == 0 {
		m.cpus = runtime.NumCPU()
	}
	return m
}

// report collects every result and renders them.
type report struct {
	machine machineInfo
	command string
	opts    *options
	phases  []*phaseResult
	servers []serverResult
}

func (r *report) add(p *phaseResult) { r.phases = append(r.phases, p) }

// agg is the median over the runs of one phase.
type agg struct {
	target, phase string
	conns         int
	runs          int
	cpuPerReq     float64
	serverUtil    float64
	loadUtil      float64
	otherUtil     float64
	classes       []classResult // medians per class, errors summed
	all           classResult
	mix           bool
	rate          float64
	sparesOut     uint64
	// paired holds the medians over the runs of the ratios to the baseline
	// measured next to each run (nil without one).
	paired *pairedRatios
}

// pairedRatios are a phase's ratios to the baseline runs measured next to
// its own: medians over the runs of each run's ratio.
type pairedRatios struct {
	rps      map[string]float64 // per class: requests/s ÷ the baseline's
	cpu      float64            // the baseline's CPU µs/request ÷ the phase's
	baseRPS  float64            // median requests/s of those baseline runs
	baseCPU  float64            // and their median CPU µs/request
	baseRuns int
}

// pairRatios computes the paired ratios of runs, or nil if no run has a
// baseline.
func pairRatios(runs []*phaseResult) *pairedRatios {
	var with []*phaseResult
	for _, p := range runs {
		if p.base != nil && p.base.all.rps > 0 {
			with = append(with, p)
		}
	}
	if len(with) == 0 {
		return nil
	}
	pr := &pairedRatios{rps: map[string]float64{}, baseRuns: len(with)}
	pr.baseRPS = median(with, func(p *phaseResult) float64 { return p.base.all.rps })
	pr.baseCPU = median(with, func(p *phaseResult) float64 { return p.base.cpuPerReq })
	pr.cpu = median(with, func(p *phaseResult) float64 {
		if p.cpuPerReq <= 0 {
			return 0
		}
		return p.base.cpuPerReq / p.cpuPerReq
	})
	for _, c := range append(append([]classResult(nil), with[0].classes...), with[0].all) {
		name := c.class
		pr.rps[name] = median(with, func(p *phaseResult) float64 {
			for _, pc := range append(p.classes, p.all) {
				if pc.class == name {
					return pc.rps / p.base.all.rps
				}
			}
			return 0
		})
	}
	return pr
}

// aggregate groups the runs of each (target, phase), in first-run order.
func (r *report) aggregate() []*agg {
	var order []string
	groups := map[string][]*phaseResult{}
	for _, p := range r.phases {
		k := p.target + "\x00" + p.phase
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], p)
	}
	var out []*agg
	for _, k := range order {
		runs := groups[k]
		first := runs[0]
		a := &agg{target: first.target, phase: first.phase, conns: first.conns, runs: len(runs), mix: first.mix, rate: first.rate}
		a.cpuPerReq = median(runs, func(p *phaseResult) float64 { return p.cpuPerReq })
		a.serverUtil = median(runs, func(p *phaseResult) float64 { return p.serverUtil })
		a.loadUtil = median(runs, func(p *phaseResult) float64 { return p.loadUtil })
		a.otherUtil = median(runs, func(p *phaseResult) float64 { return p.otherUtil })
		for _, p := range runs {
			a.sparesOut += p.sparesOut
		}
		a.all = mergeClass(runs, func(p *phaseResult) *classResult { return &p.all })
		a.paired = pairRatios(runs)
		for _, c := range first.classes {
			name := c.class
			a.classes = append(a.classes, mergeClass(runs, func(p *phaseResult) *classResult {
				for i := range p.classes {
					if p.classes[i].class == name {
						return &p.classes[i]
					}
				}
				return nil
			}))
		}
		out = append(out, a)
	}
	return out
}

func median[T any](xs []T, f func(T) float64) float64 {
	vs := make([]float64, 0, len(xs))
	for _, x := range xs {
		vs = append(vs, f(x))
	}
	slices.Sort(vs)
	n := len(vs)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}

// mergeClass takes the median of each figure of one class over the runs;
// errors and requests are summed and the maximum is the largest.
func mergeClass(runs []*phaseResult, pick func(*phaseResult) *classResult) classResult {
	var cs []*classResult
	for _, p := range runs {
		if c := pick(p); c != nil {
			cs = append(cs, c)
		}
	}
	out := classResult{class: cs[0].class}
	for _, c := range cs {
		out.requests += c.requests
		out.errors += c.errors
		out.max = max(out.max, c.max)
		if out.errSample == "" {
			out.errSample = c.errSample
		}
	}
	dur := func(f func(*classResult) time.Duration) time.Duration {
		return time.Duration(median(cs, func(c *classResult) float64 { return float64(f(c)) }))
	}
	out.rps = median(cs, func(c *classResult) float64 { return c.rps })
	out.p50 = dur(func(c *classResult) time.Duration { return c.p50 })
	out.p99 = dur(func(c *classResult) time.Duration { return c.p99 })
	out.p999 = dur(func(c *classResult) time.Duration { return c.p999 })
	return out
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// baselineOf returns the baseline phase a gateway class is compared with:
// reads with the bare JSON GET, heartbeats with the bare 204 at the same
// connection count.
func baselineOf(aggs []*agg, phase, class string) *agg {
	want := ""
	switch {
	case class == "variable GET" || class == "connection GET":
		if phase == "variable" || phase == "connection" {
			want = "variable"
		}
	case class == "heartbeat" && strings.HasPrefix(phase, "heartbeat"):
		want = phase
	}
	if want == "" {
		return nil
	}
	for _, a := range aggs {
		if a.target == "baseline" && a.phase == want {
			return a
		}
	}
	return nil
}

func (r *report) markdown() string {
	var b strings.Builder
	aggs := r.aggregate()
	m := r.machine
	o := r.opts
	pin := "not pinned (taskset unavailable)"
	if o.serverCPU != "" {
		pin = "servers pinned to CPU " + o.serverCPU + " with taskset, load generator to the other CPU"
	}
	fmt.Fprintf(&b, "### Machine\n\n")
	fmt.Fprintf(&b, "- %d CPUs (`nproc`), %s; %s RAM; Linux %s; %s\n", m.cpus, m.model, m.memory, m.kernel, m.goVer)
	fmt.Fprintf(&b, "- %s; each server runs with GOMAXPROCS = its CPUs\n", pin)
	fmt.Fprintf(&b, "- command: `%s`\n", r.command)
	fmt.Fprintf(&b, "- %d task instances stored (%d active, %d spares per algorithm for the mix's finishes); %s measured per phase after %s warm-up, %d run(s), medians shown\n",
		r.storedCount(), o.tasks, o.spareCount(), o.duration, o.warmup, o.runs)
	fmt.Fprintf(&b, "- mix: `%s`; mix-paced sends %.0f req/s: %d task instances heartbeating every %s, the other calls in proportion\n",
		o.mixSpec, o.pacedRate(), o.tasks, o.hbInterval)
	fmt.Fprintf(&b, "- × base: each run of a gateway phase divided by the baseline run measured just before it, median over the runs (the machine's speed drifts over minutes); the baseline rows are the medians of all its runs\n\n")

	fmt.Fprintf(&b, "### Results\n\n")
	fmt.Fprintf(&b, "| server | phase | conns | class | req/s | × base | p50 ms | p99 ms | p99.9 ms | CPU µs/req | × base CPU | errors | CPU %% server/loadgen/other |\n")
	fmt.Fprintf(&b, "|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, a := range aggs {
		util := fmt.Sprintf("%.0f/%.0f/%.0f", 100*a.serverUtil, 100*a.loadUtil, 100*a.otherUtil)
		rows := a.classes
		if a.mix || len(rows) > 1 {
			rows = append(rows, a.all)
		}
		for i, c := range rows {
			ratio, cpuRatio := "", ""
			if pr := a.paired; pr != nil && a.target != "baseline" {
				if x, ok := pr.rps[c.class]; ok && c.class != "all" {
					ratio = fmt.Sprintf("%.2f", x)
				}
				if pr.cpu > 0 && (!a.mix || c.class == "all") {
					cpuRatio = fmt.Sprintf("%.2f", pr.cpu)
				}
			} else if base := baselineOf(aggs, a.phase, c.class); base != nil && a.target != "baseline" {
				ratio = fmt.Sprintf("%.2f", c.rps/base.all.rps)
				if a.cpuPerReq > 0 {
					cpuRatio = fmt.Sprintf("%.2f", base.cpuPerReq/a.cpuPerReq)
				}
			}
			cpu := ""
			if !a.mix || c.class == "all" {
				cpu = fmt.Sprintf("%.1f", a.cpuPerReq)
			}
			phase := a.phase
			if a.rate > 0 {
				phase += fmt.Sprintf(" (%.0f/s)", a.rate)
			}
			if i > 0 {
				phase, util = "", ""
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %.0f | %s | %.2f | %.2f | %.2f | %s | %s | %d | %s |\n",
				a.target, phase, a.conns, c.class, c.rps, ratio, ms(c.p50), ms(c.p99), ms(c.p999), cpu, cpuRatio, c.errors, util)
		}
	}
	fmt.Fprintf(&b, "\n| server | start-up to ready | peak RSS (VmHWM) | RSS at the end: anonymous + file-mapped | task instances stored | error lines logged |\n|---|--:|--:|--:|--:|--:|\n")
	for _, s := range r.servers {
		stored := "—"
		if s.stored > 0 {
			stored = fmt.Sprint(s.stored)
		}
		fmt.Fprintf(&b, "| %s | %.0f ms | %.1f MB | %.1f + %.1f MB | %s | %d |\n", s.name, float64(s.startup)/1e6,
			float64(s.mem.peak)/1e6, float64(s.mem.anon)/1e6, float64(s.mem.file)/1e6, stored, s.logErrors)
	}
	var samples []string
	for _, a := range aggs {
		for _, c := range a.classes {
			if c.errSample != "" {
				samples = append(samples, fmt.Sprintf("- %s %s %s: %s", a.target, a.phase, c.class, c.errSample))
			}
		}
		if a.sparesOut > 0 {
			samples = append(samples, fmt.Sprintf("- %s %s: %d finishes found no spare task instance and heartbeated instead", a.target, a.phase, a.sparesOut))
		}
	}
	if len(samples) > 0 {
		fmt.Fprintf(&b, "\nFirst error of each class, and other anomalies:\n\n%s\n", strings.Join(samples, "\n"))
	}
	fmt.Fprintf(&b, "\n### Targets\n\n| target | measured | required | |\n|---|---|---|---|\n")
	for _, t := range r.targets(aggs) {
		verdict := "**missed**"
		if t.met {
			verdict = "met"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.name, t.measured, t.required, verdict)
	}
	return b.String()
}

func (r *report) storedCount() int {
	for _, s := range r.servers {
		if s.stored > 0 {
			return s.stored
		}
	}
	return r.opts.stored
}

// targetCheck is one target of the issue, evaluated.
type targetCheck struct {
	name, measured, required string
	met                      bool
}

// pairedOr returns a's ratio to its paired baselines for class, with their
// median requests/s and CPU per request; without pairs, the ratio of rps to
// the baseline phase's medians.
func pairedOr(a, base *agg, class string, rps float64) (ratio, baseRPS, baseCPU float64) {
	if pr := a.paired; pr != nil {
		if x, ok := pr.rps[class]; ok {
			return x, pr.baseRPS, pr.baseCPU
		}
	}
	return rps / base.all.rps, base.all.rps, base.cpuPerReq
}

func (r *report) targets(aggs []*agg) []targetCheck {
	var out []targetCheck
	find := func(target, phase string) *agg {
		for _, a := range aggs {
			if a.target == target && a.phase == phase {
				return a
			}
		}
		return nil
	}
	classOf := func(a *agg, name string) *classResult {
		for i := range a.classes {
			if a.classes[i].class == name {
				return &a.classes[i]
			}
		}
		return nil
	}
	high := fmt.Sprintf("heartbeat-c%d", r.opts.connsHigh)
	for _, alg := range r.opts.algs {
		for _, read := range []struct{ phase, class string }{{"variable", "variable GET"}, {"connection", "connection GET"}} {
			a, base := find(alg, read.phase), find("baseline", "variable")
			if a == nil || base == nil {
				continue
			}
			c := classOf(a, read.class)
			ratio, baseRPS, baseCPU := pairedOr(a, base, read.class, c.rps)
			out = append(out, targetCheck{
				name:     fmt.Sprintf("%s %s, c=%d", alg, read.class, a.conns),
				measured: fmt.Sprintf("%.2f × baseline (%.0f vs %.0f req/s; CPU %.1f vs %.1f µs/req), %d errors", ratio, c.rps, baseRPS, a.cpuPerReq, baseCPU, c.errors),
				required: "≥ 0.80 × baseline", met: ratio >= 0.8 && c.errors == 0,
			})
		}
		if a, base := find(alg, "heartbeat"), find("baseline", "heartbeat"); a != nil && base != nil {
			c := classOf(a, "heartbeat")
			ratio, _, _ := pairedOr(a, base, "heartbeat", c.rps)
			out = append(out, targetCheck{
				name:     fmt.Sprintf("%s durable heartbeats, c=%d", alg, a.conns),
				measured: fmt.Sprintf("%.2f × baseline (%.0f req/s), p99 %.2f ms, %d errors", ratio, c.rps, ms(c.p99), c.errors),
				required: "≥ 0.25 × baseline, p99 ≤ 10 ms", met: ratio >= 0.25 && c.p99 <= 10*time.Millisecond && c.errors == 0,
			})
		}
		if a := find(alg, high); a != nil {
			c := classOf(a, "heartbeat")
			out = append(out, targetCheck{
				name:     fmt.Sprintf("%s durable heartbeats, c=%d", alg, a.conns),
				measured: fmt.Sprintf("%.0f req/s, p99 %.2f ms, %d errors", c.rps, ms(c.p99), c.errors),
				required: "no errors, p99 ≤ 150 ms", met: c.errors == 0 && c.p99 <= 150*time.Millisecond,
			})
		}
		for _, phase := range []string{"mix", "mix-paced"} {
			if a := find(alg, phase); a != nil {
				out = append(out, targetCheck{
					name:     fmt.Sprintf("%s %s, %d active task instances, c=%d", alg, phase, r.opts.tasks, a.conns),
					measured: fmt.Sprintf("%.0f req/s, p99 %.2f ms, %d errors", a.all.rps, ms(a.all.p99), a.all.errors),
					required: "no errors, p99 ≤ 20 ms", met: a.all.errors == 0 && a.all.p99 <= 20*time.Millisecond,
				})
			}
		}
	}
	for _, s := range r.servers {
		if s.alg == "" {
			continue
		}
		out = append(out, targetCheck{
			name: fmt.Sprintf("%s peak RSS, %d task instances stored", s.name, s.stored),
			measured: fmt.Sprintf("%.1f MB (at the end %.1f MB anonymous + %.1f MB file-mapped)", float64(s.mem.peak)/1e6,
				float64(s.mem.anon)/1e6, float64(s.mem.file)/1e6),
			required: "≤ 150 MB", met: s.mem.peak <= 150e6,
		})
		out = append(out, targetCheck{
			name:     fmt.Sprintf("%s start-up to ready, %d task instances stored", s.name, s.stored),
			measured: fmt.Sprintf("%.0f ms", float64(s.startup)/1e6),
			required: "≤ 1 s", met: s.startup <= time.Second,
		})
	}
	return out
}
