package detect

import (
	"context"
	"fmt"
	"strings"
)

// Output is what one batch produced: its alerts and quarantine events.
// Every alert of an Output was made before every quarantine event of it
// (the engine splits a batch's output into several Writes where that is
// not so), so a sink that writes the alerts and then the events writes
// them in the order they happened, however the input was batched.
type Output struct {
	Alerts     []Alert
	Quarantine []QuarantineEvent
}

// Len returns the number of items in o.
func (o *Output) Len() int { return len(o.Alerts) + len(o.Quarantine) }

// Reset empties o, keeping its capacity.
func (o *Output) Reset() {
	o.Alerts = o.Alerts[:0]
	o.Quarantine = o.Quarantine[:0]
}

// Sink delivers alerts and quarantine events somewhere a human or a system
// reads them.
//
// Write blocks until every item of out is accepted by the destination or ctx
// ends; it returns nil only then. It may be retried with the same out after
// an error: receivers dedupe on the ids. A partial failure is reported as a
// *DeliveryError naming the ids that were not accepted. A Sink never drops
// an item silently. Write is not called concurrently; the caller keeps out
// unchanged until Write returns and Write keeps no reference to it after.
//
// Close flushes what is buffered and releases the sink's resources.
type Sink interface {
	Write(ctx context.Context, out *Output) error
	Close() error
}

// DeliveryError reports which alerts and quarantine events a sink did not
// accept, and why.
type DeliveryError struct {
	Sink   string
	Failed []string // ids not accepted
	Err    error
}

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("sink %s did not accept %d item(s) [%s]: %v", e.Sink, len(e.Failed), strings.Join(e.Failed, ","), e.Err)
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Outbox holds output until a sink accepts it, in the order it was made.
// A sink writes an Output's alerts before its quarantine events, so when
// an alert was made after an event (a release, then an alarm of the next
// row), Deliver writes the output in several Writes, each in order; then
// the stream a sink writes is the same however the input was cut into
// batches. Most outputs have no quarantine event and make one Write.
type Outbox struct {
	out Output
	qAt []int // qAt[i] is len(out.Alerts) when out.Quarantine[i] was made
	// part is the part of out Deliver is writing
	part Output
}

// AddAlert appends a copy of a.
func (o *Outbox) AddAlert(a *Alert) { o.out.Alerts = append(o.out.Alerts, *a) }

// AddQuarantine appends ev, after every alert added so far.
func (o *Outbox) AddQuarantine(ev *QuarantineEvent) {
	o.out.Quarantine = append(o.out.Quarantine, *ev)
	o.qAt = append(o.qAt, len(o.out.Alerts))
}

// Len returns the number of items held.
func (o *Outbox) Len() int { return o.out.Len() }

// Deliver writes what o holds to sink in the order it was made and empties
// o. On an error it keeps what sink did not accept, for the next Deliver
// (ids make sending it again idempotent).
func (o *Outbox) Deliver(ctx context.Context, sink Sink) error {
	a, q := 0, 0
	for a < len(o.out.Alerts) || q < len(o.out.Quarantine) {
		// the alerts made before the next quarantine event, and the
		// events made before the next alert
		aEnd, qEnd := len(o.out.Alerts), len(o.out.Quarantine)
		if q < len(o.qAt) {
			aEnd, qEnd = o.qAt[q], q
			for qEnd < len(o.qAt) && o.qAt[qEnd] == aEnd {
				qEnd++
			}
		}
		o.part.Alerts, o.part.Quarantine = o.out.Alerts[a:aEnd], o.out.Quarantine[q:qEnd]
		err := sink.Write(ctx, &o.part)
		o.part = Output{}
		if err != nil {
			err = fmt.Errorf("cannot deliver %d alerts and %d quarantine events: %w; they are sent again with the next batch",
				len(o.out.Alerts), len(o.out.Quarantine), err)
			o.keepFrom(a, q)
			return err
		}
		a, q = aEnd, qEnd
	}
	o.out.Reset()
	o.qAt = o.qAt[:0]
	return nil
}

// keepFrom drops the alerts before a and the quarantine events before q,
// which a sink accepted.
func (o *Outbox) keepFrom(a, q int) {
	o.out.Alerts = append(o.out.Alerts[:0], o.out.Alerts[a:]...)
	o.out.Quarantine = append(o.out.Quarantine[:0], o.out.Quarantine[q:]...)
	o.qAt = append(o.qAt[:0], o.qAt[q:]...)
	for i := range o.qAt {
		o.qAt[i] -= a
	}
}
