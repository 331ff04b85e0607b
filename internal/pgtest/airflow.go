package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EmptyExecutorConfig is task_instance.executor_config as Airflow writes it
// for a task without one: the dill pickle (protocol 5, SQLAlchemy
// PickleType's HIGHEST_PROTOCOL) of an empty dict, b'\x80\x05}\x94.'.
var EmptyExecutorConfig = []byte{0x80, 0x05, '}', 0x94, '.'}

// Airflow's Python-side defaults that the fixtures supply, as the scheduler
// and the DAG processor would (the database has no default for them).
const (
	DefaultBundle   = "dags-folder"  // the bundle of dags_folder
	DefaultPool     = "default_pool" // [core] default_pool_task_slot_count's pool
	DefaultQueue    = "default"      // [operators] default_queue
	DefaultOperator = "PythonOperator"
	DefaultUnixname = "airflow" // getuser() of the scheduler in Airflow's images
)

// Airflow inserts rows into an Airflow 3.2 database the way Airflow's own
// code does, supplying the values Airflow computes in Python. Parents (the
// dag_bundle, dag, dag_version and dag_run rows) are created when missing.
type Airflow struct {
	URL string
	// Now stamps the rows; time.Now when nil.
	Now func() time.Time
}

// NewAirflowFixtures creates a database holding Airflow's schema (as
// NewAirflow) and returns fixtures on it.
func NewAirflowFixtures(t testing.TB) *Airflow {
	t.Helper()
	return &Airflow{URL: NewAirflow(t)}
}

func (a *Airflow) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC().Truncate(time.Microsecond)
}

// DagRunRow is a dag_run row. Zero fields take the values Airflow would
// write for a manual run created through the API; ID is set on return.
type DagRunRow struct {
	ID          int64
	DagID       string // "example_dag"
	RunID       string // "manual__<RunAfter RFC 3339>"
	RunType     string // "manual"
	State       string // "running"
	TriggeredBy string // "rest_api"
	Conf        map[string]any
	// LogicalDate nil for a manual run without one (Airflow 3's default).
	LogicalDate       *time.Time
	RunAfter          time.Time // now
	QueuedAt          *time.Time
	StartDate         *time.Time // now for a running run
	EndDate           *time.Time
	ClearNumber       int
	BundleVersion     *string
	ContextCarrier    map[string]any // stored through Airflow's ExtendedJSON
	PartitionKey      *string
	DagVersionID      string // the dag's latest version
	TriggeringUser    *string
	DataIntervalStart *time.Time
	DataIntervalEnd   *time.Time
}

// DagRun inserts a dag_run (and its dag, bundle and version when missing)
// and returns the row as written.
func (a *Airflow) DagRun(t testing.TB, r DagRunRow) DagRunRow {
	t.Helper()
	now := a.now()
	if r.DagID == "" {
		r.DagID = "example_dag"
	}
	if r.RunAfter.IsZero() {
		r.RunAfter = now
	}
	if r.RunType == "" {
		r.RunType = "manual"
	}
	if r.RunID == "" {
		// DagRun.generate_run_id: f"{run_type}__{run_after.isoformat()}"
		r.RunID = r.RunType + "__" + r.RunAfter.Format("2006-01-02T15:04:05.999999-07:00")
	}
	if r.State == "" {
		r.State = "running"
	}
	if r.TriggeredBy == "" {
		r.TriggeredBy = "rest_api"
	}
	if r.Conf == nil {
		r.Conf = map[string]any{}
	}
	if r.QueuedAt == nil {
		r.QueuedAt = &now
	}
	if r.StartDate == nil && r.State != "queued" {
		r.StartDate = &now
	}
	if r.ContextCarrier == nil {
		r.ContextCarrier = map[string]any{}
	}
	a.exec(t, func(ctx context.Context, tx pgx.Tx) error {
		v, err := ensureDag(ctx, tx, r.DagID, now)
		if err != nil {
			return err
		}
		if r.DagVersionID == "" {
			r.DagVersionID = v
		}
		conf, err := json.Marshal(r.Conf)
		if err != nil {
			return err
		}
		return tx.QueryRow(ctx, `
			INSERT INTO dag_run (dag_id, queued_at, logical_date, start_date, end_date, state, run_id,
				run_type, triggered_by, triggering_user_name, conf, data_interval_start, data_interval_end,
				run_after, log_template_id, created_at, updated_at, clear_number, bundle_version,
				context_carrier, span_status, created_dag_version_id, partition_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
				(SELECT max(id) FROM log_template), $15, $15, $16, $17, $18, 'not_started', $19, $20)
			RETURNING id`,
			r.DagID, r.QueuedAt, r.LogicalDate, r.StartDate, r.EndDate, r.State, r.RunID,
			r.RunType, r.TriggeredBy, r.TriggeringUser, string(conf), r.DataIntervalStart, r.DataIntervalEnd,
			r.RunAfter, now, r.ClearNumber, r.BundleVersion,
			ExtendedJSON(r.ContextCarrier), r.DagVersionID, r.PartitionKey,
		).Scan(&r.ID)
	})
	return r
}

