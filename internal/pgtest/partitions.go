package pgtest

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/internal/pyjson"
)

// Serialized asset-likes and partition mappers, as Airflow 3.2's
// encode_asset_like and encode_partition_mapper write them.

// AssetJSON is an Asset (group "asset", no extra).
func AssetJSON(name, uri string) map[string]any {
	return map[string]any{"__type": "asset", "name": name, "uri": uri, "group": "asset", "extra": map[string]any{}}
}

// AssetAnyJSON is an AssetAny of objects.
func AssetAnyJSON(objects ...map[string]any) map[string]any {
	l := make([]any, len(objects))
	for i, o := range objects {
		l[i] = o
	}
	return map[string]any{"__type": "asset_any", "objects": l}
}

// MapperJSON is a mapper of class (under airflow.partition_mappers., e.g.
// "identity.IdentityMapper") with its serialize() v.
func MapperJSON(class string, v map[string]any) map[string]any {
	if v == nil {
		v = map[string]any{}
	}
	return map[string]any{"__type": "airflow.partition_mappers." + class, "__var": v}
}

// TemporalMapperJSON is a StartOf…Mapper (class e.g. "StartOfDayMapper")
// in UTC with the default input_format and outputFormat.
func TemporalMapperJSON(class, outputFormat string) map[string]any {
	return MapperJSON("temporal."+class, map[string]any{"timezone": "UTC",
		"input_format": "%Y-%m-%dT%H:%M:%S", "output_format": outputFormat})
}

// PartitionedDagRow is a DAG scheduled with a PartitionedAssetTimetable.
type PartitionedDagRow struct {
	DagID string
	// AssetCondition is the timetable's assets (encode_asset_like).
	AssetCondition map[string]any
	// DefaultMapper is default_partition_mapper; IdentityMapper when nil.
	DefaultMapper map[string]any
	// MapperConfig is partition_mapper_config: (asset-like, mapper) pairs.
	MapperConfig [][2]map[string]any
	// Compressed writes the DAG into data_compressed, as with [core]
	// compress_serialized_dags.
	Compressed bool
}

// PartitionedDag writes what the DAG processor writes for a DAG with a
// PartitionedAssetTimetable (the dag and its first version when missing):
// the dag row's timetable columns with timetable_partitioned, and a
// serialized_dag row for the dag's latest version holding the timetable,
// as SerializedDagModel writes it (json.dumps(…, sort_keys=True), zlib
// compressed or in the data column). It does not schedule the dag on
// anything: the dag_schedule_* rows are the test's.
func (a *Airflow) PartitionedDag(t testing.TB, r PartitionedDagRow) {
	t.Helper()
	if r.AssetCondition == nil {
		r.AssetCondition = AssetAnyJSON()
	}
	if r.DefaultMapper == nil {
		r.DefaultMapper = MapperJSON("identity.IdentityMapper", nil)
	}
	config := make([]any, len(r.MapperConfig))
	for i, c := range r.MapperConfig {
		config[i] = []any{c[0], c[1]}
	}
	dag := map[string]any{
		"__version": 3,
		"dag": map[string]any{
			"dag_id":           r.DagID,
			"fileloc":          "/opt/airflow/dags/" + r.DagID + ".py",
			"relative_fileloc": r.DagID + ".py",
			"timezone":         "UTC",
			"tasks":            []any{},
			"dag_dependencies": []any{},
			"timetable": map[string]any{
				"__type": "airflow.timetables.simple.PartitionedAssetTimetable",
				"__var": map[string]any{
					"asset_condition":          r.AssetCondition,
					"partition_mapper_config":  config,
					"default_partition_mapper": r.DefaultMapper,
				},
			},
		},
	}
	a.writeSerializedDag(t, r.DagID, dag, r.Compressed, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE dag SET timetable_partitioned = true,
				timetable_type = 'airflow.timetables.simple.PartitionedAssetTimetable',
				timetable_summary = 'Partitioned Asset', timetable_description = 'Triggered by assets'
			WHERE dag_id = $1`, r.DagID)
		return err
	})
}

// writeSerializedDag writes dag as the serialized_dag row of the DAG's latest
// version (creating the dag and its first version when missing), as
// SerializedDagModel writes it: json.dumps(…, sort_keys=True), zlib
// compressed or in the data column. before runs first in the same
// transaction.
func (a *Airflow) writeSerializedDag(t testing.TB, dagID string, dag map[string]any, compressed bool,
	before func(ctx context.Context, tx pgx.Tx) error) {
	t.Helper()
	now := a.now()
	raw, err := json.Marshal(dag)
	if err != nil {
		t.Fatal(err)
	}
	text, err := pyjson.Dumps(raw, true)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte(text))
	var data, zipped any
	if compressed {
		var b bytes.Buffer
		w := zlib.NewWriter(&b)
		if _, err := w.Write([]byte(text)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		zipped = b.Bytes()
	} else {
		data = text
	}
	a.exec(t, func(ctx context.Context, tx pgx.Tx) error {
		version, err := ensureDag(ctx, tx, dagID, now)
		if err != nil {
			return err
		}
		if before != nil {
			if err := before(ctx, tx); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO serialized_dag (id, dag_id, data, data_compressed, created_at, last_updated,
				dag_hash, dag_version_id)
			VALUES ($1, $2, $3::json, $4, $5, $5, $6, $7)
			ON CONFLICT (dag_version_id) DO UPDATE SET data = EXCLUDED.data, data_compressed = EXCLUDED.data_compressed,
				dag_hash = EXCLUDED.dag_hash, last_updated = EXCLUDED.last_updated`,
			UUIDv7(), dagID, data, zipped, now, hex.EncodeToString(sum[:]), version)
		return err
	})
}
