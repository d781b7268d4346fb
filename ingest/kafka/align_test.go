package kafka

import (
	"context"
	"testing"
	"time"
)

func TestAlignerHoldsThePartitionAhead(t *testing.T) {
	a := newAligner(time.Minute, 5*time.Second)
	slow, fast := &partState{}, &partState{}
	minute := int64(time.Minute)
	a.sent(slow, 10*minute, true)
	a.sent(fast, 10*minute, true)

	released := make(chan bool, 1)
	go func() { released <- a.wait(context.Background(), fast, 30*minute) }()
	select {
	case <-released:
		t.Fatal("a partition 20 minutes ahead of one with a backlog was not held")
	case <-time.After(50 * time.Millisecond):
	}
	// The slow partition's own next batch is not held: it has the lowest
	// frontier.
	if a.wait(context.Background(), slow, 11*minute) {
		t.Fatal("the partition furthest behind was held")
	}
	a.sent(slow, 29*minute, true)
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
	a.sent(idle, 0, false) // no backlog: live, just quiet
	start := time.Now()
	if a.wait(context.Background(), busy, int64(time.Hour)) || time.Since(start) > time.Second {
		t.Fatal("a caught-up partition held back another")
	}
	a.sent(idle, 0, true)
	a.leave(idle)
	if a.wait(context.Background(), busy, int64(2*time.Hour)) {
		t.Fatal("a partition that left still held back another")
	}
}

func TestAlignerTimesOut(t *testing.T) {
	a := newAligner(time.Minute, 30*time.Millisecond)
	stuck, ahead := &partState{}, &partState{}
	a.sent(stuck, 0, true)
	if !a.wait(context.Background(), ahead, int64(time.Hour)) {
		t.Fatal("wait behind a stuck partition did not time out")
	}
}
