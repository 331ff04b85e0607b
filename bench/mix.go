package bench

import (
	"fmt"
	"strconv"
	"strings"
)

// Weight is one kind of call in a mix and how often it occurs relative to
// the others.
type Weight struct {
	Name   string
	Weight int
}

// ParseMix reads a mix such as "heartbeat:50,variable:15,finish:1". Every
// name must be one of known, at most once, with a non-negative weight;
// entries of weight 0 are dropped, and at least one weight must be positive.
func ParseMix(spec string, known []string) ([]Weight, error) {
	var out []Weight
	seen := map[string]bool{}
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, num, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("bench: mix entry %q: want name:weight", part)
		}
		name = strings.TrimSpace(name)
		w, err := strconv.Atoi(strings.TrimSpace(num))
		if err != nil || w < 0 {
			return nil, fmt.Errorf("bench: mix entry %q: weight must be a non-negative integer", part)
		}
		valid := false
		for _, k := range known {
			valid = valid || k == name
		}
		if !valid {
			return nil, fmt.Errorf("bench: mix entry %q: unknown call (known: %s)", part, strings.Join(known, ", "))
		}
		if seen[name] {
			return nil, fmt.Errorf("bench: mix entry %q: %s given twice", part, name)
		}
		seen[name] = true
		if w > 0 {
			out = append(out, Weight{name, w})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench: mix %q has no positive weight", spec)
	}
	return out, nil
}

// Scheduler interleaves the calls of a mix by smooth weighted round robin
// (as nginx balances upstreams): over every run of Σweights picks, call i is
// picked exactly weight_i times, spread out instead of in bursts, and the
// sequence is deterministic, so two runs of the benchmark send the same
// calls in the same order. A Scheduler is not safe for concurrent use; each
// load-generator worker has its own.
type Scheduler struct {
	weights []int
	current []int
	total   int
}

// NewScheduler returns a scheduler over ws, which must have at least one
// entry and only positive weights (ParseMix's result qualifies).
func NewScheduler(ws []Weight) (*Scheduler, error) {
	if len(ws) == 0 {
		return nil, fmt.Errorf("bench: empty mix")
	}
	s := &Scheduler{weights: make([]int, len(ws)), current: make([]int, len(ws))}
	for i, w := range ws {
		if w.Weight <= 0 {
			return nil, fmt.Errorf("bench: mix weight of %s is %d, want > 0", w.Name, w.Weight)
		}
		s.weights[i] = w.Weight
		s.total += w.Weight
	}
	return s, nil
}

// Next returns the index (into the mix it was built from) of the next call.
func (s *Scheduler) Next() int {
	best := 0
	for i, w := range s.weights {
		s.current[i] += w
		if s.current[i] > s.current[best] {
			best = i
		}
	}
	s.current[best] -= s.total
	return best
}

// Skip advances the scheduler by n picks, so that workers built from the
// same mix do not all send the same call at the same moment.
func (s *Scheduler) Skip(n int) {
	for range n % s.total {
		s.Next()
	}
}

// The variable every benchmark read fetches. The baseline server answers
// its JSON GET with exactly the body the gateway sends for this variable, so
// the two differ only in the work behind the response.
const (
	VariableKey   = "bench_var"
	VariableValue = "s3://bench-bucket/warehouse/daily/partition=2026-06-30"
)
