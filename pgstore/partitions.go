package pgstore

// Partitioned DAGs scheduled on an asset of a successful try, queued as
// Airflow 3.2's AssetManager._queue_partitioned_dags queues them: the
// event's partition key mapped through the DAG's timetable's partition
// mapper into an asset_partition_dag_run (got or created under the asset
// row's lock, _get_or_create_apdr) and a partitioned_asset_key_log row
// linking the event to it. The scheduler then creates the DAG run.

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/workload"
)

// partitionedTimetablePath is PartitionedAssetTimetable's serialized class.
const partitionedTimetablePath = "airflow.timetables.simple.PartitionedAssetTimetable"

type logKey struct{}

// withLog gives the asset registration of a success the store's logger
// (what Airflow logs there, taskgate logs too).
func withLog(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, logKey{}, l)
}

func logFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// SetLog sets the logger of what the store reports without failing the
// request (a partitioned DAG it could not queue); call it before the store
// is used. Without it nothing is logged.
func (db *DB) SetLog(l *slog.Logger) { db.opts.Log = l }

// queuePartitionedDags queues the unpaused partitioned DAGs scheduled on
// asset a (directly, through one of the event's aliases, or through a
// reference to its name or uri) for event eventID. Without a partition key
// Airflow queues none of them, logs a warning and writes a "missing
// partition key" audit log row. A DAG taskgate cannot queue (no serialized
// DAG, a timetable that is not a PartitionedAssetTimetable, a partition
// mapper class taskgate does not implement, a key the mapper refuses) is
// skipped with an error logged naming it, and the success goes on; for a
// refused key Airflow's "failed to map partition_key" audit log row is
// written too, in the success's transaction as every row here.
func queuePartitionedDags(ctx context.Context, tx pgx.Tx, ti *workload.TaskInstance, a assetRow, aliasIDs []int32,
	eventID int32, partitionKey *string, now time.Time) error {
	if aliasIDs == nil {
		aliasIDs = []int32{}
	}
	rows, err := tx.Query(ctx, `SELECT d.dag_id FROM dag d
		WHERE NOT d.is_paused AND d.timetable_partitioned AND (
			EXISTS (SELECT 1 FROM dag_schedule_asset_reference r WHERE r.asset_id = $1 AND r.dag_id = d.dag_id)
			OR EXISTS (SELECT 1 FROM dag_schedule_asset_alias_reference r
				WHERE r.alias_id = ANY($2::int[]) AND r.dag_id = d.dag_id)
			OR EXISTS (SELECT 1 FROM dag_schedule_asset_name_reference r WHERE r.name = $3 AND r.dag_id = d.dag_id)
			OR EXISTS (SELECT 1 FROM dag_schedule_asset_uri_reference r WHERE r.uri = $4 AND r.dag_id = d.dag_id))
		ORDER BY d.dag_id`, a.id, aliasIDs, a.name, a.uri)
	if err != nil {
		return fmt.Errorf("pgstore: partitioned dags scheduled on asset %d: %w", a.id, err)
	}
	dags, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("pgstore: partitioned dags scheduled on asset %d: %w", a.id, err)
	}
	if len(dags) == 0 {
		return nil
	}
	log := logFrom(ctx)
	if partitionKey == nil || *partitionKey == "" {
		log.Warn("Listening dags are partition-aware but run has no partition key",
			"listening_dags", dags, "asset_id", a.id, "run_id", ti.RunID, "dag_id", ti.DagID, "task_id", ti.TaskID)
		extra := fmt.Sprintf("Listening Dags are partition-aware but the run has no partition key "+
			"(listening_dags=%s, asset_id=%d, run_id=%s, dag_id=%s, task_id=%s)",
			pyReprList(dags), a.id, ti.RunID, ti.DagID, ti.TaskID)
		return insertPartitionAuditLog(ctx, tx, ti, "missing partition key", extra, now)
	}
	for _, dag := range dags {
		mapper, err := dagPartitionMapper(ctx, tx, dag, a)
		var unknown *unknownMapperError
		switch {
		case errors.As(err, &unknown):
			log.Error("partition mapper not implemented by taskgate; dag not queued for the asset event",
				"mapper_class", unknown.class, "target_dag", dag, "asset_id", a.id, "partition_key", *partitionKey,
				"dag_id", ti.DagID, "run_id", ti.RunID, "task_id", ti.TaskID)
			continue
		case errors.Is(err, errNoPartitionMapper):
			log.Error("partitioned dag's serialized timetable has no partition mapper; dag not queued for the asset event",
				"target_dag", dag, "asset_id", a.id, "partition_key", *partitionKey, "error", err.Error())
			continue
		case err != nil:
			return err
		}
		keys, err := mapper.toDownstream(*partitionKey)
		if err != nil {
			log.Error("Could not map partition key for asset in target Dag; dag not queued for the asset event",
				"partition_key", *partitionKey, "asset_name", a.name, "asset_uri", a.uri, "target_dag", dag,
				"error", err.Error())
			extra := fmt.Sprintf("Could not validate or map partition_key '%s' for asset (name='%s', uri='%s') "+
				"in target Dag '%s'. This likely indicates that the partition mapper in the target Dag is "+
				"misconfigured or does not support this partition key.\n%s",
				*partitionKey, a.name, a.uri, dag, pyException(err))
			if err := insertPartitionAuditLog(ctx, tx, ti, "failed to map partition_key", extra, now); err != nil {
				return err
			}
			continue
		}
		for _, key := range keys {
			apdr, err := getOrCreateAPDR(ctx, tx, a.id, dag, key, now)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO partitioned_asset_key_log (asset_id, asset_event_id,
					asset_partition_dag_run_id, source_partition_key, target_dag_id, target_partition_key, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				a.id, eventID, apdr, *partitionKey, dag, key, now); err != nil {
				return fmt.Errorf("pgstore: partitioned_asset_key_log of dag %s: %w", dag, err)
			}
		}
	}
	return nil
}

