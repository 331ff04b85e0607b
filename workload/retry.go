package workload

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

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

// NewAttemptID returns a new task-instance id as Airflow's uuid7() makes
// one: 48 bits of Unix milliseconds, version 7, variant 10, random bits.
func NewAttemptID(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[6:])
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16|uint64(binary.BigEndian.Uint16(b[6:8])))
	b[6] = 0x70 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
