package kafka

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/vigil-ot/vigil/ingest"
)

// aligner keeps the partitions of one instance within maxSkew of each
// other in event time, and knows which of them have a backlog. Detectors
// that compare a device with its group on event time (silence, fleet
// rates) assume the group's devices advance together; partitions read
// independently do not when there is a backlog — after a restart, a
// rebalance, in a replay, or when records of all partitions are produced
// in one burst — and one running minutes ahead of another makes the
// other's devices look silent.
//
// A partition may hand the engine a batch whose first event time is t when
// every other partition that still has records to read has reached
// t - maxSkew: its frontier, the first event time of the batch it waits
// with, or the last event time it sent. The partition with the lowest
// frontier may always go, so the partitions never wait on each other in a
// circle.
//
// A partition has a backlog (is pending) when its fetcher saw a high-water
// mark beyond what its worker handed the engine: records fetched and not
// yet judged, or not fetched yet. A caught-up partition holds nobody back,
// but "caught up" is only as fresh as the fetch that said so: records
// produced to it just before another partition's records were fetched may
// not have been seen yet. So a batch whose records came with fetch
// response number n (ticks count fetch requests and responses of every
// partition) also waits, when it is more than staleAfter ahead (the
// engine's silence.partition_idle: less makes no device look silent), for
// each caught-up partition to answer a fetch sent after n, unless that
// partition has been quiet (no record fetched for longer than maxWait, the
// start of its generation counting as one): a dark partition must not tax
// every batch of the others with a fetch round trip, which costs up to
// fetch_max_wait when it has nothing. The consumer's backlog, not how far
// behind a partition is in event time, says whether its devices are late
// or silent (Consumer.behind, Engine.SetPartitionBacklog).
type aligner struct {
	maxSkew int64
	maxWait time.Duration
	// staleAfter: a batch waits for a fresh answer of a caught-up
	// partition only when it is this far ahead of it (at least maxSkew):
	// the engine's partition_idle (setStaleAfter), below which being
	// behind makes no device look silent.
	staleAfter int64
	ticks      atomic.Int64

	mu      sync.Mutex
	changed chan struct{}
	waiters int // goroutines blocked in wait; without any, nobody needs waking
	parts   map[*partState]*alignState
	// left is the frontier of partitions whose worker ended, for the
	// next generation (expect) if it assigns them again.
	left map[*partState]int64
}

type alignState struct {
	frontier int64
	// hwm is the end of what may be read as the partition's last fetch
	// response said (math.MaxInt64 before the first), asked is the tick of
	// that fetch's request, handed the offset after what the worker handed
	// the engine (math.MinInt64 before it said), more says the worker
	// holds more batches of what it read (a windowed decoder's).
	hwm, asked, handed int64
	more               bool
	active             time.Time // when it last fetched a record, or joined
}

func (st *alignState) pending() bool { return st.more || st.hwm > st.handed }

func newAligner(maxSkew, maxWait time.Duration) *aligner {
	return &aligner{maxSkew: int64(maxSkew), maxWait: maxWait, staleAfter: int64(maxSkew), changed: make(chan struct{}),
		parts: map[*partState]*alignState{}, left: map[*partState]int64{}}
}

// setStaleAfter sets staleAfter to d, or maxSkew if that is larger.
func (a *aligner) setStaleAfter(d time.Duration) {
	a.mu.Lock()
	a.staleAfter = max(a.maxSkew, int64(d))
	a.mu.Unlock()
}

// tick returns the next tick: a fetcher takes one before it sends a
// request and one when the response came.
func (a *aligner) tick() int64 { return a.ticks.Add(1) }

