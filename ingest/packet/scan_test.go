package packet

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/pcap/pcaptest"
)

// serialize builds a frame from gopacket layers, with lengths and
// checksums filled in.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ip4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
}

func ipUDP(t testing.TB, src, dst string, sport, dport uint16, payload []byte) []byte {
	ip := ip4(src, dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, udp, gopacket.Payload(payload))
}

func ipICMP(t testing.TB, src, dst string, typ, code uint8, payload []byte) []byte {
	return serialize(t, ip4(src, dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: 7, Seq: 1}, gopacket.Payload(payload))
}

// unreachable is the ICMP port unreachable error a host sends back for the
// datagram orig (an IPv4 packet): it quotes its IP header and 8 bytes.
func unreachable(t testing.TB, from, to string, orig []byte) []byte {
	return ipICMP(t, from, to, 3, 3, orig[:28])
}

func arpMessage(t testing.TB, op uint16, sender, target string, senderMAC net.HardwareAddr, dstMAC net.HardwareAddr) []byte {
	eth := &layers.Ethernet{SrcMAC: senderMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: senderMAC, SourceProtAddress: net.ParseIP(sender).To4(),
		DstHwAddress: make([]byte, 6), DstProtAddress: net.ParseIP(target).To4()}
	return serialize(t, eth, a)
}

// modbusPDU is a Modbus/TCP request of function fc with data.
func modbusPDU(tid uint16, fc byte, data ...byte) []byte {
	n := 2 + len(data)
	return append([]byte{byte(tid >> 8), byte(tid), 0, 0, byte(n >> 8), byte(n), 1, fc}, data...)
}

// scanRun drives an extractor and collects its findings.
type scanRun struct {
	t      *testing.T
	x      *Extractor
	events []ingest.NetEvent
}

func newScanRun(t *testing.T, mod func(*ingest.PacketConfig)) *scanRun {
	return &scanRun{t: t, x: newTestExtractor(t, mod)}
}

func (r *scanRun) add(ts int64, ip []byte) { add(r.x, ts, 1, ether(ip)) }

// tcpSession opens (and answers) a TCP connection from client to server.
func (r *scanRun) tcpSession(ts int64, client, server string, sport, dport uint16) {
	r.add(ts, ipTCP(r.t, client, server, sport, dport, 100, "S", nil))
	r.add(ts+100e3, ipTCP(r.t, server, client, dport, sport, 500, "SA", nil))
	r.add(ts+200e3, ipTCP(r.t, client, server, sport, dport, 101, "A", nil))
}

func (r *scanRun) finish() []ingest.NetEvent {
	r.x.Flush()
	for b := r.x.TakeBatch(); b != nil; b = r.x.TakeBatch() {
		r.events = append(r.events, b.Events...)
		b.Release()
	}
	return r.events
}

// kinds counts events by kind, leaving out the kinds of one packet
// (malformed, unknown_asset, mitm_*).
func kinds(events []ingest.NetEvent) map[string]int {
	m := map[string]int{}
	for _, e := range events {
		if e.Kind != "malformed" && e.Kind != "unknown_asset" && !strings.HasPrefix(e.Kind, "mitm") {
			m[e.Kind]++
		}
	}
	return m
}

func find(events []ingest.NetEvent, kind string) *ingest.NetEvent {
	for i := range events {
		if events[i].Kind == kind {
			return &events[i]
		}
	}
	return nil
}

// wantKinds checks the findings are exactly want (kind -> count).
func wantKinds(t *testing.T, events []ingest.NetEvent, want map[string]int) {
	t.Helper()
	got := kinds(events)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		var lines []string
		for _, e := range events {
			lines = append(lines, e.Kind+": "+e.Detail)
		}
		t.Errorf("findings %v, want %v:\n%s", got, want, strings.Join(lines, "\n"))
	}
}

const second = int64(time.Second)

