package packet

// What the extractor checks before it believes a packet: who is client and
// who is server of a flow, whether both ends of a TCP flow proved they take
// part (a forged source never does), whether a timestamp fits its
// neighbours, and whether someone in the path rewrites TCP bytes or binds an
// IP to another MAC (adversary in the middle, ATT&CK for ICS T0830).

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/ot"
	"github.com/vigil-ot/vigil/ingest/pcap"
)

// TrustStats counts what the extractor refused to believe or found
// suspicious; it is part of Stats.
type TrustStats struct {
	// HalfOpenFlows: TCP flows forgotten (idle or evicted) before both ends
	// proved they take part: unanswered, refused or spoofed SYNs,
	// backscatter. Their sources became neither assets nor communications.
	HalfOpenFlows int64
	// NonAssetHostsEvicted: hosts evicted from the host table that never
	// proved they exist (targets of scans, forged and backscatter
	// addresses); also counted in HostsEvicted.
	NonAssetHostsEvicted int64
	// TimeOutliers: packets whose timestamp lay more than max_time_jump
	// from their neighbours'; each was counted at the time of the packet
	// before it.
	TimeOutliers int64
	// TimeJumps: steps of the capture clock of more than max_time_jump that
	// the packets after them confirmed (a real gap), accepted.
	TimeJumps int64
	// ConflictingRetransmissions: TCP retransmissions whose bytes differ
	// from the bytes first delivered at the same sequence numbers.
	ConflictingRetransmissions int64
	// ARPRebindings: ARP messages that bound a known IP to another MAC.
	ARPRebindings int64
	// ARPBindingsEvicted: IP-to-MAC bindings forgotten because the table
	// (max_hosts entries) was full; a rebinding of one of them goes unseen.
	ARPBindingsEvicted int64
}

// TimeAnomaly is a packet whose timestamp did not fit its neighbours.
type TimeAnomaly struct {
	// Packet is the packet's position: its number in the replay from 0
	// (or its record offset after SetPartition).
	Packet    int64
	TimeNanos int64 // the packet's own timestamp
	PrevNanos int64 // the timestamp of the packet before the step
	Set       bool
}

// ringSize is how many delivered bytes per TCP direction are kept to
// compare retransmissions with: more than a Modbus or DNP3 request, and
// the usual retransmission repeats the last segment.
const ringSize = 256

// trustState is the extractor's state for the checks of this file.
type trustState struct {
	maxJump  int64  // packets.max_time_jump, ns
	jumpSpan uint64 // 2*maxJump+1 while no step is pending, else 0: see Add
	timeRef  int64  // timestamp of the last packet that fitted
	timeSeen bool
	// The packet beyond a step of the clock, held until the next packet
	// tells a real gap from a corrupt time: its copy (data in heldData,
	// reused), its number, and the reference time before it.
	held                    bool
	heldPkt                 pcap.Packet
	heldData                []byte
	heldPos                 int64
	jumpFromRef             int64
	firstOutlier, firstJump TimeAnomaly

	freeRings []*[ringSize]byte
	arp       map[[4]byte]arpBinding
}

// arpBinding is what ARP told of one IPv4 address.
type arpBinding struct {
	mac, prev [6]byte
	hasPrev   bool
	last      int64
}

// pendingFunction is an OT function a client sent before its TCP flow was
// proven: it becomes a communication once the server answers, so a
// capture that starts mid-session still shows the first request.
type pendingFunction struct {
	name   string
	class  ot.Class
	proto  ot.Protocol
	first  int64
	pdus   int64
	bytes  int64
	offset int64
}

func (x *Extractor) initTrust() {
	x.trust.maxJump = int64(x.cfg.MaxTimeJump)
	x.trust.arp = make(map[[4]byte]arpBinding)
}

