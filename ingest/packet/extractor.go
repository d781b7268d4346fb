package packet

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/apache/arrow/go/v15/arrow/memory"
	"github.com/google/gopacket/layers"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/ot"
	"github.com/vigil-ot/vigil/ingest/pcap"
)

// Options are the collaborators of an Extractor, beside its config.
type Options struct {
	// Registry interns device and group names (shared with the baseline).
	// A new one is made when nil.
	Registry *ingest.Registry
	// Assets maps addresses to inventory devices; nil (or one whose Len
	// method reports 0) means no inventory: every host is named by its
	// address and grouped by subnet, and no host is reported as unknown.
	Assets AssetsByIP
	// Grouper derives the group of an inventory device; when nil, inventory
	// devices are grouped by their "site" attribute (or "inventory").
	Grouper ingest.Grouper
	// Mem allocates the batches' records. When nil, the extractor keeps
	// an ingest.RecyclingAllocator of its own: a window's record is small
	// and one is built every window, so its buffers are reused once the
	// engine has released the record rather than allocated anew.
	Mem memory.Allocator
}

// Extractor turns decoded packets into observation rows (features per host,
// per group and per window), communications and findings, one batch per
// closed window of the shortest length. It is not safe for concurrent use.
type Extractor struct {
	cfg      ingest.PacketConfig
	opts     Options
	builder  *ingest.ObservationBuilder
	dec      *Decoder
	frame    Frame
	pdu      ot.PDU
	win      []int64 // window lengths, ns
	winName  []string
	names    [maxWindows]metricNames
	cur      int64             // id of the current shortest window; curSet false before the first packet
	curID    [maxWindows]int64 // id of the current window of each length
	curStart int64             // [curStart, curEnd): the current shortest window
	curEnd   int64
	lastFlow int32 // flow of the previous TCP/UDP packet, a one-entry cache
	curSet   bool
	lastTime int64
	seq      int64 // packets seen

	// Where rows, communications and findings say they come from: the
	// Kafka partition (-1 in a replay) and a position, which is the
	// record offset (pcap.Packet.Index) after SetPartition and the
	// packet's number in the replay (from 0) otherwise.
	partition int32
	offsets   bool  // positions are the packets' Index
	pos       int64 // position of the packet being added
	windowPos int64 // position of the last packet counted in the current windows

	flows    *flowTable
	frags    fragTable
	hosts    *hostTable
	distinct [maxWindows]distinctSet
	groups   map[string]int32
	groupAcc [][maxWindows]acc
	groupNam []string

	// The batch being built.
	batchSeq uint32
	comms    []ingest.Communication
	// freeComms holds released batches' communication slices for the
	// next windows; recycleComms (its put) gives them back.
	freeComms    commsPool
	recycleComms func(*ingest.Batch)
	commIdx      map[commKey]int32
	events       []ingest.NetEvent
	row          ingest.Row
	ready        []*ingest.Batch

	maxDistinctEntries int        // bound of each window's distinct table
	setLog             []setEntry // set members of the shortest window, in discovery order
	lastExpire         int64      // event time of the last idle-flow sweep
	// active lists, per window, the hosts with traffic in it (in the order
	// they became active, possibly twice after a slot was reused), so a
	// window closes in time proportional to its active hosts, not to the
	// host table.
	active [maxWindows][]int32

	// Stream buffers handed out to flows, and their total size.
	freeBufs [][]byte
	buffered int

	// Assets whose host entry was evicted, kept for the summary.
	evictedAssets map[[16]byte]Asset
	metrics       *packetMetrics // nil unless RegisterMetrics
	edges         map[edgeKey]int32
	edgeList      []Edge
	stats         Stats
	protoPkt      [numProtoSlots]int64
	protoPDU      [numProtoSlots]int64
	trust         trustState // roles, proof, time and MITM checks (trust.go)

	// Sweeps, slow scans and OT reconnaissance (scan.go).
	scan scanTracker
}

type distinctKey struct {
	host int32
	gen  uint32 // the host slot's generation: a reused slot starts afresh
	kind uint8  // 0 peer, 1 dst port, 2 dst host, 3 source towards host, 4/5 listening TCP/UDP port
	port uint16
	addr [16]byte
}

type commKey struct {
	client, server [16]byte
	port           uint16
	transport      uint8
	proto          ot.Protocol
	fn             string
}

type edgeKey struct {
	client, server [16]byte
	port           uint16
	transport      uint8
	proto          ot.Protocol
}

