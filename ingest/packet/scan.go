package packet

// Reconnaissance findings beside the short-window scan rules of findings
// (window.go): sweeps, slow and small scans, OT device identification,
// register enumeration and exception storms. Each is reported at most once
// per source host, kind and long window (packets.scan_window_long), so that
// one attack is one finding; exception storms once per shortest window.
//
//   - Failed probes. A TCP connection attempt refused (RST before SYN-ACK)
//     or unanswered (no SYN-ACK), a UDP datagram answered by ICMP
//     unreachable or by nothing, an ICMP echo request not answered, a
//     broadcast ARP request whose target never showed up: each is a failed
//     probe of its sender towards a target (host and port). Normal polling
//     does not fail towards many distinct targets: a master keeps talking
//     to the same few outstations, and one that is down is one target
//     however often it is retried. So scan_failed_probes distinct failed
//     targets within scan_failed_window (sliding), at least half of the
//     targets probed in that time, are a scan however slowly they came:
//     inside an OT segment eight refused probes are abnormal. So are
//     scan_ports_long distinct ports or scan_hosts_long distinct hosts in
//     the long window, when failed targets are at least as many as
//     answered ones. Kinds: scan_hosts_slow or scan_ports_slow (whichever
//     dimension dominates; "_slow" are the scans found below the shortest
//     window's rate, and are not reported for a host whose scan_ports or
//     scan_hosts already was), sweep_arp, sweep_icmp. A monitoring server
//     whose pings to a third of its devices go unanswered raises nothing.
//     Only hosts with a failed probe get this state, and it is bounded: a
//     small exact set becomes an HLL sketch (baseline.HLL) past
//     exactMembers members, at most maxScanStates hosts hold state (the
//     least active is evicted, counted), at most maxSketches sketches live
//     (beyond, counts saturate, counted). Unanswered probes are followed
//     up one shortest window later, from a bounded queue (maxPending,
//     overflow counted).
//   - Fast ARP sweeps: broadcast ARP requests (unicast ones refresh known
//     neighbours) for scan_hosts distinct addresses in the shortest window,
//     like the TCP/UDP host scan rule (sweep_arp). ICMP has no such rule:
//     a monitoring server pings all its devices every cycle; a sweep is
//     found by its echoes going mostly unanswered.
//   - Device identification (identify, T0888): Modbus read device
//     identification (0x2B/0x0E), S7 read SZL (userdata group 4,
//     subfunction 1), BACnet Who-Is, CIP ListIdentity and DNP3 reads or
//     link-layer requests to a broadcast link address (0xFFFD-0xFFFF),
//     sent to identify_hosts distinct unicast hosts in the long window,
//     at most maxIdentifyRepeat requests per host on average. Broadcast
//     discovery (a Who-Is to the subnet) is how every BACnet workstation
//     finds its devices and is not counted; asking the hosts one by one is
//     what scanners do (nmap's bacnet-info, enip-info, s7-info,
//     modbus-discover, plcscan). The repeat bound keeps out an HMI that
//     polls SZL diagnostics of its PLCs. Decided when the long window
//     closes, since only then is repetition known.
//   - Enumeration (enumerate, T0861): a Modbus client whose read requests
//     in the long window reach enumerate_addresses distinct (server, unit,
//     function, start address), with fewer than two requests per address
//     on average: a walk over the register map, where a poller reads the
//     same addresses every cycle. Decided when the long window closes. A
//     poller that reads many addresses once per long window or slower
//     looks the same, and is reported.
//   - Exception storm: a client that receives exception_storm error
//     responses in the shortest window, at least half of its responses
//     (Modbus only counts illegal function, data address and data value,
//     the answers probing draws; a busy or failing slave is not probing).

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"

	"github.com/vigil-ot/vigil/baseline"
	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/ot"
)

const (
	exactMembers      = 32      // distinct members counted exactly before a sketch takes over
	sketchPrecision   = 10      // 1 KiB registers, 3.3 % standard error
	maxSketches       = 512     // live sketches over all hosts
	maxScanStates     = 1024    // hosts with reconnaissance state
	maxPending        = 1 << 14 // probes awaiting an answer
	maxIdentifyRepeat = 8       // identification requests per host, on average, above which it is polling
)

