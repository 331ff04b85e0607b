package workload

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/taskgate/taskgate/internal/pyjson"
)

// DAG parse results: a DAG processor's Job publishes what parsing one file
// (or one container, such as a zip) produced: its serialized DAGs, their
// source, the file's import errors and the DAGs' warnings (Airflow's POST
// /jobs/{job_id}/parse-results). A per-(Job, file) checkpoint makes the
// publication idempotent: a retry of the same attempt with the same payload
// gets the first answer, and an older dispatch cannot overwrite a newer one.

// Publication refusals, Airflow's {"reason": …} details.
const (
	ReasonJobClosed             = "job_closed"
	ReasonPublicationConflict   = "publication_conflict"
	ReasonPublicationSuperseded = "publication_superseded"
	ReasonBundleInactive        = "bundle_inactive"
	ReasonDagOwnedElsewhere     = "dag_owned_by_another_bundle"
	ReasonInvalidSerializedDag  = "invalid_serialized_dag"
)

// PublicationError refuses a parse result; Reason is one of the Reason…
// constants.
type PublicationError struct {
	Reason string
	Cause  error
}

func (e *PublicationError) Error() string {
	if e.Cause != nil {
		return "workload: parse result refused: " + e.Reason + ": " + e.Cause.Error()
	}
	return "workload: parse result refused: " + e.Reason
}

func (e *PublicationError) Unwrap() error { return e.Cause }

// Airflow's defaults for what a serialized DAG leaves unset ([core]
// max_active_tasks_per_dag, max_active_runs_per_dag,
// max_consecutive_failed_dag_runs_per_dag, [operators] default_owner,
// [core] dags_are_paused_at_creation).
const (
	DefaultMaxActiveTasks              = 16
	DefaultMaxActiveRuns               = 16
	DefaultMaxConsecutiveFailedDagRuns = 0
	DefaultOwner                       = "airflow"
	DefaultPausedAtCreation            = true
)

// SerializerVersion is the serialized DAG format version Airflow 3.2
// writes and reads (DagSerialization.SERIALIZER_VERSION).
const SerializerVersion = 3

// DagWarningTypes are Airflow's DagWarningType values.
var DagWarningTypes = []string{"asset conflict", "non-existent pool", "runtime varying value", "duplicate dag id"}

// ParseResult is one publication, validated (Airflow's DagParseResultBody).
type ParseResult struct {
	JobID             int64
	SessionID         string
	AttemptID         string
	DispatchSequence  int64
	BundleName        string
	RelativeFileloc   string
	BundleVersion     *string
	ParseDuration     float64
	Dags              []ParsedDag
	ImportErrors      map[string]string
	Warnings          []DagWarning
	ParsedDefinitions []string
	// PayloadHash is the SHA-256 of the body's canonical JSON; SourceKey
	// the SHA-256 of [bundle_name, relative_fileloc], the checkpoint's key.
	PayloadHash string
	SourceKey   string
	// Invalid is why a serialized DAG cannot be read, or nil: refused
	// (422) only once the Job, the checkpoint, the bundle and the DAGs'
	// ownership admitted the publication, as Airflow checks in that order.
	Invalid error
}

