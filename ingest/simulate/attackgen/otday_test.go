package attackgen

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/vigil-ot/vigil/detect/score"
	"github.com/vigil-ot/vigil/ingest/ot"
)

// testOTDay is the OT day with a 3-hour clean period, as the tests use it.
func testOTDay() OTDayScenario {
	s := DefaultOTDayScenario()
	s.Clean = 3 * time.Hour
	return s
}

var otDayOnce = sync.OnceValues(func() (otDayCapture, error) {
	var buf bytes.Buffer
	labels, err := GenerateOTDay(&buf, testOTDay())
	return otDayCapture{data: buf.Bytes(), labels: labels}, err
})

type otDayCapture struct {
	data   []byte
	labels []Label
}

// otDayTestCapture generates the test OT day once for all tests.
func otDayTestCapture(t *testing.T) otDayCapture {
	t.Helper()
	c, err := otDayOnce()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// decodedPacket is one packet of a capture, decoded by gopacket.
type decodedPacket struct {
	n int // 1-based
	t time.Time
	p gopacket.Packet
}

func decodeCapture(t *testing.T, data []byte) []decodedPacket {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []decodedPacket
	for {
		b, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, decodedPacket{n: len(out) + 1, t: ci.Timestamp, p: gopacket.NewPacket(b, layers.LinkTypeEthernet, gopacket.Default)})
	}
}

func TestOTDayIsDeterministic(t *testing.T) {
	first := otDayTestCapture(t)
	var again bytes.Buffer
	labels, err := GenerateOTDay(&again, testOTDay())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.data, again.Bytes()) {
		t.Error("two captures of the same scenario differ")
	}
	if len(labels) != len(first.labels) {
		t.Fatalf("%d labels, then %d", len(first.labels), len(labels))
	}
	for i := range labels {
		if labels[i] != first.labels[i] {
			t.Errorf("label %d: %+v, then %+v", i, first.labels[i], labels[i])
		}
	}
}

// TestOTDayPacketsDecode checks every frame with gopacket and every OT
// payload with Vigil's own decoders: no decode failure, no protocol
// violation, and time never goes back.
func TestOTDayPacketsDecode(t *testing.T) {
	pkts := decodeCapture(t, otDayTestCapture(t).data)
	var prev time.Time
	seen := map[ot.Protocol]int{}
	for _, p := range pkts {
		if p.t.Before(prev) {
			t.Fatalf("packet %d at %v is before the previous one (%v)", p.n, p.t, prev)
		}
		prev = p.t
		if f := p.p.ErrorLayer(); f != nil {
			t.Fatalf("packet %d does not decode: %v\n%s", p.n, f.Error(), p.p.Dump())
		}
		proto, violation := otPayload(p.p)
		seen[proto]++
		if violation != "" {
			t.Errorf("packet %d: %s: %s", p.n, proto, violation)
		}
	}
	for _, want := range []ot.Protocol{ot.Modbus, ot.DNP3, ot.S7comm, ot.ENIP, ot.BACnet} {
		if seen[want] == 0 {
			t.Errorf("no %s payload in the capture", want)
		}
	}
}

// otPayload decodes the TCP or UDP payload of p with ingest/ot and returns
// its protocol (ot.None when it is not OT) and its first protocol
// violation.
func otPayload(p gopacket.Packet) (ot.Protocol, string) {
	var sport, dport uint16
	var payload []byte
	udp := false
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		sport, dport, payload = uint16(l.SrcPort), uint16(l.DstPort), l.Payload
	case *layers.UDP:
		sport, dport, payload, udp = uint16(l.SrcPort), uint16(l.DstPort), l.Payload, true
	default:
		return ot.None, ""
	}
	proto, fromServer := ot.Detect(sport, dport, udp, payload)
	if proto == ot.None || len(payload) == 0 {
		return proto, ""
	}
	var pdu ot.PDU
	for len(payload) > 0 {
		n, err := ot.Decode(proto, payload, fromServer, &pdu)
		if err != nil {
			return proto, err.Error()
		}
		if pdu.Malformed != "" {
			return proto, pdu.Malformed
		}
		payload = payload[n:]
	}
	return proto, ""
}

func TestOTDayLabels(t *testing.T) {
	c := otDayTestCapture(t)
	s := testOTDay()
	want := []string{"sweep_arp", "sweep_icmp", "scan_ports_slow", "scan_ports", "scan_hosts_slow", "flood", "identify_modbus",
		"new_asset", "identify_enip", "identify_s7comm", "enumerate_modbus", "mitm_tcp_retransmission", "mitm_arp_rebinding"}
	if len(c.labels) != len(want) {
		t.Fatalf("%d labels, want %d", len(c.labels), len(want))
	}
	for i, l := range c.labels {
		if l.Behavior != want[i] {
			t.Errorf("label %d: behavior %s, want %s", i, l.Behavior, want[i])
		}
		if i == 0 && l.Start != s.Start.Add(s.Clean) {
			t.Errorf("first attack at %v, want at the end of the clean period %v", l.Start, s.Start.Add(s.Clean))
		}
		if !l.End.After(l.Start) {
			t.Errorf("%s: window %v – %v", l.Attack, l.Start, l.End)
		}
		if i > 0 && l.Start.Sub(c.labels[i-1].End) < s.Gap-time.Second {
			t.Errorf("%s starts %v after %s ends; want about %v", l.Attack, l.Start.Sub(c.labels[i-1].End), c.labels[i-1].Attack, s.Gap)
		}
		if net.ParseIP(l.Device) == nil || l.Technique == "" || l.Detector == "" {
			t.Errorf("%s: device %q, technique %q, detector %q", l.Attack, l.Device, l.Technique, l.Detector)
		}
	}
	var buf bytes.Buffer
	if err := WriteLabels(&buf, c.labels); err != nil {
		t.Fatal(err)
	}
	incs, err := score.ParseIncidents("otday.labels.csv", &buf)
	if err != nil {
		t.Fatalf("vigil score cannot read the labels: %v", err)
	}
	if len(incs) != len(c.labels) {
		t.Fatalf("%d incidents from %d labels", len(incs), len(c.labels))
	}
	for i, inc := range incs {
		l := c.labels[i]
		if inc.Device != l.Device || !inc.Start.Equal(l.Start) || !inc.End.Equal(l.End) || inc.Detector != l.Detector || inc.Behavior != l.Behavior {
			t.Errorf("incident %d: %+v from label %+v", i, inc, l)
		}
	}
}