// Kinds reported at most once per host and long window (scanState.reported).
const (
	bitScanPorts uint16 = 1 << iota // scan_ports of the shortest window: no scan_ports_slow on top
	bitScanHosts
	bitScanPortsSlow
	bitScanHostsSlow
	bitSweepARP
	bitSweepICMP
	bitIdentify
	bitEnumerate
)

type probeClass uint8

const (
	classConn probeClass = iota // TCP or UDP connection attempt
	classARP
	classICMP
)

// distinctCounter counts distinct 64-bit hashes: exactly up to
// exactMembers, then with an HLL sketch.
type distinctCounter struct {
	n      int32
	exact  [exactMembers]uint64
	sketch *baseline.HLL
}

func (c *distinctCounter) add(h uint64, s *scanTracker, st *Stats) {
	if c.sketch != nil {
		c.sketch.AddHash(h)
		return
	}
	for _, e := range c.exact[:c.n] {
		if e == h {
			return
		}
	}
	if c.n < exactMembers {
		c.exact[c.n] = h
		c.n++
		return
	}
	if s.sketches >= maxSketches {
		st.ScanSketchesRefused++ // the count stays at exactMembers
		return
	}
	s.sketches++
	c.sketch = baseline.NewHLL(sketchPrecision)
	for _, e := range c.exact {
		c.sketch.AddHash(e)
	}
	c.sketch.AddHash(h)
}

func (c *distinctCounter) count() float64 {
	if c.sketch != nil {
		return max(math.Round(c.sketch.Estimate()), exactMembers)
	}
	return float64(c.n)
}

func (c *distinctCounter) reset(s *scanTracker) {
	if c.sketch != nil {
		c.sketch = nil
		s.sketches--
	}
	c.n = 0
}

// target is where a probe went.
type target struct {
	addr      [16]byte
	port      uint16
	transport uint8
	valid     bool
}

// probeOutcome is a probe's outcome in a host's ring of recent ones.
type probeOutcome struct {
	key    uint64 // class, address and port
	host   uint64 // address
	at     int64
	port   uint16
	class  probeClass
	failed bool
}

// scanState is one source host's reconnaissance: failed probes, device
// identification and Modbus reads, over the current long window.
type scanState struct {
	addr                    [16]byte
	dirty                   bool // listed in scanTracker.dirty
	reported                uint16
	failures                int64 // failed probes in the long window
	hosts, ports, arp, icmp distinctCounter
	failedTargets, answered distinctCounter // (class, address, port) of failed and answered probes
	recent                  [ingest.MaxScanFailedProbes]probeOutcome
	nRecent                 int
	lastConn, lastARP       target
	lastICMP                target
	idHosts                 distinctCounter // unicast hosts sent identification requests
	idRequests              int64
	idProto                 ot.Protocol
	idFunction              string
	lastID                  target
	addrs                   distinctCounter // Modbus (server, unit, function, start address) read
	reads                   int64
	lastRead                target
	lastError               target // the server of the last error response received
	errProto                ot.Protocol
}

// weight orders states for eviction: the least active goes first, so a
// flood of spoofed sources with one unanswered SYN each evicts its own
// kind, not a scanner's state.
func (st *scanState) weight() int64 { return st.failures + st.reads + st.idRequests }

func (st *scanState) resetLong(s *scanTracker) {
	st.reported, st.failures = 0, 0
	st.hosts.reset(s)
	st.ports.reset(s)
	st.arp.reset(s)
	st.icmp.reset(s)
	st.failedTargets.reset(s)
	st.answered.reset(s)
	st.idHosts.reset(s)
	st.addrs.reset(s)
	st.idRequests, st.reads = 0, 0
}

// probe is a connection attempt, echo request or ARP request awaiting an
// answer.
type probe struct {
	at       int64
	hash     uint64 // flow hash (classConn)
	flow     int32
	class    probeClass
	src, dst [16]byte
}

