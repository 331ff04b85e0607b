package store

// The heartbeat log: where the time of an admitted heartbeat goes, instead of
// its task instance's record (see heartbeats.go for why). The writer appends
// the admitted heartbeats of a batch to the log and syncs that file once; a
// batch of heartbeats alone never opens a bbolt write transaction.
//
// The log is two files beside the database, <database>-heartbeats and
// <database>-heartbeats-2, written one at a time. Once the one being written
// passes checkpointBytes, the writer switches to the other, and a goroutine
// moves the latest time of each task instance logged in the full one into
// the heartbeats bucket in one transaction, then empties it: heartbeats go on
// meanwhile (a checkpoint of 10 000 task instances takes tens of
// milliseconds). Open and Close move both files' times into the bucket. The
// times logged since the last checkpoint are also kept in memory
// (heartbeatTimes), so that every read of a task instance carries them.
//
// A file is written full of zeros once and then overwritten in place: a sync
// of data written over allocated blocks flushes only that data, where an
// append must also commit the file's new size (measured on ext4 here: 170 µs
// against 256 µs per write and sync). It starts with a header,
// heartbeatLogMagic and a generation number (8 bytes, big-endian) that every
// reset increments. Each record is a CRC-32C (Castagnoli, big-endian) of the
// generation and the rest of the record, the id's length (2 bytes), the id
// and the time (12 bytes, appendTime).
//
// Why it is safe:
//
//   - When a heartbeat is acknowledged, its record is in the file being
//     written, after a header of its generation, and synced (datasync); or,
//     once a checkpoint ran, its time is in the heartbeats bucket, committed
//     before that file was emptied.
//   - Replay stops at the first record that is short or fails its checksum:
//     zeros, a record of an earlier generation left behind by a reset, or the
//     tail of a write torn by a crash, which was never acknowledged. A failed
//     write is not counted and the next batch writes over it.
//   - Emptying a file is writing and syncing a header with the next
//     generation, which makes every record after it stale. Until that sync
//     succeeded no record is written (stale), and a file is emptied only
//     after its times are committed to the bucket: a crash at any point
//     replays them again, and replaying a time twice is harmless (the newer
//     time is kept).
//   - After Open, only the writer goroutine writes the file being written; a
//     running checkpoint owns the other file and heartbeatTimes.draining.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/taskgate/taskgate/internal/atomicfile"
)

const (
	// heartbeatLogSuffix names the log beside the database file.
	heartbeatLogSuffix = "-heartbeats"
	// defaultCheckpointBytes is the size of a log file that triggers a
	// checkpoint: about 310 000 heartbeats of UUID task instances (54
	// bytes each), half a minute of a storm of 10 000 a second. A
	// checkpoint stores one time per task instance however many heartbeats
	// it sent (BenchmarkCheckpoint: ≈ 40 ms for 10 000 task instances,
	// during which writes that need a bbolt transaction wait), so larger
	// files mean rarer checkpoints. Replaying full ones at start-up costs
	// tens of milliseconds.
	defaultCheckpointBytes = 16 << 20
	// heartbeatRecordFixed is a record's size without its id.
	heartbeatRecordFixed = 4 + 2 + timeLen
	// heartbeatLogSlack is preallocated beyond the checkpoint size for the
	// batch that crosses it; a longer one extends the file.
	heartbeatLogSlack = 256 << 10
)

var heartbeatLogMagic = []byte("TGHBLOG2")

// heartbeatHeaderLen is the magic and the generation.
var heartbeatHeaderLen = len(heartbeatLogMagic) + 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// heartbeatTimes are the times logged in the file being written (cur), in
// the file a checkpoint is moving into the bucket (draining, nil when none),
// and those of the last checkpoint (old), kept one checkpoint longer for
// readers whose transaction began before that checkpoint committed. Only the
// writer changes them.
type heartbeatTimes struct {
	mu                 sync.RWMutex
	cur, draining, old map[string]time.Time
}

func (t *heartbeatTimes) get(id string) (time.Time, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var at time.Time
	ok := false
	for _, m := range []map[string]time.Time{t.cur, t.draining, t.old} {
		if v, found := m[id]; found && (!ok || v.After(at)) {
			at, ok = v, true
		}
	}
	return at, ok
}

