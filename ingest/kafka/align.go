package kafka

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/vigil-ot/vigil/ingest"
)

// aligner keeps the partitions of one instance within maxSkew of each
// other in event time. Detectors that compare a device with its group on
// event time (silence, fleet rates) assume the group's devices advance
// together; partitions read independently do not when there is a backlog —
// after a restart, a rebalance or in a replay — and one running minutes
// ahead of another makes the other's devices look silent.
//
// A partition may hand the engine a batch whose first event time is t when
// every other partition that still has records to read has reached
// t - maxSkew: its frontier, the first event time of the batch it waits
// with, or the last event time it sent. The partition with the lowest
// frontier may always go, so the partitions never wait on each other in a
// circle. A caught-up partition (no lag) holds nobody back.
type aligner struct {
	maxSkew int64
	maxWait time.Duration

	mu      sync.Mutex
	changed chan struct{}
	waiters int // goroutines blocked in wait; without any, nobody needs waking
	parts   map[*partState]*alignState
}

type alignState struct {
	frontier int64
	pending  bool
}

func newAligner(maxSkew, maxWait time.Duration) *aligner {
	return &aligner{maxSkew: int64(maxSkew), maxWait: maxWait, changed: make(chan struct{}), parts: map[*partState]*alignState{}}
}

func (a *aligner) notifyLocked() {
	if a.waiters == 0 {
		return
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// wait blocks until ps may send a batch starting at event time tmin, ctx
// ends or maxWait passes; it reports whether it timed out.
func (a *aligner) wait(ctx context.Context, ps *partState, tmin int64) (timedOut bool) {
	var timer <-chan time.Time
	a.mu.Lock()
	st := a.state(ps)
	st.frontier, st.pending = tmin, true
	a.notifyLocked()
	for {
		low := int64(math.MaxInt64)
		for q, qs := range a.parts {
			if q != ps && qs.pending && qs.frontier < low {
				low = qs.frontier
			}
		}
		if low == math.MaxInt64 || low >= tmin-a.maxSkew {
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

// sent records that ps handed the engine event times up to tmax and
// whether more records wait in its partition.
func (a *aligner) sent(ps *partState, tmax int64, pending bool) {
	a.mu.Lock()
	st := a.state(ps)
	if tmax > st.frontier {
		st.frontier = tmax
	}
	st.pending = pending
	a.notifyLocked()
	a.mu.Unlock()
}

// expect starts a generation: the partitions of ps, and only they, are
// pending from the start, before their workers read anything. A partition
// whose worker is still restoring its state then holds the others back
// (up to maxWait a batch) instead of letting them run ahead of it; its
// first batch sets its frontier, and a first fetch that finds it read to
// its end lets the others go (partitionFetcher.caughtUp).
func (a *aligner) expect(ps []*partState) {
	a.mu.Lock()
	clear(a.parts)
	for _, p := range ps {
		a.parts[p] = &alignState{frontier: math.MinInt64, pending: true}
	}
	a.notifyLocked()
	a.mu.Unlock()
}

// leave forgets ps: its worker ended.
func (a *aligner) leave(ps *partState) {
	a.mu.Lock()
	delete(a.parts, ps)
	a.notifyLocked()
	a.mu.Unlock()
}

func (a *aligner) state(ps *partState) *alignState {
	st := a.parts[ps]
	if st == nil {
		st = &alignState{frontier: math.MinInt64}
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