// scanTracker holds the state of scan.go's rules; the zero value is ready.
type scanTracker struct {
	states   []*scanState
	byAddr   map[[16]byte]int32
	hand     int
	dirty    []int32   // states with new failures since the last window close
	sweepers []hostRef // hosts with ARP sweep counts in the shortest window
	pending  []probe   // in time order from head
	head     int
	sketches int
	final    bool // the input ended: decide the long window now (Flush)
}

// state returns the reconnaissance state of addr, creating it (and
// evicting the least active one when maxScanStates hold state).
func (x *Extractor) state(addr *[16]byte) *scanState {
	s := &x.scan
	if i, ok := s.byAddr[*addr]; ok {
		return s.states[i]
	}
	if s.byAddr == nil {
		s.byAddr = make(map[[16]byte]int32)
	}
	var i int32
	if len(s.states) < maxScanStates {
		s.states = append(s.states, &scanState{})
		i = int32(len(s.states) - 1)
	} else {
		best := -1
		for range evictSample {
			s.hand = (s.hand + 1) % len(s.states)
			if best < 0 || s.states[s.hand].weight() < s.states[best].weight() {
				best = s.hand
			}
		}
		i = int32(best)
		old := s.states[i]
		delete(s.byAddr, old.addr)
		old.resetLong(s)
		x.stats.ScanStatesEvicted++
	}
	st := s.states[i]
	*st = scanState{addr: *addr}
	s.byAddr[*addr] = i
	return st
}

func addrHash(a *[16]byte) uint64 {
	return baseline.HashCombine(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:]))
}

// isBroadcast tells multicast and broadcast addresses: IPv4 224/3 (with
// 255.255.255.255), the directed broadcast of the unmanaged_prefix_v4
// subnet, IPv6 ff00::/8.
func (x *Extractor) isBroadcast(a *[16]byte) bool {
	if netip.AddrFrom16(*a).Is4In6() {
		if a[12] >= 224 {
			return true
		}
		bits := x.cfg.UnmanagedPrefixV4
		if bits <= 0 || bits >= 31 {
			return false
		}
		hostMask := uint32(1)<<(32-bits) - 1
		return binary.BigEndian.Uint32(a[12:])&hostMask == hostMask
	}
	return a[0] == 0xff
}

// recordFailure counts a failed probe of src towards t.
func (x *Extractor) recordFailure(src *[16]byte, class probeClass, t target, ts int64) {
	x.recordProbe(src, class, t, ts, true)
}

// recordAnswered counts an answered probe of src, if src has failed
// probes: the failed-probe rules ask for mostly failed probes, so that a
// monitoring server whose pings to a few devices of fifty go unanswered
// is not a sweep.
func (x *Extractor) recordAnswered(src *[16]byte, class probeClass, t target, ts int64) {
	if _, ok := x.scan.byAddr[*src]; ok {
		x.recordProbe(src, class, t, ts, false)
	}
}

func (x *Extractor) recordProbe(src *[16]byte, class probeClass, t target, ts int64, failed bool) {
	st := x.state(src)
	h := addrHash(&t.addr)
	key := baseline.HashCombine(h, uint64(class)<<24|uint64(t.transport)<<16|uint64(t.port))
	s := &x.scan
	if !failed {
		st.answered.add(key, s, &x.stats)
	} else {
		st.failures++
		st.failedTargets.add(key, s, &x.stats)
		switch class {
		case classConn:
			st.hosts.add(h, s, &x.stats)
			st.ports.add(baseline.HashUint64(uint64(t.transport)<<16|uint64(t.port)), s, &x.stats)
			st.lastConn = t
		case classARP:
			st.arp.add(h, s, &x.stats)
			st.lastARP = t
		case classICMP:
			st.icmp.add(h, s, &x.stats)
			st.lastICMP = t
		}
		x.markDirty(st)
	}
	// The ring keeps the latest outcome per target; when full, the oldest
	// target makes room.
	oldest := 0
	for i := range st.nRecent {
		e := &st.recent[i]
		if e.key == key {
			e.at, e.failed = ts, failed
			return
		}
		if e.at < st.recent[oldest].at {
			oldest = i
		}
	}
	i := oldest
	if st.nRecent < len(st.recent) {
		i = st.nRecent
		st.nRecent++
	}
	st.recent[i] = probeOutcome{key: key, host: h, at: ts, port: t.port, class: class, failed: failed}
}