// FilesParsed are the bundle-relative files the publication speaks for:
// the published file, the definitions parsed inside it, and those with
// import errors. Their earlier import errors are replaced.
func (r *ParseResult) FilesParsed() []string {
	out := append([]string{r.RelativeFileloc}, r.ParsedDefinitions...)
	for f := range r.ImportErrors {
		out = append(out, f)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// DagIDs are the ids of the publication's DAGs, sorted.
func (r *ParseResult) DagIDs() []string {
	out := make([]string, len(r.Dags))
	for i, d := range r.Dags {
		out[i] = d.DagID
	}
	slices.Sort(out)
	return out
}

// DagWarning is one of Airflow's dag_warning rows.
type DagWarning struct {
	DagID       string `json:"dag_id"`
	WarningType string `json:"warning_type"`
	Message     string `json:"message"`
}

// ParsedDag is one serialized DAG of a publication and the DagModel
// columns Airflow copies from it.
type ParsedDag struct {
	DagID           string
	Fileloc         string
	RelativeFileloc string
	// Data is the document as Airflow stores serialized_dag.data
	// (json.dumps with sorted keys); Hash its dag_hash, which ignores the
	// fileloc, so that moving a checkout makes no new version.
	Data json.RawMessage
	Hash string
	// Source is the file's source as the processor captured it ("Source
	// unavailable" when it sent null); SourceHash its MD5, as DagCode's.
	Source     string
	SourceHash string
	// StubTasks are the serialized operators of the DAG's tasks flagged
	// is_stub, by task id (see ArgBindings).
	StubTasks map[string]json.RawMessage
	// TaskGroups are the DAG's task groups (see SerializedTaskGroups).
	TaskGroups TaskGroups

	Owners                      string
	DisplayName                 *string
	Description                 *string
	MaxActiveTasks              int
	MaxActiveRuns               int
	MaxConsecutiveFailedDagRuns int
	HasTaskConcurrencyLimits    bool
	FailFast                    bool
	TimetableType               string
	TimetableSummary            *string
	TimetableDescription        *string
	// IsPausedUponCreation is the DAG's is_paused when its row is created
	// (nil: DefaultPausedAtCreation); an existing row keeps its own.
	IsPausedUponCreation *bool
	Tags                 []string
}

// PausedOnCreation is is_paused for a DAG's new row.
func (d *ParsedDag) PausedOnCreation() bool {
	if d.IsPausedUponCreation != nil {
		return *d.IsPausedUponCreation
	}
	return DefaultPausedAtCreation
}

// SourceHash is DagCode.dag_source_hash: the MD5 of the source.
func SourceHash(source string) string {
	sum := md5.Sum([]byte(source))
	return hex.EncodeToString(sum[:])
}

// ParseSerializedDag reads the DagModel columns of a serialized DAG
// document and checks it as far as taskgate writes and reads it: the
// format version, and the types of the fields copied. The publication's
// model validation already made sure of dag.dag_id, dag.fileloc and
// dag.relative_fileloc; an error here is an invalid serialized DAG.
func ParseSerializedDag(doc json.RawMessage) (ParsedDag, error) {
	var top struct {
		Version json.Number                `json:"__version"`
		Dag     map[string]json.RawMessage `json:"dag"`
	}
	if err := json.Unmarshal(doc, &top); err != nil {
		return ParsedDag{}, fmt.Errorf("workload: serialized dag: %w", err)
	}
	if top.Version.String() != fmt.Sprint(SerializerVersion) {
		return ParsedDag{}, fmt.Errorf("workload: serialized dag version %q, want %d", top.Version, SerializerVersion)
	}
	f := dagFields{m: top.Dag}
	var d ParsedDag
	f.str("dag_id", &d.DagID, true)
	// Airflow's DAG refuses an id over ID_LEN (250) characters.
	if n := len([]rune(d.DagID)); n > 250 {
		f.fail("dag_id", fmt.Errorf("%d characters, more than 250", n))
	}
	f.str("fileloc", &d.Fileloc, true)
	f.str("relative_fileloc", &d.RelativeFileloc, true)
	d.DisplayName = f.optStr("dag_display_name")
	d.Description = f.optStr("description")
	d.MaxActiveTasks = f.integer("max_active_tasks", DefaultMaxActiveTasks)
	d.MaxActiveRuns = f.integer("max_active_runs", DefaultMaxActiveRuns)
	d.MaxConsecutiveFailedDagRuns = f.integer("max_consecutive_failed_dag_runs", DefaultMaxConsecutiveFailedDagRuns)
	if v := f.optBool("fail_fast"); v != nil {
		d.FailFast = *v
	}
	d.IsPausedUponCreation = f.optBool("is_paused_upon_creation")
	if raw, ok := f.m["tags"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &d.Tags); err != nil {
			f.fail("tags", err)
		}
		slices.Sort(d.Tags)
		d.Tags = slices.Compact(d.Tags)
	}
	d.TimetableType, d.TimetableSummary, d.TimetableDescription = f.timetable()
	var tasks []struct {
		Type string                     `json:"__type"`
		Var  map[string]json.RawMessage `json:"__var"`
	}
	if raw, ok := f.m["tasks"]; !ok {
		f.fail("tasks", errors.New("missing"))
	} else if err := json.Unmarshal(raw, &tasks); err != nil {
		f.fail("tasks", err)
	}
	owners := map[string]bool{}
	for i, t := range tasks {
		tf := dagFields{m: t.Var}
		var id string
		tf.str("task_id", &id, true)
		if o := tf.optStr("owner"); o != nil && *o != "" {
			owners[*o] = true
		} else if t.Var != nil && tf.err == nil {
			owners[DefaultOwner] = true
		}
		for _, limit := range []string{"max_active_tis_per_dag", "max_active_tis_per_dagrun"} {
			if raw, ok := t.Var[limit]; ok && string(raw) != "null" {
				d.HasTaskConcurrencyLimits = true
			}
		}
		if t.Var == nil || tf.err != nil {
			f.fail(fmt.Sprintf("tasks[%d]", i), errors.Join(tf.err, errors.New("not an operator")))
		}
		if string(t.Var["is_stub"]) == "true" && tf.err == nil {
			op, err := json.Marshal(t.Var)
			if err != nil {
				f.fail(fmt.Sprintf("tasks[%d]", i), err)
				continue
			}
			if d.StubTasks == nil {
				d.StubTasks = map[string]json.RawMessage{}
			}
			d.StubTasks[id] = op
		}
	}
	if groups, err := parseTaskGroups(f.m["task_group"]); err != nil {
		f.fail("task_group", err)
	} else if len(groups) > 0 {
		d.TaskGroups = groups
	}
	if f.err != nil {
		return ParsedDag{}, f.err
	}
	names := make([]string, 0, len(owners))
	for o := range owners {
		names = append(names, o)
	}
	slices.Sort(names)
	d.Owners = strings.Join(names, ", ")
	if d.Owners == "" {
		d.Owners = DefaultOwner
	}
	sorted, err := pyjson.Dumps(doc, true)
	if err != nil {
		return ParsedDag{}, fmt.Errorf("workload: serialized dag: %w", err)
	}
	d.Data = json.RawMessage(sorted)
	d.Hash, err = serializedDagHash(doc)
	if err != nil {
		return ParsedDag{}, err
	}
	return d, nil
}

// serializedDagHash is SerializedDagModel.hash: the MD5 of the document
// without dag.fileloc, dumped with sorted keys.
func serializedDagHash(doc json.RawMessage) (string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return "", fmt.Errorf("workload: serialized dag: %w", err)
	}
	var dag map[string]json.RawMessage
	if err := json.Unmarshal(m["dag"], &dag); err != nil {
		return "", fmt.Errorf("workload: serialized dag: %w", err)
	}
	delete(dag, "fileloc")
	raw, err := json.Marshal(dag)
	if err != nil {
		return "", err
	}
	m["dag"] = raw
	if raw, err = json.Marshal(m); err != nil {
		return "", err
	}
	text, err := pyjson.Dumps(raw, true)
	if err != nil {
		return "", fmt.Errorf("workload: serialized dag: %w", err)
	}
	sum := md5.Sum([]byte(text))
	return hex.EncodeToString(sum[:]), nil
}

