package workload

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/taskgate/taskgate/scopes"
)

// DAG processor Jobs: a DAG processor session (its dag_processor_session
// token, minted by trusted provisioning) registers one Job at a time and
// gets a dag_processor token for it; the token acts while that Job is open
// and the session's. These are Airflow's job rows of job_type
// DagProcessorJob, with the session's columns the Execution API's /jobs
// routes add.

// JobState is the state of a Job, spelled as Airflow's JobState.
type JobState string

// Job states.
const (
	JobRunning    JobState = "running"
	JobSuccess    JobState = "success"
	JobRestarting JobState = "restarting"
	JobFailed     JobState = "failed"
)

// DagProcessorJobType is Airflow's DagProcessorJobRunner.job_type.
const DagProcessorJobType = "DagProcessorJob"

// DefaultDagProcessorHealthCheckThreshold is Airflow's [dag_processor]
// health_check_threshold: a running Job whose latest heartbeat is older is
// no longer alive, and its session may register a new one.
const DefaultDagProcessorHealthCheckThreshold = 50 * time.Second

// Job is Airflow's job row of a DAG processor session.
type Job struct {
	ID              int64      `json:"id"`
	JobType         string     `json:"job_type"`
	State           JobState   `json:"state"`
	StartDate       time.Time  `json:"start_date"`
	EndDate         *time.Time `json:"end_date"`
	LatestHeartbeat time.Time  `json:"latest_heartbeat"`
	Hostname        string     `json:"hostname"`
	Unixname        *string    `json:"unixname"`
	BundleNames     []string   `json:"bundle_names"`
	// SessionID is the session whose Job this is; "" once a later
	// registration of the session replaced it.
	SessionID string `json:"session_id"`
	// RegistrationID is the id the processor chose for the registration
	// that created the Job, unique across Jobs.
	RegistrationID string `json:"registration_id"`
}

// Open reports whether the Job is the session's and not ended: what every
// dag_processor token of it needs to act (Airflow's job_closed check).
func (j *Job) Open(sessionID string) bool {
	return j != nil && j.EndDate == nil && j.SessionID != "" && scopes.SameUUID(j.SessionID, sessionID)
}

// Alive is Airflow's Job.is_alive: running, with a heartbeat younger than
// threshold.
func (j *Job) Alive(now time.Time, threshold time.Duration) bool {
	return j.State == JobRunning && now.Sub(j.LatestHeartbeat) < threshold
}

// JobPhase places a dag_processor token: PhaseRunning while its Job is
// open and the token's session's, PhaseUnknown otherwise (scopes.Decide
// then answers job_closed).
func JobPhase(j *Job, sessionID string) scopes.Phase {
	if j.Open(sessionID) {
		return scopes.PhaseRunning
	}
	return scopes.PhaseUnknown
}

// ForbiddenError is a 403 with Airflow's {"reason", "message"} detail.
type ForbiddenError struct {
	Reason  string
	Message string
}

func (e *ForbiddenError) Error() string { return "workload: " + e.Reason + ": " + e.Message }

// JobRegistration is a session's POST /jobs request.
type JobRegistration struct {
	SessionID      string
	RegistrationID string
	Hostname       string
	Unixname       *string
	// Granted is the session token's dag_bundles; Requested the body's
	// bundle_names (nil: every granted bundle).
	Granted   []string
	Requested []string
}

// RegisteredBundles returns the bundles a registration asks for, sorted and
// without repeats, or 403 bundle_not_granted naming those its session was
// not granted.
func RegisteredBundles(granted, requested []string) ([]string, error) {
	want := requested
	if want == nil {
		want = granted
	}
	out := slices.Clone(want)
	slices.Sort(out)
	out = slices.Compact(out)
	var ungranted []string
	for _, b := range out {
		if !slices.Contains(granted, b) {
			ungranted = append(ungranted, b)
		}
	}
	if len(ungranted) > 0 {
		return nil, &ForbiddenError{Reason: "bundle_not_granted",
			Message: "Bundles not granted: " + pyStrList(ungranted)}
	}
	return out, nil
}

