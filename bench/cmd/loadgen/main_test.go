package main

import (
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o *options)
	}{
		{name: "defaults", check: func(t *testing.T, o *options) {
			if diff := cmp.Diff([]string{"HS512", "EdDSA"}, o.algs); diff != "" {
				t.Errorf("algs (-want +got):\n%s", diff)
			}
			if o.conns != 64 || o.connsHigh != 1024 || o.tasks != 10000 || o.stored != 100000 || o.duration != 10*time.Second {
				t.Errorf("defaults: %+v", o)
			}
			if !o.want("mix") || !o.want("baseline") {
				t.Error("no -phases: every phase runs")
			}
		}},
		{name: "phases filter", args: []string{"-phases", "baseline, heartbeat"}, check: func(t *testing.T, o *options) {
			if !o.want("heartbeat") || o.want("mix") {
				t.Errorf("phases = %v", o.phases)
			}
		}},
		{name: "unknown algorithm", args: []string{"-alg", "HS256"}, wantErr: "HS256"},
		{name: "unknown phase", args: []string{"-phases", "warp"}, wantErr: "warp"},
		{name: "bad mix", args: []string{"-mix", "heartbeat:x"}, wantErr: "weight"},
		{name: "zero connections", args: []string{"-conns", "0"}, wantErr: "positive"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "extra"},
		{name: "postgres mode", args: []string{"-postgres", "postgres://pg/postgres", "-replicas", "1, 3"},
			check: func(t *testing.T, o *options) {
				if diff := cmp.Diff([]int{1, 3}, o.replicas); diff != "" || o.pgServer != "postgres://pg/postgres" || !o.pgEmbedded {
					t.Errorf("replicas (-want +got):\n%s; server %q, embedded %v", diff, o.pgServer, o.pgEmbedded)
				}
			}},
		{name: "zero replicas", args: []string{"-replicas", "1,0"}, wantErr: "positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

func TestPacedRateAndSpares(t *testing.T) {
	o, err := parseOptions([]string{"-mix", "heartbeat:12,variable:4,connection:2,xcom_pull:2,xcom_push:1,finish:1",
		"-tasks", "10000", "-heartbeat-interval", "5s", "-duration", "10s", "-warmup", "1s", "-runs", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// 10 000 heartbeats every 5 s are 2 000/s, 12 of every 22 calls.
	if got, want := o.pacedRate(), 2000.0*22/12; math.Abs(got-want) > 1e-9 {
		t.Errorf("pacedRate() = %v, want %v", got, want)
	}
	// 1/22 of (30 000 + 3 667) req/s for 11 s, three times, plus 100.
	want := int(math.Ceil(1.0/22*(estimatedMaxRate+2000.0*22/12)*11*3)) + 100
	if got := o.spareCount(); got != want {
		t.Errorf("spareCount() = %d, want %d", got, want)
	}
	o.mix = o.mix[:len(o.mix)-1] // no finish: no spares
	if got := o.spareCount(); got != 0 {
		t.Errorf("spareCount() without finish = %d, want 0", got)
	}
}

func TestAggregateMedians(t *testing.T) {
	run := func(rps float64, p99 time.Duration, errs uint64, cpu float64) *phaseResult {
		c := classResult{class: "heartbeat", requests: 100, errors: errs, rps: rps, p99: p99, max: 2 * p99}
		return &phaseResult{target: "HS512", phase: "heartbeat", conns: 64, cpuPerReq: cpu, classes: []classResult{c}, all: c}
	}
	r := &report{}
	r.add(run(100, 3*time.Millisecond, 0, 30))
	r.add(&phaseResult{target: "baseline", phase: "heartbeat", all: classResult{class: "heartbeat", rps: 1000}})
	r.add(run(300, 1*time.Millisecond, 2, 10))
	r.add(run(200, 9*time.Millisecond, 1, 20))
	aggs := r.aggregate()
	if len(aggs) != 2 || aggs[0].target != "HS512" || aggs[1].target != "baseline" {
		t.Fatalf("groups in first-seen order: %+v", aggs)
	}
	a := aggs[0]
	got := a.classes[0]
	if got.rps != 200 || got.p99 != 3*time.Millisecond || got.errors != 3 || got.requests != 300 || got.max != 18*time.Millisecond {
		t.Errorf("median class = %+v; want rps 200, p99 3ms, errors 3, requests 300, max 18ms", got)
	}
	if a.cpuPerReq != 20 || a.runs != 3 {
		t.Errorf("cpuPerReq = %v, runs = %d; want 20, 3", a.cpuPerReq, a.runs)
	}
	if base := baselineOf(aggs, "heartbeat", "heartbeat"); base != aggs[1] {
		t.Errorf("baselineOf(heartbeat) = %+v", base)
	}
	if base := baselineOf(aggs, "mix", "heartbeat"); base != nil {
		t.Errorf("a mix has no baseline, got %+v", base)
	}
}

// TestPairedRatios: a phase's ratio is the median of each run's ratio to the
// baseline run next to it, not the ratio of the medians.
func TestPairedRatios(t *testing.T) {
	run := func(rps, cpu, baseRPS, baseCPU float64) *phaseResult {
		c := classResult{class: "variable GET", rps: rps}
		base := &phaseResult{target: "baseline", phase: "variable", cpuPerReq: baseCPU, all: classResult{class: "variable GET", rps: baseRPS}}
		return &phaseResult{target: "HS512", phase: "variable", cpuPerReq: cpu, classes: []classResult{c}, all: c, base: base}
	}
	r := &report{}
	// The machine slows down over the runs; the gateway keeps 0.8 of it.
	for _, x := range []float64{1, 0.5, 0.7} {
		r.add(run(800*x, 60/x, 1000*x, 48/x))
	}
	a := r.aggregate()[0]
	if a.paired == nil {
		t.Fatal("no paired ratios")
	}
	if got := a.paired.rps["variable GET"]; got < 0.7999 || got > 0.8001 {
		t.Errorf("paired ratio %v, want 0.8", got)
	}
	if got := a.paired.cpu; got < 0.7999 || got > 0.8001 {
		t.Errorf("paired CPU ratio %v, want 0.8", got)
	}
	if a.paired.baseRuns != 3 || a.paired.baseRPS != 700 {
		t.Errorf("baseline runs %d, median %v; want 3, 700", a.paired.baseRuns, a.paired.baseRPS)
	}
	// Unpaired runs keep the old comparison.
	if pairRatios([]*phaseResult{{all: classResult{rps: 1}}}) != nil {
		t.Error("ratios without a baseline")
	}
}

func TestCleanEnv(t *testing.T) {
	got := cleanEnv([]string{"PATH=/bin", "AIRFLOW__API_AUTH__JWT_SECRET=x", "AIRFLOW_HOME=/home/a", "GOMAXPROCS=8", "HOME=/h"}, "/tmp/b")
	want := []string{"PATH=/bin", "HOME=/h", "AIRFLOW_HOME=/tmp/b"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