// checkTime takes the packets the common path of Add does not: the first
// one, one more than max_time_jump from the last packet that fitted, and
// the one after such a packet. A packet beyond a step of the clock is held
// (copied) until the next packet decides: if that one is beyond the step
// too, the step is a real gap and the held packet is added at its own
// time; if it is back on the old timeline, the held packet was a corrupt
// time and is added at the time of the packet before it (counted, warned
// of), so it neither opens windows nor ends learning. Either way no
// packet after a real gap is dated before it.
func (x *Extractor) checkTime(p *pcap.Packet, pos int64) {
	s := &x.trust
	t := p.TimeNanos
	if !s.timeSeen {
		s.timeSeen, s.timeRef, s.jumpSpan = true, t, uint64(2*s.maxJump+1)
		x.add(p, t, pos)
		return
	}
	if s.held {
		d, step := t-s.timeRef, s.heldPkt.TimeNanos-s.timeRef
		if d > s.maxJump && step > 0 || d < -s.maxJump && step < 0 {
			// Beyond the step as well: a real gap (or clock step).
			x.stats.TimeJumps++
			if !s.firstJump.Set {
				s.firstJump = TimeAnomaly{Packet: s.heldPos, TimeNanos: s.heldPkt.TimeNanos, PrevNanos: s.jumpFromRef, Set: true}
			}
			s.held, s.jumpSpan, s.timeRef = false, uint64(2*s.maxJump+1), s.heldPkt.TimeNanos
			x.add(&s.heldPkt, s.heldPkt.TimeNanos, s.heldPos)
			if uint64(t-s.timeRef+s.maxJump) < s.jumpSpan {
				s.timeRef = t
				x.add(p, t, pos)
				return
			}
			// this one is beyond the new timeline: a suspect of its own
		} else {
			x.endTimeStep()
			if d >= -s.maxJump && d <= s.maxJump {
				s.timeRef = t
				x.add(p, t, pos)
				return
			}
		}
	}
	if d := t - s.timeRef; d >= -s.maxJump && d <= s.maxJump {
		s.timeRef = t
		x.add(p, t, pos)
		return
	}
	s.held, s.heldPos, s.jumpFromRef = true, pos, s.timeRef
	s.heldData = append(s.heldData[:0], p.Data...)
	s.heldPkt = *p
	s.heldPkt.Data = s.heldData
	s.jumpSpan = 0 // the next packet takes this path and decides
}

// endTimeStep adds the held packet, if any, as a time outlier: at the
// time of the packet before it.
func (x *Extractor) endTimeStep() {
	s := &x.trust
	if !s.held {
		return
	}
	x.stats.TimeOutliers++
	if !s.firstOutlier.Set {
		s.firstOutlier = TimeAnomaly{Packet: s.heldPos, TimeNanos: s.heldPkt.TimeNanos, PrevNanos: s.jumpFromRef, Set: true}
	}
	s.held, s.jumpSpan = false, uint64(2*s.maxJump+1)
	x.add(&s.heldPkt, x.lastTime, s.heldPos)
}

// SettleTime adds a packet still held beyond a step of the clock when the
// input ends, as a time outlier (nothing after it confirmed the step).
// Call it at the end of the input, before Flush.
func (x *Extractor) SettleTime() { x.endTimeStep() }

// TimeAnomalies returns the first packet counted as a time outlier and
// the first step of the clock accepted as a real gap (Set false when none).
func (x *Extractor) TimeAnomalies() (outlier, jump TimeAnomaly) {
	return x.trust.firstOutlier, x.trust.firstJump
}

// settleRoles decides which end of fl is the client and which protocol
// it speaks. The TCP handshake decides the roles for good (the SYN's
// sender is the client, a SYN-ACK's receiver is) and then only the
// server's port may name the protocol. Without a handshake (a capture
// that starts mid-session, UDP), the first payload that validates decides
// both; until then the ports give a guess, which never overrides a
// handshake.
func (x *Extractor) settleRoles(fl *flow, f *Frame, fromB, isNew, udp bool) {
	guess := isNew
	if !udp {
		// A segment with SYN and FIN or RST (a fuzzer's, a scanner's)
		// opens nothing.
		switch f.TCPFlags & (flagSYN | flagACK | flagFIN | flagRST) {
		case flagSYN:
			guess = guess || !fl.handshake || fl.clientB != fromB
			fl.clientB, fl.handshake = fromB, true
		case flagSYN | flagACK:
			if !fl.handshake {
				fl.clientB, fl.handshake, guess = !fromB, true, true
			}
		}
	}
	if isNew && !fl.handshake {
		fl.clientB = fromB // the first packet's sender, unless told otherwise
		if serverPortLess(f.SrcPort, f.DstPort) {
			fl.clientB = !fromB // mid-stream: the lower, well-known port serves
		}
	}
	if fl.detected || len(f.Payload) == 0 && !guess {
		return
	}
	switch {
	case fl.handshake:
		fl.proto = ot.DetectServer(fl.serverPort(), udp, f.Payload)
	case len(f.Payload) == 0:
		// Only one port may name the protocol for the guess to move the
		// roles: 2404 -> 502 is no evidence of who serves.
		ps, pd := ot.PortProtocol(f.SrcPort, udp), ot.PortProtocol(f.DstPort, udp)
		switch {
		case ps != ot.None && pd == ot.None:
			fl.clientB = !fromB
		case pd != ot.None && ps == ot.None:
			fl.clientB = fromB
		}
		fl.proto = ot.PortProtocol(fl.serverPort(), udp)
	default:
		p, fromServer := ot.Detect(f.SrcPort, f.DstPort, udp, f.Payload)
		fl.proto = p
		if p != ot.None {
			fl.clientB = fromB != fromServer // the client is b when b sent a request or a received a response
		}
	}
	// A broadcast or multicast address never sends: whoever sends to one
	// is the client (a BACnet Who-Is from port 47808 to 47808 is asked,
	// not answered, by its sender), unless its port says it serves (a PLC
	// answering a discovery broadcast from its port to the asker's).
	if x.groupAddress(&f.Dst) && !serverPortLess(f.SrcPort, f.DstPort) {
		fl.clientB = fromB
	}
	// A capture that starts mid-session may show a flow's first payload
	// mid-PDU: try a few payloads before settling on None.
	if len(f.Payload) > 0 {
		fl.tries++
		fl.detected = fl.proto != ot.None || fl.tries >= maxDetectTries
	}
}

