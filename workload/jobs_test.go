package workload

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/taskgate/taskgate/scopes"
)

const (
	jobSess  = "00000000-0000-0000-0000-0000000000aa"
	jobOther = "00000000-0000-0000-0000-0000000000bb"
	jobReg   = "00000000-0000-0000-0000-00000000000a"
)

func TestRegisteredBundles(t *testing.T) {
	granted := []string{"b", "a"}
	tests := []struct {
		name      string
		requested []string
		want      []string
		wantErr   string
	}{
		{"every granted bundle by default", nil, []string{"a", "b"}, ""},
		{"a selection, sorted and once", []string{"b", "b"}, []string{"b"}, ""},
		{"an ungranted bundle", []string{"a", "z", "c"}, nil, "Bundles not granted: ['c', 'z']"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RegisteredBundles(granted, tt.requested)
			var fe *ForbiddenError
			switch {
			case tt.wantErr != "":
				if !errors.As(err, &fe) || fe.Reason != "bundle_not_granted" || fe.Message != tt.wantErr {
					t.Fatalf("err = %v", err)
				}
			case err != nil:
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegisterJob(t *testing.T) {
	now := time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
	const threshold = 50 * time.Second
	r := JobRegistration{SessionID: jobSess, RegistrationID: jobReg, Hostname: "p1"}
	bundles := []string{"a"}
	open := func(change func(j *Job)) *Job {
		j := &Job{ID: 3, State: JobRunning, LatestHeartbeat: now, Hostname: "p1", BundleNames: []string{"a"},
			SessionID: jobSess, RegistrationID: jobReg}
		if change != nil {
			change(j)
		}
		return j
	}
	end := now.Add(-time.Minute)
	tests := []struct {
		name                 string
		registered, previous *Job
		wantReason           string
		wantResume           bool
		wantReplaced         *Job
	}{
		{"a first registration", nil, nil, "", false, nil},
		{"a repeat while open resumes", open(nil), open(nil), "", true, nil},
		{"a repeat after completion is retired", open(func(j *Job) { j.EndDate = &end }), nil, "registration_retired", false, nil},
		{"a repeat after replacement is retired", open(func(j *Job) { j.SessionID = "" }), nil, "registration_retired", false, nil},
		{"a repeat with another host conflicts", open(func(j *Job) { j.Hostname = "p2" }), nil, "registration_conflict", false, nil},
		{"a repeat with other bundles conflicts", open(func(j *Job) { j.BundleNames = []string{"a", "b"} }), nil,
			"registration_conflict", false, nil},
		{"another registration while alive", nil, open(nil), "job_running", false, nil},
		{"another registration after a dead heartbeat ends the dead Job", nil,
			open(func(j *Job) { j.LatestHeartbeat = now.Add(-threshold) }), "", false,
			open(func(j *Job) {
				j.LatestHeartbeat = now.Add(-threshold)
				j.State, j.EndDate, j.SessionID = JobFailed, &now, ""
			})},
		{"another registration after completion", nil, open(func(j *Job) { j.State, j.EndDate = JobSuccess, &end }), "", false,
			open(func(j *Job) { j.State, j.EndDate, j.SessionID = JobSuccess, &end, "" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := RegisterJob(r, bundles, tt.registered, tt.previous, now, threshold)
			if tt.wantReason != "" {
				var ce *ConflictError
				if !errors.As(err, &ce) || ce.Reason != tt.wantReason {
					t.Fatalf("err = %v, want %s", err, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantResume {
				if d.Resume != tt.registered || d.Insert != nil {
					t.Errorf("decision %+v, want resume", d)
				}
				return
			}
			want := &Job{JobType: DagProcessorJobType, State: JobRunning, StartDate: now, LatestHeartbeat: now,
				Hostname: "p1", BundleNames: bundles, SessionID: jobSess, RegistrationID: jobReg}
			if diff := cmp.Diff(want, d.Insert); diff != "" {
				t.Errorf("insert (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantReplaced, d.Replaced); diff != "" {
				t.Errorf("replaced (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompleteJob(t *testing.T) {
	now := time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
	earlier := now.Add(-time.Hour)
	j := &Job{ID: 1, State: JobRunning, SessionID: jobSess}
	if err := CompleteJob(j, jobSess, JobSuccess, now); err != nil || j.State != JobSuccess || !j.EndDate.Equal(now) {
		t.Fatalf("complete: %v %+v", err, j)
	}
	if err := CompleteJob(j, jobSess, JobFailed, now.Add(time.Minute)); err != nil || j.State != JobSuccess || !j.EndDate.Equal(now) {
		t.Errorf("a repeat changed the Job: %v %+v", err, j)
	}
	for name, other := range map[string]*Job{
		"another session's": {ID: 2, State: JobRunning, SessionID: jobOther},
		"a replaced Job":    {ID: 3, State: JobRunning},
		"an ended replaced": {ID: 4, State: JobSuccess, EndDate: &earlier},
	} {
		if err := CompleteJob(other, jobSess, JobSuccess, now); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
}

func TestJobPhase(t *testing.T) {
	end := time.Now()
	for _, tt := range []struct {
		name string
		job  *Job
		want scopes.Phase
	}{
		{"open and the session's", &Job{SessionID: jobSess}, scopes.PhaseRunning},
		{"ended", &Job{SessionID: jobSess, EndDate: &end}, scopes.PhaseUnknown},
		{"replaced", &Job{}, scopes.PhaseUnknown},
		{"another session's", &Job{SessionID: jobOther}, scopes.PhaseUnknown},
		{"none", nil, scopes.PhaseUnknown},
	} {
		if got := JobPhase(tt.job, jobSess); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
