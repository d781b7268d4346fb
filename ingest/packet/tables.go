package packet

import (
	"encoding/binary"

	"github.com/vigil-ot/vigil/ingest/ot"
)

// maxWindows bounds ingest.PacketConfig.Windows (validated there).
const maxWindows = 4

// flowKey identifies a bidirectional flow: endpoint a is the lower of the
// two (address, port) pairs, so both directions find the same entry. The
// addresses are held as big-endian 64-bit halves so that comparing and
// hashing keys is a handful of word operations.
type flowKey struct {
	a0, a1, b0, b1 uint64
	ports          uint64 // pa<<24 | pb<<8 | transport
}

func (k *flowKey) addrA() [16]byte { return addrOf(k.a0, k.a1) }
func (k *flowKey) addrB() [16]byte { return addrOf(k.b0, k.b1) }
func (k *flowKey) portA() uint16   { return uint16(k.ports >> 24) }
func (k *flowKey) portB() uint16   { return uint16(k.ports >> 8) }
func (k *flowKey) transport() uint8 {
	return uint8(k.ports)
}

// eq compares keys word by word: inline, where == on the struct would
// call memequal.
func (k *flowKey) eq(o *flowKey) bool {
	return k.a1 == o.a1 && k.ports == o.ports && k.b1 == o.b1 && k.a0 == o.a0 && k.b0 == o.b0
}

func addrOf(hi, lo uint64) (a [16]byte) {
	binary.BigEndian.PutUint64(a[:8], hi)
	binary.BigEndian.PutUint64(a[8:], lo)
	return a
}

// newFlowKey returns the canonical key for a packet and whether the packet
// flows from b to a.
func newFlowKey(f *Frame) (k flowKey, fromB bool) {
	s0, s1 := binary.BigEndian.Uint64(f.Src[:8]), binary.BigEndian.Uint64(f.Src[8:])
	d0, d1 := binary.BigEndian.Uint64(f.Dst[:8]), binary.BigEndian.Uint64(f.Dst[8:])
	if d0 < s0 || d0 == s0 && (d1 < s1 || d1 == s1 && f.DstPort < f.SrcPort) {
		return flowKey{a0: d0, a1: d1, b0: s0, b1: s1, ports: uint64(f.DstPort)<<24 | uint64(f.SrcPort)<<8 | uint64(f.Transport)}, true
	}
	return flowKey{a0: s0, a1: s1, b0: d0, b1: d1, ports: uint64(f.SrcPort)<<24 | uint64(f.DstPort)<<8 | uint64(f.Transport)}, false
}

// TCP state bits of flow.tcp.
const (
	tcpSYN         = 1 << iota // the client's SYN was seen
	tcpSYNACK                  // the server answered
	tcpFailed                  // counted as a failed connection
	tcpEstablished             // both ends proved they take part (see Extractor.provenSender)
	tcpSentA                   // endpoint a sent a segment other than a RST
	tcpSentB                   // endpoint b did
	tcpData                    // a segment carried payload
)

// stream reassembles one direction of a TCP flow: the next expected
// sequence number and the bytes of a PDU that spans segments.
type stream struct {
	next   uint32
	known  bool
	skip   int    // bytes still to skip of a PDU too long to buffer
	resync bool   // after a hole: wait for a segment that starts a PDU
	buf    []byte // pending bytes of an incomplete PDU; nil when none
	// The last bytes delivered (OT flows only), to compare a
	// retransmission with: ring[s%ringSize] holds the byte at sequence
	// number s for s in [ringEnd-ringLen, ringEnd).
	ring    *[ringSize]byte
	ringEnd uint32
	ringLen uint16
}

// flow is one entry of the flow table. Entries live in a slice and are
// chained in least-recently-seen order for eviction.
type flow struct {
	key         flowKey
	hash        uint64
	first, last int64
	host        [2]hostRef // endpoints a and b
	clientB     bool       // endpoint b initiated the flow
	handshake   bool       // clientB comes from the TCP handshake: final
	proto       ot.Protocol
	detected    bool
	tries       uint8 // payloads ot.Detect has seen
	tcp         uint8
	win         [maxWindows]int64 // window id the flow was last counted in, per window
	listenWin   int64             // shortest window its server port was last recorded as listening
	streams     [2]stream         // a→b, b→a
	// Caches of the batch's Communication entries this flow feeds, valid
	// while their batch number is current.
	baseComm, fnComm   int32
	baseBatch, fnBatch uint32
	fn                 uint16
	fnProto            ot.Protocol
	malEvent           int32
	malBatch           uint32
	mitmEvent          int32
	mitmBatch          uint32
	pending            pendingFunction // the last OT function sent before the flow was proven
	used               bool
}

