package kafka_test

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/apache/arrow/go/v15/arrow/array"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/kafka"
	"github.com/vigil-ot/vigil/ingest/packet"
	"github.com/vigil-ot/vigil/ingest/pcap"
)

// captureTimes returns the capture times of a packet record's packets:
// its Metron key, or those of its pcap chunk; none for a record that is
// neither.
func captureTimes(t *testing.T, key, value []byte) []int64 {
	t.Helper()
	r, err := pcap.NewReader(bytes.NewReader(value), "record")
	if err != nil {
		if len(key) != 8 {
			return nil
		}
		// Microseconds between 2001 and 2286, or a dead letter.
		if us := binary.BigEndian.Uint64(key); us >= 1e15 && us < 1e16 {
			return []int64{int64(us) * 1000}
		}
		return nil
	}
	defer r.Close()
	var out []int64
	var p pcap.Packet
	for r.Next(&p) == nil {
		out = append(out, p.TimeNanos)
	}
	return out
}

// The rows, communications and findings of packet batches carry the
// Kafka partition and offset of the record they come from: a
// communication and a finding about one packet that packet's record; a
// row and a finding over a window (scan, flood) the last record with a
// packet in the window.
func TestPacketBatchesCarryTheirRecords(t *testing.T) {
	msgs, _ := packetRecords(t)
	const partition, base = 2, 1000
	times := map[int64][]int64{} // record offset -> capture times of its packets
	var offsets []int64
	for i, m := range msgs {
		if ts := captureTimes(t, m.Key, m.Value); len(ts) > 0 {
			times[base+int64(i)] = ts
			offsets = append(offsets, base+int64(i))
		}
	}
	// lastBefore returns the last record with a packet before end.
	memo := map[int64]int64{}
	lastBefore := func(end int64) int64 {
		if last, ok := memo[end]; ok {
			return last
		}
		last := int64(-1)
		for _, off := range offsets {
			if slices.Min(times[off]) < end {
				last = off
			}
		}
		memo[end] = last
		return last
	}
	holds := func(off, ts int64) bool { return slices.Contains(times[off], ts) }

	pcfg := ingest.DefaultPacketConfig()
	pcfg.MaxFlows, pcfg.MaxHosts = 4096, 4096
	dec, err := kafka.NewPacketDecoder(ingest.DefaultKafkaConfig().Packets, pcfg, packet.Options{Registry: ingest.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	var rows, comms, events int
	kinds := map[string]bool{}
	for i, m := range msgs {
		rec := kafka.Record{Topic: "ot-packets", Partition: partition, Offset: base + int64(i), Key: m.Key, Value: m.Value}
		dec.Decode(&rec, nil)
		for b := dec.TakeBatch(); b != nil; b = dec.TakeBatch() {
			sch := b.Record.Schema()
			ts := b.Record.Column(sch.FieldIndices(ingest.ColTime)[0]).(*array.Timestamp)
			part := b.Record.Column(sch.FieldIndices(ingest.ColPartition)[0]).(*array.Int32)
			off := b.Record.Column(sch.FieldIndices(ingest.ColOffset)[0]).(*array.Int64)
			for r := 0; r < int(b.Record.NumRows()); r++ {
				rows++
				end := int64(ts.Value(r))
				if part.Value(r) != partition || off.Value(r) != lastBefore(end) {
					t.Fatalf("row of the window ending %d: partition %d offset %d; want %d and %d, the last record in the window",
						end, part.Value(r), off.Value(r), partition, lastBefore(end))
				}
			}
			for _, c := range b.Comms {
				comms++
				if c.Partition != partition || !holds(c.Offset, c.FirstNanos) {
					t.Fatalf("communication %s -> %s %s first seen at %d: partition %d offset %d (times %v); want %d and the record of that packet",
						c.SrcIP, c.DstIP, c.Protocol, c.FirstNanos, c.Partition, c.Offset, times[c.Offset], partition)
				}
			}
			for _, e := range b.Events {
				events++
				kinds[e.Kind] = true
				ok := holds(e.Offset, e.TimeNanos) // a finding about one packet
				if e.Kind == "scan_ports" || e.Kind == "scan_hosts" || e.Kind == "flood" {
					ok = e.Offset == lastBefore(e.TimeNanos)
				}
				if e.Partition != partition || !ok {
					t.Fatalf("%s finding on %s at %d: partition %d offset %d; want %d and its record", e.Kind, e.Device, e.TimeNanos, e.Partition, e.Offset, partition)
				}
			}
			b.Release()
		}
	}
	if rows == 0 || comms == 0 || !kinds["scan_ports"] || !kinds["flood"] {
		t.Fatalf("checked %d rows, %d communications and findings %v; the capture no longer exercises them", rows, comms, kinds)
	}
}
