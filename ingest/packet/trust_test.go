package packet

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/apache/arrow/go/v15/arrow/array"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/pcap/pcaptest"
)

// drainAll flushes x and returns the communications, findings and the
// row times of every batch.
func drainAll(x *Extractor) (comms []ingest.Communication, events []ingest.NetEvent, rowTimes []int64) {
	x.SettleTime()
	x.Flush()
	for b := x.TakeBatch(); b != nil; b = x.TakeBatch() {
		comms = append(comms, b.Comms...)
		events = append(events, b.Events...)
		rowTimes = append(rowTimes, batchRowTimes(b)...)
		b.Release()
	}
	return comms, events, rowTimes
}

func batchRowTimes(b *ingest.Batch) []int64 {
	var ts []int64
	if b.Record == nil {
		return nil
	}
	col := b.Record.Column(0).(*array.Timestamp)
	for r := 0; r < int(b.Record.NumRows()); r++ {
		ts = append(ts, int64(col.Value(r)))
	}
	return ts
}

// tcpConn is one TCP connection of a test, with the sequence numbers of
// both directions.
type tcpConn struct {
	t              testing.TB
	x              *Extractor
	client, server string
	cport, sport   uint16
	cseq, sseq     uint32
}

func (c *tcpConn) handshake(ts int64) {
	add(c.x, ts, 1, ether(ipTCP(c.t, c.client, c.server, c.cport, c.sport, c.cseq, "S", nil)))
	add(c.x, ts+1000, 1, ether(ipTCP(c.t, c.server, c.client, c.sport, c.cport, c.sseq, "SA", nil)))
	c.cseq++
	c.sseq++
	add(c.x, ts+2000, 1, ether(ipTCP(c.t, c.client, c.server, c.cport, c.sport, c.cseq, "A", nil)))
}

func (c *tcpConn) request(ts int64, b []byte) {
	add(c.x, ts, 1, ether(ipTCP(c.t, c.client, c.server, c.cport, c.sport, c.cseq, "AP", b)))
	c.cseq += uint32(len(b))
}

func (c *tcpConn) response(ts int64, b []byte) {
	add(c.x, ts, 1, ether(ipTCP(c.t, c.server, c.client, c.sport, c.cport, c.sseq, "AP", b)))
	c.sseq += uint32(len(b))
}

// modbusReadReply answers modbusRead(tid) with one register.
func modbusReadReply(tid uint16) []byte {
	return []byte{byte(tid >> 8), byte(tid), 0, 0, 0, 5, 1, 3, 2, 0, 7}
}

// TestRolesFromHandshake: a Modbus poll from client port 2404 (IEC 104's)
// or 2222 (EtherNet/IP I/O's) is Modbus, with the SYN's sender as the
// client; transaction ids whose bytes look like an IEC 104 start (0x68..)
// or an ENIP command (0x0004 little-endian) do not change that, with or
// without the handshake in the capture.
func TestRolesFromHandshake(t *testing.T) {
	for _, c := range []struct {
		name      string
		cport     uint16
		tid       uint16
		handshake bool
	}{
		{"2404 with handshake", 2404, 0x6801, true},
		{"2222 with handshake", 2222, 0x0400, true},
		{"2404 mid-session", 2404, 0x6801, false},
		{"2222 mid-session", 2222, 0x0400, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := newTestExtractor(t, nil)
			conn := &tcpConn{t: t, x: x, client: "10.0.0.1", server: "10.0.0.2", cport: c.cport, sport: 502, cseq: 1000, sseq: 5000}
			ts := t0
			if c.handshake {
				conn.handshake(ts)
			}
			for i := range 5 {
				ts += 1e8
				conn.request(ts, modbusRead(c.tid+uint16(i)))
				conn.response(ts+1e6, modbusReadReply(c.tid+uint16(i)))
			}
			comms, _, _ := drainAll(x)
			if len(comms) == 0 {
				t.Fatal("no communications")
			}
			for _, cm := range comms {
				if cm.Protocol != "modbus" || cm.Device != "10.0.0.1" || cm.DstPort != 502 || cm.SrcPort != c.cport {
					t.Errorf("communication %s %s:%d -> %s:%d protocol %q function %q; want modbus from the client to port 502",
						cm.Device, cm.SrcIP, cm.SrcPort, cm.DstIP, cm.DstPort, cm.Protocol, cm.Function)
				}
			}
			sum := x.Summary()
			if len(sum.Edges) != 1 || sum.Edges[0].Client.String() != "10.0.0.1" || sum.Edges[0].Port != 502 || sum.Edges[0].Protocol != "modbus" {
				t.Errorf("edges %+v, want one 10.0.0.1 -> 10.0.0.2:502 modbus", sum.Edges)
			}
		})
	}
}

