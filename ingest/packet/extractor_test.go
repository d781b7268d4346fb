package packet

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/inventory"
	"github.com/vigil-ot/vigil/ingest/pcap"
)

var t0 = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC).UnixNano()

// ipTCP serializes IPv4 + TCP with payload.
func ipTCP(t testing.TB, src, dst string, sport, dport uint16, seq uint32, flags string, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: seq, Window: 1024}
	for _, c := range flags {
		switch c {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'R':
			tcp.RST = true
		case 'P':
			tcp.PSH = true
		}
	}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ether(ip []byte) []byte {
	h := []byte{0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6, 0x08, 0x00}
	return append(h, ip...)
}

func modbusRead(tid uint16) []byte {
	return []byte{byte(tid >> 8), byte(tid), 0, 0, 0, 6, 1, 3, 0, 0, 0, 10}
}

func newTestExtractor(t testing.TB, mod func(*ingest.PacketConfig)) *Extractor {
	t.Helper()
	cfg := ingest.DefaultPacketConfig()
	if mod != nil {
		mod(&cfg)
	}
	x, err := NewExtractor(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func add(x *Extractor, ts int64, link uint16, data []byte) {
	x.Add(&pcap.Packet{Data: data, TimeNanos: ts, LinkType: link, OrigLen: len(data)})
}

// TestLinkTypes decodes the same Modbus request under every supported
// link type, and counts an unsupported one as skipped.
func TestLinkTypes(t *testing.T) {
	ip := ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, 1, "AP", modbusRead(1))
	nullLE := append([]byte{2, 0, 0, 0}, ip...)
	loopBE := append([]byte{0, 0, 0, 2}, ip...)
	sll := append([]byte{0, 0, 0, 1, 0, 6, 0, 1, 2, 3, 4, 5, 0, 0, 0x08, 0x00}, ip...)
	sll2 := append([]byte{0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 0, 1, 2, 3, 4, 5, 0, 0}, ip...)
	dot1q := append([]byte{0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00}, ip...)
	cases := []struct {
		name string
		link uint16
		data []byte
	}{
		{"ethernet", pcap.LinkTypeEthernet, ether(ip)},
		{"ethernet_8021q", pcap.LinkTypeEthernet, dot1q},
		{"linux_sll", pcap.LinkTypeLinuxSLL, sll},
		{"linux_sll2", pcap.LinkTypeSLL2, sll2},
		{"raw_101", pcap.LinkTypeRaw, ip},
		{"raw_ipv4_228", pcap.LinkTypeIPv4, ip},
		{"bsd_null", pcap.LinkTypeNull, nullLE},
		{"bsd_loop", pcap.LinkTypeLoop, loopBE},
	}
	for _, c := range cases {
		x := newTestExtractor(t, nil)
		add(x, t0, c.link, c.data)
		st := x.Stats()
		if st.Outcomes[OutcomeDecoded] != 1 || st.PDUs != 1 {
			t.Errorf("%s: outcomes %v, PDUs %d; want one decoded Modbus PDU", c.name, st.Outcomes, st.PDUs)
		}
	}
	x := newTestExtractor(t, nil)
	add(x, t0, 195, []byte{1, 2, 3}) // IEEE 802.15.4
	if st := x.Stats(); st.Outcomes[OutcomeSkippedLinkType] != 1 || st.SkippedLinkTypes[195] != 1 {
		t.Errorf("802.15.4: %+v", st)
	}
	add(x, t0, pcap.LinkTypeEthernet, ether(ip)[:30]) // cut inside the IP header
	if st := x.Stats(); st.Outcomes[OutcomeMalformed] != 1 {
		t.Errorf("truncated frame: outcomes %v", st.Outcomes)
	}
}

// TestTCPReassembly splits Modbus PDUs across segments and packs two in
// one segment: each PDU is decoded exactly once, none is malformed.
func TestTCPReassembly(t *testing.T) {
	x := newTestExtractor(t, nil)
	a, b := "10.0.0.1", "10.0.0.2"
	pdu1, pdu2, pdu3 := modbusRead(1), modbusRead(2), modbusRead(3)
	seq := uint32(100)
	add(x, t0, 1, ether(ipTCP(t, a, b, 40000, 502, seq-1, "S", nil)))
	add(x, t0+1, 1, ether(ipTCP(t, a, b, 40000, 502, seq, "AP", pdu1[:5])))
	add(x, t0+2, 1, ether(ipTCP(t, a, b, 40000, 502, seq+5, "AP", pdu1[5:])))
	seq += 12
	both := append(append([]byte(nil), pdu2...), pdu3[:3]...)
	add(x, t0+3, 1, ether(ipTCP(t, a, b, 40000, 502, seq, "AP", both)))
	add(x, t0+4, 1, ether(ipTCP(t, a, b, 40000, 502, seq+15, "AP", pdu3[3:])))
	// A retransmission of the last segment is not decoded again.
	add(x, t0+5, 1, ether(ipTCP(t, a, b, 40000, 502, seq+15, "AP", pdu3[3:])))
	st := x.Stats()
	if st.PDUs != 3 || st.MalformedPDUs != 0 || st.Retransmissions != 1 {
		t.Errorf("PDUs %d malformed %d retransmissions %d; want 3, 0, 1", st.PDUs, st.MalformedPDUs, st.Retransmissions)
	}
	if x.buffered != 0 {
		t.Errorf("%d bytes still buffered", x.buffered)
	}
	// A hole restarts the stream at the next segment that starts a PDU;
	// a segment that starts mid-PDU is skipped, not called malformed.
	add(x, t0+6, 1, ether(ipTCP(t, a, b, 40000, 502, seq+100, "AP", modbusRead(4)[5:])))
	add(x, t0+7, 1, ether(ipTCP(t, a, b, 40000, 502, seq+107, "AP", modbusRead(5))))
	if st := x.Stats(); st.Gaps != 1 || st.PDUs != 4 || st.Unsynced != 1 || st.MalformedPDUs != 0 {
		t.Errorf("after a hole: gaps %d PDUs %d unsynced %d malformed %d", st.Gaps, st.PDUs, st.Unsynced, st.MalformedPDUs)
	}
	// A sequence number exactly 2^31 away is old data, not a panic.
	add(x, t0+8, 1, ether(ipTCP(t, a, b, 40000, 502, seq+119+1<<31, "AP", modbusRead(6))))
	if st := x.Stats(); st.Retransmissions != 2 {
		t.Errorf("2^31 away: retransmissions %d", st.Retransmissions)
	}
}

// TestFloodOfNewFlowsIsBounded sends 100k SYNs from distinct spoofed
// sources: the flow and host tables stay at their caps, evict and count.
func TestFloodOfNewFlowsIsBounded(t *testing.T) {
	x := newTestExtractor(t, func(c *ingest.PacketConfig) { c.MaxFlows, c.MaxHosts = 1024, 512 })
	frame := ether(ipTCP(t, "172.16.0.1", "10.0.0.2", 1024, 502, 1, "S", nil))
	const n = 100_000
	for i := 0; i < n; i++ {
		// Rewrite source address and port in place (checksums do not matter here).
		binary.BigEndian.PutUint32(frame[14+12:], 0xac100000|uint32(i))
		binary.BigEndian.PutUint16(frame[14+20:], uint16(1024+i))
		add(x, t0+int64(i)*10_000, 1, frame) // 100k SYN/s
		for b := x.TakeBatch(); b != nil; b = x.TakeBatch() {
			b.Release()
		}
	}
	if x.flows.len() > 1024 || len(x.flows.flows) > 1024 || x.hosts.len() > 512 || len(x.hosts.idx) > 512 {
		t.Errorf("tables grew: flows %d/%d hosts %d/%d", x.flows.len(), len(x.flows.flows), len(x.hosts.idx), x.hosts.len())
	}
	sum := x.Summary()
	if sum.Stats.FlowsEvicted < n-1024 || sum.Stats.HostsEvicted < n-512 {
		t.Errorf("evicted flows %d hosts %d, want about %d", sum.Stats.FlowsEvicted, sum.Stats.HostsEvicted, n)
	}
	for w := range x.distinct {
		if m := &x.distinct[w]; m.len() > x.maxDistinctEntries {
			t.Errorf("window %d distinct table holds %d entries, bound %d", w, m.len(), x.maxDistinctEntries)
		}
	}
	if sum.Stats.DistinctOverflow == 0 {
		t.Errorf("the flood never filled the distinct table: %+v", sum.Stats)
	}
	// Every flow left in the table is still found through the index.
	for i := range x.flows.flows {
		f := &x.flows.flows[i]
		if f.used && x.flows.lookup(&f.key, f.key.hash()) != int32(i) {
			t.Fatalf("flow %d lost from the index", i)
		}
	}
	// The target is an asset only if it answered; spoofed sources never are.
	if len(sum.Assets) != 0 {
		t.Errorf("assets %v, want none (nothing answered)", sum.Assets)
	}
}

// TestScanAndFloodFindings checks the window findings and their 5-tuples.
func TestScanAndFloodFindings(t *testing.T) {
	x := newTestExtractor(t, nil)
	var events []ingest.NetEvent
	drain := func() {
		for b := x.TakeBatch(); b != nil; b = x.TakeBatch() {
			events = append(events, b.Events...)
			b.Release()
		}
	}
	for p := 1; p <= 60; p++ {
		add(x, t0+int64(p)*1e6, 1, ether(ipTCP(t, "10.0.0.9", "10.0.0.2", 50000, uint16(p), 1, "S", nil)))
		add(x, t0+int64(p)*1e6+1000, 1, ether(ipTCP(t, "10.0.0.2", "10.0.0.9", uint16(p), 50000, 0, "RA", nil)))
	}
	x.Flush()
	drain()
	var scan *ingest.NetEvent
	for i := range events {
		if events[i].Kind == "scan_ports" {
			scan = &events[i]
		}
	}
	if scan == nil || scan.Device != "10.0.0.9" || scan.Value != 60 || scan.DstIP.String() != "10.0.0.2" || scan.Transport != 6 {
		t.Fatalf("scan event %+v in %+v", scan, events)
	}
}

// fragmentIPv4 splits an IPv4 packet (20-byte header) into fragments of
// at most size payload bytes (a multiple of 8), in the given order.
func fragmentIPv4(ip []byte, size int, order []int) [][]byte {
	payload := ip[20:]
	var frags [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		fr := append(append([]byte(nil), ip[:20]...), payload[off:end]...)
		binary.BigEndian.PutUint16(fr[2:], uint16(20+end-off))
		fo := uint16(off / 8)
		if end < len(payload) {
			fo |= 0x2000 // more fragments
		}
		binary.BigEndian.PutUint16(fr[6:], fo)
		binary.BigEndian.PutUint16(fr[4:], 0x1234) // identification
		frags = append(frags, fr)
	}
	out := make([][]byte, 0, len(frags))
	for _, i := range order {
		out = append(out, frags[i])
	}
	return out
}

// TestIPv4Fragments: a Modbus write split into fragments (an IDS evasion)
// is reassembled, in any order, and decoded; an incomplete datagram is
// dropped after its timeout. Fragments count as packets, the datagram not.
func TestIPv4Fragments(t *testing.T) {
	write := []byte{0, 9, 0, 0, 0, 6, 1, 6, 0, 40, 0xde, 0xad}
	ip := ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, 1, "AP", write) // 20 TCP + 12 payload
	x := newTestExtractor(t, nil)
	for i, fr := range fragmentIPv4(ip, 8, []int{2, 0, 3, 1}) {
		add(x, t0+int64(i), 1, ether(fr))
	}
	st := x.Stats()
	if st.Fragments != 4 || st.Reassembled != 1 || st.PDUs != 1 || st.Outcomes[OutcomeUnknownProtocol] != 4 || st.Packets != 4 {
		t.Fatalf("fragments %d reassembled %d PDUs %d outcomes %v packets %d", st.Fragments, st.Reassembled, st.PDUs, st.Outcomes, st.Packets)
	}
	x.Flush()
	var fns []string
	for b := x.TakeBatch(); b != nil; b = x.TakeBatch() {
		for _, c := range b.Comms {
			if c.Function != "" {
				fns = append(fns, c.Function)
			}
		}
		b.Release()
	}
	if len(fns) != 1 || fns[0] != "write_single_register" {
		t.Errorf("functions seen %v, want the write", fns)
	}
	// Half a datagram is held, then dropped after the timeout.
	x = newTestExtractor(t, nil)
	frs := fragmentIPv4(ip, 16, []int{0, 1})
	add(x, t0, 1, ether(frs[0]))
	add(x, t0+fragTimeout+1, 1, ether(ipTCP(t, "10.0.0.3", "10.0.0.4", 1, 2, 1, "S", nil)))
	ip2 := append([]byte(nil), ip...)
	binary.BigEndian.PutUint16(ip2[4:], 0x9999)
	add(x, t0+fragTimeout+2, 1, ether(fragmentIPv4(ip2, 16, []int{1})[0]))
	if st := x.Stats(); st.Reassembled != 0 || st.FragmentsDropped != 1 || st.PDUs != 0 {
		t.Errorf("incomplete datagram: reassembled %d dropped %d PDUs %d", st.Reassembled, st.FragmentsDropped, st.PDUs)
	}
}

