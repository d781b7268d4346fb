package kafka

import (
	"context"
	"sync"
	"sync/atomic"
)

// checkpointer tracks the batches of one partition in offset order and
// answers the highest offset that may be committed: the end of the longest
// prefix of batches that were all acknowledged nil. At most cap batches may
// be outstanding; Track blocks beyond that, which is what slows a partition
// down when the engine or a sink cannot keep up.
//
// A failed (nacked) batch freezes the commit position below it for good:
// the caller must redeliver from Highest, so later acknowledgements of the
// same generation no longer move it.
type checkpointer struct {
	slots chan struct{} // one token per outstanding batch

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change, for waiters
	pending []*pendingBatch
	highest int64 // next offset to read after the acknowledged prefix
	failed  error

	// durable, when set, is the offset the partition's state in the
	// changelog covers: no commit goes past it (see Committable).
	durable *atomic.Int64
}

type pendingBatch struct {
	end  int64 // offset after the batch's last record
	done bool
}

func newCheckpointer(capacity int, start int64) *checkpointer {
	return &checkpointer{
		slots:   make(chan struct{}, capacity),
		changed: make(chan struct{}),
		highest: start,
	}
}

// acquire takes a slot for the next batch, blocking while cap batches are
// outstanding; add or release must follow.
func (c *checkpointer) acquire(ctx context.Context) error {
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release gives back a slot taken by acquire for a batch never added.
func (c *checkpointer) release() { <-c.slots }

// add registers the batch that holds the slot from acquire. Batches must be
// added in offset order.
func (c *checkpointer) add(end int64) func(error) {
	p := &pendingBatch{end: end}
	c.mu.Lock()
	c.pending = append(c.pending, p)
	c.mu.Unlock()
	return func(err error) { c.resolve(p, err) }
}

func (c *checkpointer) resolve(p *pendingBatch, err error) {
	c.mu.Lock()
	if err != nil && c.failed == nil {
		c.failed = err
	}
	p.done = true
	if c.failed == nil {
		n := 0
		for n < len(c.pending) && c.pending[n].done {
			c.highest = c.pending[n].end
			n++
		}
		c.pending = append(c.pending[:0], c.pending[n:]...)
	} else {
		// Frozen: keep only the count of outstanding batches right.
		for i, q := range c.pending {
			if q == p {
				c.pending = append(c.pending[:i], c.pending[i+1:]...)
				break
			}
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	<-c.slots
}

// Highest returns the offset up to which everything was acknowledged nil,
// the number of batches still outstanding and the first failure, if any.
func (c *checkpointer) Highest() (offset int64, outstanding int, failed error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.highest, len(c.pending), c.failed
}

// Committable returns the offset that may be committed: Highest's, but
// not beyond the state in the changelog when there is one. A restart
// then always finds the state of every record it does not read again;
// committing only what is checkpointed costs no redelivery, as a restart
// reads again from the changelog's offset anyway.
func (c *checkpointer) Committable() int64 {
	h, _, _ := c.Highest()
	if c.durable != nil {
		h = min(h, c.durable.Load())
	}
	return h
}

// Wait blocks until no batch is outstanding or ctx ends.
func (c *checkpointer) Wait(ctx context.Context) error {
	for {
		c.mu.Lock()
		n, ch := len(c.pending), c.changed
		c.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Changed returns a channel closed at the next resolution.
func (c *checkpointer) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}