// TestHandshakeDecidesRolesOverPorts: a connection from port 502 to port
// 4446 (seen in a public test capture) has the SYN's sender as client;
// the port guess does not reverse it.
func TestHandshakeDecidesRolesOverPorts(t *testing.T) {
	x := newTestExtractor(t, nil)
	conn := &tcpConn{t: t, x: x, client: "10.0.0.8", server: "10.0.0.57", cport: 502, sport: 4446, cseq: 1, sseq: 1}
	conn.handshake(t0)
	conn.request(t0+1e6, []byte("hello"))
	conn.response(t0+2e6, []byte("world"))
	drainAll(x)
	sum := x.Summary()
	if len(sum.Edges) != 1 || sum.Edges[0].Client.String() != "10.0.0.8" || sum.Edges[0].Port != 4446 {
		t.Errorf("edges %+v, want 10.0.0.8 -> 10.0.0.57:4446", sum.Edges)
	}
}

// spoofedFlood sends SYNs from n forged sources to 10.0.0.2:502, each
// answered by a SYN-ACK; every other forged address (a real host that
// never sent the SYN) answers the SYN-ACK with a RST.
func spoofedFlood(t testing.TB, x *Extractor, n int) {
	syn := ether(ipTCP(t, "172.16.0.1", "10.0.0.2", 1024, 502, 77, "S", nil))
	synack := ether(ipTCP(t, "10.0.0.2", "172.16.0.1", 502, 1024, 900, "SA", nil))
	rst := ether(ipTCP(t, "172.16.0.1", "10.0.0.2", 1024, 502, 78, "R", nil))
	for i := 0; i < n; i++ {
		src := 0xac100000 | uint32(i+1)
		port := uint16(1024 + i)
		binary.BigEndian.PutUint32(syn[14+12:], src)
		binary.BigEndian.PutUint16(syn[14+20:], port)
		binary.BigEndian.PutUint32(synack[14+16:], src)
		binary.BigEndian.PutUint16(synack[14+22:], port)
		binary.BigEndian.PutUint32(rst[14+12:], src)
		binary.BigEndian.PutUint16(rst[14+20:], port)
		ts := t0 + int64(i)*int64(5*time.Millisecond)
		add(x, ts, 1, syn)
		add(x, ts+1000, 1, synack)
		if i%2 == 0 {
			add(x, ts+2000, 1, rst)
		}
	}
}

