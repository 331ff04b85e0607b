package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskgate/taskgate/workload"
)

// Airflow's test_dag_parsing.py (execution_api/versions/head, API version
// 2027-02-28), case by case: a DAG processor's Job publishes a file's
// parse results. Airflow's file overrides require_auth with the claims it
// needs; here every request carries the real dag_processor token of a Job
// the case seeded, granted the bundle "bundle". On PostgreSQL the bundles
// "bundle" and "other" are active dag_bundle rows; the embedded store has
// no bundle table, and a Job's registered bundles are its active ones.

const parsePath = "/execution/jobs/%d/parse-results"

// parseJob is Airflow's job fixture: a running DagProcessorJob of the
// session, registered for "bundle".
func parseJob(change func(j *workload.Job)) workload.Job {
	return jobFixture(func(j *workload.Job) {
		j.BundleNames = []string{"bundle"}
		if change != nil {
			change(j)
		}
	})
}

// parseToken is the dag_processor token of the session's Job id.
func (e *workersEnv) parseToken(session string, id int64, bundles ...string) string {
	if bundles == nil {
		bundles = []string{"bundle"}
	}
	c := e.m.claims(session, "dag_processor", 10*time.Minute)
	c["dag_bundles"] = bundles
	c["job_id"] = id
	return "Bearer " + e.m.hs512(c)
}

// parseBody is Airflow's body fixture: DAG "published" of a.py, with the
// source the worker captured.
func parseBody() map[string]any {
	return map[string]any{
		"attempt_id":        newID(),
		"dispatch_sequence": 1,
		"bundle_name":       "bundle",
		"relative_fileloc":  "a.py",
		"bundle_version":    "v1",
		"version_data":      map[string]any{"ref": "v1"},
		"parse_duration":    0.5,
		"serialized_dags": []any{map[string]any{
			"__version": 3,
			"dag": map[string]any{
				"dag_id": "published", "fileloc": "/worker-only/dags/a.py", "relative_fileloc": "a.py",
				"timezone": "UTC", "tasks": []any{}, "dag_dependencies": []any{},
				"timetable": map[string]any{"__type": "airflow.timetables.simple.NullTimetable", "__var": map[string]any{}},
			},
		}},
		"source_codes": map[string]any{
			"/worker-only/dags/a.py": map[string]any{"source_code": "# captured on worker", "language": "python"},
		},
	}
}

