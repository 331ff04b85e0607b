package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

// Records are the JSON of the workload types: readable with any bbolt tool
// and following the workload types without a hand-kept codec. Decoding a
// task instance costs about 10 µs on the 2-core test machine
// (BenchmarkTaskInstance), too much for the write every running task makes
// every few seconds: heartbeats therefore never rewrite the record (see
// heartbeats.go). XComs are the other exception, see encodeXCom.

// decodeJSON decodes a stored record into v; a failure wraps ErrCorrupt.
func decodeJSON(what string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("store: decode %s: %w: %v", what, ErrCorrupt, err)
	}
	return nil
}

// encodeJSON encodes a record. It fails only for values that are not valid
// JSON themselves (an invalid json.RawMessage), which is the caller's error,
// not corruption.
func encodeJSON(what string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("store: encode %s: %w", what, err)
	}
	return b, nil
}

func decodeTI(id string, data []byte) (*workload.TaskInstance, error) {
	var ti workload.TaskInstance
	if err := decodeJSON("task instance "+id, data, &ti); err != nil {
		return nil, err
	}
	return &ti, nil
}

func decodeDagRun(dagID, runID string, data []byte) (*workload.DagRun, error) {
	var dr workload.DagRun
	if err := decodeJSON("dag run "+dagID+"/"+runID, data, &dr); err != nil {
		return nil, err
	}
	return &dr, nil
}

// xcomFormat is the first byte of an encoded XCom.
const xcomFormat = 1

// encodeXCom stores an XCom's timestamp and run_after (12 bytes each, as
// appendTime) followed by the value verbatim. The value is opaque serialized
// JSON the gateway never interprets, so it is kept byte for byte rather than
// re-encoded (re-encoding would also fail on a value that is not valid JSON).
// The coordinates are in the key.
func encodeXCom(x workload.XCom) []byte {
	b := make([]byte, 0, 1+2*timeLen+len(x.Value))
	b = append(b, xcomFormat)
	b = appendTime(b, x.Timestamp)
	b = appendTime(b, x.RunAfter)
	return append(b, x.Value...)
}

func decodeXCom(ref workload.XComRef, data []byte) (workload.XCom, error) {
	bad := func(why string) (workload.XCom, error) {
		return workload.XCom{}, fmt.Errorf("store: decode xcom %s/%s/%s/%s[%d]: %s: %w",
			ref.DagID, ref.RunID, ref.TaskID, ref.Key, ref.MapIndex, why, ErrCorrupt)
	}
	if len(data) < 1+2*timeLen || data[0] != xcomFormat {
		return bad("bad header")
	}
	var ts, ra time.Time
	var err error
	rest := data[1:]
	if ts, rest, err = readTime(rest); err != nil {
		return bad("timestamp")
	}
	if ra, rest, err = readTime(rest); err != nil {
		return bad("run_after")
	}
	x := workload.XCom{XComRef: ref, Timestamp: ts, RunAfter: ra}
	if len(rest) > 0 {
		x.Value = append(json.RawMessage(nil), rest...)
	}
	return x, nil
}

// getRecord reads and decodes the JSON record at key in bucket; nil, nil
// when there is none. what names the record in errors ("user", "variable").
func getRecord[T any](db *DB, ctx context.Context, bucket []byte, key, what string) (*T, error) {
	var out *T
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		data := b.Get([]byte(key))
		if data == nil {
			return nil
		}
		out = new(T)
		return decodeJSON(what+" "+key, data, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listRecords decodes every JSON record of bucket in key order. The result
// is never nil, so that it encodes as an empty JSON list.
func listRecords[T any](db *DB, ctx context.Context, bucket []byte, what string) ([]T, error) {
	out := []T{}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, data []byte) error {
			var v T
			if err := decodeJSON(what+" "+string(k), data, &v); err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
