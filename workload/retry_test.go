package workload

import (
	"testing"
	"time"
)

func TestRetriesOnNewID(t *testing.T) {
	for _, c := range []struct {
		before, after State
		want          bool
	}{
		{StateRunning, StateUpForRetry, true},
		{StateUpForRetry, StateUpForRetry, false},
		{StateRunning, StateFailed, false},
		{StateRunning, StateUpForReschedule, false},
		{StateQueued, StateRunning, false},
	} {
		if got := RetriesOnNewID(c.before, c.after); got != c.want {
			t.Errorf("RetriesOnNewID(%s, %s) = %v, want %v", c.before, c.after, got, c.want)
		}
	}
}

func TestNextAttempt(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	delay := 3.0
	ti := &TaskInstance{ID: "old", DagID: "d", RunID: "r", TaskID: "t", MapIndex: 2, TryNumber: 1, State: StateUpForRetry,
		ReportedAt: &now, RunGrant: &ExecutionGrant{ID: "j"}, Reschedules: []Reschedule{{TryNumber: 1}},
		RetryDelaySeconds: &delay}
	next := NextAttempt(ti, "new")
	if next.ID != "new" || next.DagID != "d" || next.MapIndex != 2 || next.TryNumber != 1 || next.State != StateUpForRetry ||
		next.ReportedAt != nil || next.RunGrant != nil || next.Reschedules != nil || next.RetryDelaySeconds != &delay {
		t.Errorf("NextAttempt = %+v", next)
	}
	if ti.ID != "old" || ti.RunGrant == nil || len(ti.Reschedules) != 1 {
		t.Errorf("NextAttempt changed the archived try: %+v", ti)
	}
}

func TestTaskInstanceQueryMatches(t *testing.T) {
	d1 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ti := &TaskInstance{DagID: "d", RunID: "r", TaskID: "t", MapIndex: 0, State: StateSuccess}
	zero, one := 0, 1
	for _, c := range []struct {
		name    string
		q       TaskInstanceQuery
		logical *time.Time
		want    bool
	}{
		{"any", TaskInstanceQuery{DagID: "d", AnyState: true}, nil, true},
		{"other dag", TaskInstanceQuery{DagID: "x", AnyState: true}, nil, false},
		{"map index", TaskInstanceQuery{DagID: "d", MapIndex: &zero, AnyState: true}, nil, true},
		{"other map index", TaskInstanceQuery{DagID: "d", MapIndex: &one, AnyState: true}, nil, false},
		{"task ids", TaskInstanceQuery{DagID: "d", TaskIDs: []string{"x", "t"}, AnyState: true}, nil, true},
		{"other task ids", TaskInstanceQuery{DagID: "d", TaskIDs: []string{"x"}, AnyState: true}, nil, false},
		{"run ids", TaskInstanceQuery{DagID: "d", RunIDs: []string{"x"}, AnyState: true}, nil, false},
		{"logical date", TaskInstanceQuery{DagID: "d", LogicalDates: []time.Time{d1}, AnyState: true}, &d1, true},
		{"no logical date", TaskInstanceQuery{DagID: "d", LogicalDates: []time.Time{d1}, AnyState: true}, nil, false},
		{"states", TaskInstanceQuery{DagID: "d", States: []State{StateFailed, StateSuccess}}, nil, true},
		{"no state listed", TaskInstanceQuery{DagID: "d"}, nil, false},
		{"null only", TaskInstanceQuery{DagID: "d", States: []State{""}}, nil, false},
	} {
		if got := c.q.Matches(ti, c.logical); got != c.want {
			t.Errorf("%s: Matches = %v, want %v", c.name, got, c.want)
		}
	}
}
