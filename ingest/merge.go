package ingest

import (
	"context"
	"errors"
	"io"

	"github.com/apache/arrow/go/v15/arrow/array"
)

// TimeMerge interleaves the batches of several sources (telemetry files
// and captures) by the event time of their first row, so a replay of both
// kinds stays roughly in event time. Ties go to the source listed first,
// which keeps it deterministic. Empty batches are acked and skipped.
type TimeMerge struct {
	sources []Source
	pending []*Batch
	done    []bool
	// first and last are the earliest and latest event times of the rows
	// handed out; 0 before any.
	first, last int64
}

// NewTimeMerge returns a merge of sources.
func NewTimeMerge(sources ...Source) *TimeMerge {
	return &TimeMerge{sources: sources, pending: make([]*Batch, len(sources)), done: make([]bool, len(sources))}
}

// ReadBatch returns the pending batch that starts earliest, or io.EOF once
// every source has ended. A source's error is returned as it comes.
func (m *TimeMerge) ReadBatch(ctx context.Context) (*Batch, error) {
	best := -1
	var bestT int64
	for i, s := range m.sources {
		for m.pending[i] == nil && !m.done[i] {
			b, err := s.ReadBatch(ctx)
			if err == io.EOF {
				m.done[i] = true
				break
			}
			if err != nil {
				return nil, err
			}
			if (b.Record == nil || b.Record.NumRows() == 0) && len(b.Comms) == 0 && len(b.Events) == 0 {
				b.Release()
				b.Ack(ctx, nil)
				continue
			}
			m.pending[i] = b
		}
		if m.pending[i] == nil {
			continue
		}
		t := firstTime(m.pending[i])
		if best < 0 || t < bestT {
			best, bestT = i, t
		}
	}
	if best < 0 {
		return nil, io.EOF
	}
	b := m.pending[best]
	m.pending[best] = nil
	m.span(b)
	return b, nil
}

// Span returns the earliest and latest event times (Unix ns) of the rows
// handed out so far; zeros before any.
func (m *TimeMerge) Span() (first, last int64) { return m.first, m.last }

func (m *TimeMerge) span(b *Batch) {
	if b.Record == nil {
		return
	}
	col, ok := b.Record.Column(0).(*array.Timestamp)
	if !ok {
		return
	}
	for _, v := range col.TimestampValues() {
		t := int64(v)
		if m.first == 0 || t < m.first {
			m.first = t
		}
		if t > m.last {
			m.last = t
		}
	}
}

// Close releases the batches still pending, acknowledged as not judged;
// the sources are the caller's.
func (m *TimeMerge) Close() error {
	for i, b := range m.pending {
		if b != nil {
			b.Release()
			b.Ack(context.Background(), errNotJudged)
			m.pending[i] = nil
		}
	}
	return nil
}

var errNotJudged = errors.New("the merge was closed before the batch was judged")

// firstTime is the event time of a batch's first row, or of its first
// communication or event when it has no rows.
func firstTime(b *Batch) int64 {
	if b.Record != nil && b.Record.NumRows() > 0 {
		if col, ok := b.Record.Column(0).(*array.Timestamp); ok {
			return int64(col.Value(0))
		}
	}
	if len(b.Comms) > 0 {
		return b.Comms[0].FirstNanos
	}
	if len(b.Events) > 0 {
		return b.Events[0].TimeNanos
	}
	return 0
}
