package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/taskgate/taskgate/workload"
)

// TestParseResultsStore: a published DAG's record, versions, code, import
// errors and checkpoint, kept across a close and reopen; a DAG of another
// bundle is refused, one known only by its runs is taken.
func TestParseResultsStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "taskgate.db")
	db, err := Open(path, Options{BatchDelay: batchDelay})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
	const sess = "00000000-0000-0000-0000-0000000000aa"
	job, err := db.RegisterJob(ctx, "00000000-0000-0000-0000-00000000000a", sess,
		func(_, _ *workload.Job) (workload.JobDecision, error) {
			return workload.JobDecision{Insert: &workload.Job{JobType: workload.DagProcessorJobType,
				State: workload.JobRunning, StartDate: now, LatestHeartbeat: now, BundleNames: []string{"b"}}}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	other := "other"
	if err := db.PutDag(ctx, workload.Dag{DagID: "taken", BundleName: &other}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutDagRun(ctx, dagRun("by_runs", "r1", now)); err != nil {
		t.Fatal(err)
	}
	result := func(seq int64, dagID, tags, source string, importErrors map[string]string) *workload.ParseResult {
		d, err := workload.ParseSerializedDag([]byte(`{"__version": 3, "dag": {"dag_id": "` + dagID + `",
			"fileloc": "/dags/a.py", "relative_fileloc": "a.py", "tasks": [], "tags": ` + tags + `}}`))
		if err != nil {
			t.Fatal(err)
		}
		d.Source, d.SourceHash = source, workload.SourceHash(source)
		return &workload.ParseResult{JobID: job.ID, SessionID: sess, AttemptID: fmt.Sprint("attempt-", seq),
			DispatchSequence: seq, BundleName: "b", RelativeFileloc: "a.py", ParseDuration: 0.5,
			Dags: []workload.ParsedDag{d}, ImportErrors: importErrors, PayloadHash: fmt.Sprint(seq),
			SourceKey: workload.SourceKey("b", "a.py")}
	}
	publish := func(db *DB, r *workload.ParseResult, at time.Time) (workload.ParseReceipt, error) {
		return db.PublishParseResult(ctx, r, at, func(s workload.ParseState) (*workload.ParseReceipt, error) {
			return workload.DecideParseResult(r, s)
		})
	}
	if _, err := publish(db, result(1, "d", `["x"]`, "src 1", map[string]string{"a.py/m.py": "trace"}), now); err != nil {
		t.Fatal(err)
	}
	if _, err := publish(db, result(2, "d", `["x"]`, "src 2", nil), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := publish(db, result(3, "d", `["y"]`, "src 2", nil), now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	var refused *workload.PublicationError
	if _, err := publish(db, result(4, "taken", `[]`, "s", nil), now); !errors.As(err, &refused) ||
		refused.Reason != workload.ReasonDagOwnedElsewhere {
		t.Errorf("another bundle's dag: %v", err)
	}
	if _, err := publish(db, result(5, "by_runs", `[]`, "s", nil), now); err != nil {
		t.Errorf("a dag known by its runs: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{BatchDelay: batchDelay})
	d, err := db.Dag(ctx, "d")
	if err != nil || *d.BundleName != "b" || *d.RelativeFileloc != "a.py" || !d.Paused() || len(d.Tags) != 1 || d.Tags[0] != "y" {
		t.Errorf("dag %+v, %v", d, err)
	}
	versions, err := db.DagVersions(ctx, "d")
	if err != nil || len(versions) != 2 || versions[0].SourceCode != "src 2" || versions[1].VersionNumber != 2 {
		t.Errorf("versions %+v, %v", versions, err)
	}
	data, err := db.SerializedDag(ctx, "d")
	var doc struct {
		Dag struct {
			Tags []string `json:"tags"`
		} `json:"dag"`
	}
	if err != nil || json.Unmarshal(data, &doc) != nil || len(doc.Dag.Tags) != 1 || doc.Dag.Tags[0] != "y" {
		t.Errorf("serialized dag %s, %v", data, err)
	}
	if errs, err := db.ImportErrors(ctx, "b"); err != nil || len(errs) != 1 || errs["a.py/m.py"] != "trace" {
		t.Errorf("import errors %v, %v", errs, err)
	}
	if det, err := db.DagDetails(ctx, "d"); err != nil || !det.LastParsedTime.Equal(now.Add(2*time.Minute)) ||
		det.MaxActiveTasks != workload.DefaultMaxActiveTasks {
		t.Errorf("details %+v, %v", det, err)
	}
	if cps, err := db.ParseCheckpoints(ctx); err != nil || len(cps) != 1 || cps[0].AttemptID != "attempt-5" {
		t.Errorf("checkpoints %+v, %v", cps, err)
	}
	// The checkpoint answers the last attempt again, unchanged.
	r := result(5, "by_runs", `[]`, "s", nil)
	if got, err := publish(db, r, now.Add(time.Hour)); err != nil || !got.AcceptedAt.Equal(now) {
		t.Errorf("replay %+v, %v", got, err)
	}
}

// A published DAG's stub tasks are kept with its record, for /run's
// arg_bindings; a later publication without them drops them.
func TestStubTaskOfPublishedDag(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "taskgate.db"), Options{BatchDelay: batchDelay})
	ctx := context.Background()
	now := time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
	const sess = "00000000-0000-0000-0000-0000000000aa"
	job, err := db.RegisterJob(ctx, "00000000-0000-0000-0000-00000000000a", sess,
		func(_, _ *workload.Job) (workload.JobDecision, error) {
			return workload.JobDecision{Insert: &workload.Job{JobType: workload.DagProcessorJobType,
				State: workload.JobRunning, StartDate: now, LatestHeartbeat: now, BundleNames: []string{"b"}}}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(seq int64, isStub string) {
		t.Helper()
		d, err := workload.ParseSerializedDag([]byte(`{"__version": 3, "dag": {"dag_id": "d", "fileloc": "/dags/a.py",
			"relative_fileloc": "a.py", "tasks": [{"__type": "operator", "__var": {"task_id": "s", "is_stub": ` + isStub + `,
			"arg_bindings": [{"name": "a", "kind": "literal", "value": 1}]}}]}}`))
		if err != nil {
			t.Fatal(err)
		}
		r := &workload.ParseResult{JobID: job.ID, SessionID: sess, AttemptID: fmt.Sprint("attempt-", seq),
			DispatchSequence: seq, BundleName: "b", RelativeFileloc: "a.py", Dags: []workload.ParsedDag{d},
			PayloadHash: fmt.Sprint(seq), SourceKey: workload.SourceKey("b", "a.py")}
		if _, err := db.PublishParseResult(ctx, r, now, func(s workload.ParseState) (*workload.ParseReceipt, error) {
			return workload.DecideParseResult(r, s)
		}); err != nil {
			t.Fatal(err)
		}
	}
	ti := &workload.TaskInstance{DagID: "d", TaskID: "s"}
	publish(1, "true")
	op, err := db.StubTask(ctx, ti)
	if err != nil {
		t.Fatal(err)
	}
	if ab, err := workload.ArgBindings(op); err != nil || string(ab) != `[{"name":"a","kind":"literal","value":1}]` {
		t.Errorf("arg_bindings %s, %v", ab, err)
	}
	if op, err := db.StubTask(ctx, &workload.TaskInstance{DagID: "unknown", TaskID: "s"}); op != nil || err != nil {
		t.Errorf("an unknown dag: %s, %v", op, err)
	}
	publish(2, "false")
	if op, err := db.StubTask(ctx, ti); op != nil || err != nil {
		t.Errorf("after a publication without stub tasks: %s, %v", op, err)
	}
}

// A published DAG's task groups are kept with its record, for the
// task-instance queries' task_group_id; a later publication without them
// drops them. A DAG known by its runs alone has no serialized version; a
// record written by PutDag may carry groups.
func TestTaskGroupsOfPublishedDag(t *testing.T) {
	db := openAt(t, filepath.Join(t.TempDir(), "taskgate.db"), Options{BatchDelay: batchDelay})
	ctx := context.Background()
	now := time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
	const sess = "00000000-0000-0000-0000-0000000000aa"
	job, err := db.RegisterJob(ctx, "00000000-0000-0000-0000-00000000000a", sess,
		func(_, _ *workload.Job) (workload.JobDecision, error) {
			return workload.JobDecision{Insert: &workload.Job{JobType: workload.DagProcessorJobType,
				State: workload.JobRunning, StartDate: now, LatestHeartbeat: now, BundleNames: []string{"b"}}}, nil
		})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(seq int64, children string) {
		t.Helper()
		d, err := workload.ParseSerializedDag([]byte(`{"__version": 3, "dag": {"dag_id": "d", "fileloc": "/dags/a.py",
			"relative_fileloc": "a.py", "tasks": [{"__type": "operator", "__var": {"task_id": "group1.t"}}],
			"task_group": {"_group_id": null, "prefix_group_id": true, "children": ` + children + `}}}`))
		if err != nil {
			t.Fatal(err)
		}
		r := &workload.ParseResult{JobID: job.ID, SessionID: sess, AttemptID: fmt.Sprint("attempt-", seq),
			DispatchSequence: seq, BundleName: "b", RelativeFileloc: "a.py", Dags: []workload.ParsedDag{d},
			PayloadHash: fmt.Sprint(seq), SourceKey: workload.SourceKey("b", "a.py")}
		if _, err := db.PublishParseResult(ctx, r, now, func(s workload.ParseState) (*workload.ParseReceipt, error) {
			return workload.DecideParseResult(r, s)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.TaskGroupTaskIDs(ctx, "d", "group1"); !errors.Is(err, workload.ErrNoSerializedDag) {
		t.Errorf("before a publication: %v, want ErrNoSerializedDag", err)
	}
	publish(1, `{"group1": ["taskgroup", {"_group_id": "group1", "prefix_group_id": true,
		"children": {"group1.t": ["operator", "group1.t"]}}]}`)
	if ids, err := db.TaskGroupTaskIDs(ctx, "d", "group1"); err != nil || len(ids) != 1 || ids[0] != "group1.t" {
		t.Errorf("group1: %v, %v", ids, err)
	}
	if _, err := db.TaskGroupTaskIDs(ctx, "d", "group2"); !errors.Is(err, workload.ErrNoTaskGroup) {
		t.Errorf("group2: %v, want ErrNoTaskGroup", err)
	}
	publish(2, `{"group1.t": ["operator", "group1.t"]}`)
	if _, err := db.TaskGroupTaskIDs(ctx, "d", "group1"); !errors.Is(err, workload.ErrNoTaskGroup) {
		t.Errorf("after a publication without groups: %v, want ErrNoTaskGroup", err)
	}
	if err := db.PutDagRun(ctx, dagRun("by_runs", "r1", now)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TaskGroupTaskIDs(ctx, "by_runs", "group1"); !errors.Is(err, workload.ErrNoSerializedDag) {
		t.Errorf("a dag known by its runs: %v, want ErrNoSerializedDag", err)
	}
	if err := db.PutDag(ctx, workload.Dag{DagID: "put", TaskGroups: workload.TaskGroups{"g": {"g.a", "g.b"}}}); err != nil {
		t.Fatal(err)
	}
	if ids, err := db.TaskGroupTaskIDs(ctx, "put", "g"); err != nil || len(ids) != 2 {
		t.Errorf("a record written by PutDag: %v, %v", ids, err)
	}
}