func TestExtractorAllocatesNothingPerPacket(t *testing.T) {
	x := newTestExtractor(t, nil)
	req := ether(ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, 1, "AP", modbusRead(1)))
	seq := uint32(1)
	ts := t0
	// Warm up: flow, hosts, communications exist.
	for i := 0; i < 10; i++ {
		add(x, ts, 1, req)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		seq += 12
		binary.BigEndian.PutUint32(req[14+24:], seq)
		ts += 1000
		add(x, ts, 1, req)
	})
	if allocs > 0 {
		t.Errorf("%v allocations per packet", allocs)
	}
}

// FuzzExtractor feeds arbitrary frames under every link type: no panic,
// and every packet gets exactly one outcome.
func FuzzExtractor(f *testing.F) {
	ip := ipTCP(f, "10.0.0.1", "10.0.0.2", 40000, 502, 1, "AP", modbusRead(1))
	f.Add(uint16(1), ether(ip))
	f.Add(uint16(101), ip)
	f.Add(uint16(0), append([]byte{2, 0, 0, 0}, ip...))
	f.Add(uint16(276), append(make([]byte, 20), ip...))
	f.Add(uint16(113), append(make([]byte, 16), ip...))
	f.Add(uint16(1), ether(ipTCP(f, "10.0.0.1", "10.0.0.2", 40000, 20000, 1, "AP", []byte{0x05, 0x64, 0x05, 0xc9, 0, 0, 0, 0, 0, 0})))
	for _, fr := range fragmentIPv4(ip, 8, []int{0, 1, 2, 3}) {
		f.Add(uint16(101), fr)
	}
	x := newTestExtractor(f, func(c *ingest.PacketConfig) { c.MaxFlows, c.MaxHosts = 64, 64 })
	ts := t0
	f.Fuzz(func(t *testing.T, link uint16, data []byte) {
		ts += 1e8
		before := x.Stats()
		add(x, ts, link, data)
		after := x.Stats()
		var db, da int64
		for i := range before.Outcomes {
			db += before.Outcomes[i]
			da += after.Outcomes[i]
		}
		if da != db+1 {
			t.Fatalf("outcomes went from %d to %d for one packet", db, da)
		}
		for b := x.TakeBatch(); b != nil; b = x.TakeBatch() {
			b.Release()
		}
	})
}

