package kafka

import (
	"errors"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-ot/vigil/ingest"
)

// Record is one Kafka record as a Decoder sees it. Key and Value belong to
// the caller and are only valid during Decode.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Time      time.Time
	Key       []byte
	Value     []byte
	Headers   []kafkago.Header
}

// Decoder turns the records of one partition into observations. A partition
// worker owns its Decoder: Decode is never called concurrently. Decode
// appends what a record yields to out (rows, communications, events) and
// returns an error when the record cannot be decoded; the record then goes
// to the dead-letter topic and the partition goes on. An error that has a
// Reason() string method gives the reason label and header; others are
// reported as "undecodable".
type Decoder interface {
	Decode(rec *Record, out *BatchBuilder) error
}

// DecoderFactory returns the decoder for one partition of topic; kind is
// "telemetry" or "packets", after the config list the topic is in.
type DecoderFactory func(kind, topic string, partition int32) (Decoder, error)

// Topic kinds.
const (
	KindTelemetry = "telemetry"
	KindPackets   = "packets"
)

// RejectError is a Decoder's explained rejection of a record.
type RejectError struct {
	Why string // short, stable label: "bad_json", "no_device", …
	Err error
}

func (e *RejectError) Error() string { return e.Why + ": " + e.Err.Error() }
func (e *RejectError) Unwrap() error { return e.Err }

// Reason returns the stable label of the rejection.
func (e *RejectError) Reason() string { return e.Why }

// reasonOf returns the label of a decode error.
func reasonOf(err error) string {
	var r interface{ Reason() string }
	if errors.As(err, &r) && r.Reason() != "" {
		return r.Reason()
	}
	return "undecodable"
}

// BatchBuilder collects what the records of one batch yield. Decoders get a
// scratch row from Row, fill it and Append it.
type BatchBuilder struct {
	obs    *ingest.ObservationBuilder
	row    ingest.Row
	comms  []ingest.Communication
	events []ingest.NetEvent

	// Restored state covers some records already; see restoreFilter.
	filter  *restoreFilter
	skipped int

	firstTS, lastTS int64 // event times of the rows, for cutting by span

	// rowHook, when set, takes every row instead of the batch: the
	// repartition stage only wants to know each record's group.
	rowHook func(*ingest.Row)
}

func newBatchBuilder(reg *ingest.Registry, g ingest.Grouper) *BatchBuilder {
	return &BatchBuilder{obs: ingest.NewObservationBuilder(nil, reg, g)}
}

// Row returns the builder's scratch row, reset.
func (b *BatchBuilder) Row() *ingest.Row {
	b.row.Reset()
	return &b.row
}

// Append adds r to the batch, unless the restored state of r's device
// already covers r's offset (the row was learned before a restart).
func (b *BatchBuilder) Append(r *ingest.Row) {
	if b.rowHook != nil {
		b.rowHook(r)
		return
	}
	if b.filter != nil && b.filter.covered(r.Device, r.Offset) {
		b.skipped++
		return
	}
	if b.obs.Len() == 0 {
		b.firstTS, b.lastTS = r.TimeNanos, r.TimeNanos
	} else {
		b.firstTS, b.lastTS = min(b.firstTS, r.TimeNanos), max(b.lastTS, r.TimeNanos)
	}
	b.obs.Append(r)
}

// span returns the event time the rows collected so far cover.
func (b *BatchBuilder) span() int64 {
	if b.obs.Len() == 0 {
		return 0
	}
	return b.lastTS - b.firstTS
}

// AppendComm adds a communication seen in the batch's time span.
func (b *BatchBuilder) AppendComm(c ingest.Communication) { b.comms = append(b.comms, c) }

// AppendEvent adds a decoder finding.
func (b *BatchBuilder) AppendEvent(e ingest.NetEvent) { b.events = append(b.events, e) }

// Len returns the number of rows, communications and events collected.
func (b *BatchBuilder) Len() int { return b.obs.Len() + len(b.comms) + len(b.events) }

// take returns the collected batch, without ack, and resets the builder.
func (b *BatchBuilder) take() *ingest.Batch {
	rec, sets := b.obs.NewRecord()
	batch := ingest.NewBatch(rec, nil)
	batch.Sets = sets
	if len(b.comms) > 0 {
		batch.Comms = append([]ingest.Communication(nil), b.comms...)
		b.comms = b.comms[:0]
	}
	if len(b.events) > 0 {
		batch.Events = append([]ingest.NetEvent(nil), b.events...)
		b.events = b.events[:0]
	}
	return batch
}

// restoreFilter knows which records of a partition restored state already
// covers: every record below floor, and for some devices records up to a
// later offset (their state was checkpointed after the partition marker).
type restoreFilter struct {
	floor   int64
	devices map[string]int64 // device -> first offset not covered
	max     int64            // largest value in devices: past it the filter is off
}

func (f *restoreFilter) covered(device string, offset int64) bool {
	if offset < f.floor {
		return true
	}
	if offset >= f.max {
		return false
	}
	next, ok := f.devices[device]
	return ok && offset < next
}