// TestARPSweep: a broadcast ARP request for every address of a /24, ten
// of them answered, is one sweep_arp naming the sender; the unanswered
// requests, followed up later, do not report it again.
func TestARPSweep(t *testing.T) {
	r := newScanRun(t, nil)
	scanner := net.HardwareAddr{0, 0x1b, 0x1b, 0, 0, 9}
	for i := 1; i <= 254; i++ {
		ts := t0 + int64(i)*10e6
		r.add2(ts, arpMessage(t, layers.ARPRequest, "10.0.0.9", fmt.Sprintf("10.0.0.%d", i), scanner, layers.EthernetBroadcast))
		if i%25 == 0 {
			r.add2(ts+1e6, arpMessage(t, layers.ARPReply, fmt.Sprintf("10.0.0.%d", i), "10.0.0.9", net.HardwareAddr{0, 0x1b, 0x1b, 0, 1, byte(i)}, scanner))
		}
	}
	events := r.finish()
	wantKinds(t, events, map[string]int{"sweep_arp": 1})
	if e := find(events, "sweep_arp"); e == nil || e.Device != "10.0.0.9" || e.Value < 200 {
		t.Errorf("sweep_arp %+v", e)
	}
}

func (r *scanRun) add2(ts int64, frame []byte) { add(r.x, ts, 1, frame) }

// TestARPNeighbourRefreshIsNoSweep: a gateway re-validating 60 known
// neighbours by unicast ARP, all answered, is not a sweep.
func TestARPNeighbourRefreshIsNoSweep(t *testing.T) {
	r := newScanRun(t, nil)
	gw := net.HardwareAddr{0, 0x1b, 0x1b, 0, 0, 1}
	for i := 2; i < 62; i++ {
		ts := t0 + int64(i)*50e6
		mac := net.HardwareAddr{0, 0x1b, 0x1b, 0, 1, byte(i)}
		r.add2(ts, arpMessage(t, layers.ARPRequest, "10.0.0.1", fmt.Sprintf("10.0.0.%d", i), gw, mac))
		r.add2(ts+1e6, arpMessage(t, layers.ARPReply, fmt.Sprintf("10.0.0.%d", i), "10.0.0.1", mac, gw))
	}
	wantKinds(t, r.finish(), map[string]int{})
}

// TestICMPSweep: echo requests to a /24, a few answered, are one
// sweep_icmp.
func TestICMPSweep(t *testing.T) {
	r := newScanRun(t, nil)
	for i := 1; i <= 254; i++ {
		ts := t0 + int64(i)*10e6
		dst := fmt.Sprintf("10.0.1.%d", i)
		r.add(ts, ipICMP(t, "10.0.0.9", dst, 8, 0, []byte("ping")))
		if i%50 == 0 {
			r.add(ts+1e6, ipICMP(t, dst, "10.0.0.9", 0, 0, []byte("ping")))
		}
	}
	events := r.finish()
	wantKinds(t, events, map[string]int{"sweep_icmp": 1})
	if e := find(events, "sweep_icmp"); e == nil || e.Device != "10.0.0.9" {
		t.Errorf("sweep_icmp %+v", e)
	}
}

// TestSlowICMPSweep: one unanswered echo request every 3 s is below the
// shortest window's rule and still a sweep.
func TestSlowICMPSweep(t *testing.T) {
	r := newScanRun(t, nil)
	for i := 1; i <= 30; i++ {
		r.add(t0+int64(i)*3*second, ipICMP(t, "10.0.0.9", fmt.Sprintf("10.0.1.%d", i), 8, 0, nil))
	}
	wantKinds(t, r.finish(), map[string]int{"sweep_icmp": 1})
}

// TestMonitoringPingsAreNoSweep: a monitoring server pinging 60 devices
// every 30 s for an hour, 20 of them down, raises nothing: its echoes are
// mostly answered.
func TestMonitoringPingsAreNoSweep(t *testing.T) {
	r := newScanRun(t, nil)
	for c := int64(0); c < 120; c++ {
		for i := 1; i <= 60; i++ {
			ts := t0 + c*30*second + int64(i)*100e6
			dst := fmt.Sprintf("10.0.7.%d", i)
			r.add(ts, ipICMP(t, "10.0.0.5", dst, 8, 0, nil))
			if i%3 != 0 {
				r.add(ts+1e6, ipICMP(t, dst, "10.0.0.5", 0, 0, nil))
			}
		}
	}
	wantKinds(t, r.finish(), map[string]int{})
}

