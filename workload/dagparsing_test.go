package workload

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecideParseResult(t *testing.T) {
	session := "00000000-0000-0000-0000-0000000000aa"
	open := &Job{ID: 1, SessionID: session}
	end := time.Unix(0, 0)
	accepted := time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
	bundle, other := "bundle", "other"
	old := "old.py"
	result := func(change func(r *ParseResult)) *ParseResult {
		r := &ParseResult{JobID: 1, SessionID: session, AttemptID: "a2", DispatchSequence: 2, BundleName: bundle,
			PayloadHash: "h2", Dags: []ParsedDag{{DagID: "d"}}}
		if change != nil {
			change(r)
		}
		return r
	}
	cp := &ParseCheckpoint{AttemptID: "a1", DispatchSequence: 2, PayloadHash: "h1", AcceptedAt: accepted}
	for _, tc := range []struct {
		name    string
		r       *ParseResult
		s       ParseState
		replay  bool
		refusal string
	}{
		{"written", result(nil), ParseState{Job: open, BundleActive: true}, false, ""},
		{"no job", result(nil), ParseState{BundleActive: true}, false, ReasonJobClosed},
		{"closed job", result(nil), ParseState{Job: &Job{SessionID: session, EndDate: &end}, BundleActive: true}, false, ReasonJobClosed},
		{"replaced job", result(nil), ParseState{Job: &Job{}, BundleActive: true}, false, ReasonJobClosed},
		{"replay", result(func(r *ParseResult) { r.AttemptID, r.PayloadHash = "a1", "h1" }),
			ParseState{Job: open, Checkpoint: cp}, true, ""},
		{"conflict", result(func(r *ParseResult) { r.AttemptID = "a1" }), ParseState{Job: open, Checkpoint: cp, BundleActive: true}, false, ReasonPublicationConflict},
		{"superseded", result(nil), ParseState{Job: open, Checkpoint: cp, BundleActive: true}, false, ReasonPublicationSuperseded},
		{"newer", result(func(r *ParseResult) { r.DispatchSequence = 3 }), ParseState{Job: open, Checkpoint: cp, BundleActive: true}, false, ""},
		{"inactive bundle", result(nil), ParseState{Job: open}, false, ReasonBundleInactive},
		{"same bundle, moved", result(nil), ParseState{Job: open, BundleActive: true,
			Existing: []ExistingDag{{DagID: "d", BundleName: &bundle, RelativeFileloc: &old}}}, false, ""},
		{"other bundle", result(nil), ParseState{Job: open, BundleActive: true,
			Existing: []ExistingDag{{DagID: "d", BundleName: &other, IsStale: true}}}, false, ReasonDagOwnedElsewhere},
		{"orphaned legacy dag", result(nil), ParseState{Job: open, BundleActive: true,
			Existing: []ExistingDag{{DagID: "d", BundleName: &other, IsStale: true}}}, false, ""},
		{"legacy dag with versions", result(nil), ParseState{Job: open, BundleActive: true,
			Existing: []ExistingDag{{DagID: "d", BundleName: &other, IsStale: true, HasVersions: true}}}, false, ReasonDagOwnedElsewhere},
		{"invalid", result(func(r *ParseResult) { r.Invalid = errors.New("bad") }), ParseState{Job: open, BundleActive: true}, false, ReasonInvalidSerializedDag},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "other bundle" {
				tc.s.Existing[0].OwnerBundleActive = true
			}
			got, err := DecideParseResult(tc.r, tc.s)
			var refused *PublicationError
			switch {
			case tc.refusal != "":
				if !errors.As(err, &refused) || refused.Reason != tc.refusal {
					t.Fatalf("err = %v, want %s", err, tc.refusal)
				}
			case err != nil:
				t.Fatal(err)
			case tc.replay != (got != nil):
				t.Fatalf("receipt = %v, want replay %v", got, tc.replay)
			case got != nil && (got.AttemptID != "a1" || !got.AcceptedAt.Equal(accepted)):
				t.Errorf("receipt = %+v", got)
			}
		})
	}
}