func TestJitter(t *testing.T) {
	var a, b acc
	for _, d := range []float64{1, 1.2, 0.8, 1.1} {
		a.addIAT(d)
	}
	for _, d := range []float64{0.9, 1.0} {
		b.addIAT(d)
	}
	a.merge(&b)
	// Sample standard deviation of 1, 1.2, 0.8, 1.1, 0.9, 1.0.
	if j := a.jitter(); j < 0.1414 || j > 0.1415 {
		t.Errorf("jitter %v, want 0.14142", j)
	}
}

// TestUDPFloodIsBounded: answered-looking UDP from 50k spoofed sources
// (every datagram a conversation) stays within the communication cap.
func TestUDPFloodIsBounded(t *testing.T) {
	x := newTestExtractor(t, func(c *ingest.PacketConfig) { c.MaxFlows, c.MaxHosts = 1024, 512 })
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(172, 16, 0, 1).To4(), DstIP: net.IPv4(10, 0, 0, 2).To4()}
	udp := &layers.UDP{SrcPort: 1024, DstPort: 47808}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ip, udp, gopacket.Payload([]byte{0x81, 0x0b, 0x00, 0x0c, 0x01, 0x20, 0xff, 0xff, 0x00, 0xff, 0x10, 0x08}))
	frame := ether(buf.Bytes())
	maxComms := 0
	for i := 0; i < 50_000; i++ {
		binary.BigEndian.PutUint32(frame[14+12:], 0xac100000|uint32(i))
		add(x, t0+int64(i)*100_000, 1, frame)
		maxComms = max(maxComms, len(x.comms))
		for b := x.TakeBatch(); b != nil; b = x.TakeBatch() {
			b.Release()
		}
	}
	st := x.Summary().Stats
	if maxComms > 1024 || st.CommsDropped == 0 {
		t.Errorf("communications per batch reached %d (cap 1024), dropped %d", maxComms, st.CommsDropped)
	}
	if x.hosts.len() > 512 || st.FlowsEvicted == 0 {
		t.Errorf("hosts %d, flows evicted %d", x.hosts.len(), st.FlowsEvicted)
	}
}