// TestSlowPortScan: 300 SYNs 1.5 s apart, each refused, never reach the
// shortest window's 50 ports, and are one scan_ports_slow.
func TestSlowPortScan(t *testing.T) {
	r := newScanRun(t, nil)
	for p := 1; p <= 300; p++ {
		ts := t0 + int64(p)*1500e6
		r.add(ts, ipTCP(t, "10.0.0.9", "10.0.0.2", 40000, uint16(p), 1, "S", nil))
		r.add(ts+1e5, ipTCP(t, "10.0.0.2", "10.0.0.9", uint16(p), 40000, 0, "RA", nil))
	}
	events := r.finish()
	wantKinds(t, events, map[string]int{"scan_ports_slow": 1})
	if e := find(events, "scan_ports_slow"); e == nil || e.Device != "10.0.0.9" || e.DstIP.String() != "10.0.0.2" || e.Transport != 6 {
		t.Errorf("scan_ports_slow %+v", e)
	}
}

// TestSlowScanBelowFailedRate: one unanswered SYN to a new host every 10 s
// (6 a minute, under scan_failed_probes) is caught by the long window's
// count of distinct hosts.
func TestSlowScanBelowFailedRate(t *testing.T) {
	r := newScanRun(t, nil)
	for i := 1; i <= 40; i++ {
		r.add(t0+int64(i)*10*second, ipTCP(t, "10.0.0.9", fmt.Sprintf("10.0.2.%d", i), 40000, 502, 1, "S", nil))
	}
	events := r.finish()
	wantKinds(t, events, map[string]int{"scan_hosts_slow": 1})
	if e := find(events, "scan_hosts_slow"); e == nil || e.Value != 30 || e.Threshold != 30 {
		t.Errorf("scan_hosts_slow %+v", e)
	}
}

// TestSmallOTScan: 12 probes of port 502 on 12 hosts in 20 s, refused or
// unanswered, are a scan inside an OT segment.
func TestSmallOTScan(t *testing.T) {
	r := newScanRun(t, nil)
	for i := 1; i <= 12; i++ {
		ts := t0 + int64(i)*1666e6
		dst := fmt.Sprintf("10.0.3.%d", i)
		r.add(ts, ipTCP(t, "10.0.0.9", dst, 40000+uint16(i), 502, 1, "S", nil))
		if i%2 == 0 {
			r.add(ts+1e5, ipTCP(t, dst, "10.0.0.9", 502, 40000+uint16(i), 0, "RA", nil))
		}
	}
	events := r.finish()
	wantKinds(t, events, map[string]int{"scan_hosts_slow": 1})
	if e := find(events, "scan_hosts_slow"); e == nil || e.Value != 12 || e.DstPort != 502 {
		t.Errorf("scan_hosts_slow %+v", e)
	}
}

// TestPollingIsNoScan: a master polling 5 outstations every second for an
// hour, one of them down (its SYNs unanswered), reconnecting to each every
// minute, raises nothing: the failures are all towards one target.
func TestPollingIsNoScan(t *testing.T) {
	r := newScanRun(t, nil)
	tid := uint16(0)
	for s := int64(0); s < 3600; s++ {
		ts := t0 + s*second
		for o := 1; o <= 5; o++ {
			dst := fmt.Sprintf("10.0.4.%d", o)
			sport := uint16(41000 + o*100 + int(s/60)%100)
			if o == 5 {
				if s%10 == 0 {
					r.add(ts, ipTCP(t, "10.0.0.1", dst, sport, 502, 1, "S", nil)) // down: retried
				}
				continue
			}
			if s%60 == 0 {
				r.tcpSession(ts, "10.0.0.1", dst, sport, 502)
			}
			tid++
			seq := 101 + uint32(s%60)*12
			r.add(ts+1e6, ipTCP(t, "10.0.0.1", dst, sport, 502, seq, "AP", modbusPDU(tid, 3, 0, 10*byte(o), 0, 8)))
			r.add(ts+2e6, ipTCP(t, dst, "10.0.0.1", 502, sport, 501+uint32(s%60)*25, "AP", modbusPDU(tid, 3, append([]byte{16}, make([]byte, 16)...)...)))
		}
	}
	wantKinds(t, r.finish(), map[string]int{})
}