// dagFields reads typed fields of a serialized object, keeping the first
// error.
type dagFields struct {
	m   map[string]json.RawMessage
	err error
}

func (f *dagFields) fail(name string, err error) {
	if f.err == nil {
		f.err = fmt.Errorf("workload: serialized dag: %s: %w", name, err)
	}
}

func (f *dagFields) str(name string, dst *string, required bool) {
	raw, ok := f.m[name]
	if !ok {
		if required {
			f.fail(name, errors.New("missing"))
		}
		return
	}
	if err := json.Unmarshal(raw, dst); err != nil || string(raw) == "null" {
		f.fail(name, errors.New("not a string"))
	}
}

func (f *dagFields) optStr(name string) *string {
	raw, ok := f.m[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		f.fail(name, errors.New("not a string"))
		return nil
	}
	return &s
}

func (f *dagFields) optBool(name string) *bool {
	raw, ok := f.m[name]
	if !ok || string(raw) == "null" {
		return nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		f.fail(name, errors.New("not a boolean"))
		return nil
	}
	return &b
}

func (f *dagFields) integer(name string, def int) int {
	raw, ok := f.m[name]
	if !ok || string(raw) == "null" {
		return def
	}
	var n int32
	if err := json.Unmarshal(raw, &n); err != nil {
		f.fail(name, errors.New("not an integer"))
		return def
	}
	return int(n)
}