// insertPartitionAuditLog writes the log row Airflow's
// _queue_partitioned_dags adds where it queues no run of a partitioned DAG
// (Log(event=…, extra=…, task_instance=ti)): the success's task instance
// coordinates and try number, its dag run's logical date, no owner (the
// task instance Airflow hands over carries no task to take it from).
func insertPartitionAuditLog(ctx context.Context, tx pgx.Tx, ti *workload.TaskInstance, event, extra string,
	now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO log (dttm, dag_id, task_id, map_index, event, logical_date, run_id,
			extra, try_number)
		VALUES ($1::timestamptz, $2::varchar, $3::varchar, $4::integer, $5::varchar,
			(SELECT logical_date FROM dag_run WHERE dag_id = $2 AND run_id = $6), $6::varchar, $7::text, $8::integer)`,
		now, ti.DagID, ti.TaskID, int32(ti.MapIndex), event, ti.RunID, extra, int32(ti.TryNumber))
	if err != nil {
		return fmt.Errorf("pgstore: audit log %q of task instance %s: %w", event, ti.ID, err)
	}
	return nil
}

// errNoPartitionMapper is a partitioned DAG whose latest serialized DAG
// gives no partition mapper: none stored, or not a PartitionedAssetTimetable.
var errNoPartitionMapper = errors.New("pgstore: no partition mapper")

// dagPartitionMapper reads the latest serialized_dag of dag (by
// created_at, SerializedDagModel.get) and returns its timetable's
// partition mapper for asset a.
func dagPartitionMapper(ctx context.Context, tx pgx.Tx, dag string, a assetRow) (partitionMapper, error) {
	data, found, err := serializedDag(ctx, tx, dag)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoPartitionMapper, err)
	}
	if !found {
		return nil, fmt.Errorf("%w: Could not find serialized dag for dag_id=%s", errNoPartitionMapper, dag)
	}
	tt, err := decodePartitionedTimetable(data)
	if err != nil {
		return nil, fmt.Errorf("%w: dag %s: %v", errNoPartitionMapper, dag, err)
	}
	return tt.mapperFor(a.name, a.uri)
}

// partitionedTimetable is a serialized PartitionedAssetTimetable: its
// default mapper and, in order, the mappers it sets for some of its
// assets.
type partitionedTimetable struct {
	defaultMapper json.RawMessage
	byName        map[string]json.RawMessage
	byURI         map[string]json.RawMessage
}

// decodePartitionedTimetable reads the timetable of a serialized DAG
// ({"dag": {"timetable": {"__type": …, "__var": …}}}).
func decodePartitionedTimetable(data []byte) (*partitionedTimetable, error) {
	var doc struct {
		Dag struct {
			Timetable *struct {
				Type string `json:"__type"`
				Var  struct {
					DefaultPartitionMapper json.RawMessage      `json:"default_partition_mapper"`
					PartitionMapperConfig  [][2]json.RawMessage `json:"partition_mapper_config"`
					// PartitionMapper is the one mapper of the timetable
					// before mappers were set per asset.
					PartitionMapper json.RawMessage `json:"partition_mapper"`
				} `json:"__var"`
			} `json:"timetable"`
		} `json:"dag"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("serialized dag: %v", err)
	}
	t := doc.Dag.Timetable
	if t == nil {
		return nil, errors.New("serialized dag has no timetable")
	}
	if t.Type != partitionedTimetablePath {
		return nil, fmt.Errorf("timetable %s is not a PartitionedAssetTimetable", t.Type)
	}
	tt := &partitionedTimetable{defaultMapper: t.Var.DefaultPartitionMapper,
		byName: map[string]json.RawMessage{}, byURI: map[string]json.RawMessage{}}
	if len(tt.defaultMapper) == 0 {
		tt.defaultMapper = t.Var.PartitionMapper
	}
	if len(tt.defaultMapper) == 0 {
		// DEFAULT_PARTITION_MAPPER
		tt.defaultMapper = json.RawMessage(`{"__type": "` + identityMapperPath + `", "__var": {}}`)
	}
	for _, entry := range t.Var.PartitionMapperConfig {
		if err := tt.add(entry[0], entry[1]); err != nil {
			return nil, err
		}
	}
	return tt, nil
}

