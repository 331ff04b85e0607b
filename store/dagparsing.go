package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

// A DAG processor's published parse results (workload.DagParsing): the
// facts Airflow's update_dag_parsing_results_in_db writes to its tables,
// in the store's own buckets, with the file's checkpoint, in one write.
// The embedded store has no dag_bundle table: a publication's bundle is
// active when its Job registered it, a DAG of another named bundle is
// never taken over, and a DAG no bundle owns is the first publisher's.
//
// Buckets (created by the first publication; a file without them has no
// published DAG):
//   - bucketDags (dagruns.go): dag_id → workload.Dag, the columns the
//     /dags routes read;
//   - bucketDagDetails: dag_id → DagDetails, the rest of the dag row;
//   - bucketDagVersions: tuple(dag_id) + version number (4 bytes,
//     big-endian) → DagVersion, the serialized DAG and its code;
//   - bucketImportErrors: tuple(bundle, file) → importError;
//   - bucketDagWarnings: tuple(dag_id, warning_type) → dagWarning;
//   - bucketParseCheckpoints: Job id (8 bytes) + source key →
//     workload.ParseCheckpoint.
var (
	bucketDagDetails       = []byte("dag_details")
	bucketDagVersions      = []byte("dag_versions")
	bucketImportErrors     = []byte("import_errors")
	bucketDagWarnings      = []byte("dag_warnings")
	bucketParseCheckpoints = []byte("dag_parse_checkpoints")
)

var _ workload.DagParsing = (*DB)(nil)

// DagDetails is what Airflow's dag row holds besides workload.Dag.
type DagDetails struct {
	Fileloc                     string    `json:"fileloc"`
	LastParsedTime              time.Time `json:"last_parsed_time"`
	LastParseDuration           float64   `json:"last_parse_duration"`
	DisplayName                 *string   `json:"dag_display_name,omitempty"`
	Description                 *string   `json:"description,omitempty"`
	TimetableType               string    `json:"timetable_type"`
	TimetableSummary            *string   `json:"timetable_summary,omitempty"`
	TimetableDescription        *string   `json:"timetable_description,omitempty"`
	MaxActiveTasks              int       `json:"max_active_tasks"`
	MaxActiveRuns               int       `json:"max_active_runs"`
	MaxConsecutiveFailedDagRuns int       `json:"max_consecutive_failed_dag_runs"`
	HasTaskConcurrencyLimits    bool      `json:"has_task_concurrency_limits"`
	FailFast                    bool      `json:"fail_fast"`
}