// timetables are the summary and description Airflow's own timetables
// give themselves (Timetable.summary, .description) when they take no
// arguments to word them.
var timetables = map[string][2]string{
	"airflow.timetables.simple.NullTimetable":             {"None", "Never, external triggers only"},
	"airflow.timetables.simple.OnceTimetable":             {"@once", "Once, as soon as possible"},
	"airflow.timetables.simple.ContinuousTimetable":       {"@continuous", "Continuous, as soon as possible"},
	"airflow.timetables.simple.AssetTriggeredTimetable":   {"Asset", "Triggered by assets"},
	"airflow.timetables.simple.PartitionedAssetTimetable": {"Partitioned Asset", "Triggered by assets"},
}

// timetable reads dag.timetable: its type, and its summary and
// description where Airflow's are fixed strings, or the cron expression
// as the summary of a cron timetable. A DAG without one has Airflow's
// schedule=None timetable.
func (f *dagFields) timetable() (typ string, summary, description *string) {
	typ = "airflow.timetables.simple.NullTimetable"
	raw, ok := f.m["timetable"]
	if ok && string(raw) != "null" {
		var tt struct {
			Type string                     `json:"__type"`
			Var  map[string]json.RawMessage `json:"__var"`
		}
		if err := json.Unmarshal(raw, &tt); err != nil || tt.Type == "" {
			f.fail("timetable", errors.New("not a serialized timetable"))
			return typ, nil, nil
		}
		typ = tt.Type
		if expr, ok := tt.Var["expression"]; ok {
			var s string
			if json.Unmarshal(expr, &s) == nil {
				return typ, &s, nil
			}
		}
	}
	if w, ok := timetables[typ]; ok {
		return typ, &w[0], &w[1]
	}
	return typ, nil, nil
}

// ParseCheckpoint is the latest publication accepted for a file from a
// Job (Airflow's dag_parse_checkpoint row).
type ParseCheckpoint struct {
	JobID            int64     `json:"job_id"`
	SourceKey        string    `json:"source_key"`
	AttemptID        string    `json:"attempt_id"`
	DispatchSequence int64     `json:"dispatch_sequence"`
	PayloadHash      string    `json:"payload_hash"`
	AcceptedAt       time.Time `json:"accepted_at"`
}

// ParseReceipt is the answer to a publication: its attempt and when it was
// accepted.
type ParseReceipt struct {
	AttemptID  string
	AcceptedAt time.Time
}

// ExistingDag is the row of a DAG a publication names, as ownership needs
// it.
type ExistingDag struct {
	DagID           string
	BundleName      *string
	RelativeFileloc *string
	IsStale         bool
	// OwnerBundleActive: the bundle named by BundleName is active.
	OwnerBundleActive bool
	// HasVersions: the DAG has dag_version rows.
	HasVersions bool
}

// ParseState is what a publication is decided against, read (and locked,
// on PostgreSQL) in the transaction that writes it.
type ParseState struct {
	Job          *Job
	Checkpoint   *ParseCheckpoint
	BundleActive bool
	Existing     []ExistingDag
}