func dagOf(body map[string]any) map[string]any {
	return body["serialized_dags"].([]any)[0].(map[string]any)["dag"].(map[string]any)
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// publish posts body as the parse result of the case's first Job.
func (e *workersEnv) publish(body map[string]any) *response {
	e.t.Helper()
	return e.publishAs(e.jobIDs[0], jobSession, body)
}

func (e *workersEnv) publishAs(id int64, session string, body map[string]any) *response {
	e.t.Helper()
	return e.send("POST", fmt.Sprintf(parsePath, id), e.parseToken(session, id), jsonOf(e.t, body))
}

// parseEnv starts a case's server with its Jobs and DAGs; on PostgreSQL
// the bundles "bundle" and "other" are active.
func parseEnv(t *testing.T, backend workersBackend, seed workersSeed) *workersEnv {
	e := newWorkersEnv(t, backend, seed)
	if backend == postgresBackend {
		e.pg.exec(`INSERT INTO dag_bundle (name, active) VALUES ('bundle', true), ('other', true) ON CONFLICT DO NOTHING`)
	}
	return e
}

// publishedDag is what a store holds of a published DAG.
type publishedDag struct {
	Bundle, RelativeFileloc *string
	Paused, Stale           bool
	HasImportErrors         bool
	ParseDuration           float64
	ParsedAt                time.Time
	Versions                int
	Source, Data            string
}

// published reads the DAG as the store holds it (on the embedded store,
// once the server stopped); ok is false when there is no dag row.
func (e *workersEnv) published(dagID string) (publishedDag, bool) {
	e.t.Helper()
	var d publishedDag
	if e.backend == postgresBackend {
		var n int
		e.pg.queryRow(`SELECT count(*) FROM dag WHERE dag_id = $1`, []any{dagID}, &n)
		if n == 0 {
			return d, false
		}
		var parsedAt *time.Time
		var duration *float64
		e.pg.queryRow(`SELECT bundle_name, relative_fileloc, is_paused, is_stale, has_import_errors, last_parse_duration,
			last_parsed_time, (SELECT count(*) FROM dag_version WHERE dag_id = $1) FROM dag WHERE dag_id = $1`, []any{dagID},
			&d.Bundle, &d.RelativeFileloc, &d.Paused, &d.Stale, &d.HasImportErrors, &duration, &parsedAt, &d.Versions)
		if duration != nil {
			d.ParseDuration = *duration
		}
		if parsedAt != nil {
			d.ParsedAt = parsedAt.UTC()
		}
		if d.Versions > 0 {
			e.pg.queryRow(`SELECT coalesce(c.source_code, ''), coalesce(s.data::text, '') FROM dag_version v
				LEFT JOIN dag_code c ON c.dag_version_id = v.id LEFT JOIN serialized_dag s ON s.dag_version_id = v.id WHERE v.dag_id = $1 ORDER BY v.version_number DESC LIMIT 1`,
				[]any{dagID}, &d.Source, &d.Data)
		}
		return d, true
	}
	ctx := context.Background()
	db := e.stored()
	rec, err := db.Dag(ctx, dagID)
	if err != nil {
		return d, false
	}
	d.Bundle, d.RelativeFileloc, d.Paused, d.Stale, d.HasImportErrors = rec.BundleName, rec.RelativeFileloc,
		rec.Paused(), rec.IsStale, rec.HasImportErrors
	if det, err := db.DagDetails(ctx, dagID); err == nil {
		d.ParseDuration, d.ParsedAt = det.LastParseDuration, det.LastParsedTime
	}
	versions, err := db.DagVersions(ctx, dagID)
	if err != nil {
		e.t.Fatal(err)
	}
	d.Versions = len(versions)
	if len(versions) > 0 {
		last := versions[len(versions)-1]
		d.Source, d.Data = last.SourceCode, string(last.Data)
	}
	return d, true
}

// checkpoints are the stored checkpoints as "job:attempt", sorted.
func (e *workersEnv) checkpoints() []string {
	e.t.Helper()
	out := []string{}
	if e.backend == postgresBackend {
		rows, err := e.pg.pool.Query(context.Background(),
			`SELECT job_id::text || ':' || attempt_id::text FROM taskgate.dag_parse_checkpoint`)
		if err != nil {
			e.t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				e.t.Fatal(err)
			}
			out = append(out, s)
		}
	} else {
		cps, err := e.stored().ParseCheckpoints(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		for _, cp := range cps {
			out = append(out, fmt.Sprintf("%d:%s", cp.JobID, cp.AttemptID))
		}
	}
	slices.Sort(out)
	return out
}

// importErrors are the stored import errors of "bundle": file → stack.
func (e *workersEnv) importErrors() map[string]string {
	e.t.Helper()
	if e.backend == postgresBackend {
		out := map[string]string{}
		rows, err := e.pg.pool.Query(context.Background(),
			`SELECT filename, stacktrace FROM import_error WHERE bundle_name = 'bundle'`)
		if err != nil {
			e.t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var f, s string
			if err := rows.Scan(&f, &s); err != nil {
				e.t.Fatal(err)
			}
			out[f] = s
		}
		return out
	}
	out, err := e.stored().ImportErrors(context.Background(), "bundle")
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// receipt decodes a 200's {attempt_id, accepted_at}.
func receipt(t *testing.T, r *response) (string, time.Time) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("%s, want 200", r)
	}
	var b struct {
		AttemptID  string    `json:"attempt_id"`
		AcceptedAt time.Time `json:"accepted_at"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil || b.AttemptID == "" || b.AcceptedAt.IsZero() {
		t.Fatalf("%s: %v", r, err)
	}
	return b.AttemptID, b.AcceptedAt
}

// noPublication checks that nothing of "published" and no checkpoint was
// written.
func (e *workersEnv) noPublication() {
	e.t.Helper()
	if cps := e.checkpoints(); len(cps) != 0 {
		e.t.Errorf("checkpoints %v", cps)
	}
	if d, ok := e.published("published"); ok {
		e.t.Errorf("dag written: %+v", d)
	}
}

// The parametrized cases, named by their parameter.
var (
	unauthorizedCases = map[string]string{
		"bundle":         "test_dag_parsing.py::test_rejects_unauthorized_publication[bundle]",
		"job":            "test_dag_parsing.py::test_rejects_unauthorized_publication[job]",
		"closed":         "test_dag_parsing.py::test_rejects_unauthorized_publication[closed]",
		"replaced":       "test_dag_parsing.py::test_rejects_unauthorized_publication[replaced]",
		"inactive":       "test_dag_parsing.py::test_rejects_unauthorized_publication[inactive]",
		"deleted":        "test_dag_parsing.py::test_rejects_unauthorized_publication[deleted]",
		"missing_bundle": "test_dag_parsing.py::test_rejects_unauthorized_publication[missing_bundle]",
	}
	invalidCases = map[string]string{
		"schema":           "test_dag_parsing.py::test_invalid_result_is_rejected_without_writes[schema]",
		"version":          "test_dag_parsing.py::test_invalid_result_is_rejected_without_writes[version]",
		"source":           "test_dag_parsing.py::test_invalid_result_is_rejected_without_writes[source]",
		"path":             "test_dag_parsing.py::test_invalid_result_is_rejected_without_writes[path]",
		"error_path":       "test_dag_parsing.py::test_invalid_result_is_rejected_without_writes[error_path]",
		"warning":          "test_dag_parsing.py::test_invalid_result_is_rejected_without_writes[warning]",
		"duplicate":        "test_dag_parsing.py::test_invalid_result_is_rejected_without_writes[duplicate]",
		"dag_id":           "test_dag_parsing.py::test_invalid_result_is_rejected_without_writes[dag_id]",
		"relative_fileloc": "test_dag_parsing.py::test_invalid_result_is_rejected_without_writes[relative_fileloc]",
		"fileloc":          "test_dag_parsing.py::test_invalid_result_is_rejected_without_writes[fileloc]",
		"long_path":        "test_dag_parsing.py::test_invalid_result_is_rejected_without_writes[long_path]",
	}
	legacyCases = map[string]string{
		"None":          "test_dag_parsing.py::test_recovers_only_orphaned_legacy_dags[None]",
		"active_bundle": "test_dag_parsing.py::test_recovers_only_orphaned_legacy_dags[active_bundle]",
		"active_dag":    "test_dag_parsing.py::test_recovers_only_orphaned_legacy_dags[active_dag]",
		"file_location": "test_dag_parsing.py::test_recovers_only_orphaned_legacy_dags[file_location]",
		"version":       "test_dag_parsing.py::test_recovers_only_orphaned_legacy_dags[version]",
	}
)

type parseCase struct {
	name string
	seed workersSeed
	// only names the one store the case runs on ("" both).
	only workersBackend
	run  func(t *testing.T, e *workersEnv)
}

func TestConformanceDagParsing(t *testing.T) {
	oneJob := workersSeed{jobs: []workload.Job{parseJob(nil)}}
	var tests []parseCase
	for _, source := range []struct {
		name  string
		value any
		want  string
	}{
		{"test_dag_parsing.py::test_publishes_worker_source_without_filesystem_access[# captured on worker]",
			"# captured on worker", "# captured on worker"},
		{"test_dag_parsing.py::test_publishes_worker_source_without_filesystem_access[]", "", ""},
		{"test_dag_parsing.py::test_publishes_worker_source_without_filesystem_access[None]", nil, "Source unavailable"},
	} {
		tests = append(tests, parseCase{source.name, oneJob, "",
			func(t *testing.T, e *workersEnv) {
				body := parseBody()
				body["source_codes"].(map[string]any)["/worker-only/dags/a.py"].(map[string]any)["source_code"] = source.value
				attempt, _ := receipt(t, e.publish(body))
				if attempt != body["attempt_id"] {
					t.Errorf("attempt %s, want %s", attempt, body["attempt_id"])
				}
				d, ok := e.published("published")
				if !ok || d.RelativeFileloc == nil || *d.RelativeFileloc != "a.py" || d.Versions != 1 || d.Source != source.want ||
					!strings.Contains(strings.ReplaceAll(d.Data, " ", ""), `"dag_id":"published"`) || *d.Bundle != "bundle" || d.Stale || !d.Paused {
					t.Errorf("published %+v", d)
				}
				if cps := e.checkpoints(); !slices.Equal(cps, []string{fmt.Sprintf("%d:%s", e.jobIDs[0], attempt)}) {
					t.Errorf("checkpoints %v", cps)
				}
			}})
	}
	tests = append(tests, parseCase{"test_dag_parsing.py::test_replay_returns_receipt_without_rewriting_metadata", oneJob, "",
		func(t *testing.T, e *workersEnv) {
			body := parseBody()
			first := e.publish(body)
			_, accepted := receipt(t, first)
			replay := e.publish(body)
			if replay.status != 200 || string(replay.body) != string(first.body) {
				t.Errorf("replay %s, first %s", replay, first)
			}
			if d, _ := e.published("published"); !d.ParsedAt.Equal(accepted) || d.Versions != 1 {
				t.Errorf("parsed at %v, want %v; %d versions", d.ParsedAt, accepted, d.Versions)
			}
			if cps := e.checkpoints(); len(cps) != 1 {
				t.Errorf("checkpoints %v", cps)
			}
		}})
	for _, paused := range []bool{true, false} {
		tests = append(tests, parseCase{
			fmt.Sprintf("test_dag_parsing.py::test_publication_preserves_pause_on_creation_and_existing_pause_state[%s]",
				map[bool]string{true: "True", false: "False"}[paused]), oneJob, "",
			func(t *testing.T, e *workersEnv) {
				body := parseBody()
				dagOf(body)["is_paused_upon_creation"] = paused
				receipt(t, e.publish(body))
				body["attempt_id"], body["dispatch_sequence"] = newID(), 2
				dagOf(body)["is_paused_upon_creation"] = !paused
				receipt(t, e.publish(body))
				if d, _ := e.published("published"); d.Paused != paused || d.Versions != 2 {
					t.Errorf("is_paused %v, want %v (%d versions)", d.Paused, paused, d.Versions)
				}
			}})
	}
	for _, tc := range []struct{ name, change, reason string }{
		{"test_dag_parsing.py::test_rejects_conflicting_or_superseded_publication[payload]", "payload", "publication_conflict"},
		{"test_dag_parsing.py::test_rejects_conflicting_or_superseded_publication[attempt]", "attempt", "publication_superseded"},
	} {
		tests = append(tests, parseCase{tc.name, oneJob, "",
			func(t *testing.T, e *workersEnv) {
				body := parseBody()
				receipt(t, e.publish(body))
				if tc.change == "payload" {
					body["parse_duration"] = 99
				} else {
					body["attempt_id"] = newID()
				}
				r := e.publish(body)
				if r.status != 409 || detail(t, r)["reason"] != tc.reason {
					t.Fatalf("%s, want 409 %s", r, tc.reason)
				}
				if d, _ := e.published("published"); d.ParseDuration != 0.5 {
					t.Errorf("last_parse_duration %v", d.ParseDuration)
				}
			}})
	}
	tests = append(tests, parseCase{"test_dag_parsing.py::test_newer_result_supersedes_old_attempt", oneJob, "",
		func(t *testing.T, e *workersEnv) {
			original := parseBody()
			receipt(t, e.publish(original))
			newer := parseBody()
			newer["attempt_id"], newer["dispatch_sequence"], newer["parse_duration"] = newID(), 2, 2.0
			attempt, _ := receipt(t, e.publish(newer))
			if r := e.publish(original); r.status != 409 || detail(t, r)["reason"] != "publication_superseded" {
				t.Errorf("older attempt again: %s", r)
			}
			if d, _ := e.published("published"); d.ParseDuration != 2.0 {
				t.Errorf("last_parse_duration %v", d.ParseDuration)
			}
			if cps := e.checkpoints(); !slices.Equal(cps, []string{fmt.Sprintf("%d:%s", e.jobIDs[0], attempt)}) {
				t.Errorf("checkpoints %v", cps)
			}
		}})
	for _, same := range []bool{true, false} {
		owner := "other"
		if same {
			owner = "bundle"
		}
		old := "old.py"
		paused := true
		seed := workersSeed{jobs: oneJob.jobs, dags: []workload.Dag{{DagID: "published", BundleName: &owner,
			RelativeFileloc: &old, IsPaused: &paused}}}
		tests = append(tests, parseCase{
			fmt.Sprintf("test_dag_parsing.py::test_allows_file_relocation_but_not_cross_bundle_takeover[%s]",
				map[bool]string{true: "True", false: "False"}[same]), seed, "",
			func(t *testing.T, e *workersEnv) {
				r := e.publish(parseBody())
				want, file := 409, "old.py"
				if same {
					want, file = 200, "a.py"
				}
				if r.status != want || (!same && detail(t, r)["reason"] != "dag_owned_by_another_bundle") {
					t.Fatalf("%s, want %d", r, want)
				}
				if d, _ := e.published("published"); *d.RelativeFileloc != file || *d.Bundle != owner {
					t.Errorf("relative_fileloc %v of bundle %v", *d.RelativeFileloc, *d.Bundle)
				}
			}})
	}
	for _, failure := range []string{"bundle", "job", "closed", "replaced", "inactive", "deleted", "missing_bundle"} {
		name := unauthorizedCases[failure]
		seed := workersSeed{jobs: []workload.Job{parseJob(func(j *workload.Job) {
			switch failure {
			case "closed":
				end := j.StartDate
				j.EndDate = &end
			case "replaced":
				j.SessionID = ""
			}
		})}}
		only := workersBackend("")
		if failure == "inactive" || failure == "missing_bundle" || failure == "deleted" {
			// The embedded store has no bundle table, and deletes no Job.
			only = postgresBackend
		}
		tests = append(tests, parseCase{name, seed, only,
			func(t *testing.T, e *workersEnv) {
				body := parseBody()
				id := e.jobIDs[0]
				tok := e.parseToken(jobSession, id)
				path := fmt.Sprintf(parsePath, id)
				switch failure {
				case "bundle":
					body["bundle_name"] = "other"
				case "job":
					path = fmt.Sprintf(parsePath, id+1000)
				case "deleted":
					e.pg.exec(`DELETE FROM taskgate.job WHERE id = $1`, id)
				case "missing_bundle":
					e.pg.exec(`DELETE FROM dag_bundle WHERE name = 'bundle'`)
				case "inactive":
					e.pg.exec(`UPDATE dag_bundle SET active = false WHERE name = 'bundle'`)
				}
				r := e.send("POST", path, tok, jsonOf(t, body))
				want, reason := 403, "job_closed"
				switch failure {
				case "bundle":
					reason = "bundle_not_granted"
				case "job":
					want, reason = 404, "not_found"
				case "inactive", "missing_bundle":
					want, reason = 409, "bundle_inactive"
				}
				if r.status != want || detail(t, r)["reason"] != reason {
					t.Fatalf("%s, want %d %s", r, want, reason)
				}
				e.noPublication()
			}})
	}
	for _, failure := range []string{"schema", "version", "source", "path", "error_path", "warning", "duplicate", "dag_id",
		"relative_fileloc", "fileloc", "long_path"} {
		tests = append(tests, parseCase{invalidCases[failure], oneJob, "", func(t *testing.T, e *workersEnv) {
			body := parseBody()
			dag := dagOf(body)
			switch failure {
			case "schema":
				dag["tasks"] = "invalid"
			case "version":
				body["serialized_dags"].([]any)[0].(map[string]any)["__version"] = 999
			case "source":
				body["source_codes"] = map[string]any{}
			case "path":
				dag["relative_fileloc"] = "../other.py"
			case "error_path":
				body["import_errors"] = map[string]any{"other.py": "error"}
			case "warning":
				body["warnings"] = []any{map[string]any{"dag_id": "other", "warning_type": "duplicate dag id", "message": "error"}}
			case "duplicate":
				body["serialized_dags"] = append(body["serialized_dags"].([]any), parseBody()["serialized_dags"].([]any)[0])
			case "long_path":
				body["parsed_definitions"] = []any{"a.py/" + strings.Repeat("x", 2000)}
			default:
				delete(dag, failure)
			}
			if r := e.publish(body); r.status != 422 {
				t.Fatalf("%s, want 422", r)
			}
			e.noPublication()
		}})
	}
	tests = append(tests, parseCase{"test_dag_parsing.py::test_rejects_oversized_result",
		workersSeed{jobs: oneJob.jobs, serverEnv: []string{"AIRFLOW__TASKGATE__MAX_BODY_BYTES=24MiB"}}, "",
		func(t *testing.T, e *workersEnv) {
			body := parseBody()
			// Raw bytes under the body limit, over 16 MiB once dumped
			// as Python does (each é is \u00e9).
			body["source_codes"].(map[string]any)["/worker-only/dags/a.py"].(map[string]any)["source_code"] =
				strings.Repeat("é", 3<<20)
			if r := e.publish(body); r.status != 413 || !strings.Contains(string(r.body), "Parse result exceeds 16 MiB") {
				t.Fatalf("%s, want 413", r)
			}
			e.noPublication()
		}})
	tests = append(tests, parseCase{"test_dag_parsing.py::test_rejects_non_json_version_metadata", oneJob, "",
		func(t *testing.T, e *workersEnv) {
			raw := strings.Replace(jsonOf(t, parseBody()), `{"ref":"v1"}`, `{"invalid": NaN}`, 1)
			if r := e.send("POST", fmt.Sprintf(parsePath, e.jobIDs[0]), e.parseToken(jobSession, e.jobIDs[0]), raw); r.status != 422 {
				t.Fatalf("%s, want 422", r)
			}
			e.noPublication()
		}})
	tests = append(tests, parseCase{"test_dag_parsing.py::test_empty_result_clears_file_errors_and_has_replay_receipt", oneJob, "",
		func(t *testing.T, e *workersEnv) {
			body := parseBody()
			body["serialized_dags"], body["source_codes"], body["import_errors"] = []any{}, map[string]any{},
				map[string]any{"a.py": "broken"}
			receipt(t, e.publish(body))
			if e.backend == postgresBackend {
				if errs := e.importErrors(); errs["a.py"] != "broken" {
					t.Errorf("import errors after the broken parse: %v", errs)
				}
			}
			body["attempt_id"], body["dispatch_sequence"], body["import_errors"] = newID(), 2, map[string]any{}
			result := e.publish(body)
			receipt(t, result)
			if replay := e.publish(body); string(replay.body) != string(result.body) {
				t.Errorf("replay %s, want %s", replay, result)
			}
			if errs := e.importErrors(); len(errs) != 0 {
				t.Errorf("import errors: %v", errs)
			}
		}})
	tests = append(tests, parseCase{"test_dag_parsing.py::test_container_result_keeps_member_errors_and_source", oneJob, "",
		func(t *testing.T, e *workersEnv) {
			body := parseBody()
			body["relative_fileloc"] = "bundle.zip"
			dagOf(body)["relative_fileloc"] = "bundle.zip/a.py"
			body["parsed_definitions"] = []any{"bundle.zip/a.py", "bundle.zip/b.py"}
			body["import_errors"] = map[string]any{"bundle.zip/b.py": "bad member"}
			receipt(t, e.publish(body))
			if errs := e.importErrors(); len(errs) != 1 || errs["bundle.zip/b.py"] != "bad member" {
				t.Errorf("import errors: %v", errs)
			}
			if d, _ := e.published("published"); d.Source != "# captured on worker" || d.Stale || d.HasImportErrors {
				t.Errorf("published %+v", d)
			}
		}})
	tests = append(tests, parseCase{"test_dag_parsing.py::test_other_job_publication_is_not_overwritten_by_receipt_recovery",
		workersSeed{jobs: []workload.Job{parseJob(nil), parseJob(func(j *workload.Job) {
			j.SessionID, j.RegistrationID = jobOtherSession, jobOtherReg
		})}}, "",
		func(t *testing.T, e *workersEnv) {
			body := parseBody()
			first := e.publish(body)
			receipt(t, first)
			newer := parseBody()
			newer["attempt_id"], newer["parse_duration"] = newID(), 3.0
			receipt(t, e.publishAs(e.jobIDs[1], jobOtherSession, newer))
			if r := e.publish(body); string(r.body) != string(first.body) {
				t.Errorf("replay %s, want %s", r, first)
			}
			if d, _ := e.published("published"); d.ParseDuration != 3.0 {
				t.Errorf("last_parse_duration %v", d.ParseDuration)
			}
			if cps := e.checkpoints(); len(cps) != 2 {
				t.Errorf("checkpoints %v", cps)
			}
		}})
	tests = append(tests, parseCase{"test_dag_parsing.py::test_job_cleanup_removes_its_checkpoint", oneJob, postgresBackend,
		func(t *testing.T, e *workersEnv) {
			receipt(t, e.publish(parseBody()))
			e.pg.exec(`DELETE FROM taskgate.job WHERE id = $1`, e.jobIDs[0])
			if cps := e.checkpoints(); len(cps) != 0 {
				t.Errorf("checkpoints %v", cps)
			}
			if _, ok := e.published("published"); !ok {
				t.Error("the dag went with the job")
			}
		}})
	tests = append(tests, parseCase{"test_dag_parsing.py::test_concurrent_replay_commits_one_publication", oneJob, "",
		func(t *testing.T, e *workersEnv) {
			body := parseBody()
			var wg sync.WaitGroup
			responses := make([]*response, 2)
			for i := range responses {
				wg.Add(1)
				go func() {
					defer wg.Done()
					responses[i] = sendVersion(t, e.srv.URL, newestAPIVersion, "POST", fmt.Sprintf(parsePath, e.jobIDs[0]),
						e.parseToken(jobSession, e.jobIDs[0]), jsonOf(t, body))
				}()
			}
			wg.Wait()
			receipt(t, responses[0])
			if string(responses[0].body) != string(responses[1].body) {
				t.Errorf("answers %s and %s", responses[0], responses[1])
			}
			if cps := e.checkpoints(); len(cps) != 1 {
				t.Errorf("checkpoints %v", cps)
			}
		}})
	for _, ineligible := range []string{"None", "active_bundle", "active_dag", "file_location", "version"} {
		tests = append(tests, parseCase{legacyCases[ineligible], oneJob,
			// The embedded store has no bundle table: it never hands a
			// DAG of a named bundle to another.
			postgresBackend, func(t *testing.T, e *workersEnv) {
				var file *string
				if ineligible == "file_location" {
					file = strp("old.py")
				}
				e.pg.exec(`UPDATE dag_bundle SET active = $1 WHERE name = 'other'`, ineligible == "active_bundle")
				e.pg.exec(`INSERT INTO dag (dag_id, is_paused, is_stale, bundle_name, relative_fileloc, fileloc, timetable_type,
					max_active_tasks, max_consecutive_failed_dag_runs, has_task_concurrency_limits)
					VALUES ('published', true, $1, 'other', $2, '/old-host/dags/a.py', '', 16, 0, false)`,
					ineligible != "active_dag", file)
				if ineligible == "version" {
					e.pg.exec(`INSERT INTO dag_version (id, version_number, dag_id, bundle_name, created_at, last_updated)
						VALUES ($1, 1, 'published', 'other', now(), now())`, newID())
				}
				r := e.publish(parseBody())
				want, bundle := 200, "bundle"
				if ineligible != "None" {
					want, bundle = 409, "other"
				}
				if r.status != want {
					t.Fatalf("%s, want %d", r, want)
				}
				d, _ := e.published("published")
				if *d.Bundle != bundle || (want == 200 && (*d.RelativeFileloc != "a.py" || d.Stale)) {
					t.Errorf("published %+v", d)
				}
			}})
	}
	for _, backend := range workersBackends {
		t.Run(string(backend), func(t *testing.T) {
			for _, tt := range tests {
				if tt.only != "" && tt.only != backend {
					continue
				}
				t.Run(tt.name, func(t *testing.T) {
					tt.run(t, parseEnv(t, backend, tt.seed))
				})
			}
		})
	}
}

// TestPublishedDagIsRead: on the embedded store, the DAG a Job published is
// what a task reads at GET /dags/{dag_id} and /dags/{dag_id}/state.
func TestPublishedDagIsRead(t *testing.T) {
	e := &workersEnv{t: t, backend: embeddedBackend, dataDir: newDataDir(t)}
	if err := os.MkdirAll(e.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	db := e.openStore()
	ctx := context.Background()
	e.jobIDs = []int64{seedJob(t, db, parseJob(nil))}
	dr := workload.DagRun{DagID: callerDag, RunID: callerRun, RunType: "manual", State: "running",
		RunAfter: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Conf: json.RawMessage("{}")}
	if err := db.PutDagRun(ctx, dr); err != nil {
		t.Fatal(err)
	}
	ti := workload.TaskInstance{ID: newID(), DagID: callerDag, RunID: callerRun, TaskID: "t", MapIndex: -1, TryNumber: 1,
		State: workload.StateRunning, Queue: "default", PoolSlots: 1, UpdatedAt: time.Now().UTC()}
	if _, err := db.InsertTaskInstance(ctx, dr, ti, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	e.srv = startServer(t, e.dataDir)
	e.m = newMinter(t, e.dataDir)
	body := parseBody()
	dag := dagOf(body)
	dag["is_paused_upon_creation"] = false
	dag["tags"] = []any{"b", "a"}
	dag["tasks"] = []any{map[string]any{"__type": "operator", "__var": map[string]any{"task_id": "x", "owner": "ann"}}}
	receipt(t, e.publish(body))
	tok := e.token(ti.ID, "")
	r := e.send("GET", "/execution/dags/published", tok, "")
	var got map[string]any
	if r.status != 200 || json.Unmarshal(r.body, &got) != nil {
		t.Fatalf("%s, want 200", r)
	}
	for k, want := range map[string]any{"dag_id": "published", "is_paused": false, "bundle_name": "bundle",
		"bundle_version": "v1", "relative_fileloc": "a.py", "owners": "ann"} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v (%s)", k, got[k], want, r.body)
		}
	}
	if tags := fmt.Sprint(got["tags"]); tags != "[a b]" {
		t.Errorf("tags %s", tags)
	}
	if r := e.send("GET", "/execution/dags/published/state", tok, ""); r.status != 200 || strings.TrimSpace(string(r.body)) != `{"is_paused":false}` {
		t.Errorf("state: %s", r)
	}
}

// TestParseResultValueRejectedOnPostgres: a value Airflow's columns cannot
// hold (a tag over dag_tag.name's 100 characters, a NUL in the source) is
// Airflow's 422 "Value rejected by database", and nothing is written.
func TestParseResultValueRejectedOnPostgres(t *testing.T) {
	for name, change := range map[string]func(b map[string]any){
		"long tag": func(b map[string]any) { dagOf(b)["tags"] = []any{strings.Repeat("t", 101)} },
		"nul in source": func(b map[string]any) {
			b["source_codes"].(map[string]any)["/worker-only/dags/a.py"].(map[string]any)["source_code"] = "a\x00b"
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := parseEnv(t, postgresBackend, workersSeed{jobs: []workload.Job{parseJob(nil)}})
			body := parseBody()
			change(body)
			r := e.publish(body)
			if r.status != 422 || detail(t, r)["reason"] != "Value rejected by database" {
				t.Fatalf("%s, want 422", r)
			}
			e.noPublication()
		})
	}
}
