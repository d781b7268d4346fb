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
