package kafka

import (
	"context"
	"math"
	"testing"
	"time"
)

// report makes ps's latest fetch say the partition ends at offset 10,
// and its worker hand the engine event times up to tmax and the records
// below 10, or below 5 when pending (a backlog).
func report(a *aligner, ps *partState, tmax int64, pending bool) {
	a.fetched(ps, a.tick(), 10, 10, false)
	handed := int64(10)
	if pending {
		handed = 5
	}
	a.sent(ps, tmax, handed, false)
}

func TestAlignerHoldsThePartitionAhead(t *testing.T) {
	a := newAligner(time.Minute, 5*time.Second)
	slow, fast := &partState{}, &partState{}
	minute := int64(time.Minute)
	report(a, slow, 10*minute, true)
	report(a, fast, 10*minute, true)

	released := make(chan bool, 1)
	go func() { released <- a.wait(context.Background(), fast, 30*minute, 0) }()
	select {
	case <-released:
		t.Fatal("a partition 20 minutes ahead of one with a backlog was not held")
	case <-time.After(50 * time.Millisecond):
	}
	if !slow.behind.Load() {
		t.Fatal("the partition with a backlog does not say it is behind")
	}
	// The slow partition's own next batch is not held: it has the lowest
	// frontier.
	if a.wait(context.Background(), slow, 11*minute, 0) {
		t.Fatal("the partition furthest behind was held")
	}
	report(a, slow, 29*minute, true)
	select {
	case timedOut := <-released:
		if timedOut {
			t.Fatal("released by the timeout, not by the slow partition's progress")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the partition ahead was not released once the other caught up")
	}
}

func TestAlignerIgnoresCaughtUpPartitions(t *testing.T) {
	a := newAligner(time.Minute, 5*time.Second)
	idle, busy := &partState{}, &partState{}
	report(a, idle, 0, false) // no backlog: live, just quiet
	if idle.behind.Load() {
		t.Fatal("a caught-up partition says it is behind")
	}
	start := time.Now()
	if a.wait(context.Background(), busy, int64(time.Hour), 0) || time.Since(start) > time.Second {
		t.Fatal("a caught-up partition held back another")
	}
	report(a, idle, 0, true)
	a.leave(idle)
	if a.wait(context.Background(), busy, int64(2*time.Hour), 0) {
		t.Fatal("a partition that left still held back another")
	}
}

// A partition caught up as of a fetch sent before another partition's
// records were fetched may have records it has not seen yet (a burst
// produced to every partition at once): the batch ahead waits for its next
// fetch, which finds them, and then for the records themselves.
func TestAlignerWaitsForAFreshCaughtUp(t *testing.T) {
	a := newAligner(time.Minute, 5*time.Second)
	quiet, busy := &partState{}, &partState{}
	a.expect([]*partState{quiet, busy})
	a.sent(quiet, 0, 10, false)
	a.fetched(quiet, a.tick(), 10, 10, true) // it read records, then caught up
	fetched := a.tick()                      // busy's burst arrives
	released := make(chan bool, 1)
	go func() { released <- a.wait(context.Background(), busy, int64(time.Hour), fetched) }()
	select {
	case <-released:
		t.Fatal("a batch an hour ahead went before the caught-up partition fetched again")
	case <-time.After(50 * time.Millisecond):
	}
	a.fetched(quiet, a.tick(), 10, 20, true) // its next fetch finds its share of the burst
	select {
	case <-released:
		t.Fatal("a batch an hour ahead went while the other partition had a backlog")
	case <-time.After(50 * time.Millisecond):
	}
	if !quiet.behind.Load() {
		t.Fatal("the partition with records to judge does not say it is behind")
	}
	a.sent(quiet, int64(time.Hour), 20, false)
	if timedOut := <-released; timedOut {
		t.Fatal("released by the timeout, not by the other partition's progress")
	}

	// A fresh fetch that finds nothing releases the batch at once.
	fetched = a.tick()
	go func() { released <- a.wait(context.Background(), busy, int64(3*time.Hour), fetched) }()
	a.fetched(quiet, a.tick(), 20, 20, false)
	if timedOut := <-released; timedOut {
		t.Fatal("a fresh fetch that found the partition caught up did not release the batch")
	}
}

// A partition that has fetched nothing for longer than maxWait is dark: it
// does not make every batch of the others wait for its next fetch.
func TestAlignerDoesNotWaitForADarkPartition(t *testing.T) {
	a := newAligner(time.Minute, 30*time.Millisecond)
	dark, busy := &partState{}, &partState{}
	a.expect([]*partState{dark, busy})
	a.sent(dark, 0, 10, false)
	a.fetched(dark, a.tick(), 10, 10, false)
	deadline := time.Now().Add(5 * time.Second)
	for a.wait(context.Background(), busy, int64(time.Hour), a.tick()) {
		if time.Now().After(deadline) {
			t.Fatal("a partition dark for longer than maxWait still holds others back")
		}
	}
}

func TestAlignerTimesOut(t *testing.T) {
	a := newAligner(time.Minute, 30*time.Millisecond)
	stuck, ahead := &partState{}, &partState{}
	report(a, stuck, 0, true)
	if !a.wait(context.Background(), ahead, int64(time.Hour), 0) {
		t.Fatal("wait behind a stuck partition did not time out")
	}
}

// A worker that starts without a committed offset (FirstOffset) has
// handed nothing below the first offset its fetcher asks for: an empty
// partition is caught up, not behind for ever.
func TestAlignerEmptyPartitionWithoutCommittedOffset(t *testing.T) {
	a := newAligner(time.Minute, 5*time.Second)
	empty := &partState{}
	a.expect([]*partState{empty})
	a.sent(empty, math.MinInt64, -2, false) // kafkago.FirstOffset
	a.fetched(empty, a.tick(), 0, 0, false)
	if empty.behind.Load() {
		t.Fatal("an empty partition read from its first offset counts as behind")
	}
}

// A batch less than staleAfter (the engine's partition_idle) ahead of a
// caught-up partition does not wait for that partition's next fetch: being
// that far behind makes none of its devices look silent, and the wait
// would cost a live stream up to fetch_max_wait a batch.
func TestAlignerWaitsForFreshnessOnlyPastStaleAfter(t *testing.T) {
	a := newAligner(time.Minute, 5*time.Second)
	a.setStaleAfter(5 * time.Minute)
	quiet, busy := &partState{}, &partState{}
	a.expect([]*partState{quiet, busy})
	a.sent(quiet, 0, 10, false)
	a.fetched(quiet, a.tick(), 10, 10, true)
	start := time.Now()
	if a.wait(context.Background(), busy, int64(2*time.Minute), a.tick()) || time.Since(start) > time.Second {
		t.Fatal("a batch 2 minutes ahead waited for a caught-up partition's next fetch")
	}
	released := make(chan bool, 1)
	go func() { released <- a.wait(context.Background(), busy, int64(10*time.Minute), a.tick()) }()
	select {
	case <-released:
		t.Fatal("a batch 10 minutes ahead did not wait for the caught-up partition's next fetch")
	case <-time.After(50 * time.Millisecond):
	}
	a.fetched(quiet, a.tick(), 10, 10, false)
	if timedOut := <-released; timedOut {
		t.Fatal("released by the timeout, not by the fresh fetch")
	}
}
