package store

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/taskgate/taskgate/workload"
	bolt "go.etcd.io/bbolt"
)

// DAG processor Jobs (workload.Jobs): one record per Job, keyed by its id,
// with indexes by registration id and by the session whose Job it is.

func jobKey(id int64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, uint64(id))
	return k
}

func loadJob(b *bolt.Bucket, key []byte) (*workload.Job, error) {
	data := b.Get(key)
	if data == nil {
		return nil, nil
	}
	var j workload.Job
	if err := decodeJSON("job", data, &j); err != nil {
		return nil, err
	}
	return &j, nil
}

func putJob(b *bolt.Bucket, j *workload.Job) error {
	enc, err := encodeJSON(fmt.Sprintf("job %d", j.ID), j)
	if err != nil {
		return err
	}
	return put(b, jobKey(j.ID), enc)
}

// Job returns the Job, or an error wrapping workload.ErrNotFound.
func (db *DB) Job(ctx context.Context, id int64) (*workload.Job, error) {
	var out *workload.Job
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		if b == nil {
			return nil
		}
		var err error
		out, err = loadJob(b, jobKey(id))
		return err
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, notFound("job %d", id)
	}
	return out, nil
}

// RegisterJob looks up the registration's and the session's Jobs, asks
// decide, and stores its decision, in one write.
func (db *DB) RegisterJob(ctx context.Context, registrationID, sessionID string,
	decide func(registered, previous *workload.Job) (workload.JobDecision, error)) (*workload.Job, error) {
	// Both ids come canonical (lower-case, hyphenated) from the gateway,
	// which parsed them; they key the indexes as they are.
	reg, sess := registrationID, sessionID
	if err := checkKey("registration id", []byte(reg)); err != nil {
		return nil, err
	}
	if err := checkKey("session id", []byte(sess)); err != nil {
		return nil, err
	}
	var out *workload.Job
	err := db.write(ctx, func(tx *bolt.Tx) error {
		out = nil
		jobs, err := bucket(tx, bucketJobs)
		if err != nil {
			return err
		}
		byReg, err := bucket(tx, bucketJobsByRegistration)
		if err != nil {
			return err
		}
		bySession, err := bucket(tx, bucketJobsBySession)
		if err != nil {
			return err
		}
		var registered, previous *workload.Job
		if k := byReg.Get([]byte(reg)); k != nil {
			if registered, err = loadJob(jobs, k); err != nil {
				return err
			}
		}
		if k := bySession.Get([]byte(sess)); k != nil {
			if previous, err = loadJob(jobs, k); err != nil {
				return err
			}
			if previous != nil && previous.SessionID != sess {
				previous = nil
			}
		}
		d, err := decide(registered, previous)
		if err != nil {
			return err
		}
		if d.Resume != nil {
			out = d.Resume
			return nil
		}
		if d.Replaced != nil {
			if err := putJob(jobs, d.Replaced); err != nil {
				return err
			}
		}
		seq, err := jobs.NextSequence()
		if err != nil {
			return err
		}
		j := *d.Insert
		j.ID = int64(seq)
		j.SessionID, j.RegistrationID = sess, reg
		if err := putJob(jobs, &j); err != nil {
			return err
		}
		if err := put(byReg, []byte(reg), jobKey(j.ID)); err != nil {
			return err
		}
		if err := put(bySession, []byte(sess), jobKey(j.ID)); err != nil {
			return err
		}
		out = &j
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateJob loads the Job, applies fn and stores the result in one
// transaction; fn runs on the writer goroutine.
func (db *DB) UpdateJob(ctx context.Context, id int64, fn func(j *workload.Job) error) (*workload.Job, error) {
	var out *workload.Job
	err := db.write(ctx, func(tx *bolt.Tx) error {
		out = nil
		b, err := bucket(tx, bucketJobs)
		if err != nil {
			return err
		}
		j, err := loadJob(b, jobKey(id))
		if err != nil {
			return err
		}
		if j == nil {
			return notFound("job %d", id)
		}
		if err := fn(j); err != nil {
			return err
		}
		if j.ID != id {
			return fmt.Errorf("store: update of job %d changed its id", id)
		}
		if err := putJob(b, j); err != nil {
			return err
		}
		out = j
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
