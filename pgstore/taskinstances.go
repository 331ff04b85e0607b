package pgstore

// Task instances on Airflow's own rows.
//
// A workload.TaskInstance is one try. Airflow keeps the current try of each
// (dag_id, task_id, run_id, map_index) in one task_instance row and earlier
// tries in task_instance_history, and gives the row a new id (a UUIDv7) when
// a try ends in up_for_retry or a new try takes the row's place. A try's id
// (the one its tokens carry) therefore names either the task_instance row or
// a task_instance_history row; while the history row's try_number is still
// the current row's, the try is the current one and its state is the row's
// (see locate).
//
// Column mapping (workload.TaskInstance ⇄ task_instance, as Airflow's
// TaskInstance model stores it):
//
//	ID               id (uuid; the history row's task_instance_id once moved)
//	DagID … MapIndex dag_id, run_id, task_id, map_index
//	TryNumber        try_number        MaxTries     max_tries
//	DagVersionID     dag_version_id    PoolSlots    pool_slots
//	Queue            queue             PriorityWeight priority_weight (NULL → 0)
//	DagRelPath       dag.relative_fileloc          BundleName dag.bundle_name
//	State            state (NULL → "")
//	Hostname, Unixname, PID  hostname, unixname, pid (NULL → zero)
//	QueuedAt         queued_dttm       StartDate, EndDate start_date, end_date
//	LastHeartbeatAt  last_heartbeat_at UpdatedAt   updated_at (NULL → zero)
//	RenderedMapIndex rendered_map_index
//	NextMethod       next_method
//	NextKwargs       next_kwargs, verbatim, both ways: Airflow 3.2's route
//	                 stores a deferral's next_kwargs as the worker sent it
//	                 (serde form; BaseSerialization's {"__type": "dict",
//	                 "__var": …} in rows written before the upgrade), and its
//	                 /run selects the raw column, bypassing the model's
//	                 decoding, for the SDK to decode; the version converter
//	                 rewrites it for clients older than 2026-04-06
//	TriggerClass, TriggerKwargs, TriggerQueue  trigger.classpath, .kwargs, .queue
//	                 of trigger_id (a row inserted when the try defers)
//	TriggerTimeout   trigger_timeout
//	Reschedules      task_reschedule rows of the row's id (TryNumber = the try's)
//	QueuedBy, ReportedAt, RunGrant, RetryDelaySeconds, RetryReason,
//	TaskOutlets, OutletEvents  taskgate.try (Airflow 3.2 has no column for them);
//	                 on success they become Airflow's asset_event and
//	                 asset_dag_run_queue rows (assets.go)
//
// Columns taskgate writes beside these, as Airflow does: duration (end_date −
// start_date in seconds, when both are set), and on insert the NOT NULL
// columns with Python-side defaults (pool "default_pool", executor_config a
// pickled empty dict, context_carrier an empty serialized dict).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/internal/pyjson"
	"github.com/taskgate/taskgate/workload"
)

var (
	_ workload.Store = (*DB)(nil)
	// TaskInstances of workload.Catalog; the rest of Catalog is elsewhere.
	_ interface {
		TaskInstances(context.Context, workload.TaskInstanceFilter) ([]workload.TaskInstance, int, error)
	} = (*DB)(nil)
)

// Airflow's Python-side defaults for NOT NULL columns a row must carry.
var (
	// pickledEmptyDict is executor_config for a task without one: dill's
	// pickle of {} (protocol 5, PickleType's HIGHEST_PROTOCOL).
	pickledEmptyDict = []byte("\x80\x05}\x94.")
	// emptyCarrier is {} through Airflow's ExtendedJSON: context_carrier.
	emptyCarrier = []byte(`{"__var": {}, "__type": "dict"}`)
)

const defaultPool = "default_pool"

// finishedStates are Airflow's State.finished: a try recorded into history in
// any other state is recorded as failed (TaskInstanceHistory.record_ti).
var finishedStates = []string{"success", "failed", "skipped", "upstream_failed", "removed"}

func notFound(format string, args ...any) error {
	return fmt.Errorf("pgstore: "+format+": %w", append(args, workload.ErrNotFound)...)
}

// validUUID reports whether s is a UUID in its canonical text form: other ids
// name no task instance (and would make PostgreSQL refuse the query).
func validUUID(s string) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// tiColumns reads a task instance with what the domain keeps beside it; $1
// of the query using it is the try's id (taskgate.try's key).
const tiColumns = `ti.id::text, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number, ti.max_tries,
	ti.dag_version_id::text, ti.pool_slots, ti.queue, ti.priority_weight, d.relative_fileloc, d.bundle_name,
	ti.state, ti.hostname, ti.unixname, ti.pid, ti.queued_dttm, ti.start_date, ti.end_date,
	ti.last_heartbeat_at, ti.updated_at, ti.rendered_map_index, ti.next_method, ti.next_kwargs,
	ti.trigger_id, tr.classpath, tr.kwargs, tr.queue, ti.trigger_timeout,
	t.queued_by, t.reported_at, t.run_grant, t.retry_delay_seconds, t.retry_reason, t.task_outlets, t.outlet_events,
	ti.operator`

const tiFrom = `FROM task_instance ti
	LEFT JOIN dag d ON d.dag_id = ti.dag_id
	LEFT JOIN trigger tr ON tr.id = ti.trigger_id
	LEFT JOIN taskgate.try t ON t.ti_id = $1::uuid`

// tiRow is a task instance as scanned; rowID is the task_instance id and
// triggerID its trigger_id.
type tiRow struct {
	ti        workload.TaskInstance
	rowID     string
	triggerID *int64
}