func (a *aligner) notifyLocked() {
	if a.waiters == 0 {
		return
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// wait blocks until ps may send a batch starting at event time tmin whose
// last record came with the fetch response of tick fetched, ctx ends or
// maxWait passes; it reports whether it timed out.
func (a *aligner) wait(ctx context.Context, ps *partState, tmin, fetched int64) (timedOut bool) {
	var timer <-chan time.Time
	a.mu.Lock()
	st := a.state(ps)
	st.frontier = tmin
	st.more = true
	ps.behind.Store(true)
	a.notifyLocked()
	for {
		if !a.holdsBackLocked(ps, tmin, fetched) {
			a.mu.Unlock()
			return false
		}
		ch := a.changed
		a.waiters++
		a.mu.Unlock()
		if timer == nil {
			t := time.NewTimer(a.maxWait)
			defer t.Stop()
			timer = t.C
		}
		var timedOut, stop bool
		select {
		case <-ch:
		case <-timer:
			timedOut = true
		case <-ctx.Done():
			stop = true
		}
		a.mu.Lock()
		a.waiters--
		if timedOut || stop {
			a.mu.Unlock()
			return timedOut
		}
	}
}

// holdsBackLocked reports whether another partition holds back ps's batch
// starting at tmin, fetched at tick fetched: see aligner.
func (a *aligner) holdsBackLocked(ps *partState, tmin, fetched int64) bool {
	behind, stale := tmin-a.maxSkew, tmin-a.staleAfter
	now := time.Now()
	for q, qs := range a.parts {
		if q == ps || qs.frontier >= behind {
			continue
		}
		if qs.pending() {
			return true
		}
		if qs.frontier < stale && qs.asked < fetched && now.Sub(qs.active) < a.maxWait {
			return true // caught up as of a fetch older than the batch
		}
	}
	return false
}

// fetched records a fetch response of ps: its request took tick asked and
// asked for the records from offset from, it said hwm, and it held records
// or not.
func (a *aligner) fetched(ps *partState, asked, from, hwm int64, records bool) {
	a.mu.Lock()
	st := a.state(ps)
	st.asked, st.hwm = asked, hwm
	if st.handed < 0 {
		// The worker started from no committed offset (FirstOffset,
		// LastOffset): nothing before the first offset fetched is its.
		st.handed = from
	}
	if records {
		st.active = time.Now()
	}
	ps.behind.Store(st.pending())
	a.notifyLocked()
	a.mu.Unlock()
}

// sent records that ps handed the engine event times up to tmax (or none:
// math.MinInt64) and its input before offset handed, and whether it holds
// more batches of what it read.
func (a *aligner) sent(ps *partState, tmax, handed int64, more bool) {
	a.mu.Lock()
	st := a.state(ps)
	if tmax > st.frontier {
		st.frontier = tmax
	}
	st.handed, st.more = handed, more
	ps.behind.Store(st.pending())
	a.notifyLocked()
	a.mu.Unlock()
}

// expect starts a generation: the partitions of ps, and only they, are
// pending from the start, before their workers read anything. A partition
// whose worker is still restoring its state then holds the others back
// (up to maxWait a batch) instead of letting them run ahead of it; its
// first fetch says whether it has records to read. A partition this
// instance kept keeps its frontier.
func (a *aligner) expect(ps []*partState) {
	a.mu.Lock()
	for p, st := range a.parts {
		a.left[p] = st.frontier
	}
	clear(a.parts)
	now := time.Now()
	for _, p := range ps {
		st := &alignState{frontier: math.MinInt64}
		if f, ok := a.left[p]; ok {
			st.frontier = f
		}
		st.hwm, st.handed, st.active = math.MaxInt64, math.MinInt64, now
		a.parts[p] = st
		p.behind.Store(true)
	}
	a.notifyLocked()
	a.mu.Unlock()
}

// leave forgets ps: its worker ended.
func (a *aligner) leave(ps *partState) {
	a.mu.Lock()
	if st := a.parts[ps]; st != nil {
		a.left[ps] = st.frontier
	}
	delete(a.parts, ps)
	ps.behind.Store(false)
	a.notifyLocked()
	a.mu.Unlock()
}

func (a *aligner) state(ps *partState) *alignState {
	st := a.parts[ps]
	if st == nil {
		st = &alignState{frontier: math.MinInt64, hwm: math.MinInt64, handed: math.MinInt64}
		a.parts[ps] = st
	}
	return st
}

// eventTimeRange returns the first and last event time of a batch's rows;
// ok is false without rows.
func eventTimeRange(b *ingest.Batch) (lo, hi int64, ok bool) {
	if b.Record == nil || b.Record.NumRows() == 0 {
		return 0, 0, false
	}
	ts, isTS := b.Record.Column(0).(*array.Timestamp)
	if !isTS {
		return 0, 0, false
	}
	lo, hi = math.MaxInt64, math.MinInt64
	for _, v := range ts.TimestampValues() {
		t := int64(v)
		lo, hi = min(lo, t), max(hi, t)
	}
	return lo, hi, true
}
