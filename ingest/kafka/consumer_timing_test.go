package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/packet"
)

type attrGrouper struct{}

func (attrGrouper) Group(string, []ingest.Attr) string { return "g" }

// The per-record work of a partition worker: decode a telemetry record and
// append its row to the batch; a batch is cut every 1024 records.
func BenchmarkWorkerTelemetryRecord(b *testing.B) {
	dec, err := NewTelemetryDecoder(ingest.DefaultTelemetryConfig(), DrillCheck{})
	if err != nil {
		b.Fatal(err)
	}
	bb := newBatchBuilder(ingest.NewRegistry(), attrGrouper{})
	vals := make([][]byte, 200)
	keys := make([][]byte, 200)
	for i := range vals {
		keys[i] = []byte(fmt.Sprintf("dev-%d", i))
		vals[i] = []byte(fmt.Sprintf(`{"device":"dev-%d","ts":1762041600000,"attrs":{"site":"a"},"metrics":{"bytes_out":1234.5,"bytes_in":2345.5,"msgs_sent":12,"cpu_pct":31.5,"auth_failures":0}}`, i))
	}
	rec := Record{Topic: "t", Time: time.Unix(1762041600, 0)}
	b.ReportAllocs()
	b.SetBytes(int64(len(vals[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(vals)
		rec.Offset, rec.Key, rec.Value = int64(i), keys[j], vals[j]
		if err := dec.Decode(&rec, bb); err != nil {
			b.Fatal(err)
		}
		if bb.Len() == 1024 {
			bb.take().Release()
		}
	}
}

// One batch through the capped checkpointer: slot, track, resolve.
func BenchmarkCheckpointerBatch(b *testing.B) {
	cp := newCheckpointer(8, 0)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := cp.acquire(ctx); err != nil {
			b.Fatal(err)
		}
		cp.add(int64(i + 1))(nil)
	}
	if h, _, _ := cp.Highest(); h != int64(b.N) {
		b.Fatalf("highest %d after %d batches", h, b.N)
	}
}

// The restore filter runs per row while a partition catches up after a
// restore.
func BenchmarkRestoreFilter(b *testing.B) {
	entries := map[string]changelogEntry{}
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("dev-%d", i)
		entries[names[i]] = changelogEntry{next: int64(1000 + i)}
	}
	f := newRestoreFilter(500, entries)
	b.ReportAllocs()
	n := 0
	for i := 0; i < b.N; i++ {
		if f.covered(names[i%len(names)], int64(500+i%2000)) {
			n++
		}
	}
	_ = n
}

// A Metron packet record: key parsing and the hand-off to the extractor.
func BenchmarkPacketDecoderMetron(b *testing.B) {
	d, err := NewPacketDecoder(ingest.DefaultKafkaConfig().Packets, ingest.DefaultPacketConfig(), packet.Options{Registry: ingest.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	frame := modbusFrame(b, 1, 1)
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	rec := Record{Value: frame}
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for i := 0; i < b.N; i++ {
		rec.Offset, rec.Key = int64(i), metronKey(start.Add(time.Duration(i)*time.Millisecond))
		if err := d.Decode(&rec, nil); err != nil {
			b.Fatal(err)
		}
		for bt := d.TakeBatch(); bt != nil; bt = d.TakeBatch() {
			bt.Release()
		}
	}
}