// record adds the admitted heartbeats of a committed batch.
func (t *heartbeatTimes) record(batch []*request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range batch {
		if r.hb != nil && r.err == nil {
			if at, ok := t.cur[r.hb.id]; !ok || r.hb.recorded.After(at) {
				t.cur[r.hb.id] = r.hb.recorded
			}
		}
	}
}

// startDrain hands cur to a checkpoint and starts an empty cur.
func (t *heartbeatTimes) startDrain() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.draining, t.cur = t.cur, make(map[string]time.Time, len(t.cur))
}

// finishDrain records that the checkpoint stored draining.
func (t *heartbeatTimes) finishDrain() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.old, t.draining = t.draining, nil
}

// drainAll hands everything logged to a final checkpoint: it returns the
// union of draining and cur, which then become old.
func (t *heartbeatTimes) drainAll() map[string]time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	all := maps.Clone(t.cur)
	mergeTimes(all, t.draining)
	t.old, t.cur, t.draining = all, map[string]time.Time{}, nil
	return all
}

// mergeTimes keeps in dst the newer time of each id of src.
func mergeTimes(dst, src map[string]time.Time) {
	for id, at := range src {
		if cur, ok := dst[id]; !ok || at.After(cur) {
			dst[id] = at
		}
	}
}

// recordCRC is the checksum of a record of generation gen, body being the
// record without its checksum.
func recordCRC(gen uint64, body []byte) uint32 {
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], gen)
	return crc32.Update(crc32.Checksum(g[:], castagnoli), castagnoli, body)
}

func appendHeartbeatRecord(b []byte, gen uint64, id string, at time.Time) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	b = appendTime(b, at)
	binary.BigEndian.PutUint32(b[start:], recordCRC(gen, b[start+4:]))
	return b
}

// parseHeartbeatLog reads a log and returns its generation, the latest time
// of each task instance in it and the length of its valid part. Bytes after
// the first bad record are ignored. A header of zeros, or cut short, is an
// empty log (a crash while it was created); a file that is not a heartbeat
// log is an error wrapping ErrCorrupt. The log is read in pieces: it is
// mostly zeros, and as large as the checkpoint size.
func parseHeartbeatLog(r io.Reader) (gen uint64, times map[string]time.Time, valid int64, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	// read fills b, reporting false at the end of the input.
	read := func(b []byte) (bool, error) {
		_, err := io.ReadFull(br, b)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		} else if err != nil {
			return false, fmt.Errorf("store: heartbeat log: %w", err)
		}
		return true, nil
	}
	times = map[string]time.Time{}
	head := make([]byte, heartbeatHeaderLen)
	n, err := io.ReadFull(br, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, nil, 0, fmt.Errorf("store: heartbeat log: %w", err)
	}
	if head = head[:n]; n < heartbeatHeaderLen || !bytes.HasPrefix(head, heartbeatLogMagic) {
		if bytes.HasPrefix(heartbeatLogMagic, bytes.TrimRight(head, "\x00")) ||
			bytes.HasPrefix(head, heartbeatLogMagic) {
			return 0, times, 0, nil
		}
		return 0, nil, 0, fmt.Errorf("store: heartbeat log: bad header: %w", ErrCorrupt)
	}
	gen = binary.BigEndian.Uint64(head[len(heartbeatLogMagic):])
	valid = int64(heartbeatHeaderLen)
	rec := make([]byte, 0, 128)
	for {
		rec = rec[:6]
		if ok, err := read(rec); !ok {
			return gen, times, valid, err
		}
		n := int(binary.BigEndian.Uint16(rec[4:]))
		if n == 0 {
			return gen, times, valid, nil
		}
		size := heartbeatRecordFixed + n
		rec = slices.Grow(rec, size-len(rec))[:size]
		if ok, err := read(rec[6:]); !ok {
			return gen, times, valid, err
		}
		if recordCRC(gen, rec[4:]) != binary.BigEndian.Uint32(rec) {
			return gen, times, valid, nil
		}
		at, _, err := readTime(rec[6+n:])
		if err != nil {
			return gen, times, valid, nil
		}
		id := string(rec[6 : 6+n])
		if prev, ok := times[id]; !ok || at.After(prev) {
			times[id] = at
		}
		valid += int64(size)
	}
}

