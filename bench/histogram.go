// Package bench holds the parts of taskgate's end-to-end benchmark (`make
// bench`) that do not depend on a running server: a latency histogram, the
// parsing of /proc accounting, the scheduler that interleaves a worker's
// calls, and a minimal HTTP/1.1 client for the load generator's hot loop.
//
// The load generator lives in bench/cmd/loadgen and the bare Echo baseline
// server in bench/cmd/baseline; bench/run.sh builds and starts them.
package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram geometry: values below 2×subBuckets nanoseconds are counted
// exactly; above, every power of two is split into subBuckets equal buckets,
// so a bucket is at most 1/subBuckets (1.6 %) of its value wide. Values are
// clamped to maxTracked (about 18 minutes), far beyond any request timeout.
const (
	subBits    = 6
	subBuckets = 1 << subBits
	maxExp     = 40
	maxTracked = 1<<maxExp - 1
	numBuckets = (maxExp - subBits + 1) * subBuckets
)

// Histogram counts durations in log-linear buckets, in the manner of
// HdrHistogram with two significant digits. It needs no allocation per
// value and is safe for concurrent use: Record is two atomic adds, so the
// load generator's workers share one histogram per endpoint class.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

// bucketOf returns the bucket index of v nanoseconds.
func bucketOf(v uint64) int {
	if v > maxTracked {
		v = maxTracked
	}
	if v < 2*subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1 // v>>shift is in [subBuckets, 2×subBuckets)
	return (shift+1)*subBuckets + int(v>>shift) - subBuckets
}

// bucketRange returns the smallest and largest value counted in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < 2*subBuckets {
		return uint64(i), uint64(i)
	}
	shift := i/subBuckets - 1
	mant := uint64(i%subBuckets + subBuckets)
	lo = mant << shift
	return lo, lo + 1<<shift - 1
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(uint64(v))].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of recorded durations.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded duration, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns the duration below or at which a fraction q (0 < q ≤ 1)
// of the recorded values lie: the value of rank ⌈q·n⌉, as the midpoint of
// its bucket (never above the exact maximum). It returns 0 for an empty
// histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketRange(i)
			return min(time.Duration(lo+(hi-lo)/2), h.Max())
		}
	}
	return h.Max()
}

// Merge adds every count of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	for {
		m, om := h.max.Load(), o.max.Load()
		if om <= m || h.max.CompareAndSwap(m, om) {
			return
		}
	}
}