// TestSpoofedFloodMakesNoAssets: 400 forged sources whose SYNs the target
// answers make no communication, no asset and no registry entry; the
// target's SYNs are counted, and the refused flows in the stats.
func TestSpoofedFloodMakesNoAssets(t *testing.T) {
	reg := ingest.NewRegistry()
	cfg := ingest.DefaultPacketConfig()
	cfg.MaxFlows = 64 // flows are evicted, so the half-open ones are counted
	x, err := NewExtractor(cfg, Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	spoofedFlood(t, x, 400)
	var synIn float64
	x.Flush()
	var comms []ingest.Communication
	var floods []ingest.NetEvent
	for b := x.TakeBatch(); b != nil; b = x.TakeBatch() {
		comms = append(comms, b.Comms...)
		for _, e := range b.Events {
			if e.Kind == "flood" {
				floods = append(floods, e)
			}
		}
		rec := b.Record
		for r := 0; r < int(rec.NumRows()); r++ {
			if rec.Column(1).(*array.String).Value(r) != "10.0.0.2" {
				continue
			}
			for c := ingest.NumFixedCols; c < int(rec.NumCols()); c++ {
				if rec.ColumnName(c) == "net_syn_in_10s" {
					synIn += rec.Column(c).(*array.Float64).Value(r)
				}
			}
		}
		b.Release()
	}
	if len(comms) != 0 {
		t.Errorf("%d communications, e.g. %+v; want none from forged sources", len(comms), comms[0])
	}
	sum := x.Summary()
	if len(sum.Assets) != 1 || sum.Assets[0].IP.String() != "10.0.0.2" {
		t.Errorf("assets %+v, want only the target", sum.Assets)
	}
	if synIn != 400 {
		t.Errorf("target's net_syn_in_10s summed to %v, want 400", synIn)
	}
	// 200 SYN/s is under flood_syn_per_second, but 400 distinct sources in
	// one window are over flood_sources: one flood finding on the target.
	if len(floods) != 1 || floods[0].Device != "10.0.0.2" || floods[0].Value != 400 || floods[0].Threshold != float64(cfg.FloodSources) {
		t.Errorf("flood findings %+v, want one on 10.0.0.2 counting 400 sources", floods)
	}
	for i := 0; i < reg.NumDevices(); i++ {
		if strings.HasPrefix(reg.DeviceName(int32(i)), "172.16.") {
			t.Errorf("forged source %s interned as a device", reg.DeviceName(int32(i)))
		}
	}
	if st := x.Stats(); st.HalfOpenFlows < 400-64 {
		t.Errorf("half-open flows %d, want at least %d", st.HalfOpenFlows, 400-64)
	}
}

// TestBackscatterMakesNoAssets: a host answering SYNs it never got from
// 400 addresses (SYN-ACK and RST backscatter of a flood elsewhere) makes
// none of them a client, asset or device.
func TestBackscatterMakesNoAssets(t *testing.T) {
	x := newTestExtractor(t, nil)
	synack := ether(ipTCP(t, "10.0.0.2", "172.16.0.1", 502, 1024, 900, "SA", nil))
	rst := ether(ipTCP(t, "10.0.0.2", "172.16.0.1", 502, 1024, 900, "RA", nil))
	for i := 0; i < 400; i++ {
		frame := synack
		if i%3 == 0 {
			frame = rst
		}
		binary.BigEndian.PutUint32(frame[14+16:], 0xac100000|uint32(i+1))
		binary.BigEndian.PutUint16(frame[14+22:], uint16(2000+i))
		add(x, t0+int64(i)*int64(time.Millisecond), 1, frame)
	}
	comms, _, _ := drainAll(x)
	for _, c := range comms {
		if strings.HasPrefix(c.SrcIP.String(), "172.16.") || strings.HasPrefix(c.Device, "172.16.") {
			t.Fatalf("communication with a backscatter address as client: %+v", c)
		}
	}
	for _, a := range x.Summary().Assets {
		if strings.HasPrefix(a.IP.String(), "172.16.") {
			t.Fatalf("backscatter address %s became an asset", a.IP)
		}
	}
}

// TestOneSidedTraffic: without a handshake in the capture, a flood of
// forged segments with garbage payload proves nothing, while a client
// whose well-formed OT request is all the capture shows is still reported
// with its function (the server, which was never seen sending, is not an
// asset).
func TestOneSidedTraffic(t *testing.T) {
	x := newTestExtractor(t, nil)
	frame := ether(ipTCP(t, "172.16.0.1", "10.0.0.2", 1024, 80, 1, "AP", []byte("garbage garbage")))
	for i := 0; i < 300; i++ {
		binary.BigEndian.PutUint32(frame[14+12:], 0xac100000|uint32(i+1))
		add(x, t0+int64(i)*1e6, 1, frame)
	}
	write := []byte{0, 9, 0, 0, 0, 6, 1, 6, 0, 40, 0xde, 0xad}
	add(x, t0+1e9, 1, ether(ipTCP(t, "10.0.0.7", "10.0.0.3", 40000, 502, 1, "AP", write)))
	comms, _, _ := drainAll(x)
	var fns []string
	for _, c := range comms {
		if strings.HasPrefix(c.Device, "172.16.") {
			t.Fatalf("garbage from a forged source became a communication: %+v", c)
		}
		if c.Function != "" {
			fns = append(fns, c.Device+" "+c.Function)
		}
	}
	if len(fns) != 1 || fns[0] != "10.0.0.7 write_single_register" {
		t.Errorf("functions %v, want the one-sided write", fns)
	}
	var assets []string
	for _, a := range x.Summary().Assets {
		assets = append(assets, a.IP.String())
	}
	if len(assets) != 1 || assets[0] != "10.0.0.7" {
		t.Errorf("assets %v, want only the writer", assets)
	}
}

// regularTraffic polls 10.0.0.2 from 10.0.0.1 every 100 ms for d,
// starting at start; at is called with each packet's index and time and
// may change the time.
func regularTraffic(t testing.TB, x *Extractor, start int64, d time.Duration, at func(i int, ts int64) int64) {
	conn := &tcpConn{t: t, x: x, client: "10.0.0.1", server: "10.0.0.2", cport: 40000, sport: 502, cseq: 1, sseq: 1}
	n := int(d / (100 * time.Millisecond))
	for i := 0; i < n; i++ {
		ts := start + int64(i)*int64(100*time.Millisecond)
		if at != nil {
			ts = at(i, ts)
		}
		if i%2 == 0 {
			conn.request(ts, modbusRead(uint16(i)))
		} else {
			conn.response(ts, modbusReadReply(uint16(i-1)))
		}
	}
}

// TestTimeOutlierOpensNoWindow: one packet stamped 71 minutes ahead amid
// regular traffic, and one stamped 3 hours back, are counted as outliers
// and counted at the previous packet's time: no window beyond the real
// span is opened.
func TestTimeOutlierOpensNoWindow(t *testing.T) {
	x := newTestExtractor(t, nil)
	regularTraffic(t, x, t0, 2*time.Minute, func(i int, ts int64) int64 {
		switch i {
		case 300:
			return ts + int64(71*time.Minute)
		case 900:
			return ts - int64(3*time.Hour)
		}
		return ts
	})
	_, _, rowTimes := drainAll(x)
	end := t0 + int64(2*time.Minute) + int64(time.Minute)
	for _, rt := range rowTimes {
		if rt > end || rt < t0 {
			t.Fatalf("a row at %v, outside the traffic's span %v..%v", time.Unix(0, rt).UTC(), time.Unix(0, t0).UTC(), time.Unix(0, end).UTC())
		}
	}
	st := x.Stats()
	if st.TimeOutliers != 2 || st.TimeJumps != 0 {
		t.Errorf("time outliers %d jumps %d, want 2 and 0", st.TimeOutliers, st.TimeJumps)
	}
	if o, _ := x.TimeAnomalies(); !o.Set || o.Packet != 300 || o.TimeNanos-o.PrevNanos < int64(71*time.Minute) {
		t.Errorf("first outlier %+v, want packet 300, 71 minutes ahead", o)
	}
}

// TestTimeGapAccepted: a capture with a real two-hour gap (the packets
// after it follow) keeps its timeline: rows after the gap carry its times.
func TestTimeGapAccepted(t *testing.T) {
	x := newTestExtractor(t, nil)
	regularTraffic(t, x, t0, 2*time.Minute, func(i int, ts int64) int64 {
		if i >= 600 {
			return ts + int64(2*time.Hour)
		}
		return ts
	})
	_, _, rowTimes := drainAll(x)
	st := x.Stats()
	if st.TimeJumps != 1 || st.TimeOutliers != 0 {
		t.Errorf("time jumps %d outliers %d, want 1 and 0", st.TimeJumps, st.TimeOutliers)
	}
	late := 0
	for _, rt := range rowTimes {
		if rt > t0+int64(2*time.Hour) {
			late++
		}
	}
	if late == 0 {
		t.Errorf("no rows after the gap")
	}
}

// TestFirstPacketAfterGapKeepsItsTime: the packet beyond a real gap is
// held until the next one confirms the gap, then added at its own time: a
// host whose first packet it is starts after the gap, not before it (its
// group's learning would otherwise start hours early and be over at once).
func TestFirstPacketAfterGapKeepsItsTime(t *testing.T) {
	x := newTestExtractor(t, nil)
	poll := ether(ipUDP(t, "10.0.0.1", "10.0.0.2", 40000, 161, []byte("poll")))
	for i := range 60 {
		add(x, t0+int64(i)*int64(time.Second), 1, poll)
	}
	late := ether(ipUDP(t, "10.0.0.9", "10.0.0.2", 40001, 161, []byte("late")))
	after := t0 + int64(2*time.Hour)
	for i := range 3 {
		add(x, after+int64(i)*int64(time.Second), 1, late)
	}
	comms, _, _ := drainAll(x)
	found := false
	for _, c := range comms {
		if c.Device != "10.0.0.9" {
			continue
		}
		found = true
		if c.FirstNanos < after {
			t.Errorf("10.0.0.9's first packet dated %v before the gap's end", time.Duration(after-c.FirstNanos))
		}
	}
	if st := x.Stats(); !found || st.TimeJumps != 1 || st.TimeOutliers != 0 || st.Packets != 63 {
		t.Errorf("found %v, jumps %d, outliers %d, packets %d; want the late host, 1, 0, 63", found, st.TimeJumps, st.TimeOutliers, st.Packets)
	}
}

// TestReplayWarnsOfTimeOutlier: the replay source names the packet in its
// summary's warnings and logs it once.
func TestReplayWarnsOfTimeOutlier(t *testing.T) {
	req := ether(ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, 1, "AP", modbusRead(1)))
	var frames [][]byte
	var offsets []time.Duration
	for i := 0; i < 50; i++ {
		frames = append(frames, req)
		d := time.Duration(i) * 100 * time.Millisecond
		if i == 20 {
			d += 71 * time.Minute
		}
		offsets = append(offsets, d)
	}
	path := writePcap(t, frames, offsets)
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	src, err := OpenReplay(ingest.DefaultPacketConfig(), ReplayOptions{Logger: logger}, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for {
		b, err := src.ReadBatch(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
	sum := src.Summary()
	if len(sum.Warnings) != 1 || !strings.Contains(sum.Warnings[0].Reason, "packet 21 of the file") || sum.Warnings[0].File != path {
		t.Errorf("warnings %v, want one naming packet 21 of %s", sum.Warnings, path)
	}
	if n := strings.Count(log.String(), "capture timestamp out of line"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, log.String())
	}
	if sum.Stats.TimeOutliers != 1 {
		t.Errorf("time outliers %d, want 1", sum.Stats.TimeOutliers)
	}
}

// TestMITMRetransmission: a retransmission whose bytes differ from the
// first delivery raises one mitm_tcp finding about the server (repeats in
// the same batch raise its Value); an identical retransmission and a
// keep-alive probe raise nothing.
func TestMITMRetransmission(t *testing.T) {
	x := newTestExtractor(t, nil)
	conn := &tcpConn{t: t, x: x, client: "10.0.0.1", server: "10.0.0.2", cport: 40000, sport: 502, cseq: 1000, sseq: 5000}
	conn.handshake(t0)
	write := []byte{0, 9, 0, 0, 0, 6, 1, 6, 0, 40, 0x00, 0x10}
	conn.request(t0+1e6, write)
	conn.response(t0+2e6, write)
	// The same bytes again: a plain retransmission.
	add(x, t0+3e6, 1, ether(ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, conn.cseq-12, "AP", write)))
	// A keep-alive probe: one garbage byte just before the next sequence number.
	add(x, t0+4e6, 1, ether(ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, conn.cseq-1, "A", []byte{0})))
	if st := x.Stats(); st.ConflictingRetransmissions != 0 || st.Retransmissions != 2 {
		t.Fatalf("conflicting %d retransmissions %d, want 0 and 2", st.ConflictingRetransmissions, st.Retransmissions)
	}
	// The same sequence numbers carrying another value: someone rewrote it.
	forged := append([]byte(nil), write...)
	forged[10], forged[11] = 0x27, 0x0f
	add(x, t0+5e6, 1, ether(ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, conn.cseq-12, "AP", forged)))
	// A segment overlapping the end of the delivered bytes and carrying new
	// ones: the overlap is compared too.
	next := append(append([]byte(nil), forged[8:]...), modbusRead(10)...)
	add(x, t0+6e6, 1, ether(ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, conn.cseq-4, "AP", next)))
	_, events, _ := drainAll(x)
	var mitm []ingest.NetEvent
	for _, e := range events {
		if e.Kind == "mitm_tcp" {
			mitm = append(mitm, e)
		}
	}
	if len(mitm) != 1 {
		t.Fatalf("mitm_tcp findings %+v, want one", mitm)
	}
	e := mitm[0]
	if e.Device != "10.0.0.2" || e.SrcIP.String() != "10.0.0.1" || e.DstPort != 502 || e.SrcPort != 40000 || e.Protocol != "modbus" || e.Value != 2 {
		t.Errorf("finding %+v", e)
	}
	if !strings.Contains(e.Detail, "2 of 12 bytes differ") || !strings.Contains(e.Detail, "0x27, was 0x00") {
		t.Errorf("detail %q", e.Detail)
	}
	if st := x.Stats(); st.ConflictingRetransmissions != 2 || st.PDUs < 3 {
		t.Errorf("conflicting retransmissions %d PDUs %d", st.ConflictingRetransmissions, st.PDUs)
	}
}

