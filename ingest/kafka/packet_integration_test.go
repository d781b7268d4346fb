package kafka_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/detect"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/kafka"
	"github.com/vigil-ot/vigil/ingest/packet"
	"github.com/vigil-ot/vigil/ingest/pcap"
	"github.com/vigil-ot/vigil/ingest/simulate/attackgen"
)

const topicPackets = "ot-packets"

// packetRecords turns the crafted attack capture into packet records: the
// first half as Apache Metron records (key: capture time in µs, value: the
// frame), the rest as pcap chunks of 64 packets, with two records that are
// neither in between.
func packetRecords(t *testing.T) ([]kafkago.Message, []attackgen.Label) {
	t.Helper()
	var capture bytes.Buffer
	labels, err := attackgen.Generate(&capture, attackgen.DefaultScenario())
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcap.NewReader(&capture, "attack")
	if err != nil {
		t.Fatal(err)
	}
	type pkt struct {
		ts   int64
		data []byte
	}
	var pkts []pkt
	var p pcap.Packet
	for r.Next(&p) == nil {
		pkts = append(pkts, pkt{p.TimeNanos, append([]byte(nil), p.Data...)})
	}
	var out []kafkago.Message
	half := len(pkts) / 2
	for _, p := range pkts[:half] {
		out = append(out, kafkago.Message{Key: binary.BigEndian.AppendUint64(nil, uint64(p.ts/1000)), Value: p.data})
	}
	out = append(out,
		kafkago.Message{Key: []byte("sensor-1"), Value: []byte{1, 2, 3, 4, 5}},
		kafkago.Message{Key: []byte{1, 2}, Value: []byte("not a frame either")})
	for i := half; i < len(pkts); i += 64 {
		var chunk bytes.Buffer
		w := pcapgo.NewWriterNanos(&chunk)
		if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts[i:min(i+64, len(pkts))] {
			ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, p.ts), CaptureLength: len(p.data), Length: len(p.data)}
			if err := w.WritePacket(ci, p.data); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, kafkago.Message{Key: []byte("sensor-1"), Value: chunk.Bytes()})
	}
	return out, labels
}

// Packet topics: Metron records and pcap chunks through the consumer group
// raise every attack's alert; records that are neither are dead letters.
func TestKafkaPacketTopicIntegration(t *testing.T) {
	skipShort(t)
	msgs, labels := packetRecords(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topicPackets, topicChangelog, topicGroups, topicDLQ),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	k := &cluster{t: t, c: kc, addrs: kc.ListenAddrs()}
	w := &kafkago.Writer{Addr: kafkago.TCP(k.addrs...), Topic: topicPackets, BatchTimeout: time.Millisecond, BatchSize: 1000}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	cfg := k.kafkaConfig("gp", "ip")
	cfg.TelemetryTopics, cfg.PacketTopics = nil, []string{topicPackets}
	pcfg := ingest.DefaultPacketConfig()
	pcfg.MaxFlows, pcfg.MaxHosts = 4096, 4096
	reg := ingest.NewRegistry()
	store := baseline.NewStore(baseline.DefaultConfig(), reg)
	dcfg := detect.DefaultConfig()
	dcfg.Network.Learning = 10 * time.Minute
	nd, err := detect.NewNetworkDetector(dcfg.Network, reg, store.CommSet("network", dcfg.Network.Learning))
	if err != nil {
		t.Fatal(err)
	}
	sink := &collectSink{}
	eng, err := detect.NewEngine(dcfg, detect.Deps{Registry: reg, Baseline: store, Sink: sink, Extra: []detect.BatchDetector{nd}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := kafka.New(kafka.Options{Config: cfg, Engine: eng, State: store, Groups: store, Registry: reg,
		Logger: testLogger(t),
		Decoders: func(kind, topic string, p int32) (kafka.Decoder, error) {
			return kafka.NewPacketDecoder(cfg.Packets, pcfg, packet.Options{Registry: reg})
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for c.Consumed() < int64(len(msgs)) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// The last batches go through the engine and then one commit: poll for it.
	var committed map[int]int64
	for {
		committed, err = k.committed("gp", topicPackets)
		if (err == nil && committed[0] > 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c.Consumed() < int64(len(msgs)) {
		t.Fatalf("consumed %d of %d records in 30s", c.Consumed(), len(msgs))
	}
	if err != nil || committed[0] <= 0 || committed[0] >= int64(len(msgs)) {
		t.Errorf("committed %v (%v); want a position past the start and before the records of the window still open", committed, err)
	}

	for _, a := range sink.alerts {
		if a.Partition < 0 || a.Offset <= 0 {
			t.Errorf("alert %s/%s on %s carries partition %d offset %d, not the record it came from", a.Detector, a.Behavior, a.Device, a.Partition, a.Offset)
		}
	}
	for _, l := range labels {
		found := false
		for _, a := range sink.alerts {
			if a.Detector == l.Detector && strings.HasPrefix(a.Behavior, l.Behavior) {
				found = true
			}
		}
		if !found {
			t.Errorf("attack %q raised no %s/%s alert through Kafka", l.Attack, l.Detector, l.Behavior)
		}
	}
	dead := k.readAll(topicDLQ)
	if len(dead) != 2 {
		t.Fatalf("dead-letter topic has %d records, want the 2 that are neither Metron nor a capture", len(dead))
	}
	// "sensor-1" is eight bytes: a Metron key by its length, not by its time.
	want := []string{kafka.ReasonBadTime, kafka.ReasonBadMetronKey}
	for i, d := range dead {
		for _, h := range d.Headers {
			if h.Key == kafka.HeaderReason && string(h.Value) != want[i] {
				t.Errorf("dead letter %q: reason %s, want %s", d.Value, h.Value, want[i])
			}
		}
	}
}