// DecideParseResult decides a publication, in Airflow's order: the Job
// must be the token's session's and open (job_closed); a checkpoint of the
// same attempt answers its receipt again when the payload is the same
// (publication_conflict otherwise), and one of a later or equal dispatch
// refuses an older attempt (publication_superseded); the bundle must be
// active (bundle_inactive); no DAG may belong to another bundle
// (dag_owned_by_another_bundle), unless it is an orphaned legacy row: its
// bundle inactive, itself stale, with no bundle-relative location and no
// versions; every serialized DAG must read (invalid_serialized_dag). It
// returns the receipt to answer again, or nil to write the publication.
func DecideParseResult(r *ParseResult, s ParseState) (*ParseReceipt, error) {
	if !s.Job.Open(r.SessionID) {
		return nil, &PublicationError{Reason: ReasonJobClosed}
	}
	if cp := s.Checkpoint; cp != nil {
		if cp.AttemptID == r.AttemptID {
			if cp.PayloadHash != r.PayloadHash {
				return nil, &PublicationError{Reason: ReasonPublicationConflict}
			}
			return &ParseReceipt{AttemptID: cp.AttemptID, AcceptedAt: cp.AcceptedAt}, nil
		}
		if r.DispatchSequence <= cp.DispatchSequence {
			return nil, &PublicationError{Reason: ReasonPublicationSuperseded}
		}
	}
	if !s.BundleActive {
		return nil, &PublicationError{Reason: ReasonBundleInactive}
	}
	for _, d := range s.Existing {
		if d.BundleName != nil && *d.BundleName == r.BundleName {
			continue
		}
		orphan := !d.OwnerBundleActive && d.IsStale && d.RelativeFileloc == nil && !d.HasVersions
		if !orphan {
			return nil, &PublicationError{Reason: ReasonDagOwnedElsewhere,
				Cause: fmt.Errorf("dag %s belongs to bundle %q", d.DagID, deref(d.BundleName))}
		}
	}
	if r.Invalid != nil {
		return nil, &PublicationError{Reason: ReasonInvalidSerializedDag, Cause: r.Invalid}
	}
	return nil, nil
}

// DagParsing stores DAG processor publications.
type DagParsing interface {
	// PublishParseResult, in one transaction, reads (locking, where the
	// store locks) the Job, the checkpoint of (r.JobID, r.SourceKey), the
	// bundle and the rows of the publication's DAGs, and calls decide.
	// Unless decide answers a receipt or an error, it writes the
	// publication (the DAGs' rows, a new version of each DAG whose hash
	// changed, their code, tags and warnings, the files' import errors)
	// and the checkpoint accepted at now, and answers its receipt. decide
	// may be called more than once.
	PublishParseResult(ctx context.Context, r *ParseResult, now time.Time,
		decide func(s ParseState) (*ParseReceipt, error)) (ParseReceipt, error)
}

// MaxParseResultBytes bounds a publication's canonical JSON (Airflow's
// MAX_PARSE_RESULT_BYTES).
const MaxParseResultBytes = 16 << 20

// ErrParseResultTooLarge is a publication over MaxParseResultBytes.
var ErrParseResultTooLarge = errors.New("workload: parse result exceeds 16 MiB")

// PayloadHash is the SHA-256 (hex) of a publication's canonical JSON,
// which is dump (the body as its model dumps it) written as Python's
// json.dumps(…, sort_keys=True) writes it; ErrParseResultTooLarge when
// that is over MaxParseResultBytes.
func PayloadHash(dump json.RawMessage) (string, error) {
	text, err := pyjson.Dumps(dump, true)
	if err != nil {
		return "", fmt.Errorf("workload: parse result: %w", err)
	}
	if len(text) > MaxParseResultBytes {
		return "", ErrParseResultTooLarge
	}
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:]), nil
}

// SourceKey is the checkpoint key of a bundle's file: the SHA-256 (hex) of
// json.dumps([bundle_name, relative_fileloc]).
func SourceKey(bundle, relativeFileloc string) string {
	raw, _ := json.Marshal([]string{bundle, relativeFileloc})
	text, err := pyjson.Dumps(raw, false)
	if err != nil {
		text = string(raw)
	}
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}