func arpRebindFrame(t testing.TB, op uint16, senderIP net.IP, senderMAC net.HardwareAddr, targetIP net.IP) []byte {
	eth := &layers.Ethernet{SrcMAC: senderMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: senderMAC, SourceProtAddress: senderIP.To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: targetIP.To4()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, a); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// TestMITMARP: an ARP reply binding a known IP to another MAC raises one
// mitm_arp finding about that IP; flapping back to the previous MAC (the
// real host answering between poisonings) does not raise another, a
// third MAC does.
func TestMITMARP(t *testing.T) {
	x := newTestExtractor(t, nil)
	plc, hmi := net.IPv4(10, 0, 0, 5), net.IPv4(10, 0, 0, 1)
	real := net.HardwareAddr{0, 0x1b, 0x1b, 0, 0, 5}
	attacker := net.HardwareAddr{0x02, 0xee, 0, 0, 0, 0x66}
	other := net.HardwareAddr{0x02, 0xee, 0, 0, 0, 0x77}
	ts := t0
	send := func(op uint16, mac net.HardwareAddr, target net.IP) {
		ts += int64(time.Second)
		add(x, ts, 1, arpRebindFrame(t, op, plc, mac, target))
	}
	send(layers.ARPReply, real, hmi)
	send(layers.ARPRequest, real, hmi) // same binding
	send(layers.ARPReply, attacker, hmi)
	send(layers.ARPReply, real, hmi)     // flap back
	send(layers.ARPReply, attacker, hmi) // and again
	send(layers.ARPReply, other, plc)    // gratuitous, a third MAC
	_, events, _ := drainAll(x)
	var mitm []ingest.NetEvent
	for _, e := range events {
		if e.Kind == "mitm_arp" {
			mitm = append(mitm, e)
		}
	}
	if len(mitm) != 2 {
		t.Fatalf("mitm_arp findings %+v, want two", mitm)
	}
	if e := mitm[0]; e.Device != "10.0.0.5" || e.SrcIP.String() != "10.0.0.5" || e.DstIP.String() != "10.0.0.1" ||
		!strings.Contains(e.Detail, "ARP reply binds 10.0.0.5 to 02:ee:00:00:00:66, which was bound to 00:1b:1b:00:00:05") {
		t.Errorf("first finding %+v", e)
	}
	if e := mitm[1]; !strings.Contains(e.Detail, "gratuitous ARP binds 10.0.0.5 to 02:ee:00:00:00:77") {
		t.Errorf("second finding %+v", e)
	}
	if st := x.Stats(); st.ARPRebindings != 4 {
		t.Errorf("ARP rebindings %d, want 4", st.ARPRebindings)
	}
}

// TestARPBindingsBounded: the IP-to-MAC table stays within max_hosts and
// counts what it forgets.
func TestARPBindingsBounded(t *testing.T) {
	x := newTestExtractor(t, func(c *ingest.PacketConfig) { c.MaxHosts = 16 })
	mac := net.HardwareAddr{0, 0x1b, 0x1b, 0, 0, 5}
	for i := 0; i < 100; i++ {
		add(x, t0+int64(i), 1, arpRebindFrame(t, layers.ARPReply, net.IPv4(10, 0, 1, byte(i)), mac, net.IPv4(10, 0, 0, 1)))
	}
	if n := len(x.trust.arp); n > 16 {
		t.Errorf("%d ARP bindings kept, bound 16", n)
	}
	if st := x.Stats(); st.ARPBindingsEvicted != 100-16 {
		t.Errorf("ARP bindings evicted %d, want %d", st.ARPBindingsEvicted, 100-16)
	}
}

// TestTrustAllocatesNothingPerPacket: a proven Modbus conversation with
// retransmissions (compared) and ARP refreshes allocates nothing per
// packet once warm.
func TestTrustAllocatesNothingPerPacket(t *testing.T) {
	x := newTestExtractor(t, nil)
	conn := &tcpConn{t: t, x: x, client: "10.0.0.1", server: "10.0.0.2", cport: 40000, sport: 502, cseq: 1000, sseq: 5000}
	conn.handshake(t0)
	ts := t0 + 1e6
	arp := arpRebindFrame(t, layers.ARPReply, net.IPv4(10, 0, 0, 2), net.HardwareAddr{0, 1, 2, 3, 4, 5}, net.IPv4(10, 0, 0, 1))
	req := ether(ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, 0, "AP", modbusRead(1)))
	resp := ether(ipTCP(t, "10.0.0.2", "10.0.0.1", 502, 40000, 0, "AP", modbusReadReply(1)))
	step := func() {
		ts += 1e6
		binary.BigEndian.PutUint32(req[14+24:], conn.cseq)
		add(x, ts, 1, req)
		add(x, ts+1, 1, req) // retransmitted, compared with the ring
		conn.cseq += 12
		binary.BigEndian.PutUint32(resp[14+24:], conn.sseq)
		add(x, ts+2, 1, resp)
		conn.sseq += 11
		add(x, ts+3, 1, arp)
	}
	for range 20 {
		step()
	}
	if allocs := testing.AllocsPerRun(500, step); allocs > 0 {
		t.Errorf("%v allocations per exchange", allocs)
	}
	if st := x.Stats(); st.ConflictingRetransmissions != 0 || st.Retransmissions == 0 {
		t.Errorf("conflicting %d retransmissions %d", st.ConflictingRetransmissions, st.Retransmissions)
	}
}