// TestInventoryNaming: hosts are named by the inventory's IP, else by MAC
// for assets listed without an address; others keep their address and
// are grouped by subnet, and reported as unknown.
func TestInventoryNaming(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.csv")
	os.WriteFile(path, []byte("device,ip,mac,site\nplc-1,10.0.0.2,,plant-a\nhmi-dhcp,,00:01:02:03:04:06,plant-a\n"), 0o644)
	icfg := ingest.DefaultInventoryConfig()
	icfg.Path, icfg.ReloadInterval = path, 0
	inv, err := inventory.Open(icfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ingest.DefaultPacketConfig()
	x, err := NewExtractor(cfg, Options{Assets: inv})
	if err != nil {
		t.Fatal(err)
	}
	// ether() sends from MAC 00:01:02:03:04:06.
	add(x, t0, 1, ether(ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, 1, "AP", modbusRead(1))))
	add(x, t0+1, 1, ether(ipTCP(t, "10.0.0.2", "10.0.0.1", 502, 40000, 1, "AP", []byte{0, 1, 0, 0, 0, 5, 1, 3, 2, 0, 7})))
	add(x, t0+2, 1, ether(ipTCP(t, "10.0.9.9", "10.0.0.2", 40001, 502, 1, "S", nil)))
	add(x, t0+3, 1, append([]byte{0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 0x77, 0x08, 0x00}, ipTCP(t, "10.0.9.8", "10.0.0.2", 40002, 502, 1, "AP", modbusRead(2))...))
	sum := x.Summary()
	got := map[string]string{}
	for _, a := range sum.Assets {
		got[a.IP.String()] = a.Device + " " + a.Group
	}
	want := map[string]string{
		"10.0.0.1": "hmi-dhcp plant-a",
		"10.0.0.2": "plc-1 plant-a",
		"10.0.9.8": "10.0.9.8 unmanaged/10.0.9.0/24",
	}
	for ip, w := range want {
		if got[ip] != w {
			t.Errorf("%s: %q, want %q", ip, got[ip], w)
		}
	}
	if _, ok := got["10.0.9.9"]; ok {
		t.Errorf("an unanswered SYN made 10.0.9.9 an asset")
	}
	x.Flush()
	var unknown []string
	for b := x.TakeBatch(); b != nil; b = x.TakeBatch() {
		for _, e := range b.Events {
			if e.Kind == "unknown_asset" {
				unknown = append(unknown, e.Device)
			}
		}
		b.Release()
	}
	if len(unknown) != 1 || unknown[0] != "10.0.9.8" {
		t.Errorf("unknown assets %v, want [10.0.9.8]", unknown)
	}
}