func (x *Extractor) markDirty(st *scanState) {
	if !st.dirty {
		st.dirty = true
		x.scan.dirty = append(x.scan.dirty, x.scan.byAddr[st.addr])
	}
}

// enqueue remembers a probe to check for an answer later.
func (x *Extractor) enqueue(p probe) {
	s := &x.scan
	if len(s.pending)-s.head >= maxPending {
		x.stats.ProbesUntracked++
		return
	}
	if s.head > 0 && len(s.pending) == cap(s.pending) {
		n := copy(s.pending, s.pending[s.head:])
		s.pending = s.pending[:n]
		s.head = 0
	}
	s.pending = append(s.pending, p)
}

// probeStarted is called for the first packet of a flow: a client's TCP
// SYN or UDP datagram to a unicast host is a probe until answered.
func (x *Extractor) probeStarted(fi int32, fromClient bool, ts int64, f *Frame) {
	if !fromClient || f.Transport == 6 && f.TCPFlags&(flagSYN|flagACK) != flagSYN {
		return
	}
	if x.isBroadcast(&f.Dst) {
		return
	}
	x.enqueue(probe{at: ts, hash: x.flows.flows[fi].hash, flow: fi, class: classConn, src: f.Src, dst: f.Dst})
}

// probeRefused is called when the server resets a connection it never
// accepted.
func (x *Extractor) probeRefused(fl *flow, ts int64) {
	if fl.tcp&tcpSYN == 0 {
		return // seen mid-connection: a reset, not a refusal
	}
	client, server, port := x.flowEnds(fl)
	x.recordFailure(&client, classConn, target{addr: server, port: port, transport: 6, valid: true}, ts)
}

// flowEnds returns a flow's client and server addresses and server port.
func (x *Extractor) flowEnds(fl *flow) (client, server [16]byte, port uint16) {
	client, server, port = fl.key.addrA(), fl.key.addrB(), fl.key.portB()
	if fl.clientB {
		client, server, port = server, client, fl.key.portA()
	}
	return client, server, port
}

// scanARP counts an ARP request towards an ARP sweep of its sender.
func (x *Extractor) scanARP(f *Frame, ts int64) {
	if !f.ARPRequest || f.ARPTarget == ([16]byte{}) || f.ARPTarget == f.ARPSender || [4]byte(f.ARPSender[12:]) == ([4]byte{}) {
		return // a probe (RFC 5227), an announcement, or not IPv4
	}
	if f.HasMAC && f.DstMAC != [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} {
		return // a unicast request refreshes a neighbour already known
	}
	i, ok := x.hosts.idx[f.ARPSender]
	if !ok {
		return
	}
	a := &x.hosts.at(i).acc[0]
	if x.addDistinct(0, i, 6, 0, &f.ARPTarget, &a.arpTargets) {
		x.listSweeper(i)
	}
	x.enqueue(probe{at: ts, class: classARP, src: f.ARPSender, dst: f.ARPTarget})
}

// scanICMP queues an echo request as a probe, and counts an unreachable
// error as the failure of the probe it answers.
func (x *Extractor) scanICMP(f *Frame, ts int64) {
	if f.Unreachable {
		x.icmpUnreachable(f, ts)
		return
	}
	if f.Transport == 1 && f.ICMPType != 8 || f.Transport == 58 && f.ICMPType != 128 || x.isBroadcast(&f.Dst) {
		return
	}
	x.enqueue(probe{at: ts, class: classICMP, src: f.Src, dst: f.Dst})
}