// pyStrList spells a list of strings as Python's str(list) does.
func pyStrList(s []string) string {
	out := "["
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += "'" + v + "'"
	}
	return out + "]"
}

// JobDecision is what registering decided: Resume an earlier registration's
// Job (a fresh token for it, nothing written), or Insert a new Job after
// storing Replaced (the session's previous Job, ended if it was still open,
// and no longer the session's), when there was one.
type JobDecision struct {
	Resume   *Job
	Replaced *Job
	Insert   *Job
}

// RegisterJob decides a registration, as Airflow's register_job: registered
// is the Job an earlier request with the same registration id created (nil
// if none), previous the session's current Job (nil if none). A
// registration repeated while its Job is open resumes it; once that Job
// ended or was replaced it is refused for good (registration_retired), and
// with other details (registration_conflict). A new registration is
// refused while the session's Job is alive (job_running), and otherwise
// replaces it: an open previous Job is marked failed and ended.
func RegisterJob(r JobRegistration, bundles []string, registered, previous *Job, now time.Time,
	threshold time.Duration) (JobDecision, error) {
	if registered != nil {
		if !registered.Open(r.SessionID) {
			return JobDecision{}, &ConflictError{Reason: "registration_retired",
				Message: fmt.Sprintf("Registration %s has ended; a restarted processor uses a new one", r.RegistrationID)}
		}
		if registered.Hostname != r.Hostname || !sameOptional(registered.Unixname, r.Unixname) ||
			!slices.Equal(registered.BundleNames, bundles) {
			return JobDecision{}, &ConflictError{Reason: "registration_conflict",
				Message: fmt.Sprintf("Registration %s was made with different details", r.RegistrationID)}
		}
		return JobDecision{Resume: registered}, nil
	}
	var d JobDecision
	if previous != nil {
		if previous.EndDate == nil && previous.Alive(now, threshold) {
			return JobDecision{}, &ConflictError{Reason: "job_running",
				Message: fmt.Sprintf("Session already has running Job %d", previous.ID)}
		}
		p := *previous
		if p.EndDate == nil {
			p.State = JobFailed
			end := now
			p.EndDate = &end
		}
		p.SessionID = ""
		d.Replaced = &p
	}
	d.Insert = &Job{JobType: DagProcessorJobType, State: JobRunning, StartDate: now, LatestHeartbeat: now,
		Hostname: r.Hostname, Unixname: r.Unixname, BundleNames: bundles, SessionID: r.SessionID,
		RegistrationID: r.RegistrationID}
	return d, nil
}

func sameOptional(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// CompleteJob records a Job's final state (success or failed) once: the
// first completion wins and a repeat changes nothing, so a retry after a
// lost response succeeds. A Job no longer the session's is not found.
func CompleteJob(j *Job, sessionID string, state JobState, now time.Time) error {
	if j.SessionID == "" || !scopes.SameUUID(j.SessionID, sessionID) {
		return fmt.Errorf("%w: job %d is not the session's", ErrNotFound, j.ID)
	}
	if state != JobSuccess && state != JobFailed {
		return fmt.Errorf("%w: a job ends in success or failed, not %s", ErrInvalidState, state)
	}
	if j.EndDate != nil {
		return nil
	}
	end := now
	j.EndDate = &end
	j.State = state
	return nil
}

// Jobs stores DAG processor Jobs.
type Jobs interface {
	// Job returns the Job, or ErrNotFound.
	Job(ctx context.Context, id int64) (*Job, error)
	// RegisterJob calls decide, in one transaction (the rows locked, on
	// PostgreSQL), with the Job registrationID created (nil if none) and
	// the session's current Job (nil if none), then stores what it
	// decided: the replaced Job, and the new Job under the next id. It
	// returns the Job resumed or inserted.
	RegisterJob(ctx context.Context, registrationID, sessionID string,
		decide func(registered, previous *Job) (JobDecision, error)) (*Job, error)
	// UpdateJob loads the Job, calls fn on it and stores the result in one
	// transaction. ErrNotFound without calling fn.
	UpdateJob(ctx context.Context, id int64, fn func(j *Job) error) (*Job, error)
}