// groupAddress tells a broadcast or multicast destination: IPv4
// 255.255.255.255, 224.0.0.0/4 and the last address of the subnet of
// packets.unmanaged_prefix_v4 (up to /30), IPv6 ff00::/8.
func (x *Extractor) groupAddress(a *[16]byte) bool {
	if !isV4Mapped(a) {
		return a[0] == 0xff
	}
	v4 := a[12:]
	if v4[0]&0xf0 == 0xe0 || v4[0] == 255 && v4[1] == 255 && v4[2] == 255 && v4[3] == 255 {
		return true
	}
	bits := x.cfg.UnmanagedPrefixV4
	if bits == 0 || bits > 30 {
		return false
	}
	host := ^uint32(0) >> bits
	ip := uint32(v4[0])<<24 | uint32(v4[1])<<16 | uint32(v4[2])<<8 | uint32(v4[3])
	return ip&host == host
}

// isV4Mapped tells an IPv4 address in its 16-byte form (::ffff:a.b.c.d).
func isV4Mapped(a *[16]byte) bool {
	for _, b := range a[:10] {
		if b != 0 {
			return false
		}
	}
	return a[10] == 0xff && a[11] == 0xff
}

func (fl *flow) serverPort() uint16 {
	if fl.clientB {
		return fl.key.portA()
	}
	return fl.key.portB()
}

// provenSender reports whether the packet's sender takes part in a TCP
// conversation: the flow is established, or the packet is the server's
// answer to a SYN. A flow is established when the client spoke after the
// server's SYN-ACK (its ACK or data, not a RST), or, when no handshake was
// seen (a capture that starts mid-session), once both ends sent a segment
// other than a RST and one carried data (or, see provenByRequest, the
// client sent a well-formed OT request). A forged source never answers the
// SYN-ACK meant for it, so a spoofed flood or backscatter makes neither
// assets nor communications of the forged addresses. When the flow becomes
// established both ends become assets, and a function the client sent
// before becomes a communication.
func (x *Extractor) provenSender(fl *flow, f *Frame, fromB, fromClient bool, ts int64) bool {
	if fl.tcp&tcpEstablished != 0 {
		return true
	}
	rst := f.TCPFlags&flagRST != 0
	if !rst {
		if fromB {
			fl.tcp |= tcpSentB
		} else {
			fl.tcp |= tcpSentA
		}
		if len(f.Payload) > 0 {
			fl.tcp |= tcpData
		}
	}
	established := false
	switch {
	case fl.tcp&tcpSYNACK != 0:
		established = fromClient && !rst && f.TCPFlags&(flagSYN|flagACK) == flagACK
	default:
		established = fl.tcp&(tcpSentA|tcpSentB|tcpData) == tcpSentA|tcpSentB|tcpData
	}
	if !established {
		return !fromClient && !rst && fl.tcp&tcpSYNACK != 0
	}
	fl.tcp |= tcpEstablished
	for e := range fl.host {
		if i := fl.host[e].idx; !x.hosts.at(i).asset {
			x.markAsset(i, ts)
		}
	}
	x.flushPending(fl)
	return true
}