// heartbeatLog is the open log. After Open only the writer goroutine uses it.
type heartbeatLog struct {
	f   *os.File
	gen uint64 // generation of the records being written
	// stale is set while the header on disk may not be gen's: no record
	// is written until a reset succeeds.
	stale bool
	size  int64  // bytes of this generation known to be written and synced
	buf   []byte // records of the batch being committed
	// checkpointAt is the size that triggers a checkpoint.
	checkpointAt int64
}

// heartbeatLogSuffixes name the log's two files beside the database.
var heartbeatLogSuffixes = [2]string{heartbeatLogSuffix, heartbeatLogSuffix + "-2"}

// openHeartbeatLog opens (creating) the two files of the log of the
// database at dbPath, moves what they hold into the heartbeats bucket and
// empties them. A read-only database instead keeps the logged times in
// memory and leaves the files alone.
func (db *DB) openHeartbeatLog(dbPath string, checkpointAt int64) error {
	if db.readOnly {
		for _, suffix := range heartbeatLogSuffixes {
			f, err := os.Open(dbPath + suffix)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				return fmt.Errorf("store: heartbeat log: %w", err)
			}
			_, times, _, err := parseHeartbeatLog(f)
			f.Close()
			if err != nil {
				return err
			}
			mergeTimes(db.times.cur, times)
		}
		return nil
	}
	var logs [2]*heartbeatLog
	closeAll := func() {
		for _, l := range logs {
			if l != nil {
				_ = l.f.Close()
			}
		}
	}
	all := map[string]time.Time{}
	for i, suffix := range heartbeatLogSuffixes {
		path := dbPath + suffix
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			closeAll()
			return fmt.Errorf("store: heartbeat log: %w", err)
		}
		logs[i] = &heartbeatLog{f: f, checkpointAt: checkpointAt}
		if err := logs[i].recover(path, all); err != nil {
			closeAll()
			return err
		}
	}
	if len(all) > 0 {
		if err := db.bolt.Update(func(tx *bolt.Tx) error { return putHeartbeats(tx, all) }); err != nil {
			closeAll()
			return fmt.Errorf("store: heartbeat log: replay: %w", err)
		}
	}
	for _, l := range logs {
		if err := l.reset(); err != nil {
			closeAll()
			return err
		}
	}
	// The files may be new: make their directory entries durable too.
	if err := atomicfile.SyncDir(filepath.Dir(dbPath)); err != nil {
		closeAll()
		return err
	}
	db.hblog, db.spare = logs[0], logs[1]
	return nil
}

// recover reads what the file at path logged into times and fills the file
// with zeros up to its working size; reset then empties it.
func (l *heartbeatLog) recover(path string, times map[string]time.Time) error {
	st, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("store: heartbeat log: %w", err)
	}
	gen, logged, _, err := parseHeartbeatLog(io.NewSectionReader(l.f, 0, st.Size()))
	if err != nil {
		return fmt.Errorf("%w (%s)", err, path)
	}
	mergeTimes(times, logged)
	if want := l.checkpointAt + heartbeatLogSlack; st.Size() < want {
		if err := writeZeros(l.f, st.Size(), want); err != nil {
			return fmt.Errorf("store: heartbeat log: preallocate: %w", err)
		}
	}
	l.gen = gen
	return nil
}

// writeZeros fills f with zeros from offset from to offset to.
func writeZeros(f *os.File, from, to int64) error {
	zeros := make([]byte, 64<<10)
	for off := from; off < to; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), to-off)], off); err != nil {
			return err
		}
	}
	return nil
}

