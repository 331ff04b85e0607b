package store

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets. Composite keys are tuples (see appendString): their byte order is
// the order of their components, and a tuple's encoding is a prefix of
// another's exactly when its components are a prefix of the other's, so
// prefix scans select "every run of this dag", "every map index of this
// task", without one id's bytes ever running into the next id's.
var (
	// bucketMeta holds the schema version.
	bucketMeta = []byte("meta")
	// bucketDagRuns: (dag_id, run_id) → DagRun JSON. A dag run is created
	// with its first task instance; its ids and dates (the index keys
	// below) never change afterwards.
	bucketDagRuns = []byte("dag_runs")
	// bucketDagRunsByRunAfter: (dag_id) ‖ time(run_after) ‖ (run_id) → "".
	// include_prior_dates walks it backwards from a run's run_after.
	bucketDagRunsByRunAfter = []byte("dag_runs_by_run_after")
	// bucketDagRunsByLogicalDate: (dag_id) ‖ time(logical_date) ‖ (run_id)
	// → "", for runs that have a logical date. PreviousSuccessfulDagRun
	// walks it backwards.
	bucketDagRunsByLogicalDate = []byte("dag_runs_by_logical_date")
	// bucketTaskInstances: ti id → TaskInstance JSON, every try ever
	// queued (history stays readable by id).
	bucketTaskInstances = []byte("task_instances")
	// bucketCurrentTI: (dag_id, run_id, task_id) ‖ mapindex → ti id of the
	// current try at those coordinates.
	bucketCurrentTI = []byte("task_instance_current")
	// bucketRenderedFields: ti id → rendered template fields JSON.
	bucketRenderedFields = []byte("rendered_fields")
	// bucketVariables: key → Variable JSON; raw keys so that prefix
	// listing is a plain cursor scan in key order.
	bucketVariables = []byte("variables")
	// bucketConnections: conn id → connectionRecord JSON: a Connection
	// whose password and extra may be encrypted (secrets.go).
	bucketConnections = []byte("connections")
	// bucketXComs: (dag_id, run_id, task_id, key) ‖ mapindex → encoded
	// XCom (see encodeXCom); a prefix scan returns every map index of one
	// key in map-index order, -1 first.
	bucketXComs = []byte("xcoms")
	// bucketUsers: user name → auth.User JSON.
	bucketUsers = []byte("users")
	// bucketRevocations: jti → revocation JSON (the token's exp), so that
	// IsRevoked is one Get.
	bucketRevocations = []byte("revocations")
	// bucketComponents: component id → auth.Component JSON.
	bucketComponents = []byte("components")
	// bucketComponentsByName: (kind, name) → component id; keeps (kind,
	// name) unique and lists components in kind, name order.
	bucketComponentsByName = []byte("components_by_name")
	// bucketHeartbeats: ti id → the latest heartbeat time moved out of the
	// heartbeat log (appendTime), newer than the record's when present
	bucketHeartbeats = []byte("heartbeats")
	// bucketAssets: asset id (8 bytes) → assetRecord JSON (assets.go).
	bucketAssets = []byte("assets")
	// bucketAssetKeys: (name, uri) → asset id.
	bucketAssetKeys = []byte("asset_keys")
	// bucketAssetActiveNames and bucketAssetActiveURIs: name, uri → the
	// id of the active asset holding it (one at most each).
	bucketAssetActiveNames = []byte("asset_active_names")
	bucketAssetActiveURIs  = []byte("asset_active_uris")
	// bucketAssetAliases: alias name → aliasRecord JSON.
	bucketAssetAliases = []byte("asset_aliases")
	// bucketAssetEvents: event id (8 bytes) → eventRecord JSON.
	bucketAssetEvents = []byte("asset_events")
	// bucketAssetEventsByAsset: asset id ‖ time ‖ event id → "".
	bucketAssetEventsByAsset = []byte("asset_events_by_asset")
	// bucketAssetEventsByAlias: (alias name) ‖ time ‖ event id → "".
	bucketAssetEventsByAlias = []byte("asset_events_by_alias")
	// bucketHITL: ti id → HITLDetail JSON (Airflow's hitl_detail).
	bucketHITL = []byte("hitl_details")
	// bucketTaskState: (dag_id, run_id, task_id) ‖ mapindex ‖ (key) →
	// taskStateRecord JSON (Airflow's task_state_store).
	bucketTaskState = []byte("task_state_store")
	// bucketAssetState: ("name" or "uri", the asset's name or URI, key) →
	// assetStateRecord JSON (Airflow's asset_state_store, see AssetState).
	bucketAssetState = []byte("asset_state_store")
	// bucketConnectionTests: connection test id → connectionTestRecord
	// JSON (its connection encoded as bucketConnections keeps one).
	bucketConnectionTests = []byte("connection_tests")
	// bucketCallbacks: callback id → workload.Callback JSON.
	bucketCallbacks = []byte("callbacks")
	// bucketJobs: DAG processor Job id (8 bytes, big-endian, from the
	// bucket's sequence) → workload.Job JSON; bucketJobsByRegistration:
	// registration id → Job id; bucketJobsBySession: session id → the id
	// of the session's current Job.
	bucketJobs               = []byte("jobs")
	bucketJobsByRegistration = []byte("jobs_by_registration")
	bucketJobsBySession      = []byte("jobs_by_session")

	// allBuckets are created by Open when missing. The auth buckets and the
	// heartbeats bucket came after schema version 1 without a version bump:
	// they are additive, an older binary ignores them (it then shows the
	// last heartbeat stored in the record), and opening an older file
	// creates them.
	allBuckets = [][]byte{
		bucketMeta, bucketDagRuns, bucketDagRunsByRunAfter, bucketDagRunsByLogicalDate,
		bucketTaskInstances, bucketCurrentTI, bucketRenderedFields,
		bucketVariables, bucketConnections, bucketXComs,
		bucketUsers, bucketRevocations, bucketComponents, bucketComponentsByName,
		bucketHeartbeats,
		bucketAssets, bucketAssetKeys, bucketAssetActiveNames, bucketAssetActiveURIs,
		bucketAssetAliases, bucketAssetEvents, bucketAssetEventsByAsset, bucketAssetEventsByAlias,
		bucketHITL, bucketTaskState, bucketAssetState,
		bucketConnectionTests, bucketCallbacks,
		bucketJobs, bucketJobsByRegistration, bucketJobsBySession,
	}

	keySchemaVersion = []byte("schema_version")
)