// provenByRequest establishes a TCP flow on which no SYN-ACK was seen when
// the client sends a well-formed OT request outside a SYN: a capture of
// one direction only, or one that starts mid-session, still shows who
// commands what, while a forged SYN, backscatter and a flood of garbage
// segments prove nothing. Only the client becomes an asset: the server
// has not been seen sending.
func (x *Extractor) provenByRequest(fl *flow, client int32, ts int64) bool {
	if fl.tcp&tcpSYNACK != 0 || x.frame.TCPFlags&flagSYN != 0 {
		return false
	}
	fl.tcp |= tcpEstablished
	h := x.hosts.at(client)
	h.clientProtos |= uint16(1) << uint(min(int(fl.proto), protoOther))
	if !h.asset {
		x.markAsset(client, ts)
	}
	x.flushPending(fl)
	return true
}

// flowProven tells whether PDUs of fl may become communications.
func flowProven(fl *flow) bool {
	return fl.key.transport() == 17 || fl.tcp&tcpEstablished != 0
}

// holdFunction keeps the function of a client PDU on an unproven flow
// (the last one; repeats are counted).
func (x *Extractor) holdFunction(fl *flow, p *ot.PDU, ts int64) {
	h := &fl.pending
	if h.name != p.FunctionName || h.proto != p.Proto {
		*h = pendingFunction{name: p.FunctionName, class: p.Class, proto: p.Proto, first: ts, offset: x.pos}
	}
	h.pdus++
	h.bytes += int64(p.Len)
}

// flushPending turns the held function of a flow that was just proven
// into a communication of the current batch.
func (x *Extractor) flushPending(fl *flow) {
	h := &fl.pending
	if h.name == "" {
		return
	}
	i := x.comm(fl, h.first, h.name)
	if i >= 0 {
		c := &x.comms[i]
		if c.Packets == 0 { // new: it starts with the held PDUs
			c.FirstNanos, c.Offset = h.first, h.offset
		}
		c.FunctionClass = h.class.String()
		c.Packets += h.pdus
		c.Bytes += h.bytes
	}
	*h = pendingFunction{}
}

// forgetFlow is called before a flow's slot is reused: it counts a TCP
// flow that never became established and returns its rings.
func (x *Extractor) forgetFlow(fl *flow) {
	if fl.key.transport() == 6 && fl.tcp&tcpEstablished == 0 {
		x.stats.HalfOpenFlows++
	}
	for d := range fl.streams {
		if r := fl.streams[d].ring; r != nil {
			x.trust.freeRings = append(x.trust.freeRings, r)
			fl.streams[d].ring, fl.streams[d].ringLen = nil, 0
		}
	}
}

// remember records the bytes data, which end at sequence number end, as
// delivered on st. Only proven flows keep them (a ring of ringSize bytes
// per direction, reused from flow to flow): a flood of forged segments
// costs none, and an adversary in the middle rewrites real conversations.
func (x *Extractor) remember(fl *flow, st *stream, data []byte, end uint32) {
	if len(data) == 0 || !flowProven(fl) {
		return
	}
	if st.ring == nil {
		if n := len(x.trust.freeRings); n > 0 {
			st.ring = x.trust.freeRings[n-1]
			x.trust.freeRings = x.trust.freeRings[:n-1]
		} else {
			st.ring = new([ringSize]byte)
		}
		st.ringLen = 0
	}
	if st.ringEnd != end-uint32(len(data)) {
		st.ringLen = 0 // not contiguous with what is kept
	}
	if len(data) > ringSize {
		data = data[len(data)-ringSize:]
	}
	off := int((end - uint32(len(data))) % ringSize)
	n := copy(st.ring[off:], data)
	copy(st.ring[:], data[n:])
	st.ringEnd = end
	st.ringLen = uint16(min(int(st.ringLen)+len(data), ringSize))
}

