package ingest

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/apache/arrow/go/v15/arrow"
)

// Batch is the unit of work from source to sink: observations as an Arrow
// record with the observation schema, the set members and communications
// that belong to its rows, and the acknowledgement that commits the source
// positions it covers. A batch never spans Kafka partitions.
//
// The receiver of a Batch owns the record's one reference: it releases the
// record (Release) or forwards the batch to a stage that does, exactly once.
type Batch struct {
	Record arrow.Record
	// Sets are set-valued members of rows (listening ports, remote
	// addresses), ordered by Row.
	Sets []SetMember
	// Comms are the communications observed in the time span of the batch,
	// for learned-allowlist and protocol detectors. Empty for telemetry.
	Comms []Communication
	// Events are findings a decoder makes on its own (a malformed OT frame,
	// a scan) that detectors turn into alerts.
	Events []NetEvent
	// Source names the stream the rows were read from: the Kafka topic,
	// empty for files and captures. Partition numbers count within a
	// source, so detectors that follow a partition's event time key it by
	// source and partition.
	Source string
	// Rejected are rows the stage that acknowledges the batch refused
	// (the engine's clock discipline, its device cap), set before Ack so
	// the source can dead-letter their records before it commits past
	// them. A row held back and dropped later is reported with the batch
	// being judged then, which may be a later batch of its partition. Nil
	// in the common case; the ack function owns it.
	Rejected []RejectedRow

	acked   atomic.Bool
	ack     func(ctx context.Context, err error)
	recycle func(*Batch)
}

// RejectedRow is a row refused by judging, by its position in the source.
type RejectedRow struct {
	Source    string // the Batch.Source it was read from: the Kafka topic
	Partition int32
	Offset    int64
	Reason    string // stable label: RejectFutureTime, RejectUnclockedTime, RejectDeviceCap
	Detail    string // for the operator: the event time and the limit it passed
	// Device names the row's device; StreamTime is the stream's clock
	// (Unix ns) when the row was refused, 0 before the stream had one.
	// vigil score matches clock incidents against them.
	Device     string
	StreamTime int64
}

// Reasons of a RejectedRow, the labels of vigil_kafka_dead_letters_total
// and the dead-letter header, like the decoders' reasons.
const (
	// RejectFutureTime: further ahead of the stream's clock, or of the
	// wall clock, than clock.max_skew, and no later row agreed.
	RejectFutureTime = "future_time"
	// RejectUnclockedTime: came before the stream had a clock, and no
	// later row within clock.max_skew agreed.
	RejectUnclockedTime = "unclocked_time"
	// RejectDeviceCap: a new device beyond detect.max_devices, refused
	// when its name was to be interned (Registry.AdmitDevice).
	RejectDeviceCap = "device_cap"
)

// doubleAcks counts Ack calls after the first: each one is a bug.
var doubleAcks = metrics.NewCounter(`vigil_batch_double_acks_total`)

// NewBatch returns a batch whose Ack calls ack once. ack may be nil for
// sources without positions to commit.
func NewBatch(rec arrow.Record, ack func(ctx context.Context, err error)) *Batch {
	return &Batch{Record: rec, ack: ack}
}

// Ack reports the outcome of the batch to its source. A nil err means every
// alert derived from the batch was accepted by every required sink (or there
// were none) and the source may commit its positions; a non-nil err means
// the batch must be delivered again. It is called exactly once, by the
// stage that finishes the batch (the engine's Process, or whoever drops
// it); a second call is a bug: it has no effect, and is counted
// (vigil_batch_double_acks_total) and logged.
func (b *Batch) Ack(ctx context.Context, err error) {
	if b.acked.Swap(true) {
		doubleAcks.Inc()
		slog.Error("BUG: batch acknowledged twice; the second acknowledgement is ignored", "source", b.Source, "err", err)
		return
	}
	if b.ack != nil {
		b.ack(ctx, err)
	}
}

// DoubleAcks returns how many times a batch was acknowledged a second time
// since the process started (0 unless there is a bug).
func DoubleAcks() uint64 { return doubleAcks.Get() }

// Release releases the batch's record and, for a batch whose source
// takes its slices back (Recycle), hands the batch to the source: its
// Sets, Comms and Events must not be read after Release.
func (b *Batch) Release() {
	if b.Record != nil {
		b.Record.Release()
		b.Record = nil
	}
	if f := b.recycle; f != nil {
		b.recycle = nil
		f(b)
	}
}

// Recycle has the batch's first Release call f with the batch, so that the
// source that made it can reuse its slices for a later batch (a capture
// makes a batch every 10 s window, whose communications were much of
// the garbage of a replay). f may run on any goroutine. A stage that moves
// the slices to a batch of its own must not Release this one.
func (b *Batch) Recycle(f func(*Batch)) { b.recycle = f }

// SetMember is one member of a set-valued observation of row Row, such as a
// listening TCP port ("listening_tcp_ports", "502") or a remote address
// ("remote_addrs", "10.0.0.7").
type SetMember struct {
	Row   int32
	Set   string
	Value string
}

// Communication is one conversation seen on the network, aggregated per
// (edge, protocol, function) over the batch's time span. Device is the
// asset that initiated it (the client or master).
type Communication struct {
	FirstNanos, LastNanos int64
	Device                string // initiator's device id (inventory name or address)
	Group                 string
	SrcIP, DstIP          netip.Addr
	SrcMAC, DstMAC        [6]byte
	Transport             uint8 // IP protocol number: 6 TCP, 17 UDP, 1 ICMP
	SrcPort, DstPort      uint16
	Protocol              string // application protocol: "modbus", "s7comm", "dnp3", … or "" when unknown
	Function              string // OT function code class or name: "write_multiple_registers", "plc_stop", … or ""
	FunctionClass         string // what Function does: "read", "write", "control", "diagnostic", "other", or "" without Function
	Packets, Bytes        int64
	// Partition and Offset: the Kafka partition and record offset of the
	// communication's first packet in the batch (partition -1 and the
	// packet's number in a replay).
	Partition int32
	Offset    int64
}

// NetEvent is a finding a decoder or feature extractor makes without a
// baseline: a protocol violation, a scan or a flood in a window.
type NetEvent struct {
	TimeNanos        int64
	Kind             string // "malformed", "scan_ports", "scan_hosts", "flood"
	Device, Group    string
	SrcIP, DstIP     netip.Addr
	Transport        uint8
	SrcPort, DstPort uint16
	Protocol         string
	Detail           string  // one line for the analyst
	Value, Threshold float64 // e.g. distinct ports seen vs threshold
	// Partition and Offset: the Kafka partition and record offset of the
	// finding's packet, or for a finding over a window (scan, flood) of
	// the last record counted in the window (partition -1 and packet
	// numbers in a replay).
	Partition int32
	Offset    int64
}
