package packet

import (
	"math"
	"net/netip"

	"github.com/vigil-ot/vigil/ingest"
	"github.com/vigil-ot/vigil/ingest/ot"
)

// AssetsByIP answers what the inventory knows of the device that uses an
// address. Implementations are safe for concurrent use.
type AssetsByIP interface {
	AssetByIP(ip netip.Addr) (ingest.Asset, bool)
}

// protoOther is the bit of host.clientProtos/serverProtos for TCP/UDP
// traffic of no decoded protocol; bit p for ot.Protocol p.
const protoOther = 15

// acc accumulates one host's traffic over one window. Counters are
// float64 because they become metric columns directly.
type acc struct {
	bytesIn, bytesOut, pktsIn, pktsOut float64
	flows, peers, dstPorts, dstHosts   float64
	failed, synIn, synOut              float64
	reads, writes, control, diag       float64
	exceptions, malformed              float64
	protoPkts                          [numProtoSlots]float64
	// Inter-arrival times of packets the host sent: count, sum and sum of
	// squares (plain sums: no division per packet, and they merge by
	// adding; seconds-scale values keep the variance well conditioned).
	iatN, iatSum, iatSq float64
	// Context for scan and flood findings: the last flow the host opened
	// and the last packet it received.
	lastOut, lastIn, lastSYN tuple
	srcsIn                   float64 // distinct sources of flows towards the host
	active                   bool    // the host had traffic in the window
	merged                   bool    // (shortest window) already folded into the longer ones
	emitted                  bool    // the window's row was appended

	// Shortest window only, for scan.go: distinct targets of broadcast
	// ARP requests the host sent (sweepListed: it is in
	// scanTracker.sweepers), and the OT responses it received as a
	// client, and how many of them were errors.
	arpTargets            float64
	otResponses, otErrors float64
	sweepListed           bool
}

// numProtoSlots: one slot per ot.Protocol plus "other" for TCP/UDP
// traffic of no decoded protocol.
const numProtoSlots = 11

const slotOther = numProtoSlots - 1

type tuple struct {
	src, dst     [16]byte
	sport, dport uint16
	transport    uint8
	proto        ot.Protocol
	valid        bool
}

func (a *acc) addIAT(d float64) {
	a.iatN++
	a.iatSum += d
	a.iatSq += d * d
}

// merge folds b (a shorter window) into a.
func (a *acc) merge(b *acc) {
	a.bytesIn += b.bytesIn
	a.bytesOut += b.bytesOut
	a.pktsIn += b.pktsIn
	a.pktsOut += b.pktsOut
	a.flows += b.flows
	a.failed += b.failed
	a.synIn += b.synIn
	a.synOut += b.synOut
	a.reads += b.reads
	a.writes += b.writes
	a.control += b.control
	a.diag += b.diag
	a.exceptions += b.exceptions
	a.malformed += b.malformed
	for i := range a.protoPkts {
		a.protoPkts[i] += b.protoPkts[i]
	}
	a.iatN += b.iatN
	a.iatSum += b.iatSum
	a.iatSq += b.iatSq
	if b.lastOut.valid {
		a.lastOut = b.lastOut
	}
	if b.lastIn.valid {
		a.lastIn = b.lastIn
	}
	if b.lastSYN.valid {
		a.lastSYN = b.lastSYN
	}
	a.active = a.active || b.active
}

// minJitterGaps is the fewest inter-arrival times a window's jitter is
// reported from. The sample standard deviation of fewer gaps is too
// noisy to judge (from 4 gaps of a normal cadence its relative standard
// error is about 40 %), and a host that sent only a handful of packets in
// a window (a NetBIOS or mDNS burst) has no cadence it could break: on
// attackgen's OT day, every clean-day alarm was such a burst's "jitter".
const minJitterGaps = 5

// jitter is the sample standard deviation of the inter-arrival times.
func (a *acc) jitter() float64 {
	if a.iatN < 2 {
		return 0
	}
	v := (a.iatSq - a.iatSum*a.iatSum/a.iatN) / (a.iatN - 1)
	return math.Sqrt(max(v, 0))
}