// TestOneWayUDPIsNoScan: a DHCP server answering 12 booting devices at
// once (unicast from port 67, never answered on that flow) and a device
// sending syslog and SNMP traps to one collector raise nothing.
func TestOneWayUDPIsNoScan(t *testing.T) {
	r := newScanRun(t, nil)
	for i := 1; i <= 12; i++ {
		ts := t0 + int64(i)*2*second
		r.add(ts, ipUDP(t, "10.0.0.1", fmt.Sprintf("10.0.0.%d", 100+i), 67, 68, make([]byte, 300)))
	}
	for s := int64(0); s < 600; s++ {
		r.add(t0+s*second, ipUDP(t, "10.0.0.20", "10.0.0.2", 40514, 514, []byte("<13>msg")))
		r.add(t0+s*second+1e6, ipUDP(t, "10.0.0.20", "10.0.0.2", 40162, 162, []byte{0x30, 0}))
	}
	wantKinds(t, r.finish(), map[string]int{})
}

// TestUDPPortScan: UDP datagrams to 60 ports in a second, answered by
// ICMP port unreachable, count like TCP (scan_ports); a slow one, 2 s
// apart, is scan_ports_slow through the ICMP errors.
func TestUDPPortScan(t *testing.T) {
	r := newScanRun(t, nil)
	for p := 1; p <= 60; p++ {
		ts := t0 + int64(p)*10e6
		probe := ipUDP(t, "10.0.0.9", "10.0.0.2", 40000, uint16(p), []byte{0})
		r.add(ts, probe)
		r.add(ts+1e5, unreachable(t, "10.0.0.2", "10.0.0.9", probe))
	}
	events := r.finish()
	wantKinds(t, events, map[string]int{"scan_ports": 1})
	if e := find(events, "scan_ports"); e == nil || e.Transport != 17 || e.Value != 60 {
		t.Errorf("scan_ports %+v", e)
	}

	r = newScanRun(t, nil)
	for p := 1; p <= 40; p++ {
		ts := t0 + int64(p)*2*second
		probe := ipUDP(t, "10.0.0.9", "10.0.0.2", 40000, uint16(1000+p), []byte{0})
		r.add(ts, probe)
		r.add(ts+1e5, unreachable(t, "10.0.0.2", "10.0.0.9", probe))
	}
	events = r.finish()
	wantKinds(t, events, map[string]int{"scan_ports_slow": 1})
	if e := find(events, "scan_ports_slow"); e == nil || e.Transport != 17 || e.DstIP.String() != "10.0.0.2" {
		t.Errorf("scan_ports_slow %+v", e)
	}
}

// TestModbusIdentify: read device identification (0x2B/0x0E) sent to 3
// PLCs is identify with the protocol; the same to 2 PLCs is not, nor an
// HMI asking 3 PLCs for it every 10 s.
func TestModbusIdentify(t *testing.T) {
	r := newScanRun(t, nil)
	for i := 1; i <= 3; i++ {
		r.tcpSession(t0, "10.0.0.1", fmt.Sprintf("10.0.5.%d", i), 40000, 502)
	}
	seq := uint32(101)
	for s := int64(0); s < 90; s++ {
		for i := 1; i <= 3; i++ {
			r.add(t0+second+s*10*second+int64(i)*1e6, ipTCP(t, "10.0.0.1", fmt.Sprintf("10.0.5.%d", i), 40000, 502, seq, "AP", modbusPDU(1, 0x2b, 0x0e, 1, 0)))
		}
		seq += 11
	}
	wantKinds(t, r.finish(), map[string]int{})

	for _, n := range []int{3, 2} {
		r := newScanRun(t, nil)
		for i := 1; i <= n; i++ {
			ts := t0 + int64(i)*second
			dst := fmt.Sprintf("10.0.5.%d", i)
			r.tcpSession(ts, "10.0.0.9", dst, 40000, 502)
			r.add(ts+1e6, ipTCP(t, "10.0.0.9", dst, 40000, 502, 101, "AP", modbusPDU(1, 0x2b, 0x0e, 1, 0)))
		}
		events := r.finish()
		if n == 2 {
			wantKinds(t, events, map[string]int{})
			continue
		}
		wantKinds(t, events, map[string]int{"identify": 1})
		if e := find(events, "identify"); e == nil || e.Protocol != "modbus" || e.Device != "10.0.0.9" || e.Value != 3 {
			t.Errorf("identify %+v", e)
		}
	}
}