// Stats counts what the extractor did with the packets.
type Stats struct {
	Packets            int64
	Bytes              int64
	Outcomes           [numOutcomes]int64
	SkippedLinkTypes   map[uint16]int64
	Fragments          int64 // IPv4 fragments (attributed to hosts, then reassembled)
	Reassembled        int64 // IPv4 datagrams reassembled from fragments
	FragmentsDropped   int64 // datagrams dropped incomplete (timeout, table full) or fragments past 64 KiB
	Late               int64 // packets older than the current window, counted in it
	PDUs               int64 // OT PDUs decoded
	MalformedPDUs      int64
	Retransmissions    int64 // TCP segments already seen
	Gaps               int64 // TCP segments after a hole: reassembly restarted
	ReassemblyOverflow int64 // PDUs longer than the stream buffer, skipped
	Unsynced           int64 // TCP segments skipped after a hole until one starts a PDU
	FlowsEvicted       int64
	HostsEvicted       int64
	EdgesDropped       int64 // edges not recorded in the summary: table full
	DistinctOverflow   int64 // distinct-set insertions counted without dedup: window table full
	CommsDropped       int64 // communications not reported: the batch already holds max_flows
	EventsDropped      int64 // findings not reported: the batch already holds maxEvents
	SetMembersDropped  int64 // set members not reported: the batch already holds maxSetMembers
	AssetsDropped      int64 // evicted assets not kept for the summary: record full
	TrustStats
	ScanStats
}

// NewExtractor returns an extractor for cfg (validated).
func NewExtractor(cfg ingest.PacketConfig, opts Options) (*Extractor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot make packet feature extractor: %w", err)
	}
	if opts.Registry == nil {
		opts.Registry = ingest.NewRegistry()
	}
	x := &Extractor{
		cfg:           cfg,
		opts:          opts,
		dec:           NewDecoder(),
		flows:         newFlowTable(cfg.MaxFlows),
		hosts:         newHostTable(cfg.MaxHosts),
		groups:        make(map[string]int32),
		commIdx:       make(map[commKey]int32),
		edges:         make(map[edgeKey]int32),
		evictedAssets: make(map[[16]byte]Asset),
		stats:         Stats{SkippedLinkTypes: make(map[uint16]int64)},
	}
	x.lastFlow, x.partition = -1, -1
	x.freeComms = make(commsPool, commsKept)
	x.recycleComms = x.freeComms.put
	x.maxDistinctEntries = 8 * cfg.MaxHosts
	x.flows.release = x.releaseFlow
	x.hosts.onEvict = x.keepEvictedAsset
	x.initTrust()
	if opts.Mem == nil {
		opts.Mem = ingest.NewRecyclingAllocator()
	}
	x.builder = ingest.NewObservationBuilder(opts.Mem, opts.Registry, fixedGrouper{})
	for i, w := range cfg.Windows {
		x.win = append(x.win, int64(w))
		x.winName = append(x.winName, windowName(w))
		x.names[i] = newMetricNames(x.winName[i])
	}
	return x, nil
}

// fixedGrouper is never consulted: every row carries its group.
type fixedGrouper struct{}

func (fixedGrouper) Group(device string, _ []ingest.Attr) string { return "unknown" }

func windowName(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
}

// Metric names, per window: "net_bytes_in_10s", …
type metricNames struct {
	bytesIn, bytesOut, pktsIn, pktsOut             string
	flows, peers, dstPorts, dstHosts, failed       string
	synIn, reads, writes, control, diag, exception string
	malformed, jitter                              string
	proto                                          [numProtoSlots]string
}

func newMetricNames(w string) metricNames {
	n := func(s string) string { return "net_" + s + "_" + w }
	m := metricNames{
		bytesIn: n("bytes_in"), bytesOut: n("bytes_out"), pktsIn: n("packets_in"), pktsOut: n("packets_out"),
		flows: n("flows_started"), peers: n("peers"), dstPorts: n("dst_ports"), dstHosts: n("dst_hosts"),
		failed: n("failed_connections"), synIn: n("syn_in"), reads: n("ot_reads"), writes: n("ot_writes"),
		control: n("ot_control"), diag: n("ot_diagnostic"), exception: n("ot_exceptions"),
		malformed: n("ot_malformed"), jitter: n("iat_jitter_seconds"),
	}
	for i := range m.proto {
		name := "other"
		if i < slotOther {
			name = ot.Protocol(i).String()
		}
		m.proto[i] = n("packets_" + name)
	}
	return m
}

func protoSlot(p ot.Protocol) int {
	if p == ot.None || int(p) >= slotOther {
		return slotOther
	}
	return int(p)
}

// SetPartition says the packets added from now on come from Kafka
// partition p, each with its record's offset in Index. Rows,
// communications and findings then carry p and an offset:
//
//   - a row, and a finding over a window (scan, flood): the last record
//     counted in the window, so the window's packets are in the records up
//     to it;
//   - a communication: the record of its first packet in the batch, whose
//     time is its FirstNanos;
//   - a finding about one packet (malformed frame, unknown asset): that
//     packet's record.
//
// Without SetPartition (a replay) they carry partition -1 and the packet's
// number in the replay, from 0, in the same way.
func (x *Extractor) SetPartition(p int32) { x.partition, x.offsets = p, true }

