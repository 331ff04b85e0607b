package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/workload"
)

// Airflow's test_jobs.py (execution_api/versions/head, API version
// 2027-02-28), case by case, on both stores. Airflow's file overrides
// require_auth with the claims it needs; here every request carries a real
// token: the session's dag_processor_session token minted as Airflow's
// provisioning mints it, or the dag_processor token of a Job the case
// seeded, minted as POST /jobs mints it. Where Airflow's case presents a
// token whose own Job does not exist (which the real require_auth answers
// 403 job_closed), the token here is that of another open Job.

const (
	jobSession      = "00000000-0000-0000-0000-0000000000aa"
	jobOtherSession = "00000000-0000-0000-0000-0000000000bb"
	jobRegistration = "00000000-0000-0000-0000-00000000000a"
	jobOtherReg     = "00000000-0000-0000-0000-00000000000b"
)

// jobFixture is Airflow's _create_job: a running DagProcessorJob of the
// session, with every bundle, heartbeating now.
func jobFixture(change func(j *workload.Job)) workload.Job {
	now := time.Now().UTC().Truncate(time.Microsecond)
	j := workload.Job{State: workload.JobRunning, StartDate: now, LatestHeartbeat: now, Hostname: "processor-1",
		BundleNames: []string{"bundle_a", "bundle_b"}, SessionID: jobSession, RegistrationID: jobRegistration}
	if change != nil {
		change(&j)
	}
	return j
}

// sessionToken is the session's dag_processor_session token, granted
// bundle_a and bundle_b, valid for an hour.
func (e *workersEnv) sessionToken(session string) (string, int64) {
	c := e.m.claims(session, "dag_processor_session", time.Hour)
	c["dag_bundles"] = []string{"bundle_a", "bundle_b"}
	return "Bearer " + e.m.hs512(c), c["exp"].(int64)
}

// jobToken is the dag_processor token of the session's Job id.
func (e *workersEnv) jobToken(session string, id int64) string {
	c := e.m.claims(session, "dag_processor", 10*time.Minute)
	c["dag_bundles"] = []string{"bundle_a"}
	c["job_id"] = id
	return "Bearer " + e.m.hs512(c)
}

func (e *workersEnv) register(reg string, body string) *response {
	tok, _ := e.sessionToken(jobSession)
	b := `{"registration_id":"` + reg + `","hostname":"processor-1"`
	if body != "" {
		b += "," + body
	}
	return e.send("POST", "/execution/jobs", tok, b+"}")
}

// storedJob is a Job as the store holds it.
type storedJob struct {
	ID                        int64
	JobType, State, Hostname  string
	Unixname                  *string
	Bundles                   []string
	Session, Registration     string
	Start, Heartbeat, EndDate *time.Time
}

func (e *workersEnv) jobs() []storedJob {
	e.t.Helper()
	var out []storedJob
	if e.backend == postgresBackend {
		var n int64
		e.pg.queryRow(`SELECT coalesce(max(id), 0) FROM taskgate.job`, nil, &n)
		for id := int64(1); id <= n; id++ {
			var c int
			e.pg.queryRow(`SELECT count(*) FROM taskgate.job WHERE id = $1`, []any{id}, &c)
			if c == 0 {
				continue
			}
			var j storedJob
			var bundles string
			var session *string
			e.pg.queryRow(`SELECT id, job_type, state, hostname, unixname, bundle_names::text, session_id::text,
				registration_id::text, start_date, latest_heartbeat, end_date FROM taskgate.job WHERE id = $1`, []any{id},
				&j.ID, &j.JobType, &j.State, &j.Hostname, &j.Unixname, &bundles, &session, &j.Registration,
				&j.Start, &j.Heartbeat, &j.EndDate)
			_ = json.Unmarshal([]byte(bundles), &j.Bundles)
			if session != nil {
				j.Session = *session
			}
			out = append(out, j)
		}
		return out
	}
	for id := int64(1); ; id++ {
		j, err := e.stored().Job(context.Background(), id)
		if err != nil {
			return out
		}
		start, hb := j.StartDate, j.LatestHeartbeat
		out = append(out, storedJob{ID: j.ID, JobType: j.JobType, State: string(j.State), Hostname: j.Hostname,
			Unixname: j.Unixname, Bundles: j.BundleNames, Session: j.SessionID, Registration: j.RegistrationID,
			Start: &start, Heartbeat: &hb, EndDate: j.EndDate})
	}
}

