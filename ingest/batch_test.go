package ingest

import (
	"context"
	"errors"
	"testing"
)

// TestAckExactlyOnce: the first Ack reaches the source; a second is a bug,
// counted and without effect.
func TestAckExactlyOnce(t *testing.T) {
	var got []error
	b := NewBatch(nil, func(_ context.Context, err error) { got = append(got, err) })
	before := DoubleAcks()
	first := errors.New("redeliver")
	b.Ack(context.Background(), first)
	b.Ack(context.Background(), nil)
	if len(got) != 1 || got[0] != first {
		t.Fatalf("source saw %v, want only the first ack", got)
	}
	if DoubleAcks() != before+1 {
		t.Fatalf("double acks counted %d, want %d", DoubleAcks(), before+1)
	}
}

// The function given to Recycle sees the batch once, at its first
// Release, after the record's release.
func TestRecycleAtFirstRelease(t *testing.T) {
	b := NewBatch(nil, nil)
	var seen []*Batch
	b.Recycle(func(r *Batch) { seen = append(seen, r) })
	b.Release()
	b.Release()
	if len(seen) != 1 || seen[0] != b {
		t.Fatalf("recycle saw %v, want the batch once", seen)
	}
}
