package store

// Assets, asset aliases and asset events in the embedded store.
//
// No DAG processor runs beside the embedded store, so nothing declares
// assets ahead of a task: an asset is known once a successful try names it
// as an outlet Asset (name and uri), or once a fixture writes it (PutAsset).
// An asset a try's outlet creates is active unless another active asset
// already holds its name or its uri (Airflow keeps names and uris unique
// among active assets); an asset an alias event creates is not active, as
// Airflow creates it. Events queue no dag runs: the embedded store has no
// DAGs to schedule on them, so created_dagruns is always empty.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/workload"
)

// assetRecord is an asset: bucketAssets, keyed by its id.
type assetRecord struct {
	ID        uint64          `json:"id"`
	Name      string          `json:"name"`
	URI       string          `json:"uri"`
	Group     string          `json:"group"`
	Extra     json.RawMessage `json:"extra"`
	Active    bool            `json:"active"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// aliasRecord is an asset alias: bucketAssetAliases, keyed by its name.
type aliasRecord struct {
	ID     uint64   `json:"id"`
	Name   string   `json:"name"`
	Group  string   `json:"group"`
	Assets []uint64 `json:"assets,omitempty"`
}

// eventRecord is an asset event: bucketAssetEvents, keyed by its id.
type eventRecord struct {
	ID             int64           `json:"id"`
	AssetID        uint64          `json:"asset_id"`
	Timestamp      time.Time       `json:"timestamp"`
	Extra          json.RawMessage `json:"extra"`
	SourceTaskID   *string         `json:"source_task_id,omitempty"`
	SourceDagID    *string         `json:"source_dag_id,omitempty"`
	SourceRunID    *string         `json:"source_run_id,omitempty"`
	SourceMapIndex *int            `json:"source_map_index,omitempty"`
	PartitionKey   *string         `json:"partition_key,omitempty"`
	Aliases        []string        `json:"aliases,omitempty"`
}

func idKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// eventIndexKey is prefix ‖ time ‖ event id: an asset's (or an alias's)
// events in timestamp order.
func eventIndexKey(prefix []byte, t time.Time, id int64) []byte {
	k := appendTime(append([]byte(nil), prefix...), t)
	return binary.BigEndian.AppendUint64(k, uint64(id))
}

// assetTx reads and writes assets inside one transaction.
type assetTx struct{ tx *bolt.Tx }

func (a assetTx) get(id []byte) (*assetRecord, error) {
	b, err := bucket(a.tx, bucketAssets)
	if err != nil {
		return nil, err
	}
	data := b.Get(id)
	if data == nil {
		return nil, nil
	}
	var r assetRecord
	if err := decodeJSON("asset", data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (a assetTx) byIndex(index []byte, key []byte) (*assetRecord, error) {
	b, err := bucket(a.tx, index)
	if err != nil {
		return nil, err
	}
	id := b.Get(key)
	if id == nil {
		return nil, nil
	}
	return a.get(id)
}

func (a assetTx) byKey(k workload.AssetKey) (*assetRecord, error) {
	return a.byIndex(bucketAssetKeys, tuple(k.Name, k.URI))
}

func (a assetTx) activeByName(name string) (*assetRecord, error) {
	return a.byIndex(bucketAssetActiveNames, []byte(name))
}

func (a assetTx) activeByURI(uri string) (*assetRecord, error) {
	return a.byIndex(bucketAssetActiveURIs, []byte(uri))
}

// ActiveByKey, ActiveByName and ActiveByURI are workload.ActiveAssetLookup.
func (a assetTx) ActiveByKey(k workload.AssetKey) (bool, error) {
	r, err := a.byKey(k)
	return r != nil && r.Active, err
}

func (a assetTx) ActiveByName(name string) (workload.AssetKey, bool, error) {
	r, err := a.activeByName(name)
	if r == nil || err != nil {
		return workload.AssetKey{}, false, err
	}
	return workload.AssetKey{Name: r.Name, URI: r.URI}, true, nil
}

func (a assetTx) ActiveByURI(uri string) (workload.AssetKey, bool, error) {
	r, err := a.activeByURI(uri)
	if r == nil || err != nil {
		return workload.AssetKey{}, false, err
	}
	return workload.AssetKey{Name: r.Name, URI: r.URI}, true, nil
}

// ensure returns the asset named k, creating it when missing. A created
// asset is active when active is asked for and neither its name nor its
// uri belongs to another active asset.
func (a assetTx) ensure(k workload.AssetKey, group string, extra json.RawMessage, active bool, now time.Time) (*assetRecord, error) {
	if r, err := a.byKey(k); r != nil || err != nil {
		return r, err
	}
	if err := checkKey("asset", tuple(k.Name, k.URI)); err != nil {
		return nil, err
	}
	if active {
		byName, err := a.activeByName(k.Name)
		if err != nil {
			return nil, err
		}
		byURI, err := a.activeByURI(k.URI)
		if err != nil {
			return nil, err
		}
		active = byName == nil && byURI == nil
	}
	if len(extra) == 0 {
		extra = json.RawMessage("{}")
	}
	r := &assetRecord{Name: k.Name, URI: k.URI, Group: group, Extra: extra, Active: active,
		CreatedAt: now, UpdatedAt: now}
	return r, a.put(r)
}

// put stores r (assigning an id to a new one) and its indexes.
func (a assetTx) put(r *assetRecord) error {
	b, err := bucket(a.tx, bucketAssets)
	if err != nil {
		return err
	}
	if r.ID == 0 {
		if r.ID, err = b.NextSequence(); err != nil {
			return err
		}
	}
	enc, err := encodeJSON("asset", r)
	if err != nil {
		return err
	}
	id := idKey(r.ID)
	if err := put(b, id, enc); err != nil {
		return err
	}
	keys, err := bucket(a.tx, bucketAssetKeys)
	if err != nil {
		return err
	}
	if err := put(keys, tuple(r.Name, r.URI), id); err != nil {
		return err
	}
	if !r.Active {
		return nil
	}
	names, uris, err := buckets(a.tx, bucketAssetActiveNames, bucketAssetActiveURIs)
	if err != nil {
		return err
	}
	if err := put(names, []byte(r.Name), id); err != nil {
		return err
	}
	return put(uris, []byte(r.URI), id)
}

// alias returns the alias with that name, created (group "") when missing.
func (a assetTx) alias(name string) (*aliasRecord, error) {
	b, err := bucket(a.tx, bucketAssetAliases)
	if err != nil {
		return nil, err
	}
	if err := checkKey("asset alias", []byte(name)); err != nil {
		return nil, err
	}
	var r aliasRecord
	if data := b.Get([]byte(name)); data != nil {
		return &r, decodeJSON("asset alias "+name, data, &r)
	}
	if r.ID, err = b.NextSequence(); err != nil {
		return nil, err
	}
	r.Name = name
	return &r, a.putAlias(&r)
}

func (a assetTx) putAlias(r *aliasRecord) error {
	b, err := bucket(a.tx, bucketAssetAliases)
	if err != nil {
		return err
	}
	enc, err := encodeJSON("asset alias", r)
	if err != nil {
		return err
	}
	return put(b, []byte(r.Name), enc)
}

// addEvent stores e (an id assigned when zero) and indexes it under its
// asset and its aliases.
func (a assetTx) addEvent(e *eventRecord) error {
	b, err := bucket(a.tx, bucketAssetEvents)
	if err != nil {
		return err
	}
	if e.ID <= 0 {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.ID = int64(seq)
	} else if b.Get(idKey(uint64(e.ID))) != nil {
		return fmt.Errorf("store: asset event %d: %w", e.ID, workload.ErrAlreadyExists)
	} else if uint64(e.ID) > b.Sequence() {
		if err := b.SetSequence(uint64(e.ID)); err != nil {
			return err
		}
	}
	enc, err := encodeJSON("asset event", e)
	if err != nil {
		return err
	}
	if err := put(b, idKey(uint64(e.ID)), enc); err != nil {
		return err
	}
	byAsset, byAlias, err := buckets(a.tx, bucketAssetEventsByAsset, bucketAssetEventsByAlias)
	if err != nil {
		return err
	}
	if err := put(byAsset, eventIndexKey(idKey(e.AssetID), e.Timestamp, e.ID), nil); err != nil {
		return err
	}
	for _, name := range e.Aliases {
		if err := put(byAlias, eventIndexKey(tuple(name), e.Timestamp, e.ID), nil); err != nil {
			return err
		}
	}
	return nil
}

// registerAssetChanges records the asset events of a try that has just
// succeeded (see workload.OutletPlan), in the transaction that stores its
// state: its outlet Assets are registered first (see the file comment).
func registerAssetChanges(tx *bolt.Tx, ti *workload.TaskInstance, now time.Time) error {
	if len(ti.TaskOutlets) == 0 && len(ti.OutletEvents) == 0 {
		return nil
	}
	outlets, events, err := workload.ParseOutlets(ti.TaskOutlets, ti.OutletEvents)
	if err != nil {
		return fmt.Errorf("store: outlets of %s: %w", ti.ID, err)
	}
	a := assetTx{tx}
	for _, o := range outlets {
		if o.Type != "Asset" || o.Name == nil || o.URI == nil || *o.Name == "" || *o.URI == "" ||
			!storable(*o.Name, *o.URI) {
			continue
		}
		if _, err := a.ensure(workload.AssetKey{Name: *o.Name, URI: *o.URI}, "asset", nil, true, now); err != nil {
			return err
		}
	}
	dr, err := getDagRun(tx, ti.DagID, ti.RunID)
	if err != nil {
		return err
	}
	var runPartitionKey *string
	if dr != nil {
		runPartitionKey = dr.PartitionKey
	}
	plan, err := workload.PlanOutlets(outlets, events, runPartitionKey, a)
	if err != nil {
		return fmt.Errorf("store: outlets of %s: %w", ti.ID, err)
	}
	source := func(e *eventRecord) {
		taskID, dagID, runID, mapIndex := ti.TaskID, ti.DagID, ti.RunID, ti.MapIndex
		e.SourceTaskID, e.SourceDagID, e.SourceRunID, e.SourceMapIndex = &taskID, &dagID, &runID, &mapIndex
		e.Timestamp = now
	}
	for _, d := range plan.Direct {
		r, err := a.byKey(d.Asset)
		if err != nil {
			return err
		}
		if r == nil {
			continue
		}
		e := &eventRecord{AssetID: r.ID, Extra: d.Extra, PartitionKey: d.PartitionKey}
		source(e)
		if err := a.addEvent(e); err != nil {
			return err
		}
	}
	for _, ae := range plan.Alias {
		if !storable(append([]string{ae.Asset.Name, ae.Asset.URI}, ae.Aliases...)...) {
			continue
		}
		r, err := a.ensure(ae.Asset, "asset", ae.AssetExtra, false, now)
		if err != nil {
			return err
		}
		aliases := append([]string(nil), ae.Aliases...)
		sort.Strings(aliases)
		for _, name := range aliases {
			al, err := a.alias(name)
			if err != nil {
				return err
			}
			if !containsID(al.Assets, r.ID) {
				al.Assets = append(al.Assets, r.ID)
				if err := a.putAlias(al); err != nil {
					return err
				}
			}
		}
		e := &eventRecord{AssetID: r.ID, Extra: ae.Extra, PartitionKey: ae.PartitionKey, Aliases: aliases}
		source(e)
		if err := a.addEvent(e); err != nil {
			return err
		}
	}
	return nil
}

// maxAssetName is the width of Airflow's asset and alias name, uri and
// group columns. Airflow's database refuses a longer one (and the try then
// fails); the embedded store leaves such an outlet unregistered.
const maxAssetName = 1500

func storable(names ...string) bool {
	for _, n := range names {
		if utf8.RuneCountInString(n) > maxAssetName {
			return false
		}
	}
	return true
}

func containsID(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// AssetFixture is an asset written directly, as Airflow's DAG processor
// (or a test) would have written it.
type AssetFixture struct {
	Name, URI, Group string
	Extra            json.RawMessage
	Active           bool
}

// PutAsset stores an asset, replacing the group, extra and activeness of
// one with the same name and uri.
func (db *DB) PutAsset(ctx context.Context, f AssetFixture) error {
	now := db.now().UTC()
	return db.write(ctx, func(tx *bolt.Tx) error {
		a := assetTx{tx}
		k := workload.AssetKey{Name: f.Name, URI: f.URI}
		r, err := a.byKey(k)
		if err != nil {
			return err
		}
		if r == nil {
			if err := checkKey("asset", tuple(f.Name, f.URI)); err != nil {
				return err
			}
			r = &assetRecord{Name: f.Name, URI: f.URI, CreatedAt: now}
		} else if r.Active && !f.Active {
			names, uris, err := buckets(tx, bucketAssetActiveNames, bucketAssetActiveURIs)
			if err != nil {
				return err
			}
			if err := del(names, []byte(r.Name)); err != nil {
				return err
			}
			if err := del(uris, []byte(r.URI)); err != nil {
				return err
			}
		}
		r.Group, r.Extra, r.Active, r.UpdatedAt = f.Group, f.Extra, f.Active, now
		if len(r.Extra) == 0 {
			r.Extra = json.RawMessage("{}")
		}
		return a.put(r)
	})
}

// AssetEventFixture is an asset event written directly. ID zero assigns
// the next id; Aliases link the event to those aliases (created when
// missing).
type AssetEventFixture struct {
	ID                        int64
	AssetName, AssetURI       string
	Timestamp                 time.Time
	Extra                     json.RawMessage
	SourceTaskID, SourceDagID *string
	SourceRunID               *string
	SourceMapIndex            *int
	PartitionKey              *string
	Aliases                   []string
}

// PutAssetEvent stores an event of an existing asset (ErrNotFound
// otherwise).
func (db *DB) PutAssetEvent(ctx context.Context, f AssetEventFixture) error {
	return db.write(ctx, func(tx *bolt.Tx) error {
		a := assetTx{tx}
		r, err := a.byKey(workload.AssetKey{Name: f.AssetName, URI: f.AssetURI})
		if err != nil {
			return err
		}
		if r == nil {
			return notFound("asset %s %s", f.AssetName, f.AssetURI)
		}
		for _, name := range f.Aliases {
			al, err := a.alias(name)
			if err != nil {
				return err
			}
			if !containsID(al.Assets, r.ID) {
				al.Assets = append(al.Assets, r.ID)
				if err := a.putAlias(al); err != nil {
					return err
				}
			}
		}
		extra := f.Extra
		if len(extra) == 0 {
			extra = json.RawMessage("{}")
		}
		return a.addEvent(&eventRecord{ID: f.ID, AssetID: r.ID, Timestamp: f.Timestamp.UTC(), Extra: extra,
			SourceTaskID: f.SourceTaskID, SourceDagID: f.SourceDagID, SourceRunID: f.SourceRunID,
			SourceMapIndex: f.SourceMapIndex, PartitionKey: f.PartitionKey, Aliases: f.Aliases})
	})
}

func (r *assetRecord) wire() workload.Asset {
	return workload.Asset{Name: r.Name, URI: r.URI, Group: r.Group, Extra: r.Extra}
}

// ActiveAssetByName returns the active asset with that name.
func (db *DB) ActiveAssetByName(ctx context.Context, name string) (*workload.Asset, error) {
	return db.activeAsset(ctx, func(a assetTx) (*assetRecord, error) { return a.activeByName(name) },
		"asset named "+name)
}

// ActiveAssetByURI returns the active asset with that uri.
func (db *DB) ActiveAssetByURI(ctx context.Context, uri string) (*workload.Asset, error) {
	return db.activeAsset(ctx, func(a assetTx) (*assetRecord, error) { return a.activeByURI(uri) },
		"asset with uri "+uri)
}

func (db *DB) activeAsset(ctx context.Context, find func(assetTx) (*assetRecord, error), what string) (*workload.Asset, error) {
	var out *workload.Asset
	err := db.view(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAssets) == nil {
			return nil
		}
		r, err := find(assetTx{tx})
		if r != nil {
			w := r.wire()
			out = &w
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, notFound("%s", what)
	}
	return out, nil
}

// AssetsByAlias returns the assets associated with the alias.
func (db *DB) AssetsByAlias(ctx context.Context, alias string) ([]workload.Asset, error) {
	out := []workload.Asset{}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAssetAliases)
		if b == nil {
			return nil
		}
		data := b.Get([]byte(alias))
		if data == nil {
			return nil
		}
		var al aliasRecord
		if err := decodeJSON("asset alias "+alias, data, &al); err != nil {
			return err
		}
		a := assetTx{tx}
		for _, id := range al.Assets {
			r, err := a.get(idKey(id))
			if err != nil {
				return err
			}
			if r != nil {
				out = append(out, r.wire())
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AssetEvents returns the events q selects, by timestamp.
func (db *DB) AssetEvents(ctx context.Context, q workload.AssetEventQuery) ([]workload.AssetEvent, error) {
	var out []workload.AssetEvent
	err := db.view(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAssets) == nil {
			return nil
		}
		a := assetTx{tx}
		var prefix []byte
		var index []byte
		if q.ByAlias {
			prefix, index = tuple(q.Alias), bucketAssetEventsByAlias
		} else {
			var r *assetRecord
			var err error
			switch {
			case q.Name != "" && q.URI != "":
				r, err = a.byKey(workload.AssetKey{Name: q.Name, URI: q.URI})
			case q.URI != "":
				r, err = a.activeByURI(q.URI)
			default:
				r, err = a.activeByName(q.Name)
			}
			if r == nil || err != nil {
				return err
			}
			prefix, index = idKey(r.ID), bucketAssetEventsByAsset
		}
		ib, eb, err := buckets(tx, index, bucketAssetEvents)
		if err != nil {
			return err
		}
		assets := map[uint64]*assetRecord{}
		c := ib.Cursor()
		var k []byte
		next := c.Next
		if q.Ascending {
			k, _ = c.Seek(prefix)
		} else {
			// The last key of the prefix: seek past it and step back.
			k, _ = c.Seek(append(append([]byte(nil), prefix...), 0xFF, 0xFF))
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
			next = c.Prev
		}
		for ; k != nil && hasPrefix(k, prefix); k, _ = next() {
			if q.Limit != nil && len(out) >= *q.Limit {
				break
			}
			id := k[len(k)-8:]
			data := eb.Get(id)
			if data == nil {
				return fmt.Errorf("store: asset event index names a missing event: %w", ErrCorrupt)
			}
			var e eventRecord
			if err := decodeJSON("asset event", data, &e); err != nil {
				return err
			}
			ar := assets[e.AssetID]
			if ar == nil {
				if ar, err = a.get(idKey(e.AssetID)); err != nil {
					return err
				}
				if ar == nil {
					return fmt.Errorf("store: asset event %d names a missing asset: %w", e.ID, ErrCorrupt)
				}
				assets[e.AssetID] = ar
			}
			w := workload.AssetEvent{ID: e.ID, Timestamp: e.Timestamp, Extra: e.Extra, Asset: ar.wire(),
				CreatedDagRuns: []workload.DagRunAssetReference{}, SourceTaskID: e.SourceTaskID,
				SourceDagID: e.SourceDagID, SourceRunID: e.SourceRunID, SourceMapIndex: e.SourceMapIndex,
				PartitionKey: e.PartitionKey}
			if q.Matches(&w) {
				out = append(out, w)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func hasPrefix(k, prefix []byte) bool {
	return len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix)
}

// InactiveAssets answers validate-inlets-and-outlets. No DAG processor
// serializes DAGs into the embedded store: a task's inlets and outlets are
// known only from its DAG's record (PutDag, workload.Dag.TaskAssets), and a
// task without one there (a DAG known by its runs alone) declares none, as
// Airflow answers for a task it cannot load. An asset is inactive unless the
// store holds it active (registered by a try's outlet or by PutAsset).
func (db *DB) InactiveAssets(ctx context.Context, tiID string) ([]workload.AssetProfile, error) {
	var out []workload.AssetProfile
	err := db.view(ctx, func(tx *bolt.Tx) error {
		ti, err := db.getTI(tx, tiID)
		if err != nil {
			return err
		}
		if ti == nil {
			return notFound("task instance %s", tiID)
		}
		d, err := getDag(tx, ti.DagID)
		if err != nil {
			return err
		}
		var declared workload.TaskAssets
		if d != nil {
			declared = d.TaskAssets[ti.TaskID]
		}
		out, err = declared.InactiveAssets(assetTx{tx}.ActiveByKey)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
