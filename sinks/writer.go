package sinks

import (
	"context"
	"fmt"
	"io"

	"github.com/vigil-ot/vigil/detect"
)

// writerSink writes one line per item to an io.Writer: stdout, a file, a
// pipe. A Write is one call of the underlying Write, so lines of two batches
// never interleave.
type writerSink struct {
	name   string
	w      io.Writer
	closer io.Closer // the file the sink opened, nil for a writer it was given
	enc    Encoder
	buf    []byte
	stats  *sinkStats
}

// NewWriterSink returns a sink that writes each alert and quarantine event
// of a batch as one line in format to w, with one Write call per batch. An
// error from w fails the whole batch (a *detect.DeliveryError naming every
// item), because a writer does not say which bytes it kept. Close does not
// close w: the caller owns it.
func NewWriterSink(name string, w io.Writer, format Format) detect.Sink {
	return newWriterSink(name, w, Encoder{Format: format})
}

func newWriterSink(name string, w io.Writer, enc Encoder) *writerSink {
	return &writerSink{name: name, w: w, enc: enc, stats: newSinkStats(name)}
}

func (s *writerSink) Write(ctx context.Context, out *detect.Output) error {
	if out.Len() == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return deliveryErrorAll(s.name, out, err)
	}
	s.buf = appendLines(s.buf[:0], &s.enc, out)
	if _, err := s.w.Write(s.buf); err != nil {
		s.stats.failed.Add(out.Len())
		return deliveryErrorAll(s.name, out, fmt.Errorf("cannot write %d line(s): %w", out.Len(), err))
	}
	s.stats.delivered.Add(out.Len())
	return nil
}

func (s *writerSink) Close() error {
	if f, ok := s.w.(interface{ Flush() error }); ok {
		if err := f.Flush(); err != nil {
			return fmt.Errorf("cannot flush sink %s: %w", s.name, err)
		}
	}
	if s.closer != nil {
		if err := s.closer.Close(); err != nil {
			return fmt.Errorf("cannot close sink %s: %w", s.name, err)
		}
	}
	return nil
}

// appendLines appends every item of out as a newline-terminated line.
func appendLines(dst []byte, enc *Encoder, out *detect.Output) []byte {
	for i := range out.Alerts {
		dst = enc.AppendAlert(dst, &out.Alerts[i])
		dst = append(dst, '\n')
	}
	for i := range out.Quarantine {
		dst = enc.AppendQuarantine(dst, &out.Quarantine[i])
		dst = append(dst, '\n')
	}
	return dst
}

// deliveryErrorAll reports every item of out as not accepted.
func deliveryErrorAll(sink string, out *detect.Output, err error) *detect.DeliveryError {
	ids := make([]string, 0, out.Len())
	for i := range out.Alerts {
		ids = append(ids, out.Alerts[i].ID)
	}
	for i := range out.Quarantine {
		ids = append(ids, out.Quarantine[i].ID)
	}
	return &detect.DeliveryError{Sink: sink, Failed: ids, Err: err}
}