// icmpUnreachable reads the datagram quoted in an ICMP unreachable error
// (RFC 792, RFC 4443) and counts a failed probe of its sender.
func (x *Extractor) icmpUnreachable(f *Frame, ts int64) {
	var src, dst [16]byte
	var proto uint8
	var l4 []byte
	if f.Transport == 1 {
		b := x.dec.icmp4.Payload
		if len(b) < 20 || b[0]>>4 != 4 {
			return
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl+4 {
			return
		}
		proto, src, dst, l4 = b[9], v4mapped(b[12:16]), v4mapped(b[16:20]), b[ihl:]
	} else {
		b := x.dec.icmp6.Payload // 4 unused bytes, then the IPv6 header
		if len(b) < 4+40+4 || b[4]>>4 != 6 {
			return
		}
		b = b[4:]
		proto, src, dst, l4 = b[6], [16]byte(b[8:24]), [16]byte(b[24:40]), b[40:]
	}
	if src != f.Dst {
		return // the error must go back to the prober
	}
	switch proto {
	case 6, 17:
		x.recordFailure(&src, classConn, target{addr: dst, port: binary.BigEndian.Uint16(l4[2:]), transport: proto, valid: true}, ts)
	case 1, 58:
		x.recordFailure(&src, classICMP, target{addr: dst, transport: proto, valid: true}, ts)
	}
}

func (x *Extractor) listSweeper(i int32) {
	a := &x.hosts.at(i).acc[0]
	if !a.sweepListed {
		a.sweepListed = true
		x.scan.sweepers = append(x.scan.sweepers, hostRef{idx: i, gen: x.hosts.at(i).gen})
	}
}

// otScan looks at each decoded PDU for identification requests, Modbus
// reads (enumeration) and error responses (exception storms). Who asks and
// who answers is the PDU's own direction: a BACnet Who-Is between two
// 47808 ports is a request whichever end the flow calls its client.
func (x *Extractor) otScan(fl *flow, ts int64, fromClient bool, client, server int32) {
	p := &x.pdu
	from, to := client, server
	if !fromClient {
		from, to = server, client
	}
	hf, ht := x.hosts.at(from), x.hosts.at(to)
	if p.Response {
		a := &ht.acc[0]
		a.otResponses++
		if p.Exception != 0 && (p.Proto != ot.Modbus || p.Exception <= 3) {
			a.otErrors++
			st := x.state(&ht.addr)
			st.lastError = x.pduTarget(fl, &hf.addr, !fromClient)
			st.errProto = p.Proto
		}
		return
	}
	identify := false
	switch p.Proto {
	case ot.Modbus:
		identify = p.Function == 43 && p.FunctionName == "read_device_identification"
	case ot.S7comm:
		identify = p.Function == 0x1401 // userdata, CPU functions (4), read SZL (1)
	case ot.BACnet:
		identify = p.Function == 0x108 // unconfirmed Who-Is
	case ot.ENIP:
		identify = p.Function == 0x163 // ListIdentity
	case ot.DNP3:
		identify = p.Dst >= 0xfffd && (p.Function == 1 || p.Function >= 0x100 && p.Function < 0x200)
	}
	if identify && !x.isBroadcast(&ht.addr) {
		st := x.state(&hf.addr)
		st.idHosts.add(addrHash(&ht.addr), &x.scan, &x.stats)
		st.idRequests++
		st.idProto, st.idFunction = p.Proto, p.FunctionName
		st.lastID = x.pduTarget(fl, &ht.addr, fromClient)
		return
	}
	if p.Proto == ot.Modbus && p.Function >= 1 && p.Function <= 4 {
		st := x.state(&hf.addr)
		k := baseline.HashCombine(addrHash(&ht.addr), uint64(p.Unit)<<40|uint64(p.Function)<<32|uint64(p.Address))
		st.addrs.add(k, &x.scan, &x.stats)
		st.reads++
		if !st.lastRead.valid || st.lastRead.addr != ht.addr {
			st.lastRead = x.pduTarget(fl, &ht.addr, fromClient)
		}
	}
}

// pduTarget describes the receiver addr of a PDU on fl: the server's port
// when toServer, else the client's.
func (x *Extractor) pduTarget(fl *flow, addr *[16]byte, toServer bool) target {
	port := fl.key.portB()
	if fl.clientB == toServer {
		port = fl.key.portA()
	}
	return target{addr: *addr, port: port, transport: fl.key.transport(), valid: true}
}

// scanWindowClosed runs scan.go's rules as the shortest window ending at
// end closes (before its counters are cleared); nextStart is when the next
// window starts.
func (x *Extractor) scanWindowClosed(end, nextStart int64) {
	s := &x.scan
	x.resolveProbes(end)
	x.sweepFindings(end)
	for _, i := range s.dirty {
		if st := s.states[i]; st.dirty {
			st.dirty = false
			x.failureFindings(st, end)
		}
	}
	s.dirty = s.dirty[:0]
	long := int64(x.cfg.ScanWindowLong)
	if !s.final && floorDiv(end-1, long) == floorDiv(nextStart, long) {
		return
	}
	s.final = false
	for _, st := range s.states {
		x.longFindings(st, end)
		st.resetLong(s)
	}
}

// resolveProbes decides the probes at least one shortest window old (all
// of them at the end of the input): a probe nobody answered has failed.
func (x *Extractor) resolveProbes(end int64) {
	s := &x.scan
	cutoff := end - x.win[0]
	for ; s.head < len(s.pending); s.head++ {
		p := &s.pending[s.head]
		if p.at >= cutoff && !s.final {
			break
		}
		switch p.class {
		case classConn:
			fl := &x.flows.flows[p.flow]
			if !fl.used || fl.hash != p.hash || fl.first != p.at {
				continue // expired or evicted: unknown
			}
			answered := fl.listenWin != -1<<62 // the server sent something
			if fl.key.transport() == 6 {
				answered = fl.tcp&tcpSYNACK != 0
			}
			if fl.tcp&tcpFailed != 0 {
				continue // counted when the refusal came
			}
			client, server, port := x.flowEnds(fl)
			t := target{addr: server, port: port, transport: fl.key.transport(), valid: true}
			if answered {
				x.recordAnswered(&client, classConn, t, p.at)
			} else {
				x.recordFailure(&client, classConn, t, p.at)
			}
		case classICMP:
			i, ok := x.hosts.idx[p.dst]
			t := target{addr: p.dst, transport: 1, valid: true}
			if !ok || x.hosts.at(i).lastSend < p.at {
				x.recordFailure(&p.src, classICMP, t, p.at)
			} else {
				x.recordAnswered(&p.src, classICMP, t, p.at)
			}
		case classARP:
			// Answered if the target showed up in any traffic since.
			i, ok := x.hosts.idx[p.dst]
			t := target{addr: p.dst, valid: true}
			if !ok || x.hosts.at(i).last < p.at {
				x.recordFailure(&p.src, classARP, t, p.at)
			} else {
				x.recordAnswered(&p.src, classARP, t, p.at)
			}
		}
	}
	if s.head == len(s.pending) {
		s.pending, s.head = s.pending[:0], 0
	}
}

// scanEvent reports a finding about st's host unless its kind was
// reported in this long window.
func (x *Extractor) scanEvent(st *scanState, bit uint16, kind string, value, threshold float64, t *target, proto ot.Protocol, detail string, end int64) {
	if st.reported&bit != 0 {
		return
	}
	st.reported |= bit
	i, ok := x.hosts.idx[st.addr]
	if !ok {
		i = x.hostFor(nil, &st.addr, end) // evicted since: named afresh
	}
	h := x.nameHost(x.hosts.at(i))
	e := ingest.NetEvent{
		TimeNanos: end, Kind: kind, Device: h.device, Group: h.group, SrcIP: h.ip,
		Detail: h.ipText + " " + detail, Value: value, Threshold: threshold,
		Partition: x.partition, Offset: x.windowPos,
	}
	if t != nil && t.valid {
		e.DstIP = netip.AddrFrom16(t.addr).Unmap()
		e.Transport, e.DstPort = t.transport, t.port
	}
	if proto != ot.None {
		e.Protocol = proto.String()
	}
	x.addEvent(e)
}

// sweepFindings applies the shortest window's sweep rule and clears its
// counts.
func (x *Extractor) sweepFindings(end int64) {
	s := &x.scan
	n := float64(x.cfg.ScanHosts)
	for _, r := range s.sweepers {
		h := x.hosts.at(r.idx)
		if !h.used || h.gen != r.gen {
			continue
		}
		a := &h.acc[0]
		if a.arpTargets >= n {
			x.scanEvent(x.state(&h.addr), bitSweepARP, "sweep_arp", a.arpTargets, n, nil, ot.None,
				fmt.Sprintf("asked by broadcast ARP for %.0f distinct addresses in %s", a.arpTargets, x.winName[0]), end)
		}
		a.arpTargets, a.sweepListed = 0, false
	}
	s.sweepers = s.sweepers[:0]
}

// failureFindings applies the failed-probe rules to a host with new
// failures. Both want the probes mostly failed: at least half of the
// distinct targets of the recent ring (within scan_failed_window), and at
// least as many failed targets as answered ones in the long window.
func (x *Extractor) failureFindings(st *scanState, end int64) {
	cutoff := end - int64(x.cfg.ScanFailedWindow)
	var failed, tried [3]int // per probeClass
	var hosts, ports int     // distinct among the failed connection attempts
	for i := range st.nRecent {
		e := &st.recent[i]
		if e.at < cutoff {
			continue
		}
		tried[e.class]++
		if !e.failed {
			continue
		}
		failed[e.class]++
		if e.class != classConn {
			continue
		}
		newHost, newPort := true, true
		for j := range i {
			o := &st.recent[j]
			if o.at >= cutoff && o.failed && o.class == classConn {
				newHost = newHost && o.host != e.host
				newPort = newPort && o.port != e.port
			}
		}
		if newHost {
			hosts++
		}
		if newPort {
			ports++
		}
	}
	need := x.cfg.ScanFailedProbes
	recent := func(c probeClass) bool { return failed[c] >= need && 2*failed[c] >= tried[c] }
	mostly := st.failedTargets.count() >= st.answered.count()
	fw, lw := windowName(x.cfg.ScanFailedWindow), windowName(x.cfg.ScanWindowLong)
	if recent(classConn) {
		bit, kind := bitScanPortsSlow|bitScanPorts, "scan_ports_slow"
		if hosts > ports {
			bit, kind = bitScanHostsSlow|bitScanHosts, "scan_hosts_slow"
		}
		x.scanEvent(st, bit, kind, float64(failed[classConn]), float64(need), &st.lastConn, ot.None,
			fmt.Sprintf("made %d connection attempts to distinct targets (%d hosts, %d ports) that failed or went unanswered within %s, of %d tried",
				failed[classConn], hosts, ports, fw, tried[classConn]), end)
	}
	if n := st.ports.count(); mostly && n >= float64(x.cfg.ScanPortsLong) {
		x.scanEvent(st, bitScanPortsSlow|bitScanPorts, "scan_ports_slow", n, float64(x.cfg.ScanPortsLong), &st.lastConn, ot.None,
			fmt.Sprintf("made connection attempts to %.0f distinct ports (%.0f hosts) that failed or went unanswered in %s", n, st.hosts.count(), lw), end)
	}
	if n := st.hosts.count(); mostly && n >= float64(x.cfg.ScanHostsLong) {
		x.scanEvent(st, bitScanHostsSlow|bitScanHosts, "scan_hosts_slow", n, float64(x.cfg.ScanHostsLong), &st.lastConn, ot.None,
			fmt.Sprintf("made connection attempts to %.0f distinct hosts (%.0f ports) that failed or went unanswered in %s", n, st.ports.count(), lw), end)
	}
	if n := st.arp.count(); recent(classARP) || mostly && n >= float64(x.cfg.ScanHostsLong) {
		x.scanEvent(st, bitSweepARP, "sweep_arp", max(n, float64(failed[classARP])), x.sweepThreshold(recent(classARP)), &st.lastARP, ot.None,
			fmt.Sprintf("asked by ARP for %d addresses that did not answer within %s, of %d asked (%.0f in %s)", failed[classARP], fw, tried[classARP], n, lw), end)
	}
	if n := st.icmp.count(); recent(classICMP) || mostly && n >= float64(x.cfg.ScanHostsLong) {
		x.scanEvent(st, bitSweepICMP, "sweep_icmp", max(n, float64(failed[classICMP])), x.sweepThreshold(recent(classICMP)), &st.lastICMP, ot.None,
			fmt.Sprintf("sent ICMP echo requests to %d hosts that did not answer within %s, of %d pinged (%.0f in %s)", failed[classICMP], fw, tried[classICMP], n, lw), end)
	}
}

// sweepThreshold is the threshold a failed-probe sweep crossed: the
// recent one or the long window's.
func (x *Extractor) sweepThreshold(recent bool) float64 {
	if recent {
		return float64(x.cfg.ScanFailedProbes)
	}
	return float64(x.cfg.ScanHostsLong)
}

// longFindings applies the rules decided when the long window closes.
func (x *Extractor) longFindings(st *scanState, end int64) {
	lw := windowName(x.cfg.ScanWindowLong)
	if n := st.idHosts.count(); n >= float64(x.cfg.IdentifyHosts) && float64(st.idRequests) <= maxIdentifyRepeat*n {
		x.scanEvent(st, bitIdentify, "identify", n, float64(x.cfg.IdentifyHosts), &st.lastID, st.idProto,
			fmt.Sprintf("sent %d device-identification requests (%s %s) to %.0f distinct hosts in %s", st.idRequests, st.idProto, st.idFunction, n, lw), end)
	}
	if n := st.addrs.count(); n >= float64(x.cfg.EnumerateAddresses) && float64(st.reads) < 2*n {
		x.scanEvent(st, bitEnumerate, "enumerate", n, float64(x.cfg.EnumerateAddresses), &st.lastRead, ot.Modbus,
			fmt.Sprintf("read %.0f distinct Modbus start addresses with %d read requests in %s: a walk over the register map", n, st.reads, lw), end)
	}
}

// exceptionStorm reports a client drawing mostly error responses; called
// from findings for each active host.
func (x *Extractor) exceptionStorm(h *host, end int64) {
	a := &h.acc[0]
	if a.otErrors < float64(x.cfg.ExceptionStorm) || 2*a.otErrors < a.otResponses {
		return
	}
	st := x.state(&h.addr)
	t := &st.lastError
	x.addEvent(ingest.NetEvent{
		TimeNanos: end, Kind: "exception_storm", Device: h.device, Group: h.group,
		SrcIP: h.ip, DstIP: netip.AddrFrom16(t.addr).Unmap(), Transport: t.transport, DstPort: t.port,
		Protocol: st.errProto.String(), Value: a.otErrors, Threshold: float64(x.cfg.ExceptionStorm),
		Detail:    fmt.Sprintf("%s received %.0f %s error responses out of %.0f in %s", h.ipText, a.otErrors, st.errProto, a.otResponses, x.winName[0]),
		Partition: x.partition, Offset: x.windowPos,
	})
}

// scanReported notes that findings reported a scan of the shortest window,
// so that the same scan is not reported again as a slow one.
func (x *Extractor) scanReported(h *host, bit uint16) {
	x.state(&h.addr).reported |= bit
}

// ScanStats counts what the reconnaissance rules (scan.go) could not keep.
type ScanStats struct {
	ScanStatesEvicted   int64 // per-host reconnaissance state evicted: maxScanStates hosts hold state
	ScanSketchesRefused int64 // distinct counts left exact (saturated): maxSketches sketches live
	ProbesUntracked     int64 // connection attempts never checked for an answer: maxPending queued
}