// schemaVersion is the layout this code reads and writes. An older binary
// refuses a newer file rather than misreading it.
const schemaVersion = 1

// initSchema creates the buckets of a new file and checks the schema
// version of an existing one. A read-only handle only checks.
func initSchema(bdb *bolt.DB, readOnly bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		raw := meta.Get(keySchemaVersion)
		if raw == nil {
			return nil
		}
		v, err := strconv.Atoi(string(raw))
		if err != nil {
			return fmt.Errorf("store: schema version %q: %w", raw, ErrCorrupt)
		}
		if v > schemaVersion {
			return fmt.Errorf("store: database schema version %d is newer than this binary supports (%d)", v, schemaVersion)
		}
		return nil
	}
	if readOnly {
		return bdb.View(check)
	}
	var inner error
	err := bdb.Update(func(tx *bolt.Tx) error {
		inner = func() error {
			if err := check(tx); err != nil {
				return err
			}
			for _, name := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return fmt.Errorf("store: create bucket %s: %w", name, err)
				}
			}
			meta := tx.Bucket(bucketMeta)
			if meta.Get(keySchemaVersion) != nil {
				return nil
			}
			if err := meta.Put(keySchemaVersion, []byte(strconv.Itoa(schemaVersion))); err != nil {
				return fmt.Errorf("store: write schema version: %w", err)
			}
			return nil
		}()
		return inner
	})
	if inner != nil {
		return inner
	}
	if err != nil {
		return fmt.Errorf("store: initialise schema: %w", err)
	}
	return nil
}

// appendString appends s as one tuple component. A 0x00 byte of s is written
// as 0x00 0xFF and the component ends with 0x00 0x01. Inside a component
// 0x00 is always followed by 0xFF, so the terminator cannot occur in it
// (components are prefix-free, hence "a/b","c" and "a","b/c" differ), and
// since 0x01 < 0xFF and the terminator's 0x00 is below any other byte,
// encoded tuples sort like their components compared one after the other.
func appendString(b []byte, s string) []byte {
	for {
		i := indexZero(s)
		if i < 0 {
			b = append(b, s...)
			return append(b, 0, 1)
		}
		b = append(b, s[:i]...)
		b = append(b, 0, 0xFF)
		s = s[i+1:]
	}
}

func indexZero(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// readString decodes one tuple component from the front of b.
func readString(b []byte) (string, []byte, error) {
	var out []byte
	start := 0
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch b[i+1] {
		case 1:
			if out == nil {
				return string(b[:i]), b[i+2:], nil
			}
			out = append(out, b[start:i]...)
			return string(out), b[i+2:], nil
		case 0xFF:
			out = append(out, b[start:i+1]...)
			i++
			start = i + 1
		default:
			return "", nil, fmt.Errorf("store: key component: bad escape: %w", ErrCorrupt)
		}
	}
	return "", nil, fmt.Errorf("store: key component: no terminator: %w", ErrCorrupt)
}