// TestBACnetWhoIsSweep: a Who-Is sent host by host from port 47808 is
// identify; a Who-Is broadcast, as every BACnet workstation sends, is not.
func TestBACnetWhoIsSweep(t *testing.T) {
	whoIs := []byte{0x81, 0x0a, 0x00, 0x08, 0x01, 0x00, 0x10, 0x08}
	r := newScanRun(t, nil)
	for i := 1; i <= 20; i++ {
		r.add(t0+int64(i)*100e6, ipUDP(t, "10.0.0.9", fmt.Sprintf("10.0.6.%d", i), 47808, 47808, whoIs))
	}
	events := r.finish()
	if e := find(events, "identify"); e == nil || e.Protocol != "bacnet" {
		t.Errorf("identify %+v in %v", e, kinds(events))
	}
	r = newScanRun(t, nil)
	for i, dst := range []string{"10.0.6.255", "255.255.255.255", "10.0.7.255"} {
		r.add(t0+int64(i)*second, ipUDP(t, "10.0.0.8", dst, 47808, 47808, whoIs))
	}
	wantKinds(t, r.finish(), map[string]int{})
}

// TestListIdentitySweep: an EtherNet/IP ListIdentity (encapsulation
// command 0x63) sent over UDP to 5 hosts is identify with protocol enip.
func TestListIdentitySweep(t *testing.T) {
	listIdentity := make([]byte, 24)
	listIdentity[0] = 0x63
	r := newScanRun(t, nil)
	for i := 1; i <= 5; i++ {
		r.add(t0+int64(i)*100e6, ipUDP(t, "10.0.0.9", fmt.Sprintf("10.0.8.%d", i), 50000, 44818, listIdentity))
	}
	events := r.finish()
	if e := find(events, "identify"); e == nil || e.Protocol != "enip" || e.Value != 5 || e.DstPort != 44818 {
		t.Errorf("identify %+v in %v", e, kinds(events))
	}
}