// hostRef points at a host entry; gen detects that the slot was reused.
type hostRef struct {
	idx int32
	gen uint32
}

// evictSample is how many slots the clock hand inspects to choose a victim
// when a table is full: the least recently seen of them is evicted. This
// approximates LRU without touching a list on every packet.
const evictSample = 8

// flowTable maps keys to flow entries, bounded by max; when full, an old
// flow is evicted (see victim). The index is an open-addressing hash table
// of slot numbers with linear probing: cheaper than a Go map for a 40-byte
// key looked up on every packet.
type flowTable struct {
	slots   []int32 // -1: empty; else index into flows
	mask    uint64
	flows   []flow
	free    []int32
	hand    int
	max     int
	n       int
	evicted int64
	release func(*flow) // called before a flow's slot is reused
}

// minFlowSlots is the size the index of a flow table starts at; it
// doubles while it is more than half full, up to twice max flows: a
// capture of a few flows does not pay for clearing the index of the
// largest (half a megabyte at the default max_flows).
const minFlowSlots = 256

func newFlowTable(max int) *flowTable {
	t := &flowTable{max: max}
	t.resize(min(minFlowSlots, maxFlowSlots(max)))
	return t
}

// maxFlowSlots is the size of the index of a table of max flows: the
// power of two at least twice max, so probes stay short when full.
func maxFlowSlots(max int) int {
	size := 1
	for size < 2*max {
		size <<= 1
	}
	return size
}

// resize makes the index size slots (a power of two) and indexes the
// flows in it again.
func (t *flowTable) resize(size int) {
	t.slots = make([]int32, size)
	t.mask = uint64(size - 1)
	for i := range t.slots {
		t.slots[i] = -1
	}
	for i := range t.flows {
		if t.flows[i].used {
			t.index(int32(i))
		}
	}
}

// index puts flow i in the first free slot from its hash on.
func (t *flowTable) index(i int32) {
	j := t.flows[i].hash & t.mask
	for t.slots[j] >= 0 {
		j = (j + 1) & t.mask
	}
	t.slots[j] = i
}

func (k *flowKey) hash() uint64 {
	h := k.a0 ^ k.a1*0x9e3779b97f4a7c15 ^ k.b0*0xc2b2ae3d27d4eb4f ^ k.b1*0x165667b19e3779f9 ^ k.ports*0x27d4eb2f165667c5
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return h
}

// lookup returns the flow of k, or -1.
func (t *flowTable) lookup(k *flowKey, h uint64) int32 {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s < 0 {
			return -1
		}
		if t.flows[s].key.eq(k) {
			return s
		}
	}
}

// victim returns the least recently seen of the next evictSample flows.
func (t *flowTable) victim() int32 {
	best := -1
	for range evictSample {
		t.hand = (t.hand + 1) % len(t.flows)
		if best < 0 || t.flows[t.hand].last < t.flows[best].last {
			best = t.hand
		}
	}
	return int32(best)
}

// insert adds k, evicting an old flow when the table is full.
func (t *flowTable) insert(k flowKey, h uint64) int32 {
	var i int32
	switch {
	case len(t.free) > 0:
		i = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
	case len(t.flows) < t.max:
		t.flows = append(t.flows, flow{})
		i = int32(len(t.flows) - 1)
	default:
		i = t.victim()
		t.remove(i)
		t.evicted++
		t.free = t.free[:len(t.free)-1]
	}
	f := &t.flows[i]
	*f = flow{key: k, hash: h, used: true, baseComm: -1, fnComm: -1, malEvent: -1, mitmEvent: -1, listenWin: -1 << 62}
	for w := range f.win {
		f.win[w] = -1 << 62
	}
	t.n++
	if 2*t.n > len(t.slots) && len(t.slots) < maxFlowSlots(t.max) {
		t.resize(2 * len(t.slots)) // indexes f too
	} else {
		t.index(i)
	}
	return i
}

