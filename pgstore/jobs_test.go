package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskgate/taskgate/workload"
)

// TestJobsOnPostgres: DAG processor Jobs in taskgate.job, registered,
// resumed, refused while alive, replaced once dead, completed.
func TestJobsOnPostgres(t *testing.T) {
	db, _ := openData(t, nil)
	ctx := context.Background()
	now := time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC)
	const (
		sess  = "00000000-0000-0000-0000-0000000000aa"
		reg1  = "00000000-0000-0000-0000-00000000000a"
		reg2  = "00000000-0000-0000-0000-00000000000b"
		other = "00000000-0000-0000-0000-0000000000bb"
	)
	register := func(reg, session string, at time.Time) (*workload.Job, error) {
		r := workload.JobRegistration{SessionID: session, RegistrationID: reg, Hostname: "p1"}
		return db.RegisterJob(ctx, reg, session, func(registered, previous *workload.Job) (workload.JobDecision, error) {
			return workload.RegisterJob(r, []string{"a"}, registered, previous, at, time.Minute)
		})
	}
	first, err := register(reg1, sess, now)
	if err != nil {
		t.Fatal(err)
	}
	if first.ID == 0 || first.SessionID != sess || first.RegistrationID != reg1 || first.State != workload.JobRunning {
		t.Fatalf("registered %+v", first)
	}
	if again, err := register(reg1, sess, now); err != nil || again.ID != first.ID {
		t.Errorf("resume = %+v, %v", again, err)
	}
	var ce *workload.ConflictError
	if _, err := register(reg2, sess, now); !errors.As(err, &ce) || ce.Reason != "job_running" {
		t.Errorf("a second registration while alive = %v", err)
	}
	// Another session's registration is its own.
	if j, err := register("00000000-0000-0000-0000-00000000000c", other, now); err != nil || j.ID == first.ID {
		t.Errorf("another session = %+v, %v", j, err)
	}
	hb := now.Add(10 * time.Second)
	if j, err := db.UpdateJob(ctx, first.ID, func(j *workload.Job) error { j.LatestHeartbeat = hb; return nil }); err != nil ||
		!j.LatestHeartbeat.Equal(hb) {
		t.Errorf("heartbeat = %+v, %v", j, err)
	}
	later := now.Add(time.Hour)
	second, err := register(reg2, sess, later)
	if err != nil || second.ID == first.ID {
		t.Fatalf("replacement = %+v, %v", second, err)
	}
	got, err := db.Job(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SessionID != "" || got.State != workload.JobFailed || got.EndDate == nil || !got.EndDate.Equal(later) ||
		!got.LatestHeartbeat.Equal(hb) {
		t.Errorf("replaced job = %+v", got)
	}
	if _, err := register(reg1, sess, later); !errors.As(err, &ce) || ce.Reason != "registration_retired" {
		t.Errorf("retired registration = %v", err)
	}
	if _, err := db.UpdateJob(ctx, second.ID, func(j *workload.Job) error {
		return workload.CompleteJob(j, sess, workload.JobSuccess, later)
	}); err != nil {
		t.Fatal(err)
	}
	if j, _ := db.Job(ctx, second.ID); j.State != workload.JobSuccess || j.EndDate == nil {
		t.Errorf("completed = %+v", j)
	}
	if _, err := db.Job(ctx, 999); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("missing job = %v", err)
	}
	if _, err := db.UpdateJob(ctx, 999, func(*workload.Job) error { return nil }); !errors.Is(err, workload.ErrNotFound) {
		t.Errorf("update of a missing job = %v", err)
	}
}