// dnp3CRC is CRC-16/DNP, bit by bit.
func dnp3CRC(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xa6bc
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

// TestDNP3BroadcastIdentify: a link status request to the broadcast
// address 0xFFFF sent to 3 hosts is identify with protocol dnp3.
func TestDNP3BroadcastIdentify(t *testing.T) {
	if c := dnp3CRC([]byte("123456789")); c != 0xea82 {
		t.Fatalf("CRC-16/DNP check value %#04x", c)
	}
	h := []byte{0x05, 0x64, 5, 0xc9, 0xff, 0xff, 1, 0} // DIR, PRM, request link status; to 0xFFFF from 1
	c := dnp3CRC(h)
	frame := append(h, byte(c), byte(c>>8))
	r := newScanRun(t, nil)
	for i := 1; i <= 3; i++ {
		dst := fmt.Sprintf("10.0.9.%d", i)
		r.tcpSession(t0+int64(i)*second, "10.0.0.9", dst, 40000, 20000)
		r.add(t0+int64(i)*second+1e6, ipTCP(t, "10.0.0.9", dst, 40000, 20000, 101, "AP", frame))
	}
	events := r.finish()
	if e := find(events, "identify"); e == nil || e.Protocol != "dnp3" || e.Value != 3 {
		t.Errorf("identify %+v in %v", e, kinds(events))
	}
}

// TestS7SZLIdentify: an S7 read-SZL request (userdata, CPU functions,
// SZL 0x0011 module identification) sent to 3 PLCs is identify with
// protocol s7comm.
func TestS7SZLIdentify(t *testing.T) {
	szl := []byte{
		0x03, 0x00, 0x00, 0x21, // TPKT, 33 bytes
		0x02, 0xf0, 0x80, // COTP DT
		0x32, 0x07, 0x00, 0x00, 0x00, 0x01, 0x00, 0x08, 0x00, 0x08, // S7 userdata header: param 8, data 8
		0x00, 0x01, 0x12, 0x04, 0x11, 0x44, 0x01, 0x00, // request (4), CPU functions (4), read SZL (1)
		0xff, 0x09, 0x00, 0x04, 0x00, 0x11, 0x00, 0x00, // SZL id 0x0011, index 0
	}
	r := newScanRun(t, nil)
	for i := 1; i <= 3; i++ {
		dst := fmt.Sprintf("10.0.10.%d", i)
		r.tcpSession(t0+int64(i)*second, "10.0.0.9", dst, 40000, 102)
		r.add(t0+int64(i)*second+1e6, ipTCP(t, "10.0.0.9", dst, 40000, 102, 101, "AP", szl))
	}
	events := r.finish()
	if e := find(events, "identify"); e == nil || e.Protocol != "s7comm" || e.Value != 3 {
		t.Errorf("identify %+v in %v", e, kinds(events))
	}
}

// TestModbusRegisterWalk: reading holding registers 0..300 one by one is
// enumerate; polling the same 10 blocks every second is not.
func TestModbusRegisterWalk(t *testing.T) {
	r := newScanRun(t, nil)
	r.tcpSession(t0, "10.0.0.9", "10.0.0.2", 40000, 502)
	seq := uint32(101)
	for a := 0; a <= 300; a++ {
		ts := t0 + second + int64(a)*50e6
		req := modbusPDU(uint16(a), 3, byte(a>>8), byte(a), 0, 1)
		r.add(ts, ipTCP(t, "10.0.0.9", "10.0.0.2", 40000, 502, seq, "AP", req))
		seq += uint32(len(req))
	}
	events := r.finish()
	wantKinds(t, events, map[string]int{"enumerate": 1})
	if e := find(events, "enumerate"); e == nil || e.Protocol != "modbus" || e.Value < 290 || e.DstIP.String() != "10.0.0.2" {
		t.Errorf("enumerate %+v", e)
	}

	r = newScanRun(t, nil)
	r.tcpSession(t0, "10.0.0.1", "10.0.0.2", 40000, 502)
	seq = 101
	for s := 0; s < 600; s++ {
		for b := 0; b < 100; b++ {
			req := modbusPDU(uint16(b), 3, 0, byte(b), 0, 1)
			r.add(t0+second+int64(s)*second+int64(b)*1e6, ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, seq, "AP", req))
			seq += uint32(len(req))
		}
	}
	wantKinds(t, r.finish(), map[string]int{})
}

// TestExceptionStorm: 30 requests in 10 s all answered with "illegal data
// address" are an exception_storm for the client; server-busy answers are
// not.
func TestExceptionStorm(t *testing.T) {
	for _, code := range []byte{2, 6} {
		r := newScanRun(t, nil)
		r.tcpSession(t0, "10.0.0.9", "10.0.0.2", 40000, 502)
		seq, rseq := uint32(101), uint32(501)
		for i := 0; i < 30; i++ {
			ts := t0 + second + int64(i)*200e6
			req := modbusPDU(uint16(i), 3, 0x10, byte(i), 0, 1)
			resp := modbusPDU(uint16(i), 0x83, code)
			r.add(ts, ipTCP(t, "10.0.0.9", "10.0.0.2", 40000, 502, seq, "AP", req))
			r.add(ts+1e6, ipTCP(t, "10.0.0.2", "10.0.0.9", 502, 40000, rseq, "AP", resp))
			seq += uint32(len(req))
			rseq += uint32(len(resp))
		}
		events := r.finish()
		if code == 6 {
			wantKinds(t, events, map[string]int{})
			continue
		}
		wantKinds(t, events, map[string]int{"exception_storm": 1})
		if e := find(events, "exception_storm"); e == nil || e.Device != "10.0.0.9" || e.Protocol != "modbus" || e.Value != 30 {
			t.Errorf("exception_storm %+v", e)
		}
	}
}