// Add decodes one packet and accounts for it. It may close windows; take
// the resulting batches with TakeBatch.
func (x *Extractor) Add(p *pcap.Packet) {
	pos := x.seq
	if x.offsets {
		pos = p.Index
	}
	x.seq++
	t := p.TimeNanos
	if uint64(t-x.trust.timeRef+x.trust.maxJump) >= x.trust.jumpSpan {
		x.checkTime(p, pos) // the first packet, a step of the clock, or the packet after one
		return
	}
	x.trust.timeRef = t
	x.add(p, t, pos)
}

// add accounts for packet p, numbered pos, at event time t.
func (x *Extractor) add(p *pcap.Packet, t, pos int64) {
	x.stats.Packets++
	x.stats.Bytes += int64(len(p.Data))
	x.pos = pos
	x.advance(t) // windows it closes end with the packet before
	x.windowPos = x.pos
	ts := t
	if ts < x.lastTime {
		ts = x.lastTime // event time never goes backwards inside the extractor
	}
	x.lastTime = ts
	f := &x.frame
	res := x.dec.Decode(p.Data, p.LinkType, f)
	wire := float64(max(p.OrigLen, len(p.Data)))
	switch res {
	case l4SkipLink:
		x.stats.Outcomes[OutcomeSkippedLinkType]++
		x.stats.SkippedLinkTypes[p.LinkType]++
		return
	case l4Malformed:
		x.stats.Outcomes[OutcomeMalformed]++
		return
	case l4ARP:
		x.stats.Outcomes[OutcomeDecoded]++
		// An ARP probe's sender is 0.0.0.0 (RFC 5227): not a host.
		if f.ARPSender != ([16]byte{}) && [4]byte(f.ARPSender[12:]) != ([4]byte{}) {
			i := x.hostFor(nil, &f.ARPSender, ts)
			x.arpBinding(i, f, ts)
			h := x.hosts.at(i)
			h.mac, h.hasMAC = f.ARPSenderMAC, true
			x.markAsset(i, ts)
		}
		x.scanARP(f, ts)
		return
	}
	if !f.IsIP {
		x.stats.Outcomes[OutcomeUnknownProtocol]++
		return
	}
	if res != l4Transport {
		// ICMP, fragments, other IP protocols: hosts only.
		src := x.hostFor(nil, &f.Src, ts)
		dst := x.hostFor(nil, &f.Dst, ts)
		x.count(src, dst, wire, ts, f)
		if !x.hosts.at(src).asset {
			x.markAsset(src, ts)
		}
		if f.Fragment {
			x.stats.Fragments++
			x.stats.Outcomes[OutcomeUnknownProtocol]++
			x.fragment(f, ts)
			return
		}
		if res == l4ICMP {
			x.stats.Outcomes[OutcomeDecoded]++
			x.scanICMP(f, ts)
			if f.Unreachable {
				x.hosts.at(dst).acc[0].failed++
			}
			return
		}
		x.stats.Outcomes[OutcomeUnknownProtocol]++
		return
	}
	x.transport(f, ts, wire)
}

// flowHost returns the host a flow endpoint refers to, resolving (and
// creating) it by address only when the cached reference went stale.
func (x *Extractor) flowHost(ref *hostRef, hi, lo uint64, ts int64) int32 {
	if h := x.hosts.ref(ref); h != nil {
		h.last = ts
		return ref.idx
	}
	addr := addrOf(hi, lo)
	return x.hostFor(ref, &addr, ts)
}

// hostFor returns the host of addr, creating it when new. ref caches the
// lookup in a flow.
func (x *Extractor) hostFor(ref *hostRef, addr *[16]byte, ts int64) int32 {
	var local hostRef
	if ref == nil {
		local.idx = -1
		ref = &local
	}
	i, created := x.hosts.get(ref, addr)
	if created {
		x.initHost(i)
	}
	x.hosts.at(i).last = ts
	return i
}

func (x *Extractor) initHost(i int32) {
	h := x.hosts.at(i)
	h.first = x.lastTime
	h.ip = netip.AddrFrom16(h.addr).Unmap()
	h.groupIdx = -1
}

// nameHost gives h its device name, group and address text the first time
// they are needed: a spoofed source seen once never costs the strings.
func (x *Extractor) nameHost(h *host) *host {
	if h.device != "" {
		return h
	}
	h.ipText = h.ip.String()
	h.device = h.ipText
	if x.opts.Assets != nil {
		a, ok := x.opts.Assets.AssetByIP(h.ip)
		if !ok && h.hasMAC {
			// A device the inventory knows by MAC only (DHCP). A MAC is
			// trusted only for such entries: behind a router, every remote
			// address carries the router's MAC.
			if bm, can := x.opts.Assets.(interface {
				AssetByMAC([6]byte) (ingest.Asset, bool)
			}); can {
				if m, found := bm.AssetByMAC(h.mac); found && m.IP == "" {
					a, ok = m, true
				}
			}
		}
		if ok {
			h.inInventory = true
			h.device = a.Device
			switch {
			case x.opts.Grouper != nil:
				h.group = x.opts.Grouper.Group(a.Device, nil)
			case a.Attrs["site"] != "":
				h.group = a.Attrs["site"]
			default:
				h.group = "inventory"
			}
		}
	}
	if h.group == "" {
		bits := x.cfg.UnmanagedPrefixV4
		if !h.ip.Is4() {
			bits = x.cfg.UnmanagedPrefixV6
		}
		pfx, _ := h.ip.Prefix(bits)
		h.group = "unmanaged/" + pfx.String()
	}
	g, ok := x.groups[h.group]
	if !ok && len(x.groupNam) < x.cfg.MaxHosts {
		// Group rows are kept for at most max_hosts groups.
		g = int32(len(x.groupNam))
		x.groups[h.group] = g
		x.groupNam = append(x.groupNam, h.group)
		x.groupAcc = append(x.groupAcc, [maxWindows]acc{})
		ok = true
	}
	if ok {
		h.groupIdx = g
	}
	return h
}