// TestARP: an ARP reply makes its sender an asset with its MAC; an ARP
// probe (sender 0.0.0.0) does not.
func TestARP(t *testing.T) {
	x := newTestExtractor(t, nil)
	arp := func(sender net.IP) []byte {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{0, 0x1b, 0x1b, 0, 0, 7}, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
		a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPReply, SourceHwAddress: eth.SrcMAC, SourceProtAddress: sender.To4(),
			DstHwAddress: make([]byte, 6), DstProtAddress: net.IPv4(10, 0, 0, 1).To4()}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, a); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	add(x, t0, 1, arp(net.IPv4(0, 0, 0, 0)))
	add(x, t0+1, 1, arp(net.IPv4(10, 0, 0, 7)))
	sum := x.Summary()
	if sum.Decoded != 2 || len(sum.Assets) != 1 || sum.Assets[0].IP.String() != "10.0.0.7" || sum.Assets[0].MAC != "00:1b:1b:00:00:07" {
		t.Errorf("decoded %d, assets %+v", sum.Decoded, sum.Assets)
	}
}

// FuzzTCPStream drives one TCP flow with fuzzed segments — sequence
// numbers, flags, direction and payloads — through reassembly and the OT
// decoders: no panic, buffers within their caps, one outcome per packet.
func FuzzTCPStream(f *testing.F) {
	f.Add(uint8(0), []byte{0, 0, 0, 1, 0x18, 12, 0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10})
	f.Add(uint8(1), []byte{0x80, 0, 0, 0, 0x18, 10, 0x05, 0x64, 0x05, 0xc9, 1, 0, 2, 0, 0, 0})
	f.Add(uint8(2), []byte{0, 0, 0, 0, 0x02, 0, 0x80, 0, 0, 1, 0x18, 7, 3, 0, 0, 22, 0x11, 0xe0, 0})
	tmpl := ether(ipTCP(f, "10.0.0.1", "10.0.0.2", 40000, 502, 0, "A", nil))
	ports := []uint16{502, 20000, 102, 44818, 2404, 1883, 4840}
	f.Fuzz(func(t *testing.T, portSel uint8, data []byte) {
		x := newTestExtractor(t, func(c *ingest.PacketConfig) { c.MaxStreamBuffer, c.MaxBufferedBytes = 512, 1024 })
		port := ports[int(portSel)%len(ports)]
		var packets int64
		// Each segment: 4 bytes sequence (top bit: direction), 1 byte
		// flags, 1 byte payload length, then the payload.
		for len(data) >= 6 {
			seq := binary.BigEndian.Uint32(data)
			flags := data[4]
			n := min(int(data[5]), len(data)-6)
			payload := data[6 : 6+n]
			data = data[6+n:]
			fr := append(append([]byte(nil), tmpl...), payload...)
			ip := fr[14:]
			binary.BigEndian.PutUint16(ip[2:], uint16(20+20+n))
			tcp := ip[20:]
			if seq&0x80000000 != 0 { // from the server
				copy(ip[12:16], []byte{10, 0, 0, 2})
				copy(ip[16:20], []byte{10, 0, 0, 1})
				binary.BigEndian.PutUint16(tcp, port)
				binary.BigEndian.PutUint16(tcp[2:], 40000)
			} else {
				binary.BigEndian.PutUint16(tcp, 40000)
				binary.BigEndian.PutUint16(tcp[2:], port)
			}
			binary.BigEndian.PutUint32(tcp[4:], seq<<1)
			tcp[13] = flags
			add(x, t0+packets*1e6, 1, fr)
			packets++
			if x.buffered > 1024 || x.buffered < 0 {
				t.Fatalf("%d bytes buffered, cap 1024", x.buffered)
			}
		}
		st := x.Stats()
		var outcomes int64
		for _, o := range st.Outcomes {
			outcomes += o
		}
		if outcomes != packets {
			t.Fatalf("%d outcomes for %d packets", outcomes, packets)
		}
	})
}