// checkRetransmission compares a segment that starts before st.next (seq,
// its bytes data) with the bytes delivered first, and reports a mitm_tcp
// finding when they differ. A keep-alive probe (one byte just before
// st.next, garbage by design) is not compared.
func (x *Extractor) checkRetransmission(fl *flow, st *stream, f *Frame, seq uint32, data []byte, ts int64) {
	if st.ring == nil || st.ringLen == 0 || len(data) == 1 && seq == st.next-1 {
		return
	}
	a := int64(int32(seq - st.ringEnd)) // offset of data[0] from ringEnd (negative: before it)
	lo, hi := max(a, -int64(st.ringLen)), min(a+int64(len(data)), 0)
	differ, first := 0, int64(0)
	for o := lo; o < hi; o++ {
		if st.ring[(st.ringEnd+uint32(o))%ringSize] != data[o-a] {
			if differ == 0 {
				first = o
			}
			differ++
		}
	}
	if differ == 0 {
		return
	}
	x.stats.ConflictingRetransmissions++
	if fl.mitmBatch == x.batchSeq && fl.mitmEvent >= 0 {
		x.events[fl.mitmEvent].Value++
		return
	}
	if len(x.events) >= maxEvents {
		x.stats.EventsDropped++
		return
	}
	si := fl.host[1].idx
	if fl.clientB {
		si = fl.host[0].idx
	}
	hs := x.nameHost(x.hosts.at(si))
	at := st.ringEnd + uint32(first)
	detail := fmt.Sprintf("TCP retransmission from %s:%d to %s:%d carries other bytes than first delivered: %d of %d bytes differ at seq %d-%d (first at seq %d: 0x%02x, was 0x%02x); a host in the path may be rewriting %s traffic",
		netip.AddrFrom16(f.Src).Unmap(), f.SrcPort, netip.AddrFrom16(f.Dst).Unmap(), f.DstPort, differ, hi-lo,
		st.ringEnd+uint32(lo), st.ringEnd+uint32(hi)-1, at, data[first-a], st.ring[at%ringSize], fl.proto)
	fl.mitmBatch, fl.mitmEvent = x.batchSeq, int32(len(x.events))
	x.events = append(x.events, ingest.NetEvent{
		TimeNanos: ts, Kind: "mitm_tcp", Device: hs.device, Group: hs.group,
		SrcIP: netip.AddrFrom16(f.Src).Unmap(), DstIP: netip.AddrFrom16(f.Dst).Unmap(),
		Transport: 6, SrcPort: f.SrcPort, DstPort: f.DstPort, Protocol: fl.proto.String(),
		Detail: detail, Value: 1, Partition: x.partition, Offset: x.pos,
	})
}

// arpBinding learns the sender binding of an ARP message (host i is the
// sender's address) and reports a mitm_arp finding when it binds a known
// IP to another MAC. Flapping back to the MAC the IP had before the last
// change is not reported again: one finding per IP and change.
func (x *Extractor) arpBinding(i int32, f *Frame, ts int64) {
	ip := [4]byte(f.ARPSender[12:])
	m := x.trust.arp
	b, ok := m[ip]
	if !ok {
		if len(m) >= x.cfg.MaxHosts {
			x.evictARPBinding()
		}
		m[ip] = arpBinding{mac: f.ARPSenderMAC, last: ts}
		return
	}
	if b.mac == f.ARPSenderMAC {
		if ts-b.last > int64(time.Second) {
			b.last = ts
			m[ip] = b
		}
		return
	}
	x.stats.ARPRebindings++
	old, since, flap := b.mac, b.last, b.hasPrev && b.prev == f.ARPSenderMAC
	b.prev, b.hasPrev, b.mac, b.last = b.mac, true, f.ARPSenderMAC, ts
	m[ip] = b
	if flap {
		return
	}
	h := x.nameHost(x.hosts.at(i))
	what := "reply"
	switch {
	case f.ARPTarget == f.ARPSender:
		what = "gratuitous ARP"
	case f.ARPRequest:
		what = "request"
	}
	e := ingest.NetEvent{
		TimeNanos: ts, Kind: "mitm_arp", Device: h.device, Group: h.group, SrcIP: h.ip,
		Detail: fmt.Sprintf("ARP %s binds %s to %s, which was bound to %s (seen %s before): another host may be intercepting its traffic, or its network card was replaced",
			what, h.ipText, net.HardwareAddr(f.ARPSenderMAC[:]), net.HardwareAddr(old[:]), time.Duration(ts-since).Round(time.Second)),
		Value: 1, Partition: x.partition, Offset: x.pos,
	}
	if f.ARPTarget != ([16]byte{}) {
		e.DstIP = netip.AddrFrom16(f.ARPTarget).Unmap()
	}
	x.addEvent(e)
}

// evictARPBinding forgets the least recently confirmed of a few bindings.
func (x *Extractor) evictARPBinding() {
	var victim [4]byte
	oldest, n := int64(0), 0
	for ip, b := range x.trust.arp {
		if n == 0 || b.last < oldest {
			victim, oldest = ip, b.last
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(x.trust.arp, victim)
	x.stats.ARPBindingsEvicted++
}