func (t *flowTable) remove(i int32) {
	f := &t.flows[i]
	if t.release != nil {
		t.release(f)
	}
	t.unindex(i)
	f.used = false
	t.free = append(t.free, i)
}

// unindex removes flow i from the slots with backward-shift deletion, so
// probe sequences stay unbroken without tombstones.
func (t *flowTable) unindex(fi int32) {
	i := t.flows[fi].hash & t.mask
	for t.slots[i] != fi {
		i = (i + 1) & t.mask
	}
	for j := (i + 1) & t.mask; t.slots[j] >= 0; j = (j + 1) & t.mask {
		home := t.flows[t.slots[j]].hash & t.mask
		// Move slot j back to the hole at i unless its home lies
		// cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = -1
	t.n--
}

// expire removes flows last seen before cutoff.
func (t *flowTable) expire(cutoff int64) {
	for i := range t.flows {
		if t.flows[i].used && t.flows[i].last < cutoff {
			t.remove(int32(i))
		}
	}
}

func (t *flowTable) len() int { return t.n }

// distinctSet is the set of a window's distinct members (peers, ports,
// addresses of each host: distinctKey). Every flow adds a few members to
// it every window and every window empties it, so a sparse capture paid
// a Go map's hashing of the whole key and its clearing for each: this is
// an open-addressing table with linear probing on a cheap hash, emptied
// in constant time by moving to the next epoch (a slot of another epoch
// is empty).
type distinctSet struct {
	slots []distinctSlot
	mask  uint64
	n     int
	epoch uint32
}

type distinctSlot struct {
	key   distinctKey
	epoch uint32
}

// minDistinctSlots is the size a distinct set starts at; it doubles
// while more than half full. A set larger than maxKeptDistinctSlots is
// dropped when emptied after a window that filled less than an eighth of
// it: while a flood lasts its windows keep the large table (emptying it
// costs nothing), and once the flood is over the next windows start
// small again.
const (
	minDistinctSlots     = 64
	maxKeptDistinctSlots = 8192
)

func (k *distinctKey) hash() uint64 {
	a0, a1 := binary.LittleEndian.Uint64(k.addr[:8]), binary.LittleEndian.Uint64(k.addr[8:])
	h := uint64(uint32(k.host))<<32 | uint64(k.gen)
	h ^= (uint64(k.kind)<<16 | uint64(k.port)) * 0x9e3779b97f4a7c15
	h ^= a0*0xc2b2ae3d27d4eb4f ^ a1*0x165667b19e3779f9
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return h
}

func (s *distinctSet) len() int { return s.n }

// has reports whether k (of hash h) is in the set.
func (s *distinctSet) has(k *distinctKey, h uint64) bool {
	if s.n == 0 {
		return false
	}
	for i := h & s.mask; ; i = (i + 1) & s.mask {
		e := &s.slots[i]
		if e.epoch != s.epoch {
			return false
		}
		if e.key == *k {
			return true
		}
	}
}

// add puts k (of hash h), not in the set, in it.
func (s *distinctSet) add(k *distinctKey, h uint64) {
	if 2*(s.n+1) > len(s.slots) {
		s.grow()
	}
	i := h & s.mask
	for s.slots[i].epoch == s.epoch {
		i = (i + 1) & s.mask
	}
	s.slots[i] = distinctSlot{key: *k, epoch: s.epoch}
	s.n++
}

// grow doubles the table (or makes the first), keeping its members.
func (s *distinctSet) grow() {
	old, epoch := s.slots, s.epoch
	size := max(minDistinctSlots, 2*len(old))
	s.slots, s.mask, s.epoch = make([]distinctSlot, size), uint64(size-1), 1
	for i := range old {
		if e := &old[i]; e.epoch == epoch {
			j := e.key.hash() & s.mask
			for s.slots[j].epoch == s.epoch {
				j = (j + 1) & s.mask
			}
			s.slots[j] = distinctSlot{key: e.key, epoch: s.epoch}
		}
	}
}

// reset empties the set.
func (s *distinctSet) reset() {
	n := s.n
	s.n = 0
	if len(s.slots) > maxKeptDistinctSlots && 8*n < len(s.slots) {
		*s = distinctSet{}
		return
	}
	s.epoch++
	if s.epoch == 0 { // wrapped: slots of epoch 0 would read as members
		clear(s.slots)
		s.epoch = 1
	}
}