// TaskInstanceRow is a task_instance row. Zero fields take the values
// Airflow's scheduler writes for a task queued for its first try; ID (a
// UUIDv7, as Airflow's uuid7()) is set on return.
type TaskInstanceRow struct {
	ID           string
	DagID        string // the run's, else "example_dag"
	RunID        string // a new manual run's
	TaskID       string // "task"
	MapIndex     *int   // -1
	State        string // "queued"; "none" stores NULL
	TryNumber    int    // 1
	MaxTries     int    // 0 (retries)
	Hostname     string // "" until /run
	Unixname     string // DefaultUnixname
	Pool         string // DefaultPool
	PoolSlots    int    // 1
	Queue        string // DefaultQueue
	Priority     int    // 1
	Operator     string // DefaultOperator
	CustomOpName *string
	Executor     *string
	// ExecutorConfig is stored as is; nil means EmptyExecutorConfig.
	ExecutorConfig  []byte
	ContextCarrier  map[string]any // through ExtendedJSON; {} when nil
	DisplayName     *string        // the task_id, as TaskInstance.insert_mapping writes
	DagVersionID    string         // the run's dag's latest version
	StartDate       *time.Time
	EndDate         *time.Time
	QueuedDttm      *time.Time // now for queued
	ScheduledDttm   *time.Time // now
	LastHeartbeatAt *time.Time
	PID             *int
	TriggerID       *int64
	NextMethod      *string
	NextKwargs      map[string]any // through ExtendedJSON; NULL when nil
	// NextKwargsJSON is the next_kwargs column as is (Airflow 3.2 stores
	// what the worker or the triggerer wrote); it wins over NextKwargs.
	NextKwargsJSON json.RawMessage
	RenderedMapIdx *string
	ExternalExecID *string
}