// TestScanStateIsBounded: a flood of spoofed sources, each with one
// unanswered SYN, keeps at most maxScanStates states, and a real scanner
// among them is still reported.
func TestScanStateIsBounded(t *testing.T) {
	r := newScanRun(t, nil)
	for i := 0; i < 5000; i++ {
		ts := t0 + int64(i)*20e6
		r.add(ts, ipTCP(t, fmt.Sprintf("172.16.%d.%d", i/250, i%250+1), "10.0.0.2", 40000, 80, 1, "S", nil))
		if i%100 == 0 {
			p := uint16(1 + i/100)
			r.add(ts, ipTCP(t, "10.0.0.9", "10.0.0.3", 40000, p, 1, "S", nil))
			r.add(ts+1e5, ipTCP(t, "10.0.0.3", "10.0.0.9", p, 40000, 0, "RA", nil))
		}
	}
	events := r.finish()
	if len(r.x.scan.states) > maxScanStates || r.x.Stats().ScanStatesEvicted == 0 {
		t.Errorf("%d states, %d evicted", len(r.x.scan.states), r.x.Stats().ScanStatesEvicted)
	}
	if e := find(events, "scan_ports_slow"); e == nil || e.Device != "10.0.0.9" {
		t.Errorf("scanner not reported: %v", kinds(events))
	}
}

// TestDistinctCounterSketch: the exact set hands over to the sketch past
// exactMembers, and the count stays close.
func TestDistinctCounterSketch(t *testing.T) {
	var s scanTracker
	var st Stats
	var c distinctCounter
	for i := range 1000 {
		c.add(addrHash(&[16]byte{15: byte(i), 14: byte(i >> 8)}), &s, &st)
		c.add(addrHash(&[16]byte{15: byte(i), 14: byte(i >> 8)}), &s, &st)
		if i < exactMembers && c.count() != float64(i+1) {
			t.Fatalf("exact count %v after %d", c.count(), i+1)
		}
	}
	if n := c.count(); n < 930 || n > 1070 || s.sketches != 1 {
		t.Errorf("count %v of 1000, %d sketches", n, s.sketches)
	}
	c.reset(&s)
	if c.count() != 0 || s.sketches != 0 {
		t.Errorf("after reset: %v, %d sketches", c.count(), s.sketches)
	}
}

// TestCleanCapturesRaiseNoReconnaissance: real captures of clean polling
// raise none of the reconnaissance kinds.
func TestCleanCapturesRaiseNoReconnaissance(t *testing.T) {
	dir := pcaptest.Require(t)
	for _, f := range []string{
		"ITI-ICS-Security-Tools/ModbusTCP/ModbusTCP.pcap",
		"ITI-ICS-Security-Tools/s7/S7Comm/s7comm_clean.pcap",
		"ITI-ICS-Security-Tools/bro/modbus/modbusBig.pcap",
		// a PLC answering discovery broadcasts from its port 5560 to the
		// asker's many ports: the answers serve, they do not scan
		"ITI-ICS-Security-Tools/MELSEC/melsoft_UDP_clean_1.pcap",
	} {
		_, _, events, _ := replayAll(t, ingest.DefaultPacketConfig(), ReplayOptions{}, filepath.Join(dir, f))
		for _, e := range events {
			switch e.Kind {
			case "scan_ports", "scan_hosts", "scan_ports_slow", "scan_hosts_slow", "sweep_arp", "sweep_icmp", "identify", "enumerate", "exception_storm":
				t.Errorf("%s: %s %s", f, e.Kind, e.Detail)
			}
		}
	}
}