// host is one address seen on the network.
type host struct {
	addr         [16]byte
	ip           netip.Addr
	ipText       string
	device       string
	group        string
	groupIdx     int32
	inInventory  bool
	asset        bool // sent at least one packet: a discovered asset
	mac          [6]byte
	hasMAC       bool
	first, last  int64
	lastSend     int64
	clientProtos uint16 // bit per ot.Protocol (protoOther for others): initiated flows
	serverProtos uint16 // answered flows
	packets      int64
	bytes        int64
	acc          [maxWindows]acc
	gen          uint32
	setLo, setHi int32 // this host's members in the sorted set log, at window close
	used         bool
}

// hostTable maps addresses to host entries, bounded like flowTable.
// Entries live in chunks that never move: a host is some 2 KB, and a
// flood of forged sources adds thousands, so a growing slice would copy
// every host (with write barriers for its strings) again and again.
type hostTable struct {
	idx     map[[16]byte]int32
	chunks  []*[hostChunk]host
	n       int32 // entries in use or free: indices below n are valid
	free    []int32
	hand    int
	max     int
	evicted int64
	onEvict func(*host) // called before an evicted host's slot is reused
	pin     int32       // a slot victim must not pick (the packet's other endpoint), or -1
}

// hostChunk is the number of hosts in a chunk of a hostTable.
const hostChunk = 64

// at returns host i (below len()).
func (t *hostTable) at(i int32) *host { return &t.chunks[uint32(i)/hostChunk][uint32(i)%hostChunk] }

// len returns the number of host slots, used or free.
func (t *hostTable) len() int32 { return t.n }

// ref returns the host ref points at, or nil when ref is unset or its
// slot was reused since.
func (t *hostTable) ref(ref *hostRef) *host {
	if ref.idx < 0 || ref.idx >= t.n {
		return nil
	}
	if h := t.at(ref.idx); h.gen == ref.gen && h.used {
		return h
	}
	return nil
}

func newHostTable(max int) *hostTable {
	return &hostTable{idx: make(map[[16]byte]int32), max: max, pin: -1}
}

// victim returns the least recently seen of the next evictSample slots,
// preferring addresses that never became assets (scanned, flooded or
// spoofed ones) over discovered assets.
func (t *hostTable) victim() int32 {
	best := -1
	for range evictSample {
		t.hand = (t.hand + 1) % int(t.n)
		if int32(t.hand) == t.pin {
			continue
		}
		h := t.at(int32(t.hand))
		if best < 0 {
			best = t.hand
			continue
		}
		b := t.at(int32(best))
		if h.asset != b.asset {
			if !h.asset {
				best = t.hand
			}
			continue
		}
		if h.last < b.last {
			best = t.hand
		}
	}
	return int32(best)
}

// get returns the host of ref, or looks addr up (inserting it, created
// true) when ref is unset or its slot was reused since.
func (t *hostTable) get(ref *hostRef, addr *[16]byte) (i int32, created bool) {
	if t.ref(ref) != nil {
		return ref.idx, false
	}
	i, ok := t.idx[*addr]
	if !ok {
		i = t.insert(*addr)
	}
	ref.idx, ref.gen = i, t.at(i).gen
	return i, !ok
}

func (t *hostTable) insert(addr [16]byte) int32 {
	var i int32
	switch {
	case len(t.free) > 0:
		i = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
	case int(t.n) < t.max:
		if t.n%hostChunk == 0 {
			t.chunks = append(t.chunks, new([hostChunk]host))
		}
		i = t.n
		t.n++
	default:
		i = t.victim()
		if t.onEvict != nil {
			t.onEvict(t.at(i))
		}
		t.remove(i)
		t.evicted++
		t.free = t.free[:len(t.free)-1]
	}
	h := t.at(i)
	*h = host{addr: addr, gen: h.gen + 1, used: true}
	t.idx[addr] = i
	return i
}

func (t *hostTable) remove(i int32) {
	h := t.at(i)
	delete(t.idx, h.addr)
	h.used = false
	t.free = append(t.free, i)
}