// TestIPv6FragmentNotMisread: an IPv6 fragment is counted at L3; its
// bytes are not read as a TCP header.
func TestIPv6FragmentNotMisread(t *testing.T) {
	ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6Fragment,
		SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
	frag := []byte{byte(layers.IPProtocolTCP), 0, 0x00, 0x09, 0, 0, 0, 1} // offset 1, more fragments
	body := append(frag, []byte{0x01, 0xf6, 0x9c, 0x40, 1, 2, 3, 4, 5, 6, 7, 8, 0x50, 0x02, 0, 0, 0, 0, 0, 0}...)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ip6, gopacket.Payload(body)); err != nil {
		t.Fatal(err)
	}
	x := newTestExtractor(t, nil)
	add(x, t0, pcap.LinkTypeIPv6, buf.Bytes())
	if st := x.Stats(); st.Fragments != 1 || x.flows.len() != 0 || st.Outcomes[OutcomeUnknownProtocol] != 1 {
		t.Errorf("fragments %d flows %d outcomes %v", st.Fragments, x.flows.len(), st.Outcomes)
	}
}

// TestHostEvictionKeepsBothEndpoints: with a full host table and equal
// timestamps (second-resolution captures), making room for one endpoint
// never evicts the other endpoint of the same packet. (The clock hand
// alone already avoids it for tables of at least 16 hosts; the pin in
// hostTable keeps it true if the sampling changes.)
func TestHostEvictionKeepsBothEndpoints(t *testing.T) {
	x := newTestExtractor(t, func(c *ingest.PacketConfig) { c.MaxHosts = 16 })
	frame := ether(ipTCP(t, "172.16.0.1", "10.0.0.2", 1024, 502, 1, "S", nil))
	for i := 0; i < 500; i++ {
		binary.BigEndian.PutUint32(frame[14+12:], 0xac100000|uint32(i))
		binary.BigEndian.PutUint32(frame[14+16:], 0x0a000000|uint32(i))
		add(x, t0, 1, frame)
		fl := &x.flows.flows[x.lastFlow]
		a, b := x.hosts.at(fl.host[0].idx), x.hosts.at(fl.host[1].idx)
		if a.addr != fl.key.addrA() || b.addr != fl.key.addrB() || fl.host[0].idx == fl.host[1].idx {
			t.Fatalf("packet %d: endpoints resolved to %v and %v", i, a.ip, b.ip)
		}
	}
}