// markAsset records that host i sends traffic; the first time, a host that
// is not in the inventory is reported.
func (x *Extractor) markAsset(i int32, ts int64) {
	h := x.hosts.at(i)
	if h.asset {
		return
	}
	h.asset = true
	x.nameHost(h)
	if x.opts.Assets == nil || !x.cfg.FlagUnknownAssets || h.inInventory {
		return
	}
	// An inventory that lists nothing (none configured) flags nothing.
	if l, ok := x.opts.Assets.(interface{ Len() int }); ok && l.Len() == 0 {
		return
	}
	x.addEvent(ingest.NetEvent{
		TimeNanos: ts, Kind: "unknown_asset", Device: h.device, Group: h.group, SrcIP: h.ip,
		Detail: "host " + h.ipText + " sends traffic but is not in the asset inventory",
		Value:  1, Threshold: 0, Partition: x.partition, Offset: x.pos,
	})
}

// count adds one packet from src to dst to both hosts' current window.
func (x *Extractor) count(src, dst int32, wire float64, ts int64, f *Frame) {
	hs := x.hosts.at(src)
	if f.HasMAC && !hs.hasMAC {
		hs.mac, hs.hasMAC = f.SrcMAC, true
	}
	a := &hs.acc[0]
	if !a.active {
		a.active = true
		x.active[0] = append(x.active[0], src)
	}
	a.bytesOut += wire
	a.pktsOut++
	if hs.lastSend >= x.curStart && hs.lastSend != 0 { // gaps inside the window: a host silent for an hour has no hour-long jitter
		a.addIAT(float64(ts-hs.lastSend) / 1e9)
	}
	hs.lastSend = ts
	hs.packets++
	hs.bytes += int64(wire)
	hd := x.hosts.at(dst)
	b := &hd.acc[0]
	if !b.active {
		b.active = true
		x.active[0] = append(x.active[0], dst)
	}
	b.bytesIn += wire
	b.pktsIn++
	hd.packets++
	hd.bytes += int64(wire)
}

// transport handles a TCP or UDP packet: flow, features, OT decoding.
func (x *Extractor) transport(f *Frame, ts int64, wire float64) {
	x.flowPacket(f, ts, wire, false)
}

// fragment feeds an IPv4 fragment to reassembly; a completed TCP or UDP
// datagram goes through the flow path. Its fragments were counted already
// (hosts, outcomes), so the datagram adds neither packets nor an outcome.
func (x *Extractor) fragment(f *Frame, ts int64) {
	ip := &x.dec.ip4
	if f.IPv6 || f.Transport != 6 && f.Transport != 17 {
		return
	}
	k := fragKey{src: [4]byte(f.Src[12:]), dst: [4]byte(f.Dst[12:]), id: ip.Id, proto: f.Transport}
	more := ip.Flags&layers.IPv4MoreFragments != 0
	data, ok := x.frags.add(k, ip.FragOffset, more, ip.Payload, ts)
	if !ok {
		return
	}
	if x.dec.decodeTransport(f.Transport, data, f) {
		x.flowPacket(f, ts, float64(len(data)+20), true)
	}
}