// TaskInstance inserts a task instance (and its dag run and dag when
// missing) and returns the row as written.
func (a *Airflow) TaskInstance(t testing.TB, r TaskInstanceRow) TaskInstanceRow {
	t.Helper()
	now := a.now()
	if r.DagID == "" {
		r.DagID = "example_dag"
	}
	if r.RunID == "" {
		r.RunID = a.DagRun(t, DagRunRow{DagID: r.DagID}).RunID
	} else if !a.hasRun(t, r.DagID, r.RunID) {
		a.DagRun(t, DagRunRow{DagID: r.DagID, RunID: r.RunID})
	}
	if r.ID == "" {
		r.ID = UUIDv7()
	}
	if r.TaskID == "" {
		r.TaskID = "task"
	}
	if r.MapIndex == nil {
		m := -1
		r.MapIndex = &m
	}
	if r.State == "" {
		r.State = "queued"
	}
	if r.TryNumber == 0 && r.State != "none" {
		r.TryNumber = 1
	}
	if r.Unixname == "" {
		r.Unixname = DefaultUnixname
	}
	if r.Pool == "" {
		r.Pool = DefaultPool
	}
	if r.PoolSlots == 0 {
		r.PoolSlots = 1
	}
	if r.Queue == "" {
		r.Queue = DefaultQueue
	}
	if r.Priority == 0 {
		r.Priority = 1
	}
	if r.Operator == "" {
		r.Operator = DefaultOperator
	}
	if r.CustomOpName == nil {
		// refresh_from_task: operator_name, which is the task type unless renamed
		r.CustomOpName = &r.Operator
	}
	if r.ExecutorConfig == nil {
		r.ExecutorConfig = EmptyExecutorConfig
	}
	if r.ContextCarrier == nil {
		r.ContextCarrier = map[string]any{}
	}
	if r.DisplayName == nil {
		r.DisplayName = &r.TaskID
	}
	if r.ScheduledDttm == nil {
		r.ScheduledDttm = &now
	}
	if r.QueuedDttm == nil && r.State == "queued" {
		r.QueuedDttm = &now
	}
	var state *string
	if r.State != "none" {
		state = &r.State
	}
	var nextKwargs any
	if r.NextKwargs != nil {
		nextKwargs = ExtendedJSON(r.NextKwargs)
	}
	if r.NextKwargsJSON != nil {
		nextKwargs = string(r.NextKwargsJSON)
	}
	a.exec(t, func(ctx context.Context, tx pgx.Tx) error {
		if r.DagVersionID == "" {
			if err := tx.QueryRow(ctx, `SELECT id::text FROM dag_version WHERE dag_id = $1
				ORDER BY version_number DESC LIMIT 1`, r.DagID).Scan(&r.DagVersionID); err != nil {
				return fmt.Errorf("dag version of %s: %w", r.DagID, err)
			}
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO task_instance (id, task_id, dag_id, run_id, map_index, start_date, end_date, state,
				try_number, max_tries, hostname, unixname, pool, pool_slots, queue, priority_weight, operator,
				custom_operator_name, queued_dttm, scheduled_dttm, last_heartbeat_at, pid, executor,
				executor_config, updated_at, rendered_map_index, context_carrier, span_status,
				external_executor_id, trigger_id, next_method, next_kwargs, task_display_name, dag_version_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
				$20, $21, $22, $23, $24, $25, $26, $27, 'not_started', $28, $29, $30, $31, $32, $33)`,
			r.ID, r.TaskID, r.DagID, r.RunID, *r.MapIndex, r.StartDate, r.EndDate, state,
			r.TryNumber, r.MaxTries, r.Hostname, r.Unixname, r.Pool, r.PoolSlots, r.Queue, r.Priority, r.Operator,
			r.CustomOpName, r.QueuedDttm, r.ScheduledDttm, r.LastHeartbeatAt, r.PID, r.Executor,
			r.ExecutorConfig, now, r.RenderedMapIdx, ExtendedJSON(r.ContextCarrier),
			r.ExternalExecID, r.TriggerID, r.NextMethod, nextKwargs, r.DisplayName, r.DagVersionID)
		return err
	})
	return r
}

// AssetRow is an asset (made active, as the DAG processor does for an
// asset a dag declares).
type AssetRow struct {
	ID    int64
	Name  string
	URI   string // Name when empty (AssetModel.__init__)
	Group string // "asset"
	Extra map[string]any
}

// Asset inserts an active asset and returns it with its id.
func (a *Airflow) Asset(t testing.TB, r AssetRow) AssetRow {
	t.Helper()
	now := a.now()
	if r.Name == "" {
		r.Name = r.URI
	}
	if r.URI == "" {
		r.URI = r.Name
	}
	if r.Group == "" {
		r.Group = "asset"
	}
	if r.Extra == nil {
		r.Extra = map[string]any{}
	}
	extra, err := json.Marshal(r.Extra)
	if err != nil {
		t.Fatal(err)
	}
	a.exec(t, func(ctx context.Context, tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO asset (name, uri, "group", extra, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $5) RETURNING id`, r.Name, r.URI, r.Group, string(extra), now).Scan(&r.ID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO asset_active (name, uri) VALUES ($1, $2)`, r.Name, r.URI)
		return err
	})
	return r
}

// Variable inserts an unencrypted variable (is_encrypted false, as Airflow
// stores it without a fernet_key).
func (a *Airflow) Variable(t testing.TB, key, val string) {
	t.Helper()
	a.exec(t, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO variable (key, val, is_encrypted) VALUES ($1, $2, false)`, key, val)
		return err
	})
}

