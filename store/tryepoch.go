package store

import (
	"hash/maphash"
	"sync/atomic"
)

// tryEpochStripes is how many counters TryEpoch spreads the tries over: a
// write moves the counter of its tries' stripe only, so that a try that
// stops running costs the other tries of the server their remembered
// answers only one time in tryEpochStripes.
const tryEpochStripes = 1024

// tryEpochs counts, per stripe of try ids, the commits that may have changed
// a try's status (see TryEpoch).
type tryEpochs struct {
	seed    maphash.Seed
	stripes [tryEpochStripes]atomic.Uint64
	// noted are the tries the writer stored in the transaction being
	// built (noteTI): their stripes move once it has committed, or failed
	// to. Owned by the writer.
	noted []string
}

func (e *tryEpochs) stripe(id string) *atomic.Uint64 {
	return &e.stripes[maphash.String(e.seed, id)%tryEpochStripes]
}

// TryEpoch returns a number that changes whenever TryStatus(id) may answer
// differently than before: a caller that read the number before calling
// TryStatus may keep that answer for as long as TryEpoch(id) still returns
// the same number. It moves once a write that stored the try has committed,
// before the write is acknowledged, so the next request after a change sees
// it; other tries share the number one time in tryEpochStripes, which only
// costs them a read.
func (db *DB) TryEpoch(id string) uint64 { return db.epochs.stripe(id).Load() }

// bumpNoted moves the epochs of the tries the last transaction stored,
// committed or not: a failed commit's outcome is unknown on disk, and
// forgetHot dropped what the writer knew of them.
func (db *DB) bumpNoted() {
	for _, id := range db.epochs.noted {
		db.epochs.stripe(id).Add(1)
	}
	clear(db.epochs.noted)
	db.epochs.noted = db.epochs.noted[:0]
}
