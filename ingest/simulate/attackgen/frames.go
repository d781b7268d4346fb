package attackgen

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sort"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

type frame struct {
	t    time.Time
	seq  int // generation order: ties keep it
	data []byte
}

// gen collects the frames of a capture; they are generated in any order
// and written sorted by time. The first serialization error is kept in err
// and returned by the generator.
type gen struct {
	rng    *rand.Rand
	frames []frame
	buf    gopacket.SerializeBuffer
	err    error
}

func newGen(seed uint64) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), buf: gopacket.NewSerializeBuffer()}
}

type host struct {
	ip  net.IP
	mac net.HardwareAddr
}

func (h host) String() string { return h.ip.String() }

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// multicast is the host of an IPv4 multicast group: its MAC is 01:00:5e
// and the group's low 23 bits (RFC 1112).
func multicast(a, b, c, d byte) host {
	return host{ip: net.IPv4(a, b, c, d).To4(), mac: net.HardwareAddr{0x01, 0x00, 0x5e, b & 0x7f, c, d}}
}

// emit serializes the layers into one frame at t.
func (g *gen) emit(t time.Time, ls ...gopacket.SerializableLayer) {
	if b := g.serialize(ls...); b != nil {
		g.frames = append(g.frames, frame{t: t, seq: len(g.frames), data: b})
	}
}

// serialize returns the layers' bytes, with lengths and checksums
// computed, or nil after keeping the error.
func (g *gen) serialize(ls ...gopacket.SerializableLayer) []byte {
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(g.buf, opts, ls...); err != nil {
		if g.err == nil {
			g.err = fmt.Errorf("cannot serialize frame: %w", err)
		}
		return nil
	}
	return append([]byte(nil), g.buf.Bytes()...)
}

func ipv4(src, dst host, proto layers.IPProtocol) (*layers.Ethernet, *layers.IPv4) {
	eth := &layers.Ethernet{SrcMAC: src.mac, DstMAC: dst.mac, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.ip, DstIP: dst.ip, Flags: layers.IPv4DontFragment}
	if dst.ip[0] == 224 && dst.ip[1] == 0 && dst.ip[2] == 0 {
		ip.TTL = 255 // the local network control block is never routed (RFC 3171); mDNS requires 255 (RFC 6762 11)
	}
	return eth, ip
}

type tcpFlags struct{ syn, ack, rst, fin, psh bool }

func (g *gen) tcp(t time.Time, src, dst host, sport, dport uint16, f tcpFlags, seq, ack uint32, payload []byte) {
	eth, ip := ipv4(src, dst, layers.IPProtocolTCP)
	tc := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: seq, Ack: ack,
		SYN: f.syn, ACK: f.ack, RST: f.rst, FIN: f.fin, PSH: f.psh, Window: 8192}
	tc.SetNetworkLayerForChecksum(ip) // cannot fail: ip is an IPv4 layer
	g.emit(t, eth, ip, tc, gopacket.Payload(payload))
}

func (g *gen) udp(t time.Time, src, dst host, sport, dport uint16, payload []byte) {
	g.udpLayer(t, src, dst, sport, dport, gopacket.Payload(payload))
}

