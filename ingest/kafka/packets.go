package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/packet"
	"github.com/vigil-ot/vigil/ingest/pcap"
)

// WindowedDecoder is a Decoder that makes whole batches itself, one per
// closed event-time window (packet features), instead of rows.
//
// TakeBatch returns the oldest finished batch or nil; the caller owns it.
// Holding returns the offset of the oldest record whose packets still count
// in a window that is open, or -1 when none: the partition's commit position
// never passes it, so a restart re-reads every record of an open window.
type WindowedDecoder interface {
	Decoder
	TakeBatch() *ingest.Batch
	Holding() int64
}

// Reasons for packet records that cannot be read.
const (
	ReasonBadMetronKey = "bad_metron_key" // neither a capture chunk nor an 8-byte time key
	ReasonEmptyFrame   = "empty_frame"
	ReasonBadChunk     = "bad_capture_chunk" // a pcap/pcapng chunk that does not parse
	ReasonBadTime      = "bad_capture_time"  // a Metron key whose time is not between 1995 and 2200
)

// Plausible capture times of a Metron key. A key that is not a time (any 8
// bytes pass the length check) would otherwise move the partition's event
// time centuries ahead and stall every window after it.
var (
	minCaptureNanos = time.Date(1995, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	maxCaptureNanos = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
)

// PacketDecoder reads packet topics: a record is either a pcap or pcapng
// chunk of one or more packets (recognised by its magic bytes, which are
// checked first), or Apache Metron's layout: the key is the capture time
// as an 8-byte big-endian integer in the configured unit, the value one
// bare frame of the configured link type.
type PacketDecoder struct {
	x        *packet.Extractor
	unit     int64
	linkType uint16
	longest  int64 // nanoseconds of the longest feature window

	pkt     pcap.Packet
	curLong int64 // id of the longest window now open
	holding int64 // first record offset of that window, -1 before any packet
	rd      bytes.Reader
}

// NewPacketDecoder returns the decoder of one packet partition; the
// extractor must share the registry of the engine.
func NewPacketDecoder(kc ingest.KafkaPacketConfig, pc ingest.PacketConfig, opts packet.Options) (*PacketDecoder, error) {
	unit, err := ingest.TimestampUnitNanos(kc.TimestampUnit)
	if err != nil {
		return nil, err
	}
	lt, err := linkTypeNumber(kc.LinkType)
	if err != nil {
		return nil, err
	}
	x, err := packet.NewExtractor(pc, opts)
	if err != nil {
		return nil, err
	}
	return &PacketDecoder{x: x, unit: unit, linkType: lt, longest: int64(pc.Windows[len(pc.Windows)-1]), holding: -1, curLong: -1 << 62}, nil
}

func unitName(unit int64) string {
	switch unit {
	case int64(time.Millisecond):
		return "milliseconds"
	case int64(time.Microsecond):
		return "microseconds"
	}
	return "nanoseconds"
}

func linkTypeNumber(name string) (uint16, error) {
	switch name {
	case "ethernet":
		return pcap.LinkTypeEthernet, nil
	case "raw":
		return pcap.LinkTypeRaw, nil
	case "linux_sll":
		return pcap.LinkTypeLinuxSLL, nil
	case "linux_sll2":
		return pcap.LinkTypeSLL2, nil
	case "loopback":
		return pcap.LinkTypeNull, nil
	}
	return 0, fmt.Errorf("unknown link_type %q; use ethernet, raw, linux_sll, linux_sll2 or loopback", name)
}

// isCapture tells whether v starts with a pcap, pcapng or gzip magic.
func isCapture(v []byte) bool {
	if len(v) >= 4 && v[0] == 0x1f && v[1] == 0x8b {
		return true
	}
	_, ok := pcap.Sniff(v)
	return ok
}

// Decode feeds the record's packets to the feature extractor, each with
// the record's offset as its Index: the rows, communications and findings
// of the batches carry the partition and the offsets (see
// packet.Extractor.SetPartition).
func (d *PacketDecoder) Decode(rec *Record, _ *BatchBuilder) error {
	d.x.SetPartition(rec.Partition)
	if isCapture(rec.Value) {
		return d.decodeChunk(rec)
	}
	if len(rec.Key) != 8 {
		return &RejectError{Why: ReasonBadMetronKey, Err: fmt.Errorf("key has %d bytes; Metron packet records carry the capture time as 8 big-endian bytes, or send a pcap/pcapng chunk", len(rec.Key))}
	}
	if len(rec.Value) == 0 {
		return &RejectError{Why: ReasonEmptyFrame, Err: errors.New("record has no frame")}
	}
	raw := binary.BigEndian.Uint64(rec.Key)
	if raw > uint64(maxCaptureNanos/d.unit) || int64(raw)*d.unit < minCaptureNanos {
		return &RejectError{Why: ReasonBadTime, Err: fmt.Errorf("key %x is not a capture time in %s since 1970 between 1995 and 2200; check kafka.packets.timestamp_unit", rec.Key, unitName(d.unit))}
	}
	d.pkt = pcap.Packet{
		Data: rec.Value, TimeNanos: int64(raw) * d.unit,
		LinkType: d.linkType, OrigLen: len(rec.Value), Index: rec.Offset,
	}
	d.add(rec.Offset)
	return nil
}

func (d *PacketDecoder) decodeChunk(rec *Record) error {
	d.rd.Reset(rec.Value)
	r, err := pcap.NewReader(&d.rd, "record")
	if err != nil {
		return &RejectError{Why: ReasonBadChunk, Err: err}
	}
	defer r.Close()
	n := 0
	for {
		err := r.Next(&d.pkt)
		if err == io.EOF {
			break
		}
		if err != nil {
			if n == 0 {
				return &RejectError{Why: ReasonBadChunk, Err: err}
			}
			break // packets before the damage are kept, as for files
		}
		d.pkt.Index = rec.Offset
		d.add(rec.Offset)
		n++
	}
	if n == 0 {
		if w := r.Warnings(); len(w) > 0 {
			return &RejectError{Why: ReasonBadChunk, Err: errors.New(w[0].String())}
		}
		return &RejectError{Why: ReasonBadChunk, Err: errors.New("chunk holds no packet")}
	}
	return nil
}

func (d *PacketDecoder) add(offset int64) {
	if id := floorDiv(d.pkt.TimeNanos, d.longest); id > d.curLong {
		d.curLong, d.holding = id, offset
	}
	d.x.Add(&d.pkt)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// TakeBatch returns the oldest batch of closed windows, or nil.
func (d *PacketDecoder) TakeBatch() *ingest.Batch { return d.x.TakeBatch() }

// Holding returns the first record of the open longest window, or -1.
func (d *PacketDecoder) Holding() int64 { return d.holding }

// Extractor returns the feature extractor, for its statistics.
func (d *PacketDecoder) Extractor() *packet.Extractor { return d.x }

// RegisterMetrics publishes the extractor's counters (vigil_packets_total,
// vigil_packet_…_total; see packet.Extractor.RegisterMetrics) in m's set,
// labelled source=topic. The decoders of a topic's partitions, and those
// made again after a rebalance, add to the same series. Call it before the
// first Decode.
func (d *PacketDecoder) RegisterMetrics(m *Metrics, topic string) { d.x.RegisterMetrics(m.Set, topic) }