// encodedAsset is an asset-like as encode_asset_like writes it.
type encodedAsset struct {
	Type    string            `json:"__type"`
	Name    *string           `json:"name"`
	URI     *string           `json:"uri"`
	Objects []json.RawMessage `json:"objects"`
}

// add records mapper for every asset and asset reference of an asset-like
// (PartitionedAssetTimetable._build_name_uri_mapping): an asset under its
// name and uri, a name reference under the name, a uri reference under
// the uri; an alias names none.
func (tt *partitionedTimetable) add(assetLike, mapper json.RawMessage) error {
	var a encodedAsset
	if err := json.Unmarshal(assetLike, &a); err != nil {
		return fmt.Errorf("partition_mapper_config asset: %v", err)
	}
	switch a.Type {
	case "asset":
		tt.byName[deref(a.Name)] = mapper
		tt.byURI[deref(a.URI)] = mapper
	case "asset_ref":
		switch {
		case a.Name != nil:
			tt.byName[*a.Name] = mapper
		case a.URI != nil:
			tt.byURI[*a.URI] = mapper
		}
	case "asset_all", "asset_any":
		for _, o := range a.Objects {
			if err := tt.add(o, mapper); err != nil {
				return err
			}
		}
	}
	return nil
}

// mapperFor is get_partition_mapper(name=…, uri=…): with a name, the
// mapper set for that name, else the default (the uri is looked up only
// without a name).
func (tt *partitionedTimetable) mapperFor(name, uri string) (partitionMapper, error) {
	raw := tt.defaultMapper
	if m, ok := tt.byName[name]; name != "" && ok {
		raw = m
	} else if m, ok := tt.byURI[uri]; name == "" && uri != "" && ok {
		raw = m
	}
	return decodeMapper(raw)
}

// getOrCreateAPDR is _get_or_create_apdr: under a lock on the asset's row
// (Airflow's with_row_locks(key_share=True), FOR NO KEY UPDATE, held to
// the end of the transaction), the latest asset_partition_dag_run of
// (key, dag) when no DAG run was created from it yet, else a new one.
// Two successes racing for the same key thus make one.
func getOrCreateAPDR(ctx context.Context, tx pgx.Tx, assetID int32, dag, key string, now time.Time) (int32, error) {
	var locked int32
	if err := tx.QueryRow(ctx, `SELECT id FROM asset WHERE id = $1 FOR NO KEY UPDATE`, assetID).Scan(&locked); err != nil {
		return 0, fmt.Errorf("pgstore: lock asset %d: %w", assetID, err)
	}
	var id int32
	var created *int32
	err := tx.QueryRow(ctx, `SELECT id, created_dag_run_id FROM asset_partition_dag_run
		WHERE partition_key = $1 AND target_dag_id = $2 ORDER BY id DESC LIMIT 1`, key, dag).Scan(&id, &created)
	if err == nil && created == nil {
		return id, nil
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("pgstore: asset_partition_dag_run of dag %s: %w", dag, err)
	}
	if err := tx.QueryRow(ctx, `INSERT INTO asset_partition_dag_run (target_dag_id, created_dag_run_id,
			partition_key, created_at, updated_at)
		VALUES ($1, NULL, $2, $3, $3) RETURNING id`, dag, key, now).Scan(&id); err != nil {
		return 0, fmt.Errorf("pgstore: insert asset_partition_dag_run of dag %s: %w", dag, err)
	}
	return id, nil
}

// serializedDag reads the latest serialized_dag of dag (by created_at, as
// SerializedDagModel.get does), from data or the zlib-compressed
// data_compressed; found is false when there is none.
func serializedDag(ctx context.Context, q rowQuerier, dag string) (data []byte, found bool, err error) {
	var compressed []byte
	err = q.QueryRow(ctx, `SELECT data::text, data_compressed FROM serialized_dag WHERE dag_id = $1
		ORDER BY created_at DESC LIMIT 1`, dag).Scan(&data, &compressed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pgstore: serialized dag of %s: %w", dag, err)
	}
	if len(compressed) > 0 {
		if data, err = inflate(compressed); err != nil {
			return nil, false, fmt.Errorf("pgstore: data_compressed of dag %s: %w", dag, err)
		}
	}
	return data, true, nil
}

// inflate reads a zlib-compressed serialized DAG (SerializedDagModel's
// data_compressed, with [core] compress_serialized_dags).
func inflate(compressed []byte) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}