func scanTI(row pgx.Row) (*tiRow, error) {
	var (
		r                                  tiRow
		ti                                 = &r.ti
		tryNumber, maxTries, poolSlots     *int32
		priority, pid                      *int32
		queue, relPath, bundle, state      *string
		hostname, unixname, classpath, tkw *string
		dagVersion                         *string
		nextKwargs, grant, outlets, events []byte
		queuedBy, operator                 *string
		updatedAt                          *time.Time
		mapIndex                           int32
	)
	err := row.Scan(&r.rowID, &ti.DagID, &ti.RunID, &ti.TaskID, &mapIndex, &tryNumber, &maxTries,
		&dagVersion, &poolSlots, &queue, &priority, &relPath, &bundle,
		&state, &hostname, &unixname, &pid, &ti.QueuedAt, &ti.StartDate, &ti.EndDate,
		&ti.LastHeartbeatAt, &updatedAt, &ti.RenderedMapIndex, &ti.NextMethod, &nextKwargs,
		&r.triggerID, &classpath, &tkw, &ti.TriggerQueue, &ti.TriggerTimeout,
		&queuedBy, &ti.ReportedAt, &grant, &ti.RetryDelaySeconds, &ti.RetryReason, &outlets, &events,
		&operator)
	if err != nil {
		return nil, err
	}
	ti.ID = r.rowID
	ti.MapIndex = int(mapIndex)
	ti.TryNumber, ti.MaxTries, ti.PoolSlots = deref32(tryNumber), deref32(maxTries), deref32(poolSlots)
	ti.PriorityWeight, ti.PID = deref32(priority), deref32(pid)
	ti.Queue, ti.DagRelPath, ti.BundleName = deref(queue), deref(relPath), deref(bundle)
	ti.State = workload.State(deref(state))
	ti.Hostname, ti.Unixname, ti.DagVersionID = deref(hostname), deref(unixname), deref(dagVersion)
	ti.QueuedBy, ti.Operator = deref(queuedBy), deref(operator)
	if updatedAt != nil {
		ti.UpdatedAt = updatedAt.UTC()
	}
	for _, p := range []**time.Time{&ti.QueuedAt, &ti.StartDate, &ti.EndDate, &ti.LastHeartbeatAt,
		&ti.TriggerTimeout, &ti.ReportedAt} {
		if *p != nil {
			t := (*p).UTC()
			*p = &t
		}
	}
	ti.NextKwargs = nullJSON(nextKwargs)
	if r.triggerID != nil {
		ti.TriggerClass = deref(classpath)
		ti.TriggerKwargs = triggerKwargsFromColumn(tkw)
	}
	if len(grant) > 0 {
		var g workload.ExecutionGrant
		if err := json.Unmarshal(grant, &g); err != nil {
			return nil, fmt.Errorf("pgstore: run grant of task instance %s: %w", r.rowID, err)
		}
		ti.RunGrant = &g
	}
	ti.TaskOutlets, ti.OutletEvents = nullJSON(outlets), nullJSON(events)
	return &r, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func deref32(n *int32) int {
	if n == nil {
		return 0
	}
	return int(*n)
}

func nullJSON(b []byte) json.RawMessage {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return json.RawMessage(b)
}

// triggerKwargsFromColumn is trigger.kwargs as the domain keeps it: the
// route stores the JSON the worker sent, or verbatim a string the worker
// sent (Fernet-encrypted by the worker), which reads back as that string.
func triggerKwargsFromColumn(s *string) json.RawMessage {
	if s == nil {
		return nil
	}
	if json.Valid([]byte(*s)) {
		return json.RawMessage(*s)
	}
	b, _ := json.Marshal(*s)
	return b
}

// triggerKwargsColumn is the inverse of triggerKwargsFromColumn, what
// Airflow's ti_update_state stores in trigger.kwargs (Trigger's
// encrypted_kwargs): a string the worker sent (its kwargs, Fernet-encrypted
// with the shared [core] fernet_key) verbatim, and an object, which the
// worker sends already serialized, as json.dumps writes it. Airflow's
// triggerer (Trigger._decrypt_kwargs) reads a column that starts with "{" as
// that JSON and decrypts any other with its Fernet key, then deserializes
// the result; the route itself neither serializes nor encrypts again.
func triggerKwargsColumn(kw json.RawMessage) (string, error) {
	if len(kw) == 0 {
		return "{}", nil
	}
	var s string
	if json.Unmarshal(kw, &s) == nil {
		return s, nil
	}
	if !json.Valid(kw) {
		return "", errors.New("pgstore: trigger kwargs are not JSON")
	}
	dumped, err := pyjson.Dumps(kw, false)
	if err != nil {
		return "", fmt.Errorf("pgstore: trigger kwargs: %w", err)
	}
	return dumped, nil
}

// selectTI reads the task instance whose row matches where (with args after
// the try id $1), locking the row when forUpdate.
func selectTI(ctx context.Context, q pgx.Tx, tryID, where string, forUpdate bool, args ...any) (*tiRow, error) {
	sql := `SELECT ` + tiColumns + ` ` + tiFrom + ` WHERE ` + where
	if forUpdate {
		sql += ` FOR UPDATE OF ti`
	}
	r, err := scanTI(q.QueryRow(ctx, sql, append([]any{tryID}, args...)...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.ti.ID = tryID
	if err := loadReschedules(ctx, q, r); err != nil {
		return nil, err
	}
	return r, nil
}

func loadReschedules(ctx context.Context, q pgx.Tx, r *tiRow) error {
	rows, err := q.Query(ctx, `SELECT start_date, end_date, reschedule_date FROM task_reschedule
		WHERE ti_id = $1::uuid ORDER BY id`, r.rowID)
	if err != nil {
		return err
	}
	r.ti.Reschedules = nil
	for rows.Next() {
		var rs workload.Reschedule
		if err := rows.Scan(&rs.StartDate, &rs.EndDate, &rs.RescheduleDate); err != nil {
			rows.Close()
			return err
		}
		rs.TryNumber = r.ti.TryNumber
		rs.StartDate, rs.EndDate, rs.RescheduleDate = rs.StartDate.UTC(), rs.EndDate.UTC(), rs.RescheduleDate.UTC()
		r.ti.Reschedules = append(r.ti.Reschedules, rs)
	}
	rows.Close()
	return rows.Err()
}

// located is where a try's id leads.
type located struct {
	row *tiRow
	// current: the try is the current one at its coordinates (its row is
	// task_instance's, under its own id or, moved, under row.rowID).
	current bool
	// archived is the history row of a try a later try replaced.
	archived bool
	// moved: current, read through the history row of a try whose row
	// took a new id (up_for_retry).
	moved bool
}

// locate finds the try with the given id: its task_instance row, or its
// history row and, while the try is still the current one there, the
// task_instance row it moved to. The row read is locked when forUpdate.
func locate(ctx context.Context, tx pgx.Tx, id string, forUpdate bool) (*located, error) {
	if !validUUID(id) {
		return nil, notFound("task instance %s", id)
	}
	r, err := selectTI(ctx, tx, id, `ti.id = $1::uuid`, forUpdate)
	if err != nil || r != nil {
		return &located{row: r, current: true}, err
	}
	var (
		dagID, runID, taskID string
		mapIndex, tryNumber  int32
	)
	err = tx.QueryRow(ctx, `SELECT dag_id, run_id, task_id, map_index, try_number
		FROM task_instance_history WHERE task_instance_id = $1::uuid`, id).
		Scan(&dagID, &runID, &taskID, &mapIndex, &tryNumber)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("task instance %s", id)
	}
	if err != nil {
		return nil, err
	}
	r, err = selectTI(ctx, tx, id, `ti.dag_id = $2 AND ti.run_id = $3 AND ti.task_id = $4 AND ti.map_index = $5
		AND ti.try_number = $6`, forUpdate, dagID, runID, taskID, mapIndex, tryNumber)
	if err != nil || r != nil {
		return &located{row: r, current: true, moved: true}, err
	}
	r, err = selectHistory(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	return &located{row: r, archived: true}, nil
}

// selectHistory reads an archived try from task_instance_history.
func selectHistory(ctx context.Context, tx pgx.Tx, id string) (*tiRow, error) {
	sql := strings.NewReplacer("ti.id::text", "ti.task_instance_id::text", "ti.last_heartbeat_at", "NULL::timestamptz",
		"FROM task_instance ti", "FROM task_instance_history ti").
		Replace(`SELECT ` + tiColumns + ` ` + tiFrom + ` WHERE ti.task_instance_id = $1::uuid`)
	r, err := scanTI(tx.QueryRow(ctx, sql, id))
	if err != nil {
		return nil, err
	}
	r.ti.ID = id
	return r, nil
}

// TaskInstance returns the try with the given id — the current one at its
// coordinates or an archived one — or an error wrapping workload.ErrNotFound.
func (db *DB) TaskInstance(ctx context.Context, id string) (*workload.TaskInstance, error) {
	var out *workload.TaskInstance
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		loc, err := locate(ctx, tx, id, false)
		if err != nil {
			return err
		}
		ti := loc.row.ti
		out = &ti
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateTaskInstance locks the try's task_instance row (SELECT … FOR UPDATE,
// as Airflow's routes do), calls fn on it and writes back exactly the
// columns fn changed, with the rows Airflow writes beside them for the state
// fn moved to (see writeTI). An archived try is read but not written: a
// change fn makes to it is refused with workload.ErrInvalidState. The
// returned value is fn's result; its ID stays the try's id even when
// Airflow's row took a new one (up_for_retry).
func (db *DB) UpdateTaskInstance(ctx context.Context, id string, fn func(ti *workload.TaskInstance) error) (*workload.TaskInstance, error) {
	return db.updateTI(ctx, id, false, func(ti *workload.TaskInstance, _ *workload.HITLDetail) error { return fn(ti) })
}

// updateTI is UpdateTaskInstance, whose fn also receives the try's
// Human-in-the-loop detail, locked after the task instance row (Airflow's
// lock order), when withHITL is set.
func (db *DB) updateTI(ctx context.Context, id string, withHITL bool,
	fn func(ti *workload.TaskInstance, h *workload.HITLDetail) error) (*workload.TaskInstance, error) {
	var out *workload.TaskInstance
	var archived, moved bool
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		out = nil
		loc, err := locate(ctx, tx, id, true)
		if err != nil {
			return err
		}
		var h *workload.HITLDetail
		if withHITL && loc.current {
			if h, err = selectHITL(ctx, tx, loc.row.rowID, true); err != nil {
				return err
			}
		}
		before := loc.row.ti
		moved = loc.moved
		ti := cloneTI(&before)
		if err := fn(ti, h); err != nil {
			return err
		}
		if ti.ID != before.ID || ti.DagID != before.DagID || ti.RunID != before.RunID ||
			ti.TaskID != before.TaskID || ti.MapIndex != before.MapIndex {
			return fmt.Errorf("pgstore: update of task instance %s changed its identity", id)
		}
		if archived = loc.archived; archived {
			if !sameTI(&before, ti) {
				return fmt.Errorf("pgstore: task instance %s is an earlier try: %w", id, workload.ErrInvalidState)
			}
			out = ti
			return nil
		}
		if err := db.writeTI(ctx, tx, loc.row, &before, ti); err != nil {
			return err
		}
		moved = moved || workload.RetriesOnNewID(before.State, ti.State)
		out = ti
		return nil
	})
	if err != nil {
		return nil, err
	}
	st := workload.StatusOf(out, !archived)
	st.Moved = moved && !archived
	db.ti.cache.put(id, st, db.now())
	return out, nil
}

// cloneTI copies ti deeply enough that fn's changes leave the original as
// read (slices and pointers fn may replace, never mutate in place).
func cloneTI(ti *workload.TaskInstance) *workload.TaskInstance {
	c := *ti
	c.Reschedules = append([]workload.Reschedule(nil), ti.Reschedules...)
	return &c
}

func sameTI(a, b *workload.TaskInstance) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// colSet collects "column = $n" assignments of one UPDATE.
type colSet struct {
	cols []string
	args []any
}

func (c *colSet) set(col string, v any) {
	c.args = append(c.args, v)
	c.cols = append(c.cols, col+" = $"+strconv.Itoa(len(c.args)))
}

func eqTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func eqStr(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func eqFloat(a, b *float64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func nullable[T comparable](v T) *T {
	var zero T
	if v == zero {
		return nil
	}
	return &v
}

func timeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC()
}

func jsonArg(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// duration is Airflow's TaskInstance.duration: seconds from start to end.
func duration(ti *workload.TaskInstance) *float64 {
	if ti.StartDate == nil || ti.EndDate == nil {
		return nil
	}
	d := ti.EndDate.Sub(*ti.StartDate).Seconds()
	return &d
}

// writeTI writes what fn changed from before to ti on the locked row r, and
// what Airflow writes with it:
//   - deferred: a trigger row (classpath, kwargs as the route stores them,
//     queue, created_date) whose id goes to trigger_id;
//   - awaiting_input: trigger_id NULL;
//   - success: the asset events of the try's outlets and the dags they
//     queue (register_asset_changes_in_db, see registerAssetChanges);
//   - up_for_reschedule: a task_reschedule row per new reschedule;
//   - up_for_retry: as Airflow's ti_update_state (prepare_db_for_next_try):
//     the try recorded into task_instance_history (state failed, end_date
//     now, as record_ti does for an unfinished try), its task_reschedule rows
//     deleted, then the row's id changed to a new UUIDv7 — in that order;
//   - duration when the try ends (end_date set, start_date kept).
func (db *DB) writeTI(ctx context.Context, tx pgx.Tx, r *tiRow, before, ti *workload.TaskInstance) error {
	now := db.now().UTC()
	var c colSet
	if ti.State != before.State {
		c.set("state", nullable(string(ti.State)))
	}
	if ti.Hostname != before.Hostname {
		c.set("hostname", ti.Hostname)
	}
	if ti.Unixname != before.Unixname {
		c.set("unixname", ti.Unixname)
	}
	if ti.PID != before.PID {
		c.set("pid", nullable(int32(ti.PID)))
	}
	if ti.TryNumber != before.TryNumber {
		c.set("try_number", int32(ti.TryNumber))
	}
	if ti.MaxTries != before.MaxTries {
		c.set("max_tries", int32(ti.MaxTries))
	}
	if ti.Queue != before.Queue {
		c.set("queue", ti.Queue)
	}
	if ti.PoolSlots != before.PoolSlots {
		c.set("pool_slots", int32(ti.PoolSlots))
	}
	if ti.PriorityWeight != before.PriorityWeight {
		c.set("priority_weight", int32(ti.PriorityWeight))
	}
	if !eqTime(ti.QueuedAt, before.QueuedAt) {
		c.set("queued_dttm", timeArg(ti.QueuedAt))
	}
	if !eqTime(ti.StartDate, before.StartDate) {
		c.set("start_date", timeArg(ti.StartDate))
	}
	if !eqTime(ti.EndDate, before.EndDate) {
		c.set("end_date", timeArg(ti.EndDate))
	}
	if !eqTime(ti.EndDate, before.EndDate) && ti.EndDate != nil && eqTime(ti.StartDate, before.StartDate) {
		// A try ending (Airflow's duration_expression_update); /run and
		// skip-downstream leave duration alone, as Airflow's routes do.
		c.set("duration", duration(ti))
	}
	if !eqTime(ti.LastHeartbeatAt, before.LastHeartbeatAt) {
		c.set("last_heartbeat_at", timeArg(ti.LastHeartbeatAt))
	}
	if !ti.UpdatedAt.Equal(before.UpdatedAt) {
		c.set("updated_at", timeArg(&ti.UpdatedAt))
	}
	if !eqStr(ti.RenderedMapIndex, before.RenderedMapIndex) {
		c.set("rendered_map_index", ti.RenderedMapIndex)
	}
	if !eqStr(ti.NextMethod, before.NextMethod) {
		c.set("next_method", ti.NextMethod)
	}
	if string(ti.NextKwargs) != string(before.NextKwargs) {
		c.set("next_kwargs", jsonArg(ti.NextKwargs))
	}
	if !eqTime(ti.TriggerTimeout, before.TriggerTimeout) {
		c.set("trigger_timeout", timeArg(ti.TriggerTimeout))
	}
	if ti.DagVersionID != before.DagVersionID && ti.DagVersionID != "" {
		c.set("dag_version_id", ti.DagVersionID)
	}

	// The rows Airflow writes beside the state.
	if ti.State != before.State {
		switch ti.State {
		case workload.StateDeferred:
			kw, err := triggerKwargsColumn(ti.TriggerKwargs)
			if err != nil {
				return err
			}
			var trigger int64
			// Under [core] multi_team the trigger is the team's of the
			// task's DAG's bundle (get_team_name_for_ti), else no team's.
			if err := tx.QueryRow(ctx, `INSERT INTO trigger (classpath, kwargs, created_date, queue, team_name)
				VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN (SELECT bt.team_name FROM dag d
					JOIN dag_bundle_team bt ON bt.dag_bundle_name = d.bundle_name WHERE d.dag_id = $6) END)
				RETURNING id`, ti.TriggerClass, kw, now, ti.TriggerQueue, db.opts.MultiTeam, ti.DagID).Scan(&trigger); err != nil {
				return fmt.Errorf("pgstore: insert trigger: %w", err)
			}
			c.set("trigger_id", trigger)
		case workload.StateAwaitingInput:
			c.set("trigger_id", nil)
		case workload.StateSuccess:
			if err := registerAssetChanges(withLog(ctx, db.opts.Log), tx, ti, now); err != nil {
				return err
			}
		case workload.StateFailed:
			// The try's own report (not an operator's mark) stops the
			// rest of a fail_fast run.
			if ti.ReportedAt != nil && before.ReportedAt == nil {
				if err := stopRemainingTasks(ctx, tx, ti, now); err != nil {
					return err
				}
			}
		}
	}
	if n := len(before.Reschedules); len(ti.Reschedules) > n {
		for _, rs := range ti.Reschedules[n:] {
			if _, err := tx.Exec(ctx, `INSERT INTO task_reschedule (ti_id, start_date, end_date, duration, reschedule_date)
				VALUES ($1::uuid, $2, $3, $4, $5)`, r.rowID, rs.StartDate.UTC(), rs.EndDate.UTC(),
				int32(rs.EndDate.Sub(rs.StartDate).Seconds()), rs.RescheduleDate.UTC()); err != nil {
				return fmt.Errorf("pgstore: insert task_reschedule: %w", err)
			}
		}
	}
	if auditedTransition(before, ti) {
		if err := insertAuditLog(ctx, tx, before, ti, now); err != nil {
			return err
		}
	}
	rowID := r.rowID
	if ti.State == workload.StateUpForRetry && before.State != workload.StateUpForRetry {
		if err := recordHistory(ctx, tx, rowID, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM task_reschedule WHERE ti_id = $1::uuid`, rowID); err != nil {
			return err
		}
		c.set("id", workload.NewTryID(now))
	}
	if len(c.cols) > 0 {
		c.args = append(c.args, rowID)
		sql := `UPDATE task_instance SET ` + strings.Join(c.cols, ", ") + ` WHERE id = $` + strconv.Itoa(len(c.args)) + `::uuid`
		if _, err := tx.Exec(ctx, sql, c.args...); err != nil {
			return fmt.Errorf("pgstore: update task instance %s: %w", ti.ID, err)
		}
	}
	return writeTry(ctx, tx, before, ti)
}

// auditedTransition reports whether the change from before to ti is one
// Airflow's Execution API records in its audit log: a /run that starts the
// try (the state becomes running) or a state the try reports itself (the
// report time moves). An operator's mark (ForceState) and skip-downstream
// are not: Airflow's REST API and scheduler log those their own way.
func auditedTransition(before, ti *workload.TaskInstance) bool {
	if ti.State == before.State {
		return false
	}
	return ti.State == workload.StateRunning || (ti.ReportedAt != nil && !eqTime(ti.ReportedAt, before.ReportedAt))
}

// insertAuditLog writes the log row Airflow's ti_run and ti_update_state
// add: the event is the new state, with the task instance's coordinates
// and try number, the dag run's logical date, the dag's owners, and
// {"host_name": …} as extra (the worker's hostname: the /run payload's, or
// the row's for a state report), NULL without one.
func insertAuditLog(ctx context.Context, tx pgx.Tx, before, ti *workload.TaskInstance, now time.Time) error {
	host := before.Hostname
	if ti.State == workload.StateRunning {
		host = ti.Hostname
	}
	var extra *string
	if host != "" {
		b, err := json.Marshal(map[string]string{"host_name": host})
		if err != nil {
			return err
		}
		// As Python's json.dumps writes it.
		e, err := pyjson.Dumps(b, false)
		if err != nil {
			return err
		}
		extra = &e
	}
	_, err := tx.Exec(ctx, `INSERT INTO log (dttm, dag_id, task_id, map_index, event, logical_date, run_id, owner,
			extra, try_number)
		SELECT $1::timestamptz, $2::varchar, $3::varchar, $4::integer, $5::varchar, dr.logical_date, $6::varchar,
			d.owners, $7::text, $8::integer
		FROM dag_run dr LEFT JOIN dag d ON d.dag_id = dr.dag_id
		WHERE dr.dag_id = $2 AND dr.run_id = $6`,
		now, ti.DagID, ti.TaskID, int32(ti.MapIndex), string(ti.State), ti.RunID, extra, int32(ti.TryNumber))
	if err != nil {
		return fmt.Errorf("pgstore: audit log of task instance %s: %w", ti.ID, err)
	}
	return nil
}

// writeTry stores what the try carries beyond Airflow's columns when it
// changed.
func writeTry(ctx context.Context, tx pgx.Tx, before, ti *workload.TaskInstance) error {
	if before != nil && ti.QueuedBy == before.QueuedBy && eqTime(ti.ReportedAt, before.ReportedAt) &&
		eqFloat(ti.RetryDelaySeconds, before.RetryDelaySeconds) && eqStr(ti.RetryReason, before.RetryReason) &&
		string(ti.TaskOutlets) == string(before.TaskOutlets) && string(ti.OutletEvents) == string(before.OutletEvents) &&
		sameGrant(ti.RunGrant, before.RunGrant) {
		return nil
	}
	var grant any
	if ti.RunGrant != nil {
		b, err := json.Marshal(ti.RunGrant)
		if err != nil {
			return err
		}
		grant = string(b)
	}
	_, err := tx.Exec(ctx, `INSERT INTO taskgate.try (ti_id, queued_by, reported_at, run_grant, retry_delay_seconds,
			retry_reason, task_outlets, outlet_events)
		VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (ti_id) DO UPDATE SET queued_by = EXCLUDED.queued_by, reported_at = EXCLUDED.reported_at,
			run_grant = EXCLUDED.run_grant, retry_delay_seconds = EXCLUDED.retry_delay_seconds,
			retry_reason = EXCLUDED.retry_reason, task_outlets = EXCLUDED.task_outlets,
			outlet_events = EXCLUDED.outlet_events`,
		ti.ID, ti.QueuedBy, timeArg(ti.ReportedAt), grant, ti.RetryDelaySeconds, ti.RetryReason,
		jsonArg(ti.TaskOutlets), jsonArg(ti.OutletEvents))
	if err != nil {
		return fmt.Errorf("pgstore: store try %s: %w", ti.ID, err)
	}
	return nil
}

func sameGrant(a, b *workload.ExecutionGrant) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.WorkloadTokenID == b.WorkloadTokenID && a.ID == b.ID && a.IssuedAt.Equal(b.IssuedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// recordHistory is Airflow's TaskInstanceHistory.record_ti for the row
// rowID: unless its try is recorded already, a copy of the row into
// task_instance_history keyed by its id, in the state it is in when that is
// finished, else failed with end_date now and the duration to it.
func recordHistory(ctx context.Context, tx pgx.Tx, rowID string, now time.Time) error {
	// Naive timestamp columns of the history table are UTC, as Airflow
	// writes them.
	if _, err := tx.Exec(ctx, `SET LOCAL TIME ZONE 'UTC'`); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO task_instance_history (task_instance_id, task_id, dag_id, run_id, map_index,
			try_number, start_date, end_date, duration, state, max_tries, hostname, unixname, pool, pool_slots, queue,
			priority_weight, operator, custom_operator_name, queued_dttm, scheduled_dttm, queued_by_job_id, pid,
			executor, executor_config, updated_at, rendered_map_index, context_carrier, span_status,
			external_executor_id, trigger_id, trigger_timeout, next_method, next_kwargs, task_display_name,
			dag_version_id)
		SELECT ti.id, ti.task_id, ti.dag_id, ti.run_id, ti.map_index, ti.try_number, ti.start_date,
			CASE WHEN fin THEN ti.end_date ELSE $2 END,
			CASE WHEN fin THEN ti.duration ELSE EXTRACT(EPOCH FROM ($2 - ti.start_date))::float8 END,
			CASE WHEN fin THEN ti.state ELSE 'failed' END,
			ti.max_tries, ti.hostname, ti.unixname, ti.pool, ti.pool_slots, ti.queue, ti.priority_weight,
			ti.operator, ti.custom_operator_name, ti.queued_dttm, ti.scheduled_dttm, ti.queued_by_job_id, ti.pid,
			ti.executor, ti.executor_config, ti.updated_at, ti.rendered_map_index, ti.context_carrier,
			ti.span_status, ti.external_executor_id, ti.trigger_id, ti.trigger_timeout, ti.next_method,
			ti.next_kwargs, ti.task_display_name, ti.dag_version_id
		FROM task_instance ti, LATERAL (SELECT ti.state = ANY($3)) f(fin)
		WHERE ti.id = $1::uuid AND NOT EXISTS (SELECT 1 FROM task_instance_history h
			WHERE h.dag_id = ti.dag_id AND h.task_id = ti.task_id AND h.run_id = ti.run_id
			AND h.map_index = ti.map_index AND h.try_number = ti.try_number)`,
		rowID, now, finishedStates)
	if err != nil {
		return fmt.Errorf("pgstore: record task instance %s into history: %w", rowID, err)
	}
	return nil
}

// InsertTaskInstance stores ti as the try at its coordinates, and dr when
// that dag run does not exist yet, in one transaction. Airflow keeps one
// task_instance row per coordinates, so a try replacing an earlier one takes
// over its row as Airflow's scheduler does: the earlier try recorded into
// task_instance_history (unless a resumed reschedule or deferral continues
// the same try), its task_reschedule rows deleted (kept for a resumed try),
// then the row's id changed to ti.ID and its columns set. ti's dag must be
// known to Airflow: its DagVersionID, when not a dag_version of the dag, is
// replaced by the dag's latest version.
func (db *DB) InsertTaskInstance(ctx context.Context, dr workload.DagRun, ti workload.TaskInstance,
	admit func(existing *workload.TaskInstance, ti *workload.TaskInstance) error) (*workload.TaskInstance, error) {
	if dr.DagID != ti.DagID || dr.RunID != ti.RunID {
		return nil, fmt.Errorf("pgstore: dag run %s/%s does not match task instance's %s/%s", dr.DagID, dr.RunID, ti.DagID, ti.RunID)
	}
	if !validUUID(ti.ID) {
		return nil, fmt.Errorf("pgstore: task instance id %q is not a UUID", ti.ID)
	}
	var out *workload.TaskInstance
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		out = nil
		if err := insertDagRun(ctx, tx, dr, db.now().UTC()); err != nil {
			return err
		}
		cur, err := selectTI(ctx, tx, ti.ID, `ti.dag_id = $2 AND ti.run_id = $3 AND ti.task_id = $4 AND ti.map_index = $5`,
			true, ti.DagID, ti.RunID, ti.TaskID, int32(ti.MapIndex))
		if err != nil {
			return err
		}
		var existing *workload.TaskInstance
		if cur != nil {
			// The current try as the domain knows it: with its own id and
			// what taskgate keeps of it.
			if existing, err = currentTry(ctx, tx, cur); err != nil {
				return err
			}
		}
		t := ti
		t.Reschedules = append([]workload.Reschedule(nil), ti.Reschedules...)
		if admit != nil {
			if err := admit(existing, &t); err != nil {
				return err
			}
		}
		if t.ID != ti.ID || t.DagID != ti.DagID || t.RunID != ti.RunID || t.TaskID != ti.TaskID || t.MapIndex != ti.MapIndex {
			return fmt.Errorf("pgstore: admitting task instance %s changed its identity", ti.ID)
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM task_instance WHERE id = $1::uuid)
			OR EXISTS (SELECT 1 FROM task_instance_history WHERE task_instance_id = $1::uuid)`, t.ID).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return fmt.Errorf("pgstore: task instance %s: %w", t.ID, workload.ErrAlreadyExists)
		}
		if t.DagVersionID, err = dagVersion(ctx, tx, t.DagID, t.DagVersionID); err != nil {
			return err
		}
		if cur == nil {
			err = insertTIRow(ctx, tx, &t)
		} else {
			err = replaceTIRow(ctx, tx, cur, existing, &t, db.now().UTC())
		}
		if err != nil {
			return err
		}
		if err := writeTry(ctx, tx, nil, &t); err != nil {
			return err
		}
		out = &t
		return nil
	})
	if err != nil {
		return nil, err
	}
	db.ti.cache.put(out.ID, workload.StatusOf(out, true), db.now())
	return out, nil
}

// currentTry is the try holding row cur, as the domain names it: the id of
// the history row it moved from when its try is recorded there under the
// same try number (an up_for_retry through taskgate or Airflow), else the
// row's own id.
func currentTry(ctx context.Context, tx pgx.Tx, cur *tiRow) (*workload.TaskInstance, error) {
	var moved string
	err := tx.QueryRow(ctx, `SELECT task_instance_id::text FROM task_instance_history
		WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = $4 AND try_number = $5`,
		cur.ti.DagID, cur.ti.RunID, cur.ti.TaskID, int32(cur.ti.MapIndex), int32(cur.ti.TryNumber)).Scan(&moved)
	id := cur.rowID
	switch {
	case err == nil:
		id = moved
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, err
	}
	r, err := selectTI(ctx, tx, id, `ti.id = $2::uuid`, false, cur.rowID)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("pgstore: task instance row %s vanished under its lock", cur.rowID)
	}
	return &r.ti, nil
}

// dagVersion returns want when it is a dag_version of the dag, else the
// dag's latest version; a dag Airflow has no version of is not found.
func dagVersion(ctx context.Context, tx pgx.Tx, dagID, want string) (string, error) {
	var id string
	err := tx.QueryRow(ctx, `SELECT id::text FROM dag_version WHERE dag_id = $1
		ORDER BY (id::text = $2) DESC, version_number DESC LIMIT 1`, dagID, want).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", notFound("dag %s has no version in Airflow's metadata database (has the dag processor parsed it?)", dagID)
	}
	return id, err
}

// tiValues are the columns of a try written whole (insert or take-over).
func tiValues(t *workload.TaskInstance) (cols []string, args []any) {
	cols = []string{"id", "try_number", "max_tries", "dag_version_id", "pool_slots", "queue", "priority_weight",
		"state", "hostname", "unixname", "pid", "queued_dttm", "start_date", "end_date", "duration",
		"last_heartbeat_at", "updated_at", "rendered_map_index", "next_method", "next_kwargs", "trigger_timeout"}
	args = []any{t.ID, int32(t.TryNumber), int32(t.MaxTries), t.DagVersionID, int32(t.PoolSlots), t.Queue,
		int32(t.PriorityWeight), nullable(string(t.State)), t.Hostname, t.Unixname, nullable(int32(t.PID)),
		timeArg(t.QueuedAt), timeArg(t.StartDate), timeArg(t.EndDate), duration(t), timeArg(t.LastHeartbeatAt),
		t.UpdatedAt.UTC(), t.RenderedMapIndex, t.NextMethod, jsonArg(t.NextKwargs), timeArg(t.TriggerTimeout)}
	return cols, args
}

func insertTIRow(ctx context.Context, tx pgx.Tx, t *workload.TaskInstance) error {
	cols, args := tiValues(t)
	// custom_operator_name is NOT NULL; taskgate knows no operator, so "",
	// and the display name is the task id, as insert_mapping writes it.
	cols = append(cols, "dag_id", "run_id", "task_id", "map_index", "pool", "executor_config", "context_carrier",
		"custom_operator_name", "task_display_name")
	args = append(args, t.DagID, t.RunID, t.TaskID, int32(t.MapIndex), defaultPool, pickledEmptyDict, string(emptyCarrier),
		"", t.TaskID)
	ph := make([]string, len(cols))
	for i := range cols {
		ph[i] = "$" + strconv.Itoa(i+1)
	}
	ph[0] += "::uuid"
	ph[3] += "::uuid"
	if _, err := tx.Exec(ctx, `INSERT INTO task_instance (`+strings.Join(cols, ", ")+`) VALUES (`+strings.Join(ph, ", ")+`)`,
		args...); err != nil {
		return fmt.Errorf("pgstore: insert task instance %s: %w", t.ID, err)
	}
	return insertReschedules(ctx, tx, t.ID, t.Reschedules)
}

func insertReschedules(ctx context.Context, tx pgx.Tx, rowID string, rs []workload.Reschedule) error {
	for _, r := range rs {
		if _, err := tx.Exec(ctx, `INSERT INTO task_reschedule (ti_id, start_date, end_date, duration, reschedule_date)
			VALUES ($1::uuid, $2, $3, $4, $5)`, rowID, r.StartDate.UTC(), r.EndDate.UTC(),
			int32(r.EndDate.Sub(r.StartDate).Seconds()), r.RescheduleDate.UTC()); err != nil {
			return fmt.Errorf("pgstore: insert task_reschedule: %w", err)
		}
	}
	return nil
}

// replaceTIRow makes row cur hold the new try t, in Airflow's order: the
// earlier try into history (unless t continues it), its reschedules
// deleted, then the id and the columns.
func replaceTIRow(ctx context.Context, tx pgx.Tx, cur *tiRow, existing, t *workload.TaskInstance, now time.Time) error {
	resuming := existing.State == workload.StateUpForReschedule || existing.State == workload.StateDeferred
	if !resuming {
		if err := recordHistory(ctx, tx, cur.rowID, now); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM task_reschedule WHERE ti_id = $1::uuid`, cur.rowID); err != nil {
		return err
	}
	cols, args := tiValues(t)
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = c + " = $" + strconv.Itoa(i+1)
	}
	set[0] += "::uuid"
	set[3] += "::uuid"
	set = append(set, "trigger_id = NULL")
	args = append(args, cur.rowID)
	if _, err := tx.Exec(ctx, `UPDATE task_instance SET `+strings.Join(set, ", ")+` WHERE id = $`+
		strconv.Itoa(len(args))+`::uuid`, args...); err != nil {
		return fmt.Errorf("pgstore: task instance %s takes over row %s: %w", t.ID, cur.rowID, err)
	}
	return insertReschedules(ctx, tx, t.ID, t.Reschedules)
}

// SkipTaskInstances locks the task instances of the dag run matching refs
// (MapIndex nil: every map index), applies fn to each once, and writes the
// state, start_date, end_date, duration and updated_at of those it changed,
// in one transaction.
func (db *DB) SkipTaskInstances(ctx context.Context, dagID, runID string, refs []workload.TaskRef,
	fn func(ti *workload.TaskInstance) bool) error {
	if len(refs) == 0 {
		return nil
	}
	var taskIDs []string
	var mapIndexes []int32 // -2: every map index
	for _, r := range refs {
		taskIDs = append(taskIDs, r.TaskID)
		if r.MapIndex == nil {
			mapIndexes = append(mapIndexes, -2)
		} else {
			mapIndexes = append(mapIndexes, int32(*r.MapIndex))
		}
	}
	var changed []workload.TaskInstance
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		changed = changed[:0]
		rows, err := tx.Query(ctx, `SELECT ti.id::text FROM task_instance ti
			WHERE ti.dag_id = $1 AND ti.run_id = $2 AND EXISTS (
				SELECT 1 FROM unnest($3::text[], $4::int[]) r(task_id, map_index)
				WHERE r.task_id = ti.task_id AND (r.map_index = -2 OR r.map_index = ti.map_index))
			ORDER BY ti.id`, dagID, runID, taskIDs, mapIndexes)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, id := range ids {
			r, err := selectTI(ctx, tx, id, `ti.id = $1::uuid`, true)
			if err != nil {
				return err
			}
			if r == nil {
				continue
			}
			cur, err := currentTry(ctx, tx, r)
			if err != nil {
				return err
			}
			before := *cur
			if !fn(cur) {
				continue
			}
			if err := db.writeTI(ctx, tx, r, &before, cur); err != nil {
				return err
			}
			changed = append(changed, *cur)
		}
		return nil
	})
	if err != nil {
		return err
	}
	now := db.now()
	for i := range changed {
		db.ti.cache.put(changed[i].ID, workload.StatusOf(&changed[i], true), now)
	}
	return nil
}

// TaskInstances lists the task_instance rows (the current try at each
// coordinates) matching f, ordered by dag id, run id, task id and map index,
// with the number of all matches.
func (db *DB) TaskInstances(ctx context.Context, f workload.TaskInstanceFilter) ([]workload.TaskInstance, int, error) {
	where := []string{"true"}
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.DagID != "" {
		add("ti.dag_id = ?", f.DagID)
	}
	if f.RunID != "" {
		add("ti.run_id = ?", f.RunID)
	}
	if f.TaskID != "" {
		add("ti.task_id = ?", f.TaskID)
	}
	if f.MapIndex != nil {
		add("ti.map_index = ?", int32(*f.MapIndex))
	}
	if f.State != "" {
		add("ti.state = ?", string(f.State))
	}
	cond := strings.Join(where, " AND ")
	// A row whose try moved it to a new id (up_for_retry, a clear) lists
	// under the try's id, as TaskInstance and TryStatus name it.
	sql := `SELECT ` + strings.Replace(tiColumns, "ti.id::text", "coalesce(h.task_instance_id, ti.id)::text", 1) +
		`, count(*) OVER () ` +
		strings.Replace(tiFrom, "LEFT JOIN taskgate.try t ON t.ti_id = $1::uuid",
			`LEFT JOIN task_instance_history h ON h.dag_id = ti.dag_id AND h.run_id = ti.run_id
				AND h.task_id = ti.task_id AND h.map_index = ti.map_index AND h.try_number = ti.try_number
			LEFT JOIN taskgate.try t ON t.ti_id = coalesce(h.task_instance_id, ti.id)`, 1) +
		` WHERE ` + cond + ` ORDER BY ti.dag_id, ti.run_id, ti.task_id, ti.map_index`
	if f.Limit > 0 {
		sql += " LIMIT " + strconv.Itoa(f.Limit)
	}
	if f.Offset > 0 {
		sql += " OFFSET " + strconv.Itoa(f.Offset)
	}
	out := []workload.TaskInstance{}
	total := 0
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		out, total = out[:0], 0
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanTI(countingRow{rows, &total})
			if err != nil {
				return err
			}
			out = append(out, r.ti)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		if total == 0 && f.Offset > 0 {
			// Paged past the end: count the matches on their own.
			return tx.QueryRow(ctx, `SELECT count(*) FROM task_instance ti WHERE `+cond, args...).Scan(&total)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// countingRow scans a listing row: the task instance's columns, then the
// window count.
type countingRow struct {
	rows  pgx.Rows
	total *int
}

func (c countingRow) Scan(dest ...any) error {
	var n int64
	if err := c.rows.Scan(append(dest, &n)...); err != nil {
		return err
	}
	*c.total = int(n)
	return nil
}

// renderedRunsToKeep is Airflow's [core]
// num_dag_runs_to_retain_rendered_fields default: rendered fields are kept
// for a task's most recent dag runs (by run_after), older ones deleted.
const renderedRunsToKeep = 30

// PutRenderedFields stores the rendered template fields of the try's task
// as Airflow's TaskInstance.update_rtif does: an upsert of the
// rendered_task_instance_fields row of its dag, run, task and map index
// (rendered_fields is a plain json column, stored verbatim; k8s_pod_yaml
// NULL), then RenderedTaskInstanceFields.delete_old_records: the task's rows
// of runs other than the dag's renderedRunsToKeep latest deleted.
func (db *DB) PutRenderedFields(ctx context.Context, tiID string, fields json.RawMessage) error {
	value := string(fields)
	if len(fields) == 0 {
		value = "null"
	}
	if !validUUID(tiID) {
		return notFound("task instance %s", tiID)
	}
	return db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		var dagID, runID, taskID string
		var mapIndex int32
		err := tx.QueryRow(ctx, `SELECT dag_id, run_id, task_id, map_index FROM task_instance WHERE id = $1::uuid`, tiID).
			Scan(&dagID, &runID, &taskID, &mapIndex)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("task instance %s", tiID)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO rendered_task_instance_fields (dag_id, task_id, run_id, map_index, rendered_fields)
			VALUES ($1, $2, $3, $4, $5::json)
			ON CONFLICT (dag_id, task_id, run_id, map_index)
			DO UPDATE SET rendered_fields = EXCLUDED.rendered_fields, k8s_pod_yaml = NULL`,
			dagID, taskID, runID, mapIndex, value); err != nil {
			return fmt.Errorf("pgstore: store rendered fields of %s: %w", tiID, err)
		}
		_, err = tx.Exec(ctx, `DELETE FROM rendered_task_instance_fields
			WHERE dag_id = $1 AND task_id = $2 AND run_id NOT IN (
				SELECT run_id FROM dag_run WHERE dag_id = $1 ORDER BY run_after DESC LIMIT $3)`,
			dagID, taskID, renderedRunsToKeep)
		return err
	})
}

// XComKeys lists the keys of the xcom rows of a task in a dag run (every map
// index when mapIndex is negative), as /run's xcom_keys_to_clear does.
func (db *DB) XComKeys(ctx context.Context, dagID, runID, taskID string, mapIndex int) ([]string, error) {
	var keys []string
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT key FROM xcom WHERE dag_id = $1 AND run_id = $2 AND task_id = $3
			AND ($4 < 0 OR map_index = $4) ORDER BY map_index, key`, dagID, runID, taskID, int32(mapIndex))
		if err != nil {
			return err
		}
		keys, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return keys, err
}
