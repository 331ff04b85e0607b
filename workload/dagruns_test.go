package workload

import (
	"encoding/json"
	"errors"
	"regexp"
	"testing"
	"time"
)

func TestAdmitTriggerAndClear(t *testing.T) {
	yes := true
	cases := []struct {
		name           string
		dag            Dag
		trigger, clear string // the refusal's reason, "" when admitted
	}{
		{"plain", Dag{DagID: "d"}, "", ""},
		{"paused dags are triggered", Dag{DagID: "d", IsPaused: &yes}, "", ""},
		{"import errors", Dag{DagID: "d", HasImportErrors: true}, "import_errors", "import_errors"},
		{"operator runs allowed", Dag{DagID: "d", AllowedRunTypes: []string{"manual", "operator_triggered"}}, "", ""},
		{"operator runs denied", Dag{DagID: "d", AllowedRunTypes: []string{"manual"}}, "denied_run_type", ""},
		{"no run type allowed", Dag{DagID: "d", AllowedRunTypes: []string{}}, "denied_run_type", ""},
	}
	reason := func(err error) string {
		var r *DagRefusal
		if errors.As(err, &r) {
			return r.Reason
		}
		if err != nil {
			return err.Error()
		}
		return ""
	}
	for _, c := range cases {
		if got := reason(AdmitTrigger(&c.dag)); got != c.trigger {
			t.Errorf("%s: AdmitTrigger = %q, want %q", c.name, got, c.trigger)
		}
		if got := reason(AdmitClear(&c.dag)); got != c.clear {
			t.Errorf("%s: AdmitClear = %q, want %q", c.name, got, c.clear)
		}
	}
	err := AdmitTrigger(&Dag{DagID: "etl", HasImportErrors: true})
	if want := "Dag with dag_id 'etl' has import errors and cannot be triggered"; err.(*DagRefusal).Message != want {
		t.Errorf("message = %q, want %q", err.(*DagRefusal).Message, want)
	}
}

func TestNewTriggeredRun(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	ld := time.Date(2025, 2, 20, 0, 0, 0, 0, time.FixedZone("x", 3600))
	ra := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	user := "alice"

	dr := NewTriggeredRun("d", "r", &ld, nil, []byte(`{"a":1}`), nil, nil, &user, now)
	if dr.State != "queued" || dr.RunType != "operator_triggered" || !dr.RunAfter.Equal(now) ||
		!dr.LogicalDate.Equal(ld) || !dr.DataIntervalStart.Equal(now) || !dr.DataIntervalEnd.Equal(now) ||
		dr.LogicalDate.Location() != time.UTC || *dr.TriggeringUserName != "alice" || string(dr.Conf) != `{"a":1}` {
		t.Errorf("with a logical date: %+v", dr)
	}
	dr = NewTriggeredRun("d", "r", nil, nil, nil, nil, nil, nil, now)
	if !dr.RunAfter.Equal(now) || dr.LogicalDate != nil || dr.DataIntervalStart != nil {
		t.Errorf("without dates: %+v", dr)
	}
	dr = NewTriggeredRun("d", "r", &ld, &ra, nil, nil, nil, nil, now)
	if !dr.RunAfter.Equal(ra) || !dr.DataIntervalStart.Equal(ra) || !dr.LogicalDate.Equal(ld) {
		t.Errorf("run_after given: %v", dr.RunAfter)
	}
}

func TestClearTry(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	start := now.Add(-time.Hour)
	method := "resume"
	base := TaskInstance{ID: "old", DagID: "d", RunID: "r", TaskID: "t", MapIndex: -1, TryNumber: 3, MaxTries: 1,
		StartDate: &start, Hostname: "h", NextMethod: &method, NextKwargs: json.RawMessage(`{}`),
		Reschedules: []Reschedule{{TryNumber: 3}}, QueuedBy: "op"}
	cases := []struct {
		state     State
		wantState State
		wantMax   int
		keepsNext bool
	}{
		{StateRunning, StateRestarting, 1, true},
		{StateSuccess, "", 3, false},
		{StateFailed, "", 3, false},
		{StateUpForRetry, "", 3, false},
		{StateDeferred, "", 3, false},
		{"", "", 3, false},
	}
	for _, c := range cases {
		ti := base
		ti.State = c.state
		got := ClearTry(&ti, "new", now)
		if got.ID != "new" || got.State != c.wantState || got.MaxTries != c.wantMax || got.TryNumber != 3 ||
			(got.NextMethod != nil) != c.keepsNext || got.Reschedules != nil || got.QueuedBy != "" ||
			!got.UpdatedAt.Equal(now) || got.Hostname != "h" {
			t.Errorf("clear of a %q try: %+v", c.state, got)
		}
		if ended := got.EndDate != nil && got.EndDate.Equal(now); ended == c.state.Terminal() {
			t.Errorf("clear of a %q try: end date %v", c.state, got.EndDate)
		}
		if ti.ID != "old" || ti.State != c.state {
			t.Errorf("clear of a %q try changed the try itself: %+v", c.state, ti)
		}
		arch := ArchiveTry(&ti, now)
		wantArch := c.state
		if !c.state.Terminal() {
			wantArch = StateFailed
		}
		if arch.ID != "old" || arch.State != wantArch || (!c.state.Terminal() && !arch.EndDate.Equal(now)) {
			t.Errorf("archive of a %q try: %+v", c.state, arch)
		}
	}
	// A higher max_tries stays.
	ti := base
	ti.State, ti.MaxTries = StateFailed, 5
	if got := ClearTry(&ti, "new", now); got.MaxTries != 5 {
		t.Errorf("max_tries = %d, want 5", got.MaxTries)
	}
}

func TestClearSelectsAndClearRun(t *testing.T) {
	for _, c := range []struct {
		state      State
		onlyFailed bool
		want       bool
	}{
		{StateSuccess, false, true}, {StateSuccess, true, false}, {StateFailed, true, true},
		{StateUpstreamFailed, true, true}, {StateUpForRetry, true, false}, {"", false, true},
	} {
		if got := ClearSelects(&TaskInstance{State: c.state}, c.onlyFailed); got != c.want {
			t.Errorf("ClearSelects(%q, only_failed=%v) = %v", c.state, c.onlyFailed, got)
		}
	}
	start := time.Now()
	for _, c := range []struct {
		state string
		want  bool
	}{{"success", true}, {"failed", true}, {"running", false}, {"queued", false}} {
		dr := DagRun{State: c.state, StartDate: &start, EndDate: &start, ClearNumber: 2}
		changed := ClearRun(&dr)
		if changed != c.want {
			t.Errorf("ClearRun(%s) = %v", c.state, changed)
		}
		if changed && (dr.State != "queued" || dr.StartDate != nil || dr.EndDate != nil || dr.ClearNumber != 3) {
			t.Errorf("ClearRun(%s): %+v", c.state, dr)
		}
		if !changed && (dr.State != c.state || dr.ClearNumber != 2 || dr.StartDate == nil) {
			t.Errorf("ClearRun(%s) changed the run: %+v", c.state, dr)
		}
	}
}

func TestNewTryID(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := NewTryID(now), NewTryID(now)
	if !re.MatchString(a) || a == b {
		t.Errorf("ids %q, %q", a, b)
	}
	if a[:13] != NewTryID(now)[:13] {
		t.Errorf("the time prefix differs within one millisecond")
	}
}
