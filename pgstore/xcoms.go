package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskgate/taskgate/workload"
)

// Airflow's xcom table (airflow/models/xcom.py, XComModel): primary key
// (dag_run_id, task_id, map_index, key), dag_id and run_id denormalized,
// value JSONB, timestamp. Since Airflow 3.0 the Execution API stores the
// JSON a task sends as it is: the Task SDK serializes the value (serde) and
// the route (execution_api/routes/xcoms.py set_xcom) writes that JSON
// document into value without encoding it again. XComModel.deserialize_value
// returns such a value unchanged (json.loads of a non-string raises and the
// value is returned as it is), and the Execution API's GET returns it to the
// SDK as it is. taskgate stores and serves the same document.

// jsonNull is the value of an XCom set to null, and of a NULL value column:
// SQLAlchemy's JSON type stores None as the JSON null.
var jsonNull = []byte("null")

// XComs returns the XComs of q.Key for q.TaskID: this run's first, then —
// with IncludePriorDates — those of the dag's other runs whose run_after is
// not later than this run's, newest run first (runs with equal run_after by
// descending run id), each run's in map-index order. A missing dag run or
// slot gives an empty, non-nil list: whether that is a 404 is the caller's
// decision. Values come back as compact JSON.
func (db *DB) XComs(ctx context.Context, q workload.XComQuery) ([]workload.XCom, error) {
	var mapIndex *int64
	if q.MapIndex != nil {
		mi := int64(*q.MapIndex)
		mapIndex = &mi
	}
	rows, err := db.pool.Query(ctx, `
		SELECT x.run_id, x.map_index, x.value::text, x."timestamp", dr.run_after
		FROM xcom x JOIN dag_run dr ON dr.id = x.dag_run_id
		WHERE x.dag_id = $1 AND x.task_id = $2 AND x.key = $3
		  AND ($4::integer IS NULL OR x.map_index = $4)
		  AND (x.run_id = $5 OR ($6 AND dr.run_after <=
		       (SELECT cur.run_after FROM dag_run cur WHERE cur.dag_id = $1 AND cur.run_id = $5)))
		ORDER BY x.run_id = $5 DESC, dr.run_after DESC, x.run_id COLLATE "C" DESC, x.map_index`,
		q.DagID, q.TaskID, q.Key, mapIndex, q.RunID, q.IncludePriorDates)
	if err != nil {
		return nil, fmt.Errorf("pgstore: xcoms: %w", classify(err))
	}
	out := []workload.XCom{}
	var (
		runID    string
		mi       int
		value    []byte
		ts, runA time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&runID, &mi, &value, &ts, &runA}, func() error {
		v, err := compactJSON(value)
		if err != nil {
			return fmt.Errorf("%s/%s/%s[%d] %s: %w", q.DagID, runID, q.TaskID, mi, q.Key, err)
		}
		out = append(out, workload.XCom{
			XComRef:   workload.XComRef{DagID: q.DagID, RunID: runID, TaskID: q.TaskID, MapIndex: mi, Key: q.Key},
			Value:     v,
			Timestamp: ts.UTC(),
			RunAfter:  runA.UTC(),
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: xcoms: %w", classify(err))
	}
	return out, nil
}

// compactJSON returns the stored JSON without PostgreSQL's jsonb output
// spacing, as Airflow's API serializes it; NULL is the JSON null.
func compactJSON(v []byte) (json.RawMessage, error) {
	if v == nil {
		return json.RawMessage(bytes.Clone(jsonNull)), nil
	}
	var b bytes.Buffer
	b.Grow(len(v))
	if err := json.Compact(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// SetXCom stores x in its slot as XComModel.set does, replacing any value
// there: dag_run_id looked up from (dag_id, run_id), the value as it is,
// the timestamp from the store's clock. An unknown dag run, or a task
// instance the row's foreign key does not find, is refused with
// workload.ErrNotFound.
func (db *DB) SetXCom(ctx context.Context, x workload.XCom) error {
	value := string(x.Value)
	if len(bytes.TrimSpace(x.Value)) == 0 {
		value = string(jsonNull)
	}
	ts := db.now().UTC()
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, "timestamp")
			SELECT dr.id, $3, $4, $5, dr.dag_id, dr.run_id, $6::text::jsonb, $7
			FROM dag_run dr WHERE dr.dag_id = $1 AND dr.run_id = $2
			ON CONFLICT (dag_run_id, task_id, map_index, key) DO UPDATE
			SET value = EXCLUDED.value, "timestamp" = EXCLUDED."timestamp"`,
			x.DagID, x.RunID, x.TaskID, x.MapIndex, x.Key, value, ts)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("dag run %s/%s: %w", x.DagID, x.RunID, workload.ErrNotFound)
		}
		return nil
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation: no such task instance
		err = fmt.Errorf("task instance %s/%s/%s[%d]: %w", x.DagID, x.RunID, x.TaskID, x.MapIndex, workload.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("pgstore: set xcom %s: %w", x.Key, err)
	}
	return nil
}

// DeleteXCom removes one slot, as the Execution API's delete_xcom does; a
// missing slot is not an error, so a retried delete succeeds.
func (db *DB) DeleteXCom(ctx context.Context, ref workload.XComRef) error {
	err := db.inTx(ctx, pgx.ReadCommitted, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			DELETE FROM xcom
			WHERE dag_id = $1 AND run_id = $2 AND task_id = $3 AND map_index = $4 AND key = $5`,
			ref.DagID, ref.RunID, ref.TaskID, ref.MapIndex, ref.Key)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: delete xcom %s: %w", ref.Key, err)
	}
	return nil
}