// flowPacket handles a TCP or UDP packet (or reassembled datagram): flow,
// features, OT decoding.
func (x *Extractor) flowPacket(f *Frame, ts int64, wire float64, reassembled bool) {
	key, fromB := newFlowKey(f)
	var fi int32 = -1
	// Request and response follow each other on one flow: skip the hash.
	if x.lastFlow >= 0 && x.flows.flows[x.lastFlow].used && x.flows.flows[x.lastFlow].key.eq(&key) {
		fi = x.lastFlow
	}
	var hash uint64
	if fi < 0 {
		hash = key.hash()
		fi = x.flows.lookup(&key, hash)
	}
	isNew := fi < 0
	if isNew {
		fi = x.flows.insert(key, hash)
		x.flows.flows[fi].first = ts
		x.flows.flows[fi].host[0].idx, x.flows.flows[fi].host[1].idx = -1, -1
	}
	x.lastFlow = fi
	fl := &x.flows.flows[fi]
	fl.last = ts
	dir := 0
	if fromB {
		dir = 1
	}
	ai := x.flowHost(&fl.host[0], fl.key.a0, fl.key.a1, ts)
	x.hosts.pin = ai // making room for b must not evict a
	bi := x.flowHost(&fl.host[1], fl.key.b0, fl.key.b1, ts)
	x.hosts.pin = -1
	src, dst := ai, bi
	if fromB {
		src, dst = bi, ai
	}
	if !reassembled {
		x.count(src, dst, wire, ts, f)
	}
	udp := f.Transport == 17
	x.hosts.at(dst).acc[0].lastIn = tuple{src: f.Src, dst: f.Dst, sport: f.SrcPort, dport: f.DstPort, transport: f.Transport, proto: fl.proto, valid: true}

	// Who initiated the flow, and which protocol it speaks.
	x.settleRoles(fl, f, fromB, isNew, udp)
	clientDir := 0
	if fl.clientB {
		clientDir = 1
	}
	fromClient := dir == clientDir
	client, server := src, dst
	if !fromClient {
		client, server = dst, src
	}
	if isNew {
		x.flowStarted(fl, client, server, ts, f)
		x.probeStarted(fi, fromClient, ts, f)
	}
	x.countDistinct(fl, client, server)

	// TCP connection state: failed connections and SYN rates.
	if f.Transport == 6 {
		switch {
		case f.TCPFlags&(flagSYN|flagACK) == flagSYN:
			fl.tcp |= tcpSYN
			x.hosts.at(dst).acc[0].synIn++
			x.hosts.at(dst).acc[0].lastSYN = x.hosts.at(dst).acc[0].lastIn
			x.hosts.at(src).acc[0].synOut++
		case f.TCPFlags&(flagSYN|flagACK) == flagSYN|flagACK:
			fl.tcp |= tcpSYNACK
		case f.TCPFlags&flagRST != 0 && fl.tcp&(tcpSYNACK|tcpFailed) == 0 && !fromClient:
			fl.tcp |= tcpFailed
			x.hosts.at(client).acc[0].failed++
			x.probeRefused(fl, ts)
		}
	}

	// A conversation exists once both ends proved they take part (see
	// provenSender): refused, unanswered and spoofed SYNs and backscatter
	// make neither edges nor assets nor protocols spoken, so a scan of
	// port 1883 does not make an MQTT broker of the PLC, nor a spoofed
	// flood new assets. The server's answer to a SYN already shows it
	// listening.
	slot := slotOther
	if udp || fl.tcp&tcpSYNACK != 0 || len(f.Payload) > 0 {
		slot = protoSlot(fl.proto)
	}
	if udp || x.provenSender(fl, f, fromB, fromClient, ts) {
		if !fromClient && fl.listenWin != x.curID[0] {
			// The server answers on its port: a listening port of the
			// window, once per flow and window.
			fl.listenWin = x.curID[0]
			x.listening(fl, server, udp)
		}
		bit := uint16(1) << uint(min(int(fl.proto), protoOther))
		if fromClient {
			x.hosts.at(client).clientProtos |= bit
		} else {
			x.hosts.at(server).serverProtos |= bit
		}
		if !x.hosts.at(src).asset {
			x.markAsset(src, ts)
		}
		if flowProven(fl) {
			x.baseComm(fl, ts, wire, fromClient)
		}
	}
	x.hosts.at(src).acc[0].protoPkts[slot]++
	x.hosts.at(dst).acc[0].protoPkts[slot]++
	x.protoPkt[slot]++

	outcome := OutcomeDecoded
	if fl.proto == ot.None {
		if len(f.Payload) > 0 {
			outcome = OutcomeUnknownProtocol
		}
	} else if len(f.Payload) > 0 {
		var bad bool
		if udp {
			bad = x.decodeDatagram(fl, f.Payload, ts, fromClient, client, server, wire)
		} else {
			bad = x.decodeSegment(fl, dir, f, ts, fromClient, client, server, wire)
		}
		if bad {
			outcome = OutcomeMalformed
		}
	} else if f.Transport == 6 && f.TCPFlags&flagSYN != 0 {
		st := &fl.streams[dir]
		st.next, st.known = f.Seq+1, true
	}
	if !reassembled {
		x.stats.Outcomes[outcome]++
	}
}

// maxDetectTries is how many payloads of a flow ot.Detect may see before
// the flow is settled as no OT protocol.
const maxDetectTries = 4

// serverPortLess tells whether the source port looks like the server side:
// a lower port that is privileged or an OT well-known port.
func serverPortLess(src, dst uint16) bool {
	return src < dst && (src < 1024 || dst >= 32768)
}

func (x *Extractor) flowStarted(fl *flow, client, server int32, ts int64, f *Frame) {
	hc := x.hosts.at(client)
	hc.acc[0].flows++
	sport, dport := fl.key.portA(), fl.key.portB()
	csrc, cdst := fl.key.addrA(), fl.key.addrB()
	if fl.clientB {
		sport, dport = dport, sport
		csrc, cdst = cdst, csrc
	}
	hc.acc[0].lastOut = tuple{src: csrc, dst: cdst, sport: sport, dport: dport, transport: fl.key.transport(), proto: fl.proto, valid: true}
}