func TestParseSerializedDag(t *testing.T) {
	doc := `{"__version": 3, "dag": {"dag_id": "d", "fileloc": "/x/a.py", "relative_fileloc": "a.py",
		"description": "desc", "max_active_runs": 3, "tags": ["b", "a"], "is_paused_upon_creation": false,
		"timetable": {"__type": "airflow.timetables.trigger.CronTriggerTimetable", "__var": {"expression": "0 0 * * *"}},
		"tasks": [{"__type": "operator", "__var": {"task_id": "t1", "owner": "ann"}},
			{"__type": "operator", "__var": {"task_id": "t2", "max_active_tis_per_dag": 1}}]}}`
	d, err := ParseSerializedDag([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if d.DagID != "d" || d.Owners != "airflow, ann" || *d.Description != "desc" || d.MaxActiveRuns != 3 ||
		d.MaxActiveTasks != DefaultMaxActiveTasks || !d.HasTaskConcurrencyLimits || d.PausedOnCreation() ||
		*d.TimetableSummary != "0 0 * * *" || d.TimetableDescription != nil || len(d.Tags) != 2 || d.Tags[0] != "a" {
		t.Errorf("parsed %+v", d)
	}
	moved, err := ParseSerializedDag([]byte(`{"__version": 3, "dag": {"dag_id": "d", "fileloc": "/y/a.py",
		"relative_fileloc": "a.py", "tasks": []}}`))
	if err != nil {
		t.Fatal(err)
	}
	same, _ := ParseSerializedDag([]byte(`{"dag": {"tasks": [], "relative_fileloc": "a.py", "fileloc": "/z/a.py",
		"dag_id": "d"}, "__version": 3}`))
	if moved.Hash != same.Hash || moved.Hash == d.Hash || *moved.TimetableSummary != "None" || !moved.PausedOnCreation() {
		t.Errorf("hashes %s %s %s, summary %v", moved.Hash, same.Hash, d.Hash, *moved.TimetableSummary)
	}
	for name, bad := range map[string]string{
		"version":   `{"__version": 999, "dag": {"dag_id": "d", "fileloc": "f", "relative_fileloc": "a.py", "tasks": []}}`,
		"tasks":     `{"__version": 3, "dag": {"dag_id": "d", "fileloc": "f", "relative_fileloc": "a.py", "tasks": "invalid"}}`,
		"no tasks":  `{"__version": 3, "dag": {"dag_id": "d", "fileloc": "f", "relative_fileloc": "a.py"}}`,
		"task":      `{"__version": 3, "dag": {"dag_id": "d", "fileloc": "f", "relative_fileloc": "a.py", "tasks": [{"__var": {}}]}}`,
		"max runs":  `{"__version": 3, "dag": {"dag_id": "d", "fileloc": "f", "relative_fileloc": "a.py", "tasks": [], "max_active_runs": "x"}}`,
		"long id":   `{"__version": 3, "dag": {"dag_id": "` + strings.Repeat("d", 251) + `", "fileloc": "f", "relative_fileloc": "a.py", "tasks": []}}`,
		"timetable": `{"__version": 3, "dag": {"dag_id": "d", "fileloc": "f", "relative_fileloc": "a.py", "tasks": [], "timetable": 1}}`,
	} {
		if _, err := ParseSerializedDag([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSourceKeyAndPayloadHash(t *testing.T) {
	if SourceKey("b", "a.py") == SourceKey("b", "a.py/x") || SourceKey("b", "a.py") != SourceKey("b", "a.py") {
		t.Error("source keys")
	}
	h1, err := PayloadHash([]byte(`{"b": 1, "a": 0.5}`))
	if err != nil {
		t.Fatal(err)
	}
	if h2, _ := PayloadHash([]byte(`{"a": 0.5, "b": 1}`)); h1 != h2 {
		t.Error("key order changed the hash")
	}
	big := make([]byte, MaxParseResultBytes+10)
	for i := range big {
		big[i] = 'x'
	}
	big[0], big[len(big)-1] = '"', '"'
	if _, err := PayloadHash(big); !errors.Is(err, ErrParseResultTooLarge) {
		t.Errorf("oversized: %v", err)
	}
}
