package workload

// Airflow archives a try the moment it reports up_for_retry
// (TaskInstance.prepare_db_for_next_try): the try is recorded into the
// task-instance history under its id, and the task instance at its
// coordinates (dag, run, task, map index) goes on at once under a new id, a
// UUIDv7, still up_for_retry and with the same try number, which the
// scheduler side bumps when it queues the next try. Tokens name a try by
// its id, so the archived try's token then answers as archived (see
// PhaseOf and TryStatus.Moved).

// RetriesOnNewID reports whether a try moving from state before to after is
// archived and its task instance given a new id: entering up_for_retry.
func RetriesOnNewID(before, after State) bool {
	return after == StateUpForRetry && before != StateUpForRetry
}

// NextAttempt is the task instance that goes on at ti's coordinates under
// id once ti, which just reported up_for_retry, is archived: ti as it
// stands, without what belonged to the archived try alone — its
// reschedules (Airflow deletes them), the token its /run handed out, and
// its report time, so that the new id is no try's own token's.
func NextAttempt(ti *TaskInstance, id string) TaskInstance {
	next := *ti
	next.ID = id
	next.Reschedules = nil
	next.RunGrant = nil
	next.ReportedAt = nil
	return next
}

// IsNextAttempt reports whether ti is a task instance NextAttempt made and
// no try has taken over yet: up_for_retry without a report of its own (a
// try reports up_for_retry itself, which sets ReportedAt). The next queued
// try replaces it, as Airflow's scheduler reuses the row.
func IsNextAttempt(ti *TaskInstance) bool {
	return ti.State == StateUpForRetry && ti.ReportedAt == nil
}