// DagVersion is one of Airflow's dag_version rows with its serialized_dag
// and dag_code.
type DagVersion struct {
	VersionNumber  uint32          `json:"version_number"`
	BundleName     string          `json:"bundle_name"`
	BundleVersion  *string         `json:"bundle_version,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	DagHash        string          `json:"dag_hash"`
	Data           json.RawMessage `json:"data"`
	Fileloc        string          `json:"fileloc"`
	SourceCode     string          `json:"source_code"`
	SourceCodeHash string          `json:"source_code_hash"`
}

type importError struct {
	Timestamp  time.Time `json:"timestamp"`
	Stacktrace string    `json:"stacktrace"`
}

type dagWarning struct {
	Message   string    `json:"message"`
	Timestamp time.Time `json:"timestamp"`
}

func checkpointKey(jobID int64, sourceKey string) []byte {
	return append(jobKey(jobID), sourceKey...)
}

func dagVersionKey(dagID string, n uint32) []byte {
	return binary.BigEndian.AppendUint32(tuple(dagID), n)
}

// PublishParseResult reads what decide needs and writes the publication
// unless decide answers otherwise, in one write.
func (db *DB) PublishParseResult(ctx context.Context, r *workload.ParseResult, now time.Time,
	decide func(s workload.ParseState) (*workload.ParseReceipt, error)) (workload.ParseReceipt, error) {
	if err := checkKey("bundle file", tuple(r.BundleName, r.RelativeFileloc)); err != nil {
		return workload.ParseReceipt{}, err
	}
	now = now.UTC()
	var out workload.ParseReceipt
	err := db.write(ctx, func(tx *bolt.Tx) error {
		out = workload.ParseReceipt{}
		var s workload.ParseState
		jobs, err := bucket(tx, bucketJobs)
		if err != nil {
			return err
		}
		if s.Job, err = loadJob(jobs, jobKey(r.JobID)); err != nil {
			return err
		}
		if s.Job != nil {
			s.BundleActive = slices.Contains(s.Job.BundleNames, r.BundleName)
			if b := tx.Bucket(bucketParseCheckpoints); b != nil {
				if data := b.Get(checkpointKey(r.JobID, r.SourceKey)); data != nil {
					var cp workload.ParseCheckpoint
					if err := decodeJSON("parse checkpoint", data, &cp); err != nil {
						return err
					}
					s.Checkpoint = &cp
				}
			}
			for _, id := range r.DagIDs() {
				d, err := getDag(tx, id)
				if err != nil {
					return err
				}
				// A DAG no bundle owns (known by its runs, or put by an
				// operator) is the first publishing bundle's.
				if d == nil || d.BundleName == nil {
					continue
				}
				s.Existing = append(s.Existing, workload.ExistingDag{DagID: id, BundleName: d.BundleName,
					RelativeFileloc: d.RelativeFileloc, IsStale: d.IsStale, OwnerBundleActive: d.BundleName != nil,
					HasVersions: latestVersion(tx, id) != nil})
			}
		}
		receipt, err := decide(s)
		if err != nil {
			return err
		}
		if receipt != nil {
			out = *receipt
			return nil
		}
		if err := writeParseResult(tx, r, now); err != nil {
			return err
		}
		cp := workload.ParseCheckpoint{JobID: r.JobID, SourceKey: r.SourceKey, AttemptID: r.AttemptID,
			DispatchSequence: r.DispatchSequence, PayloadHash: r.PayloadHash, AcceptedAt: now}
		if err := putJSON(tx, bucketParseCheckpoints, checkpointKey(r.JobID, r.SourceKey), "parse checkpoint", &cp); err != nil {
			return err
		}
		out = workload.ParseReceipt{AttemptID: r.AttemptID, AcceptedAt: now}
		return nil
	})
	if err != nil {
		return workload.ParseReceipt{}, err
	}
	return out, nil
}

func putJSON(tx *bolt.Tx, name, key []byte, what string, v any) error {
	if err := checkKey(what, key); err != nil {
		return err
	}
	b, err := tx.CreateBucketIfNotExists(name)
	if err != nil {
		return &abortError{err}
	}
	enc, err := encodeJSON(what, v)
	if err != nil {
		return err
	}
	return put(b, key, enc)
}

// latestVersion returns the DAG's newest version, or nil.
func latestVersion(tx *bolt.Tx, dagID string) *DagVersion {
	b := tx.Bucket(bucketDagVersions)
	if b == nil {
		return nil
	}
	prefix := tuple(dagID)
	c := b.Cursor()
	last := dagVersionKey(dagID, ^uint32(0))
	k, v := c.Seek(last)
	switch {
	case k == nil:
		k, v = c.Last()
	case !bytes.Equal(k, last):
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) || len(k) != len(prefix)+4 {
		return nil
	}
	var dv DagVersion
	if json.Unmarshal(v, &dv) != nil {
		return nil
	}
	return &dv
}

// SerializedDag returns the latest serialized DAG published for dagID
// (its serialized_dag data, as Airflow stores it), or an error wrapping
// workload.ErrNoSerializedDag.
func (db *DB) SerializedDag(ctx context.Context, dagID string) (json.RawMessage, error) {
	var out json.RawMessage
	err := db.view(ctx, func(tx *bolt.Tx) error {
		if dv := latestVersion(tx, dagID); dv != nil {
			out = dv.Data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("store: dag %s: %w", dagID, workload.ErrNoSerializedDag)
	}
	return out, nil
}

// writeParseResult writes each DAG's record and details (a new DAG paused
// as its is_paused_upon_creation says, an existing one keeping its pause),
// its version when its hash changed (else its code), then the files'
// import errors and the DAGs' warnings.
func writeParseResult(tx *bolt.Tx, r *workload.ParseResult, now time.Time) error {
	for i := range r.Dags {
		d := &r.Dags[i]
		if err := checkKey("dag id", []byte(d.DagID)); err != nil {
			return err
		}
		rec, err := getDag(tx, d.DagID)
		if err != nil {
			return err
		}
		if rec == nil {
			paused := d.PausedOnCreation()
			rec = &workload.Dag{DagID: d.DagID, IsPaused: &paused}
		}
		bundle, file, owners := r.BundleName, d.RelativeFileloc, d.Owners
		rec.IsStale, rec.HasImportErrors = false, false
		rec.BundleName, rec.BundleVersion, rec.RelativeFileloc, rec.Owners = &bundle, r.BundleVersion, &file, &owners
		rec.Tags = slices.Clone(d.Tags)
		rec.StubTasks = d.StubTasks
		rec.TaskGroups = d.TaskGroups
		if err := putJSON(tx, bucketDags, []byte(d.DagID), "dag "+d.DagID, rec); err != nil {
			return err
		}
		details := DagDetails{Fileloc: d.Fileloc, LastParsedTime: now, LastParseDuration: r.ParseDuration,
			DisplayName: d.DisplayName, Description: d.Description, TimetableType: d.TimetableType,
			TimetableSummary: d.TimetableSummary, TimetableDescription: d.TimetableDescription,
			MaxActiveTasks: d.MaxActiveTasks, MaxActiveRuns: d.MaxActiveRuns,
			MaxConsecutiveFailedDagRuns: d.MaxConsecutiveFailedDagRuns,
			HasTaskConcurrencyLimits:    d.HasTaskConcurrencyLimits, FailFast: d.FailFast}
		if err := putJSON(tx, bucketDagDetails, []byte(d.DagID), "dag details "+d.DagID, &details); err != nil {
			return err
		}
		latest := latestVersion(tx, d.DagID)
		next := DagVersion{VersionNumber: 1, BundleName: r.BundleName, BundleVersion: r.BundleVersion, CreatedAt: now,
			DagHash: d.Hash, Data: d.Data, Fileloc: d.Fileloc, SourceCode: d.Source, SourceCodeHash: d.SourceHash}
		switch {
		case latest == nil:
		case latest.DagHash == d.Hash:
			if latest.SourceCodeHash == d.SourceHash {
				continue
			}
			next = *latest
			next.SourceCode, next.SourceCodeHash = d.Source, d.SourceHash
		default:
			next.VersionNumber = latest.VersionNumber + 1
		}
		if err := putJSON(tx, bucketDagVersions, dagVersionKey(d.DagID, next.VersionNumber), "dag version "+d.DagID,
			&next); err != nil {
			return err
		}
	}
	if err := writeImportErrors(tx, r, now); err != nil {
		return err
	}
	return writeDagWarnings(tx, r, now)
}

// writeImportErrors replaces the import errors of the bundle's parsed
// files, and marks the bundle's DAGs of a file with an error stale with
// import errors.
func writeImportErrors(tx *bolt.Tx, r *workload.ParseResult, now time.Time) error {
	var marked []string
	for _, f := range r.FilesParsed() {
		key := tuple(r.BundleName, f)
		stack, bad := r.ImportErrors[f]
		if !bad {
			if b := tx.Bucket(bucketImportErrors); b != nil {
				if err := del(b, key); err != nil {
					return err
				}
			}
			continue
		}
		if err := putJSON(tx, bucketImportErrors, key, "import error", &importError{Timestamp: now, Stacktrace: stack}); err != nil {
			return err
		}
		marked = append(marked, f)
	}
	if len(marked) == 0 {
		return nil
	}
	b := tx.Bucket(bucketDags)
	if b == nil {
		return nil
	}
	type change struct {
		key []byte
		dag workload.Dag
	}
	var changes []change
	err := b.ForEach(func(k, v []byte) error {
		var d workload.Dag
		if err := decodeJSON("dag "+string(k), v, &d); err != nil {
			return err
		}
		if d.BundleName != nil && *d.BundleName == r.BundleName && d.RelativeFileloc != nil &&
			slices.Contains(marked, *d.RelativeFileloc) {
			d.IsStale, d.HasImportErrors = true, true
			changes = append(changes, change{slices.Clone(k), d})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range changes {
		if err := putJSON(tx, bucketDags, c.key, "dag "+c.dag.DagID, &c.dag); err != nil {
			return err
		}
	}
	return nil
}

// writeDagWarnings removes the DAGs' non-existent-pool warnings the
// publication no longer has, and adds or replaces its warnings.
func writeDagWarnings(tx *bolt.Tx, r *workload.ParseResult, now time.Time) error {
	if b := tx.Bucket(bucketDagWarnings); b != nil {
		for _, id := range r.DagIDs() {
			kept := slices.ContainsFunc(r.Warnings, func(w workload.DagWarning) bool {
				return w.DagID == id && w.WarningType == "non-existent pool"
			})
			if !kept {
				if err := del(b, tuple(id, "non-existent pool")); err != nil {
					return err
				}
			}
		}
	}
	for _, w := range r.Warnings {
		if err := putJSON(tx, bucketDagWarnings, tuple(w.DagID, w.WarningType), "dag warning",
			&dagWarning{Message: w.Message, Timestamp: now}); err != nil {
			return err
		}
	}
	return nil
}

// ImportErrors returns the stored import errors of a bundle: file →
// stack trace.
func (db *DB) ImportErrors(ctx context.Context, bundle string) (map[string]string, error) {
	out := map[string]string{}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImportErrors)
		if b == nil {
			return nil
		}
		prefix := tuple(bundle)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			file, _, err := readString(k[len(prefix):])
			if err != nil {
				return err
			}
			var ie importError
			if err := decodeJSON("import error", v, &ie); err != nil {
				return err
			}
			out[file] = ie.Stacktrace
		}
		return nil
	})
	return out, err
}

// DagDetails returns the parse details of a published DAG, or an error
// wrapping workload.ErrDagNotFound.
func (db *DB) DagDetails(ctx context.Context, dagID string) (*DagDetails, error) {
	var out *DagDetails
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDagDetails)
		if b == nil {
			return nil
		}
		if data := b.Get([]byte(dagID)); data != nil {
			out = new(DagDetails)
			return decodeJSON("dag details "+dagID, data, out)
		}
		return nil
	})
	if err == nil && out == nil {
		err = fmt.Errorf("store: dag %s: %w", dagID, workload.ErrDagNotFound)
	}
	return out, err
}

// DagVersions returns the published versions of a DAG, oldest first.
func (db *DB) DagVersions(ctx context.Context, dagID string) ([]DagVersion, error) {
	var out []DagVersion
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDagVersions)
		if b == nil {
			return nil
		}
		prefix := tuple(dagID)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(k) != len(prefix)+4 {
				continue
			}
			var dv DagVersion
			if err := decodeJSON("dag version "+dagID, v, &dv); err != nil {
				return err
			}
			out = append(out, dv)
		}
		return nil
	})
	return out, err
}

// ParseCheckpoints returns every stored parse checkpoint, by Job and
// source key.
func (db *DB) ParseCheckpoints(ctx context.Context) ([]workload.ParseCheckpoint, error) {
	var out []workload.ParseCheckpoint
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketParseCheckpoints)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var cp workload.ParseCheckpoint
			if err := decodeJSON("parse checkpoint", v, &cp); err != nil {
				return err
			}
			out = append(out, cp)
			return nil
		})
	})
	return out, err
}

// StubTask returns the serialized operator of ti's task when its DAG's
// record holds it among the DAG's stub tasks (workload.Dag.StubTasks:
// those of the latest serialized DAG a DAG processor published, or of a
// record written by PutDag). The embedded store keeps no version of a DAG
// per try, so every try of the DAG reads the latest; nil for a task that is
// not a stub or a DAG known by its runs alone.
func (db *DB) StubTask(ctx context.Context, ti *workload.TaskInstance) (json.RawMessage, error) {
	var out json.RawMessage
	err := db.view(ctx, func(tx *bolt.Tx) error {
		d, err := getDag(tx, ti.DagID)
		if err != nil || d == nil {
			return err
		}
		out = d.StubTasks[ti.TaskID]
		return nil
	})
	return out, err
}
