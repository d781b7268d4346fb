package kafka

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/packet"
)

// modbusFrame returns an Ethernet frame carrying a Modbus/TCP read request
// from client to the PLC at 10.0.0.10.
func modbusFrame(t testing.TB, client byte, seq uint32) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, client}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 10}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IPv4(10, 0, 0, client), DstIP: net.IPv4(10, 0, 0, 10)}
	tcp := &layers.TCP{SrcPort: 40000 + layers.TCPPort(client), DstPort: 502, Seq: seq, ACK: true, PSH: true, Window: 1024}
	tcp.SetNetworkLayerForChecksum(ip)
	// MBAP: transaction, protocol 0, length 6, unit 1; read holding registers 0..9.
	pdu := []byte{0, byte(seq), 0, 0, 0, 6, 1, 3, 0, 0, 0, 10}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(pdu)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func metronKey(ts time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(ts.UnixMicro()))
}

func newTestPacketDecoder(t testing.TB) *PacketDecoder {
	t.Helper()
	d, err := NewPacketDecoder(ingest.DefaultKafkaConfig().Packets, ingest.DefaultPacketConfig(), packet.Options{Registry: ingest.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPacketDecoderMetronAndChunks(t *testing.T) {
	d := newTestPacketDecoder(t)
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	off := int64(0)
	// Metron records for 90 s of event time: the first minute closes.
	for s := 0; s < 90; s++ {
		rec := Record{Offset: off, Key: metronKey(start.Add(time.Duration(s) * time.Second)), Value: modbusFrame(t, 1, uint32(s))}
		if err := d.Decode(&rec, nil); err != nil {
			t.Fatalf("Metron record %d: %v", s, err)
		}
		off++
	}
	// One pcap chunk with three packets at 95..97 s.
	var chunk bytes.Buffer
	w := pcapgo.NewWriterNanos(&chunk)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		f := modbusFrame(t, 2, uint32(i))
		ts := start.Add(time.Duration(95+i) * time.Second)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(f), Length: len(f)}, f); err != nil {
			t.Fatal(err)
		}
	}
	rec := Record{Offset: off, Key: []byte("sensor-7"), Value: chunk.Bytes()}
	if err := d.Decode(&rec, nil); err != nil {
		t.Fatalf("pcap chunk: %v", err)
	}
	if got := d.Extractor().Stats().Packets; got != 93 {
		t.Errorf("extractor saw %d packets, want 90 Metron frames and 3 from the chunk", got)
	}
	var rows int64
	for b := d.TakeBatch(); b != nil; b = d.TakeBatch() {
		rows += b.Record.NumRows()
		b.Release()
	}
	if rows == 0 {
		t.Error("no feature rows after the first windows closed")
	}
	// The minute that began at 60 s is open; it began with record 60.
	if h := d.Holding(); h != 60 {
		t.Errorf("Holding() = %d, want 60: the first record of the open one-minute window", h)
	}
}

func TestPacketDecoderRejects(t *testing.T) {
	d := newTestPacketDecoder(t)
	for _, c := range []struct {
		key, value []byte
		reason     string
	}{
		{[]byte("short"), []byte{1, 2, 3}, ReasonBadMetronKey},
		{metronKey(time.Unix(1762041600, 0)), nil, ReasonEmptyFrame},
		{metronKey(time.Unix(0, 0)), []byte{1}, ReasonBadTime},
		{[]byte("sensor-1"), []byte{1}, ReasonBadTime},
		{nil, []byte{0xd4, 0xc3, 0xb2, 0xa1, 1, 2}, ReasonBadChunk},
		{nil, []byte{0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0}, ReasonBadChunk},
	} {
		rec := Record{Key: c.key, Value: c.value}
		err := d.Decode(&rec, nil)
		if err == nil || reasonOf(err) != c.reason {
			t.Errorf("Decode(key %x, value %x) = %v, want reason %s", c.key, c.value, err, c.reason)
		}
	}
}

func FuzzPacketDecoder(f *testing.F) {
	f.Add(metronKey(time.Unix(1762041600, 0)), modbusFrame(f, 1, 1))
	f.Add([]byte(nil), []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0})
	f.Add([]byte(nil), []byte{0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a})
	f.Add([]byte{1}, []byte{0x1f, 0x8b, 8, 0})
	d := newTestPacketDecoder(f)
	f.Fuzz(func(t *testing.T, key, value []byte) {
		rec := Record{Key: key, Value: value}
		if err := d.Decode(&rec, nil); err != nil && reasonOf(err) == "undecodable" {
			t.Fatalf("rejection without a reason: %v", err)
		}
		for b := d.TakeBatch(); b != nil; b = d.TakeBatch() {
			b.Release()
		}
	})
}

// synFrame returns an Ethernet frame carrying a SYN from src to the PLC
// at 10.0.0.10, port 502.
func synFrame(t testing.TB, src net.IP, sport uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 99}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 10}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src, DstIP: net.IPv4(10, 0, 0, 10)}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 502, Seq: 77, SYN: true, Window: 1024}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// TestPacketDecoderMetrics: the decoders of two partitions of a topic,
// each fed a flood of SYNs from forged sources, publish the flows they
// forgot half-open in the consumer's set, on one series labelled with the
// topic.
func TestPacketDecoderMetrics(t *testing.T) {
	m := NewMetrics()
	pc := ingest.DefaultPacketConfig()
	pc.MaxFlows = 16 // flows are evicted, so the half-open ones are counted
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	var halfOpen, packets int64
	for part := range int32(2) {
		d, err := NewPacketDecoder(ingest.DefaultKafkaConfig().Packets, pc, packet.Options{Registry: ingest.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		d.RegisterMetrics(m, "ot-packets")
		for i := range 200 {
			src := net.IPv4(172, 16, byte(part), byte(i+1))
			rec := Record{Partition: part, Offset: int64(i), Key: metronKey(start.Add(time.Duration(i) * 10 * time.Millisecond)), Value: synFrame(t, src, uint16(1024+i))}
			if err := d.Decode(&rec, nil); err != nil {
				t.Fatal(err)
			}
		}
		st := d.Extractor().Stats()
		if st.HalfOpenFlows == 0 {
			t.Fatalf("partition %d: no half-open flow counted", part)
		}
		halfOpen += st.HalfOpenFlows
		packets += st.Outcomes[packet.OutcomeDecoded]
		// The counters are published when a window closes: a packet a
		// minute later closes the flood's.
		rec := Record{Partition: part, Offset: 200, Key: metronKey(start.Add(time.Minute)), Value: modbusFrame(t, 1, 1)}
		if err := d.Decode(&rec, nil); err != nil {
			t.Fatal(err)
		}
		for b := d.TakeBatch(); b != nil; b = d.TakeBatch() {
			b.Release()
		}
	}
	var buf bytes.Buffer
	m.Set.WritePrometheus(&buf)
	for _, want := range []string{
		fmt.Sprintf("vigil_packet_tcp_half_open_flows_total{source=\"ot-packets\"} %d\n", halfOpen),
		fmt.Sprintf("vigil_packets_total{source=\"ot-packets\",outcome=\"decoded\"} %d\n", packets),
		"vigil_packet_scan_states_evicted_total{source=\"ot-packets\"} 0\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, buf.String())
		}
	}
}