// countDistinct adds the flow's peers and ports to the hosts' distinct
// sets, once per flow and window.
func (x *Extractor) countDistinct(fl *flow, client, server int32) {
	for w := range x.win {
		id := x.curID[w]
		if fl.win[w] == id {
			continue
		}
		fl.win[w] = id
		dport := fl.key.portB()
		if fl.clientB {
			dport = fl.key.portA()
		}
		hc, hs := x.hosts.at(client), x.hosts.at(server)
		// Longer windows get their counters by merging the shortest; only
		// distinct counts are kept per window, since they do not add up.
		ca, sa := &hc.acc[w], &hs.acc[w]
		x.addDistinct(w, client, 0, 0, &hs.addr, &ca.peers)
		x.addDistinct(w, server, 0, 0, &hc.addr, &sa.peers)
		x.addDistinct(w, client, 1, dport, nil, &ca.dstPorts)
		if x.addDistinct(w, client, 2, 0, &hs.addr, &ca.dstHosts) && w == 0 {
			x.logSetMember(client, setRemoteAddrs, 0, &hs.addr)
		}
		x.addDistinct(w, server, 3, 0, &hc.addr, &sa.srcsIn)
	}
}

// addDistinct counts a member of one of host h's distinct sets in window
// w and reports whether it was new (and recorded).
func (x *Extractor) addDistinct(w int, h int32, kind uint8, port uint16, addr *[16]byte, counter *float64) bool {
	if *counter >= float64(x.cfg.MaxDistinct) {
		return false
	}
	k := distinctKey{host: h, gen: x.hosts.at(h).gen, kind: kind, port: port}
	if addr != nil {
		k.addr = *addr
	}
	m := &x.distinct[w]
	hash := k.hash()
	if m.has(&k, hash) {
		return false
	}
	if m.len() >= x.maxDistinctEntries {
		// The window's table is full (a flood of new flows): count without
		// deduplicating, so the counts become upper bounds, not blind spots.
		x.stats.DistinctOverflow++
		*counter++
		return false
	}
	m.add(&k, hash)
	*counter++
	return true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// baseComm counts the packet in the flow's communication without function.
func (x *Extractor) baseComm(fl *flow, ts int64, wire float64, fromClient bool) {
	if fl.baseBatch != x.batchSeq || fl.baseComm < 0 {
		fl.baseComm = x.comm(fl, ts, "")
		fl.baseBatch = x.batchSeq
		if fl.baseComm < 0 {
			return
		}
	}
	c := &x.comms[fl.baseComm]
	c.LastNanos = ts
	c.Packets++
	c.Bytes += int64(wire)
}

// comm returns the index of the batch's communication for the flow and
// function, creating it; -1 when the batch holds max_flows of them
// already (a flood of answered flows), which is counted.
func (x *Extractor) comm(fl *flow, ts int64, fn string) int32 {
	k := commKey{client: fl.key.addrA(), server: fl.key.addrB(), port: fl.key.portB(), transport: fl.key.transport(), proto: fl.proto, fn: fn}
	cport := fl.key.portA()
	if fl.clientB {
		k.client, k.server, k.port, cport = k.server, k.client, cport, k.port
	}
	if i, ok := x.commIdx[k]; ok {
		return i
	}
	if len(x.comms) >= x.cfg.MaxFlows {
		x.stats.CommsDropped++
		return -1
	}
	ci, si := fl.host[0].idx, fl.host[1].idx
	if fl.clientB {
		ci, si = si, ci
	}
	hc, hs := x.nameHost(x.hosts.at(ci)), x.hosts.at(si)
	c := ingest.Communication{
		FirstNanos: ts, LastNanos: ts, Device: hc.device, Group: hc.group,
		SrcIP: hc.ip, DstIP: hs.ip, SrcMAC: hc.mac, DstMAC: hs.mac,
		Transport: k.transport, SrcPort: cport, DstPort: k.port, Function: fn,
		Partition: x.partition, Offset: x.pos,
	}
	if fl.proto != ot.None {
		c.Protocol = fl.proto.String()
	}
	i := int32(len(x.comms))
	x.comms = append(x.comms, c)
	x.commIdx[k] = i
	return i
}

// decodeDatagram decodes the PDUs of one UDP payload; it reports whether
// one was malformed.
func (x *Extractor) decodeDatagram(fl *flow, b []byte, ts int64, fromClient bool, client, server int32, wire float64) bool {
	bad := false
	for len(b) > 0 {
		n, err := ot.Decode(fl.proto, b, !fromClient, &x.pdu)
		if err != nil {
			if errors.Is(err, ot.ErrShort) {
				x.pdu.Malformed = "pdu truncated at the end of the datagram"
				x.pdu.Proto = fl.proto
				x.onPDU(fl, ts, fromClient, client, server)
				return true
			}
			return bad // unsupported: nothing more to learn
		}
		if x.onPDU(fl, ts, fromClient, client, server) {
			bad = true
		}
		b = b[n:]
	}
	return bad
}

// decodeSegment runs TCP reassembly for one direction and decodes every
// complete PDU; it reports whether one was malformed.
func (x *Extractor) decodeSegment(fl *flow, dir int, f *Frame, ts int64, fromClient bool, client, server int32, wire float64) bool {
	st := &fl.streams[dir]
	data := f.Payload
	seq := f.Seq
	if f.TCPFlags&flagSYN != 0 {
		seq++
	}
	if st.known {
		// Serial-number arithmetic (RFC 1982) in 64 bits, so that a
		// distance of exactly 2^31 cannot overflow the negation.
		diff := int64(int32(seq - st.next))
		switch {
		case diff < 0:
			x.checkRetransmission(fl, st, f, seq, data, ts)
			if -diff >= int64(len(data)) {
				x.stats.Retransmissions++
				return false
			}
			data = data[-diff:] // overlap: keep only the new bytes
		case diff > 0:
			// A hole (lost or reordered segment): the buffered PDU cannot
			// complete, and the stream must find a PDU boundary again.
			x.stats.Gaps++
			x.dropBuffer(st)
			st.skip = 0
			st.resync = true
		}
	} else {
		st.resync = true // first seen mid-session: maybe mid-PDU
	}
	st.known = true
	st.next = seq + uint32(len(f.Payload))
	x.remember(fl, st, data, st.next)
	if st.resync {
		// Decode only from a segment that plausibly starts a PDU, so a
		// lost segment does not pass for a protocol violation.
		if ot.DetectServer(fl.serverPort(), false, data) != fl.proto {
			x.stats.Unsynced++
			return false
		}
		st.resync = false
	}
	if st.skip > 0 {
		n := min(st.skip, len(data))
		st.skip -= n
		data = data[n:]
	}
	if len(st.buf) > 0 {
		if len(st.buf)+len(data) > x.cfg.MaxStreamBuffer || x.buffered+len(data) > x.cfg.MaxBufferedBytes {
			x.stats.ReassemblyOverflow++
			x.dropBuffer(st)
			st.resync = true // the PDU's end is lost with it
			return false
		}
		x.buffered += len(data)
		st.buf = append(st.buf, data...)
		bad := x.decodeStream(fl, st, st.buf, ts, fromClient, client, server)
		return bad
	}
	return x.decodeStream(fl, st, data, ts, fromClient, client, server)
}

// decodeStream decodes complete PDUs from b (segment or stream buffer) and
// keeps an incomplete tail in st.buf.
func (x *Extractor) decodeStream(fl *flow, st *stream, b []byte, ts int64, fromClient bool, client, server int32) bool {
	bad := false
	fromBuf := len(st.buf) > 0
	for len(b) > 0 {
		n, err := ot.Decode(fl.proto, b, !fromClient, &x.pdu)
		if err == nil {
			if x.onPDU(fl, ts, fromClient, client, server) {
				bad = true
			}
			b = b[n:]
			continue
		}
		if !errors.Is(err, ot.ErrShort) {
			break // unsupported protocol: nothing to decode
		}
		if x.pdu.Need > x.cfg.MaxStreamBuffer {
			x.stats.ReassemblyOverflow++
			st.skip = x.pdu.Need - len(b)
			b = nil
			break
		}
		// Keep the tail for the next segment.
		if fromBuf {
			n := copy(st.buf, b)
			x.buffered -= len(st.buf) - n
			st.buf = st.buf[:n]
			return bad
		}
		if x.buffered+len(b) > x.cfg.MaxBufferedBytes {
			x.stats.ReassemblyOverflow++
			st.resync = true
			return bad
		}
		st.buf = append(x.getBuf(), b...)
		x.buffered += len(b)
		return bad
	}
	if fromBuf {
		x.dropBuffer(st)
	}
	return bad
}

func (x *Extractor) getBuf() []byte {
	if n := len(x.freeBufs); n > 0 {
		b := x.freeBufs[n-1]
		x.freeBufs = x.freeBufs[:n-1]
		return b[:0]
	}
	return make([]byte, 0, 2048)
}

func (x *Extractor) dropBuffer(st *stream) {
	if st.buf == nil {
		return
	}
	x.buffered -= len(st.buf)
	if len(x.freeBufs) < 256 && cap(st.buf) <= 64<<10 {
		x.freeBufs = append(x.freeBufs, st.buf[:0])
	}
	st.buf = nil
}

func (x *Extractor) releaseFlow(fl *flow) {
	x.forgetFlow(fl)
	x.dropBuffer(&fl.streams[0])
	x.dropBuffer(&fl.streams[1])
}

// onPDU accounts for the decoded x.pdu; it reports whether it is malformed.
func (x *Extractor) onPDU(fl *flow, ts int64, fromClient bool, client, server int32) bool {
	p := &x.pdu
	x.stats.PDUs++
	slot := protoSlot(fl.proto)
	x.protoPDU[slot]++
	hc, hs := &x.hosts.at(client).acc[0], &x.hosts.at(server).acc[0]
	if p.Malformed != "" {
		x.stats.MalformedPDUs++
		hc.malformed++
		hs.malformed++
		x.malformedEvent(fl, ts, fromClient)
		return true
	}
	x.otScan(fl, ts, fromClient, client, server)
	if p.Response || !fromClient {
		if p.Exception != 0 {
			hc.exceptions++
			hs.exceptions++
		}
		return false
	}
	switch p.Class {
	case ot.ClassRead:
		hc.reads++
		hs.reads++
	case ot.ClassWrite:
		hc.writes++
		hs.writes++
	case ot.ClassControl:
		hc.control++
		hs.control++
	case ot.ClassDiagnostic:
		hc.diag++
		hs.diag++
	}
	if p.FunctionName == "" {
		return false
	}
	if !flowProven(fl) && !x.provenByRequest(fl, client, ts) {
		x.holdFunction(fl, p, ts) // a communication once the server answers
		return false
	}
	if fl.fnBatch != x.batchSeq || fl.fnComm < 0 || fl.fn != p.Function || fl.fnProto != p.Proto ||
		x.comms[fl.fnComm].Function != p.FunctionName {
		fl.fnComm = x.comm(fl, ts, p.FunctionName)
		if fl.fnComm < 0 {
			return false
		}
		x.comms[fl.fnComm].FunctionClass = p.Class.String()
		fl.fnBatch, fl.fn, fl.fnProto = x.batchSeq, p.Function, p.Proto
	}
	c := &x.comms[fl.fnComm]
	c.LastNanos = ts
	c.Packets++ // PDUs, for function entries
	c.Bytes += int64(p.Len)
	return false
}

// Set names of the members packet rows carry (Row.Sets), the same as Device
// Defender reports so that one set rule serves both.
const (
	setRemoteAddrs       = "remote_addrs"        // hosts this host opened flows to
	setListeningTCPPorts = "listening_tcp_ports" // ports this host answered TCP on
	setListeningUDPPorts = "listening_udp_ports"
)

// maxSetMembers bounds the set members of one batch.
const maxSetMembers = 1 << 16

// setEntry is a set member of a host in the shortest window.
type setEntry struct {
	host int32
	gen  uint32
	set  string
	port uint16
	addr [16]byte
}

func (x *Extractor) logSetMember(h int32, set string, port uint16, addr *[16]byte) {
	if len(x.setLog) >= maxSetMembers {
		x.stats.SetMembersDropped++
		return
	}
	e := setEntry{host: h, gen: x.hosts.at(h).gen, set: set, port: port}
	if addr != nil {
		e.addr = *addr
	}
	x.setLog = append(x.setLog, e)
}

// listening records the server port of fl as a listening port of server.
func (x *Extractor) listening(fl *flow, server int32, udp bool) {
	port := fl.key.portB()
	if fl.clientB {
		port = fl.key.portA()
	}
	kind, set := uint8(4), setListeningTCPPorts
	if udp {
		kind, set = 5, setListeningUDPPorts
	}
	var seen float64 // distinct listening ports are not a metric; only dedupe
	if x.addDistinct(0, server, kind, port, nil, &seen) {
		x.logSetMember(server, set, port, nil)
	}
}

// maxEvents bounds the findings of one batch.
const maxEvents = 4096

// addEvent appends a finding to the batch unless it holds maxEvents.
func (x *Extractor) addEvent(e ingest.NetEvent) {
	if len(x.events) >= maxEvents {
		x.stats.EventsDropped++
		return
	}
	x.events = append(x.events, e)
}

// malformedEvent reports a protocol violation once per flow and batch; the
// event's Value counts the repeats.
func (x *Extractor) malformedEvent(fl *flow, ts int64, fromClient bool) {
	if fl.malBatch == x.batchSeq && fl.malEvent >= 0 {
		x.events[fl.malEvent].Value++
		return
	}
	srcIdx, dstIdx := fl.host[0].idx, fl.host[1].idx
	sport, dport := fl.key.portA(), fl.key.portB()
	if fl.clientB == fromClient { // the sender is endpoint b
		srcIdx, dstIdx = dstIdx, srcIdx
		sport, dport = dport, sport
	}
	hs, hd := x.nameHost(x.hosts.at(srcIdx)), x.hosts.at(dstIdx)
	if len(x.events) >= maxEvents {
		x.stats.EventsDropped++
		return
	}
	fl.malBatch = x.batchSeq
	fl.malEvent = int32(len(x.events))
	x.events = append(x.events, ingest.NetEvent{
		TimeNanos: ts, Kind: "malformed", Device: hs.device, Group: hs.group,
		SrcIP: hs.ip, DstIP: hd.ip, Transport: fl.key.transport(), SrcPort: sport, DstPort: dport,
		Protocol: fl.proto.String(), Detail: x.pdu.Malformed, Value: 1,
		Partition: x.partition, Offset: x.pos,
	})
}