// TestTrustMetrics: the new counters reach /metrics.
func TestTrustMetrics(t *testing.T) {
	set := metrics.NewSet()
	x := newTestExtractor(t, func(c *ingest.PacketConfig) { c.MaxFlows = 16 })
	x.RegisterMetrics(set, "test")
	spoofedFlood(t, x, 100)
	regularTraffic(t, x, t0+int64(time.Second), time.Second, func(i int, ts int64) int64 {
		if i == 5 {
			return ts + int64(time.Hour)
		}
		return ts
	})
	drainAll(x)
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	st := x.Stats()
	for _, want := range []string{
		fmt.Sprintf(`vigil_packet_tcp_half_open_flows_total{source="test"} %d`, st.HalfOpenFlows),
		`vigil_packet_time_outliers_total{source="test"} 1`,
		`vigil_packet_non_asset_hosts_evicted_total{source="test"}`,
		`vigil_packet_tcp_conflicting_retransmissions_total{source="test"} 0`,
		`vigil_packet_arp_rebindings_total{source="test"} 0`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if st.HalfOpenFlows == 0 {
		t.Errorf("no half-open flows counted")
	}
}

// TestCleanCapturesRaiseNoMITM: real captures of normal traffic raise no
// mitm_tcp or mitm_arp finding.
func TestCleanCapturesRaiseNoMITM(t *testing.T) {
	dir := pcaptest.Require(t)
	clean := []string{
		"ITI-ICS-Security-Tools/ModbusTCP/ModbusTCP.pcap",
		"ITI-ICS-Security-Tools/bro/modbus/modbusBig.pcap",
		"ITI-ICS-Security-Tools/s7/S7Comm/s7comm_clean.pcap",
	}
	dnp3, _ := filepath.Glob(filepath.Join(dir, "ITI-ICS-Security-Tools/dnp3/*.pcap"))
	for _, f := range dnp3 {
		rel, _ := filepath.Rel(dir, f)
		clean = append(clean, rel)
	}
	for _, rel := range clean {
		path := filepath.Join(dir, rel)
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		sum, _, events, _ := replayAll(t, ingest.DefaultPacketConfig(), ReplayOptions{}, path)
		for _, e := range events {
			if strings.HasPrefix(e.Kind, "mitm_") {
				t.Errorf("%s: %s %s", rel, e.Kind, e.Detail)
			}
		}
		if sum.Stats.ConflictingRetransmissions != 0 || sum.Stats.ARPRebindings != 0 {
			t.Errorf("%s: %+v", rel, sum.Stats.TrustStats)
		}
	}
}

// TestMaxTimeJumpValidated: a zero bound is refused with the remedy.
func TestMaxTimeJumpValidated(t *testing.T) {
	cfg := ingest.DefaultPacketConfig()
	cfg.MaxTimeJump = 0
	if _, err := NewExtractor(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "packets.max_time_jump") {
		t.Errorf("error %v, want one naming packets.max_time_jump", err)
	}
}