// udpLayer sends app, a layer gopacket serializes (DNS, DHCPv4), over UDP.
func (g *gen) udpLayer(t time.Time, src, dst host, sport, dport uint16, app gopacket.SerializableLayer) {
	eth, ip := ipv4(src, dst, layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	u.SetNetworkLayerForChecksum(ip)
	g.emit(t, eth, ip, u, app)
}

// icmp sends an ICMPv4 message; payload follows its 8-octet header.
func (g *gen) icmp(t time.Time, src, dst host, tc layers.ICMPv4TypeCode, id, seq uint16, payload []byte) {
	eth, ip := ipv4(src, dst, layers.IPProtocolICMPv4)
	g.emit(t, eth, ip, &layers.ICMPv4{TypeCode: tc, Id: id, Seq: seq}, gopacket.Payload(payload))
}

// arpRequest asks, from sender, for the MAC of ip (broadcast).
func (g *gen) arpRequest(t time.Time, sender host, ip net.IP) {
	g.arp(t, layers.ARPRequest, sender, host{ip: ip, mac: make(net.HardwareAddr, 6)}, broadcastMAC)
}

// arpReply tells target that sender.ip is at sender.mac.
func (g *gen) arpReply(t time.Time, sender, target host) {
	g.arp(t, layers.ARPReply, sender, target, target.mac)
}

func (g *gen) arp(t time.Time, op uint16, sender, target host, dstMAC net.HardwareAddr) {
	eth := &layers.Ethernet{SrcMAC: sender.mac, DstMAC: dstMAC, EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: sender.mac, SourceProtAddress: sender.ip, DstHwAddress: target.mac, DstProtAddress: target.ip}
	g.emit(t, eth, a)
}

// conn is one TCP connection's sequence state.
type conn struct {
	c, s       host
	cport      uint16
	sport      uint16
	cseq, sseq uint32
}

// connect performs a three-way handshake and returns the connection.
func (g *gen) connect(t time.Time, c, s host, cport, sport uint16) *conn {
	k := &conn{c: c, s: s, cport: cport, sport: sport, cseq: g.rng.Uint32(), sseq: g.rng.Uint32()}
	g.tcp(t, c, s, cport, sport, tcpFlags{syn: true}, k.cseq, 0, nil)
	g.tcp(t.Add(300*time.Microsecond), s, c, sport, cport, tcpFlags{syn: true, ack: true}, k.sseq, k.cseq+1, nil)
	k.cseq++
	k.sseq++
	g.tcp(t.Add(500*time.Microsecond), c, s, cport, sport, tcpFlags{ack: true}, k.cseq, k.sseq, nil)
	return k
}

// exchange sends a request and its response, then the client's ACK.
func (g *gen) exchange(k *conn, t time.Time, req, resp []byte) {
	g.request(k, t, req)
	g.respond(k, t.Add(2*time.Millisecond), resp)
	g.ackResponse(k, t.Add(2200*time.Microsecond))
}

func (g *gen) request(k *conn, t time.Time, req []byte) {
	g.tcp(t, k.c, k.s, k.cport, k.sport, tcpFlags{ack: true, psh: true}, k.cseq, k.sseq, req)
	k.cseq += uint32(len(req))
}

func (g *gen) respond(k *conn, t time.Time, resp []byte) {
	g.tcp(t, k.s, k.c, k.sport, k.cport, tcpFlags{ack: true, psh: true}, k.sseq, k.cseq, resp)
	k.sseq += uint32(len(resp))
}

func (g *gen) ackResponse(k *conn, t time.Time) {
	g.tcp(t, k.c, k.s, k.cport, k.sport, tcpFlags{ack: true}, k.cseq, k.sseq, nil)
}

func (g *gen) close(k *conn, t time.Time) {
	g.tcp(t, k.c, k.s, k.cport, k.sport, tcpFlags{fin: true, ack: true}, k.cseq, k.sseq, nil)
	g.tcp(t.Add(time.Millisecond), k.s, k.c, k.sport, k.cport, tcpFlags{fin: true, ack: true}, k.sseq, k.cseq+1, nil)
	g.tcp(t.Add(2*time.Millisecond), k.c, k.s, k.cport, k.sport, tcpFlags{ack: true}, k.cseq+1, k.sseq+1, nil)
}

// sort orders the frames by time, ties in generation order.
func (g *gen) sort() {
	sort.SliceStable(g.frames, func(i, j int) bool {
		if !g.frames[i].t.Equal(g.frames[j].t) {
			return g.frames[i].t.Before(g.frames[j].t)
		}
		return g.frames[i].seq < g.frames[j].seq
	})
}

// write sorts the frames by time and writes the capture.
func (g *gen) write(w io.Writer) error {
	if g.err != nil {
		return g.err
	}
	g.sort()
	return g.writeFrames(w)
}

// writeFrames writes the frames in their current order (classic pcap,
// microseconds, Ethernet).
func (g *gen) writeFrames(w io.Writer) error {
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return fmt.Errorf("cannot write capture header: %w", err)
	}
	for _, f := range g.frames {
		ci := gopacket.CaptureInfo{Timestamp: f.t, CaptureLength: len(f.data), Length: len(f.data)}
		if err := pw.WritePacket(ci, f.data); err != nil {
			return fmt.Errorf("cannot write capture: %w", err)
		}
	}
	return nil
}