// Exec runs sql with args in a transaction on the fixtures' database.
func (a *Airflow) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	a.exec(t, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql, args...)
		return err
	})
}

func (a *Airflow) hasRun(t testing.TB, dagID, runID string) bool {
	t.Helper()
	var n int
	a.exec(t, func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM dag_run WHERE dag_id = $1 AND run_id = $2`, dagID, runID).Scan(&n)
	})
	return n > 0
}

func (a *Airflow) exec(t testing.TB, fn func(context.Context, pgx.Tx) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, a.URL)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("pgtest: fixture: %v", err)
	}
}

// ensureDag creates the bundle, the dag and its first version as the DAG
// processor would when missing, and returns the dag's latest version id.
func ensureDag(ctx context.Context, tx pgx.Tx, dagID string, now time.Time) (string, error) {
	if _, err := tx.Exec(ctx, `INSERT INTO dag_bundle (name, active) VALUES ($1, true)
		ON CONFLICT (name) DO NOTHING`, DefaultBundle); err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO dag (dag_id, is_paused, is_stale, last_parsed_time, fileloc, relative_fileloc,
			bundle_name, owners, dag_display_name, timetable_type, timetable_summary, timetable_description,
			max_active_tasks, max_active_runs, max_consecutive_failed_dag_runs,
			has_task_concurrency_limits, has_import_errors, fail_fast)
		VALUES ($1, false, false, $2, $3, $4, $5, 'airflow', $1, '', 'None', 'Never, external triggers only',
			16, 16, 0, false, false, false)
		ON CONFLICT (dag_id) DO NOTHING`,
		dagID, now, "/opt/airflow/dags/"+dagID+".py", dagID+".py", DefaultBundle); err != nil {
		return "", err
	}
	var id string
	err := tx.QueryRow(ctx, `SELECT id::text FROM dag_version WHERE dag_id = $1
		ORDER BY version_number DESC LIMIT 1`, dagID).Scan(&id)
	if err == nil {
		return id, nil
	}
	if err != pgx.ErrNoRows {
		return "", err
	}
	id = UUIDv7()
	_, err = tx.Exec(ctx, `INSERT INTO dag_version (id, version_number, dag_id, bundle_name, created_at, last_updated)
		VALUES ($1, 1, $2, $3, $4, $4)`, id, dagID, DefaultBundle, now)
	return id, err
}

// ExtendedJSON is v as Airflow's ExtendedJSON column type stores it
// (BaseSerialization.serialize): dicts wrapped as {"__var": {...},
// "__type": "dict"} at every level, lists as plain lists, scalars as is.
// It covers the JSON-like values tests use, not datetimes or tuples.
func ExtendedJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = ExtendedJSON(e)
		}
		return map[string]any{"__var": m, "__type": "dict"}
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = ExtendedJSON(e)
		}
		return l
	default:
		return v
	}
}

// UUIDv7 returns a new RFC 9562 version 7 UUID (48-bit Unix milliseconds,
// then random bits), the kind Airflow's uuid6.uuid7() makes for
// task_instance.id and dag_version.id.
func UUIDv7() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(time.Now().UnixMilli()))
	copy(b[:6], ms[2:])
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