// putHeartbeats stores times in the heartbeats bucket, keeping a newer time
// already stored.
func putHeartbeats(tx *bolt.Tx, times map[string]time.Time) error {
	b, err := bucket(tx, bucketHeartbeats)
	if err != nil {
		return err
	}
	// In key order, bbolt walks its tree once instead of jumping around
	// it for every key.
	for _, id := range slices.Sorted(maps.Keys(times)) {
		at := times[id]
		if old := b.Get([]byte(id)); old != nil {
			if t, _, err := readTime(old); err == nil && !at.After(t) {
				continue
			}
		}
		// bbolt keeps the value until the commit: one buffer each.
		if err := b.Put([]byte(id), appendTime(make([]byte, 0, timeLen), at)); err != nil {
			return fmt.Errorf("store: heartbeat of %s: %w", id, err)
		}
	}
	return nil
}

// reset empties the log: a header with the next generation makes every
// record after it stale.
func (l *heartbeatLog) reset() error {
	l.stale = true
	l.gen++
	header := binary.BigEndian.AppendUint64(append([]byte(nil), heartbeatLogMagic...), l.gen)
	if _, err := l.f.WriteAt(header, 0); err != nil {
		return fmt.Errorf("store: heartbeat log: %w", err)
	}
	if err := datasync(l.f); err != nil {
		return fmt.Errorf("store: heartbeat log: %w", err)
	}
	l.stale = false
	l.size = int64(len(header))
	return nil
}

// write appends the batch's records and syncs them. On failure nothing is
// counted and the next batch writes over whatever part reached the file.
func (l *heartbeatLog) write() error {
	if l.stale {
		// Everything logged before the failed reset is in the bucket.
		if err := l.reset(); err != nil {
			return err
		}
	}
	if _, err := l.f.WriteAt(l.buf, l.size); err != nil {
		return fmt.Errorf("store: heartbeat log: %w", err)
	}
	if err := datasync(l.f); err != nil {
		return fmt.Errorf("store: heartbeat log: %w", err)
	}
	l.size += int64(len(l.buf))
	return nil
}

// maybeCheckpoint runs on the writer after each batch: it takes note of a
// checkpoint that finished, retries one that failed, and starts one when
// the file being written is full. A checkpoint runs in its own goroutine,
// on the other file and on times.draining, which nothing else writes: the
// writer goes on logging heartbeats into an empty file meanwhile (writes
// that need a bbolt transaction wait for the checkpoint's).
func (db *DB) maybeCheckpoint() {
	if db.ckpt != nil {
		select {
		case err := <-db.ckpt:
			db.ckpt = nil
			if obs := db.observer(); obs != nil {
				obs.ObserveCheckpoint(err == nil)
			}
			if err == nil {
				db.checkpoints.Add(1)
				db.times.finishDrain()
			}
		default:
			return
		}
	}
	switch {
	case db.times.draining != nil:
		// The last checkpoint failed: its file is not empty yet, so it
		// is tried again rather than switched to.
	case db.hblog.size >= db.hblog.checkpointAt:
		db.times.startDrain()
		db.hblog, db.spare = db.spare, db.hblog
	default:
		return
	}
	drain, full, done := db.times.draining, db.spare, make(chan error, 1)
	go func() { done <- checkpointLog(db.bolt, drain, full) }()
	db.ckpt = done
}

// checkpointLog stores times, all logged in l, and empties l. A failure
// leaves l as it is, to be tried again or replayed by the next Open.
func checkpointLog(bdb *bolt.DB, times map[string]time.Time, l *heartbeatLog) error {
	if len(times) > 0 {
		if err := bdb.Update(func(tx *bolt.Tx) error { return putHeartbeats(tx, times) }); err != nil {
			return fmt.Errorf("store: heartbeat checkpoint: %w", err)
		}
	}
	return l.reset()
}

// checkpointAll moves everything logged into the bucket and empties both
// files, once the writer has stopped (Close): it waits for a running
// checkpoint first.
func (db *DB) checkpointAll() error {
	if db.ckpt != nil {
		if err := <-db.ckpt; err == nil {
			db.times.finishDrain()
		}
		db.ckpt = nil
	}
	if err := checkpointLog(db.bolt, db.times.drainAll(), db.hblog); err != nil {
		return err
	}
	db.checkpoints.Add(1)
	return db.spare.reset()
}
