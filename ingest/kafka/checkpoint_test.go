package kafka

import (
	"context"
	"errors"
	"testing"
	"time"
)

// track registers a batch ending before offset end as the consumer does:
// a slot first (blocking while cap batches are outstanding, until one
// resolves or ctx ends), then the batch.
func track(c *checkpointer, ctx context.Context, end int64) (func(error), error) {
	if err := c.acquire(ctx); err != nil {
		return nil, err
	}
	return c.add(end), nil
}

func TestCheckpointerCommitsOnlyAcknowledgedPrefix(t *testing.T) {
	ctx := context.Background()
	c := newCheckpointer(3, 100)
	a, _ := track(c, ctx, 110)
	b, _ := track(c, ctx, 120)
	d, _ := track(c, ctx, 130)
	b(nil)
	if h, n, _ := c.Highest(); h != 100 || n != 3 {
		t.Fatalf("after acking the middle batch: highest %d outstanding %d, want 100 and 3", h, n)
	}
	a(nil)
	if h, n, _ := c.Highest(); h != 120 || n != 1 {
		t.Fatalf("after acking the first batch: highest %d outstanding %d, want 120 and 1", h, n)
	}
	d(nil)
	if h, n, _ := c.Highest(); h != 130 || n != 0 {
		t.Fatalf("highest %d outstanding %d, want 130 and 0", h, n)
	}
}

func TestCheckpointerCapBlocks(t *testing.T) {
	c := newCheckpointer(1, 0)
	first, err := track(c, context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := track(c, ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Track beyond the cap returned %v, want it to block until the deadline", err)
	}
	first(nil)
	if _, err := track(c, context.Background(), 2); err != nil {
		t.Fatalf("Track after a release: %v", err)
	}
}

func TestCheckpointerFreezesAtFailure(t *testing.T) {
	ctx := context.Background()
	c := newCheckpointer(4, 0)
	a, _ := track(c, ctx, 10)
	b, _ := track(c, ctx, 20)
	d, _ := track(c, ctx, 30)
	a(nil)
	b(errors.New("sink down"))
	d(nil)
	h, n, failed := c.Highest()
	if h != 10 || n != 0 || failed == nil {
		t.Fatalf("highest %d outstanding %d failed %v; want 10, 0 and the failure", h, n, failed)
	}
	if err := c.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}
