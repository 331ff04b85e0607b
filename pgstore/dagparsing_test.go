package pgstore

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/taskgate/taskgate/workload"
)

// publication is a parse result of file a.py of bundle "b" holding DAG d
// with the given tags, source, import errors and warnings.
func publication(t *testing.T, jobID int64, session string, seq int64, tags []string, source string,
	importErrors map[string]string, warnings []workload.DagWarning) *workload.ParseResult {
	t.Helper()
	tagJSON := "[]"
	if len(tags) > 0 {
		tagJSON = `["` + tags[0] + `"`
		for _, tg := range tags[1:] {
			tagJSON += `, "` + tg + `"`
		}
		tagJSON += "]"
	}
	d, err := workload.ParseSerializedDag([]byte(`{"__version": 3, "dag": {"dag_id": "d", "fileloc": "/dags/a.py",
		"relative_fileloc": "a.py", "tasks": [], "tags": ` + tagJSON + `}}`))
	if err != nil {
		t.Fatal(err)
	}
	d.Source, d.SourceHash = source, workload.SourceHash(source)
	if importErrors == nil {
		importErrors = map[string]string{}
	}
	return &workload.ParseResult{JobID: jobID, SessionID: session, AttemptID: fmt.Sprintf("00000000-0000-7000-8000-%012d", seq),
		DispatchSequence: seq, BundleName: "b", RelativeFileloc: "a.py", ParseDuration: float64(seq),
		Dags: []workload.ParsedDag{d}, ImportErrors: importErrors, Warnings: warnings,
		PayloadHash: fmt.Sprint(seq), SourceKey: workload.SourceKey("b", "a.py")}
}

// TestParseResultsOnPostgres: a DAG's version moves only when its hash
// does, its code, tags, warnings and its file's import errors follow each
// publication, and the checkpoint keeps the latest.
func TestParseResultsOnPostgres(t *testing.T) {
	db, af, _ := newTestStore(t)
	ctx := context.Background()
	now := time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
	const sess = "00000000-0000-0000-0000-0000000000aa"
	af.Exec(t, `INSERT INTO dag_bundle (name, active) VALUES ('b', true)`)
	job, err := db.RegisterJob(ctx, "00000000-0000-0000-0000-00000000000a", sess,
		func(_, _ *workload.Job) (workload.JobDecision, error) {
			return workload.JobDecision{Insert: &workload.Job{JobType: workload.DagProcessorJobType,
				State: workload.JobRunning, StartDate: now, LatestHeartbeat: now, BundleNames: []string{"b"}}}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(r *workload.ParseResult, at time.Time) workload.ParseReceipt {
		t.Helper()
		got, err := db.PublishParseResult(ctx, r, at, func(s workload.ParseState) (*workload.ParseReceipt, error) {
			return workload.DecideParseResult(r, s)
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	type state struct {
		versions               int
		source, tags, warnings string
		errors                 string
		stale, hasErrors       bool
	}
	read := func() state {
		t.Helper()
		var s state
		if err := db.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM dag_version WHERE dag_id = 'd'),
				(SELECT c.source_code FROM dag_code c JOIN dag_version v ON v.id = c.dag_version_id
					WHERE v.dag_id = 'd' ORDER BY v.version_number DESC LIMIT 1),
				(SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM dag_tag WHERE dag_id = 'd'),
				(SELECT coalesce(string_agg(warning_type || ':' || message, ','), '') FROM dag_warning WHERE dag_id = 'd'),
				(SELECT coalesce(string_agg(filename || ':' || stacktrace, ',' ORDER BY filename), '') FROM import_error
					WHERE bundle_name = 'b'),
				is_stale, has_import_errors FROM dag WHERE dag_id = 'd'`).
			Scan(&s.versions, &s.source, &s.tags, &s.warnings, &s.errors, &s.stale, &s.hasErrors); err != nil {
			t.Fatal(err)
		}
		return s
	}
	pool := []workload.DagWarning{{DagID: "d", WarningType: "non-existent pool", Message: "no pool p"}}
	first := publish(publication(t, job.ID, sess, 1, []string{"x", "y"}, "src 1",
		map[string]string{"a.py/b.py": "trace"}, pool), now)
	if !first.AcceptedAt.Equal(now) {
		t.Errorf("accepted at %v", first.AcceptedAt)
	}
	if got, want := read(), (state{1, "src 1", "x,y", "non-existent pool:no pool p", "a.py/b.py:trace", false, false}); got != want {
		t.Errorf("first: %+v, want %+v", got, want)
	}
	// Same DAG, new source: the version stays, its code follows; the
	// member parsed clean loses its error.
	second := publication(t, job.ID, sess, 2, []string{"x", "y"}, "src 2", nil, pool)
	second.ParsedDefinitions = []string{"a.py/b.py"}
	publish(second, now.Add(time.Minute))
	if got, want := read(), (state{1, "src 2", "x,y", "non-existent pool:no pool p", "", false, false}); got != want {
		t.Errorf("new source: %+v, want %+v", got, want)
	}
	// Other tags change the hash: a new version; the warning is gone.
	publish(publication(t, job.ID, sess, 3, []string{"z"}, "src 2", nil, nil), now.Add(2*time.Minute))
	if got, want := read(), (state{2, "src 2", "z", "", "", false, false}); got != want {
		t.Errorf("new tags: %+v, want %+v", got, want)
	}
	// An error for the DAG's own file marks it stale with import errors.
	publish(publication(t, job.ID, sess, 4, []string{"z"}, "src 2", map[string]string{"a.py": "boom"}, nil),
		now.Add(3*time.Minute))
	if got, want := read(), (state{2, "src 2", "z", "", "a.py:boom", true, true}); got != want {
		t.Errorf("broken file: %+v, want %+v", got, want)
	}
	var attempts []string
	rows, err := db.pool.Query(ctx, `SELECT attempt_id::text FROM taskgate.dag_parse_checkpoint`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		attempts = append(attempts, a)
	}
	rows.Close()
	if !slices.Equal(attempts, []string{"00000000-0000-7000-8000-000000000004"}) {
		t.Errorf("checkpoints %v", attempts)
	}
}