// A released batch's communications slice holds a later window's, and
// one moved out of its batch (a Kafka consumer forwards the slices in a
// batch of its own and never releases the first) is never reused.
func TestBatchCommsRecycled(t *testing.T) {
	x := newTestExtractor(t, nil)
	req := ether(ipTCP(t, "10.0.0.1", "10.0.0.2", 40000, 502, 1, "AP", modbusRead(1)))
	// next adds a packet in window w, which closes window w-1, and
	// returns that window's batch.
	next := func(w int64) *ingest.Batch {
		t.Helper()
		add(x, t0+w*int64(10*time.Second), 1, req)
		b := x.TakeBatch()
		if b == nil || len(b.Comms) == 0 {
			t.Fatalf("window %d: batch %v without communications", w-1, b)
		}
		return b
	}
	add(x, t0, 1, req)
	first := next(1)
	comms := &first.Comms[0]
	done := make(chan struct{})
	go func() { first.Release(); close(done) }() // as the engine does
	<-done
	if first.Comms != nil {
		t.Fatal("the released batch still has its communications")
	}
	next(2).Release() // window 1's slice was taken before the release
	second := next(3)
	if &second.Comms[0] != comms {
		t.Fatal("a later window's communications are in a new slice, not the released batch's")
	}
	moved := second.Comms // not released: forwarded in another batch
	second.Record.Release()
	for w := int64(4); w < 8; w++ {
		b := next(w)
		if &b.Comms[0] == &moved[0] {
			t.Fatalf("window %d: communications of a batch never released were reused", w-1)
		}
		b.Release()
	}
	if moved[0].DstPort != 502 || moved[0].Packets != 1 {
		t.Fatalf("forwarded communications overwritten: %+v", moved[0])
	}
}