func (e *workersEnv) job(id int64) storedJob {
	e.t.Helper()
	for _, j := range e.jobs() {
		if j.ID == id {
			return j
		}
	}
	e.t.Fatalf("job %d not stored", id)
	return storedJob{}
}

func jobIDs(js []storedJob) []int64 {
	out := []int64{}
	for _, j := range js {
		out = append(out, j.ID)
	}
	return out
}

func registered(t *testing.T, r *response) (int64, string) {
	t.Helper()
	if r.status != 201 {
		t.Fatalf("%s, want 201", r)
	}
	var body struct {
		JobID int64  `json:"job_id"`
		Token string `json:"token"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Token == "" {
		t.Fatalf("%s: %v", r, err)
	}
	return body.JobID, body.Token
}

func TestConformanceJobs(t *testing.T) {
	tests := []struct {
		name string
		seed []workload.Job
		run  func(t *testing.T, e *workersEnv)
	}{
		{"test_jobs.py::TestRegisterJob::test_registers_a_running_job_for_every_granted_bundle", nil, func(t *testing.T, e *workersEnv) {
			before := time.Now().Add(-time.Second)
			id, _ := registered(t, e.register(jobRegistration, `"unixname":"airflow"`))
			j := e.job(id)
			if j.JobType != "DagProcessorJob" || j.State != "running" || j.Hostname != "processor-1" ||
				j.Unixname == nil || *j.Unixname != "airflow" || !slices.Equal(j.Bundles, []string{"bundle_a", "bundle_b"}) ||
				j.Session != jobSession || j.Registration != jobRegistration {
				t.Errorf("stored %+v", j)
			}
			if !j.Start.Equal(*j.Heartbeat) || j.Start.Before(before) || j.EndDate != nil {
				t.Errorf("start %v heartbeat %v end %v", j.Start, j.Heartbeat, j.EndDate)
			}
		}},
		{"test_jobs.py::TestRegisterJob::test_returns_a_token_for_the_job_that_never_outlives_the_session_token", nil, func(t *testing.T, e *workersEnv) {
			tok, sessionExp := e.sessionToken(jobSession)
			r := e.send("POST", "/execution/jobs", tok,
				`{"registration_id":"`+jobRegistration+`","hostname":"processor-1","bundle_names":["bundle_b"]}`)
			id, jt := registered(t, r)
			c := e.m.parse(jt)
			if c["scope"] != "dag_processor" || c["sub"] != jobSession || c["job_id"] != float64(id) ||
				fmt.Sprint(c["dag_bundles"]) != "[bundle_b]" {
				t.Errorf("claims = %v", c)
			}
			if exp, _ := c["exp"].(float64); int64(exp) > sessionExp {
				t.Errorf("exp %v outlives the session's %d", c["exp"], sessionExp)
			}
			// The token acts on its Job.
			if r := e.send("POST", fmt.Sprintf("/execution/jobs/%d/heartbeat", id), "Bearer "+jt, ""); r.status != 200 {
				t.Errorf("heartbeat with the registered token: %s", r)
			}
		}},
		{"test_jobs.py::TestRegisterJob::test_rejects_an_empty_bundle_selection", nil, func(t *testing.T, e *workersEnv) {
			if r := e.register(jobRegistration, `"bundle_names":[]`); r.status != 422 {
				t.Fatalf("%s, want 422", r)
			}
			if js := e.jobs(); len(js) != 0 {
				t.Errorf("jobs stored: %v", js)
			}
		}},
		{"test_jobs.py::TestRegisterJob::test_rejects_an_ungranted_bundle", nil, func(t *testing.T, e *workersEnv) {
			r := e.register(jobRegistration, `"bundle_names":["bundle_a","bundle_c"]`)
			if r.status != 403 || detail(t, r)["reason"] != "bundle_not_granted" {
				t.Fatalf("%s, want 403 bundle_not_granted", r)
			}
			if js := e.jobs(); len(js) != 0 {
				t.Errorf("jobs stored: %v", js)
			}
		}},
		{"test_jobs.py::TestRegisterJob::test_same_registration_returns_the_same_job_with_a_fresh_token",
			[]workload.Job{jobFixture(nil)}, func(t *testing.T, e *workersEnv) {
				id, tok := registered(t, e.register(jobRegistration, ""))
				if id != e.jobIDs[0] || e.m.parse(tok)["job_id"] != float64(id) {
					t.Errorf("job %d, token %v; want job %d", id, e.m.parse(tok), e.jobIDs[0])
				}
				if ids := jobIDs(e.jobs()); !slices.Equal(ids, e.jobIDs) {
					t.Errorf("jobs %v", ids)
				}
			}},
		{"test_jobs.py::TestRegisterJob::test_refuses_a_retired_registration[completed]",
			[]workload.Job{jobFixture(func(j *workload.Job) {
				j.State = workload.JobSuccess
				end := time.Now().UTC()
				j.EndDate = &end
			})}, func(t *testing.T, e *workersEnv) {
				r := e.register(jobRegistration, "")
				if r.status != 409 || detail(t, r)["reason"] != "registration_retired" {
					t.Fatalf("%s, want 409 registration_retired", r)
				}
				if ids := jobIDs(e.jobs()); !slices.Equal(ids, e.jobIDs) {
					t.Errorf("jobs %v", ids)
				}
			}},
		{"test_jobs.py::TestRegisterJob::test_refuses_a_retired_registration[replaced]",
			[]workload.Job{jobFixture(func(j *workload.Job) {
				j.SessionID = ""
				j.LatestHeartbeat = j.LatestHeartbeat.Add(-24 * time.Hour)
			})}, func(t *testing.T, e *workersEnv) {
				r := e.register(jobRegistration, "")
				if r.status != 409 || detail(t, r)["reason"] != "registration_retired" {
					t.Fatalf("%s, want 409 registration_retired", r)
				}
				if ids := jobIDs(e.jobs()); !slices.Equal(ids, e.jobIDs) {
					t.Errorf("jobs %v", ids)
				}
			}},
		{"test_jobs.py::TestRegisterJob::test_refuses_a_conflicting_retry", []workload.Job{jobFixture(nil)},
			func(t *testing.T, e *workersEnv) {
				tok, _ := e.sessionToken(jobSession)
				r := e.send("POST", "/execution/jobs", tok, `{"registration_id":"`+jobRegistration+`","hostname":"processor-2"}`)
				if r.status != 409 || detail(t, r)["reason"] != "registration_conflict" {
					t.Fatalf("%s, want 409 registration_conflict", r)
				}
			}},
		{"test_jobs.py::TestRegisterJob::test_refuses_another_registration_while_the_job_is_alive",
			[]workload.Job{jobFixture(nil)}, func(t *testing.T, e *workersEnv) {
				r := e.register(jobOtherReg, "")
				if r.status != 409 || detail(t, r)["reason"] != "job_running" {
					t.Fatalf("%s, want 409 job_running", r)
				}
				if j := e.job(e.jobIDs[0]); j.Session != jobSession {
					t.Errorf("running job's session = %q", j.Session)
				}
			}},
		{"test_jobs.py::TestRegisterJob::test_replaces_a_stopped_job[heartbeat-expired]",
			[]workload.Job{jobFixture(func(j *workload.Job) { j.LatestHeartbeat = j.LatestHeartbeat.Add(-24 * time.Hour) })},
			func(t *testing.T, e *workersEnv) {
				id, _ := registered(t, e.register(jobOtherReg, ""))
				if id == e.jobIDs[0] {
					t.Fatalf("the stopped job %d was returned", id)
				}
				prev := e.job(e.jobIDs[0])
				if prev.Session != "" {
					t.Errorf("replaced job's session = %q", prev.Session)
				}
				// taskgate ends the dead Job it replaces, as Airflow's newer
				// register_job does.
				if prev.State != "failed" || prev.EndDate == nil {
					t.Errorf("replaced job state %q end %v", prev.State, prev.EndDate)
				}
			}},
		{"test_jobs.py::TestRegisterJob::test_replaces_a_stopped_job[completed]",
			[]workload.Job{jobFixture(func(j *workload.Job) {
				j.State = workload.JobSuccess
				end := time.Now().UTC()
				j.EndDate = &end
			})}, func(t *testing.T, e *workersEnv) {
				id, _ := registered(t, e.register(jobOtherReg, ""))
				if id == e.jobIDs[0] {
					t.Fatalf("the stopped job %d was returned", id)
				}
				if prev := e.job(e.jobIDs[0]); prev.Session != "" || prev.State != "success" {
					t.Errorf("replaced job %+v", prev)
				}
			}},
		{"test_jobs.py::TestHeartbeatJob::test_records_a_heartbeat",
			[]workload.Job{jobFixture(func(j *workload.Job) { j.LatestHeartbeat = j.LatestHeartbeat.Add(-10 * time.Second) })},
			func(t *testing.T, e *workersEnv) {
				id := e.jobIDs[0]
				before := time.Now().Add(-time.Second)
				r := e.send("POST", fmt.Sprintf("/execution/jobs/%d/heartbeat", id), e.jobToken(jobSession, id), "")
				if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"state":"running"}` {
					t.Fatalf("%s, want 200 running", r)
				}
				if j := e.job(id); j.Heartbeat.Before(before) {
					t.Errorf("heartbeat %v not recorded", j.Heartbeat)
				}
			}},
		{"test_jobs.py::TestHeartbeatJob::test_returns_a_stop_request",
			[]workload.Job{jobFixture(func(j *workload.Job) { j.State = workload.JobRestarting })},
			func(t *testing.T, e *workersEnv) {
				id := e.jobIDs[0]
				r := e.send("POST", fmt.Sprintf("/execution/jobs/%d/heartbeat", id), e.jobToken(jobSession, id), "")
				if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"state":"restarting"}` {
					t.Fatalf("%s, want 200 restarting", r)
				}
			}},
		{"test_jobs.py::TestHeartbeatJob::test_refuses_a_token_issued_for_another_job",
			[]workload.Job{jobFixture(nil), jobFixture(func(j *workload.Job) {
				j.SessionID, j.RegistrationID = jobOtherSession, jobOtherReg
			})}, func(t *testing.T, e *workersEnv) {
				id, other := e.jobIDs[0], e.jobIDs[1]
				sent := time.Now()
				r := e.send("POST", fmt.Sprintf("/execution/jobs/%d/heartbeat", id), e.jobToken(jobOtherSession, other), "")
				if r.status != 404 || detail(t, r)["reason"] != "not_found" {
					t.Fatalf("%s, want 404", r)
				}
				if j := e.job(id); !j.Heartbeat.Before(sent) {
					t.Errorf("heartbeat moved to %v", j.Heartbeat)
				}
			}},
		{"test_jobs.py::TestCompleteJob::test_records_the_final_state", []workload.Job{jobFixture(nil)},
			func(t *testing.T, e *workersEnv) {
				id := e.jobIDs[0]
				before := time.Now().Add(-time.Second)
				r := e.send("POST", fmt.Sprintf("/execution/jobs/%d/complete", id), e.jobToken(jobSession, id), `{"state":"success"}`)
				if r.status != 204 {
					t.Fatalf("%s, want 204", r)
				}
				if j := e.job(id); j.State != "success" || j.EndDate == nil || j.EndDate.Before(before) {
					t.Errorf("stored %+v", j)
				}
			}},
		{"test_jobs.py::TestCompleteJob::test_replay_keeps_the_first_outcome", []workload.Job{jobFixture(func(j *workload.Job) {
			j.State = workload.JobSuccess
			end := j.StartDate
			j.EndDate = &end
		})}, func(t *testing.T, e *workersEnv) {
			id := e.jobIDs[0]
			r := e.send("POST", fmt.Sprintf("/execution/jobs/%d/complete", id), e.jobToken(jobSession, id), `{"state":"failed"}`)
			if r.status != 204 {
				t.Fatalf("%s, want 204", r)
			}
			if j := e.job(id); j.State != "success" || j.EndDate == nil || !j.EndDate.Equal(*j.Start) {
				t.Errorf("stored %+v", j)
			}
		}},
		{"test_jobs.py::TestCompleteJob::test_refuses_a_job_the_token_does_not_own[another-sessions-job]",
			[]workload.Job{jobFixture(func(j *workload.Job) { j.SessionID = jobOtherSession })},
			func(t *testing.T, e *workersEnv) {
				id := e.jobIDs[0]
				r := e.send("POST", fmt.Sprintf("/execution/jobs/%d/complete", id), e.jobToken(jobSession, id), `{"state":"success"}`)
				if r.status != 404 || detail(t, r)["reason"] != "not_found" {
					t.Fatalf("%s, want 404", r)
				}
				if j := e.job(id); j.EndDate != nil {
					t.Errorf("job ended: %+v", j)
				}
			}},
		{"test_jobs.py::TestCompleteJob::test_refuses_a_job_the_token_does_not_own[replaced-job]",
			[]workload.Job{jobFixture(func(j *workload.Job) { j.SessionID = "" })},
			func(t *testing.T, e *workersEnv) {
				id := e.jobIDs[0]
				r := e.send("POST", fmt.Sprintf("/execution/jobs/%d/complete", id), e.jobToken(jobSession, id), `{"state":"success"}`)
				if r.status != 404 || detail(t, r)["reason"] != "not_found" {
					t.Fatalf("%s, want 404", r)
				}
				if j := e.job(id); j.EndDate != nil {
					t.Errorf("job ended: %+v", j)
				}
			}},
		{"test_jobs.py::TestCompleteJob::test_refuses_a_job_the_token_does_not_own[token-for-another-job]",
			[]workload.Job{jobFixture(func(j *workload.Job) {
				j.SessionID, j.RegistrationID = jobOtherSession, jobOtherReg
			}), jobFixture(nil)}, func(t *testing.T, e *workersEnv) {
				id, own := e.jobIDs[0], e.jobIDs[1]
				r := e.send("POST", fmt.Sprintf("/execution/jobs/%d/complete", id), e.jobToken(jobSession, own), `{"state":"success"}`)
				if r.status != 404 || detail(t, r)["reason"] != "not_found" {
					t.Fatalf("%s, want 404", r)
				}
				if j := e.job(id); j.EndDate != nil {
					t.Errorf("job ended: %+v", j)
				}
			}},
	}
	for _, backend := range workersBackends {
		t.Run(string(backend), func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					e := newWorkersEnv(t, backend, workersSeed{jobs: tt.seed})
					tt.run(t, e)
				})
			}
		})
	}
}

// TestJobTokensEndWithTheirJob: a dag_processor token acts while its Job is
// open and the session's; once the Job completed, or the session's next
// registration replaced it, the token is refused with Airflow's 403
// job_closed everywhere but complete, which a retry may repeat.
func TestJobTokensEndWithTheirJob(t *testing.T) {
	e := newWorkersEnv(t, embeddedBackend, workersSeed{})
	id, tok := registered(t, e.register(jobRegistration, ""))
	hb := fmt.Sprintf("/execution/jobs/%d/heartbeat", id)
	complete := fmt.Sprintf("/execution/jobs/%d/complete", id)
	if r := e.send("POST", hb, "Bearer "+tok, ""); r.status != 200 {
		t.Fatalf("heartbeat: %s", r)
	}
	if r := e.send("POST", complete, "Bearer "+tok, `{"state":"success"}`); r.status != 204 {
		t.Fatalf("complete: %s", r)
	}
	r := e.send("POST", hb, "Bearer "+tok, "")
	if d := detail(t, r); r.status != 403 || d["reason"] != "job_closed" ||
		d["message"] != "The Job this token was issued for has completed or been replaced" {
		t.Errorf("heartbeat of a completed job: %s", r)
	}
	if r := e.send("POST", complete, "Bearer "+tok, `{"state":"failed"}`); r.status != 204 {
		t.Errorf("repeated complete: %s", r)
	}
	// The session registers anew; the first registration is retired.
	if r := e.register(jobRegistration, ""); r.status != 409 || detail(t, r)["reason"] != "registration_retired" {
		t.Errorf("retired registration: %s", r)
	}
	id2, tok2 := registered(t, e.register(jobOtherReg, ""))
	if r := e.send("POST", fmt.Sprintf("/execution/jobs/%d/heartbeat", id2), "Bearer "+tok2, ""); r.status != 200 {
		t.Errorf("heartbeat of the new job: %s", r)
	}
	// A session token buys registration alone; a task's token no Job route.
	sess, _ := e.sessionToken(jobSession)
	if r := e.send("POST", fmt.Sprintf("/execution/jobs/%d/heartbeat", id2), sess, ""); r.status != 403 {
		t.Errorf("session token on heartbeat: %s", r)
	}
	if r := e.send("GET", "/execution/variables/keys", "Bearer "+tok2, ""); r.status != 403 {
		t.Errorf("job token listing variables: %s", r)
	}
}

// TestDagProcessorSessionFromTheCLI: provisioning mints the session token
// with `taskgate components dag-processor-session` into a file; the DAG
// processor exchanges it for its Job.
func TestDagProcessorSessionFromTheCLI(t *testing.T) {
	dataDir := newDataDir(t)
	tokenFile := filepath.Join(t.TempDir(), "session.jwt")
	session := strings.TrimSpace(mustCLI(t, dataDir, "components", "dag-processor-session", "--bundle", "dags",
		"--valid-for", "2h", "--token-file", tokenFile))
	raw, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dataDir)
	m := newMinter(t, dataDir)
	if c := m.parse(string(raw)); c["scope"] != "dag_processor_session" || c["sub"] != session ||
		fmt.Sprint(c["dag_bundles"]) != "[dags]" {
		t.Errorf("session claims = %v", c)
	}
	// A DAG processor speaks the version with the Job routes.
	r := sendVersion(t, srv.URL, newestAPIVersion, "POST", "/execution/jobs", "Bearer "+string(raw),
		`{"registration_id":"`+jobRegistration+`","hostname":"processor-1"}`)
	id, tok := registered(t, r)
	if c := m.parse(tok); c["sub"] != session || fmt.Sprint(c["dag_bundles"]) != "[dags]" {
		t.Errorf("job token claims = %v", c)
	}
	if r := sendVersion(t, srv.URL, newestAPIVersion, "POST", fmt.Sprintf("/execution/jobs/%d/heartbeat", id), "Bearer "+tok, ""); r.status != 200 {
		t.Errorf("heartbeat: %s", r)
	}
}