// TestOTDayLabelsHoldTheirAttack checks that each label's device sends
// packets in the label's window, and an attacker in no other.
func TestOTDayLabelsHoldTheirAttack(t *testing.T) {
	c := otDayTestCapture(t)
	pkts := decodeCapture(t, c.data)
	inWindow := make([]int, len(c.labels))
	for _, p := range pkts {
		src := packetSource(p.p)
		for i, l := range c.labels {
			if src != l.Device {
				continue
			}
			in := !p.t.Before(l.Start) && !p.t.After(l.End)
			if in {
				inWindow[i]++
			}
			if _, live := target(net.ParseIP(l.Device)); !live && !in {
				t.Errorf("packet %d of attacker %s at %v is outside %s's window", p.n, l.Device, p.t, l.Attack)
			}
		}
	}
	for i, l := range c.labels {
		if inWindow[i] == 0 {
			t.Errorf("%s: no packet from %s in %v – %v", l.Attack, l.Device, l.Start, l.End)
		}
	}
}

// packetSource returns the IPv4 address that sent a packet: the IP
// source, or the ARP sender.
func packetSource(p gopacket.Packet) string {
	if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		return ip.SrcIP.String()
	}
	if a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		return net.IP(a.SourceProtAddress).String()
	}
	return ""
}

// packetAddrs returns the IPv4 addresses a packet names: IP source and
// destination, ARP sender and target.
func packetAddrs(p gopacket.Packet) map[string]bool {
	m := map[string]bool{}
	if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		m[ip.SrcIP.String()], m[ip.DstIP.String()] = true, true
	}
	if a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		m[net.IP(a.SourceProtAddress).String()], m[net.IP(a.DstProtAddress).String()] = true, true
	}
	return m
}

// TestOTDayCleanPeriodIsClean checks that before the first attack only
// the plant's hosts talk, to each other, to broadcast and multicast
// groups, and each IP at its own MAC.
func TestOTDayCleanPeriodIsClean(t *testing.T) {
	c := otDayTestCapture(t)
	s := testOTDay()
	allowed := map[string]bool{subnetBroadcast.String(): true, limitedBroadcast.String(): true, mdnsGroup.String(): true, ssdpGroup.String(): true}
	macOf := map[string]string{}
	for _, h := range otLive {
		allowed[h.String()] = true
		macOf[h.String()] = h.mac.String()
	}
	n := 0
	for _, p := range decodeCapture(t, c.data) {
		if !p.t.Before(s.Start.Add(s.Clean)) {
			break
		}
		n++
		for a := range packetAddrs(p.p) {
			if !allowed[a] {
				t.Fatalf("packet %d at %v names %s, not a host of the plant", p.n, p.t, a)
			}
		}
		if a, ok := p.p.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
			if ip := net.IP(a.SourceProtAddress).String(); macOf[ip] != net.HardwareAddr(a.SourceHwAddress).String() {
				t.Fatalf("packet %d: ARP says %s is at %v", p.n, ip, net.HardwareAddr(a.SourceHwAddress))
			}
		}
	}
	if n == 0 {
		t.Fatal("no packet in the clean period")
	}
}

// TestOTDayChatterIsIrregular checks the chatty hosts' bursts come
// seconds to most of an hour apart, while the pollers keep their period.
func TestOTDayChatterIsIrregular(t *testing.T) {
	c := otDayTestCapture(t)
	s := testOTDay()
	times := map[string][]time.Time{}
	for _, p := range decodeCapture(t, c.data) {
		if !p.t.Before(s.Start.Add(s.Clean)) {
			break
		}
		if u, ok := p.p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && u.DstPort == 137 {
			times["netbios"] = append(times["netbios"], p.t)
		}
		if tc, ok := p.p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok && tc.DstPort == 20000 && len(tc.Payload) > 0 {
			if ip := p.p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ip.DstIP.Equal(outstation1.ip) {
				times["dnp3"] = append(times["dnp3"], p.t)
			}
		}
	}
	minGap, maxGap := gaps(times["netbios"], time.Second) // a burst's retries are under a second apart
	if minGap > 30*time.Second || maxGap < 20*time.Minute {
		t.Errorf("NetBIOS broadcasts %d, gaps between bursts %v to %v; want seconds to more than 20 minutes", len(times["netbios"]), minGap, maxGap)
	}
	minGap, maxGap = gaps(times["dnp3"], 0)
	if minGap < 3900*time.Millisecond || maxGap > 4100*time.Millisecond {
		t.Errorf("DNP3 polls of %s %v to %v apart; want 4 s", outstation1, minGap, maxGap)
	}
}

// gaps returns the shortest and longest gap between times, ignoring gaps
// of at most within.
func gaps(times []time.Time, within time.Duration) (lo, hi time.Duration) {
	lo = time.Duration(1<<63 - 1)
	for i := 1; i < len(times); i++ {
		if g := times[i].Sub(times[i-1]); g > within {
			lo, hi = min(lo, g), max(hi, g)
		}
	}
	return lo, hi
}