// appendMapIndex appends a map index as 8 big-endian bytes with the sign bit
// flipped, so that -1 (an unmapped task) sorts before 0, 1, 2, 10.
func appendMapIndex(b []byte, i int) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(int64(i))^(1<<63))
}

func readMapIndex(b []byte) (int, []byte, error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("store: key map index: short: %w", ErrCorrupt)
	}
	return int(int64(binary.BigEndian.Uint64(b) ^ (1 << 63))), b[8:], nil
}

// appendTime appends t as sortable bytes: Unix seconds (sign bit flipped)
// and nanoseconds, big-endian. Unlike UnixNano this covers every year.
func appendTime(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
}

const timeLen = 12

func readTime(b []byte) (time.Time, []byte, error) {
	if len(b) < timeLen {
		return time.Time{}, nil, fmt.Errorf("store: key time: short: %w", ErrCorrupt)
	}
	sec := int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
	nsec := binary.BigEndian.Uint32(b[8:])
	if nsec >= 1e9 {
		return time.Time{}, nil, fmt.Errorf("store: key time: nanoseconds out of range: %w", ErrCorrupt)
	}
	return time.Unix(sec, int64(nsec)).UTC(), b[timeLen:], nil
}

func tuple(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 2
	}
	b := make([]byte, 0, n+8)
	for _, p := range parts {
		b = appendString(b, p)
	}
	return b
}

func dagRunKey(dagID, runID string) []byte { return tuple(dagID, runID) }

func dagRunTimeKey(dagID string, t time.Time, runID string) []byte {
	return appendString(appendTime(tuple(dagID), t), runID)
}

// readDagRunTimeKey splits a key of the by-time dag run indexes.
func readDagRunTimeKey(k []byte) (dagID string, t time.Time, runID string, err error) {
	if dagID, k, err = readString(k); err != nil {
		return
	}
	if t, k, err = readTime(k); err != nil {
		return
	}
	if runID, k, err = readString(k); err != nil {
		return
	}
	if len(k) != 0 {
		err = fmt.Errorf("store: dag run index key: trailing bytes: %w", ErrCorrupt)
	}
	return
}

func currentTIKey(dagID, runID, taskID string, mapIndex int) []byte {
	return appendMapIndex(tuple(dagID, runID, taskID), mapIndex)
}

func xcomKey(dagID, runID, taskID, key string, mapIndex int) []byte {
	return appendMapIndex(tuple(dagID, runID, taskID, key), mapIndex)
}

// readXComKey splits an xcom key after its (dag, run, task) prefix.
func readXComKeyTail(k []byte) (key string, mapIndex int, err error) {
	if key, k, err = readString(k); err != nil {
		return
	}
	if mapIndex, k, err = readMapIndex(k); err != nil {
		return
	}
	if len(k) != 0 {
		err = fmt.Errorf("store: xcom key: trailing bytes: %w", ErrCorrupt)
	}
	return
}

// checkKey refuses keys bbolt cannot store, before a write is submitted.
func checkKey(what string, k []byte) error {
	switch {
	case len(k) == 0:
		return fmt.Errorf("%w: empty %s", ErrInvalidKey, what)
	case len(k) > bolt.MaxKeySize:
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidKey, what, bolt.MaxKeySize)
	}
	return nil
}

// put and del write to b, marking a failure as one that aborts the shared
// transaction (see txFunc).
func put(b *bolt.Bucket, k, v []byte) error {
	if err := b.Put(k, v); err != nil {
		return &abortError{err}
	}
	return nil
}

func del(b *bolt.Bucket, k []byte) error {
	if err := b.Delete(k); err != nil {
		return &abortError{err}
	}
	return nil
}

// bucket returns the named bucket for a write, or an error when it is
// missing: every bucket is created at Open, so a missing one means a damaged
// file. Reads use tx.Bucket directly and treat a missing bucket as empty, so
// that a read-only handle works on any valid file.
func bucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	b := tx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("store: bucket %s missing: %w", name, ErrCorrupt)
	}
	return b, nil
}

// buckets returns two buckets for a write that keeps a record and its index
// together (see bucket).
func buckets(tx *bolt.Tx, a, b []byte) (*bolt.Bucket, *bolt.Bucket, error) {
	ba, err := bucket(tx, a)
	if err != nil {
		return nil, nil, err
	}
	bb, err := bucket(tx, b)
	if err != nil {
		return nil, nil, err
	}
	return ba, bb, nil
}
